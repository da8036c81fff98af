"""File handling of the run store: atomic writes, the run-directory lock, reads that name the file,
and clean-up of temporaries left by killed writes. A low module: it imports nothing of energy_lib.

* Every write goes to `.<name>.<pid>.<random>.tmp` in the target's directory, is fsynced and moved
  into place with os.replace: a crash (or a full disk) mid-write leaves the previous version intact.
  A write that fails raises `StoreWriteError` naming the file; the temporary is removed.
* A temporary whose writer (the pid in its name) is no longer running is stale:
  `clean_stale_temporaries` removes it (runs.py does on every open of a run directory).
* `RunLock`: a run directory is owned by one process at a time (`LOCK` holds the owner's pid and
  host); a lock whose process no longer runs on this host is stale and taken over.
* `read_json` / `read_jsonl` / `load_torch` raise `CorruptFileError` naming the file and what is wrong.

Fault injection (tests only): `ENERGY_FAULT_INJECT=<action>:<file name>:<n>` makes the n-th write of
that file name in this process stop halfway through its temporary: `kill` sends itself SIGKILL
(a crash inside a checkpoint write), `stop` sends itself SIGSTOP (a process that holds the lock).
"""
from __future__ import annotations

import atexit
import errno
import io
import json
import os
import signal
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

FAULT_ENV = "ENERGY_FAULT_INJECT"
LOCK_NAME = "LOCK"


class StoreError(RuntimeError):
    """A file of the run store cannot be read or written; the message names the file and the fix."""


class CorruptFileError(StoreError):
    """A file exists but does not hold what it should (truncated, not JSON, wrong keys)."""


class StoreWriteError(StoreError):
    """Writing a file failed (read-only folder, full disk, ...); the previous version is intact."""


class RunLockedError(StoreError):
    """Another live process owns the run directory."""


# ----------------------------------------------------------------------------- writing
_write_counts: dict[str, int] = {}


def _fault_hook(path: Path) -> None:
    """Test hook (see module docstring): act halfway through the n-th write of `path.name`."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, name, nth = spec.split(":")
    if name != path.name:
        return
    _write_counts[name] = _write_counts.get(name, 0) + 1
    if _write_counts[name] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL if action == "kill" else signal.SIGSTOP)


def _write_bytes(f, data: bytes, path: Path) -> None:
    half = len(data) // 2
    f.write(data[:half])
    f.flush()
    _fault_hook(path)
    f.write(data[half:])


def _write_advice(path: Path, err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "free some space on that disk (or set ENERGY_RUNS to a folder on another disk) and run again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make {path.parent} writable (or set ENERGY_RUNS to a writable folder) and run again"
    return "fix the cause above and run again"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see module docstring)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            _write_bytes(f, data, path)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        kept = "its previous version is intact" if path.exists() else "nothing was written"
        raise StoreWriteError(f"cannot write {path}: {err.strerror or err}; {kept}. "
                              f"{_write_advice(path, err)}") from err
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save into memory, then an atomic write (so a full disk is an OSError naming the file,
    not an error from torch's zip writer)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def make_dir(path: Path) -> None:
    """mkdir -p with an error that names the folder."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreWriteError(f"cannot create the folder {path}: {err.strerror or err}. "
                              f"{_write_advice(path, err)}") from err


# ----------------------------------------------------------------------------- reading
def read_text(path: Path) -> str:
    path = Path(path)
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise CorruptFileError(f"{path} is not a text file ({err})") from err
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror or err}") from err


def read_json(path: Path, fix: str = "") -> Any:
    """json.load with an error that names the file (and, when given, the fix)."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptFileError(f"{path} is not valid JSON ({err})" + (f"; {fix}" if fix else "")) from err


def read_jsonl(path: Path, fix: str = "") -> list:
    """One JSON value per non-empty line; an error names the file and the line."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise CorruptFileError(f"{path} line {number} is not valid JSON ({err})"
                                   + (f"; {fix}" if fix else "")) from err
    return rows


def load_torch(path: Path, fix: str, weights_only: bool = False) -> Any:
    """torch.load on CPU with an error that names the file and the fix."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except FileNotFoundError:
        raise
    except Exception as err:   # zip, pickle and EOF errors of a truncated or foreign file
        raise CorruptFileError(f"{path} is corrupt or truncated ({type(err).__name__}: {err}). {fix}") from err


# ----------------------------------------------------------------------------- temporaries and locks
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(directory: Path) -> list[Path]:
    """Remove `.<name>.<pid>.<random>.tmp` files in `directory` whose writer no longer runs; returns them."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for tmp in directory.glob(".*.tmp"):
        parts = tmp.name.split(".")   # ['', <name parts>, <pid>, <random>, 'tmp']
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


class RunLock:
    """Exclusive ownership of a directory by this process (`LOCK` = {"pid", "host"}).

    A lock left by a process that no longer runs on this host is stale and taken over (with a
    warning); a live owner makes `acquire` raise `RunLockedError` naming it."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self.held = False

    def _owner(self, path: Path | None = None) -> dict | None:
        try:
            owner = json.loads((path or self.path).read_text())
            return owner if isinstance(owner, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}   # unreadable: treated as stale (a lock is only ever linked into place whole)

    def _try_create(self, me: dict) -> bool:
        """Link a complete lock file into place; False when one exists."""
        tmp = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.{id(self)}.tmp")
        try:
            tmp.write_text(json.dumps(me))
            os.link(tmp, self.path)   # atomic, and fails when the lock exists
            return True
        except FileExistsError:
            return False
        except OSError as err:
            raise StoreWriteError(f"cannot create the lock file {self.path}: {err.strerror or err}. "
                                  f"{_write_advice(self.path, err)}") from err
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self) -> "RunLock":
        if self.held:
            return self
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(5):
            if self._try_create(me):
                self.held = True
                atexit.register(self.release)   # also when a caller never calls release
                return self
            owner = self._owner()
            if owner is None:
                continue   # released meanwhile: try again
            pid, host = owner.get("pid"), owner.get("host")
            if host not in (None, me["host"]):
                raise RunLockedError(
                    f"{self.path.parent} is locked by process {pid} on host {host} (lock file {self.path}); "
                    f"if no such process runs there any more, delete {self.path} and run again")
            if isinstance(pid, int) and pid != me["pid"] and _pid_alive(pid):
                raise RunLockedError(
                    f"{self.path.parent} is in use by process {pid} (lock file {self.path}); wait for it to "
                    f"finish or stop it, then run again (if process {pid} is not training this run, delete "
                    f"{self.path}; to train a separate run, give it another `name`)")
            # stale: move it aside atomically; if someone else took it over meanwhile, put theirs back
            aside = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.stale.tmp")
            try:
                os.rename(self.path, aside)
            except FileNotFoundError:
                continue
            if self._owner(aside) != owner:
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
                aside.unlink(missing_ok=True)
                continue
            aside.unlink(missing_ok=True)
            if pid != me["pid"]:
                warnings.warn(f"took over the stale lock {self.path} of process {pid}, which no longer runs",
                              stacklevel=2)
        raise RunLockedError(f"could not take the lock {self.path} (it keeps changing hands); run again")

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
