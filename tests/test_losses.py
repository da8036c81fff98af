"""Training losses: each trains, WEAT is the paper's formula with no gradient through its weight,
DER's dead zone and AAE masking, MART is its paper's formula, the WEAT/TRADES reductions of
PAPER.md 5.1 item 4, and the one-cycle LR and momentum facts of item 8 / 3.3."""
import os
from pathlib import Path

os.environ.setdefault("ENERGY_DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from energy_lib import attacks, data, energy, losses, models
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
        # N-FGSM is not projected back onto the ε-ball: its x* may reach (noise + α)·ε
        radius = (cfg.nfgsm_noise + cfg.fgsm_alpha) * cfg.eps if method == "n_fgsm" else cfg.eps
        assert (out.x_adv - x).abs().max() <= radius + 1e-6 and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
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


def _flat_grad(loss, model):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])


@pytest.mark.parametrize("method,ce_on", [("weat_adv", "adv"), ("weat_nat", "nat")])
def test_weat_gradient_does_not_flow_through_the_weight(method, ce_on, batch):
    """PAPER.md 2.6: w(E(x)) is detached. The parameter gradient of the WEAT loss equals the gradient
    with the same weight values fed in as constants, whether weight_fn detaches or not; and it
    differs from the gradient of the same loss with the weight left in the graph (so this can fail)."""
    x, y = batch[0][:16], batch[1][:16]
    model = fresh_model()
    loss_fn = losses.get_loss(method)

    def run(**kw):   # a fresh copy each time: same parameters, BN running stats and attack seed
        m = copy.deepcopy(model)
        out = loss_fn(m, x, y, CFG, ctx(seed=5, **kw))
        return out, _flat_grad(out.loss, m)

    with torch.no_grad():   # the weight values beforehand: train-mode clean forward, as in _weat
        w_const = energy.weat_weights(energy.marginal_energy(copy.deepcopy(model)(x)))
    out_const, g_const = run(weight_fn=lambda e: w_const.clone())
    out_default, g_default = run()                                  # energy.weat_weights
    seen = {}

    def attached(e):   # 1/softplus(|E|) still connected to the parameters
        w = 1.0 / F.softplus(e.abs())
        seen["requires_grad"] = w.requires_grad
        return w

    out_attached, g_attached = run(weight_fn=attached)
    assert seen["requires_grad"], "weight_fn must receive the graph-connected energy for this test to mean anything"
    e = energy.marginal_energy(model(x))
    assert e.requires_grad and not energy.weat_weights(e).requires_grad
    for out, g in [(out_default, g_default), (out_attached, g_attached)]:
        assert torch.equal(out.x_adv, out_const.x_adv)
        assert out.loss.item() == pytest.approx(out_const.loss.item(), rel=1e-6)
        assert torch.allclose(g, g_const, rtol=1e-5, atol=1e-8), (g - g_const).abs().max()

    # The same loss value with the weight NOT detached has a clearly different gradient.
    m = copy.deepcopy(model)
    logits_nat, logits_adv = m(x), m(out_const.x_adv)
    w = 1.0 / F.softplus(energy.marginal_energy(logits_nat).abs())
    ce = F.cross_entropy(logits_nat if ce_on == "nat" else logits_adv, y, reduction="none")
    leaky = (w * (ce + CFG.beta * losses.kl_per_sample(logits_nat, logits_adv))).sum() / len(y)
    assert leaky.item() == pytest.approx(out_const.loss.item(), rel=1e-6)
    g_leaky = _flat_grad(leaky, m)
    assert (g_leaky - g_const).norm() > 0.05 * g_const.norm()


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


