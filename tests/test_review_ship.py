"""A platform team's checks of what ships, on a real API server: what NOTES.txt prints applies as printed with a
default database, `helm upgrade` moves a release from one value set to another (namespaced Roles to a ClusterRole
and back), `helm uninstall` leaves the users' ExtensionSchemas and the CRDs in place, and the Argo CD health check
and `approve` action give the documented answers on objects a running operator wrote.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import test_argocd as argocd
from tests import test_operator_e2e as e2e
from tests.controlplane import Cluster
from tests.test_chart import (
    ADOPT,
    CHART,
    NAMED_NAMESPACES,
    _adopt_existing_crds,
    _notes_example,
    by_kind,
    helm,
    namespaces,
    run_helm,
    values_args,
)

pytestmark = [pytest.mark.k8s]

__all__ = ["crds", "helm", "kube", "namespaces", "run_operator"]  # fixtures, imported so pytest finds them here


def _manifest(helm: Path, kube: list[str], release: str, namespace: str) -> list[dict[str, Any]]:
    out = run_helm(helm, "get", "manifest", release, "-n", namespace, *kube).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _exists(kube_cluster: Cluster, doc: dict[str, Any]) -> bool:
    scope = ["-n", doc["metadata"]["namespace"]] if doc["metadata"].get("namespace") else []
    found = kube_cluster.kubectl("get", doc["kind"], doc["metadata"]["name"], *scope, check=False)
    return found.returncode == 0


@pytest.mark.helm
def test_notes_example_applies_upgrade_switches_value_sets_and_uninstall_keeps_user_data(
    helm: Path, kube_cluster: Cluster, namespaces: str
) -> None:
    release = f"ship-{uuid.uuid4().hex[:6]}"
    kube = ["--kubeconfig", str(kube_cluster.kubeconfig)]
    watched = NAMED_NAMESPACES[0]
    _adopt_existing_crds(kube_cluster, release, namespaces)
    installed = run_helm(
        helm, "install", release, str(CHART), "-n", namespaces, *kube, *values_args("namespaced-values"), *ADOPT
    )
    schema_name = ""
    try:
        # NOTES.txt with a default database: the printed ExtensionSchema goes to the first watched namespace.
        assert f"kubectl apply -n {watched} -f -" in installed.stdout, installed.stdout
        example = _notes_example(installed.stdout)
        schema_name = yaml.safe_load(example)["metadata"]["name"]
        applied = kube_cluster.kubectl("apply", "-n", watched, "-f", "-", input=example)
        assert f"extensionschema.extschema.io/{schema_name} created" in applied.stdout

        namespaced = _manifest(helm, kube, release, namespaces)
        assert {r["metadata"]["namespace"] for r in by_kind(namespaced, "Role")} == set(NAMED_NAMESPACES)

        # Upgrade to the cluster-wide, hardened value set: the watched namespaces' Roles go, the ClusterRole takes
        # over the resources, the Deployment watches every namespace.
        run_helm(helm, "upgrade", release, str(CHART), "-n", namespaces, *kube, *values_args("hardened-values"))
        hardened = _manifest(helm, kube, release, namespaces)
        for role in by_kind(namespaced, "Role"):
            assert not _exists(kube_cluster, role), f"{role['metadata']} survived the upgrade"
        for doc in hardened:
            assert _exists(kube_cluster, doc), doc["metadata"]
        (deployment,) = by_kind(hardened, "Deployment")
        live = json.loads(
            kube_cluster.kubectl(
                "-n", namespaces, "get", "deployment", deployment["metadata"]["name"], "-o", "json"
            ).stdout
        )
        assert "--all-namespaces" in live["spec"]["template"]["spec"]["containers"][0]["args"]
        (cluster_role,) = by_kind(hardened, "ClusterRole")
        resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
        assert "extensionschemas" in resources and "secrets" not in resources

        # And back: a second upgrade restores the namespaced Roles.
        run_helm(helm, "upgrade", release, str(CHART), "-n", namespaces, *kube, *values_args("namespaced-values"))
        for role in by_kind(namespaced, "Role"):
            assert _exists(kube_cluster, role), role["metadata"]
    finally:
        uninstalled = run_helm(helm, "uninstall", release, "-n", namespaces, *kube)
    assert "kept due to the resource policy" in uninstalled.stdout + uninstalled.stderr
    # The users' data: the ExtensionSchema applied from NOTES.txt is still there, and so are the CRDs.
    assert schema_name
    kube_cluster.kubectl("-n", watched, "get", "exts", schema_name)
    for name in ("extensionschemas.extschema.io", "databasetargets.extschema.io"):
        kube_cluster.kubectl("get", "crd", name)
    kube_cluster.kubectl(
        "-n", watched, "patch", "exts", schema_name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    kube_cluster.kubectl("-n", watched, "delete", "exts", schema_name, "--wait=false")


# --- Argo CD health and the approve action on objects a running operator wrote ---------------------------------

crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator


def _argo_health(body: dict[str, Any]) -> dict[str, str]:
    return argocd.health(body)


def _approve(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = argocd.run_script(argocd.CUSTOMIZATION / "actions" / "approve" / "action.lua", body)
    return result


@pytest.mark.slow
def test_argo_health_and_approve_on_objects_the_operator_wrote(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], sqlite_url: str
) -> None:
    e2e.load_core(sqlite_url)
    operator = run_operator(sqlite_url)
    fields = [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]
    orders = e2e.schema_doc("orders", "orders", [{"name": "item", "fields": fields}])
    winner = e2e.simple("winner", "shared")
    loser = e2e.simple("loser", "shared")
    loser["spec"]["tables"][0]["fields"].append({"name": "extra", "type": "Int"})
    kube.apply(orders, winner, e2e.simple("paused", "paused", suspend=True))
    kube("apply", "-f", str(e2e.EXAMPLES / "knowledge-base.yaml"))  # its dependency `comments` does not exist
    kube.wait("orders")
    kube.wait("winner")
    kube.apply(loser)

    ready = kube.get("orders")
    assert _argo_health(ready)["status"] == "Healthy"
    assert _approve(ready) == ready  # no plan waits: the action changes nothing
    waiting = _argo_health(kube.wait_reason("knowledge-base", "DependencyNotReady"))
    assert waiting["status"] == "Progressing" and "DependencyNotReady" in waiting["message"]
    stalled = _argo_health(kube.wait_reason("loser", "Conflict"))
    assert stalled["status"] == "Degraded" and "winner" in stalled["message"]
    suspended = _argo_health(kube.wait_reason("paused", "Suspended"))
    assert suspended["status"] == "Suspended"

    # A destructive change waits for approval: Progressing, naming the hash; `approve` sets exactly that hash.
    orders["spec"]["version"] = "2.0.0"
    orders["spec"]["tables"][0]["fields"] = fields[:1]
    kube.apply(orders)
    pending = kube.wait_reason("orders", "ApprovalRequired")
    plan_hash = pending["status"]["pendingPlan"]["hash"]
    health = _argo_health(pending)
    assert health["status"] == "Progressing" and plan_hash in health["message"]
    approved = _approve(pending)
    assert approved["spec"] == {**pending["spec"], "approvedPlanHash": plan_hash}
    assert {k: v for k, v in approved.items() if k != "spec"} == {k: v for k, v in pending.items() if k != "spec"}
    kube("patch", "exts", "orders", "--type=merge", "-p", json.dumps({"spec": {"approvedPlanHash": plan_hash}}))
    kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/orders", f"--timeout={e2e.WAIT}")
    kube.wait("orders")
    assert _argo_health(kube.get("orders"))["status"] == "Healthy"

    # Deletion blocked by a dependent: Progressing, naming the finalizer.
    kube("apply", "-f", str(e2e.EXAMPLES / "comments.yaml"))
    kube.wait("knowledge-base")
    kube("delete", "exts", "comments", "--wait=false")
    deleting = _argo_health(kube.wait_reason("comments", "DeletionBlocked"))
    assert deleting["status"] == "Progressing"
    assert deleting["message"].startswith("Deleting: waiting for finalizer extschema.io/cleanup")

    # A new generation the operator has not seen yet (it is stopped): Progressing, not the old Healthy.
    operator.stop()
    kube("patch", "exts", "winner", "--type=merge", "-p", '{"spec":{"version":"1.0.1"}}')
    assert _argo_health(kube.get("winner"))["status"] == "Progressing"


# --- Pod Security Standards ---------------------------------------------------------------------------------------


@pytest.mark.helm
@pytest.mark.parametrize(
    ("value_set", "extra", "admitted"),
    [
        ("default", [], True),
        ("namespaced-values", [], True),
        ("hardened-values", [], True),
        ("observe-values", [], True),
        # The check itself can fail: the same pod with privilege escalation allowed is refused.
        ("default", ["--set", "containerSecurityContext.allowPrivilegeEscalation=true"], False),
    ],
)
def test_operator_pod_passes_the_restricted_pod_security_standard(
    helm: Path, kube_cluster: Cluster, value_set: str, extra: list[str], admitted: bool
) -> None:
    """The operator's pod, as the Deployment would create it, is admitted in a namespace enforcing `restricted`."""
    namespace = f"pss-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", namespace)
    try:
        kube_cluster.kubectl(
            "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
        )
        out = run_helm(helm, "template", "pss", str(CHART), "-n", namespace, *values_args(value_set), *extra).stdout
        (deployment,) = by_kind([d for d in yaml.safe_load_all(out) if d], "Deployment")
        template = deployment["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pss-probe", "namespace": namespace, "labels": template["metadata"]["labels"]},
            "spec": {**template["spec"], "serviceAccountName": "default"},
        }
        proc = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        if admitted:
            assert proc.returncode == 0 and "created (server dry run)" in proc.stdout, proc.stderr
        else:
            assert proc.returncode != 0 and 'violates PodSecurity "restricted' in proc.stderr, proc.stderr
    finally:
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false")


