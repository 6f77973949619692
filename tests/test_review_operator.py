"""Adversarial review of the operator side of safe evolution (issues 8 and 9): each test failed before its fix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest

from extschema import reconcile
from extschema.controller import webhook
from extschema.controller.claims import ParsedSpecs, claim_of
from extschema.controller.runtime import memo_for, runtime
from extschema.controller.settings import Settings
from extschema.engine import Engine, drift
from extschema.problems import ProblemError
from tests.helpers import execute, ext_table, run, write_schema

V1 = """
pluginId: race
version: 1.0.0
driftPolicy: Repair
tables:
  - name: item
    fields: [{name: title, type: String}, {name: note, type: Text}]
"""
V2 = V1.replace("1.0.0", "2.0.0").replace(", {name: note, type: Text}", "")


def _columns(url: str, plugin: str, table: str) -> set[str]:
    if url.startswith("sqlite"):
        return {row[1] for row in execute(url, f"PRAGMA table_info({ext_table(url, plugin, table)})")}
    rows = execute(
        url,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t",
        {"s": f"ext_{plugin}", "t": table},
    )
    return {row[0] for row in rows}


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _approved_apply(url: str, path: Path) -> None:
    planned = run("plan", str(path), "-d", url, "-o", "json")
    found: Any = planned.json()
    plan_hash = found["hash"] if "hash" in found else found["plans"][0]["hash"]
    applied = run("apply", str(path), "-d", url, "--approve", plan_hash)
    assert applied.exit_code == 0, applied.stdout + applied.stderr


def test_a_repair_racing_an_approved_drop_does_not_recreate_the_dropped_column(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift loop reads the registration (v1), an approved v2 drops `note` meanwhile, then the repair
    takes the lock: it must repair against what is registered now, not re-create the column v2 dropped."""
    first = run("apply", str(write_schema(_dir(tmp_path / "v1"), "race", V1)), "-d", db_url)
    assert first.exit_code == 0, first.stdout + first.stderr
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'race', 'item')} (title, note) VALUES ('a', 'x'), ('b', 'y')")
    expected_of = drift._expected

    def racing(engine: Engine, registrations: Any, chosen: Any) -> Any:
        expected = expected_of(engine, registrations, chosen)  # v1, as read before the lock
        _approved_apply(db_url, write_schema(_dir(tmp_path / "v2"), "race", V2))  # commits while the check runs
        return expected

    monkeypatch.setattr(drift, "_expected", racing)
    engine = Engine(db_url)
    try:
        drift.repair(engine, "race")
    finally:
        engine.close()
    assert _columns(db_url, "race", "item") == {"id", "title"}  # the approved drop stays dropped
    kinds = [m["kind"] for m in run("history", "race", "-d", db_url, "-o", "json").json()["migrations"]]
    assert "repair" not in kinds, kinds


def _object(name: str, **spec: Any) -> reconcile.Loaded:
    body = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"pluginId": "keep", "version": "1.0.0", "tables": [{"name": "item", "fields": TITLE}], **spec},
    }
    return reconcile.from_object(body, f"ns/{name}")


TITLE = [{"name": "title", "type": "String"}]
NOTE = [{"name": "note", "type": "Text"}]


def _quiet(event: reconcile.MigrationEvent) -> None:
    """The reconcile's progress events are not what these tests check."""


def test_switching_deletion_policy_to_retain_is_not_a_schema_change(db_url: str) -> None:
    """Before deleting a plugin through Git one sets `deletionPolicy: Retain` to keep its data: that changes how
    the plugin is deleted, not its schema. It was refused with ES310 (the webhook refused the `kubectl apply`,
    and without the webhook the resource went Stalled/RefusedChange — Argo CD: Degraded)."""
    engine = Engine(db_url)
    try:
        reconcile.reconcile(engine, [_object("keep")], _quiet)
        execute(db_url, f"INSERT INTO {ext_table(db_url, 'keep', 'item')} (title) VALUES ('a')")
        retain = _object("keep", deletionPolicy="Retain")
        assert "needs approval" not in " ".join(webhook.admit(engine, retain, [], None))  # admitted
        (result,) = reconcile.reconcile(engine, [retain], _quiet)  # the operator's reconcile runs it
        registration = engine.registration("keep")
        assert registration is not None and registration.spec.deletion_policy == "Retain"
        assert registration.version == "1.0.0" and result.migration_id is not None
        # A real schema change under the same version is still refused.
        with pytest.raises(ProblemError) as refused:
            reconcile.reconcile(
                engine,
                [_object("keep", deletionPolicy="Retain", tables=[{"name": "item", "fields": [*TITLE, *NOTE]}])],
                _quiet,
            )
        assert {p.code for p in refused.value.problems} == {"ES310"}
    finally:
        engine.close()
    assert execute(db_url, f"SELECT title FROM {ext_table(db_url, 'keep', 'item')}") == [("a",)]


def _body(name: str, uid: str, created: str | None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid, "generation": 1}
    if created is not None:
        meta["creationTimestamp"] = created
    full = {"pluginId": "shared", "version": "1.0.0", "tables": [{"name": "item", "fields": TITLE}], **spec}
    return {"apiVersion": "extschema.io/v1alpha1", "kind": "ExtensionSchema", "metadata": meta, "spec": full}


def test_the_webhook_refuses_a_create_that_conflicts_with_an_older_resource_not_applied_yet(db_url: str) -> None:
    """An older resource claims pluginId `shared` but waits (DependencyNotReady): not in the registry yet. A new
    resource with the same pluginId loses to it in the reconcile (Stalled/Conflict), so the webhook must refuse
    it too. On CREATE the request has no creationTimestamp yet; the webhook took "" for it, sorted the new
    resource before every existing one, saw no older peer, and admitted it."""
    older = _body("first", "uid-1", "2026-01-01T00:00:00Z", dependsOn=["absent"])
    claims = claim_of(older, "ns", ParsedSpecs())
    memo = memo_for(Settings(default_database=db_url))
    new = _body("second", "", None)

    async def admit_create() -> None:
        await webhook.validate_schema(  # type: ignore[call-arg]
            body=new, spec=new["spec"], meta=new["metadata"], namespace="ns", dryrun=False, warnings=[],
            memo=memo, claims={key: [entry] for key, entry in claims.items()}, targets={}, old=None, new=new,
        )  # fmt: skip

    try:
        with pytest.raises(kopf.AdmissionError) as refused:
            asyncio.run(admit_create())
        assert "ns/first" in str(refused.value) and refused.value.code == 409, refused.value
    finally:
        runtime(memo).engines.close()
