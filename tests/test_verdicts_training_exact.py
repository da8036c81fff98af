"""Verdicts on training curves, on planted inputs whose every figure is known by hand: robust and
catastrophic overfitting, the phases of the ΔE(x) curve, the ΔE alarm, ΔE at the CO onset and DER
preventing CO. The protocols are written out a second way (windows by hand, Wilson and McNemar on
planted tables, each breakpoint fitted on its own); boundaries are planted exactly."""
import math
import re

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from energy_lib import verdicts as V
from energy_lib.power import mde_from_se
from verdict_inputs import protocol_bootstrap


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


def test_the_alarm_of_a_runs_metrics_reads_its_columns_and_pairs_its_images():
    """`delta_e_alarm_of` is `delta_e_alarm` on a run's columns: the noise floor is train_dE_std / √n_train
    (std 4 on 64 images: floor 0.5, which hides the drop, as above), and the comparison is paired
    exactly when every epoch recorded which tracked test images were robust."""
    import pandas as pd

    from energy_lib import bits

    n_test, n_train = 40, 64
    correct = np.zeros((20, n_test), dtype=bool)
    correct[:, :12] = True                                                  # 30 % robust at every epoch
    frame = pd.DataFrame({"epoch": np.arange(1, 21), "train_dE_mean": dropping_at(12), "train_dE_std": 0.0,
                          "val_acc_adv": FLAT, "test_acc_adv": correct.mean(1),
                          "test_correct_adv": [bits.pack(c) for c in correct]})
    a = V.delta_e_alarm_of(frame, n_test, n_train)
    by_hand = V.delta_e_alarm(dropping_at(12), FLAT, correct.mean(1), n_test, np.arange(1, 21),
                              noise_floor=np.zeros(20), test_correct=correct)
    assert (a.sentence, a.comparison.sentence, a.comparison.ci) == (by_hand.sentence, by_hand.comparison.sentence,
                                                                    by_hand.comparison.ci)
    assert (a.fired, a.alarm_epoch, a.selection_epoch, a.comparison.paired) == (True, 15, 1, True)
    assert V.delta_e_alarm_of(frame.assign(train_dE_std=4.0), n_test, n_train).fired is False
    assert V.delta_e_alarm_of(frame.assign(train_dE_std=0.05), n_test, n_train).fired is True   # floor 0.05 / 8
    assert V.delta_e_alarm_of(frame.assign(epoch=np.arange(101, 121)), n_test, n_train).alarm_epoch == 115
    assert (V.alarm_start(20), V.alarm_start(40), V.alarm_start(41)) == (5, 10, 11)   # after 25 %, >= the window
    unpaired = V.delta_e_alarm_of(frame.drop(columns="test_correct_adv"), n_test, n_train)
    assert unpaired.comparison.paired is False and unpaired.alarm_epoch == 15
    older = frame.astype({"test_correct_adv": object})
    older.loc[3, "test_correct_adv"] = None                                 # one epoch without the record
    assert V.delta_e_alarm_of(older, n_test, n_train).comparison.paired is False


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


def test_a_run_robust_only_after_its_first_epoch_is_robust():
    """No collapse; the first epoch has 0 % but the peak (35 %) is significantly above 0: not 'never robust'."""
    r = co([0.0, 0.30, 0.35, 0.33], 1000)
    assert (r.verdict, r.onset) == (V.ABSENT, None)


def test_a_drop_within_noise_then_beyond_it_begins_where_it_is_beyond():
    """20 images: 10 % has an interval overlapping the 45 % peak's, 0 % does not: the onset is the 0 %."""
    r = co([0.1, 0.45, 0.45, 0.10, 0.0, 0.0], 20)
    assert (r.verdict, r.onset) == (V.PRESENT, 5)


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
    assert V._lag1(np.arange(1.0, 7.0)) == 0.5                          # centred: 8.75 / 17.5
    assert V._lag1(np.tile([1.0, 2.0], 5) + 10.0) == 0.0                # about its own mean, not about zero


