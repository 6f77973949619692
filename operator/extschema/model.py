"""The ExtensionSchema document, as pydantic models.

This is the one description of the spec: the CLI parses files into it, the operator parses
custom resources into it, and the CRD's OpenAPI schema is generated from it. The models check
structure only (types, closed sets, unknown fields); the rules that need the whole document
(names, defaults, references) live in :mod:`extschema.validation` so that every problem is
reported at once with a stable code.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from extschema import limits

API_GROUP = "extschema.io"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ExtensionSchema"
TARGET_KIND = "DatabaseTarget"
#: Every kind of the extschema.io group (the CLI reads them all; other kinds in a directory are skipped).
KINDS = (KIND, TARGET_KIND)

FieldType = Literal[
    "String", "Text", "Int", "BigInt", "Float", "Boolean", "Date", "DateTime", "Decimal", "Json", "Uuid", "Enum"
]
RelationshipType = Literal["ManyToOne", "OneToOne", "OneToMany", "ManyToMany"]
OnDelete = Literal["Restrict", "Cascade", "SetNull"]
DeletionPolicy = Literal["Drop", "Retain"]
DriftPolicy = Literal["Report", "Repair"]
#: JSON scalars a default may take; the field type decides which fit.
DefaultValue = str | bool | int | float | None


class _Spec(BaseModel):
    # strict: "yes" is not a boolean and "12" is not a number; forbid: a typo is an error.
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, frozen=True)


class ValidationRules(_Spec):
    """Value rules, enforced by CHECK constraints in the database."""

    min_length: int | None = Field(None, alias="minLength", description="Shortest allowed text (String, Text).")
    max_length: int | None = Field(
        None,
        alias="maxLength",
        description=f"Longest allowed text (String, Text); String defaults to {limits.DEFAULT_STRING_LENGTH}.",
    )
    min: int | float | None = Field(None, description="Smallest allowed number (Int, BigInt, Float, Decimal).")
    max: int | float | None = Field(None, description="Largest allowed number (Int, BigInt, Float, Decimal).")
    pattern: str | None = Field(
        None,
        description="Regular expression the text must contain a match of (portable subset of POSIX/Python).",
    )


class FieldSpec(_Spec):
    """A column of a plugin table."""

    name: str = Field(description="Column name: lower_snake_case, unique in the table; 'id' is reserved.")
    type: FieldType = Field(description="Logical type, mapped to each database's native type.")
    required: bool = Field(False, description="NOT NULL. A new required field on an existing table needs a default.")
    unique: bool = Field(False, description="Adds a UNIQUE constraint on this column.")
    default: DefaultValue = Field(None, description="Constant default; must fit the type, enum and rules.")
    enum: str | None = Field(None, description="For type Enum: the name of an enum declared in spec.enums.")
    precision: int | None = Field(
        None,
        description=f"For Decimal: total digits, 1..{limits.MAX_PRECISION} (default {limits.DEFAULT_PRECISION}).",
    )
    scale: int | None = Field(
        None,
        description=f"For Decimal: digits after the point, 0..precision (default {limits.DEFAULT_SCALE}).",
    )
    validation: ValidationRules | None = Field(None, description="Value rules enforced by the database.")
    description: str | None = Field(None, description="Free text for people; stored as a column comment.")
    renamed_from: str | None = Field(
        None,
        alias="renamedFrom",
        description="The field's previous name: the column is renamed (its data kept), never dropped and re-added.",
    )


class IndexSpec(_Spec):
    """A secondary index on one or more columns."""

    fields: list[str] = Field(description="Column names, in index order.")
    unique: bool = Field(False, description="A unique index.")
    name: str | None = Field(None, description="Optional logical name; derived from the fields when omitted.")


class UniqueConstraintSpec(_Spec):
    """A UNIQUE constraint over several columns."""

    fields: list[str] = Field(description="Column names that are unique together.")
    name: str | None = Field(None, description="Optional logical name; derived from the fields when omitted.")


class TableSpec(_Spec):
    """A table owned by the plugin. Every table gets a surrogate primary key 'id'."""

    name: str = Field(description="Table name: lower_snake_case, unique in the plugin.")
    renamed_from: str | None = Field(
        None,
        alias="renamedFrom",
        description="The table's previous name: the table is renamed (its rows kept), never dropped and re-created.",
    )
    description: str | None = Field(None, description="Free text for people; stored as a table comment.")
    fields: list[FieldSpec] = Field(default_factory=list, description="Columns, besides the 'id' key.")
    indexes: list[IndexSpec] = Field(default_factory=list, description="Secondary indexes.")
    unique_constraints: list[UniqueConstraintSpec] = Field(
        default_factory=list, alias="uniqueConstraints", description="Multi-column UNIQUE constraints."
    )

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


class EnumSpec(_Spec):
    """A closed set of values: a native ENUM type on PostgreSQL, a CHECK constraint on SQLite."""

    name: str = Field(description="Enum name: lower_snake_case, unique in the plugin.")
    values: list[str] = Field(
        description="Allowed values, in order. Adding is safe; removing a value rows still use needs approval."
    )
    renamed_values: dict[str, str] = Field(
        default_factory=dict,
        alias="renamedValues",
        description="Values renamed since the applied version: previous value -> new value (rows are updated).",
    )
    localization: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Display labels: locale -> value -> label. Stored, not enforced."
    )


class RelationshipSpec(_Spec):
    """A foreign key between a plugin table and a table of this plugin, another plugin or the core."""

    source: str = Field(description="A table of this plugin.")
    source_field: str | None = Field(
        None,
        alias="sourceField",
        description="ManyToOne/OneToOne: the FK column on source (default <target>_id). "
        "OneToMany/ManyToMany: the referenced column of source (default id).",
    )
    target: str = Field(description="'<table>' (this plugin), '<pluginId>.<table>' (a dependency) or 'core.<table>'.")
    target_field: str | None = Field(
        None,
        alias="targetField",
        description="ManyToOne/OneToOne/ManyToMany: the referenced column of target (default id). "
        "OneToMany: the FK column created on target, a table of this plugin (default <source>_id).",
    )
    type: RelationshipType = Field("ManyToOne", description="Cardinality; see docs/relationships.md.")
    on_delete: OnDelete = Field("Restrict", alias="onDelete", description="What deleting the referenced row does.")
    name: str | None = Field(None, description="ManyToMany: the join table's name (default <source>_<target>).")


class RawMigration(_Spec):
    """A hand-written SQL step, run after the declarative changes of the version that adds it."""

    id: str = Field(description="Stable identifier of the step, unique in the plugin (e.g. 0001_backfill).")
    sql: str = Field(description="SQL run once, in the migration's transaction; only the plugin's own objects.")
    rollback_sql: str = Field(
        alias="rollbackSql", description="SQL that undoes `sql`, run when the migration is rolled back."
    )


class LintSettings(_Spec):
    """How ``extschema plan`` lints the plugin's SQL (squawk, PostgreSQL)."""

    ignore: list[Annotated[str, Field(max_length=128, pattern=r"^[a-z][a-z0-9-]*$")]] = Field(
        default_factory=list,
        max_length=64,
        description="squawk rules not to report for this plugin (e.g. ban-drop-column); see docs/evolution.md#lint.",
    )


