"""The reconcile line: typed migration events and the gate that stops a run before anything is applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extschema import reconcile
from extschema.engine import ApplyResult, Engine, checks
from extschema.problems import Kind, ProblemError
from tests.helpers import execute, ext_table, run, tables, write_schema

ITEMS = """
pluginId: {plugin}
version: 1.0.0
tables:
  - name: item
    fields: [{{name: title, type: String}}]
"""


def _schema(directory: Path, plugin: str, body: str = ITEMS) -> Path:
    directory.mkdir(exist_ok=True)
    return write_schema(directory, plugin, body.format(plugin=plugin))


def test_events_tell_each_migration_started_and_finished(db_url: str, tmp_path: Path) -> None:
    _schema(tmp_path / "s", "alpha")
    _schema(tmp_path / "s", "beta")
    events: list[reconcile.MigrationEvent] = []
    engine = Engine(db_url)
    try:
        results = reconcile.reconcile(engine, reconcile.load([str(tmp_path / "s")]), events.append)
        again = reconcile.reconcile(engine, reconcile.load([str(tmp_path / "s" / "beta.yaml")]), events.append)
    finally:
        engine.close()
    steps = [e for e in events if isinstance(e, reconcile.StepStarted | reconcile.StepFinished)]
    assert {e.plugin_id for e in steps} == {"alpha", "beta"}  # the engine's own (tests/test_progress.py)
    # Heard once per migration that changes something, holding its lock (the operator's check point).
    locked = [e for e in events if isinstance(e, reconcile.MigrationLocked)]
    assert locked == [reconcile.MigrationLocked("alpha"), reconcile.MigrationLocked("beta")]
    events = [e for e in events if e not in steps and e not in locked]
    assert events[:4] == [
        reconcile.MigrationStarted("alpha", "1.0.0", str(tmp_path / "s" / "alpha.yaml"), 1, 2),
        reconcile.MigrationFinished(results[0], 1, 2),
        reconcile.MigrationStarted("beta", "1.0.0", str(tmp_path / "s" / "beta.yaml"), 2, 2),
        reconcile.MigrationFinished(results[1], 2, 2),
    ]
    assert all(r.changed for r in results)
    assert events[4:] == [
        reconcile.MigrationStarted("beta", "1.0.0", str(tmp_path / "s" / "beta.yaml"), 1, 1, changes=False),
        reconcile.MigrationFinished(again[0], 1, 1),
    ]
    assert not again[0].changed


def test_a_failed_migration_is_an_event_then_the_error(db_url: str, tmp_path: Path) -> None:
    path = _schema(tmp_path / "s", "gamma")
    # The database refuses the migration in a way the check cannot see (a table, schema or type in the
    # plugin's place is a conflict it reports first): a view by the table's name (SQLite), an event trigger
    # refusing DDL on the plugin's objects (PostgreSQL).
    if db_url.startswith("sqlite"):
        execute(db_url, f"CREATE VIEW {ext_table(db_url, 'gamma', 'item')} AS SELECT 1 AS x")
    else:
        execute(
            db_url,
            "CREATE FUNCTION refuse_gamma() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity LIKE 'ext_gamma%') "
            "THEN RAISE EXCEPTION 'refused by the test'; END IF; END $$",
        )
        execute(db_url, "CREATE EVENT TRIGGER refuse_gamma ON ddl_command_end EXECUTE FUNCTION refuse_gamma()")
    events: list[reconcile.MigrationEvent] = []
    engine = Engine(db_url)
    try:
        with pytest.raises(ProblemError) as raised:
            reconcile.reconcile(engine, reconcile.load([str(path)]), events.append)
    finally:
        engine.close()
    steps = (reconcile.StepStarted, reconcile.StepFinished, reconcile.MigrationLocked)
    events = [e for e in events if not isinstance(e, steps)]  # the engine's steps: tests/test_progress.py
    assert [type(e) for e in events] == [reconcile.MigrationStarted, reconcile.MigrationFailed]
    failed = events[1]
    assert isinstance(failed, reconcile.MigrationFailed)
    assert (failed.plugin_id, failed.number, failed.total, failed.error) == ("gamma", 1, 1, raised.value)


def test_cli_progress_lines_come_from_the_events(db_url: str, tmp_path: Path) -> None:
    _schema(tmp_path / "s", "alpha")
    _schema(tmp_path / "s", "beta")
    outcome = run("apply", str(tmp_path / "s"), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert [line for line in outcome.stderr.splitlines() if not line.startswith("  step ")] == [
        f"[1/2] alpha 1.0.0 ({tmp_path / 's' / 'alpha.yaml'})",
        f"[2/2] beta 1.0.0 ({tmp_path / 's' / 'beta.yaml'})",
    ]
    # With -o json the same events are JSON lines on stderr (tests/test_progress.py); stdout holds the envelope.
    again = run("apply", str(tmp_path / "s"), "-d", db_url, "-o", "json")
    assert [json.loads(line)["event"] for line in again.stderr.splitlines()] == [
        "MigrationStarted",
        "MigrationFinished",
        "MigrationStarted",
        "MigrationFinished",
    ]


def test_a_refused_change_stops_the_run_before_any_migration(db_url: str, tmp_path: Path) -> None:
    """The gate plans every spec first: a later refusal must not leave earlier specs applied."""
    assert run("apply", str(_schema(tmp_path / "v1", "zulu")), "-d", db_url).exit_code == 0
    before = tables(db_url)
    retyped = ITEMS.replace("type: String", "type: Int").replace("1.0.0", "2.0.0")
    _schema(tmp_path / "v2", "alpha")
    _schema(tmp_path / "v2", "zulu", retyped)
    events: list[reconcile.MigrationEvent] = []
    engine = Engine(db_url)
    try:
        with pytest.raises(ProblemError) as raised:
            reconcile.reconcile(engine, reconcile.load([str(tmp_path / "v2")]), events.append)
        assert engine.registration("alpha") is None
    finally:
        engine.close()
    assert raised.value.kind == Kind.REFUSED
    assert [p.code for p in raised.value.problems] == ["ES312"]  # String -> Int: no sure conversion
    assert raised.value.problems[0].file == str(tmp_path / "v2" / "zulu.yaml")
    assert events == []
    assert tables(db_url) == before


RACE_V1 = """
pluginId: racer
version: 1.0.0
tables:
  - name: item
    fields: [{name: title, type: String}, {name: note, type: Text}]
