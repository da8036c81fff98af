"""The regime of a training run: what a verdict must know before it may say "absent".

An existence claim (robust overfitting, catastrophic overfitting, the three phases) measured on
a run in which the phenomenon cannot occur is not evidence against it. A network that never
learned cannot overfit catastrophically; a run with no robust generalisation gap has nothing to
overfit; a run whose learning rate anneals to ~0 has its best epoch at the end. `regime_of(run)`
computes, from a run's tracked metrics and config:

* `steps`: optimizer steps taken;
* the clean test accuracy against chance (Wilson intervals), at its best tracked point and at
  the end. The network **learned** when the best point's lower bound exceeds `LEARNED_FACTOR` x
  chance (it classifies at least twice as well as guessing: 20 % on CIFAR-10). It **diverged**
  when it learned but ends at chance or with a constant output (every tracked image the same
  logits);
* mean E(x) + ln K at the end (0 for logits that are all 0; a softmax-invariant offset, so it is
  shown, not judged) and the information ln K − clean CE in nats (0: the uniform prediction);
* the robust generalisation gap: robust accuracy on the tracked training images minus that on the
  test images, both under the same test attack (`train_pgd_acc_adv` vs `test_acc_adv`), with
  Newcombe's interval; a gap is present when its interval lies above 0.

`Regime.sentence` states the figures; `Regime.why_untestable(claim)` says, for a claim, why it
cannot be read in this regime (None when it can).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .power import newcombe_unpaired, wilson

LEARNED_FACTOR = 2.0      # learned: clean accuracy significantly above this multiple of chance
CONSTANT_SPREAD = 1e-4    # energy units: below this spread of E(x) over the tracked images the output is constant


@dataclass(frozen=True)
class Regime:
    steps: int | None
    n_test: int
    n_train_track: int
    chance: float
    clean_best: float
    clean_best_ci: tuple[float, float]
    clean_best_at: float           # progress (epochs) of the best clean point
    clean_final: float
    clean_final_ci: tuple[float, float]
    learned: bool
    diverged: bool
    constant_output: bool
    energy_offset: float           # mean E(x) + ln K on the tracked test images at the end
    information: float             # ln K − clean CE (nats) on the tracked test images at the end
    robust_train: float | None     # robust accuracy on tracked training images, test attack, at the end
    robust_test: float
    gap: float | None              # robust_train − robust_test
    gap_ci: tuple[float, float] | None
    gap_present: bool
    sentence: str

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def never_learned_text(self) -> str:
        return (f"the network never learned: its best clean test accuracy is {self.clean_best:.1%} "
                f"[{self.clean_best_ci[0]:.1%}, {self.clean_best_ci[1]:.1%}] on {self.n_test} images, not "
                f"significantly above {LEARNED_FACTOR:g}x chance ({LEARNED_FACTOR * self.chance:.0%}); clean CE is "
                f"{self.information:.2f} nats below the uniform prediction's ln K after {self._steps} optimizer steps")

    @property
    def _steps(self) -> str:
        return "an unknown number of" if self.steps is None else f"{self.steps:,}"

    def why_untestable(self, claim: str) -> str | None:
        """Why `claim` ('co', 'ro', 'phases') cannot be read on this run, or None when it can."""
        if claim not in ("co", "ro", "phases"):
            raise ValueError(f"unknown claim {claim!r}: use 'co', 'ro' or 'phases'")
        if not self.learned:
            return self.never_learned_text
        if claim in ("ro", "phases") and not self.gap_present:
            gap = ("not measured (the run tracked no training images under the test attack)" if self.gap is None
                   else f"{100 * self.gap:+.1f} pt [{100 * self.gap_ci[0]:+.1f}, {100 * self.gap_ci[1]:+.1f}] "
                        f"(robust {self.robust_train:.1%} on {self.n_train_track} training images vs "
                        f"{self.robust_test:.1%} on {self.n_test} test images, same attack)")
            return (f"there is no robust generalisation gap to overfit: training minus test robust accuracy is "
                    f"{gap} at the end")
        return None


def _last(metrics, key):
    return float(metrics[key].iloc[-1]) if key in metrics and len(metrics) else None


def regime_from_metrics(metrics, *, n_test: int, n_train_track: int, n_classes: int,
                        steps: int | None = None, level: float = 0.95) -> Regime:
    """The regime of a run from its tracked points (a DataFrame with `test_acc_nat`, `test_acc_adv`,
    optionally `progress` or `epoch`, `train_pgd_acc_adv`, `test_E_nat_mean`, `test_E_nat_std`,
    `test_ce_nat`); the last row is the end of training."""
    if metrics is None or len(metrics) == 0:
        raise ValueError("regime_from_metrics needs at least one tracked point")
    chance = 1.0 / n_classes
    when = metrics["progress"] if "progress" in metrics else metrics["epoch"] if "epoch" in metrics else \
        np.arange(1, len(metrics) + 1)
    clean = np.asarray(metrics["test_acc_nat"], dtype=float)
    i_best = int(np.argmax(clean))
    best_ci = wilson(round(clean[i_best] * n_test), n_test, level)
    final_ci = wilson(round(clean[-1] * n_test), n_test, level)
    learned = best_ci[0] > LEARNED_FACTOR * chance
    spread = _last(metrics, "test_E_nat_std")
    constant = spread is not None and spread < CONSTANT_SPREAD
    diverged = learned and (constant or final_ci[0] <= chance)
    ln_k = math.log(n_classes)
    e_mean, ce = _last(metrics, "test_E_nat_mean"), _last(metrics, "test_ce_nat")
    offset = float("nan") if e_mean is None else e_mean + ln_k
    information = float("nan") if ce is None else ln_k - ce
    robust_test = float(metrics["test_acc_adv"].iloc[-1])
    robust_train = _last(metrics, "train_pgd_acc_adv")
    gap = gap_ci = None
    if robust_train is not None:
        gap = robust_train - robust_test
        gap_ci = newcombe_unpaired(round(robust_train * n_train_track), n_train_track,
                                   round(robust_test * n_test), n_test, level)
    gap_present = gap_ci is not None and gap_ci[0] > 0
    steps_text = "" if steps is None else f"{steps:,} optimizer steps; "
    gap_text = ("no robust training accuracy under the test attack" if gap is None else
                f"robust accuracy {robust_train:.1%} on {n_train_track} training vs {robust_test:.1%} on {n_test} test "
                f"images under the same attack (gap {100 * gap:+.1f} pt [{100 * gap_ci[0]:+.1f}, {100 * gap_ci[1]:+.1f}])")
    state = ("never learned" if not learned else "diverged (constant output)" if diverged and constant else
             "diverged (clean accuracy back at chance)" if diverged else "learned")
    sentence = (f"{state}: {steps_text}clean test accuracy best {clean[i_best]:.1%} [{best_ci[0]:.1%}, {best_ci[1]:.1%}] "
                f"at epoch {float(np.asarray(when)[i_best]):.2f}".rstrip("0").rstrip(".") + f", final {clean[-1]:.1%} (chance {chance:.0%}, learned above "
                f"{LEARNED_FACTOR:g}x chance); mean E(x) {offset:+.2f} from −ln K, clean CE {information:.2f} nats below "
                f"ln K; {gap_text}")
    return Regime(steps, int(n_test), int(n_train_track), chance, float(clean[i_best]), best_ci,
                  float(np.asarray(when)[i_best]), float(clean[-1]), final_ci, bool(learned), bool(diverged),
                  bool(constant), offset, information, robust_train, robust_test, gap, gap_ci, bool(gap_present),
                  sentence)


def optimizer_steps(cfg, epochs_done: int) -> int:
    """Optimizer steps of `epochs_done` epochs of a TrainConfig (one per batch, last batch partial)."""
    from .names import DATASETS

    n = cfg.n_train if cfg.n_train is not None else DATASETS[cfg.dataset].train_size - cfg.n_val
    return int(epochs_done) * math.ceil(n / cfg.batch_size)


def tracked_points(metrics):
    """Every tracking point of a run in training order, one row each: the within-epoch points and
    the epoch ends, with `progress` in completed epochs (a run without within-epoch tracking: its
    epoch rows, progress = epoch). `metrics`: a run's metrics rows (list of dicts or DataFrame)."""
    import pandas as pd

    rows = metrics.to_dict("records") if hasattr(metrics, "to_dict") else list(metrics)
    points = []
    for row in rows:
        inside = row.get("within_epoch")
        if isinstance(inside, list):
            points.extend({"epoch": row["epoch"], **point} for point in inside)
        points.append({**{k: v for k, v in row.items() if k != "within_epoch"}, "progress": float(row["epoch"])})
    return pd.DataFrame(points)


def regime_of(run) -> Regime:
    """`regime_from_metrics` of a run in the store (its tracked points, within-epoch ones included)."""
    from .names import DATASETS

    cfg = run.config
    metrics = run.metrics
    return regime_from_metrics(tracked_points(metrics), n_test=cfg.n_test_track, n_train_track=cfg.n_train_track,
                               n_classes=DATASETS[cfg.dataset].num_classes,
                               steps=optimizer_steps(cfg, len(metrics)))
