"""The dialect interface and the rendering both databases share."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect as SADialect

from extschema import planning
from extschema.model import FieldType
from extschema.naming import Namer, PhysicalName
from extschema.planning import ColumnDef, IndexDef, Op, Plan, TableDef
from extschema.problems import Problem
from extschema.validation import rawsql

#: ``Connection.info`` key the engine sets when the next transaction only reads.
READ_ONLY = "extschema_read_only"


class ErrorClass(enum.Enum):
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    UNREACHABLE = "unreachable"


@dataclasses.dataclass(frozen=True)
class RenderedPlan:
    """A plan as SQL: what runs, what undoes it, and how it must run."""

    statements: tuple[str, ...]
    rollback: tuple[str, ...]
    #: SQLite table rebuilds must run with foreign key enforcement off (set outside the transaction).
    foreign_keys_off: bool = False
    #: What the plan asks for that this database will not enforce; the plan still runs (ES5xx).
    warnings: tuple[Problem, ...] = ()

    def script(self, rollback: bool = False) -> str:
        return "".join(f"{s};\n" for s in (self.rollback if rollback else self.statements))


class Dialect:
    """Renders operations for one kind of database. Subclasses fill in the differences."""

    name: str
    namer: Namer
    sa_dialect: SADialect

    # --- plans -------------------------------------------------------------------------------

    def render_plan(self, plan: Plan, backup_tag: str) -> RenderedPlan:
        """Render *plan* and its reverse; data a step would destroy is first copied to a
        backup table named with *backup_tag*."""
        return RenderedPlan(
            statements=tuple(self.render_ops(plan.ops, backup_tag)),
            rollback=tuple(self.render_ops(plan.reverse().ops, backup_tag)),
            foreign_keys_off=self.needs_foreign_keys_off(plan),
            warnings=tuple(self.plan_warnings(plan)),
        )

    def plan_warnings(self, plan: Plan) -> list[Problem]:
        """Rules of *plan* this database leaves unenforced, for the person planning to know."""
        return []

    def render_ops(self, ops: Iterable[Op], backup_tag: str) -> list[str]:
        statements: list[str] = []
        for op in ops:
            statements.extend(self.backup(op, backup_tag))
            statements.extend(self.render(op))
        return statements

    def backup_name(self, plugin_id: str, table: str, tag: str) -> PhysicalName:
        raise NotImplementedError

    def backup(self, op: Op, tag: str) -> list[str]:
        """Copy what a destructive step removes (a table, or a column with the row ids)."""
        match op:
            case planning.DropTable():
                # Whole rows: columns a DBA added by hand are not in the spec, and must not be lost.
                name = self.backup_name(op.plugin_id, op.table.name, tag)
                source = self.table_ref(op.plugin_id, op.table.name)
                create = f"CREATE TABLE {self.qualified(name)} AS SELECT * FROM {source}"
                return [create, *self.detach_backup(op.plugin_id, name)]
            case planning.DropColumn():
                name = self.backup_name(op.plugin_id, f"{op.before.name}__{op.column.name}", tag)
                columns = ", ".join([self.quote("id"), self.backup_column(op.column)])
                source = self.table_ref(op.plugin_id, op.before.name)
                return [f"CREATE TABLE {self.qualified(name)} AS SELECT {columns} FROM {source}"]
        return []

    def backup_column(self, column: ColumnDef) -> str:
        """A column as the backup copies it: by value, depending on nothing that is about to be dropped."""
        return self.quote(column.name)

    def detach_backup(self, plugin_id: str, backup: PhysicalName) -> list[str]:
        """Statements making a whole-row backup depend on nothing of *plugin_id*'s that is about to be dropped."""
        return []

    def needs_foreign_keys_off(self, plan: Plan) -> bool:
        return False

    def render(self, op: Op) -> list[str]:
        match op:
            case planning.CreatePluginNamespace():
                return self.create_namespace(op.plugin_id)
            case planning.DropPluginNamespace():
                return self.drop_namespace(op.plugin_id)
            case planning.CreateEnum():
                return self.create_enum(op)
            case planning.DropEnum():
                return self.drop_enum(op)
            case planning.ChangeEnumValues():
                return self.change_enum_values(op)
            case planning.CreateTable():
                return self.create_table(op.plugin_id, op.table)
            case planning.DropTable():
                return [f"DROP TABLE {self.table_ref(op.plugin_id, op.table.name)}"]
            case planning.AddColumn():
                return self.add_column(op)
            case planning.DropColumn():
                return self.drop_column(op)
            case planning.CreateIndex():
                return [self.create_index(op.plugin_id, op.table, op.index)]
            case planning.DropIndex():
                return [self.drop_index(op.plugin_id, op.table, op.index)]
            case planning.RunSql():
                return self.raw_sql(op)
        raise TypeError(f"no rendering for {type(op).__name__}")

    def raw_sql(self, op: planning.RunSql) -> list[str]:
        """A raw SQL step's statements as written; where tables are prefixed (SQLite), its
        ``ext_<plugin>.<table>`` names become the physical names (:func:`rawsql.statements`)."""
        if self.namer.style == "schema":
            return rawsql.statements(op.sql, op.plugin_id)
        return rawsql.statements(op.sql, op.plugin_id, lambda table: self.table_ref(op.plugin_id, table))

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
        statements.extend(self.column_comments(table_ref, [column]))
        # Unique fields become unique indexes (SQLite cannot ADD a UNIQUE column); FK columns get one too.
        statements.extend(
            self.create_index(op.plugin_id, op.after.name, index)
            for index in op.after.column_indexes()
            if index.columns == (column.name,)
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

    def column_checks(self, column: ColumnDef) -> list[str]:
        """Conditions (SQL text) a column's values must meet, beyond what its type enforces."""
        quoted = self.quote(column.name)
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
        return str(self.sa_dialect.identifier_preparer.quote_identifier(identifier))

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
        return str(self.sa_dialect.identifier_preparer.quote(identifier))

    def soft_qualified(self, name: PhysicalName) -> str:
        preparer = self.sa_dialect.identifier_preparer
        table = self.soft_quote(name.name)
        return f"{preparer.quote_schema(name.schema)}.{table}" if name.schema else table

    def id_column_sql(self) -> str:
        """The surrogate key's column definition."""
        raise NotImplementedError

    def column_sql(self, plugin_id: str, table: str, column: ColumnDef) -> str:
        """A column definition: name, type (compiled by SQLAlchemy's dialect), default, NOT NULL, CHECK."""
        type_sql = self.sa_dialect.type_compiler_instance.process(self.column_type(plugin_id, column))
        text = f"{self.soft_quote(column.name)} {type_sql}"
        default = self.default_sql(column)
        if default is not None:
            text += f" DEFAULT {default}"
        if not column.nullable:
            text += " NOT NULL"
        checks = self.column_checks(column)
        if checks:
            condition = " AND ".join(f"({c})" for c in checks) if len(checks) > 1 else checks[0]
            name = self.namer.derived(plugin_id, table, [column.name], "check")
            text += f" CONSTRAINT {self.soft_quote(name)} CHECK ({condition})"
        return text

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
        items.append(f"PRIMARY KEY ({self.soft_quote('id')})")
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
            target = self.physical_target(plugin_id, fk)
            name = self.namer.derived(plugin_id, table.name, [column.name], "fkey")
            text += (
                f" CONSTRAINT {self.quote(name)} REFERENCES {self.qualified(target)} ({self.quote(fk.column)})"
                f" ON DELETE {_ON_DELETE[fk.on_delete]}"
            )
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

    def create_engine(self, url: sa.URL) -> sa.Engine:
        """The SQLAlchemy engine for *url*, with this database's connection settings."""
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
        """Run a migration's statements on a raw driver cursor inside the open transaction.

        The raw cursor: no parameter parsing, so a '%' in a quoted pattern stays itself. Each
        statement is sent on its own, still in the one transaction: a server notices a killed client
        when it next answers, and rolls back at once. Sent as one batch, PostgreSQL went on running
        the rest for seconds holding the plugin's lock (1,500 tables: 4-5 s after kill -9, against
        0.03 s one by one; ``client_connection_check_interval`` = 1 s gave 0.8-0.9 s and needs 14+).
        """
        for statement in statements:
            cursor.execute(statement)

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

    def logical_type(self, sql_type: sa.types.TypeEngine[Any]) -> FieldType | None:
        """What a reflected core column's type is, in extschema's terms (for FK type checks)."""
        return next((name for kind, name in _LOGICAL_TYPES if isinstance(sql_type, kind)), None)


#: Reflected SQLAlchemy types in extschema's terms, subclasses before their bases (a BigInteger is an
#: Integer, a Float a Numeric, a Text a String): the first that matches wins.
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
