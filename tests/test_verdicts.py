"""Every verdict of energy_lib.verdicts on synthetic inputs with a known answer, including the
inputs where the answer is "no". All inputs come from fixed seeds, so every test is deterministic."""
import math

import numpy as np
import pandas as pd
import pytest

from energy_lib import bits, power
from energy_lib import verdicts as V
from verdict_inputs import eval_record, outcomes

SEEDS = range(50)


def learning_curve(seed, n=200, epochs=30, tau=0.02, drop=0.0):
    """Robust accuracy of a run: rises to ~0.5, then flat (or declining by `drop` over the last third);
    per-epoch model fluctuation `tau` shared by validation and test, binomial noise on n images each."""
    r = np.random.default_rng(seed)
    e = np.arange(epochs)
    p = 0.45 * (1 - np.exp(-e / 4)) + 0.05 - drop * np.clip((e - 2 * epochs / 3) / (epochs / 3), 0, 1)
    p = np.clip(p + r.normal(0, tau, epochs), 0.01, 0.99)
    return r.binomial(n, p) / n, r.binomial(n, p) / n


def paper_phases(seed, sigma=0.02):
    """PAPER.md 2.2: 0 -> -0.15 by epoch 10, drift to -0.3 by 78, collapse to -0.75 by 100."""
    e = np.arange(1, 101)
    return np.interp(e, [0, 10, 78, 100], [0, -0.15, -0.3, -0.75]) + np.random.default_rng(seed).normal(0, sigma, 100)


# ----------------------------------------------------------------------------- robust overfitting
@pytest.mark.parametrize("tau", [0.0, 0.02])
def test_flat_curve_is_never_robust_overfitting(tau):
    for seed in SEEDS:
        test, val = learning_curve(seed, tau=tau)
        assert V.robust_overfitting(test, 200, val_acc=val).verdict != V.PRESENT, seed
        assert V.robust_overfitting(test, 200).verdict != V.PRESENT, seed     # epoch split, no validation


def test_statistic_can_be_negative_and_positive_on_flat_curves():
    stats = [V.robust_overfitting(*learning_curve(s)[:1], 200, val_acc=learning_curve(s)[1]).statistic for s in SEEDS]
    assert min(stats) < 0 < max(stats)       # final - best would be >= 0 by construction


def test_planted_robust_overfitting_is_found():
    for seed in range(10):
        test, val = learning_curve(seed, n=2000, drop=0.15)
        ro = V.robust_overfitting(test, 2000, val_acc=val)
        assert ro.verdict == V.PRESENT and ro.statistic < -0.08, (seed, ro.sentence)
        assert ro.last_window == (28, 30) and "present" in ro.sentence


def test_stable_model_with_per_image_correctness_is_absent():
    r = np.random.default_rng(0)
    robust = r.random(5000) < 0.5                           # which images the model resists
    correct = np.tile(robust, (30, 1))
    flips = r.random(correct.shape) < 0.01                  # a few images change per epoch
    correct = correct ^ flips
    acc = correct.mean(1)
    ro = V.robust_overfitting(acc, 5000, val_acc=acc[::-1].copy(), test_correct=correct)
    assert ro.verdict == V.ABSENT, ro.sentence
    # the same curve without per-image data is too noisy to rule a 1-point decline out
    assert V.robust_overfitting(acc, 5000, val_acc=acc[::-1].copy()).verdict == V.INCONCLUSIVE


def test_robust_overfitting_on_too_short_curves_is_inconclusive():
    ro = V.robust_overfitting([0.3, 0.4, 0.5], 100)
    assert ro.verdict == V.INCONCLUSIVE and "too few" in ro.sentence and "too few" in ro.statistic_text
    with pytest.raises(ValueError, match="n_images"):
        V.robust_overfitting([0.3, 0.4, 0.5, 0.5], 0)


def test_protocol_notes():
    assert V.identity_check(1e-15)[0] == V.REPRODUCED and V.identity_check(1e-3)[0] == V.NOT_REPRODUCED
    assert "different energy scale" in V.scale_note("small_cnn", 500)
    assert "no late phase" in V.late_phase_note(30) and "long enough" in V.late_phase_note(100)


# ----------------------------------------------------------------------------- phases
def test_flat_noise_and_straight_lines_have_no_phases():
    for seed in SEEDS:
        for n in (100, 30):
            fit = V.phase_structure(np.random.default_rng(1000 + seed).normal(0, 0.02, n))
            assert fit.verdict == V.NO_PHASES, (seed, n, fit)
    e = np.arange(100)
    assert V.phase_structure(-0.015 * e).verdict == V.NO_PHASES
    assert V.phase_structure(-0.015 * e + np.random.default_rng(0).normal(0, 0.02, 100)).verdict == V.NO_PHASES


def quadratic(seed, n, sigma=0.002):
    """One smooth bend and no phases (issue 23: read as three phases in 40 of 40 draws before)."""
    e = np.arange(1, n + 1)
    return -0.3 * (e / n) ** 2 + np.random.default_rng(seed).normal(0, sigma, n)


def ar1_line(seed, n, rho=0.8, sigma=0.01):
    """A straight line with AR(1) noise, as a real per-epoch curve's epoch-to-epoch noise is."""
    r = np.random.default_rng(seed)
    z = np.zeros(n)
    for i in range(n):
        z[i] = (rho * z[i - 1] if i else 0.0) + r.normal(0, sigma)
    return -0.003 * np.arange(n) + z


@pytest.mark.parametrize("curve", [quadratic, ar1_line])
@pytest.mark.parametrize("n", [30, 100])
def test_a_smooth_bend_or_autocorrelated_noise_is_not_three_phases(curve, n):
    found = [V.phase_structure(curve(10_000 + seed, n)).verdict for seed in range(200)]
    assert found.count(V.THREE_PHASES) <= 10, found.count(V.THREE_PHASES)     # at least 95 % of 200 draws


def test_paper_shaped_curve_has_its_three_phases():
    fits = [V.phase_structure(paper_phases(seed)) for seed in range(200)]
    found = [f for f in fits if f.verdict == V.THREE_PHASES and f.paper_shaped]
    assert len(found) >= 190, len(found)          # measured: 196 of 200 (a faint phase 1 fits a quartic as well)
    errors = np.array([max(abs(f.boundaries[0] - 10), abs(f.boundaries[1] - 78)) for f in found])
    assert (errors <= 5).mean() >= 0.9 and np.median(errors) <= 2


def test_one_change_point_is_one_change_point():
    e = np.arange(1, 31)
    y = np.where(e < 10, -0.015 * e, -0.15) + np.random.default_rng(0).normal(0, 0.005, 30)
    fit = V.phase_structure(y)
    assert fit.verdict == V.ONE_CHANGE and abs(fit.boundaries[0] - 10) <= 2
    short = V.phase_structure([0.0, -0.1])
    assert short.verdict == V.NO_PHASES and not short.bic and "too few" in short.sentence


def _ro(verdict, best_window=(70, 78), epochs=100, untestable=""):
    """A RobustOverfitting result with a given verdict and best window (what phases_reproduced reads)."""
    return V.RobustOverfitting(-0.03, 0.005, (-0.04, -0.02), 0.5, 0.47, best_window, (epochs - 9, epochs),
                               "validation accuracy", 1000, 0.01, verdict, "", 0.014, untestable)


def test_the_three_phases_are_reproduced_only_with_robust_overfitting_where_phase_3_begins():
    fit = V.phase_structure(paper_phases(0))
    assert fit.verdict == V.THREE_PHASES and abs(fit.boundaries[1] - 78) <= 2
    assert V.phases_reproduced(fit, _ro(V.PRESENT)).verdict == V.REPRODUCED
    far = V.phases_reproduced(fit, _ro(V.PRESENT, best_window=(40, 50)))          # RO begins 28 epochs earlier
    assert far.verdict == V.NOT_REPRODUCED and "not where the paper puts it" in far.sentence
    none = V.phases_reproduced(fit, _ro(V.ABSENT))
    assert none.verdict == V.INCONCLUSIVE_SCALE and "robust overfitting is absent" in none.sentence
    untestable = V.phases_reproduced(fit, _ro(V.INCONCLUSIVE, untestable="the network never learned: ..."))
    assert untestable.verdict == V.INCONCLUSIVE_SCALE and "never learned" in untestable.sentence
    line = V.phase_structure(-0.003 * np.arange(100) + np.random.default_rng(0).normal(0, 0.01, 100))
    assert V.phases_reproduced(line, _ro(V.PRESENT)).verdict == V.NOT_REPRODUCED


