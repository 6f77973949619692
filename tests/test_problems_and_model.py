"""Pure unit tests of extschema.problems and extschema.model (checksums, targets, relationships, owners)."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from extschema import model
from extschema.model import ForeignKey, JoinTable, TargetRef, parse_target, resolve_relationships
from extschema.problems import CATALOG, Kind, Problem, ProblemError, escape, render_all
from extschema.wire import ProblemView

# --- problems ---------------------------------------------------------------------------------


def test_problem_render_without_and_with_file() -> None:
    problem = Problem("ES101", "spec.tables[0].name", "bad name")
    assert problem.render() == "spec.tables[0].name: ES101: bad name"
    assert problem.located("a.yaml").render() == "a.yaml: spec.tables[0].name: ES101: bad name"


def test_problem_render_without_a_path_shows_a_dash() -> None:
    assert Problem("ES005", "", "no such file").render() == "-: ES005: no such file"
    assert Problem("ES005", "", "no such file", file="x.yaml").render() == "x.yaml: -: ES005: no such file"


def test_located_returns_a_new_problem() -> None:
    problem = Problem("ES104", "spec.enums", "duplicate")
    located = problem.located("plugin.yaml")
    assert located == Problem("ES104", "spec.enums", "duplicate", "plugin.yaml")
    assert problem.file is None
    with pytest.raises(AttributeError):
        problem.file = "other.yaml"  # type: ignore[misc]


def test_problem_as_json() -> None:
    """A problem's one JSON form is its wire view (extschema.wire.ProblemView)."""
    assert ProblemView.of(Problem("ES201", "spec.pluginId", "taken", "f.yaml")).dump() == {
        "code": "ES201",
        "path": "spec.pluginId",
        "message": "taken",
        "file": "f.yaml",
        "subject": None,
        "line": None,
        "column": None,
    }
    assert ProblemView.of(Problem("ES201", "spec.pluginId", "taken")).file is None
    assert ProblemView.of(Problem("ES201", "spec.pluginId", "taken").about("ns/a")).subject == "ns/a"


@pytest.mark.parametrize("code", ["ES999", "es101", "", "ES1010"])
def test_unknown_code_is_a_programming_error(code: str) -> None:
    with pytest.raises(ValueError, match="unknown problem code"):
        Problem(code, "spec", "x")


def test_every_catalog_code_is_accepted() -> None:
    for code in CATALOG:
        assert Problem(code, "p", "m").code == code


def test_problem_error_one() -> None:
    error = ProblemError.one("ES306", "spec.pluginId", "not registered", kind="usage")
    assert error.kind == "usage"
    assert error.problems == [Problem("ES306", "spec.pluginId", "not registered")]
    assert str(error) == "spec.pluginId: ES306: not registered"
    assert ProblemError.one("ES101", "p", "m").kind == "invalid"


def test_problem_error_joins_every_problem() -> None:
    problems = (Problem("ES101", "a", "one"), Problem("ES102", "b", "two", "f.yaml"))
    error = ProblemError(problems, kind="refused")
    assert error.problems == list(problems)
    assert str(error) == "a: ES101: one; f.yaml: b: ES102: two"
    assert ProblemError([]).kind == "invalid"


def test_render_all() -> None:
    problems = [Problem("ES101", "a", "one"), Problem("ES102", "b", "two", "f.yaml")]
    assert render_all(problems) == "a: ES101: one\nf.yaml: b: ES102: two"
    assert render_all([]) == ""
    assert render_all(iter(problems[:1])) == "a: ES101: one"


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_has_an_exit_code_and_a_condition_reason(kind: Kind) -> None:
    from extschema import cli, conditions

    assert cli.EXIT_BY_KIND[kind] in (cli.EXIT_INVALID, cli.EXIT_USAGE, cli.EXIT_DATABASE)
    reason = conditions._REASON_BY_KIND[kind]
    assert reason in conditions.CATALOG
    assert conditions.outcome_of(ProblemError.one("ES101", "p", "m", kind=kind)).reason == reason


