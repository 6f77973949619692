"""``python -m tests.docs_refresh``: write the plan hashes the commands print now into the pages that show them.

Runs every page's session on SQLite (as tests/test_docs_snippets.py does) and replaces each stale hash in its page.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))  # this checkout's extschema, as pytest

from tests.docsnippets import REPO, approval_hash, approval_hashes, pages, run_page, runnable


def refresh(page: str) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        shutil.copytree(REPO / "examples", workdir / "examples")
        here = Path.cwd()
        os.environ.pop("EXTSCHEMA_DATABASE_URL", None)
        os.chdir(workdir)
        try:
            stale = run_page(page, workdir, None).stale
        finally:
            os.chdir(here)
    path = REPO / page
    text = path.read_text()
    for old, new in stale:
        text = text.replace(old, new)
    path.write_text(text)
    return stale


def refresh_approvals() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as scratch:
        now = approval_hash(Path(scratch), f"sqlite:///{scratch}/approval.db")
    changed = []
    for page in pages():
        path = REPO / page
        for old in approval_hashes(page) - {now}:
            path.write_text(path.read_text().replace(old, now))
            changed.append((page, old, now))
    return changed


def main() -> int:
    for page in (p for p in pages() if runnable(p)):
        for old, new in refresh(page):
            print(f"{page}: {old} -> {new}")
    for page, old, new in refresh_approvals():
        print(f"{page}: {old} -> {new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
