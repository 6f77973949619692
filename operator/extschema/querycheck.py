"""Query plans judged: is a statement the API issues served by an index, and which index would serve it.

Pure: the engine EXPLAINs (``engine/analysis.py``) and hands the plans here. A PostgreSQL plan arrives as
``EXPLAIN (FORMAT JSON)`` output, a SQLite one as the rows of ``EXPLAIN QUERY PLAN``; both become a
:class:`PlanSummary`. :func:`judge` compares it with what the statement asks of its table (equality
filters, then order) and the table's indexes:

- ``ok``: every filter and the order are served by an index (or the table is the statement's own order);
- ``missing-index``: the table is read without an index on the filter fields (or sorted in full),
  and no index starts with the filtered (else sorted) fields: the suggestion is the statement's fields (filters,
  then order), as the ``indexes:`` YAML of the spec, so the index goes through plan, approval, rollback and drift;
- ``unexplained``: the database refused to explain it (the reason says why);
- ``slow-plan``: an index starting with the filtered (else sorted) fields exists, but the planner reads or
  sorts without it (statistics out of date, or a value too common for the index to pay).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from extschema import naming


class Verdict(enum.StrEnum):
    OK = "ok"
    MISSING_INDEX = "missing-index"
    SLOW_PLAN = "slow-plan"
    #: The database refused to explain the statement (e.g. no DELETE right for an ON DELETE lookup's DELETE).
    UNEXPLAINED = "unexplained"


@dataclasses.dataclass(frozen=True)
class Scan:
    """One read of a table in a plan."""

    #: The table (or its alias) as the plan names it.
    relation: str
    #: The index read, None for a full scan of the table.
    index: str | None = None
    #: The conditions the index answers (``(score = 42)``, ``(score=? AND id>?)``): columns named here are served.
    served: str = ""
    #: Conditions checked on each row read (PostgreSQL's ``Filter``).
    filtered: str = ""
    rows: float | None = None


@dataclasses.dataclass(frozen=True)
class PlanSummary:
    """What a plan does, in the terms :func:`judge` needs."""

    scans: tuple[Scan, ...]
    #: Estimated input rows of each explicit sort (None where the database does not say: SQLite).
    sorts: tuple[float | None, ...] = ()
    #: The planner's total cost and estimated rows (PostgreSQL; None on SQLite).
    cost: float | None = None
    rows: float | None = None
    #: The plan in a line per node, for people.
    text: str = ""


@dataclasses.dataclass(frozen=True)
class Need:
    """What a statement asks of its table: equality filters (``=``, ``IN``), then the order of its rows."""

    filters: tuple[str, ...] = ()
    order: tuple[str, ...] = ()

    def wanted(self) -> tuple[str, ...]:
        """The index that serves the statement best: the filters, then the order's fields."""
        fields = list(dict.fromkeys(self.filters))
        fields.extend(f for f in self.order if f not in fields)
        return tuple(fields)


@dataclasses.dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    #: The index the plan reads on the statement's table (None: a full scan, or the table's own order).
    index: str | None
    #: For ``missing-index``: the fields of the index to add, in order.
    suggestion: tuple[str, ...] = ()
    #: Why, in a few words (``reads every row of report, filtering on score``).
    reason: str = ""


# --- PostgreSQL: EXPLAIN (FORMAT JSON) ----------------------------------------------------------------------


def parse_postgres(explained: Any) -> PlanSummary:
    """The summary of PostgreSQL's ``EXPLAIN (FORMAT JSON)`` output (a list holding one ``{"Plan": …}``)."""
    root = explained[0]["Plan"] if isinstance(explained, list) else explained["Plan"]
    scans: list[Scan] = []
    sorts: list[float | None] = []
    lines: list[str] = []
    _walk_postgres(root, 0, scans, sorts, lines)
    return PlanSummary(
        tuple(scans),
        tuple(sorts),
        float(root.get("Total Cost", 0.0)),
        float(root.get("Plan Rows", 0.0)),
        "\n".join(lines),
    )


