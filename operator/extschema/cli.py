"""The ``extschema`` command line: a thin shell over :mod:`extschema.reconcile`.

Exit codes are a contract: 0 ok; 1 invalid spec, conflict or refused change; 2 usage error;
3 database unreachable or database error; 4 timed out (``wait``). No user error ends in a traceback.

Start-up is part of the interface: ``--version`` and ``validate`` import neither the engine
(SQLAlchemy, psycopg) nor kopf; commands that need a database import them when they run.
Text written to the terminal is escaped (:func:`~extschema.problems.escape`): file names and
registry values may hold escape sequences.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from extschema import __version__, limits, wire
from extschema.problems import Kind, Problem, ProblemError, escape

if TYPE_CHECKING:
    from extschema.engine import ApplyResult, Engine
    from extschema.loading import Loaded
    from extschema.reconcile import MigrationEvent, OnEvent, Proposal

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
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Human-readable text, or JSON for scripts.",
)
paths_argument = click.argument("paths", nargs=-1, required=True, type=click.Path())


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> int:
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
    callback=_duration,
    help="Wait at most this long for a table lock, then retry (a few times, with backoff).",
)
statement_timeout_option = click.option(
    "--statement-timeout",
    "statement_timeout_ms",
    default=f"{limits.DEFAULT_STATEMENT_TIMEOUT_MS // 1000}s",
    show_default=True,
    callback=_duration,
    help="No statement in a migration's transaction runs longer (concurrent index builds are not cut).",
)


def _emit_json(envelope: wire.Envelope[Any]) -> None:
    """The one JSON a command prints (docs/json-output.md)."""
    click.echo(json.dumps(envelope.dump(), indent=2))


def _sql(script: str) -> str:
    """SQL as written, unless it goes to a terminal: then control characters are escaped too."""
    return escape(script, newlines=True) if sys.stdout.isatty() else script


def _fail(error: ProblemError, output: str) -> NoReturn:
    if output == "json":
        pending: Sequence[wire.PlanView] = ()
        if error.kind is Kind.APPROVAL:  # raised by reconcile only: importing it here costs nothing more
            from extschema.reconcile import ApprovalRequired

            if isinstance(error, ApprovalRequired):
                pending = error.pending
        _emit_json(wire.Failure.because(error.kind, error.problems, pending))
    else:
        for problem in error.problems:
            click.echo(problem.render(), err=True)
    sys.exit(EXIT_BY_KIND[error.kind])


@contextlib.contextmanager
def _reported(output: str = "text") -> Iterator[None]:
    """Turn every ProblemError into the contract's output and exit code."""
    try:
        yield
    except ProblemError as error:
        _fail(error, output)


