"""The training runs the book's chapters read, and training them side by side before the chapters.

Chapters 2, 3 and 4 (and the sizing sweep) ask the run store for one shared set of runs (issue 10):
chapter 2's SAT, TRADES and the single-step FGSM-RS / FGSM-RS + DER at `single_step_eps`, and
chapter 4's methods (the same SAT and TRADES, plus WEAT_adv and SAT + DER in the CPU profiles).
`chapter_configs(profile, params)` builds them exactly as the chapters do from the same papermill
parameters, so that a run trained here is the run a chapter finds (tests/test_book_runs.py runs
the chapters' own lines to check it).

`train_all` trains the missing ones in parallel worker processes before `make book` executes the
chapters. On a small CPU, two runs with one thread each get more done than one run with two
threads (the small CNN's kernels do not keep two cores busy): see README "Time budget" for the
figures measured. A chapter then finds its runs finished and only reads them; an interrupted
`make book` leaves each run resumable from its last epoch, as when a chapter trains it.
"""
from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Mapping

from .config import TrainConfig, WeatDerConfig
from .provenance import training_code_status, usable_cpus
from .tables import METHOD_LABELS

SINGLE_STEP_EPS = 16 / 255      # chapter 2's parameter `single_step_eps` (the CO literature's larger ε)
# label -> (method, uses the single-step ε): chapter 2's runs, with its labels
CHAPTER2_RUNS = {"SAT": ("sat", False), "TRADES": ("trades", False),
                 "FGSM-RS": ("fgsm_rs", True), "FGSM-RS + DER": ("fgsm_rs_der", True)}


def chapter_configs(profile: str, params: Mapping[str, Any] | None = None) -> dict[str, TrainConfig]:
    """{method label: TrainConfig} of every run chapters 2-4 train for these papermill parameters
    (chapter 3 reads chapter 2's SAT and TRADES). Labels are chapter 2's, then chapter 4's
    (`tables.METHOD_LABELS`)."""
    namespace = {**(params or {}), "profile": profile}
    base = TrainConfig.from_namespace(namespace)
    single_eps = namespace.get("single_step_eps")
    single_eps = SINGLE_STEP_EPS if single_eps is None else float(single_eps)
    out = {label: base.replace(method=method, **({"eps": single_eps} if single else {}))
           for label, (method, single) in CHAPTER2_RUNS.items()}
    chapter4 = WeatDerConfig.from_namespace(namespace)
    known = {cfg.canonical() for cfg in out.values()}
    for method in chapter4.methods:
        cfg = chapter4.train_config(method, profile)
        if cfg.canonical() not in known:
            out[METHOD_LABELS.get(method, method)] = cfg
            known.add(cfg.canonical())
    return out


def default_jobs(n_runs: int, cpus: int | None = None, jobs: int | None = None) -> tuple[int, int]:
    """(worker processes, threads each): `jobs` (default one per core), never more than the runs;
    the cores shared among the workers."""
    cpus = cpus or usable_cpus()
    jobs = max(1, min(n_runs, jobs or cpus))
    return jobs, max(1, cpus // jobs)


_STOP = None   # in a worker: the pool's stop event (set when another run failed)


def _init_worker(threads: int, stop) -> None:
    import torch

    global _STOP
    _STOP = stop
    torch.set_num_threads(threads)


def _train_one(cfg: TrainConfig) -> tuple[str, bool, float]:
    """(run directory, finished?, seconds): a run stopped by the event is left resumable, unfinished."""
    from .runs import train_or_load

    t0 = time.perf_counter()
    run = train_or_load(cfg, progress=False, should_stop=_STOP.is_set if _STOP is not None else None)
    return str(run.dir), run.done, time.perf_counter() - t0


def _epochs_done(directory: Path) -> int:
    try:
        with open(directory / "metrics.jsonl", "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


@dataclass(frozen=True)
class TrainReport:
    seconds: dict = field(default_factory=dict)   # {label: seconds} of the runs trained now
    jobs: int = 0                                 # worker processes (0: nothing to train)
    threads: int = 0                              # torch threads of each


def train_all(configs: Mapping[str, TrainConfig], jobs: int | None = None, threads: int | None = None,
              progress: bool = True, log=print, poll_seconds: float = 2.0) -> TrainReport:
    """Train (or resume) every unfinished run of `configs` with `jobs` worker processes (default: one
    per core, at most one per run) of `threads` threads each (default: the cores shared among them).
    Returns the seconds of the runs trained now, and the processes and threads used.

    Progress is one bar of epochs over all runs (read from the runs' metrics.jsonl). A failing run
    stops the others at their next epoch boundary (they stay resumable) and its error is raised."""
    from tqdm.auto import tqdm

    from .runs import Run, run_dir

    todo = {}
    for label, cfg in configs.items():
        cfg = cfg.canonical()
        run = Run(cfg, run_dir(cfg))
        if not run.done and cfg not in todo.values():
            todo[label] = cfg
        elif run.done:   # reused as recorded: say when today's code would not train it the same (issue 23)
            status, text = training_code_status(run.env.get("sessions", []))
            if status != "same":
                log(f"[runs] {label} ({run.dir.name}) is reused: {text}", flush=True)
    if not todo:
        return TrainReport()
    jobs, shared_threads = default_jobs(len(todo), usable_cpus(), jobs)
    threads = threads or shared_threads
    dirs = {label: run_dir(cfg) for label, cfg in todo.items()}
    total = sum(cfg.epochs for cfg in todo.values())
    log(f"[runs] training {len(todo)} run(s) with {jobs} process(es) x {threads} thread(s): "
        f"{', '.join(todo)}", flush=True)
    seconds: dict[str, float] = {}
    bar = tqdm(total=total, desc="[runs] epochs", unit="epoch", disable=not progress)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads, stop))
    try:
        futures = {executor.submit(_train_one, cfg): label for label, cfg in todo.items()}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=poll_seconds, return_when=FIRST_EXCEPTION)
            epochs_done = min(total, sum(_epochs_done(d) for d in dirs.values()))
            if epochs_done != bar.n:   # one line per finished epoch in a log, not one per poll
                bar.update(epochs_done - bar.n)
            for future in done:
                label = futures[future]
                error = future.exception()
                if error is not None:
                    raise error
                seconds[label] = round(future.result()[2], 1)
                log(f"[runs] {label} finished in {seconds[label]} s", flush=True)
    except BaseException:
        # the other runs stop before their next epoch (Ctrl-C reaches the workers too), resumable
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        bar.close()
    executor.shutdown(wait=True)
    return TrainReport(seconds, jobs, threads)
