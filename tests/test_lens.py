"""The energy lens: statistics on known inputs, RobustBench loading offline, model sources and their
errors, the record's reuse, and real-data facts (PAPER.md 5.2 item 4) on the standard ResNet-18 and
a short adversarially trained run."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from energy_lib import lens, models, runs, verdicts
from energy_lib.config import ConfigError, LensConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- statistics, known answers
def test_detection_scores_direction_and_values():
    nat = np.array([-10.0, -11.0, -12.0, -13.0])
    # adversarial energies lower = more in-distribution under the score -E: AUROC 0, every one above threshold
    lower = lens.detection_scores(nat, nat - 10)
    assert lower["auroc"] == 0.0 and lower["fpr_at_95_tpr"] == 1.0
    higher = lens.detection_scores(nat, nat + 10)
    assert higher["auroc"] == 1.0 and higher["fpr_at_95_tpr"] == 0.0
    assert lens.detection_scores(nat, nat)["auroc"] == 0.5
    # scores -E: natural {0, -2}, adversarial {-1, -3}: 3 of 4 pairs ordered natural > adversarial
    assert lens.detection_scores([0.0, 2.0], [1.0, 3.0])["auroc"] == pytest.approx(0.75)


def test_delta_distribution_summary():
    values = np.array([-0.2, -0.05, 0.0, 0.05, 0.3])
    d = lens.delta_distribution(values, bins=5)
    assert d["n"] == 5 and d["mean"] == pytest.approx(0.02) and d["std"] == pytest.approx(values.std())
    assert d["frac_within_0.1"] == pytest.approx(0.6) and d["q50"] == 0.0
    assert sum(d["histogram"]["counts"]) == 5 and len(d["histogram"]["edges"]) == 6


def test_attack_summary_counts_robust_only_where_the_clean_image_was_right_too():
    """Planted block of 4 images: clean right on 0, 1, 2; adversarial right on 1, 2, 3 (image 3 was
    wrong clean and the attack "fixed" it). Robust accuracy 2/4 (right on both), the adversarial
    accuracy alone 3/4; means, ℓ∞ and the detection scores of exactly this block."""
    import pandas as pd

    rows = pd.DataFrame({"attack": "pgd", "eps": 8 / 255, "sample": range(4),
                         "E_nat": [-5.0, -6.0, -7.0, -8.0], "E_adv": [-4.0, -5.0, -6.0, -9.0],
                         "Exy_nat": [-1.0, -2.0, -3.0, -4.0], "Exy_adv": [0.0, -1.0, -2.0, -3.0],
                         "correct_nat": [True, True, True, False], "correct_adv": [False, True, True, True],
                         "linf": [0.01, 0.03, 0.02, 0.0]})
    s = lens.attack_summary(rows)
    assert s["robust_accuracy"] == 0.5 and s["accuracy_adv"] == 0.75
    assert (s["mean_E_nat"], s["mean_E_adv"], s["mean_Exy_nat"], s["mean_Exy_adv"]) == (-6.5, -6.0, -2.5, -1.5)
    assert s["max_linf"] == 0.03 and s["eps"] == pytest.approx(8 / 255) and s["attack"] == "pgd"
    assert s["label"] == lens.LABELS["pgd"] and s["in_paper"] == lens.IN_PAPER["pgd"]
    assert s["auroc"] == lens.detection_scores(rows.E_nat, rows.E_adv)["auroc"]


def test_smoothness_verdict_on_known_inputs():
    acc = np.linspace(0.0, 0.7, 8)
    tight_when_robust = lens.smoothness_verdict(np.linspace(3.0, 0.2, 8), acc)
    assert tight_when_robust.verdict == "reproduced" and tight_when_robust.rho == pytest.approx(-1.0)
    assert tight_when_robust.p_value == pytest.approx(1 / 40320)   # exact: one ordering of 8! is as extreme
    wide_when_robust = lens.smoothness_verdict(np.linspace(0.2, 3.0, 8), acc)
    assert wide_when_robust.verdict == "not reproduced" and wide_when_robust.rho == pytest.approx(1.0)
    # no monotone relation (ρ = 0 exactly): not reproduced either way
    flat = lens.smoothness_verdict([1.0, 3.0, 2.0, 4.0, 4.5, 2.5, 3.5, 1.5], acc)
    assert flat.verdict == "inconclusive" and abs(flat.rho) < 0.2
    # ... and says what it could have detected: tanh((z_0.95 + z_0.8) / √(8 − 3)) = 0.80
    assert "; with 8 models only a true |ρ| of about 0.80 or more is detected with 80% power" in flat.reason
    # three models can never give p < 0.05 (smallest exact p = 1/6): inconclusive, not "reproduced"
    few = lens.smoothness_verdict([3.0, 1.0, 0.5], [0.0, 0.3, 0.5])
    assert few.rho == pytest.approx(-1.0) and few.verdict == "inconclusive" and "smallest p" in few.reason
    assert few.p_asymptotic < 0.05   # why spearmanr's t-approximation is not the verdict's p-value
    assert lens.smoothness_verdict([1.0, 1.0, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4]).verdict == "inconclusive"


def test_attack_names_are_checked_and_paper_expands():
    assert LensConfig(attacks="paper").attacks == lens.PAPER_ATTACKS
    assert "pgd_targeted" not in lens.PAPER_ATTACKS and "fab" in lens.PAPER_ATTACKS
    with pytest.raises(ConfigError, match="unknown attack"):
        LensConfig(attacks=("pgd", "deepfool"))


# ----------------------------------------------------------------------------- RobustBench, offline
def _robustbench_standard():
    rb_utils, zoo, BenchmarkDataset, ThreatModel = models._robustbench()
    return rb_utils, zoo[BenchmarkDataset("cifar10")][ThreatModel("Linf")]["Standard"]["model"]


def test_robustbench_model_loads_offline_from_its_folder(tmp_path, monkeypatch):
    """A checkpoint of the right architecture in robustbench's layout loads through load_model
    with no network: neither the reachability probe nor the download may run."""
    rb_utils, build = _robustbench_standard()
    torch.manual_seed(0)
    net = build().eval()   # WRN-28-10 with random weights
    folder = tmp_path / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    torch.save(net.state_dict(), folder / "Standard.pt")

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used although the weights are on disk")

    monkeypatch.setattr(models, "_network_reachable", no_network)
    monkeypatch.setattr(rb_utils, "download_gdrive_new", no_network)
    loaded = models.load_robustbench("Standard", tmp_path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert not loaded.training


def test_missing_robustbench_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    rb_utils, _ = _robustbench_standard()

    def download_would_hang(*args, **kwargs):
        raise AssertionError("the download was attempted without a network")

    monkeypatch.setattr(models, "_network_reachable", lambda *a, **k: False)
    monkeypatch.setattr(rb_utils, "download_gdrive_new", download_would_hang)
    with pytest.raises(models.WeightsNotFoundError) as err:
        models.load_robustbench("Zhang2019Theoretically", tmp_path)
    message = str(err.value)
    folder = tmp_path / "cifar10" / "Linf"
    assert "\n" not in message and str(folder / "Zhang2019Theoretically.pt") in message
    assert f"in {folder}" in message and "unreachable" in message


def test_failed_download_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    rb_utils, _ = _robustbench_standard()

    def broken_download(gdrive_id, fname_save):
        Path(fname_save).write_bytes(b"<html>quota exceeded</html>")
        raise ConnectionError("connection reset by peer\nsecond line")

    monkeypatch.setattr(models, "_network_reachable", lambda *a, **k: True)
    monkeypatch.setattr(rb_utils, "download_gdrive_new", broken_download)
    with pytest.raises(models.WeightsNotFoundError, match="downloading RobustBench weights .* failed") as err:
        models.load_robustbench("Zhang2019Theoretically", tmp_path)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "cifar10" / "Linf" / "Zhang2019Theoretically.pt").exists()


def test_unknown_robustbench_id_names_close_ids():
    with pytest.raises(ConfigError, match="not a RobustBench cifar10 Linf model ID; did you mean .*Zhang2019Theoretically"):
        models.check_robustbench_id("Zhang2019Theoreticaly")


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_sources_and_their_errors(tmp_path):
    torch.manual_seed(0)
    net = models.build_model("small_cnn").eval()
    good = tmp_path / "good.pt"
    torch.save({"model": {f"module.{k}": v for k, v in net.state_dict().items()}}, good)   # run-style, DataParallel
    loaded = lens.ModelSource.parse(f"small_cnn:{good}").load()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    with pytest.raises(lens.LensError, match="does not fit architecture 'resnet18'") as err:
        lens.ModelSource("checkpoint", str(good), arch="resnet18").load()
    assert "\n" not in str(err.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(lens.LensError, match="cannot be read by torch.load"):
        lens.ModelSource("checkpoint", str(corrupt), arch="small_cnn").load()
    with pytest.raises(lens.LensError, match="does not exist"):
        lens.ModelSource("checkpoint", str(tmp_path / "nope.pt"), arch="small_cnn").identity()
    with pytest.raises(ConfigError, match="not understood"):
        lens.ModelSource.parse("Zhang2019Theoretically")


# ----------------------------------------------------------------------------- records: reuse, never overwritten
CHEAP = LensConfig.from_profile("smoke", n_images=8, pgd_steps=2, device="cpu")


def _cheap_model():
    torch.manual_seed(0)
    return models.build_model("small_cnn").eval()


def test_record_is_reused_and_never_overwritten_by_another_config(monkeypatch):
    model = _cheap_model()
    first = lens.look(model, CHEAP, source_identity={"kind": "test", "seed": 0}, name="fixed", progress=False)
    assert not first.reused and (first.directory / "record.json").is_file()
    assert (first.directory / "energies.npz").is_file()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished record was recomputed")

    monkeypatch.setattr(lens, "_run_attack", must_not_run)
    again = lens.look(None, CHEAP, source_identity={"kind": "test", "seed": 0}, name="fixed", progress=False)
    assert again.reused and again.record == first.record
    np.testing.assert_array_equal(again.frame.E_adv.to_numpy(), first.frame.E_adv.to_numpy())
    before = (first.directory / "record.json").read_text()
    with pytest.raises(lens.LensError, match=r"holds another config \(different settings \['pgd_steps'\]\)"):
        lens.look(model, CHEAP.replace(pgd_steps=3), source_identity={"kind": "test", "seed": 0}, name="fixed",
                  progress=False)
    with pytest.raises(lens.LensError, match="different model"):
        lens.look(model, CHEAP, source_identity={"kind": "test", "seed": 1}, name="fixed", progress=False)
    assert (first.directory / "record.json").read_text() == before
    # without a fixed name another config is simply another record
    monkeypatch.undo()
    other = lens.look(model, CHEAP.replace(pgd_steps=3), source_identity={"kind": "test", "seed": 0},
                      progress=False)
    assert other.directory != first.directory


def test_record_contents_are_consistent():
    model = _cheap_model()
    cfg = CHEAP.replace(attacks=("pgd", "cw"), delta_attack="cw")
    res = lens.look(model, cfg, source_identity={"kind": "test", "seed": 0}, progress=False)
    rec, frame = res.record, res.frame
    assert set(rec["attacks"]) == {"pgd@8.00", "cw@8.00"} and rec["delta"]["attack"] == "cw"
    cw = frame[frame.attack == "cw"]
    assert rec["delta"]["marginal"]["mean"] == pytest.approx((cw.E_nat - cw.E_adv).mean())
    assert rec["attacks"]["cw@8.00"]["mean_Exy_adv"] == pytest.approx(cw.Exy_adv.mean())
    pgd = frame[frame.attack == "pgd"]
    assert rec["accuracy"]["pgd"] == pytest.approx((pgd.correct_adv & pgd.correct_nat).mean())
    assert (frame.linf <= cfg.eps + 1e-6).all()
    with torch.no_grad():
        from energy_lib.metrics.robust import eval_slice
        logits = model(eval_slice("cifar10", 8).x)
    np.testing.assert_allclose(pgd.E_nat, -torch.logsumexp(logits, 1).numpy(), rtol=1e-5)


def test_a_record_keeps_its_first_images_and_their_adversarial_counterparts_as_pictures(monkeypatch):
    """The hover pictures: the first EXAMPLES test images and, per attack, what the attack made of them,
    in 8 bits; kept beside the record, reused with it, and a damaged file is left out with a warning."""
    from energy_lib.metrics.robust import eval_slice

    model = _cheap_model()
    cfg = CHEAP.replace(attacks=("pgd", "cw"))
    monkeypatch.setattr(lens, "EXAMPLES", 3)
    captured = {}
    real = lens._run_attack

    def keep(model, x, y, attack, eps, cfg):
        captured[attack] = real(model, x, y, attack, eps, cfg)
        return captured[attack]

    monkeypatch.setattr(lens, "_run_attack", keep)
    res = lens.look(model, cfg, source_identity={"kind": "test", "pictures": 1}, progress=False)
    assert set(res.examples) == {"pgd@8.00", "cw@8.00"}
    x = eval_slice("cifar10", cfg.n_images).x
    for attack in ("pgd", "cw"):
        pair = res.examples[f"{attack}@8.00"]
        assert pair["natural"].dtype == np.uint8 and pair["natural"].shape == (3, 3, 32, 32)
        np.testing.assert_array_equal(pair["natural"], (x[:3] * 255).round().to(torch.uint8).numpy())
        np.testing.assert_array_equal(pair["adversarial"], (captured[attack][:3] * 255).round().to(torch.uint8).numpy())
        # within ε of the image, in 8 bits (a rounding step at most)
        step = np.abs(pair["adversarial"].astype(int) - pair["natural"].astype(int)).max()
        assert 0 < step <= math.ceil(cfg.eps * 255) + 1
    monkeypatch.setattr(lens, "_run_attack", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = lens.look(None, cfg, source_identity={"kind": "test", "pictures": 1}, progress=False)
    assert again.reused and set(again.examples) == set(res.examples)
    np.testing.assert_array_equal(again.examples["cw@8.00"]["adversarial"], res.examples["cw@8.00"]["adversarial"])
    damaged = res.directory / "examples-cw@8.00.npz"
    data = dict(np.load(damaged, allow_pickle=False))
    data["adversarial"] = data["adversarial"] ^ np.uint8(1)
    np.savez(damaged, **data)
    with pytest.warns(UserWarning, match=r"examples-cw@8.00.npz is damaged.*its pictures are not shown"):
        third = lens.look(None, cfg, source_identity={"kind": "test", "pictures": 1}, progress=False)
    assert set(third.examples) == {"pgd@8.00"} and third.record == res.record   # no number depends on them


# ----------------------------------------------------------------------------- real data (PAPER.md 5.2 item 4)
REAL = LensConfig.from_profile("smoke", n_images=32, pgd_steps=10, device="cpu")


@pytest.fixture(scope="module")
def robust_run():
    """A short SAT run of the small CNN: 4 epochs of 2-step PGD training on 512 CIFAR-10 images."""
    cfg = TrainConfig.from_profile("smoke", method="sat", n_train=512, epochs=4, attack_steps=2, device="cpu")
    return runs.train_or_load(cfg, progress=False)


def test_standard_model_through_the_lens():
    res = lens.look(None, REAL, lens.ModelSource("standard"), progress=False)
    rec = res.record
    assert rec["accuracy"]["clean"] >= 0.85 and rec["accuracy"]["pgd"] <= 0.05
    # untargeted CE attack: adversarial images look more in-distribution (PAPER.md 2.1)
    assert rec["delta"]["marginal"]["mean"] > 2.0
    assert rec["attacks"]["pgd@8.00"]["auroc"] < 0.3


def test_robust_run_has_a_much_tighter_delta_energy(robust_run):
    standard = lens.look(None, REAL, lens.ModelSource("standard"), progress=False).record
    robust = lens.look(None, REAL, lens.ModelSource("run", str(robust_run.dir)), progress=False).record
    # PAPER.md 5.2 item 4: std of ΔE(x) at least 5x smaller; mean ΔE(x, y) negative
    assert 5 * robust["delta"]["marginal"]["std"] < standard["delta"]["marginal"]["std"]
    assert robust["delta"]["joint"]["mean"] < 0
    assert robust["accuracy"]["pgd"] > standard["accuracy"]["pgd"]
    assert robust["model"]["kind"] == "run" and robust["model"]["epoch"] == robust_run.checkpoint_info()["epoch"]


# ----------------------------------------------------------------------------- command line
def _cli(*args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "energy_lib", "lens", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("case", ["bad_id", "wrong_arch", "corrupt", "arch_without_checkpoint"])
def test_cli_errors_are_one_line_exit_2(case, tmp_path):
    torch.manual_seed(0)
    small = tmp_path / "small_cnn.pt"
    torch.save(models.build_model("small_cnn").state_dict(), small)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    args, expected = {
        "bad_id": (["--robustbench", "Nope2099Robust"], "not a RobustBench cifar10 Linf model ID"),
        "wrong_arch": (["--arch", "resnet18", "--checkpoint", str(small)], "does not fit architecture 'resnet18'"),
        "corrupt": (["--arch", "small_cnn", "--checkpoint", str(corrupt)], "cannot be read by torch.load"),
        "arch_without_checkpoint": (["--standard", "--arch", "resnet18"], "--arch and --checkpoint go together"),
    }[case]
    out = _cli(*args, "--profile", "smoke", "--no-progress", tmp_path=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_cli_prints_a_summary_and_reuses_the_record(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "small_cnn.pt"
    torch.save(models.build_model("small_cnn").state_dict(), ckpt)
    args = ["--arch", "small_cnn", "--checkpoint", str(ckpt), "--profile", "smoke", "--n-images", "8",
            "--device", "cpu", "--no-progress"]
    first = _cli(*args, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "ΔE under PGD" in first.stdout and "AUROC" in first.stdout and "(reused)" not in first.stdout
    again = _cli(*args, tmp_path=tmp_path)
    assert again.returncode == 0 and "(reused)" in again.stdout


# ----------------------------------------------------------------------------- the report notebook
def test_report_renders_to_html_for_a_run(robust_run, tmp_path):
    """`make lens`'s two steps: papermill with the model spec, then nbconvert to HTML."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    executed = tmp_path / "report.ipynb"
    params = ["-p", "model", f"run:{robust_run.dir}", "-p", "profile", "smoke", "-p", "n_images", "32",
              "-p", "pgd_steps", "10", "-p", "device", "cpu"]
    run = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "tools" / "lens_report.ipynb"), str(executed),
                          *params], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    conv = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(executed)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert conv.returncode == 0, conv.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png") >= 3 and "standard ResNet-18" in page and "Traceback" not in page