# ----------------------------------------------------------------------------- catastrophic overfitting
def planted_co(seed, n=200, onset=16, epochs=30):
    r = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    p = np.where(e < onset, 0.1 + 0.25 * (e / onset), 0.01)
    return r.binomial(n, p) / n


def test_planted_catastrophic_overfitting_is_found():
    for seed in range(10):
        co = V.catastrophic_overfitting(planted_co(seed), 200)
        assert co.verdict == V.PRESENT and co.onset == 16, (seed, co.sentence)


def test_noisy_flat_curve_has_no_catastrophic_overfitting():
    for seed in SEEDS:
        acc = np.random.default_rng(seed).binomial(200, 0.3, 30) / 200
        assert V.catastrophic_overfitting(acc, 200).verdict == V.ABSENT, seed


def test_slow_decline_and_never_robust_runs_are_not_co():
    slow = np.linspace(0.4, 0.25, 30)            # robust overfitting-like, not a collapse
    assert V.catastrophic_overfitting(slow, 200).verdict != V.PRESENT
    never = np.random.default_rng(0).binomial(200, 0.01, 30) / 200
    assert V.catastrophic_overfitting(never, 200).verdict == V.INCONCLUSIVE
    recovers = planted_co(0).copy()
    recovers[20:] = 0.33                         # drops, then recovers: does not stay
    assert V.catastrophic_overfitting(recovers, 200).verdict != V.PRESENT


def test_a_diverged_run_is_not_catastrophic_overfitting():
    """A network that stops learning altogether (clean accuracy at chance, one output class) scores
    that class's share under any attack: inconclusive, whatever the robust curve did. Measured: the
    sizing sweep's FGSM-RS runs at n_train = 2000 went to a constant output at epoch 8."""
    epochs, n = 30, 200
    dead = np.r_[np.full(7, 0.08), np.full(epochs - 7, 0.1)]        # clean accuracy falls to chance
    healthy = np.full(epochs, 0.5)
    # a robust curve that would be a collapse, and one that would be no collapse (0.09 stays above 0.3 x 0.175)
    collapse = np.r_[np.full(10, 0.35), np.zeros(epochs - 10)]
    share = np.r_[np.linspace(0.12, 0.175, 7), np.full(epochs - 7, 0.09)]
    assert V.catastrophic_overfitting(collapse, n, clean=healthy, chance=0.1).verdict == V.PRESENT
    assert V.catastrophic_overfitting(share, n, clean=healthy, chance=0.1).verdict == V.ABSENT
    for robust in (collapse, share):
        co = V.catastrophic_overfitting(robust, n, clean=np.r_[healthy[:7], dead[7:]], chance=0.1)
        assert co.verdict == V.INCONCLUSIVE and co.diverged and "diverged" in co.sentence
        assert co.statistic_text.startswith("diverged: clean 10.0%")
    # 15 % of 200 images: significantly above 10 % chance (Wilson lower bound 0.1065), so not diverged
    assert not V.catastrophic_overfitting(share, n, clean=np.full(epochs, 0.15), chance=0.1).diverged
    assert V.catastrophic_overfitting(share, n, clean=np.full(epochs, 0.13), chance=0.1).diverged
    with pytest.raises(ValueError, match="both `clean` and `chance`"):
        V.catastrophic_overfitting(share, n, clean=healthy)
    with pytest.raises(ValueError, match="clean has 3 epochs"):
        V.catastrophic_overfitting(share, n, clean=healthy[:3], chance=0.1)
    # a constant output scores its class's share, which can lie above chance: caught by the output itself
    share_of_one_class = np.full(epochs, 0.2)                         # 40 of 200 tracked images in that class
    assert not V.catastrophic_overfitting(collapse, n, clean=share_of_one_class, chance=0.1).diverged
    co = V.catastrophic_overfitting(collapse, n, clean=share_of_one_class, chance=0.1, constant_output=True)
    assert co.diverged and co.verdict == V.INCONCLUSIVE and "same logits" in co.sentence

    def metrics(spread):
        return pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc_adv": collapse, "test_acc_nat": 0.2,
                             "test_E_nat_std": np.r_[np.full(epochs - 1, 0.3), spread]})
    assert V.catastrophic_overfitting_of(metrics(0.0), n, 10).diverged               # constant logits at the end
    assert V.catastrophic_overfitting_of(metrics(0.004), n, 10).verdict == V.PRESENT  # a weak but learning net
    assert V.catastrophic_overfitting_of(metrics(0.0).drop(columns="test_E_nat_std"), n, 10).verdict == V.PRESENT

    # DER cannot be judged against or by a diverged run
    co = V.catastrophic_overfitting(collapse, n, clean=healthy, chance=0.1)
    gone = V.catastrophic_overfitting(share, n, clean=dead, chance=0.1)
    fine = V.catastrophic_overfitting(np.full(epochs, 0.3), n, clean=healthy, chance=0.1)
    assert V.der_prevents_co(co, gone).verdict == V.INCONCLUSIVE_SCALE
    assert "the run with DER diverged" in V.der_prevents_co(co, gone).sentence
    assert "the run without DER diverged" in V.der_prevents_co(gone, fine).sentence
    assert "both runs diverged" in V.der_prevents_co(gone, gone).sentence
    assert V.der_prevents_co(co, fine).verdict == V.REPRODUCED


def test_co_absent_needs_the_final_intervals_lower_end_above_the_collapsed_level():
    """Planted boundary: peak 50 %, final 20 % > 0.3 × 50 % = 15 %, no collapse below 15 %. On 100
    images the final Wilson interval reaches down to 13.3 % (< 15 %): a collapse is not ruled out, so
    inconclusive; on 2,000 images its lower end is 18.3 % (> 15 %): absent."""
    curve = np.array([0.3, 0.5, 0.45, 0.3, 0.2])
    assert V.wilson(20, 100)[0] < 0.15 < 0.2 and V.wilson(400, 2000)[0] > 0.15
    few = V.catastrophic_overfitting(curve, 100)
    assert few.verdict == V.INCONCLUSIVE and few.onset is None and "too close to the collapsed level" in few.sentence
    assert V.catastrophic_overfitting(curve, 2000).verdict == V.ABSENT


def test_der_does_not_prevent_what_it_cannot_be_judged_on():
    """A collapse without DER and an *inconclusive* run with DER (it never became robust) is not
    "DER prevented the collapse"."""
    co = V.catastrophic_overfitting(planted_co(0), 200)
    never_robust = V.catastrophic_overfitting(np.zeros(30), 200)
    assert co.verdict == V.PRESENT and never_robust.verdict == V.INCONCLUSIVE
    der = V.der_prevents_co(co, never_robust)
    assert der.verdict == V.INCONCLUSIVE_SCALE and "itself inconclusive" in der.sentence


def test_der_prevents_co_verdicts():
    co = V.catastrophic_overfitting(planted_co(0), 200)
    flat = V.catastrophic_overfitting(np.random.default_rng(1).binomial(200, 0.3, 30) / 200, 200)
    assert V.der_prevents_co(co, flat).verdict == V.REPRODUCED
    assert V.der_prevents_co(co, co).verdict == V.NOT_REPRODUCED
    assert V.der_prevents_co(flat, flat).verdict == V.INCONCLUSIVE_SCALE
    assert V.der_prevents_co(co, flat).final.statistic > 0


def test_der_final_accuracies_are_compared_paired_when_the_runs_tracked_per_image_outcomes():
    """The two single-step runs track the same test images: their last epochs' outcomes (metrics'
    `test_correct_adv`) give McNemar's test; runs without them fall back to the unpaired test."""

    n, epochs = 40, 4
    without = np.r_[np.ones(10), np.zeros(30)].astype(int)        # 10 of 40 robust at the end
    with_der = np.r_[np.ones(10), np.ones(8), np.zeros(22)].astype(int)   # the same 10 and 8 more

    def metrics(last):
        acc = [0.3, 0.3, 0.3, last.mean()]
        return pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc_adv": acc, "test_acc_nat": 0.6,
                             "test_correct_adv": [bits.pack(np.ones(n, int))] * (epochs - 1) + [bits.pack(last)]})

    base, der = (V.catastrophic_overfitting_of(metrics(without), n, 10),
                 V.catastrophic_overfitting_of(metrics(with_der), n, 10))
    assert base.final_correct == bits.pack(without)
    paired = V.der_prevents_co(base, der).final
    assert paired.paired and paired.p_value == pytest.approx(2 * 0.5 ** 8) and paired.statistic == pytest.approx(0.2)
    old = [V.catastrophic_overfitting_of(m.drop(columns="test_correct_adv"), n, 10) for m in (metrics(without), metrics(with_der))]
    unpaired = V.der_prevents_co(*old).final
    assert not unpaired.paired and "per-image outcomes" in unpaired.sentence
    assert unpaired.statistic == pytest.approx(paired.statistic) and unpaired.se > paired.se


