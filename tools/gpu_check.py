"""GPU preflight before `make paper`: can this machine run the paper's protocol, and how long will it take?

    make gpu-check                          # on the GPU machine (about 8 minutes on one H100/H200)
    python tools/gpu_check.py --tiny        # the same sections, CPU-sized (what the tests run)
    python tools/gpu_check.py --make-data DIR   # write a small CIFAR-10 copy in ENERGY_DATA's layout

Sections (each is timed; a failing section is recorded with its error and the others still run):
1. environment: GPU, driver, torch, CUDA, cuDNN, bf16 support, TF32 flags;
2. chapters: every chapter's code path for a few steps: each method family trained for 2 short
   epochs of the paper model on a data subset (`runs.train_or_load`, a temporary run store), PGD-20
   and AutoAttack on 64 test images, SGLD sampling and Inception features on a few images, and a
   2-process DDP step (torchrun; when 2 GPUs exist, or with --tiny on CPU through gloo);
3. bench: `energy_lib.bench`: the paper-style reference loop against energy_lib, each speed flag
   alone and all together, ResNet-18 at batch 512 and WRN-34-10, with the fraction of the GPU's peak;
4. precision: bf16 and TF32 against fp32: energy errors and accuracies (`energy_lib.precision`) on
   the standard ResNet-18 and 64 real test images;
5. prediction: the wall time of `make paper`, from the measured throughput and the sweep's work.

One JSON record goes to `<runs>/bench/gpu-check-<hardware>-<time>.json`; the book's Performance
appendix shows it. Data: CIFAR-10 is read through `energy_lib.data` ($ENERGY_DATA). A GPU machine
without the full dataset needs only a small copy (`--make-data DIR` writes 8,000 training and 1,000
test images, about 30 MB; then `ENERGY_DATA=DIR make gpu-check`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from energy_lib import bench, data, fileio, precision  # noqa: E402
from energy_lib.config import runs_root  # noqa: E402

SECTIONS = ("environment", "chapters", "bench", "precision", "prediction")
# One representative of each training-method family (PAPER.md 2.6, 2.6b, 2.7)
METHOD_FAMILIES = {"pgd_ce": "sat", "trades_kl": "trades", "energy_weighted": "weat_adv", "mart": "mart",
                   "der_multi_step": "sat_der", "single_step_der": "fgsm_rs_der"}
PAPER_DATASETS = ("cifar10", "cifar100", "svhn", "tiny-imagenet")


def sizes(tiny: bool) -> dict:
    """Everything the check does, in one place: GPU-sized, or CPU-sized with --tiny."""
    if tiny:
        return dict(model="small_cnn", n_train=64, n_val=16, train_batch=16, attack_steps=2, n_eval=16,
                    eval_pgd_steps=2, aa_iters=2, aa_targets=2, aa_queries=10, n_sgld=4, sgld_steps=2,
                    bench=[dict(model="small_cnn", methods=("sat",), batch_size=8, steps=1, warmup=1,
                                attack_steps=1, n_images=32, flags=("channels_last",))],
                    n_precision=8, precision_steps=1, wall_limit_s=None)
    return dict(model="resnet18", n_train=2048, n_val=256, train_batch=128, attack_steps=10, n_eval=64,
                eval_pgd_steps=20, aa_iters=100, aa_targets=9, aa_queries=5000, n_sgld=20, sgld_steps=20,
                bench=[dict(model="resnet18", methods=("sat", "weat_adv"), batch_size=512, steps=5, warmup=2,
                            attack_steps=10, n_images=4096, flags=("bf16", "channels_last", "compile")),
                       dict(model="wrn34_10", methods=("weat_adv",), batch_size=128, steps=3, warmup=1,
                            attack_steps=10, n_images=1024, flags=("bf16", "channels_last"))],
                n_precision=64, precision_steps=10, wall_limit_s=8 * 60)


# ---------------------------------------------------------------- sections
def environment(device: torch.device) -> dict:
    env = bench.hardware(device)
    env.update(platform=platform.platform(), cudnn=torch.backends.cudnn.version(),
               bf16_supported=torch.cuda.is_bf16_supported() if device.type == "cuda" else True,
               gpu_count=torch.cuda.device_count())
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}")
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = None
    return env


def chapters(device: torch.device, s: dict, store: Path) -> dict:
    """Every chapter's code path for a few steps; returns {step: {ok, seconds, ...}}."""
    from energy_lib import generate, models
    from energy_lib.config import TrainConfig
    from energy_lib.metrics import robust
    from energy_lib.runs import train_or_load

    out = {}
    os.environ["ENERGY_RUNS"] = str(store)   # a temporary run store: nothing is left in runs/
    trained = {}
    for family, method in METHOD_FAMILIES.items():
        def train_family(method=method):
            cfg = TrainConfig.from_profile("paper", overrides=dict(
                method=method, model=s["model"], n_train=s["n_train"], n_val=s["n_val"], epochs=2,
                batch_size=s["train_batch"], attack_steps=s["attack_steps"], track_attack_steps=s["attack_steps"],
                n_train_track=s["n_val"], n_test_track=s["n_val"], n_track_samples=s["n_val"] // 2,
                schedule="constant", device=str(device)))
            run = train_or_load(cfg, progress=False)
            trained[method] = run
            last = run.metrics.iloc[-1]
            return {"images_per_s": float(last["images_per_s"]), "train_dE_mean": float(last["train_dE_mean"]),
                    "test_acc_adv": float(last["test_acc_adv"]), "precision": cfg.precision}
        out[f"train_{method}"] = timed(train_family)

    def evaluate():
        run = trained.get("trades") or next(iter(trained.values()))
        settings = robust.RobustEvalSettings(pgd_steps=s["eval_pgd_steps"], aa_iters=s["aa_iters"],
                                             aa_target_classes=s["aa_targets"], aa_queries=s["aa_queries"])
        rec = robust.evaluate_run(run, settings, n_images=s["n_eval"], device=str(device), progress=False)
        return {"accuracy": rec["accuracy"], "n_images": s["n_eval"], "attack_seconds": rec.get("seconds")}
    out["pgd20_autoattack"] = timed(evaluate)

    def sgld():
        model = models.pretrained_standard_resnet18(device)
        x, y = data.load_dataset("cifar10", "test", n=s["n_sgld"]).tensors(device)
        g = torch.Generator().manual_seed(0)
        res = generate.sgld_sample(model, torch.rand_like(x), y, steps=s["sgld_steps"], generator=g, progress=False)
        samples = res.x if hasattr(res, "x") else res.samples
        return {"n": int(samples.shape[0]), "finite": bool(torch.isfinite(samples).all())}
    out["sgld"] = timed(sgld)

    def features():
        from energy_lib.metrics import fidelity

        weights = fidelity.resolve_inception_weights(download=False)
        x, _ = data.load_dataset("cifar10", "test", n=4).tensors()
        feats = fidelity.extract_features(x, weights, device=device)
        return {"weights": weights.source, "shapes": {k: list(v.shape) for k, v in feats.items()}}
    out["fidelity_features"] = timed(features, skip_on=("InceptionWeightsNotFoundError",))

    def ddp():
        n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        if device.type == "cuda" and n_gpus < 2:
            return {"skipped": f"{n_gpus} GPU: the 2-process DDP step needs 2"}
        env = {**os.environ, "ENERGY_RUNS": str(store / "ddp"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", __file__, "--ddp-worker",
               "train", "--profile", "smoke", "--method", "trades", "--epochs", "1", "--schedule", "constant",
               "--no-progress", "--device", "cuda" if device.type == "cuda" else "cpu"]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        if result.returncode != 0:
            raise RuntimeError("torchrun failed: " + (result.stderr or result.stdout)[-2000:])
        return {"processes": 2, "backend": "nccl" if device.type == "cuda" else "gloo"}
    out["ddp_2_process"] = timed(ddp)
    return out


def run_benches(device: torch.device, s: dict) -> list[dict]:
    records = []
    for b in s["bench"]:
        cfg = bench.BenchConfig(device=str(device), **b)
        records.append(bench.run_bench(cfg, progress=False))
    return records


def precision_check(device: torch.device, s: dict) -> dict:
    modes = ("tf32", "bf16") if device.type == "cuda" else ("bf16",)
    rec = precision.standard_model_measurement(str(device), modes, s["n_precision"], s["precision_steps"])
    return {"results": rec["results"], "n_images": rec["n_images"], "steps": s["precision_steps"],
            "budget_dE_abs_err_mean": precision.DE_ERROR_BUDGET,
            "within_budget": {m: r["dE_abs_err_mean"] <= precision.DE_ERROR_BUDGET for m, r in rec["results"].items()}}


def prediction(bench_records: list[dict], device: torch.device) -> dict:
    """Hours of `make paper` on this machine (one GPU, runs one after another) from the measured
    throughput of the paper profile's path (fp32 + channels_last, energy_lib) at ResNet-18."""
    from energy_lib.config import TrainConfig, WeatDerConfig

    paper = TrainConfig.from_profile("paper")
    # the paper model's bench; with --tiny only the small model is measured, so the (meaningless on a
    # CPU, but computed the same way) prediction names the model it used
    measured = [rec for rec in bench_records if rec["config"]["model"] == paper.model] or bench_records[:1]
    if not measured:
        raise RuntimeError("no bench record to predict from (the bench section failed)")
    path = "channels_last" if paper.channels_last else "energy_lib fp32"
    fe_per_s = {r["method"]: r["images_per_s"] * bench.forward_equivalents(r["method"], measured[0]["config"][
        "attack_steps"]) for r in measured[0]["rows"] if r["path"] == path}
    if not fe_per_s:
        raise RuntimeError(f"the bench has no row of the paper profile's path ({path})")
    rate = min(fe_per_s.values())   # the slower family: a conservative rate in forward-equivalents/s
    sweep = WeatDerConfig.from_profile("paper")
    work = bench.paper_sweep_work(PAPER_DATASETS, sweep.methods)
    hours = work["forward_equivalents"] / rate / 3600
    return {"forward_equivalents_per_s": rate, "by_method_forward_equivalents_per_s": fe_per_s, **work,
            "predicted_hours_one_gpu": hours, "path": path, "model": measured[0]["config"]["model"],
            "note": "AutoAttack cost is an estimate (bench.AA_FORWARD_EQUIVALENTS per image); "
                    "evaluation and tracking run in fp32 at the same rate"}


# ---------------------------------------------------------------- plumbing
def train_on_available_images() -> None:
    """For the check only: a training split asked for whole (n=None) is the images ENERGY_DATA holds.

    The training loop loads the whole split and holds out its validation images; a `--make-data`
    copy holds 8,000 of the 50,000 (the check's subsets need no more), which the library rightly
    never passes off as the whole split. The check's runs live in a temporary run store."""
    if getattr(data.load_dataset, "check_patch", False):
        return
    real = data.load_dataset

    def load_dataset(name, split="train", n=None, **kwargs):
        if split == "train" and n is None:
            found = data._offline_count(name, split)
            n = found[1] if found is not None else None
        return real(name, split, n, **kwargs)

    load_dataset.check_patch = True
    data.load_dataset = load_dataset


def ddp_worker(argv: list[str]) -> int:
    """Entry point of the DDP step's processes (torchrun runs this script with --ddp-worker)."""
    from energy_lib.__main__ import main as cli

    train_on_available_images()
    return cli(argv) or 0


def timed(fn, skip_on: tuple[str, ...] = ()) -> dict:
    t0 = time.perf_counter()
    try:
        result = fn()
        status = "skipped" if isinstance(result, dict) and "skipped" in result else "ok"
        return {**(result if isinstance(result, dict) else {"result": result}), "status": status,
                "seconds": time.perf_counter() - t0}
    except Exception as err:   # recorded, and the other sections still run
        status = "skipped" if type(err).__name__ in skip_on else "failed"
        return {"status": status, "seconds": time.perf_counter() - t0,
                "error": f"{type(err).__name__}: {err}"[:2000],
                "traceback": traceback.format_exc()[-4000:] if status == "failed" else None}


def verdict(record: dict) -> dict:
    """Can this machine do `make paper`, and in how long?"""
    failed = [name for name, sec in record["sections"].items() if sec["status"] == "failed"]
    failed += [f"chapters.{k}" for k, v in record["sections"].get("chapters", {}).get("steps", {}).items()
               if v["status"] == "failed"]
    hours = record["sections"].get("prediction", {}).get("predicted_hours_one_gpu")
    on_gpu = record["device"].startswith("cuda")
    ready = on_gpu and not failed
    if not on_gpu:
        text = "no GPU: this record checks the code paths only (the paper profile needs a GPU)"
    elif failed:
        text = f"not ready: {', '.join(failed)} failed (see the record's errors)"
    else:
        text = f"ready: every section ran; make paper predicted at {hours:.1f} h on one GPU" if hours else "ready"
    return {"ready_for_make_paper": ready, "failed": failed, "predicted_hours_one_gpu": hours, "text": text}


def make_data(directory: Path, n_train: int = 8000, n_test: int = 1000) -> Path:
    """A small CIFAR-10 copy in ENERGY_DATA's layout (HWC uint8 npz): enough for the check."""
    import numpy as np

    train = data.fixed_subset(data.load_dataset("cifar10", "train"), n_train)
    test = data.load_dataset("cifar10", "test", n=n_test)
    out = Path(directory) / "cifar10"
    out.mkdir(parents=True, exist_ok=True)
    sums = []
    for split, images, name in (("train", train, "train.npz"), ("test", test, "test_first1017.npz")):
        np.savez_compressed(out / name, x=images.x.permute(0, 2, 3, 1).numpy(), y=images.y.numpy())
        sums.append(f"{fileio.file_digest(out / name)}  cifar10/{name}\n")
    (Path(directory) / data.SUMS_FILE).write_text("".join(sums))   # the copy is checked as the shipped one is
    return Path(directory)


def run_check(device: str = "auto", tiny: bool = False, out_dir: Path | None = None, progress: bool = True) -> Path:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    s = sizes(tiny)
    record = {"kind": "gpu-check", "tiny": tiny, "device": str(dev), "sizes": {k: v for k, v in s.items()},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": {}}
    t_start = time.perf_counter()
    saved_runs = os.environ.get("ENERGY_RUNS")
    out_dir = Path(out_dir) if out_dir is not None else runs_root() / "bench"

    def say(msg):
        if progress:
            print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    benches: list[dict] = []
    real_load = data.load_dataset
    train_on_available_images()   # undone below
    with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as store:
        say("environment")
        record["sections"]["environment"] = timed(lambda: environment(dev))
        say("chapters: training each method family, PGD-20 + AutoAttack, SGLD, features, DDP")
        try:
            steps = chapters(dev, s, Path(store))
        finally:
            data.load_dataset = real_load
            if saved_runs is None:
                os.environ.pop("ENERGY_RUNS", None)
            else:
                os.environ["ENERGY_RUNS"] = saved_runs
        bad = [k for k, v in steps.items() if v["status"] == "failed"]
        record["sections"]["chapters"] = {"status": "failed" if bad else "ok", "steps": steps,
                                          "seconds": sum(v["seconds"] for v in steps.values())}
    say("bench: reference loop vs energy_lib, each flag and all together")

    def do_bench():
        # the paper profile's numerics (true fp32: TF32 off), whatever the sections before left set
        precision.set_tf32(False)
        benches.extend(run_benches(dev, s))
        return {"records": benches}
    record["sections"]["bench"] = timed(do_bench)
    say("precision: tf32 / bf16 against fp32")
    record["sections"]["precision"] = timed(lambda: precision_check(dev, s))
    say("prediction of make paper")
    record["sections"]["prediction"] = timed(lambda: prediction(benches, dev))
    record["seconds"] = time.perf_counter() - t_start
    record["wall_limit_s"] = s["wall_limit_s"]
    record["within_wall_limit"] = None if s["wall_limit_s"] is None else record["seconds"] <= s["wall_limit_s"]
    record["verdict"] = verdict(record)
    out_dir.mkdir(parents=True, exist_ok=True)
    hw = record["sections"]["environment"].get("gpu") or "cpu"
    path = out_dir / f"gpu-check-{hw.replace(' ', '_')}-{record['measured_at'].replace(':', '')}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    tmp.replace(path)
    say(record["verdict"]["text"])
    say(f"record: {path}")
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--ddp-worker"]:
        return ddp_worker(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="CPU-sized sizes (what the tests run)")
    p.add_argument("--out", type=Path, default=None, help="record folder (default: <runs>/bench)")
    p.add_argument("--make-data", type=Path, default=None, metavar="DIR",
                   help="write a small CIFAR-10 copy (ENERGY_DATA layout) to DIR and exit")
    a = p.parse_args(argv)
    if a.make_data is not None:
        try:
            out = make_data(a.make_data)
        except data.DataNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {out}; use it with ENERGY_DATA={out} make gpu-check")
        return 0
    if a.device != "auto" and a.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available; use --tiny --device cpu to check the code paths",
              file=sys.stderr)
        return 2
    run_check(a.device, a.tiny, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
