"""SQLite: prefixed table names, CHECK-enforced enums and types, table rebuilds for what ALTER cannot do."""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from extschema import limits, naming, planning, portable_regex
from extschema.dialects import sqlite_decimal, sqlite_patterns
from extschema.dialects.base import (
    READ_ONLY,
    CoreForeignKey,
    Dialect,
    ErrorClass,
    Predated,
    Violation,
    _Backup,
    joined,
)
from extschema.planning import ColumnDef, IndexDef, TableDef, conversions, safety
from extschema.problems import Problem

#: The alias of the table a rebuild copies from: its columns are named through it (:meth:`Dialect.column_of`).
_SOURCE = "s"

# SQLite columns take any value whatever their declared type; these CHECKs make them strict.
_STORAGE_CLASSES = {
    "String": "'text', 'null'",
    "Text": "'text', 'null'",
    "Enum": "'text', 'null'",
    "Uuid": "'text', 'null'",
    "Date": "'text', 'null'",
    "DateTime": "'text', 'null'",
    "Int": "'integer', 'null'",
    "BigInt": "'integer', 'null'",
    "Float": "'real', 'integer', 'null'",
    # Exact values are text: NUMERIC affinity would turn a long decimal or a big JSON number into a REAL.
    "Decimal": "'text', 'null'",
    "Json": "'text', 'null'",
}


