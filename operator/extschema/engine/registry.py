"""The registry: which plugins a database holds (``extension_schemas``), every migration run on them
(``extension_migrations``), with their SQL, rollback SQL and checksums, and the backups those
migrations took before destroying data (``extension_backups``).

The registry is the idempotency record for both the CLI and the operator. Reads never create it:
a database without registry tables simply has no plugins yet, so read-only commands change
nothing and work under a read-only role. Rows a person edited into an unreadable shape are
reported with a code naming the row and how to repair it, never as a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import hashlib
import json
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Protocol

import pydantic
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import limits, model
from extschema.dialects import RenderedPlan
from extschema.engine.connection import Database
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PhysicalName
from extschema.problems import ProblemError


class MigrationKind(enum.StrEnum):
    """What a row of ``extension_migrations`` records (stored, and printed, as its value)."""

    APPLY = "apply"
    #: An apply's ``after`` phase (concurrent index builds), recorded as a migration of its own.
    FINISH = "finish"
    DELETE = "delete"
    UNREGISTER = "unregister"
    REPAIR = "repair"
    RESTORE = "restore"
    #: Objects kept by ``delete --retain`` registered again, unchanged (:mod:`extschema.engine.kinds.adopt`).
    ADOPT = "adopt"


class MigrationStatus(enum.StrEnum):
    """The status of a row of ``extension_migrations`` (stored, and printed, as its value)."""

    PENDING = "pending"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


STATUSES_SCHEMA = ("pending", "active", "failed")
# Plain strings: the CHECK constraint below is written from their repr.
STATUSES_MIGRATION = tuple(s.value for s in MigrationStatus)
#: Kinds of migration that end a plugin's life in the database: later applies start afresh.
ENDING_KINDS = (MigrationKind.DELETE, MigrationKind.UNREGISTER)

#: What a Python-side reading of a hand-edited row can raise (bad JSON, wrong types, NULLs).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, pydantic.ValidationError)


def _keys(unique: bool) -> tuple[sa.Column[str], sa.Column[str]]:
    """The row id and the plugin id every registry table starts with (one row per plugin, or indexed)."""
    return (
        sa.Column("id", sa.String(limits.UUID_LENGTH), primary_key=True),
        sa.Column(
            "plugin_id",
            sa.String(limits.REGISTRY_PLUGIN_ID_LENGTH),
            nullable=False,
            unique=unique or None,
            index=not unique or None,
        ),
    )


def _registry_metadata(schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    metadata = sa.MetaData(schema=schema)
    timestamp = sa.DateTime(timezone=True)
    schemas = sa.Table(
        "extension_schemas",
        metadata,
        # UNIQUE is the final guard against two owners of one plugin (two clusters, one database).
        *_keys(unique=True),
        sa.Column("owner", sa.String(limits.REGISTRY_OWNER_LENGTH), nullable=False),
        sa.Column("version", sa.String(limits.REGISTRY_VERSION_LENGTH), nullable=False),
        sa.Column("schema_definition", sa.JSON, nullable=False),
        sa.Column("checksum", sa.String(limits.SHA256_HEX_LENGTH), nullable=False),
        sa.Column("status", sa.String(limits.REGISTRY_STATUS_LENGTH), nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("tables", sa.JSON, nullable=False),
        sa.Column("registered_at", timestamp, nullable=False),
        sa.Column("activated_at", timestamp),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in STATUSES_SCHEMA)})", name="extension_schemas_status"
        ),
    )
    migrations = sa.Table(
        "extension_migrations",
        metadata,
        *_keys(unique=False),
        sa.Column("migration_id", sa.String(limits.REGISTRY_MIGRATION_ID_LENGTH), nullable=False),
        # a MigrationKind
        sa.Column("kind", sa.String(limits.REGISTRY_STATUS_LENGTH), nullable=False),
        sa.Column("owner", sa.String(limits.REGISTRY_OWNER_LENGTH), nullable=False),
        sa.Column("version", sa.String(limits.REGISTRY_VERSION_LENGTH), nullable=False),
        sa.Column("schema_definition", sa.JSON),
        sa.Column("description", sa.JSON, nullable=False),
        sa.Column("migration_sql", sa.Text, nullable=False),
        sa.Column("rollback_sql", sa.Text),
        sa.Column("statements", sa.JSON, nullable=False),
        sa.Column("rollback_statements", sa.JSON, nullable=False),
        sa.Column("foreign_keys_off", sa.Boolean, nullable=False),
        sa.Column("checksum_schema", sa.String(limits.SHA256_HEX_LENGTH)),
        sa.Column("checksum_sql", sa.String(limits.SHA256_HEX_LENGTH), nullable=False),
        sa.Column("status", sa.String(limits.REGISTRY_STATUS_LENGTH), nullable=False),
        sa.Column("execution_start", timestamp),
        sa.Column("execution_end", timestamp),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.UniqueConstraint("plugin_id", "migration_id", name="extension_migrations_plugin_migration"),
        sa.CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in STATUSES_MIGRATION)})", name="extension_migrations_status"
        ),
    )
    return metadata, schemas, migrations


#: The column of ``extension_backups`` added after it: registries written before lack it.
ID_COUNTER = "id_counter"


def _backups_table(metadata: sa.MetaData) -> sa.Table:
    """One row per backup table a migration filled: what it copied, from where, and how many rows.

    Added after the first two tables: :meth:`Registry.ensure` also creates it in registries
    written by older versions, and readers treat it as empty until then.
    """
    return sa.Table(
        "extension_backups",
        metadata,
        *_keys(unique=False),
        sa.Column("migration_id", sa.String(limits.REGISTRY_MIGRATION_ID_LENGTH), nullable=False),
        # Order in which the migration took them: restores run in reverse (referenced tables first).
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("backup_table", sa.Text, nullable=False),
        sa.Column("source_table", sa.Text, nullable=False),
        # NULL: the whole table was copied; else the column (with the row ids).
        sa.Column("source_column", sa.Text),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # A whole-table backup: the table's id counter then (ids of rows deleted before count too),
        # which a table re-created in its place starts above. Added later (see Registry.ensure).
        sa.Column(ID_COUNTER, sa.BigInteger),
        sa.UniqueConstraint("plugin_id", "backup_table", name="extension_backups_plugin_table"),
    )


class BackupSource(Protocol):
    """What a migration backed up (the dialect's ``BackupRef``): the backup table, as qualified
    text, and the logical table and column it holds."""

    @property
    def table(self) -> str: ...
    @property
    def source_table(self) -> str: ...
    @property
    def column(self) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class BackupRecord:
    """A backup as the registry lists it."""

    plugin_id: str
    migration_id: str
    position: int
    backup_table: str
    source_table: str
    source_column: str | None
    rows: int
    created_at: datetime.datetime
    #: The source table's id counter when a whole-table backup was taken (None: a column backup,
    #: or one taken before it was recorded).
    id_counter: int | None = None

    def age(self, at: datetime.datetime) -> datetime.timedelta:
        return at - self.created_at


def physical(text: str) -> tuple[str | None, str]:
    """A backup table's recorded name (``schema.name`` or ``name``, quoted or not) as schema and name."""
    parts = [p.strip('"') for p in text.split(".")]
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def aware(stamp: datetime.datetime) -> datetime.datetime:
    """A stored timestamp in UTC (SQLite hands back the UTC time it was given without its zone)."""
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Registration:
    """A plugin as the registry records it: the spec last applied successfully."""

    plugin_id: str
    owner: str
    version: str
    spec: ExtensionSchemaSpec
    checksum: str
    status: str
    error_message: str | None
    tables: list[str]
    registered_at: datetime.datetime
    activated_at: datetime.datetime | None
    updated_at: datetime.datetime

    def holds(self, spec: ExtensionSchemaSpec) -> bool:
        """Whether this is *spec*, applied and active: applying *spec* again has nothing to do (the one rule)."""
        return self.checksum == spec.checksum() and self.status == "active"


@dataclasses.dataclass(frozen=True)
class MigrationRecord:
    plugin_id: str
    migration_id: str
    kind: str
    version: str
    status: str
    description: list[str]
    migration_sql: str
    rollback_sql: str | None
    checksum_schema: str | None
    checksum_sql: str
    checksum_ok: bool
    execution_start: datetime.datetime | None
    execution_end: datetime.datetime | None
    duration_ms: int | None
    error_message: str | None


@dataclasses.dataclass(frozen=True)
class Definition:
    """A spec as the registry stores it: its canonical JSON (parsed) and its checksum.

    Serialising a spec is the slow part of recording a migration (a few milliseconds for 50 tables),
    and one migration stores the spec up to three times (its record, a ``finish`` record, the
    registration): :meth:`of` it once and pass it to each.
    """

    data: dict[str, Any]
    checksum: str

    @classmethod
    def of(cls, spec: ExtensionSchemaSpec) -> Definition:
        text = spec.canonical_json()  # what spec.checksum() hashes
        return cls(json.loads(text), hashlib.sha256(text.encode()).hexdigest())


def _row_key(row: Any) -> tuple[Any, ...] | None:
    """A registry row as a hashable key (its tables list as a tuple); None for a value that cannot be one."""
    values = tuple(tuple(v) if isinstance(v, list) else v for v in row)
    try:
        hash(values)
    except TypeError:
        return None
    return values


def as_registered(spec: ExtensionSchemaSpec) -> ExtensionSchemaSpec:
    """*spec* as the registry gives it back: its operational fields (not stored) at their defaults; a
    shallow copy sharing its tables."""
    fields = ExtensionSchemaSpec.model_fields
    return spec.model_copy(
        update={name: fields[name].get_default(call_default_factory=True) for name in model.OPERATIONAL_FIELDS}
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class MigrationRow:
    """One history row to record (:meth:`Registry.record`); *definition* is *spec*'s, when already computed."""

    plugin_id: str
    migration_id: str
    kind: MigrationKind
    owner: str
    spec: ExtensionSchemaSpec | None
    description: list[str]
    rendered: RenderedPlan
    status: MigrationStatus
    started: datetime.datetime
    duration_ms: int | None = None
    error: str | None = None
    definition: Definition | None = None


def sql_checksum(statements: Sequence[str], rollback: Sequence[str]) -> str:
    payload = json.dumps([list(statements), list(rollback)], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def edited_checksum(
    migration_sql: str, rollback_sql: str | None, statements: Sequence[str], rollback: Sequence[str]
) -> str:
    """The checksum ``repair --accept-edits`` records: of the texts as edited and of the stored statements,
    so any later edit of either is a mismatch again (tagged: never equal to a :func:`sql_checksum`)."""
    payload = json.dumps(
        ["edited", migration_sql, rollback_sql, list(statements), list(rollback)], separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def checksum_matches(row: Any, statements: Sequence[str], rollback: Sequence[str]) -> bool:
    """Whether a migration row's stored SQL is what was recorded: as rendered (the texts are the
    statements' script), or as edited and accepted by ``repair --accept-edits``."""
    if row.checksum_sql == sql_checksum(statements, rollback) and row.migration_sql == script(statements):
        return True
    return bool(row.checksum_sql == edited_checksum(row.migration_sql, row.rollback_sql, statements, rollback))


#: ``repair`` modes: keep the edited text and record its checksum, or render the text again from the statements.
REPAIR_MODES = ("accept-edits", "rerender")


@dataclasses.dataclass(frozen=True)
class RepairChange:
    """One migration ``repair`` changed (or, in a dry run, would change)."""

    migration_id: str
    #: What changed, in words.
    change: str


def script(statements: Sequence[str]) -> str:
    return "".join(f"{s};\n" for s in statements)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _strings(value: Any, what: str) -> list[str]:
    """A stored JSON list of strings, or ValueError saying what it is instead."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is {type(value).__name__}, not a list of strings")
    return list(value)


def _text(value: Any, what: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} is {type(value).__name__}, not text")
    return value


def _stamp(value: Any, what: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, datetime.datetime):
        raise ValueError(f"{what} is {type(value).__name__}, not a timestamp")
    return value


def statements_of(row: Any) -> tuple[list[str], list[str]]:
    """A migration row's statements and rollback statements, checked to be lists of SQL text."""
    return _strings(row.statements, "statements"), _strings(row.rollback_statements, "rollback_statements")


class Registry:
    """The registry tables of one database, read and written in the caller's transactions."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.metadata, self.schemas, self.migrations = _registry_metadata(database.dialect.registry_schema)
        self.backups = _backups_table(self.metadata)
        self._exists = False
        #: Every registry table exists, also those later versions added (checked once by a writer).
        self._complete = False
        # Parsing every stored spec on every read dominates with hundreds of plugins; specs are
        # immutable per checksum, so parse each once.
        self._specs: dict[str, ExtensionSchemaSpec] = {}
        #: The registrations of the last full read, by their row (:func:`_row_key`).
        self._rows: dict[tuple[Any, ...], Registration] = {}

    # --- existence ----------------------------------------------------------------------------

    def exists(self, conn: Connection) -> bool:
        """Whether both registry tables exist (remembered once true: they are never dropped)."""
        if not self._exists:
            self._exists = bool(conn.exec_driver_sql(self.database.dialect.registry_exists_query()).scalar())
        return self._exists

    def has_backups(self, conn: Connection) -> bool:
        """Whether the backups table exists (registries written before it have none)."""
        return bool(self._backup_columns(conn))

    def _backup_columns(self, conn: Connection) -> set[str]:
        """The columns the backups table has (none without it; remembered once it has them all)."""
        if self._complete:
            return {c.name for c in self.backups.c}
        if not self.exists(conn):
            return set()
        inspector = sa.inspect(conn)
        b = self.backups
        if not inspector.has_table(b.name, schema=b.schema):
            return set()
        found = self._columns_of_backups(conn)
        self._complete = found >= {c.name for c in b.c}
        return found

    def _columns_of_backups(self, conn: Connection) -> set[str]:
        # The result's columns, not reflection: SQLAlchemy's get_columns is a catalog query of its
        # own (20+ ms on PostgreSQL, a tenth of a 50-table apply).
        table = self.database.dialect.qualified(PhysicalName(self.backups.schema, self.backups.name))
        return set(conn.exec_driver_sql(f"SELECT * FROM {table} WHERE 1 = 0").keys())

    def ensure(self) -> None:
        """Create the registry tables (and what the dialect bootstraps first) unless they exist,
        also the tables and columns a registry written by an older version lacks.

        Only commands that write call this; reads treat a missing registry as empty.
        """
        if self._complete:  # checked already: no transaction just to ask again
            return
        with self.database.transaction(read_only=True) as conn:
            self._backup_columns(conn)
            if self._complete:
                return
        with self.database.transaction() as conn:
            self.database.execute(conn, self.database.dialect.bootstrap())
            self.metadata.create_all(conn, checkfirst=True)
            b = self.backups
            if ID_COUNTER not in self._columns_of_backups(conn):
                table = self.database.dialect.qualified(PhysicalName(b.schema, b.name))
                self.database.execute(conn, [f"ALTER TABLE {table} ADD COLUMN {ID_COUNTER} BIGINT"])
        self._exists = self._complete = True

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection | None]:
        """A read-only transaction on the registry, or None when there is no registry yet."""
        with self.database.transaction(read_only=True) as conn:
            yield conn if self.exists(conn) else None

    # --- unreadable rows ----------------------------------------------------------------------

    def unreadable(self, conn: Connection, plugin_id: str | None, error: BaseException) -> ProblemError:
        """ES405 for the first row a reader could not make sense of, found by reading each row as text."""
        for table, key in ((self.schemas, None), (self.migrations, self.migrations.c.migration_id)):
            # As text: JSON, and timestamps (SQLite stores whatever was written into them).
            as_text = (sa.JSON, sa.DateTime)
            columns = [sa.cast(c, sa.Text).label(c.name) if isinstance(c.type, as_text) else c for c in table.c]
            query = sa.select(*columns)
            if plugin_id is not None:
                query = query.where(table.c.plugin_id == plugin_id)
            for row in conn.execute(query).all():
                reason = self._row_problem(table, row) or self._timestamp_problem(conn, table, row.id)
                if reason is not None:
                    return self._unreadable_problem(
                        table.name, row.plugin_id, row.migration_id if key is not None else None, reason
                    )
        return self._unreadable_problem(self.migrations.name, plugin_id, None, str(error))

    def _row_problem(self, table: sa.Table, row: Any) -> str | None:
        values = row._mapping
        parsed: dict[str, Any] = {}
        for column in table.c:
            if isinstance(column.type, sa.JSON) and values[column.name] is not None:
                try:
                    parsed[column.name] = json.loads(values[column.name])
                except ValueError as error:
                    return f"{column.name} is not valid JSON ({error})"
        checks: list[tuple[str, Callable[[], Any]]] = []
        if table is self.schemas:
            checks.append(
                ("schema_definition", lambda: ExtensionSchemaSpec.model_validate(parsed["schema_definition"]))
            )
            checks.append(("tables", lambda: _strings(parsed.get("tables"), "tables")))
            texts: tuple[str, ...] = ("owner", "version", "checksum", "status")
        else:
            for name in ("statements", "rollback_statements", "description"):
                checks.append((name, lambda name=name: _strings(parsed.get(name), name)))  # type: ignore[misc]
            if parsed.get("schema_definition") is not None:
                checks.append(
                    ("schema_definition", lambda: ExtensionSchemaSpec.model_validate(parsed["schema_definition"]))
                )
            texts = ("kind", "version", "status", "migration_sql", "checksum_sql")
        for name in texts:
            checks.append((name, lambda name=name: _text(values[name], name)))  # type: ignore[misc]
        for name, check in checks:
            try:
                check()
            except _UNREADABLE as error:
                first = str(error).splitlines()
                detail = "; ".join(first[:3]) if isinstance(error, pydantic.ValidationError) else first[0]
                return detail if detail.startswith(name) else f"{name}: {detail}"
        return None

    def _timestamp_problem(self, conn: Connection, table: sa.Table, row_id: str) -> str | None:
        """Why a timestamp of one row cannot be read, read as its reader reads it."""
        for column in table.c:
            if isinstance(column.type, sa.DateTime):
                try:
                    conn.execute(sa.select(column).where(table.c.id == row_id)).all()
                except _UNREADABLE as error:
                    return f"{column.name}: {error}"
        return None

    def _unreadable_problem(
        self, table: str, plugin_id: str | None, migration_id: str | None, reason: str
    ) -> ProblemError:
        schema = self.database.dialect.registry_schema
        qualified = f"{schema}.{table}" if schema else table
        where = f"{table}[plugin_id={plugin_id!r}" + (f", migration_id={migration_id!r}]" if migration_id else "]")
        fix = (
            "restore the row from a backup or correct it by hand "
            f"(UPDATE {qualified} ... WHERE plugin_id = '{plugin_id}'"
            + (f" AND migration_id = '{migration_id}'" if migration_id else "")
            + "), then re-record checksums with `extschema repair "
            + (plugin_id or "PLUGIN")
            + " --accept-edits`"
        )
        return ProblemError.one(
            "ES405", where, f"the registry row {where} cannot be read: {reason}; {fix}", kind="database"
        )

    def guarded(self, conn: Connection, plugin_id: str | None, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except _UNREADABLE as error:
            raise self.unreadable(conn, plugin_id, error) from None

    # --- plugins ------------------------------------------------------------------------------

    def _spec(self, checksum: str, definition: Any) -> ExtensionSchemaSpec:
        spec = self._specs.get(checksum)
        if spec is None:
            spec = self._specs[checksum] = ExtensionSchemaSpec.model_validate(definition)
        return spec

    def _registration(self, row: Any, spec: ExtensionSchemaSpec) -> Registration:
        return Registration(
            plugin_id=_text(row.plugin_id, "plugin_id"),
            owner=_text(row.owner, "owner"),
            version=_text(row.version, "version"),
            spec=spec,
            checksum=_text(row.checksum, "checksum"),
            status=_text(row.status, "status"),
            error_message=_text(row.error_message, "error_message", optional=True),
            tables=_strings(row.tables, "tables"),
            registered_at=_stamp(row.registered_at, "registered_at"),
            activated_at=_stamp(row.activated_at, "activated_at", optional=True),
            updated_at=_stamp(row.updated_at, "updated_at"),
        )

    def registrations(self, conn: Connection | None = None) -> list[Registration]:
        """Every registration; read in *conn*'s transaction when given (a migration's, under its lock)."""
        if conn is not None:
            return self.guarded(conn, None, lambda: self._registrations(conn))  # type: ignore[no-any-return]
        with self.reading() as own:
            return [] if own is None else self.registrations(own)

    def _registrations(self, conn: Connection) -> list[Registration]:
        # The operator reads the whole registry on every reconcile: stored specs (the bulk of each
        # row, JSON) are fetched only for checksums this engine has not parsed yet.
        c = self.schemas.c
        order = (c.registered_at, c.plugin_id)
        narrow = (c.plugin_id, c.owner, c.version, c.checksum, c.status, c.error_message, c.tables)
        rows = conn.execute(sa.select(*narrow, c.registered_at, c.activated_at, c.updated_at).order_by(*order)).all()
        missing = [r.plugin_id for r in rows if r.checksum not in self._specs]
        if missing:
            query = sa.select(c.checksum, c.schema_definition).where(c.plugin_id.in_(missing))
            for checksum, definition in conn.execute(query):
                self._spec(checksum, definition)
            if any(r.checksum not in self._specs for r in rows):  # changed in between: read it whole
                whole = conn.execute(sa.select(self.schemas).order_by(*order))
                return [self._registration(r, self._spec(r.checksum, r.schema_definition)) for r in whole]
        # Rows unchanged since the last read give back the same Registration (checked once, allocated once):
        # a burst of reconciles reads hundreds of unchanged rows each.
        before, seen = self._rows, {}
        found = []
        for row in rows:
            key = _row_key(row)
            registration = before.get(key) if key is not None else None
            if registration is None:
                registration = self._registration(row, self._specs[row.checksum])
            if key is not None:
                seen[key] = registration
            found.append(registration)
        self._rows = seen
        return found

    def registration(self, plugin_id: str, conn: Connection | None = None) -> Registration | None:
        if conn is None:
            with self.reading() as own:
                return None if own is None else self.registration(plugin_id, own)

        def read() -> Registration | None:
            row = conn.execute(sa.select(self.schemas).where(self.schemas.c.plugin_id == plugin_id)).first()
            return self._registration(row, self._spec(row.checksum, row.schema_definition)) if row else None

        return self.guarded(conn, plugin_id, read)  # type: ignore[no-any-return]

    def dependents(self, conn: Connection, plugin_id: str) -> list[Registration]:
        """Registered plugins whose spec names *plugin_id* in dependsOn."""
        registrations: list[Registration] = self.guarded(conn, None, lambda: self._registrations(conn))
        return [r for r in registrations if plugin_id in r.spec.depends_on]

    def refuse_if_dependents(self, conn: Connection, plugin_id: str) -> None:
        """ES303 while another registered plugin names *plugin_id* in dependsOn (a delete, or a
        rollback of its first migration, would remove what they need)."""
        dependents = sorted(r.plugin_id for r in self.dependents(conn, plugin_id))
        if dependents:
            raise ProblemError.one(
                "ES303",
                "plugin",
                f"plugin {plugin_id!r} is still needed by {', '.join(dependents)} (dependsOn); delete those first",
                kind="refused",
            )

    def refuse_if_referenced(self, conn: Connection, plugin_id: str, kept: ExtensionSchemaSpec) -> None:
        """ES303 when going back to *kept* would drop a table another plugin's foreign keys reference
        (on SQLite the drop would otherwise delete their rows through ON DELETE CASCADE)."""
        remaining = {t.name for t in kept.tables}
        lost: dict[str, set[str]] = {}
        for dependent in self.dependents(conn, plugin_id):
            fks, joins = model.resolve_relationships(dependent.spec)
            for fk in [*fks, *(end for join in joins for end in (join.left, join.right))]:
                if fk.references.plugin == plugin_id and fk.references.table not in remaining:
                    lost.setdefault(dependent.plugin_id, set()).add(fk.references.table)
        if lost:
            named = "; ".join(f"{p} references {', '.join(sorted(t))}" for p, t in sorted(lost.items()))
            raise ProblemError.one(
                "ES303",
                "plugin",
                f"rolling back plugin {plugin_id!r} to {kept.version} would drop tables other plugins use ({named}); "
                "roll back or delete those plugins first",
                kind="refused",
            )

    # --- migrations ---------------------------------------------------------------------------

    def _pending_finish(self, plugin_id: str) -> tuple[sa.ColumnElement[bool], ...]:
        m = self.migrations
        return m.c.plugin_id == plugin_id, m.c.kind == MigrationKind.FINISH, m.c.status == MigrationStatus.PENDING

    def pending_finishes(self, conn: Connection, plugin_id: str) -> list[str]:
        """The ids of the plugin's ``finish`` migrations still pending (their builds never ran to the end)."""
        m = self.migrations
        query = sa.select(m.c.migration_id).where(*self._pending_finish(plugin_id)).order_by(m.c.migration_id)
        return list(conn.execute(query).scalars())

    def pending_finish_statements(self, conn: Connection, plugin_id: str) -> list[str]:
        """What the plugin's pending ``finish`` migrations run, in order (ES405 when a row is unreadable)."""
        m = self.migrations
        rows = conn.execute(sa.select(m).where(*self._pending_finish(plugin_id)).order_by(m.c.migration_id)).all()
        readable: list[tuple[list[str], list[str]]] = self.guarded(
            conn, plugin_id, lambda: [statements_of(row) for row in rows]
        )
        return [s for ran, _ in readable for s in ran]

    def finish_pending(
        self, conn: Connection, plugin_id: str, started: datetime.datetime | None = None, duration_ms: int | None = None
    ) -> None:
        """Mark the plugin's pending ``finish`` migrations executed (their builds are done), with when
        the builds *started* and how long they took (``history`` shows it)."""
        done = sa.update(self.migrations).where(*self._pending_finish(plugin_id))
        stamp = now()
        timing = (
            {} if started is None else {"execution_start": started, "execution_end": stamp, "duration_ms": duration_ms}
        )
        conn.execute(done.values(status=MigrationStatus.EXECUTED, updated_at=stamp, **timing))

    def history_rows(self, conn: Connection, plugin_id: str | None) -> list[MigrationRecord]:
        return self.guarded(conn, plugin_id, lambda: self._history_rows(conn, plugin_id))  # type: ignore[no-any-return]

    def _history_rows(self, conn: Connection, plugin_id: str | None) -> list[MigrationRecord]:
        m = self.migrations
        query = sa.select(m).order_by(m.c.plugin_id, m.c.migration_id)
        if plugin_id is not None:
            query = query.where(m.c.plugin_id == plugin_id)
        records = []
        for row in conn.execute(query):
            statements, rollback = statements_of(row)
            ok = checksum_matches(row, statements, rollback)
            records.append(
                MigrationRecord(
                    plugin_id=row.plugin_id,
                    migration_id=_text(row.migration_id, "migration_id"),
                    kind=_text(row.kind, "kind"),
                    version=_text(row.version, "version"),
                    status=_text(row.status, "status"),
                    description=_strings(row.description, "description"),
                    migration_sql=_text(row.migration_sql, "migration_sql"),
                    rollback_sql=_text(row.rollback_sql, "rollback_sql", optional=True),
                    checksum_schema=_text(row.checksum_schema, "checksum_schema", optional=True),
                    checksum_sql=_text(row.checksum_sql, "checksum_sql"),
                    checksum_ok=ok,
                    execution_start=_stamp(row.execution_start, "execution_start", optional=True),
                    execution_end=_stamp(row.execution_end, "execution_end", optional=True),
                    duration_ms=row.duration_ms if isinstance(row.duration_ms, int) else None,
                    error_message=_text(row.error_message, "error_message", optional=True),
                )
            )
        return records

    def history(self, plugin_id: str | None = None) -> list[MigrationRecord]:
        with self.reading() as conn:
            return [] if conn is None else self.history_rows(conn, plugin_id)

    def migration_row(self, conn: Connection, plugin_id: str, migration_id: str) -> Any:
        m = self.migrations
        return conn.execute(sa.select(m).where(m.c.plugin_id == plugin_id, m.c.migration_id == migration_id)).one()

    def next_migration_id(
        self, conn: Connection, plugin_id: str, history: Sequence[MigrationRecord] | None = None
    ) -> str:
        """The id the plugin's next migration gets; counted from its *history* when the caller has read it."""
        if history is None:
            m = self.migrations
            count = conn.execute(sa.select(sa.func.count()).select_from(m).where(m.c.plugin_id == plugin_id))
            return f"{count.scalar_one() + 1:04d}"
        return f"{len(history) + 1:04d}"

    def verify_history(self, conn: Connection, plugin_id: str) -> list[MigrationRecord]:
        """The plugin's history, or ES304 when a recorded migration's SQL no longer matches its checksum."""
        records = self.history_rows(conn, plugin_id)
        bad = [r for r in records if not r.checksum_ok]
        if bad:
            ids = ", ".join(r.migration_id for r in bad)
            raise ProblemError.one(
                "ES304",
                f"extension_migrations[{plugin_id}]",
                f"checksum mismatch in recorded migration(s) {ids} of plugin {plugin_id!r}: the stored SQL was "
                f"changed after it ran. Compare it with `extschema history {plugin_id} --sql`; if the change was "
                f"deliberate, keep it and re-record the checksums with `extschema repair {plugin_id} --accept-edits`, "
                f"or undo it with `extschema repair {plugin_id} --rerender` (the text is written again from the "
                "stored statements)",
                kind="refused",
            )
        return records

    def record(self, conn: Connection, row: MigrationRow) -> None:
        """Insert one history row; its definition is computed here when not given."""
        stamp = now()
        spec, definition, rendered = row.spec, row.definition, row.rendered
        if definition is None and spec is not None:
            definition = Definition.of(spec)
        conn.execute(
            sa.insert(self.migrations).values(
                id=str(uuid.uuid4()),
                plugin_id=row.plugin_id,
                migration_id=row.migration_id,
                kind=row.kind,
                owner=row.owner,
                version=spec.version if spec else "",
                description=row.description,
                schema_definition=definition.data if definition else None,
                migration_sql=script(rendered.statements),
                rollback_sql=script(rendered.rollback),
                statements=list(rendered.statements),
                rollback_statements=list(rendered.rollback),
                foreign_keys_off=rendered.foreign_keys_off,
                checksum_schema=definition.checksum if definition else None,
                checksum_sql=sql_checksum(rendered.statements, rendered.rollback),
                status=row.status,
                execution_start=row.started,
                execution_end=stamp,
                duration_ms=row.duration_ms,
                error_message=row.error,
                created_at=stamp,
                updated_at=stamp,
            )
        )

    def set_migration_status(
        self, conn: Connection, plugin_id: str, migration_id: str, status: MigrationStatus
    ) -> None:
        m = self.migrations
        conn.execute(
            sa.update(m)
            .where(m.c.plugin_id == plugin_id, m.c.migration_id == migration_id)
            .values(status=status, updated_at=now())
        )

    # --- registrations ------------------------------------------------------------------------

    def register(
        self,
        conn: Connection,
        owner: str,
        spec: ExtensionSchemaSpec,
        tables: list[str],
        exists: bool,
        definition: Definition | None = None,
    ) -> None:
        """Record *spec* as the plugin's active schema (insert, or update the existing row); *definition*
        is *spec*'s (computed here when not given)."""
        stamp = now()
        definition = definition or Definition.of(spec)
        values = dict(
            owner=owner,
            version=spec.version,
            schema_definition=definition.data,
            checksum=definition.checksum,
            status="active",
            error_message=None,
            tables=tables,
            activated_at=stamp,
            updated_at=stamp,
        )
        # The spec just recorded, as reading it back would parse it: its tables shared with the caller's spec
        # instead of a second copy per plugin (the operator keeps both, ~6 kB per resource).
        self._specs.setdefault(definition.checksum, as_registered(spec))
        if exists:
            conn.execute(sa.update(self.schemas).where(self.schemas.c.plugin_id == spec.plugin_id).values(**values))
        else:
            conn.execute(
                sa.insert(self.schemas).values(
                    id=str(uuid.uuid4()), plugin_id=spec.plugin_id, registered_at=stamp, **values
                )
            )

    def mark_failed(self, conn: Connection, plugin_id: str, message: str) -> None:
        conn.execute(
            sa.update(self.schemas)
            .where(self.schemas.c.plugin_id == plugin_id)
            .values(status="failed", error_message=message, updated_at=now())
        )

    def unregister(self, conn: Connection, plugin_id: str) -> None:
        conn.execute(sa.delete(self.schemas).where(self.schemas.c.plugin_id == plugin_id))

    def repair(self, conn: Connection, plugin_id: str, mode: str, dry_run: bool = False) -> list[RepairChange]:
        """Make the plugin's recorded migrations verify again after an edit (*mode*: ``accept-edits``
        records the checksum of the edited SQL, which stays; ``rerender`` writes the SQL text again from
        the stored statements, undoing an edit of the text); with *dry_run*, only say what would change."""
        return self.guarded(conn, plugin_id, lambda: self._repair(conn, plugin_id, mode, dry_run))  # type: ignore[no-any-return]

    def _repair(self, conn: Connection, plugin_id: str, mode: str, dry_run: bool) -> list[RepairChange]:
        changes: list[RepairChange] = []
        m = self.migrations
        rows = conn.execute(sa.select(m).where(m.c.plugin_id == plugin_id).order_by(m.c.migration_id)).all()
        for row in rows:
            statements, rollback = statements_of(row)
            if mode == "accept-edits":
                if checksum_matches(row, statements, rollback):
                    continue
                values = {"checksum_sql": edited_checksum(row.migration_sql, row.rollback_sql, statements, rollback)}
                verb = "would re-record" if dry_run else "re-recorded"
                change = f"{verb} the checksum of the SQL as edited (the edit stays)"
            else:
                checksum, text, undo = sql_checksum(statements, rollback), script(statements), script(rollback)
                if (row.checksum_sql, row.migration_sql, row.rollback_sql) == (checksum, text, undo):
                    continue
                values = {"checksum_sql": checksum, "migration_sql": text, "rollback_sql": undo}
                edited = [c for c, v in (("migration_sql", text), ("rollback_sql", undo)) if row._mapping[c] != v]
                render, record = ("would render", "would re-record") if dry_run else ("rendered", "re-recorded")
                change = (
                    f"{render} {' and '.join(edited)} again from the stored statements (the edit of the text is undone)"
                    if edited
                    else f"{record} the checksum of the stored statements"
                )
            if not dry_run:
                conn.execute(sa.update(m).where(m.c.id == row.id).values(**values, updated_at=now()))
            changes.append(RepairChange(row.migration_id, change))
        return changes

    # --- backups ------------------------------------------------------------------------------

    def record_backups(
        self,
        conn: Connection,
        plugin_id: str,
        migration_id: str,
        refs: Sequence[BackupSource],
        skip: Collection[str] = (),
        counters: Mapping[str, int] | None = None,
    ) -> None:
        """Record the backup tables a migration filled, with their row counts, in its transaction.

        *skip* are physical tables that were already gone (a delete leaves out their steps, so
        nothing of theirs was backed up). *counters* are the plugin's tables' id counters read
        before the migration ran (by unqualified physical name), recorded with whole-table backups.
        """
        namer = self.database.dialect.namer
        taken = [r for r in refs if str(namer.table(plugin_id, r.source_table)) not in skip]
        if not taken:
            return
        stamp = now()
        rows = []

        def counter(table: str) -> int | None:
            return (counters or {}).get(namer.table(plugin_id, table).name)

        for position, ref in enumerate(taken):
            schema, name = physical(ref.table)
            count = sa.select(sa.func.count()).select_from(sa.table(name, schema=schema))
            rows.append(
                {"id": str(uuid.uuid4()), "plugin_id": plugin_id, "migration_id": migration_id, "position": position}
                | {"backup_table": ref.table, "source_table": ref.source_table, "source_column": ref.column}
                | {"rows": conn.execute(count).scalar_one(), "created_at": stamp}
                | {ID_COUNTER: None if ref.column is not None else counter(ref.source_table)}
            )
        conn.execute(sa.insert(self.backups), rows)

    def backup_rows(
        self, conn: Connection, plugin_id: str | None = None, migration_id: str | None = None
    ) -> list[BackupRecord]:
        """Recorded backups (of one plugin, of one migration), oldest first; none without the table."""
        present = self._backup_columns(conn)
        if not present:
            return []
        b = self.backups
        columns = [c for c in b.c if c.name in present]  # an older registry lacks the later ones
        query = sa.select(*columns).order_by(b.c.created_at, b.c.plugin_id, b.c.migration_id, b.c.position)
        if plugin_id is not None:
            query = query.where(b.c.plugin_id == plugin_id)
        if migration_id is not None:
            query = query.where(b.c.migration_id == migration_id)
        names = [f.name for f in dataclasses.fields(BackupRecord) if f.name in present]
        found = [{name: row._mapping[name] for name in names} for row in conn.execute(query)]
        return [BackupRecord(**(values | {"created_at": aware(values["created_at"])})) for values in found]

    def forget_backup(self, conn: Connection, record: BackupRecord) -> None:
        b = self.backups
        conn.execute(sa.delete(b).where(b.c.plugin_id == record.plugin_id, b.c.backup_table == record.backup_table))
