"""Review and approval: each plan classified, its data checks counted and hashed (:class:`Reviewed`);
plans that rewrite a table or drop data run only when approved by their hash (:func:`authorize`),
else :class:`ApprovalRequired` carries each waiting plan (as its :class:`~extschema.wire.PlanView`) and the
:class:`Proposal` they belong to.

A :class:`Proposal` is what a run would do, computed once (by :func:`extschema.reconcile.pipeline.propose`):
it lives here because it is what approval is about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

from extschema import model, planning, wire
from extschema.dialects import RenderedPlan
from extschema.engine import (
    Engine,
    Registration,
    RollbackPlan,
    StalePlan,
    checks,
)
from extschema.engine.lint import LintFinding
from extschema.loading import (
    Loaded,
)
from extschema.model import ExtensionSchemaSpec
from extschema.naming import backup_tag
from extschema.planning import rawsql, safety
from extschema.problems import Kind, Problem, ProblemError
from extschema.reconcile import adopt
from extschema.reconcile.snapshot import Snapshot


@dataclasses.dataclass(frozen=True)
class Planned:
    """The change one spec makes, rendered for the target database."""

    loaded: Loaded
    base: Registration | None
    plan: planning.Plan

    def render(self, engine: Engine, tag: str) -> RenderedPlan:
        return engine.dialect.render_plan(self.plan, backup_tag=backup_tag(tag))

    def hash(self) -> str:
        """The plan's hash: what an approval names (the same base and operations, the same hash)."""
        return safety.plan_hash(self.base.checksum if self.base else None, self.plan)


#: What a data check's count counts, for messages ("120 values").
_UNITS: dict[str, str] = {
    "rows_lost": "rows",
    "values_lost": "values",
    "rows_violating": "rows violate it",
    "rows_duplicated": "rows share values",
}
#: Operations a one-line summary names before it says how many more there are.
_SUMMARY_OPS = 6


@dataclasses.dataclass(frozen=True)
class CheckedOp:
    """One operation as the approver sees it: its class, why, and its data checks with their counts."""

    classified: safety.Classified
    #: One count per check of :attr:`classified` (``classified.checks``), in order.
    counts: tuple[int, ...] = ()

    def counted(self) -> list[tuple[safety.DataCheck, int]]:
        return list(zip(self.classified.checks, self.counts, strict=True))

    def violations(self) -> list[tuple[safety.DataCheck, int]]:
        """The checks whose rows break the changed rule, with their counts."""
        return [(check, count) for check, count in self.counted() if check.kind in safety.VIOLATIONS and count]

    def describe(self) -> str:
        """``drop column order.note (120 values)``."""
        text = self.classified.op.describe()
        checks = self.classified.checks
        return f"{text} ({sum(self.counts)} {_UNITS[checks[0].kind]})" if checks else text