@contextlib.contextmanager
def _engine(
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


def _progress(output: str) -> OnEvent:
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


@main.command()
@paths_argument
@output_option
def validate(paths: Sequence[str], output: str) -> None:
    """Check schema files; one line per problem: FILE: PATH: CODE: message."""
    from extschema import loading

    with _reported(output):
        loaded = loading.load(paths)
        if output == "json":
            _emit_json(wire.SchemaList.of(_summary(item) for item in loaded))
        else:
            for item in loaded:
                click.echo(f"{escape(item.file)}: {item.spec.plugin_id} {escape(item.spec.version)}: valid")


def _summary(item: Loaded) -> wire.SchemaView:
    return wire.SchemaView(file=item.file, name=item.owner, plugin_id=item.spec.plugin_id, version=item.spec.version)


allow_raw_sql_option = click.option(
    "--allow-raw-sql",
    is_flag=True,
    help="Let the schemas' raw SQL steps (spec.migrations) run on this database (refused with ES313 otherwise).",
)


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

    with _reported(output), _engine(database, allow_raw_sql) as engine:
        proposal = reconcile.propose(engine, reconcile.load(paths), lint=True)
        views = [item.view() for item in proposal.items]
        if output == "json":
            _emit_json(wire.PlanList.of(views))
            return
        for item, view in zip(proposal.items, views, strict=True):
            _plan_text(item, view)


def _plan_text(item: Proposal.Item, view: wire.PlanView) -> None:
    reviewed, rendered, loaded = item.reviewed, item.preview, item.loaded
    for warning in item.warnings():
        click.echo(f"warning: {warning.render()}", err=True)
    click.echo(f"-- {loaded.spec.plugin_id} {escape(loaded.spec.version)} ({escape(loaded.file)})")
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
    click.echo(_sql(rendered.script()))


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

    with _reported(output), _engine(database, allow_raw_sql, (lock_timeout_ms, statement_timeout_ms)) as engine:
        results = reconcile.reconcile(engine, reconcile.load(paths), _progress(output), approvals=approvals)
        _print_results(reconcile.with_drift(engine, results), output)


def _print_results(results: Sequence[ApplyResult], output: str, verb: str = "executed") -> None:
    if output == "json":
        _emit_json(wire.AppliedList.of(wire.AppliedView.of(r) for r in results))
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


@main.command()
@database_option
@output_option
def status(database: str | None, output: str) -> None:
    """Registered plugins: version, state, physical tables."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        rows = [reconcile.plugin_view(engine, r) for r in engine.registrations()]
        if output == "json":
            _emit_json(wire.PluginList.of(rows))
            return
        if not rows:
            click.echo("no plugins registered")
        for row in rows:
            missing = sorted(set(row.expected_tables) - set(row.tables))
            drift = f"  DRIFT: missing {escape(', '.join(missing))}" if missing else ""
            click.echo(
                f"{escape(row.plugin_id):<24} {escape(row.version):<10} {escape(row.status):<8} "
                f"owner={escape(row.owner)}{drift}"
            )
            for table in row.tables:
                click.echo(f"    {escape(table)}")
            if row.error:
                click.echo(f"    last error: {escape(row.error, newlines=True)}")


@main.command()
@click.argument("plugin", required=False)
@database_option
@output_option
@click.option("--sql", is_flag=True, help="Also print each migration's SQL.")
def history(plugin: str | None, database: str | None, output: str, sql: bool) -> None:
    """Migrations with status, checksums and timings."""
    with _reported(output), _engine(database) as engine:
        records = engine.history(plugin)
        if output == "json":
            _emit_json(wire.MigrationList.of(wire.MigrationView.of(r) for r in records))
            return
        if not records:
            click.echo("no migrations recorded")
        for r in records:
            check = "ok" if r.checksum_ok else "MISMATCH"
            started = r.execution_start.isoformat(timespec="seconds") if r.execution_start else "-"
            click.echo(
                f"{escape(r.plugin_id):<24} {r.migration_id} {escape(r.kind):<10} {escape(r.version):<10} "
                f"{escape(r.status):<12} {started} {r.duration_ms if r.duration_ms is not None else '-':>6} ms "
                f"sql={escape(r.checksum_sql[:12])} checksum={check}"
            )
            for line in r.description:
                click.echo(f"    - {escape(line)}")
            if r.error_message:
                click.echo(f"    error: {escape(r.error_message, newlines=True)}")
            if sql:
                click.echo(_sql(r.migration_sql))


@main.command()
@click.argument("plugin")
@database_option
@output_option
@click.option(
    "--approve",
    "approvals",
    multiple=True,
    metavar="HASH",
    help="Approve the rollback with this hash (from its refusal, ES307), so the values and rows it drops go "
    "(backed up first). A hash that is not the rollback's as it is now stops it.",
)
@click.option(
    "--allow-raw-sql",
    is_flag=True,
    help="Let the rollback run the rollbackSql of the raw SQL steps it undoes (refused with ES313 otherwise).",
)
def rollback(plugin: str, database: str | None, output: str, approvals: Sequence[str], allow_raw_sql: bool) -> None:
    """Undo a plugin's latest migration with its recorded rollback SQL (data it drops, and raw rollbackSql,
    need --approve)."""
    from extschema import reconcile

    with _reported(output), _engine(database, allow_raw_sql) as engine:
        _print_results([reconcile.rollback(engine, plugin, approvals)], output, verb="rolled back")


@main.command()
@click.argument("plugin")
@database_option
@output_option
@click.option(
    "--retain", is_flag=True, default=None, help="Keep the tables; only unregister (overrides deletionPolicy)."
)
def delete(plugin: str, database: str | None, output: str, retain: bool | None) -> None:
    """Remove a plugin: drop its objects (data is backed up first) or, with Retain, unregister it."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        _print_results([reconcile.delete(engine, plugin, retain or None)], output)


