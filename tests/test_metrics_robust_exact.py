"""Robust evaluation records, exactly and fast (no training, no real attack): planted models,
stubbed attacks and hand-computed keys pin what `energy_lib.metrics.robust` computes and stores, so
that a wrong edit of it fails here (`make mutation MODULE=metrics.robust`). The real model's facts
(a trained SAT net, the real AutoAttack, resuming after an interruption) are in test_metrics_robust.py."""
from __future__ import annotations

import calendar
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from energy_lib import attacks, autoattack, bits, data, fileio
from energy_lib.config import ConfigError
from energy_lib.metrics import robust

# 4 images of 3x4x4 with constant pixels: _MeanModel predicts 1, 0, 0, 1
X = torch.stack([torch.full((3, 4, 4), v) for v in (0.2, 0.8, 0.8, 0.3)])
Y = torch.tensor([0, 0, 0, 1])
NO_AA = robust.RobustEvalSettings(autoattack=False, seed=3, batch_size=2)
AA = robust.RobustEvalSettings(seed=3, batch_size=2, aa_iters=2, aa_target_classes=1, aa_queries=5)


class _MeanModel(torch.nn.Module):
    """Class 0 when the image's mean pixel exceeds 0.5, else class 1; in train mode every image is
    class 0 (so an evaluation that forgets eval mode gets other numbers)."""

    def __init__(self, bias: float = 0.0):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(bias))

    def forward(self, x):
        m = x.float().mean(dim=(1, 2, 3)) - 0.5 + self.bias
        if self.training:
            m = torch.ones_like(m)
        return torch.stack([m, -m], 1) * 10


def _images(x=X, y=Y, **description) -> robust.EvalImages:
    desc = {"dataset": "synthetic", "split": "test", "start": 0, "n": len(y),
            "sha256": robust.images_fingerprint(x, y), **description}
    return robust.EvalImages(x, y, desc)


@pytest.fixture
def flip_attack(monkeypatch):
    """PGD replaced by 1 - x (flips every prediction); the calls' arguments are kept (the model as is,
    the labels as a list)."""
    calls = []

    def attack(name, model, x, y, **kw):
        calls.append({"name": name, "model": model, "n": len(x), "y": y.tolist(), **kw})
        return 1.0 - x
    monkeypatch.setattr(attacks, "attack_in_batches", attack)
    return calls


def _no_attack(*args, **kwargs):
    raise AssertionError("the attack ran although its result was stored")


def _aa_result(clean=0.75, robust_mask=(False, True, False, False)):
    mask = torch.tensor(robust_mask)
    return autoattack.AutoAttackResult(
        x_adv=None, clean_accuracy=clean, robust_accuracy=mask.float().mean().item(),
        accuracy_after={a: 0.25 for a in autoattack.STANDARD_ATTACKS},
        seconds={"apgd-ce": 1.5, "apgd-t": 2.0, "fab-t": 0.25, "square": 0.25}, n_images=len(mask),
        settings={"standard": False, "attacks": list(autoattack.STANDARD_ATTACKS)}, robust=mask)


# ----------------------------------------------------------------------------- small pieces
def test_robust_correct_is_clean_correct_and_attacked_correct():
    clean = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    adv = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert robust.robust_correct(clean, adv, torch.zeros(4, dtype=torch.long)).tolist() == [True, False, False, False]
    assert robust.robust_correct(clean, adv, torch.ones(4, dtype=torch.long)).tolist() == [False, False, False, True]


def test_autoattack_settings_carry_every_field_of_the_evaluation_settings():
    s = robust.RobustEvalSettings(eps=4 / 255, seed=7, aa_iters=3, aa_target_classes=2, aa_queries=11)
    assert robust.aa_settings(s) == autoattack.AutoAttackSettings(eps=4 / 255, seed=7, n_iter=3, n_target_classes=2,
                                                                  n_queries=11)


