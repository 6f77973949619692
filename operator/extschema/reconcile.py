"""The one line both shells drive: snapshot once → check → plan → gate → approve → apply.

``extschema apply`` and the operator run the same steps; only the reporting differs (the CLI
prints, the operator writes status, conditions and events). Every step either returns a typed
result or raises :class:`~extschema.problems.ProblemError` with located, coded problems. While
migrations run, the caller's hook receives typed migration events (:data:`MigrationEvent`), so
the CLI's progress lines, the operator's events and metrics all read the same facts.

Plans that rewrite a table or drop data run only when approved by their hash (:func:`authorize`):
the CLI's ``--approve HASH`` or the spec's own ``approvedPlanHash``. Until then nothing of the run
runs, and :class:`ApprovalRequired` carries each waiting plan (:class:`PendingPlan`) for the
operator's ``status.pendingPlan``.

Loading (files, YAML, custom resources) lives in :mod:`extschema.loading`, which needs no
database; ``load``, ``Loaded`` and ``from_object`` are re-exported here for the shells.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from extschema import conflicts, model, planning
from extschema.dialects import BackupRef, RenderedPlan
from extschema.engine import (
    ApplyResult,
    Engine,
    MigrationKind,
    MigrationStatus,
    Registration,
    RollbackPlan,
    StalePlan,
    checks,
    registered_by_another,
)
from extschema.engine import drift as engine_drift
from extschema.loading import (
    Loaded,
    from_object,
    load,
)
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PLAN_PREVIEW_TAG, backup_tag
from extschema.planning import rawsql, safety, versions
from extschema.problems import Kind, Problem, ProblemError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ApprovalRequired",
    "CheckedOp",
    "Loaded",
    "MigrationEvent",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationStarted",
    "OnEvent",
    "PendingPlan",
    "Planned",
    "Reviewed",
    "Snapshot",
    "apply_all",
    "apply_one",
    "authorize",
    "check",
    "database_url",
    "delete",
    "drift",
    "from_object",
    "load",
    "locate",
    "plan_all",
    "plan_one",
    "reconcile",
    "reference_types",
    "review",
    "review_all",
    "rollback",
]

DEFAULT_DATABASE_URL = "sqlite:///extschema.db"
_STALE_RETRIES = 5


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


# --- migration events ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MigrationStarted:
    """Spec *number* of *total* is being planned and applied (it may turn out unchanged)."""

    plugin_id: str
    version: str
    file: str
    #: Position in the run (1-based) and the run's length, for "[2/5]"-style progress.
    number: int
    total: int


@dataclasses.dataclass(frozen=True)
class MigrationFinished:
    """A spec was applied (``result.changed``) or found already in place."""

    result: ApplyResult
    number: int  # as in MigrationStarted
    total: int


@dataclasses.dataclass(frozen=True)
class MigrationFailed:
    """A spec could not be applied; the error is raised right after this event."""

    plugin_id: str
    error: ProblemError
    number: int  # as in MigrationStarted
    total: int


MigrationEvent = MigrationStarted | MigrationFinished | MigrationFailed
#: The one hook for progress: the CLI prints, the operator posts events, metrics count.
OnEvent = Callable[[MigrationEvent], None]


# --- conflicts ---------------------------------------------------------------------------------


def _claims(registrations: Sequence[Registration]) -> list[conflicts.Claim]:
    return [conflicts.Claim(r.owner, r.spec) for r in registrations]


def locate(problems: Iterable[Problem], loaded: Sequence[Loaded]) -> list[Problem]:
    """Attribute problems to the file of the document they are about."""
    files = {item.owner: item.file for item in loaded}
    return [
        p.located(files[p.subject]) if p.file is None and p.subject is not None and p.subject in files else p
        for p in problems
    ]


# --- plan + apply ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Planned:
    """The change one spec makes, rendered for the target database."""

    loaded: Loaded
    base: Registration | None
    plan: planning.Plan

    def render(self, engine: Engine, tag: str) -> RenderedPlan:
        return engine.dialect.render_plan(self.plan, backup_tag=backup_tag(tag))

    def hash(self) -> str:
        """The plan's hash: what an approval names (the same base and operations, the same hash)."""
        return safety.plan_hash(self.base.checksum if self.base else None, self.plan)

    def tables(self, engine: Engine, refs: planning.ReferenceTypes) -> list[str]:
        desired = planning.resolve(self.loaded.spec, refs)
        return [str(engine.dialect.namer.table(self.loaded.spec.plugin_id, t.name)) for t in desired.tables]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The registry and the core tables, read once per run (reflection is the slow part).

    Planning from a snapshot is safe: the engine re-reads the plugin's registration under the
    migration lock and refuses a plan whose base has moved (:class:`StalePlan`).
    """

    registrations: list[Registration]
    core: dict[tuple[str, str], dict[str, model.FieldType | None]]

    @classmethod
    def take(cls, engine: Engine, specs: Iterable[ExtensionSchemaSpec] = ()) -> Snapshot:
        """Read the registry, and the core tables with the columns of those *specs* reference."""
        referenced = {
            target.table
            for spec in specs
            for rel in spec.relationships
            if (target := model.parse_target(rel.target, spec.plugin_id)) is not None and target.is_core
        }
        return cls(engine.registrations(), engine.core_catalog(columns_of=referenced))

    def registration(self, plugin_id: str) -> Registration | None:
        return next((r for r in self.registrations if r.plugin_id == plugin_id), None)


def reference_types(
    snapshot: Snapshot, specs: Iterable[ExtensionSchemaSpec]
) -> dict[tuple[str, str], dict[str, model.FieldType | None]]:
    """Column types of core tables, registered plugins and the specs being applied."""
    refs: dict[tuple[str, str], dict[str, model.FieldType | None]] = dict(snapshot.core)
    for registration in snapshot.registrations:
        refs.update(planning.reference_types_of(registration.spec))
    for spec in specs:
        refs.update(planning.reference_types_of(spec))
    return refs


def plan_one(
    engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes, snapshot: Snapshot | None = None
) -> Planned:
    """The plan of one spec from its registration in *snapshot* (read now when not given).

    A plan from a snapshot may be stale by the time it runs; the engine refuses it under the lock
    (:class:`StalePlan`) and :func:`apply_one` plans again from a fresh read.
    """
    plugin_id = loaded.spec.plugin_id
    base = snapshot.registration(plugin_id) if snapshot is not None else engine.registration(plugin_id)
    if base is not None and base.owner != loaded.owner:
        error = registered_by_another(plugin_id, base.owner)
        raise ProblemError([p.located(loaded.file) for p in error.problems], error.kind)
    if base is not None and base.checksum == loaded.spec.checksum() and base.status == "active":
        return Planned(loaded, base, planning.Plan(loaded.spec.plugin_id, ()))
    if base is not None and versions.compare(loaded.spec.version, base.version) < 0:
        _require_recorded(engine, loaded, base)
    try:
        plan = planning.plan(base.spec if base else None, loaded.spec, refs)
        rawsql.require_allowed(loaded.spec, plan, engine.allow_raw_sql)
    except ProblemError as error:
        raise ProblemError([p.located(loaded.file) for p in error.problems], error.kind) from None
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
        if found and engine.registration(plugin_id) is None:
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


# --- review + approval ---------------------------------------------------------------------------

#: What a data check's count counts, for messages ("120 values").
_UNITS: dict[str, str] = {
    "rows_lost": "rows",
    "values_lost": "values",
    "rows_violating": "rows violate it",
    "rows_duplicated": "rows share values",
}
#: Operations a one-line summary names before it says how many more there are.
_SUMMARY_OPS = 6


@dataclasses.dataclass(frozen=True)
class CheckedOp:
    """One operation as the approver sees it: its class, why, and its data checks with their counts."""

    classified: safety.Classified
    #: One count per check of :attr:`classified` (``classified.checks``), in order.
    counts: tuple[int, ...] = ()

    def counted(self) -> list[tuple[safety.DataCheck, int]]:
        return list(zip(self.classified.checks, self.counts, strict=True))

    def violations(self) -> list[tuple[safety.DataCheck, int]]:
        """The checks whose rows break the changed rule, with their counts."""
        return [(check, count) for check, count in self.counted() if check.kind in safety.VIOLATIONS and count]

    def describe(self) -> str:
        """``drop column order.note (120 values)``."""
        text = self.classified.op.describe()
        checks = self.classified.checks
        return f"{text} ({sum(self.counts)} {_UNITS[checks[0].kind]})" if checks else text

    def as_dict(self) -> dict[str, Any]:
        """The form of ``plan -o json``'s ``ops`` and ``status.pendingPlan``'s: names as the contract spells them.

        ``check`` is the operation's (first) data check; an operation checking several columns (an
        enum's values removed from each column using it) adds the others as ``moreChecks``.
        """
        c = self.classified
        checks = [
            {"kind": check.kind, "table": check.table, "column": check.column, "count": count}
            for check, count in self.counted()
        ]
        entry: dict[str, Any] = {
            "kind": c.op.KIND,
            "description": c.op.describe(),
            "class": c.op_class,
            "reason": c.reason,
            "check": checks[0] if checks else None,
        }
        if len(checks) > 1:
            entry["moreChecks"] = checks[1:]
        return entry


@dataclasses.dataclass(frozen=True)
class PendingPlan:
    """A plan waiting for an approval of its hash (the operator shows it as ``status.pendingPlan``)."""

    plugin_id: str
    hash: str
    op_class: safety.OpClass  # "rewriting" or "destructive": safe plans never wait
    #: One line naming each operation, with the rows or values it loses.
    summary: str
    destructive: bool
    #: Each operation as :meth:`CheckedOp.as_dict` gives it.
    ops: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """As ``status.pendingPlan`` and the CLI's JSON spell it."""
        return {
            "pluginId": self.plugin_id,
            "hash": self.hash,
            "class": self.op_class,
            "summary": self.summary,
            "destructive": self.destructive,
            "ops": self.ops,
        }