@main.command()
@paths_argument
@database_option
@output_option
def conflicts(paths: Sequence[str], database: str | None, output: str) -> None:
    """Report conflicts of schema files with the registry, the core tables and each other."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        loaded = reconcile.check(engine, reconcile.load(paths))
        if output == "json":
            _emit_json(wire.ConflictList.of([]))
        else:
            click.echo(f"no conflicts among {len(loaded)} schema(s) and the registry")


@main.command()
@click.argument("plugin")
@database_option
@output_option
def repair(plugin: str, database: str | None, output: str) -> None:
    """Re-record migration checksums after a deliberate edit of the history."""
    with _reported(output), _engine(database) as engine:
        repaired = engine.repair(plugin)
        if output == "json":
            _emit_json(wire.RepairList.of(wire.RepairView(plugin_id=plugin, migration_id=m) for m in repaired))
        else:
            click.echo(f"re-recorded checksums of {', '.join(repaired)}" if repaired else "all checksums already match")


def _age(seconds: float) -> str:
    """A backup's age for people: the two largest units (``3d 4h``, ``12m``)."""
    left, parts = int(seconds), list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def _backup_lines(records: Sequence[wire.BackupView]) -> None:
    for r in records:
        source = r.source_table + (f".{r.source_column}" if r.source_column else " (table)")
        click.echo(
            f"{escape(r.plugin_id):<24} {escape(r.migration_id)} {escape(source):<32} {r.rows:>9} rows "
            f"{_age(r.age_seconds):>7}  {escape(r.backup_table)}"
        )


class _PluginOrCommand(click.Group):
    """``backups [PLUGIN] [-o json]`` lists, ``backups prune ...`` prunes: a first word naming a
    subcommand is that subcommand, any other word is the group's PLUGIN."""

    allow_interspersed_args = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            super().parse_args(ctx, [])  # the group's own parameters at their defaults
            ctx._protected_args, ctx.args = args[:1], args[1:]
            return ctx.args
        return super().parse_args(ctx, args)


@main.group(cls=_PluginOrCommand, invoke_without_command=True)
@click.argument("plugin", required=False)
@database_option
@output_option
@click.pass_context
def backups(ctx: click.Context, plugin: str | None, database: str | None, output: str) -> None:
    """Backups taken before destructive migrations: migration, source, rows, age, backup table."""
    if ctx.invoked_subcommand is not None:
        return
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        at = datetime.datetime.now(datetime.UTC)
        records = [wire.BackupView.of(b, at) for b in reconcile.backups(engine, plugin)]
        if output == "json":
            _emit_json(wire.BackupList.of(records))
            return
        if not records:
            click.echo("no backups recorded")
        _backup_lines(records)


