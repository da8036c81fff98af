"""Chapter 1's computation: per-attack energies, the summary table, and the per-attack cache."""
import numpy as np
import pandas as pd
import pytest
import torch

from energy_lib import attack_energies, data, models
from energy_lib.config import AttackEnergyConfig

CFG = AttackEnergyConfig.from_profile("smoke", n_images=8, autoattack=False)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    torch.manual_seed(0)
    model = models.build_model("small_cnn").eval()
    x, y = data.load_dataset("cifar10", "test", n=CFG.n_images).tensors()
    return model, x, y


def test_frame_holds_the_energies_of_the_model(tiny):
    model, x, y = tiny
    frame = attack_energies.compute_attack_energies(model, x, y, CFG, "tiny", progress=False)
    assert set(frame.attack) == set(attack_energies.WHITE_BOX_ATTACKS)
    assert (frame.linf <= CFG.eps + 1e-6).all()
    pgd = frame[frame.attack == "pgd"]
    with torch.no_grad():
        logits = model(x)
    np.testing.assert_allclose(pgd.E_nat, -torch.logsumexp(logits, 1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(pgd.Exy_nat, -logits[torch.arange(len(y)), y].numpy(), rtol=1e-5)


def test_cached_attacks_are_reused_not_recomputed(tiny, monkeypatch):
    model, x, y = tiny
    first = attack_energies.compute_attack_energies(model, x, y, CFG, "tiny", progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached attack was recomputed")

    monkeypatch.setattr(attack_energies, "_run_attack", must_not_run)
    again = attack_energies.compute_attack_energies(model, x, y, CFG, "tiny", progress=False)
    pd.testing.assert_frame_equal(first, again, check_dtype=False)
    # Another config (more steps) is a different cache entry.
    with pytest.raises(AssertionError, match="recomputed"):
        attack_energies.compute_attack_energies(model, x, y, CFG.replace(steps=CFG.steps + 1), "tiny", progress=False)


def test_summary_table_signs_and_agreement():
    frame = pd.DataFrame({
        "attack": ["pgd"] * 2 + ["apgd-t"] * 2 + ["pgd_targeted_ce"] * 2, "eps": 8 / 255, "sample": [0, 1] * 3,
        "E_nat": [-10.0, -12.0] * 3, "E_adv": [-20.0, -22.0, -5.0, -7.0, -30.0, -30.0],
        "Exy_nat": [-9.0, -11.0] * 3, "Exy_adv": [5.0, 5.0, 1.0, 1.0, 2.0, 2.0],
        "correct_nat": True, "correct_adv": [False, True, False, False, True, True], "linf": 0.03,
    })
    table = attack_energies.summary_table(frame).set_index("attack")
    assert table.loc["pgd", "ΔE(x)"] == pytest.approx(10.0)      # natural minus adversarial
    assert table.loc["apgd-t", "ΔE(x)"] == pytest.approx(-5.0)
    assert table.loc["pgd", "ΔE(x,y)"] == pytest.approx(-15.0)
    assert table.loc["pgd", "accuracy (adv)"] == pytest.approx(0.5)
    assert table.loc["pgd", "agrees"] and table.loc["apgd-t", "agrees"]
    assert table.loc["pgd_targeted_ce", "agrees"] is None
