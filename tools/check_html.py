"""Check the built HTML book in headless Chromium, offline.

Serves the html folder on a localhost port, opens one probe page per book page; the probe loads
the page in a same-origin iframe, waits for MathJax and the widget manager, inspects the rendered
DOM and writes a JSON report into its own DOM, which `chromium --dump-dom` prints. Per page:

* the page exists and loads;
* every <img> loaded (naturalWidth > 0);
* every math element was typeset by MathJax (`mjx-container`), no raw TeX left;
* no error outputs (tracebacks, `output_error`, tracebacks on stderr);
* no script/stylesheet/image requested from another host (the book must work offline);
* widget views, if any, were rendered by the widget manager;
* nothing of the machinery reaches a reader: no console error (a capture script is injected into every
  page this server serves), no text that looks like a path of the building machine, a traceback, a
  Python warning (outside a `listed-machinery` box: Build information lists the chapters' warnings in
  one on purpose; the other rules read those boxes too) or a progress bar;
* no element wider than the text column at 1,280 px, no literal backtick in the prose;
* every "PAPER.md x.y" the page shows is a link, and every such link reaches an existing anchor of the
  spec page (`reference_problems`, read from the HTML file);
* the page with everything it loads weighs at most `PAGE_BUDGET_BYTES`;
* every interactive figure (`energy_lib.figures`) draws; choosing another option in each of its
  drop-downs changes the drawn data (read back from the Vega view); hovering its first point shows
  that point's image id and energies, and its picture when it has one; its data are one click away (a
  CSV download); no request leaves the book.

`--timing` measures, in real time (no virtual clock), each page's load: navigation start and
DOMContentLoaded to every interactive figure drawn. It prints; nothing is asserted on it.

Usage: python tools/check_html.py [--timing] _build/html book/intro.html book/01_attack_energies.html ...
"""
from __future__ import annotations

import functools
import html.parser
import http.server
import json
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-dev-shm-usage"]
PROBE_PATH = "/__book_probe__.html"
TIMING_PATH = "/__book_timing__.html"
REPORT_PATH = "/__book_report__"
PAGE_BUDGET_BYTES = 5_000_000   # a page with its scripts, styles, images and figure data
# What a reader must never see in a page's text.
MACHINE_PATH = re.compile(r"(?<![\w.:/])(/(?:home|root|tmp|work|Users|usr|var|opt|mnt|srv)/[^\s'\"<>]*"
                          r"|[A-Za-z]:\\[^\s'\"<>]+|\S*(?:site-packages|\.venv)/\S*)")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
PY_WARNING = re.compile(r"\b[A-Z]\w*Warning: ")
# Class of the boxes that show machinery output on purpose (Build information's list of the chapters'
# warnings, written by tools/book.py): only the Python-warning rule spares them.
LISTED_MACHINERY = "listed-machinery"
SPEC_PAGE = "paper_spec.html"   # the spec the chapters cite as "PAPER.md x.y" (book/_ext/book_html.py)
PROGRESS_BAR = re.compile(r"\d+%\|[^|\n]{0,80}\|\s*\d+/\d+")

# Injected first into every HTML page the check serves: records console errors, uncaught errors,
# rejected promises and resources that failed to load, before any of the page's own scripts run.
CAPTURE = """<script>(function () {
  var errors = window.__bookConsoleErrors = [];
  var original = console.error;
  console.error = function () {
    errors.push([].map.call(arguments, function (a) { return String(a && a.stack || a); }).join(" ").slice(0, 300));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && t.getAttribute) {   // an element failed to load what it points at
      var url = t.getAttribute("src") || t.getAttribute("href") || t.getAttribute("xlink:href");
      // an element without a URL requested nothing (Vega draws an image before its data is decoded)
      if (url) errors.push("failed to load " + String(url).slice(0, 120));
      return;
    }
    errors.push(String(e.message || e.error).slice(0, 300));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { errors.push("unhandled rejection: " + String(e.reason).slice(0, 300)); });
})();</script>"""