@backups.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE", help="Age such as 30d, 12h, 90m, 2w.")
@click.option("--dry-run", is_flag=True, help="Only list what would be pruned.")
@click.option(
    "--force",
    is_flag=True,
    help="Also prune backups a rollback still needs (it is then refused); never those of a plugin whose "
    "history is not settled (ES317).",
)
@database_option
@output_option
def backups_prune(older_than: str, dry_run: bool, force: bool, database: str | None, output: str) -> None:
    """Drop backup tables older than AGE and forget them (keeping those a rollback still needs, unless --force)."""
    from extschema import reconcile

    try:
        age = reconcile.parse_duration(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    with _reported(output), _engine(database) as engine:
        at = datetime.datetime.now(datetime.UTC)
        pruning = reconcile.prune_backups(engine, age, dry_run, force)
        records = [wire.BackupView.of(b, at, "wouldPrune" if dry_run else "pruned") for b in pruning.pruned]
        kept = [wire.BackupView.of(b, at, "kept") for b in pruning.kept]
        if output == "json":
            _emit_json(wire.BackupList.of([*records, *kept], pruning.unsettled))
            return
        verb = "would prune" if dry_run else "pruned"
        click.echo(f"{verb} {len(records)} backup(s) older than {escape(older_than)}")
        _backup_lines(records)
        if kept:
            why = "a rollback still needs (prune them anyway with --force)"
            if pruning.unsettled:
                why = "a rollback still needs, or of a plugin whose history is not settled (see below)"
            click.echo(f"kept {len(kept)} backup(s) {why}:")
            _backup_lines(kept)
        for problem in pruning.unsettled:
            click.echo(problem.render())


@main.command()
@click.argument("migration_id")
@click.option("--plugin", "-p", metavar="PLUGIN", help="The plugin whose migration it is (when several have that id).")
@database_option
@output_option
def restore(migration_id: str, plugin: str | None, database: str | None, output: str) -> None:
    """Copy a migration's backed-up rows and values back into the plugin's current tables."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        _print_results(reconcile.restore(engine, migration_id, plugin), output)


@main.command()
@click.argument("plugin", required=False)
@click.option(
    "--repair",
    is_flag=True,
    help="Re-create missing tables, columns, indexes and enum types; add the Int range CHECK older SQLite tables lack.",
)
@database_option
@output_option
def drift(plugin: str | None, repair: bool, database: str | None, output: str) -> None:
    """Compare the database's plugin objects with the applied specs; exit 1 when they differ."""
    from extschema import reconcile

    if repair and plugin is None:
        raise click.UsageError("--repair needs the PLUGIN to repair")
    with _reported(output), _engine(database) as engine:
        repaired = reconcile.repair(engine, plugin) if repair and plugin is not None else []
        reports = reconcile.drift(engine, plugin)
        in_sync = all(r.in_sync for r in reports)
        if output == "json":
            _emit_json(
                wire.DriftList.of(wire.DriftView.of(r, repaired if r.plugin_id == plugin else ()) for r in reports)
            )
        else:
            for line in repaired:
                click.echo(f"repaired: {escape(line)}")
            if not reports:
                click.echo("no plugins registered")
            for report in reports:
                click.echo(f"{escape(report.plugin_id)}: {'in sync' if report.in_sync else 'DRIFT'}")
                for difference in report.differences:
                    click.echo(f"  {difference.kind} {escape(difference.object)}: {escape(difference.detail)}")
        if not in_sync:
            sys.exit(EXIT_INVALID)


@main.command("prisma")
@click.argument("paths", nargs=-1, type=click.Path())
@database_option
@click.option(
    "--provider",
    type=click.Choice(["postgresql", "sqlite"]),
    help="The Prisma datasource provider (default: the database's). Without --database: work from PATHs alone.",
)
@click.option("--fragment", is_flag=True, help="Only the plugins' models, with scalar foreign keys to the core tables.")
@click.option(
    "--config",
    "config",
    is_flag=True,
    help="Print the external tables and enums for prisma.config.ts (JSON) instead of the schema.",
)
@output_option
def prisma_schema(
    paths: Sequence[str], database: str | None, provider: str | None, fragment: bool, config: bool, output: str
) -> None:
    """Print a Prisma schema of the active plugins (PATHs: schema files to show as if applied) and the core tables.

    Complete by default: the core tables read from the database, the plugins' models, and the relations
    between them. --fragment prints the plugins' models alone, for a schema folder next to the host's file.
    """
    from extschema import loading
    from extschema import prisma as emitter

    with _reported(output):
        loaded = loading.load(paths) if paths else []
        specs = [item.spec for item in loaded]
        if provider is not None and database is None:
            resolved, core = emitter.offline(specs, fragment, [item.file for item in loaded]), None
            chosen: emitter.Provider = "sqlite" if provider == "sqlite" else "postgresql"
        else:
            with _engine(database) as engine:
                chosen, resolved, core = _prisma_inputs(engine, specs, provider, fragment)
        schema = emitter.emit(resolved, chosen, core, fragment)
        if output == "json":
            view = wire.PrismaSchemaView(provider=chosen, schema_=schema.text, config=schema.config())
            _emit_json(wire.PrismaSchemaList.of([view]))
        else:
            click.echo(json.dumps(schema.config(), indent=2) if config else schema.text, nl=config)


def _prisma_inputs(
    engine: Engine, specs: Sequence[Any], provider: str | None, fragment: bool
) -> tuple[Any, list[Any], Any]:
    """What ``extschema prisma`` reads from the database: the provider, the active plugins (*specs*
    in place of those with their ids) resolved against it, and (complete schemas) the core tables."""
    from extschema import planning, reconcile
    from extschema import prisma as emitter

    backend: emitter.Provider = "postgresql" if engine.backend == "postgresql" else "sqlite"
    if provider is not None and provider != backend:
        where = "--provider"
        message = (
            f"--provider {provider} but the database is {backend}: leave --provider out, "
            f"or give the URL of a {provider} database with --database"
        )
        raise ProblemError.one("ES731", where, message, kind=Kind.USAGE)
    given = {spec.plugin_id for spec in specs}
    active = [r.spec for r in engine.registrations() if r.status == "active" and r.plugin_id not in given]
    plugins = [*active, *specs]
    refs = reconcile.references(engine, plugins)
    resolved = [planning.resolve(spec, refs) for spec in plugins]
    core = None if fragment else reconcile.core_description(engine)
    return backend, resolved, core


@main.command()
@click.option(
    "--lang", type=click.Choice(["python", "typescript", "jsonschema"]), required=True, help="The language to emit."
)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    help="Without PATHs: the active plugins of this registry. With PATHs: resolve their references (core tables, "
    "other plugins) against it.",
)
def types(lang: str, paths: Sequence[str], database: str | None) -> None:
    """Print the row models of plugins: pydantic models (the API's own), TypeScript interfaces or JSON Schema.

    PATHs are schema files or directories; without them, the active plugins of --database (default:
    $EXTSCHEMA_DATABASE_URL, else sqlite:///extschema.db).
    """
    from extschema import typegen

    with _reported():
        resolved = _resolved_for_types(paths, database)
        click.echo(typegen.emit(lang, resolved), nl=False)  # type: ignore[arg-type]


