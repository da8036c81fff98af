"""Fault injection: nothing lost, nothing silently wrong (issue 12).

* A training process is stopped or killed *inside* a checkpoint write (the writer's hook
  `ENERGY_FAULT_INJECT`, never sleeps), a second process on the same run is refused, the stale lock
  is taken over, and the resumed run equals an uninterrupted one exactly (weights, metrics).
* Every kind of file of the store (and of the offline data) is corrupted: the error names it, and
  nothing else changes (checksums before/after); what can be rebuilt from the checkpoint is.
* Non-finite losses, weights and tracked metrics never reach a checkpoint.
* Every command-line error is one line on stderr with exit code 2 (130 for Ctrl-C).

Everything runs in the `smoke` profile with tiny settings on CPU.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from energy_lib import data, fileio, losses, runs, train
from energy_lib.config import ConfigError, RobustEvalSettings, TrainConfig, check_eps
from energy_lib.metrics import fidelity, robust
from energy_lib.runs import CheckpointError, ConfigMismatchError, Run, RunError, train_or_load

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny"
FLAGS = ["--profile", "smoke", "--no-progress", "--n-train", "64", "--batch-size", "32", "--epochs", "3",
         "--n-val", "16", "--n-train-track", "16", "--n-test-track", "16", "--n-track-samples", "8",
         "--schedule", "constant", "--device", "cpu", "--name", NAME]
TIMING = ("time_train_s", "time_track_s", "images_per_s")


# ----------------------------------------------------------------------------- helpers
def cli(store: Path, *args: str, fault: str | None = None, patch: str | None = None, popen: bool = False,
        data_dir: Path | None = None):
    """`python -m energy_lib train ...` in a subprocess (optionally with a fault hook or a patch)."""
    env = {**os.environ, "ENERGY_RUNS": str(store), "OMP_NUM_THREADS": "1"}
    env.pop(fileio.FAULT_ENV, None)
    if fault:
        env[fileio.FAULT_ENV] = fault
    if data_dir is not None:
        env["ENERGY_DATA"] = str(data_dir)
    if patch:
        cmd = [sys.executable, "-c", f"import sys\n{patch}\nfrom energy_lib.__main__ import main\n"
               "sys.exit(main(sys.argv[1:]))", "train", *args]
    else:
        cmd = [sys.executable, "-m", "energy_lib", "train", *args]
    kwargs = dict(cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.Popen(cmd, **kwargs) if popen else subprocess.run(cmd, timeout=900, **kwargs)


def one_line(proc, code: int = 2, *needles: str) -> str:
    """The process exited with `code` and wrote exactly one line on stderr, holding every needle."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == code and len(lines) == 1, (proc.returncode, proc.stderr)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def wait_stopped(proc) -> None:
    """Block until the process has stopped itself in the writer's hook (SIGSTOP)."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), proc.stderr.read()


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def epoch_of(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["epoch"]


def outcome(directory: Path) -> dict:
    """What must be identical between an interrupted-and-resumed run and an uninterrupted one."""
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    out = {"metrics": [{k: v for k, v in r.items() if k not in TIMING} for r in rows],
           "samples": (directory / "samples.jsonl").read_text()}
    for which in ("last", "best"):
        ckpt = torch.load(directory / f"{which}.pt", map_location="cpu", weights_only=False)
        out[which] = (ckpt["epoch"], ckpt["model"], ckpt["optimizer"]["state"])
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"] and a["samples"] == b["samples"]   # exact, every float
    for which in ("last", "best"):
        assert a[which][0] == b[which][0]
        assert a[which][1].keys() == b[which][1].keys()
        assert all(torch.equal(a[which][1][k], b[which][1][k]) for k in a[which][1])
        for k, state in a[which][2].items():
            assert all(torch.equal(state[s], b[which][2][k][s]) for s in state)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run (subprocess, as every run it is compared with)."""
    store = tmp_path_factory.mktemp("reference")
    proc = cli(store, *FLAGS)
    assert proc.returncode == 0, proc.stderr
    return store / NAME


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def copy_of(reference: Path, store: Path) -> Run:
    shutil.copytree(reference, store / NAME)
    cfg = TrainConfig.from_dict(json.loads((store / NAME / "config.json").read_text()))
    return Run(cfg, store / NAME)


