"""Raw SQL steps (``spec.migrations``): parsed by PostgreSQL's own parser, kept to the plugin's tables.

A raw step is the one place a plugin writes SQL itself, so it is checked before any target sees
it, with an allow-list rather than a deny-list: what the walker does not know is refused. A step
may hold ``SELECT``, ``INSERT``, ``UPDATE`` and ``DELETE`` statements (with ``WITH``, joins,
sub-queries, ``ON CONFLICT`` and ``RETURNING``) that name

- tables as ``ext_<plugin>.<table>``, where ``<table>`` is a table (or join table) of the spec —
  on PostgreSQL an unqualified name is looked up on ``search_path``, which may lead anywhere;
  a ``WITH`` query's own name is the one unqualified name allowed, and only where it is in scope;
- the builtin functions of :data:`FUNCTIONS`, unqualified or in ``pg_catalog``: nothing that reads
  files, opens connections, changes settings or calls user code (``pg_read_file``, ``dblink``,
  ``set_config``, ``nextval``… are not there);
- the builtin types of :data:`TYPES`, or the plugin's own enums as ``ext_<plugin>.<enum>``;
- operators by their plain name only (``OPERATOR(public.+)`` is refused).

Everything else is refused: DDL (schema changes belong in the declarative spec, where they are
planned, classified, reversed and checked for drift), ``DO`` blocks (their body cannot be
checked), transaction control, ``SET``/``SET ROLE``, ``COPY``, ``GRANT``, ``CREATE EXTENSION``,
``ALTER SYSTEM``, ``SELECT … INTO``, functions in ``FROM``, ``MERGE``, parameters, collations.

The same text runs on both databases: on SQLite (no schemas) :func:`statements` replaces each
``ext_<plugin>.<table>`` by the prefixed table ``ext_<plugin>__<table>``, aliased to ``<table>``
so that ``<table>.<column>`` keeps working; the rest of the text is sent as written. A step must
then be in the SQL both databases understand to run on both; one that is not fails on SQLite
when applied, and its migration is rolled back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pglast
from pglast import ast

from extschema import model, naming
from extschema.sqltext import SqlSyntaxError, Statement, parse
from extschema.sqltext import children as _children
from extschema.validation import context, messages

#: Statements a step may hold.
STATEMENTS: tuple[type[ast.Node], ...] = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)

#: Nodes of expressions and clauses that cannot, by themselves, reach outside the statement's tables.
#: Nodes naming objects (tables, functions, types, operators) are checked one by one in :class:`_Walker`.
NODES: frozenset[type[ast.Node]] = frozenset(
    {
        *STATEMENTS,
        ast.A_ArrayExpr,
        ast.A_Const,
        ast.A_Expr,
        ast.A_Indices,
        ast.A_Indirection,
        ast.A_Star,
        ast.Alias,
        ast.BitString,
        ast.Boolean,
        ast.BooleanTest,
        ast.BoolExpr,
        ast.CaseExpr,
        ast.CaseWhen,
        ast.CoalesceExpr,
        ast.ColumnRef,
        ast.CommonTableExpr,
        ast.Float,
        ast.FuncCall,
        ast.GroupingSet,
        ast.InferClause,
        ast.IndexElem,
        ast.Integer,
        ast.JoinExpr,
        ast.MinMaxExpr,
        ast.MultiAssignRef,
        ast.NullTest,
        ast.OnConflictClause,
        ast.RangeSubselect,
        ast.RangeVar,
        ast.ResTarget,
        ast.ReturningClause,
        ast.RowExpr,
        ast.SetToDefault,
        ast.SortBy,
        ast.SQLValueFunction,
        ast.String,
        ast.SubLink,
        ast.TypeCast,
        ast.TypeName,
        ast.WindowDef,
        ast.WithClause,
    }
)

#: Builtin functions (``pg_catalog``) a step may call: pure computations on values, aggregates and
#: window functions. None reads files or the catalog, connects anywhere, sleeps, or changes state.
FUNCTIONS = frozenset(
    {
        # text
        "lower", "upper", "initcap", "length", "char_length", "character_length", "octet_length",
        "substr", "substring", "replace", "trim", "btrim", "ltrim", "rtrim", "lpad", "rpad", "left", "right",
        "concat", "concat_ws", "position", "strpos", "split_part", "reverse", "repeat", "translate", "md5",
        "to_char", "to_number", "to_date", "to_timestamp",
        # numbers
        "abs", "round", "trunc", "ceil", "ceiling", "floor", "mod", "power", "sqrt", "sign",
        # dates and times
        "now", "timezone", "date_trunc", "date_part", "extract", "age", "make_date", "make_timestamp", "make_interval",
        # JSON
        "to_json", "to_jsonb", "json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array",
        "jsonb_set", "jsonb_strip_nulls", "json_typeof", "jsonb_typeof",
        # aggregates and window functions
        "count", "sum", "avg", "min", "max", "string_agg", "array_agg", "bool_and", "bool_or", "every",
        "row_number", "rank", "dense_rank", "lag", "lead", "first_value", "last_value",
        # identifiers
        "gen_random_uuid",
    }
)  # fmt: skip

#: Builtin types a step may cast to (as the parser names them: ``integer`` is ``pg_catalog.int4``).
TYPES = frozenset(
    {
        "bool", "int2", "int4", "int8", "numeric", "float4", "float8", "text", "varchar", "bpchar",
        "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid", "json", "jsonb", "bytea",
    }
)  # fmt: skip

_CATALOG = "pg_catalog"


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a statement may not run, and where (a character offset in the step, when known)."""

    message: str
    offset: int | None