def _resolved_for_types(paths: Sequence[str], database: str | None) -> list[Any]:
    """The resolved schemas ``types`` emits: files (FKs outside them typed as ids unless --database says
    otherwise), else the registry's active plugins."""
    from extschema import loading, planning

    specs = [item.spec for item in loading.load(paths)] if paths else []
    if paths and database is None:  # files only: stays light, like validate (no database driver imported)
        return [planning.shape(spec) for spec in specs]
    from extschema import reconcile

    with _engine(database) as engine:
        if not paths:
            specs = [r.spec for r in engine.registrations() if r.status == "active"]
            if not specs:
                url = reconcile.redact(reconcile.database_url(database))
                raise ProblemError.one(
                    "ES740",
                    "",
                    f"no active plugin in the registry of {url}: apply a schema first, or give schema files",
                    kind=Kind.USAGE,
                )
        refs = reconcile.references(engine, specs)
        return [planning.resolve(spec, refs) for spec in specs]


@main.command()
@click.argument("plugin")
@database_option
@output_option
@click.option(
    "--min-rows",
    type=click.IntRange(min=0, max=10**12),
    default=1000,
    show_default=True,
    help="Leave out tables with fewer rows (the planner's estimate, else a count): every plan is fine there.",
)
@click.option("--no-verify", "no_verify", is_flag=True, help="Do not cost suggested indexes with hypopg (PostgreSQL).")
def analyze(plugin: str, database: str | None, output: str, min_rows: int, no_verify: bool) -> None:
    """EXPLAIN the REST API's statements for the plugin's tables; suggest the indexes they miss.

    Never executes them (no EXPLAIN ANALYZE) and changes nothing. A suggestion is the `indexes:` entry to add
    to the spec, so the index goes through plan, approval, rollback and drift like any other.
    """
    from extschema import querycheck, reconcile

    with _reported(output), _engine(database) as engine:
        report = reconcile.analyze(engine, plugin, min_rows, not no_verify).as_dict()
        if output == "json":
            _emit_json(wire.AnalysisList.of([wire.AnalysisView.model_validate(report)]))
            return
        for line in querycheck.render_text(report):
            click.echo(escape(line))


