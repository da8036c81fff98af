"""White-box ℓ∞ attacks: PGD (CE, TRADES-KL, CW-margin; untargeted or targeted) and FGSM(-RS).

Invariants every attack keeps:
* perturbation arithmetic in float32 (also when the model's forward runs under bf16 autocast);
* the result lies in the ε-ball around x and in [0,1];
* the model runs in eval mode during the attack and is restored to its previous mode after;
* gradients are taken w.r.t. the input only (parameter .grad fields are untouched).

Host synchronisation: the value check of the images (in [0,1]) reads x.min()/x.max(), a host sync.
It runs at the public boundary, once per batch of data (`pgd`/`fgsm` called directly,
`attack_in_batches` once for the whole tensor); the training losses pass `check=False` so that a
training step never waits for the host. Random starts are drawn on the generator's device: a
generator on the data's device (`torch.Generator(device=...)`) means no host-to-device copy.

`ATTACKS` maps names to functions with one signature, `attack(model, x, y, *, eps, ...)`, so the
chapters and the training losses pick attacks by name. AutoAttack lives in `autoattack.py`.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from .config import ConfigError, check_eps

ATTACK_LOSSES = ("ce", "kl", "cw")


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Put `model` in eval mode for the block, then restore whatever mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _forward(model, x, autocast_dtype):
    if autocast_dtype is None:
        return model(x).float()
    with torch.autocast(device_type=x.device.type, dtype=autocast_dtype):
        return model(x).float()  # logits back to fp32 before any loss or logsumexp


def _check_shapes(x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    """The checks that need no host sync (shapes, ε): run on every call."""
    check_eps(eps)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W); got {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"labels must have shape ({x.shape[0]},) to match images; got {tuple(y.shape)}")


def _check_inputs(x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    """Shapes, ε and the pixel range. Reading x.min()/x.max() syncs with the host: public entry
    points only, once per batch of data (never inside a training step)."""
    _check_shapes(x, y, eps)
    if x.numel() and not (x.min() >= 0 and x.max() <= 1):   # also false for NaN pixels
        raise ValueError("images must lie in [0,1] and be finite (no normalisation outside the model, no NaN)")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{k≠y} f_k - f_y: positive exactly when the sample is misclassified (away from y)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.max(dim=1).values - true


def attack_objective(logits: torch.Tensor, y: torch.Tensor, loss: str, *, targeted: bool = False,
                     target: torch.Tensor | None = None, p_nat: torch.Tensor | None = None,
                     kappa: float = 0.0) -> torch.Tensor:
    """Per-sample quantity the attack ascends."""
    if loss == "ce":
        return -F.cross_entropy(logits, target, reduction="none") if targeted else F.cross_entropy(
            logits, y, reduction="none")
    if loss == "kl":  # TRADES: KL(p(.|x) || p(.|x*)), p(.|x) fixed
        return (p_nat * (p_nat.clamp_min(1e-12).log() - F.log_softmax(logits, dim=1))).sum(dim=1)
    if loss == "cw":  # CW-ℓ∞ margin with confidence κ: stops pushing once the margin exceeds κ
        m = -margin(logits, target) if targeted else margin(logits, y)
        return m.clamp(max=kappa)
    raise ConfigError(f"unknown attack loss {loss!r}; choose one of {', '.join(ATTACK_LOSSES)}")


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    # a generator draws on its own device; without one, draw where the data is
    return generator.device if generator is not None else device


def random_targets(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random target class different from the true class, per sample."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator, device=_draw_device(generator, y.device))
    return (y + shift.to(y.device)) % num_classes


def uniform_start(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """δ ~ U[-ε, ε] of x's shape (Madry's random start), drawn on the generator's device."""
    u = torch.rand(x.shape, generator=generator, device=_draw_device(generator, x.device))
    return (u.to(x.device) * 2 - 1) * eps


