"""The book pipeline: execute chapters with papermill, stage, build the HTML strictly.

`_toc.yml` is the one list of chapters. Sources are never executed in place:

    execute  book/X.ipynb  --papermill -p profile P-->  <build>/executed/book/X.ipynb
             (+ <build>/executed/execution.json: each chapter's status, profile, commit, seconds)
    stage    _config.yml, _toc.yml, book/ (non-notebook files) + executed notebooks -> <build>/src
             (+ generated pages, e.g. book/build_info.md: commit, profile, date of this build)
    build    jupyter-book build <build>/src --path-output <build>/..  (HTML in <build>/html)
             (+ <build>/build_record.json: chapters' status, warnings, digest of the HTML;
              tools/publish.py publishes only a build whose record is clean)

Usage (the Makefile calls these):
    python tools/book.py chapters
    python tools/book.py pages
    python tools/book.py execute [--profile smoke] [--only book/01_x.ipynb] [-p name value ...]
    python tools/book.py build [--strict]
    python tools/book.py record-time --kind fresh|rebuild --wall-seconds S   (energy_lib.budget)
    python tools/book.py setup-cells   (write each chapter's hidden first cell from `SETUP_CELL`)
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from check_html import LISTED_MACHINERY  # the class of the box that the HTML check lets list warnings

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
STRICT_FLAGS = ["-W", "-n", "--keep-going"]
EXECUTION_RECORD = "execution.json"    # in the executed folder, written by `execute`
RUNS_RECORD = "runs.json"              # in the executed folder: the runs trained before the chapters
BUILD_RECORD = "build_record.json"     # beside the html folder, written by `build`
STAGE_INFO = "build_info.json"         # in the staging folder: what `stage` built from
# Pages that `stage` writes into the staging copy (never into the repository); `_toc.yml` may list
# them although no source file exists. book/paper_spec.md is the repository's PAPER.md (the technical
# spec the chapters cite as "PAPER.md x.y") with an anchor per section (book/_ext/book_html.py).
GENERATED_PAGES = {"book/build_info.md", "book/paper_spec.md"}
# The records' {"commit", "dirty"} (energy_lib.provenance.git_state) over the whole tracked tree, run
# store included: the pages show the tracked records of runs/ (reference run, sizing, bench), so a
# changed one makes the build dirty.
GIT_EXCLUDE = ()
# The front page collects the reproduction records the chapters write: it is executed last.
RUN_LAST = ("book/summary.ipynb",)
# the chapters that train runs (energy_lib.book_runs): a whole-book execution trains theirs first
TRAINING_CHAPTERS = ("book/02_at_phases.ipynb", "book/03_trades_ebm.ipynb", "book/04_weat_der.ipynb")


class BookError(RuntimeError):
    """A pipeline step failed; the message names the chapter/file and the fix."""


# ----------------------------------------------------------------------------- chapters
def _toc_entries(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                out.append(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                out.extend(_toc_entries(child))
    return out


def chapters(root: Path = ROOT, require_all: bool = True) -> list[Path]:
    """Chapter source files listed in `<root>/_toc.yml`, in order, relative to `root`.

    A listed chapter that does not exist is an error (nothing is skipped silently) unless
    `require_all` is false (executing one chapter while others are still being written)."""
    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        raise BookError(f"{toc_path} not found: the chapter list lives there")
    toc = yaml.safe_load(toc_path.read_text())
    found, missing = [], []
    for entry in _toc_entries(toc):
        candidates = [entry] if Path(entry).suffix in (".md", ".ipynb") else [entry + ".ipynb", entry + ".md"]
        hits = [c for c in candidates if (root / c).is_file()]
        generated = [c for c in candidates if c in GENERATED_PAGES]
        if hits or generated:
            found.append(Path((hits or generated)[0]))
        else:
            missing.append(entry)
    if missing and require_all:
        raise BookError(f"_toc.yml lists chapter(s) with no source file: {missing}; "
                        "create them or remove them from _toc.yml")
    return found


def notebooks(root: Path = ROOT, require_all: bool = True) -> list[Path]:
    return [c for c in chapters(root, require_all) if c.suffix == ".ipynb"]


# ----------------------------------------------------------------------------- provenance
def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_state(root: Path = ROOT) -> dict:
    """`energy_lib.provenance.git_state` of `root` with the book's scope (`GIT_EXCLUDE`); imported
    here, not at the top, so that tools/publish.py (which imports this file) needs no energy_lib."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from energy_lib import provenance

    return provenance.git_state(root, exclude=GIT_EXCLUDE)


