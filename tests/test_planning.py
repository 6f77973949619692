"""Pure unit tests of extschema.planning, and of rendering its plans through both dialects (no connection)."""

from __future__ import annotations

import copy
import dataclasses
import re
import sqlite3
from typing import Any

import pytest

from extschema import dialects, model, planning
from extschema.model import EnumSpec, TargetRef
from extschema.planning import (
    AddColumn,
    ChangeEnumValues,
    ColumnDef,
    CreateEnum,
    CreateIndex,
    CreatePluginNamespace,
    CreateTable,
    DropColumn,
    DropEnum,
    DropIndex,
    DropPluginNamespace,
    DropTable,
    ForeignKeyDef,
    IndexDef,
    Plan,
    TableDef,
)
from extschema.problems import Problem, ProblemError

Doc = dict[str, Any]

CORE_REFS: dict[tuple[str, str], dict[str, Any]] = {
    ("core", "work_orders"): {"id": "Int", "number": "String", "blob": None},
    ("kb", "article"): {"id": "BigInt", "slug": "String", "key": "Uuid"},
}


def f(name: str, type_: str = "String", **extra: Any) -> Doc:
    return {"name": name, "type": type_, **extra}


def spec_doc(**extra: Any) -> Doc:
    data: Doc = {"pluginId": "shop", "version": "1.0.0"}
    data.update(extra)
    return data


def parse(data: Doc) -> model.ExtensionSchemaSpec:
    return model.parse_spec(data)


def desired(data: Doc) -> planning.Resolved:
    return planning.resolve(parse(data), CORE_REFS)


def evolve(data: Doc, change: Any) -> Doc:
    """A deep copy of *data*, changed by *change* (which edits it in place), its minor version raised."""
    new = copy.deepcopy(data)
    change(new)
    major, minor, _patch = new["version"].split(".")
    new["version"] = f"{major}.{int(minor) + 1}.0"
    return new


def plan_of(old: Doc | None, new: Doc) -> Plan:
    return planning.plan(parse(old) if old is not None else None, parse(new), CORE_REFS)


def refusals(old: Doc, new: Doc) -> list[Problem]:
    with pytest.raises(ProblemError) as info:
        plan_of(old, new)
    assert info.value.kind == "refused"
    return info.value.problems


def codes_paths(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in problems]


STATUS = {"name": "status", "values": ["draft", "published"]}

#: A spec that uses most features: enums, checks, indexes, constraints, relationships of every kind.
SHOP: Doc = spec_doc(
    enums=[STATUS],
    tables=[
        {
            "name": "order",
            "fields": [
                f("title", required=True, validation={"minLength": 1, "maxLength": 80}),
                f("state", "Enum", enum="status", required=True, default="draft"),
                f("total", "Decimal", default=0),
                f("code", unique=True, validation={"pattern": "^[A-Z]+$"}),
            ],
            "indexes": [{"fields": ["state", "title"]}],
            "uniqueConstraints": [{"fields": ["title", "total"], "name": "title_total"}],
        },
        {"name": "line", "fields": [f("qty", "Int", validation={"min": 0, "max": 99})]},
    ],
    relationships=[
        {"source": "line", "target": "order", "onDelete": "Cascade"},
        {"source": "order", "target": "core.work_orders"},
    ],
)


# --- desired state ----------------------------------------------------------------------------


def test_many_to_one_adds_a_nullable_fk_column_of_the_referenced_type() -> None:
    state = desired(SHOP)
    line = state.table("line")
    assert line is not None
    fk_column = line.column("order_id")
    assert fk_column == ColumnDef(
        "order_id",
        "BigInt",
        nullable=True,
        foreign_key=ForeignKeyDef(TargetRef(plugin="shop", table="order"), "id", "Cascade"),
    )
    order = state.table("order")
    assert order is not None
    core_fk = order.column("work_orders_id")
    assert core_fk is not None
    assert core_fk.type == "Int"  # the core's id is an INTEGER
    assert core_fk.foreign_key == ForeignKeyDef(TargetRef(plugin="core", table="work_orders"), "id", "Restrict")
    assert [c.name for c in order.columns] == ["title", "state", "total", "code", "work_orders_id"]


def test_one_to_one_fk_column_is_unique() -> None:
    data = spec_doc(
        tables=[{"name": "a"}, {"name": "b"}],
        relationships=[{"source": "b", "target": "a", "type": "OneToOne", "sourceField": "the_a"}],
    )
    column = desired(data).tables[1].column("the_a")
    assert column is not None
    assert (column.unique, column.type, column.nullable) == (True, "BigInt", True)


def test_one_to_many_adds_the_column_on_the_target() -> None:
    data = spec_doc(
        tables=[{"name": "node", "fields": [f("label")]}],
        relationships=[{"source": "node", "target": "node", "targetField": "parent_id", "type": "OneToMany"}],
    )
    node = desired(data).tables[0]
    assert [c.name for c in node.columns] == ["label", "parent_id"]
    parent = node.column("parent_id")
    assert parent is not None and parent.foreign_key is not None
    assert parent.foreign_key.references == TargetRef(plugin="shop", table="node")


def test_one_to_many_referencing_a_declared_source_field_takes_its_type() -> None:
    data = spec_doc(
        tables=[{"name": "a", "fields": [f("code", unique=True)]}, {"name": "b"}],
        relationships=[{"source": "a", "target": "b", "type": "OneToMany", "sourceField": "code"}],
    )
    column = desired(data).table("b")
    assert column is not None
    assert column.column("a_id") == ColumnDef(
        "a_id", "String", foreign_key=ForeignKeyDef(TargetRef(plugin="shop", table="a"), "code", "Restrict")
    )


def test_many_to_many_creates_a_join_table_after_its_ends() -> None:
    data = spec_doc(
        dependsOn=["kb"],
        tables=[{"name": "order"}],
        relationships=[{"source": "order", "target": "kb.article", "type": "ManyToMany", "onDelete": "Cascade"}],
    )
    state = desired(data)
    assert [t.name for t in state.tables] == ["order", "order_article"]
    join = state.tables[1]
    assert join.columns == (
        ColumnDef(
            "order_id",
            "BigInt",
            nullable=False,
            foreign_key=ForeignKeyDef(TargetRef(plugin="shop", table="order"), "id", "Cascade"),
        ),
        ColumnDef(
            "article_id",
            "BigInt",
            nullable=False,
            foreign_key=ForeignKeyDef(TargetRef(plugin="kb", table="article"), "id", "Cascade"),
        ),
    )
    assert join.unique_together == (IndexDef(("order_id", "article_id"), True),)
    assert join.indexes == ()
    # The unique pair leads with order_id, so only article_id needs its own index.
    assert join.column_indexes() == (IndexDef(("article_id",)),)


def test_many_to_many_join_column_types_follow_the_referenced_columns() -> None:
    data = spec_doc(
        dependsOn=["kb"],
        tables=[{"name": "order", "fields": [f("ref", unique=True)]}],
        relationships=[
            {
                "source": "order",
                "sourceField": "ref",
                "target": "kb.article",
                "targetField": "key",
                "type": "ManyToMany",
                "name": "links",
            }
        ],
    )
    join = desired(data).table("links")
    assert join is not None
    assert [(c.name, c.type) for c in join.columns] == [("order_id", "String"), ("article_id", "Uuid")]


def test_self_referencing_many_to_many() -> None:
    data = spec_doc(tables=[{"name": "tag"}], relationships=[{"source": "tag", "target": "tag", "type": "ManyToMany"}])
    join = desired(data).table("tag_tag")
    assert join is not None
    assert [c.name for c in join.columns] == ["tag_id", "related_tag_id"]
    assert all(c.foreign_key and c.foreign_key.references.table == "tag" for c in join.columns)
    assert join.unique_together == (IndexDef(("tag_id", "related_tag_id"), True),)


