"""`extschema restore` (and the rollback of a dropped column): every backed-up row and value goes back
into the row it was taken from, or the restore is refused naming what is in the way — never skipped
silently, never written into another row. Plugin tables never reuse ids (AUTOINCREMENT on SQLite)."""

from __future__ import annotations

import decimal
from pathlib import Path

from tests.helpers import Outcome, approved_delete, execute, ext_table, run, write_schema

BASE = """
pluginId: notes
version: {version}
tables:
  - name: keep
    fields: [{{name: label, type: String}}]
{log}deletionPolicy: Drop
"""
LOG = "  - name: log\n    fields: [{name: msg, type: String}, {name: note, type: Text}]\n"


def _spec(version: str, log: str | None = LOG) -> str:
    return BASE.format(version=version, log=log or "")


def _apply(url: str, directory: Path, body: str, *flags: str) -> Outcome:
    """`extschema apply`, approving the plan (the hash `plan` names) when it drops data or runs raw SQL."""
    directory.mkdir(exist_ok=True)
    path = str(write_schema(directory, "notes", body))
    outcome = run("apply", path, "-d", url, *flags)
    if outcome.exit_code == 1 and "ES307" in outcome.stderr:
        planned = run("plan", path, "-d", url, "-o", "json", *flags)
        outcome = run("apply", path, "-d", url, "--approve", planned.item()["hash"], *flags)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return outcome


def _last_migration(url: str) -> str:
    history = run("history", "notes", "-d", url, "-o", "json").items()
    return str(history[-1]["migrationId"])


def _rows(url: str, columns: str = "id, msg, note") -> list[tuple[object, ...]]:
    return [tuple(r) for r in execute(url, f"SELECT {columns} FROM {ext_table(url, 'notes', 'log')} ORDER BY id")]


def _insert(url: str, *messages: str) -> None:
    for message in messages:
        execute(url, f"INSERT INTO {ext_table(url, 'notes', 'log')} (msg, note) VALUES (:m, :n)",
                {"m": message, "n": f"note of {message}"})  # fmt: skip


def _drop_log(url: str, tmp_path: Path) -> tuple[list[tuple[object, ...]], str]:
    """Version 1 with three rows in log, then version 2 without the table: the rows and the drop's id."""
    _apply(url, tmp_path / "v1", _spec("1.0.0"))
    _insert(url, "a", "b", "c")
    rows = _rows(url)
    _apply(url, tmp_path / "v2", _spec("2.0.0", None))
    return rows, _last_migration(url)


# --- defect 3: a whole-table restore never skips a row whose id is taken -------------------------


def test_a_table_added_again_never_hands_out_a_backed_up_id_and_the_restore_brings_every_row_back(
    db_url: str, tmp_path: Path
) -> None:
    """Before: the table was added again, its ids started at 1 again, and `restore` printed "restored 1
    row(s)" with exit 0 — rows 1 and 2 of the backup were neither restored nor reported."""
    original, dropped = _drop_log(db_url, tmp_path)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0"))
    _insert(db_url, "new 1", "new 2")
    written = _rows(db_url)
    assert [r[0] for r in written] == [4, 5]  # above every id the backup holds
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0 and "restored 3 row(s) of log" in restored.stdout, restored.stdout
    assert _rows(db_url) == original + written
    # Run again: the rows present are the restored ones — nothing inserted twice, and it says so.
    again = run("restore", dropped, "-d", db_url)
    assert again.exit_code == 0 and "restored 0 row(s) of log (3 already restored)" in again.stdout, again.stdout
    _insert(db_url, "newer")
    assert _rows(db_url)[-1][0] == 6


