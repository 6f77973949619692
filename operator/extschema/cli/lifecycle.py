"""Commands over the registry: status, history, rollback, delete, repair, backups, restore, drift."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import click

from extschema.cli.base import (
    EXIT_INVALID,
    database_option,
    emit_json,
    main,
    no_headers_option,
    open_engine,
    output_option,
    print_results,
    print_table,
    reported,
    showing_progress,
    terminal_sql,
)
from extschema.problems import Kind, ProblemError, escape

if TYPE_CHECKING:
    from extschema import wire
    from extschema.reconcile import DryRun

dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Only print the SQL it would run and its data effect (tables, rows, values, backups); change nothing.",
)


def _preview_view(run: DryRun) -> wire.PreviewView:
    from extschema import wire

    steps = [*run.before, run.preview]
    return wire.PreviewView(
        plugin_id=run.plugin_id,
        action=run.action,
        migration=run.preview.migration_id,
        changes_anything=any(p.statements for p in steps),
        hash=run.hash,
        needs_approval=run.needs_approval,
        changes=[line for p in steps for line in p.description],
        sql=[s for p in steps for s in p.statements],
        plan=run.reviewed.pending() if run.reviewed is not None else None,
    )


def _print_preview(run: DryRun, output: str) -> None:
    """A dry run: what would run, numbered, and what it would change; or its one envelope (``PreviewList``)."""
    from extschema import wire

    if output != "text":
        emit_json(wire.PreviewList.of([_preview_view(run)]))
        return
    view = _preview_view(run)
    if not view.changes_anything:
        click.echo(f"{escape(view.plugin_id)}: {run.action}: nothing to do (dry run)")
        for line in view.changes:
            click.echo(f"  - {escape(line)}")
        return
    as_ = f" as migration {view.migration}" if view.migration else ""
    if run.action == "rollback":
        as_ = f" on migration {view.migration}"
    click.echo(f"{escape(view.plugin_id)}: {run.action} would run{as_} (dry run: nothing was changed)")
    for line in view.changes:
        click.echo(f"  - {escape(line)}")
    if view.needs_approval:
        click.echo(f"  needs approval: run it with --approve {view.hash}")
    elif view.hash is not None:
        click.echo(f"  plan hash {view.hash} (runs without approval)")
    click.echo("  SQL:")
    for number, statement in enumerate(view.sql, 1):
        click.echo(f"  {number:>3}  {terminal_sql(statement)};")


@main.command()
@click.argument("plugin", required=False)
@database_option
@output_option
@no_headers_option
def status(plugin: str | None, database: str | None, output: str, no_headers: bool) -> None:
    """Registered plugins (or only PLUGIN): version, state, owner, physical tables, and tables missing (drift)."""
    with reported(output), open_engine(database) as engine:
        registered = [r for r in engine.registrations() if plugin in (None, r.plugin_id)]
        if plugin is not None and not registered:
            message = f"plugin {plugin!r} is not registered; see `extschema status` for those that are"
            raise ProblemError.one("ES306", "plugin", message, kind=Kind.REFUSED)
        if output != "text":
            from extschema import reconcile, wire  # the views only for JSON/YAML: text starts faster

            emit_json(wire.PluginList.of([reconcile.plugin_view(engine, r) for r in registered]))
            return
        if not registered:
            click.echo("no plugins registered")
            return
        table: list[tuple[list[str], list[str]]] = []
        for r in registered:
            tables = engine.physical_tables(r.plugin_id)
            missing = sorted(set(r.tables) - set(tables))
            cells = [r.plugin_id, r.version, r.status, r.owner, ", ".join(tables) or "-"]
            cells.append(f"missing {', '.join(missing)}" if missing else "-")
            error = [f"last error: {escape(r.error_message, newlines=True)}"] if r.error_message else []
            table.append(([escape(c) for c in cells], error))
        print_table(("PLUGIN", "VERSION", "STATE", "OWNER", "TABLES", "DRIFT"), table, no_headers)


@main.command()
@click.argument("plugin", required=False)
@database_option
@output_option
@no_headers_option
@click.option("--sql", is_flag=True, help="Also print each migration's SQL.")
def history(plugin: str | None, database: str | None, output: str, no_headers: bool, sql: bool) -> None:
    """Migrations with status, checksums and timings."""
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        records = engine.history(plugin)
        if plugin is not None and not records:
            reconcile.require_known(engine, plugin)  # ES306: a typo is not an empty history
        if output != "text":
            from extschema import wire  # the views only for JSON/YAML: text starts faster

            emit_json(wire.MigrationList.of(wire.MigrationView.of(r) for r in records))
            return
        if not records:
            click.echo("no migrations recorded")
            return
        table: list[tuple[list[str], list[str]]] = []
        for r in records:
            started = r.execution_start.isoformat(timespec="seconds") if r.execution_start else "-"
            cells = [r.plugin_id, r.migration_id, r.kind, r.version, r.status, started]
            cells += [f"{r.duration_ms:,} ms" if r.duration_ms is not None else "-", r.checksum_sql[:12]]
            cells.append("ok" if r.checksum_ok else "MISMATCH")
            details = [f"- {escape(line)}" for line in r.description]
            if r.error_message:
                details.append(f"error: {escape(r.error_message, newlines=True)}")
            if sql:
                details.extend(terminal_sql(r.migration_sql).splitlines())
            table.append(([escape(c) for c in cells], details))
        headers = ("PLUGIN", "MIGRATION", "KIND", "VERSION", "STATUS", "STARTED", "DURATION", "SQL", "CHECKSUM")
        print_table(headers, table, no_headers)


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
@dry_run_option
def rollback(
    plugin: str, database: str | None, output: str, approvals: Sequence[str], allow_raw_sql: bool, dry_run: bool
) -> None:
    """Undo a plugin's latest migration with its recorded rollback SQL (data it drops, and raw rollbackSql,
    need --approve).
    """
    from extschema import reconcile

    with reported(output), open_engine(database, allow_raw_sql) as engine:
        if dry_run:
            _print_preview(reconcile.preview_rollback(engine, plugin, approvals), output)
            return
        with showing_progress(output):
            result = reconcile.rollback(engine, plugin, approvals)
        print_results([result], output, verb="rolled back")
        if output == "text" and result.statements:
            click.echo("  SQL run:")
            for number, statement in enumerate(result.statements, 1):
                click.echo(f"  {number:>3}  {terminal_sql(statement)};")


@main.command()
@click.argument("plugin")
@database_option
@output_option
@click.option(
    "--retain", is_flag=True, default=None, help="Keep the tables; only unregister (overrides deletionPolicy)."
)
@click.option(
    "--approve",
    "approvals",
    multiple=True,
    metavar="HASH",
    help="Approve dropping the plugin's tables with this hash (from --dry-run or the refusal, ES307); "
    "a hash that is not the delete's as it is now stops it (ES308).",
)
@dry_run_option
def delete(
    plugin: str, database: str | None, output: str, retain: bool | None, approvals: Sequence[str], dry_run: bool
) -> None:
    """Remove a plugin: drop its objects (data is backed up first; needs --approve HASH) or, with Retain,
    unregister it.

    On a terminal, without --approve, it shows what it drops and asks for the hash.
    """
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        if dry_run:
            _print_preview(reconcile.preview_delete(engine, plugin, retain or None), output)
            return
        if not approvals and output == "text" and sys.stdin.isatty() and sys.stdout.isatty():
            approvals = _confirm_delete(reconcile.preview_delete(engine, plugin, retain or None))
        with showing_progress(output):
            deleted = reconcile.delete(engine, plugin, retain or None, approvals=approvals)
        print_results([deleted], output)


def _confirm_delete(run: DryRun) -> tuple[str, ...]:
    """On a terminal: show what the delete drops and ask for its hash (the approval); anything else aborts."""
    if not run.needs_approval or run.hash is None:
        return ()
    _print_preview(run, "text")
    typed = click.prompt(
        f"Type the hash {run.hash} to drop these tables (anything else aborts)", default="", show_default=False
    )
    if typed.strip() != run.hash:
        click.echo("aborted: nothing was changed", err=True)
        sys.exit(EXIT_INVALID)
    return (run.hash,)


@main.command()
@click.argument("plugin")
@click.option(
    "--accept-edits",
    "mode",
    flag_value="accept-edits",
    help="Keep the edited SQL of the history and record its checksum (Flyway's repair).",
)
@click.option(
    "--rerender",
    "mode",
    flag_value="rerender",
    help="Write the SQL text of the history again from the stored statements (undoes an edit of the text).",
)
@dry_run_option
@database_option
@output_option
def repair(plugin: str, mode: str | None, dry_run: bool, database: str | None, output: str) -> None:
    """Make edited migration history verify again (ES304): --accept-edits keeps the edit, --rerender undoes it."""
    from extschema import reconcile, wire

    if mode not in ("accept-edits", "rerender"):
        raise click.UsageError(
            "choose what repair does: --accept-edits (keep the edited SQL, record its checksum) or --rerender "
            "(write the SQL text again from the stored statements, undoing the edit)"
        )
    chosen: Literal["accept-edits", "rerender"] = "accept-edits" if mode == "accept-edits" else "rerender"
    with reported(output), open_engine(database) as engine:
        changes = reconcile.repair_history(engine, plugin, chosen, dry_run)
        if output != "text":
            views = (
                wire.RepairView(
                    plugin_id=plugin, migration_id=c.migration_id, mode=chosen, change=c.change, changed=not dry_run
                )
                for c in changes
            )
            emit_json(wire.RepairList.of(views))
            return
        if not changes:
            click.echo("all checksums already match")
        for c in changes:
            click.echo(f"{escape(plugin)} {c.migration_id}: {escape(c.change)}")
        if dry_run and changes:
            click.echo("(dry run: nothing was changed)")


def _age(seconds: float) -> str:
    """A backup's age for people: the two largest units (``3d 4h``, ``12m``)."""
    left, parts = int(seconds), list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


