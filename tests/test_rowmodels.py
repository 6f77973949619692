"""rowmodels: the API's pydantic models accept exactly what the database stores as given."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extschema import model, planning, portable_regex, rowmodels
from tests import rowvalues
from tests.conftest import EXAMPLES
from tests.helpers import run, write_schema

_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[rowvalues.Target]:
    """The table of rowvalues.SPEC, created by `extschema apply` in a fresh database of each kind."""
    tmp = tmp_path_factory.mktemp("rowdiff")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'rows.db'}"
        cleanup = None
    else:
        admin = str(request.getfixturevalue("pg_admin_url"))
        name = f"rowdiff_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
        url = admin.rpartition("/")[0] + f"/{name}"
        cleanup = admin
    path = write_schema(tmp, "rowdiff", rowvalues.SPEC)
    outcome = run("apply", str(path), "-d", url)
    assert outcome.exit_code == 0, outcome.stderr
    found = rowvalues.Target.open(url)
    yield found
    found.close()
    if cleanup is not None:
        with psycopg.connect(cleanup, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _models() -> rowmodels.TableModels:
    return rowmodels.models_for(rowvalues.resolved(), rowvalues.PLUGIN)[rowvalues.TABLE]


def _model_answer(name: str, value: Any) -> tuple[bool, Any]:
    """Whether Create accepts ``{name: value}`` (from JSON), and the value it made of it."""
    create = _models().create
    body = json.dumps({name: value})
    try:
        decoded = create.model_validate(json.loads(body))  # a framework decoding JSON first, then validating
    except pydantic.ValidationError:
        decoded = None
    try:
        made = create.model_validate_json(body)
    except pydantic.ValidationError:
        assert decoded is None, f"{name}={value!r}: accepted as a Python value, refused as JSON"
        return False, value
    assert decoded is not None and decoded == made, f"{name}={value!r}: refused as a Python value, accepted as JSON"
    return True, made.model_dump(exclude_unset=True)[name]


def _has_nul(value: Any) -> bool:
    return "\\u0000" in json.dumps(value)


@pytest.mark.parametrize("name", rowvalues.columns())
def test_create_model_accepts_exactly_what_the_database_stores(target: rowvalues.Target, name: str) -> None:
    if target.backend == "sqlite" and name in rowvalues.SQLITE_UNENFORCED:
        pytest.skip("SQLite does not enforce this pattern (plan warning ES501): compared on PostgreSQL")

    @_SETTINGS
    @given(value=rowvalues.values_for(name))
    def check(value: Any) -> None:
        accepted, made = _model_answer(name, value)
        if target.backend == "sqlite" and _has_nul(value):
            # SQLite stores NUL; PostgreSQL cannot: the models refuse it everywhere.
            assert not accepted
            return
        stored = target.accepts(name, made if accepted else value)
        assert accepted == stored, f"{name}={value!r}: model {'accepts' if accepted else 'refuses'}, database " + (
            "stores it" if stored else "refuses or changes it"
        )

    check()


def test_required_field_refuses_null_in_create_and_patch(target: rowvalues.Target) -> None:
    models = _models()
    assert not target.accepts("must", None)
    for m in (models.create, models.patch):
        with pytest.raises(pydantic.ValidationError) as caught:
            m.model_validate_json('{"must": null}')
        [error] = caught.value.errors()
        assert error["loc"] == ("must",)
        assert error["type"] == "null_not_allowed" and "null is not allowed" in error["msg"]
    # Absent: the database's default (Create) or unchanged (Patch).
    assert models.create.model_validate({}).model_dump(exclude_unset=True) == {}
    assert models.patch.model_validate({}).model_dump(exclude_unset=True) == {}


def test_narrowings_are_refused_where_postgresql_refuses_them(target: rowvalues.Target) -> None:
    create = _models().create
    for name, value in (("t_free", "a\x00b"), ("doc", {"k": "a\x00b"}), ("at", "2024-01-01T10:00:00")):
        with pytest.raises(pydantic.ValidationError):
            create.model_validate_json(json.dumps({name: value}))
        if target.backend == "postgresql" and name != "at":
            assert not target.accepts(name, value)
    # JSON has no NaN; PostgreSQL's double would store it (and compare it above every bound).
    for name, value in (("f_free", float("nan")), ("doc", {"x": [float("inf")]}), ("t_free", "a\ud800"),
                        ("doc", {"\udfff": 1})):  # fmt: skip
        with pytest.raises(pydantic.ValidationError):
            create.model_validate({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [("i_free", "12"), ("i_free", 1.0), ("i_free", True), ("flag", 1), ("flag", "true"), ("t_free", 5),
     ("lvl", "LOW"), ("d_free", True), ("f_free", "1.5")],
)  # fmt: skip
def test_json_types_are_strict(name: str, value: Any) -> None:
    # SQLite's affinity would turn "12" into 12: the API takes JSON types as they are.
    with pytest.raises(pydantic.ValidationError):
        _models().create.model_validate_json(json.dumps({name: value}))


def test_unknown_fields_are_errors_and_wire_names_round_trip() -> None:
    spec = model.parse_spec(
        {
            "pluginId": "names",
            "version": "1.0.0",
            "tables": [
                {
                    "name": "t",
                    "fields": [
                        {"name": "class", "type": "Int"},
                        {"name": "json", "type": "Text"},
                        {"name": "model_name", "type": "Text"},
                    ],
                }
            ],
        }
    )
    models = rowmodels.models_for(planning.shape(spec), "names")["t"]
    made = models.create.model_validate({"class": 1, "json": "x", "model_name": "m"})
    assert made.model_dump() == {"class": 1, "json": "x", "model_name": "m"}
    assert set(models.create.model_json_schema()["properties"]) == {"class", "json", "model_name"}
    with pytest.raises(pydantic.ValidationError) as caught:
        models.create.model_validate({"nope": 1})
    assert caught.value.errors()[0]["loc"] == ("nope",)
    # A column the spec does not know (added by hand) does not fail a read.
    read = models.read.model_validate({"id": 7, "class": None, "json": None, "model_name": None, "by_hand": 1})
    assert read.model_dump() == {"id": 7, "class": None, "json": None, "model_name": None}


def _example_models() -> dict[str, dict[str, rowmodels.TableModels]]:
    import yaml

    found = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ExtensionSchema":
                spec = model.parse_document(doc).spec
                found[spec.plugin_id] = rowmodels.models_for(planning.shape(spec), spec.plugin_id)
    return found


def test_metadata_of_the_examples() -> None:
    found = _example_models()
    report = found["customreports"]["report"]
    assert report.filterable == ("id", "title", "status", "code", "work_order_id")
    assert report.sortable == ("id", "title", "status", "code", "work_order_id")  # status leads (status, title)
    [rel] = report.relationships.values()
    assert (rel.name, rel.kind, rel.target_plugin, rel.target_table, rel.column, rel.many) == (
        "work_order", "ManyToOne", "core", "work_orders", "work_order_id", False)  # fmt: skip
    comment = found["comments"]["comment"]
    children = comment.relationships["comment_by_parent_id"]
    assert (children.kind, children.target_table, children.column, children.many) == (
        "OneToMany", "comment", "parent_id", True)  # fmt: skip
    kb = found["kb"]
    joins = [t for t, m in kb.items() if m.join_table]
    assert joins
    [m2m] = [r for m in kb.values() for r in m.relationships.values() if r.kind == "ManyToMany"]
    assert m2m.through == joins[0]
    assert m2m.through_column is not None and m2m.through_target_column is not None


def test_names_never_collide_across_plugins() -> None:
    names = [
        m.__name__
        for tables in _example_models().values()
        for t in tables.values()
        for m in (t.read, t.create, t.patch)
    ]
    assert len(names) == len(set(names))


@given(value=st.text(st.sampled_from("ABC-019a\n.")))
@settings(max_examples=300, derandomize=True, database=None)
def test_emitted_pattern_check_agrees_with_portable_regex(value: str) -> None:
    for pattern in ("^[A-Z]{3}-[0-9]+$", "a.c$", "^(ab|cd)+$", "^[^-]*-$", "[]A]"):
        assert rowmodels.python_search(pattern, value) == portable_regex.search(pattern, value), (pattern, value)


def test_models_are_built_once_per_resolved_schema() -> None:
    resolved = rowvalues.resolved()
    assert rowmodels.models_for(resolved, rowvalues.PLUGIN)["item"].create is _models().create
    with pytest.raises(ValueError, match="not 'other'"):
        rowmodels.models_for(resolved, "other")


def test_read_model_takes_rows_as_the_database_returns_them(target: rowvalues.Target) -> None:
    models = _models()
    body = {
        "s_bounded": "ab", "s_pattern": "ABC-12", "t_alt": "abcd", "i_bounded": 7, "b_free": -(2**63),
        "f_bounded": 0.5, "d_bounded": "-1.50", "d_free": "1234567890123456.78", "flag": True, "day": "2024-02-29",
        "at": "2024-02-29T23:30:00+05:30", "doc": {"a": [1, 2.5, None, "x"]},
        "ref": "0b6e3c5e-4f8a-4b8e-9a53-0d8e1c1c7f3a", "lvl": "with space",
    }  # fmt: skip
    made = models.create.model_validate_json(json.dumps(body)).model_dump(exclude_unset=True)
    table = target.table
    row = {name: target.stored(name, value) for name, value in made.items()}
    with target.database.sa_engine.connect() as conn:
        transaction = conn.begin()
        try:
            new_id = conn.execute(table.insert().values(row).returning(table.c.id)).scalar_one()
            stored = dict(conn.execute(table.select().where(table.c.id == new_id)).one()._mapping)
        finally:
            transaction.rollback()
    if target.backend == "sqlite":  # Json is text there: the API decodes it
        stored["doc"] = json.loads(stored["doc"])
    read = models.read.model_validate(stored).model_dump(mode="json")
    assert read["id"] == new_id
    assert read["d_bounded"] == "-1.50" and read["d_free"] == "1234567890123456.78"
    assert read["flag"] is True and read["must"] == 1 and read["t_free"] is None
    assert read["doc"] == body["doc"] and read["ref"] == body["ref"] and read["lvl"] == "with space"
    # Timestamps always carry their offset (SQLite returns them without one: they are UTC).
    assert datetime.datetime.fromisoformat(read["at"]) == datetime.datetime.fromisoformat(body["at"])
    assert datetime.datetime.fromisoformat(read["at"]).tzinfo is not None


def test_relationship_names_avoid_fields_and_each_other() -> None:
    spec = model.parse_spec(
        {
            "pluginId": "rels",
            "version": "1.0.0",
            "tables": [{"name": "task", "fields": [{"name": "owner", "type": "Text"}]}, {"name": "person"},
                       {"name": "tag"}],
            "relationships": [
                {"source": "task", "sourceField": "owner_id", "target": "person"},
                {"source": "task", "sourceField": "reviewer_id", "target": "person", "type": "OneToOne"},
                {"source": "task", "sourceField": "helper", "target": "person"},
                {"source": "task", "target": "core.work_orders"},
                {"source": "task", "target": "tag", "type": "ManyToMany"},
                {"source": "tag", "target": "tag", "type": "ManyToMany", "name": "tag_related"},
            ],
        }
    )  # fmt: skip
    models = rowmodels.models_for(planning.shape(spec), "rels")
    task, person, tag = models["task"].relationships, models["person"].relationships, models["tag"].relationships
    assert [(r.name, r.kind, r.target_table, r.column, r.many) for r in task.values()] == [
        ("owner_person", "ManyToOne", "person", "owner_id", False),  # "owner" is a field
        ("reviewer", "OneToOne", "person", "reviewer_id", False),
        ("helper_ref", "ManyToOne", "person", "helper", False),
        ("work_orders", "ManyToOne", "work_orders", "work_orders_id", False),
        ("tag", "ManyToMany", "tag", "id", True),
    ]
    assert task["work_orders"].target_is_core and not task["tag"].target_is_core
    assert task["tag"].through == "task_tag" and task["tag"].through_column == "task_id"
    assert [(r.name, r.kind, r.column, r.many) for r in person.values()] == [
        ("task", "OneToMany", "owner_id", True),
        ("task_by_reviewer_id", "OneToOne", "reviewer_id", False),
        ("task_by_helper", "OneToMany", "helper", True),
    ]
    # A self-referencing ManyToMany: one relationship, named after its join table.
    assert [(r.name, r.kind, r.through) for r in tag.values()] == [
        ("task", "ManyToMany", "task_tag"), ("tag_related", "ManyToMany", "tag_related")]  # fmt: skip
    assert models["tag_related"].join_table and not models["tag"].join_table