def _walk_postgres(
    node: Mapping[str, Any], depth: int, scans: list[Scan], sorts: list[float | None], lines: list[str]
) -> None:
    kind = str(node.get("Node Type", "?"))
    relation = node.get("Alias") or node.get("Relation Name")
    label = kind
    if node.get("Index Name"):
        label += f" using {node['Index Name']}"
    if relation:
        label += f" on {relation}"
    lines.append(f"{'  ' * depth}{label} (cost={node.get('Total Cost')} rows={node.get('Plan Rows')})")
    children: Sequence[Mapping[str, Any]] = node.get("Plans", [])
    rows = node.get("Plan Rows")
    if kind == "Seq Scan" and relation:
        scans.append(Scan(str(relation), None, "", str(node.get("Filter", "")), rows))
    elif kind in ("Index Scan", "Index Only Scan") and relation:
        served = str(node.get("Index Cond", ""))
        scans.append(Scan(str(relation), str(node["Index Name"]), served, str(node.get("Filter", "")), rows))
    elif kind == "Bitmap Heap Scan" and relation:
        bitmap = [n for n in _descendants(children) if n.get("Node Type") == "Bitmap Index Scan"]
        index = ", ".join(str(n["Index Name"]) for n in bitmap) or None
        served = " AND ".join(str(n.get("Index Cond", "")) for n in bitmap)
        scans.append(Scan(str(relation), index, served, str(node.get("Filter", "")), rows))
    elif kind == "Sort":
        sorts.append(float(children[0].get("Plan Rows", 0.0)) if children else rows)
    for child in children:
        _walk_postgres(child, depth + 1, scans, sorts, lines)


