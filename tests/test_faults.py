"""Fault injection: nothing lost, nothing silently wrong (issue 12).

* A training process is stopped or killed *inside* a checkpoint write (the writer's hook
  `ENERGY_FAULT_INJECT`, never sleeps), a second process on the same run is refused, the stale lock
  is taken over, and the resumed run equals an uninterrupted one exactly (weights, metrics).
* Every kind of file of the store (and of the offline data) is corrupted: the error names it, and
  nothing else changes (checksums before/after); what can be rebuilt from the checkpoint is.
* Non-finite losses, weights and tracked metrics never reach a checkpoint.
* Every command-line error is one line on stderr with exit code 2 (130 for Ctrl-C).
* No file runs code, nothing stored is adopted unverified (issue 26): a pickle payload through every
  loader never runs (a marker file it would create never appears); a changed byte in a checkpoint or
  cached tensor, an empty / cut / edited / another run's record, a swapped config.json, evaluation
  and lens records of another model or setting, a swapped data file are each refused or rebuilt,
  with one line naming the file and a fix that works (each fix is carried out); names that become
  paths are plain folder names, `make lens` runs no value as a command; the smaller command-line cases.

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
import struct
import subprocess
import sys
import zipfile
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
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


def outcome(directory: Path) -> dict:
    """What must be identical between an interrupted-and-resumed run and an uninterrupted one."""
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    out = {"metrics": [{k: v for k, v in r.items() if k not in TIMING} for r in rows],
           "samples": (directory / "samples.jsonl").read_text()}
    for which in ("last", "best"):
        ckpt = torch.load(directory / f"{which}.pt", map_location="cpu", weights_only=True)
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
    ckpt = torch.load(run.dir / "last.pt", map_location="cpu", weights_only=True)
    ckpt["config"] = {**ckpt["config"], "method": "trades", "beta": 6.0}
    torch.save(fileio.sealed(ckpt), run.dir / "last.pt")   # a genuine (sealed) checkpoint of another config
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
    ckpt = torch.load(run.dir / "last.pt", map_location="cpu", weights_only=True)
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


# ============================================================================= issue 26
# No code from a file, no silent adoption: every loader refuses a pickle payload (and the payload
# never runs), every stored result is verified against what was asked, names that become paths are
# plain folder names, and the smaller command-line cases are one line.
from energy_lib import autoattack, lens, models  # noqa: E402
from energy_lib.config import LensConfig  # noqa: E402

LENS = LensConfig.from_profile("smoke", n_images=8, pgd_steps=2, steps=2, attacks=("pgd",), device="cpu")


class Payload:
    """Unpickling this object runs code: it opens (creates) the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "a"))


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PAYLOAD-RAN"
    yield path
    assert not path.exists(), "a file's pickle payload ran"


def plant(path: Path, marker: Path, content: dict | None = None) -> None:
    """`path` becomes a torch file of `content` (default: what it holds) plus a payload, which is
    checked to be live (unpickling it runs it), so that the test can fail."""
    content = dict(torch.load(path, map_location="cpu", weights_only=True) if content is None else content)
    torch.save({**content, "extra": Payload(marker)}, path)
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()
    marker.unlink()


