"""The book pipeline end to end: every chapter executes in the `smoke` profile, the book builds
strictly (-W -n --keep-going) offline, and the HTML renders in headless Chromium (figures load,
equations typeset by the local MathJax, no error outputs, nothing fetched from another host).

A tiny throwaway book checks the pipeline and the HTML checker themselves, including that the
checker does report broken pages.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402
import check_html  # noqa: E402
import fetch_web_assets  # noqa: E402

CHAPTERS = [
    "book/intro.md",
    "book/summary.ipynb",
    "book/01_attack_energies.ipynb",
    "book/02_at_phases.ipynb",
    "book/03_trades_ebm.ipynb",
    "book/04_weat_der.ipynb",
    "book/05_generation.ipynb",
    "book/06_smooth_landscape.ipynb",
    "book/appendix_performance.ipynb",
]


@pytest.fixture(scope="session")
def web_assets():
    """The vendored MathJax / require.js / widget manager (fetched with npm once, then reused)."""
    assert fetch_web_assets.main([]) == 0, "could not fetch the book's web assets (see stderr)"
    return ROOT / "book" / "_assets" / "vendor"


@pytest.fixture(scope="session")
def chromium():
    try:
        return check_html.find_chromium()
    except check_html.ChromiumMissing as err:
        pytest.fail(str(err))  # never skip: the HTML check is part of the test suite


# ----------------------------------------------------------------------------- the chapter list
def test_toc_lists_every_chapter():
    listed = [str(p) for p in book.chapters()]  # raises if a listed chapter is missing
    assert listed[: len(CHAPTERS)] == CHAPTERS


def test_missing_chapter_is_an_error(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/nope\n")
    with pytest.raises(book.BookError, match="book/nope"):
        book.chapters(tmp_path)


def test_static_copy_drops_widgets_and_warnings_only(tmp_path):
    """The static page gets no widget (no kernel) and no Python warning (listed on Build information,
    without the machine's paths); other output, stderr included, stays."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"state": {}}
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="/work/venv/lib/x.py:12: UserWarning: careful\n"
                                                             "  warnings.warn('careful')\n"),
        nbformat.v4.new_output("stream", name="stderr", text="/tmp/ipykernel_7/1.py:3: UserWarning: took over the "
                                                             "stale lock /work/main/runs/a-b/LOCK of process 9\n"),
        nbformat.v4.new_output("stream", name="stderr", text="a message for the reader\n"),
        nbformat.v4.new_output("display_data", data={book.WIDGET_VIEW: {"model_id": "1"}, "text/plain": "w"}),
        nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    nb.cells = [cell]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert book.static_copy(path) == {"widgets": 1, "warnings": [
        "x.py:12: UserWarning: careful", "1.py:3: UserWarning: took over the stale lock LOCK of process 9"]}
    kept = nbformat.read(path, as_version=4)
    assert [o.get("text") for o in kept.cells[0].outputs] == ["a message for the reader\n", "hello\n"]
    assert "widgets" not in kept.metadata
    page = book.build_info_page({"built_utc": "2026-12-06T12:00:00Z", "commit": "abc", "dirty": False,
                                 "profile": "smoke", "python": "3.11", "build_id": "1", "chapters": {},
                                 "warnings_hidden": {"book/n.ipynb": ["x.py:12: UserWarning: careful"]}})
    assert "x.py:12: UserWarning: careful" in page and "/work/" not in page