def test_der_is_the_euclidean_excess_for_generic_delta_energies():
    """PAPER.md 1.5 / 5.1 item 5 with ΔE(x) != ΔE(x,y): max(sqrt(ΔE(x)² + ΔE(x,y)²) − γ, 0), exactly
    0 inside the γ-ball (boundary included) and the excess outside."""
    g = torch.Generator().manual_seed(1)
    nat = 3 * torch.randn(16, 10, dtype=torch.float64, generator=g)
    adv = nat + torch.randn(16, 10, dtype=torch.float64, generator=g)
    y = torch.arange(16) % 10
    rows = torch.arange(16)
    d_marginal = -torch.logsumexp(nat, 1) + torch.logsumexp(adv, 1)     # E(x) − E(x*)
    d_joint = -nat[rows, y] + adv[rows, y]                              # E(x,y) − E(x*,y)
    assert (d_marginal - d_joint).abs().min() > 1e-3                    # two different components
    norm = (d_marginal ** 2 + d_joint ** 2).sqrt()
    for gamma in [0.0, norm.median().item(), norm.max().item() + 0.5]:
        pen = losses.der_penalty(nat, adv, y, gamma)
        assert torch.allclose(pen, (norm - gamma).clamp(min=0), atol=1e-12)
        inside = norm < gamma - 1e-9
        assert (pen[inside] == 0).all() and (pen[norm > gamma + 1e-9] > 0).all()
    on_boundary = losses.der_penalty(nat[:1], adv[:1], y[:1], norm[0].item())
    assert on_boundary.abs().item() < 1e-12


@pytest.mark.parametrize("gamma", [0.0, 0.1, 3.0])
def test_der_is_zero_for_any_gamma_when_x_adv_equals_x(gamma, batch):
    x, y = batch[0][:8], batch[1][:8]
    logits = fresh_model()(x).double()
    pen = losses.der_penalty(logits, logits.detach().clone().requires_grad_(True), y, gamma)
    assert torch.equal(pen, torch.zeros_like(pen))
    (grad,) = torch.autograd.grad(pen.sum(), logits)
    assert torch.isfinite(grad).all() and grad.abs().max() == 0
    # the same through every DER method: ε = 0 forces x* = x, so DER adds nothing
    for method in ("sat_der", "trades_der", "fgsm_rs_der"):
        cfg = CFG.replace(method=method, eps=0.0, der_gamma=gamma, der_beta=5.0)
        out = losses.get_loss(method)(fresh_model(), x, y, cfg, ctx())
        assert torch.equal(out.x_adv, x) and out.extras["der"].item() == 0.0, method


