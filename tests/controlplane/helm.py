"""Build and cache the Helm CLI, like the control-plane binaries (``build``).

No package registry ships Helm; ``go install helm.sh/helm/v3/cmd/helm@VERSION`` works as is (no replace
directives, unlike kube-apiserver). The binary lands in the same cache root, under the same build lock,
through a temporary directory so that a killed build leaves nothing half-done.
``python -m tests.controlplane.helm`` builds it and prints its path (``make helm``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .build import _build_lock, cache_root, go_env, log, run_go

HELM_VERSION = "v3.22.0"
HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"


def helm_dir(version: str = HELM_VERSION) -> Path:
    return cache_root() / "bin" / f"helm-{version}"


def _works(binary: Path, version: str) -> bool:
    if not binary.is_file():
        return False
    try:
        proc = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip().startswith(version)


def ensure_helm(version: str = HELM_VERSION) -> Path:
    """The helm binary of *version* (``EXTSCHEMA_HELM`` overrides), built on first use (~1-5 minutes)."""
    override = os.environ.get("EXTSCHEMA_HELM")
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
        run_go(["install", "-trimpath", f"{HELM_PACKAGE}@{version}"], cache_root(), env)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        log(f"built helm into {out} in {time.monotonic() - started:.0f}s")
    return binary


if __name__ == "__main__":
    print(ensure_helm())
