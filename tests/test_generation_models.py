"""Chapter 5's robust model (energy_lib.generation_models): the committed reference run when it is
there and fits, else the profile's own run; the sentence that says which, and how to retrain it.
The reference run here is a fake finished run (config.json, metrics.jsonl, DONE) in a tmp folder."""
from __future__ import annotations

import json

import pytest

from energy_lib import generation_models, runs
from energy_lib.config import REFERENCE_TRAINING, GenerationConfig, TrainConfig, reference_config


def fake_finished_run(root, cfg: TrainConfig) -> runs.Run:
    """A run directory that reads as finished: its config, one metrics row per epoch, DONE."""
    cfg = cfg.canonical()
    directory = runs.run_dir(cfg, root)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(cfg.to_json() + "\n")
    rows = [{"epoch": e, "val_acc_adv": 0.30 + 0.01 * e, "test_acc_nat": 0.60, "test_acc_adv": 0.25}
            for e in range(1, cfg.epochs + 1)]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "DONE").write_text("2026-12-02T00:00:00Z\n")
    return runs.Run(cfg, directory)


@pytest.fixture
def reference_store(tmp_path, monkeypatch):
    """runs/reference/ moved to a tmp folder (empty: no reference run until a test makes one)."""
    root = tmp_path / "reference"
    monkeypatch.setattr(runs, "reference_root", lambda: root)
    return root


@pytest.fixture
def trained(monkeypatch, tmp_path):
    """runs.train_or_load replaced by a fake that records the configs it was asked for."""
    asked = []

    def train_or_load(cfg, progress=True, **kwargs):
        asked.append(cfg)
        return fake_finished_run(tmp_path / "store", cfg)

    monkeypatch.setattr(runs, "train_or_load", train_or_load)
    return asked


def test_the_reference_run_is_used_when_there(reference_store, trained):
    fake_finished_run(reference_store, reference_config())
    for profile in ("smoke", "default"):
        choice = generation_models.robust_run_for(GenerationConfig.from_profile(profile), profile)
        assert choice.source == "reference" and choice.run.config == reference_config().canonical()
    assert trained == []   # nothing trained
    assert choice.label == "robust (SAT, small_cnn, reference run)"
    text = generation_models.describe(choice, "default")
    assert runs.describe(choice.run, reference_note=False) in text   # the book's one phrase of the training
    assert text.startswith("the committed reference run: ")   # the chapter's prose says how it is trained and kept
    assert "8 epochs on all 50,000 cifar10 training images less the 1,000 held out" in text
    assert "PGD-3" in text
    assert "REFERENCE_TRAINING" not in text and "n_train=None" not in text   # prose, not a config dump
    assert "epoch 8 of 8" in text and "60% / 25%" in text   # best.pt's epoch: the last (highest val_acc_adv)
    assert "`" not in text   # glued as plain text
    assert "delete" not in text and "runs/reference" not in text   # no operator's instructions in a reader's prose


def test_without_the_reference_run_the_profile_run_is_trained(reference_store, trained):
    choice = generation_models.robust_run_for(GenerationConfig.from_profile("smoke"), "smoke")
    assert choice.source == "profile" and choice.label == "robust (SAT, small_cnn)"
    assert [c.canonical() for c in trained] == [TrainConfig.from_profile("smoke", method="sat").canonical()]
    text = generation_models.describe(choice, "smoke")
    assert "not in" in text and "make reference" in text and "smoke training profile" in text
    assert "128 cifar10 training images (32 more held out" in text


def test_the_paper_profile_and_a_misfit_do_not_use_the_reference(reference_store, trained):
    fake_finished_run(reference_store, reference_config())
    paper = GenerationConfig.from_profile("paper")
    assert not paper.use_reference and GenerationConfig.from_profile("smoke").use_reference
    choice = generation_models.robust_run_for(paper, "paper")
    assert choice.source == "profile" and "use_reference=False" in choice.why_not_reference
    assert trained[-1].model == "resnet18" and trained[-1].epochs == 100
    trades = GenerationConfig.from_profile("smoke", robust_method="trades")
    assert REFERENCE_TRAINING["method"] != "trades"
    choice = generation_models.robust_run_for(trades, "smoke")
    assert choice.source == "profile" and "robust_method=trades" in choice.why_not_reference
    assert trained[-1].method == "trades"
    off = GenerationConfig.from_profile("smoke", use_reference=False)
    assert generation_models.robust_run_for(off, "smoke").source == "profile"


def test_other_robust_runs_leave_out_the_chosen_one(reference_store, trained, tmp_path, monkeypatch):
    reference = fake_finished_run(reference_store, reference_config())
    other = fake_finished_run(tmp_path / "store", TrainConfig.from_profile("smoke", method="trades"))
    monkeypatch.setattr(runs, "finished_runs", lambda root=None: [runs.reference_run(), other])
    cfg = GenerationConfig.from_profile("smoke", other_robust_runs=2)
    found = generation_models.other_robust_runs(cfg, generation_models.robust_run_for(cfg, "smoke").run)
    assert [r.dir for r in found] == [other.dir]
    assert {r.dir for r in generation_models.other_robust_runs(cfg, None)} == {other.dir, reference.dir}
