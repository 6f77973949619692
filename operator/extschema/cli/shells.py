"""Editors and shells: ``schema --json-schema`` (for yaml-language-server), ``completion bash|zsh|fish``, and the
examples every ``--help`` ends with."""

from __future__ import annotations

import json

import click

from extschema.cli.base import main

#: Every command's examples, shown under "Examples:" at the end of its --help (docs/editors.md); a test parses each
#: line, so an example never names a command or option that does not exist. Keyed by the command's path.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "validate": (
        "extschema validate examples/",
        "extschema validate shop.yaml -o json   # for CI: one envelope, exit 1 on a problem",
    ),
    "plan": (
        "extschema plan shop-v2.yaml -d sqlite:///shop.db",
        "extschema plan plugins/ -d postgresql://app@db/app -o json",
        "extschema plan plugins/ --summary --detailed-exitcode   # CI: exit 0 no change, 10 changes, 11 approval",
    ),
    "apply": (
        "extschema apply examples/ -d sqlite:///app.db",
        "extschema apply shop-v2.yaml --approve ec0acdac72c1188e   # the hash `plan` printed",
        "extschema apply shop.yaml --lock-timeout 10s --statement-timeout 2m",
    ),
    "conflicts": ("extschema conflicts plugins/ -d postgresql://app@db/app",),
    "status": (
        "extschema status",
        "extschema status shop -o yaml",
        "extschema status --no-headers -d postgresql://app@db/app",
    ),
    "history": ("extschema history", "extschema history shop --sql", "extschema history shop -o json"),
    "rollback": (
        "extschema rollback shop --dry-run   # the SQL and what it drops or puts back; changes nothing",
        "extschema rollback shop --approve 3c1f0a9e7d2b4c65",
    ),
    "delete": (
        "extschema delete shop --dry-run   # tables, rows, backups, SQL and the hash to approve",
        "extschema delete shop --approve 64551f167d48415a",
        "extschema delete shop --retain   # keep the tables, only unregister",
    ),
    "repair": ("extschema repair shop --accept-edits --dry-run", "extschema repair shop --rerender"),
    "backups": (
        "extschema backups list",
        "extschema backups list shop -o json",
        "extschema backups prune --older-than 30d --dry-run",
    ),
    "backups list": (
        "extschema backups list",
        "extschema backups list shop --no-headers",
        "extschema backups list prune   # a plugin named like a subcommand",
    ),
    "backups prune": (
        "extschema backups prune --older-than 30d --dry-run",
        "extschema backups prune --older-than 12h --force",
    ),
    "restore": ("extschema restore 0003 --dry-run", "extschema restore 0002 --plugin shop"),
    "diff": (
        "extschema diff examples/evolution/v1.yaml examples/evolution/v2.yaml --core examples/core/core.sql",
        "extschema diff --from-empty examples/ --core examples/core/core.sql --dialect sqlite -o json",
        "extschema diff old/ new/ --core core.yaml --summary --detailed-exitcode",
    ),
    "diagram": (
        "extschema diagram examples/ --core examples/core/core.sql > plugins.mmd",
        "extschema diagram -d sqlite:///extschema.db --format svg > plugins.svg",
        "extschema diagram examples/ --dependencies --format dot",
    ),
    "drift": ("extschema drift", "extschema drift shop -o json", "extschema drift shop --repair"),
    "prisma": (
        "extschema prisma -d sqlite:///app.db > prisma/schema.prisma",
        "extschema prisma plugins/ --provider postgresql --fragment",
        "extschema prisma --config -d postgresql://app@db/app",
    ),
    "types": (
        "extschema types --lang typescript -d sqlite:///app.db > src/plugins.ts",
        "extschema types --lang python examples/custom-reports.yaml",
    ),
    "analyze": ("extschema analyze shop -d postgresql://app@db/app", "extschema analyze shop --min-rows 0 -o json"),
    "crd": ("extschema crd | kubectl apply --server-side -f -", "extschema crd -o json", "extschema crd --write"),
    "run": (
        "extschema run --standalone -A --database postgresql://user:pw@db/app",
        "extschema run -n plugins --metrics-port 9090 --log-format json",
    ),
    "serve": (
        "extschema serve -d sqlite:///app.db",
        "extschema serve --host 0.0.0.0 --port 8080 --tokens tokens.yaml --read-only-schemas",
    ),
    "wait": ("extschema wait shop --for Ready -n plugins --timeout 5m",),
    "schema": (
        "extschema schema --json-schema > extschema.schema.json",
        "extschema schema --json-schema -o yaml",
    ),
    "completion": (
        "source <(extschema completion bash)",
        "extschema completion zsh > ~/.zfunc/_extschema",
        "extschema completion fish > ~/.config/fish/completions/extschema.fish",
    ),
}


def epilog(lines: tuple[str, ...]) -> str:
    """The examples as a help epilog: click's ``\\b`` keeps the lines as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def attach_examples(group: click.Group, examples: dict[str, tuple[str, ...]], prefix: str = "") -> None:
    """Give every command of *group* (and of its subgroups) its examples."""
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if path in examples:
            command.epilog = epilog(examples[path])
        if isinstance(command, click.Group):
            attach_examples(command, examples, f"{path} ")


@main.command("schema")
@click.option(
    "--json-schema",
    "fmt",
    flag_value="json-schema",
    default="json-schema",
    help="JSON Schema (draft 7) of ExtensionSchema and DatabaseTarget documents, for editors (the default).",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["json", "yaml"]),
    default="json",
    show_default=True,
    help="Print the schema as JSON, or as YAML (the same schema; not an envelope).",
)
def schema(fmt: str, output: str) -> None:
    """Print the JSON Schema of the documents extschema reads, for yaml-language-server and other editors.

    Generated from the model, like the CRDs: completion, hovers and inline errors for unknown fields, types,
    closed sets and bounds. Rules across fields (names, references, defaults) are left to `extschema validate`.
    Point an editor at it with a first line `# yaml-language-server: $schema=extschema.schema.json`
    (docs/editors.md).
    """
    from extschema import crd

    document = crd.json_schema()
    if output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120), nl=False)
    else:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@main.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL: commands, options, choices and file names.

    Load it in the current shell, or install it where the shell looks for completions (docs/editors.md).
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # the choice above lists only shells click supports
    click.echo(completer(main, {}, "extschema", "_EXTSCHEMA_COMPLETE").source())
