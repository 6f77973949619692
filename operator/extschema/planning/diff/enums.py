"""Enums: added, removed; values added (early, before tables use them), removed (last, after the
columns stopped using them), reordered (refused: the databases keep an enum's order)."""

from __future__ import annotations

from extschema.model import EnumSpec
from extschema.planning.changes import EnumAdded, EnumRemoved, EnumValuesAdded, EnumValuesChanged, EnumValuesRemoved
from extschema.planning.diff.run import Run
from extschema.planning.ops import ChangeEnumValues, CreateEnum, DropEnum
from extschema.planning.resolved import TableDef


def additions(run: Run) -> None:
    """New enums, new values of kept ones, and reorderings (refused)."""
    for index, enum in enumerate(run.after.enums):
        previous = run.state.enum(enum.name)
        if previous is None:
            run.add(EnumAdded(path=f"spec.enums[{index}]", enum=enum, ops=(CreateEnum(run.plugin_id, enum),)))
            continue
        path = f"spec.enums[{index}].values"
        if _reordered(previous, enum):
            run.add(EnumValuesChanged(path=path, before=previous, after=enum))
            continue
        if not [v for v in enum.values if v not in previous.values]:
            continue
        merged = _merged(previous.values, enum.values)
        grown = enum if merged == enum.values else enum.model_copy(update={"values": merged})
        op = ChangeEnumValues(run.plugin_id, previous, grown, _tables(run, previous, grown))
        run.add(EnumValuesAdded(path=path, before=previous, after=grown, ops=(op,)))


def removals(run: Run) -> None:
    """Removed values of kept enums, then removed enums."""
    for index, enum in enumerate(run.after.enums):
        previous = run.state.enum(enum.name)
        if previous is None or _reordered(previous, enum):
            continue
        if [v for v in previous.values if v not in enum.values]:
            op = ChangeEnumValues(run.plugin_id, previous, enum, _tables(run, previous, enum))
            run.add(EnumValuesRemoved(path=f"spec.enums[{index}].values", before=previous, after=enum, ops=(op,)))
    names = {e.name for e in run.after.enums}
    for enum in run.state.enums:
        if enum.name not in names:
            run.add(EnumRemoved(path="spec.enums", enum=enum, ops=(DropEnum(run.plugin_id, enum),)))


def _reordered(before: EnumSpec, after: EnumSpec) -> bool:
    """Whether the values both keep are in another order."""
    return [v for v in after.values if v in before.values] != [v for v in before.values if v in after.values]


def _merged(before: list[str], after: list[str]) -> list[str]:
    """*before* with the values new in *after* inserted where *after* has them (after the value
    preceding them there), so that removing what *after* lacks gives *after*."""
    merged = list(before)
    for position, value in enumerate(after):
        if value not in merged:
            merged.insert(merged.index(after[position - 1]) + 1 if position else 0, value)
    return merged


def _tables(run: Run, before: EnumSpec, after: EnumSpec) -> tuple[tuple[TableDef, TableDef], ...]:
    """Tables with columns of the enum, as they are before and after (for dialects that rebuild them)."""
    return tuple((t, t.with_enum(after)) for t in run.state.tables if t.uses_enum(before.name))
