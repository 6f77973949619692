"""Every evolution operation, rendered by both dialects and run on real, non-empty tables.

Plans are built from operations here (the planner's diff is tested with planning); what is
tested is that the rendered SQL keeps every row, converts values, finds the names earlier
steps gave, and that rolling each migration back restores the previous schema AND its data.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from extschema import model, planning
from extschema.dialects import BackupRef, Dialect
from extschema.engine import Engine
from extschema.engine.checks import count_all
from extschema.model import EnumSpec, ExtensionSchemaSpec
from extschema.planning import ColumnDef, IndexDef, Op, Plan, TableDef, safety
from extschema.problems import ProblemError
from tests.helpers import engine_rollback, execute, ext_table, run, write_schema


def registered_tables(dialect: Dialect, spec: ExtensionSchemaSpec) -> list[str]:
    """The tables the registry lists for *spec*, as the pipeline computes them."""
    return planning.shape(spec).physical_tables(dialect.namer)


Doc = dict[str, Any]
OWNER = "shop"  # as the CLI names it: the resource's metadata.name

SHOP: Doc = {
    "pluginId": "shop",
    "version": "1.0.0",
    "enums": [{"name": "state", "values": ["new", "done", "void"]}],
    "tables": [
        {"name": "customer", "fields": [{"name": "email", "type": "String", "unique": True}]},
        {
            "name": "order",
            "fields": [
                {"name": "title", "type": "String", "required": True, "validation": {"maxLength": 50}},
                {"name": "qty", "type": "Int"},
                {"name": "code", "type": "String"},
                {"name": "state", "type": "Enum", "enum": "state", "required": True, "default": "new"},
                {"name": "note", "type": "Text", "validation": {"minLength": 1}},
            ],
            "uniqueConstraints": [{"fields": ["title", "code"]}],
            "indexes": [{"fields": ["qty"]}],
        },
        {
            "name": "tag",
            "fields": [
                {"name": "label", "type": "String", "required": True},
                {"name": "weight", "type": "Decimal", "precision": 10, "scale": 2},
            ],
        },
    ],
    "relationships": [{"source": "order", "target": "customer", "type": "ManyToOne"}],
}

#: Another plugin whose rows reference shop's orders (SQLite rebuilds of order must keep them valid).
LINES: Doc = {
    "pluginId": "lines",
    "version": "1.0.0",
    "dependsOn": ["shop"],
    "tables": [{"name": "line", "fields": [{"name": "amount", "type": "Int"}]}],
    "relationships": [{"source": "line", "target": "shop.order", "type": "ManyToOne", "onDelete": "Cascade"}],
}

ORDERS = [
    (1, "first", 3, "a", "new", "hello", 1),
    (2, "second", 7, None, "done", None, 2),
    (3, "third", None, "c", "done", "bye", None),
]


def parse(doc: Doc) -> ExtensionSchemaSpec:
    return model.parse_spec(doc)


def evolve(doc: Doc, version: str, change: Callable[[Doc], object]) -> Doc:
    new = copy.deepcopy(doc)
    change(new)
    new["version"] = version
    return new


def table_of(doc: Doc, name: str) -> TableDef:
    found = planning.resolve(parse(doc), {}).table(name)
    assert found is not None
    return found


def order_field(doc: Doc, name: str) -> Doc:
    return next(f for f in doc["tables"][1]["fields"] if f["name"] == name)


class Shop:
    """The shop plugin (and lines, which references it) installed in a database, with rows."""

    def __init__(self, url: str, lines: bool = True) -> None:
        self.url = url
        self.engine = Engine(url)
        self.dialect: Dialect = self.engine.dialect
        self.doc = SHOP
        spec = parse(SHOP)
        self.engine.apply(OWNER, spec, planning.plan(None, spec, {}), None, registered_tables(self.dialect, spec))
        if lines:
            other = parse(LINES)
            refs = planning.reference_types_of(spec)
            self.engine.apply(
                "lines", other, planning.plan(None, other, refs), None, registered_tables(self.dialect, other)
            )
        self.sql(f"INSERT INTO {self.t('customer')} (id, email) VALUES (1, 'a@x'), (2, 'b@x')")
        for row in ORDERS:
            self.sql(
                f"INSERT INTO {self.t('order')} (id, title, qty, code, state, note, customer_id) "
                "VALUES (:i, :t, :q, :c, :s, :n, :cu)",
                dict(zip(("i", "t", "q", "c", "s", "n", "cu"), row, strict=True)),
            )
        self.sql(f"INSERT INTO {self.t('tag')} (id, label, weight) VALUES (1, 'red', '2.55'), (2, 'blue', '1.00')")
        if not url.startswith("sqlite"):  # rows inserted with their ids: new ones follow
            for table in ("customer", "order", "tag"):
                self.sql(f"SELECT setval(pg_get_serial_sequence('{self.t(table)}', 'id'), 10)")
        if lines:
            self.sql(f"INSERT INTO {ext_table(url, 'lines', 'line')} (amount, order_id) VALUES (10, 1), (20, 2)")

    def t(self, table: str) -> str:
        return ext_table(self.url, "shop", table)

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        return execute(self.url, statement, params)

    def change(self, new: Doc, ops: Callable[[Doc, Doc], list[Op]]) -> str:
        """Apply *new* through the plan *ops* builds from (old, new); returns the migration id."""
        spec = parse(new)
        plan = Plan("shop", tuple(ops(self.doc, new)))
        result = self.engine.apply(OWNER, spec, plan, parse(self.doc).checksum(), registered_tables(self.dialect, spec))
        assert result.changed and result.migration_id is not None
        self.doc = new
        return result.migration_id

    def rollback(self) -> None:
        assert engine_rollback(self.engine, "shop").changed

    def index_names(self, table: str) -> set[str]:
        if self.url.startswith("sqlite"):
            rows = self.sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL",
                {"t": f"ext_shop__{table}"},
            )
        else:
            rows = self.sql(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'ext_shop' AND tablename = :t "
                "AND indexname NOT LIKE '%pkey'",
                {"t": table},
            )
        return {r[0] for r in rows}

    def constraint_names(self, table: str) -> set[str]:
        """PostgreSQL: the table's constraint names."""
        rows = self.sql("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)", {"t": self.t(table)})
        return {r[0] for r in rows}

    def columns(self, table: str) -> dict[str, Any]:
        engine = sa.create_engine(
            self.url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.pool.NullPool
        )
        try:
            with engine.connect() as conn:
                physical = self.dialect.namer.table("shop", table)
                found = sa.inspect(conn).get_columns(physical.name, schema=physical.schema)
                return {c["name"]: c for c in found}
        finally:
            engine.dispose()


