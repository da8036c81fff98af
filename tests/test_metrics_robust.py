"""Robust evaluation records: complete and consistent on a real (briefly trained) model, stored in
the run directory, resumable after an interruption, and refusing unfinished runs."""
import json

import pytest
import torch

from energy_lib import attacks, autoattack, bits, fileio
from energy_lib.config import ConfigError, TrainConfig
from energy_lib.metrics import robust
from energy_lib.runs import Run, RunError, run_dir, train_or_load

# Cheap AutoAttack on a handful of images; the PGD part keeps the paper's 20 steps of 2/255.
CHEAP = robust.RobustEvalSettings(aa_iters=3, aa_target_classes=2, aa_queries=10, batch_size=16, aa_chunk_size=4)
N = 12
TIME_KEYS = ("seconds", "time_utc")


@pytest.fixture(scope="module")
def run():
    """A SAT small CNN trained on real CIFAR-10 images, in the test run store. Longer than the smoke
    profile, whose 2 epochs on 128 images leave a constant classifier (0 % on these images)."""
    cfg = TrainConfig.from_profile("smoke", method="sat", device="cpu", n_train=256, epochs=4)
    return train_or_load(cfg, progress=False)


def _without_times(rec: dict) -> dict:
    out = {k: v for k, v in rec.items() if k not in TIME_KEYS + ("path",)}
    return json.loads(json.dumps(out))


def test_record_is_complete_and_consistent(run):
    rec = robust.evaluate_run(run, CHEAP, n_images=N, device="cpu", progress=False)
    path = robust.record_path(run.dir, rec["key"])
    assert fileio.read_json(path, sealed=True) == rec               # what is returned is what is stored (digest checked)
    assert rec["complete"] and rec["n_images"] == N and rec["seed"] == CHEAP.seed
    assert rec["method"] == "sat" and rec["checkpoint"]["which"] == "best"
    assert rec["checkpoint"]["epoch"] == run.checkpoint_info("best")["epoch"]
    # best.pt was selected on held-out training images, so the evaluation starts at test image 0
    assert rec["images"]["start"] == 0 and rec["selection"]["images"]["n"] == run.config.n_val
    assert rec["selection"]["images"]["split"].startswith("train")
    acc = rec["accuracy"]
    # robust = also clean-correct, for each attack; AutoAttack (cheap settings here) and PGD-20 are
    # separate attacks, so neither is guaranteed below the other, and how well a briefly trained
    # model does depends on the machine's float rounding (2 threads: a constant classifier)
    assert 0 <= acc["autoattack"] <= acc["clean"] <= 1 and 0 <= acc["pgd"] <= acc["clean"]
    after = [rec["autoattack"]["accuracy_after"][a] for a in autoattack.STANDARD_ATTACKS]
    assert after == sorted(after, reverse=True) and after[-1] == acc["autoattack"]
    assert rec["autoattack"]["standard"] is False                    # cheap settings are labelled as such
    assert all(rec["seconds"][k] >= 0 for k in ("clean", "pgd", "autoattack"))
    # the stored clean accuracy is the model's on exactly those images
    images = robust.eval_slice("cifar10", N, 0)
    assert images.description == rec["images"]
    model = run.load_model("best")
    assert (attacks.predict_logits(model, images.x).argmax(1) == images.y).float().mean().item() == acc["clean"]
    assert rec["key"] in [r["key"] for r in robust.load_records(run.dir.parent)]


