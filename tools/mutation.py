"""Mutation testing of the science and storage modules (`make mutation`): does the suite catch a wrong edit?

    PYTHONPATH=. python tools/mutation.py              # run mutmut (resumes where it stopped), then score
    PYTHONPATH=. python tools/mutation.py --report     # score what mutants/ holds now, run nothing
    PYTHONPATH=. python tools/mutation.py --jobs 1     # one test process at a time (default: 2)
    PYTHONPATH=. python tools/mutation.py --module energy --module losses   # these modules only
    PYTHONPATH=. python tools/mutation.py --module fileio --report --survivors   # what survived, as diffs
    PYTHONPATH=. python tools/mutation.py --module fileio --equivalent NAME --why "..."   # note one

mutmut (pinned in requirements-dev.txt) writes every plausible small wrong edit of a module (a flipped
comparison, a changed constant, a dropped argument...) and runs, for each, those of the module's
fast tests (`SCOPES` below) that execute the mutated function. A mutant no test fails on "survives".
Each module gets its own mutmut working folder, mutants/<module>/ (git-ignored), holding a generated
mutmut configuration and every result: a rerun tests what is not checked yet (an interrupted run
resumes), a changed function, and the survivors (the tests may have changed); caught stays caught.

The score of a module is caught / (mutants - equivalent - text): caught = a test failed or timed
out; equivalent = listed in tools/mutation_equivalent.json with why no test can tell it from the
original (the entry holds the mutant's changed lines, so it goes stale when the code under it
changes); text = the mutant changes only the words of prose strings (a sentence or an error message,
a string with a space in it; not an f-string's expressions, not a key or a name): counted and listed
apart, not in the target, since the words of a sentence are not the science. Mutants with no covering test count as survivors. For
lens.py and runs.py the score covers the parts issue 27 names (the lens's scoring; a run's identity
and the selection of runs); their other mutants are not run. Each run appends the modules it checked
completely to runs/mutation/score.json (the trend is in the repository). Target: >= 90 % per module.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import io
import json
import os
import re
import string
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from energy_lib import fileio  # noqa: E402

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
    """One scored module: its file, its fast tests and, where only part of it is scored, its
    functions (mutmut's mangled names: `x_<function>`, `xǁ<Class>ǁ<method>`)."""
    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    slow: tuple[str, ...] = ()      # tests of those files left out (pytest --deselect): a mutant only
                                    # they would catch counts as a survivor, so the score is a lower bound

    @property
    def dotted(self) -> str:
        return self.path[: -len(".py")].replace("/", ".")

    def scores(self, function: str) -> bool:
        return not self.functions or any(fnmatch.fnmatchcase(function, p) for p in self.functions)


def _nodes(path: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{path}::{name}" for name in names)


SCOPES: dict[str, Scope] = {
    "energy": Scope("energy_lib/energy.py", ("tests/test_energy.py",)),
    "losses": Scope("energy_lib/losses.py", ("tests/test_losses.py",)),
    "attacks": Scope("energy_lib/attacks.py", ("tests/test_attacks_exact.py", "tests/test_attacks.py"),
                     slow=_nodes("tests/test_attacks.py", (    # the real ResNet-18's facts: 2.5 min
                         "test_pgd_increases_the_cross_entropy", "test_trades_kl_attack_increases_the_kl",
                         "test_ce_and_kl_attacks_lower_and_margin_attacks_raise_the_marginal_energy",
                         "test_targeted_cross_entropy_overshoots_to_low_energy",
                         "test_targeted_pgd_reaches_its_target",
                         "test_cw_margin_with_zero_confidence_stops_pushing_once_fooled"))),
    "verdicts": Scope("energy_lib/verdicts.py", ("tests/test_verdicts_shifts_exact.py", "tests/test_verdicts_training_exact.py",
                                                 "tests/test_verdicts_comparisons_exact.py", "tests/test_verdicts.py",
                                                 "tests/test_verdicts_spread.py", "tests/test_regime.py")),
    "metrics.robust": Scope("energy_lib/metrics/robust.py", ("tests/test_metrics_robust_exact.py",
                                                             "tests/test_metrics_robust.py"),
                            slow=_nodes("tests/test_metrics_robust.py", (   # a trained SAT net: 1-2 min
                                "test_record_is_complete_and_consistent",
                                "test_record_holds_the_per_image_outcomes_it_computed",
                                "test_complete_record_is_reused_not_recomputed",
                                "test_interrupted_evaluation_resumes_to_the_uninterrupted_record",
                                "test_other_settings_give_another_record",
                                "test_complete_records_are_published_and_read_back_for_the_book"))),
    "metrics.fidelity": Scope("energy_lib/metrics/fidelity.py", ("tests/test_fidelity_exact.py", "tests/test_fidelity.py"),
                              slow=_nodes("tests/test_fidelity.py", (   # Inception on real CIFAR-10 images: 90 s
                                  "test_real_cifar_fid_is_far_below_noise_fid",))),
    "lens": Scope("energy_lib/lens.py", ("tests/test_lens_exact.py", "tests/test_lens.py"), (
        "x_detection_scores", "x_delta_distribution", "x_attack_summary", "x_energies_frame",
        "x_smoothness_verdict", "x_smoothness_over_robust"),
                  slow=_nodes("tests/test_lens.py", (   # a real model, a trained run or the command line: 4-35 s
                      "test_robust_run_has_a_much_tighter_delta_energy", "test_report_renders_to_html_for_a_run",
                      "test_standard_model_through_the_lens", "test_cli_prints_a_summary_and_reuses_the_record",
                      "test_cli_errors_are_one_line_exit_2", "test_robustbench_model_loads_offline_from_its_folder"))),
    "tables": Scope("energy_lib/tables.py", ("tests/test_tables_exact.py", "tests/test_tables.py")),
    "runs": Scope("energy_lib/runs.py", ("tests/test_runs_store.py", "tests/test_runs.py"), (
        "x_identity", "x_config_hash", "x_run_dir", "x__difference", "xǁRunǁstored_config",
        "xǁRunǁcheck_config", "xǁRunǁkept_epoch", "xǁRunǁdone", "x_finished_runs", "x_selected_metrics",
        "x_robust_runs", "x_reference_run", "x_is_reference", "x_training_images")),
    "fileio": Scope("energy_lib/fileio.py", ("tests/test_fileio_exact.py", "tests/test_fileio.py", "tests/test_faults.py"),
                    slow=_nodes("tests/test_faults.py", (    # training or the command line: 1-45 s each
                        "test_killed_in_checkpoint_writes_locked_and_resumed_equals_uninterrupted",
                        "test_ctrl_c_inside_a_checkpoint_write_exits_130_naming_the_epoch_kept",
                        "test_ctrl_c_before_the_first_epoch_is_kept_says_so", "test_a_malformed_fault_hook_is_one_line",
                        "test_a_read_only_run_store_is_one_line", "test_a_full_disk_is_one_line_and_leaves_no_partial_file",
                        "test_a_non_finite_loss_on_the_command_line_says_nothing_was_kept",
                        "test_a_path_traversing_lens_name_on_the_command_line_is_one_line",
                        "test_an_empty_metrics_jsonl_of_a_finished_run_is_rebuilt_for_train_and_selected_metrics",
                        "test_a_changed_byte_in_last_pt_is_never_resumed_and_the_advice_works",
                        "test_a_checkpoint_of_another_config_is_refused", "test_the_advice_for_a_corrupt_checkpoint_works",
                        "test_a_payload_in_last_pt_never_runs_on_resume_nor_on_rebuilding_config_json",
                        "test_non_finite_weights_with_a_finite_loss_never_reach_a_checkpoint",
                        "test_a_corrupt_data_file_on_the_command_line_is_one_line_and_creates_nothing",
                        "test_a_non_finite_tracked_metric_at_epoch_1_keeps_nothing_and_says_so",
                        "test_a_damaged_done_manifest_names_itself_and_its_advice_works",
                        "test_a_lens_record_of_another_model_is_not_adopted"))),
}
# what the tests read besides the code and the tests (mutmut copies them into its working copy)
# (folders first: mutmut copies a file only into a folder that exists)
ALSO_COPY = ("energy_lib/", "tools/", "book/", "runs/reference/", "runs/bench/", "runs/sizing/", "Makefile",
             "requirements.txt", "requirements-nodeps.txt", "runs/README.md", "runs/paper_reference.json", "_toc.yml",
             "_config.yml")
LINKED = ("energy_lib", "tests", "tools", "book", "runs", "Makefile", "requirements.txt", "requirements-nodeps.txt",
          "_toc.yml", "_config.yml")
TIMEOUT_CONSTANT = 20.0    # seconds on top of 15x a test's time: a machine busy training must not fake "timeouts"


_KEY = re.compile(r"^(?P<module>.+?)\.(?P<function>xǁ.+|x_.+)__mutmut_(?P<n>\d+)$")


class MutationError(Exception):
    """A one-line problem with the mutation run or its files."""


@dataclass
class ModuleScore:
    mutants: int = 0
    killed: int = 0
    timeout: int = 0
    equivalent: int = 0
    text: int = 0                                       # survivors that change only a string's text
    unchecked: int = 0
    survivors: list = field(default_factory=list)      # [{"name", "status", "change"}]
    text_survivors: list = field(default_factory=list)
    stale: list = field(default_factory=list)          # equivalence notes whose code changed
    unscored: int = 0                                   # mutants outside the scored functions

    @property
    def caught(self) -> int:
        return self.killed + self.timeout

    @property
    def score(self) -> float | None:
        denominator = self.mutants - self.equivalent - self.text - self.unchecked
        return None if denominator <= 0 else self.caught / denominator

    def as_dict(self) -> dict:
        return {"mutants": self.mutants, "killed": self.killed, "timeout": self.timeout,
                "equivalent": self.equivalent, "text_only": self.text, "survived": len(self.survivors),
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


def _code_of(line: str) -> str:
    """A line with the text of its prose strings blanked: a string with a space in it (a sentence, a
    message; an f-string keeps its expressions). A string without one (a key, a name, a mode) is code."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.STRING and not re.search(r"\s", tok.string):
                out.append(tok.string)
            elif tok.type == tokenize.STRING:
                prefix = tok.string[: len(tok.string) - len(tok.string.lstrip("rRbBuUfF"))]
                if "f" in prefix.lower():
                    body = tok.string[len(prefix):].strip("'\"")
                    try:
                        fields = [f for _, f, spec, conv in string.Formatter().parse(body) if f is not None]
                    except ValueError:
                        return line
                    out.append("f{" + "|".join(fields) + "}")
                else:
                    out.append('""')
            elif tok.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER,
                                  tokenize.INDENT, tokenize.DEDENT):
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass            # a line of a longer statement: what was read so far
    return " ".join(out)


def text_only(change: str) -> bool:
    """Whether a mutant's change (its removed and added lines) alters only the text of strings."""
    removed = [line[1:] for line in change.splitlines() if line.startswith("-")]
    added = [line[1:] for line in change.splitlines() if line.startswith("+")]
    if not removed or len(removed) != len(added):
        return False
    return all(_code_of(a.strip()) == _code_of(b.strip()) for a, b in zip(removed, added))


def workdir(label: str) -> Path:
    return MUTANTS / re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
names = json.load(sys.stdin)
print(json.dumps({n: get_diff_for_mutant(n, path=sys.argv[1]) for n in names}))
"""


def diffs(names: list[str], folder: Path, path: str) -> dict[str, str]:
    """Many mutants' diffs from one process (mutmut's `show`, without a process per mutant)."""
    if not names:
        return {}
    done = subprocess.run([sys.executable, "-c", _DIFFS, path], cwd=folder, input=json.dumps(names),
                          capture_output=True, text=True)
    if done.returncode:
        raise MutationError(f"reading the mutants' diffs in {folder} failed: "
                            f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout)


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


def score(results: dict[str, int | None], equivalent: dict[str, dict], show,
          scopes: dict[str, Scope] = SCOPES) -> dict[str, ModuleScore]:
    """Per-module score of mutmut's results; `show(name)` gives an uncaught mutant's diff (`diffs`)."""
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
            survivor = {"name": name, "status": UNCAUGHT.get(code, "suspicious"), "change": change}
            if text_only(change):
                entry.text += 1
                entry.text_survivors.append(survivor)
            else:
                entry.survivors.append(survivor)
    return table


def _natural(name: str):
    module, _, n = name.rpartition("__mutmut_")
    return module, int(n) if n.isdigit() else 0


def report(table: dict[str, ModuleScore], out=sys.stdout) -> None:
    print(f"{'module':18} {'mutants':>7} {'caught':>7} {'equiv':>6} {'text':>5} {'surv':>5} {'unchk':>6} "
          f"{'score':>7}", file=out)
    for label, entry in table.items():
        s = "-" if entry.score is None else f"{100 * entry.score:.1f} %"
        mark = "" if entry.score is None else ("  ok" if entry.score >= TARGET else "  < 90 %")
        print(f"{label:18} {entry.mutants:7d} {entry.caught:7d} {entry.equivalent:6d} {entry.text:5d} "
              f"{len(entry.survivors):5d} {entry.unchecked:6d} {s:>7}{mark}", file=out)
    for label, entry in table.items():
        for name in entry.stale:
            print(f"stale equivalence note (the code changed; recheck it): {name}", file=out)


def list_survivors(table: dict[str, ModuleScore], out=sys.stdout) -> int:
    """Every survivor that counts against a score (not the text-only ones): its name, how it survived and
    its changed lines, the material for a new test or an equivalence note. Returns how many."""
    count = 0
    for label, entry in table.items():
        for survivor in entry.survivors:
            stale = "; its equivalence note is stale" if survivor["name"] in entry.stale else ""
            print(f"{label}: {survivor['name']} ({survivor['status']}{stale})", file=out)
            print("\n".join("    " + line for line in survivor["change"].splitlines()), file=out)
            count += 1
    return count


def add_equivalent(name: str, why: str, table: dict[str, ModuleScore], path: Path = EQUIVALENT) -> dict:
    """Write the equivalence note of survivor `name` (its current changed lines and `why` no test can tell
    it from the original) into `path`. Only a survivor of this run gets one, and an existing note is
    replaced only when it is stale (the code under it changed): nothing is overwritten unread."""
    why = " ".join(why.split())
    if len(why) < 20:
        raise MutationError(f"--why for {name} says too little ({why!r}): say why no test can tell the mutant "
                            "from the original (at least 20 characters)")
    survivor = next((s for entry in table.values() for s in entry.survivors if s["name"] == name), None)
    if survivor is None:
        raise MutationError(f"{name} is not a survivor of the modules scored now: see `--survivors` "
                            "(and pass --module for its module)")
    notes = load_equivalent(path)
    stale = any(name in entry.stale for entry in table.values())
    if name in notes and not stale:
        raise MutationError(f"{path.name} already has a note for {name}; edit the file to change it")
    notes[name] = {"change": survivor["change"], "why": why}
    fileio.atomic_write_text(path, json.dumps(notes, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return notes[name]


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
    text = existing.get("text_only_survivors", {})
    for label, entry in table.items():
        survivors[label] = entry.survivors
        text[label] = [s["name"] for s in entry.text_survivors]
    data = {"about": "make mutation (tools/mutation.py): per-module mutation score, one entry per run with "
                     "the modules it checked completely; each module's survivors as of its latest run",
            "target": TARGET, "history": history, "survivors": survivors, "text_only_survivors": text}
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def _tool_version() -> str:
    try:
        from importlib.metadata import version
        return f"mutmut {version('mutmut')}"
    except Exception:  # noqa: BLE001 - the version is a label only
        return "mutmut"


def _deselect(nodes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(arg for node in nodes for arg in ("--deselect", node))


def prepare(label: str, scope: Scope) -> Path:
    """The module's mutmut working folder: links to the checkout and its own mutmut configuration."""
    folder = workdir(label)
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(ROOT / name, folder))
    # the tests find ../shared (PAPER.md, the offline data) beside their checkout; mutmut's copy of it
    # is folder/mutants, so ../shared is folder/shared
    shared = folder / "shared"
    if (ROOT.parent / "shared").is_dir() and not shared.is_symlink():
        shared.symlink_to(ROOT.parent / "shared")
    toml = lambda values: "[" + ", ".join(json.dumps(v) for v in values) + "]"   # noqa: E731
    config = (f"# written by tools/mutation.py for {label}; do not edit\n[tool.mutmut]\n"
              f"source_paths = [\"energy_lib/\"]\nonly_mutate = {toml([scope.path])}\n"
              f"pytest_add_cli_args_test_selection = {toml(scope.tests + _deselect(scope.slow))}\n"
              f"pytest_add_cli_args = {toml(['-p', 'no:cacheprovider', '-q'])}\n"
              f"timeout_constant = {TIMEOUT_CONSTANT}\nalso_copy = {toml(ALSO_COPY)}\n\n"
              f"[tool.pytest.ini_options]\npythonpath = [\".\"]\ntestpaths = [\"tests\"]\n")
    path = folder / "pyproject.toml"
    if not path.exists() or path.read_text() != config:
        path.write_text(config)
    return folder


def mutant_selection(scope: Scope, results: dict[str, int | None]) -> list[str] | None:
    """What `mutmut run` is given. The first time: None (every mutant) for a module scored whole, the
    scored functions' mutants by pattern for a partly scored one. Later: by name, the mutants not yet
    checked and those no test caught (the tests may have changed since); mutmut reruns every mutant it
    is named and keeps the other results, so a run resumes and retests only what can have changed."""
    if not results:
        return None if not scope.functions else [f"{scope.dotted}.{f}__mutmut_*" for f in scope.functions]
    def ours(name: str) -> bool:
        module, function = split_key(name)
        return module == scope.dotted and scope.scores(function)
    return sorted((n for n, code in results.items() if code not in CAUGHT and ours(n)), key=_natural)


def run_mutmut(folder: Path, jobs: int, names: list[str] | None = None) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")   # torch threads + fork deadlock
    return subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *(names or [])],
                          cwd=folder, env=env).returncode


