"""fileio with known answers: the exact text a writer produces, the exact error (type, file, fix) a
bad name or a bad file gets, which temporaries count as ours, and the lock's every branch (its
retries, a takeover that loses a race, another host, a hijacked lock at release). Complements
tests/test_fileio.py (the write/fsync order, live and dead owners) and tests/test_faults.py."""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import socket
import torch

from energy_lib import fileio
from test_fileio import _dead_pid


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", ["my-model-1", "a", "x" * 200, "run.v2", "été"])
def test_plain_folder_names_pass_unchanged(name):
    assert fileio.check_folder_name(name, "name") == name


@pytest.mark.parametrize("name", ["", "x" * 201, "a/b", "../up", "..", ".hidden", "a\\b", "a\nb", "tab\there", None, 5])
def test_unsafe_folder_names_are_refused_naming_the_field_and_a_name_that_works(name):
    with pytest.raises(fileio.UnsafeNameError) as caught:
        fileio.check_folder_name(name, "run.name")
    assert str(caught.value) == (f"run.name={name!r} must be a plain folder name (no '/' or '\\', not starting with "
                                 "'.', printable, at most 200 characters), e.g. my-model-1")


# ----------------------------------------------------------------------------- writing
@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "free some space on that disk (or set ENERGY_RUNS to a folder on another disk) and run again"),
    (errno.EACCES, "make /store/run writable (or set ENERGY_RUNS to a writable folder) and run again"),
    (errno.EPERM, "make /store/run writable (or set ENERGY_RUNS to a writable folder) and run again"),
    (errno.EROFS, "make /store/run writable (or set ENERGY_RUNS to a writable folder) and run again"),
    (errno.EIO, "fix the cause above and run again")])
def test_write_advice_names_the_fix_for_each_cause(code, advice):
    assert fileio._write_advice(Path("/store/run/last.pt"), OSError(code, os.strerror(code))) == advice


def test_json_is_written_sorted_indented_and_newline_terminated(tmp_path):
    path = tmp_path / "r.json"
    fileio.write_json(path, {"b": 1, "a": [1, 2.5], "c": {"y": None, "x": "s"}})
    assert path.read_text() == ('{\n  "a": [\n    1,\n    2.5\n  ],\n  "b": 1,\n  "c": {\n    "x": "s",\n'
                                '    "y": null\n  }\n}\n')
    assert fileio.DIGEST_KEY not in json.loads(path.read_text())              # sealed only when asked


def test_a_sealed_json_carries_the_digest_of_what_a_reader_gets_back(tmp_path):
    path = tmp_path / "r.json"
    fileio.write_json(path, {"t": (1, 2), "n": 3}, seal=True)
    stored = json.loads(path.read_text())
    assert stored[fileio.DIGEST_KEY] == fileio.content_digest({"t": [1, 2], "n": 3})   # the tuple reads as a list
    assert fileio.read_json(path, sealed=True) == {"t": [1, 2], "n": 3}
    assert fileio.read_json(path) == stored                                   # sealed=False: as stored


def test_torch_files_are_sealed_only_when_asked(tmp_path):
    plain, sealed = tmp_path / "plain.pt", tmp_path / "sealed.pt"
    obj = {"w": torch.arange(4.0), "epoch": 3}
    fileio.atomic_torch_save(obj, plain)
    fileio.atomic_torch_save(obj, sealed, seal=True)
    raw = torch.load(plain, weights_only=True)
    assert fileio.DIGEST_KEY not in raw and torch.equal(raw["w"], obj["w"])
    assert torch.load(sealed, weights_only=True)[fileio.DIGEST_KEY] == fileio.content_digest(obj)
    back = fileio.load_torch(sealed, "fix", sealed=True)
    assert set(back) == {"w", "epoch"} and torch.equal(back["w"], obj["w"])
    with pytest.raises(fileio.DigestMismatchError, match=f"{plain} carries no digest"):
        fileio.load_torch(plain, "fix", sealed=True)


def test_a_torch_file_loads_unsealed_by_default(tmp_path):
    fileio.atomic_torch_save({"epoch": 3}, tmp_path / "a.pt")
    assert fileio.load_torch(tmp_path / "a.pt", "fix") == {"epoch": 3}
    # sealed=False reads the file as stored: a sealed one keeps its digest (nothing checked, nothing removed)
    fileio.atomic_torch_save({"epoch": 3}, tmp_path / "s.pt", seal=True)
    assert fileio.load_torch(tmp_path / "s.pt", "fix") == {"epoch": 3,
                                                           fileio.DIGEST_KEY: fileio.content_digest({"epoch": 3})}


