"""Engine benchmarks; prints one JSON object. Run: ``python bench/engine.py`` (or ``make bench``).

Measured in one run, against baselines in the same run:
- validate + conflict check of a 20-table schema against 500 registered schemas (goal < 50 ms);
- apply of a 50-table schema through extschema vs ``psql -1 -f`` of the same SQL (goal at most 1.1 times psql);
- apply of a 1,500-table schema vs ``psql -1 -f`` of the same SQL (goal at most 1.15 times psql, client CPU
  < 1 s), with the ways of sending statements side by side (one by one, batches, psycopg pipeline mode),
  and how long the server holds the plugin's lock after the client is killed (kill -9; goal < 1 s);
- plan + apply of one 1,000-column table (goal < 2 s);
- diff + plan (with classification) of a change to a 200-table schema (goal < 100 ms);
- CLI start-up: ``extschema --version`` and ``extschema validate examples/`` (fresh processes) next to
  ``psql --version`` and a bare ``python -c pass`` (the floor any Python CLI pays).
PostgreSQL is a throwaway server (tests/pgserver.py) unless EXTSCHEMA_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
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

import psycopg  # noqa: E402
from tests import pgserver  # noqa: E402

from extschema import conflicts, model, naming, planning, reconcile, validation  # noqa: E402
from extschema.dialects import BatchFailed, PostgresDialect  # noqa: E402
from extschema.engine import Engine  # noqa: E402
from extschema.planning import safety  # noqa: E402

REPEATS = 5


def spec_dict(plugin: str, tables: int, fields: int, depends_on: list[str] | None = None) -> dict[str, Any]:
    return {
        "pluginId": plugin,
        "version": "1.0.0",
        "dependsOn": depends_on or [],
        "enums": [{"name": "state", "values": ["a", "b", "c"]}],
        "tables": [
            {
                "name": f"t{t}",
                "fields": [
                    {"name": f"f{f}", "type": ["String", "Int", "Decimal", "Boolean", "DateTime"][f % 5]}
                    for f in range(fields)
                ]
                + [{"name": "state", "type": "Enum", "enum": "state", "default": "a", "required": True}],
                "indexes": [{"fields": ["f0", "f1"]}],
            }
            for t in range(tables)
        ],
        "relationships": [{"source": f"t{t}", "target": f"t{t - 1}", "type": "ManyToOne"} for t in range(1, tables)],
    }


def document(spec: dict[str, Any], name: str) -> str:
    return json.dumps({"apiVersion": model.API_VERSION, "kind": model.KIND, "metadata": {"name": name}, "spec": spec})


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


STARTUP_RUNS = 11


def _median_run_ms(command: list[str], env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(STARTUP_RUNS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=REPO)
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 1)


def bench_cli_startup() -> dict[str, Any]:
    """Start-up of fresh processes: the CLI must not import SQLAlchemy, psycopg or kopf to answer these."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))
    )
    extschema = [sys.executable, "-m", "extschema"]
    return {
        "extschema_version_median_ms": _median_run_ms([*extschema, "--version"], env),
        "extschema_validate_examples_median_ms": _median_run_ms([*extschema, "validate", "examples/"], env),
        "python_bare_median_ms": _median_run_ms([sys.executable, "-c", "pass"], env),
        "psql_version_median_ms": _median_run_ms(["psql", "--version"]),
        "runs": STARTUP_RUNS,
    }


def bench_validate_and_conflicts() -> dict[str, Any]:
    registered = [conflicts.Claim(f"owner{i}", model.parse_spec(spec_dict(f"p{i}", 3, 8))) for i in range(500)]
    candidate = spec_dict("candidate", 20, 10)
    namer = naming.Namer("schema", "public")

    def run() -> None:
        spec = model.parse_spec(candidate)
        assert not validation.validate(spec)
        assert not conflicts.detect([conflicts.Claim("me", spec)], registered, {}, namer)

    run()
    samples = [timed(run) for _ in range(REPEATS * 2)]
    return {"median_ms": round(statistics.median(samples) * 1000, 2), "goal_ms": 50, "registered": 500, "tables": 20}