def test_images_fingerprint_is_the_sha256_of_the_float_pixels_then_the_labels():
    h = hashlib.sha256(X.float().numpy().tobytes() + Y.numpy().tobytes()).hexdigest()[:16]
    assert robust.images_fingerprint(X, Y) == h
    assert robust.images_fingerprint(X.double(), Y) == h                 # float32 pixels, whatever the dtype
    assert robust.images_fingerprint(X, torch.tensor([0, 0, 0, 0])) != h


@pytest.mark.parametrize("start, n, problem", [(-1, 4, "start >= 0"), (0, 0, "n > 0"), (0, -2, "n > 0"),
                                               (9_999, 2, r"\[9999, 10001\) requested but cifar10 has 10000")])
def test_eval_slice_refuses_a_slice_outside_the_test_set(start, n, problem):
    with pytest.raises(ConfigError, match=problem):
        robust.eval_slice("cifar10", n, start)


def test_eval_slice_reads_the_test_split_from_the_first_image_by_default_and_to_the_end_without_n(monkeypatch):
    first = robust.eval_slice("cifar10", 1)
    test_x, test_y = data.load_dataset("cifar10", "test", n=6).tensors()
    assert first.description["start"] == 0 and torch.equal(first.x, test_x[:1]) and torch.equal(first.y, test_y[:1])
    # a test set of 6 images: n=None runs to its end, and a slice may end exactly there
    six = data.load_dataset("cifar10", "test", n=6)
    monkeypatch.setitem(data.DATASETS, "cifar10", dataclasses.replace(data.DATASETS["cifar10"], test_size=6))
    monkeypatch.setattr(data, "load_dataset", lambda name, split, n: six if (name, split, n) == ("cifar10", "test", 6)
                        else pytest.fail(f"loaded {name} {split} n={n}"))
    rest = robust.eval_slice("cifar10", None, start=2)
    assert rest.description["n"] == 4 and torch.equal(rest.x, test_x[2:]) and torch.equal(rest.y, test_y[2:])
    assert robust.eval_slice("cifar10", 4, start=2).description["n"] == 4
    with pytest.raises(ConfigError, match=r"\[2, 7\) requested but cifar10 has 6"):
        robust.eval_slice("cifar10", 5, start=2)


def test_eval_slice_describes_what_it_loaded():
    part = robust.eval_slice("cifar10", 2, start=3)
    assert part.x.shape == (2, 3, 32, 32) and part.y.shape == (2,)
    assert {k: part.description[k] for k in ("dataset", "split", "start", "n")} == {
        "dataset": "cifar10", "split": "test", "start": 3, "n": 2}
    assert part.description["sha256"] == robust.images_fingerprint(part.x, part.y)
    assert part.description["source"]


def test_the_key_hashes_the_checkpoint_the_images_digest_and_the_settings_identity():
    checkpoint, images = {"run": "r", "which": "best", "epoch": 9}, {"sha256": "abc", "n": 4}
    blob = json.dumps({"checkpoint": checkpoint, "images": "abc", "settings": AA.identity()}, sort_keys=True)
    assert robust._key(checkpoint, images, AA) == hashlib.sha256(blob.encode()).hexdigest()[:10]
    assert robust._key(checkpoint, {**images, "n": 5}, AA) == robust._key(checkpoint, images, AA)  # digest only
    assert robust._key(checkpoint, images, dataclasses.replace(AA, batch_size=64)) == robust._key(checkpoint, images, AA)
    assert robust._key(checkpoint, images, dataclasses.replace(AA, pgd_steps=7)) != robust._key(checkpoint, images, AA)
    assert robust.record_path(Path("d"), "k1") == Path("d") / "robust_eval-k1.json"


def test_a_record_that_is_not_an_object_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "robust_eval-x.json"
    path.write_text("[1, 2]")
    with pytest.raises(fileio.CorruptFileError, match=f"{path} holds no evaluation record; delete it to recompute"):
        robust._read_record(path)
    path.write_text("{not json")
    with pytest.raises(fileio.CorruptFileError, match=f"delete {path} to recompute this evaluation"):
        robust._read_record(path)
    path.write_text('{"kind": "robust_eval", "accuracy": {"clean": 0.5}}')    # an old record, without digest
    assert robust._read_record(path) == {"kind": "robust_eval", "accuracy": {"clean": 0.5}}