# ----------------------------------------------------------------------------- bimodality
@pytest.mark.parametrize("name,draw", [
    ("lognormal 0.5", lambda r, n: r.lognormal(0, 0.5, n)), ("lognormal 1", lambda r, n: r.lognormal(0, 1, n)),
    ("lognormal 1.5", lambda r, n: r.lognormal(0, 1.5, n)), ("exponential", lambda r, n: r.exponential(1, n)),
    ("gamma 2", lambda r, n: r.gamma(2, 1, n)), ("gamma 5", lambda r, n: r.gamma(5, 1, n)),
    ("normal", lambda r, n: r.normal(0, 1, n)), ("student t3", lambda r, n: r.standard_t(3, n))])
def test_skewed_or_heavy_tailed_unimodal_data_are_not_bimodal(name, draw):
    for seed in range(5):
        for n in (300, 2000):
            b = V.bimodality(draw(np.random.default_rng(seed), n))
            assert b.verdict != V.PRESENT, (name, seed, n, b.sentence)


def test_bimodality_coefficient_alone_would_be_fooled_by_skew():
    x = np.random.default_rng(0).exponential(1, 5000)
    assert V.bimodality_coefficient(x) > V.BC_THRESHOLD * 0.95          # ~5/9 for an exponential
    assert V.bimodality(x).verdict == V.ABSENT


def test_unbiased_moments_in_the_coefficient():
    from scipy import stats
    x = np.random.default_rng(0).normal(size=40)
    g, k = stats.skew(x, bias=False), stats.kurtosis(x, bias=False)
    assert V.bimodality_coefficient(x) == pytest.approx((g ** 2 + 1) / (k + 3 * 39 ** 2 / (38 * 37)), rel=1e-12)


def test_two_mode_mixture_is_bimodal():
    for seed in range(5):
        r = np.random.default_rng(seed)
        for n in (100, 1000):
            x = np.where(r.random(n) < 0.6, r.normal(-8, 1.5, n), r.normal(2, 2, n))
            b = V.bimodality(x)
            assert b.verdict == V.PRESENT and b.separation > 2, (seed, n, b.sentence)
            assert sorted(round(m) for m in b.means) == [-8, 2]


# ----------------------------------------------------------------------------- comparisons
def test_energy_alignment_verdicts():
    r = np.random.default_rng(0)
    base = r.normal(0, 0.3, 200)
    sat, trades = base - 0.3, base * 0.5 - 0.02
    assert V.energy_alignment(sat, trades).verdict == V.REPRODUCED
    assert V.energy_alignment(trades, sat).verdict == V.NOT_REPRODUCED
    noisy_a, noisy_b = r.normal(-0.1, 2, 50), r.normal(-0.09, 2, 50)
    assert V.energy_alignment(noisy_a, noisy_b, paired=False).verdict == V.INCONCLUSIVE_SCALE
    with pytest.raises(ValueError, match="same images"):
        V.energy_alignment(sat, trades[:10])


def test_weight_contrast_is_misclassified_over_correct_mean_weight():
    """Planted: correctly classified images weigh 1 on average, misclassified ones 3: ratio 3.00 (not
    1/3, and not a ratio to the overall mean, 2.0), largest/smallest weight 3.3/0.8."""
    correct_w = np.tile([0.8, 1.2, 1.0, 1.0], 10)
    wrong_w = np.tile([2.7, 3.3, 3.0], 10)
    w = np.r_[correct_w, wrong_w]
    ok = np.r_[np.ones(40, bool), np.zeros(30, bool)]
    c = V.weight_contrast(w, ok)
    assert c.ratio == pytest.approx(3.0, abs=1e-12) and c.max_over_min == pytest.approx(3.3 / 0.8)
    assert (c.n_correct, c.n_incorrect) == (40, 30)
    assert c.verdict == V.PRESENT and c.ci[0] < 3.0 < c.ci[1] and c.ci[0] > 1
    assert V.weight_contrast(w, ~ok).verdict == V.ABSENT        # the other way round: 1/3


def test_energy_alignment_compares_the_absolute_means_not_the_mean_absolute_values():
    """PAPER.md 2.4: alignment is about the mean ΔE(x) being near 0: |mean ΔE_SAT| − |mean ΔE_TRADES|.
    Planted: SAT's ΔE alternates ±1 around +0.1 (mean +0.1, mean |ΔE| 1.0); TRADES' is −0.5
    everywhere. The statistic is 0.1 − 0.5 = −0.4 (SAT is the aligned one: not reproduced), where the
    mean of |ΔE| would say +0.5."""
    sat = np.tile([1.1, -0.9], 100)
    trades = np.full(200, -0.5)
    a = V.energy_alignment(sat, trades)
    assert a.statistic == pytest.approx(-0.4, abs=1e-12)
    assert (a.mean_a, a.mean_b) == (pytest.approx(0.1), pytest.approx(-0.5))
    assert a.verdict == V.NOT_REPRODUCED and a.ci[1] < 0
    assert a.n == 200 and a.paired


def test_compare_accuracy_paired_and_unpaired():
    r = np.random.default_rng(0)
    b = r.random(1000) < 0.4
    a = b.copy()
    a[np.flatnonzero(~b)[:60]] = True               # A resists 60 more images
    res = V.compare_accuracy(0, 0, 0, correct_a=a, correct_b=b, labels=("WEAT", "TRADES"))
    assert res.verdict == V.REPRODUCED and res.statistic == pytest.approx(0.06) and "McNemar" in res.test
    assert V.compare_accuracy(0, 0, 0, correct_a=b, correct_b=a).verdict == V.NOT_REPRODUCED
    assert V.compare_accuracy(0, 0, 0, correct_a=b, correct_b=b).verdict == V.INCONCLUSIVE_SCALE
    assert V.compare_accuracy(0.50, 0.49, 100).verdict == V.INCONCLUSIVE_SCALE
    assert V.compare_accuracy(0.6, 0.3, 1000).verdict == V.REPRODUCED
    assert V.compare_accuracy(0.3, 0.6, 1000).verdict == V.NOT_REPRODUCED


# ----------------------------------------------------------------------------- paired records (chapter 4)
def test_identical_per_image_outcomes_differ_by_exactly_zero():
    a, _ = outcomes(37, 0, 0, 63)
    res = V.compare_records(eval_record(a), eval_record(a.copy()), labels=("WEAT_adv", "TRADES"))
    assert res.paired and "McNemar" in res.test and "paired" in res.sentence
    assert (res.statistic, res.se, res.p_value) == (0.0, 0.0, 1.0)
    # Newcombe: symmetric around 0, as wide as 0 discordant images of 100 allow (about ±2 pt)
    assert res.ci[0] == pytest.approx(-res.ci[1]) and 0.01 < res.ci[1] < 0.03
    assert res.verdict == V.INCONCLUSIVE_SCALE != V.REPRODUCED


