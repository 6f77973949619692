"""The shipped pages: every relative link and anchor leads somewhere, every command names real paths, and the
pages written as sessions (the plugin author's guide, the evolution example) run as written."""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import execute, run, subprocess_env

REPO = Path(__file__).resolve().parent.parent
PAGES = [
    "docs/install.md",
    "docs/concepts.md",
    "docs/plugin-authors.md",
    "docs/helm-plugins.md",
    "docs/index.md",
    "docs/api.md",
    "README.md",
    "examples/evolution/README.md",
    "docs/crd-reference.md",
    "docs/types.md",
    "charts/extschema/README.md",
    "deploy/argocd/README.md",
    "docs/diff.md",
    "docs/gitops-ci.md",
]
#: Pages whose code spans name repository paths that must exist.
PATH_PAGES = [
    "docs/install.md",
    "docs/concepts.md",
    "docs/plugin-authors.md",
    "docs/helm-plugins.md",
    "docs/index.md",
    "docs/api.md",
    "docs/gitops-ci.md",
]
#: Pages written as a session: every ```yaml block is a file (``title="NAME"``), every ```sh line runs.
SESSIONS = ["docs/plugin-authors.md", "examples/evolution/README.md", "docs/diff.md"]
SESSIONS = ["docs/plugin-authors.md", "examples/evolution/README.md", "docs/gitops-ci.md"]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("name", PAGES)
def test_relative_links_resolve(name: str) -> None:
    page = REPO / name
    prose = re.sub(r"`[^`]*`", "", page.read_text())  # patterns in code spans are not links
    for target in re.findall(r"\]\(([^)]+)\)", prose):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{name}: no heading for #{anchor} in {resolved.name}"


@pytest.mark.parametrize("name", PATH_PAGES)
def test_repository_paths_in_code_spans_exist(name: str) -> None:
    for path in re.findall(r"`((?:charts|deploy|examples|crds|docs)/[^`* ]*)`", (REPO / name).read_text()):
        assert (REPO / path).exists(), f"{name}: {path} does not exist"


def test_the_index_links_every_page_of_the_docs() -> None:
    index = (REPO / "docs" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([a-z0-9-]+\.md)(?:#[^)]*)?\)", index))
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"
    assert "docs/index.md" in (REPO / "README.md").read_text()


BLOCK = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _session(page: str) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """The page's files (title -> text) and its commands, each with the comment lines that follow it."""
    files: dict[str, str] = {}
    commands: list[tuple[str, list[str]]] = []
    for language, info, body in BLOCK.findall((REPO / page).read_text()):
        if language == "yaml":
            title = re.fullmatch(r'\s*title="([^"]+)"\s*', info)
            assert title, f'{page}: a yaml block without title="FILE" would never be run'
            files[title.group(1)] = body
        elif language == "sh":
            for line in body.splitlines():
                if line.startswith("#"):
                    assert commands, f"{page}: a comment before any command: {line}"
                    commands[-1][1].append(line)
                elif line.strip():
                    commands.append((line, []))
        else:
            assert language in ("text", "json"), f"{page}: a ```{language} block is neither run nor output"
    return files, commands


def _current_hash(args: list[str]) -> str:
    """The hash ``plan`` gives now for what ``apply ARGS`` would run (hashes on a page may be stale)."""
    planned = ["plan", *args[1:]]
    if "--approve" in planned:
        at = planned.index("--approve")
        del planned[at : at + 2]
    outcome = run(*planned, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    return str(outcome.item()["hash"])


def _on_postgresql(sql: str) -> list[str]:
    """A page's SQLite statements for PostgreSQL: ext_<plugin>__<table> is the table <table> of schema ext_<plugin>."""
    return [re.sub(r"\bext_(\w+?)__(\w+)", r'"ext_\1"."\2"', s) for s in sql.split(";") if s.strip()]


def _run_command(page: str, workdir: Path, line: str, outputs: list[str], url: str | None) -> None:
    """Run one line of the page; *url* (PostgreSQL) replaces the page's SQLite file when given."""
    command, _, comment = line.partition(" # ")
    if url is not None:
        command = re.sub(r"sqlite:///\S+\.db", url, command)
    expected = re.match(r"\s*exit (\d+)(?:: (ES\d{3}))?", comment)
    exit_code = int(expected.group(1)) if expected else 0
    code = expected.group(2) if expected else None
    args = shlex.split(command)
    if args[0] == "python":
        done = subprocess.run([sys.executable, *args[1:]], cwd=workdir, env=subprocess_env(), capture_output=True)
        assert done.returncode == exit_code, (page, line, done.stderr)
        return
    if args[0] == "sqlite3" and url is not None:
        for statement in _on_postgresql(args[2]):
            execute(url, statement)
        return
    if args[0] == "sqlite3":
        with sqlite3.connect(workdir / args[1]) as conn:
            conn.executescript(args[2])
        return
    assert args[0] == "extschema", f"{page}: the test cannot run {line!r}"
    args = args[1:]
    if args[0] == "apply" and code != "ES308":  # approve the plan as it is now, by --approve or in the file
        if "--approve" in args:  # the page prints the real hash (the same on every machine and database)
            documented, current = args[args.index("--approve") + 1], _current_hash(args)
            assert documented == current, f"{page}: {line}: the plan's hash is {current}"
        for path in (workdir / a for a in args if a.endswith(".yaml")):
            if "approvedPlanHash:" in path.read_text():
                current = _current_hash(args)
                path.write_text(
                    re.sub(r"approvedPlanHash: [0-9a-f]+", f"approvedPlanHash: {current}", path.read_text())
                )
    outcome = run(*args)
    if outcome.exit_code != exit_code:
        history = run("history", *args[args.index("-d") : args.index("-d") + 2]).stdout if "-d" in args else ""
        raise AssertionError(f"{page}: {line}: exit {outcome.exit_code}\n{outcome.stdout}{outcome.stderr}{history}")
    assert code is None or code in outcome.stderr, (page, line, outcome.stderr)
    for output in outputs:  # the steps the page shows (a plan's, an apply's) are the ones printed
        if output.startswith(("# --   ", "#   - ")) and (url is None or "backed up" not in output):
            assert output[2:] in outcome.stdout, (page, line, output, outcome.stdout)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("page", SESSIONS)
def test_the_session_of_the_page_runs_as_written(
    page: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """As written on SQLite; on PostgreSQL with its URL instead of the SQLite file (backup names differ there)."""
    url = str(request.getfixturevalue("pg_url")) if backend == "postgresql" else None
    files, commands = _session(page)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    used = " ".join(line for line, _ in commands)
    # A file is used when a command names it or the directory it is in (`validate -R gitops`).
    assert all(name in used or Path(name).parts[0] + " " in used for name in files), f"{page}: a file no command uses"
    monkeypatch.chdir(tmp_path)
    for line, outputs in commands:
        _run_command(page, tmp_path, line, outputs, url)
