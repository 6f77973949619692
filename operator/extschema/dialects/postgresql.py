"""PostgreSQL: one schema per plugin, native ENUM types, advisory locks, SQLSTATE classification."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from extschema import limits, naming, planning
from extschema.dialects.base import Dialect, ErrorClass
from extschema.naming import PhysicalName
from extschema.planning import ColumnDef, TableDef

# psycopg classifies by SQLSTATE, not by exception class (see docs/database.md).
_REGISTRY_LOCK = (0x45585453, 0)
# What a plugin's own role may do with the objects in its schema (engine.roles): CRUD, identity sequences.
_ROLE_RIGHTS = (("TABLES", "SELECT, INSERT, UPDATE, DELETE"), ("SEQUENCES", "USAGE, SELECT"))
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300"}


class PostgresDialect(Dialect):
    name = "postgresql"

    def __init__(self, core_schema: str = "public") -> None:
        self.namer = naming.Namer("schema", core_schema)
        self.sa_dialect = pg.psycopg.dialect()  # type: ignore[no-untyped-call]

    def backup_name(self, plugin_id: str, table: str, tag: str) -> PhysicalName:
        return PhysicalName(naming.BACKUP_SCHEMA, naming.fit(f"{plugin_id}__{table}__{tag}"))

    def backup_column(self, column: ColumnDef) -> str:
        # A backup column of the plugin's enum type would keep the type alive (DROP TYPE fails).
        name = self.quote(column.name)
        return f"{name}::text AS {name}" if column.enum is not None else name

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

    def change_enum_values(self, op: planning.ChangeEnumValues) -> list[str]:
        ref = self.enum_ref(op.plugin_id, op.after.name)
        if not op.removed:
            statements = []
            for value in op.added:
                position = op.after.values.index(value)
                following = next((v for v in op.after.values[position + 1 :] if v in op.before.values), None)
                where = f" BEFORE {self.literal(following)}" if following is not None else ""
                statements.append(f"ALTER TYPE {ref} ADD VALUE {self.literal(value)}{where}")
            return statements
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

    def id_column_sql(self) -> str:
        return "id BIGINT GENERATED BY DEFAULT AS IDENTITY"

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

    def create_engine(self, url: sa.URL) -> sa.Engine:
        return sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
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
            if broken or isinstance(error, sa.exc.OperationalError | ConnectionError | OSError):
                return ErrorClass.UNREACHABLE
            return ErrorClass.PERMANENT
        if sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03", "53300"}:
            return ErrorClass.UNREACHABLE
        if sqlstate in _RETRYABLE_SQLSTATES:
            return ErrorClass.RETRYABLE
        return ErrorClass.PERMANENT

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

    def drop_role(self, role: str) -> list[str]:
        return [f"DROP ROLE IF EXISTS {self.quote(role)}"]


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when SQLAlchemy wraps it."""
    seen: BaseException | None = error
    while seen is not None:
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None
