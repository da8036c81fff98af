"""Chapter 5's store of results (energy_lib.generation_store): a second execution recomputes nothing,
a changed config, model or initialisation recomputes, an unusable file is recomputed with a warning
naming it. Sampler, reference energies, PCA fits and FID/KID are counted through monkeypatch."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from energy_lib import generate, generation_store
from energy_lib.config import GenerationConfig
from energy_lib.generation_store import GenerationStore, model_digest
from energy_lib.metrics import fidelity as fid_metrics

CLASSES, SHAPE = 3, (3, 4, 4)


def toy_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, CLASSES)).eval()


def toy_init(seed: int = 0) -> generate.Initializer:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(30, *SHAPE, generator=g), torch.arange(CLASSES).repeat(10)
    return generate.Initializer.fit(x, y, CLASSES, retained_variance=0.9, local_k=4)


def config(**changes) -> GenerationConfig:
    return GenerationConfig.from_profile("smoke", device="cpu", **changes)


@pytest.fixture
def calls(monkeypatch):
    """Counts the expensive computations (each still runs, except FID/KID: a fake record)."""
    counts = {"sample": 0, "energies": 0, "pca": 0, "fidelity": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    def fake_fidelity(samples, reference, **kwargs):
        counts["fidelity"] += 1
        return fid_metrics.FidelityRecord(
            fid=float(samples.sum()), kid_mean=float(samples.mean()), kid_std=0.0, isc_mean=None, isc_std=None,
            isc_note="fake", n_samples=int(samples.shape[0]), reference=kwargs["reference_name"],
            n_reference=int(reference.shape[0]), sample_dtype="uint8", quantisation="", kid_subset_size=2,
            kid_subsets=1, feature_layer="", weights="fake", torch_fidelity_version="")

    monkeypatch.setattr(generate, "sample_class_grid", counted("sample", generate.sample_class_grid))
    monkeypatch.setattr(generate, "reference_energies", counted("energies", generate.reference_energies))
    monkeypatch.setattr(generate, "fit_pca", counted("pca", generate.fit_pca))   # Initializer.pca fits through it
    monkeypatch.setattr(fid_metrics, "compute_fidelity", fake_fidelity)
    return counts


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "inception.pth"
    path.write_bytes(b"fake weights")
    return fid_metrics.InceptionWeights(path, "fake weights", has_logits=False)


def execute(store: GenerationStore, model, init, weights, kinds=(("pca", False), ("pca", True), ("noise", False))):
    """What the chapter computes for one model: PCA fits, Ē_y, chains per setting, their FID/KID."""
    kept = store.pca_components(init, CLASSES)
    real_x, real_y = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(5)), torch.arange(CLASSES).repeat(2)
    ref = store.reference_energies(model, real_x, real_y, CLASSES)
    out = {}
    for kind, adaptive in kinds:
        s = store.samples(model, init, kind, adaptive, per_class=2, num_classes=CLASSES,
                          grid_chains=torch.tensor([0, 2, 4]), ref_energy=ref)
        record = store.fidelity("toy", model, kind, adaptive, s.result, real_x, reference_name="toy reference",
                                weights=weights, num_classes=CLASSES)
        out[(kind, adaptive)] = (s, record)
    return kept, ref, out


def assert_same(a, b):
    (kept_a, ref_a, out_a), (kept_b, ref_b, out_b) = a, b
    assert kept_a == kept_b and torch.equal(ref_a, ref_b) and out_a.keys() == out_b.keys()
    for key in out_a:
        (sa, ra), (sb, rb) = out_a[key], out_b[key]
        assert torch.equal(sa.x0, sb.x0) and torch.equal(sa.result.p_y, sb.result.p_y)
        for name in ("x", "y", "energy", "stopped_at", "trace", "frame_chains"):
            assert torch.equal(getattr(sa.result, name), getattr(sb.result, name)), name
        assert sa.result.frames.keys() == sb.result.frames.keys()
        assert all(torch.equal(sa.result.frames[k], sb.result.frames[k]) for k in sa.result.frames)
        assert ra.to_dict() == rb.to_dict()


def test_a_second_execution_recomputes_nothing(tmp_path, calls, weights):
    cfg, model, init = config(), toy_model(), toy_init()
    first = execute(GenerationStore.for_config(cfg, tmp_path), model, init, weights)
    assert calls == {"sample": 3, "energies": 1, "pca": CLASSES, "fidelity": 3}
    assert all(not s.reused for s, _ in first[2].values())
    # a new execution: new store object, a freshly built model and initialisation with the same content
    store = GenerationStore.for_config(cfg, tmp_path)
    second = execute(store, copy.deepcopy(model), toy_init(), weights)
    assert calls == {"sample": 3, "energies": 1, "pca": CLASSES, "fidelity": 3}
    assert all(s.reused for s, _ in second[2].values())
    assert len(store.reused) == 8 and store.computed == []
    assert_same(first, second)
    record = json.loads(next(store.dir.glob("fidelity-pca-adaptive-*.json")).read_text())
    assert record["scored"]["model_sha256"] == model_digest(model) and record["scored"]["tau"] == cfg.tau


def test_a_changed_config_model_or_initialisation_recomputes(tmp_path, calls, weights):
    """Each execution builds its Initializer afresh, as the chapter does (it keeps its fits in memory)."""
    cfg, model = config(), toy_model()
    base = execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 1, "energies": 1, "pca": CLASSES, "fidelity": 1}

    # another config: its own folder, everything again
    other = GenerationStore.for_config(config(steps=2), tmp_path)
    assert other.dir != GenerationStore.for_config(cfg, tmp_path).dir
    changed = execute(other, model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 2, "energies": 2, "pca": 2 * CLASSES, "fidelity": 2}
    assert changed[2][("pca", False)][0].result.trace.shape[0] == 3   # 2 steps + the start

    # the same config in a store that already holds it, but retrained weights (one value moved)
    retrained = copy.deepcopy(model)
    with torch.no_grad():
        retrained[1].bias[0] += 1e-3
    assert model_digest(retrained) != model_digest(model)
    execute(GenerationStore.for_config(cfg, tmp_path), retrained, toy_init(), weights, kinds=[("pca", False)])
    # (the PCA summary is stored, but sampling from a PCA start fits the classes again)
    assert calls == {"sample": 3, "energies": 3, "pca": 3 * CLASSES, "fidelity": 3}

    # another initialisation: a new kind, and the same kind fitted on other images
    store = GenerationStore.for_config(cfg, tmp_path)
    execute(store, model, toy_init(), weights, kinds=[("noise", False)])
    assert calls == {"sample": 4, "energies": 3, "pca": 3 * CLASSES, "fidelity": 4}
    execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(seed=1), weights, kinds=[("pca", False)])
    assert calls == {"sample": 5, "energies": 3, "pca": 4 * CLASSES, "fidelity": 5}
    # a model changed in place under the same store object is a new key too
    store = GenerationStore.for_config(cfg, tmp_path)
    moved = copy.deepcopy(model)
    execute(store, moved, toy_init(), weights, kinds=[("noise", False)])
    assert calls["sample"] == 5
    with torch.no_grad():
        moved[3].weight[0, 0] -= 1e-3
    execute(store, moved, toy_init(), weights, kinds=[("noise", False)])
    assert calls["sample"] == 6 and calls["energies"] == 4
    # and back to the original: all stored
    again = execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 6, "energies": 4, "pca": 4 * CLASSES, "fidelity": 6}
    assert_same(base, again)


def _edited_package(tmp_path, name, edit):
    """A copy of the package's digested sources with `edit` applied to the text of `name`."""
    edited = tmp_path / "edited"
    for f in {f for files in generation_store.CODE_FILES.values() for f in files}:
        target = edited / f
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (generation_store.PACKAGE_DIR / f).read_text(encoding="utf-8")
        target.write_text(edit(text) if f == name else text, encoding="utf-8")
    return edited


