"""The rest of a plugin's life after apply: rollback (through the same approval gate), delete, drift
and its repair, restore.

Each is planned here, from what the engine reads (the history, the registration, the live objects),
and handed to the engine, which never plans: it runs the plan only while the registry is still what
the plan was made from (under the plugin's lock), else raises :class:`StalePlan` and the plan is
made again here, a few times at most (ES403).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence

from extschema import planning
from extschema.engine import (
    ApplyResult,
    Engine,
    Registration,
    RollbackPlan,
    StalePlan,
    backups,
    not_registered,
)
from extschema.engine import drift as engine_drift
from extschema.naming import backup_tag
from extschema.planning import rawsql
from extschema.problems import Problem
from extschema.reconcile.approval import _stale_rollback_approvals, authorize_rollback, review_rollback
from extschema.reconcile.pipeline import _backup_lines, _until_fresh, references
from extschema.reconcile.snapshot import Snapshot, reference_types


def rollback(
    engine: Engine,
    plugin_id: str,
    approvals: Collection[str] = (),
    expect: Callable[[RollbackPlan | None], None] | None = None,
) -> ApplyResult:
    """Undo the plugin's latest migration, through the same gate as an apply (:func:`authorize_rollback`).

    The rollback is reviewed as what it runs: the ``rollbackSql`` of the raw steps the migration ran
    (allowed only where raw SQL is, ES313), then the change from the registered spec to the one before
    (without raw steps, its hash is the one applying that spec as a lower version has). The engine
    runs it only while the plugin and its recorded rollback are still what was reviewed, else it is
    reviewed again. What it drops, and every table a ``rollbackSql`` names, is backed up first.
    *expect* may refuse what each attempt would undo (the REST API names the migration it rolls back).
    """

    def attempt() -> ApplyResult:
        undo = rollback_plan(engine, plugin_id)
        if expect is not None:
            expect(undo)
        if undo is not None:
            rawsql.require_rollback_allowed(undo.base.spec, undo.plan, engine.allow_raw_sql)
            authorize_rollback(review_rollback(engine, undo), approvals)
        elif approvals:
            _stale_rollback_approvals(plugin_id, approvals, None)
        result = engine.rollback(plugin_id, undo)
        if undo is None or result.migration_id is None:
            return result
        # What the rollback SQL backs up: the backups of the way back, named after the migration undone.
        _, takes = engine.dialect.rollback_backups_of(undo.plan.reverse(), backup_tag(result.migration_id))
        lines = _backup_lines([*undo.sql_backups, *takes])
        return dataclasses.replace(result, description=[*result.description, *lines])

    return _until_fresh(attempt, f"plugin {plugin_id!r} kept changing while it was being rolled back")


def rollback_plan(engine: Engine, plugin_id: str) -> RollbackPlan | None:
    """What undoing the plugin's latest migration changes, planned from its recorded history (the
    engine checks it again under the lock); None when there is nothing to roll back (the engine's
    rollback says why)."""
    source = engine.rollback_source(plugin_id)
    if source is None:
        return None
    specs = [s for s in (source.base.spec, source.previous, source.undone) if s is not None]
    if source.adoption:  # unregistered again, its objects left as they are (as Retain left them)
        return engine.rollback_plan(source, planning.Plan(plugin_id, ()), None)
    planned = planning.rollback(source.base.spec, source.previous, source.undone, references(engine, specs))
    return engine.rollback_plan(source, planned.plan, planned.forward)


def delete(engine: Engine, plugin_id: str, retain: bool | None = None) -> ApplyResult:
    """Drop (or with Retain, unregister) a plugin; its objects are torn down in reverse order."""

    def attempt() -> ApplyResult:
        planned_from = engine.registration(plugin_id)
        if planned_from is None:
            raise not_registered(plugin_id)
        spec = planned_from.spec
        keep = spec.deletion_policy == "Retain" if retain is None else retain
        plan = planning.Plan(plugin_id, ())  # retained: the tables stay
        if not keep:
            plan = planning.teardown(spec, references(engine, [spec], own=False))
        return engine.delete(planned_from, plan, keep)

    return _until_fresh(attempt, f"plugin {plugin_id!r} kept changing while it was being deleted")


def repair_plan(engine: Engine, plugin_id: str) -> engine_drift.RepairPlan:
    """What re-creates the plugin's missing objects, planned from the registry now (the engine runs it
    only while the registration is still the one it was planned from). ES306 when not registered."""
    ((base, expected),) = _registered(engine, plugin_id)
    return engine_drift.repair_plan(engine, base, expected)


def _registered(engine: Engine, plugin_id: str | None) -> list[tuple[Registration, planning.Resolved]]:
    """The registered specs of *plugin_id* (or of every plugin), resolved against one snapshot's
    reference types; ES306 when *plugin_id* is not registered."""
    snapshot = Snapshot.registered(engine, plugin_id)
    chosen = [r for r in snapshot.registrations if plugin_id is None or r.plugin_id == plugin_id]
    if plugin_id is not None and not chosen:
        raise not_registered(plugin_id)
    refs = reference_types(snapshot, [])
    return [(r, planning.resolve(r.spec, refs)) for r in chosen]


def repair(engine: Engine, plugin_id: str) -> list[str]:
    """Re-create what is missing of the plugin's objects (``drift --repair``), in one migration under
    the lock; returns what it did ([] when nothing). Extra and changed objects are only reported."""
    return _until_fresh(
        lambda: engine.repair_drift(repair_plan(engine, plugin_id)).description,
        f"plugin {plugin_id!r} kept changing while it was being repaired",
    )


def restore(engine: Engine, migration_id: str, plugin_id: str | None = None) -> list[ApplyResult]:
    """Copy *migration_id*'s backups back into the plugin's current tables (:mod:`extschema.engine.backups`).

    Returns the migrations run: the re-apply of a deleted plugin's spec (if needed), then the restore.
    """
    source = backups.restore_source(engine, migration_id, plugin_id)
    results = []
    if source.reapply is not None:
        owner, spec = source.reapply
        # Empty tables only: the raw SQL steps ran when the plugin was built, and what they wrote is in
        # the backup (running a seed again would put its rows where the backed-up ones go). The spec
        # registered lists them, so they count as run, as they did before the delete.
        refs = references(engine, [spec])
        created = planning.plan(None, spec, refs)
        plan = planning.Plan(spec.plugin_id, tuple(op for op in created.ops if not isinstance(op, planning.RunSql)))
        tables = planning.resolve(spec, refs).physical_tables(engine.dialect.namer)
        try:
            results.append(engine.apply(owner, spec, plan, None, tables))
        except StalePlan:  # registered meanwhile: the restore goes into what is there now
            results.append(ApplyResult(spec.plugin_id, False, None, []))
    results.append(engine.restore(source))
    return results


def with_drift(engine: Engine, results: Sequence[ApplyResult]) -> list[ApplyResult]:
    """*results*, where a spec was unchanged but its plugin's objects differ from it (dropped or
    altered by hand), with an ES503 warning naming the differences: "unchanged" alone would hide them.

    Reads only; the operator reports the same through its InSync condition instead.
    """
    checked = []
    for result in results:
        report = None if result.changed else drift(engine, result.plugin_id)[0]
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
    return engine_drift.detect(engine, [expected for _, expected in _registered(engine, plugin_id)])