@dataclasses.dataclass(frozen=True)
class Reviewed:
    """A plan with its hash, its class, and each operation classified and counted."""

    planned: Planned
    hash: str
    op_class: safety.OpClass
    ops: tuple[CheckedOp, ...]
    #: Of a rollback: the version it goes back to ("" when it undoes the first migration); None otherwise.
    rollback_to: str | None = None

    @classmethod
    def of(cls, planned: Planned, counts: Sequence[int], classified: list[safety.Classified] | None = None) -> Reviewed:
        """*planned* classified (*classified*, when the caller has it already), with *counts*: one per
        data check, in the order of the operations."""
        classified = safety.classify_plan(planned.plan) if classified is None else classified
        remaining = iter(counts)
        ops = tuple(CheckedOp(c, tuple(next(remaining) for _ in c.checks)) for c in classified)
        return cls(planned, planned.hash(), safety.plan_class(classified), ops)

    @property
    def plugin_id(self) -> str:
        return self.planned.loaded.spec.plugin_id

    @property
    def version(self) -> str:
        """The version of the spec the plan leads to (of a rollback: the one it undoes)."""
        return self.planned.loaded.spec.version

    @property
    def needs_approval(self) -> bool:
        return self.op_class != "safe"

    def summary(self) -> str:
        shown = [op.describe() for op in self.ops[:_SUMMARY_OPS]]
        more = len(self.ops) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")

    def gated(self, numbered: bool = True) -> str:
        """The steps that need the approval (rewriting or destructive), numbered as ``plan`` numbers
        them: ``step 5 drop column item.extra (1 values)``; safe steps (renames, new values) are not named."""
        steps = [(n, op) for n, op in enumerate(self.ops, start=1) if op.classified.op_class != "safe"]
        shown = [f"step {n} {op.describe()}" if numbered else op.describe() for n, op in steps[:_SUMMARY_OPS]]
        more = len(steps) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")

    def pending(self) -> wire.PlanView:
        """The plan as it waits for an approval (the operator shows it as ``status.pendingPlan``)."""
        return wire.PlanView.of(self)

    def refusals(self) -> list[Problem]:
        """ES309 for every step whose new rule existing rows break: no approval makes them fit."""
        loaded = self.planned.loaded
        return [
            Problem(
                "ES309",
                _field_path(loaded.spec, check.table, check.column or next(iter(check.columns), None)),
                safety.refusal(op.classified.op, check, count),
                file=loaded.file,
                subject=loaded.owner,
            )
            for op in self.ops
            for check, count in op.violations()
        ]


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What a run would do, computed once: read, checked, planned, reviewed, rendered for preview.

    Every driver starts from one (``extschema plan`` and ``apply``, the operator, the admission
    webhook); approval is about it (:func:`authorize`), and the run executes exactly it.
    """

    #: The registry and core tables the run was planned from.
    snapshot: Snapshot
    #: The column types references resolve against (core tables, registered plugins, the run's specs).
    refs: planning.ReferenceTypes
    #: One per spec, in dependency order.
    items: tuple[Proposal.Item, ...]

    @dataclasses.dataclass(frozen=True)
    class Item:
        """One spec: its plan against its base, reviewed (class, data counts, hash), resolved and rendered once."""

        reviewed: Reviewed
        #: The spec resolved against the run's reference types: passed on, never derived again.
        resolved: planning.Resolved
        #: The plan rendered for the reader (backups named with a preview tag; the run renders its own).
        preview: RenderedPlan
        #: squawk's findings on :attr:`preview`; None when the proposal was not linted.
        lint: tuple[LintFinding, ...] | None = None

        @property
        def planned(self) -> Planned:
            return self.reviewed.planned

        @property
        def loaded(self) -> Loaded:
            return self.reviewed.planned.loaded

        @property
        def base(self) -> Registration | None:
            return self.reviewed.planned.base

        @property
        def plan(self) -> planning.Plan:
            return self.reviewed.planned.plan

        @property
        def plugin_id(self) -> str:
            return self.reviewed.plugin_id

        def warnings(self) -> list[Problem]:
            """What this database leaves unenforced, and the steps apply will refuse (ES309) whatever is approved."""
            file = self.loaded.file
            return [w.located(file) for w in self.preview.warnings] + self.reviewed.refusals()

        def view(self) -> wire.PlanView:
            """The plan as every reader sees it (``plan -o json``, the REST API): SQL, lint and warnings."""
            return wire.PlanView.of(self.reviewed, self.preview, self.lint or (), self.warnings(), self.adopts)

        @property
        def adopts(self) -> str | None:
            """What apply adopts first, when the plugin's objects were kept by ``delete --retain``."""
            return adopt.adopts(self.base)

        @property
        def changes(self) -> bool:
            """False when the registry holds this spec already, active: applying it has nothing to do."""
            return self.base is None or not self.base.holds(self.loaded.spec)

    def reviewed(self) -> list[Reviewed]:
        return [item.reviewed for item in self.items]

    def item(self, plugin_id: str) -> Proposal.Item | None:
        return next((item for item in self.items if item.plugin_id == plugin_id), None)


class ApprovalRequired(ProblemError):
    """Plans of the run rewrite or drop data and no approval matches them; nothing of the run ran.

    ``problems`` say it in words (ES307 per plan, ES308 per approval of another plan); ``pending``
    are the waiting plans themselves; ``proposal`` the run they belong to (None for a rollback's),
    so a reader (the operator's ``status.pendingPlan``, its lint) needs no second planning pass.
    """

    def __init__(
        self, problems: Sequence[Problem], pending: Sequence[wire.PlanView], proposal: Proposal | None = None
    ) -> None:
        super().__init__(problems, Kind.APPROVAL)
        self.pending = tuple(pending)
        self.proposal = proposal


