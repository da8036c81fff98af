"""The run store's identity and selection, on planted directories (no training): a run's hash is
stable and independent of key order; `finished_runs` lists what is finished oldest first, passes over
what is not a training run and warns (at the caller's line) about what it cannot read; a config.json
missing or unreadable is rebuilt from last.pt or best.pt; `selected_metrics` and `kept_epoch` say
what they do on short records."""
import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("ENERGY_DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

import pytest

from energy_lib import config, fileio, runs
from energy_lib.config import TrainConfig
from energy_lib.runs import Run, RunError

TINY = TrainConfig.from_profile("smoke", overrides=dict(
    n_train=64, batch_size=16, epochs=3, n_train_track=16, n_test_track=16, n_track_samples=8,
    attack_steps=1, track_attack_steps=1, device="cpu"))


def checkpoint(cfg: TrainConfig, epoch: int = 2) -> dict:
    """A checkpoint with every key a run checkpoint holds (no weights: the store never needs them here)."""
    return {"model": {}, "optimizer": {}, "scheduler": {}, "epoch": epoch, "rng": {}, "best": 0.25,
            "metrics": [], "config": cfg.to_dict()}


def planted_run(root: Path, name: str, cfg: TrainConfig | None = TINY, *, done: bool = True,
                config_text: str | None = None, checkpoints: tuple[str, ...] = (), rows: list | None = None) -> Path:
    """A run directory as the store leaves one: config.json (or `config_text`, or none when both are
    None), the named checkpoints, metrics.jsonl rows and a DONE without a manifest."""
    d = root / name
    d.mkdir(parents=True)
    if config_text is not None:
        (d / "config.json").write_text(config_text)
    elif cfg is not None:
        (d / "config.json").write_text(cfg.to_json() + "\n")
    for which in checkpoints:
        fileio.atomic_torch_save(checkpoint(cfg), d / f"{which}.pt")
    if rows is not None:
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if done:
        (d / "DONE").write_text("2026-12-07T00:00:00Z\n")
    return d


def points_at_the_caller(warning) -> bool:
    """A warning attributed to this file, not to runs.py (under mutmut, whose trampoline adds a frame
    between a test and the library, only: not to runs.py)."""
    if Path(warning.filename).resolve() == Path(runs.__file__).resolve():
        return False
    return "MUTANT_UNDER_TEST" in os.environ or warning.filename == __file__


def finished_at(directory: Path, seconds: int) -> None:
    os.utime(directory / "DONE", (seconds, seconds))


# ---- identity
def test_a_runs_hash_is_pinned_ten_hex_digits_and_independent_of_key_order():
    values = runs.identity(TINY)
    digest = runs.config_hash(TINY)
    assert len(digest) == 10 and int(digest, 16) >= 0
    reversed_values = dict(reversed(list(values.items())))
    assert list(reversed_values) != sorted(reversed_values)          # the planted order is not sorted
    assert runs.config_hash(reversed_values) == digest                  # same run, whatever the key order
    assert runs.run_dir(TINY, Path("/store")).name == f"sat-cifar10-small_cnn-n64-e3-{digest}"
    every = TINY.replace(n_train=None)
    assert runs.run_dir(every, Path("/store")) == Path(f"/store/sat-cifar10-small_cnn-nall-e3-{runs.config_hash(every)}")


def test_the_hash_is_the_sha256_of_the_sorted_json_identity():
    """Pinned by hand (`sha256(b'{"epochs": 8, "eps": 0.03137254901960784, "method": "sat"}')`): every
    stored run directory is named by it, so a changed hash would orphan them all (and train them again)."""
    assert runs.config_hash({"method": "sat", "eps": 8 / 255, "epochs": 8}) == "3698a92fb6"
    assert runs.config_hash({"eps": 8 / 255, "epochs": 8, "method": "sat"}) == "3698a92fb6"


# ---- finished_runs
def test_finished_runs_reads_the_store_it_is_given_oldest_first(store, tmp_path):
    other = tmp_path / "other"
    young = planted_run(other, "a-young", TINY)
    old = planted_run(other, "b-old", TINY.replace(seed=1))
    planted_run(other, "c-unfinished", TINY.replace(seed=2), done=False)
    finished_at(young, 2_000_000_000)
    finished_at(old, 1_000_000_000)
    found = runs.finished_runs(other)
    assert [r.dir.name for r in found] == ["b-old", "a-young"]        # completion time, not name
    assert [r.config for r in found] == [TINY.replace(seed=1), TINY]
    assert runs.finished_runs(store) == []                             # $ENERGY_RUNS is another store


def test_runs_finished_in_the_same_instant_keep_their_names_order(tmp_path):
    for name, seed in (("b", 1), ("a", 0), ("c", 2)):
        finished_at(planted_run(tmp_path, name, TINY.replace(seed=seed)), 1_500_000_000)
    assert [r.dir.name for r in runs.finished_runs(tmp_path)] == ["a", "b", "c"]


def test_what_is_not_a_training_run_is_passed_over_silently(tmp_path):
    planted_run(tmp_path, "a-cache", config_text=json.dumps({"kind": "attack energies"}))   # a dict, no method
    planted_run(tmp_path, "b-bare", cfg=None)                          # DONE, neither config nor checkpoint
    planted_run(tmp_path, "c-run", TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = runs.finished_runs(tmp_path)
    assert [r.dir.name for r in found] == ["c-run"]


def test_an_unreadable_run_is_skipped_with_a_warning_at_the_callers_line(tmp_path):
    bad = planted_run(tmp_path, "a-corrupt", config_text="{not json")
    planted_run(tmp_path, "b-run", TINY)
    with pytest.warns(UserWarning) as caught:
        found = runs.finished_runs(tmp_path)
    assert [r.dir.name for r in found] == ["b-run"]                    # the runs after it are still listed
    (warning,) = caught.list
    assert str(warning.message).startswith(f"skipped the run {bad.resolve()}: ")
    assert "config.json" in str(warning.message) and "no checkpoint to rebuild it from" in str(warning.message)
    assert points_at_the_caller(warning)


def test_a_config_of_another_version_is_skipped_with_a_warning_at_the_callers_line(tmp_path):
    values = TINY.to_dict() | {"no_such_setting": 1}
    bad = planted_run(tmp_path, "a-future", config_text=json.dumps(values))
    planted_run(tmp_path, "b-run", TINY)
    with pytest.warns(UserWarning) as caught:
        found = runs.finished_runs(tmp_path)
    assert [r.dir.name for r in found] == ["b-run"]
    (warning,) = caught.list
    assert str(warning.message) == (f"skipped the run {bad.resolve()}: its config.json is not a TrainConfig of "
                                    "this version (TrainConfig has no parameter(s) ['no_such_setting'])")
    assert points_at_the_caller(warning)


def test_a_reference_run_that_no_longer_matches_is_left_out_with_a_warning_at_the_callers_line(tmp_path,
                                                                                             monkeypatch):
    reference = tmp_path / "reference"
    cfg = config.reference_config().canonical()
    planted_run(reference, config.REFERENCE_RUN_NAME, cfg.replace(lr=cfg.lr * 2))   # made by another definition
    monkeypatch.setattr(runs, "reference_root", lambda: reference)
    with pytest.warns(UserWarning) as caught:
        assert runs.reference_run() is None
    (warning,) = caught.list
    assert str(warning.message).startswith("the reference run is not used: ")
    assert points_at_the_caller(warning)


# ---- stored_config: rebuilt from a checkpoint
@pytest.mark.parametrize("which", ["last", "best"])
def test_a_missing_config_is_rebuilt_from_either_checkpoint(tmp_path, which):
    d = planted_run(tmp_path, "run", TINY, checkpoints=(which,))
    (d / "config.json").unlink()
    with pytest.warns(UserWarning) as caught:
        assert Run(TINY, d).stored_config() == TINY.to_dict()
    assert (d / "config.json").read_text() == TINY.to_json() + "\n"    # the bytes training writes
    assert not (d / "config.json.corrupt").exists()
    (warning,) = caught.list
    assert str(warning.message) == f"{d / 'config.json'}: it was missing; rebuilt from {which}.pt"
    assert Path(warning.filename).resolve() != Path(runs.__file__).resolve()   # out of the library


@pytest.mark.parametrize("text, problem", [
    ("{not json", "config.json"),
    ("[1, 2]\n", "holds no config"),
])
def test_an_unreadable_config_is_kept_aside_and_rebuilt_from_the_checkpoint(tmp_path, text, problem):
    d = planted_run(tmp_path, "run", TINY, config_text=text, checkpoints=("last",))
    with pytest.warns(UserWarning) as caught:
        assert Run(TINY, d).stored_config() == TINY.to_dict()
    assert (d / "config.json.corrupt").read_text() == text              # the unreadable file, byte for byte
    assert (d / "config.json").read_text() == TINY.to_json() + "\n"
    (warning,) = caught.list
    assert Path(warning.filename).resolve() != Path(runs.__file__).resolve()
    message = str(warning.message)
    assert message.startswith(f"{d / 'config.json'}: ") and problem in message
    assert message.endswith("; rebuilt from last.pt (the unreadable file is kept as config.json.corrupt)")


def test_last_pt_is_preferred_to_best_pt_for_the_rebuild(tmp_path):
    d = planted_run(tmp_path, "run", TINY, checkpoints=("best",))
    fileio.atomic_torch_save(checkpoint(TINY.replace(seed=7)), d / "last.pt")
    (d / "config.json").unlink()
    with pytest.warns(UserWarning, match="rebuilt from last.pt$"):
        assert Run(TINY, d).stored_config()["seed"] == 7


def test_an_unreadable_config_without_a_checkpoint_is_an_error_naming_the_fix(tmp_path):
    d = planted_run(tmp_path, "run", TINY, config_text="[]")
    with pytest.raises(RunError, match=f"holds no config, and the run has no checkpoint to rebuild it from: delete "
                                       f"the run directory {d} to train the run again"):
        Run(TINY, d).stored_config()
    assert (d / "config.json").read_text() == "[]" and not (d / "config.json.corrupt").exists()


def test_a_config_json_that_disagrees_with_its_checkpoints_is_named_as_the_odd_one_out(tmp_path):
    d = planted_run(tmp_path, "run", TINY, checkpoints=("last",))
    (d / "config.json").write_text(TINY.replace(seed=5).to_json() + "\n")
    with pytest.raises(runs.ConfigMismatchError) as err:
        Run(TINY, d).check_config()
    assert str(err.value) == (
        f"{d / 'config.json'} holds another config than the run's checkpoints (config.json vs requested: "
        f"{{'seed': (5, 0)}}); it is not used. Delete {d / 'config.json'} alone: it is rebuilt from the checkpoint, "
        "which holds the requested config.")
    (d / "config.json").unlink()                                       # the advice works
    with pytest.warns(UserWarning, match="rebuilt from last.pt"):
        assert Run(TINY, d).check_config() == TINY.to_dict()


# ---- selected_metrics and kept_epoch on short records
def row(epoch: int, val_acc_adv: float) -> dict:
    return {"epoch": epoch, "val_acc_adv": val_acc_adv}


def test_selected_metrics_is_the_row_of_best_pts_epoch(tmp_path):
    d = planted_run(tmp_path, "run", TINY.replace(epochs=20), rows=[row(e, 0.1 * (e % 7)) for e in range(1, 21)])
    # the window is the last two epochs (19: 0.5, 20: 0.6), though epoch 13 is higher overall
    assert runs.selected_metrics(Run(TINY.replace(epochs=20), d))["epoch"] == 20


def test_a_run_without_an_epoch_in_its_window_says_what_to_do(tmp_path):
    unfinished = planted_run(tmp_path, "unfinished", TINY, done=False)
    with pytest.raises(RunError) as err:
        runs.selected_metrics(Run(TINY, unfinished))
    assert str(err.value) == (f"run {unfinished} has no epoch in its selection window yet, so no best.pt; finish "
                              "it with train_or_load(config)")

    short = planted_run(tmp_path, "short", TINY, rows=[row(1, 0.5), row(2, 0.4)])   # epoch 3 lost from the record
    with pytest.raises(RunError) as err:
        runs.selected_metrics(Run(TINY, short))
    assert str(err.value) == (
        f"run {short} is finished but its metrics.jsonl holds no epoch of the selection window; restore that "
        f"file (`git checkout -- {short / 'metrics.jsonl'}` for a committed run) or delete the run directory "
        f"{short} to retrain the run")


def test_kept_epoch_is_last_pts_epoch_or_none(tmp_path):
    d = planted_run(tmp_path, "run", TINY, done=False)
    assert Run(TINY, d).kept_epoch() is None                           # no last.pt
    fileio.atomic_torch_save(checkpoint(TINY, epoch=2), d / "last.pt")
    assert Run(TINY, d).kept_epoch() == 2
    (d / "last.pt").write_bytes(b"truncated")
    assert Run(TINY, d).kept_epoch() is None                           # unreadable: none kept
