"""Every shape a user or a program reads, defined once: pydantic views, camelCase, dumped one way.

The CLI's ``-o json``, ``status.pendingPlan`` (through :mod:`extschema.status_model`), the admission
webhook's warnings and the REST API all print these views. A view is built from what the pipeline
computed with its ``of`` classmethod and printed with :meth:`View.dump`; nothing else spells a key.

Each command prints one envelope, whatever the count (docs/json-output.md)::

    {"apiVersion": "extschema.io/v1alpha1", "kind": "PlanList", "ok": true, "items": [...], "problems": []}

A failed command prints a :class:`Failure` envelope: the problems, and the plans waiting for an
approval when that is why. Timestamps are RFC 3339 in UTC with an explicit offset on every database
(SQLite hands back naive UTC values: they are made aware here).

Pure: no I/O, and it imports nothing of the pipeline. The sources are described by protocols, so
the reconcile and engine types (and the API's) build views without this module knowing them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Final, Generic, Literal, Protocol, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from extschema import limits

#: The version of every envelope and view below; a change of a key is a new version.
API_VERSION: Final = "extschema.io/v1alpha1"


def _utc(value: Any) -> Any:
    """A timestamp as stored: SQLite hands back the UTC time it was given without its zone."""
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


def rfc3339(value: datetime.datetime) -> str:
    """``2026-01-02T03:04:05.678+00:00``: UTC, milliseconds, the offset written out."""
    aware: datetime.datetime = _utc(value)
    return aware.astimezone(datetime.UTC).isoformat(timespec="milliseconds")


#: A point in time: aware (a naive *datetime* from the database is UTC), printed by :func:`rfc3339`.
#: Text without an offset is refused, so a shape that loses the zone fails its test.
Time = Annotated[
    AwareDatetime,
    BeforeValidator(_utc),
    PlainSerializer(rfc3339, return_type=str),
]


#: A count: a Kubernetes int64 where a view is part of a status (:mod:`extschema.status_model`).
Int64 = Annotated[int, WithJsonSchema({"type": "integer", "format": "int64"})]


class View(BaseModel):
    """A shape printed to users and programs: camelCase keys, every key always present (null when unset)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def dump(self) -> dict[str, Any]:
        """The one way a view is printed: JSON values, camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)


# --- sources: what the pipeline hands over (structural, so this module imports none of it) ---------


class ProblemSource(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def file(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...
    @property
    def column(self) -> int | None: ...


class CheckSource(Protocol):
    """A data check (``planning.safety.DataCheck``)."""

    @property
    def kind(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def column(self) -> str | None: ...


class OpSource(Protocol):
    """An operation as the approver sees it (``reconcile.CheckedOp``)."""

    @property
    def classified(self) -> Any: ...  # planning.safety.Classified: op, op_class, reason
    def counted(self) -> Sequence[tuple[CheckSource, int]]: ...


class PlanSource(Protocol):
    """A reviewed plan (``reconcile.Reviewed``)."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def op_class(self) -> str: ...
    @property
    def ops(self) -> Sequence[OpSource]: ...
    @property
    def needs_approval(self) -> bool: ...
    def summary(self) -> str: ...


class RenderedSource(Protocol):
    """A plan as SQL (``dialects.RenderedPlan``)."""

    @property
    def all_statements(self) -> Sequence[str]: ...
    @property
    def rollback(self) -> Sequence[str]: ...
    @property
    def steps(self) -> Sequence[int]: ...


