"""Everything a chaos run starts and breaks: the control plane, PostgreSQL, Toxiproxy in front of it, the operators.

The operators reach PostgreSQL only through Toxiproxy (``operator_url``); the suite's own reads and writes go
straight to the server (``direct_url``), so a cut or slowed proxy never hides what the database holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.chaos.postgres import PgServer
from tests.chaos.toxiproxy import Toxiproxy
from tests.controlplane.cluster import ControlPlane, stop_process

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "chaos"
DATABASE = "chaos"
#: What a traceback in an operator's log looks like (kopf logs an unexpected handler error with one).
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)


@contextlib.contextmanager
def connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to *url*, retried for a minute while the server restarts."""
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        yield conn


class Operator:
    """``python -m extschema run --standalone -n chaos`` on the proxied database; each start logs to a new file."""

    def __init__(self, world: World, name: str) -> None:
        self.world, self.name = world, name
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Operator:
        self.starts += 1
        log = self.world.workdir / f"operator-{self.name}-{self.starts}.log"
        self.world.logs.append(log)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.world.cluster.kubeconfig),
            "EXTSCHEMA_RECHECK_SECONDS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])),
        }
        args = ["run", *self.world.operator_args, "-n", NAMESPACE, "--database", self.world.operator_url]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "extschema", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no cleanup handler runs, open transactions are left to the server to abort."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc.pid, self.proc, grace=20)
            self.proc = None


class World:
    """The running system under test (a context manager: everything it started is stopped on exit)."""

    #: How every operator instance runs (replicas with peering would say so here).
    operator_args: tuple[str, ...] = ("--standalone",)

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="extschema-chaos-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = ControlPlane(self.workdir / "cluster")
        # its own temporary directory: the server's user (postgres, when we are root) must reach it, and may not
        # reach a pytest tmp_path
        self.pg = PgServer(Path(tempfile.mkdtemp(prefix="extschema-chaos-pg-")))
        self.proxy: Toxiproxy | None = None
        self.logs: list[Path] = []
        self.operators: dict[str, Operator] = {}
        self._scanned: dict[Path, int] = {}

    @property
    def direct_url(self) -> str:
        return self.pg.url.rpartition("/")[0] + f"/{DATABASE}"

    @property
    def operator_url(self) -> str:
        assert self.proxy is not None
        return f"postgresql://postgres@127.0.0.1:{self.proxy.port}/{DATABASE}"

    def __enter__(self) -> World:
        try:
            self.pg.init()
            with psycopg.connect(self.pg.url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            self.proxy = Toxiproxy(self.workdir, "postgres", f"127.0.0.1:{self.pg.port}")
            self.proxy.start()
            self.cluster.start()
            self.cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            self.cluster.kubectl("create", "namespace", NAMESPACE)
            self.operators["a"] = Operator(self, "a").start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for operator in self.operators.values():
            operator.stop()
        self.cluster.stop()
        if self.proxy is not None:
            self.proxy.stop()
        self.pg.destroy()

    # -- acting on the system ------------------------------------------------------------------------

    def apply(self, documents: list[dict[str, Any]]) -> None:
        """``kubectl apply`` of *documents*, retried while the API server is down (a fault may be in progress)."""
        deadline = time.monotonic() + 120
        while True:
            proc = self.cluster.kubectl(
                "-n", NAMESPACE, "apply", "-f", "-", input=yaml.safe_dump_all(documents), check=False
            )
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"kubectl apply kept failing: {proc.stderr}")
            time.sleep(0.5)

    def resources(self) -> list[dict[str, Any]] | None:
        """Every ExtensionSchema of the namespace, or None while the API server does not answer."""
        try:
            proc = self.cluster.kubectl(
                "-n", NAMESPACE, "get", "exts", "-o", "json", "--request-timeout=10s", check=False, timeout=20
            )
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0:
            return None
        items: list[dict[str, Any]] = json.loads(proc.stdout)["items"]
        return items

    def migration_in_flight(self) -> bool:
        """A migration holds its plugin's advisory lock (PostgreSQL: the engine's pg_advisory_xact_lock)."""
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.direct_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()
            return bool(row and row[0])
        return False

    def wait_in_flight(self, timeout: float) -> bool:
        """Poll until a migration holds its lock (True) or *timeout* passed (False)."""
        deadline = time.monotonic() + timeout
        while not self.migration_in_flight():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def new_tracebacks(self) -> list[str]:
        """Tracebacks logged by any operator since the last call: the first lines after each, to show."""
        found: list[str] = []
        for log in self.logs:
            if not log.is_file():
                continue
            text = log.read_text(errors="replace")
            start = self._scanned.get(log, 0)
            self._scanned[log] = len(text)
            for match in TRACEBACK.finditer(text, start):
                found.append(f"{log.name}: " + " | ".join(text[max(0, match.start() - 300) :].splitlines()[:12]))
        return found
