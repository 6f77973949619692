"""The chaos run: plugins reconciled while faults strike, and after each fault the invariants checked.

After every fault: every resource converges to Ready for its current spec; no partial schema (`extschema drift`
finds the database's plugin objects as the registry says, the registry holds each plugin at its spec's version, no
migration is left pending or executing); no migration applied twice (the registry's history); no seeded row lost
(row counts and checksums against what was inserted); no traceback in any operator's log. With shards, also no
resource handled by the other shard; with peered replicas, the standby takes over and the killed one comes back
as standby (the fault's own problems).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.chaos import checks
from tests.chaos.faults import FAULTS, TOPOLOGY
from tests.chaos.workload import Plugin
from tests.chaos.world import STANDALONE, World, connect


@dataclasses.dataclass(frozen=True)
class Config:
    resources: int
    #: How many times each fault kind strikes (kinds left out: 0).
    faults: dict[str, int]
    seed: int = 17
    #: Rows seeded into each plugin once it exists, and topped up after each round into a few plugins.
    rows: int = 100
    #: Plugins changed (one version each) per round.
    changes: int = 5
    converge_timeout: float = 300.0
    #: `extschema drift` over every plugin after every N-th round (and the last); the cheaper checks run every round.
    drift_every: int = 1


FULL = Config(
    resources=50,
    faults={
        "kill -9 operator": 100,
        "postgres restart (immediate)": 10,
        "apiserver+etcd restart": 10,
        "apiserver+etcd down 75 s": 2,
        "db connections cut": 10,
        "db connections slow": 10,
        "db connections reset": 10,
        "db connections black-holed": 10,
        "two operators": 10,
        "kill -9 active replica": 10,
        "kill -9 shard": 10,
    },
    rows=200,
    changes=8,
    drift_every=5,
)
#: The bounded run of `make test`: every kind once but the long outage (75 s of it), the operator killed 6 times.
CI = Config(
    resources=8,
    faults={k: 1 for k in FAULTS if k != "apiserver+etcd down 75 s"} | {"kill -9 operator": 6},
    rows=50,
    changes=3,
)


@dataclasses.dataclass
class Round:
    number: int
    fault: str
    note: str
    changes: list[str]
    converged: bool
    seconds: float
    partial: list[str]
    duplicates: list[str]
    rows_lost: int
    mismatched: list[str]
    tracebacks: list[str]
    #: What went wrong beyond the common checks: a resource handled by the wrong shard, no takeover, ...
    problems: list[str] = dataclasses.field(default_factory=list)
    #: What the fault measured (``takeover``: seconds from the kill -9 of the active replica to the standby's resume).
    measured: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.converged and not (
            self.partial or self.duplicates or self.rows_lost or self.mismatched or self.tracebacks or self.problems
        )


def converged(items: list[dict[str, Any]] | None, plugins: dict[str, Plugin]) -> list[str]:
    """The resources not (yet) Ready for their current spec, with why; every one when the API server is away."""
    if items is None:
        return ["the API server does not answer"]
    by_name = {item["metadata"]["name"]: item for item in items}
    waiting = []
    for name, plugin in plugins.items():
        item = by_name.get(name)
        if item is None:
            waiting.append(f"{name}: missing")
            continue
        status = item.get("status") or {}
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        generation = item["metadata"].get("generation")
        if item["spec"].get("version") != plugin.version:
            waiting.append(f"{name}: spec.version {item['spec'].get('version')} (applied {plugin.version})")
        elif (
            ready.get("status") != "True"
            or status.get("observedGeneration") != generation
            or status.get("appliedVersion") != plugin.version
        ):
            why = f"{ready.get('reason')}: {(ready.get('message') or '')[:160]}"
            waiting.append(f"{name}: Ready={ready.get('status')} applied={status.get('appliedVersion')} {why}")
    return waiting


def wait_converged(world: World, plugins: dict[str, Plugin], timeout: float) -> tuple[bool, float, list[str]]:
    started = time.monotonic()
    waiting: list[str] = []
    while time.monotonic() - started < timeout:
        waiting = converged(world.resources(), plugins)
        if not waiting:
            return True, time.monotonic() - started, []
        time.sleep(0.25)
    return False, time.monotonic() - started, waiting


def schedule(config: Config, rng: random.Random) -> list[str]:
    kinds = [kind for kind, times in config.faults.items() for _ in range(times)]
    rng.shuffle(kinds)
    return kinds


def run(config: Config, world: World, say: Callable[[str], None] = print) -> list[Round]:
    """Create the plugins, seed them, then one round per scheduled fault."""
    rng = random.Random(config.seed)
    plugins = {f"chaos-{i:03d}": Plugin(f"chaos-{i:03d}") for i in range(config.resources)}
    world.apply([p.document() for p in plugins.values()])
    ok, seconds, waiting = wait_converged(world, plugins, config.converge_timeout)
    if not ok:
        raise RuntimeError(f"the plugins never became Ready: {waiting[:5]}")
    say(f"{len(plugins)} plugins Ready in {seconds:.1f}s; seeding {config.rows} rows each")
    with connect(world.direct_url) as conn:
        for plugin in plugins.values():
            plugin.seed(conn, config.rows, rng)
    rounds: list[Round] = []
    kinds = schedule(config, rng)
    scanned: dict[str, int] = {}  # how far the shards' logs were read
    for number, kind in enumerate(kinds, 1):
        topology = TOPOLOGY.get(kind, STANDALONE)
        switched = time.monotonic()
        if world.use(topology):
            say(f"operators now: {topology.name} ({time.monotonic() - switched:.1f}s to switch)")
        changed = rng.sample(sorted(plugins), min(config.changes, len(plugins)))
        changes = [f"{name}: {plugins[name].evolve(rng)}" for name in changed]
        docs = [plugins[name].document() for name in changed]
        world.measured, world.problems = {}, []
        note = FAULTS[kind](world, rng, lambda docs=docs: world.apply(docs))  # type: ignore[misc]
        ok, seconds, waiting = wait_converged(world, plugins, config.converge_timeout)
        problems = list(world.problems)
        if any(op.shard is not None for op in world.operators.values()):
            time.sleep(1)  # the last log lines are written
            problems += checks.wrong_shard(world, changed if ok else [], scanned)
        drift = number % config.drift_every == 0 or number == len(kinds)
        partial = checks.partial(world.direct_url, plugins.values(), drift) if ok else []
        # Not converged: the database may hold an older version's names; the rows are checked at the next round.
        lost, mismatched = checks.rows(world.direct_url, plugins.values()) if ok else (0, [])
        result = Round(
            number=number,
            fault=kind,
            note=note,
            changes=changes,
            converged=ok,
            seconds=round(seconds, 3),
            partial=partial if ok else waiting[:10],
            duplicates=checks.duplicates(world.direct_url),
            rows_lost=lost,
            mismatched=mismatched,
            tracebacks=world.new_tracebacks(),
            problems=problems,
            measured=dict(world.measured),
        )
        rounds.append(result)
        say(
            f"[{number}/{len(kinds)}] {kind} ({note}): "
            + (f"converged in {seconds:.1f}s" if ok else "NOT converged")
            + ("" if result.ok else f" FAILED {json.dumps(dataclasses.asdict(result))[:2000]}")
        )
        # More rows into a few plugins, at the version each is at now (only once everything settled).
        if ok:
            with connect(world.direct_url) as conn:
                for name in rng.sample(sorted(plugins), min(2, len(plugins))):
                    plugins[name].seed(conn, max(1, config.rows // 10), rng)
    return rounds


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(rounds: list[Round]) -> dict[str, Any]:
    """Per fault kind and in total: injected, converged, time to converge p50/p99, duplicates, rows lost, ..."""

    def row(selected: list[Round]) -> dict[str, Any]:
        times = [r.seconds for r in selected if r.converged]
        p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
        return {
            "injected": len(selected),
            "converged": sum(r.converged for r in selected),
            "convergeP50s": None if p50 is None else round(p50, 2),
            "convergeP99s": None if p99 is None else round(p99, 2),
            "duplicates": sum(len(r.duplicates) for r in selected),
            "rowsLost": sum(r.rows_lost for r in selected),
            "partial": sum(len(r.partial) for r in selected if r.converged),
            "tracebacks": sum(len(r.tracebacks) for r in selected),
            "problems": sum(len(r.problems) for r in selected),
        }

    kinds = [k for k in FAULTS if any(r.fault == k for r in rounds)]
    takeovers = [r.measured["takeover"] for r in rounds if "takeover" in r.measured]
    return {
        "byFault": {k: row([r for r in rounds if r.fault == k]) for k in kinds},
        "total": row(rounds),
        "takeoverSeconds": {
            "count": len(takeovers),
            "p50": percentile(takeovers, 0.50),
            "p99": percentile(takeovers, 0.99),
            "values": takeovers,
        },
        "failures": [dataclasses.asdict(r) for r in rounds if not r.ok],
    }


COLUMNS = {
    "injected": "injected",
    "converged": "converged",
    "convergeP50s": "p50 s",
    "convergeP99s": "p99 s",
    "duplicates": "duplicates",
    "rowsLost": "rows lost",
    "partial": "partial",
    "tracebacks": "tracebacks",
    "problems": "other",
}


def table(result: dict[str, Any]) -> str:
    """The summary as a text table, one row per fault kind and the total."""
    rows = [["fault", *COLUMNS.values()]]
    for kind, values in [*result["byFault"].items(), ("total", result["total"])]:
        rows.append([kind, *("-" if values[c] is None else str(values[c]) for c in COLUMNS)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = [line(rows[0]), line(["-" * w for w in widths]), *map(line, rows[1:])]
    takeover = result.get("takeoverSeconds") or {}
    if takeover.get("count"):
        lines.append(
            f"takeover after a kill -9 of the active replica (kill to the standby's resume), {takeover['count']} "
            f"times: p50 {takeover['p50']} s, p99 {takeover['p99']} s"
        )
    return "\n".join(lines)


def main_run(config: Config, workdir: Path | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the world, run, stop everything; the summary with the configuration."""
    started = time.monotonic()
    with World(workdir) as world:
        say(f"logs (one per operator start, the control plane's, Toxiproxy's) in {world.workdir}")
        rounds = run(config, world, say)
    result = summary(rounds)
    result["config"] = dataclasses.asdict(config)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result
