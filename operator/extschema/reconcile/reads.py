"""What the shells read besides a run, so that they reach the engine only through this package: the
registered plugins (as ``status`` shows them), backups (listed, pruned), a plugin's query analysis, the
core tables a Prisma schema describes, the database roles of plugins, and a URL fit to print. Each only
forwards to the engine (reads, or the one write its command asks for).
"""

from __future__ import annotations

import datetime
import difflib
from typing import TYPE_CHECKING

from extschema.engine import Engine
from extschema.engine import backups as engine_backups
from extschema.engine.backups import Pruning, parse_duration
from extschema.engine.connection import redact
from extschema.engine.registry import BackupRecord, Registration
from extschema.problems import Kind, ProblemError

if TYPE_CHECKING:
    from extschema import prisma, wire
    from extschema.engine.analysis import Analysis
    from extschema.engine.lint import LintFinding
    from extschema.engine.roles import PluginRole

#: Types of the heavier reads (query analysis, roles, the PostgreSQL dialect), imported on first use.
_LAZY = {
    "Analysis": "extschema.engine.analysis",
    "LintFinding": "extschema.engine.lint",
    "PluginRole": "extschema.engine.roles",
}


def __getattr__(name: str) -> object:
    import importlib

    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Analysis",
    "LintFinding",
    "PluginRole",
    "Pruning",
    "analyze",
    "backups",
    "core_description",
    "drop_role",
    "ensure_role",
    "parse_duration",
    "plugin_view",
    "prune_backups",
    "redact",
    "require_known",
]


def plugin_view(engine: Engine, registration: Registration) -> wire.PluginView:
    """One registered plugin as ``status -o json`` and ``GET /api/v1/extensions`` list it."""
    from extschema import wire

    r = registration
    return wire.PluginView(
        plugin_id=r.plugin_id,
        owner=r.owner,
        version=r.version,
        status=r.status,
        database=engine.backend,
        tables=engine.physical_tables(r.plugin_id),
        expected_tables=r.tables,
        depends_on=list(r.spec.depends_on),
        error=r.error_message,
        updated_at=r.updated_at,
    )


def backups(engine: Engine, plugin_id: str | None = None) -> list[BackupRecord]:
    """The backups recorded for *plugin_id*, or for every plugin."""
    return engine_backups.listed(engine, plugin_id)


def prune_backups(
    engine: Engine, older_than: datetime.timedelta, dry_run: bool = False, force: bool = False
) -> Pruning:
    """Drop the backups older than *older_than* (see :func:`extschema.engine.backups.prune`)."""
    return engine_backups.prune(engine, older_than, dry_run, force)


def analyze(engine: Engine, plugin_id: str, min_rows: int, verify: bool) -> Analysis:
    """EXPLAIN the REST API's statements for the plugin as the registry records it; changes nothing."""
    registration = engine.registration(plugin_id)
    from extschema.engine import analysis as engine_analysis

    return engine_analysis.analyze_plugin(engine.database, plugin_id, registration, min_rows, verify)


def core_description(engine: Engine) -> prisma.CoreSchema:
    """The host application's tables as a Prisma schema describes them (reads only)."""
    from extschema.engine import catalog as engine_catalog

    return engine_catalog.core_description(engine.database)


def ensure_role(engine: Engine, plugin_id: str, password: str | None = None) -> PluginRole:
    """Create or update the plugin's own database role (PostgreSQL)."""
    from extschema.engine import roles as engine_roles

    return engine_roles.ensure(engine, plugin_id, password)


def drop_role(engine: Engine, plugin_id: str) -> bool:
    """Drop the plugin's database role; False when there was none."""
    from extschema.engine import roles as engine_roles

    return engine_roles.drop(engine, plugin_id)


def require_known(engine: Engine, plugin_id: str) -> None:
    """ES306 unless *plugin_id* is registered or has recorded history (a deleted plugin's history and
    backups stay readable): a misspelt name is an error, never an empty list."""
    if engine.registration(plugin_id) is not None or engine.history(plugin_id):
        return
    known = sorted({r.plugin_id for r in engine.registrations()} | {m.plugin_id for m in engine.history()})
    close = difflib.get_close_matches(plugin_id, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    listed = f"known plugins: {', '.join(known)}" if known else "no plugin is registered in this database"
    raise ProblemError.one(
        "ES306",
        "plugin",
        f"plugin {plugin_id!r} is not registered and has no recorded history; {hint}{listed} (see `extschema status`)",
        kind=Kind.REFUSED,
    )
