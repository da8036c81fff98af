"""tools/paper_sweep.py: the dry run plans one paper-profile run per (dataset, method) and does no
work; unknown names are argparse errors; the paper profile refuses to start without a GPU unless
--allow-cpu. Training, evaluation and the data check are replaced by stubs that fail the test if
they are reached when they must not be (so a regression cannot start a days-long run)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import paper_sweep  # noqa: E402

from energy_lib import runs  # noqa: E402
from energy_lib.config import TrainConfig, WeatDerConfig  # noqa: E402


class Reached(Exception):
    """A stubbed stage was reached."""


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """An empty run store in tmp_path; training and the data check raise `Reached` if called."""
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))

    def stage(name):
        def stub(*args, **kwargs):
            raise Reached(name)
        return stub

    monkeypatch.setattr(runs, "train_or_load", stage("train_or_load"))
    monkeypatch.setattr(paper_sweep, "check_data", stage("check_data"))
    return tmp_path


def test_dry_run_plans_one_paper_run_per_dataset_and_method(no_work, capsys):
    assert paper_sweep.main(["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    datasets, methods = paper_sweep.PAPER_DATASETS, WeatDerConfig.from_profile("paper").methods
    assert len(datasets) == 4 and len(methods) == 6
    assert lines[0] == f"{len(datasets) * len(methods)} runs (paper profile) in {no_work}:"
    planned = [line.split()[0] for line in lines[1:]]
    # each name is the run directory of TrainConfig's own paper profile for that method and dataset
    # (ResNet-18, all training images, 100 epochs, ...): the sweep shares runs with `--profile paper`
    expected = [runs.run_dir(TrainConfig.from_profile("paper", overrides={"method": m, "dataset": d})).name
                for d in datasets for m in methods]
    assert planned == expected and len(set(planned)) == len(planned)
    assert all("-resnet18-nall-e100-" in name for name in planned)
    assert not any("(done)" in line for line in lines)
    assert list(no_work.iterdir()) == [], "a dry run writes nothing to the run store"


def test_dry_run_marks_finished_runs_and_honours_the_selection(no_work, capsys):
    cfg = TrainConfig.from_profile("paper", overrides={"method": "trades", "dataset": "svhn"})
    (no_work / runs.run_dir(cfg).name).mkdir()
    (no_work / runs.run_dir(cfg).name / "DONE").touch()
    assert paper_sweep.main(["--dry-run", "--datasets", "svhn", "cifar10", "--methods", "trades", "sat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 runs (paper profile)")
    assert [line.split()[0].split("-")[:2] for line in lines[1:]] == [
        ["trades", "svhn"], ["sat", "svhn"], ["trades", "cifar10"], ["sat", "cifar10"]]
    assert [line.endswith("(done)") for line in lines[1:]] == [True, False, False, False]


@pytest.mark.parametrize("flag,value", [("--methods", "pgd"), ("--datasets", "imagenet"), ("--profile", "huge")])
def test_unknown_names_are_rejected_by_argparse(flag, value, no_work, capsys):
    with pytest.raises(SystemExit) as exc:
        paper_sweep.main(["--dry-run", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and repr(value) in err


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_paper_profile_refuses_to_start_without_a_gpu(device, no_work, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        paper_sweep.main(["--datasets", "cifar10", "--methods", "sat", "--device", device])
    message = str(exc.value.code)
    assert "the paper profile needs a GPU" in message and "--allow-cpu" in message and "--profile smoke" in message
    assert list(no_work.iterdir()) == []


@pytest.mark.parametrize("args", [["--allow-cpu"], ["--profile", "smoke"]])
def test_allow_cpu_or_a_cpu_profile_goes_on_to_the_data_check(args, no_work, monkeypatch):
    """The positive control of the refusal: the same call passes it and reaches the (stubbed) data check."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(Reached, match="check_data"):
        paper_sweep.main(["--datasets", "cifar10", "--methods", "sat", "--device", "cpu", *args])


