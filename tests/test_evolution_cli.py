"""Approvals end to end, through the CLI, on both databases with rows in the tables.

A destructive plan is blocked without approval, blocked with a stale hash, applied with the right
one; the hash is the same in every process and on both databases; a narrowing that existing rows
violate is refused even when approved; a lower version rolls back to its recorded spec, gated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extschema import reconcile
from extschema.engine import Engine
from tests.helpers import Outcome, execute, ext_table, run, subprocess_env, write_schema

V1 = """
pluginId: shop
version: 1.0.0
tables:
  - name: order
    fields:
      - {name: title, type: String, required: true}
      - {name: note, type: String}
      - {name: code, type: String, validation: {maxLength: 40}}
"""
#: v1 without order.note: a destructive plan (the column's values are lost).
V2 = V1.replace("version: 1.0.0", "version: 2.0.0").replace("      - {name: note, type: String}\n", "")
#: v2 changed again before it was applied: also drops order.code.
V2_AGAIN = V2.replace("      - {name: code, type: String, validation: {maxLength: 40}}\n", "")
#: v1 with order.code narrowed to 3 characters.
NARROW = V1.replace("version: 1.0.0", "version: 1.1.0").replace("maxLength: 40", "maxLength: 3")
#: v1 with a new nullable field: safe.
WIDER = V1.replace("version: 1.0.0", "version: 1.1.0").replace(
    "      - {name: note, type: String}\n", "      - {name: note, type: String}\n      - {name: extra, type: Int}\n"
)


def _schema(directory: Path, body: str) -> str:
    return str(write_schema(directory, "shop", body))


def _seed(url: str, directory: Path) -> None:
    """v1 applied, with four orders: three with a note, all with a code of five characters."""
    outcome = run("apply", _schema(directory, V1), "-d", url)
    assert outcome.exit_code == 0, outcome.stderr
    table = ext_table(url, "shop", "order")
    for title, note in (("a", "n1"), ("b", "n2"), ("c", "n3"), ("d", None)):
        execute(url, f"INSERT INTO {table} (title, note, code) VALUES (:t, :n, 'abcde')", {"t": title, "n": note})


def _columns(url: str) -> list[str]:
    table = ext_table(url, "shop", "order")
    rows = execute(url, f"SELECT * FROM {table} ORDER BY id")
    assert len(rows) == 4
    return list(rows[0]._fields)


def _migrations(url: str) -> int:
    return len(run("history", "shop", "-d", url, "-o", "json").items())


def _plan(url: str, path: str) -> dict[str, object]:
    outcome = run("plan", path, "-d", url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    data: dict[str, object] = outcome.item()
    return data


def _refused(outcome: Outcome) -> list[dict[str, str]]:
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    problems: list[dict[str, str]] = json.loads(outcome.stdout)["problems"]
    return problems


def test_a_drop_is_blocked_without_approval_and_nothing_changes(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, V2)
    text = run("apply", path, "-d", db_url)
    assert text.exit_code == 1 and "ES307" in text.stderr and "drop column order.note (3 values)" in text.stderr
    outcome = run("apply", path, "-d", db_url, "-o", "json")
    (problem,) = _refused(outcome)
    assert problem["code"] == "ES307" and problem["file"] == path
    (pending,) = outcome.items()
    assert pending["hash"] == _plan(db_url, path)["hash"] and pending["destructive"] is True
    assert pending["summary"] == "drop column order.note (3 values)"
    assert "note" in _columns(db_url) and _migrations(db_url) == 1


def test_a_stale_hash_is_refused_and_the_right_one_applies(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, V2)
    approved = str(_plan(db_url, path)["hash"])
    changed = _schema(tmp_path, V2_AGAIN)  # the spec changes again after the plan was approved
    problems = _refused(run("apply", changed, "-d", db_url, "--approve", approved, "-o", "json"))
    assert [p["code"] for p in problems] == ["ES307", "ES308"]
    assert approved in problems[1]["message"]
    assert _columns(db_url) == ["id", "title", "note", "code"] and _migrations(db_url) == 1

    path = _schema(tmp_path, V2)
    applied = run("apply", path, "-d", db_url, "--approve", approved)
    assert applied.exit_code == 0, applied.stderr
    assert "backed up order.note" in applied.stdout
    assert _columns(db_url) == ["id", "title", "code"] and _migrations(db_url) == 2
    # Applied: the same command is now a no-op, whatever it approves.
    again = run("apply", path, "-d", db_url, "--approve", approved)
    assert again.exit_code == 0 and "unchanged" in again.stdout


def test_a_wrong_hash_stops_even_a_safe_change(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    problems = _refused(run("apply", _schema(tmp_path, WIDER), "-d", db_url, "--approve", "0" * 16, "-o", "json"))
    assert [p["code"] for p in problems] == ["ES308"]
    assert "extra" not in _columns(db_url)


def test_the_spec_approves_its_own_plan(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    approved = str(_plan(db_url, _schema(tmp_path, V2))["hash"])
    stale = _refused(
        run("apply", _schema(tmp_path, f"{V2_AGAIN}approvedPlanHash: {approved}"), "-d", db_url, "-o", "json")
    )
    assert [p["code"] for p in stale] == ["ES307", "ES308"] and stale[1]["path"] == "spec.approvedPlanHash"
    outcome = run("apply", _schema(tmp_path, f"{V2}approvedPlanHash: {approved}"), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert "note" not in _columns(db_url)


def test_approved_plan_hashes_approve_like_approved_plan_hash(db_url: str, tmp_path: Path) -> None:
    """spec.approvedPlanHashes: any entry approves its plan (apply, and plan --detailed-exitcode); when the
    plan waits, each entry of another plan is named by its index (ES308)."""
    _seed(db_url, tmp_path)
    approved = str(_plan(db_url, _schema(tmp_path, V2))["hash"])
    other = "0123456789abcdef"
    listed = f"approvedPlanHashes: [{other}, {approved}]"
    waiting = run("plan", _schema(tmp_path, V2), "-d", db_url, "--detailed-exitcode")
    assert waiting.exit_code == 11, waiting.stderr
    assert run("plan", _schema(tmp_path, f"{V2}{listed}"), "-d", db_url, "--detailed-exitcode").exit_code == 10
    stale = _refused(run("apply", _schema(tmp_path, f"{V2_AGAIN}{listed}"), "-d", db_url, "-o", "json"))
    assert [(p["code"], p["path"]) for p in stale] == [
        ("ES307", "spec"),
        ("ES308", "spec.approvedPlanHashes[0]"),
        ("ES308", "spec.approvedPlanHashes[1]"),
    ]
    assert stale[2]["message"].startswith(f"approvedPlanHashes[1] {approved} ")
    assert "another base" in stale[2]["message"] and _migrations(db_url) == 1
    outcome = run("apply", _schema(tmp_path, f"{V2}{listed}"), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert "note" not in _columns(db_url) and _migrations(db_url) == 2


def test_plan_json_is_the_contract_object(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    plan = _plan(db_url, _schema(tmp_path, V2))
    assert set(plan) == {
        *("pluginId", "version", "hash", "class", "needsApproval", "destructive", "summary"),
        *("sql", "sqlSteps", "rollbackSql", "ops", "lint", "warnings", "adopts"),
    }
    assert plan["sqlSteps"] == [0] * len(plan["sql"])  # type: ignore[arg-type]
    assert (plan["pluginId"], plan["version"], plan["class"]) == ("shop", "2.0.0", "destructive")
    assert isinstance(plan["hash"], str) and len(plan["hash"]) == 16
    assert plan["sql"] and plan["rollbackSql"] and plan["warnings"] == []
    lint = plan["lint"]
    assert isinstance(lint, list) and all(set(f) == {"rule", "level", "message", "statement"} for f in lint)
    if db_url.startswith("sqlite"):
        assert lint == []
    (op,) = plan["ops"]  # type: ignore[misc]
    assert op == {
        "kind": "drop_column",
        "description": "drop column order.note",
        "class": "destructive",
        "reason": op["reason"],
        "check": {"kind": "values_lost", "table": "order", "column": "note", "count": 3},
        "moreChecks": [],
    }
    text = run("plan", _schema(tmp_path, V2), "-d", db_url)
    assert f"-- plan {plan['hash']}: destructive, needs approval" in text.stdout
    assert "drop column order.note (3 values)" in text.stdout
    other = str(write_schema(tmp_path, "other", V1.replace("pluginId: shop", "pluginId: other")))
    several = run("plan", _schema(tmp_path, V2), other, "-d", db_url, "-o", "json").json()
    assert several["kind"] == "PlanList" and {p["pluginId"] for p in several["items"]} == {"other", "shop"}
    assert next(p for p in several["items"] if p["pluginId"] == "shop") == plan


def _hash_in_a_process(url: str, path: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "extschema", "plan", path, "-d", url, "-o", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=subprocess_env(PYTHONHASHSEED="random"),
        check=True,
    )
    return str(json.loads(done.stdout)["items"][0]["hash"])


@pytest.mark.postgres
def test_the_hash_is_the_same_in_every_process_and_on_both_databases(
    sqlite_url: str, pg_url: str, tmp_path: Path
) -> None:
    hashes = set()
    for url in (sqlite_url, pg_url):
        _seed(url, tmp_path)
        path = _schema(tmp_path, V2)
        hashes |= {_hash_in_a_process(url, path, tmp_path) for _ in range(2)}
        hashes.add(str(_plan(url, path)["hash"]))
    assert len(hashes) == 1


def test_a_narrowing_that_rows_violate_is_refused_even_when_approved(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    path = _schema(tmp_path, NARROW)
    plan = _plan(db_url, path)
    assert plan["class"] == "destructive"
    (op,) = plan["ops"]  # type: ignore[misc]
    assert op["check"]["kind"] == "rows_violating" and op["check"]["count"] == 4
    assert [w["code"] for w in plan["warnings"]] == ["ES309"]  # type: ignore[index]
    problems = _refused(run("apply", path, "-d", db_url, "--approve", str(plan["hash"]), "-o", "json"))
    assert [p["code"] for p in problems] == ["ES309"] and "4 existing row(s) of order" in problems[0]["message"]
    assert execute(db_url, f"SELECT count(*) FROM {ext_table(db_url, 'shop', 'order')} WHERE code = 'abcde'") == [(4,)]
    # Once the rows fit, the approved narrowing runs.
    execute(db_url, f"UPDATE {ext_table(db_url, 'shop', 'order')} SET code = 'abc'")
    assert _plan(db_url, path)["hash"] == plan["hash"]
    outcome = run("apply", path, "-d", db_url, "--approve", str(plan["hash"]))
    assert outcome.exit_code == 0, outcome.stderr


def test_nothing_of_a_run_runs_while_one_plan_waits(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    other = write_schema(tmp_path, "other", V1.replace("pluginId: shop", "pluginId: other"))
    outcome = run("apply", _schema(tmp_path, V2), str(other), "-d", db_url)
    assert outcome.exit_code == 1 and "ES307" in outcome.stderr
    assert run("status", "-d", db_url, "-o", "json").items()[0]["pluginId"] == "shop"
    assert len(run("status", "-d", db_url, "-o", "json").items()) == 1


def test_a_replan_under_the_lock_needs_its_own_approval(db_url: str, tmp_path: Path) -> None:
    """The registry moves between planning and applying: the approved hash no longer names the plan."""
    _seed(db_url, tmp_path)
    (tmp_path / "v2").mkdir()
    (loaded,) = reconcile.load([_schema(tmp_path / "v2", V2)])
    engine = Engine(db_url)
    try:
        proposal = reconcile.propose(engine, [loaded])
        approved = proposal.items[0].reviewed.hash
        reconcile.authorize(proposal, [approved])
        assert run("apply", _schema(tmp_path, WIDER), "-d", db_url).exit_code == 0  # another applier moves it
        with pytest.raises(reconcile.ApprovalRequired) as caught:
            reconcile.execute(engine, proposal, approvals=[approved], on_event=lambda _: None)
    finally:
        engine.close()
    assert [p.code for p in caught.value.problems] == ["ES307", "ES308"]
    assert approved in caught.value.problems[1].message
    assert "note" in _columns(db_url) and "extra" in _columns(db_url)


def test_a_lower_version_rolls_back_to_its_recorded_spec_through_the_gate(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    assert run("apply", _schema(tmp_path, WIDER), "-d", db_url).exit_code == 0
    execute(db_url, f"UPDATE {ext_table(db_url, 'shop', 'order')} SET extra = 7")
    # Lower, but not the spec 1.0.0 was applied with.
    edited = V1.replace("maxLength: 40", "maxLength: 50")
    (problem,) = _refused(run("apply", _schema(tmp_path, edited), "-d", db_url, "-o", "json"))
    assert problem["code"] == "ES311" and problem["path"] == "spec.version"
    # Lower, and exactly as recorded: planned from 1.1.0 back to it, and gated (extra's values are lost).
    path = _schema(tmp_path, V1)
    (waiting,) = _refused(run("apply", path, "-d", db_url, "-o", "json"))
    assert waiting["code"] == "ES307" and "drop column order.extra (4 values)" in waiting["message"]
    outcome = run("apply", path, "-d", db_url, "--approve", str(_plan(db_url, path)["hash"]))
    assert outcome.exit_code == 0, outcome.stderr
    assert _columns(db_url) == ["id", "title", "note", "code"]
    (shop,) = run("status", "-d", db_url, "-o", "json").items()
    assert shop["version"] == "1.0.0"


STATES = """
pluginId: flow
version: 1.0.0
enums:
  - {name: state, values: [new, done, void]}