@pytest.fixture
def shop(db_url: str) -> Iterator[Shop]:
    installed = Shop(db_url)
    yield installed
    installed.engine.close()


def orders(
    shop: Shop, table: str = "order", columns: str = "id, title, qty, code, state, note, customer_id"
) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in shop.sql(f"SELECT {columns} FROM {shop.t(table)} ORDER BY id")]


# --- renames -------------------------------------------------------------------------------------


@pytest.fixture
def shop_alone(db_url: str) -> Iterator[Shop]:
    """The shop plugin without the lines plugin (whose spec names shop's tables)."""
    installed = Shop(db_url, lines=False)
    yield installed
    installed.engine.close()


def test_rename_table_keeps_rows_and_renames_derived_names(shop_alone: Shop) -> None:
    # Another plugin's references would name the old table: here the tables reference each other.
    shop = shop_alone

    def rename(d: Doc) -> None:
        d["tables"][0].update(name="client", renamedFrom="customer")
        d["tables"][1].update(name="purchase", renamedFrom="order")
        d["relationships"][0].update(source="purchase", target="client", sourceField="customer_id")

    v2 = evolve(SHOP, "1.1.0", rename)

    def ops(old: Doc, new: Doc) -> list[Op]:
        return [
            planning.RenameTable("shop", table_of(old, "customer"), table_of(new, "client")),
            planning.RenameTable("shop", table_of(old, "order"), table_of(new, "purchase")),
        ]

    shop.change(v2, ops)
    assert orders(shop, "purchase") == ORDERS
    prefix = "" if shop.url.startswith("postgresql") else "ext_shop__"
    assert shop.index_names("purchase") >= {
        f"{prefix}purchase_title_code_key",
        f"{prefix}purchase_qty_idx",
        f"{prefix}purchase_customer_id_idx",
    }
    assert shop.index_names("client") == {f"{prefix}client_email_key"}
    if shop.url.startswith("postgresql"):
        assert shop.constraint_names("purchase") == {
            "purchase_pkey",
            "purchase_note_check",
            "purchase_customer_id_fkey",
            "purchase_title_code_key",
        }
    # Orders still point at the renamed customers, and the key is still enforced.
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('purchase')} (title, customer_id) VALUES ('x', 99)")
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"DELETE FROM {shop.t('client')} WHERE id = 1")

    # A later step finds the renamed unique constraint by the name the new table name derives.
    def drop_unique(d: Doc) -> None:
        d["tables"][1]["uniqueConstraints"] = []

    v3 = evolve(v2, "1.2.0", drop_unique)
    unique = IndexDef(("title", "code"), True)
    shop.change(v3, lambda old, new: [planning.DropIndex("shop", "purchase", unique)])
    assert f"{prefix}purchase_title_code_key" not in shop.index_names("purchase")
    shop.sql(f"INSERT INTO {shop.t('purchase')} (title, code) VALUES ('first', 'a')")  # no longer unique
    shop.sql(f"DELETE FROM {shop.t('purchase')} WHERE id > 3")

    shop.rollback()  # the unique constraint is back (as an index, under the new name)
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('purchase')} (title, code) VALUES ('first', 'a')")
    shop.rollback()  # the old name, with the old derived names
    assert orders(shop) == ORDERS
    if shop.url.startswith("postgresql"):
        # (the unique one came back as an index, the rollback of its drop)
        assert shop.constraint_names("order") == {"order_pkey", "order_note_check", "order_customer_id_fkey"}
    assert shop.index_names("order") >= {f"{prefix}order_title_code_key", f"{prefix}order_qty_idx"}
    shop.sql(f"INSERT INTO {shop.t('order')} (title, qty) VALUES ('later', 1)")


