"""Executes plans against a database, safely.

Every migration runs in one transaction: on PostgreSQL under ``pg_advisory_xact_lock`` keyed by
the plugin, with ``lock_timeout`` and ``statement_timeout`` set after the lock is held; on SQLite
under ``BEGIN IMMEDIATE`` (the database-wide write lock). Inside the lock the registry is read
again, so concurrent appliers of the same spec execute it exactly once and a plan computed from
a registry that has since moved is refused as stale. Any error rolls the whole migration back;
the failure is then recorded in a separate transaction with the database's message.

The registry (``extension_schemas``, ``extension_migrations``) is the idempotency record for both
the CLI and the operator. Each migration stores its SQL, its rollback SQL and SHA-256 checksums;
a migration whose SQL no longer matches its checksum blocks further changes to that plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import dialects, naming, validation
from extschema.dialects import Dialect, ErrorClass, RenderedPlan
from extschema.model import ExtensionSchemaSpec, FieldType
from extschema.planning import Plan
from extschema.problems import ProblemError

STATUSES_SCHEMA = ("pending", "active", "failed")
STATUSES_MIGRATION = ("pending", "executing", "executed", "failed", "rolled_back")
DEFAULT_LOCK_TIMEOUT_MS = 5_000
DEFAULT_STATEMENT_TIMEOUT_MS = 300_000
_REGISTRY_LOCK = (0x45585453, 0)  # "EXTS": serialises creating the registry itself


def _registry_metadata(schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    metadata = sa.MetaData(schema=schema)
    timestamp = sa.DateTime(timezone=True)
    schemas = sa.Table(
        "extension_schemas",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        # UNIQUE is the final guard against two owners of one plugin (two clusters, one database).
        sa.Column("plugin_id", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(512), nullable=False),
        sa.Column("version", sa.String(256), nullable=False),
        sa.Column("schema_definition", sa.JSON, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
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
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("plugin_id", sa.String(64), nullable=False, index=True),
        sa.Column("migration_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),  # apply | rollback | delete | unregister
        sa.Column("owner", sa.String(512), nullable=False),
        sa.Column("version", sa.String(256), nullable=False),
        sa.Column("schema_definition", sa.JSON),
        sa.Column("description", sa.JSON, nullable=False),
        sa.Column("migration_sql", sa.Text, nullable=False),
        sa.Column("rollback_sql", sa.Text),
        sa.Column("statements", sa.JSON, nullable=False),
        sa.Column("rollback_statements", sa.JSON, nullable=False),
        sa.Column("foreign_keys_off", sa.Boolean, nullable=False),
        sa.Column("checksum_schema", sa.String(64)),
        sa.Column("checksum_sql", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
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

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("execution_start", "execution_end"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    plugin_id: str
    changed: bool
    migration_id: str | None
    description: list[str]
    duration_ms: int | None = None


class StalePlan(Exception):
    """The registry moved between planning and locking: plan again."""


def sql_checksum(statements: Sequence[str], rollback: Sequence[str]) -> str:
    payload = json.dumps([list(statements), list(rollback)], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def script(statements: Sequence[str]) -> str:
    return "".join(f"{s};\n" for s in statements)


def lock_key(plugin_id: str) -> tuple[int, int]:
    """Two signed 32-bit keys from SHA-256 (``hashtext`` is 32-bit and collides)."""
    digest = hashlib.sha256(f"extschema:{plugin_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True), int.from_bytes(digest[4:8], "big", signed=True)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _sqlite_regexp(pattern: str | None, value: Any) -> bool | None:
    # SQLite calls regexp(pattern, value) for "value REGEXP pattern"; NULL stays unknown as in SQL.
    if pattern is None or value is None:
        return None
    return validation.portable_regex_search(pattern, str(value))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


class Engine:
    """One database: its registry, and the migrations of every plugin in it."""

    def __init__(
        self,
        url: str,
        *,
        lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        core_schema: str = "public",
    ) -> None:
        self.url = url
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise ProblemError.one(
                "ES404",
                "--database",
                f"{url!r} is not a database URL; use sqlite:///path.db or postgresql://user:password@host:5432/db",
                kind="usage",
            ) from None
        backend = parsed.get_backend_name()
        if backend not in dialects.REGISTRY:
            raise ProblemError.one(
                "ES404",
                "--database",
                f"{redact(url)}: unsupported database {backend!r}; extschema supports postgresql and sqlite",
                kind="usage",
            )
        if backend == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
            self.dialect: Dialect = dialects.PostgresDialect(core_schema)
            self.sa_engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
            registry_schema: str | None = naming.REGISTRY_SCHEMA
        else:
            self.dialect = dialects.SqliteDialect()
            # isolation_level=None: the driver must not BEGIN behind our back (it would skip DDL).
            self.sa_engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool, connect_args={"timeout": 30})
            sa.event.listen(self.sa_engine, "connect", self._on_sqlite_connect)
            sa.event.listen(self.sa_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            registry_schema = None
        self.metadata, self.schemas, self.migrations = _registry_metadata(registry_schema)
        # Statements run on the raw driver cursor raise the driver's own errors.
        self._driver_error: type[Exception] = self.sa_engine.dialect.dbapi.Error  # type: ignore[union-attr]
        self._registry_ready = False
        self._specs: dict[str, ExtensionSchemaSpec] = {}

    @staticmethod
    def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.create_function("REGEXP", 2, _sqlite_regexp, deterministic=True)
        for statement in dialects.SqliteDialect().session_setup():
            dbapi_connection.execute(statement)

    @property
    def backend(self) -> str:
        return self.dialect.name

    def close(self) -> None:
        self.sa_engine.dispose()

    # --- connections and errors -------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, foreign_keys_off: bool = False) -> Iterator[Connection]:
        """One transaction; errors come out as :class:`ProblemError` classified by the dialect."""
        try:
            with self.sa_engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                if foreign_keys_off and self.backend == "sqlite":
                    # Must be set outside a transaction; SQLite ignores it inside one.
                    raw.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
                try:
                    with conn.begin():
                        yield conn
                finally:
                    if foreign_keys_off and self.backend == "sqlite":
                        raw.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
        except (sa.exc.DBAPIError, OSError, self._driver_error) as error:
            raise self._database_problem(error) from error

    def _database_problem(self, error: BaseException) -> ProblemError:
        kind = self.dialect.classify(error)
        message = _database_message(error)
        if kind is ErrorClass.UNREACHABLE:
            return ProblemError.one(
                "ES401",
                "database",
                f"cannot reach {redact(self.url)}: {message}; check that the server runs and "
                "the URL, user and password are right",
                kind="unreachable",
            )
        if kind is ErrorClass.RETRYABLE:
            return ProblemError.one(
                "ES403", "database", f"temporary database error, safe to retry: {message}", kind="retryable"
            )
        return ProblemError.one("ES402", "database", message, kind="database")

    def ping(self) -> str:
        """Connect and return the server version (raises ES401 when unreachable)."""
        with self._transaction() as conn:
            if self.backend == "postgresql":
                return str(conn.exec_driver_sql("SHOW server_version").scalar())
            return "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())

    # --- registry ------------------------------------------------------------------------------

    def ensure_registry(self) -> None:
        """Create the registry tables (and on PostgreSQL its schemas) unless they exist."""
        if self._registry_ready:
            return
        with self._transaction() as conn:
            if conn.exec_driver_sql(self.dialect.registry_exists_query()).scalar():
                self._registry_ready = True
                return
        with self._transaction() as conn:
            if self.backend == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _REGISTRY_LOCK[0], "b": _REGISTRY_LOCK[1]}
                )
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {naming.REGISTRY_SCHEMA}")
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {naming.BACKUP_SCHEMA}")
            self.metadata.create_all(conn, checkfirst=True)
        self._registry_ready = True

    def _registration_from_row(self, row: sa.Row[Any]) -> Registration:
        # Parsing every stored spec on every read dominates with hundreds of plugins; specs are
        # immutable per checksum, so parse each once.
        spec = self._specs.get(row.checksum)
        if spec is None:
            spec = self._specs[row.checksum] = ExtensionSchemaSpec.model_validate(row.schema_definition)
        return Registration(
            plugin_id=row.plugin_id,
            owner=row.owner,
            version=row.version,
            spec=spec,
            checksum=row.checksum,
            status=row.status,
            error_message=row.error_message,
            tables=list(row.tables),
            registered_at=row.registered_at,
            activated_at=row.activated_at,
            updated_at=row.updated_at,
        )

    def registrations(self) -> list[Registration]:
        self.ensure_registry()
        # The operator reads the whole registry on every reconcile: stored specs (the bulk of each
        # row, JSON) are fetched only for checksums this engine has not parsed yet.
        schemas = self.schemas
        order = (schemas.c.registered_at, schemas.c.plugin_id)
        with self._transaction() as conn:
            c = schemas.c
            narrow = (c.plugin_id, c.owner, c.version, c.checksum, c.status, c.error_message, c.tables)
            stamps = (c.registered_at, c.activated_at, c.updated_at)
            rows = conn.execute(sa.select(*narrow, *stamps).order_by(*order)).tuples().all()
            missing = [r[0] for r in rows if r[3] not in self._specs]
            if missing:
                query = sa.select(c.checksum, c.schema_definition).where(c.plugin_id.in_(missing))
                for checksum, definition in conn.execute(query):
                    if checksum not in self._specs:
                        self._specs[checksum] = ExtensionSchemaSpec.model_validate(definition)
                if any(r[3] not in self._specs for r in rows):  # changed in between: read it whole
                    return [self._registration_from_row(r) for r in conn.execute(sa.select(schemas).order_by(*order))]
            specs = self._specs
            return [
                Registration(
                    plugin_id=plugin,
                    owner=owner,
                    version=version,
                    spec=specs[checksum],
                    checksum=checksum,
                    status=status,
                    error_message=error,
                    tables=list(tables),
                    registered_at=registered,
                    activated_at=activated,
                    updated_at=updated,
                )
                for plugin, owner, version, checksum, status, error, tables, registered, activated, updated in rows
            ]

    def registration(self, plugin_id: str, conn: Connection | None = None) -> Registration | None:
        if conn is None:
            self.ensure_registry()
            with self._transaction() as own:
                return self.registration(plugin_id, own)
        row = conn.execute(sa.select(self.schemas).where(self.schemas.c.plugin_id == plugin_id)).first()
        return self._registration_from_row(row) if row else None

    def core_catalog(
        self, columns_of: Collection[str] | None = None
    ) -> dict[tuple[str, str], dict[str, FieldType | None]]:
        """The host application's tables (those extschema does not own) and their columns' types.

        Every table is listed (names can collide with plugin tables on SQLite); columns are read
        only for *columns_of* when given — reflecting columns is the slow part on PostgreSQL.
        """
        catalog: dict[tuple[str, str], dict[str, FieldType | None]] = {}
        try:
            with self.sa_engine.connect() as conn:
                inspector = sa.inspect(conn)
                schema = self.dialect.namer.core_schema
                for table in inspector.get_table_names(schema=schema):
                    if table.startswith(("ext_", "extension_", naming.BACKUP_SCHEMA, "sqlite_")):
                        continue
                    if columns_of is not None and table not in columns_of:
                        catalog[("core", table)] = {}
                        continue
                    found = inspector.get_columns(table, schema=schema)
                    catalog[("core", table)] = {c["name"]: self.dialect.logical_type(c["type"]) for c in found}
        except (sa.exc.DBAPIError, OSError) as error:
            raise self._database_problem(error) from error
        return catalog

    def physical_tables(self, plugin_id: str) -> list[str]:
        """Tables of the plugin that exist in the database right now."""
        try:
            with self.sa_engine.connect() as conn:
                inspector = sa.inspect(conn)
                if self.backend == "postgresql":
                    schema = naming.plugin_schema(plugin_id)
                    return [f"{schema}.{t}" for t in sorted(inspector.get_table_names(schema=schema))]
                prefix = f"{naming.plugin_schema(plugin_id)}__"
                return sorted(t for t in inspector.get_table_names() if t.startswith(prefix))
        except (sa.exc.DBAPIError, OSError) as error:
            raise self._database_problem(error) from error

    # --- migrations ----------------------------------------------------------------------------

    def _lock(self, conn: Connection, plugin_id: str) -> None:
        statements = self.dialect.migration_preamble(
            lock_key(plugin_id), self.lock_timeout_ms, self.statement_timeout_ms
        )
        if statements:
            self._run(conn, statements, foreign_keys_off=False)

    def _next_migration_id(self, conn: Connection, plugin_id: str) -> str:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(self.migrations).where(self.migrations.c.plugin_id == plugin_id)
        ).scalar_one()
        return f"{count + 1:04d}"

    def _verify_history(self, conn: Connection, plugin_id: str) -> None:
        bad = [r for r in self._history_rows(conn, plugin_id) if not r.checksum_ok]
        if bad:
            ids = ", ".join(r.migration_id for r in bad)
            raise ProblemError.one(
                "ES304",
                f"extension_migrations[{plugin_id}]",
                f"checksum mismatch in recorded migration(s) {ids} of plugin {plugin_id!r}: the stored SQL was "
                f"changed after it ran. Compare it with `extschema history {plugin_id}`; if the change was "
                f"deliberate, re-record the checksums with `extschema repair {plugin_id}`",
                kind="refused",
            )

    def _run(self, conn: Connection, statements: Sequence[str], foreign_keys_off: bool) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            # The raw cursor: no parameter parsing, so a '%' in a quoted pattern stays itself.
            if self.backend == "postgresql" and statements:
                # One round trip (the simple query protocol runs them in order, in our transaction).
                cursor.execute(";\n".join(statements))
            for statement in statements if self.backend == "sqlite" else ():
                cursor.execute(statement)
            if foreign_keys_off and self.backend == "sqlite":
                violations = cursor.execute("PRAGMA foreign_key_check").fetchall()
                if violations:
                    raise sa.exc.IntegrityError(
                        "PRAGMA foreign_key_check",
                        None,
                        Exception(f"FOREIGN KEY constraint failed after table rebuild: {violations[:5]}"),
                    )
        finally:
            cursor.close()

    def apply(
        self,
        owner: str,
        spec: ExtensionSchemaSpec,
        plan: Plan,
        base_checksum: str | None,
        tables: list[str],
    ) -> ApplyResult:
        """Run *plan*, which takes *spec*'s plugin from *base_checksum* to *spec*, as one migration.

        Everything happens in one transaction under the plugin's lock: the registry is read again
        (a concurrent applier may have done the work: then nothing runs), the history checksums
        are verified, the plan is rendered with the migration id (which names backups), run, and
        recorded. Raises :class:`StalePlan` when the registry no longer matches *base_checksum*,
        :class:`ProblemError` for everything a user must see.
        """
        self.ensure_registry()
        plugin_id = spec.plugin_id
        checksum = spec.checksum()
        started = _now()
        clock = time.perf_counter()
        migration_id = "?"
        rendered: RenderedPlan | None = None
        try:
            with self._transaction(self.dialect.needs_foreign_keys_off(plan)) as conn:
                self._lock(conn, plugin_id)
                current = self.registration(plugin_id, conn)
                if current is not None and current.owner != owner:
                    raise ProblemError.one(
                        "ES201",
                        "spec.pluginId",
                        f"plugin {plugin_id!r} is already registered by {current.owner!r}; "
                        "choose another pluginId, or delete that one first",
                        kind="conflict",
                    )
                if current is not None and current.checksum == checksum and current.status == "active":
                    return ApplyResult(plugin_id, False, None, [])
                if (current.checksum if current else None) != base_checksum:
                    raise StalePlan(plugin_id)
                self._verify_history(conn, plugin_id)
                migration_id = self._next_migration_id(conn, plugin_id)
                rendered = self.dialect.render_plan(plan, backup_tag=f"m{migration_id}")
                self._run(conn, rendered.statements, rendered.foreign_keys_off)
                duration = int((time.perf_counter() - clock) * 1000)
                self._record(
                    conn,
                    plugin_id,
                    migration_id,
                    "apply",
                    owner,
                    spec,
                    plan.describe(),
                    rendered,
                    "executed",
                    started,
                    duration,
                    None,
                )
                now = _now()
                values = dict(
                    owner=owner,
                    version=spec.version,
                    schema_definition=json.loads(spec.canonical_json()),
                    checksum=checksum,
                    status="active",
                    error_message=None,
                    tables=tables,
                    activated_at=now,
                    updated_at=now,
                )
                if current is None:
                    conn.execute(
                        sa.insert(self.schemas).values(
                            id=str(uuid.uuid4()), plugin_id=plugin_id, registered_at=now, **values
                        )
                    )
                else:
                    conn.execute(sa.update(self.schemas).where(self.schemas.c.plugin_id == plugin_id).values(**values))
                return ApplyResult(plugin_id, True, migration_id, plan.describe(), duration)
        except ProblemError as problem:
            if rendered is not None and problem.kind in ("database", "retryable"):
                self._record_failure(plugin_id, owner, spec, plan.describe(), rendered, started, problem)
            raise

    def _record(
        self,
        conn: Connection,
        plugin_id: str,
        migration_id: str,
        kind: str,
        owner: str,
        spec: ExtensionSchemaSpec | None,
        description: list[str],
        rendered: RenderedPlan,
        status: str,
        started: datetime.datetime,
        duration_ms: int | None,
        error: str | None,
    ) -> None:
        now = _now()
        conn.execute(
            sa.insert(self.migrations).values(
                id=str(uuid.uuid4()),
                plugin_id=plugin_id,
                migration_id=migration_id,
                kind=kind,
                owner=owner,
                version=spec.version if spec else "",
                description=description,
                schema_definition=json.loads(spec.canonical_json()) if spec else None,
                migration_sql=script(rendered.statements),
                rollback_sql=script(rendered.rollback),
                statements=list(rendered.statements),
                rollback_statements=list(rendered.rollback),
                foreign_keys_off=rendered.foreign_keys_off,
                checksum_schema=spec.checksum() if spec else None,
                checksum_sql=sql_checksum(rendered.statements, rendered.rollback),
                status=status,
                execution_start=started,
                execution_end=now,
                duration_ms=duration_ms,
                error_message=error,
                created_at=now,
                updated_at=now,
            )
        )

    def _record_failure(
        self,
        plugin_id: str,
        owner: str,
        spec: ExtensionSchemaSpec,
        description: list[str],
        rendered: RenderedPlan,
        started: datetime.datetime,
        problem: ProblemError,
    ) -> None:
        message = problem.problems[0].message
        with contextlib.suppress(ProblemError), self._transaction() as conn:
            self._lock(conn, plugin_id)
            failed_id = self._next_migration_id(conn, plugin_id)
            self._record(
                conn,
                plugin_id,
                failed_id,
                "apply",
                owner,
                spec,
                description,
                rendered,
                "failed",
                started,
                None,
                message,
            )
            conn.execute(
                sa.update(self.schemas)
                .where(self.schemas.c.plugin_id == plugin_id)
                .values(status="failed", error_message=message, updated_at=_now())
            )

    def _locked_registration(self, conn: Connection, plugin_id: str) -> Registration:
        """Take the plugin's migration lock and its registration, or refuse (ES306)."""
        self._lock(conn, plugin_id)
        current = self.registration(plugin_id, conn)
        if current is None:
            raise ProblemError.one(
                "ES306", "plugin", f"plugin {plugin_id!r} is not registered; see `extschema status`", kind="refused"
            )
        return current

    def rollback(self, plugin_id: str) -> ApplyResult:
        """Undo the plugin's latest executed migration with its recorded rollback SQL."""
        self.ensure_registry()
        with self._transaction() as conn:
            self._locked_registration(conn, plugin_id)
            self._verify_history(conn, plugin_id)
            executed = [r for r in self._history_rows(conn, plugin_id) if r.kind == "apply" and r.status == "executed"]
            if not executed:
                raise ProblemError.one(
                    "ES305", "plugin", f"plugin {plugin_id!r} has no executed migration to roll back", kind="refused"
                )
            latest = executed[-1]
            if len(executed) == 1:
                self._refuse_if_dependents(conn, plugin_id)
            row = conn.execute(
                sa.select(self.migrations).where(
                    self.migrations.c.plugin_id == plugin_id, self.migrations.c.migration_id == latest.migration_id
                )
            ).one()
        clock = time.perf_counter()
        with self._transaction(bool(row.foreign_keys_off)) as conn:
            self._lock(conn, plugin_id)
            self._run(conn, row.rollback_statements, bool(row.foreign_keys_off))
            conn.execute(
                sa.update(self.migrations)
                .where(self.migrations.c.id == row.id)
                .values(status="rolled_back", updated_at=_now())
            )
            previous = executed[-2] if len(executed) > 1 else None
            if previous is None:
                conn.execute(sa.delete(self.schemas).where(self.schemas.c.plugin_id == plugin_id))
            else:
                prev_row = conn.execute(
                    sa.select(
                        self.migrations.c.schema_definition,
                        self.migrations.c.checksum_schema,
                        self.migrations.c.version,
                    ).where(
                        self.migrations.c.plugin_id == plugin_id,
                        self.migrations.c.migration_id == previous.migration_id,
                    )
                ).one()
                conn.execute(
                    sa.update(self.schemas)
                    .where(self.schemas.c.plugin_id == plugin_id)
                    .values(
                        schema_definition=prev_row.schema_definition,
                        checksum=prev_row.checksum_schema,
                        version=prev_row.version,
                        status="active",
                        error_message=None,
                        updated_at=_now(),
                    )
                )
        return ApplyResult(
            plugin_id,
            True,
            latest.migration_id,
            [f"rolled back migration {latest.migration_id}"],
            int((time.perf_counter() - clock) * 1000),
        )

    def _refuse_if_dependents(self, conn: Connection, plugin_id: str) -> None:
        rows = conn.execute(sa.select(self.schemas.c.plugin_id, self.schemas.c.schema_definition)).all()
        dependents = sorted(r.plugin_id for r in rows if plugin_id in r.schema_definition.get("dependsOn", []))
        if dependents:
            raise ProblemError.one(
                "ES303",
                "plugin",
                f"plugin {plugin_id!r} is still needed by {', '.join(dependents)} (dependsOn); delete those first",
                kind="refused",
            )

    def delete(
        self, plugin_id: str, teardown: Callable[[ExtensionSchemaSpec], Plan], retain: bool | None = None
    ) -> ApplyResult:
        """Remove a plugin: drop its objects (after backing up their data) or, with Retain, only
        unregister it. Refused while another plugin depends on it.

        *teardown* plans the drop from the registered spec; like :meth:`apply`, the plan is
        rendered and run in one transaction under the plugin's lock, and :class:`StalePlan` is
        raised when the registration changed after planning.
        """
        self.ensure_registry()
        clock = time.perf_counter()
        planned_from = self.registration(plugin_id)
        if planned_from is None:
            raise ProblemError.one(
                "ES306", "plugin", f"plugin {plugin_id!r} is not registered; see `extschema status`", kind="refused"
            )
        keep = planned_from.spec.deletion_policy == "Retain" if retain is None else retain
        plan = Plan(plugin_id, ()) if keep else teardown(planned_from.spec)
        with self._transaction(self.dialect.needs_foreign_keys_off(plan)) as conn:
            current = self._locked_registration(conn, plugin_id)
            if current.checksum != planned_from.checksum:
                raise StalePlan(plugin_id)
            self._refuse_if_dependents(conn, plugin_id)
            self._verify_history(conn, plugin_id)
            migration_id = self._next_migration_id(conn, plugin_id)
            rendered = self.dialect.render_plan(plan, backup_tag=f"m{migration_id}")
            self._run(conn, rendered.statements, rendered.foreign_keys_off)
            description = ["unregistered (tables retained)"] if keep else ["dropped all objects (data backed up)"]
            duration = int((time.perf_counter() - clock) * 1000)
            self._record(
                conn,
                plugin_id,
                migration_id,
                "unregister" if keep else "delete",
                current.owner,
                current.spec,
                description,
                rendered,
                "executed",
                _now(),
                duration,
                None,
            )
            conn.execute(sa.delete(self.schemas).where(self.schemas.c.plugin_id == plugin_id))
        return ApplyResult(plugin_id, True, migration_id, description, duration)

    def repair(self, plugin_id: str) -> list[str]:
        """Re-record the checksums of a plugin's migrations (after a deliberate edit)."""
        self.ensure_registry()
        repaired: list[str] = []
        with self._transaction() as conn:
            self._lock(conn, plugin_id)
            for row in conn.execute(sa.select(self.migrations).where(self.migrations.c.plugin_id == plugin_id)).all():
                if row.checksum_sql != sql_checksum(
                    row.statements, row.rollback_statements
                ) or row.migration_sql != script(row.statements):
                    conn.execute(
                        sa.update(self.migrations)
                        .where(self.migrations.c.id == row.id)
                        .values(
                            checksum_sql=sql_checksum(row.statements, row.rollback_statements),
                            migration_sql=script(row.statements),
                            rollback_sql=script(row.rollback_statements),
                            updated_at=_now(),
                        )
                    )
                    repaired.append(row.migration_id)
        return repaired

    def _history_rows(self, conn: Connection, plugin_id: str | None) -> list[MigrationRecord]:
        query = sa.select(self.migrations).order_by(self.migrations.c.plugin_id, self.migrations.c.migration_id)
        if plugin_id is not None:
            query = query.where(self.migrations.c.plugin_id == plugin_id)
        records = []
        for row in conn.execute(query):
            ok = row.checksum_sql == sql_checksum(
                row.statements, row.rollback_statements
            ) and row.migration_sql == script(row.statements)
            records.append(
                MigrationRecord(
                    plugin_id=row.plugin_id,
                    migration_id=row.migration_id,
                    kind=row.kind,
                    version=row.version,
                    status=row.status,
                    description=list(row.description),
                    migration_sql=row.migration_sql,
                    rollback_sql=row.rollback_sql,
                    checksum_schema=row.checksum_schema,
                    checksum_sql=row.checksum_sql,
                    checksum_ok=ok,
                    execution_start=row.execution_start,
                    execution_end=row.execution_end,
                    duration_ms=row.duration_ms,
                    error_message=row.error_message,
                )
            )
        return records

    def history(self, plugin_id: str | None = None) -> list[MigrationRecord]:
        self.ensure_registry()
        with self._transaction() as conn:
            return self._history_rows(conn, plugin_id)


def _database_message(error: BaseException) -> str:
    """The database's own words, without SQLAlchemy's wrapping and SQL echo."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    sqlstate = getattr(original, "sqlstate", None)
    first = text.splitlines()[0] if text else type(original).__name__
    return f"{first} (SQLSTATE {sqlstate})" if sqlstate else first
