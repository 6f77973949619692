"""`extschema analyze`: the REST API's statements explained on fixed data, on both databases.

Planner choices are stable for fixed rows and statistics (seeded rows, then ANALYZE); costs are never
asserted exactly, only compared (before/after a hypothetical index).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml

from extschema import querycheck
from extschema.engine import Engine, analysis, entities
from tests import pgserver
from tests.helpers import REPO, ext_table, load_core, run, sa_url, write_schema

SHOP = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [draft, open, closed, void]}
tables:
  - name: order
    fields:
      - {name: title, type: String}
      - {name: state, type: Enum, enum: state}
      - {name: score, type: Int}
    indexes:
      - {fields: [score]}
  - name: line
    fields:
      - {name: qty, type: Int}
relationships:
  - {source: line, target: order, onDelete: Cascade}
"""

ROWS = 5000


def seed(url: str, rows: int = ROWS, lines: bool = True) -> None:
    """*rows* orders (state 'void' on one in 500: the rare value an index is for), a line each; then ANALYZE."""
    orders = [
        {"title": f"t{i}", "state": "void" if i % 500 == 0 else "open", "score": i % 100} for i in range(1, rows + 1)
    ]
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            order, line = ext_table(url, "shop", "order"), ext_table(url, "shop", "line")
            conn.execute(sa.text(f"INSERT INTO {order} (title, state, score) VALUES (:title, :state, :score)"), orders)
            if lines:
                conn.execute(sa.text(f"INSERT INTO {line} (qty, order_id) SELECT id, id FROM {order}"))
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    finally:
        engine.dispose()


def applied(url: str, tmp_path: Path, body: str = SHOP) -> None:
    outcome = run("apply", str(write_schema(tmp_path, "shop", body)), "-d", url)
    assert outcome.exit_code == 0, outcome.stderr


def analysed(url: str, *args: str) -> dict[str, Any]:
    outcome = run("analyze", "shop", "-d", url, "-o", "json", *args)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    envelope = outcome.json()
    assert (envelope["kind"], envelope["ok"], envelope["problems"]) == ("AnalysisList", True, [])
    (report,) = envelope["items"]
    assert isinstance(report, dict)
    return report


def by_statement(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["table"], f["statement"]): f for f in report["findings"]}


def with_suggestion(body: str, suggestion: dict[str, Any], version: str) -> str:
    """The spec with the suggested `indexes:` entry added, as a person would paste it."""
    spec = yaml.safe_load(body)
    for wanted in yaml.safe_load(suggestion["yaml"])["tables"]:
        table = next(t for t in spec["tables"] if t["name"] == wanted["name"])
        table.setdefault("indexes", []).extend(wanted["indexes"])
    spec["version"] = version
    return str(yaml.safe_dump(spec, sort_keys=False))


def test_a_filter_without_an_index_is_missing_index_and_the_applied_suggestion_makes_it_ok(
    db_url: str, tmp_path: Path
) -> None:
    applied(db_url, tmp_path)
    seed(db_url)
    report = analysed(db_url)
    findings = by_statement(report)
    state = findings[("order", "filter:state")]
    assert state["verdict"] == "missing-index"
    assert state["suggestion"]["fields"] == ["state", "id"]
    assert yaml.safe_load(state["suggestion"]["yaml"]) == {
        "tables": [{"name": "order", "indexes": [{"fields": ["state", "id"]}]}]
    }
    # Everything else the API issues is served by an index extschema made (pk, FK, the declared one).
    others = {key: f["verdict"] for key, f in findings.items() if key != ("order", "filter:state")}
    assert set(others.values()) == {"ok"}, others
    assert {"get", "list", "list:after", "filter:score", "sort:score", "sort:-score:after"} <= {
        s for t, s in findings if t == "order"
    }
    assert {"include:line", "on-delete:order_id", "filter:order_id"} <= {s for t, s in findings if t == "line"}
    assert findings[("order", "filter:score")]["index"] == findings[("order", "sort:score")]["index"]
    assert findings[("line", "on-delete:order_id")]["index"].endswith("line_order_id_idx")

    applied(db_url, tmp_path, with_suggestion(SHOP, state["suggestion"], "1.1.0"))
    again = by_statement(analysed(db_url))[("order", "filter:state")]
    assert again["verdict"] == "ok"
    assert again["index"] == state["suggestion"]["indexName"]
    assert again["suggestion"] is None


