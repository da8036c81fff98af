"""Parameter layering: defaults < profile < explicit values (the notebook/CLI contract)."""
import pytest
import torch

from energy_lib.config import (AttackEnergyConfig, ConfigError, GenerationConfig, LensConfig, TrainConfig, WeatDerConfig,
                               check_eps, resolve_device)


def test_default_profile_is_the_dataclass_defaults():
    assert AttackEnergyConfig.from_profile("default") == AttackEnergyConfig()


def test_profile_overrides_defaults_and_explicit_values_override_profile():
    smoke = AttackEnergyConfig.from_profile("smoke")
    assert smoke.n_images == AttackEnergyConfig.PROFILES["smoke"]["n_images"] != AttackEnergyConfig().n_images
    explicit = AttackEnergyConfig.from_profile("smoke", n_images=33)
    assert explicit.n_images == 33 and explicit.steps == smoke.steps
    forced = AttackEnergyConfig.from_profile("smoke", overrides={"n_images": AttackEnergyConfig().n_images})
    assert forced.n_images == AttackEnergyConfig().n_images


def test_an_explicit_value_wins_even_when_it_equals_the_default():
    # `papermill -p profile smoke -p n_images 128` must give 128 images, the default-profile value
    assert AttackEnergyConfig.from_profile("smoke", n_images=AttackEnergyConfig().n_images).n_images == 128
    ns = {"profile": "paper", "batch_size": AttackEnergyConfig().batch_size}
    assert AttackEnergyConfig.from_namespace(ns).batch_size == AttackEnergyConfig().batch_size


def test_from_namespace_reads_notebook_globals_and_none_means_the_profile():
    ns = {"profile": "paper", "device": "cpu", "steps": 7, "n_images": None, "unrelated": 1}
    cfg = AttackEnergyConfig.from_namespace(ns)
    assert cfg.device == "cpu" and cfg.steps == 7
    assert cfg.n_images == AttackEnergyConfig.PROFILES["paper"]["n_images"]


@pytest.mark.parametrize("chapter,config", [
    ("01_attack_energies", AttackEnergyConfig), ("02_at_phases", TrainConfig), ("03_trades_ebm", TrainConfig),
    ("04_weat_der", WeatDerConfig), ("05_generation", GenerationConfig), ("06_smooth_landscape", LensConfig)])
def test_parameters_cells_leave_config_fields_to_the_profile(repo_root, chapter, config):
    """Every config field in a chapter's parameters cell is None (= the profile decides); a typo
    would silently do nothing, so every None-valued name must be a field of the chapter's config."""
    import ast
    import json

    nb = json.loads((repo_root / "book" / f"{chapter}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assigned = {node.targets[0].id: ast.literal_eval(node.value) if isinstance(node.value, ast.Constant) else ...
                for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)}
    assert assigned["profile"] == "default" and assigned["device"] == "auto"
    fields = set(config.field_names())
    for name, value in assigned.items():
        if value is None:
            assert name in fields, f"{chapter}: parameter {name!r} is not a {config.__name__} field"
        else:
            assert name in ("profile", "device") or name not in fields, (
                f"{chapter}: {name} = {value!r} would override every profile; set it to None")
    # with nothing injected, the notebook gets exactly the profile
    ns = {k: v for k, v in assigned.items() if v is not ...}
    assert config.from_namespace({**ns, "profile": "smoke"}) == config.from_profile("smoke")


def test_attack_energy_config_rejects_bad_values():
    for bad, word in ((dict(eps=2.0), "outside"), (dict(eps=0.0), "positive"), (dict(dataset="mnist"), "unknown"),
                      (dict(n_images=0), "positive"), (dict(steps=-1), "positive"),
                      (dict(eps_grid=(8 / 255, 16.0)), "outside")):
        with pytest.raises(ConfigError, match=word):
            AttackEnergyConfig(**bad)


def test_unknown_names_fail_clearly():
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        AttackEnergyConfig.from_profile("fast")
    with pytest.raises(ConfigError, match="no parameter"):
        AttackEnergyConfig.from_profile("default", n_imgs=3)


def test_round_trip_through_dict():
    cfg = AttackEnergyConfig.from_profile("smoke")
    assert AttackEnergyConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("eps", [-0.1, 1.5, 8])
def test_eps_out_of_range(eps):
    with pytest.raises(ConfigError, match="outside \\[0, 1\\]"):
        check_eps(eps)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
