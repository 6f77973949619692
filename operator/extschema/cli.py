"""The ``extschema`` command line: a thin shell over :mod:`extschema.reconcile`.

Exit codes are a contract: 0 ok; 1 invalid spec, conflict or refused change; 2 usage error;
3 database unreachable or database error. No user error ends in a traceback.

Start-up is part of the interface: ``--version`` and ``validate`` import neither the engine
(SQLAlchemy, psycopg) nor kopf; commands that need a database import them when they run.
Text written to the terminal is escaped (:func:`~extschema.problems.escape`): file names and
registry values may hold escape sequences.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from extschema import __version__
from extschema.problems import Kind, ProblemError, escape

if TYPE_CHECKING:
    from extschema.dialects import RenderedPlan
    from extschema.engine import ApplyResult, Engine
    from extschema.loading import Loaded
    from extschema.reconcile import MigrationEvent, OnEvent, Planned

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_DATABASE = 0, 1, 2, 3
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


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _sql(script: str) -> str:
    """SQL as written, unless it goes to a terminal: then control characters are escaped too."""
    return escape(script, newlines=True) if sys.stdout.isatty() else script


def _fail(error: ProblemError, output: str) -> NoReturn:
    if output == "json":
        _emit_json({"ok": False, "kind": error.kind, "problems": [p.as_dict() for p in error.problems]})
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
def _engine(database: str | None) -> Iterator[Engine]:
    from extschema import reconcile
    from extschema.engine import Engine

    engine = Engine(reconcile.database_url(database))
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
            _emit_json({"ok": True, "problems": [], "schemas": [_summary(item) for item in loaded]})
        else:
            for item in loaded:
                click.echo(f"{escape(item.file)}: {item.spec.plugin_id} {escape(item.spec.version)}: valid")


def _summary(item: Loaded) -> dict[str, Any]:
    return {"file": item.file, "name": item.owner, "pluginId": item.spec.plugin_id, "version": item.spec.version}


@main.command()
@paths_argument
@database_option
@output_option
def plan(paths: Sequence[str], database: str | None, output: str) -> None:
    """Print the SQL that apply would run; runs nothing."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        planned = reconcile.plan_all(engine, reconcile.load(paths))
        if output == "json":
            _emit_json({"ok": True, "plans": [_plan_json(p, r) for p, r in planned]})
            return
        for p, rendered in planned:
            for warning in rendered.warnings:
                click.echo(f"warning: {warning.located(p.loaded.file).render()}", err=True)
            spec = p.loaded.spec
            click.echo(f"-- {spec.plugin_id} {escape(spec.version)} ({escape(p.loaded.file)})")
            if p.plan.empty:
                click.echo("-- no changes\n")
                continue
            for line in p.plan.describe():
                click.echo(f"--   {escape(line)}")
            click.echo(_sql(rendered.script()))


def _plan_json(planned: Planned, rendered: RenderedPlan) -> dict[str, Any]:
    return {
        **_summary(planned.loaded),
        "changes": planned.plan.describe(),
        "sql": list(rendered.statements),
        "rollback": list(rendered.rollback),
        "warnings": [w.located(planned.loaded.file).as_dict() for w in rendered.warnings],
    }