def bench_validate_2000_fields() -> dict[str, Any]:
    """Validation of one table of 2,000 fields with rules and 100 indexes (it stays linear)."""
    from tests.test_validation import two_thousand_fields

    spec = model.parse_spec(two_thousand_fields())
    samples = [timed(lambda: validation.validate(spec)) for _ in range(REPEATS * 2)]
    return {"median_ms": round(statistics.median(samples) * 1000, 2), "goal_ms": 100, "fields": 2000}


def evolved(spec: dict[str, Any]) -> dict[str, Any]:
    """A version 2 touching every kind of change: renames (a table, a field, an enum value), a
    dropped table and column, a type change, a narrowed rule, a new column and index."""
    new = json.loads(json.dumps(spec))
    new["version"] = "2.0.0"
    new["enums"][0].update(values=["a", "b", "z"], renamedValues={"c": "z"})
    tables = new["tables"]
    tables[10].update(name="renamed", renamedFrom="t10")
    for rel in new["relationships"]:
        rel["source"] = "renamed" if rel["source"] == "t10" else rel["source"]
        rel["target"] = "renamed" if rel["target"] == "t10" else rel["target"]
        if rel["target"] == "renamed":
            rel["sourceField"] = "t10_id"
    tables[20]["fields"][0].update(name="g0", renamedFrom="f0")
    tables[20]["indexes"] = [{"fields": ["g0", "f1"]}]
    tables[30]["fields"] = [f for f in tables[30]["fields"] if f["name"] != "f3"]
    tables[40]["fields"][1]["type"] = "BigInt"
    tables[50]["fields"][0]["validation"] = {"maxLength": 20}
    tables[60]["fields"].append({"name": "extra", "type": "Text"})
    tables[60]["indexes"].append({"fields": ["f2"]})
    last = tables.pop()["name"]
    new["relationships"] = [r for r in new["relationships"] if last not in (r["source"], r["target"])]
    return new


def bench_diff_and_plan(tables: int = 200) -> dict[str, Any]:
    """Parse both specs anew each run (resolution is cached per spec object), diff, plan, classify."""
    old_data = spec_dict("big", tables, 10)
    new_data = evolved(old_data)
    ops = 0

    def run() -> None:
        nonlocal ops
        planned = planning.plan(model.parse_spec(old_data), model.parse_spec(new_data), {})
        safety.classify_plan(planned)
        ops = len(planned.ops)

    run()
    samples, cpu = [], []
    for _ in range(REPEATS * 2):
        started = time.process_time()
        samples.append(timed(run))
        cpu.append(time.process_time() - started)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 2),
        "goal_ms": 100,
        "tables": tables,
        "ops": ops,
        "note": "both specs parsed anew each run; cpu_median_ms is this process's CPU time (machine load aside)",
    }


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    given = os.environ.get("EXTSCHEMA_TEST_DATABASE_URL")
    if given:
        yield given
    else:
        with pgserver.running_server() as url:
            yield url


