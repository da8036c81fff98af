"""tools/gpu_check.py: the GPU preflight runs every section on a CPU with --tiny and writes one
complete record; its verdict never calls a CPU ready; --make-data writes a copy in ENERGY_DATA's
layout that energy_lib.data reads back; the sweep's work model counts what the paper protocol does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # noqa: E402

from energy_lib import bench, data  # noqa: E402


@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "tools/gpu_check.py", "--tiny", "--device", "cpu", "--out", str(out)],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    files = list(out.glob("gpu-check-cpu-*.json"))
    assert len(files) == 1, "one record per check"
    return json.loads(files[0].read_text()), result.stdout


def test_every_section_runs_on_cpu_with_tiny(tiny_record):
    record, stdout = tiny_record
    assert record["kind"] == "gpu-check" and record["tiny"] is True and record["device"] == "cpu"
    assert list(record["sections"]) == list(gpu_check.SECTIONS)
    for name, section in record["sections"].items():
        assert section["status"] == "ok", (name, section.get("error"))
        assert section["seconds"] >= 0
    steps = record["sections"]["chapters"]["steps"]
    assert set(steps) == ({f"train_{m}" for m in gpu_check.METHOD_FAMILIES.values()}
                          | {"pgd20_autoattack", "sgld", "fidelity_features", "ddp_2_process"})
    for name, step in steps.items():
        ok = step["status"] == "ok" or (name == "fidelity_features" and step["status"] == "skipped"
                                        and "InceptionWeightsNotFoundError" in step["error"])
        assert ok, (name, step.get("error"))
    assert steps["ddp_2_process"]["backend"] == "gloo"
    assert all(steps[f"train_{m}"]["precision"] == "fp32" for m in gpu_check.METHOD_FAMILIES.values())
    env = record["sections"]["environment"]
    for key in ("torch", "cuda", "tf32_matmul", "tf32_cudnn", "bf16_supported", "gpu_count", "git"):
        assert key in env
    (bench_rec,) = record["sections"]["bench"]["records"]
    assert {r["path"] for r in bench_rec["rows"]} == {"reference", "energy_lib fp32", "channels_last"}
    prec = record["sections"]["precision"]
    assert set(prec["results"]) == {"bf16"} and prec["results"]["bf16"]["dE_abs_err_max"] > 0
    pred = record["sections"]["prediction"]
    assert pred["runs"] == 4 * 6 and pred["predicted_hours_one_gpu"] > 0
    assert record["verdict"]["ready_for_make_paper"] is False and "no GPU" in record["verdict"]["text"]
    assert record["verdict"]["text"] in stdout


def test_verdict_names_failed_sections_and_is_ready_only_on_a_gpu_without_failures():
    def record(device, statuses, chapter_steps=None, hours=12.0):
        sections = {k: {"status": v} for k, v in statuses.items()}
        sections["chapters"] = {"status": "ok", "steps": chapter_steps or {}}
        sections["prediction"] = {"status": "ok", "predicted_hours_one_gpu": hours}
        return {"device": device, "sections": sections}

    ok = {"environment": "ok", "bench": "ok", "precision": "ok"}
    assert gpu_check.verdict(record("cuda", ok))["ready_for_make_paper"] is True
    assert "12.0 h" in gpu_check.verdict(record("cuda", ok))["text"]
    bad = gpu_check.verdict(record("cuda", {**ok, "bench": "failed"}, {"sgld": {"status": "failed"}}))
    assert bad["ready_for_make_paper"] is False and bad["failed"] == ["bench", "chapters.sgld"]
    assert gpu_check.verdict(record("cpu", ok))["ready_for_make_paper"] is False


def test_make_data_writes_a_subset_that_energy_lib_reads(tmp_path, monkeypatch):
    out = gpu_check.make_data(tmp_path / "small", n_train=200, n_test=50)
    size = sum(p.stat().st_size for p in out.rglob("*.npz"))
    assert size < 64 * 2**20
    monkeypatch.setenv("ENERGY_DATA", str(out))
    test = data.load_dataset("cifar10", "test", n=50)
    assert test.source.startswith("offline:") and len(test) == 50
    monkeypatch.setenv("ENERGY_DATA", str(ROOT.parent / "shared" / "data"))
    assert (data.load_dataset("cifar10", "test", n=50).x == test.x).all()
    with np.load(out / "cifar10" / "train.npz") as f:
        assert f["x"].shape == (200, 32, 32, 3) and f["x"].dtype == np.uint8 and len(np.unique(f["y"])) == 10


def test_the_default_make_data_copy_fits_in_one_device_call():
    # 8,000 + 1,000 images of 3 KiB each, before compression
    assert (8000 + 1000) * 32 * 32 * 3 < 64 * 2**20


def test_sweep_work_counts_training_tracking_and_evaluation():
    work = bench.paper_sweep_work(["cifar10"], ["sat"])
    # training 100 x 49,000 x 23; tracking 100 x (2000 x 22 + (1000 + 1000) x 42); PGD-20 + AA on 10,000
    expected = 100 * 49_000 * 23 + 100 * (2000 * 22 + 2000 * 42) + 10_000 * (42 + bench.AA_FORWARD_EQUIVALENTS)
    assert work["forward_equivalents"] == expected and work["runs"] == 1
    tiny = bench.paper_sweep_work(["tiny-imagenet"], ["sat"])["forward_equivalents"]
    assert tiny > 4 * expected   # 64x64 images (4x the MACs) and twice the training images
