"""The shipped pages: every relative link and anchor leads somewhere, every command names real paths (their
shell snippets run in tests/test_docs_snippets.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
