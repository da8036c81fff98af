"""Chapter 1's computation, a use of the energy lens: per-attack energies, the summary table, reuse."""
import numpy as np
import pandas as pd
import pytest
import torch

from energy_lib import attack_energies, data, lens, models
from energy_lib.config import AttackEnergyConfig

CFG = AttackEnergyConfig.from_profile("smoke", n_images=8, autoattack=False, device="cpu")
SOURCE = {"kind": "test", "model": "small_cnn", "seed": 0}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    torch.manual_seed(0)
    model = models.build_model("small_cnn").eval()
    x, y = data.load_dataset("cifar10", "test", n=CFG.n_images).tensors()
    return model, x, y


def test_frame_holds_the_energies_of_the_model(tiny):
    model, x, y = tiny
    frame = attack_energies.compute_attack_energies(model, CFG, SOURCE, progress=False)
    assert set(frame.attack) == set(attack_energies.CHAPTER_WHITE_BOX)
    assert (frame.linf <= CFG.eps + 1e-6).all()
    pgd = frame[frame.attack == "pgd"]
    with torch.no_grad():
        logits = model(x)
    np.testing.assert_allclose(pgd.E_nat, -torch.logsumexp(logits, 1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(pgd.Exy_nat, -logits[torch.arange(len(y)), y].numpy(), rtol=1e-5)


def test_chapter_settings_reach_the_lens():
    lc = attack_energies.lens_config(AttackEnergyConfig.from_profile("smoke"))
    assert lc.pgd_steps == lc.steps == 3 and lc.delta_attack == "pgd" and not lc.autoattack
    assert set(attack_energies.CHAPTER_AUTOATTACK) <= set(lc.attacks)   # incl. APGD-DLR and untargeted FAB
    assert {"apgd-dlr", "fab"} <= set(lc.attacks)
    assert not set(attack_energies.CHAPTER_AUTOATTACK) & set(attack_energies.lens_config(CFG).attacks)


def test_cached_attacks_are_reused_not_recomputed(tiny, monkeypatch):
    model, x, y = tiny
    first = attack_energies.compute_attack_energies(model, CFG, SOURCE, progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached attack was recomputed")

    monkeypatch.setattr(lens, "_run_attack", must_not_run)
    again = attack_energies.compute_attack_energies(model, CFG, SOURCE, progress=False)
    pd.testing.assert_frame_equal(first, again, check_dtype=False)
    # Another config (more steps) is a different record.
    with pytest.raises(AssertionError, match="recomputed"):
        attack_energies.compute_attack_energies(model, CFG.replace(steps=CFG.steps + 1), SOURCE, progress=False)


def test_summary_table_signs_and_agreement():
    frame = pd.DataFrame({
        "attack": ["pgd"] * 2 + ["apgd-t"] * 2 + ["pgd_targeted"] * 2 + ["cw"] * 2, "eps": 8 / 255,
        "sample": [0, 1] * 4, "E_nat": [-10.0, -12.0] * 4,
        "E_adv": [-20.0, -22.0, -5.0, -7.0, -30.0, -30.0, -15.0, -15.0],
        "Exy_nat": [-9.0, -11.0] * 4, "Exy_adv": [5.0, 5.0, 1.0, 1.0, 2.0, 2.0, 0.0, 0.0],
        "correct_nat": True, "correct_adv": [False, True, False, False, True, True, False, False], "linf": 0.03,
    })
    table = attack_energies.summary_table(frame).set_index("attack")
    assert table.loc["pgd", "ΔE(x)"] == pytest.approx(10.0)      # natural minus adversarial
    assert table.loc["apgd-t", "ΔE(x)"] == pytest.approx(-5.0)
    assert table.loc["pgd", "ΔE(x,y)"] == pytest.approx(-15.0)
    assert table.loc["pgd", "accuracy (adv)"] == pytest.approx(0.5)
    assert table.loc["pgd", "agrees"] and table.loc["apgd-t", "agrees"]
    assert table.loc["cw", "agrees"] is False and table.loc["cw", "label"] == "CW-margin PGD (ℓ∞)"
    # the companion's own attack is not judged against the paper
    assert table.loc["pgd_targeted", "agrees"] is None
    assert table.loc["pgd_targeted", "in paper"] == "no (companion's own)"
