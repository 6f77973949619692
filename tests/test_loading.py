"""Reading schema files: hostile YAML (duplicate keys, alias bombs) and directories with dangling links."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from extschema import limits, loading, reconcile
from extschema.problems import Kind, ProblemError
from tests.helpers import EXAMPLES, run, tables, write_schema

HEADER = "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata:\n  name: {name}\n"


def _problems(text: str) -> list[str]:
    loaded, problems = loading.parse_text(text, "f.yaml")
    assert not loaded
    return [p.render() for p in problems]


def _bomb(levels: int, under: str = "status") -> str:
    """A "billion laughs" document: each level is ten aliases of the one before (10**levels values)."""
    lines = ['l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    anchors = "".join(f"  {line}\n" for line in lines)
    return HEADER.format(name="bomb") + "spec:\n  pluginId: bomb\n  version: 1.0.0\n" + f"{under}:\n{anchors}"


# --- characters YAML refuses ----------------------------------------------------------------------


def test_a_character_yaml_refuses_is_es001_at_its_line_and_column() -> None:
    """A C1 control character in a plain string (found by the fuzz suite: the problem said neither where nor how)."""
    text = HEADER.format(name="x") + 'spec:\n  pluginId: "a\x91b"\n'
    found = loading.read_text(text, "f.yaml")
    [problem] = found.problems
    assert (problem.code, problem.line, problem.column) == ("ES001", 6, 15)
    assert "#x0091" in problem.message and "\\u0091" in problem.message


# --- deep nesting ------------------------------------------------------------------------------


def test_a_deeply_nested_value_is_a_problem_not_a_recursion_error() -> None:
    """Found by the fuzz suite: a value 500 levels deep where a string belongs raised RecursionError (the
    partial document was deep-copied to check the rest)."""
    deep = "[" * 500 + "]" * 500
    text = HEADER.format(name="deep") + f"spec:\n  pluginId: deep\n  version: 1.0.0\n  description: {deep}\n"
    text += "  tables: [{name: item, fields: [{name: title, type: String, colour: red}]}]\n"
    problems = _problems(text)
    assert any("spec.description: ES010" in p for p in problems), problems
    assert any("spec.tables[0].fields[0].colour" in p for p in problems), problems


# --- duplicate keys ----------------------------------------------------------------------------


def test_duplicate_key_is_refused_with_its_line() -> None:
    text = HEADER.format(name="dup") + "spec:\n  pluginId: dup\n  version: 1.0.0\n  pluginId: other\n"
    assert _problems(text) == [
        "f.yaml:8:3: -: ES006: duplicate key 'pluginId' (first at line 6); YAML keeps only the last, remove one"
    ]


def test_duplicate_key_deep_in_a_field_list_is_refused() -> None:
    text = HEADER.format(name="dup") + (
        "spec:\n  pluginId: dup\n  version: 1.0.0\n  tables:\n  - name: t\n    fields:\n"
        "    - {name: a, type: Int, type: String}\n"
    )
    [problem] = _problems(text)
    assert problem.startswith("f.yaml:11:28: -: ES006: duplicate key 'type'"), problem


def test_duplicate_key_in_a_later_document_of_the_stream_is_refused() -> None:
    good = HEADER.format(name="a") + "spec:\n  pluginId: a\n  version: 1.0.0\n"
    bad = HEADER.format(name="b") + "spec:\n  pluginId: b\n  version: 1.0.0\nspec: {}\n"
    [problem] = _problems(f"{good}---\n{bad}")
    assert ":16:1: -: ES006: duplicate key 'spec' (first at line 13)" in problem, problem


def test_merge_keys_may_be_overridden() -> None:
    """``<<: *base`` then an explicit key is YAML's way to override, not a duplicate."""
    text = HEADER.format(name="merge") + (
        "base: &base {name: a, type: Int}\n"
        "spec:\n  pluginId: merge\n  version: 1.0.0\n  tables:\n  - name: t\n    fields:\n"
        "    - {<<: *base, type: String}\n"
    )
    loaded, problems = loading.parse_text(text.replace("base: &base", "x-base: &base"), "f.yaml")
    assert [p.code for p in problems] == ["ES011"]  # only the unknown top-level key, no ES006
    text = text.replace("base: &base {name: a, type: Int}\n", "").replace("{<<: *base, ", "{<<: {name: a}, ")
    loaded, problems = loading.parse_text(text, "f.yaml")
    assert not problems
    assert loaded[0].spec.tables[0].fields[0].type == "String"


