"""Attack invariants (ε-ball, [0,1], loss increases, eval mode restored) and the paper's sign facts
on the real standard ResNet-18 and real CIFAR-10 test images (PAPER.md 2.1, 5.2 item 1)."""
import pytest
import torch
import torch.nn.functional as F

from energy_lib import attacks, data, models
from energy_lib.config import ConfigError
from energy_lib.energy import joint_energy, marginal_energy

EPS = 8 / 255


@pytest.fixture(scope="module")
def real_batch():
    return data.load_dataset("cifar10", "test", n=48).tensors()


@pytest.fixture(scope="module")
def standard_model():
    return models.pretrained_standard_resnet18()


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return models.build_model("small_cnn").train()


@pytest.mark.parametrize("name", list(attacks.ATTACKS))
def test_attack_stays_in_ball_and_image_range_and_restores_mode(name, small_model, real_batch):
    x, y = real_batch
    params_before = [p.detach().clone() for p in small_model.parameters()]
    running_before = small_model.features[0][1].running_mean.clone()
    x_adv = attacks.get_attack(name)(small_model, x, y, eps=EPS, step_size=2 / 255, steps=3,
                                     generator=torch.Generator().manual_seed(0))
    assert x_adv.dtype == torch.float32 and x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert small_model.training  # restored
    assert all(p.grad is None for p in small_model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(params_before, small_model.parameters()))
    assert torch.equal(running_before, small_model.features[0][1].running_mean)  # ran in eval mode