def test_declared_fk_column_keeps_its_definition_and_gains_the_foreign_key() -> None:
    data = spec_doc(
        tables=[
            {"name": "a"},
            {"name": "b", "fields": [f("a_id", "Int", required=True), f("note")]},
        ],
        relationships=[{"source": "b", "target": "a", "type": "OneToOne"}],
    )
    b = desired(data).table("b")
    assert b is not None
    assert [c.name for c in b.columns] == ["a_id", "note"]  # not appended a second time
    column = b.column("a_id")
    assert column == ColumnDef(
        "a_id",
        "Int",
        nullable=False,
        unique=True,  # from OneToOne
        foreign_key=ForeignKeyDef(TargetRef(plugin="shop", table="a"), "id", "Restrict"),
    )


def test_declared_unique_fk_column_stays_unique_under_many_to_one() -> None:
    data = spec_doc(
        tables=[{"name": "a"}, {"name": "b", "fields": [f("a_id", "BigInt", unique=True)]}],
        relationships=[{"source": "b", "target": "a"}],
    )
    column = desired(data).tables[1].column("a_id")
    assert column is not None and column.unique is True and column.foreign_key is not None


def test_decimal_precision_scale_defaults_and_default_values() -> None:
    data = spec_doc(
        tables=[
            {
                "name": "money",
                "fields": [
                    f("plain", "Decimal"),
                    f("exact", "Decimal", precision=10, scale=0, default=12),
                    f("rate", "Decimal", precision=6, default=1.25),
                    f("count", "Int", default=3),
                ],
            }
        ]
    )
    table = desired(data).tables[0]
    assert [(c.name, c.precision, c.scale, c.default) for c in table.columns] == [
        ("plain", 18, 2, None),
        ("exact", 10, 0, 12),  # scale 0 is kept, not replaced by the default 2
        ("rate", 6, 2, 1.25),
        ("count", None, None, 3),
    ]


def test_columns_carry_rules_enum_and_string_length() -> None:
    table = desired(SHOP).tables[0]
    assert table.name == "order"
    title, state, _, code, _ = table.columns
    assert (title.nullable, title.min_length, title.max_length, title.string_length) == (False, 1, 80, 80)
    assert state.enum == EnumSpec(name="status", values=["draft", "published"])
    assert state.default == "draft"
    assert (code.unique, code.pattern, code.string_length, code.enum) == (True, "^[A-Z]+$", 255, None)
    line = desired(SHOP).table("line")
    assert line is not None
    qty = line.column("qty")
    assert qty is not None and (qty.min, qty.max) == (0, 99)


def test_enum_field_with_an_unknown_enum_has_no_enum_spec() -> None:
    table = desired(spec_doc(tables=[{"name": "t", "fields": [f("s", "Enum", enum="nope")]}])).tables[0]
    assert table.columns[0].enum is None


def test_creation_order_puts_referenced_tables_first() -> None:
    data = spec_doc(
        tables=[{"name": "c"}, {"name": "b"}, {"name": "a"}, {"name": "loner"}],
        relationships=[
            {"source": "c", "target": "b"},
            {"source": "b", "target": "a"},
            {"source": "loner", "target": "core.work_orders"},
        ],
    )
    assert [t.name for t in desired(data).tables] == ["a", "b", "c", "loner"]


def test_creation_order_with_a_cycle_keeps_every_table_once() -> None:
    data = spec_doc(
        tables=[{"name": "x"}, {"name": "y"}, {"name": "z"}],
        relationships=[
            {"source": "x", "target": "y"},
            {"source": "y", "target": "x"},
            {"source": "z", "target": "z"},  # self reference
        ],
    )
    assert [t.name for t in desired(data).tables] == ["y", "x", "z"]


def test_creation_order_ignores_other_plugins_tables_of_the_same_name() -> None:
    data = spec_doc(
        dependsOn=["kb"],
        tables=[{"name": "article"}, {"name": "order"}],
        relationships=[{"source": "article", "target": "kb.article"}, {"source": "article", "target": "order"}],
    )
    assert [t.name for t in desired(data).tables] == ["order", "article"]


def test_column_indexes_rules() -> None:
    fk = ForeignKeyDef(TargetRef(plugin="p", table="t"), "id", "Restrict")
    table = TableDef(
        "t",
        (
            ColumnDef("plain", "Int"),
            ColumnDef("uniq", "Int", unique=True),
            ColumnDef("uniq_fk", "Int", unique=True, foreign_key=fk),
            ColumnDef("fk", "Int", foreign_key=fk),
            ColumnDef("fk_led_by_index", "Int", foreign_key=fk),
            ColumnDef("fk_led_by_constraint", "Int", foreign_key=fk),
            ColumnDef("fk_second_in_index", "Int", foreign_key=fk),
        ),
        unique_together=(IndexDef(("fk_led_by_constraint", "plain"), True),),
        indexes=(IndexDef(("fk_led_by_index", "fk_second_in_index")), IndexDef(())),
    )
    assert table.column_indexes() == (
        IndexDef(("uniq",), True),
        IndexDef(("uniq_fk",), True),
        IndexDef(("fk",)),
        IndexDef(("fk_second_in_index",)),
    )
    assert table.column("nope") is None


def test_with_enum_and_uses_enum() -> None:
    table = desired(SHOP).tables[0]
    grown = EnumSpec(name="status", values=["draft", "published", "archived"])
    other = EnumSpec(name="other", values=["x"])
    assert table.uses_enum("status") and not table.uses_enum("other")
    updated = table.with_enum(grown)
    state = updated.column("state")
    assert state is not None and state.enum == grown
    assert updated.column("title") == table.column("title")
    assert table.with_enum(other) == table


def test_desired_lookup_and_enums() -> None:
    state = desired(SHOP)
    assert state.plugin_id == "shop"
    assert state.enums == (EnumSpec(name="status", values=["draft", "published"]),)
    assert state.table("nope") is None


def test_reference_types_of() -> None:
    data = spec_doc(tables=[{"name": "a", "fields": [f("n", "Int"), f("s")]}, {"name": "b"}])
    assert planning.reference_types_of(parse(data)) == {
        ("shop", "a"): {"id": "BigInt", "n": "Int", "s": "String"},
        ("shop", "b"): {"id": "BigInt"},
    }


@pytest.mark.parametrize(
    ("relationship", "missing"),
    [
        ({"source": "a", "target": "a", "targetField": "ghost"}, "shop.a.ghost"),
        ({"source": "a", "target": "nowhere", "targetField": "x"}, "shop.nowhere.x"),
        ({"source": "a", "target": "core.work_orders", "targetField": "ghost"}, "core.work_orders.ghost"),
        ({"source": "a", "target": "core.missing"}, "core.missing.id"),
        ({"source": "a", "target": "core.work_orders", "targetField": "blob"}, "core.work_orders.blob"),
        ({"source": "a", "target": "kb.article", "targetField": "x", "type": "ManyToMany"}, "kb.article.x"),
    ],
)
def test_referenced_column_missing_is_es204(relationship: Doc, missing: str) -> None:
    data = spec_doc(
        tables=[{"name": "a"}], relationships=[{"source": "a", "target": "a", "sourceField": "first_id"}, relationship]
    )
    with pytest.raises(ProblemError) as info:
        planning.resolve(parse(data), CORE_REFS)
    assert info.value.kind == "conflict"
    (problem,) = info.value.problems
    assert (problem.code, problem.path) == ("ES204", "spec.relationships[1]")
    assert problem.message.startswith(f"{missing} does not exist")


# --- plan from nothing ----------------------------------------------------------------------


def test_plan_from_nothing_creates_everything_in_order() -> None:
    result = plan_of(None, SHOP)
    state = desired(SHOP)
    order, line = state.tables
    assert result.plugin_id == "shop"
    assert result.ops == (
        CreatePluginNamespace("shop"),
        CreateEnum("shop", state.enums[0]),
        CreateTable("shop", order),
        CreateIndex("shop", "order", IndexDef(("state", "title"))),
        CreateTable("shop", line),
        # unique constraints are part of CREATE TABLE, and column indexes are the dialect's business
    )
    assert not result.empty


