"""What one validation pass knows about its spec, and where its problems go.

Every check module receives a :class:`Context`: the spec with its tables, fields and enums
indexed by name (first declaration wins; duplicates are reported by the checks), the
relationships resolved into foreign keys and join tables, and the PostgreSQL namespaces the
names claimed so far live in.
"""

from __future__ import annotations

from extschema import model
from extschema.problems import Problem
from extschema.validation import identifiers, messages

TEXT_TYPES = frozenset({"String", "Text"})
NUMERIC_TYPES = frozenset({"Int", "BigInt", "Float", "Decimal"})
FK_FORBIDDEN_TYPES = frozenset({"Enum", "Json", "Boolean"})


class Context:
    """One pass over one spec; collects problems instead of raising."""

    def __init__(self, spec: model.ExtensionSchemaSpec, path: str) -> None:
        self.spec = spec
        self.root = path
        self.problems: list[Problem] = []
        self.plugin_ok = identifiers.plugin_id_reason(spec.plugin_id) is None
        self.fks, self.joins = model.resolve_relationships(spec)
        self.tables: dict[str, model.TableSpec] = {}
        for table in spec.tables:
            self.tables.setdefault(table.name, table)
        self.columns: dict[str, dict[str, model.FieldSpec]] = {}
        for name, table in self.tables.items():
            fields: dict[str, model.FieldSpec] = {}
            for field in table.fields:
                fields.setdefault(field.name, field)
            self.columns[name] = fields
        self.enums: dict[str, model.EnumSpec] = {}
        for enum in spec.enums:
            self.enums.setdefault(enum.name, enum)
        self.created: dict[str, set[str]] = {}  # FK columns relationships add to own tables
        for fk in self.fks:
            if not fk.declared:
                self.created.setdefault(fk.table, set()).add(fk.column)
        # PostgreSQL keeps tables and indexes in one namespace per schema, tables and types in another.
        self.relations: dict[str, str] = {}
        self.types: dict[str, str] = {}

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(Problem(code, path, message))

    def at(self, suffix: str) -> str:
        return messages.join_path(self.root, suffix)

    def claim(self, name: str, path: str, what: str, *, relation: bool = True, type_: bool = False) -> None:
        """ES104 when *name* is taken in a PostgreSQL namespace it needs."""
        first = (self.relations.get(name) if relation else None) or (self.types.get(name) if type_ else None)
        if first:
            self.add(
                "ES104",
                path,
                f"{what} {messages.show(name)} is already used by {first}; PostgreSQL keeps tables, join tables and "
                "indexes in one namespace and tables and enum types in another. Rename one of them.",
            )
            return
        if relation:
            self.relations[name] = f"the {what} at {path}"
        if type_:
            self.types[name] = f"the {what} at {path}"

    def claim_tables_and_enums(self) -> None:
        for index, table in enumerate(self.spec.tables):
            self.claim(table.name, self.at(f"tables[{index}].name"), "table", type_=True)
        for index, enum in enumerate(self.spec.enums):
            self.claim(enum.name, self.at(f"enums[{index}].name"), "enum", relation=False, type_=True)

    def check_text(self, text: str | None, path: str) -> None:
        if text is not None and "\0" in text:
            self.add("ES010", path, "The text contains a NUL character, which PostgreSQL cannot store: remove it.")
