"""The CLI starts fast: ``--version`` and ``validate`` import neither SQLAlchemy, psycopg nor kopf."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import release
from tests.helpers import EXAMPLES, subprocess_env

HEAVY = ("sqlalchemy", "psycopg", "kopf")

#: Runs the CLI in-process in a child, then reports which heavy modules got imported.
PROBE = """
import sys
from extschema import cli
try:
    cli.main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("EXIT", code, file=sys.stderr)
print("LOADED", sorted(name for name in {heavy!r} if name in sys.modules), file=sys.stderr)
"""


def _loaded_by(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    lines = done.stderr.splitlines()
    exit_line = next(line for line in lines if line.startswith("EXIT "))
    loaded_line = next(line for line in lines if line.startswith("LOADED "))
    return int(exit_line.split()[1]), loaded_line.removeprefix("LOADED ")


@pytest.mark.parametrize(
    "args",
    [("--version",), ("--help",), ("validate", str(EXAMPLES)), ("validate", str(EXAMPLES), "-o", "json")],
    ids=["version", "help", "validate", "validate-json"],
)
def test_fast_commands_do_not_import_the_engine_or_kopf(args: tuple[str, ...]) -> None:
    code, loaded = _loaded_by(*args)
    assert code == 0
    assert loaded == "[]"


def test_a_failing_validate_stays_light_too() -> None:
    code, loaded = _loaded_by("validate", str(EXAMPLES / "rejected" / "nothing-here.yaml"))
    assert code == 1
    assert loaded == "[]"


def test_database_commands_still_import_the_engine(tmp_path: object) -> None:
    """The probe can see an import: ``status`` needs SQLAlchemy (so the test above can fail)."""
    code, loaded = _loaded_by("status", "-d", "sqlite://" + f"/{tmp_path}/probe.db")
    assert code == 0
    assert "sqlalchemy" in loaded


def test_python_dash_m_version_is_light() -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['extschema', '--version']\n"
        "try:\n"
        "    runpy.run_module('extschema', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60
    )
    assert done.stdout.splitlines() == [f"extschema, version {release.version()}", "[]"], done.stderr
