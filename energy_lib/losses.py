"""Adversarial-training methods, one loss function each, registered by name (PAPER.md 2.6, 2.6b, 2.7).

Every method has the signature

    loss_fn(model, x, y, cfg, ctx) -> LossOutput(loss, logits_nat, logits_adv, x_adv, extras)

and the training loop only calls `get_loss(cfg.method)`. Each method also names its training
attack in `TRAINING_ATTACKS` (the loop reuses it to measure the training-set ΔE with the very x*
the method trains on, PAPER.md 1.3).

The training attacks skip the pixel-range check (`check=False`: no host sync per step; the
loop's data come from `data.BatchIterator`, uint8 scaled to [0,1]).

Conventions (PAPER.md 6.4): the multi-step inner maximisation runs in eval mode (attacks.pgd does
that); the single-step attack and the AAE test run in the BatchNorm mode `cfg.single_step_mode`
("train", Wong et al. and AAER: the model's current mode, i.e. train mode in the training loop;
"eval": eval mode); the outer loss in the model's current (train) mode; the perturbation arithmetic is float32 and all
CE / KL / logsumexp are taken on float32 logits, also when the forward runs under bf16 autocast.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from . import attacks
from .config import ConfigError
from .energy import delta_energy, marginal_energy, weat_weights
from .names import METHOD_HYPERPARAMETERS, METHOD_USES


@dataclass
class StepContext:
    """What a loss may need besides (model, x, y, cfg): random numbers and the precision."""

    generator: torch.Generator                    # attack random starts; on the training device (no copy)
    autocast_dtype: torch.dtype | None = None     # bf16 for the training forward, None = fp32
    epoch: int = 0
    step: int = 0
    weight_fn: Callable[[torch.Tensor], torch.Tensor] = weat_weights  # WEAT weights (tests swap it)


@dataclass
class LossOutput:
    loss: torch.Tensor                    # scalar, differentiable
    logits_nat: torch.Tensor | None       # fp32, train mode; None when the method needs no clean pass
    logits_adv: torch.Tensor              # fp32, train mode
    x_adv: torch.Tensor                   # the training adversarial example (detached)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars for the log


def forward(model: torch.nn.Module, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """Model forward (bf16 autocast when asked) returning float32 logits."""
    if ctx.autocast_dtype is None:
        return model(x).float()
    with torch.autocast(device_type=x.device.type, dtype=ctx.autocast_dtype):
        return model(x).float()


# ---------------------------------------------------------------- training attacks (eval mode)
def pgd_ce_attack(model, x, y, cfg, ctx) -> torch.Tensor:
    """Madry PGD on CE: uniform start in the ε-ball, `attack_steps` sign steps of `step_size`."""
    return attacks.pgd(model, x, y, eps=cfg.eps, step_size=cfg.step_size, steps=cfg.attack_steps,
                       loss="ce", random_start="uniform", generator=ctx.generator,
                       autocast_dtype=ctx.autocast_dtype, check=False)


def trades_kl_attack(model, x, y, cfg, ctx, p_nat: torch.Tensor | None = None) -> torch.Tensor:
    """TRADES/WEAT inner maximisation: start x + 0.001·N(0,1), ascend KL(p(.|x) || p(.|x*))."""
    return attacks.pgd(model, x, y, eps=cfg.eps, step_size=cfg.step_size, steps=cfg.attack_steps,
                       loss="kl", random_start="normal", generator=ctx.generator,
                       autocast_dtype=ctx.autocast_dtype, p_nat=p_nat, check=False)


@contextlib.contextmanager
def single_step_mode(model, cfg):
    """The BatchNorm mode of the single-step attack and the AAE test (`cfg.single_step_mode`):
    "train" keeps the model's current mode (train mode in the training loop, as Wong et al. and
    AAER, so the attack's forward also updates BatchNorm's running statistics); "eval" switches
    to eval mode for the block. The per-epoch tracking always measures in eval mode."""
    if cfg.single_step_mode == "eval":
        with attacks.eval_mode(model):
            yield model
    else:
        yield model


def single_step(model, x, y, cfg, ctx, random_start: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One sign step of fgsm_alpha·ε on CE, from x (FGSM) or from a uniform start x+η in the ε-ball
    (FGSM-RS), in `cfg.single_step_mode`. Returns x* and the per-sample CE at the start, which the
    AAE test needs (PAPER.md 2.3). In eval mode it returns `attacks.fgsm`'s x* for the same
    generator state (tested)."""
    eps, step = cfg.eps, cfg.fgsm_alpha * cfg.eps
    x = x.detach().float()
    delta = attacks.uniform_start(x, eps, ctx.generator) if random_start else torch.zeros_like(x)
    x_start = (x + delta).clamp(x - eps, x + eps).clamp(0, 1).requires_grad_(True)
    with single_step_mode(model, cfg):
        ce_start = F.cross_entropy(forward(model, x_start, ctx), y, reduction="none")
        (grad,) = torch.autograd.grad(ce_start.sum(), x_start)
    with torch.no_grad():
        x_adv = x_start + step * grad.float().sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach(), ce_start.detach()


