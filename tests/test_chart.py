"""The Helm chart (charts/extschema): lint, values documented and enforced, rendered objects accepted by a real
API server for several value sets, ``helm install`` creating every object, CRDs kept on uninstall.

Helm is built from the Go module proxy on first use and cached (tests/controlplane/helm.py). The value sets
beside the default are the chart-testing files in ``charts/extschema/ci/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extschema import crd, limits
from extschema.controller.settings import seconds
from tests.controlplane import KUBERNETES_VERSION, Cluster
from tests.controlplane.helm import (
    HELM3_VERSION,
    HELM_VERSION,
    documented_values,
    ensure_helm,
    render_manifests,
    render_readme,
)

pytestmark = [pytest.mark.helm]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "extschema"
VALUE_SETS = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*-values.yaml"))]
#: Namespaces the ci/ value sets name (watched, or allowed to hold Secrets).
NAMED_NAMESPACES = ("extschema-team-a", "extschema-team-b")


@pytest.fixture(scope="session")
def helm() -> Path:
    return ensure_helm()


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc


def values_args(value_set: str) -> list[str]:
    return [] if value_set == "default" else ["-f", str(CHART / "ci" / f"{value_set}.yaml")]


def template(helm: Path, *args: str, namespace: str = "extschema-system") -> list[dict[str, Any]]:
    out = run_helm(
        helm, "template", "extschema", str(CHART), "-n", namespace, "--kube-version", KUBERNETES_VERSION, *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


# --- chart files ---------------------------------------------------------------------------------


def named(docs: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    return [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]


def test_helm_lint_is_clean_for_every_value_set(helm: Path) -> None:
    for value_set in VALUE_SETS:
        proc = run_helm(
            helm, "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION, *values_args(value_set)
        )
        assert "0 chart(s) failed" in proc.stdout, proc.stdout
        # Only the informational note about a missing icon (the project has none) may appear.
        notes = [line for line in proc.stdout.splitlines() if line.startswith("[")]
        assert notes == ["[INFO] Chart.yaml: icon is recommended"], notes


def _value_lines() -> list[tuple[int, int, str, str]]:
    """(line number, indent, key, rest of line) of every mapping key in values.yaml."""
    found = []
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines()):
        match = re.match(r"^( *)([A-Za-z0-9_.-]+):(.*)$", line)
        if match:
            found.append((number, len(match.group(1)), match.group(2), match.group(3)))
    return found


def test_every_value_is_documented_and_camel_case() -> None:
    """helm-docs style: a `# --` comment above every value, or above the object holding it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented_parents: list[tuple[int, bool]] = []  # (indent, documented) of enclosing keys
    for number, indent, key, rest in _value_lines():
        while documented_parents and documented_parents[-1][0] >= indent:
            documented_parents.pop()
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#") and not lines[above].strip().startswith("# --"):
            above -= 1
        documented = above >= 0 and lines[above].strip().startswith("# --")
        inherited = any(flag for _, flag in documented_parents)
        is_leaf = rest.strip() != ""
        if is_leaf:
            assert documented or inherited, f"values.yaml line {number + 1}: {key} has no `# --` comment"
        if not inherited:
            assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", key), f"{key} is not camelCase"
        documented_parents.append((indent, documented))