def refusals(statement: Statement, plugin_id: str, tables: set[str], enums: set[str]) -> list[Refusal]:
    """What in *statement* a step may not do (empty when it may run).

    *tables* and *enums* are the plugin's own, by logical name; they must be named in the
    plugin's schema ``ext_<plugin_id>``.
    """
    if not isinstance(statement.node, STATEMENTS):
        return [
            Refusal(
                f"{_kind(statement.node)} is not allowed in a raw SQL step: only SELECT, INSERT, UPDATE and DELETE on "
                "the plugin's own tables are (schema changes belong in spec.tables and spec.enums)",
                statement.start,
            )
        ]
    walker = _Walker(naming.plugin_schema(plugin_id), tables, enums)
    walker.visit(statement.node, frozenset())
    return walker.refusals


def lexical_refusals(sql: str) -> list[Refusal]:
    """Text that PostgreSQL and SQLite could read differently from this parser, so that what was checked
    would not be what runs: backslashes in string literals (read as escapes when
    ``standard_conforming_strings`` is off), ``E''``, ``U&''`` and dollar-quoted strings (SQLite
    reads their insides as SQL), and nested block comments (SQLite ends the comment at the first ``*/``).
    Plain ``'…'`` literals (a quote doubled) and ``--`` or unnested ``/* */`` comments read the same everywhere.
    """
    found: list[Refusal] = []
    for token in pglast.parser.scan(sql):
        text = sql[token.start : token.end + 1]
        if token.name in ("SCONST", "USCONST") and (text[:1] != "'" or "\\" in text):
            found.append(
                Refusal(
                    "write string literals as plain '…' without backslashes (double a quote to include it): "
                    "E'…', U&'…', $$…$$ and backslashes are read differently by other settings and by SQLite",
                    token.start,
                )
            )
        elif token.name == "C_COMMENT" and "/*" in text[2:]:
            found.append(
                Refusal("nested block comments are not allowed: SQLite ends a comment at its first */", token.start)
            )
    return found


def check_migrations(ctx: context.Context) -> None:
    """ES101/ES104 for step ids, ES125 for SQL that does not parse, ES126 for SQL a step may not run."""
    spec = ctx.spec
    tables = set(ctx.tables) | {join.name for join in ctx.joins}
    enums = set(ctx.enums)
    seen: dict[str, int] = {}
    for index, step in enumerate(spec.migrations):
        path = ctx.at(f"migrations[{index}]")
        if step.id in seen:
            first = seen[step.id]
            ctx.add("ES104", f"{path}.id", f"step id {messages.show(step.id)} is already used by migrations[{first}].")
        seen.setdefault(step.id, index)
        reason = _id_reason(step.id)
        if reason:
            ctx.add("ES101", f"{path}.id", f"step id {messages.show(step.id)} is not valid: {reason}.")
        for key, sql, required in (("sql", step.sql, True), ("rollbackSql", step.rollback_sql, False)):
            _check_sql(ctx, spec, f"{path}.{key}", sql, required, tables, enums)


