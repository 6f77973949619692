"""The CLI starts fast: ``--version`` and ``validate`` import neither SQLAlchemy, psycopg nor kopf;
``--version`` and ``--help`` not even pydantic; the commands that only read a SQLite registry (``status``,
``history``, ``backups``) import no PostgreSQL driver, no YAML, no planning pipeline and, for text, no
wire views. Checked by what a child process has in ``sys.modules``, never by timing (bench/startup.py
measures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import release
from tests.helpers import EXAMPLES, subprocess_env

HEAVY = ("sqlalchemy", "psycopg", "kopf")

#: What a command that only reads a SQLite registry does not need: a PostgreSQL driver or dialect, the
#: operator's or the API's frameworks, YAML, the planning pipeline (approval, review) and, for text, the
#: wire views (pydantic models built at import).
NOT_FOR_READS = (
    "psycopg",
    "kopf",
    "fastapi",
    "uvicorn",
    "yaml",
    "sqlalchemy.dialects.postgresql",
    "extschema.dialects.postgresql",
    "extschema.loading",
    "extschema.reconcile.pipeline",
    "extschema.reconcile.approval",
    "extschema.wire",
    "extschema.prisma",
)

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


def _loaded_by(*args: str, heavy: tuple[str, ...] = HEAVY) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy), *args],
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


@pytest.mark.parametrize(
    "args", [("--version",), ("--help",), ("status", "--help")], ids=["version", "help", "status-help"]
)
def test_version_and_help_import_no_pydantic(args: tuple[str, ...]) -> None:
    code, loaded = _loaded_by(*args, heavy=(*HEAVY, "pydantic", "yaml", "extschema.wire", "extschema.model"))
    assert code == 0
    assert loaded == "[]"


@pytest.fixture(scope="module")
def applied_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database with the examples applied (a registry with plugins, migrations to list)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('startup') / 'reads.db'}"
    env = subprocess_env()
    subprocess.run([sys.executable, str(EXAMPLES / "core" / "load.py"), url], check=True, env=env, timeout=120)
    cli = [sys.executable, "-m", "extschema"]
    subprocess.run([*cli, "apply", str(EXAMPLES), "-d", url], check=True, env=env, capture_output=True, timeout=300)
    return url


@pytest.mark.parametrize(
    "command",
    [("status",), ("status", "kb"), ("history",), ("history", "kb"), ("backups", "list"), ("backups",)],
    ids=["status", "status-plugin", "history", "history-plugin", "backups-list", "backups"],
)
def test_reads_on_sqlite_import_only_what_they_use(applied_sqlite: str, command: tuple[str, ...]) -> None:
    code, loaded = _loaded_by(*command, "-d", applied_sqlite, heavy=NOT_FOR_READS)
    assert code == 0
    assert loaded == "[]"


def test_drift_on_sqlite_imports_no_postgresql_and_no_views(applied_sqlite: str) -> None:
    """drift plans (it compares with the resolved specs), but needs neither PostgreSQL nor, for text, the views."""
    heavy = ("psycopg", "kopf", "fastapi", "sqlalchemy.dialects.postgresql", "extschema.wire", "extschema.prisma")
    code, loaded = _loaded_by("drift", "-d", applied_sqlite, heavy=heavy)
    assert code == 0
    assert loaded == "[]"


def test_status_as_json_builds_the_views(applied_sqlite: str) -> None:
    """The probe sees the views when they are used (so the test above can fail): JSON needs them."""
    code, loaded = _loaded_by("status", "-o", "json", "-d", applied_sqlite, heavy=NOT_FOR_READS)
    assert code == 0
    assert "extschema.wire" in loaded
    assert "psycopg" not in loaded


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
