"""The dialect interface and the rendering both databases share."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SADialect

from extschema import planning
from extschema.model import FieldType
from extschema.naming import Namer, PhysicalName
from extschema.planning import ColumnDef, IndexDef, Op, Plan, TableDef, conversions, safety
from extschema.problems import Problem

#: ``Connection.info`` key the engine sets when the next transaction only reads.
READ_ONLY = "extschema_read_only"


class ErrorClass(enum.Enum):
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    UNREACHABLE = "unreachable"


@dataclasses.dataclass(frozen=True)
class StepSpan:
    """One step of a rendered plan (a plan operation): the next *statements* of
    :attr:`RenderedPlan.statements`, for progress and for naming the step that failed."""

    description: str
    statements: int
    #: The logical tables whose every row the step copies or reads (backups, rebuilds, validation).
    copies: tuple[str, ...] = ()
    #: The id of a raw SQL step (``spec.migrations[].id``), when the step is one.
    raw_step: str | None = None


class BatchFailed(Exception):
    """Statement *index* of a batch (:meth:`Dialect.execute_batch`) failed with the driver's *error*;
    the statements before it ran, those after it did not."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"statement {index} of the batch failed: {error}")
        self.index, self.error = index, error


@dataclasses.dataclass(frozen=True)
class Blocker:
    """A database session another one waits for (a lock it holds)."""

    pid: int
    application: str
    state: str
    #: Seconds in *state*.
    age_s: float
    query: str

    def describe(self) -> str:
        application = f"application {self.application!r}" if self.application else "no application_name"
        query = " ".join(self.query.split())
        query = query if len(query) <= 80 else f"{query[:77]}..."
        return f"pid {self.pid} ({application}, {self.state or 'unknown state'} for {self.age_s:.0f} s: {query!r})"


@dataclasses.dataclass(frozen=True)
class RenderedPlan:
    """A plan as SQL: what runs, what undoes it, and how it must run."""

    statements: tuple[str, ...]
    rollback: tuple[str, ...]
    #: SQLite table rebuilds must run with foreign key enforcement off (set outside the transaction).
    foreign_keys_off: bool = False
    #: What the plan asks for that this database will not enforce; the plan still runs (ES5xx).
    warnings: tuple[Problem, ...] = ()
    #: Run before the main transaction, each committed before anything uses it (new enum values:
    #: PostgreSQL refuses a label in the transaction that added it). Idempotent: a retry re-runs them.
    before: tuple[str, ...] = ()
    #: Run outside any transaction after the main one committed (concurrent index builds, which
    #: block no writer). Idempotent; the engine records them as a pending step it finishes later
    #: if they fail, after dropping what a failed build left behind.
    after: tuple[str, ...] = ()
    #: The plan's steps over :attr:`statements`, in order (empty: not rendered from plan operations).
    spans: tuple[StepSpan, ...] = ()
    #: For each of :attr:`all_statements`, the index in the plan's operations of the step that
    #: produced it (``plan`` groups and numbers statements by it); empty when not known.
    steps: tuple[int, ...] = ()

    @property
    def all_statements(self) -> tuple[str, ...]:
        """Every statement in the order it runs: before, the transaction, after."""
        return (*self.before, *self.statements, *self.after)

    def script(self, rollback: bool = False) -> str:
        return "".join(f"{s};\n" for s in (self.rollback if rollback else self.all_statements))


@dataclasses.dataclass(frozen=True)
class CoreForeignKey:
    """A foreign key of a host table, as the database reports it."""

    name: str | None
    columns: tuple[str, ...]
    referred_schema: str | None
    referred_table: str
    referred_columns: tuple[str, ...]
    on_delete: str | None


@dataclasses.dataclass(frozen=True)
class BackupRef:
    """A backup table a migration fills before a destructive step (the backups registry records these).

    *table* is the backup's physical name (schema-qualified where the database has schemas),
    *source_table* the logical table it copies, *column* the copied column (None: whole rows).
    """

    table: str
    source_table: str
    column: str | None = None


@dataclasses.dataclass(frozen=True)
class _Backup:
    """One backup as rendering needs it: where, of what, and the column copied (None: whole rows)."""

    name: PhysicalName
    table: str
    column: ColumnDef | None = None


def attribute_steps(statements: Sequence[str], own: Sequence[tuple[int, Sequence[str]]]) -> list[int]:
    """For each of *statements* (a plan's, rendered together), the step it belongs to, given *own*:
    each step with the statements it renders alone.

    Rendered together, the statements usually are the steps' own, in order. Where a dialect merges
    the work of several steps (one rebuild of a table for several changes), a statement no step
    renders alone belongs to the step of the next statement not yet seen (one of those it carries out).
    """
    flat = [(step, statement) for step, found in own for statement in found]
    if [statement for _, statement in flat] == list(statements):
        return [step for step, _ in flat]
    steps: list[int] = []
    at = 0
    for statement in statements:
        match = next((k for k in range(at, len(flat)) if flat[k][1] == statement), None)
        if match is not None:
            steps.append(flat[match][0])
            at = match + 1
        elif at < len(flat):
            steps.append(flat[at][0])
        else:
            steps.append(steps[-1] if steps else (flat[-1][0] if flat else 0))
    return steps


def _ref(backup: _Backup) -> BackupRef:
    return BackupRef(str(backup.name), backup.table, backup.column.name if backup.column is not None else None)


