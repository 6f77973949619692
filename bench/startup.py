"""CLI start-up and planning speed; prints one JSON object. Run: ``python bench/startup.py [--runs N]``.

Each command runs N times in fresh processes, round-robin (so load on the machine spreads over all of
them), after one warm-up run that fills ``__pycache__``; ``PYTHONDONTWRITEBYTECODE`` is removed from the
environment, as users run the CLI. The database is a SQLite file with the demo's core tables and
``examples/`` applied, so ``apply examples/`` is a no-op. Baselines in the same run: ``python -c pass``,
``import sqlalchemy``, ``import pydantic`` and ``import click``.

Each command's median wall time and median CPU time (user + system, of the process: on a busy machine
it is the steadier figure). For each command it also prints the modules that took longest to import
(``python -X importtime``, cumulative, top level of the tree under ``extschema``) and the total import
time. Last, diff + plan (with classification) of a 10-operation change to a 200-table schema, in this
process.

Goals (issue 17): ``status`` < 200 ms, a no-op ``apply examples/`` < 300 ms, ``--version`` well under
100 ms, diff + plan < 25 ms. Nothing here is asserted: it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GOALS_MS = {"version": 100, "status": 200, "apply_noop": 300, "diff_and_plan_200_tables": 25}


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' machines write and reuse __pycache__
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))
    return env


def commands(database: str) -> dict[str, list[str]]:
    py = sys.executable
    cli = [py, "-m", "extschema"]
    d = ["--database", database]
    return {
        "python_pass": [py, "-c", "pass"],
        "import_click": [py, "-c", "import click"],
        "import_pydantic": [py, "-c", "import pydantic"],
        "import_sqlalchemy": [py, "-c", "import sqlalchemy"],
        "version": [*cli, "--version"],
        "help": [*cli, "--help"],
        "status": [*cli, "status", *d],
        "status_json": [*cli, "status", "-o", "json", *d],
        "history": [*cli, "history", *d],
        "backups": [*cli, "backups", "list", *d],
        "drift": [*cli, "drift", *d],
        "validate": [*cli, "validate", "examples/"],
        "apply_noop": [*cli, "apply", "examples/", *d],
    }


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run: on a busy machine the CPU time says more."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, cwd=REPO, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(command: list[str], env: dict[str, str], top: int = 8) -> dict[str, Any]:
    """The slowest imports of one run: top-level modules (and those directly under extschema) by cumulative time."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], capture_output=True, env=env, cwd=REPO, check=False
    )
    rows = []
    for match in _LINE.finditer(done.stderr.decode()):
        self_us, cumulative_us, indent, name = match.groups()
        rows.append((len(indent) // 2, name, int(self_us), int(cumulative_us)))
    total = sum(r[2] for r in rows)
    # Level 0 is what the command imported itself; extschema's own modules one level down show which part pulled.
    shown = [r for r in rows if r[0] == 0 or (r[0] == 1 and r[1].startswith("extschema."))]
    shown.sort(key=lambda r: -r[3])
    return {
        "import_total_ms": round(total / 1000, 1),
        "modules": len(rows),
        "top_cumulative_ms": {name: round(cum / 1000, 1) for _, name, _, cum in shown[:top]},
        "third_party": sorted({r[1].split(".")[0] for r in rows} & HEAVY),
    }


HEAVY = {"sqlalchemy", "psycopg", "pydantic", "pydantic_core", "kopf", "fastapi", "starlette", "uvicorn", "yaml"}


def prepare(workdir: Path, env: dict[str, str]) -> str:
    """A SQLite file with the core tables and examples/ applied (``apply examples/`` is then a no-op)."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    subprocess.run([sys.executable, "examples/core/load.py", url], check=True, env=env, cwd=REPO)
    cli = [sys.executable, "-m", "extschema"]
    subprocess.run([*cli, "apply", "examples/", "--database", url], check=True, env=env, cwd=REPO, capture_output=True)
    return url


def bench_commands(runs: int) -> dict[str, Any]:
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare(Path(tmp), env)
        table = commands(url)
        for command in table.values():  # warm __pycache__ and the page cache
            run_once(command, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in table}
        for _ in range(runs):
            for name, command in table.items():
                samples[name].append(run_once(command, env))
        profiles = {name: import_profile(command, env) for name, command in table.items() if name in PROFILED}
    out: dict[str, Any] = {}
    for name, values in samples.items():
        wall, cpu = [w for w, _ in values], [c for _, c in values]
        out[name] = {
            "median_ms": round(statistics.median(wall) * 1000, 1),
            "min_ms": round(min(wall) * 1000, 1),
            "cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
        }
        if name in GOALS_MS:
            out[name]["goal_ms"] = GOALS_MS[name]
        if name in profiles:
            out[name]["imports"] = profiles[name]
    return out


PROFILED = {"version", "help", "status", "status_json", "history", "drift", "backups", "validate", "apply_noop"}


def bench_diff_and_plan(repeats: int, tables: int = 200) -> dict[str, Any]:
    """Parse both specs, diff, plan and classify a 10-operation change (bench/engine.py's evolved spec)."""
    sys.path[:0] = [str(REPO / "operator"), str(REPO / "bench")]
    import engine as engine_bench  # bench/engine.py: the same specs as its diff + plan row
    from extschema import model, planning
    from extschema.planning import safety

    old_data = engine_bench.spec_dict("big", tables, 10)
    new_data = engine_bench.evolved(old_data)
    ops = 0

    def run() -> None:
        nonlocal ops
        planned = planning.plan(model.parse_spec(old_data), model.parse_spec(new_data), {})
        safety.classify_plan(planned)
        ops = len(planned.ops)

    run()
    wall, cpu = [], []
    for _ in range(repeats):
        started_cpu, started = time.process_time(), time.perf_counter()
        run()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "median_ms": round(statistics.median(wall) * 1000, 2),
        "min_ms": round(min(wall) * 1000, 2),
        "cpu_median_ms": round(statistics.median(cpu) * 1000, 2),
        "goal_ms": GOALS_MS["diff_and_plan_200_tables"],
        "tables": tables,
        "ops": ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="fresh processes per command (default 11)")
    args = parser.parse_args()
    load = os.getloadavg()
    results = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load],
        },
        "runs": args.runs,
        "commands": bench_commands(args.runs),
        "diff_and_plan_200_tables": bench_diff_and_plan(max(args.runs, 15)),
    }
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