def test_a_json_file_without_a_digest_is_refused_only_when_one_is_required(tmp_path):
    path = tmp_path / "old.json"
    fileio.write_json(path, {"n": 3})
    with pytest.raises(fileio.DigestMismatchError, match=f"^{path} carries no digest of its content .* rerun it$"):
        fileio.read_json(path, "rerun it", sealed=True)
    assert fileio.read_json(path, "rerun it", sealed=None) == {"n": 3}    # None: checked when there


def test_a_checkpoint_written_on_a_gpu_loads_on_this_cpu(tmp_path):
    """The same file with its storage's location tag rewritten to cuda:0, as a GPU run writes it."""
    import zipfile

    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buffer)
    on_gpu = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zin, zipfile.ZipFile(on_gpu, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)
    path = tmp_path / "gpu.pt"
    path.write_bytes(on_gpu.getvalue())
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):                   # torch's own load needs the GPU
            torch.load(path, weights_only=True)
    got = fileio.load_torch(path, "fix")["w"]
    assert got.device.type == "cpu" and got.tolist() == [0.0, 1.0, 2.0]


def test_npz_round_trip(tmp_path):
    path = tmp_path / "a.npz"
    fileio.atomic_save_npz(path, {"x": np.arange(5), "y": np.eye(2)})
    with np.load(path) as back:
        assert back["x"].tolist() == [0, 1, 2, 3, 4] and back["y"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_a_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(fileio.StoreWriteError) as caught:
        fileio.make_dir(blocker / "sub")
    assert str(caught.value) == f"cannot create the folder {blocker / 'sub'}: Not a directory. fix the cause above and run again"
    fileio.make_dir(tmp_path / "a" / "b")
    fileio.make_dir(tmp_path / "a" / "b")                                     # exists: fine
    assert (tmp_path / "a" / "b").is_dir()


def test_a_failed_write_says_what_was_kept_names_the_fix_and_leaves_no_temporary(tmp_path, monkeypatch):
    def no_room(fd):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio.os, "fsync", no_room)
    old = tmp_path / "old.json"
    old.write_bytes(b"old")
    for path, kept in ((old, "its previous version is intact"), (tmp_path / "new.json", "nothing was written")):
        with pytest.raises(fileio.StoreWriteError) as caught:
            fileio.atomic_write_bytes(path, b"data")
        assert str(caught.value) == (f"cannot write {path}: Permission denied; {kept}. make {tmp_path} writable (or "
                                     "set ENERGY_RUNS to a writable folder) and run again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"] and old.read_bytes() == b"old"


