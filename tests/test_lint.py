"""squawk lints PostgreSQL plans as they run (phases, timeouts); findings name their statement."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extschema import planning
from extschema.dialects import PostgresDialect, SqliteDialect
from extschema.engine import lint as lint_module
from extschema.engine.lint import LintFinding, lint
from extschema.model import ExtensionSchemaSpec
from tests.specs import SHOP


def _spec(body: str) -> ExtensionSchemaSpec:
    return ExtensionSchemaSpec.model_validate(yaml.safe_load(body))


V1 = _spec(SHOP)
#: An index on the existing table, a new enum value, a new column.
V2 = _spec(
    SHOP.replace("version: 1.0.0", "version: 1.1.0")
    .replace("values: [new, done]", "values: [new, paid, done]")
    .rstrip("\n")
    + "\n      - {name: note, type: Text}\n    indexes: [{fields: [title]}]\n"
)


def _plan() -> planning.Plan:
    return planning.plan(V1, V2, {})


def _rules(findings: list[LintFinding]) -> set[str]:
    return {f.rule for f in findings}


def test_concurrent_build_on_a_populated_table_passes_the_index_rules() -> None:
    rendered = PostgresDialect().render_plan(_plan(), "m2")
    assert any("CONCURRENTLY" in s for s in rendered.after), rendered
    findings = lint(rendered, "postgresql")
    # The migration's own timeouts are part of what squawk reads: no finding asks for them.
    assert not _rules(findings) & {
        "require-concurrent-index-creation",
        "require-lock-timeout",
        "require-statement-timeout",
        "ban-concurrent-index-creation-in-transaction",
    }, findings


def test_in_transaction_index_on_an_empty_table_is_reported_on_its_statement() -> None:
    rendered = PostgresDialect().render_plan(_plan(), "m2", populated=set())
    assert rendered.after == ()
    findings = [f for f in lint(rendered, "postgresql") if f.rule == "require-concurrent-index-creation"]
    assert len(findings) == 1, findings
    statement = findings[0].statement
    assert statement is not None
    assert rendered.all_statements[statement].startswith("CREATE INDEX"), rendered.all_statements[statement]
    assert findings[0].level == "warning" and findings[0].message


def test_destructive_statement_is_named() -> None:
    resolved = planning.resolve(V1, {})
    table = resolved.tables[0]
    column = table.columns[0]
    after = planning.TableDef(table.name, tuple(c for c in table.columns if c is not column))
    plan = planning.Plan("shop", (planning.DropColumn("shop", table, after, column),))
    rendered = PostgresDialect().render_plan(plan, "m2")
    found = [f for f in lint(rendered, "postgresql") if f.rule == "ban-drop-column"]
    assert [rendered.all_statements[f.statement].startswith("ALTER TABLE") for f in found if f.statement] == [True]


def test_sqlite_plans_are_not_linted() -> None:
    assert lint(SqliteDialect().render_plan(_plan(), "m2"), "sqlite") == []


def test_a_missing_squawk_is_one_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint_module, "squawk_binary", lambda: None)
    findings = lint(PostgresDialect().render_plan(_plan(), "m2"), "postgresql")
    assert [(f.rule, f.statement) for f in findings] == [("squawk-missing", None)]
    assert "squawk-cli" in findings[0].message


@pytest.mark.parametrize(("exit_code", "output"), [(2, ""), (1, "not json")])
def test_a_failing_squawk_is_one_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exit_code: int, output: str
) -> None:
    fake = tmp_path / "squawk"
    fake.write_text(f"#!/bin/sh\necho '{output}'\necho boom >&2\nexit {exit_code}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(lint_module, "squawk_binary", lambda: str(fake))
    findings = lint(PostgresDialect().render_plan(_plan(), "m2"), "postgresql")
    assert [(f.rule, f.statement) for f in findings] == [("squawk-failed", None)]
