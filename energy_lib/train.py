"""The one training loop (it knows no method: it calls `losses.get_loss(cfg.method)`) and the
per-epoch energy tracking (PAPER.md 1.3, 2.2, 3.5).

Every epoch, on a fixed training subset and a fixed test subset, in eval mode and float32:
clean / adversarial accuracy and CE, and mean, std and quantiles of E(x), E(x*), E(x,y), E(x*,y),
ΔE(x), ΔE(x,y). The training subset is attacked with the method's own training attack (the
paper's training-set ΔE); the test subset with the test attack (PGD-CE, uniform start,
`track_attack_steps` steps of `track_step_size`, `track_attack_restarts` restarts), and the training
subset once more with that same test attack (`train_pgd_*`: the robust generalisation gap compares
like with like). Robust accuracy counts an image only if it is also classified correctly clean
(`metrics.robust.robust_correct`, the same definition as the evaluation records).
Per-sample energies of the first `n_track_samples` tracked training images are kept per epoch.

Determinism: the batches of epoch e come from `BatchIterator(seed)` (seeded by (seed, e)), the
attack random starts from a generator seeded by (seed, e), and the global torch RNG is re-seeded
per epoch too, so a run resumed after epoch k reproduces an uninterrupted run exactly on CPU.

Model selection ("best"): the highest PGD accuracy on a validation set among the last
`BEST_WINDOW` fraction of epochs (the paper: PGD-20 on a generated validation set, epochs 91-100 of
100, PAPER.md 3.3). The paper's generated images are not available, so `n_val` class-balanced
training images are held out (never trained on) and attacked like the tracked test subset; test
images are never used for selection.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import attacks, bits, data, distributed, models, precision
from .config import BEST_WINDOW, ConfigError, TrainConfig, first_best_epoch, resolve_device  # noqa: F401
from .energy import energy_summary, joint_energy, marginal_energy
from .losses import (ATTACK_DESCRIPTIONS, SINGLE_STEP_WITH_START, StepContext, get_loss, get_training_attack,
                     trades_kl_attack)
from .metrics.robust import robust_correct

DATA_SUBSET_SEED = 0        # the same training images for every method and seed
VAL_SEED = 12345            # which training images are held out for validation
ENERGY_KEYS = ("E_nat", "E_adv", "Ey_nat", "Ey_adv", "dE", "dEy")


class NonFiniteLossError(RuntimeError):
    """The training loss, the weights or a tracked metric became NaN/inf; training stopped and the
    message says which checkpoint (all of whose values are finite) is kept, if any."""


def non_finite_values(model: torch.nn.Module, record: dict) -> list[str]:
    """Names of the non-finite weights/buffers of `model` and values of `record` (empty: all finite)."""
    state = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    finite = torch.stack([torch.isfinite(v).all() for v in state.values()]).cpu().tolist() if state else []
    bad = [f"weight {k}" for k, ok in zip(state, finite) if not ok]
    return bad + [f"metric {k}={v}" for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]


def _stopped(problem: str, run) -> NonFiniteLossError:
    """The error for a non-finite value, saying truthfully what the run directory keeps."""
    kept = run.kept_epoch()
    where = (f"{run.dir / 'last.pt'} keeps epoch {kept} (finite weights and metrics)" if kept else
             f"no checkpoint was saved ({run.dir} holds none)")
    return NonFiniteLossError(f"{problem}; training stopped: {where}. Lower lr, use precision='fp32', "
                              "or check the data")


@dataclass
class TrainingData:
    train: data.ImageData
    val: data.ImageData           # held out of the training split: model selection only
    train_track: data.ImageData
    test_track: data.ImageData


def load_training_data(cfg: TrainConfig) -> TrainingData:
    full = data.load_dataset(cfg.dataset, "train")
    if cfg.n_val >= len(full) or (cfg.n_train is not None and cfg.n_train > len(full) - cfg.n_val):
        raise ConfigError(f"{cfg.dataset} has {len(full)} training images: not enough for n_val={cfg.n_val} "
                          f"held-out images plus n_train={cfg.n_train}; lower one of them")
    rest, val = data.holdout_split(full, cfg.n_val, seed=VAL_SEED)
    train = rest if cfg.n_train is None else data.fixed_subset(rest, cfg.n_train, seed=DATA_SUBSET_SEED)
    train_track = data.fixed_subset(train, cfg.n_train_track, seed=DATA_SUBSET_SEED + 1)
    test_track = data.load_dataset(cfg.dataset, "test", n=cfg.n_test_track)
    return TrainingData(train, val, train_track, test_track)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    """SGD (the paper) or Adam (the CO literature's small CNNs) + the LR schedule, stepped every
    iteration (PAPER.md 3.3)."""
    if cfg.optimizer == "adam":   # Adam's own betas; `momentum` is SGD's
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":   # torch defaults: div 25 (start 0.004), final_div 1e4, cycled SGD momentum
        if cfg.pct_start * total <= 1:   # torch's OneCycleLR divides by zero or misbehaves below that
            raise ConfigError(f"the one-cycle schedule needs more than 1 warm-up step; {cfg.epochs} epochs x "
                              f"{steps_per_epoch} steps x pct_start {cfg.pct_start} gives fewer. Use more epochs, "
                              "a smaller batch_size, or schedule='constant'.")
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=cfg.pct_start,
                                                    cycle_momentum=cfg.optimizer == "sgd")
    elif cfg.schedule == "piecewise":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.5 * total), int(0.75 * total)], gamma=0.1)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def best_epoch(val_acc_adv, epochs: int) -> int | None:
    """The 1-based epoch best.pt holds: the first highest validation PGD accuracy among the
    epochs from `first_best_epoch` on (`val_acc_adv`: one value per completed epoch, in order).
    None while no epoch of the window is complete. `fit` applies the same rule epoch by epoch."""
    values = list(val_acc_adv)[first_best_epoch(epochs):]
    return first_best_epoch(epochs) + 1 + values.index(max(values)) if values else None


def epoch_generator(cfg: TrainConfig, epoch: int, stream: int = 0, rank: int = 0,
                    device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded by (seed, epoch, stream, rank) on `device`. Re-seeded every epoch, so a run
    resumed from last.pt draws what the uninterrupted run drew (no generator state to checkpoint)."""
    # rank 0 (and a single process) keeps the single-process seeds; other ranks get their own.
    # Streams 0..7 of one epoch never meet another epoch's (0 training, 1-4 tracking, 5 the AAE share).
    seed = (cfg.seed * 1_000_003 + epoch) * 8 + stream + rank * 7_919_000_003
    return torch.Generator(device=device).manual_seed(seed)


def tracking_attack_description(cfg: TrainConfig) -> dict:
    """What each tracked split is attacked with (tracking.json); the values are those of the run,
    resolved (`step_size` and `track_step_size` by their rules when not given)."""
    train_attack = ATTACK_DESCRIPTIONS[get_training_attack(cfg.method)].format(**cfg.to_dict())
    test_attack = (f"PGD-CE, uniform start, {cfg.track_attack_steps} steps of {cfg.track_step_size:.6g}, "
                   f"{cfg.track_attack_restarts} restart(s), eps={cfg.eps:.6g}, eval mode, fp32")
    return {
        "train": f"{cfg.method} training attack: {train_attack}, eps={cfg.eps:.6g}, fp32 (tracked in eval mode)",
        "test": test_attack,
        "train_pgd": f"the test attack ({test_attack}) on the tracked training subset: train_pgd_* compares "
                     "like with like against test_*",
        "val": f"the test attack on {cfg.n_val} class-balanced training images held out from training; "
               "selects best.pt",
        "robust": "an image counts as robust only if classified correctly clean and attacked "
                  "(metrics.robust.robust_correct)",
        "values": {"eps": cfg.eps, "train_step_size": cfg.step_size, "attack_steps": cfg.attack_steps,
                   "single_step_mode": cfg.single_step_mode, "fgsm_alpha": cfg.fgsm_alpha,
                   "test_step_size": cfg.track_step_size, "test_attack_steps": cfg.track_attack_steps,
                   "test_attack_restarts": cfg.track_attack_restarts},
    }


@torch.no_grad()
def _energies(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return marginal_energy(logits), joint_energy(logits, y)


def measure(model, x: torch.Tensor, y: torch.Tensor, attack, cfg: TrainConfig, generator: torch.Generator,
            batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Per-sample energies, CE and correctness of natural and attacked images (eval mode, fp32)."""
    ctx = StepContext(generator=generator)
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("E_nat", "E_adv", "Ey_nat", "Ey_adv", "ce_nat",
                                                            "ce_adv", "ok_nat", "ok_adv")}
    with attacks.eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            with torch.no_grad():
                ln = model(xb).float()
            if attack is trades_kl_attack:  # the clean softmax is already here: pass it
                xa = attack(model, xb, yb, cfg, ctx, p_nat=F.softmax(ln, dim=1))
            else:
                xa = attack(model, xb, yb, cfg, ctx)
            with torch.no_grad():
                la = model(xa).float()
            for tag, lg in (("nat", ln), ("adv", la)):
                e, ey = _energies(lg, yb)
                cols[f"E_{tag}"].append(e)
                cols[f"Ey_{tag}"].append(ey)
                cols[f"ce_{tag}"].append(F.cross_entropy(lg, yb, reduction="none"))
            cols["ok_nat"].append((ln.argmax(1) == yb).float())
            cols["ok_adv"].append(robust_correct(ln, la, yb).float())   # robust: also clean-correct
    out = {k: torch.cat(v).cpu() for k, v in cols.items()}
    out["dE"] = out["E_nat"] - out["E_adv"]
    out["dEy"] = out["Ey_nat"] - out["Ey_adv"]
    return out


def pgd_test_attack(model, x, y, cfg, ctx, p_nat=None):
    """PGD-CE, uniform start, `track_attack_steps` steps of `track_step_size` (eval mode, fp32); with
    `track_attack_restarts` > 1, per image the first restart that fools the model (else the last)."""
    x_adv, fooled = None, None
    for restart in range(cfg.track_attack_restarts):
        attempt = attacks.pgd(model, x, y, eps=cfg.eps, step_size=cfg.track_step_size, steps=cfg.track_attack_steps,
                              loss="ce", random_start="uniform", generator=ctx.generator)
        x_adv = attempt if x_adv is None else torch.where(fooled[:, None, None, None], x_adv, attempt)
        if restart + 1 < cfg.track_attack_restarts:
            with torch.no_grad():
                fooled = model(x_adv).argmax(1) != y    # already fooled: later restarts keep that example
            if bool(fooled.all()):
                break
    return x_adv


def abnormal_share(model, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, attack_with_start,
                   generator: torch.Generator, batch_size: int = 256) -> float:
    """The share of abnormal adversarial examples (AAER, Lin et al. 2023): images whose single-step
    x* has a *lower* CE than the attack's starting point. It jumps when catastrophic overfitting
    sets in. Eval mode, fp32."""
    ctx = StepContext(generator=generator)
    abnormal = []
    with attacks.eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            x_adv, ce_start = attack_with_start(model, xb, yb, cfg, ctx)
            with torch.no_grad():
                abnormal.append(ce_start > F.cross_entropy(model(x_adv).float(), yb, reduction="none"))
    return torch.cat(abnormal).float().mean().item()


def track(model, td: TrainingData, cfg: TrainConfig, epoch: int, device) -> tuple[dict, dict]:
    """One epoch's tracking record (flat floats, and the test images' robust correctness packed by
    `bits.pack` as `test_correct_adv`) and the per-sample energies of the tracked samples."""
    record: dict[str, float] = {}
    per_sample: dict[str, list] = {}
    aae_attack = SINGLE_STEP_WITH_START.get(get_training_attack(cfg.method))
    for split, subset, attack, stream in (("train", td.train_track, get_training_attack(cfg.method), 1),
                                          ("test", td.test_track, pgd_test_attack, 2),
                                          ("val", td.val, pgd_test_attack, 3),
                                          ("train_pgd", td.train_track, pgd_test_attack, 4)):
        x, y = subset.tensors(device)
        m = measure(model, x, y, attack, cfg, epoch_generator(cfg, epoch, stream))
        record[f"{split}_acc_nat"] = m["ok_nat"].mean().item()
        record[f"{split}_acc_adv"] = m["ok_adv"].mean().item()
        if split == "test":   # which test images were robust: paired statistics across epochs (verdicts)
            record["test_correct_adv"] = bits.pack(m["ok_adv"].bool().cpu().numpy())
        record[f"{split}_ce_nat"] = m["ce_nat"].mean().item()
        record[f"{split}_ce_adv"] = m["ce_adv"].mean().item()
        if split == "val":   # selection: accuracies and CE are enough
            continue
        if split == "train_pgd":   # the training images under the common test attack: like with like (chapter 3)
            record.update({f"train_pgd_{key}_{stat}": v for key in ("E_adv", "Ey_adv", "dE", "dEy")
                           for stat, v in energy_summary(m[key]).items()})
            per_sample["E_adv_pgd"] = [round(v, 5) for v in m["E_adv"][:cfg.n_track_samples].tolist()]
            per_sample["Ey_adv_pgd"] = [round(v, 5) for v in m["Ey_adv"][:cfg.n_track_samples].tolist()]
            continue
        for key in ENERGY_KEYS:
            record.update({f"{split}_{key}_{stat}": v for stat, v in energy_summary(m[key]).items()})
        if split == "train" and aae_attack is not None:
            record["train_aae_frac"] = abnormal_share(model, x, y, cfg, aae_attack,
                                                      epoch_generator(cfg, epoch, 5))
        if split == "train":
            n = cfg.n_track_samples
            per_sample.update({key: [round(v, 5) for v in m[key][:n].tolist()] for key in ("E_nat", "E_adv", "Ey_nat",
                                                                                           "Ey_adv")})
            per_sample["correct_nat"] = m["ok_nat"][:n].int().tolist()
            per_sample["correct_adv"] = m["ok_adv"][:n].int().tolist()
    return record, per_sample


def within_epoch_steps(n_steps: int, tracks_per_epoch: int) -> list[int]:
    """After how many of an epoch's `n_steps` steps its within-epoch tracking points fall: evenly
    spaced, the end of the epoch excluded (it is the epoch's own row)."""
    return sorted({round(j * n_steps / tracks_per_epoch) for j in range(1, tracks_per_epoch)} - {0, n_steps})


def train_one_epoch(model, train_model, opt, sched, batches: data.BatchIterator, cfg: TrainConfig, epoch: int,
                    progress: bool, run_dir, dist: distributed.Dist | None = None,
                    after_step=None) -> dict[str, float]:
    """One pass over the training batches; returns the epoch's training statistics.

    No host sync per step: attack random starts come from a generator on the training device, the
    attacks skip the pixel-range check (`check=False`), and the per-step figures (loss, batch
    accuracies, extras) stay on the device and are read once, after the last step. A non-finite
    loss is therefore noticed at the end of the epoch (its first step is named); the epoch is not
    saved, so last.pt keeps the last good epoch. `after_step(n)` is called after the n-th step
    (within-epoch tracking); it must leave the weights and the training RNG alone.
    """
    from tqdm.auto import tqdm

    loss_fn = get_loss(cfg.method)
    rank = dist.rank if dist is not None else 0
    device = batches.x.device
    ctx = StepContext(generator=epoch_generator(cfg, epoch, 0, rank, device=device),
                      autocast_dtype=torch.bfloat16 if cfg.precision == "bf16" else None, epoch=epoch)
    model.train()
    rows: list[torch.Tensor] = []       # per step: loss, #correct adv, #correct nat, extras (float64, device)
    sizes: list[int] = []
    extra_keys: tuple[str, ...] | None = None
    has_nat = False
    bar = tqdm(batches.epoch(epoch), total=len(batches), desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
               disable=not progress, leave=False)
    for step, (xb, yb) in enumerate(bar):
        ctx.step = step
        out = loss_fn(train_model, xb, yb, cfg, ctx)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sched.step()
        extra_keys = tuple(out.extras) if extra_keys is None else extra_keys
        has_nat = out.logits_nat is not None
        zero = out.loss.new_zeros(())
        rows.append(torch.stack([
            out.loss.detach(), (out.logits_adv.detach().argmax(1) == yb).sum(),
            (out.logits_nat.detach().argmax(1) == yb).sum() if has_nat else zero,
            *(out.extras[k].detach() for k in extra_keys)]).double())
        sizes.append(yb.shape[0])
        if after_step is not None:
            after_step(step + 1)
    table = torch.stack(rows).cpu()      # the epoch's one read of the device
    step_loss = table[:, 0]
    bad = (~torch.isfinite(step_loss)).nonzero()
    first_bad = int(bad[0, 0]) if len(bad) else None
    # under torchrun every process must stop together, or the others would hang in DDP's all-reduce
    if distributed.any_rank(first_bad is not None, dist):
        where = (f"{float(step_loss[first_bad])} at epoch {epoch + 1}, step {first_bad}" if first_bad is not None
                 else f"non-finite on another process at epoch {epoch + 1}")
        raise NonFiniteLossError(
            f"training loss is {where} ({cfg.method}); training stopped and the last good checkpoint is kept in "
            f"{run_dir} (last.pt = the last completed epoch). Lower lr, use precision='fp32', or check the data.")
    b = torch.tensor(sizes, dtype=torch.float64)
    n_seen = float(b.sum())
    weighted = (table * b[:, None]).sum(0).tolist()
    counts = table[:, 1:3].sum(0).tolist()
    stats = {"loss": weighted[0] / n_seen, "batch_acc_adv": counts[0] / n_seen,
             "batch_acc_nat": counts[1] / n_seen if has_nat else None}
    stats.update({f"batch_{k}": weighted[3 + i] / n_seen for i, k in enumerate(extra_keys or ())})
    if progress:
        bar.set_postfix(loss=f"{stats['loss']:.3f}", adv_acc=f"{stats['batch_acc_adv']:.3f}")
    return stats


def within_tracker(model, td: TrainingData, cfg: TrainConfig, epoch: int, device, n_steps: int, points: list):
    """The `after_step` of `train_one_epoch` that tracks at `within_epoch_steps` and appends each
    point's record to `points`, with `progress` = completed epochs as a fraction (epoch 2's middle:
    1.5); None when the run tracks only at epoch ends. Tracking runs in eval mode with its own
    generators: the training trajectory is the same as without it."""
    at = set(within_epoch_steps(n_steps, cfg.tracks_per_epoch))
    if not at:
        return None

    def after_step(done: int) -> None:
        if done in at:
            t0 = time.perf_counter()
            record, _ = track(model, td, cfg, epoch, device)
            points.append({"progress": round(epoch + done / n_steps, 4), **record, "time_s": time.perf_counter() - t0})
    return after_step


def fit(cfg: TrainConfig, run, progress: bool = True, stop_after: int | None = None,
        should_stop=None) -> None:
    """Train `cfg` into the run store entry `run` (a runs.Run), resuming from its last.pt if present.

    stop_after: train at most this many epochs in this call, then return without marking the run
    done (for time-limited jobs; the next call resumes). should_stop: a callable asked before each
    epoch; True returns the same way (`book_runs` stops its other runs when one fails). Under
    torchrun the processes share every batch (`distributed.py`); rank 0 alone tracks and writes.
    """
    get_loss(cfg.method)   # fail on an unknown method before loading anything
    dist = distributed.setup(cfg.device)
    device = dist.device
    if device.type == "cuda":   # fixed input shapes: let cuDNN pick the fastest kernels (recorded in env.json)
        torch.backends.cudnn.benchmark = True
    precision.set_tf32(cfg.precision == "tf32")   # fp32 means fp32: no TF32 convolutions (torch's default)
    progress = progress and dist.is_main
    td = load_training_data(cfg)   # before the run directory exists: a config that cannot run leaves nothing
    num_classes = data.dataset_info(cfg.dataset).num_classes
    torch.manual_seed(cfg.seed)
    model = models.build_model(cfg.model, num_classes).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = data.BatchIterator(td.train, cfg.batch_size, shuffle=True, augment=True, device=device,
                                 seed=cfg.seed, channels_last=cfg.channels_last, rank=dist.rank,
                                 world_size=dist.world_size)
    opt, sched = make_optimizer(model, cfg, len(batches))
    run.open()   # lock the directory, write or check config.json
    state = run.restore(model, opt, sched)   # {} for a fresh run
    start = state.get("epoch", 0)
    metrics, samples = state.get("metrics", []), state.get("samples", [])
    best = state.get("best", {"metric": -1.0, "epoch": None})
    train_model = distributed.wrap(model, dist)
    train_model = torch.compile(train_model) if cfg.compile else train_model  # checkpoints save the plain module
    if dist.is_main:
        run.write_env(device, resumed_from=start, n_train=len(td.train), world_size=dist.world_size,
                      energy_error=precision.recorded_error(cfg.precision, device))
    first_best = first_best_epoch(cfg.epochs)
    description = tracking_attack_description(cfg)
    if start and dist.is_main:   # a crash may have come between last.pt and the logs: rewrite them
        run.write_logs(metrics, samples, description)
    from tqdm.auto import tqdm

    epochs = tqdm(range(start, cfg.epochs), desc=f"{cfg.method}", disable=not progress, initial=start,
                  total=cfg.epochs)
    try:
        for epoch in epochs:
            if (stop_after is not None and epoch - start >= stop_after) or (should_stop is not None and should_stop()):
                return   # resumable: last.pt holds the last completed epoch
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # any global-RNG use is per-epoch reproducible
            distributed.sync_buffers(model, dist)
            t0 = time.perf_counter()
            within: list[dict] = []   # the epoch's within-epoch tracking points (tracks_per_epoch > 1)
            try:
                stats = train_one_epoch(model, train_model, opt, sched, batches, cfg, epoch, progress, run.dir, dist,
                                        after_step=within_tracker(model, td, cfg, epoch, device, len(batches),
                                                                  within) if dist.is_main else None)
            except NonFiniteLossError as err:   # say truthfully what is kept (the loop's message cannot know)
                raise _stopped(str(err).split("; training stopped")[0], run) from None
            stats = distributed.mean_over_ranks(stats, dist)
            t_within = sum(point.pop("time_s") for point in within)
            t_train = time.perf_counter() - t0 - t_within
            if not dist.is_main:
                if distributed.any_rank(False, dist):   # rank 0 found a non-finite value
                    raise NonFiniteLossError(f"a non-finite value at epoch {epoch + 1}: see rank 0's error")
                distributed.barrier(dist)   # rank 0 tracks and saves this epoch meanwhile
                continue
            record, per_sample = track(model, td, cfg, epoch, device)
            rec = {"epoch": epoch + 1, "lr": sched.get_last_lr()[0], **stats, **record,
                   "time_train_s": t_train, "time_track_s": time.perf_counter() - t0 - t_train,
                   "images_per_s": len(td.train) / t_train}
            if within:
                rec["within_epoch"] = within
            # a checkpoint is good only if its weights and tracked metrics are finite: check before saving
            bad = non_finite_values(model, rec) + [v for point in within for v in non_finite_values(model, point)
                                                   if v.startswith("metric")]
            if distributed.any_rank(bool(bad), dist):
                raise _stopped(f"non-finite values after epoch {epoch + 1} ({cfg.method}): "
                               f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} ({len(bad)} in all)", run)
            metrics.append(rec)
            samples.append({"epoch": epoch + 1, **per_sample})
            if epoch >= first_best and rec["val_acc_adv"] > best["metric"]:
                best = {"metric": rec["val_acc_adv"], "epoch": epoch + 1}
                run.save_checkpoint("best.pt", model, opt, sched, epoch + 1, best, metrics, samples)
            run.save_checkpoint("last.pt", model, opt, sched, epoch + 1, best, metrics, samples)
            run.write_logs(metrics, samples, description)
            distributed.barrier(dist)
            if progress:
                epochs.set_postfix(test_pgd_acc=f"{rec['test_acc_adv']:.3f}", train_dE=f"{rec['train_dE_mean']:.3f}")
    except KeyboardInterrupt:
        kept = run.kept_epoch()   # what last.pt really holds (a save may have been cut short)
        print(f"interrupted: {run.dir} keeps the checkpoint of epoch {kept}; call train_or_load(cfg) again to "
              "resume." if kept else f"interrupted: no epoch was completed ({run.dir} holds no checkpoint); call "
              "train_or_load(cfg) again to start.")
        raise
    if dist.is_main:
        run.mark_done()
    distributed.barrier(dist)