def test_a_planted_paired_difference_is_detected_and_the_unpaired_se_stated():
    # 100 images: B right on 30, A on those and 40 more; no image where only B is right
    a, b = outcomes(30, 40, 0, 30)
    rec_a = eval_record(a)
    rec_a["accuracy"]["autoattack"] = float(np.float32(0.7))   # evaluate() stores float32 means
    res = V.compare_records(rec_a, eval_record(b), labels=("WEAT_adv", "TRADES"))
    assert res.paired and res.n_images == 100 and (res.acc_a, res.acc_b) == (0.7, 0.3)
    assert res.statistic == pytest.approx(0.4, abs=1e-15)
    assert res.se == pytest.approx(np.sqrt(40 - 100 * 0.4 ** 2) / 100, rel=1e-12)    # √(b + c − n d²) / n
    assert res.p_value == pytest.approx(2 * 0.5 ** 40, rel=1e-12)                    # 40 of 40 discordant
    # Newcombe's paired interval by hand: Wilson intervals of 70/100 and 30/100, φ with the continuity
    # correction (ad − bc = 900 > n/2: 850 / √(70·30·30·70))
    from scipy import stats
    w = lambda k: stats.binomtest(k, 100).proportion_ci(method="wilson")
    (l1, u1), (l2, u2) = (w(70).low, w(70).high), (w(30).low, w(30).high)
    phi = 850 / np.sqrt(70 * 30 * 30 * 70)
    low = 0.4 - np.sqrt((0.7 - l1) ** 2 - 2 * phi * (0.7 - l1) * (u2 - 0.3) + (u2 - 0.3) ** 2)
    high = 0.4 + np.sqrt((u1 - 0.7) ** 2 - 2 * phi * (u1 - 0.7) * (0.3 - l2) + (0.3 - l2) ** 2)
    assert res.ci == pytest.approx((low, high), rel=1e-12)
    assert res.discordance == 0.4 and "Newcombe interval" in res.sentence
    assert res.se_unpaired == pytest.approx(np.sqrt((0.7 * 0.3 + 0.3 * 0.7) / 100), rel=1e-12)
    assert "unpaired SE 6.5 pt" in res.sentence and "paired SE 4.9 pt" in res.sentence
    assert "40 vs 0 discordant" in res.test and res.verdict == V.REPRODUCED
    assert V.compare_records(eval_record(b), eval_record(a)).verdict == V.NOT_REPRODUCED


def test_a_direction_needs_the_exact_test_and_the_interval_on_the_same_side():
    """Every split of up to 40 discordant images among 100: a directional verdict only when McNemar's
    exact test is significant and Newcombe's interval of the difference lies on that side of 0; the
    interval always holds the observed difference. At 5 vs 0 the test is not significant (p = 0.062)
    whatever an interval says."""
    for only_a in range(41):
        for only_b in range(41 - only_a):
            a, b = outcomes(30, only_a, only_b, 70 - only_a - only_b)
            res = V.compare_records(eval_record(a), eval_record(b), margin=0)
            assert res.ci[0] <= res.statistic <= res.ci[1]
            directional = res.p_value < 0.05 and (res.ci[0] > 0 or res.ci[1] < 0)
            assert directional == (res.verdict != V.INCONCLUSIVE_SCALE), (only_a, only_b, res.ci, res.p_value)
    five = V.compare_records(*(eval_record(v) for v in outcomes(30, 5, 0, 65)), margin=0)
    assert five.verdict == V.INCONCLUSIVE_SCALE and five.p_value == pytest.approx(2 * 0.5 ** 5)
    wald_low = five.statistic - V._z() * five.se
    assert wald_low > 0                                     # what the Wald interval would have claimed


def test_every_comparison_says_the_smallest_effect_it_could_have_detected():
    """Connor's (1987) sample size for paired proportions, by hand: the paper's CIFAR-100 gap of
    +1.34 pt at 10 % discordance needs [1.96·√0.1 + 0.8416·√(0.1 − 0.0134²)]² / 0.0134² ≈ 4,369
    paired images; 4,369 images detect 1.34 pt, fewer detect only more."""
    from energy_lib import power

    assert power.paired_n_needed(0.0134, 0.10) == pytest.approx(4368.8, abs=0.1)
    assert power.paired_mde(4369, 0.10) == pytest.approx(0.0134, abs=1e-5)
    assert power.paired_mde(1000, 0.10) > 0.0134 and power.paired_mde(1000, 0.05) < power.paired_mde(1000, 0.10)
    assert power.unpaired_mde(1000, 0.5) == pytest.approx((1.959964 + 0.841621) * np.sqrt(0.5 / 1000), rel=1e-5)
    a, b = outcomes(300, 55, 45, 600)                          # 10 % discordance, +1.0 pt
    res = V.compare_records(eval_record(a), eval_record(b))
    assert res.verdict == V.INCONCLUSIVE_SCALE and res.discordance == pytest.approx(0.10)
    assert res.mde == pytest.approx(power.paired_mde(1000, 0.10)) and "smallest true difference it would detect" in res.sentence
    assert "about 4,369 paired images at this discordance (10%); this build has 1,000" in res.power_text(0.0134)
    assert "detectable ≥" in res.statistic_text
    unpaired = V.compare_accuracy(0.5, 0.49, 1000)
    assert unpaired.mde == pytest.approx(power.unpaired_mde(1000, 0.495))
    # Newcombe's published example for independent samples (56/70 vs 48/80): 0.0524 to 0.3339
    assert power.newcombe_unpaired(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)


def test_a_direction_is_claimed_only_beyond_the_ranking_margin():
    """PAPER.md 5.3: ranking assertions only beyond 0.5 pt. 100 of 10,000 images right only for A
    and none only for B: +1.0 pt, far beyond the margin; 40 vs 0: +0.4 pt, significant but inside it."""
    far = V.compare_records(*(eval_record(v) for v in outcomes(5000, 100, 0, 4900)))
    assert far.verdict == V.REPRODUCED and far.ci[0] > V.RANKING_MARGIN
    near = V.compare_records(*(eval_record(v) for v in outcomes(5000, 40, 0, 4960)))
    assert near.p_value < 1e-11 and near.ci[0] > 0 and near.verdict == V.INCONCLUSIVE_SCALE
    assert V.compare_records(*(eval_record(v) for v in outcomes(5000, 0, 100, 4900))).verdict == V.NOT_REPRODUCED
    with pytest.raises(ValueError, match="margin"):
        V.compare_accuracy(0.5, 0.4, 100, margin=-0.01)


def test_concordant_images_leave_the_paired_noise_much_smaller_than_the_unpaired():
    # 1000 images, 500 right for both, 486 wrong for both, 12 only A, 2 only B
    a, b = outcomes(500, 12, 2, 486)
    res = V.compare_records(eval_record(a), eval_record(b))
    # McNemar exact by hand: P(X >= 12 or X <= 2), X ~ Bin(14, 1/2) = 2 (C(14,12) + C(14,13) + C(14,14)) / 2^14
    assert res.p_value == pytest.approx(2 * (91 + 14 + 1) / 2 ** 14, rel=1e-12)
    assert res.statistic == pytest.approx(0.01, abs=1e-15)
    assert res.se == pytest.approx(np.sqrt(14 - 1000 * 0.01 ** 2) / 1000, rel=1e-12)
    assert res.se_unpaired == pytest.approx(np.sqrt((0.512 * 0.488 + 0.502 * 0.498) / 1000), rel=1e-12)
    assert res.se_unpaired > 5 * res.se
    assert V.compare_records(eval_record(a), eval_record(b), margin=0).verdict == V.REPRODUCED   # p = 0.0129
    # significant on these images, but +1.0 pt whose interval starts below PAPER.md 5.3's 0.5 pt: one
    # trained model per method cannot tell it from training-seed noise
    assert res.ci[0] < V.RANKING_MARGIN and res.verdict == V.INCONCLUSIVE_SCALE
    assert "training-seed noise" in res.sentence
    # the same accuracies without per-image outcomes: the unpaired z-test cannot tell
    old = V.compare_records(eval_record(acc=0.512, n=1000), eval_record(acc=0.502, n=1000))
    assert not old.paired and old.se == pytest.approx(res.se_unpaired, rel=1e-12)
    assert old.verdict == V.INCONCLUSIVE_SCALE


def test_records_without_per_image_outcomes_fall_back_to_the_unpaired_test_and_say_so():
    a, b = outcomes(30, 10, 0, 60)
    old_b = eval_record(acc=0.3, n=100)
    for rec_a, rec_b, missing in ((eval_record(a), old_b, "record of TRADES holds"),
                                  (eval_record(acc=0.4, n=100), old_b, "records of WEAT_adv and TRADES hold")):
        res = V.compare_records(rec_a, rec_b, labels=("WEAT_adv", "TRADES"))
        assert not res.paired and res.test.startswith("two-proportion z-test (unpaired binomial SE; the record")
        assert f"the {missing} no per-image outcomes" in res.sentence
        assert "unpaired" in res.statistic_text
        assert res.statistic == pytest.approx(0.1) and res.se == pytest.approx(np.sqrt((0.4 * 0.6 + 0.3 * 0.7) / 100))
    paired = V.compare_records(eval_record(a), eval_record(b))
    assert paired.paired and "paired, McNemar" in paired.statistic_text


