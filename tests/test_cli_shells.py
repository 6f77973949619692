"""Editors and shells: the JSON Schema validates every example document and refuses broken ones, the bash
completion script completes commands, every --help ends with examples that parse; the list commands print tables
with headers (or none), ``status PLUGIN``, ``backups list|prune`` wherever the subcommand stands."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema_rs
import pytest
import yaml

from extschema import cli, crd
from extschema.cli import kubectl
from tests.helpers import EXAMPLES, REPO, execute, ext_table, run, write_schema

SHOP = """
pluginId: shop
version: 1.0.0
tables:
  - name: order
    fields:
      - {name: title, type: String}
      - {name: note, type: Text}
"""


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every extschema document under examples/ (Helm templates left out: they are not YAML until rendered)."""
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        text = path.read_text()
        if "{{" in text:
            continue
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("extschema.io/"):
                yield str(path.relative_to(REPO)), doc


def _validator() -> Any:
    printed = run("schema", "--json-schema")
    assert printed.exit_code == 0, printed.stderr
    return jsonschema_rs.Draft7Validator(json.loads(printed.stdout))


def test_every_example_document_is_valid_against_the_json_schema() -> None:
    validator = _validator()
    documents = list(_documents())
    assert {doc["kind"] for _, doc in documents} == {"ExtensionSchema", "DatabaseTarget"}
    assert len(documents) >= 8
    for name, doc in documents:
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], name


@pytest.mark.parametrize(
    ("where", "broken", "said"),
    [
        ("table key misspelled", lambda d: d["spec"]["tables"][0].update(feilds=[]), "feilds"),
        ("unknown type", lambda d: d["spec"]["tables"][0]["fields"][0].update(type="string"), "string"),
        ("pluginId pattern", lambda d: d["spec"].update(pluginId="Shop-1"), "Shop-1"),
        ("kind misspelled", lambda d: d.update(kind="ExtensionShema"), "ExtensionShema"),
        ("no spec", lambda d: d.pop("spec"), "spec"),
        ("a string for a boolean", lambda d: d["spec"]["tables"][0]["fields"][0].update(required="yes"), "yes"),
    ],
)
def test_a_broken_document_fails(where: str, broken: Any, said: str) -> None:
    doc = yaml.safe_load((EXAMPLES / "custom-reports.yaml").read_text())
    broken(doc)
    messages = [e.message for e in _validator().iter_errors(doc)]
    assert messages and any(said in m for m in messages), (where, messages)


def test_the_json_schema_follows_the_model_and_prints_as_yaml_too() -> None:
    schema = crd.json_schema()
    spec = schema["definitions"]["ExtensionSchema"]["properties"]["spec"]
    crd_spec = crd.extension_schema_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == set(crd_spec["properties"]) >= {"pluginId", "tables", "targetRef", "suspend"}
    as_yaml = run("schema", "--json-schema", "-o", "yaml")
    assert as_yaml.exit_code == 0 and yaml.safe_load(as_yaml.stdout) == schema
    assert "# yaml-language-server: $schema=" in (REPO / "docs" / "editors.md").read_text()