def test_values_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(node: dict[str, Any], value: Any, path: str) -> None:
        assert node.get("description") or path == "", f"{path} has no description in values.schema.json"
        if "$ref" in node:  # a Kubernetes type: test_kubernetes_type_schemas_are_kubernetes
            return
        if isinstance(value, dict) and value and node.get("additionalProperties") is False:  # {}: optional object
            assert set(value) == set(node["properties"]), f"{path}: values.yaml and the schema disagree"
            for key, child in value.items():
                check(node["properties"][key], child, f"{path}.{key}")

    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"]) - {"global"}
    for key, value in values.items():
        check(schema["properties"][key], value, key)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"),
        ("peering.name=Not_A_Name", "at '/peering/name': 'Not_A_Name' does not match pattern"),
        ("podDisruptionBudget.maxUnavailable=0", "at '/podDisruptionBudget/maxUnavailable': minimum: got 0, want 1"),
        ("logFormat=xml", "at '/logFormat': value must be one of 'json', 'plain'"),
        ("watch.namespaces[0]=Not_A_Namespace", "at '/watch/namespaces/0': 'Not_A_Namespace' does not match pattern"),
        ("databse.existingSecret=app-db", "at '': additional properties 'databse' not allowed"),
        ("terminationGracePeriodSeconds=5", "at '/terminationGracePeriodSeconds': minimum: got 5, want 60"),
        ("driftInterval=0s", "at '/driftInterval': '0s' does not match pattern"),
        ("driftInterval=5 minutes", "at '/driftInterval': '5 minutes' does not match pattern"),
        ("rbac.pluginRoleSecrets=yes", "at '/rbac/pluginRoleSecrets': got string, want boolean"),
        # The security contexts are checked like every other value: a typo would otherwise be dropped by the API
        # server and silently leave, e.g., the root filesystem writable.
        ("podSecurityContext.runAsUser=abc", "at '/podSecurityContext/runAsUser': got string, want integer"),
        (
            "containerSecurityContext.readOnlyRootFileSystem=true",
            "at '/containerSecurityContext': additional properties 'readOnlyRootFileSystem' not allowed",
        ),
        (
            "containerSecurityContext.capabilities.drop=ALL",
            "at '/containerSecurityContext/capabilities/drop': got string, want array",
        ),
        (
            "podSecurityContext.seccompProfile.type=Default",
            "at '/podSecurityContext/seccompProfile/type': value must be one of",
        ),
        ("webhook.certManager.issuerRef.nmae=ca", "at '/webhook/certManager/issuerRef': additional properties 'nmae'"),
        # A typo in a toleration or a NetworkPolicy peer would be dropped and silently widen what is allowed.
        ("tolerations[0].efect=NoSchedule", "at '/tolerations/0': additional properties 'efect' not allowed"),
        ("tolerations[0].tolerationSeconds=soon", "at '/tolerations/0/tolerationSeconds': got string, want integer"),
        (
            "networkPolicy.databasePeers[0].podSelektor.matchLabels.app=db",
            "at '/networkPolicy/databasePeers/0': additional properties 'podSelektor' not allowed",
        ),
        (
            "networkPolicy.databasePeers[0].namespaceSelector.matchLabel.app=db",
            "at '/networkPolicy/databasePeers/0/namespaceSelector': additional properties 'matchLabel' not allowed",
        ),
    ],
)
def test_values_schema_rejects_bad_values_clearly(helm: Path, setting: str, expected: str) -> None:
    proc = run_helm(
        helm, "template", "extschema", str(CHART), "--kube-version", KUBERNETES_VERSION, "--set", setting, check=False
    )
    assert proc.returncode == 1
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert expected in proc.stderr, proc.stderr