class DatabaseTargetRef(_Spec):
    """Which DatabaseTarget an ExtensionSchema goes to (same namespace)."""

    name: str = Field(description="Name of a DatabaseTarget in this namespace.")


class LabelSelectorRequirement(_Spec):
    """One ``matchExpressions`` entry of a Kubernetes label selector."""

    key: str = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(
        default_factory=list, description="Values for In and NotIn (at least one); empty for Exists and DoesNotExist."
    )

    @pydantic.model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError("In and NotIn need values; Exists and DoesNotExist take none")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


class LabelSelector(_Spec):
    """A Kubernetes label selector over DatabaseTargets: every term must hold; ``{}`` selects all."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, alias="matchLabels", description="Labels a target must have, with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions", description="Further requirements, all of which must hold."
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with *labels* is selected (Kubernetes semantics)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            term.matches(labels) for term in self.match_expressions
        )

    def text(self) -> str:
        """As kubectl writes a selector: ``tier=prod,region in (eu,us),!legacy``."""
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for term in self.match_expressions:
            if term.operator == "Exists":
                parts.append(term.key)
            elif term.operator == "DoesNotExist":
                parts.append(f"!{term.key}")
            else:
                parts.append(f"{term.key} {term.operator.lower()} ({','.join(term.values)})")
        return ",".join(parts)


class RolloutSpec(_Spec):
    """How a schema reaches the targets of spec.targetSelector: canaries first, then waves."""

    max_parallel: int = Field(
        1,
        alias="maxParallel",
        ge=1,
        le=1000,
        description="At most this many targets migrate at once (a wave); default 1, one database at a time.",
    )
    canary: LabelSelector | None = Field(
        None,
        description="Selected targets that also match this selector migrate first; the others wait until every "
        "canary is Ready.",
    )
    pause_on_failure: bool = Field(
        True,
        alias="pauseOnFailure",
        description="A failed or stalled target pauses the rollout (no new wave starts) until the spec changes or "
        "the annotation extschema.io/resume is set to a new value; false: the other targets go on.",
    )


class ExtensionSchemaSpec(_Spec):
    """What a plugin asks of the database."""

    plugin_id: str = Field(
        alias="pluginId",
        description=f"Stable plugin identifier: ^[a-z][a-z0-9_]*$, at most {limits.MAX_PLUGIN_ID_LENGTH} characters.",
    )
    version: str = Field(description="Semantic version of this schema, e.g. 1.2.0.")
    description: str | None = Field(None, description="Free text for people.")
    depends_on: list[str] = Field(
        default_factory=list, alias="dependsOn", description="Plugins whose tables this one references."
    )
    enums: list[EnumSpec] = Field(default_factory=list, description="Enums owned by the plugin.")
    tables: list[TableSpec] = Field(default_factory=list, description="Tables owned by the plugin.")
    relationships: list[RelationshipSpec] = Field(default_factory=list, description="Foreign keys.")
    deletion_policy: DeletionPolicy = Field(
        "Drop",
        alias="deletionPolicy",
        description="On delete: Drop the plugin's objects, or Retain them (unregistered). Not applied to a "
        "resource deleted while spec.suspend is true: that leaves everything as it is.",
    )
    migrations: list[RawMigration] = Field(
        default_factory=list,
        description="Hand-written SQL steps, in order; run only where the target allows raw SQL (allowRawSql).",
    )
    lint: LintSettings | None = Field(
        None, description="How plans of this plugin are linted (PostgreSQL): rules to ignore. Not part of the schema."
    )
    approved_plan_hash: str | None = Field(
        None,
        alias="approvedPlanHash",
        description="Approves exactly the plan with this hash (from status.pendingPlan.hash or `extschema plan`): "
        "its rewriting or destructive steps may run. An approval of any other plan is ignored.",
    )
    drift_policy: DriftPolicy = Field(
        "Report",
        alias="driftPolicy",
        description="When the database's objects differ from the applied spec: Report it (condition InSync=False), "
        "or Repair it by re-creating what is missing.",
    )
    # Operator settings (not part of the schema, its checksum or its plans): which database, whether to pause.
    target_ref: DatabaseTargetRef | None = Field(
        None,
        alias="targetRef",
        description="The DatabaseTarget (same namespace) to apply to; omitted: the operator's default database.",
    )
    suspend: bool | None = Field(
        None,
        description="Pause: the operator leaves the database alone until this is false again; deleting a "
        "suspended resource leaves its tables and registration as they are (deletionPolicy does not run).",
    )
    target_selector: LabelSelector | None = Field(
        None,
        alias="targetSelector",
        description="Apply to every DatabaseTarget in this namespace whose labels match (instead of targetRef); "
        "targets added later get the plugin, targets no longer selected lose it by deletionPolicy.",
    )
    rollout: RolloutSpec | None = Field(
        None, description="With targetSelector: canary targets first, then waves of at most maxParallel targets."
    )
    approved_plan_hashes: list[str] = Field(
        default_factory=list,
        alias="approvedPlanHashes",
        description="More approvals, like approvedPlanHash: with targetSelector, targets whose bases differ have "
        "plans with different hashes (status.targets[].pendingPlan.hash); each listed hash approves its plans.",
    )

    @pydantic.field_validator("target_selector")
    @classmethod
    def _one_way_to_target(cls, selector: LabelSelector | None, info: pydantic.ValidationInfo) -> LabelSelector | None:
        # A field validator (not a model one), so the problem's path is spec.targetSelector.
        if selector is not None and info.data.get("target_ref") is not None:
            raise ValueError("set at most one of targetRef and targetSelector: remove one of them")
        return selector

    def approved_hashes(self) -> frozenset[str]:
        """Every plan hash this spec approves: approvedPlanHash and approvedPlanHashes."""
        given = [self.approved_plan_hash, *self.approved_plan_hashes]
        return frozenset(h for h in given if h)

    def table(self, name: str) -> TableSpec | None:
        return next((t for t in self.tables if t.name == name), None)

    def tables_by_name(self) -> dict[str, TableSpec]:
        """Every table by name, the first of a duplicated name as :meth:`table` finds it: for
        looking up many (one lookup per relationship or table would be quadratic in the tables)."""
        found: dict[str, TableSpec] = {}
        for table in self.tables:
            found.setdefault(table.name, table)
        return found

    def enum(self, name: str) -> EnumSpec | None:
        return next((e for e in self.enums if e.name == name), None)

    def canonical_json(self) -> str:
        """Key-sorted JSON of the schema with defaults filled in: equal schemas, equal text.

        Operational settings (:data:`OPERATIONAL_FIELDS`) are left out: approving a plan or choosing
        a drift policy changes no schema. Fields added after the first release are left out while at
        their default, so a spec that does not use them keeps the checksum recorded by older versions.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude=set(OPERATIONAL_FIELDS))
        return json.dumps(_without_later_defaults(data), sort_keys=True, separators=(",", ":"))

    def checksum(self) -> str:
        """SHA-256 of :meth:`canonical_json`; recorded with every migration."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


#: Spec fields that steer how a schema is applied, not what it is (not part of its checksum).
OPERATIONAL_FIELDS = (
    "approved_plan_hash",
    "approved_plan_hashes",
    "drift_policy",
    "lint",
    "target_ref",
    "suspend",
    "target_selector",
    "rollout",
)

#: Keys added after the first release, by the mapping they appear in, with their default.
_LATER_KEYS: dict[str, dict[str, Any]] = {
    "spec": {"migrations": []},
    "table": {"renamedFrom": None},
    "field": {"renamedFrom": None},
    "enum": {"renamedValues": {}},
}


def _without_later_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    def strip(data: dict[str, Any], where: str) -> dict[str, Any]:
        return {k: v for k, v in data.items() if not (k in _LATER_KEYS[where] and v == _LATER_KEYS[where][k])}

    tables = [{**strip(t, "table"), "fields": [strip(f, "field") for f in t["fields"]]} for t in spec["tables"]]
    return {**strip(spec, "spec"), "tables": tables, "enums": [strip(e, "enum") for e in spec["enums"]]}


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata extschema reads; the rest is kept but ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(description="Resource name; the owner of the plugin's claim.")
    namespace: str | None = None


class ExtensionSchema(_Spec):
    """A whole ``kind: ExtensionSchema`` document."""

    api_version: Literal["extschema.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ExtensionSchema"]
    metadata: ObjectMeta
    spec: ExtensionSchemaSpec
    # Present on objects read back from a cluster; ignored by the engine.
    status: dict[str, Any] | None = None

    @property
    def owner(self) -> str:
        """Who claims the plugin: ``namespace/name`` in a cluster, ``name`` from files."""
        meta = self.metadata
        return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


class SecretKeyRef(_Spec):
    """A key of a Secret in the DatabaseTarget's namespace."""

    name: str = Field(description="Secret name.")
    key: str | None = Field(None, description="Key in the Secret's data (default: url).")


