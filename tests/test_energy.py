"""Exact identities of the energy view (PAPER.md 1.2, 1.4, 2.6, 5.1 items 1-3), in float64."""
import math

import pytest
import torch
import torch.nn.functional as F

from energy_lib import energy


@pytest.fixture
def logits_pair():
    g = torch.Generator().manual_seed(0)
    nat = torch.randn(64, 10, generator=g, dtype=torch.float64) * 5
    adv = nat + torch.randn(64, 10, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 10, (64,), generator=g)
    return nat, adv, y


def test_cross_entropy_is_joint_minus_marginal(logits_pair):
    nat, _, y = logits_pair
    ce = F.cross_entropy(nat, y, reduction="none")
    torch.testing.assert_close(ce, energy.joint_energy(nat, y) - energy.marginal_energy(nat), atol=1e-12, rtol=0)
    assert (energy.joint_energy(nat, y) >= energy.marginal_energy(nat)).all()


def test_energies_match_their_definitions(logits_pair):
    nat, _, y = logits_pair
    torch.testing.assert_close(energy.marginal_energy(nat), -torch.log(torch.exp(nat).sum(1)))
    torch.testing.assert_close(energy.joint_energy(nat, y), -nat[torch.arange(len(y)), y])
    # p(y|x) = exp(-E(x,y)) / exp(-E(x))
    p = torch.exp(-energy.joint_energy(nat, y) + energy.marginal_energy(nat))
    torch.testing.assert_close(p, F.softmax(nat, 1)[torch.arange(len(y)), y])


def test_marginal_energy_is_stable_for_huge_logits():
    logits = torch.tensor([[1000.0, 1000.0]], dtype=torch.float32)
    assert energy.marginal_energy(logits).item() == pytest.approx(-1000 - math.log(2))


def test_delta_energy_sign_convention(logits_pair):
    nat, adv, y = logits_pair
    d = energy.delta_energy(nat, adv, y)
    torch.testing.assert_close(d.marginal, energy.marginal_energy(nat) - energy.marginal_energy(adv))
    torch.testing.assert_close(d.joint, energy.joint_energy(nat, y) - energy.joint_energy(adv, y))
    zero = energy.delta_energy(nat, nat, y)
    assert zero.marginal.abs().max() == 0 and zero.joint.abs().max() == 0


def test_trades_kl_decomposition_is_exact(logits_pair):
    nat, adv, _ = logits_pair
    parts = energy.trades_kl_decomposition(nat, adv)
    p, log_p, log_q = F.softmax(nat, 1), F.log_softmax(nat, 1), F.log_softmax(adv, 1)
    kl = (p * (log_p - log_q)).sum(1)
    torch.testing.assert_close(parts.kl, kl, atol=1e-12, rtol=0)
    torch.testing.assert_close(parts.conditional + parts.marginal, kl, atol=1e-12, rtol=0)
    torch.testing.assert_close(parts.marginal, energy.marginal_energy(nat) - energy.marginal_energy(adv))
    # The paper's code computes it as KLDivLoss(log q, p) summed over classes.
    kldiv = torch.nn.KLDivLoss(reduction="none")(log_q, p).sum(1)
    torch.testing.assert_close(kldiv, kl, atol=1e-12, rtol=0)


@pytest.mark.parametrize("e, w", [(0.0, 1 / math.log(2)), (-1.0, 0.7615), (-3.87, 0.2570), (-5.0, 0.1997),
                                  (-10.0, 0.1000), (-11.47, 0.0872), (-15.0, 0.0667), (-30.0, 0.0333)])
def test_weat_weight_reference_values(e, w):
    assert energy.weat_weights(torch.tensor([e], dtype=torch.float64)).item() == pytest.approx(w, abs=5e-5)


def test_weat_weights_properties():
    e = torch.linspace(-200, 200, 4001, dtype=torch.float64, requires_grad=True)
    w = energy.weat_weights(e)
    assert not w.requires_grad and torch.isfinite(w).all()
    assert (w > 0).all() and (w <= 1 / math.log(2) + 1e-12).all()
    torch.testing.assert_close(w, energy.weat_weights(-e))  # symmetric in E
    right = w[e.detach() >= 0]
    assert (right[1:] <= right[:-1]).all()  # decreasing in |E|
    torch.testing.assert_close(w[:1], torch.tensor([1 / 200.0], dtype=torch.float64), rtol=1e-3, atol=0)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        energy.delta_energy(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        energy.joint_energy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, classes"):
        energy.marginal_energy(torch.zeros(3))


def test_energy_summary_quantiles():
    s = energy.energy_summary(torch.arange(101, dtype=torch.float64))
    assert s["mean"] == 50 and s["q50"] == 50 and s["q05"] == 5 and s["q95"] == 95


def test_energy_summary_is_the_population_statistics_with_named_quantiles():
    """The records' std is the population SD (no Bessel correction: the tracked images are the
    population being described), under exactly these keys."""
    s = energy.energy_summary(torch.arange(101, dtype=torch.float32))
    assert set(s) == {"mean", "std", "q05", "q25", "q50", "q75", "q95"}
    assert s["std"] == pytest.approx(math.sqrt((101 ** 2 - 1) / 12), abs=1e-12)   # sqrt(850), not sqrt(858.5)
    assert (s["q25"], s["q75"]) == (25, 75)
    assert all(type(v) is float for v in s.values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_give_float32_energies_and_weights(dtype):
    """Energies of bf16/fp16 logits (autocast) are computed in float32; float64 stays float64."""
    logits = torch.randn(4, 10).to(dtype)
    y = torch.arange(4)
    assert energy.marginal_energy(logits).dtype == torch.float32
    assert energy.joint_energy(logits, y).dtype == torch.float32
    assert energy.weat_weights(torch.tensor([-3.0, 4.0]).to(dtype)).dtype == torch.float32
    assert energy.marginal_energy(logits.double()).dtype == torch.float64
    assert energy.weat_weights(torch.tensor([-3.0], dtype=torch.float64)).dtype == torch.float64


def test_the_decomposition_warns_nothing_and_its_errors_name_both_shapes(logits_pair):
    import warnings

    nat, adv, _ = logits_pair
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # e.g. softmax without dim warns; the book shows no warnings
        energy.trades_kl_decomposition(nat, adv)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 4\)"):
        energy.trades_kl_decomposition(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        energy.joint_energy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
