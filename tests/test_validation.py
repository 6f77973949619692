"""Pure unit tests of extschema.validation: one case per rule, asserting the exact code and path."""

from __future__ import annotations

import copy
import datetime
from typing import Any, Literal

import pydantic
import pytest
import yaml

from extschema import model, portable_regex
from extschema.problems import CATALOG, Problem
from extschema.validation import structural_problems, validate

Doc = dict[str, Any]


def field(name: str, type_: str = "String", **extra: Any) -> Doc:
    return {"name": name, "type": type_, **extra}


def table(name: str = "item", *fields: Doc, **extra: Any) -> Doc:
    return {"name": name, "fields": list(fields) or [field("title")], **extra}


def doc(*tables: Doc, **top: Any) -> Doc:
    base: Doc = {"pluginId": "shop", "version": "1.0.0", "tables": list(tables) or [table()]}
    base.update(top)
    return base


def check(data: Doc) -> list[Problem]:
    return validate(model.parse_spec(data))


def found(data: Doc) -> set[tuple[str, str]]:
    return {(p.code, p.path) for p in check(data)}


def structural(data: Any, prefix: str = "spec") -> list[Problem]:
    with pytest.raises(pydantic.ValidationError) as info:
        model.parse_spec(data)
    return structural_problems(info.value, prefix)


ISSUE_EXAMPLE = """
pluginId: customreports        # ^[a-z][a-z0-9_]*$, at most 40 characters
version: 1.0.0                 # semver
description: Custom reports for work orders
dependsOn: [comments]          # plugins whose tables or enums this one references
enums:
  - name: report_status
    values: [draft, published, archived]
    localization: {de: {draft: Entwurf, published: Veröffentlicht}}
tables:
  - name: report
    fields:
      - {name: title, type: String, required: true, validation: {minLength: 1, maxLength: 200}}
      - {name: status, type: Enum, enum: report_status, default: draft, required: true}
      - {name: score, type: Decimal, precision: 10, scale: 2, validation: {min: 0, max: 100}}
      - {name: code, type: String, unique: true, validation: {pattern: '^[A-Z]{3}-[0-9]+$'}}
    indexes: [{fields: [status, title]}]
    uniqueConstraints: [{fields: [title, status]}]
relationships:
  - {source: report, sourceField: work_order_id, target: core.work_orders, targetField: id, type: ManyToOne,
     onDelete: Cascade}
deletionPolicy: Drop           # Drop | Retain
"""

OTHER_VALID = [
    pytest.param(
        doc(
            table("comment", field("body", "Text", validation={"minLength": 1})),
            table("tag", field("label", unique=True)),
            dependsOn=["customreports"],
            relationships=[
                {"source": "comment", "target": "core.work_orders"},
                {
                    "source": "comment",
                    "target": "customreports.report",
                    "type": "OneToOne",
                    "onDelete": "SetNull",
                },
                {"source": "comment", "target": "tag", "type": "ManyToMany", "targetField": "label"},
                {"source": "comment", "target": "comment", "type": "ManyToMany", "name": "comment_links"},
                {"source": "tag", "target": "comment", "type": "OneToMany", "onDelete": "Cascade"},
            ],
        ),
        id="relationships-of-every-type",
    ),
    pytest.param(
        doc(
            table(
                "sample",
                field("n", "Int", default=-5, validation={"min": -10, "max": 10}),
                field("big", "BigInt", default=2**62),
                field("ratio", "Float", default=0.5),
                field("price", "Decimal", precision=6, scale=2, default=1234.56),
                field("whole", "Decimal", precision=4, scale=0, default=9999),
                field("flag", "Boolean", default=False),
                field("day", "Date", default="2024-02-29"),
                field("at", "DateTime", default="2024-01-01T00:00:00Z"),
                field("at_local", "DateTime", default="2024-01-01 10:30:00.5+02:00"),
                field("created", "DateTime", default="now"),
                field("key", "Uuid", default="123e4567-e89b-12d3-a456-426614174000"),
                field("doc", "Json", default="anything"),
                field("doc_number", "Json", default=1.5),
                field("note", "Text", default="", validation={"maxLength": 0}),
                field("code", default="AB-1", validation={"pattern": r"^[A-Z]+-[0-9]+$", "minLength": 2}),
            ),
            version="2.0.0-rc.1+build.5",
        ),
        id="defaults-of-every-type",
    ),
]


def test_issue_example_is_valid() -> None:
    assert validate(model.parse_spec(yaml.safe_load(ISSUE_EXAMPLE))) == []


@pytest.mark.parametrize("data", OTHER_VALID)
def test_valid_documents_have_no_problems(data: Doc) -> None:
    assert check(data) == []


# --- One case per rule: (document, code, path) ------------------------------------------------

