"""AutoAttack (Croce & Hein 2020) through the `pyautoattack` package, resumable and itemised.

`run_autoattack` runs the standard sequence APGD-CE -> APGD-T -> FAB-T -> Square, each attack on
the points still robust, and records the robust accuracy after each attack and its wall time.
Progress is saved to a state file after every chunk of images, so an interrupted evaluation
resumes where it stopped. A state file holds tensors and plain data only (loaded with
`weights_only=True`: it cannot run code) and the digest of its content; one made for another model
(by its weights), other images or other settings, or whose content differs from its digest, is
refused with the fix (delete it).

`run_autoattack_individual` runs each component on all points (the energy analysis of chapter 1
needs every attack's own adversarial examples, PAPER.md 2.1). Besides the standard four,
untargeted APGD-DLR ('apgd-dlr') and FAB ('fab') run as single components (`COMPONENTS`).

The AutoAttack logger (`auto-attack`) is shown when `verbose` is on.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .attacks import _check_inputs, eval_mode, predict_logits
from . import fileio
from .config import ConfigError, check_eps

STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
# Every component pyautoattack runs: the standard four plus untargeted APGD-DLR and FAB (the
# paper's figure uses both, PAPER.md 2.1).
COMPONENTS = STANDARD_ATTACKS + ("apgd-dlr", "fab")


@dataclass
class AutoAttackSettings:
    """AutoAttack 'standard' hyperparameters; lower them only for quick CPU previews."""

    eps: float = 8 / 255
    seed: int = 0
    n_iter: int = 100              # APGD-CE, APGD-T and FAB-T iterations
    n_target_classes: int = 9      # APGD-T and FAB-T
    n_queries: int = 5000          # Square
    attacks: tuple = STANDARD_ATTACKS

    def is_standard(self) -> bool:
        return (self.n_iter, self.n_target_classes, self.n_queries, tuple(self.attacks)) == (
            100, 9, 5000, STANDARD_ATTACKS)


@dataclass
class AutoAttackResult:
    x_adv: torch.Tensor | None     # None when run with keep_adversarial=False
    clean_accuracy: float
    robust_accuracy: float
    accuracy_after: dict = field(default_factory=dict)   # attack -> robust accuracy after it
    seconds: dict = field(default_factory=dict)          # attack -> wall time (0.0: no points left)
    n_images: int = 0
    settings: dict = field(default_factory=dict)
    robust: torch.Tensor | None = None   # per image (CPU, bool): robust after every attack (clean-correct too)

    def record(self) -> dict:
        """JSON-ready summary (no tensors)."""
        return {"clean_accuracy": self.clean_accuracy, "autoattack_accuracy": self.robust_accuracy,
                "accuracy_after": self.accuracy_after, "seconds": self.seconds,
                "n_images": self.n_images, "settings": self.settings}


def _show_logging(verbose: bool) -> None:
    logger = logging.getLogger("auto-attack")
    if verbose and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[autoattack] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _adversary(model, settings: AutoAttackSettings, attack: str, device):
    from pyautoattack import AutoAttack

    check_eps(settings.eps)
    if attack not in COMPONENTS:
        raise ConfigError(f"unknown AutoAttack component {attack!r}; choose from {', '.join(COMPONENTS)}")
    # A fresh object per call: pyautoattack keeps per-run state on the object.
    adv = AutoAttack(model, eps=settings.eps, norm="Linf", version="standard", seed=settings.seed,
                     device=device)
    adv.attacks_to_run = [attack]
    adv.apgd.n_iter = adv.apgd_targeted.n_iter = adv.fab.n_iter = settings.n_iter
    adv.apgd_targeted.n_target_classes = adv.fab.n_target_classes = settings.n_target_classes
    adv.square.n_queries = settings.n_queries
    return adv


def _fingerprint(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: AutoAttackSettings) -> str:
    """What a state file's progress belongs to: the model's weights, the images and the settings."""
    h = hashlib.sha256()
    h.update(fileio.content_digest(dict(model.state_dict())).encode())
    h.update(x.detach().cpu().float().numpy().tobytes())
    h.update(y.detach().cpu().numpy().tobytes())
    h.update(repr(sorted(vars(settings).items())).encode())
    return h.hexdigest()[:16]


def _save_atomic(obj, path: Path) -> None:
    fileio.atomic_torch_save(obj, path, seal=True)   # a killed writer's temporary is removed on the next open


def _load_state(path: Path, fingerprint: str):
    """The saved progress: tensors and plain data only (never code), its digest checked, made for
    these images and settings."""
    state = fileio.load_torch(path, fix=f"The AutoAttack state file cannot be used: delete {path} to restart that "
                              "part of the evaluation", sealed=True)
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(f"AutoAttack state file {path} was made for another model, other images or other "
                          f"settings; it is not used: delete {path} (or use another state_path)")
    return state


def run_autoattack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                   settings: AutoAttackSettings | None = None, batch_size: int = 250,
                   chunk_size: int = 1000, state_path: str | Path | None = None,
                   verbose: bool = True, keep_adversarial: bool = True) -> AutoAttackResult:
    """AutoAttack's sequential robust accuracy, resumable from `state_path`.

    keep_adversarial: also return (and keep in the state file) the adversarial images. An
    accuracy-only evaluation turns it off: the state file then holds masks, not 120 MB of images.
    """
    settings = settings or AutoAttackSettings()
    _check_inputs(x, y, settings.eps)  # same checks and messages as the PGD attacks, before any work
    device = x.device
    _show_logging(verbose)
    state_path = Path(state_path) if state_path is not None else None
    fingerprint = _fingerprint(model, x, y, settings)
    if state_path is not None and state_path.exists():
        state = _load_state(state_path, fingerprint)
    else:
        correct = predict_logits(model, x, batch_size).argmax(1) == y
        state = {"fingerprint": fingerprint, "robust": correct.cpu(),
                 "x_adv": x.detach().cpu().clone() if keep_adversarial else None,
                 "clean_accuracy": correct.float().mean().item(), "done": [], "accuracy_after": {},
                 "seconds": {}, "pending": None, "cursor": 0}
    with eval_mode(model):
        for attack in settings.attacks:
            if attack in state["done"]:
                continue
            if state["pending"] is None:  # starting this attack: it sees the points still robust
                state["pending"], state["cursor"] = torch.nonzero(state["robust"]).flatten(), 0
            pending = state["pending"]
            while state["cursor"] < len(pending):
                t0 = time.time()
                idx = pending[state["cursor"]:state["cursor"] + chunk_size]
                adversary = _adversary(model, settings, attack, device)
                xa, _ = adversary.run_standard_evaluation(x[idx.to(device)], y[idx.to(device)],
                                                          batch_size=batch_size)
                fooled = (predict_logits(model, xa, batch_size).argmax(1) != y[idx.to(device)]).cpu()
                state["robust"][idx[fooled]] = False
                if state["x_adv"] is not None:
                    state["x_adv"][idx[fooled]] = xa[fooled.to(device)].detach().cpu()
                state["cursor"] += len(idx)
                state["seconds"][attack] = state["seconds"].get(attack, 0.0) + time.time() - t0
                if state_path is not None:
                    _save_atomic(state, state_path)
            state["seconds"].setdefault(attack, 0.0)  # no robust points left: the attack did not run
            state["accuracy_after"][attack] = state["robust"].float().mean().item()
            state["done"].append(attack)
            state["pending"] = None
            if state_path is not None:
                _save_atomic(state, state_path)
    return AutoAttackResult(
        x_adv=state["x_adv"].to(device) if state["x_adv"] is not None else None, clean_accuracy=state["clean_accuracy"],
        robust_accuracy=state["robust"].float().mean().item(), accuracy_after=dict(state["accuracy_after"]),
        seconds=dict(state["seconds"]), n_images=int(x.shape[0]),
        settings={**vars(settings), "attacks": list(settings.attacks), "standard": settings.is_standard()},
        robust=state["robust"].clone())


def run_autoattack_individual(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                              settings: AutoAttackSettings | None = None, batch_size: int = 250,
                              verbose: bool = False) -> dict[str, AutoAttackResult]:
    """Each AutoAttack component on all points. Points an attack does not fool keep x unchanged
    (AutoAttack returns only successful perturbations)."""
    settings = settings or AutoAttackSettings()
    out = {}
    for attack in settings.attacks:
        single = AutoAttackSettings(**{**vars(settings), "attacks": (attack,)})
        out[attack] = run_autoattack(model, x, y, settings=single, batch_size=batch_size,
                                     chunk_size=max(1, x.shape[0]), verbose=verbose)
    return out