tables:
  - name: order
    fields:
      - {name: state, type: Enum, enum: state}
      - {name: city, type: String}
      - {name: zip, type: String}
  - name: refund
    fields:
      - {name: state, type: Enum, enum: state}
"""


def test_every_column_an_enum_loses_a_value_from_is_counted_and_refused(db_url: str, tmp_path: Path) -> None:
    path = str(write_schema(tmp_path, "flow", STATES))
    assert run("apply", path, "-d", db_url).exit_code == 0
    for table, rows in (("order", ("void", "void", "new")), ("refund", ("void", "done"))):
        for state in rows:
            execute(db_url, f"INSERT INTO {ext_table(db_url, 'flow', table)} (state) VALUES (:s)", {"s": state})
    path = str(write_schema(tmp_path, "flow", STATES.replace("1.0.0", "2.0.0").replace(", void]", "]")))
    plan = _plan(db_url, path)
    (op,) = plan["ops"]  # type: ignore[misc]
    counted = [op["check"], *op["moreChecks"]]
    assert [(c["kind"], c["table"], c["column"], c["count"]) for c in counted] == [
        ("rows_violating", "order", "state", 2),
        ("rows_violating", "refund", "state", 1),
    ]
    problems = _refused(run("apply", path, "-d", db_url, "--approve", str(plan["hash"]), "-o", "json"))
    assert [(p["code"], p["path"]) for p in problems] == [
        ("ES309", "spec.tables[0].fields[0]"),
        ("ES309", "spec.tables[1].fields[0]"),
    ]
    assert "2 existing row(s) of order" in problems[0]["message"]


def test_a_unique_index_rows_share_values_in_is_refused_with_the_count(db_url: str, tmp_path: Path) -> None:
    path = str(write_schema(tmp_path, "flow", STATES))
    assert run("apply", path, "-d", db_url).exit_code == 0
    for city, zip_code in (("a", "1"), ("a", "1"), ("a", "1"), ("a", "2"), ("b", None), ("b", None)):
        execute(
            db_url,
            f"INSERT INTO {ext_table(db_url, 'flow', 'order')} (city, zip) VALUES (:c, :z)",
            {"c": city, "z": zip_code},
        )
    unique = STATES.replace("1.0.0", "1.1.0").replace(
        "      - {name: zip, type: String}\n",
        "      - {name: zip, type: String}\n    indexes: [{fields: [city, zip], unique: true}]\n",
    )
    path = str(write_schema(tmp_path, "flow", unique))
    plan = _plan(db_url, path)
    assert plan["class"] == "destructive"
    (op,) = plan["ops"]  # type: ignore[misc]
    assert (op["check"]["kind"], op["check"]["count"]) == ("rows_duplicated", 3)
    (problem,) = _refused(run("apply", path, "-d", db_url, "--approve", str(plan["hash"]), "-o", "json"))
    assert (
        problem["code"] == "ES309"
        and "3 existing row(s) of order share their values in (city, zip)" in (problem["message"])
    )
