"""The regime of a run (energy_lib.regime) and the verdicts that consult it, on planted curves whose
answer is known: a network that never learned gives "not testable", never "absent"; a best window
forced to the end or a run without a robust generalisation gap cannot show robust overfitting."""
import math

import numpy as np
import pandas as pd
import pytest

from energy_lib import regime as R
from energy_lib import verdicts as V


def metrics(clean, robust, *, train_robust=None, energy=-2.35, spread=0.05, ce=None, epochs=None):
    """A run's tracked points: clean / robust test accuracy per point (and robust training accuracy
    under the same attack), with the energy summaries the regime reads."""
    clean, robust = np.asarray(clean, float), np.asarray(robust, float)
    n = len(clean)
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1) if epochs is None else epochs, "test_acc_nat": clean,
                          "test_acc_adv": robust, "test_E_nat_mean": energy, "test_E_nat_std": spread,
                          "test_ce_nat": math.log(10) - 0.8 if ce is None else ce})
    if train_robust is not None:
        frame["train_pgd_acc_adv"] = np.asarray(train_robust, float)
    return frame


def test_learned_means_clean_accuracy_significantly_above_twice_chance():
    """The Wilson boundary on 1000 images with two tracked points (level corrected to 97.5 %): 229
    right is above 20 % (lower bound 0.2006), 228 is not."""
    learned = R.regime_from_metrics(metrics([0.1, 0.229], [0.1, 0.1]), n_test=1000, n_train_track=1000, n_classes=10)
    not_learned = R.regime_from_metrics(metrics([0.1, 0.228], [0.1, 0.1]), n_test=1000, n_train_track=1000,
                                        n_classes=10)
    assert learned.learned and not not_learned.learned
    assert "never learned" in not_learned.sentence and "never learned" in not_learned.never_learned_text
    assert "level corrected for 2 tracked points" in learned.sentence
    assert R.regime_from_metrics(metrics([0.06], [0.0], ce=math.log(100) - 1.0), n_test=1000, n_train_track=1000,
                                 n_classes=100).learned


def test_the_best_of_many_noisy_points_is_not_learning():
    """30 tracked points of a net at 22 % on 200 images: their maximum (27 %) would pass an
    uncorrected Wilson bound (0.21 > 0.20); corrected for 30 points it does not."""
    clean = np.r_[np.full(29, 0.22), 0.27]
    from energy_lib.power import wilson
    assert wilson(54, 200)[0] > 0.2                                 # what the uncorrected rule would say
    assert not R.regime_from_metrics(metrics(clean, np.full(30, 0.1)), n_test=200, n_train_track=200,
                                     n_classes=10).learned


def test_a_near_uniform_network_never_learned_however_many_images_show_it():
    """Issue 23's default FGSM-RS runs, tracked on 1000 images instead of 200: 25 % clean is
    significantly above 20 %, but the predictions stay within 0.05 nats of uniform: not learned."""
    m = metrics(np.linspace(0.15, 0.25, 30), np.full(30, 0.2), ce=math.log(10) - 0.05)
    near = R.regime_from_metrics(m, n_test=1000, n_train_track=1000, n_classes=10)
    assert not near.learned and near.information_when_accurate == pytest.approx(0.05)
    # its text names the condition that failed (information), not the one that held (accuracy)
    assert near.never_learned_text == (
        "the network never learned: its clean test accuracy rose significantly above 2x chance (20%; best 25.0% "
        "[21.0%, 29.5%] on 1000 images), but never at a point where its clean CE was also at least 0.23 nats below "
        "ln K: where it was that accurate, clean CE was at most 0.05 nats below ln K (predictions near the uniform "
        "one), after an unknown number of optimizer steps")
    inaccurate = R.regime_from_metrics(metrics([0.1, 0.15], [0.1, 0.1], ce=math.log(10) - 0.05), n_test=1000,
                                       n_train_track=1000, n_classes=10)
    assert inaccurate.information_when_accurate is None and "not significantly above 2x chance" in \
        inaccurate.never_learned_text
    # accurate at one point, informative at another, never both at once: not learned, and the text says why
    apart = metrics([0.30, 0.12], [0.1, 0.1])
    apart["test_ce_nat"] = [math.log(10) - 0.10, math.log(10) - 0.5]
    split = R.regime_from_metrics(apart, n_test=1000, n_train_track=1000, n_classes=10)
    assert not split.learned and split.information_when_accurate == pytest.approx(0.10)
    assert "clean CE was at most 0.10 nats below ln K" in split.never_learned_text