@dataclasses.dataclass(frozen=True)
class Reviewed:
    """A plan with its hash, its class, and each operation classified and counted."""

    planned: Planned
    hash: str
    op_class: safety.OpClass
    ops: tuple[CheckedOp, ...]

    @classmethod
    def of(cls, planned: Planned, counts: Sequence[int], classified: list[safety.Classified] | None = None) -> Reviewed:
        """*planned* classified (*classified*, when the caller has it already), with *counts*: one per
        data check, in the order of the operations."""
        classified = safety.classify_plan(planned.plan) if classified is None else classified
        remaining = iter(counts)
        ops = tuple(CheckedOp(c, tuple(next(remaining) for _ in c.checks)) for c in classified)
        return cls(planned, planned.hash(), safety.plan_class(classified), ops)

    @property
    def plugin_id(self) -> str:
        return self.planned.loaded.spec.plugin_id

    @property
    def needs_approval(self) -> bool:
        return self.op_class != "safe"

    def summary(self) -> str:
        shown = [op.describe() for op in self.ops[:_SUMMARY_OPS]]
        more = len(self.ops) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")

    def pending(self) -> PendingPlan:
        return PendingPlan(
            self.plugin_id,
            self.hash,
            self.op_class,
            self.summary(),
            self.op_class == "destructive",
            [op.as_dict() for op in self.ops],
        )

    def refusals(self) -> list[Problem]:
        """ES309 for every step whose new rule existing rows break: no approval makes them fit."""
        loaded = self.planned.loaded
        return [
            Problem(
                "ES309",
                _field_path(loaded.spec, check.table, check.column or next(iter(check.columns), None)),
                safety.refusal(op.classified.op, check, count),
                file=loaded.file,
                subject=loaded.owner,
            )
            for op in self.ops
            for check, count in op.violations()
        ]


