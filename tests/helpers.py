"""Small helpers for tests: run the CLI in-process, look into a database."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from extschema import cli, wire

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@dataclasses.dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The JSON the command printed, checked against the wire envelope of its kind (extschema.wire)."""
        data = json.loads(self.stdout)
        wire.parse(data)
        return data

    def items(self) -> list[Any]:
        """The envelope's items."""
        items: list[Any] = self.json()["items"]
        return items

    def item(self) -> Any:
        """The envelope's only item (one plan, one result)."""
        (only,) = self.items()
        return only


def run(*args: str) -> Outcome:
    """Run ``extschema ARGS`` in-process; a traceback (any exception but SystemExit) fails the test."""
    result = CliRunner().invoke(cli.main, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"extschema {' '.join(args)} raised {result.exception!r}") from result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m extschema`` children: import this checkout, whatever is installed."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "operator"), env.get("PYTHONPATH")]))
    return env


def sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def execute(url: str, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run one statement in its own transaction; returns the rows (if any)."""
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if url.startswith("sqlite"):
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            result = conn.execute(sa.text(sql), params or {})
            return list(result.fetchall()) if result.returns_rows else []
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    """Every table in the database, schema-qualified on PostgreSQL (system schemas left out)."""
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if url.startswith("sqlite"):
                return set(inspector.get_table_names())
            found = set()
            for schema in inspector.get_schema_names():
                if schema in ("information_schema", "pg_catalog", "pg_toast"):
                    continue
                found.update(f"{schema}.{t}" for t in inspector.get_table_names(schema=schema))
            return found
    finally:
        engine.dispose()


def load_core(url: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("core_load", EXAMPLES / "core" / "load.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.load(url)


def write_schema(directory: Path, name: str, body: str) -> Path:
    """Write an ExtensionSchema document (``body`` is the YAML of its spec)."""
    path = directory / f"{name}.yaml"
    spec = textwrap.indent(textwrap.dedent(body).strip(), "  ")
    path.write_text(
        f"apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata:\n  name: {name}\nspec:\n{spec}\n"
    )
    return path


def ext_table(url: str, plugin: str, table: str) -> str:
    """The physical table name as SQL text."""
    if url.startswith("sqlite"):
        return f'"ext_{plugin}__{table}"'
    return f'"ext_{plugin}"."{table}"'


def approved_rollback(url: str, plugin: str) -> Outcome:
    """`extschema rollback PLUGIN`, approving the data it drops: the hash its refusal (ES307) names."""
    refused = run("rollback", plugin, "-d", url, "-o", "json")
    if refused.exit_code != 1 or "ES307" not in refused.stdout + refused.stderr:
        return refused
    (pending,) = refused.items()
    return run("rollback", plugin, "--approve", pending["hash"], "-d", url)


def engine_rollback(engine: Any, plugin_id: str) -> Any:
    """The engine's rollback of *plugin_id*, planned as ``extschema rollback`` plans it, without its
    approval gate (tests of what the engine runs)."""
    from extschema import reconcile

    return engine.rollback(plugin_id, reconcile.rollback_plan(engine, plugin_id))


def approved_delete(url: str, plugin: str, *extra: str) -> Outcome:
    """`extschema delete PLUGIN --approve HASH`: the hash its dry run names (any *extra* arguments, e.g.
    ``-o json``, go to the delete itself)."""
    preview = run("delete", plugin, "--dry-run", "-d", url, "-o", "json")
    if preview.exit_code != 0:
        return preview
    hashed = preview.item()["hash"]
    return run("delete", plugin, "--approve", hashed, "-d", url, *extra) if hashed else run("delete", plugin, "-d", url)
