"""Backups and rollbacks together: what a rollback backs up is recorded, and a pruned backup a
rollback needs is refused up front instead of failing half way (issue 8, item 5)."""

from __future__ import annotations

import datetime
from pathlib import Path

from tests.helpers import approved_rollback, execute, ext_table, run, tables
from tests.test_backups import ROWS, V1, _apply, _drop_note, _fill, _orders

#: V1 with a new field on order: its rollback drops the column, after backing it up.
WITH_EXTRA = V1.replace("1.0.0", "2.0.0").replace(
    "      - {name: note, type: Text}\n", "      - {name: note, type: Text}\n      - {name: extra, type: Text}\n"
)


def _age_backups(url: str, days: int = 31) -> None:
    registry = "extension_backups" if url.startswith("sqlite") else "extschema.extension_backups"
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    execute(url, f"UPDATE {registry} SET created_at = :t", {"t": past})


def _backup_tables(url: str) -> list[str]:
    return [t for t in tables(url) if "extschema_backup" in t]


def test_a_rollback_records_its_backups_so_they_are_listed_and_pruned(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    _apply(db_url, tmp_path / "v2", WITH_EXTRA)
    order = ext_table(db_url, "shop", "order")
    execute(db_url, f"UPDATE {order} SET extra = 'x' || id")
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    added = history[-1]["migrationId"]
    rolled = approved_rollback(db_url, "shop")
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    listed = run("backups", "shop", "-d", db_url, "-o", "json").items()
    assert [(b["migrationId"], b["sourceTable"], b["sourceColumn"], b["rows"]) for b in listed] == [
        (added, "order", "extra", ROWS)
    ]
    assert [b["backupTable"] for b in listed] == _backup_tables(db_url)
    _age_backups(db_url)
    pruned = run("backups", "prune", "--older-than", "30d", "-d", db_url, "-o", "json")
    assert pruned.exit_code == 0 and [b["pruning"] for b in pruned.items()] == ["pruned"], pruned.stdout + pruned.stderr
    assert _backup_tables(db_url) == []


def test_rolling_back_the_first_migration_records_a_backup_of_every_table(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    assert approved_rollback(db_url, "shop").exit_code == 0
    listed = run("backups", "-d", db_url, "-o", "json").items()
    assert sorted((b["migrationId"], b["sourceTable"], b["sourceColumn"], b["rows"]) for b in listed) == [
        ("0001", "customer", None, 2),
        ("0001", "order", None, ROWS),
    ]
    assert len(_backup_tables(db_url)) == 2


def test_prune_keeps_the_backups_a_rollback_still_needs_unless_forced(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    original = _fill(db_url)
    migration = _drop_note(db_url, tmp_path / "v2")
    _age_backups(db_url)
    kept = run("backups", "prune", "--older-than", "30d", "-d", db_url, "-o", "json")
    assert kept.exit_code == 0, kept.stdout + kept.stderr
    assert [(b["migrationId"], b["pruning"]) for b in kept.items()] == [(migration, "kept")]
    text = run("backups", "prune", "--older-than", "30d", "-d", db_url)
    assert "kept 1 backup(s)" in text.stdout and "--force" in text.stdout, text.stdout
    assert len(_backup_tables(db_url)) == 1
    # The rollback still brings every value back.
    assert run("rollback", "shop", "-d", db_url).exit_code == 0
    assert _orders(db_url) == original


def test_a_rollback_whose_backup_was_pruned_is_refused_before_anything_runs(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    migration = _drop_note(db_url, tmp_path / "v2")
    _age_backups(db_url)
    forced = run("backups", "prune", "--older-than", "30d", "--force", "-d", db_url, "-o", "json")
    assert forced.exit_code == 0 and [b["pruning"] for b in forced.items()] == ["pruned"], forced.stdout + forced.stderr
    before = _orders(db_url, "id, title, state")
    refused = run("rollback", "shop", "-d", db_url)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "ES314" in refused.stderr and f"migration {migration}" in refused.stderr, refused.stderr
    assert "order.note" in refused.stderr and "restore" in refused.stderr, refused.stderr
    assert _orders(db_url, "id, title, state") == before
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    assert [m["status"] for m in history] == ["executed", "executed"]


def _set_status(url: str, migration: str, status: str) -> None:
    registry = "extension_migrations" if url.startswith("sqlite") else "extschema.extension_migrations"
    execute(url, f"UPDATE {registry} SET status = :s WHERE migration_id = :m", {"s": status, "m": migration})


def test_prune_keeps_every_backup_of_a_plugin_whose_history_is_not_settled(db_url: str, tmp_path: Path) -> None:
    """Before: the drop's migration row stuck in 'executing' left the lineage, so prune dropped its
    backup — the only copy of order.note — although its change is in place."""
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    migration = _drop_note(db_url, tmp_path / "v2")
    _set_status(db_url, migration, "executing")  # a crash, or a hand edit
    _age_backups(db_url)
    for flags in ((), ("--force",)):
        kept = run("backups", "prune", "--older-than", "30d", *flags, "-d", db_url, "-o", "json")
        assert kept.exit_code == 0, kept.stdout + kept.stderr
        assert [(b["migrationId"], b["pruning"]) for b in kept.items()] == [(migration, "kept")]
        assert "ES317" in kept.json()["problems"][0]["code"], kept.stdout
    text = run("backups", "prune", "--older-than", "30d", "-d", db_url)
    assert "ES317" in text.stdout and f"migration {migration}" in text.stdout and "'executing'" in text.stdout
    assert len(_backup_tables(db_url)) == 1
    # The rollback gives the same guidance; once the row is settled, the rollback brings note back.
    refused = run("rollback", "shop", "-d", db_url)
    assert refused.exit_code == 1 and "ES317" in refused.stderr, refused.stderr
    _set_status(db_url, migration, "executed")
    assert run("rollback", "shop", "-d", db_url).exit_code == 0
    assert {row[2] for row in _orders(db_url)} != {None}


def test_a_restore_is_refused_while_the_plugins_history_is_not_settled(db_url: str, tmp_path: Path) -> None:
    """The renames a restore follows come from the plugin's history: unknown while a migration never
    finished, so the restore says so (ES317) instead of guessing where the values go."""
    _apply(db_url, tmp_path / "v1", V1)
    _fill(db_url)
    migration = _drop_note(db_url, tmp_path / "v2")
    _apply(db_url, tmp_path / "v3", V1.replace("1.0.0", "3.0.0"))  # note again, empty
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    _set_status(db_url, history[-1]["migrationId"], "executing")
    refused = run("restore", migration, "-d", db_url)
    assert refused.exit_code == 1 and "ES317" in refused.stderr and "cannot restore into" in refused.stderr, (
        refused.stdout + refused.stderr
    )
    assert {row[2] for row in _orders(db_url)} == {None}
