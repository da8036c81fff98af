"""The lens's scoring on hand-computed inputs (no attack, no trained model): the per-image frame of a
linear model whose logits are its inputs, detection scores at the 95 % TPR threshold, and a ΔE
sample's summary with exact quantiles."""
import math

import numpy as np
import pytest
import torch

from energy_lib import lens


def identity_model() -> torch.nn.Module:
    """Logits = the image's three pixels (1 x 1 x 3 images)."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3))
    return model


def test_energies_frame_holds_each_images_energies_correctness_and_distance():
    ln2 = math.log(2.0)
    x = torch.tensor([[0.0, 0.0, 0.0], [ln2, 0.0, 0.0], [0.0, 0.0, ln2]]).view(3, 1, 1, 3)
    x_adv = torch.tensor([[0.0, ln2, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, ln2]]).view(3, 1, 1, 3)
    y = torch.tensor([1, 0, 2])
    # batch size 2: the three images come in two batches, and stay in their order
    frame = lens.energies_frame(identity_model(), x, y, x_adv, "pgd", 8 / 255, batch_size=2)
    assert list(frame.columns) == ["attack", "eps", "sample", "E_nat", "E_adv", "Exy_nat", "Exy_adv",
                                   "correct_nat", "correct_adv", "linf"]
    assert frame["attack"].tolist() == ["pgd"] * 3 and frame["eps"].tolist() == [8 / 255] * 3
    assert frame["sample"].tolist() == [0, 1, 2]
    # E(x) = -logsumexp: logits (0,0,0) -> -log 3; (ln 2,0,0) -> -log 4; E(x,y) = -logit of y
    assert frame["E_nat"].to_numpy() == pytest.approx([-math.log(3), -math.log(4), -math.log(4)], abs=1e-6)
    assert frame["E_adv"].to_numpy() == pytest.approx([-math.log(4), -math.log(3), -math.log(4)], abs=1e-6)
    assert frame["Exy_nat"].to_numpy() == pytest.approx([0.0, -ln2, -ln2], abs=1e-6)
    assert frame["Exy_adv"].to_numpy() == pytest.approx([-ln2, 0.0, -ln2], abs=1e-6)
    # argmax of (0,0,0) is class 0: wrong for y = 1, right after the attack raised class 1
    assert frame["correct_nat"].tolist() == [False, True, True]
    assert frame["correct_adv"].tolist() == [True, True, True]
    assert frame["linf"].to_numpy() == pytest.approx([ln2, ln2, 0.0], abs=1e-6)


def test_the_model_sees_batches_of_at_most_the_batch_size():
    """The batch size is what bounds the lens's memory on a large model: both passes honour it."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.shape[0])
            return x.flatten(1)

    x = torch.zeros(5, 1, 1, 3)
    lens.energies_frame(Spy(), x, torch.zeros(5, dtype=torch.long), x, "pgd", 8 / 255, batch_size=2)
    assert seen == [2, 2, 1, 2, 2, 1]


def test_a_block_of_one_image_is_summarised():
    import pandas as pd

    row = pd.DataFrame({"attack": ["fab"], "eps": [4 / 255], "sample": [0], "E_nat": [-5.0], "E_adv": [-4.0],
                        "Exy_nat": [-1.0], "Exy_adv": [0.0], "correct_nat": [True], "correct_adv": [False],
                        "linf": [0.01]})
    s = lens.attack_summary(row)
    assert (s["attack"], s["eps"], s["robust_accuracy"], s["max_linf"]) == ("fab", 4 / 255, 0.0, 0.01)


def test_energies_the_attack_left_unchanged_give_chance_detection():
    """Identical natural and adversarial energies (20 ties): every threshold admits one of each, so
    95 % TPR comes with 95 % FPR, read at that threshold (not at the curve's next corner, (1, 1))."""
    e = -np.arange(1.0, 21.0)
    scores = lens.detection_scores(e, e)
    assert scores["auroc"] == pytest.approx(0.5, abs=1e-12)
    assert scores["fpr_at_95_tpr"] == pytest.approx(19 / 20, abs=1e-12)


