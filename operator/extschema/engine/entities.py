"""The rows of every active plugin's tables: SQLAlchemy Core statements, run for the REST API.

:class:`EntityCatalog` builds an :class:`EntityTable` (an ``sa.Table`` with the database's real types,
native ENUMs on PostgreSQL) for each table of each active plugin from the registry's specs, and
rebuilds them when the registry changes (one small query per request tells). Each table builds the
statements the API issues — get by id, keyset pages with filters and sorts, include lookups (one
query per relationship, whatever the page size), insert, patch, delete — and lists them all with
:meth:`EntityTable.statements` (``extschema analyze`` EXPLAINs exactly these). :class:`Session` runs
them in one transaction, as the plugin's own role on PostgreSQL when the target has per-plugin roles
(``SET LOCAL ROLE``: the database enforces the isolation too), and turns a row breaking a constraint
into an :class:`EntityError` (unique and foreign key: conflict; CHECK, NOT NULL: invalid).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import decimal
import functools
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Literal, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import model, planning, rowmodels
from extschema.dialects import Dialect, Violation
from extschema.dialects.base import READ_ONLY
from extschema.engine import catalog as live_catalog
from extschema.engine.connection import Database
from extschema.engine.registry import Registration, Registry
from extschema.planning import ColumnDef, TableDef
from extschema.problems import ProblemError

ID = "id"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

# --- column types: values as Python objects on both databases -------------------------------------


class _DecimalText(sa.types.TypeDecorator[decimal.Decimal]):
    """A Decimal kept as exact text (SQLite): written in plain notation, read back as a Decimal."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else format(decimal.Decimal(value), "f")

    def process_result_value(self, value: Any, dialect: Any) -> decimal.Decimal | None:
        return None if value is None else decimal.Decimal(str(value))


class _UuidText(sa.types.TypeDecorator[uuid.UUID]):
    """A UUID kept as its 36-character text (SQLite)."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(uuid.UUID(str(value)))

    def process_result_value(self, value: Any, dialect: Any) -> uuid.UUID | None:
        return None if value is None else uuid.UUID(str(value))


class _UtcDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """Timestamps with a time zone, written as UTC (SQLite keeps the wall clock only) and read back aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime.datetime | None:
        if value is None:
            return None
        aware = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
        return aware.astimezone(datetime.UTC)  # type: ignore[no-any-return]

    def process_result_value(self, value: Any, dialect: Any) -> datetime.datetime | None:
        if value is None:
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)  # type: ignore[no-any-return]


def column_type(dialect: Dialect, plugin_id: str, column: ColumnDef) -> sa.types.TypeEngine[Any]:
    """The column's type as the dialect creates it, reading and writing plain Python values."""
    base = dialect.column_type(plugin_id, column)
    match column.type:
        case "Decimal" if not isinstance(base, sa.Numeric):
            return _DecimalText()
        case "Uuid" if not isinstance(base, sa.Uuid):
            return _UuidText(base.length if isinstance(base, sa.String) else None)
        case "Json":
            # None is SQL NULL (a JSON null would pass NOT NULL and every CHECK): JSONB where native, else text.
            return type(base)(none_as_null=True) if isinstance(base, sa.JSON) else sa.JSON(none_as_null=True)
        case "DateTime":
            return _UtcDateTime(timezone=True)
    return base


# --- errors -----------------------------------------------------------------------------------------


