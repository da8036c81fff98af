"""Publishing the book (tools/publish.py, `make publish`) and the CI workflow that deploys it.

No network: the "remote" is a bare repository in a temporary folder. Most tests publish a small
fake `_build/` (an HTML tree and the build record `tools/book.py build` writes beside it); a tiny
real book, executed and built by tools/book.py, checks that real build records, and the generated
Build information page, are what publishing relies on.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402
import check_html  # noqa: E402
import fetch_web_assets  # noqa: E402
import publish  # noqa: E402

WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
PAGES = ["book/intro.html", "book/01_chapter.html", "book/02_chapter.html", "book/build_info.html"]
NOTEBOOKS = ["book/01_chapter.ipynb", "book/02_chapter.ipynb"]
GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    """Commits (ghp-import's too) need an author; the machine's git config may have none."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A git repository with one commit (a .gitignore for _build/, as in the project)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / ".gitignore").write_text("_build/\n")
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def bare_remote(tmp_path: Path, repo: Path, name: str = "pages") -> Path:
    bare = tmp_path / f"{name}.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", name, str(bare))
    return bare


def branch_files(bare: Path, branch: str = "gh-pages") -> list[str] | None:
    """Files on `branch` of a bare repository, or None if the branch does not exist."""
    proc = git(bare, "ls-tree", "-r", "--name-only", branch, check=False)
    return proc.stdout.split() if proc.returncode == 0 else None


def fake_build(build_dir: Path, edition: str = "first", **changes) -> dict:
    """A small `_build/`: html/ with every page and a clean build record, as `book.py build` writes.
    `changes` overrides record fields (e.g. a failed chapter, warnings)."""
    html = build_dir / "html"
    (html / "_static").mkdir(parents=True, exist_ok=True)
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    (html / "_static" / "style.css").write_text("body {}")
    for page in PAGES:
        (html / page).parent.mkdir(parents=True, exist_ok=True)
        (html / page).write_text(f"<html><body><h1>{page}</h1>{edition} edition</body></html>")
    execution = {nb: {"status": "ok", "profile": "smoke", "parameters": {"profile": "smoke"}, "seconds": 1.0,
                      "commit": "0" * 40, "dirty": False, "finished_utc": "2026-01-01T00:00:00Z"}
                 for nb in NOTEBOOKS}
    record = {"build_id": "fakebuild0001", "built_utc": "2026-01-01T00:00:00Z", "commit": "0" * 40,
              "dirty": False, "profile": "smoke", "execution": execution, "chapters": execution,
              "strict": True, "flags": book.STRICT_FLAGS, "returncode": 0, "warnings": [],
              "pages": PAGES, "html_digest": book.tree_digest(html)}
    record.update(changes)
    (build_dir / book.BUILD_RECORD).write_text(json.dumps(record))
    (build_dir / "executed").mkdir(exist_ok=True)
    (build_dir / "executed" / book.EXECUTION_RECORD).write_text(json.dumps(record["execution"]))
    return record


@pytest.fixture
def site(tmp_path):
    """(repo, bare remote named `pages`, fake build folder inside the repo)."""
    repo = make_repo(tmp_path / "repo", {"README.md": "a project\n"})
    bare = bare_remote(tmp_path, repo)
    fake_build(repo / "_build")
    return repo, bare, repo / "_build"


def run_publish(repo: Path, build: Path, *extra: str, remote: str = "pages") -> int:
    return publish.main(["--repo", str(repo), "--build", str(build), "--remote", remote, *extra])