def fresh_database(admin: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def apply_file(url: str, path: Path) -> None:
    engine = Engine(url)
    try:
        reconcile.reconcile(engine, reconcile.load([str(path)]), lambda event: None)
    finally:
        engine.close()


def create_registry(url: str) -> None:
    """Reads (plan, status) no longer create the registry; the benchmark starts from one that exists."""
    engine = Engine(url)
    try:
        engine.ensure_registry()
    finally:
        engine.close()


def plan_sql(url: str, path: Path) -> str:
    engine = Engine(url)
    try:
        proposal = reconcile.propose(engine, reconcile.load([str(path)]))
        return "".join(item.preview.script() for item in proposal.items)
    finally:
        engine.close()


def bench_apply_vs_psql(admin: str, workdir: Path) -> dict[str, Any]:
    path = workdir / "fifty.yaml"
    path.write_text(document(spec_dict("fifty", 50, 12), "fifty"))
    ours, theirs, cpu = [], [], []
    for _ in range(REPEATS):
        # Both sides start from a database whose registry exists (it is created once per database).
        mine = fresh_database(admin)
        create_registry(mine)
        wall, used, _ = measured_apply(mine, path)
        ours.append(wall)
        cpu.append(used)
        theirs.append(psql_apply(admin, path, workdir / "fifty.sql"))
    ratio = statistics.median(ours) / statistics.median(theirs)
    return {
        "extschema_median_ms": round(statistics.median(ours) * 1000, 1),
        "psql_median_ms": round(statistics.median(theirs) * 1000, 1),
        "ratio": round(ratio, 2),
        "goal_ratio": 1.1,
        "extschema_cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
        "tables": 50,
        "note": "extschema includes validation, conflict check, registry, lock and history; psql runs the DDL only",
    }


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def measured_apply(url: str, path: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds of an apply in this process (as the CLI runs it: load, plan, apply),
    and the CPU seconds of loading the file alone."""
    started, cpu = time.perf_counter(), cpu_seconds()
    loaded = reconcile.load([str(path)])
    load_cpu = cpu_seconds() - cpu
    engine = Engine(url)
    try:
        reconcile.reconcile(engine, loaded, lambda event: None)
    finally:
        engine.close()
    return time.perf_counter() - started, cpu_seconds() - cpu, load_cpu


def psql_apply(admin: str, path: Path, sql: Path) -> float:
    """Seconds ``psql -1 -f`` takes to run the SQL extschema runs for *path*, on a fresh database."""
    target = fresh_database(admin)
    sql.write_text(plan_sql(target, path))
    return timed(
        lambda: subprocess.run(
            ["psql", "-q", "-X", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(sql), target],
            check=True,
            capture_output=True,
        )
    )


def big_schema(path: Path, tables: int) -> Path:
    """The schema of tests/test_safety.py's kill -9 test: *tables* tables of 8 checked strings and an index."""
    lines = ["apiVersion: extschema.io/v1alpha1", "kind: ExtensionSchema", "metadata: {name: big}", "spec:"]
    lines += ["  pluginId: big", "  version: 1.0.0", "  tables:"]
    for t in range(tables):
        lines += [f"    - name: t{t}", "      fields:"]
        lines += [f"        - {{name: f{f}, type: String, validation: {{minLength: 1}}}}" for f in range(8)]
        lines.append("      indexes: [{fields: [f0, f1]}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def _pipelined(self: PostgresDialect, cursor: Any, statements: Any) -> None:
    """psycopg's pipeline mode, for comparison: every statement sent without waiting, one Sync a batch."""
    conn = cursor.connection
    try:
        with conn.pipeline():
            for statement in statements:
                cursor.execute(statement)
    except psycopg.Error as error:
        raise BatchFailed(0, error) from error  # (timing only: the failing statement is not looked for)


#: How statements are sent: the statements per round trip and the sending method.
SENDING: dict[str, tuple[int, Any]] = {
    "one_by_one": (1, PostgresDialect.execute_batch),
    "batches_64": (PostgresDialect.batch_statements, PostgresDialect.execute_batch),
    "batches_256": (256, PostgresDialect.execute_batch),
    "pipeline_64": (64, _pipelined),
    "pipeline_whole": (1_000_000, _pipelined),
}


@contextlib.contextmanager
def sending(name: str) -> Iterator[None]:
    batch, method = SENDING[name]
    saved = PostgresDialect.batch_statements, PostgresDialect.execute_batch
    PostgresDialect.batch_statements, PostgresDialect.execute_batch = batch, method  # type: ignore[method-assign]
    try:
        yield
    finally:
        PostgresDialect.batch_statements, PostgresDialect.execute_batch = saved  # type: ignore[method-assign]


BIG_TABLES = 1500
BIG_REPEATS = 3


def bench_apply_big_vs_psql(admin: str, workdir: Path, kinds: tuple[str, ...] = tuple(SENDING)) -> dict[str, Any]:
    """The 1,500-table apply, each way of sending next to psql, repeated in turns (load changes alike)."""
    path = big_schema(workdir / "big.yaml", BIG_TABLES)
    walls: dict[str, list[float]] = {k: [] for k in ("psql", *kinds)}
    cpus: dict[str, list[float]] = {k: [] for k in kinds}
    load_cpu: list[float] = []
    for _ in range(BIG_REPEATS):
        walls["psql"].append(psql_apply(admin, path, workdir / "big.sql"))
        for kind in kinds:
            mine = fresh_database(admin)
            create_registry(mine)
            with sending(kind):
                wall, cpu, loading = measured_apply(mine, path)
            walls[kind].append(wall)
            cpus[kind].append(cpu)
            load_cpu.append(loading)
    psql = statistics.median(walls["psql"])
    return {
        "tables": BIG_TABLES,
        "psql_median_s": round(psql, 2),
        "sending": {
            kind: {
                "median_s": round(statistics.median(walls[kind]), 2),
                "ratio": round(statistics.median(walls[kind]) / psql, 2),
                "client_cpu_median_s": round(statistics.median(cpus[kind]), 2),
            }
            for kind in kinds
        },
        "used": f"batches_{PostgresDialect.batch_statements}",
        "load_cpu_median_s": round(statistics.median(load_cpu), 2),
        "goal_ratio": 1.15,
        "goal_client_cpu_s": 1.0,
        "repeats": BIG_REPEATS,
        "note": "client CPU is the whole apply in this process (YAML loading included: load_cpu_median_s)",
    }


_KILLED_APPLY = """
import sys
sys.path.insert(0, {bench!r})
import engine
from extschema import cli
sys.argv = ["extschema", "apply", {path!r}, "-d", {url!r}]
with engine.sending({kind!r}):
    cli.main()
"""


def _one(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def server_free_after_kill(admin: str, path: Path, kind: str) -> float | None:
    """Seconds from kill -9 of a CLI applying *path* (mid-migration) until the server released the
    plugin's lock and ended the session (None: the migration ended before it could be killed)."""
    url = fresh_database(admin)
    create_registry(url)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "operator"), str(REPO)]))
    script = _KILLED_APPLY.format(bench=str(REPO / "bench"), kind=kind, path=str(path), url=url)
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    creating = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND query ILIKE '%CREATE%'"
    )
    advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    with psycopg.connect(url, autocommit=True) as watcher:
        deadline = time.monotonic() + 120
        while not _one(watcher, creating) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        if process.poll() is not None:
            return None
        os.kill(process.pid, signal.SIGKILL)
        killed = time.perf_counter()
        process.wait()
        while _one(watcher, advisory) or _one(watcher, creating):
            time.sleep(0.005)
        return time.perf_counter() - killed


