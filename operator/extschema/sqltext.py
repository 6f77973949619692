"""Raw SQL text read by PostgreSQL's own parser (pglast): statements, the tables they name, and the
same text with the plugin's tables renamed for SQLite. Pure, below validation and planning, which
both read raw steps (validation checks them; planning counts and backs up what a rollbackSql names).

pglast costs memory (~5-10 MB resident): import this module only where a spec or plan has raw SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pglast
from pglast import ast
from pglast.parser import ParseError

from extschema import naming


@dataclasses.dataclass(frozen=True)
class Statement:
    """One statement of a step: its parse tree, its text and where it starts in the step (characters)."""

    node: ast.Node
    text: str
    start: int


class SqlSyntaxError(ValueError):
    """The step does not parse; *offset* is where the parser stopped (characters into the step)."""

    def __init__(self, message: str, offset: int | None) -> None:
        super().__init__(message)
        self.offset = offset


def parse(sql: str) -> list[Statement]:
    """The statements of *sql*, in order (raises :class:`SqlSyntaxError`)."""
    try:
        raw = pglast.parse_sql(sql)
    except ParseError as error:
        message, offset = error.args if len(error.args) == 2 else (str(error), None)
        raise SqlSyntaxError(str(message), offset if isinstance(offset, int) else None) from None
    found: list[Statement] = []
    for item in raw:
        start = item.stmt_location or 0
        end = start + item.stmt_len if item.stmt_len else len(sql)
        assert item.stmt is not None  # the parser gives every raw statement a tree
        found.append(Statement(item.stmt, sql[start:end].strip(), start))
    return found


def statements(sql: str, plugin_id: str, table: Callable[[str], str] | None = None) -> list[str]:
    """The statements of a checked step as a database runs them, one string each.

    With *table* (a logical table name to its physical name, quoted), every ``ext_<plugin_id>.<t>``
    becomes ``table(t)``, aliased to ``t`` where the statement gave no alias: how SQLite, which has
    no schemas, names the plugin's tables. Without it the statements are exactly as written.
    """
    parsed = parse(sql)
    if table is None:
        return [s.text for s in parsed]
    schema = naming.plugin_schema(plugin_id)
    tokens = [t for t in pglast.parser.scan(sql) if t.name not in ("C_COMMENT", "SQL_COMMENT")]
    edits: list[tuple[int, int, str]] = []
    for statement in parsed:
        for rv in relations(statement.node):
            if rv.schemaname != schema or rv.relname is None or rv.location is None:
                continue
            first = next(i for i, token in enumerate(tokens) if token.start == rv.location)
            if tokens[first + 1].name != "ASCII_46":  # schema "." name, checked by validation
                raise ValueError(f"unexpected text at {rv.location} of a raw SQL step")
            end = tokens[first + 2].end + 1
            alias = "" if rv.alias is not None else f" AS {quote(rv.relname)}"
            edits.append((rv.location, end, table(rv.relname) + alias))
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    # Offsets moved: split the rewritten text again (it parses: names were replaced by names).
    return [s.text for s in parse(sql)]


def tables_named(sql: str, plugin_id: str) -> list[str]:
    """The plugin's tables (logical names) a checked step's *sql* names, in order of first mention:
    what it may read or change (a step may name no other table, :func:`refusals`)."""
    schema = naming.plugin_schema(plugin_id)
    found = [rv.relname for s in parse(sql) for rv in relations(s.node) if rv.schemaname == schema and rv.relname]
    return list(dict.fromkeys(found))


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def children(node: ast.Node) -> Iterator[tuple[str, Any]]:
    for attribute in node:
        yield attribute, getattr(node, attribute)


def relations(node: Any) -> Iterator[ast.RangeVar]:
    if isinstance(node, tuple | list):
        for item in node:
            yield from relations(item)
    elif isinstance(node, ast.Node):
        if isinstance(node, ast.RangeVar):
            yield node
        for _, value in children(node):
            yield from relations(value)
