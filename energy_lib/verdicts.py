"""Statistics and verdicts: every claim the book checks is a statistic with its noise and a verdict
from a fixed set, so that it can come out "no" (PAPER.md 2.2-2.7, 5.2, 5.3).

Each function returns a small frozen dataclass with the statistic, its noise (standard error,
confidence interval or model comparison), a `verdict` string and a `sentence` built from the
numbers for the chapter's prose. The noise comes from scipy / scikit-learn (binomial / Wilson
intervals, bootstrap, McNemar's exact test, Gaussian mixtures, least squares + BIC).

| function                  | question                                               | verdicts |
|---------------------------|--------------------------------------------------------|----------|
| `robust_overfitting`      | does robust test accuracy decline after its best? (2.2) | PRESENCE |
| `phase_structure`         | does ΔE(x) have phases, or is a line enough? (2.2)      | PHASES   |
| `catastrophic_overfitting`| does PGD accuracy collapse to ~0 and stay there? (2.3)  | PRESENCE |
| `der_prevents_co`         | does DER keep a single-step run from CO? (2.7)          | REPRODUCTION |
| `bimodality`              | is a sample bimodal (GMM 2 vs 1 by BIC)? (5.2 item 2)   | PRESENCE |
| `energy_alignment`        | is TRADES' |mean ΔE(x)| smaller than SAT's? (2.4)       | REPRODUCTION |
| `compare_accuracy`        | is method A more robust than method B? (4.1)            | REPRODUCTION |
| `delta_e_alarm`           | does a ΔE-divergence rule stop as well as PGD validation?| ALARM   |
| `weight_contrast`         | do WEAT's weights separate the samples? (2.6)           | PRESENCE |
| `mean_shift`              | is the mean of per-item shifts on the expected side of 0? (2.1, 2.8) | REPRODUCTION |
| `adaptive_stop_landing`   | do chains that start outside √τ of Ē_y reach it and stop? (2.8) | REPRODUCTION |
| `spread_ratio(s)`         | is a robust model's std ΔE(x) ≥ 5x smaller than the standard one's? (5.2 item 4) | REPRODUCTION |

`model_regime` gives an evaluated model (one checkpoint, e.g. a lens record) its `Regime` from its clean
outcomes on the images a verdict reads, by the rule the training runs' regimes use (`spread_ratio(s)`
and `replicated(..., regimes=)` read it: a network that never learned is tight by construction, not
smooth, and is left out of a claim about trained classifiers; `lens.smoothness_over_robust` too).

Two helpers compute a verdict's input from a run as the chapters do: `late_delta_e` (chapter 3's
per-image late ΔE(x) for `energy_alignment`) and `compare_records` (chapter 4's `compare_accuracy`
of two robust-evaluation records, on AutoAttack accuracy when both have it; paired over the test
images, McNemar's exact test, when both records hold per-image outcomes, else unpaired and saying so).

`reproduction(verdict, expected)` maps a PRESENCE verdict onto the REPRODUCTION set for a
claim that expects `expected`; `Result.summary(...)` makes the row of a chapter's reproduction
table (written and read by `energy_lib.tables`).
"""
from __future__ import annotations

import math
import dataclasses
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from . import bits
from .power import (ALPHA, POWER, equivalent, mde_from_se, mde_text, newcombe_paired, newcombe_unpaired, paired_mde,
                    paired_n_needed, unpaired_mde, unpaired_n_needed, wilson)
from .regime import (CONSTANT_SPREAD, Regime, regime_from_metrics,  # noqa: F401  (CONSTANT_SPREAD: chapters read it here)
                     tracked_points)

PRESENT, ABSENT, INCONCLUSIVE = "present", "absent", "inconclusive"
PRESENCE = (PRESENT, ABSENT, INCONCLUSIVE)
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE_SCALE = "reproduced", "not reproduced", "inconclusive at this scale"
REPRODUCTION = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE_SCALE)
THREE_PHASES, ONE_CHANGE, NO_PHASES = "three phases", "one change point", "no phase structure"
PHASES = (THREE_PHASES, ONE_CHANGE, NO_PHASES)
ALARM_AS_GOOD, ALARM_WORSE, ALARM_BETTER = ("as good as PGD validation", "worse than PGD validation",
                                            "better than PGD validation")
ALARM_UNDECIDED = "no detectable difference from PGD validation"
ALARM_UNTESTABLE = "not testable here (the rule never fired and PGD validation kept the last epoch)"
ALARM = (ALARM_AS_GOOD, ALARM_WORSE, ALARM_BETTER, ALARM_UNDECIDED, ALARM_UNTESTABLE)
# PAPER.md 5.3's tolerance for a PGD accuracy: within ±1.5 pt counts as the same (equivalence margin)
EQUIVALENCE_MARGIN = 0.015
NOT_RUN = "not run"
LEVEL = 0.95          # two-sided confidence level of every interval and test here
BIC_MARGIN = 10.0     # "very strong" evidence on the Kass-Raftery scale: a model must win by this much
KNOT_COST = 2         # parameters charged per searched breakpoint in the phase models' BIC


def _z(level: float = LEVEL) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def _ep(x: float) -> str:
    """An epoch or a tracking point's progress in epochs: 16, 2.5 (within-epoch points to 0.01)."""
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


def _pt(x: float) -> str:
    """A proportion difference in percentage points."""
    return f"{100 * x:+.1f} pt"


def _detectable(mde: str) -> str:
    """What an inconclusive comparison rules out, as the clause its sentence ends with."""
    return f"; the smallest true difference it would detect is {mde} ({POWER:.0%} power, {ALPHA:.0%} level)"


def reproduction(verdict: str, expected: str = PRESENT) -> str:
    """A PRESENCE verdict as a reproduction verdict for a claim that expects `expected`."""
    if verdict not in PRESENCE or expected not in (PRESENT, ABSENT):
        raise ValueError(f"verdict {verdict!r} / expected {expected!r}: use one of {PRESENCE}")
    if verdict == INCONCLUSIVE:
        return INCONCLUSIVE_SCALE
    return REPRODUCED if verdict == expected else NOT_REPRODUCED


@dataclass(frozen=True)
class Result:
    """Common part: `statistic`, `noise` (text: SE / CI / ΔBIC), `verdict`, `sentence`."""

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def statistic_text(self) -> str:
        raise NotImplementedError

    def summary(self, claim: str, section: str, paper: str, verdict: str | None = None,
                kind: str = "reproduction") -> dict:
        """One row of a chapter's reproduction table. `verdict` overrides the result's own
        (e.g. `reproduction(result.verdict)`); it must be a REPRODUCTION verdict. `kind`:
        "reproduction" (a paper's finding), "identity" or "sanity check" (`tables.KINDS`: true of
        any classifier, counted apart on the front page)."""
        verdict = verdict or self.verdict
        if verdict not in REPRODUCTION:
            raise ValueError(f"a summary row needs one of {REPRODUCTION}, got {verdict!r}: map it with "
                             "verdicts.reproduction(...)")
        return {"claim": claim, "section": section, "paper": paper, "this build": self.statistic_text,
                "verdict": verdict, "kind": kind}


# ----------------------------------------------------------------------------- robust overfitting
# why a run cannot show robust overfitting (RobustOverfitting.untestable_kind)
UNTESTABLE_KINDS = ("too_short", "never_learned", "no_gap", "window_end", "late_best")


@dataclass(frozen=True)
class RobustOverfitting(Result):
    statistic: float              # mean test robust acc (last k epochs) − (k epochs around the best)
    se: float
    ci: tuple[float, float]
    acc_best: float
    acc_last: float
    best_window: tuple[int, int]  # first and last epoch of each window
    last_window: tuple[int, int]
    selected_on: str
    n_images: int
    margin: float
    verdict: str
    sentence: str
    mde: float = float("nan")     # smallest decline detectable at 80 % power, 5 % level (from se)
    untestable: str = ""          # why this run cannot show RO (never learned, no gap, best window = last)
    untestable_kind: str = ""     # which of UNTESTABLE_KINDS set `untestable` ("too_short": no two windows)

    @property
    def statistic_text(self) -> str:
        if not math.isfinite(self.statistic):
            return "too few epochs for two windows"
        if self.untestable:
            return f"not testable here: {self.untestable.split(':')[0]} (n = {self.n_images})"
        return (f"{_pt(self.statistic)} ± {100 * _z() * self.se:.1f} (last vs best window, n = {self.n_images}; "
                f"detectable ≥ {mde_text(self.mde)})")


def _windows(n_epochs: int, k: int) -> list[tuple[int, int]]:
    return [(i, i + k) for i in range(n_epochs - k + 1)]


