"""Every rule a spec must follow, checked without I/O, every problem reported at once.

Two entry points. :func:`structural_problems` turns pydantic's errors (wrong types, unknown or
missing fields, closed sets) into located problems a person can act on. :func:`validate` checks
a structurally valid spec against the rules that need the whole document: identifiers, reserved
and duplicate names, type/option/default compatibility, portable regular expressions, enums,
indexes, relationships and database limits. Both return problems in a deterministic order and
never stop at the first one.

Regular expressions must mean the same in PostgreSQL (ARE, the ``~`` operator) and in SQLite,
where the engine registers :func:`portable_regex_search` as the REGEXP function, so patterns are
limited to a small portable subset (:func:`is_portable_pattern`). Within that subset ``\\d``,
``\\w`` and ``\\s`` agree on ASCII text; beyond ASCII PostgreSQL follows the database locale.

A Json field may have any JSON scalar as its default (string, number, boolean); the value is the
JSON document itself, so ``default: "x"`` is the JSON string ``"x"``.
"""

from __future__ import annotations

import datetime
import decimal
import difflib
import functools
import json
import math
import re
import string
import sys
import types
import typing
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

from extschema import model, naming
from extschema.problems import Problem

MAX_COLUMNS = 1600  # PostgreSQL's limit per table, counting id and FK columns
MAX_INDEX_FIELDS = 32  # PostgreSQL's INDEX_MAX_KEYS
MAX_PATTERN_LENGTH = 1000
MAX_REPEAT = 255  # PostgreSQL's RE_DUP_MAX: larger {m,n} bounds are an error there
MAX_VARCHAR_LENGTH = 10_485_760  # PostgreSQL's varchar(n) limit
DEFAULT_STRING_LENGTH = 255
DEFAULT_PRECISION = 18
DEFAULT_SCALE = 2
MAX_PRECISION = 1000
MAX_ENUM_LABEL_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
INT_RANGES = {"Int": (-(2**31), 2**31 - 1), "BigInt": (-(2**63), 2**63 - 1)}

TEXT_TYPES = frozenset({"String", "Text"})
NUMERIC_TYPES = frozenset({"Int", "BigInt", "Float", "Decimal"})
FK_FORBIDDEN_TYPES = frozenset({"Enum", "Json", "Boolean"})

#: The official semver 2.0 expression (semver.org); ASCII so that \d is 0-9 only.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)
LOCALE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
)
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Names a core or other plugin's table/column may have: we only quote them, but refuse oddities.
FOREIGN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BOUND = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


# --- Structural problems (pydantic errors) ----------------------------------------------------

_MODELS: dict[str, type[pydantic.BaseModel]] = {
    cls.__name__: cls
    for cls in (
        model.ExtensionSchema,
        model.ExtensionSchemaSpec,
        model.TableSpec,
        model.FieldSpec,
        model.EnumSpec,
        model.IndexSpec,
        model.UniqueConstraintSpec,
        model.RelationshipSpec,
        model.ValidationRules,
    )
}
#: Union member tags pydantic puts into locations; recognised by name only for foreign models.
_TAGS = frozenset({"str", "int", "float", "bool", "none"})
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean (true or false)",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "invalid_key": "a text key",
}
_EXAMPLES = {
    "pluginId": "pluginId: my_plugin",
    "version": 'version: "1.0.0"',
    "name": "name: my_name",
    "type": "type: String",
    "fields": "fields: [a_field]",
    "values": "values: [draft, published]",
    "source": "source: my_table",
    "target": "target: core.work_orders",
    "apiVersion": f"apiVersion: {model.API_VERSION}",
    "kind": f"kind: {model.KIND}",
    "metadata": "metadata: {name: my-plugin}",
}


def structural_problems(error: pydantic.ValidationError, prefix: str = "") -> list[Problem]:
    """One problem per offending path; union members' duplicate errors are merged into one."""
    root = _MODELS.get(error.title)
    grouped: dict[str, list[tuple[Mapping[str, Any], _Located]]] = {}
    for err in error.errors():
        located = _locate(root, err["loc"], extra=err["type"] == "extra_forbidden")
        grouped.setdefault(_render_path(prefix, located.parts), []).append((err, located))
    return [_structural_problem(path, errs) for path, errs in grouped.items()]


class _Located(typing.NamedTuple):
    parts: list[str | int]  # the location in document terms (aliases, indexes, keys)
    parent: Any  # annotation holding the last part (a model class for fields)
    annotation: Any  # annotation of the last part, when known


