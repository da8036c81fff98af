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
    python tools/paper_sweep.py --launcher slurm --partition gpu --gpus 1 --time 1440   # a cluster
    python tools/paper_sweep.py --launcher local --profile smoke --device cpu --gpus 0  # same jobs, here

Launchers: `inline` (default) trains the runs one after another in this process. `slurm` submits one
submitit job per (dataset, method) (`energy_lib.sweep.SweepJob`): each resumes from last.pt, is
requeued on preemption or time-out (submitit checkpointing), uses one process per GPU when --gpus > 1,
and publishes its evaluation record to runs/published/ when it finishes; this command shows the jobs'
states until all are finished (Ctrl-C stops watching, not the jobs; rerun to collect). `local` runs
the same jobs as local processes through submitit's local executor.

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
from energy_lib.sweep import LAUNCHERS  # noqa: E402

PAPER_DATASETS = ("cifar10", "cifar100", "svhn", "tiny-imagenet")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(PAPER_DATASETS), choices=sorted(DATASETS))
    p.add_argument("--methods", nargs="+", default=list(WeatDerConfig.from_profile("paper").methods), choices=sorted(LOSSES))
    p.add_argument("--profile", default="paper", choices=PROFILE_NAMES)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="table folder (default: $ENERGY_RUNS/paper_tables-<profile>)")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs and exit")
    p.add_argument("--allow-cpu", action="store_true",
                   help="run the paper profile without a GPU anyway (weeks of CPU time)")
    p.add_argument("--launcher", default="inline", choices=LAUNCHERS,
                   help="inline: here, one run after another; slurm / local: one submitit job per run")
    p.add_argument("--partition", default=None, help="SLURM partition (launcher slurm)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per job, one process each (0: a CPU job)")
    p.add_argument("--time", type=int, default=24 * 60, help="time limit per job in minutes; a job that "
                   "reaches it checkpoints and requeues itself")
    p.add_argument("--cpus-per-gpu", type=int, default=8)
    p.add_argument("--max-requeues", type=int, default=20, help="time-outs a job may be requeued after")
    p.add_argument("--poll", type=float, default=60.0, help="seconds between job-state updates")
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
    if args.launcher != "inline":
        check_data(plan)
        return submit_and_watch(args)
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
    write_tables(records, args)
    return 0


def write_tables(records, args) -> None:
    out = args.out or runs_root() / f"paper_tables-{args.profile}"
    out.mkdir(parents=True, exist_ok=True)
    results = tables.results_table(records)
    comparison = tables.comparison_table(records)
    (out / "results.md").write_text(results.to_markdown() + "\n")
    (out / "comparison.md").write_text(comparison.to_markdown() + "\n")
    comparison.to_csv(out / "comparison.csv")
    print(results.to_string())
    print(f"tables written to {out}")


def submit_and_watch(args) -> int:
    """One submitit job per (dataset, method); print their states until all have finished."""
    import os

    from energy_lib import sweep

    if args.profile == "paper" and args.gpus < 1 and not args.allow_cpu:
        raise SystemExit("the paper profile needs GPU jobs: give --gpus 1 (or more), or --allow-cpu to insist")
    # the job processes import energy_lib from this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    device = args.device if args.device != "auto" else ("cuda" if args.gpus else "cpu")
    jobs = sweep.plan(args.datasets, args.methods, args.profile, device)
    folder = runs_root() / "sweep_jobs" / args.profile
    executor = sweep.executor(args.launcher, folder, partition=args.partition, gpus=args.gpus,
                              cpus_per_gpu=args.cpus_per_gpu, timeout_min=args.time,
                              max_requeues=args.max_requeues)
    handles = {job.name: executor.submit(job) for job in jobs}
    sweep.save_job_ids(sweep.jobs_file(args.profile), {k: h.job_id for k, h in handles.items()})
    print(f"submitted {len(jobs)} {args.launcher} jobs (logs in {folder}); Ctrl-C stops watching, not the jobs",
          flush=True)
    records, failed, last = {}, {}, None
    while len(records) + len(failed) < len(jobs):
        for job in jobs:
            handle = handles[job.name]
            if job.name in records or job.name in failed or not handle.done():
                continue
            try:
                records[job.name] = handle.result()
            except Exception as err:   # the job's own traceback is in its log
                failed[job.name] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        table = sweep.status_table(jobs, handles)
        if table != last:
            print(time.strftime("%H:%M:%S"), f"{len(records)} done, {len(failed)} failed, "
                  f"{len(jobs) - len(records) - len(failed)} running or pending", flush=True)
            print(table, flush=True)
            last = table
        if len(records) + len(failed) < len(jobs):
            time.sleep(args.poll)
    for name, message in failed.items():
        print(f"FAILED {name}: {message} (log: {handles[name].paths.stderr})", file=sys.stderr)
    if records:
        write_tables(list(records.values()), args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