# Runs inside the probe page; `PAGE` is the page under test. Waits until MathJax has finished
# (or 20 s of virtual time), then reports.
PROBE = r"""<!doctype html><html><body><pre id="report">pending</pre>
<script>
const sleep = ms => new Promise(r => setTimeout(r, ms));
async function check() {
  const f = document.createElement('iframe');
  f.style.width = '1280px'; f.style.height = '2000px';
  const loaded = new Promise(r => { f.onload = r; });
  f.src = 'PAGE'; document.body.appendChild(f);
  await loaded;
  const w = f.contentWindow, d = f.contentDocument;
  for (let i = 0; i < 200; i++) {           // up to 20 s for MathJax / widgets
    const mj = w.MathJax;
    if (mj && mj.startup && mj.startup.promise) { try { await mj.startup.promise; } catch (e) {} }
    const imgsDone = [...d.images].every(im => im.complete);
    const figsDone = [...d.querySelectorAll('.energy-figure')].every(e => e.dataset.drawn || e.dataset.error);
    if (imgsDone && figsDone && (!d.querySelector('.math') || d.querySelector('mjx-container'))) break;
    await sleep(100);
  }
  await sleep(300);
  const r = {title: d.title, url: w.location.pathname};
  r.images = [...d.images].map(im => ({src: (im.getAttribute('src') || '').slice(0, 120), w: im.naturalWidth}));
  r.math_elements = d.querySelectorAll('.math').length;
  r.math_untypeset = [...d.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container'))
                       .map(e => e.textContent.slice(0, 80));
  r.mjx_containers = d.querySelectorAll('mjx-container').length;
  r.mathjax_loaded = !!(w.MathJax && w.MathJax.version);
  r.errors = [...d.querySelectorAll('.output_error, .traceback, .output.error, [class*="output_traceback"]')]
               .map(e => e.textContent.slice(0, 300));
  r.stderr_tracebacks = [...d.querySelectorAll('.stderr, .output.stderr')]
               .map(e => e.textContent).filter(t => /Traceback \(most recent call last\)/.test(t))
               .map(t => t.slice(0, 300));
  const ext = u => /^(https?:)?\/\//.test(u || '') && !u.startsWith(location.origin);
  r.external = [...d.querySelectorAll('script[src], link[rel~="stylesheet"][href], img[src]')]
               .map(e => e.getAttribute('src') || e.getAttribute('href')).filter(ext);
  r.widget_views = d.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  r.widgets_rendered = d.querySelectorAll('.jupyter-widgets, .widget-container, .widget-inline-hbox').length;
  r.text_chars = (d.body ? d.body.innerText.length : 0);
  r.text = d.body ? d.body.innerText : '';
  // the same, less the boxes that list Python warnings on purpose (Build information): only the warning
  // rule reads this one
  const listed = [...d.querySelectorAll('.LISTED_MACHINERY')];
  listed.forEach(e => { e.dataset.display = e.style.display; e.style.display = 'none'; });
  r.text_unlisted = d.body ? d.body.innerText : '';
  listed.forEach(e => { e.style.display = e.dataset.display; });
  r.figures = [];
  for (const fig of d.querySelectorAll('.energy-figure')) r.figures.push(await exploreFigure(w, fig));
  r.console_errors = w.__bookConsoleErrors || ['the console capture script did not run'];
  const nav = w.performance.getEntriesByType('navigation')[0];
  const res = w.performance.getEntriesByType('resource');
  r.page_bytes = (nav ? nav.transferSize : 0) + res.reduce((s, e) => s + (e.transferSize || 0), 0);
  r.requests_external = res.map(e => e.name).filter(u => /^https?:/.test(u) && !u.startsWith(location.origin));
  r.too_wide = tooWide(w, d);
  r.backticks = proseBackticks(d);
  document.getElementById('report').textContent = 'REPORT' + JSON.stringify(r) + 'END';
}
// Elements that reach past the text column at the iframe's 1,280 px (the outermost only), and scrolling
// boxes whose content is wider than they are; code cells may scroll, tables, equations and figures not.
function tooWide(w, d) {
  const col = d.querySelector('article.bd-article') || d.querySelector('main') || d.body;
  if (!col) return [];
  const right = col.getBoundingClientRect().right + 2, out = [];
  const report = (el, over, width) => out.push({
    what: el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : ''),
    width: Math.round(width), over: Math.round(over), text: (el.innerText || el.textContent || '').trim().slice(0, 60)});
  (function walk(el) {
    for (const c of el.children) {
      if (c.matches('pre, div.highlight, script, style')) continue;
      const b = c.getBoundingClientRect();
      if (b.width && b.height && b.right > right) { report(c, b.right - right + 2, b.width); continue; }
      if (/(auto|scroll)/.test(w.getComputedStyle(c).overflowX) && c.scrollWidth > c.clientWidth + 2) {
        report(c, c.scrollWidth - c.clientWidth, c.scrollWidth); continue;
      }
      walk(c);
    }
  })(col);
  return out;
}
// Prose (outside code) that shows a literal backtick: markdown that was never rendered.
function proseBackticks(d) {
  const out = [], walker = d.createTreeWalker(d.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.nodeValue.includes('`') || n.parentElement.closest('code, pre, script, style, .highlight, kbd, samp')) continue;
    out.push(n.nodeValue.trim().slice(0, 80));
  }
  return out;
}
// The marks a Vega view has drawn for rows with an image id (points, image cells) (with their data), in scenegraph order.
function drawnItems(view) {
  const out = [];
  (function walk(node) {
    if (!node) return;
    if (node.marktype && node.marktype !== 'group')   // points, cells: any mark whose rows carry an image id
      (node.items || []).forEach(i => { if (i.datum && 'image' in i.datum) out.push(i); });
    else (node.items || []).forEach(walk);
  })(view.scenegraph().root);
  return out;
}
const drawnKey = view => JSON.stringify(drawnItems(view).map(i => i.datum));
async function choose(w, view, sel, index) {
  sel.selectedIndex = index;
  sel.dispatchEvent(new w.Event('change', {bubbles: true}));
  sel.dispatchEvent(new w.Event('input', {bubbles: true}));
  await view.runAsync();
}
async function exploreFigure(w, fig) {
  const rep = {name: fig.dataset.figure || fig.id, drawn: !!fig.energyView, error: fig.dataset.error || null};
  const view = fig.energyView;
  if (!view) return rep;
  rep.points = drawnItems(view).length;
  const link = fig.querySelector('a.energy-figure-data[download]');
  rep.download = link ? link.getAttribute('download') : null;
  rep.selects = [];
  for (const sel of fig.querySelectorAll('select')) {
    const entry = {name: sel.name, options: sel.options.length};
    if (sel.options.length > 1) {
      const orig = sel.selectedIndex, before = drawnKey(view);
      entry.changed_to = [];
      for (let k = 0; k < sel.options.length; k++) {   // every other option changes the drawn data
        if (k === orig) continue;
        await choose(w, view, sel, k);
        entry.changed_to.push([sel.options[k].text, drawnKey(view) !== before]);
      }
      await choose(w, view, sel, orig);
      entry.restored = drawnKey(view) === before;
    }
    rep.selects.push(entry);
  }
  const items = drawnItems(view), marks = items.filter(i => i.mark && i.mark.marktype !== 'image');
  const item = marks[0] || items[0];   // a point or a cell (a sheet of pictures carries no tooltip)
  if (item && item._svg) rep.hover = await hover(w, item);
  // a point without a hover picture (when the figure has some) must show none, not a broken one
  const plain = marks.find(i => i !== item && i.datum && 'picture' in i.datum && !i.datum.picture);
  if (plain && plain._svg) rep.hover_plain = await hover(w, plain);
  return rep;
}
async function hover(w, item) {
  const el = item._svg, b = el.getBoundingClientRect();
  const at = {bubbles: true, cancelable: true, clientX: b.x + b.width / 2, clientY: b.y + b.height / 2, view: w};
  for (const type of ['pointerover', 'pointermove', 'mouseover', 'mousemove'])
    el.dispatchEvent(type.startsWith('pointer') ? new w.PointerEvent(type, at) : new w.MouseEvent(type, at));
  await sleep(200);
  const tip = w.document.getElementById('vg-tooltip-element');
  return {datum: Object.fromEntries(Object.entries(item.datum).filter(([k]) => !k.startsWith('Symbol'))),
          tooltip: tip ? tip.innerText : null,
          pictures: tip ? [...tip.querySelectorAll('img')].map(im => im.complete ? im.naturalWidth : -1) : [],
          tooltip_visible: !!tip && w.getComputedStyle(tip).visibility !== 'hidden' && tip.classList.contains('visible')};
}
check().catch(e => { document.getElementById('report').textContent = 'REPORT' + JSON.stringify({probe_error: String(e)}) + 'END'; });
</script></body></html>""".replace("LISTED_MACHINERY", LISTED_MACHINERY)


