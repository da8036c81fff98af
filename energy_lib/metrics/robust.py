"""Robust-accuracy evaluation records: clean, PGD-20 (fp32) and AutoAttack on fixed test images.

One evaluation = one JSON record in the run directory, `robust_eval-<key>.json`, where `<key>`
hashes everything that defines the numbers (checkpoint, images, attack settings, seed). Tables
are generated from these records (`energy_lib.tables`), never typed by hand.

Resuming an interrupted evaluation:
* clean and PGD-20 accuracies are written to the record (``"complete": false``) as soon as they
  are known, and are reused, not recomputed, by the next call with the same key;
* AutoAttack saves its progress after every chunk to `robust_eval-<key>.aa_state.pt` next to the
  record (`energy_lib.autoattack.run_autoattack`), and continues from there;
* once AutoAttack has finished, the record is completed (``"complete": true``) and the state file
  (robustness masks only, no images) is deleted: the record holds everything it knew.

Per-image outcomes (record version 2). Next to each accuracy the record keeps which images it
counts, `rec["correct"][attack]` for "clean", "pgd" and "autoattack" (when run): 1 for an image
classified correctly (clean) or robust to the attack (`robust_correct`), in the order of the
record's `images` (test image `start + i` is value i), packed by `energy_lib.bits.pack`
(`bits.record_outcomes` unpacks and checks them). Two records of the same images can so be
compared image by image (`energy_lib.verdicts.compare_records`: McNemar's exact test). Records
written before version 2 hold accuracies only: a complete one is kept and reused as it is (never
silently recomputed: on a GPU it is hours of AutoAttack), and comparisons with it are unpaired and
say so; delete it to recompute it with per-image outcomes. An unfinished one cannot resume with
per-image outcomes and is recomputed, with a warning.

Verified on every read. A record carries the digest of its content (`fileio` seals it; a changed
value or a cut file is refused, naming it) and what it measured: the checkpoint's description, the
sha256 of the images, the settings and (from this version on) the sha256 of the model's weights
(`weights_sha256`). A record is used only when all of these equal the request: a record of another
model, run, image set or PGD setting under this file name is an error naming the file (delete it to
recompute), never a result. Records written before digests existed load as they are, still
compared with the request by the description they hold. `load_records` skips (with a warning) a
record that is damaged or lies elsewhere than its own run and key say; `publish` writes only under
plain folder names (`fileio.check_folder_name`).

Model selection (which checkpoint is evaluated). The paper's code keeps the checkpoint with the
lowest PGD-20 error on a held-out (generated) validation set among epochs 91-100 of 100
(PAPER.md 3.3). `energy_lib.train` implements that rule and writes it to `best.pt`: among the
last `config.BEST_WINDOW` (10 %) of the epochs it keeps the one with the highest PGD accuracy
(PGD-CE, `track_attack_steps` steps: 20 in the paper profile) on `n_val` training images held out
from training. The generated validation set is not available offline; held-out training images
play its role, so no test image is ever used for selection and every test image can be reported.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import attacks, autoattack, bits, data, fileio
from ..config import ConfigError, RobustEvalSettings, first_best_epoch, resolve_device, runs_root

RECORD_PREFIX = "robust_eval-"
RECORD_VERSION = 2   # 2: per-image correctness ("correct"), packed with energy_lib.bits


def robust_correct(clean_logits: torch.Tensor, adv_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: robust = classified correctly clean AND attacked (as AutoAttack counts it).
    The one definition of robust accuracy: evaluation records and the per-epoch tracking use it."""
    return (clean_logits.argmax(1) == y) & (adv_logits.argmax(1) == y)


def aa_settings(settings: RobustEvalSettings) -> autoattack.AutoAttackSettings:
    return autoattack.AutoAttackSettings(eps=settings.eps, seed=settings.seed, n_iter=settings.aa_iters,
                                         n_target_classes=settings.aa_target_classes,
                                         n_queries=settings.aa_queries)


@dataclass
class EvalImages:
    """The evaluated images and where they come from."""

    x: torch.Tensor
    y: torch.Tensor
    description: dict = field(default_factory=dict)   # dataset, split, start, n, source, sha256


