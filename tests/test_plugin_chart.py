"""A plugin's own Helm chart (examples/plugin-chart/) on a real API server with the operator running, on Helm 4:
``helm install --wait`` returns only once the ExtensionSchema is Ready and fails with the condition's message when
it is Stalled; the init container's ``extschema wait NAME --for Ready`` holds the plugin back the same way; an
upgrade that drops a column waits for ``schema.approvedPlanHash``; ``helm rollback`` is planned like any change;
``helm uninstall`` follows ``deletionPolicy``.

The local control plane runs no pods, so the tests install with ``replicaCount=0`` and run the init container's
command as rendered, as the chart's ServiceAccount (a token of it), beside the release.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import test_operator_e2e as e2e
from tests.controlplane import KUBERNETES_VERSION, Cluster
from tests.helpers import REPO, execute, ext_table, run, subprocess_env, tables
from tests.test_chart import by_kind, helm, run_helm

pytestmark = [pytest.mark.helm]

__all__ = ["helm"]  # fixtures, imported so pytest finds them here

CHART = REPO / "examples" / "plugin-chart"
NOTE = ext_table("sqlite:///x", "field_notes", "note")


def template(helm: Path, *args: str, release: str = "notes", namespace: str = "plugins") -> list[dict[str, Any]]:
    out = run_helm(
        helm, "template", release, str(CHART), "-n", namespace, "--kube-version", KUBERNETES_VERSION, *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def init_command(docs: list[dict[str, Any]]) -> list[str]:
    (deployment,) = by_kind(docs, "Deployment")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    command: list[str] = init["command"]
    return command


def deployed_init_command(kube: e2e.Kube, deployment: str) -> list[str]:
    return init_command([kube.get(deployment, "deployment")])


# --- the chart's files -----------------------------------------------------------------------------


def test_plugin_chart_lints_and_renders_a_valid_schema(helm: Path, tmp_path: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION)
    assert "0 chart(s) failed" in proc.stdout, proc.stdout
    docs = template(
        helm,
        "--set",
        "schema.deletionPolicy=Drop,schema.targetRef=app-db,schema.approvedPlanHash=0123456789abcdef",
    )
    (schema,) = by_kind(docs, "ExtensionSchema")
    assert schema["metadata"]["name"] == "notes"
    assert schema["spec"]["version"] == "1.0.0"  # the chart's appVersion
    assert schema["spec"]["deletionPolicy"] == "Drop"
    assert schema["spec"]["targetRef"] == {"name": "app-db"}
    assert schema["spec"]["approvedPlanHash"] == "0123456789abcdef"
    # The rendered schema is one the CLI accepts as it is (less the operator-only targetRef).
    del schema["spec"]["targetRef"]
    (tmp_path / "notes.yaml").write_text(yaml.safe_dump(schema))
    validated = run("validate", str(tmp_path / "notes.yaml"))
    assert validated.exit_code == 0, validated.stderr
    assert init_command(docs) == [
        "extschema",
        "wait",
        "notes",
        "--for",
        "Ready",
        "--namespace",
        "plugins",
        "--timeout",
        "10m",
    ]
    # Waves for Argo CD: the schema before the Deployment that needs it.
    waves = {d["kind"]: d["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave") for d in docs}
    assert waves["ExtensionSchema"] == "2" and waves["Deployment"] == "3"
    # Without the wait, no init container and no Role.
    plain = template(helm, "--set", "waitForSchema.enabled=false")
    assert "initContainers" not in by_kind(plain, "Deployment")[0]["spec"]["template"]["spec"]
    assert not by_kind(plain, "Role")
    (default,) = by_kind(template(helm), "ExtensionSchema")
    assert "approvedPlanHash" not in default["spec"] and "targetRef" not in default["spec"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("schema.deletionPolicy=drop", "at '/schema/deletionPolicy': value must be one of 'Retain', 'Drop'"),
        ("schema.approvedPlanHash=abc", "at '/schema/approvedPlanHash': 'abc' does not match pattern"),
        ("schema.verison=2.0.0", "at '/schema': additional properties 'verison' not allowed"),
    ],
)
def test_plugin_chart_refuses_bad_values(helm: Path, setting: str, expected: str) -> None:
    proc = run_helm(helm, "template", "x", str(CHART), "--set", setting, check=False)
    assert proc.returncode == 1 and expected in proc.stderr, proc.stderr


# --- against the API server, with the operator ----------------------------------------------------


class Release:
    """One release of the plugin chart in the test's namespace, with helm and kubectl at hand."""

    def __init__(self, helm: Path, kube: e2e.Kube, name: str) -> None:
        self.helm, self.kube, self.name = helm, kube, name
        self.flags = ["-n", kube.ns, "--kubeconfig", str(kube.cluster.kubeconfig)]

    def helm_args(self, verb: str, *args: str) -> list[str]:
        return [str(self.helm), verb, self.name, *args, *self.flags]

    def run(self, verb: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.helm_args(verb, *args), capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {verb} {self.name} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def start(self, verb: str, *args: str) -> subprocess.Popen[str]:
        return spawn(self.helm_args(verb, *args))

    def schema(self) -> dict[str, Any]:
        return self.kube.get(self.name)


def service_account_kubeconfig(kube: e2e.Kube, account: str, path: Path) -> Path:
    """A kubeconfig with a token of *account*: what the init container's ServiceAccount may do, no more."""
    token = kube("create", "token", account, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kube.cluster.kubeconfig.read_text())
    admin["users"] = [{"name": "plugin", "user": {"token": token}}]
    for context in admin["contexts"]:
        context["context"]["user"] = "plugin"
    path.write_text(yaml.safe_dump(admin))
    return path


def start_init_container(command: list[str], kubeconfig: Path) -> subprocess.Popen[str]:
    """The init container's command as rendered, with this checkout's extschema."""
    assert command[0] == "extschema"
    return spawn([sys.executable, "-m", "extschema", *command[1:]], env=subprocess_env(KUBECONFIG=str(kubeconfig)))


#: Processes a test started in the background; whatever still runs when it ends is stopped.
SPAWNED: list[subprocess.Popen[str]] = []


def spawn(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    SPAWNED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _stop_spawned() -> Iterator[None]:
    yield
    while SPAWNED:
        proc = SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def still_running(*procs: subprocess.Popen[str], seconds: float) -> None:
    time.sleep(seconds)
    for proc in procs:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{proc.args} returned {proc.returncode} early:\n{out}{err}")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.3)


@pytest.fixture
def kube(kube_cluster: Cluster) -> Iterator[e2e.Kube]:
    """A fresh namespace (the CRDs installed), emptied of finalizers afterwards."""
    kube_cluster.kubectl("apply", "-f", str(REPO / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/extensionschemas.extschema.io", "--timeout=60s")
    namespace = f"plugin-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", namespace)
    yield e2e.Kube(kube_cluster, namespace)
    for name in kube_cluster.kubectl("-n", namespace, "get", "exts", "-o", "name", check=False).stdout.split():
        kube_cluster.kubectl(
            "-n", namespace, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


@pytest.fixture
def operator(kube: e2e.Kube, tmp_path: Path) -> Iterator[Callable[[str], e2e.Operator]]:
    started: list[e2e.Operator] = []

    def start(database: str) -> e2e.Operator:
        op = e2e.Operator(kube.cluster, kube.ns, database, tmp_path / f"operator-{len(started)}.log").start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
        print(f"--- {op.log.name} ---\n{op.tail()}")


NO_PODS = ["--set", "replicaCount=0"]


@pytest.mark.k8s
@pytest.mark.slow
def test_helm_install_waits_for_ready_the_init_container_too_and_fails_on_stalled(
    helm: Path, kube: e2e.Kube, operator: Callable[[str], e2e.Operator], sqlite_url: str, tmp_path: Path
) -> None:
    release = Release(helm, kube, "notes")
    # No operator yet: whatever helm and the init container see, nothing has made the tables.
    installing = release.start("install", str(CHART), *NO_PODS, "--wait", "--timeout", "120s")
    wait_for("the chart's ServiceAccount", lambda: kube("get", "sa", "notes", check=False).returncode == 0)
    command = deployed_init_command(kube, "notes")
    as_plugin = service_account_kubeconfig(kube, "notes", tmp_path / "plugin.kubeconfig")
    waiting = start_init_container(command, as_plugin)
    still_running(installing, waiting, seconds=4)
    assert "notes" not in " ".join(tables(sqlite_url))
    operator(sqlite_url)
    code, out, err = finish(installing)
    assert code == 0, err + out
    body = release.schema()  # helm returned: the tables exist, for this generation
    assert e2e.Kube.ready(body)["status"] == "True", body.get("status")
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert NOTE.strip('"') in tables(sqlite_url)
    code, out, err = finish(waiting)
    assert code == 0, err + out
    lines = out.splitlines()
    assert lines[-1] == f"extensionschema {kube.ns}/notes: Ready (version 1.0.0)", out
    assert len(lines) >= 2, out  # it reported waiting before it was done
    # Once Ready it returns at once.
    code, out, err = finish(start_init_container(command, as_plugin), timeout=60)
    assert (code, out.splitlines()) == (0, [f"extensionschema {kube.ns}/notes: Ready (version 1.0.0)"]), err
    code, out, err = finish(start_init_container([*command, "-o", "json"], as_plugin), timeout=60)
    assert code == 0 and json.loads(out) == {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "WaitList",
        "ok": True,
        "items": [{"name": "notes", "namespace": kube.ns, "state": "Ready (version 1.0.0)"}],
        "problems": [],
    }, err

    # A second release of the plugin claims the same pluginId: Stalled, and both waits fail with its message.
    second = Release(helm, kube, "notes-again")
    started = time.monotonic()
    failed = second.run("install", str(CHART), *NO_PODS, "--wait", "--timeout", "90s", check=False)
    assert failed.returncode != 0
    assert time.monotonic() - started < 60  # Stalled ends the wait; it does not run into the timeout
    stalled = e2e.Kube.ready(second.schema(), "Stalled")
    assert stalled["reason"] == "Conflict"
    assert "status: Failed" in failed.stderr and stalled["message"][:60] in failed.stderr, failed.stderr
    second_command = deployed_init_command(kube, "notes-again")
    as_second = service_account_kubeconfig(kube, "notes-again", tmp_path / "second.kubeconfig")
    code, out, err = finish(start_init_container(second_command, as_second), timeout=60)
    assert code == 1, out + err
    assert "ES601" in err and "Conflict" in err and stalled["message"][:60] in err, err
    # A ServiceAccount without the chart's Role may not read it: exit 3 at once, naming the permission needed.
    as_default = service_account_kubeconfig(kube, "default", tmp_path / "default.kubeconfig")
    code, out, err = finish(start_init_container(command, as_default), timeout=60)
    assert code == 3 and "ES603" in err and "list and watch on extensionschemas.extschema.io" in err, out + err
    second.run("uninstall", "--wait")

    # Uninstall with deletionPolicy Retain: the resource goes, the tables stay.
    release.run("uninstall", "--wait", "--timeout", "60s")
    assert kube("get", "exts", "notes", check=False).returncode != 0
    assert NOTE.strip('"') in tables(sqlite_url)


def chart_version_2(tmp_path: Path) -> Path:
    """The vendor's next release: version 2.0.0 drops the column `body`."""
    chart = tmp_path / "field-notes-2.0.0"
    shutil.copytree(CHART, chart)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("version: 1.0.0", "version: 2.0.0").replace('"1.0.0"', '"2.0.0"'))
    template = chart / "templates" / "extensionschema.yaml"
    text = template.read_text()
    assert "{name: body, type: Text}" in text
    template.write_text(re.sub(r"\n *- \{name: body, type: Text\}", "", text))
    return chart


def columns(url: str) -> set[str]:
    return {row[1] for row in execute(url, f"PRAGMA table_info({NOTE})")}


@pytest.mark.k8s
@pytest.mark.slow
def test_helm_upgrade_that_drops_a_column_waits_for_the_plan_hash_and_rollback_is_planned(
    helm: Path, kube: e2e.Kube, operator: Callable[[str], e2e.Operator], sqlite_url: str, tmp_path: Path
) -> None:
    operator(sqlite_url)
    release = Release(helm, kube, "notes")
    release.run("install", str(CHART), *NO_PODS, "--set", "schema.deletionPolicy=Drop", "--wait", "--timeout", "90s")
    for i in range(5):
        execute(sqlite_url, f"INSERT INTO {NOTE} (title, body) VALUES ('n{i}', 'body {i}')")

    # Version 2 drops `body`, holding 5 values: the upgrade waits, as progress, with the hash in helm's message.
    v2 = chart_version_2(tmp_path)
    upgraded = release.run("upgrade", str(v2), "--reuse-values", "--wait", "--timeout", "20s", check=False)
    assert upgraded.returncode != 0
    body = release.schema()
    ready = e2e.Kube.ready(body)
    assert ready["reason"] == "ApprovalRequired" and "Stalled" not in {c["type"] for c in body["status"]["conditions"]}
    pending = body["status"]["pendingPlan"]
    assert "body" in pending["summary"] and "5" in pending["summary"]
    assert "status: InProgress" in upgraded.stderr and pending["hash"] in upgraded.stderr, upgraded.stderr
    assert "body" in columns(sqlite_url)  # nothing ran
    # The NOTES say how to read the hash: their command, run as printed, gives it.
    notes = release.run("status").stdout
    (read_hash,) = re.findall(r"^  (kubectl get exts .*pendingPlan.*)$", notes, re.MULTILINE)
    shown = subprocess.run(read_hash, shell=True, capture_output=True, text=True, env=kube_env(kube), check=True)
    assert shown.stdout.splitlines() == [pending["summary"], pending["hash"]]
    # The plugin's new pods would wait too: the init container reports the approval it waits for, then times out.
    command = deployed_init_command(kube, "notes")
    as_plugin = service_account_kubeconfig(kube, "notes", tmp_path / "plugin.kubeconfig")
    code, out, err = finish(start_init_container([*command[:-1], "3s"], as_plugin), timeout=60)
    assert code == 4 and "ES602" in err and "ApprovalRequired" in out + err and pending["hash"] in out, out + err
    # Rendered again while the plan waits (here a server-side dry run), the NOTES name it.
    again = release.run("upgrade", str(v2), "--reuse-values", "--dry-run=server").stdout
    assert f"A plan is waiting now: {pending['hash']} ({pending['summary']})" in again, again

    # Approving exactly that plan through the values applies it; the values are backed up first.
    approve = ["--reuse-values", "--set", f"schema.approvedPlanHash={pending['hash']}"]
    approved = release.run("upgrade", str(v2), *approve, "--wait", "--timeout", "90s")
    assert pending["hash"] not in approved.stdout  # approved: the NOTES no longer call it waiting
    body = release.schema()
    assert body["status"]["appliedVersion"] == "2.0.0" and e2e.Kube.ready(body)["status"] == "True"
    assert "body" not in columns(sqlite_url) and execute(sqlite_url, f"SELECT count(*) FROM {NOTE}") == [(5,)]
    backups = [t for t in tables(sqlite_url) if "field_notes" in t and "backup" in t]
    assert backups, tables(sqlite_url)

    # helm rollback to revision 1: version 1.0.0 again, a lower version planned from 2.0.0 like any change:
    # re-adding `body` is safe, so it runs at once (its values come back with `extschema restore`).
    release.run("rollback", "1", "--wait", "--timeout", "90s")
    body = release.schema()
    assert body["status"]["appliedVersion"] == "1.0.0" and e2e.Kube.ready(body)["status"] == "True"
    assert "body" in columns(sqlite_url) and execute(sqlite_url, f"SELECT count(*) FROM {NOTE}") == [(5,)]

    # Uninstall with deletionPolicy Drop: backed up, then dropped.
    release.run("uninstall", "--wait", "--timeout", "60s")
    assert NOTE.strip('"') not in tables(sqlite_url)
    assert any("field_notes" in t and "backup" in t and "note" in t for t in tables(sqlite_url) - set(backups))


def kube_env(kube: e2e.Kube) -> dict[str, str]:
    """kubectl of the test cluster on PATH, as the NOTES' commands expect."""
    path = f"{Path(kube.cluster.kubectl_bin).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "KUBECONFIG": str(kube.cluster.kubeconfig), "PATH": path}