def test_the_report_is_the_same_twice(db_url: str, tmp_path: Path) -> None:
    applied(db_url, tmp_path)
    seed(db_url)

    def stable(report: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(f["table"], f["statement"], f["verdict"], f["index"], f["sql"]) for f in report["findings"]]

    assert stable(analysed(db_url)) == stable(analysed(db_url))


def test_tables_below_the_row_threshold_report_nothing(db_url: str, tmp_path: Path) -> None:
    applied(db_url, tmp_path)
    seed(db_url, rows=20)
    report = analysed(db_url)
    assert report["findings"] == []
    assert [s["table"] for s in report["skipped"]] == ["line", "order"]
    lowered = analysed(db_url, "--min-rows", "10")
    assert lowered["skipped"] == []
    assert {f["table"] for f in lowered["findings"]} == {"order", "line"}
    text = run("analyze", "shop", "-d", db_url)
    assert text.exit_code == 0 and "skipped: 20 rows (fewer than 1000)" in text.stdout


@pytest.mark.postgres
def test_rows_written_after_the_last_analyze_count(pg_url: str, tmp_path: Path) -> None:
    """The planner's estimate says 0 rows (analysed while empty): the table is counted, not skipped."""
    applied(pg_url, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute("ALTER TABLE ext_shop.order SET (autovacuum_enabled = false)")
        conn.execute(
            "INSERT INTO ext_shop.order (title, state) SELECT 'o' || i, 'open' FROM generate_series(1, 1500) AS i"
        )
    report = analysed(pg_url)
    assert [s["table"] for s in report["skipped"]] == ["line"]
    assert by_statement(report)[("order", "filter:state")]["verdict"] == "missing-index"


def test_an_empty_database_has_nothing_to_analyse(db_url: str, tmp_path: Path) -> None:
    applied(db_url, tmp_path)
    assert analysed(db_url)["findings"] == []


def test_statements_built_here_are_judged_by_their_own_filters_and_order(db_url: str, tmp_path: Path) -> None:
    """The machinery on statements the test builds: an alias, a full sort, a filter through an index."""
    applied(db_url, tmp_path)
    seed(db_url)
    engine = Engine(db_url)
    try:
        registered = engine.registration("shop")
        assert registered is not None
        physical = engine.dialect.namer.table("shop", "order")
        order = sa.Table(physical.name, sa.MetaData(), schema=physical.schema, autoload_with=engine.sa_engine)
        alias = order.alias("o")
        statements = [
            entities.NamedStatement(
                "by title", "order", sa.select(order).order_by(order.c.title, order.c.id).limit(50), {}
            ),
            entities.NamedStatement(
                "aliased state", "order", sa.select(alias).where(alias.c.state == sa.bindparam("s")), {"s": "open"}
            ),
            entities.NamedStatement(
                "score range", "order", sa.select(order).where(order.c.score == 7, order.c.id > 10).limit(50), {}
            ),
        ]
        result = analysis.analyze(engine.database, registered.spec, statements)
    finally:
        engine.close()
    found = {f.statement: f for f in result.findings}
    assert found["by title"].verdict is querycheck.Verdict.MISSING_INDEX
    assert found["by title"].suggestion is not None and found["by title"].suggestion.fields == ("title", "id")
    assert found["aliased state"].verdict is querycheck.Verdict.MISSING_INDEX
    assert found["aliased state"].suggestion is not None and found["aliased state"].suggestion.fields == ("state",)
    assert found["aliased state"].params == {"s": "void"}  # the rarest value sampled: the one an index is for
    assert found["score range"].verdict is querycheck.Verdict.OK
    assert found["score range"].index is not None and found["score range"].index.endswith("order_score_idx")


@pytest.mark.postgres
def test_an_index_the_planner_passes_by_is_a_slow_plan_without_a_suggestion(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(pg_url, tmp_path)
    seed(pg_url)
    monkeypatch.setenv("PGOPTIONS", "-c enable_indexscan=off -c enable_bitmapscan=off")  # as if it did not pay
    findings = by_statement(analysed(pg_url, "--no-verify"))
    for statement in ("filter:score", "sort:score"):
        found = findings[("order", statement)]
        assert found["verdict"] == "slow-plan", found
        assert found["suggestion"] is None and "although order_score_idx serves it" in found["reason"]
    assert findings[("order", "filter:state")]["verdict"] == "missing-index"
    assert findings[("order", "filter:state")]["suggestion"]["verification"]["reason"] == "not asked (--no-verify)"


CORE_REFERENCE = """
pluginId: shop
version: 1.0.0
tables:
  - name: note
    fields:
      - {name: body, type: Text}
relationships:
  - {source: note, target: core.work_orders, onDelete: Cascade}
"""


def test_deleting_a_core_row_looks_up_the_plugin_rows_through_their_index(db_url: str, tmp_path: Path) -> None:
    load_core(db_url)
    applied(db_url, tmp_path, CORE_REFERENCE)
    engine = sa.create_engine(sa_url(db_url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        orders = [{"id": i, "title": f"w{i}"} for i in range(1, 301)]
        conn.execute(sa.text("INSERT INTO work_orders (id, title) VALUES (:id, :title)"), orders)
        notes = [{"body": f"n{i}", "wo": i % 300 + 1} for i in range(1500)]
        conn.execute(
            sa.text(f"INSERT INTO {ext_table(db_url, 'shop', 'note')} (body, work_orders_id) VALUES (:body, :wo)"),
            notes,
        )
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    engine.dispose()
    found = by_statement(analysed(db_url))[("note", "on-delete:work_orders_id")]
    assert found["verdict"] == "ok" and found["index"].endswith("note_work_orders_id_idx")


KB = """
pluginId: kb
version: 1.0.0
tables:
  - name: article
    fields:
      - {name: title, type: String}
  - name: tag
    fields:
      - {name: label, type: String, unique: true}
relationships:
  - {source: article, target: tag, type: ManyToMany}
"""


def test_a_many_to_many_plugin_is_served_by_the_indexes_extschema_makes(db_url: str, tmp_path: Path) -> None:
    """Join tables, link lookups and includes: every statement ok, nothing suggested (no noise)."""
    outcome = run("apply", str(write_schema(tmp_path, "kb", KB)), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    engine = sa.create_engine(sa_url(db_url), poolclass=sa.pool.NullPool)
    article, tag, link = (ext_table(db_url, "kb", t) for t in ("article", "tag", "article_tag"))
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {article} (title) VALUES (:t)"), [{"t": f"a{i}"} for i in range(3000)])
        conn.execute(sa.text(f"INSERT INTO {tag} (label) SELECT title FROM {article}"))
        conn.execute(sa.text(f"INSERT INTO {link} (article_id, tag_id) SELECT id, id FROM {article}"))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    engine.dispose()
    outcome = run("analyze", "kb", "-d", db_url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    findings = by_statement(outcome.json()["items"][0])
    assert {("article_tag", "include:tag:links"), ("article_tag", "filter:article_id"), ("tag", "include:tag")} <= set(
        findings
    )
    assert {k: f["reason"] for k, f in findings.items() if f["verdict"] != "ok"} == {}


# --- PostgreSQL: hypopg, pg_stat_statements ------------------------------------------------------------------


def _extensions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}


@pytest.mark.postgres
def test_hypopg_costs_the_suggested_index_and_leaves_nothing_behind(pg_url: str, tmp_path: Path) -> None:
    applied(pg_url, tmp_path)
    seed(pg_url)
    check = by_statement(analysed(pg_url))[("order", "filter:state")]["suggestion"]["verification"]
    assert check["status"] == "verified", check
    assert check["costAfter"] < check["costBefore"]
    assert check["index"].startswith("<")  # hypopg's name for a hypothetical index
    assert "hypopg" not in _extensions(pg_url)  # created in the analysis transaction, rolled back with it
    text = run("analyze", "shop", "-d", pg_url)
    assert "verified with hypopg: cost" in text.stdout


@contextlib.contextmanager
def reader(pg_url: str) -> Iterator[str]:
    """A login that may read the plugin's tables and nothing more (it cannot create extensions)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE analyst LOGIN")
        for schema in ("ext_shop", "extschema"):
            conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO analyst")
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO analyst")
    try:
        yield pg_url.replace("postgres@", "analyst@", 1)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY analyst")
            conn.execute("DROP ROLE analyst")


@pytest.mark.postgres
def test_without_the_right_to_create_hypopg_the_suggestion_is_unverified(pg_url: str, tmp_path: Path) -> None:
    applied(pg_url, tmp_path)
    seed(pg_url)
    with reader(pg_url) as url:
        findings = by_statement(analysed(url))
    state = findings[("order", "filter:state")]
    assert state["verdict"] == "missing-index" and state["suggestion"]["fields"] == ["state", "id"]
    check = state["suggestion"]["verification"]
    assert check["status"] == "unverified"
    assert "cannot create extension hypopg" in check["reason"] and "permission denied" in check["reason"]
    # Explaining a DELETE needs the right to DELETE: reported as such, the other statements still judged.
    with reader(pg_url) as url:
        engine = Engine(url)
        try:
            registered = engine.registration("shop")
            assert registered is not None
            line = sa.Table("line", sa.MetaData(), schema="ext_shop", autoload_with=engine.sa_engine)
            statements = [
                entities.NamedStatement("delete", "line", sa.delete(line).where(line.c.order_id == 1), {}),
                entities.NamedStatement("get", "line", sa.select(line).where(line.c.id == 1), {}),
            ]
            result = analysis.analyze(engine.database, registered.spec, statements)
        finally:
            engine.close()
    refused, read = result.findings
    assert refused.verdict is querycheck.Verdict.UNEXPLAINED and "permission denied" in refused.reason
    assert read.verdict is querycheck.Verdict.OK


def test_without_pg_stat_statements_there_are_no_statistics_and_no_error(db_url: str, tmp_path: Path) -> None:
    applied(db_url, tmp_path)
    seed(db_url)
    statistics = analysed(db_url)["statistics"]
    assert statistics["available"] is False and statistics["statements"] == []
    assert "pg_stat_statements" in statistics["reason"]


@pytest.mark.postgres
def test_pg_stat_statements_created_but_not_loaded_is_reported_not_raised(pg_url: str, tmp_path: Path) -> None:
    applied(pg_url, tmp_path)
    seed(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    statistics = analysed(pg_url)["statistics"]
    assert statistics["available"] is False
    assert "shared_preload_libraries" in statistics["reason"]
    assert by_statement(analysed(pg_url))[("order", "filter:state")]["verdict"] == "missing-index"


@pytest.fixture(scope="module")
def preloaded_url() -> Iterator[str]:
    """A server of its own that loads pg_stat_statements (a restart setting), with a database for the test."""
    with pgserver.running_server("-c shared_preload_libraries=pg_stat_statements") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
        yield url.rpartition("/")[0] + "/shop"


@pytest.mark.postgres
def test_pg_stat_statements_figures_for_the_plugins_statements(preloaded_url: str, tmp_path: Path) -> None:
    applied(preloaded_url, tmp_path)
    seed(preloaded_url)
    with psycopg.connect(preloaded_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        for _ in range(3):
            conn.execute('SELECT count(*) FROM ext_shop."order" WHERE score = %s', (7,))
    statistics = analysed(preloaded_url)["statistics"]
    assert statistics["available"] is True and statistics["reason"] is None
    (counted,) = [s for s in statistics["statements"] if "count(*)" in s["query"]]
    assert counted["calls"] == 3 and counted["rows"] == 3 and counted["meanMs"] >= 0
    assert all("ext_shop" in s["query"] for s in statistics["statements"])
    # Only reads and writes, not the DDL of apply nor analyze's own EXPLAINs, counts and samples.
    assert {s["query"].split()[0] for s in statistics["statements"]} == {"SELECT", "INSERT"}
    assert "pg_stat_statements (slowest first):" in run("analyze", "shop", "-d", preloaded_url).stdout


# --- refusals -------------------------------------------------------------------------------------------------


def test_an_unknown_plugin_is_refused(db_url: str) -> None:
    outcome = run("analyze", "nope", "-d", db_url)
    assert outcome.exit_code == 1 and "ES306" in outcome.stderr and "extschema status" in outcome.stderr


def test_a_table_dropped_by_hand_is_named_with_the_repair(db_url: str, tmp_path: Path) -> None:
    applied(db_url, tmp_path)
    engine = sa.create_engine(sa_url(db_url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {ext_table(db_url, 'shop', 'line')}"))
    engine.dispose()
    outcome = run("analyze", "shop", "-d", db_url, "-o", "json")
    assert outcome.exit_code == 1
    (problem,) = outcome.json()["problems"]
    assert problem["code"] == "ES750" and "line" in problem["message"] and "--repair" in problem["message"]


def test_a_plugin_that_is_not_active_is_refused(db_url: str, tmp_path: Path) -> None:
    applied(db_url, tmp_path)
    registry = "extension_schemas" if db_url.startswith("sqlite") else "extschema.extension_schemas"
    engine = sa.create_engine(sa_url(db_url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {registry} SET status = 'failed' WHERE plugin_id = 'shop'"))
    engine.dispose()
    outcome = run("analyze", "shop", "-d", db_url)
    assert outcome.exit_code == 1 and "ES751" in outcome.stderr and "extschema history shop" in outcome.stderr


# --- pure parts -----------------------------------------------------------------------------------------------


def test_a_condition_mentions_a_column_not_a_type_or_literal_of_that_name() -> None:
    assert querycheck.mentions("(state = 'void'::ext_shop.state)", "state")
    assert not querycheck.mentions("(kind = 'state'::ext_shop.state)", "state")
    assert querycheck.mentions('("order" = 1)', "order")
    assert not querycheck.mentions("(reorder = 1)", "order")


# --- GET /api/v1/extensions/{pluginId}/analysis -----------------------------------------------------------------


def test_the_api_serves_the_same_report_to_admin_and_plugin_readers_only(db_url: str, tmp_path: Path) -> None:
    import asyncio
    import hashlib

    import httpx

    from extschema.api.app import Settings, context_of, create_app

    applied(db_url, tmp_path)
    seed(db_url)
    tokens = {"admin": ["admin"], "reader": ["shop:read"], "other": ["other:read"]}
    (tmp_path / "tokens.yaml").write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {"name": name, "sha256": hashlib.sha256(name.encode()).hexdigest(), "scopes": scopes}
                    for name, scopes in tokens.items()
                ]
            }
        )
    )
    app = create_app(Settings(db_url, tokens_file=str(tmp_path / "tokens.yaml")))
    path = "/api/v1/extensions/shop/analysis"

    async def ask() -> tuple[dict[str, httpx.Response], httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            served = {n: await client.get(path, headers={"Authorization": f"Bearer {n}"}) for n in tokens}
            anonymous = await client.get(path)
            unknown = await client.get("/api/v1/extensions/nope/analysis", headers={"Authorization": "Bearer admin"})
            small = await client.get(f"{path}?minRows=100000", headers={"Authorization": "Bearer reader"})
        return served, anonymous, unknown, small

    try:
        served, anonymous, unknown, small = asyncio.run(ask())
    finally:
        context_of(app).close()
    assert served["admin"].status_code == served["reader"].status_code == 200
    assert served["other"].status_code == 403 and anonymous.status_code == 401
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "ES306"
    (report,) = served["reader"].json()["items"]  # the AnalysisList envelope, as the CLI prints
    state = by_statement(report)[("order", "filter:state")]
    assert state["verdict"] == "missing-index" and state["suggestion"]["fields"] == ["state", "id"]
    cli = analysed(db_url)
    assert [(f["table"], f["statement"], f["verdict"]) for f in report["findings"]] == [
        (f["table"], f["statement"], f["verdict"]) for f in cli["findings"]
    ]
    (small_report,) = small.json()["items"]
    assert small_report["findings"] == [] and len(small_report["skipped"]) == 2


# --- docs/analyze.md ------------------------------------------------------------------------------------------


def test_the_documented_session_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/analyze.md's session: its spec files, its commands, the output it shows (SQLite: no costs)."""
    text = (REPO / "docs" / "analyze.md").read_text()
    for name, body in re.findall(r"```yaml\n# (\S+\.yaml)\n(.*?)```", text, re.DOTALL):
        (tmp_path / name).write_text(body)
    commands = [
        shlex.split(line.partition("#")[0])[1:]
        for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
        for line in block.splitlines()
        if line.startswith("extschema ")
    ]
    shown = re.findall(r"```text\n(.*?)```", text, re.DOTALL)
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///shop.db"
    outcomes = []
    for number, args in enumerate(commands):
        if number == 2:  # "Once the application has written 5,000 orders (ten of them void)"
            seed(url, lines=False)
        outcome = run(*args)
        assert outcome.exit_code == 0, (args, outcome.stdout, outcome.stderr)
        outcomes.append(outcome.stdout)
        if number == 2:  # the JSON shown: the same report, before the index
            report = analysed(url)
    assert len(commands) == 5
    assert "skipped: 0 rows (fewer than 1000)" in outcomes[1]
    assert outcomes[2] == shown[0]
    (after,) = shown[1].splitlines()
    assert after in outcomes[4].splitlines()
    documented = json.loads(re.findall(r"```json\n(.*?)```", text, re.DOTALL)[0])
    (finding,) = documented["findings"]
    actual = by_statement(report)[("order", "filter:state")]
    assert set(documented) == set(report)
    assert set(finding) == set(actual)
    assert {k: v for k, v in finding.items() if k != "sql"} == {k: v for k, v in actual.items() if k != "sql"}
    assert documented["statistics"] == report["statistics"]
