"""Conflicts between schemas, and between a schema and the database it targets.

Pure: the caller passes the claims already registered (in registration order), the candidate
claims (in the order they were made) and the core catalog. The earlier claim always keeps what
it claimed; every report names both sides, so the later owner knows whom to talk to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

from extschema import model, naming, planning
from extschema.model import ExtensionSchemaSpec, FieldType
from extschema.naming import Namer
from extschema.problems import Problem

# Types an FK column may have for a referenced column's type (same family, or widening to it).
_FK_COMPATIBLE: dict[FieldType, set[FieldType]] = {
    "Int": {"Int", "BigInt"},
    "BigInt": {"Int", "BigInt"},
    "String": {"String", "Text"},
    "Text": {"String", "Text"},
}


@dataclasses.dataclass(frozen=True)
class Claim:
    """A spec and who applied it (``namespace/name`` of a resource, or a document name)."""

    owner: str
    spec: ExtensionSchemaSpec


def _physical_names(claim: Claim, namer: Namer) -> Iterator[tuple[str, str, str]]:
    """(name, kind, what it is) for everything the claim creates in a namespace shared with others:
    tables and indexes (schema-wide on PostgreSQL, database-wide on SQLite), and on PostgreSQL
    the key index, identity sequence and row type of each table and the enum types."""
    spec = claim.spec
    for table in planning.shape(spec).tables:
        physical = namer.table(spec.plugin_id, table.name)
        scope = f"{physical.schema}." if physical.schema else ""
        yield str(physical), "table", f"table {table.name}"
        if namer.style == "schema":
            yield f"{scope}{naming.fit(f'{table.name}_pkey')}", "index", f"primary key of {table.name}"
            yield f"{scope}{naming.fit(f'{table.name}_id_seq')}", "sequence", f"id sequence of {table.name}"
        for index in (*table.column_indexes(), *table.indexes, *table.unique_together):
            name = namer.index(spec.plugin_id, table.name, index.columns, index.unique, index.name)
            yield f"{scope}{name}", "index", f"index of {table.name} ({', '.join(index.columns)})"
    if namer.style == "schema":
        for enum in spec.enums:
            yield str(namer.enum_type(spec.plugin_id, enum.name)), "enum", f"enum {enum.name}"


def detect(
    candidates: Sequence[Claim],
    registered: Sequence[Claim],
    core: planning.ReferenceTypes,
    namer: Namer,
) -> list[Problem]:
    """Every conflict of *candidates* with *registered*, the core catalog and each other."""
    problems: list[Problem] = []
    # Later claims of a plugin by its own owner replace the registered one (an update).
    effective: dict[str, Claim] = {c.spec.plugin_id: c for c in registered}
    accepted: list[Claim] = []
    for claim in candidates:
        holder = effective.get(claim.spec.plugin_id)
        if holder is not None and holder.owner != claim.owner:
            problems.append(
                Problem(
                    "ES201",
                    "spec.pluginId",
                    f"pluginId {claim.spec.plugin_id!r} of {claim.owner!r} is already claimed by {holder.owner!r}; "
                    "the first claim keeps it — choose another pluginId, or delete the other resource",
                    subject=claim.owner,
                )
            )
            continue
        effective[claim.spec.plugin_id] = claim
        accepted.append(claim)
    problems.extend(_name_collisions(accepted, effective, core, namer))
    for claim in accepted:
        problems.extend(p.about(claim.owner) for p in _references(claim, effective, core))
    problems.extend(_broken_dependents(accepted, registered, effective, core))
    problems.extend(_cycles(accepted, effective))
    return problems


def _broken_dependents(
    accepted: Sequence[Claim], registered: Sequence[Claim], effective: dict[str, Claim], core: planning.ReferenceTypes
) -> Iterable[Problem]:
    """ES204/ES207 for a change that takes away what a registered dependent references (a table, a column, its
    type): the dependent's foreign key would point at nothing (SQLite) or stop the migration (PostgreSQL)."""
    changed = {c.spec.plugin_id: c for c in accepted}
    before = {c.spec.plugin_id: c for c in registered}
    for dependent in effective.values():
        if dependent.spec.plugin_id in changed or not changed.keys() & set(dependent.spec.depends_on):
            continue
        known = {(p.code, p.path, p.message) for p in _references(dependent, before, core)}
        followed = _renamed_targets(dependent, changed)
        for problem in _references(dependent, effective, core):
            if (problem.code, problem.path, problem.message) in known or problem.code not in ("ES204", "ES207"):
                continue
            if problem.path.split(".")[1] in followed:
                continue  # a rename keeps the table and column: the foreign key follows, the dependent updates later
            for claim in (changed[d] for d in dependent.spec.depends_on if d in changed):
                yield Problem(
                    problem.code,
                    "spec.tables",
                    f"plugin {dependent.spec.plugin_id!r} ({dependent.owner!r}) depends on this one, and its "
                    f"{problem.path} would break: {problem.message}; change {dependent.spec.plugin_id!r} first, or "
                    "keep what it references",
                    subject=claim.owner,
                )


