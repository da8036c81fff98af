"""Throughput of adversarial training: a paper-style reference loop against energy_lib's path.

    python -m energy_lib.bench                      # CPU-sized configuration (what CI runs)
    python -m energy_lib.bench --model resnet18 --batch-size 512 --steps 20 --device cuda

(a) `reference`: written the way the paper's code does it: a DataLoader with CPU torchvision
    transforms, fp32, NCHW, the clean forward recomputed inside every TRADES attack step, and
    `loss.backward()`.
(b) `energy_lib`: the library's training step (`losses.get_loss` + `data.BatchIterator`) with each
    speed flag alone and all together (bf16 autocast, channels_last, torch.compile; GPU-resident
    data is always on since the iterator keeps the data on the device).

Figures are images per second after warm-up (CUDA events on a GPU), the ratio to the reference,
and the achieved fraction of the GPU's peak, counting MACs with forward hooks: a PGD-K step is a
forward plus an input-gradient backward (≈ one more forward), the outer update a forward and a
full backward (≈ two forwards) per pass. Each run is saved as a JSON record under `runs/bench/`
with the hardware and versions. No timing is ever asserted by the tests.
"""
from __future__ import annotations

import argparse
import json
import warnings
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, fileio, losses, models
from .config import TrainConfig, runs_root
from .energy import marginal_energy, weat_weights
from .provenance import git_state, machine, machine_label

# Dense peaks (TFLOP/s) of GPUs we know, first matching name wins; unknown hardware gets no
# fraction. fp32 convolutions run on TF32 tensor cores when cuDNN allows TF32 (PyTorch's default),
# so an fp32 row is compared with the TF32 peak then, with the plain fp32 peak otherwise.
PEAK_TFLOPS = (("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0}),
               ("H100", {"bf16": 989.0, "tf32": 494.7, "fp32": 67.0}),
               ("H200", {"bf16": 989.0, "tf32": 494.7, "fp32": 67.0}),
               ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}))
METHODS = ("sat", "trades", "weat_adv")


@dataclass(frozen=True)
class BenchConfig:
    model: str = "small_cnn"
    methods: tuple = ("sat", "trades")
    batch_size: int = 32
    steps: int = 3            # timed training steps per measurement
    warmup: int = 1
    attack_steps: int = 10    # PGD-10 as in the paper
    n_images: int = 512
    device: str = "cpu"
    flags: tuple = ("channels_last",)   # each measured alone, then all together
    seed: int = 0


# ---------------------------------------------------------------- the reference loop (paper style)
class _TransformDataset(torch.utils.data.Dataset):
    def __init__(self, images: data.ImageData):
        import torchvision.transforms as T

        self.x = images.x.permute(0, 2, 3, 1).numpy()   # HWC uint8, as torchvision's CIFAR10 holds it
        self.y = images.y
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def _reference_attack(model, x, y, cfg: TrainConfig, method: str, start: torch.Tensor | None = None):
    model.eval()
    if start is not None:   # a given random start (the tests pass the one energy_lib drew)
        x_adv = x + start
    elif method == "sat":
        x_adv = x + torch.empty_like(x).uniform_(-cfg.eps, cfg.eps)
    else:
        x_adv = x + 0.001 * torch.randn_like(x)
    x_adv = x_adv.clamp(0, 1).detach()
    for _ in range(cfg.attack_steps):
        x_adv.requires_grad_(True)
        if method == "sat":
            loss = F.cross_entropy(model(x_adv), y)
        else:  # TRADES' code recomputes the clean softmax inside every step
            loss = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction="sum")
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + cfg.step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - cfg.eps), x + cfg.eps).clamp(0, 1)
    model.train()
    return x_adv.detach()