def test_rename_column_keeps_values_and_later_drops_find_its_index(shop: Shop) -> None:
    def rename(d: Doc) -> None:
        order_field(d, "code").update(name="ref", renamedFrom="code")
        d["tables"][1]["uniqueConstraints"] = [{"fields": ["title", "ref"]}]

    v2 = evolve(SHOP, "1.1.0", rename)
    shop.change(
        v2,
        lambda old, new: [planning.RenameColumn("shop", table_of(old, "order"), table_of(new, "order"), "code", "ref")],
    )
    assert orders(shop, columns="id, title, qty, ref, state, note, customer_id") == ORDERS
    prefix = "" if shop.url.startswith("postgresql") else "ext_shop__"
    assert f"{prefix}order_title_ref_key" in shop.index_names("order")
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, ref) VALUES ('first', 'a')")

    def drop_unique(d: Doc) -> None:
        d["tables"][1]["uniqueConstraints"] = []

    v3 = evolve(v2, "1.2.0", drop_unique)
    shop.change(v3, lambda old, new: [planning.DropIndex("shop", "order", IndexDef(("title", "ref"), True))])
    assert f"{prefix}order_title_ref_key" not in shop.index_names("order")
    shop.rollback()
    shop.rollback()
    assert orders(shop) == ORDERS
    assert f"{prefix}order_title_code_key" in shop.index_names("order")
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, code) VALUES ('first', 'a')")


def test_rename_enum_value_maps_rows_and_rolls_back(shop: Shop) -> None:
    def rename(d: Doc) -> None:
        d["enums"][0].update(values=["new", "finished", "void"], renamedValues={"done": "finished"})

    v2 = evolve(SHOP, "1.1.0", rename)

    def ops(old: Doc, new: Doc) -> list[Op]:
        before, after = (EnumSpec.model_validate(d["enums"][0]) for d in (old, new))
        tables = ((table_of(old, "order"), table_of(new, "order")),)
        return [planning.RenameEnumValue("shop", before, after, "done", "finished", tables)]

    shop.change(v2, ops)
    assert [r[0] for r in shop.sql(f"SELECT state FROM {shop.t('order')} ORDER BY id")] == [
        "new",
        "finished",
        "finished",
    ]
    with pytest.raises(sa.exc.DBAPIError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, state) VALUES ('x', 'done')")
    shop.rollback()
    assert orders(shop) == ORDERS


# --- altering columns ----------------------------------------------------------------------------


def _alter(old: Doc, new: Doc, *names: str) -> list[Op]:
    before, after = table_of(old, "order"), table_of(new, "order")
    found: list[Op] = []
    for name in names:
        old_column, new_column = before.column(name), after.column(name)
        assert old_column is not None and new_column is not None
        found.append(planning.AlterColumn("shop", before, after, old_column, new_column))
        before = with_column(before, new_column)
    return found


def with_column(table: TableDef, column: ColumnDef) -> TableDef:
    """*table* with its column of *column*'s name replaced by *column*."""
    return dataclasses.replace(table, columns=tuple(column if c.name == column.name else c for c in table.columns))


def test_alter_type_converts_values_backs_up_and_rollback_restores(shop: Shop) -> None:
    def change(d: Doc) -> None:
        order_field(d, "qty")["type"] = "String"
        order_field(d, "title")["validation"] = {"maxLength": 100}
        order_field(d, "note").update(type="String", validation={"maxLength": 20})

    v2 = evolve(SHOP, "1.1.0", change)
    tag = f"m{shop.change(v2, lambda old, new: _alter(old, new, 'qty', 'title', 'note'))}"
    rows = orders(shop)
    assert [r[2] for r in rows] == ["3", "7", None]  # Int -> String, every value kept as text
    assert [(r[0], r[1], r[3], r[4], r[5], r[6]) for r in rows] == [
        (r[0], r[1], r[3], r[4], r[5], r[6]) for r in ORDERS
    ]
    shop.sql(f"INSERT INTO {shop.t('order')} (title, qty) VALUES (:t, 'many')", {"t": "x" * 90})
    with pytest.raises(sa.exc.DBAPIError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, note) VALUES ('y', :n)", {"n": "n" * 21})
    shop.sql(f"DELETE FROM {shop.t('order')} WHERE id > 3")
    # The converted columns were backed up, id + value, and are listed for the registry.
    plan = Plan("shop", tuple(_alter(SHOP, v2, "qty", "title", "note")))
    refs = shop.dialect.backups_of(plan, tag)
    assert {(r.source_table, r.column) for r in refs} == {("order", "qty"), ("order", "note")}
    qty_backup = next(r for r in refs if r.column == "qty")
    assert sorted(shop.sql(f"SELECT id, qty FROM {_quoted(shop, qty_backup)} ORDER BY id")) == [
        (1, 3),
        (2, 7),
        (3, None),
    ]
    shop.rollback()
    assert orders(shop) == ORDERS
    assert "INT" in str(shop.columns("order")["qty"]["type"]).upper()
    # Other plugins' rows survived the rebuilds (SQLite) and still reference orders, enforced.
    line = ext_table(shop.url, "lines", "line")
    assert shop.sql(f"SELECT amount, order_id FROM {line} ORDER BY amount") == [(10, 1), (20, 2)]
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {line} (amount, order_id) VALUES (1, 99)")
    shop.sql(f"DELETE FROM {shop.t('order')} WHERE id = 1")  # ON DELETE CASCADE still fires
    assert shop.sql(f"SELECT amount FROM {line}") == [(20,)]


