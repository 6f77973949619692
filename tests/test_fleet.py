"""One ExtensionSchema over a fleet of databases (spec.targetSelector, spec.rollout), end to end.

A real kube-apiserver, the operator as a subprocess, and one real PostgreSQL server with several
databases: one DatabaseTarget per database. Evidence comes from the resource's status and events and
from each database's migration registry.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from extschema.engine.connection import lock_key
from tests import test_operator_e2e as e2e

pytest_plugins = ["tests.controlplane.fixtures"]
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.postgres]
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator

PLUGIN = "fleet"
TABLE = f"ext_{PLUGIN}.item"


@pytest.fixture
def databases(pg_admin_url: str) -> Iterator[Callable[[int], list[str]]]:
    """Creates *n* fresh databases on the test server; dropped afterwards."""
    made: list[str] = []

    def create(n: int) -> list[str]:
        urls = []
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            for _ in range(n):
                name = f"f_{uuid.uuid4().hex[:12]}"
                conn.execute(f'CREATE DATABASE "{name}"')
                made.append(name)
                urls.append(f"{pg_admin_url.rpartition('/')[0]}/{name}")
        return urls

    yield create
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def target(name: str, url: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "DatabaseTarget",
        "metadata": {"name": name, "labels": labels},
        "spec": {"url": url},
    }


def fleet_doc(fields: list[dict[str, Any]], version: str = "1.0.0", **spec: Any) -> dict[str, Any]:
    doc = e2e.schema_doc("shop", PLUGIN, [{"name": "item", "fields": fields}], **spec)
    doc["spec"]["version"] = version
    return doc


def entries(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in (body.get("status") or {}).get("targets") or []}


def reason_of(entry: dict[str, Any]) -> str | None:
    return next((c.get("reason") for c in entry.get("conditions") or [] if c["type"] == "Ready"), None)


def has_table(url: str) -> bool:
    return TABLE in e2e.tables(url)


def history(url: str) -> list[tuple[str, str, Any, Any]]:
    """(version, status, execution_start, execution_end) of the plugin's migrations, oldest first."""
    if not e2e.execute(url, "SELECT to_regclass('extschema.extension_migrations')")[0][0]:
        return []  # never touched
    rows = e2e.execute(
        url,
        "SELECT version, status, execution_start, execution_end FROM extschema.extension_migrations "
        f"WHERE plugin_id = '{PLUGIN}' ORDER BY execution_start",
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


TITLE = {"name": "title", "type": "String"}
NOTE = {"name": "note", "type": "Text"}


def test_canary_first_a_failure_pauses_resume_catch_up_deselect_and_delete(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], databases: Callable[[int], list[str]], pg_admin_url: str
) -> None:
    urls = databases(6)
    names = [f"site-{i}" for i in range(6)]
    # site-2 holds a table the plugin would create, made by hand: its migration is refused.
    e2e.execute(urls[2], f"CREATE SCHEMA ext_{PLUGIN}", f"CREATE TABLE {TABLE} (id int)")
    kube.apply(
        *(
            target(n, u, tier="prod", **({"canary": "yes"} if n == "site-0" else {}))
            for n, u in zip(names[:5], urls[:5], strict=True)
        )
    )
    run_operator(pg_admin_url)
    rollout = {"maxParallel": 2, "canary": {"matchLabels": {"canary": "yes"}}}
    kube.apply(fleet_doc([TITLE], targetSelector={"matchLabels": {"tier": "prod"}}, rollout=rollout))
    body = kube.wait_until(
        "shop", lambda b: (b.get("status") or {}).get("rollout", {}).get("phase") == "Paused", "paused"
    )
    status = body["status"]
    # Waves: [site-0] (canary), [site-1, site-2], [site-3, site-4]: site-2 fails and pauses the rollout.
    assert status["rollout"]["pausedAt"] == "site-2" and status["targetsReady"] == "2/5"
    ready = kube.ready(body)
    assert ready["reason"] == "RolloutPaused" and "site-2" in ready["message"]
    assert "extschema.io/resume" in ready["message"] and "Stalled" in e2e.condition_types(body)
    by_name = entries(body)
    assert [reason_of(by_name[n]) for n in names[:2]] == ["Applied"] * 2
    assert reason_of(by_name["site-2"]) not in ("Applied", "RolloutWaiting", None)
    assert [reason_of(by_name[n]) for n in names[3:5]] == ["RolloutWaiting"] * 2
    # The paused wave ran nothing; the canary finished before any other target started.
    assert not history(urls[2]) and not history(urls[3]) and not history(urls[4])
    canary_end = history(urls[0])[0][3]
    assert history(urls[1])[0][2] >= canary_end
    assert by_name["site-0"]["appliedVersion"] == "1.0.0" and by_name["site-0"]["lastMigration"]["id"] == "0001"
    # The cause removed, the annotation resumes it: every target Ready.
    e2e.execute(urls[2], f"DROP SCHEMA ext_{PLUGIN} CASCADE")
    kube("annotate", "exts/shop", "extschema.io/resume=first", "--overwrite")
    body = kube.wait_until("shop", lambda b: (b.get("status") or {}).get("targetsReady") == "5/5", "5/5")
    assert body["status"]["rollout"]["phase"] == "Complete" and body["status"]["rollout"]["resumed"] == "first"
    assert kube.ready(body)["reason"] == "Applied" and all(has_table(u) for u in urls[:5])
    # A DatabaseTarget created later with matching labels catches up by itself.
    kube.apply(target(names[5], urls[5], tier="prod"))
    body = kube.wait_until("shop", lambda b: (b.get("status") or {}).get("targetsReady") == "6/6", "6/6")
    assert has_table(urls[5]) and reason_of(entries(body)["site-5"]) == "Applied"
    # De-selected (labels changed): the plugin leaves that database (deletionPolicy Drop).
    kube("label", "dbt/site-1", "tier=dev", "--overwrite")
    body = kube.wait_until(
        "shop", lambda b: "site-1" not in entries(b) and kube.ready(b).get("reason") == "Applied", "site-1 de-selected"
    )
    assert body["status"]["targetsReady"] == "5/5" and not has_table(urls[1])
    assert not e2e.execute(urls[1], f"SELECT 1 FROM extschema.extension_schemas WHERE plugin_id = '{PLUGIN}'")
    # A DatabaseTarget deleted: its entry goes, the event says what was left there (untouched).
    kube("delete", "dbt/site-2")
    body = kube.wait_until(
        "shop", lambda b: "site-2" not in entries(b) and kube.ready(b).get("reason") == "Applied", "site-2 gone"
    )
    assert has_table(urls[2]) and body["status"]["targetsReady"] == "4/4"
    reasons = {e["reason"]: e["message"] for e in kube.events("shop")}
    assert "site-2" in reasons["TargetGone"] and "left in its database" in reasons["TargetGone"]
    assert "site-1" in reasons["TargetDeselected"] and "RolloutWave" in reasons
    # Deleting the resource takes the plugin off every target it holds; one that cannot be reached keeps the
    # finalizer (and its entry) until it can, the others are done at once.
    unreachable = {"spec": {"url": pg_admin_url.rpartition(":")[0] + ":1/nowhere"}}
    kube("patch", "dbt/site-3", "--type=merge", "-p", json.dumps(unreachable))
    kube("delete", "exts/shop", "--wait=false")
    body = kube.wait_until("shop", lambda b: list(entries(b)) == ["site-3"], "only site-3 left")
    assert reason_of(entries(body)["site-3"]) == "DatabaseUnavailable" and body["metadata"].get("finalizers")
    assert not any(has_table(urls[i]) for i in (0, 4, 5)) and has_table(urls[3]) and has_table(urls[2])
    kube("patch", "dbt/site-3", "--type=merge", "-p", json.dumps({"spec": {"url": urls[3]}}))
    kube.gone("shop", timeout="120s")
    assert not has_table(urls[3]) and has_table(urls[2])


