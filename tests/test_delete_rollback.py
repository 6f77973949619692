"""Nothing is lost on delete or rollback, and the registry tells the truth afterwards (issue 7, defect 5)."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

from tests.helpers import approved_rollback, execute, ext_table, run, tables, write_schema
from tests.specs import SHOP

SHOP_V2 = (
    SHOP.replace("1.0.0", "1.1.0")
    + """
  - name: extra
    fields: [{name: note, type: Text}]
"""
)
LINES = """
pluginId: lines
version: 1.0.0
dependsOn: [shop]
tables:
  - name: line
    fields: [{name: qty, type: Int}]
relationships:
  - {source: line, target: shop.extra, type: ManyToOne, onDelete: Cascade}
"""


def _apply(url: str, directory: Path, body: str, name: str = "shop") -> None:
    directory.mkdir(exist_ok=True)
    outcome = run("apply", str(write_schema(directory, name, body)), "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def _status(url: str) -> list[dict[str, object]]:
    plugins: list[dict[str, object]] = run("status", "-d", url, "-o", "json").items()
    return plugins


def test_delete_backs_up_a_column_added_by_hand(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path, SHOP)
    order = ext_table(db_url, "shop", "order")
    execute(db_url, f"ALTER TABLE {order} ADD COLUMN dba_note TEXT")
    execute(db_url, f"INSERT INTO {order} (title, state, dba_note) VALUES ('a', 'done', 'keep me')")
    outcome = run("delete", "shop", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    backups = [t for t in tables(db_url) if "extschema_backup" in t and "order" in t]
    assert len(backups) == 1, tables(db_url)
    schema, _, name = backups[0].rpartition(".")
    ref = f'"{schema}"."{name}"' if schema else f'"{name}"'
    assert execute(db_url, f"SELECT title, state, dba_note FROM {ref}") == [("a", "done", "keep me")]
    assert not any("ext_shop" in t for t in tables(db_url))  # the enum type went too (PostgreSQL)


def test_rollback_never_deletes_another_plugins_rows(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    _apply(db_url, tmp_path / "lines", LINES, "lines")
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'extra')} (note) VALUES ('x')")
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'lines', 'line')} (qty, extra_id) VALUES (3, 1)")
    # Rolling back shop 1.1.0 would drop the table lines references (ON DELETE CASCADE).
    outcome = run("rollback", "shop", "-d", db_url)
    assert outcome.exit_code == 1 and "ES303" in outcome.stderr and "lines" in outcome.stderr, outcome.stderr
    assert execute(db_url, f"SELECT qty FROM {ext_table(db_url, 'lines', 'line')}") == [(3,)]
    assert execute(db_url, f"SELECT note FROM {ext_table(db_url, 'shop', 'extra')}") == [("x",)]
    outcome = run("delete", "shop", "-d", db_url)
    assert outcome.exit_code == 1 and "ES303" in outcome.stderr
    assert execute(db_url, f"SELECT qty FROM {ext_table(db_url, 'lines', 'line')}") == [(3,)]


def test_rollback_of_a_rebuilt_referenced_table_keeps_other_plugins_rows(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP_V2)
    _apply(db_url, tmp_path / "lines", LINES, "lines")
    v3 = SHOP_V2.replace("1.1.0", "1.2.0").replace(
        "fields: [{name: note, type: Text}]", "fields: [{name: note, type: Text}, {name: size, type: Int}]"
    )
    _apply(db_url, tmp_path / "v3", v3)
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'extra')} (note, size) VALUES ('x', 2)")
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'lines', 'line')} (qty, extra_id) VALUES (3, 1)")
    outcome = approved_rollback(db_url, "shop")  # drops the column (approved): a rebuild of extra on SQLite
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert execute(db_url, f"SELECT qty, extra_id FROM {ext_table(db_url, 'lines', 'line')}") == [(3, 1)]
    assert execute(db_url, f"SELECT note FROM {ext_table(db_url, 'shop', 'extra')}") == [("x",)]


def test_delete_completes_when_a_table_was_dropped_by_hand(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path, SHOP_V2)
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (title) VALUES ('a')")
    execute(db_url, f"DROP TABLE {ext_table(db_url, 'shop', 'extra')}")
    outcome = run("delete", "shop", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert "already missing" in outcome.stdout and "extra" in outcome.stdout
    assert not any("ext_shop" in t for t in tables(db_url))
    assert _status(db_url) == []
    backups = [t for t in tables(db_url) if "extschema_backup" in t]
    assert len(backups) == 1 and "order" in backups[0]


def test_a_migration_stuck_executing_does_not_change_what_rollback_undoes(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    registry = "extension_migrations" if db_url.startswith("sqlite") else "extschema.extension_migrations"
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    # What a crash between recording and committing could leave: a later migration never finished.
    execute(
        db_url,
        f"INSERT INTO {registry} (id, plugin_id, migration_id, kind, owner, version, description, migration_sql, "
        "statements, rollback_statements, foreign_keys_off, checksum_sql, status, created_at, updated_at) "
        "VALUES (:id, 'shop', '0003', 'apply', 'shop', '9.9.9', '[]', '', '[]', :undo, false, :sum, 'executing', "
        ":now, :now)",
        {"id": str(uuid.uuid4()), "undo": json.dumps(["SELECT 1"]), "sum": "x", "now": stamp},
    )
    outcome = run("rollback", "shop", "-d", db_url)
    assert outcome.exit_code in (0, 1), outcome.stderr
    if outcome.exit_code == 0:  # it undid 1.1.0, not 1.0.0
        assert "0002" in outcome.stdout
        assert [(p["pluginId"], p["version"]) for p in _status(db_url)] == [("shop", "1.0.0")]
        assert any("order" in t for t in tables(db_url) if "ext_shop" in t)
    else:  # or it refused, naming the stuck migration, and changed nothing
        assert "0003" in outcome.stderr
        assert [(p["pluginId"], p["version"]) for p in _status(db_url)] == [("shop", "1.1.0")]


def test_rollback_after_delete_and_reapply_tells_the_truth(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    assert run("delete", "shop", "-d", db_url).exit_code == 0
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    outcome = run("rollback", "shop", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    # The re-apply created everything; undoing it leaves no plugin (the pre-delete 1.0.0 is gone).
    assert _status(db_url) == []
    assert not any("ext_shop" in t for t in tables(db_url))
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    assert [(m["kind"], m["status"]) for m in history] == [
        ("apply", "executed"),
        ("delete", "executed"),
        ("apply", "rolled_back"),
    ]
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    assert [(p["pluginId"], p["version"]) for p in _status(db_url)] == [("shop", "1.1.0")]


def test_a_table_removed_by_rollback_is_not_drift(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    assert run("rollback", "shop", "-d", db_url).exit_code == 0
    outcome = run("status", "-d", db_url)
    assert "missing" not in outcome.stdout, outcome.stdout  # the DRIFT column says -
    (plugin,) = _status(db_url)
    assert plugin["version"] == "1.0.0" and plugin["tables"] == plugin["expectedTables"]