def normal_start(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """δ = 0.001·N(0, 1) of x's shape (TRADES' start), drawn on the generator's device."""
    return 0.001 * torch.randn(x.shape, generator=generator, device=_draw_device(generator, x.device)).to(x.device)


def pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, step_size: float,
        steps: int, loss: str = "ce", targeted: bool = False, target: torch.Tensor | None = None,
        random_start: str | None = "uniform", kappa: float = 0.0,
        generator: torch.Generator | None = None, autocast_dtype: torch.dtype | None = None,
        p_nat: torch.Tensor | None = None, check: bool = True) -> torch.Tensor:
    """Projected gradient ascent with sign steps in the ℓ∞ ball (Madry et al.).

    random_start: "uniform" (U[-ε, ε], Madry), "normal" (0.001·N(0,1), TRADES) or None.
    targeted: descend toward `target` (random classes ≠ y when None; CE and CW losses only).
    p_nat: clean softmax for the KL loss; computed once here when not given.
    check: validate the pixel range (a host sync). False only where the data was checked already
    (the training losses, `attack_in_batches` after its one check); shapes and ε are always checked.
    """
    if check:
        _check_inputs(x, y, eps)
    else:
        _check_shapes(x, y, eps)
    if steps < 0 or not step_size >= 0:   # also refuses step_size=nan
        raise ConfigError(f"steps ({steps}) and step_size ({step_size}) must be non-negative")
    if loss not in ATTACK_LOSSES:
        raise ConfigError(f"unknown attack loss {loss!r}; choose one of {', '.join(ATTACK_LOSSES)}")
    if targeted and loss == "kl":
        raise ConfigError("the TRADES-KL attack has no targeted form; use loss='ce' or 'cw'")
    x = x.detach().float()
    with eval_mode(model):
        if targeted and target is None:
            with torch.no_grad():
                num_classes = _forward(model, x[:1], autocast_dtype).shape[1]
            target = random_targets(y, num_classes, generator)
        if loss == "kl" and p_nat is None:
            with torch.no_grad():
                p_nat = F.softmax(_forward(model, x, autocast_dtype), dim=1)
        if random_start == "uniform":
            delta = uniform_start(x, eps, generator)
        elif random_start == "normal":
            delta = normal_start(x, generator)
        elif random_start is None:
            delta = torch.zeros_like(x)
        else:
            raise ConfigError(f"random_start must be 'uniform', 'normal' or None; got {random_start!r}")
        x_adv = (x + delta).clamp(x - eps, x + eps).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = _forward(model, x_adv, autocast_dtype)
            objective = attack_objective(logits, y, loss, targeted=targeted, target=target, p_nat=p_nat,
                                         kappa=kappa).sum()
            (grad,) = torch.autograd.grad(objective, x_adv)
            with torch.no_grad():
                x_adv = x_adv + step_size * grad.float().sign()
                x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
         step_size: float | None = None, random_start: bool = False,
         generator: torch.Generator | None = None, autocast_dtype: torch.dtype | None = None,
         check: bool = True, **_: object) -> torch.Tensor:
    """FGSM (Goodfellow et al.): one sign step of size ε on CE. With `random_start`, FGSM-RS
    (Wong et al.): start uniformly in the ε-ball and step `step_size` (default 1.25·ε)."""
    step = eps if step_size is None and not random_start else (1.25 * eps if step_size is None else step_size)
    return pgd(model, x, y, eps=eps, step_size=step, steps=1, loss="ce",
               random_start="uniform" if random_start else None, generator=generator,
               autocast_dtype=autocast_dtype, check=check)


def _pgd_variant(**fixed) -> Callable[..., torch.Tensor]:
    def attack(model, x, y, *, eps, step_size=2 / 255, steps=10, **kw):
        return pgd(model, x, y, eps=eps, step_size=step_size, steps=steps, **{**fixed, **kw})

    return attack


# Name -> attack(model, x, y, *, eps, step_size, steps, generator, ...). Chapter 1 uses them all.
# "pgd_targeted" uses the margin loss with κ = 0, like the targeted attacks of the paper's figure
# (APGD-T's targeted DLR is a margin): it stops once the target wins. "pgd_targeted_ce" keeps
# descending the target's cross-entropy, which over-shoots far past the boundary (chapter 1).
ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "pgd": _pgd_variant(loss="ce"),
    "pgd_targeted": _pgd_variant(loss="cw", targeted=True),
    "pgd_targeted_ce": _pgd_variant(loss="ce", targeted=True),
    "trades_kl": _pgd_variant(loss="kl", random_start="normal"),
    "cw": _pgd_variant(loss="cw"),
    "fgsm": lambda model, x, y, *, eps, step_size=None, steps=1, **kw: fgsm(model, x, y, eps=eps, **kw),
    "fgsm_rs": lambda model, x, y, *, eps, step_size=None, steps=1, **kw: fgsm(
        model, x, y, eps=eps, step_size=step_size, random_start=True, **kw),
}


def get_attack(name: str) -> Callable[..., torch.Tensor]:
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[name]


def attack_in_batches(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                      batch_size: int = 256, seed: int = 0, progress: bool = False,
                      **kwargs) -> torch.Tensor:
    """Run attack `name` over a whole tensor in batches, on x's device, reproducibly from `seed`.

    The data is checked once here (one host sync), not again per batch. Random starts come from a
    CPU generator seeded by `seed`, so results do not depend on the device's RNG implementation.
    """
    from tqdm.auto import tqdm

    attack = get_attack(name)
    _check_inputs(x, y, eps)
    g = torch.Generator().manual_seed(seed)
    out = []
    starts = range(0, x.shape[0], batch_size)
    for start in tqdm(starts, desc=name, disable=not progress, leave=False):
        sl = slice(start, start + batch_size)
        out.append(attack(model, x[sl], y[sl], eps=eps, generator=g, check=False, **kwargs))
    return torch.cat(out) if out else x.clone()


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Eval-mode fp32 logits for a whole tensor, batched."""
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, x.shape[0], batch_size)])