def test_a_network_near_the_uniform_predictor_never_learned_so_co_is_not_testable():
    """Issue 23, point 1: the default FGSM-RS runs (clean 20-25 % on 200 images, mean E(x) ≈ −ln 10,
    robust 22 % → 19.5 %) were read as "no catastrophic overfitting". With their regime: not testable."""
    m = metrics(np.linspace(0.15, 0.235, 30), np.r_[np.linspace(0.12, 0.22, 20), np.full(10, 0.195)],
                train_robust=np.full(30, 0.2), energy=-2.36, ce=2.25)
    regime = R.regime_from_metrics(m, n_test=200, n_train_track=200, n_classes=10, steps=240)
    assert not regime.learned and regime.steps == 240
    assert regime.energy_offset == pytest.approx(-2.36 + math.log(10)) and regime.information == pytest.approx(
        math.log(10) - 2.25)
    old = V.catastrophic_overfitting(m["test_acc_adv"], 200, clean=m["test_acc_nat"], chance=0.1)
    assert old.verdict == V.ABSENT                                   # what the book said before
    co = V.catastrophic_overfitting(m["test_acc_adv"], 200, clean=m["test_acc_nat"], chance=0.1, regime=regime)
    assert co.verdict == V.INCONCLUSIVE and co.untestable.startswith("the network never learned")
    assert co.statistic_text.startswith("not testable here: the network never learned")
    assert V.reproduction(co.verdict) == V.INCONCLUSIVE_SCALE
    assert "240 optimizer steps" in co.sentence


def test_a_learned_network_still_shows_its_collapse():
    clean = np.full(20, 0.32)
    robust = np.r_[np.linspace(0.10, 0.15, 4), np.zeros(16)]
    m = metrics(clean, robust, epochs=np.arange(1, 21) / 2)          # tracked every half epoch
    regime = R.regime_from_metrics(m, n_test=1000, n_train_track=1000, n_classes=10)
    assert regime.learned and not regime.diverged
    co = V.catastrophic_overfitting(m["test_acc_adv"], 1000, m["epoch"], clean=clean, chance=0.1, regime=regime)
    assert co.verdict == V.PRESENT and co.onset == 2.5 and not co.untestable


def test_a_run_that_learned_and_went_back_to_chance_diverged():
    m = metrics([0.3, 0.35, 0.1], [0.1, 0.12, 0.1])
    regime = R.regime_from_metrics(m, n_test=1000, n_train_track=1000, n_classes=10)
    assert regime.learned and regime.diverged and "back at chance at epoch 3" in regime.sentence
    constant = R.regime_from_metrics(metrics([0.3, 0.35, 0.2], [0.1, 0.12, 0.1], spread=[0.05, 0.05, 0.0]),
                                     n_test=1000, n_train_track=1000, n_classes=10)
    assert constant.diverged and constant.constant_output


def test_a_divergence_in_the_middle_of_the_run_counts():
    """The lr-0.005 CO probe: learned, collapsed at 2.5, then at the learning-rate peak its
    predictions went uniform (CE within 0.02 nats of ln 10, clean 9-11 %) before recovering a
    little: it diverged, so its CO reading is inconclusive."""
    clean = np.r_[[0.25, 0.31, 0.27, 0.29, 0.26, 0.33, 0.32, 0.28, 0.34, 0.32], [0.09, 0.11, 0.11, 0.11, 0.11, 0.15]]
    robust = np.r_[[0.11, 0.15, 0.15, 0.06], np.zeros(12)]
    ce = np.r_[np.full(10, math.log(10) - 0.3), np.full(5, math.log(10) - 0.01), math.log(10) - 0.02]
    m = metrics(clean, robust, ce=ce, epochs=np.arange(1, 17) / 2)
    regime = R.regime_from_metrics(m, n_test=1000, n_train_track=1000, n_classes=10)
    assert regime.learned and regime.diverged and "at epoch 5.5" in regime.sentence
    co = V.catastrophic_overfitting(robust, 1000, m["epoch"], clean=clean, chance=0.1, regime=regime)
    assert co.verdict == V.INCONCLUSIVE and co.diverged


