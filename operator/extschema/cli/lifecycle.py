"""Commands over the registry: status, history, rollback, delete, repair, backups, restore, drift."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from extschema import wire
from extschema.cli.base import (
    EXIT_INVALID,
    database_option,
    emit_json,
    main,
    open_engine,
    output_option,
    print_results,
    reported,
    terminal_sql,
)
from extschema.problems import escape

if TYPE_CHECKING:
    pass


@main.command()
@database_option
@output_option
def status(database: str | None, output: str) -> None:
    """Registered plugins: version, state, physical tables."""
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        rows = [reconcile.plugin_view(engine, r) for r in engine.registrations()]
        if output != "text":
            emit_json(wire.PluginList.of(rows))
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
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        records = engine.history(plugin)
        if plugin is not None and not records:
            reconcile.require_known(engine, plugin)  # ES306: a typo is not an empty history
        if output != "text":
            emit_json(wire.MigrationList.of(wire.MigrationView.of(r) for r in records))
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
                click.echo(terminal_sql(r.migration_sql))


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

    with reported(output), open_engine(database, allow_raw_sql) as engine:
        print_results([reconcile.rollback(engine, plugin, approvals)], output, verb="rolled back")


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

    with reported(output), open_engine(database) as engine:
        print_results([reconcile.delete(engine, plugin, retain or None)], output)


@main.command()
@click.argument("plugin")
@database_option
@output_option
def repair(plugin: str, database: str | None, output: str) -> None:
    """Re-record migration checksums after a deliberate edit of the history."""
    with reported(output), open_engine(database) as engine:
        repaired = engine.repair(plugin)
        if output != "text":
            emit_json(wire.RepairList.of(wire.RepairView(plugin_id=plugin, migration_id=m) for m in repaired))
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

    with reported(output), open_engine(database) as engine:
        at = datetime.datetime.now(datetime.UTC)
        records = [wire.BackupView.of(b, at) for b in reconcile.backups(engine, plugin)]
        if plugin is not None and not records:
            reconcile.require_known(engine, plugin)  # ES306: a typo is not an empty list
        if output != "text":
            emit_json(wire.BackupList.of(records))
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
    with reported(output), open_engine(database) as engine:
        at = datetime.datetime.now(datetime.UTC)
        pruning = reconcile.prune_backups(engine, age, dry_run, force)
        records = [wire.BackupView.of(b, at, "wouldPrune" if dry_run else "pruned") for b in pruning.pruned]
        kept = [wire.BackupView.of(b, at, "kept") for b in pruning.kept]
        if output != "text":
            emit_json(wire.BackupList.of([*records, *kept], pruning.unsettled))
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

    with reported(output), open_engine(database) as engine:
        print_results(reconcile.restore(engine, migration_id, plugin), output)


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
    with reported(output), open_engine(database) as engine:
        repaired = reconcile.repair(engine, plugin) if repair and plugin is not None else []
        reports = reconcile.drift(engine, plugin)
        in_sync = all(r.in_sync for r in reports)
        if output != "text":
            emit_json(
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
