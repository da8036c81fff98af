"""Datasets by name, offline real-data files, fixed subsets and a device-side batch iterator.

Images are kept as uint8 tensors (N, C, H, W) and turned into float [0,1] only per batch, so a
whole CIFAR training set fits on a GPU (150 MB) and crops/flips run there (PAPER.md 3.1: no
mean/std normalisation anywhere).

Where data comes from, in order:
1. the offline folder `$ENERGY_DATA` (the project's shipped real CIFAR files, see
   `../shared/data/README.md`), when it holds enough images for the request (n=None, the whole
   split, only when the file holds the complete split: a partial copy is never returned as if whole).
   A file is checked before use against the folder's published digests (`SHA256SUMS`, as
   `sha256sum -c` would; once per process): a changed or swapped file (e.g. train.npz in the test
   file's place), or one the list does not name, is a `CorruptDataError`. A folder without
   `SHA256SUMS` (a test's fake folder) is read unchecked; `tools/gpu_check.py --make-data` writes one.
   A file holding more images than its split has is refused too;
2. torchvision's loaders under `$ENERGY_TORCHVISION_ROOT` (default `~/.cache/energy_lib/datasets`),
   downloading when the network allows;
3. otherwise a `DataNotFoundError` naming the paths that were tried and how to fill them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .config import ConfigError
from .names import DATASETS, DatasetInfo  # noqa: F401  (re-exported: data.DATASETS, data.DatasetInfo)


class DataNotFoundError(FileNotFoundError):
    """Requested data is not on disk and could not be downloaded; the message says where to put it."""


class CorruptDataError(DataNotFoundError):
    """A data file exists but is not what it should be (truncated, HTML, wrong arrays); the message
    names the file, what is wrong and how to get a good copy."""


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Offline files (relative to $ENERGY_DATA) and the array keys for each split.
OFFLINE_FILES = {
    ("cifar10", "train"): ("cifar10/train.npz", "x", "y"),
    ("cifar10", "test"): ("cifar10/test_first1017.npz", "x", "y"),
    ("cifar100", "train"): ("cifar100/partial.npz", "x_train", "y_train"),
    ("cifar100", "test"): ("cifar100/partial.npz", "x_test", "y_test"),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def offline_dir() -> Path | None:
    value = os.environ.get("ENERGY_DATA")
    return Path(value).expanduser() if value else None


def torchvision_root() -> Path:
    return Path(os.environ.get("ENERGY_TORCHVISION_ROOT", "~/.cache/energy_lib/datasets")).expanduser()


@dataclass
class ImageData:
    """Images as uint8 (N, C, H, W) and int64 labels, plus where they came from."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    source: str

    def __post_init__(self):
        if self.x.dtype != torch.uint8 or self.x.ndim != 4 or self.x.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W); got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (self.x.shape[0],):
            raise ValueError(f"labels must have shape ({self.x.shape[0]},); got {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def num_classes(self) -> int:
        return dataset_info(self.name).num_classes

    def subset(self, indices) -> "ImageData":
        indices = torch.as_tensor(indices, dtype=torch.long)
        return ImageData(self.x[indices], self.y[indices], self.name, self.split, self.source)

    def head(self, n: int) -> "ImageData":
        return self.subset(torch.arange(min(n, len(self))))

    def float_images(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """All images as float32 in [0,1] on `device`."""
        return self.x.to(device).float().div_(255)

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        return self.float_images(device), self.y.to(device)


def _from_hwc(x: np.ndarray, y: np.ndarray, name: str, split: str, source: str) -> ImageData:
    x_t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2)))
    return ImageData(x_t, torch.from_numpy(np.asarray(y, dtype=np.int64)), name, split, source)


SUMS_FILE = "SHA256SUMS"   # the offline folder's published digests (`sha256sum -c SHA256SUMS`)
_verified: set[tuple] = set()   # (path, size, mtime, inode) of files checked in this process


def _published_digests(root: Path) -> dict[str, str] | None:
    """{relative path: sha256} of `root/SHA256SUMS` (sha256sum's format); None without that file."""
    sums = root / SUMS_FILE
    if not sums.is_file():
        return None
    table = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest:
            table[name.strip().lstrip("*")] = digest.lower()
    return table


