"""`extschema prisma`: Prisma's own validator accepts the output, its formatter leaves it as it is, and its
DMMF maps every model, field, enum value, relation and index back to what the database catalog reports.

Prisma's checks come from @prisma/prisma-schema-wasm (tests/js, pinned), driven by tests/js/prisma-check.mjs.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from extschema import conflicts, loading, naming, planning, prisma
from extschema.problems import ProblemError
from tests.helpers import EXAMPLES, REPO, execute, load_core, run

CHECKER = REPO / "tests" / "js" / "prisma-check.mjs"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: Prisma's validator runs on node")


class _Checker:
    """One node process answering one line of items per line (starting node and the wasm is the slow part)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def __call__(self, items: list[Any]) -> list[dict[str, Any]]:
        assert NODE is not None
        assert (REPO / "tests" / "js" / "node_modules" / "@prisma" / "prisma-schema-wasm").is_dir(), (
            "run `cd tests/js && npm ci` (.ci/install-deps does)"
        )
        if self.process is None:
            self.process = subprocess.Popen(
                [NODE, str(CHECKER), "--lines"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(items) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"{CHECKER} stopped (exit {self.process.poll()})"
        results: list[dict[str, Any]] = json.loads(line)
        return results

    def close(self) -> None:
        if self.process is not None:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)
            self.process.stdout.close()
            self.process = None


prisma_check = _Checker()


@pytest.fixture(scope="module", autouse=True)
def _stop_checker() -> Any:
    yield
    prisma_check.close()


def datasource_of(complete: str) -> str:
    """The datasource block of a complete schema (a fragment is validated next to it, as in a schema folder)."""
    found = re.search(r"^datasource db \{\n.*?^\}\n", complete, re.MULTILINE | re.DOTALL)
    assert found, complete
    return found.group(0)


def valid_and_formatted(items: list[Any]) -> list[dict[str, Any]]:
    """Every item is valid and exactly as `prisma format` writes it."""
    results = prisma_check(items)
    for item, result in zip(items, results, strict=True):
        text = item if isinstance(item, str) else item[-1][1]
        assert result["valid"], f"{result['error']}\n{text}"
        diff = difflib.unified_diff(text.splitlines(True), result["formatted"].splitlines(True), "ours", "formatted")
        assert result["formatted"] == text, "".join(diff)
    return results


# --- the database catalog, read without extschema's code ------------------------------------------

TableKey = tuple[str | None, str]


@dataclasses.dataclass
class Column:
    type: str  # PostgreSQL: information_schema's data_type (udt for enums); SQLite: the declared type
    nullable: bool
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    udt: tuple[str, str] | None = None


@dataclasses.dataclass
class Catalog:
    tables: dict[TableKey, dict[str, Column]]
    enums: dict[tuple[str, str], list[str]]
    #: (table, columns, referenced table, referenced columns, ON DELETE as Prisma spells it)
    foreign_keys: set[tuple[TableKey, tuple[str, ...], TableKey, tuple[str, ...], str]]
    indexes: set[tuple[str | None, str]]
    sql: dict[TableKey, str]


_PG_ACTIONS = {"a": "NoAction", "r": "Restrict", "c": "Cascade", "n": "SetNull", "d": "SetDefault"}
_SQLITE_ACTIONS = {"NO ACTION": "NoAction", "RESTRICT": "Restrict", "CASCADE": "Cascade", "SET NULL": "SetNull"}


def catalog_of(url: str) -> Catalog:
    if url.startswith("sqlite"):
        return _sqlite_catalog(url)
    own = "('pg_catalog', 'information_schema', 'pg_toast', 'extschema', 'extschema_backup')"
    tables: dict[TableKey, dict[str, Column]] = {}
    for schema, table in execute(
        url, f"SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN {own}"
    ):
        tables[(schema, table)] = {}
    for row in execute(
        url,
        "SELECT table_schema, table_name, column_name, data_type, is_nullable, character_maximum_length, "
        f"numeric_precision, numeric_scale, udt_schema, udt_name FROM information_schema.columns "
        f"WHERE table_schema NOT IN {own}",
    ):
        schema, table, column, data_type, nullable, length, precision, scale, udt_schema, udt_name = row
        tables[(schema, table)][column] = Column(
            data_type, nullable == "YES", length, precision, scale, (udt_schema, udt_name)
        )
    enums: dict[tuple[str, str], list[str]] = {}
    for schema, name, label in execute(
        url,
        "SELECT n.nspname, t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace ORDER BY n.nspname, t.typname, e.enumsortorder",
    ):
        enums.setdefault((schema, name), []).append(label)
    keys = set()
    for row in execute(
        url,
        "SELECT sn.nspname, s.relname, tn.nspname, t.relname, c.confdeltype::text, "
        "ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), "
        "ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) "
        "FROM pg_constraint c JOIN pg_class s ON s.oid = c.conrelid JOIN pg_namespace sn ON sn.oid = s.relnamespace "
        "JOIN pg_class t ON t.oid = c.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        f"WHERE c.contype = 'f' AND sn.nspname NOT IN {own}",
    ):
        s_schema, s_table, t_schema, t_table, action, columns, referenced = row
        keys.add(((s_schema, s_table), tuple(columns), (t_schema, t_table), tuple(referenced), _PG_ACTIONS[action]))
    indexes = {
        (s, i) for s, i in execute(url, f"SELECT schemaname, indexname FROM pg_indexes WHERE schemaname NOT IN {own}")
    }
    return Catalog(tables, enums, keys, indexes, {})


def _sqlite_catalog(url: str) -> Catalog:
    tables: dict[TableKey, dict[str, Column]] = {}
    sql: dict[TableKey, str] = {}
    keys = set()
    names = execute(
        url,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'extension_%' AND name NOT LIKE 'extschema%'",
    )
    for table, text in names:
        sql[(None, table)] = text
        tables[(None, table)] = {
            name: Column(declared.upper(), not notnull and not pk)
            for _, name, declared, notnull, _, pk in execute(url, f"SELECT * FROM pragma_table_info('{table}')")
        }
        found: dict[int, list[Any]] = {}
        for row in execute(
            url, f'SELECT id, seq, "table", "from", "to", on_delete FROM pragma_foreign_key_list(\'{table}\')'
        ):
            found.setdefault(row[0], []).append(row)
        for rows in found.values():
            rows.sort(key=lambda r: r[1])
            keys.add(
                (
                    (None, table),
                    tuple(r[3] for r in rows),
                    (None, rows[0][2]),
                    tuple(r[4] for r in rows),
                    _SQLITE_ACTIONS[rows[0][5]],
                )
            )
    indexes = {(None, name) for (name,) in execute(url, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    return Catalog(tables, {}, keys, indexes, sql)


# --- the DMMF against the catalog ------------------------------------------------------------------

_PG_TYPES = {
    ("String", None): "text",
    ("String", "VarChar"): "character varying",
    ("String", "Char"): "character",
    ("String", "Uuid"): "uuid",
    ("Int", None): "integer",
    ("Int", "SmallInt"): "smallint",
    ("BigInt", None): "bigint",
    ("Float", None): "double precision",
    ("Float", "Real"): "real",
    ("Boolean", None): "boolean",
    ("DateTime", "Date"): "date",
    ("DateTime", "Timestamptz"): "timestamp with time zone",
    ("DateTime", "Timestamp"): "timestamp without time zone",
    ("Decimal", "Decimal"): "numeric",
    ("Json", None): "jsonb",
    ("Json", "Json"): "json",
    ("Bytes", None): "bytea",
}
#: SQLite's declared types each Prisma type may stand for (Decimal and Json are stored as TEXT).
_SQLITE_TYPES = {
    "String": {"VARCHAR", "TEXT", "CHAR"},
    "Int": {"INTEGER", "INT", "SMALLINT"},
    "BigInt": {"BIGINT", "INTEGER"},
    "Float": {"FLOAT", "REAL", "DOUBLE"},
    "Boolean": {"BOOLEAN"},
    "DateTime": {"DATETIME", "DATE", "TIMESTAMP"},
    "Decimal": {"TEXT", "NUMERIC", "DECIMAL"},
    "Json": {"TEXT", "JSON"},
    "Bytes": {"BLOB"},
}


def assert_round_trip(dmmf: dict[str, Any], catalog: Catalog, complete: bool = True) -> None:
    """Every model is a table, every field a column of a fitting type and nullability, every enum value a
    label in order, every relation a foreign key with its ON DELETE, every named index an index; complete
    schemas cover every table, column and foreign key the catalog has."""
    models = {m["name"]: m for m in dmmf["models"]}
    enums = {e["name"]: e for e in dmmf["enums"]}

    def key(m: dict[str, Any]) -> TableKey:
        return (m.get("schema"), m["dbName"] or m["name"])

    def column(m: dict[str, Any], field_name: str) -> str:
        field = next(f for f in m["fields"] if f["name"] == field_name)
        return str(field.get("dbName") or field["name"])

    relations = set()
    for m in models.values():
        assert key(m) in catalog.tables, f"model {m['name']}: no table {key(m)}"
        columns = catalog.tables[key(m)]
        scalars = [f for f in m["fields"] if f["kind"] in ("scalar", "enum")]
        assert sorted(column(m, f["name"]) for f in scalars) == sorted(columns), m["name"]
        for field in scalars:
            found = columns[column(m, field["name"])]
            assert field["isRequired"] == (not found.nullable), (m["name"], field["name"])
            native = field["nativeType"]
            if field["kind"] == "enum":
                enum = enums[field["type"]]
                labels = [v["dbName"] or v["name"] for v in enum["values"]]
                if catalog.enums or (found.udt and found.type == "USER-DEFINED"):
                    assert found.type == "USER-DEFINED" and found.udt is not None
                    assert found.udt[1] == (enum["dbName"] or enum["name"])
                    assert catalog.enums[found.udt] == labels, enum["name"]
                else:  # SQLite: a VARCHAR with a CHECK listing the labels
                    assert found.type.startswith("VARCHAR")
                    assert all("'" + label.replace("'", "''") + "'" in catalog.sql[key(m)] for label in labels)
            elif catalog.enums or m.get("schema"):  # PostgreSQL
                expected = _PG_TYPES[(field["type"], native[0] if native else None)]
                assert found.type == expected, (m["name"], field["name"], found)
                if native and native[0] == "VarChar":
                    assert [str(found.length)] == native[1]
                if native and native[0] == "Decimal":
                    assert [str(found.precision), str(found.scale)] == [a.replace(" ", "") for a in native[1]]
            else:
                assert found.type.split("(")[0] in _SQLITE_TYPES[field["type"]], (m["name"], field["name"], found)
        for field in m["fields"]:
            if field["kind"] != "object" or not field["relationFromFields"]:
                continue
            target = models[field["type"]]
            relation = (
                key(m),
                tuple(column(m, f) for f in field["relationFromFields"]),
                key(target),
                tuple(column(target, f) for f in field["relationToFields"]),
                field["relationOnDelete"],
            )
            assert relation in catalog.foreign_keys, relation
            relations.add(relation)
    for index in dmmf["indexes"]:
        if index.get("dbName"):
            schema = models[index["model"]].get("schema")
            assert (schema, index["dbName"]) in catalog.indexes, index
    if complete:
        assert sorted(catalog.tables, key=str) == sorted((key(m) for m in models.values()), key=str)
        assert relations == catalog.foreign_keys
        # DMMF enums carry no schema: the fields above tie each to its type's schema. (SQLite has no enum types.)
        if catalog.enums or any(m.get("schema") for m in models.values()):
            assert sorted(e["dbName"] or e["name"] for e in enums.values()) == sorted(n for _, n in catalog.enums)


def applied_examples(url: str) -> None:
    load_core(url)
    outcome = run("apply", str(EXAMPLES), "-d", url)
    assert outcome.exit_code == 0, outcome.stderr


# --- the examples, on both databases -----------------------------------------------------------------


@needs_node
def test_examples_validate_format_and_round_trip(db_url: str) -> None:
    applied_examples(db_url)
    complete = run("prisma", "-d", db_url)
    fragment = run("prisma", "-d", db_url, "--fragment")
    assert complete.exit_code == 0 and fragment.exit_code == 0, complete.stderr + fragment.stderr
    folder = [
        ["file:/schema/host.prisma", datasource_of(complete.stdout)],
        ["file:/schema/plugins.prisma", fragment.stdout],
    ]
    whole, partial = valid_and_formatted([complete.stdout, folder])
    catalog = catalog_of(db_url)
    assert_round_trip(whole["dmmf"], catalog)
    assert_round_trip(partial["dmmf"], catalog, complete=False)
    # The fragment: plugin models only, with the foreign keys to core tables as plain columns.
    assert {m["name"] for m in partial["dmmf"]["models"]} == {
        m["name"] for m in whole["dmmf"]["models"] if m["name"] not in ("WorkOrders", "Equipment")
    }
    report = next(m for m in partial["dmmf"]["models"] if m["name"] == "CustomreportsReport")
    assert [f["name"] for f in report["fields"] if f["kind"] == "object"] == []
    assert "workOrderId" in [f["name"] for f in report["fields"]]
    # The complete schema gives the core models their back-relations.
    work_orders = next(m for m in whole["dmmf"]["models"] if m["name"] == "WorkOrders")
    assert {f["type"] for f in work_orders["fields"] if f["kind"] == "object"} == {
        "CommentsComment",
        "CustomreportsReport",
    }


@needs_node
def test_config_lists_exactly_the_plugin_tables_and_enums(db_url: str) -> None:
    applied_examples(db_url)
    outcome = run("prisma", "-d", db_url, "--config")
    assert outcome.exit_code == 0, outcome.stderr
    config = json.loads(outcome.stdout)  # prisma.config.ts's lists, not an envelope
    assert config["experimental"] == {"externalTables": True}
    (printed,) = run("prisma", "-d", db_url, "-o", "json").items()
    assert printed["config"] == config
    assert printed["provider"] == db_url.split(":")[0] and printed["schema"] == run("prisma", "-d", db_url).stdout
    catalog = catalog_of(db_url)
    if db_url.startswith("sqlite"):
        tables = {t for _, t in catalog.tables if t.startswith("ext_")}
        assert config["enums"]["external"] == []
    else:
        tables = {f"{s}.{t}" for s, t in catalog.tables if s and s.startswith("ext_")}
        assert sorted(config["enums"]["external"]) == sorted(
            f"{s}.{n}" for s, n in catalog.enums if s.startswith("ext_")
        )
    assert sorted(config["tables"]["external"]) == sorted(tables)
    # The same names as the schema's models and enums (Prisma matches them by database name).
    (result,) = prisma_check([run("prisma", "-d", db_url).stdout])
    qualified = {
        f"{m['schema']}.{m['dbName'] or m['name']}" if m.get("schema") else m["dbName"] or m["name"]
        for m in result["dmmf"]["models"]
    }
    assert set(config["tables"]["external"]) <= qualified


@needs_node
def test_paths_show_a_schema_as_if_applied(sqlite_url: str) -> None:
    """PATHs replace the registered spec of their plugin (a preview) and add new plugins."""
    applied_examples(sqlite_url)
    outcome = run("prisma", str(EXAMPLES / "evolution" / "v1.yaml"), "-d", sqlite_url)
    assert outcome.exit_code == 0, outcome.stderr
    (result,) = valid_and_formatted([outcome.stdout])
    plugin_ids = {
        m["dbName"].split("__")[0] for m in result["dmmf"]["models"] if (m["dbName"] or "").startswith("ext_")
    }
    assert "ext_customreports" in plugin_ids and len(plugin_ids) == 5


def test_offline_needs_a_fragment_without_core_references(tmp_path: Path) -> None:
    complete = run("prisma", "--provider", "sqlite", str(EXAMPLES / "custom-reports.yaml"))
    assert complete.exit_code == 2 and "ES732" in complete.stderr
    core = run("prisma", "--provider", "postgresql", "--fragment", str(EXAMPLES / "custom-reports.yaml"))
    assert core.exit_code == 2 and "ES733" in core.stderr and "core.work_orders" in core.stderr
    assert core.stderr.startswith(f"{EXAMPLES / 'custom-reports.yaml'}: spec.relationships[0]: ES733: ")
    other = run("prisma", "--provider", "sqlite", "--fragment", str(EXAMPLES / "knowledge-base.yaml"))
    assert other.exit_code == 2 and "ES733" in other.stderr and "comments" in other.stderr


@needs_node
def test_offline_fragment_validates_next_to_a_datasource(tmp_path: Path) -> None:
    spec = tmp_path / "notes.yaml"
    spec.write_text(
        "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: notes}\nspec:\n"
        "  pluginId: notes\n  version: 1.0.0\n  enums: [{name: mood, values: [calm, 'on fire', 2nd]}]\n"
        "  tables:\n    - name: note\n      fields:\n        - {name: body, type: Text, required: true}\n"
        "        - {name: mood, type: Enum, enum: mood, default: 'on fire'}\n"
        "  relationships:\n"
        "    - {source: note, target: note, targetField: parent_id, type: OneToMany, onDelete: Cascade}\n"
    )
    items = []
    for provider in prisma.PROVIDERS:
        outcome = run("prisma", "--provider", provider, "--fragment", str(spec))
        assert outcome.exit_code == 0, outcome.stderr
        schemas = ', schemas = ["ext_notes"]' if provider == "postgresql" else ""
        host = f'datasource db {{\n  provider = "{provider}"{schemas}\n}}\n'.replace(", schemas", "\n  schemas ")
        items.append([["file:/s/host.prisma", host], ["file:/s/notes.prisma", outcome.stdout]])
    for result in valid_and_formatted(items):
        (mood,) = result["dmmf"]["enums"]
        assert [(v["name"], v["dbName"]) for v in mood["values"]] == [
            ("calm", None),
            ("on_fire", "on fire"),
            ("v2nd", "2nd"),
        ]


def test_provider_must_match_the_database(sqlite_url: str) -> None:
    outcome = run("prisma", "-d", sqlite_url, "--provider", "postgresql")
    assert outcome.exit_code == 2 and "ES731" in outcome.stderr


# --- names never collide ---------------------------------------------------------------------------


@needs_node
def test_model_names_never_collide(tmp_path: Path, sqlite_url: str) -> None:
    """``a_b`` + ``c`` and ``a`` + ``b_c`` both read ABC; a core table ``ab_c`` reads AbC like ``ab`` + ``c``."""
    execute(sqlite_url, "CREATE TABLE ab_c (id INTEGER PRIMARY KEY, x_y INTEGER, xY INTEGER)")
    for plugin, table in (("a_b", "c"), ("a", "b_c"), ("ab", "c")):
        (tmp_path / f"{plugin}.yaml").write_text(
            "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\n"
            f"metadata: {{name: {plugin.replace('_', '-')}}}\n"
            f"spec:\n  pluginId: {plugin}\n  version: 1.0.0\n  tables:\n    - name: {table}\n      fields:\n"
            "        - {name: a_b, type: Int}\n        - {name: ab, type: Int}\n"
            "  relationships:\n    - {source: " + table + ", target: core.ab_c, type: ManyToOne}\n"
        )
    assert run("apply", str(tmp_path), "-d", sqlite_url).exit_code == 0
    (result,) = valid_and_formatted([run("prisma", "-d", sqlite_url).stdout])
    names = sorted(m["name"] for m in result["dmmf"]["models"])
    assert names == ["ABC", "ABC2", "AbC", "AbC2"]
    core = next(m for m in result["dmmf"]["models"] if m["dbName"] == "ab_c")
    assert [f["name"] for f in core["fields"] if f["kind"] == "scalar"] == ["id", "xY", "xY2"]
    assert_round_trip(result["dmmf"], catalog_of(sqlite_url))


# --- generated specs ---------------------------------------------------------------------------------

TABLES = ["item", "entry", "note", "tag", "x_item", "task"]  # shop.x_item and shop_x.item read ShopXItem
FIELDS = ["title", "code", "amount", "due", "flag", "kind", "size", "label", "a_b", "ab", "qty", "work_order_id"]
TYPES = ["String", "Text", "Int", "BigInt", "Float", "Boolean", "Date", "DateTime", "Decimal", "Json", "Uuid", "Enum"]
TEXT = st.text(alphabet="ab \"\\'\n\r\t\x1bä€😀", max_size=6)

#: The core tables of examples/core, as the database describes them (introspection is tested above).
CORE_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    ("core", "work_orders"): {"id": "Int"},
    ("core", "equipment"): {"id": "Int"},
}


def core_schema(provider: prisma.Provider) -> prisma.CoreSchema:
    column = prisma.CoreColumn
    tables = (
        prisma.CoreTable(
            "equipment", (column("id", "int", False), column("name", "varchar", False, length=200)), ("id",)
        ),
        prisma.CoreTable(
            "work_orders",
            (column("id", "int", False), column("state", "varchar", False, length=20, default="'open'")),
            ("id",),
        ),
    )
    return prisma.CoreSchema("public" if provider == "postgresql" else None, tables)


def _default(draw: st.DrawFn, kind: str, field: dict[str, Any], enums: dict[str, list[str]]) -> Any:
    match kind:
        case "Boolean":
            return draw(st.booleans())
        case "Int" | "BigInt":
            return draw(st.integers(-(2**31), 2**31 - 1))
        case "Float":
            return draw(st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([1e-7, 0.1, 2.5e-5]))
        case "Decimal":
            return 0 if field["precision"] == field["scale"] else draw(st.integers(0, 9))
        case "String" | "Text":
            return draw(TEXT)
        case "Date":
            return draw(st.dates()).isoformat()
        case "DateTime":
            return draw(st.sampled_from(["now", "2024-01-31T10:00:00Z", "2024-01-31 10:00+01:00"]))
        case "Uuid":
            return str(draw(st.uuids()))
        case "Json":
            return draw(st.booleans() | st.integers(-5, 5) | TEXT)
        case _:
            return draw(st.sampled_from(enums[field["enum"]]))


@st.composite
def plugin_specs(draw: st.DrawFn, plugin_id: str, other: dict[str, Any] | None) -> dict[str, Any]:
    enums = {
        name: draw(st.lists(st.text(alphabet="abz _-9'Ä", min_size=1, max_size=6), min_size=1, max_size=4, unique=True))
        for name in draw(st.lists(st.sampled_from(["status", "level"]), max_size=2, unique=True))
    }
    tables = []
    for name in draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=3, unique=True)):
        fields = []
        for field_name in draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True)):
            kind = draw(st.sampled_from(TYPES if enums else TYPES[:-1]))
            field: dict[str, Any] = {"name": field_name, "type": kind, "required": draw(st.booleans())}
            if kind in ("String", "Int", "BigInt", "Uuid", "Date") and draw(st.booleans()):
                field["unique"] = True
            if kind == "String" and draw(st.booleans()):
                field["validation"] = {"maxLength": draw(st.integers(6, 300))}
            if kind == "Decimal":
                field["precision"] = draw(st.integers(1, 30))
                field["scale"] = draw(st.integers(0, field["precision"]))
            if kind == "Enum":
                field["enum"] = draw(st.sampled_from(sorted(enums)))
            if draw(st.booleans()):
                field["default"] = _default(draw, kind, field, enums)
            fields.append(field)
        table: dict[str, Any] = {"name": name, "fields": fields}
        names = [f["name"] for f in fields]
        if names and draw(st.booleans()):
            table["indexes"] = [
                {
                    "fields": draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)),
                    "unique": draw(st.booleans()),
                }
            ]
        if len(names) >= 2 and draw(st.booleans()):
            table["uniqueConstraints"] = [{"fields": names[:2]}]
        tables.append(table)
    own = [t["name"] for t in tables]
    # The other plugin's table first: hypothesis favours the first choices.
    targets = [f"{other['pluginId']}.{t['name']}" for t in other["tables"]] if other else []
    targets += [*own, "core.work_orders", "core.equipment"]
    relationships = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["ManyToOne", "OneToOne", "OneToMany", "ManyToMany"]))
        relationship = {
            "source": draw(st.sampled_from(own)),
            "target": draw(st.sampled_from(own if kind == "OneToMany" else targets)),
            "type": kind,
            "onDelete": draw(st.sampled_from(["Restrict", "Cascade", "SetNull"])),
        }
        if kind in ("ManyToOne", "OneToOne"):
            relationship["sourceField"] = draw(st.sampled_from(["owner_id", "ref", "parent_id", "work_order_id"]))
        relationships.append(relationship)
    spec = {"pluginId": plugin_id, "version": "1.0.0", "enums": [{"name": n, "values": v} for n, v in enums.items()]}
    spec |= {"tables": tables, "relationships": relationships}
    if other:
        spec["dependsOn"] = [other["pluginId"]]
    return spec


