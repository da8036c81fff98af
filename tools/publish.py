"""Publish the built book: push `_build/html` to the `gh-pages` branch of a git remote (ghp-import).

Only a clean build is published. `tools/book.py build` leaves `_build/build_record.json` beside the
HTML; publishing is refused, with a one-line reason and nothing pushed, when

* there is no build record (nothing built, or the last build stopped before writing it);
* a chapter did not execute cleanly (failed, error outputs, interrupted, or no execution record);
* the build was not strict (`-W -n --keep-going`) or reported a warning or error, or failed;
* chapters were executed again after the build (`_build/executed/execution.json` changed);
* `_build/html` is not the HTML that build produced (its digest differs from the record's).

Usage (`make publish [REMOTE=origin]` calls it):
    python tools/publish.py [--remote origin] [--branch gh-pages] [--build _build] [--repo .]
    python tools/publish.py --check      # only verify the build record, push nothing
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book  # noqa: E402  (the writer of the records read here)

ROOT = book.ROOT


class PublishRefused(RuntimeError):
    """The book must not be published; the message says why and how to fix it."""


def verify(build_dir: Path) -> dict:
    """The build record of `build_dir` (`_build`) if its HTML may be published, else PublishRefused."""
    build_dir = Path(build_dir)
    html = build_dir / "html"
    record_path = build_dir / book.BUILD_RECORD
    if not record_path.is_file():
        raise PublishRefused(f"no build record {record_path}: build the book first with `make book` "
                             "(a failed build leaves none)")
    try:
        record = json.loads(record_path.read_text())
    except json.JSONDecodeError as err:
        raise PublishRefused(f"{record_path} is not valid JSON ({err}): rebuild with `make book`") from None
    if not isinstance(record, dict) or not {"build_id", "chapters", "html_digest"} <= record.keys():
        raise PublishRefused(f"{record_path} lacks build_id/chapters/html_digest (not written by "
                             "`tools/book.py build`): rebuild with `make book`")
    chapters = record["chapters"]
    bad = {nb: c for nb, c in chapters.items() if c.get("status") != "ok"}
    if bad:
        nb, c = next(iter(bad.items()))
        why = c.get("error") or f"status {c.get('status', 'unknown')!r}"
        raise PublishRefused(f"{len(bad)} chapter(s) did not execute cleanly, first {nb}: {why}; "
                             "fix it and rebuild with `make book`")
    if not record.get("strict"):
        raise PublishRefused(f"the book was built without {' '.join(book.STRICT_FLAGS)} (--no-strict), so "
                             "warnings were not errors: rebuild with `make html`")
    warnings = record.get("warnings") or []
    if warnings:
        raise PublishRefused(f"the build had {len(warnings)} warning(s), first: {warnings[0]}; "
                             "fix them and rebuild with `make html`")
    if record.get("returncode") != 0:
        raise PublishRefused(f"the build failed (jupyter-book exit {record.get('returncode')}): "
                             "see its output, fix it and rebuild with `make book`")
    executed = build_dir / "executed"
    current = book.read_execution_record(executed)
    if (executed / book.EXECUTION_RECORD).is_file() and current != record.get("execution"):
        failed = {nb: c for nb, c in current.items() if c.get("status") != "ok"}
        if failed:
            nb, c = next(iter(failed.items()))
            raise PublishRefused(f"{nb} did not execute cleanly after the last build "
                                 f"({c.get('error') or 'status ' + repr(c.get('status'))}): fix it and run `make book`")
        raise PublishRefused(f"chapters were executed after the last build ({executed / book.EXECUTION_RECORD} "
                             "changed): rebuild with `make html` (or `make book`)")
    if not (html / "index.html").is_file():
        raise PublishRefused(f"{html / 'index.html'} not found: rebuild with `make html`")
    missing = [p for p in record.get("pages", []) if not (html / p).is_file()]
    if missing:
        raise PublishRefused(f"page(s) {missing} missing from {html}: rebuild with `make html`")
    if book.tree_digest(html) != record.get("html_digest"):
        raise PublishRefused(f"{html} is not the HTML of the recorded build (it changed afterwards): "
                             "rebuild with `make html`")
    return record


def summary(record: dict) -> str:
    commit = (record.get("commit") or "no commit")[:12] + (" (dirty)" if record.get("dirty") else "")
    return (f"book built {record.get('built_utc')} from {commit}, profile {record.get('profile')}, "
            f"{len(record.get('pages', []))} pages, build {record.get('build_id')}")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def publish(build_dir: Path, remote: str, branch: str = "gh-pages", repo: Path = ROOT) -> dict:
    """Verify the build, then `ghp-import -n -p -f` its HTML to `remote`'s `branch`. Returns the record."""
    record = verify(build_dir)
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise PublishRefused(f"{repo} is not a git repository: publish from a clone of the project")
    if _git(repo, "remote", "get-url", remote).returncode != 0:
        raise PublishRefused(f"git remote {remote!r} not found in {repo}: add it with "
                             f"`git remote add {remote} <url>` or name another with `make publish REMOTE=<name>`")
    # Bring the remote's branch in, so ghp-import adds a commit on top of the published history.
    _git(repo, "fetch", "--quiet", remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")
    message = f"Publish the book: {summary(record)}"
    # -n: .nojekyll, or GitHub Pages' Jekyll would drop Sphinx's _static/ and _images/ folders.
    cmd = [sys.executable, "-m", "ghp_import", "-n", "-p", "-f", "-r", remote, "-b", branch,
           "-m", message, str(Path(build_dir).resolve() / "html")]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ghp-import could not push to {remote} {branch} "
                           f"(exit {proc.returncode}): {_last_line(proc.stderr + proc.stdout)}")
    # ghp-import exits 0 even when its commit failed: check that the remote holds this build's commit.
    local = _git(repo, "rev-parse", "--verify", f"refs/heads/{branch}").stdout.strip()
    pushed = _git(repo, "ls-remote", remote, f"refs/heads/{branch}").stdout.split()
    if record["build_id"] not in _git(repo, "log", "-1", "--format=%B", local).stdout \
            or not pushed or pushed[0] != local:
        raise RuntimeError(f"ghp-import did not push this build to {remote} {branch}: "
                           f"{_last_line(proc.stdout + proc.stderr)}")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remote", default="origin", help="git remote to push to (default origin)")
    ap.add_argument("--branch", default="gh-pages", help="branch that holds the site (default gh-pages)")
    ap.add_argument("--build", type=Path, default=book.BUILD,
                    help="build folder holding html/ and build_record.json (default _build)")
    ap.add_argument("--repo", type=Path, default=ROOT, help="git repository that pushes (default this one)")
    ap.add_argument("--check", action="store_true", help="only verify that the build may be published")
    args = ap.parse_args(argv)
    try:
        if args.check:
            record = verify(args.build)
            print(f"publish: publishable: {summary(record)}")
            return 0
        record = publish(args.build, args.remote, args.branch, args.repo)
    except PublishRefused as err:
        print(f"publish: refused: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"publish: {err}", file=sys.stderr)
        return 1
    if record.get("dirty"):
        print("publish: note: built from a working tree with uncommitted changes "
              "(the book's Build information page says so)")
    print(f"publish: pushed {summary(record)} to {args.remote} {args.branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