class EntityError(Exception):
    """A request the rows refuse: ``not_found`` (404), ``conflict`` (409) or ``invalid`` (422)."""

    def __init__(self, kind: Literal["not_found", "conflict", "invalid"], code: str, path: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.path = path
        self.message = message


# --- relationships the API can embed (include=NAME) -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Include:
    """One embeddable relationship of a table.

    ``one``: this table's FK *column* references *target*.*referenced* (embeds a row or null);
    ``many``: *target*'s FK *column* references this table's *referenced* (embeds a list);
    ``through``: the join table *via* links this table (*via_left*) to *target* (*via_right*; a list).
    """

    name: str
    kind: Literal["one", "many", "through"]
    target: tuple[str, str]  # (plugin, table)
    column: str
    referenced: str = ID
    via: tuple[str, str] | None = None
    via_left: str = ""
    via_right: str = ""
    via_right_references: str = ID
    #: ``many`` of a one-to-one (the target holds a unique FK): embeds a row or null, not a list.
    single: bool = False


@dataclasses.dataclass(frozen=True)
class NamedStatement:
    """A statement the API issues, for EXPLAIN: *statement* carries its bound values (*params* repeats them)."""

    name: str
    table: str
    statement: sa.Executable
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Sort:
    field: str | None = None  # None: by id
    descending: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Sort:
        if not text:
            return cls()
        return cls(text[1:], True) if text.startswith("-") else cls(text, False)

    def __str__(self) -> str:
        return f"{'-' if self.descending else ''}{self.field or ID}"


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a page ended: the sort column's value and the id of its last row."""

    value: Any
    id: int


@dataclasses.dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next: Position | None


# --- one table ----------------------------------------------------------------------------------------


class EntityTable:
    """A plugin table as the API sees it: its SQLAlchemy table, which fields filter and sort, what it embeds."""

    def __init__(
        self,
        dialect: Dialect,
        plugin_id: str,
        definition: TableDef,
        metadata: sa.MetaData,
        models: rowmodels.TableModels,
        join: model.JoinTable | None = None,
        role: str | None = None,
    ) -> None:
        self.dialect = dialect
        self.plugin_id = plugin_id
        self.name = definition.name
        self.definition = definition
        self.join = join
        self.role = role
        physical = dialect.namer.table(plugin_id, definition.name)
        self.columns: dict[str, ColumnDef] = {c.name: c for c in definition.columns}
        self.table = sa.Table(
            physical.name,
            metadata,
            sa.Column(ID, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
            *(sa.Column(c.name, column_type(dialect, plugin_id, c), nullable=c.nullable) for c in definition.columns),
            schema=physical.schema,
        )
        self.models = models
        #: Fields a list may sort by (``sort=field``): those leading an index.
        self.sortable: tuple[str, ...] = tuple(f for f in models.sortable if f != ID)
        #: Fields a list may filter on (``?field=value``): indexed, enum, unique and foreign key fields.
        self.filterable: tuple[str, ...] = tuple(f for f in models.filterable if f != ID)
        self.includes: dict[str, Include] = {}
        #: Every table of the snapshot (the targets of :attr:`includes`), set when the snapshot links them.
        self.related: Mapping[tuple[str, str], EntityTable] = {}
        self._constraint_fields = self._constraints()

    def __repr__(self) -> str:
        return f"EntityTable({self.plugin_id}.{self.name})"

    @property
    def key(self) -> tuple[str, str]:
        return (self.plugin_id, self.name)

    def _constraints(self) -> dict[str, tuple[str, ...]]:
        """Constraint and index names -> the fields they are about (to point an error at its field)."""
        namer = self.dialect.namer
        found: dict[str, tuple[str, ...]] = {}
        for column in self.definition.columns:
            for suffix in ("check", "fkey", "key", "not_null"):
                found[namer.derived(self.plugin_id, self.name, [column.name], suffix)] = (column.name,)
        for index in (*self.definition.indexes, *self.definition.unique_together, *self.definition.column_indexes()):
            found[self.dialect.index_name(self.plugin_id, self.name, index)] = index.columns
        return found

    def fields_of(self, violation: Violation) -> tuple[str, ...]:
        if violation.columns:
            return tuple(c for c in violation.columns if c in self.columns or c == ID)
        if violation.constraint:
            return self._constraint_fields.get(violation.constraint, ())
        return ()

    # --- statements -----------------------------------------------------------------------------

    def get_statement(self, row_id: int) -> sa.Select[Any]:
        return sa.select(self.table).where(self.table.c[ID] == row_id)

    def page_statement(
        self, filters: Mapping[str, Any], sort: Sort, after: Position | None, limit: int
    ) -> sa.Select[Any]:
        """One page in keyset order (one row more than *limit*, to know whether another page follows)."""
        t = self.table
        query = sa.select(t)
        for name, value in filters.items():
            query = query.where(t.c[name].is_(None) if value is None else t.c[name] == value)
        row_id = t.c[ID]
        if sort.field is None:
            if after is not None:
                query = query.where(row_id < after.id if sort.descending else row_id > after.id)
            return query.order_by(row_id.desc() if sort.descending else row_id.asc()).limit(limit + 1)
        column = t.c[sort.field]
        nullable = self.columns[sort.field].nullable
        if after is not None:
            query = query.where(_after(column, row_id, after, sort.descending, nullable))
        if sort.descending:  # the exact reverse of ascending order: NULLs first, then ids down
            order = [column.desc().nulls_first() if nullable else column.desc(), row_id.desc()]
        else:
            order = [column.asc().nulls_last() if nullable else column.asc(), row_id.asc()]
        return query.order_by(*order).limit(limit + 1)

    def insert_statement(self, values: Mapping[str, Any]) -> sa.Insert:
        statement = sa.insert(self.table).returning(*self.table.c)
        return statement.values(dict(values)) if values else statement.values({})

    def update_statement(self, row_id: int, values: Mapping[str, Any]) -> sa.Update:
        t = self.table
        return sa.update(t).where(t.c[ID] == row_id).values(dict(values)).returning(*t.c)

    def delete_statement(self, row_id: int) -> sa.sql.dml.ReturningDelete[Any]:
        t = self.table
        return sa.delete(t).where(t.c[ID] == row_id).returning(t.c[ID])

    def lookup_statement(self, column: str, values: Collection[Any]) -> sa.Select[Any]:
        """Rows whose *column* is one of *values* (an include's one query), in id order."""
        t = self.table
        return sa.select(t).where(t.c[column].in_(sorted(values, key=str))).order_by(t.c[ID])

    def statements(self) -> list[NamedStatement]:
        """Every statement shape the API issues for this table, with sample values (for EXPLAIN): get, list,
        each allowed filter and sort (with and without a keyset position), each include's lookups, and the
        lookups deleting a referenced row makes the database run here."""
        found: list[NamedStatement] = []
        tables = self.related

        def add(name: str, statement: sa.Executable) -> None:
            params = dict(statement.compile().params)  # type: ignore[attr-defined]
            found.append(NamedStatement(name, self.name, statement, params))

        add("get", self.get_statement(1))
        add("list", self.page_statement({}, Sort(), None, DEFAULT_LIMIT))
        add("list:after", self.page_statement({}, Sort(), Position(None, 1), DEFAULT_LIMIT))
        for field in self.filterable:
            add(
                f"filter:{field}",
                self.page_statement({field: sample(self.columns[field])}, Sort(), None, DEFAULT_LIMIT),
            )
        for field in self.sortable:
            for descending in (False, True):
                sort = Sort(field, descending)
                add(f"sort:{sort}", self.page_statement({}, sort, None, DEFAULT_LIMIT))
                after = Position(sample(self.columns[field]), 1)
                add(f"sort:{sort}:after", self.page_statement({}, sort, after, DEFAULT_LIMIT))
        for include in self.includes.values():
            target = tables.get(include.target)
            if target is None:
                continue
            if include.kind == "one":
                add(f"include:{include.name}", target.lookup_statement(include.referenced, [1]))
            elif include.kind == "many":
                add(f"include:{include.name}", target.lookup_statement(include.column, [1]))
            elif include.via in tables:
                assert include.via is not None
                add(f"include:{include.name}:links", tables[include.via].lookup_statement(include.via_left, [1]))
                add(f"include:{include.name}", target.lookup_statement(include.via_right_references, [1]))
        # What deleting a referenced row makes the database look up here (ON DELETE, or the refusal).
        for column in self.definition.columns:
            if column.foreign_key is not None:
                t = self.table
                add(f"on-delete:{column.name}", sa.select(t.c[ID]).where(t.c[column.name] == sample(column)))
        return found


def _after(column: Any, row_id: Any, after: Position, descending: bool, nullable: bool) -> Any:
    """Rows after *after* in the order :meth:`EntityTable.page_statement` sorts by."""
    value = after.value
    if not descending:
        if value is None:  # among the NULLs, which come last
            return sa.and_(column.is_(None), row_id > after.id)
        later = [column > value, sa.and_(column == value, row_id > after.id)]
        return sa.or_(*later, column.is_(None)) if nullable else sa.or_(*later)
    if value is None:  # NULLs come first: then the rest of them, then every value
        return sa.or_(sa.and_(column.is_(None), row_id < after.id), column.is_not(None))
    return sa.or_(column < value, sa.and_(column == value, row_id < after.id))


def sample(column: ColumnDef) -> Any:
    """A value of the column's type, for statements rendered without a request."""
    match column.type:
        case "Int" | "BigInt":
            return 1
        case "Float":
            return 1.0
        case "Decimal":
            return decimal.Decimal(1)
        case "Boolean":
            return True
        case "Date":
            return datetime.date(2000, 1, 1)
        case "DateTime":
            return datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        case "Uuid":
            return uuid.UUID(int=0)
        case "Enum":
            return column.enum.values[0] if column.enum is not None and column.enum.values else ""
    return "x"


# --- values on the wire ------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """A row value as JSON (Decimals as strings: a float would round them)."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


def from_json(column: ColumnDef, value: Any) -> Any:
    """A value :func:`to_json` wrote, as the column's Python value (raises ValueError when it is not one)."""
    if value is None:
        return None
    match column.type:
        case "Date":
            return datetime.date.fromisoformat(value)
        case "DateTime":
            return datetime.datetime.fromisoformat(value)
        case "Decimal":
            return decimal.Decimal(value)
        case "Uuid":
            return uuid.UUID(value)
        case "Int" | "BigInt":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("not an integer")
            return value
    return value


# --- the catalog ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Snapshot:
    """The active plugins' tables as of one registry state (*fingerprint*)."""

    fingerprint: tuple[tuple[str, str, str], ...]
    registrations: tuple[Registration, ...]
    tables: dict[tuple[str, str], EntityTable]
    resolved: dict[str, planning.Resolved]

    def table(self, plugin_id: str, name: str) -> EntityTable | None:
        return self.tables.get((plugin_id, name))

    @functools.cached_property
    def roles(self) -> bool:
        """Whether any table is served as its plugin's role."""
        return any(t.role is not None for t in self.tables.values())

    def plugin_tables(self, plugin_id: str) -> list[EntityTable]:
        return [t for (plugin, _), t in self.tables.items() if plugin == plugin_id]

    def enums(self, plugin_id: str) -> dict[str, model.EnumSpec]:
        found = self.resolved.get(plugin_id)
        return {e.name: e for e in found.enums} if found is not None else {}


_EMPTY = Snapshot((), (), {}, {})


class EntityCatalog:
    """The tables of every active plugin of one database, rebuilt when the registry changes."""

    def __init__(self, database: Database, cursor_key: bytes | None = None) -> None:
        # A pool of its own, without a ping per checkout: the registry check opens each request.
        self.database = Database(database.url, database.dialect.namer.core_schema or "public", pre_ping=False)
        self.dialect = database.dialect
        self.registry = Registry(database)
        self._snapshot = _EMPTY
        self._lock = threading.Lock()
        # Cursors are signed so a changed one is refused (422), not read as another position.
        self._cursor_key = cursor_key or hashlib.sha256(b"extschema-cursor:" + database.url.encode()).digest()

    def close(self) -> None:
        self.database.close()

    # --- refreshing ---------------------------------------------------------------------------

    def _fingerprint(self, conn: Connection) -> tuple[tuple[str, str, str], ...]:
        if not self.registry.exists(conn):
            return ()
        c = self.registry.schemas.c
        rows = conn.execute(sa.select(c.plugin_id, c.checksum, c.status).order_by(c.plugin_id)).all()
        return tuple((str(p), str(k), str(s)) for p, k, s in rows)

    def snapshot(self) -> Snapshot:
        """The tables as the registry has them now: one query when nothing changed since the last call."""
        with self.database.transaction(read_only=True) as conn:
            fingerprint = self._fingerprint(conn)
        current = self._snapshot
        if fingerprint == current.fingerprint:
            return current
        with self._lock:
            if self._snapshot.fingerprint != fingerprint:
                self._snapshot = self._build()
            return self._snapshot

    @property
    def current(self) -> Snapshot:
        """The last snapshot taken (no query)."""
        return self._snapshot

    def _build(self) -> Snapshot:
        with self.database.transaction(read_only=True) as conn:
            fingerprint = self._fingerprint(conn)
            registrations = self.registry.registrations(conn) if fingerprint else []
            active = [r for r in registrations if r.status == "active"]
            roles = self.dialect.usable_plugin_roles(conn, [r.plugin_id for r in active]) if active else {}
        core_tables = {
            target.table
            for r in active
            for rel in r.spec.relationships
            if (target := model.parse_target(rel.target, r.plugin_id)) is not None and target.is_core
        }
        refs: dict[tuple[str, str], dict[str, model.FieldType | None]] = {}
        if core_tables:
            refs.update(live_catalog.core_catalog(self.database, columns_of=core_tables))
        for registration in active:
            refs.update(planning.reference_types_of(registration.spec))
        metadata = sa.MetaData()
        tables: dict[tuple[str, str], EntityTable] = {}
        resolved: dict[str, planning.Resolved] = {}
        for registration in active:
            spec = registration.spec
            try:
                found = planning.resolve(spec, refs)
            except ProblemError:  # a referenced core table is gone: the plugin's own columns still serve
                found = planning.shape(spec)
            resolved[spec.plugin_id] = found
            joins = {j.name: j for j in found.joins}
            models = rowmodels.models_for(found, spec.plugin_id)
            for definition in found.tables:
                tables[(spec.plugin_id, definition.name)] = EntityTable(
                    self.dialect,
                    spec.plugin_id,
                    definition,
                    metadata,
                    models[definition.name],
                    join=joins.get(definition.name),
                    role=roles.get(spec.plugin_id),
                )
        _link(tables)
        return Snapshot(fingerprint, tuple(active), tables, resolved)

    def checked(self, conn: Connection) -> Snapshot:
        """:meth:`snapshot`, with the registry check in *conn*'s transaction (a request's own)."""
        fingerprint = self._fingerprint(conn)
        if fingerprint == self._snapshot.fingerprint:
            return self._snapshot
        with self._lock:
            if self._snapshot.fingerprint != fingerprint:
                self._snapshot = self._build()
            return self._snapshot

    # --- running statements ---------------------------------------------------------------------

    def open(self, read_only: bool) -> tuple[RequestTransaction, Snapshot]:
        """A transaction for one request, the registry checked in it (the request's statements follow)."""
        for attempt in (1, 2):
            autocommit = read_only and self.dialect.autocommit_reads and not self._snapshot.roles
            transaction = RequestTransaction(self, read_only, autocommit)
            try:
                snapshot = transaction.check()
            except ProblemError as error:
                if attempt == 2 or error.kind != "unreachable":  # a pooled connection gone stale: once more
                    raise
                continue
            if autocommit and snapshot.roles:  # roles appeared with this registry change: SET LOCAL needs a transaction
                transaction.close()
                transaction = RequestTransaction(self, read_only)
            return transaction, snapshot
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def session(self, read_only: bool = False, within: RequestTransaction | None = None) -> Iterator[Session]:
        """The statements of one request in one transaction, committed at the end (errors of the rows as
        :class:`EntityError`); *within* a request's transaction when given, else a new one."""
        if within is not None:
            with within.committing() as conn:
                yield Session(self, conn)
            return
        with self.database.transaction(read_only=read_only) as conn:
            yield Session(self, conn)

    # --- cursors ----------------------------------------------------------------------------------

    def cursor(self, table: EntityTable, sort: Sort, filters: Mapping[str, Any], position: Position) -> str:
        value = to_json(position.value)
        payload = json.dumps([str(sort), _filters_key(filters), value, position.id], separators=(",", ":"))
        data = payload.encode()
        signature = hmac.new(self._cursor_key, table.name.encode() + b"\0" + data, "sha256").digest()[:12]
        return base64.urlsafe_b64encode(signature + data).decode().rstrip("=")

    def position(self, table: EntityTable, sort: Sort, filters: Mapping[str, Any], cursor: str) -> Position:
        """The position *cursor* names, for the same table, sort and filters (EntityError otherwise)."""
        invalid = EntityError(
            "invalid",
            "ES710",
            "query.after",
            "the cursor is not one this server gave for this list; pass the `next` value of the previous "
            "page unchanged, with the same sort and filters",
        )
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            signature, data = raw[:12], raw[12:]
            expected = hmac.new(self._cursor_key, table.name.encode() + b"\0" + data, "sha256").digest()[:12]
            if not hmac.compare_digest(signature, expected):
                raise invalid
            sort_text, filters_key, value, row_id = json.loads(data)
            if sort_text != str(sort) or filters_key != _filters_key(filters) or not isinstance(row_id, int):
                raise invalid
            column = table.columns.get(sort.field) if sort.field else None
            return Position(from_json(column, value) if column is not None else None, row_id)
        except (ValueError, TypeError, decimal.InvalidOperation):
            raise invalid from None


def _filters_key(filters: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(sorted((k, to_json(v)) for k, v in filters.items())).encode()).hexdigest()[:16]


def _link(tables: Mapping[tuple[str, str], EntityTable]) -> None:
    """Give each table the relationships rowmodels names that end at plugin rows (core rows are the host's)."""
    for table in tables.values():
        table.related = tables
        for name, rel in table.models.relationships.items():
            target = (rel.target_plugin, rel.target_table)
            if rel.target_is_core or target not in tables:
                continue
            if rel.through is not None:
                assert rel.through_column is not None and rel.through_target_column is not None
                via = (table.plugin_id, rel.through)
                if via not in tables:
                    continue
                table.includes[name] = Include(
                    name,
                    "through",
                    target,
                    rel.through_column,
                    rel.column,
                    via=via,
                    via_left=rel.through_column,
                    via_right=rel.through_target_column,
                    via_right_references=rel.target_column,
                )
            elif _holds(table, rel):
                table.includes[name] = Include(name, "one", target, rel.column, rel.target_column)
            else:
                single = not rel.many
                table.includes[name] = Include(name, "many", target, rel.column, rel.target_column, single=single)


def _holds(table: EntityTable, rel: rowmodels.Relationship) -> bool:
    """Whether *rel* goes out of *table* through its own FK column (else the target holds the column)."""
    if rel.many:
        return False
    column = table.columns.get(rel.column)
    fk = column.foreign_key if column is not None else None
    return fk is not None and (fk.references.plugin, fk.references.table) == (rel.target_plugin, rel.target_table)


class RequestTransaction:
    """One connection (and transaction) for one request, opened before routing to check the registry.

    Reads run without a transaction where the dialect says that saves a round trip and no plugin role is to
    be set (``SET LOCAL`` needs one). The catalog's connections are not pinged before use: the registry check
    is the first statement, and a connection found broken there is replaced once.
    """

    def __init__(self, catalog: EntityCatalog, read_only: bool, autocommit: bool = False) -> None:
        self.catalog = catalog
        self.read_only = read_only
        self.autocommit = autocommit
        database = catalog.database
        self.closed = True
        try:
            conn = database._engine(read_only).connect()
            if autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self.conn = conn
            self.closed = False
            self.conn.info[READ_ONLY] = read_only
            self._transaction: sa.RootTransaction | None = None if autocommit else self.conn.begin()
        except (sa.exc.DBAPIError, OSError) as error:
            if not self.closed:
                self.conn.close()
            raise database.problem(error) from error

    def check(self) -> Snapshot:
        try:
            return self.catalog.checked(self.conn)
        except (sa.exc.DBAPIError, OSError) as error:
            self.close()
            raise self.catalog.database.problem(error) from error

    @contextlib.contextmanager
    def committing(self) -> Iterator[Connection]:
        """The connection; its transaction commits when the block ends without an error."""
        try:
            yield self.conn
            if self._transaction is not None:
                self._transaction.commit()
                self._transaction = None
        except (sa.exc.DBAPIError, OSError) as error:
            raise self.catalog.database.problem(error) from error
        finally:
            self.close()

    def close(self) -> None:
        """Roll back what was not committed and give the connection back (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()
        finally:
            self.conn.close()


class Session:
    """The statements of one request, in one transaction, each as its table's plugin role where it has one."""

    def __init__(self, catalog: EntityCatalog, conn: Connection) -> None:
        self.catalog = catalog
        self.conn = conn
        self._role: str | None = None
        #: Statements run so far (include lookups are one each, whatever the page size).
        self.statements = 0

    def _run(self, table: EntityTable, statement: sa.Executable, path: str = "body") -> sa.CursorResult[Any]:
        if table.role is not None and table.role != self._role:
            self.conn.exec_driver_sql(self.catalog.dialect.set_role_sql(table.role))
            self._role = table.role
        self.statements += 1
        try:
            return self.conn.execute(statement)
        except sa.exc.StatementError as error:
            if isinstance(error, sa.exc.DBAPIError) or not isinstance(error.orig, OverflowError | ValueError):
                return self._failed(table, error, path)
            # A value the driver cannot even send (a timestamp beyond year 9999 once in UTC).
            raise EntityError(
                "invalid", "ES705", path, f"a value is out of the range the database stores: {error.orig}"
            ) from None
        except OverflowError as error:
            return self._failed(table, error, path)

    def _failed(self, table: EntityTable, error: Exception, path: str) -> NoReturn:
        """A row the database refused as an EntityError; any other database error as a problem."""
        violation = self.catalog.dialect.row_violation(error)
        if violation is not None:
            raise _refusal(table, violation, path) from None
        if isinstance(error, sa.exc.DBAPIError):
            raise self.catalog.database.problem(error) from error
        raise error

    def get(self, table: EntityTable, row_id: int) -> dict[str, Any]:
        row = self._run(table, table.get_statement(row_id)).mappings().first()
        if row is None:
            raise _not_found(table, row_id)
        return dict(row)

    def page(
        self, table: EntityTable, filters: Mapping[str, Any], sort: Sort, after: Position | None, limit: int
    ) -> Page:
        statement = table.page_statement(filters, sort, after, limit)
        rows = [dict(r) for r in self._run(table, statement, path="query").mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more and rows else None
        position = Position(last[sort.field] if sort.field else None, int(last[ID])) if last else None
        return Page(rows, position)

    def insert(self, table: EntityTable, values: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._run(table, table.insert_statement(values)).mappings().one())

    def update(self, table: EntityTable, row_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        if not values:
            return self.get(table, row_id)
        row = self._run(table, table.update_statement(row_id, values)).mappings().first()
        if row is None:
            raise _not_found(table, row_id)
        return dict(row)

    def delete(self, table: EntityTable, row_id: int) -> None:
        if self._run(table, table.delete_statement(row_id), path="path.id").first() is None:
            raise _not_found(table, row_id)

    def embed(self, snapshot: Snapshot, table: EntityTable, rows: list[dict[str, Any]], names: Sequence[str]) -> None:
        """Add each include of *names* to *rows*: a fixed number of statements per include, never one per row."""
        for name in names:
            include = table.includes[name]
            target = snapshot.tables[include.target]
            if include.kind == "one":
                keys = {r[include.column] for r in rows if r[include.column] is not None}
                found = self._lookup(target, include.referenced, keys)
                by_key = {r[include.referenced]: r for r in found}
                for row in rows:
                    row[name] = by_key.get(row[include.column])
            elif include.kind == "many":
                keys = {r[include.referenced] for r in rows if r[include.referenced] is not None}
                grouped: dict[Any, list[dict[str, Any]]] = {}
                for found_row in self._lookup(target, include.column, keys):
                    grouped.setdefault(found_row[include.column], []).append(found_row)
                for row in rows:
                    found_rows = grouped.get(row[include.referenced], [])
                    row[name] = (found_rows[0] if found_rows else None) if include.single else found_rows
            else:
                assert include.via is not None
                keys = {r[include.referenced] for r in rows if r[include.referenced] is not None}
                links = self._lookup(snapshot.tables[include.via], include.via_left, keys)
                targets = self._lookup(
                    target, include.via_right_references, {link[include.via_right] for link in links}
                )
                by_key = {r[include.via_right_references]: r for r in targets}
                linked: dict[Any, list[dict[str, Any]]] = {}
                for link in links:
                    if link[include.via_right] in by_key:
                        linked.setdefault(link[include.via_left], []).append(by_key[link[include.via_right]])
                for row in rows:
                    row[name] = linked.get(row[include.referenced], [])

    def _lookup(self, table: EntityTable, column: str, keys: Collection[Any]) -> list[dict[str, Any]]:
        if not keys:
            return []
        return [dict(r) for r in self._run(table, table.lookup_statement(column, keys)).mappings()]


def _not_found(table: EntityTable, row_id: int) -> EntityError:
    return EntityError("not_found", "ES702", "path.id", f"{table.plugin_id}.{table.name} has no row with id {row_id}")


def _refusal(table: EntityTable, violation: Violation, path: str) -> EntityError:
    fields = table.fields_of(violation)
    where = f"body.{fields[0]}" if fields and path == "body" and fields[0] != ID else path
    named = ", ".join(fields) or "the row"
    detail = f" ({violation.detail})" if violation.detail else ""
    match violation.kind:
        case "unique":
            return EntityError(
                "conflict", "ES703", where, f"another row already has this value of {named}{detail}; use another value"
            )
        case "foreign_key" if path == "path.id":
            return EntityError(
                "conflict", "ES704", path, f"other rows still reference this row{detail}; delete or change them first"
            )
        case "foreign_key":
            return EntityError(
                "conflict",
                "ES704",
                where,
                f"{named}: the referenced row does not exist{detail}; reference an existing row",
            )
        case "not_null":
            return EntityError("invalid", "ES705", where, f"{named} is required{detail}")
    return EntityError("invalid", "ES705", where, f"the database refused the value of {named}{detail}")
