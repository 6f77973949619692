"""The one line every driver runs: propose → authorize → execute.

:func:`propose` computes what a run would do, once: snapshot → check → plan → review → preview
(→ lint). ``extschema plan`` prints it, the admission webhook refuses or admits from it,
:func:`reconcile` (``extschema apply``, the operator) authorizes it and :func:`execute` applies it;
only the reporting differs. Every step either returns a typed result or raises
:class:`~extschema.problems.ProblemError` with located, coded problems. While migrations run, the
caller's hook receives typed migration events (:data:`MigrationEvent`), so the CLI's progress
lines, the operator's events and metrics all read the same facts.

Plans that rewrite a table or drop data run only when approved by their hash (:func:`authorize`):
the CLI's ``--approve HASH`` or the spec's own ``approvedPlanHash`` or ``approvedPlanHashes``. Until
then nothing of the run runs, and :class:`ApprovalRequired` carries each waiting plan (a
:class:`~extschema.wire.PlanView`) and the :class:`Proposal` (the operator's ``status.pendingPlan``
and its lint come from it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

from extschema import conflicts, planning
from extschema.dialects import BackupRef, RenderedPlan
from extschema.engine import (
    ApplyResult,
    Engine,
    MigrationKind,
    MigrationStatus,
    Registration,
    StalePlan,
    StepFailed,
    checks,
    registered_by_another,
)
from extschema.engine import lint as squawk
from extschema.loading import (
    Loaded,
)
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PLAN_PREVIEW_TAG, backup_tag
from extschema.planning import rawsql, safety, versions
from extschema.problems import Kind, Problem, ProblemError
from extschema.reconcile import adopt
from extschema.reconcile.approval import (
    Planned,
    Proposal,
    Reviewed,
    _field_path,
    _review,
    authorize,
)
from extschema.reconcile.events import (
    MigrationFailed,
    MigrationFinished,
    MigrationStarted,
    OnEvent,
    PartiallyApplied,
    heard_by,
)
from extschema.reconcile.snapshot import Snapshot, locate, reference_types

DEFAULT_DATABASE_URL = "sqlite:///extschema.db"
_STALE_RETRIES = 5
_T = TypeVar("_T")
#: What a run returns per spec: the engine's result, with the registration the migration left.
Applied = ApplyResult


def database_url(explicit: str | None) -> str:
    """``--database``, else ``EXTSCHEMA_DATABASE_URL``, else the embedded SQLite file.

    An explicit empty URL is a mistake (an unset shell variable, ``--database "$URL"``), never a
    request for the local file: applying to the wrong database is worse than stopping. The same
    holds for ``EXTSCHEMA_DATABASE_URL`` set to nothing (``EXTSCHEMA_DATABASE_URL=$UNSET``).
    """
    from_environment = os.environ.get("EXTSCHEMA_DATABASE_URL")
    example = "a URL such as postgresql://HOST/DB or sqlite:///FILE"
    empty = None
    if explicit is not None and not explicit.strip():
        empty = (
            f"the database URL is empty; give {example}, "
            "or leave --database out to use $EXTSCHEMA_DATABASE_URL or sqlite:///extschema.db"
        )
    elif explicit is None and from_environment is not None and not from_environment.strip():
        empty = (
            f"$EXTSCHEMA_DATABASE_URL is set but empty; set it to {example}, "
            "unset it to use sqlite:///extschema.db, or give --database"
        )
    if empty is not None:
        raise ProblemError.one("ES404", "--database", empty, kind=Kind.USAGE)
    if explicit:
        return explicit
    return from_environment or DEFAULT_DATABASE_URL


# --- conflicts ---------------------------------------------------------------------------------


def _claims(registrations: Sequence[Registration]) -> list[conflicts.Claim]:
    return [conflicts.Claim(r.owner, r.spec) for r in registrations]


def plan_one(
    engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes, snapshot: Snapshot | None = None
) -> Planned:
    """The plan of one spec from its registration in *snapshot* (read now when not given).

    A plan from a snapshot may be stale by the time it runs; the engine refuses it under the lock
    (:class:`StalePlan`) and :func:`apply_one` plans again from a fresh read. The "nothing to do"
    rule is :meth:`Registration.holds`, the one the engine applies under the lock.
    """
    plugin_id = loaded.spec.plugin_id
    base = snapshot.registration(plugin_id) if snapshot is not None else engine.registration(plugin_id)
    if base is None:  # what `delete --retain` kept is adopted: planned from the retained spec
        base = adopt.base(engine, loaded, refs)
    if base is not None and base.owner != loaded.owner:
        error = registered_by_another(plugin_id, base.owner)
        raise ProblemError([p.located(loaded.file) for p in error.problems], error.kind)
    if base is not None and base.holds(loaded.spec):
        return Planned(loaded, base, planning.Plan(loaded.spec.plugin_id, ()))
    if base is not None and versions.compare(loaded.spec.version, base.version) < 0:
        _require_recorded(engine, loaded, base)
    try:
        plan = planning.plan(base.spec if base else None, loaded.spec, refs)
        rawsql.require_allowed(loaded.spec, plan, engine.allow_raw_sql)
    except ProblemError as error:
        raise ProblemError([loaded.locate(p) for p in error.problems], error.kind) from None
    return Planned(loaded, base, plan)


def _require_recorded(engine: Engine, loaded: Loaded, base: Registration) -> None:
    """ES311 unless the history holds an executed apply of exactly *loaded*'s spec.

    A lower version means "go back to that version": only a spec this database ran as that version
    is one, so a lower version can never smuggle in a schema nobody applied under that number. The
    way back is then planned from the applied spec, and gated, like any other change.
    """
    spec = loaded.spec
    checksum = spec.checksum()
    applied = [
        r
        for r in engine.history(spec.plugin_id)
        if r.kind == MigrationKind.APPLY and r.status == MigrationStatus.EXECUTED
    ]
    if any(r.checksum_schema == checksum for r in applied):
        return
    if any(r.version == spec.version for r in applied):
        detail = f"version {spec.version} was applied with another schema than this spec's"
    else:
        detail = f"no executed apply of version {spec.version} is recorded"
    problem = Problem(
        "ES311",
        "spec.version",
        f"version {spec.version} is lower than the applied version {base.version}, and {detail}; to roll back, "
        f"apply the spec exactly as it was applied then (see `extschema history {spec.plugin_id} -o json`), "
        f"or raise the version above {base.version} to change the schema",
        file=loaded.file,
        subject=loaded.owner,
    )
    raise ProblemError([problem], Kind.REFUSED)


def check(
    engine: Engine,
    loaded: Sequence[Loaded],
    peers: Sequence[conflicts.Claim] = (),
    snapshot: Snapshot | None = None,
) -> list[Loaded]:
    """Conflicts and dependencies of validated schemas; returns them in dependency order.

    *peers* are claims not yet in the registry that came first (the operator's other resources,
    oldest first). Raises ``conflict`` problems, or ``dependency`` when the only trouble is a
    dependency that is not registered yet (the operator waits for it).
    """
    snapshot = snapshot or Snapshot.take(engine, [item.spec for item in loaded])
    candidates = sorted(loaded, key=lambda item: (item.owner, item.spec.plugin_id))
    registered = _claims(snapshot.registrations)
    registered_ids = {c.spec.plugin_id for c in registered}
    earlier = [p for p in peers if p.spec.plugin_id not in registered_ids]
    problems = conflicts.detect(
        [conflicts.Claim(c.owner, c.spec) for c in candidates],
        [*registered, *earlier],
        snapshot.core,
        engine.dialect.namer,
    )
    problems.extend(_unowned_objects(engine, candidates, registered_ids))
    # A peer that is not registered yet is no dependency one can build on.
    pending = {p.spec.plugin_id for p in earlier}
    for item in candidates:
        for index, dependency in enumerate(item.spec.depends_on):
            if dependency in pending and dependency not in {c.spec.plugin_id for c in candidates}:
                problems.append(
                    Problem(
                        "ES208",
                        f"spec.dependsOn[{index}]",
                        f"{item.owner!r} depends on plugin "
                        f"{dependency!r}, which is not applied yet; it proceeds once it is",
                        subject=item.owner,
                    )
                )
    if problems:
        kind = Kind.DEPENDENCY if all(p.code == "ES208" for p in problems) else Kind.CONFLICT
        raise ProblemError(locate(problems, loaded), kind=kind)
    order = {s.plugin_id: i for i, s in enumerate(conflicts.dependency_order([item.spec for item in loaded]))}
    return sorted(loaded, key=lambda item: order[item.spec.plugin_id])


def _unowned_objects(engine: Engine, candidates: Sequence[Loaded], registered_ids: set[str]) -> list[Problem]:
    """ES202 for a plugin not registered whose tables, schema or types exist already (left by
    ``delete --retain``, or made by hand): installing it would fail in the database on CREATE."""
    problems = []
    for item in candidates:
        plugin_id = item.spec.plugin_id
        if plugin_id in registered_ids:
            continue
        found = engine.physical_objects(plugin_id)
        # Registered since the snapshot (a concurrent apply commits its tables and registration together).
        if found and engine.registration(plugin_id) is None and adopt.retained(engine, plugin_id) is None:
            problems.append(
                Problem(
                    "ES202",
                    "spec.pluginId",
                    f"plugin {plugin_id!r} is not registered, but its objects exist: {', '.join(found)} (left by "
                    "`extschema delete --retain`, or made by hand); back up what you need and drop them, "
                    "or choose another pluginId",
                    subject=item.owner,
                )
            )
    return problems


# --- the run: propose → authorize → execute ------------------------------------------------------


def reconcile(
    engine: Engine,
    loaded: Sequence[Loaded],
    on_event: OnEvent,
    peers: Sequence[conflicts.Claim] = (),
    approvals: Collection[str] = (),
) -> list[Applied]:
    """The whole line after loading, one step after the other; stops at the first failure.

    1. :func:`propose`: read the registry and core tables once, check conflicts and dependencies,
       plan every spec (a refused change anywhere stops the run before any migration starts),
       count the data checks;
    2. :func:`authorize`: every rewriting or destructive plan approved by its hash (*approvals*, or
       the spec's ``approvedPlanHash`` or ``approvedPlanHashes``) — else nothing runs, and
       :class:`ApprovalRequired` carries the proposal;
    3. :func:`execute`: in order, each spec re-planned under the lock if its registration moved (and
       the new plan approved again).
    """
    proposal = propose(engine, loaded, peers=peers)
    authorize(proposal, approvals, earlier=earlier_plans(engine, proposal, approvals))
    return execute(engine, proposal, approvals=approvals, on_event=on_event)


def earlier_plans(engine: Engine, proposal: Proposal, approvals: Collection[str] = ()) -> dict[str, str]:
    """Hashes of the plugins' earlier plans, with what each was, for ES308 to name an approval that is
    one: the plan their last migration ran, and the plan of the spec now given as it was before that
    migration. Read only when an approval (given, or a spec's) matches none of the run's plans."""
    current = {item.reviewed.hash for item in proposal.items}
    given = {*approvals, *(h for item in proposal.items for h in item.loaded.spec.approved_hashes())}
    if given <= current:
        return {}
    found: dict[str, str] = {}
    for item in proposal.items:
        if item.base is None or item.plan.empty:
            continue
        try:
            source = engine.rollback_source(item.plugin_id)
            if source is None:
                continue
            previous, base = source.previous, source.base
            since = previous.checksum() if previous is not None else None
            ran = planning.plan(previous, base.spec, proposal.refs)
            found[safety.plan_hash(since, ran)] = (
                f"the plan that already ran (migration {source.migration_id}, to version {base.version})"
            )
            before = planning.plan(previous, item.loaded.spec, proposal.refs)
            found.setdefault(
                safety.plan_hash(since, before),
                f"this spec's plan before migration {source.migration_id} ran "
                f"(from {previous.version if previous is not None else 'nothing'})",
            )
        except (ProblemError, KeyError, ValueError):  # an earlier plan this planner refuses: none to name
            continue
    return found


def propose(
    engine: Engine,
    loaded: Sequence[Loaded],
    *,
    peers: Sequence[conflicts.Claim] = (),
    lint: bool = False,
    preview_tag: str = PLAN_PREVIEW_TAG,
    lint_ignore: Collection[str] = (),
) -> Proposal:
    """What applying *loaded* would do, computed once; runs nothing.

    Snapshot → check (conflicts, dependencies, dependency order) → plan every spec → review (class,
    data counts, hash) → render a preview, with backups named after *preview_tag* → squawk's
    findings when *lint* (but for the rules in *lint_ignore* and each spec's ``lint.ignore``).
    Planned again from a fresh read when a plugin moved while its data was being counted (ES403
    when it keeps moving). The plan's preview (:data:`PLAN_PREVIEW_TAG`) names its backups after
    the migration id apply will give it, read now (:func:`preview_tag_of`).
    """
    specs = [item.spec for item in loaded]

    def attempt() -> Proposal:
        snapshot = Snapshot.take(engine, specs)
        ordered = check(engine, loaded, peers, snapshot)
        refs = reference_types(snapshot, specs)
        planned = plan(engine, ordered, refs, snapshot)
        items = []
        for each in planned:
            tag = preview_tag_of(engine, each) if preview_tag == PLAN_PREVIEW_TAG else preview_tag
            preview = each.render(engine, tag)
            items.append(
                Proposal.Item(
                    _review(engine, each),
                    planning.resolve(each.loaded.spec, refs),
                    preview,
                    tuple(_lint(engine, each, preview, lint_ignore)) if lint else None,
                )
            )
        return Proposal(snapshot, refs, tuple(items))

    return _until_fresh(attempt, "the plugins of this run kept changing while they were being reviewed")


def lint_of(engine: Engine, item: Proposal.Item) -> list[squawk.LintFinding]:
    """squawk's findings on *item*'s preview: those the proposal has, else linted now (no planning)."""
    return list(item.lint) if item.lint is not None else _lint(engine, item.planned, item.preview)


def _lint(
    engine: Engine, planned: Planned, preview: RenderedPlan, ignore: Collection[str] = ()
) -> list[squawk.LintFinding]:
    """squawk's findings on *preview* but for the rules *ignore* and the spec's ``lint.ignore`` name."""
    settings = planned.loaded.spec.lint
    ignored = {*ignore, *(settings.ignore if settings else ())}
    return squawk.lint(preview, engine.dialect.name, planned.plan, ignored)


def preview_tag_of(engine: Engine, planned: Planned) -> str:
    """What *planned*'s backups are named after when apply runs it next: the plugin's next migration
    id (read now; a migration of the plugin in between takes it). Read only when the plan backs up."""
    if planned.plan.empty or not engine.dialect.backups_of(planned.plan, backup_tag(PLAN_PREVIEW_TAG)):
        return PLAN_PREVIEW_TAG
    return f"{len(engine.history(planned.plan.plugin_id)) + 1:04d}"


def plan(
    engine: Engine, ordered: Sequence[Loaded], refs: planning.ReferenceTypes, snapshot: Snapshot | None = None
) -> list[Planned]:
    """Plan every spec before any migration runs; a refused change anywhere stops the whole run.

    Without this step the first specs of a run would be applied before a later one is refused
    (ES301/ES302), leaving the database half way. Every refusal is reported at once.
    """
    planned: list[Planned] = []
    problems: list[Problem] = []
    kind: Kind | None = None
    for item in ordered:
        try:
            planned.append(plan_one(engine, item, refs, snapshot))
        except ProblemError as error:
            problems.extend(error.problems)
            kind = kind or error.kind
    if kind is not None:
        raise ProblemError(problems, kind)
    return planned


def execute(engine: Engine, proposal: Proposal, *, approvals: Collection[str] = (), on_event: OnEvent) -> list[Applied]:
    """Apply the authorized *proposal* in its (dependency) order; stop at the first failure."""
    results: list[Applied] = []
    total = len(proposal.items)
    for number, item in enumerate(proposal.items, start=1):
        spec = item.loaded.spec
        on_event(MigrationStarted(spec.plugin_id, spec.version, item.loaded.file, number, total, item.changes))
        try:
            with heard_by(on_event):
                result = apply_one(engine, item.loaded, proposal.refs, item.planned, approvals, resolved=item.resolved)
        except ProblemError as error:
            on_event(MigrationFailed(spec.plugin_id, error, number, total))
            if any(r.changed for r in results):  # committed before the failure: say so
                raise PartiallyApplied(error, results) from error.__cause__
            raise
        on_event(MigrationFinished(result, number, total))
        results.append(result)
    return results


def apply_one(
    engine: Engine,
    loaded: Loaded,
    refs: planning.ReferenceTypes,
    planned: Planned,
    approvals: Collection[str] = (),
    *,
    resolved: planning.Resolved | None = None,
) -> Applied:
    """Apply one spec, *planned* and approved already; plan it again when another applier moved the
    registry (*resolved* is the spec resolved against *refs*, when the caller has it).

    A plan made again here passes the approval gate on its own: an approval names one base and one
    plan, so when the registry moved, the new plan runs only if it is safe or its own hash is approved.
    """
    desired = resolved or planning.resolve(loaded.spec, refs)
    tables = desired.physical_tables(engine.dialect.namer)
    current = planned
    stale = False

    def attempt() -> Applied:
        nonlocal current, stale
        if stale:  # the registry moved since *current* was planned: plan from what it is now
            previous = current.hash()
            current = plan_one(engine, loaded, refs)
            reviewed = _review(engine, current)
            authorize([reviewed], approvals, stale={previous} & set(approvals))
        stale = True  # a StalePlan from here on means: plan again
        base_checksum = current.base.checksum if current.base else None
        adopted = None
        if adopt.is_retained(current.base):  # registered again first, as its own migration
            assert current.base is not None
            adopted = adopt.run(engine, loaded, refs, current.base)
            if current.base.checksum == loaded.spec.checksum():  # the retained spec itself: done
                return adopted
        try:
            result = engine.apply(loaded.owner, loaded.spec, current.plan, base_checksum, tables)
        except checks.ViolatingRows as violating:
            # Counted again under the migration's lock: worded as the approval gate words it.
            refusals = Reviewed.of(current, violating.counts).refusals()
            refusals.extend(
                Problem(
                    "ES309",
                    _field_path(loaded.spec, p.check.table, p.check.column),
                    checks.predated_refusal(p, n),
                    file=loaded.file,
                    subject=loaded.owner,
                )
                for p, n in violating.predated
            )
            raise ProblemError(refusals, Kind.REFUSED) from None
        except ProblemError as error:
            problems = [p.located(loaded.file) if p.file is None else p for p in error.problems]
            if isinstance(error, StepFailed) and error.step.raw_step is not None:  # point at the spec's step
                ids = [step.id for step in loaded.spec.migrations]
                if error.step.raw_step in ids:
                    path = f"spec.migrations[{ids.index(error.step.raw_step)}]"
                    problems[0] = dataclasses.replace(problems[0], path=path, subject=loaded.spec.plugin_id)
            raise ProblemError(problems, error.kind) from None
        return dataclasses.replace(
            result,
            description=[
                *(adopted.description if adopted else ()),
                *result.description,
                *_backed_up(engine, current.plan, result),
            ],
            warnings=tuple(w.located(loaded.file) for w in result.warnings),
        )

    return _until_fresh(attempt, f"plugin {loaded.spec.plugin_id!r} kept changing while it was being applied")


def _until_fresh(step: Callable[[], _T], what: str) -> _T:
    """*step* again while it raises :class:`StalePlan` (another applier moved a plugin it planned
    from); ES403 (retryable) saying *what* kept changing when that goes on."""
    for _ in range(_STALE_RETRIES):
        try:
            return step()
        except StalePlan:
            continue
    raise ProblemError.one("ES403", "database", f"{what}; try again", kind=Kind.RETRYABLE)


def recheck(engine: Engine, registered: Sequence[Loaded]) -> list[Problem]:
    """The conflicts of *registered* plugins as things are now: each against the core tables and every
    other registration (its own claim set aside), e.g. a core table created since that takes a plugin's name."""
    if not registered:
        return []
    snapshot = Snapshot.take(engine, [item.spec for item in registered])
    problems: list[Problem] = []
    for item in registered:
        others = dataclasses.replace(
            snapshot, registrations=[r for r in snapshot.registrations if r.plugin_id != item.spec.plugin_id]
        )
        try:
            check(engine, [item], snapshot=others)
        except ProblemError as error:
            problems.extend(p for p in error.problems if p.code != "ES202")
    return problems


def references(engine: Engine, specs: Sequence[ExtensionSchemaSpec], *, own: bool = True) -> planning.ReferenceTypes:
    """The column types references resolve against, read now: the core tables and registered plugins,
    and *specs*' own unless not *own* (for the plans of a plugin's later life: rollback, teardown, restore)."""
    return reference_types(Snapshot.take(engine, specs), specs if own else [])


def _backed_up(engine: Engine, plan: planning.Plan, result: ApplyResult) -> list[str]:
    """What the migration copied before a destructive step, for the person who ran it (``extschema restore``)."""
    if not result.changed or result.migration_id is None:
        return []
    return _backup_lines(engine.dialect.backups_of(plan, backup_tag(result.migration_id)))


def _backup_lines(refs: Iterable[BackupRef]) -> list[str]:
    return [
        f"backed up {f'{b.source_table}.{b.column}' if b.column else f'table {b.source_table}'} to {b.table}"
        for b in refs
    ]
