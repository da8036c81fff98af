"""Fetch the JavaScript the built book needs offline (MathJax, require.js, widget manager, Vega).

By default Jupyter Book's HTML loads these from CDNs; offline, equations stay raw TeX and
widgets vanish. This script gets them with the ordinary `npm` client (`npm pack`), checks each
tarball against the sha512 integrity pinned below (and against what npm reports), and copies
the files the book uses into a git-ignored folder that `_config.yml` serves as static files:

    book/_assets/vendor/{requirejs,html-manager,mathjax,vega,vega-lite,vega-embed,fontawesome-free}/...

Vega, Vega-Lite and vega-embed draw the interactive figures (`energy_lib.figures`, made with Altair),
in the versions Altair's schema names; a figure loads them from the book's own `_static/vendor/`.

Usage:  python tools/fetch_web_assets.py [--dest book/_assets/vendor] [--force]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = ROOT / "book" / "_assets" / "vendor"

# name@version -> (folder under vendor/, sha512 integrity, files/dirs to copy from the tarball's
# `package/` folder). Pinned so a changed tarball is an error, not a silent update.
PACKAGES = {
    "requirejs@2.3.8": (
        "requirejs",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        ["require.js"],
    ),
    "@jupyter-widgets/html-manager@1.0.15": (
        "html-manager",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        ["dist"],  # embed-amd.js plus the icon fonts it references; source maps are dropped
    ),
    "mathjax@3.2.2": (
        "mathjax",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        # the combined component plus what it loads lazily (fonts, TeX extensions, a11y, menu)
        ["es5/tex-mml-chtml.js", "es5/output/chtml", "es5/input/tex/extensions", "es5/a11y",
         "es5/ui", "es5/sre", "LICENSE"],
    ),
    # the interactive figures (energy_lib.figures): Altair 6.3's Vega-Lite 6.4.1 schema
    "vega@6.4.0": (
        "vega",
        "sha512-rHXCq2LpEWCLMjXBEj7hocY9G0/i5TGYRayGGSj06VTF4+l2IG2Z7oeZKCjWbUh/7hTE/mVhbaOPB72wCElh6g==",
        ["build/vega.min.js", "LICENSE"],
    ),
    "vega-lite@6.4.1": (
        "vega-lite",
        "sha512-KO3ybHNouRK4A0al/+2fN9UqgTEfxrd/ntGLY933Hg5UOYotDVQdshR3zn7OfXwQ7uj0W96Vfa5R+QxO8am3IQ==",
        ["build/vega-lite.min.js", "LICENSE"],
    ),
    "vega-embed@7.3.0": (
        "vega-embed",
        "sha512-wQ8s5GaSzqoKgmRfbRolgBrjE2CP7ZKHXqH7NijxMqPjpdWxSs4Dn8tvp9g0giQvh2cK+3p56sxjWWM0wNngGw==",
        ["build/vega-embed.min.js", "LICENSE"],
    ),
    # the theme's icons as a web font (css + woff2, ~0.4 MB loaded) instead of its 1.5 MB fontawesome.js
    # (book/_ext/book_html.py swaps them): the same Font Awesome version as pydata-sphinx-theme's
    "@fortawesome/fontawesome-free@6.5.2": (
        "fontawesome-free",
        "sha512-hRILoInAx8GNT5IMkrtIt9blOdrqHOnPBH+k70aWUAqPZPgopb9G5EQJFpaBx/S8zp2fC+mPW349Bziuk1o28Q==",
        ["css/all.min.css", "webfonts", "LICENSE.txt"],
    ),
}
# Files the book's _config.yml (or energy_lib.figures) points at; their absence after a fetch is an error.
REQUIRED = [
    "requirejs/require.js",
    "html-manager/dist/embed-amd.js",
    "mathjax/es5/tex-mml-chtml.js",
    "mathjax/es5/output/chtml/fonts/woff-v2",
    "mathjax/es5/input/tex/extensions",
    "vega/build/vega.min.js",
    "vega-lite/build/vega-lite.min.js",
    "vega-embed/build/vega-embed.min.js",
    "fontawesome-free/css/all.min.css",
    "fontawesome-free/webfonts/fa-solid-900.woff2",
]
MANIFEST = "VERSIONS.json"


class AssetError(RuntimeError):
    pass


def sri_sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def npm_pack(specs: list[str], workdir: Path) -> list[dict]:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("`npm` not found: the book's offline MathJax/widget files are fetched with "
                         "the npm client. Install it (Debian: `apt-get install -y npm`) and re-run.")
    cmd = [npm, "pack", *specs, "--json", "--pack-destination", str(workdir)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssetError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def fetch(dest: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        reports = npm_pack(list(PACKAGES), tmpdir)
        by_name = {f"{r['name']}@{r['version']}": r for r in reports}
        stage = tmpdir / "vendor"
        manifest = {}
        for spec, (folder, pinned, members) in PACKAGES.items():
            report = by_name.get(spec)
            if report is None:
                raise AssetError(f"npm pack did not report {spec}; got {sorted(by_name)}")
            tgz = tmpdir / report["filename"]
            actual = sri_sha512(tgz)
            if actual != pinned or report["integrity"] != pinned:
                raise AssetError(f"{spec}: integrity mismatch (pinned {pinned}, npm reported "
                                 f"{report['integrity']}, file hashes to {actual}); refusing to use it")
            with tarfile.open(tgz) as tar:
                tar.extractall(tmpdir / folder, filter="data")
            pkg = tmpdir / folder / "package"
            for member in members:
                src, dst = pkg / member, stage / folder / member
                if src.is_dir():
                    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map"))
                elif src.is_file():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                else:
                    raise AssetError(f"{spec}: expected `{member}` in the package, not found")
            manifest[spec] = {"integrity": pinned, "shasum": report["shasum"], "folder": folder}
        missing = [p for p in REQUIRED if not (stage / p).exists()]
        if missing:
            raise AssetError(f"after unpacking, missing {missing}")
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        # replace the destination only once everything is verified
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, dest)
    return manifest


def up_to_date(dest: Path) -> bool:
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    pinned = {spec: integ for spec, (_, integ, _) in PACKAGES.items()}
    return ({k: v["integrity"] for k, v in manifest.items()} == pinned
            and all((dest / p).exists() for p in REQUIRED))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    ap.add_argument("--force", action="store_true", help="fetch even if the folder is up to date")
    args = ap.parse_args(argv)
    if not args.force and up_to_date(args.dest):
        print(f"web assets up to date in {args.dest}")
        return 0
    try:
        manifest = fetch(args.dest)
    except AssetError as err:
        print(f"fetch_web_assets: {err}", file=sys.stderr)
        return 1
    for spec, info in manifest.items():
        print(f"verified {spec} ({info['integrity'][:20]}...) -> {args.dest / info['folder']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