TAGS = [(1, "red", "2.55"), (2, "blue", "1.00")]


def tags(shop: Shop) -> list[tuple[Any, ...]]:
    return [
        (i, label, str(weight))
        for i, label, weight in shop.sql(f"SELECT id, label, weight FROM {shop.t('tag')} ORDER BY id")
    ]


def test_rounding_conversion_is_refused_on_both_databases(shop: Shop) -> None:
    """Decimal(10, 2) -> (10, 0) would round 2.55: the migration counts it under its lock and
    refuses (ES309) on both databases, whatever the caller checked before; nothing changes."""

    def change(d: Doc) -> None:
        d["tables"][2]["fields"][1]["scale"] = 0

    v2 = evolve(SHOP, "1.1.0", change)

    def ops(old: Doc, new: Doc) -> list[Op]:
        before, after = table_of(old, "tag"), table_of(new, "tag")
        old_column, new_column = before.column("weight"), after.column("weight")
        assert old_column is not None and new_column is not None
        return [planning.AlterColumn("shop", before, after, old_column, new_column)]

    with pytest.raises(ProblemError, match=r"ES309: alter column tag\.weight"):
        shop.change(v2, ops)
    assert tags(shop) == TAGS


def _quoted(shop: Shop, ref: BackupRef) -> str:
    schema, _, name = ref.table.rpartition(".")
    return f'"{schema}"."{name}"' if schema else f'"{name}"'


def test_alter_nullability_default_rules_unique_and_key(shop: Shop) -> None:
    shop.sql(f"UPDATE {shop.t('order')} SET code = 'b' WHERE id = 2")

    def change(d: Doc) -> None:
        order_field(d, "code").update(required=True, default="z", unique=True)
        order_field(d, "qty")["validation"] = {"min": 0, "max": 100}
        order_field(d, "title").update(required=False)

    v2 = evolve(SHOP, "1.1.0", change)
    shop.change(v2, lambda old, new: _alter(old, new, "code", "qty", "title"))
    assert orders(shop) == [(2, "second", 7, "b", "done", None, 2) if r[0] == 2 else r for r in ORDERS]
    shop.sql(f"INSERT INTO {shop.t('order')} (id, title) VALUES (4, NULL)")  # title may be NULL now
    assert shop.sql(f"SELECT code FROM {shop.t('order')} WHERE id = 4") == [("z",)]  # the new default
    for bad in ("qty = -1", "code = 'a'", "code = NULL"):
        with pytest.raises(sa.exc.DBAPIError):
            shop.sql(f"UPDATE {shop.t('order')} SET {bad} WHERE id = 4")
    shop.sql(f"DELETE FROM {shop.t('order')} WHERE id = 4")
    shop.rollback()
    assert orders(shop) == [(2, "second", 7, "b", "done", None, 2) if r[0] == 2 else r for r in ORDERS]
    shop.sql(f"INSERT INTO {shop.t('order')} (id, title, qty, code) VALUES (5, 'again', -1, 'a')")
    with pytest.raises(sa.exc.DBAPIError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title) VALUES (NULL)")


def test_alter_foreign_key_changes_target(shop: Shop) -> None:
    def change(d: Doc) -> None:
        d["relationships"][0].update(target="tag", onDelete="SetNull")

    v2 = evolve(SHOP, "1.1.0", change)

    def ops(old: Doc, new: Doc) -> list[Op]:
        # The FK column is named after its target: renamed first, then its key changed.
        before, after = table_of(old, "order"), table_of(new, "order")
        customer, tag = before.column("customer_id"), after.column("tag_id")
        assert customer is not None and tag is not None
        renamed = dataclasses.replace(customer, name="tag_id")
        middle = dataclasses.replace(before, columns=tuple(renamed if c == customer else c for c in before.columns))
        return [
            planning.RenameColumn("shop", before, middle, "customer_id", "tag_id"),
            planning.AlterColumn("shop", middle, after, renamed, tag),
        ]

    shop.change(v2, ops)
    assert orders(shop, columns="id, tag_id") == [(1, 1), (2, 2), (3, None)]
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"UPDATE {shop.t('order')} SET tag_id = 9 WHERE id = 3")
    shop.sql(f"DELETE FROM {shop.t('tag')} WHERE id = 2")  # SET NULL now
    assert orders(shop, columns="id, tag_id") == [(1, 1), (2, None), (3, None)]
    shop.sql(f"INSERT INTO {shop.t('tag')} (id, label) VALUES (2, 'blue')")
    shop.sql(f"UPDATE {shop.t('order')} SET tag_id = 2 WHERE id = 2")
    shop.rollback()
    assert orders(shop) == ORDERS
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"UPDATE {shop.t('order')} SET customer_id = 9 WHERE id = 3")


# --- drops and their rollbacks -----------------------------------------------------------------


