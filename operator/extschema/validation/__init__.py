"""Every rule a spec must follow, checked without I/O, every problem reported at once.

Two entry points. :func:`structural_problems` turns pydantic's errors (wrong types, unknown or
missing fields, closed sets) into located problems a person can act on. :func:`validate` checks
a structurally valid spec against the rules that need the whole document: identifiers, reserved
and duplicate names, type/option/default compatibility, portable regular expressions, enums,
indexes, relationships and database limits. Both return problems in a deterministic order and
never stop at the first one.

One module per concern: :mod:`.context` (what a pass knows), :mod:`.structural` (pydantic
errors), :mod:`.messages` (how values appear in messages), :mod:`.identifiers`, and one module
per object kind (:mod:`.plugin`, :mod:`.enums`, :mod:`.tables`, :mod:`.fields`, :mod:`.defaults`,
:mod:`.relationships`, :mod:`.renames`). Limits live in :mod:`extschema.limits`, regular expressions in
:mod:`extschema.portable_regex`.

A Json field may have any JSON scalar as its default (string, number, boolean); the value is the
JSON document itself, so ``default: "x"`` is the JSON string ``"x"``.
"""

from __future__ import annotations

from extschema import model
from extschema.problems import Problem
from extschema.validation import context, enums, messages, plugin, relationships, renames, structural, tables
from extschema.validation.plugin import check_metadata as validate_metadata
from extschema.validation.structural import structural_problems
from extschema.validation.targets import check_target

__all__ = [
    "check_target",
    "messages",
    "structural",
    "structural_problems",
    "validate",
    "validate_metadata",
]


def validate(spec: model.ExtensionSchemaSpec, path: str = "spec") -> list[Problem]:
    """All semantic problems of *spec*, in document order of the checks."""
    ctx = context.Context(spec, path)
    plugin.check_plugin(ctx)
    ctx.check_text(spec.description, ctx.at("description"))
    ctx.claim_tables_and_enums()
    for index, enum in enumerate(spec.enums):
        enums.check_enum(ctx, enum, ctx.at(f"enums[{index}]"))
    for index, table in enumerate(spec.tables):
        tables.check_table(ctx, table, ctx.at(f"tables[{index}]"))
    for index, rel in enumerate(spec.relationships):
        relationships.check_relationship(ctx, rel, ctx.at(f"relationships[{index}]"))
    relationships.check_foreign_keys(ctx)
    relationships.check_reference_cycles(ctx)
    relationships.check_join_tables(ctx)
    if spec.migrations:
        # Imported here: its SQL parser (pglast, ~10 MB resident) is only needed for raw SQL steps,
        # and the operator validates every resource (the 1,000-resource memory goal).
        from extschema.validation import rawsql

        rawsql.check_migrations(ctx)
    renames.check_renames(ctx)
    return ctx.problems