class ApprovalRequired(ProblemError):
    """Plans of the run rewrite or drop data and no approval matches them; nothing of the run ran.

    ``problems`` say it in words (ES307 per plan, ES308 per approval of another plan); ``pending``
    are the waiting plans themselves.
    """

    def __init__(self, problems: Sequence[Problem], pending: Sequence[PendingPlan]) -> None:
        super().__init__(problems, Kind.APPROVAL)
        self.pending = tuple(pending)


def _field_path(spec: ExtensionSchemaSpec, table: str, column: str | None) -> str:
    """Where in *spec* the field *table*.*column* (names before the change) is declared, as far as it is."""
    for t, table_spec in enumerate(spec.tables):
        if table in (table_spec.name, table_spec.renamed_from):
            for f, field in enumerate(table_spec.fields):
                if column is not None and column in (field.name, field.renamed_from):
                    return f"spec.tables[{t}].fields[{f}]"
            return f"spec.tables[{t}]"
    return "spec.tables"


def review(engine: Engine, planned: Planned, classified: list[safety.Classified] | None = None) -> Reviewed:
    """Classify every operation of *planned* (unless *classified* already), count its data checks in
    the database, hash the plan.

    ES403 (retryable) when another applier migrated the plugin while it was being reviewed: the
    counts are of a database the plan no longer starts from.
    """
    try:
        return _review(engine, planned, classified)
    except StalePlan:
        raise ProblemError.one(
            "ES403",
            "database",
            f"plugin {planned.plan.plugin_id!r} was migrated by another applier while its plan was being reviewed; "
            "plan again",
            kind=Kind.RETRYABLE,
        ) from None