def _renamed_targets(dependent: Claim, changed: dict[str, Claim]) -> set[str]:
    """``relationships[i]`` of *dependent* whose target table or column a changed plugin renames (renamedFrom)."""
    found = set()
    for fk in planning.shape(dependent.spec).references():
        target = fk.references
        claim = changed.get(target.plugin)
        if claim is None:
            continue
        for table in claim.spec.tables:
            same_table = table.name == target.table or table.renamed_from == target.table
            if same_table and (
                table.renamed_from == target.table or any(f.renamed_from == fk.referenced_column for f in table.fields)
            ):
                found.add(f"relationships[{fk.relationship}]")
    return found


def _name_collisions(
    accepted: Sequence[Claim], effective: dict[str, Claim], core: planning.ReferenceTypes, namer: Namer
) -> Iterable[Problem]:
    owners: dict[str, tuple[Claim, str, str]] = {}
    for plugin, table in core:
        if plugin == model.CORE_PLUGIN:
            owners[str(namer.core_table(table))] = (
                Claim("the core application", _NO_SPEC),
                "table",
                f"core table {table}",
            )
    # Each plugin has a schema of its own on PostgreSQL, so there only a claim's own names (and
    # nothing of other plugins) can collide; SQLite's one namespace needs every claim's names.
    others = [] if namer.style == "schema" else [c for c in effective.values() if c not in accepted]
    ordered = [*others, *accepted]
    for claim in ordered:
        reported: set[str] = set()
        for name, kind, what in _physical_names(claim, namer):
            if name in owners:
                other, other_kind, other_what = owners[name]
                if claim in accepted and name not in reported:
                    reported.add(name)
                    side = "its own" if other is claim else f"{other.owner!r}'s"
                    yield Problem(
                        "ES203" if "enum" in (kind, other_kind) else "ES202",
                        "spec.enums" if kind == "enum" else "spec.tables",
                        f"{what} of {claim.owner!r} needs the database name {name!r}, which {side} "
                        f"{other_what} already uses; rename one of them",
                        subject=claim.owner,
                    )
                continue
            owners[name] = (claim, kind, what)


_NO_SPEC = ExtensionSchemaSpec.model_validate({"pluginId": "core", "version": "0.0.0"})


