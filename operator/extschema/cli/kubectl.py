"""``kubectl extschema``: the kubectl plugin (the ``kubectl-extschema`` program) for reviewing and approving plans.

``plan NAME`` shows the plan an ExtensionSchema waits with (``status.pendingPlan``), ``approve NAME [HASH]`` shows it
and sets ``spec.approvedPlanHash`` (or prints the patch for Git), ``history NAME`` what the operator reports: the
conditions, the last migration and the resource's events. With ``spec.targetSelector`` (many databases) the plans
are those of ``status.targets``, grouped by hash (targets at one base share it), and approving adds their hashes to
``spec.approvedPlanHashes``. It talks to the API server like ``extschema wait``
(:mod:`extschema.kubewait`: the pod's ServiceAccount, else ``$KUBECONFIG``), never to the database.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import click

from extschema import __version__, wire
from extschema.cli.base import EXIT_DATABASE, EXIT_INVALID, emit_json, output_option, print_table
from extschema.cli.shells import attach_examples
from extschema.problems import Kind, Problem, escape

#: The problem codes of the plugin (docs/errors.md).
NOT_FOUND, NOTHING_PENDING, OTHER_HASH, PLAN_CHANGED, NO_API = "ES610", "ES611", "ES612", "ES613", "ES614"
NO_SUCH_TARGET = "ES026"
#: spec.approvedPlanHashes holds at most this many (the CRD's maxItems).
MAX_APPROVED_HASHES = 64

namespace_option = click.option(
    "--namespace", "-n", metavar="NS", help="The resource's namespace (default: the kubeconfig context's)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubectl-extschema")
def main() -> None:
    """Review and approve the plans ExtensionSchemas wait with (install: it comes with the extschema package).

    Reads $KUBECONFIG (or the pod's ServiceAccount), like kubectl. Needs get and patch on extensionschemas and
    list on events in the namespace (docs/kubectl-plugin.md).
    """


def _fail(code: str, where: str, message: str, output: str, exit_code: int = EXIT_INVALID) -> NoReturn:
    if output != "text":
        reason = Kind.UNREACHABLE if exit_code == EXIT_DATABASE else Kind.REFUSED
        emit_json(wire.Failure.because(reason, [Problem(code, "", message, subject=where)]))
    else:
        click.echo(f"extensionschema {escape(where)}: {code}: {escape(message)}", err=True)
    sys.exit(exit_code)


def _read(name: str, namespace: str | None, output: str, events: bool = False) -> tuple[dict[str, Any], Any, str]:
    from extschema import kubewait

    try:
        return kubewait.get(name, namespace, events)
    except kubewait.NotFound:
        where = f"{namespace}/{name}" if namespace else name
        message = "no such ExtensionSchema in this namespace: check the name and -n (`kubectl get exts -A`)"
        _fail(NOT_FOUND, where, message, output)
    except kubewait.ApiError as error:
        _fail(NO_API, name, str(error), output, EXIT_DATABASE)


def _pending(body: Mapping[str, Any]) -> tuple[wire.PlanView | None, str]:
    """The plan waiting for approval as ``extschema plan -o json`` prints it, or why there is none."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation:
        return None, f"the operator has not planned generation {generation} yet: try again in a moment"
    pending = status.get("pendingPlan")
    if not pending:
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        state = f"Ready={ready.get('status', 'Unknown')} {ready.get('reason', '')}: {ready.get('message', '')}"
        return None, f"no plan waits for approval ({state.strip()})"
    plan = wire.PlanView(
        plugin_id=spec.get("pluginId", ""),
        version=str(spec.get("version", "")),
        hash=pending["hash"],
        op_class=pending["class"],
        needs_approval=True,
        destructive=bool(pending.get("destructive")),
        summary=pending.get("summary", ""),
        ops=[wire.OpView.model_validate(op) for op in pending.get("ops") or []],
        lint=[wire.LintView.model_validate(finding) for finding in pending.get("lint") or []],
    )
    return plan, ""


def _fleet(body: Mapping[str, Any]) -> bool:
    """Whether the resource selects its databases by label (spec.targetSelector): plans per target."""
    return bool((body.get("spec") or {}).get("targetSelector"))


def _state(status: Mapping[str, Any]) -> str:
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return f"Ready={ready.get('status', 'Unknown')} {ready.get('reason', '')}: {ready.get('message', '')}".strip()


def _waiting(body: Mapping[str, Any]) -> tuple[list[wire.PendingPlanView], str]:
    """The plans targets wait with, one per distinct hash in the order of status.targets, or why there is none."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation:
        return [], f"the operator has not planned generation {generation} yet: try again in a moment"
    groups: dict[str, dict[str, Any]] = {}
    for entry in status.get("targets") or []:
        pending = entry.get("pendingPlan")
        if not pending or not pending.get("hash"):
            continue
        ops = [wire.OpView.model_validate(op) for op in pending.get("ops") or []]
        group = groups.setdefault(
            pending["hash"],
            {
                "plugin_id": spec.get("pluginId", ""),
                "version": str(spec.get("version", "")),
                "hash": pending["hash"],
                "op_class": "destructive" if pending.get("class") == "destructive" else "rewriting",
                "destructive": bool(pending.get("destructive")),
                "summary": pending.get("summary", ""),
                "ops": [],
                "lint": [wire.LintView.model_validate(f) for f in pending.get("lint") or []],
                "targets": [],
            },
        )
        if ops and not group["ops"]:
            group["ops"] = ops
        group["targets"].append(
            wire.PendingTargetView(
                name=entry.get("name", ""),
                applied_version=entry.get("appliedVersion"),
                summary=pending.get("summary", ""),
                ops=ops,
            )
        )
    if not groups:
        ready = f", targets ready {status['targetsReady']}" if status.get("targetsReady") else ""
        return [], f"no plan waits for approval on any target ({_state(status)}{ready})"
    return [wire.PendingPlanView(**group) for group in groups.values()], ""


def _target_data(target: wire.PendingTargetView) -> str:
    """What one target would lose: its counted checks, or its summary where the status keeps no operations."""
    counts = [_count(c) for op in target.ops for c in [*filter(None, [op.check]), *op.more_checks]]
    return "; ".join(counts) if counts else target.summary


def _show_waiting(plans: Sequence[wire.PendingPlanView], where: str, body: Mapping[str, Any]) -> None:
    status = body.get("status") or {}
    plan = plans[0]
    ready = f", targets ready {escape(status['targetsReady'])}" if status.get("targetsReady") else ""
    rollout = status.get("rollout") or {}
    phase = f" (rollout {escape(rollout.get('phase', ''))})" if rollout.get("phase") else ""
    click.echo(f"extensionschema {escape(where)}: plugin {escape(plan.plugin_id)} {escape(plan.version)}{ready}{phase}")
    for plan in plans:
        names = ", ".join(escape(t.name) for t in plan.targets)
        count = len(plan.targets)
        click.echo(
            f"plan {plan.hash}: {plan.op_class}, waits for approval on {count} target{'s' if count > 1 else ''}: "
            f"{names}"
        )
        steps: list[tuple[list[str], list[str]]] = [
            ([str(number), op.op_class, escape(op.description)], []) for number, op in enumerate(plan.ops, 1)
        ]
        if steps:
            print_table(("STEP", "CLASS", "OPERATION"), steps)
        rows: list[tuple[list[str], list[str]]] = [
            ([escape(t.name), escape(t.applied_version or "-"), plan.op_class, escape(_target_data(t))], [])
            for t in plan.targets
        ]
        print_table(("TARGET", "APPLIED", "CLASS", "DATA"), rows)
        for finding in plan.lint:
            where_in = f" (statement {finding.statement + 1})" if finding.statement is not None else ""
            click.echo(f"lint {finding.level} {escape(finding.rule)}{where_in}: {escape(finding.message)}")
    click.echo(
        "SQL: not kept in the status; `extschema plan FILE -d URL` against a target's database prints it, "
        "with the same hash, from the same spec."
    )


def _count(check: wire.CheckView) -> str:
    what = {"rows_lost": "rows lost", "values_lost": "values lost", "rows_violating": "rows violate it"}
    return f"{check.count:,} {what.get(check.kind, 'rows share values')}"


def _show(plan: wire.PlanView, where: str, body: Mapping[str, Any]) -> None:
    applied = (body.get("status") or {}).get("appliedVersion")
    since = f" (applied: {escape(applied)})" if applied else ""
    click.echo(f"extensionschema {escape(where)}: plugin {escape(plan.plugin_id)} {escape(plan.version)}{since}")
    click.echo(f"plan {plan.hash}: {plan.op_class}, waits for approval")
    steps: list[tuple[list[str], list[str]]] = [
        (
            [
                str(number),
                op.op_class,
                escape(op.description),
                "; ".join(_count(c) for c in [*filter(None, [op.check]), *op.more_checks]) or "-",
            ],
            [],
        )
        for number, op in enumerate(plan.ops, 1)
    ]
    print_table(("STEP", "CLASS", "OPERATION", "DATA"), steps)
    for finding in plan.lint:
        where_in = f" (statement {finding.statement + 1})" if finding.statement is not None else ""
        click.echo(f"lint {finding.level} {escape(finding.rule)}{where_in}: {escape(finding.message)}")
    click.echo(
        "SQL: not kept in the status; `extschema plan FILE -d URL` prints it, with the same hash, from the same spec."
    )


@main.command("plan")
@click.argument("name")
@namespace_option
@output_option
def plan(name: str, namespace: str | None, output: str) -> None:
    """Show the plan ExtensionSchema NAME waits with (status.pendingPlan): steps, classes, data counts, hash.

    With spec.targetSelector: the plans of status.targets, one per hash (targets at one base share it), each with
    its targets and their own data counts (-o json: a PendingPlanList). Exit 0 whether or not a plan waits
    (text says which; -o json lists it, or nothing).
    """
    body, _, ns = _read(name, namespace, output)
    if _fleet(body):
        plans, why = _waiting(body)
        if output != "text":
            emit_json(wire.PendingPlanList.of(plans))
        elif not plans:
            click.echo(f"extensionschema {escape(ns)}/{escape(name)}: {escape(why)}")
        else:
            _show_waiting(plans, f"{ns}/{name}", body)
            hashes = " ".join(p.hash for p in plans)
            click.echo(
                f"approve {'them' if len(plans) > 1 else 'it'}: "
                f"kubectl extschema approve {escape(name)} -n {escape(ns)}"
            )
            if len(plans) > 1:
                click.echo(
                    f"or one plan: kubectl extschema approve {escape(name)} --hash HASH -n {escape(ns)} ({hashes})"
                )
        return
    pending, why = _pending(body)
    if output != "text":
        emit_json(wire.PlanList.of([pending] if pending else []))
        return
    if pending is None:
        click.echo(f"extensionschema {escape(ns)}/{escape(name)}: {escape(why)}")
        return
    _show(pending, f"{ns}/{name}", body)
    click.echo(f"approve it: kubectl extschema approve {escape(name)} {pending.hash} -n {escape(ns)}")


def _patch_text(name: str, ns: str, plan: wire.PlanView) -> str:
    patch = json.dumps({"spec": {"approvedPlanHash": plan.hash}}, separators=(",", ":"))
    return (
        f"# approves plan {plan.hash} of extensionschema {ns}/{name}: {plan.summary}\n"
        f"kubectl patch extensionschema {name} -n {ns} --type merge -p '{patch}'\n"
        "# or, for GitOps, commit it to the ExtensionSchema's manifest:\n"
        f"spec:\n  approvedPlanHash: {plan.hash!r}\n"
    )


def _fleet_patch_text(name: str, ns: str, plans: Sequence[wire.PendingPlanView], hashes: Sequence[str]) -> str:
    patch = json.dumps({"spec": {"approvedPlanHashes": list(hashes)}}, separators=(",", ":"))
    listed = "".join(f"  - {h!r}\n" for h in hashes)
    approved = ", ".join(f"{p.hash} ({len(p.targets)} target{'s' if len(p.targets) > 1 else ''})" for p in plans)
    return (
        f"# approves plan {approved} of extensionschema {ns}/{name}\n"
        f"kubectl patch extensionschema {name} -n {ns} --type merge -p '{patch}'\n"
        "# or, for GitOps, commit it to the ExtensionSchema's manifest:\n"
        f"spec:\n  approvedPlanHashes:\n{listed}"
    )


def approved_list(given: Sequence[str], adding: Sequence[str], waiting: Sequence[str]) -> list[str]:
    """spec.approvedPlanHashes with *adding* appended (kept in order, no repeats); over the CRD's bound, the
    oldest approvals no target waits with make room (their plans ran or changed)."""
    hashes = list(dict.fromkeys([*given, *adding]))
    keep = {*adding, *waiting}
    while len(hashes) > MAX_APPROVED_HASHES:
        old = next((h for h in hashes if h not in keep), None)
        if old is None:
            break
        hashes.remove(old)
    return hashes


def _chosen(
    plans: Sequence[wire.PendingPlanView],
    body: Mapping[str, Any],
    plan_hash: str | None,
    target: str | None,
    where: str,
    name: str,
    output: str,
) -> list[wire.PendingPlanView]:
    """The waiting plans to approve: the one of *plan_hash*, the one *target* waits with, or all of them."""
    if plan_hash is not None:
        found = [p for p in plans if p.hash == plan_hash]
        if not found:
            waiting = ", ".join(f"{p.hash} ({', '.join(t.name for t in p.targets)})" for p in plans)
            _fail(
                OTHER_HASH,
                where,
                f"no target waits with plan {plan_hash}; the plans waiting are {waiting}: the spec or a database "
                f"changed since {plan_hash} was reviewed, or it is mistyped; review them "
                f"(`kubectl extschema plan {name}`)",
                output,
            )
        return found
    if target is not None:
        entries = (body.get("status") or {}).get("targets") or []
        entry = next((e for e in entries if e.get("name") == target), None)
        if entry is None:
            known = ", ".join(str(e.get("name")) for e in entries) or "none"
            _fail(
                NO_SUCH_TARGET,
                where,
                f"no target {target!r} in status.targets (the targets: {known}): check the name "
                f"(`kubectl extschema history {name}`)",
                output,
            )
        found = [p for p in plans if any(t.name == target for t in p.targets)]
        if not found:
            state = wire.TargetStateView.of(entry)
            _fail(
                NOTHING_PENDING,
                where,
                f"target {target} waits with no plan (Ready={state.ready} {state.reason or ''}: {state.message or ''})",
                output,
            )
        return found
    return list(plans)


def _approve_fleet(
    name: str,
    namespace: str | None,
    plan_hash: str | None,
    target: str | None,
    print_patch: bool,
    output: str,
) -> tuple[list[wire.PendingPlanView], str] | None:
    """Add the chosen plans' hashes to spec.approvedPlanHashes; None when only printed or shown."""
    from extschema import kubewait

    shown: list[str] | None = None  # the hashes shown to the user: approved only while they still wait
    for _attempt in range(5):
        body, _, ns = _read(name, namespace, output)
        where = f"{ns}/{name}"
        plans, why = _waiting(body)
        if not plans:
            _fail(NOTHING_PENDING, where, why, output)
        if shown is not None:
            gone = [h for h in shown if h not in {p.hash for p in plans}]
            if gone:
                message = f"plan {', '.join(gone)} no longer waits: the resource changed while it was approved; " + (
                    f"review the plans waiting now (`kubectl extschema plan {name}`)"
                )
                _fail(OTHER_HASH, where, message, output)
            chosen = [p for p in plans if p.hash in shown]
        else:
            chosen = _chosen(plans, body, plan_hash, target, where, name, output)
        given = list((body.get("spec") or {}).get("approvedPlanHashes") or [])
        hashes = approved_list(given, [p.hash for p in chosen], [p.hash for p in plans])
        if print_patch:
            if output != "text":
                emit_json(wire.PendingPlanList.of(chosen))
            else:
                click.echo(_fleet_patch_text(name, ns, chosen, hashes), nl=False)
            return None
        if output == "text" and shown is None:
            _show_waiting(chosen, where, body)
        version = body["metadata"]["resourceVersion"]
        try:
            kubewait.patch(name, ns, {"metadata": {"resourceVersion": version}, "spec": {"approvedPlanHashes": hashes}})
        except kubewait.Changed:
            shown = [p.hash for p in chosen]  # often only the status moved on: approve what was shown, if it waits
            continue
        except kubewait.NotFound:
            _fail(NOT_FOUND, where, "it was deleted meanwhile", output)
        except kubewait.ApiError as error:
            _fail(NO_API, where, str(error), output, EXIT_DATABASE)
        return chosen, ns
    _fail(PLAN_CHANGED, name, "the resource kept changing while it was approved: try again", output)


def _one_target(body: Mapping[str, Any], target: str, where: str, name: str, output: str) -> None:
    """--target on a resource with one database: it must be that one (status.targets, or status.target)."""
    status = body.get("status") or {}
    names = [str(e.get("name")) for e in status.get("targets") or []] or [str(status.get("target") or "default")]
    if target not in names:
        _fail(
            NO_SUCH_TARGET,
            where,
            f"no target {target!r}: {name} goes to one database, {names[0]} (spec.targetRef); leave --target out",
            output,
        )


@main.command("approve")
@click.argument("name")
@click.argument("plan_hash", metavar="[HASH]", required=False)
@namespace_option
@click.option(
    "--hash", "hash_option", metavar="HASH", help="Approve only the plan with this hash (as the HASH argument)."
)
@click.option(
    "--target",
    metavar="TARGET",
    help="spec.targetSelector: approve the plan this target waits with (every target at its base shares it).",
)
@click.option(
    "--print-patch",
    is_flag=True,
    help="Change nothing: print the `kubectl patch` command and the spec lines to commit (GitOps).",
)
@click.option("--wait", "wait_s", type=click.IntRange(min=1), metavar="SECONDS", help="Then wait until Ready.")
@output_option
def approve(
    name: str,
    plan_hash: str | None,
    namespace: str | None,
    hash_option: str | None,
    target: str | None,
    print_patch: bool,
    wait_s: int | None,
    output: str,
) -> None:
    """Show the plan NAME waits with and approve it: set spec.approvedPlanHash to its hash.

    With HASH (from `plan`, a review, a pull request), only that plan is approved: a different pending plan is
    refused (ES612). The patch is conditional on the resource as shown: when the plan changed meanwhile, the
    new one is refused (ES612), never approved unseen. A resource synced from Git (Argo CD, Flux) gets its spec
    back on the next sync: use --print-patch and commit the hash instead.

    With spec.targetSelector, every plan status.targets waits with (one hash per base) is added to
    spec.approvedPlanHashes; --hash HASH approves that plan only, --target TARGET the one TARGET waits with.
    """
    from extschema import kubewait

    if plan_hash is not None and hash_option is not None and plan_hash != hash_option:
        raise click.UsageError(f"HASH {plan_hash} and --hash {hash_option} differ: give one")
    plan_hash = plan_hash or hash_option
    if plan_hash is not None and target is not None:
        raise click.UsageError("give --hash (or HASH) or --target, not both: a target waits with one plan")
    first, _, _ = _read(name, namespace, output)
    if _fleet(first):
        approved = _approve_fleet(name, namespace, plan_hash, target, print_patch, output)
        if approved is None:
            return
        plans, ns = approved
        count = sum(len(p.targets) for p in plans)
        if output == "text":
            click.echo(
                f"approved plan {', '.join(p.hash for p in plans)} for {count} target{'s' if count > 1 else ''}: "
                "the operator applies it as the rollout reaches them"
            )
        if wait_s is None:
            if output != "text":
                emit_json(wire.PendingPlanList.of(plans))
            else:
                click.echo(f"follow it: kubectl extschema history {escape(name)} -n {escape(ns)}")
            return
        _wait(name, ns, wait_s, output, lambda: emit_json(wire.PendingPlanList.of(plans)))
        return

    for _attempt in range(5):
        body, _, ns = _read(name, namespace, output)
        where = f"{ns}/{name}"
        if target is not None:
            _one_target(body, target, where, name, output)
        pending, why = _pending(body)
        if pending is None:
            _fail(NOTHING_PENDING, where, why, output)
        if plan_hash is not None and plan_hash != pending.hash:
            message = (
                f"the plan waiting for approval is {pending.hash}, not {plan_hash}: the spec or the database changed "
                f"since {plan_hash} was reviewed; review this one (`kubectl extschema plan {name}`)"
            )
            _fail(OTHER_HASH, where, message, output)
        if print_patch:
            if output != "text":
                emit_json(wire.PlanList.of([pending]))
            else:
                click.echo(_patch_text(name, ns, pending), nl=False)
            return
        if output == "text":
            _show(pending, where, body)
        version = body["metadata"]["resourceVersion"]
        try:
            kubewait.patch(
                name, ns, {"metadata": {"resourceVersion": version}, "spec": {"approvedPlanHash": pending.hash}}
            )
        except kubewait.Changed:
            # Often only the status moved on (the operator's own write): approve if the plan is still this one.
            if plan_hash is None:
                plan_hash = pending.hash
            continue
        except kubewait.NotFound:
            _fail(NOT_FOUND, where, "it was deleted meanwhile", output)
        except kubewait.ApiError as error:
            _fail(NO_API, where, str(error), output, EXIT_DATABASE)
        break
    else:
        _fail(PLAN_CHANGED, name, "the resource kept changing while it was approved: try again", output)
    if output == "text":
        click.echo(f"approved plan {pending.hash}: the operator applies it now")
    if wait_s is None:
        if output != "text":
            emit_json(wire.PlanList.of([pending]))
        else:
            click.echo(f"follow it: kubectl wait --for=condition=Ready exts/{escape(name)} -n {escape(ns)}")
        return
    done = pending
    _wait(name, ns, wait_s, output, lambda: emit_json(wire.PlanList.of([done])))


def _wait(name: str, ns: str, wait_s: int, output: str, emit: Callable[[], None]) -> None:
    """approve --wait: until Ready (the whole resource: every target with spec.targetSelector)."""
    from extschema import kubewait

    waited = kubewait.wait(
        name, ns, wait_s, lambda n, text: click.echo(kubewait.line(n, name, text)) if output == "text" else None
    )
    if waited.end != "ready":
        code = kubewait.STALLED if waited.end == "stalled" else kubewait.TIMED_OUT
        _fail(
            code,
            f"{ns}/{name}",
            f"approved, but not Ready: {waited.text}",
            output,
            EXIT_INVALID if waited.end == "stalled" else 4,
        )
    if output != "text":
        emit()


@main.command("history")
@click.argument("name")
@namespace_option
@output_option
def history(name: str, namespace: str | None, output: str) -> None:
    """What the operator reports about NAME: its conditions, its last migration and its recent events.

    The whole migration history lives in the database: `extschema history PLUGIN -d URL`.
    """
    body, events, ns = _read(name, namespace, output, events=True)
    view = wire.ResourceHistoryView.of(body, events)
    if output != "text":
        emit_json(wire.ResourceHistoryList.of([view]))
        return
    applied = f", applied {escape(view.applied_version)}" if view.applied_version else ", nothing applied yet"
    click.echo(
        f"extensionschema {escape(ns)}/{escape(name)}: plugin {escape(view.plugin_id)} {escape(view.version)}{applied}"
        f" (generation {view.generation}, observed {view.observed_generation})"
    )
    rows: list[tuple[list[str], list[str]]] = [
        (
            [
                escape(c.type),
                escape(c.status),
                escape(c.reason or "-"),
                escape(c.since or "-"),
                escape(c.message or ""),
            ],
            [],
        )
        for c in view.conditions
    ]
    print_table(("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"), rows)
    if view.rollout is not None:
        paused = f" at {escape(view.rollout.paused_at)}" if view.rollout.paused_at else ""
        click.echo(f"rollout {escape(view.rollout.phase)}{paused}: {escape(view.rollout.message or '')}".rstrip(": "))
    if _fleet(body) or len(view.targets) > 1:
        click.echo(f"targets ready: {escape(view.targets_ready or '-')}")
        rows = [
            (
                [
                    escape(t.name),
                    escape(t.ready),
                    escape(t.reason or "-"),
                    escape(t.applied_version or "-"),
                    escape(t.pending_plan or "-"),
                    escape(t.message or ""),
                ],
                [],
            )
            for t in view.targets
        ]
        print_table(("TARGET", "READY", "REASON", "APPLIED", "PENDING", "MESSAGE"), rows)
    last = view.last_migration
    if last is not None:
        took = f" in {last.duration_ms:,} ms" if last.duration_ms is not None else ""
        click.echo(
            f"last migration {escape(last.id or '-')}: version {escape(last.version or '-')}{took}"
            f" at {escape(last.time or '-')}"
        )
        for change in last.changes:
            click.echo(f"    - {escape(change)}")
    if view.events:
        rows = [
            ([escape(e.last_seen or "-"), escape(e.type), escape(e.reason), f"{e.count:,}", escape(e.message)], [])
            for e in view.events
        ]
        print_table(("LAST SEEN", "TYPE", "REASON", "COUNT", "MESSAGE"), rows)
    click.echo(f"every migration: extschema history {escape(view.plugin_id)} -d URL (the registry in the database)")


EXAMPLES: dict[str, tuple[str, ...]] = {
    "plan": ("kubectl extschema plan orders -n plugins", "kubectl extschema plan orders -o json"),
    "approve": (
        "kubectl extschema approve orders -n plugins",
        "kubectl extschema approve orders --target eu-1   # targetSelector: the plan target eu-1 waits with",
        "kubectl extschema approve orders 3c1f0a9e7d2b4c65 --wait 300",
        "kubectl extschema approve orders 3c1f0a9e7d2b4c65 --print-patch   # GitOps: commit it instead",
    ),
    "history": ("kubectl extschema history orders -n plugins", "kubectl extschema history orders -o yaml"),
}
attach_examples(main, EXAMPLES)


def run(argv: Sequence[str] | None = None) -> None:
    """The ``kubectl-extschema`` program (kubectl finds it on PATH and calls it for ``kubectl extschema``)."""
    main(args=argv, prog_name="kubectl extschema")
