"""``extschema diff OLD NEW``: a plan from files alone, with the hash ``plan NEW`` prints against a
database at OLD — checked against that database on both SQLite and PostgreSQL, for installs, the
evolution example, renames, drops, rewrites, raw SQL steps and several plugins at once.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, REPO, execute, load_core, run, write_schema

CORE_SQL = str(EXAMPLES / "core" / "core.sql")
#: The same core tables as examples/core/core.sql, as a core description.
CORE_YAML = """\
coreTables:
  work_orders: {id: Int, title: String, state: String}
  equipment: {id: Int, serial_number: String, name: String}
"""

SHOP_V1 = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, paid, sent]}
tables:
  - name: order
    fields:
      - {name: title, type: String, required: true, validation: {maxLength: 80}}
      - {name: note, type: String}
      - {name: qty, type: Int}
      - {name: state, type: Enum, enum: state, default: new}
  - name: coupon
    fields:
      - {name: code, type: String, unique: true}
relationships:
  - {source: order, sourceField: work_order_id, target: core.work_orders, type: ManyToOne, onDelete: Cascade}
"""
#: A table renamed, a column renamed, one dropped, one widened (rewriting), a table dropped, an index added.
SHOP_V2 = """
pluginId: shop
version: 2.0.0
enums:
  - {name: state, values: [new, paid, sent, returned]}
tables:
  - name: purchase
    renamedFrom: order
    fields:
      - {name: subject, type: String, required: true, renamedFrom: title, validation: {maxLength: 80}}
      - {name: qty, type: BigInt}
      - {name: state, type: Enum, enum: state, default: new}
    indexes:
      - {fields: [qty]}
relationships:
  - {source: purchase, sourceField: work_order_id, target: core.work_orders, type: ManyToOne, onDelete: Cascade}
"""
#: A plugin depending on shop, referencing its table.
REVIEWS_V1 = """
pluginId: reviews
version: 1.0.0
dependsOn: [shop]
tables:
  - name: review
    fields:
      - {name: stars, type: Int, required: true}
relationships:
  - {source: review, sourceField: order_id, target: shop.order, type: ManyToOne, onDelete: Cascade}
"""
REVIEWS_V2 = (
    REVIEWS_V1.replace("1.0.0", "1.1.0")
    .replace("shop.order", "shop.purchase")
    .replace("sourceField: order_id", "sourceField: purchase_id")
)
#: A raw SQL step in each version (the older one is not run again).
RAW_V1 = """
pluginId: raw
version: 1.0.0
tables:
  - name: item
    fields:
      - {name: title, type: String}
migrations:
  - {id: '0001_seed', sql: "UPDATE ext_raw.item SET title = title", rollbackSql: ''}
"""
RAW_V2 = (
    RAW_V1.replace("1.0.0", "2.0.0").replace(
        "      - {name: title, type: String}\n",
        "      - {name: title, type: String}\n      - {name: slug, type: String}\n",
    )
    + "  - {id: '0002_slug', sql: \"UPDATE ext_raw.item SET slug = title\",\n"
    + "     rollbackSql: 'UPDATE ext_raw.item SET slug = NULL'}\n"
)


def _tagless(statements: list[str]) -> list[str]:
    return [re.sub(r"__m(\d{4}|planned)\b", "__mTAG", s) for s in statements]


def _dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _plans(url: str, new: str, *flags: str) -> dict[str, Any]:
    outcome = run("plan", new, "-d", url, "-o", "json", *flags)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return {item["pluginId"]: item for item in outcome.items()}


def _diffs(old: str | None, new: str, dialect: str, core: str = CORE_SQL) -> dict[str, Any]:
    args = [old, new] if old is not None else ["--from-empty", new]
    outcome = run("diff", *args, "--core", core, "--dialect", dialect, "-o", "json")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return {item["pluginId"]: item for item in outcome.items()}


def _same(url: str, old: str | None, new: str, *flags: str) -> dict[str, Any]:
    """Apply OLD to *url* (with the core tables), plan NEW there, and diff OLD NEW without it: the same
    plugins, hashes, classes, operations and SQL (for the database's dialect); only counts differ."""
    load_core(url)
    if old is not None:
        approvals = [
            a for p in _plans(url, old, *flags).values() if p["needsApproval"] for a in ("--approve", p["hash"])
        ]
        applied = run("apply", old, "-d", url, *flags, *approvals)
        assert applied.exit_code == 0, applied.stderr
    planned = _plans(url, new, *flags)
    diffed = _diffs(old, new, _dialect(url))
    assert sorted(diffed) == sorted(planned)
    for plugin, plan in planned.items():
        found = diffed[plugin]
        assert found["hash"] == plan["hash"], plugin
        assert found["class"] == plan["class"]
        assert found["needsApproval"] == (plan["needsApproval"] and bool(plan["ops"]))
        assert [o["kind"] for o in found["ops"]] == [o["kind"] for o in plan["ops"]]
        assert [o["class"] for o in found["ops"]] == [o["class"] for o in plan["ops"]]
        # Backups are named after the migration apply records (plan reads the history; a diff has none).
        assert _tagless(found["sql"]) == _tagless(plan["sql"])
        assert _tagless(found["rollbackSql"]) == _tagless(plan["rollbackSql"])
        assert found["sqlSteps"] == plan["sqlSteps"]
        for op in found["ops"]:
            assert all(check["count"] is None for check in op["checks"])
    return diffed