def test_mart_matches_its_paper_formula(batch, monkeypatch):
    """Wang et al. 2020 / PAPER.md 2.6b, recomputed in float64 from the logits for a fixed x*:
    mean[CE(f(x*), y) − log(1.0001 − max_{k≠y} p_k(x*))] + β·mean[KL(p(x) ‖ p(x*))·(1 − p_y(x))]."""
    import numpy as np

    x, _ = batch
    model = fresh_model()
    with torch.no_grad():                 # sharper than at init: p far from uniform, KL far from symmetric
        model.head[-1].weight.mul_(10)
        model.head[-1].bias.mul_(10)
    g = torch.Generator().manual_seed(11)
    x_adv = (x + CFG.eps * torch.randn(x.shape, generator=g).sign()).clamp(0, 1)
    monkeypatch.setattr(losses, "pgd_ce_attack", lambda *a, **k: x_adv)
    with torch.no_grad():                 # train mode, like the loss (BN batch statistics)
        nat, adv = model(x).double().numpy(), model(x_adv).double().numpy()
    # labels: y = argmax p(x*) for half the batch (then max_{k≠y} is the runner-up), another class otherwise
    top = adv.argmax(1)
    y_np = np.where(np.arange(len(x)) % 2 == 0, top, (top + 1 + np.arange(len(x)) % 9) % 10)
    y = torch.from_numpy(y_np)
    out = losses.mart_loss(model, x, y, CFG.replace(method="mart", beta=6.0), ctx())
    assert torch.equal(out.x_adv, x_adv)

    def softmax(a):
        e = np.exp(a - a.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    rows = np.arange(len(x))
    p_nat, p_adv = softmax(nat), softmax(adv)
    others = p_adv.copy()
    others[rows, y_np] = -np.inf
    bce = -np.log(p_adv[rows, y_np]) - np.log(1.0001 - others.max(1))
    kl = (p_nat * (np.log(p_nat) - np.log(p_adv))).sum(1)
    expected = bce.mean() + 6.0 * (kl * (1.0 - p_nat[rows, y_np])).mean()
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.extras["kl"].item() == pytest.approx(kl.mean(), rel=1e-4)


def test_fgsm_rs_with_start_reproduces_attacks_fgsm(batch):
    x, y = batch
    model = fresh_model()
    x_adv, ce_start = losses.fgsm_rs_with_start(model, x, y, CFG.replace(single_step_mode="eval"), ctx(seed=7))
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
    for mode in ("eval", "train"):
        m = copy.deepcopy(model)
        c = cfg.replace(single_step_mode=mode)
        x_adv, ce_start = losses.fgsm_rs_with_start(m, x, y, c, ctx(seed=2))
        reference = copy.deepcopy(m)     # the state the mask's forward sees (train mode updates BN stats)
        mask = losses.abnormal_mask(m, x_adv, y, ce_start, ctx(), c)
        reference.train(mode == "train")
        with torch.no_grad():
            ce_adv = F.cross_entropy(reference(x_adv), y, reduction="none")
        assert torch.equal(mask, (ce_start > ce_adv).float())


def test_single_step_attack_runs_in_the_configured_batchnorm_mode(batch):
    """PAPER.md 2.3: Wong et al. and AAER attack with train-mode BatchNorm (the default); "eval"
    is the alternative. In train mode the attack's forward uses batch statistics and updates the
    running ones; in eval mode it leaves them untouched. Both return to the caller's mode."""
    x, y = batch
    assert TrainConfig().single_step_mode == "train"
    model = fresh_model()
    for _ in range(3):      # running statistics different from the batch's
        model(torch.rand_like(x) * 0.3)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    results = {}
    for mode in ("train", "eval"):
        m = copy.deepcopy(model)
        before = [b.clone() for b in m.buffers()]
        cfg = CFG.replace(method="fgsm_rs", single_step_mode=mode)
        results[mode] = losses.fgsm_rs_attack(m, x, y, cfg, ctx(seed=4))
        assert m.training
        changed = any(not torch.equal(a, b) for a, b in zip(before, m.buffers()))
        assert changed == (mode == "train"), mode
        # the same step computed by hand in that mode
        ref = copy.deepcopy(model).train(mode == "train")
        g = torch.Generator().manual_seed(4)
        start = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * cfg.eps).clamp(0, 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(ref(start), y), start)
        expected = torch.min(torch.max(start + cfg.fgsm_alpha * cfg.eps * grad.sign(), x - cfg.eps), x + cfg.eps)
        assert torch.equal(results[mode], expected.clamp(0, 1).detach())
    assert bn.momentum is not None and not torch.equal(results["train"], results["eval"])


PROFILES = ("smoke", "default", "paper")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("method", list(losses.LOSSES))
def test_the_training_attack_of_every_method_reaches_eps(method, profile, batch):
    """Defect 1 of issue 10: with each profile's steps and (resolved) step, the x* every method trains
    on moves some pixel to |δ| = ε, on a real batch (and never beyond ε)."""
    x, y = batch
    cfg = TrainConfig.from_profile(profile, method=method, device="cpu")
    out = losses.get_loss(method)(fresh_model(), x, y, cfg, ctx(seed=1))
    reach = (out.x_adv - x).abs().max().item()
    if method == "n_fgsm":   # unprojected by design: beyond ε, within noise + step
        assert cfg.eps * 2 < reach <= (cfg.nfgsm_noise + cfg.fgsm_alpha) * cfg.eps + 1e-6, (profile, reach * 255)
        return
    assert reach == pytest.approx(cfg.eps, abs=1e-6), (method, profile, reach * 255)