def read_execution_record(executed: Path) -> dict:
    """`{chapter: {status, profile, parameters, seconds, commit, dirty, finished_utc[, error]}}`."""
    path = Path(executed) / EXECUTION_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def _write_record(path: Path, record: dict) -> None:
    """Atomically: an interrupted build never leaves half a record."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _record_execution(executed: Path, chapter: str, entry: dict) -> None:
    record = read_execution_record(executed)
    record[chapter] = entry
    _write_record(Path(executed) / EXECUTION_RECORD, record)


# ----------------------------------------------------------------------------- execute
def _parse_value(text: str):
    """papermill's `-p` typing: numbers, booleans and None are parsed; everything else is a str."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, type(None))) else text


def tag_injected_cell(nb_path: Path) -> None:
    """Hide papermill's `injected-parameters` cell in the built book (it stays in the notebook)."""
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def error_outputs(nb_path: Path) -> list[str]:
    """Descriptions of error outputs and stderr tracebacks in an executed notebook."""
    nb = json.loads(nb_path.read_text())
    bad = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                bad.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                if "Traceback (most recent call last)" in text:
                    bad.append(f"cell {i}: traceback on stderr: {text[-300:]}")
    return bad


def read_runs_record(executed: Path) -> dict:
    """`{status, profile, commit, dirty, seconds, jobs, threads, runs: {label: seconds}[, error]}` of
    the runs trained before the chapters, or {} when this build trained none that way."""
    path = Path(executed) / RUNS_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def train_runs(profile: str, params: dict | None, out_dir: Path, jobs: int | None, log=print,
               progress: bool = False) -> dict:
    """Train chapters 2-4's missing runs side by side (energy_lib.book_runs) before the chapters
    run, on a CPU only (a GPU trains one run at a time, inside the chapters). Recorded in
    `runs.json` beside execution.json, so the budget record counts it."""
    sys.path.insert(0, str(ROOT))
    from energy_lib import book_runs
    from energy_lib.config import TrainConfig, resolve_device

    configs = book_runs.chapter_configs(profile, params)
    device = resolve_device(TrainConfig.from_namespace({**(params or {}), "profile": profile}).device)
    if device.type != "cpu":
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    entry = {"status": "running", "profile": profile, "started_utc": utc_now(), **git_state(ROOT)}
    _write_record(out_dir / RUNS_RECORD, entry)
    start = time.perf_counter()
    try:
        report = book_runs.train_all(configs, jobs=jobs, progress=progress, log=log)
    except BaseException as err:
        entry.update(status="failed", seconds=round(time.perf_counter() - start, 1), finished_utc=utc_now(),
                     error=f"{type(err).__name__}: {err}")
        _write_record(out_dir / RUNS_RECORD, entry)
        raise
    entry.update(status="ok", seconds=round(time.perf_counter() - start, 1), runs=report.seconds,
                 jobs=report.jobs, threads=report.threads, finished_utc=utc_now())
    _write_record(out_dir / RUNS_RECORD, entry)
    return entry