def _references(claim: Claim, effective: dict[str, Claim], core: planning.ReferenceTypes) -> Iterable[Problem]:
    spec = claim.spec
    for index, dependency in enumerate(spec.depends_on):
        if dependency not in effective:
            yield Problem(
                "ES208",
                f"spec.dependsOn[{index}]",
                f"{claim.owner!r} depends on plugin {dependency!r}, which is not registered and not being "
                "applied; apply it first (or together), or remove it from dependsOn",
            )
    for fk in planning.shape(spec).references():
        path = f"spec.relationships[{fk.relationship}]"
        target = fk.references
        if target.plugin == spec.plugin_id:
            columns = _own_columns(spec, target.table)
        elif target.is_core:
            found = core.get((target.plugin, target.table))
            columns = dict(found) if found is not None else None
            if columns is None:
                yield Problem(
                    "ES204",
                    f"{path}.target",
                    f"core table {target.table!r} does not exist in the "
                    "target database; check the name, or create the core table first",
                )
                continue
        else:
            if target.plugin not in spec.depends_on:
                yield Problem(
                    "ES205",
                    f"{path}.target",
                    f"{target} belongs to plugin {target.plugin!r}, which is "
                    f"not in dependsOn; add {target.plugin!r} to spec.dependsOn",
                )
            other = effective.get(target.plugin)
            if other is None:
                continue  # reported once, for dependsOn or just above
            columns = _own_columns(other.spec, target.table)
            if columns is None:
                yield Problem(
                    "ES204",
                    f"{path}.target",
                    f"plugin {target.plugin!r} ({other.owner!r}) has no table "
                    f"{target.table!r}; tables it has: {', '.join(t.name for t in other.spec.tables)}",
                )
                continue
        if columns is None:
            continue  # own table missing: validation reports it
        if fk.referenced_column not in columns:
            yield Problem(
                "ES204",
                path,
                f"{target} has no column {fk.referenced_column!r}; reference an existing column (default: id)",
            )
            continue
        referenced = columns[fk.referenced_column]
        if referenced is None:
            yield Problem(
                "ES207",
                path,
                f"{target}.{fk.referenced_column} has a type extschema cannot reference; "
                "reference its id or another integer, text or uuid column",
            )
            continue
        if fk.declared:
            holder = spec.table(fk.table)
            declared = holder.field(fk.column) if holder else None
            if declared is not None and declared.type not in _FK_COMPATIBLE.get(referenced, {referenced}):
                yield Problem(
                    "ES207",
                    path,
                    f"{fk.table}.{fk.column} is {declared.type} but references {target}.{fk.referenced_column} of "
                    f"type {referenced}; declare {fk.column} as {referenced}, or let extschema create it",
                )


def _own_columns(spec: ExtensionSchemaSpec, table: str) -> dict[str, FieldType | None] | None:
    found = spec.table(table)
    if found is None:
        return None
    columns: dict[str, FieldType | None] = {"id": planning.ID_TYPE}
    columns.update({f.name: f.type for f in found.fields})
    return columns


def _cycles(accepted: Sequence[Claim], effective: dict[str, Claim]) -> Iterable[Problem]:
    graph = {plugin: list(claim.spec.depends_on) for plugin, claim in effective.items()}
    for claim in accepted:
        cycle = _find_cycle(claim.spec.plugin_id, graph)
        if cycle:
            yield Problem(
                "ES206",
                "spec.dependsOn",
                f"dependency cycle {' → '.join(cycle)}: plugins cannot depend on each other in a circle; move "
                "the shared tables into one plugin",
                subject=claim.owner,
            )


def _find_cycle(start: str, graph: dict[str, list[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def dependency_order(specs: Sequence[ExtensionSchemaSpec]) -> list[ExtensionSchemaSpec]:
    """Dependencies before dependents; ties by pluginId, so input order never matters."""
    by_id = {s.plugin_id: s for s in specs}
    ordered: list[ExtensionSchemaSpec] = []
    done: set[str] = set()

    def visit(spec: ExtensionSchemaSpec, trail: frozenset[str]) -> None:
        if spec.plugin_id in done or spec.plugin_id in trail:
            return
        for dependency in sorted(spec.depends_on):
            if dependency in by_id:
                visit(by_id[dependency], trail | {spec.plugin_id})
        done.add(spec.plugin_id)
        ordered.append(spec)

    for spec in sorted(specs, key=lambda s: s.plugin_id):
        visit(spec, frozenset())
    return ordered
