"""Sharded operators at fleet scale: prints JSON (docs/sharding.md).

3,000 ExtensionSchemas (labeled with their shard, as the mutating webhook labels them) stored first, then N
operators started (``extschema run --shard I --shards N``) against one PostgreSQL database: the time until every
resource is Ready, each shard's resident memory once they are (about 1,000 resources per shard with 3 shards),
and the API requests per resource (kube-apiserver's ``apiserver_request_total`` for ExtensionSchemas and Events,
before and after). The same with one unsharded operator is the baseline, measured in the same run.
Goals: 3,000 Ready < 90 s on 2 cores; RSS per shard < 120 MB at 1,000 resources.

Starts things as bench/operator_latency.py does (its cluster, database and watcher): the cluster in
``KUBECONFIG`` with ``EXTSCHEMA_USE_EXISTING_CLUSTER=1``, else the local control plane; PostgreSQL from
``EXTSCHEMA_BENCH_DATABASE_URL``, else a throwaway server. ``python bench/fleet_shards.py [--small]``
(--small: 150 resources, a smoke run); ``--resources N --shards 3,1`` for other sizes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "bench")]

from tests.controlplane import Cluster  # noqa: E402

from extschema.controller.sharding import LABEL, shard_of  # noqa: E402
from operator_latency import ReadyWatcher, cluster, database, doc, rss_mb  # noqa: E402

_REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def requests(kube: Cluster) -> collections.Counter[str]:
    """kube-apiserver's request counters for ExtensionSchemas and Events, by resource and verb."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        match = _REQUEST.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        resource = labels.get("resource", "")
        if resource in ("extensionschemas", "events"):
            key = f"{resource}{'/' + labels['subresource'] if labels.get('subresource') else ''} {labels['verb']}"
            counts[key] += int(float(match["value"]))
    return counts


def create_database(admin_url: str) -> str:
    """A fresh database on the server of *admin_url* (each run its own: the same plugins in every run)."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def run(kube: Cluster, admin_url: str, shards: int, total: int, log_dir: Path) -> dict[str, Any]:
    namespace = f"shards{shards}-{uuid.uuid4().hex[:6]}"
    url = create_database(admin_url) if admin_url.startswith("postgresql") else admin_url
    kube.kubectl("create", "namespace", namespace)
    names = [f"fleet-{i}" for i in range(total)]
    owner = {n: shard_of(namespace, n, shards) for n in names}
    docs = []
    for name in names:
        body = doc(name)
        if shards > 1:  # as the mutating webhook stamps it
            body["metadata"]["labels"] = {LABEL: str(owner[name])}
        docs.append(body)
    started = time.monotonic()
    for chunk in range(0, total, 500):
        text = yaml.safe_dump_all(docs[chunk : chunk + 500])
        kube.kubectl("-n", namespace, "create", "-f", "-", input=text, timeout=900)
    stored_s = time.monotonic() - started
    watcher = ReadyWatcher(kube, namespace)
    before = requests(kube)
    # This checkout's operator, not whichever extschema the interpreter has installed.
    pythonpath = os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "PYTHONPATH": pythonpath}
    operators = []
    started = time.monotonic()
    for shard in range(shards):
        args = ["--shard", str(shard), "--shards", str(shards)] if shards > 1 else []
        log = open(log_dir / f"shards{shards}-{shard}.log", "wb")  # noqa: SIM115 - kept by the child
        operators.append(
            subprocess.Popen(
                [sys.executable, "-m", "extschema", "run", "--standalone", "-n", namespace, "--database", url, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        )
        log.close()
    try:
        while True:
            if any(p.poll() is not None for p in operators):
                raise RuntimeError("an operator exited: " + (log_dir / f"shards{shards}-0.log").read_text()[-2000:])
            try:
                ready_s = watcher.wait(names, 5) - started
                break
            except TimeoutError:
                if time.monotonic() - started > 3600:
                    raise
        time.sleep(5)  # settled: the last status patches and events are done
        rss = [round(rss_mb(p.pid), 1) for p in operators]
        after = requests(kube)
    finally:
        watcher.stop()
        for proc in operators:
            proc.terminate()
        for proc in operators:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    delta = {key: after[key] - before.get(key, 0) for key in after if after[key] - before.get(key, 0)}
    per_shard = collections.Counter(owner.values())
    return {
        "shards": shards,
        "resources": total,
        "resources_per_shard": [per_shard[i] for i in range(shards)],
        "stored_s": round(stored_s, 1),
        "all_ready_s": round(ready_s, 1),
        "ready_per_s": round(total / ready_s, 1),
        "rss_mb_per_shard": rss,
        "api_requests_per_resource": round(sum(delta.values()) / total, 2),
        "api_requests": dict(sorted(delta.items())),
        "watch_restarts": watcher.restarts,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="150 resources instead of 3,000 (a smoke run)")
    parser.add_argument("--resources", type=int, help="resources per run (default 3000)")
    parser.add_argument("--shards", default="3,1", help="the runs, e.g. 3,1 (the last is the baseline)")
    args = parser.parse_args()
    total = args.resources or (150 if args.small else 3000)
    with cluster() as kube, database() as url, tempfile.TemporaryDirectory() as tmp:
        kube.kubectl("apply", "-f", str(REPO / "crds"))
        kube.kubectl("wait", "--for=condition=Established", "crd/extensionschemas.extschema.io")
        result: dict[str, Any] = {"database": url.split(":", 1)[0], "cpus": os.cpu_count(), "runs": []}
        for shards in (int(n) for n in args.shards.split(",")):
            result["runs"].append(run(kube, url, shards, total, Path(tmp)))
        result["goals"] = {"all_ready_s": "3,000 < 90 s on 2 cores", "rss_mb_per_shard": "< 120 MB at 1,000"}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
