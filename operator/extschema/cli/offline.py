"""Commands that need no database: ``diff`` (a plan from files, for pull requests) and ``diagram``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import click

from extschema import wire
from extschema.cli import plan_text
from extschema.cli.base import (
    detailed_exitcode_option,
    emit_json,
    lint_ignore_option,
    main,
    output_option,
    plan_exit_code,
    reported,
)
from extschema.problems import Kind, ProblemError, escape

if TYPE_CHECKING:
    from extschema.loading import Loaded
    from extschema.model import ExtensionSchemaSpec

core_option = click.option(
    "--core",
    "core",
    metavar="FILE",
    help="The host application's core tables: FILE.sql (CREATE TABLE statements, read into an in-memory SQLite) "
    "or a core description in YAML or JSON (coreTables: {TABLE: {COLUMN: TYPE}}; docs/diff.md).",
)


def _usage(message: str) -> ProblemError:
    return ProblemError.one("ES763", "arguments", message, kind=Kind.USAGE)


def _old_new(paths: Sequence[str], from_empty: bool) -> tuple[Sequence[str] | None, Sequence[str]]:
    """(OLD, NEW): OLD None when nothing is applied (``--from-empty``, or OLD ``/dev/null``)."""
    if from_empty:
        if len(paths) != 1:
            raise _usage(f"with --from-empty give only NEW (got {len(paths)} paths): extschema diff --from-empty NEW")
        return None, paths
    if len(paths) != 2:
        raise _usage(
            f"give OLD and NEW (got {len(paths)} paths): extschema diff OLD NEW, "
            "or extschema diff --from-empty NEW for a plugin that is not installed yet"
        )
    old, new = paths
    return (None if old == os.devnull else [old]), [new]


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(), metavar="OLD NEW")
@click.option(
    "--from-empty",
    is_flag=True,
    help="Nothing is applied yet: diff NEW against an empty database (the same as OLD /dev/null).",
)
@core_option
@click.option(
    "--dialect",
    type=click.Choice(["postgresql", "sqlite"]),
    default="postgresql",
    show_default=True,
    help="Render the SQL for this database (the plan and its hash are the same on both).",
)
@output_option
@click.option("--summary", is_flag=True, help="The steps, their classes and the hash; no SQL (as plan --summary).")
@detailed_exitcode_option("applying NEW would change the database at OLD")
@lint_ignore_option
def diff(
    paths: Sequence[str],
    from_empty: bool,
    core: str | None,
    dialect: str,
    output: str,
    summary: bool,
    detailed_exitcode: bool,
    lint_ignore: Sequence[str],
) -> None:
    """Show what applying NEW to a database at OLD would do, with no database: each step, its class, the SQL
    and the plan's hash, which is the hash `plan NEW` prints against a database at OLD (so a pull request
    can be approved as it is reviewed). OLD and NEW are files or directories. Data counts need the data:
    a diff says they are not counted.
    """
    from extschema import reconcile
    from extschema.reconcile import offline

    with reported(output):
        old_paths, new_paths = _old_new(paths, from_empty)
        described = offline.Core.read(core)
        old: list[Loaded] = reconcile.load(old_paths) if old_paths is not None else []
        new = reconcile.load(new_paths)
        found = offline.diff(old, new, core=described, dialect=dialect, lint=True, lint_ignore=lint_ignore)
        plans = [item.view() for item in found.items]
        if output != "text":
            which = cast(Literal["postgresql", "sqlite"], dialect)
            views = [
                wire.DiffView.of(
                    item.reviewed,
                    item.preview,
                    dialect=which,
                    from_version=found.old_versions.get(item.plugin_id),
                    changed=not item.plan.empty,
                    lint=item.lint or (),
                    warnings=item.warnings(),
                )
                for item in found.items
            ]
            if summary:
                views = [v.model_copy(update={"sql": None, "sql_steps": None, "rollback_sql": None}) for v in views]
            emit_json(wire.DiffList.of(views, found.notes()))
        else:
            old_name = "nothing applied" if old_paths is None else escape(old_paths[0])
            click.echo(
                f"-- diff {old_name} -> {escape(new_paths[0])}, SQL for {dialect} (--dialect); "
                "no database: data counts are not known (`extschema plan` counts them)"
            )
            for item, view in zip(found.items, plans, strict=True):
                before = found.old_versions.get(item.plugin_id)
                click.echo(
                    f"-- {item.plugin_id}: {escape(before) + ' in OLD' if before else 'new (not in OLD)'}"
                    f" -> {escape(item.loaded.spec.version)}"
                )
                plan_text.show(item, view, summary)  # plan's own text: a diff reads as a plan does
            for note in found.notes():
                click.echo(f"note: {note.render()}", err=True)
    if detailed_exitcode:
        approved = {h for item in found.items for h in item.loaded.spec.approved_hashes()}
        sys.exit(plan_exit_code(plans, approved))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--database", "-d", "database", metavar="URL", help="Draw the plugins registered in this database.")
@core_option
@click.option(
    "--format",
    "format_",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (an erDiagram for Markdown), Graphviz dot text, or SVG drawn by Graphviz's dot.",
)
@click.option("--dependencies", is_flag=True, help="Draw only the plugins and their dependsOn graph.")
def diagram(paths: Sequence[str], database: str | None, core: str | None, format_: str, dependencies: bool) -> None:
    """Draw the plugins' tables, fields and relationships (to core tables and to other plugins), and their
    dependsOn graph: from schema files (PATHs), or the plugins registered in --database.
    """
    from extschema import diagram as drawing

    with reported():
        if bool(paths) == (database is not None):
            raise _usage("give schema files (PATH...) or --database URL, one of the two")
        specs, columns = _drawn(paths, database, core)
        if not specs:
            from extschema.reconcile import redact

            click.echo(f"note: no active plugin in {redact(database or '')} to draw", err=True)
        picture = drawing.picture(specs, columns)
        if format_ == "mermaid":
            click.echo(drawing.mermaid_dependencies(picture) if dependencies else drawing.mermaid(picture), nl=False)
            return
        text = drawing.dot_dependencies(picture) if dependencies else drawing.dot(picture)
        click.echo(text if format_ == "dot" else _svg(text), nl=False)


def _drawn(paths: Sequence[str], database: str | None, core: str | None) -> tuple[list[ExtensionSchemaSpec], Any]:
    """The specs to draw and the core tables' column types: from files (core from --core), or a database."""
    from extschema import reconcile
    from extschema.reconcile import offline

    if database is None:
        return [item.spec for item in reconcile.load(paths)], offline.core_types(offline.Core.read(core))
    from extschema.cli.base import open_engine

    with open_engine(database) as engine:
        specs = [r.spec for r in engine.registrations() if r.status == "active"]
        return specs, {table: columns for (_, table), columns in engine.core_catalog().items()}


def _svg(dot_text: str) -> str:
    """*dot_text* drawn as SVG by Graphviz's ``dot``: ES766 when it is not installed, ES767 when it fails."""
    import shutil
    import subprocess

    program = shutil.which("dot")
    if program is None:
        raise ProblemError.one(
            "ES766",
            "--format",
            "--format svg draws with Graphviz's dot, which is not installed (no `dot` on PATH); install Graphviz "
            "(apt-get install graphviz, brew install graphviz), or print --format dot and draw it elsewhere",
            kind=Kind.INVALID,
        )
    done = subprocess.run([program, "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise ProblemError.one(
            "ES767",
            "--format",
            f"Graphviz's dot failed (exit {done.returncode}): {done.stderr.strip()[:500]}; "
            "print --format dot to see its input",
            kind=Kind.INVALID,
        )
    return done.stdout
