"""The validating admission webhook: what it refuses and what a server-side dry run shows.

Unit tests run :func:`extschema.controller.webhook.admit` against real databases; the e2e test has the
local kube-apiserver call the webhook of a running operator over HTTPS (a certificate for 127.0.0.1 made
with ``cryptography``) through a ValidatingWebhookConfiguration limited to the test's namespace.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extschema import reconcile, wire
from extschema.controller import certificates, webhook
from extschema.engine import Engine
from extschema.problems import Kind, ProblemError
from tests import test_chart as chart
from tests import test_operator_e2e as e2e
from tests.helpers import execute, ext_table, subprocess_env
from tests.test_metrics import scrape
from tests.test_operator_e2e import Kube, Operator, schema_doc, simple

pytest_plugins = ["tests.controlplane.fixtures"]
#: The operator e2e suite's fixtures: a namespace per test, operators started as subprocesses.
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator


def loaded(plugin: str, fields: list[dict[str, Any]], owner: str = "ns/a", **spec: Any) -> reconcile.Loaded:
    namespace, name = owner.split("/")
    body = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pluginId": plugin, "version": "1.0.0", "tables": [{"name": "item", "fields": fields}], **spec},
    }
    return reconcile.from_object(body, owner)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    found = Engine(db_url)
    yield found
    found.close()


TITLE = [{"name": "title", "type": "String"}]


def test_a_new_spec_is_admitted_with_its_sql(engine: Engine) -> None:
    warnings = webhook.admit(engine, loaded("notes", TITLE), [], None)
    assert warnings[0].startswith("extschema plan ") and ": safe, " in warnings[0]
    assert any(re.match(r"SQL \d+: CREATE TABLE", w) for w in warnings), warnings
    assert not any("needs approval" in w for w in warnings)
    assert engine.registrations() == []  # nothing was applied


def test_a_conflict_with_a_registered_schema_is_refused(engine: Engine) -> None:
    reconcile.reconcile(engine, [loaded("notes", TITLE)], lambda _e: None)
    with pytest.raises(ProblemError) as caught:
        webhook.admit(engine, loaded("notes", TITLE, owner="ns/b"), [], None)
    assert caught.value.kind is Kind.CONFLICT
    refusal = webhook.refusal(caught.value)
    assert refusal.code == 409 and "ns/a" in str(refusal) and "ES2" in str(refusal)
    # The owner itself re-applying its spec is admitted: nothing to do.
    assert webhook.admit(engine, loaded("notes", TITLE), [], None) == [
        "extschema: no change: the database already matches this spec"
    ]


def test_an_older_resource_not_yet_applied_wins(engine: Engine) -> None:
    older = reconcile.from_object(
        {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"pluginId": "notes", "version": "1.0.0", "tables": [{"name": "item", "fields": TITLE}]},
        },
        "ns/a",
    )
    from extschema.conflicts import Claim

    with pytest.raises(ProblemError) as caught:
        webhook.admit(engine, loaded("notes", TITLE, owner="ns/b"), [Claim(older.owner, older.spec)], None)
    assert caught.value.kind is Kind.CONFLICT


def test_a_missing_dependency_is_admitted_the_operator_waits(engine: Engine) -> None:
    spec = loaded("child", TITLE, dependsOn=["parent"])
    peer = loaded("parent", TITLE, owner="ns/p")
    from extschema.conflicts import Claim

    warnings = webhook.admit(engine, spec, [Claim(peer.owner, peer.spec)], None)
    assert warnings and warnings[0].startswith("extschema: admitted, waits:") and "parent" in warnings[0]


def test_a_refused_change_is_refused(engine: Engine, db_url: str) -> None:
    reconcile.reconcile(engine, [loaded("notes", TITLE)], lambda _e: None)
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'notes', 'item')} (title) VALUES ('kept')")
    retyped = loaded("notes", [{"name": "title", "type": "Boolean"}], version="2.0.0")
    with pytest.raises(ProblemError) as caught:
        webhook.admit(engine, retyped, [], None)
    assert caught.value.kind is Kind.REFUSED
    refusal = webhook.refusal(caught.value)
    assert refusal.code == 422 and "spec.tables[0]" in str(refusal) and "ES3" in str(refusal)


def test_a_plan_needing_approval_names_the_hash_to_approve(engine: Engine) -> None:
    spec = loaded("notes", TITLE)
    (item,) = reconcile.propose(engine, [spec], preview_tag="dryrun").items
    real, rendered = item.reviewed, item.preview
    destructive = reconcile.Reviewed(item.planned, real.hash, "destructive", real.ops)
    view = wire.PlanView.of(destructive, rendered)
    warnings = webhook.plan_warnings(view, None)
    assert warnings[0] == f"extschema plan {real.hash}: destructive, {len(real.ops)} operation(s)"
    assert warnings[1] == (
        f"extschema: needs approval: set spec.approvedPlanHash: {real.hash} (or add it to spec.approvedPlanHashes)"
    )
    assert webhook.plan_warnings(view, {real.hash})[1].startswith("SQL 1: ")  # approved
    assert webhook.plan_warnings(view, {"0123456789abcdef", real.hash})[1].startswith("SQL 1: ")  # one of several
    assert webhook.plan_warnings(view, {"0123456789abcdef"})[1].startswith("extschema: needs approval")


def _spec(**fields: Any) -> Any:
    return loaded("notes", TITLE, **fields).spec


def test_target_ref_with_a_selector_is_refused_at_the_selector() -> None:
    (problem,) = webhook.both_targets({"targetRef": {"name": "a"}, "targetSelector": {}})
    assert (problem.code, problem.path) == ("ES029", "spec.targetSelector")
    refusal = webhook.refusal(ProblemError([problem], Kind.INVALID))
    assert refusal.code == 422 and str(refusal).startswith("spec.targetSelector: ES029: spec.targetRef and ")
    assert webhook.both_targets({"targetSelector": {}}) == webhook.both_targets({"targetRef": {"name": "a"}}) == []


def test_target_warnings_name_an_ignored_rollout_and_a_selector_matching_nothing() -> None:
    (ignored,) = webhook.target_warnings(_spec(rollout={"maxParallel": 2}), None)
    assert ignored.startswith("extschema: ES029: spec.rollout: ignored")
    selector = {"matchLabels": {"app": "orders"}, "matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]}
    (nothing,) = webhook.target_warnings(_spec(targetSelector=selector), [])
    assert nothing.startswith("extschema: ES027: spec.targetSelector: no DatabaseTarget of the namespace matches")
    assert "'app=orders,!legacy'" in nothing and all(len(w) <= webhook.MAX_WARNING for w in (ignored, nothing))
    assert webhook.target_warnings(_spec(targetSelector=selector), ["site-a"]) == []
    assert webhook.target_warnings(_spec(targetSelector=selector), None) == []  # not known: nothing said
    assert webhook.target_warnings(_spec(targetSelector=selector, rollout={"maxParallel": 2}), ["a"]) == []


def test_the_first_target_checked_is_the_first_the_rollout_reaches() -> None:
    labels = {
        "site-c": {"app": "orders", "canary": "true"},
        "site-a": {"app": "orders"},
        "site-b": {"app": "orders", "canary": "true"},
        "other": {"app": "billing"},
    }
    selector = {"matchLabels": {"app": "orders"}}
    assert webhook.first_target(_spec(targetSelector=selector), labels) == ["site-a", "site-b", "site-c"]
    canary = {"canary": {"matchLabels": {"canary": "true"}}}
    assert webhook.first_target(_spec(targetSelector=selector, rollout=canary), labels) == [
        "site-b",
        "site-c",
        "site-a",
    ]
    assert webhook.first_target(_spec(), labels) == []


def test_an_added_approval_matching_no_waiting_plan_is_named() -> None:
    spec = {"pluginId": "orders", "version": "2.0.0", "approvedPlanHashes": ["aaaa000011112222"]}
    status = {
        "pendingPlan": {"hash": "1cd909acc61896c1"},
        "targets": [
            {"name": "a", "pendingPlan": {"hash": "1cd909acc61896c1"}},
            {"name": "b", "pendingPlan": {"hash": "335d66789db1e989"}},
        ],
    }
    old = {"spec": spec, "status": status}

    def update(**approvals: Any) -> list[str]:
        return webhook.approval_warnings(old, {"spec": {**spec, **approvals}})

    (typo,) = update(approvedPlanHashes=["aaaa000011112222", "335d66789db1e98a"])
    assert typo.startswith("extschema: ES028: spec.approvedPlanHashes[1]: 335d66789db1e98a matches no plan waiting")
    assert "(1cd909acc61896c1, 335d66789db1e989)" in typo  # the ones waiting
    (single,) = update(approvedPlanHash="0123456789abcdef")
    assert single.startswith("extschema: ES028: spec.approvedPlanHash: 0123456789abcdef")
    assert update(approvedPlanHashes=["aaaa000011112222", "335d66789db1e989"]) == []  # a waiting plan's
    assert update(approvedPlanHash="1cd909acc61896c1") == []
    # An approval committed with a change of the spec is for a plan not made yet; a create has no plans.
    changed = {"spec": {**spec, "version": "2.1.0", "approvedPlanHash": "0123456789abcdef"}}
    assert webhook.approval_warnings(old, changed) == []
    assert webhook.approval_warnings(None, changed) == []
    assert (
        webhook.approval_warnings(
            {"spec": spec, "status": {}}, {"spec": {**spec, "approvedPlanHash": "0123456789abcdef"}}
        )
        == []
    )


def test_long_statements_are_split_not_truncated() -> None:
    statement = "CREATE TABLE t (\n" + ",\n".join(f"  column_{i} VARCHAR(200) NOT NULL" for i in range(40)) + "\n)"
    lines = webhook.sql_warnings([statement, "SELECT 1"])
    assert all(len(line) <= webhook.MAX_WARNING for line in lines)
    parts = [line.split(": ", 1)[1] for line in lines if line.startswith("SQL 1 (")]
    assert len(parts) > 1 and "".join(parts) == " ".join(statement.split())
    assert lines[-1] == "SQL 2: SELECT 1"


def test_an_update_that_keeps_the_spec_is_never_checked() -> None:
    body = {"spec": {"pluginId": "x"}, "metadata": {"finalizers": []}}
    assert webhook.unchanged(body, {**body, "metadata": {"finalizers": ["extschema.io/cleanup"]}})
    assert not webhook.unchanged(body, {"spec": {"pluginId": "y"}})
    assert not webhook.unchanged(None, body)  # CREATE


def test_generated_certificate_is_trusted_for_its_ip(tmp_path: Path) -> None:
    files = certificates.generate(tmp_path, ["127.0.0.1"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.certfile, files.keyfile)
    client = ssl.create_default_context(cafile=str(files.cafile))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        import threading

        def accept() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError, OSError), server.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() is not None  # the handshake verified the chain and the IP SAN
        thread.join(5)
    assert oct(files.keyfile.stat().st_mode & 0o777) == "0o600"


# --- end to end: kube-apiserver calls the webhook ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_tls(port: int, operator: Operator, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        assert operator.proc is not None and operator.proc.poll() is None, operator.tail()
        time.sleep(0.3)
    raise AssertionError(f"the webhook server never listened on {port}:\n{operator.tail()}")


@contextlib.contextmanager
def webhook_configuration(kube: Kube, port: int, cafile: Path, *, mutating: bool = False) -> Iterator[None]:
    """A ValidatingWebhookConfiguration (or, *mutating*, the MutatingWebhookConfiguration of ``--shards``) for the
    test's namespace only (other tests never see it), calling the operator's webhook server on *port*."""
    kind = "MutatingWebhookConfiguration" if mutating else "ValidatingWebhookConfiguration"
    name = f"extschema-{'shard-' if mutating else ''}{kube.ns}"
    hook: dict[str, Any] = {
        "name": "shard.extschema.io" if mutating else "validate.extschema.io",
        "clientConfig": {
            "url": f"https://127.0.0.1:{port}/{webhook.SHARD_HANDLER_ID if mutating else webhook.HANDLER_ID}",
            "caBundle": base64.b64encode(cafile.read_bytes()).decode(),
        },
        "rules": [
            {
                "apiGroups": ["extschema.io"],
                "apiVersions": ["v1alpha1"],
                "resources": ["extensionschemas"],
                "operations": ["CREATE"] if mutating else ["CREATE", "UPDATE"],
                "scope": "*",
            }
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube.ns}},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 15,
    }
    if mutating:
        hook["reinvocationPolicy"] = "Never"
    doc = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [hook],
    }
    kube.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    try:
        yield
    finally:
        kube.cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found")


def dry_run(kube: Kube, doc: dict[str, Any]) -> Any:
    return kube("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc), check=False)


@pytest.mark.k8s
@pytest.mark.slow
def test_kube_apiserver_refuses_a_conflicting_schema_through_the_webhook(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str, tmp_path: Path
) -> None:
    files = certificates.generate(tmp_path / "certs", ["127.0.0.1"])
    port, metrics_port = free_port(), free_port()
    operator = run_operator(
        sqlite_url,
        "--metrics-port",
        str(metrics_port),
        "--webhook-port",
        str(port),
        "--webhook-cert",
        str(files.certfile),
        "--webhook-key",
        str(files.keyfile),
        "--webhook-ca",
        str(files.cafile),
    )
    wait_for_tls(port, operator)
    # Stored before the webhook was configured (as when it is bypassed): a conflict loser, left to the reconcile.
    kube.apply(simple("early", "early"))
    kube.wait("early")
    kube.apply(simple("loser", "early"))
    kube.wait_reason("loser", "Conflict")
    with webhook_configuration(kube, port, files.cafile):
        # A valid schema: admitted (a server-side dry run first shows its SQL), then applied as usual.
        first = simple("first", "notes")
        shown = dry_run(kube, first)
        assert shown.returncode == 0, shown.stderr
        assert "Warning: extschema plan " in shown.stderr
        assert re.search(r"Warning: SQL \d+: CREATE TABLE", shown.stderr), shown.stderr
        assert kube("get", "exts", "first", check=False).returncode != 0  # a dry run stores nothing
        kube.apply(first)
        kube.wait("first")
        # Another resource claiming the same plugin: refused at apply, and with --dry-run=server.
        second = simple("second", "notes")
        for out in (dry_run(kube, second), kube.apply(second, check=False)):
            assert out.returncode != 0
            assert 'admission webhook "validate.extschema.io" denied the request' in out.stderr, out.stderr
            assert "ES2" in out.stderr and f"{kube.ns}/first" in out.stderr
        assert "NotFound" in kube("get", "exts", "second", check=False).stderr
        # The owner changing its own spec is admitted; its dry run shows the ALTER.
        grown = schema_doc(
            "first",
            "notes",
            [{"name": "item", "fields": [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]}],
            version="1.1.0",
        )
        shown = dry_run(kube, grown)
        assert shown.returncode == 0 and "ADD COLUMN" in shown.stderr.upper(), shown.stderr
        kube.apply(grown)
        kube.wait_until("first", lambda b: (b.get("status") or {}).get("appliedVersion") == "1.1.0", "version 1.1.0")
        # What the CRD's schema cannot see (a default of the wrong type) is refused too, with its path.
        bad = schema_doc(
            "bad", "bad", [{"name": "t", "fields": [{"name": "flag", "type": "Boolean", "default": "yes"}]}]
        )
        out = kube.apply(bad, check=False)
        assert out.returncode != 0 and "spec.tables[0].fields[0]" in out.stderr, out.stderr
        # The loser's spec conflicts, yet updates that keep the spec (labels; kopf's finalizer removal) pass:
        # it can still be deleted.
        kube("label", "exts", "loser", "team=a")
        kube("delete", "exts", "loser", "--wait=false")
        kube.gone("loser")
        assert kube.get("early")["status"]["tables"]  # the winner's tables stay
    counted = scrape(metrics_port, operator)
    # Refused: the conflicting one twice (dry run, apply) and the bad default; admitted: two dry runs and two applies.
    assert counted['extschema_admission_reviews_total{result="refused"}'] == 3
    # At least those four: on a loaded machine kube-apiserver may send a review again (seen once in CI).
    assert counted['extschema_admission_reviews_total{result="admitted"}'] >= 4


@pytest.mark.k8s
@pytest.mark.slow
def test_the_webhook_warns_about_targets_and_approvals(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str, tmp_path: Path
) -> None:
    """Through kube-apiserver: a selector matching no DatabaseTarget (ES027) and a rollout without one (ES029)
    are admitted with a warning; a selector's dry run is checked against the first target the rollout reaches;
    a mistyped approval of a waiting plan is named (ES028), the right one in approvedPlanHashes applies it."""
    files = certificates.generate(tmp_path / "certs", ["127.0.0.1"])
    port = free_port()
    operator = run_operator(
        sqlite_url,
        *("--webhook-port", str(port), "--webhook-cert", str(files.certfile)),
        *("--webhook-key", str(files.keyfile), "--webhook-ca", str(files.cafile)),
    )
    wait_for_tls(port, operator)
    selector = {"matchLabels": {"app": "orders"}}
    fleet = simple("fleet", "fleet", targetSelector=selector, rollout={"canary": {"matchLabels": {"canary": "yes"}}})
    with webhook_configuration(kube, port, files.cafile):
        nowhere = dry_run(kube, fleet)
        assert nowhere.returncode == 0, nowhere.stderr
        assert "Warning: extschema: ES027: spec.targetSelector: no DatabaseTarget" in nowhere.stderr
        assert "'app=orders'" in nowhere.stderr
        for name, labels in (("site-a", {"app": "orders"}), ("site-b", {"app": "orders", "canary": "yes"})):
            target = {"apiVersion": "extschema.io/v1alpha1", "kind": "DatabaseTarget"}
            kube.apply({**target, "metadata": {"name": name, "labels": labels}, "spec": {"url": sqlite_url}})
        checked = dry_run(kube, fleet)
        assert checked.returncode == 0, checked.stderr
        assert "ES027" not in checked.stderr
        assert "checked against DatabaseTarget site-b (the first of 2 the rollout reaches)" in checked.stderr
        assert re.search(r"Warning: SQL \d+: CREATE TABLE", checked.stderr), checked.stderr
        one = simple("one", "one", rollout={"maxParallel": 3})
        ignored = dry_run(kube, one)
        assert ignored.returncode == 0 and "Warning: extschema: ES029: spec.rollout: ignored" in ignored.stderr

        # A destructive change waits; a mistyped approval of it is named at once, the right one applies it.
        fields = [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]
        doc = schema_doc("orders", "orders", [{"name": "item", "fields": fields}])
        kube.apply(doc)
        kube.wait("orders")
        doc["spec"] |= {"version": "2.0.0", "tables": [{"name": "item", "fields": fields[:1]}]}
        kube.apply(doc)
        pending = kube.wait_reason("orders", "ApprovalRequired")["status"]["pendingPlan"]["hash"]
        typo = pending[:-1] + ("0" if pending[-1] != "0" else "1")
        patched = kube(
            "patch", "exts", "orders", "--type=merge", "-p", f'{{"spec":{{"approvedPlanHashes":["{typo}"]}}}}'
        )
        assert (
            f"Warning: extschema: ES028: spec.approvedPlanHashes[0]: {typo} matches no plan waiting" in patched.stderr
        )
        assert pending in patched.stderr
        right = kube(
            "patch",
            "exts",
            "orders",
            "--type=merge",
            "-p",
            f'{{"spec":{{"approvedPlanHashes":["{typo}","{pending}"]}}}}',
        )
        assert "ES028" not in right.stderr, right.stderr
        kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/orders", "--timeout=60s")
        kube.wait("orders")


# --- the chart: webhook Service, configuration and certificate --------------------------------------

helm = chart.helm


@pytest.mark.helm
def test_chart_webhook_with_cert_manager_and_its_own_issuer(helm: Path) -> None:
    docs = chart.template(helm, "--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=true")
    (config,) = chart.by_kind(docs, "ValidatingWebhookConfiguration")
    (certificate,) = chart.by_kind(docs, "Certificate")
    (issuer,) = chart.by_kind(docs, "Issuer")
    (service,) = chart.named(docs, "Service", "extschema")
    (deployment,) = chart.by_kind(docs, "Deployment")
    hook = config["webhooks"][0]
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert hook["clientConfig"]["service"] == {"name": name, "namespace": namespace, "port": 443, "path": "/validate"}
    assert "caBundle" not in hook["clientConfig"]  # injected by cert-manager from the Certificate
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{namespace}/{certificate['metadata']['name']}"
    )
    assert f"{name}.{namespace}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert "namespaceSelector" not in hook  # cluster-wide operator: every namespace
    # The pod serves the webhook on the port the Service targets, with the Certificate's Secret mounted.
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert "--webhook-port=9443" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
    assert f"--webhook-cert={mount['mountPath']}/tls.crt" in container["args"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]


@pytest.mark.helm
def test_chart_webhook_needs_a_certificate_and_follows_the_watched_namespaces(helm: Path) -> None:
    out = chart.run_helm(
        helm, "template", "x", str(chart.CHART), "--kube-version", chart.KUBERNETES_VERSION,
        "--set", "webhook.enabled=true", check=False,
    )  # fmt: skip
    assert out.returncode != 0 and "webhook.certManager.enabled, or webhook.existingSecret" in out.stderr
    docs = chart.template(
        helm, "-f", str(chart.CHART / "ci" / "observe-values.yaml"), "--set", "watch.namespaces={a,b}"
    )
    (config,) = chart.by_kind(docs, "ValidatingWebhookConfiguration")
    hook = config["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore" and base64.b64decode(hook["clientConfig"]["caBundle"]).startswith(
        b"-----BEGIN CERTIFICATE-----"
    )
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["a", "b"]
    assert not chart.by_kind(docs, "Certificate") and not chart.by_kind(docs, "Issuer")
    out = chart.run_helm(
        helm, "template", "x", str(chart.CHART), "--kube-version", chart.KUBERNETES_VERSION,
        "--set", "webhook.failurePolicy=Maybe", check=False,
    )  # fmt: skip
    assert out.returncode != 0 and "/webhook/failurePolicy" in out.stderr


def test_run_wants_the_certificate_and_its_key_together(tmp_path: Path) -> None:
    files = certificates.generate(tmp_path, ["127.0.0.1"])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "extschema",
            "run",
            "-A",
            "--webhook-port",
            "9443",
            "--webhook-cert",
            str(files.certfile),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert proc.returncode == 2 and "pass --webhook-cert and --webhook-key together" in proc.stderr
