"""The status the operator writes, as pydantic models: the one description of it.

The CRD's status schemas are generated from these models (:mod:`extschema.crd`), as the spec schema
is from :mod:`extschema.model`, and the operator builds what it writes through them. A structural CRD
silently prunes undeclared status fields, so writing and declaring from one model keeps them in step.
Bounds and Kubernetes list semantics are declared here too (``x-kubernetes-*`` keywords).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from extschema import limits
from extschema.wire import LintView, OpView, PlanView

#: A Kubernetes int64.
Int64 = Annotated[int, WithJsonSchema({"type": "integer", "format": "int64"})]
#: A timestamp as Kubernetes writes it (RFC 3339, seconds, UTC: ``2026-01-02T03:04:05Z``).
Time = Annotated[
    datetime.datetime,
    PlainSerializer(lambda value: value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _atomic(**extra: Any) -> dict[str, Any]:
    return {"x-kubernetes-list-type": "atomic", **extra}


class _Status(BaseModel):
    # forbid: a field the operator writes must be declared here, or the API server would prune it.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """As written to the resource: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Condition(_Status):
    """A condition: Ready always; Reconciling and Stalled only while true (kstatus); InSync once drift was checked."""

    type: str = Field(max_length=64, description="Ready, Reconciling, Stalled or InSync.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        None, max_length=64, description="CamelCase reason from the catalog in docs/conditions.md."
    )
    message: str | None = Field(None, max_length=32768, description="What is wrong and what to do.")
    observed_generation: Int64 | None = Field(
        None, alias="observedGeneration", description="The metadata.generation this condition is about."
    )
    last_transition_time: Time | None = Field(
        None, alias="lastTransitionTime", description="When the status last changed."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=8,
        description="Current state, as conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class LastMigration(_Status):
    """The latest migration the operator ran for this resource."""

    id: str | None = Field(
        None, max_length=limits.REGISTRY_MIGRATION_ID_LENGTH, description="Migration id in the registry."
    )
    version: str | None = Field(None, max_length=limits.MAX_VERSION_LENGTH, description="spec.version it applied.")
    changes: (
        list[Annotated[str, Field(max_length=limits.MAX_STATUS_CHANGE_LENGTH, description="One change.")]] | None
    ) = Field(
        None,
        max_length=limits.MAX_STATUS_CHANGES,
        description="What it changed, one line per operation.",
        json_schema_extra=_atomic(),
    )
    duration_ms: Int64 | None = Field(None, alias="durationMs", description="How long it ran.")
    time: Time | None = Field(None, description="When it finished.")


class PendingPlan(_Status):
    """The plan waiting for an approval of its hash (present only while Ready's reason is ApprovalRequired).

    Built from the plan's wire view (:class:`~extschema.wire.PlanView`): its operations and squawk's
    findings are the same views ``plan -o json`` prints.
    """

    hash: str = Field(
        max_length=limits.MAX_PLAN_HASH_LENGTH,
        description="Approve this plan by setting spec.approvedPlanHash to this value.",
    )
    summary: str = Field(
        max_length=limits.MAX_CONDITION_MESSAGE,
        description="One line: what the plan does that needs approval, with the rows it would lose.",
    )
    destructive: bool = Field(description="True when the plan drops data or narrows a rule existing rows may break.")
    plan_class: Literal["rewriting", "destructive"] = Field(
        alias="class", description="The plan's most severe class: rewriting or destructive."
    )
    ops: list[OpView] | None = Field(
        None,
        max_length=limits.MAX_STATUS_PLAN_OPS,
        description="The plan's operations with their class, reason and data counts (as `extschema plan -o json`).",
        json_schema_extra=_atomic(),
    )
    lint: list[LintView] | None = Field(
        None,
        max_length=limits.MAX_STATUS_LINT_FINDINGS,
        description="squawk's findings about the plan's SQL (PostgreSQL only).",
        json_schema_extra=_atomic(),
    )

    @classmethod
    def of(cls, plan: PlanView) -> PendingPlan:
        """*plan* as the status shows it, cut to the bounds the CRD declares."""
        return cls(
            hash=plan.hash,
            summary=plan.summary[: limits.MAX_CONDITION_MESSAGE],
            destructive=plan.destructive,
            plan_class="destructive" if plan.op_class == "destructive" else "rewriting",
            ops=plan.ops[: limits.MAX_STATUS_PLAN_OPS] or None,
            lint=plan.lint[: limits.MAX_STATUS_LINT_FINDINGS] or None,
        )


class TargetStatus(_Status):
    """What one database of the resource holds: one entry per target (one for targetRef or the default)."""

    name: str = Field(
        max_length=limits.MAX_RESOURCE_NAME_LENGTH,
        description="The DatabaseTarget ('default': the operator's --database).",
    )
    applied_version: str | None = Field(
        None, alias="appliedVersion", max_length=limits.MAX_VERSION_LENGTH, description="spec.version applied there."
    )
    applied_checksum: str | None = Field(
        None,
        alias="appliedChecksum",
        max_length=limits.SHA256_HEX_LENGTH,
        description="SHA-256 of the spec applied there.",
    )
    last_migration: LastMigration | None = Field(
        None, alias="lastMigration", description="The latest migration the operator ran on this target."
    )
    pending_plan: PendingPlan | None = Field(
        None,
        alias="pendingPlan",
        description="This target's plan waiting for approval (spec.approvedPlanHash or spec.approvedPlanHashes); "
        "targets at the same version share its hash.",
    )
    conditions: Conditions = []


class RolloutStatus(_Status):
    """Where a targetSelector rollout stands."""

    phase: Literal["Progressing", "Paused", "Complete"] = Field(
        description="Progressing (waves running or waiting for approval), Paused (a target failed), or Complete."
    )
    message: str | None = Field(
        None, max_length=limits.MAX_CONDITION_MESSAGE, description="Which wave, or where and why it paused."
    )
    paused_at: str | None = Field(
        None,
        alias="pausedAt",
        max_length=limits.MAX_RESOURCE_NAME_LENGTH,
        description="The target whose failure paused the rollout.",
    )
    resumed: str | None = Field(
        None,
        max_length=256,
        description="The value of the extschema.io/resume annotation last acted on (a new value resumes).",
    )


class ExtensionSchemaStatus(_Status):
    """What the operator observed and did; written only by the operator."""

    observed_generation: Int64 | None = Field(
        None, alias="observedGeneration", description="The generation of the spec last reconciled."
    )
    applied_version: str | None = Field(
        None,
        alias="appliedVersion",
        max_length=limits.MAX_VERSION_LENGTH,
        description="spec.version of the schema the database now matches.",
    )
    applied_checksum: str | None = Field(
        None,
        alias="appliedChecksum",
        max_length=limits.SHA256_HEX_LENGTH,
        description="SHA-256 of the applied spec (canonical JSON).",
    )
    target: str | None = Field(
        None,
        max_length=limits.MAX_RESOURCE_NAME_LENGTH,
        description="The DatabaseTarget applied to ('default': the operator's --database).",
    )
    tables: list[Annotated[str, Field(max_length=256, description="A table name.")]] | None = Field(
        None,
        max_length=4096,
        description="Physical names of the plugin's tables in the database.",
        json_schema_extra=_atomic(),
    )
    last_migration: LastMigration | None = Field(
        None, alias="lastMigration", description="The latest migration the operator ran for this resource."
    )
    pending_plan: PendingPlan | None = Field(
        None,
        alias="pendingPlan",
        description="The plan waiting for approval (spec.approvedPlanHash); removed once it ran or the spec changed.",
    )
    targets: list[TargetStatus] | None = Field(
        None,
        max_length=limits.MAX_SELECTED_TARGETS,
        description="One entry per database the resource goes to, keyed by target name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    targets_ready: str | None = Field(
        None,
        alias="targetsReady",
        max_length=32,
        description="Ready targets out of those selected, as ready/total (printer column Targets).",
    )
    rollout: RolloutStatus | None = Field(None, description="With spec.targetSelector: where the rollout stands.")
    conditions: Conditions = []


class DatabaseTargetStatus(_Status):
    """Connection state, written by the operator."""

    observed_generation: Int64 | None = Field(None, alias="observedGeneration", description="Generation last checked.")
    backend: str | None = Field(None, max_length=32, description="postgresql or sqlite.")
    server_version: str | None = Field(None, alias="serverVersion", max_length=256, description="The server's version.")
    conditions: Conditions = []