def test_records_of_other_images_or_inconsistent_outcomes_are_refused_in_one_line():
    a, b = outcomes(30, 10, 0, 60)
    for other in (eval_record(b, start=100), eval_record(np.concatenate([b, [1]]))):
        with pytest.raises(ValueError, match="different test images") as err:
            V.compare_records(eval_record(a), other)
        assert "\n" not in str(err.value)
    bad = eval_record(b)
    bad["accuracy"]["autoattack"] = 0.35                      # the outcomes count 30 %, the accuracy says 35 %
    with pytest.raises(ValueError, match="outcomes give 0.3000, its accuracy says 0.3500") as err:
        V.compare_records(eval_record(a), bad, labels=("WEAT_adv", "TRADES"))
    assert "\n" not in str(err.value) and "TRADES" in str(err.value)
    short = eval_record(b)
    short["correct"]["autoattack"] = short["correct"]["autoattack"][:-2]   # 96 of 100 images
    with pytest.raises(ValueError, match="holds 24 hex characters .* not the 26 of its 100 images"):
        V.compare_records(eval_record(a), short)


# ----------------------------------------------------------------------------- ΔE alarm
def test_alarm_fires_after_the_divergence_and_compares_with_pgd_selection():
    e = np.arange(1, 101)
    test = np.where(e <= 78, 0.5, 0.5 - 0.004 * (e - 78))
    for seed in range(10):
        alarm = V.delta_e_alarm(paper_phases(seed), test.copy(), test, 1000)
        assert alarm.fired and 79 <= alarm.alarm_epoch <= 90, (seed, alarm.sentence)
        assert alarm.selection_epoch == 1 and alarm.verdict in V.ALARM


def test_alarm_on_a_flat_curve_never_fires_and_keeps_the_last_epoch():
    d = np.full(30, -0.15) + np.linspace(0, 1e-3, 30)
    acc = np.linspace(0.3, 0.5, 30)
    alarm = V.delta_e_alarm(d, acc, acc, 200)
    # both keep the last epoch of a run without a decline: nothing is tested (issue 23 review)
    assert not alarm.fired and alarm.alarm_epoch == 30 and alarm.verdict == V.ALARM_UNTESTABLE


def test_pgd_validation_selects_on_the_validation_curve_and_keeps_the_earliest_tie():
    """Validation and test curves that peak at different epochs: the baseline the alarm is judged
    against picks its epoch on validation (epochs 4 and 9 tie: the earliest), and reads the test
    accuracy there, not the test curve's own best."""
    d = np.concatenate([np.full(20, -0.1), np.full(10, -1.0)])      # fires at epoch 23
    val = np.full(30, 0.30)
    val[[3, 8]] = 0.45
    test = np.full(30, 0.40)
    test[3], test[16] = 0.42, 0.60
    alarm = V.delta_e_alarm(d, val, test, 1000)
    assert alarm.selection_epoch == 4 and alarm.acc_selection == pytest.approx(0.42)
    assert alarm.alarm_epoch == 23 and alarm.acc_alarm == pytest.approx(0.40) and alarm.acc_last == pytest.approx(0.40)


def test_as_good_as_pgd_validation_needs_an_equivalence_test():
    """Issue 23, point 5: "as good as" only when TOST shows equivalence within ±1.5 pt; an
    inconclusive comparison is "no detectable difference", with what it could have detected."""
    d = np.concatenate([np.full(20, -0.1), np.full(10, -1.0)])      # fires at epoch 23
    val = np.linspace(0.3, 0.5, 30)                                 # PGD validation picks epoch 30
    correct = np.zeros((30, 5000), bool)
    correct[:, :2500] = True
    correct[22, 2500:2510] = True                                   # alarm epoch: 10 images gained,
    correct[22, :10] = False                                        # 10 lost: the same accuracy
    test = correct.mean(1)
    same = V.delta_e_alarm(d, val, test, 5000, test_correct=correct)
    assert same.fired and same.alarm_epoch == 23 and same.selection_epoch == 30
    assert same.verdict == V.ALARM_AS_GOOD and "TOST" in same.sentence and same.comparison.paired
    small = V.delta_e_alarm(d, val, test, 200)                      # the same curves on 200 images, unpaired
    assert small.verdict == V.ALARM_UNDECIDED and "smallest difference it would detect" in small.sentence
    worse = correct.copy()
    worse[22, :300] = False                                        # alarm epoch: 6 pt worse on the same images
    res = V.delta_e_alarm(d, val, worse.mean(1), 5000, test_correct=worse)
    assert res.verdict == V.ALARM_WORSE


def test_alarm_that_stops_early_on_a_rising_curve_is_worse():
    d = np.concatenate([np.full(10, -0.1), np.full(20, -1.0)])
    acc = np.linspace(0.1, 0.6, 30)
    alarm = V.delta_e_alarm(d, acc, acc, 2000, warmup=0.25)
    assert alarm.fired and alarm.alarm_epoch == 13 and alarm.verdict == V.ALARM_WORSE


# ----------------------------------------------------------------------------- WEAT weights, summary rows
def test_weight_contrast_verdicts():
    r = np.random.default_rng(0)
    correct = r.random(400) < 0.6
    w = np.where(correct, 0.1, 0.3) + r.normal(0, 0.01, 400)
    assert V.weight_contrast(w, correct).verdict == V.PRESENT
    assert V.weight_contrast(w, ~correct).verdict == V.ABSENT
    assert V.weight_contrast(w[:3], correct[:3]).verdict == V.INCONCLUSIVE


def test_reproduction_mapping_and_summary_rows():
    assert V.reproduction(V.PRESENT) == V.REPRODUCED
    assert V.reproduction(V.ABSENT) == V.NOT_REPRODUCED
    assert V.reproduction(V.INCONCLUSIVE) == V.INCONCLUSIVE_SCALE
    assert V.reproduction(V.ABSENT, expected=V.ABSENT) == V.REPRODUCED
    co = V.catastrophic_overfitting(planted_co(0), 200)
    row = co.summary("CO in single-step AT", "2.3", "PGD accuracy 42 % -> 0 %", V.reproduction(co.verdict))
    assert row["verdict"] == V.REPRODUCED and "epoch 16" in row["this build"]
    with pytest.raises(ValueError, match="reproduction"):
        co.summary("x", "2.3", "y")            # a PRESENCE verdict is not a reproduction verdict


def test_summary_records_round_trip_and_missing_chapters_show_not_run(tmp_path):
    from energy_lib import tables

    co = V.catastrophic_overfitting(planted_co(0), 200)
    row = co.summary("CO in single-step AT", "2.3", "42 % -> 0 % within an epoch", V.reproduction(co.verdict))
    path = tables.write_summary("02_at_phases", [row], "smoke", root=tmp_path)
    assert path == tmp_path / "summary" / "smoke" / "02_at_phases.json"
    table = tables.summary_table([row])
    assert table.loc["CO in single-step AT (PAPER.md 2.3)", "verdict"] == V.REPRODUCED
    front = tables.book_summary("smoke", root=tmp_path)
    verdicts = front["verdict"].to_dict()
    assert verdicts[("Phases of adversarial training", "CO in single-step AT (PAPER.md 2.3)")] == V.REPRODUCED
    assert verdicts[("TRADES as an EBM", "—")] == V.NOT_RUN
    assert tables.verdict_counts(front) == {V.NOT_RUN: len(tables.SUMMARY_CHAPTERS) - 1, V.REPRODUCED: 1}
    # identities and sanity checks are counted apart from the reproductions
    sanity = co.summary("SGLD lowers E(x, y)", "2.8", "lower energy", V.REPRODUCED, kind=tables.SANITY)
    tables.write_summary("05_generation", [sanity], "smoke", root=tmp_path)
    front = tables.book_summary("smoke", root=tmp_path)
    assert tables.verdict_counts(front)[V.REPRODUCED] == 1
    assert tables.verdict_counts(front, tables.SANITY) == {V.REPRODUCED: 1}
    with pytest.raises(ValueError, match="kind"):
        tables.write_summary("05_generation", [{**sanity, "kind": "vibes"}], "smoke", root=tmp_path)
    assert tables.book_summary("default", root=tmp_path)["verdict"].eq(V.NOT_RUN).all()   # per profile
    with pytest.raises(ValueError, match="SUMMARY_CHAPTERS"):
        tables.write_summary("99_nope", [row], "smoke", root=tmp_path)
    with pytest.raises(ValueError, match="keys"):
        tables.write_summary("02_at_phases", [{"claim": "x"}], "smoke", root=tmp_path)