_BACKUP_HEADERS = ("PLUGIN", "MIGRATION", "SOURCE", "ROWS", "AGE", "BACKUP TABLE")


class _Backup(Protocol):
    """What a backup's line shows: the engine's record (``backups list``) or its view (``prune``)."""

    @property
    def plugin_id(self) -> str: ...
    @property
    def migration_id(self) -> str: ...
    @property
    def source_table(self) -> str: ...
    @property
    def source_column(self) -> str | None: ...
    @property
    def rows(self) -> int: ...
    @property
    def backup_table(self) -> str: ...


def _backup_lines(records: Sequence[tuple[_Backup, int]], no_headers: bool = False) -> None:
    """One line per (backup, age in seconds)."""
    table: list[tuple[list[str], list[str]]] = []
    for r, age in records:
        source = r.source_table + (f".{r.source_column}" if r.source_column else " (table)")
        cells = [r.plugin_id, r.migration_id, source, f"{r.rows:,}", _age(age), r.backup_table]
        table.append(([escape(c) for c in cells], []))
    print_table(_BACKUP_HEADERS, table, no_headers)


class _PluginOrCommand(click.Group):
    """``backups list [PLUGIN]`` and ``backups prune ...``; the older ``backups [PLUGIN]`` still lists.

    The first word that is not an option (or an option's value) names the subcommand when it is one, wherever
    it stands (``backups -d URL prune --older-than 30d``); any other word is the group's PLUGIN. A plugin
    named like a subcommand is listed with ``backups list prune``."""

    allow_interspersed_args = True

    def _first_word(self, ctx: click.Context, args: list[str]) -> int | None:
        valued = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.is_flag
            for name in param.opts
        }
        index = 0
        while index < len(args):
            word = args[index]
            if word == "--":
                return index + 1 if index + 1 < len(args) else None
            if not word.startswith("-") or word == "-":
                return index
            index += 2 if word in valued else 1  # `--database=URL` carries its value
        return None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = self._first_word(ctx, args)
        if first is not None and args[first] in self.commands:
            super().parse_args(ctx, [])  # the group's own parameters at their defaults
            ctx._protected_args, ctx.args = [args[first]], [*args[:first], *args[first + 1 :]]
            return ctx.args
        return super().parse_args(ctx, args)


