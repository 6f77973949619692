"""Renames a spec declares: ``renamedFrom`` on tables and fields (ES127), ``renamedValues`` on
enums (ES128).

A rename says where data comes from, so it must be unambiguous: the previous name is not the
item's own, not a name the spec still uses for something else (then the planner could not tell
a rename from a kept item), and not claimed by two items. Which renames still apply to a given
database is the planner's business: one already applied is history and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from extschema import model
from extschema.validation import context, messages


def check_renames(ctx: context.Context) -> None:
    tables = ctx.spec.tables
    _check_names(
        ctx,
        ((t.name, t.renamed_from, ctx.at(f"tables[{i}].renamedFrom")) for i, t in enumerate(tables)),
        "table",
        "the plugin",
    )
    for t_index, table in enumerate(tables):
        _check_names(
            ctx,
            (
                (f.name, f.renamed_from, ctx.at(f"tables[{t_index}].fields[{f_index}].renamedFrom"))
                for f_index, f in enumerate(table.fields)
            ),
            "field",
            f"table {messages.show(table.name)}",
        )
    for index, enum in enumerate(ctx.spec.enums):
        check_renamed_values(ctx, enum, ctx.at(f"enums[{index}].renamedValues"))


def _check_names(ctx: context.Context, items: Iterable[tuple[str, str | None, str]], what: str, where: str) -> None:
    """ES127 for each ``(name, renamed_from, path)`` whose previous name is its own, still in use, or
    claimed before."""
    listed = list(items)
    names = {name for name, _, _ in listed}
    claimed: dict[str, str] = {}
    for name, previous, path in listed:
        if previous is None:
            continue
        shown = messages.show(previous)
        if previous == name:
            ctx.add("ES127", path, f"{what} {messages.show(name)} is renamed from its own name: remove renamedFrom.")
        elif previous in names:
            ctx.add(
                "ES127",
                path,
                f"{what} {messages.show(name)} is renamed from {shown}, but {where} still has a {what} {shown}: "
                f"a renamed {what} cannot stay — correct renamedFrom, or remove it and keep both.",
            )
        elif previous in claimed:
            ctx.add(
                "ES127",
                path,
                f"{what} {messages.show(name)} is renamed from {shown}, as {what} {messages.show(claimed[previous])} "
                f"already is: only one {what} can take over {shown}'s data — remove one renamedFrom.",
            )
        else:
            claimed[previous] = name


def check_renamed_values(ctx: context.Context, enum: model.EnumSpec, path: str) -> None:
    """ES128 for renamed values that do not lead from a value gone to a value listed, one to one."""
    targets: dict[str, str] = {}
    for old, new in enum.renamed_values.items():
        at = f"{path}.{old}"
        if old == new:
            ctx.add("ES128", at, f"value {messages.show(old)} is renamed to itself: remove the entry.")
            continue
        if old in enum.values:
            ctx.add(
                "ES128",
                at,
                f"value {messages.show(old)} is renamed to {messages.show(new)} but is still listed in values: "
                "remove it from values (it becomes the new value), or remove the entry.",
            )
        if new not in enum.values:
            ctx.add(
                "ES128",
                at,
                f"value {messages.show(old)} is renamed to {messages.show(new)}, which is not in values: "
                f"add {messages.show(new)} to values.",
            )
        if new in targets:
            ctx.add(
                "ES128",
                at,
                f"values {messages.show(targets[new])} and {messages.show(old)} are both renamed to "
                f"{messages.show(new)}: rows of one value cannot become another's — rename one of them only.",
            )
        else:
            targets[new] = old
