"""The chart's RBAC on a real API server: what the operator's ServiceAccount can and cannot do.

``kubectl auth can-i --as=system:serviceaccount:NS:SA`` asks the API server's own authorizer, in both watch
modes (cluster-wide and a list of namespaces). Then the operator itself runs with nothing but that
ServiceAccount's token and brings the kustomize example (a DatabaseTarget whose URL is in a Secret, and an
ExtensionSchema) to Ready and deletes it: the rules are enough, not only small. With rbac.pluginRoleSecrets it
also writes a plugin's credentials Secret (a DatabaseTarget with spec.pluginRoles on the throwaway PostgreSQL);
without it, no Secret write is allowed anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.controlplane import KUBERNETES_VERSION, Cluster
from tests.controlplane.cluster import free_port, stop_process
from tests.controlplane.helm import ensure_helm

pytestmark = [pytest.mark.k8s, pytest.mark.helm, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "extschema"
KUSTOMIZE_BASE = REPO / "examples" / "kustomize" / "base"


@dataclass(frozen=True)
class Release:
    """The chart's RBAC objects applied for one value set; ``who`` is the ServiceAccount's user name."""

    namespace: str
    service_account: str
    watched: tuple[str, ...]
    others: tuple[str, ...]
    #: The operator container of the rendered Deployment (command, args, probes).
    container: dict[str, Any]

    @property
    def who(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _render(release: str, namespace: str, values: list[str]) -> list[dict[str, Any]]:
    """The chart without CRDs (they come from crds/)."""
    args = [str(ensure_helm()), "template", release, str(CHART), "-n", namespace]
    args += ["--kube-version", KUBERNETES_VERSION, "--set", "crds.create=false", *values]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def crds(kube_cluster: Cluster) -> Cluster:
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/extensionschemas.extschema.io", "crd/databasetargets.extschema.io"
    )
    return kube_cluster


@contextlib.contextmanager
def _installed(
    kube_cluster: Cluster, count: int, watched: int, values: Callable[[list[str]], list[str]]
) -> Iterator[Release]:
    """The RBAC of one release in the first of *count* fresh namespaces; ``values(namespaces)`` gives its --set
    flags; the next *watched* namespaces are the ones the release should cover, the rest others."""
    names = [f"rbac-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for name in names:
        kube_cluster.kubectl("create", "namespace", name)
    release = f"r{uuid.uuid4().hex[:6]}"
    docs = _render(release, names[0], values(names))
    # No pods run here (no kubelet): everything but the Deployment is applied; the test runs its container.
    rbac = [d for d in docs if d["kind"] != "Deployment"]
    kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    (deployment,) = (d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    try:
        yield Release(
            names[0], f"{release}-extschema", tuple(names[1 : 1 + watched]), tuple(names[1 + watched :]), container
        )
    finally:
        for name in names:
            kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def cluster_wide(crds: Cluster) -> Iterator[Release]:
    """Default values: every namespace watched."""
    with _installed(crds, 3, 2, lambda names: []) as release:
        yield release


@pytest.fixture(scope="module")
def secrets_limited(crds: Cluster) -> Iterator[Release]:
    """Cluster-wide, Secrets readable only in the first other namespace (rbac.secretNamespaces)."""
    with _installed(crds, 3, 1, lambda names: ["--set", f"rbac.secretNamespaces={{{names[1]}}}"]) as release:
        yield release


@pytest.fixture(scope="module")
def namespaced(crds: Cluster) -> Iterator[Release]:
    """watch.namespaces: two watched namespaces, one other."""

    def values(names: list[str]) -> list[str]:
        return ["--set", f"watch.namespaces={{{names[1]},{names[2]}}}", "--set", f"healthPort={free_port()}"]

    with _installed(crds, 4, 2, values) as release:
        yield release


@pytest.fixture(scope="module")
def cluster_wide_writes(crds: Cluster) -> Iterator[Release]:
    """Default values plus rbac.pluginRoleSecrets: every namespace watched, credentials Secrets writable."""
    with _installed(crds, 3, 2, lambda names: ["--set", "rbac.pluginRoleSecrets=true"]) as release:
        yield release


@pytest.fixture(scope="module")
def namespaced_writes(crds: Cluster) -> Iterator[Release]:
    """watch.namespaces (two watched, one other) plus rbac.pluginRoleSecrets."""

    def values(names: list[str]) -> list[str]:
        watched = f"watch.namespaces={{{names[1]},{names[2]}}}"
        return ["--set", watched, "--set", "rbac.pluginRoleSecrets=true", "--set", f"healthPort={free_port()}"]

    with _installed(crds, 4, 2, values) as release:
        yield release


def can(kube_cluster: Cluster, release: Release, verb: str, resource: str, *scope: str) -> bool:
    proc = kube_cluster.kubectl("auth", "can-i", verb, resource, f"--as={release.who}", *scope, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


def check(
    kube_cluster: Cluster,
    release: Release,
    namespace: str,
    allowed: list[tuple[str, str]],
    denied: list[tuple[str, str]],
) -> None:
    """In *namespace*, the release's ServiceAccount may do everything in *allowed* and nothing in *denied*."""
    for verb, resource in allowed:
        assert can(kube_cluster, release, verb, resource, "-n", namespace), f"cannot {verb} {resource} in {namespace}"
    for verb, resource in denied:
        assert not can(kube_cluster, release, verb, resource, "-n", namespace), f"can {verb} {resource} in {namespace}"