# ----------------------------------------------------------------------------- make publish
def test_make_publish_pushes_every_page_to_gh_pages(tmp_path):
    """The Makefile target itself, in a repository holding the project's Makefile and tools/."""
    files = {name: (ROOT / name).read_text()   # book.py imports check_html.py
             for name in ("Makefile", "tools/book.py", "tools/check_html.py", "tools/publish.py")}
    repo = make_repo(tmp_path / "repo", files)
    bare = bare_remote(tmp_path, repo)
    record = fake_build(repo / "_build")
    venv = Path(sys.executable).parent.parent
    # -o: never (re)install the requirements from inside a test
    cmd = ["make", "-C", str(repo), "publish", f"VENV={venv}", "REMOTE=pages",
           "-o", str(venv / ".requirements-installed")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = branch_files(bare)
    assert files is not None, "no gh-pages branch on the remote"
    assert set(files) >= {"index.html", ".nojekyll", "_static/style.css", *PAGES}
    message = git(bare, "log", "-1", "--format=%B", "gh-pages").stdout
    assert record["build_id"] in message and "profile smoke" in message
    assert git(repo, "status", "--porcelain").stdout == ""  # nothing tracked was modified


def test_publish_again_adds_a_commit_on_top(site):
    repo, bare, build = site
    assert run_publish(repo, build) == 0
    fake_build(build, edition="second", build_id="fakebuild0002")
    assert run_publish(repo, build) == 0
    log = git(bare, "log", "--format=%B", "gh-pages").stdout
    assert "fakebuild0002" in log and "fakebuild0001" in log  # the published history is kept
    assert "second edition" in git(bare, "show", "gh-pages:book/intro.html").stdout


# ----------------------------------------------------------------------------- refusals
REFUSALS = {
    "chapter failed": (dict(chapters={NOTEBOOKS[0]: {"status": "ok"},
                                      NOTEBOOKS[1]: {"status": "failed", "error": "book/02_chapter.ipynb "
                                                     "failed in the cell executed as [3] (ValueError: boom)"}}),
                       "book/02_chapter.ipynb failed in the cell executed as [3]"),
    "chapter interrupted": (dict(chapters={NOTEBOOKS[0]: {"status": "running"}}), "'running'"),
    "chapter never executed": (dict(chapters={NOTEBOOKS[0]: {"status": "unknown"}}), "'unknown'"),
    "build warnings": (dict(warnings=["book/intro.md:5: WARNING: undefined label: 'x'"], returncode=1),
                       "1 warning(s), first: book/intro.md:5: WARNING: undefined label"),
    "non-strict build": (dict(strict=False, flags=[]), "--no-strict"),
    "build failed": (dict(returncode=2), "jupyter-book exit 2"),
    "stale html": (dict(html_digest="sha256:0"), "changed afterwards"),
}


@pytest.mark.parametrize("defect", sorted(REFUSALS))
def test_refuses_and_pushes_nothing(site, capsys, defect):
    repo, bare, build = site
    changes, words = REFUSALS[defect]
    fake_build(build, **changes)
    assert run_publish(repo, build) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("publish: refused: ") and words in err and "\n" not in err, err
    assert branch_files(bare) is None, "a refused book was pushed"
    assert git(repo, "rev-parse", "--verify", "gh-pages", check=False).returncode != 0


def test_refuses_without_build_record(site, capsys):
    repo, bare, build = site
    (build / book.BUILD_RECORD).unlink()
    assert run_publish(repo, build) == 2
    assert "no build record" in capsys.readouterr().err and branch_files(bare) is None


@pytest.mark.parametrize("status, words", [("ok", "executed after the last build"),
                                           ("failed", "book/01_chapter.ipynb did not execute cleanly "
                                                      "after the last build (boom)")])
def test_refuses_chapters_executed_after_the_build(site, capsys, status, words):
    """`make chapter` after the build, or a `make book` that stopped at a failing chapter: the HTML
    (and its clean record) no longer shows the executed chapters."""
    repo, bare, build = site
    record = fake_build(build)
    rerun = dict(record["execution"])
    rerun[NOTEBOOKS[0]] = {**rerun[NOTEBOOKS[0]], "status": status, "seconds": 2.0}
    if status == "failed":
        rerun[NOTEBOOKS[0]]["error"] = "boom"
    (build / "executed" / book.EXECUTION_RECORD).write_text(json.dumps(rerun))
    assert run_publish(repo, build) == 2
    assert words in capsys.readouterr().err and branch_files(bare) is None


def test_refuses_page_missing_from_html(site, capsys):
    repo, bare, build = site
    # a record whose digest matches the HTML, but a page it lists is not there
    (build / "html" / "book" / "02_chapter.html").unlink()
    record = json.loads((build / book.BUILD_RECORD).read_text())
    record["html_digest"] = book.tree_digest(build / "html")
    (build / book.BUILD_RECORD).write_text(json.dumps(record))
    assert run_publish(repo, build) == 2
    assert "book/02_chapter.html" in capsys.readouterr().err and branch_files(bare) is None


def test_refuses_a_record_not_written_by_book_py(site, capsys):
    repo, bare, build = site
    (build / book.BUILD_RECORD).write_text(json.dumps({"warnings": [], "returncode": 0}))
    assert run_publish(repo, build) == 2
    assert "not written by `tools/book.py build`" in capsys.readouterr().err and branch_files(bare) is None


def test_unknown_remote_is_a_one_line_error(site, capsys):
    repo, _, build = site
    assert run_publish(repo, build, remote="nowhere") == 2
    err = capsys.readouterr().err.strip()
    assert "git remote 'nowhere' not found" in err and "REMOTE=" in err and "\n" not in err


def test_check_only_verifies(site, capsys):
    repo, bare, build = site
    assert run_publish(repo, build, "--check") == 0
    assert "publishable" in capsys.readouterr().out and branch_files(bare) is None


# ----------------------------------------------------------------------------- the real build record
@pytest.fixture(scope="module")
def web_assets():
    assert fetch_web_assets.main([]) == 0, "could not fetch the book's web assets (see stderr)"
    return ROOT / "book" / "_assets" / "vendor"


def tiny_notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny chapter"), params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory, web_assets):
    """A git repository with a one-notebook book whose toc lists the generated build page, executed
    (smoke profile) and built strictly by tools/book.py, as `make book` does."""
    root = tmp_path_factory.mktemp("tinybook")
    (root / "book" / "_assets").mkdir(parents=True)
    (root / "book" / "_assets" / "vendor").symlink_to(web_assets, target_is_directory=True)
    tiny_notebook(root / "book" / "tiny.ipynb", "print(profile)")
    make_repo(root, {
        "_config.yml": (ROOT / "_config.yml").read_text(),
        "book/_ext/book_html.py": (ROOT / "book" / "_ext" / "book_html.py").read_text(),
        "book/_assets/book.css": (ROOT / "book" / "_assets" / "book.css").read_text(),
        "book/intro.md": "# Tiny book\n\nEnergy $E(x) = -\\log\\sum_k e^{f_k(x)}$.\n",
        "book/references.bib": "",
        "_toc.yml": "format: jb-book\nroot: book/intro\nchapters:\n"
                    "  - file: book/tiny\n  - file: book/build_info\n",
    })
    book.execute("smoke", {"n_images": 4}, root=root, out_dir=root / "_build" / "executed")
    src = book.stage(root=root, executed=root / "_build" / "executed", src=root / "_build" / "src")
    html = book.build(src, root, strict=True)
    return root, html


def test_real_build_record_and_build_page(tiny_book):
    root, html = tiny_book
    record = json.loads((root / "_build" / book.BUILD_RECORD).read_text())
    head = git(root, "rev-parse", "HEAD").stdout.strip()
    assert record["commit"] == head and record["dirty"] is False  # _build/ is ignored
    assert record["profile"] == "smoke" and record["strict"] and record["returncode"] == 0
    assert record["warnings"] == []
    chapter = record["chapters"]["book/tiny.ipynb"]
    assert chapter["status"] == "ok" and chapter["commit"] == head
    assert chapter["parameters"] == {"profile": "smoke", "n_images": 4}
    assert record["pages"] == ["book/intro.html", "book/tiny.html", "book/build_info.html"]
    assert record["html_digest"] == book.tree_digest(html)
    page = (html / "book" / "build_info.html").read_text()
    for fact in (head, record["build_id"], "smoke", "n_images=4", record["built_utc"][:10]):
        assert fact in page, f"{fact!r} not on the Build information page"
    nav = (html / "book" / "intro.html").read_text()
    assert 'href="build_info.html"' in nav, "the Build information page is not in the navigation"
    assert not (root / "book" / "build_info.md").exists()  # generated in the staging copy only
    assert git(root, "status", "--porcelain").stdout == ""
    assert publish.verify(root / "_build")["build_id"] == record["build_id"]


def test_real_build_publishes(tiny_book, tmp_path):
    root, _ = tiny_book
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    bare = bare_remote(tmp_path, clone)
    assert run_publish(clone, root / "_build") == 0
    assert set(branch_files(bare)) >= {"index.html", "book/intro.html", "book/tiny.html",
                                       "book/build_info.html", ".nojekyll"}


def test_make_check_html_on_a_real_build(tiny_book, tmp_path):
    """CI's check (`make check-html`) on a real build: the record is clean and every page, the
    generated Build information page included, renders in headless Chromium."""
    try:
        check_html.find_chromium()
    except check_html.ChromiumMissing as err:
        pytest.fail(str(err))  # never skip: the HTML check is part of the test suite
    site = tmp_path / "site"
    shutil.copytree(tiny_book[0], site, symlinks=True)
    shutil.copy2(ROOT / "Makefile", site / "Makefile")
    (site / "tools").mkdir()
    for tool in ("book.py", "publish.py", "check_html.py"):
        shutil.copy2(ROOT / "tools" / tool, site / "tools" / tool)
    venv = Path(sys.executable).parent.parent
    cmd = ["make", "-C", str(site), "check-html", f"VENV={venv}", "-o", str(venv / ".requirements-installed")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("book/intro.html", "book/tiny.html", "book/build_info.html"):
        assert f"{page}: " in proc.stdout, proc.stdout  # check_html reported on it
    record = json.loads((site / "_build" / book.BUILD_RECORD).read_text())
    record["warnings"] = ["book/intro.md:3: WARNING: undefined label: 'x'"]
    (site / "_build" / book.BUILD_RECORD).write_text(json.dumps(record))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0 and "publish: refused: the build had 1 warning(s)" in proc.stderr


def test_real_failed_chapter_is_recorded_and_refused(tiny_book, tmp_path, capsys):
    """What a failing chapter leaves behind (its executed copy with the traceback) builds into
    HTML, but the build record names the failure and nothing is published."""
    root = tmp_path / "failing"
    shutil.copytree(tiny_book[0], root, symlinks=True, ignore=shutil.ignore_patterns("_build"))
    tiny_notebook(root / "book" / "tiny.ipynb", "raise ValueError('boom')")
    executed = root / "_build" / "executed"
    with pytest.raises(book.BookError, match="book/tiny.ipynb failed"):
        book.execute("smoke", root=root, out_dir=executed)
    assert book.read_execution_record(executed)["book/tiny.ipynb"]["status"] == "failed"
    src = book.stage(root=root, executed=executed, src=root / "_build" / "src")
    book.build(src, root, strict=True)  # error outputs are not Sphinx warnings: the build passes
    assert "| `book/tiny.ipynb` | failed |" in (src / "book" / "build_info.md").read_text()
    bare = bare_remote(tmp_path, root)
    assert run_publish(root, root / "_build") == 2
    err = capsys.readouterr().err
    assert "book/tiny.ipynb failed" in err and "ValueError: boom" in err
    assert branch_files(bare) is None


def test_real_build_warnings_are_recorded_and_refused(tiny_book, tmp_path, capsys):
    root = tmp_path / "warning"
    shutil.copytree(tiny_book[0], root, symlinks=True)
    (root / "book" / "intro.md").write_text("# Tiny book\n\nSee {ref}`no-such-label`.\n")
    src = book.stage(root=root, executed=root / "_build" / "executed", src=root / "_build" / "src")
    html = book.build(src, root, strict=False)  # not strict: exit 0, the record still has the warning
    record = json.loads((root / "_build" / book.BUILD_RECORD).read_text())
    assert record["returncode"] == 0 and record["strict"] is False
    assert any("no-such-label" in w for w in record["warnings"]), record["warnings"]
    with pytest.raises(book.BookError):
        book.build(src, root, strict=True)
    record = json.loads((root / "_build" / book.BUILD_RECORD).read_text())
    assert record["returncode"] != 0 and any("no-such-label" in w for w in record["warnings"])
    assert (html / "index.html").is_file()  # --keep-going left HTML behind, yet:
    bare = bare_remote(tmp_path, root)
    assert run_publish(root, root / "_build") == 2
    assert "warning(s), first:" in capsys.readouterr().err and branch_files(bare) is None


def test_the_build_records_git_state_over_the_whole_tracked_tree(tmp_path):
    """tools/book.py records energy_lib.provenance.git_state (tests/test_provenance.py), run store
    included: the pages show the tracked records under runs/."""
    from energy_lib import provenance

    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", "runs/sizing/sizing.json": "{}\n"})
    (repo / "runs" / "sizing" / "sizing.json").write_text('{"points": []}\n')
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert book.git_state(repo) == provenance.git_state(repo, exclude=()) == {"commit": head, "dirty": True}
    assert provenance.git_state(repo)["dirty"] is False   # the records of runs, sizing, bench leave runs/ out
    info = {"build_id": "b", "built_utc": "2026-01-02T03:04:05Z", "commit": "c" * 40, "dirty": True,
            "python": "3.11", "profile": "paper", "chapters": {}}
    assert "**dirty**" in book.build_info_page(info) and "2026-01-02 03:04:05 UTC" in book.build_info_page(info)


def test_a_source_file_cannot_shadow_the_generated_page(tiny_book, tmp_path):
    root = tmp_path / "shadow"
    shutil.copytree(tiny_book[0], root, symlinks=True)
    (root / "book" / "build_info.md").write_text("# Build information\n\nhand-written\n")
    with pytest.raises(book.BookError, match="book/build_info.md.*generated page"):
        book.stage(root=root, executed=root / "_build" / "executed", src=root / "_build" / "src")


def test_toc_lists_the_generated_build_page():
    assert Path("book/build_info.md") in book.chapters()
    assert not (ROOT / "book" / "build_info.md").exists(), "build_info.md is generated, not a source"
    assert Path("book/build_info.html") in book.html_pages()


# ----------------------------------------------------------------------------- the CI workflow
def makefile_targets() -> set[str]:
    """Targets of the project's Makefile, from make's own database (`make -pn`)."""
    out = subprocess.run(["make", "-pn", "-C", str(ROOT), "help"], capture_output=True, text=True).stdout
    targets, lines = set(), out.splitlines()
    for prev, line in zip([""] + lines, lines):
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", line)
        if m and prev != "# Not a target:":
            targets.add(m.group(1))
    return targets


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(wf: dict) -> list[dict]:
    return [s for job in wf["jobs"].values() for s in job.get("steps", [])]


def make_calls(wf: dict) -> list[str]:
    """Targets named by `make ...` in the workflow's run steps."""
    calls = []
    for step in steps(wf):
        for line in step.get("run", "").splitlines():
            for args in re.findall(r"(?:^|[;&|]\s*)make\s+([^;&|#]*)", line.strip()):
                calls += [a for a in args.split() if "=" not in a and not a.startswith("-")]
    return calls


def test_workflow_calls_only_existing_make_targets():
    targets = makefile_targets()
    assert {"book", "publish", "check-html", "test"} <= targets and "no-such-target" not in targets
    calls = make_calls(workflow())
    assert {"book", "check-html"} <= set(calls), calls
    assert set(calls) <= targets, f"workflow calls make targets the Makefile lacks: {set(calls) - targets}"


def test_workflow_triggers_and_deploys_to_pages():
    wf = workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    uses = {s.get("uses", "").split("@")[0]: s for s in steps(wf)}
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    deploy = next(j for j in wf["jobs"].values() if any("deploy-pages" in s.get("uses", "") for s in j["steps"]))
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages" and deploy["needs"] == "build"
    names = [s.get("uses", "").split("@")[0] or s.get("run", "") for s in wf["jobs"]["build"]["steps"]]
    assert names.index("make book") < names.index("make check-html") < names.index("actions/upload-pages-artifact")


def test_workflow_caches_the_run_store_by_the_chapters_configs():
    by_action = {s.get("uses", "").split("@")[0]: s for s in steps(workflow())}
    restore, save = by_action["actions/cache/restore"], by_action["actions/cache/save"]
    assert restore["with"]["path"] == save["with"]["path"]  # the cache version depends on the paths
    key = restore["with"]["key"]
    assert "hashFiles(" in key and "energy_lib/config.py" in key and "book/*.ipynb" in key
    assert save["with"]["key"] == "${{ steps.%s.outputs.cache-primary-key }}" % restore["id"]
    assert save["if"] == "always()"  # trainings that finished before a failure are kept
    paths = restore["with"]["path"].split()
    assert "runs/*" in paths  # every run directory ...
    # ... but tar recurses into what the patterns match, so a tracked record is kept out only if
    # its entry directly under runs/ is excluded: a cached copy must never overwrite or resurrect it.
    tracked = git(ROOT, "ls-files", "runs").stdout.split() + ["runs/published/run-x/robust_eval-x.json"]
    for path in tracked:
        top = "/".join(path.split("/")[:2])
        assert "!" + top in paths, f"{path} is tracked in git but would be restored from the run-store cache"


def test_published_records_are_tracked():
    """runs/published/ is not git-ignored, so CI's checkout holds the same records as a local one."""
    for path in ("runs/published/run-x/robust_eval-x.json", "runs/bench/bench-x.json"):
        assert git(ROOT, "check-ignore", "--no-index", "-q", path, check=False).returncode == 1, path
    assert git(ROOT, "check-ignore", "--no-index", "-q", "runs/run-x/best.pt", check=False).returncode == 0