"""
RACE_V2 = RACE_V1.replace("1.0.0", "2.0.0").replace(", {name: note, type: Text}", "")


def test_two_pipelines_racing_an_approved_drop_run_it_once_and_both_report_the_truth(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two operators (a rolling update) reconcile the same approved v2 that drops `note`. The loser planned
    from v1; the winner commits v2 before the loser counts what its plan drops. The loser must see that its
    base moved, plan again (nothing left to do) and report v2 applied — not fail on the dropped column."""
    (tmp_path / "v1").mkdir()
    v1 = write_schema(tmp_path / "v1", "racer", RACE_V1)
    assert run("apply", str(v1), "-d", db_url).exit_code == 0
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'racer', 'item')} (title, note) VALUES ('a', 'x')")
    (tmp_path / "v2").mkdir()
    v2 = write_schema(tmp_path / "v2", "racer", RACE_V2)
    plan_hash = run("plan", str(v2), "-d", db_url, "-o", "json").item()["hash"]
    v2.write_text(v2.read_text() + f"  approvedPlanHash: {plan_hash}\n")
    count_all = checks.count_all
    raced: list[list[ApplyResult]] = []

    def winner_commits_first(engine: Engine, plugin_id: str, wanted: Any) -> list[int]:
        if not raced:  # the loser is about to count from its v1 plan: the other pipeline wins now
            raced.append([])
            other = Engine(db_url)
            try:
                raced[0] = reconcile.reconcile(other, reconcile.load([str(v2)]), lambda _: None)
            finally:
                other.close()
        return count_all(engine, plugin_id, wanted)

    monkeypatch.setattr(checks, "count_all", winner_commits_first)
    engine = Engine(db_url)
    try:
        results = reconcile.reconcile(engine, reconcile.load([str(v2)]), lambda _: None)
        registration = engine.registration("racer")
        history = engine.history("racer")
    finally:
        engine.close()
    assert [r.changed for r in raced[0]] == [True]  # the winner ran the drop
    assert [r.changed for r in results] == [False]  # the loser found it done
    assert registration is not None and registration.version == "2.0.0"
    assert [(h.version, h.status) for h in history if h.kind == "apply"] == [
        ("1.0.0", "executed"),
        ("2.0.0", "executed"),
    ]