def robust_overfitting(test_acc, n_images: int, *, val_acc=None, epochs=None, k: int | None = None,
                       test_correct=None, margin: float = 0.01, level: float = LEVEL,
                       random_state: int = 0, regime: Regime | None = None,
                       best_before: float = 0.8) -> RobustOverfitting:
    """Robust overfitting (PAPER.md 2.2, 5.3 item 5) as a statistic that can be negative.

    D = mean robust test accuracy of the last `k` epochs − mean robust test accuracy of the `k`
    consecutive epochs around the best. `final − best` of noisy values is ≥ 0 by construction;
    D is not, because the best window is **chosen without the test values it is scored on**:
    on the validation accuracy `val_acc` (held-out training images, tracked every epoch) when
    given, else on the even-numbered epochs of the test curve with D measured on the odd ones
    (a held-out split of epochs). So a flat curve gives D centred on 0.

    Noise. With per-image robust correctness `test_correct` (epochs x images, what the training
    loop tracks): a paired bootstrap over test images of each image's window difference
    (scipy.stats.bootstrap), whose spread already holds the epoch-to-epoch changes on those
    images. Without it (curves only), two sources added in quadrature, conservatively: the
    binomial SE of each window's accuracy on `n_images` images treated as independent samples
    (over-states the noise of a difference on the same images), and the epoch-to-epoch variance
    (from the first differences of the curve over the last two thirds of training, / k per
    window). The interval is D ± z·SE. Verdict: `present` when the interval lies below 0 (a significant decline),
    `absent` when it excludes a decline of `margin` or more (PAPER.md 5.3: RO is ≥ 1 pt),
    `inconclusive` otherwise. k defaults to 10 % of the epochs (the paper's selection window),
    at least 2 (the epoch split needs 2). `mde`: the smallest decline the interval would detect (80 % power, 5 % level).

    Not testable (`inconclusive`, `untestable` says why): when the best window overlaps the last
    one (nothing follows the best to decline: a learning rate annealed to ~0 at the end puts the
    best there, so D is 0 by construction), and, given the run's `regime`, when the network never
    learned or shows no robust generalisation gap (memorisation, the mechanism of RO, has nothing
    to work on). A decline measured in a run without a gap stays `present`; "absent" needs a
    regime where RO could occur, and a best window ending before `best_before` of training (else
    too little training follows the best to rule a decline out).
    """
    acc = np.asarray(test_acc, dtype=float)
    n_ep = len(acc)
    epochs = np.arange(1, n_ep + 1) if epochs is None else np.asarray(epochs)
    k = max(2, round(0.1 * n_ep)) if k is None else int(k)
    if k < 1 or n_images < 1:
        raise ValueError(f"robust_overfitting needs k >= 1 and n_images >= 1; got k={k}, n_images={n_images}")
    if val_acc is None and k < 2:   # one epoch chosen on an even position leaves no odd one to score it on
        raise ValueError("robust_overfitting without val_acc chooses each window on its even epochs and scores it on "
                         "its odd ones, so a window needs k >= 2 epochs; got k=1 (pass k >= 2, or val_acc)")
    if n_ep < 2 * k:   # too short to hold two windows: nothing to measure, say so
        nan = float("nan")
        return RobustOverfitting(nan, nan, (nan, nan), nan, nan, (0, 0), (0, 0), "", n_images, margin,
                                 INCONCLUSIVE, f"{n_ep} epochs are too few to compare two windows of {k} epochs: "
                                 "inconclusive", untestable_kind="too_short")
    if val_acc is not None:
        score = np.convolve(np.asarray(val_acc, dtype=float), np.ones(k) / k, mode="valid")
        start = int(np.argmax(score))
        use = np.ones(n_ep, bool)
        selected_on = "validation accuracy"
    else:   # held-out split of epochs: choose on even positions, measure on odd ones
        sel = np.where(np.arange(n_ep) % 2 == 0, acc, np.nan)
        score = [np.nanmean(sel[a:b]) for a, b in _windows(n_ep, k)]
        start = int(np.nanargmax(score))
        use = np.arange(n_ep) % 2 == 1
        selected_on = "even epochs (scored on odd epochs)"
    best = np.arange(start, start + k)
    last = np.arange(n_ep - k, n_ep)
    best_u, last_u = best[use[best]], last[use[last]]
    a_best, a_last = acc[best_u].mean(), acc[last_u].mean()
    d = a_last - a_best
    # overlapping windows (the best is at the end): the paired differences are 0 by construction,
    # not a measurement, so the conservative unpaired noise is used
    if test_correct is not None and best_u.size and last_u.size and not set(best_u) & set(last_u):
        c = np.asarray(test_correct, dtype=float)
        if c.shape[0] != n_ep:
            raise ValueError(f"test_correct has {c.shape[0]} rows; it needs one per epoch ({n_ep})")
        per_image = c[last_u].mean(0) - c[best_u].mean(0)
        boot = stats.bootstrap((per_image,), np.mean, n_resamples=2000, random_state=random_state,
                               method="percentile")
        se = float(boot.standard_error)
    else:
        se_images = math.sqrt((a_best * (1 - a_best) + a_last * (1 - a_last)) / n_images)
        # epoch-to-epoch scatter from the first differences of the second part of training (more
        # degrees of freedom than the k values of a window; differences remove a slow trend)
        tail = acc[n_ep // 3:]
        var_epoch = float(np.var(np.diff(tail), ddof=1)) / 2 if len(tail) > 2 else 0.0
        scatter = var_epoch / len(best_u) + var_epoch / len(last_u)
        se = math.sqrt(se_images ** 2 + scatter)
    z = _z(level)
    ci = (d - z * se, d + z * se)
    verdict = PRESENT if ci[1] < 0 else ABSENT if ci[0] > -margin else INCONCLUSIVE
    bw = (int(epochs[best[0]]), int(epochs[best[-1]]))
    lw = (int(epochs[last[0]]), int(epochs[last[-1]]))
    mde = mde_from_se(se)
    untestable = kind = ""
    if verdict == ABSENT and (best[-1] + 1) / n_ep > best_before:
        untestable = (f"the best window ends at {(best[-1] + 1) / n_ep:.0%} of training (epochs {bw[0]}-{bw[1]}): too "
                      "little training follows it to rule a decline out")
        verdict, kind = INCONCLUSIVE, "late_best"
    if set(best) & set(last):
        untestable = (f"the best window is the last one: the validation-best window (epochs {bw[0]}-{bw[1]}) overlaps "
                      f"the last {k} epochs ({lw[0]}-{lw[1]}), so nothing follows the best to decline (a learning rate "
                      "annealed to ~0 at the end puts the best there) and the change is 0 by construction")
        verdict, kind = INCONCLUSIVE, "window_end"
    why = regime.why_untestable("ro") if regime is not None else None
    if why and (not regime.learned or verdict != PRESENT):
        untestable, verdict, kind = why, INCONCLUSIVE, ("never_learned" if not regime.learned else "no_gap")
    meaning = {PRESENT: "a decline larger than its noise: robust overfitting is present",
               ABSENT: f"the interval excludes a decline of {100 * margin:.0f} pt or more: robust overfitting "
                       "is absent",
               INCONCLUSIVE: "the interval contains both 0 and a decline of "
                             f"{100 * margin:.0f} pt: inconclusive"}[verdict]
    if untestable:
        meaning = f"robust overfitting cannot be read from this run, because {untestable}: inconclusive at this scale"
    sentence = (f"the last {k} epochs ({lw[0]}-{lw[1]}) average {a_last:.1%} robust test accuracy against "
                f"{a_best:.1%} in the best window (epochs {bw[0]}-{bw[1]}, chosen on {selected_on}): a change "
                f"of {_pt(d)}, {level:.0%} interval [{_pt(ci[0])}, {_pt(ci[1])}] on {n_images} test images "
                f"(the smallest decline it would detect with {POWER:.0%} power: {mde_text(mde)}); {meaning}")
    return RobustOverfitting(d, se, ci, a_best, a_last, bw, lw, selected_on, n_images, margin, verdict, sentence,
                             mde, untestable, kind)


@dataclass(frozen=True)
class LessOverfitting(Result):
    statistic: float             # decline of B − decline of A (each: last window − best window); > 0: B declines less
    ci: tuple[float, float]
    decline_a: float
    decline_b: float
    labels: tuple[str, str]
    n_images: int
    verdict: str                 # REPRODUCTION of "B overfits less than A"
    mde: float
    sentence: str

    @property
    def statistic_text(self) -> str:
        if not math.isfinite(self.statistic):
            return "not measurable"
        return (f"{self.labels[1]} − {self.labels[0]} change {_pt(self.statistic)} [{_pt(self.ci[0])}, "
                f"{_pt(self.ci[1])}] (n = {self.n_images}; detectable ≥ {mde_text(self.mde)})")


def _window_rows(window: tuple[int, int], epochs=None) -> np.ndarray:
    """Row indices of the epochs from window[0] to window[1] (inclusive) in a per-epoch array whose
    epochs are `epochs` (None: 1, 2, ...)."""
    if epochs is None:
        return np.arange(window[0] - 1, window[1])
    e = np.asarray(epochs)
    return np.flatnonzero((e >= window[0]) & (e <= window[1]))


def less_robust_overfitting(ro_a: RobustOverfitting, correct_a, ro_b: RobustOverfitting, correct_b, *, epochs_a=None,
                            epochs_b=None, labels=("SAT", "TRADES"), level: float = LEVEL, random_state: int = 0,
                            best_before: float = 0.8) -> LessOverfitting:
    """B overfits less than A (PAPER.md 2.4: TRADES mitigates robust overfitting; 2.6: so does WEAT),
    read on two runs that tracked the same test images (`correct_*`: epochs x images, each run's
    per-image robust correctness, as `robust_overfitting` reads it). Each run's change per image is
    its last window's mean minus its best window's (the windows of `ro_a` / `ro_b`, each chosen on its
    own validation accuracy, so that runs learning at different speeds are each read at their best);
    the statistic is B's mean change minus A's (> 0: B declines less), with a paired bootstrap over
    the images (seed-to-seed noise is `replicated`'s business).

    Verdict: `reproduced` when the interval lies above 0 *and* A's own robust overfitting is present
    (less than a decline that is not established says nothing about mitigating it), `not
    reproduced` when the interval lies below 0, `inconclusive at this scale` otherwise. It cannot be
    read when A cannot show robust overfitting (too short, never learned, no robust gap, its best
    window at the end or ending after `best_before` of training: too little follows it), or when B
    never learned. B's best window at its end, or B without a robust gap, is what the claim predicts,
    not a reason to stop reading."""
    la, lb = labels
    ca, cb = np.asarray(correct_a), np.asarray(correct_b)
    if ca.shape[1:] != cb.shape[1:]:
        raise ValueError(f"less_robust_overfitting needs both runs on the same test images; got {ca.shape[1:]} and "
                         f"{cb.shape[1:]} images")
    n = int(ca.shape[1])
    short = [f"{label}: {ro.sentence}" for label, ro in ((la, ro_a), (lb, ro_b)) if ro.untestable_kind == "too_short"]
    if short:   # no two windows to read in one of the runs
        return LessOverfitting(math.nan, (math.nan, math.nan), math.nan, math.nan, tuple(labels), n, INCONCLUSIVE_SCALE,
                               math.nan, f"less overfitting cannot be read, because {'; '.join(short)}: inconclusive "
                               "at this scale")
    for label, ro in ((la, ro_a), (lb, ro_b)):
        if ro.selected_on != "validation accuracy":
            raise ValueError(f"less_robust_overfitting needs each run's best window chosen on validation accuracy; "
                             f"{label}'s was chosen on {ro.selected_on} (pass val_acc to robust_overfitting)")
    blocked = []
    if ro_a.untestable_kind in ("never_learned", "no_gap", "window_end"):
        blocked.append(f"{la}: {ro_a.untestable}")
    if ro_b.untestable_kind == "never_learned":
        blocked.append(f"{lb}: {ro_b.untestable}")
    changes = []
    for ro, c, epochs in ((ro_a, ca, epochs_a), (ro_b, cb, epochs_b)):
        last, best = _window_rows(ro.last_window, epochs), _window_rows(ro.best_window, epochs)
        changes.append(c[last].mean(0) - c[best].mean(0))
    end_a = (_window_rows(ro_a.best_window, epochs_a).max() + 1) / len(ca)
    if not blocked and end_a > best_before:
        blocked.append(f"{la}: its best window ends at {end_a:.0%} of training (epochs {ro_a.best_window[0]}-"
                       f"{ro_a.best_window[1]}), too little training follows it to decline")
    per_image = changes[1] - changes[0]
    stat = float(per_image.mean())
    boot = stats.bootstrap((per_image,), np.mean, n_resamples=2000, random_state=random_state, method="percentile",
                           confidence_level=level)
    ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
    mde = float(mde_from_se(boot.standard_error))
    verdict = REPRODUCED if ci[0] > 0 else NOT_REPRODUCED if ci[1] < 0 else INCONCLUSIVE_SCALE
    meaning = (f"{lb} declines less than {la} by more than the noise" if verdict == REPRODUCED else
               f"{lb} declines more than {la} by more than the noise" if verdict == NOT_REPRODUCED else
               f"the difference is within the noise (the smallest it would detect with {POWER:.0%} power: "
               f"{mde_text(mde)})")
    if verdict == REPRODUCED and ro_a.verdict != PRESENT:
        verdict = INCONCLUSIVE_SCALE
        meaning += (f", but {la}'s own robust overfitting is {ro_a.verdict} in this run, so there is no established "
                    "decline to be less than: inconclusive at this scale")
    if blocked:
        verdict = INCONCLUSIVE_SCALE
        meaning = "less overfitting cannot be read, because " + "; ".join(blocked) + ": inconclusive at this scale"
    sentence = (f"robust test accuracy from the best window to the last changes by {_pt(float(changes[0].mean()))} "
                f"for {la} and {_pt(float(changes[1].mean()))} for {lb} on the same {n} test images: {lb} − {la} = "
                f"{_pt(stat)}, {level:.0%} paired bootstrap interval [{_pt(ci[0])}, {_pt(ci[1])}]; {meaning}")
    return LessOverfitting(stat, ci, float(changes[0].mean()), float(changes[1].mean()), tuple(labels), n, verdict,
                           mde, sentence)


# ----------------------------------------------------------------------------- phases
@dataclass(frozen=True)
class PhaseFit(Result):
    verdict: str                     # one of PHASES
    boundaries: tuple[float, ...]    # breakpoint epochs of the chosen model (empty for a line)
    slopes: tuple[float, ...]        # slope per segment of the chosen model
    bic: dict = field(default_factory=dict)   # {"line", "one", "two"}: BIC of each model
    delta_bic: float = 0.0           # BIC(line) − BIC(chosen): > 0 when a phase model won
    sentence: str = ""

    @property
    def statistic_text(self) -> str:
        if not self.bic:
            return f"{self.verdict}: too few epochs to fit"
        where = ", ".join(f"{b:g}" for b in self.boundaries) or "none"
        return f"{self.verdict} (breakpoints: {where}; ΔBIC vs one line {self.delta_bic:.1f})"

    @property
    def paper_shaped(self) -> bool:
        """Fast drop, slower drift, faster drop again: the shape of PAPER.md 2.2."""
        if self.verdict != THREE_PHASES:
            return False
        s1, s2, s3 = self.slopes
        return s1 < 0 and s3 < 0 and abs(s1) > abs(s2) and abs(s3) > abs(s2)


def _hinge_basis(x: np.ndarray, knots) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x] + [np.maximum(x - t, 0.0) for t in knots])


def _hinge_fit(x: np.ndarray, y: np.ndarray, knots) -> tuple[float, np.ndarray]:
    """Least-squares continuous piecewise-linear fit with hinges at `knots`: (RSS, coefficients)."""
    basis = _hinge_basis(x, knots)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    resid = y - basis @ coef
    return float(resid @ resid), coef