def test_a_column_backup_of_a_column_the_table_lacks_fails_instead_of_copying_its_name(shop: Shop) -> None:
    """Before (SQLite): note gone by hand, dropping it backed up the string 'note' for every row (and
    a rollback or restore wrote it back); PostgreSQL failed the copy. Now both fail it (ES402)."""
    shop.sql(f"ALTER TABLE {shop.t('order')} DROP COLUMN note")
    v2 = evolve(SHOP, "1.1.0", lambda d: d["tables"][1]["fields"].pop())

    def ops(old: Doc, new: Doc) -> list[Op]:
        before, after = table_of(old, "order"), table_of(new, "order")
        note = before.column("note")
        assert note is not None
        return [planning.DropColumn("shop", before, after, note)]

    with pytest.raises(ProblemError) as raised:
        shop.change(v2, ops)
    (problem,) = raised.value.problems
    assert problem.code == "ES402" and "note" in problem.message, problem
    assert shop.engine.history("shop")[-1].status == "failed"  # rolled back: no backup recorded


def test_drop_column_rollback_brings_the_values_back(shop: Shop) -> None:
    def drop(d: Doc) -> None:
        d["tables"][1]["fields"] = [f for f in d["tables"][1]["fields"] if f["name"] not in ("note", "title")]
        d["tables"][1]["uniqueConstraints"] = []

    v2 = evolve(SHOP, "1.1.0", drop)

    def ops(old: Doc, new: Doc) -> list[Op]:
        before = table_of(old, "order")
        without_unique = TableDef(before.name, before.columns, (), before.indexes)
        without_note = TableDef(before.name, tuple(c for c in before.columns if c.name != "note"), (), before.indexes)
        title, note = before.column("title"), before.column("note")
        assert title is not None and note is not None
        return [
            planning.DropIndex("shop", "order", IndexDef(("title", "code"), True)),
            planning.DropColumn("shop", without_unique, without_note, note),
            planning.DropColumn("shop", without_note, table_of(new, "order"), title),
        ]

    shop.change(v2, ops)
    assert set(shop.columns("order")) == {"id", "qty", "code", "state", "customer_id"}
    shop.sql(f"INSERT INTO {shop.t('order')} (id, qty) VALUES (4, 1)")  # a row the backup does not have
    shop.sql(f"DELETE FROM {shop.t('order')} WHERE id = 4")
    shop.rollback()
    assert orders(shop) == ORDERS
    with pytest.raises(sa.exc.IntegrityError):  # NOT NULL and the unique constraint are back
        shop.sql(f"INSERT INTO {shop.t('order')} (qty) VALUES (1)")
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, code) VALUES ('first', 'a')")


def test_drop_table_rollback_brings_the_rows_back(shop: Shop) -> None:
    v2 = evolve(SHOP, "1.1.0", lambda d: d["tables"].pop(2))
    tag = f"m{shop.change(v2, lambda old, new: [planning.DropTable('shop', table_of(old, 'tag'))])}"
    assert shop.dialect.backups_of(Plan("shop", (planning.DropTable("shop", table_of(SHOP, "tag")),)), tag) == [
        BackupRef(str(shop.dialect.backup_name("shop", "tag", tag)), "tag", None)
    ]
    shop.rollback()
    assert tags(shop) == TAGS
    # New ids start above the counter at the drop (the fixture moved it to 10 on PostgreSQL).
    shop.sql(f"INSERT INTO {shop.t('tag')} (label) VALUES ('green')")
    expected = 3 if shop.url.startswith("sqlite") else 11
    assert shop.sql(f"SELECT id FROM {shop.t('tag')} WHERE label = 'green'") == [(expected,)]


def test_enum_value_removal_is_backed_up(shop: Shop) -> None:
    v2 = evolve(SHOP, "1.1.0", lambda d: d["enums"][0].update(values=["new", "done"]))

    def ops(old: Doc, new: Doc) -> list[Op]:
        before, after = (EnumSpec.model_validate(d["enums"][0]) for d in (old, new))
        return [planning.ChangeEnumValues("shop", before, after, ((table_of(old, "order"), table_of(new, "order")),))]

    tag = f"m{shop.change(v2, ops)}"
    (ref,) = shop.dialect.backups_of(Plan("shop", tuple(ops(SHOP, v2))), tag)
    assert (ref.source_table, ref.column) == ("order", "state")
    assert shop.sql(f"SELECT id, state FROM {_quoted(shop, ref)} ORDER BY id") == [(1, "new"), (2, "done"), (3, "done")]
    with pytest.raises(sa.exc.DBAPIError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, state) VALUES ('x', 'void')")
    shop.rollback()
    shop.sql(f"INSERT INTO {shop.t('order')} (title, state) VALUES ('x', 'void')")


# --- hand-written SQL ------------------------------------------------------------------------------


def test_run_sql_runs_as_written_and_its_rollback(shop: Shop) -> None:
    tag = shop.t("tag")
    step = planning.RunSql(
        "shop",
        "0001",
        f"UPDATE {tag} SET label = upper(label);\nINSERT INTO {tag} (id, label) VALUES (9, 'x;y');\n",
        f"DELETE FROM {tag} WHERE id = 9; UPDATE {tag} SET label = lower(label)",
    )
    v2 = evolve(SHOP, "1.1.0", lambda d: None)
    shop.change(v2, lambda old, new: [step])
    assert shop.sql(f"SELECT id, label FROM {tag} ORDER BY id") == [(1, "RED"), (2, "BLUE"), (9, "x;y")]
    shop.rollback()
    assert tags(shop) == TAGS