def test_only_the_pipeline_reads_a_snapshot() -> None:
    """Every driver starts from ``propose``: no shell or other part assembles snapshot → check → plan itself."""
    package = Path(reconcile.__file__).parents[1]
    readers = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py") if "Snapshot.take(" in path.read_text()
    )
    assert readers == ["reconcile/pipeline.py"]


NOTED = ITEMS.replace("type: String}}]", "type: String}}, {{name: note, type: Text}}]")
NOTE_DROPPED = ITEMS.replace("1.0.0", "2.0.0")


def test_the_operator_reads_the_registration_from_the_run_and_starts_only_what_changes(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """controller.database.apply: one snapshot per run, no registry read before or after it; the result
    carries the registration the migration left, or found when there was nothing to do."""
    from extschema.controller import database

    (loaded,) = reconcile.load([str(_schema(tmp_path / "v1", "alpha"))])
    takes: list[int] = []
    take = reconcile.Snapshot.take.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(reconcile.Snapshot, "take", classmethod(lambda cls, *a: takes.append(1) or take(cls, *a)))
    started: list[str] = []
    engine = Engine(db_url)
    try:
        first = database.apply(engine, loaded, [], lambda: started.append("first"))
        again = database.apply(engine, loaded, [], lambda: started.append("again"))
        stored = engine.registration("alpha")
    finally:
        engine.close()
    assert takes == [1, 1]
    assert started == ["first"]  # a re-apply with nothing to do posts no MigrationStarted
    assert first.changed and not again.changed
    assert first.registration == again.registration == stored
    assert (
        stored is not None
        and stored.version == "1.0.0"
        and [t.strip('"') for t in stored.tables] == [ext_table(db_url, "alpha", "item").replace('"', "")]
    )


def test_a_waiting_plan_is_linted_from_the_proposal_it_was_refused_with(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ApprovalRequired carries the run's Proposal: the operator's pendingPlan lint plans nothing again."""
    from extschema.controller import database
    from extschema.engine import lint as squawk

    assert run("apply", str(_schema(tmp_path / "v1", "alpha", NOTED)), "-d", db_url).exit_code == 0
    (loaded,) = reconcile.load([str(_schema(tmp_path / "v2", "alpha", NOTE_DROPPED))])
    engine = Engine(db_url)
    try:
        with pytest.raises(reconcile.ApprovalRequired) as caught:
            database.apply(engine, loaded, [], lambda: None)
        waiting = caught.value
        assert waiting.proposal is not None
        (item,) = waiting.proposal.items
        assert [p.hash for p in waiting.pending] == [item.reviewed.hash]
        assert item.plan.describe() == ["drop column item.note"] and item.preview.all_statements
        monkeypatch.setattr(reconcile.Snapshot, "take", None)  # planning again would fail
        linted: list[Any] = []
        monkeypatch.setattr(squawk, "lint", lambda rendered, name, *_: linted.append(rendered) or [])
        assert database.lint(engine, waiting, "alpha") == []
        assert database.lint(engine, waiting, "another") == []
    finally:
        engine.close()
    assert linted == [item.preview]
