"""Commands over schema files: validate, plan, apply, conflicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from extschema import wire
from extschema.cli.base import (
    ProgressPrinter,
    allow_raw_sql_option,
    database_option,
    emit_json,
    lock_timeout_option,
    main,
    open_engine,
    output_option,
    paths_argument,
    print_results,
    reported,
    statement_timeout_option,
    terminal_sql,
)
from extschema.problems import escape

if TYPE_CHECKING:
    from extschema.loading import Loaded
    from extschema.reconcile import Proposal


@main.command()
@paths_argument
@output_option
def validate(paths: Sequence[str], output: str) -> None:
    """Check schema files; one line per problem: FILE: PATH: CODE: message."""
    from extschema import loading

    with reported(output):
        loaded = loading.load(paths)
        if output != "text":
            emit_json(wire.SchemaList.of(_summary(item) for item in loaded))
        else:
            for item in loaded:
                click.echo(f"{escape(item.file)}: {item.spec.plugin_id} {escape(item.spec.version)}: valid")


def _summary(item: Loaded) -> wire.SchemaView:
    return wire.SchemaView(file=item.file, name=item.owner, plugin_id=item.spec.plugin_id, version=item.spec.version)


@main.command()
@paths_argument
@database_option
@output_option
@allow_raw_sql_option
def plan(paths: Sequence[str], database: str | None, output: str, allow_raw_sql: bool) -> None:
    """Print the SQL that apply would run, each step's class and data counts, and the plan's hash; runs nothing.

    A plan whose class is rewriting or destructive runs only when approved: `apply --approve HASH`.
    """
    from extschema import reconcile

    with reported(output), open_engine(database, allow_raw_sql) as engine:
        proposal = reconcile.propose(engine, reconcile.load(paths), lint=True)
        views = [item.view() for item in proposal.items]
        if output != "text":
            emit_json(wire.PlanList.of(views))
            return
        for item, view in zip(proposal.items, views, strict=True):
            _plan_text(item, view)


def _plan_text(item: Proposal.Item, view: wire.PlanView) -> None:
    reviewed, rendered, loaded = item.reviewed, item.preview, item.loaded
    for warning in item.warnings():
        click.echo(f"warning: {warning.render()}", err=True)
    click.echo(f"-- {loaded.spec.plugin_id} {escape(loaded.spec.version)} ({escape(loaded.file)})")
    if item.adopts is not None:
        click.echo(f"-- {escape(item.adopts)}")
    if reviewed.planned.plan.empty:
        click.echo("-- no changes\n")
        return
    approval = f", needs approval: apply --approve {reviewed.hash}" if reviewed.needs_approval else ""
    click.echo(f"-- plan {reviewed.hash}: {reviewed.op_class}{approval}")
    for op in reviewed.ops:
        click.echo(f"--   {op.classified.op_class:<11} {escape(op.describe())}")
    for finding in view.lint:
        where = f" (statement {finding.statement + 1})" if finding.statement is not None else ""
        click.echo(f"-- lint {finding.level} {escape(finding.rule)}{where}: {escape(finding.message)}")
    click.echo(terminal_sql(rendered.script()))


@main.command()
@paths_argument
@database_option
@output_option
@allow_raw_sql_option
@lock_timeout_option
@statement_timeout_option
@click.option(
    "--approve",
    "approvals",
    multiple=True,
    metavar="HASH",
    help="Approve the plan with this hash (from `extschema plan`), so its rewriting or destructive steps run; "
    "repeatable. A hash that is not the plan's as it is now stops the run.",
)
def apply(
    paths: Sequence[str],
    database: str | None,
    output: str,
    allow_raw_sql: bool,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    approvals: Sequence[str],
) -> None:
    """Apply schemas in dependency order (command-line order does not matter).

    Plans that rewrite tables or drop data run only with --approve HASH (or spec.approvedPlanHash).
    """
    from extschema import reconcile

    with reported(output), open_engine(database, allow_raw_sql, (lock_timeout_ms, statement_timeout_ms)) as engine:
        show = ProgressPrinter(output)
        with reconcile.listening(show, count_rows=show.count_rows):
            results = reconcile.reconcile(engine, reconcile.load(paths), show, approvals=approvals)
        print_results(reconcile.with_drift(engine, results), output)


@main.command()
@paths_argument
@database_option
@output_option
def conflicts(paths: Sequence[str], database: str | None, output: str) -> None:
    """Report conflicts of schema files with the registry, the core tables and each other."""
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        loaded = reconcile.check(engine, reconcile.load(paths))
        if output != "text":
            emit_json(wire.ConflictList.of([]))
        else:
            click.echo(f"no conflicts among {len(loaded)} schema(s) and the registry")