# --- alias expansion -----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [8, 12])
def test_alias_bomb_is_refused_quickly(levels: int) -> None:
    text = _bomb(levels)
    assert len(text) < 1000
    started = time.perf_counter()
    [problem] = _problems(text)
    assert time.perf_counter() - started < 1.0
    assert ":1:1: -: ES007: aliases expand this document to " in problem
    expanded = re.search(r"to ([\d,]+) values", problem)
    assert expanded and int(expanded[1].replace(",", "")) > 10**levels


def test_a_few_aliases_are_fine() -> None:
    text = HEADER.format(name="few") + (
        "spec:\n  pluginId: few\n  version: 1.0.0\n  tables:\n"
        "  - name: a\n    fields: &fields [{name: title, type: String}, {name: body, type: Text}]\n"
        "  - name: b\n    fields: *fields\n"
    )
    loaded, problems = loading.parse_text(text, "f.yaml")
    assert not problems
    assert [f.name for f in loaded[0].spec.tables[1].fields] == ["title", "body"]


def test_expansion_limit_counts_only_values_added_by_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_ALIAS_EXPANSION", 20)
    base = HEADER.format(name="lim") + "spec:\n  pluginId: lim\n  version: 1.0.0\n  description: x\n"
    ten = "[" + ", ".join(["a"] * 10) + "]"
    assert loading.parse_text(base + f"status: {{x: &x {ten}, y: *x}}\n", "f.yaml")[1] == []  # 11 added
    [problem] = _problems(base + f"status: {{x: &x {ten}, y: *x, z: *x}}\n")  # 22 added
    assert ": ES007: " in problem


def test_fast_loader_is_kept() -> None:
    """libyaml's parser stays in use when present (the pure-Python one is ten times slower)."""
    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(loading._StrictLoader, yaml.CSafeLoader)


# --- directories -------------------------------------------------------------------------------


def test_dangling_symlink_in_a_directory_is_reported(tmp_path: Path) -> None:
    write_schema(tmp_path, "good", "pluginId: good\nversion: 1.0.0")
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing" / "gone.yaml")
    with pytest.raises(ProblemError) as raised:
        loading.load([str(tmp_path)])
    assert raised.value.kind == Kind.INVALID
    [problem] = raised.value.problems
    assert (problem.code, problem.file) == ("ES005", str(tmp_path / "gone.yaml"))
    assert "dangling symbolic link" in problem.message


def test_symlink_to_a_file_is_read(tmp_path: Path) -> None:
    target = write_schema(tmp_path / "..", "linked", "pluginId: linked\nversion: 1.0.0")
    (tmp_path / "linked.yaml").symlink_to(target)
    assert [item.spec.plugin_id for item in loading.load([str(tmp_path)])] == ["linked"]


def test_directory_of_only_dangling_links_is_not_also_empty(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(ProblemError) as raised:
        loading.load([str(tmp_path)])
    assert [p.code for p in raised.value.problems] == ["ES005"]


# --- the old import surface --------------------------------------------------------------------


def test_reconcile_still_exports_loading_names() -> None:
    assert reconcile.load is loading.load
    assert reconcile.from_object is loading.from_object
    assert reconcile.Loaded is loading.Loaded
    assert [item.spec.plugin_id for item in reconcile.load([str(EXAMPLES / "comments.yaml")])] == ["comments"]


# --- through the CLI: a refused file leaves the database untouched ---------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [("duplicate", "ES006"), ("bomb", "ES007"), ("dangling", "ES005")],
)
def test_hostile_files_change_nothing_in_the_database(tmp_path: Path, db_url: str, name: str, code: str) -> None:
    assert run("status", "-d", db_url).exit_code == 0
    before = tables(db_url)
    directory = tmp_path / "schemas"
    directory.mkdir()
    good = "pluginId: good\nversion: 1.0.0\ntables: [{name: t, fields: [{name: a, type: Int}]}]"
    write_schema(directory, "good", good)
    if name == "duplicate":
        write_schema(directory, "dup", "pluginId: dup\nversion: 1.0.0\nversion: 2.0.0")
    elif name == "bomb":
        (directory / "bomb.yaml").write_text(_bomb(9))
    else:
        (directory / "gone.yaml").symlink_to(directory / "nowhere.yaml")
    outcome = run("apply", str(directory), "-d", db_url)
    assert outcome.exit_code == 1, outcome.stderr
    assert f": {code}: " in outcome.stderr
    assert tables(db_url) == before
    assert run("status", "-d", db_url, "-o", "json").items() == []


