"""``make bench``: every benchmark in one run, written down with its baseline, its goal and the machine.

Runs each benchmark script of this folder in its own process (each prints one JSON object and measures its
own baseline in the same run: the same SQL through ``psql``, the same query through psycopg, ``python -c
pass``), adds a sweep of apply time against table count (extschema and ``psql -1 -f`` of the same SQL), and
writes:

- ``results.json``: the machine, every benchmark's whole output, and the goal table;
- ``results.md``: the goal table (figure, baseline, goal, met);
- ``apply-vs-tables.png``, ``operator-rss.png``, ``ready-latency.png``: the plots.

``python bench/report.py [--quick] [--out DIR]``: ``--quick`` runs small sizes (a smoke run: the figures
mean little, the files are complete); ``--out`` defaults to ``docs/bench`` (what docs/performance.md shows).
Benchmarks print; nothing here asserts a timing. A benchmark that fails makes the run exit 1 after writing
what was measured, its error recorded in ``results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_OUT = REPO / "docs" / "bench"
#: The page that shows the latest full run: its block between these markers is rewritten by a default run.
PAGE = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- bench:results -->", "<!-- /bench:results -->"


@dataclasses.dataclass(frozen=True)
class Bench:
    """One benchmark script and its arguments for a full and a quick run."""

    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    timeout_s: int = 1800


BENCHES = (
    Bench("engine", "engine.py"),
    Bench("operator", "operator_latency.py", quick=("--small",)),
    Bench("startup", "startup.py", quick=("--runs", "2")),
    Bench("fleet", "fleet_rollout.py", quick=("--targets", "4", "--max-parallel", "2")),
    Bench("shards", "fleet_shards.py", quick=("--resources", "30")),
    Bench(
        "api",
        "api.py",
        full=("--rows", "1000000", "--requests", "10000"),
        quick=("--rows", "2000", "--requests", "200"),
    ),
)

#: Tables per apply in the sweep (extschema vs psql).
SWEEP_FULL = (10, 50, 200, 500, 1500)
SWEEP_QUICK = (5, 20)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    memory_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as info:
        memory_kb = next((int(line.split()[1]) for line in info if line.startswith("MemTotal")), 0)
    postgres = shutil.which("psql")
    pg_version = (
        subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout.strip() if postgres else ""
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kb / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_version,
    }


def run_script(bench: Bench, quick: bool) -> dict[str, Any]:
    """One benchmark in its own process: its JSON, or the error it ended with."""
    command = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), str(REPO)]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=bench.timeout_s, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {bench.timeout_s} s"}
    seconds = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}", "seconds": seconds}
    try:
        output: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"error": f"not JSON: {done.stdout[-500:]}", "seconds": seconds}
    output["seconds"] = seconds
    return output


def _engine_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH / "engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def apply_sweep(sizes: tuple[int, ...]) -> dict[str, Any]:
    """Apply time against table count: extschema, and ``psql -1 -f`` of the SQL extschema runs (fresh databases)."""
    engine = _engine_module()
    points = []
    with tempfile.TemporaryDirectory() as tmp, engine.postgres() as admin:
        workdir = Path(tmp)
        for tables in sizes:
            path = workdir / f"t{tables}.yaml"
            path.write_text(engine.document(engine.spec_dict(f"sweep{tables}", tables, 12), f"sweep{tables}"))
            ours, theirs = [], []
            for _ in range(3):
                mine = engine.fresh_database(admin)
                engine.create_registry(mine)
                ours.append(engine.timed(lambda mine=mine, path=path: engine.apply_file(mine, path)))
                target = engine.fresh_database(admin)
                sql = workdir / f"t{tables}.sql"
                sql.write_text(engine.plan_sql(target, path))
                psql = ["psql", "-q", "-X", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(sql), target]
                theirs.append(engine.timed(lambda psql=psql: subprocess.run(psql, check=True, capture_output=True)))
            points.append(
                {
                    "tables": tables,
                    "extschema_s": round(statistics.median(ours), 3),
                    "psql_s": round(statistics.median(theirs), 3),
                }
            )
    return {"points": points, "note": "median of 3 applies, each to a fresh database; psql runs the same SQL"}


@dataclasses.dataclass(frozen=True)
class Goal:
    """One row of the goal table: where its figure and baseline are in the results, and the goal."""

    measure: str
    unit: str
    value: Callable[[dict[str, Any]], float | None]
    goal: float
    baseline_name: str = ""
    baseline: Callable[[dict[str, Any]], float | None] = lambda results: None
    baseline_unit: str = ""
    #: The goal bounds the figure divided by the baseline (a ratio), not the figure.
    ratio: bool = False


def _get(*path: str | int) -> Callable[[dict[str, Any]], float | None]:
    def read(results: dict[str, Any]) -> float | None:
        node: Any = results
        for key in path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return None
        return float(node) if isinstance(node, int | float) else None

    return read


def _shard_run(shards: int, key: str) -> Callable[[dict[str, Any]], float | None]:
    """A figure of bench/fleet_shards.py's run with *shards* operators (a list, such as RSS per shard: its largest)."""

    def read(results: dict[str, Any]) -> float | None:
        runs = results.get("shards", {}).get("runs") or []
        run = next((r for r in runs if r.get("shards") == shards), None)
        value = run.get(key) if run else None
        if isinstance(value, list):
            value = max(value, default=None)
        return float(value) if isinstance(value, int | float) else None

    return read


