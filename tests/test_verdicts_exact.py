"""Verdicts on planted inputs whose every figure is known by hand: WEAT's weight contrast (its ratio
of means, its bootstrap protocol, its thresholds at exactly 1 and its sentences)."""
import math

import numpy as np
import pytest
from scipy import stats

from energy_lib import verdicts as V


def protocol_bootstrap(data, statistic, *, paired=False, level=0.95, seed=0):
    """Every verdict's documented interval protocol: scipy's percentile bootstrap, 2,000 resamples, seed 0
    (the caller's level and seed where a test asks for them)."""
    return stats.bootstrap(data, statistic, paired=paired, n_resamples=2000, random_state=seed, method="percentile",
                           confidence_level=level)


def percentile_interval(wi, wc, level=0.95):
    """WEAT's weight contrast: mean(misclassified) / mean(correct), the two groups resampled independently."""
    ratio = lambda a, b, axis=-1: np.mean(a, axis=axis) / np.mean(b, axis=axis)   # noqa: E731
    ci = protocol_bootstrap((wi, wc), ratio, level=level).confidence_interval
    return float(ci.low), float(ci.high)


# correctly classified weigh 0.5 on average, misclassified 2.0: ratio 4 (a product of the means is 1)
CORRECT_W = np.tile([0.4, 0.6, 0.5, 0.5], 10)
WRONG_W = np.tile([1.8, 2.2, 2.0], 10)
W = np.r_[CORRECT_W, WRONG_W]
OK = np.r_[np.ones(40, bool), np.zeros(30, bool)]


def test_the_ratio_is_of_the_two_means_with_its_percentile_bootstrap():
    c = V.weight_contrast(W, OK)
    assert c.ratio == pytest.approx(4.0, abs=1e-12) and c.max_over_min == pytest.approx(2.2 / 0.4, abs=1e-12)
    assert (c.n_correct, c.n_incorrect, c.verdict) == (40, 30, V.PRESENT)
    assert c.ci == pytest.approx(percentile_interval(WRONG_W, CORRECT_W), abs=1e-12)
    assert c.sentence == (f"the largest weight is 5.5x the smallest; misclassified images (30) get 4.00x the mean weight "
                          f"of correctly classified ones (40), 95% bootstrap interval {c.ci[0]:.2f}-{c.ci[1]:.2f}: "
                          "misclassified images get significantly larger weights, as the paper describes")
    assert c.ci[0] < 4.0 < c.ci[1] and f"{c.ci[0]:.2f}" != f"{c.ci[1]:.2f}"
    narrow = V.weight_contrast(W, OK, level=0.5)               # its own level, in the interval and the sentence
    assert narrow.ci == pytest.approx(percentile_interval(WRONG_W, CORRECT_W, level=0.5), abs=1e-12)
    assert ", 50% bootstrap interval " in narrow.sentence
    again = V.weight_contrast(W, OK)
    assert again.ci == c.ci                                     # a fixed seed: the same interval every time


def test_equal_groups_are_absent_exactly_at_one():
    """Every weight 1: the ratio and both ends of every resample are exactly 1, not above 1."""
    c = V.weight_contrast(np.ones(10), np.r_[np.ones(5, bool), np.zeros(5, bool)])
    assert (c.ratio, c.ci, c.verdict) == (1.0, (1.0, 1.0), V.ABSENT)
    assert c.sentence.endswith("95% bootstrap interval 1.00-1.00: misclassified images do not get larger weights")


def test_a_contrast_between_one_and_two_is_present_and_noise_is_inconclusive():
    mild = V.weight_contrast(np.r_[np.full(20, 1.0), np.tile([1.45, 1.55], 10)], np.r_[np.ones(20, bool),
                                                                                         np.zeros(20, bool)])
    assert mild.ratio == pytest.approx(1.5) and 1 < mild.ci[0] < mild.ci[1] < 2 and mild.verdict == V.PRESENT
    noise_wi, noise_wc = np.tile([0.5, 1.5], 10), np.tile([0.6, 1.4], 10)     # both means 1: ratio 1
    noise = V.weight_contrast(np.r_[noise_wc, noise_wi], np.r_[np.ones(20, bool), np.zeros(20, bool)])
    assert noise.ci[0] < 1 < noise.ci[1] < 2 and noise.verdict == V.INCONCLUSIVE
    assert noise.sentence.endswith(": the difference between the two groups is within the noise")


def test_two_images_per_group_are_enough_and_one_is_not():
    two = V.weight_contrast([1.0, 1.2, 3.0, 3.4], [True, True, False, False])
    assert two.ratio == pytest.approx(3.2 / 1.1) and math.isfinite(two.ci[0]) and math.isfinite(two.ci[1])
    one = V.weight_contrast([1.0, 3.0, 3.4], [True, False, False])
    assert one.verdict == V.INCONCLUSIVE and math.isnan(one.ratio) and all(math.isnan(x) for x in one.ci)
    assert (one.n_correct, one.n_incorrect, one.max_over_min) == (1, 2, 3.4)
    assert one.sentence == "only 1 correctly and 2 incorrectly classified images: too few to compare their weights"
    assert one.statistic_text == "too few images per group (1 correct, 2 misclassified)"


def test_a_zero_weight_or_no_weight_has_no_max_over_min():
    with np.errstate(divide="raise"):                        # the largest weight is never divided by 0
        zero = V.weight_contrast([1.0, 3.0, 0.0, 2.0], [True, True, False, False])
    assert math.isnan(zero.max_over_min) and zero.ratio == pytest.approx(0.5)
    empty = V.weight_contrast([], [])
    assert empty.verdict == V.INCONCLUSIVE and math.isnan(empty.max_over_min) and (empty.n_correct, empty.n_incorrect) == (0, 0)


def test_float32_weights_are_averaged_in_float64():
    """WEAT's weights come from float32 energies: the ratio is of float64 means."""
    wc = ((np.arange(1, 2001, dtype=np.float32) / 7) ** np.float32(0.5)).astype(np.float32)
    wi = (wc * np.float32(1.3)).astype(np.float32)
    c = V.weight_contrast(np.r_[wc, wi], np.r_[np.ones(2000, bool), np.zeros(2000, bool)])
    assert c.ratio == float(wi.astype(np.float64).mean() / wc.astype(np.float64).mean())
    assert c.ratio != float(wi.mean() / wc.mean())             # float32 means would differ


# ----------------------------------------------------------------------------- energy alignment (PAPER.md 2.4)
def alignment_interval(a, b, paired=True, level=0.95):
    """The energy alignment: |mean a| − |mean b| over images (paired: the same images resampled for both)."""
    diff = lambda x, y, axis=-1: np.abs(np.mean(x, axis=axis)) - np.abs(np.mean(y, axis=axis))   # noqa: E731
    boot = protocol_bootstrap((a, b), diff, paired=paired, level=level)
    return (float(boot.confidence_interval.low), float(boot.confidence_interval.high)), float(boot.standard_error)


SAT_DE = np.tile([-0.9, -0.7, -0.8, -0.85, -0.75], 40)         # mean -0.8
TRADES_DE = np.tile([-0.1, 0.1, -0.05, 0.0, -0.2], 40)          # mean -0.05


def test_alignment_is_the_difference_of_absolute_means_with_its_bootstrap():
    a = V.energy_alignment(SAT_DE, TRADES_DE, attack="the test attack")
    ci, se = alignment_interval(SAT_DE, TRADES_DE)
    assert a.statistic == pytest.approx(0.75, abs=1e-12) and a.ci == pytest.approx(ci, abs=1e-12)
    assert (a.mean_a, a.mean_b, a.n, a.paired) == (pytest.approx(-0.8), pytest.approx(-0.05), 200, True)
    assert a.labels == ("SAT", "TRADES") and a.attack == "the test attack" and a.verdict == V.REPRODUCED
    assert a.mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se, rel=1e-9)
    assert a.sentence == ("mean ΔE(x) under the test attack is -0.8000 for SAT and -0.0500 for TRADES on 200 training "
                          f"images: |SAT| − |TRADES| = +0.7500, 95% bootstrap interval [{ci[0]:+.4f}, {ci[1]:+.4f}]; "
                          "TRADES is closer to 0 by more than the noise")
    assert f"{ci[0]:+.4f}" != f"{ci[1]:+.4f}"
    other = V.energy_alignment(TRADES_DE, SAT_DE, labels=("TRADES", "WEAT"), level=0.9)
    ci90, _ = alignment_interval(TRADES_DE, SAT_DE, level=0.9)
    assert other.ci == pytest.approx(ci90, abs=1e-12) and other.verdict == V.NOT_REPRODUCED
    assert other.labels == ("TRADES", "WEAT") and other.sentence.endswith("; TRADES is closer to 0 by more than the noise")
    assert V.energy_alignment(SAT_DE, TRADES_DE).ci == a.ci     # a fixed seed: the same interval every time


def test_unpaired_alignment_resamples_each_run_on_its_own_images():
    a = V.energy_alignment(SAT_DE, TRADES_DE[:150], paired=False)
    ci, _ = alignment_interval(SAT_DE, TRADES_DE[:150], paired=False)
    assert a.ci == pytest.approx(ci, abs=1e-12) and a.paired is False and a.n == 200
    assert V.energy_alignment(SAT_DE, TRADES_DE, paired=False).ci != V.energy_alignment(SAT_DE, TRADES_DE).ci


def test_equal_absolute_means_are_inconclusive_even_at_an_interval_of_exactly_zero():
    same = V.energy_alignment(np.full(50, -0.3), np.full(50, 0.3))  # |−0.3| − |0.3| = 0 in every resample
    assert (same.statistic, same.ci, same.verdict) == (0.0, (0.0, 0.0), V.INCONCLUSIVE_SCALE)
    assert same.sentence.endswith("; the difference is within the noise (a difference of 0.0000 would have been "
                                  "detected with 80% power)")


def test_float32_energies_are_averaged_in_float64():
    a32 = ((np.arange(1, 2001, dtype=np.float32) / 3) ** np.float32(0.5) / np.float32(-30)).astype(np.float32)
    b32 = (a32 * np.float32(0.25)).astype(np.float32)
    got = V.energy_alignment(a32, b32)
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    assert got.statistic == float(abs(a64.mean()) - abs(b64.mean()))
    assert got.mean_a == float(a64.mean()) and float(a32.mean()) != got.mean_a


# ----------------------------------------------------------------------------- the ΔE alarm (chapter 2)
def wiggle(n: int, base: float = -0.10) -> np.ndarray:
    """base ± 0.01, alternating (+ at even epochs)."""
    return base + 0.01 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


def dropping_at(index: int, n: int = 20, low: float = -1.0) -> np.ndarray:
    d = wiggle(n)
    d[index:] = low
    return d


FLAT = np.full(20, 0.3)


def test_the_alarm_fires_once_the_drop_has_lasted_persist_epochs():
    """20 epochs, window 5, warm-up 25 %: the rule looks from index 5. ΔE drops from about -0.1 to -1 at
    index 12: at s = 12 the level is median(d[7:12]) = -0.11 and the robust noise of the 11 steps before
    (six -0.02, five +0.02: MAD 0) is the 1e-12 floor; d[12..14] are all below, so it fires at index 14,
    epoch 15. At s = 11 the level is -0.09, the noise 1.4826 · 0.02 / √2 and d[11] = -0.11 is above."""
    a = V.delta_e_alarm(dropping_at(12), FLAT, FLAT, 500)
    assert (a.fired, a.alarm_epoch) == (True, 15)
    assert V.delta_e_alarm(dropping_at(12), FLAT, FLAT, 500, epochs=np.arange(101, 121)).alarm_epoch == 115
    short = dropping_at(12)
    short[14:] = wiggle(20)[14:]                                 # back after 2 epochs: persist 3 is not met
    assert V.delta_e_alarm(short, FLAT, FLAT, 500).fired is False
    assert V.delta_e_alarm(short, FLAT, FLAT, 500, persist=2).alarm_epoch == 14


def test_the_alarm_looks_up_to_the_last_epochs_and_no_further():
    end = V.delta_e_alarm(dropping_at(17), FLAT, FLAT, 500)     # the last 3 epochs low: fires at the last
    assert (end.fired, end.alarm_epoch) == (True, 20)
    late = V.delta_e_alarm(dropping_at(18), FLAT, FLAT, 500)    # only 2 epochs low: never, and no index error
    assert (late.fired, late.alarm_epoch) == (False, 20)


def test_the_noise_floor_of_each_epoch_is_the_one_before_the_window_it_judges():
    """A floor of 0.5 (k = 3: 1.5 below the level) hides the drop of about 0.9 wherever it applies. Only
    at index 11 (read by s = 12): the rule fires one epoch later, at s = 13 (level still -0.11)."""
    assert V.delta_e_alarm(dropping_at(12), FLAT, FLAT, 500, noise_floor=0.5).fired is False
    floor = np.zeros(20)
    floor[11] = 0.5
    assert V.delta_e_alarm(dropping_at(12), FLAT, FLAT, 500, noise_floor=floor).alarm_epoch == 16


def test_a_value_exactly_at_the_threshold_is_not_below_it():
    """Flat at -0.5 (no noise), floor 0.125, k = 2: the threshold is exactly -0.75 (dyadic, exact)."""
    at = np.full(20, -0.5)
    at[12:] = -0.75
    assert V.delta_e_alarm(at, FLAT, FLAT, 500, k=2.0, noise_floor=0.125).fired is False
    at[12:] = -0.75 - 2 ** -20
    assert V.delta_e_alarm(at, FLAT, FLAT, 500, k=2.0, noise_floor=0.125).alarm_epoch == 15


def test_the_noise_of_one_step_is_none_and_of_two_steps_their_mad():
    """window 2, persist 1, no warm-up: s = 2 judges d[2] with one step behind it (noise: the 1e-12
    floor), s = 3 with two steps [+1, 0] (MAD 0.5 · 1.4826, / √2 = 0.524: threshold 1 − 3 · 0.524)."""
    one = V.delta_e_alarm([0.0, 1.0, 0.4, 0.4, 0.4], [0.3] * 5, [0.3] * 5, 500, window=2, persist=1, warmup=0.0)
    assert (one.fired, one.alarm_epoch) == (True, 3)                     # 0.4 < median(0, 1) = 0.5
    two = V.delta_e_alarm([0.0, 1.0, 1.0, -0.5, 1.0, 1.0], [0.3] * 6, [0.3] * 6, 500, window=2, persist=1, warmup=0.0)
    assert two.fired is False                                            # -0.5 > 1 − 1.572 = -0.572


def test_the_curves_must_be_equally_long_and_at_least_two_epochs():
    with pytest.raises(ValueError) as err:
        V.delta_e_alarm([0.1, 0.2, 0.3], [0.3, 0.3], [0.3, 0.3, 0.3], 100)
    assert str(err.value) == "delta_e_alarm needs equally long per-epoch curves (≥ 2 epochs); got 3, 2, 3"
    with pytest.raises(ValueError):
        V.delta_e_alarm([0.1], [0.3], [0.3], 100)
    assert V.delta_e_alarm([0.1, 0.2], [0.2, 0.3], [0.3, 0.3], 100).verdict == V.ALARM_UNTESTABLE


def test_each_verdict_with_its_comparison_and_sentence():
    n = 1000
    # never fires and validation keeps the last epoch: nothing tested
    val_last = np.linspace(0.2, 0.4, 20)
    u = V.delta_e_alarm(wiggle(20), val_last, val_last, n)
    assert u.verdict == V.ALARM_UNTESTABLE and (u.alarm_epoch, u.selection_epoch) == (20, 20)
    assert u.sentence == ("the ΔE rule never fires, so training runs to epoch 20 (40.0% robust test accuracy there); "
                          "PGD validation selects epoch 20 (40.0%); the last epoch has 40.0%. The difference +0.0 pt "
                          "(95% interval [-4.3 pt, +4.3 pt], unpaired) makes the alarm " + V.ALARM_UNTESTABLE)
    # never fires, but validation peaks at epoch 10 (ties: the earliest): compared, not untestable
    val_peak = np.r_[np.linspace(0.2, 0.4, 10), np.full(10, 0.4)]
    test_peak = np.r_[np.full(10, 0.40), np.full(10, 0.30)]
    w = V.delta_e_alarm(wiggle(20), val_peak, test_peak, n, level=0.9)
    assert (w.fired, w.alarm_epoch, w.selection_epoch, w.acc_alarm, w.acc_selection, w.acc_last) == \
        (False, 20, 10, 0.30, 0.40, 0.30)
    expected = V.compare_accuracy(0.30, 0.40, n, labels=("ΔE alarm", "PGD validation"), level=0.9, margin=0)
    assert w.comparison == expected and w.verdict == V.ALARM_WORSE
    assert w.sentence.endswith(f"The difference -10.0 pt (95% interval [{V._pt(expected.ci[0])}, "
                               f"{V._pt(expected.ci[1])}], unpaired) makes the alarm {V.ALARM_WORSE}")
    better = V.delta_e_alarm(dropping_at(12), val_last, np.r_[np.full(15, 0.45), np.full(5, 0.35)], n)
    assert (better.alarm_epoch, better.selection_epoch, better.verdict) == (15, 20, V.ALARM_BETTER)
    assert better.sentence.startswith("the ΔE rule fires at epoch 15 (45.0% robust test accuracy there); PGD "
                                      "validation selects epoch 20 (35.0%); the last epoch has 35.0%.")
    # fires where validation peaks: the same model
    same = V.delta_e_alarm(dropping_at(12), np.r_[np.full(14, 0.2), 0.5, np.full(5, 0.2)], FLAT, n)
    assert (same.alarm_epoch, same.selection_epoch, same.verdict) == (15, 15, V.ALARM_AS_GOOD)
    assert same.sentence.endswith(V.ALARM_AS_GOOD + " (both keep the same epoch's model)")


