"""Lint a PostgreSQL plan's SQL with squawk (PyPI ``squawk-cli`` ships the binary; it runs offline).

The SQL is linted as it runs: the ``before`` statements and the main ones each in a transaction
that starts with the migration's ``SET LOCAL lock_timeout`` / ``statement_timeout``, the ``after``
statements outside any transaction with the session's ``lock_timeout``. So squawk judges what
extschema actually sends, and rules about missing timeouts or non-concurrent index builds fire
only when they apply. Findings name the statement by its index in
:attr:`RenderedPlan.all_statements` (the order of ``plan`` output's SQL). Lint never fails a plan:
a missing or failing squawk is one finding saying so.

Only findings about what the plugin author controls are kept: squawk's rules about how extschema
writes the SQL (:data:`OWN_IDIOMS`; a foreign key's integer type, which the referenced key decides)
are left out, findings of one rule on one statement are one finding, and the rules a spec's
``lint.ignore`` (or ``plan --lint-ignore``) names are silenced.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from extschema import limits, planning
from extschema.dialects import RenderedPlan

#: The PostgreSQL version squawk judges the SQL for (the one extschema is tested on).
PG_VERSION = "15"
_TIMEOUT_S = 60

#: squawk's rules about how extschema writes SQL, not about what the plugin author chose: never
#: reported (docs/evolution.md#lint lists them with the reason).
OWN_IDIOMS: dict[str, str] = {
    "prefer-text-field": "a String field is VARCHAR(maxLength): its length is the spec's rule",
    "require-concurrent-index-creation": "an index is built in the migration only on a new or empty table, "
    "and a unique one so its rule holds at commit",
    "require-concurrent-index-deletion": "an index is dropped in the migration's transaction, undone with it",
    "renaming-column": "a rename is what renamedFrom asks for",
    "renaming-table": "a rename is what renamedFrom asks for",
    "renaming-object": "a renamed enum value is what renamedValues asks for",
    "require-enum-value-ordering": "new enum values are added after the existing ones",
    "ban-drop-constraint": "a CHECK is dropped and added again around a type change",
    "constraint-missing-not-valid": "a CHECK is added NOT VALID and validated in the same migration",
    "disallowed-unique-constraint": "a unique rule on a new table is part of CREATE TABLE",
    "prefer-robust-stmts": "a migration runs in one transaction and is recorded: it is not re-run",
    "transaction-nesting": "the migration's transaction is extschema's",
    "require-timeout-settings": "every migration sets lock_timeout and statement_timeout",
    "require-lock-timeout": "every migration sets lock_timeout",
    "require-statement-timeout": "every migration sets statement_timeout",
    "prefer-identity": "ids are extschema's",
    "adding-serial-primary-key-field": "ids are extschema's",
}
#: squawk's rules (2.70), for telling a misspelled rule in ``lint.ignore`` from one squawk has.
_RULE_NAMES = """
    adding-field-with-default adding-foreign-key-constraint adding-not-nullable-field adding-required-field
    adding-serial-primary-key-field ban-add-column ban-add-composite-attribute ban-add-enum-value
    ban-alter-database-options ban-alter-domain-with-add-constraint ban-alter-extension ban-alter-function-options
    ban-alter-generated-expression ban-alter-identity ban-alter-policy-condition ban-alter-policy-roles
    ban-alter-role-options ban-alter-row-level-security ban-alter-sequence-values ban-alter-system-options
    ban-alter-view-options ban-char-field ban-concurrent-index-creation-in-transaction
    ban-create-domain-with-constraint ban-create-policy ban-detach-inheritance ban-disable-trigger ban-drop-column
    ban-drop-constraint ban-drop-database ban-drop-domain ban-drop-extension ban-drop-function
    ban-drop-generated-expression ban-drop-index ban-drop-not-null ban-drop-policy ban-drop-schema
    ban-drop-sequence ban-drop-table ban-drop-type ban-drop-view ban-new-write-restriction ban-replace-view-function
    ban-replica-identity ban-revoke ban-set-default ban-set-schema ban-truncate-cascade ban-uncommitted-transaction
    changing-column-type constraint-missing-not-valid disallowed-unique-constraint identifier-too-long
    prefer-bigint-over-int prefer-bigint-over-smallint prefer-identity prefer-repack prefer-robust-stmts
    prefer-text-field prefer-timestamp-tz renaming-column renaming-object renaming-table
    require-concurrent-index-creation require-concurrent-index-deletion require-concurrent-partition-detach
    require-concurrent-reindex require-enum-value-ordering require-lock-timeout require-statement-timeout
    require-table-schema require-timeout-settings transaction-nesting
