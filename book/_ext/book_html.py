"""Three fixes for every page of the built book (a Sphinx extension, `_config.yml`: local_extensions).

* sphinx-thebe 0.3.1 adds its inline `const THEBE_JS_URL = ...` script twice (its handler runs on each
  `env-before-read-docs`), and the second declaration is a console error on every page: a page keeps
  one copy of each script.
* pydata-sphinx-theme logs "Got invalid theme mode" when no default mode is set: the book sets light.
* The theme draws its icons with Font Awesome's 1.5 MB fontawesome.js on every page; the book uses the
  same icons as a web font (vendor/fontawesome-free, fetched by tools/fetch_web_assets.py: ~0.4 MB).
"""

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


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("builder-inited", _icon_font)
    app.connect("build-finished", _drop_icon_script)
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
