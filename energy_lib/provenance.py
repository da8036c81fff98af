"""Where a record was made: the code's git state and the machine. A low module: it imports nothing
of energy_lib (torch only inside `machine`), so any record writer, and tools/book.py, can use it.

`git_state` is the one `{"commit", "dirty"}` of every record (run env.json, sizing points, bench and
precision records, the book's execution and build records, hence the budget records). `dirty` means
"a tracked file differs from the commit" over the whole working tree (staged or not, deletions
included), but:

* untracked files never count: the run store writes new, not yet committed records beside tracked
  ones (runs/bench/*.json, runs/sizing/), and an untracked file cannot change what the tracked code
  does unless a tracked file changed too (which counts);
* the repository's run store `runs/` (`RUN_STORE`) is left out by default: it is the data the code
  writes, not the code (a sizing sweep rewrites the tracked runs/sizing/sizing.json between its
  points; `make reference` rewrites the tracked reference run). The book build, whose pages show
  that tracked data, passes `exclude=()`.

Records written before this module scoped `dirty` to energy_lib/ (runs, sizing, bench) or counted
untracked files (the book); their `{"commit", "dirty"}` keys are the same.

`machine` is the one description of the machine (`MACHINE_KEYS`); `machine_view` reads an older
record's description (sizing: cpu_count/cpus_available/processor; bench and precision: cpu/threads;
budget: cuda as a bool) under today's keys.
"""
from __future__ import annotations

import ast
import hashlib
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
# The code that decides what a training run computes: a run records its digest (runs.environment),
# and a reader of a stored run is told when today's code differs (runs.code_check).
TRAINING_CODE = ("train.py", "losses.py", "attacks.py", "models.py", "data.py", "energy.py", "bits.py",
                 "metrics/robust.py")


def _code_tree(source: str) -> str:
    """The syntax tree of `source` without docstrings (comments are not in it either)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_digest(files: tuple[str, ...], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 of the code of `files` (paths relative to energy_lib/), read at every call: an edited
    file is a new digest, while an edit of a docstring or a comment keeps it."""
    h = hashlib.sha256()
    for name in files:
        source = (Path(package_dir) / name).read_text(encoding="utf-8")
        h.update(name.encode() + b"\0" + _code_tree(source).encode() + b"\0")
    return h.hexdigest()
RUN_STORE = ("runs",)   # relative to the repository: data the code writes, left out of `dirty`


def git_state(root: Path = REPO, *, exclude: tuple[str, ...] = RUN_STORE) -> dict:
    """`{"commit": HEAD's sha, "dirty": whether a tracked file outside `exclude` differs from it}`
    (see the module docstring); both None outside a git checkout or without git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                     *(f":(exclude){path}" for path in exclude))
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):   # no git on this machine, or it hung
        return {"commit": None, "dirty": None}


MACHINE_KEYS = ("cpu_model", "cpu_count", "cpus", "torch_threads", "python", "torch", "cuda", "device", "gpu")
# older records' names for them (sizing.machine, bench.hardware); budget's old "cuda" was a bool
OLD_MACHINE_KEYS = {"processor": "cpu_model", "cpu": "cpu_model", "cpus_available": "cpus", "threads": "torch_threads"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine(device=None) -> dict:
    """What a time or a figure depends on, under `MACHINE_KEYS`: the CPU model, the machine's logical
    CPUs (`cpu_count`) and those this process may use (`cpus`, its affinity), torch's threads, the
    Python / torch / CUDA (torch's build, None without) versions, the device measured on (None when
    not one) and the GPU's name (of `device` when it is a GPU; with no device, of the first GPU; else
    None)."""
    import torch

    cpus = usable_cpus()
    device = torch.device(device) if device is not None else None
    if device is not None:
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    else:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "cpus": cpus,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": str(device) if device is not None else None, "gpu": gpu}


def machine_view(info: dict | None) -> dict:
    """A record's machine description under today's keys: older names mapped (`OLD_MACHINE_KEYS`; a
    missing or None `cpus` falls back to `cpu_count`), budget's old boolean `cuda` shown as
    `cuda_available`; other keys kept as they are, none invented."""
    info = dict(info or {})
    view = {k: v for k, v in info.items() if k not in OLD_MACHINE_KEYS and not (k == "cuda" and isinstance(v, bool))}
    for old, new in OLD_MACHINE_KEYS.items():
        if old in info:
            view.setdefault(new, info[old])   # today's key wins over an old one of the same record
    if isinstance(info.get("cuda"), bool):
        view["cuda_available"] = info["cuda"]
    if view.get("cpus") is None and view.get("cpu_count") is not None:
        view["cpus"] = view["cpu_count"]
    return view


def machine_label(info: dict | None) -> str:
    """A record's machine in a table cell: the GPU's name, else `CPU (<torch threads> threads)`."""
    view = machine_view(info)
    return view.get("gpu") or f"CPU ({view.get('torch_threads')} threads)"


def code_digests(files: tuple[str, ...], package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """{file: `code_digest` of that file alone}: which of the files changed, not only whether."""
    return {name: code_digest((name,), package_dir) for name in files}


def training_code_status(sessions: list[dict], files: tuple[str, ...] = TRAINING_CODE, *,
                         for_reader: bool = False) -> tuple[str, str]:
    """Whether a stored run was trained by today's training code: ("same" | "different" | "unknown",
    sentence). `sessions`: the run's env.json sessions (each records `training_code` and `git`).
    A run is reused either way (its identity is its config); the sentence tells a reader when the
    code that trained it differs from the code that would train it now, or was a dirty tree.
    `for_reader`: the book's form, without the digests and the operator's instruction to retrain."""
    digests = {s.get("training_code") for s in sessions}
    dirty = any((s.get("git") or {}).get("dirty") for s in sessions)
    commits = sorted({(s.get("git") or {}).get("commit") or "?" for s in sessions})
    where = f"commit {', '.join(c[:8] for c in commits)}" + (" with uncommitted changes" if dirty else "")
    if not sessions or None in digests:
        return "unknown", (f"trained at {where} before runs recorded the digest of their training code: "
                           "whether today's code would train it the same cannot be checked")
    now = code_digest(files)
    if digests == {now}:
        return "same", f"trained at {where} by the training code of today (digest {now[:12]})"
    today = code_digests(files)
    changed = sorted({name for s in sessions for name, d in (s.get("training_code_files") or {}).items()
                      if today.get(name) != d})
    which = f" ({', '.join(changed)} changed since)" if changed else ""
    if for_reader:
        return "different", f"trained at {where} by other training code{which}: reused as recorded"
    return "different", (f"trained at {where} by other training code{which} (digest "
                         f"{', '.join(sorted(d[:12] for d in digests))}; today {now[:12]}): reused as recorded; delete its "
                         "directory to retrain it with today's code")