def test_weights_digest_is_the_content_digest_of_the_state_dict_and_follows_the_weights():
    a, b = _MeanModel(0.0), _MeanModel(0.25)
    assert robust.weights_digest(a) == fileio.content_digest({"bias": torch.tensor(0.0)})
    assert robust.weights_digest(a) != robust.weights_digest(b)


def test_stored_settings_are_read_by_the_fields_this_version_knows():
    stored = {**dataclasses.asdict(AA), "a_field_of_a_later_version": 1}
    assert robust._settings_identity(stored) == AA.identity()


def _request(**changes):
    req = {"key": "k", "checkpoint": {"run": "r"}, "images": {"sha256": "i" * 16}, "settings": AA, "weights": "w" * 64}
    req.update(changes)
    return req


def _stored(**changes):
    rec = {"key": "k", "checkpoint": {"run": "r"}, "images": {"sha256": "i" * 16}, "settings": dataclasses.asdict(AA),
           "weights_sha256": "w" * 64}
    rec.update(changes)
    return rec


def _diff(rec, req):
    return robust._differences(rec, req["key"], req["checkpoint"], req["images"], req["settings"], req["weights"])


def test_differences_name_each_thing_measured_otherwise():
    assert _diff(_stored(), _request()) == {}
    assert _diff(_stored(key="q"), _request()) == {"key": ("q", "k")}
    assert _diff(_stored(), _request(checkpoint={"run": "s"})) == {"checkpoint": ({"run": "r"}, {"run": "s"})}
    assert _diff(_stored(images={"sha256": "j"}), _request()) == {"images": ("j", "i" * 16)}
    assert _diff(_stored(images=None), _request()) == {"images": (None, "i" * 16)}
    other = dataclasses.replace(AA, eps=4 / 255)
    assert _diff(_stored(), _request(settings=other)) == {"settings": (AA.identity(), other.identity())}
    assert _diff(_stored(settings=None), _request()) == {"settings": (robust.RobustEvalSettings().identity(),
                                                                       AA.identity())}
    assert _diff(_stored(), _request(weights="v" * 64)) == {"weights_sha256": ("w" * 64, "v" * 64)}
    # a record from before weight digests is compared by what it holds
    old = _stored()
    del old["weights_sha256"]
    assert _diff(old, _request(weights="v" * 64)) == {}
    # settings this version cannot read are a difference that says why
    bad = _diff(_stored(settings={**dataclasses.asdict(AA), "pgd_steps": 0}), _request())
    assert list(bad) == ["settings"] and bad["settings"][0].startswith("unreadable (pgd_steps must be positive")
    bad = _diff(_stored(settings={**dataclasses.asdict(AA), "eps": "x"}), _request())
    assert bad["settings"][0].startswith("unreadable (")