@pytest.mark.k8s
def test_kubernetes_type_schemas_are_kubernetes(kube_cluster: Cluster) -> None:
    """The chart's schemas of Kubernetes types (security contexts, tolerations, NetworkPolicy peers, volume
    mounts) allow exactly the API server's fields, with the same types."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    definitions = schema["definitions"]
    kinds = {
        "string": r"<string>",
        "integer": r"<integer>",
        "boolean": r"<boolean>",
        "array": r"<\[\]",
        "object": r"<[A-Z]",
    }

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        return definitions[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    def walk(node: dict[str, Any], path: str) -> None:
        known = set(re.findall(r"^  (\w+)\t<", kube_cluster.kubectl("explain", path).stdout, re.MULTILINE))
        assert set(resolve(node)["properties"]) == known, path  # no field refused that Kubernetes has
        for key, child in resolve(node)["properties"].items():
            child = resolve(child)
            explained = kube_cluster.kubectl("explain", f"{path}.{key}").stdout
            wanted = kinds[child.get("type", "string")]  # an enum without a type is a string
            if child.get("type") == "object" and "properties" not in child:
                wanted = r"<map\[string\]string>"
            assert re.search(rf"FIELD: {key} {wanted}", explained), (path, key, explained[:300])
            if "properties" in child:
                walk(child, f"{path}.{key}")

    walk(definitions["podSecurityContext"], "pod.spec.securityContext")
    walk(definitions["containerSecurityContext"], "pod.spec.containers.securityContext")
    walk(definitions["toleration"], "pod.spec.tolerations")
    walk(definitions["networkPolicyPeer"], "networkpolicy.spec.egress.to")
    walk(schema["properties"]["extraVolumeMounts"]["items"], "pod.spec.containers.volumeMounts")


def test_secret_namespaces_with_watched_namespaces_is_refused_not_ignored(helm: Path) -> None:
    """rbac.secretNamespaces only applies cluster-wide; with watch.namespaces it would silently do nothing."""
    proc = run_helm(
        helm,
        "template",
        "extschema",
        str(CHART),
        "--set",
        "watch.namespaces={team-a}",
        "--set",
        "rbac.secretNamespaces={team-b}",
        check=False,
    )
    assert proc.returncode == 1
    assert "rbac.secretNamespaces applies only when watch.namespaces is empty" in proc.stderr, proc.stderr


def test_kube_version_is_required(helm: Path) -> None:
    proc = run_helm(helm, "template", "extschema", str(CHART), "--kube-version", "1.27.0", check=False)
    assert proc.returncode == 1 and "chart requires kubeVersion" in proc.stderr
    # Built like a Helm release: without --kube-version it assumes its client-go's Kubernetes, not 1.20.
    assert run_helm(helm, "version", "--short").stdout.startswith(HELM_VERSION)
    assert by_kind(
        [d for d in yaml.safe_load_all(run_helm(helm, "template", "x", str(CHART)).stdout) if d], "Deployment"
    )


def test_helm_3_users_get_the_same_chart() -> None:
    """The chart is `apiVersion: v2`, which Helm 3 reads too: it lints clean and renders exactly what Helm 4 does,
    for every value set (docs/install.md names the supported Helm versions)."""
    helm3, helm4 = ensure_helm(HELM3_VERSION), ensure_helm()
    assert run_helm(helm3, "version", "--short").stdout.startswith(HELM3_VERSION)
    for value_set in VALUE_SETS:
        proc = run_helm(
            helm3, "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION, *values_args(value_set)
        )
        assert "0 chart(s) failed" in proc.stdout, proc.stdout
        assert template(helm3, *values_args(value_set)) == template(helm4, *values_args(value_set)), value_set


# --- rendered objects ----------------------------------------------------------------------------


def test_recommended_labels_on_every_object(helm: Path) -> None:
    for value_set in VALUE_SETS:
        for doc in template(helm, *values_args(value_set)):
            labels = doc["metadata"].get("labels") or {}
            for label in (
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ):
                assert label in labels, f"{value_set}: {doc['kind']}/{doc['metadata']['name']} lacks {label}"


def test_deployment_is_hardened(helm: Path) -> None:
    (deployment,) = by_kind(template(helm), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["terminationGracePeriodSeconds"] >= 60
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["command"] == ["extschema"]
    assert container["args"][:3] == ["run", "--standalone", "--all-namespaces"]
    assert "env" not in container  # no default database unless database.existingSecret is set


def peering_rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in doc["rules"] if "kopf.dev" in rule["apiGroups"]]


def test_one_replica_is_standalone_without_peering_objects(helm: Path) -> None:
    docs = template(helm)
    assert not by_kind(docs, "PodDisruptionBudget")
    assert not [d for d in by_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "kopf.dev"]
    assert not [rule for role in by_kind(docs, "ClusterRole") for rule in peering_rules(role)]
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert "--standalone" in container["args"] and not [a for a in container["args"] if "peering" in a]


def test_replicas_run_with_peering_a_pdb_and_a_rolling_update(helm: Path) -> None:
    docs = template(helm, *values_args("ha-values"))
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # No moment without a replica: the new pod stands by (ready) before an old one goes.
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    (container,) = spec["template"]["spec"]["containers"]
    assert "--standalone" not in container["args"]
    assert "--peering=extschema" in container["args"]  # the release's full name
    assert not [a for a in container["args"] if a.startswith("--priority")]  # derived per pod: never a tie
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}
    # kopf's peering CRDs, the same as crds/ and kept on uninstall like the others.
    rendered = {d["metadata"]["name"]: d for d in by_kind(docs, "CustomResourceDefinition")}
    for name in crd.PEERING_FILES:
        generated = yaml.safe_load((REPO / "crds" / name).read_text())
        assert rendered[generated["metadata"]["name"]]["spec"] == generated["spec"]
        assert rendered[generated["metadata"]["name"]]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert peering_rules(cluster_role) == [
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "patch", "create"],
        }
    ]
    # Another kopf operator's release installed the peering CRDs already: leave them to it.
    docs = template(helm, *values_args("ha-values"), "--set", "crds.kopfPeering=false", "--set", "peering.name=ops")
    assert not [d for d in by_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "kopf.dev"]
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert "--peering=ops" in container["args"]


def test_namespaced_replicas_peer_in_each_watched_namespace(helm: Path) -> None:
    docs = template(helm, *values_args("namespaced-values"), "--set", "replicaCount=3")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert not peering_rules(cluster_role)  # no cluster-wide rule: a KopfPeering in each namespace
    for role in by_kind(docs, "Role"):
        assert peering_rules(role) == [
            {
                "apiGroups": ["kopf.dev"],
                "resources": ["kopfpeerings"],
                "verbs": ["get", "list", "watch", "patch", "create"],
            }
        ], role["metadata"]["namespace"]
    assert by_kind(docs, "Deployment")[0]["spec"]["replicas"] == 3


def test_namespaced_mode_has_no_cluster_rule_for_namespaced_objects(helm: Path) -> None:
    docs = template(helm, *values_args("namespaced-values"))
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert cluster_role["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == list(NAMED_NAMESPACES)
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == list(NAMED_NAMESPACES)
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert "--all-namespaces" not in container["args"]
    assert [a for a in container["args"] if a.startswith("--namespace=")] == [
        f"--namespace={ns}" for ns in NAMED_NAMESPACES
    ]
    assert container["env"] == [
        {"name": "EXTSCHEMA_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "app-db", "key": "url"}}}
    ]


def secret_verbs(docs: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """Verbs on core/v1 Secrets of every (Cluster)Role that has any, by (kind, namespace; "" if cluster-scoped)."""
    found: dict[tuple[str, str], set[str]] = {}
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in doc["rules"]:
            if "" in rule["apiGroups"] and "secrets" in rule["resources"]:
                key = (doc["kind"], doc["metadata"].get("namespace", ""))
                found.setdefault(key, set()).update(rule["verbs"])
    return found


READ = {"get"}
WRITE = {"get", "create", "patch"}


@pytest.mark.parametrize(
    ("values", "enabled", "expected"),
    [
        ([], False, {("ClusterRole", ""): READ}),
        ([], True, {("ClusterRole", ""): WRITE}),
        (
            ["--set", "watch.namespaces={extschema-team-a,extschema-team-b}"],
            False,
            {
                ("Role", "extschema-team-a"): READ,
                ("Role", "extschema-team-b"): READ,
            },
        ),
        (
            ["--set", "watch.namespaces={extschema-team-a,extschema-team-b}"],
            True,
            {
                ("Role", "extschema-team-a"): WRITE,
                ("Role", "extschema-team-b"): WRITE,
            },
        ),
        (["--set", "rbac.secretNamespaces={extschema-team-a}"], True, {("Role", "extschema-team-a"): WRITE}),
        (["--set", "rbac.secretNamespaces={extschema-team-a}"], False, {("Role", "extschema-team-a"): READ}),
    ],
    ids=["cluster-wide", "cluster-wide-writes", "namespaced", "namespaced-writes", "limited-writes", "limited"],
)
def test_plugin_role_secrets_are_opt_in_and_follow_the_secret_scope(
    helm: Path, values: list[str], enabled: bool, expected: dict[tuple[str, str], set[str]]
) -> None:
    """rbac.pluginRoleSecrets adds exactly create and patch on Secrets, where (and only where) they are readable:
    the ClusterRole, the watched namespaces' Roles, or the rbac.secretNamespaces Roles. Never list, watch, update
    or delete (controller/plugin_roles.py GETs, POSTs and merge-PATCHes one Secret by name)."""
    docs = template(helm, *values, "--set", f"rbac.pluginRoleSecrets={str(enabled).lower()}")
    assert secret_verbs(docs) == expected


def test_every_value_set_grants_secret_writes_only_when_asked(helm: Path) -> None:
    for value_set in VALUE_SETS:
        path = CHART / "ci" / f"{value_set}.yaml"
        asked = value_set != "default" and bool(
            (yaml.safe_load(path.read_text()).get("rbac") or {}).get("pluginRoleSecrets")
        )
        for key, verbs in secret_verbs(template(helm, *values_args(value_set))).items():
            assert verbs == (WRITE if asked else READ), f"{value_set}: {key} has {verbs}"


def test_drift_interval_is_passed_to_the_operator(helm: Path) -> None:
    def args(*values: str) -> list[str]:
        (deployment,) = by_kind(template(helm, *values), "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return [a for a in container["args"] if a.startswith("--drift-interval")]

    (default,) = args()
    assert seconds(default.split("=", 1)[1]) == limits.DRIFT_INTERVAL_S  # the chart's default is the operator's
    assert args("--set", "driftInterval=90s") == ["--drift-interval=90s"]
    assert args("--set", "driftInterval=1.5h") == ["--drift-interval=1.5h"]


def test_drift_interval_pattern_accepts_only_what_the_operator_parses() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    pattern = re.compile(schema["properties"]["driftInterval"]["pattern"])
    accepted = ["30s", "5m", "1h", "500ms", "1.5m", "0.5s", "10s", "05m"]
    rejected = ["0s", "0.0s", "00m", "5", "5 m", "-1s", "5d", "m", "", "1e3s"]
    for text in accepted:
        assert pattern.fullmatch(text), text
        assert seconds(text) > 0
    for text in rejected:
        assert not pattern.fullmatch(text), text


def test_rbac_rules_are_commented(helm: Path) -> None:
    """Every rule of every (Cluster)Role in the rendered chart has a comment right above it."""
    for value_set in VALUE_SETS:
        out = run_helm(
            helm, "template", "extschema", str(CHART), "--kube-version", KUBERNETES_VERSION, *values_args(value_set)
        ).stdout
        lines = out.splitlines()
        rules = [i for i, line in enumerate(lines) if re.match(r"^ *- apiGroups:", line)]
        assert rules
        for index in rules:
            assert lines[index - 1].strip().startswith("#"), f"{value_set}: rule without comment: {lines[index]}"


def test_chart_crds_are_the_generated_crds_and_kept(helm: Path) -> None:
    rendered = {doc["metadata"]["name"]: doc for doc in by_kind(template(helm), "CustomResourceDefinition")}
    for name in crd.FILES:
        generated = yaml.safe_load((REPO / "crds" / name).read_text())
        chart_copy = rendered[generated["metadata"]["name"]]
        assert chart_copy["spec"] == generated["spec"], f"templates/crds/{name} differs from crds/{name}"
        assert chart_copy["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not by_kind(template(helm, *values_args("byo-values")), "CustomResourceDefinition")


def test_raw_manifests_are_the_rendered_chart(helm: Path) -> None:
    path = REPO / "deploy" / "manifests" / "extschema.yaml"
    assert path.read_text() == render_manifests(helm), f"{path} is stale: run `make manifests`"


def test_chart_readme_lists_every_documented_value() -> None:
    assert (CHART / "README.md").read_text() == render_readme(), "charts/extschema/README.md is stale: make manifests"
    documented = {path for path, _, _ in documented_values((CHART / "values.yaml").read_text())}
    assert {"database.existingSecret", "watch.namespaces", "rbac.secretNamespaces", "crds.create"} <= documented


# --- the REST API (api.enabled) -----------------------------------------------------------------


def api_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "api"]


def api_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_api_is_off_by_default(helm: Path) -> None:
    for value_set in VALUE_SETS:
        if value_set not in ("api-values", "extended-values"):
            assert not api_objects(template(helm, *values_args(value_set))), value_set


def test_api_pod_is_hardened_like_the_operator_and_has_no_kubernetes_credentials(helm: Path) -> None:
    docs = template(helm, *values_args("api-values"))
    assert {(d["kind"], d["metadata"]["name"]) for d in api_objects(docs)} == {
        ("Deployment", "extschema-api"),
        ("Service", "extschema-api"),
        ("NetworkPolicy", "extschema-api"),
    }
    (operator,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "extschema"]
    operator_pod = operator["spec"]["template"]["spec"]
    pod = api_pod(docs)["spec"]
    assert pod["securityContext"] == operator_pod["securityContext"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    (container,) = pod["containers"]
    (operator_container,) = operator_pod["containers"]
    assert container["securityContext"] == operator_container["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == operator_container["image"]
    assert container["command"] == ["extschema"]
    assert container["args"] == [
        "serve",
        "--host=0.0.0.0",
        "--port=8080",
        "--tokens=/etc/extschema/api/tokens.yaml",
        "--read-only-schemas",
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["env"] == [
        {"name": "EXTSCHEMA_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "app-db-api", "key": "url"}}}
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tokens"]["secret"] == {
        "secretName": "extschema-api-tokens",
        "items": [{"key": "tokens.yaml", "path": "tokens.yaml"}],
    }
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["tokens"] == {"name": "tokens", "mountPath": "/etc/extschema/api", "readOnly": True}


def test_operator_and_api_never_select_each_others_pods(helm: Path) -> None:
    """The webhook and metrics Service must never route to an API pod, nor the API's Service to the operator."""
    docs = template(helm, *values_args("api-values"), "--set", "metrics.enabled=true")
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")}
    for deployment in by_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert [pod for pod, labels in pods.items() if selects(selector, labels)] == [name]
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in by_kind(docs, "Service")}
    assert {name: [p for p, labels in pods.items() if selects(sel, labels)] for name, sel in services.items()} == {
        "extschema": ["extschema"],
        "extschema-api": ["extschema-api"],
        "extschema-probe": ["extschema"],
    }
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "extschema-api"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_api_network_policy_admits_only_its_port_and_reaches_only_dns_and_databases(helm: Path) -> None:
    docs = template(helm, *values_args("api-values"))
    (policy,) = [d for d in by_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == "extschema-api"]
    assert selects(policy["spec"]["podSelector"]["matchLabels"], api_pod(docs)["metadata"]["labels"])
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    ]
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432]  # no Kubernetes API server: the API never calls it