def test_pgd_increases_the_cross_entropy(standard_model, real_batch):
    x, y = real_batch
    x_adv = attacks.pgd(standard_model, x, y, eps=EPS, step_size=2 / 255, steps=5,
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ce_nat = F.cross_entropy(standard_model(x), y, reduction="none")
        ce_adv = F.cross_entropy(standard_model(x_adv), y, reduction="none")
    assert (ce_adv > ce_nat).float().mean() > 0.95
    assert (standard_model(x_adv).argmax(1) == y).float().mean() < 0.05  # standard model is not robust


def test_trades_kl_attack_increases_the_kl(standard_model, real_batch):
    x, y = real_batch
    x_adv = attacks.get_attack("trades_kl")(standard_model, x, y, eps=EPS, steps=5,
                                            generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = F.softmax(standard_model(x), 1)
        kl = (p * (F.log_softmax(standard_model(x), 1) - F.log_softmax(standard_model(x_adv), 1))).sum(1)
    assert kl.mean() > 1.0


def test_ce_and_kl_attacks_lower_and_margin_attacks_raise_the_marginal_energy(standard_model, real_batch):
    """PAPER.md 2.1 / 5.2 item 1: untargeted CE and TRADES-KL attacks give E(x*) < E(x); targeted
    (margin) and CW-margin attacks give E(x*) > E(x); every attack raises E(x*, y) > E(x, y)."""
    x, y = real_batch
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        logits_nat = standard_model(x)
    x_pgd = attacks.get_attack("pgd")(standard_model, x, y, eps=EPS, steps=10, generator=g)
    x_tgt = attacks.get_attack("pgd_targeted")(standard_model, x, y, eps=EPS, steps=10, generator=g)
    # 5 steps of 2/255 already reach the ε = 8/255 boundary; fewer steps keep the test cheap.
    x_kl = attacks.get_attack("trades_kl")(standard_model, x, y, eps=EPS, steps=5, generator=g)
    x_cw = attacks.get_attack("cw")(standard_model, x, y, eps=EPS, steps=5, generator=g)
    with torch.no_grad():
        e_nat = marginal_energy(logits_nat).mean()
        exy_nat = joint_energy(logits_nat, y).mean()
        logits = {"pgd": standard_model(x_pgd), "pgd_targeted": standard_model(x_tgt),
                  "trades_kl": standard_model(x_kl), "cw": standard_model(x_cw)}
    e_adv = {name: marginal_energy(out).mean() for name, out in logits.items()}
    assert e_adv["pgd"] < e_nat - 5, (e_adv["pgd"], e_nat)     # several units lower (≈ -13 -> -25)
    assert e_adv["pgd_targeted"] > e_nat + 2, (e_adv["pgd_targeted"], e_nat)
    assert (logits["pgd_targeted"].argmax(1) != y).float().mean() > 0.9  # and it does fool the model
    assert e_adv["trades_kl"] - e_nat < 0, (e_adv["trades_kl"], e_nat)
    assert e_adv["cw"] - e_nat > 0, (e_adv["cw"], e_nat)
    for name, out in logits.items():  # the true class always becomes less likely
        assert joint_energy(out, y).mean() - exy_nat > 0, (name, joint_energy(out, y).mean(), exy_nat)


def test_targeted_cross_entropy_overshoots_to_low_energy(standard_model, real_batch):
    """Not in the paper: descending the target's CE to convergence piles mass on the target and
    lowers E(x) below the natural level, unlike the margin-based targeted attack (chapter 1)."""
    x, y = real_batch
    x_adv = attacks.get_attack("pgd_targeted_ce")(standard_model, x, y, eps=EPS, steps=10,
                                                  generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert marginal_energy(standard_model(x_adv)).mean() < marginal_energy(standard_model(x)).mean()


def test_targeted_pgd_reaches_its_target(standard_model, real_batch):
    x, y = real_batch
    target = attacks.random_targets(y, 10, torch.Generator().manual_seed(1))
    assert (target != y).all()
    x_adv = attacks.pgd(standard_model, x, y, eps=EPS, step_size=2 / 255, steps=10, targeted=True, target=target)
    with torch.no_grad():
        assert (standard_model(x_adv).argmax(1) == target).float().mean() > 0.8


def test_cw_margin_with_zero_confidence_stops_pushing_once_fooled(standard_model, real_batch):
    x, y = real_batch
    x_cw = attacks.get_attack("cw")(standard_model, x, y, eps=EPS, steps=10)
    x_ce = attacks.get_attack("pgd")(standard_model, x, y, eps=EPS, steps=10)
    with torch.no_grad():
        m_cw, m_ce = attacks.margin(standard_model(x_cw), y), attacks.margin(standard_model(x_ce), y)
    assert (m_cw > 0).float().mean() > 0.8
    # The clamped margin has zero gradient past the boundary; cross-entropy keeps pushing.
    assert m_cw.median() < 0.5 * m_ce.median(), (m_cw.median(), m_ce.median())


def test_fgsm_takes_one_full_step():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    x = torch.full((5, 3, 4, 4), 0.5)
    y = torch.zeros(5, dtype=torch.long)
    x_adv = attacks.fgsm(model, x, y, eps=0.1)
    torch.testing.assert_close((x_adv - x).abs(), torch.full_like(x, 0.1))


def test_bad_inputs_fail_clearly(small_model, real_batch):
    x, y = real_batch
    with pytest.raises(ConfigError, match="outside \\[0, 1\\]"):
        attacks.pgd(small_model, x, y, eps=8, step_size=1, steps=1)
    with pytest.raises(ValueError, match="labels must have shape"):
        attacks.pgd(small_model, x, y[:3], eps=EPS, step_size=0.01, steps=1)
    with pytest.raises(ValueError, match="in \\[0,1\\]"):
        attacks.pgd(small_model, x * 255, y, eps=EPS, step_size=0.01, steps=1)
    with pytest.raises(ConfigError, match="unknown attack 'pgdd'"):
        attacks.get_attack("pgdd")
    with pytest.raises(ConfigError, match="unknown attack loss"):
        attacks.pgd(small_model, x, y, eps=EPS, step_size=0.01, steps=1, loss="dlr")


def _pgd(model, x, y, seed, **kw):
    return attacks.pgd(model, x, y, eps=EPS, generator=torch.Generator().manual_seed(seed), **kw)


def test_fgsm_and_fgsm_rs_are_one_pgd_step_of_their_sizes(small_model, real_batch):
    """FGSM: one step of ε from x; FGSM-RS: a uniform start and one step of 1.25·ε (Wong et al.) unless
    told otherwise; the same x* as attacks.pgd with those settings and the same generator."""
    x, y = real_batch[0][:8], real_batch[1][:8]
    g = lambda: torch.Generator().manual_seed(4)   # noqa: E731
    assert torch.equal(attacks.fgsm(small_model, x, y, eps=EPS, generator=g()),
                       _pgd(small_model, x, y, 4, step_size=EPS, steps=1, loss="ce", random_start=None))
    rs = attacks.fgsm(small_model, x, y, eps=EPS, random_start=True, generator=g())
    assert torch.equal(rs, _pgd(small_model, x, y, 4, step_size=1.25 * EPS, steps=1, loss="ce",
                                random_start="uniform"))
    assert torch.equal(attacks.fgsm(small_model, x, y, eps=EPS, random_start=True, step_size=EPS / 2, generator=g()),
                       _pgd(small_model, x, y, 4, step_size=EPS / 2, steps=1, loss="ce", random_start="uniform"))
    assert torch.equal(attacks.ATTACKS["fgsm_rs"](small_model, x, y, eps=EPS, generator=g()), rs)
    bf16 = attacks.fgsm(small_model, x, y, eps=EPS, generator=g(), autocast_dtype=torch.bfloat16)
    assert torch.equal(bf16, _pgd(small_model, x, y, 4, step_size=EPS, steps=1, random_start=None,
                                  autocast_dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="in \\[0,1\\]"):           # the range check is on by default
        attacks.fgsm(small_model, x * 255, y, eps=EPS)


@pytest.mark.parametrize("name, fixed", [
    ("pgd", dict(loss="ce")), ("pgd_targeted", dict(loss="cw", targeted=True)),
    ("pgd_targeted_ce", dict(loss="ce", targeted=True)), ("trades_kl", dict(loss="kl", random_start="normal")),
    ("cw", dict(loss="cw"))])
def test_each_named_attack_is_pgd_with_its_settings_and_defaults(name, fixed, small_model, real_batch):
    """Chapter 1's attacks by name: PGD with their loss / target / start, 10 steps of 2/255 by default."""
    x, y = real_batch[0][:6], real_batch[1][:6]
    got = attacks.get_attack(name)(small_model, x, y, eps=EPS, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got, _pgd(small_model, x, y, 1, step_size=2 / 255, steps=10, **fixed))
    short = attacks.get_attack(name)(small_model, x, y, eps=EPS, step_size=1 / 255, steps=2,
                                     generator=torch.Generator().manual_seed(1))
    assert torch.equal(short, _pgd(small_model, x, y, 1, step_size=1 / 255, steps=2, **fixed))


def test_attack_in_batches_is_the_attack_batch_after_batch_from_one_seeded_generator(small_model, real_batch):
    x, y = real_batch[0][:10], real_batch[1][:10]
    got = attacks.attack_in_batches("pgd", small_model, x, y, eps=EPS, batch_size=4, seed=3, steps=2)
    g = torch.Generator().manual_seed(3)
    want = torch.cat([attacks.pgd(small_model, x[s:s + 4], y[s:s + 4], eps=EPS, step_size=2 / 255, steps=2,
                                  generator=g) for s in (0, 4, 8)])
    assert torch.equal(got, want)
    assert not torch.equal(got, attacks.attack_in_batches("pgd", small_model, x, y, eps=EPS, batch_size=4, seed=4,
                                                          steps=2))
    empty = attacks.attack_in_batches("pgd", small_model, x[:0], y[:0], eps=EPS)
    assert empty.shape == (0, 3, 32, 32)
    with pytest.raises(ValueError, match="in \\[0,1\\]"):              # checked once, for the whole tensor
        attacks.attack_in_batches("pgd", small_model, x * 255, y, eps=EPS)
    with pytest.raises(ConfigError, match="unknown attack 'pgdd'; choose one of pgd, pgd_targeted"):
        attacks.attack_in_batches("pgdd", small_model, x, y, eps=EPS)