def execute(profile: str, params: dict | None = None, only: list[str] | None = None,
            root: Path = ROOT, out_dir: Path | None = None, log=print, progress: bool = False,
            train_jobs: int | None = None) -> dict[str, float]:
    """Execute notebook chapters with papermill into `out_dir` (default `_build/executed`).

    `progress` shows papermill's per-cell progress bar (on stderr) under each chapter's line.
    A whole-book execution on a CPU first trains chapters 2-4's missing runs in `train_jobs`
    parallel processes (None: one per core; 0: none, the chapters train them one at a time).

    Runs with cwd = repository root (as `papermill book/X.ipynb out.ipynb` from the README does),
    with the repository on PYTHONPATH so the kernel imports `energy_lib`. Returns seconds per chapter.
    """
    import papermill

    out_dir = Path(out_dir or BUILD / "executed")
    nbs = notebooks(root, require_all=not only)
    if only:
        wanted = [Path(o) for o in only]
        unknown = [str(w) for w in wanted if w not in nbs]
        if unknown:
            raise BookError(f"{unknown}: not a notebook chapter listed in _toc.yml (or its file is missing); available: {[str(n) for n in nbs]}")
        nbs = [n for n in nbs if n in wanted]
    # pages that read the other chapters' records run after them, wherever _toc.yml shows them
    nbs = [n for n in nbs if str(n) not in RUN_LAST] + [n for n in nbs if str(n) in RUN_LAST]
    parameters = {"profile": profile, **(params or {})}
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:  # the kernel inherits this environment and imports energy_lib
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + paths)
    if not only:   # a whole-book execution: only this build's runs record may be counted
        (out_dir / RUNS_RECORD).unlink(missing_ok=True)
        if train_jobs != 0 and any(str(nb) in TRAINING_CHAPTERS for nb in nbs):
            train_runs(profile, params, out_dir, train_jobs, log=log, progress=progress)
    timings = {}
    for i, nb in enumerate(nbs, 1):
        target = out_dir / nb
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"[book] ({i}/{len(nbs)}) executing {nb} (profile={profile}) -> {target}", flush=True)
        # Recorded before running, so a chapter interrupted half-way is not taken as executed.
        entry = {"status": "running", "profile": profile, "parameters": parameters,
                 **git_state(root), "started_utc": utc_now()}
        _record_execution(out_dir, str(nb), entry)
        start = time.perf_counter()
        error = None
        try:
            papermill.execute_notebook(str(root / nb), str(target), parameters=parameters,
                                       kernel_name="python3", cwd=str(root), progress_bar=progress)
        except papermill.PapermillExecutionError as err:
            error = (f"{nb} failed in the cell executed as [{err.exec_count}] ({err.ename}: {err.evalue}); "
                     f"the executed copy with the traceback is {target}")
        seconds = round(time.perf_counter() - start, 1)
        if error is None:
            tag_injected_cell(target)
            bad = error_outputs(target)
            if bad:
                error = f"{nb} has error output(s): {bad}"
        entry.update(status="failed" if error else "ok", seconds=seconds, finished_utc=utc_now())
        if error:
            entry["error"] = error
        _record_execution(out_dir, str(nb), entry)
        if error:
            raise BookError(error)
        timings[str(nb)] = seconds
        log(f"[book] {nb} done in {seconds} s", flush=True)
    return timings