def test_one_approval_applies_a_destructive_change_on_every_target(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], databases: Callable[[int], list[str]], pg_admin_url: str
) -> None:
    urls = databases(4)
    kube.apply(*(target(f"shard-{i}", u, app="shop") for i, u in enumerate(urls)))
    run_operator(pg_admin_url)
    selector = {"matchLabels": {"app": "shop"}}
    kube.apply(fleet_doc([TITLE, NOTE], targetSelector=selector, rollout={"maxParallel": 4}))
    kube.wait_until("shop", lambda b: (b.get("status") or {}).get("targetsReady") == "4/4", "4/4")
    for i, url in enumerate(urls):  # shard-i holds i+1 notes
        e2e.execute(url, *(f"INSERT INTO {TABLE} (title, note) VALUES ('t', 'n{j}')" for j in range(i + 1)))
    kube.apply(fleet_doc([TITLE], "2.0.0", targetSelector=selector, rollout={"maxParallel": 4}))
    body = kube.wait_until(
        "shop",
        lambda b: all(reason_of(e) == "ApprovalRequired" for e in entries(b).values()) and len(entries(b)) == 4,
        "every target waiting",
    )
    plans = {n: e["pendingPlan"] for n, e in entries(body).items()}
    hashes = {p["hash"] for p in plans.values()}
    assert len(hashes) == 1  # the same base everywhere: one hash
    (plan_hash,) = hashes
    assert body["status"]["pendingPlan"]["hash"] == plan_hash and plan_hash in kube.ready(body)["message"]
    assert all(p["destructive"] for p in plans.values())
    # Each target's summary counts its own rows.
    for i in range(4):
        assert f"{i + 1} " in plans[f"shard-{i}"]["summary"], plans[f"shard-{i}"]["summary"]
    assert len({p["summary"] for p in plans.values()}) == 4
    assert all("note" in e2e.columns(u, TABLE) for u in urls)  # nothing ran
    kube.apply(
        fleet_doc([TITLE], "2.0.0", targetSelector=selector, rollout={"maxParallel": 4}, approvedPlanHashes=[plan_hash])
    )
    body = kube.wait_until("shop", lambda b: kube.ready(b).get("reason") == "Applied", "Applied")
    assert body["status"]["targetsReady"] == "4/4" and "pendingPlan" not in body["status"]
    assert all("note" not in e2e.columns(u, TABLE) for u in urls)
    assert all([h[:2] for h in history(u)] == [("1.0.0", "executed"), ("2.0.0", "executed")] for u in urls), [
        history(u) for u in urls
    ]
    assert {e["appliedVersion"] for e in entries(body).values()} == {"2.0.0"}