def test_fpr_is_read_where_the_true_positive_rate_first_reaches_95_percent():
    """Scores -E: naturals 1..20, adversarials 0.5, 1.5, 2.5, 3.5. 95 % TPR keeps 19 of 20 naturals
    (threshold 2): 2 of 4 adversarials lie above it. All 20 (threshold 1) would give 3 of 4."""
    nat = -np.arange(1.0, 21.0)
    adv = -np.array([0.5, 1.5, 2.5, 3.5])
    scores = lens.detection_scores(nat, adv)
    assert scores["fpr_at_95_tpr"] == 0.5
    # AUROC: of the 80 (natural, adversarial) pairs, those with the natural scored higher
    higher = sum(int(n > a) for n in range(1, 21) for a in (0.5, 1.5, 2.5, 3.5))
    assert scores["auroc"] == higher / 80 and higher == 20 + 19 + 18 + 17
    assert scores["score"] == "-E(x), natural = positive class"


def test_a_delta_sample_is_summarised_exactly():
    v = (np.arange(21) - 10) / 10                       # -1.0, -0.9, ..., 1.0
    d = lens.delta_distribution(v, bins=4)
    assert d["n"] == 21 and d["mean"] == pytest.approx(0.0, abs=1e-15)
    assert d["std"] == pytest.approx(math.sqrt(sum(((k - 10) / 10) ** 2 for k in range(21)) / 21))   # no Bessel
    assert [d[k] for k in ("q05", "q25", "q50", "q75", "q95")] == pytest.approx([-0.9, -0.5, 0.0, 0.5, 0.9])
    assert d["frac_within_0.1"] == 3 / 21                 # -0.1, 0 and 0.1: the bounds count
    assert d["histogram"] == {"edges": [-1.0, -0.5, 0.0, 0.5, 1.0], "counts": [5, 5, 5, 6]}
    assert lens.delta_distribution(v)["histogram"]["counts"].__len__() == 40


def test_float32_energies_are_summarised_in_float64():
    """The lens's ΔE samples come from float32 logits: their mean and spread are taken in float64
    (a float32 mean of these 1,001 values is off in the 7th digit)."""
    v = ((np.arange(1001, dtype=np.float32) / 7) ** np.float32(1.5)).astype(np.float32)
    d = lens.delta_distribution(v)
    wide = v.astype(np.float64)
    assert d["mean"] == float(wide.mean()) and d["std"] == float(wide.std())
    assert float(v.mean()) != d["mean"]                       # the planted case tells the two apart


# ----------------------------------------------------------------------------- chapter 6's verdict
# Up to 9 models the permutation test runs over every pairing: its p-values are exact fractions, and
# the test below recounts them by enumerating the pairings.
def pairings_p(s, a) -> tuple[float, float]:
    """(P(ρ ≤ observed), P(ρ ≥ observed)) over all n! pairings of s with a, by enumeration."""
    from itertools import permutations

    from scipy import stats

    observed = stats.spearmanr(s, a).statistic
    rhos = [stats.spearmanr(p, a).statistic for p in permutations(s)]
    return (sum(r <= observed + 1e-9 for r in rhos) / len(rhos), sum(r >= observed - 1e-9 for r in rhos) / len(rhos))


def asymptotic_p(rho: float, n: int) -> float:
    """Spearman's one-sided t-approximation for ρ < 0: t = ρ √((n − 2) / (1 − ρ²)), n − 2 degrees of freedom."""
    from scipy import stats

    return float(stats.t.cdf(rho * math.sqrt((n - 2) / (1 - rho ** 2)), n - 2))


S5, A5 = [0.5, 0.3, 0.4, 0.1, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5]     # ranks 5 3 4 1 2: Σd² = 36, ρ = -0.8


