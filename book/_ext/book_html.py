"""Four fixes for every page of the built book (a Sphinx extension, `_config.yml`: local_extensions).

* sphinx-thebe 0.3.1 adds its inline `const THEBE_JS_URL = ...` script twice (its handler runs on each
  `env-before-read-docs`), and the second declaration is a console error on every page: a page keeps
  one copy of each script.
* pydata-sphinx-theme logs "Got invalid theme mode" when no default mode is set: the book sets light.
* The theme draws its icons with Font Awesome's 1.5 MB fontawesome.js on every page; the book uses the
  same icons as a web font (vendor/fontawesome-free, fetched by tools/fetch_web_assets.py: ~0.4 MB).
* The chapters cite the project's technical specification of the papers as "PAPER.md 2.1" (prose, glued
  text, tables). `tools/book.py` renders the spec (the repository's `PAPER.md`) as the page
  `book/paper_spec` with an anchor per section (`spec_page`); every "PAPER.md x.y" of every page becomes a
  link to its section there (`link_references`), and one naming no section of the spec is a build warning
  (a strict build fails on it).
"""

import os
import re
from pathlib import Path

FONT_AWESOME_CSS = "vendor/fontawesome-free/css/all.min.css"
# the theme's template writes this tag itself (webpack-macros.html), so it is taken out of the pages
FONT_AWESOME_JS = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')


def _default_mode(app, config):
    config.html_context = {**(config.html_context or {}), "default_mode": "light"}


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files") or []:
        attributes = getattr(script, "attributes", {}) or {}
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"] = unique


def _icon_font(app):
    app.add_css_file(FONT_AWESOME_CSS)


def _drop_icon_script(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        lean = FONT_AWESOME_JS.sub("", text)
        if lean != text:
            page.write_text(lean, encoding="utf-8")


# ----------------------------------------------------------------------------- "PAPER.md x.y" links
SPEC_SOURCE = "PAPER.md"             # the repository's copy of the spec (README: "The papers' claims")
SPEC_PAGE = "book/paper_spec"        # the page tools/book.py generates from it (listed in _toc.yml)
# a numbered section heading of the spec: "## 4. Result tables", "### 2.6b Baseline losses ..."
_SECTION = re.compile(r"^(#{2,3}) (\d+(?:\.\d+[a-z]?)?)\.?\s", re.M)
_NUMBER = r"\d+(?:\.\d+[a-z]?)?"
# "PAPER.md", "PAPER.md 2.1", "PAPER.md 2.5, 4.2", "PAPER.md 2.2-2.7", "PAPER.md 3.3/3.4", "PAPER.md 4"
REFERENCE = re.compile(r"PAPER\.md(?!\w)(?:[ \u00a0](" + _NUMBER + r")(?!\w|\.\d)"
                       r"((?:\s*(?:,|/|-|\u2013|and)\s*\d+\.\d+[a-z]?(?!\w|\.\d))*))?")
_MORE = re.compile(r"(\s*(?:,|/|-|\u2013|and)\s*)(\d+\.\d+[a-z]?)")
PAGE_TITLE = "The papers' claims: the technical specification (PAPER.md)"
PAGE_INTRO = (
    "The chapters cite this page as \"PAPER.md x.y\": it is the project's technical specification of the two "
    "papers, the one source the library and the chapters were written from, rendered here unchanged (its file "
    "is `PAPER.md` at the root of the repository). It paraphrases the papers for developers who could not read "
    "them in full; each statement carries its provenance tag (section 0), and the papers themselves are on "
    "arXiv: [2407.06315](https://arxiv.org/abs/2407.06315) (ECCV 2024) and "
    "[2505.22486](https://arxiv.org/abs/2505.22486) (the 2025 extension).")


def anchor(section: str) -> str:
    """The HTML id of a spec section on the spec page: "2.6b" -> "paper-2-6b"."""
    return "paper-" + section.replace(".", "-")


def spec_sections(spec: str) -> list[str]:
    """The numbered sections of the spec, in order: ["0", "1", "1.1", ..., "2.6b", ..., "6"]."""
    return [m.group(2) for m in _SECTION.finditer(spec)]


def spec_page(spec: str) -> str:
    """The spec as a MyST page: its own title replaced by `PAGE_TITLE` and `PAGE_INTRO`, and a label
    (`anchor`) before every numbered section heading; everything else verbatim."""
    lines = spec.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"{SPEC_SOURCE} must start with its title ('# ...'); it starts {lines[:1]!r}")
    body = _SECTION.sub(lambda m: f"({anchor(m.group(2))})=\n{m.group(0)}", "\n".join(lines[1:]))
    return f"# {PAGE_TITLE}\n\n{PAGE_INTRO}\n{body}\n"


