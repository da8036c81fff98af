"""Size the `default` profile (issue 10): evaluate the book's claims over a grid of profiles.

Each grid point is a profile plus overrides of TrainConfig fields (n_train, epochs, model,
fgsm_alpha, ...), chapter 2's `single_step_eps` and chapter 4's evaluation fields (n_eval,
autoattack, ...). For every point the runs the claims need (SAT, TRADES, WEAT_adv, FGSM-RS and
FGSM-RS + DER at single_step_eps) are trained or loaded through the run store, exactly as the
chapters build them, and `energy_lib.sizing` computes each claim's statistic, noise and verdict the
way its chapter does. The record `runs/sizing/sizing.json` (tracked in git; the appendix page
book/appendix_sizing.ipynb shows it) is rewritten atomically after each point.

Resumable: finished runs are reused and an interrupted one resumes from last.pt
(`runs.train_or_load`); points already in the record are skipped (--recompute redoes them).
On a CPU each point's missing runs are first trained side by side, one worker process per core as
`make book` does (`energy_lib.book_runs.train_all`; --jobs N sets the processes, --jobs 0 trains
each run inside its point's evaluation, one at a time); the point is recorded before the next one's
runs start. A point's training minutes add up its runs' own wall times (runs trained side by side
overlap; each run's torch threads are in the record).
The point of the current `default` profile shares its runs with `make book`.

    PYTHONPATH=. python tools/size_default.py --grid default --dry-run     # the plan, no work
    PYTHONPATH=. python tools/size_default.py --grid issue10               # the documented sweep
    PYTHONPATH=. python tools/size_default.py --grid n_train=500,1000 --grid epochs=30,60   # a product
    PYTHONPATH=. python tools/size_default.py --profile smoke --grid epochs=2 --grid autoattack=false

Grids: a name (see --help's list) or `key=v1,v2` (values like 8/255, all = None, true/false);
several --grid options combine as a product. Errors are one line with exit 2 (a bad grid, a corrupt record, a
locked run).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from energy_lib import sizing  # noqa: E402
from energy_lib.config import PROFILE_NAMES, ConfigError, runs_root  # noqa: E402
from energy_lib.fileio import StoreError  # noqa: E402

GRIDS = sizing.GRIDS


class GridError(ConfigError):
    pass


def _value(text: str):
    low = text.strip().lower()
    if low in ("all", "none"):
        return None
    if low in ("true", "false"):
        return low == "true"
    return text.strip()


def parse_grid(spec: str) -> list[dict]:
    """A named grid, or `key=v1,v2,...`: the list of partial points it stands for."""
    if "=" not in spec:
        if spec not in GRIDS:
            raise GridError(f"unknown grid {spec!r}; choose one of {', '.join(GRIDS)} or give key=v1,v2")
        return GRIDS[spec]
    key, _, values = spec.partition("=")
    key = key.strip()
    items = [v for v in values.split(",") if v.strip()]
    if not key or not items:
        raise GridError(f"grid {spec!r} needs a key and at least one value, e.g. n_train=500,1000")
    return [{key: _value(v)} for v in items]


def plan(specs: list[str], profile: str) -> list[sizing.Point]:
    """The grid's points (product of the --grid options), checked, in order, without duplicates."""
    grids = [parse_grid(s) for s in specs] or [GRIDS["default"]]
    points, seen = [], set()
    for combo in itertools.product(*grids):
        values = {}
        for part in combo:
            values.update(part)
        point = sizing.Point.make(profile, values)
        if point.key() not in seen:
            seen.add(point.key())
            points.append(point)
    return points


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", action="append", default=[], metavar="NAME|KEY=V1,V2",
                   help=f"named grid ({', '.join(GRIDS)}) or one axis; repeat for a product (default: default)")
    p.add_argument("--profile", default="default", choices=PROFILE_NAMES, help="the base every point overrides")
    p.add_argument("--record", type=Path, default=None, help=f"the record (default: {sizing.record_path()})")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true", help="list the points and their runs, and exit")
    p.add_argument("--recompute", action="store_true", help="evaluate points that the record already holds again")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes that train the points' missing runs first (CPU; default one per core; "
                        "0: each run inside its point's evaluation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def dry_run(points, rec, record) -> None:
    print(f"{len(points)} point(s); runs in {runs_root()}; record {record}:")
    for point in points:
        state = "recorded" if sizing.recorded(rec, point) else "to evaluate"
        print(f"  {point.name}  [{point.key()}, {state}]")
        for label, directory in point.run_dirs().items():
            print(f"    {label:14s} {directory.name}  {'(done)' if (directory / 'DONE').is_file() else '(to train)'}")


def train_first(points, device: str, jobs: int | None, progress: bool) -> None:
    """Train the points' missing runs side by side before evaluating them (CPU only: a GPU trains
    one run at a time, inside `sizing.evaluate_point`)."""
    from energy_lib import book_runs
    from energy_lib.config import resolve_device

    if jobs == 0 or resolve_device(device).type != "cpu":
        return
    configs = {f"{point.name} {label}": cfg.replace(device=device)
               for point in points for label, cfg in point.train_configs().items()}
    book_runs.train_all(configs, jobs=jobs, progress=progress)


def summary_line(entry: dict) -> str:
    verdicts = ", ".join(f"{r['claim']}: {r['verdict']}" for r in entry["rows"])
    return f"{entry['name']}: {verdicts} (training {entry['cost']['train_wall_s'] / 60:.1f} min)"


def main(argv=None) -> int:
    args = parse_args(argv)
    record = args.record or sizing.record_path()
    try:
        points = plan(args.grid, args.profile)
        rec = sizing.load_record(record)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StoreError as err:   # e.g. a corrupt sizing record: one line naming it, exit 2 (as every fixable error)
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 0:
        print(f"error: --jobs {args.jobs}: give a number of processes >= 1, or 0 to train inside each point",
              file=sys.stderr)
        return 2
    if args.dry_run:
        dry_run(points, rec, record)
        return 0
    from tqdm.auto import tqdm

    from energy_lib.data import DataNotFoundError

    todo = [p for p in points if args.recompute or sizing.recorded(rec, p) is None]
    print(f"{len(points)} point(s), {len(points) - len(todo)} already in {record}", flush=True)
    bar = tqdm(todo, desc="grid points", unit="point", disable=args.no_progress)
    try:
        for point in bar:
            bar.set_postfix_str(point.name)
            train_first([point], args.device, args.jobs, progress=not args.no_progress)
            entry = sizing.evaluate_point(point, device=args.device, progress=not args.no_progress)
            sizing.save_point(entry, record)
            bar.write(summary_line(entry))
    except KeyboardInterrupt:
        print("interrupted: finished points are in the record; run the same command again to resume",
              file=sys.stderr)
        return 130
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (StoreError, DataNotFoundError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
