"""Adopting what ``delete --retain`` kept: applying the plugin again registers its objects back when
they are exactly the retained spec (an ``adopt`` migration), refuses (ES209) naming each difference
otherwise, and never takes over objects no Retain left. Both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from extschema import planning
from extschema.engine import Engine, StalePlan
from extschema.problems import ProblemError
from tests.helpers import Outcome, execute, ext_table, run, tables, write_schema

DESK = """
pluginId: desk
version: 1.0.0
enums:
  - {name: state, values: [open, closed]}
tables:
  - name: ticket
    fields:
      - {name: title, type: String, required: true}
      - {name: state, type: Enum, enum: state, required: true, default: open}
      - {name: priority, type: Int, default: 3, validation: {min: 1, max: 5}}
      - {name: code, type: String, unique: true, validation: {maxLength: 20}}
      - {name: urgent, type: Boolean, required: true, default: false}
      - {name: opened_at, type: DateTime, default: now}
      - {name: cost, type: Decimal, precision: 10, scale: 2, default: 0}
      - {name: tags, type: Json}
    indexes:
      - {fields: [priority]}
  - name: note
    fields: [{name: body, type: Text}]
relationships:
  - {source: note, target: ticket, type: ManyToOne, onDelete: Cascade}
"""

DESK_2 = DESK.replace("version: 1.0.0", "version: 2.0.0").replace(
    "fields: [{name: body, type: Text}]", "fields: [{name: body, type: Text}, {name: pinned, type: Boolean}]"
)


def _retained(url: str, tmp_path: Path) -> str:
    """Apply desk 1.0.0, write rows, ``delete --retain``: the spec's path."""
    spec = str(write_schema(tmp_path, "desk", DESK))
    assert run("apply", spec, "-d", url).exit_code == 0
    ticket, note = ext_table(url, "desk", "ticket"), ext_table(url, "desk", "note")
    execute(url, f"INSERT INTO {ticket} (title, priority, code) VALUES ('printer', 3, 'T-1'), ('desk', 1, 'T-2')")
    execute(url, f"INSERT INTO {note} (body, ticket_id) SELECT 'jammed', id FROM {ticket} WHERE code = 'T-1'")
    assert run("delete", "desk", "--retain", "-d", url).exit_code == 0
    assert run("status", "-d", url).stdout.strip() == "no plugins registered"
    return spec


def _rows(url: str) -> list[tuple[object, ...]]:
    ticket, note = ext_table(url, "desk", "ticket"), ext_table(url, "desk", "note")
    return [
        tuple(r)
        for r in execute(
            url,
            f"SELECT t.id, t.title, t.state, t.priority, t.code, n.body FROM {ticket} t "
            f"LEFT JOIN {note} n ON n.ticket_id = t.id ORDER BY t.id",
        )
    ]


