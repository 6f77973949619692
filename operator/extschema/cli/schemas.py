"""Commands over schema files: validate, plan, apply, conflicts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from extschema import wire
from extschema.cli import plan_text
from extschema.cli.base import (
    allow_raw_sql_option,
    check_approvals,
    database_option,
    detailed_exitcode_option,
    emit_json,
    lint_ignore_option,
    load_schemas,
    lock_timeout_option,
    main,
    open_engine,
    output_option,
    paths_argument,
    plan_exit_code,
    print_results,
    read_documents,
    reported,
    showing_progress,
    statement_timeout_option,
)
from extschema.problems import escape

if TYPE_CHECKING:
    from extschema.loading import Loaded


@main.command()
@paths_argument
@output_option
@click.option(
    "--each-file",
    is_flag=True,
    help="Check every file on its own (several versions of one plugin, like examples/evolution/), "
    "not as one set of documents applied together.",
)
def validate(paths: Sequence[str], output: str, each_file: bool) -> None:
    """Check ExtensionSchema and DatabaseTarget documents as the operator would; one line per problem:
    FILE:LINE:COL: PATH: CODE: message. Documents of other kinds are skipped with a note on stderr."""
    from extschema import loading
    from extschema.problems import Kind, ProblemError

    with reported(output):
        found = read_documents(paths)
        problems = loading.check(found, paths, each_file)
        if problems:
            raise ProblemError(problems, kind=Kind.INVALID)
        warnings = loading.target_warnings(found)
        if output != "text":
            targets = (
                wire.SchemaView(file=t.file, name=t.document.owner, plugin_id=None, version=None, kind="DatabaseTarget")
                for t in found.targets
            )
            emit_json(wire.SchemaList.of([*(_summary(item) for item in found.schemas), *targets], warnings))
            return
        for warning in warnings:
            click.echo(f"warning: {warning.render()}", err=True)
        for item in found.schemas:
            suspended = " (suspended: apply skips it)" if item.spec.suspend else ""
            click.echo(f"{escape(item.file)}: {item.spec.plugin_id} {escape(item.spec.version)}: valid{suspended}")
        for target in found.targets:
            click.echo(f"{escape(target.file)}: DatabaseTarget {escape(target.name)}: valid")


def _summary(item: Loaded) -> wire.SchemaView:
    return wire.SchemaView(file=item.file, name=item.owner, plugin_id=item.spec.plugin_id, version=item.spec.version)


@main.command()
@paths_argument
@database_option
@output_option
@allow_raw_sql_option
@click.option("--summary", is_flag=True, help="The steps, their classes and data counts and the hash; no SQL.")
@detailed_exitcode_option("apply would change the database as it is")
@lint_ignore_option
def plan(
    paths: Sequence[str],
    database: str | None,
    output: str,
    allow_raw_sql: bool,
    summary: bool,
    detailed_exitcode: bool,
    lint_ignore: Sequence[str],
) -> None:
    """Print the SQL that apply would run, each step's class and data counts, and the plan's hash; runs nothing.

    Steps are numbered, and so are statements, each under the step it carries out. A plan whose class
    is rewriting or destructive runs only when approved: `apply --approve HASH`.
    """
    from extschema import reconcile

    with reported(output), open_engine(database, allow_raw_sql) as engine:
        proposal = reconcile.propose(engine, load_schemas(paths), lint=True, lint_ignore=lint_ignore)
        views = [item.view() for item in proposal.items]
        if output != "text":
            shown = [v.model_copy(update={"sql": None, "sql_steps": None, "rollback_sql": None}) for v in views]
            emit_json(wire.PlanList.of(shown if summary else views))
        else:
            for item, view in zip(proposal.items, views, strict=True):
                plan_text.show(item, view, summary)
    if detailed_exitcode:
        approved = {h for item in proposal.items for h in item.loaded.spec.approved_hashes()}
        sys.exit(plan_exit_code(views, approved))


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

    Plans that rewrite tables or drop data run only with --approve HASH (or spec.approvedPlanHash(es)).
    """
    from extschema import reconcile

    with reported(output):
        check_approvals(approvals)
    with reported(output), open_engine(database, allow_raw_sql, (lock_timeout_ms, statement_timeout_ms)) as engine:
        loaded = load_schemas(paths, applying=True)
        with showing_progress(output) as show:
            results = reconcile.reconcile(engine, loaded, show, approvals=approvals)
        print_results(reconcile.with_drift(engine, results), output)


@main.command()
@paths_argument
@database_option
@output_option
def conflicts(paths: Sequence[str], database: str | None, output: str) -> None:
    """Report conflicts of schema files with the registry, the core tables and each other."""
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        loaded = reconcile.check(engine, load_schemas(paths))
        if output != "text":
            emit_json(wire.ConflictList.of([]))
        else:
            click.echo(f"no conflicts among {len(loaded)} schema(s) and the registry")