def test_the_p_values_are_the_share_of_pairings_as_extreme():
    v = lens.smoothness_verdict(S5, A5)
    less, greater = pairings_p(S5, A5)
    # recounted: 1 + 4 + 3 pairings have ρ = -1, -0.9, -0.8; the other 112 and those 3 have ρ ≥ -0.8
    assert (less, greater) == (8 / 120, 115 / 120)
    assert v.rho == pytest.approx(1 - 6 * 36 / (5 * 24)) and v.n_models == 5 and v.alpha == 0.05
    assert (v.p_value, v.p_opposite) == (pytest.approx(less, rel=1e-12), pytest.approx(greater, rel=1e-12))
    assert v.p_asymptotic == pytest.approx(asymptotic_p(-0.8, 5), rel=1e-9)
    assert v.verdict == "inconclusive" and v.never_learned == {}
    # power: tanh((z_0.95 + z_0.8) / √(5 − 3)) = tanh((1.6449 + 0.8416) / 1.4142) = tanh(1.7582) = 0.94
    assert v.reason == ("ρ = -0.80, one-sided p = 0.0667 ≥ 0.05; with 5 models only a true |ρ| of about 0.94 or more "
                        "is detected with 80% power")
    loose = lens.smoothness_verdict(S5, A5, alpha=0.1)       # the same data at α = 0.1: p = 0.0667 passes
    assert (loose.verdict, loose.alpha) == ("reproduced", 0.1)
    assert loose.reason == "ρ = -0.80 < 0 with one-sided p = 0.0667 < 0.1"
    mirrored = lens.smoothness_verdict([-x for x in S5], A5, alpha=0.1)
    assert (mirrored.verdict, mirrored.p_opposite) == ("not reproduced", pytest.approx(8 / 120, rel=1e-12))
    assert mirrored.reason == "ρ = +0.80 > 0 with one-sided p = 0.0667 < 0.1"


def test_ties_are_ranked_by_their_mean_rank_and_counted_exactly():
    s, a = [0.3, 0.3, 0.2, 0.1, 0.1, 0.05], [0.1, 0.2, 0.2, 0.3, 0.4, 0.5]
    v = lens.smoothness_verdict(s, a)
    less, greater = pairings_p(s, a)
    assert (v.p_value, v.p_opposite) == (pytest.approx(less, rel=1e-12), pytest.approx(greater, rel=1e-12))


def test_a_p_value_equal_to_alpha_is_not_below_it():
    """Four models in perfect order: p = 1/24 exactly, the smallest p four models can give."""
    alpha = 1 / 24
    falling = lens.smoothness_verdict([4.0, 3.0, 2.0, 1.0], [0.1, 0.2, 0.3, 0.4], alpha=alpha)
    assert falling.rho == pytest.approx(-1.0) and falling.p_value == pytest.approx(alpha, rel=1e-12)
    assert falling.verdict == "inconclusive"
    assert falling.reason == (f"ρ = -1.00, one-sided p = 0.0417 ≥ {alpha} (with 4 models no ordering can reach "
                              f"p < {alpha}: the smallest p is 0.0417)")
    rising = lens.smoothness_verdict([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4], alpha=alpha)
    assert rising.p_opposite == pytest.approx(alpha, rel=1e-12) and rising.verdict == "inconclusive"


def test_only_the_sign_of_rho_with_its_own_p_value_gives_a_verdict():
    """At a lax α = 0.99 both p-values pass; the verdict still follows the sign of ρ."""
    zero = lens.smoothness_verdict([2.0, 4.0, 1.0, 3.0], [0.1, 0.2, 0.3, 0.4], alpha=0.99)   # Σd² = 10: ρ = 0
    assert zero.rho == pytest.approx(0.0, abs=1e-12) and zero.p_value < 0.99 and zero.p_opposite < 0.99
    assert zero.verdict == "inconclusive"
    positive = lens.smoothness_verdict([1.0, 3.0, 2.0, 4.0], [0.1, 0.2, 0.3, 0.4], alpha=0.99)   # ρ = +0.8
    assert positive.rho == pytest.approx(0.8) and positive.p_value == pytest.approx(23 / 24, rel=1e-12)
    assert positive.verdict == "not reproduced"


def test_power_is_stated_at_the_verdicts_own_alpha_and_not_for_three_models():
    acc = np.linspace(0.0, 0.7, 8)
    flat = lens.smoothness_verdict([1.0, 3.0, 2.0, 4.0, 4.5, 2.5, 3.5, 1.5], acc, alpha=0.1)
    # tanh((z_0.9 + z_0.8) / √(8 − 3)) = tanh((1.2816 + 0.8416) / 2.2361) = 0.74
    assert flat.verdict == "inconclusive" and flat.reason.endswith(
        "; with 8 models only a true |ρ| of about 0.74 or more is detected with 80% power")
    three = lens.smoothness_verdict([3.0, 1.0, 2.0], [0.1, 0.2, 0.3], alpha=0.2)   # 1/6 < 0.2, but no power formula
    assert three.verdict == "inconclusive" and three.reason == "ρ = -0.50, one-sided p = 0.5 ≥ 0.2"