def _field_path(spec: ExtensionSchemaSpec, table: str, column: str | None) -> str:
    """Where in *spec* the field *table*.*column* (names before the change) is declared, as far as it is."""
    for t, table_spec in enumerate(spec.tables):
        if table in (table_spec.name, table_spec.renamed_from):
            for f, field in enumerate(table_spec.fields):
                if column is not None and column in (field.name, field.renamed_from):
                    return f"spec.tables[{t}].fields[{f}]"
            return f"spec.tables[{t}]"
    return "spec.tables"


def review(engine: Engine, planned: Planned, classified: list[safety.Classified] | None = None) -> Reviewed:
    """Classify every operation of *planned* (unless *classified* already), count its data checks in
    the database, hash the plan.

    ES403 (retryable) when another applier migrated the plugin while it was being reviewed: the
    counts are of a database the plan no longer starts from.
    """
    try:
        return _review(engine, planned, classified)
    except StalePlan:
        raise ProblemError.one(
            "ES403",
            "database",
            f"plugin {planned.plan.plugin_id!r} was migrated by another applier while its plan was being reviewed; "
            "plan again",
            kind=Kind.RETRYABLE,
        ) from None


def _review(engine: Engine, planned: Planned, classified: list[safety.Classified] | None = None) -> Reviewed:
    """:func:`review`, raising :class:`StalePlan` when the plugin's registration is no longer the plan's base.

    Counting reads the plugin's tables as they are now; a concurrent migration may have changed them
    (a dropped column fails the count, a rewritten one counts other rows). The registration is read
    after counting: if it still is the base, the counts are of the database the plan starts from
    (a migration commits its tables and its registration together).
    """
    plan = planned.plan
    classified = safety.classify_plan(plan) if classified is None else classified
    wanted = [check for c in classified for check in c.checks]
    try:
        counts = checks.count_all(engine, plan.plugin_id, wanted)
    except ProblemError:
        if _moved(engine, planned):
            raise StalePlan(plan.plugin_id) from None
        raise
    if wanted and _moved(engine, planned):
        raise StalePlan(plan.plugin_id)
    return Reviewed.of(planned, counts, classified)


def _moved(engine: Engine, planned: Planned) -> bool:
    """Whether the plugin's registration differs from the base *planned* was planned from."""
    now = engine.registration(planned.plan.plugin_id)
    base = planned.base
    if adopt.is_retained(base):  # not registered yet: moved once anything is
        return now is not None
    return (now.checksum, now.status) != (base.checksum, base.status) if now and base else now is not base


def _waiting(
    reviewed: Reviewed, approvals: Collection[str], others: Collection[str], earlier: Mapping[str, str]
) -> list[Problem]:
    """ES307 (and ES308 for each approval of another plan) unless *reviewed* is safe or approved.

    *approvals* are the command line's; the spec's own ``approvedPlanHash`` and ``approvedPlanHashes``
    approve too. *others* are the command line's approvals that match no plan of the run.
    """
    spec = reviewed.planned.loaded.spec
    if not reviewed.needs_approval or reviewed.hash in approvals or reviewed.hash in spec.approved_hashes():
        return []
    loaded = reviewed.planned.loaded
    located = {"file": loaded.file, "subject": loaded.owner}
    what = "drops or narrows data" if reviewed.op_class == "destructive" else "rewrites tables or runs raw SQL"
    problems = [
        Problem(
            "ES307",
            "spec",
            f"plan {reviewed.hash} of plugin {reviewed.plugin_id!r} {what} and needs approval: {reviewed.gated()}; "
            f"review it with `extschema plan`, then approve exactly this plan with `--approve {reviewed.hash}` "
            f"or spec.approvedPlanHash: {reviewed.hash}",
            **located,
        )
    ]
    stale = [*spec_approvals(spec), *(("--approve", h) for h in sorted(others))]
    problems.extend(
        Problem(
            "ES308",
            path,
            f"{path.removeprefix('spec.')} {other_plan(given, reviewed.hash, earlier)}"
            + (_ANOTHER_BASE if path.startswith("spec.approvedPlanHashes[") else ""),
            **located,
        )
        for path, given in stale
    )
    return problems


#: Said of an approvedPlanHashes entry that is not this plan's: in a fleet it may well be another's.
_ANOTHER_BASE = (
    " (an entry may approve the plan of a target at another base: each target's plan is in "
    "status.targets[].pendingPlan)"
)


