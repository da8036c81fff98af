"""The throughput benchmark: complete records, correct MAC counts, and the fast path trains like
the reference loop (same robust accuracy within noise). No timing is asserted."""
import json

import pytest
import torch

from energy_lib import attacks, bench, data, models
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
    assert saved["hardware"]["torch"] == torch.__version__
    assert saved["hardware"]["tf32_cudnn"] == torch.backends.cudnn.allow_tf32   # numerics in force
    assert len(saved["hardware"]["git"]["commit"]) == 40                        # which code was measured
    assert len(bench.table(bench.load_records(tmp_path))) == 6


def _train(path: str, method: str, n_steps: int) -> torch.nn.Module:
    cfg = TrainConfig(method=method, model="small_cnn", batch_size=64, attack_steps=3, seed=0, device="cpu")
    images = data.fixed_subset(data.load_dataset("cifar10", "train", n=5000), 2048)
    torch.manual_seed(0)
    model = models.build_model("small_cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    if path == "reference":
        batches = bench.reference_batches(images, cfg.batch_size, cfg.seed, "cpu")
        for _ in range(n_steps):
            bench.reference_step(model, opt, *next(batches), cfg, method)
    else:
        step, batches = bench.fast_step_fn(cfg, method), bench.fast_batches(images, cfg, "cpu")
        for _ in range(n_steps):
            step(model, opt, *next(batches))
    return model.eval()


@pytest.mark.parametrize("method", ["sat", "trades"])
def test_fast_path_trains_like_the_reference(method):
    x, y = data.load_dataset("cifar10", "test", n=512).tensors()
    accs = {}
    for path in ("reference", "energy_lib"):
        model = _train(path, method, n_steps=100)
        clean = (attacks.predict_logits(model, x).argmax(1) == y).float().mean().item()
        x_adv = attacks.attack_in_batches("pgd", model, x, y, eps=8 / 255, steps=5, step_size=2 / 255)
        accs[path] = (clean, (attacks.predict_logits(model, x_adv).argmax(1) == y).float().mean().item())
    # Both learned something, or their agreement would prove nothing: on 512 images chance is
    # 0.10 ± 0.013, so these bounds are several standard errors above it.
    for clean, robust in accs.values():
        assert clean > 0.17 and robust > 0.12, accs
    assert abs(accs["reference"][0] - accs["energy_lib"][0]) < 0.08, accs
    assert abs(accs["reference"][1] - accs["energy_lib"][1]) < 0.08, accs


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
