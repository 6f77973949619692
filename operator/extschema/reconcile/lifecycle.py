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
from typing import Literal

from extschema import model, planning
from extschema.engine import (
    ApplyResult,
    Engine,
    Preview,
    Registration,
    RepairChange,
    RollbackPlan,
    StalePlan,
    backups,
    not_registered,
)
from extschema.engine import drift as engine_drift
from extschema.engine.kinds.delete import without_missing_tables
from extschema.loading import Loaded
from extschema.naming import backup_tag
from extschema.planning import rawsql
from extschema.problems import Problem
from extschema.reconcile.approval import (
    NO_APPROVALS,
    ApprovalRequired,
    Planned,
    Reviewed,
    _review,
    _stale_rollback_approvals,
    authorize_rollback,
    review_rollback,
)
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
        reviewed = None
        if undo is not None:
            rawsql.require_rollback_allowed(undo.base.spec, undo.plan, engine.allow_raw_sql)
            reviewed = review_rollback(engine, undo)
            authorize_rollback(reviewed, approvals, undo)
        elif approvals:
            _stale_rollback_approvals(plugin_id, approvals, None)
        result = engine.rollback(plugin_id, undo)
        if undo is None or reviewed is None or result.migration_id is None:
            return result
        # What the rollback SQL backs up: the backups of the way back, named after the migration undone.
        _, takes = engine.dialect.rollback_backups_of(undo.plan.reverse(), backup_tag(result.migration_id))
        lines = _backup_lines([*undo.sql_backups, *takes])
        changed = [op.describe() for op in reviewed.ops]
        return dataclasses.replace(
            result, description=[*result.description[:1], *changed, *result.description[1:], *lines]
        )

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


#: What a dry run previews.
Action = Literal["delete", "unregister", "rollback", "restore", "drift-repair"]


@dataclasses.dataclass(frozen=True)
class DryRun:
    """What a lifecycle command would do (``--dry-run``): the SQL and the data effect, from the same plan
    the command runs, read and rendered without running anything."""

    action: Action
    preview: Preview
    #: The reviewed plan (class, counts, hash) where the command goes through the approval gate.
    reviewed: Reviewed | None = None
    #: Whether running it needs ``--approve`` of :attr:`reviewed`'s hash.
    needs_approval: bool = False
    #: What runs before the preview's migration (a restore of a deleted plugin applies its spec first).
    before: tuple[Preview, ...] = ()

    @property
    def plugin_id(self) -> str:
        return self.preview.plugin_id

    @property
    def hash(self) -> str | None:
        return self.reviewed.hash if self.reviewed else None


@dataclasses.dataclass(frozen=True)
class DeletePlan:
    """A plugin's removal as planned from its registration: the teardown (empty when retained) and,
    when it drops, its review (each table with its rows, the hash an approval names)."""

    planned_from: Registration
    plan: planning.Plan
    keep: bool
    reviewed: Reviewed | None


def delete_plan(engine: Engine, plugin_id: str, retain: bool | None = None, review: bool = True) -> DeletePlan:
    """The teardown of *plugin_id* (ES306 when not registered), reviewed like any destructive plan: its
    hash is that of the plan from the registered spec to nothing (the REST API's ``?approve=`` too).
    Without *review* (an ungated delete: the operator's), only planned; the engine refuses what it must."""
    planned_from = engine.registration(plugin_id)
    if planned_from is None:
        raise not_registered(plugin_id)
    spec = planned_from.spec
    keep = spec.deletion_policy == "Retain" if retain is None else retain
    if keep:
        return DeletePlan(planned_from, planning.Plan(plugin_id, ()), True, None)  # retained: the tables stay
    if not review:
        return DeletePlan(planned_from, planning.teardown(spec, references(engine, [spec], own=False)), False, None)
    with engine.registry.reading() as conn:  # refusals first: no approval makes these go away
        if conn is not None:
            engine.registry.refuse_if_dependents(conn, plugin_id)
            engine.registry.verify_history(conn, plugin_id)  # ES304, ES405: the engine would refuse
    plan = planning.teardown(spec, references(engine, [spec], own=False))
    namespace, _, name = planned_from.owner.rpartition("/")
    document = model.ExtensionSchema.model_validate(
        {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {"name": name, "namespace": namespace or None},
            "spec": spec.model_copy(update=NO_APPROVALS),  # it approved the way there only
        }
    )
    # Reviewed (counted, hashed) as it will run: without the tables dropped by hand, which the engine
    # leaves out of the plan too (and reports).
    dropping, _ = without_missing_tables(plan, set(engine.physical_tables(plugin_id)), engine.dialect)
    reviewed = _review(engine, Planned(Loaded(f"delete of {plugin_id}", document), planned_from, dropping))
    return DeletePlan(planned_from, plan, False, reviewed)


