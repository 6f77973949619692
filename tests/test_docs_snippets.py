"""Every shell snippet of the documentation runs, or says why it cannot here (tests/docsnippets.py has the kinds).

Plain ```sh blocks run page by page as one session, on SQLite as written and on PostgreSQL with its URL instead
of the SQLite file; the plan hashes a page shows are the ones the commands print now.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.docsnippets import KINDS, REPO, RUNNERS, blocks, pages, run_page, runnable


@pytest.mark.parametrize("page", pages())
def test_every_shell_block_is_of_a_documented_kind(page: str) -> None:
    for block in blocks(page):
        if block.language in ("bash", "shell", "console", "zsh"):
            raise AssertionError(f"{page}:{block.line}: write ```sh (a documented kind), not ```{block.language}")
        if block.language == "sh":
            assert block.kind in KINDS, f"{page}:{block.line}: ```sh {block.kind} is none of {sorted(KINDS)}"


def test_the_kinds_are_documented_in_the_index() -> None:
    index = (REPO / "docs" / "index.md").read_text()
    section = index[index.index("## Snippets") :]
    for kind in KINDS:
        row = f"| ```` ```sh{' ' + kind if kind else ''} ```` |"
        assert row in section, f"docs/index.md#snippets does not explain {kind!r}"


@pytest.mark.parametrize("page", sorted(RUNNERS))
def test_a_page_with_its_own_runner_is_run_by_it(page: str) -> None:
    """The test named for the page exists and reads that page (so no page is left unrun silently)."""
    path, _, name = RUNNERS[page].partition("::")
    source = (REPO / path).read_text()
    (function,) = [
        node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef) and node.name == name
    ]
    assert Path(page).name in ast.get_source_segment(source, function) + source, (page, RUNNERS[page])
    assert any(b.language == "sh" and b.kind == "" for b in blocks(page)), f"{page} has nothing for its runner"


def _session(page: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    if url is None:
        monkeypatch.delenv("EXTSCHEMA_DATABASE_URL", raising=False)  # the default: sqlite:///extschema.db here
    else:
        monkeypatch.setenv("EXTSCHEMA_DATABASE_URL", url)
    session = run_page(page, tmp_path, url)
    assert not session.stale, (
        f"{page} shows plan hashes that are no longer printed ({backend}): "
        + ", ".join(f"{old} is now {new}" for old, new in session.stale)
        + "; run `python -m tests.docs_refresh` to write the current ones into the pages"
    )


RUN = [page for page in pages() if runnable(page)]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("page", RUN)
def test_the_snippets_of_the_page_run_as_written(
    page: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("pg_url")) if backend == "postgresql" else None
    _session(page, backend, tmp_path, monkeypatch, url)


def test_the_pages_known_to_run_are_run() -> None:
    """A page that showed sessions stays run (a block marked away by mistake shows here)."""
    expected = {"docs/plugin-authors.md", "docs/evolution.md", "docs/operations.md", "examples/evolution/README.md"}
    assert expected <= set(RUN), sorted(expected - set(RUN))
