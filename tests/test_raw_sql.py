"""Raw SQL steps (spec.migrations): what a step may hold, when it runs, and where it is refused.

The pure part checks the allow-list walker against many statements, escape attempts first; the
database part runs the same spec on SQLite and PostgreSQL with rows in the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extschema import model, planning, reconcile, sqltext
from extschema.engine import Engine
from extschema.planning import rawsql as raw_planning
from extschema.planning import safety
from extschema.problems import Kind, ProblemError
from extschema.validation import rawsql, validate
from tests.helpers import engine_rollback, execute, ext_table, run, tables, write_schema

TABLES = {"item", "tag", "item_tag"}
ENUMS = {"mood"}


def refusals(sql: str) -> list[str]:
    return [r.message for s in rawsql.parse(sql) for r in rawsql.refusals(s, "shop", TABLES, ENUMS)]


def spec(*steps: dict[str, str], version: str = "1.0.0", **extra: Any) -> model.ExtensionSchemaSpec:
    data: dict[str, Any] = {
        "pluginId": "shop",
        "version": version,
        "enums": [{"name": "mood", "values": ["ok", "bad"]}],
        "tables": [{"name": "item", "fields": [{"name": "title", "type": "String"}]}, {"name": "tag"}],
        "relationships": [{"source": "item", "target": "tag", "type": "ManyToMany"}],
        "migrations": list(steps),
        **extra,
    }
    return model.parse_spec(data)


def step(sql: str, rollback: str = "", id_: str = "s1") -> dict[str, str]:
    return {"id": id_, "sql": sql, "rollbackSql": rollback}


# --- what a step may hold --------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ext_shop.item SET title = lower(title) WHERE id > 0",
        'UPDATE "ext_shop"."item" SET title = upper(item.title)',
        "INSERT INTO ext_shop.tag (id) VALUES (1), (2) ON CONFLICT (id) DO NOTHING",
        "INSERT INTO ext_shop.item AS i (title) SELECT 'x' FROM ext_shop.tag ON CONFLICT (id) DO UPDATE "
        "SET title = excluded.title WHERE i.title IS NULL",
        "DELETE FROM ext_shop.item_tag WHERE item_id NOT IN (SELECT id FROM ext_shop.item)",
        "WITH old AS (SELECT id FROM ext_shop.item WHERE title IS NULL) DELETE FROM ext_shop.item "
        "WHERE id IN (SELECT id FROM old)",
        "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 5) "
        "INSERT INTO ext_shop.tag (id) SELECT k FROM n",
        "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b",
        "UPDATE ext_shop.item SET title = CASE WHEN length(title) > 3 THEN substr(title, 1, 3) ELSE title END",
        "UPDATE ext_shop.item SET title = coalesce(nullif(trim(title), ''), 'none') || CAST(id AS text)",
        "SELECT count(*), max(id), row_number() OVER (ORDER BY id) FROM ext_shop.item GROUP BY id",
        "SELECT substring(title FROM 1 FOR 2), extract(year FROM now()), CURRENT_TIMESTAMP FROM ext_shop.item",
        "SELECT 'bad'::ext_shop.mood, 1::integer, 2::bigint, '1.5'::numeric(5, 2), 'x'::varchar(3)",
        "SELECT pg_catalog.lower('X')",
        "UPDATE ext_shop.item SET (title) = (SELECT 'x') WHERE EXISTS (SELECT 1 FROM ext_shop.tag t WHERE t.id = 1)",
        "SELECT i.title FROM ext_shop.item i JOIN ext_shop.item_tag it ON it.item_id = i.id LEFT JOIN "
        "LATERAL (SELECT 1 AS one) l ON true",
        "SELECT 'public.users; DROP TABLE x' AS text_not_a_name",
        "SELECT title FROM ext_shop.item ORDER BY title USING <",
        "SELECT now() AT TIME ZONE 'UTC', title IS DISTINCT FROM 'x', id BETWEEN 1 AND 2 FROM ext_shop.item",
        "WITH pg_authid AS (SELECT 1 AS x) SELECT x FROM pg_authid",
    ],
)
def test_allowed_statements(sql: str) -> None:
    assert refusals(sql) == []


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        # other schemas, however written
        ("DELETE FROM public.users", "public.users is outside the plugin"),
        ('DELETE FROM "public"."users"', "public.users is outside the plugin"),
        ('UPDATE "EXT_SHOP".item SET title = 1', "EXT_SHOP.item is outside the plugin"),
        ("SELECT * FROM ext_other.item", "ext_other.item is outside the plugin"),
        ("SELECT * FROM mydb.ext_shop.item", "mydb.ext_shop.item is outside the plugin"),
        ("SELECT * FROM pg_catalog.pg_authid", "pg_catalog.pg_authid is outside the plugin"),
        ("SELECT * FROM extschema.extension_schemas", "extschema.extension_schemas is outside"),
        ("UPDATE pg_catalog.pg_class SET relname = 'x'", "pg_catalog.pg_class is outside the plugin"),
        # unqualified names go through search_path
        ("DELETE FROM users", "table users is not qualified"),
        ("SELECT * FROM pg_user", "table pg_user is not qualified"),
        ("UPDATE ext_shop.item SET title = (SELECT usename FROM pg_shadow LIMIT 1)", "pg_shadow is not qualified"),
        # names the spec does not declare, quoted identifiers included
        ('SELECT * FROM ext_shop."Item"', "ext_shop.Item is not a table of the plugin"),
        ("SELECT * FROM ext_shop.nothing", "ext_shop.nothing is not a table of the plugin"),
        # WITH: writing elsewhere, a name out of its scope, a WITH name as the written table
        ("WITH gone AS (DELETE FROM public.users RETURNING id) SELECT * FROM gone", "public.users is outside"),
        ("WITH x AS (UPDATE core.accounts SET a = 1 RETURNING *) SELECT 1", "core.accounts is outside"),
        ("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) a, t", "table t is not qualified"),
        ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "table b is not qualified"),
        ("WITH users AS (SELECT 1) DELETE FROM users", "table users is not qualified"),
        # functions that reach outside the rows
        ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file"),
        ("SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", "a function in FROM"),
        ("SELECT dblink_exec('host=x', 'drop table y')", "function dblink_exec"),
        ("SELECT set_config('search_path', 'public', true)", "function set_config"),
        ("SELECT nextval('ext_shop.item_id_seq')", "function nextval"),
        ("SELECT pg_sleep(100)", "function pg_sleep"),
        ("SELECT lo_import('/etc/passwd')", "function lo_import"),
        ("UPDATE ext_shop.item SET title = public.lower(title)", "function public.lower"),
        ("UPDATE ext_shop.item SET title = ext_shop.f(title)", "function ext_shop.f"),
        ("SELECT pg_terminate_backend(1)", "function pg_terminate_backend"),
        # types and operators from elsewhere
        ("SELECT 'pg_authid'::regclass", "type regclass"),
        ("SELECT x::public.evil FROM ext_shop.item x", "type public.evil"),
        ("SELECT title OPERATOR(public.=) 'x' FROM ext_shop.item", "operator public.="),
        ("SELECT 1 WHERE 'x' OPERATOR(public.=) ANY (SELECT title FROM ext_shop.item)", "operator public.="),
        ("SELECT title FROM ext_shop.item ORDER BY title USING OPERATOR(public.<)", "operator public.<"),
        ("SELECT CAST(i AS ext_shop.item) FROM ext_shop.item i", "type ext_shop.item"),
        ("SELECT row_to_json(i) FROM ext_shop.item i", "function row_to_json"),
        ("SELECT * FROM ext_shop.item, generate_series(1, 3)", "a function in FROM"),
        ("SELECT xmlparse(document '<a/>')", "XmlExpr"),
        ("WITH t AS (SELECT * FROM t) SELECT * FROM t", "table t is not qualified"),
        ("SELECT ext_shop.item.title FROM ext_shop.item", "column reference ext_shop.item.title"),
        # statements that are not data changes, or cannot be checked
        ("DO $$ BEGIN DELETE FROM public.users; END $$", "DO is not allowed"),
        ("BEGIN", "transaction control"),
        ("COMMIT", "transaction control"),
        ("SET ROLE postgres", "SET is not allowed"),
        ("SET SESSION AUTHORIZATION postgres", "SET is not allowed"),
        ("RESET ROLE", "SET is not allowed"),
        ("SET search_path = public", "SET is not allowed"),
        ("COPY ext_shop.item TO PROGRAM 'curl evil'", "COPY is not allowed"),
        ("COPY ext_shop.item FROM '/etc/passwd'", "COPY is not allowed"),
        ("CREATE EXTENSION dblink", "CREATE EXTENSION is not allowed"),
        ("GRANT ALL ON ext_shop.item TO PUBLIC", "GRANT is not allowed"),
        ("ALTER SYSTEM SET log_statement = 'none'", "ALTER SYSTEM is not allowed"),
        ("ALTER TABLE ext_shop.item ADD COLUMN x int", "AlterTable statement is not allowed"),
        ("CREATE TABLE ext_shop.x (a int)", "Create statement is not allowed"),
        ("DROP TABLE ext_shop.item", "Drop statement is not allowed"),
        ("CREATE FUNCTION ext_shop.f() RETURNS int LANGUAGE sql AS 'select 1'", "CREATE FUNCTION"),
        ("EXPLAIN ANALYZE DELETE FROM public.users", "EXPLAIN is not allowed"),
        ("CALL ext_shop.p()", "CALL is not allowed"),
        ("MERGE INTO ext_shop.item USING ext_shop.tag ON true WHEN MATCHED THEN DELETE", "MERGE is not allowed"),
        ("SELECT 1 INTO ext_shop.copy", "SELECT … INTO creates a table"),
        ("SELECT * FROM ext_shop.item FOR UPDATE", "FOR UPDATE"),
        ('SELECT title COLLATE "C" FROM ext_shop.item', "COLLATE"),
        ("SELECT $1", "a parameter"),
        ("PREPARE p AS DELETE FROM public.users", "Prepare statement is not allowed"),
        ("LISTEN x", "Listen statement is not allowed"),
    ],
)
def test_refused_statements(sql: str, why: str) -> None:
    found = refusals(sql)
    assert any(why in message for message in found), found


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        # With standard_conforming_strings off, PostgreSQL ends the first literal later and runs the DELETE.
        ("SELECT 'a\\' , ' ; DELETE FROM public.users; -- '", "without backslashes"),
        ("SELECT E'\\x41'", "E'…'"),
        ("SELECT $$ ' $$", "$$…$$"),
        ("SELECT U&'\\0041'", "U&'…'"),
        # SQLite ends the comment at the first */ and reads the rest as SQL.
        ("UPDATE ext_shop.item SET title = 'x' /* /* */ , title = (SELECT name FROM victims) -- */", "nested"),
    ],
)
def test_text_other_readers_would_split_differently_is_refused(sql: str, why: str) -> None:
    assert refusals(sql) == []  # what the parser sees is harmless…
    problems = validate(spec(step(sql)))  # …but not what every database would run
    assert [(p.code, p.path) for p in problems] == [("ES126", "spec.migrations[0].sql")]
    assert why in problems[0].message and problems[0].message.startswith("line 1, column ")


def test_each_statement_is_checked_and_located() -> None:
    problems = validate(spec(step("UPDATE ext_shop.item SET title = 'a';\n  DELETE FROM public.users;")))
    assert [(p.code, p.path) for p in problems] == [("ES126", "spec.migrations[0].sql")]
    assert problems[0].message.startswith("statement 2 (line 2, column 15): public.users is outside the plugin")


def test_rollback_sql_is_checked_too() -> None:
    problems = validate(spec(step("SELECT 1", "TRUNCATE ext_shop.item")))
    assert [(p.code, p.path) for p in problems] == [("ES126", "spec.migrations[0].rollbackSql")]


def test_sql_that_does_not_parse_is_es125_with_its_position() -> None:
    problems = validate(spec(step("UPDATE ext_shop.item\nSET title = 'x' WHERE WHERE")))
    assert [(p.code, p.path) for p in problems] == [("ES125", "spec.migrations[0].sql")]
    assert "line 2, column 23" in problems[0].message and "syntax error" in problems[0].message


def test_an_empty_step_is_refused_but_an_empty_rollback_is_not() -> None:
    problems = validate(spec(step("  -- nothing\n", "")))
    assert [(p.code, p.path) for p in problems] == [("ES125", "spec.migrations[0].sql")]
    assert validate(spec(step("SELECT 1", ""))) == []


def test_step_ids_are_unique_and_plain() -> None:
    problems = validate(spec(step("SELECT 1"), step("SELECT 2"), step("SELECT 3", id_="no spaces")))
    assert [(p.code, p.path) for p in problems] == [
        ("ES104", "spec.migrations[1].id"),
        ("ES101", "spec.migrations[2].id"),
    ]


# --- rendering: exactly as written; SQLite's prefixed names -----------------------------------


def test_statements_are_split_and_kept_as_written() -> None:
    sql = "UPDATE ext_shop.item SET title = 'a;b' ; -- note\nDELETE FROM ext_shop.tag;\n"
    assert sqltext.statements(sql, "shop") == ["UPDATE ext_shop.item SET title = 'a;b'", "DELETE FROM ext_shop.tag"]


def test_sqlite_names_are_the_prefixed_tables_with_the_logical_name_as_alias() -> None:
    sql = (
        'UPDATE "ext_shop" . "item" SET title = item.title || \'ext_shop.item\' '
        "WHERE id IN (SELECT it.item_id FROM ext_shop.item_tag it);"
        "WITH t AS (SELECT 1 AS x) INSERT INTO ext_shop.tag (id) SELECT x FROM t"
    )
    assert sqltext.statements(sql, "shop", lambda t: f'"ext_shop__{t}"') == [
        'UPDATE "ext_shop__item" AS "item" SET title = item.title || \'ext_shop.item\' '
        'WHERE id IN (SELECT it.item_id FROM "ext_shop__item_tag" it)',
        'WITH t AS (SELECT 1 AS x) INSERT INTO "ext_shop__tag" AS "tag" (id) SELECT x FROM t',
    ]


# --- planning ---------------------------------------------------------------------------------


def test_new_steps_run_after_the_declarative_changes_in_spec_order() -> None:
    old = spec()
    new = spec(step("SELECT 1", "SELECT 2", "b"), step("SELECT 3", "", "a"), version="1.1.0")
    new_table = new.model_copy(update={"tables": [*new.tables, model.TableSpec(name="extra")]})
    plan = planning.plan(old, new_table, {})
    kinds = [op.KIND for op in plan.ops]
    assert kinds[-2:] == ["run_sql", "run_sql"] and "create_table" in kinds[:-2]
    assert [op.id for op in plan.ops[-2:]] == ["b", "a"]  # type: ignore[attr-defined]
    assert plan.reverse().ops[0] == planning.RunSql("shop", "a", "", "SELECT 3")
    assert plan.reverse().ops[1] == planning.RunSql("shop", "b", "SELECT 2", "SELECT 1")


def test_applied_steps_do_not_run_again_and_removed_ones_run_nothing() -> None:
    old = spec(step("SELECT 1", "", "a"), step("SELECT 2", "", "b"))
    new = spec(step("SELECT 1", "", "a"), step("SELECT 4", "", "c"), version="1.1.0")
    assert raw_planning.steps(old, new) == [planning.RunSql("shop", "c", "SELECT 4", "")]
    assert raw_planning.steps(None, old) == [
        planning.RunSql("shop", "a", "SELECT 1", ""),
        planning.RunSql("shop", "b", "SELECT 2", ""),
    ]


def test_an_applied_step_whose_sql_changed_is_es316() -> None:
    old = spec(step("SELECT 1", "SELECT 0", "a"))
    with pytest.raises(ProblemError) as raised:
        raw_planning.steps(old, spec(step("SELECT 1", "SELECT 9", "a"), version="1.1.0"))
    assert raised.value.kind is Kind.REFUSED
    assert [(p.code, p.path) for p in raised.value.problems] == [("ES316", "spec.migrations[0].rollbackSql")]


def test_raw_sql_needs_the_target_to_allow_it() -> None:
    new = spec(step("SELECT 1", "", "a"), step("SELECT 2", "", "b"))
    plan = planning.Plan("shop", tuple(raw_planning.steps(spec(step("SELECT 1", "", "a")), new)))
    raw_planning.require_allowed(new, plan, allowed=True)
    with pytest.raises(ProblemError) as raised:
        raw_planning.require_allowed(new, plan, allowed=False)
    assert [(p.code, p.path) for p in raised.value.problems] == [("ES313", "spec.migrations[1]")]


# --- on both databases, with rows ---------------------------------------------------------------

V1 = """
pluginId: shop
version: 1.0.0
tables:
  - name: item
    fields: [{name: title, type: String}]
