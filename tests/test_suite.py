"""The phenomena suite (energy_lib.suite): the written rules that choose each phenomenon's scale,
on planted probe outcomes whose answer is known, the confirming runs they define, and the probes'
configs (the committed probe records must keep matching them)."""
import pytest

from energy_lib import suite
from energy_lib.runs import Run


def _co_outcome(verdict, *, diverged=False, finished=True):
    return {"done": finished, "finished": finished, "regime": {"learned": True, "diverged": diverged},
            "co": {"verdict": verdict}}


def _ro_outcome(*, gap, gap_low, best_ends_at, learned=True, finished=True):
    return {"done": finished, "finished": finished,
            "regime": {"learned": learned, "diverged": False, "gap": gap, "gap_ci": [gap_low, gap + 0.05]},
            "ro": {"best_ends_at": best_ends_at}}


def _all_probes(phenomenon, make):
    return {p.name: make(p) for p in suite.PROBES if p.phenomenon == phenomenon}


def test_co_scale_is_the_smallest_eps_that_collapses_in_every_seed_at_the_largest_healthy_lr():
    outcomes = _all_probes("co", lambda p: _co_outcome("absent"))
    outcomes["probe-co-fgsm-slcnn-e16-s0"] = _co_outcome("present", diverged=True)     # lr 0.005 diverged
    for name in ("probe-co-fgsm-slcnn-e16-lr0.003-s0", "probe-co-fgsm-slcnn-e16-lr0.003-s1",
                 "probe-co-fgsm-slcnn-e12-lr0.003-s0"):
        outcomes[name] = _co_outcome("present")
    choice = suite.choose_co(outcomes)           # 12/255 collapsed in one seed of two: 16/255 is chosen
    assert choice["eps"] == pytest.approx(16 / 255) and choice["lr"] == 0.003 and choice["seeds"] == 2
    assert "ε = 8/255 collapsed in 0 of 1 seed(s); ε = 12/255 collapsed in 1 of 2 seed(s)" in choice["reason"]
    assert "diverged: lr 0.005" in choice["reason"]
    outcomes["probe-co-fgsm-slcnn-e12-lr0.003-s1"] = _co_outcome("present")
    assert suite.choose_co(outcomes)["eps"] == pytest.approx(12 / 255)
    # a probe still running holds the choice back only if it could change it: the one 8/255 probe
    # cannot reach the 2 seeds the rule needs, another seed at 12/255 could
    outcomes["probe-co-fgsm-slcnn-e8-lr0.003-s0"] = _co_outcome("absent", finished=False)
    held = suite.choose_co(outcomes)
    assert held["eps"] == pytest.approx(12 / 255) and "unable to change this choice: probe-co-fgsm-slcnn-e8" in held["reason"]
    assert suite.unfinished_probes(outcomes, "co") == ["probe-co-fgsm-slcnn-e8-lr0.003-s0"]
    outcomes["probe-co-fgsm-slcnn-e12-lr0.003-s1"] = _co_outcome("absent", finished=False)
    assert suite.choose_co(outcomes) is None
    assert suite.choose_co(_all_probes("co", lambda p: _co_outcome("absent"))) is None
    assert suite.choose_co({}) is None


def test_ro_scale_needs_a_gap_and_a_best_window_well_before_the_end():
    never = _ro_outcome(gap=0.0, gap_low=-0.05, best_ends_at=0.9, learned=False)
    outcomes = _all_probes("ro", lambda p: never)
    ok = _ro_outcome(gap=0.25, gap_low=0.18, best_ends_at=0.55)
    outcomes.update({"probe-ro-sat-w32-n2000-lr0.02": _ro_outcome(gap=0.08, gap_low=0.03, best_ends_at=0.55),
                     "probe-ro-sat-w32-n1000-lr0.02-e150": ok})
    choice = suite.choose_ro(outcomes)
    assert (choice["n_train"], choice["model"], choice["lr"], choice["epochs"]) == (1000, "small_cnn", 0.02, 150)
    late = _ro_outcome(gap=0.3, gap_low=0.2, best_ends_at=0.95)           # the best window at the end: not chosen
    outcomes["probe-ro-sat-w32-n1000-lr0.02-e150"] = late
    assert suite.choose_ro(outcomes) is None
    outcomes["probe-ro-sat-w32-n1000-lr0.02-e150"] = {**ok, "finished": False}
    assert suite.choose_ro(outcomes) is None          # the 1,000-image probe still running could come first
    outcomes["probe-ro-sat-w32-n1000-lr0.02-e150"] = ok
    outcomes["probe-ro-sat-w32-n2000-lr0.02"] = {**ok, "finished": False}
    assert suite.choose_ro(outcomes)["n_train"] == 1000         # the larger one still running cannot come first
    assert suite.choose_ro(_all_probes("ro", lambda p: never)) is None