def test_kinds_compare_equal_to_their_old_strings() -> None:
    assert [str(k) for k in Kind] == [
        "invalid", "conflict", "refused", "dependency", "usage", "database", "approval", "retryable", "unreachable"
    ]  # fmt: skip
    plain: str = "conflict"
    error = ProblemError.one("ES101", "p", "m", kind=plain)
    assert error.kind is Kind.CONFLICT and error.kind == plain and f"{error.kind}" == plain
    assert {plain: 1}[error.kind] == 1  # mappings keyed by the old strings still find it
    with pytest.raises(ValueError):
        ProblemError.one("ES101", "p", "m", kind="nonsense")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain name-1.0 ü ✓", "plain name-1.0 ü ✓"),
        ("clear\x1b[2Jscreen", "clear\\x1b[2Jscreen"),
        ("bell\x07 nul\x00 del\x7f c1\x9b", "bell\\x07 nul\\x00 del\\x7f c1\\x9b"),
        ("line\nbreak\rback\ttab", "line\\nbreak\\rback\\ttab"),
        ("bidi\u202eoverride\u2028sep", "bidi\\u202eoverride\\u2028sep"),
        ("lone\udcffsurrogate", "lone\\udcffsurrogate"),
    ],
)
def test_escape_makes_text_safe_for_a_terminal(text: str, shown: str) -> None:
    assert escape(text) == shown


def test_escape_may_keep_line_breaks_of_messages() -> None:
    assert escape("ERROR: x\nDETAIL: \x1b[2J", newlines=True) == "ERROR: x\nDETAIL: \\x1b[2J"


def test_render_escapes_file_path_and_message() -> None:
    problem = Problem("ES101", "spec.\x1b[1m", "bad \x1b[2J\nname", file="a\x1b]0;title\x07.yaml")
    assert problem.render() == "a\\x1b]0;title\\x07.yaml: spec.\\x1b[1m: ES101: bad \\x1b[2J\nname"


# --- model: checksums -------------------------------------------------------------------------


def spec(**extra: Any) -> model.ExtensionSchemaSpec:
    data: dict[str, Any] = {"pluginId": "shop", "version": "1.0.0"}
    data.update(extra)
    return model.parse_spec(data)


def test_checksum_is_stable_under_key_order() -> None:
    one = model.parse_spec(
        {
            "pluginId": "shop",
            "version": "1.0.0",
            "tables": [{"name": "item", "fields": [{"name": "title", "type": "String", "required": True}]}],
        }
    )
    two = model.parse_spec(
        {
            "tables": [{"fields": [{"required": True, "type": "String", "name": "title"}], "name": "item"}],
            "version": "1.0.0",
            "pluginId": "shop",
        }
    )
    assert one.canonical_json() == two.canonical_json()
    assert one.checksum() == two.checksum()
    assert len(one.checksum()) == 64
    int(one.checksum(), 16)


def test_checksum_is_stable_under_spelled_out_defaults() -> None:
    implicit = spec(tables=[{"name": "item", "fields": [{"name": "n", "type": "Int"}]}])
    explicit = spec(
        dependsOn=[],
        enums=[],
        relationships=[],
        deletionPolicy="Drop",
        tables=[
            {
                "name": "item",
                "indexes": [],
                "uniqueConstraints": [],
                "fields": [{"name": "n", "type": "Int", "required": False, "unique": False, "default": None}],
            }
        ],
    )
    assert implicit.checksum() == explicit.checksum()


def test_checksum_changes_with_content() -> None:
    base = spec(tables=[{"name": "item"}])
    assert base.checksum() != spec(tables=[{"name": "item"}], version="1.0.1").checksum()
    assert base.checksum() != spec(tables=[{"name": "item"}], deletionPolicy="Retain").checksum()
    assert base.checksum() != spec(tables=[{"name": "items"}]).checksum()