def test_applying_a_retained_plugin_again_adopts_its_objects_and_rows(db_url: str, tmp_path: Path) -> None:
    spec = _retained(db_url, tmp_path)
    rows, before = _rows(db_url), tables(db_url)
    assert len(rows) == 2
    # The way back is not a restore (Retain took no backup): the refusal says what is.
    restore = run("restore", "0002", "-p", "desk", "-d", db_url, "-o", "json")
    assert restore.exit_code == 1 and "apply the plugin again to adopt" in restore.stdout, restore

    plan = run("plan", spec, "-d", db_url, "-o", "json")
    assert plan.exit_code == 0, plan
    assert plan.item()["ops"] == [], plan.item()
    assert "delete --retain" in plan.item()["adopts"] and "desk 1.0.0" in plan.item()["adopts"], plan.item()
    assert "adopts the objects" in run("plan", spec, "-d", db_url).stdout
    (tmp_path / "v2").mkdir()
    newer = str(write_schema(tmp_path / "v2", "desk", DESK_2))
    upgrade_from_retained = run("plan", newer, "-d", db_url, "-o", "json").item()["hash"]

    applied = run("apply", spec, "-d", db_url, "-o", "json")
    assert applied.exit_code == 0, applied
    (result,) = applied.items()
    assert result["changed"] and any("adopted" in line for line in result["changes"]), result
    assert _rows(db_url) == rows and tables(db_url) == before

    history = run("history", "desk", "-d", db_url, "-o", "json").items()
    assert [(h["kind"], h["status"]) for h in history] == [
        ("apply", "executed"),
        ("unregister", "executed"),
        ("adopt", "executed"),
    ]
    assert history[-1]["version"] == "1.0.0"
    (status,) = run("status", "-d", db_url, "-o", "json").items()
    assert (status["pluginId"], status["version"]) == ("desk", "1.0.0")
    drift = run("drift", "desk", "-d", db_url, "-o", "json")
    assert drift.exit_code == 0 and drift.item()["inSync"], drift

    # Applied again: nothing to do (it is registered now).
    again = run("apply", spec, "-d", db_url, "-o", "json")
    assert again.exit_code == 0 and not again.item()["changed"], again

    # The plugin lives on: an upgrade builds on the adopted registration, with the plan (and hash)
    # planned from the retained spec before it was adopted.
    after = run("plan", newer, "-d", db_url, "-o", "json").item()
    assert after["hash"] == upgrade_from_retained and after.get("adopts") is None, after
    upgraded = run("apply", newer, "-d", db_url, "-o", "json")
    assert upgraded.exit_code == 0, upgraded
    assert upgraded.item()["changed"]
    note = ext_table(db_url, "desk", "note")
    assert execute(db_url, f"SELECT body, pinned FROM {note}") == [("jammed", None)]
    assert run("drift", "desk", "-d", db_url, "-o", "json").item()["inSync"]


def test_a_newer_version_adopts_the_retained_one_then_upgrades_in_one_run(db_url: str, tmp_path: Path) -> None:
    """Applying 2.0.0 over what 1.0.0 left: planned as the upgrade from 1.0.0 (the same plan and hash as
    for a registered 1.0.0), recorded as the adopt of 1.0.0 then the apply of 2.0.0."""
    _retained(db_url, tmp_path)
    rows = _rows(db_url)
    newer = str(write_schema(tmp_path, "desk", DESK_2))
    plan = run("plan", newer, "-d", db_url, "-o", "json")
    assert plan.exit_code == 0, plan
    assert [s["description"] for s in plan.item()["ops"]] == ["add column note.pinned (Boolean)"], plan.item()["ops"]

    applied = run("apply", newer, "-d", db_url, "-o", "json")
    assert applied.exit_code == 0, applied
    description = applied.item()["changes"]
    assert "adopted" in description[0] and "add column note.pinned (Boolean)" in description, description
    history = run("history", "desk", "-d", db_url, "-o", "json").items()
    assert [(h["kind"], h["version"]) for h in history][-2:] == [("adopt", "1.0.0"), ("apply", "2.0.0")]
    assert _rows(db_url) == rows
    assert run("drift", "desk", "-d", db_url, "-o", "json").item()["inSync"]

    # Rolled back step by step: to the adopted 1.0.0, then unregistered again; the rows stay throughout.
    assert run("rollback", "desk", "-d", db_url).exit_code == 0
    (status,) = run("status", "-d", db_url, "-o", "json").items()
    assert status["version"] == "1.0.0" and run("drift", "desk", "-d", db_url, "-o", "json").item()["inSync"]
    assert run("rollback", "desk", "-d", db_url).exit_code == 0
    assert run("status", "-d", db_url).stdout.strip() == "no plugins registered"
    assert _rows(db_url) == rows