def test_equivalence_and_undecided_read_the_90_percent_interval_with_the_margin():
    rng = np.random.default_rng(0)
    base = rng.random((20, 4000)) < 0.4                             # per-epoch, per-image outcomes
    close = base.copy()
    close[19] = base[14]                                            # the last epoch = the alarm's, 3 images apart
    close[19, :3] = ~close[19, :3]
    test = close.mean(axis=1)
    val = np.r_[np.full(19, 0.2), 0.5]                              # validation keeps the last epoch
    eq = V.delta_e_alarm(dropping_at(12), val, test, 4000, test_correct=close)
    tost = V.compare_accuracy(test[14], test[19], 4000, level=0.9, margin=0, correct_a=close[14], correct_b=close[19])
    assert eq.comparison.paired and eq.verdict == V.ALARM_AS_GOOD
    assert eq.sentence.endswith(f"; its 90% interval [{V._pt(tost.ci[0])}, {V._pt(tost.ci[1])}] lies within ±1.5 pt "
                                "(equivalence, TOST at 5 %)") and tost.ci[0] != tost.ci[1]
    wide = V.delta_e_alarm(dropping_at(12), val, test, 4000, test_correct=close, margin=0.0001)
    assert wide.verdict == V.ALARM_UNDECIDED
    assert wide.sentence.endswith(f"; equivalence within ±0.0 pt is not shown either (90% interval "
                                  f"[{V._pt(tost.ci[0])}, {V._pt(tost.ci[1])}]), and the smallest difference it "
                                  f"would detect with 80% power is {V.mde_text(eq.comparison.mde)}")


# ----------------------------------------------------------------------------- ΔE at the CO onset (P2)
def co_at(onset, verdict=V.PRESENT):
    return V.CatastrophicOverfitting(verdict, onset, 0.4, 0.0, 0.0, 100, "planted")


POINTS = {"progress": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
          "train_dE_mean": [-0.01, -0.02, -0.04, -0.05, -0.6, -2.0, -0.3],
          "train_dE_std": [0.1, 0.1, 0.1, 0.3, 0.5, 0.4, 0.2]}


def test_the_jump_is_the_largest_value_within_an_epoch_of_the_onset_against_the_point_before():
    """Onset 2.5 (index 4); within one epoch (2.5-3.5) |ΔE| peaks at 3.0 (-2.0); before: -0.05 at 2.0.
    |ΔE| changes by 1.95; SE = √((0.3² + 0.4²) / 100) = 0.05 (the spreads of those two points);
    the earlier changes of |ΔE| are at most 0.02."""
    e = V.energy_divergence_at_onset(POINTS, co_at(2.5), 100)
    half = stats.norm.ppf(0.975) * 0.05
    assert (e.before, e.after, e.statistic, e.verdict) == (-0.05, -2.0, pytest.approx(1.95), V.REPRODUCED)
    assert e.ci == pytest.approx((1.95 - half, 1.95 + half), abs=1e-12)
    assert e.sentence == ("the training-set mean ΔE(x) goes from -0.050 (epoch 2, before the collapse) to -2.000 "
                          "(epoch 3, its largest |value| within 1 epoch of the collapse at 2.5): |ΔE| changes by "
                          "+1.950, 95% interval [+1.852, +2.048] over 100 tracked training images, against a largest "
                          "earlier change of 0.020; the energies diverge at the collapse, by more than any earlier change")
    near = V.energy_divergence_at_onset(POINTS, co_at(2.4), 100, level=0.9, within=0.25)   # nearest point: 2.5
    half90 = stats.norm.ppf(0.95) * math.sqrt((0.3 ** 2 + 0.5 ** 2) / 100)
    assert (near.after, near.statistic) == (-0.6, pytest.approx(0.55))
    assert near.ci == pytest.approx((0.55 - half90, 0.55 + half90), abs=1e-12)
    assert "within 0.25 epoch of the collapse at 2.5" in near.sentence and ", 90% interval [" in near.sentence


def test_a_shrinking_or_drift_sized_change_is_not_the_claim():
    shrinks = dict(POINTS, train_dE_mean=[-0.9, -0.95, -1.0, -1.0, -0.1, -0.05, -0.02])
    s = V.energy_divergence_at_onset(shrinks, co_at(2.5), 100)
    assert s.verdict == V.NOT_REPRODUCED and s.statistic == pytest.approx(-0.9)
    assert s.sentence.endswith("; |ΔE(x)| shrinks at the collapse")
    drifting = dict(POINTS, train_dE_mean=[-0.1, -0.6, -0.1, -0.2, -0.5, -0.6, -0.3])   # earlier change 0.5
    d = V.energy_divergence_at_onset(drifting, co_at(2.5), 100)
    assert d.statistic == pytest.approx(0.4) and d.ci[0] > 0 and d.verdict == V.INCONCLUSIVE_SCALE
    assert d.sentence.endswith("against a largest earlier change of 0.500; the change is within the noise or no "
                               "larger than earlier changes")


def test_an_onset_at_the_first_or_second_point_or_no_onset():
    first = V.energy_divergence_at_onset(POINTS, co_at(0.5), 100)
    assert first.verdict == V.INCONCLUSIVE_SCALE and first.sentence == ("the collapse is at the first tracked "
                                                                         "point: no point before it")
    assert all(math.isnan(x) for x in (first.before, first.after, first.statistic, *first.ci))
    second = V.energy_divergence_at_onset(POINTS, co_at(1.0), 100)     # one point before: no earlier change
    assert second.before == -0.01 and "against a largest earlier change of 0.000" in second.sentence
    for co in (co_at(None), co_at(2.5, V.ABSENT)):
        none = V.energy_divergence_at_onset(POINTS, co, 100)
        assert none.verdict == V.INCONCLUSIVE_SCALE and math.isnan(none.statistic)
        assert none.sentence == f"catastrophic overfitting is {co.verdict} in this run: no onset to read ΔE(x) at"


# ----------------------------------------------------------------------------- DER prevents CO (PAPER.md 2.7)
def co_run(verdict, final, *, correct=None, untestable="", diverged=False, n=200):
    from energy_lib import bits

    return V.CatastrophicOverfitting(verdict, 2.5 if verdict == V.PRESENT else None, 0.4, final, final, n, "planted",
                                     final_correct=None if correct is None else bits.pack(correct),
                                     untestable=untestable, diverged=diverged)


def test_der_prevents_co_compares_the_final_accuracies_paired_when_both_runs_hold_outcomes():
    rng = np.random.default_rng(1)
    base_ok, der_ok = rng.random(200) < 0.05, rng.random(200) < 0.3
    base, der = co_run(V.PRESENT, base_ok.mean(), correct=base_ok), co_run(V.ABSENT, der_ok.mean(), correct=der_ok)
    r = V.der_prevents_co(base, der, level=0.9)
    expected = V.compare_accuracy(der_ok.mean(), base_ok.mean(), 200, labels=("with DER", "without DER"), level=0.9,
                                  correct_a=der_ok.astype(np.uint8), correct_b=base_ok.astype(np.uint8))
    assert r.final == expected and r.final.paired and (r.base, r.der) == (base, der)
    assert r.verdict == V.REPRODUCED
    assert r.sentence == ("without DER catastrophic overfitting is present, with DER absent: DER prevented the collapse; "
                          f"final robust accuracy {expected.sentence}")
    one_sided = V.der_prevents_co(co_run(V.PRESENT, 0.05, correct=base_ok), co_run(V.ABSENT, 0.3))
    assert not one_sided.final.paired
    assert one_sided.final == V.compare_accuracy(
        0.3, 0.05, 200, labels=("with DER", "without DER"),
        why_unpaired="a run's metrics hold no per-image outcomes of its last epoch")


@pytest.mark.parametrize("base, der, verdict, text", [
    (co_run(V.PRESENT, 0.0), co_run(V.PRESENT, 0.0), V.NOT_REPRODUCED, "the run with DER collapsed too"),
    (co_run(V.ABSENT, 0.3), co_run(V.ABSENT, 0.3), V.INCONCLUSIVE_SCALE,
     "the run without DER has no catastrophic overfitting to prevent"),
    (co_run(V.PRESENT, 0.0), co_run(V.INCONCLUSIVE, 0.1), V.INCONCLUSIVE_SCALE, "the run with DER is itself inconclusive"),
    (co_run(V.PRESENT, 0.0, untestable="the network never learned: its best clean test accuracy is 9 %"),
     co_run(V.ABSENT, 0.3), V.INCONCLUSIVE_SCALE, "in the run without DER the network never learned"),
    (co_run(V.PRESENT, 0.0), co_run(V.ABSENT, 0.3, untestable="the network never learned: flat"),
     V.INCONCLUSIVE_SCALE, "in the run with DER the network never learned"),
    (co_run(V.PRESENT, 0.0, untestable="the network never learned: a"),
     co_run(V.ABSENT, 0.3, untestable="the network never learned: b"), V.INCONCLUSIVE_SCALE,
     "in both runs the network never learned"),
    (co_run(V.PRESENT, 0.0, diverged=True), co_run(V.ABSENT, 0.3), V.INCONCLUSIVE_SCALE,
     "the run without DER diverged (clean accuracy at chance or a constant output)"),
    (co_run(V.PRESENT, 0.0), co_run(V.ABSENT, 0.3, diverged=True), V.INCONCLUSIVE_SCALE,
     "the run with DER diverged (clean accuracy at chance or a constant output)"),
    (co_run(V.PRESENT, 0.0, diverged=True), co_run(V.ABSENT, 0.3, diverged=True), V.INCONCLUSIVE_SCALE,
     "both runs diverged (clean accuracy at chance or a constant output)"),
])
def test_der_prevents_co_only_when_the_base_run_collapsed_and_the_der_run_did_not(base, der, verdict, text):
    r = V.der_prevents_co(base, der)
    assert r.verdict == verdict
    assert r.sentence.startswith(f"without DER catastrophic overfitting is {base.verdict}, with DER {der.verdict}: "
                                 f"{text}; final robust accuracy ")


def test_der_prevents_co_needs_the_same_test_images():
    with pytest.raises(ValueError) as err:
        V.der_prevents_co(co_run(V.PRESENT, 0.0), co_run(V.ABSENT, 0.3, n=100))
    assert str(err.value) == "the two runs were tracked on different numbers of test images; track both on the same"


# ----------------------------------------------------------------------------- three phases with phase 3 at RO
def ro_result(verdict=V.PRESENT, statistic=-0.05, best_end=80, epochs=100, untestable=""):
    return V.RobustOverfitting(statistic, 0.01, (statistic - 0.02, statistic + 0.02), 0.45, 0.40,
                               (best_end - 4, best_end), (epochs - 4, epochs), "validation", 500, 0.0, verdict,
                               "planted", untestable=untestable)


def phase_fit(second=85.0, slopes=(-0.05, -0.001, -0.02), verdict=V.THREE_PHASES, bic=None):
    return V.PhaseFit(verdict, (10.0, second), slopes, {"line": 100.0, "one": 80.0, "two": 50.0} if bic is None else bic,
                      50.0, "planted phases")


def test_phase_3_must_begin_within_a_tenth_of_the_run_of_where_ro_begins():
    r = V.phases_reproduced(phase_fit(85.0), ro_result())
    assert (r.verdict, r.ro_onset, r.phases, r.ro) == (V.REPRODUCED, 80.0, phase_fit(85.0), ro_result())
    assert r.sentence == ("three phases of the paper's shape and robust overfitting: phase 3 begins at epoch 85, 5 "
                          "epochs from where robust overfitting begins (after epoch 80; allowed 10): reproduced")
    assert V.phases_reproduced(phase_fit(90.0), ro_result()).verdict == V.REPRODUCED          # exactly 10 off
    far = V.phases_reproduced(phase_fit(91.0), ro_result())
    assert far.verdict == V.NOT_REPRODUCED and far.sentence.endswith("(after epoch 80; allowed 10): not where the "
                                                                      "paper puts it")
    short = V.phases_reproduced(phase_fit(12.0), ro_result(best_end=10, epochs=15))   # 1.5 epochs: at least 2
    assert short.verdict == V.REPRODUCED and "(after epoch 10; allowed 2)" in short.sentence
    assert V.phases_reproduced(phase_fit(85.0), ro_result(), tolerance=0.03).verdict == V.NOT_REPRODUCED   # 3 epochs


def test_without_ro_or_without_a_fit_phase_3_cannot_be_read():
    absent = V.phases_reproduced(phase_fit(), ro_result(verdict=V.ABSENT))
    assert absent.verdict == V.INCONCLUSIVE_SCALE and absent.ro_onset == 80.0
    assert absent.sentence == ("phase 3 is where robust overfitting begins, and robust overfitting is absent in this "
                               "run: the three-phase claim cannot be read here (the ΔE(x) curve: three phases)")
    gapless = V.phases_reproduced(phase_fit(), ro_result(V.INCONCLUSIVE, float("nan"), untestable="no gap: none"))
    assert gapless.ro_onset is None and gapless.sentence.startswith("phase 3 is where robust overfitting begins, "
                                                                    "and no gap: none: ")
    unfit = V.PhaseFit(V.NO_PHASES, (), (), {}, 0.0, "6 finite epochs are too few")
    none = V.phases_reproduced(unfit, ro_result())
    assert (none.verdict, none.sentence, none.phases) == (V.INCONCLUSIVE_SCALE, "6 finite epochs are too few", unfit)


@pytest.mark.parametrize("fit, verdict, ending", [
    # three phases, but rising: of another shape
    (phase_fit(slopes=(0.05, 0.001, 0.02)), V.NOT_REPRODUCED, "shows three phases of another shape than the paper's"),
    # one change point, and a line beats the three-phase fit by more than the margin (40 < 55 − 10)
    (phase_fit(verdict=V.ONE_CHANGE, bic={"line": 40.0, "one": 45.0, "two": 55.0}), V.NOT_REPRODUCED,
     "shows one change point"),
    # ... a smooth polynomial does (the line does not)
    (phase_fit(verdict=V.ONE_CHANGE, bic={"line": 60.0, "poly2": 40.0, "two": 55.0}), V.NOT_REPRODUCED,
     "shows one change point"),
    # the simpler curve wins by exactly the margin: not by more
    (phase_fit(verdict=V.ONE_CHANGE, bic={"line": 45.0, "one": 30.0, "two": 55.0}), V.INCONCLUSIVE_SCALE,
     "shows one change point, and no simpler curve beats a three-phase fit by the margin either: the phases are not "
     "detected at this noise, which is not evidence against them"),
    # the one-change model is not a "simpler curve" for this purpose
    (phase_fit(verdict=V.ONE_CHANGE, bic={"line": 60.0, "one": 30.0, "poly2": 50.0, "two": 55.0}),
     V.INCONCLUSIVE_SCALE, "which is not evidence against them"),
])
def test_not_reproduced_needs_evidence_against_the_phases(fit, verdict, ending):
    r = V.phases_reproduced(fit, ro_result())
    assert r.verdict == verdict and (r.phases, r.ro, r.ro_onset) == (fit, ro_result(), 80.0)
    assert r.sentence.startswith("robust overfitting is present (it begins after epoch 80) but the ΔE(x) curve ")
    assert r.sentence.endswith(ending)


# ----------------------------------------------------------------------------- the trend over budgets (chapter 1)
A4 = np.arange(40) * 0.01                                        # mean 0.195
A8 = A4 + 1.0 + np.where(np.arange(40) % 2 == 0, 0.05, -0.05)  # + 1 per item, ± 0.05
A16 = A8 + 0.5


def eps255(b):
    return f"{b * 255:g}/255"


