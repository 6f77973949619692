"""The planning package's parts: the resolved-schema cache, the ops' serialised form, changes and policy."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import os
import re
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from extschema import model, planning
from extschema.model import EnumSpec, TargetRef
from extschema.planning import changes, diff, ops, policy, resolved
from extschema.planning.resolved import ColumnDef, ForeignKeyDef, IndexDef, TableDef
from extschema.problems import Problem, ProblemError

Doc = dict[str, Any]
GOLDEN = Path(__file__).parent / "golden" / "plan.json"

REFS: dict[tuple[str, str], dict[str, Any]] = {
    ("core", "work_orders"): {"id": "Int", "number": "String"},
    ("kb", "article"): {"id": "BigInt", "key": "Uuid"},
}

SHOP: Doc = {
    "pluginId": "shop",
    "version": "1.0.0",
    "dependsOn": ["kb"],
    "enums": [{"name": "status", "values": ["draft", "published"], "localization": {"fr": {"draft": "brouillon"}}}],
    "tables": [
        {
            "name": "order",
            "fields": [
                {"name": "title", "type": "String", "required": True, "validation": {"maxLength": 80}},
                {"name": "state", "type": "Enum", "enum": "status", "required": True, "default": "draft"},
                {"name": "total", "type": "Decimal", "default": 0.5},
                {"name": "code", "type": "String", "unique": True, "validation": {"pattern": "^[A-Z]+$"}},
            ],
            "indexes": [{"fields": ["state", "title"]}],
            "uniqueConstraints": [{"fields": ["title", "total"], "name": "title_total"}],
        },
        {"name": "line", "fields": [{"name": "qty", "type": "Int", "validation": {"min": 0, "max": 99}}]},
    ],
    "relationships": [
        {"source": "line", "target": "order", "onDelete": "Cascade"},
        {"source": "order", "target": "core.work_orders"},
        {"source": "order", "target": "kb.article", "type": "ManyToMany", "targetField": "key"},
    ],
}


def parse(data: Doc) -> model.ExtensionSchemaSpec:
    return model.parse_spec(data)


def grown_shop() -> Doc:
    """SHOP with one of every additive change."""
    new = copy.deepcopy(SHOP)
    new["version"] = "1.1.0"
    new["enums"][0]["values"].append("archived")
    new["enums"].append({"name": "size", "values": ["s", "m"]})
    new["tables"][0]["fields"].append({"name": "note", "type": "Text", "description": "free text"})
    new["tables"][0]["indexes"].append({"fields": ["code", "title"], "unique": True, "name": "code_title"})
    new["tables"][1]["uniqueConstraints"] = [{"fields": ["qty"]}]
    new["tables"].append({"name": "box", "fields": [{"name": "size", "type": "Enum", "enum": "size"}]})
    return new


def update_plan() -> ops.Plan:
    return planning.plan(parse(SHOP), parse(grown_shop()), REFS)


# --- resolved schema ----------------------------------------------------------------------------


def test_resolve_is_computed_once_per_spec_object_and_types_looked_up() -> None:
    spec = parse(SHOP)
    first = planning.resolve(spec, REFS)
    assert planning.resolve(spec, REFS) is first
    # Another mapping with the same types gives the same result, whatever its identity.
    assert planning.resolve(spec, copy.deepcopy(REFS)) is first
    # An equal spec is another object: resolved again, to an equal result.
    other = planning.resolve(parse(SHOP), REFS)
    assert other is not first and other == first


def test_resolve_follows_the_reference_types_even_when_refs_is_mutated() -> None:
    spec = parse(SHOP)
    refs = copy.deepcopy(REFS)
    order = planning.resolve(spec, refs).table("order")
    assert order is not None and order.column("work_orders_id") == ColumnDef(
        "work_orders_id",
        "Int",
        foreign_key=ForeignKeyDef(TargetRef(plugin="core", table="work_orders"), "id", "Restrict"),
    )
    refs[("core", "work_orders")]["id"] = "BigInt"  # same object, other content
    order = planning.resolve(spec, refs).table("order")
    assert order is not None and (column := order.column("work_orders_id")) is not None
    assert column.type == "BigInt"
    join = planning.resolve(spec, {**REFS, ("kb", "article"): {"key": "String"}}).table("order_article")
    assert join is not None and [(c.name, c.type) for c in join.columns] == [
        ("order_id", "BigInt"),
        ("article_id", "String"),
    ]


def test_shape_types_outside_references_as_the_key_and_never_fails_on_them() -> None:
    spec = parse(SHOP)
    shaped = planning.shape(spec)
    assert planning.shape(spec) is shaped
    order, join = shaped.table("order"), shaped.table("order_article")
    assert order is not None and join is not None
    assert (column := order.column("work_orders_id")) is not None and column.type == planning.ID_TYPE
    assert [c.type for c in join.columns] == ["BigInt", "BigInt"]
    with pytest.raises(ProblemError):
        planning.resolve(spec, {})  # the same spec with real (missing) types does fail
    assert [t.name for t in shaped.tables] == [t.name for t in planning.resolve(spec, REFS).tables]


def test_first_failing_reference_is_reported_in_relationship_order() -> None:
    data = {
        "pluginId": "shop",
        "version": "1.0.0",
        "tables": [{"name": "a"}],
        "relationships": [
            {"source": "a", "target": "core.missing"},
            {"source": "a", "target": "a", "targetField": "ghost", "sourceField": "own_id"},
        ],
    }
    with pytest.raises(ProblemError) as info:
        planning.resolve(parse(data), REFS)
    assert [p.path for p in info.value.problems] == ["spec.relationships[0]"]
    with pytest.raises(ProblemError) as info:
        planning.shape(parse(data))  # outside references are not checked; own ones are
    assert [p.path for p in info.value.problems] == ["spec.relationships[1]"]


def test_the_cache_does_not_keep_specs_alive() -> None:
    gc.collect()
    before = resolved.cached_specs()
    specs = [parse({**SHOP, "version": f"1.0.{i}"}) for i in range(5)]
    for spec in specs:
        planning.resolve(spec, REFS)
    assert resolved.cached_specs() == before + 5
    del spec
    specs.clear()
    gc.collect()
    assert resolved.cached_specs() == before


def test_a_dead_specs_callback_leaves_a_newer_entry_with_its_id_alone() -> None:
    spec = parse(SHOP)
    planning.resolve(spec, REFS)
    key = id(spec)
    keeper = parse(SHOP)  # stands for a newer object that got the same id before the callback ran
    newer = (weakref.ref(keeper), resolved._Entry(keeper))
    own = resolved._CACHE[key]  # its weak reference must live on for the callback to run
    resolved._CACHE[key] = newer
    del spec
    gc.collect()
    assert own[0]() is None
    assert resolved._CACHE.get(key) is newer
    del resolved._CACHE[key]


def test_a_plan_resolves_each_spec_once(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[str] = []
    real_build = resolved._build

    def counting(spec: model.ExtensionSchemaSpec, *args: Any) -> planning.Resolved:
        builds.append(spec.version)
        return real_build(spec, *args)

    monkeypatch.setattr(resolved, "_build", counting)
    old, new = parse(SHOP), parse(grown_shop())
    planning.plan(old, new, REFS)
    assert sorted(builds) == ["1.0.0", "1.1.0"]
    planning.plan(old, new, REFS)
    planning.teardown(new, REFS)
    assert len(builds) == 2


def test_resolved_knows_relationships_and_origins() -> None:
    state = planning.resolve(parse(SHOP), REFS)
    assert [(fk.table, fk.column) for fk in state.references()] == [
        ("line", "order_id"),
        ("order", "work_orders_id"),
        ("order_article", "order_id"),
        ("order_article", "article_id"),
    ]
    origins = state.origins
    assert origins.table("order") == "spec.tables[0]"
    assert origins.table("order_article") == "spec.relationships[2]"
    assert origins.table("unknown") == "spec.relationships"
    assert origins.column("order", "code") == "spec.tables[0].fields[3]"
    assert origins.column("line", "order_id") == "spec.relationships[0]"
    assert origins.column("order", "gone") == "spec.tables[0].fields"
    assert origins.column("order_article", "article_id") == "spec.relationships[2]"


# --- serialised form ----------------------------------------------------------------------------


def _sample_ops() -> list[ops.Op]:
    """One operation of every kind, with rich content (enum labels, FKs, defaults, None, floats)."""
    state = planning.resolve(parse(SHOP), REFS)
    order, line = state.table("order"), state.table("line")
    assert order is not None and line is not None
    status = state.enums[0]
    grown = EnumSpec(name="status", values=[*status.values, "archived"], localization=status.localization)
    note = ColumnDef("note", "Text", default="", max_length=10)
    with_note = dataclasses.replace(line, columns=(*line.columns, note))
    index = IndexDef(("code", "title"), True, "code_title")
    renamed = dataclasses.replace(note, name="remark")
    longer = dataclasses.replace(note, type="String", max_length=200, nullable=False)
    renamed_values = ["opened", *status.values[1:]]
    renamed_enum = EnumSpec(name="status", values=renamed_values, renamedValues={status.values[0]: "opened"})
    return [
        ops.CreatePluginNamespace("shop"),
        ops.DropPluginNamespace("shop"),
        ops.CreateEnum("shop", status),
        ops.DropEnum("shop", status),
        ops.ChangeEnumValues("shop", status, grown, ((order, order.with_enum(grown)),)),
        ops.CreateTable("shop", order),
        ops.DropTable("shop", line),
        ops.AddColumn("shop", line, with_note, note),
        ops.DropColumn("shop", with_note, line, note),
        ops.CreateIndex("shop", "order", index),
        ops.DropIndex("shop", "order", IndexDef(("state",))),
        ops.RenameTable("shop", line, dataclasses.replace(line, name="order_line")),
        ops.RenameColumn(
            "shop", with_note, dataclasses.replace(with_note, columns=(*line.columns, renamed)), "note", "remark"
        ),
        ops.AlterColumn(
            "shop", with_note, dataclasses.replace(with_note, columns=(*line.columns, longer)), note, longer
        ),
        ops.RenameEnumValue(
            "shop", status, renamed_enum, status.values[0], "opened", ((order, order.with_enum(renamed_enum)),)
        ),
        ops.RunSql("shop", "0001_backfill", "UPDATE x SET y = 'it''s'", "UPDATE x SET y = NULL"),
        ops.EnforceIntRange("shop", line, ("qty",)),
        ops.EnforceIntRange("shop", line, ("qty",), enforced=False),
    ]


def test_samples_cover_every_operation_kind() -> None:
    def subclasses(cls: type[ops.Op]) -> set[type[ops.Op]]:
        return {c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))}

    concrete = {cls for cls in subclasses(ops.Op) if not cls.__name__.startswith("_")}
    assert {type(op) for op in _sample_ops()} == concrete == set(ops.KINDS.values())
    assert all(kind == cls.KIND for kind, cls in ops.KINDS.items())


@pytest.mark.parametrize("op", _sample_ops(), ids=lambda op: type(op).__name__)
def test_every_operation_round_trips_through_its_serialised_form(op: ops.Op) -> None:
    data = op.to_dict()
    assert data["kind"] == type(op).KIND
    # JSON values only: the text reads back to the same dict.
    assert json.loads(ops.canonical_json(data)) == data
    assert ops.from_dict(data) == op
    assert ops.from_dict(json.loads(json.dumps(data))) == op
    assert op.reverse().reverse().to_dict() == data
    assert op.reverse().to_dict() != data


def _keys_sorted(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(_keys_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_sorted(v) for v in value)
    return True


def test_serialised_form_is_sorted_and_leaves_defaults_out() -> None:
    for op in _sample_ops():
        assert _keys_sorted(op.to_dict())
    plain = ops.CreateIndex("p", "t", IndexDef(("a",)))
    assert plain.to_dict() == {"index": {"columns": ["a"]}, "kind": "create_index", "plugin_id": "p", "table": "t"}
    column = ops.AddColumn("p", TableDef("t", ()), TableDef("t", ()), ColumnDef("c", "Int", default=0, nullable=False))
    assert column.to_dict()["column"] == {"default": 0, "name": "c", "nullable": False, "type": "Int"}


def test_serialised_form_does_not_depend_on_dict_order() -> None:
    one = EnumSpec(name="e", values=["a", "b"], localization={"fr": {"a": "A", "b": "B"}, "de": {"b": "Be"}})
    two = EnumSpec(name="e", values=["a", "b"], localization={"de": {"b": "Be"}, "fr": {"b": "B", "a": "A"}})
    assert ops.canonical_json(ops.CreateEnum("p", one).to_dict()) == ops.canonical_json(
        ops.CreateEnum("p", two).to_dict()
    )
    assert list(ops.CreateEnum("p", two).to_dict()["enum"]["localization"]) == ["de", "fr"]


def test_plan_round_trips_and_rejects_other_forms() -> None:
    plan = update_plan()
    data = plan.to_dict()
    assert data["format"] == ops.FORMAT and data["plugin_id"] == "shop"
    assert ops.Plan.from_dict(json.loads(ops.canonical_json(data))) == plan
    assert ops.Plan.from_dict(plan.reverse().to_dict()) == plan.reverse()
    with pytest.raises(ValueError, match="format"):
        ops.Plan.from_dict({**data, "format": 99})
    with pytest.raises(ValueError, match="malformed plan"):
        ops.Plan.from_dict({"format": ops.FORMAT, "ops": []})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "rename_universe", "plugin_id": "p"}, "unknown operation kind 'rename_universe'"),
        ({"plugin_id": "p"}, "unknown operation kind None"),
        ({"kind": "create_index", "plugin_id": "p", "table": "t"}, "malformed create_index"),
        ({"kind": "create_plugin_namespace", "plugin_id": "p", "extra": 1}, "malformed create_plugin_namespace"),
        ({"kind": "create_enum", "plugin_id": "p", "enum": {"name": "e", "values": "ab"}}, "malformed create_enum"),
    ],
)
def test_from_dict_rejects_what_is_not_an_operation(data: Doc, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ops.from_dict(data)


def test_from_dict_reads_explicit_nulls_as_none() -> None:
    data = {"kind": "drop_index", "plugin_id": "p", "table": "t", "index": {"columns": ["a"], "name": None}}
    assert ops.from_dict(data) == ops.DropIndex("p", "t", IndexDef(("a",)))


def test_values_without_a_json_form_are_refused_when_serialising() -> None:
    column = ColumnDef("price", "Decimal", default=Decimal("1.10"))
    with pytest.raises(TypeError, match=re.escape("Decimal value Decimal('1.10') has no serialised form")):
        ops.AddColumn("p", TableDef("t", ()), TableDef("t", (column,)), column).to_dict()


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        ops.canonical_json({"x": float("nan")})


def test_golden_plan() -> None:
    """The serialised form is a contract (plans are hashed from it): a change here must be deliberate.

    After such a change, bump :data:`extschema.planning.ops.FORMAT` and regenerate with
    ``EXTSCHEMA_UPDATE_GOLDEN=1 python3 -m pytest tests/test_planning_package.py -k golden``.
    """
    plan = update_plan()
    text = ops.canonical_json({"plan": plan.to_dict(), "rollback": plan.reverse().to_dict()}) + "\n"
    if os.environ.get("EXTSCHEMA_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.read_text(encoding="utf-8") == text
    assert [op["kind"] for op in json.loads(text)["plan"]["ops"]] == [
        "change_enum_values",
        "create_enum",
        "add_column",
        "create_index",
        "create_index",
        "create_table",
    ]


# --- changes and policy -----------------------------------------------------------------------


def test_every_change_kind_has_a_policy() -> None:
    def subclasses(cls: type[changes.Change]) -> set[type[changes.Change]]:
        return {c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))}

    kinds = {cls for cls in subclasses(changes.Change) if not cls.__name__.startswith("_")}
    assert kinds == policy.PLANNED | policy.CONDITIONAL | set(policy.REFUSED)
    assert not policy.PLANNED & set(policy.REFUSED)
    assert not policy.CONDITIONAL & (policy.PLANNED | set(policy.REFUSED))


def test_additive_changes_are_allowed_and_carry_their_operations() -> None:
    found = diff.changes(planning.resolve(parse(SHOP), REFS), planning.resolve(parse(grown_shop()), REFS))
    assert [c.describe() for c in found] == [
        "values archived were added to enum 'status'",
        "enum 'size' was added",
        "field order.note was added",
        "indexes entry on (code, title) of order was added",
        "uniqueConstraints entry on (qty) of line was added",
        "table 'box' was added",
    ]
    assert [c.path for c in found] == [
        "spec.enums[0].values",
        "spec.enums[1]",
        "spec.tables[0].fields[4]",
        "spec.tables[0].indexes",
        "spec.tables[1].uniqueConstraints",
        "spec.tables[2]",
    ]
    assert all(isinstance(policy.classify(c), policy.Allowed) for c in found)
    assert policy.refusals(found) == []
    assert tuple(op for c in found for op in c.ops) == update_plan().ops


def test_refused_change_becomes_a_located_problem() -> None:
    column = ColumnDef("qty", "Int")
    removed = changes.ColumnRemoved(path="spec.tables[1].fields", table="line", column=column)
    assert policy.classify(removed) == policy.Allowed(removed)
    to_date = changes.ColumnChanged(
        path="spec.tables[1].fields[0]", table="line", before=column, after=ColumnDef("qty", "Date")
    )
    assert policy.classify(to_date) == policy.Refused(
        to_date,
        Problem(
            "ES312",
            "spec.tables[1].fields[0]",
            f"field line.qty changed (type: 'Int' → 'Date'): Int to Date; {policy.UNSUPPORTED_TYPE_ADVICE}",
        ),
    )
    to_big = changes.ColumnChanged(path="p", table="line", before=column, after=ColumnDef("qty", "BigInt"))
    assert policy.classify(to_big) == policy.Allowed(to_big)
    required = changes.RequiredColumnAdded(path="p", table="t", column=ColumnDef("c", "Int", nullable=False))
    assert policy.refusals([required])[0].code == "ES302"


def test_a_change_kind_must_say_what_happened() -> None:
    with pytest.raises(NotImplementedError):
        changes.Change(path="spec").describe()