@main.command()
@click.option(
    "--write", is_flag=True, help="Write crds/*.yaml and charts/extschema/templates/crds/*.yaml instead of printing."
)
@click.option(
    "--root", type=click.Path(file_okay=False), default=".", show_default=True, help="Repository root to write into."
)
def crd(write: bool, root: str) -> None:
    """Print the CustomResourceDefinitions (YAML), generated from the model."""
    from pathlib import Path

    from extschema import crd as crds

    files = crds.rendered_files()
    if not write:
        click.echo("---\n".join(files.values()), nl=False)
        return
    for relative, text in crds.written_files().items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    envvar="EXTSCHEMA_DATABASE_URL",
    help="Default database for ExtensionSchemas without spec.targetRef ($EXTSCHEMA_DATABASE_URL).",
)
@click.option("--namespace", "-n", "namespaces", multiple=True, metavar="NS", help="Watch this namespace (repeatable).")
@click.option("--all-namespaces", "-A", "all_namespaces", is_flag=True, help="Watch every namespace.")
@click.option("--liveness", metavar="URL", help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json", "plain"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, with the resource's namespace and name (plain: same as text).",
)
@click.option("--metrics-port", type=int, default=0, envvar="EXTSCHEMA_METRICS_PORT", help="Serve /metrics (0: off).")
@click.option("--webhook-port", type=int, default=0, help="Serve the validating admission webhook (0: off).")
@click.option(
    "--webhook-host",
    default="127.0.0.1",
    show_default=True,
    help="Name or IP the API server calls, for the certificate generated without --webhook-cert.",
)
@click.option("--webhook-cert", type=click.Path(exists=True, dir_okay=False), help="Serving certificate (PEM).")
@click.option("--webhook-key", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM).")
@click.option("--webhook-ca", type=click.Path(exists=True, dir_okay=False), help="CA of the certificate (caBundle).")
@click.option("--standalone", is_flag=True, help="No kopf peering (run exactly one replica).")
@click.option(
    "--drift-interval",
    metavar="DURATION",
    envvar="EXTSCHEMA_DRIFT_INTERVAL",
    help="How often each Ready resource's database objects are compared with its spec, e.g. 30s, 5m "
    "(default 5m; $EXTSCHEMA_DRIFT_INTERVAL).",
)
@click.option(
    "--allow-raw-sql",
    is_flag=True,
    envvar="EXTSCHEMA_ALLOW_RAW_SQL",
    help="Let schemas on the default database (--database) run their raw SQL steps (spec.migrations); "
    "a DatabaseTarget allows them with spec.allowRawSql.",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(
    database: str | None,
    namespaces: Sequence[str],
    all_namespaces: bool,
    liveness: str | None,
    log_format: str,
    standalone: bool,
    drift_interval: str | None,
    allow_raw_sql: bool,
    verbose: bool,
    **observe: Any,
) -> None:
    """Run the Kubernetes operator (kopf) for ExtensionSchema and DatabaseTarget resources."""
    # The one import between the shells (declared in the import-linter contracts): the operator is
    # started, never reached into; kopf is imported by controller.main only.
    from extschema import controller

    if bool(namespaces) == all_namespaces:
        raise click.UsageError("pass -A (all namespaces) or one or more -n NAMESPACE")
    if bool(observe["webhook_cert"]) != bool(observe["webhook_key"]):
        raise click.UsageError("pass --webhook-cert and --webhook-key together")
    options: dict[str, Any] = {"default_allow_raw_sql": allow_raw_sql, **observe}
    if drift_interval:
        try:
            options["drift_interval"] = controller.seconds(drift_interval)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--drift-interval") from None
    controller.main(
        controller.Settings.from_env(
            default_database=database,
            namespaces=tuple(namespaces),
            clusterwide=all_namespaces,
            standalone=standalone,
            liveness=liveness,
            log_format="json" if log_format == "json" else "text",
            verbose=verbose,
            **options,
        )
    )


@main.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (non-loopback needs --tokens).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False),
    help="YAML file of bearer tokens {tokens: [{name, sha256, scopes}]}; without it: reads only, loopback only.",
)
@click.option(
    "--read-only-schemas",
    is_flag=True,
    help="Refuse schema changes through the API (405): the operator owns them (kubectl apply).",
)
def serve(database: str | None, host: str, port: int, tokens_file: str | None, read_only_schemas: bool) -> None:
    """Serve the REST API over every active plugin's tables (docs/api.md)."""
    from extschema import reconcile

    with _reported():
        # Started, never reached into (the shells are siblings): FastAPI and uvicorn are imported by api only.
        from extschema import api

        url = reconcile.database_url(database)
        api.main(url, host=host, port=port, tokens_file=tokens_file, read_only_schemas=read_only_schemas)