def test_canonical_json_uses_aliases_and_sorted_keys() -> None:
    text = spec(dependsOn=["kb"]).canonical_json()
    assert text.startswith('{"deletionPolicy":"Drop","dependsOn":["kb"],"description":null,')
    assert '"pluginId":"shop"' in text
    assert " " not in text


def test_spec_lookups() -> None:
    s = spec(
        enums=[{"name": "status", "values": ["a"]}],
        tables=[{"name": "item", "fields": [{"name": "title", "type": "String"}]}],
    )
    assert s.table("item") is s.tables[0]
    assert s.table("nope") is None
    assert s.enum("status") is s.enums[0]
    assert s.enum("nope") is None
    assert s.tables[0].field("title") is s.tables[0].fields[0]
    assert s.tables[0].field("nope") is None


def test_spec_is_strict_and_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        spec(tables=[{"name": "item", "fields": [{"name": "n", "type": "Int", "required": "yes"}]}])
    with pytest.raises(pydantic.ValidationError):
        spec(unknown=1)
    with pytest.raises(pydantic.ValidationError):
        spec().plugin_id = "other"  # type: ignore[misc]


# --- model: documents and owners --------------------------------------------------------------


def document(**metadata: Any) -> model.ExtensionSchema:
    return model.parse_document(
        {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": metadata,
            "spec": {"pluginId": "shop", "version": "1.0.0"},
        }
    )


def test_owner_without_namespace_is_the_name() -> None:
    assert document(name="shop").owner == "shop"


def test_owner_with_namespace() -> None:
    doc = document(name="shop", namespace="team-a", labels={"x": "y"})
    assert doc.owner == "team-a/shop"
    assert doc.metadata.model_extra == {"labels": {"x": "y"}}


def test_document_constants_and_wrong_kind() -> None:
    assert model.API_VERSION == "extschema.io/v1alpha1"
    with pytest.raises(model.ValidationError):
        model.parse_document(
            {"apiVersion": "extschema.io/v1", "kind": "ExtensionSchema", "metadata": {"name": "x"}, "spec": {}}
        )


# --- model: targets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("report", TargetRef(plugin="shop", table="report")),
        ("comments.comment", TargetRef(plugin="comments", table="comment")),
        ("core.work_orders", TargetRef(plugin="core", table="work_orders")),
        ("a.b.c", None),
        ("", None),
        (".table", None),
        ("plugin.", None),
        ("..", None),
    ],
)
def test_parse_target(target: str, expected: TargetRef | None) -> None:
    assert parse_target(target, "shop") == expected


def test_target_ref_core_and_str() -> None:
    assert TargetRef(plugin="core", table="equipment").is_core
    assert not TargetRef(plugin="shop", table="core").is_core
    assert str(TargetRef(plugin="kb", table="article")) == "kb.article"


# --- model: relationships ---------------------------------------------------------------------


def rels(*relationships: dict[str, Any], tables: list[dict[str, Any]] | None = None) -> model.ExtensionSchemaSpec:
    return spec(
        tables=tables if tables is not None else [{"name": "order"}, {"name": "line"}],
        relationships=list(relationships),
    )


def own(table: str) -> TargetRef:
    return TargetRef(plugin="shop", table=table)


def test_many_to_one_defaults() -> None:
    fks, joins = resolve_relationships(rels({"source": "line", "target": "order"}))
    assert joins == []
    assert fks == [
        ForeignKey(
            relationship=0,
            table="line",
            column="order_id",
            references=own("order"),
            referenced_column="id",
            on_delete="Restrict",
        )
    ]


def test_many_to_one_explicit_fields_to_core() -> None:
    fks, _ = resolve_relationships(
        rels(
            {
                "source": "line",
                "sourceField": "wo",
                "target": "core.work_orders",
                "targetField": "number",
                "onDelete": "Cascade",
            }
        )
    )
    (fk,) = fks
    assert (fk.table, fk.column, fk.referenced_column, fk.on_delete) == ("line", "wo", "number", "Cascade")
    assert fk.references == TargetRef(plugin="core", table="work_orders")
    assert (fk.unique, fk.declared, fk.required) == (False, False, False)


