"""Generating images with a classifier read as an EBM (PAPER.md 2.8).

Sampler: SGLD with momentum on the joint energy E(x, y) = -f(x)[y] of a target class y,

    ν_0 = 0,   ν_{n+1} = ζ ν_n - (η/2) ∇_x E(x_n, y),   x_{n+1} = clip_[0,1](x_n + clamp(ν_{n+1} + ε_n)),

with ε_n = α·N(0, σ²), α = sqrt(2η) by default (the official `sample_q_SGLD`). Optional
energy-guided adaptive stopping (P2) freezes a chain once (E(x_n, y) - Ē_y)² < τ, where Ē_y is the
mean joint energy of real training images of class y under the same model.

Initialisations x_0 (all in [0,1], shape (B, C, H, W)):
* `noise`     uniform U[0,1];
* `gaussian`  class-conditional full-covariance Gaussian N(μ_y, Σ_y + jitter·I) (JEM++ style);
* `pca`       class-wise PCA (P1): μ_y + Σ_i λ_i α_i U_i with α_i ~ N(0, σ_pca²), λ_i the singular
              values of the centred class data, components kept up to `retained_variance`;
* `local_pca` local class-wise PCA (P2, details inferred): the same, fitted on the `local_k`
              same-class nearest neighbours (pixel space) of a random anchor image, one per chain.

Noise scale comparable across fit sizes. A singular value is λ_i = sqrt((n−1)·var_i), so with the
paper's formula the spread of x_0 grows with the number n of images fitted: the paper fits all
n = 5,000 images of a CIFAR-10 class, where σ_pca = 0.005 gives x_0 ≈ μ + 0.35·Σ std_i z_i U_i
(PAPER.md 2.8). Fitted on fewer images (the CPU profile's 1,000 per class; local PCA's k = 100
neighbours) the same σ_pca would give a start 2.2× (n = 1,000) or 7× (n = 100) tighter. So λ_i are
scaled by sqrt((5000 − 1)/(n − 1)) (`PAPER_PCA_FIT_SIZE`): x_0 = μ + Σ_i sqrt(4999·var_i)·α_i·U_i,
the spread σ_pca has with the paper's 5,000 images, whatever n (exactly the paper's formula at n = 5,000).
Images are flattened in CHW order (`x.reshape(n, -1)`), as the official code does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .attacks import eval_mode
from .config import GENERATION_INITS, ConfigError
from .energy import joint_energy


# ----------------------------------------------------------------------------- initialisations
PAPER_PCA_FIT_SIZE = 5000   # images per class the paper's PCA is fitted on (CIFAR-10); σ_pca is relative to it


@dataclass
class ClassPCA:
    """PCA of one class's flattened images: mean (D,), kept axes (k, D), their singular values (k,),
    fitted on `n_fit` images."""

    mean: torch.Tensor
    components: torch.Tensor
    singular_values: torch.Tensor
    explained_variance_ratio: torch.Tensor  # of all components, for plots and checks
    n_fit: int = PAPER_PCA_FIT_SIZE

    @property
    def n_components(self) -> int:
        return self.components.shape[0]

    @property
    def sampling_scale(self) -> torch.Tensor:
        """λ_i·sqrt((5000 − 1)/(n_fit − 1)) = sqrt(4999·var_i): the singular values a fit on the
        paper's 5,000 images would have, so σ_pca means the same spread for every n_fit."""
        return self.singular_values * math.sqrt((PAPER_PCA_FIT_SIZE - 1) / (self.n_fit - 1))


def n_components_for(explained_variance_ratio: torch.Tensor, retained_variance: float) -> int:
    """The smallest k whose cumulative explained-variance ratio reaches `retained_variance`."""
    if not 0.0 < retained_variance <= 1.0:
        raise ConfigError(f"retained_variance={retained_variance} must be in (0, 1], e.g. 0.95")
    cumulative = torch.cumsum(explained_variance_ratio.double(), 0)
    # Rounding can leave the total a hair below 1: never ask for more components than exist.
    k = int(torch.searchsorted(cumulative, torch.tensor([retained_variance], dtype=torch.float64) - 1e-12)) + 1
    return min(k, explained_variance_ratio.numel())