# Real-time load of one page (`--timing`): navigation start and DOMContentLoaded to every interactive
# figure drawn (or the load event on a page without one), posted back to the server.
TIMING = r"""<!doctype html><html><body><script>
const f = document.createElement('iframe');
f.style.width = '1280px'; f.style.height = '2000px'; f.src = 'PAGE'; document.body.appendChild(f);
const t = setInterval(() => {
  const w = f.contentWindow, d = f.contentDocument;
  if (!w || !d || w.location.pathname !== 'PAGE' || d.readyState !== 'complete'
      || !w.performance.getEntriesByType('navigation').length) return;   // not the blank document first
  const figs = [...d.querySelectorAll('.energy-figure')];
  if (!figs.every(e => e.dataset.drawn || e.dataset.error)) return;
  clearInterval(t);
  const nav = w.performance.getEntriesByType('navigation')[0];
  const res = w.performance.getEntriesByType('resource');
  fetch('REPORT', {method: 'POST', body: JSON.stringify({
    page: 'PAGE', figures: figs.length, dcl_ms: nav.domContentLoadedEventStart,
    drawn_ms: figs.length ? w.performance.now() : nav.loadEventStart,
    bytes: nav.transferSize + res.reduce((s, e) => s + (e.transferSize || 0), 0)})});
}, 5);
</script></body></html>"""


