"""``kubectl extschema``: the kubectl plugin (the ``kubectl-extschema`` program) for reviewing and approving plans.

``plan NAME`` shows the plan an ExtensionSchema waits with (``status.pendingPlan``), ``approve NAME [HASH]`` shows it
and sets ``spec.approvedPlanHash`` (or prints the patch for Git), ``history NAME`` what the operator reports: the
conditions, the last migration and the resource's events. It talks to the API server like ``extschema wait``
(:mod:`extschema.kubewait`: the pod's ServiceAccount, else ``$KUBECONFIG``), never to the database.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import click

from extschema import __version__, wire
from extschema.cli.base import EXIT_DATABASE, EXIT_INVALID, emit_json, output_option, print_table
from extschema.cli.shells import attach_examples
from extschema.problems import Kind, Problem, escape

#: The problem codes of the plugin (docs/errors.md).
NOT_FOUND, NOTHING_PENDING, OTHER_HASH, PLAN_CHANGED, NO_API = "ES610", "ES611", "ES612", "ES613", "ES614"

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

    Exit 0 whether or not a plan waits (text says which; -o json lists it, or nothing).
    """
    body, _, ns = _read(name, namespace, output)
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


@main.command("approve")
@click.argument("name")
@click.argument("plan_hash", metavar="[HASH]", required=False)
@namespace_option
@click.option(
    "--print-patch",
    is_flag=True,
    help="Change nothing: print the `kubectl patch` command and the spec lines to commit (GitOps).",
)
@click.option("--wait", "wait_s", type=click.IntRange(min=1), metavar="SECONDS", help="Then wait until Ready.")
@output_option
def approve(
    name: str, plan_hash: str | None, namespace: str | None, print_patch: bool, wait_s: int | None, output: str
) -> None:
    """Show the plan NAME waits with and approve it: set spec.approvedPlanHash to its hash.

    With HASH (from `plan`, a review, a pull request), only that plan is approved: a different pending plan is
    refused (ES612). The patch is conditional on the resource as shown: when the plan changed meanwhile, the
    new one is refused (ES612), never approved unseen. A resource synced from Git (Argo CD, Flux) gets its spec
    back on the next sync: use --print-patch and commit the hash instead.
    """
    from extschema import kubewait

    for _attempt in range(5):
        body, _, ns = _read(name, namespace, output)
        where = f"{ns}/{name}"
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
    waited = kubewait.wait(
        name, ns, wait_s, lambda n, text: click.echo(kubewait.line(n, name, text)) if output == "text" else None
    )
    if waited.end != "ready":
        code = kubewait.STALLED if waited.end == "stalled" else kubewait.TIMED_OUT
        _fail(
            code,
            where,
            f"approved, but not Ready: {waited.text}",
            output,
            EXIT_INVALID if waited.end == "stalled" else 4,
        )
    if output != "text":
        emit_json(wire.PlanList.of([pending]))


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
        "kubectl extschema approve orders 3c1f0a9e7d2b4c65 --wait 300",
        "kubectl extschema approve orders 3c1f0a9e7d2b4c65 --print-patch   # GitOps: commit it instead",
    ),
    "history": ("kubectl extschema history orders -n plugins", "kubectl extschema history orders -o yaml"),
}
attach_examples(main, EXAMPLES)


def run(argv: Sequence[str] | None = None) -> None:
    """The ``kubectl-extschema`` program (kubectl finds it on PATH and calls it for ``kubectl extschema``)."""
    main(args=argv, prog_name="kubectl extschema")