class LintSource(Protocol):
    @property
    def rule(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def statement(self) -> int | None: ...


# --- views ------------------------------------------------------------------------------------------


class ProblemView(View):
    """What is wrong, where, and how to fix it: a stable code (docs/errors.md) and a message."""

    code: str
    path: str
    message: str
    file: str | None = None
    #: The resource or file owner the problem is about (``namespace/name``), when known.
    subject: str | None = None
    #: Line and column (1-based) in ``file`` of the YAML the path names, when known.
    line: int | None = None
    column: int | None = None

    @classmethod
    def of(cls, problem: ProblemSource) -> ProblemView:
        return cls(
            code=problem.code,
            path=problem.path,
            message=problem.message,
            file=problem.file,
            subject=problem.subject,
            line=problem.line,
            column=problem.column,
        )


class ConflictView(ProblemView):
    """A conflict (ES2xx): a name two claims want, said as a problem of the schema that loses."""


class CheckView(View):
    """A data check the plan's operation ran before review, with its count."""

    kind: Literal["rows_lost", "values_lost", "rows_violating", "rows_duplicated"] = Field(
        description="What is counted: rows_lost, values_lost, rows_violating or rows_duplicated."
    )
    table: str = Field(max_length=256, description="The table counted (its name before the plan).")
    column: str | None = Field(None, max_length=256, description="The column counted, if one.")
    count: Int64 = Field(description="How many rows or values.")


class OpView(View):
    """One operation of a plan: its kind, what it does, its class and why, and its data checks."""

    kind: str = Field(max_length=64, description="The operation, e.g. drop_column.")
    description: str = Field(max_length=limits.MAX_STATUS_CHANGE_LENGTH, description="What it does.")
    op_class: Literal["safe", "rewriting", "destructive"] = Field(
        alias="class", description="safe, rewriting or destructive."
    )
    reason: str = Field(max_length=limits.MAX_STATUS_CHANGE_LENGTH, description="Why it has that class.")
    check: CheckView | None = Field(None, description="Its (first) data check with the count.")
    #: An operation checking several columns (an enum's values removed from each column using it).
    more_checks: list[CheckView] = Field(
        [],
        description="Its other data checks.",
        # Declared for the CRD, not enforced: a plan's view is never cut.
        json_schema_extra={"maxItems": limits.MAX_STATUS_PLAN_OPS, "x-kubernetes-list-type": "atomic"},
    )

    @classmethod
    def of(cls, op: OpSource) -> OpView:
        c = op.classified
        checks = [
            CheckView(kind=check.kind, table=check.table, column=check.column, count=count)
            for check, count in op.counted()
        ]
        return cls(
            kind=c.op.KIND,
            description=c.op.describe()[: limits.MAX_STATUS_CHANGE_LENGTH],
            op_class=c.op_class,
            reason=c.reason[: limits.MAX_STATUS_CHANGE_LENGTH],
            check=checks[0] if checks else None,
            more_checks=checks[1:],
        )


class LintView(View):
    """One finding of squawk (PostgreSQL's migration linter) about a plan's SQL."""

    rule: str = Field(max_length=128, description="squawk's rule name, e.g. adding-not-nullable-field.")
    level: str = Field(max_length=16, description="error or warning.")
    message: str = Field(max_length=limits.MAX_STATUS_CHANGE_LENGTH, description="What squawk found.")
    statement: Int64 | None = Field(None, description="Index of the statement in the plan's SQL (0-based).")

    @classmethod
    def of(cls, finding: LintSource) -> LintView:
        """*finding*, cut to the bounds the CRD declares for ``status.pendingPlan.lint``."""
        return cls(
            rule=finding.rule[:128],
            level=finding.level[:16],
            message=finding.message[: limits.MAX_STATUS_CHANGE_LENGTH],
            statement=finding.statement,
        )


class PlanView(View):
    """A reviewed plan: what ``plan`` prints, what waits for approval, what ``status.pendingPlan`` shows."""

    plugin_id: str
    version: str
    #: Approve exactly this plan with ``apply --approve HASH`` or ``spec.approvedPlanHash``.
    hash: str
    op_class: Literal["safe", "rewriting", "destructive"] = Field(alias="class")
    needs_approval: bool
    destructive: bool
    #: One line naming the operations, with the rows or values each loses.
    summary: str
    ops: list[OpView]
    #: The statements in the order they run; null where the plan was not rendered (a waiting plan in a failure).
    sql: list[str] | None = None
    #: For each statement of ``sql``, the index in ``ops`` of the step it belongs to (``plan`` numbers
    #: steps and statements from 1: step ``sqlSteps[i] + 1``, statement ``i + 1``); null when not known.
    sql_steps: list[int] | None = None
    rollback_sql: list[str] | None = None
    #: squawk's findings (PostgreSQL only); ``statement`` indexes ``sql``.
    lint: list[LintView] = []
    #: What this database leaves unenforced, and steps apply will refuse (ES309) whatever is approved.
    warnings: list[ProblemView] = []
    #: Set when apply first adopts what ``delete --retain`` kept (an ``adopt`` migration; the plan runs from there).
    adopts: str | None = None

    @classmethod
    def of(
        cls,
        plan: PlanSource,
        rendered: RenderedSource | None = None,
        lint: Iterable[LintSource] = (),
        warnings: Iterable[ProblemSource] = (),
        adopts: str | None = None,
    ) -> PlanView:
        """*plan* (``reconcile.Reviewed``, or anything with its fields), with its SQL when *rendered*,
        squawk's findings and the warnings to show; unrendered (a plan waiting in a failure), ``sql`` is null."""
        return cls(
            plugin_id=plan.plugin_id,
            version=plan.version,
            hash=plan.hash,
            op_class=plan.op_class,
            needs_approval=plan.needs_approval,
            destructive=plan.op_class == "destructive",
            summary=plan.summary(),
            ops=[OpView.of(op) for op in plan.ops],
            sql=None if rendered is None else list(rendered.all_statements),
            sql_steps=list(rendered.steps) if rendered is not None and rendered.steps else None,
            rollback_sql=None if rendered is None else list(rendered.rollback),
            lint=[LintView.of(f) for f in lint],
            warnings=[ProblemView.of(w) for w in warnings],
            adopts=adopts,
        )


class AppliedSource(Protocol):
    """``engine.ApplyResult``."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def changed(self) -> bool: ...
    @property
    def migration_id(self) -> str | None: ...
    @property
    def description(self) -> Sequence[str]: ...
    @property
    def duration_ms(self) -> int | None: ...
    @property
    def warnings(self) -> Sequence[ProblemSource]: ...
    @property
    def after(self) -> AfterPhaseSource | None: ...


class AfterPhaseSource(Protocol):
    """``engine.AfterPhase``."""

    @property
    def migration_id(self) -> str: ...
    @property
    def description(self) -> Sequence[str]: ...
    @property
    def duration_ms(self) -> int: ...


class AfterPhaseView(View):
    """What a migration ran after its COMMIT (PostgreSQL's concurrent index builds): its ``finish`` migration."""

    migration: str
    changes: list[str]
    duration_ms: int


class AppliedView(View):
    """What apply, rollback, delete or restore did for one plugin."""

    plugin_id: str
    #: False: nothing ran (the database already matched).
    changed: bool
    #: The migration recorded (see ``history``), when one ran.
    migration: str | None
    #: One line per change.
    changes: list[str]
    duration_ms: int | None
    warnings: list[ProblemView]
    #: The after phase, run once the migration committed (None: it had none); not in ``durationMs``.
    after: AfterPhaseView | None = None

    @classmethod
    def of(cls, result: AppliedSource) -> AppliedView:
        after = result.after
        return cls(
            plugin_id=result.plugin_id,
            changed=result.changed,
            migration=result.migration_id,
            changes=list(result.description),
            duration_ms=result.duration_ms,
            warnings=[ProblemView.of(w) for w in result.warnings],
            after=None
            if after is None
            else AfterPhaseView(
                migration=after.migration_id, changes=list(after.description), duration_ms=after.duration_ms
            ),
        )


class MigrationSource(Protocol):
    """``engine.registry.MigrationRecord``."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def migration_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def description(self) -> Sequence[str]: ...
    @property
    def migration_sql(self) -> str: ...
    @property
    def rollback_sql(self) -> str | None: ...
    @property
    def checksum_schema(self) -> str | None: ...
    @property
    def checksum_sql(self) -> str: ...
    @property
    def checksum_ok(self) -> bool: ...
    @property
    def execution_start(self) -> datetime.datetime | None: ...
    @property
    def execution_end(self) -> datetime.datetime | None: ...
    @property
    def duration_ms(self) -> int | None: ...
    @property
    def error_message(self) -> str | None: ...


class MigrationView(View):
    """One row of the migration history."""

    plugin_id: str
    migration_id: str
    kind: str
    version: str
    status: str
    description: list[str]
    migration_sql: str
    rollback_sql: str | None
    #: SHA-256 of the spec this migration applied (its canonical JSON).
    checksum_schema: str | None
    checksum_sql: str
    #: False: the recorded SQL no longer matches its checksum (see ``repair``).
    checksum_ok: bool
    execution_start: Time | None
    execution_end: Time | None
    duration_ms: int | None
    error_message: str | None

    @classmethod
    def of(cls, record: MigrationSource) -> MigrationView:
        return cls(
            plugin_id=record.plugin_id,
            migration_id=record.migration_id,
            kind=str(record.kind),
            version=record.version,
            status=str(record.status),
            description=list(record.description),
            migration_sql=record.migration_sql,
            rollback_sql=record.rollback_sql,
            checksum_schema=record.checksum_schema,
            checksum_sql=record.checksum_sql,
            checksum_ok=record.checksum_ok,
            execution_start=record.execution_start,  # made aware by Time
            execution_end=record.execution_end,
            duration_ms=record.duration_ms,
            error_message=record.error_message,
        )


class BackupSource(Protocol):
    """``engine.registry.BackupRecord``."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def migration_id(self) -> str: ...
    @property
    def backup_table(self) -> str: ...
    @property
    def source_table(self) -> str: ...
    @property
    def source_column(self) -> str | None: ...
    @property
    def rows(self) -> int: ...
    @property
    def created_at(self) -> datetime.datetime: ...


PruneState = Literal["pruned", "wouldPrune", "kept"]


class BackupView(View):
    """A backup taken before a destructive migration."""

    plugin_id: str
    migration_id: str
    backup_table: str
    source_table: str
    #: Null: the whole table was copied; else the column (with the row ids).
    source_column: str | None
    rows: int
    created_at: Time
    age_seconds: int
    #: ``backups prune`` only: pruned (or wouldPrune with --dry-run), or kept for a rollback.
    pruning: PruneState | None = None

    @classmethod
    def of(cls, backup: BackupSource, at: datetime.datetime, pruning: PruneState | None = None) -> BackupView:
        """*backup* as of *at* (its age)."""
        created = _utc(backup.created_at)
        return cls(
            plugin_id=backup.plugin_id,
            migration_id=backup.migration_id,
            backup_table=backup.backup_table,
            source_table=backup.source_table,
            source_column=backup.source_column,
            rows=backup.rows,
            created_at=created,
            age_seconds=int((_utc(at) - created).total_seconds()),
            pruning=pruning,
        )


class DifferenceSource(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def object(self) -> str: ...
    @property
    def detail(self) -> str: ...


class DriftSource(Protocol):
    """``engine.drift.DriftReport``."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def in_sync(self) -> bool: ...
    @property
    def differences(self) -> Sequence[DifferenceSource]: ...


class DifferenceView(View):
    """One way the database differs from the applied spec; ``object`` names it (``column order.note``)."""

    kind: Literal["missing", "extra", "changed"]
    object: str
    detail: str


class DriftView(View):
    """How a plugin's objects in the database compare with its applied spec."""

    plugin_id: str
    in_sync: bool
    differences: list[DifferenceView]
    #: What ``drift --repair`` re-created before comparing.
    repaired: list[str] = []

    @classmethod
    def of(cls, report: DriftSource, repaired: Sequence[str] = ()) -> DriftView:
        return cls(
            plugin_id=report.plugin_id,
            in_sync=report.in_sync,
            differences=[DifferenceView(kind=d.kind, object=d.object, detail=d.detail) for d in report.differences],
            repaired=list(repaired),
        )


class PluginView(View):
    """A registered plugin (``status``): version, state, tables present and expected."""

    plugin_id: str
    owner: str
    version: str
    status: str
    #: postgresql or sqlite.
    database: str
    #: The plugin's physical tables found in the database.
    tables: list[str]
    #: The tables its applied spec declares.
    expected_tables: list[str]
    depends_on: list[str]
    #: The last error recorded for it.
    error: str | None
    updated_at: Time


class SchemaView(View):
    """A document that ``validate`` found valid: an ExtensionSchema, or a DatabaseTarget (``kind``; no
    ``pluginId`` or ``version``, null)."""

    file: str
    #: The document's owner (``namespace/name``, or the file's name).
    name: str
    plugin_id: str | None
    version: str | None
    kind: Literal["ExtensionSchema", "DatabaseTarget"] = "ExtensionSchema"


class PrismaSchemaView(View):
    """The Prisma schema ``prisma`` printed, with the lists for the host's ``prisma.config.ts``."""

    provider: Literal["postgresql", "sqlite"]
    schema_: str = Field(alias="schema")
    #: ``experimental``, ``tables.external`` and ``enums.external`` to spread into ``defineConfig``.
    config: dict[str, Any]


class VerificationView(View):
    """A suggested index costed with a hypothetical index (hypopg), or why it was not."""

    status: str
    reason: str | None
    cost_before: float | None
    cost_after: float | None
    index: str | None


class SuggestionView(View):
    """The ``indexes:`` entry ``analyze`` suggests adding to the spec."""

    fields: list[str]
    yaml: str | None
    index_name: str
    verification: VerificationView


class FindingView(View):
    """One statement the REST API issues, as the database plans it."""

    table: str
    statement: str
    verdict: Literal["ok", "missing-index", "slow-plan", "unexplained"]
    index: str | None
    reason: str | None
    estimated_rows: float | None
    cost: float | None
    sql: str
    params: dict[str, Any]
    plan: str
    suggestion: SuggestionView | None


class SkippedTableView(View):
    table: str
    rows: float


class StatisticsView(View):
    """pg_stat_statements' figures for the plugin's tables, or why there are none."""

    available: bool
    reason: str | None
    statements: list[dict[str, Any]]


class AnalysisView(View):
    """``analyze``'s report on one plugin (docs/analyze.md)."""

    plugin_id: str
    database: str
    min_rows: int
    findings: list[FindingView]
    skipped: list[SkippedTableView]
    statistics: StatisticsView


class RepairView(View):
    """A migration whose checksums ``repair`` recorded again."""

    plugin_id: str
    migration_id: str
    #: ``accept-edits`` (the edited SQL stays, its checksum is recorded) or ``rerender`` (the SQL text is
    #: written again from the stored statements).
    mode: Literal["accept-edits", "rerender"] | None = None
    #: What changed (or, with ``--dry-run``, would change), in words.
    change: str | None = None
    #: False: a dry run, nothing was written.
    changed: bool = True


class PreviewView(View):
    """What a destructive command would do (``--dry-run``): its SQL and its data effect; nothing ran."""

    plugin_id: str
    #: delete, unregister, rollback, restore or drift-repair.
    action: Literal["delete", "unregister", "rollback", "restore", "drift-repair"]
    #: The migration id it would be recorded as; null when it has nothing to do (or cannot know it yet).
    migration: str | None
    #: Whether it would change anything.
    changes_anything: bool
    #: The hash ``--approve`` names to run it (delete, rollback); null where no approval is involved.
    hash: str | None
    #: Whether running it needs ``--approve HASH``.
    needs_approval: bool
    #: What it would change, one line each: tables and rows dropped, values put back, backups taken.
    changes: list[str]
    #: The statements it would run, in order.
    sql: list[str]
    #: The reviewed plan (each step with its class and counted rows or values), where it has one.
    plan: PlanView | None = None


class WaitView(View):
    """The ExtensionSchema ``wait`` waited for, as it ended."""

    name: str
    namespace: str
    #: Its Ready condition, in words.
    state: str


class ConditionView(View):
    """One condition of a resource's status, as ``kubectl extschema history`` shows it."""

    type: str
    status: str
    reason: str | None
    message: str | None
    #: Its lastTransitionTime.
    since: str | None


class LastMigrationView(View):
    """``status.lastMigration`` of an ExtensionSchema."""

    id: str | None
    version: str | None
    changes: list[str]
    duration_ms: int | None
    time: str | None


class EventView(View):
    """A Kubernetes event about the resource (kept by the API server for about an hour)."""

    type: str
    reason: str
    message: str
    count: int
    last_seen: str | None


class TargetStateView(View):
    """One database of an ExtensionSchema (a ``status.targets`` entry), as ``kubectl extschema history`` shows it."""

    name: str
    #: Its Ready condition: True, False or Unknown, with the reason and message.
    ready: str
    reason: str | None
    message: str | None
    applied_version: str | None
    #: The hash of the plan it waits with for approval, if any.
    pending_plan: str | None
    #: The id of the latest migration the operator ran there.
    last_migration: str | None

    @classmethod
    def of(cls, entry: Any) -> TargetStateView:
        """From a ``status.targets`` entry as the API server returns it."""
        ready: dict[str, Any] = next((c for c in entry.get("conditions") or [] if c.get("type") == "Ready"), {})
        return cls(
            name=entry.get("name", ""),
            ready=ready.get("status") or "Unknown",
            reason=ready.get("reason"),
            message=ready.get("message"),
            applied_version=entry.get("appliedVersion"),
            pending_plan=(entry.get("pendingPlan") or {}).get("hash"),
            last_migration=(entry.get("lastMigration") or {}).get("id"),
        )


class RolloutView(View):
    """``status.rollout`` of an ExtensionSchema with ``spec.targetSelector``."""

    phase: str
    message: str | None
    paused_at: str | None


class ResourceHistoryView(View):
    """What the operator reports about one ExtensionSchema (``kubectl extschema history``)."""

    name: str
    namespace: str
    plugin_id: str
    version: str
    applied_version: str | None
    generation: int | None
    observed_generation: int | None
    conditions: list[ConditionView]
    last_migration: LastMigrationView | None
    events: list[EventView]
    #: ``status.targetsReady`` (ready/total), ``status.rollout`` and one entry per database (``status.targets``).
    targets_ready: str | None = None
    rollout: RolloutView | None = None
    targets: list[TargetStateView] = []

    @classmethod
    def of(cls, body: Any, events: Iterable[Any]) -> ResourceHistoryView:
        """From the resource and its events as the API server returns them (JSON objects)."""
        meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
        last = status.get("lastMigration")
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            plugin_id=spec.get("pluginId", ""),
            version=str(spec.get("version", "")),
            applied_version=status.get("appliedVersion"),
            generation=meta.get("generation"),
            observed_generation=status.get("observedGeneration"),
            conditions=[
                ConditionView(
                    type=c.get("type", ""),
                    status=c.get("status", ""),
                    reason=c.get("reason"),
                    message=c.get("message"),
                    since=c.get("lastTransitionTime"),
                )
                for c in status.get("conditions") or []
            ],
            last_migration=None
            if not last
            else LastMigrationView(
                id=last.get("id"),
                version=last.get("version"),
                changes=list(last.get("changes") or []),
                duration_ms=last.get("durationMs"),
                time=last.get("time"),
            ),
            events=[
                EventView(
                    type=e.get("type") or "",
                    reason=e.get("reason") or "",
                    message=e.get("message") or "",
                    count=e.get("count") or 1,
                    last_seen=e.get("lastTimestamp")
                    or e.get("eventTime")
                    or (e.get("metadata") or {}).get("creationTimestamp"),
                )
                for e in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
            ],
            targets_ready=status.get("targetsReady"),
            rollout=None
            if not status.get("rollout")
            else RolloutView(
                phase=status["rollout"].get("phase") or "",
                message=status["rollout"].get("message"),
                paused_at=status["rollout"].get("pausedAt"),
            ),
            targets=[TargetStateView.of(t) for t in status.get("targets") or []],
        )


class PendingTargetView(View):
    """One database waiting with a plan: its own data counts (targets at one base share the plan's hash)."""

    name: str
    applied_version: str | None
    #: This target's summary, with its counts.
    summary: str
    #: Its operations with its counts; empty where the status keeps them on the first target of the hash only.
    ops: list[OpView]


class PendingPlanView(View):
    """A plan waiting for approval on one or more targets of an ExtensionSchema with ``spec.targetSelector``
    (``kubectl extschema plan``): one per distinct hash, approved by that hash for all of them."""

    plugin_id: str
    version: str
    hash: str
    op_class: Literal["rewriting", "destructive"] = Field(alias="class")
    destructive: bool
    #: The first target's summary (``targets`` have each one's).
    summary: str
    #: The plan's operations (with the first target's counts that has them).
    ops: list[OpView]
    lint: list[LintView] = []
    targets: list[PendingTargetView]


class DiffCheckView(View):
    """A data check ``plan`` counts against a database; a diff reads none, so ``count`` is null."""

    kind: Literal["rows_lost", "values_lost", "rows_violating", "rows_duplicated"]
    table: str
    column: str | None = None
    #: Always null in a diff: the rows are not known without the database (``plan`` counts them).
    count: None = None


class DiffOpView(View):
    """One operation of a diff: as in a plan, with its data checks uncounted."""

    kind: str
    description: str
    op_class: Literal["safe", "rewriting", "destructive"] = Field(alias="class")
    reason: str
    checks: list[DiffCheckView]

    @classmethod
    def of(cls, op: OpSource) -> DiffOpView:
        c = op.classified
        return cls(
            kind=c.op.KIND,
            description=op.describe() if hasattr(op, "describe") else c.op.describe(),
            op_class=c.op_class,
            reason=c.reason,
            checks=[DiffCheckView(kind=k.kind, table=k.table, column=k.column) for k in c.checks],
        )


class DiffView(View):
    """What ``diff OLD NEW`` found for one plugin of NEW: its plan against OLD, with no database.

    ``hash`` is the one ``plan NEW`` prints against a database at OLD (approve it the same way);
    ``sql`` is rendered for ``dialect``; data counts are unknown (each check's ``count`` is null).
    """

    plugin_id: str
    #: The plugin's version in OLD; null when NEW installs it.
    from_version: str | None
    version: str
    dialect: Literal["postgresql", "sqlite"]
    changed: bool
    hash: str
    op_class: Literal["safe", "rewriting", "destructive"] = Field(alias="class")
    needs_approval: bool
    destructive: bool
    summary: str
    ops: list[DiffOpView]
    #: The statements for ``dialect``, in the order they run (null with ``--summary``).
    sql: list[str] | None
    #: For each statement of ``sql``, the index in ``ops`` of the step it carries out.
    sql_steps: list[int] | None = None
    rollback_sql: list[str] | None
    lint: list[LintView] = []
    warnings: list[ProblemView] = []

    @classmethod
    def of(
        cls,
        plan: PlanSource,
        rendered: RenderedSource,
        *,
        dialect: Literal["postgresql", "sqlite"],
        from_version: str | None,
        changed: bool,
        lint: Iterable[LintSource] = (),
        warnings: Iterable[ProblemSource] = (),
    ) -> DiffView:
        return cls(
            plugin_id=plan.plugin_id,
            from_version=from_version,
            version=plan.version,
            dialect=dialect,
            changed=changed,
            hash=plan.hash,
            op_class=plan.op_class,
            needs_approval=plan.needs_approval and changed,
            destructive=plan.op_class == "destructive",
            summary=plan.summary(),
            ops=[DiffOpView.of(op) for op in plan.ops],
            sql=list(rendered.all_statements),
            sql_steps=list(rendered.steps) if rendered.steps else None,
            rollback_sql=list(rendered.rollback),
            lint=[LintView.of(f) for f in lint],
            warnings=[ProblemView.of(w) for w in warnings],
        )


# --- envelopes --------------------------------------------------------------------------------------

T = TypeVar("T", bound=View)


class Envelope(View, Generic[T]):
    """What every ``-o json`` prints: the same keys whatever the command and the count."""

    api_version: Literal["extschema.io/v1alpha1"] = API_VERSION
    kind: str
    #: False only in a :class:`Failure` (or a conflicts report that found conflicts).
    ok: bool = True
    items: list[T] = []
    #: Why ``ok`` is false; on success, problems of the whole run (a prune's ES317), else empty.
    problems: list[ProblemView] = []

    @classmethod
    def of(cls, items: Iterable[T], problems: Iterable[ProblemSource] = (), ok: bool = True) -> Any:
        """The envelope of *items*: its kind is the class's."""
        kind = cls.model_fields["kind"].default
        return cls(kind=kind, ok=ok, items=list(items), problems=[ProblemView.of(p) for p in problems])


class PlanList(Envelope[PlanView]):
    kind: Literal["PlanList"] = "PlanList"


class AppliedList(Envelope[AppliedView]):
    kind: Literal["AppliedList"] = "AppliedList"


class MigrationList(Envelope[MigrationView]):
    kind: Literal["MigrationList"] = "MigrationList"


class BackupList(Envelope[BackupView]):
    kind: Literal["BackupList"] = "BackupList"


class DriftList(Envelope[DriftView]):
    kind: Literal["DriftList"] = "DriftList"


class PluginList(Envelope[PluginView]):
    kind: Literal["PluginList"] = "PluginList"


class SchemaList(Envelope[SchemaView]):
    kind: Literal["SchemaList"] = "SchemaList"


class PrismaSchemaList(Envelope[PrismaSchemaView]):
    kind: Literal["PrismaSchemaList"] = "PrismaSchemaList"


class AnalysisList(Envelope[AnalysisView]):
    kind: Literal["AnalysisList"] = "AnalysisList"


class ConflictList(Envelope[ConflictView]):
    kind: Literal["ConflictList"] = "ConflictList"


class RepairList(Envelope[RepairView]):
    kind: Literal["RepairList"] = "RepairList"


class WaitList(Envelope[WaitView]):
    kind: Literal["WaitList"] = "WaitList"


class ResourceHistoryList(Envelope[ResourceHistoryView]):
    kind: Literal["ResourceHistoryList"] = "ResourceHistoryList"


class PendingPlanList(Envelope[PendingPlanView]):
    kind: Literal["PendingPlanList"] = "PendingPlanList"


class PreviewList(Envelope[PreviewView]):
    kind: Literal["PreviewList"] = "PreviewList"


class DiffList(Envelope[DiffView]):
    kind: Literal["DiffList"] = "DiffList"


class Failure(Envelope[PlanView]):
    """A command that failed: ``problems`` say why; ``items`` are the plans waiting for an approval
    when that is the reason (``approval``), else empty."""

    kind: Literal["Failure"] = "Failure"
    ok: bool = False
    #: The kind of failure, which picks the exit code: invalid, conflict, refused, dependency,
    #: approval (1), usage (2), database, retryable, unreachable (3), timeout (4).
    reason: str

    @classmethod
    def because(cls, reason: str, problems: Iterable[ProblemSource], pending: Iterable[PlanView] = ()) -> Failure:
        return cls(reason=reason, items=list(pending), problems=[ProblemView.of(p) for p in problems])


#: Every envelope, by kind (what a program reading any output validates against).
ENVELOPES: tuple[type[Envelope[Any]], ...] = (
    PlanList,
    AppliedList,
    MigrationList,
    BackupList,
    DriftList,
    PluginList,
    SchemaList,
    ConflictList,
    PrismaSchemaList,
    AnalysisList,
    RepairList,
    WaitList,
    ResourceHistoryList,
    PendingPlanList,
    PreviewList,
    DiffList,
    Failure,
)
_ANY = TypeAdapter(
    Annotated[
        PlanList
        | AppliedList
        | MigrationList
        | BackupList
        | DriftList
        | PluginList
        | SchemaList
        | ConflictList
        | PrismaSchemaList
        | AnalysisList
        | RepairList
        | WaitList
        | ResourceHistoryList
        | PendingPlanList
        | PreviewList
        | DiffList
        | Failure,
        Field(discriminator="kind"),
    ]
)


def parse(data: Any) -> Envelope[Any]:
    """Any envelope a command printed, validated against its kind's model (``ValidationError`` if it is not one)."""
    envelope: Envelope[Any] = _ANY.validate_python(data)
    return envelope
