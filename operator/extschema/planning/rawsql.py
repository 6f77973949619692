"""Which raw SQL steps (``spec.migrations``) a plan runs, and whether the target lets them run.

A step runs once: in the first migration whose spec lists it, after that migration's declarative
operations, in spec order. The registered spec says what ran, so a step is new when the
registered spec does not list its id. An applied step is history — its text may not change
(ES316: what ran would no longer be what the spec says; add a new step instead). Removing an
applied step from the spec is allowed and runs nothing: its effect on the data stays, and the
rollback of the migration that ran it still runs its ``rollbackSql``.

Raw SQL runs only on targets that allow it (``allowRawSql`` on the DatabaseTarget,
``--allow-raw-sql`` for the CLI); :func:`require_allowed` refuses the others with ES313 before
anything runs. What a step's SQL may contain is checked by :mod:`extschema.validation.rawsql`.
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