def fit_pca(x: torch.Tensor, retained_variance: float) -> ClassPCA:
    """PCA of images x (n, C, H, W) or (n, D) by SVD of the centred data (float64 for stability)."""
    flat = x.reshape(x.shape[0], -1).double()
    if flat.shape[0] < 2:
        raise ConfigError(f"PCA needs at least 2 images; got {flat.shape[0]}")
    mean = flat.mean(0)
    _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    var = s ** 2
    ratio = var / var.sum() if var.sum() > 0 else torch.ones_like(var) / var.numel()
    k = n_components_for(ratio, retained_variance)
    return ClassPCA(mean.float(), vh[:k].float(), s[:k].float(), ratio.float(), n_fit=flat.shape[0])


def sample_pca(pca: ClassPCA, n: int, sigma: float, shape: Sequence[int],
               generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws of μ + Σ_i λ'_i α_i U_i, α_i ~ N(0, σ²), λ'_i = `pca.sampling_scale` (the singular
    values as fitted on the paper's 5,000 images), clipped to [0,1], reshaped to (n, *shape)."""
    alpha = torch.randn(n, pca.n_components, generator=generator) * sigma
    flat = pca.mean + (alpha * pca.sampling_scale) @ pca.components
    return flat.clamp(0, 1).reshape(n, *shape)


def class_images(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Float [0,1] images of each class, in dataset order."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    out = [x[y == c] for c in range(num_classes)]
    empty = [c for c, xc in enumerate(out) if xc.shape[0] < 2]
    if empty:
        raise ConfigError(f"classes {empty} have fewer than 2 fitting images; use more images per class")
    return out


@dataclass
class Initializer:
    """Fitted class statistics for every initialisation; `sample(kind, y)` draws x_0 for labels y.

    images: list, per class, of float [0,1] (n_c, C, H, W) real training images.
    """

    images: list[torch.Tensor]
    retained_variance: float = 0.95
    pca_sigma: float = 0.005
    local_k: int = 100
    gaussian_jitter: float = 1e-4
    _pca: dict = field(default_factory=dict, repr=False)
    _chol: dict = field(default_factory=dict, repr=False)

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor, num_classes: int, **kwargs) -> "Initializer":
        return cls(class_images(x, y, num_classes), **kwargs)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images[0].shape[1:])

    def pca(self, c: int) -> ClassPCA:
        if c not in self._pca:
            self._pca[c] = fit_pca(self.images[c], self.retained_variance)
        return self._pca[c]

    def _cholesky(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        if c not in self._chol:
            flat = self.images[c].reshape(self.images[c].shape[0], -1).double()
            mean = flat.mean(0)
            cov = torch.cov(flat.T) + self.gaussian_jitter * torch.eye(flat.shape[1], dtype=torch.float64)
            self._chol[c] = (mean, torch.linalg.cholesky(cov))
        return self._chol[c]

    def local_pca(self, c: int, anchor: int) -> ClassPCA:
        """PCA of the `local_k` same-class nearest neighbours (pixel ℓ2, anchor included) of one image."""
        xc = self.images[c].reshape(self.images[c].shape[0], -1)
        if self.local_k > xc.shape[0]:
            raise ConfigError(f"local_k={self.local_k} exceeds the {xc.shape[0]} fitting images of class {c}")
        dist = torch.cdist(xc[anchor:anchor + 1], xc).squeeze(0)
        neighbours = torch.topk(dist, self.local_k, largest=False).indices
        return fit_pca(xc[neighbours], self.retained_variance)

    def sample(self, kind: str, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_0 for each label in y (CPU tensor), float32 in [0,1]."""
        if kind not in GENERATION_INITS:
            raise ConfigError(f"unknown initialisation {kind!r}; choose one of {', '.join(GENERATION_INITS)}")
        y = y.cpu()
        out = torch.empty(y.shape[0], *self.shape)
        if kind == "noise":
            return torch.rand(out.shape, generator=generator)
        for c in torch.unique(y).tolist():
            idx = torch.nonzero(y == c).flatten()
            if kind == "pca":
                out[idx] = sample_pca(self.pca(c), len(idx), self.pca_sigma, self.shape, generator)
            elif kind == "gaussian":
                mean, chol = self._cholesky(c)
                z = torch.randn(len(idx), mean.numel(), generator=generator, dtype=torch.float64)
                out[idx] = (mean + z @ chol.T).clamp(0, 1).float().reshape(len(idx), *self.shape)
            else:  # local_pca: one random anchor (and one local basis) per chain
                anchors = torch.randint(0, self.images[c].shape[0], (len(idx),), generator=generator)
                for i, a in zip(idx.tolist(), anchors.tolist()):
                    out[i] = sample_pca(self.local_pca(c, a), 1, self.pca_sigma, self.shape, generator)[0]
        return out


# ----------------------------------------------------------------------------- reference energies
@torch.no_grad()
def reference_energies(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                       batch_size: int = 256) -> torch.Tensor:
    """Ē_y: mean joint energy E(x, y) of real images of each class under `model` (shape (K,))."""
    device = next(model.parameters()).device
    energies = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
            energies.append(joint_energy(model(xb), y[i:i + batch_size].to(device)).cpu())
    e = torch.cat(energies)
    missing = [c for c in range(num_classes) if not (y == c).any()]
    if missing:
        raise ConfigError(f"no reference images for classes {missing}; Ē_y needs images of every class")
    return torch.stack([e[y.cpu() == c].mean() for c in range(num_classes)])


# ----------------------------------------------------------------------------- SGLD
def energy_and_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x, y) per sample and ∇_x Σ E(x, y) (the per-sample gradients; parameters get no .grad)."""
    x = x.detach().requires_grad_(True)
    energy = joint_energy(model(x), y)
    (grad,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach(), grad


def sgld_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, velocity: torch.Tensor, *,
              step_size: float, momentum: float, noise: torch.Tensor | None = None,
              step_clip: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step: returns (x_{n+1}, ν_{n+1}, E(x_n, y)). `noise` is ε_n already scaled (or None)."""
    energy, grad = energy_and_grad(model, x, y)
    velocity = momentum * velocity - 0.5 * step_size * grad
    step = velocity if noise is None else velocity + noise
    x_next = (x + step.clamp(-step_clip, step_clip)).clamp(0, 1)
    return x_next.detach(), velocity, energy


@dataclass
class SGLDResult:
    """Final samples (CPU), their energies, per-chain stop step, optional traces and frames.

    stopped_at[i] = the step at which chain i was frozen by adaptive stopping, or `steps` if never.
    trace: (steps + 1, B) energies E(x_n, y), n = 0..steps (frozen chains repeat their value).
    frames: {step: (F, C, H, W) images} at the requested snapshot steps, of the chains
    `frame_chains` (indices into x; all chains unless `snapshot_chains` was given).
    """

    x: torch.Tensor
    y: torch.Tensor
    energy: torch.Tensor
    stopped_at: torch.Tensor
    trace: torch.Tensor | None = None
    frames: dict[int, torch.Tensor] = field(default_factory=dict)
    frame_chains: torch.Tensor | None = None


def sgld_sample(model: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, *, step_size: float = 0.8,
                steps: int = 50, noise_std: float = 0.001, noise_alpha: float | None = None,
                momentum: float = 0.5, step_clip: float = 1.0, ref_energy: torch.Tensor | None = None,
                tau: float | None = None, trace: bool = False, snapshot_steps: Sequence[int] = (),
                snapshot_chains: torch.Tensor | None = None, batch_size: int = 128, generator: torch.Generator | None = None,
                progress: bool = True) -> SGLDResult:
    """Run fresh SGLD chains from x0 (B, C, H, W) towards labels y on the model's device, in batches.

    Adaptive stopping is on when `ref_energy` (Ē per class, shape (K,)) and `tau` are given: a chain
    whose energy satisfies (E(x_n, y) - Ē_y)² < τ is frozen at x_n for the rest of the run.
    Noise is drawn on the CPU from `generator`, so a seed gives the same chains on CPU and GPU.
    snapshot_chains: indices of the chains whose frames are kept (default: all; frames of
    thousands of chains take gigabytes).
    """
    if x0.ndim != 4 or y.shape != (x0.shape[0],):
        raise ValueError(f"x0 must be (B, C, H, W) with labels (B,); got {tuple(x0.shape)} and {tuple(y.shape)}")
    if (ref_energy is None) != (tau is None):
        raise ConfigError("adaptive stopping needs both ref_energy (Ē per class) and tau; pass both or neither")
    if steps < 0 or step_size < 0 or noise_std < 0:
        raise ConfigError(f"steps, step_size and noise_std must be non-negative; got {steps}, {step_size}, {noise_std}")
    param = next(model.parameters())
    device, dtype = param.device, param.dtype  # chains in the model's precision (float64 in tests)
    alpha = math.sqrt(2 * step_size) if noise_alpha is None else noise_alpha
    snapshot_steps = sorted(set(int(s) for s in snapshot_steps if 0 <= s <= steps))
    xs, es, stops, traces = [], [], [], []
    frames: dict[int, list[torch.Tensor]] = {s: [] for s in snapshot_steps}
    in_frames = torch.zeros(x0.shape[0], dtype=torch.bool)
    in_frames[snapshot_chains if snapshot_chains is not None else slice(None)] = True
    bar = tqdm(total=steps * math.ceil(x0.shape[0] / batch_size), desc="SGLD", unit="step",
               disable=not progress, leave=False)
    with eval_mode(model):
        for start in range(0, x0.shape[0], batch_size):
            x = x0[start:start + batch_size].to(device, dtype)
            yb = y[start:start + batch_size].to(device)
            v = torch.zeros_like(x)
            active = torch.ones(x.shape[0], dtype=torch.bool, device=device)
            stop = torch.full((x.shape[0],), steps, dtype=torch.long)
            ref = ref_energy.to(device)[yb] if ref_energy is not None else None
            energies = []
            for n in range(steps + 1):
                if n in frames:
                    frames[n].append(x[in_frames[start:start + batch_size].to(device)].cpu())
                if n == steps:  # final energies (no update)
                    with torch.no_grad():
                        energy = joint_energy(model(x), yb)
                    energies.append(energy.cpu())
                    break
                noise = None
                if noise_std > 0 and alpha > 0:
                    noise = (alpha * noise_std * torch.randn(x.shape, generator=generator)).to(device, dtype)
                x_next, v_next, energy = sgld_step(model, x, yb, v, step_size=step_size, momentum=momentum,
                                                   noise=noise, step_clip=step_clip)
                energies.append(energy.cpu())
                if ref is not None:
                    reached = active & ((energy - ref) ** 2 < tau)
                    stop[reached.cpu()] = n
                    active &= ~reached
                keep = active[:, None, None, None]
                x = torch.where(keep, x_next, x)
                v = torch.where(keep, v_next, v)
                bar.update(1)
            xs.append(x.detach().cpu())
            es.append(energies[-1])
            stops.append(stop)
            if trace:
                traces.append(torch.stack(energies))
    bar.close()
    return SGLDResult(
        x=torch.cat(xs), y=y.cpu(), energy=torch.cat(es), stopped_at=torch.cat(stops),
        trace=torch.cat(traces, dim=1) if trace else None,
        frames={s: torch.cat(f) for s, f in frames.items()},
        frame_chains=torch.nonzero(in_frames).flatten(),
    )


def sample_class_grid(model: torch.nn.Module, init: Initializer, kind: str, n_per_class: int, num_classes: int,
                      *, seed: int = 0, **sgld_kwargs) -> tuple[torch.Tensor, SGLDResult]:
    """n_per_class chains for every class from initialisation `kind`: returns (x_0, result).

    Labels are ordered class by class (0,0,...,1,1,...), which is what `plots`' grids expect.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x0 = init.sample(kind, y, generator=g)
    return x0, sgld_sample(model, x0, y, generator=g, **sgld_kwargs)


def image_grid(x: torch.Tensor, nrow: int) -> torch.Tensor:
    """(B, C, H, W) in [0,1] -> one (H', W', C) numpy-ready grid image, `nrow` images per row."""
    import torchvision.utils as vutils

    return vutils.make_grid(x.clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0).permute(1, 2, 0)