# ----------------------------------------------------------------------------- tiny book self-test
# An interactive figure (energy_lib.figures) with two drop-downs: what the HTML check explores.
TINY_FIGURE = """import numpy as np
import pandas as pd
from energy_lib import figures
points = pd.DataFrame({"attack": ["PGD"] * 3 + ["FAB"] * 3, "eps": [8.0, 8.0, 4.0] * 2,
                       "image": [0, 1, 2] * 2, "E_x": [-5.0, -4.5, -4.0, -5.0, -4.5, -4.0],
                       "E_adv": [-6.0, -5.25, -4.75, -3.5, -3.25, -3.0], "dE": [1.0, 0.75, 0.75, -1.5, -1.25, -1.0],
                       "dEy": [-2.0, -1.5, -1.0, -3.0, -2.5, -2.25]})
pictures = pd.DataFrame({"key": [figures.picture_key("m", "PGD", 8.0, 0)],
                         "picture": [figures.image_uri(np.full((3, 32, 96), 0.5))]})
points["model"] = "m"
figures.Figure(figures.scatter(points, select=["attack", "eps"], initial={"eps": 8.0}, pictures=pictures), "tiny")"""
def _tiny_book(root: Path, web_assets: Path) -> None:
    (root / "book").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    for name in ("intro.md", "references.md", "references.bib"):
        shutil.copy2(ROOT / "book" / name, root / "book" / name)
    shutil.copytree(ROOT / "book" / "_ext", root / "book" / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "book" / "_assets").mkdir()
    (root / "book" / "_assets" / "vendor").symlink_to(web_assets, target_is_directory=True)
    shutil.copy2(ROOT / "book" / "_assets" / "book.css", root / "book" / "_assets" / "book.css")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/tiny\n  - file: book/references\n"
        "  - file: book/build_info\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "default"\ndevice = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny\n\nEnergy $E(x) = -\\log\\sum_k e^{f_k(x)}$; "
                                      "the profile was {glue:text}`used_profile`."),
        params,
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nfrom myst_nb import glue\n"
            "glue('used_profile', profile, display=False)\n"
            "fig, ax = plt.subplots(figsize=(3, 2)); ax.plot([1, 3, 2]); plt.show()"),
        nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider(value=3)"),
        # machinery the static page hides and Build information lists
        nbformat.v4.new_code_cell("import warnings\nwarnings.warn('tiny careful')"),
        nbformat.v4.new_code_cell(TINY_FIGURE),
    ]
    nbformat.write(nb, root / "book" / "tiny.ipynb")


@pytest.fixture(scope="module")
def tiny_html(tmp_path_factory, web_assets):
    root = tmp_path_factory.mktemp("tinybook")
    _tiny_book(root, web_assets)
    book.execute("smoke", root=root, out_dir=root / "_build" / "executed")
    src = book.stage(root=root, executed=root / "_build" / "executed", src=root / "_build" / "src")
    return root, book.build(src, root, strict=True)


