"""`make lens`'s HTML report works offline and shows nothing of the machine that rendered it: its
MathJax and require.js are the book's vendored, integrity-checked copies served beside it, its Vega is
inline from the same copies, and record paths are shown inside the run store. The check
(`lens_report.report_problems`) is fed planted defects; the real report passes it and the book's
Chromium check (equations typeset, the figure draws, no request leaves the file, no machine path)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_html  # noqa: E402
import fetch_web_assets  # noqa: E402
import lens_report  # noqa: E402

HEAD = '<html><head>{}</head><body><p>{}</p><script>var s = "<img src=\\"x.png\\">";</script></body></html>'


def test_report_check_finds_every_planted_defect(tmp_path):
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "m.js").write_text("")
    cases = {
        "clean": ('<script src="vendor/m.js"></script>', "record &lt;run store&gt;/lens/abc/record.json", []),
        "cdn": ('<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>',
                "", ["another host"]),
        "import": ('<script type="module">await import("https://cdnjs.cloudflare.com/m.mjs")</script>', "",
                   ["imports from another host"]),
        "relative_protocol": ('<link rel="stylesheet" href="//cdn.invalid/x.css">', "", ["another host"]),
        "absolute": ('<script src="/work/main/book/_assets/vendor/m.js"></script>', "", ["absolute path"]),
        "missing": ('<script src="vendor/mathjax/es5/tex-mml-chtml.js"></script>', "", ["not beside the report"]),
        "path_text": ("", "record: /work/main/runs/lens/abc/record.json", ["path of this machine"]),
        "venv_text": ("", "from /root/x/.venv/lib/site.py", ["path of this machine"]),
    }
    for name, (head, body, expected) in cases.items():
        page = tmp_path / f"{name}.html"
        page.write_text(HEAD.format(head, body))
        found = lens_report.report_problems(page)
        assert len(found) == len(expected) and all(w in f for w, f in zip(expected, found)), (name, found)


def test_missing_vendored_assets_are_a_clear_error(tmp_path):
    with pytest.raises(lens_report.ReportError, match="make assets"):
        lens_report.serve_assets(tmp_path / "out", vendor=tmp_path / "no-vendor")


def test_nbconvert_loads_the_vendored_scripts_beside_the_report(tmp_path):
    convert = lens_report.commands("standard", "", tmp_path, "smoke")[1]
    assert f"--HTMLExporter.mathjax_url={lens_report.MATHJAX}" in convert
    assert f"--HTMLExporter.require_js_url={lens_report.REQUIRE_JS}" in convert
    assert not any("://" in arg for arg in convert)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """`make lens MODEL=standard` on 8 test images (smoke profile), in a temporary run store."""
    assert fetch_web_assets.main([]) == 0, "could not fetch the web assets (see stderr)"
    tmp = tmp_path_factory.mktemp("lens_report")
    env = {**os.environ, "LENS_MODEL": "standard", "LENS_PROFILE": "smoke", "LENS_OUT_DIR": str(tmp / "out"),
           "LENS_PARAMS": "-p n_images 8 -p pgd_steps 3 -p device cpu", "ENERGY_RUNS": str(tmp / "runs"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    old = dict(os.environ)
    os.environ.update(env)   # papermill's kernel inherits the run store
    try:
        assert lens_report.main(env) == 0
    finally:
        os.environ.clear()
        os.environ.update(old)
    return tmp, tmp / "out" / "standard.html"


def test_the_report_is_offline_and_shows_no_machine_path(report):
    tmp, page = report
    text = page.read_text(encoding="utf-8")
    assert lens_report.report_problems(page) == []
    assert "cdnjs" not in text and "unpkg" not in text and str(tmp) not in text and str(ROOT) not in text
    assert f'<script src="{lens_report.MATHJAX}">' in text and lens_report.MATHJAX_CONFIG in text
    assert (page.parent / lens_report.MATHJAX).is_file() and (page.parent / lens_report.REQUIRE_JS).is_file()
    assert "&lt;run store&gt;/lens/" in text                      # the record, inside the run store


def test_the_report_passes_the_books_chromium_check(report):
    _, page = report
    reports, problems = check_html.check_pages(page.parent, [page.name])
    assert not problems, "\n".join(problems)
    r = reports[page.name]
    assert r["mjx_containers"] >= 1 and not r["math_untypeset"]        # the vendored MathJax typeset it
    assert [f["drawn"] for f in r["figures"]] == [True] and not r["requests_external"] and not r["external"]