def test_a_temporary_that_cannot_be_made_is_one_line_and_nothing_is_removed(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", full)
    monkeypatch.chdir(tmp_path)                    # a cleanup of a temporary that was never made must not act here
    with pytest.raises(fileio.StoreWriteError) as caught:
        fileio.atomic_write_bytes(tmp_path / "r.json", b"data")
    assert str(caught.value).startswith(f"cannot write {tmp_path / 'r.json'}: No space left on device; nothing was "
                                        "written. free some space")


def test_an_interrupted_write_removes_its_temporary_and_stays_an_interrupt(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_bytes(tmp_path / "r.json", b"data")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    real_replace = fileio.os.replace

    def moved_then_interrupted(src, dst):   # Ctrl-C landing just after the move, still inside the try
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "replace", moved_then_interrupted)
    with pytest.raises(KeyboardInterrupt):     # not a FileNotFoundError from removing a temporary already moved
        fileio.atomic_write_bytes(tmp_path / "r.json", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"] and (tmp_path / "r.json").read_bytes() == b"data"


def test_a_folder_without_permission_names_the_parent_to_make_writable(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):   # this suite runs as root, which no permission bit stops
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(fileio.StoreWriteError) as caught:
        fileio.make_dir(tmp_path / "runs" / "x")
    assert str(caught.value) == (f"cannot create the folder {tmp_path / 'runs' / 'x'}: Permission denied. make "
                                 f"{tmp_path / 'runs'} writable (or set ENERGY_RUNS to a writable folder) and run again")


# ----------------------------------------------------------------------------- reading
def test_read_text_errors_name_the_file(tmp_path):
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(fileio.CorruptFileError, match=f"^{binary} is not a text file \\("):
        fileio.read_text(binary)
    with pytest.raises(fileio.StoreError, match=f"^cannot read {tmp_path}: Is a directory$"):
        fileio.read_text(tmp_path)


def test_bad_json_names_the_file_and_the_fix_only_when_given(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{bad")
    with pytest.raises(fileio.CorruptFileError) as caught:
        fileio.read_json(path, "delete it")
    assert str(caught.value).startswith(f"{path} is not valid JSON (") and str(caught.value).endswith("); delete it")
    with pytest.raises(fileio.CorruptFileError) as caught:
        fileio.read_json(path)
    assert str(caught.value).endswith(")")


def test_read_jsonl_skips_blank_lines_and_counts_them_in_its_error(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n\n  \n[2]\n')
    assert fileio.read_jsonl(path) == [{"a": 1}, [2]]
    path.write_text('{"a": 1}\n\n{bad\n')
    with pytest.raises(fileio.CorruptFileError) as caught:
        fileio.read_jsonl(path, "rebuild it")
    message = str(caught.value)
    assert message.startswith(f"{path} line 3 is not valid JSON (") and message.endswith("); rebuild it")
    with pytest.raises(fileio.CorruptFileError) as caught:
        fileio.read_jsonl(path)
    assert str(caught.value).endswith(")")
    path.write_text("")
    assert fileio.read_jsonl(path) == []


def test_load_torch_errors_say_what_is_wrong_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError):                                   # a missing file stays itself
        fileio.load_torch(tmp_path / "missing.pt", "fix")
    with pytest.raises(fileio.StoreError) as caught:
        fileio.load_torch(tmp_path, "fix")
    assert str(caught.value) == f"cannot read {tmp_path}: Is a directory"
    cut = tmp_path / "cut.pt"
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(100)}, buffer)
    cut.write_bytes(buffer.getvalue()[:300])
    with pytest.raises(fileio.CorruptFileError) as caught:
        fileio.load_torch(cut, "delete it to retrain")
    with pytest.raises(Exception) as raw:                                      # what torch itself raises
        torch.load(io.BytesIO(cut.read_bytes()), weights_only=True)
    assert str(caught.value).startswith(f"{cut} is corrupt or truncated ({type(raw.value).__name__}: ")
    assert str(caught.value).endswith("). delete it to retrain")
    payload = tmp_path / "payload.pt"
    torch.save({"w": torch.ones(1), "obj": Path("x")}, payload)
    with pytest.raises(fileio.CorruptFileError) as caught:
        fileio.load_torch(payload, "delete it")
    assert str(caught.value).startswith(f"{payload} holds Python objects besides tensors and plain data (Unsupported global")
    assert str(caught.value).endswith("; it is not loaded, since loading it could run code. delete it")


def test_load_error_keeps_the_line_that_says_what_is_wrong():
    message = ("Weights only load failed.\n\n  \nWeightsUnpickler error: Unsupported global: error: nested\n"
               "Check the documentation")
    assert fileio._load_error(Exception(message)) == "Unsupported global: error: nested"
    assert fileio._load_error(Exception("  \nfirst line\nsecond")) == "first line"
    assert fileio._load_error(Exception("")) == ""
    assert fileio._load_error(Exception("x" * 300)) == "x" * 200


# ----------------------------------------------------------------------------- digests
def test_sealing_replaces_an_old_digest_and_takes_dicts_only(tmp_path):
    assert fileio.sealed({"a": 1, fileio.DIGEST_KEY: "old"}) == {"a": 1, fileio.DIGEST_KEY: fileio.content_digest({"a": 1})}
    with pytest.raises(TypeError, match="^only a dict can carry its digest; got list$"):
        fileio.sealed([1])
    path = tmp_path / "r.json"
    with pytest.raises(fileio.DigestMismatchError, match=f"^{path} is damaged: its content differs .*\\. fix$"):
        fileio.unseal({"a": 2, fileio.DIGEST_KEY: fileio.content_digest({"a": 1})}, path, "fix", required=None)
    with pytest.raises(fileio.DigestMismatchError, match=f"^{path} holds content that cannot be checked \\("):
        fileio.unseal({"a": {1, 2}, fileio.DIGEST_KEY: "x"}, path, "fix", required=None)
    assert fileio.unseal([1, 2], path, "fix", required=None) == [1, 2]           # no digest, not required


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"energy" * 1000)
    assert fileio.file_digest(path) == hashlib.sha256(b"energy" * 1000).hexdigest()


# ----------------------------------------------------------------------------- temporaries
def test_only_our_temporaries_of_dead_writers_go(tmp_path, monkeypatch):
    dead = _dead_pid()
    names = {f".{dead}.a1.tmp": True,                       # the shortest of ours: .<pid>.<random>.tmp
             f".last.pt.{dead}.b2.tmp": True,
             f".metrics.jsonl.x.{dead}.c3.tmp": True,       # dots in the name: the pid is third from the end
             f".notes.{dead}.tmp": False,                   # too few parts: not ours
             f".a.{dead}x.d4.tmp": False,                   # not a pid
             f".last.pt.{os.getpid()}.e5.tmp": False}       # this process is alive
    for name in names:
        (tmp_path / name).write_text("partial")
    removed = fileio.clean_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, gone in names.items() if not gone)
    # a temporary removed by someone else between the listing and the removal is no error
    vanished = tmp_path / f".last.pt.{dead}.f6.tmp"
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([vanished]))
    assert fileio.clean_stale_temporaries(tmp_path) == [vanished]


