"""The faults, one function each, in one table (``FAULTS``): adding a kind is one function and one entry.

A fault gets the world, the run's seeded RNG and ``apply``, which ``kubectl apply``s the round's schema changes:
the fault calls it where it wants the reconciles to be when it strikes (before, during, after). It returns once
the system is whole again (processes restarted, proxy healed) with a note for the report; convergence is timed
from then. A fault that needs other operator processes than the one standalone operator names its topology in
``TOPOLOGY``; the run switches to it before the fault (and back before the next fault that needs another).
What a fault measures goes to ``world.measured``, what it sees go wrong to ``world.problems``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from tests.chaos.world import REPLICAS, RESUMED, SHARDED, Topology, World

Apply = Callable[[], None]
Fault = Callable[[World, random.Random, Apply], str]


def kill_operator(world: World, rng: random.Random, apply: Apply) -> str:
    """kill -9 the operator at a random point after the changes were applied, and start it again: mostly inside a
    migration (once one holds its lock, up to 100 ms later), else anywhere in the next 1.5 s."""
    apply()
    if rng.random() < 0.7:
        world.wait_in_flight(5.0)
        time.sleep(rng.uniform(0.0, 0.1))
    else:
        time.sleep(rng.uniform(0.0, 1.5))
    in_flight = world.migration_in_flight()
    operator = world.operators["a"]
    operator.kill()
    operator.start()
    return "mid-migration" if in_flight else "between migrations"


def restart_postgres(world: World, rng: random.Random, apply: Apply) -> str:
    """``pg_ctl stop -m immediate`` once a migration holds its lock (or after 5 s), then start it again."""
    apply()
    in_flight = world.wait_in_flight(5.0)
    world.pg.stop("immediate")
    time.sleep(rng.uniform(0.5, 3.0))
    world.pg.start()
    return "mid-migration" if in_flight else "between migrations"


def restart_control_plane(world: World, rng: random.Random, apply: Apply) -> str:
    """Stop the control plane (kube-apiserver, etcd, the controller-manager; SIGTERM or SIGKILL) while reconciles
    run, then start it again on the same data."""
    apply()
    if rng.random() < 0.5:
        world.wait_in_flight(5.0)
    else:
        time.sleep(rng.uniform(0.0, 1.0))
    hard = rng.random() < 0.5
    world.cluster.stop_servers(hard=hard)
    time.sleep(rng.uniform(1.0, 5.0))
    world.cluster.start_servers()
    return "SIGKILL" if hard else "SIGTERM"


def long_control_plane_outage(world: World, rng: random.Random, apply: Apply) -> str:
    """kube-apiserver and etcd killed once a migration runs and kept down 75 s: longer than kopf's own retries of a
    request (54 s), so that the operator's status patches must wait it out."""
    apply()
    world.wait_in_flight(5.0)
    world.cluster.stop_servers(hard=True)
    time.sleep(75)
    world.cluster.start_servers()
    return "down 75 s"


def cut_database(world: World, rng: random.Random, apply: Apply) -> str:
    """Toxiproxy disables the proxy: every database connection of the operator is closed, new ones refused."""
    assert world.proxy is not None
    apply()
    if rng.random() < 0.5:
        world.wait_in_flight(5.0)
    else:
        time.sleep(rng.uniform(0.0, 1.0))
    world.proxy.enabled(False)
    seconds = rng.uniform(1.0, 6.0)
    time.sleep(seconds)
    world.proxy.enabled(True)
    return f"down {seconds:.1f}s"


