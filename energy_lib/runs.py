"""The run store: one directory per training config, resumable, never silently overwritten.

Layout of `$ENERGY_RUNS/<method>-<dataset>-<model>-n<n_train>-e<epochs>-<hash>/` (or `<name>/`):

    config.json     the TrainConfig (the directory's identity; a different config is refused),
                    written atomically before anything else
    LOCK            while a process trains the run: its pid and host (one process per run)
    metrics.jsonl   one record per completed epoch (training stats + energy tracking)
    samples.jsonl   per-sample energies of the tracked training images, one line per epoch
    env.json        torch / CUDA / GPU, precision flags, git commit, one entry per training session
    last.pt         model, optimizer, scheduler, epoch, RNG states, best metric, metrics (resume point)
    best.pt         the same at the selected epoch (see config.BEST_WINDOW)
    DONE            written when all epochs are finished: the run's manifest, the sha256 of its text
                    records (`MANIFEST_FILES`) as they were when it finished

Checkpoints are git-ignored; the json files are small and may be committed. Every file is
written through `fileio` (a temporary file in the same directory moved into place with
os.replace), so a crash mid-write leaves the previous version intact; temporaries of killed
writers are removed on the next open. last.pt is the source of truth: the jsonl files are
rewritten from it after every epoch, and a missing or unreadable config.json, metrics.jsonl,
samples.jsonl or tracking.json is rebuilt from the checkpoint (with a warning). Every checkpoint
carries its config, compared with the run's on every resume and load. Only finite weights and
metrics are ever saved (train.py checks them first).

Nothing stored is used unverified. Checkpoints load with `weights_only=True` (no file runs code)
and carry the digest of their content (`fileio` seals them), checked on every load. The text
records are checked before use: a finished run's against the digests in DONE, an unfinished run's
rows against last.pt's (the same rows). A record that differs (a changed value, a cut or empty file,
another run's copy) is rebuilt from last.pt, with a warning, and checked again; without last.pt the
error names the file and a fix that works. A run finished before digests existed (its DONE holds
only a time; its checkpoints no digest: e.g. the committed reference run) is legacy: its
checkpoints load as they are (weights only, config compared), its rows are checked against the
rows its checkpoints hold (last.pt's; without last.pt, best.pt's up to its epoch), and nothing is
written into it but a record rebuilt from last.pt (its DONE is never upgraded: that would vouch for
files nobody checked). A directory with no checkpoint has nothing to check its rows against.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import warnings
from pathlib import Path

from . import fileio
from .config import FIELDS_ADDED_LATER, ConfigError, TrainConfig, reference_config, reference_root, runs_root
from .fileio import CorruptFileError, StoreError, atomic_torch_save, atomic_write_text  # noqa: F401
from .names import DATASETS, METHOD_USES
from .provenance import TRAINING_CODE, code_digest, code_digests, git_state, training_code_status

REPO = Path(__file__).resolve().parent.parent
# torch is imported where it is used: `python -m energy_lib train --dry-run` and its errors stay fast.
CHECKPOINT_KEYS = {"model", "optimizer", "scheduler", "epoch", "rng", "best", "metrics", "config"}
# The text records DONE holds the digest of (the checkpoints carry their own).
MANIFEST_FILES = ("metrics.jsonl", "samples.jsonl", "tracking.json")
# jsonl file -> the checkpoint entry that holds the same rows
ROWS_IN_CHECKPOINT = {"metrics.jsonl": "metrics", "samples.jsonl": "samples"}


class RunError(StoreError):
    """Base class for run-store problems; the message names the file and the fix."""


class ConfigMismatchError(RunError):
    pass


class CheckpointError(RunError):
    pass


# Fields that do not define a run: `name` only picks the directory, and `device` only where it
# runs (a run trained on one device is reused, or resumed, on another).
NOT_IDENTITY = ("name", "device")


def identity(cfg: TrainConfig | dict) -> dict:
    """The fields that define a run, from a config or a stored config.json. A field added after runs
    were stored counts only away from its default (`config.FIELDS_ADDED_LATER`): a config.json
    written before the field existed is the same run as one that holds it at its default."""
    values = cfg if isinstance(cfg, dict) else cfg.to_dict()
    return json.loads(json.dumps({k: v for k, v in values.items() if k not in NOT_IDENTITY
                                  and not (k in FIELDS_ADDED_LATER and v == FIELDS_ADDED_LATER[k])}))


def config_hash(cfg: TrainConfig) -> str:
    """Short hash of the fields that define the run (`identity`)."""
    values = identity(cfg)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


def run_dir(cfg: TrainConfig, root: Path | None = None) -> Path:
    """The run's directory in the store `root` (default: `runs_root()`)."""
    root = Path(root) if root is not None else runs_root()
    if cfg.name:
        return root / cfg.name
    n = "all" if cfg.n_train is None else cfg.n_train
    return root / f"{cfg.method}-{cfg.dataset}-{cfg.model}-n{n}-e{cfg.epochs}-{config_hash(cfg)}"