def test_a_whole_table_restore_refuses_naming_the_ids_rows_written_since_hold(db_url: str, tmp_path: Path) -> None:
    """A row written with an id of its own (an import), or a restored row edited since: the restore
    refuses (ES318) naming the ids, and restores nothing — no row skipped, none overwritten."""
    original, dropped = _drop_log(db_url, tmp_path)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0"))
    log = ext_table(db_url, "notes", "log")
    execute(db_url, f"INSERT INTO {log} (id, msg) VALUES (1, 'imported'), (2, 'imported')")
    written = _rows(db_url)
    refused = run("restore", dropped, "-d", db_url)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "ES318" in refused.stderr and "ids 1, 2" in refused.stderr and "table log" in refused.stderr
    assert _rows(db_url) == written
    assert run("history", "notes", "-d", db_url, "-o", "json").items()[-1]["kind"] == "apply"
    # The DBA moves them out of the way; then every backed-up row comes back under its own id.
    execute(db_url, f"UPDATE {log} SET id = id + 100")
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0 and "restored 3 row(s) of log" in restored.stdout, restored.stdout
    assert _rows(db_url) == [*original, (101, "imported", None), (102, "imported", None)]
    execute(db_url, f"UPDATE {log} SET note = 'edited' WHERE id = 2")
    edited = run("restore", dropped, "-d", db_url)
    assert edited.exit_code == 1 and "ES318" in edited.stderr and "(id 2)" in edited.stderr, edited.stderr


# --- defect 12: a whole-table restore follows fields renamed since the backup ---------------------


def test_a_whole_table_restore_follows_a_field_renamed_since_the_backup(db_url: str, tmp_path: Path) -> None:
    """Before: rows came back with `body` NULL ("not restored, no longer in the table: msg")."""
    original, dropped = _drop_log(db_url, tmp_path)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0"))
    renamed = LOG.replace("{name: msg, type: String}", "{name: body, type: String, renamedFrom: msg}")
    _apply(db_url, tmp_path / "v4", _spec("4.0.0", renamed))
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert "restored 3 row(s) of log" in restored.stdout and "no longer in the table" not in restored.stdout
    assert _rows(db_url, "id, body, note") == original


# --- defect 2: the re-apply before restoring a deleted plugin runs no raw SQL ----------------------

SEEDED = (
    _spec("1.0.0")
    + """migrations:
  - id: seed
    sql: INSERT INTO ext_notes.log (msg) VALUES ('seeded')
    rollbackSql: DELETE FROM ext_notes.log WHERE msg = 'seeded'
"""
)


