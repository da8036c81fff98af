"""The training hot loop (issue 13): no host sync per step. A training epoch reads no `.item()` and
never runs the pixel-range check (`attacks._check_inputs`, which reads x.min()/x.max()); random
starts are drawn on the generator's device with the same numbers as before on a CPU; the public
attack entry points still check the data, once per batch of data."""
import pytest
import torch

from energy_lib import attacks, data, losses, train
from energy_lib.config import TrainConfig
from energy_lib.models import SmallCNN


def _raise(*args, **kwargs):
    raise AssertionError("_check_inputs (a host sync) was called inside a training step")


@pytest.mark.parametrize("method", sorted(losses.LOSSES))
def test_a_training_epoch_makes_no_item_call_and_no_value_check(method, monkeypatch):
    cfg = TrainConfig.from_profile("smoke", overrides=dict(method=method, device="cpu", batch_size=8,
                                                           attack_steps=2))
    images = data.fixed_subset(data.load_dataset("cifar10", "train", n=200), 32)
    batches = data.BatchIterator(images, cfg.batch_size, device="cpu", seed=0)
    torch.manual_seed(0)
    model = SmallCNN()
    opt, sched = train.make_optimizer(model, cfg.replace(schedule="constant"), len(batches))
    calls = []
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append(1) or real_item(self))
    monkeypatch.setattr(attacks, "_check_inputs", _raise)
    stats = train.train_one_epoch(model, model, opt, sched, batches, cfg, 0, False, "run-dir")
    monkeypatch.undo()
    assert calls == []
    # the statistics read once at the end are those of the steps: the mean loss is finite and the
    # batch accuracies are fractions of the images seen
    assert torch.isfinite(torch.tensor(stats["loss"])) and 0 <= stats["batch_acc_adv"] <= 1
    assert (stats["batch_acc_nat"] is None) == (method in ("sat", "fgsm", "fgsm_rs", "n_fgsm"))


def test_epoch_statistics_are_the_image_weighted_means_of_the_steps(monkeypatch):
    """A loss with known per-step values: 1, 2, 3 on batches of 8, 8, 4 images -> (8+16+12)/20."""
    values = iter([1.0, 2.0, 3.0])

    def known(model, x, y, cfg, ctx):
        logits = model(x)
        loss = (logits * 0).sum() + next(values)
        return losses.LossOutput(loss, None, torch.nn.functional.one_hot(y, 10).float(), x,
                                 {"extra": torch.tensor(float(x.shape[0]))})

    monkeypatch.setitem(losses.LOSSES, "sat", known)
    cfg = TrainConfig.from_profile("smoke", overrides=dict(device="cpu", batch_size=8))
    images = data.fixed_subset(data.load_dataset("cifar10", "train", n=200), 20)
    batches = data.BatchIterator(images, 8, device="cpu", seed=0)
    model = SmallCNN()
    opt, sched = train.make_optimizer(model, cfg.replace(schedule="constant"), len(batches))
    stats = train.train_one_epoch(model, model, opt, sched, batches, cfg, 0, False, "run-dir")
    assert stats["loss"] == pytest.approx((8 + 16 + 12) / 20, abs=1e-12)
    assert stats["batch_acc_adv"] == 1.0 and stats["batch_acc_nat"] is None
    assert stats["batch_extra"] == pytest.approx((8 * 8 + 8 * 8 + 4 * 4) / 20)


def test_epoch_generator_on_a_device_draws_the_seeds_of_before():
    cfg = TrainConfig(seed=3)
    g = train.epoch_generator(cfg, 5, 2, device="cpu")
    assert g.device == torch.device("cpu")
    expected = torch.Generator().manual_seed((3 * 1_000_003 + 5) * 8 + 2)   # streams 0..7 per epoch
    assert torch.equal(torch.rand(10, generator=g), torch.rand(10, generator=expected))


def test_random_starts_are_the_numbers_of_before_on_a_cpu():
    x = torch.rand(4, 3, 8, 8)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(attacks.uniform_start(x, 0.1, g1), (torch.rand(x.shape, generator=g2) * 2 - 1) * 0.1)
    assert torch.equal(attacks.normal_start(x, g1), 0.001 * torch.randn(x.shape, generator=g2))
    y = torch.arange(4)
    assert torch.equal(attacks.random_targets(y, 10, g1), (y + torch.randint(1, 10, y.shape, generator=g2)) % 10)


def test_public_entry_points_check_the_data_once_per_batch(monkeypatch):
    model = SmallCNN().eval()
    x, y = torch.rand(10, 3, 32, 32), torch.arange(10) % 10
    with pytest.raises(ValueError, match=r"images must lie in \[0,1\]"):
        attacks.pgd(model, x * 2, y, eps=8 / 255, step_size=2 / 255, steps=1)
    with pytest.raises(ValueError, match=r"images must lie in \[0,1\]"):
        attacks.attack_in_batches("pgd", model, x * 2, y, eps=8 / 255, steps=1)
    # check=False skips only the value check: shapes and eps are still validated
    with pytest.raises(ValueError, match="labels must have shape"):
        attacks.pgd(model, x, y[:3], eps=8 / 255, step_size=2 / 255, steps=1, check=False)
    calls = []
    real = attacks._check_inputs
    monkeypatch.setattr(attacks, "_check_inputs", lambda *a: calls.append(1) or real(*a))
    attacks.attack_in_batches("pgd", model, x, y, eps=8 / 255, steps=1, batch_size=3)   # 4 batches
    assert calls == [1]
