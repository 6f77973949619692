"""Shared parts of the command line: the group, options, exit codes and the one way to report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from extschema import __version__, limits
from extschema.problems import Kind, Problem, ProblemError, escape

if TYPE_CHECKING:
    from extschema import wire
    from extschema.engine import ApplyResult, Engine
    from extschema.loading import Documents, Loaded
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
no_headers_option = click.option(
    "--no-headers",
    is_flag=True,
    help="Leave out the header row of the table (text output), for scripts reading columns.",
)


def print_table(
    headers: Sequence[str], rows: Sequence[tuple[Sequence[str], Sequence[str]]], no_headers: bool = False
) -> None:
    """Text output as a table: a header row (unless *no_headers*), then each row's cells (already escaped)
    aligned in columns, each followed by its detail lines (indented)."""
    widths = [max([len(h), *(len(cells[i]) for cells, _ in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    if not no_headers:
        click.echo(line(headers))
    for cells, details in rows:
        click.echo(line(cells))
        for detail in details:
            click.echo(f"    {detail}")


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


def plan_exit_code(plans: Iterable[wire.PlanView], approved: Collection[str] = ()) -> int:
    """The exit code of ``plan --detailed-exitcode`` for *plans*: :data:`EXIT_PLAN_NEEDS_APPROVAL` when
    one needs an approval its hash does not have in *approved* (the specs' ``approved_hashes()``), or
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
    from extschema import wire

    applied = getattr(error, "applied", None)  # reconcile.PartiallyApplied: what committed before the failure
    if applied is not None:
        if output != "text":
            views = [wire.AppliedView.of(r) for r in applied]
            emit_json(wire.AppliedList.of(views, error.problems, ok=False))
        else:
            print_results(applied, output)
            for problem in error.problems:
                click.echo(problem.render(), err=True)
        sys.exit(EXIT_BY_KIND[error.kind])
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
        lock_timeout_setting="--lock-timeout" if timeouts else "the lock timeout",
    )
    try:
        yield engine
    finally:
        engine.close()


@contextlib.contextmanager
def showing_progress(output: str) -> Iterator[ProgressPrinter]:
    """Inside the block, the migrations this command runs print their steps as they go (stderr)."""
    from extschema import reconcile

    show = ProgressPrinter(output)
    with reconcile.listening(show, count_rows=show.count_rows):
        yield show


class ProgressPrinter:
    """Migration events on stderr, as they happen: text lines (each spec, each step with its time, the
    after phase, lock waits), or with ``-o json``/``yaml`` one JSON object per line (docs/json-output.md),
    so that stdout keeps the one envelope. On a terminal (*terminal*, default: stderr is a TTY) a
    running step's line is shown while it runs, with the rows it copies (counted first: *count_rows*),
    and rewritten once it ends; never in output that is not a terminal."""

    def __init__(self, output: str, terminal: bool | None = None) -> None:
        self.output = output
        self.live = output == "text" and (sys.stderr.isatty() if terminal is None else terminal)
        self.count_rows = self.live
        self._open_line = False

    def __call__(self, event: MigrationEvent) -> None:
        from extschema import reconcile

        if isinstance(event, reconcile.MigrationLocked):
            return  # the operator's check point, nothing to show
        if self.output != "text":
            click.echo(json.dumps(event_json(event)), err=True)
            return
        line = _event_text(event, reconcile)
        if isinstance(event, reconcile.StepStarted):
            if self.live and line is not None:  # shown while it runs, rewritten when it ends
                click.echo(f"{line} ...", err=True, nl=False)
                self._open_line = True
            return
        if line is None:
            return
        if self._open_line:
            click.echo("\r\x1b[K", err=True, nl=False)
            self._open_line = False
        click.echo(line, err=True)


#: Commands that change the database (``drift`` only with ``--repair``).
_WRITING = frozenset({"apply", "delete", "rollback", "restore", "repair", "prune"})


def _writes() -> bool:
    context = click.get_current_context(silent=True)
    if context is None:
        return False
    return context.info_name in _WRITING or (context.info_name == "drift" and bool(context.params.get("repair")))


