"""Everything a chaos run starts and breaks: the control plane, PostgreSQL, Toxiproxy in front of it, the operators.

The operators reach PostgreSQL only through Toxiproxy (``operator_url``); the suite's own reads and writes go
straight to the server (``direct_url``), so a cut or slowed proxy never hides what the database holds.

Which operator processes run is a :class:`Topology` (one standalone operator, two peered replicas, two shards);
a fault names the one it needs and the run switches to it before the fault strikes (:meth:`World.use`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.chaos.postgres import PgServer
from tests.chaos.toxiproxy import Toxiproxy
from tests.controlplane.cluster import ControlPlane, free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "chaos"
DATABASE = "chaos"
#: What a traceback in an operator's log looks like (kopf logs an unexpected handler error with one).
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)
#: The kopf peering object the replicas of the ``replicas`` topology share (docs/ha.md).
PEERING = "chaos-replicas"
#: What kopf logs (text format, with the object prefix) when a replica resumes after a pause: a takeover.
RESUMED = "Resuming operations after the pause."


@dataclasses.dataclass(frozen=True)
class Topology:
    """Which operator processes run: name -> the arguments each gets after ``extschema run``."""

    name: str
    operators: tuple[tuple[str, tuple[str, ...]], ...]


#: Two shards of two (docs/sharding.md): shard 0 labels the resources (none has a label) by their hash.
SHARDS = 2


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
    """``python -m extschema run ARGS -n chaos`` on the proxied database (``--standalone`` unless *args* say
    otherwise); each start logs to a new file and serves ``/readyz`` on a new port. Its database sessions carry
    its name as ``application_name``, so the suite sees which process holds a migration's lock."""

    def __init__(self, world: World, name: str, args: tuple[str, ...] | None = None) -> None:
        self.world, self.name = world, name
        self.args = world.operator_args if args is None else args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.logs: list[Path] = []
        self.readyz = ""

    @property
    def shard(self) -> int | None:
        """Its ``--shard I`` (None when it is not sharded)."""
        return int(self.args[self.args.index("--shard") + 1]) if "--shard" in self.args else None

    def start(self) -> Operator:
        self.starts += 1
        log = self.world.workdir / f"operator-{self.name}-{self.starts}.log"
        self.world.logs.append(log)
        self.logs.append(log)
        self.readyz = f"http://127.0.0.1:{free_port()}/readyz"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.world.cluster.kubeconfig),
            "EXTSCHEMA_RECHECK_SECONDS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])),
        }
        database = f"{self.world.operator_url}?application_name={self.name}"
        args = ["run", *self.args, f"--readiness={self.readyz}", "-n", NAMESPACE, "--database", database]
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

    def readiness(self) -> dict[str, Any] | None:
        """Its /readyz answer (200 or 503), or None while it does not answer."""
        if not self.running:
            return None
        try:
            with urllib.request.urlopen(self.readyz, timeout=5) as answer:
                body: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
        except (OSError, ValueError):
            return None
        return body

    def role(self) -> str:
        """``active``/``standby`` (peered replicas, from the peering object as /readyz reports it), else ''."""
        return str(((self.readiness() or {}).get("peering") or {}).get("role", ""))

    def log_count(self, text: str) -> int:
        """How often *text* occurs in the logs of all its starts."""
        return sum(log.read_text(errors="replace").count(text) for log in self.logs if log.is_file())