def test_a_custom_resource_too_large_to_record_is_refused_with_es009() -> None:
    """The operator and the webhook load resources through from_object: a spec the API server could store but
    not together with its status is refused before anything runs, saying how large it is and what to do."""

    def body(tables: int, last: int) -> dict[str, object]:
        """*tables* tables described with 4,000 characters, the last one with *last*."""
        spec = {
            "pluginId": "big",
            "version": "1.0.0",
            "suspend": False,
            "tables": [
                {"name": f"t{i}", "description": "d" * (last if i == tables - 1 else 4000), "fields": []}
                for i in range(tables)
            ],
        }
        return {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": {"name": "b"},
            "spec": spec,
        }

    def size(document: dict[str, object]) -> int:
        return len(json.dumps(document["spec"], separators=(",", ":")).encode())

    limit = limits.MAX_RESOURCE_SPEC_BYTES
    tables = next(n for n in range(1, 257) if 0 <= limit - size(body(n, 0)) <= 4000)
    last = limit - size(body(tables, 0))
    assert size(body(tables, last)) == limit
    loading.from_object(body(tables, last), "ns/b")  # exactly at the limit: loaded
    with pytest.raises(ProblemError) as caught:
        loading.from_object(body(tables, last + 1), "ns/b")
    (problem,) = caught.value.problems
    assert (problem.code, problem.path, caught.value.kind) == ("ES009", "spec", Kind.INVALID)
    assert f"{limit + 1:,} bytes" in problem.message and "dependsOn" in problem.message


# --- documents of every kind, located ----------------------------------------------------------


def test_read_text_sorts_documents_by_kind_and_locates_their_problems() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
        "apiVersion: extschema.io/v1alpha1\nkind: DatabaseTarget\nmetadata: {name: db}\nspec: {url: 'sqlite:////x.db'}\n"
        "---\n" + HEADER.format(name="a") + "spec:\n  pluginId: a\n  version: 1.0.0\n  targetRef: {name: db}\n"
    )
    found = loading.read_text(text, "f.yaml")
    assert found.problems == []
    assert [(s.kind, s.line) for s in found.skipped] == [("ConfigMap", 1)]
    assert [t.name for t in found.targets] == ["db"]
    (schema,) = found.schemas
    assert schema.spec.target_ref is not None and schema.spec.target_ref.name == "db"
    assert loading.target_warnings(found) == []


def test_a_problem_in_a_merged_value_is_located_where_the_value_is_written() -> None:
    text = HEADER.format(name="m") + (
        "x-base: &base {type: Strnig}\nspec:\n  pluginId: m\n  version: 1.0.0\n"
        "  tables:\n    - name: t\n      fields:\n        - <<: *base\n          name: f\n"
    )
    _, problems = loading.parse_text(text, "f.yaml")
    by_path = {p.path: (p.code, p.line) for p in problems}
    assert by_path["x-base"] == ("ES011", 5)
    assert by_path["spec.tables[0].fields[0].type"] == ("ES013", 5)  # in the anchor (&base), where Strnig is


def test_from_object_keeps_the_operator_fields_typed() -> None:
    body = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "a", "namespace": "ns", "uid": "x"},
        "spec": {"pluginId": "a", "version": "1.0.0", "targetRef": {"name": "db"}, "suspend": True},
    }
    loaded = loading.from_object(body, "ns/a")
    assert loaded.spec.suspend is True and loaded.spec.target_ref is not None
    assert (
        loaded.spec.checksum()
        == loading.from_object({**body, "spec": {"pluginId": "a", "version": "1.0.0"}}, "x").spec.checksum()
    )
