"""ExtensionSchema documents for hypothesis: a mostly valid spec, then a few mutations of it.

A spec is drawn from names and values that are valid most of the time (so that many documents apply and
round-trip), mixed with the inputs validators get wrong: reserved words, SQL fragments and unicode in names,
defaults, patterns and descriptions, values at and beyond every limit, wrong JSON types, duplicates, unknown
keys and deep nesting. Whether a document is valid is the system's answer, not the generator's: the
properties hold either way (tests/fuzz/checks.py).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import yaml
from hypothesis import strategies as st

from extschema import limits

#: How many examples each fuzz test draws: small in CI (make test), larger in make fuzz ($FUZZ_EXAMPLES).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
TYPES = ["String", "Text", "Int", "BigInt", "Float", "Boolean", "Date", "DateTime", "Decimal", "Json", "Uuid", "Enum"]

RESERVED = ["select", "table", "order", "user", "group", "default", "check", "from", "key", "index", "nothing",
            "returning", "collation", "lateral", "tablesample", "xmin", "ctid", "oid", "rowid", "id", "core",
            "extschema", "pg_catalog", "sqlite_master", "null", "true"]  # fmt: skip
SQL = ["x'; DROP TABLE extension_registry; --", 'a"b', "1); DELETE FROM work_orders; --", "a b", "$1", "\\",
       "/*", "*/", "';--", "%s", ":name", "?", "a\nb", "\t", "E'\\x00'", "$$", "$tag$", "`x`", "[x]", "NULL",
       "0x00"]  # fmt: skip
UNICODE = ["é", "ñame", "名前", "😀", "\u202e", "\u200b", "ǅ", "İ", "ß", "\uff21", "\ufeff", "a\u0301", "\x7f", "\x85",
           "\u2028", "x" * 63, "x" * 64, "é" * 32, "x" * 200]  # fmt: skip
_NAME = st.from_regex(r"[a-z][a-z0-9]{0,6}(_[a-z0-9]{1,5}){0,2}", fullmatch=True)


def rarely(common: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 12) -> st.SearchStrategy[Any]:
    """*common*, and once in *one_in* draws *odd*: most documents stay valid, so that most of them apply."""
    # Not at 0 or the top: hypothesis favours the ends of a range.
    return st.integers(0, one_in - 1).flatmap(lambda n: odd if n == one_in // 2 else common)


def names() -> st.SearchStrategy[str]:
    """Identifiers: mostly valid (reserved words included), else SQL, unicode or any text."""
    hostile = st.one_of(st.sampled_from(SQL), st.sampled_from(UNICODE), st.text(max_size=12))
    return rarely(rarely(_NAME, st.sampled_from(RESERVED), 8), hostile, 30)


def texts() -> st.SearchStrategy[str]:
    """Free text (descriptions, enum values, defaults): anything, hostile included."""
    return st.one_of(st.text(max_size=20), st.sampled_from(SQL + UNICODE + RESERVED), _NAME)


_INTS = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                     2**64, 10**30, limits.MAX_PRECISION, limits.MAX_PRECISION + 1, limits.MAX_VARCHAR_LENGTH,
                     limits.MAX_VARCHAR_LENGTH + 1]),
)  # fmt: skip
_FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.5, -1.5, 1e308, 5e-324, 1e-7]))
#: Values of any JSON type: what a field of another type gets when a mutation swaps it.
JUNK = st.one_of(
    st.none(), st.booleans(), _INTS, _FLOATS, texts(), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip


def _default(kind: str, enum_values: list[str]) -> st.SearchStrategy[Any]:
    fitting: dict[str, st.SearchStrategy[Any]] = {
        "String": rarely(_NAME, texts(), 3),
        "Text": texts(),
        "Int": rarely(st.integers(-100, 100), _INTS, 3),
        "BigInt": rarely(st.integers(-100, 100), _INTS, 3),
        "Float": rarely(st.floats(-1e6, 1e6), _FLOATS | _INTS, 3),
        "Decimal": rarely(
            st.integers(-100, 100), _FLOATS | _INTS | st.sampled_from(["1.5", "abc", "1e400", "-0.00"]), 3
        ),
        "Boolean": st.booleans(),
        "Date": st.sampled_from(["2024-02-29", "2023-02-29", "0001-01-01", "9999-12-31", "now", "today"]),
        "DateTime": st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00+16:00", "2024-01-01", "now"]),
        "Json": texts() | _INTS | st.booleans(),
        "Uuid": st.uuids().map(str) | st.sampled_from(["not-a-uuid", "00000000-0000-0000-0000-000000000000"]),
        "Enum": rarely(st.sampled_from(enum_values or ["x"]), texts(), 4),
    }
    return rarely(fitting[kind], JUNK)


@st.composite
def _validation(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if kind in ("String", "Text") or draw(st.integers(0, 9)) == 0:
        if draw(st.booleans()):
            rules["minLength"] = draw(rarely(st.integers(0, 5), _INTS))
        if draw(st.booleans()):
            rules["maxLength"] = draw(rarely(st.integers(5, 300), _INTS))
        if draw(st.integers(0, 3)) == 0:
            rules["pattern"] = draw(
                st.sampled_from(["^[a-z]+$", "^[A-Z]{3}-[0-9]+$", "a.c", "(", "[", "\\d+", "(?i)x", "^(ab|cd)*$",
                                 "x{1000}", "(a*)*b", "^$", "é+", "\\", "[[:alpha:]]", "a{2,1}"])
            )  # fmt: skip
    if kind in ("Int", "BigInt", "Float", "Decimal") or draw(st.integers(0, 9)) == 0:
        if draw(st.booleans()):
            rules["min"] = draw(rarely(st.integers(-100, 0), _INTS | _FLOATS, 4))
        if draw(st.booleans()):
            rules["max"] = draw(rarely(st.integers(1, 100), _INTS | _FLOATS, 4))
    return rules


@st.composite
def fields(draw: st.DrawFn, enums: list[dict[str, Any]]) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES if enums else TYPES[:-1]))
    field: dict[str, Any] = {"name": draw(names()), "type": kind}
    if kind == "Enum":
        field["enum"] = draw(rarely(st.sampled_from([e["name"] for e in enums]), names()))
    enum = next((e for e in enums if e["name"] == field.get("enum")), None)
    if draw(st.integers(0, 3)) == 0:
        field["required"] = True
    if draw(st.integers(0, 5)) == 0:
        field["unique"] = True
    if draw(st.integers(0, 2)) == 0:
        field["default"] = draw(_default(kind, list(enum["values"]) if enum else []))
    if kind == "Decimal" and draw(st.booleans()):
        field["precision"] = draw(rarely(st.integers(10, 40), _INTS))
        if draw(st.booleans()):
            field["scale"] = draw(rarely(st.integers(0, 10), _INTS))
    if draw(st.integers(0, 2)) == 0 and kind not in ("Boolean", "Date", "DateTime", "Json", "Uuid", "Enum"):
        rules = draw(_validation(kind))
        if rules:
            field["validation"] = rules
    if draw(st.integers(0, 4)) == 0:
        field["description"] = draw(texts())
    return field


@st.composite
def tables(draw: st.DrawFn, enums: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {"name": draw(names()), "fields": draw(st.lists(fields(enums), max_size=5))}
    names_ = [f["name"] for f in table["fields"]]
    if names_ and draw(st.integers(0, 3)) == 0:
        index: dict[str, Any] = {"fields": draw(st.lists(st.sampled_from(names_), min_size=1, max_size=3, unique=True))}
        if draw(st.booleans()):
            index["unique"] = True
        table["indexes"] = [index]
    if names_ and draw(st.integers(0, 5)) == 0:
        table["uniqueConstraints"] = [
            {"fields": draw(st.lists(st.sampled_from(names_), min_size=1, max_size=3, unique=True))}
        ]
    if draw(st.integers(0, 4)) == 0:
        table["description"] = draw(texts())
    return table


@st.composite
def enums(draw: st.DrawFn) -> dict[str, Any]:
    values = draw(st.lists(rarely(_NAME, texts()), min_size=1, max_size=4, unique=True))
    enum: dict[str, Any] = {"name": draw(names()), "values": values}
    if values and draw(st.integers(0, 5)) == 0:
        enum["localization"] = {draw(st.sampled_from(["en", "de", "x" * 70])): {values[0]: draw(texts())}}
    return enum


@st.composite
def relationships(draw: st.DrawFn, table_names: list[str]) -> dict[str, Any]:
    own = rarely(st.sampled_from(table_names), names(), 20)
    target = draw(rarely(own | st.just("core.work_orders"), st.sampled_from(["core.nosuch", "other.item", "a.b.c"]), 6))
    rel: dict[str, Any] = {"source": draw(own), "target": target}
    if draw(st.booleans()):
        rel["type"] = draw(st.sampled_from(["ManyToOne", "OneToOne", "OneToMany", "ManyToMany"]))
    if draw(st.integers(0, 2)) == 0:
        rel["onDelete"] = draw(st.sampled_from(["Restrict", "Cascade", "SetNull"]))
    if draw(st.integers(0, 3)) == 0:
        rel["sourceField"] = draw(names())
    return rel


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec mapping, valid more often than not."""
    enum_list = draw(st.lists(enums(), max_size=2))
    table_list = draw(st.lists(tables(enum_list), min_size=0, max_size=3))
    spec: dict[str, Any] = {
        "pluginId": draw(_NAME | _NAME | names()),
        "version": draw(
            rarely(
                st.sampled_from(["1.0.0", "0.1.0", "1.0.0-rc.1+build.5"]),
                st.sampled_from(["1.0", "v1", "", "9" * 70]),
                30,
            )
        ),
        "tables": table_list,
    }
    if enum_list:
        spec["enums"] = enum_list
    table_names = [t["name"] for t in table_list]
    if table_names and draw(st.integers(0, 2)) == 0:
        spec["relationships"] = draw(st.lists(relationships(table_names), max_size=2))
    if draw(st.integers(0, 15)) == 0:
        spec["dependsOn"] = draw(st.lists(names(), max_size=2))
    if draw(st.integers(0, 5)) == 0:
        spec["description"] = draw(texts())
    return spec