def test_record_holds_the_per_image_outcomes_it_computed(run, monkeypatch):
    """Round trip: the packed per-image outcomes of the record unpack to exactly the clean, PGD and
    AutoAttack correctness the evaluation computed (captured from its calls), in image order."""
    computed = {}
    real_robust_correct, real_autoattack = robust.robust_correct, autoattack.run_autoattack

    def robust_correct(clean_logits, adv_logits, y):
        computed["clean"] = (clean_logits.argmax(1) == y).cpu()
        computed["pgd"] = real_robust_correct(clean_logits, adv_logits, y).cpu()
        return computed["pgd"]

    def run_autoattack(*args, **kwargs):
        res = real_autoattack(*args, **kwargs)
        computed["autoattack"] = res.robust
        return res

    monkeypatch.setattr(robust, "robust_correct", robust_correct)
    monkeypatch.setattr(autoattack, "run_autoattack", run_autoattack)
    settings = robust.RobustEvalSettings(**{**CHEAP.__dict__, "seed": 3})       # a fresh key: computed now
    rec = robust.evaluate_run(run, settings, n_images=N, device="cpu", progress=False)
    assert rec["version"] == robust.RECORD_VERSION == 2 and set(rec["correct"]) == {"clean", "pgd", "autoattack"}
    stored = json.loads(robust.record_path(run.dir, rec["key"]).read_text())
    for attack in ("clean", "pgd", "autoattack"):
        want = computed[attack].numpy().astype("uint8").tolist()
        assert bits.record_outcomes(stored, attack).tolist() == want and len(want) == N
        assert sum(want) == round(rec["accuracy"][attack] * N)     # the accuracy is a float32 mean
    assert bits.record_outcomes({"n_images": N, "correct": {}}, "autoattack") is None
    # chapter 4 compares such records paired (their accuracies are float32 means of these outcomes)
    from energy_lib import verdicts

    same = verdicts.compare_records(rec, stored)
    assert same.paired and same.statistic == 0.0 and same.n_images == N


