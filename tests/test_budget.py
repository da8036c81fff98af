"""The book's time budget records (energy_lib.budget, `tools/book.py record-time`)."""
import json
import subprocess
import sys

import pytest

from energy_lib import budget, provenance

MACHINE = {"cpus": 2, "cpu_model": "x", "torch_threads": 2, "cuda": False}   # an older record's keys


def execution(**seconds):
    return {f"book/{name}.ipynb": {"status": "ok", "profile": "default", "seconds": s, "commit": "c" * 40,
                                   "dirty": False} for name, s in seconds.items()}


def test_a_complete_build_is_judged_against_its_budget():
    ex = execution(a=600.0, b=1500.0)
    fresh = budget.make_record(ex, "fresh", 39 * 60, "2026-12-02T10:00:00Z", MACHINE,
                               chapters=["book/a.ipynb", "book/b.ipynb"])
    assert fresh["within_budget"] and fresh["budget_minutes"] == 40 and fresh["profile"] == "default"
    assert fresh["git"] == {"commit": "c" * 40, "dirty": False}   # the chapters' own commit
    assert not budget.make_record(ex, "fresh", 41 * 60, "2026-12-02T10:00:00Z", MACHINE)["within_budget"]
    quick = execution(a=100.0, b=150.0)
    assert not budget.make_record(quick, "rebuild", 5 * 60 + 1, "2026-12-02T10:00:00Z", MACHINE)["within_budget"]
    assert budget.make_record(quick, "rebuild", 5 * 60, "2026-12-02T10:00:00Z", MACHINE)["within_budget"]
    row = budget.table([fresh]).iloc[0]
    assert row["minutes"] == 39.0 and row["slowest chapter"] == "b (25.0 min)" and row["cpus"] == 2
    assert budget.chapter_table([fresh]).loc["a"].item() == 10.0
    today = budget.make_record(ex, "fresh", 39 * 60, "2026-12-02T10:00:00Z", {**MACHINE, "cpus": 3, "cuda": None})
    assert list(budget.table([fresh, today])["cpus"]) == [2, 3]


@pytest.mark.parametrize("change,message", [
    (lambda ex: ex["book/a.ipynb"].update(status="failed"), "not executed successfully: book/a.ipynb"),
    (lambda ex: ex["book/a.ipynb"].update(profile="smoke"), "profile.*smoke"),
    (lambda ex: [e.update(profile="smoke") for e in ex.values()], "budget is the `default` profile's"),
    (lambda ex: ex["book/a.ipynb"].update(commit="d" * 40), "different commits"),
    (lambda ex: ex.pop("book/b.ipynb"), "missing: book/b.ipynb"),
    (lambda ex: ex.update({"book/z.ipynb": dict(ex["book/a.ipynb"])}), "not in the book: book/z.ipynb"),
    (lambda ex: ex["book/a.ipynb"].update(seconds=61.0), "less than the chapters' own"),
    (lambda ex: ex.clear(), "lists no chapter"),
])
def test_an_incomplete_or_other_build_is_never_recorded(change, message):
    ex = execution(a=1.0, b=2.0)
    change(ex)
    with pytest.raises(budget.BudgetError, match=message):
        budget.make_record(ex, "fresh", 60, "2026-12-02T10:00:00Z", MACHINE, chapters=["book/a.ipynb", "book/b.ipynb"])
    with pytest.raises(budget.BudgetError, match="kind='slow'"):
        budget.make_record(execution(a=1.0), "slow", 60, "2026-12-02T10:00:00Z", MACHINE)


def test_records_round_trip_and_are_never_overwritten(tmp_path):
    early = budget.make_record(execution(a=1.0), "rebuild", 60, "2026-12-02T10:00:00Z", MACHINE)
    late = budget.make_record(execution(a=1.0), "fresh", 60, "2026-12-02T11:00:00Z", MACHINE)
    budget.save(late, tmp_path)
    path = budget.save(early, tmp_path)
    assert [r["kind"] for r in budget.load(tmp_path)] == ["rebuild", "fresh"]   # by time, not file name
    newer = budget.make_record(execution(a=1.0), "fresh", 50, "2026-12-02T12:00:00Z", MACHINE)
    records = [*budget.load(tmp_path)[:1], newer, *budget.load(tmp_path)[1:]]   # neither first nor last
    assert budget.latest("fresh", records) is newer and budget.latest("rebuild", records)["wall_seconds"] == 60
    assert budget.latest("fresh", []) is None
    with pytest.raises(budget.BudgetError, match="kind='slow'"):
        budget.latest("slow", records)
    before = path.read_bytes()
    with pytest.raises(budget.BudgetError, match="never overwritten"):
        budget.save(early, tmp_path)
    assert path.read_bytes() == before
    (tmp_path / "book-time-fresh-broken.json").write_text("{")
    with pytest.warns(UserWarning, match="book-time-fresh-broken.json"):
        assert len(budget.load(tmp_path)) == 2


def test_record_time_command_writes_the_record_or_one_line_error(repo_root, tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    cmd = [sys.executable, str(repo_root / "tools" / "book.py"), "record-time", "--kind", "fresh",
           "--wall-seconds", "1800", "--executed", str(executed), "--out", str(tmp_path / "bench")]
    missing = subprocess.run(cmd, capture_output=True, text=True)
    assert missing.returncode == 1 and "run `make book` first" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    (executed / "execution.json").write_text(json.dumps(execution(a=700.0, b=900.0)))
    partial = subprocess.run(cmd, capture_output=True, text=True)   # not the book's chapters
    assert partial.returncode == 1 and "not one whole build" in partial.stderr and "Traceback" not in partial.stderr
    book = subprocess.run([sys.executable, str(repo_root / "tools" / "book.py"), "chapters"], capture_output=True,
                          text=True, check=True).stdout.split()
    notebooks = [c for c in book if c.endswith(".ipynb")]
    whole = {c: {"status": "ok", "profile": "default", "seconds": 60.0, "commit": "c" * 40, "dirty": False}
             for c in notebooks}
    (executed / "execution.json").write_text(json.dumps(whole))
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [record] = budget.load(tmp_path / "bench")
    assert record["wall_seconds"] == 1800 and record["within_budget"] and record["machine"]["cpus"] >= 1
    assert set(record["machine"]) == set(provenance.MACHINE_KEYS)   # the one machine description
    assert set(record["chapter_seconds"]) == set(notebooks) and record["git"]["commit"] == "c" * 40