# --- mutations -----------------------------------------------------------------------------------


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in *node* (mapping keys and list indexes)."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _places(value, (*path, index))
    return found


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _huge(kind: str) -> Any:
    if kind == "name":
        return "a" * 100_000
    if kind == "fields":
        return [{"name": f"f{i}", "type": "Int"} for i in range(limits.MAX_FIELDS + 1)]
    if kind == "tables":
        return [{"name": f"t{i}", "fields": []} for i in range(limits.MAX_TABLES + 1)]
    return "x" * (limits.MAX_RESOURCE_SPEC_BYTES + 10)  # a description over the resource's size limit


MUTATIONS = ["replace", "delete", "unknown", "duplicate", "replace", "delete", "unknown", "duplicate", "nest", "huge"]


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """*document* with a few mutations; returns it and what was done (for the report)."""
    done: list[str] = []
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        if "spec" not in doc:
            break
        places = _places(doc["spec"], ("spec",))
        where = draw(st.sampled_from(places))
        kind = draw(st.sampled_from(MUTATIONS))
        parent: Any = doc
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        if kind == "replace":
            parent[last] = draw(JUNK)
        elif kind == "delete" and isinstance(parent, dict):
            del parent[last]
        elif kind == "unknown" and isinstance(parent[last], dict):
            parent[last][draw(names())] = draw(JUNK)
        elif kind == "duplicate" and isinstance(parent[last], list) and parent[last]:
            parent[last].append(copy.deepcopy(parent[last][0]))
        elif kind == "nest":
            parent[last] = _nested(draw(st.sampled_from([20, 450, 900])))
        elif kind == "huge":
            parent[last] = _huge(draw(st.sampled_from(["name", "fields", "tables", "text"])))
        else:
            continue
        done.append(f"{kind} {'.'.join(map(str, where))}")
    return doc, done


