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
