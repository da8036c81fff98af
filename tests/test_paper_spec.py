"""The chapters' "PAPER.md x.y" references lead somewhere a reader of the published book can follow.

The technical spec of the papers is committed as `PAPER.md` (a copy of the project's spec, identical
to ../shared/PAPER.md where that exists); `tools/book.py` renders it as the page book/paper_spec with
an anchor per numbered section, and the book's Sphinx extension (book/_ext/book_html.py) links every
"PAPER.md x.y" of every built page to its section. A reference to a section the spec lacks is a build
warning (the strict build fails), and the HTML check reports an unlinked reference or a link to a
missing anchor. Each check is fed a planted dangling reference.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import book  # noqa: E402
import book_html  # noqa: E402
import check_html  # noqa: E402
import fetch_web_assets  # noqa: E402

SPEC = (ROOT / "PAPER.md").read_text(encoding="utf-8")
SECTIONS = book_html.spec_sections(SPEC)


# ----------------------------------------------------------------------------- the committed spec
def test_the_committed_spec_is_the_projects_spec():
    shared = ROOT.parent / "shared" / "PAPER.md"
    if not shared.is_file():
        pytest.skip("no ../shared/PAPER.md beside this checkout (a clone outside the project's workspace)")
    assert (ROOT / "PAPER.md").read_bytes() == shared.read_bytes(), (
        "PAPER.md differs from ../shared/PAPER.md: copy the spec again (cp ../shared/PAPER.md PAPER.md)")


def test_spec_sections_and_page_anchors():
    assert SECTIONS[:4] == ["0", "1", "1.1", "1.2"] and "2.6b" in SECTIONS and SECTIONS[-1] == "6"
    assert {"2.1", "2.5", "4.2", "5.2", "5.3"} <= set(SECTIONS) and "6.4" not in SECTIONS
    page = book_html.spec_page(SPEC)
    assert page.startswith(f"# {book_html.PAGE_TITLE}\n") and page.count("\n# ") == 0   # one title
    for section in SECTIONS:
        assert re.search(rf"^\({book_html.anchor(section)}\)=\n#{{2,3}} {re.escape(section)}\.? ", page, re.M), section
    # the rest verbatim: every line of the spec but its title is on the page, in order
    body = [line for line in SPEC.splitlines()[1:]]
    kept = [line for line in page.splitlines() if not re.match(r"^\(paper-[\w-]+\)=$", line)]
    assert kept[-len(body):] == body
    assert book.paper_spec_page(ROOT) == page


def test_references_are_parsed_as_the_chapters_write_them():
    cases = {"(PAPER.md 2.1).": [["2.1"]], "PAPER.md 2.2-2.7": [["2.2", "2.7"]], "(PAPER.md 4).": [["4"]],
             "PAPER.md 5.3's 0.5 pt": [["5.3"]], "PAPER.md 2.5, 4.2, 5.2 items 4-5": [["2.5", "4.2", "5.2"]],
             "PAPER.md 1.1 / 2.6": [["1.1", "2.6"]], "the spec (PAPER.md), what": [[]],
             "PAPER.md 3.3/3.4": [["3.3", "3.4"]], "PAPER.md 2.6, 2.6b, 2.7).": [["2.6", "2.6b", "2.7"]],
             "PAPER.mdx 2": []}
    for text, sections in cases.items():
        assert book_html.references(text) == sections, text
    assert book_html.dangling("PAPER.md 2.1 and PAPER.md 9.9, 2.2 and PAPER.md 6.4", SECTIONS) == ["9.9", "6.4"]


def _book_texts() -> dict[str, str]:
    """Every source page's text: notebook cells (markdown and code) and markdown pages."""
    texts = {}
    for page in book.chapters():
        path = ROOT / page
        if page.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            texts[str(page)] = "\n".join(cell.source for cell in nb.cells)
        elif path.is_file():
            texts[str(page)] = path.read_text(encoding="utf-8")
    return texts


def test_every_reference_in_the_chapters_names_a_section_of_the_spec():
    texts = _book_texts()
    assert sum(len(book_html.references(t)) for t in texts.values()) >= 30   # the chapters do cite it
    bad = {page: book_html.dangling(text, SECTIONS) for page, text in texts.items()}
    assert not {p: d for p, d in bad.items() if d}, f"references to sections PAPER.md does not have: {bad}"
    # a planted dangling reference in a chapter's text is found
    planted = dict(texts, **{"book/06_smooth_landscape.ipynb": texts["book/06_smooth_landscape.ipynb"]
                             + "\n(PAPER.md 5.4 item 1)"})
    assert book_html.dangling(planted["book/06_smooth_landscape.ipynb"], SECTIONS) == ["5.4"]


def test_link_references_in_html():
    html = ('<p>(PAPER.md 2.2–2.7) and <code>PAPER.md 5.3</code>; <a href="x.html">PAPER.md 1.1</a>; PAPER.md 9.1'
            '</p><script>var s = "PAPER.md 2.1"; if (a<b) {}</script><td>claim (PAPER.md)</td>'
            '<th>ρ < 0, robust models only (PAPER.md 2.5, 5.2)</th>')   # a raw "<" in a table cell is text
    linked, missing = book_html.link_references(html, "../book/paper_spec.html", SECTIONS)
    ref = '<a class="reference internal paper-ref" href="../book/paper_spec.html'
    assert f'{ref}#paper-2-2">PAPER.md 2.2</a>–{ref}#paper-2-7">2.7</a>' in linked
    assert f'<code>{ref}#paper-5-3">PAPER.md 5.3</code>'.replace("</code>", "</a></code>") in linked
    assert '<a href="x.html">PAPER.md 1.1</a>' in linked            # no link inside a link
    assert 'var s = "PAPER.md 2.1"' in linked                       # scripts are not text
    assert f'{ref}">PAPER.md</a>' in linked and missing == ["9.1"] and " PAPER.md 9.1</p>" in linked
    assert f'ρ < 0, robust models only ({ref}#paper-2-5">PAPER.md 2.5</a>, {ref}#paper-5-2">5.2</a>)</th>' in linked


