"""energy_lib.sizing and tools/size_default.py: the claims of a grid point are the chapters' verdicts
on planted curves; grid points build the chapters' configs; the tool on a smoke-sized grid writes a
record, a second invocation trains nothing and leaves it byte-identical; a bad grid is a one-line
error with exit code 2; the appendix page executes on a small record and on none."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import size_default  # noqa: E402

from energy_lib import provenance, runs, sizing, train, verdicts  # noqa: E402
from energy_lib.config import ConfigError, RobustEvalSettings, TrainConfig  # noqa: E402

N_TRACK = 200


# ----------------------------------------------------------------------------- planted curves
def _metrics(test_acc, val_acc=None, clean=0.6):
    test_acc = np.asarray(test_acc, dtype=float)
    return pd.DataFrame({"epoch": np.arange(1, len(test_acc) + 1), "test_acc_adv": test_acc, "test_acc_nat": clean,
                         "val_acc_adv": test_acc if val_acc is None else np.asarray(val_acc, dtype=float)})


def _samples(delta_e, epochs=4):
    """Long tracked-sample frames: the same per-image ΔE(x) every epoch."""
    return pd.DataFrame([{"epoch": e, "sample": i, "dE": d} for e in range(1, epochs + 1)
                         for i, d in enumerate(delta_e)])


def _record(acc, n=1000, autoattack=True):
    accuracy = {"clean": 0.8, "pgd": acc + 0.02, **({"autoattack": acc} if autoattack else {})}
    settings = dataclasses.asdict(RobustEvalSettings(pgd_steps=20))
    return {"images": {"dataset": "cifar10", "start": 0, "n": n}, "n_images": n, "accuracy": accuracy,
            "settings": settings}


def _planted():
    epochs = 30
    rise = np.linspace(0.2, 0.5, 15)
    ro = np.concatenate([rise, np.linspace(0.5, 0.3, epochs - 15)])      # a clear decline after the best
    co = np.concatenate([np.full(10, 0.35), np.zeros(epochs - 10)])      # abrupt collapse to 0 at epoch 11
    steady = np.full(epochs, 0.35)
    wiggle = np.linspace(-0.01, 0.01, 50)
    metrics = {"SAT": _metrics(ro), "FGSM-RS": _metrics(co), "FGSM-RS + DER": _metrics(steady)}
    samples = {"SAT": _samples(-0.5 + wiggle), "TRADES": _samples(-0.05 + wiggle)}
    records = {"WEAT_adv": _record(0.45), "TRADES": _record(0.30)}
    labels = ("SAT", "TRADES", "WEAT_adv", "FGSM-RS", "FGSM-RS + DER")
    return metrics, samples, records, {k: k.lower() for k in labels}, {k: 60.0 for k in labels}


def test_claims_on_planted_curves_are_the_chapters_verdicts():
    metrics, samples, records, names, seconds = _planted()
    rows = {r["claim"]: r for r in sizing.claim_rows(metrics, samples, records, N_TRACK, names, seconds, 10)}
    assert list(rows) == list(sizing.CLAIMS)
    assert {c: r["verdict"] for c, r in rows.items()} == {c: verdicts.REPRODUCED for c in sizing.CLAIMS}
    assert [rows[c]["finding"] for c in ("robust_overfitting", "catastrophic_overfitting")] == [verdicts.PRESENT] * 2
    # the same calls, with the same inputs, as the chapters' cells
    sat = metrics["SAT"]
    ro = verdicts.robust_overfitting(sat["test_acc_adv"], N_TRACK, val_acc=sat["val_acc_adv"], epochs=sat["epoch"])
    assert (rows["robust_overfitting"]["statistic"], rows["robust_overfitting"]["noise"]) == (ro.statistic, sizing.Z95 * ro.se)
    assert rows["robust_overfitting"]["sentence"] == ro.sentence
    late = samples["SAT"][samples["SAT"]["epoch"] > 3].groupby("sample")["dE"].mean()   # chapter 3's late_delta_e
    pd.testing.assert_series_equal(verdicts.late_delta_e(samples["SAT"]), late)
    align = verdicts.energy_alignment(late, verdicts.late_delta_e(samples["TRADES"]))
    assert rows["energy_alignment"]["statistic"] == align.statistic and rows["energy_alignment"]["sentence"] == align.sentence
    co = [verdicts.catastrophic_overfitting(metrics[k]["test_acc_adv"], N_TRACK, metrics[k]["epoch"])
          for k in ("FGSM-RS", "FGSM-RS + DER")]
    assert co[0].onset == 11 and rows["catastrophic_overfitting"]["statistic"] == co[0].after - 0.3 * co[0].peak < 0
    der = verdicts.der_prevents_co(*co)
    assert rows["der_prevents_co"]["statistic"] == der.final.statistic == pytest.approx(0.35)
    weat = verdicts.compare_accuracy(0.45, 0.30, 1000, labels=("WEAT_adv", "TRADES"))   # chapter 4: AutoAttack
    # noise: the half-width of the comparison's own (Newcombe) interval (unpaired here: records without bits)
    assert rows["weat_vs_trades"]["statistic"] == weat.statistic and not weat.paired
    assert rows["weat_vs_trades"]["noise"] == pytest.approx((weat.ci[1] - weat.ci[0]) / 2, rel=1e-12)
    assert rows["der_prevents_co"]["noise"] == pytest.approx((der.final.ci[1] - der.final.ci[0]) / 2, rel=1e-12)
    assert rows["der_prevents_co"]["train_s"] == 120.0 and rows["der_prevents_co"]["runs"] == ["fgsm-rs", "fgsm-rs + der"]


def test_claims_that_go_the_other_way_are_not_reproduced():
    metrics, samples, records, names, seconds = _planted()
    samples = {"SAT": samples["TRADES"], "TRADES": samples["SAT"]}               # TRADES further from 0
    records = {"WEAT_adv": _record(0.30, autoattack=False), "TRADES": _record(0.45, autoattack=False)}
    metrics = {**metrics, "FGSM-RS + DER": metrics["FGSM-RS"]}                   # DER collapses too
    rows = {r["claim"]: r for r in sizing.claim_rows(metrics, samples, records, N_TRACK, names, seconds, 10)}
    assert [rows[c]["verdict"] for c in ("energy_alignment", "der_prevents_co", "weat_vs_trades")] == \
        [verdicts.NOT_REPRODUCED] * 3
    assert rows["weat_vs_trades"]["statistic"] == pytest.approx(-0.15)   # PGD accuracies when AutoAttack is absent


def test_compare_records_needs_the_same_images_and_attacks():
    other = {**_record(0.3), "images": {"dataset": "cifar10", "start": 100, "n": 1000}}
    with pytest.raises(ValueError, match="different test images"):
        verdicts.compare_records(_record(0.4), other)
    base = _record(0.4)
    weaker = {**_record(0.3), "settings": {**base["settings"], "pgd_steps": 5}}
    with pytest.raises(ValueError, match="different attack settings.*pgd_steps"):
        verdicts.compare_records(base, weaker)
    chunked = {**_record(0.3), "settings": {**base["settings"], "batch_size": 7}}   # changes no number
    assert verdicts.compare_records(base, chunked).statistic == pytest.approx(0.1)


def test_co_statistic_takes_either_sign():
    """No collapse (the run stays robust): the statistic is positive; a collapse: negative."""
    metrics, samples, records, names, seconds = _planted()
    stable = {**metrics, "FGSM-RS": metrics["FGSM-RS + DER"]}
    rows = {r["claim"]: r for r in sizing.claim_rows(stable, samples, records, N_TRACK, names, seconds, 10)}
    assert rows["catastrophic_overfitting"]["statistic"] > 0 and rows["catastrophic_overfitting"]["finding"] == verdicts.ABSENT
    # its noise: the 95 % binomial half-width of that accuracy, 1.96 √(p(1−p)/n)
    final = verdicts.catastrophic_overfitting(stable["FGSM-RS"]["test_acc_adv"], N_TRACK).after
    assert 0 < final < 1
    assert rows["catastrophic_overfitting"]["noise"] == pytest.approx(1.959964 * (final * (1 - final) / N_TRACK) ** 0.5,
                                                                      rel=1e-6)


def test_a_diverged_single_step_run_leaves_co_and_der_inconclusive():
    """The FGSM-RS run that went to a constant output (clean accuracy at chance) is no CO, and DER is
    not judged against it; chance is 1 / the dataset's classes."""
    metrics, samples, records, names, seconds = _planted()
    co = metrics["FGSM-RS"]["test_acc_adv"]
    dead = {**metrics, "FGSM-RS": _metrics(co, clean=np.r_[np.full(10, 0.5), np.full(len(co) - 10, 0.1)])}
    rows = {r["claim"]: r for r in sizing.claim_rows(dead, samples, records, N_TRACK, names, seconds, 10)}
    assert rows["catastrophic_overfitting"]["verdict"] == verdicts.INCONCLUSIVE_SCALE
    assert rows["catastrophic_overfitting"]["statistic_text"].startswith("diverged")
    assert rows["der_prevents_co"]["verdict"] == verdicts.INCONCLUSIVE_SCALE and "diverged" in rows["der_prevents_co"]["sentence"]
    # 10 % is far above chance for 100 classes: the same run is the planted collapse there
    rows = {r["claim"]: r for r in sizing.claim_rows(dead, samples, records, N_TRACK, names, seconds, 100)}
    assert rows["catastrophic_overfitting"]["verdict"] == verdicts.REPRODUCED


