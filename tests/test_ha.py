"""Several operator replicas with kopf peering (``extschema run --peering NAME``, docs/ha.md), end to end.

A real kube-apiserver and PostgreSQL, two ``python -m extschema run`` processes sharing one peering object with
their default (start-time) priorities. The active replica is killed (SIGKILL) or frozen (SIGSTOP, a lost node)
in the middle of a slow migration: a raw SQL step that inserts one row after ``pg_sleep``. The standby takes
over, every resource ends Ready, and the registry shows each migration applied exactly once (the row too): the
plugin's advisory lock and the stale-plan check under it, not peering, prevent a double application.
Takeover times are printed (``-s``), never asserted.
"""

from __future__ import annotations

import datetime
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from extschema.controller import peering
from tests import test_operator_e2e as e2e
from tests import test_rbac as rbac
from tests.controlplane import Cluster
from tests.controlplane.cluster import free_port
from tests.helpers import execute, run

crds, kube = e2e.crds, e2e.kube  # fixtures

PEERING = "extschema-ha-test"
#: Seconds the slow migration's raw SQL step sleeps: long enough to kill the replica in the middle of it.
SLEEP_S = 8
#: Generous: a takeover is expected within ~10 s, a migration within seconds (tests never assert timings).
TIMEOUT_S = 120


def role_at(readyz: str) -> str:
    """active, standby or unknown from a replica's /readyz (empty while it does not answer)."""
    try:
        with urllib.request.urlopen(readyz, timeout=5) as answer:
            body: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return ""
    return str((body.get("peering") or {}).get("role", ""))


class Replica(e2e.Operator):
    """One replica: ``run --peering NAME`` (no --standalone) with its readiness endpoint."""

    def __init__(self, cluster: Cluster, namespace: str, database: str, log: Path) -> None:
        self.readyz = f"http://127.0.0.1:{free_port()}/readyz"
        super().__init__(cluster, namespace, database, log, f"--readiness={self.readyz}")
        self.mode = ("--peering", PEERING)

    def role(self) -> str:
        return role_at(self.readyz)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


@pytest.fixture
def replicas(crds: Cluster, kube: e2e.Kube, pg_url: str, tmp_path: Path) -> Iterator[Callable[[], Replica]]:
    crds.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica(kube.cluster, kube.ns, pg_url, tmp_path / f"replica-{len(started)}.log").start()
        started.append(replica)
        return replica

    yield start
    print(kube("get", "kopfpeering", PEERING, "-o", "yaml", check=False).stdout)
    for replica in reversed(started):  # standbys first: none takes over during the teardown
        if replica.proc is not None and replica.proc.poll() is None:
            replica.signal(signal.SIGCONT)  # a frozen one could not handle SIGTERM
        replica.stop()
        print(f"--- {replica.log.name} ---\n{replica.tail(60)}")  # shown by pytest when the test failed