def test_plan_from_nothing_describe() -> None:
    assert plan_of(None, SHOP).describe() == [
        "create namespace for plugin shop",
        "create enum status (draft, published)",
        "create table order (6 columns)",
        "create index on order (state, title)",
        "create table line (3 columns)",
    ]


def test_plan_of_an_unchanged_spec_is_empty() -> None:
    result = plan_of(SHOP, evolve(SHOP, lambda d: d.update(description="only words changed")))
    assert result.empty
    assert result.ops == ()
    assert result.describe() == []


# --- additive diffs ---------------------------------------------------------------------------


def test_new_table_with_index_and_new_enum() -> None:
    def change(d: Doc) -> None:
        d["enums"].append({"name": "color", "values": ["red"]})
        d["tables"].append(
            {"name": "tag", "fields": [f("color", "Enum", enum="color")], "indexes": [{"fields": ["color"]}]}
        )

    new = evolve(SHOP, change)
    result = plan_of(SHOP, new)
    tag = desired(new).table("tag")
    assert tag is not None
    assert result.ops == (
        CreateEnum("shop", EnumSpec(name="color", values=["red"])),
        CreateTable("shop", tag),
        CreateIndex("shop", "tag", IndexDef(("color",))),
    )


def test_new_many_to_many_creates_the_join_table() -> None:
    new = evolve(SHOP, lambda d: d["relationships"].append({"source": "line", "target": "line", "type": "ManyToMany"}))
    result = plan_of(SHOP, new)
    (op,) = result.ops
    assert isinstance(op, CreateTable)
    assert op.table.name == "line_line"
    assert [c.name for c in op.table.columns] == ["line_id", "related_line_id"]


def test_new_nullable_and_defaulted_required_columns() -> None:
    def change(d: Doc) -> None:
        d["tables"][1]["fields"] += [f("note", "Text"), f("done", "Boolean", required=True, default=False)]

    result = plan_of(SHOP, evolve(SHOP, change))
    before = desired(SHOP).table("line")
    assert before is not None
    note = ColumnDef("note", "Text")
    done = ColumnDef("done", "Boolean", nullable=False, default=False)
    middle = dataclasses.replace(before, columns=(*before.columns, note))
    last = dataclasses.replace(middle, columns=(*middle.columns, done))
    assert result.ops == (AddColumn("shop", before, middle, note), AddColumn("shop", middle, last, done))
    assert result.describe() == ["add column line.note (Text)", "add column line.done (Boolean)"]


def test_new_relationship_adds_an_fk_column() -> None:
    new = evolve(SHOP, lambda d: d["relationships"].append({"source": "line", "target": "core.work_orders"}))
    (op,) = plan_of(SHOP, new).ops
    assert isinstance(op, AddColumn)
    assert op.column.name == "work_orders_id"
    assert op.column.foreign_key == ForeignKeyDef(TargetRef(plugin="core", table="work_orders"), "id", "Restrict")
    assert op.after.column_indexes()[-1] == IndexDef(("work_orders_id",))


@pytest.mark.parametrize(
    ("values", "added"),
    [
        (["draft", "review", "published"], ["review"]),
        (["draft", "published", "archived"], ["archived"]),
        (["new", "draft", "published", "old"], ["new", "old"]),
    ],
)
def test_enum_values_added_in_the_middle_or_at_the_end(values: list[str], added: list[str]) -> None:
    new = evolve(SHOP, lambda d: d["enums"][0].update(values=values))
    (op,) = plan_of(SHOP, new).ops
    assert isinstance(op, ChangeEnumValues)
    assert op.before == EnumSpec(name="status", values=["draft", "published"])
    assert op.after == EnumSpec(name="status", values=values)
    assert op.added == added
    assert op.removed == []
    old_order = desired(SHOP).table("order")
    assert old_order is not None
    # Only the tables with a column of the enum are affected, as they are before and after.
    assert op.tables == ((old_order, old_order.with_enum(op.after)),)
    assert op.describe() == f"add values {', '.join(added)} to enum status"


def test_enum_values_added_with_a_new_column_of_the_enum() -> None:
    def change(d: Doc) -> None:
        d["enums"][0]["values"].append("archived")
        d["tables"][1]["fields"].append(f("state", "Enum", enum="status"))

    ops = plan_of(SHOP, evolve(SHOP, change)).ops
    assert [type(op) for op in ops] == [ChangeEnumValues, AddColumn]
    change_op, add = ops
    assert isinstance(change_op, ChangeEnumValues) and isinstance(add, AddColumn)
    assert [t.name for t, _ in change_op.tables] == ["order"]  # line did not use it before
    assert add.column.enum == EnumSpec(name="status", values=["draft", "published", "archived"])


def test_enum_values_added_with_no_table_using_the_enum() -> None:
    data = spec_doc(enums=[{"name": "e", "values": ["a"]}], tables=[{"name": "t"}])
    (op,) = plan_of(data, evolve(data, lambda d: d["enums"][0].update(values=["a", "b"]))).ops
    assert isinstance(op, ChangeEnumValues) and op.tables == ()


def test_enum_localization_change_needs_no_operation() -> None:
    new = evolve(SHOP, lambda d: d["enums"][0].update(localization={"de": {"draft": "Entwurf"}}))
    assert plan_of(SHOP, new).empty


def test_new_index_and_unique_constraint_on_an_existing_table() -> None:
    def change(d: Doc) -> None:
        d["tables"][0]["indexes"].append({"fields": ["total"], "unique": True, "name": "by_total"})
        d["tables"][0]["uniqueConstraints"].append({"fields": ["code", "state"]})

    result = plan_of(SHOP, evolve(SHOP, change))
    assert result.ops == (
        CreateIndex("shop", "order", IndexDef(("code", "state"), True)),
        CreateIndex("shop", "order", IndexDef(("total",), True, "by_total")),
    )
    assert result.describe() == [
        "create unique index on order (code, state)",
        "create unique index on order (total)",
    ]


# --- changes beyond adding: planned, and the few refusals ----------------------------------------


def kinds(plan: Plan) -> list[str]:
    return [op.KIND for op in plan.ops]


def test_removed_table_is_dropped_after_its_indexes() -> None:
    data = evolve(SHOP, lambda d: d["tables"][1].update(indexes=[{"fields": ["qty"]}]))
    plan = plan_of(data, evolve(data, lambda d: d["tables"].pop(1)))
    # The relationship from line to order goes too: it was a column of the dropped table.
    assert kinds(plan) == ["drop_index", "drop_table"]
    drop = plan.ops[1]
    assert isinstance(drop, DropTable)
    assert drop.table.name == "line"
    assert drop.table.indexes == ()
    assert [op.KIND for op in plan.reverse().ops] == ["create_table", "create_index"]


def test_removed_field_is_dropped() -> None:
    plan = plan_of(SHOP, evolve(SHOP, lambda d: d["tables"][0]["fields"].pop(3)))
    (op,) = plan.ops
    assert isinstance(op, DropColumn)
    assert (op.before.name, op.column.name) == ("order", "code")
    assert op.after.column("code") is None
    assert op.before.column("code") is not None


def test_removed_relationship_drops_its_column() -> None:
    plan = plan_of(SHOP, evolve(SHOP, lambda d: d["relationships"].pop(0)))
    (op,) = plan.ops
    assert isinstance(op, DropColumn)
    assert (op.before.name, op.column.name) == ("line", "order_id")


