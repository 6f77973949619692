"""From specs to plans: resolve both specs once, diff them, let the policy decide.

Planning is a diff of two resolved schemas (what the previously applied spec asked for and what
the new one asks for), not of the live database: extschema owns these objects, so its own
record is the truth, and drift is reported separately. Each operation knows its reverse, so the
rollback of a migration is planned — and recorded — together with the migration itself.

Nothing is refused for being destructive here: drops and narrowing changes are planned, and
:mod:`extschema.planning.safety` tells the gates what needs an approval. Refused are a changed
schema under the same version (ES310) and what :mod:`extschema.planning.policy` refuses.
"""

from __future__ import annotations

from typing import NamedTuple

from extschema.model import ExtensionSchemaSpec
from extschema.planning import diff, policy, rawsql, versions
from extschema.planning.diff import renames
from extschema.planning.ops import Plan, RunSql
from extschema.planning.resolved import ReferenceTypes, resolve
from extschema.problems import Problem, ProblemError


def plan(old: ExtensionSchemaSpec | None, new: ExtensionSchemaSpec, refs: ReferenceTypes) -> Plan:
    """The operations that take the database from *old*'s state to *new*'s.

    Raises :class:`ProblemError` (kind ``refused``) listing every change the policy refuses, or
    ES310 when the schema changed but the version did not. A lower version is planned like any
    other change (whether it may be applied is the gates' decision).
    """
    after = resolve(new, refs)
    unversioned = same_version_problem(old, new) if old is not None else None
    if unversioned is not None:
        raise ProblemError([unversioned], kind="refused")
    raw = tuple(rawsql.steps(old, new))  # hand-written steps run last, after the declarative changes
    if old is None:
        return Plan(new.plugin_id, tuple(diff.create_all(after)) + raw)
    # A lower version goes back: what the applied (newer) spec renamed is renamed back, never dropped.
    found = diff.changes(resolve(old, refs), after, renames.between(old, new))
    refused = policy.refusals(found)
    if refused:
        raise ProblemError(refused, kind="refused")
    return Plan(new.plugin_id, tuple(op for change in found for op in change.ops) + raw)


def same_version_problem(old: ExtensionSchemaSpec, new: ExtensionSchemaSpec) -> Problem | None:
    """ES310 when *new* changes *old*'s schema under a version equal to *old*'s.

    ``deletionPolicy`` says how the plugin is deleted, not what its schema is: switching it (to Retain,
    to keep the data before removing the plugin through Git) needs no new version. It stays in the
    checksum (recorded checksums must not change), so it is set equal before comparing.
    """
    same_policy = old.model_copy(update={"deletion_policy": new.deletion_policy})
    if versions.compare(old.version, new.version) != 0 or same_policy.checksum() == new.checksum():
        return None
    return Problem(
        "ES310",
        "spec.version",
        f"the schema differs from the applied one, but version {new.version} equals the applied version "
        f"{old.version}; raise spec.version (e.g. to {_next(old.version)}) so the change is recorded as a new "
        "version, or revert the change",
    )


def teardown(spec: ExtensionSchemaSpec, refs: ReferenceTypes) -> Plan:
    """Drop everything *spec* created: the reverse of creating it from nothing."""
    return Plan(spec.plugin_id, tuple(diff.create_all(resolve(spec, refs)))).reverse()


class Rollback(NamedTuple):
    """A rollback of a plugin's latest migration, planned from its history (:func:`rollback`)."""

    #: What the rollback changes, for the gate: the undone raw steps' ``rollbackSql`` first, then the
    #: way from the current spec back to the previous one (or the teardown of the current spec).
    plan: Plan
    #: The plan the undone migration ran, planned again (it names the backups the recorded rollback
    #: reads); None when this planner refuses it (a plan made by hand, or by another version).
    forward: Plan | None


def rollback(
    current: ExtensionSchemaSpec,
    previous: ExtensionSchemaSpec | None,
    undone: ExtensionSchemaSpec,
    refs: ReferenceTypes,
) -> Rollback:
    """Plan undoing the migration from *previous* (None: the plugin had none) to *undone*, the
    plugin being at *current*: the history's specs, as the registry recorded them.

    Without raw steps, going back to *previous* is the same plan, and hash, as applying *previous* as
    a lower version. When this planner cannot go back directly, the reverse of the way there.
    """
    steps: tuple[RunSql, ...] = tuple(rawsql.undone(previous, undone))
    try:
        forward: Plan | None = plan(previous, undone, refs)
    except ProblemError:
        forward = None
    if previous is None:
        return Rollback(Plan(current.plugin_id, (*steps, *teardown(current, refs).ops)), forward)
    try:
        back = plan(current, previous, refs)
    except ProblemError:  # this planner cannot go back directly: the reverse of the way there
        return Rollback(forward.reverse() if forward is not None else Plan(current.plugin_id, steps), forward)
    return Rollback(Plan(current.plugin_id, (*steps, *back.ops)), forward)


def _next(version: str) -> str:
    """The next minor version of *version* (its pre-release and build dropped)."""
    major, minor, _patch = version.split("+", 1)[0].split("-", 1)[0].split(".")
    return f"{major}.{int(minor) + 1}.0"