def reference_step(model, opt, x, y, cfg: TrainConfig, method: str, start: torch.Tensor | None = None) -> float:
    """One training step as the paper's code writes it (SAT, TRADES or WEAT_adv); `start` fixes
    the attack's random start (default: drawn here, as the paper's code does)."""
    x_adv = _reference_attack(model, x, y, cfg, method, start)
    if method == "sat":
        loss = F.cross_entropy(model(x_adv), y)
    else:
        logits_nat, logits_adv = model(x), model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_nat, 1), reduction="none").sum(1)
        if method == "trades":
            loss = F.cross_entropy(logits_nat, y) + cfg.beta * kl.mean()
        else:
            w = weat_weights(marginal_energy(logits_nat))
            loss = (w * (F.cross_entropy(logits_adv, y, reduction="none") + cfg.beta * kl)).sum() / len(y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def reference_batches(images: data.ImageData, batch_size: int, seed: int, device):
    # one loader worker, as the paper's main.py
    loader = torch.utils.data.DataLoader(_TransformDataset(images), batch_size=batch_size, shuffle=True,
                                         num_workers=1, persistent_workers=True,
                                         generator=torch.Generator().manual_seed(seed))
    while True:
        for xb, yb in loader:
            yield xb.to(device), yb.to(device)


# ---------------------------------------------------------------- energy_lib's path
def fast_step_fn(cfg: TrainConfig, method: str):
    loss_fn = losses.get_loss(method)
    # random starts drawn on the training device, as in train.py (no host copy per step)
    ctx = losses.StepContext(generator=torch.Generator(device=cfg.device).manual_seed(cfg.seed),
                             autocast_dtype=torch.bfloat16 if cfg.precision == "bf16" else None)

    def step(model, opt, x, y):
        out = loss_fn(model, x, y, cfg, ctx)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        return out.loss

    return step


def fast_batches(images: data.ImageData, cfg: TrainConfig, device):
    it = data.BatchIterator(images, cfg.batch_size, device=device, seed=cfg.seed, drop_last=True,
                            channels_last=cfg.channels_last)
    epoch = 0
    while True:
        yield from it.epoch(epoch)
        epoch += 1


# ---------------------------------------------------------------- counting and timing
def macs_per_image(model: torch.nn.Module, resolution: int = 32) -> int:
    """Multiply-accumulates of one forward pass (conv and linear layers), counted with hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            total += output.numel() * module.in_channels // module.groups * int(np.prod(module.kernel_size))
        elif isinstance(module, torch.nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution, device=next(model.parameters()).device))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


def forward_equivalents(method: str, attack_steps: int) -> int:
    """Forward-pass equivalents of the minimal work of one training step, per image."""
    attack = attack_steps * 2                    # forward + input-gradient backward
    if method == "sat":
        return attack + 3                        # adversarial forward + full backward
    return 1 + attack + 2 * 3                    # clean softmax once, then clean and adversarial passes


# Forward-equivalents per image of AutoAttack standard on a robust model (an estimate: APGD-CE
# 100 iterations x 2 on every image; then, on the ~half still robust, APGD-T 9 x 100 x 2, FAB-T
# 9 x 100 x ~3 and Square's 5000 queries x 1).
AA_FORWARD_EQUIVALENTS = 5000


def paper_sweep_work(datasets, methods) -> dict:
    """Forward-pass equivalents (32x32-image units) of the paper sweep (PAPER.md 3.3, 3.4): for each
    (dataset, method), 100 epochs of training on the training split less the validation images, the
    per-epoch tracking (training attack on n_train_track, PGD-`track_attack_steps` on the test and
    validation subsets), then PGD-20 and AutoAttack standard on the whole test set. A 64x64 dataset
    counts (64/32)^2 per image."""
    from .config import TrainConfig, WeatDerConfig

    sweep = WeatDerConfig.from_profile("paper")
    total, per_run = 0.0, {}
    for dataset in datasets:
        info = data.dataset_info(dataset)
        scale = (info.resolution / 32) ** 2
        for method in methods:
            cfg = TrainConfig.from_profile("paper", overrides={"method": method, "dataset": dataset})
            n_train = info.train_size - cfg.n_val if cfg.n_train is None else cfg.n_train
            train = cfg.epochs * n_train * forward_equivalents(method, cfg.attack_steps)
            track = cfg.epochs * (cfg.n_train_track * (2 * cfg.attack_steps + 2)
                                  + (cfg.n_test_track + cfg.n_val) * (2 * cfg.track_attack_steps + 2))
            n_eval = info.test_size if sweep.n_eval is None else sweep.n_eval
            evaluate = n_eval * ((2 * sweep.eval_pgd_steps + 2) + AA_FORWARD_EQUIVALENTS)
            per_run[f"{dataset}/{method}"] = (train + track + evaluate) * scale
            total += per_run[f"{dataset}/{method}"]
    return {"forward_equivalents": total, "runs": len(per_run), "per_run_forward_equivalents": per_run}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, batches, n_warmup: int, n_steps: int, device) -> float:
    """Seconds per step after warm-up (CUDA events on a GPU, perf_counter otherwise)."""
    for _ in range(n_warmup):
        step(*next(batches))
    _sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n_steps):
            step(*next(batches))
        end.record()
        _sync(device)
        return start.elapsed_time(end) / 1000 / n_steps
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step(*next(batches))
    return (time.perf_counter() - t0) / n_steps


def hardware(device: torch.device) -> dict:
    """The machine (`provenance.machine`, its keys), the numerics flags in force, and the code's git
    state (`provenance.git_state`). Older records name some machine keys otherwise: read them through
    `provenance.machine_view`."""
    return {**machine(device),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "git": git_state()}


def _peak(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    if precision == "fp32" and torch.backends.cudnn.allow_tf32:
        precision = "tf32"
    name = torch.cuda.get_device_name(device)
    return next((p[precision] for key, p in PEAK_TFLOPS if key in name), None)


def run_bench(bench: BenchConfig, progress: bool = True) -> dict:
    """Measure every (method, path) of `bench`; returns the record (also what `save_record` writes)."""
    device = torch.device(bench.device)
    images = data.fixed_subset(data.load_dataset("cifar10", "train", n=max(bench.n_images, 1000)), bench.n_images)
    base = TrainConfig(model=bench.model, batch_size=bench.batch_size, attack_steps=bench.attack_steps,
                       seed=bench.seed, device=bench.device)
    variants = [("reference", {})] + [(f, {f: True} if f != "bf16" else {"precision": "bf16"}) for f in bench.flags]
    if len(bench.flags) > 1:
        all_flags = {k: v for _, d in variants[1:] for k, v in d.items()}
        variants.append(("+".join(bench.flags), all_flags))
    variants.insert(1, ("energy_lib fp32", {}))
    macs = macs_per_image(models.build_model(bench.model).to(device))
    rows = []
    for method in bench.methods:
        for label, flags in variants:
            cfg = replace(base, **{k: v for k, v in flags.items() if k != "compile"})
            torch.manual_seed(bench.seed)
            model = models.build_model(bench.model).to(device)
            if cfg.channels_last:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            if label == "reference":
                batches = reference_batches(images, bench.batch_size, bench.seed, device)
                step = lambda x, y, m=model, o=opt: reference_step(m, o, x, y, cfg, method)
            else:
                train_model = torch.compile(model) if flags.get("compile") else model
                fn = fast_step_fn(cfg, method)
                batches = fast_batches(images, cfg, device)
                step = lambda x, y, m=train_model, o=opt, f=fn: f(m, o, x, y)
            seconds = time_steps(step, batches, bench.warmup, bench.steps, device)
            ips = bench.batch_size / seconds
            tflops = ips * macs * 2 * forward_equivalents(method, bench.attack_steps) / 1e12
            peak = _peak(device, "bf16" if flags.get("precision") == "bf16" else "fp32")
            rows.append({"method": method, "path": label, "flags": flags, "images_per_s": ips,
                         "tflops": tflops, "fraction_of_peak": tflops / peak if peak else None})
            if progress:
                print(f"{method:9s} {label:28s} {ips:9.1f} img/s")
    for row in rows:
        ref = next(r for r in rows if r["method"] == row["method"] and r["path"] == "reference")
        row["ratio_to_reference"] = row["images_per_s"] / ref["images_per_s"]
    return {"config": {**vars(bench), "methods": list(bench.methods), "flags": list(bench.flags)},
            "macs_per_image": macs, "hardware": hardware(device),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}


def save_record(record: dict, out_dir: Path | None = None) -> Path:
    out_dir = Path(out_dir) if out_dir is not None else runs_root() / "bench"
    fileio.make_dir(out_dir)
    hw = (record["hardware"].get("gpu") or "cpu").replace(" ", "_")
    path = out_dir / f"bench-{record['config']['model']}-{hw}-{record['measured_at'].replace(':', '')}.json"
    fileio.atomic_write_text(path, json.dumps(record, indent=2))
    return path


def load_records(directory: Path | None = None) -> list[dict]:
    """Every bench record, oldest measurement first."""
    directory = Path(directory) if directory is not None else runs_root() / "bench"
    records = []
    for path in directory.glob("bench-*.json"):
        try:
            records.append(fileio.read_json(path, fix="delete it or measure again (`make bench`)"))
        except fileio.StoreError as err:   # one bad record does not hide the others
            warnings.warn(f"skipped: {err}", stacklevel=2)
    return sorted(records, key=lambda r: r["measured_at"])


def load_gpu_checks(*directories: Path) -> list[dict]:
    """Every `make gpu-check` record (tools/gpu_check.py) in `directories` (default: the run store's
    bench/ and the repository's runs/bench/), oldest first, without the CPU-sized --tiny ones."""
    dirs = directories or (runs_root() / "bench", Path(__file__).resolve().parent.parent / "runs" / "bench")
    found = {}
    for d in dirs:
        for path in Path(d).glob("gpu-check-*.json"):
            found.setdefault(path.name, json.loads(path.read_text()))
    return sorted((r for r in found.values() if not r.get("tiny")), key=lambda r: r["measured_at"])


def table(records: list[dict]):
    """One row per (record, method, path): the figures the appendix shows."""
    import pandas as pd

    rows = [{"hardware": machine_label(r["hardware"]),
             "model": r["config"]["model"], "batch": r["config"]["batch_size"], **{k: row[k] for k in (
                 "method", "path", "images_per_s", "ratio_to_reference", "fraction_of_peak")}}
            for r in records for row in r["rows"]]
    return pd.DataFrame(rows)


def print_table(record: dict) -> None:
    print(table([record]).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(prog="python -m energy_lib.bench", description=__doc__.split("\n")[0])
    defaults = BenchConfig()
    p.add_argument("--model", default=defaults.model)
    p.add_argument("--methods", default=",".join(defaults.methods), help=f"comma list of {METHODS}")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--warmup", type=int, default=defaults.warmup)
    p.add_argument("--attack-steps", type=int, default=defaults.attack_steps)
    p.add_argument("--n-images", type=int, default=defaults.n_images)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--flags", default=None,
                   help="comma list of bf16,channels_last,compile (default: all on a GPU, channels_last on CPU)")
    p.add_argument("--out", type=Path, default=None, help="record folder (default: <runs>/bench)")
    a = p.parse_args(argv)
    flags = a.flags or ("bf16,channels_last,compile" if a.device.startswith("cuda") else "channels_last")
    bench = BenchConfig(model=a.model, methods=tuple(a.methods.split(",")), batch_size=a.batch_size,
                        steps=a.steps, warmup=a.warmup, attack_steps=a.attack_steps, n_images=a.n_images,
                        device=a.device, flags=tuple(f for f in flags.split(",") if f))
    record = run_bench(bench)
    path = save_record(record, a.out)
    print_table(record)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