# ----------------------------------------------------------------------------- grid points
def test_point_builds_the_chapters_configs():
    point = sizing.Point.make("default")
    cfg = TrainConfig.from_profile("default")
    configs = point.train_configs()
    assert configs["SAT"] == cfg.replace(method="sat") and configs["WEAT_adv"] == cfg.replace(method="weat_adv")
    assert configs["FGSM-RS + DER"] == cfg.replace(method="fgsm_rs_der", eps=16 / 255)   # chapter 2's single_step_eps
    assert point.name == "default" and sizing.current_default().key() == point.key()
    alpha = sizing.Point.make("default", {"single_step_eps": "8/255", "fgsm_alpha": "1"})
    assert alpha.overrides == {"fgsm_alpha": 1.0, "single_step_eps": 8 / 255}
    assert alpha.name == "default: fgsm_alpha=1, single_step_eps=8/255"
    assert alpha.train_configs()["FGSM-RS"].eps == 8 / 255 and alpha.train_configs()["FGSM-RS"].fgsm_alpha == 1.0
    dirs, default_dirs = alpha.run_dirs(), point.run_dirs()
    assert {k: dirs[k] == default_dirs[k] for k in sizing.RUN_METHODS} == \
        {"SAT": True, "TRADES": True, "WEAT_adv": True, "FGSM-RS": False, "FGSM-RS + DER": False}
    # the seeds axis: seed 0 is the default point; another seed retrains every run
    assert sizing.Point.make("default", {"seed": 0}).key() == point.key()
    seeded = sizing.Point.make("default", {"seed": 1}).run_dirs()
    assert all(seeded[k] != default_dirs[k] for k in sizing.RUN_METHODS)
    assert {cfg.seed for cfg in sizing.Point.make("default", {"seed": 1}).train_configs().values()} == {1}