@st.composite
def spec_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    first = draw(plugin_specs("shop", None))
    return [first, draw(plugin_specs("shop_x", first))] if draw(st.booleans()) else [first]


def _valid(specs: list[dict[str, Any]]) -> list[planning.Resolved] | None:
    documents = [
        {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": {"name": s["pluginId"].replace("_", "-")},
            "spec": s,
        }
        for s in specs
    ]
    loaded, problems = loading.parse_documents(documents, "generated")
    if problems:
        return None
    claims = [conflicts.Claim(item.owner, item.spec) for item in loaded]
    for namer in (naming.Namer("schema", "public"), naming.Namer("prefix")):
        if conflicts.detect(claims, [], CORE_TYPES, namer):
            return None
    refs = dict(CORE_TYPES)
    for item in loaded:
        refs.update(planning.reference_types_of(item.spec))
    try:
        return [planning.resolve(item.spec, refs) for item in loaded]
    except ProblemError:
        return None


@needs_node
@settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(spec_sets())
def test_generated_specs_validate_and_format(specs: list[dict[str, Any]]) -> None:
    resolved = _valid(specs)
    assume(resolved is not None)
    assert resolved is not None
    items: list[Any] = []
    for provider in prisma.PROVIDERS:
        complete = prisma.emit(resolved, provider, core_schema(provider)).text
        fragment = prisma.emit(resolved, provider, fragment=True).text
        items += [complete, [["file:/s/host.prisma", datasource_of(complete)], ["file:/s/plugins.prisma", fragment]]]
    results = valid_and_formatted(items)
    tables = sum(len(r.tables) for r in resolved)
    for provider_results in (results[:2], results[2:]):
        whole, partial = (r["dmmf"] for r in provider_results)
        assert len(whole["models"]) == tables + 2 and len(partial["models"]) == tables
        assert len(whole["enums"]) == sum(len(r.enums) for r in resolved)
        # Text defaults and enum labels read back exactly (Prisma's string escapes).
        defaults = [
            (f.get("dbName") or f["name"], f["default"]) for m in whole["models"] for f in m["fields"] if "default" in f
        ]
        for table in (t for r in resolved for t in r.tables):
            for column in table.columns:
                if column.type in ("String", "Text", "Uuid") and column.default is not None:
                    assert (column.name, column.default) in defaults
        labels = sorted(v["dbName"] or v["name"] for e in whole["enums"] for v in e["values"])
        assert labels == sorted(v for r in resolved for e in r.enums for v in e.values)


