"""The plugins the chaos suite evolves, the rows it seeds into them, and what it expects to find.

Each plugin starts as one table ``item`` (``label`` String required, ``qty`` Int) and moves one version per change:
additive changes (a field, an index — built concurrently after COMMIT on PostgreSQL —, a table) and renames (the
seeded field, the seeded table: ``renamedFrom``), so the seeded rows must survive every version under new names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any

import psycopg
from psycopg import sql

#: Kinds of schema change and how often the chaos run picks each.
CHANGES = {"add_field": 3, "add_index": 2, "add_table": 1, "rename_field": 2, "rename_table": 1}


@dataclasses.dataclass
class Plugin:
    """One ExtensionSchema's spec as the run has applied it, and the rows seeded into its table."""

    name: str
    minor: int = 0
    table: str = "item"
    label: str = "label"
    table_from: str | None = None
    label_from: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    indexed: list[str] = dataclasses.field(default_factory=list)
    extras: list[str] = dataclasses.field(default_factory=list)
    #: id -> (label, qty) of every row inserted (and committed) into its table.
    rows: dict[int, tuple[str, int]] = dataclasses.field(default_factory=dict)

    @property
    def plugin_id(self) -> str:
        return self.name.replace("-", "_")

    @property
    def version(self) -> str:
        return f"1.{self.minor}.0"

    def document(self) -> dict[str, Any]:
        label: dict[str, Any] = {"name": self.label, "type": "String", "required": True}
        if self.label_from:
            label["renamedFrom"] = self.label_from
        table: dict[str, Any] = {
            "name": self.table,
            "fields": [label, {"name": "qty", "type": "Int"}, *({"name": n, "type": "String"} for n in self.notes)],
        }
        if self.table_from:
            table["renamedFrom"] = self.table_from
        if self.indexed:
            table["indexes"] = [{"fields": [f]} for f in self.indexed]
        extras = [{"name": e, "fields": [{"name": "title", "type": "String"}]} for e in self.extras]
        return {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": {"name": self.name},
            "spec": {"pluginId": self.plugin_id, "version": self.version, "tables": [table, *extras]},
        }

    def evolve(self, rng: random.Random) -> str:
        """Move to the next version by one change picked by *rng*; returns its kind."""
        kinds = [k for k in CHANGES if k != "add_index" or self._unindexed()]
        kind = rng.choices(kinds, weights=[CHANGES[k] for k in kinds])[0]
        self.minor += 1
        n = self.minor
        if kind == "add_field":
            self.notes.append(f"note{n}")
        elif kind == "add_index":
            self.indexed.append(rng.choice(self._unindexed()))
        elif kind == "add_table":
            self.extras.append(f"extra{n}")
        elif kind == "rename_field":
            self.label_from, self.label = self.label, f"label{n}"
            # an index on the renamed field follows it (the spec names fields as they are now)
            self.indexed = [self.label if f == self.label_from else f for f in self.indexed]
        else:
            self.table_from, self.table = self.table, f"item{n}"
        return kind

    def _unindexed(self) -> list[str]:
        return [f for f in (self.label, "qty", *self.notes) if f not in self.indexed]

    def qualified(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(f"ext_{self.plugin_id}"), sql.Identifier(self.table))

    def seed(self, conn: psycopg.Connection[Any], count: int, rng: random.Random) -> None:
        """Insert *count* rows (committed before they are counted as inserted)."""
        values = [
            (f"{self.plugin_id}-{rng.getrandbits(48):012x}", rng.randrange(-(10**6), 10**6)) for _ in range(count)
        ]
        with conn.transaction():
            query = sql.SQL("INSERT INTO {} ({}, qty) VALUES (%s, %s) RETURNING id").format(
                self.qualified(), sql.Identifier(self.label)
            )
            ids: list[int] = []
            with conn.cursor() as cur:
                for value in values:
                    cur.execute(query, value)
                    row = cur.fetchone()
                    assert row is not None
                    ids.append(int(row[0]))
        self.rows.update(zip(ids, values, strict=True))

    def expected(self) -> tuple[int, str]:
        """Row count and checksum of the seeded rows as inserted (the same text the database's checksum hashes)."""
        return len(self.rows), checksum(f"{i}:{label}:{qty}" for i, (label, qty) in sorted(self.rows.items()))

    def found(self, conn: psycopg.Connection[Any]) -> tuple[int, str, int]:
        """Row count, checksum and rows lost (seeded rows not found exactly as inserted) in the database now."""
        query = sql.SQL("SELECT id, {}, qty FROM {} ORDER BY id").format(sql.Identifier(self.label), self.qualified())
        rows = conn.execute(query).fetchall()
        got = {int(r[0]): (str(r[1]), int(r[2])) for r in rows}
        lost = sum(1 for i, row in self.rows.items() if got.get(i) != row)
        return len(rows), checksum(f"{i}:{label}:{qty}" for i, (label, qty) in sorted(got.items())), lost


def checksum(lines: Any) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()[:16]