def _hinge_fits(x: np.ndarray, y: np.ndarray, knot_sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_hinge_fit` for every row of `knot_sets` (m x n_knots) at once (batched least squares)."""
    hinges = np.maximum(x[None, :, None] - knot_sets[:, None, :], 0.0)           # m x n x knots
    ones = np.broadcast_to(np.stack([np.ones_like(x), x], 1), (len(knot_sets), len(x), 2))
    basis = np.concatenate([ones, hinges], axis=2)
    gram = basis.transpose(0, 2, 1) @ basis
    coef = np.linalg.solve(gram, (basis.transpose(0, 2, 1) @ y)[..., None])[..., 0]   # m x p
    resid = y[None, :] - np.einsum("mnp,mp->mn", basis, coef)
    return (resid ** 2).sum(1), coef


SMOOTH_DEGREES = (2, 3, 4, 5)   # smooth alternatives: polynomials up to the two-breakpoint model's 6 free values


def _lag1(resid: np.ndarray) -> float:
    """Lag-1 autocorrelation of residuals, clipped to [0, 0.95] (negative autocorrelation is not
    counted as extra information)."""
    r = resid - resid.mean()
    denom = float(r @ r)
    return 0.0 if denom <= 0 else float(np.clip((r[1:] @ r[:-1]) / denom, 0.0, 0.95))


def _effective_epochs(n: int, rho: float) -> float:
    """n(1 − ρ)/(1 + ρ) epochs carry the information of independent ones under lag-1 autocorrelation ρ;
    at least 2, since ln(n_eff) is the BIC's price of a parameter and must stay positive."""
    return max(2.0, n * (1 - rho) / (1 + rho))


def _phase_model(scores: dict, bic_margin: float) -> str:
    """The model `phase_structure` chooses from its BICs ({"line", "one", optionally "two", "poly<d>"...}).

    A phase model must beat the line and every smooth curve by `bic_margin`; two breakpoints must
    also beat one breakpoint by the margin, unless one breakpoint did not itself qualify (two is then
    lower than one anyway: one lost to a model that two beat by the margin). Otherwise "line": no
    phase structure."""
    smooth = [m for m in scores if m.startswith("poly")]

    def wins(model, others):
        return all(scores[model] < scores[o] - bic_margin for o in others)

    if "two" in scores and wins("two", ["line", "one", *smooth]):
        return "two"
    if wins("one", ["line", *smooth]):
        return "one"
    if "two" in scores and wins("two", ["line", *smooth]):
        return "two"
    return "line"


def phase_structure(values, epochs=None, *, min_segment: int = 5, bic_margin: float = BIC_MARGIN) -> PhaseFit:
    """Phases of a per-epoch curve (training-set mean ΔE(x), PAPER.md 2.2) by model comparison.

    Least-squares models of the curve: one line; a continuous piecewise-linear curve with one
    breakpoint and with two (breakpoints searched over the epochs, each segment at least
    `min_segment` epochs); and, as smooth alternatives with as many free values, polynomials of
    degree 2-5 (`SMOOTH_DEGREES`: a curve that bends smoothly has no phases, and the two-breakpoint
    model has 4 coefficients + 2 searched breakpoints). BIC = n_eff·ln(max(RSS/n, floor)) +
    p·ln(n_eff), where p counts the coefficients, the noise variance and each breakpoint twice
    (`KNOT_COST`: a location searched over the epochs buys more fit than one coefficient does), the
    floor is (1e-9 × the curve's scale)² (an exact fit is decided on its parameters, not on
    rounding), and n_eff = n(1 − ρ)/(1 + ρ) with ρ the lag-1 autocorrelation of the residuals of the
    best-fitting rich model (two breakpoints or degree 5): a per-epoch curve's noise is
    autocorrelated, and treating it as independent would let any wiggle look like a phase (n_eff is
    at least 2). ρ is 0 when the rich model's RSS/n is at the floor: such residuals are rounding, and
    their autocorrelation depends on the CPU's arithmetic, not on the curve. A phase model is chosen
    only when its BIC beats the line and every smooth alternative by `bic_margin` (10: very strong
    evidence); two breakpoints must also beat one by the margin when one breakpoint qualifies on its
    own (`_phase_model`). So noise, a line or one smooth bend give "no phase structure". The two
    breakpoints of a three-phase model are the end of phase 1 and the start of phase 3. Whether
    the paper's phases are reproduced also needs robust overfitting where phase 3 begins:
    `phases_reproduced`.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    x = np.arange(1, n + 1, dtype=float) if epochs is None else np.asarray(epochs, dtype=float)
    if n < 3 * min_segment + 1 or not np.all(np.isfinite(y)):
        return PhaseFit(NO_PHASES, (), (), {}, 0.0, f"{n} finite epochs are too few to look for phases "
                        f"(a three-phase fit needs at least {3 * min_segment + 1})")
    # a floor on RSS/n so that an exact line (RSS ~ 1e-30) does not decide by rounding
    floor = (1e-9 * (np.ptp(y) + np.abs(y).max() + 1e-12)) ** 2
    rss0, coef0 = _hinge_fit(x, y, [])
    inner = np.arange(min_segment - 1, n - min_segment)   # knot at x[i]: ≥ min_segment points on each side
    rss1, coef1 = _hinge_fits(x, y, x[inner][:, None])
    i1 = int(np.argmin(rss1))
    fits = {"line": (rss0, 2, 0, (), coef0), "one": (rss1[i1], 3, 1, (x[inner[i1]],), coef1[i1])}
    pairs = np.array([(i, j) for i in inner for j in range(i + min_segment, n - min_segment)])
    if len(pairs):
        rss2, coef2 = _hinge_fits(x, y, x[pairs])
        i2 = int(np.argmin(rss2))
        fits["two"] = (rss2[i2], 4, 2, tuple(x[pairs[i2]]), coef2[i2])
    t = (x - x.mean()) / (np.ptp(x) / 2 or 1.0)     # scaled for well-conditioned polynomial fits
    resid_smooth = {}
    for degree in SMOOTH_DEGREES:
        coef = np.polynomial.polynomial.polyfit(t, y, degree)
        resid_smooth[degree] = y - np.polynomial.polynomial.polyval(t, coef)
        fits[f"poly{degree}"] = (float(resid_smooth[degree] @ resid_smooth[degree]), degree + 1, 0, (), None)
    # autocorrelation from the residuals of the richest model that fits best
    rich = resid_smooth[max(SMOOTH_DEGREES)]
    if "two" in fits and fits["two"][0] < fits[f"poly{max(SMOOTH_DEGREES)}"][0]:
        rich = y - _hinge_basis(x, fits["two"][3]) @ fits["two"][4]
    # residuals at the RSS floor are rounding (a curve the rich model fits exactly): their autocorrelation is the BLAS's
    rho = _lag1(rich) if float(rich @ rich) / n > floor else 0.0
    n_eff = _effective_epochs(n, rho)

    def bic(rss, n_coef, n_knots):
        return n_eff * math.log(max(rss / n, floor)) + (n_coef + KNOT_COST * n_knots + 1) * math.log(n_eff)

    scores = {m: bic(f[0], f[1], f[2]) for m, f in fits.items()}
    best_smooth = min((m for m in scores if m.startswith("poly")), key=scores.get)
    chosen = _phase_model(scores, bic_margin)
    _, _, _, knots, coef = fits[chosen]
    slopes = tuple(float(v) for v in np.cumsum(coef[1:]))
    verdict = {"line": NO_PHASES, "one": ONE_CHANGE, "two": THREE_PHASES}[chosen]
    delta = scores["line"] - scores[chosen]
    bics = {m: round(v, 2) for m, v in scores.items()}
    knots = tuple(float(k) for k in knots)
    autocorr = f"residual autocorrelation {rho:.2f}, so {n_eff:.0f} effectively independent epochs of {n}"
    if verdict == NO_PHASES:
        bend = scores[best_smooth] < scores["line"] - bic_margin
        what = (f"a smooth curve (polynomial of degree {best_smooth[4:]}) describes the curve as well as models with "
                "breakpoints" if bend else
                f"one straight line (slope {slopes[0]:+.4f} per epoch) describes the curve as well as models with "
                "breakpoints or smooth bends")
        sentence = (f"{what} once their extra parameters are paid for (BIC: line {bics['line']:.1f}, one breakpoint "
                    f"{bics['one']:.1f}, two {bics.get('two', float('nan')):.1f}, best smooth {bics[best_smooth]:.1f}; "
                    f"{autocorr}): no phase structure")
    else:
        seg = ", ".join(f"{v:+.4f}" for v in slopes)
        sentence = (f"a piecewise-linear fit with breakpoint(s) at epoch {', '.join(f'{k:g}' for k in knots)} beats one "
                    f"line by ΔBIC = {delta:.1f} and the best smooth curve (degree {best_smooth[4:]}) by "
                    f"{scores[best_smooth] - scores[chosen]:.1f} (margin {bic_margin:g}; {autocorr}); slopes per "
                    f"segment {seg} per epoch")
    return PhaseFit(verdict, knots, slopes, bics, float(delta), sentence)


@dataclass(frozen=True)
class PhasesReproduced(Result):
    verdict: str                 # REPRODUCTION of PAPER.md 2.2's three phases with phase 3 at RO
    phases: PhaseFit
    ro: RobustOverfitting
    ro_onset: float | None       # the last epoch of the validation-best window: RO begins after it
    sentence: str

    @property
    def statistic_text(self) -> str:
        where = f"; RO begins after epoch {self.ro_onset:g}" if self.ro_onset is not None else ""
        return f"{self.phases.statistic_text}; RO {self.ro.verdict}{where}"


def phases_reproduced(phases: PhaseFit, ro: RobustOverfitting, *, tolerance: float = 0.1) -> PhasesReproduced:
    """PAPER.md 2.2's claim is not the shape alone: the ΔE(x) curve has three phases (fast drop,
    slow drift, faster drop: `PhaseFit.paper_shaped`) AND phase 3 begins where robust
    overfitting begins. Reproduced when both hold, with the second breakpoint within `tolerance` x
    the run's epochs (at least 2 epochs) of the end of the validation-best window of `ro`; not
    reproduced when RO is present and the phases are of another shape, elsewhere, or beaten by a
    line or smooth curve by the BIC margin; inconclusive at this scale when RO is not present (phase 3
    is defined by it), the curve is too short to fit, or the phases are merely not detected (under
    autocorrelated noise the three-phase fit's power is low: measured 27 of 60 draws at AR(1) ρ = 0.5
    and 13 of 60 at ρ = 0.8 for the paper-shaped curve with σ = 0.02)."""
    onset = float(ro.best_window[1]) if math.isfinite(ro.statistic) else None
    n_epochs = ro.last_window[1] if math.isfinite(ro.statistic) else 0
    if ro.verdict != PRESENT:
        why = ro.untestable or f"robust overfitting is {ro.verdict} in this run"
        return PhasesReproduced(INCONCLUSIVE_SCALE, phases, ro, onset,
                                f"phase 3 is where robust overfitting begins, and {why}: the three-phase claim "
                                f"cannot be read here (the ΔE(x) curve: {phases.verdict})")
    if not phases.bic:
        return PhasesReproduced(INCONCLUSIVE_SCALE, phases, ro, onset, phases.sentence)
    if not phases.paper_shaped:
        # "not reproduced" needs evidence against the phases: three phases of another shape, or a line or
        # smooth curve beating the three-phase fit by the margin; otherwise the fit only failed to detect them
        bic = phases.bic
        simpler = min(v for m, v in bic.items() if m == "line" or m.startswith("poly"))
        against = phases.verdict == THREE_PHASES or ("two" in bic and simpler < bic["two"] - BIC_MARGIN)
        text = (f"robust overfitting is present (it begins after epoch {onset:g}) but the ΔE(x) curve shows "
                f"{phases.verdict}" + (" of another shape than the paper's" if phases.verdict == THREE_PHASES else ""))
        if not against:
            return PhasesReproduced(INCONCLUSIVE_SCALE, phases, ro, onset,
                                    f"{text}, and no simpler curve beats a three-phase fit by the margin either: the "
                                    "phases are not detected at this noise, which is not evidence against them")
        return PhasesReproduced(NOT_REPRODUCED, phases, ro, onset, text)
    allowed = max(2.0, tolerance * n_epochs)
    off = abs(phases.boundaries[1] - onset)
    verdict = REPRODUCED if off <= allowed else NOT_REPRODUCED
    text = (f"phase 3 begins at epoch {phases.boundaries[1]:g}, {off:g} epochs from where robust overfitting begins "
            f"(after epoch {onset:g}; allowed {allowed:g})")
    return PhasesReproduced(verdict, phases, ro, onset,
                            f"three phases of the paper's shape and robust overfitting: {text}: "
                            f"{'reproduced' if verdict == REPRODUCED else 'not where the paper puts it'}")


# ----------------------------------------------------------------------------- catastrophic overfitting
@dataclass(frozen=True)
class CatastrophicOverfitting(Result):
    verdict: str                 # PRESENCE
    onset: float | None          # first tracked point (epochs, e.g. 2.5) at the collapsed level
    peak: float                  # best robust accuracy before the onset (or overall)
    after: float                 # mean robust accuracy from the onset to the end (or the last epoch's)
    final: float
    n_images: int
    sentence: str
    final_correct: str | None = None   # the last epoch's per-image robust outcomes (`bits.pack`), when tracked
    clean_final: float | None = None   # the last epoch's clean test accuracy, when given
    diverged: bool = False             # clean accuracy at chance or a constant output at the end: the run stopped learning
    untestable: str = ""               # the run's regime: why CO cannot be read from it (never learned)

    @property
    def statistic_text(self) -> str:
        if self.untestable:
            return f"not testable here: {self.untestable.split(':')[0]} (n = {self.n_images})"
        if self.diverged:
            return (f"diverged: clean {self.clean_final:.1%}; robust peak {self.peak:.1%}, final "
                    f"{self.final:.1%} (n = {self.n_images})")
        if self.onset is None:
            return f"no collapse: peak {self.peak:.1%}, final {self.final:.1%} (n = {self.n_images})"
        return f"collapse at epoch {_ep(self.onset)}: {self.peak:.1%} → {self.after:.1%} (n = {self.n_images})"


def catastrophic_overfitting(acc, n_images: int, epochs=None, *, clean=None, chance: float | None = None,
                             constant_output: bool = False, frac: float = 0.3, abrupt: int = 2,
                             level: float = LEVEL, regime: Regime | None = None) -> CatastrophicOverfitting:
    """Catastrophic overfitting (PAPER.md 2.3): robust (PGD) test accuracy of a single-step run
    collapses abruptly to near 0 and stays there.

    Per epoch, the accuracy on `n_images` test images has a Wilson interval. The onset is the
    first epoch e whose accuracy is at most `frac` × the best accuracy before it (the peak) and
    whose interval lies entirely below the peak's (a drop larger than the binomial noise); it is
    *abrupt* when the accuracy was still at least half the peak within `abrupt` tracked points (epochs,
    or half epochs for a run tracked twice per epoch) before e,
    and it *stays* when the mean accuracy from e to the end is at most `frac` × peak and the last
    epoch's interval is still below the peak's. Verdict: `present` when such an onset exists;
    `absent` when none does and the last epoch's accuracy is significantly above `frac` × peak
    (its interval lies above it) after a peak significantly above 0; `inconclusive` otherwise
    (the run never became robust, or a drop within noise).

    `clean` (per-epoch clean test accuracy on the same images) and `chance` (1 / classes);
    `constant_output`: the last epoch's network gives every tracked image the same logits. PAPER.md
    2.3 describes CO by the PGD accuracy alone; that the network still classifies clean images is the
    CO literature's setting (Wong et al. 2020; Andriushchenko & Flammarion 2020: clean accuracy
    stays or rises while PGD accuracy falls to 0), taken here as part of the definition. A run that
    ends with a constant output, or with a clean accuracy not significantly above chance (its Wilson
    interval reaches `chance`), has diverged: its robust accuracy is the share of one class in the
    tracked images, which says nothing about CO either way, so the verdict is `inconclusive`
    (`diverged`), whatever the robust curve did (a CO followed by divergence included).

    `regime` (the run's `energy_lib.regime.Regime`): a network that never learned (clean accuracy
    never significantly above twice chance) cannot show CO, which presupposes a network that learned
    features first; its verdict is `inconclusive` with the regime's figures (`untestable`), never
    `absent`. The points may be within-epoch tracking points (`epochs` fractional): CO is abrupt.
    """
    a = np.asarray(acc, dtype=float)
    n_ep = len(a)
    epochs = np.arange(1, n_ep + 1) if epochs is None else np.asarray(epochs)
    if n_ep < 2 or n_images < 1:
        raise ValueError(f"catastrophic_overfitting needs at least 2 epochs and n_images >= 1; got {n_ep}, "
                         f"{n_images}")
    if (clean is None) != (chance is None):
        raise ValueError("catastrophic_overfitting: give both `clean` and `chance` (1 / classes), or neither")
    if clean is not None:
        clean = np.asarray(clean, dtype=float)
        if len(clean) != n_ep:
            raise ValueError(f"clean has {len(clean)} epochs, acc {n_ep}: give both per epoch of the same run")
    counts = np.rint(a * n_images).astype(int)
    ci = [wilson(c, n_images, level) for c in counts]
    onset = None
    for e in range(1, n_ep):
        p = int(np.argmax(a[:e]))
        peak = a[p]
        if not (a[e] <= frac * peak and ci[e][1] < ci[p][0]):
            continue
        was_high = [j for j in range(max(0, e - abrupt), e) if a[j] >= 0.5 * peak]
        stays = a[e:].mean() <= frac * peak and ci[-1][1] < ci[p][0]
        if was_high and stays:
            onset = e
            break
    peak_all = float(a.max() if onset is None else a[:onset].max())
    final = float(a[-1])
    if onset is not None:
        after = float(a[onset:].mean())
        verdict = PRESENT
        sentence = (f"robust test accuracy falls from a peak of {peak_all:.1%} to {a[onset]:.1%} at epoch "
                    f"{_ep(epochs[onset])} and averages {after:.1%} from there to the end ({n_images} test images: "
                    "the drop is larger than the binomial noise): catastrophic overfitting is present")
    else:
        after = final
        p = int(np.argmax(a))
        robust_peak = ci[p][0] > 0
        if robust_peak and ci[-1][0] > frac * peak_all:
            verdict = ABSENT
            sentence = (f"robust test accuracy peaks at {peak_all:.1%} and ends at {final:.1%}, significantly above "
                        f"{frac:.0%} of the peak, with no abrupt collapse: catastrophic overfitting is absent")
        else:
            verdict = INCONCLUSIVE
            why = ("the run never became significantly robust" if not robust_peak else
                   "the accuracy ends too close to the collapsed level to rule a collapse out")
            sentence = (f"robust test accuracy peaks at {peak_all:.1%} and ends at {final:.1%} on {n_images} test "
                        f"images; {why}: inconclusive")
    clean_final, diverged = None, False
    if clean is not None:
        clean_final = float(clean[-1])
        diverged = constant_output or wilson(int(round(clean_final * n_images)), n_images, level)[0] <= chance
        if diverged:
            verdict = INCONCLUSIVE
            why = ("the network gives every tracked test image the same logits" if constant_output else
                   f"clean test accuracy ends at {clean_final:.1%}, not significantly above chance ({chance:.0%}, "
                   f"{n_images} test images)")
            sentence = (f"{why}: the run diverged, so its robust accuracy ({final:.1%} at the end, peak "
                        f"{peak_all:.1%}) says nothing about catastrophic overfitting: inconclusive")
    if regime is not None and regime.diverged and not diverged:   # a divergence before the end counts too
        diverged, verdict = True, INCONCLUSIVE
        sentence = (f"the run {regime.sentence.split(':')[0]}: a network that stopped classifying says nothing about "
                    f"catastrophic overfitting (robust accuracy peak {peak_all:.1%}, final {final:.1%}): inconclusive")
    untestable = ""
    if regime is not None and not regime.learned:
        untestable, verdict = regime.never_learned_text, INCONCLUSIVE
        sentence = (f"{untestable}; catastrophic overfitting presupposes a network that learned first, so this run's "
                    f"robust curve (peak {peak_all:.1%}, final {final:.1%}) cannot show it: inconclusive at this scale")
    onset_at = None if onset is None else float(epochs[onset])
    return CatastrophicOverfitting(verdict, None if onset_at is None else (int(onset_at) if onset_at.is_integer()
                                                                            else onset_at),
                                   peak_all, after, final, n_images, sentence, clean_final=clean_final,
                                   diverged=diverged, untestable=untestable)


@dataclass(frozen=True)
class AccuracyComparison(Result):
    statistic: float             # acc_a − acc_b
    se: float                    # the SE of the difference: paired when `paired`, else unpaired
    ci: tuple[float, float]      # Newcombe's interval of the difference at `level` (paired or independent)
    se_unpaired: float           # the unpaired binomial SE at the same n, for reference
    paired: bool                 # McNemar on per-image correctness (True) or two-proportion z-test
    p_value: float
    test: str                    # which test, in words (and why unpaired, when a caller says so)
    acc_a: float
    acc_b: float
    labels: tuple[str, str]
    n_images: int
    verdict: str                 # REPRODUCTION for the claim "a is more robust than b"
    sentence: str
    mde: float = float("nan")            # smallest difference detectable at 80 % power, 5 % level
    discordance: float | None = None     # paired: share of images the two classify differently

    @property
    def statistic_text(self) -> str:
        how = "paired, McNemar" if self.paired else "unpaired, z-test"
        return (f"{self.labels[0]} − {self.labels[1]}: {_pt(self.statistic)} [{_pt(self.ci[0])}, {_pt(self.ci[1])}] "
                f"({how} p = {self.p_value:.2g}, n = {self.n_images}; detectable ≥ {mde_text(self.mde)})")

    def images_needed(self, effect: float) -> float:
        """Test images this comparison would need to detect a true difference `effect` (80 % power,
        5 % level): paired at its observed discordance, else two independent samples at its accuracy."""
        if self.paired:
            return paired_n_needed(effect, self.discordance or 0.0)
        return unpaired_n_needed(effect, (self.acc_a + self.acc_b) / 2)

    def power_text(self, effect: float, what: str = "the paper's") -> str:
        """'the paper's +1.3 pt needs about 4,400 paired images at this discordance (10 %); this build has 1,000'."""
        need = self.images_needed(effect)
        how = (f"paired images at this discordance ({self.discordance:.0%})" if self.paired else
               "images per method (unpaired)")
        need_text = "more images than exist" if not math.isfinite(need) else f"about {math.ceil(need):,}"
        return f"{what} {_pt(effect)} needs {need_text} {how}; this build has {self.n_images:,}"


def _unpaired_se(acc_a: float, acc_b: float, n_images: int) -> float:
    return math.sqrt((acc_a * (1 - acc_a) + acc_b * (1 - acc_b)) / n_images)


# PAPER.md 5.3: "WEAT ranking assertions only when the margin exceeds 0.5 pt" (single-seed AA: ±1.0 pt).
# The paired test covers which test images were drawn, not which training seed: one trained model
# per method says nothing about seed noise, so a direction is claimed only beyond this margin.
RANKING_MARGIN = 0.005


def compare_accuracy(acc_a: float, acc_b: float, n_images: int, *, labels=("A", "B"), correct_a=None,
                     correct_b=None, level: float = LEVEL, why_unpaired: str = "",
                     margin: float = RANKING_MARGIN) -> AccuracyComparison:
    """Is A more robust than B on the same `n_images` test images (PAPER.md 4.1)?

    With per-image correctness of both (`correct_a`, `correct_b`, the same images in the same
    order; the accuracies and `n_images` are then taken from them): paired. Of the b + c
    discordant images (A right and B wrong: b; the reverse: c), McNemar's exact test
    (scipy.stats.binomtest of b in b + c at 1/2) gives the p-value; the difference
    d = (b − c) / n has the paired SE √(b + c − n·d²) / n. Images both get right or both get
    wrong carry no information about the difference, so with many concordant images this noise is
    much smaller than the unpaired one. Without per-image correctness: a two-proportion z-test with
    the unpooled binomial SE, which over-states the noise of a paired difference (so it errs
    towards "inconclusive"); `why_unpaired` says why in the result's `test` and sentence. Both
    give `se_unpaired` for reference.

    The interval of the difference at `level` is Newcombe's (paired: method 10 with the 2x2
    table's φ; unpaired: the hybrid score interval), an interval for d itself, which the test's
    p-value is not. The verdict keeps the exact test: on the claim "A > B", `reproduced` when the
    test is significant at 1 − `level` AND the interval lies above +`margin`, `not reproduced` when
    significant and the interval lies below −`margin`, `inconclusive at this scale` otherwise:
    either the test is not significant, or it is but the difference may be training-seed noise
    (the interval reaches into ±`margin`, PAPER.md 5.3's 0.5 pt; the test covers the test images
    only, each method being one trained model). `margin=0` gives the test's own verdict (with the
    interval's side).

    `mde`: the smallest true difference this comparison detects with 80 % power at the 5 % level
    (paired: at its observed discordance, Connor 1987); `images_needed(effect)` and
    `power_text(effect)` state what a given effect (e.g. the paper's) would need.
    """
    paired = correct_a is not None and correct_b is not None
    if margin < 0:
        raise ValueError(f"margin={margin} must be non-negative (PAPER.md 5.3: 0.005, i.e. 0.5 pt)")
    discordance = None
    if paired:
        ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
        if ca.shape != cb.shape:
            raise ValueError(f"per-image correctness of different shapes {ca.shape} / {cb.shape}: the comparison "
                             "needs the same test images")
        n_images = ca.size
        acc_a, acc_b = ca.mean(), cb.mean()
        both, only_a, only_b = int((ca & cb).sum()), int((ca & ~cb).sum()), int((~ca & cb).sum())
        d = (only_a - only_b) / n_images
        se = math.sqrt(max(only_a + only_b - n_images * d * d, 0.0)) / n_images
        discordance = (only_a + only_b) / n_images
        p = stats.binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
        ci = newcombe_paired(both, only_a, only_b, n_images - both - only_a - only_b, level)
        mde = paired_mde(n_images, discordance)
        test = f"McNemar exact test on the {only_a} vs {only_b} discordant images (paired)"
    else:
        d = acc_a - acc_b
        se = _unpaired_se(acc_a, acc_b, n_images)
        p = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else (1.0 if d == 0 else 0.0)
        ci = newcombe_unpaired(round(acc_a * n_images), n_images, round(acc_b * n_images), n_images, level)
        mde = unpaired_mde(n_images, (acc_a + acc_b) / 2)
        test = f"two-proportion z-test (unpaired binomial SE{'; ' + why_unpaired if why_unpaired else ''})"
    se_unpaired = _unpaired_se(acc_a, acc_b, n_images)
    significant = p < 1 - level
    verdict = (REPRODUCED if significant and d > 0 and ci[0] > margin else
               NOT_REPRODUCED if significant and d < 0 and ci[1] < -margin else INCONCLUSIVE_SCALE)
    a, b = labels
    seeds = f"; one trained model each: a direction needs the interval beyond ±{100 * margin:.1f} pt" if margin else ""
    text = {REPRODUCED: f"{a} is significantly more robust than {b}{seeds}",
            NOT_REPRODUCED: f"{b} is significantly more robust than {a}{seeds}",
            INCONCLUSIVE_SCALE: ("the difference is within the noise of this many test images"
                                 if not significant or ci[0] <= 0 <= ci[1] else
                                 f"significant on these test images, but the interval reaches into the "
                                 f"±{100 * margin:.1f} pt that training-seed noise can give (PAPER.md 5.3)")}[verdict]
    if verdict == INCONCLUSIVE_SCALE:
        text += _detectable(mde_text(mde))
    noise = (f"paired SE {100 * se:.1f} pt, unpaired SE {100 * se_unpaired:.1f} pt" if paired else
             f"SE {100 * se:.1f} pt")
    sentence = (f"{a} {acc_a:.1%} vs {b} {acc_b:.1%} on {n_images} test images: {_pt(d)}, {level:.0%} Newcombe "
                f"interval [{_pt(ci[0])}, {_pt(ci[1])}] ({noise}; verdict from the {test}, p = {p:.2g}); {text}")
    return AccuracyComparison(statistic=float(d), se=float(se), ci=(float(ci[0]), float(ci[1])),
                              se_unpaired=float(se_unpaired), paired=paired, p_value=float(p), test=test,
                              acc_a=float(acc_a), acc_b=float(acc_b), labels=tuple(labels), n_images=int(n_images),
                              verdict=verdict, sentence=sentence, mde=float(mde), discordance=discordance)


def at_least(comparison: AccuracyComparison, threshold: float, claim: str) -> AccuracyComparison:
    """A comparison read for the claim "A beats B by at least `threshold`" (e.g. PAPER.md 5.3: SAT +
    DER ≥ SAT + 1 pt): `reproduced` when the test is significant and the interval lies above the
    threshold, `not reproduced` when the interval lies below it (the gain is smaller than claimed),
    else inconclusive at this scale."""
    low, high = comparison.ci
    significant = comparison.p_value < 1 - LEVEL
    verdict = (REPRODUCED if significant and low > threshold else NOT_REPRODUCED if high < threshold
               else INCONCLUSIVE_SCALE)
    text = {REPRODUCED: f"the gain is above {_pt(threshold)} by more than the noise",
            NOT_REPRODUCED: f"the interval lies below {_pt(threshold)}: the gain is smaller than claimed",
            INCONCLUSIVE_SCALE: f"the interval contains {_pt(threshold)}"}[verdict]
    if verdict == INCONCLUSIVE_SCALE:   # what this many images could have told apart, and what the claim needs
        text += f"{_detectable(mde_text(comparison.mde))}; {comparison.power_text(threshold, 'a true gain of')}"
    a, b = comparison.labels
    sentence = (f"{a} {comparison.acc_a:.1%} vs {b} {comparison.acc_b:.1%} on {comparison.n_images} images: "
                f"{_pt(comparison.statistic)}, {LEVEL:.0%} Newcombe interval [{_pt(low)}, {_pt(high)}] ({comparison.test}, "
                f"p = {comparison.p_value:.2g}); for the claim {claim}: {text}")
    return dataclasses.replace(comparison, verdict=verdict, sentence=sentence)


@dataclass(frozen=True)
class DerPreventsCO(Result):
    verdict: str                 # REPRODUCTION
    base: CatastrophicOverfitting
    der: CatastrophicOverfitting
    final: AccuracyComparison    # DER − base, final epoch
    sentence: str

    @property
    def statistic_text(self) -> str:
        return f"without DER: {self.base.statistic_text}; with DER: {self.der.statistic_text}"


def der_prevents_co(base: CatastrophicOverfitting, der: CatastrophicOverfitting,
                    level: float = LEVEL) -> DerPreventsCO:
    """DER prevents CO (PAPER.md 2.7, 5.3 item 7): reproduced when the single-step run without DER
    has CO and the one with DER does not; not reproduced when both have it; inconclusive at this
    scale when the run without DER shows no CO (nothing to prevent), a verdict is inconclusive, or
    a run is untestable in its regime (never learned) or diverged. The final robust accuracies are
    compared (`final`, with its smallest detectable difference)."""
    if base.n_images != der.n_images:
        raise ValueError("the two runs were tracked on different numbers of test images; track both on the same")
    paired = base.final_correct is not None and der.final_correct is not None
    final = compare_accuracy(
        der.final, base.final, base.n_images, labels=("with DER", "without DER"), level=level,
        correct_a=bits.unpack(der.final_correct, der.n_images) if paired else None,
        correct_b=bits.unpack(base.final_correct, base.n_images) if paired else None,
        why_unpaired="" if paired else "a run's metrics hold no per-image outcomes of its last epoch")
    if base.untestable or der.untestable:
        which = "both runs" if base.untestable and der.untestable else "the run " + (
            "without" if base.untestable else "with") + " DER"
        verdict, text = INCONCLUSIVE_SCALE, f"in {which} {(base.untestable or der.untestable).split(':')[0]}"
    elif base.diverged or der.diverged:
        which = "both runs" if base.diverged and der.diverged else "the run " + ("without" if base.diverged else "with") + " DER"
        verdict, text = INCONCLUSIVE_SCALE, f"{which} diverged (clean accuracy at chance or a constant output)"
    elif base.verdict == PRESENT and der.verdict == ABSENT:
        verdict, text = REPRODUCED, "DER prevented the collapse"
    elif base.verdict == PRESENT and der.verdict == PRESENT:
        verdict, text = NOT_REPRODUCED, "the run with DER collapsed too"
    elif base.verdict != PRESENT:
        verdict, text = INCONCLUSIVE_SCALE, "the run without DER has no catastrophic overfitting to prevent"
    else:
        verdict, text = INCONCLUSIVE_SCALE, "the run with DER is itself inconclusive"
    sentence = (f"without DER catastrophic overfitting is {base.verdict}, with DER {der.verdict}: {text}; final "
                f"robust accuracy {final.sentence}")
    return DerPreventsCO(verdict, base, der, final, sentence)


@dataclass(frozen=True)
class Replicated(Result):
    verdict: str                 # REPRODUCTION of "every run (that learned, when regimes are given) shows `expected`"
    found: dict                  # {label: that run's verdict}
    expected: str
    sentence: str
    unit: str = "runs"           # what was read: runs (seeds), or models
    never_learned: dict = field(default_factory=dict)   # {label: its regime's never_learned_text}: not counted

    @property
    def counted(self) -> dict:
        """{label: verdict} of the runs (models) the verdict reads: those whose network learned."""
        return {label: v for label, v in self.found.items() if label not in self.never_learned}

    @property
    def statistic_text(self) -> str:
        never = self.never_learned
        if never and not self.counted:
            return f"not testable here: none of the {len(self.found)} {self.unit} learned ({', '.join(never)})"
        hits = sum(v == self.expected for v in self.counted.values())
        learned = f"learned {self.unit}" if never else self.unit
        return (f"{hits} of {len(self.counted)} {learned} {self.expected}"
                + (f"; {len(never)} never learned, not counted ({', '.join(never)})" if never else ""))


def replicated(found: dict, what: str, *, expected: str = PRESENT, opposite: str = ABSENT,
               min_runs: int = 2, unit: str = "runs", regimes: dict | None = None) -> Replicated:
    """A finding over independent runs (seeds): `reproduced` when at least `min_runs` runs were read
    and every one gives `expected` (e.g. CO present in each seed); `not reproduced` when at least
    `min_runs` and every one gives `opposite`; `inconclusive at this scale` when the runs disagree
    (some `expected`, some `opposite`), any is inconclusive (its sentence says which way the others
    point), or there are too few. `found`: {run label: its verdict}; `unit` names what was
    read in the texts ("runs"; "models" for one finding over several models, e.g. RobustBench's).

    `regimes` ({label: `Regime`} for every one of `found`, e.g. `model_regime` of a model's clean
    outcomes on the images its verdict read): a run whose network never learned cannot speak for a
    trained classifier; it is left out of the count (so it can neither carry nor break the finding) and
    named in the sentence with its figures; `min_runs` applies to the ones that learned, and when none
    learned the finding is `inconclusive at this scale`."""
    if regimes is not None:
        missing = [label for label in found if not isinstance(regimes.get(label), Regime)]
        if missing:
            raise ValueError(f"replicated(..., regimes=) needs the regime of every one of the {unit}; none for "
                             f"{missing}: pass regimes={{label: verdicts.model_regime(...)}}")
    never = {label: regimes[label].never_learned_text for label in found
             if regimes is not None and not regimes[label].learned}
    counted = {label: v for label, v in found.items() if label not in never}
    values = list(counted.values())
    n = len(values)
    hits, misses = values.count(expected), values.count(opposite)
    which = f"{unit} that learned" if never else unit
    if never and not counted:
        verdict, text = INCONCLUSIVE_SCALE, (f"none of the {len(never)} {unit} learned, so {what} cannot be read in "
                                             "this build: inconclusive at this scale")
    elif n >= min_runs and hits == n:
        verdict, text = REPRODUCED, f"{what} in every one of the {n} {which}"
    elif n >= min_runs and misses == n:
        verdict, text = NOT_REPRODUCED, f"{what}: {opposite} in every one of the {n} {which}"
    elif n < min_runs:   # too few runs, not too small a scale: the sentence says so
        verdict, text = INCONCLUSIVE_SCALE, (f"{what}: only {n} of the {len(found)} {unit} learned, fewer than the "
                                             f"{min_runs} a replication needs" if never else
                                             f"{what}: {n} {unit[:-1]}(s) read, fewer than the {min_runs} a replication "
                                             "needs")
    elif hits == misses == 0:
        verdict, text = INCONCLUSIVE_SCALE, f"{what} cannot be read in any of the {n} {which} (each is inconclusive)"
    elif hits and misses:
        verdict, text = INCONCLUSIVE_SCALE, (f"{what}: the {which} disagree ({hits} {expected}, {misses} {opposite}, "
                                             f"{n - hits - misses} inconclusive)")
    else:   # one direction only, the rest unreadable: not every run speaks, so no verdict either way
        seen, word = (hits, expected) if hits else (misses, opposite)
        verdict, text = INCONCLUSIVE_SCALE, (f"{what}: {word} in {seen} of the {n} {which} and inconclusive in "
                                             f"the other {n - seen}, so not every {which.split()[0][:-1]} speaks")
    listed = ", ".join(f"{label}: {v}, not read (the network never learned)" if label in never else f"{label}: {v}"
                       for label, v in found.items())
    sentence = f"{text} ({listed})" if found else text
    if never:
        sentence += ("; left out of the claim, because the network never learned: "
                     + "; ".join(f"{label} ({never[label].split(': ', 1)[1]})" for label in never))
    return Replicated(verdict, dict(found), expected, sentence, unit, never)


@dataclass(frozen=True)
class EnergyDivergence(Result):
    verdict: str                 # REPRODUCTION of "|mean ΔE(x)| jumps at the CO onset"
    before: float                # mean ΔE(x) at the last tracked point before the onset
    after: float                 # ... at the onset point
    statistic: float             # |after| − |before|
    ci: tuple[float, float]
    sentence: str

    @property
    def statistic_text(self) -> str:
        if not math.isfinite(self.statistic):
            return "no collapse to read"
        return (f"ΔE(x) {self.before:+.3f} → {self.after:+.3f} at the onset: |ΔE| {self.statistic:+.3f} "
                f"[{self.ci[0]:+.3f}, {self.ci[1]:+.3f}]")


def energy_divergence_at_onset(points, co: CatastrophicOverfitting, n_images: int,
                               level: float = LEVEL, within: float = 1.0) -> EnergyDivergence:
    """P2: natural and adversarial energies diverge when CO occurs ("right after onset"). Compares the
    training-set mean ΔE(x) of largest |value| within `within` epochs from the first collapsed tracking
    point with the last point before it (`points`: a run's
    `regime.tracked_points`, with `progress`, `train_dE_mean`, `train_dE_std`; `n_images` tracked
    training images): |ΔE| after − |ΔE| before with a normal interval from the per-image spreads
    (SE = std/√n at each point). `reproduced` when the interval lies above the largest change of
    |ΔE| between earlier tracked points (a jump specific to the onset, not training's drift), `not
    reproduced` when below 0, inconclusive otherwise, and when the run has no collapse."""
    nan = float("nan")
    if co.verdict != PRESENT or co.onset is None:
        return EnergyDivergence(INCONCLUSIVE_SCALE, nan, nan, nan, (nan, nan),
                                f"catastrophic overfitting is {co.verdict} in this run: no onset to read ΔE(x) at")
    progress = np.asarray(points["progress"], dtype=float)
    at = int(np.argmin(np.abs(progress - float(co.onset))))
    if at == 0:
        return EnergyDivergence(INCONCLUSIVE_SCALE, nan, nan, nan, (nan, nan),
                                "the collapse is at the first tracked point: no point before it")
    mean, sd = np.asarray(points["train_dE_mean"], float), np.asarray(points["train_dE_std"], float)
    # "right after the onset": the largest |ΔE| within `within` epochs from the first collapsed point
    window = np.flatnonzero((progress >= progress[at]) & (progress <= progress[at] + within))
    peak = int(window[np.argmax(np.abs(mean[window]))])
    before, after = mean[at - 1], mean[peak]
    d = abs(after) - abs(before)
    se = math.sqrt((sd[at - 1] ** 2 + sd[peak] ** 2) / n_images)
    ci = (d - _z(level) * se, d + _z(level) * se)
    # specific to the onset: the jump must exceed every earlier change of |ΔE| (training drifts ΔE too)
    drift = float(np.abs(np.diff(np.abs(mean[:at]))).max()) if at >= 2 else 0.0
    verdict = (REPRODUCED if ci[0] > drift else NOT_REPRODUCED if ci[1] < 0 else INCONCLUSIVE_SCALE)
    text = {REPRODUCED: "the energies diverge at the collapse, by more than any earlier change",
            NOT_REPRODUCED: "|ΔE(x)| shrinks at the collapse",
            INCONCLUSIVE_SCALE: "the change is within the noise or no larger than earlier changes"}[verdict]
    sentence = (f"the training-set mean ΔE(x) goes from {before:+.3f} (epoch {_ep(progress[at - 1])}, before the collapse) "
                f"to {after:+.3f} (epoch {_ep(progress[peak])}, its largest |value| within {within:g} epoch of the collapse at "
                f"{_ep(progress[at])}): |ΔE| changes by {d:+.3f}, {level:.0%} interval "
                f"[{ci[0]:+.3f}, {ci[1]:+.3f}] over {n_images} tracked training images, against a largest earlier "
                f"change of {drift:.3f}; {text}")
    return EnergyDivergence(verdict, float(before), float(after), float(d), (float(ci[0]), float(ci[1])), sentence)


@dataclass(frozen=True)
class ScoreComparison(Result):
    statistic: float             # score_b − score_a (> 0: A is better when lower is better)
    halfwidth: float             # z · √(sd_a² + sd_b²)
    labels: tuple[str, str]
    verdict: str                 # REPRODUCTION of "A scores better than B"
    sentence: str

    @property
    def statistic_text(self) -> str:
        return f"{self.labels[1]} − {self.labels[0]}: {self.statistic:+.4f} ± {self.halfwidth:.4f}"


def compare_scores(score_a: float, sd_a: float, score_b: float, sd_b: float, *, labels=("A", "B"),
                   what: str = "KID", level: float = LEVEL) -> ScoreComparison:
    """Is A's score lower (better) than B's, given each score's standard deviation (e.g. KID's over
    its subsets, as torch-fidelity reports it)? The difference B − A with a normal interval of
    half-width z·√(sd_a² + sd_b²) (conservative: the SD of one estimate, not of a mean): `reproduced`
    when it lies above 0, `not reproduced` when below, else `inconclusive at this scale`."""
    d = float(score_b - score_a)
    half = _z(level) * math.sqrt(float(sd_a) ** 2 + float(sd_b) ** 2)
    a, b = labels
    if not (sd_a > 0 and sd_b > 0):   # e.g. KID from one subset (subset size = sample count): no spread to judge by
        return ScoreComparison(d, float("nan"), tuple(labels), INCONCLUSIVE_SCALE,
                               f"{what} {a} {score_a:.4f} vs {b} {score_b:.4f}: difference {d:+.4f}, but a score has no "
                               "spread estimate (one subset of samples), so no verdict")
    verdict = REPRODUCED if d - half > 0 else NOT_REPRODUCED if d + half < 0 else INCONCLUSIVE_SCALE
    text = {REPRODUCED: f"{a} is lower by more than the noise", NOT_REPRODUCED: f"{b} is lower by more than the noise",
            INCONCLUSIVE_SCALE: "the difference is within the noise"}[verdict]
    if verdict == INCONCLUSIVE_SCALE:   # what it rules out: a true difference this large would have been seen
        text += _detectable(f"{mde_from_se(math.sqrt(float(sd_a) ** 2 + float(sd_b) ** 2)):.4f}")
    sentence = (f"{what} {a} {score_a:.4f} ± {sd_a:.4f} vs {b} {score_b:.4f} ± {sd_b:.4f}: difference {d:+.4f}, "
                f"{level:.0%} interval ±{half:.4f}; {text}")
    return ScoreComparison(d, half, tuple(labels), verdict, sentence)


# ----------------------------------------------------------------------------- bimodality
BC_THRESHOLD = 5 / 9   # the bimodality coefficient of a uniform distribution
SHALLOW_DIP = 0.8      # a valley less than 20 % below the lower peak: a bump on a tail, not a mode


@dataclass(frozen=True)
class Bimodality(Result):
    verdict: str                 # PRESENCE
    delta_bic: float             # BIC(1 component) − BIC(2 components): > 0 favours two
    modes: int                   # local maxima of the fitted 2-component density within the data's range
    separation: float            # Ashman's D of the two components (> 2: cleanly separated)
    dip: float                   # density at the valley / at the lower mode (1 = no valley)
    means: tuple[float, float]
    weights: tuple[float, float]
    coefficient: float           # bimodality coefficient from unbiased skewness / excess kurtosis
    coefficient_ci: tuple[float, float]
    n: int
    sentence: str

    @property
    def statistic_text(self) -> str:
        return (f"ΔBIC(1→2 comp.) {self.delta_bic:.1f}, {self.modes} mode(s); BC {self.coefficient:.3f} "
                f"[{self.coefficient_ci[0]:.3f}, {self.coefficient_ci[1]:.3f}] (n = {self.n})")


def bimodality_coefficient(values, axis: int = -1):
    """(g² + 1) / (G2 + 3(n−1)²/((n−2)(n−3))) with the sample-size-corrected skewness g and excess
    kurtosis G2 (scipy.stats, bias=False), along `axis`. > 5/9 suggests bimodality, but skewed
    unimodal data (an exponential: 5/9 exactly) reach it too, so it is never the verdict on its own."""
    v = np.asarray(values, dtype=float)
    n = v.shape[axis]
    if n < 4:
        raise ValueError(f"the bimodality coefficient needs at least 4 values, got {n}")
    g = stats.skew(v, axis=axis, bias=False)
    k = stats.kurtosis(v, axis=axis, bias=False)
    out = (g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return float(out) if np.ndim(out) == 0 else out


def _bimodality_verdict(delta_bic: float, two_modes: bool, dip: float, *, bic_margin: float, max_dip: float) -> str:
    """`bimodality`'s reading of its fit: present when two components win by more than `bic_margin`
    and the valley is deep (ratio ≤ `max_dip`); inconclusive when they win at all with two separated
    modes; absent otherwise."""
    if delta_bic > bic_margin and two_modes and dip <= max_dip:
        return PRESENT
    if delta_bic > 0 and two_modes:
        return INCONCLUSIVE
    return ABSENT


def bimodality(values, *, random_state: int = 0, bic_margin: float = BIC_MARGIN, min_weight: float = 0.1, max_dip: float = 0.5,
               level: float = LEVEL) -> Bimodality:
    """Is the sample bimodal (PAPER.md 5.2 item 2)?

    A 1- and a 2-component Gaussian mixture (sklearn.mixture.GaussianMixture, fixed random_state,
    5 initialisations) are compared by BIC. A skewed unimodal sample is often fitted better by two
    overlapping Gaussians, so BIC alone would call it bimodal. The fitted two-component density
    must therefore also show two real modes: two local maxima within the data's range (on a grid of
    2,001 points; a maximum is above its left neighbour and not below its right one), each
    component at least `min_weight` of the mass, the components separated (Ashman's
    D = √2|μ1−μ2|/√(σ1²+σ2²) > 2) and a valley between the modes (density at the valley / at the
    lower mode below 0.8; skewed or heavy-tailed unimodal samples give a bump on the tail, 0.8-1).
    Verdict: `present` when two components win by `bic_margin` and the valley is deep (ratio ≤
    `max_dip`); `inconclusive` when there are two modes but the BIC margin or the valley is smaller;
    `absent` otherwise. The bimodality coefficient (unbiased moments)
    with a bootstrap interval is reported alongside.
    """
    from sklearn.mixture import GaussianMixture

    v = np.asarray(values, dtype=float).reshape(-1, 1)
    v = v[np.isfinite(v[:, 0])]
    n = len(v)
    if n < 10:
        raise ValueError(f"bimodality needs at least 10 finite values, got {n}")
    scale = v.std() or 1.0
    z = (v - v.mean()) / scale     # mixtures are fitted on standardised values (BIC differences are unchanged)
    g1 = GaussianMixture(1, random_state=random_state).fit(z)
    g2 = GaussianMixture(2, n_init=5, random_state=random_state).fit(z)
    delta = float(g1.bic(z) - g2.bic(z))
    grid = np.linspace(z.min(), z.max(), 2001).reshape(-1, 1)
    dens = np.exp(g2.score_samples(grid))
    peaks = np.flatnonzero((dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:])) + 1
    modes = len(peaks) if len(peaks) else 1
    # depth of the valley between the outer modes: trough / lower peak (1 = no valley)
    dip = float(dens[peaks[0]:peaks[-1] + 1].min() / dens[[peaks[0], peaks[-1]]].min()) if modes >= 2 else 1.0
    weights = tuple(float(w) for w in g2.weights_)
    means = tuple(float(m) * scale + float(v.mean()) for m in g2.means_[:, 0])
    bc = bimodality_coefficient(v[:, 0])
    boot = stats.bootstrap((v[:, 0],), bimodality_coefficient, n_resamples=1000, vectorized=True,
                           random_state=random_state, method="percentile", confidence_level=level)
    bc_ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
    sds = np.sqrt(g2.covariances_.ravel())
    separation = float(math.sqrt(2) * abs(g2.means_[0, 0] - g2.means_[1, 0]) / math.sqrt((sds ** 2).sum()))
    two_modes = modes >= 2 and min(weights) >= min_weight and separation > 2 and dip < SHALLOW_DIP
    verdict = _bimodality_verdict(delta, two_modes, dip, bic_margin=bic_margin, max_dip=max_dip)
    why = {PRESENT: "two components win by BIC and their density has two modes: bimodal",
           INCONCLUSIVE: (f"two separated modes, but two components win by less than {bic_margin:g} BIC or the "
                         f"valley between them is shallow (density ratio {dip:.2f} > {max_dip:g}): inconclusive"),
           ABSENT: ("one component wins by BIC: unimodal" if delta <= 0 else
                    "two components fit better but they overlap (one mode, Ashman's D ≤ 2, a component under "
                    f"{min_weight:.0%} of the mass or a valley under {1 - SHALLOW_DIP:.0%} deep: a skewed or "
                    "heavy-tailed unimodal sample): not bimodal")}[verdict]
    sentence = (f"on {n} values, BIC(1 component) − BIC(2 components) = {delta:.1f} and the fitted 2-component "
                f"density has {modes} mode(s), separation D = {separation:.2f}, valley/peak {dip:.2f} (means {means[0]:.2f} and {means[1]:.2f}, weights {weights[0]:.2f} / "
                f"{weights[1]:.2f}); {why}. The bimodality coefficient is {bc:.3f} "
                f"({level:.0%} bootstrap interval {bc_ci[0]:.3f}-{bc_ci[1]:.3f}; 5/9 ≈ 0.556 is the usual threshold, "
                "which skewed unimodal data also reach)")
    return Bimodality(verdict, delta, modes, separation, dip, means, weights, bc, bc_ci, n, sentence)


# ----------------------------------------------------------------------------- alignment (SAT vs TRADES)
@dataclass(frozen=True)
class Alignment(Result):
    statistic: float             # |mean ΔE|_a − |mean ΔE|_b
    ci: tuple[float, float]
    mean_a: float
    mean_b: float
    labels: tuple[str, str]
    n: int
    paired: bool
    verdict: str                 # REPRODUCTION for "|mean ΔE|_b < |mean ΔE|_a"
    sentence: str
    mde: float = float("nan")    # smallest difference detectable at 80 % power, 5 % level (bootstrap SE)
    attack: str = "each method's own training attack"

    @property
    def statistic_text(self) -> str:
        return (f"|ΔE| {self.labels[0]} − {self.labels[1]}: {self.statistic:+.4f} "
                f"[{self.ci[0]:+.4f}, {self.ci[1]:+.4f}] (n = {self.n}, {self.attack}; detectable ≥ {self.mde:.4f})")


def _abs_mean_difference(a, b, axis=-1):
    return np.abs(np.mean(a, axis=axis)) - np.abs(np.mean(b, axis=axis))


def energy_alignment(delta_e_a, delta_e_b, *, labels=("SAT", "TRADES"), paired: bool = True,
                     level: float = LEVEL, random_state: int = 0,
                     attack: str = "each method's own training attack") -> Alignment:
    """PAPER.md 2.4 / 5.2 item 3: B (TRADES) keeps the training-set mean ΔE(x) closer to 0 than A (SAT).

    Statistic: |mean ΔE_A| − |mean ΔE_B| over per-image values (> 0 agrees with the paper), with a
    bootstrap interval over images (scipy.stats.bootstrap; `paired` when both were measured on the
    same training images in the same order, as the tracked subset is). Verdict: `reproduced` when
    the interval lies above 0, `not reproduced` when below, `inconclusive at this scale` otherwise.
    `mde`: the smallest difference detectable at 80 % power and the 5 % level (from the bootstrap
    SE). `attack` says which x* the ΔE values come from: PAPER.md 1.3 measures each method under its
    own training attack; the common test attack compares like with like (chapter 3 shows both).
    """
    a, b = np.asarray(delta_e_a, dtype=float), np.asarray(delta_e_b, dtype=float)
    if paired and a.shape != b.shape:
        raise ValueError(f"paired alignment needs the same images for both runs; got {a.shape} and {b.shape} "
                         "values (pass paired=False for different images)")
    stat = float(_abs_mean_difference(a, b))
    boot = stats.bootstrap((a, b), _abs_mean_difference, paired=paired, vectorized=True, n_resamples=2000,
                           random_state=random_state, method="percentile", confidence_level=level)
    ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
    verdict = REPRODUCED if ci[0] > 0 else NOT_REPRODUCED if ci[1] < 0 else INCONCLUSIVE_SCALE
    mde = mde_from_se(boot.standard_error)
    la, lb = labels
    text = {REPRODUCED: f"{lb} is closer to 0 by more than the noise",
            NOT_REPRODUCED: f"{la} is closer to 0 by more than the noise",
            INCONCLUSIVE_SCALE: f"the difference is within the noise (a difference of {mde:.4f} would have been "
                                f"detected with {POWER:.0%} power)"}[verdict]
    sentence = (f"mean ΔE(x) under {attack} is {a.mean():+.4f} for {la} and {b.mean():+.4f} for {lb} on {len(a)} "
                f"training images: |{la}| − |{lb}| = {stat:+.4f}, {level:.0%} bootstrap interval "
                f"[{ci[0]:+.4f}, {ci[1]:+.4f}]; {text}")
    return Alignment(stat, ci, float(a.mean()), float(b.mean()), tuple(labels), len(a), paired, verdict, sentence,
                     float(mde), attack)


# ----------------------------------------------------------------------------- sign of a mean shift
@dataclass(frozen=True)
class MeanShift(Result):
    statistic: float             # mean of the per-item values (e.g. E(x*) − E(x) per image)
    ci: tuple[float, float]      # bootstrap interval of the mean over items
    p_value: float               # one-sample t-test against 0 (two-sided), for reference
    expected_sign: int           # the paper's sign: -1 or +1
    n: int
    what: str                    # what one value is, for the texts
    verdict: str                 # REPRODUCTION for "the mean lies on the expected side of 0"
    sentence: str

    @property
    def statistic_text(self) -> str:
        if not math.isfinite(self.statistic):
            return f"too few values (n = {self.n})"
        return f"mean {self.what} {self.statistic:+.3g} [{self.ci[0]:+.3g}, {self.ci[1]:+.3g}] (n = {self.n})"


def mean_shift(values, expected_sign: int, *, what: str = "shift", share_null: float | None = None,
               level: float = LEVEL, random_state: int = 0) -> MeanShift:
    """Is the mean of per-item values (paired differences, e.g. E(x*) − E(x) per image, PAPER.md 2.1)
    on the side of 0 the paper expects (`expected_sign` -1: below, +1: above)?

    Noise: a percentile bootstrap interval of the mean over items (scipy.stats.bootstrap, fixed
    random_state); a one-sample t-test p-value is reported alongside. Verdict: `reproduced` when the
    interval lies entirely on the expected side of 0, `not reproduced` when entirely on the other,
    `inconclusive at this scale` when it contains 0 (a zero mean, or fewer than 2 values, is never
    a verdict either way).

    `share_null`: the values are 0/1 indicators and the question is whether their share lies above
    (or below) `share_null` (e.g. 0.5: "most samples"); the statistic is share − share_null and its
    interval the Wilson interval of the share, which stays honest when every value is the same."""
    if expected_sign not in (-1, 1):
        raise ValueError(f"expected_sign must be -1 or +1, got {expected_sign!r}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = len(v)
    side = "below" if expected_sign < 0 else "above"
    if n < 2:
        return MeanShift(float("nan"), (float("nan"), float("nan")), float("nan"), expected_sign, n, what,
                         INCONCLUSIVE_SCALE, f"{n} value(s) of {what}: too few for a verdict")
    mean = float(v.mean())
    if share_null is not None:
        if not np.isin(v, (0.0, 1.0)).all():
            raise ValueError("share_null needs 0/1 indicator values (e.g. (p > 0.9).astype(float))")
        k = int(v.sum())
        low, high = wilson(k, n, level)
        mean, ci = mean - share_null, (low - share_null, high - share_null)
        p = float(stats.binomtest(k, n, share_null).pvalue)
    elif np.ptp(v) == 0:     # no spread: the bootstrap is degenerate, the interval is the value itself
        ci, p = (mean, mean), (1.0 if mean == 0 else 0.0)
    else:
        boot = stats.bootstrap((v,), np.mean, n_resamples=2000, vectorized=True, random_state=random_state,
                               method="percentile", confidence_level=level)
        ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
        p = float(stats.ttest_1samp(v, 0.0).pvalue)
    if ci[0] > 0 or ci[1] < 0:
        verdict = REPRODUCED if (ci[0] > 0) == (expected_sign > 0) else NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE_SCALE
    text = {REPRODUCED: f"{side} 0 by more than the noise, as the paper expects",
            NOT_REPRODUCED: f"on the other side of 0 than the paper expects ({side}), by more than the noise",
            INCONCLUSIVE_SCALE: "0 lies within the interval, so the sign is not settled"}[verdict]
    noise = (f"Wilson interval, binomial p = {p:.2g}" if share_null is not None else
             f"bootstrap interval, t-test p = {p:.2g}")
    sentence = (f"mean {what} {mean:+.3g} over {n} values, {level:.0%} {noise.split(',')[0]} "
                f"[{ci[0]:+.3g}, {ci[1]:+.3g}] ({noise.split(', ')[1]}): {text}")
    return MeanShift(mean, ci, p, expected_sign, n, what, verdict, sentence)


@dataclass(frozen=True)
class ShiftTrend(Result):
    steps: tuple                 # one MeanShift per pair of consecutive budgets (paired over items)
    budgets: tuple               # the budgets, ascending
    means: tuple                 # the mean value at each budget
    expected_sign: int           # -1: the mean should fall at every larger budget; +1: rise
    verdict: str
    sentence: str

    @property
    def statistic_text(self) -> str:
        return "; ".join(s.statistic_text for s in self.steps) or "one budget"


def _paired_items(values: list) -> list[np.ndarray]:
    """Per-budget values as arrays in one item order. Values with an index (pandas Series keyed by
    image id) are aligned on it and must hold the same items; plain arrays are paired by position."""
    indexed = [hasattr(v, "index") and hasattr(v, "reindex") for v in values]
    if any(indexed) and not all(indexed):
        raise ValueError("pass every budget's values keyed by item id (pandas Series) or every one as a plain "
                         "array in the same order, not a mix: a mix cannot be paired")
    if values and all(indexed):
        ids = values[0].index
        for v in values:
            if v.index.has_duplicates or not v.index.sort_values().equals(ids.sort_values()):
                raise ValueError("every budget needs the same items (paired differences): the budgets' "
                                 "indexes hold different or repeated item ids")
        return [np.asarray(v.reindex(ids), dtype=float).ravel() for v in values]
    return [np.asarray(v, dtype=float).ravel() for v in values]


def shift_trend(values_by_budget, expected_sign: int, *, what: str = "shift", level: float = LEVEL,
                random_state: int = 0, budget_text=lambda b: f"{b:.3g}") -> ShiftTrend:
    """Does the per-item value (e.g. E(x*) − E(x) per image) move in the expected direction at every
    larger budget (ε)? `values_by_budget`: {budget: per-item values}, the same items in the same
    order at every budget (or pandas Series indexed by item id, aligned on it), so each step is a
    paired difference with a bootstrap interval
    (`mean_shift`). Verdict: `reproduced` when every step moves the expected way by more than its
    noise, `not reproduced` when some step moves the other way by more than its noise (intervals
    at the Bonferroni-corrected level over the steps), `inconclusive at this scale` otherwise (also
    with a single budget). `budget_text` writes a budget in the sentence (e.g. `tables.eps_text`: 8/255)."""
    if expected_sign not in (-1, 1):
        raise ValueError(f"expected_sign must be -1 or +1, got {expected_sign!r}")
    budgets = tuple(sorted(values_by_budget))
    arrays = _paired_items([values_by_budget[b] for b in budgets])
    if len({len(a) for a in arrays}) > 1:
        raise ValueError("every budget needs the same items in the same order (paired differences); "
                         f"got {[len(a) for a in arrays]} values")
    means = tuple(float(np.nanmean(a)) if len(a) else float("nan") for a in arrays)
    steps = tuple(mean_shift(hi - lo, expected_sign, what=f"change of {what}", level=level, random_state=random_state)
                  for lo, hi in zip(arrays, arrays[1:]))
    direction = "falls" if expected_sign < 0 else "rises"
    trail = ", ".join(f"{m:+.3g}" for m in means)
    if not steps:
        return ShiftTrend(steps, budgets, means, expected_sign, INCONCLUSIVE_SCALE,
                          f"mean {what} {trail} at a single budget: no trend to read")
    verdicts = [s.verdict for s in steps]
    # "every step" needs each step at `level` (an intersection-union test keeps the error rate);
    # "some step goes the other way" is a union over steps: Bonferroni-corrected
    strict = [mean_shift(hi - lo, expected_sign, level=1 - (1 - level) / len(steps), random_state=random_state).verdict
              for lo, hi in zip(arrays, arrays[1:])]
    if NOT_REPRODUCED in strict:
        verdict, text = NOT_REPRODUCED, "at some larger budget it moves the other way by more than the noise"
    elif all(v == REPRODUCED for v in verdicts):
        verdict, text = REPRODUCED, f"it {direction} at every larger budget by more than the noise"
    else:
        verdict, text = INCONCLUSIVE_SCALE, f"not every step {direction} by more than its noise"
    steps_text = "; ".join(f"{budget_text(lo)} -> {budget_text(hi)}: {s.statistic:+.3g} [{s.ci[0]:+.3g}, {s.ci[1]:+.3g}]"
                           for lo, hi, s in zip(budgets, budgets[1:], steps))
    return ShiftTrend(steps, budgets, means, expected_sign, verdict,
                      f"mean {what} {trail} over the budgets; paired changes with {level:.0%} bootstrap intervals "
                      f"{steps_text}: {text}")


# ----------------------------------------------------------------------------- adaptive stopping lands
MIN_MOVING_CHAINS = 10   # fewer chains that start outside the band: the rule has too little to do for a verdict


@dataclass(frozen=True)
class AdaptiveLanding(Result):
    n_chains: int
    n_start_within: int          # chains the rule stopped at step 0: they start within √τ of Ē_y
    landed: MeanShift | None     # of the others: share the rule stopped before the last step − ½ (Wilson)
    verdict: str
    sentence: str

    @property
    def statistic_text(self) -> str:
        start = f"{self.n_start_within} of {self.n_chains} chains start within √τ"
        if self.landed is None:
            return f"not testable: {start} (n = {self.n_chains})"
        k = self.n_chains - self.n_start_within
        share = self.landed.statistic + 0.5
        return (f"{start}; of the other {k}, {share:.0%} stop within it "
                f"[{self.landed.ci[0] + 0.5:.0%}, {self.landed.ci[1] + 0.5:.0%}]")


def adaptive_stop_landing(stopped_at, steps: int, *, level: float = LEVEL,
                          min_moving: int = MIN_MOVING_CHAINS) -> AdaptiveLanding:
    """Does adaptive stopping (freeze a chain once (E(x_n, y) − Ē_y)² < τ, PAPER.md 2.8) bring most
    chains into the band around their class's reference energy Ē_y? `stopped_at`: the step each chain
    was frozen at, as the sampler decided it (`steps`: never frozen). A chain frozen at step 0 started
    within the band, so it says nothing about the rule: the verdict reads only the chains that start
    outside (the share of them frozen before the last step, i.e. brought into the band, against one
    half: Wilson interval, `mean_shift`), and is `inconclusive at this scale` with the reason when fewer
    than `min_moving` chains start outside (e.g. a PCA start that already sits at the typical energy).
    The sampler's own decisions are read, not recomputed from energies, so a chain at the band's edge
    counts as the rule counted it."""
    stopped = np.asarray(stopped_at).ravel()
    if stopped.size and (stopped.min() < 0 or stopped.max() > steps):
        raise ValueError(f"stopped_at holds steps outside [0, {steps}]: pass the sampler's stop steps and its "
                         "number of steps")
    moving = stopped > 0
    n, n_within = len(stopped), int((~moving).sum())
    head = f"{n_within} of {n} chains ({n_within / max(n, 1):.0%}) start within √τ of Ē_y (the rule stops them at step 0)"
    if moving.sum() < min_moving:
        return AdaptiveLanding(n, n_within, None, INCONCLUSIVE_SCALE,
                               f"{head}; only {int(moving.sum())} chain(s) start outside the band (a verdict needs "
                               f"{min_moving}): the check has nothing to test at this start")
    landed_in = (stopped[moving] < steps).astype(float)
    landed = mean_shift(landed_in, +1, what="share of the moving chains stopped in the band − ½", share_null=0.5,
                        level=level)
    k, m = int(landed_in.sum()), int(moving.sum())
    return AdaptiveLanding(n, n_within, landed, landed.verdict,
                           f"{head} and are left out; of the {m} that start outside it, {k} ({k / m:.0%}) reach it "
                           f"and stop before step {steps}, {level:.0%} Wilson interval [{landed.ci[0] + 0.5:.0%}, "
                           f"{landed.ci[1] + 0.5:.0%}] against one half: " +
                           ("most reach the band" if landed.verdict == REPRODUCED else
                            "fewer than half reach the band" if landed.verdict == NOT_REPRODUCED
                            else "whether most reach it is not settled"))


# ----------------------------------------------------------------------------- ΔE as an early alarm
@dataclass(frozen=True)
class DeltaEAlarm(Result):
    fired: bool
    alarm_epoch: int             # the epoch the rule stops at (the last epoch when it never fires)
    selection_epoch: int         # the epoch of the best PGD validation accuracy
    acc_alarm: float             # robust test accuracy at each choice
    acc_selection: float
    acc_last: float
    comparison: AccuracyComparison
    verdict: str                 # ALARM
    sentence: str

    @property
    def statistic_text(self) -> str:
        when = f"fires at epoch {self.alarm_epoch}" if self.fired else "never fires"
        return (f"ΔE rule {when} ({self.acc_alarm:.1%}); PGD validation picks epoch {self.selection_epoch} "
                f"({self.acc_selection:.1%})")


ALARM_WINDOW, ALARM_WARMUP = 5, 0.25   # the ΔE rule's running-level window (epochs) and warm-up (share of the run)


def alarm_start(n_epochs: int, window: int = ALARM_WINDOW, warmup: float = ALARM_WARMUP) -> int:
    """The first epoch (0-based) the ΔE rule judges: after the warm-up, with a full window behind it."""
    return max(window, int(math.ceil(warmup * n_epochs)))


def delta_e_alarm(delta_e, val_acc, test_acc, n_images: int, epochs=None, *, window: int = ALARM_WINDOW, k: float = 3.0,
                  persist: int = 3, warmup: float = ALARM_WARMUP, noise_floor=None, level: float = LEVEL,
                  test_correct=None, margin: float = EQUIVALENCE_MARGIN) -> DeltaEAlarm:
    """ΔE as an early-stopping alarm (chapter 2), against PGD-validation selection.

    The rule, on the tracked training-set mean ΔE(x) curve: after a warm-up (`warmup` × epochs,
    at least `window`; the one-cycle LR peaks at 25 %), the running level is the median of the
    previous `window` epochs and its noise the robust SD of the epoch-to-epoch changes since the
    warm-up (scipy.stats.median_abs_deviation, scale="normal", / √2), at least `noise_floor` (a
    number or a per-epoch array, e.g. the per-epoch SE of the mean ΔE). The rule fires at the epoch where
    ΔE(x) has stayed below level − k·noise for `persist` consecutive epochs (ΔE diverges downwards
    in the paper); training would stop there and keep that epoch's model. PGD-validation selection
    keeps the epoch of the highest validation PGD accuracy (ties: the earliest). The robust test
    accuracy of the two choices is compared on the same `n_images` test images (`compare_accuracy`:
    paired, McNemar, when `test_correct` holds each epoch's per-image outcomes, else unpaired).
    Verdict: better / worse than PGD validation when the comparison says so; "as good as" only
    when an equivalence test says so (TOST at the 5 % level: the 90 % interval of the difference
    lies within ±`margin`, PAPER.md 5.3's 1.5 pt for PGD accuracy); otherwise "no detectable
    difference", with the smallest difference that would have been detected.
    """
    d = np.asarray(delta_e, dtype=float)
    val, test = np.asarray(val_acc, dtype=float), np.asarray(test_acc, dtype=float)
    n_ep = len(d)
    if not (len(val) == len(test) == n_ep) or n_ep < 2:
        raise ValueError(f"delta_e_alarm needs equally long per-epoch curves (≥ 2 epochs); got {n_ep}, {len(val)}, "
                         f"{len(test)}")
    epochs = np.arange(1, n_ep + 1) if epochs is None else np.asarray(epochs)
    floor = np.broadcast_to(np.asarray(0.0 if noise_floor is None else noise_floor, dtype=float), (n_ep,))
    start = alarm_start(n_ep, window, warmup)
    first = max(0, start - window)
    fired_at = None
    for s in range(start, n_ep - persist + 1):
        level_ = np.median(d[s - window:s])
        # noise: robust SD of the epoch-to-epoch changes since the warm-up (a slow drift is removed
        # with the median change), / √2 for one epoch's value
        steps = np.diff(d[first:s])
        noise = float(stats.median_abs_deviation(steps, scale="normal")) / math.sqrt(2) if len(steps) > 1 else 0.0
        noise = max(noise, float(floor[s - 1]), 1e-12)
        if all(d[t] < level_ - k * noise for t in range(s, s + persist)):
            fired_at = s + persist - 1
            break
    alarm = n_ep - 1 if fired_at is None else fired_at
    sel = int(np.argmax(val))
    pair = {}
    if test_correct is not None:
        c = np.asarray(test_correct, dtype=bool)
        pair = {"correct_a": c[alarm], "correct_b": c[sel]}
    cmp = compare_accuracy(test[alarm], test[sel], n_images, labels=("ΔE alarm", "PGD validation"), level=level,
                           margin=0, **pair)
    tost = compare_accuracy(test[alarm], test[sel], n_images, level=1 - 2 * ALPHA, margin=0, **pair)
    if alarm == sel and fired_at is None:   # both keep the last epoch: a run without a decline tests nothing
        verdict, how = ALARM_UNTESTABLE, ""
    elif alarm == sel:
        verdict, how = ALARM_AS_GOOD, " (both keep the same epoch's model)"
    elif cmp.verdict != INCONCLUSIVE_SCALE:
        verdict = ALARM_BETTER if cmp.verdict == REPRODUCED else ALARM_WORSE
        how = ""
    elif equivalent(tost.ci, margin):
        verdict = ALARM_AS_GOOD
        how = (f"; its 90% interval [{_pt(tost.ci[0])}, {_pt(tost.ci[1])}] lies within ±{100 * margin:.1f} pt "
               "(equivalence, TOST at 5 %)")
    else:
        verdict = ALARM_UNDECIDED
        how = (f"; equivalence within ±{100 * margin:.1f} pt is not shown either (90% interval "
               f"[{_pt(tost.ci[0])}, {_pt(tost.ci[1])}]), and the smallest difference it would detect with "
               f"{POWER:.0%} power is {mde_text(cmp.mde)}")
    when = (f"the ΔE rule fires at epoch {int(epochs[alarm])}" if fired_at is not None else
            f"the ΔE rule never fires, so training runs to epoch {int(epochs[alarm])}")
    sentence = (f"{when} ({test[alarm]:.1%} robust test accuracy there); PGD validation selects epoch "
                f"{int(epochs[sel])} ({test[sel]:.1%}); the last epoch has {test[-1]:.1%}. The difference "
                f"{_pt(cmp.statistic)} (95% interval [{_pt(cmp.ci[0])}, {_pt(cmp.ci[1])}], "
                f"{'paired' if cmp.paired else 'unpaired'}) makes the alarm {verdict}{how}")
    return DeltaEAlarm(fired_at is not None, int(epochs[alarm]), int(epochs[sel]), float(test[alarm]),
                       float(test[sel]), float(test[-1]), cmp, verdict, sentence)


# ----------------------------------------------------------------------------- WEAT weights
@dataclass(frozen=True)
class WeightContrast(Result):
    verdict: str                 # PRESENCE: do the weights separate the samples?
    ratio: float                 # mean weight of misclassified / correctly classified images
    ci: tuple[float, float]
    max_over_min: float
    n_correct: int
    n_incorrect: int
    sentence: str

    @property
    def statistic_text(self) -> str:
        if not math.isfinite(self.ratio):
            return f"too few images per group ({self.n_correct} correct, {self.n_incorrect} misclassified)"
        return (f"w(misclassified) / w(correct) = {self.ratio:.2f} [{self.ci[0]:.2f}, {self.ci[1]:.2f}]; "
                f"max/min weight {self.max_over_min:.1f}")


def _ratio_of_means(a, b, axis=-1):
    return np.mean(a, axis=axis) / np.mean(b, axis=axis)


def weight_contrast(weights, correct, *, level: float = LEVEL, random_state: int = 0) -> WeightContrast:
    """Does WEAT's w(x) up-weight misclassified (high-energy) training images (PAPER.md 2.6)?

    Statistic: mean weight of misclassified / mean weight of correctly classified images, with a
    bootstrap interval (scipy.stats.bootstrap, independent resampling of the two groups).
    Verdict: `present` when the interval lies above 1, `absent` when it lies at or below 1,
    `inconclusive` when it contains 1 or a group has fewer than 2 images.
    """
    w = np.asarray(weights, dtype=float)
    ok = np.asarray(correct).astype(bool)
    wi, wc = w[~ok], w[ok]
    spread = float(w.max() / w.min()) if w.size and w.min() > 0 else float("nan")
    if len(wi) < 2 or len(wc) < 2:
        return WeightContrast(INCONCLUSIVE, float("nan"), (float("nan"), float("nan")), spread, len(wc), len(wi),
                              f"only {len(wc)} correctly and {len(wi)} incorrectly classified images: too few to "
                              "compare their weights")
    ratio = float(wi.mean() / wc.mean())
    boot = stats.bootstrap((wi, wc), _ratio_of_means, vectorized=True, n_resamples=2000, random_state=random_state,
                           method="percentile", confidence_level=level)
    ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
    verdict = PRESENT if ci[0] > 1 else ABSENT if ci[1] <= 1 else INCONCLUSIVE
    text = {PRESENT: "misclassified images get significantly larger weights, as the paper describes",
            ABSENT: "misclassified images do not get larger weights",
            INCONCLUSIVE: "the difference between the two groups is within the noise"}[verdict]
    sentence = (f"the largest weight is {spread:.1f}x the smallest; misclassified images ({len(wi)}) get {ratio:.2f}x "
                f"the mean weight of correctly classified ones ({len(wc)}), {level:.0%} bootstrap interval "
                f"{ci[0]:.2f}-{ci[1]:.2f}: {text}")
    return WeightContrast(verdict, ratio, ci, spread, len(wc), len(wi), sentence)


# ----------------------------------------------------------------------------- spread of ΔE(x): robust vs standard
SPREAD_RATIO = 5.0   # PAPER.md 5.2 item 4: a robust model's std ΔE(x) is at least 5x smaller than the standard one's


@dataclass(frozen=True)
class SpreadRatio(Result):
    statistic: float             # std(reference) / std(other): how many times tighter `other` is
    ci: tuple[float, float]      # percentile bootstrap interval of the ratio over items
    threshold: float             # the claim: statistic ≥ threshold
    std_reference: float
    std_other: float
    labels: tuple[str, str]      # (reference, other)
    n: int
    paired: bool
    verdict: str                 # REPRODUCTION of "other's spread is at least `threshold` times smaller"
    sentence: str
    mde: float = float("nan")    # smallest factor (×/÷) by which the ratio must differ from `threshold` to be
                                 # detected at 80 % power, 5 % level (from the bootstrap SE of the log ratio)
    untestable: str = ""         # the robust model's regime: why the claim cannot be read on it (never learned)

    @property
    def statistic_text(self) -> str:
        if self.untestable:
            measured = (f"; its {_times(self.statistic)}× is not read" if math.isfinite(self.statistic) else "")
            return f"not testable here: {self.untestable.split(':')[0]} (n = {self.n}{measured})"
        if not math.isfinite(self.statistic):
            return f"not measurable ({self.sentence})"
        if not math.isfinite(self.ci[0]):
            return (f"std ΔE(x) {self.labels[0]} / {self.labels[1]} = {_times(self.statistic)}× (n = {self.n}; no "
                    "bootstrap interval: resamples without spread)")
        return (f"std ΔE(x) {self.labels[0]} / {self.labels[1]} = {_times(self.statistic)}× "
                f"[{_times(self.ci[0])}, {_times(self.ci[1])}] (n = {self.n}; detectable: ×/÷ {self.mde:.2f} from "
                f"{self.threshold:g}×)")


def _times(x: float) -> str:
    """A ratio to the digits its bootstrap interval supports: 4.73, 35.1 -> 35, 12663.6 -> 12,664."""
    return f"{x:.2f}" if abs(x) < 10 else f"{x:,.0f}"


def _log_sd_ratio(a, b, axis=-1):
    return np.log(np.std(a, axis=axis, ddof=1)) - np.log(np.std(b, axis=axis, ddof=1))


def model_regime(clean: float, n_images: int, n_classes: int, *, ce: float | None = None, robust: float | None = None,
                 energy_mean: float | None = None, steps: int | None = None, level: float = LEVEL) -> Regime:
    """The regime of an evaluated model (one checkpoint: a lens record, a RobustBench model) from its
    clean outcomes on the `n_images` images a verdict reads: `regime.regime_from_metrics` of that one
    point, so the rule is the one every training run is read with. The network **learned** when its
    clean accuracy `clean` is significantly (Wilson, `level`) above `regime.LEARNED_FACTOR` x chance
    (1 / `n_classes`) and its mean clean CE `ce` (per image E(x, y) − E(x)) is at least
    `regime.INFORMATION_FLOOR` x ln K below the uniform prediction's ln K (not judged when `ce` is None).
    `robust`, `energy_mean` (of E(x) on the same images) and `steps` (optimizer steps, when known) are
    kept in it and shown in its texts. One point, so nothing can have diverged (the spread of E(x),
    which a run's regime reads for a constant output after it learned, has no later point to read)."""
    if n_images < 1 or not 0 <= clean <= 1:
        raise ValueError(f"model_regime needs n_images >= 1 and a clean accuracy in [0, 1]; got {n_images}, {clean}")
    nan = float("nan")
    point = {"test_acc_nat": [float(clean)], "test_acc_adv": [nan if robust is None else float(robust)],
             "test_E_nat_mean": [nan if energy_mean is None else float(energy_mean)],
             "test_ce_nat": [nan if ce is None else float(ce)]}
    import pandas as pd

    return regime_from_metrics(pd.DataFrame(point), n_test=int(n_images), n_train_track=0, n_classes=int(n_classes),
                               steps=steps, level=level)


def spread_ratio(reference, other, *, threshold: float = SPREAD_RATIO, labels=("standard", "robust"),
                 paired: bool = True, level: float = LEVEL, random_state: int = 0,
                 regime: Regime | None = None) -> SpreadRatio:
    """PAPER.md 5.2 item 4: is `other`'s (a robust model's) spread of per-image ΔE(x) at least `threshold`
    times smaller than `reference`'s (the standard model's)?

    Statistic: std(reference) / std(other) (sample standard deviations), with a percentile bootstrap
    interval (scipy.stats.bootstrap of the log ratio; `paired` when both were measured on the same
    images: plain arrays in the same order, or pandas Series keyed by image id, aligned on it).
    Verdict: `reproduced` when the interval lies above `threshold`, `not reproduced` when it lies
    below, `inconclusive at this scale` when it contains it, when a spread is 0 or there are fewer
    than 3 values (no spread to compare), or when some resamples have no spread (few or tied values:
    no interval). Missing values (NaN, None) are dropped, pairwise when `paired`. `mde`: the factor by which the true ratio must lie above or
    below `threshold` for a test with this noise to notice at 80 % power and the 5 % level.

    `regime` (the robust model's `energy_lib.regime.Regime`, e.g. `model_regime` of its clean outcomes
    on the same images): a network that never learned (clean accuracy not significantly above twice
    chance, or predictions near uniform) has a tight ΔE(x) by construction (a constant output has none
    at all), which says nothing about the landscape of a robust classifier; its verdict is
    `inconclusive at this scale` with the regime's figures (`untestable`), never `reproduced`, whatever
    the ratio (shown, not read).
    """
    if threshold <= 0:
        raise ValueError(f"threshold={threshold} must be positive (a ratio of standard deviations)")
    untestable = regime.never_learned_text if regime is not None and not regime.learned else ""
    if paired:
        a, b = _paired_items([reference, other])
        if a.shape != b.shape:
            raise ValueError(f"a paired spread ratio needs the same images for both models; got {a.shape} and "
                             f"{b.shape} values (pass paired=False for different images)")
        both = np.isfinite(a) & np.isfinite(b)   # an image missing for either model leaves both: pairs stay aligned
        a, b = a[both], b[both]
    else:
        a, b = (np.asarray(v, dtype=float).ravel() for v in (reference, other))
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    ref, oth = labels
    sd_a = float(np.std(a, ddof=1)) if len(a) > 1 else float("nan")
    sd_b = float(np.std(b, ddof=1)) if len(b) > 1 else float("nan")
    nan2 = (float("nan"), float("nan"))
    if min(len(a), len(b)) < 3 or not (sd_a > 0 and sd_b > 0):
        why = (f"{min(len(a), len(b))} value(s): too few to compare spreads" if min(len(a), len(b)) < 3 else
               f"std ΔE(x) is {sd_a:.3g} for {ref} and {sd_b:.3g} for {oth}: a spread of 0 has no ratio")
        if untestable:
            why = f"{untestable}; {why}: inconclusive at this scale"
        return SpreadRatio(float("nan"), nan2, threshold, sd_a, sd_b, tuple(labels), min(len(a), len(b)), paired,
                           INCONCLUSIVE_SCALE, why, untestable=untestable)
    ratio = sd_a / sd_b
    # a resample without spread has no log ratio (its nan is read below, not warned about)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        boot = stats.bootstrap((a, b), _log_sd_ratio, paired=paired, vectorized=True, n_resamples=2000,
                               random_state=random_state, method="percentile", confidence_level=level)
    ci = (float(np.exp(boot.confidence_interval.low)), float(np.exp(boot.confidence_interval.high)))
    factor = float(np.exp(mde_from_se(boot.standard_error)))
    if not all(map(math.isfinite, ci)):   # few or tied values: some resamples repeat one value, and no interval
        verdict, text = INCONCLUSIVE_SCALE, ("some bootstrap resamples have no spread (too few distinct values), so "
                                             "there is no interval to read: inconclusive at this scale")
        ci, factor = nan2, float("nan")
    else:
        verdict = REPRODUCED if ci[0] > threshold else NOT_REPRODUCED if ci[1] < threshold else INCONCLUSIVE_SCALE
        text = {REPRODUCED: f"at least {threshold:g}x tighter by more than the noise, as the paper expects",
                NOT_REPRODUCED: f"less than {threshold:g}x tighter by more than the noise",
                INCONCLUSIVE_SCALE: (f"{threshold:g}x lies within the interval (a true ratio {factor:.2f} times above "
                                     f"or below {threshold:g}x would have been detected with {POWER:.0%} power)")}[verdict]
    interval = f"interval {_times(ci[0])}-{_times(ci[1])}" if math.isfinite(ci[0]) else "no interval"
    sentence = (f"std ΔE(x) is {sd_a:.3g} for {ref} and {sd_b:.3g} for {oth} on {min(len(a), len(b))} "
                f"{'shared ' if paired else ''}images: {oth} is {_times(ratio)}x tighter"
                + (f", {level:.0%} bootstrap {interval}" if math.isfinite(ci[0]) else "") + f"; {text}")
    if untestable:
        verdict = INCONCLUSIVE_SCALE
        sentence = (f"{untestable}; a network that did not learn is tight by construction, so {oth}'s std ΔE(x) "
                    f"({sd_b:.3g} against {sd_a:.3g} for {ref}: {_times(ratio)}x tighter, {interval}) says nothing "
                    "about a robust classifier's landscape: inconclusive at this scale")
    return SpreadRatio(float(ratio), ci, threshold, sd_a, sd_b, tuple(labels), min(len(a), len(b)), paired, verdict,
                       sentence, factor, untestable)


@dataclass(frozen=True)
class SpreadRatios(Result):
    ratios: dict                 # {model: SpreadRatio at `level`}
    threshold: float
    verdict: str                 # REPRODUCTION of "every model that learned has a spread at least `threshold`
                                 # times smaller" (inconclusive when none learned)
    sentence: str

    @property
    def never_learned(self) -> dict:
        """{model: SpreadRatio} of the robust models that never learned: not counted in the verdict."""
        return {name: r for name, r in self.ratios.items() if r.untestable}

    @property
    def counted(self) -> dict:
        """{model: SpreadRatio} of the robust models the verdict reads (those that learned)."""
        return {name: r for name, r in self.ratios.items() if not r.untestable}

    @property
    def statistic_text(self) -> str:
        if not self.ratios:
            return "no robust model"
        never = self.never_learned
        left_out = f"{len(never)} never learned, not counted ({', '.join(never)})"
        if not self.counted:
            return f"not testable here: none of the {len(self.ratios)} robust models learned ({', '.join(never)})"
        hits = sum(r.verdict == REPRODUCED for r in self.counted.values())
        name, low = min(self.counted.items(), key=lambda kv: kv[1].statistic if math.isfinite(kv[1].statistic)
                        else -math.inf)
        learned = "learned robust models" if never else "robust models"
        return (f"{hits} of {len(self.counted)} {learned} ≥ {self.threshold:g}× tighter beyond the noise; "
                f"least: {name}, {low.statistic_text}" + (f"; {left_out}" if never else ""))


def spread_ratios(reference, others: dict, *, regimes: dict, threshold: float = SPREAD_RATIO,
                  reference_label: str = "standard", paired: bool = True, level: float = LEVEL,
                  random_state: int = 0) -> SpreadRatios:
    """PAPER.md 5.2 item 4 over several robust models ("for any robust model"): `spread_ratio` of each
    of `others` ({label: per-image ΔE(x)}) against `reference`, each read with its regime (`regimes`:
    {label: `Regime`} for every one of `others`, e.g. `model_regime` of its clean outcomes on the same
    images). A model that never learned is `inconclusive at this scale` (its ratio is shown, not read)
    and is left out of the claim, which is about robust classifiers; the sentence names it and why.
    Verdict, over the models that learned: `reproduced` when every one's interval lies above
    `threshold` (an intersection-union test: each at `level`), `not reproduced` when some one's interval
    lies below it at the Bonferroni-corrected level over them (a union), `inconclusive at this scale`
    otherwise, also without a robust model or when none learned."""
    missing = [name for name in others if not isinstance(regimes.get(name), Regime)]
    if missing:
        raise ValueError(f"spread_ratios needs the regime of every robust model (a network that never learned is tight "
                         f"by construction); none for {missing}: pass regimes={{label: verdicts.model_regime(...)}}")
    if not others:
        return SpreadRatios({}, threshold, INCONCLUSIVE_SCALE, "no robust model to compare with the standard one")
    each = {name: spread_ratio(reference, v, threshold=threshold, labels=(reference_label, name), paired=paired,
                               level=level, random_state=random_state, regime=regimes[name])
            for name, v in others.items()}
    counted = [name for name, r in each.items() if not r.untestable]
    never = [name for name, r in each.items() if r.untestable]
    strict = [spread_ratio(reference, others[name], threshold=threshold, paired=paired,
                           level=1 - (1 - level) / len(counted), random_state=random_state).verdict for name in counted]
    models = "robust model that learned" if never else "robust model"
    if not counted:
        verdict, text = INCONCLUSIVE_SCALE, (f"none of the {len(never)} robust models learned, so the claim cannot be "
                                             "read in this build: inconclusive at this scale")
    elif NOT_REPRODUCED in strict:
        verdict, text = NOT_REPRODUCED, (f"some {models} is less than {threshold:g}x tighter by more than the noise "
                                         f"(Bonferroni over {len(counted)} models)")
    elif all(each[name].verdict == REPRODUCED for name in counted):
        verdict, text = REPRODUCED, f"every {models} is at least {threshold:g}x tighter by more than the noise"
    else:
        verdict, text = INCONCLUSIVE_SCALE, f"not every {models} is {threshold:g}x tighter by more than the noise"

    def item(name, r):
        if r.untestable:
            measured = f", its {_times(r.statistic)}x not read" if math.isfinite(r.statistic) else ""
            return f"{name}: {r.untestable.split(':')[0]}{measured}"
        if math.isfinite(r.statistic) and math.isfinite(r.ci[0]):
            return f"{name}: {_times(r.statistic)}x [{_times(r.ci[0])}, {_times(r.ci[1])}]"
        if math.isfinite(r.statistic):
            return f"{name}: {_times(r.statistic)}x, no interval (resamples without spread)"
        return f"{name}: not measurable"

    listed = "; ".join(item(name, r) for name, r in each.items())
    if never:
        text += ("; left out of the claim, because the network never learned (a network that did not learn is tight "
                 "by construction): " + "; ".join(f"{name} ({each[name].untestable.split(': ', 1)[1]})"
                                                    for name in never))
    return SpreadRatios(each, threshold, verdict, f"std ΔE(x) of {reference_label} over each robust model's: {listed}; "
                                                 f"{text}")


# ----------------------------------------------------------------------------- protocol and identity notes
def identity_check(max_abs_error: float, tol: float = 1e-9) -> tuple[str, str]:
    """An exact identity checked in float64: (REPRODUCTION verdict, sentence)."""
    if max_abs_error < tol:
        return REPRODUCED, f"{max_abs_error:.1e}, float64 rounding (below {tol:g}), so the identity holds"
    return NOT_REPRODUCED, (f"{max_abs_error:.1e}, more than float64 rounding ({tol:g}): the identity FAILS here, "
                            "which points to a bug")


def scale_note(model: str, n_train: int | None, paper_model: str = "resnet18") -> str:
    """Whether a run's energies are on the paper's scale (same model, all training images)."""
    if model == paper_model and n_train is None:
        return "this run uses the paper's model and data, so the values are comparable"
    return (f"a {model} on {'all' if n_train is None else f'{n_train:,}'} images lives on a different energy scale, "
            "so only the direction and the shape are comparable")


def late_phase_note(epochs: int, late_from: int = 50) -> str:
    """Whether a run is long enough to show the paper's late ΔE divergence (after ~75 % of 100 epochs)."""
    if epochs < late_from:
        return (f"with {epochs} epochs there is no late phase, so this run cannot show the paper's late divergence; "
                "chapter 2 shows the phases on longer runs")
    return f"the runs last {epochs} epochs, long enough for the late phase the paper describes"


# ----------------------------------------------------------------------------- inputs computed from runs
def late_delta_e(samples, last_fraction: float = 0.25, column: str = "dE"):
    """Each tracked training image's ΔE(x), averaged over the last `last_fraction` of the epochs
    (chapter 3's input to `energy_alignment`). `samples`: a run's `tracked_samples` (long format:
    epoch, sample, dE, ...); `column`: "dE" (under the method's own training attack) or "dE_pgd"
    (under the common test attack, runs tracked since issue 23); returns a Series indexed by sample."""
    s = samples
    return s[s["epoch"] > s["epoch"].max() * (1 - last_fraction)].groupby("sample")[column].mean()


RECORD_CHUNKING = ("batch_size", "aa_chunk_size")   # evaluation settings that change no number


def compare_records(rec_a: dict, rec_b: dict, *, labels=("A", "B"), level: float = LEVEL,
                    margin: float = RANKING_MARGIN) -> AccuracyComparison:
    """`compare_accuracy` of two robust-evaluation records (`metrics.robust`) as chapter 4 compares
    methods: on AutoAttack accuracy when both records have it, else on PGD accuracy, over the
    records' test images (which must be the same, as must the attack settings). Paired (McNemar's
    exact test) when both records hold per-image outcomes of that attack (record version 2);
    else unpaired, and the result's `test` and sentence say so."""
    if rec_a["images"] != rec_b["images"]:
        raise ValueError(f"the two records were evaluated on different test images ({rec_a['images']} vs "
                         f"{rec_b['images']}); evaluate both on the same")
    # attacks of different reach are not compared (how the work is chunked does not matter)
    same = {k: v for k, v in rec_a.get("settings", {}).items() if k not in RECORD_CHUNKING}
    other = {k: v for k, v in rec_b.get("settings", {}).items() if k not in RECORD_CHUNKING}
    if same != other:
        diff = sorted(k for k in set(same) | set(other) if same.get(k) != other.get(k))
        raise ValueError(f"the two records used different attack settings ({', '.join(diff)}); evaluate both "
                         "with the same RobustEvalSettings")
    if rec_a["n_images"] != rec_b["n_images"]:
        raise ValueError(f"the two records hold {rec_a['n_images']} and {rec_b['n_images']} images; evaluate both on "
                         "the same")
    metric = "autoattack" if "autoattack" in rec_a["accuracy"] and "autoattack" in rec_b["accuracy"] else "pgd"
    correct = [bits.record_outcomes(rec, metric, label) for rec, label in zip((rec_a, rec_b), labels)]
    missing = [label for label, c in zip(labels, correct) if c is None]
    whose = f"the record of {missing[0]} holds" if len(missing) == 1 else f"the records of {' and '.join(missing)} hold"
    why = f"{whose} no per-image outcomes, being older than record version 2" if missing else ""
    return compare_accuracy(rec_a["accuracy"][metric], rec_b["accuracy"][metric], rec_a["n_images"], labels=labels,
                            correct_a=None if missing else correct[0], correct_b=None if missing else correct[1],
                            level=level, why_unpaired=why, margin=margin)


def robust_overfitting_of(metrics, n_test_track: int, regime: Regime | None = None) -> RobustOverfitting:
    """`robust_overfitting` of one run's per-epoch metrics (a run's `metrics` frame), as chapter 2
    and the sizing sweep (`energy_lib.sizing`) both call it: paired over test images when the run
    tracked which test images were robust (`test_correct_adv`, packed by `bits.pack`)."""
    return robust_overfitting(metrics["test_acc_adv"], n_test_track, val_acc=metrics["val_acc_adv"],
                              epochs=metrics["epoch"], test_correct=test_correct_of(metrics, n_test_track),
                              regime=regime)


def test_correct_of(metrics, n_test_track: int):
    """A run's per-epoch, per-image robust correctness on its tracked test images (epochs x images,
    from `test_correct_adv`, packed by `bits.pack`), or None when an epoch did not record it."""
    if "test_correct_adv" in metrics and metrics["test_correct_adv"].map(lambda v: isinstance(v, str)).all():
        return np.stack([bits.unpack(v, n_test_track) for v in metrics["test_correct_adv"]])
    return None


def less_robust_overfitting_of(metrics_a, metrics_b, n_test_a: int, n_test_b: int, *, regime_a: Regime | None = None,
                               regime_b: Regime | None = None, labels=("SAT", "TRADES")) -> LessOverfitting | None:
    """`less_robust_overfitting` of two runs' per-epoch metrics (each read by `robust_overfitting_of`
    with its regime and its own number of tracked test images), as the suite reads TRADES and WEAT_adv
    against SAT; None when either run did not record which tracked test images were robust."""
    if n_test_a != n_test_b:
        raise ValueError(f"{labels[0]} tracked {n_test_a} test images and {labels[1]} {n_test_b}; less overfitting "
                         "is read on the same images: compare runs with the same n_test_track")
    ca, cb = test_correct_of(metrics_a, n_test_a), test_correct_of(metrics_b, n_test_b)
    if ca is None or cb is None:
        return None
    return less_robust_overfitting(robust_overfitting_of(metrics_a, n_test_a, regime=regime_a), ca,
                                   robust_overfitting_of(metrics_b, n_test_b, regime=regime_b), cb,
                                   epochs_a=metrics_a["epoch"], epochs_b=metrics_b["epoch"], labels=labels)


def delta_e_alarm_of(metrics, n_test_track: int, n_train_track: int) -> DeltaEAlarm:
    """`delta_e_alarm` of one run's per-epoch metrics, as chapter 2 calls it on its own runs and on
    the phenomena suite's (`suite.ro_alarms`): the training-set mean ΔE(x) with its per-epoch standard
    error (`train_dE_std` / √`n_train_track`) as the noise floor, paired over the tracked test images
    when the run recorded which of them were robust (`test_correct_adv`)."""
    return delta_e_alarm(metrics["train_dE_mean"], metrics["val_acc_adv"], metrics["test_acc_adv"], n_test_track,
                         metrics["epoch"], noise_floor=metrics["train_dE_std"] / math.sqrt(n_train_track),
                         test_correct=test_correct_of(metrics, n_test_track))


def catastrophic_overfitting_of(metrics, n_test_track: int, n_classes: int,
                                regime: Regime | None = None) -> CatastrophicOverfitting:
    """`catastrophic_overfitting` of one single-step run's per-epoch metrics, as chapter 2 and the
    sizing sweep both call it: its clean test accuracy against chance (1 / `n_classes`), and the
    last epoch's per-image outcomes when the run tracked them (`test_correct_adv`), so that
    `der_prevents_co` compares two runs' final accuracies paired. A constant output is read from
    the last epoch's spread of the tracked test images' clean energies E(x) (`test_E_nat_std`, below
    `CONSTANT_SPREAD`: a network whose logits do not depend on the image). Measured in the sizing
    sweep: 0.0 for the FGSM-RS runs that went to a constant output at 2000 images, 0.0003 for a
    near-constant one at 1000 images (the chance rule catches it), 0.004 and more while runs learn.
    A run tracked within epochs (`tracks_per_epoch` > 1) is read at every tracked point
    (`regime.tracked_points`). `regime`: see `catastrophic_overfitting`."""
    points = tracked_points(metrics)
    spread = points["test_E_nat_std"].iloc[-1] if "test_E_nat_std" in points else None
    result = catastrophic_overfitting(points["test_acc_adv"], n_test_track, points["progress"],
                                      clean=points["test_acc_nat"], chance=1 / n_classes,
                                      constant_output=spread is not None and float(spread) < CONSTANT_SPREAD,
                                      regime=regime)
    last = metrics["test_correct_adv"].iloc[-1] if "test_correct_adv" in metrics else None
    if isinstance(last, str):
        result = dataclasses.replace(result, final_correct=last)
    return result