def test_interrupted_look_resumes_from_finished_attacks(monkeypatch):
    model = _cheap_model()
    cfg = CHEAP.replace(attacks=("pgd", "cw", "trades_kl"))
    real = lens._run_attack
    calls = []

    def interrupted(model, x, y, attack, eps, cfg):
        calls.append(attack)
        if attack == "trades_kl":
            raise KeyboardInterrupt
        return real(model, x, y, attack, eps, cfg)

    monkeypatch.setattr(lens, "_run_attack", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lens.look(model, cfg, source_identity={"kind": "test", "resume": 1}, progress=False)
    assert calls == ["pgd", "cw", "trades_kl"]
    calls.clear()
    monkeypatch.setattr(lens, "_run_attack", lambda *a: (calls.append(a[3]), real(*a))[1])
    resumed = lens.look(model, cfg, source_identity={"kind": "test", "resume": 1}, progress=False)
    assert calls == ["trades_kl"]   # the finished attacks came from their cache files
    fresh = lens.look(model, cfg, source_identity={"kind": "test", "resume": 2}, progress=False)
    np.testing.assert_array_equal(resumed.frame.E_adv.to_numpy(), fresh.frame.E_adv.to_numpy())


def test_the_smoothness_ranking_is_over_robust_models_only():
    """Issue 23, point 6: adding the standard model (0 % robust, the widest spread) must not move ρ;
    and the scale-free spread is ranked the same way from its own column."""
    import pandas as pd

    robust = pd.DataFrame({"model": ["a", "b", "c", "d", "e"], "robust": [0.30, 0.35, 0.40, 0.45, 0.50],
                           "std ΔE(x)": [0.05, 0.07, 0.04, 0.06, 0.03], "kind": "run"})
    robust["scaled"] = [0.20, 0.15, 0.10, 0.05, 0.01]           # falls strictly with robustness: ρ = −1
    with_standard = pd.concat([robust, pd.DataFrame([{"model": "std", "robust": 0.0, "std ΔE(x)": 8.0,
                                                      "scaled": 1.0, "kind": "standard"}])], ignore_index=True)
    learned = dict.fromkeys(robust["model"], verdicts.model_regime(**LEARNED))    # the standard model needs none
    alone, mixed = (lens.smoothness_over_robust(robust, regimes=learned),
                    lens.smoothness_over_robust(with_standard, regimes=learned))
    assert (alone.rho, alone.p_value, alone.n_models) == (mixed.rho, mixed.p_value, mixed.n_models) == \
        (alone.rho, alone.p_value, 5)
    assert lens.smoothness_verdict(with_standard["std ΔE(x)"], with_standard["robust"]).rho != alone.rho
    scaled = lens.smoothness_over_robust(with_standard, spread="scaled", regimes=learned)
    assert scaled.rho == pytest.approx(-1.0) and scaled.n_models == 5
    # every model learned: the same verdict and texts as without regimes
    plain = lens.smoothness_verdict(robust["std ΔE(x)"], robust["robust"])
    assert (alone.verdict, alone.reason, alone.never_learned) == (plain.verdict, plain.reason, {})


# ----------------------------------------------------------------------------- ρ over the models that learned
# A robust model whose network never learned (the smoke build's 2-epoch SAT run: 6.2 % clean on 16 images) is
# tight by construction and at ~0 % robust accuracy; ranking it with the others moves ρ without saying anything
# about robust classifiers. smoothness_over_robust reads each robust model's regime (verdicts.model_regime, as
# chapter 6's spread check does): never learned -> left out of the ranking and named with its figures.
LEARNED = dict(clean=0.6, n_images=400, n_classes=10, ce=1.2)
SMOKE_NEVER = dict(clean=1 / 16, n_images=16, n_classes=10, ce=np.log(10) - 0.001, steps=8)
SMOKE_FIGURES = ("smoke SAT (its best clean test accuracy is 6.2% [1.1%, 28.3%] on 16 images, not significantly above "
                 "2x chance (20%); clean CE is 0.00 nats below the uniform prediction's ln K after 8 optimizer steps)")


def _ranked(models, spread, robust):
    import pandas as pd

    return pd.DataFrame({"model": models, "std ΔE(x)": spread, "robust": robust, "kind": "run"})


def test_a_never_learned_model_cannot_flip_the_ranking():
    """Four learned models perfectly ordered (ρ = −1, exact p = 1/24): reproduced. Ranked with a never-learned
    one (the tightest spread at the lowest robust accuracy), ρ is exactly 0: the old answer, inconclusive."""
    table = _ranked(["TRADES", "MART", "AWP", "reference", "smoke SAT"], [3.0, 2.0, 1.0, 0.5, 0.001],
                    [0.1, 0.2, 0.3, 0.4, 0.0])
    assert lens.smoothness_verdict(table["std ΔE(x)"], table["robust"]).rho == pytest.approx(0.0)   # before
    regimes = {**dict.fromkeys(["TRADES", "MART", "AWP", "reference"], verdicts.model_regime(**LEARNED)),
               "smoke SAT": verdicts.model_regime(**SMOKE_NEVER)}
    v = lens.smoothness_over_robust(table, regimes=regimes)
    assert v.verdict == "reproduced" and v.rho == pytest.approx(-1.0) and v.n_models == 4
    assert v.p_value == pytest.approx(1 / 24)
    assert list(v.never_learned) == ["smoke SAT"]
    assert v.reason == ("ρ = -1.00 < 0 with one-sided p = 0.0417 < 0.05 over the 4 robust models that learned; left "
                        "out of the claim, because the network never learned (a network that did not learn is tight "
                        "by construction): " + SMOKE_FIGURES)


def test_too_few_learned_models_leave_rho_unread():
    """Four models perfectly ordered are 'reproduced' (p = 1/24) when counted together; two of them never
    learned: 2 models cannot be ranked, so ρ is not read (inconclusive) and the reason says how many it needs."""
    table = _ranked(["reference", "TRADES", "smoke SAT", "smoke TRADES"], [0.5, 1.0, 2.0, 3.0], [0.4, 0.3, 0.2, 0.1])
    assert lens.smoothness_verdict(table["std ΔE(x)"], table["robust"]).verdict == "reproduced"      # before
    learned, never = verdicts.model_regime(**LEARNED), verdicts.model_regime(**SMOKE_NEVER)
    mix = lens.smoothness_over_robust(table, regimes={"reference": learned, "TRADES": learned, "smoke SAT": never,
                                                      "smoke TRADES": never})
    assert mix.verdict == "inconclusive" and np.isnan(mix.rho) and mix.n_models == 2
    assert mix.reason.startswith("only 2 of the 4 robust models learned: a rank correlation needs at least 3 models "
                                 "(4 before any ordering can reach p < 0.05), so ρ is not read; left out of the claim, "
                                 "because the network never learned (a network that did not learn is tight by "
                                 "construction): " + SMOKE_FIGURES + "; smoke TRADES (")
    none = lens.smoothness_over_robust(table, regimes=dict.fromkeys(table["model"], never))
    assert none.verdict == "inconclusive" and np.isnan(none.rho) and none.n_models == 0
    assert none.reason.startswith("none of the 4 robust models learned: a rank correlation needs at least 3 models")
    assert set(none.never_learned) == set(table["model"])
    # three learned models are ranked, and are too few for p < 0.05 (the existing reason)
    three = lens.smoothness_over_robust(table, regimes={**dict.fromkeys(table["model"], learned), "smoke TRADES": never})
    assert three.n_models == 3 and three.rho == pytest.approx(-1.0) and three.verdict == "inconclusive"
    assert "(with 3 models no ordering can reach p < 0.05: the smallest p is 0.167)" in three.reason


def test_the_ranking_needs_every_robust_models_regime():
    table = _ranked(["reference", "TRADES", "MART"], [0.5, 1.0, 2.0], [0.4, 0.3, 0.2])
    with pytest.raises(TypeError):
        lens.smoothness_over_robust(table)                                          # the regimes are not optional
    with pytest.raises(ValueError, match=r"regime of every robust model.*\['MART'\]"):
        lens.smoothness_over_robust(table, regimes=dict.fromkeys(["reference", "TRADES"],
                                                                 verdicts.model_regime(**LEARNED)))
    with pytest.raises(ValueError, match="one label per model"):
        lens.smoothness_verdict([0.5, 1.0, 2.0], [0.4, 0.3, 0.2], regimes={})
