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
    assert any("ADD VALUE IF NOT EXISTS 'paid'" in s for s in rendered.before), rendered
    # The plan's script shows every phase, in the order they run.
    assert rendered.script() == "".join(f"{s};\n" for s in (*rendered.before, *rendered.statements, *rendered.after))
    findings = lint(rendered, "postgresql")
    # The migration's own timeouts are part of what squawk reads: no finding asks for them.
    assert not _rules(findings) & {
        "require-concurrent-index-creation",
        "require-lock-timeout",
        "require-statement-timeout",
        "ban-concurrent-index-creation-in-transaction",
    }, findings


def test_an_index_extschema_builds_in_the_transaction_is_not_the_authors_finding() -> None:
    """On an empty table extschema builds the index in the migration (its choice): squawk's rule asking
    for CONCURRENTLY is about extschema's SQL, which the plugin author cannot change."""
    rendered = PostgresDialect().render_plan(_plan(), "m2", populated=set())
    assert rendered.after == ()
    assert any(s.startswith("CREATE INDEX") for s in rendered.all_statements)
    assert "require-concurrent-index-creation" not in _rules(lint(rendered, "postgresql", _plan()))


TYPED = _spec(
    """
pluginId: typed
version: 1.0.0
tables:
  - name: box
    fields:
      - {name: label, type: String, validation: {maxLength: 40}}
      - {name: code, type: String, validation: {maxLength: 8}}
      - {name: width, type: Int}
      - {name: height, type: Int}
  - name: lid
    fields:
      - {name: size, type: Int}
relationships:
  - {source: lid, target: core.work_orders, type: ManyToOne}
"""
)


def _typed() -> tuple[planning.Plan, list[LintFinding]]:
    plan = planning.plan(None, TYPED, {("core", "work_orders"): {"id": "Int"}})
    return plan, lint(PostgresDialect().render_plan(plan, "m1"), "postgresql", plan)


def test_only_what_the_author_chose_is_reported_once_per_rule_and_statement() -> None:
    plan, findings = _typed()
    rendered = PostgresDialect().render_plan(plan, "m1")
    # VARCHAR is how extschema stores a String with maxLength: not the author's to change.
    assert "prefer-text-field" not in _rules(findings)
    # Two Int fields of one table: one finding on that CREATE TABLE, naming both columns.
    int_findings = [f for f in findings if f.rule == "prefer-bigint-over-int"]
    assert len({(f.rule, f.statement) for f in int_findings}) == len(int_findings)
    box = next(f for f in int_findings if f.statement is not None and "box" in rendered.all_statements[f.statement])
    assert box.message.startswith("width, height: ")
    # The foreign key to the core table is INTEGER because work_orders.id is: only lid.size is named.
    lid = [f for f in int_findings if f.statement is not None and ".lid" in rendered.all_statements[f.statement]]
    assert [f.message.split(":")[0] for f in lid] == ["size"], lid


def test_a_rule_can_be_silenced() -> None:
    plan, findings = _typed()
    assert "prefer-bigint-over-int" in _rules(findings)
    rendered = PostgresDialect().render_plan(plan, "m1")
    assert "prefer-bigint-over-int" not in _rules(lint(rendered, "postgresql", plan, {"prefer-bigint-over-int"}))


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


def test_a_misspelled_rule_to_ignore_is_said_with_the_rule_meant() -> None:
    plan, _ = _typed()
    rendered = PostgresDialect().render_plan(plan, "m1")
    findings = lint(rendered, "postgresql", plan, {"prefer-bigint-over-innt"})
    (unknown,) = [f for f in findings if f.rule == "unknown-rule"]
    assert "'prefer-bigint-over-int'" in unknown.message and unknown.statement is None
    assert "prefer-bigint-over-int" in _rules(findings)  # the typo silenced nothing
    assert set(lint_module.OWN_IDIOMS) <= lint_module.RULES
