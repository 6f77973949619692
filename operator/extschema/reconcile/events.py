"""Typed migration events: what the caller's hook hears while a run migrates (the CLI prints, the
operator posts events, metrics count).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from extschema.engine import (
    ApplyResult,
)
from extschema.problems import ProblemError


@dataclasses.dataclass(frozen=True)
class MigrationStarted:
    """Spec *number* of *total* is being planned and applied (it may turn out unchanged)."""

    plugin_id: str
    version: str
    file: str
    #: Position in the run (1-based) and the run's length, for "[2/5]"-style progress.
    number: int
    total: int


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


MigrationEvent = MigrationStarted | MigrationFinished | MigrationFailed
#: The one hook for progress: the CLI prints, the operator posts events, metrics count.
OnEvent = Callable[[MigrationEvent], None]
