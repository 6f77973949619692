"""Safe schema evolution, planning side (pure, no database): the full diff, renames, reverses,
classification and data checks, the versions rule.

Every plan here is replayed on a model of the schema (:class:`extschema.planning.state.State`):
it must lead from the old spec's schema to the new one's, and its reverse back — each operation
checking that the tables it says it starts from are the tables it finds. The dialect tests
render the same plans on real databases.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from extschema import model, planning
from extschema.planning import conversions, safety, versions
from extschema.planning.ops import (
    AlterColumn,
    ChangeEnumValues,
    CreateIndex,
    DropColumn,
    DropIndex,
    DropTable,
    Plan,
    RenameColumn,
    RenameEnumValue,
    RenameTable,
)
from extschema.planning.resolved import ColumnDef, ForeignKeyDef, TableDef
from extschema.planning.state import State
from extschema.problems import Problem, ProblemError
from extschema.validation import validate

Doc = dict[str, Any]

REFS: dict[tuple[str, str], dict[str, Any]] = {("core", "work_orders"): {"id": "Int"}}


def f(name: str, type_: str = "String", **extra: Any) -> Doc:
    return {"name": name, "type": type_, **extra}


BASE: Doc = {
    "pluginId": "shop",
    "version": "1.0.0",
    "enums": [{"name": "status", "values": ["draft", "live", "gone"]}],
    "tables": [
        {
            "name": "customer",
            "fields": [f("email", required=True, unique=True), f("nick", validation={"maxLength": 40})],
            "indexes": [{"fields": ["nick"]}],
        },
        {
            "name": "order",
            "fields": [
                f("title", required=True, default="?"),
                f("state", "Enum", enum="status", default="draft"),
                f("qty", "Int", validation={"min": 0}),
                f("note", "Text"),
                f("price", "Decimal", precision=10, scale=2),
            ],
            "indexes": [{"fields": ["state", "title"]}],
            "uniqueConstraints": [{"fields": ["title", "qty"], "name": "title_qty"}],
        },
        {"name": "tag", "fields": [f("label")]},
    ],
    "relationships": [
        {"source": "order", "target": "customer", "onDelete": "Cascade"},
        {"source": "order", "target": "core.work_orders"},
        {"source": "order", "target": "tag", "type": "ManyToMany"},
    ],
}


def spec(data: Doc) -> model.ExtensionSchemaSpec:
    return model.parse_spec(data)


def evolve(data: Doc, change: Any) -> Doc:
    """A deep copy of *data* changed by *change* (in place), with its minor version raised."""
    new = copy.deepcopy(data)
    change(new)
    major, minor, _patch = data["version"].split(".")
    new["version"] = f"{major}.{int(minor) + 1}.0"
    return new


def plan_of(old: Doc, new: Doc) -> Plan:
    return planning.plan(spec(old), spec(new), REFS)


def schema(data: Doc) -> State:
    return State.of(planning.resolve(spec(data), REFS))


def replayed(old: Doc, new: Doc) -> Plan:
    """The plan from *old* to *new*, checked to lead there and its reverse to lead back."""
    plan = plan_of(old, new)
    assert schema(old).apply_all(plan.ops).shape() == schema(new).shape()
    assert schema(new).apply_all(plan.reverse().ops).shape() == schema(old).shape()
    assert plan.reverse().reverse() == plan
    # The way back is the plan the other way, in effect: both reach the old schema (when the
    # policy supports that direction: Int -> Decimal is, Decimal -> Int is not — ES312; and when
    # nothing was renamed: the old spec does not declare the renames back).
    if any(isinstance(op, RenameTable | RenameColumn | RenameEnumValue) for op in plan.ops):
        return plan
    try:
        back = plan_of(new, {**old, "version": "9.0.0"})
    except ProblemError as error:
        assert {p.code for p in error.problems} == {"ES312"}, error
    else:
        assert schema(new).apply_all(back.ops).shape() == schema(old).shape()
    return plan


def table_of(data: Doc, name: str) -> TableDef:
    found = schema(data).table(name)
    assert found is not None
    return found


def kinds(plan: Plan) -> list[str]:
    return [op.KIND for op in plan.ops]


def refused(old: Doc, new: Doc) -> list[tuple[str, str]]:
    with pytest.raises(ProblemError) as info:
        plan_of(old, new)
    assert info.value.kind == "refused"
    return [(p.code, p.path) for p in info.value.problems]


# --- every kind of change, replayed both ways ----------------------------------------------------


def _pop_field(table: int, name: str) -> Any:
    def change(d: Doc) -> None:
        d["tables"][table]["fields"] = [x for x in d["tables"][table]["fields"] if x["name"] != name]
        for key in ("indexes", "uniqueConstraints"):
            d["tables"][table][key] = [i for i in d["tables"][table].get(key, []) if name not in i["fields"]]

    return change


def _set_field(table: int, name: str, **values: Any) -> Any:
    def change(d: Doc) -> None:
        for x in d["tables"][table]["fields"]:
            if x["name"] == name:
                for key, value in values.items():
                    if value is None:
                        x.pop(key, None)
                    else:
                        x[key] = value

    return change


def _drop_tag(d: Doc) -> None:
    d["tables"].pop(2)
    d["relationships"].pop(2)


def _many(*changes: Any) -> Any:
    def change(d: Doc) -> None:
        for c in changes:
            c(d)

    return change


CHANGES: dict[str, tuple[Any, list[str]]] = {
    "drop table": (_drop_tag, ["drop_table", "drop_table"]),
    "drop column": (_pop_field(1, "note"), ["drop_column"]),
    "drop column in an index": (_pop_field(1, "title"), ["drop_index", "drop_index", "drop_column"]),
    "drop relationship": (lambda d: d["relationships"].pop(0), ["drop_column"]),
    "rename table": (
        lambda d: (
            d["tables"][2].update(name="label", renamedFrom="tag") or d["relationships"][2].update(target="label")
        ),
        ["rename_table", "rename_table", "rename_column"],  # tag, its join table order_tag, order_tag.tag_id
    ),
    "rename column": (
        lambda d: (
            d["tables"][1]["fields"][0].update(name="headline", renamedFrom="title")
            or d["tables"][1].update(
                indexes=[{"fields": ["state", "headline"]}],
                uniqueConstraints=[{"fields": ["headline", "qty"], "name": "title_qty"}],
            )
        ),
        ["rename_column"],
    ),
    "String to Text": (_set_field(0, "nick", type="Text"), ["alter_column"]),
    "String narrowed": (_set_field(0, "nick", validation={"maxLength": 10}), ["alter_column"]),
    "Int to BigInt": (_set_field(1, "qty", type="BigInt"), ["alter_column"]),
    "Int to Decimal": (_set_field(1, "qty", type="Decimal", precision=12, scale=2), ["alter_column"]),
    "Decimal precision": (_set_field(1, "price", precision=8, scale=3), ["alter_column"]),
    "required": (_set_field(0, "nick", required=True), ["alter_column"]),
    "not required": (_set_field(0, "email", required=False), ["alter_column"]),
    "default": (_set_field(1, "title", default="untitled"), ["alter_column"]),
    "rule added": (_set_field(1, "note", validation={"pattern": "^[a-z]*$"}), ["alter_column"]),
    "rule dropped": (_set_field(1, "qty", validation=None), ["alter_column"]),
    "unique": (_set_field(0, "nick", unique=True), ["alter_column"]),
    "on delete": (lambda d: d["relationships"][0].update(onDelete="Restrict"), ["alter_column"]),
    "index dropped": (lambda d: d["tables"][0].update(indexes=[]), ["drop_index"]),
    "constraint dropped": (lambda d: d["tables"][1].update(uniqueConstraints=[]), ["drop_index"]),
    "index changed": (
        lambda d: d["tables"][1].update(indexes=[{"fields": ["title", "state"]}]),
        ["drop_index", "create_index"],
    ),
    "enum values removed": (
        lambda d: d["enums"][0].update(values=["draft", "live"]),
        ["change_enum_values"],
    ),
    "enum value renamed": (
        lambda d: d["enums"][0].update(values=["draft", "on", "gone"], renamedValues={"live": "on"}),
        ["rename_enum_value"],
    ),
    "enum removed": (
        lambda d: d["enums"].clear() or _set_field(1, "state", type="String", enum=None, default=None)(d),
        ["alter_column", "drop_enum"],
    ),
    "enum switched": (
        lambda d: (
            d["enums"].append({"name": "phase", "values": ["draft", "done"]}) or _set_field(1, "state", enum="phase")(d)
        ),
        ["create_enum", "alter_column"],
    ),
    "values added and removed": (
        lambda d: d["enums"][0].update(values=["new", "draft", "gone", "late"]),
        ["change_enum_values", "change_enum_values"],
    ),
    "everything at once": (
        _many(
            _drop_tag,
            _pop_field(1, "note"),
            lambda d: d["tables"][0].update(name="client", renamedFrom="customer"),
            lambda d: d["relationships"][0].update(target="client", sourceField="customer_id"),
            _set_field(1, "qty", type="BigInt", required=True, default=0),
            lambda d: d["enums"][0].update(values=["draft", "on"], renamedValues={"live": "on"}),
            lambda d: d["tables"][1]["fields"].append(f("extra", "Boolean", default=False)),
        ),
        None,
    ),
}


@pytest.mark.parametrize(("change", "expected"), list(CHANGES.values()), ids=list(CHANGES))
def test_each_change_is_planned_and_its_reverse_restores_the_schema(change: Any, expected: list[str] | None) -> None:
    new = evolve(BASE, change)
    assert validate(spec(new)) == []
    plan = replayed(BASE, new)
    if expected is not None:
        assert kinds(plan) == expected


def test_plan_order_renames_first_additions_then_changes_then_drops() -> None:
    new = evolve(BASE, CHANGES["everything at once"][0])
    assert kinds(plan_of(BASE, new)) == [
        "rename_table",
        "rename_enum_value",
        "alter_column",  # qty Int -> BigInt, required
        "add_column",
        "drop_column",  # order.note
        "drop_table",  # the join table order_tag first: it references tag
        "drop_table",
        "change_enum_values",  # gone removed
    ]


# --- renames ------------------------------------------------------------------------------------


def test_rename_table_keeps_the_rows_and_retargets_foreign_keys() -> None:
    new = evolve(BASE, lambda d: d["tables"][0].update(name="client", renamedFrom="customer"))
    new["relationships"][0]["target"] = "client"
    new["relationships"][0]["sourceField"] = "customer_id"
    plan = replayed(BASE, new)
    (op,) = plan.ops
    assert isinstance(op, RenameTable)
    assert (op.before.name, op.after.name) == ("customer", "client")
    assert op.after.columns == op.before.columns
    assert op.describe() == "rename table customer to client"


def test_rename_of_a_referenced_column_updates_its_self_reference_and_indexes() -> None:
    data = evolve(
        BASE,
        lambda d: (
            d["relationships"].append({"source": "tag", "target": "tag", "sourceField": "parent_label"})
            or d["tables"][2]["fields"].append(f("parent_label"))
        ),
    )
    data["relationships"][-1]["targetField"] = "label"
    data["tables"][2]["fields"][0]["unique"] = True
    new = evolve(data, lambda d: d["tables"][2]["fields"][0].update(name="name", renamedFrom="label"))
    new["relationships"][-1]["targetField"] = "name"
    plan = replayed(data, new)
    (op,) = plan.ops
    assert isinstance(op, RenameColumn)
    parent = op.after.column("parent_label")
    assert parent is not None and parent.foreign_key is not None
    assert parent.foreign_key.column == "name"


def test_applied_rename_is_ignored_and_may_stay_in_the_spec() -> None:
    v2 = evolve(BASE, lambda d: d["tables"][2].update(name="label", renamedFrom="tag"))
    v2["relationships"][2]["target"] = "label"
    v3 = evolve(v2, lambda d: d["tables"][2]["fields"].append(f("color")))
    assert kinds(replayed(v2, v3)) == ["add_column"]


def test_renamed_field_and_table_together() -> None:
    def change(d: Doc) -> None:
        d["tables"][0].update(name="client", renamedFrom="customer")
        d["tables"][0]["fields"][1].update(name="alias", renamedFrom="nick")
        d["tables"][0]["indexes"] = [{"fields": ["alias"]}]
        d["relationships"][0].update(target="client", sourceField="customer_id")

    plan = replayed(BASE, evolve(BASE, change))
    assert plan.describe() == ["rename table customer to client", "rename column client.nick to alias"]


def test_enum_value_rename_updates_defaults_and_is_ignored_once_applied() -> None:
    v2 = evolve(BASE, lambda d: d["enums"][0].update(values=["new", "live", "gone"], renamedValues={"draft": "new"}))
    v2["tables"][1]["fields"][1]["default"] = "new"
    plan = replayed(BASE, v2)
    (op,) = plan.ops
    assert isinstance(op, RenameEnumValue)
    ((_before, after),) = op.tables
    state = after.column("state")
    assert state is not None and state.default == "new"
    assert op.reverse().describe() == "rename value new of enum status to draft"
    v3 = evolve(v2, lambda d: d["tables"][2]["fields"].append(f("color")))
    assert kinds(replayed(v2, v3)) == ["add_column"]


def test_renamed_values_or_localization_kept_from_an_earlier_version_do_not_change_columns() -> None:
    v2 = evolve(
        BASE,
        lambda d: d["enums"][0].update(
            values=["new", "live", "gone"], renamedValues={"draft": "new"}, localization={"de": {"new": "Neu"}}
        ),
    )
    v2["tables"][1]["fields"][1]["default"] = "new"
    v3 = evolve(v2, lambda d: d["enums"][0].update(renamedValues={}, localization={"de": {"new": "Frisch"}}))
    assert plan_of(v2, v3).ops == ()


# --- refusals -----------------------------------------------------------------------------------


def test_same_version_with_another_schema_is_es310() -> None:
    new = evolve(BASE, _pop_field(1, "note"))
    new["version"] = "1.0.0+build.7"
    assert refused(BASE, new) == [("ES310", "spec.version")]
    with pytest.raises(ProblemError) as info:
        plan_of(BASE, new)
    assert "raise spec.version (e.g. to 1.1.0)" in info.value.problems[0].message


def test_same_version_with_the_same_schema_or_only_operational_changes_is_fine() -> None:
    same = copy.deepcopy(BASE)
    same["approvedPlanHash"] = "0123456789abcdef"
    same["driftPolicy"] = "Repair"
    assert plan_of(BASE, same).ops == ()


def test_lower_version_is_planned_like_any_change() -> None:
    newer = evolve(BASE, _pop_field(1, "note"))
    older = {**BASE, "version": "0.9.0"}
    assert kinds(plan_of(newer, older)) == ["add_column"]


@pytest.mark.parametrize(
    ("field", "new_type", "extra"),
    [
        ("qty", "Boolean", {}),
        ("qty", "Text", {}),
        ("note", "Int", {}),
        ("price", "Float", {}),
        ("price", "Int", {}),
        ("email", "Date", {}),
    ],
)
def test_type_changes_without_a_sure_conversion_are_es312(field: str, new_type: str, extra: Doc) -> None:
    table = 0 if field == "email" else 1

    def change(d: Doc) -> None:
        _set_field(table, field, type=new_type, validation=None, precision=None, scale=None, **extra)(d)

    assert refused(BASE, evolve(BASE, change)) == [("ES312", f"spec.tables[{table}].fields[{_position(table, field)}]")]


def _position(table: int, field: str) -> int:
    return [x["name"] for x in BASE["tables"][table]["fields"]].index(field)


def test_reordering_enum_values_is_es301() -> None:
    assert refused(BASE, evolve(BASE, lambda d: d["enums"][0].update(values=["live", "draft", "gone"]))) == [
        ("ES301", "spec.enums[0].values")
    ]


# --- classification and data checks --------------------------------------------------------------


def classified(old: Doc, new: Doc) -> list[safety.Classified]:
    return safety.classify_plan(plan_of(old, new))


@pytest.mark.parametrize(
    ("change", "op_class", "check_kind"),
    [
        ("drop table", "destructive", "rows_lost"),
        ("drop column", "destructive", "values_lost"),
        ("rename table", "safe", None),
        ("rename column", "safe", None),
        ("String to Text", "safe", None),
        ("String narrowed", "destructive", "rows_violating"),
        ("Int to BigInt", "rewriting", None),
        ("Int to Decimal", "rewriting", None),
        ("Decimal precision", "destructive", "rows_violating"),
        ("required", "destructive", "rows_violating"),
        ("not required", "safe", None),
        ("default", "safe", None),
        ("rule added", "destructive", "rows_violating"),
        ("rule dropped", "safe", None),
        ("unique", "destructive", "rows_violating"),
        ("on delete", "safe", None),
        ("index dropped", "safe", None),
        ("enum values removed", "destructive", "rows_violating"),
        ("enum value renamed", "safe", None),
        ("enum switched", "destructive", "rows_violating"),
    ],
)
def test_classes_and_checks(change: str, op_class: str, check_kind: str | None) -> None:
    found = classified(BASE, evolve(BASE, CHANGES[change][0]))
    worst = safety.plan_class(found)
    assert worst == op_class
    checks = [c for item in found for c in item.checks]
    assert [c.kind for c in checks][:1] == ([check_kind] if check_kind else [])
    for item in found:
        assert item.reason
        if item.op_class == "destructive":
            assert item.checks, item


def test_narrowing_check_carries_the_column_before_and_after() -> None:
    (item,) = classified(BASE, evolve(BASE, CHANGES["String narrowed"][0]))
    assert item.check == safety.DataCheck(
        "rows_violating",
        "customer",
        "nick",
        ColumnDef("nick", "String", max_length=40),
        ColumnDef("nick", "String", max_length=10),
    )
    assert "at most 10 characters" in item.reason


def test_checks_name_tables_and_columns_as_they_are_before_the_plan() -> None:
    def change(d: Doc) -> None:
        d["tables"][1].update(name="purchase", renamedFrom="order")
        d["tables"][1]["fields"][3].update(name="remark", renamedFrom="note", validation={"maxLength": 5})
        d["relationships"][0]["source"] = "purchase"
        d["relationships"][0]["sourceField"] = "customer_id"
        d["relationships"][1]["source"] = "purchase"
        d["relationships"][1]["sourceField"] = "work_orders_id"
        d["relationships"][2].update(source="purchase", name="order_tag")

    found = classified(BASE, evolve(BASE, change))
    (narrowed,) = [c for c in found if isinstance(c.op, AlterColumn)]
    assert narrowed.op.before.name == "purchase"
    assert narrowed.check is not None
    assert (narrowed.check.table, narrowed.check.column) == ("order", "note")


def test_join_table_keeps_its_name_and_columns_when_its_source_is_renamed() -> None:
    def change(d: Doc) -> None:
        d["tables"][1].update(name="purchase", renamedFrom="order")
        for rel in d["relationships"]:
            rel["source"] = "purchase"
        d["relationships"][0]["sourceField"] = "customer_id"
        d["relationships"][1]["sourceField"] = "work_orders_id"
        d["relationships"][2]["name"] = "order_tag"

    plan = replayed(BASE, evolve(BASE, change))
    assert [op.describe() for op in plan.ops][:1] == ["rename table order to purchase"]
    assert not any(isinstance(op, DropTable | DropColumn) for op in plan.ops), plan.describe()


def test_checks_on_tables_or_columns_the_plan_creates_are_left_out() -> None:
    def change(d: Doc) -> None:
        d["tables"].append({"name": "box", "fields": [f("code")], "indexes": [{"fields": ["code"], "unique": True}]})
        d["tables"][2]["fields"].append(f("color", default="red"))
        d["tables"][2]["uniqueConstraints"] = [{"fields": ["label", "color"]}]

    found = classified(BASE, evolve(BASE, change))
    by_kind = {(c.op.KIND, getattr(c.op, "table", None)): c for c in found}
    box = by_kind[("create_index", "box")]
    assert (box.op_class, box.checks) == ("safe", ())
    tag = by_kind[("create_index", "tag")]
    assert tag.op_class == "destructive"
    assert tag.checks == ()


def test_unique_index_on_an_existing_table_counts_duplicates() -> None:
    new = evolve(BASE, lambda d: d["tables"][2].update(indexes=[{"fields": ["label"], "unique": True}]))
    (item,) = classified(BASE, new)
    assert isinstance(item.op, CreateIndex)
    assert item.check == safety.DataCheck("rows_duplicated", "tag", columns=("label",))


def test_enum_value_removal_checks_every_column_of_the_enum() -> None:
    data = evolve(BASE, lambda d: d["tables"][2]["fields"].append(f("phase", "Enum", enum="status")))
    (item,) = classified(data, evolve(data, CHANGES["enum values removed"][0]))
    assert isinstance(item.op, ChangeEnumValues)
    assert [(c.kind, c.table, c.column) for c in item.checks] == [
        ("rows_violating", "order", "state"),
        ("rows_violating", "tag", "phase"),
    ]
    for check in item.checks:
        assert check.after is not None and check.after.enum is not None
        assert check.after.enum.values == ["draft", "live"]


def test_every_op_kind_is_classified() -> None:
    t = TableDef("t", (ColumnDef("a", "Int"),))
    fk = ForeignKeyDef(model.TargetRef(plugin="p", table="u"), "id", "Cascade")
    t2 = TableDef("t", (ColumnDef("a", "Int", foreign_key=fk),))
    samples: list[planning.Op] = [
        planning.CreatePluginNamespace("p"),
        planning.DropPluginNamespace("p"),
        planning.CreateTable("p", t),
        DropTable("p", t),
        planning.AddColumn("p", TableDef("t", ()), t, t.columns[0]),
        DropColumn("p", t, TableDef("t", ()), t.columns[0]),
        CreateIndex("p", "t", planning.IndexDef(("a",))),
        DropIndex("p", "t", planning.IndexDef(("a",))),
        RenameTable("p", t, TableDef("u", t.columns)),
        RenameColumn("p", t, TableDef("t", (ColumnDef("b", "Int"),)), "a", "b"),
        AlterColumn("p", t, t2, t.columns[0], t2.columns[0]),
        planning.RunSql("p", "0001", "SELECT 1", "SELECT 2"),
    ]
    for op in samples:
        item = safety.classify(op)
        assert item.op_class in safety.SEVERITY and item.reason
        if item.op_class == "destructive":
            assert item.checks
    fk_added = safety.classify(samples[10])
    assert fk_added.op_class == "destructive"
    assert "references p.u.id" in fk_added.reason
    # Reverses of supported changes may convert the other way: still classified, never crash.
    back = safety.classify(AlterColumn("p", t, t, ColumnDef("a", "Float"), ColumnDef("a", "Int")))
    assert back.op_class == "destructive" and back.check is not None


@pytest.mark.parametrize(
    ("before", "after", "expected", "narrow"),
    [
        (ColumnDef("a", "String", max_length=50), ColumnDef("a", "String", max_length=100), "safe", False),
        (ColumnDef("a", "String", max_length=100), ColumnDef("a", "String", max_length=50), "safe", True),
        (ColumnDef("a", "String"), ColumnDef("a", "Text"), "safe", False),
        (ColumnDef("a", "Text"), ColumnDef("a", "String"), "safe", True),
        (ColumnDef("a", "Int"), ColumnDef("a", "BigInt"), "rewriting", False),
        (ColumnDef("a", "BigInt"), ColumnDef("a", "Int"), "rewriting", True),
        (ColumnDef("a", "Int"), ColumnDef("a", "Decimal", precision=10, scale=0), "rewriting", False),
        (ColumnDef("a", "Int"), ColumnDef("a", "Decimal", precision=8, scale=2), "rewriting", True),
        (ColumnDef("a", "BigInt"), ColumnDef("a", "Decimal", precision=18, scale=2), "rewriting", True),
        (ColumnDef("a", "Int"), ColumnDef("a", "Float"), "rewriting", False),
        (ColumnDef("a", "BigInt"), ColumnDef("a", "Float"), "rewriting", True),
        (
            ColumnDef("a", "Decimal", precision=10, scale=2),
            ColumnDef("a", "Decimal", precision=12, scale=2),
            "safe",
            False,
        ),
        (
            ColumnDef("a", "Decimal", precision=10, scale=2),
            ColumnDef("a", "Decimal", precision=12, scale=4),
            "rewriting",
            False,
        ),
        (
            ColumnDef("a", "Decimal", precision=10, scale=2),
            ColumnDef("a", "Decimal", precision=10, scale=1),
            "rewriting",
            True,
        ),
        (
            ColumnDef("a", "Enum", enum=model.EnumSpec(name="e", values=["abc"])),
            ColumnDef("a", "String", max_length=2),
            "rewriting",
            True,
        ),
        (
            ColumnDef("a", "Enum", enum=model.EnumSpec(name="e", values=["abc"])),
            ColumnDef("a", "Text"),
            "rewriting",
            False,
        ),
        (
            ColumnDef("a", "Text"),
            ColumnDef("a", "Enum", enum=model.EnumSpec(name="e", values=["abc"])),
            "rewriting",
            True,
        ),
        (ColumnDef("a", "Float"), ColumnDef("a", "Decimal", precision=10, scale=2), None, None),
        (ColumnDef("a", "Date"), ColumnDef("a", "DateTime"), None, None),
        (ColumnDef("a", "Boolean"), ColumnDef("a", "Text"), None, None),
    ],
)
def test_conversion_matrix(before: ColumnDef, after: ColumnDef, expected: str | None, narrow: bool | None) -> None:
    assert conversions.type_change(before, after) == expected
    if narrow is not None:
        assert bool(conversions.narrowing(before, after)) is narrow


# --- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0.0", "1.0.0", 0),
        ("1.0.0", "1.0.1", -1),
        ("1.10.0", "1.9.0", 1),
        ("2.0.0", "10.0.0", -1),
        ("1.0.0-alpha", "1.0.0", -1),
        ("1.0.0-alpha", "1.0.0-alpha.1", -1),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta", -1),
        ("1.0.0-beta.2", "1.0.0-beta.11", -1),
        ("1.0.0-rc.1", "1.0.0-beta.11", 1),
        ("1.0.0+a", "1.0.0+b", 0),
    ],
)
def test_versions_compare_in_semver_order(a: str, b: str, expected: int) -> None:
    assert versions.compare(a, b) == expected
    assert versions.compare(b, a) == -expected


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "1.0.0-", "1.0.0-a..b", "1.x.0"])
def test_versions_compare_refuses_what_is_not_a_version(bad: str) -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        versions.compare(bad, "1.0.0")


# --- validation of renames -----------------------------------------------------------------------


def problems_of(data: Doc) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in validate(spec(data))]


def test_valid_renames_pass_validation() -> None:
    def change(d: Doc) -> None:
        d["tables"][2].update(name="label", renamedFrom="tag")
        d["tables"][0]["fields"][1].update(name="alias", renamedFrom="nick")
        d["tables"][0]["indexes"] = [{"fields": ["alias"]}]
        d["relationships"][2]["target"] = "label"
        d["enums"][0].update(values=["draft", "on", "gone"], renamedValues={"live": "on"})

    assert problems_of(evolve(BASE, change)) == []


def test_rename_problems_are_located() -> None:
    def change(d: Doc) -> None:
        d["tables"][0]["fields"][0]["renamedFrom"] = "email"
        d["enums"][0]["renamedValues"] = {"draft": "draft"}

    problems = validate(spec(evolve(BASE, change)))
    assert [(p.code, p.path) for p in problems] == [
        ("ES127", "spec.tables[0].fields[0].renamedFrom"),
        ("ES128", "spec.enums[0].renamedValues.draft"),
    ]
    assert all(isinstance(p, Problem) and p.message.endswith(".") for p in problems)