def _review(engine: Engine, planned: Planned, classified: list[safety.Classified] | None = None) -> Reviewed:
    """:func:`review`, raising :class:`StalePlan` when the plugin's registration is no longer the plan's base.

    Counting reads the plugin's tables as they are now; a concurrent migration may have changed them
    (a dropped column fails the count, a rewritten one counts other rows). The registration is read
    after counting: if it still is the base, the counts are of the database the plan starts from
    (a migration commits its tables and its registration together).
    """
    plan = planned.plan
    classified = safety.classify_plan(plan) if classified is None else classified
    wanted = [check for c in classified for check in c.checks]
    try:
        counts = checks.count_all(engine, plan.plugin_id, wanted)
    except ProblemError:
        if _moved(engine, planned):
            raise StalePlan(plan.plugin_id) from None
        raise
    if wanted and _moved(engine, planned):
        raise StalePlan(plan.plugin_id)
    return Reviewed.of(planned, counts, classified)


def _moved(engine: Engine, planned: Planned) -> bool:
    """Whether the plugin's registration differs from the base *planned* was planned from."""
    now = engine.registration(planned.plan.plugin_id)
    base = planned.base
    return (now.checksum, now.status) != (base.checksum, base.status) if now and base else now is not base


def review_all(engine: Engine, planned: Sequence[Planned]) -> list[Reviewed]:
    """Every plan reviewed; :class:`StalePlan` when one's base moved meanwhile (plan the run again)."""
    return [_review(engine, p) for p in planned]


def _waiting(reviewed: Reviewed, approvals: Collection[str], others: Collection[str]) -> list[Problem]:
    """ES307 (and ES308 for each approval of another plan) unless *reviewed* is safe or approved.

    *approvals* are the command line's; the spec's own ``approvedPlanHash`` approves too. *others*
    are the command line's approvals that match no plan of the run.
    """
    own = reviewed.planned.loaded.spec.approved_plan_hash
    if not reviewed.needs_approval or reviewed.hash in approvals or own == reviewed.hash:
        return []
    loaded = reviewed.planned.loaded
    located = {"file": loaded.file, "subject": loaded.owner}
    what = "drops or narrows data" if reviewed.op_class == "destructive" else "rewrites tables or runs raw SQL"
    problems = [
        Problem(
            "ES307",
            "spec",
            f"plan {reviewed.hash} of plugin {reviewed.plugin_id!r} {what} and needs approval: {reviewed.summary()}; "
            f"review it with `extschema plan`, then approve exactly this plan with `--approve {reviewed.hash}` "
            f"or spec.approvedPlanHash: {reviewed.hash}",
            **located,
        )
    ]
    stale = ([("spec.approvedPlanHash", own)] if own else []) + [("--approve", h) for h in sorted(others)]
    problems.extend(
        Problem(
            "ES308",
            path,
            f"{path.removeprefix('spec.')} {given} is for another plan and is ignored; this plan is {reviewed.hash} "
            "(the spec or the applied schema changed since it was planned: review the new plan)",
            **located,
        )
        for path, given in stale
    )
    return problems


def authorize(
    reviewed: Sequence[Reviewed], approvals: Collection[str] = (), stale: Collection[str] | None = None
) -> None:
    """The approval gate: every plan is safe or approved, or nothing of the run runs.

    Raises ``refused`` (ES309) when existing rows break a narrowed field, whatever is approved;
    :class:`ApprovalRequired` when a rewriting or destructive plan has no approval of its hash.
    *stale* are approvals known to be for another plan (reported with ES308); by default those of
    *approvals* that match no plan of the run — and then such an approval stops a run that would
    change anything, even safely: an approval is for exactly one plan, and a stale one means the
    plan changed since someone looked at it.
    """
    refused = [p for r in reviewed for p in r.refusals()]
    if refused:
        raise ProblemError(refused, Kind.REFUSED)
    changing = [r for r in reviewed if not r.planned.plan.empty]
    others = set(approvals) - {r.hash for r in changing} if stale is None else set(stale)
    problems: list[Problem] = []
    pending: list[PendingPlan] = []
    for item in changing:
        found = _waiting(item, approvals, others)
        if found:
            problems.extend(found)
            pending.append(item.pending())
    if stale is None and not problems and others and changing:
        plans = ", ".join(f"{r.plugin_id} {r.hash}" for r in changing)
        problems.extend(
            Problem(
                "ES308",
                "--approve",
                f"--approve {given} is for another plan: this run's plans are {plans}; "
                "review them with `extschema plan` and approve the hashes they have now",
            )
            for given in sorted(others)
        )
    if problems:
        raise ApprovalRequired(problems, pending)


