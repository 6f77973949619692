"""The local control plane is a real Kubernetes API server: checked with kubectl and from Python."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.controlplane import KUBERNETES_VERSION, Cluster, ControlPlane, KubectlError
from tests.controlplane.cluster import pid_alive

pytestmark = pytest.mark.k8s

GROUP = "cptest.extschema.dev"
CRD_NAME = f"widgets.{GROUP}"
CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {CRD_NAME}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {{type: integer, minimum: 1, maximum: 10}}
"""


def widget(name: str, size: object) -> str:
    """A Widget manifest (JSON is valid YAML for kubectl)."""
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"size": size},
        }
    )


@pytest.fixture
def scratch_ns(kube_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) afterwards."""
    name = f"cp-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def test_namespaces_are_listed(kube_cluster: Cluster) -> None:
    out = kube_cluster.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(out)
    names = {ns.metadata.name for ns in client.CoreV1Api(kube_cluster.api_client).list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names


def test_version_is_pinned(kube_cluster: Cluster) -> None:
    if not isinstance(kube_cluster, ControlPlane):
        pytest.skip("existing cluster: its version is not ours to pin")
    raw = json.loads(kube_cluster.kubectl("get", "--raw", "/version").stdout)
    assert raw["gitVersion"] == KUBERNETES_VERSION
    info = client.VersionApi(kube_cluster.api_client).get_code()
    assert info.git_version == KUBERNETES_VERSION
    assert info.minor == KUBERNETES_VERSION.split(".")[1]


def test_crd_established_and_schema_enforced(kube_cluster: Cluster) -> None:
    kube_cluster.kubectl("apply", "-f", "-", input=CRD)
    kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    # Discovery can lag Established by a moment; kubectl caches it, so retry briefly.
    for _ in range(50):
        proc = kube_cluster.kubectl("apply", "-f", "-", input=widget("ok", 3), check=False)
        if proc.returncode == 0:
            break
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr

    with pytest.raises(KubectlError) as err:
        kube_cluster.kubectl("apply", "-f", "-", input=widget("too-big", 50))
    assert "should be less than or equal to 10" in err.value.proc.stderr

    api = client.CustomObjectsApi(kube_cluster.api_client)
    with pytest.raises(ApiException) as api_err:
        api.create_namespaced_custom_object(
            GROUP, "v1", "default", "widgets", json.loads(widget("wrong-type", "three"))
        )
    assert api_err.value.status == 422
    got = api.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "ok")
    assert got["spec"] == {"size": 3}
    kube_cluster.kubectl("delete", "widget", "ok", "-n", "default")


def test_server_side_dry_run(kube_cluster: Cluster, scratch_ns: str) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}, "data": {"a": "1"}})
    out = kube_cluster.kubectl("apply", "--dry-run=server", "-n", scratch_ns, "-f", "-", input=manifest).stdout
    assert "server dry run" in out
    gone = kube_cluster.kubectl("get", "configmap", "dry", "-n", scratch_ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_service_account_without_rbac_is_forbidden(kube_cluster: Cluster, scratch_ns: str) -> None:
    kube_cluster.kubectl("create", "serviceaccount", "nobody", "-n", scratch_ns)
    token = kube_cluster.kubectl("create", "token", "nobody", "-n", scratch_ns).stdout.strip()
    who = f"system:serviceaccount:{scratch_ns}:nobody"

    denied = kube_cluster.kubectl("get", "configmaps", "-n", scratch_ns, f"--token={token}", check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr and who in denied.stderr

    # Same through the Python client: the token authenticates (not 401) but is not authorized.
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kube_cluster.kubeconfig), client_configuration=cfg)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    cfg.refresh_api_key_hook = None  # the loader's hook would put the admin token back
    with client.ApiClient(cfg) as sa_client, pytest.raises(ApiException) as err:
        client.CoreV1Api(sa_client).list_namespaced_config_map(scratch_ns)
    assert err.value.status == 403


def test_namespace_deletion_completes(kube_cluster: Cluster) -> None:
    name = f"cp-del-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl("create", "configmap", "content", "-n", name, "--from-literal=a=1")
    # The serviceaccount controller gives each namespace its "default" ServiceAccount.
    kube_cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")
    # Only the namespace controller (kube-controller-manager) empties and finalizes it.
    kube_cluster.kubectl("wait", "--for=delete", f"namespace/{name}", "--timeout=90s")


def test_owner_references_are_garbage_collected(kube_cluster: Cluster, scratch_ns: str) -> None:
    core = client.CoreV1Api(kube_cluster.api_client)
    owner = core.create_namespaced_config_map(
        scratch_ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        scratch_ns,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref])),
    )
    core.delete_namespaced_config_map("owner", scratch_ns)
    kube_cluster.kubectl("wait", "--for=delete", "configmap/dependent", "-n", scratch_ns, "--timeout=60s")


def test_stop_leaves_no_processes() -> None:
    """A second, separate control plane: after stop() none of its processes or files remain."""
    if os.environ.get("EXTSCHEMA_USE_EXISTING_CLUSTER") == "1":
        pytest.skip("existing cluster requested: not building or starting a local one")
    with ControlPlane() as cp:
        pids = cp.pids
        workdir = cp.workdir
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
        assert all(pid_alive(pid) for pid in pids.values())
        assert cp.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
        print(f"warm start-to-ready: {cp.ready_seconds:.1f}s (goal < 15 s)")
        # An outage (tests/chaos): every process killed, then started again on the same data and ports.
        cp.kubectl("create", "configmap", "kept", "-n", "default", "--from-literal=a=1")
        cp.stop_servers(hard=True)
        assert not any(pid_alive(pid) for pid in pids.values()) and not cp.reachable(timeout=2)
        cp.start_servers()
        assert cp.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout == "1"
        pids = cp.pids
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert not any(pid_alive(pid) for pid in pids.values()), pids
    assert not workdir.exists()
    cp.stop()  # idempotent