def _members(annotation: Any) -> tuple[Any, ...]:
    """The non-None members of a union, or the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _model_fields(cls: type[pydantic.BaseModel]) -> dict[str, Any]:
    """Field annotations by the name a document uses (alias) and by Python name."""
    found: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        found[name] = info.annotation
        if info.alias:
            found[info.alias] = info.annotation
    return found


def _child(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return _model_fields(annotation).get(str(part))
    origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _locate(root: Any, loc: Sequence[str | int], *, extra: bool) -> _Located:
    """Follow a pydantic location through the models, dropping union member tags like ``int``."""
    parts: list[str | int] = []
    annotation, parent = root, None
    last = len(loc) - 1
    for position, part in enumerate(loc):
        if part == "[key]":  # pydantic's marker for a bad dict key; the key is the previous part
            continue
        members = _members(annotation)
        user_key = extra and position == last
        if isinstance(part, str) and not user_key:
            tag = len(members) > 1 if annotation is not None else part in _TAGS or part.endswith("]")
            if tag:
                annotation = None
                continue
        parent = members[0] if len(members) == 1 else None
        parts.append(part)
        annotation = _child(parent, part)
    return _Located(parts, parent, annotation)


def _render_path(prefix: str, parts: Iterable[str | int]) -> str:
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{_show(part)}]"
    return path


def _structural_problem(path: str, errs: list[tuple[Mapping[str, Any], _Located]]) -> Problem:
    err, located = errs[0]
    kind = err["type"]
    if kind == "missing":
        name = str(located.parts[-1]) if located.parts else ""
        example = _EXAMPLES.get(name)
        hint = f" (e.g. {example})" if example else ""
        return Problem("ES012", path, f"Missing required field {_show(name)}: add it{hint}.")
    if kind == "extra_forbidden":
        return Problem("ES011", path, _unknown_field_message(located))
    if kind == "literal_error":
        return Problem("ES013", path, _choice_message(err, located))
    expected = [_EXPECTED[e["type"]] for e, _ in errs if e["type"] in _EXPECTED]
    if not expected:
        return Problem("ES010", path, f"{err['msg']}.")
    value = err.get("input")
    message = f"Expected {_join_words(expected)}, got {_describe(value)}."
    return Problem("ES010", path, message + _type_hint(path, value, {e["type"] for e, _ in errs}))


def _unknown_field_message(located: _Located) -> str:
    key = str(located.parts[-1]) if located.parts else ""
    message = f"Unknown field {_show(key)}"
    parent = located.parent
    if isinstance(parent, type) and issubclass(parent, pydantic.BaseModel):
        known = [info.alias or name for name, info in parent.model_fields.items()]
        by_lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        if close:
            message += f": did you mean {_show(by_lower[close[0]])}?"
        message += f" Allowed fields here: {', '.join(known)}."
        return message
    return message + ": remove it."


def _choice_message(err: Mapping[str, Any], located: _Located) -> str:
    choices = [str(c) for c in typing.get_args(located.annotation)]
    if typing.get_origin(located.annotation) is not typing.Literal:
        choices = [err.get("ctx", {}).get("expected", "")]
    value = err.get("input")
    message = f"{_show(value) if isinstance(value, str) else _describe(value)} is not allowed here"
    message += f"; choose one of: {', '.join(choices)}."
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6) or [
            c for c in choices if c.lower() == value.lower()
        ]
        if close:
            message += f" Did you mean {_show(close[0])}?"
    return message


def _type_hint(path: str, value: Any, kinds: set[str]) -> str:
    """How to write the value so it parses, for the usual YAML surprises."""
    if "string_type" in kinds:
        if isinstance(value, datetime.date):  # YAML turns 2024-01-01 into a date
            return f' Quote it: "{value.isoformat()}".'
        if isinstance(value, bool):
            return f' Quote it: "{str(value).lower()}".'
        plain = _plain_number(value) if isinstance(value, int | float) else None
        if plain is not None and path.endswith("version"):
            parts = [*plain.split("."), "0", "0"][:3]
            return f' Quote it: "{".".join(parts)}".'
        if plain is not None:
            return f" Quote it: {_show(plain)}."
    if isinstance(value, str) and kinds & {"int_type", "float_type", "bool_type"}:
        if value.strip().lower() in ("yes", "no", "on", "off", "true", "false"):
            return " Write true or false, without quotes."
        return " Write the number without quotes."
    if isinstance(value, list) and kinds & {"dict_type", "model_type"}:
        return " Write a mapping (key: value), not a list."
    if isinstance(value, dict) and "list_type" in kinds:
        return " Write a list (one '- item' per entry), not a mapping."
    return ""


def _join_words(words: Sequence[str]) -> str:
    unique = list(dict.fromkeys(words))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " or " + unique[-1]


# --- Display helpers --------------------------------------------------------------------------


def _show(value: Any, limit: int = 60) -> str:
    """A user's value quoted for a message: short, escaped, printable in any terminal."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def _plain_number(value: int | float) -> str | None:
    """The number as written, or None for integers too large to print (Python refuses)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return None
    return repr(value)


def _format_number(value: int | float) -> str:
    if isinstance(value, int) and _plain_number(value) is None:
        return f"an integer of about {math.ceil(value.bit_length() * math.log10(2))} digits"
    return repr(value)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        plain = _plain_number(value)
        return f"the number {plain}" if plain is not None else _format_number(value)
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} value"


def _byte_length(text: str) -> int:
    """UTF-8 size; lone surrogates (possible from YAML escapes) count instead of raising."""
    return len(text.encode("utf-8", "surrogatepass"))


def _describe_char(char: str) -> str:
    if char == "\0":
        return "a NUL character"
    if char.isspace():
        return "whitespace"
    if not char.isascii():
        return f"the non-ASCII character {_show(char)} (U+{ord(char):04X})"
    if char.isupper():
        return f"the uppercase letter {_show(char)}"
    return f"the character {_show(char)}"


def _identifier_reason(name: str) -> str | None:
    """Why *name* is not a safe identifier, or None."""
    if naming.IDENTIFIER.fullmatch(name) and "__" not in name and not name.endswith("_"):
        return None
    if not name:
        return "it is empty"
    bad = next((c for c in name if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_")), None)
    if bad is not None:
        reason = f"it contains {_describe_char(bad)}"
        if any(c in name for c in ";'\"`") or "--" in name:
            reason += " (names are identifiers, never SQL)"
        return reason
    if not name[0].isalpha():
        return "it must start with a lowercase letter"
    if "__" in name:
        return "it contains '__', which SQLite table names use to separate plugin and table"
    return "it ends with '_', which could form '__' (the SQLite plugin/table separator)"


def _suggest_identifier(name: str) -> str | None:
    """A lower_snake_case spelling of *name*, when one can be guessed."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    folded = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", folded)
    guess = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    if guess and not guess[0].isalpha():
        guess = f"n_{guess}"
    guess = guess[: naming.MAX_IDENTIFIER_BYTES].rstrip("_")
    if not guess or guess == name or _identifier_reason(guess) or guess.startswith(naming.RESERVED_PREFIXES):
        return None
    return guess


def _plugin_id_reason(plugin_id: str) -> str | None:
    """Why *plugin_id* cannot name a plugin, or None."""
    if not naming.PLUGIN_ID.fullmatch(plugin_id) or "__" in plugin_id or plugin_id.endswith("_"):
        reason = _identifier_reason(plugin_id) or "it must match ^[a-z][a-z0-9_]*$"
        guess = _suggest_identifier(plugin_id)
        return reason + (f" (e.g. {_show(guess[: naming.MAX_PLUGIN_ID_LENGTH])})" if guess else "")
    if len(plugin_id) > naming.MAX_PLUGIN_ID_LENGTH:
        return f"it is {len(plugin_id)} characters long; at most {naming.MAX_PLUGIN_ID_LENGTH} are allowed"
    if plugin_id.startswith(naming.RESERVED_PREFIXES):
        return f"names starting with {', '.join(naming.RESERVED_PREFIXES)} are reserved"
    if plugin_id == naming.CORE:
        return "'core' names the host application's tables"
    return None