def n_fgsm_attack(model, x, y, cfg, ctx) -> torch.Tensor:
    """N-FGSM (de Jorge et al. 2022): start x + η, η ~ U[-k·ε, k·ε] (k = `nfgsm_noise`), one sign step of
    fgsm_alpha·ε, and no projection back onto the ε-ball (only onto the image range [0, 1]): the
    perturbation reaches (k + fgsm_alpha)·ε. Its authors' prevention of catastrophic overfitting."""
    return n_fgsm_with_start(model, x, y, cfg, ctx)[0]


def n_fgsm_with_start(model, x, y, cfg, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """N-FGSM's x* and the per-sample CE at its noisy start (the AAE test's reference point)."""
    x = x.detach().float()
    noise = attacks.uniform_start(x, cfg.nfgsm_noise * cfg.eps, ctx.generator)
    x_start = (x + noise).clamp(0, 1).requires_grad_(True)
    with single_step_mode(model, cfg):
        ce_start = F.cross_entropy(forward(model, x_start, ctx), y, reduction="none")
        (grad,) = torch.autograd.grad(ce_start.sum(), x_start)
    with torch.no_grad():
        x_adv = (x_start + cfg.fgsm_alpha * cfg.eps * grad.float().sign()).clamp(0, 1)
    return x_adv.detach(), ce_start.detach()


def fgsm_attack(model, x, y, cfg, ctx) -> torch.Tensor:
    """FGSM-AT (Goodfellow): one sign step from x. Any step ≥ ε lands on the ε-ball's corner."""
    return single_step(model, x, y, cfg, ctx, random_start=False)[0]


def fgsm_rs_attack(model, x, y, cfg, ctx) -> torch.Tensor:
    """FGSM-RS (Wong et al.): uniform start in the ε-ball, one step of fgsm_alpha·ε."""
    return single_step(model, x, y, cfg, ctx, random_start=True)[0]


def fgsm_rs_with_start(model, x, y, cfg, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """FGSM-RS that also returns the per-sample CE at its random start x+η (for the AAE test)."""
    return single_step(model, x, y, cfg, ctx, random_start=True)


def fgsm_with_start(model, x, y, cfg, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """FGSM from x, with the per-sample CE at x (the AAE test's reference point)."""
    return single_step(model, x, y, cfg, ctx, random_start=False)


# ---------------------------------------------------------------- shared terms
def kl_per_sample(logits_nat: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """KL(p(.|x) || p(.|x*)) per sample, gradients through both (TRADES' KLDivLoss direction)."""
    log_p_nat = F.log_softmax(logits_nat, dim=1)
    return (log_p_nat.exp() * (log_p_nat - F.log_softmax(logits_adv, dim=1))).sum(dim=1)


def der_penalty(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                gamma: float) -> torch.Tensor:
    """Delta Energy Regularizer per sample (PAPER.md 1.5): max(‖[ΔE(x), ΔE(x,y)]‖₂ − γ, 0).

    The norm is written so that its gradient at ΔE = 0 is 0 rather than NaN (sqrt'(0) = ∞).
    """
    d = delta_energy(logits_nat, logits_adv, y)
    sq = d.marginal ** 2 + d.joint ** 2
    norm = torch.where(sq > 0, torch.where(sq > 0, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))
    return F.relu(norm - gamma)


@contextlib.contextmanager
def batchnorm_stats_kept(model):
    """Forward passes inside leave BatchNorm's running statistics as they were, so an extra pass
    (the AAE test, DER's clean pass) keeps the BatchNorm mix of the method it is added to. Momentum
    is 0 inside (running = 1·running + 0·batch: the same values, updated by the op itself, so a
    gradient through the pass is unaffected); the batch counter is restored on exit."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    try:
        for m in norms:
            m.momentum = 0.0
        yield model
    finally:
        with torch.no_grad():
            for m, (momentum, count) in zip(norms, saved):
                m.momentum = momentum
                if count is not None:
                    m.num_batches_tracked.copy_(count)


def abnormal_mask(model, x_adv, y, ce_start, ctx, cfg) -> torch.Tensor:
    """1_AAE: the single step *lowered* the CE, L(x+η) > L(x+η+δ); no gradient, in the same
    BatchNorm mode as the attack that produced `ce_start` (PAPER.md 2.3, AAER), without updating
    BatchNorm's running statistics (a DER arm must not see another BatchNorm mix than its control)."""
    with torch.no_grad(), single_step_mode(model, cfg), batchnorm_stats_kept(model):
        ce_adv = F.cross_entropy(forward(model, x_adv, ctx), y, reduction="none")
    return (ce_start > ce_adv).float()


# ---------------------------------------------------------------- methods
def sat_loss(model, x, y, cfg, ctx) -> LossOutput:
    """SAT / PGD-AT (Madry): CE(f(x*), y), x* from PGD on CE."""
    x_adv = pgd_ce_attack(model, x, y, cfg, ctx)
    logits_adv = forward(model, x_adv, ctx)
    return LossOutput(F.cross_entropy(logits_adv, y), None, logits_adv, x_adv)


def trades_loss(model, x, y, cfg, ctx) -> LossOutput:
    """TRADES: CE(f(x), y) + β·KL(p(.|x) || p(.|x*)), batch mean, x* maximises the KL."""
    x_adv = trades_kl_attack(model, x, y, cfg, ctx)
    logits_nat, logits_adv = forward(model, x, ctx), forward(model, x_adv, ctx)
    kl = kl_per_sample(logits_nat, logits_adv)
    loss = F.cross_entropy(logits_nat, y) + cfg.beta * kl.mean()
    return LossOutput(loss, logits_nat, logits_adv, x_adv, {"kl": kl.mean().detach()})


def _weat(model, x, y, cfg, ctx, ce_on: str) -> LossOutput:
    x_adv = trades_kl_attack(model, x, y, cfg, ctx)
    logits_nat, logits_adv = forward(model, x, ctx), forward(model, x_adv, ctx)
    w = ctx.weight_fn(marginal_energy(logits_nat)).detach()   # detached: no gradient via the weight
    ce = F.cross_entropy(logits_nat if ce_on == "nat" else logits_adv, y, reduction="none")
    kl = kl_per_sample(logits_nat, logits_adv)
    loss = (w * (ce + cfg.beta * kl)).sum() / x.shape[0]     # no weight normalisation (PAPER 2.6)
    return LossOutput(loss, logits_nat, logits_adv, x_adv, {"kl": kl.mean().detach(), "weight": w.mean()})


def weat_nat_loss(model, x, y, cfg, ctx) -> LossOutput:
    """WEAT_nat: (1/B) Σ w(E(x_i))·[CE(f(x_i), y_i) + β·KL_i], w = 1/softplus(|E(x)|) detached."""
    return _weat(model, x, y, cfg, ctx, "nat")


def weat_adv_loss(model, x, y, cfg, ctx) -> LossOutput:
    """WEAT_adv (the paper's main method): like WEAT_nat with the CE on x*."""
    return _weat(model, x, y, cfg, ctx, "adv")


def mart_loss(model, x, y, cfg, ctx) -> LossOutput:
    """MART (Wang et al. 2020): BCE(p(.|x*), y) + β·mean(KL_i·(1 − p_y(x_i))), x* from PGD-CE."""
    x_adv = pgd_ce_attack(model, x, y, cfg, ctx)
    logits_nat, logits_adv = forward(model, x, ctx), forward(model, x_adv, ctx)
    p_adv = F.softmax(logits_adv, dim=1)
    p_other = p_adv.masked_fill(F.one_hot(y, p_adv.shape[1]).bool(), 0.0).max(dim=1).values
    bce = F.cross_entropy(logits_adv, y) - torch.log(1.0001 - p_other).mean()   # MART's 1.0001
    p_true_nat = F.softmax(logits_nat, dim=1).gather(1, y[:, None]).squeeze(1)
    kl = kl_per_sample(logits_nat, logits_adv)
    loss = bce + cfg.beta * (kl * (1.0000001 - p_true_nat)).mean()
    return LossOutput(loss, logits_nat, logits_adv, x_adv, {"kl": kl.mean().detach()})


def sat_der_loss(model, x, y, cfg, ctx) -> LossOutput:
    """SAT + DER (multi-step, against RO): CE(f(x*), y) + der_beta·mean L_ΔE (PAPER 2.7)."""
    out = sat_loss(model, x, y, cfg, ctx)
    with batchnorm_stats_kept(model):   # extra clean pass for ΔE, train mode; SAT's BatchNorm mix, so DER is the only change
        logits_nat = forward(model, x, ctx)
    der = der_penalty(logits_nat, out.logits_adv, y, cfg.der_gamma)
    return LossOutput(out.loss + cfg.der_beta * der.mean(), logits_nat, out.logits_adv, out.x_adv,
                      {"der": der.mean().detach()})


def trades_der_loss(model, x, y, cfg, ctx) -> LossOutput:
    """TRADES + DER: the TRADES loss + der_beta·mean L_ΔE [inferred combination, PAPER 2.7]."""
    out = trades_loss(model, x, y, cfg, ctx)
    der = der_penalty(out.logits_nat, out.logits_adv, y, cfg.der_gamma)
    return LossOutput(out.loss + cfg.der_beta * der.mean(), out.logits_nat, out.logits_adv, out.x_adv,
                      {**out.extras, "der": der.mean().detach()})


def fgsm_loss(model, x, y, cfg, ctx) -> LossOutput:
    """FGSM-AT: CE on the single-step example from x (prone to catastrophic overfitting)."""
    x_adv = fgsm_attack(model, x, y, cfg, ctx)
    logits_adv = forward(model, x_adv, ctx)
    return LossOutput(F.cross_entropy(logits_adv, y), None, logits_adv, x_adv)


def fgsm_rs_loss(model, x, y, cfg, ctx) -> LossOutput:
    """FGSM-RS (Wong et al. 2020): CE on the single step from a uniform random start."""
    x_adv = fgsm_rs_attack(model, x, y, cfg, ctx)
    logits_adv = forward(model, x_adv, ctx)
    return LossOutput(F.cross_entropy(logits_adv, y), None, logits_adv, x_adv)


def n_fgsm_loss(model, x, y, cfg, ctx) -> LossOutput:
    """N-FGSM (de Jorge et al. 2022): CE on the unprojected single step from a noisy start."""
    x_adv = n_fgsm_attack(model, x, y, cfg, ctx)
    logits_adv = forward(model, x_adv, ctx)
    return LossOutput(F.cross_entropy(logits_adv, y), None, logits_adv, x_adv)


def _single_step_der(model, x, y, cfg, ctx, attack_with_start) -> LossOutput:
    """CE(f(x*), y) + der_beta·(1/B) Σ 1_AAE·L_ΔE: DER on abnormal adversarial examples only."""
    x_adv, ce_start = attack_with_start(model, x, y, cfg, ctx)
    aae = abnormal_mask(model, x_adv, y, ce_start, ctx, cfg)
    with batchnorm_stats_kept(model):   # the clean pass only feeds DER: the base method's BatchNorm mix
        logits_nat = forward(model, x, ctx)
    logits_adv = forward(model, x_adv, ctx)
    der = aae * der_penalty(logits_nat, logits_adv, y, cfg.der_gamma)
    loss = F.cross_entropy(logits_adv, y) + cfg.der_beta * der.mean()
    return LossOutput(loss, logits_nat, logits_adv, x_adv, {"der": der.mean().detach(), "aae_frac": aae.mean()})


def fgsm_rs_der_loss(model, x, y, cfg, ctx) -> LossOutput:
    """FGSM-RS + DER on abnormal adversarial examples only (single-step, against CO, PAPER 2.7):
    CE(f(x*), y) + der_beta·(1/B) Σ 1_AAE·L_ΔE."""
    return _single_step_der(model, x, y, cfg, ctx, fgsm_rs_with_start)


def fgsm_der_loss(model, x, y, cfg, ctx) -> LossOutput:
    """FGSM (from x) + DER on abnormal adversarial examples: the AAE test compares CE at x and at x*."""
    return _single_step_der(model, x, y, cfg, ctx, fgsm_with_start)


LossFn = Callable[..., LossOutput]
AttackFn = Callable[..., torch.Tensor]

LOSSES: dict[str, LossFn] = {
    "sat": sat_loss,
    "trades": trades_loss,
    "weat_nat": weat_nat_loss,
    "weat_adv": weat_adv_loss,
    "mart": mart_loss,
    "sat_der": sat_der_loss,
    "trades_der": trades_der_loss,
    "fgsm": fgsm_loss,
    "fgsm_der": fgsm_der_loss,
    "fgsm_rs": fgsm_rs_loss,
    "fgsm_rs_der": fgsm_rs_der_loss,
    "n_fgsm": n_fgsm_loss,
}

# The x* each method trains on; the loop measures the training-set ΔE with it (in fp32).
TRAINING_ATTACKS: dict[str, AttackFn] = {
    "sat": pgd_ce_attack, "mart": pgd_ce_attack, "sat_der": pgd_ce_attack,
    "trades": trades_kl_attack, "weat_nat": trades_kl_attack, "weat_adv": trades_kl_attack,
    "trades_der": trades_kl_attack,
    "fgsm": fgsm_attack, "fgsm_der": fgsm_attack, "fgsm_rs": fgsm_rs_attack, "fgsm_rs_der": fgsm_rs_attack,
    "n_fgsm": n_fgsm_attack,
}

# The single-step attacks with the CE at their starting point: the abnormal-adversarial-example
# (AAE) test of DER, also tracked every epoch for every single-step method (train.track).
SINGLE_STEP_WITH_START: dict[AttackFn, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    fgsm_attack: fgsm_with_start, fgsm_rs_attack: fgsm_rs_with_start, n_fgsm_attack: n_fgsm_with_start,
}

ATTACK_DESCRIPTIONS = {
    pgd_ce_attack: "PGD-CE, uniform start, {attack_steps} steps of {step_size:.6g}, eval mode",
    trades_kl_attack: "TRADES-KL PGD, start x+0.001·N(0,1), {attack_steps} steps of {step_size:.6g}, eval mode",
    fgsm_attack: "FGSM, one step of {fgsm_alpha:g}·eps from x, BatchNorm in {single_step_mode} mode",
    fgsm_rs_attack: "FGSM-RS, uniform start, one step of {fgsm_alpha:g}·eps, BatchNorm in {single_step_mode} mode",
    n_fgsm_attack: "N-FGSM, start x+U[-{nfgsm_noise:g}·eps, {nfgsm_noise:g}·eps], one step of {fgsm_alpha:g}·eps, "
                   "not projected to the eps-ball, BatchNorm in {single_step_mode} mode",
}


# Multi-step methods yield robust models; single-step ones may have collapsed (catastrophic
# overfitting), so the chapters never present them as "the robust model".
MULTI_STEP_METHODS = tuple(m for m, a in TRAINING_ATTACKS.items() if a in (pgd_ce_attack, trades_kl_attack))

def unused_hyperparameters(name: str) -> tuple[str, ...]:
    get_loss(name)
    return tuple(k for k in METHOD_HYPERPARAMETERS if k not in METHOD_USES[name])


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ConfigError(f"unknown training method {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def get_training_attack(name: str) -> AttackFn:
    get_loss(name)
    return TRAINING_ATTACKS[name]
