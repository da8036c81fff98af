"""The paper's sweep as cluster jobs: one submitit job per (dataset, method) (PAPER.md 3.3, 3.4).

A `SweepJob` trains its run (resuming from last.pt), evaluates the selected checkpoint with PGD-20
and AutoAttack (resuming from the evaluation's record and state file) and publishes the complete
record to `<runs>/published/`. It is checkpointable in submitit's sense: on a preemption or a
time-out, submitit calls `checkpoint`, which resubmits the same job; the new attempt resumes from
last.pt, so a requeued job ends with the result of an uninterrupted one.

Multi-GPU jobs use submitit's tasks (one process per GPU): each task exports the torch.distributed
variables torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and the training loop
joins the process group (`distributed.py`); rank 0 alone evaluates and publishes.

`tools/paper_sweep.py --launcher slurm|local` submits the jobs and shows their states.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import WeatDerConfig, runs_root

LAUNCHERS = ("inline", "local", "slurm")


@dataclass(frozen=True)
class SweepJob:
    """Train + evaluate + publish one (dataset, method) of the sweep."""

    dataset: str
    method: str
    profile: str = "paper"
    device: str = "auto"
    overrides: dict = field(default_factory=dict)   # further WeatDerConfig values (e.g. epochs)

    def config(self) -> WeatDerConfig:
        return WeatDerConfig.from_profile(self.profile, overrides={
            "dataset": self.dataset, "methods": (self.method,), "device": self.device, **self.overrides})

    def train_config(self):
        return self.config().train_config(self.method, self.profile)

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.method}"

    def __call__(self) -> dict | None:
        from .metrics import robust
        from .runs import train_or_load

        rank = _export_distributed_env()
        cfg = self.config()
        run = train_or_load(self.train_config(), progress=False)
        if rank != 0:
            return None
        rec = robust.evaluate_run(run, cfg.eval_settings(), n_images=cfg.n_eval, device=self.device, progress=False)
        robust.publish(rec)
        return rec

    def checkpoint(self, *args, **kwargs):
        """submitit's hook on preemption / time-out: requeue this very job (it resumes from last.pt)."""
        import submitit

        return submitit.helpers.DelayedSubmission(SweepJob(self.dataset, self.method, self.profile, self.device,
                                                           dict(self.overrides)))


def _export_distributed_env() -> int:
    """Inside a multi-task submitit job, set the variables torchrun would; returns this task's rank."""
    if int(os.environ.get("SUBMITIT_LOCAL_NTASKS", os.environ.get("SLURM_NTASKS", "1"))) <= 1:
        return 0
    import submitit

    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.rank


def plan(datasets, methods, profile: str, device: str = "auto", overrides: dict | None = None) -> list[SweepJob]:
    return [SweepJob(d, m, profile, device, dict(overrides or {})) for d in datasets for m in methods]


def executor(launcher: str, folder: Path, *, partition: str | None = None, gpus: int = 1, cpus_per_gpu: int = 8,
             timeout_min: int = 24 * 60, max_requeues: int = 20, mem_gb: int | None = None,
             signal_delay_s: int = 120):
    """A submitit executor: `slurm` (a cluster) or `local` (processes on this machine, same code path).

    gpus: GPUs per job (one task per GPU); 0 = a CPU job. signal_delay_s (slurm): how long before
    the time limit the job is told to checkpoint (it requeues itself; last.pt is at most one epoch
    old); the local executor signals 30 s before.
    """
    import submitit

    if launcher not in ("local", "slurm"):
        raise ValueError(f"launcher {launcher!r}: choose local or slurm")
    kwargs = {f"{launcher}_max_num_timeout": max_requeues}
    ex = submitit.AutoExecutor(folder=folder, cluster=launcher, **kwargs)
    params = dict(timeout_min=timeout_min, tasks_per_node=max(gpus, 1), nodes=1,
                  cpus_per_task=cpus_per_gpu)
    if gpus:
        params["gpus_per_node"] = gpus
    if launcher == "slurm":
        params.update(slurm_signal_delay_s=signal_delay_s, slurm_additional_parameters={"requeue": True})
        if partition:
            params["slurm_partition"] = partition
        if mem_gb:
            params["mem_gb"] = mem_gb
    ex.update_parameters(name="energy-sweep", **params)
    return ex


def jobs_file(profile: str) -> Path:
    return runs_root() / "sweep_jobs" / f"{profile}.json"


def save_job_ids(path: Path, ids: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ids, indent=2) + "\n")
    tmp.replace(path)


def progress_of(job: SweepJob) -> str:
    """'<epochs done>/<epochs>' of the job's run, read from its run directory (no job system needed)."""
    from .runs import run_dir

    tcfg = job.train_config()
    d = run_dir(tcfg.canonical())
    if (d / "DONE").is_file():
        return f"{tcfg.epochs}/{tcfg.epochs}"
    metrics = d / "metrics.jsonl"
    n = sum(1 for _ in metrics.open()) if metrics.is_file() else 0
    return f"{n}/{tcfg.epochs}"


def status_table(jobs: list[SweepJob], handles: dict) -> str:
    """One line per job: name, job id, scheduler state, training progress."""
    lines = []
    for job in jobs:
        handle = handles.get(job.name)
        state = handle.state if handle is not None else "reused (done)"
        job_id = handle.job_id if handle is not None else "-"
        lines.append(f"  {job.name:28s} {job_id:>14s} {state:>12s} epochs {progress_of(job)}")
    return "\n".join(lines)
