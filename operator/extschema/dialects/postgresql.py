"""PostgreSQL: one schema per plugin, native ENUM types, advisory locks, SQLSTATE classification."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from extschema import limits, naming, planning
from extschema.dialects.base import BatchFailed, Blocker, Dialect, ErrorClass, Violation
from extschema.naming import PhysicalName
from extschema.planning import ColumnDef, IndexDef, TableDef, conversions
from extschema.problems import Problem

# psycopg classifies by SQLSTATE, not by exception class (see docs/database.md).
_REGISTRY_LOCK = (0x45585453, 0)
# What a plugin's own role may do with the objects in its schema (engine.roles): CRUD, identity sequences.
_ROLE_RIGHTS = (("TABLES", "SELECT, INSERT, UPDATE, DELETE"), ("SEQUENCES", "USAGE, SELECT"))
_ALTER_TYPE = re.compile(r"\bALTER COLUMN \S+ (SET DATA )?TYPE\b", re.IGNORECASE)
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300"}


class PostgresDialect(Dialect):
    name = "postgresql"

    def __init__(self, core_schema: str = "public") -> None:
        self.namer = naming.Namer("schema", core_schema)
        self.sa_dialect = pg.psycopg.dialect()  # type: ignore[no-untyped-call]

    def backup_name(self, plugin_id: str, table: str, tag: str) -> PhysicalName:
        return PhysicalName(naming.BACKUP_SCHEMA, naming.fit(f"{plugin_id}__{table}__{tag}"))

    def backup_column(self, column: ColumnDef, row: str) -> str:
        # A backup column of the plugin's enum type would keep the type alive (DROP TYPE fails).
        value = self.column_of(row, column.name)
        return f"{value}::text AS {self.quote(column.name)}" if column.enum is not None else value

    def detach_backup(self, plugin_id: str, backup: PhysicalName) -> list[str]:
        # A backup column of one of the plugin's types would keep the type alive (DROP TYPE fails).
        # The columns are found when it runs, not from the spec: a DBA may have dropped an enum
        # column (or its type, with CASCADE) or added one of the plugin's types by hand.
        table = self.qualified(backup)
        namespace = self.literal(naming.plugin_schema(plugin_id))
        alter = self.literal(f"ALTER TABLE {table} ALTER COLUMN %1$I TYPE text USING %1$I::text")
        return [
            "DO $$DECLARE c record; BEGIN FOR c IN SELECT attname FROM pg_attribute "
            f"WHERE attrelid = {self.literal(table)}::regclass AND attnum > 0 AND NOT attisdropped "
            f"AND atttypid IN (SELECT oid FROM pg_type WHERE typnamespace = {namespace}::regnamespace) "
            f"LOOP EXECUTE format({alter}, c.attname); END LOOP; END$$"
        ]

    def create_namespace(self, plugin_id: str) -> list[str]:
        return [f"CREATE SCHEMA {self.quote(naming.plugin_schema(plugin_id))}"]

    def drop_namespace(self, plugin_id: str) -> list[str]:
        # RESTRICT: anything extschema did not create in the schema stops the drop. IF EXISTS: a
        # schema a DBA dropped by hand must not make the plugin impossible to remove.
        return [f"DROP SCHEMA IF EXISTS {self.quote(naming.plugin_schema(plugin_id))} RESTRICT"]

    def enum_ref(self, plugin_id: str, enum: str) -> str:
        return self.qualified(self.namer.enum_type(plugin_id, enum))

    def create_enum(self, op: planning.CreateEnum) -> list[str]:
        values = ", ".join(self.literal(v) for v in op.enum.values)
        return [f"CREATE TYPE {self.enum_ref(op.plugin_id, op.enum.name)} AS ENUM ({values})"]

    def drop_enum(self, op: planning.DropEnum) -> list[str]:
        # IF EXISTS: a type dropped by hand (DROP TYPE ... CASCADE) must not stop a delete.
        return [f"DROP TYPE IF EXISTS {self.enum_ref(op.plugin_id, op.enum.name)}"]

    def hand_made_problems(self, conn: sa.Connection, plan: planning.Plan) -> list[Problem]:
        # ALTER COLUMN ... TYPE (a type change, an enum losing values) fails on a column a view or rule
        # reads (0A000) — made outside extschema, which never makes views: named up front instead.
        problems = []
        conversions, known = self._conversions(plan)
        retyped: dict[str, set[str]] = {}
        for _, table, column in conversions:
            retyped.setdefault(table, set()).add(column)
        for table, columns in retyped.items():
            names = ", ".join(self.literal(c) for c in sorted(columns))
            found = (
                conn.exec_driver_sql(
                    "SELECT DISTINCT CASE v.relkind WHEN 'm' THEN 'materialized view ' WHEN 'v' THEN 'view ' "
                    "ELSE 'rule on ' END || quote_ident(n.nspname) || '.' || quote_ident(v.relname) "
                    "FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
                    "JOIN pg_namespace n ON n.oid = v.relnamespace "
                    "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
                    f"WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass("
                    f"{self.literal(self.table_ref(plan.plugin_id, table))}) AND v.oid <> d.refobjid "
                    f"AND a.attname IN ({names}) ORDER BY 1"
                )
                .scalars()
                .all()
            )
            if found:
                problems.append(
                    Problem(
                        "ES301",
                        f"table {table}",
                        f"this change converts column(s) {', '.join(sorted(columns))} of table {table} to a new "
                        f"type, which PostgreSQL refuses while a view or rule reads them: {', '.join(found)} "
                        "(made outside extschema); save its definition (pg_get_viewdef), drop it, apply, and "
                        "create it again",
                    )
                )
        for enum in sorted({enum for enum, _, _ in conversions if enum is not None}):
            problems.extend(self._type_users(conn, plan.plugin_id, enum, known))
        return problems

    def _type_users(self, conn: sa.Connection, plugin_id: str, enum: str, known: set[tuple[str, str]]) -> list[Problem]:
        """ES301 naming what uses the enum type *enum* besides the plan's *known* columns (and their
        defaults) and views (named above): a new type is swapped in and the old one dropped, which they stop."""
        ours = " OR ".join(
            f"(a.attrelid = to_regclass({ref}) AND a.attname = {self.literal(c)})"
            for t, c in sorted(known)
            if (ref := self.literal(self.table_ref(plugin_id, t)))
        )
        found = (
            conn.exec_driver_sql(
                "SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d "
                "LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid "
                "LEFT JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid "
                "WHERE d.refclassid = 'pg_type'::regclass "
                f"AND d.refobjid = to_regtype({self.literal(self.enum_ref(plugin_id, enum))}) "
                "AND d.deptype = 'n' AND COALESCE(c.relkind, 'r') NOT IN ('v', 'm') "
                "AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = COALESCE(c.oid, ad.adrelid) "
                f"AND a.attnum = COALESCE(ad.adnum::int4, d.objsubid) AND ({ours or 'false'})) ORDER BY 1"
            )
            .scalars()
            .all()
        )
        if not found:
            return []
        return [
            Problem(
                "ES301",
                f"enum {enum}",
                f"PostgreSQL cannot remove a value from enum {enum} in place: a new type is swapped in for the "
                f"plugin's columns and the old one dropped, which fails while something made outside extschema "
                f"uses it: {', '.join(found)}; back it up and drop it (or change it not to use the type), "
                "apply, and create it again",
            )
        ]

    def _conversions(self, plan: planning.Plan) -> tuple[list[tuple[str | None, str, str]], set[tuple[str, str]]]:
        """The columns whose type *plan* changes, as (the enum type swapped for a new one, or None; table;
        column), named as before the plan runs (renames earlier in it undone); and every (table, column)
        the plan knows, under any of its names (a column it drops before swapping a type is its own)."""
        tables: dict[str, str] = {}  # name in the plan -> name before it
        columns: dict[tuple[str, str], str] = {}
        found: list[tuple[str | None, str, str]] = []
        known: set[tuple[str, str]] = set()

        def add(enum: str | None, table: str, column: str) -> None:
            origin = tables.get(table, table)
            found.append((enum, origin, columns.get((origin, column), column)))

        for op in plan.ops:
            for table in _tables_of(op):
                for column in table.columns:
                    known.update({(table.name, column.name), (tables.get(table.name, table.name), column.name)})
            match op:
                case planning.RenameTable():
                    tables[op.after.name] = tables.pop(op.before.name, op.before.name)
                case planning.RenameColumn():
                    origin = tables.get(op.after.name, op.after.name)
                    columns[(origin, op.new)] = columns.pop((origin, op.old), op.old)
                case planning.AlterColumn() if self.type_sql(op.plugin_id, op.old) != self.type_sql(
                    op.plugin_id, op.new
                ):
                    add(None, op.before.name, op.old.name)
                case planning.ChangeEnumValues() if op.removed:
                    for before, _ in op.tables:
                        for column in before.columns:
                            if column.enum is not None and column.enum.name == op.before.name:
                                add(op.before.name, before.name, column.name)
        return found, known

    def change_enum_values(self, op: planning.ChangeEnumValues) -> list[str]:
        ref = self.enum_ref(op.plugin_id, op.after.name)
        if not op.removed:
            return self._add_enum_values(op, "")
        # PostgreSQL has no DROP VALUE: swap in a new type. Rows still using a removed value
        # make the cast fail, so nothing is lost silently.
        old_name = naming.fit(f"{op.after.name}__old")
        old_ref = self.qualified(PhysicalName(naming.plugin_schema(op.plugin_id), old_name))
        values = ", ".join(self.literal(v) for v in op.after.values)
        statements = [
            f"ALTER TYPE {ref} RENAME TO {self.quote(old_name)}",
            f"CREATE TYPE {ref} AS ENUM ({values})",
        ]
        for _, table in op.tables:
            table_ref = self.table_ref(op.plugin_id, table.name)
            for column in table.columns:
                if column.enum is None or column.enum.name != op.after.name:
                    continue
                name = self.quote(column.name)
                default = self.default_sql(column)
                if default is not None:
                    statements.append(f"ALTER TABLE {table_ref} ALTER COLUMN {name} DROP DEFAULT")
                statements.append(f"ALTER TABLE {table_ref} ALTER COLUMN {name} TYPE {ref} USING {name}::text::{ref}")
                if default is not None:
                    statements.append(f"ALTER TABLE {table_ref} ALTER COLUMN {name} SET DEFAULT {default}")
        statements.append(f"DROP TYPE {old_ref}")
        return statements

    def _add_enum_values(self, op: planning.ChangeEnumValues, if_not_exists: str) -> list[str]:
        ref = self.enum_ref(op.plugin_id, op.after.name)
        statements = []
        for value in op.added:
            position = op.after.values.index(value)
            following = next((v for v in op.after.values[position + 1 :] if v in op.before.values), None)
            where = f" BEFORE {self.literal(following)}" if following is not None else ""
            statements.append(f"ALTER TYPE {ref} ADD VALUE {if_not_exists}{self.literal(value)}{where}")
        return statements

    # --- phases: new enum values before the transaction, concurrent index builds after it ---

    def runs_before(self, op: planning.Op, plan: planning.Plan) -> bool:
        # A label added in a transaction cannot be used in it (55P04): a default, a cast or a row
        # of this migration would fail. Committed first, it can. Not when the plan also renames a
        # label of the same type: the BEFORE position may name the label only the rename creates.
        if not isinstance(op, planning.ChangeEnumValues) or op.removed or not op.added:
            return False
        renamed = (o for o in plan.ops if isinstance(o, planning.RenameEnumValue))
        return not any(o.after.name == op.after.name for o in renamed)

    def render_before(self, op: planning.Op) -> list[str]:
        assert isinstance(op, planning.ChangeEnumValues)
        return self._add_enum_values(op, "IF NOT EXISTS ")

    def lock_tables(self, plugin_id: str, tables: Sequence[str]) -> list[str]:
        # The mode ALTER COLUMN takes: taken before the count, it waits for open writers to end.
        if not tables:
            return []
        names = ", ".join(self.table_ref(plugin_id, t) for t in tables)
        return [f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"]

    def concurrent_index(self, index: IndexDef) -> bool:
        # A unique index stays in the transaction: its rule holds from the moment the migration
        # commits, and a duplicate written meanwhile cannot leave the build failing for good.
        return not index.unique

    def concurrent_candidates(self, plan: planning.Plan) -> list[str]:
        created = {op.table.name for op in plan.ops if isinstance(op, planning.CreateTable)}
        tables: list[str] = []
        for op in plan.ops:
            if isinstance(op, planning.CreateIndex) and self.concurrent_index(op.index):
                tables.append(op.table)
            elif isinstance(op, planning.AddColumn):
                own = (i for i in op.after.column_indexes() if i.columns == (op.column.name,))
                if any(self.concurrent_index(i) for i in own):
                    tables.append(op.after.name)
        return sorted({t for t in tables if t not in created})

    def create_index_concurrently(self, plugin_id: str, table: str, index: IndexDef) -> str:
        # IF NOT EXISTS: running it again (the next apply finishing an interrupted phase) does nothing.
        statement = self.create_index(plugin_id, table, index)
        return statement.replace(" INDEX ", " INDEX CONCURRENTLY IF NOT EXISTS ", 1)

    def concurrent_session(self, lock_key: tuple[int, int], lock_timeout_ms: int) -> list[str]:
        # A session lock on the key migrations take per transaction: they wait while the builds run.
        # No statement_timeout: a concurrent build blocks no writer, and cutting it short would only
        # throw the work away (and fail every later apply the same way). lock_timeout bounds its
        # waits for the table's SHARE UPDATE EXCLUSIVE lock and for older transactions.
        return [
            f"SELECT pg_advisory_lock({int(lock_key[0])}, {int(lock_key[1])})",
            f"SET lock_timeout = {int(lock_timeout_ms)}",
            "SET statement_timeout = 0",
            "SET standard_conforming_strings = on",
        ]

    def invalid_indexes_sql(self, plugin_id: str, building: bool = False) -> str:
        # A failed or killed CREATE INDEX CONCURRENTLY leaves an INVALID index that IF NOT EXISTS
        # would then skip: drop it (concurrently) and build again. One still being built by a
        # session that lost its client is left alone (pg_stat_progress_create_index lists it).
        schema = self.literal(naming.plugin_schema(plugin_id))
        idle = (
            ""
            if building
            else (" AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)")
        )
        return (
            "SELECT 'DROP INDEX CONCURRENTLY IF EXISTS ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE NOT i.indisvalid AND n.nspname = {schema}{idle} ORDER BY 1"
        )

    def create_table(self, plugin_id: str, table: TableDef) -> list[str]:
        # Dropping the table drops its comments: the reverse needs nothing more.
        statements = super().create_table(plugin_id, table)
        table_ref = self.table_ref(plugin_id, table.name)
        if table.description is not None:
            statements.append(f"COMMENT ON TABLE {table_ref} IS {self.literal(table.description)}")
        statements.extend(self.column_comments(table_ref, table.columns))
        return statements

    def column_comments(self, table_ref: str, columns: Sequence[ColumnDef]) -> list[str]:
        return [
            f"COMMENT ON COLUMN {table_ref}.{self.quote(c.name)} IS {self.literal(c.description)}"
            for c in columns
            if c.description is not None
        ]

    def drop_column(self, op: planning.DropColumn) -> list[str]:
        # Indexes and constraints on the column go with it.
        table_ref = self.table_ref(op.plugin_id, op.before.name)
        return [f"ALTER TABLE {table_ref} DROP COLUMN {self.quote(op.column.name)}"]

    # --- columns on existing tables: constraints as NOT VALID, then VALIDATE -------------------

    def add_column(self, op: planning.AddColumn, fill: str | None = None) -> list[str]:
        """ADD COLUMN without its CHECK and FK, which follow as NOT VALID constraints then VALIDATE:
        the scan runs under VALIDATE's lighter lock instead of ADD's ACCESS EXCLUSIVE.

        *fill* (an UPDATE) sets the values before NOT NULL and the constraints apply: a rollback
        bringing a dropped column back from its backup.
        """
        column = op.column
        table_ref = self.table_ref(op.plugin_id, op.after.name)
        later_not_null = fill is not None and not column.nullable and column.default is None
        added = dataclasses.replace(column, nullable=True) if later_not_null else column
        statements = [
            f"ALTER TABLE {table_ref} ADD COLUMN {self.column_sql(op.plugin_id, op.after.name, added, False)}"
        ]
        if fill is not None:
            statements.append(fill)
        if later_not_null:
            statements.append(f"ALTER TABLE {table_ref} ALTER COLUMN {self.quote(column.name)} SET NOT NULL")
        statements.extend(self.add_check(op.plugin_id, op.after.name, column))
        statements.extend(self.add_foreign_key(op.plugin_id, op.after.name, column))
        return statements + self.added_column_extras(op)

    def add_check(self, plugin_id: str, table: str, column: ColumnDef) -> list[str]:
        condition = self.check_condition(column)
        if condition is None:
            return []
        name = self.namer.derived(plugin_id, table, [column.name], "check")
        return self.add_constraint(plugin_id, table, name, f"CHECK ({condition})")

    def add_foreign_key(self, plugin_id: str, table: str, column: ColumnDef) -> list[str]:
        if column.foreign_key is None:
            return []
        name = self.namer.derived(plugin_id, table, [column.name], "fkey")
        key = f"FOREIGN KEY ({self.quote(column.name)}) {self.references_sql(plugin_id, column.foreign_key)}"
        return self.add_constraint(plugin_id, table, name, key)

    def add_constraint(self, plugin_id: str, table: str, name: str, definition: str) -> list[str]:
        table_ref = self.table_ref(plugin_id, table)
        return [
            f"ALTER TABLE {table_ref} ADD CONSTRAINT {self.quote(name)} {definition} NOT VALID",
            f"ALTER TABLE {table_ref} VALIDATE CONSTRAINT {self.quote(name)}",
        ]

    def drop_constraint(self, plugin_id: str, table: str, name: str) -> str:
        return f"ALTER TABLE {self.table_ref(plugin_id, table)} DROP CONSTRAINT {self.quote(name)}"

    def alter_column(self, op: planning.AlterColumn) -> list[str]:
        plugin_id, table, old, new = op.plugin_id, op.after.name, op.old, op.new
        table_ref = self.table_ref(plugin_id, table)
        alter = f"ALTER TABLE {table_ref} ALTER COLUMN {self.quote(new.name)}"
        retyped = self.type_sql(plugin_id, old) != self.type_sql(plugin_id, new)
        # A type change can break a CHECK's or FK's expression: they are dropped and added back.
        rechecked = retyped or self.check_condition(old) != self.check_condition(new)
        rekeyed = old.foreign_key != new.foreign_key or (retyped and old.foreign_key is not None)
        redefaulted = retyped or self.default_sql(old) != self.default_sql(new)
        statements = self.refuse_unfitting(op) if retyped else []
        if rekeyed and old.foreign_key is not None:
            statements.append(
                self.drop_constraint(plugin_id, table, self.namer.derived(plugin_id, table, [old.name], "fkey"))
            )
        if rechecked and self.check_condition(old) is not None:
            statements.append(
                self.drop_constraint(plugin_id, table, self.namer.derived(plugin_id, table, [old.name], "check"))
            )
        drops, creates = self.column_index_changes(op)
        statements.extend(drops)
        if redefaulted and self.default_sql(old) is not None:
            statements.append(f"{alter} DROP DEFAULT")
        if retyped:
            target = self.type_sql(plugin_id, new)
            value = self.quote(old.name)
            source = f"{value}::text" if old.enum is not None or new.enum is not None else value
            statements.append(f"{alter} TYPE {target} USING CAST({source} AS {target})")
        default = self.default_sql(new)
        if redefaulted and default is not None:
            statements.append(f"{alter} SET DEFAULT {default}")
        if old.nullable != new.nullable:
            statements.append(f"{alter} {'DROP' if new.nullable else 'SET'} NOT NULL")
        if rechecked:
            statements.extend(self.add_check(plugin_id, table, new))
        if rekeyed:
            statements.extend(self.add_foreign_key(plugin_id, table, new))
        statements.extend(creates)
        if old.description != new.description:
            comment = self.literal(new.description) if new.description is not None else "NULL"
            statements.append(f"COMMENT ON COLUMN {table_ref}.{self.quote(new.name)} IS {comment}")
        return statements

    def refuse_unfitting(self, op: planning.AlterColumn) -> list[str]:
        """Statements failing the migration when a row holds a value the narrowed type cannot hold.

        ``CAST(... AS VARCHAR(5))`` truncates, a numeric's scale rounds, a double rounds large
        integers — without an error. The table is locked as the ALTER locks it, then searched
        with the data check's own condition: what the check finds, the change refuses, also when
        this SQL runs without the check (a recorded rollback).
        """
        if not conversions.narrows_values(op.old, op.new):
            return []
        table_ref = self.table_ref(op.plugin_id, op.after.name)
        where = f"{op.after.name}.{op.new.name}"
        message = self.literal(
            f"a value of {where} does not fit {op.new.type} as changed ({self.type_sql(op.plugin_id, op.new)}): "
            "converting it would change it; nothing was changed — fix or delete those rows first"
        )
        # NULLs are SET NOT NULL's to refuse, with its own message.
        condition = self.violation(op.plugin_id, op.old, dataclasses.replace(op.new, nullable=True))
        tag = "$extschema$"
        while tag in condition or tag in message:  # a dollar quote the text cannot end early
            tag = f"${tag.strip('$')}_$"
        return [
            *self.lock_tables(op.plugin_id, [op.after.name]),
            f"DO {tag}BEGIN IF EXISTS (SELECT FROM {table_ref} AS t WHERE {condition}) THEN "
            f"RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = {message}; END IF; END{tag}",
        ]

    def rename_table(self, op: planning.RenameTable) -> list[str]:
        # PostgreSQL named the primary key's index and the id's sequence after the table: they
        # follow it, so a new table of the old name gets the plain names (where they were not
        # shortened: PostgreSQL shortens long ones its own way).
        statements = super().rename_table(op)
        schema = naming.plugin_schema(op.plugin_id)
        for kind, suffix in (("INDEX", "pkey"), ("SEQUENCE", "id_seq")):
            old, new = f"{op.before.name}_{suffix}", f"{op.after.name}_{suffix}"
            if max(naming.byte_length(old), naming.byte_length(new)) <= limits.MAX_IDENTIFIER_BYTES:
                old_ref = self.qualified(PhysicalName(schema, old))
                statements.append(f"ALTER {kind} {old_ref} RENAME TO {self.quote(new)}")
        return statements

    def rename_index(self, plugin_id: str, table: str, old: str, index: IndexDef) -> list[str]:
        # Renaming a constraint's index renames the constraint too (and the other way round).
        old_ref = self.qualified(PhysicalName(naming.plugin_schema(plugin_id), old))
        return [f"ALTER INDEX {old_ref} RENAME TO {self.quote(self.index_name(plugin_id, table, index))}"]

    def rename_constraint(self, plugin_id: str, table: str, old: str, new: str) -> list[str]:
        return [
            f"ALTER TABLE {self.table_ref(plugin_id, table)} RENAME CONSTRAINT {self.quote(old)} TO {self.quote(new)}"
        ]

    def rename_enum_value(self, op: planning.RenameEnumValue) -> list[str]:
        # Rows store the value's identity, not its label: they read the new label at once.
        ref = self.enum_ref(op.plugin_id, op.after.name)
        return [f"ALTER TYPE {ref} RENAME VALUE {self.literal(op.old)} TO {self.literal(op.new)}"]

    def drop_index(self, plugin_id: str, table: str, index: IndexDef) -> str:
        if not index.unique:
            return super().drop_index(plugin_id, table, index)
        # A unique constraint written in CREATE TABLE is a constraint owning its index (DROP INDEX
        # refuses it); one added to an existing table is a unique index. Either is dropped here.
        name = self.index_name(plugin_id, table, index)
        schema = naming.plugin_schema(plugin_id)
        index_ref = self.qualified(PhysicalName(schema, name))
        return (
            "DO $$BEGIN IF EXISTS (SELECT FROM pg_constraint WHERE conname = "
            f"{self.literal(name)} AND connamespace = {self.literal(schema)}::regnamespace) THEN "
            f"{self.drop_constraint(plugin_id, table, name)}; ELSE DROP INDEX {index_ref}; END IF; END$$"
        )

    # --- data checks ---------------------------------------------------------------------------

    def violation(self, plugin_id: str, before: ColumnDef, after: ColumnDef, row: str = "t") -> str:
        # The old value is read as text or as numeric (never cast to the new type: a failing cast
        # would fail the count), guarded by a pattern where a text must first read as a number.
        column = self.column_of(row, before.name)
        castable = self.castable(f"{column}::text", before, after)
        if after.type in _NUMERIC:
            if before.type in _NUMERIC:
                value = f"{column}::numeric"
            elif before.type == "Boolean":
                value = f"{column}::int::numeric"
            else:
                value = f"(CASE WHEN {castable} THEN btrim({column}::text)::numeric END)"
        elif after.type in _TEXTUAL:
            value = f"{column}::text"
        else:
            value = column
        found: list[str] = [f"{column} IS NULL"] if not after.nullable else []
        if castable is not None:
            found.append(f"({column} IS NOT NULL AND NOT ({castable}))")
        conditions = [*self.type_conditions(after, value), *self.column_checks(after, value)]
        found.extend(f"NOT ({c})" for c in conditions)
        found.extend(self.rounded_to_float(before, after, row))
        if before.type == after.type == "Decimal" and (after.scale or 0) < (before.scale or 0):
            # numeric(p, s) rounds to its scale without an error: such values are lost, not kept.
            found.append(f"{value} <> round({value}, {after.scale or 0})")
        return " OR ".join(found) or "false"

    def unfit_restore(
        self, plugin_id: str, row: str, backed_up: str, column: ColumnDef, stored: sa.types.TypeEngine[Any] | None
    ) -> str:
        # Assigning rounds a number going into numeric(p, s) to s decimals, into an integer to none,
        # into a double to 17 digits; it cuts trailing spaces going into VARCHAR(n): all silently.
        # The length is counted by violation(); numbers (a number backed up) are compared here.
        found = [super().unfit_restore(plugin_id, row, backed_up, column, stored)]
        quoted = self.column_of(row, backed_up)
        value = f"{quoted}::numeric"
        if isinstance(stored, sa.Numeric | sa.Integer):
            if column.type == "Decimal":
                found.append(f"{value} <> round({value}, {column.scale or 0})")
            elif column.type in ("Int", "BigInt"):
                found.append(f"{value} <> trunc({value})")
            elif column.type == "Float" and not isinstance(stored, sa.Float):
                found.append(f"{value} <> {quoted}::double precision::numeric")
        return " OR ".join(found)

    def castable(self, text: str, before: ColumnDef, after: ColumnDef) -> str | None:
        """A condition true when *text* (the old value as text) reads as the new type; None when
        every old value does (or no pattern can tell)."""
        if before.type not in _TEXTUAL or after.type not in _TEXT_PATTERNS:
            return None
        return f"{text} ~* {self.literal(_TEXT_PATTERNS[after.type])}"

    def type_conditions(self, column: ColumnDef, value: str) -> list[str]:
        """Conditions the column's type itself enforces (length, range, enum values) on *value*."""
        match column.type:
            case "String":
                return [f"char_length({value}) <= {column.string_length}"]
            case "Int" | "BigInt":
                low, high = _INTEGER_RANGES[column.type]
                return [f"{value} BETWEEN {low} AND {high}"]
            case "Decimal":
                assert column.precision is not None and column.scale is not None
                digits = column.precision - column.scale
                return [f"abs(round({value}, {column.scale})) < 1{'0' * digits}"]
            case "Enum":
                assert column.enum is not None
                return [f"{value} IN ({', '.join(self.literal(v) for v in column.enum.values)})"]
        return []

    # --- restoring from backups ----------------------------------------------------------------

    def restored_value(self, plugin_id: str, column: ColumnDef, expression: str) -> str:
        return f"CAST({expression} AS {self.type_sql(plugin_id, column)})" if column.enum is not None else expression

    def after_restoring_ids(self, plugin_id: str, table: str) -> list[str]:
        # Rows inserted later must not be given ids the restored rows hold.
        table_ref = self.table_ref(plugin_id, table)
        return [
            f"SELECT setval(pg_get_serial_sequence({self.literal(table_ref)}, 'id'), max({self.quote('id')})) "
            f"FROM {table_ref}"
        ]

    def fill_from(
        self, plugin_id: str, table: str, column: ColumnDef, backup: PhysicalName, since: ColumnDef | None = None
    ) -> str:
        """UPDATE setting *column* of *table* from *backup*, matched by id; with *since* (the column as it
        was changed to), only where it still holds what that change made of the backed-up value."""
        name, target = self.quote(column.name), self.type_sql(plugin_id, column)
        value = f"CAST(b.{name} AS {target})"
        where = f"b.{self.quote('id')} = t.{self.quote('id')}"
        if since is not None:
            # A value written since has no backup: it stays (converted back by the ALTER before this).
            text = "::text" if column.enum is not None or since.enum is not None else ""
            made = f"CAST(CAST(b.{name}{text} AS {self.type_sql(plugin_id, since)}){text} AS {target})"
            where += f" AND CAST(t.{name} AS text) IS NOT DISTINCT FROM CAST({made} AS text)"
        return (
            f"UPDATE {self.table_ref(plugin_id, table)} AS t SET {name} = {value} "
            f"FROM {self.qualified(backup)} AS b WHERE {where}"
        )

    def restore_column(self, op: planning.DropColumn, backup: PhysicalName) -> list[str]:
        reverse = op.reverse()
        assert isinstance(reverse, planning.AddColumn)
        return self.add_column(reverse, fill=self.fill_from(op.plugin_id, op.before.name, op.column, backup))

    def restore_altered(self, op: planning.AlterColumn, backup: PhysicalName) -> list[str]:
        reverse = op.reverse()
        assert isinstance(reverse, planning.AlterColumn)
        return [*self.alter_column(reverse), self.fill_from(op.plugin_id, op.before.name, op.old, backup, op.new)]

    def id_column_sql(self) -> str:
        return "id BIGINT GENERATED BY DEFAULT AS IDENTITY"

    def resume_ids(self, plugin_id: str, table: str, floor: int) -> list[str]:
        # setval, not RESTART: the counter then reads as *floor* (pg_sequence_last_value), and is
        # only raised (rows copied back with their ids may have moved it already).
        sequence = f"pg_get_serial_sequence({self.literal(self.table_ref(plugin_id, table))}, 'id')"
        last = f"COALESCE(pg_sequence_last_value({sequence}::regclass), 0)"
        return [f"SELECT setval({sequence}, greatest({floor}, {last}))"]

    def id_counters(self, conn: sa.Connection, plugin_id: str) -> dict[str, int]:
        # The last id each identity handed out (NULL, left out, before the first).
        query = sa.text(
            "SELECT c.relname, pg_sequence_last_value("
            "pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), 'id')::regclass) "
            "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND EXISTS (SELECT FROM pg_attribute AS a "
            "WHERE a.attrelid = c.oid AND a.attname = 'id' AND a.attidentity <> '' AND NOT a.attisdropped)"
        )
        rows = conn.execute(query, {"schema": naming.plugin_schema(plugin_id)})
        return {str(name): int(last) for name, last in rows if last is not None}

    def native_type(self, plugin_id: str, column: ColumnDef) -> sa.types.TypeEngine[Any] | None:
        match column.type:
            case "Float":
                return sa.Double()
            case "Json":
                return pg.JSONB()
            case "Uuid":
                return sa.Uuid()
            case "Enum":
                assert column.enum is not None
                return pg.ENUM(
                    *column.enum.values,
                    name=column.enum.name,
                    schema=naming.plugin_schema(plugin_id),
                    create_type=False,
                )
        return None

    def type_kind(self, sql_type: sa.types.TypeEngine[Any]) -> str:
        return "jsonb" if isinstance(sql_type, pg.JSONB) else super().type_kind(sql_type)

    def string_literal(self, text: str) -> str:
        # A plain '...' means something else when standard_conforming_strings is off (a backslash
        # escapes, so "\\'" ends the string early). E'...' reads escapes whatever the setting, and
        # recorded SQL may be re-run later on a connection set up differently: text with a
        # backslash is written as E'...' with the backslash doubled, text without one as '...'.
        quoted = text.replace("'", "''")
        if "\\" in text:
            return "E'" + quoted.replace("\\", "\\\\") + "'"
        return f"'{quoted}'"

    def pattern_condition(self, quoted_column: str, pattern: str) -> str:
        return f"{quoted_column} ~ {self.literal(pattern)}"

    # --- connecting, sessions, bootstrap ---

    registry_schema = naming.REGISTRY_SCHEMA

    @classmethod
    def for_database(cls, core_schema: str) -> PostgresDialect:
        return cls(core_schema)

    autocommit_reads = True

    def create_engine(self, url: sa.URL, pre_ping: bool = True) -> sa.Engine:
        return sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_pre_ping=pre_ping,
            query_cache_size=limits.SQL_QUERY_CACHE_SIZE,
            connect_args={"connect_timeout": limits.POSTGRESQL_CONNECT_TIMEOUT_S},
        )

    def bootstrap(self) -> list[str]:
        # Serialises creating the registry itself ("EXTS").
        return [
            f"SELECT pg_advisory_xact_lock({_REGISTRY_LOCK[0]}, {_REGISTRY_LOCK[1]})",
            f"CREATE SCHEMA IF NOT EXISTS {naming.REGISTRY_SCHEMA}",
            f"CREATE SCHEMA IF NOT EXISTS {naming.BACKUP_SCHEMA}",
        ]

    def server_version(self, conn: sa.Connection) -> str:
        return str(conn.exec_driver_sql("SHOW server_version").scalar())

    def plugin_tables(self, inspector: sa.Inspector, plugin_id: str) -> list[str]:
        schema = naming.plugin_schema(plugin_id)
        return [f"{schema}.{t}" for t in sorted(inspector.get_table_names(schema=schema))]

    def plugin_objects(self, inspector: sa.Inspector, plugin_id: str) -> list[str]:
        # The schema outlives its tables (delete --retain, then a DBA drops them; or CREATE SCHEMA by hand).
        schema = naming.plugin_schema(plugin_id)
        if not inspector.has_schema(schema):
            return []
        enums = inspector.get_enums(schema=schema)  # type: ignore[attr-defined]  # PostgreSQL's inspector has it
        types = sorted(f"type {schema}.{e['name']}" for e in enums)
        return [f"schema {schema}", *types, *self.plugin_tables(inspector, plugin_id)]

    #: Statements per round trip (bounded: see :attr:`Dialect.batch_statements`; bench/engine.py measures it).
    batch_statements = 64

    def execute_batch(self, cursor: Any, statements: Sequence[str]) -> None:
        # One simple-query message; its results come back one per statement, so the failed one is
        # known (cursor.execute would only raise the error). Statements rendered by extschema are
        # single statements; a person's raw SQL is never batched (the engine sends it alone).
        if len(statements) <= 1:
            super().execute_batch(cursor, statements)
            return
        from psycopg import errors, generators, pq  # the driver: imported when migrating only

        conn = cursor.connection
        encoding = conn.info.encoding
        conn.pgconn.send_query(";\n".join(statements).encode(encoding))
        results = conn.wait(generators.execute(conn.pgconn))
        for index, result in enumerate(results):
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise BatchFailed(min(index, len(statements) - 1), errors.error_from_result(result, encoding))

    def migration_preamble(
        self, lock_key: tuple[int, int], lock_timeout_ms: int, statement_timeout_ms: int
    ) -> list[str]:
        # The lock first: a lock_timeout set before it would also cut the wait for the lock.
        # Only integers are formatted in, so the statements can go in one round trip.
        return [
            f"SELECT pg_advisory_xact_lock({int(lock_key[0])}, {int(lock_key[1])})",
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}",
            f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}",
            # Literals are rendered setting-independent; this also covers SQL recorded by older versions.
            "SET LOCAL standard_conforming_strings = on",
        ]

    def registry_exists_query(self) -> str:
        return (
            f"SELECT to_regclass('{naming.REGISTRY_SCHEMA}.extension_schemas') IS NOT NULL "
            f"AND to_regclass('{naming.REGISTRY_SCHEMA}.extension_migrations') IS NOT NULL"
        )

    def classify(self, error: BaseException) -> ErrorClass:
        sqlstate = sqlstate_of(error)
        if sqlstate is None:
            broken = isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
            # psycopg's own errors too: the migration steps run on the raw cursor (a connection lost mid-statement)
            lost = sa.exc.OperationalError | psycopg.OperationalError | psycopg.InterfaceError
            if broken or isinstance(error, lost | ConnectionError | OSError):
                return ErrorClass.UNREACHABLE
            return ErrorClass.PERMANENT
        if sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03", "53300"}:
            return ErrorClass.UNREACHABLE
        if sqlstate in _RETRYABLE_SQLSTATES:
            return ErrorClass.RETRYABLE
        return ErrorClass.PERMANENT

    def copies_rows(self, op: planning.Op, statements: Sequence[str]) -> tuple[str, ...]:
        copied = super().copies_rows(op, statements)
        # A VALIDATE scans the table; ALTER COLUMN ... TYPE rewrites it (unless binary-compatible).
        if any(" VALIDATE CONSTRAINT " in s or _ALTER_TYPE.search(s) for s in statements):
            table = getattr(op, "table", None) or getattr(op, "before", None) or getattr(op, "after", None)
            name = table if isinstance(table, str) else getattr(table, "name", None)
            if isinstance(name, str):
                copied = (*copied, name)
        return tuple(dict.fromkeys(copied))

    def session_pid(self, conn: sa.Connection) -> int | None:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        return int(pid) if pid is not None else None

    def blocking_sessions(self, conn: sa.Connection, pid: int) -> list[Blocker]:
        rows = conn.exec_driver_sql(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), "
            "coalesce(extract(epoch FROM clock_timestamp() - a.state_change), 0)::float8, coalesce(a.query, '') "
            f"FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids({int(pid)})) ORDER BY a.pid"
        ).all()
        return [Blocker(int(r[0]), str(r[1]), str(r[2]), float(r[3]), str(r[4])) for r in rows]

    def lock_conflict(self, error: BaseException | None) -> bool:
        # 55P03: lock_timeout fired; 40P01: a deadlock with another session's locks.
        return error is not None and sqlstate_of(error) in {"55P03", "40P01"}

    # --- rows (engine.entities) ---

    def row_violation(self, error: BaseException) -> Violation | None:
        sqlstate = sqlstate_of(error)
        if sqlstate is None or not (sqlstate.startswith("23") or sqlstate.startswith("22")):
            return None
        diag = getattr(getattr(error, "orig", error), "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        detail = str(getattr(diag, "message_detail", None) or "")
        primary = str(getattr(diag, "message_primary", None) or "")
        # "Key (a, b)=(1, 2) already exists." / "... is not present in table ..." / "... is still referenced ..."
        columns: tuple[str, ...] = ()
        if detail.startswith("Key ("):
            columns = tuple(c.strip().strip('"') for c in detail[5 : detail.find(")=")].split(","))
        column = getattr(diag, "column_name", None)
        if column and not columns:
            columns = (str(column),)
        kind = {"23505": "unique", "23503": "foreign_key", "23514": "check", "23502": "not_null"}.get(sqlstate)
        return Violation(kind or "invalid", constraint, columns, detail or primary)

    def usable_plugin_roles(self, conn: sa.Connection, plugin_ids: Collection[str]) -> dict[str, str]:
        database = str(conn.exec_driver_sql("SELECT current_database()").scalar())
        wanted = {self.plugin_role_name(p, database): p for p in plugin_ids}
        if not wanted:
            return {}
        rows = conn.execute(
            sa.text(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(:names) AND pg_has_role(session_user, oid, 'MEMBER')"
            ),
            {"names": list(wanted)},
        )
        return {wanted[name]: name for (name,) in rows}

    def set_role_sql(self, role: str) -> str:
        return f"SET LOCAL ROLE {self.quote(role)}"

    # --- per-plugin database roles (engine.roles): one LOGIN role per plugin, CRUD on its own schema only ---

    def plugin_role_name(self, plugin_id: str, database: str) -> str:
        """Roles are cluster-wide in PostgreSQL: the database name keeps two databases' plugins apart."""
        return naming.fit(f"{naming.plugin_schema(plugin_id)}__{database}")

    def role_exists_query(self, role: str) -> str:
        return f"SELECT 1 FROM pg_roles WHERE rolname = {self.literal(role)}"

    def create_or_alter_role(self, role: str, exists: bool, verifier: str) -> list[str]:
        """LOGIN and nothing else; the password is sent as a SCRAM verifier, so no server log shows it."""
        attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        verb = "ALTER" if exists else "CREATE"
        return [f"{verb} ROLE {self.quote(role)} WITH {attributes} PASSWORD {self.literal(verifier)}"]

    def grant_plugin_role(self, plugin_id: str, role: str) -> list[str]:
        """USAGE on the plugin's schema, CRUD on its tables, its identity sequences; also for tables made later
        by this user (default privileges), so a new version's tables are covered without another grant."""
        schema, grantee = self.quote(naming.plugin_schema(plugin_id)), self.quote(role)
        return [
            f"GRANT USAGE ON SCHEMA {schema} TO {grantee}",
            *(f"GRANT {rights} ON ALL {kind} IN SCHEMA {schema} TO {grantee}" for kind, rights in _ROLE_RIGHTS),
            *(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {rights} ON {kind} TO {grantee}"
                for kind, rights in _ROLE_RIGHTS
            ),
        ]

    def revoke_plugin_role(self, plugin_id: str, role: str) -> list[str]:
        """Everything grant_plugin_role gave, taken back (the schema must still exist)."""
        schema, grantee = self.quote(naming.plugin_schema(plugin_id)), self.quote(role)
        kinds = [kind for kind, _ in _ROLE_RIGHTS]
        return [
            *(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON {kind} FROM {grantee}" for kind in kinds),
            *(f"REVOKE ALL ON ALL {kind} IN SCHEMA {schema} FROM {grantee}" for kind in kinds),
            f"REVOKE ALL ON SCHEMA {schema} FROM {grantee}",
        ]

    def grant_plugin_database(self, role: str, database: str) -> list[str]:
        """CONNECT on the plugin's database, to the role itself: an administrator may then revoke CONNECT
        (and TEMPORARY) from PUBLIC on every database without locking the plugin out of its own."""
        return [f"GRANT CONNECT ON DATABASE {self.quote(database)} TO {self.quote(role)}"]

    def revoke_plugin_database(self, role: str, database: str) -> list[str]:
        return [f"REVOKE ALL ON DATABASE {self.quote(database)} FROM {self.quote(role)}"]

    def role_owns_objects_query(self, role: str) -> str:
        """A row when *role* owns something in the current database (a large object: making one needs no right)."""
        return (
            "SELECT 1 FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid JOIN pg_roles r ON r.oid = d.refobjid "
            f"WHERE db.datname = current_database() AND r.rolname = {self.literal(role)} AND d.deptype = 'o' LIMIT 1"
        )

    def reassign_owned(self, role: str) -> list[str]:
        """What *role* owns in the current database, given to the migrating user (kept, not dropped: a large
        object may hold the plugin's data)."""
        return [f"REASSIGN OWNED BY {self.quote(role)} TO CURRENT_USER"]

    def drop_role(self, role: str) -> list[str]:
        return [f"DROP ROLE IF EXISTS {self.quote(role)}"]


#: Types compared as numbers in data checks, and types read as text.
_NUMERIC = frozenset({"Int", "BigInt", "Decimal", "Float"})
_TEXTUAL = frozenset({"String", "Text", "Enum", "Uuid", "Date", "DateTime", "Json"})
_INTEGER_RANGES = {"Int": (-(2**31), 2**31 - 1), "BigInt": (-(2**63), 2**63 - 1)}
#: Text that casts to the type (PostgreSQL 15 has no pg_input_is_valid), by target type.
_TEXT_PATTERNS = {
    "Int": r"^\s*[-+]?[0-9]+\s*$",
    "BigInt": r"^\s*[-+]?[0-9]+\s*$",
    "Decimal": r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$",
    "Float": r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$",
    "Uuid": r"^\s*\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?\s*$",
    "Date": r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$",
    "Boolean": r"^\s*(t|true|f|false|y|yes|n|no|on|off|1|0)\s*$",
}


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when SQLAlchemy wraps it."""
    seen: BaseException | None = error
    while seen is not None:
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _tables_of(op: planning.Op) -> list[TableDef]:
    """The table definitions *op* carries (before and after where it has both)."""
    match op:
        case planning.CreateTable() | planning.DropTable():
            return [op.table]
        case planning.ChangeEnumValues() | planning.RenameEnumValue():
            return [t for pair in op.tables for t in pair]
        case (
            planning.AddColumn()
            | planning.DropColumn()
            | planning.AlterColumn()
            | planning.RenameColumn()
            | planning.RenameTable()
        ):
            return [op.before, op.after]
    return []
