"""Table and field descriptions are stored as comments on PostgreSQL; SQLite, which has none, applies the same spec."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import approved_delete, execute, run, write_schema

TABLE_TEXT = "Reports people file.\nSecond line with a quote ' and a backslash \\ at the end\\"
FIELD_TEXT = "x\\'); DROP TABLE canary; -- the title"
ADDED_TEXT = "Added later: ünïcödé, 'quoted', $$dollar$$"


def _spec(version: str, extra_field: dict[str, object] | None = None) -> str:
    fields: list[dict[str, object]] = [
        {"name": "title", "type": "String", "description": FIELD_TEXT},
        {"name": "plain", "type": "Text"},
    ]
    if extra_field:
        fields.append(extra_field)
    spec = {
        "pluginId": "described",
        "version": version,
        "tables": [{"name": "report", "description": TABLE_TEXT, "fields": fields}],
    }
    return json.dumps(spec)


def _comments(url: str) -> dict[str, str | None]:
    rows = execute(
        url,
        "SELECT 'table', obj_description('ext_described.report'::regclass, 'pg_class') UNION ALL "
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = 'ext_described.report'::regclass AND attnum > 0 AND NOT attisdropped",
    )
    return dict(rows)  # type: ignore[arg-type]


def test_descriptions_become_comments(db_url: str, tmp_path: Path) -> None:
    postgres = db_url.startswith("postgresql")
    if postgres:  # the comments are literals too: they must stay data whatever the server's settings
        database = db_url.rsplit("/", 1)[1]
        execute(db_url, f'ALTER DATABASE "{database}" SET standard_conforming_strings = off')
    execute(db_url, "CREATE TABLE canary (id INTEGER)")
    outcome = run("apply", str(write_schema(tmp_path, "described", _spec("1.0.0"))), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    if postgres:
        assert _comments(db_url) == {"table": TABLE_TEXT, "id": None, "title": FIELD_TEXT, "plain": None}

    (tmp_path / "v2").mkdir()
    added = {"name": "summary", "type": "Text", "description": ADDED_TEXT}
    v2 = write_schema(tmp_path / "v2", "described", _spec("1.1.0", added))
    outcome = run("apply", str(v2), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    if postgres:
        assert _comments(db_url)["summary"] == ADDED_TEXT

    # The added column goes with its comment; the table's comment stays.
    assert run("rollback", "described", "-d", db_url).exit_code == 0
    if postgres:
        assert _comments(db_url) == {"table": TABLE_TEXT, "id": None, "title": FIELD_TEXT, "plain": None}
    assert approved_delete(db_url, "described").exit_code == 0
    assert execute(db_url, "SELECT count(*) FROM canary") == [(0,)]


def test_plan_shows_the_comments(db_url: str, tmp_path: Path) -> None:
    planned = run("plan", str(write_schema(tmp_path, "described", _spec("1.0.0"))), "-d", db_url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    comments = [s for s in planned.item()["sql"] if s.startswith("COMMENT ON")]
    if db_url.startswith("postgresql"):
        assert [c.split(" IS ")[0] for c in comments] == [
            'COMMENT ON TABLE "ext_described"."report"',
            'COMMENT ON COLUMN "ext_described"."report"."title"',
        ]
    else:
        assert comments == []


def test_changing_a_description_is_not_refused(db_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "described", _spec("1.0.0"))), "-d", db_url).exit_code == 0
    (tmp_path / "v2").mkdir()
    edited = _spec("1.0.1").replace(json.dumps(FIELD_TEXT)[1:-1], "A new text for the title")
    outcome = run("apply", str(write_schema(tmp_path / "v2", "described", edited)), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
