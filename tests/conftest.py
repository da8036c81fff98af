"""Shared pytest setup: tests never write to the repository's runs/ store."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set at import time, before any test (or energy_lib import) reads them.
# A temporary run store, so no test touches runs/ (the book's cache of finished runs).
_RUNS = tempfile.mkdtemp(prefix="energy-runs-test-")
atexit.register(shutil.rmtree, _RUNS, ignore_errors=True)
os.environ["ENERGY_RUNS"] = _RUNS
# Same default as the Makefile when pytest is called directly.
if not os.environ.get("ENERGY_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["ENERGY_DATA"] = str((ROOT.parent / "shared" / "data").resolve())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """An empty run store that $ENERGY_RUNS points at (created by whatever writes to it)."""
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def interrupt_autoattack(monkeypatch):
    """`arm(n)` makes the n-th AutoAttack chunk raise KeyboardInterrupt (an interrupted
    evaluation) and returns `disarm()`, which restores the real attack for the resume."""
    from energy_lib import autoattack

    real = autoattack._adversary

    def arm(n: int):
        calls = []

        def adversary(*args, **kwargs):
            calls.append(args[2])
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(autoattack, "_adversary", adversary)
        return lambda: monkeypatch.setattr(autoattack, "_adversary", real)

    return arm
