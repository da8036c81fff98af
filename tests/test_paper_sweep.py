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
    datasets, methods = paper_sweep.PAPER_DATASETS, WeatDerConfig.methods
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
