"""Malformed documents, at the pure level: each one yields located problems and never an exception.

Every case is parsed the way the CLI and the operator do it: structure first (pydantic errors become
problems), the semantic rules only for a structurally valid spec. The CLI/database-level version of
this suite (exit codes, no change in the database) lives with the CLI tests.
"""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest

from extschema import model
from extschema.problems import CATALOG, Problem
from extschema.validation import structural_problems, validate

Doc = dict[str, Any]
LONG = "n" * 200


def problems_for(data: Any) -> list[Problem]:
    """What a user would see for *data* as ``spec``."""
    try:
        spec = model.parse_spec(data)
    except pydantic.ValidationError as error:
        return structural_problems(error, "spec")
    return validate(spec)


def spec(**top: Any) -> Doc:
    base: Doc = {
        "pluginId": "shop",
        "version": "1.0.0",
        "tables": [{"name": "item", "fields": [{"name": "title", "type": "String"}]}],
    }
    base.update(top)
    return base


def with_table(**table: Any) -> Doc:
    return spec(tables=[{"name": "item", "fields": [{"name": "title", "type": "String"}], **table}])


def with_field(**field: Any) -> Doc:
    return with_table(fields=[{"name": "title", "type": "String", **field}])


def with_enum(**enum: Any) -> Doc:
    return spec(enums=[{"name": "status", "values": ["draft"], **enum}])


def with_relationship(**rel: Any) -> Doc:
    return spec(relationships=[{"source": "item", "target": "core.work_orders", **rel}])


def recursive() -> Doc:
    loop: Doc = {"name": "loop"}
    loop["self"] = loop
    return spec(tables=[loop])


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


