"""fileio's guarantees, one by one on planted files: a write reaches the disk (flushed, fsynced)
before it replaces the old version; a temporary is removed only when its writer is gone; a lock
is one process's."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from energy_lib import fileio


def test_an_atomic_write_is_complete_and_fsynced_before_it_replaces_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    path.write_bytes(b"old")
    data = b"0123456789" * 1000
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        on_disk = Path(os.readlink(f"/proc/self/fd/{fd}")).read_bytes()
        events.append(("fsync", on_disk == data))      # everything written and flushed by now
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst) == path and path.read_bytes() == b"old"))
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    monkeypatch.setattr(fileio.os, "replace", replace)
    fileio.atomic_write_bytes(path, data)
    assert events == [("fsync", True), ("replace", True)]
    assert path.read_bytes() == data
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_write_keeps_the_old_version_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    path.write_bytes(b"old")

    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    with pytest.raises(fileio.StoreWriteError, match=r"cannot write .*record\.json.*previous version is intact.*"
                                                      r"free some space"):
        fileio.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and not list(tmp_path.glob(".*.tmp"))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


@pytest.fixture
def live_process():
    """A running process of our own (not the parent: whatever probes it must leave it running, and a
    probe that signalled the parent would hit the test runner)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _still_running(proc) -> bool:
    """True unless the process ends within 0.2 s (a signal sent by a probe takes a moment to land)."""
    try:
        proc.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_stale_temporaries_are_those_whose_writer_is_gone(tmp_path, live_process):
    """A temporary of a running writer (another live process, and this one) stays; one of a
    process that has exited goes; a file that is not one of ours stays. Probing a writer leaves it
    running."""
    gone_pid = _dead_pid()
    live = tmp_path / f".last.pt.{live_process.pid}.abc123.tmp"
    mine = tmp_path / f".last.pt.{os.getpid()}.def456.tmp"
    dead = tmp_path / f".metrics.jsonl.{gone_pid}.x1y2z3.tmp"
    other = tmp_path / ".notes.tmp"
    for p in (live, mine, dead, other):
        p.write_text("partial")
    assert fileio.clean_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and mine.exists() and other.exists() and not dead.exists()
    assert fileio.clean_stale_temporaries(tmp_path / "missing") == []
    assert _still_running(live_process)


def _plant_lock(directory: Path, pid: int, host: str | None = None) -> Path:
    import json
    import socket

    path = directory / fileio.LOCK_NAME
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname()}))
    return path


def test_a_live_owners_lock_is_refused_naming_the_owner(tmp_path, live_process):
    lock = _plant_lock(tmp_path, live_process.pid)             # a live process on this host
    assert fileio.RunLock(tmp_path).held_elsewhere()
    with pytest.raises(fileio.RunLockedError, match=rf"in use by process {live_process.pid} \(lock file {lock}\)"):
        fileio.RunLock(tmp_path).acquire()
    assert lock.exists() and _still_running(live_process)
    _plant_lock(tmp_path, 1234, host="another-host")         # another host: never judged stale from here
    with pytest.raises(fileio.RunLockedError, match="on host another-host.*delete"):
        fileio.RunLock(tmp_path).acquire()


def test_a_dead_owners_lock_is_taken_over_with_a_warning_and_released_on_exit(tmp_path):
    gone_pid = _dead_pid()
    lock = _plant_lock(tmp_path, gone_pid)
    assert not fileio.RunLock(tmp_path).held_elsewhere()
    with pytest.warns(UserWarning, match=f"stale lock .* of process {gone_pid}"):
        with fileio.RunLock(tmp_path) as mine:
            assert mine.held and fileio.RunLock(tmp_path)._owner()["pid"] == os.getpid()
    assert not lock.exists()
