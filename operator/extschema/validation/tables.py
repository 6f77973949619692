"""Tables and their indexes and unique constraints: names, column counts, the fields they list."""

from __future__ import annotations

from extschema import limits, model, naming
from extschema.validation import context, fields, identifiers, messages


def check_table(ctx: context.Context, table: model.TableSpec, path: str) -> None:
    name_ok = identifiers.check_identifier(ctx, table.name, f"{path}.name", "table name")
    if name_ok and ctx.plugin_ok and not naming.physical_table_length_ok(ctx.spec.plugin_id, table.name):
        identifiers.too_long_physical(ctx, table.name, f"{path}.name", "table")
    ctx.check_text(table.description, f"{path}.description")
    seen: dict[str, int] = {}
    for index, field in enumerate(table.fields):
        field_path = f"{path}.fields[{index}]"
        identifiers.check_identifier(ctx, field.name, f"{field_path}.name", "field name", column=True)
        if field.name in seen:
            ctx.add(
                "ES104",
                f"{field_path}.name",
                f"field {messages.show(field.name)} is declared twice in table {messages.show(table.name)} "
                f"(first at fields[{seen[field.name]}]): rename or remove one.",
            )
        else:
            seen[field.name] = index
        fields.check_field(ctx, field, field_path)
    owned = ctx.tables.get(table.name) is table
    created = ctx.created.get(table.name, set()) if owned else set()
    count = 1 + len(table.fields) + len(created)
    if count > limits.MAX_COLUMNS:
        ctx.add(
            "ES114",
            f"{path}.fields",
            f"table {messages.show(table.name)} would have {count} columns (id, {len(table.fields)} fields, "
            f"{len(created)} relationship columns); PostgreSQL allows {limits.MAX_COLUMNS}: split it into "
            "several tables.",
        )
    known = set(seen) | created | set(naming.RESERVED_COLUMNS)
    for index, idx in enumerate(table.indexes):
        check_index(ctx, idx.name, idx.fields, known, table.name, f"{path}.indexes[{index}]", "index")
    for index, uc in enumerate(table.unique_constraints):
        check_index(ctx, uc.name, uc.fields, known, table.name, f"{path}.uniqueConstraints[{index}]", "constraint")
    if ctx.plugin_ok:
        _one_name_each(ctx, table, path)


def _one_name_each(ctx: context.Context, table: model.TableSpec, path: str) -> None:
    """Two indexes of one table the database would give the same name: a unique field and a unique index or
    constraint on just that field, the same fields indexed twice, or names that join alike ("a_b" and a, b)."""
    declared: list[tuple[str, str, list[str], bool, str | None]]
    declared = [(f"{path}.fields[{i}].unique", "the unique field", [f.name], True, None)
                for i, f in enumerate(table.fields) if f.unique]  # fmt: skip
    declared += [(f"{path}.indexes[{i}]", "the index", x.fields, x.unique, x.name) for i, x in enumerate(table.indexes)]
    declared += [(f"{path}.uniqueConstraints[{i}]", "the constraint", x.fields, True, x.name)
                 for i, x in enumerate(table.unique_constraints)]  # fmt: skip
    reported: set[str] = set()
    for style in ("schema", "prefix"):
        namer = naming.Namer(style)
        first: dict[str, str] = {}
        for where, what, columns, unique, name in declared:
            physical = namer.index(ctx.spec.plugin_id, table.name, columns, unique, name)
            if physical in first and where not in reported:
                reported.add(where)
                hint = " (a unique field needs no unique index of its own)" if ".unique" in first[physical] else ""
                ctx.add(
                    "ES104",
                    where,
                    f"{what} on ({', '.join(columns)}) would get the database name {physical!r}, as "
                    f"{first[physical]} does: remove one{hint}, or give the index a name.",
                )
            first.setdefault(physical, where)


def check_index(
    ctx: context.Context, name: str | None, fields: list[str], known: set[str], table: str, path: str, what: str
) -> None:
    constraint = what == "constraint"  # index names are always quoted; constraint names only when needed
    if name is not None and identifiers.check_identifier(
        ctx, name, f"{path}.name", f"{what} name", constraint=constraint
    ):
        ctx.claim(name, f"{path}.name", what)
    if not fields:
        ctx.add("ES111", f"{path}.fields", f"The {what} lists no fields: name at least one.")
    if len(fields) > limits.MAX_INDEX_FIELDS:
        ctx.add(
            "ES121",
            f"{path}.fields",
            f"The {what} has {len(fields)} fields; PostgreSQL allows {limits.MAX_INDEX_FIELDS}: use fewer.",
        )
    seen: set[str] = set()
    for index, field in enumerate(fields):
        field_path = f"{path}.fields[{index}]"
        if field in seen:
            ctx.add("ES104", field_path, f"The {what} lists {messages.show(field)} twice: remove one.")
        elif field not in known:
            ctx.add(
                "ES111",
                field_path,
                f"table {messages.show(table)} has no field "
                f"{messages.show(field)}.{messages.close_match(field, known)} "
                "Name a declared field, 'id' or a relationship's column.",
            )
        seen.add(field)
