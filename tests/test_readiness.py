"""The operator's readiness endpoint (``run --readiness``), apart from kopf's liveness: unready while the default
database does not answer, ready again when it does, live all along."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests import test_chart as chart
from tests.controlplane import Cluster
from tests.controlplane.cluster import free_port
from tests.helpers import load_core, run
from tests.test_operator_e2e import Operator

pytestmark = pytest.mark.k8s


def answer(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def eventually(url: str, status: int, deadline_s: float = 180) -> dict[str, object]:
    deadline, last = time.monotonic() + deadline_s, None
    while time.monotonic() < deadline:
        try:
            got, body = answer(url)
        except (urllib.error.URLError, ConnectionError):  # not listening yet
            got, body = 0, {}
        if got == status:
            return body
        last = (got, body)
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered {status}; last: {last}")


class Relay:
    """A TCP relay to PostgreSQL that can be cut: the database 'goes down' without stopping the shared server."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target_port = free_port(), target_port
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        # socat is not guaranteed here: a tiny Python relay in a subprocess, killed to cut every connection.
        code = (
            "import socket,threading\n"
            f"s=socket.create_server(('127.0.0.1',{self.port}))\n"
            "def pipe(a,b):\n"
            "    try:\n"
            "        while (d:=a.recv(65536)): b.sendall(d)\n"
            "    except OSError: pass\n"
            "    finally: a.close(); b.close()\n"
            "while True:\n"
            "    c,_=s.accept()\n"
            f"    u=socket.create_connection(('127.0.0.1',{self.target_port}))\n"
            "    threading.Thread(target=pipe,args=(c,u),daemon=True).start()\n"
            "    threading.Thread(target=pipe,args=(u,c),daemon=True).start()\n"
        )
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("relay did not start")

    def down(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def relay(pg_url: str) -> Iterator[tuple[Relay, str]]:
    url = make_url(pg_url)
    assert url.port is not None
    relay = Relay(url.port)
    relay.up()
    yield relay, url.set(port=relay.port).render_as_string(hide_password=False)
    relay.down()


@contextlib.contextmanager
def probed_operator(kube_cluster: Cluster, database: str, log: Path) -> Iterator[tuple[str, str]]:
    """An operator on *database* ("": none) in a fresh namespace; yields its liveness and readiness URLs."""
    namespace = f"ready-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("apply", "-f", str(Path(__file__).parent.parent / "crds"))
    kube_cluster.kubectl("create", "namespace", namespace)
    live, ready = f"http://127.0.0.1:{free_port()}/healthz", f"http://127.0.0.1:{free_port()}/readyz"
    operator = Operator(kube_cluster, namespace, database, log, f"--liveness={live}", f"--readiness={ready}").start()
    try:
        yield live, ready
    finally:
        operator.stop()
        print(operator.tail())
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


@pytest.mark.postgres
def test_unready_while_the_default_database_is_down_live_all_along(
    kube_cluster: Cluster, relay: tuple[Relay, str], tmp_path: Path
) -> None:
    proxy, url = relay
    load_core(url)
    with probed_operator(kube_cluster, url, tmp_path / "operator.log") as (live, ready):
        body = eventually(ready, 200)
        assert body == {"ready": True, "checks": {"kubernetes": "ok", "database": "ok"}}
        proxy.down()
        body = eventually(ready, 503)
        checks = body["checks"]
        assert isinstance(checks, dict) and checks["kubernetes"] == "ok" and checks["database"] != "ok"
        secret = make_url(url).password
        assert not secret or str(secret) not in json.dumps(body)  # the URL's password never shows
        with urllib.request.urlopen(live, timeout=10) as answer:
            assert answer.status == 200  # the process is fine: no restart for a database outage
        proxy.up()
        eventually(ready, 200)


@pytest.mark.helm
def test_without_a_default_database_ready_once_logged_in_and_the_helm_test_passes(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    with probed_operator(kube_cluster, "", tmp_path / "operator.log") as (live, ready):
        body = eventually(ready, 200)
        assert body == {"ready": True, "checks": {"kubernetes": "ok", "database": "none"}}
        # The chart's `helm test` Pod runs this command in the cluster; here against the same endpoints.
        (pod,) = chart.by_kind(chart.template(chart.ensure_helm()), "Pod")
        command = pod["spec"]["containers"][0]["command"]
        probe = subprocess.run(
            [sys.executable, *command[1:3], live, ready], capture_output=True, text=True, timeout=120
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert f"{ready} 200" in probe.stdout and '"ready": true' in probe.stdout


def test_a_readiness_url_without_a_port_is_a_usage_error() -> None:
    outcome = run("run", "-A", "--readiness", "http://0.0.0.0/readyz")
    assert outcome.exit_code == 2 and "--readiness" in outcome.stderr and "with a port" in outcome.stderr