class World:
    """The running system under test (a context manager: everything it started is stopped on exit)."""

    #: How an operator runs when nothing else is said (the ``standalone`` topology, the faults' second operator).
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
        #: The operators of the current topology (a fault may add one, as ``two operators`` does).
        self.operators: dict[str, Operator] = {}
        #: Every operator this world ever made, by name (a topology that comes back reuses them: its logs go on
        #: operator-NAME-N.log with the next N).
        self.known: dict[str, Operator] = {}
        self.topology = STANDALONE
        #: What the current round's fault measured (e.g. ``takeover``), read and cleared by the run.
        self.measured: dict[str, float] = {}
        #: What the current round's fault saw go wrong beyond the common checks (the run fails the round).
        self.problems: list[str] = []
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
            self._start(self.topology)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # the newest first (standbys: none takes over during the teardown), then any a fault made itself
        for operator in self._stopping_order(list(self.known.values())):
            operator.stop()
        self.cluster.stop()
        if self.proxy is not None:
            self.proxy.stop()
        self.pg.destroy()

    # -- the operators -----------------------------------------------------------------------------

    def operator(self, name: str, args: tuple[str, ...] | None = None) -> Operator:
        """The operator *name* of this world (created, not started, when new)."""
        if name not in self.operators:
            operator = self.known.setdefault(name, Operator(self, name, args))
            operator.args = self.operator_args if args is None else args
            self.operators[name] = operator
        return self.operators[name]

    @staticmethod
    def _stopping_order(operators: list[Operator]) -> list[Operator]:
        """Standbys first, so that none takes over from the active replica while they all leave."""
        return sorted(operators, key=lambda op: op.running and "--peering" in op.args and op.role() == "active")

    def _start(self, topology: Topology) -> None:
        self.topology = topology
        for name, args in topology.operators:
            self.operator(name, args).start()

    def use(self, topology: Topology, timeout: float = 180) -> bool:
        """Run *topology*'s operators: when another one runs, stop its operators (SIGTERM), start these and wait
        until each answers /readyz — replicas until one is active and one stands by, shards until every
        resource is labeled with its shard. True when it switched."""
        if topology == self.topology:
            return False
        for operator in self._stopping_order(list(self.operators.values())):
            operator.stop()
        self.operators = {}
        self._start(topology)
        deadline = time.monotonic() + timeout
        self.wait_for(f"{topology.name}: every operator answers", self._answering, deadline)
        if any("--peering" in op.args for op in self.operators.values()):
            self.active_and_standby(deadline)
        if any(op.shard is not None for op in self.operators.values()):
            self.wait_for(f"{topology.name}: every resource labeled", self._labeled, deadline)
        return True

    def _answering(self) -> bool:
        return all(op.readiness() is not None for op in self.operators.values())

    def _labeled(self) -> bool:
        items = self.resources()
        return items is not None and all(shard_label(item) is not None for item in items)

    def active_and_standby(self, deadline: float | None = None) -> tuple[Operator, Operator]:
        """The active replica and the standby (waits until /readyz shows one of each)."""
        found: list[tuple[Operator, Operator]] = []

        def roles() -> bool:
            seen = {op.role(): op for op in self.operators.values()}
            if set(seen) == {"active", "standby"}:
                found.append((seen["active"], seen["standby"]))
            return bool(found)

        self.wait_for("one replica active, one standing by", roles, deadline or time.monotonic() + 120)
        return found[0]

    @staticmethod
    def wait_for(what: str, done: Callable[[], bool], deadline: float) -> None:
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"chaos world: never {what}")
            time.sleep(0.1)

    def lock_holders(self, timeout: float = 0.0) -> list[str]:
        """The operators (by name: their application_name) whose sessions hold an advisory lock now; with
        *timeout*, polled until one does (or the time is up: [])."""
        query = (
            "SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted ORDER BY 1"
        )
        deadline = time.monotonic() + timeout
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.direct_url, autocommit=True) as conn:
            while True:
                # pg_stat_activity is a snapshot per transaction: autocommit makes each poll a fresh one
                holders = [str(r[0]) for r in conn.execute(query).fetchall() if r[0] in self.operators]
                if holders or time.monotonic() > deadline:
                    return holders
                time.sleep(0.01)
        return []

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


def shard_label(item: dict[str, Any]) -> int | None:
    """The shard a resource's ``extschema.io/shard`` label names (None: none of :data:`SHARDS`)."""
    value = ((item.get("metadata") or {}).get("labels") or {}).get("extschema.io/shard")
    return int(value) if isinstance(value, str) and value.isdigit() and int(value) < SHARDS else None


#: One operator, ``--standalone`` (most faults).
STANDALONE = Topology("standalone", (("a", World.operator_args),))
#: Two replicas sharing a kopf peering object: one active, one standing by (docs/ha.md).
REPLICAS = Topology("replicas", tuple((f"replica-{i}", ("--peering", PEERING)) for i in (1, 2)))
#: Two shards, each standalone (docs/sharding.md).
SHARDED = Topology(
    "shards",
    tuple((f"shard-{i}", ("--standalone", "--shard", str(i), "--shards", str(SHARDS))) for i in range(SHARDS)),
)