def test_a_rising_trend_reads_each_paired_step_with_its_interval():
    t = V.shift_trend({8 / 255: A8, 4 / 255: A4}, +1, what="E(x*) − E(x)", level=0.9, budget_text=eps255)
    step = V.mean_shift(A8 - A4, +1, what="change of E(x*) − E(x)", level=0.9, random_state=0)
    assert t.steps == (step,) and t.budgets == (4 / 255, 8 / 255) and t.expected_sign == 1
    assert t.means == (pytest.approx(0.195), pytest.approx(1.195)) and t.verdict == V.REPRODUCED
    assert t.sentence == (f"mean E(x*) − E(x) +0.195, +1.19 over the budgets; paired changes with 90% bootstrap intervals "
                          f"4/255 -> 8/255: +1 [{step.ci[0]:+.3g}, {step.ci[1]:+.3g}]: it rises at every larger budget "
                          "by more than the noise")
    assert f"{step.ci[0]:+.3g}" != f"{step.ci[1]:+.3g}"
    falling = V.shift_trend({1: -A4, 2: -A8, 3: -A16}, -1)
    assert falling.verdict == V.REPRODUCED and falling.sentence.endswith(": it falls at every larger budget by more "
                                                                          "than the noise")
    assert falling.sentence.startswith("mean shift -0.195, -1.19, -1.69 over the budgets; paired changes with 95% "
                                       "bootstrap intervals 1 -> 2: -1 [")


def test_every_interval_uses_the_callers_seed_and_the_other_way_is_bonferroni_corrected(monkeypatch):
    calls = []
    original = V.mean_shift

    def spy(values, expected_sign, **kw):
        calls.append((kw.get("level", V.LEVEL), kw.get("random_state", "default")))
        return original(values, expected_sign, **kw)

    monkeypatch.setattr(V, "mean_shift", spy)
    V.shift_trend({1: A4, 2: A8, 3: A16}, +1, random_state=7)
    # two steps at the verdict's level, then the same two at 1 − 0.05 / 2 for "some step goes the other way"
    assert calls == [(0.95, 7), (0.95, 7), (pytest.approx(0.975), 7), (pytest.approx(0.975), 7)]


def test_a_step_the_other_way_or_a_flat_step():
    back = V.shift_trend({1: A4, 2: A8, 3: A4}, +1)
    assert back.verdict == V.NOT_REPRODUCED and back.sentence.endswith(": at some larger budget it moves the other "
                                                                        "way by more than the noise")
    flat = V.shift_trend({1: A4, 2: A8, 3: A8 + np.where(np.arange(40) % 2 == 0, 0.01, -0.01)}, +1)
    assert flat.verdict == V.INCONCLUSIVE_SCALE and flat.sentence.endswith(": not every step rises by more than its "
                                                                            "noise")


def test_one_budget_has_no_trend_and_an_empty_one_has_no_mean():
    import warnings

    one = V.shift_trend({4: A4}, -1, what="E(x*) − E(x)")
    assert (one.steps, one.budgets, one.means, one.expected_sign, one.verdict) == \
        ((), (4,), (pytest.approx(0.195),), -1, V.INCONCLUSIVE_SCALE)
    assert one.sentence == "mean E(x*) − E(x) +0.195 at a single budget: no trend to read"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no mean of an empty slice is taken
        empty = V.shift_trend({4: []}, +1)
    assert math.isnan(empty.means[0]) and empty.sentence == "mean shift +nan at a single budget: no trend to read"
    with pytest.raises(ValueError, match=r"the same items in the same order .*got \[40, 39\] values"):
        V.shift_trend({1: A4, 2: A8[:39]}, +1)


# ----------------------------------------------------------------------------- adaptive stopping (chapter 5)
def test_chains_stopped_at_step_one_moved_and_count():
    """12 chains frozen at step 1 (one step brought them in), 3 at step 0 (they started in the band)."""
    r = V.adaptive_stop_landing([1] * 12 + [0] * 3, 50, level=0.9)
    expected = V.mean_shift(np.ones(12), +1, what="share of the moving chains stopped in the band − ½",
                            share_null=0.5, level=0.9)
    assert (r.n_chains, r.n_start_within, r.landed, r.verdict) == (15, 3, expected, expected.verdict)
    assert r.sentence == ("3 of 15 chains (20%) start within √τ of Ē_y (the rule stops them at step 0) and are left "
                          "out; of the 12 that start outside it, 12 (100%) reach it and stop before step 50, 90% Wilson "
                          f"interval [{expected.ci[0] + 0.5:.0%}, {expected.ci[1] + 0.5:.0%}] against one half: "
                          + ("most reach the band" if expected.verdict == V.REPRODUCED else "?"))
    assert expected.verdict == V.REPRODUCED and f"{expected.ci[0] + 0.5:.0%}" != f"{expected.ci[1] + 0.5:.0%}"


def test_chains_that_never_stop_did_not_land():
    r = V.adaptive_stop_landing([50] * 14 + [3], 50)
    assert r.verdict == V.NOT_REPRODUCED and r.sentence.endswith(": fewer than half reach the band")
    half = V.adaptive_stop_landing([50] * 6 + [3] * 6, 50)
    assert half.verdict == V.INCONCLUSIVE_SCALE and half.sentence.endswith(": whether most reach it is not settled")


def test_too_few_moving_chains_or_one_chain():
    one = V.adaptive_stop_landing([0], 50)
    assert (one.n_chains, one.n_start_within, one.landed, one.verdict) == (1, 1, None, V.INCONCLUSIVE_SCALE)
    assert one.sentence == ("1 of 1 chains (100%) start within √τ of Ē_y (the rule stops them at step 0); only 0 "
                            "chain(s) start outside the band (a verdict needs 10): the check has nothing to test at "
                            "this start")
    none = V.adaptive_stop_landing([], 50)
    assert none.sentence.startswith("0 of 0 chains (0%) start within")


# ----------------------------------------------------------------------------- spreads over robust models
def test_spread_ratios_forwards_its_settings_to_every_ratio_and_bonferroni_to_the_other_way(monkeypatch):
    from energy_lib import verdicts

    learned = verdicts.model_regime(clean=0.6, n_images=400, n_classes=10, ce=1.2)
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1.0, 200)
    others = {"TRADES": rng.normal(0, 0.1, 200), "MART": rng.normal(0, 0.12, 200)}
    calls = []
    original = V.spread_ratio

    def spy(ref, other, **kw):
        calls.append(kw)
        return original(ref, other, **kw)

    monkeypatch.setattr(V, "spread_ratio", spy)
    r = V.spread_ratios(reference, others, regimes=dict.fromkeys(others, learned))
    each = [dict(threshold=V.SPREAD_RATIO, labels=("standard", name), paired=True, level=0.95, random_state=0,
                 regime=learned) for name in others]
    strict = [dict(threshold=V.SPREAD_RATIO, paired=True, level=pytest.approx(0.975), random_state=0)] * 2
    assert calls == each + strict
    assert r.verdict == V.REPRODUCED and r.sentence.startswith("std ΔE(x) of standard over each robust model's: TRADES: ")
    assert r.sentence.endswith(f"; every robust model is at least {V.SPREAD_RATIO:g}x tighter by more than the noise")
    calls.clear()
    V.spread_ratios(reference, others, regimes=dict.fromkeys(others, learned), threshold=3.0, reference_label="ResNet",
                    paired=False, level=0.9, random_state=4)
    assert calls[0] == dict(threshold=3.0, labels=("ResNet", "TRADES"), paired=False, level=0.9, random_state=4,
                            regime=learned)
    assert calls[2] == dict(threshold=3.0, paired=False, level=pytest.approx(0.95), random_state=4)


def test_no_robust_model_is_inconclusive_with_the_threshold_kept():
    r = V.spread_ratios(np.ones(5), {}, regimes={}, threshold=4.0)
    assert (r.ratios, r.threshold, r.verdict, r.sentence) == ({}, 4.0, V.INCONCLUSIVE_SCALE,
                                                             "no robust model to compare with the standard one")


# ----------------------------------------------------------------------------- small readers of a comparison
def planted_comparison(ci, p_value):
    import dataclasses

    base = V.compare_accuracy(0.45, 0.42, 1000, labels=("SAT + DER", "SAT"))
    return dataclasses.replace(base, ci=ci, p_value=p_value)


@pytest.mark.parametrize("ci, p, verdict", [
    ((0.02, 0.05), 0.001, V.REPRODUCED),            # significant, above the threshold
    ((0.02, 0.05), 1 - V.LEVEL, V.INCONCLUSIVE_SCALE),   # p = 1 − level is not below it
    ((0.02, 0.05), 0.5, V.INCONCLUSIVE_SCALE),      # not significant
    ((0.005, 0.05), 0.001, V.INCONCLUSIVE_SCALE),   # significant, but the interval contains the threshold
    ((0.01, 0.05), 0.001, V.INCONCLUSIVE_SCALE),    # its lower end exactly at the threshold: not above it
    ((-0.02, 0.01), 0.5, V.INCONCLUSIVE_SCALE),     # its upper end exactly at the threshold: not below it
    ((-0.02, 0.005), 0.5, V.NOT_REPRODUCED),        # below the threshold: a smaller gain than claimed
])
def test_at_least_a_threshold_needs_significance_and_the_interval_above_it(ci, p, verdict):
    r = V.at_least(planted_comparison(ci, p), 0.01, "SAT + DER ≥ SAT + 1 pt")
    assert r.verdict == verdict
    assert r.sentence.startswith("SAT + DER 45.0% vs SAT 42.0% on 1000 images: +3.0 pt, 95% Newcombe interval "
                                 f"[{V._pt(ci[0])}, {V._pt(ci[1])}]")


def test_the_best_window_on_even_epochs_reaches_the_last_window_and_no_further():
    import warnings

    acc = np.where(np.arange(20) % 2 == 0, 0.3, 0.4)
    acc[18] = 0.6                                              # the best even epoch is the 19th
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no window past the end (a mean of nothing)
        r = V.robust_overfitting(acc, 500)
    # windows of k = 2: (17, 19) and (18, 20) both hold position 18; the first wins: epochs 18-19
    assert r.best_window == (18, 19) and r.selected_on == "even epochs (scored on odd epochs)"
    early = np.where(np.arange(20) % 2 == 0, 0.3, 0.4)
    early[4] = 0.6
    assert V.robust_overfitting(early, 500).best_window == (4, 5)


# ----------------------------------------------------------------------------- scores with a spread (KID)
def test_score_comparisons_need_both_spreads_and_read_the_interval_strictly():
    none = V.compare_scores(0.30, 0.0, 0.40, 0.02, labels=("pca", "noise"))
    assert (none.statistic, none.labels, none.verdict) == (pytest.approx(0.1), ("pca", "noise"), V.INCONCLUSIVE_SCALE)
    assert math.isnan(none.halfwidth)
    assert none.sentence == ("KID pca 0.3000 vs noise 0.4000: difference +0.1000, but a score has no spread estimate "
                             "(one subset of samples), so no verdict")
    assert V.compare_scores(0.30, 0.02, 0.40, 0.0).verdict == V.INCONCLUSIVE_SCALE
    # half-width z·√(0.03² + 0.04²) = 1.96 · 0.05: a difference of exactly that is not beyond it
    half = stats.norm.ppf(0.975) * 0.05
    edge = V.compare_scores(0.0, 0.03, half, 0.04, what="FID")
    assert edge.halfwidth == pytest.approx(half, rel=1e-12) and edge.statistic == pytest.approx(half, rel=1e-12)
    assert edge.verdict == V.INCONCLUSIVE_SCALE and edge.sentence.startswith("FID A 0.0000 ± 0.0300 vs B ")
    below = V.compare_scores(half, 0.03, 0.0, 0.04)
    assert below.verdict == V.INCONCLUSIVE_SCALE
    clear = V.compare_scores(0.0, 0.03, 0.2, 0.04, labels=("pca", "noise"))
    assert (clear.statistic, clear.labels, clear.verdict) == (0.2, ("pca", "noise"), V.REPRODUCED)
    assert clear.sentence.endswith("; pca is lower by more than the noise")


# ----------------------------------------------------------------------------- notes, identities, inputs
def test_scale_note_is_comparable_only_for_the_papers_model_on_all_images():
    assert V.scale_note("resnet18", None) == "this run uses the paper's model and data, so the values are comparable"
    assert V.scale_note("resnet18", 5000) == ("a resnet18 on 5,000 images lives on a different energy scale, so only "
                                              "the direction and the shape are comparable")
    assert V.scale_note("small_cnn", None) == ("a small_cnn on all images lives on a different energy scale, so only "
                                               "the direction and the shape are comparable")
    assert V.scale_note("wrn", None, paper_model="wrn").startswith("this run uses the paper's model")


def test_late_phase_note_from_50_epochs_on():
    assert V.late_phase_note(50) == "the runs last 50 epochs, long enough for the late phase the paper describes"
    assert V.late_phase_note(49).startswith("with 49 epochs there is no late phase")
    assert V.late_phase_note(50, late_from=51).startswith("with 50 epochs there is no late phase")


def test_late_delta_e_averages_each_image_over_the_last_quarter_of_the_epochs():
    import pandas as pd

    samples = pd.DataFrame({"epoch": np.repeat(np.arange(1, 9), 2), "sample": np.tile([0, 1], 8),
                            "dE": np.arange(16, dtype=float)})
    # epochs > 8 · 0.75 = 6: epochs 7 and 8 (rows 12-15); epoch 6 is not in it
    assert V.late_delta_e(samples).to_dict() == {0: 13.0, 1: 14.0}
    assert V.late_delta_e(samples, last_fraction=0.5).to_dict() == {0: 11.0, 1: 12.0}   # epochs 5-8


def test_identity_check_at_its_tolerance():
    assert V.identity_check(1e-9)[0] == V.NOT_REPRODUCED            # at the tolerance: not below it
    assert V.identity_check(9.9e-10) == (V.REPRODUCED, "9.9e-10, float64 rounding (below 1e-09), so the identity holds")


def test_images_needed_unpaired_at_the_mean_accuracy_and_paired_at_the_discordance():
    from energy_lib.power import paired_n_needed, unpaired_n_needed

    unpaired = V.compare_accuracy(0.5, 0.3, 1000)
    assert unpaired.images_needed(0.02) == unpaired_n_needed(0.02, 0.4)
    assert unpaired.power_text(0.02) == (f"the paper's +2.0 pt needs about {math.ceil(unpaired_n_needed(0.02, 0.4)):,} "
                                         "images per method (unpaired); this build has 1,000")
    a = np.zeros(1000, bool)
    b = np.zeros(1000, bool)
    a[:100] = True                                             # 100 of 1,000 images discordant
    paired = V.compare_accuracy(0.1, 0.0, 1000, correct_a=a, correct_b=b)
    assert paired.images_needed(0.02) == paired_n_needed(0.02, 0.1)
    assert paired.power_text(0.02).startswith("the paper's +2.0 pt needs about ")
    assert "paired images at this discordance (10%)" in paired.power_text(0.02)
    agree = V.compare_accuracy(0.0, 0.0, 1000, correct_a=b, correct_b=b)   # no discordant image at all
    assert agree.images_needed(0.02) == math.inf
    assert agree.power_text(0.02) == ("the paper's +2.0 pt needs more images than exist paired images at this "
                                      "discordance (0%); this build has 1,000")


def test_reproduction_refuses_what_is_not_a_presence_verdict():
    with pytest.raises(ValueError) as err:
        V.reproduction(V.REPRODUCED)
    assert str(err.value) == f"verdict 'reproduced' / expected 'present': use one of {V.PRESENCE}"
    with pytest.raises(ValueError):
        V.reproduction(V.PRESENT, expected=V.INCONCLUSIVE)


def test_a_result_as_a_dict_holds_every_field_with_tuples_as_lists_and_a_summary_row():
    e = V.energy_divergence_at_onset(POINTS, co_at(2.5), 100)
    d = e.to_dict()
    assert list(d) == ["verdict", "before", "after", "statistic", "ci", "sentence"]
    assert d["ci"] == list(e.ci) and isinstance(d["ci"], list) and d["verdict"] == V.REPRODUCED
    row = e.summary("ΔE diverges at CO", "2.3", "sharply", kind="sanity check")
    assert row == {"claim": "ΔE diverges at CO", "section": "2.3", "paper": "sharply", "this build": e.statistic_text,
                   "verdict": V.REPRODUCED, "kind": "sanity check"}
    with pytest.raises(ValueError, match="a summary row needs one of"):
        e.summary("x", "2.3", "y", verdict=V.PRESENT)


# ----------------------------------------------------------------------------- mean shifts (PAPER.md 2.1, 5.3)
def mean_interval(v, level=0.95, seed=0):
    """A mean shift: the mean over items."""
    ci = protocol_bootstrap((np.asarray(v, float),), np.mean, level=level, seed=seed).confidence_interval
    return float(ci.low), float(ci.high)


DOWN = np.tile([-0.2, -0.4, -0.3, 0.1], 10)                      # mean -0.2, spread enough for a bootstrap