@main.command("wait")
@click.argument("name")
@click.option(
    "--for",
    "condition",
    type=click.Choice(["Ready"]),
    required=True,
    help="The condition to wait for (Ready: the database matches the current spec).",
)
@click.option("--namespace", "-n", metavar="NS", help="Its namespace (default: the pod's, else the kubeconfig's).")
@click.option(
    "--timeout", "timeout_ms", default="10m", show_default=True, callback=_duration, help="Give up after this long."
)
@output_option
def wait_for(name: str, condition: str, namespace: str | None, timeout_ms: int, output: str) -> None:
    """Wait until the ExtensionSchema NAME is Ready (exit 0), Stalled (1) or the timeout passes (4).

    For a plugin's init container: its pods start only once the tables exist. Exit 3 when the Kubernetes API
    refuses the credentials or none are found. Text output prints one line per change on stdout.
    """
    from extschema import kubewait

    def say(ns: str, text: str) -> None:
        if output == "text":
            click.echo(kubewait.line(ns, name, text))

    def fail(code: str, where: str, message: str, exit_code: int) -> NoReturn:
        if output == "json":
            reason = {EXIT_TIMEOUT: "timeout", EXIT_DATABASE: "unreachable"}.get(exit_code, "stalled")
            _emit_json(wire.Failure.because(reason, [Problem(code, "", message, subject=where)]))
        else:
            click.echo(f"extensionschema {escape(where)}: {code}: {escape(message)}", err=True)
        sys.exit(exit_code)

    try:
        waited = kubewait.wait(name, namespace, timeout_ms / 1000, say)
    except kubewait.ApiError as error:
        fail(kubewait.NO_API, name, str(error), EXIT_DATABASE)
    where = f"{waited.namespace}/{name}"
    if waited.end == "stalled":
        fail(kubewait.STALLED, where, f"it is Stalled and needs a person: {waited.text}", EXIT_INVALID)
    if waited.end == "timeout":
        seconds = f"{timeout_ms / 1000:g}s"
        fail(kubewait.TIMED_OUT, where, f"not {condition} after {seconds}; last seen: {waited.text}", EXIT_TIMEOUT)
    if output == "json":
        _emit_json(wire.WaitList.of([wire.WaitView(name=name, namespace=waited.namespace, state=waited.text)]))