def test_api_schemas_writable_only_when_asked_and_database_defaults_to_the_operators(helm: Path) -> None:
    values = ["--set", "api.enabled=true", "--set", "api.tokens.existingSecret=tokens"]
    docs = template(helm, *values, "--set", "database.existingSecret=app-db", "--set", "api.readOnlySchemas=false")
    (container,) = api_pod(docs)["spec"]["containers"]
    assert "--read-only-schemas" not in container["args"]
    assert container["env"][0]["valueFrom"] == {"secretKeyRef": {"name": "app-db", "key": "url"}}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (["database.existingSecret=app-db"], "api.enabled needs api.tokens.existingSecret"),
        (["api.tokens.existingSecret=tokens"], "api.enabled needs a database: set api.database.existingSecret"),
        (["api.port=http"], "at '/api/port': got string, want integer"),
        (["api.readOnlySchema=false"], "at '/api': additional properties 'readOnlySchema' not allowed"),
    ],
)
def test_api_values_missing_or_wrong_are_refused_clearly(helm: Path, settings: list[str], expected: str) -> None:
    args = [arg for setting in ["api.enabled=true", *settings] for arg in ("--set", setting)]
    proc = run_helm(helm, "template", "extschema", str(CHART), "--kube-version", KUBERNETES_VERSION, *args, check=False)
    assert proc.returncode == 1
    assert expected in proc.stderr, proc.stderr


