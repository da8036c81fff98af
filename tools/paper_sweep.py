"""The paper's WEAT/DER table in one command (PAPER.md 3.3, 3.4, 4.1): train every method on every
dataset with the `paper` profile, evaluate each selected checkpoint with PGD-20 and AutoAttack
standard on the full test set, and write the tables generated from the records.

Resumable at every level: finished runs are reused and unfinished ones resume from last.pt
(`runs.train_or_load`); finished evaluations are reused, interrupted ones resume from their record
and AutoAttack state file (`metrics.robust`). Just run the same command again.

    python tools/paper_sweep.py                                   # everything (GPU: days)
    python tools/paper_sweep.py --datasets cifar10 --methods weat_adv trades
    python tools/paper_sweep.py --dry-run                         # the plan: run directories, no work
    python tools/paper_sweep.py --profile smoke --device cpu      # the pipeline end to end in minutes

Outputs: the run store ($ENERGY_RUNS, default runs/), a copy of every complete evaluation record in
runs/published/ (tracked in git: commit it and chapter 4 shows the numbers), and <out>/results.md,
comparison.md, comparison.csv.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from energy_lib import tables  # noqa: E402
from energy_lib.config import PROFILE_NAMES, WeatDerConfig, resolve_device, runs_root  # noqa: E402
from energy_lib.data import DATASETS, DataNotFoundError, load_dataset  # noqa: E402
from energy_lib.losses import LOSSES  # noqa: E402

PAPER_DATASETS = ("cifar10", "cifar100", "svhn", "tiny-imagenet")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(PAPER_DATASETS), choices=sorted(DATASETS))
    p.add_argument("--methods", nargs="+", default=list(WeatDerConfig.methods), choices=sorted(LOSSES))
    p.add_argument("--profile", default="paper", choices=PROFILE_NAMES)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="table folder (default: $ENERGY_RUNS/paper_tables-<profile>)")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs and exit")
    p.add_argument("--allow-cpu", action="store_true",
                   help="run the paper profile without a GPU anyway (weeks of CPU time)")
    return p.parse_args(argv)


def check_data(plan) -> None:
    """Fail before any training when a dataset is missing or only partly available, naming all of
    them: every split is loaded with as many images as the plan's runs and evaluations need."""
    needs = {}
    for cfg, _, tcfg in plan:
        train_n = None if tcfg.n_train is None else tcfg.n_train + tcfg.n_val
        needs.setdefault(cfg.dataset, {"train": train_n, "test": cfg.n_eval})
    missing = []
    for name, splits in needs.items():
        for split, n in splits.items():
            try:
                load_dataset(name, split, n=n)
            except DataNotFoundError as err:
                missing.append(f"- {name} {split}: {err}")
    if missing:
        raise SystemExit("datasets not available (drop them with --datasets, or provide them):\n" + "\n".join(missing))


def main(argv=None) -> int:
    args = parse_args(argv)
    from energy_lib.metrics import robust
    from energy_lib.runs import run_dir, train_or_load

    plan = []
    for dataset in args.datasets:
        cfg = WeatDerConfig.from_profile(args.profile, overrides={"dataset": dataset, "methods": tuple(args.methods),
                                                                  "device": args.device})
        plan += [(cfg, method, cfg.train_config(method, args.profile)) for method in cfg.methods]
    print(f"{len(plan)} runs ({args.profile} profile) in {runs_root()}:")
    for _, _, tcfg in plan:
        directory = run_dir(tcfg.canonical())   # where train_or_load puts it
        print(f"  {directory.name}  {'(done)' if (directory / 'DONE').is_file() else ''}")
    if args.dry_run:
        return 0
    device = resolve_device(args.device)
    if args.profile == "paper" and device.type != "cuda" and not args.allow_cpu:
        raise SystemExit("the paper profile needs a GPU (ResNet-18, 100 epochs, AutoAttack standard on full test "
                         "sets); none was found. Use --profile smoke/default to try the pipeline on a CPU, or "
                         "--allow-cpu to insist.")
    check_data(plan)
    records = []
    for i, (cfg, method, tcfg) in enumerate(plan, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(plan)}] train {method} on {cfg.dataset}", flush=True)
        run = train_or_load(tcfg, progress=True)
        print(f"[{i}/{len(plan)}] evaluate {run.dir.name}", flush=True)
        rec = robust.evaluate_run(run, cfg.eval_settings(), n_images=cfg.n_eval, device=args.device, progress=True)
        robust.publish(rec)   # runs/published/ is tracked in git: commit it to show the numbers in the book
        records.append(rec)
        print(f"    {rec['accuracy']}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = args.out or runs_root() / f"paper_tables-{args.profile}"
    out.mkdir(parents=True, exist_ok=True)
    results = tables.results_table(records)
    comparison = tables.comparison_table(records)
    (out / "results.md").write_text(results.to_markdown() + "\n")
    (out / "comparison.md").write_text(comparison.to_markdown() + "\n")
    comparison.to_csv(out / "comparison.csv")
    print(results.to_string())
    print(f"tables written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