def test_a_mean_shift_is_the_mean_with_its_percentile_bootstrap_and_t_test():
    r = V.mean_shift(DOWN, -1, what="E(x*) − E(x)")
    assert (r.statistic, r.n, r.expected_sign, r.what, r.verdict) == (pytest.approx(-0.2, abs=1e-15), 40, -1,
                                                                    "E(x*) − E(x)", V.REPRODUCED)
    assert r.ci == pytest.approx(mean_interval(DOWN), abs=1e-15) and r.ci != pytest.approx(mean_interval(DOWN, seed=1))
    assert r.p_value == pytest.approx(stats.ttest_1samp(DOWN, 0.0).pvalue, rel=1e-12)
    assert r.sentence == (f"mean E(x*) − E(x) -0.2 over 40 values, 95% bootstrap interval [{r.ci[0]:+.3g}, "
                          f"{r.ci[1]:+.3g}] (t-test p = {r.p_value:.2g}): below 0 by more than the noise, as the paper "
                          "expects")
    assert r.statistic_text == f"mean E(x*) − E(x) -0.2 [{r.ci[0]:+.3g}, {r.ci[1]:+.3g}] (n = 40)"
    wide = V.mean_shift(DOWN, -1, level=0.5, random_state=3)           # the caller's level and seed
    assert wide.ci == pytest.approx(mean_interval(DOWN, level=0.5, seed=3), abs=1e-15)
    assert ", 50% bootstrap interval " in wide.sentence


def test_the_side_of_zero_names_the_papers_sign_in_every_verdict():
    up = V.mean_shift(-DOWN, +1)
    assert up.verdict == V.REPRODUCED and up.sentence.endswith(": above 0 by more than the noise, as the paper expects")
    assert up.sentence.startswith("mean shift +0.2 over 40 values")                    # the default name
    wrong_down = V.mean_shift(-DOWN, -1)
    assert wrong_down.verdict == V.NOT_REPRODUCED
    assert wrong_down.sentence.endswith(": on the other side of 0 than the paper expects (below), by more than the noise")
    wrong_up = V.mean_shift(DOWN, +1)
    assert wrong_up.verdict == V.NOT_REPRODUCED
    assert wrong_up.sentence.endswith(": on the other side of 0 than the paper expects (above), by more than the noise")
    unsure = V.mean_shift(np.tile([-1.0, 1.0, -0.5, 0.5], 10), -1)
    assert unsure.verdict == V.INCONCLUSIVE_SCALE
    assert unsure.sentence.endswith(": 0 lies within the interval, so the sign is not settled")


def test_values_without_spread_have_the_value_as_interval_and_a_p_value_of_0_or_1():
    for value, p, verdict in [(0.3, 0.0, V.REPRODUCED), (1.0, 0.0, V.REPRODUCED), (0.0, 1.0, V.INCONCLUSIVE_SCALE)]:
        r = V.mean_shift(np.full(8, value), +1)
        assert (r.statistic, r.ci, r.p_value, r.verdict) == (value, (value, value), p, verdict)
    halves = V.mean_shift(np.tile([0.0, 1.0], 10), +1)      # a spread of exactly 1 is still a spread: bootstrapped
    assert halves.ci == pytest.approx(mean_interval(np.tile([0.0, 1.0], 10)), abs=1e-15) and halves.ci[0] < halves.ci[1]


def test_missing_values_are_dropped_and_indicators_may_be_booleans():
    with_gaps = [-0.2, None, -0.4, float("nan"), -0.3, 0.1] + list(DOWN[4:])
    assert V.mean_shift(with_gaps, -1) == V.mean_shift(DOWN, -1)
    hits = np.tile([True, True, False, True], 5)
    assert V.mean_shift(hits, +1) == V.mean_shift(hits.astype(float), +1)
    assert V.mean_shift(hits, +1, share_null=0.5) == V.mean_shift(hits.astype(float), +1, share_null=0.5)


def test_fewer_than_two_values_have_no_mean_interval_or_p_value():
    for values in ([], [0.4], [0.4, float("nan")]):
        r = V.mean_shift(values, +1, what="ΔE")
        assert math.isnan(r.statistic) and all(map(math.isnan, r.ci)) and math.isnan(r.p_value)
        n = 0 if not values else 1
        assert (r.expected_sign, r.n, r.what, r.verdict) == (+1, n, "ΔE", V.INCONCLUSIVE_SCALE)
        assert r.sentence == f"{n} value(s) of ΔE: too few for a verdict"
        assert r.statistic_text == f"too few values (n = {n})"


def wilson_by_hand(k, n, level):
    z = stats.norm.ppf(1 - (1 - level) / 2)
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_a_share_against_its_null_reads_the_wilson_interval_at_the_callers_level():
    hits = np.r_[np.ones(14), np.zeros(6)]                   # 14 of 20 against a null share of 0.3
    r = V.mean_shift(hits, +1, share_null=0.3, level=0.9)
    low, high = wilson_by_hand(14, 20, 0.9)
    assert r.statistic == pytest.approx(0.4, abs=1e-15) and r.ci == pytest.approx((low - 0.3, high - 0.3), abs=1e-12)
    assert r.p_value == pytest.approx(stats.binomtest(14, 20, 0.3).pvalue, rel=1e-12)
    assert r.p_value != pytest.approx(stats.binomtest(14, 20, 0.5).pvalue, rel=1e-3)
    assert r.sentence == (f"mean shift +0.4 over 20 values, 90% Wilson interval [{r.ci[0]:+.3g}, {r.ci[1]:+.3g}] "
                          f"(binomial p = {r.p_value:.2g}): above 0 by more than the noise, as the paper expects")


# ----------------------------------------------------------------------------- spread ratios, exactly
def log_ratio_interval(a, b, paired=True, level=0.95, seed=0):
    """A spread ratio: log(std(a) / std(b)) (sample standard deviations), back on the ratio scale."""
    log_ratio = lambda x, y, axis=-1: np.log(np.std(x, ddof=1, axis=axis) / np.std(y, ddof=1, axis=axis))  # noqa: E731
    ci = protocol_bootstrap((a, b), log_ratio, paired=paired, level=level, seed=seed).confidence_interval
    return float(np.exp(ci.low)), float(np.exp(ci.high))


WIDE = np.tile([-3.0, 1.0, 4.0, -2.0, 0.0], 8)                  # 40 values
TIGHT = np.tile([0.1, -0.2, 0.3, 0.0, -0.1, 0.2, -0.3, 0.05], 5)
T = V._times          # pinned on its own below


def test_a_spread_ratio_is_of_sample_deviations_with_its_percentile_bootstrap():
    r = V.spread_ratio(WIDE, TIGHT)
    sd_a, sd_b = np.std(WIDE, ddof=1), np.std(TIGHT, ddof=1)
    assert (r.statistic, r.std_reference, r.std_other) == (pytest.approx(sd_a / sd_b, rel=1e-14), sd_a, sd_b)
    assert r.ci == pytest.approx(log_ratio_interval(WIDE, TIGHT), rel=1e-12) and T(r.ci[0]) != T(r.ci[1])
    assert r.ci != pytest.approx(log_ratio_interval(WIDE, TIGHT, seed=1), rel=1e-6)
    assert (r.threshold, r.labels, r.n, r.paired, r.verdict) == (5.0, ("standard", "robust"), 40, True, V.REPRODUCED)
    assert r.sentence == (f"std ΔE(x) is {sd_a:.3g} for standard and {sd_b:.3g} for robust on 40 shared images: robust "
                          f"is {T(r.statistic)}x tighter, 95% bootstrap interval {T(r.ci[0])}-{T(r.ci[1])}; at least "
                          "5x tighter by more than the noise, as the paper expects")
    apart = V.spread_ratio(WIDE, TIGHT[:30], paired=False, level=0.9, random_state=2, labels=("std", "AT"))
    assert apart.ci == pytest.approx(log_ratio_interval(WIDE, TIGHT[:30], paired=False, level=0.9, seed=2), rel=1e-12)
    assert (apart.n, apart.paired, apart.labels) == (30, False, ("std", "AT"))
    assert " for AT on 30 images: AT is " in apart.sentence and ", 90% bootstrap interval " in apart.sentence


def test_the_ratios_text_has_two_decimals_below_ten_and_none_from_ten():
    assert [V._times(x) for x in (4.734, 9.994, 10.0, 35.1, 12663.6)] == ["4.73", "9.99", "10", "35", "12,664"]


def test_a_ratio_equal_to_the_threshold_in_every_resample_is_not_beyond_it():
    """`other` is `reference` / 4 (exact in floating point), so every resample's ratio is 4: the
    interval touches the threshold from above or below and is never beyond it."""
    tight = WIDE * 0.25
    r = V.spread_ratio(WIDE, tight, threshold=4.0)
    assert r.statistic == 4.0 and r.ci[0] == 4.0 and r.verdict == V.INCONCLUSIVE_SCALE
    at_top = V.spread_ratio(WIDE, tight, threshold=r.ci[1])
    assert at_top.ci[1] == at_top.threshold and at_top.verdict == V.INCONCLUSIVE_SCALE
    assert V.spread_ratio(WIDE, tight, threshold=0.5).verdict == V.REPRODUCED       # any positive threshold is a claim


def test_three_values_are_enough_for_a_ratio_and_a_flat_reference_has_none():
    three = V.spread_ratio([1.0, 5.0, 9.0], [1.0, 1.5, 2.0], threshold=2.0)
    assert three.statistic == pytest.approx(8.0) and three.n == 3 and three.std_other == pytest.approx(0.5)
    flat = V.spread_ratio(np.zeros(20), TIGHT[:20])
    assert math.isnan(flat.statistic) and flat.verdict == V.INCONCLUSIVE_SCALE
    assert flat.sentence == f"std ΔE(x) is 0 for standard and {np.std(TIGHT[:20], ddof=1):.3g} for robust: a spread of 0 has no ratio"


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_values_keep_every_field_and_warn_nothing(n):
    import warnings

    a, b = [1.0, 4.0][:n], [0.5, 0.25][:n]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no 'degrees of freedom <= 0' from a deviation of one value
        r = V.spread_ratio(a, b, paired=False, labels=("S", "R"), threshold=3.0)
    sd = (lambda v: np.std(v, ddof=1) if len(v) > 1 else float("nan"))
    assert math.isnan(r.statistic) and all(map(math.isnan, r.ci)) and r.sentence == f"{n} value(s): too few to compare spreads"
    assert (r.threshold, r.labels, r.n, r.paired, r.verdict) == (3.0, ("S", "R"), n, False, V.INCONCLUSIVE_SCALE)
    np.testing.assert_equal((r.std_reference, r.std_other), (sd(a), sd(b)))


def test_missing_values_are_dropped_from_unpaired_spreads_as_from_paired_ones():
    gaps = [None, float("nan")] + list(TIGHT)
    assert V.spread_ratio(WIDE, gaps, paired=False) == V.spread_ratio(WIDE, TIGHT, paired=False)
    assert V.spread_ratio([None] + list(WIDE), [0.0] + list(TIGHT)) == V.spread_ratio(WIDE, TIGHT)


def never_learned():
    return V.model_regime(0.12, 100, 10, ce=0.05)


def test_a_never_learned_model_shows_its_ratio_with_its_interval_unread():
    r = V.spread_ratio(WIDE, TIGHT, regime=never_learned())
    assert r.verdict == V.INCONCLUSIVE_SCALE and r.untestable == never_learned().never_learned_text
    assert T(r.ci[0]) != T(r.ci[1])
    assert r.sentence == (f"{r.untestable}; a network that did not learn is tight by construction, so robust's std ΔE(x) "
                          f"({r.std_other:.3g} against {r.std_reference:.3g} for standard: {T(r.statistic)}x tighter, "
                          f"interval {T(r.ci[0])}-{T(r.ci[1])}) says nothing about a robust classifier's landscape: "
                          "inconclusive at this scale")


def test_spread_ratios_list_each_model_with_its_interval_and_why_one_is_left_out():
    learned = V.model_regime(0.8, 100, 10, ce=1.5)
    rs = V.spread_ratios(WIDE, {"AT": TIGHT, "flat": TIGHT * 2}, regimes={"AT": learned, "flat": never_learned()})
    at, flat = rs.ratios["AT"], rs.ratios["flat"]
    why = never_learned().never_learned_text.split(": ", 1)[1]
    assert rs.sentence == (f"std ΔE(x) of standard over each robust model's: AT: {T(at.statistic)}x [{T(at.ci[0])}, "
                           f"{T(at.ci[1])}]; flat: the network never learned, its {T(flat.statistic)}x not read; every "
                           f"robust model that learned is at least 5x tighter by more than the noise; left out of the "
                           f"claim, because the network never learned (a network that did not learn is tight by "
                           f"construction): flat ({why})")


# ----------------------------------------------------------------------------- the regime of one evaluated model
def test_a_models_regime_keeps_what_it_is_given():
    r = V.model_regime(0.62, 500, 10, ce=1.0, robust=0.31, energy_mean=-3.0, steps=1200, level=0.9)
    assert (r.learned, r.n_test, r.n_train_track, r.chance, r.steps) == (True, 500, 0, 0.1, 1200)
    assert (r.clean_best, r.clean_final, r.robust_test, r.robust_train, r.gap) == (0.62, 0.62, 0.31, None, None)
    assert r.energy_offset == pytest.approx(-3.0 + math.log(10), abs=1e-15)
    assert r.information == pytest.approx(math.log(10) - 1.0, abs=1e-15)
    assert r.clean_best_ci == pytest.approx(wilson_by_hand(310, 500, 0.9), abs=1e-12) == r.clean_final_ci
    assert r.sentence.startswith("learned: 1,200 optimizer steps; clean test accuracy best 62.0% [58.4%, 65.5%, ")
    assert "at the end mean E(x) -0.70 from −ln K, clean CE 1.30 nats below ln K" in r.sentence


def test_a_models_regime_without_its_optional_figures():
    r = V.model_regime(0.62, 500, 10)
    assert r.learned and r.steps is None and all(map(math.isnan, (r.robust_test, r.energy_offset, r.information)))
    assert r.clean_best_ci == pytest.approx(wilson_by_hand(310, 500, 0.95), abs=1e-12)


def test_a_models_regime_from_one_image_and_at_both_ends_of_accuracy():
    assert V.model_regime(1.0, 1, 10).n_test == 1
    assert not V.model_regime(0.0, 50, 10).learned and V.model_regime(1.0, 50, 10, ce=2.0).learned
    for n, clean in [(0, 0.5), (10, 1.01), (10, -0.01)]:
        with pytest.raises(ValueError, match=rf"^model_regime needs n_images >= 1 and a clean accuracy in \[0, 1\]; "
                                             rf"got {n}, {clean}$"):
            V.model_regime(clean, n, 10)