def test_pid_alive_probes_without_signalling():
    assert not fileio._pid_alive(0) and not fileio._pid_alive(-3)            # process groups, not processes
    assert fileio._pid_alive(1) and fileio._pid_alive(os.getpid())
    assert not fileio._pid_alive(_dead_pid())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert fileio._pid_alive(sleeper.pid)
        with pytest.raises(subprocess.TimeoutExpired):                       # still running afterwards
            sleeper.wait(timeout=0.2)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_pid_alive_counts_another_users_process_as_alive(monkeypatch):
    def denied(pid, sig):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fileio.os, "kill", denied)
    assert fileio._pid_alive(4242)


# ----------------------------------------------------------------------------- the lock
def _plant(directory: Path, owner) -> Path:
    path = directory / fileio.LOCK_NAME
    path.write_text(json.dumps(owner))
    return path


def test_a_lock_starts_unheld_and_reads_its_owner(tmp_path):
    lock = fileio.RunLock(tmp_path)
    assert lock.path == tmp_path / fileio.LOCK_NAME and lock.held is False
    assert lock._owner() is None
    _plant(tmp_path, [1, 2])
    assert lock._owner() == {}                                                # not a dict: unreadable
    (tmp_path / fileio.LOCK_NAME).write_text("{cut")
    assert lock._owner() == {}
    _plant(tmp_path, {"pid": 7, "host": "h"})
    assert lock._owner() == {"pid": 7, "host": "h"}


def test_held_elsewhere_reads_host_then_pid(tmp_path):
    lock = fileio.RunLock(tmp_path)
    _plant(tmp_path, {"pid": _dead_pid(), "host": "another-host"})
    assert lock.held_elsewhere()                                              # another host: never judged from here
    _plant(tmp_path, {"pid": _dead_pid()})                                    # no host: judged by its pid
    assert not lock.held_elsewhere()
    _plant(tmp_path, {"pid": os.getpid()})
    assert not lock.held_elsewhere()
    _plant(tmp_path, {"pid": "1"})
    assert not lock.held_elsewhere()


def test_acquire_retries_five_times_then_says_the_lock_keeps_changing_hands(tmp_path, monkeypatch):
    tries = []
    monkeypatch.setattr(fileio.RunLock, "_try_create", lambda self, me: tries.append(1) or False)
    monkeypatch.setattr(fileio.RunLock, "_owner", lambda self, path=None: None)   # released each time
    with pytest.raises(fileio.RunLockedError) as caught:
        fileio.RunLock(tmp_path).acquire()
    assert len(tries) == 5
    assert str(caught.value) == (f"could not take the lock {tmp_path / fileio.LOCK_NAME} (it keeps changing hands); "
                                 "run again")


