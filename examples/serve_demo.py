"""The last step of ``make demo-cli``: ``extschema serve`` on the demo database, a few requests, then stop.

``python examples/serve_demo.py [URL]`` starts the server on a free loopback port without ``--tokens`` (reads
only), asks it what is registered, reads a plugin's rows, plans a change (nothing runs), shows that writes are
refused without a token, reads ``/metrics``, and stops it. Standard library only: no curl needed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), int(error.code)
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"extschema serve exited with {server.returncode}")
        try:
            if call(base, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("extschema serve did not become ready in 60 s")


def show(label: str, status: int, text: str) -> None:
    print(f"{label:<58} {status} {text}")


def demo(url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"== extschema serve --database {url} --port {port} (no --tokens: loopback, reads only) ==")
    command = [sys.executable, "-m", "extschema", "serve", "--database", url, "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_ready(base, server)
        status, ready = call(base, "GET", "/readyz")
        show("GET /readyz", status, f"{ready['database']} {ready['server']}, {ready['plugins']} plugins")
        status, listed = call(base, "GET", "/api/v1/extensions")
        plugins = ", ".join(f"{p['pluginId']} {p['version']} {p['status']}" for p in listed["items"])
        show("GET /api/v1/extensions", status, plugins)
        status, rows = call(base, "GET", "/api/v1/customreports/report?limit=2")
        show("GET /api/v1/customreports/report?limit=2", status, f"{len(rows.get('items', []))} rows")
        status, history = call(base, "GET", "/api/v1/extensions/customreports/migrations")
        show("GET /api/v1/extensions/customreports/migrations", status, f"{len(history['items'])} migrations")
        document = yaml.safe_load((EXAMPLES / "custom-reports.yaml").read_text())
        document["spec"]["version"] = "1.1.0"
        table = document["spec"]["tables"][0]
        table["fields"] = [f for f in table["fields"] if f["name"] != "code"]
        status, plans = call(base, "POST", "/api/v1/extensions/customreports/plan", document)
        plan = plans["items"][0]
        show("POST .../customreports/plan (drop field code)", status, f"{plan['class']} plan {plan['hash']}")
        status, refused = call(base, "DELETE", "/api/v1/extensions/customreports/schema")
        show("DELETE .../customreports/schema", status, refused["errors"][0]["code"])
        status, metrics = call(base, "GET", "/metrics")
        series = [
            line
            for line in str(metrics).splitlines()
            if line.startswith("extschema_api_request_duration_seconds_count")
        ]
        show("GET /metrics", status, f"request durations of {len(series)} (method, route, status) series")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("== server stopped ==")


if __name__ == "__main__":
    demo(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///extschema.db")