def _largest_sweep(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(results: dict[str, Any]) -> float | None:
        points = results.get("sweep", {}).get("points") or []
        return float(points[-1][key]) if points else None

    return read


GOALS = (
    Goal(
        "apply of the sweep's largest schema (tables: see the plot)",
        "x psql",
        _largest_sweep("extschema_s"),
        1.15,
        "psql -1 -f, same SQL",
        _largest_sweep("psql_s"),
        "s",
        ratio=True,
    ),
    Goal(
        "apply of a 50-table schema",
        "x psql",
        _get("engine", "apply_50_tables_vs_psql", "extschema_median_ms"),
        1.1,
        "psql -1 -f, same SQL",
        _get("engine", "apply_50_tables_vs_psql", "psql_median_ms"),
        "ms",
        ratio=True,
    ),
    Goal(
        "diff + plan of a 10-op change to a 200-table schema (bench/startup.py)",
        "ms",
        _get("startup", "diff_and_plan_200_tables", "median_ms"),
        25,
    ),
    Goal(
        "`extschema --version`",
        "ms",
        _get("startup", "commands", "version", "median_ms"),
        100,
        "python -c pass",
        _get("startup", "commands", "python_pass", "median_ms"),
    ),
    Goal(
        "`extschema status` (SQLite)",
        "ms",
        _get("startup", "commands", "status", "median_ms"),
        200,
        "python -c 'import sqlalchemy'",
        _get("startup", "commands", "import_sqlalchemy", "median_ms"),
    ),
    Goal(
        "no-op `extschema apply examples/` (SQLite)",
        "ms",
        _get("startup", "commands", "apply_noop", "median_ms"),
        300,
        "python -c 'import sqlalchemy'",
        _get("startup", "commands", "import_sqlalchemy", "median_ms"),
    ),
    Goal("kubectl apply → Ready, p50", "s", _get("operator", "apply_to_ready", "p50_s"), 0.08),
    Goal("kubectl apply → Ready, p99", "s", _get("operator", "apply_to_ready", "p99_s"), 0.25),
    Goal("burst of schemas → all Ready", "s", _get("operator", "burst", "all_ready_s"), 10),
    Goal("operator RSS with all resources", "MB", _get("operator", "rss_mb", "operator_rss_mb"), 100),
    Goal(
        "targetSelector rollout over 50 databases (maxParallel 10) → Ready",
        "s",
        _get("fleet", "rollout", "all_ready_s"),
        30,
        "the same applies one after the other (extschema apply's pipeline)",
        _get("fleet", "baseline", "total_s"),
    ),
    Goal(
        "ExtensionSchemas over 3 shards → all Ready (resources: see shards.runs)",
        "s",
        _shard_run(3, "all_ready_s"),
        90,
        "one unsharded operator",
        _shard_run(1, "all_ready_s"),
    ),
    Goal(
        "RSS of the largest of 3 shards",
        "MB",
        _shard_run(3, "rss_mb_per_shard"),
        120,
        "one unsharded operator",
        _shard_run(1, "rss_mb_per_shard"),
    ),
    Goal(
        "REST API GET by id, p50",
        "ms",
        _get("api", "get_by_id", "api", "p50_ms"),
        3,
        "the same SQL through psycopg",
        _get("api", "get_by_id", "direct", "p50_ms"),
    ),
    Goal(
        "REST API filtered list of 50, p50",
        "ms",
        _get("api", "filtered_list_50", "api", "p50_ms"),
        10,
        "the same SQL through psycopg",
        _get("api", "filtered_list_50", "direct", "p50_ms"),
    ),
)


def goal_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for goal in GOALS:
        value, baseline = goal.value(results), goal.baseline(results)
        figure = value / baseline if goal.ratio and value is not None and baseline else value
        rows.append(
            {
                "measure": goal.measure,
                "value": None if figure is None else round(figure, 3),
                "unit": goal.unit,
                "baseline": goal.baseline_name or None,
                "baseline_value": baseline,
                "baseline_unit": goal.baseline_unit or goal.unit,
                "goal": goal.goal,
                "met": None if figure is None else figure <= goal.goal,
            }
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    about = results["machine"]
    lines = [
        f"Measured {about['date']} on {about['cpus']} cores ({about['cpu']}), {about['memory_gib']} GiB, "
        f"{about['python'] and 'Python ' + about['python']}, {about['postgresql']}"
        + (" — quick run (small sizes)." if results["quick"] else "."),
        "",
        "| measure | figure | baseline (same run) | goal | met |",
        "|---|---|---|---|---|",
    ]
    for row in results["goals"]:
        figure = "—" if row["value"] is None else f"{row['value']:g} {row['unit']}"
        baseline = row["baseline"] or ""
        if row["baseline_value"] is not None:
            baseline += f": {row['baseline_value']:g} {row['baseline_unit']}"
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['measure']} | {figure} | {baseline} | ≤ {row['goal']:g} {row['unit']} | {met} |")
    errors = {name: out["error"] for name, out in results["benchmarks"].items() if "error" in out}
    if errors:
        lines += ["", "Failed benchmarks: " + "; ".join(f"{k}: {v[:200]}" for k, v in errors.items())]
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    written = []
    points = results.get("sweep", {}).get("points") or []
    if points:
        figure, axes = plt.subplots(figsize=(6, 4))
        tables = [p["tables"] for p in points]
        axes.plot(tables, [p["extschema_s"] for p in points], marker="o", label="extschema apply")
        axes.plot(tables, [p["psql_s"] for p in points], marker="s", label="psql -1 -f (same SQL)")
        axes.set(xlabel="tables in the schema", ylabel="seconds", title="Apply time against schema size (PostgreSQL)")
        axes.legend()
        written.append(_save(figure, out / "apply-vs-tables.png"))
    curve = results["benchmarks"].get("operator", {}).get("rss_mb", {}).get("curve") or []
    if curve:
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot([c["resources"] for c in curve], [c["rss_mb"] for c in curve], marker="o", label="operator RSS")
        axes.axhline(100, linestyle="--", color="grey", label="goal 100 MB")
        axes.set(xlabel="ExtensionSchema resources", ylabel="MB", title="Operator memory against resources")
        axes.legend()
        written.append(_save(figure, out / "operator-rss.png"))
    samples = results["benchmarks"].get("operator", {}).get("apply_to_ready", {}).get("samples_s") or []
    if samples:
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.hist([s * 1000 for s in samples], bins=20)
        axes.set(xlabel="ms", ylabel="applies", title="kubectl apply → Ready latency")
        written.append(_save(figure, out / "ready-latency.png"))
    return written


def show_on_page(table: str, written: list[Path]) -> None:
    """Put the latest full run's table and plots into docs/performance.md (between its markers)."""
    text = PAGE.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    pictures = "".join(f"\n![{p.stem}](bench/{p.name})\n" for p in written)
    PAGE.write_text(text[:start] + "\n" + table + pictures + text[end:])


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the files go")
    parser.add_argument("--only", help="comma-separated benchmark names (engine, operator, api, sweep, ...)")
    args = parser.parse_args()
    chosen = set(args.only.split(",")) if args.only else None
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "benchmarks": {}}
    for bench in BENCHES:
        if chosen is None or bench.name in chosen:
            print(f"bench: {bench.name} ...", file=sys.stderr, flush=True)
            results["benchmarks"][bench.name] = run_script(bench, args.quick)
    if chosen is None or "sweep" in chosen:
        print("bench: sweep ...", file=sys.stderr, flush=True)
        try:
            results["sweep"] = apply_sweep(SWEEP_QUICK if args.quick else SWEEP_FULL)
        except Exception as error:  # recorded, and the run fails at the end
            results["sweep"] = {"error": f"{type(error).__name__}: {error}"}
    # Goals read figures by benchmark name at the top level (results["engine"] ...).
    flat = {**results["benchmarks"], "sweep": results.get("sweep", {})}
    results["goals"] = goal_rows(flat)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    written = plots(results, args.out)
    if args.out.resolve() == DEFAULT_OUT and not args.quick and chosen is None:
        show_on_page(markdown(results), written)
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in [args.out / "results.json", args.out / "results.md", *written]))
    failed = [n for n, out in flat.items() if isinstance(out, dict) and "error" in out]
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
