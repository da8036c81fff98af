"""Datasets by name, offline real files, deterministic subsets, and the device-side batch iterator."""
import numpy as np
import pytest
import torch

from energy_lib import data
from energy_lib.config import ConfigError


def test_offline_cifar10_matches_the_shipped_files():
    train = data.load_dataset("cifar10", "train", n=1000)
    test = data.load_dataset("cifar10", "test", n=1017)
    assert train.x.shape == (1000, 3, 32, 32) and train.x.dtype == torch.uint8
    assert len(test) == 1017 and test.source.startswith("offline:")
    raw = np.load(data.offline_dir() / "cifar10" / "test_first1017.npz")
    np.testing.assert_array_equal(test.x[5].permute(1, 2, 0).numpy(), raw["x"][5])
    np.testing.assert_array_equal(test.y.numpy(), raw["y"])


def test_full_offline_split_is_used_for_n_none():
    train = data.load_dataset("cifar10", "train")
    assert len(train) == 50_000 and train.source.startswith("offline:")


@pytest.mark.parametrize("name, split, available, size", [("cifar10", "test", 1017, 10000),
                                                          ("cifar100", "train", 486, 50000),
                                                          ("cifar100", "test", 916, 10000)])
def test_partial_offline_copy_is_never_returned_as_the_whole_split(name, split, available, size, tmp_path,
                                                                   monkeypatch):
    """n=None asks for the whole split: a partial offline file must not stand in for it."""
    monkeypatch.setenv("ENERGY_TORCHVISION_ROOT", str(tmp_path / "tv"))
    tried = []

    def no_torchvision(name_, split_, download):  # deterministic: no download even where a network exists
        tried.append((name_, split_))
        raise RuntimeError("no network in this test")

    monkeypatch.setattr(data, "_load_torchvision", no_torchvision)
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_dataset(name, split)
    assert tried == [(name, split)]  # fell through to torchvision instead of the partial file
    msg = str(err.value)
    assert "partial" in msg and f"{available} of the {size} {split} images" in msg, msg
    assert f"k <= {available}" in msg and f"load_dataset({name!r}, {split!r}, n=k)" in msg, msg
    head = data.load_dataset(name, split, n=available)  # what the offline copy does hold still loads
    assert len(head) == available and head.source.startswith("offline:")
    assert tried == [(name, split)]


def test_partial_offline_copy_with_real_torchvision_fails_fast(tmp_path, monkeypatch):
    """The unpatched path: an empty torchvision folder and no download gives the partial-copy hint."""
    monkeypatch.setenv("ENERGY_TORCHVISION_ROOT", str(tmp_path / "tv"))
    with pytest.raises(data.DataNotFoundError, match="holds 1017 of the 10000 test images.*n=k"):
        data.load_dataset("cifar10", "test", download=False)


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


def _tiny_imagenet_layout(root, wnids=("n03", "n01", "n02"), val=True):
    """A miniature tiny-imagenet-200/ folder: 2 train images per class (the first of n01 grayscale)
    and 4 val images; returns {path: (pixel value, label)} to check what was loaded."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")  # not sorted, as in the real file
    label = {w: i for i, w in enumerate(sorted(wnids))}
    expected_train, value = [], 10
    for w in wnids:
        folder = base / "train" / w / "images"
        folder.mkdir(parents=True)
        for k in range(2):
            gray = w == "n01" and k == 0
            Image.new("L" if gray else "RGB", (64, 64), value if gray else (value, value + 1, value + 2)).save(
                folder / f"{w}_{k}.JPEG", quality=100)
            expected_train.append((w, k, value, gray, label[w]))
            value += 20
    expected_val = []
    if val:
        (base / "val" / "images").mkdir(parents=True)
        rows = []
        for i, w in enumerate(["n02", "n03", "n01", "n02"]):
            Image.new("RGB", (64, 64), (200 - 10 * i,) * 3).save(base / "val" / "images" / f"val_{i}.JPEG", quality=100)
            rows.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
            expected_val.append((200 - 10 * i, label[w]))
        (base / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    return expected_train, expected_val


def test_tiny_imagenet_folder_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_TORCHVISION_ROOT", str(tmp_path))
    expected_train, expected_val = _tiny_imagenet_layout(tmp_path)
    train = data.load_dataset("tiny-imagenet", "train")
    assert train.x.shape == (6, 3, 64, 64) and train.x.dtype == torch.uint8 and train.y.dtype == torch.int64
    # class by class in sorted-wnid order (n01, n02, n03), labels = index of the sorted wnid
    order = sorted(expected_train, key=lambda e: (e[0], e[1]))
    assert train.y.tolist() == [e[4] for e in order] == [0, 0, 1, 1, 2, 2]
    for img, (_, _, value, gray, _) in zip(train.x, order):
        mean = img.float().mean(dim=(1, 2))  # per channel; JPEG is lossy, so within a few levels
        want = torch.tensor([value] * 3 if gray else [value, value + 1, value + 2], dtype=torch.float32)
        assert (mean - want).abs().max() < 3, (mean, want)
    assert torch.equal(train.x[0, 0], train.x[0, 1]) and torch.equal(train.x[0, 1], train.x[0, 2])  # gray -> RGB
    test = data.load_dataset("tiny-imagenet", "test")
    assert test.x.shape == (4, 3, 64, 64) and test.x.dtype == torch.uint8
    assert test.y.tolist() == [c for _, c in expected_val] == [1, 2, 0, 1]  # annotation-file order
    means = test.x.float().mean(dim=(1, 2, 3))
    assert all(abs(m - v) < 3 for m, (v, _) in zip(means.tolist(), expected_val))
    assert test.source == f"folder:{tmp_path / 'tiny-imagenet-200'}"
    assert torch.equal(data.load_dataset("tiny-imagenet", "train", n=3).y, train.y[:3])


def test_tiny_imagenet_partial_layout_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_TORCHVISION_ROOT", str(tmp_path))
    _tiny_imagenet_layout(tmp_path, val=False)
    with pytest.raises(data.DataNotFoundError, match=r"incomplete: file .*val_annotations\.txt is missing"):
        data.load_dataset("tiny-imagenet", "test")
    (tmp_path / "tiny-imagenet-200" / "val").mkdir()
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01\n")
    with pytest.raises(data.DataNotFoundError, match=r"incomplete: folder .*val[/\\]images is missing"):
        data.load_dataset("tiny-imagenet", "test")
    import shutil
    shutil.rmtree(tmp_path / "tiny-imagenet-200" / "train" / "n02")
    with pytest.raises(data.DataNotFoundError, match=r"incomplete: folder .*n02[/\\]images is missing"):
        data.load_dataset("tiny-imagenet", "train")


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
