"""The wire views (extschema.wire): every command's ``-o json`` is one envelope of its kind, on both databases;
camelCase keys, RFC 3339 timestamps with an offset; the docs' examples are valid envelopes too."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import click
import pydantic
import pytest

from extschema import cli, wire
from tests.helpers import REPO, execute, ext_table, run, write_schema

V1 = """
pluginId: shop
version: 1.0.0
tables:
  - name: order
    fields:
      - {name: title, type: String, required: true}
      - {name: note, type: Text}
    indexes: [{fields: [title]}]
deletionPolicy: Drop
"""
V2 = V1.replace("1.0.0", "2.0.0").replace("      - {name: note, type: Text}\n", "")
CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")


def _keys(data: Any) -> set[str]:
    """Every key of every object in *data*."""
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in _keys(v)}
    if isinstance(data, list):
        return {k for v in data for k in _keys(v)}
    return set()


def _printed(model: type[wire.Envelope[Any]], *args: str, exit_code: int = 0) -> Any:
    """``extschema ARGS -o json``, validated against *model*: exactly its fields, camelCase, no snake_case."""
    outcome = run(*args, "-o", "json")
    assert outcome.exit_code == exit_code, outcome.stdout + outcome.stderr
    data = json.loads(outcome.stdout)
    envelope = model.model_validate(data)
    assert envelope.dump() == data  # nothing printed the model does not declare, nothing left out
    assert all(CAMEL.match(key) for key in _keys(data)), sorted(k for k in _keys(data) if not CAMEL.match(k))
    return envelope


def _schemas(directory: Path) -> tuple[str, str]:
    (directory / "v1").mkdir()
    (directory / "v2").mkdir()
    return str(write_schema(directory / "v1", "shop", V1)), str(write_schema(directory / "v2", "shop", V2))


def _registry(url: str, table: str) -> str:
    return table if url.startswith("sqlite") else f"extschema.{table}"


def _is_utc_rfc3339(text: str) -> bool:
    return text.endswith("+00:00") and datetime.datetime.fromisoformat(text).utcoffset() == datetime.timedelta(0)


def test_every_command_prints_its_envelope(db_url: str, tmp_path: Path) -> None:
    v1, v2 = _schemas(tmp_path)
    ran: set[str] = set()

    def printed(model: type[wire.Envelope[Any]], command: str, *args: str, exit_code: int = 0) -> Any:
        ran.add(command.split()[0])
        return _printed(model, *command.split(), *args, exit_code=exit_code)

    (schema,) = printed(wire.SchemaList, "validate", v1).items
    assert (schema.plugin_id, schema.version, schema.file) == ("shop", "1.0.0", v1)
    assert printed(wire.ConflictList, "conflicts", v1, "-d", db_url).items == []
    (plan,) = printed(wire.PlanList, "plan", v1, "-d", db_url).items
    assert plan.op_class == "safe" and not plan.needs_approval and plan.sql and plan.rollback_sql is not None
    # Each statement names the step it carries out (the text output numbers both).
    assert plan.sql_steps is not None and len(plan.sql_steps) == len(plan.sql)
    assert set(plan.sql_steps) <= set(range(len(plan.ops)))
    (applied,) = printed(wire.AppliedList, "apply", v1, "-d", db_url).items
    assert applied.changed and applied.migration == "0001"
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (title, note) VALUES ('a', 'kept')")

    (plan,) = printed(wire.PlanList, "plan", v2, "-d", db_url).items
    assert (plan.op_class, plan.needs_approval, plan.destructive) == ("destructive", True, True)
    (diffed,) = printed(wire.DiffList, "diff", v1, v2).items
    assert (diffed.hash, diffed.op_class, diffed.from_version) == (plan.hash, "destructive", "1.0.0")
    (op,) = plan.ops
    assert op.check is not None and (op.check.kind, op.check.count) == ("values_lost", 1)
    waiting = printed(wire.Failure, "apply", v2, "-d", db_url, exit_code=1)
    assert (waiting.reason, [p.code for p in waiting.problems]) == ("approval", ["ES307"])
    (pending,) = waiting.items
    assert (pending.hash, pending.ops, pending.sql, pending.sql_steps) == (plan.hash, plan.ops, None, None)
    (applied,) = printed(wire.AppliedList, "apply", v2, "-d", db_url, "--approve", plan.hash).items
    assert applied.changed and applied.migration == "0002"

    (plugin,) = printed(wire.PluginList, "status", "-d", db_url).items
    (prisma,) = printed(wire.PrismaSchemaList, "prisma", "-d", db_url).items
    (analysis,) = printed(wire.AnalysisList, "analyze", "shop", "-d", db_url).items
    assert (analysis.plugin_id, analysis.findings) == ("shop", [])  # one row: below every threshold
    assert prisma.provider == db_url.split(":")[0] and "model ShopOrder" in prisma.schema_
    assert (plugin.plugin_id, plugin.version, plugin.database) == ("shop", "2.0.0", db_url.split(":")[0])
    history = printed(wire.MigrationList, "history", "shop", "-d", db_url).items
    assert [(m.migration_id, m.kind, m.checksum_ok) for m in history] == [
        ("0001", "apply", True),
        ("0002", "apply", True),
    ]
    (backup,) = printed(wire.BackupList, "backups", "-d", db_url).items
    assert (backup.migration_id, backup.source_column, backup.rows, backup.pruning) == ("0002", "note", 1, None)
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=31)
    execute(db_url, f"UPDATE {_registry(db_url, 'extension_backups')} SET created_at = :t", {"t": past})
    (kept,) = printed(wire.BackupList, "backups prune", "--older-than", "30d", "-d", db_url).items
    assert (kept.migration_id, kept.pruning) == ("0002", "kept")  # a rollback of 0002 reads it
    (dry,) = printed(
        wire.BackupList, "backups prune", "--older-than", "30d", "--dry-run", "--force", "-d", db_url
    ).items
    assert (dry.pruning, dry.age_seconds >= 31 * 86400) == ("wouldPrune", True)
    (drift,) = printed(wire.DriftList, "drift", "-d", db_url).items
    assert (drift.plugin_id, drift.in_sync, drift.differences, drift.repaired) == ("shop", True, [], [])
    execute(db_url, f"UPDATE {_registry(db_url, 'extension_migrations')} SET migration_sql = migration_sql || ' '")
    repaired = printed(wire.RepairList, "repair", "shop", "--accept-edits", "-d", db_url).items
    assert [(r.plugin_id, r.migration_id, r.mode) for r in repaired] == [
        ("shop", "0001", "accept-edits"),
        ("shop", "0002", "accept-edits"),
    ]

    (rolled,) = printed(wire.AppliedList, "rollback", "shop", "-d", db_url).items
    assert rolled.changed
    (preview,) = printed(wire.PreviewList, "delete", "shop", "--dry-run", "-d", db_url).items
    assert (preview.action, preview.needs_approval, preview.plan is not None) == ("delete", True, True)
    refused = printed(wire.Failure, "delete", "shop", "-d", db_url, exit_code=1)
    assert (refused.reason, [p.code for p in refused.problems]) == ("approval", ["ES307"])
    assert refused.items[0].hash == preview.hash
    (deleted,) = printed(wire.AppliedList, "delete", "shop", "--approve", str(preview.hash), "-d", db_url).items
    assert deleted.changed and deleted.migration
    restored = printed(wire.AppliedList, "restore", deleted.migration, "-d", db_url).items
    assert [r.changed for r in restored] == [True, True]
    assert printed(wire.Failure, "history", "nope", "-d", "", exit_code=2).reason == "usage"

    # Every command with -o json ran here but `wait` (it needs a cluster: tests/test_wait.py checks its Failure),
    # and `crd` and `schema`, whose -o picks how their artefact prints (tests/test_cli_shells.py).
    with_output = {
        name
        for name, command in cli.main.commands.items()
        if any(p.name == "output" for p in command.params) and name not in ("wait", "crd", "schema")
    }
    assert ran == with_output


def test_timestamps_carry_their_offset_on_both_databases(db_url: str, tmp_path: Path) -> None:
    v1, v2 = _schemas(tmp_path)
    assert run("apply", v1, "-d", db_url).exit_code == 0
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'shop', 'order')} (title, note) VALUES ('a', 'kept')")
    digest = run("plan", v2, "-d", db_url, "-o", "json").item()["hash"]
    assert run("apply", v2, "-d", db_url, "--approve", digest).exit_code == 0
    history = run("history", "-d", db_url, "-o", "json").items()
    stamps = [
        *(m[key] for m in history for key in ("executionStart", "executionEnd")),
        *(b["createdAt"] for b in run("backups", "-d", db_url, "-o", "json").items()),
        *(p["updatedAt"] for p in run("status", "-d", db_url, "-o", "json").items()),
    ]
    assert len(stamps) == 6 and all(_is_utc_rfc3339(s) for s in stamps), stamps


def test_a_naive_timestamp_is_utc_and_printed_with_its_offset() -> None:
    """SQLite hands back naive UTC values: the view makes them aware; text without an offset is refused."""
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
    printed = wire.rfc3339(naive)
    assert printed == "2026-01-02T03:04:05.678+00:00"
    elsewhere = datetime.datetime(2026, 1, 2, 5, 4, 5, 678000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert wire.rfc3339(elsewhere) == printed
    view = wire.PluginView(
        plugin_id="p",
        owner="p",
        version="1",
        status="active",
        database="sqlite",
        tables=[],
        expected_tables=[],
        depends_on=[],
        error=None,
        updated_at=naive,
    )
    assert view.dump()["updatedAt"] == printed
    with pytest.raises(pydantic.ValidationError):
        wire.PluginView.model_validate({**view.dump(), "updatedAt": "2026-01-02T03:04:05"})


def test_the_envelope_refuses_what_it_does_not_declare() -> None:
    listed = wire.PlanList.of([]).dump()
    assert listed == {"apiVersion": wire.API_VERSION, "kind": "PlanList", "ok": True, "items": [], "problems": []}
    for broken in ({**listed, "plans": []}, {**listed, "kind": "MigrationList", "items": [{"x": 1}]}, {"ok": True}):
        with pytest.raises(pydantic.ValidationError):
            wire.parse(broken)
    assert isinstance(wire.parse(listed), wire.PlanList)


def _json_blocks(page: str) -> list[Any]:
    text = (REPO / "docs" / page).read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_the_documented_envelopes_are_valid_and_every_kind_is_documented() -> None:
    blocks = _json_blocks("json-output.md")
    envelopes = [wire.parse(block) for block in blocks]
    assert {e.kind for e in envelopes} >= {"PlanList", "AppliedList", "PluginList", "MigrationList", "BackupList"}
    text = (REPO / "docs" / "json-output.md").read_text()
    assert all(f"`{model.model_fields['kind'].default}`" in text for model in wire.ENVELOPES)
    # A plan documented elsewhere is an item of a PlanList as printed.
    (plan,) = [b for b in _json_blocks("evolution.md") if isinstance(b, dict) and "hash" in b]
    wire.PlanView.model_validate(plan)


def test_every_command_with_json_output_is_in_the_docs_table() -> None:
    text = (REPO / "docs" / "json-output.md").read_text()
    table = text[text.index("| command | `kind` |") :]
    commands = [name for name, c in cli.main.commands.items() if any(p.name == "output" for p in c.params)]
    assert commands and all(f"`{name}`" in table for name in commands)
    assert isinstance(cli.main.commands["backups"], click.Group)
