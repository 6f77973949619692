"""Sharding: ``extschema run --shard I --shards N`` operators, each owning the ExtensionSchemas labeled
``extschema.io/shard=I``; shard 0 labels the unlabeled ones, the mutating webhook labels new ones.

The e2e tests run three shard operators against the real API server and PostgreSQL and take the evidence of who
handled what from the operators' own logs (JSON, one record per line, with the resource's name).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from extschema.controller import certificates, sharding
from extschema.controller.settings import Settings
from tests import test_operator_e2e as e2e
from tests import test_webhook
from tests.helpers import subprocess_env
from tests.test_operator_e2e import Kube, Operator, migrations, simple
from tests.test_webhook import free_port, wait_for_tls

pytest_plugins = ["tests.controlplane.fixtures"]
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator

SHARDS = 3


# --- the shard of a resource ------------------------------------------------------------------------------


def test_the_shard_of_a_name_is_the_same_in_every_process() -> None:
    """Not Python's hash() (salted per process): another interpreter with another seed agrees."""
    names = [(f"ns-{i % 7}", f"schema-{i}") for i in range(200)]
    here = [sharding.shard_of(ns, name, SHARDS) for ns, name in names]
    code = (
        "import json,sys; from extschema.controller.sharding import shard_of; "
        "print(json.dumps([shard_of(ns, n, 3) for ns, n in json.load(sys.stdin)]))"
    )
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(names),
            capture_output=True,
            text=True,
            env={**subprocess_env(), "PYTHONHASHSEED": seed},
            check=True,
            timeout=60,
        )
        assert json.loads(done.stdout) == here


def test_names_spread_over_every_shard() -> None:
    for shards in (2, 3, 5):
        counts = [0] * shards
        for i in range(3000):
            counts[sharding.shard_of("plugins", f"schema-{i}", shards)] += 1
        assert all(abs(count - 3000 / shards) < 0.15 * 3000 / shards for count in counts), counts
    assert sharding.shard_of("a", "b", 1) == 0
    # The namespace counts: the same name in two namespaces need not share a shard.
    assert len({sharding.shard_of(f"ns{i}", "same", 3) for i in range(30)}) == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("2", 2), ("3", None), ("", None), ("01", None), ("-1", None), ("x", None), (None, None), (1, None)],
)
def test_a_label_names_a_shard_only_in_canonical_form_and_range(value: object, expected: int | None) -> None:
    assert sharding.assigned(value, 3) == expected


def test_the_label_a_resource_needs() -> None:
    sharded = Settings(shard=1, shards=3)
    assert sharding.label_for(sharded, "ns", "a", {}) == str(sharding.shard_of("ns", "a", 3))
    assert sharding.label_for(sharded, "ns", "a", {sharding.LABEL: "7"}) == str(sharding.shard_of("ns", "a", 3))
    assert sharding.label_for(sharded, "ns", "a", {sharding.LABEL: "2"}) is None  # kept, even if not its hash
    assert sharding.label_for(Settings(), "ns", "a", {}) is None  # unsharded: no label