# --- Regular expressions ----------------------------------------------------------------------

_ESCAPE_REASONS = {
    **dict.fromkeys(
        "bBAZzyYmM",
        "anchors and word boundaries (\\b, \\A, \\Z, \\y ...) differ between "
        "PostgreSQL and Python; use ^ and $ instead",
    ),
    **dict.fromkeys(
        "xuUNc0",
        "character-code escapes (\\x41, \\u00e9, \\N{...}, \\0) are not portable; write the character itself",
    ),
    **dict.fromkeys("123456789", "backreferences (\\1 ...) are not portable; repeat the sub-pattern instead"),
}


def _escape_reason(pattern: str, position: int, *, in_class: bool) -> str | None:
    """Whether the escape at *position* (a backslash) is in the portable subset."""
    if position + 1 >= len(pattern):
        return "it ends with a lone backslash; write \\\\ for a literal backslash"
    char = pattern[position + 1]
    if char in ("dws" if in_class else "dDwWsS") or (char.isascii() and char in string.punctuation):
        return None
    if char in "DWS":
        return f"\\{char} is not allowed inside [...] in PostgreSQL; use a negated class [^...] instead"
    reason = _ESCAPE_REASONS.get(char)
    if reason:
        return f"\\{char} at position {position}: {reason}"
    return (
        f"the escape \\{_show(char)[1:-1]} at position {position} is not in the portable subset "
        "(only \\d \\D \\w \\W \\s \\S and escaped punctuation); write the character itself"
    )


def _class_end(pattern: str, start: int) -> int:
    """Index just past the ``]`` closing the class opened at *start*; len+1 if unterminated."""
    position = start + 1
    if pattern.startswith("^", position):
        position += 1
    if pattern.startswith("]", position):  # a leading ] is literal
        position += 1
    while position < len(pattern):
        if pattern[position] == "\\":
            position += 2
        elif pattern[position] == "]":
            return position + 1
        else:
            position += 1
    return len(pattern) + 1


def _class_reason(pattern: str, start: int, end: int) -> str | None:
    if end > len(pattern):
        return f"the character class '[' at position {start} is never closed; add ']' or write \\["
    position = start + 1
    while position < end - 1:
        char = pattern[position]
        if char == "\\":
            reason = _escape_reason(pattern, position, in_class=True)
            if reason:
                return reason
            position += 2
            continue
        if char == "[":
            return (
                f"'[' inside a character class at position {position}: POSIX classes like [[:alpha:]] and "
                "nested sets are not portable; write \\[ for a literal bracket"
            )
        pair = pattern[position : position + 2]
        if pair in ("&&", "||", "~~", "--"):
            return f"{pair!r} inside a character class at position {position} is a set operation in Python; escape it"
        position += 1
    return None


def _group_reason(pattern: str, position: int) -> str:
    """Why the ``(?`` construct at *position* is not portable (only ``(?:`` is)."""
    rest = pattern[position + 2 : position + 4]
    if rest[:1] in ("=", "!"):
        what = "lookahead (?=...) / (?!...)"
    elif rest in ("<=", "<!"):
        what = "lookbehind (?<=...) / (?<!...)"
    elif rest[:1] in ("P", "<"):
        what = "named groups (?P<name>...)"
    elif rest[:1] == "#":
        what = "comments (?#...)"
    elif rest[:1] in (">", "("):
        what = "atomic and conditional groups"
    else:
        what = "inline flags like (?i)"
    return f"{what} at position {position} are not portable; use plain ( ) or (?: ) groups"


def _scan_reason(pattern: str) -> str | None:
    """Walk the pattern once, rejecting anything outside the portable subset."""
    position, repeatable = 0, False
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            reason = _escape_reason(pattern, position, in_class=False)
            if reason:
                return reason
            position, repeatable = position + 2, True
        elif char == "[":
            end = _class_end(pattern, position)
            reason = _class_reason(pattern, position, end)
            if reason:
                return reason
            position, repeatable = end, True
        elif char == "(":
            if pattern.startswith("(?", position) and not pattern.startswith("(?:", position):
                return _group_reason(pattern, position)
            position, repeatable = position + (3 if pattern.startswith("(?:", position) else 1), False
        elif char in "*+?{":
            reason, position = _quantifier(pattern, position, repeatable)
            if reason:
                return reason
            repeatable = False
        elif char in "}]":
            return f"unescaped {char!r} at position {position}; write \\{char} for a literal one"
        else:
            repeatable = char not in "^$|"
            position += 1
    return None


def _quantifier(pattern: str, position: int, repeatable: bool) -> tuple[str | None, int]:
    """Check the quantifier at *position*; return (reason, position after it)."""
    if not repeatable:
        return f"the quantifier {pattern[position]!r} at position {position} has nothing to repeat", position
    end = position + 1
    if pattern[position] == "{":
        bound = _BOUND.match(pattern, position)
        if not bound:
            return (
                f"'{{' at position {position} must start {{m}}, {{m,}} or {{m,n}}; write \\{{ for a literal one",
                position,
            )
        low, high = int(bound.group(1)), bound.group(3)
        if low > MAX_REPEAT or (high and int(high) > MAX_REPEAT):
            return (
                f"repetition counts above {MAX_REPEAT} are an error in PostgreSQL (at position {position})",
                position,
            )
        end = bound.end()
    if pattern.startswith("?", end):  # lazy: same match/no-match on both sides
        end += 1
    if pattern.startswith("+", end):
        return f"possessive quantifiers (like a++) at position {position} are not portable", position
    return None, end