def check_module(label: str, scope: Scope, equivalent: dict, *, jobs: int, run: bool) -> ModuleScore:
    # a report only reads: rewriting the mutmut configuration (its test selection) under a run in
    # progress makes that run's next invocation reset every result of the module
    folder = prepare(label, scope) if run else workdir(label)
    results = read_results(folder / "mutants") if (folder / "mutants").is_dir() else {}
    if run:
        names, tried = mutant_selection(scope, results), set()
        while names != []:
            print(f"[mutation] {label}: mutmut in {os.path.relpath(folder, ROOT)}", flush=True)
            code = run_mutmut(folder, jobs, names)
            if code != 0:
                raise MutationError(f"mutmut run stopped for {label} (exit {code}; its output above says why); "
                                    "rerun `make mutation` to resume")
            results = read_results(folder / "mutants")
            if names is None or any("*" in n for n in names):
                break    # every mutant (of the scored part) was named: nothing can be left
            # mutmut writes the mutants of a changed function only when it runs: those are new names,
            # unchecked, that this run could not name yet; run them now (each name once)
            tried.update(names)
            names = [n for n in mutant_selection(scope, results) if n not in tried]
    uncaught = [n for n, code in results.items() if code not in CAUGHT and code not in UNCHECKED]
    changes = diffs(uncaught, folder, scope.path)
    return score(results, equivalent, show=changes.__getitem__, scopes={label: scope})[label]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="score what mutants/ holds; run nothing")
    parser.add_argument("--jobs", type=int, default=2, help="test processes at once (default 2)")
    parser.add_argument("--module", action="append", choices=list(SCOPES), default=[],
                        help="only these modules (repeatable; default: all)")
    parser.add_argument("--no-record", action="store_true", help="do not append to runs/mutation/score.json")
    parser.add_argument("--survivors", action="store_true", help="list each survivor's changed lines")
    parser.add_argument("--equivalent", metavar="MUTANT", help="add MUTANT (a survivor's name) to "
                        "tools/mutation_equivalent.json with --why; implies --report")
    parser.add_argument("--why", default="", help="with --equivalent: why no test can tell it from the original")
    args = parser.parse_args(argv)
    if args.equivalent:
        args.report = True
    elif args.why:
        parser.error("--why goes with --equivalent MUTANT")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("error: mutmut is not installed; `make mutation` installs requirements-dev.txt into the "
              "virtual environment", file=sys.stderr)
        return 2
    try:
        if args.jobs < 1:
            raise MutationError(f"--jobs must be at least 1, got {args.jobs}")
        equivalent = load_equivalent()
        table = {label: check_module(label, SCOPES[label], equivalent, jobs=args.jobs, run=not args.report)
                 for label in (args.module or SCOPES)}
        report(table)
        if args.survivors:
            list_survivors(table)
        if args.equivalent:
            add_equivalent(args.equivalent, args.why, table)
            print(f"noted {args.equivalent} as equivalent in {EQUIVALENT.relative_to(ROOT)}")
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