def _list_backups(plugin: str | None, database: str | None, output: str, no_headers: bool) -> None:
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        at = datetime.datetime.now(datetime.UTC)
        records = reconcile.backups(engine, plugin)
        if plugin is not None and not records:
            reconcile.require_known(engine, plugin)  # ES306: a typo is not an empty list
        if output != "text":
            from extschema import wire  # the views only for JSON/YAML: text starts faster

            emit_json(wire.BackupList.of([wire.BackupView.of(b, at) for b in records]))
            return
        if not records:
            click.echo("no backups recorded")
            return
        # As BackupView.of counts it: SQLite hands back naive UTC times.
        ages = [
            int((at - b.created_at.replace(tzinfo=b.created_at.tzinfo or datetime.UTC)).total_seconds())
            for b in records
        ]
        _backup_lines(list(zip(records, ages, strict=True)), no_headers)


@main.group(cls=_PluginOrCommand, invoke_without_command=True)
@click.argument("plugin", required=False)
@database_option
@output_option
@no_headers_option
@click.pass_context
def backups(ctx: click.Context, plugin: str | None, database: str | None, output: str, no_headers: bool) -> None:
    """Backups taken before destructive migrations: `backups list [PLUGIN]`, `backups prune --older-than AGE`.

    `backups [PLUGIN]` without a subcommand lists too (the older form, kept for scripts).
    """
    if ctx.invoked_subcommand is None:
        _list_backups(plugin, database, output, no_headers)