def test_data_check_asks_for_every_image_the_plan_needs(monkeypatch, tmp_path):
    """Offline, the paper protocol's full CIFAR-10 test set is missing (1017 of 10000 images ship):
    the sweep must stop before training and say so, while a CPU-sized plan passes."""
    from energy_lib import data

    def no_torchvision(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(data, "_load_torchvision", no_torchvision)

    def plan(profile):
        cfg = WeatDerConfig.from_profile(profile, overrides={"methods": ("sat",)})
        return [(cfg, "sat", cfg.train_config("sat", profile))]

    paper_sweep.check_data(plan("smoke"))                     # 128 + 32 train images, 16 test images
    with pytest.raises(SystemExit, match=r"cifar10 test: .*partial.*1017 of the 10000"):
        paper_sweep.check_data(plan("paper"))


# ---------------------------------------------------------------- submitit launchers (issue 13)
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from energy_lib import sweep  # noqa: E402
from energy_lib.runs import Run, run_dir  # noqa: E402

TIMING = ("time_train_s", "time_track_s", "images_per_s")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _wait(predicate, what: str, timeout: float = 600.0):
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def job_store(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))   # the job processes import energy_lib from this checkout
    return tmp_path / "runs"


def test_local_launcher_runs_one_job_per_run_and_publishes_the_records(job_store, capsys):
    code = paper_sweep.main(["--launcher", "local", "--profile", "smoke", "--device", "cpu", "--gpus", "0",
                             "--datasets", "cifar10", "--methods", "sat", "fgsm", "--poll", "0.5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "submitted 2 local jobs" in out and "2 done, 0 failed" in out
    assert "cifar10/sat" in out and "epochs 2/2" in out              # the states were shown
    published = sorted(p.parent.name for p in (job_store / "published").glob("*/*.json"))
    expected = sorted(run_dir(sweep.SweepJob("cifar10", m, "smoke", "cpu").train_config().canonical()).name
                      for m in ("sat", "fgsm"))
    assert published == expected
    assert (job_store / "paper_tables-smoke" / "results.md").is_file()
    ids = json.loads(sweep.jobs_file("smoke").read_text())
    assert set(ids) == {"cifar10/sat", "cifar10/fgsm"}


def test_a_preempted_job_is_requeued_resumes_and_ends_like_an_uninterrupted_one(job_store, tmp_path, monkeypatch):
    """SIGUSR2 (what SLURM sends before preemption or the time limit, and what the local executor
    forwards) reaches the job mid-training: submitit calls SweepJob.checkpoint, the job is requeued,
    resumes from last.pt and finishes; metrics and evaluation equal an uninterrupted run's."""
    job = sweep.SweepJob("cifar10", "sat", "smoke", "cpu", {"epochs": 6})
    ex = sweep.executor("local", tmp_path / "jobs", gpus=0, timeout_min=30)
    handle = ex.submit(job)
    d = run_dir(job.train_config().canonical())
    _wait(lambda: (d / "last.pt").is_file(), "the first epoch's checkpoint")
    assert not (d / "DONE").exists()
    tasks = _children(handle._process.pid)
    assert len(tasks) == 1
    os.kill(tasks[0], signal.SIGUSR2)
    rec = handle.result()
    log = Path(handle.paths.stderr).read_text()
    assert "this job is preempted" in log   # submitit caught it and called checkpoint
    run = Run(job.train_config().canonical(), d)
    sessions = run.env["sessions"]
    assert len(sessions) == 2 and 1 <= sessions[1]["resumed_from_epoch"] < 6   # it really was interrupted
    assert run.done and len(run.metrics) == 6

    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "uninterrupted"))
    reference = job()   # the same job, in this process, never interrupted
    ref_run = Run(job.train_config().canonical(), run_dir(job.train_config().canonical()))
    assert len(ref_run.env["sessions"]) == 1
    assert (run.metrics.drop(columns=list(TIMING)).to_dict("records")
            == ref_run.metrics.drop(columns=list(TIMING)).to_dict("records"))
    assert rec["accuracy"] == reference["accuracy"]
    assert (job_store / "published").is_dir()


def test_slurm_executor_asks_for_requeue_gpus_and_the_time_limit(tmp_path, monkeypatch):
    """The batch script submitit would give sbatch (a stand-in `srun` on PATH: no cluster here)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    ex = sweep.executor("slurm", tmp_path / "jobs", partition="gpu", gpus=2, timeout_min=600, cpus_per_gpu=4)
    script = ex._executor._make_submission_file_text("CMD", "uid").splitlines()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2",
                 "#SBATCH --time=600", "#SBATCH --cpus-per-task=4", "#SBATCH --requeue",
                 "#SBATCH --signal=USR2@120"):
        assert line in script
    assert ex._executor.max_num_timeout == 20


def test_checkpoint_requeues_the_same_job():
    job = sweep.SweepJob("svhn", "trades", "paper", "cuda", {"epochs": 3})
    delayed = job.checkpoint()
    assert delayed.function == job and delayed.function is not job and not delayed.args