def _check_published_digest(path: Path) -> None:
    """Refuse an offline file whose sha256 differs from the folder's SHA256SUMS or that it does not list."""
    root = offline_dir()
    stat = path.stat()
    seen = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if seen in _verified:
        return
    table = _published_digests(root)
    if table is None:
        return   # no published digests in this folder: nothing to check against (see the module docstring)
    name = path.relative_to(root).as_posix()
    if name not in table:
        raise _corrupt(path, f"{root / SUMS_FILE} does not list it, so it cannot be checked")
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != table[name]:
        raise _corrupt(path, f"its sha256 differs from the one in {root / SUMS_FILE} (a changed or swapped file)")
    _verified.add(seen)


def _offline_path(name: str, split: str) -> Path | None:
    """The offline file of a split (checked against the published digests), or None when there is none."""
    root = offline_dir()
    if root is None or (name, split) not in OFFLINE_FILES:
        return None
    path = root / OFFLINE_FILES[(name, split)][0]
    if not path.is_file():
        return None
    _check_published_digest(path)
    return path


def _corrupt(path: Path, what: str) -> CorruptDataError:
    return CorruptDataError(
        f"{path} is not a valid offline data file: {what}. Get a good copy: check it with `sha256sum -c SHA256SUMS` "
        f"in {offline_dir()} and copy the failing file again from the project's shared data folder (see its "
        "README.md), or unset ENERGY_DATA to load the dataset through torchvision instead")


