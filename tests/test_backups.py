"""Backups before destructive steps: recorded, listed, pruned, restored — every row back (issue 8, item 5)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from extschema import loading, planning
from extschema.engine import Engine
from tests.helpers import approved_delete, execute, ext_table, run, tables, write_schema

ROWS = 120

V1 = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, done]}
tables:
  - name: customer
    fields: [{name: name, type: String, required: true}]
  - name: order
    fields:
      - {name: title, type: String, required: true}
      - {name: note, type: Text}
      - {name: state, type: Enum, enum: state, required: true, default: new}
relationships:
  - {source: order, target: customer, type: ManyToOne}
deletionPolicy: Drop
"""
V2 = V1.replace("1.0.0", "2.0.0").replace("      - {name: note, type: Text}\n", "")


def _apply(url: str, directory: Path, body: str) -> None:
    directory.mkdir(exist_ok=True)
    outcome = run("apply", str(write_schema(directory, "shop", body)), "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def _fill(url: str) -> list[tuple[object, ...]]:
    customer, order = ext_table(url, "shop", "customer"), ext_table(url, "shop", "order")
    execute(url, f"INSERT INTO {customer} (name) VALUES ('ann'), ('bob')")
    for i in range(ROWS):
        state = "done" if i % 3 else "new"
        note = None if i % 7 == 0 else f"note {i} 'quoted'"
        execute(
            url,
            f"INSERT INTO {order} (title, note, state, customer_id) VALUES (:t, :n, :s, :c)",
            {"t": f"order {i}", "n": note, "s": state, "c": 1 + i % 2},
        )
    return _orders(url)


def _orders(url: str, columns: str = "id, title, note, state, customer_id") -> list[tuple[object, ...]]:
    return [tuple(r) for r in execute(url, f"SELECT {columns} FROM {ext_table(url, 'shop', 'order')} ORDER BY id")]


def _run_drop(url: str, directory: Path, body: str, drop_table: bool = False) -> str:
    """Apply *body* through the engine with a plan dropping order.note, or the table order (as the full
    planner plans it: this branch's planner refuses drops)."""
    directory.mkdir(exist_ok=True)
    spec = loading.load([str(write_schema(directory, "shop", body))])[0].spec
    engine = Engine(url)
    try:
        registration = engine.registration("shop")
        assert registration is not None
        before = planning.resolve(registration.spec, {})
        old = before.table("order")
        assert old is not None
        op: planning.Op
        if drop_table:
            op = planning.DropTable("shop", old)
        else:
            after, note = planning.resolve(spec, {}).table("order"), old.column("note")
            assert after is not None and note is not None
            op = planning.DropColumn("shop", old, after, note)
        tables_now = [str(engine.dialect.namer.table("shop", t.name)) for t in planning.resolve(spec, {}).tables]
        result = engine.apply(registration.owner, spec, planning.Plan("shop", (op,)), registration.checksum, tables_now)
        assert result.migration_id is not None
        return result.migration_id
    finally:
        engine.close()


def _drop_note(url: str, directory: Path) -> str:
    return _run_drop(url, directory, V2)


def test_drop_table_backup_restores_every_row_once_the_table_is_back(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    original = _fill(db_url)
    without_order = V1.replace("1.0.0", "2.0.0").split("  - name: order")[0] + "deletionPolicy: Drop\n"
    migration = _run_drop(db_url, tmp_path / "v2", without_order, drop_table=True)
    refused = run("restore", migration, "-d", db_url)
    assert refused.exit_code == 1 and "ES315" in refused.stderr and "table order" in refused.stderr, refused.stderr
    _apply(db_url, tmp_path / "v3", V1.replace("1.0.0", "3.0.0"))  # the table again, empty
    restored = run("restore", migration, "-d", db_url)
    assert restored.exit_code == 0 and f"restored {ROWS} row(s) of order" in restored.stdout, restored.stderr
    assert _orders(db_url) == original


def test_drop_column_backup_is_recorded_and_restore_returns_every_value(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    original = _fill(db_url)
    migration = _drop_note(db_url, tmp_path / "v2")
    listed = run("backups", "shop", "-d", db_url, "-o", "json").items()
    assert [(b["migrationId"], b["sourceTable"], b["sourceColumn"], b["rows"]) for b in listed] == [
        (migration, "order", "note", ROWS)
    ]
    assert "order.note" in run("backups", "-d", db_url).stdout
    # The column is gone: restoring refuses, naming what is missing and how to get it back.
    refused = run("restore", migration, "-d", db_url)
    assert refused.exit_code == 1 and "ES315" in refused.stderr and "order.note" in refused.stderr, refused.stderr
    assert "add the field to the spec again" in refused.stderr
    _apply(db_url, tmp_path / "v3", V1.replace("1.0.0", "3.0.0"))  # the field again: an empty column
    assert {row[2] for row in _orders(db_url)} == {None}
    restored = run("restore", migration, "-d", db_url, "-o", "json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert _orders(db_url) == original
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    assert history[-1]["kind"] == "restore" and history[-1]["status"] == "executed"
    assert f"restored {ROWS} value(s) of order.note" in history[-1]["description"]


def test_delete_backs_up_every_table_and_restore_brings_the_plugin_and_its_rows_back(
    db_url: str, tmp_path: Path
) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    original = _fill(db_url)
    customers = execute(db_url, f"SELECT id, name FROM {ext_table(db_url, 'shop', 'customer')} ORDER BY id")
    deleted = approved_delete(db_url, "shop", "-o", "json").items()[0]["migration"]
    assert not any(t.endswith(("shop.order", "shop__order")) for t in tables(db_url))
    listed = run("backups", "-d", db_url, "-o", "json").items()
    assert sorted((b["sourceTable"], b["sourceColumn"], b["rows"]) for b in listed) == [
        ("customer", None, 2),
        ("order", None, ROWS),
    ]
    restored = run("restore", deleted, "--plugin", "shop", "-d", db_url, "-o", "json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert [r["changes"][0] for r in restored.items()][1] == f"restored backups of migration {deleted}"
    assert _orders(db_url) == original
    assert execute(db_url, f"SELECT id, name FROM {ext_table(db_url, 'shop', 'customer')} ORDER BY id") == customers
    # New rows get new ids (the identity moved past the restored ones on PostgreSQL).
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (title, customer_id) VALUES ('new', 1)")
    assert execute(db_url, f"SELECT max(id) FROM {ext_table(db_url, 'shop', 'order')}") == [(ROWS + 1,)]
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    assert [m["kind"] for m in history] == ["apply", "delete", "apply", "restore"]
    # Restoring again inserts nothing twice: only rows whose id is absent.
    again = run("restore", deleted, "-d", db_url)
    assert again.exit_code == 0 and "restored 0 row(s) of order" in again.stdout, again.stdout
    assert len(_orders(db_url)) == ROWS + 1


def test_restore_of_an_unknown_migration_is_es314(db_url: str, tmp_path: Path) -> None:
    assert "ES314" in run("restore", "0001", "-d", db_url).stderr  # no registry at all: nothing created
    assert not any("extension_" in t for t in tables(db_url))
    _apply(db_url, tmp_path / "v1", V1)
    outcome = run("restore", "0001", "-d", db_url)
    assert outcome.exit_code == 1 and "ES314" in outcome.stderr and "took no backup" in outcome.stderr
    assert "ES314" in run("restore", "0042", "-d", db_url).stderr


def test_prune_drops_old_backup_tables_and_their_records(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    migration = _drop_note(db_url, tmp_path / "v2")
    backup = [t for t in tables(db_url) if "extschema_backup" in t]
    assert len(backup) == 1
    assert run("backups", "prune", "--older-than", "30d", "-d", db_url, "-o", "json").items() == []
    registry = "extension_backups" if db_url.startswith("sqlite") else "extschema.extension_backups"
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=31)
    execute(db_url, f"UPDATE {registry} SET created_at = :t", {"t": past})
    # The backup is the one rolling back *migration* reads: pruned only with --force (test_backups_rollback).
    dry = run("backups", "prune", "--older-than", "30d", "--dry-run", "--force", "-d", db_url, "-o", "json").json()
    assert [(b["migrationId"], b["pruning"]) for b in dry["items"]] == [(migration, "wouldPrune")]
    assert backup[0] in tables(db_url)
    pruned = run("backups", "prune", "--older-than", "30d", "--force", "-d", db_url)
    assert pruned.exit_code == 0 and "pruned 1 backup(s)" in pruned.stdout, pruned.stdout
    assert backup[0] not in tables(db_url)
    assert run("backups", "-d", db_url, "-o", "json").items() == []
    assert "ES314" in run("restore", migration, "-d", db_url).stderr


def test_a_deleted_plugin_whose_backups_were_dropped_is_not_reapplied(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    deleted = approved_delete(db_url, "shop", "-o", "json").items()[0]["migration"]
    for backup in [t for t in tables(db_url) if "extschema_backup" in t]:
        schema, _, name = backup.rpartition(".")
        execute(db_url, f'DROP TABLE {f"{schema}." if schema else ""}"{name}"')
    outcome = run("restore", deleted, "-d", db_url)
    assert outcome.exit_code == 1 and "ES314" in outcome.stderr and "no longer exist" in outcome.stderr
    assert run("status", "-d", db_url, "-o", "json").items() == []


@pytest.mark.parametrize("age", ["30", "d", "1y", "-3d"])
def test_prune_refuses_a_malformed_age(sqlite_url: str, age: str) -> None:
    outcome = run("backups", "prune", "--older-than", age, "-d", sqlite_url)
    assert outcome.exit_code == 2 and "30d" in outcome.stderr


def test_a_registry_from_an_older_version_gets_the_backups_table(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    registry = "extension_backups" if db_url.startswith("sqlite") else "extschema.extension_backups"
    execute(db_url, f"DROP TABLE {registry}")
    assert run("backups", "-d", db_url, "-o", "json").items() == []  # reading creates nothing
    assert not any(t.endswith("extension_backups") for t in tables(db_url))
    _fill(db_url)
    _drop_note(db_url, tmp_path / "v2")  # a writer completes the registry, then records its backup
    assert [b["rows"] for b in run("backups", "-d", db_url, "-o", "json").items()] == [ROWS]


def test_delete_after_a_table_was_dropped_by_hand_records_only_the_backups_taken(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    customer = ext_table(db_url, "shop", "customer")
    customers = execute(db_url, f"SELECT id, name FROM {customer} ORDER BY id")
    execute(db_url, f"DROP TABLE {ext_table(db_url, 'shop', 'order')}")
    deleted = approved_delete(db_url, "shop", "-o", "json")
    assert deleted.exit_code == 0, deleted.stdout + deleted.stderr
    listed = run("backups", "-d", db_url, "-o", "json").items()
    assert [(b["sourceTable"], b["rows"]) for b in listed] == [("customer", 2)]
    restored = run("restore", deleted.items()[0]["migration"], "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert execute(db_url, f"SELECT id, name FROM {customer} ORDER BY id") == customers
    assert _orders(db_url) == []  # re-created by the re-applied spec; it had no backup


def test_a_backups_table_from_an_older_version_gets_the_id_counter_column(db_url: str, tmp_path: Path) -> None:
    """Registries written before the id counter was recorded: read as they are, completed by a writer."""
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    first = _drop_note(db_url, tmp_path / "v2")
    registry = "extension_backups" if db_url.startswith("sqlite") else "extschema.extension_backups"
    execute(db_url, f"ALTER TABLE {registry} DROP COLUMN id_counter")
    listed = run("backups", "-d", db_url, "-o", "json")
    assert listed.exit_code == 0 and [b["migrationId"] for b in listed.items()] == [first], listed.stderr
    without_order = V1.replace("1.0.0", "3.0.0").split("  - name: order")[0] + "deletionPolicy: Drop\n"
    _run_drop(db_url, tmp_path / "v3", without_order, drop_table=True)
    assert execute(db_url, f"SELECT source_column, id_counter FROM {registry} ORDER BY position, migration_id") == [
        ("note", None),
        (None, ROWS),
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("drop_table", [False, True])
def test_a_value_written_while_the_drop_waits_is_in_the_backup(pg_url: str, tmp_path: Path, drop_table: bool) -> None:
    """A writer's open transaction changes a value; the drop waits for its lock, the writer commits:
    the backup holds the committed value. Before: the copy read the table before the drop waited, so
    the backup kept the old value (or missed the row) and the committed change was lost with the drop."""
    import concurrent.futures
    import time

    import psycopg

    _apply(pg_url, tmp_path / "v1", V1)
    _fill(pg_url)
    order = ext_table(pg_url, "shop", "order")
    body = V2 if not drop_table else V1.replace("1.0.0", "2.0.0").split("  - name: order")[0] + "deletionPolicy: Drop\n"
    with (
        psycopg.connect(pg_url) as writer,
        psycopg.connect(pg_url, autocommit=True) as admin,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        writer.execute(f"UPDATE {order} SET note = 'written meanwhile' WHERE id = 1")  # not committed
        dropping = pool.submit(_run_drop, pg_url, tmp_path / "v2", body, drop_table)
        deadline = time.monotonic() + 30
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        while admin.execute(query).fetchone() == (0,):
            assert not dropping.done(), dropping.result()
            assert time.monotonic() < deadline, "the drop never waited for the writer's lock"
            time.sleep(0.02)
        writer.commit()
        migration = dropping.result(timeout=60)
    name = f"extschema_backup.shop__order{'' if drop_table else '__note'}__m{migration}"
    assert execute(pg_url, f"SELECT note FROM {name} WHERE id = 1") == [("written meanwhile",)]
