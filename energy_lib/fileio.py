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
* No file runs code when read: `load_torch` always loads with `weights_only=True` (tensors and plain
  data only; a pickled object is refused, never constructed).
* Digests: a torch or JSON file written with `seal=True` carries the sha256 of its own content under
  `DIGEST_KEY` (`content_digest`: tensors by dtype, shape and bytes, dict keys in sorted order), in
  the same atomic write, so no crash can separate a file from its digest; `load_torch` /
  `read_json` check it (`sealed=True`: a file without one is refused; None: one written before
  digests existed is accepted as it is) and return the content without it. A changed byte that the
  format itself does not notice (torch's zip reader checks no CRC) is a `DigestMismatchError`.
* `check_folder_name`: a name that becomes a path (run, record, lens record) is one plain folder name.

Fault injection (tests only): `ENERGY_FAULT_INJECT=<action>:<file name>:<n>` makes the n-th write of
that file name in this process stop halfway through its temporary: `kill` sends itself SIGKILL
(a crash inside a checkpoint write), `stop` sends itself SIGSTOP (a process that holds the lock).
"""
from __future__ import annotations

import atexit
import errno
import hashlib
import io
import json
import os
import signal
import socket
import sys
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


class DigestMismatchError(CorruptFileError):
    """A file's content differs from the digest written with it (a changed byte, an edit, a swap)."""


class UnsafeNameError(StoreError, ValueError):
    """A name that becomes a path is not one plain folder name."""


# ----------------------------------------------------------------------------- names
def check_folder_name(name: str, what: str) -> str:
    """`name` when it is one plain folder name (no separator, not '.'/'..'-like, no control
    characters); else `UnsafeNameError` naming `what` (the field or flag) and a name that works."""
    ok = (isinstance(name, str) and 0 < len(name) <= 200 and name == os.path.basename(name)
          and not name.startswith(".") and "\\" not in name and name.isprintable())
    if not ok:
        raise UnsafeNameError(f"{what}={name!r} must be a plain folder name (no '/' or '\\', not starting with "
                              "'.', printable, at most 200 characters), e.g. my-model-1")
    return name


# ----------------------------------------------------------------------------- writing
_write_counts: dict[str, int] = {}


def _fault_spec(spec: str) -> tuple[str, str, int]:
    action, _, rest = spec.partition(":")
    name, _, nth = rest.rpartition(":")
    if action not in ("kill", "stop") or not name or not nth.isdigit() or int(nth) < 1:
        raise StoreError(f"{FAULT_ENV}={spec!r} is not <kill|stop>:<file name>:<n >= 1>; it is a test hook: "
                         f"unset {FAULT_ENV} (or correct it) and run again")
    return action, name, int(nth)


def _fault_hook(path: Path) -> None:
    """Test hook (see module docstring): act halfway through the n-th write of `path.name`."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, name, nth = _fault_spec(spec)
    if name != path.name:
        return
    _write_counts[name] = _write_counts.get(name, 0) + 1
    if _write_counts[name] == nth:
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


def write_json(path: Path, obj: Any, *, seal: bool = False) -> None:
    """JSON, atomically; `seal`: with the digest of its content (a dict; see the module docstring)."""
    if seal:
        obj = sealed(json.loads(json.dumps(obj)))   # digest what a reader gets back (tuples -> lists, ...)
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: Path, *, seal: bool = False) -> None:
    """torch.save into memory, then an atomic write (so a full disk is an OSError naming the file,
    not an error from torch's zip writer); `seal`: with the digest of its content (a dict)."""
    import torch

    buffer = io.BytesIO()
    torch.save(sealed(obj) if seal else obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npz(path: Path, arrays: dict) -> None:
    """numpy.savez into memory, then an atomic write (a full disk names the file, leaves no temporary)."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
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


def read_json(path: Path, fix: str = "", *, sealed: bool | None = False) -> Any:
    """json.load with an error that names the file (and, when given, the fix). `sealed`: check the
    digest written with the file (True: required; None: checked when there; see the module docstring)."""
    text = read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptFileError(f"{path} is not valid JSON ({err})" + (f"; {fix}" if fix else "")) from err
    return obj if sealed is False else unseal(obj, path, fix, required=sealed)


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


def load_torch(path: Path, fix: str, *, sealed: bool | None = False) -> Any:
    """torch.load on CPU, tensors and plain data only (`weights_only=True`: a file holding any other
    Python object is refused, so reading a file never runs code), with an error that names the file
    and the fix. `sealed`: check the digest written with the file (see the module docstring)."""
    import torch

    try:
        raw = Path(path).read_bytes()   # read once: the bytes checked are the bytes loaded
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror or err}") from err
    except Exception as err:   # zip, pickle and EOF errors of a truncated or foreign file
        reason = _load_error(err)
        if "Unsupported global" in reason:   # torch's weights-only unpickler refused to build an object
            raise CorruptFileError(f"{path} holds Python objects besides tensors and plain data ({reason}); it is not "
                                   f"loaded, since loading it could run code. {fix}") from err
        raise CorruptFileError(f"{path} is corrupt or truncated ({type(err).__name__}: {reason}). {fix}") from err
    return obj if sealed is False else unseal(obj, path, fix, required=sealed)


def _load_error(err: BaseException) -> str:
    """The line of torch.load's (long) message that says what is wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    found = [line.split("error:", 1)[1].strip() for line in lines if line.startswith("WeightsUnpickler error:")]
    return (found or lines or [""])[0][:200]


# ----------------------------------------------------------------------------- digests
DIGEST_KEY = "content_sha256"


def _feed(h, obj) -> None:
    """Add `obj` to the hash: type tag, then value (tensors and arrays by dtype, shape and bytes)."""
    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        h.update(f"{type(obj).__name__[:1]}{len(repr(obj))}:".encode() + repr(obj).encode())
    elif isinstance(obj, float):
        h.update(b"f" + float.__repr__(float(obj)).encode() + b";")   # numpy floats hash as Python's
    elif isinstance(obj, dict):
        h.update(f"d{len(obj)}:".encode())
        for key in sorted(obj, key=lambda k: (str(k), type(k).__name__)):   # any insertion order
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"l{len(obj)}:".encode())
        for item in obj:
            _feed(h, item)
    elif "torch" in sys.modules and sys.modules["torch"].is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"t{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(sys.modules["torch"].uint8).numpy().tobytes())
    elif "numpy" in sys.modules and isinstance(obj, sys.modules["numpy"].ndarray):
        a = sys.modules["numpy"].ascontiguousarray(obj)
        h.update(f"a{a.dtype.str}{a.shape}:".encode() + a.tobytes())
    else:
        raise TypeError(f"content_digest cannot hash a {type(obj).__name__}")


def content_digest(obj: Any) -> str:
    """sha256 of a nested structure of dicts, lists, tuples, tensors, arrays and scalars: the same
    for the same content, however it was stored (see the module docstring)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sealed(obj: dict) -> dict:
    """`obj` with the digest of its content under DIGEST_KEY (an old one is replaced)."""
    if not isinstance(obj, dict):
        raise TypeError(f"only a dict can carry its digest; got {type(obj).__name__}")
    body = {k: v for k, v in obj.items() if k != DIGEST_KEY}
    return {**body, DIGEST_KEY: content_digest(body)}


def unseal(obj: Any, path: Path, fix: str, *, required: bool | None) -> Any:
    """`obj` without its digest, after checking it against the content. A file with no digest is
    refused when `required`, else returned as it is (written before digests existed)."""
    if not isinstance(obj, dict) or DIGEST_KEY not in obj:
        if required:
            raise DigestMismatchError(f"{path} carries no digest of its content (written by another version or "
                                      f"another program), so it cannot be checked; it is not used. {fix}")
        return obj
    body = {k: v for k, v in obj.items() if k != DIGEST_KEY}
    try:
        digest = content_digest(body)
    except TypeError as err:
        raise DigestMismatchError(f"{path} holds content that cannot be checked ({err}). {fix}") from err
    if digest != obj[DIGEST_KEY]:
        raise DigestMismatchError(f"{path} is damaged: its content differs from the digest written with it "
                                  f"(a changed byte or an edit). {fix}")
    return body


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

    def held_elsewhere(self) -> bool:
        """Whether another live process (on this host, or any process on another host) owns the directory."""
        owner = self._owner()
        if not owner or self.held:
            return False
        if owner.get("host") not in (None, socket.gethostname()):
            return True
        pid = owner.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)

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