def _read_offline(path: Path, keys: tuple[str, ...], start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    """Arrays `keys` of an offline .npz file ([start:stop] of each), with an error naming the file
    for anything that is not a readable archive of uint8 images / integer labels."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(b"PK"):   # every .npz is a zip archive
        looks = " (an HTML page: a failed download?)" if head.lstrip().lower().startswith((b"<!doctype", b"<html")) else ""
        raise _corrupt(path, f"it is not an .npz (zip) archive{looks}; it starts with {head[:24]!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise _corrupt(path, "it is a single array, not an .npz archive")
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise _corrupt(path, f"it has no array {missing[0]!r} (it holds {', '.join(archive.files) or 'none'})")
            arrays = [archive[k][start:stop] for k in keys]
    except CorruptDataError:
        raise
    except Exception as err:   # BadZipFile (HTML page, truncated), EOFError, pickled objects, zlib errors
        raise _corrupt(path, f"it cannot be read as an .npz archive ({type(err).__name__}: {err})") from err
    for key, array in zip(keys, arrays):
        is_images = array.ndim == 4
        if is_images and (array.dtype != np.uint8 or array.shape[-1] != 3):
            raise _corrupt(path, f"array {key!r} is {array.dtype} {array.shape}, not uint8 images (N, H, W, 3)")
        if not is_images and (array.ndim != 1 or not np.issubdtype(array.dtype, np.integer)):
            raise _corrupt(path, f"array {key!r} is {array.dtype} {array.shape}, not integer labels (N,)")
    if len({a.shape[0] for a in arrays}) > 1:
        raise _corrupt(path, f"arrays {', '.join(keys)} have different lengths {[a.shape[0] for a in arrays]}")
    return arrays


def _offline_count(name: str, split: str) -> tuple[Path, int] | None:
    """(path, number of images) of the offline file for a split, or None when there is none."""
    path = _offline_path(name, split)
    if path is None:
        return None
    count = int(_read_offline(path, (OFFLINE_FILES[(name, split)][2],))[0].shape[0])
    if count > dataset_info(name).size(split):   # e.g. the training file copied in the test file's place
        raise _corrupt(path, f"it holds {count:,} images, more than the {dataset_info(name).size(split):,} of the "
                             f"{name} {split} split (another split's file?)")
    return path, count


def _load_offline(name: str, split: str, n: int | None) -> ImageData | None:
    """The first n images from the offline file, or None when it does not hold them.

    n=None means the whole split: an offline file holding only part of it is not used, so a
    partial copy is never returned as if it were the complete dataset."""
    path = _offline_path(name, split)
    if path is None:
        return None
    _, xkey, ykey = OFFLINE_FILES[(name, split)]
    available = _offline_count(name, split)[1]
    if (n is None and available < dataset_info(name).size(split)) or (n is not None and n > available):
        return None
    x, y = _read_offline(path, (xkey, ykey), 0, available if n is None else n)
    if y.size and (y.min() < 0 or y.max() >= dataset_info(name).num_classes):
        raise _corrupt(path, f"labels {ykey!r} lie outside 0..{dataset_info(name).num_classes - 1}")
    return _from_hwc(x, y, name, split, f"offline:{path}")


def _load_torchvision(name: str, split: str, download: bool) -> ImageData:
    import torchvision.datasets as tvd

    root = torchvision_root()
    train = split == "train"
    if name == "cifar10":
        ds = tvd.CIFAR10(str(root), train=train, download=download)
        return _from_hwc(ds.data, ds.targets, name, split, f"torchvision:{root}")
    if name == "cifar100":
        ds = tvd.CIFAR100(str(root), train=train, download=download)
        return _from_hwc(ds.data, ds.targets, name, split, f"torchvision:{root}")
    if name == "svhn":  # the paper uses the `train` split only, not `extra` (PAPER.md 3.1)
        ds = tvd.SVHN(str(root / "svhn"), split="train" if train else "test", download=download)
        return ImageData(torch.from_numpy(ds.data), torch.from_numpy(ds.labels.astype(np.int64)),
                         name, split, f"torchvision:{root / 'svhn'}")
    if name == "tiny-imagenet":
        return _load_tiny_imagenet(root, split)
    raise ConfigError(f"unknown dataset {name!r}")


def _load_tiny_imagenet(root: Path, split: str) -> ImageData:
    """Tiny-ImageNet from its standard folder layout `tiny-imagenet-200/` (no download exists).

    Labels are indices into the sorted wnids; train images come class by class (sorted wnids),
    each class's files sorted by name; val images in the order of val_annotations.txt."""
    base = root / "tiny-imagenet-200"
    layout = "wnids.txt, train/<wnid>/images/*.JPEG, val/images + val/val_annotations.txt"
    fix = (f"Download tiny-imagenet-200.zip from the CS231n site and unzip it under {root} "
           "(or set ENERGY_TORCHVISION_ROOT).")
    if not (base / "wnids.txt").is_file():
        raise DataNotFoundError(
            f"Tiny-ImageNet not found: expected the standard folder layout at {base} ({layout}). {fix}")

    def missing(path: Path, what: str) -> DataNotFoundError:
        return DataNotFoundError(f"Tiny-ImageNet at {base} is incomplete: {what} {path} is missing "
                                 f"(the standard layout has {layout}). {fix}")

    from PIL import Image

    wnids = (base / "wnids.txt").read_text().split()
    if not wnids:
        raise DataNotFoundError(f"Tiny-ImageNet at {base} is incomplete: {base / 'wnids.txt'} is empty. {fix}")
    index = {w: i for i, w in enumerate(sorted(wnids))}
    if split == "train":
        items = []
        for w in sorted(wnids):
            folder = base / "train" / w / "images"
            if not folder.is_dir():
                raise missing(folder, "folder")
            items += [(p, index[w]) for p in sorted(folder.glob("*.JPEG"))]
    else:
        annotations, images = base / "val" / "val_annotations.txt", base / "val" / "images"
        if not annotations.is_file():
            raise missing(annotations, "file")
        if not images.is_dir():
            raise missing(images, "folder")
        rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
        malformed = [i + 1 for i, r in enumerate(rows) if len(r) < 2]
        if malformed:
            raise DataNotFoundError(f"{annotations} is malformed (no tab-separated class on line {malformed[0]}). {fix}")
        unknown = sorted({r[1] for r in rows} - index.keys())
        if unknown:
            raise DataNotFoundError(f"{annotations} names classes not in wnids.txt: {', '.join(unknown[:5])}. {fix}")
        items = [(images / r[0], index[r[1]]) for r in rows]
        for p, _ in items:
            if not p.is_file():
                raise missing(p, "image")
    if not items:
        raise DataNotFoundError(f"Tiny-ImageNet at {base} has no {split} images. {fix}")
    x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in items])
    return _from_hwc(x, np.array([c for _, c in items]), "tiny-imagenet", split, f"folder:{base}")