def test_n_fgsm_is_the_unprojected_step_from_a_wide_uniform_start(batch):
    """N-FGSM (de Jorge et al. 2022) by hand: x + U[-kε, kε] clipped to [0, 1], one sign step of αε
    on the CE at that start, clipped to [0, 1] only (no projection onto the ε-ball)."""
    x, y = batch
    cfg = CFG.replace(method="n_fgsm", fgsm_alpha=1.0, nfgsm_noise=2.0, eps=8 / 255)
    model = fresh_model().eval()
    out = losses.n_fgsm_attack(model, x, y, cfg, ctx(seed=3))
    g = torch.Generator().manual_seed(3)
    start = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 2 * cfg.eps).clamp(0, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(start), y, reduction="sum"), start)
    expected = (start + cfg.eps * grad.sign()).clamp(0, 1).detach()
    assert torch.equal(out, expected)
    assert (out - x).abs().max() > 2.5 * cfg.eps        # it does leave the ε-ball


def test_fgsm_der_gates_der_on_abnormal_examples_from_x(batch):
    """FGSM + DER: the AAE test's reference point is x itself (FGSM starts there), and the loss is
    CE(f(x*)) + der_beta·mean(1_AAE·L_ΔE), computed by hand from the same x*."""
    x, y = batch
    cfg = CFG.replace(method="fgsm_der", der_beta=2.0, der_gamma=0.0, fgsm_alpha=1.0, single_step_mode="eval")
    model = fresh_model().eval()
    out = losses.fgsm_der_loss(model, x, y, cfg, ctx(seed=0))
    with torch.no_grad():
        ln, la = model(x), model(out.x_adv)
    aae = (F.cross_entropy(ln, y, reduction="none") > F.cross_entropy(la, y, reduction="none")).float()
    d_marg = -torch.logsumexp(ln, 1) + torch.logsumexp(la, 1)
    d_joint = -ln.gather(1, y[:, None]).squeeze(1) + la.gather(1, y[:, None]).squeeze(1)
    expected = F.cross_entropy(la, y) + 2.0 * (aae * torch.sqrt(d_marg ** 2 + d_joint ** 2)).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.extras["aae_frac"].item() == pytest.approx(aae.mean().item())


def test_the_aae_test_leaves_batchnorm_statistics_alone(batch):
    """The AAE test's extra forward runs in the attack's BatchNorm mode but never updates the
    running statistics: a DER arm sees the same BatchNorm mix as its control (issue 23, point 6)."""
    x, y = batch
    model = fresh_model().train()
    before = {k: b.clone() for k, b in model.named_buffers()}
    cfg = CFG.replace(method="fgsm_rs_der", single_step_mode="train")
    losses.abnormal_mask(model, x, y, torch.zeros(len(y)), ctx(), cfg)
    assert all(torch.equal(before[k], b) for k, b in model.named_buffers())
    model(x)   # an ordinary train-mode forward does update them: the check can fail
    assert not all(torch.equal(before[k], b) for k, b in model.named_buffers())


def test_the_old_fixed_step_could_not_reach_eps_with_few_steps(batch):
    """The defect the step rule fixes: TRADES' start is x + 0.001·N, so 2 steps of 2/255 end at
    most 4/255 + 0.001·|N| from x, short of ε = 8/255; the rule's step reaches ε."""
    x, y = batch
    fixed = CFG.replace(method="trades", attack_steps=2, step_size=2 / 255)
    out = losses.trades_loss(fresh_model(), x, y, fixed, ctx(seed=1))
    assert (out.x_adv - x).abs().max().item() < 5.5 / 255
    ruled = CFG.replace(method="trades", attack_steps=2, step_size=None)
    assert ruled.step_size == pytest.approx(2.5 * ruled.eps / 2)
    out = losses.trades_loss(fresh_model(), x, y, ruled, ctx(seed=1))
    assert (out.x_adv - x).abs().max().item() == pytest.approx(ruled.eps, abs=1e-6)