@functools.lru_cache(maxsize=1024)
def is_portable_pattern(pattern: str) -> str | None:
    """None when *pattern* is in the portable subset and compiles; otherwise the reason."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"it is {len(pattern)} characters long; at most {MAX_PATTERN_LENGTH} are allowed"
    if not pattern:
        return "it is empty and would match everything; remove it"
    if "\0" in pattern:
        return "it contains a NUL character, which PostgreSQL cannot store"
    reason = _scan_reason(pattern)
    if reason:
        return reason
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FutureWarnings announce a change of meaning
            re.compile(pattern)
    except (re.error, Warning) as exc:
        return f"it does not compile: {exc}"
    return None


def _to_python(pattern: str) -> str:
    """PostgreSQL's ``$`` matches only at the very end; Python's also before a final newline."""
    out: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            out.append(pattern[position : position + 2])
            position += 2
        elif char == "[":
            end = min(_class_end(pattern, position), len(pattern))
            out.append(pattern[position:end])
            position = end
        else:
            out.append(r"\Z" if char == "$" else char)
            position += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    # DOTALL: PostgreSQL's '.' matches a newline too.
    return re.compile(_to_python(pattern), re.DOTALL)


def portable_regex_search(pattern: str, value: str) -> bool:
    """``value ~ pattern`` as PostgreSQL evaluates it, for portable patterns; SQLite's REGEXP.

    Raises :class:`re.error` for a pattern that does not compile (validation refuses those).
    """
    return _compiled(pattern).search(value) is not None


# --- Semantic validation ----------------------------------------------------------------------


def validate(spec: model.ExtensionSchemaSpec, path: str = "spec") -> list[Problem]:
    """All semantic problems of *spec*, in document order of the checks."""
    return _Validator(spec, path).run()


def _bytes(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


def _join(base: str, suffix: str) -> str:
    return f"{base}.{suffix}" if base else suffix


def _close(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return f" Did you mean {_show(match[0])}?" if match else ""


def _listing(names: Iterable[str]) -> str:
    shown = list(names)
    if not shown:
        return "none"
    text = ", ".join(shown[:10])
    return text + (f" (and {len(shown) - 10} more)" if len(shown) > 10 else "")


class _Validator:
    """One pass over one spec; collects problems instead of raising."""

    def __init__(self, spec: model.ExtensionSchemaSpec, path: str) -> None:
        self.spec = spec
        self.root = path
        self.problems: list[Problem] = []
        self.plugin_ok = _plugin_id_reason(spec.plugin_id) is None
        self.fks, self.joins = model.resolve_relationships(spec)
        self.tables: dict[str, model.TableSpec] = {}
        for table in spec.tables:
            self.tables.setdefault(table.name, table)
        self.columns: dict[str, dict[str, model.FieldSpec]] = {}
        for name, table in self.tables.items():
            fields: dict[str, model.FieldSpec] = {}
            for field in table.fields:
                fields.setdefault(field.name, field)
            self.columns[name] = fields
        self.enums: dict[str, model.EnumSpec] = {}
        for enum in spec.enums:
            self.enums.setdefault(enum.name, enum)
        self.created: dict[str, set[str]] = {}  # FK columns relationships add to own tables
        for fk in self.fks:
            if not fk.declared:
                self.created.setdefault(fk.table, set()).add(fk.column)
        # PostgreSQL keeps tables and indexes in one namespace per schema, tables and types in another.
        self.relations: dict[str, str] = {}
        self.types: dict[str, str] = {}

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(Problem(code, path, message))

    def at(self, suffix: str) -> str:
        return _join(self.root, suffix)

    def run(self) -> list[Problem]:
        self.check_plugin()
        self.check_text(self.spec.description, self.at("description"))
        self.claim_tables_and_enums()
        for index, enum in enumerate(self.spec.enums):
            self.check_enum(enum, self.at(f"enums[{index}]"))
        for index, table in enumerate(self.spec.tables):
            self.check_table(table, self.at(f"tables[{index}]"))
        for index, rel in enumerate(self.spec.relationships):
            self.check_relationship(rel, self.at(f"relationships[{index}]"))
        self.check_foreign_keys()
        self.check_join_tables()
        return self.problems

    # -- names ---------------------------------------------------------------------------------

    def check_identifier(self, name: str, path: str, what: str, *, column: bool = False, hint: str = "") -> bool:
        """ES101/ES102/ES103 for a name extschema will create; True when it is fine."""
        before = len(self.problems)
        reason = _identifier_reason(name)
        if reason:
            guess = _suggest_identifier(name)
            example = f" such as {_show(guess)}" if guess else ""
            self.add(
                "ES101",
                path,
                f"{what} {_show(name)} is not a valid identifier: {reason}. Use lower_snake_case "
                "(a lowercase letter, then lowercase letters, digits and single "
                f"underscores){example}.{hint}",
            )
        size = _byte_length(name)
        if size > naming.MAX_IDENTIFIER_BYTES:
            self.add(
                "ES102",
                path,
                f"{what} {_show(name)} is {size} bytes; the database limit is {naming.MAX_IDENTIFIER_BYTES}: "
                f"shorten it by {_bytes(size - naming.MAX_IDENTIFIER_BYTES)}.{hint}",
            )
        if column and name in naming.RESERVED_COLUMNS:
            self.add(
                "ES103",
                path,
                f"{what} 'id' is reserved: every table gets the primary key 'id'. Rename it.{hint}",
            )
        if name.startswith(naming.RESERVED_PREFIXES):
            self.add(
                "ES103",
                path,
                f"{what} {_show(name)} starts with a reserved prefix "
                f"({', '.join(naming.RESERVED_PREFIXES)}): "
                f"rename it.{hint}",
            )
        return len(self.problems) == before

    def claim(self, name: str, path: str, what: str, *, relation: bool = True, type_: bool = False) -> None:
        """ES104 when *name* is taken in a PostgreSQL namespace it needs."""
        first = (self.relations.get(name) if relation else None) or (self.types.get(name) if type_ else None)
        if first:
            self.add(
                "ES104",
                path,
                f"{what} {_show(name)} is already used by {first}; PostgreSQL keeps tables, join tables and "
                "indexes in one namespace and tables and enum types in another. Rename one of them.",
            )
            return
        if relation:
            self.relations[name] = f"the {what} at {path}"
        if type_:
            self.types[name] = f"the {what} at {path}"

    def claim_tables_and_enums(self) -> None:
        for index, table in enumerate(self.spec.tables):
            self.claim(table.name, self.at(f"tables[{index}].name"), "table", type_=True)
        for index, enum in enumerate(self.spec.enums):
            self.claim(enum.name, self.at(f"enums[{index}].name"), "enum", relation=False, type_=True)

    def check_text(self, text: str | None, path: str) -> None:
        if text is not None and "\0" in text:
            self.add("ES010", path, "The text contains a NUL character, which PostgreSQL cannot store: remove it.")

    # -- plugin --------------------------------------------------------------------------------

    def check_plugin(self) -> None:
        spec = self.spec
        reason = _plugin_id_reason(spec.plugin_id)
        if reason:
            self.add("ES116", self.at("pluginId"), f"pluginId {_show(spec.plugin_id)} is not valid: {reason}.")
        if not SEMVER.fullmatch(spec.version):
            guess = re.sub(r"^[vV]", "", spec.version.strip())
            guess = guess + ".0" * (2 - guess.count(".")) if re.fullmatch(r"[0-9]+(\.[0-9]+){0,2}", guess) else ""
            example = f' such as "{guess}"' if guess and SEMVER.fullmatch(guess) else ' such as "1.0.0"'
            self.add(
                "ES115",
                self.at("version"),
                f"version {_show(spec.version)} is not a semantic version (MAJOR.MINOR.PATCH, semver.org): "
                f"write one{example}.",
            )
        seen: dict[str, int] = {}
        for index, dep in enumerate(spec.depends_on):
            path = self.at(f"dependsOn[{index}]")
            if dep in seen:
                self.add(
                    "ES104",
                    path,
                    f"dependsOn lists {_show(dep)} twice (first at dependsOn[{seen[dep]}]): remove one.",
                )
                continue
            seen[dep] = index
            if dep == spec.plugin_id:
                self.add("ES117", path, f"dependsOn lists the plugin itself ({_show(dep)}): remove it.")
                continue
            dep_reason = _plugin_id_reason(dep)
            if dep_reason:
                self.add("ES117", path, f"dependsOn entry {_show(dep)} is not a valid pluginId: {dep_reason}.")

    # -- enums ---------------------------------------------------------------------------------

    def check_enum(self, enum: model.EnumSpec, path: str) -> None:
        self.check_identifier(enum.name, f"{path}.name", "enum name")
        if not enum.values:
            self.add("ES109", f"{path}.values", f"enum {_show(enum.name)} has no values: list at least one.")
        seen: dict[str, int] = {}
        for index, value in enumerate(enum.values):
            value_path = f"{path}.values[{index}]"
            size = _byte_length(value)
            if not value:
                self.add("ES109", value_path, "An enum value is empty: remove it or give it text.")
            elif "\0" in value:
                self.add("ES109", value_path, f"enum value {_show(value)} contains a NUL character: remove it.")
            elif size > MAX_ENUM_LABEL_BYTES:
                self.add(
                    "ES109",
                    value_path,
                    f"enum value {_show(value)} is {size} bytes; PostgreSQL allows {MAX_ENUM_LABEL_BYTES}: "
                    f"shorten it by {_bytes(size - MAX_ENUM_LABEL_BYTES)}.",
                )
            if value in seen:
                self.add(
                    "ES109",
                    value_path,
                    f"enum value {_show(value)} is listed twice (first at values[{seen[value]}]): remove one.",
                )
            else:
                seen[value] = index
        for locale, labels in enum.localization.items():
            locale_path = _render_path(f"{path}.localization", [locale])
            if not LOCALE.fullmatch(locale):
                self.add(
                    "ES119",
                    locale_path,
                    f"locale {_show(locale)} is not a language tag: write it like 'de' or 'pt-BR'.",
                )
            for value, label in labels.items():
                label_path = _render_path(locale_path, [value])
                if value not in seen:
                    self.add(
                        "ES119",
                        label_path,
                        f"localization names {_show(value)}, which is not a value of enum {_show(enum.name)} "
                        f"(values: {_listing(enum.values)}).{_close(value, seen)}",
                    )
                if "\0" in label:
                    self.add("ES119", label_path, "The label contains a NUL character: remove it.")

    # -- tables --------------------------------------------------------------------------------

    def check_table(self, table: model.TableSpec, path: str) -> None:
        name_ok = self.check_identifier(table.name, f"{path}.name", "table name")
        if name_ok and self.plugin_ok and not naming.physical_table_length_ok(self.spec.plugin_id, table.name):
            self.too_long_physical(table.name, f"{path}.name", "table")
        self.check_text(table.description, f"{path}.description")
        seen: dict[str, int] = {}
        for index, field in enumerate(table.fields):
            field_path = f"{path}.fields[{index}]"
            self.check_identifier(field.name, f"{field_path}.name", "field name", column=True)
            if field.name in seen:
                self.add(
                    "ES104",
                    f"{field_path}.name",
                    f"field {_show(field.name)} is declared twice in table {_show(table.name)} "
                    f"(first at fields[{seen[field.name]}]): rename or remove one.",
                )
            else:
                seen[field.name] = index
            self.check_field(field, field_path)
        owned = self.tables.get(table.name) is table
        created = self.created.get(table.name, set()) if owned else set()
        count = 1 + len(table.fields) + len(created)
        if count > MAX_COLUMNS:
            self.add(
                "ES114",
                f"{path}.fields",
                f"table {_show(table.name)} would have {count} columns (id, {len(table.fields)} fields, "
                f"{len(created)} relationship columns); PostgreSQL allows {MAX_COLUMNS}: split it into "
                "several tables.",
            )
        known = set(seen) | created | set(naming.RESERVED_COLUMNS)
        for index, idx in enumerate(table.indexes):
            self.check_index(idx.name, idx.fields, known, table.name, f"{path}.indexes[{index}]", "index")
        for index, uc in enumerate(table.unique_constraints):
            self.check_index(uc.name, uc.fields, known, table.name, f"{path}.uniqueConstraints[{index}]", "constraint")

    def too_long_physical(self, name: str, path: str, what: str) -> None:
        physical = naming.Namer("prefix").table(self.spec.plugin_id, name).name
        size = _byte_length(physical)
        self.add(
            "ES102",
            path,
            f"{what} {_show(name)} is stored on SQLite as {_show(physical)}, {size} bytes; the limit is "
            f"{naming.MAX_IDENTIFIER_BYTES}: shorten the name by "
            f"{_bytes(size - naming.MAX_IDENTIFIER_BYTES)}.",
        )

    def check_index(
        self, name: str | None, fields: list[str], known: set[str], table: str, path: str, what: str
    ) -> None:
        if name is not None and self.check_identifier(name, f"{path}.name", f"{what} name"):
            self.claim(name, f"{path}.name", what)
        if not fields:
            self.add("ES111", f"{path}.fields", f"The {what} lists no fields: name at least one.")
        if len(fields) > MAX_INDEX_FIELDS:
            self.add(
                "ES121",
                f"{path}.fields",
                f"The {what} has {len(fields)} fields; PostgreSQL allows {MAX_INDEX_FIELDS}: use fewer.",
            )
        seen: set[str] = set()
        for index, field in enumerate(fields):
            field_path = f"{path}.fields[{index}]"
            if field in seen:
                self.add("ES104", field_path, f"The {what} lists {_show(field)} twice: remove one.")
            elif field not in known:
                self.add(
                    "ES111",
                    field_path,
                    f"table {_show(table)} has no field {_show(field)}.{_close(field, known)} "
                    "Name a declared field, 'id' or a relationship's column.",
                )
            seen.add(field)

    # -- fields --------------------------------------------------------------------------------

    def check_field(self, field: model.FieldSpec, path: str) -> None:
        kind = field.type
        self.check_text(field.description, f"{path}.description")
        if kind == "Enum":
            if field.enum is None:
                self.add(
                    "ES112",
                    f"{path}.enum",
                    f"A field of type Enum needs 'enum:' naming one of spec.enums (declared: {_listing(self.enums)}).",
                )
            elif field.enum not in self.enums:
                self.add(
                    "ES112",
                    f"{path}.enum",
                    f"enum {_show(field.enum)} is not declared in spec.enums (declared: "
                    f"{_listing(self.enums)})."
                    f"{_close(field.enum, self.enums)}",
                )
        elif field.enum is not None:
            self.add(
                "ES106",
                f"{path}.enum",
                f"'enum' only applies to type Enum, not {kind}: remove it or use type: Enum.",
            )
        if kind == "Decimal":
            self.check_decimal(field, path)
        else:
            for option, value in (("precision", field.precision), ("scale", field.scale)):
                if value is not None:
                    self.add(
                        "ES106",
                        f"{path}.{option}",
                        f"'{option}' only applies to Decimal, not {kind}: remove it.",
                    )
        if field.validation is not None:
            self.check_rules(field, field.validation, f"{path}.validation")
        if field.default is not None:
            reason = self.default_reason(field, field.default)
            if reason:
                self.add(
                    "ES105",
                    f"{path}.default",
                    f"default {_describe(field.default)} does not fit {kind} field {_show(field.name)}: {reason}.",
                )

    def check_decimal(self, field: model.FieldSpec, path: str) -> None:
        precision = DEFAULT_PRECISION if field.precision is None else field.precision
        scale = DEFAULT_SCALE if field.scale is None else field.scale
        if not 1 <= precision <= MAX_PRECISION:
            self.add("ES110", f"{path}.precision", f"precision {precision} must be between 1 and {MAX_PRECISION}.")
        elif not 0 <= scale <= precision:
            where = "scale" if field.scale is not None else "precision"
            implied = "" if field.scale is not None else f" (scale defaults to {DEFAULT_SCALE}; set it explicitly)"
            self.add(
                "ES110",
                f"{path}.{where}",
                f"scale {scale} must be between 0 and precision {precision}{implied}.",
            )

    def check_rules(self, field: model.FieldSpec, rules: model.ValidationRules, path: str) -> None:
        kind = field.type
        text_rules = (
            ("minLength", rules.min_length),
            ("maxLength", rules.max_length),
            ("pattern", rules.pattern),
        )
        for key, value in text_rules:
            if value is not None and kind not in TEXT_TYPES:
                self.add(
                    "ES106",
                    f"{path}.{key}",
                    f"'{key}' only applies to String and Text fields, not {kind}: remove it.",
                )
        for key, bound in (("min", rules.min), ("max", rules.max)):
            if bound is not None and kind not in NUMERIC_TYPES:
                self.add(
                    "ES106",
                    f"{path}.{key}",
                    f"'{key}' only applies to Int, BigInt, Float and Decimal fields, not {kind}: remove it.",
                )
        if kind in TEXT_TYPES:
            self.check_lengths(kind, rules, path)
            if rules.pattern is not None:
                reason = is_portable_pattern(rules.pattern)
                if reason:
                    self.add(
                        "ES108",
                        f"{path}.pattern",
                        f"pattern {_show(rules.pattern)} cannot be used on both PostgreSQL and SQLite: {reason}.",
                    )
        if kind in NUMERIC_TYPES:
            self.check_bounds(kind, rules, path)

    def check_lengths(self, kind: str, rules: model.ValidationRules, path: str) -> None:
        if rules.min_length is not None and rules.min_length < 0:
            self.add("ES107", f"{path}.minLength", f"minLength {rules.min_length} must be 0 or more.")
        least = 1 if kind == "String" else 0
        maximum = rules.max_length
        if maximum is not None and maximum < least:
            self.add("ES107", f"{path}.maxLength", f"maxLength {maximum} must be {least} or more.")
        elif kind == "String" and maximum is not None and maximum > MAX_VARCHAR_LENGTH:
            self.add(
                "ES106",
                f"{path}.maxLength",
                f"maxLength {maximum} is more than PostgreSQL's varchar limit {MAX_VARCHAR_LENGTH}: use type Text.",
            )
        if maximum is None and kind == "String":
            maximum = DEFAULT_STRING_LENGTH
        if rules.min_length is not None and maximum is not None and rules.min_length > maximum:
            implied = " (String's default maxLength)" if rules.max_length is None else ""
            self.add(
                "ES107",
                f"{path}.minLength",
                f"minLength {rules.min_length} is greater than maxLength {maximum}{implied}: lower it or "
                "raise maxLength.",
            )

    def check_bounds(self, kind: str, rules: model.ValidationRules, path: str) -> None:
        usable = True
        for key, bound in (("min", rules.min), ("max", rules.max)):
            if bound is None:
                continue
            if isinstance(bound, float) and not math.isfinite(bound):
                self.add("ES107", f"{path}.{key}", f"{key} must be a finite number, not {bound}.")
                usable = False
            elif kind in INT_RANGES and not INT_RANGES[kind][0] <= bound <= INT_RANGES[kind][1]:
                low, high = INT_RANGES[kind]
                self.add(
                    "ES106",
                    f"{path}.{key}",
                    f"{key} {_format_number(bound)} is outside the {kind} range {low}..{high}"
                    f"{'; use BigInt' if kind == 'Int' else ''}.",
                )
            elif kind == "Float" and abs(bound) > sys.float_info.max:
                self.add("ES106", f"{path}.{key}", f"{key} {_format_number(bound)} is outside the Float range.")
        if usable and rules.min is not None and rules.max is not None and rules.min > rules.max:
            self.add(
                "ES107",
                f"{path}.min",
                f"min {_format_number(rules.min)} is greater than max {_format_number(rules.max)}: swap them.",
            )

    # -- defaults ------------------------------------------------------------------------------

    def default_reason(self, field: model.FieldSpec, value: str | bool | int | float) -> str | None:
        """Why *value* cannot be the default of *field*, or None."""
        if isinstance(value, str) and "\0" in value:
            return "it contains a NUL character, which PostgreSQL cannot store"
        if isinstance(value, float) and not math.isfinite(value):
            return "it must be a finite number"
        kind = field.type
        if kind in TEXT_TYPES:
            return self.text_default_reason(field, value)
        if kind in NUMERIC_TYPES:
            return self.number_default_reason(field, value)
        if kind == "Boolean":
            return None if isinstance(value, bool) else "write true or false"
        if kind == "Json":
            return None  # any JSON scalar is a JSON document
        if not isinstance(value, str):
            return "expected a string; quote it"
        if kind == "Enum":
            enum = self.enums.get(field.enum or "")
            if enum is None or value in enum.values:
                return None
            close = difflib.get_close_matches(value, enum.values, n=1, cutoff=0.7)
            guess = f" (did you mean {_show(close[0])}?)" if close else ""
            return f"use one of the values of enum {_show(enum.name)}: {_listing(enum.values)}{guess}"
        if kind == "Uuid":
            return None if UUID.fullmatch(value) else "write a UUID like 123e4567-e89b-12d3-a456-426614174000"
        if kind == "Date":
            if DATE.fullmatch(value) and _parses(datetime.date.fromisoformat, value):
                return None
            return "write a date as YYYY-MM-DD, e.g. 2024-01-31"
        if value == "now" or (
            DATETIME.fullmatch(value) and _parses(lambda v: datetime.datetime.fromisoformat(v).tzinfo, value)
        ):
            return None
        return "write an ISO 8601 time with a timezone, e.g. 2024-01-01T00:00:00Z, or 'now'"

    def text_default_reason(self, field: model.FieldSpec, value: str | bool | int | float) -> str | None:
        if not isinstance(value, str):
            shown = str(value).lower() if isinstance(value, bool) else _format_number(value)
            return f"expected a string; quote it: {_show(shown)}"
        rules = field.validation or model.ValidationRules()
        maximum = rules.max_length
        if maximum is None and field.type == "String":
            maximum = DEFAULT_STRING_LENGTH
        if maximum is not None and len(value) > maximum:
            return f"it is {len(value)} characters long; maxLength is {maximum}"
        if rules.min_length is not None and len(value) < rules.min_length:
            return f"it is {len(value)} characters long; minLength is {rules.min_length}"
        if (
            rules.pattern
            and is_portable_pattern(rules.pattern) is None
            and not portable_regex_search(rules.pattern, value)
        ):
            return f"it does not match the pattern {_show(rules.pattern)}"
        return None

    def number_default_reason(self, field: model.FieldSpec, value: str | bool | int | float) -> str | None:
        kind = field.type
        integral = kind in INT_RANGES
        if isinstance(value, bool) or not isinstance(value, int | float) or (integral and isinstance(value, float)):
            return f"expected {'an integer' if integral else 'a number'}, without quotes"
        if integral and not INT_RANGES[kind][0] <= value <= INT_RANGES[kind][1]:
            return f"it is outside the {kind} range {INT_RANGES[kind][0]}..{INT_RANGES[kind][1]}"
        if kind == "Float" and abs(value) > sys.float_info.max:
            return "it is outside the Float range"
        rules = field.validation or model.ValidationRules()
        if rules.min is not None and value < rules.min:
            return f"it is less than min {_format_number(rules.min)}"
        if rules.max is not None and value > rules.max:
            return f"it is greater than max {_format_number(rules.max)}"
        if kind == "Decimal":
            return _decimal_reason(field, value)
        return None

    # -- relationships -------------------------------------------------------------------------

    def check_relationship(self, rel: model.RelationshipSpec, path: str) -> None:
        spec = self.spec
        if rel.source not in self.tables:
            self.add(
                "ES113",
                f"{path}.source",
                f"source {_show(rel.source)} is not a table of this plugin (tables: {_listing(self.tables)})."
                f"{_close(rel.source, self.tables)} To link from another plugin's or a core table, "
                "reverse the relationship and name that table in target.",
            )
        target = model.parse_target(rel.target, spec.plugin_id)
        if target is None:
            self.add(
                "ES113",
                f"{path}.target",
                f"target {_show(rel.target)} must be 'table' (this plugin), 'plugin.table' or 'core.table'.",
            )
        else:
            self.check_target(rel, target, path)
        if rel.name is not None:
            if rel.type != "ManyToMany":
                self.add(
                    "ES106",
                    f"{path}.name",
                    f"'name' names the join table of a ManyToMany relationship; a {rel.type} has none: remove it.",
                )
            else:
                self.check_identifier(rel.name, f"{path}.name", "join table name")

    def check_target(self, rel: model.RelationshipSpec, target: model.TargetRef, path: str) -> None:
        own = target.plugin == self.spec.plugin_id
        target_path = f"{path}.target"
        if own:
            if target.table not in self.tables:
                self.add(
                    "ES113",
                    target_path,
                    f"target table {_show(target.table)} is not declared in this plugin (tables: "
                    f"{_listing(self.tables)}).{_close(target.table, self.tables)}",
                )
        elif not target.is_core:
            if _plugin_id_reason(target.plugin):
                self.add("ES113", target_path, f"target plugin {_show(target.plugin)} is not a valid pluginId.")
            elif target.plugin not in self.spec.depends_on:
                self.add(
                    "ES118",
                    target_path,
                    f"target {_show(rel.target)} belongs to plugin {_show(target.plugin)}, which is not in "
                    f"dependsOn: add it (dependsOn: [{target.plugin}]).",
                )
        if not own and not FOREIGN_NAME.fullmatch(target.table):
            self.add(
                "ES113",
                target_path,
                f"target table {_show(target.table)} is not a plain table name (letters, digits, underscores).",
            )
        if rel.type == "OneToMany" and not own:
            self.add(
                "ES113",
                target_path,
                "A OneToMany adds its foreign key column to the target, so the target must be a table "
                "of this "
                f"plugin; to point at {_show(rel.target)}, declare a ManyToOne from it instead.",
            )

    def check_foreign_keys(self) -> None:
        used: dict[tuple[str, str], int] = {}
        for fk in self.fks:
            rel = self.spec.relationships[fk.relationship]
            path = self.at(f"relationships[{fk.relationship}]")
            owner_end = rel.type in ("ManyToOne", "OneToOne")
            key = "sourceField" if owner_end else "targetField"
            named = rel.source_field if owner_end else rel.target_field
            column_path = f"{path}.{key}" if named else f"{path}.{'target' if owner_end else 'source'}"
            self.check_reference(fk, path, "targetField" if owner_end else "sourceField")
            if fk.table not in self.tables:
                continue  # reported as an unresolvable end
            # A name derived from a malformed table name is reported with that table.
            if not fk.declared and (named or FOREIGN_NAME.fullmatch(fk.references.table)):
                self.check_identifier(
                    fk.column,
                    column_path,
                    "foreign key column",
                    column=True,
                    hint=f" Set {key} to choose the column's name.",
                )
            if (fk.table, fk.column) in used:
                self.add(
                    "ES104",
                    column_path,
                    f"relationships[{used[fk.table, fk.column]}] already uses column {_show(fk.column)} "
                    "of table "
                    f"{_show(fk.table)}: give this relationship another column.",
                )
            else:
                used[fk.table, fk.column] = fk.relationship
            declared = self.columns[fk.table].get(fk.column)
            if declared is not None and declared.type in FK_FORBIDDEN_TYPES:
                self.add(
                    "ES122",
                    column_path,
                    f"field {_show(fk.column)} of table {_show(fk.table)} holds the foreign key but has type "
                    f"{declared.type}; give it the referenced column's type (BigInt for 'id') or use "
                    "another column.",
                )
            if fk.on_delete == "SetNull" and fk.required:
                self.add(
                    "ES120",
                    f"{path}.onDelete",
                    f"onDelete SetNull cannot clear the required field {_show(fk.column)}: make it optional "
                    "(required: false) or use Cascade or Restrict.",
                )

    def check_reference(self, fk: model.ForeignKey, path: str, key: str) -> None:
        """The referenced column (named by *key*) must exist and be unique, for ends this plugin owns."""
        ref, column, ref_path = fk.references, fk.referenced_column, f"{path}.{key}"
        if ref.plugin != self.spec.plugin_id:
            if not FOREIGN_NAME.fullmatch(column):
                self.add("ES113", ref_path, f"referenced column {_show(column)} is not a plain column name.")
            return
        fields = self.columns.get(ref.table)
        if fields is None or column in naming.RESERVED_COLUMNS:
            return  # a missing table is reported once, at the relationship's end
        field = fields.get(column)
        if field is None:
            self.add(
                "ES113",
                ref_path,
                f"table {_show(ref.table)} has no field {_show(column)} to "
                f"reference.{_close(column, fields)} "
                f"Set {key} to 'id' or to a unique field.",
            )
        elif not field.unique:
            self.add(
                "ES113",
                ref_path,
                f"field {_show(column)} of table {_show(ref.table)} is referenced by a foreign key, so "
                "it must "
                "be unique: set unique: true on it, or reference 'id'.",
            )

    def check_join_tables(self) -> None:
        for join in self.joins:
            rel = self.spec.relationships[join.relationship]
            path = self.at(f"relationships[{join.relationship}]")
            name_path = f"{path}.name" if rel.name is not None else path
            hint = "" if rel.name is not None else " Set 'name' to choose the join table's name."
            self.check_reference(join.left, path, "sourceField")
            self.check_reference(join.right, path, "targetField")
            if rel.on_delete == "SetNull":
                self.add(
                    "ES120",
                    f"{path}.onDelete",
                    "A ManyToMany join row cannot keep a NULL end: use onDelete Cascade or Restrict.",
                )
            for fk in (join.left, join.right):
                if _byte_length(fk.column) > naming.MAX_IDENTIFIER_BYTES:
                    self.add(
                        "ES102",
                        path,
                        f"join table column {_show(fk.column)} is {_byte_length(fk.column)} bytes; the "
                        "limit is "
                        f"{naming.MAX_IDENTIFIER_BYTES}: shorten the table names it is built from.",
                    )
            if rel.name is None:
                name_ok = self.check_identifier(join.name, name_path, "join table name", hint=hint)
            else:  # checked with the relationship
                name_ok = (
                    _identifier_reason(join.name) is None and _byte_length(join.name) <= naming.MAX_IDENTIFIER_BYTES
                )
            if name_ok and self.plugin_ok and not naming.physical_table_length_ok(self.spec.plugin_id, join.name):
                self.too_long_physical(join.name, name_path, "join table")
            self.claim(join.name, name_path, "join table", type_=True)


def _parses(parse: typing.Callable[[str], object], value: str) -> bool:
    """Whether *parse* accepts *value* and gives something (a timezone, for datetimes)."""
    try:
        return parse(value) is not None
    except ValueError:
        return False


def _decimal_reason(field: model.FieldSpec, value: int | float) -> str | None:
    precision = DEFAULT_PRECISION if field.precision is None else field.precision
    scale = DEFAULT_SCALE if field.scale is None else field.scale
    if not 0 <= scale <= precision <= MAX_PRECISION:
        return None  # ES110 says what to fix first
    number = decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(repr(value))
    exponent = int(number.as_tuple().exponent)
    whole = max(len(number.as_tuple().digits) + exponent, 0)
    fraction = max(-exponent, 0)
    if whole > precision - scale:
        return f"it has {whole} digits before the point; Decimal({precision},{scale}) allows {precision - scale}"
    if fraction > scale:
        return f"it has {fraction} digits after the point; scale is {scale}"
    return None