def test_evolution_example_has_the_hash_plan_gives(db_url: str) -> None:
    diffed = _same(db_url, str(EXAMPLES / "evolution" / "v1.yaml"), str(EXAMPLES / "evolution" / "v2.yaml"))
    item = diffed["helpdesk"]
    assert (item["fromVersion"], item["version"], item["class"]) == ("1.0.0", "2.0.0", "destructive")
    drop = next(op for op in item["ops"] if op["kind"] == "drop_column")
    assert drop["checks"] == [{"kind": "values_lost", "table": "ticket", "column": "note", "count": None}]
    assert "not counted" in drop["description"]


def test_every_example_installed_from_empty(db_url: str, tmp_path: Path) -> None:
    new = tmp_path / "examples"
    new.mkdir()
    for path in EXAMPLES.glob("*.yaml"):
        shutil.copy(path, new)
    diffed = _same(db_url, None, str(new))
    assert {"comments", "customreports", "kb"} <= set(diffed)
    assert all(item["fromVersion"] is None and item["class"] == "safe" for item in diffed.values())


def test_renames_drops_and_rewrites_across_two_plugins(db_url: str, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    write_schema(old, "shop", SHOP_V1), write_schema(old, "reviews", REVIEWS_V1)
    write_schema(new, "shop", SHOP_V2), write_schema(new, "reviews", REVIEWS_V2)
    diffed = _same(db_url, str(old), str(new))
    kinds = {op["kind"] for op in diffed["shop"]["ops"]}
    assert {"rename_table", "rename_column", "drop_column", "drop_table", "alter_column", "create_index"} <= kinds
    assert diffed["shop"]["class"] == "destructive"
    assert list(diffed) == ["shop", "reviews"]  # dependency order, as apply runs them


def test_raw_sql_steps(db_url: str, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    write_schema(old, "raw", RAW_V1), write_schema(new, "raw", RAW_V2)
    diffed = _same(db_url, str(old / "raw.yaml"), str(new / "raw.yaml"), "--allow-raw-sql")
    steps = [op for op in diffed["raw"]["ops"] if op["kind"] == "run_sql"]
    assert [op["description"] for op in steps] == ["run SQL step 0002_slug"]


def test_unchanged_plugin_and_a_core_description(db_url: str, tmp_path: Path) -> None:
    """The same spec twice: no changes; a core description gives the hash core.sql gives."""
    (tmp_path / "core.yaml").write_text(CORE_YAML)
    v1 = str(EXAMPLES / "evolution" / "v1.yaml")
    v2 = str(EXAMPLES / "evolution" / "v2.yaml")
    diffed = _same(db_url, v1, v1)
    assert diffed["helpdesk"]["changed"] is False and diffed["helpdesk"]["ops"] == []
    by_sql = _diffs(v1, v2, _dialect(db_url))
    by_yaml = _diffs(v1, v2, _dialect(db_url), core=str(tmp_path / "core.yaml"))
    assert by_yaml["helpdesk"]["hash"] == by_sql["helpdesk"]["hash"]
    assert by_yaml["helpdesk"]["sql"] == by_sql["helpdesk"]["sql"]


@pytest.mark.postgres
def test_a_core_key_only_a_description_can_type(pg_url: str, tmp_path: Path) -> None:
    """A uuid core key (SQLite has no UUID): described as Uuid, the diff has the hash and SQL plan has."""
    execute(pg_url, "CREATE TABLE accounts (id uuid PRIMARY KEY, name text)")
    (tmp_path / "core.yaml").write_text("coreTables:\n  accounts: {id: Uuid, name: Text}\n")
    spec = write_schema(
        tmp_path,
        "notes",
        """
        pluginId: notes
        version: 1.0.0
        tables:
          - name: note
            fields:
              - {name: body, type: Text}
        relationships:
          - {source: note, sourceField: account_id, target: core.accounts, type: ManyToOne, onDelete: Cascade}
        """,
    )
    (planned,) = _plans(pg_url, str(spec)).values()
    (diffed,) = _diffs(None, str(spec), "postgresql", core=str(tmp_path / "core.yaml")).values()
    assert (diffed["hash"], diffed["sql"]) == (planned["hash"], planned["sql"])
    assert any("account_id UUID" in statement for statement in diffed["sql"])


def test_text_reads_as_a_plan() -> None:
    outcome = run(
        "diff", str(EXAMPLES / "evolution" / "v1.yaml"), str(EXAMPLES / "evolution" / "v2.yaml"), "--core", CORE_SQL
    )
    assert outcome.exit_code == 0, outcome.stderr
    json_hash = _diffs(str(EXAMPLES / "evolution" / "v1.yaml"), str(EXAMPLES / "evolution" / "v2.yaml"), "postgresql")
    digest = json_hash["helpdesk"]["hash"]
    assert f"-- plan {digest}: destructive, needs approval: apply --approve {digest}" in outcome.stdout
    assert "SQL for postgresql" in outcome.stdout
    assert "drop column ticket.note (values not counted: no database)" in outcome.stdout
    assert 'ALTER TABLE "ext_helpdesk"."ticket" DROP COLUMN "note";' in outcome.stdout


def test_a_plugin_left_out_of_new_is_a_note(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    write_schema(old, "shop", SHOP_V1), write_schema(old, "reviews", REVIEWS_V1)
    write_schema(new, "shop", SHOP_V1)
    outcome = run("diff", str(old), str(new), "--core", CORE_SQL, "-o", "json")
    assert outcome.exit_code == 0
    data = outcome.json()
    assert [p["code"] for p in data["problems"]] == ["ES764"]
    assert "reviews" in data["problems"][0]["message"]


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["only-one.yaml"], "ES763", 2),
        (["--from-empty", "a.yaml", "b.yaml"], "ES763", 2),
        (["--from-empty", "{v1}"], "ES761", 1),
        (["--from-empty", "{v1}", "--core", "{missing}"], "ES760", 1),
        (["--from-empty", "{v1}", "--core", "{bad_yaml}"], "ES760", 1),
        (["--from-empty", "{v1}", "--core", "{bad_type}"], "ES760", 1),
        (["--from-empty", "{v1}", "--core", "{bad_sql}"], "ES762", 1),
        (["--from-empty", "{v1}", "--core", "{pg_sql}"], "ES762", 1),
        (["--from-empty", "{v1}", "--core", "{other_core}"], "ES761", 1),
        (["{v2}", "{v1}", "--core", "{core}"], "ES765", 1),
    ],
)
def test_invalid_arguments(tmp_path: Path, args: list[str], code: str, exit_code: int) -> None:
    files = {
        "v1": str(EXAMPLES / "evolution" / "v1.yaml"),
        "v2": str(EXAMPLES / "evolution" / "v2.yaml"),
        "core": CORE_SQL,
        "missing": str(tmp_path / "nowhere.yaml"),
        "bad_yaml": str(tmp_path / "bad.yaml"),
        "bad_type": str(tmp_path / "type.yaml"),
        "bad_sql": str(tmp_path / "bad.sql"),
        "pg_sql": str(tmp_path / "pg.sql"),
        "other_core": str(tmp_path / "other.json"),
    }
    (tmp_path / "bad.yaml").write_text("tables: [")
    (tmp_path / "type.yaml").write_text("coreTables: {work_orders: {id: Integer}}")
    (tmp_path / "bad.sql").write_text("CREATE TABEL work_orders (id INTEGER PRIMARY KEY);")
    (tmp_path / "pg.sql").write_text("CREATE TABLE work_orders (id UUID PRIMARY KEY);")  # SQLite: NUMERIC
    (tmp_path / "other.json").write_text(json.dumps({"coreTables": {"equipment": {"id": "Int"}}}))
    outcome = run("diff", *[a.format(**files) for a in args], "-o", "json")
    assert outcome.exit_code == exit_code, outcome.stdout
    data = outcome.json()
    assert data["kind"] == "Failure"
    assert code in {p["code"] for p in data["problems"]}, data["problems"]