def test_removed_enum_is_dropped_last() -> None:
    data = spec_doc(enums=[{"name": "a", "values": ["x"]}, {"name": "b", "values": ["y"]}], tables=[{"name": "t"}])
    plan = plan_of(data, evolve(data, lambda d: d["enums"].pop(0)))
    assert plan.ops == (DropEnum("shop", EnumSpec(name="a", values=["x"])),)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["draft"], ["remove values published from enum status"]),
        (["published"], ["remove values draft from enum status"]),
        (["draft", "archived"], ["add values archived to enum status", "remove values published from enum status"]),
    ],
    ids=["removed-last", "removed-first", "replaced"],
)
def test_removed_enum_values_are_removed_after_additions(values: list[str], expected: list[str]) -> None:
    data = spec_doc(
        enums=[{"name": "other", "values": ["x"]}, STATUS],
        tables=[{"name": "t", "fields": [f("s", "Enum", enum="status")]}],
    )
    plan = plan_of(data, evolve(data, lambda d: d["enums"][1].update(values=values)))
    assert plan.describe() == expected
    last = plan.ops[-1]
    assert isinstance(last, ChangeEnumValues)
    assert last.after.values == values
    ((_before, after),) = last.tables
    column = after.column("s")
    assert column is not None and column.enum is not None and column.enum.values == values


def test_reordered_enum_values_are_refused() -> None:
    data = spec_doc(
        enums=[{"name": "other", "values": ["x"]}, STATUS],
        tables=[{"name": "t", "fields": [f("s", "Enum", enum="status")]}],
    )
    problems = refusals(data, evolve(data, lambda d: d["enums"][1].update(values=["published", "draft"])))
    assert codes_paths(problems) == [("ES301", "spec.enums[1].values")]
    assert "(draft, published → published, draft)" in problems[0].message


def test_changed_field_is_altered() -> None:
    def change(d: Doc) -> None:
        d["tables"][1]["fields"][0] = f("qty", "BigInt", validation={"min": 0, "max": 99})

    (op,) = plan_of(SHOP, evolve(SHOP, change)).ops
    assert isinstance(op, planning.AlterColumn)
    assert (op.old.type, op.new.type, op.changed()) == ("Int", "BigInt", ["type"])
    assert op.describe() == "alter column line.qty (type)"


def test_unsupported_type_change_is_es312_with_what_changed() -> None:
    def change(d: Doc) -> None:
        d["tables"][1]["fields"][0] = f("qty", "Boolean")

    problems = refusals(SHOP, evolve(SHOP, change))
    assert codes_paths(problems) == [("ES312", "spec.tables[1].fields[0]")]
    assert "field line.qty changed (type: 'Int' → 'Boolean', min: 0 → None, max: 99 → None): Int to Boolean" in (
        problems[0].message
    )


def test_changed_enum_of_a_field_is_altered_after_the_new_enum_exists() -> None:
    def change(d: Doc) -> None:
        d["enums"].append({"name": "other", "values": ["draft"]})
        d["tables"][0]["fields"][1] = f("state", "Enum", enum="other", required=True, default="draft")

    plan = plan_of(SHOP, evolve(SHOP, change))
    assert kinds(plan) == ["create_enum", "alter_column"]
    assert plan.ops[1].describe() == "alter column order.state (enum)"


def test_changed_on_delete_of_a_relationship_alters_the_fk_column() -> None:
    new = evolve(SHOP, lambda d: d["relationships"][0].update(onDelete="Restrict"))
    (op,) = plan_of(SHOP, new).ops
    assert isinstance(op, planning.AlterColumn)
    assert op.changed() == ["foreign_key"]
    assert op.new.foreign_key is not None and op.new.foreign_key.on_delete == "Restrict"


def test_several_field_changes_are_one_alteration() -> None:
    def change(d: Doc) -> None:
        d["tables"][1]["fields"][0] = f("qty", "Int", required=True, default=1)

    (op,) = plan_of(SHOP, evolve(SHOP, change)).ops
    assert isinstance(op, planning.AlterColumn)
    assert op.changed() == ["nullable", "default", "min", "max"]


@pytest.mark.parametrize(
    ("attr", "index"),
    [
        ("indexes", IndexDef(("state", "title"))),
        ("uniqueConstraints", IndexDef(("title", "total"), True, "title_total")),
    ],
)
def test_removed_index_or_constraint_is_dropped(attr: str, index: IndexDef) -> None:
    plan = plan_of(SHOP, evolve(SHOP, lambda d: d["tables"][0][attr].clear()))
    assert plan.ops == (DropIndex("shop", "order", index),)


def test_changed_index_is_dropped_then_created() -> None:
    new = evolve(SHOP, lambda d: d["tables"][0]["indexes"][0].update(unique=True))
    assert plan_of(SHOP, new).ops == (
        DropIndex("shop", "order", IndexDef(("state", "title"))),
        CreateIndex("shop", "order", IndexDef(("state", "title"), True)),
    )


def test_new_required_field_without_default_is_es302() -> None:
    new = evolve(SHOP, lambda d: d["tables"][1]["fields"].append(f("sku", required=True)))
    problems = refusals(SHOP, new)
    assert codes_paths(problems) == [("ES302", "spec.tables[1].fields[1]")]
    assert problems[0].message.startswith("new required field line.sku has no default")


def test_every_refusal_is_reported_at_once() -> None:
    def change(d: Doc) -> None:
        d["enums"][0]["values"] = ["published", "draft"]
        d["tables"][0]["fields"].pop(0)
        d["tables"][0]["indexes"] = []
        d["tables"][1]["fields"][0]["type"] = "Date"
        d["tables"][1]["fields"][0].pop("validation")
        d["tables"][1]["fields"].append(f("sku", required=True))

    problems = refusals(SHOP, evolve(SHOP, change))
    assert codes_paths(problems) == [
        ("ES301", "spec.enums[0].values"),
        ("ES312", "spec.tables[1].fields[0]"),
        ("ES302", "spec.tables[1].fields[1]"),
    ]


def test_changed_many_to_many_alters_both_join_columns() -> None:
    data = spec_doc(tables=[{"name": "a"}], relationships=[{"source": "a", "target": "a", "type": "ManyToMany"}])
    plan = plan_of(data, evolve(data, lambda d: d["relationships"][0].update(onDelete="Cascade")))
    assert plan.describe() == ["alter column a_a.a_id (foreign_key)", "alter column a_a.related_a_id (foreign_key)"]


# --- reverse, teardown, describe ----------------------------------------------------------------

_ENUM = EnumSpec(name="status", values=["a", "b"])
_ENUM2 = EnumSpec(name="status", values=["a", "b", "c"])
_COL = ColumnDef("note", "Text")
_T0 = TableDef("t", (ColumnDef("s", "Enum", enum=_ENUM),))
_T1 = TableDef("t", (ColumnDef("s", "Enum", enum=_ENUM), _COL))
_IDX = IndexDef(("s",), True, "by_s")

OPS_AND_REVERSES: list[tuple[planning.Op, planning.Op, str]] = [
    (CreatePluginNamespace("p"), DropPluginNamespace("p"), "create namespace for plugin p"),
    (DropPluginNamespace("p"), CreatePluginNamespace("p"), "drop namespace of plugin p"),
    (CreateEnum("p", _ENUM), DropEnum("p", _ENUM), "create enum status (a, b)"),
    (DropEnum("p", _ENUM), CreateEnum("p", _ENUM), "drop enum status"),
    (
        ChangeEnumValues("p", _ENUM, _ENUM2, ((_T0, _T0.with_enum(_ENUM2)),)),
        ChangeEnumValues("p", _ENUM2, _ENUM, ((_T0.with_enum(_ENUM2), _T0),)),
        "add values c to enum status",
    ),
    (
        ChangeEnumValues("p", _ENUM2, _ENUM, ()),
        ChangeEnumValues("p", _ENUM, _ENUM2, ()),
        "remove values c from enum status",
    ),
    (CreateTable("p", _T1), DropTable("p", _T1), "create table t (3 columns)"),
    (DropTable("p", _T1), CreateTable("p", _T1), "drop table t"),
    (AddColumn("p", _T0, _T1, _COL), DropColumn("p", _T1, _T0, _COL), "add column t.note (Text)"),
    (DropColumn("p", _T1, _T0, _COL), AddColumn("p", _T0, _T1, _COL), "drop column t.note"),
    (CreateIndex("p", "t", _IDX), DropIndex("p", "t", _IDX), "create unique index on t (s)"),
    (
        CreateIndex("p", "t", IndexDef(("s", "note"))),
        DropIndex("p", "t", IndexDef(("s", "note"))),
        "create index on t (s, note)",
    ),
    (DropIndex("p", "t", _IDX), CreateIndex("p", "t", _IDX), "drop index on t (s)"),
]