"""

# v2 adds a column and fills it: the step must run after the column exists.
V2 = """
pluginId: shop
version: 2.0.0
tables:
  - name: item
    fields: [{name: title, type: String}, {name: slug, type: String}, {name: runs, type: Int, default: 0}]
migrations:
  - id: "0001_backfill_slug"
    sql: |
      UPDATE ext_shop.item SET slug = lower(title) || '-' || CAST(item.id AS varchar(10));
      UPDATE ext_shop.item SET runs = runs + 1
    rollbackSql: UPDATE ext_shop.item SET slug = NULL, runs = runs - 1
"""

V3 = V2.replace("version: 2.0.0", "version: 3.0.0").replace(
    "{name: runs, type: Int, default: 0}]", "{name: runs, type: Int, default: 0}, {name: note, type: Text}]"
)


def _write(directory: Path, body: str) -> str:
    directory.mkdir(exist_ok=True)
    return str(write_schema(directory, "shop", body))


def _apply(url: str, path: str, allow: bool) -> list[Any]:
    engine = Engine(url, allow_raw_sql=allow)
    try:
        if allow:
            _approve(engine, path)
        return reconcile.reconcile(engine, reconcile.load([path]), lambda _: None)
    finally:
        engine.close()


def _approve(engine: Engine, path: str) -> None:
    """Approve the plan as a reviewer does through Git: its hash in spec.approvedPlanHash.

    A raw SQL step is a rewriting step (planning.safety), so where plans are gated it runs only approved.
    """
    [item] = reconcile.propose(engine, reconcile.load([path])).items
    digest = safety.plan_hash(item.base.checksum if item.base else None, item.plan)
    file = Path(path)
    text = "\n".join(line for line in file.read_text().splitlines() if "approvedPlanHash" not in line)
    file.write_text(text.replace("\nspec:\n", f"\nspec:\n  approvedPlanHash: '{digest}'\n", 1) + "\n")


def _rows(url: str, columns: str = "title, slug, runs") -> list[tuple[Any, ...]]:
    return [tuple(r) for r in execute(url, f"SELECT {columns} FROM {ext_table(url, 'shop', 'item')} ORDER BY id")]


def _seed(url: str, tmp_path: Path) -> None:
    _apply(url, _write(tmp_path / "v1", V1), allow=False)
    for title in ("Alpha", "Beta", "Gamma"):
        execute(url, f"INSERT INTO {ext_table(url, 'shop', 'item')} (title) VALUES (:t)", {"t": title})


def test_a_backfill_runs_once_after_the_declarative_changes_and_rolls_back(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    v2 = _write(tmp_path / "v2", V2)
    [result] = _apply(db_url, v2, allow=True)
    assert result.changed and result.description[-1] == "run SQL step 0001_backfill_slug"
    assert _rows(db_url) == [("Alpha", "alpha-1", 1), ("Beta", "beta-2", 1), ("Gamma", "gamma-3", 1)]

    # Applied again, or with a later version that keeps the step: it does not run again.
    assert not _apply(db_url, v2, allow=True)[0].changed
    [later] = _apply(db_url, _write(tmp_path / "v3", V3), allow=True)
    assert later.changed and not any("run SQL" in line for line in later.description)
    assert _rows(db_url) == [("Alpha", "alpha-1", 1), ("Beta", "beta-2", 1), ("Gamma", "gamma-3", 1)]

    engine = Engine(db_url)
    try:
        history = engine.history("shop")
        recorded = next(r for r in history if r.version == "2.0.0")
        assert "SET runs = runs + 1" in recorded.migration_sql
        assert "runs = runs - 1" in (recorded.rollback_sql or "")
        engine_rollback(engine, "shop")  # 3.0.0 → 2.0.0
        assert _rows(db_url) == [("Alpha", "alpha-1", 1), ("Beta", "beta-2", 1), ("Gamma", "gamma-3", 1)]
        engine_rollback(engine, "shop")  # 2.0.0 → 1.0.0: the rollbackSql runs, then the columns go
    finally:
        engine.close()
    assert _rows(db_url, "title") == [("Alpha",), ("Beta",), ("Gamma",)]
    columns = {c[1] if db_url.startswith("sqlite") else c[0] for c in _columns(db_url)}
    assert "slug" not in columns and "runs" not in columns


def _columns(url: str) -> list[Any]:
    if url.startswith("sqlite"):
        return execute(url, "PRAGMA table_info(ext_shop__item)")
    return execute(
        url,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ext_shop' AND table_name = 'item'",
    )


def test_without_the_allow_flag_nothing_runs(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    before = (_rows(db_url, "id, title"), _columns(db_url))
    with pytest.raises(ProblemError) as raised:
        _apply(db_url, _write(tmp_path / "v2", V2), allow=False)
    assert raised.value.kind is Kind.REFUSED
    assert [(p.code, p.path) for p in raised.value.problems] == [("ES313", "spec.migrations[0]")]
    assert (_rows(db_url, "id, title"), _columns(db_url)) == before
    engine = Engine(db_url)
    try:
        registration = engine.registration("shop")
        assert registration is not None and registration.spec.version == "1.0.0"
    finally:
        engine.close()


def test_a_step_touching_another_table_never_executes(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    victim = "victims" if db_url.startswith("sqlite") else "public.victims"
    execute(db_url, f"CREATE TABLE {victim} (id INTEGER PRIMARY KEY, name TEXT)")
    execute(db_url, f"INSERT INTO {victim} (id, name) VALUES (1, 'kept'), (2, 'kept too')")
    attempts = [f"DELETE FROM {target}" for target in ("public.victims", "victims", "ext_shop__victims")]
    # SQLite would end the comment at the first */ and run the rest: the victims' names into the plugin's rows.
    attempts.append("UPDATE ext_shop.item SET runs = 1 /* /* */ , title = (SELECT max(name) FROM victims) -- */")
    for attempt in attempts:
        bad = V2.replace("UPDATE ext_shop.item SET runs = runs + 1", attempt)
        with pytest.raises(ProblemError) as raised:
            _apply(db_url, _write(tmp_path / "bad", bad), allow=True)
        assert [p.code for p in raised.value.problems] == ["ES126"]
        assert raised.value.problems[0].path == "spec.migrations[0].sql"
    assert execute(db_url, f"SELECT id, name FROM {victim} ORDER BY id") == [(1, "kept"), (2, "kept too")]
    assert _rows(db_url, "title") == [("Alpha",), ("Beta",), ("Gamma",)]
    assert {c[1] if db_url.startswith("sqlite") else c[0] for c in _columns(db_url)} == {"id", "title"}


def test_a_changed_applied_step_is_refused_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    _apply(db_url, _write(tmp_path / "v2", V2), allow=True)
    edited = V3.replace("runs = runs + 1", "runs = runs + 100")
    with pytest.raises(ProblemError) as raised:
        _apply(db_url, _write(tmp_path / "v3", edited), allow=True)
    assert [(p.code, p.path) for p in raised.value.problems] == [("ES316", "spec.migrations[0].sql")]
    assert _rows(db_url) == [("Alpha", "alpha-1", 1), ("Beta", "beta-2", 1), ("Gamma", "gamma-3", 1)]


def test_a_failing_step_rolls_back_the_whole_migration(db_url: str, tmp_path: Path) -> None:
    """The step runs in the migration's transaction: when it fails, the declarative changes go too."""
    _seed(db_url, tmp_path)
    failing = V2.replace("UPDATE ext_shop.item SET runs = runs + 1", "INSERT INTO ext_shop.item (id) VALUES (1)")
    with pytest.raises(ProblemError) as raised:
        _apply(db_url, _write(tmp_path / "v2", failing), allow=True)
    assert raised.value.kind is Kind.DATABASE
    assert _rows(db_url, "title") == [("Alpha",), ("Beta",), ("Gamma",)]
    assert {c[1] if db_url.startswith("sqlite") else c[0] for c in _columns(db_url)} == {"id", "title"}


