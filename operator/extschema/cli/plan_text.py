"""``extschema plan`` as text: a header per plan, its numbered steps, then its numbered statements,
each under the step it carries out (``-o json`` carries the same numbers: ``sqlSteps``)."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from extschema.cli.base import terminal_sql
from extschema.naming import PLAN_PREVIEW_TAG, backup_tag
from extschema.problems import escape

if TYPE_CHECKING:
    from extschema import wire
    from extschema.reconcile import Proposal

#: Lines of SQL longer than this are broken where a break changes nothing (after a comma, before AND/OR).
WIDTH = 110
_CLASSES = ("safe", "rewriting", "destructive")
#: Words a long line breaks before (outside quotes).
_BEFORE = (" AND ", " OR ", " CONSTRAINT ", " FROM ", " WHERE ")


def show(item: Proposal.Item, view: wire.PlanView, summary: bool = False) -> None:
    """Print one plan: its header, steps and lint; then, unless *summary*, its SQL grouped by step."""
    reviewed, loaded = item.reviewed, item.loaded
    for warning in item.warnings():
        click.echo(f"warning: {warning.render()}", err=True)
    click.echo(f"-- {loaded.spec.plugin_id} {escape(loaded.spec.version)} ({escape(loaded.file)})")
    if item.adopts is not None:
        click.echo(f"-- {escape(item.adopts)}")
    if reviewed.planned.plan.empty:
        click.echo("-- no changes\n")
        return
    approval = f", needs approval: apply --approve {reviewed.hash}" if reviewed.needs_approval else ""
    click.echo(f"-- plan {reviewed.hash}: {reviewed.op_class}{approval}")
    sql, steps = view.sql or [], view.sql_steps or []
    counts: collections.Counter[str] = collections.Counter(op.op_class for op in view.ops)
    classes = ", ".join(f"{counts[c]} {c}" for c in _CLASSES if counts[c])
    click.echo(f"-- {_many(len(view.ops), 'step')} ({classes}), {_many(len(sql), 'statement')}")
    for number, op in enumerate(reviewed.ops, start=1):
        own = [i + 1 for i, step in enumerate(steps) if step == number - 1]
        where = f"  [{_statements(own)}]" if steps else ""
        click.echo(f"--  {number:>2}. {op.classified.op_class:<11} {escape(op.describe())}{where}")
    for finding in view.lint:
        where = _where(finding.statement, steps)
        click.echo(f"-- lint {finding.level} {escape(finding.rule)}{where}: {escape(finding.message)}")
    if view.lint and any(f.statement is not None for f in view.lint):
        click.echo("--   (silence a rule for this plugin with spec.lint.ignore: [RULE], or plan --lint-ignore RULE)")
    if summary:
        click.echo("")
        return
    if any(backup_tag(PLAN_PREVIEW_TAG) in statement for statement in sql):
        click.echo(
            f"--   (backup tables are named __{backup_tag(PLAN_PREVIEW_TAG)} here: apply names them after "
            "the migration it records, e.g. __m0002)"
        )
    after = len(sql) - len(item.preview.after)
    before = len(item.preview.before)
    current: int | None = None
    for index, statement in enumerate(sql):
        phase = None
        if index == 0 and before:
            phase = "-- before the migration's transaction, each committed first (new enum values):"
        elif index == before and before and index < after:
            phase = "-- the migration's transaction:"
        elif index == after:
            phase = "-- after the migration commits, outside its transaction (builds no writer waits for):"
        if phase is not None:
            click.echo(f"\n{phase}")
            current = None
        step = steps[index] if index < len(steps) else None
        if step is not None and step != current and step < len(reviewed.ops):
            op = reviewed.ops[step]
            click.echo(
                f"{'' if phase else chr(10)}-- step {step + 1}: {escape(op.describe())} ({op.classified.op_class})"
            )
            current = step
        click.echo(f"/* {index + 1} */ {terminal_sql(wrap(statement))};")
    click.echo("")


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _statements(numbers: Sequence[int]) -> str:
    """``statement 3``, ``statements 3-7``, ``statements 2, 5``; or that the step has none of its own."""
    if not numbers:
        return "no statement of its own"
    if len(numbers) == 1:
        return f"statement {numbers[0]}"
    if list(numbers) == list(range(numbers[0], numbers[-1] + 1)):
        return f"statements {numbers[0]}-{numbers[-1]}"
    return "statements " + ", ".join(map(str, numbers))


def _where(statement: int | None, steps: Sequence[int]) -> str:
    if statement is None:
        return ""
    step = f", step {steps[statement] + 1}" if statement < len(steps) else ""
    return f" (statement {statement + 1}{step})"


def wrap(statement: str, width: int = WIDTH) -> str:
    """*statement* with each line longer than *width* broken outside quotes: before AND, OR, CONSTRAINT,
    FROM or WHERE, else after a comma. Statements with comments, dollar quotes or backslashes are left
    as they are (a break there could change what they mean)."""
    if all(len(line) <= width for line in statement.splitlines()) or any(
        mark in statement for mark in ("--", "/*", "$", "\\")
    ):
        return statement
    return "\n".join(_wrap_line(line, width) for line in statement.split("\n"))


def _wrap_line(line: str, width: int, commas: bool = False) -> str:
    """*line* broken before :data:`_BEFORE` where too long; a piece still too long, after commas too."""
    if len(line) <= width:
        return line
    indent = line[: len(line) - len(line.lstrip())] + "    "
    breaks = _breaks(line, commas)
    pieces = [line[a:b] for a, b in zip([0, *breaks], [*breaks, len(line)], strict=True)]
    lines: list[str] = []
    current = ""
    for piece in pieces:
        if current.strip() and len(current) + len(piece) > width:
            lines.append(current.rstrip())
            current = indent + piece.lstrip()
        else:
            current += piece
    lines.append(current)
    if not commas:
        lines = [_wrap_line(each, width, commas=True) for each in lines]
    return "\n".join(lines)


def _breaks(line: str, commas: bool) -> list[int]:
    """Where *line* may break: before :data:`_BEFORE`, or (*commas*) after ", " — never inside quotes."""
    found: list[int] = []
    quote: str | None = None
    for i, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None  # a doubled quote closes and reopens: no break can fall between them
            continue
        if char in "'\"":
            quote = char
        elif commas and char == "," and line[i + 1 : i + 2] == " ":
            found.append(i + 2)
        elif char == " " and any(line.startswith(word, i) for word in _BEFORE):
            found.append(i + 1)
    return [b for b in found if 0 < b < len(line)]