def wrap(spec: dict[str, Any], name: str = "fuzz") -> dict[str, Any]:
    return {"apiVersion": "extschema.io/v1alpha1", "kind": "ExtensionSchema", "metadata": {"name": name}, "spec": spec}


class Case:
    """A generated document and the mutations made to it; shown as its YAML (cut short) when a check fails."""

    def __init__(self, doc: dict[str, Any], mutations: list[str]) -> None:
        self.doc = doc
        self.mutations = mutations

    def text(self) -> str:
        """The document as a file holds it: YAML, or JSON (a YAML too) where PyYAML's dumper recurses too deep."""
        try:
            return yaml.safe_dump(self.doc, allow_unicode=True, sort_keys=False)
        except RecursionError:
            return json.dumps(self.doc, ensure_ascii=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis shows a failing case
        printer.text(repr(self))

    def __repr__(self) -> str:
        shown = self.text()
        if len(shown) > 3000:
            shown = shown[:3000] + f"... ({len(shown)} characters)"
        return f"Case(mutations={self.mutations!r}):\n{shown}"


@st.composite
def documents(draw: st.DrawFn, broken: float = 0.4) -> Case:
    """A whole document, as generated or mutated."""
    odd = draw(st.integers(0, 9)) == 0
    name = draw(st.sampled_from(["", "UPPER", "a" * 254, "fuzz-a", "x.y"])) if odd else "fuzz"
    document = wrap(draw(specs()), name)
    if draw(st.integers(0, 9)) >= 10 - round(broken * 10):  # hypothesis favours 0: as generated, mostly
        return Case(*draw(mutated(document)))
    return Case(document, [])
