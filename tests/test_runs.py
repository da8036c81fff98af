"""The run store: resume equals an uninterrupted run, finished runs are reused, configs are never
overwritten, writes are atomic, corrupt checkpoints and non-finite losses fail clearly."""
import json
import os
from pathlib import Path

os.environ.setdefault("ENERGY_DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

import pytest
import torch

from energy_lib import fileio, losses, runs
from energy_lib.config import TrainConfig
from energy_lib.runs import CheckpointError, ConfigMismatchError, Run, run_dir, train_or_load
from energy_lib.train import NonFiniteLossError

TINY = TrainConfig.from_profile("smoke", overrides=dict(
    n_train=64, batch_size=16, epochs=3, n_train_track=16, n_test_track=16, n_track_samples=8,
    attack_steps=1, track_attack_steps=1, device="cpu"))
TINY1 = TINY.replace(epochs=1, schedule="constant")   # one-cycle needs more than 1 warm-up step
TIMING = ("time_train_s", "time_track_s", "images_per_s")


def failing_at(epoch, make_error):
    """The SAT loss, except that it fails at the first step of `epoch` (0-based)."""
    original = losses.LOSSES["sat"]

    def loss_fn(model, x, y, cfg, ctx):
        out = original(model, x, y, cfg, ctx)
        if ctx.epoch == epoch:
            make_error(out)
        return out

    return loss_fn


def results(run):
    frame = run.metrics.drop(columns=list(TIMING))
    return frame.to_dict("records"), run.tracked_samples


def test_run_dir_is_readable_and_hashed(store):
    d = run_dir(TINY)
    assert d.parent == store and d.name.startswith("sat-cifar10-small_cnn-n64-e3-")
    assert run_dir(TINY.replace(beta=5.0)) != d
    assert run_dir(TINY.replace(name="mine")) == store / "mine"


def test_resume_after_interrupt_equals_uninterrupted_run(store, tmp_path, monkeypatch):
    full = train_or_load(TINY, progress=False)
    assert full.done and len(full.metrics) == 3

    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "other"))

    def interrupt(out):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setitem(losses.LOSSES, "sat", failing_at(2, interrupt))
        with pytest.raises(KeyboardInterrupt):
            train_or_load(TINY, progress=False)
    part = Run(TINY, run_dir(TINY))
    assert not part.done and len(part.metrics) == 2 and part.checkpoint_info("last")["epoch"] == 2
    resumed = train_or_load(TINY, progress=False)
    assert resumed.done
    assert len(resumed.env["sessions"]) == 2 and resumed.env["sessions"][1]["resumed_from_epoch"] == 2

    metrics_a, samples_a = results(full)
    metrics_b, samples_b = results(resumed)
    assert metrics_a == metrics_b                                  # exact, every float
    assert samples_a.equals(samples_b)
    for which in ("last", "best"):
        sa, sb = full.load_model(which).state_dict(), resumed.load_model(which).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_finished_run_is_loaded_not_retrained(store, monkeypatch):
    first = train_or_load(TINY1, progress=False)

    def explode(*a, **k):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setitem(losses.LOSSES, "sat", explode)
    again = train_or_load(TINY1, progress=False)
    assert again.dir == first.dir and again.metrics.equals(first.metrics)
    model = again.load_model("best")
    assert not model.training
    best = again.checkpoint_info("best")
    assert best["best"]["epoch"] == 1 and best["best"]["metric"] == again.metrics["val_acc_adv"].iloc[-1]


def test_a_directory_with_another_config_is_never_overwritten(store):
    Run(TINY.replace(name="shared"), run_dir(TINY.replace(name="shared"))).open()
    before = (store / "shared" / "config.json").read_text()
    with pytest.raises(ConfigMismatchError, match=r"different config.*'epochs': \(3, 5\).*another `name`"):
        train_or_load(TINY.replace(name="shared", epochs=5), progress=False)
    assert (store / "shared" / "config.json").read_text() == before