def test_objects_changed_by_hand_are_refused_with_each_difference(db_url: str, tmp_path: Path) -> None:
    spec = _retained(db_url, tmp_path)
    ticket = ext_table(db_url, "desk", "ticket")
    execute(db_url, f"ALTER TABLE {ticket} ADD COLUMN extra_note TEXT")
    if db_url.startswith("sqlite"):
        found = execute(db_url, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ext_desk__ticket'")
        (index,) = [name for (name,) in found if "priority" in name]
        execute(db_url, f'DROP INDEX "{index}"')
    else:
        execute(db_url, f"ALTER TABLE {ticket} ALTER COLUMN title DROP NOT NULL")
        execute(db_url, f"ALTER TABLE {ticket} ALTER COLUMN priority SET DEFAULT 4")
        (fk,) = execute(
            db_url, "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = 'ext_desk.note'::regclass"
        )
        execute(db_url, f'ALTER TABLE {ext_table(db_url, "desk", "note")} DROP CONSTRAINT "{fk[0]}"')
    before, rows = tables(db_url), _rows(db_url)
    for command in ("plan", "apply"):
        outcome = run(command, spec, "-d", db_url, "-o", "json")
        assert outcome.exit_code == 1, (command, outcome)
        (problem,) = outcome.json()["problems"]
        assert problem["code"] == "ES209", problem
        message = problem["message"]
        assert "extra column ticket.extra_note" in message, message
        if db_url.startswith("sqlite"):
            assert "missing index" in message and "priority" in message, message
        else:
            assert "changed column ticket.title" in message and "nullable" in message, message
            assert "changed column ticket.priority: default is 4" in message, message
            assert "missing foreign key note.ticket_id" in message, message
        assert "drop the objects" in message and "another pluginId" in message, message
    assert tables(db_url) == before and _rows(db_url) == rows
    assert run("status", "-d", db_url).stdout.strip() == "no plugins registered"
    assert [h["kind"] for h in run("history", "desk", "-d", db_url, "-o", "json").items()] == ["apply", "unregister"]


def test_rolling_back_an_adopt_unregisters_again_and_keeps_the_objects(db_url: str, tmp_path: Path) -> None:
    spec = _retained(db_url, tmp_path)
    rows, before = _rows(db_url), tables(db_url)
    assert run("apply", spec, "-d", db_url).exit_code == 0
    undone = run("rollback", "desk", "-d", db_url, "-o", "json")
    assert undone.exit_code == 0, undone
    assert run("status", "-d", db_url).stdout.strip() == "no plugins registered"
    assert _rows(db_url) == rows and tables(db_url) == before
    history = run("history", "desk", "-d", db_url, "-o", "json").items()
    assert [(h["kind"], h["status"]) for h in history] == [
        ("apply", "executed"),
        ("unregister", "executed"),
        ("adopt", "rolled_back"),
    ]
    # Still retained: it can be adopted again.
    assert run("apply", spec, "-d", db_url).exit_code == 0
    assert _rows(db_url) == rows


def test_tables_no_retain_left_are_never_taken_over(db_url: str, tmp_path: Path) -> None:
    """Adopted, then deleted for good (dropped); a table of the plugin's name made again by hand, exactly
    as the spec would make it: the last ending migration is a delete, not a Retain, so ES202, not an adopt."""
    spec = _retained(db_url, tmp_path)
    assert run("apply", spec, "-d", db_url).exit_code == 0
    assert _deleted(db_url, "desk").exit_code == 0
    assert not [t for t in tables(db_url) if "desk" in t and "backup" not in t]
    other = str(
        write_schema(
            tmp_path,
            "desk",
            "pluginId: desk\nversion: 1.0.0\ntables:\n  - name: t\n    fields: [{name: a, type: Text}]",
        )
    )
    if db_url.startswith("sqlite"):
        execute(db_url, 'CREATE TABLE "ext_desk__t" (id INTEGER PRIMARY KEY, a TEXT)')
    else:
        execute(db_url, 'CREATE SCHEMA "ext_desk"')
        execute(db_url, 'CREATE TABLE "ext_desk"."t" (id BIGSERIAL PRIMARY KEY, a TEXT)')
    outcome = run("apply", other, "-d", db_url, "-o", "json")
    assert outcome.exit_code == 1, outcome
    assert [p["code"] for p in outcome.json()["problems"]] == ["ES202"], outcome.json()
    assert run("status", "-d", db_url).stdout.strip() == "no plugins registered"


def _deleted(url: str, plugin: str) -> Outcome:
    """`extschema delete PLUGIN`, approving the data it drops when the gate asks (the hash ES307 names)."""
    first = run("delete", plugin, "-d", url, "-o", "json")
    if first.exit_code == 0 or "ES307" not in first.stdout + first.stderr:
        return first
    hashes = [item["hash"] for item in first.items() if isinstance(item, dict) and "hash" in item]
    return run("delete", plugin, "-d", url, "--approve", hashes[0])


def test_a_plugin_renamed_over_its_life_is_adopted_in_sync(db_url: str, tmp_path: Path) -> None:
    """Tables and columns renamed, and a table rebuilt (SQLite), by earlier versions keep some old names in the
    database (SQLite keeps a renamed column's CHECK name): what the last version built is still exactly that
    version, and adopted."""
    spec = write_schema(tmp_path, "desk", DESK)
    assert run("apply", str(spec), "-d", db_url).exit_code == 0
    renamed = (
        DESK.replace("version: 1.0.0", "version: 1.1.0")
        .replace("{name: priority, type: Int,", "{name: rank, renamedFrom: priority, type: Int,")
        .replace("fields: [priority]", "fields: [rank]")
        .replace("  - name: note\n", "  - name: remark\n    renamedFrom: note\n")
        .replace("{source: note,", "{source: remark,")
        .replace("values: [open, closed]", "values: [open, closed, pending]")  # SQLite: the table is rebuilt
    )
    write_schema(tmp_path, "desk", renamed)
    applied = run("apply", str(spec), "-d", db_url)
    assert applied.exit_code == 0, applied
    assert run("drift", "desk", "-d", db_url, "-o", "json").item()["inSync"]
    assert run("delete", "desk", "--retain", "-d", db_url).exit_code == 0
    adopted = run("apply", str(spec), "-d", db_url, "-o", "json")
    assert adopted.exit_code == 0, adopted
    assert run("drift", "desk", "-d", db_url, "-o", "json").item()["inSync"]
    assert [h["kind"] for h in run("history", "desk", "-d", db_url, "-o", "json").items()][-1] == "adopt"


def test_a_spec_that_only_changes_the_deletion_policy_is_adopted_then_recorded(db_url: str, tmp_path: Path) -> None:
    """Retained by its own deletionPolicy (Retain), applied again with Drop: adopted, then the spec with Drop
    is recorded (an apply without statements), so the next delete drops, as the spec now says."""
    spec = write_schema(tmp_path, "desk", DESK + "deletionPolicy: Retain\n")
    assert run("apply", str(spec), "-d", db_url).exit_code == 0
    assert run("delete", "desk", "-d", db_url).exit_code == 0  # Retain: unregistered
    rows = _rows(db_url)
    write_schema(tmp_path, "desk", DESK + "deletionPolicy: Drop\n")
    applied = run("apply", str(spec), "-d", db_url, "-o", "json")
    assert applied.exit_code == 0, applied
    history = run("history", "desk", "-d", db_url, "-o", "json").items()
    assert [h["kind"] for h in history] == ["apply", "unregister", "adopt", "apply"]
    assert run("apply", str(spec), "-d", db_url, "-o", "json").item()["changed"] is False
    assert _rows(db_url) == rows
    assert _deleted(db_url, "desk").exit_code == 0
    assert not [t for t in tables(db_url) if "desk" in t and "backup" not in t]


def test_the_engine_checks_again_under_the_lock(db_url: str, tmp_path: Path) -> None:
    """What was checked when planning is checked again when the adopt runs: objects changed in between are
    refused (ES209), a plugin adopted in between makes the adopt stale (planned again above the engine)."""
    _retained(db_url, tmp_path)
    engine = Engine(db_url)
    try:
        source = engine.retained("desk")
        assert source is not None and source.spec.version == "1.0.0"
        expected = planning.resolve(source.spec, planning.reference_types_of(source.spec))
        tables_ = expected.physical_tables(engine.dialect.namer)
        execute(db_url, f"ALTER TABLE {ext_table(db_url, 'desk', 'note')} ADD COLUMN later TEXT")
        with pytest.raises(ProblemError) as refused:
            engine.adopt("desk", source, expected, tables_)
        assert [p.code for p in refused.value.problems] == ["ES209"]
        assert "extra column note.later" in refused.value.problems[0].message
        assert engine.registration("desk") is None
        execute(db_url, f"ALTER TABLE {ext_table(db_url, 'desk', 'note')} DROP COLUMN later")
        assert engine.adopt("desk", source, expected, tables_).changed
        with pytest.raises(StalePlan):
            engine.adopt("desk", source, expected, tables_)
    finally:
        engine.close()
