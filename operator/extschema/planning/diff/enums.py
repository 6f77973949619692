"""Enums: added, removed, values added, values removed or reordered."""

from __future__ import annotations

from collections.abc import Iterator

from extschema.planning.changes import Change, EnumAdded, EnumRemoved, EnumValuesAdded, EnumValuesChanged
from extschema.planning.ops import ChangeEnumValues, CreateEnum
from extschema.planning.resolved import Resolved


def diff(before: Resolved, after: Resolved) -> Iterator[Change]:
    new_names = {e.name for e in after.enums}
    for old_enum in before.enums:
        if old_enum.name not in new_names:
            yield EnumRemoved(path="spec.enums", enum=old_enum)
    for index, enum in enumerate(after.enums):
        previous = next((e for e in before.enums if e.name == enum.name), None)
        if previous is None:
            yield EnumAdded(path=f"spec.enums[{index}]", enum=enum, ops=(CreateEnum(after.plugin_id, enum),))
            continue
        if previous.values == enum.values:
            continue
        path = f"spec.enums[{index}].values"
        kept = [v for v in enum.values if v in previous.values]
        if kept != list(previous.values):
            yield EnumValuesChanged(path=path, before=previous, after=enum)
            continue
        # Tables that keep columns of the enum, as they are before and after (for table rebuilds).
        affected = tuple(
            (t, t.with_enum(enum)) for t in before.tables if t.uses_enum(enum.name) and after.table(t.name)
        )
        op = ChangeEnumValues(after.plugin_id, previous, enum, affected)
        yield EnumValuesAdded(path=path, before=previous, after=enum, ops=(op,))
