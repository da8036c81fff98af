"""Attacks with known answers: linear models whose input gradients have a sign we can read off the
weights, so every PGD / FGSM / CW / KL trajectory is known exactly. Step sizes are powers of two, so
the float32 arithmetic is exact and the tests compare with `torch.equal`.

For a linear model f(x) = W x, the cross-entropy's input gradient is Σ_{k≠y} p_k (W_k - W_y): with
two classes its sign is sign(W_other - W_y) wherever the two rows differ, and 0 where they agree
(a pixel the attack must leave alone). Complements tests/test_attacks.py (the real ResNet-18)."""
import pytest
import torch
import torch.nn.functional as F

from energy_lib import attacks
from energy_lib.config import ConfigError

EPS, STEP = 0.25, 0.0625      # exact in float32: four steps reach the ε-ball's surface


def linear_model(rows) -> torch.nn.Module:
    """f(x) = W · flatten(x) for images of shape (N, 1, 2, 2); W's rows are the classes."""
    weight = torch.tensor(rows, dtype=torch.float32)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, weight.shape[0], bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weight)
    return model


def images(*pixels) -> torch.Tensor:
    return torch.tensor(pixels, dtype=torch.float32).reshape(-1, 1, 2, 2)


# Two classes: W_1 - W_0 = (1, -1, 0, 0.5): class 0's attack raises pixels 0 and 3, lowers pixel 1,
# leaves pixel 2 alone; class 1's attack does the opposite.
TWO = [[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.5]]
# Three classes on disjoint pixels: f = (0, x_0, x_1). Untargeted from class 0 raises x_0 and x_1;
# targeted at class 1 raises x_0 and lowers x_1; targeted at class 2 the reverse.
THREE = [[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]


def _pgd(model, x, y, **kw):
    kw = {"eps": EPS, "step_size": STEP, "random_start": None, **kw}
    return attacks.pgd(model, x, y, **kw)


@pytest.mark.parametrize("steps, want0, want1", [
    (0, (0.5, 0.5, 0.5, 0.95), (0.5, 0.5, 0.5, 0.05)),
    (1, (0.5625, 0.4375, 0.5, 1.0), (0.4375, 0.5625, 0.5, 0.0)),
    (3, (0.6875, 0.3125, 0.5, 1.0), (0.3125, 0.6875, 0.5, 0.0)),
    (7, (0.75, 0.25, 0.5, 1.0), (0.25, 0.75, 0.5, 0.0)),      # stopped by the ε-ball, then by [0, 1]
])
def test_pgd_ce_walks_the_gradient_sign_into_the_ball_and_the_image_range(steps, want0, want1):
    model = linear_model(TWO)
    x = images((0.5, 0.5, 0.5, 0.95), (0.5, 0.5, 0.5, 0.05))
    got = _pgd(model, x, torch.tensor([0, 1]), steps=steps)
    assert torch.equal(got, images(want0, want1))


def test_fgsm_is_one_step_of_eps_and_takes_a_given_step_size():
    model = linear_model(TWO)
    x, y = images((0.5, 0.5, 0.5, 0.5)), torch.tensor([0])
    assert torch.equal(attacks.fgsm(model, x, y, eps=EPS), images((0.75, 0.25, 0.5, 0.75)))
    assert torch.equal(attacks.fgsm(model, x, y, eps=EPS, step_size=STEP), images((0.5625, 0.4375, 0.5, 0.5625)))
    # the named FGSM ignores a step size (one step of ε by definition); FGSM-RS passes it on
    assert torch.equal(attacks.ATTACKS["fgsm"](model, x, y, eps=EPS, step_size=STEP), images((0.75, 0.25, 0.5, 0.75)))
    g = torch.Generator().manual_seed(0)
    start = x + attacks.uniform_start(x, EPS, torch.Generator().manual_seed(0))
    rs = attacks.ATTACKS["fgsm_rs"](model, x, y, eps=EPS, step_size=STEP, generator=g)
    # pixel 2 has a zero gradient: it keeps its random start; the others moved one step of STEP from it
    assert rs[0, 0, 1, 0] == start[0, 0, 1, 0]
    sign = images((1.0, -1.0, 0.0, 1.0))
    torch.testing.assert_close(rs, (start + STEP * sign).clamp(x - EPS, x + EPS).clamp(0, 1), rtol=0, atol=1e-7)


def test_uniform_start_pgd_saturates_and_keeps_the_start_where_the_gradient_is_zero():
    model = linear_model(TWO)
    x, y = images((0.5, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)), torch.tensor([0, 1])
    start = (x + attacks.uniform_start(x, EPS, torch.Generator().manual_seed(3))).clamp(0, 1)
    got = _pgd(model, x, y, steps=9, random_start="uniform", generator=torch.Generator().manual_seed(3))
    assert torch.equal(got[:, :, 1, 0], start[:, :, 1, 0])          # pixel 2: no gradient, no move
    assert torch.equal(got[0].flatten()[[0, 1, 3]], torch.tensor([0.75, 0.25, 0.75]))
    assert torch.equal(got[1].flatten()[[0, 1, 3]], torch.tensor([0.25, 0.75, 0.25]))


def test_cw_margin_stops_once_the_margin_passes_kappa_where_ce_keeps_going():
    model = linear_model(TWO)
    # margin f_1 - f_0 = x_0 - x_1 + x_3 / 2 = 0.2 at the start; each step adds 0.0625 · 2.5 = 0.15625
    x, y = images((0.5, 0.5, 0.5, 0.4)), torch.tensor([0])
    torch.testing.assert_close(attacks.margin(model(x), y), torch.tensor([0.2]))
    assert torch.equal(_pgd(model, x, y, steps=5, loss="cw"), x)                  # already fooled: κ = 0
    two_steps = images((0.625, 0.375, 0.5, 0.525))                                # 0.356 < 0.5 < 0.5125
    assert torch.equal(_pgd(model, x, y, steps=5, loss="cw", kappa=0.5), two_steps)
    assert torch.equal(_pgd(model, x, y, steps=5, loss="ce"), images((0.75, 0.25, 0.5, 0.65)))


@pytest.mark.parametrize("target, want", [(1, (0.75, 0.25, 0.5, 0.5)), (2, (0.25, 0.75, 0.5, 0.5))])
def test_targeted_ce_climbs_toward_its_target_not_away_from_the_label(target, want):
    model = linear_model(THREE)
    x, y = images((0.5, 0.5, 0.5, 0.5)), torch.tensor([0])
    got = _pgd(model, x, y, steps=6, targeted=True, target=torch.tensor([target]))
    assert torch.equal(got, images(want))
    assert torch.equal(_pgd(model, x, y, steps=6), images((0.75, 0.75, 0.5, 0.5)))  # untargeted


def test_targeted_cw_stops_once_the_target_wins():
    model = linear_model(THREE)
    # toward class 1: the runner-up is class 2 (f_2 = x_1 > 0 = f_0); f_1 - f_2 = -0.2, +0.125 per step
    x, y = images((0.3, 0.5, 0.5, 0.5)), torch.tensor([0])
    got = _pgd(model, x, y, steps=6, loss="cw", targeted=True, target=torch.tensor([1]))
    assert torch.equal(got, images((0.425, 0.375, 0.5, 0.5)))                   # -0.075, then +0.05: stop
    # untargeted, the model is fooled already (f_2 = 0.5 > f_0): κ = 0 leaves x; κ = 1 pushes only the
    # runner-up's pixel x_1 (the max's gradient), to the ε-ball's surface
    assert torch.equal(_pgd(model, x, y, steps=6, loss="cw"), x)
    assert torch.equal(_pgd(model, x, y, steps=6, loss="cw", kappa=1.0), images((0.3, 0.75, 0.5, 0.5)))


def test_targeted_without_a_target_draws_one_different_from_the_label():
    model = linear_model(THREE)
    x, y = images(*[(0.5, 0.5, 0.5, 0.5)] * 64), torch.zeros(64, dtype=torch.long)
    got = _pgd(model, x, y, steps=6, targeted=True, generator=torch.Generator().manual_seed(0))
    want = {1: (0.75, 0.25, 0.5, 0.5), 2: (0.25, 0.75, 0.5, 0.5)}
    targets = attacks.random_targets(y, 3, torch.Generator().manual_seed(0))
    assert set(targets.tolist()) == {1, 2}
    assert torch.equal(got, images(*[want[t] for t in targets.tolist()]))


def test_kl_attack_follows_the_clean_distribution_it_is_given():
    """KL(p_nat || p(x*)) has input gradient (p(x*) - p_nat) · W: zero at x* = x with p_nat = p(x)
    (why TRADES starts from noise), and the cross-entropy's direction when p_nat is one-hot on y."""
    model = linear_model(THREE)
    x, y = images((0.5, 0.5, 0.5, 0.5)), torch.tensor([0])
    assert torch.equal(_pgd(model, x, y, steps=3, loss="kl"), x)
    one_hot = F.one_hot(y, 3).float()
    assert torch.equal(_pgd(model, x, y, steps=3, loss="kl", p_nat=one_hot), _pgd(model, x, y, steps=3))
    assert not torch.equal(_pgd(model, x, y, steps=3), x)
    # without p_nat the attack computes the clean softmax itself
    noisy = dict(steps=3, loss="kl", random_start="normal")
    got = _pgd(model, x, y, generator=torch.Generator().manual_seed(5), **noisy)
    given = _pgd(model, x, y, generator=torch.Generator().manual_seed(5), p_nat=F.softmax(model(x), 1), **noisy)
    assert torch.equal(got, given) and not torch.equal(got, x)


def test_attack_objective_matches_its_formulas():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    y, target = torch.tensor([0, 0]), torch.tensor([2, 1])
    log_p = logits - torch.logsumexp(logits, 1, keepdim=True)
    torch.testing.assert_close(attacks.attack_objective(logits, y, "ce"), -log_p[[0, 1], [0, 0]])
    torch.testing.assert_close(attacks.attack_objective(logits, y, "ce", targeted=True, target=target),
                               log_p[[0, 1], [2, 1]])
    torch.testing.assert_close(attacks.margin(logits, y), torch.tensor([-2.0, 3.0]))
    torch.testing.assert_close(attacks.margin(logits, target), torch.tensor([3.0, -2.0]))
    torch.testing.assert_close(attacks.attack_objective(logits, y, "cw"), torch.tensor([-2.0, 0.0]))
    torch.testing.assert_close(attacks.attack_objective(logits, y, "cw", kappa=1.0), torch.tensor([-2.0, 1.0]))
    torch.testing.assert_close(attacks.attack_objective(logits, y, "cw", targeted=True, target=target),
                               torch.tensor([-3.0, 0.0]))
    p_nat = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    kl = (p_nat * (p_nat.clamp_min(1e-30).log() - log_p)).nansum(1)   # 0 · log 0 = 0
    torch.testing.assert_close(attacks.attack_objective(logits, y, "kl", p_nat=p_nat), kl)
    assert attacks.attack_objective(logits, y, "kl", p_nat=F.softmax(logits, 1)).abs().max() < 1e-6
    with pytest.raises(ConfigError, match="unknown attack loss 'dlr'; choose one of ce, kl, cw"):
        attacks.attack_objective(logits, y, "dlr")


def test_random_targets_reach_every_other_class_and_never_the_label():
    y = torch.arange(10).repeat(100)
    targets = attacks.random_targets(y, 10, torch.Generator().manual_seed(0))
    assert (targets != y).all() and targets.min() >= 0 and targets.max() <= 9
    for label in range(10):                         # all nine other classes, for every label
        assert set(targets[y == label].tolist()) == set(range(10)) - {label}


def test_starts_have_their_documented_laws_and_generators():
    x = torch.zeros(4000, 1, 2, 2)
    u = attacks.uniform_start(x, 0.125, torch.Generator().manual_seed(0))
    assert u.shape == x.shape and u.abs().max() <= 0.125
    assert u.min() < -0.124 and u.max() > 0.124          # fills [-ε, ε] (16,000 draws), both signs
    torch.testing.assert_close(u, (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.125)
    n = attacks.normal_start(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(n, 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(u, attacks.uniform_start(x, 0.125, torch.Generator().manual_seed(1)))


def test_pixel_range_check_admits_the_closed_interval_and_nothing_else():
    model, y = linear_model(TWO), torch.tensor([0])
    corners = images((0.0, 1.0, 0.0, 1.0))
    assert _pgd(model, corners, y, steps=1).shape == corners.shape        # 0 and 1 themselves are images
    for bad in (images((0.0, 1.0, 0.0, 1.0 + 1e-6)), images((-1e-6, 0.5, 0.5, 0.5)),
                images((float("nan"), 0.5, 0.5, 0.5))):
        with pytest.raises(ValueError, match=r"images must lie in \[0,1\] and be finite"):
            _pgd(model, bad, y, steps=1)
        _pgd(model, bad.clamp(0, 1).nan_to_num(0.5), y, steps=1, check=False)   # the fix the message names
    assert attacks.attack_in_batches("pgd", model, images()[:0], torch.zeros(0, dtype=torch.long), eps=EPS).numel() == 0


def test_bad_settings_fail_with_one_line_each():
    model, x, y = linear_model(TWO), images((0.5, 0.5, 0.5, 0.5)), torch.tensor([0])
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\); got \(1, 4\)"):
        _pgd(model, x.flatten(1), y, steps=1)
    pair = images((0.5, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\) to match images; got \(1, 1\)"):
        _pgd(model, pair, y[:, None], steps=1)
    with pytest.raises(ConfigError, match=r"steps \(-1\) and step_size \(0.0625\) must be non-negative"):
        _pgd(model, x, y, steps=-1)
    for step_size in (-0.01, float("nan")):
        with pytest.raises(ConfigError, match="must be non-negative"):
            _pgd(model, x, y, steps=1, step_size=step_size)
    assert torch.equal(_pgd(model, x, y, steps=0), x) and torch.equal(_pgd(model, x, y, steps=3, step_size=0.0), x)
    with pytest.raises(ConfigError, match="the TRADES-KL attack has no targeted form"):
        _pgd(model, x, y, steps=1, loss="kl", targeted=True)
    with pytest.raises(ConfigError, match="random_start must be 'uniform', 'normal' or None; got 'gauss'"):
        _pgd(model, x, y, steps=1, random_start="gauss")
    with pytest.raises(ConfigError, match="^unknown attack loss 'dlr'; choose one of ce, kl, cw$"):
        _pgd(model, x, y, steps=1, loss="dlr")
    with pytest.raises(ConfigError, match="unknown attack 'fgsm-rs'; choose one of pgd, pgd_targeted"):
        attacks.get_attack("fgsm-rs")
    assert attacks.get_attack("cw") is attacks.ATTACKS["cw"]
    with pytest.raises(ConfigError, match="outside"):                 # ε is checked without the range check too
        _pgd(model, x, y, steps=1, eps=2.0, check=False)


def test_forward_under_autocast_returns_float32_logits_of_the_low_precision_model():
    model = linear_model([[0.1234567, 0.7654321, 0.0, 0.0], [0.3333333, 0.0, 0.0, 0.0]])
    x = images((0.987654, 0.123456, 0.0, 0.0))
    full = attacks._forward(model, x, None)
    low = attacks._forward(model, x, torch.bfloat16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        want = model(x).float()
    assert full.dtype == low.dtype == torch.float32
    assert torch.equal(low, want) and not torch.equal(low, full)


def test_predict_logits_batches_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).train()
    with torch.no_grad():
        model[2].running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.rand(7, 1, 2, 2)
    got = attacks.predict_logits(model, x, batch_size=3)
    assert model.training
    model.eval()
    with torch.no_grad():
        assert torch.equal(got, model(x))                                  # all 7, in order, eval statistics
    assert attacks.predict_logits(model, x, batch_size=7).shape == (7, 3)
    assert not model.training                                              # an eval model stays in eval


def test_eval_mode_restores_the_mode_it_found_also_after_an_error():
    model = torch.nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError):
        with attacks.eval_mode(model):
            assert not model.training
            raise RuntimeError("inside")
    assert model.training
    with attacks.eval_mode(model.eval()):
        pass
    assert not model.training


def test_draws_happen_on_the_generators_device_then_move_to_the_data():
    """A start for data on another device is drawn by the (CPU) generator, so one seed gives one start
    whatever the device; the meta device stands in for a GPU (its draws would not advance a CPU
    generator)."""
    x, y = torch.zeros(5, 1, 2, 2, device="meta"), torch.zeros(5, dtype=torch.long, device="meta")
    draws = {"uniform": (lambda g: attacks.uniform_start(x, 0.1, g), lambda g: torch.rand(x.shape, generator=g)),
             "normal": (lambda g: attacks.normal_start(x, g), lambda g: torch.randn(x.shape, generator=g)),
             "targets": (lambda g: attacks.random_targets(y, 10, g), lambda g: torch.randint(1, 10, y.shape, generator=g))}
    for name, (draw, on_cpu) in draws.items():
        g, reference = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        out = draw(g)
        on_cpu(reference)
        assert out.device.type == "meta", name
        assert torch.equal(g.get_state(), reference.get_state()), name        # drawn by the CPU generator
        assert draw(None).device.type == "meta", name                           # no generator: drawn where the data is


def test_draws_name_their_device_rather_than_follow_the_default_device():
    """Under another default device (here meta, where a draw leaves a CPU generator untouched and holds
    no data) the starts and targets are still drawn by the generator, or where the data is."""
    x, y = torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.long)
    draws = {"uniform": lambda g: attacks.uniform_start(x, 0.1, g), "normal": lambda g: attacks.normal_start(x, g),
             "targets": lambda g: attacks.random_targets(y, 10, g)}
    for name, draw in draws.items():
        g, untouched = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0).get_state()
        with torch.device("meta"):
            out, without = draw(g), draw(None)
        assert out.device.type == without.device.type == "cpu", name
        assert not torch.equal(g.get_state(), untouched), name                 # the CPU generator drew it
        assert torch.equal(out, draw(torch.Generator().manual_seed(0))), name


def test_random_targets_are_the_label_shifted_by_a_uniform_nonzero_step():
    y = torch.tensor([0, 3, 9, 9, 5])
    shift = torch.randint(1, 10, y.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(attacks.random_targets(y, 10, torch.Generator().manual_seed(7)), (y + shift) % 10)


def test_attack_in_batches_defaults_checks_once_and_leaves_no_progress_bar(monkeypatch, capsys):
    model = linear_model(TWO)
    x = torch.rand(300, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 2, (300,), generator=torch.Generator().manual_seed(1))
    got = attacks.attack_in_batches("pgd", model, x, y, eps=EPS, steps=2)
    assert torch.equal(got, attacks.attack_in_batches("pgd", model, x, y, eps=EPS, steps=2, batch_size=256, seed=0))
    assert not torch.equal(got, attacks.attack_in_batches("pgd", model, x, y, eps=EPS, steps=2, seed=1))
    assert capsys.readouterr().err == ""                                    # silent unless asked
    attacks.attack_in_batches("pgd", model, x, y, eps=EPS, steps=2, progress=True)
    err = capsys.readouterr().err
    assert "pgd:" in err and "100%" not in err                              # named, and erased when done
    calls = []
    real = attacks._check_inputs
    monkeypatch.setattr(attacks, "_check_inputs", lambda *a: calls.append(1) or real(*a))
    attacks.attack_in_batches("pgd", model, x, y, eps=EPS, steps=1, batch_size=100)
    assert len(calls) == 1                                                  # one host sync, not one per batch


def test_fgsm_passes_its_range_check_switch_on():
    model, y = linear_model(TWO), torch.tensor([0])
    outside = images((0.5, 0.5, 0.5, 1.5))       # a training step's data was checked already
    assert torch.equal(attacks.fgsm(model, outside, y, eps=EPS, check=False), images((0.75, 0.25, 0.5, 1.0)))
    with pytest.raises(ValueError, match=r"images must lie in \[0,1\]"):
        attacks.fgsm(model, outside, y, eps=EPS)


def test_the_start_is_projected_even_without_steps():
    model = linear_model(TWO)
    edges = images((0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0))
    y = torch.tensor([0, 1])
    start = _pgd(model, edges, y, steps=0, random_start="uniform", generator=torch.Generator().manual_seed(0))
    assert start.min() >= 0 and start.max() <= 1 and not torch.equal(start, edges)
    # TRADES' 0.001·N(0, 1) start leaves a ball of ε = 1e-4: it is projected back
    x = images((0.5, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5))
    tiny = _pgd(model, x, y, eps=1e-4, steps=0, random_start="normal", generator=torch.Generator().manual_seed(0))
    assert (tiny - x).abs().max() <= 1e-4 + 1e-7 and (tiny - x).abs().max() > 0.5e-4


def test_bf16_attacks_run_the_model_under_autocast_at_every_step():
    """The attack ascends the bf16 model's objective: the CW margin 0.503 is 0.50390625 in bf16 (its
    nearest value), past κ = 0.5035, so the bf16 attack stops where the fp32 one steps."""
    model = linear_model([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    x, y = images((0.503, 0.5, 0.5, 0.5)), torch.tensor([0])
    cw = dict(steps=1, loss="cw", kappa=0.5035)
    assert torch.equal(_pgd(model, x, y, autocast_dtype=torch.bfloat16, **cw), x)
    assert not torch.equal(_pgd(model, x, y, **cw), x)
    # the KL attack's clean distribution comes from the same bf16 model
    three = linear_model([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.3, 0.0, 0.0]])
    kl = dict(steps=2, loss="kl", random_start="normal", autocast_dtype=torch.bfloat16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        p_low = F.softmax(three(x).float(), 1)
    got = _pgd(three, x, y, generator=torch.Generator().manual_seed(2), **kl)
    assert torch.equal(got, _pgd(three, x, y, generator=torch.Generator().manual_seed(2), p_nat=p_low, **kl))
    p_full = F.softmax(three(x), 1)                                        # and it matters which
    assert not torch.equal(got, _pgd(three, x, y, generator=torch.Generator().manual_seed(2), p_nat=p_full, **kl))


def test_forward_autocasts_to_the_dtype_it_is_given():
    model = linear_model([[0.1234567, 0.7654321, 0.0, 0.0], [0.3333333, 0.0, 0.0, 0.0]])
    x = images((0.987654, 0.123456, 0.0, 0.0))
    with torch.autocast(device_type="cpu", dtype=torch.float16):
        half = model(x).float()
    assert torch.equal(attacks._forward(model, x, torch.float16), half)
    assert not torch.equal(attacks._forward(model, x, torch.float16), attacks._forward(model, x, torch.bfloat16))


def test_named_pgd_attacks_default_to_ten_steps_of_two_over_255():
    model, x, y = linear_model(TWO), images((0.5, 0.5, 0.5, 0.5)), torch.tensor([0])
    moved = attacks.get_attack("pgd")(model, x, y, eps=1.0, random_start=None) - x
    torch.testing.assert_close(moved, images((0.5, -0.5, 0.0, 0.5)) * 0 + images((1, -1, 0, 1)) * (10 * 2 / 255))