def test_an_edit_to_the_code_recomputes_what_it_computes_and_nothing_else(tmp_path, calls, weights, monkeypatch):
    cfg, model = config(), toy_model()
    execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 1, "energies": 1, "pca": CLASSES, "fidelity": 1}
    real = generation_store.code_digest

    def use(edited):
        monkeypatch.setattr(generation_store, "code_digest", lambda files: real(files, edited))
    # a docstring and a comment edited in the sampler's module: the same code, everything reused
    use(_edited_package(tmp_path / "doc", "generate.py",
                        lambda t: t.replace('"""', '"""Edited. ', 1) + "\n# a comment\n"))
    execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 1, "energies": 1, "pca": CLASSES, "fidelity": 1}
    # a code edit in the scoring module: only the FID/KID record is recomputed (the samples are stored)
    use(_edited_package(tmp_path / "fid", "metrics/fidelity.py", lambda t: t + "\nEDITED = 1\n"))
    execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 1, "energies": 1, "pca": CLASSES, "fidelity": 2}
    # a code edit in the sampler's module: fits, Ē_y and chains again; the chains come out the same
    # here, so their score under the original scoring code (stored first) is found by its key
    use(_edited_package(tmp_path / "gen", "generate.py", lambda t: t + "\nEDITED = 1\n"))
    execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights, kinds=[("pca", False)])
    assert calls == {"sample": 2, "energies": 2, "pca": 2 * CLASSES, "fidelity": 2}