def reconcile(
    engine: Engine,
    loaded: Sequence[Loaded],
    on_event: OnEvent,
    peers: Sequence[conflicts.Claim] = (),
    approvals: Collection[str] = (),
) -> list[ApplyResult]:
    """The whole line after loading, one step after the other; stops at the first failure.

    1. snapshot: read the registry and the core tables once;
    2. check: conflicts and dependencies, giving the dependency order;
    3. plan: every spec against the snapshot;
    4. gate: a refused change anywhere stops the run before any migration starts;
    5. approve: every rewriting or destructive plan approved by its hash (*approvals*, or the
       spec's ``approvedPlanHash``), its data checks counted — else nothing runs (:func:`authorize`);
    6. apply: in order, each spec re-planned under the lock if its registration moved (and the
       new plan approved again).
    """
    specs = [item.spec for item in loaded]
    for _ in range(_STALE_RETRIES):
        snapshot = Snapshot.take(engine, specs)
        ordered = check(engine, loaded, peers, snapshot)
        refs = reference_types(snapshot, specs)
        planned = gate(engine, ordered, refs, snapshot)
        try:
            reviewed = review_all(engine, planned)
        except StalePlan:  # another applier migrated a plugin of the run: plan from what it left
            continue
        authorize(reviewed, approvals)
        return apply_all(engine, ordered, on_event, snapshot, planned, approvals)
    raise ProblemError.one(
        "ES403",
        "database",
        "the plugins of this run kept changing while they were being reviewed; try again",
        kind=Kind.RETRYABLE,
    )


