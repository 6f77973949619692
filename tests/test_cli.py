"""Every CLI command, on SQLite and on real PostgreSQL (the ``db_url`` fixture runs each test twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (
    EXAMPLES,
    approved_delete,
    approved_rollback,
    execute,
    ext_table,
    load_core,
    run,
    subprocess_env,
    tables,
    write_schema,
)


@pytest.fixture
def core_db(db_url: str) -> str:
    load_core(db_url)
    return db_url


def test_validate_accepts_examples_and_reports_json() -> None:
    outcome = run("validate", str(EXAMPLES))
    assert outcome.exit_code == 0, outcome.stderr
    assert "customreports 1.0.0: valid" in outcome.stdout
    data = run("validate", str(EXAMPLES), "--output", "json").json()
    assert data["ok"] is True
    assert {s["pluginId"] for s in data["items"]} == {"customreports", "comments", "inspections", "kb"}


def test_validate_reports_every_problem_with_file_and_path(tmp_path: Path) -> None:
    bad = write_schema(
        tmp_path,
        "bad",
        """
        pluginId: Bad-Id
        version: one
        tables:
          - name: report
            fields:
              - {name: title, type: Strnig}
              - {name: count, type: Int, validation: {maxLength: 3}}
    """,
    )
    outcome = run("validate", str(bad))
    assert outcome.exit_code == 1
    lines = outcome.stderr.strip().splitlines()
    assert any(line.startswith(f"{bad}:11:25: spec.tables[0].fields[0].type: ES013:") for line in lines), lines
    data = run("validate", str(bad), "-o", "json").json()
    assert data["ok"] is False
    assert all(p["file"] == str(bad) for p in data["problems"])


def test_validate_semantic_problems_all_at_once(tmp_path: Path) -> None:
    bad = write_schema(
        tmp_path,
        "bad",
        """
        pluginId: Bad-Id
        version: one
        tables:
          - name: report
            fields:
              - {name: count, type: Int, validation: {maxLength: 3}}
    """,
    )
    codes = {p["code"] for p in run("validate", str(bad), "-o", "json").json()["problems"]}
    assert {"ES116", "ES115", "ES106"} <= codes


def test_plan_prints_sql_and_runs_nothing(core_db: str) -> None:
    before = tables(core_db)
    outcome = run("plan", str(EXAMPLES / "custom-reports.yaml"), "--database", core_db)
    assert outcome.exit_code == 0, outcome.stderr
    assert "CREATE TABLE" in outcome.stdout and "report" in outcome.stdout
    assert tables(core_db) - before <= {
        "extension_schemas",
        "extension_migrations",
        "extschema.extension_schemas",
        "extschema.extension_migrations",
    }
    planned = run("plan", str(EXAMPLES / "custom-reports.yaml"), "-d", core_db, "-o", "json").item()
    assert planned["sql"] and planned["rollbackSql"]


def test_apply_status_history_and_reapply_is_noop(core_db: str) -> None:
    outcome = run("apply", str(EXAMPLES), "--database", core_db)
    assert outcome.exit_code == 0, outcome.stderr
    assert "customreports: migration 0001 executed" in outcome.stdout
    history = run("history", "--database", core_db, "-o", "json").items()
    assert len(history) == 4 and all(m["status"] == "executed" and m["checksumOk"] for m in history)

    again = run("apply", str(EXAMPLES), "--database", core_db)
    assert again.exit_code == 0
    assert again.stdout.count("unchanged") == 4
    assert len(run("history", "-d", core_db, "-o", "json").items()) == 4

    status = run("status", "--database", core_db, "-o", "json").json()
    plugins = {p["pluginId"]: p for p in status["items"]}
    assert set(plugins) == {"customreports", "comments", "inspections", "kb"}
    assert all(p["status"] == "active" for p in plugins.values())
    assert len(plugins["kb"]["tables"]) == 2
    assert "customreports" in run("status", "-d", core_db).stdout
    one = run("history", "kb", "-d", core_db, "--sql")
    assert "CREATE TABLE" in one.stdout and "comments" not in one.stdout.split("\n")[0]


def test_apply_order_on_command_line_does_not_matter(core_db: str) -> None:
    outcome = run("apply", str(EXAMPLES / "knowledge-base.yaml"), str(EXAMPLES / "comments.yaml"), "-d", core_db)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.index("comments:") < outcome.stdout.index("kb:")


def test_dependency_missing_is_refused(core_db: str) -> None:
    outcome = run("apply", str(EXAMPLES / "knowledge-base.yaml"), "-d", core_db)
    assert outcome.exit_code == 1
    assert "ES208" in outcome.stderr and "comments" in outcome.stderr


def test_rollback_undoes_latest_migration(core_db: str, tmp_path: Path) -> None:
    assert run("apply", str(EXAMPLES / "comments.yaml"), "-d", core_db).exit_code == 0
    v2 = (
        (EXAMPLES / "comments.yaml")
        .read_text()
        .replace("version: 1.2.0", "version: 1.3.0")
        .replace(
            "        - {name: created_at, type: DateTime, required: true, default: now}",
            "        - {name: created_at, type: DateTime, required: true, default: now}\n"
            "        - {name: edited, type: Boolean, required: true, default: false}",
        )
    )
    (tmp_path / "comments.yaml").write_text(v2)
    applied = run("apply", str(tmp_path / "comments.yaml"), "-d", core_db)
    assert applied.exit_code == 0, applied.stderr
    assert "add column comment.edited" in applied.stdout
    execute(
        core_db,
        f"INSERT INTO {ext_table(core_db, 'comments', 'comment')} (author, body, edited) VALUES ('a', 'b', true)",
    )

    rolled = approved_rollback(core_db, "comments")  # drops comment.edited (1 value): approved
    assert rolled.exit_code == 0, rolled.stderr
    status = run("status", "-d", core_db, "-o", "json").items()[0]
    assert status["version"] == "1.2.0"
    rows = execute(core_db, f"SELECT author FROM {ext_table(core_db, 'comments', 'comment')}")
    assert rows == [("a",)]  # the row survives; only the column went (and was backed up)
    assert any("edited" in t for t in tables(core_db) if "backup" in t)
    history = run("history", "comments", "-d", core_db, "-o", "json").items()
    assert [m["status"] for m in history] == ["executed", "rolled_back"]
    # Re-applying v2 works again after the rollback.
    assert run("apply", str(tmp_path / "comments.yaml"), "-d", core_db).exit_code == 0


def test_rollback_without_migrations_is_refused(core_db: str) -> None:
    outcome = run("rollback", "nothing", "-d", core_db)
    assert outcome.exit_code == 1 and "ES306" in outcome.stderr


def test_delete_refused_while_dependents_exist_then_drops(core_db: str) -> None:
    assert run("apply", str(EXAMPLES), "-d", core_db).exit_code == 0
    refused = run("delete", "comments", "-d", core_db)
    assert refused.exit_code == 1 and "ES303" in refused.stderr and "kb" in refused.stderr
    assert any("comment" in t and "ext_" in t for t in tables(core_db))

    assert approved_delete(core_db, "kb").exit_code == 0
    assert approved_delete(core_db, "comments").exit_code == 0
    remaining = tables(core_db)
    assert not any(t.startswith(("ext_kb", "ext_comments")) for t in remaining)
    assert any("backup" in t and "comment" in t for t in remaining)
    plugins = {p["pluginId"] for p in run("status", "-d", core_db, "-o", "json").items()}
    assert plugins == {"customreports", "inspections"}


def test_delete_plugin_with_enums_drops_everything_and_keeps_a_backup(core_db: str) -> None:
    assert run("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", core_db).exit_code == 0
    execute(core_db, "INSERT INTO work_orders (id, title) VALUES (7, 'pump')")
    report = ext_table(core_db, "customreports", "report")
    execute(core_db, f"INSERT INTO {report} (title, status, work_order_id) VALUES ('r', 'published', 7)")
    outcome = approved_delete(core_db, "customreports")
    assert outcome.exit_code == 0, outcome.stderr
    assert not any(t.startswith("ext_customreports") for t in tables(core_db))
    backup = next(t for t in tables(core_db) if "backup" in t and "report" in t)
    quoted = ".".join(f'"{part}"' for part in backup.split("."))
    assert execute(core_db, f"SELECT title, status FROM {quoted}") == [("r", "published")]
    if not core_db.startswith("sqlite"):
        assert execute(core_db, "SELECT count(*) FROM pg_type WHERE typname = 'report_status'") == [(0,)]
        assert execute(core_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'ext_customreports'") == [(0,)]


def test_delete_with_retain_keeps_tables(core_db: str) -> None:
    assert run("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", core_db).exit_code == 0
    outcome = run("delete", "customreports", "--retain", "-d", core_db)
    assert outcome.exit_code == 0 and "retained" in outcome.stdout
    assert any("report" in t and "ext_customreports" in t for t in tables(core_db))
    assert run("status", "-d", core_db, "-o", "json").items() == []


def test_conflicts_command_reports_both_sides(core_db: str) -> None:
    assert run("conflicts", str(EXAMPLES), "-d", core_db).exit_code == 0
    assert run("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", core_db).exit_code == 0
    outcome = run("conflicts", str(EXAMPLES / "rejected"), "-d", core_db)
    assert outcome.exit_code == 1
    assert "ES201" in outcome.stderr and "custom-reports" in outcome.stderr and "rogue-reports" in outcome.stderr
    rejected = run("apply", str(EXAMPLES / "rejected"), "-d", core_db)
    assert rejected.exit_code == 1
    assert run("status", "-d", core_db, "-o", "json").items()[0]["owner"] == "custom-reports"


def test_tampered_checksum_blocks_changes_until_repaired(core_db: str, tmp_path: Path) -> None:
    assert run("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", core_db).exit_code == 0
    registry = "extension_migrations" if core_db.startswith("sqlite") else "extschema.extension_migrations"
    execute(core_db, f"UPDATE {registry} SET migration_sql = migration_sql || '-- edited by hand'")
    assert "MISMATCH" in run("history", "-d", core_db).stdout
    v2 = (
        (EXAMPLES / "custom-reports.yaml")
        .read_text()
        .replace("version: 1.0.0", "version: 1.1.0")
        .replace(
            "        - {name: published_at, type: DateTime}",
            "        - {name: published_at, type: DateTime}\n        - {name: notes, type: Text}",
        )
    )
    (tmp_path / "v2.yaml").write_text(v2)
    blocked = run("apply", str(tmp_path / "v2.yaml"), "-d", core_db)
    assert blocked.exit_code == 1
    assert "checksum" in blocked.stderr and "extschema repair customreports" in blocked.stderr
    assert run("rollback", "customreports", "-d", core_db).exit_code == 1
    assert run("repair", "customreports", "-d", core_db).exit_code == 2  # which repair: the user says
    assert run("repair", "customreports", "--accept-edits", "-d", core_db).exit_code == 0
    assert run("apply", str(tmp_path / "v2.yaml"), "-d", core_db).exit_code == 0


def test_unreachable_database_exits_3() -> None:
    outcome = run("status", "--database", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert outcome.exit_code == 3
    assert "ES401" in outcome.stderr and "secret" not in outcome.stderr


def test_usage_errors_exit_2() -> None:
    assert run("apply").exit_code == 2
    assert run("status", "--database", "mysql://x/y").exit_code == 2
    assert run("status", "--database", "::not a url::").exit_code == 2
    assert run("frobnicate").exit_code == 2


def test_default_database_is_sqlite_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXTSCHEMA_DATABASE_URL", raising=False)
    spec = str(write_schema(tmp_path, "notes", "pluginId: notes\nversion: 1.0.0\ntables: [{name: note, fields: []}]"))
    assert run("status").exit_code == 0
    assert not (tmp_path / "extschema.db").exists()  # reads create nothing
    assert run("apply", spec).exit_code == 0
    assert (tmp_path / "extschema.db").exists()
    monkeypatch.setenv("EXTSCHEMA_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert run("apply", spec).exit_code == 0
    assert (tmp_path / "other.db").exists()


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "extschema", "validate", str(EXAMPLES)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr


def test_empty_database_url_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--database ""`` (an unset variable in a script) must not fall back to the local file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXTSCHEMA_DATABASE_URL", raising=False)
    for args in (["status"], ["apply", str(EXAMPLES / "comments.yaml")], ["history"], ["delete", "comments"]):
        for empty in ("", " "):
            outcome = run(*args, "--database", empty)
            assert outcome.exit_code == 2, (args, outcome.stdout, outcome.stderr)
            assert "--database: ES404: the database URL is empty" in outcome.stderr
    data = run("status", "-d", "", "-o", "json").json()
    assert (data["kind"], data["ok"], data["reason"]) == ("Failure", False, "usage")
    assert data["problems"][0]["code"] == "ES404"
    assert list(tmp_path.iterdir()) == []


def _json(*args: str) -> tuple[int, dict[str, object]]:
    outcome = run(*args, "-o", "json")
    return outcome.exit_code, outcome.json()


def test_every_command_speaks_json_on_success_and_on_failure(core_db: str, tmp_path: Path) -> None:
    """Each command the README lists: ``-o json`` gives one JSON document, ``ok`` tells success from failure
    (but for ``plan``, whose output on success is the plan itself: see docs/evolution.md)."""
    reports = str(EXAMPLES / "custom-reports.yaml")
    bad = write_schema(tmp_path, "bad", "pluginId: Bad-Id\nversion: one")
    wrong_url = "mysql://x/y"
    succeeding = [
        ("validate", str(EXAMPLES)),
        ("plan", reports, "-d", core_db),
        ("apply", reports, "-d", core_db),
        ("conflicts", reports, "-d", core_db),
        ("status", "-d", core_db),
        ("history", "-d", core_db),
        ("repair", "customreports", "--accept-edits", "-d", core_db),
        ("rollback", "customreports", "-d", core_db),
        ("apply", reports, "-d", core_db),
        ("delete", "customreports", "--dry-run", "-d", core_db),
    ]
    for args in succeeding:
        code, data = _json(*args)
        assert (code, data.get("ok", args[0] == "plan" and "hash" in data)) == (0, True), (args, data)
    failing = [
        ("validate", str(bad)),
        ("plan", str(bad), "-d", core_db),
        ("apply", str(bad), "-d", core_db),
        ("conflicts", str(bad), "-d", core_db),
        ("status", "-d", wrong_url),
        ("history", "-d", wrong_url),
        ("repair", "customreports", "--accept-edits", "-d", wrong_url),
        ("rollback", "nosuchplugin", "-d", core_db),
        ("delete", "nosuchplugin", "-d", core_db),
    ]
    for args in failing:
        code, data = _json(*args)
        assert code in (1, 2) and data["ok"] is False and data["problems"], (args, data)
    assert {args[0] for args in succeeding} == {args[0] for args in failing}


def test_repair_reports_what_it_re_recorded_as_json(core_db: str) -> None:
    assert run("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", core_db).exit_code == 0
    registry = "extension_migrations" if core_db.startswith("sqlite") else "extschema.extension_migrations"
    [[migration]] = execute(core_db, f"SELECT migration_id FROM {registry}")
    execute(core_db, f"UPDATE {registry} SET migration_sql = migration_sql || '-- edited by hand'")
    code, data = _json("repair", "customreports", "--accept-edits", "-d", core_db)
    change = "re-recorded the checksum of the SQL as edited (the edit stays)"
    repaired = [
        {"pluginId": "customreports", "migrationId": migration, "mode": "accept-edits", "change": change}
        | {"changed": True}
    ]
    assert (code, data["kind"], data["items"]) == (0, "RepairList", repaired)
    assert _json("repair", "customreports", "--accept-edits", "-d", core_db)[1]["items"] == []


def test_names_are_escaped_before_they_reach_the_terminal(core_db: str, tmp_path: Path) -> None:
    """A file name or registry value holding escape sequences must not clear or rewrite the screen."""
    evil = "evil\x1b[2J\x07"
    bad = write_schema(tmp_path, "bad", "pluginId: Bad-Id\nversion: 1.0.0").rename(tmp_path / f"{evil}.yaml")
    outcome = run("validate", str(bad))
    assert outcome.exit_code == 1
    assert "\x1b" not in outcome.stderr and "\x07" not in outcome.stderr
    assert "evil\\x1b[2J\\x07.yaml:6:3: spec.pluginId: ES" in outcome.stderr
    good = tmp_path / f"{evil}-ok.yaml"
    good.write_text((EXAMPLES / "custom-reports.yaml").read_text())
    for args in (["validate", str(good)], ["plan", str(good), "-d", core_db], ["apply", str(good), "-d", core_db]):
        outcome = run(*args)
        assert outcome.exit_code == 0, outcome.stderr
        printed = outcome.stdout + outcome.stderr
        assert "\x1b" not in printed and "\x07" not in printed and "evil\\x1b[2J\\x07-ok.yaml" in printed, args
    schemas = "extension_schemas" if core_db.startswith("sqlite") else "extschema.extension_schemas"
    migrations = "extension_migrations" if core_db.startswith("sqlite") else "extschema.extension_migrations"
    execute(core_db, f"UPDATE {schemas} SET owner = :v, error_message = :w", {"v": f"{evil}\u202e\r", "w": evil})
    execute(core_db, f"UPDATE {migrations} SET version = :v, error_message = :w", {"v": evil, "w": evil})
    listing = run("status", "-d", core_db).stdout
    assert "  evil\\x1b[2J\\x07\\u202e\\r  " in listing and "last error: evil\\x1b" in listing  # the OWNER column
    history = run("history", "-d", core_db).stdout
    assert " evil\\x1b[2J\\x07 " in history and "error: evil\\x1b[2J\\x07" in history
    for printed in (listing, history):
        assert not {"\x1b", "\x07", "\u202e", "\r"} & set(printed)
    assert run("status", "-d", core_db, "-o", "json").items()[0]["owner"] == f"{evil}\u202e\r"
