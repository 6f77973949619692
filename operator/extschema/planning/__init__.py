"""From specs to ordered, reversible operations.

- :mod:`.resolved` — the resolved schema of a spec (tables, columns, indexes; relationships
  turned into columns), computed once per spec and read by conflicts, planning and dialects;
- :mod:`.ops` — operations with their reverse and a stable serialised form;
- :mod:`.diff` — what changed between two resolved schemas, one module per object kind;
- :mod:`.policy` — which changes are allowed (today: additive ones; others are ES301/ES302);
- :mod:`.safety` — each operation's class (safe, rewriting, destructive), its data check, and the plan's hash;
- :mod:`.planner` — :func:`plan` and :func:`teardown`, tying them together.

The names below are planning's surface: what conflicts, dialects, the engine and reconcile use.
"""

from __future__ import annotations

from extschema.planning.ops import (
    AddColumn,
    AlterColumn,
    ChangeEnumValues,
    CreateEnum,
    CreateIndex,
    CreatePluginNamespace,
    CreateTable,
    DropColumn,
    DropEnum,
    DropIndex,
    DropPluginNamespace,
    DropTable,
    Op,
    Plan,
    RenameColumn,
    RenameEnumValue,
    RenameTable,
    RunSql,
)
from extschema.planning.planner import plan, teardown
from extschema.planning.resolved import (
    ID_TYPE,
    ColumnDef,
    ForeignKeyDef,
    IndexDef,
    ReferenceTypes,
    Resolved,
    TableDef,
    reference_types_of,
    resolve,
    shape,
)

__all__ = [
    "ID_TYPE",
    "AddColumn",
    "AlterColumn",
    "ChangeEnumValues",
    "ColumnDef",
    "CreateEnum",
    "CreateIndex",
    "CreatePluginNamespace",
    "CreateTable",
    "DropColumn",
    "DropEnum",
    "DropIndex",
    "DropPluginNamespace",
    "DropTable",
    "ForeignKeyDef",
    "IndexDef",
    "Op",
    "Plan",
    "ReferenceTypes",
    "RenameColumn",
    "RenameEnumValue",
    "RenameTable",
    "Resolved",
    "RunSql",
    "TableDef",
    "plan",
    "reference_types_of",
    "resolve",
    "shape",
    "teardown",
]
