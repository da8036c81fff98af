"""Training losses: each trains, WEAT is the paper's formula, DER's dead zone and AAE masking,
the WEAT/TRADES reductions of PAPER.md 5.1 item 4, and the one-cycle LR facts of item 8."""
import os
from pathlib import Path

os.environ.setdefault("ENERGY_DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from energy_lib import attacks, data, losses, models
from energy_lib.config import ConfigError, TrainConfig
from energy_lib.train import make_optimizer

CFG = TrainConfig(attack_steps=2, device="cpu")


@pytest.fixture(scope="module")
def batch():
    return data.load_dataset("cifar10", "train", n=32).tensors()


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return models.SmallCNN(width=8).train()


def ctx(seed=0, **kw):
    return losses.StepContext(generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("method", list(losses.LOSSES))
def test_each_loss_is_finite_and_decreases_when_trained(method, batch):
    x, y = batch
    model = fresh_model()
    cfg = CFG.replace(method=method)
    loss_fn = losses.get_loss(method)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    values = []
    for step in range(8):
        out = loss_fn(model, x, y, cfg, ctx(seed=step))
        assert torch.isfinite(out.loss) and out.loss.ndim == 0
        assert model.training, "the outer loss runs in train mode (the attack restores it)"
        assert (out.x_adv - x).abs().max() <= cfg.eps + 1e-6 and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
        values.append(out.loss.item())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert sum(values[-3:]) / 3 < sum(values[:3]) / 3, values


def test_unknown_method_names_the_choices():
    with pytest.raises(ConfigError, match="unknown training method 'pgd'.*weat_adv"):
        losses.get_loss("pgd")
    assert set(losses.TRAINING_ATTACKS) == set(losses.LOSSES)


@pytest.mark.parametrize("method,ce_on", [("weat_adv", "adv"), ("weat_nat", "nat")])
def test_weat_matches_an_independent_float64_computation(method, ce_on, batch):
    x, y = batch
    import numpy as np

    model = fresh_model()
    cfg = CFG.replace(method=method, beta=6.0)
    out = losses.get_loss(method)(model, x, y, cfg, ctx())
    # same train-mode forwards (BatchNorm uses batch statistics), then float64 numpy from the logits
    nat = model(x).detach().double().numpy()
    adv = model(out.x_adv).detach().double().numpy()

    def log_softmax(a):
        m = a.max(1, keepdims=True)
        return a - m - np.log(np.exp(a - m).sum(1, keepdims=True))

    energy = -(nat.max(1) + np.log(np.exp(nat - nat.max(1, keepdims=True)).sum(1)))
    w = 1.0 / np.log(1.0 + np.exp(np.abs(energy)))           # the paper's formula, literally
    lp, lq = log_softmax(nat), log_softmax(adv)
    ce = -(lp if ce_on == "nat" else lq)[np.arange(len(y)), y.numpy()]
    kl = (np.exp(lp) * (lp - lq)).sum(1)
    expected = (w * (ce + 6.0 * kl)).sum() / len(y)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_weat_reductions_paper_5_1_item_4(batch):
    x, y = batch
    model = fresh_model()
    ones = lambda e: torch.ones_like(e)  # noqa: E731
    cfg0 = CFG.replace(beta=0.0)
    nat = losses.weat_nat_loss(model, x, y, cfg0, ctx(weight_fn=ones))
    assert nat.loss.item() == pytest.approx(F.cross_entropy(nat.logits_nat, y).item(), abs=1e-6)
    adv = losses.weat_adv_loss(model, x, y, cfg0, ctx(weight_fn=ones))
    assert adv.loss.item() == pytest.approx(F.cross_entropy(adv.logits_adv, y).item(), abs=1e-6)
    # unit weights and natural CE: WEAT_nat is TRADES (same x* from the same random start)
    # (fresh copies: train-mode passes update BatchNorm running stats, which the eval-mode attack uses)
    w_nat = losses.weat_nat_loss(copy.deepcopy(model), x, y, CFG, ctx(seed=3, weight_fn=ones))
    trades = losses.trades_loss(copy.deepcopy(model), x, y, CFG, ctx(seed=3))
    assert torch.equal(w_nat.x_adv, trades.x_adv)
    assert w_nat.loss.item() == pytest.approx(trades.loss.item(), rel=1e-6)


def test_weat_weights_carry_no_gradient(batch):
    x, y = batch
    model = fresh_model()
    seen = {}

    def spy(energy):
        w = losses.weat_weights(energy)
        seen["w"] = w
        return w

    losses.weat_adv_loss(model, x, y, CFG, ctx(weight_fn=spy))
    assert not seen["w"].requires_grad


def test_der_dead_zone_and_excess():
    torch.manual_seed(0)
    nat = torch.randn(6, 10, dtype=torch.float64)
    y = torch.arange(6) % 10
    # adding c to every logit shifts E(x) and E(x,y) by -c: ΔE(x) = ΔE(x,y) = c, norm = |c|·√2
    for c, gamma in [(0.5, 1.0), (1.0, 1.0), (-2.0, 0.5), (0.3, 0.0)]:
        pen = losses.der_penalty(nat, nat + c, y, gamma)
        expected = max(abs(c) * math.sqrt(2) - gamma, 0.0)
        assert torch.allclose(pen, torch.full((6,), expected, dtype=torch.float64), atol=1e-12)


def test_der_is_zero_with_finite_gradient_when_x_adv_equals_x(batch):
    x, y = batch
    model = fresh_model()
    cfg = CFG.replace(eps=0.0, der_gamma=0.0, der_beta=5.0)   # ε = 0 forces x* = x
    out = losses.sat_der_loss(model, x, y, cfg, ctx())
    assert torch.equal(out.x_adv, x)
    assert out.extras["der"].item() == 0.0
    assert out.loss.item() == pytest.approx(F.cross_entropy(out.logits_adv, y).item(), abs=1e-6)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_fgsm_rs_with_start_reproduces_attacks_fgsm(batch):
    x, y = batch
    model = fresh_model()
    x_adv, ce_start = losses.fgsm_rs_with_start(model, x, y, CFG, ctx(seed=7))
    reference = attacks.fgsm(model, x, y, eps=CFG.eps, step_size=CFG.fgsm_alpha * CFG.eps, random_start=True,
                             generator=torch.Generator().manual_seed(7))
    assert torch.equal(x_adv, reference)
    # fgsm_rs_der with der_beta = 0 is exactly FGSM-RS
    a = losses.fgsm_rs_der_loss(copy.deepcopy(model), x, y, CFG.replace(der_beta=0.0), ctx(seed=1))
    b = losses.fgsm_rs_loss(copy.deepcopy(model), x, y, CFG, ctx(seed=1))
    assert torch.equal(a.x_adv, b.x_adv) and a.loss.item() == pytest.approx(b.loss.item(), abs=1e-6)


def test_abnormal_mask_is_the_aae_definition(batch):
    x, y = batch
    model = fresh_model()
    cfg = CFG.replace(eps=16 / 255, fgsm_alpha=2.0)
    x_adv, ce_start = losses.fgsm_rs_with_start(model, x, y, cfg, ctx(seed=2))
    mask = losses.abnormal_mask(model, x_adv, y, ce_start, ctx())
    with torch.no_grad(), attacks.eval_mode(model):
        ce_adv = F.cross_entropy(model(x_adv), y, reduction="none")
    assert torch.equal(mask, (ce_start > ce_adv).float())


def test_single_step_der_has_zero_gradient_for_non_aae_samples(batch, monkeypatch):
    x, y = batch
    model = fresh_model()
    fixed = (torch.arange(len(y)) % 2 == 0).float()          # samples 0, 2, 4, ... are "abnormal"
    monkeypatch.setattr(losses, "abnormal_mask", lambda *a, **k: fixed)
    cfg = CFG.replace(der_gamma=0.0, der_beta=1.0)
    out = losses.fgsm_rs_der_loss(model, x, y, cfg, ctx())
    der_part = out.loss - F.cross_entropy(out.logits_adv, y)
    g_nat, g_adv = torch.autograd.grad(der_part, (out.logits_nat, out.logits_adv))
    normal = fixed == 0
    assert g_nat[normal].abs().max() == 0 and g_adv[normal].abs().max() == 0
    assert g_nat[~normal].abs().sum(1).min() > 0


def test_onecycle_schedule_paper_5_1_item_8():
    cfg = TrainConfig(epochs=100, lr=0.1, device="cpu")
    model = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(model, cfg, steps_per_epoch=391)   # floor(50000/128)+1
    lrs = [sched.get_last_lr()[0]]
    for _ in range(100 * 391 - 1):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(0.004)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(0.1)
    assert abs(peak / len(lrs) - 0.25) < 1 / 391
    assert lrs[-1] == pytest.approx(4e-7, rel=1e-3)
    # the LR at epoch boundaries quoted in PAPER.md 3.3
    for epoch, lr in [(10, 0.037), (50, 0.075), (75, 0.025), (90, 0.0043)]:
        assert lrs[epoch * 391] == pytest.approx(lr, rel=0.05)
