"""Chapter 1's computation: how each attack moves E(x) and E(x, y) (PAPER.md 2.1).

A use of the energy lens (`energy_lib.lens.look`): chapter 1's config becomes a `LensConfig` with
the chapter's attacks, and the lens computes (and caches under `<run store>/lens/`) the per-image
natural and adversarial energies, the accuracies and the detection scores. One code path for the
book, the command line and a user's own model.

Expected signs of mean E(x*) - E(x) on a standard model (PAPER.md 2.1, 5.2 item 1): negative for
untargeted cross-entropy attacks (PGD, APGD-CE, the TRADES-KL attack), positive for targeted,
margin and minimum-norm attacks (APGD-T, APGD-DLR, FAB, Square, CW). The paper's CW is
torchattacks' ℓ2 CW; here "cw" is ℓ∞ PGD on the CW margin ("CW-margin PGD (ℓ∞)"). The targeted
PGD variants are the companion's own and are not counted among the paper's attacks.
"""
from __future__ import annotations

import pandas as pd
import torch

from . import lens
from .config import AttackEnergyConfig, LensConfig

# Chapter 1's attacks: the paper's eight, then the companion's own targeted PGD variants.
CHAPTER_WHITE_BOX = ("pgd", "trades_kl", "cw", "pgd_targeted", "pgd_targeted_ce")
CHAPTER_AUTOATTACK = ("apgd-ce", "apgd-t", "apgd-dlr", "fab", "square")
COMPANION_ATTACKS = ("pgd_targeted", "pgd_targeted_ce")
LABELS = lens.LABELS
EXPECTED_SHIFT_SIGN = lens.EXPECTED_SHIFT_SIGN


def chapter_attacks(cfg: AttackEnergyConfig) -> tuple[str, ...]:
    return CHAPTER_WHITE_BOX + (CHAPTER_AUTOATTACK if cfg.autoattack else ())


def lens_config(cfg: AttackEnergyConfig) -> LensConfig:
    """The lens settings of chapter 1: every white-box attack (PGD too) runs `steps` iterations."""
    return LensConfig(dataset=cfg.dataset, n_images=cfg.n_images, eps=cfg.eps, step_size=cfg.step_size,
                      pgd_steps=cfg.steps, steps=cfg.steps, attacks=chapter_attacks(cfg), eps_grid=cfg.eps_grid,
                      delta_attack="pgd", autoattack=False, aa_iters=cfg.aa_iters,
                      aa_target_classes=cfg.aa_target_classes, aa_queries=cfg.square_queries,
                      batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device)


def look(model: torch.nn.Module | None, cfg: AttackEnergyConfig, source: lens.ModelSource | dict,
         progress: bool = True) -> lens.LensResult:
    """Chapter 1's attacks on `model` (None: loaded from `source` when the record is missing).
    source: a `lens.ModelSource`, or a dict naming the weights (e.g. {"kind": "test", "seed": 0})."""
    if isinstance(source, lens.ModelSource):
        return lens.look(model, lens_config(cfg), source, progress=progress)
    return lens.look(model, lens_config(cfg), source_identity=source, progress=progress)


def compute_attack_energies(model: torch.nn.Module | None, cfg: AttackEnergyConfig,
                            source: lens.ModelSource | dict, progress: bool = True) -> pd.DataFrame:
    """Per-image energies of every attack of the chapter (the lens's per-sample frame)."""
    return look(model, cfg, source, progress).frame


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per attack and ε: mean energies, mean shifts, adversarial accuracy, and the paper's sign."""
    g = frame.groupby(["attack", "eps"], sort=False)
    table = pd.DataFrame({
        "mean E(x)": g["E_nat"].mean(), "mean E(x*)": g["E_adv"].mean(),
        "mean E(x,y)": g["Exy_nat"].mean(), "mean E(x*,y)": g["Exy_adv"].mean(),
        "accuracy (adv)": g["correct_adv"].mean(),
    })
    # ΔE is natural minus adversarial (PAPER.md 1.3).
    table["ΔE(x)"] = table["mean E(x)"] - table["mean E(x*)"]
    table["ΔE(x,y)"] = table["mean E(x,y)"] - table["mean E(x*,y)"]
    table = table.reset_index()
    table.insert(0, "label", table["attack"].map(LABELS))
    table["in paper"] = table["attack"].map(lens.IN_PAPER)
    table["paper: E(x*) vs E(x)"] = table["attack"].map(
        lambda a: {-1: "lower", 1: "higher", 0: "no prediction"}[EXPECTED_SHIFT_SIGN[a]])
    shift = table["mean E(x*)"] - table["mean E(x)"]
    # Only the paper's attacks are judged; the companion's own have no prediction to agree with.
    table["agrees"] = [None if a not in lens.PAPER_ATTACKS else bool(s * EXPECTED_SHIFT_SIGN[a] > 0)
                       for s, a in zip(shift, table["attack"])]
    return table