def _descendants(nodes: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for node in nodes:
        yield node
        yield from _descendants(node.get("Plans", []))


# --- SQLite: EXPLAIN QUERY PLAN -----------------------------------------------------------------------------

_SQLITE_READ = re.compile(
    r"^(?P<how>SCAN|SEARCH) (?P<relation>\S+)(?: AS \S+)?"
    r"(?: USING (?:(?P<pk>INTEGER PRIMARY KEY)|"
    r"(?:COVERING |AUTOMATIC (?:PARTIAL )?(?:COVERING )?)?INDEX (?P<index>\S+)))?"
    r"(?: \((?P<served>.*)\))?$"
)


def parse_sqlite(rows: Iterable[Sequence[Any]]) -> PlanSummary:
    """The summary of SQLite's ``EXPLAIN QUERY PLAN`` rows ``(id, parent, notused, detail)``."""
    scans: list[Scan] = []
    sorts: list[float | None] = []
    lines: list[str] = []
    for row in rows:
        detail = str(row[3])
        lines.append(detail)
        found = _SQLITE_READ.match(detail)
        if found is not None:
            index = "INTEGER PRIMARY KEY" if found["pk"] else found["index"]
            # The rowid is the id column (extschema's id is an INTEGER PRIMARY KEY on SQLite).
            served = re.sub(r"\browid\b", "id", found["served"] or "")
            scans.append(Scan(found["relation"], index, served))
        elif detail.startswith("USE TEMP B-TREE FOR") and "RIGHT PART" not in detail:
            sorts.append(None)
    return PlanSummary(tuple(scans), tuple(sorts), text="\n".join(lines))


# --- judging ------------------------------------------------------------------------------------------------

_LITERAL = re.compile(r"'(?:[^']|'')*'")


def mentions(condition: str, column: str) -> bool:
    """Whether *condition* (a plan's condition text) names *column* (not a type or a literal holding it)."""
    text = _LITERAL.sub("''", condition)
    bare = rf"(?<![\w.\"]){re.escape(column)}(?![\w\"])"
    return re.search(rf'{bare}|"{re.escape(column)}"', text) is not None


def judge(
    plan: PlanSummary,
    need: Need,
    relations: Iterable[str],
    indexes: Mapping[str, Sequence[str]],
    min_rows: float,
    label: str = "",
) -> Judgement:
    """The verdict on *plan* for a statement needing *need* of a table named *relations* in the plan
    (its name and aliases) whose indexes are *indexes* (name → columns, the primary key included).

    A sort of fewer than *min_rows* estimated rows is no finding. *label* names the table in reasons.
    """
    names = set(relations)
    mine = [s for s in plan.scans if s.relation in names]
    used = next((s.index for s in mine if s.index), None)
    unserved = [f for f in need.filters if not any(s.index and mentions(s.served, f) for s in mine)]
    if need.filters and len(unserved) < len(need.filters):
        unserved = []  # one indexed equality narrows the rows enough: the rest are checked on few rows
    # A sort of unknown size (SQLite) after an indexed equality sorts the few rows it found.
    narrowed = bool(need.filters) and not unserved
    sorted_big = bool(need.order) and any(rows >= min_rows if rows is not None else not narrowed for rows in plan.sorts)
    if not unserved and not sorted_big:
        return Judgement(Verdict.OK, used)
    wanted = need.wanted()
    table = label or next(iter(sorted(names)), "?")
    if unserved:
        reason = f"reads {table} without an index on {', '.join(unserved)}" + (
            f" (walks {used} and filters each row)" if used else " (every row)"
        )
    else:
        reason = f"sorts the rows of {table} by {', '.join(need.order)}"
    # An index starting with the filters (or, for a sort, the sorted fields) would do: the planner passed it by.
    key = need.filters or tuple(f for f in need.order if f != "id") or wanted
    covering = next((name for name, columns in indexes.items() if tuple(columns[: len(key)]) == key), None)
    if covering is not None:
        return Judgement(Verdict.SLOW_PLAN, used, (), f"{reason}, although {covering} serves it")
    return Judgement(Verdict.MISSING_INDEX, used, wanted, reason)


def suggestion_yaml(table: str, fields: Sequence[str]) -> str:
    """The ``indexes:`` entry to add to *table* in the spec (``spec.tables[].indexes``)."""
    listed = ", ".join(fields)
    return f"tables:\n  - name: {table}\n    indexes:\n      - {{fields: [{listed}]}}\n"


def index_name_hint(plugin_id: str, table: str, fields: Sequence[str], style: naming.Style) -> str:
    """The name extschema gives the suggested index once applied (what ``ok`` will name then)."""
    return naming.Namer(style).index(plugin_id, table, fields, False, None)


def render_text(report: Mapping[str, Any]) -> list[str]:
    """An analysis (its JSON form) as lines for a terminal: a line per statement, suggestions indented."""
    lines: list[str] = []
    for finding in report["findings"]:
        cost = f" cost={finding['cost']:g}" if finding.get("cost") is not None else ""
        rows = f" rows={finding['estimatedRows']:g}" if finding.get("estimatedRows") is not None else ""
        index = f" index={finding['index']}" if finding.get("index") else ""
        head = f"{finding['table']:<20} {finding['statement']:<28} {finding['verdict']:<14}{index}{rows}{cost}"
        lines.append(head.rstrip())
        if finding["verdict"] != Verdict.OK and finding.get("reason"):
            lines.append(f"    {finding['reason']}")
        suggestion = finding.get("suggestion")
        if suggestion:
            check = suggestion["verification"]
            if check["status"] == "unverified":
                lines.append(f"    suggested index ({suggestion['indexName']}), unverified: {check['reason']}")
            else:
                lines.append(
                    f"    suggested index ({suggestion['indexName']}), {check['status']} with hypopg: "
                    f"cost {check['costBefore']:g} -> {check['costAfter']:g}"
                )
            text = suggestion["yaml"] or "(a join table: its indexes come from the relationship)\n"
            lines.extend(f"      {line}" for line in text.splitlines())
    for skipped in report["skipped"]:
        lines.append(f"{skipped['table']:<20} skipped: {skipped['rows']:g} rows (fewer than {report['minRows']})")
    if not report["findings"] and not report["skipped"]:
        lines.append("no statements to analyse")
    statistics = report["statistics"]
    if statistics["available"]:
        lines.append("pg_stat_statements (slowest first):")
        for row in statistics["statements"]:
            query = " ".join(str(row["query"]).split())
            lines.append(
                f"  calls={row['calls']} mean={row['meanMs']}ms max={row['maxMs']}ms rows={row['rows']}  {query}"
            )
    else:
        lines.append(f"no statement statistics: {statistics['reason']}")
    return lines
