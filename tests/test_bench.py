"""The throughput benchmark: complete records, correct MAC counts, and the fast path computes the
reference loop's training step exactly (same loss and gradients). No timing is asserted."""
import copy
import json
from dataclasses import replace

import pytest
import torch

from energy_lib import bench, data, losses, models, provenance
from energy_lib.config import TrainConfig


def test_mac_count_matches_the_known_resnet18_cost():
    # CIFAR ResNet-18: 0.555 GMACs per 32x32 image (the cost model)
    assert bench.macs_per_image(models.build_model("resnet18")) == pytest.approx(0.555e9, rel=0.01)


def test_bench_writes_a_complete_record(tmp_path):
    cfg = bench.BenchConfig(batch_size=8, steps=1, warmup=1, attack_steps=1, n_images=32,
                            methods=("sat", "trades"), flags=("channels_last",))
    record = bench.run_bench(cfg, progress=False)
    path = bench.save_record(record, tmp_path)
    saved = json.loads(path.read_text())
    paths = {(r["method"], r["path"]) for r in saved["rows"]}
    assert paths == {(m, p) for m in ("sat", "trades") for p in ("reference", "energy_lib fp32", "channels_last")}
    for row in saved["rows"]:
        assert row["images_per_s"] > 0 and row["tflops"] > 0
        assert row["fraction_of_peak"] is None  # CPU: no known peak, so no made-up fraction
    assert all(r["ratio_to_reference"] == 1 for r in saved["rows"] if r["path"] == "reference")
    assert set(provenance.MACHINE_KEYS) <= set(saved["hardware"])                # the one machine description
    assert saved["hardware"]["torch"] == torch.__version__ and saved["hardware"]["device"] == "cpu"
    assert saved["hardware"]["gpu"] is None and path.name.startswith("bench-small_cnn-cpu-")
    assert saved["hardware"]["tf32_cudnn"] == torch.backends.cudnn.allow_tf32   # numerics in force
    assert saved["hardware"]["git"] == provenance.git_state()                   # which code was measured
    assert len(saved["hardware"]["git"]["commit"]) == 40
    table = bench.table(bench.load_records(tmp_path))
    assert len(table) == 6 and set(table["hardware"]) == {f"CPU ({torch.get_num_threads()} threads)"}


def test_the_table_shows_records_of_every_version(tmp_path):
    """Records written before provenance.machine named the torch threads "threads"; a GPU record is
    labelled by its GPU."""
    row = {"method": "sat", "path": "reference", "images_per_s": 1.0, "ratio_to_reference": 1.0,
           "fraction_of_peak": None}
    base = {"config": {"model": "x", "batch_size": 8}, "rows": [row], "measured_at": "2026-11-22T00:00:00Z"}
    records = [{**base, "hardware": {"device": "cpu", "cpu": "x86_64", "threads": 2}},
               {**base, "hardware": {"device": "cpu", "torch_threads": 3, "gpu": None}},
               {**base, "hardware": {"device": "cuda:0", "torch_threads": 3, "gpu": "NVIDIA H200"}}]
    assert list(bench.table(records)["hardware"]) == ["CPU (2 threads)", "CPU (3 threads)", "NVIDIA H200"]


@pytest.mark.parametrize("method", ["sat", "trades", "weat_adv"])
def test_fast_path_computes_the_reference_step_exactly(method):
    """The same batch, weights and attack start through the paper-style loop and energy_lib's
    step give the same loss and the same parameter gradients (fp32): the speed-up changes how the
    step is computed, never what it computes."""
    cfg = TrainConfig(method=method, model="small_cnn", batch_size=32, attack_steps=3, seed=0, device="cpu")
    x, y = data.load_dataset("cifar10", "train", n=32).tensors()
    torch.manual_seed(0)
    reference = models.build_model("small_cnn")
    fast = copy.deepcopy(reference)
    # energy_lib's own random start (zero attack steps = the start), handed to the reference loop
    ctx = losses.StepContext(generator=torch.Generator().manual_seed(cfg.seed))
    start = losses.get_training_attack(method)(copy.deepcopy(reference), x, y, replace(cfg, attack_steps=0), ctx) - x

    # lr 0: the step leaves the weights as they are and the gradients in .grad
    ref_loss = bench.reference_step(reference, torch.optim.SGD(reference.parameters(), lr=0.0), x, y, cfg,
                                    method, start=start)
    fast_loss = bench.fast_step_fn(cfg, method)(fast, torch.optim.SGD(fast.parameters(), lr=0.0), x, y)
    assert fast_loss.item() == pytest.approx(ref_loss, rel=1e-5)
    for (name, p_ref), p_fast in zip(reference.named_parameters(), fast.parameters()):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-4, atol=1e-6, msg=name)
    # and the step did real work: the attack moved the input and the gradients are not zero
    assert start.abs().max() > 0 and any(p.grad.abs().sum() > 0 for p in fast.parameters())


def test_records_are_ordered_by_measurement_time_not_file_name(tmp_path):
    base = {"config": {"model": "x"}, "hardware": {"threads": 2}, "rows": []}
    for name, when in (("bench-a-gpu.json", "2026-11-23T00:00:00Z"), ("bench-z-cpu.json", "2026-11-22T00:00:00Z")):
        (tmp_path / name).write_text(json.dumps({**base, "measured_at": when}))
    assert [r["measured_at"][:10] for r in bench.load_records(tmp_path)] == ["2026-11-22", "2026-11-23"]


def test_work_per_step_counts_forward_equivalents():
    # PGD-10: 10 x (forward + input-gradient backward); SAT then 1 forward + 1 full backward (=3);
    # TRADES-style: the clean softmax once, then clean and adversarial forward + backward
    assert bench.forward_equivalents("sat", 10) == 23
    assert bench.forward_equivalents("trades", 10) == 27 and bench.forward_equivalents("weat_adv", 10) == 27