def test_a_takeover_that_loses_the_race_puts_the_new_owners_lock_back(tmp_path, monkeypatch):
    """Between reading a stale owner and moving its lock aside, another process took the lock over:
    the lock moved aside is theirs, so it goes back, and this process tries again."""
    dead = _dead_pid()
    path = _plant(tmp_path, {"pid": dead, "host": socket.gethostname()})
    real_owner, seen = fileio.RunLock._owner, []

    def owner(self, where=None):
        got = real_owner(self, where)
        if where is not None and not seen:          # the first look at the lock moved aside: someone else's
            seen.append(where)
            return {"pid": 99, "host": "h"}
        return got

    links = []
    real_link = os.link
    monkeypatch.setattr(fileio.os, "link", lambda src, dst: links.append((Path(src).name, Path(dst).name))
                        or real_link(src, dst))
    monkeypatch.setattr(fileio.RunLock, "_owner", owner)
    lock = fileio.RunLock(tmp_path)
    with pytest.warns(UserWarning, match=f"took over the stale lock {path} of process {dead}"):
        lock.acquire()
    aside = f".{fileio.LOCK_NAME}.{os.getpid()}.stale.tmp"
    assert (aside, fileio.LOCK_NAME) in links                                   # put back
    assert lock.held and json.loads(path.read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [fileio.LOCK_NAME]     # nothing left aside
    lock.release()


def test_a_stale_lock_that_vanishes_before_it_is_moved_aside_is_retried(tmp_path, monkeypatch):
    path = _plant(tmp_path, {"pid": _dead_pid(), "host": socket.gethostname()})
    real_rename, renames = os.rename, []

    def rename(src, dst):
        renames.append(dst)
        if len(renames) == 1:                         # its owner's cleanup removed it just before
            Path(src).unlink()
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return real_rename(src, dst)

    monkeypatch.setattr(fileio.os, "rename", rename)
    lock = fileio.RunLock(tmp_path).acquire()                               # no warning: nothing was taken over
    assert lock.held and len(renames) == 1 and json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lock_deleted_by_hand_while_held_is_released_without_error(tmp_path, monkeypatch):
    lock = fileio.RunLock(tmp_path).acquire()
    real_owner = fileio.RunLock._owner

    def owner_then_deleted(self, path=None):
        got = real_owner(self, path)
        self.path.unlink()                            # a user follows the advice while we hold it
        return got

    monkeypatch.setattr(fileio.RunLock, "_owner", owner_then_deleted)
    lock.release()
    assert lock.held is False and not lock.path.exists()


def test_the_takeover_warning_points_at_the_caller(tmp_path):
    _plant(tmp_path, {"pid": _dead_pid(), "host": socket.gethostname()})
    with pytest.warns(UserWarning) as warned:
        lock = fileio.RunLock(tmp_path).acquire()
    # not fileio's own line (stacklevel 1) but the caller's: this file (under mutmut, its trampoline's frame)
    assert Path(warned[0].filename).resolve() != Path(fileio.__file__).resolve()
    if "MUTANT_UNDER_TEST" not in os.environ:
        assert warned[0].filename == __file__
    lock.release()


def test_a_lock_file_that_cannot_be_made_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fileio.os, "link", read_only)
    with pytest.raises(fileio.StoreWriteError) as caught:
        fileio.RunLock(tmp_path).acquire()
    assert str(caught.value) == (f"cannot create the lock file {tmp_path / fileio.LOCK_NAME}: Read-only file system. "
                                 f"make {tmp_path} writable (or set ENERGY_RUNS to a writable folder) and run again")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def no_space(self, text, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", no_space)                      # the temporary is never written
    with pytest.raises(fileio.StoreWriteError, match="No space left on device. free some space"):
        fileio.RunLock(tmp_path).acquire()


def test_release_leaves_a_lock_that_is_no_longer_ours_and_a_released_lock_can_be_taken_again(tmp_path):
    lock = fileio.RunLock(tmp_path).acquire()
    assert lock.acquire() is lock                                             # held: nothing to do
    path = _plant(tmp_path, {"pid": 4242, "host": "h"})                      # someone replaced it
    lock.release()
    assert lock.held is False and path.exists()
    path.unlink()
    lock.acquire()
    assert lock.held and json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert lock.held is False and not path.exists()
    lock.release()                                                            # twice: nothing to do


# ----------------------------------------------------------------------------- the fault hook (tests' own)
@pytest.mark.parametrize("spec, parsed", [("kill:last.pt:1", ("kill", "last.pt", 1)),
                                          ("stop:metrics.jsonl:12", ("stop", "metrics.jsonl", 12)),
                                          ("kill:a:b.pt:2", ("kill", "a:b.pt", 2))])   # the count is after the last colon
def test_a_fault_spec_reads_action_file_and_count(spec, parsed):
    assert fileio._fault_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["kill", "pause:last.pt:1", "kill::1", "kill:last.pt:0", "kill:last.pt:x",
                                  "kill:last.pt:", "stop:last.pt:-1"])