def _fresh_database(kind: str, pg_admin_url: str | None, directory: Path) -> tuple[str, Any]:
    """A new empty database of *kind* and the function that drops it (one per generated example)."""
    if kind == "sqlite":
        path = directory / f"g{len(list(directory.iterdir()))}.db"
        return f"sqlite:///{path}", path.unlink
    import uuid

    import psycopg

    assert pg_admin_url is not None
    name = f"g_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return pg_admin_url.rpartition("/")[0] + f"/{name}", drop


@needs_node
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_generated_specs_round_trip_through_the_database(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Applied, a generated spec's complete schema maps back to exactly what the database catalog holds."""
    admin = request.getfixturevalue("pg_admin_url") if kind == "postgresql" else None
    directory = tmp_path_factory.mktemp("generated")

    @settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec_sets())
    def round_trip(specs: list[dict[str, Any]]) -> None:
        assume(_valid(specs) is not None)
        url, drop = _fresh_database(kind, admin, directory)
        try:
            load_core(url)
            files = directory / "specs"
            shutil.rmtree(files, ignore_errors=True)
            files.mkdir()
            for spec in specs:
                document = {"apiVersion": "extschema.io/v1alpha1", "kind": "ExtensionSchema"}
                document |= {"metadata": {"name": spec["pluginId"].replace("_", "-")}, "spec": spec}
                # YAML, not JSON: JSON's 1e-07 is text to YAML 1.1 (ES105), PyYAML writes 1.0e-07
                (files / f"{spec['pluginId']}.yaml").write_text(yaml.safe_dump(document, allow_unicode=True))
            applied = run("apply", str(files), "-d", url)
            assert applied.exit_code == 0, applied.stderr
            outcome = run("prisma", "-d", url)
            assert outcome.exit_code == 0, outcome.stderr
            (result,) = valid_and_formatted([outcome.stdout])
            assert_round_trip(result["dmmf"], catalog_of(url))
        finally:
            drop()

    round_trip()


