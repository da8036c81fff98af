"""The regime of a training run: what a verdict must know before it may say "absent".

An existence claim (robust overfitting, catastrophic overfitting, the three phases) measured on
a run in which the phenomenon cannot occur is not evidence against it. A network that never
learned cannot overfit catastrophically; a run with no robust generalisation gap has nothing to
overfit; a run whose learning rate anneals to ~0 has its best epoch at the end. `regime_of(run)`
computes, from a run's tracked metrics and config:

* `steps`: optimizer steps taken;
* the clean test accuracy against chance (Wilson intervals) and the clean CE against the uniform
  prediction's ln K. The network **learned** when at some tracked point its accuracy is
  significantly (level corrected for the number of points) above `LEARNED_FACTOR` x chance (twice
  as well as guessing: 20 % on CIFAR-10) and its CE at least `INFORMATION_FLOOR` x ln K below ln K.
  It **diverged** when, after learning, a point is back at chance, has a constant output (every
  tracked image the same logits) or uniform predictions again (`regime_from_metrics`);
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

LEARNED_FACTOR = 2.0      # learned: clean accuracy significantly above this multiple of chance ...
INFORMATION_FLOOR = 0.1   # ... and clean CE at least this fraction of ln K below the uniform prediction's ln K
UNIFORM_AGAIN = 0.02      # diverged: clean CE back within this fraction of ln K of the uniform prediction
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
    # ln K − clean CE at its highest over the points whose clean accuracy passed (None: none passed);
    # below the floor it is why a network that was accurate enough still never learned
    information_when_accurate: float | None = None

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def never_learned_text(self) -> str:
        if self.information_when_accurate is not None:    # accurate enough, but near the uniform prediction
            floor = INFORMATION_FLOOR * -math.log(self.chance)
            return (f"the network never learned: its clean test accuracy rose significantly above {LEARNED_FACTOR:g}x "
                    f"chance ({LEARNED_FACTOR * self.chance:.0%}; best {self.clean_best:.1%} [{self.clean_best_ci[0]:.1%}, "
                    f"{self.clean_best_ci[1]:.1%}] on {self.n_test} images), but never at a point where its clean CE was "
                    f"also at least {floor:.2f} nats below ln K: where it was that accurate, clean CE was at most "
                    f"{self.information_when_accurate:.2f} nats below ln K (predictions near the uniform one), after "
                    f"{self._steps} optimizer steps")
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
    `test_ce_nat`); the last row is the end of training.

    Learned: at some tracked point the clean accuracy's Wilson lower bound, at the level corrected
    for the number of points (Bonferroni: the best of many noisy points is not one test), exceeds
    `LEARNED_FACTOR` x chance AND the clean CE is at least `INFORMATION_FLOOR` x ln K below the
    uniform prediction's ln K (where the run tracked it): a net whose predictions stay near uniform
    has not learned, however many images show its accuracy. Diverged: it learned, and at a later
    point its clean accuracy is back at chance (Wilson lower bound at most chance), its output is
    constant (E(x) spread below `CONSTANT_SPREAD`) or its predictions are uniform again (CE within
    `UNIFORM_AGAIN` x ln K of ln K)."""
    if metrics is None or len(metrics) == 0:
        raise ValueError("regime_from_metrics needs at least one tracked point")
    chance = 1.0 / n_classes
    ln_k = math.log(n_classes)
    n_points = len(metrics)
    when = np.asarray(metrics["progress"] if "progress" in metrics else metrics["epoch"] if "epoch" in metrics else
                      np.arange(1, n_points + 1), dtype=float)
    clean = np.asarray(metrics["test_acc_nat"], dtype=float)
    ce = np.asarray(metrics["test_ce_nat"], dtype=float) if "test_ce_nat" in metrics else np.full(n_points, np.nan)
    spread = np.asarray(metrics["test_E_nat_std"], dtype=float) if "test_E_nat_std" in metrics else \
        np.full(n_points, np.nan)
    info = ln_k - ce                                           # nats below the uniform prediction (nan: not tracked)
    corrected = 1 - (1 - level) / n_points
    lows = np.array([wilson(round(c * n_test), n_test, corrected)[0] for c in clean])
    informative = ~(info < INFORMATION_FLOOR * ln_k)          # nan (not tracked) does not block
    accurate = lows > LEARNED_FACTOR * chance
    learned_at = np.flatnonzero(accurate & informative)
    learned = bool(len(learned_at))
    info_when_accurate = float(np.nanmax(info[accurate])) if not learned and accurate.any() else None
    candidates = learned_at if learned else np.arange(n_points)
    i_best = int(candidates[np.argmax(clean[candidates])])
    best_ci = wilson(round(clean[i_best] * n_test), n_test, corrected)
    final_ci = wilson(round(clean[-1] * n_test), n_test, level)
    diverged_at = None
    constant = False
    if learned:
        after = np.arange(learned_at[0] + 1, n_points)
        at_chance = np.array([wilson(round(clean[i] * n_test), n_test, level)[0] <= chance for i in after], bool)
        flat = spread[after] < CONSTANT_SPREAD
        uniform = info[after] < UNIFORM_AGAIN * ln_k
        bad = after[at_chance | flat | uniform]
        if len(bad):
            diverged_at = int(bad[0])
            constant = bool(spread[diverged_at] < CONSTANT_SPREAD)
    diverged = diverged_at is not None
    e_mean = _last(metrics, "test_E_nat_mean")
    offset = float("nan") if e_mean is None else e_mean + ln_k
    information = float(info[-1])
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
    why_diverged = ("" if not diverged else "constant output" if constant else
                    "clean accuracy back at chance" if clean[diverged_at] <= chance + 3 * math.sqrt(chance / n_test)
                    else "predictions uniform again")
    state = ("never learned" if not learned else
             f"diverged ({why_diverged} at epoch {_epoch(when[diverged_at])})" if diverged else "learned")
    sentence = (f"{state}: {steps_text}clean test accuracy best {clean[i_best]:.1%} [{best_ci[0]:.1%}, {best_ci[1]:.1%}, "
                f"level corrected for {n_points} tracked points] at epoch {_epoch(when[i_best])}, final {clean[-1]:.1%} "
                f"(chance {chance:.0%}; learned: above {LEARNED_FACTOR:g}x chance with clean CE at least "
                f"{INFORMATION_FLOOR * ln_k:.2f} nats below ln K); at the end mean E(x) {offset:+.2f} from −ln K, clean CE "
                f"{information:.2f} nats below ln K; {gap_text}")
    return Regime(steps, int(n_test), int(n_train_track), chance, float(clean[i_best]), best_ci,
                  float(when[i_best]), float(clean[-1]), final_ci, learned, diverged,
                  constant, offset, information, robust_train, robust_test, gap, gap_ci, bool(gap_present),
                  sentence, info_when_accurate)


def _epoch(x: float) -> str:
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


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
