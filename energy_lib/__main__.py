"""Command line: `python -m energy_lib train --method weat_adv --dataset cifar10 --profile paper`.

`python -m energy_lib reference` trains (or resumes) the committed reference robust run in
runs/reference/ (`config.REFERENCE_TRAINING`; `make reference`).

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
import os
import signal
import sys
import typing

from .config import PROFILE_NAMES, TrainConfig


def _positive_int(text: str) -> int:
    """--stop-after: a number of epochs >= 1 (0 or less would train nothing and still exit 0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of epochs") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1 (leave the flag out to train every epoch)")
    return value


def _optional_int(text: str) -> str | None:
    """none/all = None (n_train: all images; step_size, track_step_size: the rule)."""
    return None if text.lower() in ("none", "all") else text


def _flag_type(field: dataclasses.Field):
    """None for a boolean flag; else the text is passed on as given and TrainConfig parses and checks
    it, so a bad value is reported with the field's name (numbers may be fractions: --eps 8/255)."""
    hint = typing.get_type_hints(TrainConfig)[field.name]
    if hint is bool:
        return None
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        return _optional_int
    return str


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line on stderr, exit 2 (argparse prints the whole usage)
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m energy_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or load / resume) one run in the run store",
                           argument_default=argparse.SUPPRESS)
    train.error = parser.error.__get__(train)   # one-line errors for the subcommand too
    train.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    train.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    train.add_argument("--dry-run", action="store_true", default=False,
                       help="print the resolved config and run directory, train nothing")
    train.add_argument("--stop-after", type=_positive_int, default=None, metavar="EPOCHS",
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
    reference = sub.add_parser("reference", help="train (or resume) the committed reference robust run in "
                               "runs/reference/ (config.REFERENCE_TRAINING; hours on a CPU)")
    reference.error = parser.error.__get__(reference)
    reference.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    reference.add_argument("--stop-after", type=_positive_int, default=None, metavar="EPOCHS",
                           help="train at most this many epochs now, then exit (rerun to resume)")
    reference.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    _add_lens_parser(sub)
    return parser


def _add_lens_parser(sub) -> None:
    from .config import LensConfig, parse_number

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
        if field.name in LensConfig.MODEL_LIST_FIELDS:
            continue   # chapter 6's model list
        flags = [f"--{field.name.replace('_', '-')}"] + ([f"--{field.name}"] if "_" in field.name else [])
        hint = kinds[field.name]
        if hint is bool:
            lens.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction)
        else:
            kind = (lambda text, key=field.name: parse_number(text, key)) if hint is float else (
                str if hint is tuple else hint)
            lens.add_argument(*flags, dest=field.name, type=kind, metavar=field.name.upper(),
                              help="comma-separated" + ("; 'paper' = the paper's eight attacks"
                                                        if field.name == "attacks" else "") if hint is tuple else None)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig.from_profile(args.profile, overrides=explicit)   # given flags always win


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded({"train": _train, "reference": _reference, "lens": _lens}[args.command], args)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a message saying what was kept."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _user_errors() -> tuple[type, ...]:
    """The errors whose message names the problem and its fix. Modules are looked up only once
    loaded (an error cannot come from a module never imported), so a bad flag costs no torch import."""
    from .config import ConfigError
    from .fileio import StoreError

    found: list[type] = [ConfigError, StoreError]
    for module, name in (("energy_lib.data", "DataNotFoundError"), ("energy_lib.train", "NonFiniteLossError"),
                         ("energy_lib.models", "WeightsNotFoundError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def _interrupt_once(signum, frame):
    """The first Ctrl-C interrupts; later ones are ignored, so that saying what was kept (and the
    clean-up: lock release, temporaries) is not cut short by a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def guarded(command, args: argparse.Namespace) -> int:
    """Run a subcommand; the errors a user can fix become one line on stderr (exit 2; Ctrl-C: 130)."""
    import threading
    import warnings

    warnings.showwarning = lambda message, *a, **k: print(f"warning: {_one_line(message)}", file=sys.stderr)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt_once) if main_thread else None
    interrupted = False
    try:
        return command(args)
    except KeyboardInterrupt as err:
        interrupted = True   # the process is about to exit: no Ctrl-C may cut its last words or clean-up
        if main_thread:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"interrupted: {_one_line(err) if str(err) else 'nothing was written'}", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, _user_errors()):   # the message names the fix
            print(f"error: {_one_line(err)}", file=sys.stderr)
            return 2
        if isinstance(err, OSError):   # e.g. a folder that cannot be read
            where = f" {err.filename}" if err.filename else ""
            print(f"error:{where} {_one_line(err.strerror or err)}; fix the file or folder named and run again",
                  file=sys.stderr)
            return 2
        raise
    finally:
        if main_thread and not interrupted:
            signal.signal(signal.SIGINT, previous)


def _train(args: argparse.Namespace) -> int:
    from .runs import run_dir

    cfg = config_from_args(args).canonical()
    print(f"run directory: {run_dir(cfg)}")
    if args.dry_run:
        print(cfg.to_json())
        return 0
    return _train_and_report(cfg, args, root=None)


def _reference(args: argparse.Namespace) -> int:
    from .config import reference_config, reference_root
    from .runs import run_dir

    cfg = reference_config(device=args.device).canonical()
    print(f"reference run directory: {run_dir(cfg, reference_root())}")
    return _train_and_report(cfg, args, root=reference_root())


def _train_and_report(cfg: TrainConfig, args: argparse.Namespace, root) -> int:
    from .runs import Run, RunError, run_dir, train_or_load

    directory = run_dir(cfg, root)
    try:
        run = train_or_load(cfg, progress=args.progress, stop_after=args.stop_after, root=root)
    except KeyboardInterrupt:
        kept = Run(cfg, directory).kept_epoch()
        raise Interrupted(f"{directory} keeps the checkpoint of epoch {kept}; run the same command again to "
                          "resume" if kept else f"no epoch was completed ({directory} holds no checkpoint); "
                          "run the same command again to start") from None
    if int(os.environ.get("RANK", "0")) != 0:   # a torchrun worker other than rank 0 has nothing to report
        return 0
    if run.metrics.empty:   # verified rows (rebuilt from last.pt where they can be): none is an error
        raise RunError(f"run {run.dir} holds no metrics row{' although it is finished' if run.done else ''}; "
                       f"delete the run directory {run.dir} to retrain the run")
    last = run.metrics.iloc[-1]
    print(f"{run}: epoch {int(last['epoch'])}, tracked test clean acc {last['test_acc_nat']:.3f}, "
          f"PGD acc {last['test_acc_adv']:.3f}, train mean dE(x) {last['train_dE_mean']:.4f}")
    return 0


def _lens(args: argparse.Namespace) -> int:
    from .config import ConfigError, LensConfig, parse_number
    from .lens import ModelSource, look

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(LensConfig) if hasattr(args, f.name)}
    if "eps_grid" in values:
        values["eps_grid"] = tuple(parse_number(v, "eps_grid") for v in values["eps_grid"].split(",") if v.strip())
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