def test_restoring_a_deleted_plugin_creates_empty_tables_and_runs_no_raw_sql_step(db_url: str, tmp_path: Path) -> None:
    """Before: the re-apply ran the seed step (no --allow-raw-sql, no approval); its row took id 1, so
    the user's edited row 1 was skipped, and the output said "restored 1 row(s)" with exit 0."""
    _apply(db_url, tmp_path / "v1", SEEDED, "--allow-raw-sql")
    execute(db_url, f"UPDATE {ext_table(db_url, 'notes', 'log')} SET msg = 'edited', note = 'mine' WHERE id = 1")
    _insert(db_url, "b")
    original = _rows(db_url)
    deleted = approved_delete(db_url, "notes", "-o", "json").items()[0]["migration"]

    restored = run("restore", deleted, "-d", db_url, "-o", "json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    reapplied, restore = restored.items()
    assert not any("seed" in line for line in reapplied["changes"]), reapplied
    assert "restored 2 row(s) of log" in restore["changes"], restore
    assert _rows(db_url) == original
    # The step counts as run (its effect is in the restored rows): the next version does not run it again.
    extra = "{name: label, type: String}, {name: extra, type: Text}"
    _apply(db_url, tmp_path / "v2", SEEDED.replace("1.0.0", "2.0.0").replace("{name: label, type: String}", extra))
    assert _rows(db_url) == original


# --- defect 4: ids are never reused, so no restore writes into another row --------------------------


def _drop_note(url: str, tmp_path: Path) -> str:
    """Version 1 with three rows, then version 2 without log.note (backed up): the drop's id."""
    _apply(url, tmp_path / "v1", _spec("1.0.0"))
    _insert(url, "a", "b", "c")
    _apply(url, tmp_path / "v2", _spec("2.0.0", LOG.replace(", {name: note, type: Text}", "")))
    return _last_migration(url)


def _delete_row_3_and_insert(url: str) -> None:
    execute(url, f"DELETE FROM {ext_table(url, 'notes', 'log')} WHERE id = 3")
    execute(url, f"INSERT INTO {ext_table(url, 'notes', 'log')} (msg) VALUES ('new')")


def test_a_column_restore_never_gives_a_deleted_rows_value_to_a_new_row(db_url: str, tmp_path: Path) -> None:
    """Before (SQLite): the new row took id 3 again and got the deleted row's note."""
    dropped = _drop_note(db_url, tmp_path)
    _delete_row_3_and_insert(db_url)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0"))
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert _rows(db_url) == [(1, "a", "note of a"), (2, "b", "note of b"), (4, "new", None)]
    assert "restored 2 value(s) of log.note" in restored.stdout, restored.stdout
    assert "1 backed-up row(s) deleted since, not restored: id 3" in restored.stdout, restored.stdout


def test_a_column_restore_never_overwrites_a_value_written_since(db_url: str, tmp_path: Path) -> None:
    """Before: `restore` set the column of every backed-up row, also over a value written since the
    column was added again (exit 0, "restored 3 value(s)"): that value was gone, with no backup of it."""
    dropped = _drop_note(db_url, tmp_path)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0"))
    log = ext_table(db_url, "notes", "log")
    execute(db_url, f"UPDATE {log} SET note = 'written since' WHERE id IN (1, 3)")
    execute(db_url, f"UPDATE {log} SET note = 'note of b' WHERE id = 2")  # the backed-up value itself
    written = _rows(db_url)
    refused = run("restore", dropped, "-d", db_url)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "ES318" in refused.stderr and "ids 1, 3" in refused.stderr and "log.note" in refused.stderr
    assert _rows(db_url) == written
    # As the message says: empty them (after copying them out), and the backed-up values go back.
    execute(db_url, f"UPDATE {log} SET note = NULL WHERE id IN (1, 3)")
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert "restored 2 value(s) of log.note (1 already restored)" in restored.stdout, restored.stdout
    assert _rows(db_url) == [(1, "a", "note of a"), (2, "b", "note of b"), (3, "c", "note of c")]


TYPED = """
pluginId: typ
version: {version}
enums:
  - {{name: st, values: [new, done]}}
tables:
  - name: t
    fields:
      - {{name: label, type: String}}
{more}"""
TYPED_FIELDS = """      - {name: b, type: Boolean}
      - {name: f, type: Float}
      - {name: d, type: Decimal, precision: 10, scale: 2}
      - {name: dt, type: DateTime}
      - {name: dd, type: Date}
      - {name: j, type: Json}
      - {name: u, type: Uuid}
      - {name: e, type: Enum, enum: st}
      - {name: n, type: BigInt}
"""


def test_a_column_restore_run_again_finds_every_type_already_restored(db_url: str, tmp_path: Path) -> None:
    """A restored value compares equal to its backup whatever its type (SQLite's CAST to a declared
    type would turn a date into a number): a second restore changes nothing and refuses nothing."""
    paths = []
    for version, more in (("1.0.0", TYPED_FIELDS), ("2.0.0", ""), ("3.0.0", TYPED_FIELDS)):
        (tmp_path / version).mkdir()
        paths.append(str(write_schema(tmp_path / version, "typ", TYPED.format(version=version, more=more))))
    assert run("apply", paths[0], "-d", db_url).exit_code == 0
    t = ext_table(db_url, "typ", "t")
    execute(db_url, f"INSERT INTO {t} (label, b, f, d, dt, dd, j, u, e, n) VALUES ('x', true, 1.5, 12.30, "
            "'2024-01-02 03:04:05+00', '2024-01-02', '{\"a\": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
            "'done', 5000000000), ('y', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")  # fmt: skip
    rows = execute(db_url, f"SELECT * FROM {t} ORDER BY id")
    plan = run("plan", paths[1], "-d", db_url, "-o", "json").item()
    assert run("apply", paths[1], "-d", db_url, "--approve", plan["hash"]).exit_code == 0
    dropped = run("history", "typ", "-d", db_url, "-o", "json").items()[-1]["migrationId"]
    assert run("apply", paths[2], "-d", db_url).exit_code == 0
    for run_number in (1, 2):
        restored = run("restore", dropped, "-d", db_url)
        assert restored.exit_code == 0, (run_number, restored.stdout + restored.stderr)
        assert execute(db_url, f"SELECT * FROM {t} ORDER BY id") == rows
    assert "restored 1 value(s) of t.dd (1 already restored)" in restored.stdout, restored.stdout


def test_restoring_a_narrowing_backup_never_overwrites_an_edit(db_url: str, tmp_path: Path) -> None:
    """A narrowing keeps the column (its backup holds the values as they were): restoring it put the old
    values over every edit made since, exit 0. Now unchanged values count as restored, edits refuse."""
    _apply(db_url, tmp_path / "v1", _spec("1.0.0"))
    _insert(db_url, "a", "b")
    narrowed = LOG.replace("{name: note, type: Text}", "{name: note, type: String, validation: {maxLength: 20}}")
    _apply(db_url, tmp_path / "v2", _spec("2.0.0", narrowed))
    backup = _last_migration(db_url)
    unchanged = run("restore", backup, "-d", db_url)
    assert unchanged.exit_code == 0, unchanged.stdout + unchanged.stderr
    assert "restored 0 value(s) of log.note (2 already restored)" in unchanged.stdout, unchanged.stdout
    execute(db_url, f"UPDATE {ext_table(db_url, 'notes', 'log')} SET note = 'edited' WHERE id = 1")
    edited = _rows(db_url)
    refused = run("restore", backup, "-d", db_url)
    assert refused.exit_code == 1 and "ES318" in refused.stderr and "id 1" in refused.stderr, refused.stderr
    assert _rows(db_url) == edited


def test_a_column_restore_whose_backup_lost_the_column_fails_instead_of_counting_its_name(
    db_url: str, tmp_path: Path
) -> None:
    """Before (SQLite): the backup's note renamed by hand, the fit check read "note" as the string
    'note' and refused (ES319) 3 values too long for maxLength 2 that are not there. Now both
    databases fail the check on the missing column (ES402) and restore nothing."""
    dropped = _drop_note(db_url, tmp_path)
    (backup,) = run("backups", "notes", "-d", db_url, "-o", "json").items()
    table = ".".join(f'"{part}"' for part in backup["backupTable"].split("."))
    execute(db_url, f"ALTER TABLE {table} RENAME COLUMN note TO kept")
    _apply(
        db_url, tmp_path / "v3", _spec("3.0.0", LOG.replace("type: Text}", "type: String, validation: {maxLength: 2}}"))
    )
    refused = run("restore", dropped, "-d", db_url)
    text = refused.stdout + refused.stderr
    assert refused.exit_code == 3, text
    assert "ES402" in text and ("no such column" in text or "does not exist" in text), text
    assert "ES319" not in text, text
    assert _rows(db_url) == [(1, "a", None), (2, "b", None), (3, "c", None)]


def test_a_column_dropped_by_hand_after_the_approval_fails_the_count_instead_of_backing_up_its_name(
    db_url: str, tmp_path: Path
) -> None:
    """Before (SQLite): apply counted "note" as the string 'note' (2 values, as approved), backed up
    that string for every row and went on; a restore then wrote 'note' into each row. Now both
    databases fail the count (ES402) and nothing runs."""
    _apply(db_url, tmp_path / "v1", _spec("1.0.0"))
    _insert(db_url, "a", "b")
    (tmp_path / "v2").mkdir()
    path = str(write_schema(tmp_path / "v2", "notes", _spec("2.0.0", LOG.replace(", {name: note, type: Text}", ""))))
    planned = run("plan", path, "-d", db_url, "-o", "json")
    assert planned.exit_code == 0, planned.stdout + planned.stderr
    execute(db_url, f"ALTER TABLE {ext_table(db_url, 'notes', 'log')} DROP COLUMN note")
    failed = run("apply", path, "-d", db_url, "--approve", planned.item()["hash"])
    text = failed.stdout + failed.stderr
    assert failed.exit_code == 3, text
    assert "ES402" in text and ("no such column" in text or "does not exist" in text), text
    assert run("backups", "notes", "-d", db_url, "-o", "json").items() == []
    assert _rows(db_url, "id, msg") == [(1, "a"), (2, "b")]


def test_rolling_back_a_dropped_column_never_gives_a_deleted_rows_value_to_a_new_row(
    db_url: str, tmp_path: Path
) -> None:
    """Before (SQLite): the rollback's rebuild filled the note of the new row (id 3 again) from the backup."""
    _drop_note(db_url, tmp_path)
    _delete_row_3_and_insert(db_url)
    rolled = run("rollback", "notes", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    assert _rows(db_url) == [(1, "a", "note of a"), (2, "b", "note of b"), (4, "new", None)]
    # The rollback rebuilt the table on SQLite: its id counter went along.
    execute(db_url, f"DELETE FROM {ext_table(db_url, 'notes', 'log')} WHERE id = 4")
    _insert(db_url, "newer")
    assert [r[0] for r in _rows(db_url)] == [1, 2, 5]


def test_a_rebuild_keeps_the_id_counter_past_deleted_rows(sqlite_url: str, tmp_path: Path) -> None:
    """SQLite: a table gets AUTOINCREMENT; a rebuild (dropping a column) keeps it and its counter."""
    _apply(sqlite_url, tmp_path / "v1", _spec("1.0.0"))
    _insert(sqlite_url, "a", "b", "c")
    execute(sqlite_url, f"DELETE FROM {ext_table(sqlite_url, 'notes', 'log')} WHERE id = 3")
    _apply(sqlite_url, tmp_path / "v2", _spec("2.0.0", LOG.replace(", {name: note, type: Text}", "")))
    ddl = execute(sqlite_url, "SELECT sql FROM sqlite_master WHERE name = 'ext_notes__log'")[0][0]
    assert "AUTOINCREMENT" in ddl, ddl
    execute(sqlite_url, f"INSERT INTO {ext_table(sqlite_url, 'notes', 'log')} (msg) VALUES ('d')")
    assert _rows(sqlite_url, "id, msg") == [(1, "a"), (2, "b"), (4, "d")]


def test_a_table_created_before_autoincrement_gets_it_at_its_next_rebuild(sqlite_url: str, tmp_path: Path) -> None:
    """SQLite: tables created by older versions (no AUTOINCREMENT) switch at their next rebuild,
    which every change taking a column backup is; the counter starts past the highest id then."""
    _apply(sqlite_url, tmp_path / "v1", _spec("1.0.0"))
    log = ext_table(sqlite_url, "notes", "log")
    ddl = "SELECT sql FROM sqlite_master WHERE name = 'ext_notes__log'"
    # As older versions created it: a rowid alias without AUTOINCREMENT.
    legacy = execute(sqlite_url, ddl)[0][0].replace("PRIMARY KEY AUTOINCREMENT", "PRIMARY KEY")
    execute(sqlite_url, f"DROP TABLE {log}")
    execute(sqlite_url, legacy)
    assert "AUTOINCREMENT" not in execute(sqlite_url, ddl)[0][0]
    _insert(sqlite_url, "a", "b")
    _apply(sqlite_url, tmp_path / "v2", _spec("2.0.0", LOG.replace(", {name: note, type: Text}", "")))
    assert "AUTOINCREMENT" in execute(sqlite_url, ddl)[0][0]
    execute(sqlite_url, f"DELETE FROM {log} WHERE id = 2")
    execute(sqlite_url, f"INSERT INTO {log} (msg) VALUES ('c')")
    assert _rows(sqlite_url, "id, msg") == [(1, "a"), (3, "c")]


def test_restoring_a_delete_follows_fields_renamed_by_the_spec_applied_since(db_url: str, tmp_path: Path) -> None:
    """The plugin was deleted, then applied again with a field renamed: its rows go under the new name."""
    _apply(db_url, tmp_path / "v1", _spec("1.0.0"))
    _insert(db_url, "a", "b")
    original = _rows(db_url)
    deleted = approved_delete(db_url, "notes", "-o", "json").items()[0]["migration"]
    renamed = LOG.replace("{name: msg, type: String}", "{name: body, type: String, renamedFrom: msg}")
    _apply(db_url, tmp_path / "v2", _spec("2.0.0", renamed))
    restored = run("restore", deleted, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert "restored 2 row(s) of log" in restored.stdout and "no longer in the table" not in restored.stdout
    assert _rows(db_url, "id, body, note") == original


def test_a_table_re_created_by_drift_repair_never_hands_out_a_backed_up_id(db_url: str, tmp_path: Path) -> None:
    """A table dropped by hand and re-created by `drift --repair` starts above the ids its backups hold."""
    dropped = _drop_note(db_url, tmp_path)  # backs up log.note of rows 1..3
    execute(db_url, f"DROP TABLE {ext_table(db_url, 'notes', 'log')}")
    repaired = run("drift", "notes", "--repair", "-d", db_url)
    assert "re-created" in repaired.stdout, repaired.stdout + repaired.stderr
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'notes', 'log')} (msg) VALUES ('new')")
    assert _rows(db_url, "id, msg") == [(4, "new")]
    assert run("backups", "notes", "-d", db_url, "-o", "json").items()[0]["migrationId"] == dropped


# --- a restore never changes a value: one that does not fit the column as it is now is refused -----

#: The log table with one other field, and the two fields of the test (a format: *more*).
OTHER = "  - name: log\n    fields: [{{name: other, type: Text}}{more}]\n"
#: id 1 has two decimals, id 2 trailing spaces beyond 5 characters (PostgreSQL cuts those silently).
VALUES = [(1, "1.25", "abc"), (2, "2.5", "abc       "), (3, "3.1", "x")]


def _fields(scale: int, length: int) -> str:
    decimal = f"{{name: amount, type: Decimal, precision: 10, scale: {scale}}}"
    return f", {decimal}, {{name: code, type: String, validation: {{maxLength: {length}}}}}"


def _amounts(scale: int, length: int) -> str:
    return OTHER.format(more=_fields(scale, length))


def _insert_amounts(url: str) -> None:
    for row in VALUES:
        execute(url, f"INSERT INTO {ext_table(url, 'notes', 'log')} (id, amount, code) VALUES (:i, :a, :c)",
                {"i": row[0], "a": row[1], "c": row[2]})  # fmt: skip


def _amount_rows(url: str) -> list[tuple[object, ...]]:
    log = ext_table(url, "notes", "log")
    return [
        (r[0], None if r[1] is None else str(r[1]), r[2])
        for r in execute(url, f"SELECT id, amount, code FROM {log} ORDER BY id")
    ]


def _refused_unfit(outcome: Outcome, table: str) -> None:
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    assert "ES319" in outcome.stderr, outcome.stderr
    assert f"{table}.amount" in outcome.stderr and "(id 1)" in outcome.stderr, outcome.stderr
    assert f"{table}.code" in outcome.stderr and "(id 2)" in outcome.stderr, outcome.stderr
    assert "widen" in outcome.stderr, outcome.stderr


def _normalised(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Decimals as exact numbers (SQLite keeps the text written, PostgreSQL pads it to the scale)."""
    return [(i, None if a is None else decimal.Decimal(str(a)), c) for i, a, c in rows]


def test_a_column_restore_refuses_a_value_the_narrower_column_would_round_or_cut(db_url: str, tmp_path: Path) -> None:
    """Before: PostgreSQL restored 1.25 as 1.3 and 'abc       ' as 'abc  ' (exit 0); SQLite failed on a
    CHECK with the database's message. Now both refuse (ES319) naming the column and ids, copy nothing,
    and restore every value exactly once the fields are wide enough again."""
    _apply(db_url, tmp_path / "v1", _spec("1.0.0", _amounts(2, 10)))
    _insert_amounts(db_url)
    original = _amount_rows(db_url)
    _apply(db_url, tmp_path / "v2", _spec("2.0.0", OTHER.format(more="")))
    dropped = _last_migration(db_url)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0", OTHER.format(more=_fields(1, 5))))
    refused = run("restore", dropped, "-d", db_url)
    _refused_unfit(refused, "log")
    assert _amount_rows(db_url) == [(1, None, None), (2, None, None), (3, None, None)]
    _apply(db_url, tmp_path / "v4", _spec("4.0.0", OTHER.format(more=_fields(2, 10))))
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert _normalised(_amount_rows(db_url)) == _normalised(original)
    assert [r[2] for r in _amount_rows(db_url)] == [v[2] for v in VALUES]


def test_a_whole_table_restore_refuses_a_value_the_narrower_column_would_round_or_cut(
    db_url: str, tmp_path: Path
) -> None:
    _apply(db_url, tmp_path / "v1", _spec("1.0.0", _amounts(2, 10)))
    _insert_amounts(db_url)
    original = _amount_rows(db_url)
    _apply(db_url, tmp_path / "v2", _spec("2.0.0", None))
    dropped = _last_migration(db_url)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0", _amounts(1, 5)))
    refused = run("restore", dropped, "-d", db_url)
    _refused_unfit(refused, "log")
    assert _amount_rows(db_url) == []
    _apply(db_url, tmp_path / "v4", _spec("4.0.0", _amounts(2, 10)))
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0 and "restored 3 row(s) of log" in restored.stdout, restored.stdout + restored.stderr
    assert _normalised(_amount_rows(db_url)) == _normalised(original)
    assert [r[2] for r in _amount_rows(db_url)] == [v[2] for v in VALUES]


# --- the id counter of a dropped table outlives it: rows deleted before the drop keep their ids ------


def _drop_log_after_deleting_the_last_rows(url: str, tmp_path: Path) -> str:
    """Version 1 with rows 1..4, rows 3 and 4 deleted, then version 2 without log: the drop's id."""
    _apply(url, tmp_path / "v1", _spec("1.0.0"))
    _insert(url, "a", "b", "c", "d")
    execute(url, f"DELETE FROM {ext_table(url, 'notes', 'log')} WHERE id > 2")
    _apply(url, tmp_path / "v2", _spec("2.0.0", None))
    return _last_migration(url)


def test_rolling_back_a_table_drop_never_hands_out_the_id_of_a_row_deleted_before_it(
    db_url: str, tmp_path: Path
) -> None:
    """Before: the rollback left the counter at the highest restored id (2), so the next row got id 3
    again — the id of a row deleted before the drop."""
    _drop_log_after_deleting_the_last_rows(db_url, tmp_path)
    rolled = run("rollback", "notes", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    _insert(db_url, "new")
    assert [r[0] for r in _rows(db_url)] == [1, 2, 5]


def test_a_table_added_again_starts_above_the_counter_it_had_when_dropped(db_url: str, tmp_path: Path) -> None:
    """Before: it started above the highest backed-up id (2), handing out 3 again."""
    dropped = _drop_log_after_deleting_the_last_rows(db_url, tmp_path)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0"))
    _insert(db_url, "new")
    assert [r[0] for r in _rows(db_url)] == [5]
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0 and "restored 2 row(s) of log" in restored.stdout, restored.stdout
    assert [r[0] for r in _rows(db_url)] == [1, 2, 5]


def test_restoring_a_deleted_plugin_starts_its_ids_above_the_counter_at_the_delete(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", _spec("1.0.0"))
    _insert(db_url, "a", "b", "c", "d")
    execute(db_url, f"DELETE FROM {ext_table(db_url, 'notes', 'log')} WHERE id > 2")
    deleted = approved_delete(db_url, "notes", "-o", "json").items()[0]["migration"]
    restored = run("restore", deleted, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    _insert(db_url, "new")
    assert [r[0] for r in _rows(db_url)] == [1, 2, 5]


EVERY_TYPE = """
pluginId: notes
version: {version}
enums:
  - {{name: mood, values: [calm, busy]}}
tables:
  - name: keep
    fields: [{{name: label, type: String}}]
{log}deletionPolicy: Drop
"""
EVERY_FIELD = (
    "  - name: log\n    fields:\n"
    "      - {name: s, type: String, validation: {maxLength: 8, pattern: '^[a-z ]*$'}}\n"
    "      - {name: t, type: Text}\n      - {name: i, type: Int, validation: {min: -5}}\n"
    "      - {name: b, type: BigInt}\n      - {name: f, type: Float}\n      - {name: o, type: Boolean}\n"
    "      - {name: d, type: Date}\n      - {name: dt, type: DateTime}\n"
    "      - {name: m, type: Decimal, precision: 6, scale: 3}\n      - {name: j, type: Json}\n"
    "      - {name: u, type: Uuid}\n      - {name: e, type: Enum, enum: mood, required: true, default: calm}\n"
)


def test_a_restore_of_every_field_type_into_the_same_fields_is_exact_and_never_refused(
    db_url: str, tmp_path: Path
) -> None:
    """The check that refuses values a column would change lets every value of the same field through."""
    _apply(db_url, tmp_path / "v1", EVERY_TYPE.format(version="1.0.0", log=EVERY_FIELD))
    log = ext_table(db_url, "notes", "log")
    execute(db_url, f"INSERT INTO {log} (s, t, i, b, f, o, d, dt, m, j, u, e) VALUES ('ab  ', 'x', -5, "
            "9007199254740993, 0.1, true, '2024-02-29', '2024-02-29 10:00:00', '-123.456', '{\"k\": [1]}', "
            "'6f1c2d1e-8a4b-4c2d-9e1f-0a1b2c3d4e5f', 'busy')")  # fmt: skip
    execute(db_url, f"INSERT INTO {log} (e) VALUES ('calm')")
    columns = "id, s, t, i, b, f, o, d, dt, CAST(m AS TEXT), CAST(j AS TEXT), CAST(u AS TEXT), e"
    original = execute(db_url, f"SELECT {columns} FROM {log} ORDER BY id")
    _apply(db_url, tmp_path / "v2", EVERY_TYPE.format(version="2.0.0", log=""))
    dropped = _last_migration(db_url)
    _apply(db_url, tmp_path / "v3", EVERY_TYPE.format(version="3.0.0", log=EVERY_FIELD))
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0 and "restored 2 row(s) of log" in restored.stdout, restored.stdout + restored.stderr
    assert execute(db_url, f"SELECT {columns} FROM {log} ORDER BY id") == original


def test_a_restore_refuses_an_integer_a_field_now_float_would_round(db_url: str, tmp_path: Path) -> None:
    """A BigInt field dropped, then added again as a Float: 2**53 + 1 would be rounded (as the
    BigInt -> Float conversion refuses to), so it is refused (ES319); 7 alone would go back exactly."""
    field = "  - name: log\n    fields: [{{name: other, type: Text}}, {{name: n, type: {type}}}]\n"
    _apply(db_url, tmp_path / "v1", _spec("1.0.0", field.format(type="BigInt")))
    log = ext_table(db_url, "notes", "log")
    execute(db_url, f"INSERT INTO {log} (id, n) VALUES (1, 9007199254740993), (2, 7)")
    _apply(db_url, tmp_path / "v2", _spec("2.0.0", OTHER.format(more="")))
    dropped = _last_migration(db_url)
    _apply(db_url, tmp_path / "v3", _spec("3.0.0", field.format(type="Float")))
    refused = run("restore", dropped, "-d", db_url)
    assert refused.exit_code == 1 and "ES319" in refused.stderr, refused.stdout + refused.stderr
    assert "log.n" in refused.stderr and "(id 1)" in refused.stderr, refused.stderr
    assert execute(db_url, f"SELECT id, n FROM {log} ORDER BY id") == [(1, None), (2, None)]
    execute(db_url, f"DELETE FROM {log} WHERE id = 1")
    restored = run("restore", dropped, "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert execute(db_url, f"SELECT id, n FROM {log} ORDER BY id") == [(2, 7.0)]