#: What the operator does (kopf and its own requests), in every namespace it watches.
NEEDED = [
    ("list", "extensionschemas.extschema.io"),
    ("watch", "extensionschemas.extschema.io"),
    ("patch", "extensionschemas.extschema.io"),
    ("get", "extensionschemas.extschema.io/work-order-tags"),  # the drift loop reads one before writing InSync
    ("patch", "extensionschemas.extschema.io/status"),
    ("list", "databasetargets.extschema.io"),
    ("watch", "databasetargets.extschema.io"),
    ("patch", "databasetargets.extschema.io"),
    ("patch", "databasetargets.extschema.io/status"),
    ("create", "events"),
    ("get", "secrets/app-db"),
]
#: What it never does: Secrets beyond a named get, writing or deleting resources, anything else.
NEVER = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "secrets"),
    ("patch", "secrets"),
    ("update", "secrets"),
    ("delete", "secrets"),
    ("create", "extensionschemas.extschema.io"),
    ("update", "extensionschemas.extschema.io"),
    ("delete", "extensionschemas.extschema.io"),
    ("delete", "databasetargets.extschema.io"),
    ("update", "extensionschemas.extschema.io/status"),
    ("get", "configmaps"),
    ("create", "pods"),
    ("create", "pods/exec"),
    ("get", "serviceaccounts/token"),
    ("create", "serviceaccounts/token"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("delete", "events"),
    ("patch", "deployments.apps"),
]
#: With rbac.pluginRoleSecrets: the calls of controller/plugin_roles.py on a credentials Secret (GET by name,
#: POST when missing, merge-PATCH of its data), which NEVER otherwise forbids.
PLUGIN_ROLE_SECRETS = [
    ("get", "secrets/tickets-db-credentials"),
    ("create", "secrets"),
    ("patch", "secrets/tickets-db-credentials"),
]
#: Still never, with rbac.pluginRoleSecrets: Secrets are not listed, watched, replaced or deleted.
NEVER_WITH_WRITES = [(v, r) for v, r in NEVER if (v, r) not in {("create", "secrets"), ("patch", "secrets")}]
#: Cluster-scoped: CRDs are read to discover the served resources; nothing else.
CLUSTER_NEEDED = [("list", "customresourcedefinitions.apiextensions.k8s.io"), ("watch", "customresourcedefinitions")]
CLUSTER_NEVER = [
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("list", "nodes"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
]


def test_cluster_wide_mode(crds: Cluster, cluster_wide: Release) -> None:
    for namespace in (*cluster_wide.watched, *cluster_wide.others):
        check(crds, cluster_wide, namespace, NEEDED, NEVER)
    assert can(crds, cluster_wide, "list", "extensionschemas.extschema.io", "--all-namespaces")
    assert not can(crds, cluster_wide, "list", "secrets", "--all-namespaces")
    assert not can(crds, cluster_wide, "watch", "secrets", "--all-namespaces")
    assert not can(crds, cluster_wide, "list", "namespaces")  # kopf needs them only to match watched namespaces
    for verb, resource in CLUSTER_NEEDED:
        assert can(crds, cluster_wide, verb, resource)
    for verb, resource in CLUSTER_NEVER:
        assert not can(crds, cluster_wide, verb, resource), f"can {verb} {resource}"


def test_cluster_wide_mode_with_secret_namespaces(crds: Cluster, secrets_limited: Release) -> None:
    (allowed,) = secrets_limited.watched
    assert can(crds, secrets_limited, "get", "secrets/app-db", "-n", allowed)
    for namespace in secrets_limited.others:
        assert not can(crds, secrets_limited, "get", "secrets/app-db", "-n", namespace)
        assert can(crds, secrets_limited, "watch", "extensionschemas.extschema.io", "-n", namespace)
    assert not can(crds, secrets_limited, "get", "secrets/app-db", "--all-namespaces")
    assert not can(crds, secrets_limited, "list", "secrets", "-n", allowed)


def test_namespaced_mode(crds: Cluster, namespaced: Release) -> None:
    for namespace in namespaced.watched:
        check(crds, namespaced, namespace, NEEDED, NEVER)
    for namespace in (*namespaced.others, namespaced.namespace):
        check(crds, namespaced, namespace, [], NEEDED)
    for verb in ("list", "watch", "patch"):
        assert not can(crds, namespaced, verb, "extensionschemas.extschema.io", "--all-namespaces")
    for verb, resource in [*CLUSTER_NEEDED, ("list", "namespaces"), ("watch", "namespaces")]:
        assert can(crds, namespaced, verb, resource)
    for verb, resource in CLUSTER_NEVER:
        assert not can(crds, namespaced, verb, resource), f"can {verb} {resource}"


def test_plugin_role_secrets_are_opt_in(crds: Cluster, cluster_wide: Release, namespaced: Release) -> None:
    for release in (cluster_wide, namespaced):
        for namespace in release.watched:
            check(crds, release, namespace, [], PLUGIN_ROLE_SECRETS[1:])


def test_cluster_wide_mode_with_plugin_role_secrets(crds: Cluster, cluster_wide_writes: Release) -> None:
    release = cluster_wide_writes
    for namespace in (*release.watched, *release.others):
        check(crds, release, namespace, [*NEEDED, *PLUGIN_ROLE_SECRETS], NEVER_WITH_WRITES)
    for verb in ("list", "watch"):
        assert not can(crds, release, verb, "secrets", "--all-namespaces")


def test_namespaced_mode_with_plugin_role_secrets(crds: Cluster, namespaced_writes: Release) -> None:
    release = namespaced_writes
    for namespace in release.watched:
        check(crds, release, namespace, [*NEEDED, *PLUGIN_ROLE_SECRETS], NEVER_WITH_WRITES)
    for namespace in (*release.others, release.namespace):
        check(crds, release, namespace, [], PLUGIN_ROLE_SECRETS)
    for verb in ("get", "list", "watch", "create", "patch"):
        assert not can(crds, release, verb, "secrets", "--all-namespaces")


# --- the operator itself, with only the ServiceAccount's token ----------------------------------------


def _service_account_kubeconfig(kube_cluster: Cluster, release: Release, path: Path) -> Path:
    token = kube_cluster.kubectl(
        "create", "token", release.service_account, "-n", release.namespace, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    cluster = next(c for c in admin["clusters"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _kustomized(kube_cluster: Cluster, namespace: str) -> str:
    out = kube_cluster.kubectl("kustomize", str(KUSTOMIZE_BASE)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(docs)


@contextlib.contextmanager
def _operator(kube_cluster: Cluster, release: Release, tmp_path: Path) -> Iterator[None]:
    """The operator, run with the rendered Deployment's command and args and nothing but the release's
    ServiceAccount token; afterwards its log must show no 403 (every call it made was allowed)."""
    kubeconfig = _service_account_kubeconfig(kube_cluster, release, tmp_path / "operator.kubeconfig")
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "EXTSCHEMA_RECHECK_SECONDS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])),
    }
    log = tmp_path / "operator.log"
    assert release.container["command"] == ["extschema"]
    with open(log, "wb") as out:  # the Deployment's command and args, as the pod would run them
        proc = subprocess.Popen(
            [sys.executable, "-m", "extschema", *release.container["args"]],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,  # its own process group, which stop_process ends (SIGTERM, then SIGKILL)
        )
    try:
        yield
    finally:
        stop_process(proc.pid, proc, grace=20)
        print(log.read_text(errors="replace")[-4000:])
    # A status code 403, not the digits inside a uid (JSON log lines carry the resource's uid).
    lines = log.read_text(errors="replace").splitlines()
    forbidden = [line for line in lines if re.search(r"\b403\b", line) or "Forbidden" in line]
    assert not forbidden, forbidden


def _url_secret(kube_cluster: Cluster, namespace: str, url: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-db", "namespace": namespace},
        "data": {"url": base64.b64encode(url.encode()).decode()},
    }
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))


def test_operator_runs_with_exactly_the_chart_rbac(crds: Cluster, namespaced: Release, tmp_path: Path) -> None:
    namespace = namespaced.watched[0]
    database = tmp_path / "app.db"
    _url_secret(crds, namespace, f"sqlite:///{database}")
    kubeconfig = _service_account_kubeconfig(crds, namespaced, tmp_path / "probe.kubeconfig")
    denied = crds.kubectl("--kubeconfig", str(kubeconfig), "get", "secrets", "-n", namespace, check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr  # the token is the ServiceAccount's
    container = namespaced.container
    with _operator(crds, namespaced, tmp_path):
        crds.kubectl("apply", "-f", "-", input=_kustomized(crds, namespace))
        crds.kubectl("-n", namespace, "wait", "--for=condition=Ready", "dbt/app-db", "--timeout=60s")
        crds.kubectl("-n", namespace, "wait", "--for=condition=Ready", "exts/work-order-tags", "--timeout=60s")
        # The drift loop's first check, right after the migration, reads the resource and writes InSync.
        crds.kubectl("-n", namespace, "wait", "--for=condition=InSync", "exts/work-order-tags", "--timeout=60s")
        # The probes' endpoint answers where the Deployment says.
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        for probe in (container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]):
            url = f"http://127.0.0.1:{ports[probe['port']]}{probe['path']}"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200, url
        body = json.loads(crds.kubectl("-n", namespace, "get", "exts/work-order-tags", "-o", "json").stdout)
        assert body["status"]["tables"] == ["ext_tags__tag"]
        assert body["metadata"]["finalizers"] == ["extschema.io/cleanup"]
        events = crds.kubectl("-n", namespace, "get", "events", "-o", "json").stdout
        assert "MigrationSucceeded" in events  # posted with the ServiceAccount's create on events
        crds.kubectl("-n", namespace, "delete", "exts/work-order-tags", "--timeout=60s")  # finalizer removed
    assert {"ext_tags__tag"} <= _sqlite_tables(database)  # deletionPolicy Retain: unregistered, tables kept


TICKETS = {
    "pluginId": "tickets",
    "version": "1.0.0",
    "tables": [{"name": "ticket", "fields": [{"name": "title", "type": "String", "required": True}]}],
}


@pytest.mark.postgres
def test_operator_writes_plugin_credentials_with_the_chart_rbac(
    crds: Cluster, namespaced_writes: Release, pg_url: str, tmp_path: Path
) -> None:
    """rbac.pluginRoleSecrets is enough for spec.pluginRoles: with only the chart's ServiceAccount, the operator
    reads the target's URL Secret, creates the plugin's role and writes <name>-db-credentials next to the
    ExtensionSchema, which becomes Ready (with the default RBAC it would report InvalidTarget)."""
    namespace = namespaced_writes.watched[1]
    _url_secret(crds, namespace, pg_url)
    target = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "DatabaseTarget",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"urlSecretRef": {"name": "app-db"}, "pluginRoles": True},
    }
    schema = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "tickets", "namespace": namespace},
        "spec": {**TICKETS, "targetRef": {"name": "app"}},
    }
    kubectl = functools.partial(crds.kubectl, "-n", namespace)
    with _operator(crds, namespaced_writes, tmp_path):
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all([target, schema]))
        kubectl("wait", "--for=condition=Ready", "exts/tickets", "--timeout=60s")
        kubectl("wait", "--for=condition=InSync", "exts/tickets", "--timeout=60s")  # the drift loop's first check
        secret = json.loads(kubectl("get", "secret", "tickets-db-credentials", "-o", "json").stdout)
        data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
        assert set(data) == {"username", "password", "schema", "url"} and data["schema"] == "ext_tickets"
        (owner,) = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("ExtensionSchema", "tickets")
        with psycopg.connect(data["url"], autocommit=True) as conn:  # the role the Secret hands out works
            conn.execute("INSERT INTO ext_tickets.ticket (title) VALUES ('first')")
            assert conn.execute("SELECT title FROM ext_tickets.ticket").fetchall() == [("first",)]
        # Version 1.1.0 (a second table) is reconciled again: the existing Secret is read and kept (same
        # password), and the role covers the new table.
        tables = [*TICKETS["tables"], {"name": "comment", "fields": [{"name": "body", "type": "Text"}]}]
        patch = json.dumps({"spec": {"version": "1.1.0", "tables": tables}})
        kubectl("patch", "exts/tickets", "--type=merge", "-p", patch)
        kubectl("wait", "--for=jsonpath={.status.appliedVersion}=1.1.0", "exts/tickets", "--timeout=60s")
        kubectl("wait", "--for=condition=Ready", "exts/tickets", "--timeout=60s")
        again = json.loads(kubectl("get", "secret", "tickets-db-credentials", "-o", "json").stdout)
        assert base64.b64decode(again["data"]["password"]).decode() == data["password"]
        with psycopg.connect(data["url"], autocommit=True) as conn:
            conn.execute("INSERT INTO ext_tickets.comment (body) VALUES ('second')")
        kubectl("delete", "exts/tickets", "--timeout=60s")  # the role is dropped; the Secret goes by ownerReference


def _sqlite_tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