# --- data checks ---------------------------------------------------------------------------------


def _count(shop: Shop, check: safety.DataCheck) -> int:
    rows = shop.sql(shop.dialect.data_check_sql("shop", check))
    return int(rows[0][0])


def _column(doc_change: Callable[[Doc], None], name: str) -> ColumnDef:
    found = table_of(evolve(SHOP, "2.0.0", doc_change), "order").column(name)
    assert found is not None
    return found


def test_data_checks_count_what_would_be_lost_or_violate(shop: Shop) -> None:
    shop.sql(f"UPDATE {shop.t('order')} SET title = :t WHERE id = 1", {"t": "x" * 40})
    shop.sql(f"UPDATE {shop.t('order')} SET code = '12' WHERE id = 3")
    order = table_of(SHOP, "order")

    def violating(name: str, change: Callable[[Doc], None]) -> int:
        before = order.column(name)
        assert before is not None
        return _count(shop, safety.DataCheck("rows_violating", "order", name, before, _column(change, name)))

    assert _count(shop, safety.DataCheck("rows_lost", "order")) == 3
    assert _count(shop, safety.DataCheck("values_lost", "order", "note")) == 2
    assert violating("title", lambda d: order_field(d, "title")["validation"].update(maxLength=10)) == 1
    assert violating("note", lambda d: order_field(d, "note").update(required=True)) == 1
    assert violating("qty", lambda d: order_field(d, "qty").update(validation={"min": 0, "max": 5})) == 1
    assert violating("code", lambda d: order_field(d, "code").update(validation={"pattern": "^[a-z]+$"})) == 1
    assert violating("code", lambda d: order_field(d, "code").update(type="Int")) == 1  # 'a' is not a number
    assert violating("state", lambda d: d["enums"][0].update(values=["new", "void"])) == 2
    assert violating("qty", lambda d: order_field(d, "qty").update(type="String", validation={"maxLength": 1})) == 0
    assert violating("title", lambda d: order_field(d, "title").update(type="Text")) == 0
    # Uniqueness and keys the new column adds: 'done' twice; qty 3 and 7 name no tag (2 does).
    assert violating("state", lambda d: order_field(d, "state").update(unique=True)) == 2
    shop.sql(f"UPDATE {shop.t('order')} SET qty = 2 WHERE id = 3")
    to_tag = {"source": "order", "target": "tag", "sourceField": "qty"}
    assert violating("qty", lambda d: d["relationships"].append(to_tag)) == 2
    duplicated = safety.DataCheck("rows_duplicated", "order", columns=("state", "customer_id"))
    assert _count(shop, duplicated) == 0  # ('done', 2) and ('done', NULL): NULLs never collide
    shop.sql(f"UPDATE {shop.t('order')} SET customer_id = 2 WHERE id = 3")
    assert _count(shop, duplicated) == 2
    # Nothing is changed by counting.
    assert len(orders(shop)) == 3


def test_a_data_check_naming_a_column_the_table_lacks_fails_instead_of_counting(shop: Shop) -> None:
    """Before (SQLite): a double-quoted name that is no column read as a string literal, so each check
    counted the literal 'gone' (every row lost, none or all violating). Now the count fails on both
    databases (ES402, naming the column): a racing or hand-made change never yields a false number."""
    order = table_of(SHOP, "order")
    title, qty, customer = order.column("title"), order.column("qty"), order.column("customer_id")
    assert title is not None and qty is not None and customer is not None
    gone = dataclasses.replace(title, name="gone")
    gone_int = dataclasses.replace(qty, name="gone")
    found = [
        safety.DataCheck("values_lost", "order", "gone"),
        safety.DataCheck("rows_violating", "order", "gone", gone, dataclasses.replace(gone, max_length=2)),
        safety.DataCheck("rows_violating", "order", "gone", gone, dataclasses.replace(gone, nullable=False)),
        safety.DataCheck("rows_violating", "order", "gone", gone, dataclasses.replace(gone, unique=True)),
        safety.DataCheck("rows_violating", "order", "gone", gone_int, dataclasses.replace(gone_int, type="Float")),
        safety.DataCheck("rows_violating", "order", "gone", gone_int, gone_int),  # SQLite: a predated Int range
        safety.DataCheck(
            "rows_violating", "order", "gone", gone_int, dataclasses.replace(gone_int, foreign_key=customer.foreign_key)
        ),
        safety.DataCheck("rows_duplicated", "order", columns=("gone",)),
        safety.DataCheck("rows_duplicated", "order", columns=("state", "gone")),
    ]
    for check in found:
        with pytest.raises(ProblemError) as raised:
            count_all(shop.engine, "shop", [check])
        (problem,) = raised.value.problems
        assert problem.code == "ES402" and "gone" in problem.message, (check, problem)


# --- additions on existing, non-empty tables -----------------------------------------------------