def test_confirming_runs_follow_the_choices_with_fresh_seeds():
    co = {"eps": 16 / 255, "lr": 0.003}
    runs = suite.confirm_runs(co, None)
    assert len(runs) == 3 * (1 + len(suite.DER_BETAS) + 1)       # FGSM, FGSM + DER x 3 betas, N-FGSM; 3 seeds
    assert {r.overrides["seed"] for r in runs} == set(suite.SEEDS)
    assert not set(suite.SEEDS) & {p.overrides.get("seed", 0) for p in suite.PROBES}
    cfgs = [r.config() for r in runs]
    assert {c.method for c in cfgs} == {"fgsm", "fgsm_der", "n_fgsm"} and {c.lr for c in cfgs} == {0.003}
    assert sorted({c.der_beta for c in cfgs if c.method == "fgsm_der"}) == list(suite.DER_BETAS)
    assert len(suite.confirm_runs(co, None, co_rs=True)) == 3 * (2 * (1 + len(suite.DER_BETAS)) + 1)
    ro = suite.confirm_runs(None, {"n_train": 1000, "model": "small_cnn", "lr": 0.02, "epochs": 150})
    assert {r.config().method for r in ro} == {"sat", "sat_der", "trades", "weat_adv"} and len(ro) == 10
    # the budget's cut: WEAT_adv's arm keeps its first seed, the other arms all three
    assert sorted(r.overrides["seed"] for r in ro if r.config().method == "weat_adv") == [suite.SEEDS[0]]
    assert sorted(r.overrides["seed"] for r in ro if r.config().method == "trades") == list(suite.SEEDS)
    assert {r.config().epochs for r in ro} == {150}     # the chosen probe's length: its schedule's milestones
    assert {r.config().schedule for r in ro} == {suite.RO_BASE["schedule"]}
    short = suite.confirm_runs(None, {"n_train": 1000, "model": "small_cnn", "lr": 0.02, "epochs": 60})
    assert {r.config().epochs for r in short} == {60} and {r.name for r in short}.isdisjoint({r.name for r in ro})
    assert not set(suite.SUPERSEDED) & {r.name for r in ro}    # a superseded run is never adopted under a new plan
    assert len({r.name for r in (*runs, *ro)}) == len(runs) + len(ro)


def test_every_probe_is_a_valid_config_and_the_recorded_ones_match_it():
    names = [p.name for p in suite.PROBES]
    assert len(names) == len(set(names))
    for p in suite.PROBES:
        cfg = p.config()
        assert cfg.name == p.name
        run = suite.load(p)
        if run is not None:          # a committed (or running) probe record: the same config
            Run(cfg, run.dir).check_config()