def test_cli_plan_and_apply_take_allow_raw_sql(db_url: str, tmp_path: Path) -> None:
    _seed(db_url, tmp_path)
    v2 = _write(tmp_path / "v2", V2)
    refused = run("plan", v2, "--database", db_url)
    assert refused.exit_code == 1 and "ES313" in refused.stderr + refused.stdout
    planned = run("plan", v2, "--database", db_url, "--allow-raw-sql")
    assert planned.exit_code == 0, planned.stderr
    assert "run SQL step 0001_backfill_slug" in planned.stdout and "runs = runs + 1" in planned.stdout
    assert run("apply", v2, "--database", db_url).exit_code == 1
    assert _rows(db_url, "title") == [("Alpha",), ("Beta",), ("Gamma",)]
    engine = Engine(db_url, allow_raw_sql=True)
    try:
        _approve(engine, v2)
    finally:
        engine.close()
    applied = run("apply", v2, "--database", db_url, "--allow-raw-sql")
    assert applied.exit_code == 0, applied.stderr
    assert _rows(db_url) == [("Alpha", "alpha-1", 1), ("Beta", "beta-2", 1), ("Gamma", "gamma-3", 1)]
    assert any("shop" in t for t in tables(db_url))


# --- the operator: spec.allowRawSql on the DatabaseTarget -------------------------------------


@pytest.mark.parametrize(("value", "allowed"), [(True, True), (False, False), (None, False), ("true", False)])
def test_database_target_allow_raw_sql_reaches_the_engine(tmp_path: Path, value: Any, allowed: bool) -> None:
    import asyncio

    from extschema.controller import targets

    url = f"sqlite:///{tmp_path / 'app.db'}"
    body = {"url": url} if value is None else {"url": url, "allowRawSql": value}
    entry = targets.TargetEntry.of("db", {}, body)
    if entry.spec is None:  # "true" is not a boolean: an error on the target, never a silent default
        assert value == "true" and entry.error is not None and "allowRawSql" in entry.error
        return
    target = asyncio.run(targets.target_from_spec(None, "ns", "db", entry.spec))  # type: ignore[arg-type]
    assert target.allow_raw_sql is allowed
    engines = targets.Engines()
    try:
        engine = engines.get(target)
        assert engine.allow_raw_sql is allowed
        # The same database with and without raw SQL: two engines, never one with the other's permission.
        other = engines.get(targets.Target("ns/other", "other", url, allow_raw_sql=not allowed))
        assert other is not engine and other.allow_raw_sql is not allowed
    finally:
        engines.close()
