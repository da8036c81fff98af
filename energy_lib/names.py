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

MODEL_NAMES = ("resnet18", "preact_resnet18", "wrn34_10", "wrn28_10", "small_cnn", "small_cnn_w64",
               "single_layer_cnn", "single_layer_cnn_f4")

# TrainConfig hyperparameters that only some methods read; the rest are reset by
# TrainConfig.canonical() so that, e.g., der_beta does not change a SAT run's identity.
METHOD_HYPERPARAMETERS = ("attack_steps", "step_size", "beta", "der_beta", "der_gamma", "fgsm_alpha",
                          "single_step_mode", "nfgsm_noise")
_MULTI = ("attack_steps", "step_size")
_SINGLE = ("fgsm_alpha", "single_step_mode")
METHOD_USES: dict[str, tuple[str, ...]] = {
    "sat": _MULTI,
    "trades": (*_MULTI, "beta"),
    "weat_nat": (*_MULTI, "beta"),
    "weat_adv": (*_MULTI, "beta"),
    "mart": (*_MULTI, "beta"),
    "sat_der": (*_MULTI, "der_beta", "der_gamma"),
    "trades_der": (*_MULTI, "beta", "der_beta", "der_gamma"),
    "fgsm": _SINGLE,
    "fgsm_der": (*_SINGLE, "der_beta", "der_gamma"),
    "fgsm_rs": _SINGLE,
    "fgsm_rs_der": (*_SINGLE, "der_beta", "der_gamma"),
    "n_fgsm": (*_SINGLE, "nfgsm_noise"),
}
METHOD_NAMES = tuple(METHOD_USES)

# The energy lens's attacks (energy_lib.lens runs them; LensConfig checks names against them).
WHITE_BOX_ATTACKS = ("pgd", "trades_kl", "cw", "pgd_targeted", "pgd_targeted_ce")
AUTOATTACK_COMPONENTS = ("apgd-ce", "apgd-t", "apgd-dlr", "fab", "fab-t", "square")
ATTACKS = WHITE_BOX_ATTACKS + AUTOATTACK_COMPONENTS
# The attacks of the paper's figure (PAPER.md 2.1), in its order. Its CW is torchattacks' ℓ2 CW;
# here "cw" is ℓ∞ PGD on the CW margin, which stands in for it (and is named so).
PAPER_ATTACKS = ("pgd", "trades_kl", "apgd-ce", "apgd-t", "apgd-dlr", "fab", "square", "cw")