class DatabaseTargetSpec(_Spec):
    """Where a database is and how to reach it. Exactly one of url and urlSecretRef."""

    url: str | None = Field(
        None,
        description="A database URL without credentials, e.g. sqlite:////data/app.db. URLs with a "
        "password belong in a Secret (urlSecretRef).",
    )
    url_secret_ref: SecretKeyRef | None = Field(
        None,
        alias="urlSecretRef",
        description="A key of a Secret in this namespace holding the URL (postgresql://user:pw@host/db).",
    )
    lock_timeout: str | None = Field(
        None,
        alias="lockTimeout",
        description=f"How long a migration waits for a table lock (default {limits.DEFAULT_LOCK_TIMEOUT_MS // 1000}s).",
    )
    statement_timeout: str | None = Field(
        None,
        alias="statementTimeout",
        description="Longest a migration statement may run "
        f"(default {limits.DEFAULT_STATEMENT_TIMEOUT_MS // 60_000}m).",
    )
    allow_raw_sql: bool | None = Field(
        None,
        alias="allowRawSql",
        description="Let ExtensionSchemas run their raw SQL steps (spec.migrations) on this database "
        "(default false: such plans are refused with ES313). See docs/raw-sql.md.",
    )
    plugin_roles: bool | None = Field(
        None,
        alias="pluginRoles",
        description="PostgreSQL only: give each plugin its own database role with CRUD on its own "
        "tables only, its credentials in the Secret <ExtensionSchema name>-db-credentials; dropped when "
        "the ExtensionSchema is deleted (docs/plugin-roles.md).",
    )


