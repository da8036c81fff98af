"""Check the built HTML book in headless Chromium, offline.

Serves the html folder on a localhost port, opens one probe page per book page; the probe loads
the page in a same-origin iframe, waits for MathJax and the widget manager, inspects the rendered
DOM and writes a JSON report into its own DOM, which `chromium --dump-dom` prints. Per page:

* the page exists and loads;
* every <img> loaded (naturalWidth > 0);
* every math element was typeset by MathJax (`mjx-container`), no raw TeX left;
* no error outputs (tracebacks, `output_error`, tracebacks on stderr);
* no script/stylesheet/image requested from another host (the book must work offline);
* widget views, if any, were rendered by the widget manager.

Usage: python tools/check_html.py _build/html book/intro.html book/01_attack_energies.html ...
"""
from __future__ import annotations

import functools
import http.server
import json
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
    if (imgsDone && (!d.querySelector('.math') || d.querySelector('mjx-container'))) break;
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
  document.getElementById('report').textContent = 'REPORT' + JSON.stringify(r) + 'END';
}
check().catch(e => { document.getElementById('report').textContent = 'REPORT' + JSON.stringify({probe_error: String(e)}) + 'END'; });
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


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith(PROBE_PATH):
            page = self.path.split("?page=", 1)[1] if "?page=" in self.path else "index.html"
            body = PROBE.replace("PAGE", "/" + page.lstrip("/")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):  # quiet
        pass


def serve(html_dir: Path):
    handler = functools.partial(_Handler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
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
                found += problems(page, reports[page])
    finally:
        server.shutdown()
    return reports, found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
    for p in found:
        print("PROBLEM", p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
