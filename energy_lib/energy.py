"""Energies of a classifier read as an energy-based model (PAPER.md 1.1-1.5).

A classifier's logits f(x) define
    joint energy     E(x, y) = -f(x)[y]
    marginal energy  E(x)    = -logsumexp_k f(x)[k]
so that cross-entropy is E(x, y) - E(x) and p(y|x) = exp(-E(x,y)) / exp(-E(x)).
Every function takes logits (any float dtype) and computes in float32 or wider:
energies are sums of many logits and bf16 would round them to the nearest 0.1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _as_float(logits: torch.Tensor) -> torch.Tensor:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (batch, classes); got {tuple(logits.shape)}")
    # Keep float64 for exact identities; upcast half precision to float32.
    return logits if logits.dtype == torch.float64 else logits.float()


def _check_labels(logits: torch.Tensor, y: torch.Tensor) -> None:
    if y.ndim != 1 or y.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits {tuple(logits.shape)}; "
            f"got {tuple(y.shape)}"
        )


def marginal_energy(logits: torch.Tensor) -> torch.Tensor:
    """E(x) = -logsumexp_k f(x)[k], one value per sample."""
    return -torch.logsumexp(_as_float(logits), dim=1)


def joint_energy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E(x, y) = -f(x)[y], one value per sample."""
    logits = _as_float(logits)
    _check_labels(logits, y)
    return -logits.gather(1, y.long()[:, None]).squeeze(1)


@dataclass(frozen=True)
class DeltaEnergy:
    """Natural minus adversarial energies, per sample (PAPER.md 1.3).

    marginal = E(x) - E(x*); joint = E(x, y) - E(x*, y). ΔE(x) < 0 means the attack raised
    the sample's energy (made it look less in-distribution).
    """

    marginal: torch.Tensor
    joint: torch.Tensor


def delta_energy(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor) -> DeltaEnergy:
    """ΔE(x) and ΔE(x, y) from the logits of natural and adversarial inputs."""
    if logits_nat.shape != logits_adv.shape:
        raise ValueError(
            f"natural and adversarial logits must have the same shape; got "
            f"{tuple(logits_nat.shape)} and {tuple(logits_adv.shape)}"
        )
    return DeltaEnergy(
        marginal=marginal_energy(logits_nat) - marginal_energy(logits_adv),
        joint=joint_energy(logits_nat, y) - joint_energy(logits_adv, y),
    )


def weat_weights(energy: torch.Tensor) -> torch.Tensor:
    """WEAT sample weights w = 1 / log(1 + exp(|E|)) = 1 / softplus(|E|), detached (PAPER.md 2.6).

    softplus is evaluated stably (no overflow for |E| in the hundreds); w lies in (0, 1/ln 2]
    and decays like 1/|E|. No normalisation: the paper's code uses the raw weights.
    """
    energy = energy.detach()
    energy = energy if energy.dtype == torch.float64 else energy.float()
    return 1.0 / F.softplus(energy.abs())


@dataclass(frozen=True)
class TradesKLParts:
    """KL(p(.|x) || p(.|x*)) split into its energy terms (PAPER.md 1.4), per sample.

    kl = conditional + marginal, where
    conditional = E_{k~p(.|x)}[E(x*, k) - E(x, k)] and marginal = E(x) - E(x*) = ΔE(x).
    """

    kl: torch.Tensor
    conditional: torch.Tensor
    marginal: torch.Tensor


def trades_kl_decomposition(logits_nat: torch.Tensor, logits_adv: torch.Tensor) -> TradesKLParts:
    """The TRADES regulariser written with energies: KL = conditional term + ΔE(x)."""
    if logits_nat.shape != logits_adv.shape:
        raise ValueError(
            f"natural and adversarial logits must have the same shape; got "
            f"{tuple(logits_nat.shape)} and {tuple(logits_adv.shape)}"
        )
    nat, adv = _as_float(logits_nat), _as_float(logits_adv)
    log_p_nat = F.log_softmax(nat, dim=1)
    log_p_adv = F.log_softmax(adv, dim=1)
    p_nat = log_p_nat.exp()
    kl = (p_nat * (log_p_nat - log_p_adv)).sum(dim=1)
    # Per-class joint energies are the negated logits: E(x*, k) - E(x, k) = f(x)[k] - f(x*)[k].
    conditional = (p_nat * (nat - adv)).sum(dim=1)
    marginal = marginal_energy(nat) - marginal_energy(adv)
    return TradesKLParts(kl=kl, conditional=conditional, marginal=marginal)


def energy_summary(values: torch.Tensor, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[str, float]:
    """Mean, std and quantiles of a 1-D tensor of energies, as plain floats for records."""
    values = values.detach().double().flatten()
    out = {"mean": values.mean().item(), "std": values.std(unbiased=False).item()}
    qs = torch.quantile(values, torch.tensor(quantiles, dtype=torch.float64))
    out.update({f"q{int(round(q * 100)):02d}": v.item() for q, v in zip(quantiles, qs)})
    return out
