"""The package's public surface: ``extschema.__all__`` is deliberate (as httpx's test_exported_members.py checks)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

import extschema
from tests.helpers import subprocess_env

EXPECTED = [
    "ApplyResult", "Engine", "ExtensionSchema", "ExtensionSchemaSpec", "Kind", "Loaded",
    "MigrationEvent", "MigrationFailed", "MigrationFinished", "MigrationStarted",
    "Problem", "ProblemError", "__version__", "from_object", "load", "parse_text",
]  # fmt: skip


def test_all_is_the_expected_set() -> None:
    assert extschema.__all__ == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_every_exported_name_exists(name: str) -> None:
    value = getattr(extschema, name)
    assert value is not None
    assert name in dir(extschema)
    if name != "__version__" and not inspect.isclass(value) and not inspect.isfunction(value):
        assert name == "MigrationEvent"  # the union of the event classes
    if inspect.isclass(value) or inspect.isfunction(value):
        assert value.__module__.startswith("extschema.")


def test_exported_names_are_the_defining_objects() -> None:
    from extschema import engine, loading, problems, reconcile

    assert extschema.load is loading.load and extschema.Loaded is loading.Loaded
    assert extschema.Engine is engine.Engine and extschema.ProblemError is problems.ProblemError
    assert extschema.MigrationStarted is reconcile.MigrationStarted


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = extschema.nothing_here


def test_nothing_public_escapes_all_and_import_stays_light() -> None:
    """A fresh ``import extschema``: every public non-module attribute is in ``__all__``; no engine, no pydantic."""
    code = (
        "import sys, types, extschema\n"
        "public = sorted(n for n, v in vars(extschema).items() "
        "if not n.startswith('_') and not isinstance(v, types.ModuleType))\n"
        "print(public)\n"
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'kopf', 'pydantic', 'yaml') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True
    )
    public, heavy = done.stdout.splitlines()
    assert set(eval(public)) <= set(EXPECTED)
    assert heavy == "[]"
    assert isinstance(extschema, types.ModuleType)