def authorize_delete(planned: DeletePlan, approvals: Collection[str]) -> None:
    """The gate of a delete: dropping a plugin's tables is a destructive plan, approved by its hash
    (however many rows: as a forward plan dropping an empty column), ES307 otherwise; ES308 for each
    approval of another plan. Retaining (unregistering only) drops nothing and needs none."""
    reviewed = planned.reviewed
    if reviewed is None:  # an approval names one plan: given for a delete that drops nothing, it is for another
        stale = [
            Problem(
                "ES308",
                "--approve",
                f"--approve {given} is for another plan: plugin {planned.planned_from.plugin_id!r} is only "
                "unregistered (--retain, or deletionPolicy: Retain), which drops nothing and needs no approval",
            )
            for given in sorted(approvals)
        ]
        if stale:
            raise ApprovalRequired(stale, [])
        return
    plugin_id, hashed = reviewed.plugin_id, reviewed.hash
    others = sorted(set(approvals) - {hashed})
    problems: list[Problem] = []
    if hashed not in approvals:
        drops = [op for op in reviewed.ops if isinstance(op.classified.op, planning.DropTable)]
        rows = sum(sum(op.counts) for op in drops)
        problems.append(
            Problem(
                "ES307",
                "plugin",
                f"deleting plugin {plugin_id!r} drops {len(drops)} table(s) holding {rows} row(s) and needs approval: "
                f"{reviewed.summary()}; they are backed up first (`extschema restore` brings them back). Preview it "
                f"with `extschema delete {plugin_id} --dry-run`, then approve exactly this delete with "
                f"`extschema delete {plugin_id} --approve {hashed}` — or keep the tables and only unregister with "
                "`--retain`",
            )
        )
    problems.extend(
        Problem(
            "ES308",
            "--approve",
            f"--approve {given} is for another plan: this delete is {hashed} (plugin {plugin_id!r} changed since it "
            "was reviewed, or the hash is mistyped); preview it again with --dry-run",
        )
        for given in others
    )
    if problems:
        raise ApprovalRequired(problems, [reviewed.pending()] if hashed not in approvals else [])


def delete(
    engine: Engine,
    plugin_id: str,
    retain: bool | None = None,
    approvals: Collection[str] | None = None,
) -> ApplyResult:
    """Drop (or with Retain, unregister) a plugin; its objects are torn down in reverse order.

    With *approvals* given (the CLI's ``--approve``, possibly none), dropping goes through the gate
    (:func:`authorize_delete`); None runs it ungated: an operator's resource deleted with
    ``deletionPolicy: Drop`` declared that intent itself.
    """

    def attempt() -> ApplyResult:
        planned = delete_plan(engine, plugin_id, retain, review=approvals is not None)
        if approvals is not None:
            authorize_delete(planned, approvals)
        return engine.delete(planned.planned_from, planned.plan, planned.keep)

    return _until_fresh(attempt, f"plugin {plugin_id!r} kept changing while it was being deleted")