@backups.command("list")
@click.argument("plugin", required=False)
@database_option
@output_option
@no_headers_option
def backups_list(plugin: str | None, database: str | None, output: str, no_headers: bool) -> None:
    """List the backups (of PLUGIN): migration, source, rows, age, backup table."""
    _list_backups(plugin, database, output, no_headers)


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
    from extschema import reconcile, wire

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
        click.echo(f"{verb} {len(records):,} backup(s) older than {escape(older_than)}")
        if records:
            _backup_lines([(r, r.age_seconds) for r in records])
        if kept:
            why = "a rollback still needs (prune them anyway with --force)"
            if pruning.unsettled:
                why = "a rollback still needs, or of a plugin whose history is not settled (see below)"
            click.echo(f"kept {len(kept):,} backup(s) {why}:")
            _backup_lines([(r, r.age_seconds) for r in kept])
        for problem in pruning.unsettled:
            click.echo(problem.render())


@main.command()
@click.argument("migration_id")
@click.option("--plugin", "-p", metavar="PLUGIN", help="The plugin whose migration it is (when several have that id).")
@database_option
@output_option
@dry_run_option
def restore(migration_id: str, plugin: str | None, database: str | None, output: str, dry_run: bool) -> None:
    """Copy a migration's backed-up rows and values back into the plugin's current tables."""
    from extschema import reconcile

    with reported(output), open_engine(database) as engine:
        if dry_run:
            _print_preview(reconcile.preview_restore(engine, migration_id, plugin), output)
            return
        with showing_progress(output):
            results = reconcile.restore(engine, migration_id, plugin)
        if output != "text" or results[-1].changed:
            print_results(results, output)
            return
        print_results(results[:-1], output)  # the spec applied again, if it was; then why nothing was copied
        click.echo(f"{escape(results[-1].plugin_id)}: nothing to restore (nothing recorded)")
        for line in results[-1].description[1:]:
            click.echo(f"  - {escape(line)}")


@main.command()
@click.argument("plugin", required=False)
@click.option(
    "--repair",
    is_flag=True,
    help="Re-create missing tables, columns, indexes and enum types; add the Int range CHECK older SQLite tables lack.",
)
@database_option
@output_option
@no_headers_option
@dry_run_option
def drift(plugin: str | None, repair: bool, database: str | None, output: str, no_headers: bool, dry_run: bool) -> None:
    """Compare the database's plugin objects with the applied specs; exit 1 when they differ."""
    from extschema import reconcile

    if repair and plugin is None:
        raise click.UsageError("--repair needs the PLUGIN to repair")
    if dry_run and not repair:
        raise click.UsageError("--dry-run goes with --repair (drift alone only reads)")
    with reported(output), open_engine(database) as engine:
        if dry_run and plugin is not None:
            _print_preview(reconcile.preview_repair(engine, plugin), output)
            return
        with showing_progress(output):
            repaired = reconcile.repair(engine, plugin) if repair and plugin is not None else []
        reports = reconcile.drift(engine, plugin)
        in_sync = all(r.in_sync for r in reports)
        if output != "text":
            from extschema import wire  # the views only for JSON/YAML: text starts faster

            emit_json(
                wire.DriftList.of(wire.DriftView.of(r, repaired if r.plugin_id == plugin else ()) for r in reports)
            )
        else:
            for line in repaired:
                click.echo(f"repaired: {escape(line)}")
            if not reports:
                click.echo("no plugins registered")
            table: list[tuple[list[str], list[str]]] = []
            for r in reports:
                table += [
                    ([escape(r.plugin_id), "DRIFT", escape(f"{d.kind} {d.object}"), escape(d.detail)], [])
                    for d in r.differences
                ]
                if not r.differences:
                    table.append(([escape(r.plugin_id), "in sync" if r.in_sync else "DRIFT", "-", "-"], []))
            if table:
                print_table(("PLUGIN", "STATE", "DIFFERENCE", "DETAIL"), table, no_headers)
        if not in_sync:
            sys.exit(EXIT_INVALID)
