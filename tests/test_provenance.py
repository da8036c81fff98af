"""energy_lib.provenance: the one git state and the one machine description of every record, and
the reading of older records' machine keys."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from energy_lib import provenance

ROOT = Path(__file__).resolve().parent.parent


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_git_state_is_dirty_only_for_tracked_changes_outside_the_run_store(tmp_path):
    repo = tmp_path / "repo"
    for name in ("code.py", "runs/sizing/sizing.json", "runs/reference/r/metrics.jsonl"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    git(tmp_path, "init", "-q", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    head = git(repo, "rev-parse", "HEAD")
    clean = {"commit": head, "dirty": False}
    assert provenance.git_state(repo) == clean
    (repo / "new.py").write_text("y\n")                      # untracked: not dirty
    (repo / "runs" / "bench").mkdir()
    (repo / "runs" / "bench" / "bench-new.json").write_text("{}\n")
    assert provenance.git_state(repo) == clean and provenance.git_state(repo, exclude=()) == clean
    (repo / "runs" / "sizing" / "sizing.json").write_text("changed\n")   # tracked, in the run store
    (repo / "runs" / "reference" / "r" / "metrics.jsonl").unlink()
    assert provenance.git_state(repo) == clean
    assert provenance.git_state(repo, exclude=()) == {"commit": head, "dirty": True}
    (repo / "code.py").write_text("changed\n")              # tracked code: dirty
    assert provenance.git_state(repo) == {"commit": head, "dirty": True}
    git(repo, "checkout", "--", "code.py")
    assert provenance.git_state(repo) == clean
    (repo / "code.py").write_text("staged\n")
    git(repo, "add", "code.py")                               # staged counts too
    assert provenance.git_state(repo) == {"commit": head, "dirty": True}
    git(repo, "commit", "-q", "-m", "second")
    assert provenance.git_state(repo) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "code.py").unlink()                               # a deleted tracked file
    assert provenance.git_state(repo)["dirty"] is True


def test_git_state_outside_a_checkout_or_before_a_commit_is_unknown(tmp_path):
    (tmp_path / "plain").mkdir()
    assert provenance.git_state(tmp_path / "plain") == {"commit": None, "dirty": None}
    git(tmp_path, "init", "-q", str(tmp_path / "empty"))
    assert provenance.git_state(tmp_path / "empty") == {"commit": None, "dirty": None}


def test_machine_has_the_one_set_of_keys():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = provenance.machine("cpu")
    assert tuple(info) == provenance.MACHINE_KEYS
    assert {k: v for k, v in info.items() if k != "cpu_model"} == {
        "cpu_count": os.cpu_count(), "cpus": cpus, "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "device": "cpu", "gpu": None}
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    bare = provenance.machine()
    assert tuple(bare) == provenance.MACHINE_KEYS and bare["device"] is None
    assert bare["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


def test_older_records_are_read_under_todays_keys():
    sizing = {"cpu_count": 4, "cpus_available": 2, "torch_threads": 2, "processor": "x86_64", "torch": "2.5"}
    assert provenance.machine_view(sizing) == {"cpu_count": 4, "cpus": 2, "torch_threads": 2, "cpu_model": "x86_64",
                                               "torch": "2.5"}
    assert provenance.machine_view({**sizing, "cpus_available": None})["cpus"] == 4   # no affinity: the count
    bench = {"device": "cpu", "cpu": "x86_64", "threads": 1, "torch": "2.5", "cuda": "12.1", "git": {"commit": None}}
    assert provenance.machine_view(bench) == {"device": "cpu", "torch": "2.5", "cuda": "12.1", "git": {"commit": None},
                                              "cpu_model": "x86_64", "torch_threads": 1}
    budget = {"cpus": 2, "cpu_model": "Xeon", "torch_threads": 2, "cuda": False}
    assert provenance.machine_view(budget) == {"cpus": 2, "cpu_model": "Xeon", "torch_threads": 2,
                                               "cuda_available": False}
    today = provenance.machine("cpu")
    assert provenance.machine_view(today) == today and provenance.machine_view(None) == {}
    assert provenance.machine_label(bench) == "CPU (1 threads)"
    assert provenance.machine_label({**today, "gpu": "NVIDIA H200"}) == "NVIDIA H200"


def test_provenance_imports_nothing_of_energy_lib_nor_torch():
    code = ("import sys, energy_lib.provenance; "
            "print(sorted(m for m in sys.modules if m.startswith('energy_lib')), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['energy_lib', 'energy_lib.provenance'] False"


def test_a_run_trained_by_other_code_is_reported():
    from energy_lib.provenance import TRAINING_CODE, code_digest, training_code_status

    now = code_digest(TRAINING_CODE)
    clean = {"commit": "a" * 40, "dirty": False}
    assert training_code_status([{"training_code": now, "git": clean}])[0] == "same"
    status, text = training_code_status([{"training_code": now, "git": clean}, {"training_code": "0" * 64, "git": clean}])
    assert status == "different" and "delete its directory to retrain" in text and "000000000000" in text
    from energy_lib.provenance import code_digests
    files = {**code_digests(TRAINING_CODE), "losses.py": "1" * 64}     # the session's per-file digests name the change
    status, text = training_code_status([{"training_code": "0" * 64, "training_code_files": files, "git": clean}])
    assert status == "different" and "(losses.py changed since)" in text
    status, text = training_code_status([{"git": {"commit": "b" * 40, "dirty": True}}])
    assert status == "unknown" and "uncommitted changes" in text
    assert training_code_status([])[0] == "unknown"
