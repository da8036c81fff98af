"""Comparisons of accuracies, records and scores, and the small readers and notes around verdicts, on
planted inputs whose every figure is known by hand: McNemar and Newcombe on planted 2x2 tables, the
unpaired test, significance and margins read strictly, records refused by name, summary rows."""
import math

import numpy as np
import pytest
from scipy import stats

from energy_lib import verdicts as V
from energy_lib.power import newcombe_paired, newcombe_unpaired, paired_mde, unpaired_mde
from verdict_inputs import eval_record, outcomes


# ----------------------------------------------------------------------------- accuracy comparisons, exactly
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


# ----------------------------------------------------------------------------- records compared (chapter 4)
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


# ----------------------------------------------------------------------------- notes, identities, replication
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


def test_reproduction_refuses_what_is_not_a_presence_verdict():
    with pytest.raises(ValueError) as err:
        V.reproduction(V.REPRODUCED)
    assert str(err.value) == f"verdict 'reproduced' / expected 'present': use one of {V.PRESENCE}"
    with pytest.raises(ValueError):
        V.reproduction(V.PRESENT, expected=V.INCONCLUSIVE)


def test_nothing_found_is_said_without_an_empty_list():
    assert V.replicated({}, "CO").sentence == "CO: 0 run(s) read, fewer than the 2 a replication needs"