def bench_server_free_after_kill(admin: str, workdir: Path) -> dict[str, Any]:
    path = big_schema(workdir / "big.yaml", BIG_TABLES)
    found: dict[str, Any] = {}
    for kind in ("one_by_one", "batches_64", "pipeline_64", "pipeline_whole"):
        samples = [server_free_after_kill(admin, path, kind) for _ in range(BIG_REPEATS)]
        measured = [s for s in samples if s is not None]
        found[kind] = round(statistics.median(measured), 3) if measured else None
    return {"seconds_median": found, "goal_s": 1.0, "tables": BIG_TABLES, "repeats": BIG_REPEATS}


def bench_wide_table(url_for: Callable[[], str], workdir: Path, backend: str) -> dict[str, Any]:
    fields = [{"name": f"c{i}", "type": "Int"} for i in range(999)]
    path = workdir / f"wide-{backend}.yaml"
    path.write_text(
        document({"pluginId": "wide", "version": "1.0.0", "tables": [{"name": "w", "fields": fields}]}, "wide")
    )
    samples = []
    for _ in range(REPEATS):
        url = url_for()
        samples.append(timed(lambda url=url: (plan_sql(url, path), apply_file(url, path))))
    return {"backend": backend, "columns": 1000, "median_s": round(statistics.median(samples), 3), "goal_s": 2}


def main() -> None:
    results: dict[str, Any] = {
        "cli_startup": bench_cli_startup(),
        "validate_and_conflicts_20_tables_vs_500": bench_validate_and_conflicts(),
        "validate_2000_fields": bench_validate_2000_fields(),
        "diff_and_plan_200_tables": bench_diff_and_plan(),
    }
    with tempfile.TemporaryDirectory() as tmp, postgres() as admin:
        workdir = Path(tmp)
        results["apply_50_tables_vs_psql"] = bench_apply_vs_psql(admin, workdir)
        results["apply_1500_tables_vs_psql"] = bench_apply_big_vs_psql(admin, workdir)
        results["server_free_after_client_killed"] = bench_server_free_after_kill(admin, workdir)
        results["plan_apply_1000_columns_postgresql"] = bench_wide_table(
            lambda: fresh_database(admin), workdir, "postgresql"
        )
        counter = iter(range(1000))
        results["plan_apply_1000_columns_sqlite"] = bench_wide_table(
            lambda: f"sqlite:///{workdir / f'wide{next(counter)}.db'}", workdir, "sqlite"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
