"""The book pipeline: execute chapters with papermill, stage, build the HTML strictly.

`_toc.yml` is the one list of chapters. Sources are never executed in place:

    execute  book/X.ipynb  --papermill -p profile P-->  <build>/executed/book/X.ipynb
    stage    _config.yml, _toc.yml, book/ (non-notebook files) + executed notebooks -> <build>/src
    build    jupyter-book build <build>/src --path-output <build>/..  (HTML in <build>/html)

Usage (the Makefile calls these):
    python tools/book.py chapters
    python tools/book.py execute [--profile smoke] [--only book/01_x.ipynb] [-p name value ...]
    python tools/book.py build [--strict]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
STRICT_FLAGS = ["-W", "-n", "--keep-going"]
# The front page collects the reproduction records the chapters write: it is executed last.
RUN_LAST = ("book/summary.ipynb",)


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
        if hits:
            found.append(Path(hits[0]))
        else:
            missing.append(entry)
    if missing and require_all:
        raise BookError(f"_toc.yml lists chapter(s) with no source file: {missing}; "
                        "create them or remove them from _toc.yml")
    return found


def notebooks(root: Path = ROOT, require_all: bool = True) -> list[Path]:
    return [c for c in chapters(root, require_all) if c.suffix == ".ipynb"]


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


def execute(profile: str, params: dict | None = None, only: list[str] | None = None,
            root: Path = ROOT, out_dir: Path | None = None, log=print) -> dict[str, float]:
    """Execute notebook chapters with papermill into `out_dir` (default `_build/executed`).

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
    timings = {}
    for nb in nbs:
        target = out_dir / nb
        target.parent.mkdir(parents=True, exist_ok=True)
        log(f"[book] executing {nb} (profile={profile}) -> {target}", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(root / nb), str(target), parameters=parameters,
                                       kernel_name="python3", cwd=str(root), progress_bar=False)
        except papermill.PapermillExecutionError as err:
            raise BookError(f"{nb} failed in the cell executed as [{err.exec_count}] ({err.ename}: {err.evalue}); "
                            f"the executed copy with the traceback is {target}") from None
        timings[str(nb)] = round(time.perf_counter() - start, 1)
        tag_injected_cell(target)
        bad = error_outputs(target)
        if bad:
            raise BookError(f"{nb} has error output(s): {bad}")
        log(f"[book] {nb} done in {timings[str(nb)]} s", flush=True)
    record = out_dir / "timings.json"
    old = json.loads(record.read_text()) if record.exists() else {}
    old.update({k: {"seconds": v, "profile": profile} for k, v in timings.items()})
    record.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
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
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, src / name)
    # every non-notebook file under book/ (markdown, images, bib, vendored JS)
    shutil.copytree(root / "book", src / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__"))
    for nb in nbs:
        shutil.copy2(executed / nb, src / nb)
    return src


def build(src: Path, out: Path, strict: bool = True, log=print) -> Path:
    """`jupyter-book build src`, HTML into `out/_build/html`. Raises on a non-zero exit."""
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--path-output", str(out),
           "--builder", "html", "--all"] + (STRICT_FLAGS if strict else [])
    log("[book] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); "
                        f"output:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return out / "_build" / "html"


def html_pages(root: Path = ROOT) -> list[Path]:
    """HTML page (relative to the html folder) of every chapter, in toc order."""
    return [c.with_suffix(".html") for c in chapters(root)]


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("chapters", help="print the chapters listed in _toc.yml")
    ex = sub.add_parser("execute", help="run notebook chapters with papermill")
    ex.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    ex.add_argument("--only", action="append", help="one chapter (repeatable), e.g. book/01_attack_energies.ipynb")
    ex.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="papermill override, typed like papermill -p")
    ex.add_argument("-r", "--raw", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="papermill override kept as a string")
    ex.add_argument("--out", type=Path, default=BUILD / "executed")
    bd = sub.add_parser("build", help="stage executed chapters and build the HTML into _build/html")
    bd.add_argument("--no-strict", action="store_true", help="drop -W -n --keep-going")
    bd.add_argument("--executed", type=Path, default=BUILD / "executed")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "chapters":
            print("\n".join(str(c) for c in chapters()))
        elif args.cmd == "execute":
            params = {k: _parse_value(v) for k, v in args.parameter}
            params.update(dict(args.raw))
            timings = execute(args.profile, params, args.only, out_dir=args.out)
            print(f"[book] executed {len(timings)} chapter(s): {timings}")
        elif args.cmd == "build":
            src = stage(executed=args.executed)
            html = build(src, ROOT, strict=not args.no_strict)
            print(f"[book] HTML ready: {html / 'index.html'}")
    except BookError as err:
        print(f"book: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
