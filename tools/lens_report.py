"""`make lens`: one model through the energy lens as an HTML report (tools/lens_report.ipynb).

The Makefile passes the user's values in the environment (`LENS_MODEL`, `LENS_PARAMS`, `LENS_OUT_DIR`,
`LENS_PROFILE`), never inside shell text, so no value (a quote, `$(...)`, `;`) can break the recipe or
run a command, not even under `make -n`. Here they become one argument list: PARAMS is split like a
shell would split words (`shlex.split`, quotes honoured) but nothing is evaluated; papermill and
nbconvert run without a shell.

    LENS_MODEL=run:runs/<dir> LENS_PARAMS="-p n_images 1000" python tools/lens_report.py
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "tools" / "lens_report.ipynb"
USAGE = ("name the model, e.g. make lens MODEL=robustbench:Zhang2019Theoretically (or run:<run dir>, "
         "resnet18:<file.pt>, standard)")


def report_name(model: str) -> str:
    """The report's file name from the model spec: safe characters only, at most 80."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model)[-80:] or "model"


def commands(model: str, params: str, out: Path, profile: str) -> list[list[str]]:
    """papermill, then nbconvert: argument lists (no shell)."""
    try:
        extra = shlex.split(params)
    except ValueError as err:   # e.g. an unclosed quote
        raise ValueError(f"PARAMS={params!r} cannot be split into arguments ({err}); write e.g. "
                         "PARAMS=\"-p n_images 1000\"") from None
    executed = Path(out) / f"{report_name(model)}.ipynb"
    return [[sys.executable, "-m", "papermill", str(NOTEBOOK), str(executed), "-r", "model", model,
             "-r", "profile", profile, *extra],   # -r: kept as strings, whatever they look like
            [sys.executable, "-m", "nbconvert", "--to", "html", str(executed)]]


def main(environ=os.environ) -> int:
    model = environ.get("LENS_MODEL", "")
    if not model.strip():
        print(f"error: {USAGE}", file=sys.stderr)
        return 2
    out = Path(environ.get("LENS_OUT_DIR") or "_build/lens")
    try:
        steps = commands(model, environ.get("LENS_PARAMS", ""), out, environ.get("LENS_PROFILE") or "default")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for cmd in steps:
        print(" ".join(shlex.quote(c) for c in cmd), flush=True)
        done = subprocess.run(cmd, cwd=ROOT)
        if done.returncode != 0:
            return done.returncode
    print(f"open {out / report_name(model)}.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
