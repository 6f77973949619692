"""The chaos suite (tests/chaos, `make chaos`): its bounded run, and its checks shown to catch what they look for.

The bounded run is the one `make test` runs: 8 plugins, every fault kind once and six kill -9s of the operator —
among them the peered replicas' and the shards' kinds (docs/chaos.md); the full run (50 plugins, 100 kills) is
`make chaos`.
"""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
import pytest
import yaml

from extschema.controller.sharding import shard_of
from tests.chaos import checks
from tests.chaos.faults import FAULTS, TOPOLOGY
from tests.chaos.run import CI, main_run, table
from tests.chaos.workload import Plugin
from tests.chaos.world import NAMESPACE, SHARDS
from tests.helpers import run

pytestmark = pytest.mark.postgres


def applied(url: str, plugin: Plugin, tmp_path: Path) -> None:
    path = tmp_path / f"{plugin.name}-{plugin.version}.yaml"
    path.write_text(yaml.safe_dump(plugin.document()))
    outcome = run("apply", str(path), "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def test_every_change_the_run_makes_keeps_the_seeded_rows(pg_url: str, tmp_path: Path) -> None:
    """Additive changes and renames of the seeded field and table, version after version: the rows stay."""
    rng, plugin = random.Random(3), Plugin("walk")
    applied(pg_url, plugin, tmp_path)
    kinds = set()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        plugin.seed(conn, 20, rng)
        for _ in range(14):
            kinds.add(plugin.evolve(rng))
            applied(pg_url, plugin, tmp_path)
            plugin.seed(conn, 3, rng)
            count, digest, lost = plugin.found(conn)
            assert (count, digest) == plugin.expected() and lost == 0
    assert {"rename_field", "rename_table", "add_field"} <= kinds
    assert checks.partial(pg_url, [plugin]) == [] and checks.duplicates(pg_url) == []


def test_the_checks_catch_a_lost_row_a_partial_schema_and_a_duplicate(pg_url: str, tmp_path: Path) -> None:
    rng, plugin = random.Random(1), Plugin("caught")
    applied(pg_url, plugin, tmp_path)
    plugin.evolve(rng)
    applied(pg_url, plugin, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        plugin.seed(conn, 5, rng)
        assert checks.rows(pg_url, [plugin]) == (0, [])
        conn.execute(f"DELETE FROM {plugin.qualified().as_string(conn)} WHERE id = %s", (min(plugin.rows),))
        lost, mismatched = checks.rows(pg_url, [plugin])
        assert lost == 1 and mismatched and plugin.plugin_id in mismatched[0]

        assert checks.partial(pg_url, [plugin]) == []
        conn.execute(f"ALTER TABLE {plugin.qualified().as_string(conn)} DROP COLUMN qty")
        shape, drifted = checks.partial(pg_url, [plugin])
        assert shape.startswith("caught: columns") and "qty" not in shape
        assert "drift" in drifted and "qty" in drifted
        assert checks.partial(pg_url, [plugin], drift=False) == [shape]
        behind = Plugin("caught", minor=plugin.minor + 1)
        assert any("registry" in line for line in checks.partial(pg_url, [behind]))

        conn.execute(f"CREATE INDEX broken ON {plugin.qualified().as_string(conn)} (id)")
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ext_caught.broken'::regclass")
        assert "ext_caught.broken: index left invalid" in checks.partial(pg_url, [plugin], drift=False)

        assert checks.duplicates(pg_url) == []
        conn.execute(
            "INSERT INTO extschema.extension_migrations SELECT md5(random()::text), plugin_id, md5(random()::text), "
            "kind, owner, version, schema_definition, description, migration_sql, rollback_sql, statements, "
            "rollback_statements, foreign_keys_off, checksum_schema, checksum_sql, status, execution_start, "
            "execution_end, duration_ms, error_message, created_at, updated_at FROM extschema.extension_migrations "
            "WHERE kind = 'apply' AND version = %s",
            (plugin.version,),
        )
        (duplicate,) = checks.duplicates(pg_url)
        assert plugin.plugin_id in duplicate and "2 times" in duplicate


def test_the_shard_check_catches_a_resource_handled_by_the_other_shard() -> None:
    """kopf's own text lines (``[namespace/name] Handler 'reconcile' succeeded.``) name who reconciled what."""
    owner = {name: shard_of(NAMESPACE, name, SHARDS) for name in (f"chaos-{i:03d}" for i in range(8))}
    assert set(owner.values()) == {0, 1}
    mine, theirs = (next(n for n, s in owner.items() if s == shard) for shard in (0, 1))
    log = (
        f"[2026-12-07 10:00:00,000] kopf.objects         [INFO    ] [{NAMESPACE}/{mine}] Handler 'reconcile' "
        "succeeded.\n"
        f"[2026-12-07 10:00:00,100] kopf.objects         [INFO    ] [{NAMESPACE}/{theirs}] Handler 'shard-label' "
        "succeeded.\n"  # shard 0 labels the other shard's resources: not a reconcile
    )
    assert checks.foreign(log, 0) == []
    assert checks.foreign(log, 1) == [f"{mine} (shard 0) handled by shard 1: reconcile"]
    wrong = log + f"[2026-12-07 10:00:01,000] kopf.objects [ERROR   ] [{NAMESPACE}/{theirs}] Handler 'cleanup' failed"
    assert checks.foreign(wrong, 0) == [f"{theirs} (shard 1) handled by shard 0: cleanup"]


def test_every_fault_kind_is_documented_and_every_topology_runs_a_fault() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "chaos.md").read_text()
    assert [kind for kind in FAULTS if f"| `{kind}` |" not in doc] == []
    assert set(TOPOLOGY) <= set(FAULTS) and set(CI.faults) >= set(TOPOLOGY)


@pytest.mark.k8s
@pytest.mark.slow
def test_the_bounded_chaos_run_converges_and_loses_nothing(tmp_path: Path) -> None:
    """Every fault kind while plugins reconcile: all Ready again, no partial schema, no duplicate, no row lost,
    no traceback (its own control plane: the run stops and starts the API server and etcd)."""
    result = main_run(CI, tmp_path)
    print(table(result))
    assert result["failures"] == []
    assert set(result["byFault"]) == set(CI.faults) and set(FAULTS) - set(CI.faults) == {"apiserver+etcd down 75 s"}
    total = result["total"]
    assert total["injected"] == sum(CI.faults.values()) == total["converged"]
    assert (total["duplicates"], total["rowsLost"], total["partial"], total["tracebacks"]) == (0, 0, 0, 0)
    assert total["problems"] == 0 and result["takeoverSeconds"]["count"] == CI.faults["kill -9 active replica"]
