"""Counting the SQL statements a unit of work sends (the API's ``statements per request`` metric, and the
tests that prove a list with ``include`` runs one query per relationship, not one per row).

One listener on every SQLAlchemy engine of the process counts into the counter of the current context only,
so nothing is counted (and nothing costs more than a context-variable lookup) outside :func:`counting`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy
from sqlalchemy import event


@dataclasses.dataclass
class Counter:
    """Statements executed so far in the context that opened it (worker threads share it)."""

    statements: int = 0


_current: contextvars.ContextVar[Counter | None] = contextvars.ContextVar("extschema_statements", default=None)
_installed = threading.Lock()
_listening = False


def _count(*_args: Any, **_kwargs: Any) -> None:
    counter = _current.get()
    if counter is not None:
        counter.statements += 1  # a plain int add: a request's statements run one after the other


def _install() -> None:
    global _listening
    with _installed:
        if not _listening:
            event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", _count)
            _listening = True


@contextlib.contextmanager
def counting() -> Iterator[Counter]:
    """Count the statements executed in this context (and the threads it hands work to) until the end."""
    _install()
    counter = Counter()
    token = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(token)
