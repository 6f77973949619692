"""From specs to plans: resolve both specs once, diff them, let the policy decide.

Planning is a diff of two resolved schemas (what the previously applied spec asked for and what
the new one asks for), not of the live database: extschema owns these objects, so its own
record is the truth, and drift is reported separately. Each operation knows its reverse, so the
rollback of a migration is planned — and recorded — together with the migration itself.
"""

from __future__ import annotations

from extschema.model import ExtensionSchemaSpec
from extschema.planning import diff, policy, rawsql
from extschema.planning.ops import Plan
from extschema.planning.resolved import ReferenceTypes, resolve
from extschema.problems import ProblemError


def plan(old: ExtensionSchemaSpec | None, new: ExtensionSchemaSpec, refs: ReferenceTypes) -> Plan:
    """The operations that take the database from *old*'s state to *new*'s.

    Raises :class:`ProblemError` (kind ``refused``) listing every change the policy refuses.
    """
    after = resolve(new, refs)
    raw = tuple(rawsql.steps(old, new))  # hand-written steps run last, after the declarative changes
    if old is None:
        return Plan(new.plugin_id, tuple(diff.create_all(after)) + raw)
    found = diff.changes(resolve(old, refs), after)
    refused = policy.refusals(found)
    if refused:
        raise ProblemError(refused, kind="refused")
    return Plan(new.plugin_id, tuple(op for change in found for op in change.ops) + raw)


def teardown(spec: ExtensionSchemaSpec, refs: ReferenceTypes) -> Plan:
    """Drop everything *spec* created: the reverse of creating it from nothing."""
    return Plan(spec.plugin_id, tuple(diff.create_all(resolve(spec, refs)))).reverse()
