"""The runs `make book` trains before the chapters (energy_lib.book_runs): they must be exactly the
runs the chapters ask for (else the chapters train them again), training them in parallel worker
processes must give the runs a sequential training gives, and a failing run must stop the build
with its own error."""
from __future__ import annotations

import ast
import json

import pytest

from energy_lib import book_runs, budget
from energy_lib.config import ConfigError, TrainConfig
from energy_lib.fileio import StoreError
from energy_lib.runs import Run, run_dir


def _chapter_namespace(repo_root, chapter: str, stop: str, profile: str, params: dict) -> dict:
    """Run a chapter's parameters cell, papermill's injected values, then its training cell up to the
    line that starts with `stop` (its imports left out: the config classes are given)."""
    from energy_lib.config import WeatDerConfig

    nb = json.loads((repo_root / "book" / chapter).read_text())
    parameters = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    training = next(c for c in nb["cells"] if "train_or_load(" in "".join(c["source"]))
    namespace = {"TrainConfig": TrainConfig, "WeatDerConfig": WeatDerConfig}
    exec(compile(ast.parse("".join(parameters["source"])), chapter, "exec"), namespace)
    namespace.update(profile=profile, **params)
    lines = "".join(training["source"]).splitlines()
    ends = [i for i, line in enumerate(lines) if line.startswith(stop)]
    assert ends, f"{chapter}'s training cell has no line starting with {stop!r}: the test must stop elsewhere"
    kept = [line for line in lines[:ends[0]] if not line.startswith(("import ", "from "))]
    exec(compile("\n".join(kept), chapter, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
@pytest.mark.parametrize("params", [{}, {"epochs": 3, "single_step_eps": 8 / 255}])
def test_the_runs_trained_first_are_the_runs_the_chapters_ask_for(repo_root, profile, params):
    """Chapter 2's and chapter 4's own lines (with papermill's parameters) name the same run
    directories as `chapter_configs`: none is trained twice, none is missing."""
    ch2 = _chapter_namespace(repo_root, "02_at_phases.ipynb", "runs =", profile, params)
    ch4 = _chapter_namespace(repo_root, "04_weat_der.ipynb", "runs =", profile, params)
    wanted = {run_dir(c.canonical()) for c in [*ch2["multi"].values(), *ch2["single"].values(),
                                               *ch4["train_cfgs"].values()]}
    ours = book_runs.chapter_configs(profile, params)
    assert {run_dir(c.canonical()) for c in ours.values()} == wanted
    assert len(ours) == len(wanted)                     # each run once
    if "single_step_eps" in params:
        assert ours["FGSM-RS"].eps == params["single_step_eps"] and ours["SAT"].eps == TrainConfig.eps


def test_default_jobs_is_one_process_per_core_and_never_more_than_the_runs():
    assert book_runs.default_jobs(6, cpus=2) == (2, 1)
    assert book_runs.default_jobs(6, cpus=16) == (6, 2)
    assert book_runs.default_jobs(1, cpus=16) == (1, 16)
    assert book_runs.default_jobs(3, cpus=1) == (1, 1)
    # an asked-for number of processes: capped by the runs, the cores shared among them
    assert book_runs.default_jobs(6, cpus=16, jobs=4) == (4, 4)
    assert book_runs.default_jobs(2, cpus=16, jobs=4) == (2, 8)
    assert book_runs.default_jobs(3, cpus=2, jobs=3) == (3, 1)


def _smoke_pair():
    cfgs = book_runs.chapter_configs("smoke")
    return {"SAT": cfgs["SAT"], "FGSM-RS": cfgs["FGSM-RS"]}


def _metrics_without_times(directory):
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time_") and k != "images_per_s"} for r in rows]


def test_parallel_training_gives_the_runs_sequential_training_gives(tmp_path, monkeypatch):
    """Two worker processes or one, with the same threads each: the same epochs, bit for bit, and
    a finished run is never trained again."""
    out = {}
    for jobs in (2, 1):
        store = tmp_path / f"jobs{jobs}"
        monkeypatch.setenv("ENERGY_RUNS", str(store))
        report = book_runs.train_all(_smoke_pair(), jobs=jobs, threads=1, progress=False, log=lambda *a, **k: None)
        assert set(report.seconds) == {"SAT", "FGSM-RS"} and (report.jobs, report.threads) == (jobs, 1)
        out[jobs] = {label: run_dir(c.canonical()) for label, c in _smoke_pair().items()}
        assert all(Run(c.canonical(), out[jobs][label]).done for label, c in _smoke_pair().items())
        # the chapters find them finished: nothing is trained again
        assert book_runs.train_all(_smoke_pair(), jobs=jobs, progress=False) == book_runs.TrainReport()
    for label in ("SAT", "FGSM-RS"):
        assert out[2][label].name == out[1][label].name
        assert _metrics_without_times(out[2][label]) == _metrics_without_times(out[1][label])


def test_a_stopped_run_stays_resumable_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    """What the other runs do when one fails: they stop before their next epoch (`should_stop`, the
    pool's event) and a later `make book` resumes them to the run an uninterrupted training gives."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as a worker trains (restored below: later tests compare with subprocesses)
    try:
        _stop_and_resume(tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _stop_and_resume(tmp_path, monkeypatch):
    from energy_lib.runs import train_or_load

    cfg = _smoke_pair()["SAT"].canonical()
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "whole"))
    whole = train_or_load(cfg, progress=False)
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "stopped"))
    asked = []
    stopped = train_or_load(cfg, progress=False, should_stop=lambda: asked.append(1) or len(asked) > 1)
    assert not stopped.done and len(_metrics_without_times(stopped.dir)) == 1
    stop = type("Event", (), {"is_set": staticmethod(lambda: True)})()
    monkeypatch.setattr(book_runs, "_STOP", stop)
    assert book_runs._train_one(cfg)[1] is False                    # a worker told to stop trains nothing
    assert len(_metrics_without_times(stopped.dir)) == 1
    resumed = train_or_load(cfg, progress=False)
    assert resumed.done and _metrics_without_times(resumed.dir) == _metrics_without_times(whole.dir)


def test_a_run_that_cannot_train_stops_the_build_with_its_own_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    pair = _smoke_pair()
    broken = run_dir(pair["FGSM-RS"].canonical())
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(StoreError, match="config.json"):
        book_runs.train_all(pair, jobs=2, threads=1, progress=False, log=lambda *a, **k: None)
    assert (broken / "config.json").read_text() == "{not json"     # nothing overwritten


def test_a_bad_parameter_is_refused_before_any_training():
    with pytest.raises(ConfigError, match="epochs must be positive"):
        book_runs.chapter_configs("smoke", {"epochs": 0})


# ----------------------------------------------------------------------------- the budget record counts them
def _execution(commit="abc"):
    return {f"book/c{i}.ipynb": {"status": "ok", "profile": "default", "seconds": 100.0, "commit": commit,
                                 "dirty": False} for i in range(2)}


def test_the_budget_record_counts_the_runs_trained_before_the_chapters():
    runs = {"status": "ok", "profile": "default", "commit": "abc", "seconds": 600.0, "runs": {"SAT": 300.0}}
    rec = budget.make_record(_execution(), "fresh", 850.0, "2026-12-02T00:00:00Z", {}, runs=runs)
    assert rec["runs_seconds"] == 600.0 and rec["runs_trained"] == {"SAT": 300.0}
    with pytest.raises(budget.BudgetError, match="less than the chapters' own 800"):
        budget.make_record(_execution(), "fresh", 799.0, "2026-12-02T00:00:00Z", {}, runs=runs)
    for change in ({"status": "running"}, {"commit": "def"}, {"profile": "smoke"}):
        with pytest.raises(budget.BudgetError, match="not this build's"):
            budget.make_record(_execution(), "fresh", 900.0, "2026-12-02T00:00:00Z", {}, runs={**runs, **change})


def test_ctrl_c_during_make_book_is_one_line_and_exit_130(repo_root, monkeypatch, capsys):
    """Interrupted while training the runs (or a chapter): no traceback, a line that says how to
    resume, exit status 130."""
    import sys

    sys.path.insert(0, str(repo_root / "tools"))
    import book

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(book, "execute", interrupted)
    assert book.main(["execute", "--profile", "smoke"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "resume" in err and "Traceback" not in err


def test_a_finished_run_trained_by_other_code_is_reused_and_reported(tmp_path, monkeypatch):
    """Issue 23, point 8: `make book` reuses a finished run whose training code differs from today's
    and says so (one line per run), instead of silently."""
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    pair = _smoke_pair()
    book_runs.train_all(pair, jobs=1, threads=1, progress=False, log=lambda *a, **k: None)
    lines = []
    assert book_runs.train_all(pair, jobs=1, progress=False, log=lambda m, **k: lines.append(m)) == \
        book_runs.TrainReport()
    assert lines == []                                         # today's code: nothing to say
    sat = run_dir(pair["SAT"].canonical())
    env = json.loads((sat / "env.json").read_text())
    env["sessions"][0]["training_code"] = "0" * 64
    (sat / "env.json").write_text(json.dumps(env))
    book_runs.train_all(pair, jobs=1, progress=False, log=lambda m, **k: lines.append(m))
    assert len(lines) == 1 and lines[0].startswith(f"[runs] SAT ({sat.name}) is reused: trained at commit")
    assert "other training code" in lines[0]