def test_a_request_that_differs_is_refused_naming_the_file_what_differs_and_the_fix(tmp_path):
    path = tmp_path / "robust_eval-k.json"
    req = _request()
    rec = _stored()
    assert robust._check_request(path, rec, req["key"], req["checkpoint"], req["images"], req["settings"],
                                 req["weights"]) is rec
    with pytest.raises(robust.RecordMismatchError) as err:
        robust._check_request(path, _stored(weights_sha256="v" * 64, images={"sha256": "j" * 16}), req["key"],
                              req["checkpoint"], req["images"], req["settings"], req["weights"])
    text = str(err.value)
    assert text.startswith(f"{path} holds another evaluation than the one asked for")
    assert "'weights_sha256': ('" + "v" * 12 + "', '" + "w" * 12 + "')" in text    # digests shown short
    assert "'images': ('" + "j" * 12 + "', '" + "i" * 12 + "')" in text
    assert text.endswith(f"it is not used. Delete {path} to recompute this evaluation")
    with pytest.raises(robust.RecordMismatchError, match=r"'key': \('q', 'k'\)"):
        robust._check_request(path, _stored(key="q"), req["key"], req["checkpoint"], req["images"],
                              req["settings"], req["weights"])
    # only the two digests are shortened: a checkpoint is shown whole
    with pytest.raises(robust.RecordMismatchError, match=r"'checkpoint': \(\{'run': 'a-long-run-name'\}, "
                                                        r"\{'run': 'r'\}\)"):
        robust._check_request(path, _stored(checkpoint={"run": "a-long-run-name"}), req["key"], req["checkpoint"],
                              req["images"], req["settings"], req["weights"])


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_writes_the_whole_record_from_eval_mode_logits(tmp_path, flip_attack):
    images = _images()
    model = _MeanModel().train()
    rec = robust.evaluate(model, images, NO_AA, tmp_path / "d", checkpoint={"run": "r", "which": "best"},
                          extra={"method": "sat"}, device="cpu", progress=False)
    key = robust._key({"run": "r", "which": "best"}, images.description, NO_AA)
    assert fileio.read_json(robust.record_path(tmp_path / "d", key), sealed=True) == rec
    assert not model.training                                            # evaluated in eval mode
    assert flip_attack == [{"name": "pgd", "model": model, "n": 4, "y": [0, 0, 0, 1], "eps": NO_AA.eps, "step_size": NO_AA.pgd_step_size,
                            "steps": NO_AA.pgd_steps, "batch_size": 2, "seed": 3, "progress": False}]
    assert rec["accuracy"] == {"clean": 0.75, "pgd": 0.0}                # eval mode: 3 of 4 clean, none after the flip
    assert bits.record_outcomes(rec, "clean").tolist() == [0, 1, 1, 1]
    assert bits.record_outcomes(rec, "pgd").tolist() == [0, 0, 0, 0]
    timeless = {k: v for k, v in rec.items() if k not in ("seconds", "time_utc", "torch")}
    assert timeless == {
        "kind": "robust_eval", "version": 2, "key": key, "complete": True, "method": "sat",
        "checkpoint": {"run": "r", "which": "best"}, "weights_sha256": robust.weights_digest(model),
        "images": images.description, "n_images": 4, "seed": 3, "eps": NO_AA.eps,
        "settings": dataclasses.asdict(NO_AA),
        "pgd": {"steps": 20, "step_size": 2 / 255, "loss": "ce", "random_start": "uniform", "precision": "fp32",
                "mode": "eval"},
        "accuracy": {"clean": 0.75, "pgd": 0.0}, "correct": {"clean": bits.pack([0, 1, 1, 1]),
                                                              "pgd": bits.pack([0, 0, 0, 0])},
        "device": "cpu"}
    assert sorted(rec["seconds"]) == ["clean", "pgd"] and min(rec["seconds"].values()) >= 0
    assert rec["torch"] == torch.__version__ and rec["time_utc"].endswith("Z")


class _RecordingModel(_MeanModel):
    """A _MeanModel that remembers where it was moved."""

    def __init__(self):
        super().__init__()
        self.moved_to = []

    def to(self, *args, **kwargs):
        self.moved_to.append(args)
        return super().to(*args, **kwargs)


def test_evaluate_by_default_picks_the_device_and_shows_its_progress(tmp_path, flip_attack, capsys):
    model = _RecordingModel()
    rec = robust.evaluate(model, _images(), NO_AA, tmp_path)
    assert rec["device"] == "cpu" and model.moved_to == [(torch.device("cpu"),)]
    err = capsys.readouterr().err
    # one bar of two steps (clean, PGD), removed when done
    assert err.startswith("\rclean + PGD:   0%") and "| 0/2 [" in err and err.endswith("\r") and "\n" not in err
    robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""