@pytest.mark.parametrize(("op", "reverse", "text"), OPS_AND_REVERSES, ids=lambda v: type(v).__name__)
def test_each_op_reverses_and_describes(op: planning.Op, reverse: planning.Op, text: str) -> None:
    assert op.reverse() == reverse
    assert op.reverse().reverse() == op
    assert op.describe() == text


def test_change_enum_values_added_and_removed() -> None:
    op = ChangeEnumValues("p", EnumSpec(name="e", values=["a", "b"]), EnumSpec(name="e", values=["b", "c", "d"]), ())
    assert (op.added, op.removed) == (["c", "d"], ["a"])
    assert op.describe() == "add values c, d and remove values a of enum e"
    assert op.reverse().describe() == "add values a and remove values c, d of enum e"
    removing = ChangeEnumValues("p", EnumSpec(name="e", values=["a", "b"]), EnumSpec(name="e", values=["b"]), ())
    assert removing.describe() == "remove values a from enum e"


def test_base_op_has_no_reverse_or_description() -> None:
    with pytest.raises(NotImplementedError):
        planning.Op("p").reverse()
    with pytest.raises(NotImplementedError):
        planning.Op("p").describe()


def test_plan_reverse_reverses_the_order_and_each_op() -> None:
    forward = plan_of(None, SHOP)
    backward = forward.reverse()
    assert backward.plugin_id == "shop"
    assert backward.ops == tuple(op.reverse() for op in reversed(forward.ops))
    assert backward.reverse() == forward
    assert [type(op) for op in backward.ops] == [DropTable, DropIndex, DropTable, DropEnum, DropPluginNamespace]


def test_rollback_is_planned_from_the_history_specs() -> None:
    """planning.rollback: the way back from the current spec to the previous one (the plan applying it
    as a lower version has), the undone migration's own plan as *forward*, a teardown for the first."""
    v2 = evolve(SHOP, lambda d: d["tables"][1]["fields"].append(f("note", "Text")))
    first, second = parse(SHOP), parse(v2)
    back = planning.rollback(second, first, second, CORE_REFS)
    assert back.plan == plan_of(v2, SHOP) and back.forward == plan_of(SHOP, v2)
    assert [type(op) for op in back.plan.ops] == [DropColumn]
    gone = planning.rollback(first, None, first, CORE_REFS)
    assert gone.plan == planning.teardown(first, CORE_REFS) and gone.forward == plan_of(None, SHOP)


def test_teardown_drops_everything_in_reverse_creation_order() -> None:
    result = planning.teardown(parse(SHOP), CORE_REFS)
    assert result == plan_of(None, SHOP).reverse()
    assert result.describe() == [
        "drop table line",
        "drop index on order (state, title)",
        "drop table order",
        "drop enum status",
        "drop namespace of plugin shop",
    ]


# --- rendering through both dialects ------------------------------------------------------------

PG = dialects.for_backend("postgresql")
SQLITE = dialects.for_backend("sqlite")


def render(backend: str, result: Plan) -> dialects.RenderedPlan:
    return dialects.for_backend(backend).render_plan(result, backup_tag="t1")


def plain(statements: tuple[str, ...]) -> tuple[str, ...]:
    """Statements without identifier quotes, so assertions do not depend on when a name is quoted."""
    return tuple(s.replace('"', "") for s in statements)


def test_render_creation_on_postgresql() -> None:
    rendered = render("postgresql", plan_of(None, SHOP))
    sql = rendered.statements
    assert sql[0] == 'CREATE SCHEMA "ext_shop"'
    assert sql[1] == "CREATE TYPE \"ext_shop\".\"status\" AS ENUM ('draft', 'published')"
    order = sql[2]
    assert order.startswith('CREATE TABLE ext_shop."order" (')
    assert "id BIGINT GENERATED BY DEFAULT AS IDENTITY" in order
    assert "PRIMARY KEY (id)" in order
    assert 'title VARCHAR(80) NOT NULL CONSTRAINT order_title_check CHECK (char_length("title") >= 1)' in order
    assert "state ext_shop.status DEFAULT 'draft' NOT NULL" in order
    assert "total NUMERIC(18, 2) DEFAULT 0" in order
    assert "CHECK (\"code\" ~ '^[A-Z]+$')" in order
    assert "CONSTRAINT title_total UNIQUE (title, total)" in order
    assert "FOREIGN KEY(work_orders_id) REFERENCES public.work_orders (id) ON DELETE RESTRICT" in order
    assert plain(sql[3:6]) == (
        "CREATE UNIQUE INDEX order_code_key ON ext_shop.order (code)",
        "CREATE INDEX order_work_orders_id_idx ON ext_shop.order (work_orders_id)",
        "CREATE INDEX order_state_title_idx ON ext_shop.order (state, title)",
    )
    assert '"order"' in sql[3]  # a reserved word, always quoted
    line = sql[6]
    assert 'CHECK (("qty" >= 0) AND ("qty" <= 99))' in line
    assert "order_id BIGINT" in line
    assert 'FOREIGN KEY(order_id) REFERENCES ext_shop."order" (id) ON DELETE CASCADE' in line
    assert plain(sql[7:]) == ("CREATE INDEX line_order_id_idx ON ext_shop.line (order_id)",)
    assert len(sql) == 8
    assert rendered.foreign_keys_off is False


def test_render_creation_on_sqlite() -> None:
    rendered = render("sqlite", plan_of(None, SHOP))
    sql = rendered.statements
    # No schemas and no enum types on SQLite.
    assert not any(s.startswith(("CREATE SCHEMA", "CREATE TYPE")) for s in sql)
    order = sql[0]
    assert order.startswith("CREATE TABLE ext_shop__order (")
    # Exactly INTEGER PRIMARY KEY: an alias of the rowid; AUTOINCREMENT: ids of deleted rows are never reused.
    assert "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT," in order and "PRIMARY KEY (id)" not in order
    assert '(typeof("title") IN (\'text\', \'null\')) AND (length("title") <= 80) AND (length("title") >= 1)' in order
    assert "(\"state\" IN ('draft', 'published'))" in order
    assert "state VARCHAR(9) DEFAULT 'draft' NOT NULL" in order
    assert """("code" GLOB '*' AND length("code") >= 1 AND "code" NOT GLOB '*[^A-Z]*')""" in order  # ^[A-Z]+$
    # Multi-column uniqueness is a named unique index on SQLite (a rebuild recreates exactly it).
    assert "UNIQUE (title, total)" not in order
    assert "CREATE UNIQUE INDEX ext_shop__order_title_total ON ext_shop__order (title, total)" in plain(sql)
    assert "REFERENCES work_orders (id) ON DELETE RESTRICT" in order
    assert "CREATE INDEX ext_shop__order_state_title_idx ON ext_shop__order (state, title)" in plain(sql)
    assert "CREATE UNIQUE INDEX ext_shop__order_code_key ON ext_shop__order (code)" in plain(sql)
    assert "FOREIGN KEY(order_id) REFERENCES ext_shop__order (id) ON DELETE CASCADE" in sql[-2]
    assert rendered.foreign_keys_off is False


