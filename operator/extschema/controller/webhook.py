"""The validating admission webhook: a bad or conflicting ExtensionSchema is refused at ``kubectl apply``.

kube-apiserver asks this webhook before it stores an ExtensionSchema (also for ``kubectl apply
--dry-run=server``). The webhook runs what the reconcile runs before it changes anything — validation,
conflicts with the registered plugins and with older resources, the plan and its data checks — and
refuses the request on an invalid spec, a conflict or a refused change. A server-side dry run also
gets the plan's SQL back as admission warnings, which kubectl prints.

Webhooks can be bypassed (``failurePolicy: Ignore``, a webhook configuration deleted, a resource
stored while the operator was down), so the reconcile still checks everything; the webhook only
moves the error to the moment of ``kubectl apply``. It never refuses for reasons the operator waits
out (a dependency not applied yet, an approval, a database that is away): those are admitted, with a
warning.

With ``spec.targetSelector`` the spec is checked against the first DatabaseTarget the rollout reaches
(a canary first, else by name) — the others are planned by the operator as the rollout reaches them —
and every request (not only dry runs) warns of a selector that matches no DatabaseTarget now (ES027),
of an approval added to a waiting resource that matches none of its waiting plans (ES028) and of
``spec.rollout`` without a selector (ES029); ``targetRef`` with ``targetSelector`` is refused (ES029).

With ``extschema run --shards N`` it is also a mutating webhook: a new ExtensionSchema without a valid
``extschema.io/shard`` label gets one (:func:`extschema.controller.sharding.shard_of`), so its shard handles
it from the start (shard 0 labels the ones that bypass it).

Importing this module registers the handlers with kopf; ``extschema run --webhook-port`` does (kopf
refuses to start with admission handlers and no admission server).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from extschema import conflicts, model, reconcile, wire
from extschema.controller import sharding
from extschema.controller.certificates import generate
from extschema.controller.claims import ClaimEntry, order_of, peers_of
from extschema.controller.runtime import Runtime, runtime
from extschema.controller.settings import GROUP, SCHEMAS, VERSION, Settings
from extschema.controller.status import Settle
from extschema.controller.targets import resolve_target, target_key
from extschema.engine import Engine
from extschema.naming import DRY_RUN_PREVIEW_TAG
from extschema.problems import Kind, Problem, ProblemError

#: Kinds of failure the webhook refuses a request for; the others the operator waits out.
REFUSED_KINDS = {Kind.INVALID: 422, Kind.CONFLICT: 409, Kind.REFUSED: 422}
#: kube-apiserver truncates a warning longer than 256 characters and drops warnings beyond 4 kB.
MAX_WARNING = 240
MAX_WARNINGS_TOTAL = 3500
#: Codes of the target and approval checks (docs/errors.md): a selector matching nothing, an approval of no
#: waiting plan, targetRef with targetSelector (refused) or a rollout without a selector (warned).
NO_TARGETS, STRAY_APPROVAL, TARGETS_MISFIT = "ES027", "ES028", "ES029"
#: The path of the handler on the webhook server (kopf appends the handler id to the URL).
HANDLER_ID = "validate"
#: The path of the mutating handler that stamps the shard label (``--shards N``).
SHARD_HANDLER_ID = "shard"


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sql_warnings(statements: Sequence[str]) -> list[str]:
    """Each statement on one line (whitespace collapsed), split into numbered warnings kubectl shows whole."""
    lines: list[str] = []
    for number, statement in enumerate(statements, 1):
        flat = re.sub(r"\s+", " ", statement).strip()
        parts = _chunks(flat, MAX_WARNING - 16)
        for part, text in enumerate(parts, 1):
            more = f" ({part}/{len(parts)})" if len(parts) > 1 else ""
            lines.append(f"SQL {number}{more}: {text}")
    return lines


def plan_warnings(plan: wire.PlanView, approved: Collection[str] | None) -> list[str]:
    """What a server-side dry run shows of the plan's view: its hash and class, what approval it needs (*approved*:
    every hash the spec approves), its SQL."""
    if not plan.ops:
        return ["extschema: no change: the database already matches this spec"]
    lines = [f"extschema plan {plan.hash}: {plan.op_class}, {len(plan.ops)} operation(s)"]
    if plan.needs_approval and plan.hash not in set(approved or ()):
        lines.append(
            f"extschema: needs approval: set spec.approvedPlanHash: {plan.hash} (or add it to spec.approvedPlanHashes)"
        )
    lines.extend(f"extschema: {p.code}: {p.message}"[:MAX_WARNING] for p in plan.warnings)
    lines.extend(sql_warnings(plan.sql or ()))
    kept: list[str] = []
    total = 0
    for line in lines:
        if total + len(line) > MAX_WARNINGS_TOTAL - 80:
            kept.append(f"extschema: {len(lines) - len(kept)} more lines: run `extschema plan` for the whole SQL")
            break
        kept.append(line)
        total += len(line)
    return kept


def admit(
    engine: Engine, loaded: reconcile.Loaded, peers: Sequence[conflicts.Claim], approved: Collection[str] | None
) -> list[str]:
    """The reconcile's checks without applying anything: raises ProblemError, else the plan as warnings.

    Blocking (database reads): run it in a worker thread.
    """
    try:
        proposal = reconcile.propose(engine, [loaded], peers=peers, preview_tag=DRY_RUN_PREVIEW_TAG)
    except ProblemError as error:
        if error.kind is Kind.DEPENDENCY:
            return [f"extschema: admitted, waits: {p.message}"[:MAX_WARNING] for p in error.problems]
        raise
    (item,) = proposal.items
    refusals = item.reviewed.refusals()
    if refusals:
        raise ProblemError(refusals, Kind.REFUSED)
    return plan_warnings(wire.PlanView.of(item.reviewed, item.preview, warnings=item.preview.warnings), approved)


def both_targets(spec: Mapping[str, Any]) -> list[Problem]:
    """ES029 when the spec names its database twice: targetRef and targetSelector."""
    if not (spec.get("targetRef") and spec.get("targetSelector") is not None):
        return []
    return [
        Problem(
            TARGETS_MISFIT,
            "spec.targetSelector",
            "spec.targetRef and spec.targetSelector are both set: targetRef names one DatabaseTarget, targetSelector "
            "selects every DatabaseTarget whose labels match; keep one of them",
        )
    ]


def target_warnings(spec: model.ExtensionSchemaSpec, selected: Sequence[str] | None) -> list[str]:
    """ES029 for a rollout that has no targets to order, ES027 for a selector matching no DatabaseTarget now
    (*selected*: the names it matches, None when not known)."""
    found: list[str] = []
    if spec.rollout is not None and spec.target_selector is None:
        found.append(
            f"extschema: {TARGETS_MISFIT}: spec.rollout: ignored: it orders the targets of spec.targetSelector, "
            "and this resource goes to one database; remove it, or select the targets by label"
        )
    if spec.target_selector is not None and selected is not None and not selected:
        found.append(
            f"extschema: {NO_TARGETS}: spec.targetSelector: no DatabaseTarget of the namespace matches "
            f"{spec.target_selector.text() or '{}'!r} now: the plugin goes nowhere until one does; label a "
            "DatabaseTarget to match, or fix the selector"
        )
    return [w[:MAX_WARNING] for w in found]


def _waiting_hashes(status: Mapping[str, Any]) -> set[str]:
    plans = [status.get("pendingPlan"), *((t or {}).get("pendingPlan") for t in status.get("targets") or [])]
    return {str(p["hash"]) for p in plans if isinstance(p, Mapping) and p.get("hash")}


#: The spec fields holding approvals.
APPROVALS = ("approvedPlanHash", "approvedPlanHashes")


def _without_approvals(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in APPROVALS}


def approval_warnings(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """ES028 for each approval an update adds to a resource waiting for approval that no waiting plan has.

    Only an update that changes approvals alone: with the spec, its plans change too (an approval
    committed with its change, reviewed with ``extschema plan``, is for a plan not made yet)."""
    if old is None:
        return []
    before, after = old.get("spec") or {}, new.get("spec") or {}
    if _without_approvals(before) != _without_approvals(after):
        return []
    waiting = _waiting_hashes(old.get("status") or {})
    if not waiting:
        return []
    had = {before.get("approvedPlanHash"), *(before.get("approvedPlanHashes") or ())}
    given = [("spec.approvedPlanHash", after.get("approvedPlanHash"))]
    given += [(f"spec.approvedPlanHashes[{i}]", h) for i, h in enumerate(after.get("approvedPlanHashes") or ())]
    shown = ", ".join(sorted(waiting))
    return [
        f"extschema: {STRAY_APPROVAL}: {path}: {given_hash} matches no plan waiting for approval ({shown}): "
        "mistyped, or another resource's? Copy it from `kubectl extschema plan`"[:MAX_WARNING]
        for path, given_hash in given
        if given_hash and given_hash not in had and given_hash not in waiting
    ]


def first_target(spec: model.ExtensionSchemaSpec, labels: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The DatabaseTargets *spec*'s selector matches, in the order the rollout reaches them: canaries first,
    each group by name."""
    selector = spec.target_selector
    if selector is None:
        return []
    matched = sorted(name for name, given in labels.items() if selector.matches(given))
    canary = spec.rollout.canary if spec.rollout is not None else None
    return sorted(matched, key=lambda name: canary is None or not canary.matches(labels[name]))