def test_one_to_one_is_unique() -> None:
    (fk,), _ = resolve_relationships(rels({"source": "line", "target": "order", "type": "OneToOne"}))
    assert fk.unique is True
    assert fk.column == "order_id"


def test_one_to_many_puts_the_column_on_the_target() -> None:
    (fk,), _ = resolve_relationships(rels({"source": "order", "target": "line", "type": "OneToMany"}))
    assert (fk.table, fk.column, fk.references, fk.referenced_column) == ("line", "order_id", own("order"), "id")
    (fk2,), _ = resolve_relationships(
        rels(
            {
                "source": "order",
                "target": "line",
                "type": "OneToMany",
                "sourceField": "number",
                "targetField": "parent",
            }
        )
    )
    assert (fk2.table, fk2.column, fk2.referenced_column) == ("line", "parent", "number")


def test_declared_fk_column_takes_unique_and_required_from_the_field() -> None:
    tables = [
        {"name": "order"},
        {"name": "line", "fields": [{"name": "order_id", "type": "BigInt", "required": True, "unique": True}]},
    ]
    (fk,), _ = resolve_relationships(rels({"source": "line", "target": "order"}, tables=tables))
    assert (fk.declared, fk.required, fk.unique) == (True, True, True)
    tables[1]["fields"] = [{"name": "order_id", "type": "BigInt"}]
    (fk,), _ = resolve_relationships(rels({"source": "line", "target": "order"}, tables=tables))
    assert (fk.declared, fk.required, fk.unique) == (True, False, False)


def test_source_table_missing_is_not_declared() -> None:
    (fk,), _ = resolve_relationships(rels({"source": "ghost", "target": "order"}))
    assert (fk.table, fk.declared, fk.required) == ("ghost", False, False)


def test_many_to_many_creates_a_join_table() -> None:
    fks, joins = resolve_relationships(
        rels(
            {"source": "order", "target": "line"},
            {"source": "order", "target": "kb.article", "type": "ManyToMany", "onDelete": "Cascade"},
        )
    )
    assert len(fks) == 1
    assert joins == [
        JoinTable(
            relationship=1,
            name="order_article",
            left=ForeignKey(
                relationship=1,
                table="order_article",
                column="order_id",
                references=own("order"),
                referenced_column="id",
                on_delete="Cascade",
                required=True,
            ),
            right=ForeignKey(
                relationship=1,
                table="order_article",
                column="article_id",
                references=TargetRef(plugin="kb", table="article"),
                referenced_column="id",
                on_delete="Cascade",
                required=True,
            ),
        )
    ]


def test_many_to_many_named_with_fields() -> None:
    _, (join,) = resolve_relationships(
        rels(
            {
                "source": "order",
                "target": "line",
                "type": "ManyToMany",
                "name": "order_lines",
                "sourceField": "number",
                "targetField": "code",
            }
        )
    )
    assert join.name == "order_lines"
    assert (join.left.table, join.left.referenced_column) == ("order_lines", "number")
    assert (join.right.column, join.right.referenced_column) == ("line_id", "code")


def test_self_referencing_many_to_many() -> None:
    _, (join,) = resolve_relationships(rels({"source": "order", "target": "order", "type": "ManyToMany"}))
    assert join.name == "order_order"
    assert (join.left.column, join.right.column) == ("order_id", "related_order_id")
    assert join.left.references == join.right.references == own("order")


def test_malformed_targets_are_skipped() -> None:
    fks, joins = resolve_relationships(
        rels(
            {"source": "line", "target": "a.b.c"},
            {"source": "line", "target": "", "type": "ManyToMany"},
            {"source": "line", "target": "order"},
        )
    )
    assert joins == []
    assert [fk.relationship for fk in fks] == [2]