def wait_for(what: str, done: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = done()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def active_and_standby(pair: list[Replica]) -> tuple[Replica, Replica]:
    def roles() -> tuple[Replica, Replica] | None:
        seen = {replica.role(): replica for replica in pair}
        return (seen["active"], seen["standby"]) if set(seen) == {"active", "standby"} else None

    found: tuple[Replica, Replica] = wait_for("one active replica and one standby", roles)
    return found


def widened(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2.0.0 of a simple() schema: a nullable column more (its ALTER TABLE waits for the test's lock)."""
    spec = {**doc["spec"], "version": "2.0.0"}
    spec["tables"] = [
        {"name": "item", "fields": [{"name": "title", "type": "String"}, {"name": "note", "type": "String"}]}
    ]
    return {**doc, "spec": spec}


def altering(url: str) -> bool:
    """Some replica's migration transaction waits for the test's lock in its ALTER TABLE."""
    rows = execute(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND query LIKE 'ALTER TABLE%' AND pid <> pg_backend_pid()",
    )
    return bool(rows[0][0])


def history(url: str) -> list[tuple[str, str, str]]:
    rows = execute(url, "SELECT plugin_id, migration_id, status FROM extschema.extension_migrations")
    return sorted((r[0], r[1], r[2]) for r in rows)


def run_failover(kube: e2e.Kube, url: str, start: Callable[[], Replica], sig: int) -> dict[str, float]:
    """Two replicas; the active one stopped by *sig* in the middle of a migration that waits for a table lock the
    test holds; the standby takes over and finishes it once the lock is released. Returns the measured times."""
    e2e.load_core(url)
    pair = [start()]
    wait_for("the first replica active", lambda: pair[0].role() == "active")
    pair.append(start())
    active, standby = active_and_standby(pair)
    assert active is pair[0]  # the default priorities: the older replica wins, the newer stands by
    kube.apply(slow := e2e.simple("slow", "slow"))
    kube.wait("slow")

    with psycopg.connect(url) as holder:  # SHARE: reads go on, the ALTER TABLE waits (mid-migration)
        holder.execute("SET idle_in_transaction_session_timeout = 0")
        holder.execute("LOCK TABLE ext_slow.item IN SHARE MODE")
        before = [e2e.simple(f"before-{i}", f"before{i}") for i in range(3)]
        kube.apply(*before, widened(slow))
        wait_for("the migration to 2.0.0 waiting in the active replica", lambda: altering(url))
        stopped = time.monotonic()
        active.signal(sig)
        after = [e2e.simple(f"after-{i}", f"after{i}") for i in range(2)]
        kube.apply(*after)  # created while no replica is active
        wait_for("the standby active", lambda: standby.role() == "active")
        took_over = time.monotonic() - stopped
    for doc in [*before, *after]:
        kube.wait(doc["metadata"]["name"], timeout=f"{TIMEOUT_S}s")
    kube.wait_until("slow", lambda b: b["status"].get("appliedVersion") == "2.0.0", "2.0.0 applied", TIMEOUT_S)
    kube.wait("slow", timeout=f"{TIMEOUT_S}s")
    all_ready = time.monotonic() - stopped

    # Zero double application: every migration once in the registry (0001 and 0002 of slow), all executed.
    expected = sorted([(d["spec"]["pluginId"], "0001") for d in [*before, *after, slow]] + [("slow", "0002")])
    recorded = history(url)
    assert [row[:2] for row in recorded] == expected, recorded
    assert {row[2] for row in recorded} == {"executed"}, recorded
    assert "note" in e2e.columns(url, "ext_slow.item")
    assert kube.get("slow")["status"]["lastMigration"]["id"] == "0002"
    return {"takeover_s": round(took_over, 1), "all_ready_s": round(all_ready, 1)}


@pytest.mark.k8s
@pytest.mark.postgres
@pytest.mark.slow
def test_standby_takes_over_after_sigkill_mid_migration_and_nothing_is_applied_twice(
    kube: e2e.Kube, pg_url: str, replicas: Callable[[], Replica]
) -> None:
    figures = run_failover(kube, pg_url, replicas, signal.SIGKILL)
    print(f"HA takeover after SIGKILL: {json.dumps(figures)}")


@pytest.mark.k8s
@pytest.mark.postgres
@pytest.mark.slow
def test_standby_takes_over_from_a_frozen_replica_once_its_transaction_is_ended(
    kube: e2e.Kube, pg_url: str, replicas: Callable[[], Replica]
) -> None:
    """SIGSTOP: a lost node. Its connection stays open and its transaction holds the plugin's lock until the server
    ends it: with idle_in_transaction_session_timeout (docs/ha.md recommends it for the operator's login) the
    standby finishes the migration; without, it would wait for the lost node's TCP connection to time out."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{conn.info.dbname}\" SET idle_in_transaction_session_timeout = '5s'")
    figures = run_failover(kube, pg_url, replicas, signal.SIGSTOP)
    print(f"HA takeover after SIGSTOP: {json.dumps(figures)}")


def test_peering_and_standalone_are_exclusive_and_priority_needs_peering() -> None:
    both = run("run", "-A", "--standalone", "--peering", "x")
    assert both.exit_code == 2 and "--standalone" in both.stderr and "--peering" in both.stderr
    alone = run("run", "-A", "--priority", "5")
    assert alone.exit_code == 2 and "--priority needs --peering" in alone.stderr


@pytest.mark.k8s
@pytest.mark.helm
@pytest.mark.slow
def test_replicas_peer_with_exactly_the_chart_rbac(crds: Cluster, tmp_path: Path) -> None:
    """replicaCount 2, two watched namespaces: the Deployment's args with nothing but the release's ServiceAccount
    token create a KopfPeering in each watched namespace, keep it alive and reconcile; no call is refused."""
    crds.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")

    def values(names: list[str]) -> list[str]:
        ports = [f"healthPort={free_port()}", f"readinessPort={free_port()}"]
        watched = f"watch.namespaces={{{names[1]},{names[2]}}}"
        return [a for v in ["replicaCount=2", watched, *ports] for a in ("--set", v)]

    with rbac._installed(crds, 4, 2, values) as release:
        name = next(a.split("=", 1)[1] for a in release.container["args"] if a.startswith("--peering="))
        namespace = release.watched[0]
        database = tmp_path / "app.db"
        rbac._url_secret(crds, namespace, f"sqlite:///{database}")
        assert rbac.can(crds, release, "create", "kopfpeerings.kopf.dev", "-n", namespace)
        assert not rbac.can(crds, release, "delete", "kopfpeerings.kopf.dev", "-n", namespace)
        assert not rbac.can(crds, release, "create", "clusterkopfpeerings.kopf.dev")
        with rbac._operator(crds, release, tmp_path):
            crds.kubectl("apply", "-f", "-", input=rbac._kustomized(crds, namespace))
            crds.kubectl("-n", namespace, "wait", "--for=condition=Ready", "exts/work-order-tags", "--timeout=90s")
            for watched in release.watched:
                peers = crds.kubectl("-n", watched, "get", "kopfpeering", name, "-o", "json").stdout
                assert len(json.loads(peers).get("status") or {}) == 1, peers  # this replica's keep-alive
            ports = {port["name"]: port["containerPort"] for port in release.container["ports"]}
            readyz = f"http://127.0.0.1:{ports['ready']}/readyz"
            assert wait_for("the replica active", lambda: role_at(readyz) == "active")
            crds.kubectl("-n", namespace, "delete", "exts/work-order-tags", "--timeout=60s")


def test_default_priorities_let_the_older_replica_win_and_never_tie() -> None:
    started = 1_796_000_000.0
    older = peering.default_priority(started, draw=999)
    assert peering.default_priority(started + 0.001, draw=0) < older  # one millisecond later: lower, whatever drawn
    same_ms = {peering.default_priority(started, draw=d) for d in range(1000)}
    assert len(same_ms) == 1000  # in one millisecond only the same three digits tie
    assert 0 < older < 2**53  # exact in every JSON reader


def test_role_follows_kopf_a_live_higher_or_equal_peer_pauses() -> None:
    now = datetime.datetime(2026, 12, 7, 6, 0, tzinfo=datetime.UTC)

    def peer(priority: int, seen_s_ago: float) -> dict[str, Any]:
        seen = now - datetime.timedelta(seconds=seen_s_ago)
        return {"priority": priority, "lifetime": peering.LIFETIME_S, "lastseen": seen.isoformat()}

    me = {"me": peer(5, 0)}
    assert peering.role_in({**me, "other": peer(4, 1)}, "me", 5, now) == "active"
    assert peering.role_in({**me, "other": peer(6, 1)}, "me", 5, now) == "standby"
    assert peering.role_in({**me, "other": peer(5, 1)}, "me", 5, now) == "standby"  # a tie pauses both in kopf
    assert peering.role_in({**me, "other": peer(6, peering.LIFETIME_S + 1)}, "me", 5, now) == "active"  # dead
    assert peering.role_in({**me, "other": "garbage"}, "me", 5, now) == "active"