def preview_delete(engine: Engine, plugin_id: str, retain: bool | None = None) -> DryRun:
    """``delete --dry-run``: the teardown's SQL, each table with its rows and the backups it takes; nothing runs."""

    def attempt() -> DryRun:
        planned = delete_plan(engine, plugin_id, retain)
        preview = engine.preview_delete(planned.planned_from, planned.plan, planned.keep)
        action: Action = "unregister" if planned.keep else "delete"
        return DryRun(action, preview, planned.reviewed, planned.reviewed is not None)

    return _until_fresh(attempt, f"plugin {plugin_id!r} kept changing while its delete was previewed")


def preview_rollback(engine: Engine, plugin_id: str, approvals: Collection[str] = ()) -> DryRun:
    """``rollback --dry-run``: the recorded rollback SQL, what it drops (counted), puts back and backs up,
    and whether it waits for an approval; nothing runs."""
    return _until_fresh(
        lambda: _preview_rollback(engine, plugin_id, approvals),
        f"plugin {plugin_id!r} kept changing while its rollback was previewed",
    )


def _preview_rollback(engine: Engine, plugin_id: str, approvals: Collection[str]) -> DryRun:
    undo = rollback_plan(engine, plugin_id)
    if undo is None:
        return DryRun("rollback", engine.preview_rollback(plugin_id, None))  # says why there is nothing
    reviewed = review_rollback(engine, undo)
    needs = False
    try:
        authorize_rollback(reviewed, approvals, undo)
    except ApprovalRequired as error:
        needs = any(p.code == "ES307" for p in error.problems)
    preview = engine.preview_rollback(plugin_id, undo)
    drops = [op.describe() for op in reviewed.ops]
    described = [*preview.description[:1], *drops, *preview.description[1:]]
    # A rollback records no migration of its own: it marks the one it undoes rolled back.
    preview = dataclasses.replace(preview, migration_id=undo.migration_id, description=described)
    return DryRun("rollback", preview, reviewed, needs)


def preview_restore(engine: Engine, migration_id: str, plugin_id: str | None = None) -> DryRun:
    """``restore --dry-run``: what the restore copies back, per table and column, and its SQL; nothing runs.
    For a deleted plugin: the spec it applies again first, then the backups' rows it copies back."""
    source = backups.restore_source(engine, migration_id, plugin_id)
    if source.reapply is None:
        return DryRun("restore", engine.preview_restore(source))
    _, spec = source.reapply
    refs = references(engine, [spec])
    created = planning.plan(None, spec, refs)
    plan = planning.Plan(spec.plugin_id, tuple(op for op in created.ops if not isinstance(op, planning.RunSql)))
    rendered = engine.dialect.render_plan(plan, backup_tag=backup_tag("planned"))
    reapply = Preview(
        spec.plugin_id, None, rendered.all_statements, [f"applies version {spec.version} again (empty tables)"]
    )
    records = [b for b in backups.listed(engine, spec.plugin_id) if b.migration_id == migration_id]
    lines = [
        f"restores {b.rows} row(s) of "
        f"{f'{b.source_table}.{b.source_column}' if b.source_column else f'table {b.source_table}'} "
        f"from {b.backup_table}"
        for b in records
    ]
    return DryRun("restore", Preview(spec.plugin_id, None, (), lines), before=(reapply,))


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


def preview_repair(engine: Engine, plugin_id: str) -> DryRun:
    """``drift --repair --dry-run``: what re-creates the missing objects, and its SQL; nothing runs."""
    return _until_fresh(
        lambda: DryRun("drift-repair", engine.preview_repair_drift(repair_plan(engine, plugin_id))),
        f"plugin {plugin_id!r} kept changing while its repair was previewed",
    )


def repair_history(
    engine: Engine, plugin_id: str, mode: Literal["accept-edits", "rerender"], dry_run: bool = False
) -> list[RepairChange]:
    """``repair --accept-edits|--rerender``: make the plugin's recorded migrations verify again after a
    deliberate edit (see :meth:`extschema.engine.registry.Registry.repair`); *dry_run* only says what would change."""
    return engine.repair(plugin_id, mode, dry_run)


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