def gate(
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


def plan_all(engine: Engine, loaded: Sequence[Loaded]) -> list[tuple[Planned, RenderedPlan]]:
    """check → plan every spec, in dependency order, from one snapshot; runs nothing."""
    specs = [item.spec for item in loaded]
    snapshot = Snapshot.take(engine, specs)
    ordered = check(engine, loaded, snapshot=snapshot)
    refs = reference_types(snapshot, specs)
    planned = [plan_one(engine, item, refs, snapshot) for item in ordered]
    return [(p, p.render(engine, PLAN_PREVIEW_TAG)) for p in planned]


def apply_one(
    engine: Engine,
    loaded: Loaded,
    refs: planning.ReferenceTypes,
    planned: Planned | None = None,
    approvals: Collection[str] = (),
) -> ApplyResult:
    """Apply one spec (*planned* already, and approved; or planned and approved here); replan when
    another applier moved the registry.

    A plan made here passes the approval gate on its own: an approval names one base and one plan,
    so when the registry moved, the new plan runs only if it is safe or its own hash is approved.
    """
    for attempt in range(_STALE_RETRIES):
        if planned is None or attempt:
            previous = planned.hash() if planned is not None else None
            planned = plan_one(engine, loaded, refs)
            try:
                reviewed = _review(engine, planned)
            except StalePlan:  # moved again while it was counted
                continue
            authorize([reviewed], approvals, stale={previous} & set(approvals) if previous else ())
        base_checksum = planned.base.checksum if planned.base else None
        try:
            result = engine.apply(loaded.owner, loaded.spec, planned.plan, base_checksum, planned.tables(engine, refs))
        except StalePlan:
            continue
        except checks.ViolatingRows as violating:
            # Counted again under the migration's lock: worded as the approval gate words it.
            refusals = Reviewed.of(planned, violating.counts).refusals()
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
            raise ProblemError(
                [p.located(loaded.file) if p.file is None else p for p in error.problems], error.kind
            ) from None
        return dataclasses.replace(
            result,
            description=[*result.description, *_backed_up(engine, planned.plan, result)],
            warnings=tuple(w.located(loaded.file) for w in result.warnings),
        )
    raise ProblemError.one(
        "ES403",
        "database",
        f"plugin {loaded.spec.plugin_id!r} kept changing while it was being applied; try again",
        kind=Kind.RETRYABLE,
    )


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


def apply_all(
    engine: Engine,
    loaded: Sequence[Loaded],
    on_event: OnEvent,
    snapshot: Snapshot | None = None,
    planned: Sequence[Planned] | None = None,
    approvals: Collection[str] = (),
) -> list[ApplyResult]:
    """Apply in dependency order (already sorted by :func:`check`); stop at the first failure.

    *planned* are the gate's plans, one per spec in the same order, already approved (planned and
    approved here when not given, with *approvals*).
    """
    specs = [item.spec for item in loaded]
    refs = reference_types(snapshot or Snapshot.take(engine, specs), specs)
    results = []
    total = len(loaded)
    for number, item in enumerate(loaded, start=1):
        on_event(MigrationStarted(item.spec.plugin_id, item.spec.version, item.file, number, total))
        try:
            result = apply_one(engine, item, refs, planned[number - 1] if planned else None, approvals)
        except ProblemError as error:
            on_event(MigrationFailed(item.spec.plugin_id, error, number, total))
            raise
        on_event(MigrationFinished(result, number, total))
        results.append(result)
    return results


#: What a data check counts that a rollback would lose (violations are refused outright: ES309).
_LOSSES = frozenset({"rows_lost", "values_lost"})


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


def review_rollback(engine: Engine, undo: RollbackPlan) -> Reviewed:
    """*undo* classified, its data checks counted and hashed like a plan (base: the registered spec)."""
    base = undo.base
    namespace, _, name = base.owner.rpartition("/")
    document = model.ExtensionSchema.model_validate(
        {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": {"name": name, "namespace": namespace or None},
            # An approval recorded with the spec approved its way there, not the way back.
            "spec": base.spec.model_copy(update={"approved_plan_hash": None}),
        }
    )
    planned = Planned(Loaded(f"rollback of {base.plugin_id}", document), base, undo.plan)
    return _review(engine, planned, safety.classify_plan(undo.plan, rollback=True))


def authorize_rollback(reviewed: Reviewed, approvals: Collection[str] = ()) -> None:
    """The gate of a rollback: ES309 when existing rows break a field it narrows; ES307 (with the
    counts and the hash, :class:`ApprovalRequired`) when it would drop values or rows, or runs a raw
    step's ``rollbackSql`` (destructive whatever the counts: what it deletes is unknown), and
    *approvals* do not name its hash; ES308 for each approval of another plan. A rollback losing
    nothing runs."""
    refused = reviewed.refusals()
    if refused:
        raise ProblemError(refused, Kind.REFUSED)
    loses = any(count for op in reviewed.ops for check, count in op.counted() if check.kind in _LOSSES)
    raw = [op.classified.op for op in reviewed.ops if rawsql.runs_sql(op.classified.op)]
    waiting = (loses or bool(raw)) and reviewed.hash not in approvals
    others = set(approvals) - {reviewed.hash}
    problems: list[Problem] = []
    if waiting:
        spec = reviewed.planned.base.spec if reviewed.planned.base else None
        steps = ", ".join(repr(getattr(op, "id", "?")) for op in raw)
        does = (
            f"runs the hand-written rollbackSql of step {steps} (`extschema history {reviewed.plugin_id} --sql` "
            "shows it), which may delete or change any row of the tables it names"
            if raw
            else "drops data"
        )
        problems.append(
            Problem(
                "ES307",
                "plugin",
                f"rolling back plugin {reviewed.plugin_id!r} (version {spec.version if spec else '?'}) {does}: "
                f"{reviewed.summary()}; it is backed up first, but approve exactly this rollback with "
                f"`extschema rollback {reviewed.plugin_id} --approve {reviewed.hash}`",
            )
        )
    if others:
        problems.extend(_stale_rollback_approvals(reviewed.plugin_id, others, reviewed.hash, raise_=False))
    if problems:
        raise ApprovalRequired(problems, [reviewed.pending()] if waiting else [])


def _stale_rollback_approvals(
    plugin_id: str, given: Collection[str], current: str | None, raise_: bool = True
) -> list[Problem]:
    """ES308 for each of *given*: none is the hash of the rollback of *plugin_id* as it is now (*current*)."""
    now_is = f"this rollback is {current}" if current else "there is nothing to roll back"
    problems = [
        Problem(
            "ES308",
            "--approve",
            f"--approve {h} is for another plan: {now_is} (plugin {plugin_id!r} changed since it was reviewed); "
            "review the rollback again",
        )
        for h in sorted(given)
    ]
    if raise_:
        raise ApprovalRequired(problems, [])
    return problems


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
