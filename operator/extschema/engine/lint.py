"""Lint a PostgreSQL plan's SQL with squawk (PyPI ``squawk-cli`` ships the binary; it runs offline).

The SQL is linted as it runs: the ``before`` statements and the main ones each in a transaction
that starts with the migration's ``SET LOCAL lock_timeout`` / ``statement_timeout``, the ``after``
statements outside any transaction with the session's ``lock_timeout``. So squawk judges what
extschema actually sends, and rules about missing timeouts or non-concurrent index builds fire
only when they apply. Findings name the statement by its index in
:attr:`RenderedPlan.all_statements` (the order of ``plan`` output's SQL). Lint never fails a plan:
a missing or failing squawk is one finding saying so.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from extschema import limits
from extschema.dialects import RenderedPlan

#: The PostgreSQL version squawk judges the SQL for (the one extschema is tested on).
PG_VERSION = "15"
_TIMEOUT_S = 60


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


def lint(rendered: RenderedPlan, dialect_name: str) -> list[LintFinding]:
    """squawk's findings on *rendered* (PostgreSQL plans only: [] for any other database)."""
    if dialect_name != "postgresql" or not rendered.all_statements:
        return []
    binary = squawk_binary()
    if binary is None:
        return [
            LintFinding(
                "squawk-missing",
                "warning",
                "squawk is not installed (PyPI squawk-cli), so this plan was not linted",
                None,
            )
        ]
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
            return [_failed(f"could not run squawk: {error}")]
    # squawk exits 1 when it found something, 0 when not; anything else is its own failure.
    if done.returncode not in (0, 1):
        return [_failed(f"squawk exited with {done.returncode}: {done.stderr.strip()[:500]}")]
    try:
        reports = json.loads(done.stdout or "[]")
        return [_finding(report, lines) for report in reports]
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        return [_failed(f"squawk's output could not be read: {error}")]


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
