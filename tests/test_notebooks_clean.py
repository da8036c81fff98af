"""Chapter sources in git carry no outputs, and each has a papermill `parameters` cell."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402

TOC = book.yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOK_ENTRIES = [e for e in book._toc_entries(TOC) if not e.endswith(".md")
                    and not (ROOT / f"{e}.md").exists() and e != "book/intro"
                    and f"{e}.md" not in book.GENERATED_PAGES]  # written by the build, not a source
# every notebook under book/, listed in the toc or not (a stray one must be clean too)
STRAY = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").rglob("*.ipynb")
               if ".ipynb_checkpoints" not in p.parts and "_assets" not in p.parts)
ALL = sorted(set(NOTEBOOK_ENTRIES) | set(STRAY))


def load(entry: str) -> dict:
    path = ROOT / (entry if entry.endswith(".ipynb") else entry + ".ipynb")
    assert path.is_file(), f"{path.relative_to(ROOT)} is listed in _toc.yml but does not exist"
    return json.loads(path.read_text())


def test_toc_lists_notebooks():
    assert len(NOTEBOOK_ENTRIES) >= 6, f"_toc.yml lists too few notebook chapters: {NOTEBOOK_ENTRIES}"


@pytest.mark.parametrize("entry", ALL)
def test_no_outputs_in_source(entry):
    nb = load(entry)
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{entry}.ipynb has outputs/execution counts in cells {dirty}; clear them "
                       "(jupyter nbconvert --clear-output --inplace) before committing")
    assert "widgets" not in nb.get("metadata", {}), \
        f"{entry}.ipynb stores widget state in its metadata; clear outputs and widget state"


@pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES)
def test_parameters_cell(entry):
    nb = load(entry)
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{entry}.ipynb needs exactly one code cell tagged `parameters`, has {len(cells)}"
    src = "".join(cells[0]["source"])
    names = {t.id for node in ast.walk(ast.parse(src)) if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(t, ast.Name)}
    missing = {"profile", "device"} - names
    assert not missing, f"{entry}.ipynb: the `parameters` cell must assign {sorted(missing)}"


@pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES)
def test_first_cell_sets_up_a_launched_chapter(entry):
    """A chapter opened with a launch button (Colab, Binder) starts with the hidden set-up cell that
    installs the project from the repository URL configured in _config.yml (`book.py setup-cells`)."""
    first = load(entry)["cells"][0]
    assert {book.SETUP_TAG, "remove-cell"} <= set(first["metadata"].get("tags", [])), \
        f"{entry}.ipynb: the first cell is not the hidden set-up cell; run `python tools/book.py setup-cells`"
    assert "".join(first["source"]) == book.setup_cell_source(book.repository_url()), \
        f"{entry}.ipynb: the set-up cell differs from tools/book.py's (or the URL from _config.yml's); " \
        "run `python tools/book.py setup-cells`"