def refusal(error: ProblemError) -> kopf.AdmissionError:
    """The answer kube-apiserver shows the user: every problem with its code and path."""
    text = "; ".join(f"{p.path}: {p.code}: {p.message}" for p in error.problems)
    return kopf.AdmissionError(text, code=REFUSED_KINDS[error.kind])


def unchanged(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """An update that leaves the spec alone (kopf's own finalizer and annotation patches, labels): never
    refused, or a conflict loser could not even be deleted."""
    return old is not None and new is not None and old.get("spec") == new.get("spec")


@kopf.on.validate(GROUP, VERSION, SCHEMAS, id=HANDLER_ID, operations=["CREATE", "UPDATE"])
async def validate_schema(
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    namespace: str | None,
    dryrun: bool,
    warnings: list[str],
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    if unchanged(kwargs.get("old"), kwargs.get("new")) or meta.get("deletionTimestamp"):
        return
    run = runtime(memo)
    try:
        await _validate(run, body, spec, meta, namespace or "", dryrun, warnings, kwargs)
    except kopf.AdmissionError:
        run.stats.metrics.admissions.labels("refused").inc()
        raise
    run.stats.metrics.admissions.labels("admitted").inc()


async def _validate(
    run: Runtime,
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    namespace: str,
    dryrun: bool,
    warnings: list[str],
    kwargs: Mapping[str, Any],
) -> None:
    """Refuse (kopf.AdmissionError) or admit, adding the plan to *warnings* on a dry run."""
    owner = f"{namespace}/{meta.get('name')}"
    doubled = both_targets(spec)
    if doubled:
        raise refusal(ProblemError(doubled, Kind.INVALID))
    try:
        loaded = reconcile.from_object(dict(body), owner)
    except ProblemError as error:
        raise refusal(error) from None
    # Shown on every request (kubectl prints them at apply): about the targets and the approvals, not the plan.
    warnings.extend(approval_warnings(kwargs.get("old"), body))
    selected: list[str] | None = None
    if loaded.spec.target_selector is not None:
        try:
            selected = first_target(loaded.spec, await run.api.target_labels(namespace))
        except (aiohttp.ClientError, TimeoutError, Settle) as error:  # a warning only: the reconcile lists them
            warnings.append(f"extschema: the DatabaseTargets could not be listed: {type(error).__name__}"[:MAX_WARNING])
    warnings.extend(target_warnings(loaded.spec, selected))
    if spec.get("suspend"):
        return  # a suspended resource touches nothing: only its spec is checked
    claims: kopf.Index[str, ClaimEntry] = kwargs["claims"]
    approved = loaded.spec.approved_hashes()
    checked = dict(spec)
    if loaded.spec.target_selector is not None:
        if not selected:
            return  # nothing to check against: the operator waits for a target (NoTargetsSelected)
        # The first target the rollout reaches stands for the others (planned as the rollout reaches them).
        checked = {**spec, "targetRef": {"name": selected[0]}}
        if dryrun:
            warnings.append(
                f"extschema: checked against DatabaseTarget {selected[0]} (the first of {len(selected)} the rollout "
                "reaches); the others wait with their own plans: `kubectl extschema plan NAME`"[:MAX_WARNING]
            )
    try:
        target = await resolve_target(run.api, run.settings, namespace, checked, kwargs["targets"])
        order = order_of(meta, loaded.owner)
        peers, _fingerprint = peers_of(claims.get(target_key(namespace, checked), ()), str(meta.get("uid")), order)
        engine = await asyncio.to_thread(run.engines.get, target)
        found = await asyncio.to_thread(admit, engine, loaded, peers, approved)
    except ProblemError as error:
        if error.kind in REFUSED_KINDS:
            raise refusal(error) from None
        found = [f"extschema: admitted unchecked ({error.kind}): {error}"[:MAX_WARNING]]
    except Settle as error:
        found = [f"extschema: admitted unchecked: {error.outcome.message}"[:MAX_WARNING]]
    if dryrun:
        warnings.extend(found)


@kopf.on.mutate(GROUP, VERSION, SCHEMAS, id=SHARD_HANDLER_ID, operations=["CREATE"])
def stamp_shard(meta: Mapping[str, Any], namespace: str | None, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Label a new ExtensionSchema with its shard (``--shards N``); unsharded, or labeled already: nothing.

    A name still to be generated (``generateName``) hashes its prefix: spread a little less evenly, still one
    shard."""
    name = str(meta.get("name") or meta.get("generateName") or "")
    label = sharding.label_for(runtime(memo).settings, namespace, name, meta.get("labels") or {})
    if label is not None:
        patch.meta.labels[sharding.LABEL] = label


@kopf.on.startup(id="webhook")
async def serve_webhook(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's webhook server with the mounted certificate, or a generated one for ``webhook_host``."""
    configure(settings, runtime(memo).settings)


def configure(settings: kopf.OperatorSettings, options: Settings) -> None:
    """Point kopf's admission settings at the webhook server ``extschema run`` was asked for."""
    if options.webhook_cert and options.webhook_key:
        certfile, keyfile = Path(options.webhook_cert), Path(options.webhook_key)
        cafile = Path(options.webhook_ca) if options.webhook_ca else None
    else:
        hosts = [options.webhook_host, *([options.webhook_addr] if options.webhook_addr != "0.0.0.0" else [])]
        files = generate(Path(tempfile.mkdtemp(prefix="extschema-webhook-")), list(dict.fromkeys(hosts)))
        certfile, keyfile, cafile = files.certfile, files.keyfile, files.cafile
    settings.admission.server = kopf.WebhookServer(
        addr=options.webhook_addr,
        port=options.webhook_port,
        host=options.webhook_host,
        certfile=str(certfile),
        pkeyfile=str(keyfile),
        cafile=str(cafile) if cafile else None,
    )
