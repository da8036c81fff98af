"""Mutation testing of the science and storage modules (`make mutation`): does the suite catch a wrong edit?

    PYTHONPATH=. python tools/mutation.py              # run mutmut (resumes where it stopped), then score
    PYTHONPATH=. python tools/mutation.py --report     # score what mutants/ holds now, run nothing
    PYTHONPATH=. python tools/mutation.py --jobs 1     # one test process at a time (default: 2)
    PYTHONPATH=. python tools/mutation.py --module energy --module losses   # these modules only

mutmut (pinned in requirements-dev.txt; `[tool.mutmut]` in pyproject.toml names the modules and their
fast tests) writes every plausible small wrong edit of those modules (a flipped comparison, a changed
constant, a dropped argument...) into mutants/ and runs, for each, the tests that execute the mutated
function. A mutant no test fails on "survives". mutmut keeps each result in mutants/ and skips what is
already known on the next run, so an interrupted run resumes; a changed function is retested.

The score of a module is caught / (mutants - equivalent): caught = a test failed or timed out;
equivalent = listed in tools/mutation_equivalent.json with why no test can tell it from the original
(the entry holds the mutant's changed lines, so an entry goes stale when the code under it changes).
Mutants with no covering test count as survivors. For lens.py and runs.py the score covers the parts
issue 27 names (the lens's scoring; a run's identity and the selection of runs); their other mutants
are run and listed but not scored. A complete run (every mutant checked) is appended to
runs/mutation/score.json, so the trend is in the repository: each entry holds the modules whose
mutants were all checked. The target is >= 90 % per module.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.json"
RECORD = ROOT / "runs" / "mutation" / "score.json"
TARGET = 0.90

# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into what the score needs
CAUGHT = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
          255: "timeout", 37: "killed"}
UNCAUGHT = {0: "survived", 5: "no tests", 33: "no tests", 35: "suspicious", -11: "segfault", -9: "segfault"}
UNCHECKED = {None: "not checked", 2: "interrupted", 34: "skipped"}


@dataclass(frozen=True)
class Scope:
    """One scored module: its file and, where only part of it is scored, its functions (mutmut's
    mangled names: `x_<function>` for a function, `xǁ<Class>ǁ<method>` for a method)."""
    path: str
    functions: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return self.path[: -len(".py")].replace("/", ".")

    def scores(self, function: str) -> bool:
        return not self.functions or any(fnmatch.fnmatchcase(function, p) for p in self.functions)


SCOPES: dict[str, Scope] = {
    "energy": Scope("energy_lib/energy.py"),
    "losses": Scope("energy_lib/losses.py"),
    "attacks": Scope("energy_lib/attacks.py"),
    "verdicts": Scope("energy_lib/verdicts.py"),
    "metrics.robust": Scope("energy_lib/metrics/robust.py"),
    "metrics.fidelity": Scope("energy_lib/metrics/fidelity.py"),
    "lens (scoring)": Scope("energy_lib/lens.py", (
        "x_detection_scores", "x_delta_distribution", "x_attack_summary", "x_energies_frame",
        "x_smoothness_verdict", "x_smoothness_over_robust")),
    "tables": Scope("energy_lib/tables.py"),
    "runs (identity, selection)": Scope("energy_lib/runs.py", (
        "x_identity", "x_config_hash", "x_run_dir", "x__difference", "xǁRunǁstored_config",
        "xǁRunǁcheck_config", "xǁRunǁkept_epoch", "xǁRunǁdone", "x_finished_runs", "x_selected_metrics",
        "x_robust_runs", "x_reference_run", "x_is_reference", "x_training_images")),
    "fileio": Scope("energy_lib/fileio.py"),
}

_KEY = re.compile(r"^(?P<module>.+?)\.(?P<function>xǁ.+|x_.+)__mutmut_(?P<n>\d+)$")


class MutationError(Exception):
    """A one-line problem with the mutation run or its files."""


@dataclass
class ModuleScore:
    mutants: int = 0
    killed: int = 0
    timeout: int = 0
    equivalent: int = 0
    unchecked: int = 0
    survivors: list = field(default_factory=list)      # [{"name", "status", "change"}]
    stale: list = field(default_factory=list)          # equivalence notes whose code changed
    unscored: int = 0                                   # mutants outside the scored functions

    @property
    def caught(self) -> int:
        return self.killed + self.timeout

    @property
    def score(self) -> float | None:
        denominator = self.mutants - self.equivalent - self.unchecked
        return None if denominator <= 0 else self.caught / denominator

    def as_dict(self) -> dict:
        return {"mutants": self.mutants, "killed": self.killed, "timeout": self.timeout,
                "equivalent": self.equivalent, "survived": len(self.survivors),
                "not_checked": self.unchecked, "outside_scope": self.unscored,
                "score": None if self.score is None else round(self.score, 4)}


def split_key(name: str) -> tuple[str, str]:
    """`energy_lib.energy.x_weat_weights__mutmut_4` -> ("energy_lib.energy", "x_weat_weights")."""
    match = _KEY.match(name)
    if not match:
        raise MutationError(f"not a mutmut mutant name: {name!r}")
    return match["module"], match["function"]


def read_results(mutants: Path = MUTANTS) -> dict[str, int | None]:
    """Every mutant's exit code, from mutmut's per-file `.meta` records in `mutants`."""
    results: dict[str, int | None] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        try:
            results.update(json.loads(meta.read_text())["exit_code_by_key"])
        except (OSError, ValueError, KeyError) as exc:
            raise MutationError(f"{meta}: unreadable mutmut record ({exc}); delete mutants/ and rerun "
                                "`make mutation`") from None
    return results


def changed_lines(diff: str) -> str:
    """The removed and added lines of a unified diff (its identity for an equivalence note)."""
    return "\n".join(line.rstrip() for line in diff.splitlines()
                     if line[:1] in "+-" and not line.startswith(("+++", "---")))


def show(name: str) -> str:
    """The mutant's diff, as `mutmut show` prints it."""
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode:
        raise MutationError(f"mutmut show {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def load_equivalent(path: Path = EQUIVALENT) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        notes = json.loads(path.read_text())
    except ValueError as exc:
        raise MutationError(f"{path}: not JSON ({exc}); fix the file") from None
    for name, note in notes.items():
        if not isinstance(note, dict) or not note.get("change") or not note.get("why"):
            raise MutationError(f"{path}: entry {name!r} needs a 'change' (the mutant's changed lines) "
                                "and a 'why' (why no test can tell it from the original)")
    return notes


def score(results: dict[str, int | None], equivalent: dict[str, dict], show=show,
          scopes: dict[str, Scope] = SCOPES) -> dict[str, ModuleScore]:
    """Per-module score of mutmut's results; `show(name)` gives a surviving mutant's diff."""
    by_dotted = {scope.dotted: (label, scope) for label, scope in scopes.items()}
    table = {label: ModuleScore() for label in scopes}
    for name in sorted(results, key=_natural):
        module, function = split_key(name)
        if module not in by_dotted:
            continue
        label, scope = by_dotted[module]
        entry = table[label]
        if not scope.scores(function):
            entry.unscored += 1
            continue
        entry.mutants += 1
        code = results[name]
        if code in UNCHECKED:
            entry.unchecked += 1
        elif code in CAUGHT:
            if CAUGHT[code] == "timeout":
                entry.timeout += 1
            else:
                entry.killed += 1
        else:
            change = changed_lines(show(name))
            note = equivalent.get(name)
            if note is not None and changed_lines(note["change"]) == change:
                entry.equivalent += 1
                continue
            if note is not None:
                entry.stale.append(name)
            entry.survivors.append({"name": name, "status": UNCAUGHT.get(code, "suspicious"),
                                    "change": change})
    return table


def _natural(name: str):
    module, _, n = name.rpartition("__mutmut_")
    return module, int(n) if n.isdigit() else 0


def report(table: dict[str, ModuleScore], out=sys.stdout) -> None:
    print(f"{'module':30} {'mutants':>7} {'caught':>7} {'equiv':>6} {'surv':>5} {'unchk':>6} {'score':>7}",
          file=out)
    for label, entry in table.items():
        s = "-" if entry.score is None else f"{100 * entry.score:.1f} %"
        mark = "" if entry.score is None else ("  ok" if entry.score >= TARGET else "  < 90 %")
        print(f"{label:30} {entry.mutants:7d} {entry.caught:7d} {entry.equivalent:6d} "
              f"{len(entry.survivors):5d} {entry.unchecked:6d} {s:>7}{mark}", file=out)
    for label, entry in table.items():
        for name in entry.stale:
            print(f"stale equivalence note (the code changed; recheck it): {name}", file=out)


def record(table: dict[str, ModuleScore], path: Path = RECORD, now: str | None = None) -> dict:
    """Append a complete run's per-module score to the record (kept in git: the trend)."""
    try:
        existing = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as exc:
        raise MutationError(f"{path}: not JSON ({exc}); restore it with git checkout") from None
    history = existing.get("history", [])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "energy_lib", "tests"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    history.append({"date": now or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
                    "commit": commit, "uncommitted_changes": dirty, "tool": _tool_version(),
                    "modules": {label: entry.as_dict() for label, entry in table.items()}})
    survivors = existing.get("survivors", {})
    for label, entry in table.items():
        survivors[label] = entry.survivors
    data = {"about": "make mutation (tools/mutation.py): per-module mutation score, one entry per run with "
                     "the modules it checked completely; each module's survivors as of its latest run",
            "target": TARGET, "history": history, "survivors": survivors}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return data


def _tool_version() -> str:
    try:
        from importlib.metadata import version
        return f"mutmut {version('mutmut')}"
    except Exception:  # noqa: BLE001 - the version is a label only
        return "mutmut"


def mutant_selection(labels: list[str], results: dict[str, int | None],
                     scopes: dict[str, Scope] = SCOPES) -> list[str]:
    """What `mutmut run` is given for `--module`: the modules' unchecked mutants by name where mutmut
    has generated them (mutmut reruns every mutant it is named, so naming only these resumes), else a
    pattern for the whole module (its first run)."""
    selection = []
    for label in labels:
        dotted = scopes[label].dotted
        known = [name for name in results if split_key(name)[0] == dotted]
        if not known:
            selection.append(f"{dotted}.*")
        else:
            selection += sorted((n for n in known if results[n] in UNCHECKED), key=_natural)
    return selection


def run_mutmut(jobs: int, names: list[str] | None = None) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")   # torch threads + fork deadlock
    return subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *(names or [])],
                          cwd=ROOT, env=env).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="score what mutants/ holds; run nothing")
    parser.add_argument("--jobs", type=int, default=2, help="test processes at once (default 2)")
    parser.add_argument("--module", action="append", choices=list(SCOPES), default=[],
                        help="only these modules (repeatable; default: all)")
    parser.add_argument("--no-record", action="store_true", help="do not append to runs/mutation/score.json")
    args = parser.parse_args(argv)
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("error: mutmut is not installed; `make mutation` installs requirements-dev.txt into the "
              "virtual environment", file=sys.stderr)
        return 2
    try:
        if not args.report:
            if args.jobs < 1:
                raise MutationError(f"--jobs must be at least 1, got {args.jobs}")
            if args.module:
                names = mutant_selection(args.module, read_results() if MUTANTS.is_dir() else {})
                code = run_mutmut(args.jobs, names) if names else 0
            else:
                code = run_mutmut(args.jobs)
            if code not in (0, 1):       # mutmut exits 1 when mutants survive
                raise MutationError(f"mutmut run stopped (exit {code}); rerun `make mutation` to resume")
        if not MUTANTS.is_dir():
            raise MutationError("no mutants/ directory: run `make mutation` first")
        table = score(read_results(), load_equivalent())
        report(table)
        complete = {label: entry for label, entry in table.items() if entry.mutants and not entry.unchecked}
        if complete and not args.report and not args.no_record:
            record(complete)
            print(f"recorded {', '.join(complete)} in {RECORD.relative_to(ROOT)}")
        left = [label for label in table if label not in complete]
        if left:
            print(f"not checked yet: {', '.join(left)} (rerun `make mutation` to resume)")
    except MutationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun `make mutation` to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