@contextlib.contextmanager
def holding_migration_lock(url: str) -> Iterator[psycopg.Connection[Any]]:
    """Holds the plugin's migration lock in *url*: a migration there waits (inside its transaction)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", lock_key(PLUGIN))
        yield conn


def wait_for(done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def lock_waiters(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_new_spec_version_interrupts_a_rollout_between_waves(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], databases: Callable[[int], list[str]], pg_admin_url: str
) -> None:
    urls = databases(4)
    kube.apply(*(target(f"db-{i}", u, app="shop") for i, u in enumerate(urls)))
    run_operator(pg_admin_url)
    selector = {"matchLabels": {"app": "shop"}}
    with holding_migration_lock(urls[1]) as conn:
        kube.apply(fleet_doc([TITLE], targetSelector=selector, rollout={"maxParallel": 1}))
        # Wave 2 (db-1) is inside its migration, waiting for the lock; db-0 is done.
        wait_for(lambda: lock_waiters(conn) > 0, "db-1's migration waiting for the lock")
        assert [h[0] for h in history(urls[0])] == ["1.0.0"] and not history(urls[2])
        kube.apply(fleet_doc([TITLE, NOTE], "2.0.0", targetSelector=selector, rollout={"maxParallel": 1}))
    # Released: db-1's migration of 1.0.0, holding the lock at last, reads the resource again and finds
    # generation 2: it changes nothing (ES422, one transaction never begun). The rollout stops for generation 2
    # and starts again: db-1, db-2 and db-3 never see 1.0.0.
    body = kube.wait_until(
        "shop",
        lambda b: kube.ready(b).get("reason") == "Applied" and b["status"].get("observedGeneration") == 2,
        "generation 2 Applied",
    )
    assert body["status"]["targetsReady"] == "4/4"
    assert [h[0] for h in history(urls[0])] == ["1.0.0", "2.0.0"]
    assert [h[0] for h in history(urls[1])] == ["2.0.0"]
    assert [h[0] for h in history(urls[2])] == ["2.0.0"] and [h[0] for h in history(urls[3])] == ["2.0.0"]
    assert all(h[1] == "executed" for u in urls for h in history(u))