def load_dataset(name: str, split: str = "train", n: int | None = None, *, download: bool = True) -> ImageData:
    """The first `n` images (all when None) of a dataset split, in the dataset's standard order."""
    info = dataset_info(name)
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}; use 'train' or 'test'")
    size = info.size(split)
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))):
        raise ConfigError(f"n={n!r} must be a whole number of images (or None for the whole split)")
    if n is not None and n <= 0:
        raise ConfigError(f"n={n} must be a positive number of images (or None for the whole split)")
    if n is not None and n > size:
        raise ConfigError(f"n={n} images requested but {name} {split} has {size}")
    data = _load_offline(name, split, n)
    if data is not None:
        return data
    try:
        data = _load_torchvision(name, split, download)
    except DataNotFoundError:   # includes CorruptDataError
        raise
    except Exception as err:  # no network, missing files, corrupt archive
        off = offline_dir()
        hint = OFFLINE_FILES.get((name, split))
        found = _offline_count(name, split)
        if found is not None:
            path, available = found
            offline_msg = (
                f"the offline copy {path} is partial: it holds {available} of the {size} {split} images"
                + (f" (n={n} requested)" if n is not None else "")
                + f" (in Python, load_dataset({name!r}, {split!r}, n=k) with k <= {available} reads the first k "
                "images from it; training always needs the complete training split)"
            )
        elif off and hint:
            offline_msg = f"the offline folder ENERGY_DATA={off} has no {hint[0]}"
        elif hint:
            offline_msg = "ENERGY_DATA is not set (point it at the project's shipped data folder)"
        else:
            offline_msg = f"no offline copy of {name} exists"
        raise DataNotFoundError(
            f"{name} ({split}) is not available: {offline_msg}, and torchvision could not load or download "
            f"it into {torchvision_root()} ({type(err).__name__}: {err}). Connect to the network once, or "
            f"place the torchvision files there (ENERGY_TORCHVISION_ROOT changes the folder)."
        ) from err
    return data if n is None else data.head(n)


def _subset_indices(data: ImageData, n: int, seed: int = 0, balanced: bool = True) -> torch.Tensor:
    if not 0 < n <= len(data):
        raise ConfigError(f"subset of {n} images requested from {len(data)}")
    g = torch.Generator().manual_seed(seed)
    if not balanced:
        idx = torch.randperm(len(data), generator=g)[:n]
    else:
        classes = torch.unique(data.y)
        per_class = [n // len(classes) + (1 if i < n % len(classes) else 0) for i in range(len(classes))]
        picks = []
        for c, k in zip(classes.tolist(), per_class):
            members = torch.nonzero(data.y == c).flatten()
            if k > len(members):
                raise ConfigError(f"class {c} has {len(members)} images, {k} requested; use balanced=False")
            picks.append(members[torch.randperm(len(members), generator=g)[:k]])
        idx = torch.cat(picks)
    return torch.sort(idx).values


def fixed_subset(data: ImageData, n: int, seed: int = 0, balanced: bool = True) -> ImageData:
    """A deterministic subset of `n` images: the same for the same (data, n, seed) on any machine.

    `balanced` takes n / num_classes images of each class (the remainder from the lowest classes).
    The order of the returned images follows the dataset's order.
    """
    return data.subset(_subset_indices(data, n, seed, balanced))


def holdout_split(data: ImageData, n: int, seed: int = 0) -> tuple[ImageData, ImageData]:
    """(rest, held_out): a fixed class-balanced subset of `n` images and every other image.

    Used to hold out a validation set from the training split, so that model selection never
    looks at test images (PAPER.md 3.3)."""
    idx = _subset_indices(data, n, seed)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[idx] = False
    return data.subset(torch.nonzero(keep).flatten()), data.subset(idx)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """RandomCrop(size, padding, zero fill) + RandomHorizontalFlip(0.5) for a batch, on x's device.

    Random draws come from a CPU generator so the augmentation is identical on CPU and GPU.
    """
    b, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(x.device)
    flips = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded[torch.arange(b, device=x.device)[:, None, None, None],
                 torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    return torch.where(flips[:, None, None, None], out.flip(3), out)


class BatchIterator:
    """Mini-batches of float [0,1] images from uint8 data kept on `device`.

    `epoch(e)` yields the batches of epoch e; shuffling and augmentation are seeded by (seed, e),
    so a resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(self, data: ImageData, batch_size: int, *, shuffle: bool = True, augment: bool = True,
                 device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False,
                 channels_last: bool = False, rank: int = 0, world_size: int = 1):
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive; got {batch_size}")
        if batch_size < world_size:
            raise ConfigError(f"batch_size {batch_size} is smaller than the {world_size} processes sharing it")
        self.x = data.x.to(device)
        self.y = data.y.to(device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.drop_last, self.channels_last = seed, drop_last, channels_last
        # Distributed: every process draws the same global batches and keeps rows rank::world_size.
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        n = self.x.shape[0]
        if self.drop_last or n % self.batch_size < self.world_size:  # a last batch too small to share
            return n // self.batch_size
        return -(-n // self.batch_size)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[0]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        order = order.to(self.x.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb = self.x[idx].float().div_(255)
            if self.augment:  # drawn for the global batch, so every rank's generator stays in step
                xb = random_crop_flip(xb, g)
            if self.world_size > 1:
                xb, idx = xb[self.rank::self.world_size], idx[self.rank::self.world_size]
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]

    def __iter__(self):
        return self.epoch(0)
