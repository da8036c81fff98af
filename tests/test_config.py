"""Parameter layering: defaults < profile < explicit values (the notebook/CLI contract)."""
import pytest
import torch

from energy_lib.config import AttackEnergyConfig, ConfigError, check_eps, resolve_device


def test_default_profile_is_the_dataclass_defaults():
    assert AttackEnergyConfig.from_profile("default") == AttackEnergyConfig()


def test_profile_overrides_defaults_and_explicit_values_override_profile():
    smoke = AttackEnergyConfig.from_profile("smoke")
    assert smoke.n_images == AttackEnergyConfig.PROFILES["smoke"]["n_images"] != AttackEnergyConfig().n_images
    explicit = AttackEnergyConfig.from_profile("smoke", n_images=33)
    assert explicit.n_images == 33 and explicit.steps == smoke.steps
    forced = AttackEnergyConfig.from_profile("smoke", overrides={"n_images": AttackEnergyConfig().n_images})
    assert forced.n_images == AttackEnergyConfig().n_images


def test_from_namespace_reads_notebook_globals():
    ns = {"profile": "paper", "device": "cpu", "steps": 7, "unrelated": 1}
    cfg = AttackEnergyConfig.from_namespace(ns)
    assert cfg.device == "cpu" and cfg.steps == 7
    assert cfg.n_images == AttackEnergyConfig.PROFILES["paper"]["n_images"]


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