def references(text: str) -> list[list[str]]:
    """The sections each "PAPER.md ..." reference in `text` names ([] for the bare name)."""
    out = []
    for m in REFERENCE.finditer(text):
        out.append(([m.group(1)] if m.group(1) else []) + [s for _, s in _MORE.findall(m.group(2) or "")])
    return out


def dangling(text: str, sections) -> list[str]:
    """The sections referenced in `text` ("PAPER.md 9.9") that are not sections of the spec."""
    known = set(sections)
    return [s for found in references(text) for s in found if s not in known]


# Inside these elements text is left alone (no link in a link or in the window title); scripts, styles
# and comments are never text. Code is linked too (a shown cell's comment cites the spec).
_SKIP = ("a", "title", "textarea")
# a tag starts with "<" and a letter, "/" or "!" (HTML's rule: "ρ < 0" in a table cell is text)
_TOKEN = re.compile(r"(<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->|<[A-Za-z/!?][^>]*>)", re.S | re.I)
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)")


def link_references(html: str, href: str, known) -> tuple[str, list[str]]:
    """Every "PAPER.md x.y" in the text of an HTML page as a link `href#anchor(x.y)` (the bare
    "PAPER.md": `href`); a section not in `known` stays text and is returned (dangling)."""
    known, missing = set(known), []

    def link(section: str, text: str) -> str:
        if section not in known:
            missing.append(section)
            return text
        return f'<a class="reference internal paper-ref" href="{href}#{anchor(section)}">{text}</a>'

    def replace(m: re.Match) -> str:
        if not m.group(1):
            return f'<a class="reference internal paper-ref" href="{href}">{m.group(0)}</a>'
        out = link(m.group(1), f"PAPER.md{m.group(0)[8]}{m.group(1)}")
        for sep, section in _MORE.findall(m.group(2) or ""):
            out += sep + link(section, section)
        return out

    parts, skipping = [], []
    for i, piece in enumerate(_TOKEN.split(html)):
        if i % 2:                                      # a tag, comment, script or style: as it is
            tag = _TAG.match(piece)
            if tag and tag.group(2).lower() in _SKIP and not piece.endswith("/>"):
                if tag.group(1):
                    if tag.group(2).lower() in skipping:
                        skipping.remove(tag.group(2).lower())
                else:
                    skipping.append(tag.group(2).lower())
            parts.append(piece)
        else:
            parts.append(piece if skipping or "PAPER.md" not in piece else REFERENCE.sub(replace, piece))
    return "".join(parts), missing


def _link_spec_references(app, exception):
    """build-finished: link every page's "PAPER.md x.y" to the spec page; warn about dangling ones."""
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    out = Path(app.outdir)
    spec = out / (SPEC_PAGE + ".html")
    known = set(re.findall(r'\bid="paper-([^"]+)"', spec.read_text(encoding="utf-8"))) if spec.is_file() else set()
    known = {k.replace("-", ".") for k in known}
    for page in sorted(out.rglob("*.html")):
        if page == spec:
            continue
        text = page.read_text(encoding="utf-8")
        if "PAPER.md" not in text:
            continue
        href = Path(os.path.relpath(spec, page.parent)).as_posix()
        linked, missing = link_references(text, href, known)
        if not spec.is_file() and REFERENCE.search(linked):
            log.warning(f"{page.relative_to(out)} cites PAPER.md but the book has no {SPEC_PAGE} page (list it in "
                        "_toc.yml: tools/book.py generates it)")
        for section in dict.fromkeys(missing):
            log.warning(f"{page.relative_to(out)}: 'PAPER.md {section}' names no section of {SPEC_SOURCE} "
                        f"(its sections: {', '.join(sorted(known)) or 'none'})")
        if linked != text:
            page.write_text(linked, encoding="utf-8")


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("builder-inited", _icon_font)
    app.connect("build-finished", _drop_icon_script)
    app.connect("build-finished", _link_spec_references)
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