def test_resamples_without_spread_leave_no_interval_and_no_verdict():
    """Three distinct values in 8 images: some of the 2,000 resamples repeat one value and have no
    spread (a log ratio of 0/0), so there is no interval: inconclusive, said, and nothing warned."""
    import warnings

    a, b = np.tile([1.0, 5.0, 9.0], 3)[:8], np.tile([1.0, 1.5, 2.0], 3)[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = V.spread_ratio(a, b, threshold=2.0)
    assert r.statistic == pytest.approx(8.0) and all(map(math.isnan, r.ci)) and math.isnan(r.mde)
    assert r.verdict == V.INCONCLUSIVE_SCALE
    assert r.sentence == (f"std ΔE(x) is {np.std(a, ddof=1):.3g} for standard and {np.std(b, ddof=1):.3g} for robust on "
                          "8 shared images: robust is 8.00x tighter; some bootstrap resamples have no spread (too few "
                          "distinct values), so there is no interval to read: inconclusive at this scale")
    assert r.statistic_text == ("std ΔE(x) standard / robust = 8.00× (n = 8; no bootstrap interval: resamples without "
                                "spread)")
    rs = V.spread_ratios(a, {"AT": b}, regimes={"AT": V.model_regime(0.8, 100, 10)}, threshold=2.0)
    assert rs.verdict == V.INCONCLUSIVE_SCALE and "AT: 8.00x, no interval (resamples without spread)" in rs.sentence


def test_a_paired_image_missing_for_one_model_is_left_out_for_both():
    b = TIGHT.copy()
    b[[3, 17]] = np.nan
    keep = np.isfinite(b)
    assert V.spread_ratio(WIDE, b) == V.spread_ratio(WIDE[keep], TIGHT[keep])


# ----------------------------------------------------------------------------- robust overfitting, exactly
# 20 epochs, windows of k = 4. Chosen on the even positions: the windows starting at positions 5
# and 6 both hold even positions 6 and 8 (0.52, 0.51: a planted tie, the first wins), so the best
# window is positions 5-8, scored on its odd positions 5 and 7 (0.47, 0.49); the last window is
# positions 16-19, scored on 17 and 19 (0.39, 0.36).
RO_ACC = np.array([0.10, 0.20, 0.30, 0.42, 0.50, 0.47, 0.52, 0.49, 0.51, 0.46,
                   0.45, 0.44, 0.43, 0.41, 0.40, 0.42, 0.38, 0.39, 0.37, 0.36])
RO_EPOCHS = np.arange(10, 201, 10)


def test_ro_on_the_epoch_split_by_hand():
    r = V.robust_overfitting(RO_ACC, 500, epochs=RO_EPOCHS, k=4)
    a_best, a_last = (0.47 + 0.49) / 2, (0.39 + 0.36) / 2
    se_images = math.sqrt((a_best * (1 - a_best) + a_last * (1 - a_last)) / 500)
    var_epoch = np.var(np.diff(RO_ACC[20 // 3:]), ddof=1) / 2     # over the last two thirds, per epoch
    se = math.sqrt(se_images ** 2 + var_epoch / 2 + var_epoch / 2)  # two scored epochs in each window
    z = stats.norm.ppf(0.975)
    assert (r.acc_best, r.acc_last) == (pytest.approx(a_best, abs=1e-15), pytest.approx(a_last, abs=1e-15))
    assert r.statistic == pytest.approx(a_last - a_best, abs=1e-15) and r.se == pytest.approx(se, rel=1e-12)
    assert r.ci == pytest.approx((r.statistic - z * se, r.statistic + z * se), rel=1e-12)
    assert (r.best_window, r.last_window, r.n_images, r.margin) == ((60, 90), (170, 200), 500, 0.01)
    assert (r.selected_on, r.verdict, r.untestable) == ("even epochs (scored on odd epochs)", V.PRESENT, "")
    assert r.mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se, rel=1e-12)
    assert r.sentence == ("the last 4 epochs (170-200) average 37.5% robust test accuracy against 48.0% in the best "
                          "window (epochs 60-90, chosen on even epochs (scored on odd epochs)): a change of -10.5 pt, "
                          f"95% interval [{V._pt(r.ci[0])}, {V._pt(r.ci[1])}] on 500 test images (the smallest decline "
                          f"it would detect with 80% power: {V.mde_text(r.mde)}); a decline larger than its noise: "
                          "robust overfitting is present")
    assert r.statistic_text == f"-10.5 pt ± {100 * z * se:.1f} (last vs best window, n = 500; detectable ≥ {V.mde_text(r.mde)})"
    default = V.robust_overfitting(RO_ACC, 500)                    # k defaults to 10 % of 20 epochs: 2
    assert default.last_window == (19, 20) and default.best_window != r.best_window


def test_ro_on_a_validation_curve_scores_every_epoch_of_both_windows():
    val = np.r_[np.linspace(0.2, 0.4, 10), np.linspace(0.6, 0.3, 10)]    # best validation window: positions 10-13
    r = V.robust_overfitting(RO_ACC, 500, val_acc=val, k=4, level=0.9)
    a_best, a_last = RO_ACC[10:14].mean(), RO_ACC[16:].mean()
    var_epoch = np.var(np.diff(RO_ACC[6:]), ddof=1) / 2
    se = math.sqrt((a_best * (1 - a_best) + a_last * (1 - a_last)) / 500 + var_epoch / 4 + var_epoch / 4)
    assert (r.best_window, r.selected_on) == ((11, 14), "validation accuracy")
    assert r.statistic == pytest.approx(a_last - a_best, abs=1e-15) and r.se == pytest.approx(se, rel=1e-12)
    assert r.ci == pytest.approx((r.statistic - stats.norm.ppf(0.95) * se, r.statistic + stats.norm.ppf(0.95) * se),
                                 rel=1e-12)
    assert ", 90% interval [" in r.sentence


def test_ro_with_per_image_outcomes_bootstraps_each_images_window_difference():
    correct = np.random.default_rng(7).random((20, 60)) < np.linspace(0.3, 0.6, 20)[:, None]
    r = V.robust_overfitting(RO_ACC, 60, k=4, test_correct=correct)
    per_image = correct[[17, 19]].mean(0) - correct[[5, 7]].mean(0)
    boot = protocol_bootstrap((per_image,), np.mean)
    assert r.se == pytest.approx(boot.standard_error, rel=1e-12)
    assert V.robust_overfitting(RO_ACC, 60, k=4, test_correct=correct, random_state=5).se == pytest.approx(
        protocol_bootstrap((per_image,), np.mean, seed=5).standard_error, rel=1e-12)
    assert V.robust_overfitting(RO_ACC, 60, k=4, test_correct=correct.astype(np.float32)) == r
    with pytest.raises(ValueError, match=r"^test_correct has 19 rows; it needs one per epoch \(20\)$"):
        V.robust_overfitting(RO_ACC, 60, k=4, test_correct=correct[:19])


def test_ro_float32_curves_are_averaged_in_float64():
    acc32 = RO_ACC.astype(np.float32)
    assert V.robust_overfitting(acc32, 500, k=4) == V.robust_overfitting(acc32.astype(np.float64), 500, k=4)


def test_the_epoch_scatter_needs_three_points_in_the_last_two_thirds():
    """k = 1 on 3 epochs: the last two thirds hold 2 points, one difference: no variance, 0 scatter;
    on 5 epochs they hold 4 (3 differences, a sample variance)."""
    three = V.robust_overfitting([0.3, 0.5, 0.4], 100, k=1, val_acc=[0.9, 0.1, 0.2])
    assert three.se == pytest.approx(math.sqrt((0.3 * 0.7 + 0.4 * 0.6) / 100), rel=1e-12)
    acc = np.array([0.3, 0.5, 0.45, 0.6, 0.4])
    five = V.robust_overfitting(acc, 100, k=1, val_acc=[0.1, 0.2, 0.9, 0.3, 0.2])
    var_epoch = np.var(np.diff(acc[1:]), ddof=1) / 2
    assert five.se == pytest.approx(math.sqrt((0.45 * 0.55 + 0.4 * 0.6) / 100 + 2 * var_epoch), rel=1e-12)
    four = V.robust_overfitting([0.3, 0.5, 0.4, 0.45], 100, k=2)
    assert math.isfinite(four.statistic)                          # exactly 2k epochs hold two windows


def test_ro_needs_k_and_images_of_at_least_one_and_2k_epochs():
    assert V.robust_overfitting([0.3, 0.5], 1, k=1, val_acc=[0.5, 0.2]).n_images == 1
    with pytest.raises(ValueError, match=r"^robust_overfitting without val_acc chooses each window on its even epochs "
                                         r"and scores it on its odd ones, so a window needs k >= 2 epochs; got k=1 "
                                         r"\(pass k >= 2, or val_acc\)$"):
        V.robust_overfitting(RO_ACC, 100, k=1)
    for k, n in [(0, 100), (2, 0)]:
        with pytest.raises(ValueError, match=rf"^robust_overfitting needs k >= 1 and n_images >= 1; got k={k}, "
                                             rf"n_images={n}$"):
            V.robust_overfitting(RO_ACC, n, k=k)
    short = V.robust_overfitting(RO_ACC[:7], 300, k=4, margin=0.02)
    assert all(map(math.isnan, (short.statistic, short.se, short.acc_best, short.acc_last, *short.ci)))
    assert (short.best_window, short.last_window, short.selected_on) == ((0, 0), (0, 0), "")
    assert (short.n_images, short.margin, short.verdict) == (300, 0.02, V.INCONCLUSIVE)
    assert short.sentence == "7 epochs are too few to compare two windows of 4 epochs: inconclusive"


def flat_ro(n_images=100_000, best_at=14, n_ep=20):
    """A flat test curve (0.5 everywhere) with the validation peak's window (k = 2) at `best_at`."""
    val = np.full(n_ep, 0.3)
    val[best_at:best_at + 2] = 0.6
    return np.full(n_ep, 0.5), val


def test_no_decline_is_absent_unless_the_best_window_ends_after_80_percent():
    acc, val = flat_ro(best_at=14)                        # the best window ends at epoch 16 of 20: exactly 80 %
    r = V.robust_overfitting(acc, 100_000, val_acc=val, k=2)
    assert (r.statistic, r.verdict, r.untestable) == (0.0, V.ABSENT, "")
    assert r.sentence.endswith("the interval excludes a decline of 1 pt or more: robust overfitting is absent")
    assert V.robust_overfitting(acc, 100_000, val_acc=val, k=2, margin=0.02).sentence.endswith(
        "a decline of 2 pt or more: robust overfitting is absent")
    acc, val = flat_ro(best_at=15)                        # ends at epoch 17: 85 %
    late = V.robust_overfitting(acc, 100_000, val_acc=val, k=2)
    assert late.verdict == V.INCONCLUSIVE
    assert late.untestable == ("the best window ends at 85% of training (epochs 16-17): too little training follows it "
                               "to rule a decline out")
    assert late.sentence.endswith(f"robust overfitting cannot be read from this run, because {late.untestable}: "
                                  "inconclusive at this scale")
    assert late.statistic_text == "not testable here: the best window ends at 85% of training (epochs 16-17) (n = 100000)"


def test_absent_needs_the_interval_strictly_above_minus_the_margin():
    acc, val = flat_ro(n_images=400)
    first = V.robust_overfitting(acc, 400, val_acc=val, k=2)
    at_edge = V.robust_overfitting(acc, 400, val_acc=val, k=2, margin=-first.ci[0])
    assert at_edge.ci[0] == -at_edge.margin and at_edge.verdict == V.INCONCLUSIVE
    assert at_edge.sentence.endswith(f"the interval contains both 0 and a decline of {100 * at_edge.margin:.0f} pt: "
                                     "inconclusive")


def test_a_best_window_overlapping_the_last_is_not_a_measurement():
    acc, val = flat_ro(best_at=17)
    r = V.robust_overfitting(acc, 1000, val_acc=val, k=2)
    assert r.verdict == V.INCONCLUSIVE and r.best_window == (18, 19) and r.last_window == (19, 20)
    assert r.untestable == ("the best window is the last one: the validation-best window (epochs 18-19) overlaps the "
                            "last 2 epochs (19-20), so nothing follows the best to decline (a learning rate annealed to "
                            "~0 at the end puts the best there) and the change is 0 by construction")


# ----------------------------------------------------------------------------- catastrophic overfitting, exactly
def co(acc, n=1000, **kw):
    return V.catastrophic_overfitting(acc, n, **kw)


def test_co_onset_is_the_first_collapsed_point_against_the_peak_before_it():
    """The peak before epoch 5 is 45 % (at epoch 3, not the first point); 5 % <= 0.3 x 45 % with its
    interval below the peak's, 44 % and 45 % in the two points before (abrupt), and 3.5 % on average
    from there (stays). Against the first point's 10 % instead, the onset would be epoch 6."""
    r = co([0.10, 0.42, 0.45, 0.44, 0.05, 0.03, 0.04, 0.02])
    assert (r.verdict, r.onset, r.peak, r.final, r.n_images) == (V.PRESENT, 5, 0.45, 0.02, 1000)
    assert isinstance(r.onset, int) and r.after == pytest.approx(0.035, abs=1e-15)
    assert (r.clean_final, r.diverged, r.untestable, r.final_correct) == (None, False, "", None)
    assert r.sentence == ("robust test accuracy falls from a peak of 45.0% to 5.0% at epoch 5 and averages 3.5% from "
                          "there to the end (1000 test images: the drop is larger than the binomial noise): "
                          "catastrophic overfitting is present")
    assert r.statistic_text == "collapse at epoch 5: 45.0% → 3.5% (n = 1000)"
    halves = co([0.10, 0.42, 0.45, 0.44, 0.05, 0.03, 0.04, 0.02], epochs=np.arange(1, 9) / 2)
    assert halves.onset == 2.5 and "at epoch 2.5 and" in halves.sentence


def test_co_can_begin_at_the_second_point_and_needs_two():
    assert co([0.5, 0.05, 0.04, 0.03]).onset == 2
    assert co([0.5, 0.05]).onset == 2 and co([0.5, 0.05], n=1).n_images == 1
    for acc, n in [([0.5], 100), ([0.5, 0.05], 0)]:
        with pytest.raises(ValueError, match=rf"^catastrophic_overfitting needs at least 2 epochs and n_images >= 1; "
                                             rf"got {len(acc)}, {n}$"):
            co(acc, n)


def test_co_is_abrupt_only_when_the_two_points_before_were_at_least_half_the_peak():
    gradual = co([0.10, 0.50, 0.20, 0.20, 0.12, 0.10, 0.10, 0.10])     # 20 % < half of 50 % just before
    assert (gradual.verdict, gradual.onset, gradual.after) == (V.INCONCLUSIVE, None, 0.1)
    assert gradual.sentence == ("robust test accuracy peaks at 50.0% and ends at 10.0% on 1000 test images; the accuracy "
                                "ends too close to the collapsed level to rule a collapse out: inconclusive")
    assert gradual.statistic_text == "no collapse: peak 50.0%, final 10.0% (n = 1000)"
    assert co([0.10, 0.50, 0.20, 0.20, 0.12, 0.10, 0.10, 0.10], abrupt=3).onset == 5
    exactly_half = co([0.10, 0.40, 0.20, 0.20, 0.05, 0.04, 0.04])      # 20 % is exactly half of 40 %: still high
    assert exactly_half.onset == 5


def test_co_at_exactly_frac_of_the_peak_has_collapsed_and_stays():
    r = co([0.1, 0.4, 0.38, 0.2, 0.2], frac=0.5)          # 20 % = 0.5 x 40 %, and their mean is exactly 20 %
    assert (r.verdict, r.onset, r.peak, r.after) == (V.PRESENT, 4, 0.4, 0.2)


def test_a_collapse_that_does_not_stay_is_not_co():
    r = co([0.1, 0.45, 0.44, 0.05, 0.30, 0.40, 0.20])      # back up to 24 % on average after the drop
    assert (r.verdict, r.onset, r.after) == (V.ABSENT, None, 0.2)
    assert r.sentence == ("robust test accuracy peaks at 45.0% and ends at 20.0%, significantly above 30% of the peak, "
                          "with no abrupt collapse: catastrophic overfitting is absent")


def test_co_stays_when_the_last_point_is_low_whatever_the_one_before():
    r = co([0.1, 0.45, 0.44] + [0.02] * 10 + [0.40, 0.02])
    assert (r.verdict, r.onset) == (V.PRESENT, 4)


def test_the_peak_is_the_one_before_the_onset_even_when_a_later_point_is_higher():
    r = co([0.1, 0.40, 0.38] + [0.02] * 10 + [0.45] + [0.02] * 3)
    assert (r.verdict, r.onset, r.peak) == (V.PRESENT, 4, 0.40)


def test_a_drop_within_the_binomial_noise_is_not_a_collapse():
    """On 20 images 10 % and 45 % have overlapping 95 % Wilson intervals; at the 50 % level they do not."""
    acc = [0.1, 0.45, 0.45, 0.10, 0.10, 0.10]
    assert co(acc, 20).verdict == V.INCONCLUSIVE and co(acc, 20, level=0.5).onset == 4
    # on 100 images the drop to 5 % is beyond the noise, but the last point (30 %) is not below the peak's interval
    r = co([0.1, 0.45, 0.44] + [0.05] * 8 + [0.30], 100)
    assert (r.verdict, r.onset) == (V.ABSENT, None)


def test_a_run_that_never_became_robust_says_so():
    r = co([0.0, 0.0, 0.0], 100)
    assert r.sentence == ("robust test accuracy peaks at 0.0% and ends at 0.0% on 100 test images; the run never became "
                          "significantly robust: inconclusive")


def test_absent_needs_the_last_interval_strictly_above_frac_of_the_peak():
    acc = [0.1, 0.45, 0.44, 0.40, 0.42]
    low = V.wilson(420, 1000)[0]
    frac = low / 0.45
    for _ in range(8):                       # the fraction whose product with the peak is exactly that bound
        if frac * 0.45 == low:
            break
        frac = np.nextafter(frac, 1.0 if frac * 0.45 < low else 0.0)
    assert frac * 0.45 == low
    assert co(acc, frac=frac).verdict == V.INCONCLUSIVE and co(acc, frac=0.9 * frac).verdict == V.ABSENT


def test_a_run_whose_clean_accuracy_ends_at_chance_has_diverged():
    acc = [0.10, 0.42, 0.45, 0.44, 0.05, 0.03, 0.04, 0.02]
    clean = [0.3, 0.6, 0.7, 0.7, 0.72, 0.7, 0.69, 0.11]           # 11 % of 1000: its interval reaches 10 %
    r = co(acc, clean=clean, chance=0.1)
    assert (r.verdict, r.diverged, r.clean_final) == (V.INCONCLUSIVE, True, 0.11)
    assert r.sentence == ("clean test accuracy ends at 11.0%, not significantly above chance (10%, 1000 test images): the "
                          "run diverged, so its robust accuracy (2.0% at the end, peak 45.0%) says nothing about "
                          "catastrophic overfitting: inconclusive")
    assert r.statistic_text == "diverged: clean 11.0%; robust peak 45.0%, final 2.0% (n = 1000)"
    assert co(acc, clean=clean, chance=0.1, level=0.5).verdict == V.PRESENT     # at 50 %, 11 % is above chance
    at_end_only = clean[:-2] + [0.11, 0.7]                                   # the point before the end does not count
    assert co(acc, clean=at_end_only, chance=0.1).verdict == V.PRESENT
    same = co(acc, clean=clean[:-1] + [0.7], chance=0.1, constant_output=True)
    assert same.diverged and same.sentence.startswith("the network gives every tracked test image the same logits: the "
                                                      "run diverged")
    with pytest.raises(ValueError, match=r"^clean has 7 epochs, acc 8: give both per epoch of the same run$"):
        co(acc, clean=clean[:7], chance=0.1)
    with pytest.raises(ValueError, match=r"^catastrophic_overfitting: give both `clean` and `chance`"):
        co(acc, clean=clean)


def test_a_divergence_before_the_end_in_the_regime_counts_too():
    import dataclasses

    diverged = dataclasses.replace(V.model_regime(0.8, 1000, 10), diverged=True,
                                   sentence="diverged (constant output at epoch 6): 1,200 optimizer steps; ...")
    r = co([0.10, 0.42, 0.45, 0.44, 0.05, 0.03, 0.04, 0.02], regime=diverged)
    assert (r.verdict, r.diverged, r.untestable) == (V.INCONCLUSIVE, True, "")
    assert r.sentence == ("the run diverged (constant output at epoch 6): a network that stopped classifying says nothing "
                          "about catastrophic overfitting (robust accuracy peak 45.0%, final 2.0%): inconclusive")


def test_co_float32_curves_are_read_in_float64():
    acc = np.array([0.10, 0.42, 0.45, 0.44, 0.05, 0.03, 0.04, 0.02], np.float32)
    assert co(acc) == co(acc.astype(np.float64))


# ----------------------------------------------------------------------------- accuracy comparisons, exactly
from energy_lib.power import newcombe_paired, newcombe_unpaired, paired_mde, unpaired_mde  # noqa: E402


def outcomes(both, only_a, only_b, neither):
    """Per-image 0/1 outcomes (integers, as a record unpacks them) of A and B, in that order of images."""
    a = np.repeat([1, 1, 0, 0], [both, only_a, only_b, neither])
    b = np.repeat([1, 0, 1, 0], [both, only_a, only_b, neither])
    return a, b


def test_a_paired_comparison_by_hand():
    a, b = outcomes(100, 30, 10, 60)                      # d = 20 / 200 = +10 pt
    r = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, labels=("SAT", "TRADES"), margin=0.005)
    se = math.sqrt(30 + 10 - 200 * 0.1 ** 2) / 200
    assert (r.statistic, r.acc_a, r.acc_b, r.n_images, r.paired) == (pytest.approx(0.1), 0.65, 0.55, 200, True)
    assert r.se == pytest.approx(se, rel=1e-12) and r.discordance == 0.2
    assert r.se_unpaired == pytest.approx(math.sqrt((0.65 * 0.35 + 0.55 * 0.45) / 200), rel=1e-12)
    assert r.p_value == pytest.approx(stats.binomtest(30, 40).pvalue, rel=1e-12)
    assert r.ci == pytest.approx(newcombe_paired(100, 30, 10, 60, 0.95), abs=1e-15)
    assert r.mde == pytest.approx(paired_mde(200, 0.2), abs=1e-15) and r.verdict == V.REPRODUCED
    assert r.test == "McNemar exact test on the 30 vs 10 discordant images (paired)"
    assert r.sentence == (f"SAT 65.0% vs TRADES 55.0% on 200 test images: +10.0 pt, 95% Newcombe interval "
                          f"[{V._pt(r.ci[0])}, {V._pt(r.ci[1])}] (paired SE {100 * se:.1f} pt, unpaired SE "
                          f"{100 * r.se_unpaired:.1f} pt; verdict from the McNemar exact test on the 30 vs 10 discordant "
                          f"images (paired), p = {r.p_value:.2g}); SAT is significantly more robust than TRADES; one "
                          "trained model each: a direction needs the interval beyond ±0.5 pt")
    narrow = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, level=0.9)
    assert narrow.ci == pytest.approx(newcombe_paired(100, 30, 10, 60, 0.9), abs=1e-15)
    assert V.compare_accuracy(0, 0, 0, correct_a=a.astype(bool), correct_b=b.astype(bool)) == \
        V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b)
    with pytest.raises(ValueError, match=r"^per-image correctness of different shapes \(200,\) / \(199,\): the "
                                         r"comparison needs the same test images$"):
        V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b[:199])