class ChromiumMissing(RuntimeError):
    pass


def find_chromium() -> str:
    for cand in CHROMIUM_CANDIDATES:
        path = shutil.which(cand)
        if path:
            return path
    raise ChromiumMissing("headless Chromium not found (looked for /usr/bin/chromium): the HTML "
                          "check needs it. Install it with `apt-get update && apt-get install -y chromium`.")


def with_capture(html: str) -> str:
    """The page with `CAPTURE` as the first thing its <head> runs (or the document's first element)."""
    m = re.search(r"<head(\s[^>]*)?>", html, re.I)
    at = m.end() if m else 0
    return html[:at] + CAPTURE + html[at:]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def _send_html(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith((PROBE_PATH, TIMING_PATH)):
            page = self.path.split("?page=", 1)[1] if "?page=" in self.path else "index.html"
            probe_page = PROBE if self.path.startswith(PROBE_PATH) else TIMING.replace("REPORT", REPORT_PATH)
            return self._send_html(probe_page.replace("PAGE", "/" + page.lstrip("/")).encode())
        page = self.translate_path(self.path)
        if page.endswith(".html") and Path(page).is_file():
            return self._send_html(with_capture(Path(page).read_text(encoding="utf-8", errors="replace")).encode())
        super().do_GET()

    def do_POST(self):   # the timing probe's report
        if self.path.startswith(REPORT_PATH):
            length = int(self.headers.get("Content-Length") or 0)
            self.server.reports.put(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(204)
            self.end_headers()
            return
        self.send_error(404)

    def log_message(self, *args):  # quiet
        pass


def serve(html_dir: Path):
    handler = functools.partial(_Handler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.reports = queue.Queue()
    server.handle_error = lambda request, address: None   # a browser closed mid-transfer: nothing to report
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def probe(chromium: str, url: str, budget_ms: int = 30000, timeout_s: int = 120) -> dict:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", "--window-size=1400,2200", "--dump-dom", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    m = re.search(r"REPORT(.*?)END", proc.stdout, re.S)
    if not m:
        return {"probe_error": f"no report from Chromium (exit {proc.returncode}): {proc.stderr[-500:]}"}
    import html as _html
    return json.loads(_html.unescape(m.group(1)))


def problems(page: str, r: dict) -> list[str]:
    """Human-readable problems in one page report (empty list = page is fine)."""
    if "probe_error" in r:
        return [f"{page}: {r['probe_error']}"]
    out = []
    if r.get("text_chars", 0) < 50 or "404" in (r.get("title") or ""):
        out.append(f"{page}: page is empty or missing (title {r.get('title')!r})")
    out += [f"{page}: image did not load: {im['src']}" for im in r["images"] if im["w"] <= 0]
    if r["math_elements"] and not r["mathjax_loaded"]:
        out.append(f"{page}: has {r['math_elements']} math element(s) but MathJax did not load")
    out += [f"{page}: equation not rendered by MathJax: {t!r}" for t in r["math_untypeset"]]
    out += [f"{page}: error output: {t!r}" for t in r["errors"]]
    out += [f"{page}: traceback on stderr: {t!r}" for t in r["stderr_tracebacks"]]
    out += [f"{page}: loads from another host (breaks offline use): {u}" for u in r["external"]]
    if r["widget_views"] and not r["widgets_rendered"]:
        out.append(f"{page}: {r['widget_views']} widget view(s) but none rendered (widget manager JS?)")
    out += [f"{page}: console error: {e}" for e in r.get("console_errors", [])]
    out += [f"{page}: request leaves the book (breaks offline use): {u}" for u in r.get("requests_external", [])]
    text = r.get("text", "")
    for what, pattern, where in (("a path of the building machine", MACHINE_PATH, text),
                                 ("a traceback", TRACEBACK, text),
                                 ("a Python warning", PY_WARNING, r.get("text_unlisted", text)),
                                 ("a progress bar", PROGRESS_BAR, text)):
        out += [f"{page}: text shows {what}: {m.group(0)[:80]!r}" for m in list(pattern.finditer(where))[:3]]
    out += [f"{page}: literal backtick in the prose: {t!r}" for t in r.get("backticks", [])]
    out += [f"{page}: {w['what']} is {w['over']} px wider than the text column: {w['text']!r}"
            for w in r.get("too_wide", [])]
    if r.get("page_bytes", 0) > PAGE_BUDGET_BYTES:
        out.append(f"{page}: weighs {r['page_bytes'] / 1e6:.1f} MB with what it loads (budget "
                   f"{PAGE_BUDGET_BYTES / 1e6:.0f} MB)")
    for fig in r.get("figures", []):
        out += figure_problems(page, fig)
    return out


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", (text or "").replace("\u2212", "-"))]


def figure_problems(page: str, fig: dict) -> list[str]:
    """What is wrong with one interactive figure's report (drawn, options change data, hover)."""
    name = f"{page}: interactive figure {fig.get('name')!r}"
    if not fig.get("drawn"):
        return [f"{name} was not drawn ({fig.get('error') or 'no view'})"]
    out = []
    if not fig.get("points"):
        out.append(f"{name} draws no point")
    if not fig.get("download"):
        out.append(f"{name} offers no download of its data")
    for sel in fig.get("selects", []):
        same = [option for option, changed in sel.get("changed_to", []) if not changed]
        if same:
            out.append(f"{name}: choosing {sel['name']} = {same} does not change the drawn data")
        if sel.get("restored") is False:
            out.append(f"{name}: choosing the first {sel['name']} again does not restore its data")
    hover = fig.get("hover")
    if fig.get("points") and not hover:
        out.append(f"{name}: its points cannot be hovered (no SVG element)")
    elif hover:
        shown, datum = _numbers(hover.get("tooltip")), hover.get("datum", {})
        want = {k: datum[k] for k in ("image", "E_x", "E_adv", "dE", "dEy") if isinstance(datum.get(k), (int, float))}
        missing = [k for k, v in want.items() if not any(abs(v - n) < 1e-3 for n in shown)]
        if not hover.get("tooltip") or not hover.get("tooltip_visible"):
            out.append(f"{name}: hovering image {datum.get('image')} shows no tooltip")
        elif missing:
            out.append(f"{name}: the tooltip of image {datum.get('image')} lacks {missing}: {hover['tooltip']!r}")
        if datum.get("picture") and not any(w > 0 for w in hover.get("pictures", [])):
            out.append(f"{name}: image {datum.get('image')} has a hover picture that its tooltip does not show")
    plain = fig.get("hover_plain")
    if plain and plain.get("pictures"):
        out.append(f"{name}: image {plain['datum'].get('image')} has no hover picture, yet its tooltip shows an "
                   "image (a broken one)")
    return out


class _References(html.parser.HTMLParser):
    """Collects the text outside links (scripts and styles are not text) and the spec links' hrefs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_link, self.hidden, self.loose, self.links = 0, 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.in_link += 1
            if "paper-ref" in (attrs.get("class") or "").split():
                self.links.append(attrs.get("href") or "")
        elif tag in ("script", "style", "title"):
            self.hidden += 1

    def handle_endtag(self, tag):
        if tag == "a":
            self.in_link = max(0, self.in_link - 1)
        elif tag in ("script", "style", "title"):
            self.hidden = max(0, self.hidden - 1)

    def handle_data(self, data):
        if not self.in_link and not self.hidden and "PAPER.md" in data:
            self.loose.append(" ".join(data.split())[:80])


def reference_problems(html_dir: Path, page: str) -> list[str]:
    """A "PAPER.md" the page shows that is not a link (but on the spec page itself, which names its file),
    and a spec link (book/_ext/book_html.py's `paper-ref`) whose page or anchor does not exist."""
    path = Path(html_dir) / page
    if not path.is_file():
        return []
    parser = _References()
    parser.feed(path.read_text(encoding="utf-8"))
    loose = [] if path.name == SPEC_PAGE else list(dict.fromkeys(parser.loose))
    out = [f"{page}: 'PAPER.md' shown without a link to the spec page: {t!r}" for t in loose[:3]]
    for href in dict.fromkeys(parser.links):
        target, _, fragment = href.partition("#")
        file = (path.parent / target).resolve()
        if not file.is_file():
            out.append(f"{page}: a PAPER.md link leads to a missing page: {href!r}")
        elif fragment and f'id="{fragment}"' not in file.read_text(encoding="utf-8"):
            out.append(f"{page}: a PAPER.md link leads to a missing anchor: {href!r}")
    return out


def check_pages(html_dir: Path, pages: list[str]) -> tuple[dict, list[str]]:
    """Probe every page; returns (reports by page, problems). Missing files are problems too."""
    html_dir = Path(html_dir)
    chromium = find_chromium()
    reports, found = {}, []
    for page in pages:
        if not (html_dir / page).is_file():
            found.append(f"{page}: not built (no {html_dir / page})")
    server = serve(html_dir)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for page in pages:
            if (html_dir / page).is_file():
                reports[page] = probe(chromium, f"{base}{PROBE_PATH}?page={page}")
                found += problems(page, reports[page]) + reference_problems(html_dir, page)
    finally:
        server.shutdown()
    return reports, found


def _report_for(reports: queue.Queue, page: str, timeout_s: float) -> dict | None:
    """The next timing report of `page` (a late one of an earlier page is skipped), or None."""
    import time

    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            report = reports.get(timeout=left)
        except queue.Empty:
            return None
        if report.get("page") == page:
            return report
    return None


def _end(proc: subprocess.Popen) -> None:
    """Stop a browser this check started, with the helper processes of its group."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def load_times(html_dir: Path, pages: list[str], repeats: int = 3, timeout_s: int = 120) -> dict:
    """Per page, in real time (a fresh Chromium profile each load, so nothing is cached): the median
    over `repeats` loads of navigation start -> figures drawn and DOMContentLoaded -> figures drawn
    (ms), and the bytes transferred. A measurement to print, not a test: it depends on the machine."""
    import statistics

    chromium = find_chromium()
    server = serve(Path(html_dir))
    out = {}
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for page in pages:
            runs = []
            for _ in range(repeats):
                with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
                    # its own process group: the browser and its helpers end together
                    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                             "--window-size=1400,2200", f"{base}{TIMING_PATH}?page={page}"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True)
                    try:
                        runs.append(_report_for(server.reports, "/" + page.lstrip("/"), timeout_s))
                    finally:
                        _end(proc)
            done = [r for r in runs if r]
            if not done:
                out[page] = {"error": f"no report within {timeout_s} s"}
                continue
            out[page] = {"figures": done[0]["figures"], "bytes": done[0]["bytes"], "loads": len(done),
                         "navigation_to_drawn_ms": statistics.median(r["drawn_ms"] for r in done),
                         "dcl_to_drawn_ms": statistics.median(r["drawn_ms"] - r["dcl_ms"] for r in done)}
    finally:
        server.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    timing = "--timing" in argv
    argv = [a for a in argv if a != "--timing"]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        reports, found = check_pages(Path(argv[0]), argv[1:])
    except ChromiumMissing as err:
        print(f"check_html: {err}", file=sys.stderr)
        return 1
    for page, r in reports.items():
        print(f"{page}: {len(r.get('images', []))} img, {r.get('mjx_containers', 0)} equations, "
              f"{r.get('widget_views', 0)} widgets")
        for fig in r.get("figures", []):
            print(f"  interactive figure {fig.get('name')}: {fig.get('points', 0)} points drawn, drop-downs "
                  + ", ".join(f"{s['name']} ({s['options']})" for s in fig.get("selects", [])))
        print(f"  {r.get('page_bytes', 0) / 1e6:.2f} MB with what it loads")
    if timing:
        try:
            for page, t in load_times(Path(argv[0]), argv[1:]).items():
                print(f"{page}: " + (t["error"] if "error" in t else
                      f"load {t['navigation_to_drawn_ms']:.0f} ms from navigation start, "
                      f"{t['dcl_to_drawn_ms']:.0f} ms from DOMContentLoaded to {t['figures']} figure(s) drawn "
                      f"(median of {t['loads']}), {t['bytes'] / 1e6:.2f} MB"))
        except ChromiumMissing as err:
            print(f"check_html: {err}", file=sys.stderr)
            return 1
    for p in found:
        print("PROBLEM", p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
