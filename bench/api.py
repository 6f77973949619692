"""REST API latency; prints one JSON object. Run: ``python bench/api.py [--rows N] [--requests N]``.

One plugin table of 1,000,000 rows on PostgreSQL (a throwaway server from tests/pgserver.py unless
EXTSCHEMA_TEST_DATABASE_URL is set). ``extschema serve`` runs in its own process (uvicorn, one worker); a
keep-alive httpx client sends 10,000 requests of each kind, one at a time, and the same SQL the API runs
(compiled from the same statement builders) is timed directly with psycopg in the same run:
- GET by id (random ids, seeded): goal p50 < 3 ms;
- a filtered list, ``?status=VALUE&limit=50`` on an indexed enum field: goal p50 < 10 ms;
- the API's p50 at most 3 times the direct query's.
The API's figure includes what each request does besides the query: HTTP, auth, the registry check that
serves a new schema without a restart, the transaction and JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402
from tests import pgserver  # noqa: E402

from extschema.engine import Engine  # noqa: E402
from extschema.engine.entities import EntityCatalog, Sort  # noqa: E402

TOKEN = "bench-token"
SPEC = """apiVersion: extschema.io/v1alpha1
kind: ExtensionSchema
metadata: {name: bench}
spec:
  pluginId: bench
  version: 1.0.0
  enums:
    - {name: state, values: [open, active, closed, archived]}
  tables:
    - name: ticket
      fields:
        - {name: title, type: String, required: true, validation: {maxLength: 200}}
        - {name: status, type: Enum, enum: state, required: true, default: open}
        - {name: priority, type: Int, validation: {min: 0, max: 10}}
        - {name: amount, type: Decimal, precision: 12, scale: 2}
        - {name: created_at, type: DateTime, required: true, default: now}
      indexes:
        - {fields: [status]}
"""


@contextlib.contextmanager
def database() -> Iterator[str]:
    given = os.environ.get("EXTSCHEMA_TEST_DATABASE_URL")
    with contextlib.ExitStack() as stack:
        admin = given or stack.enter_context(pgserver.running_server())
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{admin.rpartition('/')[0]}/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(url: str, rows: int, directory: Path) -> None:
    (directory / "bench.yaml").write_text(SPEC)
    applied = subprocess.run(
        [sys.executable, "-m", "extschema", "apply", str(directory / "bench.yaml"), "-d", url],
        env=_env(),
        capture_output=True,
        text=True,
    )
    if applied.returncode != 0:
        raise SystemExit(applied.stderr)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ext_bench.ticket (title, status, priority, amount) "
            "SELECT 'ticket ' || g, (ARRAY['open','active','closed','archived'])[1 + g %% 4]::ext_bench.state, "
            "g %% 11, (g %% 100000) / 100.0 FROM generate_series(1, %s) AS g",
            (rows,),
        )
        conn.execute("ANALYZE ext_bench.ticket")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "operator"), env.get("PYTHONPATH")]))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(url: str, directory: Path) -> Iterator[str]:
    tokens = directory / "tokens.yaml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    tokens.write_text(f"tokens:\n  - {{name: bench, sha256: {digest}, scopes: [bench:read]}}\n")
    port = _free_port()
    command = [sys.executable, "-m", "extschema", "serve", "-d", url, "--port", str(port), "--tokens", str(tokens)]
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("extschema serve did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed(count: int, call: Callable[[int], Any]) -> dict[str, float]:
    """p50/p99 in milliseconds of *count* calls (after a warm-up of a tenth as many)."""
    for i in range(max(1, count // 10)):
        call(i)
    samples: list[float] = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return {"p50_ms": round(statistics.median(samples), 3), "p99_ms": round(quantiles[98], 3)}


def compiled(statement: Any) -> tuple[str, dict[str, Any]]:
    """The SQL the API sends (psycopg's paramstyle) and its parameters."""
    found = statement.compile(dialect=postgresql.psycopg.dialect())
    return str(found), dict(found.params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=10_000)
    options = parser.parse_args()
    rows, count = options.rows, options.requests
    rng = random.Random(14)
    ids = [rng.randint(1, rows) for _ in range(count + count // 10)]
    states = ["open", "active", "closed", "archived"]
    results: dict[str, Any] = {"rows": rows, "requests": count}
    with database() as url, tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        load(url, rows, Path(scratch))
        results["load_s"] = round(time.perf_counter() - started, 1)
        engine = Engine(url)
        table = EntityCatalog(engine.database).snapshot().table("bench", "ticket")
        assert table is not None
        by_id_sql, _ = compiled(table.get_statement(1))
        list_sql, list_params = compiled(table.page_statement({"status": "active"}, Sort(), None, 50))
        status_key = next(k for k, v in list_params.items() if v == "active")
        engine.close()
        with psycopg.connect(url, autocommit=True) as conn:
            key = next(iter(compiled(table.get_statement(1))[1]))
            direct_id = timed(count, lambda i: conn.execute(by_id_sql, {key: ids[i]}).fetchall())
            direct_list = timed(
                count, lambda i: conn.execute(list_sql, {**list_params, status_key: states[i % 4]}).fetchall()
            )
        with server(url, Path(scratch)) as base:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

                def get(i: int) -> None:
                    response = client.get(f"/api/v1/bench/ticket/{ids[i]}")
                    assert response.status_code == 200, response.text

                def listed(i: int) -> None:
                    response = client.get("/api/v1/bench/ticket", params={"status": states[i % 4], "limit": 50})
                    assert response.status_code == 200 and len(response.json()["items"]) == 50, response.text

                api_id = timed(count, get)
                api_list = timed(count, listed)
    results["get_by_id"] = {
        "api": api_id,
        "direct": direct_id,
        "ratio_p50": round(api_id["p50_ms"] / direct_id["p50_ms"], 1),
    }
    results["filtered_list_50"] = {
        "api": api_list,
        "direct": direct_list,
        "ratio_p50": round(api_list["p50_ms"] / direct_list["p50_ms"], 1),
    }
    results["goals"] = {
        "get_by_id_p50_under_3ms": api_id["p50_ms"] < 3,
        "filtered_list_p50_under_10ms": api_list["p50_ms"] < 10,
        "ratio_under_3x": max(results["get_by_id"]["ratio_p50"], results["filtered_list_50"]["ratio_p50"]) < 3,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
