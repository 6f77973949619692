"""Operator benchmark: prints JSON.

- ``apply_to_ready``: ``kubectl apply`` of one schema → its Ready condition observed, p50/p99 over 50 schemas
  applied one after the other (goal < 0.08 s / < 0.25 s);
- ``burst``: 500 schemas in one ``kubectl apply`` → all Ready (goal < 10 s on 2 cores);
- ``rss_mb``: the operator's resident memory with 1,000 resources (goal < 100 MB).

Uses the cluster in ``KUBECONFIG`` when ``EXTSCHEMA_USE_EXISTING_CLUSTER=1``, else starts the local control
plane (tests/controlplane); PostgreSQL from ``EXTSCHEMA_BENCH_DATABASE_URL``, else a throwaway server
(tests/pgserver), else SQLite. ``python bench/operator_latency.py [--small]`` (--small: 10/50/100, a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from tests.controlplane import Cluster, ControlPlane  # noqa: E402
from tests.controlplane.fixtures import existing_cluster  # noqa: E402


def doc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": name},
        "spec": {
            "pluginId": name.replace("-", "_"),
            "version": "1.0.0",
            "tables": [
                {
                    "name": "item",
                    "fields": [{"name": "title", "type": "String", "required": True}, {"name": "qty", "type": "Int"}],
                    "indexes": [{"fields": ["title"]}],
                }
            ],
        },
    }


class ReadyWatcher:
    """Records when each resource is first seen Ready (a watch through kubectl -w, one line per event).

    One short line per event (custom columns), not pretty-printed JSON: a reader that cannot keep up is cut
    off by the API server ("watcher close due to unresponsiveness") and kubectl then exits. Should the
    watch end anyway, it is restarted (its initial list records what became Ready meanwhile) and
    counted in ``restarts``.
    """

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.ready: dict[str, float] = {}
        self.cond = threading.Condition()
        self.restarts = 0
        self.stopped = False
        self.cmd = [
            str(cluster.kubectl_bin),
            f"--kubeconfig={cluster.kubeconfig}",
            "-n",
            namespace,
            "get",
            "exts",
            "-w",
            "--no-headers",
            "-o",
            'custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status',
        ]
        self.proc = self._start()
        threading.Thread(target=self._read, daemon=True).start()

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def _read(self) -> None:
        while True:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                name, _, ready = line.strip().partition(" ")
                if ready.strip() == "True":
                    with self.cond:
                        self.ready.setdefault(name, time.monotonic())
                        self.cond.notify_all()
            self.proc.wait()
            if self.stopped:
                return
            self.restarts += 1
            self.proc = self._start()

    def wait(self, names: list[str], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(n in self.ready for n in names):
                if not self.cond.wait(max(0.0, deadline - time.monotonic())):
                    missing = [n for n in names if n not in self.ready]
                    raise TimeoutError(f"{len(missing)} never Ready, e.g. {missing[:3]}")
            return max(self.ready[n] for n in names)

    def stop(self) -> None:
        self.stopped = True
        self.proc.terminate()
        self.proc.wait()


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    found = existing_cluster()
    if found is not None:
        yield found
        return
    with ControlPlane() as cp:
        yield cp


@contextlib.contextmanager
def database() -> Iterator[str]:
    given = os.environ.get("EXTSCHEMA_BENCH_DATABASE_URL")
    if given:
        yield given
        return
    from tests import pgserver

    try:
        pgserver.find_bindir()
    except RuntimeError:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    with pgserver.running_server() as url:
        yield url


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="10 / 50 / 100 instead of 50 / 500 / 1000")
    parser.add_argument("--sizes", metavar="SEQ,BURST,TOTAL", help="other sizes, e.g. 20,200,400 (for profiling)")
    args = parser.parse_args()
    sequential, burst, total = (10, 50, 100) if args.small else (50, 500, 1000)
    if args.sizes:
        sequential, burst, total = (int(n) for n in args.sizes.split(","))
    with cluster() as kube, database() as url, tempfile.TemporaryDirectory() as tmp:
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        kube.kubectl("apply", "-f", str(REPO / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "crd/extensionschemas.extschema.io")
        kube.kubectl("create", "namespace", namespace)
        env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
        log = open(Path(tmp) / "operator.log", "wb")  # noqa: SIM115
        operator = subprocess.Popen(
            [sys.executable, "-m", "extschema", "run", "--standalone", "-n", namespace, "--database", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        watcher = ReadyWatcher(kube, namespace)
        result: dict[str, Any] = {"database": url.split(":", 1)[0], "cpus": os.cpu_count()}
        try:
            time.sleep(3)
            latencies = []
            for i in range(sequential):
                name = f"seq-{i}"
                started = time.monotonic()
                kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(doc(name)))
                latencies.append(watcher.wait([name], 60) - started)
            curve = [(sequential, round(rss_mb(operator.pid), 1))]
            result["apply_to_ready"] = {
                "n": sequential,
                "samples_s": [round(x, 4) for x in latencies],
                "p50_s": round(statistics.median(latencies), 3),
                "p99_s": round(pct(latencies, 0.99), 3),
                "goal": "p50 < 0.08 s, p99 < 0.25 s",
            }
            names = [f"burst-{i}" for i in range(burst)]
            cpu_before = cpu_s(operator.pid)
            started = time.monotonic()
            kube.kubectl(
                "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all([doc(n) for n in names]), timeout=600
            )
            result["burst"] = {
                "n": burst,
                "all_ready_s": round(watcher.wait(names, 900) - started, 1),
                # The operator's own CPU time meanwhile: near all_ready_s, the burst is bound by its one core (GIL).
                "operator_cpu_s": round(cpu_s(operator.pid) - cpu_before, 1),
                "goal": "< 10 s on 2 cores",
            }
            curve.append((sequential + burst, round(rss_mb(operator.pid), 1)))
            rest = [f"more-{i}" for i in range(total - sequential - burst)]
            for chunk in range(0, len(rest), 250):
                part = rest[chunk : chunk + 250]
                kube.kubectl(
                    "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all([doc(n) for n in part]), timeout=600
                )
                watcher.wait(part, 900)
                curve.append((sequential + burst + chunk + len(part), round(rss_mb(operator.pid), 1)))
            watcher.wait(rest, 900)
            time.sleep(5)
            result["rss_mb"] = {
                "resources": total,
                "operator_rss_mb": round(rss_mb(operator.pid), 1),
                "goal": "< 100 MB",
                "curve": [{"resources": n, "rss_mb": mb} for n, mb in curve],
            }
            result["watch_restarts"] = watcher.restarts
        finally:
            watcher.stop()
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
            log.close()
            if not isinstance(kube, ControlPlane):  # a throwaway cluster needs no cleanup
                for name in kube.kubectl("-n", namespace, "get", "exts", "-o", "name", check=False).stdout.split():
                    kube.kubectl(
                        "-n",
                        namespace,
                        "patch",
                        name,
                        "--type=merge",
                        "-p",
                        '{"metadata":{"finalizers":null}}',
                        check=False,
                    )
                kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