# ----------------------------------------------------------------------------- sign of a mean shift
def test_mean_shift_on_the_expected_side_is_reproduced():
    shifts = np.random.default_rng(0).normal(-1.0, 0.5, 64)       # 14 SE below 0
    r = V.mean_shift(shifts, -1, what="E(x*) − E(x)")
    assert r.verdict == V.REPRODUCED and r.ci[1] < 0 and r.n == 64
    assert V.mean_shift(-shifts, +1).verdict == V.REPRODUCED


def test_mean_shift_on_the_other_side_is_not_reproduced():
    shifts = np.random.default_rng(1).normal(1.0, 0.5, 64)
    assert V.mean_shift(shifts, -1).verdict == V.NOT_REPRODUCED
    assert V.mean_shift(-shifts, +1).verdict == V.NOT_REPRODUCED


@pytest.mark.parametrize("sign", [-1, 1])
def test_zero_shift_is_inconclusive(sign):
    exact_zero = np.zeros(50)
    assert V.mean_shift(exact_zero, sign).verdict == V.INCONCLUSIVE_SCALE
    symmetric = np.tile([-1.0, 1.0], 50)                         # mean exactly 0, spread 1
    r = V.mean_shift(symmetric, sign)
    assert r.verdict == V.INCONCLUSIVE_SCALE and r.ci[0] < 0 < r.ci[1] and r.statistic == 0.0
    assert V.mean_shift([0.3], sign).verdict == V.INCONCLUSIVE_SCALE          # one value: no noise estimate


def test_mean_shift_makes_a_summary_row_and_rejects_a_missing_sign():
    row = V.mean_shift(np.linspace(0.5, 1.5, 20), +1).summary("claim", "2.1", "E(x*) > E(x)")
    assert row["verdict"] == V.REPRODUCED and "[+" in row["this build"]
    with pytest.raises(ValueError, match="expected_sign"):
        V.mean_shift([1.0, 2.0], 0)


def test_share_above_a_half_uses_the_wilson_interval():
    all_fail = np.zeros(10)                                       # 0 of 10: Wilson [0, 0.28] lies below 1/2
    r = V.mean_shift(all_fail, +1, share_null=0.5)
    assert r.verdict == V.NOT_REPRODUCED and r.statistic == -0.5 and r.ci[1] < 0
    assert V.mean_shift(np.ones(10), +1, share_null=0.5).verdict == V.REPRODUCED
    assert V.mean_shift(np.ones(2), +1, share_null=0.5).verdict == V.INCONCLUSIVE_SCALE   # 2 of 2: too few
    assert V.mean_shift(np.tile([0.0, 1.0], 20), +1, share_null=0.5).verdict == V.INCONCLUSIVE_SCALE
    with pytest.raises(ValueError, match="indicator"):
        V.mean_shift([0.2, 0.9], +1, share_null=0.5)


def test_shift_trend_found_only_when_every_larger_budget_moves_it():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 200)
    growing = {2: base - 1, 4: base - 2 + rng.normal(0, 0.1, 200), 8: base - 3 + rng.normal(0, 0.1, 200)}
    assert V.shift_trend(growing, -1, what="E(x*) − E(x)").verdict == V.REPRODUCED
    assert V.shift_trend(growing, +1).verdict == V.NOT_REPRODUCED
    # flat at the last step (pure noise around the same value): not every step moves
    flat_end = {**growing, 8: growing[4] + rng.normal(0, 0.5, 200)}
    assert V.shift_trend(flat_end, -1).verdict == V.INCONCLUSIVE_SCALE
    # the same values at every budget (no trend at all) over 20 seeds: never a trend either way
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(0, 1, (3, 100))
        assert V.shift_trend({2: noise[0], 4: noise[1], 8: noise[2]}, -1).verdict != V.REPRODUCED
    # the budgets in the sentence: as given (3 significant figures) or in the caller's own form
    assert "2 -> 4: " in V.shift_trend(growing, -1).sentence
    assert "2/255 -> 4/255: " in V.shift_trend(growing, -1, budget_text=lambda b: f"{b:g}/255").sentence
    single = V.shift_trend({8: base}, -1)
    assert single.verdict == V.INCONCLUSIVE_SCALE and "single budget" in single.sentence
    with pytest.raises(ValueError, match="same items"):
        V.shift_trend({2: base, 4: base[:10]}, -1)


def test_shift_trend_calls_a_reversal_only_beyond_the_bonferroni_corrected_noise():
    """Two steps: the first moves the expected way (−1 on every item), the second back by 2.1 standard
    errors, which is beyond the 95 % noise of one step but within the 97.5 % (Bonferroni over two
    steps) that "some step goes the other way" needs: inconclusive, not "not reproduced"."""
    z = np.random.default_rng(0).normal(size=400)
    z = (z - z.mean()) / z.std()
    back = 2.1 / np.sqrt(400) + z                        # mean 0.105, SE 0.05
    trend = V.shift_trend({2: np.zeros(400), 4: np.full(400, -1.0), 8: np.full(400, -1.0) + back}, -1)
    assert trend.steps[0].verdict == V.REPRODUCED
    assert trend.steps[1].verdict == V.NOT_REPRODUCED and trend.steps[1].ci[0] > 0   # alone: beyond its noise
    assert trend.verdict == V.INCONCLUSIVE_SCALE
    stronger = V.shift_trend({2: np.zeros(400), 4: np.full(400, -1.0), 8: np.full(400, -1.0) + back + 0.1}, -1)
    assert stronger.verdict == V.NOT_REPRODUCED                                      # 4 SE back: a reversal


def test_shift_trend_pairs_series_by_item_id_not_by_position():
    """Chapter 1 passes per-image Series keyed by image id: a budget stored in another order is the
    same pairing; a budget with other images is refused."""

    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 100)
    by_id = {2: pd.Series(base - 1), 4: pd.Series(base - 2 + rng.normal(0, 0.1, 100))}
    shuffled = {2: by_id[2], 4: by_id[4].sample(frac=1.0, random_state=0)}
    # the same pairs in the same order (the first budget's), hence the same bootstrap interval exactly
    assert V.shift_trend(shuffled, -1).steps[0].ci == V.shift_trend(by_id, -1).steps[0].ci
    assert V.shift_trend(shuffled, -1).verdict == V.REPRODUCED
    # by position, the shuffled budget would pair different images: a different (much noisier) step
    positional = {b: v.to_numpy() for b, v in shuffled.items()}
    assert V.shift_trend(positional, -1).steps[0].ci != V.shift_trend(by_id, -1).steps[0].ci
    with pytest.raises(ValueError, match="not a mix"):
        V.shift_trend({2: by_id[2], 4: positional[4]}, -1)
    other_images = {2: by_id[2], 4: pd.Series(base - 2, index=range(1, 101))}
    with pytest.raises(ValueError, match="different or repeated item ids"):
        V.shift_trend(other_images, -1)
    repeated = {2: by_id[2], 4: pd.Series(base - 2, index=[0] * 100)}
    with pytest.raises(ValueError, match="different or repeated item ids"):
        V.shift_trend(repeated, -1)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 200])
