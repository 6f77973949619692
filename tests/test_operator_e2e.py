"""The operator end to end: a real kube-apiserver, real PostgreSQL and SQLite, driven with kubectl.

Each test gets its own namespace and its own operator process
(``python -m extschema run --standalone -n NS --database URL``), so tests never see each
other's resources. Everything is checked the way a user would: ``kubectl apply``, ``kubectl wait``,
``kubectl get``, and the tables in the database.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import sqlalchemy as sa
import yaml

from extschema.status_model import ExtensionSchemaStatus
from tests.controlplane import Cluster

pytest_plugins = ["tests.controlplane.fixtures"]
pytestmark = [pytest.mark.k8s, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
WAIT = "60s"


def load_core(url: str) -> None:
    """The host application's core tables the examples reference (examples/core/load.py)."""
    spec = importlib.util.spec_from_file_location("examples_core_load", EXAMPLES / "core" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.load(url)


def tables(url: str) -> set[str]:
    """Every table in the database, schema-qualified on PostgreSQL."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if url.startswith("sqlite"):
                return set(inspector.get_table_names())
            return {
                f"{schema}.{t}"
                for schema in inspector.get_schema_names()
                for t in inspector.get_table_names(schema=schema)
            }
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        schema, _, name = table.rpartition(".")
        with engine.connect() as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns(name, schema=schema or None)}
    finally:
        engine.dispose()


def migrations(url: str) -> list[tuple[str, str, str]]:
    """(plugin, kind, status) of every recorded migration, in the order they were recorded (a plugin's ids)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    table = "extension_migrations" if url.startswith("sqlite") else "extschema.extension_migrations"
    try:
        with engine.connect() as conn:
            query = f"SELECT plugin_id, kind, status FROM {table} ORDER BY created_at, plugin_id, migration_id"
            rows = conn.exec_driver_sql(query).all()
            return [(r[0], r[1], r[2]) for r in rows]
    finally:
        engine.dispose()


def schema_doc(name: str, plugin: str, tables_: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": name},
        "spec": {"pluginId": plugin, "version": "1.0.0", "tables": tables_, **spec},
    }


def simple(name: str, plugin: str, **spec: Any) -> dict[str, Any]:
    return schema_doc(name, plugin, [{"name": "item", "fields": [{"name": "title", "type": "String"}]}], **spec)


class Kube:
    """kubectl in one namespace, with the waits the tests need."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.ns = namespace

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.ns, *args, input=input, check=check)

    def apply(self, *docs: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)

    def wait(self, name: str, condition: str = "Ready", timeout: str = WAIT) -> None:
        self("wait", f"--for=condition={condition}", f"exts/{name}", f"--timeout={timeout}")

    def wait_reason(self, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_until(name, lambda body: self.ready(body).get("reason") == reason, f"reason {reason}", timeout)

    def wait_until(
        self, name: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
    ) -> dict[str, Any]:
        """The resource once *done* holds for it (polled), else an AssertionError showing its status."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.get(name)
            if done(body):
                return body
            time.sleep(0.3)
        raise AssertionError(f"exts/{name} never reached {what}: {json.dumps(body.get('status'))}")

    def get(self, name: str, kind: str = "exts") -> dict[str, Any]:
        out = self("get", kind, name, "-o", "json").stdout
        body: dict[str, Any] = json.loads(out)
        return body

    @staticmethod
    def ready(body: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition["type"] == type_:
                return dict(condition)
        return {}

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def gone(self, name: str, timeout: str = WAIT) -> None:
        self("wait", "--for=delete", f"exts/{name}", f"--timeout={timeout}")


class Operator:
    """``python -m extschema run`` as a subprocess, like a user would start it."""

    #: One operator per test; tests/test_ha.py runs replicas with ``--peering NAME`` instead.
    mode: tuple[str, ...] = ("--standalone",)

    def __init__(self, cluster: Cluster, namespace: str, database: str, log: Path, *args: str) -> None:
        self.cluster, self.namespace, self.database, self.log = cluster, namespace, database, log
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "EXTSCHEMA_RECHECK_SECONDS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]),
        }
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "extschema",
                    "run",
                    *self.mode,
                    "-n",
                    self.namespace,
                    "--database",
                    self.database,
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


@pytest.fixture(scope="module")
def crds(kube_cluster: Cluster) -> Cluster:
    kube_cluster.kubectl("apply", "-f", str(REPO / "crds"))
    kube_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/extensionschemas.extschema.io",
        "crd/databasetargets.extschema.io",
        "--timeout=60s",
    )
    return kube_cluster


@pytest.fixture
def kube(crds: Cluster) -> Iterator[Kube]:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    crds.kubectl("create", "namespace", namespace)
    yield Kube(crds, namespace)
    # Leave nothing behind that a later operator could pick up: drop finalizers, then the namespace.
    names = crds.kubectl("-n", namespace, "get", "exts", "-o", "name", check=False).stdout.split()
    for name in names:
        crds.kubectl(
            "-n", namespace, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    crds.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


@pytest.fixture
def run_operator(kube: Kube, tmp_path: Path) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def start(database: str, *args: str) -> Operator:
        op = Operator(kube.cluster, kube.ns, database, tmp_path / f"operator-{len(started)}.log", *args).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
        print(f"--- {op.log.name} ---\n{op.tail()}")  # shown by pytest when the test failed


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_apply_becomes_ready_with_tables(
    backend: str, kube: Kube, run_operator: Callable[..., Operator], request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    load_core(url)
    run_operator(url)
    kube("apply", "-f", str(EXAMPLES / "custom-reports.yaml"))
    kube.wait("custom-reports")  # kubectl wait --for=condition=Ready exts/custom-reports
    body = kube.get("custom-reports")
    status = body["status"]
    expected = "ext_customreports.report" if backend == "postgresql" else "ext_customreports__report"
    assert status["tables"] == [expected]
    assert expected in tables(url)
    assert status["appliedVersion"] == "1.0.0" and len(status["appliedChecksum"]) == 64
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["lastMigration"]["id"] == "0001"
    assert [c["type"] for c in status["conditions"]] in (["Ready"], ["Ready", "InSync"])  # drift checked soon
    # Everything the operator writes came back from the API server (nothing pruned), as the status model says.
    written = ExtensionSchemaStatus.model_validate(status)
    assert written.dump() == status
    declared = {field.alias or name for name, field in ExtensionSchemaStatus.model_fields.items()}
    assert set(status) == declared - {"pendingPlan", "rollout"}  # pendingPlan: while a plan waits; rollout: selectors
    assert set(status["lastMigration"]) == {"id", "version", "changes", "durationMs", "time"}
    wide = kube("get", "exts", "-o", "wide").stdout
    assert "customreports" in wide and "Applied" in wide and "default" in wide
    events = kube("get", "events", "--field-selector", "involvedObject.name=custom-reports", "-o", "json").stdout
    assert {"MigrationStarted", "MigrationSucceeded"} <= {e["reason"] for e in json.loads(events)["items"]}


def test_invalid_spec_rejected_at_apply_or_stalled_with_path(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str
) -> None:
    run_operator(sqlite_url)
    bad_type = schema_doc("bad", "bad", [{"name": "t", "fields": [{"name": "a", "type": "Strin"}]}])
    out = kube.apply(bad_type, check=False)
    assert out.returncode != 0 and "spec.tables[0].fields[0].type" in out.stderr
    bad_scale = schema_doc(
        "bad", "bad", [{"name": "t", "fields": [{"name": "a", "type": "Decimal", "precision": 4, "scale": 6}]}]
    )
    out = kube.apply(bad_scale, check=False)
    assert out.returncode != 0 and "scale must not exceed precision" in out.stderr
    bad_name = schema_doc("bad", "Bad-Plugin", [{"name": "t"}])
    assert kube.apply(bad_name, check=False).returncode != 0
    # What CEL cannot see (a default's type): the operator stalls with the field path.
    bool_default = schema_doc(
        "bad", "bad", [{"name": "t", "fields": [{"name": "flag", "type": "Boolean", "default": "yes"}]}]
    )
    kube.apply(bool_default)
    kube.wait("bad", "Stalled")
    ready = kube.ready(kube.get("bad"))
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.tables[0].fields[0].default" in ready["message"]
    # Fixing the spec is what makes it proceed.
    bool_default["spec"]["tables"][0]["fields"][0]["default"] = True
    kube.apply(bool_default)
    kube.wait("bad")
    assert "Stalled" not in {c["type"] for c in kube.get("bad")["status"]["conditions"]}
    # pluginId is immutable (CEL transition rule).
    moved = dict(bool_default, spec={**bool_default["spec"], "pluginId": "other"})
    out = kube.apply(moved, check=False)
    assert out.returncode != 0 and "immutable" in out.stderr


def test_spec_update_adds_a_column(kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str) -> None:
    run_operator(sqlite_url)
    doc = simple("notes", "notes")
    kube.apply(doc)
    kube.wait("notes")
    doc["spec"]["version"] = "1.1.0"
    doc["spec"]["tables"][0]["fields"].append({"name": "body", "type": "Text"})
    kube.apply(doc)
    kube("wait", "--for=jsonpath={.status.appliedVersion}=1.1.0", "exts/notes", f"--timeout={WAIT}")
    kube.wait("notes")
    assert {"id", "title", "body"} <= columns(sqlite_url, "ext_notes__item")
    status = kube.get("notes")["status"]
    assert status["observedGeneration"] == 2 and status["lastMigration"]["id"] == "0002"


def test_conflict_loser_stalls_drops_nothing_and_takes_over(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str
) -> None:
    run_operator(sqlite_url)
    kube.apply(simple("winner", "shared", deletionPolicy="Drop"))
    kube.wait("winner")
    loser = simple("loser", "shared")
    loser["spec"]["tables"][0]["fields"].append({"name": "extra", "type": "Int"})
    kube.apply(loser)
    kube.wait("loser", "Stalled")
    ready = kube.ready(kube.get("loser"))
    assert ready["reason"] == "Conflict" and "winner" in ready["message"]
    # Deleting the loser drops nothing of the winner's.
    kube("delete", "exts", "loser", f"--timeout={WAIT}")
    assert "ext_shared__item" in tables(sqlite_url)
    kube.wait("winner")
    # A loser proceeds by itself once the winner is deleted.
    kube.apply(loser)
    kube.wait("loser", "Stalled")
    kube("delete", "exts", "winner", f"--timeout={WAIT}")
    kube.wait("loser")
    assert "extra" in columns(sqlite_url, "ext_shared__item")


def test_depends_on_ordering_and_deletion_blocked(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str
) -> None:
    load_core(sqlite_url)
    run_operator(sqlite_url)
    kube("apply", "-f", str(EXAMPLES / "knowledge-base.yaml"))
    body = kube.wait_reason("knowledge-base", "DependencyNotReady")
    assert {c["type"] for c in body["status"]["conditions"]} == {"Ready", "Reconciling"}
    kube("apply", "-f", str(EXAMPLES / "comments.yaml"))
    kube.wait("comments")
    kube.wait("knowledge-base")  # proceeds by itself once comments is Ready
    # Deleting a dependency is blocked while its dependent exists; the finalizer stays.
    kube("delete", "exts", "comments", "--wait=false")
    body = kube.wait_reason("comments", "DeletionBlocked")
    assert body["metadata"].get("deletionTimestamp") and "kb" in kube.ready(body)["message"]
    assert "ext_comments__comment" in tables(sqlite_url)
    kube("delete", "exts", "knowledge-base", f"--timeout={WAIT}")
    kube.gone("comments")
    assert not {t for t in tables(sqlite_url) if t.startswith(("ext_comments", "ext_kb"))}


def test_deletion_drop_and_retain(kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str) -> None:
    run_operator(sqlite_url)
    kube.apply(simple("dropped", "dropped", deletionPolicy="Drop"), simple("kept", "kept", deletionPolicy="Retain"))
    kube.wait("dropped")
    kube.wait("kept")
    kube("delete", "exts", "dropped", "kept", f"--timeout={WAIT}")
    present = tables(sqlite_url)
    assert "ext_dropped__item" not in present
    assert "ext_kept__item" in present
    kinds = {(plugin, kind) for plugin, kind, status in migrations(sqlite_url) if status == "executed"}
    assert ("dropped", "delete") in kinds and ("kept", "unregister") in kinds


@pytest.mark.postgres
def test_every_example_becomes_ready_on_postgresql(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    load_core(pg_url)
    run_operator(pg_url)
    kube("apply", "-f", str(EXAMPLES))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(EXAMPLES.glob("*.yaml"))]
    for name in names:
        kube.wait(name)
    assert {
        "ext_customreports.report",
        "ext_kb.article",
        "ext_comments.comment",
        "ext_inspections.inspection",
    } <= tables(pg_url)


class Proxy:
    """A TCP forwarder the test can switch off and on: the database going away and coming back."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor: threading.Thread | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        self._acceptor = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._acceptor.start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with self._lock:
                if self._server is not server:  # stopped while this connection was being accepted
                    client.close()
                    return
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        if server is not None:
            # close() alone does not wake a thread blocked in accept(): the socket would go on accepting
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
            if self._acceptor is not None:
                self._acceptor.join(timeout=10)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.mark.postgres
def test_database_down_reconciling_then_ready(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str, sqlite_url: str
) -> None:
    base, _, dbname = pg_url.rpartition("/")
    port = int(base.rsplit(":", 1)[1])
    proxy = Proxy(port)
    host = base.rsplit(":", 1)[0].replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    through_proxy = f"{host}:{proxy.port}/{dbname}"
    operator = run_operator(sqlite_url)
    kube("create", "secret", "generic", "pg", f"--from-literal=url={through_proxy}")
    kube(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "extschema.io/v1alpha1",
                "kind": "DatabaseTarget",
                "metadata": {"name": "pg"},
                "spec": {"urlSecretRef": {"name": "pg", "key": "url"}, "lockTimeout": "2s"},
            }
        ),
    )
    kube.apply(simple("remote", "remote", targetRef={"name": "pg"}))
    try:
        body = kube.wait_reason("remote", "DatabaseUnavailable")
        assert {c["type"] for c in body["status"]["conditions"]} == {"Ready", "Reconciling"}
        assert "s3cret-pw" not in json.dumps(body)  # the password never shows
        proxy.start()
        kube.wait("remote", timeout="90s")
        assert "ext_remote.item" in tables(pg_url)
        assert kube.get("remote")["status"]["target"] == "pg"
        kube("wait", "--for=condition=Ready", "databasetarget/pg", "--timeout=90s")
        assert kube.get("pg", "databasetargets")["status"]["backend"] == "postgresql"
        assert "s3cret-pw" not in operator.tail(10_000)
    finally:
        proxy.stop()


def test_killed_mid_reconcile_restart_converges_nothing_applied_twice(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str
) -> None:
    first = run_operator(sqlite_url)
    time.sleep(2)
    docs = [simple(f"s{i}", f"p{i}") for i in range(12)]
    kube.apply(*docs)
    time.sleep(0.5)
    first.stop(signal.SIGKILL)  # no cleanup, no status written for whatever was in flight
    run_operator(sqlite_url)
    for doc in docs:
        kube.wait(doc["metadata"]["name"], timeout="90s")
    applies = [(plugin, status) for plugin, kind, status in migrations(sqlite_url) if kind == "apply"]
    assert sorted(applies) == sorted((f"p{i}", "executed") for i in range(12))


# --- approvals and drift (issue 8) ---------------------------------------------------------------


def execute(url: str, *statements: str) -> list[Any]:
    """Run SQL by hand, as someone working behind the operator's back would; the last statement's rows."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    rows: list[Any] = []
    try:
        with engine.begin() as conn:
            for statement in statements:
                result = conn.exec_driver_sql(statement)
                rows = list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()
    return rows


def physical(url: str, plugin: str, table: str) -> str:
    return f"ext_{plugin}.{table}" if url.startswith("postgresql") else f"ext_{plugin}__{table}"


def condition_types(body: dict[str, Any]) -> set[str]:
    return {c["type"] for c in (body.get("status") or {}).get("conditions") or []}


def test_destructive_change_waits_for_approval_through_kubectl_apply(
    kube: Kube, run_operator: Callable[..., Operator], db_url: str
) -> None:
    url = db_url
    run_operator(url)
    fields = [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]
    doc = schema_doc("orders", "orders", [{"name": "item", "fields": fields}])
    kube.apply(doc)
    kube.wait("orders")
    table = physical(url, "orders", "item")
    execute(url, *(f"INSERT INTO {table} (title, note) VALUES ('t{i}', 'note {i}')" for i in range(120)))
    # Version 2 drops the column holding 120 values: it waits, as progress, never as a failure.
    doc["spec"]["version"] = "2.0.0"
    doc["spec"]["tables"][0]["fields"] = fields[:1]
    kube.apply(doc)
    body = kube.wait_reason("orders", "ApprovalRequired")
    pending = body["status"]["pendingPlan"]
    assert pending["destructive"] is True and pending["class"] == "destructive"
    assert "note" in pending["summary"] and "120" in pending["summary"]
    (op,) = pending["ops"]  # the same view as `extschema plan -o json`
    assert (op["kind"], op["class"], op["check"]["count"]) == ("drop_column", "destructive", 120)
    if url.startswith("postgresql"):  # squawk's view of the plan's SQL, for the reviewer
        assert "ban-drop-column" in {finding["rule"] for finding in pending["lint"]}, pending
    else:
        assert "lint" not in pending  # squawk lints PostgreSQL only
    assert condition_types(body) == {"Ready", "Reconciling"}  # not Stalled: kstatus/Argo CD see progress
    assert pending["hash"] in kube.ready(body)["message"]
    assert "note" in columns(url, table)  # nothing ran
    time.sleep(2)  # no retries on a timer: one event, however long it waits
    assert [e["reason"] for e in kube.events("orders")].count("ApprovalRequired") == 1
    # An approval of another plan is ignored, and says so with the current hash.
    doc["spec"]["approvedPlanHash"] = "0123456789abcdef"
    kube.apply(doc)
    body = kube.wait_until("orders", lambda b: "is ignored" in kube.ready(b).get("message", ""), "ignored approval")
    message = kube.ready(body)["message"]
    assert "0123456789abcdef" in message and f"the current plan is {pending['hash']}" in message
    assert body["status"]["pendingPlan"]["hash"] == pending["hash"] and "note" in columns(url, table)
    assert "Stalled" not in condition_types(body)
    # The approval of exactly this plan, committed to the spec, applies it; the values are backed up first.
    doc["spec"]["approvedPlanHash"] = pending["hash"]
    kube.apply(doc)
    kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/orders", f"--timeout={WAIT}")
    kube.wait("orders")
    body = kube.get("orders")
    assert "pendingPlan" not in body["status"] and condition_types(body) & {"Reconciling", "Stalled"} == set()
    assert "note" not in columns(url, table)
    assert execute(url, f"SELECT count(*) FROM {table}") == [(120,)]
    backups = [t for t in tables(url) if "orders__item" in t and "note" in t and "backup" in t]
    assert len(backups) == 1, tables(url)
    assert execute(url, f"SELECT count(*) FROM {backups[0]} WHERE note IS NOT NULL") == [(120,)]
    reasons = [e["reason"] for e in kube.events("orders")]
    assert reasons.count("ApprovalRequired") == 2 and "MigrationSucceeded" in reasons  # waiting; approval ignored


def test_column_added_by_hand_shows_in_sync_false_within_one_interval(
    kube: Kube, run_operator: Callable[..., Operator], db_url: str
) -> None:
    url = db_url
    interval = 3.0
    run_operator(url, "--drift-interval", f"{interval:g}s")
    kube.apply(simple("notes", "notes"))
    kube.wait("notes")
    body = kube.wait_until("notes", lambda b: kube.ready(b, "InSync").get("status") == "True", "InSync=True")
    assert kube.ready(body, "InSync")["reason"] == "InSync"
    execute(url, f"ALTER TABLE {physical(url, 'notes', 'item')} ADD COLUMN secret TEXT")
    added = time.monotonic()
    body = kube.wait_until("notes", lambda b: kube.ready(b, "InSync").get("status") == "False", "InSync=False")
    assert time.monotonic() - added < interval + 5  # one interval, plus the loop's tick and kubectl's polling
    in_sync = kube.ready(body, "InSync")
    assert in_sync["reason"] == "Drifted" and "extra column item.secret" in in_sync["message"]
    assert kube.ready(body)["status"] == "True"  # drift never makes a resource un-Ready
    assert "DriftDetected" in {e["reason"] for e in kube.events("notes")}
    # Undone by hand: in sync again at the next check.
    execute(url, f"ALTER TABLE {physical(url, 'notes', 'item')} DROP COLUMN secret")
    kube.wait_until("notes", lambda b: kube.ready(b, "InSync").get("status") == "True", "InSync=True again")


def test_repair_policy_recreates_a_dropped_index(
    kube: Kube, run_operator: Callable[..., Operator], db_url: str
) -> None:
    """On a table with rows (PostgreSQL builds the index concurrently, after COMMIT): the index is really
    built, and once, not recorded as repaired at every interval while it stays missing."""
    run_operator(db_url, "--drift-interval", "2s")
    doc = schema_doc(
        "indexed",
        "indexed",
        [{"name": "item", "fields": [{"name": "title", "type": "String"}], "indexes": [{"fields": ["title"]}]}],
        driftPolicy="Repair",
    )
    kube.apply(doc)
    kube.wait("indexed")
    kube.wait_until("indexed", lambda b: kube.ready(b, "InSync").get("status") == "True", "InSync=True")
    table = physical(db_url, "indexed", "item")
    execute(db_url, f"INSERT INTO {table} (title) VALUES ('a'), ('b')")
    if db_url.startswith("postgresql"):
        names = "SELECT indexname FROM pg_indexes WHERE schemaname = 'ext_indexed' AND tablename = 'item'"
    else:
        names = f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'"
    index = next(name for (name,) in execute(db_url, names) if not name.startswith(("sqlite_autoindex", "item_pkey")))
    execute(db_url, f'DROP INDEX {"ext_indexed." if db_url.startswith("postgresql") else ""}"{index}"')
    body = kube.wait_until(
        "indexed", lambda b: kube.ready(b, "InSync").get("reason") == "Repaired", "InSync reason Repaired", 30
    )
    repaired = kube.ready(body, "InSync")
    assert repaired["status"] == "True" and "index" in repaired["message"]
    assert (index,) in execute(db_url, names)
    assert "DriftRepaired" in {e["reason"] for e in kube.events("indexed")}
    time.sleep(5)  # two more drift checks: in sync, nothing repaired again
    repairs = [m for m in migrations(db_url) if m[:2] == ("indexed", "repair")]
    assert repairs == [("indexed", "repair", "executed")]


# --- contract and status under chaos: suspend on deletion, large specs, racing operators, a check that cannot run


def registry_rows(url: str, plugin: str) -> list[tuple[str, str]]:
    """(owner, version) of the plugin's registry row, if any."""
    table = "extension_schemas" if url.startswith("sqlite") else "extschema.extension_schemas"
    return [(r[0], r[1]) for r in execute(url, f"SELECT owner, version FROM {table} WHERE plugin_id = '{plugin}'")]


@pytest.mark.postgres
def test_deleting_a_suspended_resource_leaves_the_database_as_it_is(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    run_operator(pg_url)
    kube.apply(simple("paused", "paused"))  # deletionPolicy: Drop (the default)
    kube.wait("paused")
    table = physical(pg_url, "paused", "item")
    execute(pg_url, f"INSERT INTO {table} (title) VALUES ('kept')")
    kube("patch", "exts", "paused", "--type", "merge", "-p", '{"spec":{"suspend":true}}')
    kube.wait_reason("paused", "Suspended")
    kube("delete", "exts", "paused", f"--timeout={WAIT}")  # the finalizer goes at once: nothing to wait for
    assert execute(pg_url, f"SELECT title FROM {table}") == [("kept",)]  # not dropped, not backed up
    assert registry_rows(pg_url, "paused") == [(f"{kube.ns}/paused", "1.0.0")]  # not unregistered either
    assert [kind for plugin, kind, _ in migrations(pg_url) if plugin == "paused"] == ["apply"]
    deleted = [e["message"] for e in kube.events("paused") if e["reason"] == "Deleted"]
    assert deleted and "spec.suspend is true, so deletionPolicy Drop did not run" in deleted[-1]
    # Re-created under the same name, the resource manages the plugin again: nothing runs, its row is still there.
    kube.apply(simple("paused", "paused"))
    kube.wait("paused")
    assert execute(pg_url, f"SELECT title FROM {table}") == [("kept",)]
    assert [kind for plugin, kind, _ in migrations(pg_url) if plugin == "paused"] == ["apply"]
    # Not suspended, its deletionPolicy runs as before.
    kube("delete", "exts", "paused", f"--timeout={WAIT}")
    assert table not in tables(pg_url) and registry_rows(pg_url, "paused") == []


def large_schema(name: str, plugin: str, tables_: int, fields: int, description: int) -> dict[str, Any]:
    text = "d" * description
    return schema_doc(
        name,
        plugin,
        [
            {
                "name": f"t{t}",
                "description": text,
                "fields": [{"name": f"f{f}", "type": "String", "description": text} for f in range(fields)],
            }
            for t in range(tables_)
        ],
    )


@pytest.mark.postgres
def test_a_spec_over_256_kib_is_migrated_and_recorded(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    """kopf's diff base once held the whole spec in an annotation (all annotations: 256 KiB at most): the
    migration ran, then every patch was refused: no finalizer, no status. Now it is a digest."""
    run_operator(pg_url)
    doc = large_schema("big", "big", 64, 16, 300)
    assert len(json.dumps(doc["spec"])) > 300_000
    kube("create", "-f", "-", input=json.dumps(doc))  # not `kubectl apply`: its own annotation holds the object
    body = kube.wait_reason("big", "Applied", timeout=120)
    assert body["metadata"]["finalizers"] == ["extschema.io/cleanup"]
    assert body["status"]["appliedVersion"] == "1.0.0" and len(body["status"]["tables"]) == 64
    annotations = body["metadata"].get("annotations") or {}
    assert len(annotations["kopf.extschema.io/last-handled-digest"]) == 64
    assert "kopf.extschema.io/last-handled-configuration" not in annotations
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 4096
    assert physical(pg_url, "big", "t63") in tables(pg_url)
    # An update is still seen as one (the digest changed), and handled.
    kube("patch", "exts", "big", "--type", "json", "-p", json.dumps([
        {"op": "add", "path": "/spec/tables/0/fields/-", "value": {"name": "extra", "type": "Text"}},
        {"op": "replace", "path": "/spec/version", "value": "1.1.0"},
    ]))  # fmt: skip
    kube.wait_until("big", lambda b: (b.get("status") or {}).get("appliedVersion") == "1.1.0", "version 1.1.0")
    assert "extra" in columns(pg_url, physical(pg_url, "big", "t0"))


@pytest.mark.postgres
def test_a_spec_too_large_to_record_is_refused_before_any_work(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    run_operator(pg_url)
    doc = large_schema("huge", "huge", 64, 40, 330)
    size = len(json.dumps(doc["spec"], separators=(",", ":")))
    assert 768 * 1024 < size < 1_000_000  # etcd stores it; its status could not be relied on
    kube("create", "-f", "-", input=json.dumps(doc))
    body = kube.wait_reason("huge", "InvalidSpec")
    assert "spec: ES009: the spec is" in kube.ready(body)["message"]
    present = tables(pg_url)
    assert not [t for t in present if t.startswith("ext_huge")]
    assert "extschema.extension_schemas" not in present  # nothing ran: not even the registry was created


def legacy_diff_base(doc: dict[str, Any]) -> dict[str, str]:
    """The annotations an operator before the digest left on a resource it handled: the whole essence."""
    storage = kopf.AnnotationsDiffBaseStorage(prefix="kopf.extschema.io", key="last-handled-configuration")
    body = kopf.Body(doc)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    return dict(patch["metadata"]["annotations"])


@pytest.mark.postgres
def test_a_resource_handled_by_an_older_operator_keeps_working(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    doc = simple("older", "older")
    doc["metadata"]["annotations"] = legacy_diff_base(doc)
    kube.apply(doc)
    run_operator(pg_url)
    kube.wait("older")
    legacy = "kopf.extschema.io/last-handled-configuration"
    updated = simple("older", "older")
    updated["spec"]["version"] = "1.1.0"
    updated["spec"]["tables"][0]["fields"].append({"name": "note", "type": "Text"})
    kube("patch", "exts", "older", "--type", "merge", "-p", json.dumps({"spec": updated["spec"]}))
    body = kube.wait_until("older", lambda b: (b.get("status") or {}).get("appliedVersion") == "1.1.0", "1.1.0")
    assert "note" in columns(pg_url, physical(pg_url, "older", "item"))
    annotations = body["metadata"]["annotations"]
    assert legacy not in annotations and len(annotations["kopf.extschema.io/last-handled-digest"]) == 64


@pytest.mark.postgres
def test_in_sync_is_unknown_while_the_drift_check_cannot_run(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    run_operator(pg_url, "--drift-interval", "2s")
    kube.apply(simple("unchecked", "unchecked"))
    kube.wait("unchecked")
    kube.wait_until("unchecked", lambda b: kube.ready(b, "InSync").get("status") == "True", "InSync=True")
    execute(pg_url, "DELETE FROM extschema.extension_schemas WHERE plugin_id = 'unchecked'")
    body = kube.wait_until(
        "unchecked", lambda b: kube.ready(b, "InSync").get("status") == "Unknown", "InSync=Unknown", 30
    )
    in_sync = kube.ready(body, "InSync")
    assert in_sync["reason"] == "CheckFailed" and "ES306" in in_sync["message"], in_sync
    assert "in sync" not in in_sync["message"]
    assert "DriftCheckFailed" in {e["reason"] for e in kube.events("unchecked")}


def waiting_on_a_lock(url: str, query: str) -> bool:
    """Whether a session of the database waits for a lock while running a statement that starts with *query*."""
    found = execute(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        f"AND starts_with(query, '{query}')",
    )
    return bool(found[0][0])


def until(done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.2)


@pytest.mark.postgres
def test_two_operators_racing_an_approved_drop_report_what_the_database_holds(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    """Two uncoordinated operators (a rolling update) handle one approved drop. The first runs it; the second
    plans from v1 while the first is migrating, and counts what it would drop after the column is gone. It must
    plan again from what the first left and report the truth, not Stalled/MigrationFailed on a column already
    dropped. The interleaving is forced with a row lock on the registry, held by the test."""
    first = run_operator(pg_url)
    target = {"apiVersion": "extschema.io/v1alpha1", "kind": "DatabaseTarget", "metadata": {"name": "pg"}}
    kube.apply(
        {**target, "spec": {"url": pg_url, "lockTimeout": "120s", "statementTimeout": "120s"}}
    )  # waits for the test
    title, note = {"name": "title", "type": "String"}, {"name": "note", "type": "Text"}
    v1 = schema_doc("race", "race", [{"name": "item", "fields": [title, note]}], targetRef={"name": "pg"})
    kube.apply(v1)
    kube.wait("race")
    execute(pg_url, f"INSERT INTO {physical(pg_url, 'race', 'item')} (title, note) VALUES ('a', 'x')")
    v2 = schema_doc("race", "race", [{"name": "item", "fields": [title]}], version="2.0.0", targetRef={"name": "pg"})
    kube.apply(v2)
    plan_hash = kube.wait_reason("race", "ApprovalRequired")["status"]["pendingPlan"]["hash"]
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as held:
            # The first operator's migration drops the column, then waits to register v2 (it holds the table).
            held.exec_driver_sql("SELECT 1 FROM extschema.extension_schemas WHERE plugin_id = 'race' FOR UPDATE")
            kube(
                "patch", "exts", "race", "--type", "merge", "-p", json.dumps({"spec": {"approvedPlanHash": plan_hash}})
            )
            until(lambda: waiting_on_a_lock(pg_url, "UPDATE extschema.extension_schemas"), "the first one registers")
            # The second one starts (resume), reads the registry (v1), plans the drop, and counts `note`: it waits.
            run_operator(pg_url)
            until(lambda: waiting_on_a_lock(pg_url, "SELECT count(*) FROM"), "the second one counts")
            held.commit()  # the first commits v2; the second's count then reads a table without `note`
    finally:
        engine.dispose()
    kube.wait_until("race", lambda b: (b.get("status") or {}).get("appliedVersion") == "2.0.0", "2.0.0")
    time.sleep(3)  # both have written their status by now
    body = kube.get("race")
    assert kube.ready(body)["reason"] == "Applied" and "Stalled" not in condition_types(body), body["status"]
    assert "MigrationFailed" not in {e["reason"] for e in kube.events("race")}
    applies = [(p, s) for p, kind, s in migrations(pg_url) if kind == "apply"]
    assert applies == [("race", "executed"), ("race", "executed")]  # v1 and v2, each once
    assert "ES402" not in first.tail(10_000)


@pytest.mark.postgres
def test_a_generation_replaced_while_its_migration_waits_is_never_applied(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    """Generation 2's migration waits for the plugin's lock (held by the test) while generation 3 arrives.
    Under the lock the operator reads the resource again, finds it moved on and applies nothing; generation
    3 is applied next. Without that check an operator holding an old body (a second instance, a slow start)
    migrated the database back to it after the newer spec was applied (found by the chaos suite)."""
    from extschema.engine.connection import lock_key

    run_operator(pg_url)
    title = {"name": "title", "type": "String"}
    notes = [{"name": f"note{i}", "type": "String"} for i in (1, 2)]
    versions = [
        schema_doc("gens", "gens", [{"name": "item", "fields": [title, *notes[:n]]}], version=f"1.{n}.0")
        for n in range(3)
    ]
    kube.apply(versions[0])
    kube.wait("gens")
    first, second = lock_key("gens")
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as held:
            held.exec_driver_sql(f"SELECT pg_advisory_lock({first}, {second})")
            kube.apply(versions[1])
            until(lambda: waiting_on_a_lock(pg_url, "SELECT pg_advisory_xact_lock"), "generation 2 waits")
            kube.apply(versions[2])
            held.exec_driver_sql(f"SELECT pg_advisory_unlock({first}, {second})")
            held.commit()
    finally:
        engine.dispose()
    kube.wait_until(
        "gens",
        lambda b: (
            (b.get("status") or {}).get("observedGeneration") == 3
            and (b.get("status") or {}).get("appliedVersion") == "1.2.0"
        ),
        "generation 3 applied",
    )
    applied = execute(
        pg_url,
        "SELECT version FROM extschema.extension_migrations WHERE plugin_id = 'gens' AND kind = 'apply' "
        "ORDER BY migration_id",
    )
    assert [row[0] for row in applied] == ["1.0.0", "1.2.0"]
    assert columns(pg_url, physical(pg_url, "gens", "item")) >= {"note1", "note2"}


def test_an_operator_started_before_its_kinds_are_served_waits_for_them(tmp_path: Path, sqlite_url: str) -> None:
    """kopf looks the resource kinds up once after the startup handlers (again only when a CRD changes): started
    while kube-apiserver came back and did not serve the CRDs yet, the operator watched nothing for good (the chaos
    suite). It waits for both kinds instead, then reconciles as usual."""
    from tests.controlplane import ControlPlane

    with ControlPlane() as bare:
        bare.kubectl("create", "namespace", "early")
        op = Operator(bare, "early", sqlite_url, tmp_path / "operator.log").start()
        try:
            until(lambda: "waiting for the API to serve databasetargets, extensionschemas" in op.tail(), "the wait")
            bare.kubectl("apply", "-f", str(REPO / "crds"))
            kube = Kube(bare, "early")
            kube.apply(simple("early", "early"))
            kube.wait("early")
        finally:
            op.stop()