def test_robust_overfitting_needs_a_gap_to_overfit():
    """Issue 23, point 2: SAT robust 20.5 % on its training images vs 22.0 % on test: no gap, so a
    flat robust curve is 'not testable', not 'absent'; the same curve with a 30-pt gap is measured."""
    r = np.random.default_rng(0)
    n = 60
    test = np.clip(0.4 + r.normal(0, 0.005, n), 0, 1)
    val = np.r_[np.linspace(0.2, 0.4, 20), np.full(40, 0.4)] + r.normal(0, 0.002, n)
    correct = (r.random((n, 2000)) < test[:, None])
    flat = metrics(np.full(n, 0.6), test, train_robust=np.full(n, 0.39))
    no_gap = R.regime_from_metrics(flat, n_test=2000, n_train_track=1000, n_classes=10)
    assert no_gap.learned and not no_gap.gap_present
    ro = V.robust_overfitting(test, 2000, val_acc=val, test_correct=correct, regime=no_gap)
    assert ro.verdict == V.INCONCLUSIVE and ro.untestable.startswith("there is no robust generalisation gap")
    assert "not testable here" in ro.statistic_text
    gap = R.regime_from_metrics(metrics(np.full(n, 0.6), test, train_robust=np.full(n, 0.7)), n_test=2000,
                                n_train_track=1000, n_classes=10)
    assert gap.gap_present and gap.gap_ci[0] > 0.25
    measured = V.robust_overfitting(test, 2000, val_acc=val, test_correct=correct, regime=gap)
    assert not measured.untestable and measured.verdict in (V.ABSENT, V.INCONCLUSIVE)
    assert measured.mde == pytest.approx(V.mde_from_se(measured.se))


def test_a_decline_measured_without_a_gap_stays_present():
    """Regime only withholds 'absent': a significant decline is reported as measured."""
    n = 60
    test = np.r_[np.full(30, 0.45), np.linspace(0.45, 0.30, 30)]
    val = np.r_[np.linspace(0.3, 0.45, 30), np.linspace(0.45, 0.30, 30)]
    regime = R.regime_from_metrics(metrics(np.full(n, 0.6), test, train_robust=np.full(n, 0.31)), n_test=1000,
                                   n_train_track=1000, n_classes=10)
    assert not regime.gap_present
    assert V.robust_overfitting(test, 1000, val_acc=val, regime=regime).verdict == V.PRESENT


def test_a_best_window_forced_to_the_end_is_not_testable():
    """A one-cycle schedule annealed to ~0: validation accuracy rises to the end, the best window is
    the last one, and the change is 0 by construction: 'not testable', not '+0.0 ± 10 pt'."""
    acc = np.linspace(0.1, 0.22, 30)
    ro = V.robust_overfitting(acc, 200, val_acc=acc)
    assert ro.statistic == 0.0 and ro.verdict == V.INCONCLUSIVE
    assert ro.untestable.startswith("the best window is the last one")
    assert ro.statistic_text == "not testable here: the best window is the last one (n = 200)"


def test_regime_of_a_run_reads_its_tracked_points_and_steps():
    from energy_lib.config import TrainConfig

    cfg = TrainConfig(n_train=500, batch_size=64, epochs=30)
    assert R.optimizer_steps(cfg, 30) == 30 * 8
    full = TrainConfig(n_train=None, n_val=1000, batch_size=128, epochs=12)
    assert R.optimizer_steps(full, 2) == 2 * 383                     # 49,000 images in batches of 128
    rows = [{"epoch": 1, "test_acc_nat": 0.3, "test_acc_adv": 0.1,
             "within_epoch": [{"progress": 0.5, "test_acc_nat": 0.2, "test_acc_adv": 0.05}]},
            {"epoch": 2, "test_acc_nat": 0.35, "test_acc_adv": 0.0}]
    points = R.tracked_points(pd.DataFrame(rows))
    assert points["progress"].tolist() == [0.5, 1.0, 2.0] and points["test_acc_adv"].tolist() == [0.05, 0.1, 0.0]