def _difference(stored: dict, wanted: dict) -> dict:
    a, b = identity(stored), identity(wanted)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _checkpoint_fix(path: Path) -> str:
    if path.name == "last.pt" and not (path.parent / "DONE").is_file():
        return f"Delete it to restart this run from epoch 0 (or delete the run directory {path.parent})."
    return f"Delete the run directory {path.parent} to retrain the run."


def load_checkpoint(path: Path) -> dict:
    """torch.load with a clear error (naming the file and a fix that works) for a corrupt,
    truncated or foreign file."""
    path = Path(path)
    try:   # weights only; a digest is checked when the checkpoint has one (legacy ones have none)
        ckpt = fileio.load_torch(path, fix=_checkpoint_fix(path), sealed=None)
    except CorruptFileError as err:
        raise CheckpointError(f"checkpoint {err}") from err.__cause__
    missing = CHECKPOINT_KEYS - set(ckpt if isinstance(ckpt, dict) else {})
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}: not a run checkpoint of this "
                              f"version. {_checkpoint_fix(path)}")
    return ckpt


def environment(device: torch.device, cfg: TrainConfig) -> dict:
    import torch

    env = {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(), "platform": platform.platform(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "precision": cfg.precision, "channels_last": cfg.channels_last, "compile": cfg.compile,
        "autocast": "bf16 training forward/backward; attacks' perturbation fp32; CE/KL/logsumexp on fp32 logits"
                    if cfg.precision == "bf16" else "none (fp32)",
        "evaluation_precision": "fp32",
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "data_on_device": True,
        "git": git_state(),
        "training_code": code_digest(TRAINING_CODE),
        "training_code_files": code_digests(TRAINING_CODE),
    }
    return env


def _rng_state() -> dict:
    import torch

    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Run:
    """One run directory: read its records, load its models; `train.fit` writes through it."""

    def __init__(self, config: TrainConfig, directory: Path):
        self.config, self.dir = config, Path(directory)
        self._lock = fileio.RunLock(self.dir)
        self._checked: dict[str, tuple] = {}   # record -> the files' stat when it was last verified

    # ---- reading
    @property
    def done(self) -> bool:
        return (self.dir / "DONE").is_file()

    def require_done(self, purpose: str) -> None:
        if not self.done:
            raise RunError(f"run {self.dir} is not finished (no DONE file); finish it with train_or_load(config) "
                           f"{purpose}")

    def _checkpoint(self, which: str) -> dict:
        """best.pt / last.pt, refused when it was made by another config."""
        path = self.dir / f"{which}.pt"
        ckpt = load_checkpoint(path)
        diff = _difference(ckpt["config"], self.config.to_dict())
        if diff:
            raise ConfigMismatchError(
                f"checkpoint {path} was made by a different config than this run's (checkpoint vs run: {diff}); "
                f"it is not used. Delete it (or the run directory {self.dir}) to retrain this config, or load "
                "it with its own config.")
        return ckpt

    def _rebuild_rows(self, filename: str, reason: str) -> tuple[list, bool] | None:
        """(the rows of last.pt, the source of truth; whether they were written to `filename`): not
        written while another live process trains the run (it rewrites the file itself). None without
        a last.pt that holds those rows."""
        if not (self.dir / "last.pt").is_file():
            return None
        ckpt = self._checkpoint("last")
        if ROWS_IN_CHECKPOINT[filename] not in ckpt:
            return None
        rows = json.loads(json.dumps(ckpt[ROWS_IN_CHECKPOINT[filename]]))
        if self._lock.held_elsewhere():
            warnings.warn(f"{reason}; read the rows of last.pt (epoch {ckpt['epoch']}) instead, the file is left to "
                          "the process training the run", stacklevel=4)
            return rows, False
        self._write_jsonl(filename, rows)
        warnings.warn(f"{reason}; rebuilt {filename} of {self.dir} from last.pt (epoch {ckpt['epoch']})",
                      stacklevel=4)
        return rows, True

    def done_manifest(self) -> dict | None:
        """{file: sha256} of the text records when the run finished (DONE); None when it is not finished
        or finished before DONE held digests (legacy: its DONE holds only a time)."""
        path = self.dir / "DONE"
        if not path.is_file() or not fileio.read_text(path).lstrip().startswith("{"):
            return None
        fix = (f"delete {path}: the next train_or_load (same config) finishes the run again from last.pt "
               "without retraining an epoch")
        done = fileio.read_json(path, fix=fix, sealed=True)
        if not isinstance(done.get("sha256"), dict):
            raise CorruptFileError(f"{path} holds no manifest of the run's records; {fix}")
        return done["sha256"]

    def _rows_problem(self, filename: str, rows: list, manifest: dict | None) -> str | None:
        """What is wrong with a record's rows (read from `filename`), or None when they check out: against
        the digest in DONE (`manifest`), else against the rows of last.pt (else best.pt's, up to its epoch)."""
        path = self.dir / filename
        if manifest is not None and filename in manifest:
            if not path.is_file() or fileio.file_digest(path) != manifest[filename]:
                return (f"{path} is {'missing' if not path.is_file() else 'not the file the run finished with'} "
                        f"(its sha256 differs from the one in {self.dir / 'DONE'}: a changed, cut or swapped file)")
            return None
        for which in ("last", "best"):
            if (self.dir / f"{which}.pt").is_file():
                ckpt = self._checkpoint(which)
                if ROWS_IN_CHECKPOINT[filename] not in ckpt:
                    return None   # an old checkpoint without these rows: nothing to check them against
                stored = json.loads(json.dumps(ckpt[ROWS_IN_CHECKPOINT[filename]]))
                seen = rows if which == "last" else rows[:len(stored)]
                if seen != stored:
                    return (f"{path} does not hold the {len(stored)} rows of {which}.pt (it has {len(rows)}"
                            f"{', some of them different' if len(rows) >= len(stored) else ''}): a changed, cut or "
                            "swapped file")
                return None
        return None   # no checkpoint: nothing to check the rows against

    def _stat(self, *names: str) -> tuple:
        return tuple((p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino) if p.is_file() else None
                     for p in (self.dir / n for n in names))

    def _records(self, filename: str) -> list:
        """The rows of metrics.jsonl / samples.jsonl, verified (see the module docstring)."""
        path = self.dir / filename
        watched = (filename, "DONE", "last.pt", "best.pt")
        manifest = self.done_manifest()   # a damaged DONE is an error naming it, never a reason to rewrite
        try:
            rows = fileio.read_jsonl(path) if path.is_file() else []
            if self._checked.get(filename) == self._stat(*watched):
                return rows
            problem = self._rows_problem(filename, rows, manifest)
        except CorruptFileError as err:
            problem = str(err)
        if problem is not None:
            if not self.done and not (self.dir / "last.pt").is_file():
                raise RunError(f"{problem}; the run has no last.pt to rebuild it from: delete {path} (or the run "
                               f"directory {self.dir}) and train the run")
            rebuilt = self._rebuild_rows(filename, problem)
            if rebuilt is None:
                raise RunError(f"{problem}; there is no last.pt to rebuild it from: restore the file from where it "
                               f"came (`git checkout -- {path}` for a committed run) or delete the run directory "
                               f"{self.dir} to retrain the run")
            rows, written = rebuilt
            if not written:
                return rows   # last.pt's rows (checked by its digest); the live trainer rewrites the file
            again = self._rows_problem(filename, rows, manifest)
            if again is not None:
                raise RunError(f"{again}, even rebuilt from last.pt: delete the run directory {self.dir} to retrain "
                               "the run")
        self._checked[filename] = self._stat(*watched)
        return rows

    @property
    def metrics(self):
        """One row per completed epoch (pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self._records("metrics.jsonl"))

    @property
    def tracked_samples(self):
        """Per-sample energies of the tracked training images, long format:
        epoch, sample, E_nat, E_adv, Ey_nat, Ey_adv, correct_nat, correct_adv (+ dE, dEy)."""
        import pandas as pd

        frames = []
        for rec in self._records("samples.jsonl"):
            epoch = rec.pop("epoch")
            frame = pd.DataFrame(rec)
            frame.insert(0, "sample", range(len(frame)))
            frame.insert(0, "epoch", epoch)
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if len(out):
            out["dE"] = out["E_nat"] - out["E_adv"]
            out["dEy"] = out["Ey_nat"] - out["Ey_adv"]
            if "E_adv_pgd" in out:   # the same images under the common test attack (runs tracked since issue 23)
                out["dE_pgd"] = out["E_nat"] - out["E_adv_pgd"]
                out["dEy_pgd"] = out["Ey_nat"] - out["Ey_adv_pgd"]
        return out

    @property
    def env(self) -> dict:
        path = self.dir / "env.json"
        return fileio.read_json(path, fix=f"it only records the training sessions: move it away (e.g. to "
                                          f"{path.name}.corrupt) and the next session starts a new one") \
            if path.is_file() else {}

    @property
    def tracking_attack(self) -> dict:
        path = self.dir / "tracking.json"
        try:
            if not path.is_file():
                return self._rebuild_tracking("it is missing")
            expected = (self.done_manifest() or {}).get("tracking.json")
            if expected is not None and fileio.file_digest(path) != expected:
                return self._rebuild_tracking(f"it is not the file the run finished with (its sha256 differs from "
                                              f"the one in {self.dir / 'DONE'})")
            return fileio.read_json(path)
        except CorruptFileError as err:
            return self._rebuild_tracking(str(err))

    def _rebuild_tracking(self, reason: str) -> dict:
        from .train import tracking_attack_description   # a function of the config alone

        description = tracking_attack_description(self.config)
        if self.dir.is_dir() and ((self.dir / "last.pt").is_file() or self.done):
            atomic_write_text(self.dir / "tracking.json", json.dumps(description, indent=2) + "\n")  # as write_logs
            warnings.warn(f"{self.dir / 'tracking.json'}: {reason}; rebuilt from the run's config", stacklevel=3)
        return description

    def load_model(self, which: str = "best", device: str | torch.device = "cpu") -> torch.nn.Module:
        """The model of best.pt or last.pt, in eval mode."""
        from . import data, models

        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last'; got {which!r}")
        path = self.dir / f"{which}.pt"
        if not path.is_file():
            fix = (f"delete the run directory {self.dir} to retrain the run" if self.done else
                   "call train_or_load(config) to train it")
            raise RunError(f"{path} does not exist: the run has not reached that point; {fix}.")
        ckpt = self._checkpoint(which)
        model = models.build_model(self.config.model, data.dataset_info(self.config.dataset).num_classes)
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()

    def checkpoint_info(self, which: str = "best") -> dict:
        ckpt = self._checkpoint(which)
        return {"epoch": ckpt["epoch"], "best": ckpt["best"]}

    # ---- the stored config
    def stored_config(self) -> dict | None:
        """config.json; when it is missing or unreadable but a checkpoint exists, rebuilt from the
        checkpoint (with a warning; an unreadable file is kept as config.json.corrupt). None for a
        directory that holds neither."""
        path = self.dir / "config.json"
        problem = None
        if path.is_file():
            try:
                stored = fileio.read_json(path)
                if isinstance(stored, dict):
                    return stored
                problem = CorruptFileError(f"{path} holds no config")
            except CorruptFileError as err:
                problem = err
        for which in ("last", "best"):
            ckpt_path = self.dir / f"{which}.pt"
            if ckpt_path.is_file():
                stored = load_checkpoint(ckpt_path)["config"]
                if problem is not None:
                    os.replace(path, path.with_name("config.json.corrupt"))
                atomic_write_text(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")
                warnings.warn(f"{path}: {problem or 'it was missing'}; rebuilt from {ckpt_path.name}"
                              + (" (the unreadable file is kept as config.json.corrupt)" if problem else ""),
                              stacklevel=3)
                return stored
        if problem is not None:
            raise RunError(f"{problem}, and the run has no checkpoint to rebuild it from: delete the run "
                           f"directory {self.dir} to train the run again") from problem
        return None

    def check_config(self) -> dict | None:
        """Refuse a directory (config.json or its checkpoint) made by another config; returns the
        stored config (None when there is none yet)."""
        stored = self.stored_config()
        if stored is not None:
            diff = _difference(stored, self.config.to_dict())
            if diff and self._checkpoints_agree():
                raise ConfigMismatchError(
                    f"{self.dir / 'config.json'} holds another config than the run's checkpoints (config.json vs "
                    f"requested: {diff}); it is not used. Delete {self.dir / 'config.json'} alone: it is rebuilt from "
                    "the checkpoint, which holds the requested config.")
            if diff:
                raise ConfigMismatchError(
                    f"run directory {self.dir} was created with a different config (stored vs requested: "
                    f"{diff}); it is not overwritten. Use another `name`, or delete that directory.")
        return stored

    def _checkpoints_agree(self) -> bool:
        """Whether the run has a checkpoint and every one holds the requested config (so a differing
        config.json is the odd one out)."""
        found = [self.dir / f"{w}.pt" for w in ("last", "best") if (self.dir / f"{w}.pt").is_file()]
        try:
            return bool(found) and all(not _difference(load_checkpoint(p)["config"], self.config.to_dict())
                                       for p in found)
        except RunError:
            return False

    # ---- writing (used by train.fit)
    def open(self) -> "Run":
        """Own the directory (a lock: one process per run), then write config.json (atomically,
        before anything else) or check that the existing one holds this very config; temporaries
        left by killed writers are removed. Idempotent; `close` releases the lock."""
        if int(os.environ.get("RANK", "0")) != 0:   # torchrun: rank 0 owns and writes the directory
            if self.dir.is_dir():
                self.check_config()
            return self
        if self._lock.held:
            return self
        fileio.make_dir(self.dir)
        self._lock.acquire()
        try:
            if self.check_config() is None:
                atomic_write_text(self.dir / "config.json", self.config.to_json() + "\n")
            for tmp in fileio.clean_stale_temporaries(self.dir):
                warnings.warn(f"removed {tmp}, left by an interrupted write", stacklevel=2)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._lock.release()

    def restore(self, model, opt, sched) -> dict:
        """Load last.pt into model/optimizer/scheduler and the RNG; {} when there is none."""
        path = self.dir / "last.pt"
        if not path.is_file():
            return {}
        ckpt = self._checkpoint("last")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        return ckpt

    def save_checkpoint(self, filename, model, opt, sched, epoch, best, metrics, samples) -> None:
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "epoch": epoch, "rng": _rng_state(),
                           "best": dict(best), "metrics": list(metrics), "samples": list(samples),
                           "config": self.config.to_dict()}, self.dir / filename, seal=True)

    def _write_jsonl(self, filename: str, rows) -> None:
        atomic_write_text(self.dir / filename, "".join(json.dumps(r) + "\n" for r in rows))

    def write_logs(self, metrics, samples, tracking_attack: dict) -> None:
        self._write_jsonl("metrics.jsonl", metrics)
        self._write_jsonl("samples.jsonl", samples)
        atomic_write_text(self.dir / "tracking.json", json.dumps(tracking_attack, indent=2) + "\n")

    def write_env(self, device, resumed_from: int, **facts) -> None:
        path = self.dir / "env.json"
        try:
            env = self.env
        except CorruptFileError as err:   # a record of sessions only: keep the bad copy, start anew
            os.replace(path, path.with_name("env.json.corrupt"))
            warnings.warn(f"{err.args[0].split(';')[0]}; kept as env.json.corrupt, a new env.json starts with "
                          "this session", stacklevel=2)
            env = {}
        sessions = env.get("sessions", [])
        sessions.append({**environment(device, self.config), "resumed_from_epoch": resumed_from, **facts})
        atomic_write_text(path, json.dumps({"sessions": sessions}, indent=2) + "\n")

    def mark_done(self) -> None:
        """Write DONE, the run's manifest: the digests of its text records, rewritten first from last.pt
        (so the manifest vouches for last.pt's rows, whatever a reader may have rewritten meanwhile)."""
        ckpt = self._checkpoint("last")
        for filename, key in ROWS_IN_CHECKPOINT.items():
            self._write_jsonl(filename, ckpt.get(key, []))
        digests = {name: fileio.file_digest(self.dir / name) for name in MANIFEST_FILES if (self.dir / name).is_file()}
        fileio.write_json(self.dir / "DONE", {"finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                              "epoch": ckpt["epoch"], "sha256": digests}, seal=True)

    def kept_epoch(self) -> int | None:
        """The epoch last.pt holds (None when there is no readable last.pt)."""
        try:
            return self._checkpoint("last")["epoch"] if (self.dir / "last.pt").is_file() else None
        except RunError:
            return None

    def __repr__(self) -> str:
        return f"Run({self.dir}, done={self.done}, epochs={len(self.metrics)}/{self.config.epochs})"


def train_or_load(cfg: TrainConfig, progress: bool = True, stop_after: int | None = None,
                  root: Path | None = None, should_stop=None) -> Run:
    """The finished run if it exists; else resume it from last.pt; else train it from scratch.

    stop_after: train at most this many more epochs now (the run stays resumable).
    should_stop: asked before each epoch; True stops there (the run stays resumable).
    Hyperparameters the method does not read are reset first (`TrainConfig.canonical`).
    The directory is created (and locked) only once the data and the optimizer are ready
    (`train.fit`), so a config that cannot run leaves nothing behind."""
    cfg = cfg.canonical()
    run = Run(cfg, run_dir(cfg, root))
    if run.dir.is_dir():
        run.check_config()
    if not run.done:
        from .train import fit

        try:
            fit(cfg, run, progress=progress, stop_after=stop_after, should_stop=should_stop)
        finally:
            run.close()
    return run


def reference_run() -> Run | None:
    """The committed reference robust run (`config.REFERENCE_TRAINING`, trained by `make reference`),
    or None when runs/reference/ does not hold it finished."""
    cfg = reference_config().canonical()
    run = Run(cfg, run_dir(cfg, reference_root()))
    if not run.done:
        return None
    try:
        run.check_config()
    except StoreError as err:   # e.g. a changed TrainConfig default: leave it out, never crash a chapter
        warnings.warn(f"the reference run is not used: {err}", stacklevel=2)
        return None
    return run


def is_reference(run: Run) -> bool:
    """Whether `run` is the committed reference run (runs/reference/, `make reference`)."""
    return run.dir.resolve().parent == reference_root().resolve()


def training_images(cfg: TrainConfig) -> str:
    """The images a run trained on, and those held out to select best.pt."""
    if cfg.n_train is None:
        return (f"all {DATASETS[cfg.dataset].train_size:,} {cfg.dataset} training images less the {cfg.n_val:,} held "
                "out to select best.pt")
    return f"{cfg.n_train:,} {cfg.dataset} training images ({cfg.n_val:,} more held out to select best.pt)"


def training_setup(cfg: TrainConfig) -> str:
    """What `describe` says of a run's training, less its method and seed: "small_cnn, 150 epochs on
    1,000 cifar10 training images (...), batch size 64, PGD-5 training attack at ε = 8/255"."""
    attack = (f"PGD-{cfg.attack_steps} training attack" if "attack_steps" in METHOD_USES[cfg.method]
              else "single-step training attack")
    return (f"{cfg.model}, {cfg.epochs} epochs on {training_images(cfg)}, batch size {cfg.batch_size}, {attack} at "
            f"ε = {cfg.eps * 255:g}/255")


def describe(run: Run, *, reference_note: bool = True) -> str:
    """The one phrase saying how a run was trained, for a chapter's prose (chapters 1 and 5); plain
    text (no markdown), since chapters glue it as text. `reference_note`: say so when `run` is the
    committed reference run (chapter 5 says it in its own sentence)."""
    cfg = run.config
    text = f"{cfg.method.upper()} on {training_setup(cfg)}, seed {cfg.seed}"
    if reference_note and is_reference(run):
        text += " (the committed reference run, trained by make reference)"   # a reader's note, not an instruction
    note = code_note(run)
    return f"{text}; {note}" if note else text


def code_note(run: Run) -> str:
    """The sentence saying which training code trained `run` when it is not today's (other code, or
    a run from before the digest was recorded: `provenance.training_code_status` in its reader's
    form); '' when today's code trained it or it was never trained. A stored run is reused as
    recorded, never silently."""
    sessions = run.env.get("sessions", [])
    if not sessions:
        return ""
    status, sentence = training_code_status(sessions, for_reader=True)
    return "" if status == "same" else sentence


def finished_runs(root: Path | None = None) -> list[Run]:
    """Every finished training run in the store, oldest first (by completion time; runs that finished
    in the same instant by directory name).

    The default store (root None) also lists the committed reference run (`reference_run`),
    wherever $ENERGY_RUNS points. A directory whose config is not a TrainConfig (attack-energy
    caches, bench records) is not a training run and is passed over; a training run whose config
    cannot be read (nor rebuilt from its checkpoint) is skipped with a warning naming the file."""
    directories = []
    if root is None:
        reference = reference_run()
        directories = [reference.dir / "DONE"] if reference is not None else []
    root = Path(root) if root is not None else runs_root()
    found = []
    # sorted: the filesystem's order is arbitrary, and runs finished in the same instant keep this one
    for directory in dict.fromkeys(p.resolve() for p in [*sorted(root.glob("*/DONE")), *directories]):
        run_path = directory.parent
        try:
            stored = Run(TrainConfig(), run_path).stored_config()
        except StoreError as err:
            warnings.warn(f"skipped the run {run_path}: {err}", stacklevel=2)
            continue
        if not isinstance(stored, dict) or "method" not in stored:
            continue  # not a training run
        try:
            cfg = TrainConfig.from_dict(stored)
        except (ConfigError, TypeError) as err:
            warnings.warn(f"skipped the run {run_path}: its config.json is not a TrainConfig of this version "
                          f"({err})", stacklevel=2)
            continue
        found.append((directory.stat().st_mtime, Run(cfg, run_path)))
    return [run for _, run in sorted(found, key=lambda item: item[0])]


def selected_metrics(run: Run):
    """The metrics row (pandas Series) of the epoch best.pt holds: what a chapter that loads
    best.pt quotes (not the last epoch's). The epoch follows `train.best_epoch`'s rule, the one
    `fit` saved best.pt with."""
    from .train import best_epoch

    metrics = run.metrics
    epoch = best_epoch(metrics["val_acc_adv"], run.config.epochs) if not metrics.empty else None
    if epoch is None and run.done:   # finished, yet no row in the window: its records, not its training, are short
        raise RunError(f"run {run.dir} is finished but its metrics.jsonl holds no epoch of the selection window; "
                       f"restore that file (`git checkout -- {run.dir / 'metrics.jsonl'}` for a committed run) or "
                       f"delete the run directory {run.dir} to retrain the run")
    if epoch is None:
        raise RunError(f"run {run.dir} has no epoch in its selection window yet, so no best.pt; finish it "
                       "with train_or_load(config)")
    return metrics[metrics["epoch"] == epoch].iloc[0]


def robust_runs(finished: list[Run], dataset: str) -> list[Run]:
    """The finished multi-step adversarial-training runs on `dataset`, best first by the validation
    PGD accuracy best.pt was selected on (never by a test accuracy). `finished`: e.g. `finished_runs()`."""
    from .losses import MULTI_STEP_METHODS

    found = [r for r in finished if r.config.dataset == dataset and r.config.method in MULTI_STEP_METHODS
             and not r.metrics.empty]
    return sorted(found, key=lambda r: selected_metrics(r)["val_acc_adv"], reverse=True)
