"""Command line: `python -m energy_lib train --method weat_adv --dataset cifar10 --profile paper`.

`python -m energy_lib lens --robustbench Zhang2019Theoretically --n-images 1000` (or `--run DIR`,
`--arch resnet18 --checkpoint model.pt`, `--standard`) puts a classifier through the energy lens
(`energy_lib.lens`) and writes its record under `runs/lens/`.

Several GPUs: `torchrun --nproc_per_node N -m energy_lib train ...` (DistributedDataParallel).

The flags are generated from the `TrainConfig` fields (same names as the notebook parameters and
the stored run record, dashes or underscores both accepted). Only the flags you give override the
profile. `train_or_load` does the work, so an existing run is reused and an interrupted one resumed.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from .config import PROFILE_NAMES, TrainConfig


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "all") else int(text)


def _number(text: str) -> float:
    """A float, also written as a fraction: --eps 8/255."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def _flag_type(field: dataclasses.Field):
    hints = typing.get_type_hints(TrainConfig)
    hint = hints[field.name]
    if hint is bool:
        return None
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        return _optional_int
    return _number if hint is float else hint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m energy_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or load / resume) one run in the run store",
                           argument_default=argparse.SUPPRESS)
    train.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    train.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    train.add_argument("--dry-run", action="store_true", default=False,
                       help="print the resolved config and run directory, train nothing")
    train.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                       help="train at most this many epochs now, then exit (rerun to resume)")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        default = getattr(defaults, field.name)
        flags = [f"--{field.name.replace('_', '-')}"] + ([f"--{field.name}"] if "_" in field.name else [])
        kind = _flag_type(field)
        if kind is None:
            train.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction,
                               help=f"default: {default}")
        else:
            train.add_argument(*flags, dest=field.name, type=kind, metavar=field.name.upper(),
                               help=f"default: {default}")
    _add_lens_parser(sub)
    return parser


def _add_lens_parser(sub) -> None:
    from .config import LensConfig

    lens = sub.add_parser("lens", help="put a classifier through the energy lens; record under runs/lens/",
                          argument_default=argparse.SUPPRESS)
    source = lens.add_mutually_exclusive_group(required=True)
    source.add_argument("--robustbench", metavar="ID", help="a RobustBench model ID (e.g. Zhang2019Theoretically)")
    source.add_argument("--run", metavar="DIR", help="a run directory of the run store (its best.pt)")
    source.add_argument("--checkpoint", metavar="FILE", help="a state_dict file; needs --arch")
    source.add_argument("--standard", action="store_true", help="the pretrained standard ResNet-18")
    lens.add_argument("--arch", metavar="NAME", help="energy_lib architecture of --checkpoint (models.MODELS)")
    lens.add_argument("--threat-model", default="Linf", help="RobustBench threat model (default: Linf)")
    lens.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    lens.add_argument("--name", default="", help="fixed record directory name under runs/lens/")
    lens.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    kinds = typing.get_type_hints(LensConfig)
    for field in dataclasses.fields(LensConfig):
        if field.name in ("robustbench_models", "include_standard", "include_runs", "min_models", "fill_methods"):
            continue   # chapter 6's model list
        flags = [f"--{field.name.replace('_', '-')}"] + ([f"--{field.name}"] if "_" in field.name else [])
        hint = kinds[field.name]
        if hint is bool:
            lens.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction)
        else:
            kind = _number if hint is float else (str if hint is tuple else hint)
            lens.add_argument(*flags, dest=field.name, type=kind, metavar=field.name.upper(),
                              help="comma-separated" + ("; 'paper' = the paper's eight attacks"
                                                        if field.name == "attacks" else "") if hint is tuple else None)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig.from_profile(args.profile, overrides=explicit)   # given flags always win


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data import DataNotFoundError
    from .models import WeightsNotFoundError
    from .runs import RunError

    args = build_parser().parse_args(argv)
    try:
        return _lens(args) if args.command == "lens" else _train(args)
    except (ConfigError, DataNotFoundError, RunError, WeightsNotFoundError) as err:   # the message names the fix
        print(f"error: {err}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    from .runs import run_dir, train_or_load

    cfg = config_from_args(args).canonical()

    print(f"run directory: {run_dir(cfg)}")
    if args.dry_run:
        print(cfg.to_json())
        return 0
    run = train_or_load(cfg, progress=args.progress, stop_after=args.stop_after)
    if run.metrics.empty:   # a torchrun worker other than rank 0 has nothing to report
        return 0
    last = run.metrics.iloc[-1]
    print(f"{run}: epoch {int(last['epoch'])}, tracked test clean acc {last['test_acc_nat']:.3f}, "
          f"PGD acc {last['test_acc_adv']:.3f}, train mean dE(x) {last['train_dE_mean']:.4f}")
    return 0


def _lens(args: argparse.Namespace) -> int:
    from .config import ConfigError, LensConfig
    from .lens import ModelSource, look

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(LensConfig) if hasattr(args, f.name)}
    if "eps_grid" in values:
        values["eps_grid"] = tuple(_number(v) for v in values["eps_grid"].split(",") if v.strip())
    cfg = LensConfig.from_profile(args.profile, overrides=values)
    if hasattr(args, "arch") != hasattr(args, "checkpoint"):
        raise ConfigError("--arch and --checkpoint go together: --arch resnet18 --checkpoint model.pt")
    if hasattr(args, "robustbench"):
        source = ModelSource("robustbench", args.robustbench, dataset=cfg.dataset, threat_model=args.threat_model,
                             model_dir=cfg.model_dir)
    elif hasattr(args, "run"):
        source = ModelSource("run", args.run, dataset=cfg.dataset)
    elif hasattr(args, "checkpoint"):
        source = ModelSource("checkpoint", args.checkpoint, arch=args.arch, dataset=cfg.dataset)
    else:
        source = ModelSource("standard", dataset=cfg.dataset)
    result = look(None, cfg, source, name=args.name, progress=args.progress)
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