def images_fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(x.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def eval_slice(dataset: str, n: int | None, start: int = 0) -> EvalImages:
    """Test images [start, start + n) of `dataset` (n=None: to the end of the test set).

    Raises data.DataNotFoundError (with the fix) when the dataset is not on disk."""
    info = data.dataset_info(dataset)
    if start < 0 or (n is not None and n <= 0):
        raise ConfigError(f"need start >= 0 and n > 0 (or None); got start={start}, n={n}")
    stop = info.test_size if n is None else start + n
    if stop > info.test_size:
        raise ConfigError(f"test images [{start}, {stop}) requested but {dataset} has {info.test_size}; "
                          "lower n or start")
    loaded = data.load_dataset(dataset, "test", n=stop)
    part = loaded.subset(torch.arange(start, stop))
    x, y = part.tensors()
    return EvalImages(x, y, {"dataset": dataset, "split": "test", "start": start, "n": stop - start,
                             "source": loaded.source, "sha256": images_fingerprint(x, y)})


def _key(checkpoint: dict, images: dict, settings: RobustEvalSettings) -> str:
    blob = json.dumps({"checkpoint": checkpoint, "images": images["sha256"], "settings": settings.identity()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def record_path(directory: Path, key: str) -> Path:
    return Path(directory) / f"{RECORD_PREFIX}{key}.json"


class RecordMismatchError(fileio.StoreError):
    """A stored evaluation record measured something else than what is asked (model, images, settings)."""


def _write_json(path: Path, obj: dict) -> None:
    fileio.write_json(path, obj, seal=True)   # atomic, with its digest: never half a record, never an unnoticed edit


def _read_record(path: Path) -> dict:
    """The record, its digest checked (records written before digests load as they are)."""
    rec = fileio.read_json(path, fix=f"delete {path} to recompute this evaluation", sealed=None)
    if not isinstance(rec, dict):
        raise fileio.CorruptFileError(f"{path} holds no evaluation record; delete it to recompute this evaluation")
    return rec


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the model's weights (every tensor of its state_dict): what a record measured."""
    return fileio.content_digest(dict(model.state_dict()))


def _settings_identity(stored: dict) -> dict:
    """RobustEvalSettings.identity() of a record's stored settings (fields of this version only)."""
    names = {f for f in RobustEvalSettings.__dataclass_fields__}
    return RobustEvalSettings(**{k: v for k, v in stored.items() if k in names}).identity()


def _differences(rec: dict, key: str, checkpoint: dict, images: dict, settings: RobustEvalSettings,
                 weights: str) -> dict:
    """{what: (stored, asked)} for everything a record says it measured that differs from the request."""
    try:
        stored_settings = _settings_identity(rec.get("settings") or {})
    except (ConfigError, TypeError) as err:
        stored_settings = f"unreadable ({err})"
    pairs = {"key": (rec.get("key"), key), "checkpoint": (rec.get("checkpoint"), checkpoint),
             "images": ((rec.get("images") or {}).get("sha256"), images.get("sha256")),
             "settings": (stored_settings, settings.identity())}
    if "weights_sha256" in rec:   # records before this version do not hold it
        pairs["weights_sha256"] = (rec["weights_sha256"], weights)
    return {what: pair for what, pair in pairs.items() if pair[0] != pair[1]}


def _check_request(path: Path, rec: dict, *request) -> dict:
    diff = _differences(rec, *request)
    if diff:
        shown = {k: v if k not in ("weights_sha256", "images") else tuple(str(x)[:12] for x in v)
                 for k, v in diff.items()}
        raise RecordMismatchError(f"{path} holds another evaluation than the one asked for (stored vs asked: "
                                  f"{shown}); it is not used. Delete {path} to recompute this evaluation")
    return rec


def evaluate(model: torch.nn.Module, images: EvalImages, settings: RobustEvalSettings, directory: Path, *,
             checkpoint: dict | None = None, extra: dict | None = None, device: str = "auto",
             progress: bool = True) -> dict:
    """Clean, PGD and (optionally) AutoAttack accuracy of `model` on `images`, as a record.

    The record is stored in `directory` and returned; a complete record with the same key is
    returned as is, a partial one is resumed (see the module docstring).
    checkpoint: what identifies the weights (e.g. run, which, epoch); part of the key.
    extra: more fields copied into the record (method, dataset, ...).
    """
    from tqdm.auto import tqdm

    checkpoint = dict(checkpoint or {})
    directory = Path(directory)
    fileio.make_dir(directory)
    fileio.clean_stale_temporaries(directory)
    key = _key(checkpoint, images.description, settings)
    path = record_path(directory, key)
    weights = weights_digest(model)
    rec = (_check_request(path, _read_record(path), key, checkpoint, images.description, settings, weights)
           if path.is_file() else None)
    if rec is not None and "correct" not in rec and not rec.get("complete"):
        warnings.warn(f"{path} is an unfinished evaluation from before per-image outcomes were kept: "
                      "recomputing it from the start", stacklevel=2)
        rec = None
    # A complete record from before version 2 (accuracies only) is kept as it is, never silently
    # recomputed (on a GPU it can be hours of AutoAttack): comparisons with it are unpaired and say so;
    # deleting it recomputes it with per-image outcomes.
    if rec is not None and rec.get("complete"):
        return rec
    dev = resolve_device(device)
    model = model.to(dev).eval()
    x, y = images.x.to(dev), images.y.to(dev)
    if rec is None:
        steps = tqdm(total=2, desc="clean + PGD", disable=not progress, leave=False)
        t0 = time.perf_counter()
        clean_logits = attacks.predict_logits(model, x, settings.batch_size)
        clean_ok = clean_logits.argmax(1) == y
        t_clean = time.perf_counter() - t0
        steps.update()
        t0 = time.perf_counter()
        x_pgd = attacks.attack_in_batches("pgd", model, x, y, eps=settings.eps, step_size=settings.pgd_step_size,
                                          steps=settings.pgd_steps, batch_size=settings.batch_size,
                                          seed=settings.seed, progress=progress)
        pgd_ok = robust_correct(clean_logits, attacks.predict_logits(model, x_pgd, settings.batch_size), y)
        t_pgd = time.perf_counter() - t0
        steps.update()
        steps.close()
        rec = {
            "kind": "robust_eval", "version": RECORD_VERSION, "key": key, "complete": False,
            **(extra or {}), "checkpoint": checkpoint, "weights_sha256": weights, "images": images.description,
            "n_images": int(x.shape[0]), "seed": settings.seed, "eps": settings.eps, "settings": asdict(settings),
            "pgd": {"steps": settings.pgd_steps, "step_size": settings.pgd_step_size, "loss": "ce",
                    "random_start": "uniform", "precision": "fp32", "mode": "eval"},
            "accuracy": {"clean": clean_ok.float().mean().item(), "pgd": pgd_ok.float().mean().item()},
            "correct": {"clean": bits.pack(clean_ok.cpu().numpy()), "pgd": bits.pack(pgd_ok.cpu().numpy())},
            "seconds": {"clean": t_clean, "pgd": t_pgd},
            "device": str(dev), "torch": torch.__version__,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_json(path, rec)   # the PGD part is cached from here on
    if settings.autoattack:
        res = autoattack.run_autoattack(model, x, y, settings=aa_settings(settings),
                                        batch_size=settings.batch_size, chunk_size=settings.aa_chunk_size,
                                        state_path=path.with_suffix(".aa_state.pt"), verbose=progress,
                                        keep_adversarial=False)
        if abs(res.clean_accuracy - rec["accuracy"]["clean"]) > 1e-9:
            raise RuntimeError(f"AutoAttack's clean accuracy {res.clean_accuracy} differs from the record's "
                               f"{rec['accuracy']['clean']} on the same images: the model changed between the "
                               f"two parts; delete {path} and its .aa_state.pt to start over")
        rec["autoattack"] = {"standard": res.settings["standard"], "attacks": res.settings["attacks"],
                             "n_iter": settings.aa_iters, "n_target_classes": settings.aa_target_classes,
                             "n_queries": settings.aa_queries, "accuracy_after": res.accuracy_after}
        rec["accuracy"]["autoattack"] = res.robust_accuracy
        rec["correct"]["autoattack"] = bits.pack(res.robust.numpy())
        rec["seconds"]["autoattack"] = sum(res.seconds.values())
        rec["seconds"]["autoattack_per_attack"] = res.seconds
    rec["complete"] = True
    _write_json(path, rec)
    path.with_suffix(".aa_state.pt").unlink(missing_ok=True)
    return rec


def selection_description(run) -> dict:
    """How best.pt was chosen (config.BEST_WINDOW rule) and from which images."""
    cfg = run.config
    return {"rule": "highest PGD accuracy on the held-out validation images among the last epochs "
                    "(config.BEST_WINDOW)",
            "epochs_considered": [first_best_epoch(cfg.epochs) + 1, cfg.epochs],
            "images": {"split": "train (held out, never trained on)", "n": cfg.n_val},
            "attack": run.tracking_attack.get("val", "")}


def evaluate_run(run, settings: RobustEvalSettings | None = None, *, n_images: int | None = None,
                 start: int = 0, which: str = "best", device: str = "auto",
                 progress: bool = True) -> dict:
    """Evaluate a finished training run's `which` checkpoint; the record goes into `run.dir`.

    n_images: None = every test image from `start` on (the paper protocol with start=0).
    start: first test image.
    """
    settings = settings or RobustEvalSettings()
    run.require_done("before evaluating its checkpoints")
    cfg = run.config
    images = eval_slice(cfg.dataset, n_images, start)
    info = run.checkpoint_info(which)
    checkpoint = {"run": run.dir.name, "which": which, "epoch": info["epoch"],
                  "selection_metric": info["best"].get("metric")}
    selection = selection_description(run)
    extra = {"method": cfg.method, "dataset": cfg.dataset, "model": cfg.model, "train_epochs": cfg.epochs,
             "n_train": cfg.n_train, "selection": selection}
    model = run.load_model(which, "cpu")
    return evaluate(model, images, settings, run.dir, checkpoint=checkpoint, extra=extra, device=device,
                    progress=progress)


def load_records(root: Path | None = None, complete_only: bool = True) -> list[dict]:
    """Every evaluation record under the run store (`$ENERGY_RUNS/<run>/robust_eval-*.json`).

    An unreadable record is skipped with a warning naming it (one bad file does not hide the others)."""
    root = Path(root) if root is not None else runs_root()
    out = []
    for path in sorted(root.glob(f"*/{RECORD_PREFIX}*.json")):
        try:
            rec = _read_record(path)
        except fileio.StoreError as err:
            warnings.warn(f"skipped: {err}", stacklevel=2)
            continue
        misplaced = _misplaced(path, rec)
        if misplaced:
            warnings.warn(f"skipped: {path} {misplaced}; it is not counted. Delete it (or move it back where it "
                          "belongs)", stacklevel=2)
            continue
        if rec.get("kind") == "robust_eval" and (rec.get("complete") or not complete_only):
            rec["path"] = str(path)
            out.append(rec)
    return out


def _misplaced(path: Path, rec: dict) -> str:
    """Why a record does not belong where it lies ('' when it does): its file name carries its key,
    its folder its run (when it names them)."""
    run = (rec.get("checkpoint") or {}).get("run") if isinstance(rec.get("checkpoint"), dict) else None
    if "key" in rec and path.name != f"{RECORD_PREFIX}{rec['key']}.json":
        return f"holds the record of key {rec['key']!r}, not the one its file name says"
    if run is not None and path.parent.name != run:
        return f"holds a record of the run {run!r}, not of {path.parent.name!r} where it lies"
    return ""


def published_dir() -> Path:
    """`<run store>/published/`: complete evaluation records kept in git (the run directories, with
    their checkpoints, are not), so a GPU sweep's numbers reach the published book."""
    return runs_root() / "published"


def publish(rec: dict, directory: Path | None = None) -> Path:
    """Copy a complete evaluation record to `published_dir()/<run>/` (same layout as the run store,
    so `load_records(published_dir())` reads it back). Returns the written path."""
    if not rec.get("complete"):
        raise ValueError(f"record {rec.get('key')} is not complete; only finished evaluations are published")
    directory = Path(directory) if directory is not None else published_dir()
    run = fileio.check_folder_name((rec.get("checkpoint") or {}).get("run"), "the record's checkpoint.run")
    key = fileio.check_folder_name(rec.get("key"), "the record's key")
    out = record_path(directory / run, key)
    fileio.make_dir(out.parent)
    _write_json(out, {k: v for k, v in rec.items() if k != "path"})
    return out
