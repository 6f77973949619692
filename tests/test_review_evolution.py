"""Defects an adversarial review of issue 8 (safe schema evolution) found, through the real CLI, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import execute, ext_table, run, write_schema


def _numbers(version: str, fields: str) -> str:
    return f"""
pluginId: shop
version: {version}
tables:
  - name: order
    fields:
{fields}
"""


def _plan(url: str, path: Path) -> dict[str, Any]:
    outcome = run("plan", str(path), "-d", url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    plan: dict[str, Any] = outcome.item()
    return plan


def _seeded(url: str, tmp_path: Path, field: str, values: str) -> str:
    """Version 1.0.0 with one field applied, and *values* inserted into it; the table's SQL name."""
    (tmp_path / "v1").mkdir()
    body = _numbers("1.0.0", f"      - {field}")
    assert run("apply", str(write_schema(tmp_path / "v1", "shop", body)), "-d", url).exit_code == 0
    table = ext_table(url, "shop", "order")
    name = field.split(",")[0].split(":")[1].strip()
    execute(url, f"INSERT INTO {table} ({name}) VALUES {values}")
    return table


def _approved_apply_refused(url: str, tmp_path: Path, body: str) -> str:
    """Plan *body*, check its one op counts one violating row, and apply it approved: refused (ES309)."""
    (tmp_path / "v2").mkdir()
    path = write_schema(tmp_path / "v2", "shop", body)
    plan = _plan(url, path)
    [op] = plan["ops"]
    assert op["class"] == "destructive"
    assert op["check"]["count"] == 1, op
    outcome = run("apply", str(path), "-d", url, "--approve", plan["hash"])
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    assert "ES309" in outcome.stderr + outcome.stdout
    return outcome.stderr


def test_bigint_to_float_counts_values_a_double_would_round(db_url: str, tmp_path: Path) -> None:
    """BigInt -> Float rounds integers beyond 2**53: they violate the new type and must be counted."""
    table = _seeded(db_url, tmp_path, "{name: n, type: BigInt}", "(9007199254740993), (5), (NULL), (-9007199254740992)")
    _approved_apply_refused(db_url, tmp_path, _numbers("2.0.0", "      - {name: n, type: Float}"))
    assert execute(db_url, f"SELECT n FROM {table} ORDER BY id")[0][0] == 9007199254740993


def test_decimal_scale_narrowing_counts_values_that_would_be_rounded(db_url: str, tmp_path: Path) -> None:
    """Decimal(10,2) -> Decimal(10,1) rounds 1.25: the row violates the new scale (1.20 does not)."""
    field = "{name: d, type: Decimal, precision: 10, scale: 2}"
    table = _seeded(db_url, tmp_path, field, "('1.25'), ('1.20'), (NULL), ('-3.00')")
    narrower = _numbers("2.0.0", "      - {name: d, type: Decimal, precision: 10, scale: 1}")
    _approved_apply_refused(db_url, tmp_path, narrower)
    assert str(execute(db_url, f"SELECT d FROM {table} ORDER BY id")[0][0]) == "1.25"


RENAMES_V1 = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, done]}
tables:
  - name: order
    fields:
      - {name: qty, type: Int}
      - {name: state, type: Enum, enum: state}
"""
RENAMES_V2 = """
pluginId: shop
version: 2.0.0
enums:
  - {name: state, values: [fresh, done], renamedValues: {new: fresh}}
tables:
  - name: purchase
    renamedFrom: order
    fields:
      - {name: amount, type: Int, renamedFrom: qty}
      - {name: state, type: Enum, enum: state}