def test_sqlite_id_is_a_rowid_alias() -> None:
    """The rendered table really aliases the rowid (checked in an in-memory database)."""
    con = _sqlite()
    try:
        con.execute("CREATE TABLE work_orders (id INTEGER PRIMARY KEY)")
        for statement in render("sqlite", plan_of(None, SHOP)).statements:
            con.execute(statement)
        con.execute("INSERT INTO ext_shop__line (rowid, qty) VALUES (41, 1)")
        assert con.execute("SELECT id, rowid FROM ext_shop__line").fetchall() == [(41, 41)]
    finally:
        con.close()


def test_sqlite_rebuild_copy_fails_on_a_missing_column_instead_of_copying_its_name() -> None:
    """Run without the preflight (in-memory, a column dropped by hand), a rebuild's copy raises: each
    source column is named through the old table's alias, so SQLite cannot read "code" as a string."""
    con = _sqlite()
    try:
        con.execute("CREATE TABLE work_orders (id INTEGER PRIMARY KEY)")
        for statement in render("sqlite", plan_of(None, SHOP)).statements:
            con.execute(statement)
        con.execute("INSERT INTO ext_shop__order (title, state, total, code) VALUES ('t', 'draft', '1', 'AB')")
        con.execute("DROP INDEX ext_shop__order_code_key")
        con.execute("ALTER TABLE ext_shop__order DROP COLUMN code")
        new = evolve(SHOP, lambda d: d["enums"][0]["values"].append("archived"))
        create, copy_rows = render("sqlite", plan_of(SHOP, new)).statements[:2]
        con.execute(create)
        with pytest.raises(sqlite3.OperationalError, match=r"no such column: s\.code"):
            con.execute(copy_rows)
    finally:
        con.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_render_teardown_backs_up_before_dropping(backend: str) -> None:
    rendered = render(backend, plan_of(None, SHOP))
    teardown_sql = rendered.rollback
    if backend == "postgresql":
        backup, drop = (
            'CREATE TABLE "extschema_backup"."shop__line__t1" AS SELECT * FROM "ext_shop"."line"',
            'DROP TABLE "ext_shop"."line"',
        )
        # Columns of the plugin's types are turned to text, so the backup does not keep the enum type from
        # being dropped (found when it runs: columns may have been dropped or added by hand).
        detach = teardown_sql[
            teardown_sql.index('CREATE TABLE "extschema_backup"."shop__order__t1" AS SELECT * FROM "ext_shop"."order"')
            + 1
        ]
        assert detach.startswith("DO $$") and """'"extschema_backup"."shop__order__t1"'::regclass""" in detach
        assert "typnamespace = 'ext_shop'::regnamespace" in detach and "TYPE text USING %1$I::text" in detach
        assert teardown_sql[-2:] == (
            'DROP TYPE IF EXISTS "ext_shop"."status"',
            'DROP SCHEMA IF EXISTS "ext_shop" RESTRICT',
        )
        assert 'DROP INDEX "ext_shop"."order_state_title_idx"' in teardown_sql
    else:
        backup, drop = (
            'CREATE TABLE "extschema_backup__shop__line__t1" AS SELECT * FROM "ext_shop__line"',
            'DROP TABLE "ext_shop__line"',
        )
        assert teardown_sql[-1] == 'DROP TABLE "ext_shop__order"'
        assert 'DROP INDEX "ext_shop__order_state_title_idx"' in teardown_sql
    # PostgreSQL locks the table before copying it: nothing is committed between the copy and the drop.
    locked = backend == "postgresql"
    if locked:
        assert teardown_sql[0] == 'LOCK TABLE "ext_shop"."line" IN ACCESS EXCLUSIVE MODE'
    assert teardown_sql[locked] == backup and drop in teardown_sql[1 + locked : 3 + locked]
    drops = [i for i, s in enumerate(teardown_sql) if s.startswith("DROP TABLE")]
    backups = [i for i, s in enumerate(teardown_sql) if s.startswith("CREATE TABLE") and " AS SELECT * " in s]
    assert len(backups) == len(drops) and all(b < d for b, d in zip(backups, drops, strict=True))
    assert rendered.rollback == tuple(
        dialects.for_backend(backend).render_ops(planning.teardown(parse(SHOP), CORE_REFS).ops, "t1")
    )


def test_render_enum_values_added_on_postgresql() -> None:
    new = evolve(SHOP, lambda d: d["enums"][0].update(values=["new", "draft", "review", "published", "archived"]))
    rendered = render("postgresql", plan_of(SHOP, new))
    # Committed before the migration's transaction (a label cannot be used in the one adding it): idempotent.
    assert rendered.statements == ()
    assert rendered.before == (
        "ALTER TYPE \"ext_shop\".\"status\" ADD VALUE IF NOT EXISTS 'new' BEFORE 'draft'",
        "ALTER TYPE \"ext_shop\".\"status\" ADD VALUE IF NOT EXISTS 'review' BEFORE 'published'",
        'ALTER TYPE "ext_shop"."status" ADD VALUE IF NOT EXISTS \'archived\'',
    )
    # PostgreSQL cannot drop enum values: the rollback swaps in a new type.
    assert rendered.rollback == (
        'ALTER TYPE "ext_shop"."status" RENAME TO "status__old"',
        "CREATE TYPE \"ext_shop\".\"status\" AS ENUM ('draft', 'published')",
        'ALTER TABLE "ext_shop"."order" ALTER COLUMN "state" DROP DEFAULT',
        'ALTER TABLE "ext_shop"."order" ALTER COLUMN "state" TYPE "ext_shop"."status" USING '
        '"state"::text::"ext_shop"."status"',
        'ALTER TABLE "ext_shop"."order" ALTER COLUMN "state" SET DEFAULT \'draft\'',
        'DROP TYPE "ext_shop"."status__old"',
    )
    assert rendered.foreign_keys_off is False


def test_render_enum_rollback_without_default_on_postgresql() -> None:
    data = spec_doc(enums=[STATUS], tables=[{"name": "t", "fields": [f("s", "Enum", enum="status"), f("x")]}])
    new = evolve(data, lambda d: d["enums"][0]["values"].append("archived"))
    rollback = render("postgresql", plan_of(data, new)).rollback
    assert not any("DEFAULT" in s for s in rollback)
    assert (
        'ALTER TABLE "ext_shop"."t" ALTER COLUMN "s" TYPE "ext_shop"."status" USING "s"::text::"ext_shop"."status"'
        in rollback
    )
    assert len(rollback) == 4


def test_render_enum_values_added_on_sqlite_rebuilds_the_tables() -> None:
    new = evolve(SHOP, lambda d: d["enums"][0]["values"].append("archived"))
    rendered = render("sqlite", plan_of(SHOP, new))
    assert rendered.foreign_keys_off is True
    sql = rendered.statements
    assert sql[0].startswith("CREATE TABLE ext_shop__order__rebuild (")
    assert "(\"state\" IN ('draft', 'published', 'archived'))" in sql[0]
    assert "UNIQUE (title, total)" not in sql[0]
    assert sql[1] == (
        'INSERT INTO "ext_shop__order__rebuild" ("id", "title", "state", "total", "code", "work_orders_id") '
        'SELECT s."id", s."title", s."state", s."total", s."code", s."work_orders_id" FROM "ext_shop__order" AS s'
    )
    # The id counter (AUTOINCREMENT) goes along: ids of rows deleted before the rebuild stay used.
    assert sql[2].startswith("UPDATE sqlite_sequence SET seq = max(seq, COALESCE((SELECT seq FROM sqlite_sequence ")
    assert sql[3].startswith("INSERT INTO sqlite_sequence (name, seq) SELECT 'ext_shop__order__rebuild', seq ")
    assert sql[4:6] == (
        'DROP TABLE "ext_shop__order"',
        'ALTER TABLE "ext_shop__order__rebuild" RENAME TO "ext_shop__order"',
    )
    assert plain(sql[6:]) == (
        "CREATE UNIQUE INDEX ext_shop__order_code_key ON ext_shop__order (code)",
        "CREATE INDEX ext_shop__order_work_orders_id_idx ON ext_shop__order (work_orders_id)",
        "CREATE UNIQUE INDEX ext_shop__order_title_total ON ext_shop__order (title, total)",
        "CREATE INDEX ext_shop__order_state_title_idx ON ext_shop__order (state, title)",
    )
    assert "(\"state\" IN ('draft', 'published'))" in rendered.rollback[0]