# ----------------------------------------------------------------------------- kill, lock, resume
def test_killed_in_checkpoint_writes_locked_and_resumed_equals_uninterrupted(reference, tmp_path):
    store = tmp_path / "runs"
    run = store / NAME
    # A stops itself halfway through writing last.pt of epoch 2, holding the run's lock
    a = cli(store, *FLAGS, fault="stop:last.pt:2", popen=True)
    wait_stopped(a)
    partial = [p for p in run.iterdir() if p.name.startswith(".last.pt.")]
    assert len(partial) == 1 and epoch_of(run / "last.pt") == 1
    before = checksums(run)
    # B, a second process on the same run, is refused and changes nothing
    b = cli(store, *FLAGS)
    one_line(b, 2, f"in use by process {a.pid}", str(run / "LOCK"))
    assert checksums(run) == before
    # A is killed inside its checkpoint write: the lock is stale, the temporary stays behind
    a.kill()
    a.communicate()
    assert a.returncode == -signal.SIGKILL and (run / "LOCK").is_file() and partial[0].is_file()
    # C takes the stale lock over, removes the temporary, resumes, and is killed inside best.pt's write
    c = cli(store, *FLAGS, fault="kill:best.pt:1")
    assert c.returncode == -signal.SIGKILL, c.stderr
    assert "took over the stale lock" in c.stderr and f"removed {partial[0]}" in c.stderr
    assert not partial[0].exists() and epoch_of(run / "last.pt") == 2
    # D resumes from epoch 2 and finishes: the same run as the uninterrupted one, to the last bit
    d = cli(store, *FLAGS)
    assert d.returncode == 0, d.stderr
    assert_same(outcome(run), outcome(reference))
    sessions = json.loads((run / "env.json").read_text())["sessions"]
    assert [s["resumed_from_epoch"] for s in sessions] == [0, 1, 2]   # A, C, D: none lost, B none
    assert not (run / "LOCK").exists() and not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_ctrl_c_inside_a_checkpoint_write_exits_130_naming_the_epoch_kept(tmp_path):
    store = tmp_path / "runs"
    proc = cli(store, *FLAGS, fault="stop:last.pt:2", popen=True)
    wait_stopped(proc)
    os.kill(proc.pid, signal.SIGINT)      # Ctrl-C arrives while epoch 2's last.pt is half written
    os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate()
    one_line(SimpleNamespace(returncode=proc.returncode, stderr=stderr), 130, "interrupted:", "keeps the checkpoint of epoch 1", "run the same command again")
    run = store / NAME   # what the message says is true; resuming is the test above
    assert epoch_of(run / "last.pt") == 1 and not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert not (run / "LOCK").exists()


# ----------------------------------------------------------------------------- corrupt files
def _garble(path: Path, how: str) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if how == "truncate" else b"<html><body>502 Bad Gateway</body></html>")


@pytest.mark.parametrize("which,how", [("last", "truncate"), ("best", "html")])
def test_a_corrupt_checkpoint_names_itself_and_changes_nothing(reference, store, which, how):
    run = copy_of(reference, store)
    path = run.dir / f"{which}.pt"
    _garble(path, how)
    before = checksums(run.dir)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is corrupt.*Delete the run directory {run.dir}"):
        run.load_model(which)
    with pytest.raises(CheckpointError, match=f"{path} is corrupt"):
        run.checkpoint_info(which)
    assert checksums(run.dir) == before


def test_the_advice_for_a_corrupt_checkpoint_works(reference, store):
    run = copy_of(reference, store)
    _garble(run.dir / "best.pt", "html")
    shutil.rmtree(run.dir)                               # "Delete the run directory ... to retrain the run"
    again = train_or_load(run.config, progress=False, stop_after=1)
    assert again.checkpoint_info("last")["epoch"] == 1   # retraining (one epoch of it, to keep the test short)


@pytest.mark.parametrize("filename", ["config.json", "metrics.jsonl", "samples.jsonl", "tracking.json"])
def test_records_rebuilt_from_the_checkpoint_are_the_originals(reference, store, filename):
    run = copy_of(reference, store)
    path = run.dir / filename
    original = path.read_bytes()
    _garble(path, "truncate")
    garbled, others = path.read_bytes(), {k: v for k, v in checksums(run.dir).items() if k != filename}
    with pytest.warns(UserWarning, match=f"{path}.*rebuilt|{filename}.*rebuilt"):
        if filename == "config.json":
            assert train_or_load(run.config, progress=False).done          # loaded, not retrained
        elif filename == "tracking.json":
            assert "PGD-CE" in run.tracking_attack["test"]
        else:
            assert len(run.metrics) == 3 and len(run.tracked_samples) == 3 * 8
    assert path.read_bytes() == original                                    # byte for byte
    after = checksums(run.dir)
    if filename == "config.json":   # the unreadable file is kept beside it, never lost
        assert (run.dir / "config.json.corrupt").read_bytes() == garbled
        after.pop("config.json.corrupt")
    after.pop(filename)
    assert after == others          # (a rebuilt samples.jsonl / metrics.jsonl is byte-identical too)


