"""Toxiproxy (github.com/Shopify/toxiproxy/v2): a TCP proxy whose connections the chaos suite cuts, slows and resets.

Built from the Go module proxy like Helm (tests/controlplane/helm.py): ``go install …/cmd/server@VERSION`` into the
same cache root, under the same build lock, through a temporary directory. ``.ci/install-deps`` builds it on a fresh
machine (``python -m tests.chaos.toxiproxy`` prints its path). Its HTTP API is driven with urllib: no client library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.controlplane.build import _build_lock, cache_root, go_env, log, run_go
from tests.controlplane.cluster import free_port, stop_process

#: The newest release the module proxy lists (``go list -m -versions github.com/Shopify/toxiproxy/v2``).
VERSION = "v2.5.0"
MODULE = "github.com/Shopify/toxiproxy/v2"


def toxiproxy_dir(version: str = VERSION) -> Path:
    return cache_root() / "bin" / f"toxiproxy-{version}"


def _works(binary: Path, version: str) -> bool:
    if not binary.is_file():
        return False
    try:
        proc = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and version in proc.stdout + proc.stderr


def ensure_toxiproxy(version: str = VERSION) -> Path:
    """The toxiproxy server binary, built on first use (~15 s warm Go cache, a minute cold). ``EXTSCHEMA_TOXIPROXY``
    overrides it."""
    override = os.environ.get("EXTSCHEMA_TOXIPROXY")
    if override:
        return Path(override)
    out = toxiproxy_dir(version)
    binary = out / "toxiproxy-server"
    if _works(binary, version):
        return binary
    with _build_lock():
        if _works(binary, version):
            return binary
        started = time.monotonic()
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"building toxiproxy {version}")
        env = {**go_env(), "GOBIN": str(tmp)}
        ldflags = f"-X {MODULE}.Version={version}"  # what its Makefile stamps; `-version` prints it
        run_go(["install", "-trimpath", "-ldflags", ldflags, f"{MODULE}/cmd/server@{version}"], cache_root(), env)
        (tmp / "server").rename(tmp / "toxiproxy-server")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        log(f"built toxiproxy into {out} in {time.monotonic() - started:.0f}s")
    return binary


class Toxiproxy:
    """One toxiproxy server on a free loopback port with one proxy ``name`` in front of ``upstream`` (host:port)."""

    def __init__(self, workdir: Path, name: str, upstream: str) -> None:
        self.workdir, self.name, self.upstream = workdir, name, upstream
        self.api_port, self.port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Toxiproxy:
        binary = ensure_toxiproxy()
        with open(self.workdir / "toxiproxy.log", "ab") as out:
            self.proc = subprocess.Popen(
                [str(binary), "-host", "127.0.0.1", "-port", str(self.api_port), "-seed", "1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/proxies")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"toxiproxy did not start (log: {self.workdir / 'toxiproxy.log'})") from None
                time.sleep(0.05)
        self._call(
            "POST", "/proxies", {"name": self.name, "listen": f"127.0.0.1:{self.port}", "upstream": self.upstream}
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc.pid, self.proc)
            self.proc = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
        return json.loads(raw) if raw.strip() else None

    def enabled(self, on: bool) -> None:
        """Disabled: every open connection is closed and new ones are refused."""
        self._call("POST", f"/proxies/{self.name}", {"enabled": on})

    def add(self, toxic: str, type_: str, attributes: dict[str, Any], stream: str = "downstream") -> None:
        body = {"name": toxic, "type": type_, "stream": stream, "toxicity": 1.0, "attributes": attributes}
        self._call("POST", f"/proxies/{self.name}/toxics", body)

    def remove(self, toxic: str) -> None:
        self._call("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")


if __name__ == "__main__":
    print(ensure_toxiproxy())
    sys.exit(0)
