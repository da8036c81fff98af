"""The book's time budget (issue 10), measured and kept as records.

Budget: `make book` from a fresh clone (virtual environment installed, run store empty but for the
committed reference run) in at most 40 minutes on a 2-core CPU; a rebuild with the run store
present in at most 5 minutes. `python tools/book.py record-time --kind fresh --wall-seconds S`
turns a finished build's `execution.json` (tools/book.py: every chapter's status and seconds) and
the measured wall time of the whole `make book` into one record `runs/bench/book-time-*.json`;
the Performance appendix shows them. Only a complete build (every chapter `ok`, one profile) is
recorded: a failed chapter's time says nothing about the budget.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import fileio
from .provenance import machine_view

BUDGET_MINUTES = {"fresh": 40.0, "rebuild": 5.0}
PREFIX = "book-time-"
RECORDS = Path(__file__).resolve().parent.parent / "runs" / "bench"   # tracked in git


class BudgetError(ValueError):
    """A build that cannot be recorded; the message names the problem and the fix."""


def make_record(execution: dict, kind: str, wall_seconds: float, measured_at: str, machine: dict,
                chapters: list[str] | None = None, runs: dict | None = None) -> dict:
    """One budget record from a build's execution record (`{chapter: {status, profile, seconds,
    commit, dirty}}`, tools/book.py). `chapters`: the book's chapter list (`_toc.yml`); the record
    must hold exactly those, all `ok`, of the `default` profile (the budget's), from one commit.
    `runs`: the record of the runs trained before the chapters (tools/book.py `runs.json`), if any."""
    if kind not in BUDGET_MINUTES:
        raise BudgetError(f"kind={kind!r}; choose one of {', '.join(BUDGET_MINUTES)}")
    if not execution:
        raise BudgetError("the execution record lists no chapter: run `make book` first")
    if chapters is not None and set(chapters) != set(execution):
        missing, extra = sorted(set(chapters) - set(execution)), sorted(set(execution) - set(chapters))
        raise BudgetError(f"the execution record is not one whole build (missing: {', '.join(missing) or 'none'}; "
                          f"not in the book: {', '.join(extra) or 'none'}); run `make clean book` and record again")
    not_ok = sorted(c for c, e in execution.items() if e.get("status") != "ok")
    if not_ok:
        raise BudgetError(f"chapters not executed successfully: {', '.join(not_ok)}; only a complete build is "
                          "recorded (fix them and run `make book` again)")
    profiles = sorted({e.get("profile") for e in execution.values()}, key=str)
    if profiles != ["default"]:
        raise BudgetError(f"the chapters ran with the profile(s) {', '.join(map(str, profiles))}; the budget is "
                          "the `default` profile's: record a plain `make book`")
    commits = sorted({str(e.get("commit")) for e in execution.values()})
    if len(commits) != 1:
        raise BudgetError(f"the chapters ran at different commits ({', '.join(commits)}); run `make clean book` "
                          "and record again")
    chapter_seconds = {c: float(e["seconds"]) for c, e in execution.items()}
    runs = runs or {}
    if runs and (runs.get("status") != "ok" or runs.get("profile") != profiles[0]
                 or str(runs.get("commit")) != commits[0]):
        raise BudgetError(f"the runs trained before the chapters are not this build's (status {runs.get('status')}, "
                          f"profile {runs.get('profile')}, commit {runs.get('commit')}): run `make clean book` and "
                          "record again")
    runs_seconds = float(runs.get("seconds", 0.0))
    if not wall_seconds >= sum(chapter_seconds.values()) + runs_seconds:
        raise BudgetError(f"wall_seconds={wall_seconds} is less than the chapters' own "
                          f"{sum(chapter_seconds.values()) + runs_seconds:.0f} s: give the measured time of the "
                          "whole `make book`")
    minutes = wall_seconds / 60
    first = next(iter(execution.values()))
    return {"kind": kind, "profile": profiles[0], "measured_at": measured_at, "machine": machine,
            "git": {"commit": first.get("commit"), "dirty": any(e.get("dirty") for e in execution.values())},
            "wall_seconds": round(float(wall_seconds), 1), "chapter_seconds": chapter_seconds,
            "runs_seconds": runs_seconds, "runs_trained": runs.get("runs", {}),
            "budget_minutes": BUDGET_MINUTES[kind], "within_budget": minutes <= BUDGET_MINUTES[kind]}


def save(record: dict, directory: Path) -> Path:
    """Write the record as runs/bench/book-time-<kind>-<time>.json; never overwrites one."""
    stamp = record["measured_at"].replace(":", "").replace("-", "")
    path = Path(directory) / f"{PREFIX}{record['kind']}-{stamp}.json"
    if path.exists():
        raise BudgetError(f"{path} exists: a measurement is never overwritten; measure again later")
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def load(directory: Path | None = None) -> list[dict]:
    """Every budget record in `directory` (default: the repository's runs/bench/), oldest first; an
    unreadable one is skipped with a warning."""
    import warnings

    records = []
    for path in sorted(Path(directory if directory is not None else RECORDS).glob(f"{PREFIX}*.json")):
        try:
            records.append(fileio.read_json(path, fix="delete it and measure the build again"))
        except fileio.StoreError as err:
            warnings.warn(f"skipped: {err}", stacklevel=2)
    return sorted(records, key=lambda r: r["measured_at"])


def latest(kind: str, records: list[dict] | None = None) -> dict | None:
    """The newest record of `kind` ("fresh" or "rebuild") among `records` (default: `load()`), or None."""
    if kind not in BUDGET_MINUTES:
        raise BudgetError(f"kind={kind!r}; choose one of {', '.join(BUDGET_MINUTES)}")
    found = [r for r in (load() if records is None else records) if r.get("kind") == kind]
    return max(found, key=lambda r: r["measured_at"]) if found else None


def table(records: list[dict]):
    """One row per measured build: its wall time against the budget, and the slowest chapter."""
    import pandas as pd

    rows = []
    for r in records:
        slowest = max(r["chapter_seconds"], key=r["chapter_seconds"].get)
        rows.append({"measured": r["measured_at"], "build": r["kind"], "profile": r["profile"],
                     "cpus": machine_view(r["machine"]).get("cpus"), "minutes": round(r["wall_seconds"] / 60, 1),
                     "budget (min)": r["budget_minutes"], "within budget": r["within_budget"],
                     "runs trained first (min)": round(r.get("runs_seconds", 0.0) / 60, 1),
                     "slowest chapter": f"{Path(slowest).stem} ({r['chapter_seconds'][slowest] / 60:.1f} min)"})
    return pd.DataFrame(rows)


def chapter_table(records: list[dict]):
    """Minutes per chapter (rows) and measured build (columns)."""
    import pandas as pd

    return pd.DataFrame({f"{r['kind']} {r['measured_at'][:10]}": {
        "runs trained before the chapters": round(r.get("runs_seconds", 0.0) / 60, 1),
        **{Path(c).stem: round(s / 60, 1) for c, s in r["chapter_seconds"].items()}} for r in records})
