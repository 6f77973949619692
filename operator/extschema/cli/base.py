"""Shared parts of the command line: the group, options, exit codes and the one way to report."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from extschema import __version__, limits, wire
from extschema.problems import Kind, Problem, ProblemError, escape

if TYPE_CHECKING:
    from extschema.engine import ApplyResult, Engine
    from extschema.reconcile import MigrationEvent, OnEvent

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_DATABASE = 0, 1, 2, 3
EXIT_TIMEOUT = 4
#: ``plan --detailed-exitcode`` (and ``diff``): changes apply would make as they are, or a plan waiting
#: for an approval; 0 when nothing would change. Apart from the failures' 1-4.
EXIT_PLAN_CHANGES, EXIT_PLAN_NEEDS_APPROVAL = 10, 11
#: Every kind of failure has its exit code (a test checks none is missing).
EXIT_BY_KIND: dict[Kind, int] = {
    Kind.INVALID: EXIT_INVALID,
    Kind.CONFLICT: EXIT_INVALID,
    Kind.REFUSED: EXIT_INVALID,
    Kind.DEPENDENCY: EXIT_INVALID,
    Kind.APPROVAL: EXIT_INVALID,
    Kind.USAGE: EXIT_USAGE,
    Kind.DATABASE: EXIT_DATABASE,
    Kind.RETRYABLE: EXIT_DATABASE,
    Kind.UNREACHABLE: EXIT_DATABASE,
}

database_option = click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    help="Database URL (default: $EXTSCHEMA_DATABASE_URL, else sqlite:///extschema.db).",
)
output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="Human-readable text, or JSON / YAML for scripts (one envelope, docs/json-output.md).",
)
paths_argument = click.argument("paths", nargs=-1, required=True, type=click.Path())


def parse_duration_option(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A timeout option (``500ms``, ``5s``, ``2m``) in milliseconds."""
    parsed = limits.parse_duration_ms(value)
    if parsed is None or parsed <= 0:
        raise click.BadParameter(f"{value!r} is not a duration such as 500ms, 5s or 2m")
    return parsed


lock_timeout_option = click.option(
    "--lock-timeout",
    "lock_timeout_ms",
    default=f"{limits.DEFAULT_LOCK_TIMEOUT_MS // 1000}s",
    show_default=True,
    callback=parse_duration_option,
    help="Wait at most this long for a table lock, then retry (a few times, with backoff).",
)
statement_timeout_option = click.option(
    "--statement-timeout",
    "statement_timeout_ms",
    default=f"{limits.DEFAULT_STATEMENT_TIMEOUT_MS // 1000}s",
    show_default=True,
    callback=parse_duration_option,
    help="No statement in a migration's transaction runs longer (concurrent index builds are not cut).",
)


def plan_exit_code(plans: Iterable[wire.PlanView], approved: Collection[str] = ()) -> int:
    """The exit code of ``plan --detailed-exitcode`` for *plans*: :data:`EXIT_PLAN_NEEDS_APPROVAL` when
    one needs an approval its hash does not have in *approved* (the specs' ``approvedPlanHash``), or
    holds a step apply refuses whatever is approved (ES309); else :data:`EXIT_PLAN_CHANGES` when one
    changes anything; else :data:`EXIT_OK`."""
    code = EXIT_OK
    for plan in plans:
        if not plan.ops:
            continue
        if (plan.needs_approval and plan.hash not in approved) or any(w.code == "ES309" for w in plan.warnings):
            return EXIT_PLAN_NEEDS_APPROVAL
        code = EXIT_PLAN_CHANGES
    return code


#: What a plan's hash looks like (``extschema plan``): 16 lower-case hex digits.
PLAN_HASH_LENGTH = 16


def check_approvals(approvals: Iterable[str], option: str = "--approve") -> None:
    """ES320 (usage) for an ``--approve`` value that cannot be a plan's hash: mistyped or cut when copied."""
    problems = [
        Problem(
            "ES320",
            option,
            f"{option} {given!r} is not a plan hash: a hash is {PLAN_HASH_LENGTH} hex digits (0-9, a-f), as "
            "`extschema plan` prints it; copy it again from the plan you reviewed",
        )
        for given in approvals
        if len(given) != PLAN_HASH_LENGTH or any(c not in "0123456789abcdef" for c in given)
    ]
    if problems:
        raise ProblemError(problems, Kind.USAGE)