def test_add_column_with_rule_and_key_on_a_non_empty_table(shop: Shop) -> None:
    def change(d: Doc) -> None:
        d["tables"][2]["fields"].append({"name": "rank", "type": "Int", "default": 1, "validation": {"min": 0}})
        d["relationships"].append({"source": "tag", "target": "customer", "type": "ManyToOne", "onDelete": "SetNull"})

    v2 = evolve(SHOP, "1.1.0", change)

    def ops(old: Doc, new: Doc) -> list[Op]:
        before, after = table_of(old, "tag"), table_of(new, "tag")
        rank, customer = after.column("rank"), after.column("customer_id")
        assert rank is not None and customer is not None
        middle = TableDef(before.name, (*before.columns, rank))
        return [
            planning.AddColumn("shop", before, middle, rank),
            planning.AddColumn("shop", middle, after, customer),
        ]

    shop.change(v2, ops)
    if shop.url.startswith("postgresql"):
        # The apply itself: a concurrent index build after it is recorded as a "finish" step of its own.
        recorded = [r for r in shop.engine.history("shop") if r.kind == "apply"][-1]
        sql = shop.sql(
            "SELECT statements FROM extschema.extension_migrations WHERE plugin_id = 'shop' AND migration_id = :m",
            {"m": recorded.migration_id},
        )[0][0]
        # The constraints come as NOT VALID, then VALIDATE: the long scan under the lighter lock.
        assert "NOT VALID" in str(sql) and "VALIDATE CONSTRAINT" in str(sql)
    assert shop.sql(f"SELECT id, rank, customer_id FROM {shop.t('tag')} ORDER BY id") == [(1, 1, None), (2, 1, None)]
    for bad in ("rank = -1", "customer_id = 99"):
        with pytest.raises(sa.exc.IntegrityError):
            shop.sql(f"UPDATE {shop.t('tag')} SET {bad} WHERE id = 1")
    shop.sql(f"UPDATE {shop.t('tag')} SET customer_id = 1, rank = 5 WHERE id = 1")
    shop.rollback()
    assert tags(shop) == TAGS
    assert set(shop.columns("tag")) == {"id", "label", "weight"}


def test_unique_constraint_added_later_is_dropped_too(shop: Shop) -> None:
    # PostgreSQL: written in CREATE TABLE a unique constraint is a constraint; added to an existing
    # table, a unique index. Dropping (here: the rollback of adding it) handles both.
    v2 = evolve(SHOP, "1.1.0", lambda d: d["tables"][2].update(uniqueConstraints=[{"fields": ["label", "weight"]}]))
    unique = IndexDef(("label", "weight"), True)
    shop.change(v2, lambda old, new: [planning.CreateIndex("shop", "tag", unique)])
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('tag')} (label, weight) VALUES ('red', '2.55')")
    shop.rollback()
    shop.sql(f"INSERT INTO {shop.t('tag')} (label, weight) VALUES ('red', '2.55')")
    assert shop.index_names("tag") == set()


# --- plans from the planner --------------------------------------------------------------------


def _planned(shop: Shop, new: Doc) -> str:
    """Plan *new* from the applied spec with the planner, apply it; returns the backup tag."""
    spec = parse(new)
    plan = planning.plan(parse(shop.doc), spec, {})
    return f"m{shop.change(new, lambda old, new: list(plan.ops))}"


def test_planned_renames_through_the_cli_keep_every_row(shop_alone: Shop, tmp_path: Any) -> None:
    shop = shop_alone

    def rename(d: Doc) -> None:
        d["tables"][0].update(name="client", renamedFrom="customer")
        d["tables"][1].update(name="purchase", renamedFrom="order")
        d["relationships"][0].update(source="purchase", target="client")
        order_field(d, "code").update(name="ref", renamedFrom="code")
        d["tables"][1]["uniqueConstraints"] = [{"fields": ["title", "ref"]}]
        d["enums"][0].update(values=["new", "finished", "void"], renamedValues={"done": "finished"})

    v2 = evolve(SHOP, "1.1.0", rename)
    path = write_schema(tmp_path, "shop", yaml.safe_dump(v2))
    applied = run("apply", str(path), "-d", shop.url)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    for change in ("rename table customer to client", "rename table order to purchase", "rename column"):
        assert change in applied.stdout
    rows = orders(shop, "purchase", "id, title, qty, ref, state, note, client_id")
    assert rows == [(*r[:4], "finished" if r[4] == "done" else r[4], *r[5:]) for r in ORDERS]
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('purchase')} (title, ref) VALUES ('first', 'a')")
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('purchase')} (title, client_id) VALUES ('x', 99)")
    rolled = run("rollback", "shop", "-d", shop.url)
    assert rolled.exit_code == 0, rolled.stderr
    assert orders(shop) == ORDERS