# --- against the API server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def namespaces(kube_cluster: Cluster) -> Iterator[str]:
    """The release namespace of this module and the namespaces the value sets name."""
    release_ns = f"chart-{uuid.uuid4().hex[:8]}"
    for ns in (release_ns, *NAMED_NAMESPACES):
        if kube_cluster.kubectl("get", "namespace", ns, check=False).returncode != 0:
            kube_cluster.kubectl("create", "namespace", ns)
    yield release_ns
    kube_cluster.kubectl("delete", "namespace", release_ns, "--wait=false", "--ignore-not-found")


@pytest.mark.k8s
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_chart_passes_server_side_dry_run(
    helm: Path, kube_cluster: Cluster, namespaces: str, value_set: str
) -> None:
    out = run_helm(
        helm,
        "template",
        "extschema",
        str(CHART),
        "-n",
        namespaces,
        "--kube-version",
        KUBERNETES_VERSION,
        *values_args(value_set),
    ).stdout
    proc = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=out)
    applied = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len([doc for doc in yaml.safe_load_all(out) if doc]), proc.stdout


#: The first install over CRDs applied before (docs/install.md): Helm 4 applies server-side, and takes over the
#: fields another manager (`kubectl apply --server-side`) set to other values only when told to.
ADOPT = ["--force-conflicts"]


