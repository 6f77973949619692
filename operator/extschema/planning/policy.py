"""What may change in a registered plugin's schema, and what is refused.

Today only additive changes are allowed; every other change is refused with ES301 (or ES302
for a new required field without a default), located where the spec changed. Policy is the one
place that decides: the diff only reports what changed. A gate for destructive changes (allowed
with an approval) plugs in here as a third decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from extschema.planning import changes
from extschema.planning.changes import Change
from extschema.problems import Problem

#: Changes that only add: nothing existing is lost or rewritten.
ADDITIVE: frozenset[type[Change]] = frozenset(
    {changes.EnumAdded, changes.EnumValuesAdded, changes.TableAdded, changes.ColumnAdded, changes.IndexAdded}
)

#: Refused changes: their code and what the author should do instead.
REFUSED: dict[type[Change], tuple[str, str]] = {
    changes.EnumRemoved: ("ES301", "removing enums is not supported yet — put it back"),
    changes.EnumValuesChanged: ("ES301", "only adding values is supported — keep the existing values in order"),
    changes.TableRemoved: (
        "ES301",
        "dropping tables of a registered plugin is not supported yet — put it back, or delete the whole plugin",
    ),
    changes.ColumnRemoved: ("ES301", "dropping columns is not supported yet — put it back"),
    changes.ColumnChanged: ("ES301", "changing fields is not supported yet — revert it, or add a new field"),
    changes.RequiredColumnAdded: ("ES302", "give it a default, or make it not required"),
    changes.IndexRemoved: ("ES301", "only adding is supported yet — put it back"),
}


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
    if type(change) in ADDITIVE:
        return Allowed(change)
    code, advice = REFUSED[type(change)]
    return Refused(change, Problem(code, change.path, f"{change.describe()}; {advice}"))


def refusals(found: Iterable[Change]) -> list[Problem]:
    """The problems of every refused change, in the order the changes were found."""
    return [d.problem for d in map(classify, found) if isinstance(d, Refused)]
