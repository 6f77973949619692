"""``extschema analyze``: EXPLAIN the statements the REST API issues for a plugin's tables, judge each plan.

The statements are the API's own (``EntityTable.statements()``: get, list, every filter and sort, every
relationship lookup, the lookups an ON DELETE from a referenced table triggers), explained in one
transaction that is rolled back: never executed (no ``EXPLAIN ANALYZE``), nothing left behind. Verdicts and
suggestions come from :mod:`extschema.querycheck`; a suggested index is costed with hypopg where the
server has it. Tables with fewer rows than ``min_rows`` are left out: on a small table every plan is fine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    Grouping,
    UnaryExpression,
)
from sqlalchemy.sql.expression import Executable

from extschema import naming, planning, querycheck
from extschema.dialects import ErrorClass
from extschema.dialects.explain import EXPLAINERS, TAG, Explainer, Statistics
from extschema.engine import entities
from extschema.engine.connection import Database, database_message
from extschema.engine.registry import Registration
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PhysicalName
from extschema.planning import IndexDef
from extschema.problems import ProblemError

#: Tables with fewer rows are not analysed (the planner's estimate where it keeps one, else a bounded count).
DEFAULT_MIN_ROWS = 1000
#: The largest threshold taken (counting stops there; a LIMIT must fit 64 bits).
MAX_MIN_ROWS = 10**12
#: Rows sampled to pick a filter's parameter: the rarest value seen, the one an index is for.
_SAMPLE_ROWS = 10_000
_PG_STATEMENT_TIMEOUT_MS = 10_000


class StatementLike(Protocol):
    """What analysis needs of a statement (``engine.entities.NamedStatement`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def statement(self) -> Executable: ...
    @property
    def params(self) -> Mapping[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class Verification:
    """The suggested index tried as a hypothetical one (hypopg): the plan's cost before and after."""

    status: str  # verified | not-better | unverified
    reason: str = ""
    cost_before: float | None = None
    cost_after: float | None = None
    index: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason or None,
            "costBefore": self.cost_before,
            "costAfter": self.cost_after,
            "index": self.index,
        }


@dataclasses.dataclass(frozen=True)
class Suggestion:
    fields: tuple[str, ...]
    #: The ``indexes:`` entry to add to the spec (None for a join table, which the spec does not declare).
    yaml: str | None
    #: The index's name once applied.
    index_name: str
    verification: Verification

    def as_dict(self) -> dict[str, Any]:
        return {
            "fields": list(self.fields),
            "yaml": self.yaml,
            "indexName": self.index_name,
            "verification": self.verification.as_dict(),
        }


@dataclasses.dataclass(frozen=True)
class Finding:
    table: str
    statement: str
    sql: str
    verdict: querycheck.Verdict
    index: str | None
    reason: str
    rows: float | None
    cost: float | None
    plan: str
    params: dict[str, Any]
    suggestion: Suggestion | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "statement": self.statement,
            "verdict": str(self.verdict),
            "index": self.index,
            "reason": self.reason or None,
            "estimatedRows": self.rows,
            "cost": self.cost,
            "sql": self.sql,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "plan": self.plan,
            "suggestion": self.suggestion.as_dict() if self.suggestion else None,
        }


@dataclasses.dataclass(frozen=True)
class Analysis:
    plugin_id: str
    backend: str
    min_rows: int
    findings: tuple[Finding, ...]
    #: Tables left out: fewer rows than ``min_rows`` (name → rows).
    skipped: dict[str, float]
    statistics: Statistics

    def as_dict(self) -> dict[str, Any]:
        return {
            "pluginId": self.plugin_id,
            "database": self.backend,
            "minRows": self.min_rows,
            "findings": [f.as_dict() for f in self.findings],
            "skipped": [{"table": t, "rows": r} for t, r in sorted(self.skipped.items())],
            "statistics": {
                "available": self.statistics.available,
                "reason": self.statistics.reason or None,
                "statements": list(self.statistics.rows),
            },
        }


def analyze(
    database: Database,
    spec: ExtensionSchemaSpec,
    statements: Sequence[StatementLike],
    min_rows: int = DEFAULT_MIN_ROWS,
    verify: bool = True,
) -> Analysis:
    """Explain *statements* (of plugin *spec*'s tables) and judge each; see the module's description."""
    dialect = database.dialect
    explainer = EXPLAINERS[dialect.name]()
    plugin_id = spec.plugin_id
    declared = {t.name for t in spec.tables}
    findings: list[Finding] = []
    skipped: dict[str, float] = {}
    with database.reading() as conn:
        transaction = conn.begin()
        try:
            if explainer.costs:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_PG_STATEMENT_TIMEOUT_MS}")
            inspector = sa.inspect(conn)
            sizes: dict[str, float] = {}
            samples: dict[tuple[str, str], Any] = {}  # (table, column) -> the rarest value, sampled once
            logical = {dialect.namer.table(plugin_id, t.name): t.name for t in planning.shape(spec).tables}
            for st in statements:
                table = subject(st, logical)
                physical = dialect.namer.table(plugin_id, table)
                if table not in sizes:
                    sizes[table] = explainer.table_rows(conn, physical, min_rows)
                if sizes[table] < min_rows:
                    skipped[table] = sizes[table]
                    continue
                findings.append(
                    _finding(conn, explainer, inspector, database, spec, st, table, min_rows, verify, declared, samples)
                )
            statistics = explainer.statistics(conn, plugin_id, naming.plugin_schema(plugin_id))
        finally:
            transaction.rollback()
    return Analysis(plugin_id, dialect.name, min_rows, tuple(findings), skipped, statistics)


def subject(st: StatementLike, logical: Mapping[PhysicalName, str]) -> str:
    """The plugin table *st* reads: its own table, else the plugin table it names (an include reads the
    related table: ``include:…`` statements are listed with the table whose rows embed the others)."""
    found = [
        logical[PhysicalName(e.schema, e.name)]
        for e in visitors.iterate(st.statement)  # type: ignore[arg-type]
        if isinstance(e, sa.Table) and PhysicalName(e.schema, e.name) in logical
    ]
    return st.table if st.table in found or not found else found[0]


def _finding(
    conn: sa.Connection,
    explainer: Explainer,
    inspector: sa.Inspector,
    database: Database,
    spec: ExtensionSchemaSpec,
    st: StatementLike,
    table: str,
    min_rows: int,
    verify: bool,
    declared: set[str],
    samples: dict[tuple[str, str], Any],
) -> Finding:
    dialect = database.dialect
    physical = dialect.namer.table(spec.plugin_id, table)
    targets = _targets(st.statement, physical)
    relations = {physical.name, *(getattr(t, "name", physical.name) for t in targets)}
    need, binds = need_of(st.statement, targets)
    compiled = st.statement.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
    sql = str(compiled)
    params = {**compiled.params, **st.params}
    for column, bind in binds.items():  # the rarest value: the one an index is for (costs depend on it)
        if (table, column) not in samples:
            samples[(table, column)] = _rare_value(conn, physical, column)
        rare = samples[(table, column)]
        if rare is not None and bind in compiled.bind_names:
            params[compiled.bind_names[bind]] = rare
    try:
        with conn.begin_nested():
            plan = explainer.explain(conn, st.statement, params)
    except sa.exc.DBAPIError as error:  # no right to it (EXPLAIN DELETE needs DELETE): say so, go on
        if dialect.classify(error) is not ErrorClass.PERMANENT:
            raise  # the database went away or asks for a retry: the whole run says so (ES401/ES403)
        why = f"the database refused to explain it: {database_message(error)}"
        return Finding(table, st.name, sql, querycheck.Verdict.UNEXPLAINED, None, why, None, None, "", params)
    indexes = _indexes(inspector, physical)
    judged = querycheck.judge(plan, need, relations, indexes, min_rows, table)
    suggestion = None
    if judged.verdict is querycheck.Verdict.MISSING_INDEX:
        index = IndexDef(judged.suggestion)
        verification = Verification("unverified", "not asked (--no-verify)")
        if verify:
            verification = _verify(
                conn, explainer, dialect.create_index(spec.plugin_id, table, index), plan, st, params
            )
        suggestion = Suggestion(
            judged.suggestion,
            querycheck.suggestion_yaml(table, judged.suggestion) if table in declared else None,
            dialect.index_name(spec.plugin_id, table, index),
            verification,
        )
    return Finding(
        table, st.name, sql, judged.verdict, judged.index, judged.reason, plan.rows, plan.cost, plan.text, params,
        suggestion,
    )  # fmt: skip


def _verify(
    conn: sa.Connection,
    explainer: Explainer,
    create_index: str,
    before: querycheck.PlanSummary,
    st: StatementLike,
    params: Mapping[str, Any],
) -> Verification:
    if not explainer.costs:
        return Verification("unverified", "hypothetical indexes need PostgreSQL with hypopg")
    refused = explainer.hypothetical_index(conn, create_index)
    if refused is not None:
        return Verification("unverified", refused, before.cost)
    try:
        after = explainer.explain(conn, st.statement, params)
    finally:
        explainer.drop_hypothetical(conn)
    used = next((s.index for s in after.scans if s.index and s.index.startswith("<")), None)
    better = used is not None and after.cost is not None and before.cost is not None and after.cost < before.cost
    return Verification("verified" if better else "not-better", "", before.cost, after.cost, used)


def need_of(statement: Executable, targets: Iterable[Any]) -> tuple[querycheck.Need, dict[str, BindParameter[Any]]]:
    """What *statement* asks of the table *targets* (the table and its aliases in the statement): its equality
    filters and order, and the bound parameter compared with each filtered column."""
    mine = set(targets)
    filters: list[str] = []
    binds: dict[str, BindParameter[Any]] = {}
    where = getattr(statement, "whereclause", None)
    if where is not None:
        for element in _conjuncts(where):  # inside an OR (a keyset's "after"), an equality filters nothing alone
            if not isinstance(element, BinaryExpression) or element.operator not in (operators.eq, operators.in_op):
                continue
            column, other = element.left, element.right
            if not isinstance(column, ColumnClause) or column.table not in mine:
                continue
            filters.append(column.name)
            if element.operator is operators.eq and isinstance(other, BindParameter) and column.name != "id":
                binds[column.name] = other
    order: list[str] = []
    for clause in getattr(statement, "_order_by_clauses", ()):
        while isinstance(clause, UnaryExpression):
            clause = clause.element
        if isinstance(clause, ColumnClause) and clause.table in mine:
            order.append(clause.name)
    return querycheck.Need(tuple(dict.fromkeys(filters)), tuple(dict.fromkeys(order))), binds


def _conjuncts(clause: Any) -> Iterator[Any]:
    """The conditions *clause* ANDs together."""
    while isinstance(clause, Grouping):
        clause = clause.element
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for part in clause.clauses:
            yield from _conjuncts(part)
    else:
        yield clause


def _targets(statement: Executable, physical: PhysicalName) -> list[Any]:
    """The table *physical* as *statement* uses it: the table itself, and every alias of it."""

    def mine(element: Any) -> bool:
        if isinstance(element, sa.Table):
            return bool(element.name == physical.name and element.schema == physical.schema)
        return isinstance(element, sa.Alias) and getattr(element.element, "name", None) == physical.name

    return [e for e in visitors.iterate(statement) if mine(e)]  # type: ignore[arg-type]


def _indexes(inspector: sa.Inspector, physical: PhysicalName) -> dict[str, tuple[str, ...]]:
    """The table's indexes now (name → columns), the primary key and unique constraints included."""
    found: dict[str, tuple[str, ...]] = {}
    primary = inspector.get_pk_constraint(physical.name, schema=physical.schema)
    found[primary.get("name") or "PRIMARY KEY"] = tuple(primary.get("constrained_columns") or ("id",))
    for index in inspector.get_indexes(physical.name, schema=physical.schema):
        if index["name"]:
            found[index["name"]] = tuple(str(c) for c in index["column_names"])
    for unique in inspector.get_unique_constraints(physical.name, schema=physical.schema):
        if unique["name"]:
            found[unique["name"]] = tuple(unique["column_names"])
    return found


def _rare_value(conn: sa.Connection, physical: PhysicalName, column: str) -> Any:
    table = sa.table(physical.name, sa.column(column), schema=physical.schema)
    sample = sa.select(table.c[column]).where(table.c[column].is_not(None)).limit(_SAMPLE_ROWS).subquery()
    query = sa.select(sample.c[column]).group_by(sample.c[column]).order_by(sa.func.count(), sample.c[column])
    query = query.limit(1).prefix_with(TAG)
    try:
        with conn.begin_nested():
            return conn.execute(query).scalar()
    except sa.exc.DBAPIError:
        return None


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


# --- the API's statements ---------------------------------------------------------------------------------


def api_statements(
    database: Database, spec: ExtensionSchemaSpec, catalog: entities.EntityCatalog | None = None
) -> list[entities.NamedStatement]:
    """The statements the REST API issues for *spec*'s tables (``EntityTable.statements()``: the same builders
    the request handlers call; *catalog*: the server's own), for an active plugin; none for another."""
    if catalog is not None:
        return [s for table in catalog.snapshot().plugin_tables(spec.plugin_id) for s in table.statements()]
    own = entities.EntityCatalog(database)
    try:
        return [s for table in own.snapshot().plugin_tables(spec.plugin_id) for s in table.statements()]
    finally:
        own.close()


def analysable(database: Database, plugin_id: str, registration: Registration | None) -> ExtensionSchemaSpec:
    """The registered spec of *plugin_id*, or why the plugin cannot be analysed: not registered (ES306), not
    active (ES751: the API serves none of its tables), or tables missing from the database (ES750: drift)."""
    if registration is None:
        raise ProblemError.one(
            "ES306", "plugin", f"plugin {plugin_id!r} is not registered; see `extschema status`", kind="refused"
        )
    if registration.status != "active":
        raise ProblemError.one(
            "ES751",
            "plugin",
            f"plugin {plugin_id!r} is {registration.status}, not active, so the API serves none of its tables; "
            f"`extschema history {plugin_id}` shows its last migration: apply its schema again",
            kind="refused",
        )
    spec = registration.spec
    namer = database.dialect.namer
    expected = {t.name: str(namer.table(plugin_id, t.name)) for t in planning.shape(spec).tables}
    with database.reading() as conn:
        present = set(database.dialect.plugin_tables(sa.inspect(conn), plugin_id))
    missing = sorted(name for name, physical in expected.items() if physical not in present)
    if missing:
        raise ProblemError.one(
            "ES750",
            "plugin",
            f"plugin {plugin_id!r} has no table {', '.join(missing)} in the database, so its statements cannot be "
            f"explained; see `extschema drift {plugin_id}` and repair it with `extschema drift {plugin_id} --repair`",
            kind="refused",
        )
    return spec


def analyze_plugin(
    database: Database,
    plugin_id: str,
    registration: Registration | None,
    min_rows: int = DEFAULT_MIN_ROWS,
    verify: bool = True,
    catalog: entities.EntityCatalog | None = None,
) -> Analysis:
    """Analyse the API's statements for *plugin_id* (as *registration* records it): what the CLI and the API call."""
    spec = analysable(database, plugin_id, registration)
    return analyze(database, spec, api_statements(database, spec, catalog), min_rows, verify)
