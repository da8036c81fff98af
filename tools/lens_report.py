"""`make lens`: one model through the energy lens as an HTML report (tools/lens_report.ipynb).

The Makefile passes the user's values in the environment (`LENS_MODEL`, `LENS_PARAMS`, `LENS_OUT_DIR`,
`LENS_PROFILE`), never inside shell text, so no value (a quote, `$(...)`, `;`) can break the recipe or
run a command, not even under `make -n`. Here they become one argument list: PARAMS is split like a
shell would split words (`shlex.split`, quotes honoured) but nothing is evaluated; papermill and
nbconvert run without a shell.

    LENS_MODEL=run:runs/<dir> LENS_PARAMS="-p n_images 1000" python tools/lens_report.py

The report works offline and shows nothing of the machine that rendered it, like the book: its MathJax
and require.js are the book's vendored copies (fetched with npm and integrity-checked by
tools/fetch_web_assets.py, `make assets`), copied beside the report into `<out>/vendor/`; the
interactive figure carries the same vendored Vega scripts inline (`energy_lib.figures`); record paths
are shown relative to the run store. `report_problems` checks the written HTML (no script, stylesheet
or image from another host or from a path of this machine, no such path in its text) and a report
that fails it is an error.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from check_html import MACHINE_PATH  # noqa: E402  (what a reader must never see, as in the book)

NOTEBOOK = ROOT / "tools" / "lens_report.ipynb"
VENDOR = ROOT / "book" / "_assets" / "vendor"     # tools/fetch_web_assets.py's verified copies
# what the report loads from them, relative to the report (nbconvert's HTMLExporter settings)
MATHJAX = "vendor/mathjax/es5/tex-mml-chtml.js"
REQUIRE_JS = "vendor/requirejs/require.js"
VENDORED = ("mathjax", "requirejs", "VERSIONS.json")
# nbconvert's template configures MathJax 2; the vendored MathJax 3 reads this (set before it loads)
MATHJAX_CONFIG = ("<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
                  "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true}};</script>\n")
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
            [sys.executable, "-m", "nbconvert", "--to", "html", f"--HTMLExporter.mathjax_url={MATHJAX}",
             f"--HTMLExporter.require_js_url={REQUIRE_JS}", str(executed)]]


class ReportError(RuntimeError):
    """The report cannot be made offline; the message names the fix."""


def serve_assets(out: Path, vendor: Path = VENDOR) -> None:
    """Copy the vendored MathJax and require.js beside the report (`<out>/vendor/`), once verified
    up to date by tools/fetch_web_assets.py (pinned sha512 of each npm tarball)."""
    import fetch_web_assets

    if not fetch_web_assets.up_to_date(vendor):
        raise ReportError(f"the vendored web assets in {vendor} are missing or not the pinned versions: run "
                          "`make assets` (python tools/fetch_web_assets.py) first")
    dest = Path(out) / "vendor"
    dest.mkdir(parents=True, exist_ok=True)
    for name in VENDORED:
        src, target = Path(vendor) / name, dest / name
        if target.is_dir():
            shutil.rmtree(target)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, target)


_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>\s*', re.S)


def finish(page: Path) -> None:
    """MathJax 3's settings into the HTML nbconvert wrote (before the vendored MathJax loads), and its
    template's diagram loader out (it imports mermaid from a CDN for a diagram; a report has none)."""
    text = page.read_text(encoding="utf-8")
    tag = f'<script src="{MATHJAX}">'
    if tag in text and MATHJAX_CONFIG not in text:
        text = text.replace(tag, MATHJAX_CONFIG + tag, 1)
    if 'class="jp-Mermaid' not in text:
        text = _MERMAID.sub("", text)
    page.write_text(text, encoding="utf-8")


_SRC = re.compile(r"<(script|link|img|iframe|source)\b[^>]*?\s(?:src|href)\s*=\s*[\"']([^\"']*)[\"']", re.I)
_BLOCKS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)


def report_problems(page: Path) -> list[str]:
    """What keeps a written report from working offline or shows this machine: a script, stylesheet or
    image from another host (or protocol-relative) or from an absolute path, a local one that is missing,
    and a path of this machine in the text a reader sees."""
    import html as html_module

    page = Path(page)
    text = page.read_text(encoding="utf-8")
    tags = _BLOCKS.sub(lambda m: m.group(0)[:m.group(0).index(">") + 1], text)   # scripts' and styles' code out
    out = []
    for tag, url in _SRC.findall(tags):
        if url.startswith("data:") or url.startswith("#") or not url:
            continue
        if re.match(r"^([a-z][a-z0-9+.-]*:|//)", url, re.I):
            out.append(f"<{tag}> loads from another host or protocol: {url[:120]}")
        elif url.startswith("/") or re.match(r"^[A-Za-z]:\\", url):
            out.append(f"<{tag}> loads an absolute path of this machine: {url[:120]}")
        elif not (page.parent / url.split("?")[0].split("#")[0]).is_file():
            out.append(f"<{tag}> loads a file that is not beside the report: {url[:120]}")
    out += [f"a script imports from another host: {m.group(0)[:120]}"
            for m in re.finditer(r"\bimport\(\s*[\"'](?:[a-z][a-z0-9+.-]*:)?//[^\"']*", text, re.I)]
    visible = html_module.unescape(re.sub(r"<[^>]+>", " ", _BLOCKS.sub(" ", text)))
    out += [f"the text shows a path of this machine: {m.group(0)[:120]!r}" for m in MACHINE_PATH.finditer(visible)]
    return out


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
    try:
        serve_assets(out)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for cmd in steps:
        print(" ".join(shlex.quote(c) for c in cmd), flush=True)
        done = subprocess.run(cmd, cwd=ROOT)
        if done.returncode != 0:
            return done.returncode
    page = out / f"{report_name(model)}.html"
    finish(page)
    problems = report_problems(page)
    if problems:
        print(f"error: {page} is not a report a reader can open offline:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 1
    print(f"open {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