class DatabaseTarget(_Spec):
    """A whole ``kind: DatabaseTarget`` document."""

    api_version: Literal["extschema.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["DatabaseTarget"]
    metadata: ObjectMeta
    spec: DatabaseTargetSpec
    status: dict[str, Any] | None = None

    @property
    def owner(self) -> str:
        meta = self.metadata
        return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def parse_target_document(data: Any) -> DatabaseTarget:
    """Validate a whole DatabaseTarget document (raises :class:`pydantic.ValidationError`)."""
    return DatabaseTarget.model_validate(data)


def parse_spec(data: Any) -> ExtensionSchemaSpec:
    """Validate a spec mapping (raises :class:`pydantic.ValidationError`)."""
    return ExtensionSchemaSpec.model_validate(data)


def parse_document(data: Any) -> ExtensionSchema:
    """Validate a whole document (raises :class:`pydantic.ValidationError`)."""
    return ExtensionSchema.model_validate(data)


ValidationError = pydantic.ValidationError


# --- Relationships, resolved ------------------------------------------------------------------
# What each relationship type creates is decided here once, for validation, conflict detection
# and planning alike (docs/relationships.md says the same in prose).

CORE_PLUGIN = "core"


class TargetRef(BaseModel):
    """Which table a relationship end names: own (plugin = this plugin), another plugin's or core."""

    model_config = ConfigDict(frozen=True)

    plugin: str
    table: str

    @property
    def is_core(self) -> bool:
        return self.plugin == CORE_PLUGIN

    def __str__(self) -> str:
        return f"{self.plugin}.{self.table}"


def parse_target(target: str, own_plugin: str) -> TargetRef | None:
    """``table`` / ``plugin.table`` / ``core.table``; None when malformed."""
    parts = target.split(".")
    if len(parts) == 1 and parts[0]:
        return TargetRef(plugin=own_plugin, table=parts[0])
    if len(parts) == 2 and all(parts):
        return TargetRef(plugin=parts[0], table=parts[1])
    return None


class ForeignKey(BaseModel):
    """One FK column on a table of this plugin, as a relationship creates it."""

    model_config = ConfigDict(frozen=True)

    relationship: int  # index in spec.relationships, for error paths
    table: str  # the plugin table holding the column
    column: str
    references: TargetRef
    referenced_column: str
    on_delete: OnDelete
    unique: bool = False
    declared: bool = False  # the column is declared in the table's fields (not created for it)
    required: bool = False


class JoinTable(BaseModel):
    """The table a ManyToMany relationship creates: two FKs, unique together."""

    model_config = ConfigDict(frozen=True)

    relationship: int
    name: str
    left: ForeignKey
    right: ForeignKey


def resolve_relationships(spec: ExtensionSchemaSpec) -> tuple[list[ForeignKey], list[JoinTable]]:
    """Turn relationships into FK columns and join tables. Malformed targets are skipped
    (validation reports them)."""
    fks: list[ForeignKey] = []
    joins: list[JoinTable] = []
    tables = spec.tables_by_name()
    for index, rel in enumerate(spec.relationships):
        target = parse_target(rel.target, spec.plugin_id)
        if target is None:
            continue
        own_source = TargetRef(plugin=spec.plugin_id, table=rel.source)
        if rel.type in ("ManyToOne", "OneToOne"):
            holder, column, ref, ref_column = (
                rel.source,
                rel.source_field or f"{target.table}_id",
                target,
                (rel.target_field or "id"),
            )
        elif rel.type == "OneToMany":
            holder, column, ref, ref_column = (
                target.table,
                rel.target_field or f"{rel.source}_id",
                own_source,
                (rel.source_field or "id"),
            )
        else:
            name = rel.name or f"{rel.source}_{target.table}"
            left_col = f"{rel.source}_id"
            right_col = f"{target.table}_id" if target.table != rel.source else f"related_{rel.source}_id"
            # Both sides of a join table: required FK columns of the same relationship.
            side = functools.partial(ForeignKey, relationship=index, table=name, on_delete=rel.on_delete, required=True)
            left = side(column=left_col, references=own_source, referenced_column=rel.source_field or "id")
            right = side(column=right_col, references=target, referenced_column=rel.target_field or "id")
            joins.append(JoinTable(relationship=index, name=name, left=left, right=right))
            continue
        holder_table = tables.get(holder)
        declared = holder_table.field(column) if holder_table else None
        fks.append(
            ForeignKey(
                relationship=index,
                table=holder,
                column=column,
                references=ref,
                referenced_column=ref_column,
                on_delete=rel.on_delete,
                unique=rel.type == "OneToOne" or bool(declared and declared.unique),
                declared=declared is not None,
                required=bool(declared and declared.required),
            )
        )
    return fks, joins