@main.command()
@paths_argument
@database_option
@output_option
def apply(paths: Sequence[str], database: str | None, output: str) -> None:
    """Apply schemas in dependency order (command-line order does not matter)."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        results = reconcile.reconcile(engine, reconcile.load(paths), _progress(output))
        _print_results(results, output)


def _result_json(result: ApplyResult) -> dict[str, Any]:
    return {
        "pluginId": result.plugin_id,
        "changed": result.changed,
        "migration": result.migration_id,
        "changes": result.description,
        "durationMs": result.duration_ms,
        "warnings": [w.as_dict() for w in result.warnings],
    }


def _print_results(results: Sequence[ApplyResult], output: str, verb: str = "executed") -> None:
    if output == "json":
        _emit_json({"ok": True, "results": [_result_json(r) for r in results]})
        return
    for result in results:
        for warning in result.warnings:
            click.echo(f"warning: {warning.render()}", err=True)
        if not result.changed:
            click.echo(f"{escape(result.plugin_id)}: unchanged")
            continue
        click.echo(f"{escape(result.plugin_id)}: migration {result.migration_id} {verb} in {result.duration_ms} ms")
        for line in result.description:
            click.echo(f"  - {escape(line)}")


@main.command()
@database_option
@output_option
def status(database: str | None, output: str) -> None:
    """Registered plugins: version, state, physical tables."""
    with _reported(output), _engine(database) as engine:
        rows: list[dict[str, Any]] = [
            {
                "pluginId": r.plugin_id,
                "owner": r.owner,
                "version": r.version,
                "status": r.status,
                "tables": engine.physical_tables(r.plugin_id),
                "expectedTables": r.tables,
                "dependsOn": list(r.spec.depends_on),
                "error": r.error_message,
                "updatedAt": r.updated_at.isoformat(),
            }
            for r in engine.registrations()
        ]
        if output == "json":
            _emit_json({"ok": True, "database": engine.backend, "plugins": rows})
            return
        if not rows:
            click.echo("no plugins registered")
        for row in rows:
            missing = sorted(set(row["expectedTables"]) - set(row["tables"]))
            drift = f"  DRIFT: missing {escape(', '.join(missing))}" if missing else ""
            click.echo(
                f"{escape(row['pluginId']):<24} {escape(row['version']):<10} {escape(row['status']):<8} "
                f"owner={escape(row['owner'])}{drift}"
            )
            for table in row["tables"]:
                click.echo(f"    {escape(table)}")
            if row["error"]:
                click.echo(f"    last error: {escape(row['error'], newlines=True)}")


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
            _emit_json({"ok": True, "migrations": [r.as_dict() for r in records]})
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
def rollback(plugin: str, database: str | None, output: str) -> None:
    """Undo a plugin's latest migration with its recorded rollback SQL."""
    from extschema import reconcile

    with _reported(output), _engine(database) as engine:
        _print_results([reconcile.rollback(engine, plugin)], output, verb="rolled back")


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
            _emit_json({"ok": True, "problems": []})
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
            _emit_json({"ok": True, "pluginId": plugin, "repaired": list(repaired)})
        else:
            click.echo(f"re-recorded checksums of {', '.join(repaired)}" if repaired else "all checksums already match")


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
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True)
@click.option("--standalone", is_flag=True, help="No kopf peering (run exactly one replica).")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(
    database: str | None,
    namespaces: Sequence[str],
    all_namespaces: bool,
    liveness: str | None,
    log_format: str,
    standalone: bool,
    verbose: bool,
) -> None:
    """Run the Kubernetes operator (kopf) for ExtensionSchema and DatabaseTarget resources."""
    # kopf probes for client libraries when imported and would load them (~60 MB RSS) only to offer
    # logins the operator replaces with its own; it never uses them.
    for unused in ("kubernetes", "kubernetes_asyncio", "pykube"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    import kopf

    from extschema import controller  # registers the handlers with kopf

    if bool(namespaces) == all_namespaces:
        raise click.UsageError("pass -A (all namespaces) or one or more -n NAMESPACE")
    # Room for kopf's long-lived watch streams (each watched kind per namespace, its peering, the CRD
    # scan) plus 32 for requests; namespace patterns match an unknown number: leave kopf unlimited.
    patterns = any(any(c in ns for c in "*?!,") for ns in namespaces)
    streams = 0 if patterns else 4 + 3 * max(1, len(namespaces))
    settings = controller.Settings.from_env(default_database=database, api_connections=streams and streams + 32)
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN)
    kopf.run(
        standalone=standalone,
        clusterwide=all_namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness,
        memo=controller.memo_for(settings),
    )