def test_unreadable_env_json_names_itself_and_its_advice_works(reference, store):
    run = copy_of(reference, store)
    path = run.dir / "env.json"
    _garble(path, "truncate")
    before = checksums(run.dir)
    with pytest.raises(fileio.CorruptFileError, match=f"{path} is not valid JSON.*move it away"):
        run.env
    assert checksums(run.dir) == before
    os.replace(path, run.dir / "env.json.corrupt")
    assert run.env == {}


def test_finished_runs_warns_about_a_run_it_cannot_read_and_lists_the_others(reference, store):
    good = copy_of(reference, store)
    broken = store / "broken"
    broken.mkdir()
    (broken / "DONE").write_text("")
    (broken / "config.json").write_text('{"method": "sat", ')       # and no checkpoint to rebuild it from
    before = checksums(store)
    with pytest.warns(UserWarning, match=f"skipped the run {broken}: .*config.json is not valid JSON"):
        found = runs.finished_runs(store)
    assert [r.dir for r in found] == [good.dir] and checksums(store) == before


def test_a_checkpoint_of_another_config_is_refused(reference, store):
    """A TRADES last.pt copied into an interrupted SAT run is not adopted."""
    run = copy_of(reference, store)
    (run.dir / "DONE").unlink()
    ckpt = torch.load(run.dir / "last.pt", map_location="cpu", weights_only=False)
    ckpt["config"] = {**ckpt["config"], "method": "trades", "beta": 6.0}
    torch.save(ckpt, run.dir / "last.pt")
    before = checksums(run.dir)
    with pytest.raises(ConfigMismatchError, match=f"checkpoint {run.dir / 'last.pt'} was made by a different "
                                                  r"config.*'method': \('trades', 'sat'\).*Delete it"):
        train_or_load(run.config, progress=False)
    assert checksums(run.dir) == before and not (run.dir / "LOCK").exists()
    (run.dir / "last.pt").unlink()                         # the advice: the run restarts from epoch 0
    assert train_or_load(run.config, progress=False, stop_after=1).checkpoint_info("last")["epoch"] == 1


def test_without_config_json_a_finished_run_refuses_another_config(reference, store):
    run = copy_of(reference, store)
    original = (run.dir / "config.json").read_bytes()
    (run.dir / "config.json").unlink()
    other = run.config.replace(method="trades", eps=4 / 255)
    with pytest.warns(UserWarning, match="config.json: it was missing; rebuilt from last.pt"):
        with pytest.raises(ConfigMismatchError, match="different config"):
            train_or_load(other, progress=False)
    assert (run.dir / "config.json").read_bytes() == original      # rebuilt from the checkpoint, not overwritten


def _record(key: str, acc: float) -> dict:
    return {"kind": "robust_eval", "key": key, "complete": True, "accuracy": {"clean": acc}}


def test_one_corrupt_evaluation_record_does_not_hide_the_others(store):
    for name, key in (("a", "k1"), ("b", "k2")):
        fileio.make_dir(store / name)
        fileio.write_json(robust.record_path(store / name, key), _record(key, 0.5))
    bad = robust.record_path(store / "b", "k3")
    bad.write_text('{"kind": "robust_eval", "comp')
    before = checksums(store)
    with pytest.warns(UserWarning, match=f"skipped: {bad} is not valid JSON"):
        found = robust.load_records(store)
    assert sorted(r["key"] for r in found) == ["k1", "k2"] and checksums(store) == before


def test_a_corrupt_evaluation_record_names_itself_and_deleting_it_recomputes(store):
    from energy_lib.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn")
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    images = robust.EvalImages(x, y, {"sha256": robust.images_fingerprint(x, y)})
    settings = RobustEvalSettings(autoattack=False, pgd_steps=1, batch_size=4)
    rec = robust.evaluate(model, images, settings, store, device="cpu", progress=False)
    path = robust.record_path(store, rec["key"])
    _garble(path, "truncate")
    before = checksums(store)
    with pytest.raises(fileio.CorruptFileError, match=f"{path} is not valid JSON.*delete {path} to recompute"):
        robust.evaluate(model, images, settings, store, device="cpu", progress=False)
    assert checksums(store) == before
    path.unlink()
    again = robust.evaluate(model, images, settings, store, device="cpu", progress=False)
    assert again["accuracy"] == rec["accuracy"]