def test_the_suite_lives_where_energy_suite_points(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_SUITE", str(tmp_path))
    assert suite.suite_root() == tmp_path
    assert suite.PROBES[0].directory() == tmp_path / "probes" / suite.PROBES[0].name
    rec = suite.record()
    assert all(p["outcome"] == {} for p in rec["probes"]) and rec["choice"]["co"] is None and rec["confirm"] == []
    assert len(rec["choice"]["pending"]["co"]) == sum(p.phenomenon == "co" for p in suite.PROBES)
    assert suite.replicates("co") == {} and suite.phenomenon_runs("co")["runs"] == {}
    assert suite.write_record() == tmp_path / "suite.json" and suite.read_record()["choice"]["ro"] is None


def test_the_final_evaluation_is_per_image_keyed_by_the_weights_and_reused(tmp_path, monkeypatch):
    import json

    import torch

    from energy_lib import bits
    from energy_lib.runs import train_or_load

    monkeypatch.setenv("ENERGY_SUITE", str(tmp_path))
    monkeypatch.setattr(suite, "N_TEST_FINAL", 40)
    entry = suite.SuiteRun("tiny-co", "co", "confirm", dict(
        method="fgsm", model="single_layer_cnn_f4", n_train=64, n_val=32, n_train_track=16, n_test_track=16,
        n_track_samples=8, epochs=2, batch_size=16, optimizer="adam", lr=0.005, eps=16 / 255, fgsm_alpha=1.0,
        track_attack_steps=1, device="cpu"))
    with pytest.raises(Exception, match="not finished"):
        suite.final_evaluation(entry)
    train_or_load(entry.config(), progress=False, root=entry.directory().parent)
    rec = suite.final_evaluation(entry)
    test, held = rec["splits"]["test"], rec["splits"]["heldout"]
    assert (test["n"], held["n"]) == (40, 32) and rec["key"]["attack"]["steps"] == 50
    clean, robust = bits.unpack(test["clean_correct"], 40), bits.unpack(test["robust_correct"], 40)
    assert (robust <= clean).all() and test["robust"] == robust.mean() and test["clean"] == clean.mean()
    path = entry.directory() / suite.FINAL_EVAL
    stored = json.loads(path.read_text())
    stored["splits"]["test"]["robust"] = -1.0                     # reused as stored while the key holds
    path.write_text(json.dumps(stored))
    assert suite.final_evaluation(entry)["splits"]["test"]["robust"] == -1.0
    stored["key"]["weights_sha256"] = "another model"             # another model's record: recomputed
    path.write_text(json.dumps(stored))
    assert suite.final_evaluation(entry)["splits"]["test"]["robust"] == test["robust"]
    assert suite.outcome(entry)["final"]["test"]["n"] == 40


def test_methods_are_compared_paired_per_seed_and_averaged_over_seeds(tmp_path, monkeypatch):
    """Issue 24: a comparison of methods pairs over images (per seed) and averages over the seeds,
    reporting both noises: here +2, +4 and +6 pt on 100 images -> mean +4.0, SD over seeds 2.0 pt."""
    import json

    import numpy as np

    from energy_lib import bits

    monkeypatch.setenv("ENERGY_SUITE", str(tmp_path))

    def arm(method, gains):
        out = {}
        for seed, gain in zip((10, 11, 12), gains):
            entry = suite.SuiteRun(f"{method}-s{seed}", "ro", "confirm", {"method": method, "seed": seed})
            robust = np.zeros(100, bool)
            robust[:30 + gain] = True
            entry.directory().mkdir(parents=True)
            (entry.directory() / suite.FINAL_EVAL).write_text(json.dumps({"splits": {"test": {
                "n": 100, "clean_correct": bits.pack(np.ones(100, bool)), "robust_correct": bits.pack(robust)}}}))
            out[seed] = entry
        return out
    found = suite.seed_averaged_comparison(arm("weat_adv", (2, 4, 6)), arm("trades", (0, 0, 0)), ("WEAT_adv", "TRADES"))
    assert [round(c.statistic, 4) for c in found["per_seed"].values()] == [0.02, 0.04, 0.06]
    assert found["mean"] == pytest.approx(0.04) and found["seed_sd"] == pytest.approx(0.02)
    assert "SD over 3 seed(s) 2.0 pt (training noise)" in found["sentence"] and "(image noise)" in found["sentence"]
    assert suite.seed_averaged_comparison({}, {}, ("a", "b")) is None


def test_chapter_6_reads_each_ro_arm_of_the_lens_seed_and_names_those_without_weights(tmp_path, monkeypatch):
    """The same set of suite models in every checkout: each RO arm's finished run of LENS_SEED (their
    best.pt is committed); a finished one without best.pt is named, other seeds and CO runs are not read."""
    monkeypatch.setenv("ENERGY_SUITE", str(tmp_path))
    ro = suite.confirm_runs(None, {"n_train": 1000, "model": "small_cnn", "lr": 0.02, "epochs": 150})
    co = suite.confirm_runs({"eps": 16 / 255, "lr": 0.003}, None)
    monkeypatch.setattr(suite, "current_plan", lambda root=None: suite.Plan({}, None, None, False, (*co, *ro)))
    by_name = {r.name: r for r in (*co, *ro)}

    def finish(name, weights):
        d = by_name[name].directory()
        d.mkdir(parents=True)
        for f in ("config.json", "DONE") + (("best.pt",) if weights else ()):
            (d / f).write_text("{}")

    finish("ro-sat-n1000-e150-s10", True)
    finish("ro-trades-n1000-e150-s10", False)
    finish("ro-sat-n1000-e150-s11", True)          # another seed
    finish("co-fgsm-e16-s10", True)                # another phenomenon
    by_name["ro-weat_adv-n1000-e150-s10"].directory().mkdir(parents=True)   # still training: no DONE
    found = suite.robust_models()
    assert suite.LENS_SEED == 10 and list(found["runs"]) == ["SAT (1000 images, small_cnn, lr 0.02, seed 10)"]
    assert found["runs"]["SAT (1000 images, small_cnn, lr 0.02, seed 10)"].dir == by_name["ro-sat-n1000-e150-s10"].directory()
    assert found["without_weights"] == ["TRADES (1000 images, small_cnn, lr 0.02, seed 10)"]
    assert found["arms"] == ["SAT"]   # chapter 6 says how these were trained (suite.how_trained)


def test_each_der_arm_is_judged_against_the_same_attack_without_der(monkeypatch):
    """Like with like: FGSM-RS + DER is read against the same seed's FGSM-RS run, FGSM + DER against
    FGSM's (planted runs and verdicts; the claim's name is in its sentence)."""
    from types import SimpleNamespace

    from energy_lib import verdicts

    assert suite.plain_arm("FGSM-RS + DER β=1") == "FGSM-RS" and suite.plain_arm("FGSM + DER β=0.5") == "FGSM"
    arms = {"FGSM": {10: "fgsm-10", 11: "fgsm-11"}, "FGSM-RS": {10: "rs-10"},
            "FGSM + DER β=1": {10: "der-10", 11: "der-11"}, "FGSM-RS + DER β=1": {10: "rsder-10", 12: "rsder-12"}}
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: arms)
    run = SimpleNamespace(metrics=None, config=SimpleNamespace(n_train_track=4))
    monkeypatch.setattr(suite, "_read_co", lambda entry, root=None: (run, None, SimpleNamespace(
        verdict=verdicts.PRESENT, of=entry)))
    monkeypatch.setattr("energy_lib.regime.tracked_points", lambda metrics: None)
    monkeypatch.setattr(verdicts, "energy_divergence_at_onset",
                        lambda points, co, n: SimpleNamespace(verdict=verdicts.REPRODUCED))
    pairs = []

    def der(plain, with_der):
        pairs.append((plain.of, with_der.of))
        return SimpleNamespace(verdict=verdicts.REPRODUCED)
    monkeypatch.setattr(verdicts, "der_prevents_co", der)
    claims = suite.co_claims()
    assert sorted(pairs) == [("fgsm-10", "der-10"), ("fgsm-11", "der-11"),
                             ("rs-10", "rsder-10")]                      # seed 12 has no FGSM-RS run: not read
    assert claims["FGSM-RS + DER β=1"].sentence.startswith(
        "FGSM-RS + DER β=1 prevents the collapse of the same seed's FGSM-RS run: 1 run(s) read")
    assert claims["FGSM + DER β=1"].verdict == verdicts.REPRODUCED
    assert set(claims) == {"co", "divergence", "FGSM + DER β=1", "FGSM-RS + DER β=1"}