def test_residuals_below_the_rss_floor_are_rounding_whatever_their_pattern():
    """A wiggle of 1e-10 on a line: its residuals' mean square (4e-21) is under the floor (6e-19), so they
    are read as rounding (no autocorrelation, all 30 epochs) although their lag-1 autocorrelation is 0.53."""
    k = np.arange(1, 31)
    r = V.phase_structure(0.5 - 0.01 * k + 1e-10 * np.sin(k))
    assert r.verdict == V.NO_PHASES
    assert "; residual autocorrelation 0.00, so 30 effectively independent epochs of 30): " in r.sentence


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
    floor = (1e-9 * (np.ptp(y) + np.abs(y).max() + 1e-12)) ** 2
    rho = min(max((r[1:] @ r[:-1]) / (r @ r), 0.0), 0.95) if rich @ rich / n > floor else 0.0
    n_eff = max(2.0, n * (1 - rho) / (1 + rho))
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
    rounding residuals carry no autocorrelation (theirs depends on the BLAS), so n_eff is all 30 epochs
    and the BICs differ by their penalties alone: the line's is 30 ln(floor) + 3 ln(30), each other model's
    (p + 2 knots + 1) ln(30)."""
    y = 0.5 - 0.01 * np.arange(1, 31)
    r = V.phase_structure(y)
    floor = (1e-9 * (np.ptp(y) + np.abs(y).max() + 1e-12)) ** 2
    line = 30 * math.log(floor) + 3 * math.log(30)
    extra = {"line": 0, "one": 3, "two": 6, "poly2": 1, "poly3": 2, "poly4": 3, "poly5": 4}
    assert r.verdict == V.NO_PHASES and r.bic.keys() == extra.keys()
    assert all(abs(r.bic[m] - (line + k * math.log(30))) <= 0.005 + 1e-9 for m, k in extra.items())   # 2 decimals
    assert r.sentence.startswith("one straight line (slope -0.0100 per epoch) describes the curve as well as models "
                                 "with breakpoints or smooth bends once their extra parameters are paid for (BIC: line ")
    assert "; residual autocorrelation 0.00, so 30 effectively independent epochs of 30): " in r.sentence


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


SMOOTH = {"poly2": 100.0, "poly3": 100.0, "poly4": 100.0, "poly5": 100.0}


@pytest.mark.parametrize("line, one, two, chosen", [
    (100.0, 89.0, 78.0, "two"),     # two beats one by 11: three phases
    (100.0, 89.0, 79.0, "one"),     # two beats one by exactly the margin: not beyond it, one breakpoint stays
    (100.0, 90.0, 81.0, "two"),     # one ties the margin against the line, so it does not qualify; two beats line and smooth
    (100.0, 90.0, 90.0, "line"),    # neither beats the line beyond the margin
    (100.0, 95.0, 85.0, "two"),     # one short of the margin: two need not beat it by the margin...
    (100.0, 84.0, 85.0, "one"),     # ...and one qualifying, two must beat it by the margin
    (100.0, 92.0, 89.0, "two"),     # one unqualified, two below it by 3 only: two
    (100.0, 89.99, 89.99, "one"),   # both beat the line by more than the margin, a tie: one (the simpler)
])
def test_the_phase_model_choice_on_planted_bics(line, one, two, chosen):
    assert V._phase_model({"line": line, "one": one, "two": two, **SMOOTH}, 10.0) == chosen


def test_the_phase_model_choice_needs_every_smooth_curve_beaten_by_the_margin():
    for degree in SMOOTH:
        closer = {**SMOOTH, degree: 89.0}
        assert V._phase_model({"line": 100.0, "one": 78.5, "two": 120.0, **closer}, 10.0) == "one"
        assert V._phase_model({"line": 100.0, "one": 79.0, "two": 120.0, **closer}, 10.0) == "line"   # a tie at 10
        assert V._phase_model({"line": 100.0, "one": 95.0, "two": 78.5, **closer}, 10.0) == "two"
        assert V._phase_model({"line": 100.0, "one": 95.0, "two": 79.0, **closer}, 10.0) == "line"
    assert V._phase_model({"line": 100.0, "one": 89.0, "two": 85.0, **SMOOTH}, 3.0) == "two"      # the margin given
    assert V._phase_model({"line": 100.0, "one": 89.0, **SMOOTH}, 10.0) == "one"    # too short for two breakpoints
    assert V._phase_model({"line": 100.0, "one": 95.0, **SMOOTH}, 10.0) == "line"


def test_effective_epochs_are_n_1_minus_rho_over_1_plus_rho_and_at_least_two():
    assert V._effective_epochs(30, 0.0) == 30.0
    assert V._effective_epochs(30, 0.5) == 10.0
    assert V._effective_epochs(95, 0.9) == pytest.approx(5.0, abs=1e-12)
    assert V._effective_epochs(16, 0.95) == 2.0              # 0.41 by the formula: the floor
    assert V._effective_epochs(100, 0.95) == pytest.approx(5 / 1.95, rel=1e-12)   # 2.56: the formula, above the floor
    assert V._effective_epochs(39, 0.95) == 2.0              # 1.0 by the formula


def test_the_three_phase_sentence_states_the_gap_to_the_best_smooth_curve_and_every_slope():
    epochs = 2.0 * np.arange(1, len(PAPER_CURVE) + 1)
    r = V.phase_structure(PAPER_CURVE, epochs)
    scores, *_ = phases_by_hand(PAPER_CURVE, epochs)
    gap = float(re.search(r"best smooth curve \(degree 5\) by (-?[\d.]+) \(margin 10; ", r.sentence).group(1))
    assert gap == pytest.approx(scores["poly5"] - scores["two"], abs=0.05 + 1e-9) and gap > 10
    s1, s2, s3 = r.slopes
    assert r.sentence.endswith(f"epochs of 65); slopes per segment {s1:+.4f}, {s2:+.4f}, {s3:+.4f} per epoch")
    assert s1 < s3 < s2 < 0 and r.paper_shaped


def test_a_smooth_bend_is_named_only_beyond_the_margin():
    """An exact parabola: every polynomial fits it to rounding (RSS under the floor, so rho = 0 and n_eff = 30)
    and the degree-2 one is the best smooth curve, with BIC 30 ln(floor) + 4 ln 30. At a margin where the
    line's BIC minus the margin equals it exactly (found here, on this machine's arithmetic), the bend does
    not beat the line beyond the margin and the line is named; one step of the margin lower, the bend is."""
    x = np.arange(1.0, 31)
    y = 0.001 * (x - 10) ** 2
    floor = (1e-9 * (np.ptp(y) + np.abs(y).max() + 1e-12)) ** 2
    rss_line, _ = V._hinge_fit(x, y, [])
    line = 30 * math.log(max(rss_line / 30, floor)) + 3 * math.log(30)
    poly2 = 30 * math.log(floor) + 4 * math.log(30)
    margin = line - poly2                    # 1,091: its steps are as fine as poly2's (-1,243), so one hits it
    for _ in range(8):                       # the margin at which the two sides are equal to the last bit
        if line - margin == poly2:
            break
        margin = np.nextafter(margin, np.inf if line - margin > poly2 else -np.inf)
    assert line - margin == poly2
    at = V.phase_structure(y, bic_margin=float(margin))
    assert at.verdict == V.NO_PHASES and at.sentence.startswith("one straight line (slope ")
    beyond = V.phase_structure(y, bic_margin=float(np.nextafter(margin, -np.inf)))
    assert beyond.verdict == V.NO_PHASES
    assert beyond.sentence.startswith("a smooth curve (polynomial of degree 2) describes the curve as well as models")


# ----------------------------------------------------------------------------- less robust overfitting than SAT
def _planted_run(at_best: int, at_end: int, peak: int, n: int = 100):
    """20 epochs, n images, validation peaking at epochs `peak`, `peak` + 1 (k = 2: that is the best
    window; the last is 19-20). Robust images: the first `at_best` in the window's first epoch and
    `at_best` - 10 in its second, the first 10 in every other epoch before the last window, the first
    `at_end` in it. A reading of the wrong window (another run's, the first epochs, one epoch short)
    sees other counts."""
    correct = np.zeros((20, n), dtype=bool)
    correct[:, :10] = True
    correct[peak - 1, :at_best] = True
    correct[peak, :at_best - 10] = True
    correct[18:, :] = False
    correct[18:, :at_end] = True
    val = np.full(20, 0.3)
    val[peak - 1:peak + 1] = 0.6
    return V.robust_overfitting(correct.mean(1), n, val_acc=val, test_correct=correct), correct


def test_less_overfitting_is_the_paired_difference_of_each_runs_own_windows():
    """SAT's best window is epochs 5-6 (50 and 40 robust), TRADES' 9-10 (60 and 50); at the end SAT has 30
    and TRADES 55. Per image, each run's change (end minus its window's mean): SAT -1 for images 30-39 and
    -0.5 for 40-49 (-15 pt); TRADES +0.5 for 50-54 and -0.5 for 55-59 (0 pt). TRADES' minus SAT's: +15 pt,
    with the protocol's bootstrap over the images in their order. SAT's own decline is present."""
    sat, c_sat = _planted_run(50, 30, peak=5)
    trades, c_trades = _planted_run(60, 55, peak=9)
    assert (sat.best_window, trades.best_window, sat.last_window) == ((5, 6), (9, 10), (19, 20))
    assert sat.verdict == V.PRESENT
    r = V.less_robust_overfitting(sat, c_sat, trades, c_trades)
    per_image = np.zeros(100)
    per_image[30:40], per_image[40:55], per_image[55:60] = 1.0, 0.5, -0.5
    boot = protocol_bootstrap((per_image,), np.mean)
    assert (r.statistic, r.decline_a, r.decline_b, r.n_images) == (0.15, -0.15, 0.0, 100)
    assert r.ci == (boot.confidence_interval.low, boot.confidence_interval.high) and r.ci[0] > 0
    assert (r.labels, r.mde) == (("SAT", "TRADES"), mde_from_se(boot.standard_error))
    at_90 = protocol_bootstrap((per_image,), np.mean, level=0.9)
    assert V.less_robust_overfitting(sat, c_sat, trades, c_trades, level=0.9).ci == (
        at_90.confidence_interval.low, at_90.confidence_interval.high)
    assert r.verdict == V.REPRODUCED and r.sentence == (
        "robust test accuracy from the best window to the last changes by -15.0 pt for SAT and +0.0 pt for TRADES on "
        f"the same 100 test images: TRADES − SAT = +15.0 pt, 95% paired bootstrap interval [{100 * r.ci[0]:+.1f} pt, "
        f"{100 * r.ci[1]:+.1f} pt]; TRADES declines less than SAT by more than the noise")
    worse = V.less_robust_overfitting(trades, c_trades, sat, c_sat, labels=("TRADES", "SAT"))
    assert (worse.statistic, worse.verdict) == (-0.15, V.NOT_REPRODUCED)
    assert worse.sentence.endswith("SAT declines more than TRADES by more than the noise")
    close = V.less_robust_overfitting(sat, c_sat, *_planted_run(50, 31, peak=9))   # one image apart: +1 pt
    assert close.statistic == pytest.approx(0.01) and close.ci[0] <= 0 < close.ci[1] and \
        close.verdict == V.INCONCLUSIVE_SCALE
    same = V.less_robust_overfitting(sat, c_sat, sat, c_sat)
    assert (same.statistic, same.ci, same.verdict) == (0.0, (0.0, 0.0), V.INCONCLUSIVE_SCALE)
    assert "the difference is within the noise (the smallest it would detect with 80% power:" in same.sentence


def test_less_overfitting_reads_each_runs_windows_at_its_own_epochs():
    """TRADES numbered 101-120 has its windows at 109-110 and 119-120: the same rows as 9-10 and 19-20."""
    import pandas as pd

    from energy_lib import bits

    sat, c_sat = _planted_run(50, 30, peak=5)
    trades, c_trades = _planted_run(60, 55, peak=9)
    val = np.full(20, 0.3)
    val[8:10] = 0.6
    late = V.robust_overfitting(c_trades.mean(1), 100, val_acc=val, epochs=np.arange(101, 121), test_correct=c_trades)
    assert late.best_window == (109, 110)
    r = V.less_robust_overfitting(sat, c_sat, late, c_trades, epochs_b=np.arange(101, 121))
    assert (r.statistic, r.decline_b) == (0.15, 0.0)

    def frame(c, first, peak):
        v = np.full(20, 0.3)
        v[peak - 1:peak + 1] = 0.6
        return pd.DataFrame({"epoch": np.arange(first, first + 20), "test_acc_adv": c.mean(1), "val_acc_adv": v,
                             "test_correct_adv": [bits.pack(row) for row in c]})
    of = V.less_robust_overfitting_of(frame(c_sat, 51, 5), frame(c_trades, 101, 9), 100, 100)
    assert (of.statistic, of.sentence) == (r.statistic, r.sentence)
    named = V.less_robust_overfitting_of(frame(c_sat, 1, 5), frame(c_trades, 1, 9), 100, 100, labels=("S", "T"))
    assert named.labels == ("S", "T") and "changes by -15.0 pt for S and +0.0 pt for T" in named.sentence
    never = SimpleNamespace(learned=False, why_untestable=lambda claim: "it never learned")
    assert V.less_robust_overfitting_of(frame(c_sat, 1, 5), frame(c_trades, 1, 9), 100, 100, regime_a=never
                                        ).sentence.endswith("because SAT: it never learned: inconclusive at this scale")
    assert V.less_robust_overfitting_of(frame(c_sat, 1, 5), frame(c_trades, 1, 9), 100, 100, regime_b=never
                                        ).sentence.endswith("because TRADES: it never learned: inconclusive at this scale")
    assert V.less_robust_overfitting_of(frame(c_sat, 1, 5).drop(columns="test_correct_adv"), frame(c_trades, 1, 9),
                                        100, 100) is None
    with pytest.raises(ValueError, match="SAT tracked 100 test images and TRADES 60; less overfitting is read on the "
                                         "same images"):
        V.less_robust_overfitting_of(frame(c_sat, 1, 5), frame(c_trades, 1, 9), 100, 60)


def test_less_overfitting_needs_a_decline_in_a_and_a_network_that_learned_in_b():
    import dataclasses

    sat, c_sat = _planted_run(50, 30, peak=5)
    trades, c_trades = _planted_run(60, 55, peak=9)
    for kind in ("never_learned", "no_gap", "window_end"):      # A cannot show a decline: nothing to be less than
        a = dataclasses.replace(sat, untestable=f"because {kind}", untestable_kind=kind)
        r = V.less_robust_overfitting(a, c_sat, trades, c_trades)
        assert (r.statistic, r.verdict) == (0.15, V.INCONCLUSIVE_SCALE)
        assert r.sentence.endswith(f"less overfitting cannot be read, because SAT: because {kind}: inconclusive at "
                                   "this scale")
    b_never = dataclasses.replace(trades, untestable="it never learned", untestable_kind="never_learned")
    assert V.less_robust_overfitting(sat, c_sat, b_never, c_trades).sentence.endswith(
        "because TRADES: it never learned: inconclusive at this scale")
    for kind in ("no_gap", "window_end", "late_best"):         # what the claim predicts for B: still read
        b = dataclasses.replace(trades, untestable=f"because {kind}", untestable_kind=kind)
        assert V.less_robust_overfitting(sat, c_sat, b, c_trades).verdict == V.REPRODUCED
    undeclined = dataclasses.replace(sat, verdict=V.INCONCLUSIVE)   # A's own decline not established
    u = V.less_robust_overfitting(undeclined, c_sat, trades, c_trades)
    assert u.verdict == V.INCONCLUSIVE_SCALE and u.sentence.endswith(
        "TRADES declines less than SAT by more than the noise, but SAT's own robust overfitting is inconclusive in "
        "this run, so there is no established decline to be less than: inconclusive at this scale")
    assert V.less_robust_overfitting(trades, c_trades, undeclined, c_sat, labels=("T", "S")).verdict == \
        V.NOT_REPRODUCED                                         # "more" needs no established decline in A


def test_less_overfitting_by_where_a_best_window_ends_not_by_a_verdict():
    """A's best window at epochs 16-17 of 20 ends at 85 % of training (> 80 %): blocked, whatever its verdict; at
    15-16 (80 %) it is read."""
    at_85, c85 = _planted_run(50, 30, peak=16)
    at_80, c80 = _planted_run(50, 30, peak=15)
    trades, c_trades = _planted_run(60, 55, peak=9)
    assert (at_85.verdict, at_80.verdict) == (V.PRESENT, V.PRESENT)
    r = V.less_robust_overfitting(at_85, c85, trades, c_trades)
    assert r.verdict == V.INCONCLUSIVE_SCALE and r.sentence.endswith(
        "SAT: its best window ends at 85% of training (epochs 16-17), too little training follows it to decline: "
        "inconclusive at this scale")
    assert V.less_robust_overfitting(at_80, c80, trades, c_trades).verdict == V.REPRODUCED


def test_less_overfitting_refuses_windows_not_chosen_on_validation_and_says_when_too_short():
    sat, c_sat = _planted_run(50, 30, peak=5)
    split = V.robust_overfitting(c_sat.mean(1), 100, test_correct=c_sat)     # windows chosen on even epochs
    with pytest.raises(ValueError, match="SAT's was chosen on even epochs \\(scored on odd epochs\\) \\(pass val_acc"):
        V.less_robust_overfitting(split, c_sat, sat, c_sat)
    with pytest.raises(ValueError, match=r"the same test images; got \(100,\) and \(60,\) images"):
        V.less_robust_overfitting(sat, c_sat, sat, c_sat[:, :60])
    short = V.robust_overfitting(c_sat[:3].mean(1), 100, val_acc=np.full(3, 0.3), test_correct=c_sat[:3])
    assert short.untestable_kind == "too_short"
    r = V.less_robust_overfitting(short, c_sat[:3], sat, c_sat)
    assert r.verdict == V.INCONCLUSIVE_SCALE and r.labels == ("SAT", "TRADES") and r.n_images == 100
    assert all(math.isnan(x) for x in (r.statistic, *r.ci, r.decline_a, r.decline_b, r.mde))
    assert r.sentence == ("less overfitting cannot be read, because SAT: 3 epochs are too few to compare two windows "
                          "of 2 epochs: inconclusive: inconclusive at this scale")
    assert V.less_robust_overfitting(sat, c_sat, short, c_sat[:3]).sentence.startswith(
        "less overfitting cannot be read, because TRADES: 3 epochs are too few")
    assert V.less_robust_overfitting(short, c_sat[:3], short, c_sat[:3]).sentence == (
        "less overfitting cannot be read, because SAT: 3 epochs are too few to compare two windows of 2 epochs: "
        "inconclusive; TRADES: 3 epochs are too few to compare two windows of 2 epochs: inconclusive: inconclusive at "
        "this scale")


def test_robust_overfitting_says_which_reason_makes_a_run_untestable():
    """untestable_kind, read by less_robust_overfitting: each reason of robust_overfitting's docstring."""
    sat, c_sat = _planted_run(50, 30, peak=5)
    assert (sat.verdict, sat.untestable, sat.untestable_kind) == (V.PRESENT, "", "")
    at_end, _ = _planted_run(50, 30, peak=19)
    assert at_end.untestable_kind == "window_end"
    flat = np.zeros((20, 100), dtype=bool)
    flat[:, :40] = True
    val = np.full(20, 0.3)
    val[16:18] = 0.6                                            # best window 17-18 (90 %), nothing declines: absent
    late = V.robust_overfitting(flat.mean(1), 100, val_acc=val, test_correct=flat)
    assert (late.verdict, late.untestable_kind) == (V.INCONCLUSIVE, "late_best")
    never = SimpleNamespace(learned=False, why_untestable=lambda claim: "it never learned")
    no_gap = SimpleNamespace(learned=True, why_untestable=lambda claim: "there is no gap")
    val_early = np.full(20, 0.3)
    val_early[4:6] = 0.6
    absent = V.robust_overfitting(flat.mean(1), 100, val_acc=val_early, test_correct=flat, regime=no_gap)
    assert (absent.untestable, absent.untestable_kind) == ("there is no gap", "no_gap")
    assert V.robust_overfitting(c_sat.mean(1), 100, val_acc=val_early, test_correct=c_sat,
                                regime=never).untestable_kind == "never_learned"
    assert V.robust_overfitting(c_sat.mean(1), 100, val_acc=val_early, test_correct=c_sat,
                                regime=no_gap).untestable_kind == ""   # a decline measured without a gap stays present
