"""Additive updates keep every row; other changes are refused with a located message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import execute, ext_table, load_core, run, tables, write_schema
from tests.specs import SHOP

V1 = SHOP

LINES = """
apiVersion: extschema.io/v1alpha1
kind: ExtensionSchema
metadata: {name: lines}
spec:
  pluginId: lines
  version: 1.0.0
  dependsOn: [shop]
  tables:
    - name: line
      fields: [{name: qty, type: Int}]
  relationships:
    - {source: line, target: shop.order, type: ManyToOne, onDelete: Cascade}
"""


def _apply(url: str, directory: Path, body: str, name: str = "shop") -> str:
    outcome = run("apply", str(write_schema(directory, name, body)), "-d", url)
    return f"{outcome.exit_code}\n{outcome.stdout}\n{outcome.stderr}"


@pytest.fixture
def shop_db(db_url: str, tmp_path: Path) -> str:
    load_core(db_url)
    assert _apply(db_url, tmp_path, V1).startswith("0")
    (tmp_path / "lines.yaml").write_text(LINES)
    assert run("apply", str(tmp_path / "lines.yaml"), "-d", db_url).exit_code == 0
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (title, state) VALUES ('a', 'done')")
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'lines', 'line')} (qty, order_id) VALUES (3, 1)")
    return db_url


def test_additive_update_keeps_rows(shop_db: str, tmp_path: Path) -> None:
    v2 = (
        V1.replace("version: 1.0.0", "version: 1.1.0")
        .replace("values: [new, done]", "values: [new, paid, done, void]")
        .replace(
            "      - {name: state, type: Enum, enum: state, required: true, default: new}",
            "      - {name: state, type: Enum, enum: state, required: true, default: new}\n"
            "      - {name: note, type: Text}\n"
            "      - {name: priority, type: Int, required: true, default: 3}\n"
            "    indexes: [{fields: [title]}]\n"
            "  - name: refund\n"
            "    fields: [{name: amount, type: Decimal}]",
        )
        + "relationships:\n  - {source: refund, target: order, type: ManyToOne}\n"
    )
    outcome = _apply(shop_db, tmp_path, v2)
    assert outcome.startswith("0"), outcome
    for change in (
        "add values paid, void to enum state",
        "add column order.note",
        "create table refund",
        "create index on order (title)",
    ):
        assert change in outcome
    order = ext_table(shop_db, "shop", "order")
    assert execute(shop_db, f"SELECT title, state, priority, note FROM {order}") == [("a", "done", 3, None)]
    execute(shop_db, f"INSERT INTO {order} (title, state) VALUES ('b', 'paid')")
    # The other plugin's rows, pointing at the rebuilt table (on SQLite), are intact and still enforced.
    assert execute(shop_db, f"SELECT qty, order_id FROM {ext_table(shop_db, 'lines', 'line')}") == [(3, 1)]
    execute(shop_db, f"DELETE FROM {order} WHERE id = 1")
    assert execute(shop_db, f"SELECT count(*) FROM {ext_table(shop_db, 'lines', 'line')}") == [(0,)]

    # Undoing it would remove the enum value 'paid' that a row now uses: refused (ES309), nothing changes.
    rolled = run("rollback", "shop", "-d", shop_db)
    assert rolled.exit_code == 1 and "ES309" in rolled.stderr, rolled.stderr
    assert execute(shop_db, f"SELECT title, state FROM {order}") == [("b", "paid")]


def test_enum_value_rollback_restores_the_old_set(shop_db: str, tmp_path: Path) -> None:
    v2 = V1.replace("version: 1.0.0", "version: 1.1.0").replace("values: [new, done]", "values: [new, done, void]")
    assert _apply(shop_db, tmp_path, v2).startswith("0")
    rolled = run("rollback", "shop", "-d", shop_db)
    assert rolled.exit_code == 0, rolled.stderr
    order = ext_table(shop_db, "shop", "order")
    with pytest.raises(Exception, match=r"(?i)enum|check|constraint"):
        execute(shop_db, f"INSERT INTO {order} (title, state) VALUES ('c', 'void')")
    assert execute(shop_db, f"SELECT title, state FROM {order}") == [("a", "done")]


def test_enum_value_rollback_refused_while_rows_use_it(shop_db: str, tmp_path: Path) -> None:
    v2 = V1.replace("version: 1.0.0", "version: 1.1.0").replace("values: [new, done]", "values: [new, done, void]")
    assert _apply(shop_db, tmp_path, v2).startswith("0")
    order = ext_table(shop_db, "shop", "order")
    execute(shop_db, f"INSERT INTO {order} (title, state) VALUES ('c', 'void')")
    rolled = run("rollback", "shop", "-d", shop_db)  # refused before anything runs: no approval helps
    assert rolled.exit_code == 1 and "ES309" in rolled.stderr and "void" in rolled.stderr, rolled.stderr
    assert execute(shop_db, f"SELECT count(*) FROM {order}") == [(2,)]


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        # Planned now, but destructive: waits for an approval of its hash (docs/evolution.md).
        (lambda s: s.replace("      - {name: title, type: String, required: true}\n", ""), "ES307", "spec"),
        (
            lambda s: s.replace(
                "{name: title, type: String, required: true}", "{name: title, type: Boolean, required: true}"
            ),
            "ES312",
            "spec.tables[0]",
        ),
        # The order's state is 'done': no approval lets the value go while a row holds it.
        (lambda s: s.replace("values: [new, done]", "values: [new]"), "ES309", "spec.tables[0].fields[1]"),
        (lambda s: s.replace("values: [new, done]", "values: [done, new]"), "ES301", "spec.enums[0]"),
        (lambda s: s + "      - {name: must, type: Int, required: true}\n", "ES302", "spec.tables[0]"),
    ],
    ids=["remove-field", "change-type", "remove-enum-value", "reorder-enum", "required-without-default"],
)
def test_non_additive_changes_are_refused(shop_db: str, tmp_path: Path, change: object, code: str, path: str) -> None:
    before = tables(shop_db)
    v2 = change(V1.replace("version: 1.0.0", "version: 2.0.0"))  # type: ignore[operator]
    outcome = _apply(shop_db, tmp_path, v2)
    assert outcome.startswith("1"), outcome
    assert f": {path}" in outcome and f": {code}: " in outcome, outcome
    assert tables(shop_db) == before
    status = run("status", "-d", shop_db, "-o", "json").items()
    assert {p["pluginId"]: p["version"] for p in status}["shop"] == "1.0.0"