# --- a SQLite database under the read-only root filesystem ---------------------------------------------------------


@pytest.mark.helm
def test_a_sqlite_database_can_live_on_a_volume_of_its_own(
    helm: Path, kube_cluster: Cluster, namespaces: str, tmp_path: Path
) -> None:
    """The root filesystem is read-only and /tmp is a 64Mi emptyDir lost on restart: a SQLite file (docs/install.md
    supports SQLite) needs a volume the chart mounts, e.g. a PersistentVolumeClaim at /data."""
    values = {
        "database": {"existingSecret": "app-db"},  # url: sqlite:////data/app.db
        "extraVolumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "extschema-data"}}],
        "extraVolumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    out = run_helm(helm, "template", "x", str(CHART), "-n", namespaces, "-f", str(tmp_path / "values.yaml"))
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "extschema-data"}} in pod["volumes"]
    (container,) = pod["containers"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    applied = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=out.stdout)
    assert "deployment.apps/x-extschema created (server dry run)" in applied.stdout
    # Like every value, a mount is checked by the schema (a typo is not dropped by the API server).
    bad = run_helm(helm, "template", "x", str(CHART), "--set", "extraVolumeMounts[0].mountPth=/data", check=False)
    assert bad.returncode == 1 and "additional properties 'mountPth' not allowed" in bad.stderr, bad.stderr