def test_execute_reports_progress_per_chapter_and_cell(tmp_path, web_assets, capfd):
    # `make book` says which chapter of how many runs, and papermill's bar counts its cells
    _tiny_book(tmp_path, web_assets)
    lines = []
    book.execute("smoke", root=tmp_path, out_dir=tmp_path / "executed", progress=True,
                 log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert any("(1/1) executing book/tiny.ipynb" in line for line in lines), lines
    err = capfd.readouterr().err
    assert "Executing" in err and "cell" in err, err[-500:]


def test_tiny_book_pipeline(tiny_html, chromium):
    root, html = tiny_html
    executed = json.loads((root / "_build" / "executed" / "book" / "tiny.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "remove-cell" in injected[0]["metadata"]["tags"]
    page = (html / "book" / "tiny.html").read_text()
    assert "smoke" in page and "injected-parameters" not in page  # glued value, hidden cell
    reports, problems = check_html.check_pages(html, [str(p) for p in book.html_pages(root)])
    assert not problems, "\n".join(problems)
    tiny = reports["book/tiny.html"]
    assert tiny["images"] and all(im["w"] > 0 for im in tiny["images"]) and tiny["mjx_containers"] >= 1
    # launch buttons open this chapter from the repository configured in _config.yml (links only)
    repo = book.repository_url(root).removeprefix("https://github.com/")
    assert repo and f'href="https://colab.research.google.com/github/{repo}/blob/main/book/tiny.ipynb"' in page
    assert f'href="https://mybinder.org/v2/gh/{repo}/main?urlpath=tree/book/tiny.ipynb"' in page
    intro = (html / "book" / "intro.html").read_text()
    assert f'href="https://github.com/{repo}"' in intro and 'href="https://arxiv.org/abs/2407.06315"' in intro
    # a widget cannot work without a kernel: the static page shows none and loads no widget library
    assert tiny["widget_views"] == 0 and "widget-view+json" not in page and "embed-amd" not in page
    assert reports["book/intro.html"]["mjx_containers"] >= 2
    # the interactive figure drew from the book's own Vega, its drop-downs change what is drawn, and
    # hovering image 0 (PGD, ε 8) shows that image's energies
    fig, = tiny["figures"]
    assert fig["drawn"] and fig["points"] == 2 and fig["download"] == "tiny.csv"
    assert {s["name"]: [c for _, c in s["changed_to"]] for s in fig["selects"]} == {"attack": [True], "eps": [True]}
    hover = fig["hover"]
    assert hover["datum"]["image"] == 0 and hover["datum"]["E_adv"] == -6.0
    assert "image id" in hover["tooltip"] and "\u22126.000" in hover["tooltip"] and "1.000" in hover["tooltip"]
    assert hover["datum"]["picture"].startswith("data:image/jpeg") and hover["pictures"] == [96]   # its picture shows
    assert not tiny["console_errors"] and not tiny["requests_external"]
    # the chapter's warning is not on its page but listed on Build information, which the check accepts
    assert "UserWarning: tiny careful" not in page
    assert "UserWarning: tiny careful" in (html / "book" / "build_info.html").read_text()
    # hovering a point without a picture shows no image (no broken one)
    assert fig["hover_plain"]["datum"]["picture"] == "" and fig["hover_plain"]["pictures"] == []
    assert tiny["page_bytes"] < check_html.PAGE_BUDGET_BYTES


def test_html_checker_reports_broken_pages(tiny_html, chromium, tmp_path):
    """A checker that cannot fail proves nothing: feed it pages with each defect."""
    _, html = tiny_html
    broken = tmp_path / "html"
    shutil.copytree(html, broken)
    head = '<html><head><title>bad</title>{}</head><body><p>{}</p>{}</body></html>'
    filler = "x" * 100
    (broken / "bad_img.html").write_text(head.format("", filler, '<img src="missing.png">'))
    (broken / "bad_math.html").write_text(head.format("", filler, r'<span class="math">\(x^2\)</span>'))
    (broken / "bad_err.html").write_text(head.format("", filler, '<div class="output traceback">'
                                                     'Traceback (most recent call last): boom</div>'))
    (broken / "bad_cdn.html").write_text(head.format('<script src="https://cdn.invalid/x.js"></script>',
                                                     filler, ""))
    (broken / "bad_console.html").write_text(head.format("", filler, "<script>console.error('boom')</script>"))
    (broken / "bad_throw.html").write_text(head.format("", filler, "<script>null.x()</script>"))
    (broken / "bad_path.html").write_text(head.format("", "record /work/main/runs/lens/abc/record.json " + filler, ""))
    (broken / "bad_trace.html").write_text(head.format("", 'File "/x/y.py", line 3, in f ' + filler, ""))
    (broken / "bad_warning.html").write_text(head.format("", "UserWarning: careful " + filler, ""))
    # the same warning in a box that lists machinery on purpose (Build information) is fine
    (broken / "listed_warning.html").write_text(head.format("", filler, f'<div class="{check_html.LISTED_MACHINERY}"><pre>'
                                                            'x.py:3: UserWarning: careful</pre></div>'))
    # ... but only the warning rule spares the box: a path of the machine in it is reported
    (broken / "listed_path.html").write_text(head.format("", filler, f'<div class="{check_html.LISTED_MACHINERY}"><pre>x.py:3: '
                                                         'UserWarning: /work/main/runs/x.npz is damaged</pre></div>'))
    (broken / "bad_bar.html").write_text(head.format("", "attacks 100%|##########| 8/8 [00:03] " + filler, ""))
    (broken / "bad_wide.html").write_text(head.format("", filler, '<main><table style="width:3000px"><tr><td>wide'
                                                                  '</td></tr></table></main>'))
    (broken / "bad_fetch.html").write_text(head.format("", filler, "<script>fetch('https://example.invalid/d.json')"
                                                                   ".catch(function () {})</script>"))
    (broken / "bad_tick.html").write_text(head.format("", "the verdict of `energy_lib.verdicts` " + filler,
                                                      "<pre>`fine in code`</pre>"))
    html_dir = broken
    (html_dir / "bad_heavy.html").write_text(head.format("", filler, "<!--" + "x" * 5_100_000 + "-->"))
    pages = ["bad_img.html", "bad_math.html", "bad_err.html", "bad_cdn.html", "not_built.html", "bad_console.html",
             "bad_throw.html", "bad_path.html", "bad_trace.html", "bad_warning.html", "bad_bar.html",
             "bad_wide.html", "bad_fetch.html", "bad_heavy.html", "bad_tick.html", "listed_warning.html",
             "listed_path.html"]
    _, problems = check_html.check_pages(broken, pages)
    text = "\n".join(problems)
    for page, words in [("bad_img", "image did not load"), ("bad_math", "MathJax"),
                        ("bad_err", "error output"), ("bad_cdn", "another host"),
                        ("not_built", "not built"), ("bad_console", "console error: boom"),
                        ("bad_throw", "console error"), ("bad_path", "path of the building machine"),
                        ("bad_trace", "a traceback"), ("bad_warning", "Python warning"),
                        ("bad_bar", "progress bar"), ("bad_wide", "wider than the text column"),
                        ("bad_fetch", "request leaves the book"), ("bad_heavy", "MB with what it loads"),
                        ("bad_tick", "literal backtick in the prose: 'the verdict of `energy_lib")]:
        assert any(p.startswith(f"{page}.html: ") and words in p for p in problems), f"{page} not reported:\n{text}"
    assert "fine in code" not in text
    assert not [p for p in problems if p.startswith("listed_warning.html: ")], text
    assert [p for p in problems if p.startswith("listed_path.html: ")] == [
        "listed_path.html: text shows a path of the building machine: '/work/main/runs/x.npz'"], text


def test_html_checker_reports_broken_figures(tiny_html, chromium, tmp_path):
    """A figure whose drop-down changes nothing, or whose tooltip lacks the energies, is reported."""
    import altair as alt
    import pandas as pd

    from energy_lib import figures

    _, html = tiny_html
    broken = tmp_path / "html"
    shutil.copytree(html, broken)
    points = pd.DataFrame({"attack": ["PGD", "FAB"], "image": [0, 1], "E_x": [-5.0, -4.0], "E_adv": [-6.0, -3.0],
                           "dE": [1.0, -1.0], "dEy": [0.5, 0.25]})
    pick = alt.param(name="attack", value="PGD", bind=alt.binding_select(options=["PGD", "FAB"]))
    deaf = alt.Chart(points).mark_circle().encode(
        x="E_x:Q", y="E_adv:Q", tooltip=[alt.Tooltip("image:Q", title="image id"), "E_x:Q"]).add_params(pick)
    page = (html / "book" / "tiny.html").read_text()
    cut = page.index('<div class="energy-figure"')
    end = page.index("</script>", page.index("</script>", cut) + 1) + len("</script>")
    (broken / "book" / "deaf.html").write_text(page[:cut] + figures.Figure(deaf, "deaf").html() + page[end:])
    # a hover picture that cannot be decoded
    blind = figures.scatter(points.assign(model="m", eps=8.0), select=["attack"], pictures=pd.DataFrame(
        {"key": [figures.picture_key("m", "PGD", 8.0, 0)], "picture": ["data:image/jpeg;base64,AAAA"]}))
    (broken / "book" / "blind.html").write_text(page[:cut] + figures.Figure(blind, "blind").html() + page[end:])
    _, problems = check_html.check_pages(broken, ["book/deaf.html", "book/blind.html"])
    text = "\n".join(problems)
    assert "choosing attack = ['FAB'] does not change the drawn data" in text, text
    assert "lacks ['E_adv', 'dE', 'dEy']" in text, text
    assert "'blind': image 0 has a hover picture that its tooltip does not show" in text, text


# ----------------------------------------------------------------------------- the real book
@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory, web_assets):
    """Execute every chapter (smoke profile) into a temp folder and build the book strictly."""
    out = tmp_path_factory.mktemp("smokebook")
    timings = book.execute("smoke", out_dir=out / "executed")
    src = book.stage(executed=out / "executed", src=out / "src")
    html = book.build(src, out, strict=True)
    print(f"smoke chapter timings (s): {timings}")
    return out, html


def test_chapters_execute_in_smoke_profile(smoke_book):
    out, _ = smoke_book
    for nb in book.notebooks():
        executed = out / "executed" / nb
        assert not book.error_outputs(executed), f"{nb}: {book.error_outputs(executed)}"
        cells = json.loads(executed.read_text())["cells"]
        injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        assert injected, f"{nb}: papermill injected no parameters (is a cell tagged `parameters`?)"
        assert "remove-cell" in injected[0]["metadata"]["tags"]
        assert "profile = \"smoke\"" in "".join(injected[0]["source"])


def test_book_html_in_chromium(smoke_book, chromium):
    _, html = smoke_book
    assert (html / "index.html").is_file()
    pages = [str(p) for p in book.html_pages()]
    reports, problems = check_html.check_pages(html, pages)
    assert not problems, "\n".join(problems)
    assert reports["book/intro.html"]["mjx_containers"] >= 2, "intro equations not typeset"
    # every chapter with an interactive figure has one that drew (the check explored it); its load time
    # is printed, not asserted: it depends on the machine
    with_figures = [p for p, r in reports.items() if r.get("figures")]
    assert {"book/01_attack_energies.html", "book/02_at_phases.html", "book/04_weat_der.html",
            "book/05_generation.html", "book/06_smooth_landscape.html"} <= set(with_figures)
    for page, t in check_html.load_times(html, with_figures, repeats=1).items():
        print(f"{page}: {reports[page]['page_bytes'] / 1e6:.2f} MB; " + (t["error"] if "error" in t else
              f"navigation start -> figures drawn {t['navigation_to_drawn_ms']:.0f} ms, DOMContentLoaded -> drawn "
              f"{t['dcl_to_drawn_ms']:.0f} ms"))


def test_setup_cell_installs_from_a_clone_outside_a_checkout(tmp_path):
    """The hidden first cell, run where no checkout is (as on Colab), clones the repository (here a local
    clone of this one), installs its pinned requirements (already satisfied here: nothing changes) and
    works from the clone: energy_lib imports from it and the committed reference run is found."""
    import subprocess

    source = book.setup_cell_source(str(ROOT))       # the local repository stands in for the URL
    checkout = tmp_path / "checkout"
    probe = (source + "\nimport energy_lib\nfrom energy_lib import runs\n"
             "print('ROOT', Path.cwd()); print('LIB', Path(energy_lib.__file__).parent.parent)\n"
             "print('REF', runs.reference_run() is not None)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("PYTHONPATH", "ENERGY_RUNS")}
    env["ENERGY_CHECKOUT"] = str(checkout)
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"ROOT {checkout}" in done.stdout and f"LIB {checkout}" in done.stdout, done.stdout
    assert "REF True" in done.stdout
    assert (checkout / ".git").is_dir() and (checkout / "runs" / "reference").is_dir()
