"""Every difference between databases, behind one interface (alembic's ``ddl/`` is the model).

A :class:`Dialect` renders planning operations to SQL statements and answers the questions the
engine asks of a database kind (how to lock, how to set timeouts, which errors are retryable).
Dialects register themselves by URL scheme in :data:`REGISTRY`.
"""

from __future__ import annotations

from extschema.dialects.base import (
    BackupRef,
    BatchFailed,
    Blocker,
    Dialect,
    ErrorClass,
    Predated,
    RenderedPlan,
    StepSpan,
    Violation,
)
from extschema.dialects.postgresql import PostgresDialect
from extschema.dialects.sqlite import SqliteDialect

REGISTRY: dict[str, type[Dialect]] = {"postgresql": PostgresDialect, "sqlite": SqliteDialect}


def for_backend(backend: str) -> Dialect:
    """The dialect for a SQLAlchemy backend name (``postgresql``, ``sqlite``)."""
    return REGISTRY[backend]()


__all__ = [
    "REGISTRY",
    "BackupRef",
    "BatchFailed",
    "Blocker",
    "Dialect",
    "ErrorClass",
    "PostgresDialect",
    "Predated",
    "RenderedPlan",
    "SqliteDialect",
    "StepSpan",
    "Violation",
    "for_backend",
]
