"""Pydantic's errors (wrong types, unknown or missing fields, closed sets) as located problems."""

from __future__ import annotations

import datetime
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from extschema import model
from extschema.problems import Problem
from extschema.validation import messages

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
        model.DatabaseTargetRef,
        model.DatabaseTarget,
        model.DatabaseTargetSpec,
        model.SecretKeyRef,
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
        grouped.setdefault(messages.render_path(prefix, located.parts), []).append((err, located))
    return [_structural_problem(path, errs) for path, errs in grouped.items()]


def prunable(error: pydantic.ValidationError) -> list[list[str | int]] | None:
    """The document paths whose removal leaves a document the rules can still check, or None.

    A value may go when it is an unknown key, or the value of a field that has a default and holds
    no list or mapping of objects (leaving out ``tables`` would make every relationship a new error).
    """
    root = _MODELS.get(error.title)
    paths: list[list[str | int]] = []
    for err in error.errors():
        extra = err["type"] == "extra_forbidden"
        located = _locate(root, err["loc"], extra=extra)
        if not located.parts or not isinstance(located.parts[-1], str):
            return None
        parent = located.parent
        if not extra:
            if not (isinstance(parent, type) and issubclass(parent, pydantic.BaseModel)):
                return None
            info = _field_info(parent, located.parts[-1])
            if info is None or info.is_required() or _holds_models(info.annotation):
                return None
        if located.parts not in paths:
            paths.append(located.parts)
    return paths


def _field_info(cls: type[pydantic.BaseModel], key: str) -> Any:
    return next((info for name, info in cls.model_fields.items() if key in (name, info.alias)), None)


def _holds_models(annotation: Any) -> bool:
    """Whether *annotation* is, or contains, a list or mapping of models."""
    for member in _members(annotation):
        nested = typing.get_args(member) if typing.get_origin(member) in (list, dict) else ()
        if any(_holds_models(arg) or _is_model(arg) for arg in nested):
            return True
    return False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


class _Located(typing.NamedTuple):
    parts: list[str | int]  # the location in document terms (aliases, indexes, keys)
    parent: Any  # annotation holding the last part (a model class for fields)
    annotation: Any  # annotation of the last part, when known


def _members(annotation: Any) -> tuple[Any, ...]:
    """The non-None members of a union, or the annotation itctx."""
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


def _structural_problem(path: str, errs: list[tuple[Mapping[str, Any], _Located]]) -> Problem:
    err, located = errs[0]
    kind = err["type"]
    if kind == "missing":
        name = str(located.parts[-1]) if located.parts else ""
        example = _EXAMPLES.get(name)
        hint = f" (e.g. {example})" if example else ""
        return Problem("ES012", path, f"Missing required field {messages.show(name)}: add it{hint}.")
    if kind == "extra_forbidden":
        return Problem("ES011", path, _unknown_field_message(located))
    if kind == "literal_error":
        return Problem("ES013", path, _choice_message(err, located))
    expected = [_EXPECTED[e["type"]] for e, _ in errs if e["type"] in _EXPECTED]
    if not expected:
        return Problem("ES010", path, f"{err['msg']}.")
    value = err.get("input")
    message = f"Expected {messages.join_words(expected)}, got {messages.describe(value)}."
    return Problem("ES010", path, message + _type_hint(path, value, {e["type"] for e, _ in errs}))


def _unknown_field_message(located: _Located) -> str:
    key = str(located.parts[-1]) if located.parts else ""
    message = f"Unknown field {messages.show(key)}"
    parent = located.parent
    if isinstance(parent, type) and issubclass(parent, pydantic.BaseModel):
        known = [info.alias or name for name, info in parent.model_fields.items()]
        by_lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        message += f": did you mean {messages.show(by_lower[close[0]])}?" if close else "."
        message += f" Allowed fields here: {', '.join(known)}."
        return message
    return message + ": remove it."


def _choice_message(err: Mapping[str, Any], located: _Located) -> str:
    choices = [str(c) for c in typing.get_args(located.annotation)]
    if typing.get_origin(located.annotation) is not typing.Literal:
        choices = [err.get("ctx", {}).get("expected", "")]
    value = err.get("input")
    message = f"{messages.show(value) if isinstance(value, str) else messages.describe(value)} is not allowed here"
    message += f"; choose one of: {', '.join(choices)}."
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6) or [
            c for c in choices if c.lower() == value.lower()
        ]
        if close:
            message += f" Did you mean {messages.show(close[0])}?"
    return message


def _type_hint(path: str, value: Any, kinds: set[str]) -> str:
    """How to write the value so it parses, for the usual YAML surprises."""
    if "string_type" in kinds:
        if isinstance(value, datetime.date):  # YAML turns 2024-01-01 into a date
            return f' Quote it: "{value.isoformat()}".'
        if isinstance(value, bool):
            return f' Quote it: "{str(value).lower()}".'
        plain = messages.plain_number(value) if isinstance(value, int | float) else None
        if plain is not None and path.endswith("version"):
            parts = [*plain.split("."), "0", "0"][:3]
            return f' Quote it: "{".".join(parts)}".'
        if plain is not None:
            return f" Quote it: {messages.show(plain)}."
    if isinstance(value, str) and kinds & {"int_type", "float_type", "bool_type"}:
        if value.strip().lower() in ("yes", "no", "on", "off", "true", "false"):
            return " Write true or false, without quotes."
        spelling = messages.yaml_number_spelling(value)
        if spelling is not None:
            return f" YAML reads it as text (a number needs a point and a signed exponent): write {spelling}."
        return " Write the number without quotes."
    if isinstance(value, list) and kinds & {"dict_type", "model_type"}:
        return " Write a mapping (key: value), not a list."
    if isinstance(value, dict) and "list_type" in kinds:
        return " Write a list (one '- item' per entry), not a mapping."
    return ""