class SqliteDialect(Dialect):
    name = "sqlite"
    merges_ops = True
    length_function = "length"
    inline_unique_together = False

    def __init__(self) -> None:
        self.namer = naming.Namer("prefix")
        self.sa_dialect = sqlite_dialect.pysqlite.dialect()

    def backup_name(self, plugin_id: str, table: str, tag: str) -> naming.PhysicalName:
        return naming.PhysicalName(None, naming.fit(f"{naming.BACKUP_SCHEMA}__{plugin_id}__{table}__{tag}"))

    def boolean_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def column_checks(self, column: ColumnDef, value: str | None = None) -> list[str]:
        quoted = value if value is not None else self.quote(column.name)
        conditions: list[str] = []
        if column.type in _STORAGE_CLASSES:
            conditions.append(f"typeof({quoted}) IN ({_STORAGE_CLASSES[column.type]})")
        if column.type == "Int":
            conditions.append(_int_range(quoted))
        if column.type == "Boolean":
            conditions.append(f"{quoted} IN (0, 1)")
        if column.type == "Json":
            # json_valid(NULL) is 0 on SQLite before 3.46, so NULL is let through explicitly.
            conditions.append(f"{quoted} IS NULL OR json_valid({quoted})")
        if column.type == "Decimal":
            assert column.precision is not None and column.scale is not None
            conditions.append(sqlite_decimal.well_formed(quoted, column.precision, column.scale))
        if column.type == "Uuid":
            conditions.append(f"length({quoted}) = {limits.UUID_LENGTH}")
        if column.type == "String":
            conditions.append(f"length({quoted}) <= {column.string_length}")
        if column.enum is not None:
            conditions.append(f"{quoted} IN ({', '.join(self.literal(v) for v in column.enum.values)})")
        return conditions + super().column_checks(column, value)

    def bound_conditions(self, quoted_column: str, column: ColumnDef) -> list[str]:
        if column.type != "Decimal":
            return super().bound_conditions(quoted_column, column)
        assert column.precision is not None and column.scale is not None
        return sqlite_decimal.bounds(quoted_column, column.precision, column.scale, column.min, column.max)

    def default_sql(self, column: ColumnDef) -> str | None:
        if column.type == "Decimal" and column.default is not None:
            return self.literal(sqlite_decimal.plain(column.default))
        return super().default_sql(column)

    def pattern_condition(self, quoted_column: str, pattern: str) -> str | None:
        # Not REGEXP: that is a function every client would have to register (the application's
        # driver, Prisma, ...), or each of its inserts fails. GLOB, length and substr are built in;
        # patterns they cannot express exactly stay unenforced here, and plan_warnings says so.
        found = sqlite_patterns.translate(pattern)
        if found is None:
            return None
        conditions = [f"{quoted_column} GLOB {self.literal(found.glob)}"]
        low, high = found.length
        if low:
            conditions.append(f"length({quoted_column}) >= {low}")
        if high is not None:
            conditions.append(f"length({quoted_column}) <= {high}")
        if found.run is not None:
            middle = quoted_column  # the run, between the fixed parts
            if found.before or found.after:
                end = found.before + found.after
                middle = f"substr({quoted_column}, {found.before + 1}, length({quoted_column}) - {end})"
            conditions.append(f"{middle} NOT GLOB {self.literal('*' + found.run + '*')}")
        return " AND ".join(conditions)

    def plan_warnings(self, plan: planning.Plan) -> list[Problem]:
        # One short warning per plan, only where the plan creates such a column: not on every apply.
        unenforced: list[str] = []
        for op in plan.ops:
            match op:
                case planning.CreateTable():
                    table, columns = op.table.name, op.table.columns
                case planning.AddColumn():
                    table, columns = op.after.name, (op.column,)
                case _:
                    continue
            unenforced.extend(
                f"{c.pattern!r} of {table}.{c.name}"
                for c in columns
                if c.pattern is not None and sqlite_patterns.translate(c.pattern) is None
            )
        if not unenforced:
            return []
        what = "the pattern" if len(unenforced) == 1 else "the patterns"
        return [
            Problem(
                "ES501",
                "",
                f"SQLite will not enforce {what} {', '.join(unenforced)} (no exact translation to built-in SQL; "
                "docs/databases.md#sqlite-and-patterns): check the values in the application, or simplify the pattern",
            )
        ]

    rowid_primary_key = True

    def core_foreign_keys(self, inspector: sa.Inspector, table: str, schema: str | None) -> list[CoreForeignKey]:
        # SQLAlchemy leaves out SQLite's ON DELETE: the pragma has it (the rows of one key share its id).
        assert isinstance(inspector.bind, sa.Connection)
        query = 'SELECT id, seq, "table", "from", "to", on_delete FROM pragma_foreign_key_list(:t) ORDER BY id, seq'
        keys: dict[int, list[Any]] = {}
        for row in inspector.bind.execute(sa.text(query), {"t": table}):
            keys.setdefault(row[0], []).append(row)
        return [
            CoreForeignKey(None, tuple(r[3] for r in key), None, key[0][2], tuple(r[4] for r in key), key[0][5])
            for key in keys.values()
        ]

    def core_indexes(
        self, inspector: sa.Inspector, table: str, schema: str | None
    ) -> list[tuple[str | None, list[str], bool]]:
        # A column's UNIQUE is an automatic index (not a reflected constraint), named by SQLite itself.
        found = inspector.get_indexes(table, schema=schema, include_auto_indexes=True)
        return [
            (None if str(i["name"]).startswith("sqlite_autoindex_") else i["name"], [str(c) for c in i["column_names"]],
             bool(i["unique"]))
            for i in found
            if None not in i["column_names"]
        ]  # fmt: skip

    def id_column_sql(self) -> str:
        # INTEGER PRIMARY KEY: an alias of the rowid. AUTOINCREMENT: a deleted row's id is never
        # handed out again (without it SQLite reuses the highest one), so a backup's ids keep naming
        # the rows they were taken from. The counter lives in sqlite_sequence; rebuild() carries it.
        return "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT"

    def resume_ids(self, plugin_id: str, table: str, floor: int) -> list[str]:
        # Just created, sqlite_sequence has no row for the table yet; once rows were copied back
        # with their ids, it has one (AUTOINCREMENT keeps it at the highest): raised, never lowered.
        name = self.literal(self.namer.table(plugin_id, table).name)
        return [
            f"UPDATE sqlite_sequence SET seq = {floor} WHERE name = {name} AND seq < {floor}",
            f"INSERT INTO sqlite_sequence (name, seq) SELECT {name}, {floor} "
            f"WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {name})",
        ]

    def id_counters(self, conn: sa.Connection, plugin_id: str) -> dict[str, int]:
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        if conn.exec_driver_sql(exists).first() is None:  # no AUTOINCREMENT table was ever created
            return {}
        prefix = self.namer.table(plugin_id, "").name
        rows = conn.execute(sa.text("SELECT name, seq FROM sqlite_sequence WHERE substr(name, 1, :n) = :p"),
                            {"n": len(prefix), "p": prefix})  # fmt: skip
        return {str(name): int(seq) for name, seq in rows if isinstance(seq, int)}

    def primary_key_sql(self) -> str | None:
        return None  # AUTOINCREMENT is only allowed on the column's own PRIMARY KEY

    def native_type(self, plugin_id: str, column: ColumnDef) -> sa.types.TypeEngine[Any] | None:
        match column.type:
            case "Float":
                return sa.Float()
            case "Json" | "Decimal":
                return sa.Text()  # TEXT affinity: stored as written (see _STORAGE_CLASSES)
            case "Uuid":
                return sa.String(limits.UUID_LENGTH)
            case "Enum":
                assert column.enum is not None
                return sa.String(max(len(v) for v in column.enum.values))
        return None

    def needs_foreign_keys_off(self, plan: planning.Plan) -> bool:
        ops = (*plan.ops, *plan.reverse().ops)
        return any(self._rebuilds(op) for op in ops)

    def copies_rows(self, op: planning.Op, statements: Sequence[str]) -> tuple[str, ...]:
        copied = super().copies_rows(op, statements)
        if self._rebuilds(op):
            copied = (*copied, *(t.name for t, _ in getattr(op, "tables", ())))
            table = _op_table(op)
            copied = (*copied, table) if table is not None else copied
        return tuple(dict.fromkeys(copied))

    def lock_wait(self, url: sa.URL) -> str | None:
        return (
            f"the database file {url.database} is locked by another connection "
            f"(SQLite waits up to its busy timeout, {limits.SQLITE_BUSY_TIMEOUT_MS // 1000} s)"
        )

    def locked(self, error: BaseException | None, url: sa.URL) -> str | None:
        original = getattr(error, "orig", error)
        if not isinstance(original, sqlite3.OperationalError) or "locked" not in str(original).lower():
            return None
        return (
            f"the database file {url.database} is locked by another connection: gave up after SQLite's busy "
            f"timeout ({limits.SQLITE_BUSY_TIMEOUT_MS // 1000} s); try again once that connection's "
            "transaction has ended"
        )

    def _rebuilds(self, op: planning.Op) -> bool:
        match op:
            case planning.ChangeEnumValues() | planning.RenameEnumValue():
                return bool(op.tables)
            case planning.DropColumn():
                return True
            case planning.AddColumn():
                return not self._can_add_in_place(op.column)
            case planning.AlterColumn():
                return not _indexes_only(op)
            case planning.EnforceIntRange():
                return True
        return False

    #: Int's range is a CHECK here: drift reads the CHECKs to tell a table whose CHECK lacks it.
    reads_checks = True

    def unenforced(self, plugin_id: str, column: ColumnDef, checks: Collection[str]) -> str | None:
        # Tables created before extschema checked Int's range on SQLite let any 64-bit integer in.
        # Any of the table's CHECKs may hold it: a renamed column keeps its constraint's old name.
        if column.type != "Int" or any(_int_range(self.quote(column.name)) in c for c in checks):
            return None
        low, high = conversions.INT_RANGE
        return (
            f"SQLite does not keep it within Int's range ({low}..{high}): the table was created before extschema "
            "added that CHECK, so larger integers fit (PostgreSQL refuses them). `extschema drift "
            f"{plugin_id} --repair` adds it, rebuilding the table (refused, with the count, while a value is "
            "outside the range: fix those first); so does the next change that rebuilds the table"
        )

    def predated_rules(self, conn: sa.Connection, plan: planning.Plan) -> list[Predated]:
        # A rebuild creates the table with every CHECK this version renders: an Int column whose live
        # CHECK predates the range gets it, and a value outside it would fail the copy.
        found: list[Predated] = []
        inspector = sa.inspect(conn)
        low, high = conversions.INT_RANGE
        for op, table, kept, not_int in _first_rebuilds(plan, self._rebuilds):
            name = self.namer.table(plan.plugin_id, table.name).name
            if not inspector.has_table(name):
                continue
            checks = [c["sqltext"] for c in inspector.get_check_constraints(name)]
            for column in table.columns:
                after = kept.get(column.name)
                if after is None or after.type != "Int" or column.name in not_int:
                    continue
                if self.unenforced(plan.plugin_id, column, checks) is None:
                    continue
                check = safety.DataCheck("rows_violating", table.name, column.name, before=column, after=column)
                rule = (
                    f"its rebuild of table {table.name} adds the CHECK keeping {table.name}.{column.name} within "
                    f"Int's range ({low}..{high}), which the table predates"
                )
                found.append(Predated(op, check, rule))
        return found

    def hand_made_problems(self, conn: sa.Connection, plan: planning.Plan) -> list[Problem]:
        # A rebuild copies the spec's columns into a new table and drops the old one, and SQLite drops
        # its indexes and triggers with it; views and other tables' triggers naming it then fail the
        # RENAME step. Only what the spec knows is re-created: everything else is refused, named, for
        # the DBA to decide (not carried over: it may not fit the new shape, and the DBA stays in charge).
        rebuilt = _rebuilt(plan, self._rebuilds)
        physical = {t.name: self.namer.table(plan.plugin_id, t.name).name for t in rebuilt}
        tied = self.tied_objects(conn, list(physical.values()))
        ours = _index_names(self, plan)
        # The columns the table has before the plan that its first rebuild copies (not those added
        # in place earlier in the plan).
        copies = {
            t.name: ("id", *(c for c in kept if t.column(c) is not None))
            for _op, t, kept, _not_int in _first_rebuilds(plan, self._rebuilds)
        }
        problems: list[Problem] = []
        for table in rebuilt:
            name = physical[table.name]
            known = {"id", *(c.name for c in table.columns)}
            found = conn.exec_driver_sql(f"SELECT name FROM pragma_table_info({self.literal(name)})").scalars().all()
            # A column the rebuild copies but the table lacks (dropped by hand) would be read as its
            # name if named unqualified: refused by name, before anything runs.
            missing = [c for c in copies.get(table.name, ()) if found and c not in found]
            problems.extend(
                Problem(
                    "ES301",
                    f"column {table.name}.{c}",
                    f"SQLite carries out this change by rebuilding table {table.name} ({name}), copying column "
                    f"{table.name}.{c}, which the table lacks (dropped outside extschema?): `extschema drift "
                    f"{plan.plugin_id} --repair` adds it again (empty), or put it back by hand; then apply again",
                )
                for c in missing
            )
            made = [f"column {c}" for c in found if c not in known]
            made.extend(t for t in tied[name] if not (t.startswith("index ") and t[len("index ") :] in ours))
            if made:
                problems.append(
                    Problem(
                        "ES301",
                        f"table {table.name}",
                        f"SQLite carries out this change by rebuilding table {table.name} ({name}), which "
                        f"would drop or break what was added to it outside extschema: {', '.join(made)}; back it "
                        "up and drop it by hand (or add the fields or indexes to the spec), then apply again",
                    )
                )
        return problems

    def tied_objects(self, conn: sa.Connection, tables: Sequence[str]) -> dict[str, list[str]]:
        # The table's own indexes (those backing UNIQUE/PRIMARY KEY have no SQL: the table's DDL makes
        # them) and triggers, and every view or trigger whose SQL names the table. A mention counts:
        # SQLite keeps no dependency list, and re-parsing each view is what the rebuild would fail on.
        rows = conn.exec_driver_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE type IN ('index', 'trigger', 'view') AND sql IS NOT NULL ORDER BY type, name"
        ).all()
        found: dict[str, list[str]] = {}
        for table in tables:
            mention = re.compile(rf"(?<![\w$]){re.escape(table)}(?![\w$])", re.IGNORECASE)
            found[table] = [
                f"{kind} {name}"
                for kind, name, on, sql in rows
                if on.lower() == table.lower() or (kind != "index" and mention.search(sql))
            ]
        return found

    @staticmethod
    def _can_add_in_place(column: ColumnDef) -> bool:
        # ALTER TABLE ADD COLUMN refuses REFERENCES with a non-NULL default and NOT NULL without one.
        if column.foreign_key is not None and column.default is not None:
            return False
        return column.nullable or column.default is not None

    def add_column(self, op: planning.AddColumn) -> list[str]:
        if not self._can_add_in_place(op.column):
            return self.rebuild(op.plugin_id, op.before, op.after)
        return super().add_column(op)

    def drop_column(self, op: planning.DropColumn) -> list[str]:
        return self.rebuild(op.plugin_id, op.before, op.after)

    def change_enum_values(self, op: planning.ChangeEnumValues) -> list[str]:
        statements: list[str] = []
        for before, after in op.tables:
            statements.extend(self.rebuild(op.plugin_id, before, after))
        return statements

    def rebuild(
        self, plugin_id: str, before: TableDef, after: TableDef, sources: Mapping[str, str] | None = None
    ) -> list[str]:
        """SQLite's 12-step table change: create the new shape, copy, drop, rename, re-index.

        Each column of *after* is copied from the same column of *before*, converted when its
        type changed (:meth:`convert`), or from the SQL expression *sources* gives for it (a value
        mapped, or restored from a backup, naming the old table's columns through the alias
        :data:`_SOURCE`); columns found in neither take their default. The engine runs it with
        foreign_keys off and checks ``PRAGMA foreign_key_check`` before committing, as SQLite's
        documentation prescribes. A plan's changes of one table make one rebuild (:class:`_Batch`).
        """
        batch = _Batch(self)
        batch.rebuild(plugin_id, before, after, sources or {})
        return batch.finish()

    def rebuild_statements(self, plugin_id: str, after: TableDef, copies: Mapping[str, str]) -> list[str]:
        """The rebuild of table *after* (its final shape), each column in *copies* filled from its SQL
        expression over the table as it is (aliased :data:`_SOURCE`), the others taking their default."""
        physical = self.namer.table(plugin_id, after.name)
        scratch = naming.fit(f"{physical.name}__rebuild")
        create = self.create_table_sql(plugin_id, after, rename=scratch)
        # Qualified: a column the table lacks fails the copy instead of being copied as its name.
        kept = ["id", *(c.name for c in after.columns if c.name in copies)]
        values = [self.column_of(_SOURCE, "id"), *(copies[c.name] for c in after.columns if c.name in copies)]
        columns = ", ".join(self.quote(c) for c in kept)
        source = f"{self.quote(physical.name)} AS {_SOURCE}"
        statements = [
            create,
            f"INSERT INTO {self.quote(scratch)} ({columns}) SELECT {', '.join(values)} FROM {source}",
            *self._carry_id_counter(physical.name, scratch),
            f"DROP TABLE {self.quote(physical.name)}",
            f"ALTER TABLE {self.quote(scratch)} RENAME TO {self.quote(physical.name)}",
        ]
        statements.extend(self.create_table(plugin_id, after)[1:])
        statements.extend(self.create_index(plugin_id, after.name, index) for index in after.indexes)
        return statements

    def render_ops(
        self, ops: Iterable[planning.Op], backup_tag: str, id_floors: Mapping[str, int] | None = None
    ) -> list[str]:
        # One rebuild per table, whatever the number of steps changing it (alembic's batch "move and
        # copy"): each step's backups are taken where the step is, from the rows as the steps before
        # it left them; the table is rebuilt once, into its final shape.
        floors = id_floors or {}
        batch = _Batch(self)
        for op in ops:
            batch.backups(op.plugin_id, self.backups(op, backup_tag))
            self._feed(batch, op)
            if isinstance(op, planning.CreateTable) and op.table.name in floors:
                batch.sql(self.resume_ids(op.plugin_id, op.table.name, floors[op.table.name]))
        return batch.finish()

    def undo_ops(self, ops: Sequence[planning.Op], backup_tag: str) -> list[str]:
        # As Dialect.undo, each step in reverse order, batched as render_ops batches them.
        batch = _Batch(self)
        for op in reversed(ops):
            reads, takes = self.undo_backups(op, backup_tag)
            match op:
                case planning.DropTable() if reads:
                    restored = self.restore_rows(op.plugin_id, op.table, reads[0].name)
                    batch.sql([*self.render(op.reverse()), *restored])
                case planning.DropColumn() if reads:
                    batch.rebuild(op.plugin_id, op.after, op.before, self._restored_column(op, reads[0].name))
                case planning.AlterColumn() if reads:
                    batch.rebuild(op.plugin_id, op.after, op.before, self._restored_values(op, reads[0].name))
                case _:
                    reverse = op.reverse()
                    if takes:
                        batch.backups(op.plugin_id, self.backups(reverse, backup_tag))
                    self._feed(batch, reverse)
        return batch.finish()

    def _feed(self, batch: _Batch, op: planning.Op) -> None:
        """Hand *op* to *batch*: its part of its tables' rebuilds, or its statements."""
        match op:
            case planning.RenameEnumValue():
                for before, after in op.tables:
                    batch.rebuild(op.plugin_id, before, after, self._renamed_values(op, before))
            case planning.ChangeEnumValues():
                for before, after in op.tables:
                    batch.rebuild(op.plugin_id, before, after, {})
            case planning.EnforceIntRange() if op.enforced:
                batch.rebuild(op.plugin_id, op.table, op.table, {})
            case planning.AddColumn() | planning.DropColumn() | planning.AlterColumn() | planning.RenameColumn():
                sources = {op.new: self.column_of(_SOURCE, op.old)} if isinstance(op, planning.RenameColumn) else {}
                if self._rebuilds(op):
                    batch.rebuild(op.plugin_id, op.before, op.after, sources)
                else:  # in place, unless the table is rebuilt anyway: then the rebuild does it
                    batch.in_place(op.plugin_id, op.before, op.after, sources, self.render(op))
            case planning.CreateIndex() | planning.DropIndex():
                batch.index(op.table, self.render(op))
            case planning.CreateTable():
                batch.sql(self.render(op))
            case planning.DropTable():
                batch.flush(op.table.name)
                batch.sql(self.render(op))
            case _:
                # A table renamed (other tables' keys naming it follow), raw SQL, a range taken away:
                # after the rebuilds collected so far, as the steps are ordered.
                statements = self.render(op)
                if statements:
                    batch.flush_all()
                batch.sql(statements)

    def backup_through(self, plugin_id: str, backup: naming.PhysicalName, table: str, column: str, value: str) -> str:
        """A column's backup whose value is *value* (an expression over the table aliased
        :data:`_SOURCE`): the column as steps not yet carried out (a pending rebuild) made it."""
        source = self.table_ref(plugin_id, table)
        columns = f"{self.column_of(_SOURCE, 'id')}, {value} AS {self.quote(column)}"
        return f"CREATE TABLE {self.qualified(backup)} AS SELECT {columns} FROM {source} AS {_SOURCE}"

    def _carry_id_counter(self, table: str, scratch: str) -> list[str]:
        """The rebuilt table's id counter (sqlite_sequence) at least the old table's: ids of rows
        deleted before the rebuild stay used. The copy set it to the highest id copied; a table
        created before AUTOINCREMENT has no counter, and gets it from there."""
        old, new = self.literal(table), self.literal(scratch)
        counter = f"(SELECT seq FROM sqlite_sequence WHERE name = {old})"
        return [
            f"UPDATE sqlite_sequence SET seq = max(seq, COALESCE({counter}, 0)) WHERE name = {new}",
            f"INSERT INTO sqlite_sequence (name, seq) SELECT {new}, seq FROM sqlite_sequence WHERE name = {old} "
            f"AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {new})",
        ]

    def convert(self, value: str, old: ColumnDef, new: ColumnDef) -> str:
        """*value* (of the *old* column) as the *new* column stores it.

        A value that does not convert is left as it is, so the new column's CHECKs (storage class,
        length, rules) refuse it and the rebuild fails instead of storing something else — SQLite's
        own CAST would turn 'abc' into 0.
        """
        old_class, new_class = _STORAGE_CLASSES.get(old.type), _STORAGE_CLASSES.get(new.type)
        if old_class == new_class:
            return value
        if new_class == _STORAGE_CLASSES["Text"]:
            return f"CAST({value} AS TEXT)"
        if new.type in ("Int", "BigInt"):
            number = f"CAST({value} AS INTEGER)"
            if old_class == _STORAGE_CLASSES["Text"]:
                return f"(CASE WHEN CAST({number} AS TEXT) = {value} THEN {number} ELSE {value} END)"
            return f"(CASE WHEN {number} = {value} THEN {number} ELSE {value} END)"
        if new.type == "Float" and old.type in ("Int", "BigInt"):
            # Beyond 2**53 a REAL rounds: such a value becomes a text no affinity reads as a number,
            # which the Float column's CHECK refuses (the rebuild fails instead of rounding it).
            limit = conversions.FLOAT_EXACT
            exact = f"{value} BETWEEN -{limit} AND {limit}"
            return f"(CASE WHEN {exact} THEN CAST({value} AS REAL) ELSE {value} || ' does not fit Float' END)"
        return value

    def rename_index(self, plugin_id: str, table: str, old: str, index: IndexDef) -> list[str]:
        # SQLite cannot rename an index: it is created again under the new name.
        return [f"DROP INDEX {self.quote(old)}", self.create_index(plugin_id, table, index)]

    def alter_column(self, op: planning.AlterColumn, sources: Mapping[str, str] | None = None) -> list[str]:
        # Only an index changed (a field made unique or not): no rebuild.
        if _indexes_only(op) and sources is None:
            drops, creates = self.column_index_changes(op)
            return drops + creates
        return self.rebuild(op.plugin_id, op.before, op.after, sources)

    def enforce_int_range(self, op: planning.EnforceIntRange) -> list[str]:
        # Rebuilt as the spec renders it; reversed, with those columns' CHECKs as the version before
        # the range wrote them (the same conditions, less the range).
        statements = self.rebuild(op.plugin_id, op.table, op.table)
        if op.enforced:
            return statements
        create = statements[0]
        for name in op.columns:
            column = op.table.column(name)
            assert column is not None and column.type == "Int"
            current = f"CHECK ({self.check_condition(column)})"
            older = joined([c for c in self.column_checks(column) if c != _int_range(self.quote(name))])
            assert current in create
            create = create.replace(current, f"CHECK ({older})" if older else "")
        return [create, *statements[1:]]

    def rename_enum_value(self, op: planning.RenameEnumValue) -> list[str]:
        # Values live in the rows (and the enum in each column's CHECK): every table is rebuilt,
        # its rows mapped to the new value.
        statements: list[str] = []
        for before, after in op.tables:
            statements.extend(self.rebuild(op.plugin_id, before, after, self._renamed_values(op, before)))
        return statements

    def _renamed_values(self, op: planning.RenameEnumValue, before: TableDef) -> dict[str, str]:
        """The columns of *before* holding *op*'s enum, each as its value mapped to the new value."""
        return {
            c.name: f"(CASE {self.column_of(_SOURCE, c.name)} WHEN {self.literal(op.old)} "
            f"THEN {self.literal(op.new)} ELSE {self.column_of(_SOURCE, c.name)} END)"
            for c in before.columns
            if c.enum is not None and c.enum.name == op.before.name
        }

    def violation(self, plugin_id: str, before: ColumnDef, after: ColumnDef, row: str = "t") -> str:
        # Exactly what the rebuild would refuse: NULL in a NOT NULL column, and the converted value
        # failing one of the new column's CHECK conditions (a condition that is NULL passes a CHECK,
        # and NOT of it is NULL, not counted either).
        column = self.column_of(row, before.name)
        value = self.convert(column, before, after)
        found = [f"{column} IS NULL"] if not after.nullable else []
        found.extend(f"NOT ({c})" for c in self.column_checks(after, value))
        found.extend(self.rounded_to_float(before, after, row))
        return " OR ".join(found) or "0"

    def as_stored(self, expression: str, type_sql: str) -> str:
        # A CAST to a declared type applies its affinity, not the column's rules ('2024-01-02' AS DATE
        # is 2024); a column stores a value as given, so the value itself is what it would hold.
        return expression

    def restored(self, column: str, backup: naming.PhysicalName, otherwise: str, unchanged: str = "1") -> str:
        """The value of *column* from *backup* for the rebuild's row (:data:`_SOURCE`) of the same id (where
        *unchanged*, a condition on the backup row ``b`` and the row, holds), or *otherwise* for rows the
        backup does not have (inserted after it was taken) or that fail *unchanged*."""
        match = (
            f"FROM {self.qualified(backup)} AS b WHERE {self.column_of('b', 'id')} = {self.column_of(_SOURCE, 'id')}"
        )
        return (
            f"(CASE WHEN EXISTS (SELECT 1 {match} AND {unchanged}) THEN (SELECT {self.column_of('b', column)} {match}) "
            f"ELSE {otherwise} END)"
        )

    def restore_column(self, op: planning.DropColumn, backup: naming.PhysicalName) -> list[str]:
        return self.rebuild(op.plugin_id, op.after, op.before, self._restored_column(op, backup))

    def _restored_column(self, op: planning.DropColumn, backup: naming.PhysicalName) -> dict[str, str]:
        """The dropped column's values from *backup*, as the rebuild adding it back fills it."""
        default = self.default_sql(op.column) or "NULL"
        return {op.column.name: self.restored(op.column.name, backup, default)}

    def restore_altered(self, op: planning.AlterColumn, backup: naming.PhysicalName) -> list[str]:
        reverse = op.reverse()
        assert isinstance(reverse, planning.AlterColumn)
        return self.alter_column(reverse, self._restored_values(op, backup))

    def _restored_values(self, op: planning.AlterColumn, backup: naming.PhysicalName) -> dict[str, str]:
        """The altered column's values as they were, from *backup*, as the rebuild undoing *op* fills it."""
        current = self.convert(self.column_of(_SOURCE, op.new.name), op.new, op.old)
        # Only where the column still holds what the change made of the backed-up value: a value
        # written since has no backup, and stays (converted back).
        made = self.convert(self.column_of("b", op.old.name), op.old, op.new)
        now = self.column_of(_SOURCE, op.new.name)
        value = self.restored(op.old.name, backup, current, f"CAST({made} AS TEXT) IS CAST({now} AS TEXT)")
        return {op.old.name: value}

    # --- connecting, sessions, bootstrap ---

    #: DROP TABLE with foreign keys on deletes every row first, firing ON DELETE CASCADE in other
    #: plugins' tables; with them off, the check before COMMIT refuses what would leave dangling rows.
    migrations_without_foreign_keys = True

    def url_problem(self, url: sa.URL) -> str | None:
        memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
        if memory:
            return (
                "an in-memory SQLite database disappears when the command ends, and the registry with it; "
                "use a file: sqlite:///path.db"
            )
        return None

    def open_problem(self, url: sa.URL) -> str | None:
        if url.query.get("uri") or url.database in (None, "", ":memory:"):
            return None  # a URI filename says itself how it is opened
        path = os.path.abspath(url.database)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            return f"the directory {directory} does not exist: create it first, or fix the path"
        if os.path.isdir(path):
            return f"{path} is a directory, not a SQLite database file: name a file in it"
        return None

    unreachable_hint = (
        "the SQLite file cannot be opened: check that it is a SQLite database and that you may read and write it "
        "and its directory"
    )
    unreachable_code = "ES407"

    def create_engine(self, url: sa.URL, pre_ping: bool = True) -> sa.Engine:  # NullPool: nothing to ping
        engine = sa.create_engine(
            url,
            poolclass=sa.pool.NullPool,
            query_cache_size=limits.SQL_QUERY_CACHE_SIZE,
            connect_args={"timeout": limits.SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        sa.event.listen(engine, "connect", self._on_connect)
        sa.event.listen(engine, "begin", _begin)
        return engine

    def created_by_connecting(self, url: sa.URL) -> bool:
        # A URI filename (file:...?uri=true) says itself how it is opened.
        return not url.query.get("uri") and url.database is not None and not os.path.exists(url.database)

    def empty_engine(self) -> sa.Engine:
        return self.create_engine(sa.engine.make_url("sqlite://"))

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        # isolation_level=None: the driver must not BEGIN behind our back (it would skip DDL).
        dbapi_connection.isolation_level = None
        # Only for databases created by versions before the GLOB translation: their CHECKs still say
        # "col REGEXP '...'" until a rebuild rewrites the table. New tables never use REGEXP
        # (pattern_condition), so other clients need no function for them.
        dbapi_connection.create_function("REGEXP", 2, _regexp, deterministic=True)
        for statement in self.session_setup():
            dbapi_connection.execute(statement)

    def server_version(self, conn: sa.Connection) -> str:
        return "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())

    def set_foreign_keys(self, dbapi_connection: Any, enabled: bool) -> None:
        # Must be set outside a transaction; SQLite ignores it inside one.
        dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")

    def execute(self, cursor: Any, statements: Sequence[str], foreign_keys_off: bool) -> None:
        super().execute(cursor, statements, foreign_keys_off)
        if foreign_keys_off:
            violations = cursor.execute("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise sa.exc.IntegrityError(
                    "PRAGMA foreign_key_check",
                    None,
                    Exception(f"FOREIGN KEY constraint failed after the migration: {violations[:5]}"),
                )

    def plugin_tables(self, inspector: sa.Inspector, plugin_id: str) -> list[str]:
        prefix = f"{naming.plugin_schema(plugin_id)}__"
        return sorted(t for t in inspector.get_table_names() if t.startswith(prefix))

    def registry_exists_query(self) -> str:
        return (
            "SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table' "
            "AND name IN ('extension_schemas', 'extension_migrations')"
        )

    def session_setup(self) -> list[str]:
        return ["PRAGMA foreign_keys = ON", f"PRAGMA busy_timeout = {limits.SQLITE_BUSY_TIMEOUT_MS}"]

    def row_violation(self, error: BaseException) -> Violation | None:
        original = getattr(error, "orig", error)
        if isinstance(original, OverflowError):
            return Violation("invalid", detail=str(original))
        if not isinstance(original, sqlite3.IntegrityError):
            return None
        message = str(original)
        kind, _, rest = message.partition(" constraint failed")
        rest = rest.lstrip(": ")
        match kind:
            case "UNIQUE":  # "UNIQUE constraint failed: t.a, t.b"
                return Violation("unique", None, tuple(c.strip().rpartition(".")[2] for c in rest.split(",")), message)
            case "NOT NULL":
                return Violation("not_null", None, (rest.rpartition(".")[2],), message)
            case "CHECK":
                return Violation("check", rest or None, (), message)
            case "FOREIGN KEY":
                return Violation("foreign_key", None, (), message)
        return Violation("invalid", detail=message)

    def classify(self, error: BaseException) -> ErrorClass:
        original = getattr(error, "orig", error)
        message = str(original).lower()
        if isinstance(original, sqlite3.OperationalError):
            if "locked" in message or "busy" in message:
                return ErrorClass.RETRYABLE
            if "unable to open" in message or "disk i/o" in message:
                return ErrorClass.UNREACHABLE
        if isinstance(original, sqlite3.DatabaseError) and "file is not a database" in message:
            return ErrorClass.UNREACHABLE  # not a SQLite file: the same remedy as one that cannot be opened
        return ErrorClass.PERMANENT


def _op_table(op: planning.Op) -> str | None:
    """The logical table an operation changes, where it changes one."""
    table = getattr(op, "table", None) or getattr(op, "before", None)
    if isinstance(table, str):
        return table
    name = getattr(table, "name", None)
    return name if isinstance(name, str) else None


def _int_range(quoted: str) -> str:
    """Int's range: an SQLite integer holds 64 bits whatever the declared type (BigInt's range is the storage's)."""
    low, high = conversions.INT_RANGE
    return f"{quoted} BETWEEN {low} AND {high}"


def _indexes_only(op: planning.AlterColumn) -> bool:
    """Whether only the column's uniqueness changed: its index, nothing in the table's DDL."""
    return set(op.changed()) <= {"unique"}


def _begin(conn: sa.Connection) -> None:
    # Reads take no write lock (they also work on a read-only file); migrations take it up front.
    conn.exec_driver_sql("BEGIN" if conn.info.get(READ_ONLY) else "BEGIN IMMEDIATE")


def _regexp(pattern: str | None, value: Any) -> bool | None:
    # SQLite calls regexp(pattern, value) for "value REGEXP pattern" (older databases' CHECKs); NULL
    # stays unknown as in SQL.
    if pattern is None or value is None:
        return None
    return portable_regex.search(pattern, str(value))


def _rebuilt(plan: planning.Plan, rebuilds: Callable[[planning.Op], bool]) -> list[TableDef]:
    """The tables *plan* rebuilds, as they are before the plan runs (a table renamed earlier in the
    plan under its old name, with its old columns)."""
    origin: dict[str, TableDef] = {}
    rebuilt: dict[str, TableDef] = {}
    for op in plan.ops:
        touched: list[TableDef] = []
        match op:
            case planning.RenameTable():
                origin[op.after.name] = origin.pop(op.before.name, op.before)
                continue
            case planning.ChangeEnumValues() | planning.RenameEnumValue():
                touched = [before for before, _after in op.tables]
            case planning.AddColumn() | planning.DropColumn() | planning.AlterColumn() | planning.RenameColumn():
                touched = [op.before]
            case planning.EnforceIntRange():
                touched = [op.table]
        for table in touched:
            first = origin.setdefault(table.name, table)
            if rebuilds(op):
                rebuilt[first.name] = first
    return list(rebuilt.values())


def _first_rebuilds(
    plan: planning.Plan, rebuilds: Callable[[planning.Op], bool]
) -> list[tuple[planning.Op, TableDef, dict[str, ColumnDef], set[str]]]:
    """The first operation of *plan* rebuilding each existing table, with the table as it is before
    the plan, and the columns that rebuild creates of its columns (by their names before the plan).

    The steps after it on the same table join that rebuild (:class:`_Batch`) until one renders the
    pending rebuilds (a table renamed or dropped, raw SQL): the fourth item names the columns those
    steps drop or make other than Int, which the rebuild does not create as Ints."""
    origin: dict[str, TableDef] = {}  # current name -> the table before the plan
    renamed: dict[str, dict[str, str]] = {}  # current table -> current column -> its name before the plan
    created: set[str] = set()
    done: dict[str, set[str]] = {}  # the table before the plan -> its columns not created as Ints
    batched = True
    found: list[tuple[planning.Op, TableDef, dict[str, ColumnDef], set[str]]] = []
    for op in plan.ops:
        pairs: list[tuple[TableDef, TableDef]] = []
        match op:
            case planning.CreateTable():
                created.add(op.table.name)
            case planning.RunSql() | planning.DropTable():
                batched = False
            case planning.RenameTable():
                batched = False
                origin[op.after.name] = origin.pop(op.before.name, op.before)
                renamed[op.after.name] = renamed.pop(op.before.name, {})
                if op.before.name in created:
                    created.add(op.after.name)
            case planning.RenameColumn():
                origin.setdefault(op.before.name, op.before)
                columns = renamed.setdefault(op.after.name, {})
                columns[op.new] = columns.pop(op.old, op.old)
            case planning.ChangeEnumValues() | planning.RenameEnumValue():
                pairs = list(op.tables)
            case planning.AddColumn() | planning.DropColumn() | planning.AlterColumn():
                pairs = [(op.before, op.after)]
            case planning.EnforceIntRange():
                pairs = [(op.table, op.table)]
        for before, after in pairs:
            first = origin.setdefault(before.name, before)
            names = renamed.get(before.name, {})
            if first.name in done and batched:
                for column in before.columns:
                    now = after.column(column.name)
                    if now is None or now.type != "Int":
                        done[first.name].add(names.get(column.name, column.name))
            if before.name in created or first.name in done or not rebuilds(op):
                continue
            kept = {names.get(c.name, c.name): c for c in after.columns if before.column(c.name) is not None}
            done[first.name] = set()
            found.append((op, first, kept, done[first.name]))
    return found


def _index_names(dialect: SqliteDialect, plan: planning.Plan) -> set[str]:
    """Every index name extschema gives the plan's tables, in any state the plan passes through."""
    tables: list[TableDef] = []
    names: set[str] = set()
    for op in plan.ops:
        match op:
            case planning.CreateTable() | planning.DropTable() | planning.EnforceIntRange():
                tables.append(op.table)
            case planning.ChangeEnumValues() | planning.RenameEnumValue():
                tables.extend(t for pair in op.tables for t in pair)
            case planning.AddColumn() | planning.DropColumn() | planning.AlterColumn() | planning.RenameColumn():
                tables.extend((op.before, op.after))
            case planning.RenameTable():
                tables.extend((op.before, op.after))
            case planning.CreateIndex() | planning.DropIndex():
                names.add(dialect.index_name(plan.plugin_id, op.table, op.index))
    for table in tables:
        for index in (*table.column_indexes(), *table.unique_together, *table.indexes):
            names.add(dialect.index_name(plan.plugin_id, table.name, index))
    return names


#: A single-quoted literal (left as it is), or a column of the rebuild's source table (group 1: its name).
_LITERAL_OR_COLUMN = re.compile(rf"'(?:[^']|'')*'|(?<![\w\".]){_SOURCE}\.\"((?:[^\"]|\"\")*)\"")


@dataclasses.dataclass
class _Pending:
    """A table's rebuild not yet rendered: its shape after the steps so far (*final*), and each of
    its columns as an SQL expression over the table as it still is (aliased :data:`_SOURCE`; None:
    not copied, it takes its default), with index statements of steps after the last that changed
    *final* (run after the rebuild)."""

    plugin_id: str
    final: TableDef
    values: dict[str, str | None]
    then: list[str]


class _Batch:
    """Statements of a sequence of steps, with each table's rebuilds collected into one.

    A step rebuilding a table starts (or joins) its pending rebuild: the new shape is the last
    step's, each column's value the composition of the steps' mappings (renames, conversions,
    values renamed, values restored). Later steps changing the table in place join it too. Backups
    read the rows through the pending mappings, as the steps before them left the rows. What could
    depend on a table's shape (a table renamed, raw SQL) renders the pending rebuilds first.
    """

    def __init__(self, dialect: SqliteDialect) -> None:
        self.dialect = dialect
        self.out: list[str] = []
        self.pending: dict[str, _Pending] = {}

    def sql(self, statements: Sequence[str]) -> None:
        self.out.extend(statements)

    def rebuild(self, plugin_id: str, before: TableDef, after: TableDef, sources: Mapping[str, str]) -> None:
        assert before.name == after.name
        group = self.pending.get(before.name)
        if group is not None and [c.name for c in group.final.columns] != [c.name for c in before.columns]:
            self.flush(before.name)  # not the shape the steps before left: no guessing
            group = None
        if group is None:
            columns = {c.name: self.dialect.column_of(_SOURCE, c.name) for c in before.columns}
            group = self.pending[before.name] = _Pending(plugin_id, before, dict(columns), [])
        values: dict[str, str | None] = {}
        for column in after.columns:
            old = before.column(column.name)
            if column.name in sources:
                values[column.name] = self._composed(group, before, sources[column.name])
            elif old is None or (group.values.get(column.name) is None and old == column):
                values[column.name] = None
            else:
                values[column.name] = self.dialect.convert(self._value(group, before, column.name), old, column)
        group.values, group.final, group.then = values, after, []

    def in_place(
        self, plugin_id: str, before: TableDef, after: TableDef, sources: Mapping[str, str], statements: list[str]
    ) -> None:
        if before.name in self.pending:
            self.rebuild(plugin_id, before, after, sources)
        else:
            self.out.extend(statements)

    def index(self, table: str, statements: list[str]) -> None:
        group = self.pending.get(table)
        (self.out if group is None else group.then).extend(statements)

    def backups(self, plugin_id: str, found: Sequence[_Backup]) -> None:
        for backup in found:
            group = self.pending.get(backup.table)
            if group is not None and backup.column is None:  # whole rows, as the steps before left them
                self.flush(backup.table)
                group = None
            column = backup.column
            plain = self.dialect.column_of(_SOURCE, column.name) if column is not None else None
            if group is None or column is None or group.values.get(column.name) == plain:
                self.out.extend(self.dialect._copy(plugin_id, backup))
                continue
            value = self._value(group, group.final, column.name)
            self.out.append(self.dialect.backup_through(plugin_id, backup.name, backup.table, column.name, value))

    def flush(self, table: str) -> None:
        group = self.pending.pop(table, None)
        if group is None:
            return
        copies = {name: value for name, value in group.values.items() if value is not None}
        self.out.extend(self.dialect.rebuild_statements(group.plugin_id, group.final, copies))
        self.out.extend(group.then)

    def flush_all(self) -> None:
        for table in list(self.pending):
            self.flush(table)

    def finish(self) -> list[str]:
        self.flush_all()
        return self.out

    def _value(self, group: _Pending, table: TableDef, name: str) -> str:
        """Column *name* of *table* (the pending shape) as an expression over the table as it is."""
        if name == "id":
            return self.dialect.column_of(_SOURCE, "id")
        found = group.values.get(name)
        if found is not None:
            return found
        column = table.column(name)  # added by a step not carried out yet: its default
        return (self.dialect.default_sql(column) if column is not None else None) or "NULL"

    def _composed(self, group: _Pending, before: TableDef, expression: str) -> str:
        """*expression* (over the table as *before*) over the table as it is."""

        def column(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return match.group(0)
            value = self._value(group, before, match.group(1).replace('""', '"'))
            return value if value == match.group(0) else f"({value})"

        return _LITERAL_OR_COLUMN.sub(column, expression)
