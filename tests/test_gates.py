"""The approval gate: rewriting and destructive plans run only when their hash is approved."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from extschema import loading, planning, reconcile
from extschema.engine import Engine, Registration
from extschema.planning import safety
from extschema.problems import Kind, ProblemError
from tests.helpers import execute, ext_table, run, write_schema
from tests.specs import SHOP

NOTE = """
pluginId: shop
version: 2.0.0
tables:
  - name: order
    fields:
      - {name: title, type: String, required: true}
      - {name: note, type: String}
"""
#: NOTE without order.note, as a later version.
WITHOUT_NOTE = NOTE.replace("version: 2.0.0", "version: 3.0.0").replace("      - {name: note, type: String}\n", "")


def _loaded(tmp_path: Path, body: str = NOTE, approved: str | None = None) -> loading.Loaded:
    (item,) = loading.load([str(write_schema(tmp_path, "shop", body))])
    if approved is None:
        return item
    spec = item.spec.model_copy(update={"approved_plan_hash": approved})
    return dataclasses.replace(item, document=item.document.model_copy(update={"spec": spec}))


def _table(loaded: loading.Loaded, name: str = "order") -> planning.TableDef:
    return next(t for t in planning.resolve(loaded.spec, {}).tables if t.name == name)


def _drop_note(loaded: loading.Loaded) -> planning.Plan:
    """Dropping order.note: a destructive plan, built by hand (the gate must not depend on the diff)."""
    before = _table(loaded)
    note = next(c for c in before.columns if c.name == "note")
    after = dataclasses.replace(before, columns=tuple(c for c in before.columns if c.name != "note"))
    return planning.Plan("shop", (planning.DropColumn("shop", before, after, note),))


def _planned(loaded: loading.Loaded, plan: planning.Plan, base: str | None = "b" * 64) -> reconcile.Planned:
    """*plan* from a registration with the checksum *base* (None: the plugin is new)."""
    if base is None:
        return reconcile.Planned(loaded, None, plan)
    stamp = datetime.datetime.now(datetime.UTC)
    registration = Registration(
        "shop", loaded.owner, "1.0.0", loaded.spec, base, "active", None, [], stamp, stamp, stamp
    )
    return reconcile.Planned(loaded, registration, plan)


def _codes(error: ProblemError) -> list[str]:
    return [p.code for p in error.problems]


def test_a_safe_plan_needs_no_approval(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    plan = planning.Plan("shop", (planning.CreateIndex("shop", "order", planning.IndexDef(("title",))),))
    reviewed = reconcile.Reviewed.of(_planned(loaded, plan), [])
    assert reviewed.op_class == "safe" and not reviewed.needs_approval
    reconcile.authorize([reviewed])


def test_a_destructive_plan_waits_for_its_hash_with_the_count(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    planned = _planned(loaded, _drop_note(loaded))
    reviewed = reconcile.Reviewed.of(planned, [120])
    with pytest.raises(reconcile.ApprovalRequired) as caught:
        reconcile.authorize([reviewed])
    error = caught.value
    assert error.kind is Kind.APPROVAL and _codes(error) == ["ES307"]
    assert "drop column order.note (120 values)" in error.problems[0].message
    assert reviewed.hash in error.problems[0].message and error.problems[0].file == loaded.file
    (pending,) = error.pending
    assert pending.hash == reviewed.hash == safety.plan_hash("b" * 64, planned.plan)
    assert pending.destructive and pending.op_class == "destructive"
    assert pending.summary == "drop column order.note (120 values)"
    assert [op.dump() for op in pending.ops] == [
        {
            "kind": "drop_column",
            "description": "drop column order.note",
            "class": "destructive",
            "reason": "drops the column and its values",
            "check": {"kind": "values_lost", "table": "order", "column": "note", "count": 120},
            "moreChecks": [],
        }
    ]
    assert pending.dump()["class"] == "destructive" and pending.sql is None


def test_the_hash_approves_from_the_command_line_or_the_spec(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    reviewed = reconcile.Reviewed.of(_planned(loaded, _drop_note(loaded)), [3])
    reconcile.authorize([reviewed], approvals=[reviewed.hash])
    approved = _loaded(tmp_path, approved=reviewed.hash)
    reconcile.authorize([reconcile.Reviewed.of(_planned(approved, _drop_note(approved)), [3])])


def test_the_hash_names_the_base_and_the_plan(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    plan = _drop_note(loaded)
    one = _planned(loaded, plan).hash()
    assert one == _planned(loaded, plan).hash()
    assert _planned(loaded, plan, base="c" * 64).hash() != one
    assert _planned(loaded, planning.Plan("shop", plan.ops + plan.ops)).hash() != one


def test_an_approval_of_another_plan_is_ignored_and_named(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, approved="0123456789abcdef")
    reviewed = reconcile.Reviewed.of(_planned(loaded, _drop_note(loaded)), [5])
    with pytest.raises(reconcile.ApprovalRequired) as caught:
        reconcile.authorize([reviewed], approvals=["fedcba9876543210"])
    assert _codes(caught.value) == ["ES307", "ES308", "ES308"]
    own, given = caught.value.problems[1:]
    assert own.path == "spec.approvedPlanHash" and "0123456789abcdef" in own.message
    assert given.path == "--approve" and "fedcba9876543210" in given.message
    assert all(f"this plan is {reviewed.hash}" in p.message for p in (own, given))


def test_any_entry_of_approved_plan_hashes_approves(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    reviewed = reconcile.Reviewed.of(_planned(loaded, _drop_note(loaded)), [3])
    spec = loaded.spec.model_copy(update={"approved_plan_hashes": ["0123456789abcdef", reviewed.hash]})
    listed = dataclasses.replace(loaded, document=loaded.document.model_copy(update={"spec": spec}))
    reconcile.authorize([reconcile.Reviewed.of(_planned(listed, _drop_note(listed)), [3])])
    # Another base: another hash, which the list does not hold; both entries are named as stale.
    other = reconcile.Reviewed.of(_planned(listed, _drop_note(listed), base="c" * 64), [3])
    with pytest.raises(reconcile.ApprovalRequired) as caught:
        reconcile.authorize([other])
    assert [(p.code, p.path) for p in caught.value.problems] == [
        ("ES307", "spec"),
        ("ES308", "spec.approvedPlanHashes[0]"),
        ("ES308", "spec.approvedPlanHashes[1]"),
    ]
    assert f"this plan is {other.hash}" in caught.value.problems[2].message


def test_a_stale_command_line_approval_stops_even_a_safe_run(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    plan = planning.Plan("shop", (planning.CreateIndex("shop", "order", planning.IndexDef(("title",))),))
    reviewed = reconcile.Reviewed.of(_planned(loaded, plan), [])
    with pytest.raises(reconcile.ApprovalRequired) as caught:
        reconcile.authorize([reviewed], approvals=["0123456789abcdef"])
    assert _codes(caught.value) == ["ES308"] and caught.value.pending == ()
    assert f"shop {reviewed.hash}" in caught.value.problems[0].message
    # Nothing to change: nothing runs, whatever was approved.
    unchanged = reconcile.Reviewed.of(_planned(loaded, planning.Plan("shop", ())), [])
    reconcile.authorize([unchanged], approvals=["0123456789abcdef"])


def test_a_spec_approval_left_in_git_does_not_stop_a_safe_plan(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, approved="0123456789abcdef")
    plan = planning.Plan("shop", (planning.CreateIndex("shop", "order", planning.IndexDef(("title",))),))
    reconcile.authorize([reconcile.Reviewed.of(_planned(loaded, plan), [])])


def test_one_waiting_plan_stops_the_run_and_only_it_is_pending(tmp_path: Path) -> None:
    shop = _loaded(tmp_path)
    (notes,) = loading.load([str(write_schema(tmp_path, "other", SHOP.replace("shop", "other")))])
    safe = reconcile.Reviewed.of(_planned(notes, planning.plan(None, notes.spec, {}), base=None), [])
    waiting = reconcile.Reviewed.of(_planned(shop, _drop_note(shop)), [0])
    with pytest.raises(reconcile.ApprovalRequired) as caught:
        reconcile.authorize([safe, waiting])
    assert [p.plugin_id for p in caught.value.pending] == ["shop"]
    reconcile.authorize([safe, waiting], approvals=[waiting.hash])


def _narrowing(loaded: loading.Loaded, violating: int) -> reconcile.Reviewed:
    before = _table(loaded)
    title = next(c for c in before.columns if c.name == "title")
    narrow = dataclasses.replace(title, max_length=3)
    op = planning.AlterColumn("shop", before, before, title, narrow)
    check = safety.DataCheck("rows_violating", "order", "title", title, narrow)
    classified = safety.Classified(op, "destructive", "narrows the field", check)
    planned = _planned(loaded, planning.Plan("shop", (op,)))
    return reconcile.Reviewed(planned, planned.hash(), "destructive", (reconcile.CheckedOp(classified, (violating,)),))


def test_rows_violating_a_narrowed_field_are_refused_even_when_approved(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    reviewed = _narrowing(loaded, 7)
    with pytest.raises(ProblemError) as caught:
        reconcile.authorize([reviewed], approvals=[reviewed.hash])
    assert caught.value.kind is Kind.REFUSED and not isinstance(caught.value, reconcile.ApprovalRequired)
    (problem,) = caught.value.problems
    assert problem.code == "ES309" and "7 existing row(s) of order" in problem.message
    assert problem.path == "spec.tables[0].fields[0]" and problem.file == loaded.file
    fitting = _narrowing(loaded, 0)
    reconcile.authorize([fitting], approvals=[fitting.hash])


def test_review_counts_in_the_database_and_apply_says_what_it_backed_up(db_url: str, tmp_path: Path) -> None:
    """On a plan built by hand: the counts come from the rows, the approved plan runs and backs up first."""
    assert run("apply", str(write_schema(tmp_path, "shop", NOTE)), "-d", db_url).exit_code == 0
    table = ext_table(db_url, "shop", "order")
    for title, note in (("a", "x"), ("b", None), ("c", "y")):
        execute(db_url, f"INSERT INTO {table} (title, note) VALUES (:t, :n)", {"t": title, "n": note})
    base = _loaded(tmp_path)
    (tmp_path / "v3").mkdir()
    (loaded,) = loading.load([str(write_schema(tmp_path / "v3", "shop", WITHOUT_NOTE))])
    engine = Engine(db_url)
    try:
        registration = engine.registration("shop")
        planned = reconcile.Planned(loaded, registration, _drop_note(base))
        reviewed = reconcile.review(engine, planned)
        assert [op.counts for op in reviewed.ops] == [(2,)]
        assert reviewed.hash == safety.plan_hash(registration.checksum if registration else None, planned.plan)
        with pytest.raises(reconcile.ApprovalRequired):
            reconcile.authorize([reviewed])
        reconcile.authorize([reviewed], [reviewed.hash])
        refs = reconcile.reference_types(reconcile.Snapshot.take(engine, [loaded.spec]), [loaded.spec])
        result = reconcile.apply_one(engine, loaded, refs, planned, [reviewed.hash])
    finally:
        engine.close()
    assert result.changed and result.description[0] == "drop column order.note"
    (backed_up,) = result.description[1:]
    assert backed_up.startswith("backed up order.note to ")
    backup = backed_up.removeprefix("backed up order.note to ")
    assert sorted(execute(db_url, f"SELECT note FROM {backup} WHERE note IS NOT NULL")) == [("x",), ("y",)]
    assert execute(db_url, f"SELECT count(*) FROM {table}") == [(3,)]