def test_bits_round_trip_exactly(n):
    from energy_lib import bits

    values = (np.arange(n) * 7919 % 3 == 0).astype(np.uint8)
    text = bits.pack(values)
    assert len(text) == 2 * -(-n // 8) and np.array_equal(bits.unpack(text, n), values)
    with pytest.raises(ValueError, match="0/1"):
        bits.pack([0, 2])
    with pytest.raises(ValueError, match="not the"):
        bits.unpack(text, 8 * len(text) + 1)


def test_robust_overfitting_of_a_run_is_paired_when_it_tracked_test_images():
    """With the packed per-image correctness of a run's metrics the RO noise is the paired
    bootstrap over images (a stable model: absent); without it, the conservative unpaired SE."""

    from energy_lib import bits

    r = np.random.default_rng(0)
    robust = r.random(5000) < 0.5
    correct = np.tile(robust, (30, 1)) ^ (r.random((30, 5000)) < 0.01)
    acc = correct.mean(1)
    metrics = pd.DataFrame({"epoch": np.arange(1, 31), "test_acc_adv": acc, "val_acc_adv": acc[::-1].copy(),
                            "test_correct_adv": [bits.pack(c) for c in correct]})
    paired = V.robust_overfitting_of(metrics, 5000)
    assert paired.se == V.robust_overfitting(acc, 5000, val_acc=acc[::-1].copy(), test_correct=correct).se
    assert paired.verdict == V.ABSENT
    unpaired = V.robust_overfitting_of(metrics.drop(columns="test_correct_adv"), 5000)
    assert unpaired.verdict == V.INCONCLUSIVE and unpaired.se > 3 * paired.se


def test_paired_ro_noise_is_never_zero_by_construction():
    """The best window at the end (validation still rising): last and best windows coincide, the
    paired differences are 0 by construction; the unpaired noise keeps the verdict honest."""
    r = np.random.default_rng(1)
    correct = (r.random((30, 200)) < np.linspace(0.2, 0.4, 30)[:, None]).astype(float)
    acc = correct.mean(1)
    ro = V.robust_overfitting(acc, 200, val_acc=np.linspace(0.1, 0.5, 30), test_correct=correct)
    assert ro.best_window == ro.last_window and ro.se > 0.01 and ro.verdict == V.INCONCLUSIVE


def test_a_finding_is_replicated_only_when_every_run_shows_it():
    assert V.replicated({"s10": V.PRESENT, "s11": V.PRESENT}, "CO").verdict == V.REPRODUCED
    assert V.replicated({"s10": V.ABSENT, "s11": V.ABSENT}, "CO").verdict == V.NOT_REPRODUCED
    mixed = V.replicated({"s10": V.PRESENT, "s11": V.ABSENT, "s12": V.INCONCLUSIVE}, "CO")
    assert mixed.verdict == V.INCONCLUSIVE_SCALE
    # every sentence names its finding (a list of several findings must not lose which one disagrees)
    assert mixed.sentence.startswith("CO: the runs disagree (1 present, 1 absent, 1 inconclusive) (s10: present")
    # one direction and an unreadable run: no verdict, and the sentence does not call it a disagreement
    partial = V.replicated({"s10": V.ABSENT, "s11": V.INCONCLUSIVE, "s12": V.ABSENT}, "CO")
    assert partial.verdict == V.INCONCLUSIVE_SCALE and "disagree" not in partial.sentence
    assert partial.sentence.startswith("CO: absent in 2 of the 3 runs and inconclusive in the other 1, so not every "
                                       "run speaks (s10: absent")
    partial = V.replicated({"s10": V.PRESENT, "s11": V.INCONCLUSIVE}, "CO")
    assert partial.verdict == V.INCONCLUSIVE_SCALE and partial.sentence.startswith("CO: present in 1 of the 2 runs")
    one = V.replicated({"s10": V.PRESENT}, "CO")
    assert one.verdict == V.INCONCLUSIVE_SCALE                                            # one seed is no replication
    assert one.sentence.startswith("CO: 1 run(s) read, fewer than the 2 a replication needs (s10: present)")
    none = V.replicated({"s10": V.INCONCLUSIVE, "s11": V.INCONCLUSIVE}, "CO")
    assert none.verdict == V.INCONCLUSIVE_SCALE and "cannot be read in any of the 2 runs" in none.sentence
    assert V.replicated({}, "CO").statistic_text == "0 of 0 runs present"
    der = V.replicated({"s10": V.REPRODUCED, "s11": V.REPRODUCED}, "DER prevents CO", expected=V.REPRODUCED,
                       opposite=V.NOT_REPRODUCED)
    assert der.verdict == V.REPRODUCED and der.statistic_text == "2 of 2 runs reproduced"


def test_alignment_under_the_common_test_attack_reads_its_own_column():
    """Issue 23, point 6: SAT and TRADES compared under each one's own training attack (the paper's
    reading) and under the common test attack; a planted record where the gap halves under the
    common attack (as measured: SAT -0.029 vs TRADES -0.012 under PGD, -0.037 vs +0.003 under their own)."""
    rows = []
    for method, own, common in (("SAT", -0.037, -0.029), ("TRADES", 0.003, -0.012)):
        for epoch in (1, 2, 3, 4):
            for sample in range(40):
                wiggle = 0.002 * ((sample % 5) - 2)
                rows.append({"method": method, "epoch": epoch, "sample": sample, "dE": own + wiggle,
                             "dE_pgd": common + wiggle})
    frame = pd.DataFrame(rows)
    s = {m: frame[frame["method"] == m] for m in ("SAT", "TRADES")}
    own = V.energy_alignment(V.late_delta_e(s["SAT"]), V.late_delta_e(s["TRADES"]))
    common = V.energy_alignment(V.late_delta_e(s["SAT"], column="dE_pgd"), V.late_delta_e(s["TRADES"], column="dE_pgd"),
                                attack="the common test attack")
    assert own.statistic == pytest.approx(0.034) and common.statistic == pytest.approx(0.017)
    assert "under the common test attack" in common.sentence and "own training attack" in own.sentence
    assert own.mde > 0 and common.mde > 0


def test_scores_are_compared_with_their_spread():
    """Chapter 5's PCA vs noise KID: a lower point estimate is not a verdict; the difference must
    exceed 1.96·√(sd_a² + sd_b²)."""
    assert V.compare_scores(0.05, 0.01, 0.10, 0.01, labels=("PCA", "noise")).verdict == V.REPRODUCED
    near = V.compare_scores(0.09, 0.01, 0.10, 0.01, labels=("PCA", "noise"))
    assert near.verdict == V.INCONCLUSIVE_SCALE and near.halfwidth == pytest.approx(1.959964 * np.sqrt(2) * 0.01, rel=1e-5)
    # what it rules out: (z_0.975 + z_0.8) · √2 · 0.01 = 0.0396
    assert near.sentence.endswith("the difference is within the noise; the smallest true difference it would detect "
                                  "is 0.0396 (80% power, 5% level)")
    assert V.compare_scores(0.15, 0.01, 0.10, 0.01).verdict == V.NOT_REPRODUCED
    one_subset = V.compare_scores(0.05, 0.0, 0.50, 0.0)          # KID of one subset: no spread, no verdict
    assert one_subset.verdict == V.INCONCLUSIVE_SCALE and "no spread estimate" in one_subset.sentence


def test_delta_energy_diverges_at_a_collapse_only_when_it_jumps():
    """P2: ΔE(x) diverges when CO occurs. Planted half-epoch points: a collapse at 2.5 with ΔE(x)
    −0.01 -> +1.3 is a divergence; the
    same collapse with ΔE unchanged is not; a run without collapse has nothing to read. "Right after
    the onset" is the largest |ΔE| within one epoch of the first collapsed point."""
    progress = np.arange(1, 13) / 2
    robust = np.r_[[0.11, 0.14, 0.15, 0.15], np.zeros(8)]
    co = V.catastrophic_overfitting(robust, 1000, progress)
    assert co.verdict == V.PRESENT and co.onset == 2.5
    jump = pd.DataFrame({"progress": progress, "train_dE_mean": np.r_[np.full(4, -0.01), np.full(8, 1.3)],
                         "train_dE_std": 0.05})
    div = V.energy_divergence_at_onset(jump, co, 1000)
    assert div.verdict == V.REPRODUCED and div.statistic == pytest.approx(1.29) and "collapse at 2.5" in div.sentence
    # the probes' shape: at the collapsed point ΔE has barely moved (−0.066), half an epoch later +1.34
    later = jump.assign(train_dE_mean=np.r_[np.full(4, -0.014), [-0.066, 1.34], np.full(6, 4.0)])
    res = V.energy_divergence_at_onset(later, co, 1000)
    assert res.verdict == V.REPRODUCED and res.after == 4.0 and "(epoch 3.5," in res.sentence
    flat = jump.assign(train_dE_mean=-0.01)
    assert V.energy_divergence_at_onset(flat, co, 1000).verdict == V.INCONCLUSIVE_SCALE
    shrink = jump.assign(train_dE_mean=np.r_[np.full(4, -0.5), np.full(8, -0.01)])
    assert V.energy_divergence_at_onset(shrink, co, 1000).verdict == V.NOT_REPRODUCED
    none = V.catastrophic_overfitting(np.full(12, 0.15), 1000, progress)
    assert V.energy_divergence_at_onset(jump, none, 1000).verdict == V.INCONCLUSIVE_SCALE


def test_a_divergence_must_exceed_the_drift_before_the_onset():
    """The jump at the onset must beat every earlier change of |ΔE| (training drifts ΔE too)."""
    progress = np.arange(1, 13) / 2
    co = V.catastrophic_overfitting(np.r_[[0.11, 0.14, 0.15, 0.15], np.zeros(8)], 1000, progress)
    drifting = pd.DataFrame({"progress": progress, "train_dE_std": 0.05,
                             "train_dE_mean": np.r_[[-0.01, -0.31, -0.01, -0.02], np.full(8, 0.2)]})
    res = V.energy_divergence_at_onset(drifting, co, 1000)
    assert res.statistic == pytest.approx(0.18) and res.verdict == V.INCONCLUSIVE_SCALE
    assert "largest earlier change of 0.300" in res.sentence


def test_undetected_phases_are_not_evidence_against_them():
    """RO present, but the ΔE curve's phases drown in autocorrelated noise and no simpler curve beats
    a three-phase fit by the margin: inconclusive, not 'not reproduced' (a clean line stays 'not')."""
    r = np.random.default_rng(0)            # seeds 0-9: only seed 3 finds the phases at this noise
    z = np.zeros(100)
    for i in range(100):
        z[i] = (0.8 * z[i - 1] if i else 0.0) + r.normal(0, 0.012)
    noisy = np.interp(np.arange(1, 101), [0, 10, 78, 100], [0, -0.15, -0.3, -0.75]) + z
    fit = V.phase_structure(noisy)
    assert fit.verdict != V.THREE_PHASES
    assert V.phases_reproduced(fit, _ro(V.PRESENT)).verdict == V.INCONCLUSIVE_SCALE
    line = V.phase_structure(-0.003 * np.arange(100) + np.random.default_rng(0).normal(0, 0.01, 100))
    assert V.phases_reproduced(line, _ro(V.PRESENT)).verdict == V.NOT_REPRODUCED


def test_a_claim_of_at_least_one_point_needs_the_interval_on_its_side_of_one_point():
    a, b = outcomes(4000, 300, 100, 5600)                       # +2.0 pt on 10,000 images
    big = V.at_least(V.compare_records(eval_record(a), eval_record(b)), 0.01, "SAT + DER ≥ SAT + 1 pt")
    assert big.verdict == V.REPRODUCED and "for the claim SAT + DER ≥ SAT + 1 pt" in big.sentence
    a, b = outcomes(4000, 110, 90, 5800)                        # +0.2 pt, interval well below +1 pt
    small = V.at_least(V.compare_records(eval_record(a), eval_record(b)), 0.01, "x")
    assert small.ci[1] < 0.01 and small.verdict == V.NOT_REPRODUCED
    a, b = outcomes(40, 6, 4, 50)                               # +2 pt on 100 images: cannot tell
    unsure = V.at_least(V.compare_records(eval_record(a), eval_record(b)), 0.01, "x")
    assert unsure.verdict == V.INCONCLUSIVE_SCALE
    # ... and says what it could have detected and what the claimed +1 pt would need (10 % discordance)
    need = math.ceil(power.paired_n_needed(0.01, 0.10))
    assert unsure.sentence.endswith(f"the interval contains +1.0 pt; the smallest true difference it would detect is "
                                    f"{power.mde_text(unsure.mde)} (80% power, 5% level); a true gain of +1.0 pt needs "
                                    f"about {need:,} paired images at this discordance (10%); this build has 100")


def test_absence_needs_training_after_the_best_window():
    """A flat curve whose validation-best window ends at 90 % of training: 'absent' would be forced by
    the schedule (nothing left to decline), so it is not testable."""
    n = 30
    correct = np.zeros((n, 2000), bool)
    correct[:, :800] = True
    val = np.r_[np.linspace(0.2, 0.38, 24), [0.4, 0.41, 0.4], [0.3, 0.3, 0.3]]   # best window: epochs 25-27
    ro = V.robust_overfitting(correct.mean(1), 2000, val_acc=val, test_correct=correct)
    assert ro.best_window == (25, 27) and ro.last_window == (28, 30)
    assert ro.verdict == V.INCONCLUSIVE and ro.untestable.startswith("the best window ends at 90% of training")
    early = np.r_[np.linspace(0.2, 0.4, 10), np.full(20, 0.38)]               # best window ends at epoch 11
    assert V.robust_overfitting(correct.mean(1), 2000, val_acc=early, test_correct=correct).verdict == V.ABSENT


def test_the_smallest_detectable_correlation_follows_fishers_z():
    # tanh((z_0.95 + z_0.8) / √(n − 3)) one-sided; tanh((z_0.975 + z_0.8) / √27) two-sided at n = 30
    assert power.correlation_mde(7) == pytest.approx(math.tanh((1.6448536 + 0.8416212) / 2), rel=1e-6)
    assert power.correlation_mde(30, one_sided=False) == pytest.approx(math.tanh(2.8015852 / math.sqrt(27)), rel=1e-6)
    assert math.isnan(power.correlation_mde(3))


def test_power_respects_that_a_difference_cannot_exceed_the_discordance():
    from energy_lib import power

    assert power.paired_n_needed(0.2, 0.1) == np.inf          # |b − c| / n ≤ (b + c) / n
    assert power.paired_mde(32, 0.1) == np.inf and power.mde_text(np.inf).startswith("none with this many images")
    assert power.mde_text(float("nan")).startswith("not estimable")
    # without association (φ = 0) the paired interval is the independent one
    assert power.newcombe_paired(25, 25, 25, 25) == pytest.approx(power.newcombe_unpaired(50, 100, 50, 100))


def test_adaptive_stopping_is_judged_on_the_chains_that_start_outside_the_band():
    """Known answers, read from the sampler's own stop steps: chains frozen at step 0 started within
    √τ of Ē_y and are left out; with fewer than 10 others the check is 'cannot tell', never a pass;
    'no' when most others never reach the band."""
    steps = 50
    # 97 chains frozen at step 0 (the case of chapter 5's PCA start): nothing to test
    vacuous = V.adaptive_stop_landing(np.r_[np.zeros(97, int), np.full(3, steps)], steps)
    assert vacuous.verdict == V.INCONCLUSIVE_SCALE and vacuous.landed is None
    assert vacuous.sentence.startswith("97 of 100 chains (97%) start within √τ of Ē_y (the rule stops them at step 0)")
    assert vacuous.statistic_text == "not testable: 97 of 100 chains start within √τ (n = 100)"
    # exactly the minimum of 10 moving chains is enough for a verdict, 9 are not
    assert V.adaptive_stop_landing(np.r_[np.zeros(90, int), np.full(10, 7)], steps).verdict == V.REPRODUCED
    assert V.adaptive_stop_landing(np.r_[np.zeros(91, int), np.full(9, 7)], steps).landed is None
    # 60 start outside: 55 of them stop (a share of 0.92, Wilson interval above one half)
    landed = V.adaptive_stop_landing(np.r_[np.zeros(40, int), np.full(55, 12), np.full(5, steps)], steps)
    assert landed.verdict == V.REPRODUCED and landed.landed.n == 60
    assert landed.landed.statistic == pytest.approx(55 / 60 - 0.5, abs=1e-12)
    assert "of the 60 that start outside it, 55 (92%) reach it and stop before step 50" in landed.sentence
    assert landed.statistic_text == "40 of 100 chains start within √τ; of the other 60, 92% stop within it [82%, 96%]"
    # the 40 that start inside would make a miss look like a pass: 10 of the 60 reach the band (17 %),
    # so most do not, although 50 of all 100 chains end stopped
    missed = V.adaptive_stop_landing(np.r_[np.zeros(40, int), np.full(10, 12), np.full(50, steps)], steps)
    assert missed.verdict == V.NOT_REPRODUCED
    # half of them: the interval holds one half, so it cannot tell
    half = V.adaptive_stop_landing(np.r_[np.zeros(40, int), np.full(30, 12), np.full(30, steps)], steps)
    assert half.verdict == V.INCONCLUSIVE_SCALE and half.landed is not None
    with pytest.raises(ValueError, match="outside \\[0, 50\\]"):
        V.adaptive_stop_landing(np.array([0, 51]), steps)