LONG = "a" * 64
RULES = [
    # ES116 pluginId
    ("plugin-uppercase", doc(pluginId="Shop"), "ES116", "spec.pluginId"),
    ("plugin-too-long", doc(pluginId="a" * 41), "ES116", "spec.pluginId"),
    ("plugin-double-underscore", doc(pluginId="a__b"), "ES116", "spec.pluginId"),
    ("plugin-trailing-underscore", doc(pluginId="shop_"), "ES116", "spec.pluginId"),
    ("plugin-reserved-prefix", doc(pluginId="pg_shop"), "ES116", "spec.pluginId"),
    ("plugin-core", doc(pluginId="core"), "ES116", "spec.pluginId"),
    ("plugin-symbols", doc(pluginId="!!!"), "ES116", "spec.pluginId"),
    # ES115 version
    ("version-two-parts", doc(version="1.0"), "ES115", "spec.version"),
    ("version-v-prefix", doc(version="v1.2.3"), "ES115", "spec.version"),
    ("version-leading-zero", doc(version="01.0.0"), "ES115", "spec.version"),
    ("version-newline", doc(version="1.0.0\n"), "ES115", "spec.version"),
    ("version-unicode-digit", doc(version="1.0.\u0663"), "ES115", "spec.version"),
    # ES101 identifiers
    ("table-uppercase", doc(table("Item")), "ES101", "spec.tables[0].name"),
    ("table-sql", doc(table("x; DROP TABLE y")), "ES101", "spec.tables[0].name"),
    ("table-unicode", doc(table("naïve")), "ES101", "spec.tables[0].name"),
    ("table-space", doc(table("my table")), "ES101", "spec.tables[0].name"),
    ("table-empty", doc(table("")), "ES101", "spec.tables[0].name"),
    ("table-digit-first", doc(table("1item")), "ES101", "spec.tables[0].name"),
    ("table-underscore-first", doc(table("_item")), "ES101", "spec.tables[0].name"),
    ("table-double-underscore", doc(table("a__b")), "ES101", "spec.tables[0].name"),
    ("table-trailing-underscore", doc(table("item_")), "ES101", "spec.tables[0].name"),
    ("table-newline", doc(table("item\n")), "ES101", "spec.tables[0].name"),
    ("field-quote", doc(table("item", field('a"b'))), "ES101", "spec.tables[0].fields[0].name"),
    ("field-nul", doc(table("item", field("a\0b"))), "ES101", "spec.tables[0].fields[0].name"),
    ("enum-name", doc(enums=[{"name": "Status", "values": ["a"]}]), "ES101", "spec.enums[0].name"),
    (
        "index-name",
        doc(table(indexes=[{"fields": ["title"], "name": "Idx"}])),
        "ES101",
        "spec.tables[0].indexes[0].name",
    ),
    (
        "join-name",
        doc(table(), relationships=[{"source": "item", "target": "item", "type": "ManyToMany", "name": "a b"}]),
        "ES101",
        "spec.relationships[0].name",
    ),
    (
        "derived-fk-column",
        doc(table(), relationships=[{"source": "item", "target": "core.WorkOrders"}]),
        "ES101",
        "spec.relationships[0].target",
    ),
    (
        "derived-join-name",
        doc(table(), relationships=[{"source": "item", "target": "core.WorkOrders", "type": "ManyToMany"}]),
        "ES101",
        "spec.relationships[0]",
    ),
    # ES102 lengths
    ("table-64-bytes", doc(table(LONG)), "ES102", "spec.tables[0].name"),
    ("field-64-bytes", doc(table("item", field(LONG))), "ES102", "spec.tables[0].fields[0].name"),
    ("unicode-bytes", doc(table("item", field("é" * 32))), "ES102", "spec.tables[0].fields[0].name"),
    ("physical-table", doc(table("t" * 20), pluginId="p" * 40), "ES102", "spec.tables[0].name"),
    (
        "physical-join-table",
        doc(
            table("a" * 30),
            table("b" * 20),
            relationships=[{"source": "a" * 30, "target": "b" * 20, "type": "ManyToMany"}],
            pluginId="p" * 10,
        ),
        "ES102",
        "spec.relationships[0]",
    ),
    (
        "join-column",
        doc(
            table("a" * 62),
            relationships=[{"source": "a" * 62, "target": "core.x", "type": "ManyToMany", "name": "j"}],
        ),
        "ES102",
        "spec.relationships[0]",
    ),
    # ES103 reserved
    ("field-id", doc(table("item", field("id"))), "ES103", "spec.tables[0].fields[0].name"),
    ("table-pg", doc(table("pg_item")), "ES103", "spec.tables[0].name"),
    ("field-sqlite", doc(table("item", field("sqlite_x"))), "ES103", "spec.tables[0].fields[0].name"),
    ("enum-extschema", doc(enums=[{"name": "extschema_e", "values": ["a"]}]), "ES103", "spec.enums[0].name"),
    (
        "fk-column-id",
        doc(table(), relationships=[{"source": "item", "target": "core.x", "sourceField": "id"}]),
        "ES103",
        "spec.relationships[0].sourceField",
    ),
    # ES104 duplicates
    ("duplicate-table", doc(table(), table()), "ES104", "spec.tables[1].name"),
    ("duplicate-field", doc(table("item", field("a"), field("a"))), "ES104", "spec.tables[0].fields[1].name"),
    (
        "duplicate-enum",
        doc(enums=[{"name": "e", "values": ["a"]}, {"name": "e", "values": ["b"]}]),
        "ES104",
        "spec.enums[1].name",
    ),
    (
        "enum-equals-table",
        doc(table("item"), enums=[{"name": "item", "values": ["a"]}]),
        "ES104",
        "spec.enums[0].name",
    ),
    (
        "duplicate-index-name",
        doc(
            table(
                indexes=[{"fields": ["title"], "name": "i"}],
                uniqueConstraints=[{"fields": ["title"], "name": "i"}],
            )
        ),
        "ES104",
        "spec.tables[0].uniqueConstraints[0].name",
    ),
    (
        "index-name-equals-table",
        doc(table(indexes=[{"fields": ["title"], "name": "item"}])),
        "ES104",
        "spec.tables[0].indexes[0].name",
    ),
    ("duplicate-depends-on", doc(dependsOn=["a", "a"]), "ES104", "spec.dependsOn[1]"),
    (
        "join-table-equals-table",
        doc(
            table("a"),
            table("b"),
            table("a_b"),
            relationships=[{"source": "a", "target": "b", "type": "ManyToMany"}],
        ),
        "ES104",
        "spec.relationships[0]",
    ),
    (
        "same-fk-column",
        doc(
            table(),
            relationships=[{"source": "item", "target": "core.x"}, {"source": "item", "target": "core.x"}],
        ),
        "ES104",
        "spec.relationships[1].target",
    ),
    (
        "duplicate-index-field",
        doc(table(indexes=[{"fields": ["title", "title"]}])),
        "ES104",
        "spec.tables[0].indexes[0].fields[1]",
    ),
    # ES112 enum fields
    ("enum-missing", doc(table("item", field("s", "Enum"))), "ES112", "spec.tables[0].fields[0].enum"),
    (
        "enum-undeclared",
        doc(table("item", field("s", "Enum", enum="nope"))),
        "ES112",
        "spec.tables[0].fields[0].enum",
    ),
    # ES106 options for the type
    ("enum-on-string", doc(table("item", field("s", enum="e"))), "ES106", "spec.tables[0].fields[0].enum"),
    (
        "precision-on-int",
        doc(table("item", field("n", "Int", precision=5))),
        "ES106",
        "spec.tables[0].fields[0].precision",
    ),
    (
        "min-length-on-int",
        doc(table("item", field("n", "Int", validation={"minLength": 1}))),
        "ES106",
        "spec.tables[0].fields[0].validation.minLength",
    ),
    (
        "pattern-on-date",
        doc(table("item", field("n", "Date", validation={"pattern": "a"}))),
        "ES106",
        "spec.tables[0].fields[0].validation.pattern",
    ),
    (
        "min-on-string",
        doc(table("item", field("s", validation={"min": 1}))),
        "ES106",
        "spec.tables[0].fields[0].validation.min",
    ),
    (
        "varchar-limit",
        doc(table("item", field("s", validation={"maxLength": 10485761}))),
        "ES106",
        "spec.tables[0].fields[0].validation.maxLength",
    ),
    (
        "int-min-range",
        doc(table("item", field("n", "Int", validation={"min": -(2**31) - 1}))),
        "ES106",
        "spec.tables[0].fields[0].validation.min",
    ),
    (
        "bigint-max-range",
        doc(table("item", field("n", "BigInt", validation={"max": 2**63}))),
        "ES106",
        "spec.tables[0].fields[0].validation.max",
    ),
    (
        "float-range",
        doc(table("item", field("n", "Float", validation={"max": 10**400}))),
        "ES106",
        "spec.tables[0].fields[0].validation.max",
    ),
    (
        "name-on-many-to-one",
        doc(table(), relationships=[{"source": "item", "target": "core.x", "name": "j"}]),
        "ES106",
        "spec.relationships[0].name",
    ),
    # ES110 Decimal
    (
        "precision-zero",
        doc(table("item", field("d", "Decimal", precision=0))),
        "ES110",
        "spec.tables[0].fields[0].precision",
    ),
    (
        "precision-too-big",
        doc(table("item", field("d", "Decimal", precision=1001))),
        "ES110",
        "spec.tables[0].fields[0].precision",
    ),
    (
        "scale-above-precision",
        doc(table("item", field("d", "Decimal", precision=3, scale=5))),
        "ES110",
        "spec.tables[0].fields[0].scale",
    ),
    (
        "scale-negative",
        doc(table("item", field("d", "Decimal", scale=-1))),
        "ES110",
        "spec.tables[0].fields[0].scale",
    ),
    (
        "default-scale-above-precision",
        doc(table("item", field("d", "Decimal", precision=1))),
        "ES110",
        "spec.tables[0].fields[0].precision",
    ),
    # ES107 bounds
    (
        "min-above-max",
        doc(table("item", field("n", "Int", validation={"min": 5, "max": 1}))),
        "ES107",
        "spec.tables[0].fields[0].validation.min",
    ),
    (
        "min-length-above-max-length",
        doc(table("item", field("s", validation={"minLength": 5, "maxLength": 1}))),
        "ES107",
        "spec.tables[0].fields[0].validation.minLength",
    ),
    (
        "min-length-above-default-max",
        doc(table("item", field("s", validation={"minLength": 300}))),
        "ES107",
        "spec.tables[0].fields[0].validation.minLength",
    ),
    (
        "negative-min-length",
        doc(table("item", field("s", "Text", validation={"minLength": -1}))),
        "ES107",
        "spec.tables[0].fields[0].validation.minLength",
    ),
    (
        "zero-varchar",
        doc(table("item", field("s", validation={"maxLength": 0}))),
        "ES107",
        "spec.tables[0].fields[0].validation.maxLength",
    ),
    (
        "infinite-min",
        doc(table("item", field("n", "Float", validation={"min": float("inf"), "max": 1}))),
        "ES107",
        "spec.tables[0].fields[0].validation.min",
    ),
    # ES108 pattern (the subset itself is tested below)
    (
        "pattern-lookahead",
        doc(table("item", field("s", validation={"pattern": "(?=a)"}))),
        "ES108",
        "spec.tables[0].fields[0].validation.pattern",
    ),
    (
        "column-system-name",
        doc(table("item", field("xmin"))),
        "ES124",
        "spec.tables[0].fields[0].name",
    ),
    (
        "pattern-too-complex",
        doc(table("item", field("s", validation={"pattern": "(a{1,255}){1,255}"}))),
        "ES123",
        "spec.tables[0].fields[0].validation.pattern",
    ),
    # ES127 renamedFrom, ES128 renamedValues (rules in validation/renames.py)
    ("table-renamed-from-itself", doc(table("item", renamedFrom="item")), "ES127", "spec.tables[0].renamedFrom"),
    (
        "table-renamed-from-a-kept-table",
        doc(table("item", renamedFrom="other"), table("other")),
        "ES127",
        "spec.tables[0].renamedFrom",
    ),
    (
        "two-tables-renamed-from-one",
        doc(table("a", renamedFrom="old"), table("b", renamedFrom="old")),
        "ES127",
        "spec.tables[1].renamedFrom",
    ),
    (
        "field-renamed-from-a-kept-field",
        doc(table("item", field("a", renamedFrom="b"), field("b"))),
        "ES127",
        "spec.tables[0].fields[0].renamedFrom",
    ),
    (
        "two-fields-renamed-from-one",
        doc(table("item", field("a", renamedFrom="c"), field("b", renamedFrom="c"))),
        "ES127",
        "spec.tables[0].fields[1].renamedFrom",
    ),
    (
        "value-renamed-to-a-missing-value",
        doc(enums=[{"name": "e", "values": ["a"], "renamedValues": {"x": "y"}}]),
        "ES128",
        "spec.enums[0].renamedValues.x",
    ),
    (
        "value-renamed-but-still-listed",
        doc(enums=[{"name": "e", "values": ["a", "b"], "renamedValues": {"a": "b"}}]),
        "ES128",
        "spec.enums[0].renamedValues.a",
    ),
    (
        "two-values-renamed-to-one",
        doc(enums=[{"name": "e", "values": ["c"], "renamedValues": {"a": "c", "b": "c"}}]),
        "ES128",
        "spec.enums[0].renamedValues.b",
    ),
    # ES105 defaults
    (
        "string-default-number",
        doc(table("item", field("s", default=5))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "string-default-bool",
        doc(table("item", field("s", default=True))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "string-default-too-long",
        doc(table("item", field("s", default="x" * 256))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "string-default-too-short",
        doc(table("item", field("s", default="", validation={"minLength": 1}))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "string-default-pattern",
        doc(table("item", field("s", default="abc", validation={"pattern": "^[0-9]+$"}))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "string-default-sql",
        doc(table("item", field("s", default="'); DROP TABLE x; --", validation={"maxLength": 5}))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "string-default-nul",
        doc(table("item", field("s", default="a\0"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-string",
        doc(table("item", field("n", "Int", default="5"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-bool",
        doc(table("item", field("n", "Int", default=True))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-float",
        doc(table("item", field("n", "Int", default=1.5))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-range",
        doc(table("item", field("n", "Int", default=2**31))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-huge",
        doc(table("item", field("n", "BigInt", default=10**5000))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-below-min",
        doc(table("item", field("n", "Int", default=0, validation={"min": 1}))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "int-default-above-max",
        doc(table("item", field("n", "Int", default=9, validation={"max": 1}))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "float-default-nan",
        doc(table("item", field("n", "Float", default=float("nan")))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "float-default-huge",
        doc(table("item", field("n", "Float", default=10**400))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "decimal-default-scale",
        doc(table("item", field("d", "Decimal", precision=10, scale=2, default=1.234))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "decimal-default-digits",
        doc(table("item", field("d", "Decimal", precision=4, scale=2, default=123))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "bool-default-string",
        doc(table("item", field("b", "Boolean", default="yes"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "date-default-invalid-day",
        doc(table("item", field("d", "Date", default="2023-02-29"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "date-default-format",
        doc(table("item", field("d", "Date", default="2024/01/01"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "date-default-number",
        doc(table("item", field("d", "Date", default=20240101))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "datetime-default-no-zone",
        doc(table("item", field("d", "DateTime", default="2024-01-01T00:00:00"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "datetime-default-invalid-hour",
        doc(table("item", field("d", "DateTime", default="2024-01-01T25:00:00Z"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "datetime-default-words",
        doc(table("item", field("d", "DateTime", default="yesterday"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "uuid-default",
        doc(table("item", field("u", "Uuid", default="{123e4567e89b12d3a456426614174000}"))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "json-default-nan",
        doc(table("item", field("j", "Json", default=float("inf")))),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    (
        "enum-default",
        doc(
            table("item", field("s", "Enum", enum="e", default="drafts")),
            enums=[{"name": "e", "values": ["draft"]}],
        ),
        "ES105",
        "spec.tables[0].fields[0].default",
    ),
    # ES109 enum values
    ("enum-no-values", doc(enums=[{"name": "e", "values": []}]), "ES109", "spec.enums[0].values"),
    ("enum-empty-value", doc(enums=[{"name": "e", "values": [""]}]), "ES109", "spec.enums[0].values[0]"),
    (
        "enum-duplicate-value",
        doc(enums=[{"name": "e", "values": ["a", "a"]}]),
        "ES109",
        "spec.enums[0].values[1]",
    ),
    ("enum-long-value", doc(enums=[{"name": "e", "values": ["ü" * 32]}]), "ES109", "spec.enums[0].values[0]"),
    ("enum-nul-value", doc(enums=[{"name": "e", "values": ["a\0"]}]), "ES109", "spec.enums[0].values[0]"),
    # ES119 localization
    (
        "locale-tag",
        doc(enums=[{"name": "e", "values": ["a"], "localization": {"German": {"a": "A"}}}]),
        "ES119",
        "spec.enums[0].localization.German",
    ),
    (
        "locale-unknown-value",
        doc(enums=[{"name": "e", "values": ["a"], "localization": {"pt-BR": {"b": "B"}}}]),
        "ES119",
        "spec.enums[0].localization.pt-BR.b",
    ),
    (
        "locale-odd-key",
        doc(enums=[{"name": "e", "values": ["a"], "localization": {"de": {"a b": "B"}}}]),
        "ES119",
        'spec.enums[0].localization.de["a b"]',
    ),
    (
        "locale-nul-label",
        doc(enums=[{"name": "e", "values": ["a"], "localization": {"de": {"a": "\0"}}}]),
        "ES119",
        "spec.enums[0].localization.de.a",
    ),
    # ES111 / ES121 indexes
    (
        "index-unknown-field",
        doc(table(indexes=[{"fields": ["titel"]}])),
        "ES111",
        "spec.tables[0].indexes[0].fields[0]",
    ),
    ("index-no-fields", doc(table(indexes=[{"fields": []}])), "ES111", "spec.tables[0].indexes[0].fields"),
    (
        "constraint-unknown-field",
        doc(table(uniqueConstraints=[{"fields": ["title", "nope"]}])),
        "ES111",
        "spec.tables[0].uniqueConstraints[0].fields[1]",
    ),
    (
        "index-too-many-fields",
        doc(
            table(
                "item",
                *[field(f"f{i}") for i in range(33)],
                indexes=[{"fields": [f"f{i}" for i in range(33)]}],
            )
        ),
        "ES121",
        "spec.tables[0].indexes[0].fields",
    ),
    # ES114 columns
    (
        "too-many-columns",
        doc(table("item", *[field(f"f{i}") for i in range(1600)])),
        "ES114",
        "spec.tables[0].fields",
    ),
    (
        "too-many-columns-with-fk",
        doc(
            table("item", *[field(f"f{i}") for i in range(1599)]),
            relationships=[{"source": "item", "target": "core.x"}],
        ),
        "ES114",
        "spec.tables[0].fields",
    ),
    # ES113 relationship ends
    (
        "source-not-own",
        doc(relationships=[{"source": "core.x", "target": "item"}]),
        "ES113",
        "spec.relationships[0].source",
    ),
    (
        "target-malformed",
        doc(relationships=[{"source": "item", "target": "a.b.c"}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "target-empty-part",
        doc(relationships=[{"source": "item", "target": "core."}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "own-target-missing",
        doc(relationships=[{"source": "item", "target": "nope"}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "own-target-qualified-missing",
        doc(relationships=[{"source": "item", "target": "shop.nope"}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "core-target-sql",
        doc(relationships=[{"source": "item", "target": "core.x; DROP TABLE y"}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "target-plugin-invalid",
        doc(relationships=[{"source": "item", "target": "Bad.x"}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "one-to-many-foreign",
        doc(relationships=[{"source": "item", "target": "core.x", "type": "OneToMany"}]),
        "ES113",
        "spec.relationships[0].target",
    ),
    (
        "referenced-field-missing",
        doc(table("a"), table("b"), relationships=[{"source": "a", "target": "b", "targetField": "nope"}]),
        "ES113",
        "spec.relationships[0].targetField",
    ),
    (
        "referenced-field-not-unique",
        doc(table("a"), table("b"), relationships=[{"source": "a", "target": "b", "targetField": "title"}]),
        "ES113",
        "spec.relationships[0].targetField",
    ),
    (
        "one-to-many-source-field",
        doc(
            table("a"),
            table("b"),
            relationships=[{"source": "a", "target": "b", "type": "OneToMany", "sourceField": "x"}],
        ),
        "ES113",
        "spec.relationships[0].sourceField",
    ),
    (
        "many-to-many-source-field",
        doc(
            table("a"),
            table("b"),
            relationships=[{"source": "a", "target": "b", "type": "ManyToMany", "sourceField": "x"}],
        ),
        "ES113",
        "spec.relationships[0].sourceField",
    ),
    (
        "core-referenced-column-sql",
        doc(relationships=[{"source": "item", "target": "core.x", "targetField": "id; --"}]),
        "ES113",
        "spec.relationships[0].targetField",
    ),
    # ES118 dependsOn for other plugins
    (
        "target-not-in-depends-on",
        doc(relationships=[{"source": "item", "target": "comments.comment"}]),
        "ES118",
        "spec.relationships[0].target",
    ),
    # ES122 declared FK column type
    (
        "fk-column-enum",
        doc(
            table("item", field("kind", "Enum", enum="e")),
            enums=[{"name": "e", "values": ["a"]}],
            relationships=[{"source": "item", "target": "core.x", "sourceField": "kind"}],
        ),
        "ES122",
        "spec.relationships[0].sourceField",
    ),
    (
        "fk-column-json-one-to-many",
        doc(
            table("a"),
            table("b", field("a_id", "Json")),
            relationships=[{"source": "a", "target": "b", "type": "OneToMany"}],
        ),
        "ES122",
        "spec.relationships[0].source",
    ),
    # ES120 SetNull on a required column
    (
        "set-null-required",
        doc(
            table("item", field("x_id", "BigInt", required=True)),
            relationships=[{"source": "item", "target": "core.x", "onDelete": "SetNull"}],
        ),
        "ES120",
        "spec.relationships[0].onDelete",
    ),
    (
        "set-null-many-to-many",
        doc(relationships=[{"source": "item", "target": "core.x", "type": "ManyToMany", "onDelete": "SetNull"}]),
        "ES120",
        "spec.relationships[0].onDelete",
    ),
    # ES117 dependsOn
    ("depends-on-self", doc(dependsOn=["shop"]), "ES117", "spec.dependsOn[0]"),
    ("depends-on-invalid", doc(dependsOn=["Bad-Plugin"]), "ES117", "spec.dependsOn[0]"),
    # NUL in free text
    ("description-nul", doc(table(description="a\0")), "ES010", "spec.tables[0].description"),
    (
        "field-description-nul",
        doc(table("item", field("a", description="\0"))),
        "ES010",
        "spec.tables[0].fields[0].description",
    ),
    ("plugin-description-nul", doc(description="\0"), "ES010", "spec.description"),
]

# Raw SQL steps; tests/test_raw_sql.py has the many cases of what a step may hold.
RULES += [
    (
        "raw-sql-syntax",
        doc(migrations=[{"id": "s1", "sql": "UPDATE FROM", "rollbackSql": ""}]),
        "ES125",
        "spec.migrations[0].sql",
    ),
    (
        "raw-sql-outside",
        doc(migrations=[{"id": "s1", "sql": "DELETE FROM public.users", "rollbackSql": ""}]),
        "ES126",
        "spec.migrations[0].sql",
    ),
]

# Foreign keys that go round between a plugin's tables (PostgreSQL could create none of them first).
RULES += [
    (
        "reference-cycle",
        doc(
            table("item"),
            table("entry"),
            relationships=[
                {"source": "entry", "sourceField": "owner_id", "target": "item", "type": "ManyToOne"},
                {"source": "entry", "target": "item", "targetField": "entry_id", "type": "OneToMany"},
            ],
        ),
        "ES129",
        "spec.relationships[1]",
    ),
]


def test_self_references_and_join_tables_are_no_cycle() -> None:
    replies = {"source": "item", "target": "item", "targetField": "parent_id", "type": "OneToMany"}
    both_ways = [
        {"source": "entry", "target": "item", "type": "ManyToOne"},
        {"source": "entry", "target": "item", "type": "ManyToMany"},
    ]
    assert check(doc(table("item"), table("entry"), relationships=[replies, *both_ways])) == []


def test_long_chains_of_references_are_checked_without_recursion() -> None:
    """1,200 tables each referencing the next: no cycle (it recursed past Python's limit before); closed
    into a ring, one ES129 naming the relationship back to the first table by name."""
    count = 1200
    names = [f"t{i:04d}" for i in range(count)]
    chain = [{"source": names[i], "target": names[i + 1], "type": "ManyToOne"} for i in range(count - 1)]
    tables = [table(name) for name in names]
    assert check(doc(*tables, relationships=chain)) == []
    ring = [*chain, {"source": names[-1], "target": names[0], "type": "ManyToOne"}]
    problems = [p for p in check(doc(*tables, relationships=ring)) if p.code == "ES129"]
    assert [p.path for p in problems] == [f"spec.relationships[{count - 1}]"]
    assert "tables t0000 -> t0001 -> t0002" in problems[0].message


@pytest.mark.parametrize(("data", "code", "path"), [pytest.param(*r[1:], id=r[0]) for r in RULES])
def test_rule(data: Doc, code: str, path: str) -> None:
    problems = check(data)
    assert (code, path) in {(p.code, p.path) for p in problems}, [p.render() for p in problems]
    for problem in problems:
        assert problem.code in CATALOG
        assert problem.message.endswith((".", "?")), problem.message
        problem.render().encode("utf-8")  # printable in any terminal


def test_every_semantic_code_is_exercised() -> None:
    codes = {r[2] for r in RULES}
    assert {c for c in CATALOG if c.startswith("ES1")} <= codes


# --- Messages say what is wrong and how to fix it ---------------------------------------------


def message(data: Doc, code: str, path: str) -> str:
    return next(p.message for p in check(data) if (p.code, p.path) == (code, path))


def test_identifier_messages_explain_and_suggest() -> None:
    text = message(doc(table("x; DROP TABLE y")), "ES101", "spec.tables[0].name")
    assert "never SQL" in text and '"x_drop_table_y"' in text
    assert "non-ASCII" in message(doc(table("naïve")), "ES101", "spec.tables[0].name")
    assert '"naive"' in message(doc(table("naïve")), "ES101", "spec.tables[0].name")
    assert '"work_order"' in message(doc(table("workOrder")), "ES101", "spec.tables[0].name")
    assert '"n_1item"' in message(doc(table("1item")), "ES101", "spec.tables[0].name")
    assert "NUL" in message(doc(table("item", field("a\0b"))), "ES101", "spec.tables[0].fields[0].name")
    assert "whitespace" in message(doc(table("a b")), "ES101", "spec.tables[0].name")
    assert "such as" not in message(doc(table("表")), "ES101", "spec.tables[0].name")


def test_length_messages_give_bytes_and_cut() -> None:
    text = message(doc(table("item", field("é" * 40))), "ES102", "spec.tables[0].fields[0].name")
    assert "80 bytes" in text and "63" in text and "by 17 bytes" in text
    assert "by 1 byte." in message(doc(table(LONG)), "ES102", "spec.tables[0].name")
    text = message(doc(table("t" * 20), pluginId="p" * 40), "ES102", "spec.tables[0].name")
    assert "SQLite" in text and "66 bytes" in text and "by 3 bytes" in text


def test_version_message_suggests_semver() -> None:
    assert '"1.0.0"' in message(doc(version="1.0"), "ES115", "spec.version")
    assert '"1.2.3"' in message(doc(version="v1.2.3"), "ES115", "spec.version")
    assert '"1.0.0"' in message(doc(version="latest"), "ES115", "spec.version")


def test_suggestions_for_unknown_names() -> None:
    text = message(doc(table(indexes=[{"fields": ["titel"]}])), "ES111", "spec.tables[0].indexes[0].fields[0]")
    assert 'Did you mean "title"?' in text
    data = doc(table("item", field("s", "Enum", enum="status")), enums=[{"name": "statuses", "values": ["a"]}])
    assert 'Did you mean "statuses"?' in message(data, "ES112", "spec.tables[0].fields[0].enum")
    assert "comments" in message(
        doc(relationships=[{"source": "item", "target": "comments.c"}]),
        "ES118",
        "spec.relationships[0].target",
    )


def test_huge_numbers_are_described_not_printed() -> None:
    text = message(
        doc(table("item", field("n", "BigInt", default=10**5000))),
        "ES105",
        "spec.tables[0].fields[0].default",
    )
    assert "about 5001 digits" in text


def test_lone_surrogates_do_not_break_messages() -> None:
    problems = check(doc(table("a\ud800"), enums=[{"name": "e", "values": ["\udfff"]}], pluginId="p\ud800"))
    assert {"ES101", "ES116"} <= {p.code for p in problems}
    for problem in problems:
        problem.render().encode("utf-8")


def test_all_problems_at_once_in_a_stable_order() -> None:
    data = doc(
        table("Bad", field("id"), field("n", "Int", default="x"), indexes=[{"fields": ["nope"]}]),
        pluginId="Bad",
        version="one",
        enums=[{"name": "e", "values": []}],
        relationships=[{"source": "nope", "target": "x.y.z"}],
    )
    first, second = check(data), check(copy.deepcopy(data))
    assert first == second
    codes = [p.code for p in first]
    assert codes[:2] == ["ES116", "ES115"]
    assert {"ES101", "ES103", "ES105", "ES109", "ES111", "ES113"} <= set(codes)


def test_path_prefix() -> None:
    problems = validate(model.parse_spec(doc(pluginId="Bad")), path="")
    assert problems[0].path == "pluginId"


def test_index_may_name_id_and_relationship_columns() -> None:
    data = doc(
        table("item", indexes=[{"fields": ["id", "orders_id"]}]),
        relationships=[{"source": "item", "target": "core.orders"}],
    )
    assert check(data) == []


def test_declared_fk_column_and_unique_reference_are_fine() -> None:
    data = doc(
        table("a", field("b_code", required=True)),
        table("b", field("code", unique=True)),
        relationships=[{"source": "a", "target": "b", "sourceField": "b_code", "targetField": "code"}],
    )
    assert check(data) == []


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"indexes": [{"fields": ["code"], "unique": True}]}, "spec.tables[0].indexes[0]"),
        ({"uniqueConstraints": [{"fields": ["code"]}]}, "spec.tables[0].uniqueConstraints[0]"),
        ({"indexes": [{"fields": ["title", "note"]}, {"fields": ["title", "note"]}]}, "spec.tables[0].indexes[1]"),
        ({"uniqueConstraints": [{"fields": ["title", "note"]}, {"fields": ["title_note"]}]},
         "spec.tables[0].uniqueConstraints[1]"),
    ],
)  # fmt: skip
def test_two_indexes_the_database_would_name_alike_are_refused(extra: Doc, path: str) -> None:
    """Found by the fuzz suite: a unique field with a unique index of its own passed validation, then apply
    refused it as a conflict with itself (ES202)."""
    fields = [field("code", unique=True), field("title"), field("note"), field("title_note")]
    problems = check(doc(table("item", *fields, **extra)))
    assert [(p.code, p.path) for p in problems] == [("ES104", path)], [p.render() for p in problems]
    assert "would get the database name" in problems[0].message
    named = {"indexes": [{"fields": ["code"], "unique": True, "name": "code_lookup"}]}
    assert check(doc(table("item", *fields, **named))) == []  # a named one is another index
    assert check(doc(table("item", *fields, indexes=[{"fields": ["code"]}]))) == []  # not unique: "_idx"


def test_relationship_with_unknown_source_reports_only_the_source() -> None:
    problems = check(doc(relationships=[{"source": "nope", "target": "core.x"}]))
    assert [(p.code, p.path) for p in problems] == [("ES113", "spec.relationships[0].source")]


def test_two_thousand_fields_are_one_problem() -> None:
    """Over the column limit: one ES114 for the table, not one per field (timed in bench/engine.py)."""
    problems = validate(model.parse_spec(two_thousand_fields()))
    assert [(p.code, p.path) for p in problems] == [("ES114", "spec.tables[0].fields")]


def two_thousand_fields() -> dict[str, Any]:
    return doc(
        table(
            "wide",
            *[field(f"f{i}", "Int", default=i, validation={"min": 0}) for i in range(1000)],
            *[field(f"s{i}", default="ab", validation={"pattern": "^[a-z]+$", "maxLength": 5}) for i in range(1000)],
            indexes=[{"fields": [f"f{i}", f"s{i}"]} for i in range(100)],
        )
    )


# --- Portable patterns ------------------------------------------------------------------------

PORTABLE = [
    r"^[A-Z]{3}-[0-9]+$",
    r"a.b*c+d?",
    r"(ab|cd){2,5}?",
    r"(?:x)+?",
    r"a*?b??c{1,}",
    r"[^\]a-z\-]",
    r"\.\*\\\(\)\{\}\[\]",
    r"[]a]",
    r"[0-9A-Za-z_.]",
    r"a{3}|b{0,255}",
    r"a|",
    r"[a-c-]",
    r"[-a-c]",
    r"[a-c\-e]",
]

NOT_PORTABLE = [
    (r"(a)\1", "backreference"),
    (r"\bword\b", "word boundar"),
    (r"\Bx", "word boundar"),
    (r"\Aa", "anchors"),
    (r"a\Z", "anchors"),
    (r"a\z", "anchors"),
    (r"\ya", "anchors"),
    (r"(?=a)", "lookahead"),
    (r"(?!a)", "lookahead"),
    (r"(?<=a)b", "lookbehind"),
    (r"(?<!a)b", "lookbehind"),
    (r"(?P<name>a)", "named groups"),
    (r"(?<name>a)", "named groups"),
    (r"(?i)a", "inline flags"),
    (r"(?i:a)", "inline flags"),
    (r"(?#note)a", "comments"),
    (r"(?>a)", "atomic"),
    (r"\x41", "character-code"),
    (r"\u00e9", "character-code"),
    (r"\N{EM DASH}", "character-code"),
    (r"\0", "character-code"),
    (r"\n", "portable subset"),
    ("\\é", "portable subset"),
    (r"a++", "possessive"),
    (r"a{2}+", "possessive"),
    ("a" * 1001, "1001 characters"),
    ("", "empty"),
    ("a\0", "NUL"),
    (r"[[:alpha:]]", "POSIX"),
    (r"[a[b]", "POSIX"),
    (r"[a&&b]", "set operation"),
    (r"[a--b]", "set operation"),
    (r"[a-c-e]", "after the range a-c"),
    (r"[]-a-c]", "after the range ]-a"),
    (r"[\D]", "beyond ASCII"),
    (r"\d\D\w\W\s\S", "beyond ASCII"),
    (r"[\d\w\s_.]", "beyond ASCII"),
    (r"(a?){0,50}", "empty string"),
    (r"(a{1,255}){1,255}", "unrolls"),
    (r"[\b]", "anchors"),
    (r"[a", "never closed"),
    (r"[^]", "never closed"),
    ("a\\", "lone backslash"),
    (r"a{,3}", "must start"),
    (r"a{x}", "must start"),
    (r"a{256}", "above 255"),
    (r"a{1,300}", "above 255"),
    (r"}", "unescaped"),
    (r"]", "unescaped"),
    (r"*a", "nothing to repeat"),
    (r"^*", "nothing to repeat"),
    (r"(|+)", "nothing to repeat"),
    (r"a**", "nothing to repeat"),
    (r"(a", "does not compile"),
    (r"a)", "does not compile"),
    (r"[z-a]", "does not compile"),
    (r"a{3,2}", "does not compile"),
]


@pytest.mark.parametrize("pattern", PORTABLE)
def test_portable_patterns(pattern: str) -> None:
    assert portable_regex.is_portable_pattern(pattern) is None


@pytest.mark.parametrize(("pattern", "reason"), NOT_PORTABLE, ids=[repr(p)[:30] for p, _ in NOT_PORTABLE])
def test_non_portable_patterns(pattern: str, reason: str) -> None:
    found_reason = portable_regex.is_portable_pattern(pattern)
    assert found_reason is not None and reason in found_reason, found_reason


def test_pattern_problem_is_reported_with_reason() -> None:
    data = doc(table("item", field("s", validation={"pattern": r"(a)\1"})))
    assert "backreference" in message(data, "ES108", "spec.tables[0].fields[0].validation.pattern")


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("^[A-Z]{3}-[0-9]+$", "ABC-12", True),
        ("^[A-Z]{3}-[0-9]+$", "ABC-12\n", False),  # PostgreSQL's $ is the very end
        ("a.b", "a\nb", True),  # PostgreSQL's . matches a newline
        ("[$]", "$", True),
        (r"\$", "$", True),
        (r"[\]$]x$", "]x", True),
        ("b", "abc", True),  # search, not match
        ("^b", "abc", False),
    ],
)
def test_portable_regex_search(pattern: str, value: str, expected: bool) -> None:
    assert portable_regex.search(pattern, value) is expected


# --- Structural problems ----------------------------------------------------------------------


def codes_paths(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in problems]


def test_version_number_says_quote_it() -> None:
    (problem,) = structural({"pluginId": "a", "version": 1.0})
    assert (problem.code, problem.path) == ("ES010", "spec.version")
    assert 'quote it: "1.0.0"' in problem.message.lower()
    (problem,) = structural({"pluginId": "a", "version": 2})
    assert '"2.0.0"' in problem.message


def test_unknown_field_suggests_closest() -> None:
    problems = structural({"pluginId": "a", "version": "1.0.0", "tables": [{"name": "t", "indexs": []}], "PluginID": 1})
    assert codes_paths(problems) == [("ES011", "spec.tables[0].indexs"), ("ES011", "spec.PluginID")]
    assert 'did you mean "indexes"?' in problems[0].message
    assert 'did you mean "pluginId"?' in problems[1].message
    (problem,) = structural({"pluginId": "a", "version": "1.0.0", "zzzzzz": 1})
    assert "did you mean" not in problem.message and "Allowed fields here" in problem.message


def test_unknown_field_named_like_a_union_member_keeps_its_name() -> None:
    data = {"pluginId": "a", "version": "1.0.0", "tables": [{"name": "t", "fields": [field("x", int=1)]}]}
    assert codes_paths(structural(data)) == [("ES011", "spec.tables[0].fields[0].int")]


def test_missing_fields() -> None:
    problems = structural({"tables": [{"fields": [{"type": "Int"}]}]})
    assert codes_paths(problems) == [
        ("ES012", "spec.pluginId"),
        ("ES012", "spec.version"),
        ("ES012", "spec.tables[0].name"),
        ("ES012", "spec.tables[0].fields[0].name"),
    ]
    assert "pluginId: my_plugin" in problems[0].message
    assert problems[2].message == 'Missing required field "name": add it (e.g. name: my_name).'


def test_literal_lists_choices() -> None:
    (problem,) = structural(doc(table("t", field("x", "string"))))
    assert (problem.code, problem.path) == ("ES013", "spec.tables[0].fields[0].type")
    assert "String, Text, Int" in problem.message and 'Did you mean "String"?' in problem.message
    (problem,) = structural(doc(deletionPolicy=1))
    assert problem.code == "ES013" and "Drop, Retain" in problem.message


def test_union_errors_collapse_into_one() -> None:
    problems = structural(doc(table("t", field("x", default=[1], validation={"min": "a"}))))
    assert codes_paths(problems) == [
        ("ES010", "spec.tables[0].fields[0].default"),
        ("ES010", "spec.tables[0].fields[0].validation.min"),
    ]
    assert "a string, a boolean (true or false), an integer or a number" in problems[0].message
    assert "Write the number without quotes" in problems[1].message


@pytest.mark.parametrize(
    ("data", "path", "hint"),
    [
        (doc(table("t", field("x", required="yes"))), "spec.tables[0].fields[0].required", "true or false"),
        (
            doc(table("t", field("x", "Decimal", precision="10"))),
            "spec.tables[0].fields[0].precision",
            "without quotes",
        ),
        (
            doc(table("t", field("x", description=datetime.date(2024, 1, 2)))),
            "spec.tables[0].fields[0].description",
            '"2024-01-02"',
        ),
        (
            doc(table("t", field("x", description=True))),
            "spec.tables[0].fields[0].description",
            'Quote it: "true"',
        ),
        (
            doc(table("t", field("x", description=10**5000))),
            "spec.tables[0].fields[0].description",
            "about 5001 digits",
        ),
        (doc(table("t", field("x", description=3))), "spec.tables[0].fields[0].description", 'Quote it: "3"'),
        (doc(tables={"t": {}}), "spec.tables", "Write a list"),
        (doc(tables=[["t"]]), "spec.tables[0]", "Write a mapping"),
        (doc(dependsOn="comments"), "spec.dependsOn", "got the string"),
        (doc(description=None, tables=None), "spec.tables", "nothing (null)"),
        (doc(version=b"1"), "spec.version", "bytes value"),
        (dict[Any, Any]({1: "x"}) | doc(), "spec[1]", "text key"),
        (
            doc(enums=[{"name": "e", "values": ["a"], "localization": {1: {"a": "b"}}}]),
            "spec.enums[0].localization[1]",
            "",
        ),
        (
            doc(enums=[{"name": "e", "values": ["a"], "localization": {"de": {"a": 1}}}]),
            "spec.enums[0].localization.de.a",
            "",
        ),
        (
            doc(enums=[{"name": "e", "values": ["a"], "localization": {"de": {"str": 1}}}]),
            "spec.enums[0].localization.de.str",
            "",
        ),
    ],
)
def test_wrong_types(data: Any, path: str, hint: str) -> None:
    problems = structural(data)
    assert codes_paths(problems)[0] == ("ES010", path), problems
    assert hint in problems[0].message


def test_root_errors_and_prefix() -> None:
    assert codes_paths(structural([], prefix="")) == [("ES010", "")]
    assert codes_paths(structural(None)) == [("ES010", "spec")]
    assert codes_paths(structural({"pluginId": "a"}, prefix="")) == [("ES012", "version")]


def test_whole_document_errors() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        model.parse_document({"apiVersion": "v1", "kind": "ExtensionSchema", "metadata": {"name": b"\xff"}, "spec": {}})
    problems = structural_problems(info.value)
    assert codes_paths(problems) == [
        ("ES013", "apiVersion"),
        ("ES010", "metadata.name"),
        ("ES012", "spec.pluginId"),
        ("ES012", "spec.version"),
    ]
    assert model.API_VERSION in problems[0].message
    assert problems[1].message.endswith(".")


def test_odd_keys_are_quoted_in_paths() -> None:
    (problem,) = structural(doc(**{"a b": 1}))
    assert problem.path == 'spec["a b"]'


def test_errors_of_other_models_drop_member_tags() -> None:
    adapter: pydantic.TypeAdapter[list[int | str]] = pydantic.TypeAdapter(list[int | str])
    with pytest.raises(pydantic.ValidationError) as info:
        adapter.validate_python([1, None])
    assert codes_paths(structural_problems(info.value, "x")) == [("ES010", "x[1]")]


def test_errors_of_other_models_list_choices_without_suggestions() -> None:
    class Other(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        kind: Literal["a", "b"]

    with pytest.raises(pydantic.ValidationError) as info:
        Other.model_validate({"kind": "c", "extra": 1})
    kind, extra = structural_problems(info.value)
    assert (kind.code, kind.path, extra.code, extra.path) == ("ES013", "kind", "ES011", "extra")
    assert "'a' or 'b'" in kind.message and extra.message == 'Unknown field "extra": remove it.'


def test_invalid_decimal_reports_precision_not_default() -> None:
    data = doc(table("item", field("d", "Decimal", precision=0, default=1)))
    assert [(p.code, p.path) for p in check(data)] == [("ES110", "spec.tables[0].fields[0].precision")]


def test_malformed_core_table_is_reported_once() -> None:
    problems = check(doc(relationships=[{"source": "item", "target": "core.x; DROP TABLE y"}]))
    assert [(p.code, p.path) for p in problems] == [("ES113", "spec.relationships[0].target")]


def test_enum_default_suggests_value() -> None:
    data = doc(
        table("item", field("s", "Enum", enum="e", default="drafts")),
        enums=[{"name": "e", "values": ["draft"]}],
    )
    text = message(data, "ES105", "spec.tables[0].fields[0].default")
    assert text.endswith('use one of the values of enum "e": draft (did you mean "draft"?).')