def test_the_chapters_say_how_many_planned_seeds_have_finished(monkeypatch):
    from types import SimpleNamespace

    runs = [SimpleNamespace(phenomenon=p, finished=f, name=n) for p, f, n in (
        ("ro", True, "SAT"), ("ro", False, "SAT"), ("ro", True, "SAT"), ("ro", False, "TRADES"),
        ("ro", True, "SAT + DER"), ("co", True, "FGSM"))]
    monkeypatch.setattr(suite, "current_plan", lambda root=None: SimpleNamespace(confirm=runs))
    monkeypatch.setattr(suite, "arm", lambda entry: entry.name)
    assert suite.seeds_text("ro") == "SAT 2 of 3, TRADES 0 of 1, SAT + DER 1 of 1"
    assert suite.seeds_text("ro", ["TRADES", "SAT", "WEAT_adv"]) == "TRADES 0 of 1, SAT 2 of 3"
    assert suite.seeds_text("co") == "FGSM 1 of 1"


def test_each_committed_suite_checkpoint_is_the_one_its_records_were_written_with(repo_root):
    """The suite's records rebuild bit for bit from a committed run's checkpoint (issue 24): every
    best.pt under runs/suite/ was made by its run's config, holds the epoch the run's records select
    (train.best_epoch on metrics.jsonl), holds exactly the first rows of metrics.jsonl and
    samples.jsonl, and its weights give the energies those rows record for the tracked images. Every
    RO arm of LENS_SEED that finished has one (chapter 6 puts them through the energy lens)."""
    import json

    import torch

    from energy_lib import fileio
    from energy_lib.runs import load_checkpoint, selected_metrics
    from energy_lib.train import load_training_data

    root = repo_root / "runs" / "suite"
    plan = suite.current_plan(root)
    lens = [e for e in plan.confirm if e.phenomenon == "ro" and e.overrides.get("seed") == suite.LENS_SEED]
    assert lens and all((e.directory(root) / "DONE").is_file() for e in lens)
    missing = [e.name for e in lens if not (e.directory(root) / "best.pt").is_file()]
    assert not missing, f"finished lens runs without a committed best.pt: {missing}"
    committed = sorted(root.rglob("best.pt"))
    assert len(committed) == len(lens)                      # weights only where a chapter needs them
    entries = {e.directory(root): e for e in plan.entries().values()}
    for path in committed:
        run = suite.load(entries[path.parent], root)
        ckpt = load_checkpoint(path)
        assert run.checkpoint_info("best")["epoch"] == ckpt["epoch"] == int(selected_metrics(run)["epoch"])
        for filename, key in (("metrics.jsonl", "metrics"), ("samples.jsonl", "samples")):
            rows = fileio.read_jsonl(path.parent / filename)
            assert json.loads(json.dumps(ckpt[key])) == rows[:ckpt["epoch"]], (path, filename)
        assert len(run.metrics) == run.config.epochs and run.done   # the full records check against DONE
        kept = fileio.read_jsonl(path.parent / "samples.jsonl")[ckpt["epoch"] - 1]
        x, y = load_training_data(run.config).train_track.tensors()
        x, y = x[:run.config.n_track_samples], y[:run.config.n_track_samples]
        with torch.no_grad():
            logits = run.load_model("best").double()(x.double())
        energy = -torch.logsumexp(logits, dim=1)
        class_energy = -logits.gather(1, y[:, None]).squeeze(1)
        # the records keep 5 decimals of fp32 energies: a few 1e-6 of float noise around the rounding
        assert torch.allclose(energy, torch.tensor(kept["E_nat"], dtype=torch.float64), rtol=0, atol=2e-5), path
        assert torch.allclose(class_energy, torch.tensor(kept["Ey_nat"], dtype=torch.float64), rtol=0, atol=2e-5)