def test_shard_0_watches_its_own_and_the_unassigned() -> None:
    assert sharding.watch_selector(0, 3) == "extschema.io/shard notin (1,2)"
    assert sharding.watch_selector(2, 3) == "extschema.io/shard=2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3", "--shards", "3"], "3 is not a shard of 3: give 0 to 2"),
        (["--shard", "-1", "--shards", "3"], "-1 is not a shard of 3"),
        (["--shard", "0", "--shards", "0"], "0 shards: give 1 or more"),
        (["--shard", "1"], "pass --shard I and --shards N together"),
        (["--shards", "2"], "pass --shard I and --shards N together"),
    ],
)
def test_run_refuses_a_shard_outside_the_shards(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "extschema", "run", "-A", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr


# --- end to end: three shards against the real API server and PostgreSQL ---------------------------------


def records(operator: Operator) -> list[dict[str, Any]]:
    """The operator's JSON log records (kopf's lines about a resource carry its kind and name)."""
    found = []
    for line in operator.log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                found.append(record)
    return found


def handled(operator: Operator, handler: str, kind: str = "ExtensionSchema") -> set[str]:
    """Names of the resources whose *handler* succeeded in this operator, as its log says."""
    return {
        str(r["name"])
        for r in records(operator)
        if r.get("kind") == kind and r.get("message") == f"Handler {handler!r} succeeded."
    }


def mentioned(operator: Operator, kind: str = "ExtensionSchema") -> set[str]:
    """Every resource of *kind* any line of this operator's log (--verbose: kopf's debug lines too) is about,
    except its admission webhook's answers (kube-apiserver may ask any shard)."""
    return {
        str(r["name"])
        for r in records(operator)
        if r.get("kind") == kind and r.get("name") and not str(r.get("message")).startswith("Webhook ")
    }


def all_ready(kube: Kube, names: list[str], timeout: float = 240) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    bodies: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        items = json.loads(kube("get", "exts", "-o", "json").stdout)["items"]
        bodies = {b["metadata"]["name"]: b for b in items}
        if all(n in bodies and kube.ready(bodies[n]).get("status") == "True" for n in names):
            return bodies
        time.sleep(1)
    late = [n for n in names if kube.ready(bodies.get(n, {})).get("status") != "True"]
    shown = {n: (kube.ready(bodies.get(n, {})).get("reason"), bodies.get(n, {}).get("metadata")) for n in late}
    raise AssertionError(f"never Ready: {shown}")


def schema(name: str, target: bool = False, labels: dict[str, str] | None = None) -> dict[str, Any]:
    doc = simple(name, name.replace("-", "_"), **({"targetRef": {"name": "pg"}} if target else {}))
    if labels:
        doc["metadata"]["labels"] = labels
    return doc


@pytest.mark.k8s
@pytest.mark.slow
@pytest.mark.postgres
def test_three_shards_each_reconcile_their_own_resources_only(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str, tmp_path: Path
) -> None:
    # A DatabaseTarget (status: shard 0 only) that some resources of every shard name.
    target = {"apiVersion": "extschema.io/v1alpha1", "kind": "DatabaseTarget", "metadata": {"name": "pg"}}
    kube.apply({**target, "spec": {"url": pg_url}})
    # Stored before any operator runs, unlabeled (as by an operator that was not sharded); one with a label that
    # names no shard of 3 (as after scaling down from 8 shards).
    early = [f"early-{i}" for i in range(11)]
    stamped = [f"hooked-{i}" for i in range(12)]
    owner = {n: sharding.shard_of(kube.ns, n, SHARDS) for n in [*early, *stamped]}
    # Resources naming the DatabaseTarget, in every shard (the first of each shard, stored early or hooked).
    targeted = {next(n for n in owner if owner[n] == shard) for shard in range(SHARDS)}
    kube.apply(*(schema(n, target=n in targeted) for n in early))
    kube.apply(schema("stale-label", labels={sharding.LABEL: "7"}))
    early.append("stale-label")
    files = certificates.generate(tmp_path / "certs", ["127.0.0.1"])
    port = free_port()
    webhook = f"--webhook-port={port} --webhook-cert={files.certfile} --webhook-key={files.keyfile}"
    webhook += f" --webhook-ca={files.cafile}"
    # --verbose: kopf's debug lines name every resource an operator so much as looks at.
    common = f"--shards={SHARDS} --log-format=json --verbose"
    shards = [
        run_operator(pg_url, f"--shard={i}", *common.split(), *(webhook.split() if i == 1 else []))
        for i in range(SHARDS)
    ]
    wait_for_tls(port, shards[1])
    # Created through the mutating webhook (served by shard 1 here: any shard stamps the same label).
    with test_webhook.webhook_configuration(kube, port, files.cafile, mutating=True):
        dry = kube("create", "--dry-run=server", "-o", "json", "-f", "-", input=yaml.safe_dump(schema("dry")))
        shown = json.loads(dry.stdout)
        # The API server's answer to a dry run, which no operator can have touched: the webhook labeled it.
        assert shown["metadata"]["labels"] == {sharding.LABEL: str(sharding.shard_of(kube.ns, "dry", SHARDS))}
        kube("create", "-f", "-", input=yaml.safe_dump_all(schema(n, target=n in targeted) for n in stamped))
    # Created later without the webhook: shard 0 labels them.
    late = [f"late-{i}" for i in range(6)]
    kube.apply(*(schema(n) for n in late))
    names = early + stamped + late
    bodies = all_ready(kube, names)
    assert len(names) == 30
    owner.update({n: sharding.shard_of(kube.ns, n, SHARDS) for n in names})
    assert len(set(owner.values())) == SHARDS  # every shard has work
    for name in names:
        assert bodies[name]["metadata"]["labels"][sharding.LABEL] == str(owner[name]), name
    time.sleep(2)  # the last log lines are written
    for shard, operator in enumerate(shards):
        mine = {n for n in names if owner[n] == shard}
        # Each resource was reconciled by its own shard and by no other ...
        assert handled(operator, "reconcile") == mine, f"shard {shard}"
        # ... and no other shard logged anything about it: they never saw it. Shard 0 saw the unassigned ones
        # (those stored unlabeled, before it labeled them) and nothing else of the other shards'.
        unassigned_seen = mentioned(operator) - mine
        if shard == 0:
            assert unassigned_seen <= set(early + late), unassigned_seen
        else:
            assert not unassigned_seen, f"shard {shard} saw {unassigned_seen}"
        assert not any(r.get("level") == "error" for r in records(operator)), operator.tail()
    # Every plugin was migrated exactly once (the registry's history).
    applies = sorted(plugin for plugin, kind, _status in migrations(pg_url) if kind == "apply")
    assert applies == sorted(n.replace("-", "_") for n in names)
    # The DatabaseTarget's status is shard 0's; every shard resolved resources naming it (its index).
    deadline = time.monotonic() + 60
    while kube.ready(kube.get("pg", "dbt")).get("reason") != "Connected" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert kube.ready(kube.get("pg", "dbt")).get("reason") == "Connected", kube.get("pg", "dbt").get("status")
    assert handled(shards[0], "connect", "DatabaseTarget") == {"pg"}
    assert not handled(shards[1], "connect", "DatabaseTarget") and not handled(shards[2], "connect", "DatabaseTarget")
    assert all(bodies[n]["spec"].get("targetRef") == {"name": "pg"} for n in targeted)
    # A deletion is cleaned up by the owner alone.
    victim = next(n for n in stamped if owner[n] == 2)
    kube("delete", "exts", victim, "--timeout=60s")
    assert victim in handled(shards[2], "cleanup")
    assert all(victim not in mentioned(op) for op in shards[:2])
    assert [k for p, k, _s in migrations(pg_url) if p == victim.replace("-", "_")] == ["apply", "delete"]


@pytest.mark.k8s
@pytest.mark.slow
@pytest.mark.postgres
def test_a_plugin_claimed_in_two_shards_goes_to_one_the_registry_decides(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    """Shards do not share their claims index: across shards the database registry (checked under the advisory
    lock) refuses the second claim on a plugin."""
    for i in range(2):
        run_operator(pg_url, "--shard", str(i), "--shards", "2", "--log-format", "json")
    first = simple("first", "shared")
    first["metadata"]["labels"] = {sharding.LABEL: "0"}
    kube.apply(first)
    kube.wait("first")
    second = simple("second", "shared")
    second["metadata"]["labels"] = {sharding.LABEL: "1"}
    kube.apply(second)
    stalled = kube.wait_reason("second", "Conflict")
    assert f"{kube.ns}/first" in kube.ready(stalled)["message"]
    assert [(p, k) for p, k, _s in migrations(pg_url)] == [("shared", "apply")]
    assert kube.ready(kube.get("first"))["status"] == "True"
