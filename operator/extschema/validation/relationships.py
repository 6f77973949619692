"""Relationships: both ends resolvable, foreign key columns and join tables that can be created."""

from __future__ import annotations

from extschema import limits, model, naming
from extschema.validation import context, identifiers, messages


def check_relationship(ctx: context.Context, rel: model.RelationshipSpec, path: str) -> None:
    spec = ctx.spec
    if rel.source not in ctx.tables:
        ctx.add(
            "ES113",
            f"{path}.source",
            f"source {messages.show(rel.source)} is not a table of this plugin "
            f"(tables: {messages.listing(ctx.tables)})."
            f"{messages.close_match(rel.source, ctx.tables)} To link from another plugin's or a core table, "
            "reverse the relationship and name that table in target.",
        )
    target = model.parse_target(rel.target, spec.plugin_id)
    if target is None:
        ctx.add(
            "ES113",
            f"{path}.target",
            f"target {messages.show(rel.target)} must be 'table' (this plugin), 'plugin.table' or 'core.table'.",
        )
    else:
        check_target(ctx, rel, target, path)
    if rel.name is not None:
        if rel.type != "ManyToMany":
            ctx.add(
                "ES106",
                f"{path}.name",
                f"'name' names the join table of a ManyToMany relationship; a {rel.type} has none: remove it.",
            )
        else:
            identifiers.check_identifier(ctx, rel.name, f"{path}.name", "join table name")


def check_target(ctx: context.Context, rel: model.RelationshipSpec, target: model.TargetRef, path: str) -> None:
    own = target.plugin == ctx.spec.plugin_id
    target_path = f"{path}.target"
    if own:
        if target.table not in ctx.tables:
            ctx.add(
                "ES113",
                target_path,
                f"target table {messages.show(target.table)} is not declared in this plugin (tables: "
                f"{messages.listing(ctx.tables)}).{messages.close_match(target.table, ctx.tables)}",
            )
    elif not target.is_core:
        if identifiers.plugin_id_reason(target.plugin):
            ctx.add("ES113", target_path, f"target plugin {messages.show(target.plugin)} is not a valid pluginId.")
        elif target.plugin not in ctx.spec.depends_on:
            ctx.add(
                "ES118",
                target_path,
                f"target {messages.show(rel.target)} belongs to plugin {messages.show(target.plugin)}, which is not in "
                f"dependsOn: add it (dependsOn: [{target.plugin}]).",
            )
    if not own and not identifiers.FOREIGN_NAME.fullmatch(target.table):
        ctx.add(
            "ES113",
            target_path,
            f"target table {messages.show(target.table)} is not a plain table name (letters, digits, underscores).",
        )
    if rel.type == "OneToMany" and not own:
        ctx.add(
            "ES113",
            target_path,
            "A OneToMany adds its foreign key column to the target, so the target must be a table "
            "of this "
            f"plugin; to point at {messages.show(rel.target)}, declare a ManyToOne from it instead.",
        )


def check_foreign_keys(ctx: context.Context) -> None:
    used: dict[tuple[str, str], int] = {}
    for fk in ctx.fks:
        rel = ctx.spec.relationships[fk.relationship]
        path = ctx.at(f"relationships[{fk.relationship}]")
        owner_end = rel.type in ("ManyToOne", "OneToOne")
        key = "sourceField" if owner_end else "targetField"
        named = rel.source_field if owner_end else rel.target_field
        column_path = f"{path}.{key}" if named else f"{path}.{'target' if owner_end else 'source'}"
        check_reference(ctx, fk, path, "targetField" if owner_end else "sourceField")
        if fk.table not in ctx.tables:
            continue  # reported as an unresolvable end
        # A name derived from a malformed table name is reported with that table.
        if not fk.declared and (named or identifiers.FOREIGN_NAME.fullmatch(fk.references.table)):
            identifiers.check_identifier(
                ctx,
                fk.column,
                column_path,
                "foreign key column",
                column=True,
                hint=f" Set {key} to choose the column's name.",
            )
        if (fk.table, fk.column) in used:
            ctx.add(
                "ES104",
                column_path,
                f"relationships[{used[fk.table, fk.column]}] already uses column {messages.show(fk.column)} "
                "of table "
                f"{messages.show(fk.table)}: give this relationship another column.",
            )
        else:
            used[fk.table, fk.column] = fk.relationship
        declared = ctx.columns[fk.table].get(fk.column)
        if declared is not None and declared.type in context.FK_FORBIDDEN_TYPES:
            ctx.add(
                "ES122",
                column_path,
                f"field {messages.show(fk.column)} of table {messages.show(fk.table)} "
                f"holds the foreign key but has type "
                f"{declared.type}; give it the referenced column's type (BigInt for 'id') or use "
                "another column.",
            )
        if fk.on_delete == "SetNull" and fk.required:
            ctx.add(
                "ES120",
                f"{path}.onDelete",
                f"onDelete SetNull cannot clear the required field {messages.show(fk.column)}: make it optional "
                "(required: false) or use Cascade or Restrict.",
            )