class Dialect:
    """Renders operations for one kind of database. Subclasses fill in the differences."""

    name: str
    namer: Namer
    sa_dialect: SADialect

    # --- plans -------------------------------------------------------------------------------

    def render_plan(
        self,
        plan: Plan,
        backup_tag: str,
        populated: Collection[str] | None = None,
        id_floors: Mapping[str, int] | None = None,
    ) -> RenderedPlan:
        """Render *plan* and its reverse; data a step would destroy is first copied to a
        backup table named with *backup_tag*, and the rollback brings that data back.

        Steps the database cannot safely run inside the migration's transaction go to the
        ``before`` and ``after`` phases (:meth:`runs_before`, :meth:`concurrent_index`).
        *populated* names the plan's existing tables that hold rows (the engine asks the database
        under the migration lock, :meth:`concurrent_candidates`); None, when planning without
        the database, counts every existing table as populated. *id_floors* gives, for tables
        the plan creates, the highest id a backup of an earlier table of that name holds: the new
        table's ids start above it (:meth:`resume_ids`), so they never name a backed-up row.
        """
        # A plan is rendered for its preview, then again under the migration's lock, often to the
        # same statements (1,500 tables: 0.4 s each): the last rendering is kept, by the plan (immutable)
        # and by what else decides its statements (the tag only names backups); the rollback, which
        # names the backups it takes, is rendered again for another tag.
        key = (
            backup_tag if self.backups_of(plan, backup_tag) else None,
            frozenset(t for t in self.concurrent_candidates(plan) if populated is None or t in populated),
            tuple(sorted((id_floors or {}).items())),
        )
        last = self._last_rendered
        if last is not None and last[0] is plan and last[1] == key:
            _, _, tag, rendered, dropped = last
            if tag == backup_tag:
                return rendered
            return dataclasses.replace(rendered, rollback=self._rollback(plan, backup_tag, dropped))
        rendered, dropped = self._render_plan(plan, backup_tag, populated, id_floors)
        self._last_rendered = (plan, key, backup_tag, rendered, dropped)
        return rendered

    _last_rendered: tuple[Plan, object, str, RenderedPlan, Set[str]] | None = None

    def _rollback(self, plan: Plan, backup_tag: str, dropped: Set[str]) -> tuple[str, ...]:
        # Undone from the forward operations: only they know the backups that bring dropped data back.
        # *dropped*: reverses of index builds moved after COMMIT, which must not fail when the build never ran.
        undone = self.undo_ops(plan.ops, backup_tag)
        return tuple(self.drop_index_if_exists(s) if s in dropped else s for s in undone)

    def _render_plan(
        self,
        plan: Plan,
        backup_tag: str,
        populated: Collection[str] | None = None,
        id_floors: Mapping[str, int] | None = None,
    ) -> tuple[RenderedPlan, Set[str]]:
        created = {op.table.name for op in plan.ops if isinstance(op, planning.CreateTable)}

        def concurrent(table: str, index: IndexDef) -> bool:
            existing = table not in created and (populated is None or table in populated)
            return existing and self.concurrent_index(index)

        main: list[Op] = []
        main_steps: list[int] = []
        before = self.before_phase(plan)
        before_steps = [
            i for i, op in enumerate(plan.ops) if self.runs_before(op, plan) for _ in self.render_before(op)
        ]
        after: list[str] = []
        after_steps: list[int] = []
        moved: set[str] = set()  # in-transaction index statements replaced by concurrent builds
        dropped: set[str] = set()  # their reverses, which must not fail when the build never ran
        for step, op in enumerate(plan.ops):
            if self.runs_before(op, plan):
                continue
            indexes: list[tuple[str, IndexDef]] = []
            if isinstance(op, planning.CreateIndex):
                indexes = [(op.table, op.index)]
            elif isinstance(op, planning.AddColumn):
                own = [i for i in op.after.column_indexes() if i.columns == (op.column.name,)]
                indexes = [(op.after.name, i) for i in own]
            indexes = [(t, i) for t, i in indexes if concurrent(t, i)]
            for table, index in indexes:
                moved.add(self.create_index(op.plugin_id, table, index))
                dropped.add(self.drop_index(op.plugin_id, table, index))
                after.append(self.create_index_concurrently(op.plugin_id, table, index))
                after_steps.append(step)
            if not isinstance(op, planning.CreateIndex) or not indexes:
                main.append(op)
                main_steps.append(step)
        # Each op rendered once alone; rendered together only where the dialect merges ops' work.
        each = [[s for s in self.render_ops([op], backup_tag, id_floors or {}) if s not in moved] for op in main]
        if self.merges_ops:
            statements = [s for s in self.render_ops(main, backup_tag, id_floors or {}) if s not in moved]
        else:
            statements = [s for found in each for s in found]
        alone: list[tuple[int, Sequence[str]]] = list(zip(main_steps, each, strict=True))
        rendered = RenderedPlan(
            statements=tuple(statements),
            rollback=self._rollback(plan, backup_tag, dropped),
            foreign_keys_off=self.needs_foreign_keys_off(plan),
            warnings=tuple(self.plan_warnings(plan)),
            before=tuple(before),
            after=tuple(after),
            spans=self.step_spans(main, statements, each) if main else (),
            steps=(*before_steps, *attribute_steps(statements, alone), *after_steps)
            if len(before_steps) == len(before)
            else (),
        )
        return rendered, dropped

    def undo_ops(self, ops: Sequence[Op], backup_tag: str) -> list[str]:
        """The rollback of *ops*: each undone (:meth:`undo`), last first."""
        return [s for op in reversed(ops) for s in self.undo(op, backup_tag)]

    def step_spans(
        self, ops: Sequence[Op], statements: Sequence[str], own: Sequence[Sequence[str]]
    ) -> tuple[StepSpan, ...]:
        """*statements* (*ops* rendered together) as the ops' steps, in order, for progress and for naming
        a failing step; *own*: each op's statements rendered alone. A statement belongs to the first op
        not yet passed that renders it alone; one no op renders alone (a SQLite rebuild carrying several
        ops' changes) to the op it is reached at. Linear in the statements (1,500 tables: 3,000+)."""
        own_sets = [frozenset(found) for found in own]
        mine: list[list[str]] = [[] for _ in ops]
        at = 0
        for statement in statements:
            if statement not in own_sets[at]:
                found = next((k for k in range(at + 1, len(ops)) if statement in own_sets[k]), None)
                at = found if found is not None else at
            mine[at].append(statement)
        spans = []
        for k, op in enumerate(ops):
            raw_step = op.id if isinstance(op, planning.RunSql) else None
            spans.append(StepSpan(op.describe(), len(mine[k]), self.copies_rows(op, mine[k]), raw_step))
        return tuple(spans)

    def copies_rows(self, op: Op, statements: Sequence[str]) -> tuple[str, ...]:
        """The logical tables whose every row *op* (rendered as *statements*) copies or reads: those
        it backs up; dialects add their rewrites and validations."""
        return tuple(dict.fromkeys(found.table for found in self.backups(op, "m0000")))

    def undo(self, op: Op, backup_tag: str) -> list[str]:
        """The reverse of *op*, bringing back from its backup the data *op* destroyed.

        Only the original operation knows which backup it made (the reverse of a DropColumn is an
        AddColumn like any other), so the rollback is rendered from the forward operations.
        """
        reads, takes = self.undo_backups(op, backup_tag)
        match op:
            case planning.DropTable() if reads:
                return [*self.render(op.reverse()), *self.restore_rows(op.plugin_id, op.table, reads[0].name)]
            case planning.DropColumn() if reads:
                return self.restore_column(op, reads[0].name)
            case planning.AlterColumn() if reads:
                # Not backed up again: the values the rollback replaces are those the backup restores.
                return self.restore_altered(op, reads[0].name)
        reverse = op.reverse()
        return [*(self.backup(reverse, backup_tag) if takes else []), *self.render(reverse)]

    def undo_backups(self, op: Op, tag: str) -> tuple[list[_Backup], list[_Backup]]:
        """The backups the reverse of *op* reads (those *op* took of what it destroyed), and those it
        takes itself: what the reverse drops (a created table, an added column) or narrows (a widened
        column) is backed up like any drop or narrowing."""
        if isinstance(op, planning.DropTable | planning.DropColumn):
            return self.backups(op, tag), []
        reverse = op.reverse()
        if isinstance(op, planning.AlterColumn):
            reads = self.backups(op, tag)
            return reads, [] if reads else self.backups(reverse, tag)
        return [], self.backups(reverse, tag) if isinstance(reverse, planning.DropTable | planning.DropColumn) else []

    def backups_of(self, plan: Plan, tag: str) -> list[BackupRef]:
        """The backup tables rendering *plan* with *tag* fills, for the backups registry."""
        return [_ref(b) for op in plan.ops for b in self.backups(op, tag)]

    def rollback_backups_of(self, plan: Plan, tag: str) -> tuple[list[BackupRef], list[BackupRef]]:
        """The backup tables the rollback of *plan* (rendered with *tag*) reads, and those it fills, in its order."""
        found = [self.undo_backups(op, tag) for op in reversed(plan.ops)]
        return [_ref(b) for reads, _ in found for b in reads], [_ref(b) for _, takes in found for b in takes]

    def backups(self, op: Op, tag: str) -> list[_Backup]:
        """What *op* destroys or may change beyond recovery, as backups: whole rows of a dropped
        table; id + value of a dropped column, of a column whose type changes (a cast can round or
        truncate), and of columns of an enum losing values."""
        match op:
            case planning.DropTable():
                return [_Backup(self.backup_name(op.plugin_id, op.table.name, tag), op.table.name)]
            case planning.DropColumn():
                name = self.backup_name(op.plugin_id, f"{op.before.name}__{op.column.name}", tag)
                return [_Backup(name, op.before.name, op.column)]
            case planning.AlterColumn() if lossy(op):
                name = self.backup_name(op.plugin_id, f"{op.before.name}__{op.old.name}", tag)
                return [_Backup(name, op.before.name, op.old)]
            case planning.ChangeEnumValues() if op.removed:
                return [
                    _Backup(
                        self.backup_name(op.plugin_id, f"{before.name}__{column.name}__values", tag),
                        before.name,
                        column,
                    )
                    for before, _ in op.tables
                    for column in before.columns
                    if column.enum is not None and column.enum.name == op.before.name
                ]
        return []

    # --- phases outside the migration's transaction (none by default: SQLite runs everything in it) ---

    def before_phase(self, plan: Plan) -> list[str]:
        """The ``before`` statements of *plan* (known without the database, so run before rendering the rest)."""
        return [s for op in plan.ops if self.runs_before(op, plan) for s in self.render_before(op)]

    def runs_before(self, op: Op, plan: Plan) -> bool:
        """Whether *op* is committed in its own step before the migration's transaction."""
        return False

    def render_before(self, op: Op) -> list[str]:
        """*op* as idempotent statements for the ``before`` phase."""
        raise NotImplementedError

    def concurrent_index(self, index: IndexDef) -> bool:
        """Whether a new *index* on an existing, populated table is built concurrently, after COMMIT."""
        return False

    def hand_made_problems(self, conn: sa.Connection, plan: Plan) -> list[Problem]:
        """What *plan* would silently destroy that extschema did not create (read under the lock):
        nothing where tables are altered in place."""
        return []

    def tied_objects(self, conn: sa.Connection, tables: Sequence[str]) -> dict[str, list[str]]:
        """By physical table name (unqualified), what the database ties to it that a rebuild would drop
        or break (``index x``, ``trigger y``, ``view z``): nothing where tables are altered in place."""
        return {t: [] for t in tables}

    def concurrent_candidates(self, plan: Plan) -> list[str]:
        """The plan's existing tables whose row count decides a concurrent build (ask :meth:`has_rows_sql`)."""
        return []

    def lock_tables(self, plugin_id: str, tables: Sequence[str]) -> list[str]:
        """Statements locking *tables*, in the migration's transaction, as a change of their columns
        locks them (before counting the rows it would refuse); none where the transaction already
        holds the database's write lock."""
        return []

    def has_rows_sql(self, plugin_id: str, table: str) -> str:
        """One query answering whether a plugin table holds any row."""
        return f"SELECT EXISTS (SELECT 1 FROM {self.table_ref(plugin_id, table)})"

    def create_index_concurrently(self, plugin_id: str, table: str, index: IndexDef) -> str:
        raise NotImplementedError

    def drop_index_if_exists(self, drop_index: str) -> str:
        """A DROP INDEX statement of :meth:`drop_index` that succeeds when the index is missing."""
        if drop_index.startswith("DROP INDEX IF EXISTS "):
            return drop_index
        return drop_index.replace("DROP INDEX ", "DROP INDEX IF EXISTS ", 1)

    def concurrent_session(self, lock_key: tuple[int, int], lock_timeout_ms: int) -> list[str]:
        """Statements starting the ``after`` phase's session (outside any transaction): the plugin's
        lock, held until the session ends, then its timeouts."""
        return []

    def invalid_indexes_sql(self, plugin_id: str, building: bool = False) -> str | None:
        """A query listing, as statements dropping each, the plugin's indexes a failed concurrent build
        left invalid (with *building*, also those a session is building now); None where builds are
        never concurrent."""
        return None

    #: Whether drift reads the tables' CHECK constraints (:meth:`unenforced` looks at them).
    reads_checks = False

    def unenforced(self, plugin_id: str, column: ColumnDef, checks: Collection[str]) -> str | None:
        """What *column* is not kept to by its table's live CHECKs (*checks*, their conditions) that
        this dialect enforces with a CHECK (a table an older version created), for drift to report,
        saying how to fix it; None when they enforce it all. A drift repair adds it
        (:class:`~extschema.planning.EnforceIntRange`), as does any rebuild of the table."""
        return None

    def predated_rules(self, conn: sa.Connection, plan: Plan) -> list[Predated]:
        """The rules a rebuild in *plan* adds back to a table whose live CHECKs predate them (read
        under the migration's lock): the rows breaking them are counted before anything runs, and
        refused (ES309), as a narrowing's are. None where tables are altered in place."""
        return []

    def plan_warnings(self, plan: Plan) -> list[Problem]:
        """Rules of *plan* this database leaves unenforced, for the person planning to know."""
        return []

    #: Rendering several ops together may merge their work (a SQLite table rebuilt once for several
    #: changes), so it is not always their statements rendered one by one, in order.
    merges_ops = False

    def render_ops(self, ops: Iterable[Op], backup_tag: str, id_floors: Mapping[str, int] | None = None) -> list[str]:
        statements: list[str] = []
        floors = id_floors or {}
        for op in ops:
            statements.extend(self.backup(op, backup_tag))
            statements.extend(self.render(op))
            if isinstance(op, planning.CreateTable) and op.table.name in floors:
                statements.extend(self.resume_ids(op.plugin_id, op.table.name, floors[op.table.name]))
        return statements

    def resume_ids(self, plugin_id: str, table: str, floor: int) -> list[str]:
        """Statements making a table (just created, and perhaps filled from a backup) hand out ids
        above *floor* only: its id counter is raised to *floor*, never lowered."""
        raise NotImplementedError

    def id_counters(self, conn: sa.Connection, plugin_id: str) -> dict[str, int]:
        """The id counter (the highest id handed out, also to rows deleted since) of each of the
        plugin's tables that has one, by unqualified physical name."""
        return {}

    def backup_name(self, plugin_id: str, table: str, tag: str) -> PhysicalName:
        raise NotImplementedError

    def backup(self, op: Op, tag: str) -> list[str]:
        """Copy what a destructive step removes (a table, or a column with the row ids)."""
        return [s for found in self.backups(op, tag) for s in self._copy(op.plugin_id, found)]

    def _copy(self, plugin_id: str, found: _Backup) -> list[str]:
        source = self.table_ref(plugin_id, found.table)
        # Locked first, as the step after it locks it: a writer's transaction open now commits
        # before the copy reads (or waits until the migration ends), so what the step destroys is
        # exactly what was copied — not a value committed between the copy and the step.
        lock = self.lock_tables(plugin_id, [found.table])
        if found.column is None:
            # Whole rows: columns a DBA added by hand are not in the spec, and must not be lost.
            return [
                *lock,
                f"CREATE TABLE {self.qualified(found.name)} AS SELECT * FROM {source}",
                *self.detach_backup(plugin_id, found.name),
            ]
        # Named through the alias, as data checks name them: a column gone meanwhile fails the copy
        # (SQLite would copy an unknown "name" as that string).
        columns = ", ".join([self.column_of("s", "id"), self.backup_column(found.column, "s")])
        return [*lock, f"CREATE TABLE {self.qualified(found.name)} AS SELECT {columns} FROM {source} AS s"]

    def _rollback_sql_backups(self, steps: Plan, tag: str) -> list[_Backup]:
        from extschema import sqltext  # pglast, loaded only when there is raw SQL

        named = [
            t for op in steps.ops if isinstance(op, planning.RunSql) for t in sqltext.tables_named(op.sql, op.plugin_id)
        ]
        return [_Backup(self.backup_name(steps.plugin_id, table, tag), table) for table in dict.fromkeys(named)]

    def rollback_sql_backups(self, steps: Plan, tag: str) -> list[BackupRef]:
        """The whole-row backups of the tables the ``rollbackSql`` of *steps* (reversed raw steps, as a
        rollback runs them) names, taken with *tag* before it runs: extschema cannot know which rows it changes."""
        return [_ref(b) for b in self._rollback_sql_backups(steps, tag)]

    def backup_rollback_sql(self, steps: Plan, tag: str) -> list[str]:
        """The statements taking :meth:`rollback_sql_backups`."""
        return [s for found in self._rollback_sql_backups(steps, tag) for s in self._copy(steps.plugin_id, found)]

    def restore_rows(self, plugin_id: str, table: TableDef, backup: PhysicalName) -> list[str]:
        """Copy a dropped table's rows back from its whole-row backup (the table exists again, empty)."""
        names = ["id", *(c.name for c in table.columns)]
        columns = ", ".join(self.quote(n) for n in names)
        values = ", ".join(
            [self.quote("id"), *(self.restored_value(plugin_id, c, self.quote(c.name)) for c in table.columns)]
        )
        target = self.table_ref(plugin_id, table.name)
        return [
            f"INSERT INTO {target} ({columns}) SELECT {values} FROM {self.qualified(backup)}",
            *self.after_restoring_ids(plugin_id, table.name),
        ]

    def restored_value(self, plugin_id: str, column: ColumnDef, expression: str) -> str:
        """A backed-up value as the column takes it back (backups keep enum values as text)."""
        return expression

    def after_restoring_ids(self, plugin_id: str, table: str) -> list[str]:
        """Statements making new rows' ids follow the ids just copied back."""
        return []

    def restore_column(self, op: planning.DropColumn, backup: PhysicalName) -> list[str]:
        """The reverse of *op* (the column added back) with its values filled from *backup* by id."""
        raise NotImplementedError

    def restore_altered(self, op: planning.AlterColumn, backup: PhysicalName) -> list[str]:
        """The reverse of *op* with the column's values as they were before, from *backup* by id."""
        raise NotImplementedError

    def as_stored(self, expression: str, type_sql: str) -> str:
        """*expression* as a column of type *type_sql* stores it (a restored value, to compare with one)."""
        return f"CAST({expression} AS {type_sql})"

    def backup_column(self, column: ColumnDef, row: str) -> str:
        """A column (of the table aliased *row*) as the backup copies it: by value, depending on
        nothing that is about to be dropped."""
        return self.column_of(row, column.name)

    def detach_backup(self, plugin_id: str, backup: PhysicalName) -> list[str]:
        """Statements making a whole-row backup depend on nothing of *plugin_id*'s that is about to be dropped."""
        return []

    def needs_foreign_keys_off(self, plan: Plan) -> bool:
        return False

    def render(self, op: Op) -> list[str]:
        renderer = _RENDERERS.get(type(op))
        if renderer is None:
            raise TypeError(f"no rendering for {type(op).__name__}")
        return renderer(self, op)

    # --- renames, alterations, hand-written SQL ------------------------------------------------

    def rename_table(self, op: planning.RenameTable) -> list[str]:
        """RENAME TO, then the indexes and constraints whose names derive from the table's name."""
        new = self.namer.table(op.plugin_id, op.after.name)
        old = self.table_ref(op.plugin_id, op.before.name)
        return [f"ALTER TABLE {old} RENAME TO {self.quote(new.name)}", *self.rename_derived(op, {})]

    def rename_column(self, op: planning.RenameColumn) -> list[str]:
        """RENAME COLUMN, then the indexes and constraints whose names derive from the column's name."""
        table = self.table_ref(op.plugin_id, op.after.name)
        statement = f"ALTER TABLE {table} RENAME COLUMN {self.quote(op.old)} TO {self.quote(op.new)}"
        return [statement, *self.rename_derived(op, {op.old: op.new})]

    def rename_derived(self, op: planning.RenameTable | planning.RenameColumn, columns: dict[str, str]) -> list[str]:
        """Give derived index and constraint names the new table/column names.

        Physical names derive from table and column names (:class:`~extschema.naming.Namer`);
        later operations (a drop, a rebuild, a rollback) find them by the names the current spec
        derives, so a rename renames them too.
        """
        plugin_id, before, after = op.plugin_id, op.before, op.after
        statements: list[str] = []
        for index in (*before.column_indexes(), *before.unique_together, *before.indexes):
            moved = dataclasses.replace(index, columns=tuple(columns.get(c, c) for c in index.columns))
            old = self.index_name(plugin_id, before.name, index)
            if old != self.index_name(plugin_id, after.name, moved):
                statements.extend(self.rename_index(plugin_id, after.name, old, moved))
        for column in before.columns:
            new_column = columns.get(column.name, column.name)
            for suffix, present in (("check", bool(self.column_checks(column))), ("fkey", bool(column.foreign_key))):
                old = self.namer.derived(plugin_id, before.name, [column.name], suffix)
                new = self.namer.derived(plugin_id, after.name, [new_column], suffix)
                if present and old != new:
                    statements.extend(self.rename_constraint(plugin_id, after.name, old, new))
        return statements

    def rename_index(self, plugin_id: str, table: str, old: str, index: IndexDef) -> list[str]:
        """Rename the index *old* of *table* to *index*'s derived name."""
        raise NotImplementedError

    def rename_constraint(self, plugin_id: str, table: str, old: str, new: str) -> list[str]:
        """Rename a table constraint (where the database keeps constraint names apart from the table's DDL)."""
        return []

    def alter_column(self, op: planning.AlterColumn) -> list[str]:
        raise NotImplementedError

    def rename_enum_value(self, op: planning.RenameEnumValue) -> list[str]:
        raise NotImplementedError

    def enforce_int_range(self, op: planning.EnforceIntRange) -> list[str]:
        """Statements making the database keep *op*'s columns within Int's range (or, reversed, not):
        none where the column's type keeps them there itself."""
        return []

    def column_index_changes(self, op: planning.AlterColumn) -> tuple[list[str], list[str]]:
        """Statements dropping the column's own indexes it no longer gets, and creating the new ones
        (a unique field has a unique index; an FK column an index unless a declared one leads with it)."""
        mine = (op.new.name,)
        old = [i for i in op.before.column_indexes() if i.columns == mine]
        new = [i for i in op.after.column_indexes() if i.columns == mine]
        drops = [self.drop_index(op.plugin_id, op.before.name, i) for i in old if i not in new]
        creates = [self.create_index(op.plugin_id, op.after.name, i) for i in new if i not in old]
        return drops, creates

    # --- data checks -------------------------------------------------------------------------

    def data_check_sql(self, plugin_id: str, check: safety.DataCheck) -> str:
        """One ``SELECT count(*)`` counting what *check* asks about (read-only).

        Every column is named through its table's alias (:meth:`column_of`): a column the table
        lacks (dropped or renamed meanwhile) fails the count on both databases, never counts."""
        table = self.table_ref(plugin_id, check.table)
        match check.kind:
            case "rows_lost":
                return f"SELECT count(*) FROM {table}"
            case "values_lost":
                if check.column is None:
                    raise ValueError("a values_lost check names its column")
                return f"SELECT count(*) FROM {table} AS t WHERE {self.column_of('t', check.column)} IS NOT NULL"
            case "rows_violating":
                if check.before is None or check.after is None:
                    raise ValueError("a rows_violating check carries the column before and after")
                found = [self.violation(plugin_id, check.before, check.after)]
                found.extend(self.relational_violations(plugin_id, table, check.before, check.after))
                return f"SELECT count(*) FROM {table} AS t WHERE {' OR '.join(f'({c})' for c in found)}"
            case "rows_duplicated":
                if not check.columns:
                    raise ValueError("a rows_duplicated check names its columns")
                return f"SELECT count(*) FROM {table} AS t WHERE {self.duplicated(table, check.columns)}"
        raise ValueError(f"unknown data check {check.kind!r}")

    def duplicated(self, table: str, columns: Sequence[str]) -> str:
        """A condition true for a row of *table* (aliased ``t``) whose *columns* (none NULL) another row has too."""
        names = ", ".join(self.column_of("t", c) for c in columns)
        found = ", ".join(self.column_of("d", c) for c in columns)
        present = " AND ".join(f"{self.column_of('d', c)} IS NOT NULL" for c in columns)
        grouped = f"SELECT {found} FROM {table} AS d WHERE {present} GROUP BY {found} HAVING count(*) > 1"
        return f"({names}) IN ({grouped})" if len(columns) > 1 else f"{names} IN ({grouped})"

    def relational_violations(self, plugin_id: str, table: str, before: ColumnDef, after: ColumnDef) -> list[str]:
        """Conditions for rows breaking a uniqueness or a foreign key *after* adds (*table* is aliased ``t``)."""
        column = self.column_of("t", before.name)
        found: list[str] = []
        if after.unique and not before.unique:
            found.append(self.duplicated(table, [before.name]))
        fk = after.foreign_key
        if fk is not None and fk != before.foreign_key:
            target = self.qualified(self.physical_target(plugin_id, fk))
            value, referenced = column, self.column_of("r", fk.column)
            if self.type_sql(plugin_id, before) != self.type_sql(plugin_id, after):
                # Compared as text: a cast of the old value to the new type could fail the count.
                value, referenced = f"CAST({value} AS TEXT)", f"CAST({referenced} AS TEXT)"
            found.append(
                f"{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {target} AS r WHERE {referenced} = {value})"
            )
        return found

    def violation(self, plugin_id: str, before: ColumnDef, after: ColumnDef, row: str = "t") -> str:
        """A condition true for a row (of the table aliased *row*) whose value (a valid *before*) is
        not a valid *after*."""
        raise NotImplementedError

    def column_of(self, row: str, name: str) -> str:
        """Column *name* of the table aliased (or named, quoted) *row*, as data checks name it.

        Qualified so that a column the table lacks is an error: SQLite reads an unqualified
        double-quoted name that names no column as a string literal, and a check would count it."""
        return f"{row}.{self.quote(name)}"

    def unfit_restore(
        self, plugin_id: str, row: str, backed_up: str, column: ColumnDef, stored: sa.types.TypeEngine[Any] | None
    ) -> str:
        """A condition on a backup's row (the backup aliased or named *row*, quoted), true when its
        value in *backed_up* (a column of the backup's
        type *stored*, as reflected) would not be stored unchanged in *column* (as the table has it
        now): what the column would refuse, round or cut. Read as the narrowing check reads a value
        (:meth:`violation`), as if *column* held it; an integer going into a Float is checked as the
        BigInt → Float conversion is (beyond 2**53 a double rounds it)."""
        held = dataclasses.replace(column, name=backed_up, nullable=True)
        found = [self.violation(plugin_id, held, column, row)]
        if isinstance(stored, sa.Integer):
            found.extend(self.rounded_to_float(dataclasses.replace(held, type="BigInt"), column, row))
        return " OR ".join(found)

    def rounded_to_float(self, before: ColumnDef, after: ColumnDef, row: str = "t") -> list[str]:
        """Integers a double cannot hold exactly: an integer column becoming Float would round them,
        and no CHECK of the new column notices (compared without abs(), which overflows at -2**63)."""
        if after.type != "Float" or before.type not in conversions.INTEGER_DIGITS:
            return []
        column, limit = self.column_of(row, before.name), conversions.FLOAT_EXACT
        return [f"{column} > {limit} OR {column} < -{limit}"]

    def raw_sql(self, op: planning.RunSql) -> list[str]:
        """A raw SQL step's statements as written; where tables are prefixed (SQLite), its
        ``ext_<plugin>.<table>`` names become the physical names (:func:`sqltext.statements`)."""
        from extschema import sqltext  # pglast, loaded only when a plan has raw SQL

        if self.namer.style == "schema":
            return sqltext.statements(op.sql, op.plugin_id)
        return sqltext.statements(op.sql, op.plugin_id, lambda table: self.table_ref(op.plugin_id, table))

    # --- pieces each dialect decides ------------------------------------------------------------

    def create_namespace(self, plugin_id: str) -> list[str]:
        return []

    def drop_namespace(self, plugin_id: str) -> list[str]:
        return []

    def create_enum(self, op: planning.CreateEnum) -> list[str]:
        return []

    def drop_enum(self, op: planning.DropEnum) -> list[str]:
        return []

    def change_enum_values(self, op: planning.ChangeEnumValues) -> list[str]:
        raise NotImplementedError

    def add_column(self, op: planning.AddColumn) -> list[str]:
        """``ALTER TABLE ... ADD COLUMN``, the column's comment, and the column's own indexes."""
        column = op.column
        table_ref = self.table_ref(op.plugin_id, op.after.name)
        statements = [f"ALTER TABLE {table_ref} ADD COLUMN {self.column_ddl(op.plugin_id, op.after, column)}"]
        return statements + self.added_column_extras(op)

    def added_column_extras(self, op: planning.AddColumn) -> list[str]:
        """What follows an added column: its comment and its own indexes."""
        statements = self.column_comments(self.table_ref(op.plugin_id, op.after.name), [op.column])
        # Unique fields become unique indexes (SQLite cannot ADD a UNIQUE column); FK columns get one too.
        statements.extend(
            self.create_index(op.plugin_id, op.after.name, index)
            for index in op.after.column_indexes()
            if index.columns == (op.column.name,)
        )
        return statements

    def column_comments(self, table_ref: str, columns: Sequence[ColumnDef]) -> list[str]:
        """Statements storing the columns' descriptions, where the database keeps comments."""
        return []

    def drop_column(self, op: planning.DropColumn) -> list[str]:
        raise NotImplementedError

    def column_type(self, plugin_id: str, column: ColumnDef) -> sa.types.TypeEngine[Any]:
        """The SQLAlchemy type of a column: the dialect's own where it has one, else the shared one."""
        native = self.native_type(plugin_id, column)
        if native is not None:
            return native
        match column.type:
            case "String":
                return sa.String(column.string_length)
            case "Text":
                return sa.Text()
            case "Int":
                return sa.Integer()
            case "BigInt":
                return sa.BigInteger()
            case "Boolean":
                return sa.Boolean()
            case "Date":
                return sa.Date()
            case "DateTime":
                return sa.DateTime(timezone=True)
            case "Decimal":
                return sa.Numeric(column.precision, column.scale)
        raise TypeError(f"{type(self).__name__} has no type for {column.type}")

    def native_type(self, plugin_id: str, column: ColumnDef) -> sa.types.TypeEngine[Any] | None:
        """Types that differ per database (Float, Json, Uuid, Enum)."""
        return None

    def column_checks(self, column: ColumnDef, value: str | None = None) -> list[str]:
        """Conditions (SQL text) a column's values must meet, beyond what its type enforces.

        *value* is the SQL expression checked (default: the column itself; a data check passes
        the old value converted to the new type)."""
        quoted = value if value is not None else self.quote(column.name)
        conditions: list[str] = []
        if column.min_length is not None:
            conditions.append(f"{self.length_function}({quoted}) >= {column.min_length}")
        if column.max_length is not None and column.type == "Text":
            conditions.append(f"{self.length_function}({quoted}) <= {column.max_length}")
        conditions.extend(self.bound_conditions(quoted, column))
        condition = self.pattern_condition(quoted, column.pattern) if column.pattern is not None else None
        if condition is not None:
            conditions.append(condition)
        return conditions

    def bound_conditions(self, quoted_column: str, column: ColumnDef) -> list[str]:
        """The conditions of ``min`` and ``max``, compared as numbers."""
        conditions: list[str] = []
        if column.min is not None:
            conditions.append(f"{quoted_column} >= {self.literal(column.min)}")
        if column.max is not None:
            conditions.append(f"{quoted_column} <= {self.literal(column.max)}")
        return conditions

    length_function = "char_length"
    #: Multi-column UNIQUE as a table constraint (PostgreSQL), or as a named unique index (SQLite,
    #: where a later table rebuild must recreate exactly what an added constraint created).
    inline_unique_together = True

    def pattern_condition(self, quoted_column: str, pattern: str) -> str | None:
        """The condition enforcing *pattern*, or None where this database cannot (see :meth:`plan_warnings`)."""
        raise NotImplementedError

    def default_sql(self, column: ColumnDef) -> str | None:
        """The column's DEFAULT clause value, rendered as a quoted constant."""
        value = column.default
        if value is None:
            return None
        if column.type == "DateTime" and value == "now":
            return "CURRENT_TIMESTAMP"
        if column.type == "Json":
            return self.literal(json.dumps(value))
        if column.type == "Boolean":
            return self.boolean_literal(bool(value))
        return self.literal(value)

    def boolean_literal(self, value: bool) -> str:
        return "true" if value else "false"

    # --- shared rendering ----------------------------------------------------------------------

    def quote(self, identifier: str) -> str:
        return _quote_identifier(self.sa_dialect.identifier_preparer, identifier)

    def qualified(self, name: PhysicalName) -> str:
        return f"{self.quote(name.schema)}.{self.quote(name.name)}" if name.schema else self.quote(name.name)

    def table_ref(self, plugin_id: str, table: str) -> str:
        return self.qualified(self.namer.table(plugin_id, table))

    def literal(self, value: Any) -> str:
        """A constant as SQL text, quoted by the database's own rules (never pasted raw)."""
        if isinstance(value, bool):
            return self.boolean_literal(value)
        if isinstance(value, int | float):
            return repr(value)
        return self.string_literal(str(value))

    def string_literal(self, text: str) -> str:
        """A string constant that reads back as *text* on any connection to this kind of database."""
        return "'" + text.replace("'", "''") + "'"

    def physical_target(self, plugin_id: str, fk: planning.ForeignKeyDef) -> PhysicalName:
        ref = fk.references
        return self.namer.core_table(ref.table) if ref.is_core else self.namer.table(ref.plugin, ref.table)

    def soft_quote(self, identifier: str) -> str:
        """Quoted only where needed (a reserved word, upper case), as SQLAlchemy writes DDL."""
        return _soft_quote(self.sa_dialect.identifier_preparer, identifier)

    def soft_qualified(self, name: PhysicalName) -> str:
        preparer = self.sa_dialect.identifier_preparer
        table = self.soft_quote(name.name)
        return f"{preparer.quote_schema(name.schema)}.{table}" if name.schema else table

    def id_column_sql(self) -> str:
        """The surrogate key's column definition."""
        raise NotImplementedError

    def primary_key_sql(self) -> str | None:
        """The table's primary key constraint, or None when :meth:`id_column_sql` declares it."""
        return f"PRIMARY KEY ({self.soft_quote('id')})"

    def type_sql(self, plugin_id: str, column: ColumnDef) -> str:
        """The column's type as this database writes it (compiled by SQLAlchemy's dialect)."""
        return str(self.sa_dialect.type_compiler_instance.process(self.column_type(plugin_id, column)))

    def check_condition(self, column: ColumnDef) -> str | None:
        """The column's CHECK condition (its :meth:`column_checks` joined), None without one."""
        return joined(self.column_checks(column))

    def column_sql(self, plugin_id: str, table: str, column: ColumnDef, constraints: bool = True) -> str:
        """A column definition: name, type (compiled by SQLAlchemy's dialect), default, NOT NULL, CHECK
        (without the CHECK when not *constraints*: added after, as its own step)."""
        text = f"{self.soft_quote(column.name)} {self.type_sql(plugin_id, column)}"
        default = self.default_sql(column)
        if default is not None:
            text += f" DEFAULT {default}"
        if not column.nullable:
            text += " NOT NULL"
        condition = self.check_condition(column) if constraints else None
        if condition is not None:
            name = self.namer.derived(plugin_id, table, [column.name], "check")
            text += f" CONSTRAINT {self.soft_quote(name)} CHECK ({condition})"
        return text

    def references_sql(self, plugin_id: str, fk: planning.ForeignKeyDef) -> str:
        """``REFERENCES target (column) ON DELETE ...`` of a foreign key."""
        target = self.qualified(self.physical_target(plugin_id, fk))
        return f"REFERENCES {target} ({self.quote(fk.column)}) ON DELETE {_ON_DELETE[fk.on_delete]}"

    def foreign_key_sql(self, plugin_id: str, table: str, column: ColumnDef) -> str | None:
        """The table constraint of a column's foreign key, if it has one."""
        fk = column.foreign_key
        if fk is None:
            return None
        name = self.namer.derived(plugin_id, table, [column.name], "fkey")
        target = self.soft_qualified(self.physical_target(plugin_id, fk))
        return (
            f"CONSTRAINT {self.soft_quote(name)} FOREIGN KEY({self.soft_quote(column.name)}) "
            f"REFERENCES {target} ({self.soft_quote(fk.column)}) ON DELETE {_ON_DELETE[fk.on_delete]}"
        )

    def create_table_sql(self, plugin_id: str, table: TableDef, rename: str | None = None) -> str:
        """CREATE TABLE, laid out as SQLAlchemy's DDL compiler does (types, quoting and literals
        come from SQLAlchemy's dialect; building SQLAlchemy Table objects was most of the time a
        plan took to render).

        *rename* creates it under another name (a rebuild's scratch table); references to the
        table itself keep naming the original, which the scratch table becomes.
        """
        physical = self.namer.table(plugin_id, table.name)
        items = [self.id_column_sql(), *(self.column_sql(plugin_id, table.name, c) for c in table.columns)]
        key = self.primary_key_sql()
        items.extend([key] if key else [])
        items.extend(fk for c in table.columns if (fk := self.foreign_key_sql(plugin_id, table.name, c)))
        for unique in table.unique_together if self.inline_unique_together else ():
            name = self.index_name(plugin_id, table.name, unique)
            columns = ", ".join(self.soft_quote(c) for c in unique.columns)
            items.append(f"CONSTRAINT {self.soft_quote(name)} UNIQUE ({columns})")
        name = self.soft_qualified(PhysicalName(physical.schema, rename or physical.name))
        return f"CREATE TABLE {name} (\n\t" + ", \n\t".join(items) + "\n)"

    def create_table(self, plugin_id: str, table: TableDef) -> list[str]:
        statements = [self.create_table_sql(plugin_id, table)]
        statements.extend(self.create_index(plugin_id, table.name, index) for index in table.column_indexes())
        if not self.inline_unique_together:
            statements.extend(self.create_index(plugin_id, table.name, index) for index in table.unique_together)
        return statements

    def index_name(self, plugin_id: str, table: str, index: IndexDef, suffix: str | None = None) -> str:
        return self.namer.index(plugin_id, table, index.columns, index.unique, index.name)

    def create_index(self, plugin_id: str, table: str, index: IndexDef) -> str:
        # Written directly: SQLAlchemy's CreateIndex needs a whole Table built first, for the same text.
        unique = "UNIQUE " if index.unique else ""
        columns = ", ".join(self.quote(c) for c in index.columns)
        name = self.quote(self.index_name(plugin_id, table, index))
        return f"CREATE {unique}INDEX {name} ON {self.table_ref(plugin_id, table)} ({columns})"

    def drop_index(self, plugin_id: str, table: str, index: IndexDef) -> str:
        physical = self.namer.table(plugin_id, table)
        name = PhysicalName(physical.schema, self.index_name(plugin_id, table, index))
        return f"DROP INDEX {self.qualified(name)}"

    def column_ddl(self, plugin_id: str, table: TableDef, column: ColumnDef) -> str:
        """The column definition as ADD COLUMN takes it (with its CHECK, default and FK)."""
        text = self.column_sql(plugin_id, table.name, column)
        fk = column.foreign_key
        if fk is not None:
            name = self.namer.derived(plugin_id, table.name, [column.name], "fkey")
            text += f" CONSTRAINT {self.quote(name)} {self.references_sql(plugin_id, fk)}"
        return text

    # --- execution support (used by the engine) --------------------------------------------

    # --- connecting, sessions, bootstrap (the engine asks; nothing outside dialects/ branches on the name) ---

    #: The schema holding the registry tables, or None for the database's default namespace.
    registry_schema: str | None = None
    #: Migrations run with foreign key enforcement off (then checked before COMMIT) on every run,
    #: not only when the recorded plan asked for it.
    migrations_without_foreign_keys = False

    @classmethod
    def for_database(cls, core_schema: str) -> Dialect:
        """The dialect for one database whose host application's tables live in *core_schema*."""
        return cls()

    def url_problem(self, url: sa.URL) -> str | None:
        """Why *url* cannot be used for a lasting registry (None when it can)."""
        return None

    def open_problem(self, url: sa.URL) -> str | None:
        """Why a database kept in a file cannot be opened at all (its directory is missing, the path is a
        directory), known before connecting; None when it may be (servers: always)."""
        return None

    #: What a user checks when the database cannot be reached (ES401), and the code saying so.
    unreachable_hint = "check that the server runs and the URL, user and password are right"
    unreachable_code = "ES401"

    #: Reads without a transaction (one round trip less for a single statement) where that is cheaper.
    autocommit_reads = False

    def create_engine(self, url: sa.URL, pre_ping: bool = True) -> sa.Engine:
        """The SQLAlchemy engine for *url*, with this database's connection settings (*pre_ping*: test a
        pooled connection before handing it out, one round trip; off where the first statement retries)."""
        raise NotImplementedError

    def created_by_connecting(self, url: sa.URL) -> bool:
        """Whether connecting to *url* would create its database (a missing SQLite file): reads
        must create nothing, so they read :meth:`empty_engine` instead."""
        return False

    def empty_engine(self) -> sa.Engine:
        """An engine on an empty, throwaway database of this kind."""
        raise NotImplementedError

    def bootstrap(self) -> list[str]:
        """Statements run before the registry tables are first created, in the same transaction."""
        return []

    def server_version(self, conn: sa.Connection) -> str:
        """The server's name and version (one query; also proves the connection works)."""
        raise NotImplementedError

    def set_foreign_keys(self, dbapi_connection: Any, enabled: bool) -> None:
        """Switch foreign key enforcement, outside any transaction (a no-op where it is not per connection)."""

    def execute(self, cursor: Any, statements: Sequence[str], foreign_keys_off: bool) -> None:
        """Run a migration's statements on a raw driver cursor inside the open transaction, one by one.

        The raw cursor: no parameter parsing, so a '%' in a quoted pattern stays itself.
        """
        for statement in statements:
            cursor.execute(statement)

    #: How many of a migration's statements :meth:`execute_batch` is given at most (1: one by one).
    #: Still one transaction. A server notices a killed client only when it next writes to it: the whole
    #: migration sent as one string went on for 4-5 s after kill -9 holding the plugin's lock (1,500
    #: tables), so batches are bounded, and steps that copy rows or run raw SQL go one by one.
    #: Re-measured (bench/engine.py, 1,500 tables, 3,100 statements, local server, 2 shared cores): lock
    #: free after kill -9 in 0.05 s one by one, 0.23 s in batches of 64, 0.17 s in psycopg pipeline mode
    #: synced every 64, 0.98 s as one pipeline. On a local socket a round trip costs ~0.1 ms, so the way
    #: of sending moved the apply less than the noise (8.2-9.9 s against psql's 4.2 s: the rest is the
    #: client's CPU); over a network each costs the RTT (1 ms: 3 s for 3,000), which batches save.
    #: Batches, not pipeline mode: as fast, and their results name the failed statement.
    batch_statements = 1

    def execute_batch(self, cursor: Any, statements: Sequence[str]) -> None:
        """Run *statements* (each one statement, rendered by extschema) in the open transaction, where
        the database allows it in one round trip; a failure raises :class:`BatchFailed` naming the
        statement. Here: one by one (a database in the process pays no round trip)."""
        for index, statement in enumerate(statements):
            try:
                cursor.execute(statement)
            except Exception as error:
                raise BatchFailed(index, error) from error

    def plugin_tables(self, inspector: sa.Inspector, plugin_id: str) -> list[str]:
        """The plugin's tables that exist now, as the registry names them."""
        raise NotImplementedError

    def plugin_objects(self, inspector: sa.Inspector, plugin_id: str) -> list[str]:
        """Everything of the plugin that exists now and that installing it would create: its tables, and
        where the database has them its namespace and types (named for a person: ``schema ext_x``)."""
        return self.plugin_tables(inspector, plugin_id)

    def session_setup(self) -> Sequence[str]:
        """Statements run on every new connection."""
        return ()

    def migration_preamble(
        self, lock_key: tuple[int, int], lock_timeout_ms: int, statement_timeout_ms: int
    ) -> list[str]:
        """Statements that start a migration transaction: lock, then timeouts (in that order)."""
        return []

    def registry_exists_query(self) -> str:
        """One query answering whether both registry tables exist."""
        raise NotImplementedError

    def classify(self, error: BaseException) -> ErrorClass:
        raise NotImplementedError

    def lock_conflict(self, error: BaseException | None) -> bool:
        """Whether *error* says another session held a lock too long (retried with backoff)."""
        return False

    # --- lock waits (named while they last, and in the final ES403) ---

    def session_pid(self, conn: sa.Connection) -> int | None:
        """The server's id of *conn*'s session, for :meth:`blocking_sessions` (None: not observable)."""
        return None

    def blocking_sessions(self, conn: sa.Connection, pid: int) -> list[Blocker]:
        """The sessions session *pid* waits for, read on another connection *conn*."""
        return []

    def lock_wait(self, url: sa.URL) -> str | None:
        """What a migration still waiting to begin its transaction waits for, where the database
        cannot name the session (None: it can, or nothing is waited for there)."""
        return None

    def locked(self, error: BaseException | None, url: sa.URL) -> str | None:
        """Why *error* means another connection held the database too long, where it is not a
        :meth:`lock_conflict` (retried) but the database's own wait ran out; else None."""
        return None

    # --- rows (the API's entity statements, engine.entities) ---

    def row_violation(self, error: BaseException) -> Violation | None:
        """What rule a failed row write broke, or None when *error* is not about the row's values."""
        return None

    def usable_plugin_roles(self, conn: sa.Connection, plugin_ids: Collection[str]) -> dict[str, str]:
        """Plugin id -> the plugin's role this connection may switch to (databases with roles only)."""
        return {}

    def set_role_sql(self, role: str) -> str:
        """Run the rest of the transaction as *role* (databases with roles only)."""
        raise NotImplementedError

    def logical_type(self, sql_type: sa.types.TypeEngine[Any]) -> FieldType | None:
        """What a reflected core column's type is, in extschema's terms (for FK type checks)."""
        return next((name for kind, name in _LOGICAL_TYPES if isinstance(sql_type, kind)), None)

    #: A single-column INTEGER primary key numbers new rows by itself (SQLite's rowid alias).
    rowid_primary_key = False

    def core_foreign_keys(self, inspector: sa.Inspector, table: str, schema: str | None) -> list[CoreForeignKey]:
        """A core table's foreign keys, with their ON DELETE action (None: NO ACTION)."""
        return [
            CoreForeignKey(
                fk["name"],
                tuple(fk["constrained_columns"]),
                fk.get("referred_schema"),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                (fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(table, schema=schema)
        ]

    def core_indexes(
        self, inspector: sa.Inspector, table: str, schema: str | None
    ) -> list[tuple[str | None, list[str], bool]]:
        """A core table's indexes (unique constraints' own too): name (None: the database named it), columns, unique."""
        return [
            (index["name"], [str(c) for c in index["column_names"]], bool(index["unique"]))
            for index in inspector.get_indexes(table, schema=schema)
            if not index.get("duplicates_constraint") and None not in index["column_names"]
        ]

    def type_kind(self, sql_type: sa.types.TypeEngine[Any]) -> str:
        """A reflected core column's type as one of :data:`extschema.prisma.CORE_KINDS` (``other`` else)."""
        if isinstance(sql_type, sa.Enum):
            return "enum"
        found = next((kind for cls, kind in _TYPE_KINDS if isinstance(sql_type, cls)), "other")
        if found == "timestamp" and getattr(sql_type, "timezone", False):
            return "timestamptz"
        return found


@dataclasses.dataclass(frozen=True)
class Violation:
    """A row a statement wrote broke a rule of the table (for the API: 409 or 422, never 500)."""

    kind: str  # "unique" | "foreign_key" | "check" | "not_null" | "invalid"
    constraint: str | None = None
    columns: tuple[str, ...] = ()
    detail: str = ""


# Quoting is pure and the same few names recur in every table (1,500 tables: 80,000 quotes).
@functools.lru_cache(maxsize=4096)
def _quote_identifier(preparer: Any, identifier: str) -> str:
    return str(preparer.quote_identifier(identifier))


@functools.lru_cache(maxsize=4096)
def _soft_quote(preparer: Any, identifier: str) -> str:
    return str(preparer.quote(identifier))


#: How each operation is rendered: by the dialect's method for it (subclasses override those).
_RENDERERS: dict[type[Op], Callable[[Dialect, Any], list[str]]] = {
    planning.CreatePluginNamespace: lambda d, op: d.create_namespace(op.plugin_id),
    planning.DropPluginNamespace: lambda d, op: d.drop_namespace(op.plugin_id),
    planning.CreateEnum: lambda d, op: d.create_enum(op),
    planning.DropEnum: lambda d, op: d.drop_enum(op),
    planning.ChangeEnumValues: lambda d, op: d.change_enum_values(op),
    planning.CreateTable: lambda d, op: d.create_table(op.plugin_id, op.table),
    planning.DropTable: lambda d, op: [f"DROP TABLE {d.table_ref(op.plugin_id, op.table.name)}"],
    planning.AddColumn: lambda d, op: d.add_column(op),
    planning.DropColumn: lambda d, op: d.drop_column(op),
    planning.CreateIndex: lambda d, op: [d.create_index(op.plugin_id, op.table, op.index)],
    planning.DropIndex: lambda d, op: [d.drop_index(op.plugin_id, op.table, op.index)],
    planning.RenameTable: lambda d, op: d.rename_table(op),
    planning.RenameColumn: lambda d, op: d.rename_column(op),
    planning.AlterColumn: lambda d, op: d.alter_column(op),
    planning.RenameEnumValue: lambda d, op: d.rename_enum_value(op),
    planning.RunSql: lambda d, op: d.raw_sql(op),
    planning.EnforceIntRange: lambda d, op: d.enforce_int_range(op),
}

#: Column attributes whose change converts stored values (a cast can round, truncate or reformat).
_CONVERTING = frozenset({"type", "precision", "scale"})


def joined(conditions: Sequence[str]) -> str | None:
    """*conditions* as one CHECK condition (a lone one as it is), None for none."""
    if not conditions:
        return None
    return " AND ".join(f"({c})" for c in conditions) if len(conditions) > 1 else conditions[0]


@dataclasses.dataclass(frozen=True)
class Predated:
    """A rule *op* adds to a table whose live CHECKs predate it: *check* counts the rows breaking
    it (names as before the plan); *rule* says which rule, for the refusal."""

    op: Op
    check: safety.DataCheck
    rule: str


def lossy(op: planning.AlterColumn) -> bool:
    """Whether *op* converts the column's stored values or narrows what they may hold (a shorter
    String too): then they are backed up first, like a dropped column's."""
    return bool(_CONVERTING.intersection(op.changed())) or conversions.narrows_values(op.old, op.new)


#: Reflected SQLAlchemy types in extschema's terms, subclasses before their bases (a BigInteger is an
#: Integer, a Float a Numeric, a Text a String): the first that matches wins.
#: Reflected types by kind, most specific first (subclasses before their bases).
_TYPE_KINDS: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (sa.BigInteger, "bigint"),
    (sa.SmallInteger, "smallint"),
    (sa.Integer, "int"),
    (sa.Uuid, "uuid"),
    (sa.REAL, "real"),
    (sa.Float, "double"),
    (sa.Numeric, "numeric"),
    (sa.Boolean, "boolean"),
    (sa.DateTime, "timestamp"),
    (sa.Date, "date"),
    (sa.Time, "time"),
    (sa.JSON, "json"),
    (sa.CHAR, "char"),
    (sa.Text, "text"),
    (sa.String, "varchar"),
    (sa.LargeBinary, "bytes"),
)

_LOGICAL_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], FieldType], ...] = (
    (sa.BigInteger, "BigInt"),
    (sa.Integer, "Int"),
    (sa.Uuid, "Uuid"),
    (sa.Float, "Float"),
    (sa.Numeric, "Decimal"),
    (sa.Boolean, "Boolean"),
    (sa.DateTime, "DateTime"),
    (sa.Date, "Date"),
    (sa.Text, "Text"),
    (sa.String, "String"),
)

_ON_DELETE = {"Restrict": "RESTRICT", "Cascade": "CASCADE", "SetNull": "SET NULL"}
