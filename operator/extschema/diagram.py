"""Pictures of plugins (``extschema diagram``): their tables and fields, the foreign keys between them and
to the host application's core tables, and the ``dependsOn`` graph — as Mermaid or Graphviz text.

Pure: the tables come from :func:`extschema.planning.resolve` (so a relationship is drawn as the column
and join table it creates), the core tables' columns from whoever read them. Rendering SVG (Graphviz's
``dot``) is the shell's.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator, Mapping, Sequence

from extschema import model, planning
from extschema.model import CORE_PLUGIN, ExtensionSchemaSpec

#: The core tables' columns, by table: name and logical type (None: a type extschema does not map).
CoreColumns = Mapping[str, Mapping[str, model.FieldType | None]]


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    #: PK, FK or UK (Mermaid's attribute keys), in that order.
    keys: tuple[str, ...] = ()
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    plugin: str
    name: str
    columns: tuple[Column, ...]
    #: A join table a ManyToMany relationship creates (not in spec.tables).
    join: bool = False

    @property
    def key(self) -> str:
        """``helpdesk__ticket``: a name Mermaid and Graphviz take as it is (ids and names are identifiers)."""
        return f"{self.plugin}__{self.name}"


@dataclasses.dataclass(frozen=True)
class Edge:
    """A foreign key: *source*'s *column* references *target* (``many``: several rows may share one target)."""

    source: Table
    column: str
    target: str
    nullable: bool
    many: bool
    on_delete: str


@dataclasses.dataclass(frozen=True)
class Plugin:
    plugin_id: str
    version: str
    depends_on: tuple[str, ...]
    tables: tuple[Table, ...]


@dataclasses.dataclass(frozen=True)
class Picture:
    """What a diagram shows, whatever its format."""

    plugins: tuple[Plugin, ...]
    #: The core tables the plugins reference (columns where known).
    core: tuple[Table, ...]
    edges: tuple[Edge, ...]


class _AnyCore(dict[tuple[str, str], Mapping[str, model.FieldType | None]]):
    """Reference types where a table is not known (a core table not described, a plugin not drawn): its
    columns are taken to be ids, so that a picture of part of the plugins can still be drawn."""

    def get(self, key: tuple[str, str], default: object = None) -> Mapping[str, model.FieldType | None]:
        found = super().get(key)
        return found if found is not None else _Ids()


class _Ids(dict[str, model.FieldType | None]):
    def get(self, key: str, default: object = None) -> model.FieldType | None:
        return super().get(key, planning.ID_TYPE)


def picture(specs: Sequence[ExtensionSchemaSpec], core: CoreColumns | None = None) -> Picture:
    """The tables, foreign keys and dependencies of *specs*, with the core tables they reference."""
    core = core or {}
    refs = _AnyCore()
    for name, types in core.items():
        refs[(CORE_PLUGIN, name)] = dict(types)
    for spec in specs:
        refs.update(planning.reference_types_of(spec))
    plugins: list[Plugin] = []
    edges: list[Edge] = []
    core_used: set[str] = set()
    for spec in sorted(specs, key=lambda s: s.plugin_id):
        resolved = planning.resolve(spec, refs)
        tables: list[Table] = []
        for table in resolved.tables:
            columns: list[Column] = [Column("id", planning.ID_TYPE, ("PK",))]  # every plugin table's key
            for column in table.columns:
                keys = tuple(
                    k
                    for k, on in (
                        ("FK", column.foreign_key is not None),
                        ("UK", column.unique),
                    )
                    if on
                )
                note = column.enum.name if column.enum is not None else None
                if not column.nullable:
                    note = f"required{', ' + note if note else ''}"
                columns.append(Column(column.name, column.type, keys, note))
            drawn = Table(spec.plugin_id, table.name, tuple(columns), table.name not in resolved.origins.declared)
            tables.append(drawn)
            for column in table.columns:
                fk = column.foreign_key
                if fk is None:
                    continue
                target = fk.references
                if target.is_core:
                    core_used.add(target.table)
                edges.append(
                    Edge(
                        drawn,
                        column.name,
                        f"{target.plugin}__{target.table}",
                        column.nullable,
                        not column.unique,
                        fk.on_delete,
                    )
                )
        plugins.append(Plugin(spec.plugin_id, spec.version, tuple(spec.depends_on), tuple(tables)))
    core_tables = tuple(
        Table(
            CORE_PLUGIN,
            name,
            tuple(
                Column(c, kind or "unmapped", ("PK",) if c == "id" else ()) for c, kind in core.get(name, {}).items()
            ),
        )
        for name in sorted(core_used)
    )
    return Picture(tuple(plugins), core_tables, tuple(edges))


# --- Mermaid ------------------------------------------------------------------------------------


