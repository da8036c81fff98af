"""SGLD with momentum, the initialisations and adaptive stopping (PAPER.md 5.1 items 6-7, 5.2 item 6)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("ENERGY_DATA", str(REPO.parent / "shared" / "data"))

from energy_lib import data  # noqa: E402
from energy_lib.config import ConfigError, GenerationConfig  # noqa: E402
from energy_lib.energy import joint_energy  # noqa: E402
from energy_lib.generate import (Initializer, fit_pca, n_components_for, reference_energies,  # noqa: E402
                                 sample_class_grid, sample_pca, sgld_sample, sgld_step)


def toy_classifier(seed: int = 0, shape=(3, 8, 8), classes: int = 4) -> torch.nn.Module:
    """A fixed smooth classifier (tanh MLP) in float64: gradients are exact and energies smooth."""
    torch.manual_seed(seed)
    d = int(np.prod(shape))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, classes)).double()
    return model.eval()


def grad_energy(model, x, y):
    """∇_x Σ_i E(x_i, y_i) computed directly from the logits (independent of energy_lib)."""
    x = x.clone().requires_grad_(True)
    (-model(x).gather(1, y[:, None]).sum()).backward()
    return x.grad


# ----------------------------------------------------------------------------- SGLD step
def test_sgld_step_equals_formula_with_noise_off():
    model = toy_classifier()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    v = 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    eta, zeta = 0.7, 0.6
    x_next, v_next, energy = sgld_step(model, x, y, v, step_size=eta, momentum=zeta)
    expected_v = zeta * v - eta / 2 * grad_energy(model, x, y)
    torch.testing.assert_close(v_next, expected_v)
    torch.testing.assert_close(x_next, (x + expected_v).clamp(0, 1))
    torch.testing.assert_close(energy, -model(x).gather(1, y[:, None]).squeeze(1).detach())
    assert ((x + expected_v) > 1).any() or ((x + expected_v) < 0).any(), "the clip must be exercised"


def test_sgld_sample_follows_the_recursion_with_momentum():
    model = toy_classifier(seed=3)
    x0 = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.5 + 0.25
    y = torch.tensor([3, 2, 1, 0, 3])
    eta, zeta, steps = 0.4, 0.5, 3
    res = sgld_sample(model, x0, y, step_size=eta, steps=steps, noise_std=0.0, momentum=zeta,
                      trace=True, snapshot_steps=range(steps + 1), progress=False)
    x, v = x0.clone(), torch.zeros_like(x0)
    for n in range(steps):
        torch.testing.assert_close(res.frames[n], x)
        v = zeta * v - eta / 2 * grad_energy(model, x, y)
        x = (x + v).clamp(0, 1)
    torch.testing.assert_close(res.x, x)
    torch.testing.assert_close(res.energy, -model(x).gather(1, y[:, None]).squeeze(1).detach())
    # frames of chosen chains only (the chapter keeps those of its grids), across batch boundaries
    part = sgld_sample(model, x0, y, step_size=eta, steps=steps, noise_std=0.0, momentum=zeta,
                       snapshot_steps=range(steps + 1), snapshot_chains=torch.tensor([1, 4]), batch_size=2,
                       progress=False)
    assert part.frame_chains.tolist() == [1, 4]
    for n in range(steps + 1):
        torch.testing.assert_close(part.frames[n], res.frames[n][[1, 4]])
    assert res.trace.shape == (steps + 1, 5)


def test_energy_falls_along_a_noiseless_chain():
    model = toy_classifier(seed=5)
    x0 = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.6 + 0.2
    y = torch.arange(8) % 4
    res = sgld_sample(model, x0, y, step_size=0.05, steps=40, noise_std=0.0, momentum=0.0, trace=True,
                      progress=False)
    diffs = res.trace[1:] - res.trace[:-1]
    assert (diffs <= 1e-12).all(), f"energy rose by up to {diffs.max().item():.3g}"
    assert (res.trace[-1] < res.trace[0] - 0.01).all()


def test_noise_scale_defaults_to_sqrt_2_eta():
    """With a flat energy the step is pure noise of std α·σ, α = sqrt(2η) (official default)."""

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(3))

        def forward(self, x):
            return self.bias + 0.0 * x.flatten(1).sum(1, keepdim=True)

    x0 = torch.full((64, 3, 16, 16), 0.5)
    y = torch.zeros(64, dtype=torch.long)
    eta, sigma = 0.5, 0.01
    res = sgld_sample(Flat(), x0, y, step_size=eta, steps=1, noise_std=sigma, momentum=0.0,
                      generator=torch.Generator().manual_seed(0), progress=False)
    std = (res.x - x0).std().item()
    assert std == pytest.approx(math.sqrt(2 * eta) * sigma, rel=0.03)
    res = sgld_sample(Flat(), x0, y, step_size=eta, steps=1, noise_std=sigma, noise_alpha=1.0, momentum=0.0,
                      generator=torch.Generator().manual_seed(0), progress=False)
    assert (res.x - x0).std().item() == pytest.approx(sigma, rel=0.03)


def test_outputs_stay_in_unit_box_with_large_steps_and_noise():
    model = toy_classifier(seed=7).float()
    x0 = torch.rand(10, 3, 8, 8)
    y = torch.arange(10) % 4
    res = sgld_sample(model, x0, y, step_size=50.0, steps=5, noise_std=0.5, momentum=0.9,
                      snapshot_steps=range(6), generator=torch.Generator().manual_seed(0), progress=False)
    for x in [res.x, *res.frames.values()]:
        assert x.min() >= 0 and x.max() <= 1
    assert ((res.x == 0) | (res.x == 1)).any(), "the test must push pixels against the box"


# ----------------------------------------------------------------------------- adaptive stopping
def test_adaptive_stopping_freezes_chains_that_reached_the_reference():
    model = toy_classifier(seed=11)
    x0 = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.6 + 0.2
    y = torch.arange(8) % 4
    kwargs = dict(step_size=0.3, steps=30, noise_std=0.0, momentum=0.0, trace=True,
                  snapshot_steps=range(31), progress=False)
    free = sgld_sample(model, x0, y, **kwargs)
    # Reference energies halfway down each class's free trajectory (classes 0-2), unreachable for class 3.
    ref = torch.stack([free.trace[15, y == c].mean() for c in range(4)]).double()
    ref[3] = -1e6
    tau = 0.05
    res = sgld_sample(model, x0, y, ref_energy=ref, tau=tau, **kwargs)
    stopped = res.stopped_at < 30
    assert stopped[y != 3].any() and not stopped[y == 3].any()
    for i in range(8):
        s = int(res.stopped_at[i])
        # never within sqrt(tau) before the stop step, within it at the stop step, frozen after
        assert ((res.trace[:s, i] - ref[y[i]]) ** 2 >= tau).all()
        if s < 30:
            assert (res.trace[s, i] - ref[y[i]]) ** 2 < tau
            for n in range(s, 31):
                torch.testing.assert_close(res.frames[n][i], res.frames[s][i])
            assert res.energy[i] == pytest.approx(res.trace[s, i].item())
        else:
            torch.testing.assert_close(res.x[i], free.x[i])


def test_adaptive_stopping_needs_both_reference_and_tau():
    model = toy_classifier()
    with pytest.raises(ConfigError, match="both"):
        sgld_sample(model, torch.rand(2, 3, 8, 8, dtype=torch.float64), torch.zeros(2, dtype=torch.long),
                    ref_energy=torch.zeros(4), progress=False)


def test_reference_energies_are_class_means_of_joint_energy():
    model = toy_classifier(seed=2).float()
    x = (torch.rand(40, 3, 8, 8) * 255).to(torch.uint8)
    y = torch.arange(40) % 4
    ref = reference_energies(model, x, y, 4, batch_size=7)
    e = joint_energy(model(x.float() / 255), y).detach()
    torch.testing.assert_close(ref, torch.stack([e[y == c].mean() for c in range(4)]))


# ----------------------------------------------------------------------------- PCA initialisation
@pytest.fixture(scope="module")
def cifar_class0():
    train = data.load_dataset("cifar10", "train", n=2000)
    return train.x[train.y == 0][:150].float() / 255  # (150, 3, 32, 32) real airplanes


def test_pca_init_shape_range_and_kept_components(cifar_class0):
    pca = fit_pca(cifar_class0, 0.95)
    reference = PCA().fit(cifar_class0.reshape(150, -1).double().numpy())
    cumulative = np.cumsum(reference.explained_variance_ratio_)
    expected_k = int(np.argmax(cumulative >= 0.95)) + 1
    assert pca.n_components == expected_k
    assert cumulative[expected_k - 2] < 0.95 <= cumulative[expected_k - 1]
    # λ_i are the singular values (sqrt((n-1)·variance)), not standard deviations
    np.testing.assert_allclose(pca.singular_values.numpy(), reference.singular_values_[:expected_k], rtol=1e-4)
    cos = (pca.components.double() * torch.from_numpy(reference.components_[:expected_k])).sum(1).abs()
    assert (cos > 0.999).all()
    x0 = sample_pca(pca, 12, 0.005, (3, 32, 32), torch.Generator().manual_seed(0))
    assert x0.shape == (12, 3, 32, 32) and x0.min() >= 0 and x0.max() <= 1
    assert not torch.allclose(x0[0], x0[1])


@pytest.mark.parametrize("n_fit", [100, 1000])
def test_pca_samples_have_the_spread_of_a_5000_image_fit_for_any_fit_size(n_fit):
    """Defect 12 of issue 10: synthetic data with a known covariance (per-axis std s_i along a random
    orthonormal basis), fitted on n = 100 (local PCA's k) or 1,000 images. The samples' spread along
    each fitted axis is σ_pca·sqrt(4999)·std_i (std_i the fit's own, ddof 1): what σ_pca gives on the
    paper's 5,000 images, whatever n. The true std s_i is matched within the fit's sampling error."""
    from energy_lib.generate import PAPER_PCA_FIT_SIZE

    d, sigma, draws = 6, 0.005, 40_000
    g = torch.Generator().manual_seed(n_fit)
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    true_std = torch.tensor([0.08, 0.06, 0.04, 0.03, 0.02, 0.01], dtype=torch.float64)
    x = 0.5 + (torch.randn(n_fit, d, generator=g, dtype=torch.float64) * true_std) @ basis.T
    pca = fit_pca(x, 1.0)
    assert pca.n_fit == n_fit and pca.n_components == d
    fit_std = pca.singular_values.double() / math.sqrt(n_fit - 1)   # the fit's own std per axis
    samples = sample_pca(pca, draws, sigma, (d,), torch.Generator().manual_seed(1)).double()
    assert 0 < samples.min() and samples.max() < 1                  # no clipping in this test
    spread = ((samples - pca.mean.double()) @ pca.components.double().T).std(0)
    intended = sigma * math.sqrt(PAPER_PCA_FIT_SIZE - 1) * fit_std
    # 40,000 draws: the std of a sample std is 0.35 % of it; 2 % is ~6 of those
    torch.testing.assert_close(spread, intended, rtol=0.02, atol=0)
    # and against the known covariance: the fit's std is within its own sampling error (n = 100: ~7 %)
    torch.testing.assert_close(spread / (sigma * math.sqrt(PAPER_PCA_FIT_SIZE - 1)), true_std,
                               rtol=6 / math.sqrt(2 * (n_fit - 1)), atol=0)


def test_kept_components_rule_on_a_known_spectrum():
    ratio = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert n_components_for(ratio, 0.5) == 1
    assert n_components_for(ratio, 0.8) == 2
    assert n_components_for(ratio, 0.81) == 3
    assert n_components_for(ratio, 0.95) == 3
    assert n_components_for(ratio, 1.0) == 4
    with pytest.raises(ConfigError, match="0.95"):
        n_components_for(ratio, 95)


def test_pca_sigma_zero_returns_the_class_mean(cifar_class0):
    init = Initializer([cifar_class0, cifar_class0.flip(0)], pca_sigma=0.0)
    x0 = init.sample("pca", torch.tensor([0, 0, 1]))
    for x in x0:
        torch.testing.assert_close(x, cifar_class0.mean(0), atol=1e-6, rtol=0)


def test_chw_flattening_round_trips():
    """Images that differ only at (c=2, h=1, w=5): the single principal axis must sit at that pixel."""
    base = torch.full((20, 3, 4, 6), 0.5)
    base[:, 2, 1, 5] = torch.linspace(0.1, 0.9, 20)
    pca = fit_pca(base, 0.99)
    assert pca.n_components == 1
    axis = pca.components[0].reshape(3, 4, 6).abs()
    assert axis[2, 1, 5] == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(pca.mean.reshape(3, 4, 6), base.mean(0))
    x0 = sample_pca(pca, 50, 1.0, (3, 4, 6), torch.Generator().manual_seed(0))
    changed = (x0 - base.mean(0)).abs().amax(0) > 1e-6
    assert changed[2, 1, 5] and changed.sum() == 1


def test_local_pca_is_centred_on_the_anchor_neighbourhood(cifar_class0):
    init = Initializer([cifar_class0], pca_sigma=0.0, local_k=10)
    g = torch.Generator().manual_seed(3)
    x0 = init.sample("local_pca", torch.zeros(3, dtype=torch.long), generator=g)
    anchors = torch.randint(0, 150, (3,), generator=torch.Generator().manual_seed(3))
    flat = cifar_class0.reshape(150, -1)
    for x, a in zip(x0, anchors):
        nearest = torch.argsort(((flat - flat[a]) ** 2).sum(1))[:10]
        torch.testing.assert_close(x, cifar_class0[nearest].mean(0), atol=1e-6, rtol=0)
    assert not torch.allclose(x0[0], x0[1])  # different anchors, different local means


def test_gaussian_init_matches_class_moments():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 12, generator=g) * 0.05
    imgs = (0.5 + torch.randn(4000, 12, generator=g) @ mix).clamp(0, 1).reshape(4000, 3, 2, 2)
    init = Initializer([imgs], gaussian_jitter=1e-6)
    x0 = init.sample("gaussian", torch.zeros(4000, dtype=torch.long), generator=g)
    assert x0.shape == (4000, 3, 2, 2) and x0.min() >= 0 and x0.max() <= 1
    flat, ref = x0.reshape(4000, -1).double(), imgs.reshape(4000, -1).double()
    torch.testing.assert_close(flat.mean(0), ref.mean(0), atol=0.01, rtol=0)
    cov, ref_cov = torch.cov(flat.T), torch.cov(ref.T)
    assert torch.linalg.norm(cov - ref_cov) / torch.linalg.norm(ref_cov) < 0.1  # sampling error ~3%


def test_noise_init_is_uniform_and_class_grid_orders_labels():
    init = Initializer([torch.rand(5, 3, 8, 8), torch.rand(5, 3, 8, 8)])
    x0 = init.sample("noise", torch.zeros(2000, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert x0.min() >= 0 and x0.max() <= 1 and x0.mean().item() == pytest.approx(0.5, abs=0.01)
    model = toy_classifier(classes=2).float()
    x0, res = sample_class_grid(model, init, "noise", 3, 2, steps=2, progress=False)
    assert res.y.tolist() == [0, 0, 0, 1, 1, 1] and x0.shape == (6, 3, 8, 8)
    with pytest.raises(ConfigError, match="local_pca"):
        init.sample("pca_local", torch.zeros(1, dtype=torch.long))


# ----------------------------------------------------------------------------- config
def test_generation_config_profiles_and_checks():
    smoke, default, paper = (GenerationConfig.from_profile(p) for p in ("smoke", "default", "paper"))
    assert default.step_size == 0.8 and default.noise_std == 0.001 and default.retained_variance == 0.95
    assert default.pca_sigma == 0.005 and paper.steps == 50 and paper.n_fid_samples == 10000
    assert paper.n_fit_per_class == 5000 and smoke.steps < default.steps
    with pytest.raises(ConfigError, match="not 95"):
        GenerationConfig(retained_variance=95)
    with pytest.raises(ConfigError, match="inits"):
        GenerationConfig(inits=("pca", "blur"))


# ----------------------------------------------------------------------------- chapter
def test_chapter5_executes_in_smoke_profile(tmp_path):
    out = tmp_path / "out5.ipynb"
    env = {**os.environ, "ENERGY_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(REPO / "book" / "05_generation.ipynb"), str(out),
                           "-p", "profile", "smoke", "--cwd", str(REPO / "book")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = list((tmp_path / "runs").rglob("fidelity*.json"))
    assert records, "the chapter must store its metric records under ENERGY_RUNS"