def spec_approvals(spec: ExtensionSchemaSpec) -> list[tuple[str, str]]:
    """The spec's approvals with where each is written: ``spec.approvedPlanHash`` and each entry
    ``spec.approvedPlanHashes[i]`` (so an approval of another plan is named by its entry)."""
    own = [("spec.approvedPlanHash", spec.approved_plan_hash)] if spec.approved_plan_hash else []
    return own + [(f"spec.approvedPlanHashes[{i}]", h) for i, h in enumerate(spec.approved_plan_hashes) if h]


#: Spec fields holding approvals: cleared where a recorded spec is reused for another plan.
NO_APPROVALS: dict[str, object] = {"approved_plan_hash": None, "approved_plan_hashes": []}


def other_plan(given: str, current: str, earlier: Mapping[str, str] | None = None) -> str:
    """ES308's words for an approval *given* that is not the plan's hash *current*: one of the plugin's
    *earlier* plans (hash -> what it was) is named; a mistyped hash (not 16 hex digits, or a few digits
    off the plan's) is said to be one; any other well-formed hash is a plan reviewed before the spec or
    the database changed."""
    if earlier and given in earlier:
        return (
            f"{given} is the hash of {earlier[given]}, and is ignored: the plugin changed since that plan was "
            f"reviewed. This plan is {current}: review it with `extschema plan` and approve its hash"
        )
    if len(given) != len(current) or any(c not in "0123456789abcdef" for c in given):
        return (
            f"{given} is not a plan hash (16 hex digits, as `extschema plan` prints them) and is ignored: "
            f"mistyped or cut when copied? This plan is {current}"
        )
    if sum(a != b for a, b in zip(given, current, strict=True)) <= 3 or sorted(given) == sorted(current):
        return (
            f"{given} is ignored: it is not this plan's hash {current}, but close to it — mistyped? "
            f"Copy the hash from `extschema plan` again"
        )
    return (
        f"{given} is for another plan and is ignored; this plan is {current}: the spec or the applied schema "
        "changed since that plan was reviewed (or the hash is another plugin's; typed by hand, compare it with "
        f"{current}). Review the new plan with `extschema plan` and approve its hash"
    )


def authorize(
    proposal: Proposal | Sequence[Reviewed],
    approvals: Collection[str] = (),
    stale: Collection[str] | None = None,
    earlier: Mapping[str, str] | None = None,
) -> None:
    """The approval gate: every plan of *proposal* is safe or approved, or nothing of the run runs.

    Raises ``refused`` (ES309) when existing rows break a narrowed field, whatever is approved;
    :class:`ApprovalRequired` when a rewriting or destructive plan has no approval of its hash.
    *stale* are approvals known to be for another plan (reported with ES308); by default those of
    *approvals* that match no plan of the run — and then such an approval stops a run that would
    change anything, even safely: an approval is for exactly one plan, and a stale one means the
    plan changed since someone looked at it.

    *proposal* may also be reviewed plans alone (a plan made again under the lock, a test's): the
    :class:`ApprovalRequired` raised then carries no proposal. *earlier* are hashes of the plugins'
    earlier plans (the one that ran last, this spec's before it ran), to say so when an approval is one.
    """
    reviewed = proposal.reviewed() if isinstance(proposal, Proposal) else proposal
    refused = [p for r in reviewed for p in r.refusals()]
    if refused:
        raise ProblemError(refused, Kind.REFUSED)
    changing = [r for r in reviewed if not r.planned.plan.empty]
    others = set(approvals) - {r.hash for r in changing} if stale is None else set(stale)
    problems: list[Problem] = []
    pending: list[wire.PlanView] = []
    for item in changing:
        found = _waiting(item, approvals, others, earlier or {})
        if found:
            problems.extend(found)
            pending.append(item.pending())
    if stale is None and not problems and others and changing:
        plans = ", ".join(f"{r.plugin_id} {r.hash}" for r in changing)
        problems.extend(
            Problem(
                "ES308",
                "--approve",
                f"--approve {given} matches no plan of this run (its plans are {plans}): "
                + (
                    "mistyped? Copy the hash from `extschema plan` again"
                    if any(not other_plan(given, r.hash).endswith("approve its hash") for r in changing)
                    else "the spec or the applied schema changed since it was reviewed; review the plans with "
                    "`extschema plan` and approve the hashes they have now"
                ),
            )
            for given in sorted(others)
        )
    if problems:
        raise ApprovalRequired(problems, pending, proposal if isinstance(proposal, Proposal) else None)