def test_a_corrupt_fidelity_record_names_itself(tmp_path):
    path = tmp_path / "fid.json"
    path.write_text("{not json")
    with pytest.raises(fileio.CorruptFileError, match=f"{path} is not valid JSON.*score the samples again"):
        fidelity.FidelityRecord.load(path)
    path.write_text('{"fid": 1.0}')
    with pytest.raises(fileio.CorruptFileError, match=f"{path} is not a fidelity record"):
        fidelity.FidelityRecord.load(path)


def _fake_data(folder: Path, how: str) -> Path:
    path = folder / "cifar10" / "test_first1017.npz"
    path.parent.mkdir(parents=True)
    x, y = np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10
    if how == "html":
        path.write_text("<!DOCTYPE html><html>Sign in to continue</html>")
    elif how == "truncated":
        np.savez(path, x=x, y=y)
        path.write_bytes(path.read_bytes()[:300])
    elif how == "wrong keys":
        np.savez(path, images=x, labels=y)
    elif how == "float images":
        np.savez(path, x=x.astype(np.float32), y=y)
    elif how == "good":
        np.savez(path, x=x, y=y)
    return path


@pytest.mark.parametrize("how,what", [("html", "it is not an .npz (zip) archive (an HTML page"),
                                      ("truncated", "it cannot be read as an .npz archive"),
                                      ("wrong keys", "it has no array 'y' (it holds images, labels)"),
                                      ("float images", "array 'x' is float32")])
def test_a_corrupt_data_file_names_itself_and_how_to_get_a_good_copy(tmp_path, monkeypatch, how, what):
    monkeypatch.setenv("ENERGY_DATA", str(tmp_path))
    path = _fake_data(tmp_path, how)
    before = checksums(tmp_path)
    with pytest.raises(data.CorruptDataError, match=re.escape(f"{path} is not a valid offline data file: {what}")
                       + ".*sha256sum -c SHA256SUMS"):
        data.load_dataset("cifar10", "test", n=4)
    assert checksums(tmp_path) == before
    shutil.rmtree(path.parent)
    _fake_data(tmp_path, "good")                           # a good copy is read
    assert len(data.load_dataset("cifar10", "test", n=4)) == 4


def test_the_partial_cifar100_advice_works():
    """The error for the whole split suggests n=k in Python (never a flag `train` lacks)."""
    if data._offline_count("cifar100", "train") is None:
        pytest.skip("no offline CIFAR-100 copy")
    _, available = data._offline_count("cifar100", "train")
    assert len(data.load_dataset("cifar100", "train", n=available)) == available


# ----------------------------------------------------------------------------- non-finite values
TINY = TrainConfig.from_profile("smoke", overrides=dict(
    n_train=64, batch_size=32, epochs=3, n_val=16, n_train_track=16, n_test_track=16, n_track_samples=8,
    schedule="constant", device="cpu"))


def test_non_finite_weights_with_a_finite_loss_never_reach_a_checkpoint(store, monkeypatch):
    original = losses.LOSSES["sat"]

    def poison_weights(model, x, y, cfg, ctx):
        out = original(model, x, y, cfg, ctx)
        if ctx.epoch == 1 and ctx.step == 1:       # the loss stays finite, its gradient is NaN (0 * 1/sqrt(0))
            out.loss = out.loss + 0 * torch.sqrt(0 * next(model.parameters()).sum())
        return out

    monkeypatch.setitem(losses.LOSSES, "sat", poison_weights)
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite values after epoch 2.*weight .*last.pt "
                                                       r"keeps epoch 1 \(finite"):
        train_or_load(TINY, progress=False)
    run = Run(TINY, runs.run_dir(TINY))
    ckpt = torch.load(run.dir / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values()
                                      if v.is_floating_point())
    assert len(run.metrics) == 1 and not run.done and not (run.dir / "LOCK").exists()


