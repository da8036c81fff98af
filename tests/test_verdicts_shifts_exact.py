"""Verdicts on shifts, spreads and shapes of per-image values, on planted inputs whose every figure is
known by hand: WEAT's weight contrast, the SAT/TRADES energy alignment, mean shifts and their trend over
budgets, spread ratios and a model's regime, bimodality and adaptive stopping. Each follows its documented
protocol (scipy's percentile bootstrap at 2,000 resamples and seed 0, Wilson intervals, the mixture fits)
written out a second, plainer way; boundaries are planted exactly."""
import math

import numpy as np
import pytest
from scipy import stats

from energy_lib import verdicts as V
from verdict_inputs import protocol_bootstrap


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


def test_one_bimodality_coefficient_is_a_python_float():
    assert type(V.bimodality_coefficient([0.0, 1.0, 3.0, 7.0])) is float


def test_two_components_that_win_by_less_than_one_bic_still_win():
    x = np.r_[np.random.default_rng(2).normal(-0.85, 1, 400), np.random.default_rng(12).normal(0.85, 1, 400)]
    r = V.bimodality(x)
    assert 0 < r.delta_bic < 1 and r.verdict == V.ABSENT
    assert "; two components fit better but they overlap (one mode, " in r.sentence


def test_a_mean_shift_bootstraps_2000_resamples_of_continuous_values():
    v = np.sin(np.arange(60) * 1.7) * 0.3 - 0.1                    # 60 distinct values: every resample count shows
    r = V.mean_shift(v, -1)
    assert r.ci == pytest.approx(mean_interval(v), abs=1e-15)
    ci_2001 = stats.bootstrap((v,), np.mean, n_resamples=2001, random_state=0, method="percentile").confidence_interval
    assert r.ci != pytest.approx((ci_2001.low, ci_2001.high), abs=1e-15)


@pytest.mark.parametrize("delta, two_modes, dip, verdict", [
    (10.5, True, 0.5, V.PRESENT),
    (10.0, True, 0.3, V.INCONCLUSIVE),     # a BIC gain of exactly the margin is not beyond it
    (10.5, True, 0.51, V.INCONCLUSIVE),    # a valley shallower than max_dip
    (0.5, True, 0.3, V.INCONCLUSIVE),      # two components win by under one BIC, with two separated modes
    (1e-9, True, 0.3, V.INCONCLUSIVE),
    (0.0, True, 0.3, V.ABSENT),            # no gain at all: one component
    (-3.0, True, 0.3, V.ABSENT),
    (50.0, False, 0.3, V.ABSENT),          # two components fit better, but no two modes
])
def test_the_bimodality_reading_on_planted_fits(delta, two_modes, dip, verdict):
    assert V._bimodality_verdict(delta, two_modes, dip, bic_margin=10.0, max_dip=0.5) == verdict


def test_the_bimodality_reading_uses_the_margin_and_depth_it_is_given():
    assert V._bimodality_verdict(5.0, True, 0.5, bic_margin=4.0, max_dip=0.5) == V.PRESENT
    assert V._bimodality_verdict(5.0, True, 0.5, bic_margin=10.0, max_dip=0.5) == V.INCONCLUSIVE
    assert V._bimodality_verdict(20.0, True, 0.7, bic_margin=10.0, max_dip=0.75) == V.PRESENT