# --- docs/prisma.md runs as written ----------------------------------------------------------------

BLOCK = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.postgres
def test_docs_page_runs_as_written(pg_url: str, sqlite_url: str) -> None:
    """Every command of docs/prisma.md runs (its URLs replaced by test databases) and each prisma or json
    block is exactly what the command before it prints."""
    urls = {"postgresql://localhost/app": pg_url, "sqlite:///app.db": sqlite_url}
    printed: str | None = None
    checked = 0
    for language, _, body in BLOCK.findall((REPO / "docs" / "prisma.md").read_text()):
        if language == "sh":
            for line in body.splitlines():
                args = [urls.get(a, str(REPO / a) if a.startswith("examples/") else a) for a in line.split()]
                if args[0] == "python":
                    assert args[1] == str(REPO / "examples/core/load.py"), line
                    load_core(args[2])
                    continue
                assert args[0] == "extschema", line
                outcome = run(*args[1:])
                assert outcome.exit_code == 0, (line, outcome.stderr)
                printed = outcome.stdout
        elif language in ("prisma", "json"):
            assert printed is not None, "an output block without a command before it"
            assert body == printed
            printed, checked = None, checked + 1
        else:
            assert language in ("text", "ts"), language
    assert checked == 4


# --- core tables of every kind -------------------------------------------------------------------------

