"""Pure unit tests of extschema.conflicts: claims, physical names, references, cycles, dependency order."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from extschema import dialects, model, naming, planning, validation
from extschema.conflicts import Claim, dependency_order, detect
from extschema.naming import Namer
from extschema.problems import Problem

PG = Namer("schema", "public")
SQLITE = Namer("prefix")

CORE: dict[tuple[str, str], dict[str, Any]] = {
    ("core", "work_orders"): {"id": "Int", "code": "String", "owner_key": "Uuid", "blob": None},
    ("core", "equipment"): {"id": "BigInt"},
}


def spec(plugin: str, *tables: Any, **extra: Any) -> model.ExtensionSchemaSpec:
    data: dict[str, Any] = {
        "pluginId": plugin,
        "version": "1.0.0",
        "tables": [t if isinstance(t, dict) else {"name": t} for t in tables],
    }
    data.update(extra)
    return model.parse_spec(data)


def claim(owner: str, plugin: str, *tables: Any, **extra: Any) -> Claim:
    return Claim(owner, spec(plugin, *tables, **extra))


def found(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in problems]


# --- ES201: pluginId claims -------------------------------------------------------------------


def test_same_plugin_id_of_another_owner_is_es201_naming_both() -> None:
    registered = [claim("team-a/reports", "reports", "report")]
    problems = detect([claim("team-b/rogue", "reports", "report")], registered, CORE, SQLITE)
    assert found(problems) == [("ES201", "spec.pluginId")]
    message = problems[0].message
    assert "'team-b/rogue'" in message and "already claimed by 'team-a/reports'" in message
    assert message.startswith("pluginId 'reports' of 'team-b/rogue'")


def test_same_owner_is_an_update_not_a_conflict() -> None:
    registered = [claim("reports", "reports", "report")]
    update = claim("reports", "reports", "report", "summary")
    assert detect([update], registered, CORE, SQLITE) == []
    assert detect([update], registered, CORE, PG) == []


def test_earlier_candidate_wins_within_one_batch() -> None:
    first = claim("first", "reports", "report")
    second = claim("second", "reports", "other")
    problems = detect([first, second], [], CORE, SQLITE)
    assert found(problems) == [("ES201", "spec.pluginId")]
    assert "of 'second' is already claimed by 'first'" in problems[0].message
    reversed_problems = detect([second, first], [], CORE, SQLITE)
    assert "of 'first' is already claimed by 'second'" in reversed_problems[0].message


def test_detect_is_deterministic() -> None:
    candidates = [
        claim("b", "reports", "report"),
        claim("c", "reports", "x"),
        claim("d", "kb", {"name": "article"}, dependsOn=["missing", "kb"]),
    ]
    results = [detect(candidates, [], CORE, SQLITE) for _ in range(3)]
    assert results[0] == results[1] == results[2]
    assert [p.code for p in results[0]] == ["ES201", "ES208", "ES206"]


def test_rejected_claim_is_not_checked_further() -> None:
    # The rogue claim's own problems (a missing core table) are not reported: it was refused already.
    rogue = claim("rogue", "reports", "report", relationships=[{"source": "report", "target": "core.nope"}])
    problems = detect([rogue], [claim("owner", "reports", "report")], CORE, SQLITE)
    assert [p.code for p in problems] == ["ES201"]


# --- ES202 / ES203: physical names ------------------------------------------------------------


def test_table_colliding_with_a_core_table_on_sqlite() -> None:
    core = {**CORE, ("core", "ext_shop__item"): {"id": "Int"}}
    problems = detect([claim("shop-owner", "shop", "item")], [], core, SQLITE)
    assert found(problems) == [("ES202", "spec.tables")]
    assert problems[0].message == (
        "table item of 'shop-owner' needs the database name 'ext_shop__item', which 'the core application''s "
        "core table ext_shop__item already uses; rename one of them"
    )


def test_core_table_names_do_not_collide_on_postgresql() -> None:
    core = {**CORE, ("core", "item"): {"id": "Int"}}
    assert detect([claim("o", "shop", "item")], [], core, PG) == []
    # Other plugins' tables in the catalog are not core tables and claim no names.
    assert detect([claim("o", "shop", "item")], [], {("kb", "ext_shop__item"): {"id": "Int"}}, SQLITE) == []


def test_own_index_colliding_with_own_table_on_sqlite() -> None:
    item = {"name": "item", "fields": [{"name": "code", "type": "String", "unique": True}]}
    problems = detect([claim("o", "shop", item, "item_code_key")], [], CORE, SQLITE)
    assert found(problems) == [("ES202", "spec.tables")]
    assert problems[0].message == (
        "table item_code_key of 'o' needs the database name 'ext_shop__item_code_key', which its own "
        "index of item (code) already uses; rename one of them"
    )


def test_primary_key_and_sequence_names_collide_on_postgresql() -> None:
    problems = detect([claim("o", "shop", "item", "item_pkey", "item_id_seq")], [], CORE, PG)
    assert found(problems) == [("ES202", "spec.tables"), ("ES202", "spec.tables")]
    assert "table item_pkey of 'o' needs the database name 'ext_shop.item_pkey', which its own primary key of item" in (
        problems[0].message
    )
    assert "'ext_shop.item_id_seq', which its own id sequence of item" in problems[1].message
    # SQLite has neither, so no collision there.
    assert detect([claim("o", "shop", "item", "item_pkey", "item_id_seq")], [], CORE, SQLITE) == []


def test_registered_plugin_names_are_claimed_first_on_sqlite() -> None:
    registered = [
        claim("owner-a", "shop", {"name": "item", "fields": [{"name": "sku", "type": "String", "unique": True}]})
    ]
    core = {**CORE, ("core", "ext_shop__item_sku_key"): {"id": "Int"}}
    # The registered claim is not reported (it got there first); the updated one is.
    update = claim("owner-a", "shop", {"name": "item", "fields": [{"name": "sku", "type": "String", "unique": True}]})
    problems = detect([update], registered, core, SQLITE)
    assert found(problems) == [("ES202", "spec.tables")]
    assert "index of item (sku)" in problems[0].message and "core table ext_shop__item_sku_key" in problems[0].message
    # A different registered plugin does not collide with another one's names.
    assert detect([claim("owner-b", "kb", "item")], registered, CORE, SQLITE) == []


def test_each_colliding_name_is_reported_once() -> None:
    # "t_a_idx" is wanted three times: the derived index on (a), an index on (b) named so, and a table.
    t = {
        "name": "t",
        "fields": [{"name": "a", "type": "Int"}, {"name": "b", "type": "Int"}],
        "indexes": [{"fields": ["a"]}, {"fields": ["b"], "name": "t_a_idx"}],
    }
    problems = detect([claim("o", "shop", t, "t_a_idx")], [], CORE, PG)
    assert found(problems) == [("ES202", "spec.tables")]
    assert "index of t (b) of 'o' needs the database name 'ext_shop.t_a_idx', which its own index of t (a)" in (
        problems[0].message
    )


def test_long_derived_names_are_hashed_and_do_not_collide() -> None:
    long_a = "measurement_value_recorded_by_the_primary_sensor_array_first"
    long_b = "measurement_value_recorded_by_the_primary_sensor_array_second"
    table = {
        "name": "readings",
        "fields": [{"name": long_a, "type": "Int"}, {"name": long_b, "type": "Int"}],
        "indexes": [{"fields": [long_a]}, {"fields": [long_b]}],
    }
    # Truncated to 63 bytes, both index names would be the same; hashed, they differ.
    first = naming.fit(f"readings_{long_a}_idx")
    second = naming.fit(f"readings_{long_b}_idx")
    assert f"readings_{long_a}_idx"[:63] == f"readings_{long_b}_idx"[:63]
    assert first != second
    assert detect([claim("o", "shop", table)], [], CORE, PG) == []
    assert detect([claim("o", "shop", table)], [], CORE, SQLITE) == []


def test_long_derived_name_colliding_after_hashing_is_es202() -> None:
    column = "a_quite_long_column_name_used_for_measurements_first"
    hashed = naming.fit(f"readings_{column}_idx")
    assert len(hashed) == 63
    table = {
        "name": "readings",
        "fields": [{"name": column, "type": "Int"}, {"name": "other", "type": "Int"}],
        "indexes": [{"fields": [column]}, {"fields": ["other"], "name": hashed}],
    }
    problems = detect([claim("o", "shop", table)], [], CORE, PG)
    assert found(problems) == [("ES202", "spec.tables")]
    assert f"'ext_shop.{hashed}'" in problems[0].message
    assert "index of readings (other)" in problems[0].message and f"index of readings ({column})" in problems[0].message


def test_enum_colliding_with_a_table_on_postgresql_is_es203() -> None:
    c = claim("o", "shop", "status", enums=[{"name": "status", "values": ["a"]}])
    problems = detect([c], [], CORE, PG)
    assert found(problems) == [("ES203", "spec.enums")]
    assert problems[0].message == (
        "enum status of 'o' needs the database name 'ext_shop.status', which its own table status already uses; "
        "rename one of them"
    )
    # SQLite has no enum types: no collision.
    assert detect([c], [], CORE, SQLITE) == []


def test_enum_colliding_with_a_sequence_is_es203() -> None:
    c = claim("o", "shop", "item", enums=[{"name": "item_id_seq", "values": ["a"]}])
    assert found(detect([c], [], CORE, PG)) == [("ES203", "spec.enums")]


def test_names_of_other_plugins_never_collide_on_postgresql() -> None:
    registered = [claim("a", "one", "item")]
    assert detect([claim("b", "two", "item")], registered, CORE, PG) == []
    assert detect([claim("a", "one", "item"), claim("b", "two", "item")], [], CORE, PG) == []


def test_table_collision_is_es202_even_when_a_name_contains_enum() -> None:
    problems = detect([claim("o", "shop", "enumeration", "enumeration_pkey")], [], CORE, PG)
    assert found(problems) == [("ES202", "spec.tables")]


@pytest.mark.parametrize(
    "extra",
    [
        {"uniqueConstraints": [{"fields": ["code"]}]},
        {"indexes": [{"fields": ["code"], "unique": True}]},
        {"indexes": [{"fields": ["code"]}, {"fields": ["code"]}]},
    ],
    ids=["unique-constraint", "unique-index", "duplicate-index"],
)
def test_one_name_for_two_objects_is_reported_or_not_created(extra: dict[str, Any]) -> None:
    table = {"name": "t", "fields": [{"name": "code", "type": "String", "unique": True}], **extra}
    c = claim("o", "shop", table)
    problems = validation.validate(c.spec) + detect([c], [], CORE, PG)
    statements = dialects.for_backend("postgresql").render_plan(planning.plan(None, c.spec, CORE), "t").statements
    sql = "\n".join(statements)
    names = re.findall(r'INDEX "?(\w+)"? ON', sql) + re.findall(r'CONSTRAINT "?(\w+)"? UNIQUE', sql)
    assert problems or len(names) == len(set(names)), names


# --- ES204 / ES205 / ES207 / ES208: references ---------------------------------------------------


def test_reference_to_a_missing_core_table_is_es204() -> None:
    c = claim("o", "shop", "item", relationships=[{"source": "item", "target": "core.nope"}])
    problems = detect([c], [], CORE, SQLITE)
    assert found(problems) == [("ES204", "spec.relationships[0].target")]
    assert "core table 'nope' does not exist" in problems[0].message


def test_reference_to_a_missing_core_column_is_es204() -> None:
    c = claim("o", "shop", "item", relationships=[{"source": "item", "target": "core.work_orders", "targetField": "x"}])
    problems = detect([c], [], CORE, SQLITE)
    assert found(problems) == [("ES204", "spec.relationships[0]")]
    assert problems[0].message.startswith("core.work_orders has no column 'x'")


def test_reference_to_another_plugins_missing_table_is_es204() -> None:
    registered = [claim("kb-owner", "kb", "article", "tag")]
    c = claim("o", "shop", "item", dependsOn=["kb"], relationships=[{"source": "item", "target": "kb.page"}])
    problems = detect([c], registered, CORE, SQLITE)
    assert found(problems) == [("ES204", "spec.relationships[0].target")]
    assert problems[0].message == "plugin 'kb' ('kb-owner') has no table 'page'; tables it has: article, tag"


def test_reference_to_another_plugins_missing_column_is_es204() -> None:
    registered = [claim("kb-owner", "kb", "article")]
    c = claim(
        "o",
        "shop",
        "item",
        dependsOn=["kb"],
        relationships=[{"source": "item", "target": "kb.article", "targetField": "slug"}],
    )
    assert found(detect([c], registered, CORE, SQLITE)) == [("ES204", "spec.relationships[0]")]


def test_references_to_existing_tables_are_fine() -> None:
    registered = [claim("kb-owner", "kb", {"name": "article", "fields": [{"name": "slug", "type": "String"}]})]
    c = claim(
        "o",
        "shop",
        "item",
        "line",
        dependsOn=["kb"],
        relationships=[
            {"source": "item", "target": "kb.article", "targetField": "slug"},
            {"source": "item", "target": "core.work_orders"},
            {"source": "line", "target": "item"},
            {"source": "line", "target": "kb.article", "type": "ManyToMany"},
            {"source": "item", "target": "line", "type": "OneToMany"},
        ],
    )
    assert detect([c], registered, CORE, SQLITE) == []
    assert detect([c], registered, CORE, PG) == []


def test_reference_to_a_plugin_not_in_depends_on_is_es205() -> None:
    registered = [claim("kb-owner", "kb", "article")]
    c = claim("o", "shop", "item", relationships=[{"source": "item", "target": "kb.article"}])
    problems = detect([c], registered, CORE, SQLITE)
    assert found(problems) == [("ES205", "spec.relationships[0].target")]
    assert problems[0].message == (
        "kb.article belongs to plugin 'kb', which is not in dependsOn; add 'kb' to spec.dependsOn"
    )


def test_reference_to_an_unregistered_plugin_outside_depends_on_is_es205_only() -> None:
    c = claim("o", "shop", "item", relationships=[{"source": "item", "target": "kb.article"}])
    assert found(detect([c], [], CORE, SQLITE)) == [("ES205", "spec.relationships[0].target")]


def test_dependency_not_registered_is_es208_once() -> None:
    c = claim(
        "o", "shop", "item", dependsOn=["kb", "comments"], relationships=[{"source": "item", "target": "kb.article"}]
    )
    problems = detect([c], [claim("c", "comments", "comment")], CORE, SQLITE)
    assert found(problems) == [("ES208", "spec.dependsOn[0]")]
    assert problems[0].message.startswith("'o' depends on plugin 'kb', which is not registered")


def test_dependency_applied_together_is_fine() -> None:
    kb = claim("kb-owner", "kb", "article")
    shop = claim("o", "shop", "item", dependsOn=["kb"], relationships=[{"source": "item", "target": "kb.article"}])
    assert detect([shop, kb], [], CORE, SQLITE) == []


def test_own_missing_table_is_left_to_validation() -> None:
    c = claim("o", "shop", "item", relationships=[{"source": "item", "target": "ghost"}])
    assert detect([c], [], CORE, SQLITE) == []


def test_own_declared_fk_column_of_a_matching_type_is_fine() -> None:
    c = claim(
        "o",
        "shop",
        {"name": "item", "fields": [{"name": "line_ref", "type": "BigInt"}]},
        "line",
        relationships=[{"source": "item", "target": "line", "sourceField": "line_ref"}],
    )
    assert detect([c], [], CORE, SQLITE) == []


def test_fk_type_int_to_uuid_is_es207() -> None:
    c = claim(
        "o",
        "shop",
        {"name": "item", "fields": [{"name": "owner", "type": "Int"}]},
        relationships=[
            {"source": "item", "sourceField": "owner", "target": "core.work_orders", "targetField": "owner_key"}
        ],
    )
    problems = detect([c], [], CORE, SQLITE)
    assert found(problems) == [("ES207", "spec.relationships[0]")]
    assert problems[0].message == (
        "item.owner is Int but references core.work_orders.owner_key of type Uuid; declare owner as Uuid, or let "
        "extschema create it"
    )


@pytest.mark.parametrize(
    ("declared", "target", "target_field", "ok"),
    [
        ("Int", "core.equipment", "id", True),  # BigInt referenced by Int
        ("BigInt", "core.work_orders", "id", True),  # Int referenced by BigInt
        ("Text", "core.work_orders", "code", True),  # String referenced by Text
        ("String", "core.work_orders", "code", True),
        ("Int", "core.work_orders", "code", False),
        ("Uuid", "core.work_orders", "owner_key", True),
        ("String", "core.work_orders", "owner_key", False),
        ("Int", "item", "id", True),  # own table: id is BigInt
        ("Uuid", "item", "id", False),
    ],
)
def test_declared_fk_type_compatibility(declared: str, target: str, target_field: str, ok: bool) -> None:
    c = claim(
        "o",
        "shop",
        {"name": "item", "fields": [{"name": "ref", "type": declared}]},
        relationships=[{"source": "item", "sourceField": "ref", "target": target, "targetField": target_field}],
    )
    problems = detect([c], [], CORE, SQLITE)
    assert found(problems) == ([] if ok else [("ES207", "spec.relationships[0]")])


def test_fk_to_another_plugins_column_type_mismatch_is_es207() -> None:
    registered = [claim("kb-owner", "kb", {"name": "article", "fields": [{"name": "key", "type": "Uuid"}]})]
    c = claim(
        "o",
        "shop",
        {"name": "item", "fields": [{"name": "article_key", "type": "BigInt"}]},
        dependsOn=["kb"],
        relationships=[{"source": "item", "sourceField": "article_key", "target": "kb.article", "targetField": "key"}],
    )
    problems = detect([c], registered, CORE, SQLITE)
    assert found(problems) == [("ES207", "spec.relationships[0]")]
    assert "references kb.article.key of type Uuid" in problems[0].message


def test_undeclared_fk_column_takes_any_type() -> None:
    c = claim(
        "o",
        "shop",
        "item",
        relationships=[{"source": "item", "target": "core.work_orders", "targetField": "owner_key"}],
    )
    assert detect([c], [], CORE, SQLITE) == []


def test_unknown_core_column_type_is_es207() -> None:
    c = claim(
        "o", "shop", "item", relationships=[{"source": "item", "target": "core.work_orders", "targetField": "blob"}]
    )
    problems = detect([c], [], CORE, SQLITE)
    assert found(problems) == [("ES207", "spec.relationships[0]")]
    assert problems[0].message.startswith("core.work_orders.blob has a type extschema cannot reference")


# --- ES206: cycles -----------------------------------------------------------------------------


def test_cycle_between_two_candidates_is_reported_for_each() -> None:
    a = claim("a", "alpha", "x", dependsOn=["beta"])
    b = claim("b", "beta", "y", dependsOn=["alpha"])
    problems = detect([a, b], [], CORE, SQLITE)
    assert found(problems) == [("ES206", "spec.dependsOn"), ("ES206", "spec.dependsOn")]
    assert "dependency cycle alpha → beta → alpha:" in problems[0].message
    assert "dependency cycle beta → alpha → beta:" in problems[1].message


def test_cycle_through_a_registered_plugin() -> None:
    registered = [claim("b", "beta", "y", dependsOn=["gamma"]), claim("c", "gamma", "z", dependsOn=["alpha"])]
    problems = detect([claim("a", "alpha", "x", dependsOn=["beta"])], registered, CORE, SQLITE)
    assert found(problems) == [("ES206", "spec.dependsOn")]
    assert "alpha → beta → gamma → alpha" in problems[0].message


def test_self_dependency_is_a_cycle() -> None:
    problems = detect([claim("a", "alpha", "x", dependsOn=["alpha"])], [], CORE, SQLITE)
    assert found(problems) == [("ES206", "spec.dependsOn")]
    assert "alpha → alpha" in problems[0].message


def test_diamond_is_not_a_cycle() -> None:
    registered = [
        claim("d", "delta", "w"),
        claim("b", "beta", "y", dependsOn=["delta"]),
        claim("c", "gamma", "z", dependsOn=["delta", "beta"]),
    ]
    assert detect([claim("a", "alpha", "x", dependsOn=["beta", "gamma"])], registered, CORE, SQLITE) == []


def test_cycle_not_through_the_candidate_is_not_its_problem() -> None:
    registered = [claim("b", "beta", "y", dependsOn=["gamma"]), claim("c", "gamma", "z", dependsOn=["beta"])]
    assert detect([claim("a", "alpha", "x", dependsOn=["beta"])], registered, CORE, SQLITE) == []


# --- dependency order ------------------------------------------------------------------------------


def ids(specs: list[model.ExtensionSchemaSpec]) -> list[str]:
    return [s.plugin_id for s in specs]


def test_dependency_order_puts_dependencies_first_whatever_the_input_order() -> None:
    specs = [
        spec("kb", dependsOn=["comments"]),
        spec("comments"),
        spec("reports", dependsOn=["kb", "comments"]),
        spec("audit"),
    ]
    expected = ["audit", "comments", "kb", "reports"]
    for permutation in itertools.permutations(specs):
        assert ids(dependency_order(list(permutation))) == expected


def test_dependency_order_ties_by_plugin_id() -> None:
    assert ids(dependency_order([spec("zeta"), spec("alpha"), spec("mid")])) == ["alpha", "mid", "zeta"]
    # Dependencies are visited in pluginId order too.
    assert ids(dependency_order([spec("app", dependsOn=["zz", "bb"]), spec("zz"), spec("bb")])) == ["bb", "zz", "app"]


def test_dependency_order_ignores_unknown_dependencies_and_survives_cycles() -> None:
    assert ids(dependency_order([spec("a", dependsOn=["missing"])])) == ["a"]
    cyclic = [spec("b", dependsOn=["a"]), spec("a", dependsOn=["b"])]
    assert ids(dependency_order(cyclic)) == ["b", "a"]
    assert ids(dependency_order(list(reversed(cyclic)))) == ["b", "a"]
    assert ids(dependency_order([])) == []
