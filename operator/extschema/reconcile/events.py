"""Typed migration events: what the caller's hook hears while a run migrates (the CLI prints, the
operator posts events, metrics count).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence

from extschema.engine import (
    ApplyResult,
    progress,
)
from extschema.engine.progress import LockWaiting, MigrationLocked, StepFinished, StepStarted, listening
from extschema.problems import ProblemError


@dataclasses.dataclass(frozen=True)
class MigrationStarted:
    """Spec *number* of *total* is being applied (it may turn out unchanged)."""

    plugin_id: str
    version: str
    file: str
    #: Position in the run (1-based) and the run's length, for "[2/5]"-style progress.
    number: int
    total: int
    #: False when the registry held this spec already (a re-apply with nothing to do, as planned).
    changes: bool = True


@dataclasses.dataclass(frozen=True)
class MigrationFinished:
    """A spec was applied (``result.changed``) or found already in place."""

    result: ApplyResult
    number: int  # as in MigrationStarted
    total: int


@dataclasses.dataclass(frozen=True)
class MigrationFailed:
    """A spec could not be applied; the error is raised right after this event."""

    plugin_id: str
    error: ProblemError
    number: int  # as in MigrationStarted
    total: int


#: A spec's events, and the engine's while it migrates (:mod:`extschema.engine.progress`): each step
#: started and finished (with its time; ``phase`` ``after`` for the after phase), a lock wait that lasts.
MigrationEvent = (
    MigrationStarted | MigrationFinished | MigrationFailed | StepStarted | StepFinished | LockWaiting | MigrationLocked
)
#: The one hook for progress: the CLI prints, the operator posts events, metrics count.
OnEvent = Callable[[MigrationEvent], None]


class PartiallyApplied(ProblemError):
    """A run that failed after some of its specs were applied: *applied* are their results (committed),
    the problems say which spec and step failed."""

    def __init__(self, error: ProblemError, applied: Sequence[ApplyResult]) -> None:
        super().__init__(error.problems, error.kind)
        self.applied = list(applied)


@contextlib.contextmanager
def heard_by(on_event: OnEvent) -> Iterator[None]:
    """The engine's step events go to *on_event* too, unless the caller listens already (the CLI,
    with :func:`listening`, asks for row counts on a terminal)."""
    if progress.listener() is not None:
        yield
        return
    with listening(on_event):
        yield


__all__ = [
    "LockWaiting",
    "MigrationEvent",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationLocked",
    "MigrationStarted",
    "OnEvent",
    "PartiallyApplied",
    "StepFinished",
    "StepStarted",
    "heard_by",
    "listening",
]