def test_a_non_finite_tracked_metric_at_epoch_1_keeps_nothing_and_says_so(store, monkeypatch):
    real_track = train.track

    def nan_energy(model, td, cfg, epoch, device):
        record, per_sample = real_track(model, td, cfg, epoch, device)
        return {**record, "test_E_nat_mean": float("nan")}, per_sample

    monkeypatch.setattr(train, "track", nan_energy)
    with pytest.raises(train.NonFiniteLossError, match="metric test_E_nat_mean=nan.*no checkpoint was saved"):
        train_or_load(TINY, progress=False)
    assert not (runs.run_dir(TINY) / "last.pt").exists()


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("field,value,message", [
    ("lr", float("nan"), "lr=nan must be a finite number"), ("lr", -1, "lr must be positive"),
    ("pct_start", 2, "pct_start=2.0 must be in"), ("beta", -1, "beta must be non-negative"),
    ("epochs", 2.5, "epochs=2.5 must be a whole number"), ("momentum", -1, "momentum=-1.0 must be in"),
    ("step_size", float("nan"), "step_size=nan must be a finite"), ("eps", "8/0", "eps='8/0' divides by zero"),
    ("eps", "eight", "eps='eight' is not a number")])
def test_configs_refuse_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig.from_profile("smoke", **{field: value})


def test_eps_is_accepted_as_a_fraction_wherever_the_command_line_accepts_it():
    assert TrainConfig(eps="8/255").eps == 8 / 255 and check_eps("8/255") == 8 / 255
    assert RobustEvalSettings(eps="4/255").eps == 4 / 255
    assert TrainConfig.from_profile("smoke", step_size="2/255").step_size == 2 / 255


def test_attacks_refuse_nan_pixels_and_a_nan_step_size():
    from energy_lib import attacks
    from energy_lib.models import build_model

    model, y = build_model("small_cnn"), torch.zeros(2, dtype=torch.long)
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ConfigError, match="step_size"):
        attacks.pgd(model, x, y, eps=8 / 255, step_size=float("nan"), steps=1)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        attacks.pgd(model, x, y, eps=8 / 255, step_size=2 / 255, steps=1)


def test_config_imports_nothing_above_it():
    """config.py needs only the name registries (a data-only leaf), not even torch."""
    code = ("import sys, energy_lib.config; "
            "print(sorted(m for m in sys.modules if m.startswith('energy_lib')), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['energy_lib', 'energy_lib.config', 'energy_lib.names'] False"


# ----------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("flags,needle", [
    (["--lr", "-1"], "lr must be positive"), (["--momentum", "-1"], "momentum=-1.0 must be in [0, 1]"),
    (["--pct-start", "2"], "pct_start=2.0 must be in (0, 1)"), (["--eps", "8/0"], "eps='8/0' divides by zero"),
    (["--bogus"], "unrecognized arguments: --bogus")])
def test_a_bad_flag_is_one_line_exit_2_and_creates_nothing(tmp_path, flags, needle):
    store = tmp_path / "runs"
    proc = cli(store, *FLAGS, *flags, "--dry-run")
    one_line(proc, 2, "error: ", needle)
    assert not store.exists()


def test_a_non_finite_loss_on_the_command_line_says_nothing_was_kept(tmp_path):
    proc = cli(tmp_path / "runs", *FLAGS, "--lr", "1e30")
    one_line(proc, 2, "training loss is nan", "no checkpoint was saved", "Lower lr")


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    patch = ("import errno, energy_lib.fileio as f\nreal = f._write_bytes\n"
             "def full(fh, data, path):\n    if path.name != 'last.pt':\n        return real(fh, data, path)\n"
             "    fh.write(data[:100])\n    raise OSError(errno.ENOSPC, 'No space left on device')\n"
             "f._write_bytes = full")
    proc = cli(tmp_path / "runs", *FLAGS, patch=patch)
    run = tmp_path / "runs" / NAME
    one_line(proc, 2, f"cannot write {run / 'last.pt'}: No space left on device", "free some space")
    assert not (run / "last.pt").exists() and not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_run_store_is_one_line(tmp_path):
    patch = ("import errno, tempfile\n"
             "def read_only(*a, **k):\n    raise OSError(errno.EROFS, 'Read-only file system')\n"
             "tempfile.mkstemp = read_only")
    proc = cli(tmp_path / "runs", *FLAGS, patch=patch)
    one_line(proc, 2, f"cannot write {tmp_path / 'runs' / NAME / 'config.json'}: Read-only file system",
             "writable")


def test_a_corrupt_data_file_on_the_command_line_is_one_line_and_creates_nothing(tmp_path):
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    bad = tmp_path / "data" / "cifar10" / "train.npz"
    bad.write_text("<html>not found</html>")
    proc = cli(tmp_path / "runs", *FLAGS, data_dir=tmp_path / "data")
    one_line(proc, 2, f"{bad} is not a valid offline data file", "sha256sum -c SHA256SUMS")
    assert not (tmp_path / "runs").exists()
