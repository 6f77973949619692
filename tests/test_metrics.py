"""The operator's Prometheus metrics: fed by real reconciles and by settle, read the way Prometheus does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from extschema import reconcile
from extschema.conditions import Outcome, sync_of
from extschema.controller import database, status
from extschema.controller.metrics import Metrics, sqlstate_class
from extschema.engine import Engine
from extschema.problems import ProblemError
from tests import test_chart as chart
from tests import test_operator_e2e as e2e

pytest_plugins = ["tests.controlplane.fixtures"]
REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "docs" / "grafana-dashboard.json"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def loaded(plugin: str, fields: list[dict[str, Any]], owner: str = "ns/a") -> reconcile.Loaded:
    body = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": owner.split("/")[1], "namespace": owner.split("/")[0]},
        "spec": {"pluginId": plugin, "version": "1.0.0", "tables": [{"name": "item", "fields": fields}]},
    }
    return reconcile.from_object(body, owner)


def schema_body(uid: str, kind: str = "ExtensionSchema") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"uid": uid, "namespace": "ns", "name": uid, "generation": 1}}


@pytest.fixture(autouse=True)
def no_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf, "event", lambda body, **kwargs: None)


def test_a_real_reconcile_counts_its_migration_and_its_duration(db_url: str) -> None:
    metrics = Metrics()
    engine = Engine(db_url)
    try:
        spec = loaded("metered", [{"name": "title", "type": "String"}])
        database.apply(engine, spec, [], lambda: None, metrics)
        assert value(metrics, "extschema_migrations_total", result="applied") == 1
        database.apply(engine, spec, [], lambda: None, metrics)  # nothing left to do
        assert value(metrics, "extschema_migrations_total", result="unchanged") == 1
        assert value(metrics, "extschema_reconcile_duration_seconds_count", result="ok") == 2
        # Another owner claiming the same plugin fails before any migration: an error, no migration.
        with pytest.raises(Exception, match="ES"):
            database.apply(engine, loaded("metered", [], owner="ns/b"), [], lambda: None, metrics)
        assert value(metrics, "extschema_reconcile_duration_seconds_count", result="error") == 1
        assert value(metrics, "extschema_migrations_total", result="applied") == 1
    finally:
        engine.close()


def settle(stats: status.Stats, body: dict[str, Any], outcome: Outcome) -> None:
    """The handlers' one way to end (a retried reason raises kopf.TemporaryError after reporting)."""
    with contextlib.suppress(kopf.TemporaryError):
        status.settle(kopf.Body(body), kopf.Patch(), outcome, stats)


def test_settle_feeds_resources_by_reason_approvals_conflicts_and_database_errors() -> None:
    stats = status.Stats()
    metrics = stats.metrics
    for uid, reason in (("a", "ApprovalRequired"), ("b", "Conflict"), ("c", "Applied"), ("d", "Applied")):
        settle(stats, schema_body(uid), Outcome(reason, "m"))
    assert value(metrics, "extschema_resources", reason="Applied") == 2
    assert value(metrics, "extschema_resources", reason="InvalidSpec") == 0  # every reason is shown, also at 0
    assert value(metrics, "extschema_pending_approvals") == 1
    assert value(metrics, "extschema_conflicts") == 1
    # b wins after all; a is deleted: the gauges follow, nothing is decremented by hand.
    settle(stats, schema_body("b"), Outcome("Applied", "m"))
    metrics.forget({"uid": "a"})
    assert value(metrics, "extschema_resources", reason="Applied") == 3
    assert (value(metrics, "extschema_pending_approvals"), value(metrics, "extschema_conflicts")) == (0, 0)
    # Database failures by SQLSTATE class, for ExtensionSchemas and DatabaseTargets alike.
    failed = Outcome("MigrationFailed", 'duplicate key value violates unique constraint "x" (SQLSTATE 23505)')
    settle(stats, schema_body("e"), failed)
    settle(stats, schema_body("t", kind="DatabaseTarget"), Outcome("DatabaseUnavailable", "connection refused"))
    assert value(metrics, "extschema_database_errors_total", sqlstate_class="23") == 1
    assert value(metrics, "extschema_database_errors_total", sqlstate_class="none") == 1
    assert sum(value(metrics, "extschema_resources", reason=r) for r in ("Applied", "MigrationFailed")) == 4


def test_sqlstate_class_of_a_real_postgresql_error(pg_url: str) -> None:
    engine = Engine(pg_url)
    try:
        with pytest.raises(ProblemError) as caught, engine.database.transaction() as conn:
            conn.exec_driver_sql("SELECT 1/0")
        # The engine's error as the operator's outcome message carries it.
        assert sqlstate_class(str(caught.value)) == "22", str(caught.value)  # data exception: division by zero
    finally:
        engine.close()