def test_corrupt_or_truncated_checkpoint_names_the_file(store):
    run = train_or_load(TINY1, progress=False)
    last = run.dir / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {last} is corrupt or truncated.*Delete the run directory"):
        run.load_model("last")
    # an unfinished run resumes from last.pt, so the same clear error comes from train_or_load,
    # and its advice works: without last.pt the run restarts from epoch 0 and finishes
    (run.dir / "DONE").unlink()
    with pytest.raises(CheckpointError, match="last.pt is corrupt.*Delete it to restart this run from epoch 0"):
        train_or_load(TINY1, progress=False)
    last.unlink()
    assert train_or_load(TINY1, progress=False).done and last.read_bytes() != data[: len(data) // 2]


def test_a_crash_during_a_save_leaves_the_previous_checkpoint(store, monkeypatch):
    run = train_or_load(TINY1, progress=False)
    last = run.dir / "last.pt"
    before = last.read_bytes()

    def crashing_write(f, data, path):
        f.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "_write_bytes", crashing_write)
    with pytest.raises(fileio.StoreWriteError, match=f"cannot write {last}: No space left.*previous version is intact"):
        runs.atomic_torch_save({"x": 1}, last)
    assert last.read_bytes() == before
    assert [p.name for p in run.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(store, monkeypatch):
    def poison(out):
        out.loss = out.loss * float("nan")

    monkeypatch.setitem(losses.LOSSES, "sat", failing_at(1, poison))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2.*last.pt keeps epoch 1 \(finite"):
        train_or_load(TINY, progress=False)
    run = Run(TINY, run_dir(TINY))
    assert not run.done and run.checkpoint_info("last")["epoch"] == 1 and len(run.metrics) == 1
    assert torch.isfinite(torch.cat([p.flatten() for p in run.load_model("last").parameters()])).all()


def test_run_record_holds_config_env_and_tracking(store):
    run = train_or_load(TINY1, progress=False)
    assert TrainConfig.from_dict(json.loads((run.dir / "config.json").read_text())) == TINY1
    env = run.env["sessions"][0]
    for key in ("torch", "cuda", "device", "precision", "channels_last", "compile", "git", "evaluation_precision"):
        assert key in env
    assert env["device"] == "cpu" and env["precision"] == "fp32" and env["n_train"] == 64
    row = run.metrics.iloc[0]
    for split in ("train", "test"):
        for key in ("E_nat", "E_adv", "Ey_nat", "Ey_adv", "dE", "dEy"):
            assert {f"{split}_{key}_{s}" for s in ("mean", "std", "q05", "q50", "q95")} <= set(row.index)
        # the recorded identities: ΔE = E(x) - E(x*) on the means; CE = E(x,y) - E(x) (PAPER 1.2)
        assert row[f"{split}_dE_mean"] == pytest.approx(row[f"{split}_E_nat_mean"] - row[f"{split}_E_adv_mean"],
                                                        abs=1e-5)
        assert row[f"{split}_ce_nat"] == pytest.approx(row[f"{split}_Ey_nat_mean"] - row[f"{split}_E_nat_mean"],
                                                       abs=1e-5)
    assert "PGD-CE" in run.tracking_attack["test"] and "1 steps" in run.tracking_attack["test"]
    # which test images were robust, packed per epoch: their count is the tracked accuracy's
    from energy_lib import bits
    correct = bits.unpack(row["test_correct_adv"], TINY1.n_test_track)
    assert correct.sum() == round(row["test_acc_adv"] * TINY1.n_test_track)
    samples = run.tracked_samples
    assert len(samples) == 8 and (samples["Ey_nat"] >= samples["E_nat"] - 1e-4).all()


def test_robust_runs_are_multi_step_runs_of_the_dataset_best_validation_first():
    """Ranked by the validation PGD accuracy best.pt was selected on (the best of the selection
    window), never by test accuracy: here the test accuracies rank the other way round."""
    from types import SimpleNamespace

    import pandas as pd

    def run(method, dataset, val, test):
        # 20 epochs: epochs 19 and 20 compete for best.pt; epoch 1 (val 0.99) is outside the window
        vals = [0.99] + [0.0] * 17 + [val, val / 2]
        return SimpleNamespace(config=TrainConfig(method=method, dataset=dataset, epochs=20), dir=method,
                               metrics=pd.DataFrame({"epoch": range(1, 21), "val_acc_adv": vals,
                                                     "test_acc_adv": [0.0] * 18 + [test, 0.99]}))

    sat, trades = run("sat", "cifar10", 0.40, 0.30), run("trades", "cifar10", 0.35, 0.60)
    fgsm = run("fgsm_rs", "cifar10", 0.60, 0.60)    # single-step: possibly collapsed, never offered
    other = run("weat_adv", "cifar100", 0.90, 0.9)  # another dataset
    assert runs.robust_runs([trades, fgsm, sat, other], "cifar10") == [sat, trades]
    assert runs.robust_runs([fgsm, other], "cifar10") == []
    chosen = runs.selected_metrics(trades)          # best.pt's epoch (19), not the last one
    assert chosen["epoch"] == 19 and chosen["test_acc_adv"] == 0.60


def test_every_setting_but_name_and_device_is_part_of_a_runs_identity():
    """A setting missing from the identity would let a run trained one way be reused for another
    (a bf16 run for an fp32 config). Every TrainConfig field is in it, except the name and the device
    (where it trains) and the later-added fields at their defaults (old records stay the same runs)."""
    import dataclasses

    from energy_lib.config import FIELDS_ADDED_LATER

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    at_default = {k for k, v in FIELDS_ADDED_LATER.items() if getattr(TINY, k) == v}
    assert set(runs.identity(TINY)) == fields - {"name", "device"} - at_default
    for change in ({"precision": "bf16"}, {"channels_last": True}, {"seed": 1}, {"der_beta": 0.5}):
        other = TINY.replace(**change)
        assert runs.config_hash(other) != runs.config_hash(TINY) and run_dir(other) != run_dir(TINY), change
    assert runs.config_hash(TINY.replace(name="x", device="auto")) == runs.config_hash(TINY)


def test_where_a_run_trains_is_not_part_of_its_identity(store):
    first = train_or_load(TINY1, progress=False)
    again = train_or_load(TINY1.replace(device="auto"), progress=False)   # reused, not retrained
    assert again.dir == first.dir and again.done
    assert len(again.env["sessions"]) == 1


def test_the_reference_run_is_trained_by_its_command_and_found_wherever_the_store_is(store, tmp_path,
                                                                                     monkeypatch):
    """`python -m energy_lib reference` trains config.REFERENCE_TRAINING into the reference folder;
    finished_runs() (the default store, here an empty $ENERGY_RUNS) then lists it first among the
    robust runs, an explicit store does not, and a second command trains nothing."""
    from energy_lib import __main__ as cli
    from energy_lib import config, train

    reference = tmp_path / "reference"
    monkeypatch.setattr(config, "REFERENCE_TRAINING", dict(
        method="sat", n_train=64, batch_size=16, epochs=2, n_val=16, n_train_track=16, n_test_track=16,
        n_track_samples=8, attack_steps=1, track_attack_steps=1, schedule="constant"))
    monkeypatch.setattr(config, "reference_root", lambda: reference)
    monkeypatch.setattr(runs, "reference_root", lambda: reference)
    assert runs.reference_run() is None and runs.finished_runs() == []

    assert cli.main(["reference", "--device", "cpu", "--no-progress"]) == 0
    found = runs.reference_run()
    assert found is not None and found.dir.parent == reference and found.dir.name == config.REFERENCE_RUN_NAME
    assert found.config == config.reference_config().canonical() and len(found.metrics) == 2
    assert runs.is_reference(found) and "make reference" in runs.describe(found)
    assert runs.describe(found).startswith("SAT on small_cnn, 2 epochs on 64 cifar10 training images")
    assert [r.dir for r in runs.finished_runs()] == [found.dir]
    assert runs.robust_runs(runs.finished_runs(), "cifar10")[0].dir == found.dir
    assert runs.finished_runs(store) == [] and not store.exists()   # nothing written to the store

    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("the finished reference run was retrained"))
    assert cli.main(["reference", "--device", "cpu", "--no-progress"]) == 0
    # a definition that no longer matches the committed run (e.g. a changed default): left out, no crash
    monkeypatch.setitem(config.REFERENCE_TRAINING, "lr", 0.05)
    with pytest.warns(UserWarning, match="reference run is not used"):
        assert runs.reference_run() is None
    with pytest.warns(UserWarning):
        assert runs.finished_runs() == []


def test_describe_is_the_one_phrase_of_how_a_run_was_trained(tmp_path, monkeypatch):
    sat = TINY1.replace(method="sat", model="small_cnn", n_train=64, n_val=16, epochs=2, batch_size=32,
                        attack_steps=3, seed=1, eps=8 / 255)
    assert runs.describe(Run(sat, tmp_path / "sat")) == (
        "SAT on small_cnn, 2 epochs on 64 cifar10 training images (16 more held out to select best.pt), batch size "
        "32, PGD-3 training attack at ε = 8/255, seed 1")
    fgsm = TINY1.replace(method="fgsm_rs", n_train=None, n_val=1000, epochs=5, batch_size=128, seed=0, eps=16 / 255)
    assert runs.describe(Run(fgsm, tmp_path / "fgsm")) == (
        "FGSM_RS on small_cnn, 5 epochs on all 50,000 cifar10 training images less the 1,000 held out to select "
        "best.pt, batch size 128, single-step training attack at ε = 16/255, seed 0")
    monkeypatch.setattr(runs, "reference_root", lambda: tmp_path / "reference")
    reference = Run(sat, tmp_path / "reference" / "r")
    note = " (the committed reference run, trained by make reference)"
    assert runs.describe(reference) == runs.describe(Run(sat, tmp_path / "sat")) + note
    assert runs.describe(reference, reference_note=False) == runs.describe(Run(sat, tmp_path / "sat"))
    assert "`" not in runs.describe(reference)   # chapters glue it as plain text


def test_the_committed_reference_run_matches_its_definition(repo_root):
    """The reference run in git (runs/reference/) is the one config.REFERENCE_TRAINING defines,
    finished, and its best.pt loads (a changed definition without retraining fails here)."""
    from energy_lib import config

    directory = config.reference_root() / config.REFERENCE_RUN_NAME
    if not (directory / "DONE").exists():
        pytest.fail(f"{directory} is not a finished run: train it with `make reference` and commit it")
    run = runs.reference_run()
    assert run is not None and run.dir == directory
    model = run.load_model("best", "cpu")
    assert sum(p.numel() for p in model.parameters()) > 0


SINGLE = TINY.replace(method="fgsm", model="single_layer_cnn_f4", optimizer="adam", lr=0.005, eps=16 / 255,
                      fgsm_alpha=1.0)


def _failing(method, epoch, step, make_error):
    """`method`'s loss, except that it fails at step `step` of `epoch` (both 0-based)."""
    original = losses.LOSSES[method]

    def loss_fn(model, x, y, cfg, ctx):
        if ctx.epoch == epoch and ctx.step == step:
            make_error()
        return original(model, x, y, cfg, ctx)

    return loss_fn


def test_within_epoch_tracking_leaves_the_trajectory_alone_and_resumes_exactly(store, tmp_path, monkeypatch):
    """tracks_per_epoch=2 adds a tracking point after half of each epoch's steps (progress 0.5,
    1.5, 2.5) without changing the weights the run ends with; a run interrupted after such a
    point and resumed equals the uninterrupted one (Adam's state included)."""
    once = train_or_load(SINGLE, progress=False)
    twice = train_or_load(SINGLE.replace(tracks_per_epoch=2), progress=False)
    assert run_dir(SINGLE) != run_dir(SINGLE.replace(tracks_per_epoch=2))
    a, b = once.load_model("last").state_dict(), twice.load_model("last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = twice.metrics.to_dict("records")
    assert [[p["progress"] for p in r["within_epoch"]] for r in rows] == [[0.5], [1.5], [2.5]]
    assert "within_epoch" not in once.metrics.columns
    from energy_lib.regime import tracked_points
    points = tracked_points(twice.metrics)
    assert points["progress"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert {"test_acc_adv", "train_aae_frac", "test_correct_adv"} <= set(points.columns)

    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "other"))
    cfg = SINGLE.replace(tracks_per_epoch=2).canonical()

    def interrupt():
        raise KeyboardInterrupt

    with monkeypatch.context() as m:   # killed in epoch 2 after its within-epoch point (4 steps: after step 2)
        m.setitem(losses.LOSSES, "fgsm", _failing("fgsm", 1, 3, interrupt))
        with pytest.raises(KeyboardInterrupt):
            train_or_load(cfg, progress=False)
    assert Run(cfg, run_dir(cfg)).checkpoint_info("last")["epoch"] == 1
    resumed = train_or_load(cfg, progress=False)
    assert results(resumed)[0] == results(twice)[0]                  # exact, within-epoch points included
    c = resumed.load_model("last").state_dict()
    assert all(torch.equal(b[k], c[k]) for k in b)


def test_single_step_runs_track_the_share_of_abnormal_adversarial_examples(store):
    run = train_or_load(SINGLE, progress=False)
    shares = run.metrics["train_aae_frac"]
    assert shares.between(0, 1).all() and len(shares) == 3
    assert "train_aae_frac" not in train_or_load(TINY1, progress=False).metrics.columns   # multi-step: none


def test_a_config_stored_before_a_field_existed_is_the_same_run(store):
    """Fields added later (config.FIELDS_ADDED_LATER) count in a run's identity only away from their
    default: a config.json written without them keeps its directory, hash and checkpoints."""
    from energy_lib.config import FIELDS_ADDED_LATER

    run = train_or_load(TINY1, progress=False)
    path = run.dir / "config.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in FIELDS_ADDED_LATER}
    path.write_text(json.dumps(old))
    assert runs.config_hash(TinyFromDict(old)) == runs.config_hash(TINY1)
    again = train_or_load(TINY1, progress=False)              # reused, not refused
    assert again.dir == run.dir and again.done
    assert run_dir(TINY1.replace(optimizer="adam")) != run.dir
    with pytest.raises(ConfigMismatchError, match="optimizer"):
        Run(TINY1.replace(optimizer="adam"), run.dir).check_config()


def TinyFromDict(values):
    return TrainConfig.from_dict(values)


def test_every_training_session_records_the_digest_of_the_training_code(store):
    from energy_lib.provenance import TRAINING_CODE, code_digest

    run = train_or_load(TINY1, progress=False)
    assert run.env["sessions"][-1]["training_code"] == code_digest(TRAINING_CODE)


def test_a_run_described_for_a_chapter_says_when_its_training_code_differs_or_is_unknown(monkeypatch):
    """Issue 23 point 8: a reused run whose training code is not today's says so wherever a chapter
    describes it (chapters 1 and 5 describe the committed reference run)."""
    from types import SimpleNamespace

    from energy_lib.config import TrainConfig
    from energy_lib.provenance import TRAINING_CODE, code_digest, code_digests

    monkeypatch.setattr(runs, "is_reference", lambda run: False)
    cfg = TrainConfig.from_profile("smoke", method="sat")
    plain = runs.describe(SimpleNamespace(config=cfg, env={"sessions": [
        {"git": {"commit": "abc", "dirty": False}, "training_code": code_digest(TRAINING_CODE),
         "training_code_files": code_digests(TRAINING_CODE)}]}))
    assert ";" not in plain                                              # today's code: nothing to say
    assert runs.describe(SimpleNamespace(config=cfg, env={})) == plain  # not trained yet: no code to speak of
    unknown = runs.describe(SimpleNamespace(config=cfg, env={"sessions": [{"git": {"commit": "abc", "dirty": True}}]}))
    assert unknown == (plain + "; trained at commit abc with uncommitted changes before runs recorded the digest of "
                       "their training code: whether today's code would train it the same cannot be checked")
    other = runs.describe(SimpleNamespace(config=cfg, env={"sessions": [
        {"git": {"commit": "abc", "dirty": False}, "training_code": "0" * 64,
         "training_code_files": {**code_digests(TRAINING_CODE), "losses.py": "1" * 64}}]}))
    assert other == plain + "; trained at commit abc by other training code (losses.py changed since): reused as recorded"
    assert "delete" not in other and "digest" not in other     # a reader's sentence: no operator's instruction
    # the same note alone, for a chapter's table of models (chapter 6 names the reference run's)
    assert runs.code_note(SimpleNamespace(env={})) == ""
    assert runs.code_note(SimpleNamespace(env={"sessions": [{"git": {"commit": "abc", "dirty": True}}]})) == \
        unknown[len(plain) + 2:]
    assert other.endswith(runs.code_note(SimpleNamespace(env={"sessions": [
        {"git": {"commit": "abc", "dirty": False}, "training_code": "0" * 64,
         "training_code_files": {**code_digests(TRAINING_CODE), "losses.py": "1" * 64}}]})))