def _check_sql(
    ctx: context.Context,
    spec: model.ExtensionSchemaSpec,
    path: str,
    sql: str,
    required: bool,
    tables: set[str],
    enums: set[str],
) -> None:
    try:
        parsed = parse(sql)
    except SqlSyntaxError as error:
        ctx.add("ES125", path, f"the SQL does not parse{_where(sql, error.offset)}: {error}. Fix the statement.")
        return
    if not parsed and required:
        ctx.add("ES125", path, "the SQL holds no statement: write the step's statements, or remove the step.")
    for refusal in lexical_refusals(sql):
        ctx.add("ES126", path, f"{_where(sql, refusal.offset).strip(' ()') or 'the SQL'}: {refusal.message}.")
    for number, statement in enumerate(parsed, start=1):
        for refusal in refusals(statement, spec.plugin_id, tables, enums):
            ctx.add("ES126", path, f"statement {number}{_where(sql, refusal.offset)}: {refusal.message}.")


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_MAX_ID = 128


def _id_reason(step_id: str) -> str | None:
    if not step_id:
        return "it is empty"
    if len(step_id) > _MAX_ID:
        return f"it is longer than {_MAX_ID} characters"
    if not set(step_id) <= _ID_CHARS:
        return "use only letters, digits, '_', '.' and '-'"
    return None


def _where(sql: str, offset: int | None) -> str:
    if offset is None or offset < 0:
        return ""
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return f" (line {line}, column {column})"


def _kind(node: ast.Node) -> str:
    """What a node is, for a person: ``DoStmt`` → ``DO``, ``RangeFunction`` → ``a function in FROM``."""
    name = type(node).__name__
    return _KINDS.get(name) or (name.removesuffix("Stmt") + " statement" if name.endswith("Stmt") else name)


_KINDS = {
    "DoStmt": "DO", "TransactionStmt": "transaction control (BEGIN, COMMIT, ROLLBACK…)",
    "VariableSetStmt": "SET", "CopyStmt": "COPY", "GrantStmt": "GRANT", "GrantRoleStmt": "GRANT",
    "CreateExtensionStmt": "CREATE EXTENSION", "AlterSystemStmt": "ALTER SYSTEM", "MergeStmt": "MERGE",
    "ExplainStmt": "EXPLAIN", "CallStmt": "CALL", "CreateFunctionStmt": "CREATE FUNCTION",
    "RangeFunction": "a function in FROM", "LockingClause": "FOR UPDATE/FOR SHARE", "CollateClause": "COLLATE",
    "ParamRef": "a parameter ($n)", "RangeTableSample": "TABLESAMPLE", "RangeTableFunc": "XMLTABLE",
}  # fmt: skip


