"""The names a config may use: datasets (with their sizes), models, training methods and the
hyperparameters each method reads. Plain data and a leaf module (it imports nothing of
energy_lib), so `config.py` checks names before anything runs without importing the modules that
implement them; `data.py`, `models.py` and `losses.py` hold the implementations under these names
(tests/test_config.py checks that the lists agree)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    resolution: int
    train_size: int
    test_size: int

    def size(self, split: str) -> int:
        return self.train_size if split == "train" else self.test_size


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, 50_000, 10_000),
    "cifar100": DatasetInfo("cifar100", 100, 32, 50_000, 10_000),
    "svhn": DatasetInfo("svhn", 10, 32, 73_257, 26_032),
    "tiny-imagenet": DatasetInfo("tiny-imagenet", 200, 64, 100_000, 10_000),
}

MODEL_NAMES = ("resnet18", "preact_resnet18", "wrn34_10", "wrn28_10", "small_cnn")

# TrainConfig hyperparameters that only some methods read; the rest are reset by
# TrainConfig.canonical() so that, e.g., der_beta does not change a SAT run's identity.
METHOD_HYPERPARAMETERS = ("attack_steps", "beta", "der_beta", "der_gamma", "fgsm_alpha")
METHOD_USES: dict[str, tuple[str, ...]] = {
    "sat": ("attack_steps",),
    "trades": ("attack_steps", "beta"),
    "weat_nat": ("attack_steps", "beta"),
    "weat_adv": ("attack_steps", "beta"),
    "mart": ("attack_steps", "beta"),
    "sat_der": ("attack_steps", "der_beta", "der_gamma"),
    "trades_der": ("attack_steps", "beta", "der_beta", "der_gamma"),
    "fgsm": ("fgsm_alpha",),
    "fgsm_rs": ("fgsm_alpha",),
    "fgsm_rs_der": ("fgsm_alpha", "der_beta", "der_gamma"),
}
METHOD_NAMES = tuple(METHOD_USES)