_CORE_PG = [
    "CREATE TYPE priority AS ENUM ('low', 'high', 'very high')",
    "CREATE TABLE customers (id SERIAL PRIMARY KEY, email VARCHAR(120) NOT NULL UNIQUE, code CHAR(3), "
    "born DATE, seen TIMESTAMP, seen_tz TIMESTAMPTZ DEFAULT now(), balance NUMERIC(12, 3) DEFAULT 0, "
    "rating REAL, score DOUBLE PRECISION DEFAULT 1.5, small SMALLINT DEFAULT 7, big BIGINT, vip BOOLEAN DEFAULT false, "
    "prefs JSON, doc JSONB, token UUID, photo BYTEA, span INTERVAL, note TEXT DEFAULT 'it''s', "
    "level priority DEFAULT 'very high', ref_id INTEGER REFERENCES customers (id) ON DELETE SET NULL, "
    "stamp VARCHAR(20) DEFAULT (now()::text))",
    "CREATE TABLE order_lines (order_no INTEGER, line INTEGER, customer_id INTEGER NOT NULL "
    "REFERENCES customers (id) ON DELETE CASCADE, qty INTEGER, PRIMARY KEY (order_no, line))",
    "CREATE INDEX order_lines_qty ON order_lines (qty, customer_id)",
    "CREATE TABLE audit (at TIMESTAMPTZ, what TEXT)",
]
_CORE_SQLITE = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(120) NOT NULL UNIQUE, code CHAR(3), born DATE, "
    "seen DATETIME DEFAULT CURRENT_TIMESTAMP, balance NUMERIC(12, 3) DEFAULT 0, rating REAL, score FLOAT DEFAULT 1.5, "
    "big BIGINT, vip BOOLEAN DEFAULT 0, prefs JSON, photo BLOB, note TEXT DEFAULT 'it''s', span, "
    "ref_id INTEGER REFERENCES customers (id) ON DELETE SET NULL)",
    "CREATE TABLE order_lines (order_no INTEGER, line INTEGER, customer_id INTEGER NOT NULL "
    "REFERENCES customers (id) ON DELETE CASCADE, qty INTEGER, PRIMARY KEY (order_no, line))",
    "CREATE INDEX order_lines_qty ON order_lines (qty, customer_id)",
    "CREATE TABLE audit (at DATETIME, what TEXT)",
]