def test_planned_drops_and_conversions_roll_back_with_their_data(shop: Shop) -> None:
    def change(d: Doc) -> None:
        d["tables"].pop(2)  # tag
        fields = d["tables"][1]["fields"]
        d["tables"][1]["fields"] = [f for f in fields if f["name"] != "note"]
        order_field(d, "qty")["type"] = "BigInt"
        order_field(d, "title")["validation"] = {"maxLength": 20}

    v2 = evolve(SHOP, "2.0.0", change)
    plan = planning.plan(parse(SHOP), parse(v2), {})
    # Before it runs, the counts an approver sees.
    checks = [c for classified in safety.classify_plan(plan) for c in classified.checks]
    counts = {(c.kind, c.table, c.column): _count(shop, c) for c in checks}
    assert counts[("rows_lost", "tag", None)] == 2
    assert counts[("values_lost", "order", "note")] == 2
    assert counts[("rows_violating", "order", "title")] == 0
    tag = _planned(shop, v2)
    backed_up = {(r.source_table, r.column) for r in shop.dialect.backups_of(plan, tag)}
    assert {("tag", None), ("order", "note"), ("order", "qty")} <= backed_up
    assert set(shop.columns("order")) == {"id", "title", "qty", "code", "state", "customer_id"}
    shop.sql(f"INSERT INTO {shop.t('order')} (id, title, qty) VALUES (4, 'big', 3000000000)")
    shop.sql(f"DELETE FROM {shop.t('order')} WHERE id = 4")
    shop.rollback()
    assert orders(shop) == ORDERS
    assert tags(shop) == TAGS


def test_planned_drop_of_a_table_with_keys_and_an_enum_rolls_back(shop_alone: Shop) -> None:
    shop = shop_alone

    def drop(d: Doc) -> None:
        d["tables"].pop(1)
        d["relationships"].clear()

    v2 = evolve(SHOP, "2.0.0", drop)
    _planned(shop, v2)
    assert not any(t.endswith("order") for t in shop.engine.physical_tables("shop"))
    shop.rollback()
    assert orders(shop) == ORDERS
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"INSERT INTO {shop.t('order')} (title, code) VALUES ('first', 'a')")
    with pytest.raises(sa.exc.IntegrityError):
        shop.sql(f"DELETE FROM {shop.t('customer')} WHERE id = 1")
    shop.sql(f"INSERT INTO {shop.t('order')} (title, state) VALUES ('later', 'void')")


def test_planned_rename_of_a_many_to_many_target_keeps_the_links(db_url: str) -> None:
    # The join table and its columns are named after the tables: the planner renames them too.
    v1: Doc = {
        "pluginId": "kb",
        "version": "1.0.0",
        "tables": [
            {"name": "article", "fields": [{"name": "title", "type": "String"}]},
            {"name": "tag", "fields": [{"name": "label", "type": "String"}]},
        ],
        "relationships": [{"source": "article", "target": "tag", "type": "ManyToMany"}],
    }

    def rename(d: Doc) -> None:
        d["tables"][1].update(name="topic", renamedFrom="tag")
        d["relationships"][0]["target"] = "topic"

    v2 = evolve(v1, "1.1.0", rename)
    engine = Engine(db_url)
    try:
        first, second = parse(v1), parse(v2)
        tables = registered_tables(engine.dialect, first)
        engine.apply("kb", first, planning.plan(None, first, {}), None, tables)
        article, tag = (ext_table(db_url, "kb", t) for t in ("article", "tag"))
        execute(db_url, f"INSERT INTO {article} (id, title) VALUES (1, 'a'), (2, 'b')")
        execute(db_url, f"INSERT INTO {tag} (id, label) VALUES (1, 'x'), (2, 'y')")
        links = ext_table(db_url, "kb", "article_tag")
        execute(db_url, f"INSERT INTO {links} (article_id, tag_id) VALUES (1, 1), (1, 2), (2, 2)")
        plan = planning.plan(first, second, {})
        engine.apply("kb", second, plan, first.checksum(), registered_tables(engine.dialect, second))
        joined = ext_table(db_url, "kb", "article_topic")
        assert execute(db_url, f"SELECT article_id, topic_id FROM {joined} ORDER BY 1, 2") == [(1, 1), (1, 2), (2, 2)]
        # Every index has the name the new table derives (a later drop or rebuild finds it).
        after = planning.resolve(second, {}).table("article_topic")
        assert after is not None
        expected = {
            engine.dialect.index_name("kb", after.name, i) for i in (*after.column_indexes(), *after.unique_together)
        }
        if db_url.startswith("sqlite"):
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        else:
            query = "SELECT indexname FROM pg_indexes WHERE schemaname = 'ext_kb' AND indexname NOT LIKE '%pkey'"
        found = {r[0] for r in execute(db_url, query)}
        assert expected <= found and not any("_tag_" in n for n in found), found
        with pytest.raises(sa.exc.IntegrityError):  # the pair is still unique, the keys still enforced
            execute(db_url, f"INSERT INTO {joined} (article_id, topic_id) VALUES (1, 1)")
        with pytest.raises(sa.exc.IntegrityError):
            execute(db_url, f"INSERT INTO {joined} (article_id, topic_id) VALUES (1, 9)")
        assert engine_rollback(engine, "kb").changed
        assert execute(db_url, f"SELECT article_id, tag_id FROM {links} ORDER BY 1, 2") == [(1, 1), (1, 2), (2, 2)]
        with pytest.raises(sa.exc.IntegrityError):
            execute(db_url, f"INSERT INTO {links} (article_id, tag_id) VALUES (2, 2)")
    finally:
        engine.close()
