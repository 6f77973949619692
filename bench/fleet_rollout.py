"""Fleet benchmark: one ExtensionSchema rolled out over 50 databases; prints JSON.

- ``rollout``: 50 DatabaseTargets (50 PostgreSQL databases on one server), one ExtensionSchema whose
  ``targetSelector`` selects all of them, ``rollout.maxParallel: 10``: time from ``kubectl apply`` to the
  resource's Ready, and per target the time from the apply to its migration's end (from each database's
  registry), p50/p99 (goal: all Ready < 30 s);
- ``baseline``: the same 50 applies as ``extschema apply --database URL`` runs them (its pipeline, in this
  process, so without 50 interpreter start-ups), one database after the other (another pluginId, the same
  databases), measured in the same run.

Starts things as bench/operator_latency.py does: the cluster in ``KUBECONFIG`` when
``EXTSCHEMA_USE_EXISTING_CLUSTER=1``, else the local control plane (tests/controlplane); PostgreSQL from
``EXTSCHEMA_BENCH_DATABASE_URL``, else a throwaway server (tests/pgserver). ``python bench/fleet_rollout.py
[--targets N] [--max-parallel N]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "bench")]

from tests.controlplane import ControlPlane  # noqa: E402

from operator_latency import cluster, database, pct, rss_mb  # noqa: E402


def schema(plugin: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": plugin},
        "spec": {
            "pluginId": plugin,
            "version": "1.0.0",
            "tables": [
                {
                    "name": "item",
                    "fields": [{"name": "title", "type": "String", "required": True}, {"name": "qty", "type": "Int"}],
                    "indexes": [{"fields": ["title"]}],
                }
            ],
            **spec,
        },
    }


def target(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "DatabaseTarget",
        "metadata": {"name": name, "labels": {"fleet": "bench"}},
        "spec": {"url": url},
    }


def finished_at(url: str, plugin: str) -> datetime.datetime | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT max(execution_end) FROM extschema.extension_migrations WHERE plugin_id = %s", (plugin,)
        ).fetchone()
    return row[0] if row else None


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_s": round(statistics.median(values), 3), "p99_s": round(pct(values, 0.99), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--max-parallel", type=int, default=10)
    args = parser.parse_args()
    with cluster() as kube, database() as admin, tempfile.TemporaryDirectory(prefix="extschema-fleet-bench-") as tmp:
        if not admin.startswith("postgresql"):
            sys.exit("the fleet benchmark needs PostgreSQL (EXTSCHEMA_BENCH_DATABASE_URL or tests/pgserver)")
        base = admin.rpartition("/")[0]
        names = [f"f{uuid.uuid4().hex[:8]}" for _ in range(args.targets)]
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'CREATE DATABASE "{name}"')
        urls = [f"{base}/{name}" for name in names]
        result: dict[str, Any] = {"targets": args.targets, "max_parallel": args.max_parallel, "cpus": os.cpu_count()}
        env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "PYTHONPATH": str(REPO / "operator")}
        # Baseline: the same 50 applies as `extschema apply` does them (its pipeline, in this process: no
        # interpreter start-up per database), one database after the other.
        from extschema import reconcile
        from extschema.engine import Engine

        loaded = reconcile.from_object(schema("baseline"), "baseline")
        each: list[float] = []
        started = time.monotonic()
        for url in urls:
            one = time.monotonic()
            engine = Engine(url)
            try:
                reconcile.reconcile(engine, [loaded], lambda _event: None)
            finally:
                engine.close()
            each.append(time.monotonic() - one)
        result["baseline"] = {
            "how": "extschema apply's pipeline (reconcile.reconcile) per database, one after the other, in-process",
            "total_s": round(time.monotonic() - started, 1),
            **summary(each),
        }
        namespace = f"fleet-{uuid.uuid4().hex[:6]}"
        kube.kubectl("apply", "-f", str(REPO / "crds"))
        for _attempt in range(20):  # a CRD just created has no conditions yet: kubectl wait fails, not waits
            done = kube.kubectl(
                "wait",
                "--for=condition=Established",
                "crd/extensionschemas.extschema.io",
                "crd/databasetargets.extschema.io",
                "--timeout=60s",
                check=False,
            )
            if done.returncode == 0:
                break
            time.sleep(0.5)
        kube.kubectl("create", "namespace", namespace)
        log = open(Path(tmp) / "operator.log", "wb")  # noqa: SIM115
        operator = subprocess.Popen(
            [sys.executable, "-m", "extschema", "run", "--standalone", "-n", namespace, "--database", admin],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        try:
            docs = [target(f"site-{i:03d}", url) for i, url in enumerate(urls)]
            kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs), timeout=300)
            kube.kubectl("-n", namespace, "wait", "--for=condition=Ready", "dbt", "--all", "--timeout=300s")
            fleet = schema(
                "fleet", targetSelector={"matchLabels": {"fleet": "bench"}}, rollout={"maxParallel": args.max_parallel}
            )
            wall = datetime.datetime.now(datetime.UTC)
            started = time.monotonic()
            kube.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(fleet))
            deadline = started + 600
            body: dict[str, Any] = {}
            while time.monotonic() < deadline:
                body = json.loads(kube.kubectl("-n", namespace, "get", "exts", "fleet", "-o", "json").stdout)
                ready = [c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
                if ready and ready[0]["status"] == "True":
                    break
                time.sleep(0.2)
            else:
                tail = (Path(tmp) / "operator.log").read_text(errors="replace")[-3000:]
                raise TimeoutError(f"never Ready: {json.dumps(body.get('status'))[:2000]}\n{tail}")
            all_ready = time.monotonic() - started
            per_target = []
            for url in urls:
                end = finished_at(url, "fleet")
                assert end is not None, url
                per_target.append((end - wall).total_seconds())
            durations = [e["lastMigration"]["durationMs"] / 1000 for e in body["status"]["targets"]]
            result["rollout"] = {
                "all_ready_s": round(all_ready, 1),
                "target_done_after_apply": summary(per_target),
                "migration_duration": summary(durations),
                "targets_ready": body["status"]["targetsReady"],
                "operator_rss_mb": round(rss_mb(operator.pid), 1),
                "goal": "all Ready < 30 s",
            }
        finally:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
            log.close()
            if not isinstance(kube, ControlPlane):
                kube.kubectl(
                    "-n", namespace, "patch", "exts", "fleet", "--type=merge", "-p",
                    '{"metadata":{"finalizers":null}}', check=False,
                )  # fmt: skip
                kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
            with psycopg.connect(admin, autocommit=True) as conn:
                for name in names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