def test_html_check_reports_unlinked_and_dangling_references(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "paper_spec.html").write_text('<section id="paper-2-1"><h2>2.1</h2></section>')
    pages = {"good.html": '<p><a class="paper-ref" href="paper_spec.html#paper-2-1">PAPER.md 2.1</a></p>'
                          '<script>"PAPER.md 9"</script>',
             "loose.html": "<p>as PAPER.md 2.1 says</p>",
             "dangling.html": '<p><a class="paper-ref" href="paper_spec.html#paper-9-9">PAPER.md 9.9</a></p>',
             "nowhere.html": '<p><a class="paper-ref" href="spec.html#paper-2-1">PAPER.md 2.1</a></p>'}
    for name, text in pages.items():
        (tmp_path / "book" / name).write_text(text)
    found = {name: check_html.reference_problems(tmp_path, f"book/{name}") for name in pages}
    assert found["good.html"] == []
    assert "shown without a link" in found["loose.html"][0]
    assert "missing anchor: 'paper_spec.html#paper-9-9'" in found["dangling.html"][0]
    assert "missing page" in found["nowhere.html"][0]


# ----------------------------------------------------------------------------- a real strict build
@pytest.fixture(scope="module")
def web_assets():
    assert fetch_web_assets.main([]) == 0, "could not fetch the book's web assets (see stderr)"
    return ROOT / "book" / "_assets" / "vendor"


CHAPTER = """# Tiny chapter

**Claim (PAPER.md 2.5, 4.2).** Checked as in {ref}.
"""


def _spec_book(root: Path, web_assets: Path, ref: str) -> None:
    """A book with the spec page and one chapter citing it in prose and in a table output."""
    (root / "book" / "_assets").mkdir(parents=True)
    (root / "book" / "_assets" / "vendor").symlink_to(web_assets, target_is_directory=True)
    shutil.copy2(ROOT / "book" / "_assets" / "book.css", root / "book" / "_assets" / "book.css")
    shutil.copytree(ROOT / "book" / "_ext", root / "book" / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "PAPER.md", root / "PAPER.md")
    (root / "book" / "intro.md").write_text("# Tiny book\n\nThe claims are in the spec (PAPER.md).\n")
    (root / "book" / "references.bib").write_text("")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "  - file: book/tiny\n  - file: book/paper_spec\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "default"')
    params.metadata["tags"] = ["parameters"]
    table = nbformat.v4.new_code_cell('import pandas as pd\npd.DataFrame({"claim": ["WEAT (PAPER.md 4.1, 5.3)"], '
                                      '"verdict": ["reproduced"]}).set_index("claim").style')
    nb.cells = [nbformat.v4.new_markdown_cell(CHAPTER.format(ref=ref)), params, table]
    nbformat.write(nb, root / "book" / "tiny.ipynb")


def _build(root: Path):
    book.execute("smoke", root=root, out_dir=root / "_build" / "executed")
    src = book.stage(root=root, executed=root / "_build" / "executed", src=root / "_build" / "src")
    return book.build(src, root, strict=True)


def test_built_references_link_to_existing_anchors(tmp_path, web_assets):
    _spec_book(tmp_path, web_assets, "PAPER.md 5.2 item 4")
    html = _build(tmp_path)
    spec = (html / "book" / "paper_spec.html").read_text()
    assert "the technical specification (PAPER.md)" in spec and all(f'id="{book_html.anchor(s)}"' in spec for s in SECTIONS)
    page = (html / "book" / "tiny.html").read_text()
    hrefs = re.findall(r'class="reference internal paper-ref" href="([^"]+)"', page)
    assert {"paper_spec.html#paper-2-5", "paper_spec.html#paper-4-2", "paper_spec.html#paper-5-2",
            "paper_spec.html#paper-4-1", "paper_spec.html#paper-5-3"} <= set(hrefs)   # prose and the table
    for href in hrefs:
        assert f'id="{href.partition("#")[2]}"' in spec, href
    assert 'href="paper_spec.html">PAPER.md</a>' in (html / "book" / "intro.html").read_text()
    for name in ("book/tiny.html", "book/intro.html"):
        assert check_html.reference_problems(html, name) == []
    record = json.loads((tmp_path / "_build" / book.BUILD_RECORD).read_text())
    assert record["warnings"] == [] and "book/paper_spec.html" in record["pages"]


def test_a_dangling_reference_fails_the_strict_build(tmp_path, web_assets):
    _spec_book(tmp_path, web_assets, "PAPER.md 5.4 item 1")
    with pytest.raises(book.BookError, match="jupyter-book build failed"):
        _build(tmp_path)
    record = json.loads((tmp_path / "_build" / book.BUILD_RECORD).read_text())
    assert any("'PAPER.md 5.4' names no section of PAPER.md" in w for w in record["warnings"]), record["warnings"]
