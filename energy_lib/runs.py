"""The run store: one directory per training config, resumable, never silently overwritten.

Layout of `$ENERGY_RUNS/<method>-<dataset>-<model>-n<n_train>-e<epochs>-<hash>/` (or `<name>/`):

    config.json     the TrainConfig (the directory's identity; a different config is refused)
    metrics.jsonl   one record per completed epoch (training stats + energy tracking)
    samples.jsonl   per-sample energies of the tracked training images, one line per epoch
    env.json        torch / CUDA / GPU, precision flags, git commit, one entry per training session
    last.pt         model, optimizer, scheduler, epoch, RNG states, best metric, metrics (resume point)
    best.pt         the same at the selected epoch (see train.BEST_WINDOW)
    DONE            written when all epochs are finished

Checkpoints are git-ignored; the json files are small and may be committed. Every file is
written to a temporary file in the same directory and moved into place with os.replace, so a
crash mid-write leaves the previous version intact. last.pt is the source of truth: the jsonl
files are rewritten from it after every epoch.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from .config import TrainConfig, runs_root

REPO = Path(__file__).resolve().parent.parent


class RunError(RuntimeError):
    """Base class for run-store problems; the message names the file and the fix."""


class ConfigMismatchError(RunError):
    pass


class CheckpointError(RunError):
    pass


# Fields that do not define a run: `name` only picks the directory, and `device` only where it
# runs (a run trained on one device is reused, or resumed, on another).
NOT_IDENTITY = ("name", "device")


def identity(cfg: TrainConfig | dict) -> dict:
    """The fields that define a run, from a config or a stored config.json."""
    values = cfg if isinstance(cfg, dict) else cfg.to_dict()
    return {k: v for k, v in values.items() if k not in NOT_IDENTITY}


def config_hash(cfg: TrainConfig) -> str:
    """Short hash of the fields that define the run (`identity`)."""
    values = identity(cfg)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


def run_dir(cfg: TrainConfig) -> Path:
    if cfg.name:
        return runs_root() / cfg.name
    n = "all" if cfg.n_train is None else cfg.n_train
    return runs_root() / f"{cfg.method}-{cfg.dataset}-{cfg.model}-n{n}-e{cfg.epochs}-{config_hash(cfg)}"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode()))


def atomic_torch_save(obj, path: Path) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path) -> dict:
    """torch.load with a clear error for a corrupt or truncated file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}). Delete it to "
            f"retrain from scratch (or delete the whole run directory {path.parent})."
        ) from err
    missing = {"model", "optimizer", "scheduler", "epoch", "rng", "best", "metrics"} - set(ckpt if isinstance(ckpt, dict) else {})
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}: not a run checkpoint of this "
                              f"version. Delete it to retrain from scratch.")
    return ckpt