def test_complete_record_is_reused_not_recomputed(run, monkeypatch):
    first = robust.evaluate_run(run, CHEAP, n_images=N, device="cpu", progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("an attack ran although the record was complete")

    monkeypatch.setattr(attacks, "attack_in_batches", fail)
    monkeypatch.setattr(autoattack, "run_autoattack", fail)
    assert robust.evaluate_run(run, CHEAP, n_images=N, device="cpu", progress=False) == first


def test_interrupted_evaluation_resumes_to_the_uninterrupted_record(run, monkeypatch, interrupt_autoattack):
    # The interruption needs AutoAttack to have work left after its first chunk, whatever the brief
    # training made of the model on this machine: at ε = 1/255 the clean-correct points of this weak
    # model stay robust, so every component runs on them (>= 4 chunks), and the first 40 test images
    # hold every class, so even a constant classifier has one. A fresh key (seed, ε).
    settings = robust.RobustEvalSettings(**{**CHEAP.__dict__, "seed": 1, "eps": 1 / 255, "pgd_step_size": 0.5 / 255})
    n, start = 40, 0
    disarm = interrupt_autoattack(2)
    with pytest.raises(KeyboardInterrupt):
        robust.evaluate_run(run, settings, n_images=n, start=start, device="cpu", progress=False)
    partial = robust.load_records(run.dir.parent, complete_only=False)
    partial = [r for r in partial if not r["complete"]]
    assert len(partial) == 1 and "pgd" in partial[0]["accuracy"]      # PGD part cached in the record
    state = robust.record_path(run.dir, partial[0]["key"]).with_suffix(".aa_state.pt")
    assert state.is_file() and torch.load(state, weights_only=False)["x_adv"] is None   # masks, no images

    # resume: PGD must not run again; AutoAttack continues from its state file
    disarm()
    real_attack = attacks.attack_in_batches

    def no_pgd(*args, **kwargs):
        raise AssertionError("PGD recomputed on resume")

    monkeypatch.setattr(attacks, "attack_in_batches", no_pgd)
    resumed = robust.evaluate_run(run, settings, n_images=n, start=start, device="cpu", progress=False)
    monkeypatch.setattr(attacks, "attack_in_batches", real_attack)

    # the same evaluation without interruption, in a fresh directory
    images = robust.eval_slice("cifar10", n, start)
    info = run.checkpoint_info("best")
    fresh_dir = run.dir.parent / "uninterrupted"
    uninterrupted = robust.evaluate(run.load_model("best"), images, settings, fresh_dir,
                                    checkpoint=resumed["checkpoint"],
                                    extra={k: resumed[k] for k in ("method", "dataset", "model", "train_epochs",
                                                                   "n_train", "selection")},
                                    device="cpu", progress=False)
    assert info["epoch"] == resumed["checkpoint"]["epoch"]
    assert _without_times(resumed) == _without_times(uninterrupted)
    assert not state.exists()                                        # a complete record needs no state


def test_other_settings_give_another_record(run):
    a = robust.evaluate_run(run, robust.RobustEvalSettings(autoattack=False, pgd_steps=2, batch_size=16),
                            n_images=4, device="cpu", progress=False)
    b = robust.evaluate_run(run, robust.RobustEvalSettings(autoattack=False, pgd_steps=3, batch_size=16),
                            n_images=4, device="cpu", progress=False)
    assert a["key"] != b["key"] and "autoattack" not in a["accuracy"]
    assert robust.record_path(run.dir, a["key"]).is_file() and robust.record_path(run.dir, b["key"]).is_file()


def test_unfinished_run_and_bad_values_are_refused(tmp_path):
    cfg = TrainConfig.from_profile("smoke", method="trades", device="cpu", name="never-trained")
    with pytest.raises(RunError, match="not finished"):
        robust.evaluate_run(Run(cfg, run_dir(cfg)), CHEAP, n_images=4)
    with pytest.raises(ConfigError, match="outside"):
        robust.RobustEvalSettings(eps=8)
    with pytest.raises(ConfigError, match="has 10000"):
        robust.eval_slice("cifar10", 20, start=9990)


def test_complete_records_are_published_and_read_back_for_the_book(run, tmp_path):
    from energy_lib import tables

    rec = robust.evaluate_run(run, CHEAP, n_images=N, device="cpu", progress=False)   # reused, not recomputed
    path = robust.publish(rec, tmp_path / "published")
    assert path.parent.name == run.dir.name
    back = robust.load_records(tmp_path / "published")
    assert [r["key"] for r in back] == [rec["key"]] and _without_times(back[0]) == _without_times(rec)
    assert len(tables.comparison_table(back)) >= 1                  # chapter 4's table is built from them
    with pytest.raises(ValueError, match="not complete"):
        robust.publish({**rec, "complete": False}, tmp_path / "published")


# ----------------------------------------------------------------------------- one robust definition
class _MeanModel(torch.nn.Module):
    """Class 0 when the image's mean pixel exceeds 0.5, else class 1 (deterministic, no training)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        m = x.float().mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([m, -m], 1) * 10 + self.dummy


def test_robust_correct_requires_clean_correctness():
    clean = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    adv = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.zeros(4, dtype=torch.long)
    assert robust.robust_correct(clean, adv, y).tolist() == [True, False, False, False]


def test_evaluation_counts_an_image_robust_only_if_also_clean_correct(tmp_path, monkeypatch):
    """An image misclassified clean whose attacked version is classified correctly is not robust."""
    x = torch.stack([torch.full((3, 4, 4), v) for v in (0.2, 0.8, 0.8, 0.3)])   # predicted 1, 0, 0, 1
    y = torch.tensor([0, 0, 0, 1])
    monkeypatch.setattr(attacks, "attack_in_batches", lambda name, model, x, y, **kw: 1.0 - x)   # flips all
    images = robust.EvalImages(x, y, {"dataset": "synthetic", "split": "test", "start": 0, "n": 4,
                                      "sha256": robust.images_fingerprint(x, y)})
    settings = robust.RobustEvalSettings(autoattack=False)
    rec = robust.evaluate(_MeanModel(), images, settings, tmp_path, device="cpu", progress=False)
    assert rec["accuracy"]["clean"] == 0.75
    assert rec["accuracy"]["pgd"] == 0.0       # image 0 is right only after the flip: not robust
    # the per-image outcomes in image order, packed in the record
    assert bits.record_outcomes(rec, "clean").tolist() == [0, 1, 1, 1]
    assert bits.record_outcomes(rec, "pgd").tolist() == [0, 0, 0, 0]
    assert bits.record_outcomes(rec, "autoattack") is None        # not run


def test_a_complete_record_without_per_image_outcomes_is_kept_and_an_unfinished_one_recomputed(tmp_path, monkeypatch):
    """A complete record written before version 2 (accuracies only) is reused as it is, never silently
    recomputed (on a GPU it is hours of AutoAttack; comparisons with it are unpaired and say so); an
    unfinished one cannot resume with per-image outcomes and is recomputed to a fresh evaluation's record."""
    x = torch.stack([torch.full((3, 4, 4), v) for v in (0.2, 0.8, 0.8, 0.3)])
    y = torch.tensor([0, 0, 0, 1])
    monkeypatch.setattr(attacks, "attack_in_batches", lambda name, model, x, y, **kw: 1.0 - x)
    images = robust.EvalImages(x, y, {"dataset": "synthetic", "split": "test", "start": 0, "n": 4,
                                      "sha256": robust.images_fingerprint(x, y)})
    settings = robust.RobustEvalSettings(autoattack=False)
    fresh = robust.evaluate(_MeanModel(), images, settings, tmp_path / "fresh", device="cpu", progress=False)
    old = {k: v for k, v in fresh.items() if k != "correct"}
    old["version"] = 1
    path = robust.record_path(tmp_path / "old", fresh["key"])
    path.parent.mkdir()
    path.write_text(json.dumps(old))
    kept = robust.evaluate(_MeanModel(), images, settings, tmp_path / "old", device="cpu", progress=False)
    assert kept == old and json.loads(path.read_text()) == old
    assert bits.record_outcomes(kept, "pgd") is None
    path.write_text(json.dumps({**old, "complete": False}))
    again = robust.evaluate(_MeanModel(), images, settings, tmp_path / "old", device="cpu", progress=False)
    assert _without_times(again) == _without_times(fresh) and again["correct"]["clean"] == fresh["correct"]["clean"]
    assert json.loads(path.read_text())["version"] == 2


# ----------------------------------------------------------------------------- the paper's protocol (tables)
def _record(dataset, n_images, **kw):
    rec = {"dataset": dataset, "model": "resnet18", "n_train": None, "train_epochs": 100, "n_images": n_images,
           "images": {"start": 0, "n": n_images}, "autoattack": {"standard": True}}
    rec.update(kw)
    return rec


def test_paper_protocol_means_the_whole_test_set_of_the_dataset():
    """Defect 11 of issue 10: SVHN's full test set has 26,032 images (PAPER.md 3.4), not 10,000."""
    from energy_lib.tables import follows_paper_protocol

    assert follows_paper_protocol(_record("svhn", 26_032))
    assert not follows_paper_protocol(_record("svhn", 10_000))
    assert follows_paper_protocol(_record("cifar10", 10_000)) and follows_paper_protocol(_record("cifar100", 10_000))
    assert not follows_paper_protocol(_record("cifar10", 1_000))
    assert not follows_paper_protocol(_record("cifar10", 10_000, n_train=500))
    assert not follows_paper_protocol(_record("cifar10", 10_000, model="small_cnn"))
    assert not follows_paper_protocol(_record("cifar10", 10_000, train_epochs=30))
    assert not follows_paper_protocol(_record("cifar10", 10_000, autoattack={"standard": False}))
    assert not follows_paper_protocol(_record("cifar10", 10_000, autoattack=None))


def test_eval_slice_returns_the_images_from_start_on():
    """Test images [start, start + n): the same tensors as the same positions of a slice from 0."""
    import torch

    head = robust.eval_slice("cifar10", 8, 0)
    part = robust.eval_slice("cifar10", 3, start=5)
    assert torch.equal(part.x, head.x[5:8]) and torch.equal(part.y, head.y[5:8])
    assert (part.description["start"], part.description["n"]) == (5, 3)
    assert part.description["sha256"] != head.description["sha256"]