def test_a_malformed_fault_spec_is_one_line_saying_how_to_get_rid_of_it(spec):
    with pytest.raises(fileio.StoreError) as caught:
        fileio._fault_spec(spec)
    assert str(caught.value) == (f"{fileio.FAULT_ENV}={spec!r} is not <kill|stop>:<file name>:<n >= 1>; it is a test "
                                 f"hook: unset {fileio.FAULT_ENV} (or correct it) and run again")


def test_the_digest_format_is_frozen():
    """Records committed in runs/ carry digests of this format: a change to how content is fed to the
    hash (type tags, separators, key order, floats, tensors, arrays) would turn every one of them
    "damaged". The value below was computed once and must never change."""
    obj = {"b": [1.5, None, "x", True, 7, (2, 3)], "a": {1: "one", "1": "str one"},
           "t": torch.arange(3, dtype=torch.float32), "n": np.arange(2, dtype=np.int64), "f": np.float64(0.1),
           "y": b"raw"}
    assert fileio.content_digest(obj) == "08044088b2c3d48ff6ebfdb2103288b1aa59dedbfd0a73ebd3d818cff4c489d0"
    assert fileio.content_digest({"k": 0.1}) == fileio.content_digest({"k": np.float64(0.1)})
    assert fileio.content_digest({"a": 1, "b": 2}) == fileio.content_digest({"b": 2, "a": 1})
    # keys with the same text are ordered by their type, not by insertion
    assert fileio.content_digest({1: "one", "1": "str one"}) == fileio.content_digest({"1": "str one", 1: "one"})
    assert fileio.content_digest([1]) != fileio.content_digest(["1"]) != fileio.content_digest([1.0])
    with pytest.raises(TypeError, match="^content_digest cannot hash a object$"):
        fileio.content_digest({"x": object()})


def _write_under_fault(directory: Path, spec: str) -> tuple[int, list[str]]:
    """A child writes g.bin, f.bin, g.bin, f.bin, f.bin under the fault spec; returns its wait status
    (stopped counts: a stopped child is reported, then killed) and the files it said it wrote."""
    script = ("import sys; from pathlib import Path; from energy_lib import fileio\n"
              "d = Path(sys.argv[1])\n"
              "for name in ('g.bin', 'f.bin', 'g.bin', 'f.bin', 'f.bin'):\n"
              "    fileio.atomic_write_bytes(d / name, b'0123456789'); print(name, flush=True)\n")
    out = directory / "child.out"
    with open(out, "w") as sink:
        child = subprocess.Popen([sys.executable, "-c", script, str(directory)], stdout=sink,
                                 env={**os.environ, fileio.FAULT_ENV: spec}, cwd=Path(fileio.__file__).parents[1])
    guard = threading.Timer(120, child.kill)          # a child that neither ends nor stops fails, never hangs
    guard.start()
    try:
        _, status = os.waitpid(child.pid, os.WUNTRACED)
    finally:
        guard.cancel()
        if os.WIFSTOPPED(status):
            child.kill()
            os.waitpid(child.pid, 0)
        child.returncode = 0                            # reaped here: Popen must not wait for it again
    return status, out.read_text().split()


def test_the_fault_hook_kills_the_nth_write_of_its_file_only(tmp_path):
    """The hook tests/test_faults.py uses to kill a run mid-write, in a child process: the 2nd write
    of f.bin is killed halfway, the writes of other files and the 1st write of f.bin are not."""
    fileio.atomic_write_bytes(tmp_path / "in-process.bin", b"no hook set")
    status, written = _write_under_fault(tmp_path, "kill:f.bin:2")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL and written == ["g.bin", "f.bin", "g.bin"]
    assert (tmp_path / "f.bin").read_bytes() == b"0123456789"                 # the first version is intact
    partial = [p for p in tmp_path.glob(".f.bin.*.tmp")]
    assert len(partial) == 1 and partial[0].read_bytes() == b"01234"          # killed halfway


def test_the_fault_hook_stops_halfway_through_the_nth_write_when_asked_to(tmp_path):
    """"stop" (SIGSTOP: a machine that froze) leaves the process alive but stopped, halfway through."""
    fileio.atomic_write_bytes(tmp_path / "in-process.bin", b"no hook set")
    status, written = _write_under_fault(tmp_path, "stop:g.bin:1")
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP and written == []
    partial = [p for p in tmp_path.glob(".g.bin.*.tmp")]
    assert len(partial) == 1 and partial[0].read_bytes() == b"01234" and not (tmp_path / "g.bin").exists()
    assert (tmp_path / "in-process.bin").read_bytes() == b"no hook set"