def _adopt_existing_crds(kube_cluster: Cluster, release: str, namespace: str) -> None:
    """CRDs applied earlier with `kubectl apply -f crds/` are handed to the release (docs/install.md)."""
    for name in ("extensionschemas.extschema.io", "databasetargets.extschema.io"):
        if kube_cluster.kubectl("get", "crd", name, check=False).returncode == 0:
            kube_cluster.kubectl("label", "--overwrite", "crd", name, "app.kubernetes.io/managed-by=Helm")
            kube_cluster.kubectl(
                "annotate",
                "--overwrite",
                "crd",
                name,
                f"meta.helm.sh/release-name={release}",
                f"meta.helm.sh/release-namespace={namespace}",
            )


def _notes_example(notes: str) -> str:
    match = re.search(r"cat <<'YAML' \| kubectl apply -n \S+ -f -\n(.*?)\n\s*YAML\n", notes, re.S)
    assert match, notes
    return textwrap.dedent(match.group(1))


@pytest.mark.k8s
def test_helm_install_creates_every_object_and_uninstall_keeps_crds(
    helm: Path, kube_cluster: Cluster, namespaces: str
) -> None:
    release = f"es-{uuid.uuid4().hex[:6]}"
    kube = ["--kubeconfig", str(kube_cluster.kubeconfig)]
    _adopt_existing_crds(kube_cluster, release, namespaces)
    installed = run_helm(helm, "install", release, str(CHART), "-n", namespaces, *kube, *ADOPT)
    try:
        manifest = run_helm(helm, "get", "manifest", release, "-n", namespaces, *kube).stdout
        docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
        assert {doc["kind"] for doc in docs} == {
            "Service",  # the probe Service of the `helm test` hook
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "CustomResourceDefinition",
        }
        for doc in docs:
            scope = ["-n", doc["metadata"]["namespace"]] if doc["metadata"].get("namespace") else []
            found = kube_cluster.kubectl("get", doc["kind"], doc["metadata"]["name"], *scope, "-o", "json").stdout
            labels = json.loads(found)["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == release
        # NOTES.txt prints a ready-to-apply example: the API server accepts it as printed.
        example = _notes_example(installed.stdout)
        applied = kube_cluster.kubectl("apply", "-n", namespaces, "--dry-run=server", "-f", "-", input=example)
        assert "databasetarget.extschema.io/app-db created (server dry run)" in applied.stdout
        assert "extensionschema.extschema.io/hello created (server dry run)" in applied.stdout
    finally:
        uninstalled = run_helm(helm, "uninstall", release, "-n", namespaces, *kube)
    assert "kept due to the resource policy" in uninstalled.stdout + uninstalled.stderr
    for name in ("extensionschemas.extschema.io", "databasetargets.extschema.io"):
        kube_cluster.kubectl("get", "crd", name)  # still there: uninstall never deletes user data
    gone = kube_cluster.kubectl("get", "clusterrole", f"{release}-extschema", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


@pytest.mark.k8s
def test_raw_manifests_install_as_documented(kube_cluster: Cluster) -> None:
    """docs/install.md's three commands: apply the manifests, create the Secret, point the operator at it."""
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "deploy" / "manifests"))
    ns = "extschema-system"
    if kube_cluster.kubectl("-n", ns, "get", "secret", "app-db", check=False).returncode != 0:
        kube_cluster.kubectl("-n", ns, "create", "secret", "generic", "app-db", "--from-literal=url=sqlite:///x.db")
    kube_cluster.kubectl(
        "-n",
        ns,
        "set",
        "env",
        "deployment/extschema",
        "--from=secret/app-db",
        "--keys=url",
        "--prefix=EXTSCHEMA_DATABASE_",
    )
    deployment = json.loads(kube_cluster.kubectl("-n", ns, "get", "deployment", "extschema", "-o", "json").stdout)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {"name": "EXTSCHEMA_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "app-db", "key": "url"}}}
    ]
    kube_cluster.kubectl(
        "auth", "can-i", "watch", "extensionschemas.extschema.io", "-A", f"--as=system:serviceaccount:{ns}:extschema"
    )