def test_drift_age_counts_from_the_first_check_that_found_differences(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics()
    clock = [1000.0]
    monkeypatch.setattr("extschema.controller.metrics.time.time", lambda: clock[0])
    verdicts = iter([sync_of(["extra column item.x"]), sync_of(["extra column item.x"]), sync_of([])])

    async def check(_entry: Any) -> Any:
        return next(verdicts)

    class Entry:
        uid = "u1"

    checked = metrics.drift_check(check)
    assert value(metrics, "extschema_drift_check_age_seconds") == -1
    asyncio.run(checked(Entry()))
    clock[0] += 30
    asyncio.run(checked(Entry()))
    clock[0] += 5
    assert value(metrics, "extschema_drifted_resources") == 1
    assert value(metrics, "extschema_drift_age_seconds") == 35
    assert value(metrics, "extschema_drift_check_age_seconds") == 5
    asyncio.run(checked(Entry()))
    assert (value(metrics, "extschema_drifted_resources"), value(metrics, "extschema_drift_age_seconds")) == (0, 0)
    # A resource that stops being Ready is no longer drift-checked: its drift is forgotten.
    asyncio.run(metrics.drift_check(lambda _e: _async(sync_of(["x"])))(Entry()))
    metrics.settled(schema_body("u1"), "MigrationFailed", "m")
    assert value(metrics, "extschema_drifted_resources") == 0


async def _async(result: Any) -> Any:
    return result


def test_served_over_http() -> None:
    metrics = Metrics()
    port = metrics.serve(0, "127.0.0.1")
    try:
        metrics.settled(schema_body("a"), "Applied", "ok")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        assert 'extschema_resources{reason="Applied"} 1.0' in text
        assert metrics.serve(0, "127.0.0.1") == port  # a re-run startup handler keeps the server
    finally:
        metrics.close()


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's queries use, without the suffixes Prometheus adds to samples."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    names = {n for expr in exprs for n in re.findall(r"\bextschema_[a-z_]+", expr)}
    return {re.sub(r"_(bucket|count|sum|total|created)$", "", n) for n in names}


def test_every_metric_the_dashboard_queries_exists() -> None:
    registered = {family.name for family in Metrics().registry.collect()}
    queried = dashboard_metrics()
    assert queried - registered == set()
    # ...and the dashboard shows every metric (a new one gets a panel).
    assert registered - queried == set()


def test_monitoring_doc_lists_every_metric() -> None:
    doc = (REPO / "docs" / "monitoring.md").read_text(encoding="utf-8")
    for family in Metrics().registry.collect():
        sample = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{sample}`" in doc, sample


def test_dashboard_is_valid_grafana_json() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 30
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert yaml.safe_load(DASHBOARD.read_text(encoding="utf-8")) == board


# --- end to end: a running operator's /metrics and its JSON log --------------------------------------

#: The operator e2e suite's fixtures: a namespace per test, operators started as subprocesses.
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator


def scrape(port: int, operator: e2e.Operator, timeout: float = 60) -> dict[str, float]:
    """GET /metrics of the running operator (waiting for it to serve), as {'name{labels}': value}."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            break
        except OSError:
            assert operator.proc is not None and operator.proc.poll() is None, operator.tail()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, number = line.rpartition(" ")
            samples[key] = float(number)
    return samples


@pytest.mark.k8s
@pytest.mark.slow
def test_metrics_of_a_running_operator_move_after_an_apply_and_its_log_is_json(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], sqlite_url: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    operator = run_operator(sqlite_url, "--metrics-port", str(port), "--log-format", "json")
    before = scrape(port, operator)
    assert before.get('extschema_migrations_total{result="applied"}', 0) == 0
    assert before['extschema_resources{reason="Applied"}'] == 0
    kube.apply(e2e.simple("metered", "metered"))
    kube.wait("metered")
    after = scrape(port, operator)
    assert after['extschema_migrations_total{result="applied"}'] == 1
    assert after['extschema_resources{reason="Applied"}'] == 1
    assert after['extschema_reconcile_duration_seconds_count{result="ok"}'] >= 1
    assert after["extschema_pending_approvals"] == 0
    # The log: one JSON object per line; the lines about the resource name it.
    records = [json.loads(line) for line in operator.log.read_text().splitlines() if line.strip()]
    about = [r for r in records if r.get("name") == "metered"]
    assert about and all(r["namespace"] == kube.ns and r["kind"] == "ExtensionSchema" for r in about)
    assert any("succeeded" in str(r["message"]) for r in about)


# --- the chart: metrics Service and ServiceMonitor ---------------------------------------------------

helm = chart.helm


@pytest.mark.helm
def test_chart_serves_metrics_to_a_service_monitor(helm: Path) -> None:
    assert not chart.named(chart.template(helm), "Service", "extschema")  # off by default
    docs = chart.template(
        helm, "--set", "metrics.enabled=true,metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.labels.k=v"
    )
    (service,) = chart.named(docs, "Service", "extschema")
    (monitor,) = chart.by_kind(docs, "ServiceMonitor")
    (deployment,) = chart.by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=9090" in container["args"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["k"] == "v"


def test_a_drift_check_failing_at_the_database_counts_as_a_database_error(pg_url: str) -> None:
    metrics = Metrics()
    engine = Engine(pg_url)

    async def check(_entry: Any) -> Any:
        with engine.database.transaction() as conn:  # a real error from the real server
            conn.exec_driver_sql("SELECT * FROM no_such_table")

    class Entry:
        uid = "u1"

    try:
        with pytest.raises(ProblemError):
            asyncio.run(metrics.drift_check(check)(Entry()))
    finally:
        engine.close()
    assert value(metrics, "extschema_database_errors_total", sqlstate_class="42") == 1  # undefined table
    assert value(metrics, "extschema_drifted_resources") == 0  # no verdict, no drift
