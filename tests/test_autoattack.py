"""The AutoAttack wrapper: itemised accuracies, monotone, and an interrupted evaluation resumes."""
import pytest
import torch

from energy_lib import autoattack, data, models
from energy_lib.config import ConfigError

QUICK = autoattack.AutoAttackSettings(n_iter=2, n_target_classes=2, n_queries=10)


@pytest.fixture(scope="module")
def setup():
    model = models.pretrained_standard_resnet18()
    x, y = data.load_dataset("cifar10", "test", n=12).tensors()
    return model, x, y


def test_itemised_result_is_consistent(setup):
    model, x, y = setup
    res = autoattack.run_autoattack(model, x, y, settings=QUICK, verbose=False)
    accs = [res.clean_accuracy] + [res.accuracy_after[a] for a in QUICK.attacks]
    assert accs == sorted(accs, reverse=True)           # each attack only removes robust points
    assert res.robust_accuracy == accs[-1] < res.clean_accuracy
    assert set(res.seconds) == set(QUICK.attacks) and all(t >= 0 for t in res.seconds.values())
    before = dict(zip(QUICK.attacks, accs[:-1]))  # robust accuracy each attack started from
    assert all(res.seconds[a] == 0.0 for a in QUICK.attacks if before[a] == 0)  # nothing left to attack: 0 s
    assert any(before[a] == 0 for a in QUICK.attacks)  # (the 12-image quick run does reach that case)
    assert (res.x_adv - x).abs().max() <= QUICK.eps + 1e-6 and 0 <= res.x_adv.min() and res.x_adv.max() <= 1
    assert res.record()["settings"]["standard"] is False


def test_interrupted_evaluation_resumes_to_the_same_result(setup, tmp_path, interrupt_autoattack):
    model, x, y = setup
    full = autoattack.run_autoattack(model, x, y, settings=QUICK, chunk_size=4, verbose=False)
    state = tmp_path / "aa_state.pt"
    disarm = interrupt_autoattack(3)
    with pytest.raises(KeyboardInterrupt):
        autoattack.run_autoattack(model, x, y, settings=QUICK, chunk_size=4, state_path=state, verbose=False)
    assert state.exists()
    disarm()
    resumed = autoattack.run_autoattack(model, x, y, settings=QUICK, chunk_size=4, state_path=state,
                                        verbose=False)
    assert resumed.accuracy_after == full.accuracy_after
    assert torch.equal(resumed.x_adv, full.x_adv)


def test_state_file_for_other_inputs_is_refused(setup, tmp_path):
    model, x, y = setup
    state = tmp_path / "aa_state.pt"
    autoattack.run_autoattack(model, x[:6], y[:6], settings=QUICK, state_path=state, verbose=False)
    with pytest.raises(ConfigError, match="made for another model, other images or other settings"):
        autoattack.run_autoattack(model, x, y, settings=QUICK, state_path=state, verbose=False)
    state.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=f"{state} is corrupt or truncated.*delete {state}"):
        autoattack.run_autoattack(model, x, y, settings=QUICK, state_path=state, verbose=False)


def test_bad_inputs_fail_clearly_before_any_work(setup, tmp_path):
    """The same checks and messages as the PGD attacks (attacks._check_inputs); no state file is made."""
    model, x, y = setup
    state = tmp_path / "aa_state.pt"
    with pytest.raises(ValueError, match="labels must have shape"):
        autoattack.run_autoattack(model, x, y[:3], settings=QUICK, state_path=state, verbose=False)
    with pytest.raises(ValueError, match="in \\[0,1\\]"):
        autoattack.run_autoattack(model, x * 255, y, settings=QUICK, state_path=state, verbose=False)
    with pytest.raises(ValueError, match="images must have shape \\(N, C, H, W\\)"):
        autoattack.run_autoattack(model, x[0], y[:1], settings=QUICK, state_path=state, verbose=False)
    with pytest.raises(ConfigError, match="outside \\[0, 1\\]"):
        autoattack.run_autoattack(model, x, y, settings=autoattack.AutoAttackSettings(eps=8, n_iter=2),
                                  state_path=state, verbose=False)
    assert not state.exists()


@pytest.mark.parametrize("attack", ["apgd-dlr", "fab"])
def test_untargeted_dlr_and_fab_components_run_alone(setup, attack):
    """The paper's figure also uses untargeted APGD-DLR and FAB (PAPER.md 2.1): each runs as a single
    component, stays in the ε-ball and only removes robust points."""
    model, x, y = setup
    settings = autoattack.AutoAttackSettings(n_iter=2, n_target_classes=2, n_queries=10, attacks=(attack,))
    res = autoattack.run_autoattack(model, x[:6], y[:6], settings=settings, verbose=False)
    assert list(res.accuracy_after) == [attack] and res.robust_accuracy <= res.clean_accuracy
    assert (res.x_adv - x[:6]).abs().max() <= settings.eps + 1e-6
    assert 0 <= res.x_adv.min() and res.x_adv.max() <= 1


def test_unknown_component_names_the_choices(setup):
    model, x, y = setup
    with pytest.raises(ConfigError, match="apgd-dlr, fab"):
        autoattack.run_autoattack(model, x[:2], y[:2], settings=autoattack.AutoAttackSettings(attacks=("deepfool",)),
                                  verbose=False)