#: What a data check counts that a rollback would lose (violations are refused outright: ES309).
_LOSSES = frozenset({"rows_lost", "values_lost"})


def review_rollback(engine: Engine, undo: RollbackPlan) -> Reviewed:
    """*undo* classified, its data checks counted and hashed like a plan (base: the registered spec)."""
    base = undo.base
    namespace, _, name = base.owner.rpartition("/")
    document = model.ExtensionSchema.model_validate(
        {
            "apiVersion": "extschema.io/v1alpha1",
            "kind": "ExtensionSchema",
            "metadata": {"name": name, "namespace": namespace or None},
            # An approval recorded with the spec approved its way there, not the way back.
            "spec": base.spec.model_copy(update=NO_APPROVALS),
        }
    )
    planned = Planned(Loaded(f"rollback of {base.plugin_id}", document), base, undo.plan)
    reviewed = _review(engine, planned, safety.classify_plan(undo.plan, rollback=True))
    return dataclasses.replace(reviewed, rollback_to=undo.spec.version if undo.spec else "")


def authorize_rollback(reviewed: Reviewed, approvals: Collection[str] = (), undo: RollbackPlan | None = None) -> None:
    """The gate of a rollback: ES309 when existing rows break a field it narrows; ES307 (with the
    counts and the hash, :class:`ApprovalRequired`) when it would drop values or rows, or runs a raw
    step's ``rollbackSql`` (destructive whatever the counts: what it deletes is unknown), and
    *approvals* do not name its hash; ES308 for each approval of another plan. A rollback losing
    nothing runs."""
    refused = reviewed.refusals()
    if refused:
        raise ProblemError(refused, Kind.REFUSED)
    loses = any(count for op in reviewed.ops for check, count in op.counted() if check.kind in _LOSSES)
    raw = [op.classified.op for op in reviewed.ops if rawsql.runs_sql(op.classified.op)]
    waiting = (loses or bool(raw)) and reviewed.hash not in approvals
    others = set(approvals) - {reviewed.hash}
    problems: list[Problem] = []
    if waiting:
        spec = reviewed.planned.base.spec if reviewed.planned.base else None
        steps = ", ".join(repr(getattr(op, "id", "?")) for op in raw)
        does = (
            f"runs the hand-written rollbackSql of step {steps} (`extschema history {reviewed.plugin_id} --sql` "
            "shows it), which may delete or change any row of the tables it names"
            if raw
            else "drops data"
        )
        to = reviewed.rollback_to
        where = f"to {to}" if to else "to no version (its first migration: the plugin's objects go)"
        undoes = "" if undo is None else f", undoing migration {undo.migration_id}"
        problems.append(
            Problem(
                "ES307",
                "plugin",
                f"rolling back plugin {reviewed.plugin_id!r} from {spec.version if spec else '?'} {where}{undoes} "
                f"{does}: {reviewed.gated(numbered=False) or reviewed.summary()}; it is backed up first, but approve "
                "exactly this rollback with "
                f"`extschema rollback {reviewed.plugin_id} --approve {reviewed.hash}`",
                subject=reviewed.planned.loaded.owner,
            )
        )
    if others:
        found = _stale_rollback_approvals(reviewed.plugin_id, others, reviewed.hash, raise_=False)
        problems.extend(p.about(reviewed.planned.loaded.owner) for p in found)
    if problems:
        raise ApprovalRequired(problems, [reviewed.pending()] if waiting else [])


def _stale_rollback_approvals(
    plugin_id: str, given: Collection[str], current: str | None, raise_: bool = True
) -> list[Problem]:
    """ES308 for each of *given*: none is the hash of the rollback of *plugin_id* as it is now (*current*)."""
    now_is = f"this rollback is {current}" if current else "there is nothing to roll back"
    problems = [
        Problem(
            "ES308",
            "--approve",
            f"--approve {h} is for another plan: {now_is} (plugin {plugin_id!r} changed since it was reviewed); "
            "review the rollback again",
        )
        for h in sorted(given)
    ]
    if raise_:
        raise ApprovalRequired(problems, [])
    return problems