@needs_node
def test_core_tables_of_every_kind(db_url: str, tmp_path: Path) -> None:
    """Composite keys, core-to-core and self references, unique columns, defaults, enum types, types Prisma
    has no name for, a table without a key, and a plugin referencing a core table's unique non-key column."""
    for statement in _CORE_PG if db_url.startswith("postgresql") else _CORE_SQLITE:
        execute(db_url, statement)
    (tmp_path / "crm.yaml").write_text(
        "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: crm}\nspec:\n"
        "  pluginId: crm\n  version: 1.0.0\n  tables:\n    - name: visit\n      fields: [{name: at, type: DateTime}]\n"
        "  relationships:\n"
        "    - {source: visit, target: core.customers, type: ManyToOne, onDelete: Cascade}\n"
        "    - {source: visit, sourceField: referrer_id, target: core.customers, type: ManyToOne, onDelete: SetNull}\n"
        "    - {source: visit, sourceField: customer_email, target: core.customers, targetField: email,\n"
        "       type: OneToOne}\n"
    )
    applied = run("apply", str(tmp_path), "-d", db_url)
    assert applied.exit_code == 0, applied.stderr
    outcome = run("prisma", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    (result,) = valid_and_formatted([outcome.stdout])
    dmmf = result["dmmf"]
    models = {m["dbName"] or m["name"]: m for m in dmmf["models"]}
    visit = "ext_crm__visit" if db_url.startswith("sqlite") else "visit"
    assert set(models) == {"customers", "order_lines", visit}  # DMMF leaves out @@ignore models
    customers = {f["name"]: f for f in models["customers"]["fields"]}
    assert customers["id"]["default"] == {"name": "autoincrement", "args": []}
    assert customers["note"]["default"] == "it's"
    assert customers["email"]["isUnique"]
    assert models["order_lines"]["primaryKey"]["fields"] == ["orderNo", "line"]
    assert "@@ignore" in outcome.stdout.split("model Audit {")[1].split("}")[0]
    assert 'Unsupported("' in outcome.stdout
    # A self reference gets a named relation with both ends on the one model; the plugin's two references
    # to customers are named too, and its OneToOne to email is a single optional field back.
    assert customers["ref"]["relationName"] == customers["customersByRef"]["relationName"] == "CustomersRef"
    assert customers["ref"]["relationOnDelete"] == "SetNull"
    one = customers["crmVisitByCustomerEmailRef"]
    assert one["isList"] is False and one["type"] == "CrmVisit"
    assert customers["crmVisitsByCustomers"]["isList"] and customers["crmVisitsByReferrer"]["isList"]
    # Prisma Client leaves out what it cannot read: the ignored table, the column of an unsupported type.
    catalog = catalog_of(db_url)
    for key in [key for key in catalog.tables if key[1] == "audit"]:
        del catalog.tables[key]
    customers_key = next(key for key in catalog.tables if key[1] == "customers")
    del catalog.tables[customers_key]["span"]
    assert_round_trip({**dmmf, "models": [m for m in dmmf["models"] if m["name"] != "Audit"]}, catalog)