# ----------------------------------------------------------------------------- stage + build
def stage(root: Path = ROOT, executed: Path | None = None, src: Path | None = None) -> Path:
    """Copy the book sources to `src`, replacing each notebook with its executed copy."""
    executed = Path(executed or BUILD / "executed")
    src = Path(src or BUILD / "src")
    nbs = notebooks(root)
    missing = [str(n) for n in nbs if not (executed / n).is_file()]
    if missing:
        raise BookError(f"no executed copy of {missing} in {executed}: run "
                        "`make book` (or `python tools/book.py execute`) first")
    if not (root / "book" / "_assets" / "vendor" / "VERSIONS.json").exists():
        raise BookError("book/_assets/vendor is missing: run `python tools/fetch_web_assets.py` "
                        "(the Makefile does it) so MathJax and the widget manager are served locally")
    clash = [p for p in sorted(GENERATED_PAGES) if (root / p).exists()]
    if clash:
        raise BookError(f"{clash} is written by the build (generated page): delete it from the sources")
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, src / name)
    stage_config(src / "_config.yml")
    # every non-notebook file under book/ (markdown, images, bib, vendored JS)
    shutil.copytree(root / "book", src / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__"))
    hidden = {}
    for nb in nbs:
        shutil.copy2(executed / nb, src / nb)
        hidden[str(nb)] = static_copy(src / nb)
    execution = read_execution_record(executed)
    info = {"build_id": uuid.uuid4().hex, "built_utc": utc_now(), **git_state(root),
            "python": platform.python_version(), "execution": execution,
            "chapters": {str(nb): execution.get(str(nb), {"status": "unknown"}) for nb in nbs}}
    info["profile"] = book_profile(info["chapters"])
    info["warnings_hidden"] = {nb: h["warnings"] for nb, h in hidden.items() if h["warnings"]}
    (src / STAGE_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    for page in chapters(root):
        if str(page) == "book/build_info.md":
            (src / page).write_text(build_info_page(info))
        elif str(page) == "book/paper_spec.md":
            (src / page).write_text(paper_spec_page(root))
    return src


def _book_html():
    """book/_ext/book_html.py (the book's Sphinx extension), which owns the spec page's anchors."""
    ext = str(ROOT / "book" / "_ext")
    if ext not in sys.path:
        sys.path.insert(0, ext)
    import book_html

    return book_html


def paper_spec_page(root: Path = ROOT) -> str:
    """The generated page of the spec: `<root>/PAPER.md` with an anchor per numbered section."""
    path = Path(root) / "PAPER.md"
    if not path.is_file():
        raise BookError(f"{path} not found: the page book/paper_spec (listed in _toc.yml) is rendered from the "
                        "repository's copy of the technical spec; restore it from git")
    return _book_html().spec_page(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the launch set-up cell
SETUP_TAG = "setup"   # with remove-cell: hidden in the book
# Every notebook chapter's first cell (before `parameters`), for a chapter opened with a launch button:
# outside a checkout it clones the repository (`repository.url` of _config.yml), installs the pinned
# requirements (keeping a torch that is already there, as on Colab) and works from the clone, so that
# the committed runs are found; in a checkout it only works from the repository root.
SETUP_CELL = """# Set-up (hidden in the book). Opened outside a checkout of the repository (Colab, a downloaded
# notebook), this cell clones the repository, installs its pinned requirements and works from the
# clone, so that the committed runs under runs/ are found and the figures need no training.
# In a checkout (make book, Binder) it only moves to the repository root.
import os, subprocess, sys
from pathlib import Path

REPOSITORY = "{url}"  # _config.yml: repository.url
root = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "energy_lib" / "__init__.py").is_file()), None)
if root is None:
    root = Path(os.environ.get("ENERGY_CHECKOUT", Path.home() / "energy-lens-companion"))
    if not (root / "energy_lib").is_dir():
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, str(root)], check=True)
    keep = {{"torch", "torchvision"}} if subprocess.run([sys.executable, "-c", "import torch"]).returncode == 0 else set()
    wanted = [line.split("#")[0].strip() for line in (root / "requirements.txt").read_text().splitlines()]
    wanted = [w for w in wanted if w and w.split("==")[0] not in keep]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *wanted], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-r", str(root / "requirements-nodeps.txt")],
                   check=True)
os.chdir(root)
sys.path.insert(0, str(root))"""


def repository_url(root: Path = ROOT) -> str:
    """`repository.url` of `<root>/_config.yml` (the one setting; empty when not set)."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text()) or {}
    return ((config.get("repository") or {}).get("url") or "").strip()


def setup_cell_source(url: str) -> str:
    return SETUP_CELL.format(url=url)


def write_setup_cells(root: Path = ROOT) -> list[str]:
    """Make `SETUP_CELL` (with the configured URL) the first cell of every notebook chapter; returns
    the chapters that changed. Sources only: outputs stay empty."""
    import nbformat

    source, changed = setup_cell_source(repository_url(root)), []
    for nb_path in notebooks(root):
        nb = nbformat.read(root / nb_path, as_version=4)
        first = nb.cells[0] if nb.cells else None
        if first is not None and SETUP_TAG in first.metadata.get("tags", []):
            if first.source == source:
                continue
            first.source = source
        else:
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata["tags"] = [SETUP_TAG, "remove-cell"]
            nb.cells.insert(0, cell)
        nbformat.write(nb, root / nb_path)
        changed.append(str(nb_path))
    return changed


def stage_config(path: Path) -> None:
    """The staged `_config.yml` with the repository URL (`repository.url`, the one setting) as the
    pages' substitution {{ repository_link }} (a link; "not set" without a URL)."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    url = ((config.get("repository") or {}).get("url") or "").strip()
    link = f"[{url.split('://', 1)[-1]}]({url})" if url else "(not set: `repository.url` in `_config.yml`)"
    parse = config.setdefault("parse", {}) or {}
    config["parse"] = parse
    parse.setdefault("myst_substitutions", {})["repository_link"] = link
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/[^\s/:'\"]+)+/([^\s/:'\"]+)")   # -> its last part, the file name
_WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: |^\s+\S")   # "file.py:12: XWarning: ..." and its source line


def drop_widgets(nb_path: Path) -> int:
    """Remove ipywidgets from a staged notebook: without a kernel a widget cannot recompute (and a
    progress bar is machinery), so its outputs are dropped and the saved widget state too, so that the
    page loads no widget library. Chapters say how to get the live version (a kernel: Colab, Binder, a
    local run). Returns how many outputs were dropped."""
    return static_copy(nb_path)["widgets"]


def static_copy(nb_path: Path) -> dict:
    """Make a staged notebook what a reader of the static book gets: widget outputs and state dropped
    (`drop_widgets`) and stderr outputs made only of Python warnings dropped (machinery, not prose;
    returned so that the Build information page lists them). {"widgets": n, "warnings": [text]}."""
    nb = json.loads(Path(nb_path).read_text())
    dropped, warnings = 0, []
    for cell in nb.get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = []
        for out in outputs:
            if WIDGET_VIEW in (out.get("data") or {}):
                dropped += 1
                continue
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                lines = [line for line in text.splitlines() if line.strip()]
                if lines and all(_WARNING_LINE.search(line) for line in lines) and "Warning: " in text:
                    # "file.py:12: XWarning: message", every path by its file name only (no path of this machine)
                    warnings += [_ABSOLUTE_PATH.sub(r"\2", line) for line in lines if not line.startswith((" ", "\t"))]
                    continue
            kept.append(out)
        cell["outputs"] = kept
    if dropped or warnings or "widgets" in nb.get("metadata", {}):
        nb.get("metadata", {}).pop("widgets", None)
        Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return {"widgets": dropped, "warnings": warnings}


def book_profile(chapters: dict) -> str:
    """The profile the notebook chapters ran with ("smoke + default" if they differ)."""
    profiles = sorted({c.get("profile") or "unknown" for c in chapters.values()})
    return " + ".join(profiles) or "none (no notebook chapters)"


def _short(commit: str | None) -> str:
    return f"`{commit[:12]}`" if commit else "unknown (not a git checkout)"


def _tree(dirty: bool | None) -> str:
    return {True: "**dirty**: uncommitted changes, so this book may differ from the commit",
            False: "clean", None: "unknown"}[dirty]


def build_info_page(info: dict) -> str:
    """Markdown of the generated "Build information" page (book/build_info.md in the staging copy)."""
    built = info["built_utc"].replace("T", " ").replace("Z", " UTC")
    lines = [
        "# Build information", "",
        "This page is written by `tools/book.py` each time the book is built: it says which source "
        "the numbers in this book were computed from. To rebuild the same book, check out the commit "
        "and run `make book PROFILE=<profile>` (see the README).", "",
        "| item | value |", "|---|---|",
        f"| built (UTC) | {built} |",
        f"| commit | {'`' + info['commit'] + '`' if info['commit'] else _short(None)} |",
        f"| working tree | {_tree(info['dirty'])} |",
        f"| profile | `{info['profile']}` |",
        f"| Python | {info['python']} |",
        f"| build id | `{info['build_id']}` |", "",
        "## Chapters", "",
        "Each notebook chapter was executed by papermill before the build; a chapter executed from "
        "another commit than the build says so here.", "",
        "| chapter | status | profile | parameters | executed (UTC) | commit | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for nb, c in info["chapters"].items():
        params = ", ".join(f"`{k}={v!r}`".replace("|", "\\|")  # a pipe would end the table cell
                           for k, v in sorted((c.get("parameters") or {}).items())
                           if k != "profile") or "profile's values"
        when = (c.get("finished_utc") or "?").replace("T", " ").replace("Z", "")
        commit = _short(c.get("commit")) + (" (dirty)" if c.get("dirty") else "")
        minutes = f"{c['seconds'] / 60:.1f}" if isinstance(c.get("seconds"), (int, float)) else "?"
        lines.append(f"| `{nb}` | {c.get('status', 'unknown')} | `{c.get('profile', '?')}` | {params} "
                     f"| {when} | {commit} | {minutes} |")
    if info.get("warnings_hidden"):
        lines += ["", "## Warnings the chapters printed", "",
                  "Python warnings are machinery, not part of a chapter's page; these were printed while the "
                  "chapters ran.", ""]
        for nb, texts in info["warnings_hidden"].items():
            # in a `listed-machinery` box: the one place a reader is shown warnings on purpose, which the
            # HTML check (tools/check_html.py) leaves out of its "no Python warning in the text" rule
            lines += [f"`{nb}`:", "", f"````{{container}} {LISTED_MACHINERY}", "```text", *texts, "```", "````", ""]
    return "\n".join(lines) + "\n"


# Sphinx/docutils problem lines: "file:12: WARNING: ...", "ERROR: ...", "CRITICAL: ..."
_PROBLEM = re.compile(r"(^|: )(WARNING|ERROR|SEVERE|CRITICAL): ")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Sphinx colours its log even when it is not a terminal


def build_warnings(output: str) -> list[str]:
    """The warning/error lines of a jupyter-book (Sphinx) build log."""
    lines = (_COLOUR.sub("", line).strip() for line in output.splitlines())
    return [line for line in lines if _PROBLEM.search(line)]


def tree_digest(directory: Path) -> str:
    """sha256 over every file's relative path and bytes: ties a build record to its HTML."""
    h = hashlib.sha256()
    directory = Path(directory)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + h.hexdigest()


def build(src: Path, out: Path, strict: bool = True, log=print) -> Path:
    """`jupyter-book build src`, HTML into `out/_build/html`. Raises on a non-zero exit.

    Writes `out/_build/build_record.json` (also when the build fails): the staged chapters' execution
    status, the build's warnings and a digest of the HTML, which tools/publish.py checks."""
    record_path = out / "_build" / BUILD_RECORD
    record_path.unlink(missing_ok=True)  # a failed build must not leave the previous record behind
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--path-output", str(out),
           "--builder", "html", "--all"] + (STRICT_FLAGS if strict else [])
    log("[book] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    html = out / "_build" / "html"
    stage_info = src / STAGE_INFO
    record = json.loads(stage_info.read_text()) if stage_info.exists() else {}
    record.update(strict=strict, flags=STRICT_FLAGS if strict else [], returncode=proc.returncode,
                  warnings=build_warnings(proc.stdout + "\n" + proc.stderr), finished_utc=utc_now(),
                  pages=[str(p) for p in html_pages(src)],
                  html_digest=tree_digest(html) if html.is_dir() else None)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); "
                        f"output:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return html


def html_pages(root: Path = ROOT) -> list[Path]:
    """HTML page (relative to the html folder) of every chapter, in toc order."""
    return [c.with_suffix(".html") for c in chapters(root)]


# ----------------------------------------------------------------------------- CLI
def record_time(kind: str, wall_seconds: float, executed: Path, out: Path) -> int:
    """Write the budget record of the build whose chapters are in `executed` (energy_lib.budget)."""
    sys.path.insert(0, str(ROOT))
    from energy_lib import budget, provenance

    path = Path(executed) / EXECUTION_RECORD
    if not path.is_file():
        raise BookError(f"{path} does not exist: run `make book` first (it writes the chapters' times there)")
    try:
        record = budget.make_record(read_execution_record(Path(executed)), kind, wall_seconds, utc_now(),
                                    provenance.machine(), chapters=[str(c) for c in notebooks()],
                                    runs=read_runs_record(Path(executed)))
        saved = budget.save(record, out if out is not None else budget.RECORDS)
    except budget.BudgetError as err:
        raise BookError(str(err)) from None
    print(f"[book] {kind} build: {wall_seconds / 60:.1f} min (budget {record['budget_minutes']:g} min, "
          f"{'within' if record['within_budget'] else 'OVER'}) -> {saved}")
    return 0


def _user_error(err: BaseException) -> bool:
    """Whether `err` is one of energy_lib's errors whose message names the file and the fix (a locked
    run, a corrupt record, bad data or config); looked up only when energy_lib was loaded."""
    found = []
    for module, name in (("energy_lib.fileio", "StoreError"), ("energy_lib.config", "ConfigError"),
                         ("energy_lib.data", "DataNotFoundError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return bool(found) and isinstance(err, tuple(found))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("chapters", help="print the chapters listed in _toc.yml")
    sub.add_parser("pages", help="print the HTML page of every chapter (what the HTML check opens)")
    ex = sub.add_parser("execute", help="run notebook chapters with papermill")
    ex.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    ex.add_argument("--only", action="append", help="one chapter (repeatable), e.g. book/01_attack_energies.ipynb")
    ex.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="papermill override, typed like papermill -p")
    ex.add_argument("-r", "--raw", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="papermill override kept as a string")
    ex.add_argument("--out", type=Path, default=BUILD / "executed")
    ex.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    ex.add_argument("--train-jobs", type=int, default=None,
                    help="processes that train chapters 2-4's runs before the chapters (CPU; default one per "
                         "core; 0: the chapters train them one at a time)")
    bd = sub.add_parser("build", help="stage executed chapters and build the HTML into _build/html")
    bd.add_argument("--no-strict", action="store_true", help="drop -W -n --keep-going")
    bd.add_argument("--executed", type=Path, default=BUILD / "executed")
    rt = sub.add_parser("record-time", help="record a finished build's time against the budget "
                        "(runs/bench/book-time-*.json, energy_lib.budget)")
    rt.add_argument("--kind", required=True, choices=["fresh", "rebuild"],
                    help="fresh: from a fresh clone (empty run store); rebuild: with the run store present")
    rt.add_argument("--wall-seconds", type=float, required=True, help="measured wall time of the whole make book")
    rt.add_argument("--executed", type=Path, default=BUILD / "executed")
    rt.add_argument("--out", type=Path, default=None, help="default: the repository's runs/bench/")
    sub.add_parser("setup-cells", help="write each chapter's hidden first cell (launch set-up) with the "
                   "repository URL of _config.yml")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "chapters":
            print("\n".join(str(c) for c in chapters()))
        elif args.cmd == "pages":
            print("\n".join(str(p) for p in html_pages()))
        elif args.cmd == "execute":
            params = {k: _parse_value(v) for k, v in args.parameter}
            params.update(dict(args.raw))
            timings = execute(args.profile, params, args.only, out_dir=args.out, progress=not args.no_progress,
                              train_jobs=args.train_jobs)
            print(f"[book] executed {len(timings)} chapter(s): {timings}")
        elif args.cmd == "build":
            (BUILD / BUILD_RECORD).unlink(missing_ok=True)  # stale if staging fails
            src = stage(executed=args.executed)
            html = build(src, ROOT, strict=not args.no_strict)
            print(f"[book] HTML ready: {html / 'index.html'}")
        elif args.cmd == "setup-cells":
            changed = write_setup_cells()
            print(f"[book] set-up cell written in {len(changed)} chapter(s): {changed}")
        elif args.cmd == "record-time":
            return record_time(args.kind, args.wall_seconds, args.executed, args.out)
    except BookError as err:
        print(f"book: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if not _user_error(err):
            raise
        print(f"book: {' '.join(str(err).split())}", file=sys.stderr)   # e.g. another `make book` owns a run
        return 1
    except KeyboardInterrupt:
        # runs keep their last finished epoch and chapters their records: the same command resumes
        print("book: interrupted; run the same command again to resume (finished epochs and records are kept)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
