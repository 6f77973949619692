"""Shared parts of the command line: the group, options, exit codes and the one way to report."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from extschema import __version__, limits, wire
from extschema.problems import Kind, Problem, ProblemError, escape

if TYPE_CHECKING:
    from extschema.engine import ApplyResult, Engine
    from extschema.loading import Documents, Loaded
    from extschema.reconcile import MigrationEvent, OnEvent

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_DATABASE = 0, 1, 2, 3
EXIT_TIMEOUT = 4
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
_RECURSIVE = "extschema.recursive"


def _remember_recursive(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.meta[_RECURSIVE] = value


#: ``-R``: every command taking PATHs reads the YAML files of directories' subdirectories too.
recursive_option = click.option(
    "--recursive",
    "-R",
    is_flag=True,
    expose_value=False,
    callback=_remember_recursive,
    help="Read the *.yaml/*.yml files of directories' subdirectories too (hidden ones left out).",
)


def paths_argument(command: Any) -> Any:
    """PATHs (files or directories of schema and DatabaseTarget documents) and ``-R``."""
    return recursive_option(click.argument("paths", nargs=-1, required=True, type=click.Path())(command))


def note(message: str) -> None:
    """A remark on stderr that changes nothing (a skipped document, the database chosen for you)."""
    click.echo(f"note: {escape(message)}", err=True)


def read_documents(paths: Sequence[str]) -> Documents:
    """Every document of *paths* (``-R`` as given), the skipped ones noted on stderr."""
    from extschema import loading

    context = click.get_current_context(silent=True)
    found = loading.read(paths, bool(context is not None and context.meta.get(_RECURSIVE)))
    for skipped in found.skipped:
        note(skipped.note())
    return found


def load_schemas(paths: Sequence[str], applying: bool = False) -> list[Loaded]:
    """The ExtensionSchemas of *paths*, checked as the operator would (their DatabaseTargets too); raises
    with every problem. Schemas for different databases (spec.targetRef) are refused together (ES019).
    *applying*: suspended schemas (spec.suspend: true) are left out, with a note."""
    from extschema import loading, model

    found = read_documents(paths)
    problems = loading.check(found, paths)
    if not found.schemas and not problems:
        text = f"no {model.KIND} document (apiVersion {model.API_VERSION}) found"
        problems.append(Problem("ES004", "", text, file=", ".join(paths)))
    problems += loading.one_target(found.schemas)
    if problems:
        raise ProblemError(problems, kind=Kind.INVALID)
    for warning in loading.target_warnings(found):
        click.echo(f"warning: {warning.render()}", err=True)
    for item in found.schemas:
        if item.spec.suspend:
            done = "skipped" if applying else "planned, but apply skips it"
            note(
                f"{item.file}: {item.spec.plugin_id} {done}: spec.suspend is true (the operator leaves it alone "
                "too); set it to false to apply it"
            )
    return [item for item in found.schemas if not (applying and item.spec.suspend)]


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
    url = reconcile.database_url(database)
    if database is None and _writes() and url == reconcile.DEFAULT_DATABASE_URL:
        note(f"no --database and no $EXTSCHEMA_DATABASE_URL: using {url} (the file extschema.db here)")
    engine = Engine(
        url,
        lock_timeout_ms=lock_ms,
        statement_timeout_ms=statement_ms,
        allow_raw_sql=allow_raw_sql,
    )
    try:
        yield engine
    finally:
        engine.close()


#: Commands that change the database (``drift`` only with ``--repair``).
_WRITING = frozenset({"apply", "delete", "rollback", "restore", "repair", "prune"})


def _writes() -> bool:
    context = click.get_current_context(silent=True)
    if context is None:
        return False
    return context.info_name in _WRITING or (context.info_name == "drift" and bool(context.params.get("repair")))


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
