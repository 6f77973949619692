"""extschema: let plugins extend an application's relational database safely.

The package is layered (checked by import-linter): the shells (``cli``, ``controller``, ``api``:
independent siblings) call ``reconcile``, which calls ``engine``, which renders through ``dialects``;
everything below is a pure core (``model``, ``validation``, ``conflicts``, ``planning``, ``naming``,
``conditions``, ``wire``, ``problems``) with no I/O. ``loading`` reads files and YAML without touching
a database. ``wire`` holds every shape a user or a program reads (``-o json``, ``status.pendingPlan``).

``__all__`` is the stable surface for library users (``tests/test_public_api.py`` guards it).
Importing the package stays light: names backed by the engine (SQLAlchemy) or the model
(pydantic) are imported on first use, so ``extschema --version`` and ``validate`` start fast.
"""

import importlib as _importlib
import typing as _typing

from extschema.problems import Kind, Problem, ProblemError

if _typing.TYPE_CHECKING:
    from extschema.engine import ApplyResult, Engine
    from extschema.loading import Loaded, from_object, load, parse_text
    from extschema.model import ExtensionSchema, ExtensionSchemaSpec
    from extschema.reconcile import MigrationEvent, MigrationFailed, MigrationFinished, MigrationStarted

__version__ = "0.2.0"

#: Public name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "ApplyResult": "extschema.engine",
    "Engine": "extschema.engine",
    "ExtensionSchema": "extschema.model",
    "ExtensionSchemaSpec": "extschema.model",
    "Loaded": "extschema.loading",
    "MigrationEvent": "extschema.reconcile",
    "MigrationFailed": "extschema.reconcile",
    "MigrationFinished": "extschema.reconcile",
    "MigrationStarted": "extschema.reconcile",
    "from_object": "extschema.loading",
    "load": "extschema.loading",
    "parse_text": "extschema.loading",
}

__all__ = [
    "ApplyResult",
    "Engine",
    "ExtensionSchema",
    "ExtensionSchemaSpec",
    "Kind",
    "Loaded",
    "MigrationEvent",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationStarted",
    "Problem",
    "ProblemError",
    "__version__",
    "from_object",
    "load",
    "parse_text",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'extschema' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