def test_diff_reads_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No database URL is read, and none is created in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXTSCHEMA_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    outcome = run("diff", "--from-empty", str(REPO / "examples" / "evolution" / "v1.yaml"), "--core", CORE_SQL)
    assert outcome.exit_code == 0, outcome.stderr
    assert list(tmp_path.iterdir()) == []


def test_detailed_exit_codes_and_summary(tmp_path: Path) -> None:
    """plan's --detailed-exitcode and --summary: 0 nothing to do, 10 changes, 11 an approval is missing."""
    v1, v2 = str(EXAMPLES / "evolution" / "v1.yaml"), str(EXAMPLES / "evolution" / "v2.yaml")
    core = ["--core", CORE_SQL, "--detailed-exitcode"]
    assert run("diff", v1, v1, *core).exit_code == 0
    assert run("diff", "--from-empty", v1, *core).exit_code == 10
    waiting = run("diff", v1, v2, *core, "--summary")
    assert waiting.exit_code == 11
    digest = _diffs(v1, v2, "postgresql")["helpdesk"]["hash"]
    assert f"-- plan {digest}" in waiting.stdout and "ALTER TABLE" not in waiting.stdout
    approved = tmp_path / "v2.yaml"
    approved.write_text(Path(v2).read_text().replace("spec:\n", f"spec:\n  approvedPlanHash: {digest}\n", 1))
    assert run("diff", v1, str(approved), *core).exit_code == 10
    (item,) = run("diff", v1, v2, "--core", CORE_SQL, "--summary", "-o", "json").items()
    assert (item["hash"], item["sql"], item["rollbackSql"]) == (digest, None, None)