@pytest.mark.parametrize("s, a, why", [
    ([1.0, 2.0], [0.1, 0.2], "fewer than 3 models"),
    ([1.0, 1.0, 1.0], [0.1, 0.2, 0.3], "no variation in std(ΔE(x)) or in robust accuracy"),
    ([1.0, 2.0, 3.0, 4.0], [0.2, 0.2, 0.2, 0.2], "no variation in std(ΔE(x)) or in robust accuracy"),
])
def test_what_cannot_be_ranked_is_inconclusive_with_its_reason(s, a, why):
    v = lens.smoothness_verdict(s, a)
    assert (v.verdict, v.reason, v.n_models, v.alpha, v.never_learned) == ("inconclusive", why, len(s), 0.05, {})
    assert all(math.isnan(x) for x in (v.rho, v.p_value, v.p_opposite, v.p_asymptotic))


@pytest.mark.parametrize("s, a", [
    ([0.0, 1.0, 0.5, 0.25], [0.1, 0.2, 0.3, 0.4]),     # spreads span exactly 1
    ([1.0, 2.0, 4.0, 3.0], [0.0, 1.0, 0.5, 0.25]),     # accuracies span exactly 1
])
def test_a_range_of_one_is_variation(s, a):
    assert not math.isnan(lens.smoothness_verdict(s, a).rho)


def test_one_value_per_model_or_a_one_line_error():
    with pytest.raises(ValueError) as err:
        lens.smoothness_verdict(np.ones((2, 2)), np.ones((2, 2)))
    assert str(err.value) == "need one std and one accuracy per model; got shapes (2, 2) and (2, 2)"


def test_a_permutation_verdict_over_many_models_is_reproducible():
    """From 10 models on, the pairings are sampled (400,000 of 10!): with a fixed seed, the same p twice."""
    s = [10.0, 8.0, 9.0, 7.0, 5.0, 6.0, 4.0, 2.0, 3.0, 1.0]
    a = np.linspace(0.1, 0.55, 10)
    first, second = lens.smoothness_verdict(s, a), lens.smoothness_verdict(s, a)
    assert first.p_value == second.p_value and first.p_opposite == second.p_opposite
    assert first.verdict == "reproduced" and 0 < first.p_value < 1e-4


# never-learned models: a regime near the uniform prediction although accurate (its text holds two ': ')
def _regimes(labels, never):
    from energy_lib import verdicts

    learned = verdicts.model_regime(clean=0.6, n_images=400, n_classes=10, ce=1.2)
    flat = verdicts.model_regime(clean=0.6, n_images=400, n_classes=10, ce=math.log(10) - 0.01)
    assert learned.learned and not flat.learned and flat.never_learned_text.count(": ") == 2
    return {label: flat if label in never else learned for label in labels}, flat


def test_never_learned_models_are_named_with_all_their_figures():
    labels = ["a", "b", "c", "d", "flat"]
    regimes, flat = _regimes(labels, {"flat"})
    v = lens.smoothness_verdict([4.0, 3.0, 2.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0], labels=labels,
                                regimes=regimes)
    figures = flat.never_learned_text.split(": ", 1)[1]
    assert v.never_learned == {"flat": flat.never_learned_text} and v.n_models == 4
    assert v.reason.endswith("over the 4 robust models that learned; left out of the claim, because the network never "
                             f"learned (a network that did not learn is tight by construction): flat ({figures})")


def test_three_learned_models_without_variation_say_so_not_too_few():
    labels = ["a", "b", "c", "flat"]
    regimes, flat = _regimes(labels, {"flat"})
    v = lens.smoothness_verdict([1.0, 1.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.0], labels=labels, regimes=regimes)
    assert v.n_models == 3 and v.verdict == "inconclusive"
    assert v.reason.startswith("no variation in std(ΔE(x)) or in robust accuracy; left out of the claim")


def test_the_ranking_over_robust_rows_keeps_its_alpha():
    import pandas as pd

    table = pd.DataFrame({"model": ["a", "b", "c", "d", "e"], "std ΔE(x)": S5, "robust": A5, "kind": "run"})
    regimes, _ = _regimes(list(table["model"]), set())
    v = lens.smoothness_over_robust(table, alpha=0.1, regimes=regimes)
    assert (v.alpha, v.verdict) == (0.1, "reproduced")
