"""Engine benchmarks; prints one JSON object. Run: ``python bench/engine.py`` (or ``make bench``).

Measured in one run, against baselines in the same run:
- validate + conflict check of a 20-table schema against 500 registered schemas (goal < 50 ms);
- apply of a 50-table schema through extschema vs ``psql -1 -f`` of the same SQL (goal at most 1.5 times psql);
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
    ours, theirs = [], []
    for _ in range(REPEATS):
        # Both sides start from a database whose registry exists (it is created once per database).
        mine = fresh_database(admin)
        create_registry(mine)
        ours.append(timed(lambda mine=mine: apply_file(mine, path)))
        target = fresh_database(admin)
        sql = workdir / "fifty.sql"
        sql.write_text(plan_sql(target, path))  # the same SQL extschema runs
        theirs.append(
            timed(
                lambda sql=sql, target=target: subprocess.run(
                    ["psql", "-q", "-X", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(sql), target],
                    check=True,
                    capture_output=True,
                )
            )
        )
    ratio = statistics.median(ours) / statistics.median(theirs)
    return {
        "extschema_median_ms": round(statistics.median(ours) * 1000, 1),
        "psql_median_ms": round(statistics.median(theirs) * 1000, 1),
        "ratio": round(ratio, 2),
        "goal_ratio": 1.5,
        "tables": 50,
        "note": "extschema includes validation, conflict check, registry, lock and history; psql runs the DDL only",
    }


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