def emit_json(envelope: wire.Envelope[Any]) -> None:
    """The one envelope a command prints (docs/json-output.md): JSON, or YAML with ``-o yaml``."""
    context = click.get_current_context(silent=True)
    if context is not None and context.params.get("output") == "yaml":
        import yaml  # only when asked for: start-up is part of the interface

        click.echo(yaml.safe_dump(envelope.dump(), sort_keys=False, allow_unicode=True), nl=False)
        return
    click.echo(json.dumps(envelope.dump(), indent=2))


def terminal_sql(script: str) -> str:
    """SQL as written, unless it goes to a terminal: then control characters are escaped too."""
    return escape(script, newlines=True) if sys.stdout.isatty() else script


def exit_with(error: ProblemError, output: str) -> NoReturn:
    if output != "text":
        pending: Sequence[wire.PlanView] = ()
        if error.kind is Kind.APPROVAL:  # raised by reconcile only: importing it here costs nothing more
            from extschema.reconcile import ApprovalRequired

            if isinstance(error, ApprovalRequired):
                pending = error.pending
        emit_json(wire.Failure.because(error.kind, error.problems, pending))
    else:
        for problem in error.problems:
            click.echo(problem.render(), err=True)
    sys.exit(EXIT_BY_KIND[error.kind])


@contextlib.contextmanager
def reported(output: str = "text") -> Iterator[None]:
    """Turn every ProblemError into the contract's output and exit code."""
    try:
        yield
    except ProblemError as error:
        exit_with(error, output)


@contextlib.contextmanager
def open_engine(
    database: str | None, allow_raw_sql: bool = False, timeouts: tuple[int, int] | None = None
) -> Iterator[Engine]:
    """The engine of *database*, with (lock, statement) *timeouts* in milliseconds where given."""
    from extschema import limits, reconcile
    from extschema.engine import Engine

    lock_ms, statement_ms = timeouts or (limits.DEFAULT_LOCK_TIMEOUT_MS, limits.DEFAULT_STATEMENT_TIMEOUT_MS)
    engine = Engine(
        reconcile.database_url(database),
        lock_timeout_ms=lock_ms,
        statement_timeout_ms=statement_ms,
        allow_raw_sql=allow_raw_sql,
    )
    try:
        yield engine
    finally:
        engine.close()


def progress_printer(output: str) -> OnEvent:
    """Migration events as the progress lines of text output (stderr); JSON output stays quiet."""
    from extschema import reconcile

    def show(event: MigrationEvent) -> None:
        if output == "text" and isinstance(event, reconcile.MigrationStarted):
            click.echo(
                f"[{event.number}/{event.total}] {event.plugin_id} {escape(event.version)} ({escape(event.file)})",
                err=True,
            )

    return show


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="extschema")
def main() -> None:
    """Let plugins extend the application's database safely.

    Schemas are ExtensionSchema YAML documents (the same you would kubectl apply).
    """


allow_raw_sql_option = click.option(
    "--allow-raw-sql",
    is_flag=True,
    help="Let the schemas' raw SQL steps (spec.migrations) run on this database (refused with ES313 otherwise).",
)


def print_results(results: Sequence[ApplyResult], output: str, verb: str = "executed") -> None:
    if output != "text":
        emit_json(wire.AppliedList.of(wire.AppliedView.of(r) for r in results))
        return
    for result in results:
        for warning in result.warnings:
            click.echo(f"warning: {warning.render()}", err=True)
        if not result.changed:
            drifted = any(w.code == "ES503" for w in result.warnings)
            click.echo(f"{escape(result.plugin_id)}: {'spec unchanged, database drifted' if drifted else 'unchanged'}")
            continue
        click.echo(f"{escape(result.plugin_id)}: migration {result.migration_id} {verb} in {result.duration_ms} ms")
        for line in result.description:
            click.echo(f"  - {escape(line)}")
