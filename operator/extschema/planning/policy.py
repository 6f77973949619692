"""What may change in a registered plugin's schema, and what is refused.

Nearly every change is planned: renames, drops, type and rule changes, enum values added,
renamed and removed. How risky each one is — and whether it waits for an approval — is
:mod:`extschema.planning.safety`'s business, not this module's. Refused are only the changes
extschema cannot carry out without guessing, located where the spec changed:

- ES301: an enum's existing values reordered (the databases keep an enum's order);
- ES302: a new required field without a default (existing rows would have no value);
- ES312: a type change :mod:`extschema.planning.conversions` has no conversion for.

Policy is the one place that decides: the diff only reports what changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from extschema.planning import changes, conversions
from extschema.planning.changes import Change
from extschema.planning.resolved import ColumnDef
from extschema.problems import Problem

#: Changes that are always carried out.
PLANNED: frozenset[type[Change]] = frozenset(
    {
        changes.TableRenamed,
        changes.ColumnRenamed,
        changes.EnumValueRenamed,
        changes.EnumAdded,
        changes.EnumValuesAdded,
        changes.TableAdded,
        changes.ColumnAdded,
        changes.IndexAdded,
        changes.EnumRemoved,
        changes.EnumValuesRemoved,
        changes.TableRemoved,
        changes.ColumnRemoved,
        changes.IndexRemoved,
    }
)
#: The former name of :data:`PLANNED`, from when only additive changes were.
ADDITIVE = PLANNED

#: Changes carried out only when their conversion is supported.
CONDITIONAL: frozenset[type[Change]] = frozenset({changes.ColumnChanged})

#: Refused changes: their code and what the author should do instead.
REFUSED: dict[type[Change], tuple[str, str]] = {
    changes.EnumValuesChanged: (
        "ES301",
        "existing values must keep their order (new values may go anywhere) — restore the previous order",
    ),
    changes.RequiredColumnAdded: (
        "ES302",
        "give it a default, or add it not required, fill it, and make it required in the next version",
    ),
}

UNSUPPORTED_TYPE_ADVICE = (
    "extschema converts only the types docs/evolution.md lists — add a new field, copy the data with a "
    "spec.migrations step, then remove the old field in a later version"
)


@dataclasses.dataclass(frozen=True)
class Allowed:
    change: Change


@dataclasses.dataclass(frozen=True)
class Refused:
    change: Change
    problem: Problem


Decision = Allowed | Refused


def classify(change: Change) -> Decision:
    """Whether *change* may happen (a change kind the policy does not know is a programming error)."""
    if type(change) in PLANNED:
        return Allowed(change)
    if isinstance(change, changes.ColumnChanged):
        if conversions.type_change(change.before, change.after) is not None:
            return Allowed(change)
        what = f"{_type_name(change.before)} to {_type_name(change.after)}"
        return Refused(change, Problem("ES312", change.path, f"{change.describe()}: {what}; {UNSUPPORTED_TYPE_ADVICE}"))
    code, advice = REFUSED[type(change)]
    return Refused(change, Problem(code, change.path, f"{change.describe()}; {advice}"))


def refusals(found: Iterable[Change]) -> list[Problem]:
    """The problems of every refused change, in the order the changes were found."""
    return [d.problem for d in map(classify, found) if isinstance(d, Refused)]


def _type_name(column: ColumnDef) -> str:
    if column.type == "Enum" and column.enum is not None:
        return f"Enum {column.enum.name}"
    return column.type
