"""Training under `torchrun --nproc_per_node 2` (DistributedDataParallel, gloo on CPU): data sharded,
metrics and checkpoints written once by rank 0, and an interrupted run resumes to the same result."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from energy_lib import data

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("time_train_s", "time_track_s", "images_per_s")


def torchrun(runs: Path, *args: str) -> None:
    env = {**os.environ, "ENERGY_RUNS": str(runs), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "energy_lib", "train",
           "--profile", "smoke", "--method", "trades", "--no-progress", *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    runs = tmp_path_factory.mktemp("ddp")
    torchrun(runs, "--name", "full")
    return runs / "full"


def test_two_processes_train_once_and_write_once(uninterrupted):
    assert (uninterrupted / "DONE").is_file()
    rows = metrics(uninterrupted)
    assert [r["epoch"] for r in rows] == [1, 2]          # one record per epoch, not one per process
    sessions = json.loads((uninterrupted / "env.json").read_text())["sessions"]
    assert len(sessions) == 1 and sessions[0]["world_size"] == 2
    assert torch.load(uninterrupted / "last.pt", weights_only=False)["epoch"] == 2


def test_interrupted_distributed_run_resumes_to_the_same_metrics(uninterrupted, tmp_path):
    torchrun(tmp_path, "--name", "full", "--stop-after", "1")
    assert not (tmp_path / "full" / "DONE").exists() and len(metrics(tmp_path / "full")) == 1
    torchrun(tmp_path, "--name", "full")
    assert metrics(tmp_path / "full") == metrics(uninterrupted)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    b = torch.load(uninterrupted / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batch_iterator_shards_each_global_batch_between_ranks():
    d = data.load_dataset("cifar10", "train", n=100)
    single = list(data.BatchIterator(d, 32, seed=5).epoch(1))
    shards = [list(data.BatchIterator(d, 32, seed=5, rank=r, world_size=2).epoch(1)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(single) == 4     # last batch (4 images) is shared too
    for (xb, yb), (x0, y0), (x1, y1) in zip(single, *shards):
        assert torch.equal(x0, xb[0::2]) and torch.equal(x1, xb[1::2])
        assert torch.equal(torch.sort(torch.cat([y0, y1])).values, torch.sort(yb).values)
