"""Which raw SQL steps (``spec.migrations``) a plan runs, and whether the target lets them run.

A step runs once: in the first migration whose spec lists it, after that migration's declarative
operations, in spec order. The registered spec says what ran, so a step is new when the
registered spec does not list its id. An applied step is history — its text may not change
(ES316: what ran would no longer be what the spec says; add a new step instead). Removing an
applied step from the spec is allowed and runs nothing: its effect on the data stays, and the
rollback of the migration that ran it still runs its ``rollbackSql``.

Raw SQL runs only on targets that allow it (``allowRawSql`` on the DatabaseTarget,
``--allow-raw-sql`` for the CLI); :func:`require_allowed` refuses the others with ES313 before
anything runs. The same holds for the ``rollbackSql`` a rollback runs (:func:`undone`,
:func:`require_rollback_allowed`). What a step's SQL may contain is checked by
:mod:`extschema.validation.rawsql`.
"""

from __future__ import annotations

from extschema.model import ExtensionSchemaSpec
from extschema.planning.ops import Plan, RunSql
from extschema.problems import Kind, Problem, ProblemError


def steps(old: ExtensionSchemaSpec | None, new: ExtensionSchemaSpec) -> list[RunSql]:
    """The steps of *new* not yet applied (not in *old*), in spec order.

    Raises :class:`ProblemError` (ES316, kind ``refused``) naming each applied step whose SQL changed.
    """
    applied = {step.id: step for step in old.migrations} if old is not None else {}
    changed: list[Problem] = []
    for index, step in enumerate(new.migrations):
        before = applied.get(step.id)
        if before is None:
            continue
        pairs = (("sql", before.sql, step.sql), ("rollbackSql", before.rollback_sql, step.rollback_sql))
        edited = [key for key, was, now in pairs if was != now]
        if edited:
            changed.append(
                Problem(
                    "ES316",
                    f"spec.migrations[{index}].{edited[0]}",
                    f"step {step.id!r} was applied in version {old.version if old else '?'}; its "
                    f"{' and '.join(edited)} may not change. Restore the applied text and add a new step "
                    "with its own id for the new change.",
                )
            )
    if changed:
        raise ProblemError(changed, kind=Kind.REFUSED)
    return [RunSql(new.plugin_id, s.id, s.sql, s.rollback_sql) for s in new.migrations if s.id not in applied]


def require_allowed(spec: ExtensionSchemaSpec, plan: Plan, allowed: bool) -> None:
    """ES313 (kind ``refused``) for each raw step *plan* would run, unless the target *allowed* raw SQL."""
    if allowed:
        return
    running = {op.id for op in plan.ops if isinstance(op, RunSql)}
    problems = [
        Problem(
            "ES313",
            f"spec.migrations[{index}]",
            f"step {step.id!r} is raw SQL, which this target does not allow; allow it with allowRawSql: true on "
            "the DatabaseTarget (or --allow-raw-sql for the CLI), or remove the step",
        )
        for index, step in enumerate(spec.migrations)
        if step.id in running
    ]
    if problems:
        raise ProblemError(problems, kind=Kind.REFUSED)


def undone(previous: ExtensionSchemaSpec | None, target: ExtensionSchemaSpec) -> list[RunSql]:
    """The ``rollbackSql`` the rollback of the migration from *previous* to *target* runs: one
    reversed step (its ``sql`` is the ``rollbackSql``) per step that migration ran, last first, as
    the recorded rollback runs them. Steps with an empty ``rollbackSql`` run nothing and are left out.
    """
    applied = {step.id for step in previous.migrations} if previous is not None else set()
    ran = [step for step in target.migrations if step.id not in applied]
    return [RunSql(target.plugin_id, s.id, s.rollback_sql, s.sql) for s in reversed(ran) if s.rollback_sql.strip()]


def runs_sql(op: object) -> bool:
    """Whether *op* runs hand-written SQL (a step, or a step's non-empty ``rollbackSql``)."""
    return isinstance(op, RunSql) and bool(op.sql.strip())


def require_rollback_allowed(spec: ExtensionSchemaSpec, plan: Plan, allowed: bool) -> None:
    """ES313 (kind ``refused``) for each step's ``rollbackSql`` the rollback *plan* runs, from the
    registered *spec*, unless the target *allowed* raw SQL: a rollback runs it like a forward step."""
    if allowed:
        return
    indexes = {step.id: index for index, step in enumerate(spec.migrations)}
    problems = [
        Problem(
            "ES313",
            f"spec.migrations[{indexes[op.id]}].rollbackSql" if op.id in indexes else "plugin",
            f"rolling back plugin {spec.plugin_id!r} runs the rollbackSql of step {op.id!r}, raw SQL, which this "
            "target does not allow; allow it with --allow-raw-sql (allowRawSql: true on the DatabaseTarget), or "
            "apply the earlier spec as a lower version instead, which runs no rollbackSql",
        )
        for op in plan.ops
        if isinstance(op, RunSql) and runs_sql(op)
    ]
    if problems:
        raise ProblemError(problems, kind=Kind.REFUSED)
