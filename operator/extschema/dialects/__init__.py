"""Every difference between databases, behind one interface (alembic's ``ddl/`` is the model).

A :class:`Dialect` renders planning operations to SQL statements and answers the questions the
engine asks of a database kind (how to lock, how to set timeouts, which errors are retryable).
Dialects register themselves by URL scheme in :data:`REGISTRY`. Each is imported when first asked
for: a command on SQLite never imports the PostgreSQL dialect (SQLAlchemy's, psycopg's).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from extschema.dialects.postgresql import PostgresDialect
    from extschema.dialects.sqlite import SqliteDialect

#: Backend name -> (module, class); the module is imported on first use.
_CLASSES = {
    "postgresql": ("extschema.dialects.postgresql", "PostgresDialect"),
    "sqlite": ("extschema.dialects.sqlite", "SqliteDialect"),
}


class _Registry(Mapping[str, "type[Dialect]"]):
    """The dialect classes by backend name, each imported when looked up."""

    def __getitem__(self, backend: str) -> type[Dialect]:
        module, name = _CLASSES[backend]
        found: type[Dialect] = getattr(importlib.import_module(module), name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


REGISTRY: Mapping[str, type[Dialect]] = _Registry()


def __getattr__(name: str) -> object:
    for backend, (_, class_name) in _CLASSES.items():
        if name == class_name:
            return REGISTRY[backend]
    raise AttributeError(f"module 'extschema.dialects' has no attribute {name!r}")


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