def test_sqlite_enum_change_without_tables_renders_nothing() -> None:
    data = spec_doc(enums=[{"name": "e", "values": ["a"]}], tables=[{"name": "t"}])
    rendered = render("sqlite", plan_of(data, evolve(data, lambda d: d["enums"][0].update(values=["a", "b"]))))
    assert rendered.statements == () and rendered.rollback == ()
    assert rendered.foreign_keys_off is False


def test_render_add_columns_on_postgresql() -> None:
    def change(d: Doc) -> None:
        d["tables"][1]["fields"] += [
            f("sku", unique=True),
            f("done", "Boolean", required=True, default=False),
            f("tagline", "Text", default="it's new"),
        ]

    rendered = render("postgresql", plan_of(SHOP, evolve(SHOP, change)))
    assert plain(rendered.statements) == (
        "ALTER TABLE ext_shop.line ADD COLUMN sku VARCHAR(255)",
        "CREATE UNIQUE INDEX line_sku_key ON ext_shop.line (sku)",
        "ALTER TABLE ext_shop.line ADD COLUMN done BOOLEAN DEFAULT false NOT NULL",
        "ALTER TABLE ext_shop.line ADD COLUMN tagline TEXT DEFAULT 'it''s new'",
    )
    # Each dropped column is first copied out with the row ids, the table locked first (nothing is
    # committed between the copy and the drop); named through an alias, a column gone fails the copy.
    lock = 'LOCK TABLE "ext_shop"."line" IN ACCESS EXCLUSIVE MODE'
    assert rendered.rollback == (
        lock,
        'CREATE TABLE "extschema_backup"."shop__line__tagline__t1" AS SELECT s."id", s."tagline" '
        'FROM "ext_shop"."line" AS s',
        'ALTER TABLE "ext_shop"."line" DROP COLUMN "tagline"',
        lock,
        'CREATE TABLE "extschema_backup"."shop__line__done__t1" AS SELECT s."id", s."done" FROM "ext_shop"."line" AS s',
        'ALTER TABLE "ext_shop"."line" DROP COLUMN "done"',
        lock,
        'CREATE TABLE "extschema_backup"."shop__line__sku__t1" AS SELECT s."id", s."sku" FROM "ext_shop"."line" AS s',
        'ALTER TABLE "ext_shop"."line" DROP COLUMN "sku"',
    )


def test_render_add_columns_on_sqlite() -> None:
    def change(d: Doc) -> None:
        d["tables"][1]["fields"] += [f("sku", unique=True), f("done", "Boolean", required=True, default=True)]

    rendered = render("sqlite", plan_of(SHOP, evolve(SHOP, change)))
    assert plain(rendered.statements) == (
        "ALTER TABLE ext_shop__line ADD COLUMN sku VARCHAR(255) CONSTRAINT ext_shop__line_sku_check CHECK "
        "((typeof(sku) IN ('text', 'null')) AND (length(sku) <= 255))",
        "CREATE UNIQUE INDEX ext_shop__line_sku_key ON ext_shop__line (sku)",
        "ALTER TABLE ext_shop__line ADD COLUMN done BOOLEAN DEFAULT 1 NOT NULL CONSTRAINT ext_shop__line_done_check "
        "CHECK (done IN (0, 1))",
    )
    # Dropping a column rebuilds the table on SQLite, after backing the column up; both columns'
    # drops make one rebuild, after both backups (each as the steps before it left the rows).
    rollback = rendered.rollback
    assert rollback[:2] == (
        'CREATE TABLE "extschema_backup__shop__line__done__t1" AS SELECT s."id", s."done" FROM "ext_shop__line" AS s',
        'CREATE TABLE "extschema_backup__shop__line__sku__t1" AS SELECT s."id", s."sku" FROM "ext_shop__line" AS s',
    )
    assert rollback[2].startswith("CREATE TABLE ext_shop__line__rebuild (")
    assert "done" not in rollback[2] and "sku" not in rollback[2]
    assert rollback[3] == (
        'INSERT INTO "ext_shop__line__rebuild" ("id", "qty", "order_id") '
        'SELECT s."id", s."qty", s."order_id" FROM "ext_shop__line" AS s'
    )
    assert [s.split(" ")[0] for s in rollback[4:6]] == ["UPDATE", "INSERT"]  # the id counter, into sqlite_sequence
    assert rollback[6:] == (
        'DROP TABLE "ext_shop__line"',
        'ALTER TABLE "ext_shop__line__rebuild" RENAME TO "ext_shop__line"',
        'CREATE INDEX "ext_shop__line_order_id_idx" ON "ext_shop__line" ("order_id")',
    )
    # Rebuilds need foreign keys off; the rollback has them, so the plan says so.
    assert rendered.foreign_keys_off is True


def test_render_add_fk_column_in_place_and_by_rebuild_on_sqlite() -> None:
    new = evolve(SHOP, lambda d: d["relationships"].append({"source": "line", "target": "core.work_orders"}))
    in_place = render("sqlite", plan_of(SHOP, new)).statements
    assert plain(in_place) == (
        "ALTER TABLE ext_shop__line ADD COLUMN work_orders_id INTEGER CONSTRAINT ext_shop__line_work_orders_id_check "
        "CHECK ((typeof(work_orders_id) IN ('integer', 'null')) AND (work_orders_id BETWEEN -2147483648 AND "
        "2147483647)) CONSTRAINT ext_shop__line_work_orders_id_fkey "
        "REFERENCES work_orders (id) ON DELETE RESTRICT",
        "CREATE INDEX ext_shop__line_work_orders_id_idx ON ext_shop__line (work_orders_id)",
    )
    pg = render("postgresql", plan_of(SHOP, new))
    assert plain(pg.statements) == (
        "ALTER TABLE ext_shop.line ADD COLUMN work_orders_id INTEGER",
        # On an existing table the key is added NOT VALID, then validated (no long ACCESS EXCLUSIVE scan).
        "ALTER TABLE ext_shop.line ADD CONSTRAINT line_work_orders_id_fkey FOREIGN KEY (work_orders_id) "
        "REFERENCES public.work_orders (id) ON DELETE RESTRICT NOT VALID",
        "ALTER TABLE ext_shop.line VALIDATE CONSTRAINT line_work_orders_id_fkey",
    )
    # The FK column's index on an existing table is built concurrently, after the transaction.
    assert plain(pg.after) == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS line_work_orders_id_idx ON ext_shop.line (work_orders_id)",
    )
    # A declared FK column with a default cannot be added with REFERENCES in place: rebuild.
    with_default = evolve(
        SHOP,
        lambda d: (
            d["tables"][1]["fields"].append(f("wo", "Int", required=True, default=1)),
            d["relationships"].append({"source": "line", "sourceField": "wo", "target": "core.work_orders"}),
        ),
    )
    rendered = render("sqlite", plan_of(SHOP, with_default))
    assert rendered.statements[0].startswith("CREATE TABLE ext_shop__line__rebuild (")
    assert "wo INTEGER DEFAULT 1 NOT NULL" in rendered.statements[0]
    assert rendered.statements[1] == (
        'INSERT INTO "ext_shop__line__rebuild" ("id", "qty", "order_id") '
        'SELECT s."id", s."qty", s."order_id" FROM "ext_shop__line" AS s'
    )
    assert rendered.foreign_keys_off is True