def test_the_alarm_is_read_on_every_ro_run_and_replicated_per_arm(monkeypatch):
    """Chapter 2's ΔE alarm on planted RO runs of known answer (20 epochs, 500 test images). SAT: ΔE
    drops at epoch 13 (the rule stops at 15) with the same 30 % of the images robust at every epoch: as
    good as PGD validation in both seeds, reproduced. TRADES: the rule never fires and the last epoch
    loses 20 pt to the one PGD validation keeps, in both seeds: not reproduced. WEAT_adv: at the
    rule's epoch 30 pt more images are robust than at validation's choice (better, which meets "no
    worse"), then one seed worse: the seeds disagree. SAT + DER: better in its only seed."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from energy_lib import bits, verdicts

    def run(delta_e, robust_per_epoch, val=None):
        correct = np.zeros((20, 500), dtype=bool)
        for i, k in enumerate(robust_per_epoch):
            correct[i, :k] = True
        m = pd.DataFrame({"epoch": np.arange(1, 21), "train_dE_mean": delta_e, "train_dE_std": 0.0,
                          "val_acc_adv": correct.mean(1) if val is None else val, "test_acc_adv": correct.mean(1),
                          "test_correct_adv": [bits.pack(c) for c in correct]})
        return SimpleNamespace(metrics=m, config=SimpleNamespace(n_test_track=500, n_train_track=100))

    wiggle = -0.10 + 0.01 * np.where(np.arange(20) % 2 == 0, 1.0, -1.0)
    drop = wiggle.copy()
    drop[12:] = -1.0
    late_loss = [100] * 20
    late_loss[5] = 200                                   # validation (= test here) keeps epoch 6; the end has 20 pt less
    early_val = np.full(20, 0.2)
    early_val[5] = 0.9                                   # validation keeps epoch 6 ...
    better = [100] * 20
    better[14] = 250                                     # ... and the rule's epoch 15 has 30 pt more robust images
    planted = {"sat-10": run(drop, [150] * 20), "sat-11": run(drop, [150] * 20), "trades-10": run(wiggle, late_loss),
               "trades-11": run(wiggle, late_loss), "weat-10": run(drop, better, early_val),
               "weat-11": run(wiggle, late_loss), "der-10": run(drop, better, early_val)}
    arms = {"SAT": {10: "sat-10", 11: "sat-11"}, "TRADES": {10: "trades-10", 11: "trades-11"},
            "WEAT_adv": {10: "weat-10", 11: "weat-11"}, "SAT + DER": {10: "der-10"}}
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: arms if phenomenon == "ro" else {})
    monkeypatch.setattr(suite, "load", lambda entry, root=None: planted[entry])
    found = suite.ro_alarms()
    runs_, claims = found["runs"], found["claims"]
    assert [(a.fired, a.alarm_epoch, a.verdict) for a in runs_["SAT"].values()] == [(True, 15, verdicts.ALARM_AS_GOOD)] * 2
    assert [(a.fired, a.alarm_epoch, a.selection_epoch, a.verdict) for a in runs_["TRADES"].values()] == [
        (False, 20, 6, verdicts.ALARM_WORSE)] * 2
    assert (runs_["WEAT_adv"][10].alarm_epoch, runs_["WEAT_adv"][10].verdict) == (15, verdicts.ALARM_BETTER)
    assert claims["SAT"].verdict == verdicts.REPRODUCED
    assert claims["SAT"].sentence.startswith(
        "SAT: stopping where ΔE(x) diverges keeps a model no worse than PGD validation's in every one of the 2 runs")
    assert claims["TRADES"].verdict == verdicts.NOT_REPRODUCED
    assert claims["TRADES"].sentence.startswith("TRADES: stopping where ΔE(x) diverges keeps a model no worse than PGD "
                                                "validation's: worse than PGD validation in every one of the 2 runs")
    assert claims["WEAT_adv"].verdict == verdicts.INCONCLUSIVE_SCALE
    assert "the runs disagree (1 no worse than PGD validation, 1 worse than PGD validation, 0 inconclusive)" in \
        claims["WEAT_adv"].sentence
    assert claims["SAT + DER"].verdict == verdicts.INCONCLUSIVE_SCALE
    assert "1 run(s) read, fewer than the 2 a replication needs (seed 10: no worse than PGD validation)" in \
        claims["SAT + DER"].sentence
    # the drift after the warm-up (epochs 1-5): -1.0 - (-0.09) with the drop, -0.11 - (-0.09) without it
    assert found["fired"] == 4 and found["fired_text"] == (
        "the rule fired in 4 of the 7 runs; from the end of its warm-up to the last epoch the mean ΔE(x) moved by "
        "between -0.910 and -0.020 (over the runs)")
    planted.update({name: run(wiggle, [150] * 20) for name in ("sat-10", "sat-11", "weat-10", "der-10")})
    none = suite.ro_alarms()
    assert none["fired"] == 0 and none["fired_text"].startswith(
        "the rule fired in 0 of the 7 runs; from the end of its warm-up to the last epoch the mean ΔE(x) moved by "
        "between -0.020 and -0.020 (over the runs), a drift that never stayed below")
    assert none["fired_text"].endswith('"worse" below means its last epoch is worse than the epoch PGD validation keeps')
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: {})
    assert suite.ro_alarms() == {}


def test_the_method_claims_read_each_arm_against_the_right_one(monkeypatch):
    """Chapters 3 and 4 on planted RO runs of known answer: TRADES' late ΔE(x) is nearer 0 than SAT's and
    WEAT_adv's nearer 0 than TRADES' (by far more than the noise of 200 images) in seeds 10 and 11: both
    reproduced; each no-RO claim reads its own arm's runs (planted verdicts, named by run); SAT + DER's
    final epoch has 60 of 500 more images robust than SAT's: at least 1 pt above it in both seeds."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from energy_lib import bits, verdicts
    from energy_lib import regime as regime_module

    def run(name, delta_e, robust):
        samples = pd.DataFrame({"epoch": np.repeat([1, 2, 3, 4], 200), "sample": np.tile(np.arange(200), 4),
                                "dE": delta_e + 0.01 * np.tile((-1.0) ** np.arange(200), 4)})   # mean delta_e
        correct = np.zeros(500, dtype=bool)
        correct[:robust] = True
        metrics = pd.DataFrame({"epoch": [1], "test_acc_adv": [correct.mean()], "test_correct_adv": [bits.pack(correct)]})
        return SimpleNamespace(name=name, tracked_samples=samples, metrics=metrics,
                               config=SimpleNamespace(n_test_track=500))

    planted = {f"{arm}-{s}": run(f"{arm}-{s}", d, r) for arm, d, r in (
        ("sat", -0.5, 100), ("trades", -0.2, 100), ("der", -0.3, 160), ("weat", -0.05, 100)) for s in (10, 11)}
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: {
        "SAT": {10: "sat-10", 11: "sat-11"}, "TRADES": {10: "trades-10", 11: "trades-11"},
        "SAT + DER": {10: "der-10", 11: "der-11"}, "WEAT_adv": {10: "weat-10", 11: "weat-11"}})
    monkeypatch.setattr(suite, "load", lambda entry, root=None: planted[entry])
    monkeypatch.setattr(regime_module, "regime_of", lambda run: run.name)
    ro_verdicts = {"trades-10": verdicts.ABSENT, "trades-11": verdicts.ABSENT, "der-10": verdicts.PRESENT,
                   "der-11": verdicts.PRESENT, "weat-10": verdicts.ABSENT, "weat-11": verdicts.INCONCLUSIVE}
    monkeypatch.setattr(verdicts, "robust_overfitting_of",
                        lambda metrics, n, regime: SimpleNamespace(verdict=ro_verdicts[regime]))
    monkeypatch.setattr(suite, "seed_averaged_comparison", lambda a, b, labels, root=None: {"labels": labels})
    less = {("sat-10", "trades-10"): verdicts.REPRODUCED, ("sat-11", "trades-11"): verdicts.REPRODUCED,
            ("sat-10", "weat-10"): verdicts.NOT_REPRODUCED, ("sat-11", "weat-11"): verdicts.INCONCLUSIVE_SCALE}
    monkeypatch.setattr(verdicts, "less_robust_overfitting_of", lambda a, b, na, nb, regime_a, regime_b, labels: (
        SimpleNamespace(verdict=less[(regime_a, regime_b)], labels=labels)))
    claims = suite.ro_method_claims()
    assert claims["trades_less_ro"].verdict == verdicts.REPRODUCED
    assert claims["trades_less_ro"].sentence.startswith("TRADES overfits less than SAT in every one of the 2 runs")
    assert claims["trades_less_ro_runs"][11].labels == ("SAT", "TRADES")
    assert claims["weat_less_ro"].sentence == ("WEAT_adv overfits less than SAT: not reproduced in 1 of the 2 runs and "
                                               "inconclusive in the other 1, so not every run speaks (seed 10: not "
                                               "reproduced, seed 11: inconclusive at this scale)")
    assert claims["weat_less_ro_runs"][10].labels == ("SAT", "WEAT_adv")
    assert claims["alignment"].verdict == claims["weat_alignment"].verdict == verdicts.REPRODUCED
    assert claims["weat_alignment"].sentence.startswith("WEAT_adv keeps ΔE(x) closer to 0 than TRADES in every one")
    first = claims["weat_alignment_runs"][10]
    assert first.labels == ("TRADES", "WEAT_adv") and (first.mean_a, first.mean_b) == pytest.approx((-0.2, -0.05))
    assert claims["trades_ro"].verdict == verdicts.REPRODUCED                 # absent in both: as claimed
    assert claims["der_ro"].verdict == verdicts.NOT_REPRODUCED                # present in both
    assert claims["weat_ro"].verdict == verdicts.INCONCLUSIVE_SCALE and "seed 11: inconclusive" in claims["weat_ro"].sentence
    assert claims["der_final"].verdict == verdicts.REPRODUCED
    assert claims["weat_vs_trades"] == {"labels": ("WEAT_adv", "TRADES")}
    assert claims["der_vs_sat"] == {"labels": ("SAT + DER", "SAT")}