def test_one_sides_outcomes_alone_are_not_a_pairing():
    a, _ = outcomes(100, 30, 10, 60)
    r = V.compare_accuracy(0.65, 0.55, 200, correct_a=a)
    assert not r.paired and r == V.compare_accuracy(0.65, 0.55, 200)


def test_an_unpaired_comparison_by_hand():
    r = V.compare_accuracy(0.55, 0.45, 400, margin=0)
    se = math.sqrt((0.55 * 0.45 + 0.45 * 0.55) / 400)
    assert (r.se, r.se_unpaired) == (pytest.approx(se, rel=1e-12), pytest.approx(se, rel=1e-12))
    assert r.p_value == pytest.approx(2 * stats.norm.sf(0.1 / se), rel=1e-12) and r.discordance is None
    assert r.ci == pytest.approx(newcombe_unpaired(220, 400, 180, 400, 0.95), abs=1e-15)
    assert r.mde == pytest.approx(unpaired_mde(400, 0.5), abs=1e-15)
    assert r.test == "two-proportion z-test (unpaired binomial SE)"
    assert r.sentence == (f"A 55.0% vs B 45.0% on 400 test images: +10.0 pt, 95% Newcombe interval [{V._pt(r.ci[0])}, "
                          f"{V._pt(r.ci[1])}] (SE {100 * se:.1f} pt; verdict from the two-proportion z-test (unpaired "
                          f"binomial SE), p = {r.p_value:.2g}); A is significantly more robust than B")
    assert V.compare_accuracy(0.55, 0.45, 400, level=0.9).ci == pytest.approx(
        newcombe_unpaired(220, 400, 180, 400, 0.9), abs=1e-15)
    why = V.compare_accuracy(0.55, 0.45, 400, why_unpaired="old records")
    assert why.test == "two-proportion z-test (unpaired binomial SE; old records)"


def test_without_noise_p_is_one_for_no_difference_and_zero_for_any():
    same = V.compare_accuracy(1.0, 1.0, 50)
    assert (same.se, same.p_value, same.verdict) == (0.0, 1.0, V.INCONCLUSIVE_SCALE)
    apart = V.compare_accuracy(1.0, 0.0, 50)
    assert (apart.se, apart.p_value, apart.verdict) == (0.0, 0.0, V.REPRODUCED)


def test_significance_is_strictly_below_one_minus_the_level():
    """5 discordant images all for A: McNemar's p is exactly 2 / 2^5 = 0.0625 = 1 − 0.9375."""
    a, b = outcomes(20, 5, 0, 35)
    r = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, level=0.9375, margin=0)
    assert r.p_value == 0.0625 and r.verdict == V.INCONCLUSIVE_SCALE
    assert V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, level=0.9374, margin=0).verdict == V.REPRODUCED


def test_a_direction_needs_the_interval_strictly_beyond_the_margin():
    a, b = outcomes(100, 30, 10, 60)
    ci = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b).ci
    assert V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, margin=ci[0]).verdict == V.INCONCLUSIVE_SCALE
    assert V.compare_accuracy(0, 0, 0, correct_a=b, correct_b=a, margin=ci[0]).verdict == V.INCONCLUSIVE_SCALE
    at_edge = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, margin=0.9 * ci[0])
    assert at_edge.verdict == V.REPRODUCED
    worse = V.compare_accuracy(0, 0, 0, correct_a=b, correct_b=a, margin=0.9 * ci[0])
    assert worse.verdict == V.NOT_REPRODUCED and worse.sentence.endswith(
        f"B is significantly more robust than A; one trained model each: a direction needs the interval beyond "
        f"±{100 * 0.9 * ci[0]:.1f} pt")
    a, b = outcomes(800, 30, 60, 110)                      # -3 pt, interval below 0 but not below -2 pt
    small = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, margin=0.02)
    assert small.p_value < 0.05 and -0.02 < small.ci[1] < 0 and small.verdict == V.INCONCLUSIVE_SCALE
    assert small.sentence.endswith(
        "significant on these test images, but the interval reaches into the ±2.0 pt that training-seed noise can give "
        f"(PAPER.md 5.3); the smallest true difference it would detect is {V.mde_text(small.mde)} (80% power, 5% level)")


def test_what_an_inconclusive_comparison_says_follows_the_test_then_the_interval():
    """Not significant with an interval beside 0 (5 vs 0 discordant: p 0.0625) is within the noise; a
    significant z-test whose Newcombe interval reaches 0 (4 of 20 vs 0 of 20) is too."""
    a, b = outcomes(20, 5, 0, 35)
    beside = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, margin=0)
    assert beside.ci[0] > 0 and beside.p_value > 0.05
    assert "; the difference is within the noise of this many test images; " in beside.sentence
    reaching = V.compare_accuracy(0.2, 0.0, 20, margin=0)
    assert reaching.p_value < 0.05 and reaching.ci[0] < 0 < reaching.ci[1]
    assert "; the difference is within the noise of this many test images; " in reaching.sentence


# ----------------------------------------------------------------------------- records compared (chapter 4)
def eval_record(correct=None, *, acc=None, n=None, metrics=("pgd", "autoattack"), settings=None):
    from energy_lib import bits

    if correct is not None:
        correct = np.asarray(correct, dtype=np.uint8)
        n, acc = correct.size, float(correct.mean())
    rec = {"images": {"dataset": "cifar10", "split": "test", "start": 0, "n": n}, "n_images": n,
           "settings": settings or {"eps": 8 / 255, "pgd_steps": 20, "batch_size": 64},
           "accuracy": {"clean": 0.9, **{m: acc for m in metrics}}}
    if correct is not None:
        rec["correct"] = {m: bits.pack(correct) for m in metrics}
    return rec


def test_records_compare_on_autoattack_when_both_have_it_paired_when_both_hold_outcomes():
    a, b = outcomes(100, 30, 10, 60)
    r = V.compare_records(eval_record(a), eval_record(b), labels=("WEAT", "TRADES"), level=0.9, margin=0)
    assert r == V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, labels=("WEAT", "TRADES"), level=0.9, margin=0)
    old = eval_record(acc=0.55, n=200)
    one = V.compare_records(eval_record(a), old, labels=("WEAT", "TRADES"))
    assert not one.paired and one.test == ("two-proportion z-test (unpaired binomial SE; the record of TRADES holds no "
                                           "per-image outcomes, being older than record version 2)")
    both = V.compare_records(eval_record(acc=0.65, n=200), old, labels=("WEAT", "TRADES"))
    assert both.test.endswith("; the records of WEAT and TRADES hold no per-image outcomes, being older than record "
                              "version 2)")
    assert V.compare_records(eval_record(acc=0.65, n=200), eval_record(acc=0.55, n=200)).acc_a == 0.65


def test_records_on_different_metrics_use_pgd():
    a, b = outcomes(100, 30, 10, 60)
    aa = eval_record(a)
    pgd = eval_record(b, metrics=("pgd",))
    r = V.compare_records(aa, pgd)
    assert r.paired and (r.acc_a, r.acc_b) == (0.65, 0.55)
    aa["accuracy"]["pgd"] = 0.6                   # a PGD accuracy that its per-image outcomes do not give
    with pytest.raises(ValueError, match="per-image pgd outcomes"):
        V.compare_records(aa, pgd)


def test_records_with_other_settings_or_image_counts_are_refused_by_name():
    a, b = outcomes(100, 30, 10, 60)
    chunked = {"eps": 8 / 255, "pgd_steps": 20, "batch_size": 256, "aa_chunk_size": 100}
    assert V.compare_records(eval_record(a), eval_record(b, settings=chunked)).paired
    other = {"eps": 4 / 255, "pgd_steps": 20, "restarts": 2}
    with pytest.raises(ValueError, match=r"^the two records used different attack settings \(eps, restarts\); evaluate "
                                         r"both with the same RobustEvalSettings$"):
        V.compare_records(eval_record(a), eval_record(b, settings=other))
    with pytest.raises(ValueError, match=r"\(restarts\)"):
        V.compare_records(eval_record(b, settings={**other, "eps": 8 / 255}), eval_record(a, settings={
            "eps": 8 / 255, "pgd_steps": 20}))
    no_settings = [eval_record(a), eval_record(b)]
    for rec in no_settings:
        rec.pop("settings")
    assert V.compare_records(*no_settings).paired
    short = eval_record(acc=0.5, n=200)
    short["n_images"] = 150
    with pytest.raises(ValueError, match=r"^the two records hold 200 and 150 images; evaluate both on the same$"):
        V.compare_records(eval_record(acc=0.6, n=200), short)


# ----------------------------------------------------------------------------- the ΔE alarm, more exactly
def test_the_alarm_window_is_five_epochs_by_default():
    """Drop at index 5, the first the rule reads: its level is the median of d[0:5] (-0.09) and it fires
    at index 7 (epoch 8); a window of 6 would start at index 6 and fire at epoch 9."""
    assert V.delta_e_alarm(dropping_at(5), FLAT, FLAT, 500).alarm_epoch == 8
    assert V.delta_e_alarm(dropping_at(5), FLAT, FLAT, 500, window=6).alarm_epoch == 9


def test_the_noise_is_read_from_the_window_before_the_first_judged_epoch_on():
    """40 epochs, warm-up 50 %: the rule judges from index 20 and reads its noise from index 15 on. The
    first 15 epochs jitter by ±1 (most of all steps, if they were read, and the drop would hide in
    them); from index 15 the curve wiggles by ±0.01 and drops at index 25: fired at index 27."""
    d = np.r_[np.where(np.arange(15) % 2 == 0, 1.0, -1.0), wiggle(25)]
    d[25:] = -1.0
    r = V.delta_e_alarm(d, np.full(40, 0.3), np.full(40, 0.3), 500, warmup=0.5)
    assert (r.fired, r.alarm_epoch) == (True, 28)


def test_a_window_of_one_epoch_has_no_steps_and_the_least_noise():
    """window 1, no warm-up: the rule judges d[1] against d[0] with no step behind it (noise: the 1e-12 floor)."""
    r = V.delta_e_alarm([0.0, -0.5, -0.5, -0.5, -0.5], [0.3] * 5, [0.3] * 5, 500, window=1, persist=1, warmup=0.0)
    assert (r.fired, r.alarm_epoch) == (True, 2)          # d[1] < d[0] − 3 · 1e-12


def test_the_noise_is_never_below_1e_minus_12():
    """Flat at -0.5: no noise. A value 2^-45 (3e-14) below the level is within 3 · 1e-12 of it; 2^-30 is not."""
    d = np.full(20, -0.5)
    d[12:] = -0.5 - 2 ** -45
    assert V.delta_e_alarm(d, FLAT, FLAT, 500).fired is False
    d[12:] = -0.5 - 2 ** -30
    assert V.delta_e_alarm(d, FLAT, FLAT, 500).alarm_epoch == 15


def test_the_alarm_reads_the_last_epoch_and_float32_curves_in_float64():
    test = np.r_[np.full(18, 0.40), 0.35, 0.30]
    r = V.delta_e_alarm(wiggle(20), np.r_[np.full(10, 0.2), 0.5, np.full(9, 0.2)], test, 1000)
    assert (r.acc_alarm, r.acc_selection, r.acc_last) == (0.30, 0.40, 0.30)
    assert "; the last epoch has 30.0%. The difference" in r.sentence
    f32 = [np.asarray(v, np.float32) for v in (dropping_at(12), np.r_[np.full(19, 0.2), 0.5], test)]
    assert V.delta_e_alarm(*f32, 1000) == V.delta_e_alarm(*(v.astype(np.float64) for v in f32), 1000)