def check_reference(ctx: context.Context, fk: model.ForeignKey, path: str, key: str) -> None:
    """The referenced column (named by *key*) must exist and be unique, for ends this plugin owns."""
    ref, column, ref_path = fk.references, fk.referenced_column, f"{path}.{key}"
    if ref.plugin != ctx.spec.plugin_id:
        if not identifiers.FOREIGN_NAME.fullmatch(column):
            ctx.add("ES113", ref_path, f"referenced column {messages.show(column)} is not a plain column name.")
        return
    fields = ctx.columns.get(ref.table)
    if fields is None or column in naming.RESERVED_COLUMNS:
        return  # a missing table is reported once, at the relationship's end
    field = fields.get(column)
    if field is None:
        ctx.add(
            "ES113",
            ref_path,
            f"table {messages.show(ref.table)} has no field {messages.show(column)} to "
            f"reference.{messages.close_match(column, fields)} "
            f"Set {key} to 'id' or to a unique field.",
        )
    elif not field.unique:
        ctx.add(
            "ES113",
            ref_path,
            f"field {messages.show(column)} of table {messages.show(ref.table)} is referenced by a foreign key, so "
            "it must "
            "be unique: set unique: true on it, or reference 'id'.",
        )


def check_join_tables(ctx: context.Context) -> None:
    for join in ctx.joins:
        rel = ctx.spec.relationships[join.relationship]
        path = ctx.at(f"relationships[{join.relationship}]")
        name_path = f"{path}.name" if rel.name is not None else path
        hint = "" if rel.name is not None else " Set 'name' to choose the join table's name."
        check_reference(ctx, join.left, path, "sourceField")
        check_reference(ctx, join.right, path, "targetField")
        if rel.on_delete == "SetNull":
            ctx.add(
                "ES120",
                f"{path}.onDelete",
                "A ManyToMany join row cannot keep a NULL end: use onDelete Cascade or Restrict.",
            )
        for fk in (join.left, join.right):
            if messages.byte_length(fk.column) > limits.MAX_IDENTIFIER_BYTES:
                ctx.add(
                    "ES102",
                    path,
                    f"join table column {messages.show(fk.column)} is {messages.byte_length(fk.column)} bytes; the "
                    "limit is "
                    f"{limits.MAX_IDENTIFIER_BYTES}: shorten the table names it is built from.",
                )
        if rel.name is None:
            name_ok = identifiers.check_identifier(ctx, join.name, name_path, "join table name", hint=hint)
        else:  # checked with the relationship
            name_ok = (
                identifiers.identifier_reason(join.name) is None
                and messages.byte_length(join.name) <= limits.MAX_IDENTIFIER_BYTES
            )
        if name_ok and ctx.plugin_ok and not naming.physical_table_length_ok(ctx.spec.plugin_id, join.name):
            identifiers.too_long_physical(ctx, join.name, name_path, "join table")
        ctx.claim(join.name, name_path, "join table", type_=True)


def check_reference_cycles(ctx: context.Context) -> None:
    """ES129: foreign keys between this plugin's tables that go round (a -> b -> a). PostgreSQL creates a
    table's foreign keys with the table, so neither could be created first (a table referencing itself is fine)."""
    spec = ctx.spec
    edges: dict[str, list[tuple[str, int]]] = {}
    for index, rel in enumerate(spec.relationships):
        target = model.parse_target(rel.target, spec.plugin_id)
        if target is None or target.plugin != spec.plugin_id or target.table not in ctx.tables:
            continue
        if rel.type in ("ManyToOne", "OneToOne"):
            holder, referenced = rel.source, target.table
        elif rel.type == "OneToMany":
            holder, referenced = target.table, rel.source
        else:
            continue  # a ManyToMany's join table references both; nothing references it
        if holder != referenced:
            edges.setdefault(holder, []).append((referenced, index))
    reported: set[frozenset[str]] = set()
    for cycle in _cycles(edges):
        if frozenset(t for t, _ in cycle) in reported:
            continue
        reported.add(frozenset(t for t, _ in cycle))
        loop = " -> ".join([*(t for t, _ in cycle), cycle[0][0]])
        ctx.add(
            "ES129",
            ctx.at(f"relationships[{cycle[-1][1]}]"),
            f"the foreign keys between tables {loop} go round: none of these tables could be created first. "
            "Link one pair through a ManyToMany relationship (its join table references both), or drop one "
            "of the relationships.",
        )


def _cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[tuple[str, int]]]:
    """Cycles of (table, index of the relationship leaving it), each starting at its first table by name.

    One depth-first walk over the whole graph, without recursion: linear in tables and relationships, so a
    chain of thousands of tables neither recurses past Python's limit nor is walked once per table.
    """
    found: list[list[tuple[str, int]]] = []
    done: set[str] = set()
    for root in sorted(edges):
        if root in done:
            continue
        # The current path: (table, index of the edge taken from it, position of its next edge to try).
        path: list[tuple[str, int]] = []
        on_path: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path[root] = 0
        path.append((root, -1))
        while stack:
            table, next_edge = stack[-1]
            leaving = edges.get(table, [])
            if next_edge >= len(leaving):
                stack.pop()
                path.pop()
                del on_path[table]
                done.add(table)
                continue
            stack[-1] = (table, next_edge + 1)
            referenced, index = leaving[next_edge]
            path[-1] = (table, index)
            if referenced in on_path:
                cycle = path[on_path[referenced] :]
                first = min(range(len(cycle)), key=lambda i: cycle[i][0])
                found.append(cycle[first:] + cycle[:first])
            elif referenced not in done:
                on_path[referenced] = len(path)
                path.append((referenced, -1))
                stack.append((referenced, 0))
    return found
