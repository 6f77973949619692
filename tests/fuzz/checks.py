"""The properties every answer to a fuzzed document holds, and fresh databases to check them on.

- no traceback (in output, stderr, logs) and no server error (HTTP 5xx);
- a rejection names, for every problem, a field path and a stable code, and changes nothing in the database
  (the whole database is compared, registry included);
- an accepted document applies, and planning it again finds nothing to do (it round-trips).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import load_core
from tests.test_dry_run import _snapshot as snapshot

__all__ = ["DATABASE_ONLY", "Databases", "load_core", "no_traceback", "snapshot", "unnamed"]

#: Refusals of a valid document that only the database can give: a core table (ES204) or a plugin it depends on
#: (ES208) is not there. Everything else the database refuses, validation must have said.
DATABASE_ONLY = frozenset({"ES204", "ES208"})
CODE = re.compile(r"^ES\d{3}$")
#: Where a problem is: the document's field path (spec..., metadata..., apiVersion, kind, body...).
PATH = re.compile(r"^(spec|metadata|apiVersion|kind|body|status)\b")


#: YAML that cannot be read has no field path yet: its problem says the line and column instead.
SYNTAX = "ES001"


def located(problem: dict[str, Any]) -> bool:
    """Whether a problem says where: a field path, or (unreadable YAML) a line and column."""
    if PATH.match(str(problem.get("path") or "")):
        return True
    return problem.get("code") == SYNTAX and bool(problem.get("line")) and bool(problem.get("column"))


def unnamed(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The problems that lack a stable code or a location (none, when every rejection says where and what)."""
    return [p for p in problems if not CODE.match(str(p.get("code"))) or not located(p)]


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback (most recent call last)" not in text, text[-4000:]


class Databases:
    """Fresh databases holding the core tables (examples/core), one per case: SQLite files copied from a
    template, PostgreSQL databases created from a template database (both cheap)."""

    def __init__(self, directory: Path, pg_admin_url: str | None) -> None:
        self.directory = directory
        self.pg_admin_url = pg_admin_url
        directory.mkdir(parents=True, exist_ok=True)
        self.template_file = directory / "template.db"
        load_core(f"sqlite:///{self.template_file}")
        self.template_db: str | None = None
        if pg_admin_url is not None:
            self.template_db = f"fuzz_template_{uuid.uuid4().hex[:8]}"
            self._admin(f'CREATE DATABASE "{self.template_db}"')
            load_core(self._url(self.template_db))

    def _url(self, name: str) -> str:
        assert self.pg_admin_url is not None
        return f"{self.pg_admin_url.rpartition('/')[0]}/{name}"

    def _admin(self, sql: str) -> None:
        assert self.pg_admin_url is not None
        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(sql)

    @contextmanager
    def fresh(self, backend: str) -> Iterator[str]:
        """A new database of *backend* ("sqlite" or "postgresql") with the core tables; dropped afterwards."""
        name = f"fuzz_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            path = self.directory / f"{name}.db"
            shutil.copy(self.template_file, path)
            try:
                yield f"sqlite:///{path}"
            finally:
                path.unlink(missing_ok=True)
            return
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_db}"')
        try:
            yield self._url(name)
        finally:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.template_db is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.template_db}" WITH (FORCE)')