def mermaid(pic: Picture) -> str:
    """An ``erDiagram``: every table with its fields, every foreign key as a relationship."""
    lines = ["erDiagram"]
    for table in [t for p in pic.plugins for t in p.tables] + list(pic.core):
        if not table.columns:
            continue
        lines.append(f"    {table.key} {{")
        for column in table.columns:
            keys = f" {','.join(column.keys)}" if column.keys else ""
            note = f' "{column.note}"' if column.note else ""
            lines.append(f"        {column.type} {column.name}{keys}{note}")
        lines.append("    }")
    for edge in pic.edges:
        lines.append(f'    {edge.source.key} {_cardinality(edge)} {edge.target} : "{edge.column}"')
    return "\n".join(lines) + "\n"


def _cardinality(edge: Edge) -> str:
    """Crow's feet from the referencing table to the referenced one: many (or one) rows to zero-or-one (or one)."""
    left = "}o" if edge.many else "|o"
    right = "o|" if edge.nullable else "||"
    return f"{left}--{right}"


def mermaid_dependencies(pic: Picture) -> str:
    """A ``flowchart``: one node per plugin, an arrow to each plugin it depends on."""
    lines = ["flowchart LR"]
    for plugin in pic.plugins:
        lines.append(f'    {plugin.plugin_id}["{plugin.plugin_id} {plugin.version}"]')
    for plugin in pic.plugins:
        lines.extend(f"    {plugin.plugin_id} -->|dependsOn| {other}" for other in plugin.depends_on)
    return "\n".join(lines) + "\n"


# --- Graphviz -----------------------------------------------------------------------------------


def dot(pic: Picture) -> str:
    """A Graphviz ``digraph``: a cluster per plugin (and one for the core tables) of table nodes, the
    foreign keys between them, and ``dependsOn`` as dashed arrows between the clusters."""
    lines = [
        "digraph extschema {",
        '  graph [rankdir=LR, compound=true, fontname="Helvetica", fontsize=12];',
        '  node [shape=plaintext, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    anchors: dict[str, str] = {}
    for plugin in pic.plugins:
        lines.append(f'  subgraph "cluster_{plugin.plugin_id}" {{')
        lines.append(f'    label="{plugin.plugin_id} {_text(plugin.version)}";')
        if plugin.tables:
            anchors[plugin.plugin_id] = plugin.tables[0].key
            lines.extend(f"    {line}" for line in _table_nodes(plugin.tables))
        else:
            anchors[plugin.plugin_id] = f"{plugin.plugin_id}__"
            lines.append(f'    "{plugin.plugin_id}__" [shape=point, label=""];')
        lines.append("  }")
    if pic.core:
        lines.append('  subgraph "cluster_core" {')
        lines.append('    label="core (the host application)"; style=dashed;')
        lines.extend(f"    {line}" for line in _table_nodes(pic.core))
        lines.append("  }")
    for edge in pic.edges:
        head = "none" if edge.nullable else "tee"
        tail = "crow" if edge.many else "none"
        lines.append(
            f'  "{edge.source.key}" -> "{edge.target}" [label="{edge.column}", dir=both, '
            f"arrowtail={tail}, arrowhead={head}];"
        )
    for plugin in pic.plugins:
        for other in plugin.depends_on:
            if other not in anchors:
                continue
            lines.append(
                f'  "{anchors[plugin.plugin_id]}" -> "{anchors[other]}" [ltail="cluster_{plugin.plugin_id}", '
                f'lhead="cluster_{other}", style=dashed, color=gray40, label="dependsOn"];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _table_nodes(tables: Sequence[Table]) -> Iterator[str]:
    for table in tables:
        title = f"{_text(table.name)}{' (join)' if table.join else ''}"
        rows = "".join(
            f'<TR><TD ALIGN="LEFT">{_text(c.name)}</TD><TD ALIGN="LEFT">{_text(c.type)}</TD>'
            f'<TD ALIGN="LEFT">{_text(" ".join(c.keys))}</TD></TR>'
            for c in table.columns
        )
        yield (
            f'"{table.key}" [label=<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0">'
            f'<TR><TD COLSPAN="3" BGCOLOR="lightgray"><B>{title}</B></TD></TR>{rows}</TABLE>>];'
        )


def dot_dependencies(pic: Picture) -> str:
    """A Graphviz ``digraph`` of plugins and their ``dependsOn``."""
    lines = ["digraph dependencies {", '  graph [rankdir=LR]; node [shape=box, fontname="Helvetica"];']
    for plugin in pic.plugins:
        lines.append(f'  "{plugin.plugin_id}" [label="{plugin.plugin_id} {_text(plugin.version)}"];')
    for plugin in pic.plugins:
        lines.extend(f'  "{plugin.plugin_id}" -> "{other}" [label="dependsOn"];' for other in plugin.depends_on)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _text(value: str) -> str:
    """Text inside a Graphviz label (HTML-like or quoted): escaped."""
    return html.escape(value, quote=True)