"""
RULES = frozenset(_RULE_NAMES.split())
#: Rules about an integer column's size: on a foreign key, the referenced key decides it.
_KEY_SIZE_RULES = frozenset({"prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-big-int"})


@dataclasses.dataclass(frozen=True)
class LintFinding:
    """One squawk finding: the rule, ``warning`` or ``error``, what it means, and which statement."""

    rule: str
    level: str
    message: str
    #: Index into :attr:`RenderedPlan.all_statements`; None for a finding about the plan as a whole.
    statement: int | None


def squawk_binary() -> str | None:
    """The squawk executable: next to this interpreter (the package's own environment), else on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    if beside.is_file():
        return str(beside)
    return shutil.which("squawk")


def lint(
    rendered: RenderedPlan,
    dialect_name: str,
    plan: planning.Plan | None = None,
    ignore: Collection[str] = (),
) -> list[LintFinding]:
    """squawk's findings on *rendered* (PostgreSQL plans only: [] for any other database) about what
    the plugin author controls: not :data:`OWN_IDIOMS`, not the size of *plan*'s foreign keys, not
    the rules in *ignore*; one per rule and statement."""
    if dialect_name != "postgresql" or not rendered.all_statements:
        return []
    unknown = [_unknown(rule) for rule in sorted(set(ignore) - RULES)]
    found = _squawk(rendered)
    keys = _foreign_keys(plan) if plan is not None else set()
    merged: dict[tuple[str, int | None, str], list[str]] = {}
    kept: dict[tuple[str, int | None, str], LintFinding] = {}
    for finding, column in found:
        if finding.rule in OWN_IDIOMS or finding.rule in ignore:
            continue
        if finding.rule in _KEY_SIZE_RULES and column in keys:
            continue
        key = (finding.rule, finding.statement, finding.message)
        kept.setdefault(key, finding)
        if column and column not in merged.setdefault(key, []):
            merged[key].append(column)
    return unknown + [
        dataclasses.replace(f, message=f"{', '.join(merged[k])}: {f.message}") if merged.get(k) else f
        for k, f in kept.items()
    ]


def _unknown(rule: str) -> LintFinding:
    """A rule to ignore that squawk does not have (misspelled?): said, so a typo does not silence nothing."""
    close = difflib.get_close_matches(rule, sorted(RULES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else " (docs/evolution.md#lint)"
    message = f"{rule!r} is no squawk rule, so ignoring it does nothing{hint}"
    return LintFinding("unknown-rule", "warning", message, None)


def _foreign_keys(plan: planning.Plan) -> set[str]:
    """The names of the foreign key columns *plan* creates or changes: their type is the referenced key's."""
    columns: list[planning.ColumnDef] = []
    for op in plan.ops:
        table = getattr(op, "table", None)
        if isinstance(table, planning.TableDef):
            columns.extend(table.columns)
        for attribute in ("column", "after"):
            value = getattr(op, attribute, None)
            if isinstance(value, planning.ColumnDef):
                columns.append(value)
            elif isinstance(value, planning.TableDef):
                columns.extend(value.columns)
    return {c.name for c in columns if c.foreign_key is not None}


def _squawk(rendered: RenderedPlan) -> list[tuple[LintFinding, str | None]]:
    """squawk's findings on *rendered*, each with the column it points at (when it names one)."""
    binary = squawk_binary()
    if binary is None:
        missing = "squawk is not installed (PyPI squawk-cli), so this plan was not linted"
        return [(LintFinding("squawk-missing", "warning", missing, None), None)]
    text, lines = _script(rendered)
    with tempfile.TemporaryDirectory(prefix="extschema-lint-") as directory:
        path = Path(directory) / "plan.sql"
        path.write_text(text)
        try:
            done = subprocess.run(  # a fixed binary and a file written here
                [binary, "--reporter", "json", "--pg-version", PG_VERSION, str(path)],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return [(_failed(f"could not run squawk: {error}"), None)]
    # squawk exits 1 when it found something, 0 when not; anything else is its own failure.
    if done.returncode not in (0, 1):
        return [(_failed(f"squawk exited with {done.returncode}: {done.stderr.strip()[:500]}"), None)]
    try:
        reports = json.loads(done.stdout or "[]")
        source = text.splitlines()
        return [(_finding(report, lines), _column(report, source)) for report in reports]
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        return [(_failed(f"squawk's output could not be read: {error}"), None)]


def _column(report: dict[str, Any], source: list[str]) -> str | None:
    """The column a finding points at: the name before the flagged type (``"position" INTEGER``)."""
    line, column = report.get("line"), report.get("column")
    if not isinstance(line, int) or not isinstance(column, int) or not 0 <= line < len(source):
        return None
    before = source[line][:column].split()
    if not before:
        return None
    name = before[-1].strip('"')
    return name if name.replace("_", "").isalnum() and name.upper() not in ("COLUMN", "TYPE", "TABLE") else None


def _failed(message: str) -> LintFinding:
    return LintFinding("squawk-failed", "warning", message, None)


def _finding(report: dict[str, Any], lines: list[int | None]) -> LintFinding:
    line = report.get("line")
    statement = lines[line] if isinstance(line, int) and 0 <= line < len(lines) else None
    message = str(report["message"])
    if report.get("help"):
        message = f"{message} {report['help']}"
    return LintFinding(str(report["rule_name"]), str(report.get("level", "warning")).lower(), message, statement)


def _script(rendered: RenderedPlan) -> tuple[str, list[int | None]]:
    """The plan as squawk reads it, and for each line (0-based) the statement it belongs to."""
    timeouts = [
        f"SET LOCAL lock_timeout = {limits.DEFAULT_LOCK_TIMEOUT_MS}",
        f"SET LOCAL statement_timeout = {limits.DEFAULT_STATEMENT_TIMEOUT_MS}",
    ]
    session = [f"SET lock_timeout = {limits.DEFAULT_LOCK_TIMEOUT_MS}", "SET statement_timeout = 0"]
    text: list[str] = []
    lines: list[int | None] = []

    def add(statements: tuple[str, ...] | list[str], first: int | None) -> None:
        for offset, statement in enumerate(statements):
            chunk = f"{statement};\n"
            text.append(chunk)
            lines.extend([None if first is None else first + offset] * chunk.count("\n"))

    numbered = 0
    for phase, in_transaction in ((rendered.before, True), (rendered.statements, True), (rendered.after, False)):
        if not phase:
            continue
        add(["BEGIN", *timeouts] if in_transaction else session, None)
        add(phase, numbered)
        numbered += len(phase)
        if in_transaction:
            add(["COMMIT"], None)
    return "".join(text), lines