def test_bash_completion_completes_commands(tmp_path: Path) -> None:
    script = run("completion", "bash")
    assert script.exit_code == 0 and "_EXTSCHEMA_COMPLETE" in script.stdout
    (tmp_path / "completion.bash").write_text(script.stdout)
    program = tmp_path / "extschema"  # what the package installs on PATH
    entry = "from extschema.cli import main; main(prog_name='extschema')"  # as the console script calls it
    program.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{entry}" "$@"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(tmp_path), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]),
    }

    def complete(*words: str) -> list[str]:
        line = " ".join(shlex.quote(w) for w in words)
        probe = (
            f"source {tmp_path / 'completion.bash'}\n"
            f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
            "_extschema_completion extschema\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("extschema", "ap") == ["apply"]
    assert complete("extschema", "backups", "prune", "--older") == ["--older-than"]
    assert complete("extschema", "completion", "z") == ["zsh"]
    for shell in ("zsh", "fish"):
        assert run("completion", shell).exit_code == 0
    assert run("completion", "tcsh").exit_code == 2


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def _parses(group: click.Group, program: str, words: list[str]) -> tuple[str, ...]:
    """Parse *words* as click would (options, choices, arguments), without running anything; the command path."""
    ctx = group.make_context(program, list(words), resilient_parsing=False)
    path: list[str] = []
    command: click.Command = group
    while isinstance(command, click.Group) and (ctx._protected_args or ctx.args):
        name, *rest = [*ctx._protected_args, *ctx.args]
        found = command.get_command(ctx, name)
        assert found is not None, f"{program} {' '.join(words)}: no command {name!r}"
        path.append(name)
        ctx = found.make_context(name, rest, parent=ctx)
        command = found
    return tuple(path)


@pytest.mark.parametrize(
    ("group", "program"), [(cli.main, "extschema"), (kubectl.main, "kubectl extschema")], ids=["cli", "kubectl"]
)
def test_every_help_ends_with_examples_that_parse(group: click.Group, program: str) -> None:
    for path, command in _commands(group):
        shown = run(*path, "--help") if group is cli.main else None
        text = shown.stdout if shown is not None else command.get_help(click.Context(command, info_name=path[-1]))
        assert "Examples:" in text, path
        lines = [line.strip() for line in text[text.index("Examples:") :].splitlines()[1:] if line.strip()]
        examples = [line for line in lines if line.startswith(program)]
        assert examples, path
        for example in examples:
            words = shlex.split(example, comments=True)
            command_words = words[len(program.split()) :]
            if "|" in command_words:
                command_words = command_words[: command_words.index("|")]
            if ">" in command_words:
                command_words = command_words[: command_words.index(">")]
            assert _parses(group, program, command_words)[: len(path)] == path, example


def test_help_says_what_crd_writes_and_what_run_reads() -> None:
    assert "docs/crd-reference.md" in run("crd", "--help").stdout
    shown = run("run", "--help").stdout
    assert "EXTSCHEMA_METRICS_PORT" in shown and "EXTSCHEMA_ALLOW_RAW_SQL" in shown


def test_crd_prints_yaml_or_a_kubectl_list() -> None:
    as_yaml = list(yaml.safe_load_all(run("crd").stdout))
    listed = json.loads(run("crd", "-o", "json").stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert listed["items"] == as_yaml == [build() for build in crd.FILES.values()]


def test_the_readme_lists_the_printer_columns_of_o_wide() -> None:
    columns = [c["name"] for c in crd.extension_schema_crd()["spec"]["versions"][0]["additionalPrinterColumns"]]
    line = next(line for line in (REPO / "README.md").read_text().splitlines() if "get exts -A -o wide" in line)
    said = line.split("#", 1)[1]
    assert [c for c in columns if c in said] == columns, said


def _shop(url: str, tmp_path: Path) -> None:
    v1 = write_schema(tmp_path, "shop", SHOP)
    assert run("apply", str(v1), "-d", url).exit_code == 0
    table = ext_table(url, "shop", "order")
    execute(url, f"INSERT INTO {table} (title, note) VALUES " + ", ".join(f"('t{i}', 'n')" for i in range(1234)))
    v2 = write_schema(
        tmp_path / "v2", "shop", SHOP.replace("1.0.0", "2.0.0").replace("      - {name: note, type: Text}\n", "")
    )
    digest = run("plan", str(v2), "-d", url, "-o", "json").item()["hash"]
    assert run("apply", str(v2), "-d", url, "--approve", digest).exit_code == 0


def test_list_commands_print_tables_with_headers(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    _shop(db_url, tmp_path)
    headed = {
        ("status",): ["PLUGIN", "VERSION", "STATE", "OWNER", "TABLES", "DRIFT"],
        ("history",): ["PLUGIN", "MIGRATION", "KIND", "VERSION", "STATUS", "STARTED", "DURATION", "SQL", "CHECKSUM"],
        ("backups", "list"): ["PLUGIN", "MIGRATION", "SOURCE", "ROWS", "AGE", "BACKUP", "TABLE"],
        ("drift",): ["PLUGIN", "STATE", "DIFFERENCE", "DETAIL"],
    }
    for words, header in headed.items():
        shown = run(*words, "-d", db_url)
        assert shown.exit_code == 0, shown.stderr
        first, *rest = shown.stdout.splitlines()
        assert first.split() == header and rest and rest[0].split()[0] == "shop", shown.stdout
        bare = run(*words, "-d", db_url, "--no-headers").stdout.splitlines()
        assert bare == rest
    (backup,) = run("backups", "list", "-d", db_url, "--no-headers").stdout.splitlines()
    assert backup.split()[:4] == ["shop", "0002", "order.note", "1,234"]
    older, newer = (
        run(*words, "-d", db_url, "-o", "json").items() for words in (("backups", "shop"), ("backups", "list", "shop"))
    )
    assert [b["backupTable"] for b in older] == [b["backupTable"] for b in newer]  # the older form lists the same


def test_status_of_one_plugin_and_of_an_unknown_one(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    _shop(db_url, tmp_path)
    (row,) = run("status", "shop", "-d", db_url, "--no-headers").stdout.splitlines()
    assert row.split()[:3] == ["shop", "2.0.0", "active"]
    assert [p["pluginId"] for p in run("status", "shop", "-d", db_url, "-o", "json").items()] == ["shop"]
    unknown = run("status", "shpo", "-d", db_url)
    assert unknown.exit_code == 1 and "ES306" in unknown.stderr and "'shpo'" in unknown.stderr
    failure = run("status", "shpo", "-d", db_url, "-o", "json").json()
    assert (failure["reason"], [p["code"] for p in failure["problems"]]) == ("refused", ["ES306"])


def test_backups_subcommands_wherever_they_stand(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    _shop(sqlite_url, tmp_path)
    pruned = run("backups", "-d", sqlite_url, "prune", "--older-than", "1s", "--dry-run")
    assert pruned.exit_code == 0 and pruned.stdout.startswith("would prune 0 backup(s)"), pruned.stderr
    # A plugin named prune: read as the plugin to list (none such here: ES306 names it), never as pruning.
    named_prune = run("backups", "list", "prune", "-d", sqlite_url)
    assert named_prune.exit_code == 1 and "plugin 'prune' is not registered" in named_prune.stderr
    assert run("backups", "-d", sqlite_url, "list", "-o", "json").items()[0]["rows"] == 1234