def tost_outcomes(n=2000, apart=40):
    """Per-epoch, per-image outcomes: every epoch as epoch 0 except the last, whose first `apart` images
    are flipped (half each way): a paired difference of 0 with `apart` discordant images."""
    base = np.random.default_rng(3).random(n) < 0.45
    rows = np.tile(base, (20, 1))
    rows[19, :apart] = ~rows[19, :apart]
    rows[19, :apart // 2] = True
    rows[19, apart // 2:apart] = False
    rows[14, :apart // 2] = False                         # the alarm's epoch: the other half of them
    rows[14, apart // 2:apart] = True
    return rows


def test_as_good_reads_the_90_percent_interval_of_the_paired_difference():
    rows = tost_outcomes()
    test, val = rows.mean(axis=1), np.r_[np.full(19, 0.2), 0.5]
    t90 = V.compare_accuracy(0, 0, 0, correct_a=rows[14], correct_b=rows[19], level=0.9, margin=0)
    t95 = V.compare_accuracy(0, 0, 0, correct_a=rows[14], correct_b=rows[19], level=0.95, margin=0)
    edge = max(-t90.ci[0], t90.ci[1]) * 1.001
    assert max(-t95.ci[0], t95.ci[1]) > edge              # the 95% interval would not be within it
    r = V.delta_e_alarm(dropping_at(12), val, test, 2000, test_correct=rows, margin=edge)
    assert (r.alarm_epoch, r.selection_epoch, r.verdict) == (15, 20, V.ALARM_AS_GOOD) and r.comparison.paired
    assert "(95% interval [" in r.sentence and ", paired) makes the alarm " in r.sentence
    assert V.delta_e_alarm(dropping_at(12), val, test, 2000, test_correct=rows.astype(np.uint8), margin=edge) == r


def test_the_margin_is_written_in_points():
    test = np.r_[np.full(14, 0.35), 0.30, np.full(5, 0.35)]
    r = V.delta_e_alarm(dropping_at(12), np.r_[np.full(19, 0.2), 0.5], test, 100, margin=0.06)
    assert r.verdict == V.ALARM_UNDECIDED and "; equivalence within ±6.0 pt is not shown either" in r.sentence
    close = V.delta_e_alarm(dropping_at(12), np.r_[np.full(19, 0.2), 0.5], np.full(20, 0.35), 100_000, margin=0.06)
    assert close.verdict == V.ALARM_AS_GOOD and " lies within ±6.0 pt (equivalence, TOST at 5 %)" in close.sentence


# ----------------------------------------------------------------------------- ΔE at the CO onset, more exactly
def test_no_onset_leaves_every_figure_undefined():
    r = V.energy_divergence_at_onset(POINTS, co_at(None), 100)
    assert all(math.isnan(x) for x in (r.before, r.after, r.statistic, *r.ci))
    assert r.statistic_text == "no collapse to read"


def test_two_points_before_the_onset_have_one_earlier_change():
    r = V.energy_divergence_at_onset(POINTS, co_at(1.5), 100)        # index 2: |ΔE| moved by 0.01 before it
    assert "against a largest earlier change of 0.010;" in r.sentence


def test_an_onset_jump_equal_to_the_drift_or_to_zero_is_not_a_verdict():
    """No spread (SE 0): the interval is the jump itself. A jump of exactly the earlier change (0.5) is not
    above it, and a jump of exactly 0 is not below 0."""
    flat_sd = [0.0, 0.0, 0.0, 0.0]
    drift = {"progress": [1.0, 2.0, 3.0, 4.0], "train_dE_mean": [-0.5, -1.0, -1.5, -1.5], "train_dE_std": flat_sd}
    r = V.energy_divergence_at_onset(drift, co_at(3.0), 100, within=0.5)
    assert (r.statistic, r.ci, r.verdict) == (0.5, (0.5, 0.5), V.INCONCLUSIVE_SCALE)
    still = {"progress": [1.0, 2.0, 3.0, 4.0], "train_dE_mean": [-0.5, -1.0, -1.0, -0.5], "train_dE_std": flat_sd}
    s = V.energy_divergence_at_onset(still, co_at(3.0), 100, within=0.5)
    assert (s.statistic, s.ci, s.verdict) == (0.0, (0.0, 0.0), V.INCONCLUSIVE_SCALE)


def test_float32_energies_at_the_onset_are_read_in_float64():
    f32 = {k: np.asarray(v, np.float32) for k, v in POINTS.items()}
    f64 = {k: v.astype(np.float64) for k, v in f32.items()}
    assert V.energy_divergence_at_onset(f32, co_at(2.5), 100) == V.energy_divergence_at_onset(f64, co_at(2.5), 100)


# ----------------------------------------------------------------------------- bimodality, by its protocol
def bimodality_by_hand(x):
    """The documented protocol: 1- and 2-component mixtures (5 initialisations, seed 0) on standardised
    values; the 2-component density on 2,001 points over the data's range, its local maxima (above
    the left neighbour, not below the right), the valley between the outer ones over the lower of them."""
    from sklearn.mixture import GaussianMixture

    z = ((x - x.mean()) / x.std()).reshape(-1, 1)
    g1 = GaussianMixture(1, random_state=0).fit(z)
    g2 = GaussianMixture(2, n_init=5, random_state=0).fit(z)
    grid = np.linspace(z.min(), z.max(), 2001).reshape(-1, 1)
    dens = np.exp(g2.score_samples(grid))
    peaks = [i for i in range(1, 2000) if dens[i] > dens[i - 1] and dens[i] >= dens[i + 1]]
    dip = dens[peaks[0]:peaks[-1] + 1].min() / min(dens[peaks[0]], dens[peaks[-1]]) if len(peaks) > 1 else 1.0
    return g1.bic(z) - g2.bic(z), g2, len(peaks), dip


BIMODAL = 5.0 + np.r_[np.random.default_rng(11).normal(-2.0, 0.5, 150), np.random.default_rng(12).normal(2.0, 0.7, 100)]


def test_bimodality_follows_its_protocol_exactly():
    delta, g2, modes, dip = bimodality_by_hand(BIMODAL)
    r = V.bimodality(BIMODAL)
    assert (r.delta_bic, r.modes, r.dip, r.n, r.verdict) == (delta, 2, dip, 250, V.PRESENT) and modes == 2
    assert r.means == tuple(float(m) * BIMODAL.std() + BIMODAL.mean() for m in g2.means_[:, 0])
    assert r.weights == tuple(float(w) for w in g2.weights_)
    sds = np.sqrt(g2.covariances_.ravel())
    assert r.separation == pytest.approx(math.sqrt(2) * abs(g2.means_[0, 0] - g2.means_[1, 0]) / math.sqrt(
        (sds ** 2).sum()), rel=1e-12)
    ci = stats.bootstrap((BIMODAL,), V.bimodality_coefficient, n_resamples=1000, random_state=0, method="percentile",
                         vectorized=True).confidence_interval
    assert r.coefficient == V.bimodality_coefficient(BIMODAL) and r.coefficient_ci == (ci.low, ci.high)
    assert r.sentence.endswith(f"two components win by BIC and their density has two modes: bimodal. The bimodality "
                               f"coefficient is {r.coefficient:.3f} (95% bootstrap interval {ci.low:.3f}-{ci.high:.3f}; "
                               "5/9 ≈ 0.556 is the usual threshold, which skewed unimodal data also reach)")
    assert V.bimodality(BIMODAL, random_state=4).coefficient_ci != r.coefficient_ci


def test_bimodality_thresholds_on_its_valley():
    r = V.bimodality(BIMODAL)
    assert V.bimodality(BIMODAL, max_dip=r.dip).verdict == V.PRESENT             # at most max_dip
    shallow = V.bimodality(BIMODAL, max_dip=r.dip * 0.999)
    assert shallow.verdict == V.INCONCLUSIVE and shallow.sentence.count(f"(density ratio {r.dip:.2f} > ") == 1
    assert V.bimodality(BIMODAL, bic_margin=r.delta_bic).verdict == V.INCONCLUSIVE   # BIC must win by more


def test_bimodality_needs_ten_finite_values():
    assert V.bimodality(BIMODAL[:10]).n == 10
    with pytest.raises(ValueError, match=r"^bimodality needs at least 10 finite values, got 9$"):
        V.bimodality(np.r_[BIMODAL[:9], np.nan, np.inf])


def test_a_valley_between_half_and_shallow_is_inconclusive_by_default():
    x = np.r_[np.random.default_rng(1).normal(-1.4, 1, 400), np.random.default_rng(2).normal(1.4, 1, 400)]
    r = V.bimodality(x)
    assert 0.5 < r.dip < V.SHALLOW_DIP and r.delta_bic > V.BIC_MARGIN and r.verdict == V.INCONCLUSIVE


def test_the_valley_is_read_against_the_lower_peak_whichever_side_it_is_on():
    swapped = 5.0 + np.r_[np.random.default_rng(12).normal(-2.0, 0.7, 100), np.random.default_rng(11).normal(2.0, 0.5, 150)]
    delta, g2, modes, dip = bimodality_by_hand(swapped)
    assert (V.bimodality(swapped).dip, modes) == (dip, 2)
    one = np.abs(np.random.default_rng(5).normal(size=300))               # one mode: no valley
    r = V.bimodality(one)
    assert (r.modes, r.dip) == (1, 1.0) and "valley/peak 1.00 (" in r.sentence


def test_the_two_component_fit_keeps_the_best_of_five_starts():
    """Three clusters fitted with two components: one start (seed 0) ends in a worse local optimum than
    the best of five, and a sixth start moves the result."""
    rng = np.random.default_rng(14)
    x = np.r_[rng.normal(-3, 0.5, 100), rng.normal(0, 0.5, 90), rng.normal(3, 0.5, 110)]
    delta, g2, modes, dip = bimodality_by_hand(x)
    r = V.bimodality(x)
    assert r.means == tuple(float(m) * x.std() + x.mean() for m in g2.means_[:, 0]) and r.delta_bic == delta


# ----------------------------------------------------------------------------- readers of a run's metrics
def test_ro_of_a_run_reads_its_epochs_its_regime_and_pairs_only_a_complete_column():
    import pandas as pd

    from energy_lib import bits

    correct = np.random.default_rng(7).random((20, 60)) < np.linspace(0.3, 0.6, 20)[:, None]
    acc = correct.mean(1)
    val = np.r_[np.linspace(0.2, 0.4, 10), np.linspace(0.6, 0.3, 10)]
    frame = pd.DataFrame({"epoch": np.arange(2, 41, 2), "test_acc_adv": acc, "val_acc_adv": val,
                          "test_correct_adv": [bits.pack(c) for c in correct]})
    r = V.robust_overfitting_of(frame, 60)
    assert r == V.robust_overfitting(acc, 60, val_acc=val, epochs=np.arange(2, 41, 2), test_correct=correct)
    assert r.best_window == (22, 24)
    gap = frame.astype({"test_correct_adv": object})
    gap.loc[0, "test_correct_adv"] = float("nan")                 # one epoch without per-image outcomes: unpaired
    assert V.robust_overfitting_of(gap, 60) == V.robust_overfitting(acc, 60, val_acc=val, epochs=np.arange(2, 41, 2))
    never = V.model_regime(0.12, 100, 10, ce=0.05)
    assert V.robust_overfitting_of(frame, 60, regime=never).untestable == never.never_learned_text


def test_co_of_a_run_reads_its_progress_its_regime_and_a_constant_output_below_the_spread():
    import pandas as pd

    acc = [0.10, 0.42, 0.45, 0.44, 0.05, 0.03, 0.04, 0.02]
    frame = pd.DataFrame({"epoch": np.arange(2, 17, 2), "test_acc_adv": acc, "test_acc_nat": 0.6,
                          "test_E_nat_std": np.r_[np.full(7, 0.3), V.CONSTANT_SPREAD]})
    r = V.catastrophic_overfitting_of(frame, 1000, 10)
    assert (r.verdict, r.onset, r.diverged) == (V.PRESENT, 10, False)          # a spread of exactly 1e-4 is not constant
    frame.loc[7, "test_E_nat_std"] = np.nextafter(V.CONSTANT_SPREAD, 0)
    assert V.catastrophic_overfitting_of(frame, 1000, 10).diverged
    never = V.model_regime(0.12, 100, 10, ce=0.05)
    assert V.catastrophic_overfitting_of(frame, 1000, 10, regime=never).untestable == never.never_learned_text


def test_phases_that_cannot_be_read_keep_their_fit_ro_and_onset():
    fit, ro = phase_fit(), ro_result(verdict=V.ABSENT)
    r = V.phases_reproduced(fit, ro)
    assert (r.phases, r.ro, r.ro_onset) == (fit, ro, 80.0)
    unfitted = V.phase_structure(np.linspace(1.0, 0.0, 10))              # too short to fit: no BIC
    r = V.phases_reproduced(unfitted, ro_result())
    assert (r.phases, r.ro, r.ro_onset, r.sentence) == (unfitted, ro_result(), 80.0, unfitted.sentence)


def accurate_but_uniform():
    """A regime that never learned although accurate enough: its text has two ': ' (the reason after the first)."""
    import dataclasses

    return dataclasses.replace(V.model_regime(0.12, 100, 10, ce=0.05), information_when_accurate=0.1)


def test_a_never_learned_reason_is_everything_after_its_first_colon():
    never = accurate_but_uniform()
    assert never.never_learned_text.count(": ") == 2
    reason = never.never_learned_text.split(": ", 1)[1]
    rep = V.replicated({"s0": V.PRESENT, "s1": V.PRESENT, "s2": V.PRESENT}, "CO",
                       regimes={"s0": V.model_regime(0.8, 100, 10), "s1": V.model_regime(0.8, 100, 10), "s2": never})
    assert rep.sentence.endswith(f"; left out of the claim, because the network never learned: s2 ({reason})")
    rs = V.spread_ratios(WIDE, {"AT": TIGHT}, regimes={"AT": never})
    assert rs.sentence.endswith(f": AT ({reason})")


def test_nothing_found_is_said_without_an_empty_list():
    assert V.replicated({}, "CO").sentence == "CO: 0 run(s) read, fewer than the 2 a replication needs"


def test_a_summary_row_refuses_a_verdict_that_is_not_a_reproduction_by_name():
    with pytest.raises(ValueError) as err:
        V.mean_shift(DOWN, -1).summary("claim", "2.1", "E down", verdict=V.PRESENT)
    assert str(err.value) == (f"a summary row needs one of {V.REPRODUCTION}, got 'present': map it with "
                              "verdicts.reproduction(...)")


def test_a_trend_reads_boolean_indicators_keyed_by_image():
    import pandas as pd

    low = pd.Series(np.tile([True, False, False, False], 25), index=np.arange(100))
    high = pd.Series(np.tile([True, True, False, True], 25), index=np.arange(100))
    t = V.shift_trend({2: low, 8: high}, +1, what="success")
    step = V.mean_shift(high.to_numpy(float) - low.to_numpy(float), +1, what="change of success", random_state=0)
    assert t.steps[0].ci == step.ci and t.verdict == V.REPRODUCED


def test_a_trend_bootstraps_with_seed_0_by_default():
    low = np.tile([0.1, -0.3, 0.25, 0.05, -0.12], 8)
    high = low + np.tile([0.31, 0.02, 0.17, -0.05, 0.4, 0.11, 0.23, -0.02], 5)
    t = V.shift_trend({2: low, 8: high}, +1)
    assert t.steps[0].ci == V.mean_shift(high - low, +1, what="change of shift", random_state=0).ci
    assert t.steps[0].ci != V.mean_shift(high - low, +1, what="change of shift", random_state=1).ci


def test_two_modes_need_weight_separation_and_a_valley_each():
    expo = V.bimodality(np.random.default_rng(3).exponential(size=300))      # a bump on the tail: no valley
    assert (expo.modes, expo.verdict) == (2, V.ABSENT) and expo.dip > V.SHALLOW_DIP and expo.separation > 2
    assert expo.delta_bic > V.BIC_MARGIN and min(expo.weights) > 0.1
    assert ("; two components fit better but they overlap (one mode, Ashman's D ≤ 2, a component under 10% of the "
            "mass or a valley under 20% deep: a skewed or heavy-tailed unimodal sample): not bimodal. ") in expo.sentence
    small = np.r_[np.random.default_rng(5).normal(0, 1, 285), np.random.default_rng(6).normal(6, 0.5, 15)]
    light = V.bimodality(small)                                             # a 5 % cluster: under min_weight
    assert light.verdict == V.ABSENT and light.dip < 0.01 and light.separation > 3
    assert V.bimodality(small, min_weight=min(light.weights)).verdict == V.PRESENT   # at least min_weight
    near = np.r_[np.random.default_rng(1).normal(-1.3, 1, 400), np.random.default_rng(2).normal(1.3, 1, 400)]
    close = V.bimodality(near)                                              # separated by D between 2 and 3
    assert 2 < close.separation < 3 and close.verdict == V.INCONCLUSIVE
    gauss = V.bimodality(np.random.default_rng(4).normal(size=300))
    assert gauss.delta_bic < 0 and "; one component wins by BIC: unimodal. " in gauss.sentence


def test_the_bimodality_sentence_names_each_component_in_order():
    r = V.bimodality(BIMODAL, level=0.9)
    assert (f"(means {r.means[0]:.2f} and {r.means[1]:.2f}, weights {r.weights[0]:.2f} / {r.weights[1]:.2f})"
            in r.sentence) and f"{r.means[0]:.2f}" != f"{r.means[1]:.2f}" and f"{r.weights[0]:.2f}" != f"{r.weights[1]:.2f}"
    ci = stats.bootstrap((BIMODAL,), V.bimodality_coefficient, n_resamples=1000, random_state=0, method="percentile",
                         confidence_level=0.9).confidence_interval
    assert r.coefficient_ci == (ci.low, ci.high) and "(90% bootstrap interval " in r.sentence


def test_the_bimodality_coefficient_along_an_axis_and_from_four_values():
    x = np.random.default_rng(8).normal(size=(3, 12))
    along = V.bimodality_coefficient(x, axis=1)
    assert along.shape == (3,) and list(along) == [V.bimodality_coefficient(row) for row in x]
    four = [0.0, 1.0, 3.0, 7.0]
    g, k = stats.skew(four, bias=False), stats.kurtosis(four, bias=False)
    assert V.bimodality_coefficient(four) == pytest.approx((g ** 2 + 1) / (k + 3 * 9 / 2), rel=1e-12)
    with pytest.raises(ValueError, match=r"^the bimodality coefficient needs at least 4 values, got 3$"):
        V.bimodality_coefficient(four[:3])


def test_outcomes_given_as_floats_are_read_as_booleans():
    a, b = outcomes(100, 30, 10, 60)
    assert V.compare_accuracy(0, 0, 0, correct_a=a.astype(float), correct_b=b.astype(float)) == \
        V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b)


def test_standard_errors_and_margins_are_written_in_points():
    a, b = outcomes(50, 5, 3, 242)                       # paired SE 0.94 pt, unpaired 3.14 pt
    r = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, margin=0.06)
    assert "(paired SE 0.9 pt, unpaired SE 3.1 pt; " in r.sentence
    near = V.compare_accuracy(0.55, 0.45, 400, margin=0.06)
    assert near.verdict == V.INCONCLUSIVE_SCALE and ("; significant on these test images, but the interval reaches into "
                                                     "the ±6.0 pt that training-seed noise can give") in near.sentence
    far = V.compare_accuracy(0.75, 0.45, 400, margin=0.06)
    assert far.sentence.endswith("A is significantly more robust than B; one trained model each: a direction needs the "
                                 "interval beyond ±6.0 pt")


def test_a_run_robust_only_after_its_first_epoch_is_robust():
    """No collapse; the first epoch has 0 % but the peak (35 %) is significantly above 0: not 'never robust'."""
    r = co([0.0, 0.30, 0.35, 0.33], 1000)
    assert (r.verdict, r.onset) == (V.ABSENT, None)


def test_a_drop_within_noise_then_beyond_it_begins_where_it_is_beyond():
    """20 images: 10 % has an interval overlapping the 45 % peak's, 0 % does not: the onset is the 0 %."""
    r = co([0.1, 0.45, 0.45, 0.10, 0.0, 0.0], 20)
    assert (r.verdict, r.onset) == (V.PRESENT, 5)


def test_float32_samples_are_fitted_in_float64():
    x32 = BIMODAL.astype(np.float32)
    assert V.bimodality(x32) == V.bimodality(x32.astype(np.float64))
    assert V.bimodality_coefficient(x32) == V.bimodality_coefficient(x32.astype(np.float64))


def test_a_trend_refuses_a_missing_sign_even_at_one_budget():
    with pytest.raises(ValueError, match=r"^expected_sign must be -1 or \+1, got 0$"):
        V.shift_trend({8: DOWN}, 0)


def test_three_values_of_which_one_side_is_flat_have_no_ratio_rather_than_too_few():
    r = V.spread_ratio([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert r.sentence == "std ΔE(x) is 0 for standard and 1 for robust: a spread of 0 has no ratio"


def test_a_never_learned_model_without_an_interval_says_so():
    a, b = np.tile([1.0, 5.0, 9.0], 3)[:8], np.tile([1.0, 1.5, 2.0], 3)[:8]
    r = V.spread_ratio(a, b, regime=never_learned())
    assert r.verdict == V.INCONCLUSIVE_SCALE and ": 8.00x tighter, no interval) says nothing about" in r.sentence
    few = V.spread_ratios(WIDE, {"AT": [0.1, 0.2]}, regimes={"AT": never_learned()}, paired=False)
    assert few.sentence.startswith("std ΔE(x) of standard over each robust model's: AT: the network never learned; none ")


def test_the_epoch_scatter_of_three_points_is_a_variance():
    """4 epochs: the last two thirds hold 3 points (2 differences, a sample variance)."""
    acc = np.array([0.3, 0.5, 0.45, 0.6])
    r = V.robust_overfitting(acc, 100, k=1, val_acc=[0.1, 0.9, 0.2, 0.3])
    var_epoch = np.var(np.diff(acc[1:]), ddof=1) / 2
    assert var_epoch > 0 and r.se == pytest.approx(math.sqrt((0.5 * 0.5 + 0.6 * 0.4) / 100 + 2 * var_epoch), rel=1e-12)


def test_ro_margins_are_written_in_whole_points():
    acc, val = flat_ro(best_at=14)
    absent = V.robust_overfitting(acc, 100_000, val_acc=val, k=2, margin=0.025)
    assert absent.sentence.endswith("the interval excludes a decline of 2 pt or more: robust overfitting is absent")
    acc, val = flat_ro(n_images=400)
    unsure = V.robust_overfitting(acc, 400, val_acc=val, k=2, margin=0.025)
    assert unsure.sentence.endswith("the interval contains both 0 and a decline of 2 pt: inconclusive")


def test_residual_autocorrelation_is_clipped_to_0_95_and_to_0():
    assert V._lag1(np.linspace(-1.0, 1.0, 200)) == 0.95                 # a trend left in the residuals: about 0.985
    assert V._lag1(np.tile([1.0, -1.0], 50)) == 0.0                      # negative: not counted
    assert V._lag1(np.zeros(10)) == 0.0


def test_one_bimodality_coefficient_is_a_python_float():
    assert type(V.bimodality_coefficient([0.0, 1.0, 3.0, 7.0])) is float


def test_two_components_that_win_by_less_than_one_bic_still_win():
    x = np.r_[np.random.default_rng(2).normal(-0.85, 1, 400), np.random.default_rng(12).normal(0.85, 1, 400)]
    r = V.bimodality(x)
    assert 0 < r.delta_bic < 1 and r.verdict == V.ABSENT
    assert "; two components fit better but they overlap (one mode, " in r.sentence


def test_the_80_percent_rule_reads_the_last_epoch_of_a_longer_best_window():
    """k = 4 over 25 epochs, the validation peak's window at positions 16-19: it ends at epoch 20 (80 %), so
    a flat curve is absent; one position later (ends at 84 %, still clear of the last window) it is not read."""
    val = np.full(25, 0.3)
    val[16:20] = 0.6
    assert V.robust_overfitting(np.full(25, 0.5), 100_000, val_acc=val, k=4).verdict == V.ABSENT
    late = V.robust_overfitting(np.full(25, 0.5), 100_000, val_acc=np.roll(val, 1), k=4)
    assert late.verdict == V.INCONCLUSIVE and late.untestable.startswith("the best window ends at 84% of training")


# ----------------------------------------------------------------------------- phases, by their protocol
def phases_by_hand(y, x=None, min_segment=5):
    """PAPER.md 2.2's model comparison written out plainly: every breakpoint position fitted on its own
    (np.linalg.lstsq), polynomials with np.polyfit on the raw epochs, the lag-1 autocorrelation of the
    richest best-fitting model's residuals, n_eff, and BIC = n_eff ln(max(RSS/n, floor)) + (p + 2 knots
    + 1) ln(n_eff). Returns {model: BIC}, the best knots of each phase model and their coefficients."""
    y = np.asarray(y, float)
    n = len(y)
    x = np.arange(1.0, n + 1) if x is None else np.asarray(x, float)

    def fit(knots):
        basis = np.column_stack([np.ones(n), x] + [np.maximum(x - k, 0.0) for k in knots])
        coef = np.linalg.lstsq(basis, y, rcond=None)[0]
        resid = y - basis @ coef
        return resid @ resid, coef, resid

    inner = range(min_segment - 1, n - min_segment)
    one = min(((fit([x[i]]), (x[i],)) for i in inner), key=lambda f: f[0][0])
    two = min(((fit([x[i], x[j]]), (x[i], x[j])) for i in inner for j in range(i + min_segment, n - min_segment)),
              key=lambda f: f[0][0])
    poly = {d: y - np.polyval(np.polyfit(x, y, d), x) for d in (2, 3, 4, 5)}
    rich = two[0][2] if two[0][0] < poly[5] @ poly[5] else poly[5]
    r = rich - rich.mean()
    rho = min(max((r[1:] @ r[:-1]) / (r @ r), 0.0), 0.95)
    n_eff = max(2.0, n * (1 - rho) / (1 + rho))
    floor = (1e-9 * (np.ptp(y) + np.abs(y).max() + 1e-12)) ** 2
    bic = lambda rss, p, k: n_eff * math.log(max(rss / n, floor)) + (p + 2 * k + 1) * math.log(n_eff)  # noqa: E731
    scores = {"line": bic(fit([])[0], 2, 0), "one": bic(one[0][0], 3, 1), "two": bic(two[0][0], 4, 2),
              **{f"poly{d}": bic(poly[d] @ poly[d], d + 1, 0) for d in poly}}
    return scores, {"one": one, "two": two}, rho, n_eff


def wavy(n, amplitude=0.004):
    """A deterministic wiggle (no random draw): its values are the same on every machine."""
    return amplitude * np.sin(np.arange(n) * 2.3) * np.cos(np.arange(n) * 0.7)


PAPER_CURVE = np.r_[np.linspace(0.0, -0.5, 13)[:-1], np.linspace(-0.5, -0.56, 41)[:-1], np.linspace(-0.56, -0.9, 13)]
PAPER_CURVE = PAPER_CURVE + wavy(len(PAPER_CURVE))


def test_three_phases_follow_the_protocol_by_hand():
    epochs = 2.0 * np.arange(1, len(PAPER_CURVE) + 1)                  # tracked every other epoch
    r = V.phase_structure(PAPER_CURVE, epochs)
    scores, best, rho, n_eff = phases_by_hand(PAPER_CURVE, epochs)
    assert r.verdict == V.THREE_PHASES and r.boundaries == best["two"][1] == (26.0, 106.0)
    assert r.bic.keys() == scores.keys() and all(v == round(v, 2) for v in r.bic.values())   # kept to 2 decimals
    assert all(abs(r.bic[m] - scores[m]) <= 0.005 + 1e-9 for m in scores)
    assert r.delta_bic == pytest.approx(scores["line"] - scores["two"], rel=1e-9)
    assert r.slopes == pytest.approx(tuple(np.cumsum(best["two"][0][1][1:])), rel=1e-9)
    assert f"residual autocorrelation {rho:.2f}, so {n_eff:.0f} effectively independent epochs of 65" in r.sentence
    assert r.sentence.startswith(f"a piecewise-linear fit with breakpoint(s) at epoch 26, 106 beats one line by "
                                 f"ΔBIC = {r.delta_bic:.1f} and the best smooth curve (degree 5) by ")
    assert min((m for m in scores if m.startswith("poly")), key=scores.get) == "poly5"
    assert r.statistic_text == f"three phases (breakpoints: 26, 106; ΔBIC vs one line {r.delta_bic:.1f})"


def test_one_change_follows_the_protocol_by_hand():
    y = np.r_[np.linspace(0.0, -0.5, 16)[:-1], np.linspace(-0.5, -0.6, 25)] + wavy(40)
    r = V.phase_structure(y)
    scores, best, *_ = phases_by_hand(y)
    assert r.verdict == V.ONE_CHANGE and r.boundaries == best["one"][1] == (16.0,)
    assert all(abs(r.bic[m] - scores[m]) <= 0.005 + 1e-9 for m in scores)
    assert r.slopes == pytest.approx(tuple(np.cumsum(best["one"][0][1][1:])), rel=1e-9)


def test_an_exact_line_is_decided_on_the_rss_floor_not_on_rounding():
    """Every model fits an exact line to rounding (RSS ~ 1e-30), below the floor (1e-9 x (range + max |y|))^2:
    the BICs differ by their penalties alone, (p + 2 knots + 1) ln(n_eff), and the line's is
    n_eff ln(floor) + 3 ln(n_eff), whatever the rounding residuals' autocorrelation made n_eff."""
    y = 0.5 - 0.01 * np.arange(1, 31)
    r = V.phase_structure(y)
    log_n_eff = (r.bic["one"] - r.bic["line"]) / 3
    floor = (1e-9 * (np.ptp(y) + np.abs(y).max() + 1e-12)) ** 2
    assert r.verdict == V.NO_PHASES and log_n_eff > math.log(2) - 0.01
    assert r.bic["line"] == pytest.approx(math.exp(log_n_eff) * math.log(floor) + 3 * log_n_eff, abs=0.05)
    gaps = {"two": 6, "poly2": 1, "poly3": 2, "poly4": 3, "poly5": 4}
    assert all(r.bic[m] - r.bic["line"] == pytest.approx(k * log_n_eff, abs=0.02) for m, k in gaps.items())
    assert r.sentence.startswith("one straight line (slope -0.0100 per epoch) describes the curve as well as models "
                                 "with breakpoints or smooth bends once their extra parameters are paid for (BIC: line ")


def test_phases_need_three_segments_of_min_segment_epochs_plus_one():
    y = PAPER_CURVE[::4][:16]                                     # 16 points: exactly 3 x 5 + 1
    assert V.phase_structure(y).bic
    short = V.phase_structure(y[:15])
    assert (short.verdict, short.boundaries, short.slopes, short.bic, short.delta_bic) == (V.NO_PHASES, (), (), {}, 0.0)
    assert short.sentence == "15 finite epochs are too few to look for phases (a three-phase fit needs at least 16)"
    assert V.phase_structure(y, min_segment=4).bic and not V.phase_structure(y[:12], min_segment=4).bic
    with_nan = y.copy()
    with_nan[3] = np.nan
    assert not V.phase_structure(with_nan).bic


def test_breakpoints_are_searched_from_the_min_segment_th_epoch_on():
    """A kink at epoch 4 lies before the first allowed breakpoint (epoch 5: five epochs before it): the
    one-breakpoint fit puts it at 5, and its BIC is the hand fit's over exactly the allowed positions."""
    y = np.r_[np.linspace(0.0, -0.6, 4), np.linspace(-0.6, -0.75, 27)[1:]] + wavy(30, 0.002)
    r = V.phase_structure(y)
    scores, best, *_ = phases_by_hand(y)
    assert best["one"][1] == (5.0,) and abs(r.bic["one"] - scores["one"]) <= 0.005 + 1e-9
    assert abs(r.bic["two"] - scores["two"]) <= 0.005 + 1e-9


def test_a_mean_shift_bootstraps_2000_resamples_of_continuous_values():
    v = np.sin(np.arange(60) * 1.7) * 0.3 - 0.1                    # 60 distinct values: every resample count shows
    r = V.mean_shift(v, -1)
    assert r.ci == pytest.approx(mean_interval(v), abs=1e-15)
    ci_2001 = stats.bootstrap((v,), np.mean, n_resamples=2001, random_state=0, method="percentile").confidence_interval
    assert r.ci != pytest.approx((ci_2001.low, ci_2001.high), abs=1e-15)


def test_phases_of_a_float32_curve_are_fitted_in_float64():
    y32 = PAPER_CURVE.astype(np.float32)
    e32 = (2.0 * np.arange(1, len(PAPER_CURVE) + 1)).astype(np.float32)
    assert V.phase_structure(y32, e32) == V.phase_structure(y32.astype(np.float64), e32.astype(np.float64))


def test_a_smooth_bend_is_named_with_its_degree_and_every_bic():
    x = np.arange(1, 41)
    r = V.phase_structure(0.0015 * (x - 12.0) ** 2 + wavy(40, 0.002))
    b = r.bic
    assert r.verdict == V.NO_PHASES and min((m for m in b if m.startswith("poly")), key=b.get) == "poly2"
    assert r.sentence.startswith(f"a smooth curve (polynomial of degree 2) describes the curve as well as models with "
                                 f"breakpoints once their extra parameters are paid for (BIC: line {b['line']:.1f}, one "
                                 f"breakpoint {b['one']:.1f}, two {b['two']:.1f}, best smooth {b['poly2']:.1f}; residual "
                                 "autocorrelation ")
    assert r.sentence.endswith("): no phase structure")
