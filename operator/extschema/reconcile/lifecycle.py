"""The rest of a plugin's life after apply: rollback (through the same approval gate), delete, drift."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from extschema import planning
from extschema.engine import (
    ApplyResult,
    Engine,
    StalePlan,
)
from extschema.engine import drift as engine_drift
from extschema.model import ExtensionSchemaSpec
from extschema.naming import backup_tag
from extschema.planning import rawsql
from extschema.problems import Kind, Problem, ProblemError
from extschema.reconcile.approval import _stale_rollback_approvals, authorize_rollback, review_rollback
from extschema.reconcile.pipeline import _STALE_RETRIES, _backup_lines
from extschema.reconcile.snapshot import Snapshot, reference_types


def rollback(engine: Engine, plugin_id: str, approvals: Collection[str] = ()) -> ApplyResult:
    """Undo the plugin's latest migration, through the same gate as an apply (:func:`authorize_rollback`).

    The rollback is reviewed as what it runs: the ``rollbackSql`` of the raw steps the migration ran
    (allowed only where raw SQL is, ES313), then the change from the registered spec to the one before
    (without raw steps, its hash is the one applying that spec as a lower version has). The engine
    runs it only while the plugin and its recorded rollback are still what was reviewed, else it is
    reviewed again. What it drops, and every table a ``rollbackSql`` names, is backed up first.
    """
    for _ in range(_STALE_RETRIES):
        undo = engine.rollback_plan(plugin_id)
        try:
            if undo is not None:
                rawsql.require_rollback_allowed(undo.base.spec, undo.plan, engine.allow_raw_sql)
                authorize_rollback(review_rollback(engine, undo), approvals)
            elif approvals:
                _stale_rollback_approvals(plugin_id, approvals, None)
            result = engine.rollback(plugin_id, undo)
        except StalePlan:
            continue
        if undo is None or result.migration_id is None:
            return result
        # What the rollback SQL backs up: the backups of the way back, named after the migration undone.
        _, takes = engine.dialect.rollback_backups_of(undo.plan.reverse(), backup_tag(result.migration_id))
        lines = _backup_lines([*undo.sql_backups, *takes])
        return dataclasses.replace(result, description=[*result.description, *lines])
    raise ProblemError.one(
        "ES403",
        "database",
        f"plugin {plugin_id!r} kept changing while it was being rolled back; try again",
        kind=Kind.RETRYABLE,
    )


def delete(engine: Engine, plugin_id: str, retain: bool | None = None) -> ApplyResult:
    """Drop (or with Retain, unregister) a plugin; its objects are torn down in reverse order."""

    def teardown(spec: ExtensionSchemaSpec) -> planning.Plan:
        return planning.teardown(spec, reference_types(Snapshot.take(engine, [spec]), []))

    for _ in range(_STALE_RETRIES):
        try:
            return engine.delete(plugin_id, teardown, retain)
        except StalePlan:
            continue
    raise ProblemError.one(
        "ES403",
        "database",
        f"plugin {plugin_id!r} kept changing while it was being deleted; try again",
        kind=Kind.RETRYABLE,
    )


def with_drift(engine: Engine, results: Sequence[ApplyResult]) -> list[ApplyResult]:
    """*results*, where a spec was unchanged but its plugin's objects differ from it (dropped or
    altered by hand), with an ES503 warning naming the differences: "unchanged" alone would hide them.

    Reads only; the operator reports the same through its InSync condition instead.
    """
    checked = []
    for result in results:
        report = None if result.changed else engine_drift.detect(engine, result.plugin_id)
        if report is not None and not report.in_sync:
            warning = Problem("ES503", "database", _drifted(report))
            result = dataclasses.replace(result, warnings=(*result.warnings, warning))
        checked.append(result)
    return checked


def _drifted(report: engine_drift.DriftReport) -> str:
    """ES503's message: each difference (a changed one repair fixes with its detail, which says so), and
    what fixes the others."""
    plugin_id, differences = report.plugin_id, report.differences
    # A changed object repair fixes is named with its detail (how to fix it), once for those sharing it.
    shared: dict[str, list[str]] = {}
    for d in differences:
        shared.setdefault(d.detail if d.kind == "changed" and d.repaired else str(d), []).append(str(d))
    named = "; ".join(f"{', '.join(same)}: {key}" if same != [key] else key for key, same in shared.items())
    missing = any(d.kind == "missing" for d in differences)
    text = f"plugin {plugin_id!r} is unchanged, but the database differs from its applied spec: {named}."
    if missing:
        text += f" `extschema drift {plugin_id} --repair` re-creates what is missing"
    if any(not d.repaired for d in differences):
        text += (
            f"{';' if missing else ''} extra and other changed objects are only reported: drop or alter them by "
            "hand, or put them into the spec with a new version"
        )
    return text


def drift(engine: Engine, plugin_id: str | None = None) -> list[engine_drift.DriftReport]:
    """Drift of one plugin, or of every registered plugin, against its registered spec."""
    return engine_drift.detect_all(engine, plugin_id)
