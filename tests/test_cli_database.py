"""Typos about the database fail loudly: an unknown plugin is ES306, a SQLite path that cannot be a database is
ES407 (not "check that the server runs"), a write says which file it uses when nothing names one, and a
malformed URL never shows its password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import approved_delete, run, write_schema

SHOP = "pluginId: shop\nversion: 1.0.0\ntables: [{name: item, fields: [{name: title, type: String}]}]"


@pytest.mark.parametrize("command", ["history", "backups"])
def test_reading_an_unknown_plugin_is_es306_with_the_closest_name(db_url: str, tmp_path: Path, command: str) -> None:
    assert run("apply", str(write_schema(tmp_path, "shop", SHOP)), "-d", db_url).exit_code == 0
    typo = run(command, "shpo", "-d", db_url)
    assert typo.exit_code == 1
    assert "plugin: ES306: plugin 'shpo' is not registered and has no recorded history; did you mean 'shop'?" in (
        typo.stderr
    )
    as_json = run(command, "shpo", "-d", db_url, "-o", "json")
    assert as_json.exit_code == 1 and [p["code"] for p in json.loads(as_json.stdout)["problems"]] == ["ES306"]
    assert run(command, "shop", "-d", db_url).exit_code == 0


def test_a_deleted_plugin_keeps_its_history_and_backups_readable(db_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "shop", SHOP)), "-d", db_url).exit_code == 0
    assert approved_delete(db_url, "shop").exit_code == 0
    history = run("history", "shop", "-d", db_url, "-o", "json")
    assert history.exit_code == 0 and len(history.items()) == 2
    assert run("backups", "shop", "-d", db_url).exit_code == 0


def test_an_unknown_plugin_in_an_empty_database_says_none_is_registered(sqlite_url: str) -> None:
    outcome = run("history", "nosuch", "-d", sqlite_url)
    assert outcome.exit_code == 1 and "no plugin is registered in this database" in outcome.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # a read creates no file


@pytest.mark.parametrize("command", [["status"], ["history"], ["apply", "SPEC"], ["drift"]])
def test_a_sqlite_file_in_a_missing_directory_is_es407(tmp_path: Path, command: list[str]) -> None:
    spec = str(write_schema(tmp_path, "shop", SHOP))
    url = f"sqlite:///{tmp_path / 'nodir' / 'x.db'}"
    outcome = run(*[spec if a == "SPEC" else a for a in command], "-d", url)
    assert outcome.exit_code == 2, outcome.stdout
    assert f"--database: ES407: cannot open {url}: the directory {tmp_path / 'nodir'} does not exist" in outcome.stderr
    assert "server" not in outcome.stderr
    assert not (tmp_path / "nodir").exists()


def test_a_sqlite_path_that_is_a_directory_or_no_database_is_es407(tmp_path: Path) -> None:
    directory = run("status", "-d", f"sqlite:///{tmp_path}")
    assert directory.exit_code == 2 and "is a directory, not a SQLite database file" in directory.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all, but long enough to have a header " * 4)
    outcome = run("status", "-d", f"sqlite:///{junk}")
    assert outcome.exit_code == 3
    assert "ES407" in outcome.stderr and "file is not a database" in outcome.stderr
    assert "check that the server runs" not in outcome.stderr


def test_a_write_without_a_database_says_which_file_it_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = str(write_schema(tmp_path, "shop", SHOP))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXTSCHEMA_DATABASE_URL", raising=False)
    applied = run("apply", spec)
    assert applied.exit_code == 0, applied.stderr
    assert "note: no --database and no $EXTSCHEMA_DATABASE_URL: using sqlite:///extschema.db" in applied.stderr
    assert (tmp_path / "extschema.db").exists()
    assert "note:" not in run("status").stderr  # reads say nothing
    explicit = run("apply", spec, "-d", f"sqlite:///{tmp_path / 'extschema.db'}")
    assert "note:" not in explicit.stderr
    monkeypatch.setenv("EXTSCHEMA_DATABASE_URL", f"sqlite:///{tmp_path / 'extschema.db'}")
    assert "note:" not in run("rollback", "shop").stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret@localhost:notaport/db",
        "postgresql://u:secret@localhost:99999/db",
        "postgresql://u:secret@[::1/db",
        "postgresql://u:sec@ret@localhost:x/db",
    ],
)
def test_a_malformed_url_never_shows_its_password(url: str) -> None:
    for output in ("text", "json"):
        outcome = run("status", "-d", url, "-o", output)
        assert outcome.exit_code == 2, outcome.stdout
        assert "ES404" in outcome.stdout + outcome.stderr
        assert "secret" not in outcome.stdout + outcome.stderr and "ret@" not in outcome.stdout + outcome.stderr