FIELD = "spec.tables[0].fields[0]"
CASES: list[tuple[str, Any, str]] = [
    # empty and non-mapping documents
    ("empty-mapping", {}, "spec.pluginId"),
    ("null", None, "spec"),
    ("empty-string", "", "spec"),
    ("list-document", [], "spec"),
    ("number-document", 42, "spec"),
    ("bytes-document", b"\x00\xff", "spec"),
    ("only-plugin-id", {"pluginId": "shop"}, "spec.version"),
    # lists where mappings are expected
    ("table-as-list", spec(tables=[["item"]]), "spec.tables[0]"),
    ("field-as-list", with_table(fields=[["title", "String"]]), FIELD),
    ("validation-as-list", with_field(validation=[1, 2]), f"{FIELD}.validation"),
    ("localization-as-list", with_enum(localization=[{"de": {}}]), "spec.enums[0].localization"),
    ("relationship-as-string", spec(relationships=["item -> core.work_orders"]), "spec.relationships[0]"),
    ("index-as-string", with_table(indexes=["title"]), "spec.tables[0].indexes[0]"),
    # mappings (or scalars) where lists are expected
    ("tables-as-mapping", spec(tables={"item": {"fields": []}}), "spec.tables"),
    ("values-as-mapping", with_enum(values={"draft": 1}), "spec.enums[0].values"),
    ("depends-on-string", spec(dependsOn="comments"), "spec.dependsOn"),
    ("index-fields-string", with_table(indexes=[{"fields": "title"}]), "spec.tables[0].indexes[0].fields"),
    ("fields-null", with_table(fields=None), "spec.tables[0].fields"),
    # wrong scalar types
    ("version-float", spec(version=1.0), "spec.version"),
    ("version-yaml-date", spec(version=datetime.date(2024, 1, 1)), "spec.version"),
    ("plugin-id-number", spec(pluginId=123), "spec.pluginId"),
    ("plugin-id-bool", spec(pluginId=True), "spec.pluginId"),
    ("required-yes", with_field(required="yes"), f"{FIELD}.required"),
    ("unique-number", with_field(unique=1), f"{FIELD}.unique"),
    ("precision-string", with_field(type="Decimal", precision="10"), f"{FIELD}.precision"),
    ("scale-float", with_field(type="Decimal", scale=2.5), f"{FIELD}.scale"),
    ("default-mapping", with_field(default={"a": 1}), f"{FIELD}.default"),
    ("default-list", with_field(default=[1]), f"{FIELD}.default"),
    ("default-yaml-date", with_field(type="Date", default=datetime.date(2024, 1, 1)), f"{FIELD}.default"),
    (
        "default-yaml-datetime",
        with_field(type="DateTime", default=datetime.datetime(2024, 1, 1)),
        f"{FIELD}.default",
    ),
    ("min-string", with_field(type="Int", validation={"min": "0"}), f"{FIELD}.validation.min"),
    ("max-length-float", with_field(validation={"maxLength": 10.5}), f"{FIELD}.validation.maxLength"),
    ("type-number", with_field(type=5), f"{FIELD}.type"),
    ("type-unknown", with_field(type="Varchar"), f"{FIELD}.type"),
    ("type-lowercase", with_field(type="string"), f"{FIELD}.type"),
    ("on-delete-lowercase", with_relationship(onDelete="cascade"), "spec.relationships[0].onDelete"),
    ("relationship-type-unknown", with_relationship(type="HasMany"), "spec.relationships[0].type"),
    ("deletion-policy-unknown", spec(deletionPolicy="Keep"), "spec.deletionPolicy"),
    ("enum-value-number", with_enum(values=["draft", 2]), "spec.enums[0].values[1]"),
    ("label-number", with_enum(localization={"de": {"draft": 1}}), "spec.enums[0].localization.de.draft"),
    ("locale-key-number", with_enum(localization={1: {"draft": "x"}}), "spec.enums[0].localization[1]"),
    # unknown fields
    ("unknown-top-level", spec(tabels=[]), "spec.tabels"),
    ("unknown-field-key", with_field(requird=True), f"{FIELD}.requird"),
    ("unknown-relationship-key", with_relationship(ondelete="Cascade"), "spec.relationships[0].ondelete"),
    ("unknown-validation-key", with_field(validation={"maxlength": 5}), f"{FIELD}.validation.maxlength"),
    ("unknown-key-number", {**spec(), 1: "x"}, "spec[1]"),
    ("unknown-key-with-space", spec(**{"plugin id": "x"}), 'spec["plugin id"]'),
    # 200-character names
    ("long-plugin-id", spec(pluginId=LONG), "spec.pluginId"),
    ("long-table", spec(tables=[{"name": LONG}]), "spec.tables[0].name"),
    ("long-field", with_field(name=LONG), f"{FIELD}.name"),
    ("long-enum", spec(enums=[{"name": LONG, "values": ["a"]}]), "spec.enums[0].name"),
    ("long-enum-value", with_enum(values=[LONG]), "spec.enums[0].values[0]"),
    (
        "long-index-name",
        with_table(indexes=[{"fields": ["title"], "name": LONG}]),
        "spec.tables[0].indexes[0].name",
    ),
    (
        "long-join-name",
        with_relationship(type="ManyToMany", name=LONG),
        "spec.relationships[0].name",
    ),
    ("long-source-field", with_relationship(sourceField=LONG), "spec.relationships[0].sourceField"),
    ("long-depends-on", spec(dependsOn=[LONG]), "spec.dependsOn[0]"),
    ("long-version", spec(version="1" * 200), "spec.version"),
    ("long-pattern", with_field(validation={"pattern": "a" * 2000}), f"{FIELD}.validation.pattern"),
    # unicode
    ("cjk-table", spec(tables=[{"name": "表"}]), "spec.tables[0].name"),
    ("accented-field", with_field(name="naïve"), f"{FIELD}.name"),
    ("cyrillic-enum", spec(enums=[{"name": "статус", "values": ["a"]}]), "spec.enums[0].name"),
    ("umlaut-plugin-id", spec(pluginId="plügin"), "spec.pluginId"),
    ("emoji-field", with_field(name="😀"), f"{FIELD}.name"),
    ("zero-width-space", with_field(name="a\u200bb"), f"{FIELD}.name"),
    ("fullwidth-letters", spec(tables=[{"name": "\uff49\uff54\uff45\uff4d"}]), "spec.tables[0].name"),
    ("right-to-left", with_field(name="\u202etitle"), f"{FIELD}.name"),
    ("lone-surrogate", with_field(name="a\ud800"), f"{FIELD}.name"),
    ("unicode-digit-version", spec(version="\u0661.\u0660.\u0660"), "spec.version"),
    ("unicode-locale", with_enum(localization={"dé": {"draft": "x"}}), 'spec.enums[0].localization["dé"]'),
    # SQL fragments
    ("sql-table", spec(tables=[{"name": "x; DROP TABLE y"}]), "spec.tables[0].name"),
    ("sql-field", with_field(name='a" OR 1=1 --'), f"{FIELD}.name"),
    ("sql-enum", spec(enums=[{"name": "e'); DROP TYPE x; --", "values": ["a"]}]), "spec.enums[0].name"),
    (
        "sql-index-name",
        with_table(indexes=[{"fields": ["title"], "name": "i; DELETE FROM t"}]),
        "spec.tables[0].indexes[0].name",
    ),
    (
        "sql-index-field",
        with_table(indexes=[{"fields": ["title); DROP INDEX x; --"]}]),
        "spec.tables[0].indexes[0].fields[0]",
    ),
    ("sql-plugin-id", spec(pluginId="p; DROP SCHEMA public CASCADE"), "spec.pluginId"),
    ("sql-depends-on", spec(dependsOn=["x'; --"]), "spec.dependsOn[0]"),
    ("sql-target", with_relationship(target="core.users; DROP TABLE users"), "spec.relationships[0].target"),
    ("sql-source", with_relationship(source="item; --"), "spec.relationships[0].source"),
    ("sql-source-field", with_relationship(sourceField="x_id; --"), "spec.relationships[0].sourceField"),
    (
        "sql-target-field",
        with_relationship(targetField="id) ON DELETE CASCADE; --"),
        "spec.relationships[0].targetField",
    ),
    (
        "sql-join-name",
        with_relationship(type="ManyToMany", name="j; DROP TABLE j"),
        "spec.relationships[0].name",
    ),
    ("sql-int-default", with_field(type="Int", default="1; DROP TABLE x"), f"{FIELD}.default"),
    (
        "sql-date-default",
        with_field(type="Date", default="2024-01-01'); DROP TABLE x; --"),
        f"{FIELD}.default",
    ),
    ("sql-datetime-default", with_field(type="DateTime", default="now(); DROP TABLE x"), f"{FIELD}.default"),
    ("sql-bool-default", with_field(type="Boolean", default="true; --"), f"{FIELD}.default"),
    ("sql-uuid-default", with_field(type="Uuid", default="' OR '1'='1"), f"{FIELD}.default"),
    (
        "sql-enum-default",
        spec(
            enums=[{"name": "status", "values": ["draft"]}],
            tables=[
                {
                    "name": "item",
                    "fields": [{"name": "s", "type": "Enum", "enum": "status", "default": "draft'; --"}],
                }
            ],
        ),
        f"{FIELD}.default",
    ),
    (
        "sql-string-default-too-long",
        with_field(default="'); DROP TABLE item; --", validation={"maxLength": 8}),
        f"{FIELD}.default",
    ),
    (
        "sql-pattern",
        with_field(validation={"pattern": "'); DROP TABLE x; --"}),
        f"{FIELD}.validation.pattern",
    ),
    ("sql-pattern-flags", with_field(validation={"pattern": "(?i)x' OR 1=1"}), f"{FIELD}.validation.pattern"),
    (
        "sql-locale",
        with_enum(localization={"de'; DROP": {"draft": "x"}}),
        'spec.enums[0].localization["de\'; DROP"]',
    ),
    # 2,000 fields
    (
        "two-thousand-fields",
        with_table(fields=[{"name": f"f{i}", "type": "Int"} for i in range(2000)]),
        "spec.tables[0].fields",
    ),
    (
        "two-thousand-fields-duplicate",
        with_table(fields=[{"name": f"f{i % 1999}", "type": "Int"} for i in range(2000)]),
        "spec.tables[0].fields[1999].name",
    ),
    (
        "two-thousand-bad-types",
        with_table(fields=[{"name": f"f{i}", "type": "Number"} for i in range(2000)]),
        "spec.tables[0].fields[1999].type",
    ),
    # NUL bytes
    ("nul-plugin-id", spec(pluginId="shop\0"), "spec.pluginId"),
    ("nul-version", spec(version="1.0.0\0"), "spec.version"),
    ("nul-table", spec(tables=[{"name": "item\0"}]), "spec.tables[0].name"),
    ("nul-field", with_field(name="ti\0tle"), f"{FIELD}.name"),
    ("nul-enum-value", with_enum(values=["dr\0aft"]), "spec.enums[0].values[0]"),
    ("nul-label", with_enum(localization={"de": {"draft": "\0"}}), "spec.enums[0].localization.de.draft"),
    ("nul-default", with_field(default="a\0b"), f"{FIELD}.default"),
    ("nul-json-default", with_field(type="Json", default="\0"), f"{FIELD}.default"),
    ("nul-pattern", with_field(validation={"pattern": "a\0"}), f"{FIELD}.validation.pattern"),
    ("nul-description", with_field(description="\0"), f"{FIELD}.description"),
    ("nul-depends-on", spec(dependsOn=["\0"]), "spec.dependsOn[0]"),
    ("nul-target", with_relationship(target="core.\0"), "spec.relationships[0].target"),
    ("nul-index-field", with_table(indexes=[{"fields": ["\0"]}]), "spec.tables[0].indexes[0].fields[0]"),
    # nested garbage
    ("name-is-mapping", with_field(name={"deep": [1, {"x": None}]}), f"{FIELD}.name"),
    (
        "min-is-nested-list",
        with_field(type="Int", validation={"min": [[1], {"a": [2]}]}),
        f"{FIELD}.validation.min",
    ),
    ("description-deep-list", spec(description=deep_list(100)), "spec.description"),
    ("table-null", spec(tables=[None]), "spec.tables[0]"),
    ("fields-mixed-garbage", with_table(fields=[None, 1, "x", []]), FIELD),
    ("recursive-structure", recursive(), "spec.tables[0].self"),
    ("huge-integer-default", with_field(type="BigInt", default=10**5000), f"{FIELD}.default"),
    ("infinite-min", with_field(type="Float", validation={"min": float("-inf")}), f"{FIELD}.validation.min"),
    ("nan-default", with_field(type="Float", default=float("nan")), f"{FIELD}.default"),
    ("status-style-garbage", spec(enums=[{"values": {"nested": {"deeper": None}}}]), "spec.enums[0].name"),
]


@pytest.mark.parametrize(("data", "path"), [pytest.param(data, path, id=name) for name, data, path in CASES])
def test_malformed_document_is_located(data: Any, path: str) -> None:
    problems = problems_for(data)
    assert problems, "a malformed document must give at least one problem"
    paths = [p.path for p in problems]
    assert any(p == path or p.startswith((f"{path}.", f"{path}[")) for p in paths), (path, paths[:10])
    for problem in problems:
        assert problem.code in CATALOG
        assert problem.message
        problem.render().encode("utf-8")  # printable, even for lone surrogates


def test_case_ids_are_unique() -> None:
    names = [name for name, _, _ in CASES]
    assert len(names) == len(set(names))
