"""A migration's statements sent in batches (PostgreSQL: many per round trip, SQLite: one by one):
a failure inside a batch is still attributed to its statement and step, recorded, and rolled back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extschema.dialects import BatchFailed, PostgresDialect
from extschema.engine.connection import Database
from tests.helpers import execute, ext_table, run, tables, write_schema

TABLES = 12
#: The table a hand-made object already takes the name of: its CREATE TABLE fails mid-batch.
TAKEN = 7


def _spec(version: str, count: int) -> str:
    lines = [f"pluginId: bat\nversion: {version}\ntables:"]
    for t in range(count):
        lines.append(f"  - name: t{t}\n    fields:\n      - {{name: a, type: String}}\n      - {{name: b, type: Int}}")
        lines.append("    indexes: [{fields: [a, b]}]")
    return "\n".join(lines) + "\n"


def _hand_made(url: str) -> None:
    """An object extschema did not make, named as table t7 will be (relations share one namespace)."""
    name = ext_table(url, "bat", f"t{TAKEN}")
    execute(url, f"CREATE VIEW {name} AS SELECT 1 AS one")


def test_a_statement_failing_inside_a_batch_names_its_step_and_rolls_everything_back(
    db_url: str, tmp_path: Path
) -> None:
    assert run("apply", str(write_schema(tmp_path, "bat", _spec("1.0.0", 1))), "-d", db_url).exit_code == 0
    _hand_made(db_url)
    v2 = write_schema(tmp_path, "bat", _spec("2.0.0", TABLES))
    outcome = run("apply", str(v2), "-d", db_url, "-o", "json")
    assert outcome.exit_code == 3, outcome.stderr
    events = [json.loads(line) for line in outcome.stderr.splitlines()]
    steps = [e for e in events if e["event"] in ("StepStarted", "StepFinished")]
    *done, failing = steps
    # In order: each step started then finished, up to the failing one, which only started.
    assert [(e["event"], e["number"]) for e in done] == [
        (kind, n) for n in range(1, failing["number"]) for kind in ("StepStarted", "StepFinished")
    ]
    assert failing["event"] == "StepStarted" and failing["description"].startswith(f"create table t{TAKEN} ")
    (problem,) = outcome.json()["problems"]
    expected = f"step {failing['number']}/{failing['total']} ({failing['description']}) failed: "
    assert problem["code"] == "ES402" and problem["message"].startswith(expected), problem
    history = run("history", "bat", "-d", db_url, "-o", "json").items()
    assert history[-1]["status"] == "failed" and expected in history[-1]["errorMessage"]
    # One transaction: the tables created before it in the same batch are gone too.
    assert not any(t.endswith(("t1", "t6", f"t{TABLES - 1}")) for t in tables(db_url))
    if db_url.startswith("postgresql"):
        # The failing statement was neither alone nor first in its batch (else this tests nothing).
        statements_before = sum(e["statements"] for e in done if e["event"] == "StepFinished")
        assert 0 < statements_before < PostgresDialect.batch_statements
    execute(db_url, f"DROP VIEW {ext_table(db_url, 'bat', f't{TAKEN}')}")
    assert run("apply", str(v2), "-d", db_url).exit_code == 0


@pytest.mark.parametrize("failing", [0, 2, 3])
def test_a_batch_says_which_statement_failed_and_ran_only_those_before_it(db_url: str, failing: int) -> None:
    database = Database(db_url)
    statements = [f"CREATE TABLE batch_{i} (n INTEGER)" for i in range(4)]
    statements[failing] = "SELECT * FROM no_such_table"
    try:
        with database.transaction() as conn:
            with pytest.raises(BatchFailed) as raised:
                database.execute_batch(conn, statements)
            assert raised.value.index == failing
            assert "no_such_table" in str(raised.value.error)
            if not db_url.startswith("postgresql"):  # PostgreSQL's transaction is aborted: nothing to ask
                created = {
                    r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE name LIKE 'batch_%'")
                }
                assert created == {f"batch_{i}" for i in range(failing)}
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    finally:
        database.close()
    assert not any("batch_" in t for t in tables(db_url))


def test_a_batch_that_succeeds_runs_every_statement_in_order(db_url: str) -> None:
    database = Database(db_url)
    statements = [
        "CREATE TABLE batch_order (n INTEGER)",
        *(f"INSERT INTO batch_order VALUES ({i})" for i in range(5)),
        "UPDATE batch_order SET n = n * 10 WHERE n = 4",
    ]
    try:
        with database.transaction() as conn:
            database.execute_batch(conn, statements)
    finally:
        database.close()
    assert sorted(r[0] for r in execute(db_url, "SELECT n FROM batch_order")) == [0, 1, 2, 3, 40]
