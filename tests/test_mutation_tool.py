"""tools/mutation.py's scoring of mutmut's results, on planted result files with a known answer
(mutmut itself is a developer's tool and is not needed here)."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
mutation = importlib.util.module_from_spec(_spec)
sys.modules["mutation_tool"] = mutation    # dataclasses look their module up there
_spec.loader.exec_module(mutation)

SCOPES = {
    "energy": mutation.Scope("energy_lib/energy.py", ("tests/test_energy.py",)),
    "runs (part)": mutation.Scope("energy_lib/runs.py", ("tests/test_runs.py",), ("x_identity", "xǁRunǁkept_epoch")),
}
DIFFS = {
    "energy_lib.energy.x_energy_summary__mutmut_8":
        "--- a\n+++ b\n-    std(unbiased=False)\n+    std(unbiased=True)\n",
    "energy_lib.energy.x_trades_kl_decomposition__mutmut_12":
        "--- a\n+++ b\n-    F.log_softmax(nat, dim=1)\n+    F.log_softmax(nat, )\n",
    "energy_lib.energy.x_weat_weights__mutmut_4":
        "--- a\n+++ b\n-    x if a else b\n+    x if a or True else b\n",
    "energy_lib.runs.xǁRunǁkept_epoch__mutmut_2": "-    return a\n+    return b\n",
    "energy_lib.energy.x__check_labels__mutmut_8":
        '-    raise ValueError(f"labels must have shape ({n},)")\n+    raise ValueError(f"XXlabels must have shape ({n},)XX")\n',
}


def _plant(tmp_path):
    mutants = tmp_path / "mutants" / "energy_lib"
    mutants.mkdir(parents=True)
    (mutants / "energy.py.meta").write_text(json.dumps({"exit_code_by_key": {
        "energy_lib.energy.x_marginal_energy__mutmut_1": 1,          # killed
        "energy_lib.energy.x_marginal_energy__mutmut_2": 36,         # timeout: caught
        "energy_lib.energy.x_energy_summary__mutmut_8": 0,           # survived
        "energy_lib.energy.x_trades_kl_decomposition__mutmut_12": 0,  # equivalent (note matches)
        "energy_lib.energy.x_weat_weights__mutmut_4": 0,             # note is stale: a survivor
        "energy_lib.energy.x_joint_energy__mutmut_3": None,          # not checked yet
        "energy_lib.energy.x__check_labels__mutmut_8": 0,            # survived, but changes only a message's text
    }}))
    (mutants / "runs.py.meta").write_text(json.dumps({"exit_code_by_key": {
        "energy_lib.runs.x_identity__mutmut_1": 1,
        "energy_lib.runs.xǁRunǁkept_epoch__mutmut_2": 33,           # no covering test: a survivor
        "energy_lib.runs.x_train_or_load__mutmut_1": 0,             # outside the scored part
    }}))
    equivalent = {
        "energy_lib.energy.x_trades_kl_decomposition__mutmut_12": {
            "change": "-    F.log_softmax(nat, dim=1)\n+    F.log_softmax(nat, )", "why": "dim=1 is the default"},
        "energy_lib.energy.x_weat_weights__mutmut_4": {
            "change": "-    y if a else b\n+    y if a or True else b", "why": "written for older code"},
    }
    return tmp_path / "mutants", equivalent


def test_score_counts_every_outcome_and_keeps_only_fresh_equivalence_notes(tmp_path):
    mutants, equivalent = _plant(tmp_path)
    table = mutation.score(mutation.read_results(mutants), equivalent, show=DIFFS.__getitem__, scopes=SCOPES)
    energy, runs = table["energy"], table["runs (part)"]
    assert (energy.mutants, energy.killed, energy.timeout, energy.equivalent, energy.unchecked) == (7, 1, 1, 1, 1)
    assert energy.text == 1 and [s["name"] for s in energy.text_survivors] == [
        "energy_lib.energy.x__check_labels__mutmut_8"]
    assert [s["name"] for s in energy.survivors] == ["energy_lib.energy.x_energy_summary__mutmut_8",
                                                      "energy_lib.energy.x_weat_weights__mutmut_4"]
    assert energy.stale == ["energy_lib.energy.x_weat_weights__mutmut_4"]
    assert energy.score == pytest.approx(2 / 4)          # caught / (mutants - equivalent - text - unchecked)
    assert energy.survivors[0]["change"] == "-    std(unbiased=False)\n+    std(unbiased=True)"
    assert (runs.mutants, runs.killed, runs.unscored, runs.score) == (2, 1, 1, 0.5)
    assert runs.survivors[0]["status"] == "no tests"


def test_split_key_reads_functions_and_methods():
    assert mutation.split_key("energy_lib.energy.x_weat_weights__mutmut_4") == ("energy_lib.energy",
                                                                              "x_weat_weights")
    assert mutation.split_key("energy_lib.fileio.xǁRunLockǁ__init____mutmut_11") == (
        "energy_lib.fileio", "xǁRunLockǁ__init__")
    with pytest.raises(mutation.MutationError, match="not a mutmut mutant name"):
        mutation.split_key("energy_lib.energy.weat_weights")


def test_record_appends_a_complete_run_to_the_history(tmp_path):
    mutants, equivalent = _plant(tmp_path)
    table = mutation.score(mutation.read_results(mutants), equivalent, show=DIFFS.__getitem__, scopes=SCOPES)
    path = tmp_path / "score.json"
    mutation.record(table, path, now="2026-12-06T12:00Z")
    data = mutation.record(table, path, now="2026-12-06T13:00Z")
    assert [h["date"] for h in data["history"]] == ["2026-12-06T12:00Z", "2026-12-06T13:00Z"]
    assert data["history"][-1]["modules"]["energy"] == {
        "mutants": 7, "killed": 1, "timeout": 1, "equivalent": 1, "text_only": 1, "survived": 2,
        "not_checked": 1, "outside_scope": 0, "score": 0.5}
    assert json.loads(path.read_text()) == data


def test_bad_files_are_one_line_errors(tmp_path):
    (tmp_path / "m" / "energy_lib").mkdir(parents=True)
    (tmp_path / "m" / "energy_lib" / "energy.py.meta").write_text("{")
    with pytest.raises(mutation.MutationError, match="unreadable mutmut record.*delete mutants/"):
        mutation.read_results(tmp_path / "m")
    notes = tmp_path / "eq.json"
    notes.write_text(json.dumps({"energy_lib.energy.x_a__mutmut_1": {"change": "-a\n+b"}}))
    with pytest.raises(mutation.MutationError, match="needs a 'change'.*and a 'why'"):
        mutation.load_equivalent(notes)


def test_the_scopes_name_modules_and_functions_that_exist():
    """A renamed function or test would silently drop out of the score: every scope names real code and tests."""
    import ast

    for label, scope in mutation.SCOPES.items():
        tree = ast.parse((ROOT / scope.path).read_text())
        names = {f"x_{n.name}" for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            names |= {f"xǁ{cls.name}ǁ{m.name}" for m in cls.body if isinstance(m, ast.FunctionDef)}
        for pattern in scope.functions:
            assert any(__import__("fnmatch").fnmatchcase(n, pattern) for n in names), (label, pattern)
        for test in scope.tests + scope.slow:         # a file, or one test of a file by its node id
            path, _, name = test.partition("::")
            assert (ROOT / path).is_file(), (label, test)
            assert test not in scope.slow or path in scope.tests, (label, test)   # a slow test left out of a file run
            if name:
                tests = {n.name for n in ast.parse((ROOT / path).read_text()).body if isinstance(n, ast.FunctionDef)}
                assert name in tests, (label, test)


def test_a_rerun_names_the_unchecked_and_uncaught_mutants_of_the_scored_part(tmp_path):
    mutants, _ = _plant(tmp_path)
    results = mutation.read_results(mutants)
    assert mutation.mutant_selection(SCOPES["energy"], {}) is None                # first run: everything
    assert mutation.mutant_selection(SCOPES["energy"], results) == [
        "energy_lib.energy.x__check_labels__mutmut_8", "energy_lib.energy.x_energy_summary__mutmut_8",
        "energy_lib.energy.x_joint_energy__mutmut_3", "energy_lib.energy.x_trades_kl_decomposition__mutmut_12",
        "energy_lib.energy.x_weat_weights__mutmut_4"]                             # never the caught ones
    part = SCOPES["runs (part)"]
    assert mutation.mutant_selection(part, {}) == ["energy_lib.runs.x_identity__mutmut_*",
                                                   "energy_lib.runs.xǁRunǁkept_epoch__mutmut_*"]
    assert mutation.mutant_selection(part, results) == ["energy_lib.runs.xǁRunǁkept_epoch__mutmut_2"]
    results["energy_lib.runs.x_train_or_load__mutmut_2"] = None                 # outside the scored part
    assert "energy_lib.runs.x_train_or_load__mutmut_2" not in mutation.mutant_selection(part, results)


@pytest.mark.parametrize("change, text", [
    ('-    msg = "the run diverged"\n+    msg = "XXthe run diverged XX"', True),
    ('-    s = f"ends at {final:.1%} on {n} images"\n+    s = f"ENDS AT {final:.1%} ON {n} IMAGES"', True),
    ('-    s = f"{tuple(a.shape)} and {b}"\n+    s = f"{tuple(None)} and {b}"', False),   # an f-string's expression
    ('-    out = {"std": v}\n+    out = {"XXstdXX": v}', False),       # a key is code
    ('-    mode = "eval"\n+    mode = "EVAL"', False),
    ('-    return a > b\n+    return a >= b', False),
    ('-    x = F.log_softmax(z, dim=1)\n+    x = F.log_softmax(z, )', False),
    ('-        "tracking",\n+        None,', False),
])
def test_a_text_only_mutant_changes_nothing_but_string_text(change, text):
    assert mutation.text_only(change) is text


def test_survivors_are_listed_with_their_changes_and_noted_as_equivalent_only_when_asked_right(tmp_path):
    mutants, equivalent = _plant(tmp_path)
    table = mutation.score(mutation.read_results(mutants), equivalent, show=DIFFS.__getitem__, scopes=SCOPES)
    import io
    out = io.StringIO()
    assert mutation.list_survivors(table, out) == 3          # text-only survivors are not listed
    assert out.getvalue().splitlines() == [
        "energy: energy_lib.energy.x_energy_summary__mutmut_8 (survived)",
        "    -    std(unbiased=False)", "    +    std(unbiased=True)",
        "energy: energy_lib.energy.x_weat_weights__mutmut_4 (survived; its equivalence note is stale)",
        "    -    x if a else b", "    +    x if a or True else b",
        "runs (part): energy_lib.runs.xǁRunǁkept_epoch__mutmut_2 (no tests)",
        "    -    return a", "    +    return b"]
    notes = tmp_path / "eq.json"
    notes.write_text(json.dumps(equivalent, indent=1, sort_keys=True) + "\n")
    why = "unbiased changes std by sqrt(n/(n-1)) and every caller divides by std"
    written = mutation.add_equivalent("energy_lib.energy.x_energy_summary__mutmut_8", why, table, notes)
    assert written == {"change": "-    std(unbiased=False)\n+    std(unbiased=True)", "why": why}
    stored = json.loads(notes.read_text())
    assert stored["energy_lib.energy.x_energy_summary__mutmut_8"] == written
    assert list(stored) == sorted(stored) and len(stored) == 3
    # the note now matches: a rescore counts the mutant as equivalent
    rescored = mutation.score(mutation.read_results(mutants), mutation.load_equivalent(notes),
                              show=DIFFS.__getitem__, scopes=SCOPES)["energy"]
    assert rescored.equivalent == 2 and len(rescored.survivors) == 1
    # a stale note is replaced with the current change; a fresh one is never overwritten
    mutation.add_equivalent("energy_lib.energy.x_weat_weights__mutmut_4", why, table, notes)
    assert json.loads(notes.read_text())["energy_lib.energy.x_weat_weights__mutmut_4"]["change"] == (
        "-    x if a else b\n+    x if a or True else b")
    with pytest.raises(mutation.MutationError, match="already has a note for .*x_energy_summary__mutmut_8"):
        mutation.add_equivalent("energy_lib.energy.x_energy_summary__mutmut_8", why, table, notes)
    with pytest.raises(mutation.MutationError, match="not a survivor of the modules scored now"):
        mutation.add_equivalent("energy_lib.energy.x_marginal_energy__mutmut_1", why, table, notes)  # killed
    with pytest.raises(mutation.MutationError, match="says too little"):
        mutation.add_equivalent("energy_lib.runs.xǁRunǁkept_epoch__mutmut_2", "same", table, notes)
    assert len(json.loads(notes.read_text())) == 3


def test_mutants_that_appear_during_a_rerun_are_checked_in_the_same_run(tmp_path, monkeypatch):
    """A changed function gets its mutants only when mutmut regenerates the module, so the first rerun
    cannot name them: check_module runs again for those (once each), and never loops on a survivor."""
    meta = tmp_path / "mutants" / "energy_lib" / "energy.py.meta"
    meta.parent.mkdir(parents=True)
    write = lambda codes: meta.write_text(json.dumps({"exit_code_by_key": codes}))   # noqa: E731
    write({"energy_lib.energy.x_marginal_energy__mutmut_1": 1, "energy_lib.energy.x_joint_energy__mutmut_1": 0})
    calls = []

    def fake_mutmut(folder, jobs, names):
        calls.append(list(names))
        if len(calls) == 1:   # regenerated: the changed function's two new mutants appear, unchecked
            write({"energy_lib.energy.x_marginal_energy__mutmut_1": 1, "energy_lib.energy.x_joint_energy__mutmut_1": 0,
                   "energy_lib.energy.x_new__mutmut_1": None, "energy_lib.energy.x_new__mutmut_2": None})
        else:
            write({"energy_lib.energy.x_marginal_energy__mutmut_1": 1, "energy_lib.energy.x_joint_energy__mutmut_1": 0,
                   "energy_lib.energy.x_new__mutmut_1": 1, "energy_lib.energy.x_new__mutmut_2": 0})
        return 0

    monkeypatch.setattr(mutation, "prepare", lambda label, scope: tmp_path)
    monkeypatch.setattr(mutation, "run_mutmut", fake_mutmut)
    monkeypatch.setattr(mutation, "diffs", lambda names, folder, path: {n: "-    a\n+    b" for n in names})
    entry = mutation.check_module("energy", SCOPES["energy"], {}, jobs=1, run=True)
    assert calls == [["energy_lib.energy.x_joint_energy__mutmut_1"],
                     ["energy_lib.energy.x_new__mutmut_1", "energy_lib.energy.x_new__mutmut_2"]]
    assert (entry.mutants, entry.unchecked, entry.caught, len(entry.survivors)) == (4, 0, 2, 2)


def test_a_report_never_rewrites_the_mutmut_configuration(tmp_path, monkeypatch):
    """A report during a run must not touch the run's pyproject.toml: mutmut resets every result of a
    module whose test selection changed (a report with an edited SCOPES did that to verdicts' run)."""
    folder = tmp_path / "energy"
    (folder / "mutants" / "energy_lib").mkdir(parents=True)
    (folder / "mutants" / "energy_lib" / "energy.py.meta").write_text(json.dumps({"exit_code_by_key": {
        "energy_lib.energy.x_marginal_energy__mutmut_1": 1}}))
    (folder / "pyproject.toml").write_text("# the run's own configuration\n")
    monkeypatch.setattr(mutation, "MUTANTS", tmp_path)
    entry = mutation.check_module("energy", SCOPES["energy"], {}, jobs=1, run=False)
    assert (entry.mutants, entry.caught) == (1, 1)
    assert (folder / "pyproject.toml").read_text() == "# the run's own configuration\n"
    assert sorted(p.name for p in folder.iterdir()) == ["mutants", "pyproject.toml"]   # no links made either