def slow_database(world: World, rng: random.Random, apply: Apply) -> str:
    """Latency on every packet both ways while the changes are reconciled, then none."""
    assert world.proxy is not None
    latency = rng.choice([100, 250, 500, 1000])
    for stream in ("upstream", "downstream"):
        world.proxy.add(f"slow-{stream}", "latency", {"latency": latency, "jitter": latency // 4}, stream)
    apply()
    time.sleep(rng.uniform(3.0, 8.0))
    for stream in ("upstream", "downstream"):
        world.proxy.remove(f"slow-{stream}")
    return f"{latency} ms"


def reset_database(world: World, rng: random.Random, apply: Apply) -> str:
    """TCP RST on the operator's database connections (reset_peer) for a moment."""
    assert world.proxy is not None
    apply()
    if rng.random() < 0.5:
        world.wait_in_flight(5.0)
    timeout = rng.choice([0, 50, 200])  # ms after data before the reset: mid-statement or mid-transaction
    world.proxy.add("reset", "reset_peer", {"timeout": timeout}, "upstream")
    time.sleep(rng.uniform(0.5, 2.0))
    world.proxy.remove("reset")
    return f"reset after {timeout} ms"


def blackhole_database(world: World, rng: random.Random, apply: Apply) -> str:
    """Toxiproxy's ``timeout`` toxic with no timeout: what the operator sends is dropped and nothing comes back, the
    connections stay open (a half-open network path), for a few seconds."""
    assert world.proxy is not None
    apply()
    if rng.random() < 0.5:
        world.wait_in_flight(5.0)
    seconds = rng.uniform(1.0, 5.0)
    world.proxy.add("blackhole", "timeout", {"timeout": 0}, "upstream")
    time.sleep(seconds)
    world.proxy.remove("blackhole")
    return f"black hole {seconds:.1f}s"


def two_operators(world: World, rng: random.Random, apply: Apply) -> str:
    """A second operator instance reconciles the same resources at the same time, then leaves (SIGTERM or -9)."""
    second = world.operator("b")
    second.start()
    time.sleep(rng.uniform(0.0, 3.0))  # it may still be starting when the changes arrive
    apply()
    time.sleep(rng.uniform(2.0, 6.0))
    hard = rng.random() < 0.5
    second.kill() if hard else second.stop()
    return "second killed" if hard else "second stopped"


def strike_point(world: World, rng: random.Random) -> list[str]:
    """Wait for the moment to strike, as ``kill -9 operator`` picks it: 7 times in 10 once a migration holds its
    lock (up to 100 ms later), else anywhere in the next 1.5 s. Returns the operators that held a migration's
    lock when it was seen (before the random delay), or at the moment picked."""
    if rng.random() < 0.7:
        holders = world.lock_holders(timeout=5.0)
        time.sleep(rng.uniform(0.0, 0.1))
        return holders
    time.sleep(rng.uniform(0.0, 1.5))
    return world.lock_holders()


def kill_active_replica(world: World, rng: random.Random, apply: Apply) -> str:
    """Two peered replicas (``run --peering``): kill -9 the active one (its /readyz role) while the changes are
    reconciled, time until the standby resumes (kopf logs it), then start the killed one again: it must stand by
    (a later start has a lower default priority)."""
    active, standby = world.active_and_standby()
    apply()
    holders = strike_point(world, rng)
    if standby.name in holders:
        world.problems.append(f"{standby.name}, the standby, held a migration's lock (holders {holders})")
    resumed = standby.log_count(RESUMED)
    in_flight = world.migration_in_flight()
    killed = time.monotonic()
    active.kill()
    deadline = killed + 120
    while standby.log_count(RESUMED) == resumed and time.monotonic() < deadline:
        time.sleep(0.05)
    takeover = time.monotonic() - killed
    if standby.log_count(RESUMED) == resumed:
        world.problems.append(f"{standby.name} never took over from {active.name} (waited {takeover:.0f}s)")
    else:
        world.measured["takeover"] = round(takeover, 2)
    active.start()
    deadline = time.monotonic() + 120
    while (role := active.role()) != "standby" and time.monotonic() < deadline:
        time.sleep(0.2)
    if role != "standby":
        world.problems.append(f"{active.name} restarted as {role or 'nothing'!r}, not standby")
    if standby.role() != "active":
        world.problems.append(f"{standby.name} is {standby.role()!r} after taking over")
    where = "mid-migration" if in_flight else "between migrations"
    seen = f", lock seen held by {'+'.join(holders)}" if holders else ""
    return f"{active.name} killed {where}{seen}, {standby.name} took over in {takeover:.1f}s"


def kill_shard(world: World, rng: random.Random, apply: Apply) -> str:
    """Two shards (``run --shard I --shards 2``): kill -9 one while the changes are reconciled — the one seen
    holding a migration's lock when one was, else one picked by the RNG — and start it again. The run checks
    that no shard reconciled a resource of the other (their logs) and every resource keeps its shard's label."""
    apply()
    holders = strike_point(world, rng)
    picked = rng.choice(sorted(world.operators))
    victim = world.operators[holders[0] if holders else picked]
    in_flight = world.migration_in_flight()
    victim.kill()
    victim.start()
    where = "mid-migration" if in_flight else "between migrations"
    return f"{victim.name} killed {where}" + (f" (lock seen held by {'+'.join(holders)})" if holders else "")


#: Every fault kind the run injects, by name (the report's rows).
FAULTS: dict[str, Fault] = {
    "kill -9 operator": kill_operator,
    "postgres restart (immediate)": restart_postgres,
    "apiserver+etcd restart": restart_control_plane,
    "apiserver+etcd down 75 s": long_control_plane_outage,
    "db connections cut": cut_database,
    "db connections slow": slow_database,
    "db connections reset": reset_database,
    "db connections black-holed": blackhole_database,
    "two operators": two_operators,
    "kill -9 active replica": kill_active_replica,
    "kill -9 shard": kill_shard,
}

#: The operator processes a fault needs, when not the one standalone operator (world.STANDALONE).
TOPOLOGY: dict[str, Topology] = {"kill -9 active replica": REPLICAS, "kill -9 shard": SHARDED}