# --- extension points, monitoring, probes and the helm test hook ----------------------------------------------


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")}


def test_extension_points_reach_both_pods_and_labels_every_object(helm: Path) -> None:
    docs = template(helm, *values_args("extended-values"))
    pods = _deployments(docs)
    operator, api = pods["extschema"], pods["extschema-api"]
    digest = "sha256:" + "0" * 64
    for pod in (operator, api):
        (container,) = pod["containers"]
        assert container["image"] == f"ghcr.io/extschema/extschema@{digest}"
        assert pod["topologySpreadConstraints"][0]["maxSkew"] == 1
    (op,) = operator["containers"]
    assert op["args"][-1] == "--verbose"
    assert {"name": "PGSSLROOTCERT", "value": "/etc/ssl/certs/ca-certificates.crt"} in op["env"]
    assert op["env"][0]["name"] == "EXTSCHEMA_DATABASE_URL"  # the chart's own variable stays first
    assert op["envFrom"] == [{"configMapRef": {"name": "extschema-proxy", "optional": True}}]
    (served,) = api["containers"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"} in served["env"]
    assert served["envFrom"] == [{"secretRef": {"name": "api-extra", "optional": True}}]
    for doc in docs:
        assert doc["metadata"]["labels"]["team"] == "platform", (doc["kind"], doc["metadata"]["name"])
    for deployment in by_kind(docs, "Deployment"):  # selectors are immutable: common labels never go there
        assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    # Without a digest the tag (default: appVersion) is used, as before.
    (plain,) = _deployments(template(helm))["extschema"]["containers"]
    assert plain["image"].endswith(":" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def test_extra_args_must_be_flags(helm: Path) -> None:
    out = run_helm(helm, "template", "x", str(CHART), "--set", "extraArgs[0]=verbose", check=False)
    assert out.returncode != 0 and "extraArgs" in out.stderr


def test_readiness_is_apart_from_liveness(helm: Path) -> None:
    (container,) = _deployments(template(helm))["extschema"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    assert f"--readiness=http://0.0.0.0:{ports['ready']}/readyz" in container["args"]
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in container["args"]


def _documented_alerts() -> dict[str, dict[str, Any]]:
    text = (REPO / "docs" / "monitoring.md").read_text()
    block = re.search(r"Suggested alerts.*?```yaml\n(.*?)```", text, re.S)
    assert block, "docs/monitoring.md lost its alerts block"
    return {rule["alert"]: rule for rule in yaml.safe_load(block.group(1))}


def test_prometheus_rule_holds_the_documented_alerts(helm: Path) -> None:
    docs = template(helm, "--set", "metrics.enabled=true", "--set", "monitoring.prometheusRule.enabled=true")
    (rule,) = by_kind(docs, "PrometheusRule")
    rendered = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    documented = _documented_alerts()
    assert set(rendered) == set(documented)
    for name, alert in documented.items():
        # docs write the stuck-loop threshold as "3 * 300" (3 times the default 5m interval); the chart computes it.
        expr = re.sub(r"(\d+) \* (\d+)", lambda m: str(int(m.group(1)) * int(m.group(2))), str(alert["expr"]))
        assert rendered[name]["expr"] == expr, name
        assert rendered[name].get("for") == alert.get("for"), name
        assert rendered[name]["annotations"]["summary"], name
    # The stuck-loop threshold follows driftInterval: 3 times 90 s.
    docs = template(
        helm, "--set", "metrics.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
        "--set", "driftInterval=1.5m",
    )  # fmt: skip
    (rule,) = by_kind(docs, "PrometheusRule")
    stuck = next(r for r in rule["spec"]["groups"][0]["rules"] if r["alert"] == "ExtschemaDriftLoopStuck")
    assert stuck["expr"] == "max(extschema_drift_check_age_seconds) > 270"
    refused = run_helm(
        helm, "template", "x", str(CHART), "--set", "monitoring.prometheusRule.enabled=true", check=False
    )
    assert refused.returncode != 0 and "needs metrics.enabled" in refused.stderr


def test_grafana_dashboard_configmap_is_the_documented_dashboard(helm: Path) -> None:
    documented = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    assert json.loads((CHART / "files" / "grafana-dashboard.json").read_text()) == documented, (
        "charts/extschema/files/grafana-dashboard.json differs from docs/grafana-dashboard.json: copy it"
    )
    docs = template(helm, "--set", "monitoring.grafanaDashboard.create=true")
    (config_map,) = by_kind(docs, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["extschema.json"]) == documented
    elsewhere = template(
        helm, "--set", "monitoring.grafanaDashboard.create=true", "--set", "monitoring.grafanaDashboard.namespace=obs"
    )
    assert by_kind(elsewhere, "ConfigMap")[0]["metadata"]["namespace"] == "obs"


def test_helm_test_hook_probes_liveness_and_readiness_without_credentials(helm: Path) -> None:
    docs = template(helm)
    (pod,) = by_kind(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    urls = container["command"][3:]
    assert urls == [
        "http://extschema-probe.extschema-system.svc:8080/healthz",
        "http://extschema-probe.extschema-system.svc:8081/readyz",
    ]
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "extschema-probe"]
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"health", "ready"}
    assert not by_kind(template(helm, "--set", "tests.enabled=false"), "Pod")


def test_notes_point_at_urls_not_repository_paths(helm: Path) -> None:
    for settings in ([], ["--set", "crds.create=false"], ["--set", "database.existingSecret=db"]):
        notes = run_helm(helm, "install", "x", str(CHART), "--dry-run=client", *settings).stdout.split("NOTES:", 1)[1]
        assert not re.search(r"(?<![/\w])(docs|crds)/", notes), notes
        assert "https://" in notes


# --- sharding (docs/sharding.md) --------------------------------------------------------------------------


def test_shards_run_as_one_deployment_each_with_its_own_pods_and_peering(helm: Path) -> None:
    docs = template(helm, *values_args("sharded-values"))
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    assert sorted(deployments) == ["extschema-shard-0", "extschema-shard-1", "extschema-shard-2"]
    pods = []
    for shard in range(3):
        spec = deployments[f"extschema-shard-{shard}"]["spec"]
        (container,) = spec["template"]["spec"]["containers"]
        assert [a for a in container["args"] if a.startswith(("--shard", "--peering"))] == [
            f"--peering=extschema-shard-{shard}",
            f"--shard={shard}",
            "--shards=3",
        ]
        assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
        labels = spec["template"]["metadata"]["labels"]
        assert labels["extschema.io/shard"] == str(shard)
        pods.append(labels)
    # A Deployment's selector picks its own shard's pods and no other's.
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert [selects(selector, labels) for labels in pods] == [name == f"extschema-shard-{i}" for i in range(3)]
    # The webhook's Service reaches every shard: any one labels a new resource, or validates it.
    (service,) = named(docs, "Service", "extschema")
    assert all(selects(service["spec"]["selector"], labels) for labels in pods)
    (config,) = by_kind(docs, "MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == "/shard" and hook["clientConfig"]["caBundle"]
    assert hook["rules"][0]["operations"] == ["CREATE"] and hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"


def test_one_shard_is_the_unsharded_operator(helm: Path) -> None:
    assert template(helm, "--set", "sharding.shards=1") == template(helm)
    docs = template(helm, *values_args("observe-values"))
    assert not by_kind(docs, "MutatingWebhookConfiguration")  # webhook on, one shard: nothing to label
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["metadata"]["name"] == "extschema"
    assert not [a for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"] if "--shard" in a]
    # Sharded without the webhook: no mutating configuration (shard 0 labels every new resource instead).
    docs = template(helm, "--set", "sharding.shards=2")
    assert not by_kind(docs, "MutatingWebhookConfiguration") and len(by_kind(docs, "Deployment")) == 2
    out = run_helm(
        helm, "template", "x", str(CHART), "--kube-version", KUBERNETES_VERSION, "--set", "sharding.shards=0",
        check=False,
    )  # fmt: skip
    assert out.returncode != 0 and "/sharding/shards" in out.stderr
