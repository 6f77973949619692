"""Commands that emit artefacts: prisma, types, analyze, crd."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from extschema.cli.base import (
    database_option,
    emit_json,
    load_schemas,
    main,
    open_engine,
    output_option,
    recursive_option,
    reported,
)
from extschema.problems import Kind, ProblemError, escape

if TYPE_CHECKING:
    from extschema.engine import Engine


@main.command("prisma")
@click.argument("paths", nargs=-1, type=click.Path())
@recursive_option
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
    from extschema import prisma as emitter
    from extschema import wire

    with reported(output):
        loaded = load_schemas(paths) if paths else []
        specs = [item.spec for item in loaded]
        if provider is not None and database is None:
            resolved, core = emitter.offline(specs, fragment, [item.file for item in loaded]), None
            chosen: emitter.Provider = "sqlite" if provider == "sqlite" else "postgresql"
        else:
            with open_engine(database) as engine:
                chosen, resolved, core = _prisma_inputs(engine, specs, provider, fragment)
        schema = emitter.emit(resolved, chosen, core, fragment)
        if output != "text":
            view = wire.PrismaSchemaView(provider=chosen, schema_=schema.text, config=schema.config())
            emit_json(wire.PrismaSchemaList.of([view]))
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
@recursive_option
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
    $EXTSCHEMA_DATABASE_URL, else sqlite:///extschema.db). It prints code for a file, not a report: --lang
    picks the format, so there is no -o (--lang jsonschema is JSON).
    """
    from extschema import typegen

    with reported():
        resolved = _resolved_for_types(paths, database)
        click.echo(typegen.emit(lang, resolved), nl=False)  # type: ignore[arg-type]


def _resolved_for_types(paths: Sequence[str], database: str | None) -> list[Any]:
    """The resolved schemas ``types`` emits: files (FKs outside them typed as ids unless --database says
    otherwise), else the registry's active plugins."""
    from extschema import planning

    specs = [item.spec for item in load_schemas(paths)] if paths else []
    if paths and database is None:  # files only: stays light, like validate (no database driver imported)
        return [planning.shape(spec) for spec in specs]
    from extschema import reconcile

    with open_engine(database) as engine:
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
    from extschema import querycheck, reconcile, wire

    with reported(output), open_engine(database) as engine:
        report = reconcile.analyze(engine, plugin, min_rows, not no_verify).as_dict()
        if output != "text":
            emit_json(wire.AnalysisList.of([wire.AnalysisView.model_validate(report)]))
            return
        for line in querycheck.render_text(report):
            click.echo(escape(line))


@main.command()
@click.option(
    "--write",
    is_flag=True,
    help="Write crds/*.yaml, charts/extschema/templates/crds/*.yaml and docs/crd-reference.md under --root "
    "instead of printing.",
)
@click.option(
    "--root", type=click.Path(file_okay=False), default=".", show_default=True, help="Repository root to write into."
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="YAML documents, or JSON: a kubectl List of the CRDs (`kubectl apply -f -` takes both; not an envelope).",
)
def crd(write: bool, root: str, output: str) -> None:
    """Print the CustomResourceDefinitions, generated from the model (with --write: the files the repository
    keeps, the field reference docs/crd-reference.md among them)."""
    from pathlib import Path

    from extschema import crd as crds

    if not write:
        if output == "json":
            listed = {"apiVersion": "v1", "kind": "List", "items": [build() for build in crds.FILES.values()]}
            click.echo(json.dumps(listed, indent=2, ensure_ascii=False))
        else:
            click.echo("---\n".join(crds.rendered_files().values()), nl=False)
        return
    for relative, text in crds.written_files().items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
