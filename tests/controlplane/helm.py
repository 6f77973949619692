"""Build and cache the Helm CLI, like the control-plane binaries (``build``).

No package registry ships Helm; ``go install helm.sh/helm/v4/cmd/helm@VERSION`` works as is (no replace
directives, unlike kube-apiserver), with the -X flag Helm's Makefile sets for a release (its version). Helm 4 is
the line the tests use (its ``--wait`` is kstatus, which reads the Ready/Reconciling/Stalled conditions extschema
writes); one Helm 3 release is built too, on demand, for the check that the operator chart still works for Helm 3
users (tests/test_chart.py). A binary lands in the same cache root, under the same build lock, through a temporary
directory so that a killed build leaves nothing half-done.
``python -m tests.controlplane.helm`` builds Helm 4 and prints its path (``make helm``); ``... helm 3`` Helm 3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .build import _build_lock, cache_root, go_env, log, run_go, upstream_gomod

#: The Helm every chart test runs with.
HELM_VERSION = "v4.3.2"
#: The Helm 3 release the operator chart is checked with (the newest approved 3.x).
HELM3_VERSION = "v3.21.4"


def _module(version: str) -> str:
    """``v4.3.2`` -> ``helm.sh/helm/v4`` (the module path carries the major version)."""
    return f"helm.sh/helm/v{version.lstrip('v').split('.')[0]}"


def helm_dir(version: str = HELM_VERSION) -> Path:
    return cache_root() / "bin" / f"helm-{version}"


def _ldflags(version: str) -> str:
    """What Helm's own Makefile stamps into a release: its version. Helm 3 also needs the Kubernetes version of its
    client-go as the default for `helm template`/`helm lint` (without it they assume Kubernetes 1.20); Helm 4 reads
    it from the binary's build info itself."""
    module = _module(version)
    flags = [f"-X {module}/internal/version.version={version}"]
    if module.endswith("/v3"):
        gomod = upstream_gomod(module, version)
        client_go = next(line.split()[1] for line in gomod.splitlines() if line.strip().startswith("k8s.io/client-go "))
        major, minor = client_go.lstrip("v").split(".")[:2]
        for package in (f"{module}/pkg/lint/rules", f"{module}/pkg/chartutil"):
            flags += [f"-X {package}.k8sVersionMajor={int(major) + 1}", f"-X {package}.k8sVersionMinor={minor}"]
    return " ".join(flags)


#: Bumped when the build recipe changes, so that binaries built the old way are rebuilt.
RECIPE = "3"


def _works(binary: Path, version: str) -> bool:
    stamp = binary.parent / "recipe"
    if not binary.is_file() or not stamp.is_file() or stamp.read_text() != RECIPE:
        return False
    try:
        proc = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip().startswith(version)


def ensure_helm(version: str = HELM_VERSION) -> Path:
    """The helm binary of *version*, built on first use (~1-5 minutes). ``EXTSCHEMA_HELM`` overrides the Helm 4
    binary, ``EXTSCHEMA_HELM3`` the Helm 3 one."""
    override = os.environ.get("EXTSCHEMA_HELM3" if _module(version).endswith("/v3") else "EXTSCHEMA_HELM")
    if override:
        return Path(override)
    out = helm_dir(version)
    binary = out / "helm"
    if _works(binary, version):
        return binary
    with _build_lock():
        if _works(binary, version):
            return binary
        started = time.monotonic()
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"building helm {version}")
        env = {**go_env(), "GOBIN": str(tmp)}
        ldflags = _ldflags(version)
        run_go(
            ["install", "-trimpath", "-ldflags", ldflags, f"{_module(version)}/cmd/helm@{version}"], cache_root(), env
        )
        (tmp / "recipe").write_text(RECIPE)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        log(f"built helm into {out} in {time.monotonic() - started:.0f}s")
    return binary


REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "manifests" / "extschema.yaml"
MANIFESTS_NAMESPACE = "extschema-system"


NO_TEST = ("--set", "tests.enabled=false")


def render_manifests(helm: Path, kube_version: str = "1.35.4") -> str:
    """deploy/manifests/extschema.yaml: the chart with its default values, for `kubectl apply` without Helm."""
    chart = str(REPO / "charts" / "extschema")
    proc = subprocess.run(
        # No `helm test` hook without Helm: it would run once at `kubectl apply`.
        [
            str(helm),
            "template",
            "extschema",
            chart,
            "-n",
            MANIFESTS_NAMESPACE,
            "--kube-version",
            kube_version,
            *NO_TEST,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    header = (
        "# Generated by `make manifests` (helm template of charts/extschema with its default values). Do not edit.\n"
        "# kubectl apply --server-side -f deploy/manifests/extschema.yaml\n"
        "apiVersion: v1\n"
        "kind: Namespace\n"
        "metadata:\n"
        f"  name: {MANIFESTS_NAMESPACE}\n"
    )
    return header + proc.stdout


CHART = REPO / "charts" / "extschema"
CHART_README = CHART / "README.md"


def documented_values(text: str) -> list[tuple[str, str, str]]:
    """(path, default as YAML flow, description) of every value with a helm-docs ``# --`` comment, in order."""
    import yaml  # only the tests' environment needs it

    values = yaml.safe_load(text)
    found: list[tuple[str, str, str]] = []
    parents: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#") and comment:
            comment.append(stripped.removeprefix("#").strip())
            continue
        if not stripped or stripped.startswith("#") or ":" not in stripped or stripped.startswith("- "):
            comment = [] if not stripped.startswith("#") else comment
            continue
        indent = len(line) - len(line.lstrip())
        key = stripped.split(":", 1)[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = ".".join([p for _, p in parents] + [key])
        parents.append((indent, key))
        if comment:
            value: object = values
            for part in path.split("."):
                value = value[part]  # type: ignore[index]
            default = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            default = default.removesuffix("...").strip()
            found.append((path, default, " ".join(comment)))
        comment = []
    return found


def render_readme() -> str:
    """charts/extschema/README.md: what the chart does and every value (from values.yaml's comments)."""
    rows = "\n".join(
        "| `{}` | `{}` | {} |".format(path, default, description.replace("|", "\\|"))
        for path, default, description in documented_values((CHART / "values.yaml").read_text())
    )
    return (
        "# extschema Helm chart\n\n"
        "Generated by `make manifests` from `values.yaml` (its `# --` comments). Do not edit.\n\n"
        "Installs the extschema operator: the ExtensionSchema and DatabaseTarget CRDs (templates behind\n"
        "`crds.create`, kept on uninstall), least-privilege RBAC for cluster-wide or namespaced watching, and a\n"
        "non-root Deployment (one replica, or several with kopf peering: docs/ha.md).\n"
        "Install, RBAC, upgrades and GitOps: [docs/install.md](../../docs/install.md).\n\n"
        "```sh full-cluster\n"
        "helm install extschema charts/extschema -n extschema-system --create-namespace \\\n"
        "  --set database.existingSecret=app-db\n"
        "```\n\n"
        "## Values\n\n"
        "| Key | Default | Description |\n"
        "|---|---|---|\n"
        f"{rows}\n"
    )


if __name__ == "__main__":
    import sys

    binary = ensure_helm(HELM3_VERSION if sys.argv[1:] == ["3"] else HELM_VERSION)
    if sys.argv[1:] == ["manifests"]:
        MANIFESTS.parent.mkdir(parents=True, exist_ok=True)
        MANIFESTS.write_text(render_manifests(binary))
        CHART_README.write_text(render_readme())
        print(MANIFESTS, CHART_README)
    else:
        print(binary)