def test_documented_grid_has_distinct_points_with_the_default_first():
    points = sizing.grid_points()
    # n_train=500, epochs=30, (16/255, 1.25) and seed=0 are the default point
    assert len(points) == len({p.key() for p in points}) == 11
    assert points[0].key() == sizing.current_default().key()
    rec = {"kind": "sizing", "version": 1, "points": [{"key": points[0].key()}]}
    assert [p.key() for p in sizing.missing_points(rec)] == [p.key() for p in points[1:]]


@pytest.mark.parametrize("values,match", [({"foo": 1}, "unknown grid axis 'foo'"),
                                          ({"method": "sat"}, "unknown grid axis 'method'"),
                                          ({"eps": "4/255"}, "unknown grid axis 'eps'"),
                                          ({"n_train": "abc"}, "n_train"), ({"epochs": 1}, "at least 2 epochs")])
def test_bad_points_are_refused(values, match):
    with pytest.raises(ConfigError, match=match):   # SizingError for an axis, ConfigError for a value
        sizing.Point.make("default", values)


@pytest.mark.parametrize("grid", ["foo=1,2", "nope", "n_train=abc", "n_train="])
def test_bad_grid_is_a_one_line_error_with_exit_2(grid, capsys):
    assert size_default.main(["--dry-run", "--grid", grid]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_dry_run_lists_points_and_shared_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "store"))
    monkeypatch.setattr(runs, "train_or_load", lambda *a, **k: pytest.fail("a dry run trains nothing"))
    record = tmp_path / "sizing.json"
    assert size_default.main(["--dry-run", "--grid", "single_step", "--record", str(record)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("6 point(s);")
    sat = [line.split()[1] for line in lines if line.strip().startswith("SAT ")]
    assert len(sat) == 6 and len(set(sat)) == 1                # the multi-step runs are shared by every point
    assert not record.exists() and not (tmp_path / "store").exists()


# ----------------------------------------------------------------------------- the tool end to end (smoke size)
SMOKE_GRID = ["--profile", "smoke", "--grid", "autoattack=false", "--device", "cpu", "--no-progress", "--jobs", "0"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One smoke-sized point through the tool: (record path, run store, fit calls, the record's text)."""
    tmp = tmp_path_factory.mktemp("sizing")
    calls = []
    real_fit = train.fit
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENERGY_RUNS", str(tmp / "store"))
        mp.setattr(train, "fit", lambda cfg, *a, **k: (calls.append(cfg.method), real_fit(cfg, *a, **k))[1])
        assert size_default.main([*SMOKE_GRID, "--record", str(tmp / "sizing.json")]) == 0
    return tmp / "sizing.json", tmp / "store", calls, (tmp / "sizing.json").read_text()


def test_tool_writes_a_record_of_the_point(swept):
    record, store, calls, _ = swept
    assert sorted(calls) == sorted(m for m, _ in sizing.RUN_METHODS.values())   # each run trained once
    rec = json.loads(record.read_text())
    assert rec["kind"] == "sizing" and len(rec["points"]) == 1
    point = rec["points"][0]
    expected = sizing.Point.make("smoke", {"autoattack": False})
    assert point["key"] == expected.key() and point["name"] == "smoke: autoattack=False"
    assert point["runs"] == {k: d.name for k, d in expected.run_dirs(store).items()}
    assert [r["claim"] for r in point["rows"]] == list(sizing.CLAIMS)
    assert all(r["verdict"] in verdicts.REPRODUCTION for r in point["rows"])
    per_run = point["cost"]["per_run"]
    assert set(per_run) == set(sizing.RUN_METHODS) and all(c["epochs"] == 2 for c in per_run.values())
    assert point["cost"]["train_wall_s"] > 0 and point["machine"]["torch_threads"] >= 1
    assert point["git"]["commit"] and point["date"].endswith("Z")
    assert set(point["machine"]) == set(provenance.MACHINE_KEYS) and point["machine"]["device"] == "cpu"
    assert point["git"] == provenance.git_state()   # the one git state (run store left out)


def test_second_invocation_trains_nothing_and_keeps_the_record(swept, monkeypatch):
    record, store, _, text = swept
    monkeypatch.setenv("ENERGY_RUNS", str(store))
    calls = []
    monkeypatch.setattr(train, "fit", lambda cfg, *a, **k: calls.append(cfg.method))
    assert size_default.main([*SMOKE_GRID, "--record", str(record)]) == 0
    assert calls == [] and record.read_text() == text
    # recomputing the point from the stored runs trains nothing and gives the same rows
    assert size_default.main([*SMOKE_GRID, "--record", str(record), "--recompute"]) == 0
    assert calls == []
    assert json.loads(record.read_text())["points"][0]["rows"] == json.loads(text)["points"][0]["rows"]


def test_jobs_trains_every_run_of_the_points_before_evaluating_them(tmp_path, monkeypatch):
    """--jobs hands train_all exactly the runs the evaluation reads: evaluating trains nothing more."""
    from energy_lib import book_runs

    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "store"))
    phase, calls, handed = ["evaluation"], [], {}
    real_fit = train.fit
    monkeypatch.setattr(train, "fit", lambda cfg, *a, **k: (calls.append((phase[0], cfg.method)), real_fit(cfg, *a, **k))[1])

    def in_process_train_all(configs, jobs=None, threads=None, progress=True, log=print):
        handed.update(configs=dict(configs), jobs=jobs)
        phase[0] = "train_all"
        for cfg in configs.values():     # what a worker does, in this process so that the calls are seen
            runs.train_or_load(cfg, progress=False)
        phase[0] = "evaluation"
        return book_runs.TrainReport()

    monkeypatch.setattr(book_runs, "train_all", in_process_train_all)
    args = [a for a in SMOKE_GRID if a not in ("--jobs", "0")]
    assert size_default.main([*args, "--jobs", "2", "--record", str(tmp_path / "sizing.json")]) == 0
    assert handed["jobs"] == 2 and len(handed["configs"]) == len(sizing.RUN_METHODS)
    assert sorted(calls) == sorted(("train_all", m) for m, _ in sizing.RUN_METHODS.values())


def test_negative_jobs_is_a_one_line_error(tmp_path, capsys):
    for extra in ([], ["--dry-run"]):
        assert size_default.main([*SMOKE_GRID, *extra, "--jobs", "-1", "--record", str(tmp_path / "r.json")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --jobs -1") and err.count("\n") == 1 and not (tmp_path / "r.json").exists()


# ----------------------------------------------------------------------------- training noise (seeds)
def _seed_entry(seed, statistics, noise, verdict="reproduced", values=None, threads=(1,)):
    point = sizing.Point.make("default", {"seed": seed, **(values or {})})
    return {"key": point.key(), "name": point.name, "profile": "default", "overrides": point.overrides,
            "config": runs.identity(point.base_config()), "single_step_eps": point.single_step_eps,
            "evaluation": point.identity()["evaluation"], "cost": {"threads": list(threads)}, "verdicts_read_regime": True,
            "rows": [{"claim": c, "statistic": statistics[c], "noise": noise, "verdict": verdict} for c in sizing.CLAIMS]}


def test_training_noise_is_the_spread_over_seeds_of_the_default_point():
    stats_by_seed = {2: 0.01, 0: 0.03, 1: 0.05}                                  # SD over seeds exactly 0.02
    entries = [_seed_entry(s, {c: stats_by_seed[s] for c in sizing.CLAIMS}, 0.04, verdict, threads=(t,))
               for s, verdict, t in zip((2, 0, 1), ("reproduced", "reproduced", "inconclusive at this scale"), (1, 2, 1))]
    # other points of the sweep are not seeds of the default point, whatever they are named: other
    # epochs, another single-step ε, another evaluation (n_eval), a stale key of the same configs
    nine = {c: 9.0 for c in sizing.CLAIMS}
    others = [_seed_entry(1, nine, 0.5, values={"epochs": 60}),
              _seed_entry(0, nine, 0.5, values={"single_step_eps": "8/255"}),
              _seed_entry(2, nine, 0.5, values={"n_eval": 50}),
              {**_seed_entry(1, nine, 0.5), "key": "0123456789ab"}]
    default_under_another_name = {**entries[1], "name": "default: epochs=30", "overrides": {"epochs": 30}}
    rec = {"kind": "sizing", "version": 1, "points": [others[0], others[3], entries[0], default_under_another_name,
                                                      others[1], entries[2], others[2]]}
    noise = {t.claim: t for t in sizing.training_noise(rec)}
    assert list(noise) == list(sizing.CLAIMS)
    for t in noise.values():
        assert t.seeds == (0, 1, 2) and t.statistics == tuple(stats_by_seed[s] for s in (0, 1, 2))
        assert t.threads == ((2,), (1,), (1,))
        assert t.seed_sd == pytest.approx(0.02, rel=1e-12) and t.image_halfwidth == pytest.approx(0.04)
        # chi-square interval of an SD with 2 degrees of freedom: 0.5207 to 6.285 times the estimate
        assert t.seed_sd_ci == pytest.approx((0.02 * 0.52066, 0.02 * 6.2847), rel=1e-4)
        # one run's SE 0.04 / 1.96 and the seed SD 0.02 add in quadrature: 1.96 √(SE² + SD²)
        assert t.combined_halfwidth == pytest.approx(1.959964 * math.hypot(0.04 / 1.959964, 0.02), rel=1e-6)
        # the smallest effect one run detects (80 % power, 5 % level: (1.96 + 0.8416) SE), without and with it
        assert t.mde == pytest.approx(2.801585 * 0.04 / 1.959964, rel=1e-6)
        assert t.mde_with_training_noise == pytest.approx(2.801585 * math.hypot(0.04 / 1.959964, 0.02), rel=1e-6)
        assert not t.agree and "the verdicts differ" in t.sentence
    assert "SD 2.0 pt" in noise["weat_vs_trades"].sentence and "SD 0.0200" in noise["energy_alignment"].sentence
    assert "would be ± 0.0560 instead of ± 0.0400" in noise["energy_alignment"].sentence
    assert "smallest effect one run detects (80 % power, 5 % level) 0.0801 instead of 0.0572" in \
        noise["energy_alignment"].sentence
    table = sizing.training_noise_table(rec)
    assert table.loc["WEAT_adv more robust than TRADES", "SD over seeds"] == pytest.approx(2.0)
    assert table.loc["WEAT_adv more robust than TRADES", "95 % half-width with training noise"] == pytest.approx(5.6006, abs=1e-4)
    assert table.loc["WEAT_adv more robust than TRADES", "smallest detectable effect with training noise"] == \
        pytest.approx(8.0053, abs=1e-4)
    text = sizing.training_noise_table(rec, as_text=True)        # one column, two units: each row in its own
    assert text.loc["WEAT_adv more robust than TRADES", "95 % half-width with training noise"] == "5.6"
    assert text.loc["TRADES keeps ΔE(x) closer to 0 than SAT", "SD over seeds"] == "0.0200"


def test_training_noise_needs_two_seeds_and_says_so():
    one = _seed_entry(0, {c: 0.1 for c in sizing.CLAIMS}, 0.05)
    for rec in ({"kind": "sizing", "version": 1, "points": [one]}, {"kind": "sizing", "version": 1, "points": []}):
        for t in sizing.training_noise(rec):
            assert t.seed_sd is None and "needs at least 2" in t.sentence
    # two seeds that agree: an SD and the same verdict everywhere
    two = _seed_entry(1, {c: 0.1 for c in sizing.CLAIMS}, 0.05)
    noise = sizing.training_noise({"kind": "sizing", "version": 1, "points": [one, two]})
    assert all(t.seed_sd == 0.0 and t.agree and "same at every seed" in t.sentence for t in noise)


# ----------------------------------------------------------------------------- the choice of the default
def _sized_entry(values, verdicts_by_claim=None, per_run=None):
    point = sizing.Point.make("default", values)
    shown = {c: verdicts.INCONCLUSIVE_SCALE for c in sizing.CLAIMS} | (verdicts_by_claim or {})
    return {"key": point.key(), "name": point.name, "profile": "default", "overrides": point.overrides,
            "config": runs.identity(point.base_config()), "single_step_eps": point.single_step_eps,
            "evaluation": point.identity()["evaluation"],
            "cost": {"per_run": per_run or {"SAT": {"train_s": 100.0, "track_s": 300.0}}}, "verdicts_read_regime": True,
            "rows": [{"claim": c, "verdict": v} for c, v in shown.items()]}


def test_cost_ratio_scales_training_with_data_and_tracking_with_epochs():
    two_runs = {"SAT": {"train_s": 200.0, "track_s": 300.0}, "TRADES": {"train_s": 100.0, "track_s": 100.0}}
    # n_train 1000 (2x the default's 500): at the default the training halves, the tracking stays
    assert sizing.cost_ratio(_sized_entry({"n_train": 1000}, per_run=two_runs)) == pytest.approx(700 / 550, rel=1e-12)
    # 2x the data and 2x the epochs: training / 4, tracking / 2
    one = {"SAT": {"train_s": 200.0, "track_s": 300.0}}
    assert sizing.cost_ratio(_sized_entry({"n_train": 1000, "epochs": 60}, per_run=one)) == pytest.approx(2.5, rel=1e-12)
    # the seed, FGSM's α and the single-step ε cost nothing; another model has no known scale
    assert sizing.cost_ratio(_sized_entry({"seed": 1, "fgsm_alpha": 1.0, "single_step_eps": "8/255"})) == 1.0
    assert sizing.cost_ratio(_sized_entry({"model": "preact_resnet18"})) is None
    fresh = {"wall_seconds": 2000.0, "runs_seconds": 1000.0}
    assert sizing.fresh_build_estimate(_sized_entry({"n_train": 1000, "epochs": 60}, per_run=one), fresh) == 3500.0


def test_default_choice_keeps_the_default_unless_a_size_within_budget_shows_more():
    R, N = verdicts.REPRODUCED, verdicts.NOT_REPRODUCED
    default = _sized_entry({}, {"energy_alignment": R, "catastrophic_overfitting": N})
    fresh = {"wall_seconds": 30 * 60.0, "runs_seconds": 20 * 60.0}          # 30 min, of which 20 training
    cheap_co = _sized_entry({"single_step_eps": "8/255"}, {"energy_alignment": R, "catastrophic_overfitting": R})
    long_ro = _sized_entry({"epochs": 60}, {"energy_alignment": R, "catastrophic_overfitting": N,
                                            "robust_overfitting": N})        # 30 + 20 = 50 min
    seed_weat = _sized_entry({"seed": 1}, {"weat_vs_trades": R})             # noise, not a size
    worse = _sized_entry({"fgsm_alpha": 1.0}, {"energy_alignment": N, "catastrophic_overfitting": N})
    trade = _sized_entry({"lr": 0.05}, {"catastrophic_overfitting": R})      # CO shown, alignment lost
    rec = {"kind": "sizing", "version": 1, "points": [default, cheap_co, long_ro, seed_weat, worse, trade]}

    choice = sizing.default_choice(rec, fresh, budget_minutes=40)
    assert choice.default == "default" and choice.keep is False
    assert choice.estimates == {cheap_co["name"]: 30.0, long_ro["name"]: 50.0, worse["name"]: 30.0, trade["name"]: 30.0}
    assert set(choice.within) == {cheap_co["name"], worse["name"], trade["name"]}
    assert choice.gains["catastrophic_overfitting"] == [f"{cheap_co['name']} (reproduced)"]   # not `trade`
    assert choice.mixed == (trade["name"],)
    assert choice.beyond["robust_overfitting"] == [f"{long_ro['name']} (not reproduced)"]
    assert not choice.gains["energy_alignment"] and not choice.gains["weat_vs_trades"] and not choice.beyond["weat_vs_trades"]
    assert "consider moving the default" in choice.sentences[-1]
    assert "at most 1.50x the default's" in choice.sentences[0]                  # 1 + (40 − 30) / 20
    assert sizing.max_cost_ratio(fresh, 40) == 1.5

    # without the cheap point the default stays; RO is shown better only over the budget
    choice = sizing.default_choice({**rec, "points": [default, long_ro, seed_weat, worse, trade]}, fresh, budget_minutes=40)
    assert choice.keep is True and "the default stays" in choice.sentences[-1]
    assert any("only at sizes over the budget" in s and long_ro["name"] in s for s in choice.sentences)
    # a larger budget takes it in
    assert sizing.default_choice({**rec, "points": [default, long_ro]}, fresh, budget_minutes=50).keep is False
    # no budget record: no estimate, and no choice either way
    choice = sizing.default_choice(rec, None, budget_minutes=40)
    assert choice.keep is None and set(choice.estimates.values()) == {None}
    assert "no fresh-build budget record" in choice.sentences[0] and "no choice can be made" in choice.sentences[-1]
    # no default in the record
    choice = sizing.default_choice({**rec, "points": [cheap_co]}, fresh, budget_minutes=40)
    assert choice.default is None and choice.keep is None and "--grid default" in choice.sentences[0]


def test_rows_recorded_before_the_regime_was_read_are_no_verdicts():
    """A point recorded before issue 23 keeps its rows in the record, but its robust- and catastrophic-
    overfitting rows (and DER's, which reads CO) are read as 'not re-judged': no statistic, no rank in
    the choice of the default, no seed in the training noise; its other rows stay verdicts."""
    R, N, I = verdicts.REPRODUCED, verdicts.NOT_REPRODUCED, verdicts.INCONCLUSIVE_SCALE
    old = {**_sized_entry({"single_step_eps": "8/255"}, {"catastrophic_overfitting": N, "energy_alignment": R,
                                                         "robust_overfitting": R}), "verdicts_read_regime": None}
    assert [r["verdict"] for r in sizing.current_rows(old)] == [R, sizing.NOT_REJUDGED, sizing.NOT_REJUDGED,
                                                                sizing.NOT_REJUDGED, I]
    assert sizing.current_rows(old)[2]["recorded_verdict"] == N and sizing.current_rows(old)[2]["statistic"] is None
    assert old["rows"][2]["verdict"] == N                                     # the record itself is untouched
    # a stale "not reproduced" against the default's "inconclusive" is no gain, nor a stale "reproduced" a loss
    default = _sized_entry({}, {"energy_alignment": R})
    fresh = {"wall_seconds": 30 * 60.0, "runs_seconds": 20 * 60.0}
    choice = sizing.default_choice({"kind": "sizing", "version": 1, "points": [default, old]}, fresh, budget_minutes=40)
    assert choice.keep is True and not choice.mixed and not any(choice.gains.values())
    assert choice.unjudged["catastrophic_overfitting"] == (old["name"],) and choice.stale_at_default == ()
    said = next(x for x in choice.sentences if x.startswith("Catastrophic overfitting"))
    assert "not re-judged at any of the 1 other size(s)" in said and "compared with none" in said
    judged = _sized_entry({"epochs": 60}, {"energy_alignment": R})            # re-judged, no better
    choice = sizing.default_choice({"kind": "sizing", "version": 1, "points": [default, old, judged]}, fresh,
                                   budget_minutes=40)
    said = next(x for x in choice.sentences if x.startswith("Catastrophic overfitting"))
    assert "no better at the 1 other size(s) judged with their runs' regime, and not re-judged at 1" in said
    assert "the record cannot say whether one shows it better" in choice.sentences[-1]
    # a default whose own row is not re-judged: no choice either way
    stale_default = {**default, "verdicts_read_regime": None}
    choice = sizing.default_choice({"kind": "sizing", "version": 1, "points": [stale_default, old]}, fresh,
                                   budget_minutes=40)
    assert choice.keep is None and set(choice.stale_at_default) == set(sizing.REGIME_CLAIMS)
    assert "no choice can be made" in choice.sentences[-1]
    fresh_co = {**old, "verdicts_read_regime": True}
    choice = sizing.default_choice({"kind": "sizing", "version": 1, "points": [default, fresh_co]}, fresh, budget_minutes=40)
    assert choice.keep is False and choice.gains["catastrophic_overfitting"] == [f"{old['name']} (not reproduced)"]
    # the overview, the point's table and the findings say "not re-judged"
    rec = {"kind": "sizing", "version": 1, "points": [{**default, "date": "2026-12-07T00:00:00Z", "cost": {
        **default["cost"], "train_wall_s": 60.0, "eval_wall_s": 6.0, "book_training_estimate_s": 90.0, "threads": [1]}},
        {**old, "date": "2026-12-02T00:00:00Z", "cost": {**old["cost"], "train_wall_s": 60.0, "eval_wall_s": 6.0,
                                                        "book_training_estimate_s": 90.0, "threads": [2]}}]}
    table = sizing.overview(rec, default["key"])
    assert table.loc[old["name"], "catastrophic_overfitting"] == sizing.NOT_REJUDGED
    old_rows = {**old, "rows": [{**r, "text": r["claim"], "chapter": "02_at_phases", "statistic": 0.1, "noise": 0.01,
                                 "statistic_text": "as then", "train_s": 60.0} for r in old["rows"]]}
    shown = sizing.point_table(old_rows).iloc[:, :3].to_numpy().tolist()
    assert shown[2] == ["—", "recorded before the regime was read; then not reproduced", sizing.NOT_REJUDGED]
    assert shown[0] == ["+0.1000 ± 0.0100", "as then", R]
    assert table.loc[default["name"] + " (current default)", "recorded"] == "2026-12-07"
    findings = sizing.findings(rec)
    assert findings[0].startswith("1 of 2 points were recorded before the verdicts read their runs' regime")
    assert any(f.startswith("Catastrophic overfitting") and f"not re-judged at 1 point(s) ({old['name']})" in f
               for f in findings)
    # seeds: a stale seed's regime rows give no statistic, and the sentence says why
    seeds = [_seed_entry(0, {c: 0.1 for c in sizing.CLAIMS}, 0.05),
             {**_seed_entry(1, {c: 0.2 for c in sizing.CLAIMS}, 0.05), "verdicts_read_regime": None}]
    noise = {t.claim: t for t in sizing.training_noise({"kind": "sizing", "version": 1, "points": seeds})}
    assert noise["robust_overfitting"].statistics == (0.1, None) and noise["robust_overfitting"].seed_sd is None
    assert "recorded before the regime was read" in noise["robust_overfitting"].sentence
    assert noise["weat_vs_trades"].seed_sd == pytest.approx(0.1 * math.sqrt(0.5), rel=1e-12)
    # two current seeds and a stale one: an SD over the two, the same verdict, the stale one named
    seeds.append(_seed_entry(2, {c: 0.3 for c in sizing.CLAIMS}, 0.05))
    noise = {t.claim: t for t in sizing.training_noise({"kind": "sizing", "version": 1, "points": seeds})}
    ro = noise["robust_overfitting"]
    assert ro.statistics == (0.1, None, 0.3) and ro.seed_sd == pytest.approx(0.2 * math.sqrt(0.5), rel=1e-12)
    assert ro.agree and "the verdict is the same at every seed (1 seed(s) not re-judged and left out)" in ro.sentence


# ----------------------------------------------------------------------------- the appendix page
def _execute_appendix(tmp_path, monkeypatch, record: Path, profile: str = "smoke") -> str:
    import papermill

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = tmp_path / "appendix_sizing.ipynb"
    papermill.execute_notebook(str(ROOT / "book" / "appendix_sizing.ipynb"), str(out), kernel_name="python3",
                               parameters={"profile": profile, "record": str(record)}, cwd=str(ROOT),
                               progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return "".join("".join(o.get("data", {}).get("text/markdown", "")) + "".join(o.get("data", {}).get("text/html", ""))
                   for c in cells for o in c.get("outputs", []))


def test_appendix_shows_the_record(swept, tmp_path, monkeypatch):
    shown = _execute_appendix(tmp_path, monkeypatch, swept[0])
    assert "holds **1 point(s)**" in shown and "the current default profile is not among them" in shown
    assert "The `smoke` profile's point is not in the record." in shown       # it evaluates with AutoAttack
    assert "smoke: autoattack=False" in shown and "catastrophic" in shown.lower()
    assert "**11 point(s) are not recorded yet**" in shown
    assert "the current default point is not in the record" in shown        # the choice needs it


def test_appendix_says_when_there_is_no_record(tmp_path, monkeypatch):
    shown = _execute_appendix(tmp_path, monkeypatch, tmp_path / "missing.json", profile="default")
    assert "No sizing record yet" in shown and "Nothing yet: the record is missing." in shown