def flip_tensor_byte(path: Path) -> None:
    """Change one byte in the middle of the largest tensor's data; torch's zip reader does not notice
    (checked), so only a digest can."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    raw[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    torch.load(path, map_location="cpu", weights_only=True)   # loads: the format itself checks nothing


# ----------------------------------------------------------------------------- 1. no code from a file
@pytest.mark.parametrize("which", ["best", "last"])
def test_a_payload_in_a_run_checkpoint_never_runs(reference, store, marker, which):
    run = copy_of(reference, store)
    plant(run.dir / f"{which}.pt", marker)
    before = checksums(run.dir)
    with pytest.raises(CheckpointError, match=f"{run.dir / (which + '.pt')} holds Python objects.*could run code"):
        run.load_model(which)
    with pytest.raises(CheckpointError, match="could run code"):
        lens.ModelSource("run", str(run.dir)).identity() if which == "best" else run.checkpoint_info("last")
    assert checksums(run.dir) == before


def test_a_payload_in_last_pt_never_runs_on_resume_nor_on_rebuilding_config_json(reference, store, marker):
    run = copy_of(reference, store)
    (run.dir / "DONE").unlink()
    plant(run.dir / "last.pt", marker)
    with pytest.raises(CheckpointError, match="could run code.*Delete it to restart this run from epoch 0"):
        train_or_load(run.config, progress=False)
    (run.dir / "config.json").unlink()            # rebuilt from last.pt: the loader refuses it there too
    with pytest.raises(CheckpointError, match="could run code"):
        Run(TrainConfig(), run.dir).stored_config()
    (run.dir / "last.pt").unlink()                # the advice: the run restarts from epoch 0
    assert train_or_load(run.config, progress=False, stop_after=1).checkpoint_info("last")["epoch"] == 1


def test_a_payload_in_the_reference_runs_best_pt_never_runs(tmp_path, monkeypatch, marker):
    """The committed reference run (a copy: chapters 1, 5 and 6 load its best.pt; CI restores it)."""
    committed = runs.reference_root()
    shutil.copytree(committed, tmp_path / "reference")
    monkeypatch.setattr(runs, "reference_root", lambda: tmp_path / "reference")
    run = runs.reference_run()
    plant(run.dir / "best.pt", marker)
    with pytest.raises(CheckpointError, match="could run code"):
        run.load_model()


def test_a_payload_in_an_autoattack_state_file_never_runs(store, marker):
    model = models.build_model("small_cnn").eval()
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    state = store / "aa_state.pt"
    fileio.make_dir(store)
    plant(state, marker, {"fingerprint": "x"})
    with pytest.raises(fileio.CorruptFileError, match=f"{state} holds Python objects.*delete {state}"):
        autoattack.run_autoattack(model, x, y, state_path=state, verbose=False,
                                  settings=autoattack.AutoAttackSettings(n_iter=1, n_target_classes=1, n_queries=1))


def test_a_payload_in_the_lens_autoattack_state_never_runs(store, marker):
    torch.manual_seed(0)
    cfg = LENS.replace(autoattack=True, attacks=("pgd",))
    directory = lens.record_dir(cfg, {}, "", "planted")
    fileio.make_dir(directory)
    plant(directory / "aa_state.pt", marker, {"fingerprint": "x"})
    with pytest.raises(fileio.CorruptFileError, match="could run code"):
        lens.look(models.build_model("small_cnn"), cfg, source_identity={"kind": "test"}, name="planted",
                  progress=False)


def _stored_reference_energies(tmp_path, n: int):
    """A toy model's reference energies computed once in a fresh generation store: (store, model, x,
    y, the energies, the file they were stored in)."""
    from energy_lib import generation_store
    from energy_lib.config import GenerationConfig

    store = generation_store.GenerationStore(tmp_path / "gen", GenerationConfig.from_profile("smoke", device="cpu"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(n, 3, 2, 2), torch.arange(3).repeat(n // 3)
    first = store.reference_energies(model, x, y, 3)
    return store, model, x, y, first, next(store.dir.glob("energies-*.pt"))


def test_payloads_in_caches_and_foreign_checkpoints_never_run(tmp_path, marker):
    store, model, x, y, first, path = _stored_reference_energies(tmp_path, 6)
    plant(path, marker)
    with pytest.warns(UserWarning, match=f"{path}: unreadable.*could run code.*recomputed"):
        assert torch.equal(store.reference_energies(model, x, y, 3), first)
    foreign = tmp_path / "model.pt"
    torch.save(models.build_model("small_cnn").state_dict(), foreign)
    plant(foreign, marker)
    with pytest.raises(lens.LensError, match="cannot be read by torch.load"):
        lens.load_checkpoint_model(foreign, "small_cnn", 10)


# ----------------------------------------------------------------------------- 2. a changed byte
def test_a_changed_byte_in_best_pt_is_refused_naming_it(reference, store):
    run = copy_of(reference, store)
    flip_tensor_byte(run.dir / "best.pt")
    before = checksums(run.dir)
    with pytest.raises(CheckpointError, match=f"{run.dir / 'best.pt'} is damaged.*Delete the run directory"):
        run.load_model("best")
    assert checksums(run.dir) == before


def test_a_changed_byte_in_last_pt_is_never_resumed_and_the_advice_works(reference, store):
    run = copy_of(reference, store)
    (run.dir / "DONE").unlink()
    flip_tensor_byte(run.dir / "last.pt")
    before = checksums(run.dir)
    with pytest.raises(CheckpointError, match=f"{run.dir / 'last.pt'} is damaged.*Delete it to restart this run "
                                              "from epoch 0"):
        train_or_load(run.config, progress=False)
    assert checksums(run.dir) == before and not (run.dir / "LOCK").exists()
    (run.dir / "last.pt").unlink()
    assert train_or_load(run.config, progress=False, stop_after=1).checkpoint_info("last")["epoch"] == 1


def test_a_changed_byte_in_a_generation_store_tensor_is_recomputed(tmp_path):
    store, model, x, y, first, path = _stored_reference_energies(tmp_path, 60)
    flip_tensor_byte(path)
    with pytest.warns(UserWarning, match=f"{path}: unreadable.*is damaged.*recomputed"):
        again = store.reference_energies(model, x, y, 3)
    assert torch.equal(again, first) and store.computed == [path, path]


# ----------------------------------------------------------------------------- 2. records checked
def _other(value):
    """A value as another run would have it: every float moved, the same keys and lengths."""
    if isinstance(value, dict):
        return {k: _other(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_other(v) for v in value]
    return value + 0.125 if isinstance(value, float) else value


def _other_rows(rows: list) -> list:
    return [_other(r) for r in rows]


@pytest.mark.parametrize("filename", ["metrics.jsonl", "samples.jsonl"])
@pytest.mark.parametrize("how", ["empty", "cut", "edited", "another run's"])
def test_a_changed_jsonl_of_a_finished_run_is_rebuilt_from_last_pt(reference, store, filename, how):
    run = copy_of(reference, store)
    path = run.dir / filename
    original = path.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    changed = {"empty": "", "cut": "".join(lines[:2]),
               "edited": original.decode().replace(lines[1], json.dumps(_other_rows(rows[1:2])[0]) + "\n"),
               "another run's": "".join(json.dumps(r) + "\n" for r in _other_rows(rows))}[how]
    path.write_text(changed)
    others = {k: v for k, v in checksums(run.dir).items() if k != filename}
    with pytest.warns(UserWarning, match=f"{path} is not the file the run finished with.*rebuilt {filename}"):
        got = run.metrics if filename == "metrics.jsonl" else run.tracked_samples
    assert len(got) == (3 if filename == "metrics.jsonl" else 3 * 8)
    assert path.read_bytes() == original                                  # the original, byte for byte
    assert {k: v for k, v in checksums(run.dir).items() if k != filename} == others


def test_an_empty_metrics_jsonl_of_a_finished_run_is_rebuilt_for_train_and_selected_metrics(reference, tmp_path):
    store = tmp_path / "runs"
    shutil.copytree(reference, store / NAME)
    (store / NAME / "metrics.jsonl").write_text("")
    proc = cli(store, *FLAGS)
    assert proc.returncode == 0 and "epoch 3, tracked test clean acc" in proc.stdout, (proc.stdout, proc.stderr)
    assert "rebuilt metrics.jsonl" in proc.stderr and "Traceback" not in proc.stderr
    run = copy_of(reference, tmp_path / "again")
    (run.dir / "metrics.jsonl").write_text("")
    with pytest.warns(UserWarning, match="rebuilt metrics.jsonl"):   # no advice to resume a finished run
        assert runs.selected_metrics(run)["epoch"] == run.checkpoint_info("best")["epoch"]


def test_a_changed_metrics_jsonl_of_an_unfinished_run_is_rebuilt(reference, store):
    run = copy_of(reference, store)
    (run.dir / "DONE").unlink()
    path = run.dir / "metrics.jsonl"
    original = path.read_bytes()
    path.write_text(original.decode().replace('"epoch": 2', '"epoch": 7'))
    with pytest.warns(UserWarning, match=f"{path} does not hold the 3 rows of last.pt.*rebuilt metrics.jsonl"):
        assert list(run.metrics["epoch"]) == [1, 2, 3]
    assert path.read_bytes() == original


def _legacy(run: Run, *, keep_last: bool = True) -> None:
    """The run as written before digests: checkpoints without one, DONE holding only a time."""
    for which in ("best", "last"):
        path = run.dir / f"{which}.pt"
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt.pop(fileio.DIGEST_KEY)
        torch.save(ckpt, path)
    (run.dir / "DONE").write_text("2026-12-01T00:00:00Z\n")
    if not keep_last:
        (run.dir / "last.pt").unlink()


def test_a_legacy_run_still_loads_and_its_rows_are_checked_against_its_checkpoints(reference, store):
    run = copy_of(reference, store)
    _legacy(run)
    before = checksums(run.dir)
    assert len(run.metrics) == 3 and run.load_model("best") is not None
    assert checksums(run.dir) == before                                   # nothing written into it
    path = run.dir / "metrics.jsonl"
    original = path.read_bytes()
    path.write_text("".join(original.decode().splitlines(keepends=True)[:2]))
    with pytest.warns(UserWarning, match=f"{path} does not hold the 3 rows of last.pt.*rebuilt"):
        assert len(Run(run.config, run.dir).metrics) == 3
    assert path.read_bytes() == original


def test_a_legacy_run_without_last_pt_names_the_file_and_fixes_that_work(reference, store):
    run = copy_of(reference, store)
    _legacy(run, keep_last=False)                  # as the committed reference run: best.pt only
    assert len(run.metrics) == 3
    path = run.dir / "metrics.jsonl"
    good = path.read_bytes()
    path.write_text("".join(good.decode().splitlines(keepends=True)[:1]))
    before = checksums(run.dir)
    best_epoch = run.checkpoint_info("best")["epoch"]
    with pytest.raises(RunError, match=f"{path} does not hold the {best_epoch} rows of best.pt.*git checkout -- "
                                       f"{path}.*delete the run directory"):
        Run(run.config, run.dir).metrics
    assert checksums(run.dir) == before
    path.write_bytes(good)                         # restoring the file is the fix
    assert len(Run(run.config, run.dir).metrics) == 3


def test_the_committed_reference_run_was_trained_by_committed_code_and_is_not_written():
    """Issue 23 point 8: the committed reference run was trained from a clean tree, records the digest
    of its training code, finished with a DONE manifest, and reading it writes nothing."""
    before = checksums(runs.reference_root())
    run = runs.reference_run()
    assert run is not None and run.done_manifest() is not None
    sessions = run.env["sessions"]
    assert sessions and all(s["git"]["dirty"] is False and s["training_code"] for s in sessions)
    assert len(run.metrics) == run.config.epochs and run.load_model("best") is not None
    assert runs.selected_metrics(run)["epoch"] == run.checkpoint_info("best")["epoch"]
    assert run.tracking_attack and checksums(runs.reference_root()) == before


def test_a_damaged_done_manifest_names_itself_and_its_advice_works(reference, store):
    run = copy_of(reference, store)
    done = run.dir / "DONE"
    done.write_text(done.read_text().replace('"epoch": 3', '"epoch": 2'))
    with pytest.raises(fileio.CorruptFileError, match=f"{done} is damaged.*delete {done}"):
        run.metrics
    done.unlink()                                  # the next train_or_load finishes it again, no epoch retrained
    again = train_or_load(run.config, progress=False)
    assert again.done and again.done_manifest() is not None and len(again.metrics) == 3
    sessions = json.loads((run.dir / "env.json").read_text())["sessions"]
    assert sessions[-1]["resumed_from_epoch"] == 3


def test_a_swapped_config_json_advises_deleting_it_alone_and_that_works(reference, store):
    run = copy_of(reference, store)
    path = run.dir / "config.json"
    original = path.read_bytes()
    path.write_text(run.config.replace(method="trades", beta=6.0).to_json() + "\n")   # another run's config.json
    before = checksums(run.dir)
    with pytest.raises(ConfigMismatchError, match=f"{path} holds another config than the run's checkpoints.*Delete "
                                                  f"{path} alone"):
        train_or_load(run.config, progress=False)
    assert checksums(run.dir) == before
    path.unlink()
    with pytest.warns(UserWarning, match="config.json: it was missing; rebuilt from last.pt"):
        assert train_or_load(run.config, progress=False).done
    assert path.read_bytes() == original


# ----------------------------------------------------------------------------- 2. evaluation records
EVAL = RobustEvalSettings(autoattack=False, pgd_steps=2, batch_size=4)


def _eval_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = models.build_model("small_cnn").eval()
    x, y = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.arange(4)
    return model, robust.EvalImages(x, y, {"sha256": robust.images_fingerprint(x, y)})


def _evaluate(model, images, settings, directory, run: str) -> dict:
    return robust.evaluate(model, images, settings, directory / run, checkpoint={"run": run, "which": "best"},
                           device="cpu", progress=False)


def test_another_runs_evaluation_record_is_not_this_models_result(store):
    model_a, images = _eval_setup(0)
    model_b, _ = _eval_setup(1)
    rec_b = _evaluate(model_b, images, EVAL, store, "b")
    key_a = robust._key({"run": "a", "which": "best"}, images.description, EVAL)
    planted = robust.record_path(store / "a", key_a)
    fileio.make_dir(planted.parent)
    shutil.copy(robust.record_path(store / "b", rec_b["key"]), planted)
    with pytest.raises(robust.RecordMismatchError, match=f"{planted} holds another evaluation.*'checkpoint'.*"
                                                         f"Delete {planted} to recompute"):
        _evaluate(model_a, images, EVAL, store, "a")
    with pytest.warns(UserWarning, match=f"skipped: {planted}.*not the one its file name says"):
        assert [r["key"] for r in robust.load_records(store)] == [rec_b["key"]]
    planted.unlink()                               # the advice: recomputed for this model
    rec_a = _evaluate(model_a, images, EVAL, store, "a")
    assert rec_a["weights_sha256"] == robust.weights_digest(model_a) != rec_b["weights_sha256"]


def test_a_record_of_other_settings_or_weights_under_this_name_is_refused(store):
    model, images = _eval_setup(0)
    one = _evaluate(model, images, RobustEvalSettings(autoattack=False, pgd_steps=1, batch_size=4), store, "a")
    two_path = robust.record_path(store / "a", robust._key({"run": "a", "which": "best"}, images.description, EVAL))
    shutil.copy(robust.record_path(store / "a", one["key"]), two_path)
    with pytest.raises(robust.RecordMismatchError, match="'settings'"):
        _evaluate(model, images, EVAL, store, "a")
    two_path.unlink()
    _evaluate(model, images, EVAL, store, "a")
    retrained = models.build_model("small_cnn").eval()           # same run name and settings, other weights
    with pytest.raises(robust.RecordMismatchError, match="'weights_sha256'"):
        _evaluate(retrained, images, EVAL, store, "a")


def test_a_changed_value_in_an_evaluation_record_is_refused_and_skipped(store):
    model, images = _eval_setup(0)
    rec = _evaluate(model, images, EVAL, store, "a")
    path = robust.record_path(store / "a", rec["key"])
    text = path.read_text()
    path.write_text(text.replace('"n_images": 4', '"n_images": 5'))
    with pytest.raises(fileio.CorruptFileError, match=f"{path} is damaged.*delete {path} to recompute"):
        _evaluate(model, images, EVAL, store, "a")
    with pytest.warns(UserWarning, match=f"skipped: {path} is damaged"):
        assert robust.load_records(store) == []


def test_a_record_written_before_digests_is_still_used_when_it_matches(store):
    model, images = _eval_setup(0)
    rec = _evaluate(model, images, EVAL, store, "a")
    path = robust.record_path(store / "a", rec["key"])
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in (fileio.DIGEST_KEY, "weights_sha256")}
    path.write_text(json.dumps(old))
    assert _evaluate(model, images, EVAL, store, "a") == old


@pytest.mark.parametrize("run_name", ["../../evil", "/tmp/evil", ".hidden", ""])
def test_publish_writes_only_under_a_plain_run_name(store, run_name):
    rec = {"kind": "robust_eval", "complete": True, "key": "0123456789", "checkpoint": {"run": run_name}}
    with pytest.raises(fileio.UnsafeNameError, match="checkpoint.run=.*must be a plain folder name"):
        robust.publish(rec, store / "published")
    assert not (store / "published").exists() and not Path("/tmp/evil").exists()


# ----------------------------------------------------------------------------- 2. lens records
def _lens_record(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return lens.look(models.build_model("small_cnn"), LENS, source_identity={"kind": "test", "seed": seed},
                     name=name, progress=False)


def test_a_lens_record_of_another_model_is_not_adopted(store):
    mine, other = _lens_record("mine", 0), _lens_record("other", 1)
    for name in ("record.json", "energies.npz"):
        shutil.copy(other.directory / name, mine.directory / name)
    with pytest.raises(lens.LensError, match=f"{mine.directory / 'record.json'} holds the record of another model.*"
                                             f"delete {mine.directory / 'record.json'}"):
        _lens_record("mine", 0)
    (mine.directory / "record.json").unlink()      # the advice: rebuilt from the verified attack caches
    again = _lens_record("mine", 0)
    assert again.record["accuracy"] == mine.record["accuracy"] and not again.reused
    np.testing.assert_array_equal(again.frame.E_adv.to_numpy(), mine.frame.E_adv.to_numpy())


@pytest.mark.parametrize("damage", ["truncated", "changed", "another job's"])
def test_a_damaged_lens_npz_names_itself(store, damage):
    first = _lens_record("damaged", 0)
    path = first.directory / "energies.npz"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "changed":
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["E_adv"] = arrays["E_adv"] + 1.0
        np.savez(path, **arrays)
    else:
        shutil.copy(next(first.directory.glob("attack-*.npz")), path)
    with pytest.raises(lens.LensError, match=f"{path} .*; delete {first.directory / 'record.json'}"):
        _lens_record("damaged", 0)
    (first.directory / "record.json").unlink()
    assert _lens_record("damaged", 0).record["accuracy"] == first.record["accuracy"]


def test_a_damaged_attack_cache_is_recomputed_with_a_warning(store):
    first = _lens_record("cache", 0)
    cache = next(first.directory.glob("attack-pgd@*.npz"))
    (first.directory / "record.json").unlink()
    cache.write_bytes(b"<html>not an archive</html>")
    with pytest.warns(UserWarning, match=f"{cache} cannot be read as an .npz archive.*recomputed"):
        again = _lens_record("cache", 0)
    assert again.record["accuracy"] == first.record["accuracy"]


def test_a_full_disk_while_writing_a_lens_npz_names_the_file_and_leaves_no_temporary(store, monkeypatch):
    real = fileio._write_bytes

    def full(f, data, path):
        if path.suffix != ".npz":
            return real(f, data, path)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write_bytes", full)
    # the first .npz a look writes: the pictures of its first attack, before that attack's energies
    with pytest.raises(fileio.StoreWriteError, match=r"cannot write .*examples-pgd@8.00.npz: No space left"):
        _lens_record("full", 0)
    assert not [p for p in (store / "lens" / "full").iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- 2. offline data digests
def _data_folder(tmp_path: Path, test_file: str = "test_first1017.npz", sums: bool = True) -> Path:
    """A data folder of links to the shared files (test_file in the test file's place)."""
    shared = data.offline_dir()
    folder = tmp_path / "data"
    (folder / "cifar10").mkdir(parents=True)
    (folder / "cifar10" / "train.npz").symlink_to(shared / "cifar10" / "train.npz")
    (folder / "cifar10" / "test_first1017.npz").symlink_to(shared / "cifar10" / test_file)
    if sums:
        shutil.copy(shared / "SHA256SUMS", folder / "SHA256SUMS")
    return folder


def test_the_training_file_in_the_test_files_place_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_DATA", str(_data_folder(tmp_path, "train.npz")))
    path = tmp_path / "data" / "cifar10" / "test_first1017.npz"
    with pytest.raises(data.CorruptDataError, match=f"{path} is not a valid offline data file: its sha256 differs "
                                                    "from the one in .*SHA256SUMS.*sha256sum -c SHA256SUMS"):
        data.load_dataset("cifar10", "test", n=8)
    sums = tmp_path / "data" / "SHA256SUMS"
    sums.unlink()                                  # no published digests: the count still gives it away
    with pytest.raises(data.CorruptDataError, match="holds 50,000 images, more than the 10,000 of the cifar10 test"):
        data.load_dataset("cifar10", "test", n=8)


def test_a_data_file_the_published_digests_do_not_list_is_refused(tmp_path, monkeypatch):
    folder = _data_folder(tmp_path)
    sums = folder / "SHA256SUMS"
    published = sums.read_bytes()
    sums.write_text("".join(line + "\n" for line in published.decode().splitlines() if "test_first1017" not in line))
    monkeypatch.setenv("ENERGY_DATA", str(folder))
    with pytest.raises(data.CorruptDataError, match=f"{sums} does not list it.*sha256sum -c SHA256SUMS"):
        data.load_dataset("cifar10", "test", n=8)
    sums.write_bytes(published)                    # the published list: the same file is read
    assert len(data.load_dataset("cifar10", "test", n=8)) == 8


# ----------------------------------------------------------------------------- 3. names that become paths
@pytest.mark.parametrize("name", ["../../x", "/tmp/lens-escape", "a/b", "..", ".hidden"])
def test_a_lens_name_is_one_plain_folder_name(store, name):
    with pytest.raises(fileio.UnsafeNameError, match="name=.*must be a plain folder name"):
        _lens_record(name, 0)
    assert not (store / "lens").exists() or not any((store / "lens").iterdir())
    assert not Path("/tmp/lens-escape").exists()


def test_a_path_traversing_lens_name_on_the_command_line_is_one_line(tmp_path):
    env = {**os.environ, "ENERGY_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "energy_lib", "lens", "--standard", "--profile", "smoke",
                           "--name", "../../escaped", "--device", "cpu", "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    one_line(proc, 2, "error: name='../../escaped' must be a plain folder name")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "runs" / "lens").exists()


def test_a_quote_in_make_lens_model_runs_nothing_and_reaches_the_report_intact(tmp_path):
    stamp, seen, touched = tmp_path / "stamp", tmp_path / "seen", tmp_path / "TOUCHED"
    stamp.touch()
    stub = tmp_path / "python"
    stub.write_text(f'#!/bin/sh\nprintf "%s|%s" "$LENS_MODEL" "$LENS_PARAMS" > {seen}\n')
    stub.chmod(0o755)
    model = f"x'y\"; touch {touched}; $(shell touch {touched}) `touch {touched}`"
    params = f"-p n_images 8 $(shell touch {touched})"
    for dry in (["-n"], []):
        proc = subprocess.run(["make", *dry, "lens", f"MODEL={model}", f"PARAMS={params}", f"STAMP={stamp}",
                               f"PY={stub}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not touched.exists()
    assert seen.read_text() == f"{model}|{params}"   # passed on as text, never evaluated


def test_the_lens_report_splits_params_without_evaluating_them(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import lens_report

    steps = lens_report.commands("run:a b'c", "-p n_images 8 -p attacks 'pgd, cw' $(touch x)", tmp_path, "smoke")
    assert steps[0][5:] == ["-r", "model", "run:a b'c", "-r", "profile", "smoke", "-p", "n_images", "8",
                            "-p", "attacks", "pgd, cw", "$(touch", "x)"]   # words, never evaluated
    assert lens_report.report_name("run:a b'c") == "run_a_b_c"
    assert lens_report.main({"LENS_MODEL": "standard", "LENS_PARAMS": "-p 'unclosed"}) == 2


# ----------------------------------------------------------------------------- 4. smaller cases
def test_a_second_ctrl_c_while_reporting_is_ignored(tmp_path):
    """The first Ctrl-C interrupts; a second one while the command says what it kept, or while the
    process exits, changes nothing: one line, exit 130."""
    code = ("import os, signal, sys, time\nfrom energy_lib.__main__ import guarded\n"
            "def command(args):\n"
            "    try:\n        os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
            "    except KeyboardInterrupt:\n"
            "        os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2)   # Ctrl-C again, while reporting\n"
            "        raise KeyboardInterrupt('kept epoch 1') from None\n"
            "rc = guarded(command, None)\nos.kill(os.getpid(), signal.SIGINT); time.sleep(0.2)   # and while exiting\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    one_line(proc, 130, "interrupted: kept epoch 1")


@pytest.mark.parametrize("flags,needle", [
    (["--seed", str(2**70)], "seed=1180591620717411303424 must be in [0, 2**32)"),
    (["--stop-after", "-1"], "--stop-after: -1 must be at least 1"),
    (["--stop-after", "0"], "--stop-after: 0 must be at least 1"),
    (["--step-size", "0"], "step_size=0.0 must be positive")])
def test_more_bad_flags_are_one_line(tmp_path, flags, needle):
    proc = cli(tmp_path / "runs", *FLAGS, *flags)
    one_line(proc, 2, "error: ", needle)
    assert not (tmp_path / "runs").exists()


def test_a_malformed_fault_hook_is_one_line(tmp_path):
    proc = cli(tmp_path / "runs", *FLAGS, fault="garbage")
    one_line(proc, 2, "ENERGY_FAULT_INJECT='garbage' is not <kill|stop>:<file name>:<n >= 1>", "unset")


def test_lens_settings_that_cannot_work_are_config_errors(store):
    with pytest.raises(ConfigError, match="step_size=0.0 must be positive"):
        LensConfig.from_profile("smoke", step_size=0)
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="outputs \\(10,\\) logits per image but cifar100 has 100 classes"):
        lens.look(models.build_model("small_cnn"), LENS.replace(dataset="cifar100"),
                  source_identity={"kind": "test"}, progress=False)
    broken = models.build_model("small_cnn")
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    with pytest.raises(lens.LensError, match="non-finite logits"):
        lens.look(broken, LENS, source_identity={"kind": "nan"}, progress=False)


def test_a_lens_on_a_run_of_another_dataset_names_the_dataset(reference, store):
    run = copy_of(reference, store)
    with pytest.raises(ConfigError, match=f"run {run.dir} was trained on cifar10, not cifar100.*--dataset cifar10"):
        lens.ModelSource("run", str(run.dir), dataset="cifar100").load()


def test_a_notebook_image_count_that_is_not_a_positive_number_says_so():
    with pytest.raises(ConfigError, match="n='abc' must be a whole number of images"):
        data.load_dataset("cifar10", "test", n="abc")
    with pytest.raises(ConfigError, match="n=-5 must be a positive number of images"):
        data.load_dataset("cifar10", "test", n=-5)


def test_a_second_make_book_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    sys.path.insert(0, str(ROOT / "tools"))
    import book

    from energy_lib import book_runs

    def locked(*args, **kwargs):
        raise fileio.RunLockedError("/runs/x is in use by process 123 (lock file /runs/x/LOCK); wait for it")

    monkeypatch.setattr(book_runs, "train_all", locked)
    assert book.main(["execute", "--profile", "smoke", "--out", str(tmp_path / "executed"), "--no-progress",
                      "-p", "device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err == "book: /runs/x is in use by process 123 (lock file /runs/x/LOCK); wait for it\n"


def test_size_default_exits_2_on_a_corrupt_record(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "tools"))
    import size_default

    record = tmp_path / "sizing.json"
    record.write_text("{not json")
    assert size_default.main(["--record", str(record), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {record} is not valid JSON") and err.count("\n") == 1


def test_ctrl_c_before_the_first_epoch_is_kept_says_so(tmp_path):
    """Neither the library's line nor the command line's speaks of 'the checkpoint of epoch 0'."""
    proc = cli(tmp_path / "runs", *FLAGS, fault="stop:last.pt:1", popen=True)
    wait_stopped(proc)
    os.kill(proc.pid, signal.SIGINT)      # Ctrl-C while epoch 1's last.pt is half written
    os.kill(proc.pid, signal.SIGCONT)
    stdout, stderr = proc.communicate()
    one_line(SimpleNamespace(returncode=proc.returncode, stderr=stderr), 130, "no epoch was completed")
    assert "no epoch was completed" in stdout and "epoch 0" not in stdout + stderr
    assert not (tmp_path / "runs" / NAME / "last.pt").exists()


def test_a_reader_never_rewrites_the_records_of_a_run_another_process_trains(reference, store):
    """Between a trainer's last.pt and its jsonl writes the rows differ; a reader uses last.pt's rows
    and leaves the file to the live owner of the lock."""
    import socket

    run = copy_of(reference, store)
    (run.dir / "DONE").unlink()
    path = run.dir / "metrics.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))   # one epoch behind last.pt
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run.dir / fileio.LOCK_NAME).write_text(json.dumps({"pid": trainer.pid, "host": socket.gethostname()}))
        before = checksums(run.dir)
        with pytest.warns(UserWarning, match=f"{path} does not hold the 3 rows of last.pt.*left to the process"):
            assert list(run.metrics["epoch"]) == [1, 2, 3]
        assert checksums(run.dir) == before
    finally:
        trainer.kill()
        trainer.wait()