class _Walker:
    """Visits a statement's tree with the names of the ``WITH`` queries in scope."""

    def __init__(self, schema: str, tables: set[str], enums: set[str]) -> None:
        self.schema, self.tables, self.enums = schema, tables, enums
        self.refusals: list[Refusal] = []

    def refuse(self, message: str, node: ast.Node) -> None:
        location = getattr(node, "location", None)
        self.refusals.append(Refusal(message, location if isinstance(location, int) and location >= 0 else None))

    def visit(self, node: Any, scope: frozenset[str]) -> None:
        if isinstance(node, tuple | list):
            for item in node:
                self.visit(item, scope)
            return
        if not isinstance(node, ast.Node):
            return  # scalars: names already checked by their node, flags, enums
        if type(node) not in NODES:
            self.refuse(f"{_kind(node)} is not allowed in a raw SQL step", node)
            return
        match node:
            case ast.SelectStmt() | ast.InsertStmt() | ast.UpdateStmt() | ast.DeleteStmt():
                self.statement(node, scope)
            case ast.RangeVar():
                self.relation(node, scope)
            case ast.FuncCall():
                self.function(node, scope)
            case ast.TypeName():
                self.type_name(node, scope)
            case ast.A_Expr() | ast.SubLink() | ast.SortBy():
                # Operators are named in three places: a = b, a = ANY (SELECT …), ORDER BY a USING <.
                names = {ast.A_Expr: "name", ast.SubLink: "operName", ast.SortBy: "useOp"}[type(node)]
                operator = getattr(node, names)
                if operator is not None and len(operator) > 1:
                    shown = ".".join(_strings(operator))
                    self.refuse(f"operator {shown} names a schema: write the operator alone", node)
                self.children(node, scope, skip=(names,))
            case ast.ColumnRef() if len(node.fields or ()) > 2:
                self.refuse(
                    f"column reference {'.'.join(_strings(node.fields))} names a schema: write table.column "
                    "(or alias.column)",
                    node,
                )
            case ast.IndexElem() if node.collation or node.opclass:
                self.refuse("collations and operator classes are not allowed in a raw SQL step", node)
            case _:
                self.children(node, scope)

    def children(self, node: ast.Node, scope: frozenset[str], skip: Sequence[str] = ()) -> None:
        for attribute, value in _children(node):
            if attribute not in skip:
                self.visit(value, scope)

    def statement(self, node: ast.Node, scope: frozenset[str]) -> None:
        if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            self.refuse("SELECT … INTO creates a table: declare tables in spec.tables", node)
        with_clause = getattr(node, "withClause", None)
        if with_clause is not None:
            # Each WITH query sees those before it (all of them when RECURSIVE); the body sees all.
            names = [cte.ctename for cte in with_clause.ctes]
            for index, cte in enumerate(with_clause.ctes):
                visible = names if with_clause.recursive else names[:index]
                if cte.search_clause is not None or cte.cycle_clause is not None:
                    self.refuse("SEARCH and CYCLE clauses are not allowed in a raw SQL step", cte)
                self.visit(cte.ctequery, scope | frozenset(visible))
            scope = scope | frozenset(names)
        target = getattr(node, "relation", None)
        if target is not None:
            self.relation(target, frozenset())  # the table written to is never a WITH query
        self.children(node, scope, skip=("withClause", "relation", "intoClause"))

    def relation(self, node: ast.RangeVar, scope: frozenset[str]) -> None:
        shown = ".".join(n for n in (node.catalogname, node.schemaname, node.relname) if n)
        if node.catalogname is not None or (node.schemaname is not None and node.schemaname != self.schema):
            self.refuse(
                f"{shown} is outside the plugin: a step may only use the plugin's tables ({self.schema}.*)", node
            )
        elif node.schemaname is None:
            if node.relname not in scope:
                self.refuse(
                    f"table {node.relname} is not qualified: write {self.schema}.{node.relname} (an unqualified name "
                    "is looked up on the search path, which may lead outside the plugin)",
                    node,
                )
        elif node.relname not in self.tables:
            known = ", ".join(sorted(self.tables)) or "none"
            self.refuse(f"{shown} is not a table of the plugin (its tables: {known})", node)
        if node.alias is not None:
            self.visit(node.alias, scope)

    def function(self, node: ast.FuncCall, scope: frozenset[str]) -> None:
        names = _strings(node.funcname)
        builtin = len(names) == 1 or (len(names) == 2 and names[0] == _CATALOG)
        if not builtin or names[-1] not in FUNCTIONS:
            self.refuse(
                f"function {'.'.join(names)} is not allowed in a raw SQL step (allowed: builtin functions on values, "
                "such as lower, coalesce, count, now; see docs/raw-sql.md)",
                node,
            )
        self.children(node, scope, skip=("funcname",))

    def type_name(self, node: ast.TypeName, scope: frozenset[str]) -> None:
        names = _strings(node.names)
        own = len(names) == 2 and names[0] == self.schema and names[1] in self.enums
        builtin = (len(names) == 1 or (len(names) == 2 and names[0] == _CATALOG)) and names[-1] in TYPES
        if node.pct_type or node.setof or not (own or builtin):
            self.refuse(
                f"type {'.'.join(names)} is not allowed in a raw SQL step (builtin types such as integer, text, "
                f"numeric, date, timestamp, or the plugin's enums as {self.schema}.<enum>)",
                node,
            )
        self.children(node, scope, skip=("names",))


def _strings(nodes: Sequence[Any] | None) -> list[str]:
    return [n.sval or "" if isinstance(n, ast.String) else type(n).__name__ for n in nodes or ()]
