"""Train (or resume) the phenomena suite's runs (`energy_lib.suite`) and write its record.

    PYTHONPATH=. python tools/suite.py --dry-run          # what is done, what is left, core-hours
    PYTHONPATH=. python tools/suite.py                    # train every missing run, then the record
    PYTHONPATH=. python tools/suite.py --only probe-co-fgsm-slcnn-e8-lr0.003-s0 --jobs 1
    PYTHONPATH=. python tools/suite.py --record           # rewrite runs/suite/suite.json only

Runs are trained one after another in each of `--jobs` worker processes (default 1, one thread
each), under `nice`, into runs/suite/ (or $ENERGY_SUITE) whatever $ENERGY_RUNS says. Each run is
resumable from its last epoch (`runs.train_or_load`); probes stopped on purpose (`stopped_at`) are
never resumed. Each finished run then gets its final evaluation (`suite.final_evaluation`:
per-image clean and robust accuracy of last.pt on the shipped test images and the held-out
block). The confirming runs are those the written rules choose from the probes' outcomes
now (`suite.choose_co`, `suite.choose_ro`): rerun after the probes finish to get them. Errors are
one line (exit 2); Ctrl-C stops after saving what the current epochs hold (exit 130).
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from energy_lib import suite  # noqa: E402
from energy_lib.config import ConfigError  # noqa: E402
from energy_lib.fileio import StoreError  # noqa: E402


def _train(name: str) -> tuple[str, bool]:
    import torch

    from energy_lib.runs import train_or_load

    torch.set_num_threads(1)
    os.nice(max(0, 10 - os.nice(0)))   # niceness 10, not more when started from an already nice'd shell
    entry = _entries()[name]
    if entry.stopped_at is None:
        train_or_load(entry.config(), progress=False, root=entry.directory().parent)
    suite.final_evaluation(entry)          # the final per-image robust accuracy (PGD-50-10 / PGD-20)
    return name, True


def _entries() -> dict:
    return suite.current_plan().entries()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list done and missing runs, train nothing")
    parser.add_argument("--record", action="store_true", help="only rewrite runs/suite/suite.json")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="train only these runs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one thread each)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            rows = suite.plan()
            left = [r for r in rows if not r["finished"]]
            for r in rows:
                state = "done" if r["finished"] else f"{r['epochs']}/{r['of']} epochs"
                hours = "" if r["finished"] else (f", about {r['hours_left']:.2f} core-hours left"
                                                  if r["hours_left"] is not None else ", cost not yet measured")
                print(f"{r['stage']:8s} {r['phenomenon']:3s} {r['name']:45s} {state}{hours}")
            known = sum(r["hours_left"] or 0 for r in left)
            print(f"{len(rows) - len(left)} of {len(rows)} runs done; about {known:.1f} core-hours left "
                  f"({sum(r['hours_left'] is None for r in left)} run(s) not yet estimated)")
            return 0
        if not args.record:
            entries = _entries()
            unknown = [n for n in args.only or [] if n not in entries]
            if unknown:
                print(f"error: no suite run named {unknown[0]!r}; see `tools/suite.py --dry-run`", file=sys.stderr)
                return 2
            todo = [n for n in (args.only or entries) if not entries[n].finished
                    or not (entries[n].directory() / suite.FINAL_EVAL).is_file()]   # in the order asked
            print(f"[suite] {len(todo)} run(s) to train with {args.jobs} process(es): {', '.join(todo) or '-'}",
                  flush=True)
            with ProcessPoolExecutor(args.jobs) as pool:
                for name, done in pool.map(_train, todo):
                    print(f"[suite] {name}: {'done' if done else 'stopped'}", flush=True)
        print(f"[suite] record: {suite.write_record()}")
        return 0
    except KeyboardInterrupt:
        print("interrupted: every run keeps its last completed epoch; rerun to resume", file=sys.stderr)
        return 130
    except (ConfigError, StoreError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