def _git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--", "energy_lib"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment(device: torch.device, cfg: TrainConfig) -> dict:
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
        "git": _git_commit(),
    }
    return env


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Run:
    """One run directory: read its records, load its models; `train.fit` writes through it."""

    def __init__(self, config: TrainConfig, directory: Path):
        self.config, self.dir = config, Path(directory)

    # ---- reading
    @property
    def done(self) -> bool:
        return (self.dir / "DONE").is_file()

    @property
    def metrics(self):
        """One row per completed epoch (pandas DataFrame)."""
        import pandas as pd

        path = self.dir / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
        return pd.DataFrame(rows)

    @property
    def tracked_samples(self):
        """Per-sample energies of the tracked training images, long format:
        epoch, sample, E_nat, E_adv, Ey_nat, Ey_adv, correct_nat, correct_adv (+ dE, dEy)."""
        import pandas as pd

        path = self.dir / "samples.jsonl"
        frames = []
        for line in path.read_text().splitlines() if path.is_file() else []:
            rec = json.loads(line)
            epoch = rec.pop("epoch")
            frame = pd.DataFrame(rec)
            frame.insert(0, "sample", range(len(frame)))
            frame.insert(0, "epoch", epoch)
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if len(out):
            out["dE"] = out["E_nat"] - out["E_adv"]
            out["dEy"] = out["Ey_nat"] - out["Ey_adv"]
        return out

    @property
    def env(self) -> dict:
        path = self.dir / "env.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def tracking_attack(self) -> dict:
        path = self.dir / "tracking.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def load_model(self, which: str = "best", device: str | torch.device = "cpu") -> torch.nn.Module:
        """The model of best.pt or last.pt, in eval mode."""
        from . import data, models

        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last'; got {which!r}")
        path = self.dir / f"{which}.pt"
        if not path.is_file():
            raise RunError(f"{path} does not exist: the run has not reached that point; call "
                           "train_or_load(config) to train it.")
        ckpt = load_checkpoint(path)
        model = models.build_model(self.config.model, data.dataset_info(self.config.dataset).num_classes)
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()

    def checkpoint_info(self, which: str = "best") -> dict:
        ckpt = load_checkpoint(self.dir / f"{which}.pt")
        return {"epoch": ckpt["epoch"], "best": ckpt["best"]}

    # ---- writing (used by train.fit)
    def open(self) -> "Run":
        """Create the directory, or check that an existing one holds this very config."""
        cfg_path = self.dir / "config.json"
        if cfg_path.is_file():
            stored = identity(json.loads(cfg_path.read_text()))
            wanted = json.loads(json.dumps(identity(self.config)))
            if stored != wanted:
                diff = {k: (stored.get(k), wanted.get(k)) for k in sorted(set(stored) | set(wanted))
                        if stored.get(k) != wanted.get(k)}
                raise ConfigMismatchError(
                    f"run directory {self.dir} was created with a different config (stored vs requested: "
                    f"{diff}); it is not overwritten. Use another `name`, or delete that directory.")
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cfg_path, self.config.to_json() + "\n")
        return self

    def restore(self, model, opt, sched) -> dict:
        """Load last.pt into model/optimizer/scheduler and the RNG; {} when there is none."""
        path = self.dir / "last.pt"
        if not path.is_file():
            return {}
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        return ckpt

    def save_checkpoint(self, filename, model, opt, sched, epoch, best, metrics, samples) -> None:
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "epoch": epoch, "rng": _rng_state(),
                           "best": dict(best), "metrics": list(metrics), "samples": list(samples),
                           "config": self.config.to_dict()}, self.dir / filename)

    def write_logs(self, metrics, samples, tracking_attack: dict) -> None:
        atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in metrics))
        atomic_write_text(self.dir / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in samples))
        atomic_write_text(self.dir / "tracking.json", json.dumps(tracking_attack, indent=2) + "\n")

    def write_env(self, device, resumed_from: int, **facts) -> None:
        env = self.env
        sessions = env.get("sessions", [])
        sessions.append({**environment(device, self.config), "resumed_from_epoch": resumed_from, **facts})
        atomic_write_text(self.dir / "env.json", json.dumps({"sessions": sessions}, indent=2) + "\n")

    def mark_done(self) -> None:
        atomic_write_text(self.dir / "DONE", time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))

    def __repr__(self) -> str:
        return f"Run({self.dir}, done={self.done}, epochs={len(self.metrics)}/{self.config.epochs})"


def train_or_load(cfg: TrainConfig, progress: bool = True, stop_after: int | None = None) -> Run:
    """The finished run if it exists; else resume it from last.pt; else train it from scratch.

    stop_after: train at most this many more epochs now (the run stays resumable).
    Hyperparameters the method does not read are reset first (`TrainConfig.canonical`)."""
    cfg = cfg.canonical()
    run = Run(cfg, run_dir(cfg)).open()
    if not run.done:
        from .train import fit

        fit(cfg, run, progress=progress, stop_after=stop_after)
    return run


def finished_runs(root: Path | None = None) -> list[Run]:
    """Every finished training run in the store, oldest first (by completion time)."""
    root = Path(root) if root is not None else runs_root()
    found = []
    for directory in root.glob("*/DONE"):
        config_path = directory.parent / "config.json"
        try:
            cfg = TrainConfig.from_dict(json.loads(config_path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # not a training run of this version (e.g. attack-energy caches, bench records)
        found.append((directory.stat().st_mtime, Run(cfg, directory.parent)))
    return [run for _, run in sorted(found, key=lambda item: item[0])]


def selected_metrics(run: Run):
    """The metrics row (pandas Series) of the epoch best.pt holds: what a chapter that loads
    best.pt quotes (not the last epoch's). The epoch follows `train.best_epoch`'s rule, the one
    `fit` saved best.pt with."""
    from .train import best_epoch

    metrics = run.metrics
    epoch = best_epoch(metrics["val_acc_adv"], run.config.epochs) if not metrics.empty else None
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