def test_evaluate_batches_as_asked_and_times_its_parts_in_utc(tmp_path, flip_attack, monkeypatch):
    sizes = []
    predict = attacks.predict_logits
    monkeypatch.setattr(attacks, "predict_logits", lambda model, x, *a: sizes.append(a) or predict(model, x, *a))
    monkeypatch.setenv("TZ", "XYZ-5:30")                  # a local time 5.5 h from UTC: the stamp must not follow it
    time.tzset()
    try:
        start, t0 = time.time(), time.perf_counter()
        rec = robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path, device="cpu", progress=False)
        elapsed = time.perf_counter() - t0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert sizes == [(2,), (2,)]                              # clean and attacked logits, settings.batch_size
    assert 0 <= rec["seconds"]["clean"] <= elapsed and 0 <= rec["seconds"]["pgd"] <= elapsed
    stamp = calendar.timegm(time.strptime(rec["time_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    assert start - 2 <= stamp <= time.time() + 1


def test_a_complete_record_is_returned_as_stored_without_attacking(tmp_path, flip_attack, monkeypatch):
    first = robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(attacks, "attack_in_batches", _no_attack)
    monkeypatch.setattr(attacks, "predict_logits", _no_attack)
    assert robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path, device="cpu", progress=False) == first


def test_a_stored_record_of_other_weights_is_refused(tmp_path, flip_attack):
    rec = robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path, device="cpu", progress=False)
    path = robust.record_path(tmp_path, rec["key"])
    with pytest.raises(robust.RecordMismatchError, match=f"^{path} holds another evaluation .*weights_sha256"):
        robust.evaluate(_MeanModel(0.25), _images(), NO_AA, tmp_path, device="cpu", progress=False)


def test_autoattack_completes_a_stored_pgd_part_without_recomputing_it(tmp_path, flip_attack, monkeypatch):
    """The PGD part of an interrupted evaluation is reused; AutoAttack's outcomes join it and its
    progress file is removed once the record is complete."""
    images = _images()
    rec = robust.evaluate(_MeanModel(), images, NO_AA, tmp_path / "pgd", device="cpu", progress=False)
    directory = tmp_path / "aa"
    key = robust._key({}, images.description, AA)
    partial = {**rec, "key": key, "complete": False, "settings": dataclasses.asdict(AA)}
    fileio.make_dir(directory)
    fileio.write_json(robust.record_path(directory, key), partial, seal=True)
    state = robust.record_path(directory, key).with_suffix(".aa_state.pt")
    state.write_bytes(b"progress")
    calls = []

    model = _MeanModel()

    def fake_autoattack(attacked, x, y, **kw):
        calls.append(kw)
        assert attacked is model and not attacked.training and torch.equal(x, X) and torch.equal(y, Y)
        assert state.exists() and not fileio.read_json(robust.record_path(directory, key), sealed=True)["complete"]
        return _aa_result()
    monkeypatch.setattr(attacks, "attack_in_batches", _no_attack)
    monkeypatch.setattr(autoattack, "run_autoattack", fake_autoattack)
    done = robust.evaluate(model, images, AA, directory, device="cpu", progress=False)
    assert calls == [{"settings": robust.aa_settings(AA), "batch_size": 2, "chunk_size": AA.aa_chunk_size,
                      "state_path": state, "verbose": False, "keep_adversarial": False}]
    assert done["complete"] and not state.exists()
    assert done["accuracy"] == {"clean": 0.75, "pgd": 0.0, "autoattack": 0.25}
    assert bits.record_outcomes(done, "autoattack").tolist() == [0, 1, 0, 0]
    assert done["correct"]["pgd"] == rec["correct"]["pgd"] and done["seconds"]["pgd"] == rec["seconds"]["pgd"]
    assert done["autoattack"] == {"standard": False, "attacks": list(autoattack.STANDARD_ATTACKS), "n_iter": 2,
                                  "n_target_classes": 1, "n_queries": 5,
                                  "accuracy_after": {a: 0.25 for a in autoattack.STANDARD_ATTACKS}}
    assert done["seconds"]["autoattack"] == 4.0
    assert done["seconds"]["autoattack_per_attack"] == {"apgd-ce": 1.5, "apgd-t": 2.0, "fab-t": 0.25, "square": 0.25}
    assert fileio.read_json(robust.record_path(directory, key), sealed=True) == done


def test_a_fresh_evaluation_stores_its_pgd_part_as_unfinished_before_autoattack(tmp_path, flip_attack, monkeypatch):
    def fake_autoattack(model, x, y, **kw):
        stored = fileio.read_json(kw["state_path"].with_name(kw["state_path"].name.replace(".aa_state.pt", ".json")), sealed=True)
        assert stored["complete"] is False and stored["accuracy"] == {"clean": 0.75, "pgd": 0.0}
        return _aa_result()
    monkeypatch.setattr(autoattack, "run_autoattack", fake_autoattack)
    assert robust.evaluate(_MeanModel(), _images(), AA, tmp_path, device="cpu", progress=False)["complete"]


def test_autoattack_may_differ_by_at_most_one_in_a_billion_in_clean_accuracy(tmp_path, flip_attack, monkeypatch):
    wrong = torch.tensor([0, 1, 1, 0])                      # every image misclassified: clean accuracy exactly 0
    monkeypatch.setattr(autoattack, "run_autoattack", lambda *a, **kw: _aa_result(clean=1e-9))
    rec = robust.evaluate(_MeanModel(), _images(y=wrong), AA, tmp_path, device="cpu", progress=False)
    assert rec["accuracy"]["clean"] == 0.0 and rec["complete"]


@pytest.mark.parametrize("clean", [0.5, 0.75 + 1e-6])
def test_autoattack_seeing_another_clean_accuracy_stops_with_the_fix(tmp_path, flip_attack, monkeypatch, clean):
    monkeypatch.setattr(autoattack, "run_autoattack", lambda *a, **kw: _aa_result(clean=clean))
    with pytest.raises(RuntimeError, match=r"the model changed between the two parts; delete .*robust_eval-\w+\.json "
                                           r"and its \.aa_state\.pt"):
        robust.evaluate(_MeanModel(), _images(), AA, tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(autoattack, "run_autoattack", lambda *a, **kw: _aa_result(clean=0.75 + 1e-12))
    assert robust.evaluate(_MeanModel(), _images(), AA, tmp_path, device="cpu", progress=False)["complete"]


def test_an_unfinished_record_without_outcomes_is_recomputed_with_a_warning(tmp_path, flip_attack):
    fresh = robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path / "a", device="cpu", progress=False)
    old = {k: v for k, v in fresh.items() if k != "correct"}
    old.update(complete=False, version=1, accuracy={"clean": 0.5, "pgd": 0.5})
    path = robust.record_path(tmp_path / "b", fresh["key"])
    fileio.make_dir(path.parent)
    path.write_text(json.dumps(old))
    with pytest.warns(UserWarning, match="unfinished evaluation from before per-image outcomes") as caught:
        again = robust.evaluate(_MeanModel(), _images(), NO_AA, tmp_path / "b", device="cpu", progress=False)
    assert not any(w.filename.endswith("robust.py") for w in caught)   # it points at the caller
    assert again["accuracy"] == {"clean": 0.75, "pgd": 0.0} and again["version"] == 2


# ----------------------------------------------------------------------------- a run's checkpoint
def _fake_run(tmp_path, epochs=100):
    config = SimpleNamespace(epochs=epochs, n_val=50, dataset="cifar10", method="trades", model="small_cnn",
                             n_train=1000)
    seen = []
    run = SimpleNamespace(
        config=config, dir=tmp_path / "run-1", tracking_attack={"val": "PGD-20", "train": "PGD-5"},
        require_done=lambda why: seen.append(("done?", why)),
        checkpoint_info=lambda which: seen.append(("info", which)) or {"epoch": 93, "best": {"metric": "val_pgd"}},
        load_model=lambda which, device: seen.append(("load", which, device)) or _MeanModel())
    return run, seen


@pytest.mark.parametrize("epochs, window", [(100, [91, 100]), (5, [5, 5]), (30, [28, 30])])
def test_the_selection_is_described_by_its_window_and_held_out_images(tmp_path, epochs, window):
    run, _ = _fake_run(tmp_path, epochs)
    assert robust.selection_description(run) == {
        "rule": "highest PGD accuracy on the held-out validation images among the last epochs (config.BEST_WINDOW)",
        "epochs_considered": window, "images": {"split": "train (held out, never trained on)", "n": 50},
        "attack": "PGD-20"}


def test_a_run_without_a_validation_attack_says_none(tmp_path):
    run, _ = _fake_run(tmp_path)
    run.tracking_attack = {}
    assert robust.selection_description(run)["attack"] == ""


def test_evaluate_run_evaluates_the_asked_checkpoint_on_the_asked_test_images(tmp_path, flip_attack, monkeypatch):
    run, seen = _fake_run(tmp_path)
    sliced = []
    monkeypatch.setattr(robust, "eval_slice", lambda dataset, n, start: sliced.append((dataset, n, start)) or _images())
    monkeypatch.setattr(autoattack, "run_autoattack", lambda *a, **kw: _aa_result())
    rec = robust.evaluate_run(run, n_images=4, start=7, which="last", device="cpu", progress=False)
    assert seen == [("done?", "before evaluating its checkpoints"), ("info", "last"), ("load", "last", "cpu")]
    assert sliced == [("cifar10", 4, 7)]
    assert rec["checkpoint"] == {"run": "run-1", "which": "last", "epoch": 93, "selection_metric": "val_pgd"}
    assert {k: rec[k] for k in ("method", "dataset", "model", "train_epochs", "n_train")} == {
        "method": "trades", "dataset": "cifar10", "model": "small_cnn", "train_epochs": 100, "n_train": 1000}
    assert rec["selection"] == robust.selection_description(run)
    assert rec["settings"] == dataclasses.asdict(robust.RobustEvalSettings())      # the paper's protocol by default
    assert robust.record_path(run.dir, rec["key"]).is_file()


def test_evaluate_run_by_default_evaluates_best_from_the_first_test_image_and_passes_device_and_progress_on(
        tmp_path, flip_attack, monkeypatch):
    run, seen = _fake_run(tmp_path)
    sliced, passed = [], []
    evaluate = robust.evaluate
    monkeypatch.setattr(robust, "eval_slice", lambda dataset, n, start: sliced.append((dataset, n, start)) or _images())
    monkeypatch.setattr(robust, "evaluate", lambda *a, **kw: passed.append(kw) or evaluate(*a, **kw))
    monkeypatch.setattr(autoattack, "run_autoattack", lambda *a, **kw: _aa_result())
    robust.evaluate_run(run)
    assert sliced == [("cifar10", None, 0)] and ("info", "best") in seen and ("load", "best", "cpu") in seen
    assert {k: passed[0][k] for k in ("device", "progress")} == {"device": "auto", "progress": True}
    robust.evaluate_run(run, dataclasses.replace(AA, seed=5), device="cpu", progress=False)
    assert {k: passed[1][k] for k in ("device", "progress")} == {"device": "cpu", "progress": False}


# ----------------------------------------------------------------------------- reading and publishing
def _put(root: Path, folder: str, rec: dict, name: str | None = None) -> Path:
    path = root / folder / (name or f"robust_eval-{rec['key']}.json")
    fileio.make_dir(path.parent)
    fileio.write_json(path, rec, seal=True)
    return path


def test_load_records_reads_complete_records_where_they_belong_and_skips_the_rest(tmp_path):
    def rec(key, run, **kw):
        return {"kind": "robust_eval", "key": key, "complete": True, "checkpoint": {"run": run}, **kw}
    a = _put(tmp_path, "run-a", rec("k1", "run-a"))
    b = _put(tmp_path, "run-b", rec("k2", "run-b", complete=False))
    _put(tmp_path, "run-c", rec("k3", "run-c", kind="lens"))
    _put(tmp_path, "run-d", rec("k4", "run-x"))                                   # lies in another run's folder
    _put(tmp_path, "run-e", rec("k5", "run-e"), name="robust_eval-k6.json")       # file name of another key
    (tmp_path / "run-f").mkdir()
    (tmp_path / "run-f" / "robust_eval-k7.json").write_text("{not json")
    _put(tmp_path, "run-g", {"kind": "robust_eval", "key": "k8", "complete": True, "checkpoint": "old"})
    with pytest.warns(UserWarning) as caught:
        complete = robust.load_records(tmp_path)
    assert [(r["key"], r["path"]) for r in complete] == [("k1", str(a)), ("k8", str(tmp_path / "run-g" /
                                                                                    "robust_eval-k8.json"))]
    texts = sorted(str(w.message) for w in caught)
    assert len(texts) == 3 and all(t.startswith("skipped: ") for t in texts)
    # the warnings point out of the library, at its caller (under mutmut, its trampoline adds a frame)
    assert not any(w.filename.endswith("robust.py") for w in caught)
    assert sum(t.endswith("Delete it (or move it back where it belongs)") for t in texts) == 2
    assert any("holds a record of the run 'run-x', not of 'run-d' where it lies" in t for t in texts)
    assert any("holds the record of key 'k5', not the one its file name says" in t for t in texts)
    assert any("robust_eval-k7.json" in t for t in texts)
    with pytest.warns(UserWarning):
        every = robust.load_records(tmp_path, complete_only=False)
    assert [r["key"] for r in every] == ["k1", "k2", "k8"] and every[1]["path"] == str(b)


def test_load_records_reads_the_run_store_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    _put(tmp_path, "run-a", {"kind": "robust_eval", "key": "k1", "complete": True, "checkpoint": {"run": "run-a"}})
    assert [r["key"] for r in robust.load_records()] == ["k1"]


def test_misplaced_reads_only_what_a_record_names():
    assert robust._misplaced(Path("run-a/robust_eval-k.json"), {}) == ""
    assert robust._misplaced(Path("run-a/robust_eval-k.json"), {"key": "k", "checkpoint": {"run": "run-a"}}) == ""
    assert robust._misplaced(Path("run-a/robust_eval-k.json"), {"key": "k", "checkpoint": {}}) == ""
    assert robust._misplaced(Path("run-a/robust_eval-k.json"), {"checkpoint": {"run": "run-b"}}) != ""


def test_publish_copies_a_complete_record_into_the_run_store_layout(tmp_path):
    rec = {"kind": "robust_eval", "key": "k1", "complete": True, "checkpoint": {"run": "run-a"}, "path": "/x/y"}
    out = robust.publish(rec, tmp_path / "pub")
    assert out == tmp_path / "pub" / "run-a" / "robust_eval-k1.json"
    assert fileio.read_json(out, sealed=True) == {k: v for k, v in rec.items() if k != "path"}
    assert [r["key"] for r in robust.load_records(tmp_path / "pub")] == ["k1"]
    with pytest.raises(ValueError, match="record k1 is not complete"):
        robust.publish({**rec, "complete": False}, tmp_path / "pub")
    with pytest.raises(fileio.UnsafeNameError, match="checkpoint.run"):
        robust.publish({**rec, "checkpoint": {"run": "../elsewhere"}}, tmp_path / "pub")
    with pytest.raises(fileio.UnsafeNameError, match="key"):
        robust.publish({**rec, "key": "a/b"}, tmp_path / "pub")


def test_published_records_live_in_the_run_store(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "store"))
    assert robust.published_dir() == tmp_path / "store" / "published"
    out = robust.publish({"kind": "robust_eval", "key": "k", "complete": True, "checkpoint": {"run": "r"}})
    assert out == tmp_path / "store" / "published" / "r" / "robust_eval-k.json"