def test_the_ro_claims_read_only_the_sat_arm_per_seed(monkeypatch):
    """"SAT overfits" and the three phases are read on SAT's confirming runs only (planted verdicts named
    by run), each replicated over its seeds; the phase verdict is given that seed's RO verdict."""
    from types import SimpleNamespace

    from energy_lib import regime as regime_module
    from energy_lib import verdicts

    planted = {name: SimpleNamespace(name=name, metrics={"train_dE_mean": name, "epoch": None},
                                     config=SimpleNamespace(n_test_track=500))
               for name in ("sat-10", "sat-11", "sat-12", "trades-10")}
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: {
        "SAT": {10: "sat-10", 11: "sat-11", 12: "sat-12"}, "TRADES": {10: "trades-10"}})
    monkeypatch.setattr(suite, "load", lambda entry, root=None: planted[entry])
    monkeypatch.setattr(regime_module, "regime_of", lambda run: run.name)
    ro = {"sat-10": verdicts.PRESENT, "sat-11": verdicts.PRESENT, "sat-12": verdicts.INCONCLUSIVE}
    monkeypatch.setattr(verdicts, "robust_overfitting_of",
                        lambda metrics, n, regime: SimpleNamespace(verdict=ro[regime], of=regime))
    monkeypatch.setattr(verdicts, "phase_structure", lambda curve, epochs: curve)
    monkeypatch.setattr(verdicts, "phases_reproduced", lambda structure, ro_: SimpleNamespace(
        verdict=verdicts.REPRODUCED if structure == ro_.of and ro_.verdict == verdicts.PRESENT else verdicts.NOT_REPRODUCED))
    claims = suite.ro_claims()
    assert claims["ro"].verdict == verdicts.INCONCLUSIVE_SCALE
    assert claims["ro"].sentence.startswith("SAT overfits (robust overfitting): present in 2 of the 3 runs")
    assert claims["phases"].sentence.endswith("(seed 10: reproduced, seed 11: reproduced, seed 12: not reproduced)")
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: {"TRADES": {10: "trades-10"}})
    assert suite.ro_claims() == {}


