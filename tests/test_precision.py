"""Energies under reduced precision (issue 13): the CPU bf16 record of the standard ResNet-18 is
recomputed and must equal what the record (and the Performance appendix) states; fp32 against
itself is exactly 0; the paper profile trains with a precision within the ΔE error budget; every run
records its precision and the energy error known for it."""
import json

import pytest
import torch

from energy_lib import precision
from energy_lib.config import TrainConfig
from energy_lib.models import SmallCNN
from energy_lib.provenance import machine_view

CPU_BF16 = [r for r in precision.load_records(precision.REPO_BENCH)
            if r["hardware"]["device"] == "cpu" and "bf16" in r["results"]]


def test_the_cpu_bf16_record_is_recomputed_on_another_cpu():
    """The recorded figures come from a deterministic computation: the same torch on a CPU with the
    record's thread count recomputes them. Measured three times on the recording machine (1 thread):
    identical to the last bit. Another CPU model runs other bf16 kernels (with or without native
    bf16 instructions), which round differently image by image: the mean |E(x*)| error was 0.0399
    on the recording machine and 0.0457 (+15 %) on another, whose fp32 kernels also differ (through
    the PGD attack, rel 1.4e-3 on the mean ΔE). So the fp32 figures are checked to rel 1e-2, the
    accuracies to one image of 64, and the bf16 errors, mean and max, to within a factor 1.5: the
    size the appendix reports, never a 0 (bf16 not in force) nor an order of magnitude off."""
    assert CPU_BF16, "runs/bench/ holds no CPU bf16 precision record: python -m energy_lib.precision --device cpu"
    rec = CPU_BF16[-1]
    if rec["hardware"]["torch"] != torch.__version__:
        pytest.skip(f"record made with torch {rec['hardware']['torch']}, this is {torch.__version__}")
    threads = torch.get_num_threads()
    torch.set_num_threads(machine_view(rec["hardware"])["torch_threads"])   # "threads" in older records
    try:
        again = precision.standard_model_measurement("cpu", ("bf16",), rec["n_images"], rec["attack"]["steps"],
                                                     rec["attack"]["seed"])
    finally:
        torch.set_num_threads(threads)
    for key, value in rec["results"]["bf16"].items():
        if key.startswith("acc_"):
            tolerance = dict(abs=1 / rec["n_images"] + 1e-9)
        elif key.endswith("_fp32"):   # another CPU's fp32 kernels: mean ΔE(x) 11.911 vs 11.928 (rel 1.4e-3)
            tolerance = dict(rel=1e-2, abs=1e-9)
        else:   # *_err_mean, *_err_max: within a factor 1.5 either way
            assert value / 1.5 <= again["results"]["bf16"][key] <= value * 1.5, (key, again["results"]["bf16"][key], value)
            continue
        assert again["results"]["bf16"][key] == pytest.approx(value, **tolerance), key
    # what the issue reported: bf16 moves ΔE(x) by about 0.05 on average, far above the budget
    assert rec["results"]["bf16"]["dE_abs_err_mean"] > 10 * precision.DE_ERROR_BUDGET


def test_fp32_against_itself_is_exactly_zero_and_bf16_is_not():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 10
    out = precision.energy_error(model, x, y, ("fp32", "bf16"), steps=2)
    assert all(out["fp32"][f"{k}_abs_err_{s}"] == 0.0 for k in ("E_nat", "E_adv", "dE") for s in ("mean", "max"))
    assert out["bf16"]["E_nat_abs_err_max"] > 0 and out["bf16"]["dE_abs_err_max"] > 0
    assert out["bf16"]["acc_nat_fp32"] == out["fp32"]["acc_nat"]


def test_numerics_restores_the_tf32_flags_and_rejects_unknown_precisions():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with precision.numerics("tf32", "cpu"):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    with precision.numerics("fp32", "cpu"):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(ValueError, match="precision='fp16'; choose one of fp32, tf32, bf16"):
        with precision.numerics("fp16", "cpu"):
            pass


def test_the_paper_profile_trains_within_the_energy_error_budget():
    paper = TrainConfig.from_profile("paper")
    assert paper.precision == "fp32"
    assert precision.recorded_error(paper.precision, "cpu")["dE_abs_err_mean"] <= precision.DE_ERROR_BUDGET
    bf16 = precision.recorded_error("bf16", "cpu")        # the explicit fast option: its error is known
    assert bf16["dE_abs_err_mean"] == CPU_BF16[-1]["results"]["bf16"]["dE_abs_err_mean"]
    assert bf16["dE_abs_err_mean"] > precision.DE_ERROR_BUDGET
    assert TrainConfig.from_profile("paper", precision="bf16").precision == "bf16"


def test_recorded_error_matches_the_device_and_is_none_when_unmeasured():
    def record(device, gpu, value, when):
        return {"hardware": {"device": device, "gpu": gpu}, "results": {"bf16": {
            "dE_abs_err_mean": value, "dE_abs_err_max": value, "E_nat_abs_err_mean": value,
            "E_nat_abs_err_max": value}}, "file": f"{when}.json", "model": "m", "n_images": 4, "measured_at": when}

    records = [record("cpu", None, 0.05, "a"), record("cpu", None, 0.04, "b")]
    assert precision.recorded_error("bf16", "cpu", records)["dE_abs_err_mean"] == 0.04   # the latest
    assert precision.recorded_error("tf32", "cpu", records) is None                      # never measured
    assert precision.recorded_error("fp32", "cpu", [])["dE_abs_err_mean"] == 0.0


def test_a_run_records_its_precision_and_the_known_energy_error(tmp_path, monkeypatch):
    from energy_lib.runs import train_or_load

    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    cfg = TrainConfig.from_profile("smoke", overrides=dict(
        n_train=32, n_val=16, batch_size=16, epochs=1, schedule="constant", n_train_track=16, n_test_track=16,
        n_track_samples=4, device="cpu", precision="bf16"))
    run = train_or_load(cfg, progress=False)
    env = run.env["sessions"][0]
    assert env["precision"] == "bf16" and json.loads((run.dir / "config.json").read_text())["precision"] == "bf16"
    assert env["energy_error"]["dE_abs_err_mean"] == CPU_BF16[-1]["results"]["bf16"]["dE_abs_err_mean"]
    assert CPU_BF16[-1]["file"] in env["energy_error"]["source"]
