"""The invariants checked after every fault, each against the database itself (not through the proxy)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from typing import Any

import psycopg

from extschema.controller.sharding import shard_of
from tests import helpers
from tests.chaos.workload import Plugin
from tests.chaos.world import NAMESPACE, SHARDS, World, connect, shard_label

#: kopf's line (text format, object prefix) when a handler of a resource ran: ``[ns/name] Handler 'x' ...``.
HANDLED = re.compile(r"\[(?P<namespace>[^/\]\s]+)/(?P<name>[^\]\s]+)\] Handler '(?P<handler>reconcile|cleanup)' ")


def partial(url: str, plugins: Collection[Plugin], drift: bool = True) -> list[str]:
    """Each plugin at its spec's version in the registry, with the tables and columns of that version, nothing left
    pending or executing, no index left invalid; with *drift*, also every object as the registry says (`extschema
    drift`, which takes a while: the run does it every few rounds)."""
    found: list[str] = []
    with connect(url) as conn:
        columns: dict[tuple[str, str], set[str]] = {}
        for schema, table, column in conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema LIKE 'ext\\_%'"
        ):
            columns.setdefault((schema, table), set()).add(column)
        for plugin in plugins:
            schema = f"ext_{plugin.plugin_id}"
            tables = {t for s, t in columns if s == schema}
            if tables != {plugin.table, *plugin.extras}:
                found.append(f"{plugin.plugin_id}: tables {sorted(tables)}, spec {plugin.version}")
            elif columns[schema, plugin.table] != {"id", plugin.label, "qty", *plugin.notes}:
                found.append(f"{plugin.plugin_id}: columns {sorted(columns[schema, plugin.table])} ({plugin.version})")
        rows = conn.execute("SELECT plugin_id, version, status FROM extschema.extension_schemas").fetchall()
        registry = {r[0]: (r[1], r[2]) for r in rows}
        for plugin in plugins:
            if registry.get(plugin.plugin_id) != (plugin.version, "active"):
                found.append(f"{plugin.plugin_id}: registry {registry.get(plugin.plugin_id)}, spec {plugin.version}")
        stuck = conn.execute(
            "SELECT plugin_id, migration_id, kind, status FROM extschema.extension_migrations "
            "WHERE status IN ('pending', 'executing')"
        ).fetchall()
        found += [f"{r[0]}: migration {r[1]} ({r[2]}) left {r[3]}" for r in stuck]
        # an index a killed concurrent build left INVALID still shows in reflection: ask the catalog
        invalid = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT (i.indisvalid AND i.indisready) "
            "AND n.nspname LIKE 'ext\\_%'"
        ).fetchall()
        found += [f"{r[0]}: index left invalid" for r in invalid]
    if not drift:
        return found
    # `extschema drift` in-process (a subprocess would pay the CLI's imports every round)
    drifted = helpers.run("drift", "-o", "json", "--database", url)
    try:
        items = json.loads(drifted.stdout)["items"]
    except (ValueError, KeyError):
        return [*found, f"extschema drift failed ({drifted.exit_code}): {drifted.stderr[-500:]}"]
    for item in items:
        if not item["inSync"]:
            found.append(f"{item['pluginId']}: drift {json.dumps(item['differences'])[:300]}")
    return found


def duplicates(url: str) -> list[str]:
    """A version's apply (or its finish: the concurrent index builds) executed more than once for a plugin."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT plugin_id, kind, version, count(*) FROM extschema.extension_migrations "
            "WHERE status = 'executed' AND kind IN ('apply', 'finish') GROUP BY 1, 2, 3 HAVING count(*) > 1"
        ).fetchall()
    return [f"{r[0]}: {r[1]} of {r[2]} executed {r[3]} times" for r in rows]


def rows(url: str, plugins: Collection[Plugin]) -> tuple[int, list[str]]:
    """Seeded rows lost, and the plugins whose row count or checksum differs from what was inserted (or whose
    table cannot be read as the spec names it: a round that did not converge may leave older names)."""
    lost, mismatched = 0, []
    with connect(url) as conn:
        for plugin in plugins:
            try:
                count, digest, missing = plugin.found(conn)
            except psycopg.Error as error:  # autocommit: the next plugin's query still runs
                mismatched.append(f"{plugin.plugin_id}: its rows cannot be read: {str(error).splitlines()[0]}")
                continue
            lost += missing
            if (count, digest) != plugin.expected():
                mismatched.append(f"{plugin.plugin_id}: {count} rows {digest}, inserted {plugin.expected()}")
    return lost, mismatched


def foreign(text: str, shard: int, shards: int = SHARDS) -> list[str]:
    """The resources whose reconcile (or cleanup) handler ran in this log of shard *shard* but whose shard (the
    hash of their namespace/name: what shard 0 labels them with) is another."""
    found = []
    for match in HANDLED.finditer(text):
        owner = shard_of(match["namespace"], match["name"], shards)
        if owner != shard:
            found.append(f"{match['name']} (shard {owner}) handled by shard {shard}: {match['handler']}")
    return sorted(set(found))


def wrong_shard(world: World, changed: Iterable[str], scanned: dict[str, int]) -> list[str]:
    """After a round with shards: no shard handled a resource of the other (their logs since *scanned*, which is
    updated), every resource is labeled with its hash's shard, and each changed resource was reconciled by its
    own shard in this round (so the logs are the evidence the check reads, not silence)."""
    found: list[str] = []
    items: list[dict[str, Any]] = world.resources() or []
    for item in items:
        name = item["metadata"]["name"]
        if shard_label(item) != shard_of(NAMESPACE, name, SHARDS):
            found.append(
                f"{name}: labeled shard {shard_label(item)}, its hash says {shard_of(NAMESPACE, name, SHARDS)}"
            )
    reconciled: set[str] = set()
    for operator in world.known.values():
        if operator.shard is None:
            continue
        for log in operator.logs:
            text = log.read_text(errors="replace") if log.is_file() else ""
            new, scanned[str(log)] = text[scanned.get(str(log), 0) :], len(text)
            found += foreign(new, operator.shard)
            reconciled |= {
                m["name"]
                for m in HANDLED.finditer(new)
                if shard_of(m["namespace"], m["name"], SHARDS) == operator.shard
            }
    found += [f"{name}: changed, but no shard's log shows its reconcile" for name in changed if name not in reconciled]
    return found