def test_other_inception_weights_rescore_the_same_samples(tmp_path, calls, weights):
    cfg, model, init = config(), toy_model(), toy_init()
    execute(GenerationStore.for_config(cfg, tmp_path), model, init, weights, kinds=[("pca", False)])
    hub = fid_metrics.InceptionWeights(weights.path, "torch-fidelity hub", has_logits=True)
    execute(GenerationStore.for_config(cfg, tmp_path), model, init, hub, kinds=[("pca", False)])
    assert calls["sample"] == 1 and calls["fidelity"] == 2


@pytest.mark.parametrize("pattern,content,recomputed", [
    # a torch file cut short: the chains again (their PCA start fits the classes again)
    ("samples-pca-adaptive-*.pt", b"PK\x03\x04 truncated", {"sample": 1, "energies": 0, "pca": CLASSES, "fidelity": 0}),
    # Ē_y again: the same values, so the adaptive chains (keyed by them) are read back
    ("energies-*.pt", b"", {"sample": 0, "energies": 1, "pca": 0, "fidelity": 0}),
    ("pca-*.json", b'{"key": ', {"sample": 0, "energies": 0, "pca": CLASSES, "fidelity": 0}),
    ("fidelity-noise-*.json", b"not json", {"sample": 0, "energies": 0, "pca": 0, "fidelity": 1}),
])
def test_an_unreadable_file_is_recomputed_with_a_warning_naming_it(tmp_path, calls, weights, pattern, content,
                                                                     recomputed):
    cfg, model = config(), toy_model()
    first = execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights)
    before = dict(calls)
    (path,) = GenerationStore.for_config(cfg, tmp_path).dir.glob(pattern)
    path.write_bytes(content)
    with pytest.warns(UserWarning, match=f"{path.name}.*recomputed"):
        second = execute(GenerationStore.for_config(cfg, tmp_path), model, toy_init(), weights)
    assert_same(first, second)   # the recomputation is the same result (fixed seeds)
    assert {k: calls[k] - before[k] for k in calls} == recomputed
    # rewritten: a third execution reads everything back
    third_store = GenerationStore.for_config(cfg, tmp_path)
    execute(third_store, model, toy_init(), weights)
    assert third_store.computed == []


def test_a_file_holding_another_key_is_not_used(tmp_path, calls, weights):
    """A file whose name says one result but holds another (copied over it) is recomputed."""
    cfg, model, init = config(), toy_model(), toy_init()
    store = GenerationStore.for_config(cfg, tmp_path)
    first = execute(store, model, init, weights)
    (pca_file,) = [p for p in store.dir.glob("samples-pca-*.pt") if "adaptive" not in p.name]
    noise_file = next(store.dir.glob("samples-noise-*.pt"))
    pca_file.write_bytes(noise_file.read_bytes())
    with pytest.warns(UserWarning, match=f"{pca_file.name}.*another result"):
        second = execute(GenerationStore.for_config(cfg, tmp_path), model, init, weights)
    assert calls["sample"] == 4
    assert_same(first, second)


def test_model_digest_covers_every_tensor():
    a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b = copy.deepcopy(a)
    assert model_digest(a) == model_digest(b)
    b[1].running_mean[0] = 0.5   # a buffer, not a parameter
    assert model_digest(a) != model_digest(b)
    assert generation_store.tensor_digest(torch.zeros(2)) != generation_store.tensor_digest(torch.zeros(2, 1))