"""


def test_lower_version_undoes_renames_instead_of_dropping_the_data(db_url: str, tmp_path: Path) -> None:
    """Back from 2.0.0 (which renamed a table, a field and an enum value) to 1.0.0: the renames are
    reversed, every row kept; before, the plan dropped the renamed table with its rows and created an empty one."""
    paths = {}
    for name, body in (("v1", RENAMES_V1), ("v2", RENAMES_V2)):
        (tmp_path / name).mkdir()
        paths[name] = write_schema(tmp_path / name, "shop", body)
    assert run("apply", str(paths["v1"]), "-d", db_url).exit_code == 0
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (qty, state) VALUES (1, 'new'), (2, 'done')")
    outcome = run("apply", str(paths["v2"]), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr

    plan = _plan(db_url, paths["v1"])
    assert [op["kind"] for op in plan["ops"]] == ["rename_table", "rename_column", "rename_enum_value"], plan["ops"]
    assert plan["class"] == "safe"
    outcome = run("apply", str(paths["v1"]), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    rows = execute(db_url, f"SELECT id, qty, state FROM {ext_table(db_url, 'shop', 'order')} ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, 1, "new"), (2, 2, "done")]
    assert run("drift", "shop", "-d", db_url).exit_code == 0


def test_sqlite_rebuild_never_drops_a_column_added_by_hand(db_url: str, tmp_path: Path) -> None:
    """A safe change SQLite carries out by rebuilding the table (a longer maxLength) copied only the
    spec's columns: a column a DBA added by hand lost every value, without approval or backup.
    Now the rebuild is refused (ES301, naming the column) and nothing changes; PostgreSQL alters in place."""
    v1 = _numbers("1.0.0", "      - {name: title, type: String, validation: {maxLength: 50}}")
    v2 = v1.replace("1.0.0", "1.1.0").replace("maxLength: 50", "maxLength: 80")
    paths = {}
    for name, body in (("v1", v1), ("v2", v2)):
        (tmp_path / name).mkdir()
        paths[name] = write_schema(tmp_path / name, "shop", body)
    assert run("apply", str(paths["v1"]), "-d", db_url).exit_code == 0
    table = ext_table(db_url, "shop", "order")
    execute(db_url, f"ALTER TABLE {table} ADD COLUMN dba_note TEXT")
    execute(db_url, f"INSERT INTO {table} (title, dba_note) VALUES ('a', 'keep me')")
    outcome = run("apply", str(paths["v2"]), "-d", db_url)
    if db_url.startswith("sqlite"):
        assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
        assert "ES301" in outcome.stderr and "dba_note" in outcome.stderr, outcome.stderr
        assert "Traceback" not in outcome.stderr
        history = run("history", "shop", "-d", db_url, "-o", "json").items()
        assert [m["version"] for m in history if m["status"] == "executed"] == ["1.0.0"]
    else:
        assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert [tuple(r) for r in execute(db_url, f"SELECT title, dba_note FROM {table}")] == [("a", "keep me")]


def test_sqlite_rebuild_never_drops_a_trigger_added_by_hand(sqlite_url: str, tmp_path: Path) -> None:
    """The rebuild dropped a trigger on the table silently (SQLite drops a table's triggers with it)."""
    v1 = _numbers("1.0.0", "      - {name: title, type: String, validation: {maxLength: 50}}")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "shop", v1)), "-d", sqlite_url).exit_code == 0
    table = ext_table(sqlite_url, "shop", "order")
    execute(sqlite_url, f"CREATE TRIGGER dba_audit AFTER INSERT ON {table} BEGIN SELECT 1; END")
    v2 = write_schema(tmp_path / "v2", "shop", v1.replace("1.0.0", "1.1.0").replace("maxLength: 50", "maxLength: 80"))
    outcome = run("apply", str(v2), "-d", sqlite_url)
    assert outcome.exit_code == 1 and "ES301" in outcome.stderr and "dba_audit" in outcome.stderr, outcome.stderr
    assert execute(sqlite_url, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == [("dba_audit",)]


def test_restore_follows_renames_made_after_the_backup(db_url: str, tmp_path: Path) -> None:
    """2.0.0 drops order.note (backed up), 3.0.0 adds note again, 4.0.0 renames order -> purchase and
    note -> remark: `restore 0002` puts the values into purchase.remark; before, it refused with ES315
    ("table order does not exist") and the values could only be copied back by hand."""
    v1 = _numbers("1.0.0", "      - {name: title, type: String}\n      - {name: note, type: String}")
    v2 = _numbers("2.0.0", "      - {name: title, type: String}")
    v3 = v1.replace("1.0.0", "3.0.0")
    v4 = (
        v3.replace("3.0.0", "4.0.0")
        .replace("  - name: order\n", "  - name: purchase\n    renamedFrom: order\n")
        .replace("{name: note, type: String}", "{name: remark, type: String, renamedFrom: note}")
    )
    for version, body in (("v1", v1), ("v2", v2), ("v3", v3), ("v4", v4)):
        (tmp_path / version).mkdir()
        path = write_schema(tmp_path / version, "shop", body)
        if version == "v1":
            assert run("apply", str(path), "-d", db_url).exit_code == 0
            execute(
                db_url,
                f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (title, note) VALUES ('a', 'n1'), ('b', 'n2')",
            )
            continue
        plan = _plan(db_url, path)
        outcome = run("apply", str(path), "-d", db_url, "--approve", plan["hash"])
        assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    outcome = run("restore", "0002", "--plugin", "shop", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    rows = execute(db_url, f"SELECT title, remark FROM {ext_table(db_url, 'shop', 'purchase')} ORDER BY id")
    assert [tuple(r) for r in rows] == [("a", "n1"), ("b", "n2")]


ENUM_V1 = """
pluginId: shop
version: 1.0.0
enums:
  - {name: st, values: [new, old, done]}
tables:
  - name: order
    fields:
      - {name: st, type: Enum, enum: st}
"""
#: renames new -> fresh and removes old (no row holds it) in one version.
ENUM_V2 = ENUM_V1.replace("1.0.0", "2.0.0").replace("[new, old, done]}", "[fresh, done], renamedValues: {new: fresh}}")


def test_enum_value_removal_does_not_count_rows_holding_a_value_renamed_in_the_same_plan(
    db_url: str, tmp_path: Path
) -> None:
    """The removal's check compared the rows (still holding 'new' before the plan runs) with the values
    after the rename ('fresh', 'done'): a row about to be renamed counted as violating, and the plan was
    refused with ES309 even when approved."""
    paths = {}
    for name, body in (("v1", ENUM_V1), ("v2", ENUM_V2)):
        (tmp_path / name).mkdir()
        paths[name] = write_schema(tmp_path / name, "shop", body)
    assert run("apply", str(paths["v1"]), "-d", db_url).exit_code == 0
    table = ext_table(db_url, "shop", "order")
    execute(db_url, f"INSERT INTO {table} (st) VALUES ('new'), ('done'), (NULL)")
    plan = _plan(db_url, paths["v2"])
    removal = next(op for op in plan["ops"] if op["kind"] == "change_enum_values")
    assert removal["check"]["count"] == 0, removal
    outcome = run("apply", str(paths["v2"]), "-d", db_url, "--approve", plan["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert [r[0] for r in execute(db_url, f"SELECT st FROM {table} ORDER BY id")] == ["fresh", "done", None]
    outcome = run("rollback", "shop", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert [r[0] for r in execute(db_url, f"SELECT st FROM {table} ORDER BY id")] == ["new", "done", None]