def test_quiet_hours_are_the_epochs_at_the_pace_of_the_fastest_tenth():
    assert suite.quiet_hours([36.0] * 100) == 1.0                       # 100 epochs of 36 s
    assert suite.quiet_hours([36.0] * 90 + [360.0] * 10) == 1.0         # a slow tenth (another job) is left out
    assert suite.quiet_hours([36.0] * 80 + [360.0] * 20) == 1.0
    assert suite.quiet_hours([360.0] * 89 + [36.0] * 11) == 1.0         # only the fastest tenth sets the pace
    assert suite.quiet_hours([0.0, 36000.0]) == 2.0                     # numpy's linear 10th percentile: 3,600 s
    assert suite.quiet_hours([]) == 0.0


def test_how_trained_names_each_arm_with_its_seeds_and_the_command(monkeypatch):
    """Chapters 2-4 and 6 say which runs they read, how they were trained and what retrains them:
    arms trained alike share one description, an arm trained otherwise gets its own."""
    ro = {(suite.arm(r), r.overrides["seed"]): r
          for r in suite.confirm_runs(None, {"n_train": 1000, "model": "small_cnn", "lr": 0.02, "epochs": 150})}
    other = {suite.arm(r): r for r in suite.confirm_runs(None, {"n_train": 2000, "model": "small_cnn", "lr": 0.05,
                                                                "epochs": 40}) if r.overrides["seed"] == 12}
    monkeypatch.setattr(suite, "replicates", lambda phenomenon, root=None: {
        "SAT": {11: ro[("SAT", 11)], 10: ro[("SAT", 10)]}, "WEAT_adv": {10: ro[("WEAT_adv", 10)]},
        "TRADES": {12: other["TRADES"]}})
    setup = ("small_cnn, 150 epochs on 1,000 cifar10 training images (500 more held out to select best.pt), batch "
             "size 64, PGD-5 training attack at ε = 8/255, SGD at lr 0.02 on a piecewise schedule (x0.1 at 50 % and "
             "75 %)")
    tail = "; committed under runs/suite/confirm/, make suite retrains what is missing"
    assert suite.how_trained("ro", ["SAT", "WEAT_adv"]) == f"SAT (seeds 10, 11) and WEAT_adv (seed 10) on {setup}{tail}"
    assert suite.how_trained("ro", ["TRADES", "SAT"]).startswith("TRADES (seed 12) on small_cnn, 40 epochs on 2,000 ")
    assert f"; SAT (seeds 10, 11) on {setup}{tail}" in suite.how_trained("ro", ["TRADES", "SAT"])
    assert suite.how_trained("ro", seed=11) == f"SAT (seed 11) on {setup}{tail}"
    assert suite.how_trained("ro", ["SAT + DER"]) == ("no confirming run of these arms has finished yet (make suite "
                                                     "trains them)")


def test_the_budget_sentence_says_within_or_over_for_each_reading():
    assert suite.budget_sentence(29.2, 17.4, suite.CONFIRM_BUDGET) == (
        "29.2 wall hours of one-thread processes, over the 25 core-hour budget as an upper bound; about 17.4 "
        "core-hours at the pace of each run's fastest tenth of epochs, within it by that estimate")
    assert suite.budget_sentence(5.0, 3.4, suite.PROBE_BUDGET).startswith("5.0 wall hours of one-thread processes, "
                                                                           "within the 5 core-hour budget")
    assert suite.budget_sentence(7.0, 5.01, 5).endswith("about 5.0 core-hours at the pace of each run's fastest tenth "
                                                        "of epochs, over it by that estimate")
