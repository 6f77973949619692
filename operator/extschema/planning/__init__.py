"""From specs to ordered, reversible operations.

- :mod:`.resolved` — the resolved schema of a spec (tables, columns, indexes; relationships
  turned into columns), computed once per spec and read by conflicts, planning and dialects;
- :mod:`.ops` — operations with their reverse and a stable serialised form;
- :mod:`.state` — a schema as a value operations advance (the diff threads it; tests replay plans on it);
- :mod:`.diff` — what changed between two resolved schemas, one module per object kind, renames first;
- :mod:`.conversions` — which type changes extschema carries out, and which rows a change may violate;
- :mod:`.policy` — which changes are refused (ES301 reordered enum values, ES302, ES312);
- :mod:`.safety` — each operation's class (safe, rewriting, destructive), its data checks, and the plan's hash;
- :mod:`.versions` — semver order, for ES310 (a changed schema under the same version);
- :mod:`.rawsql` — the hand-written steps (``spec.migrations``) a plan runs last;
- :mod:`.planner` — :func:`plan`, :func:`teardown` and :func:`rollback`, tying them together.

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
    EnforceIntRange,
    Op,
    Plan,
    RenameColumn,
    RenameEnumValue,
    RenameTable,
    RunSql,
)
from extschema.planning.planner import Rollback, plan, rollback, teardown
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
    "EnforceIntRange",
    "ForeignKeyDef",
    "IndexDef",
    "Op",
    "Plan",
    "ReferenceTypes",
    "RenameColumn",
    "RenameEnumValue",
    "RenameTable",
    "Resolved",
    "Rollback",
    "RunSql",
    "TableDef",
    "plan",
    "reference_types_of",
    "resolve",
    "rollback",
    "shape",
    "teardown",
]