def test_trades_attack_starts_at_x_plus_a_thousandth_of_a_gaussian(batch):
    """TRADES' inner maximisation starts at x + 0.001·N(0,1) (PAPER.md 2.6), not uniformly in the
    ε-ball: with zero steps the attack returns exactly that start."""
    x, y = batch
    cfg = CFG.replace(method="trades", attack_steps=0)
    x_adv = losses.trades_kl_attack(fresh_model(), x, y, cfg, ctx(seed=3))
    noise = 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x_adv, (x + noise).clamp(x - cfg.eps, x + cfg.eps).clamp(0, 1))
    assert (x_adv - x).abs().max() < 0.006 < cfg.eps


def _independent_kl_pgd(model, x, cfg, seed, reverse=False):
    """PGD ascending KL(p(.|x) || p(.|x*)) (or the reverse KL), written out from PAPER.md 2.6, in
    float32 like the library (sign steps amplify rounding: a float64 copy drifts apart)."""
    with torch.no_grad():
        p_nat = F.softmax(model(x), 1)
    x_adv = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    x_adv = x_adv.clamp(x - cfg.eps, x + cfg.eps).clamp(0, 1)
    for _ in range(cfg.attack_steps):
        x_adv.requires_grad_(True)
        log_q = F.log_softmax(model(x_adv), 1)
        if reverse:
            kl = (log_q.exp() * (log_q - p_nat.log())).sum()
        else:
            kl = (p_nat * (p_nat.log() - log_q)).sum()
        (grad,) = torch.autograd.grad(kl, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + cfg.step_size * grad.sign(), x - cfg.eps), x + cfg.eps).clamp(0, 1)
    return x_adv