def test_render_new_index_and_constraint_in_both_dialects() -> None:
    def change(d: Doc) -> None:
        d["tables"][0]["indexes"].append({"fields": ["total"], "name": "by_total"})
        d["tables"][0]["uniqueConstraints"].append({"fields": ["code", "state"]})

    result = plan_of(SHOP, evolve(SHOP, change))
    pg = render("postgresql", result)
    # The unique index stays in the transaction; the plain one is built concurrently after it, and its
    # rollback must not fail when that build never ran.
    assert plain(pg.statements) == ("CREATE UNIQUE INDEX order_code_state_key ON ext_shop.order (code, state)",)
    assert plain(pg.after) == ("CREATE INDEX CONCURRENTLY IF NOT EXISTS by_total ON ext_shop.order (total)",)
    assert pg.rollback[0] == 'DROP INDEX IF EXISTS "ext_shop"."by_total"'
    on_empty = dialects.for_backend("postgresql").render_plan(result, "t1", populated=set())  # found empty
    assert plain(on_empty.statements) == (*plain(pg.statements), "CREATE INDEX by_total ON ext_shop.order (total)")
    assert on_empty.after == ()
    # A unique one may be a table constraint (written in CREATE TABLE) or an index (added later): either is dropped.
    assert 'DROP CONSTRAINT "order_code_state_key"; ELSE DROP INDEX "ext_shop"."order_code_state_key"' in pg.rollback[1]
    on_empty = dialects.for_backend("postgresql").render_plan(result, "t1", populated=set())  # found empty
    assert plain(on_empty.statements) == (*plain(pg.statements), "CREATE INDEX by_total ON ext_shop.order (total)")
    assert on_empty.after == ()
    lite = render("sqlite", result)
    assert plain(lite.statements) == (
        "CREATE UNIQUE INDEX ext_shop__order_code_state_key ON ext_shop__order (code, state)",
        "CREATE INDEX ext_shop__order_by_total ON ext_shop__order (total)",
    )
    assert lite.rollback == ('DROP INDEX "ext_shop__order_by_total"', 'DROP INDEX "ext_shop__order_code_state_key"')
    assert lite.foreign_keys_off is False


ALL_TYPES: Doc = spec_doc(
    tables=[
        {
            "name": "kinds",
            "fields": [
                f("s", "String"),
                f("t", "Text", validation={"maxLength": 10}),
                f("i", "Int"),
                f("b", "BigInt"),
                f("fl", "Float", validation={"min": 0.5}),
                f("ok", "Boolean", default=True),
                f("d", "Date"),
                f("at", "DateTime", default="now"),
                f("dec", "Decimal", precision=8, scale=3),
                f("j", "Json", default="x"),
                f("u", "Uuid"),
            ],
        }
    ]
)


def test_render_every_type_on_postgresql() -> None:
    (create,) = [s for s in render("postgresql", plan_of(None, ALL_TYPES)).statements if s.startswith("CREATE TABLE")]
    for fragment in (
        "s VARCHAR(255)",
        't TEXT CONSTRAINT kinds_t_check CHECK (char_length("t") <= 10)',
        "i INTEGER",
        "b BIGINT",
        'fl DOUBLE PRECISION CONSTRAINT kinds_fl_check CHECK ("fl" >= 0.5)',
        "ok BOOLEAN DEFAULT true",
        "d DATE",
        "at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP",
        "dec NUMERIC(8, 3)",
        "j JSONB DEFAULT '\"x\"'",
        "u UUID",
    ):
        assert fragment in create, fragment


def test_render_every_type_on_sqlite() -> None:
    (create,) = [s for s in render("sqlite", plan_of(None, ALL_TYPES)).statements if s.startswith("CREATE TABLE")]
    for fragment in (
        "(typeof(\"s\") IN ('text', 'null')) AND (length(\"s\") <= 255)",
        "(typeof(\"t\") IN ('text', 'null')) AND (length(\"t\") <= 10)",
        "typeof(\"i\") IN ('integer', 'null')",
        '"i" BETWEEN -2147483648 AND 2147483647',  # an SQLite integer holds 64 bits: Int's range is a CHECK
        "fl FLOAT CONSTRAINT ext_shop__kinds_fl_check CHECK ((typeof(\"fl\") IN ('real', 'integer', 'null')) "
        'AND ("fl" >= 0.5))',
        'ok BOOLEAN DEFAULT 1 CONSTRAINT ext_shop__kinds_ok_check CHECK ("ok" IN (0, 1))',
        "at DATETIME DEFAULT CURRENT_TIMESTAMP",
        "dec TEXT CONSTRAINT ext_shop__kinds_dec_check CHECK ((typeof(\"dec\") IN ('text', 'null')) AND ",
        "j TEXT DEFAULT '\"x\"' CONSTRAINT ext_shop__kinds_j_check CHECK ((typeof(\"j\") IN ('text', 'null')) "
        'AND ("j" IS NULL OR json_valid("j")))',
        "u VARCHAR(36) CONSTRAINT ext_shop__kinds_u_check CHECK ((typeof(\"u\") IN ('text', 'null')) "
        'AND (length("u") = 36))',
    ):
        assert fragment in create, fragment


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_render_many_to_many_join_table(backend: str) -> None:
    data = spec_doc(
        dependsOn=["kb"],
        tables=[{"name": "tag"}],
        relationships=[
            {"source": "tag", "target": "tag", "type": "ManyToMany", "onDelete": "Cascade"},
            {"source": "tag", "target": "kb.article", "type": "ManyToMany"},
        ],
    )
    sql = "\n".join(render(backend, plan_of(None, data)).statements)
    unquoted = sql.replace('"', "")
    if backend == "postgresql":
        assert "FOREIGN KEY(related_tag_id) REFERENCES ext_shop.tag (id) ON DELETE CASCADE" in sql
        assert "CONSTRAINT tag_tag_tag_id_related_tag_id_key UNIQUE (tag_id, related_tag_id)" in sql
        assert "FOREIGN KEY(article_id) REFERENCES ext_kb.article (id) ON DELETE RESTRICT" in sql
        assert "CREATE INDEX tag_tag_related_tag_id_idx ON ext_shop.tag_tag (related_tag_id)" in unquoted
        assert "tag_tag_tag_id_idx" not in sql
    else:
        assert "FOREIGN KEY(related_tag_id) REFERENCES ext_shop__tag (id) ON DELETE CASCADE" in sql
        assert "FOREIGN KEY(article_id) REFERENCES ext_kb__article (id) ON DELETE RESTRICT" in sql
        assert "CREATE INDEX ext_shop__tag_tag_related_tag_id_idx ON ext_shop__tag_tag (related_tag_id)" in unquoted
        assert "tag_tag_tag_id_idx" not in sql


def _sqlite() -> sqlite3.Connection:
    """An in-memory database set up as extschema sets up its own connections."""
    con = sqlite3.connect(":memory:")
    con.create_function("regexp", 2, lambda pattern, value: value is None or re.search(pattern, value) is not None)
    return con


def _run_sqlite(con: sqlite3.Connection, statements: tuple[str, ...]) -> None:
    for statement in statements:
        con.execute(statement)


def test_sqlite_rollbacks_after_a_rebuild_still_run() -> None:
    v1 = spec_doc(enums=[STATUS], tables=[{"name": "t", "fields": [f("title"), f("s", "Enum", enum="status")]}])
    v2 = evolve(v1, lambda d: d["tables"][0].update(uniqueConstraints=[{"fields": ["title", "s"]}]))
    v3 = evolve(v2, lambda d: d["tables"][0]["fields"].append(f("note", "Text")))
    migrations = [
        render("sqlite", plan_of(None, v1)),
        render("sqlite", plan_of(v1, v2)),
        render("sqlite", plan_of(v2, v3)),
    ]
    con = _sqlite()
    try:
        for migration in migrations:
            _run_sqlite(con, migration.statements)
        for migration in reversed(migrations):  # `extschema rollback` three times
            _run_sqlite(con, migration.rollback)
        assert con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ext_shop%'").fetchall() == []
    finally:
        con.close()