def progress_printer(output: str) -> OnEvent:
    """The CLI's hook for migration events (:class:`ProgressPrinter`)."""
    return ProgressPrinter(output)


def _event_text(event: MigrationEvent, reconcile: Any) -> str | None:
    """One event as a line of text output (None: nothing to print for it)."""
    if isinstance(event, reconcile.MigrationStarted):
        return f"[{event.number}/{event.total}] {event.plugin_id} {escape(event.version)} ({escape(event.file)})"
    if isinstance(event, reconcile.StepStarted | reconcile.StepFinished):
        where = {"before": "before the transaction: ", "after": "after COMMIT: "}.get(event.phase, "")
        counted = "" if event.rows is None else f", {event.rows:,} rows"
        line = f"  {where}step {event.number}/{event.total} {escape(event.description)}{counted}"
        if isinstance(event, reconcile.StepFinished):
            return f"{line}: {event.duration_ms} ms"
        return line
    if isinstance(event, reconcile.LockWaiting):
        return f"  {escape(event.message)} ({event.waited_s:.0f} s so far)"
    return None


def event_json(event: MigrationEvent) -> dict[str, Any]:
    """One event as a JSON line: ``event`` names it, keys are camelCase (docs/json-output.md)."""
    from extschema import reconcile, wire

    name = type(event).__name__
    if isinstance(event, reconcile.MigrationFinished):
        result = wire.AppliedView.of(event.result).dump()
        return {"event": name, "number": event.number, "total": event.total, **result}
    if isinstance(event, reconcile.MigrationFailed):
        problems = [wire.ProblemView.of(p).dump() for p in event.error.problems]
        return {
            "event": name,
            "pluginId": event.plugin_id,
            "number": event.number,
            "total": event.total,
            "problems": problems,
        }
    if isinstance(event, reconcile.LockWaiting):
        blockers = [
            {
                "pid": b.pid,
                "application": b.application,
                "state": b.state,
                "ageSeconds": round(b.age_s, 1),
                "query": b.query,
            }
            for b in event.blockers
        ]
        return {"event": name, "pluginId": event.plugin_id, "waitedSeconds": round(event.waited_s, 1),
                "blockers": blockers, "message": event.message}  # fmt: skip
    fields = dataclasses.asdict(event)
    return {"event": name, **{_camel(k): v for k, v in fields.items()}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="extschema")
def main() -> None:
    """Let plugins extend the application's database safely.

    Schemas are ExtensionSchema YAML documents (the same you would kubectl apply).
    """


def detailed_exitcode_option(changes: str) -> Callable[[Any], Any]:
    """``--detailed-exitcode`` of plan and diff (one decision: :func:`plan_exit_code`); *changes* says what
    exit 10 means for the command."""
    return click.option(
        "--detailed-exitcode",
        is_flag=True,
        help=f"Exit {EXIT_OK} when nothing would change, {EXIT_PLAN_CHANGES} when {changes}, "
        f"{EXIT_PLAN_NEEDS_APPROVAL} when a plan needs an approval (failures keep 1-4).",
    )


lint_ignore_option = click.option(
    "--lint-ignore",
    "lint_ignore",
    multiple=True,
    metavar="RULE",
    help="Do not report this squawk rule (PostgreSQL); repeatable. For good: the spec's lint.ignore.",
)
allow_raw_sql_option = click.option(
    "--allow-raw-sql",
    is_flag=True,
    help="Let the schemas' raw SQL steps (spec.migrations) run on this database (refused with ES313 otherwise).",
)


def print_results(results: Sequence[ApplyResult], output: str, verb: str = "executed") -> None:
    if output != "text":
        from extschema import wire  # the views only for JSON/YAML: text starts faster

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
        if result.after is not None:
            after = result.after
            click.echo(f"  then, after COMMIT: migration {after.migration_id} (finish) in {after.duration_ms} ms")
            for line in after.description:
                click.echo(f"  - {escape(line)}")