def test_trades_attack_ascends_kl_of_natural_to_adversarial(batch):
    """The TRADES attack maximises KL(p(.|x) || p(.|x*)) (the direction of TRADES' loss), not the
    reverse KL: its x* is an independent forward-KL PGD's on (nearly) every pixel, while a
    reverse-KL PGD from the same start agrees on about half of them (measured: 1.0 vs 0.63)."""
    x, y = batch
    model = fresh_model().eval()
    cfg = CFG.replace(method="trades", attack_steps=3)
    x_adv = losses.trades_kl_attack(model, x, y, cfg, ctx(seed=5))
    agree = lambda other: (x_adv - other).abs().lt(1e-6).float().mean().item()  # noqa: E731
    forward = agree(_independent_kl_pgd(model, x, cfg, 5))
    reverse = agree(_independent_kl_pgd(model, x, cfg, 5, reverse=True))
    assert forward > 0.99, forward
    assert reverse < 0.85, reverse


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
    """PAPER.md 3.3 / 5.1 item 8: LR 0.004 -> 0.1 at 25% -> 4e-7, and OneCycleLR's momentum cycling
    0.95 -> 0.85 -> 0.95 of SGD (overriding the nominal 0.9), through the paper profile's config."""
    cfg = TrainConfig.from_profile("paper", overrides={"device": "cpu"})
    assert (cfg.epochs, cfg.schedule, cfg.lr, cfg.pct_start, cfg.momentum) == (100, "onecycle", 0.1, 0.25, 0.9)
    model = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(model, cfg, steps_per_epoch=391)   # floor(50000/128)+1
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["weight_decay"] == 5e-4
    lrs, moms = [sched.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(100 * 391 - 1):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
    assert lrs[0] == pytest.approx(0.004)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(0.1)
    assert abs(peak / len(lrs) - 0.25) < 1 / 391
    assert lrs[-1] == pytest.approx(4e-7, rel=1e-3)
    # the LR at epoch boundaries quoted in PAPER.md 3.3
    for epoch, lr in [(10, 0.037), (50, 0.075), (75, 0.025), (90, 0.0043)]:
        assert lrs[epoch * 391] == pytest.approx(lr, rel=0.05)
    # momentum: 0.95 at the start, its minimum 0.85 exactly at the LR peak, back to 0.95 at the end
    assert moms[0] == pytest.approx(0.95) and moms[-1] == pytest.approx(0.95, abs=1e-6)
    assert moms[peak] == pytest.approx(0.85)
    assert min(range(len(moms)), key=moms.__getitem__) == peak
    assert min(moms) == pytest.approx(0.85) and max(moms) == pytest.approx(0.95)
    assert moms[peak // 2] == pytest.approx(0.90, abs=2e-3)          # cosine: halfway down at half the warm-up
    assert all(a >= b for a, b in zip(moms[:peak], moms[1:peak + 1]))  # falls while the LR rises ...
    assert all(a <= b for a, b in zip(moms[peak:-1], moms[peak + 1:]))  # ... and rises while it falls


@pytest.mark.parametrize("base, with_der", [("sat", "sat_der"), ("fgsm_rs", "fgsm_rs_der")])
def test_a_der_arm_sees_the_batchnorm_statistics_of_its_base_method(base, with_der, batch):
    """Issue 23, point 6: DER's extra clean pass must not change BatchNorm's running statistics, so a
    DER arm and its control differ by the penalty only: after one step on the same batch, their
    running statistics are identical."""
    x, y = batch
    buffers = {}
    for method in (base, with_der):
        model = fresh_model().train()
        cfg = CFG.replace(method=method, single_step_mode="eval")
        out = losses.get_loss(method)(model, x, y, cfg, ctx(seed=0))
        out.loss.backward()
        buffers[method] = {k: b.clone() for k, b in model.named_buffers()}
    assert all(torch.equal(buffers[base][k], buffers[with_der][k]) for k in buffers[base])


@pytest.mark.parametrize("base, with_der", [("sat", "sat_der"), ("trades", "trades_der"),
                                            ("fgsm", "fgsm_der"), ("fgsm_rs", "fgsm_rs_der")])
def test_a_der_arm_adds_plus_beta_times_its_penalty_to_its_base_loss(base, with_der, batch, monkeypatch):
    """PAPER.md 2.7: DER is a penalty, L = L_base + β·mean L_ΔE with β > 0 (a wrong sign would reward
    energy divergence). Same model, same seed: the DER arm's loss is the base loss plus β times its
    (non-zero) penalty, which is L_ΔE of the logits it returns. The single-step arms penalise abnormal
    adversarial examples only; every example is made one here, so that their penalty is not 0."""
    monkeypatch.setattr(losses, "abnormal_mask", lambda model, x_adv, y, *a, **k: torch.ones(len(y)))
    x, y = batch
    beta = 2.5
    cfg = CFG.replace(der_gamma=0.0, der_beta=beta, single_step_mode="eval")
    out_base = losses.get_loss(base)(fresh_model().train(), x, y, cfg.replace(method=base), ctx(seed=3))
    out_der = losses.get_loss(with_der)(fresh_model().train(), x, y, cfg.replace(method=with_der), ctx(seed=3))
    der = out_der.extras["der"]
    assert der.item() > 1e-4
    assert out_der.loss.item() == pytest.approx(out_base.loss.item() + beta * der.item(), rel=1e-5, abs=1e-6)
    recomputed = losses.der_penalty(out_der.logits_nat, out_der.logits_adv, y, 0.0).mean()
    assert der.item() == pytest.approx(recomputed.item(), rel=1e-6)


def test_each_method_names_its_training_attack_and_its_unused_settings():
    """What the loop measures the training-set ΔE with, and what the config tells a user is ignored."""
    assert losses.get_training_attack("sat") is losses.pgd_ce_attack
    assert losses.get_training_attack("weat_adv") is losses.trades_kl_attack
    assert losses.get_training_attack("fgsm_rs_der") is losses.fgsm_rs_attack
    assert losses.get_training_attack("n_fgsm") is losses.n_fgsm_attack
    assert losses.unused_hyperparameters("sat") == ("beta", "der_beta", "der_gamma", "fgsm_alpha",
                                                    "single_step_mode", "nfgsm_noise")
    assert losses.unused_hyperparameters("sat_der") == ("beta", "fgsm_alpha", "single_step_mode", "nfgsm_noise")
    for call in (losses.get_training_attack, losses.unused_hyperparameters, losses.get_loss):
        with pytest.raises(ConfigError, match=r"unknown training method 'pgd'; choose one of sat, trades"):
            call("pgd")


@pytest.mark.parametrize("method", list(losses.LOSSES))
def test_each_loss_returns_the_logits_of_the_example_it_trained_on(method, batch):
    """LossOutput.logits_adv are f(x*) for the x* returned (the loop's batch accuracy and ΔE read them)."""
    x, y = batch[0][:16], batch[1][:16]
    model = fresh_model().train()
    out = losses.get_loss(method)(model, x, y, CFG.replace(method=method), ctx())
    with torch.no_grad():
        again = model(out.x_adv)
    assert out.logits_adv is not None and torch.allclose(out.logits_adv, again, atol=1e-5)
    assert (out.x_adv - x).abs().max() > 0
    # the methods with a clean pass return its logits (the loop's clean batch accuracy), the others None
    clean_pass = {"trades", "weat_nat", "weat_adv", "mart", "sat_der", "trades_der", "fgsm_der", "fgsm_rs_der"}
    assert (out.logits_nat is not None) == (method in clean_pass)
    if out.logits_nat is not None:
        with torch.no_grad():
            assert torch.allclose(out.logits_nat, model(x), atol=1e-5)


def test_an_abnormal_adversarial_example_is_one_whose_step_lowered_the_ce_strictly(batch):
    """PAPER.md 2.3 (AAER): 1_AAE = [CE(start) > CE(x*)]; a step that leaves the CE equal is not abnormal."""
    x, y = batch[0][:6], batch[1][:6]
    model = fresh_model().eval()
    cfg = CFG.replace(single_step_mode="eval")
    with torch.no_grad():
        ce_adv = F.cross_entropy(losses.forward(model, x, ctx()), y, reduction="none")
    shift = torch.tensor([0.0, 1e-3, -1e-3, 0.0, 1e-3, -1e-3])
    mask = losses.abnormal_mask(model, x, y, ce_adv + shift, ctx(), cfg)
    assert mask.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("with_start", [losses.fgsm_with_start, losses.fgsm_rs_with_start, losses.n_fgsm_with_start])
def test_a_single_step_returns_the_per_sample_ce_at_its_start_in_its_batchnorm_mode(with_start, batch):
    """The AAE test compares, image by image, the CE at the start with the CE at x*: the start's CE is
    per sample, measured in the attack's BatchNorm mode ("eval": eval mode, running statistics
    untouched, the model back in train mode after)."""
    x, y = batch[0][:16], batch[1][:16]
    model = fresh_model().train()
    before = {k: b.clone() for k, b in model.named_buffers()}
    cfg = CFG.replace(single_step_mode="eval")
    x_adv, ce_start = with_start(model, x, y, cfg, ctx(seed=5))
    assert model.training and all(torch.equal(before[k], b) for k, b in model.named_buffers())
    assert ce_start.shape == (16,)
    # the start point, drawn again from the same generator state
    g = torch.Generator().manual_seed(5)
    if with_start is losses.fgsm_with_start:
        start = x
    elif with_start is losses.fgsm_rs_with_start:
        start = (x + attacks.uniform_start(x, cfg.eps, g)).clamp(x - cfg.eps, x + cfg.eps).clamp(0, 1)
    else:
        start = (x + attacks.uniform_start(x, cfg.nfgsm_noise * cfg.eps, g)).clamp(0, 1)
    with torch.no_grad():
        expected = F.cross_entropy(model.eval()(start), y, reduction="none")
    torch.testing.assert_close(ce_start, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", list(losses.LOSSES))
def test_no_loss_warns_even_when_the_batch_lacks_the_last_classes(method, batch):
    """The book shows no warnings (an implicit softmax dimension warns), and a batch without classes
    5-9 is still a 10-class problem (a one-hot sized from the labels would not be)."""
    import warnings

    x, y = batch[0][:16], batch[1][:16] % 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = losses.get_loss(method)(fresh_model().train(), x, y, CFG.replace(method=method), ctx())
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("method", ["trades", "weat_nat", "weat_adv", "mart", "trades_der"])
def test_the_kl_term_is_reported_as_the_batch_mean_of_the_per_sample_kl(method, batch):
    """extras["kl"] (the loop logs it per epoch) is mean KL(p(.|x) ‖ p(.|x*)) of the returned logits."""
    x, y = batch[0][:16], batch[1][:16]
    out = losses.get_loss(method)(fresh_model().train(), x, y, CFG.replace(method=method), ctx())
    expected = losses.kl_per_sample(out.logits_nat, out.logits_adv).mean()
    assert out.extras["kl"].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-8)
    assert out.extras["kl"].item() > 0
    if method.startswith("weat"):      # and WEAT's mean weight w(E(x)) (chapter 4 reports it)
        w = energy.weat_weights(energy.marginal_energy(out.logits_nat)).mean()
        assert out.extras["weight"].item() == pytest.approx(w.item(), rel=1e-6)


def test_the_training_attacks_are_pgd_with_their_methods_settings(batch):
    """PGD-CE: uniform start from the step's generator, the step's autocast; TRADES-KL: 0.001·N(0,1)
    start, the KL to the clean distribution it is given (the tracking passes the one it computed)."""
    x, y = batch[0][:8], batch[1][:8]
    model = fresh_model()
    common = dict(eps=CFG.eps, step_size=CFG.step_size, steps=CFG.attack_steps)
    adv = {}
    for autocast in (None, torch.bfloat16):
        adv[autocast] = losses.pgd_ce_attack(model, x, y, CFG, ctx(seed=2, autocast_dtype=autocast))
        want = attacks.pgd(model, x, y, **common, loss="ce", random_start="uniform",
                           generator=torch.Generator().manual_seed(2), autocast_dtype=autocast)
        assert torch.equal(adv[autocast], want)
    assert not torch.equal(adv[None], adv[torch.bfloat16])          # the autocast setting reaches the attack
    assert not torch.equal(adv[None], losses.pgd_ce_attack(model, x, y, CFG, ctx(seed=3)))   # so does the generator
    uniform = torch.full((8, 10), 0.1)
    got = losses.trades_kl_attack(model, x, y, CFG, ctx(seed=2), p_nat=uniform)
    want = attacks.pgd(model, x, y, **common, loss="kl", random_start="normal",
                       generator=torch.Generator().manual_seed(2), p_nat=uniform)
    assert torch.equal(got, want)
    assert not torch.equal(got, losses.trades_kl_attack(model, x, y, CFG, ctx(seed=2)))
    bf16 = losses.trades_kl_attack(model, x, y, CFG, ctx(seed=2, autocast_dtype=torch.bfloat16), p_nat=uniform)
    assert torch.equal(bf16, attacks.pgd(model, x, y, **common, loss="kl", random_start="normal", p_nat=uniform,
                                         generator=torch.Generator().manual_seed(2), autocast_dtype=torch.bfloat16))
    assert not torch.equal(bf16, got)


def test_the_forward_runs_under_the_steps_autocast_and_returns_float32(batch):
    x = batch[0][:8]
    model = fresh_model().eval()
    out = {}
    for dtype in (torch.bfloat16, torch.float16):
        out[dtype] = losses.forward(model, x, ctx(autocast_dtype=dtype))
        with torch.no_grad(), torch.autocast(device_type="cpu", dtype=dtype):
            want = model(x).float()
        assert out[dtype].dtype == torch.float32 and torch.equal(out[dtype].detach(), want)
    assert not torch.equal(out[torch.bfloat16], out[torch.float16])      # the dtype asked for, not a default
    full = losses.forward(model, x, ctx())
    assert full.dtype == torch.float32 and not torch.equal(full, out[torch.bfloat16])
