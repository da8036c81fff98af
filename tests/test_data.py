"""Datasets by name, offline real files, deterministic subsets, and the device-side batch iterator."""
import numpy as np
import pytest
import torch

from energy_lib import data
from energy_lib.config import ConfigError


def test_offline_cifar10_matches_the_shipped_files():
    train = data.load_dataset("cifar10", "train", n=1000)
    test = data.load_dataset("cifar10", "test")
    assert train.x.shape == (1000, 3, 32, 32) and train.x.dtype == torch.uint8
    assert len(test) == 1017 and test.source.startswith("offline:")
    raw = np.load(data.offline_dir() / "cifar10" / "test_first1017.npz")
    np.testing.assert_array_equal(test.x[5].permute(1, 2, 0).numpy(), raw["x"][5])
    np.testing.assert_array_equal(test.y.numpy(), raw["y"])


def test_unknown_dataset_and_bad_sizes():
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'.*cifar10"):
        data.load_dataset("imagenet")
    with pytest.raises(ConfigError, match="n=20000 images requested but cifar10 test has 10000"):
        data.load_dataset("cifar10", "test", n=20000)


def test_missing_data_names_paths_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("ENERGY_TORCHVISION_ROOT", str(tmp_path / "tv"))
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_dataset("cifar10", "test", n=5000, download=False)
    msg = str(err.value)
    assert "cifar10/test_first1017.npz" in msg and str(tmp_path / "tv") in msg and "ENERGY_TORCHVISION_ROOT" in msg


def test_tiny_imagenet_absent_gives_layout_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_TORCHVISION_ROOT", str(tmp_path))
    with pytest.raises(data.DataNotFoundError, match="tiny-imagenet-200"):
        data.load_dataset("tiny-imagenet", "test")


def test_fixed_subset_is_deterministic_and_balanced():
    train = data.load_dataset("cifar10", "train", n=5000)
    a, b = data.fixed_subset(train, 200, seed=3), data.fixed_subset(train, 200, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.bincount(a.y, minlength=10).tolist() == [20] * 10
    assert not torch.equal(data.fixed_subset(train, 200, seed=4).y, a.y) or not torch.equal(
        data.fixed_subset(train, 200, seed=4).x, a.x)


def _crops_and_flips(img, padding=4):
    padded = torch.nn.functional.pad(img, (padding,) * 4)
    h, w = img.shape[-2:]
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            yield crop
            yield crop.flip(-1)


def test_random_crop_flip_returns_a_padded_crop_or_its_mirror():
    x = torch.rand(6, 3, 32, 32)
    out = data.random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(6):
        assert any(torch.equal(out[i], c) for c in _crops_and_flips(x[i]))


def test_batch_iterator_epochs_are_reproducible_and_cover_the_data():
    d = data.load_dataset("cifar10", "train", n=300)
    it = data.BatchIterator(d, 64, seed=1)
    first = [(xb.clone(), yb.clone()) for xb, yb in it.epoch(2)]
    again = list(it.epoch(2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert len(first) == len(it) == 5
    assert sorted(torch.cat([yb for _, yb in first]).tolist()) == sorted(d.y.tolist())
    xb = first[0][0]
    assert xb.dtype == torch.float32 and xb.min() >= 0 and xb.max() <= 1
    assert not torch.equal(torch.cat([y for _, y in it.epoch(3)]), torch.cat([y for _, y in first]))
    plain = data.BatchIterator(d, 300, shuffle=False, augment=False)
    torch.testing.assert_close(next(iter(plain))[0], d.float_images())
