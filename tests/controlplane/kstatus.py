"""A small Go program running sigs.k8s.io/cli-utils' kstatus (what Flux's health checks use) on objects.

The source and its pinned go.mod/go.sum live in ``go/kstatus``; the binary is cached under the same root and
lock as the control plane, keyed by a hash of those files, so a change rebuilds it (about 40 s cold).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .build import GO_DIR, _build_lock, cache_root, go_env, log, run_go

SOURCE = GO_DIR / "kstatus"


def _stamp() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_kstatus() -> Path:
    """The kstatus binary for the current source, built on first use."""
    out = cache_root() / "bin" / f"kstatus-{_stamp()}"
    binary = out / "kstatus"
    if binary.is_file():
        return binary
    with _build_lock():
        if binary.is_file():
            return binary
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log("building the kstatus checker (sigs.k8s.io/cli-utils)")
        run_go(["build", "-trimpath", "-o", str(tmp / "kstatus"), "."], SOURCE, go_env())
        tmp.rename(out)
    return binary


def compute(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """kstatus' {status, message} for each object, in order."""
    proc = subprocess.run(
        [str(ensure_kstatus())], input=json.dumps(objects), capture_output=True, text=True, check=True, timeout=60
    )
    results: list[dict[str, str]] = json.loads(proc.stdout)
    return results
