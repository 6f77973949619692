"""``extschema diagram``: every example drawn as Mermaid (checked structurally against the resolved schema),
as Graphviz dot text and as SVG through the real ``dot``; from files and from a database's registry."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from extschema import loading, planning
from extschema.problems import ProblemError
from tests.helpers import EXAMPLES, REPO, load_core, run

CORE_SQL = str(EXAMPLES / "core" / "core.sql")
ENTITY = re.compile(r"^    (\w+) \{$")
ATTRIBUTE = re.compile(r'^        (\w+) (\w+)(?: (PK|FK|UK)(?:,(?:PK|FK|UK))*)?(?: "[^"]*")?$')
RELATION = re.compile(r'^    (\w+) (\}o|\|o)--(o\||\|\|) (\w+) : "(\w+)"$')


def _example_files() -> list[Path]:
    """Every YAML file under examples/ that holds ExtensionSchema documents (Helm templates are not YAML yet)."""
    found = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        if "templates" in path.parts:
            continue
        try:
            loading.load([str(path)])
        except ProblemError:
            continue
        found.append(path)
    return found


EXAMPLE_FILES = _example_files()


def _mermaid(text: str) -> tuple[dict[str, list[str]], list[tuple[str, str, str]]]:
    """Entities with their attribute names, and relationships (source, target, label): every line must parse."""
    lines = text.splitlines()
    assert lines[0] == "erDiagram"
    entities: dict[str, list[str]] = {}
    relations = []
    current: str | None = None
    for line in lines[1:]:
        if current is not None:
            if line == "    }":
                current = None
                continue
            attribute = ATTRIBUTE.match(line)
            assert attribute, f"not an attribute: {line!r}"
            entities[current].append(attribute.group(2))
        elif entity := ENTITY.match(line):
            current = entity.group(1)
            assert current not in entities
            entities[current] = []
        else:
            relation = RELATION.match(line)
            assert relation, f"neither an entity nor a relationship: {line!r}"
            relations.append((relation.group(1), relation.group(4), relation.group(5)))
    assert current is None, "an entity block is not closed"
    return entities, relations


def test_the_examples_are_all_found() -> None:
    names = {p.name for p in EXAMPLE_FILES}
    assert {"comments.yaml", "knowledge-base.yaml", "v1.yaml", "v2.yaml", "report-takeover.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_drawn_as_mermaid_holds_every_table_field_and_foreign_key(path: Path) -> None:
    outcome = run("diagram", str(path), "--core", CORE_SQL)
    assert outcome.exit_code == 0, outcome.stderr
    entities, relations = _mermaid(outcome.stdout)
    for item in loading.load([str(path)]):
        resolved = planning.shape(item.spec)
        for table in resolved.tables:
            key = f"{item.spec.plugin_id}__{table.name}"
            assert entities[key] == ["id", *(c.name for c in table.columns)]
            for column in table.columns:
                if column.foreign_key is not None:
                    ref = column.foreign_key.references
                    assert (key, f"{ref.plugin}__{ref.table}", column.name) in relations
    drawn = {item.spec.plugin_id for item in loading.load([str(path)])} | {"core"}  # core tables: from --core
    for source, target, _ in relations:
        # A table of a plugin not drawn (a dependency in another file) is named by the relationship alone.
        assert source in entities and (target in entities or target.split("__")[0] not in drawn)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (.ci/install-deps installs it)")
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_renders_with_graphviz(path: Path) -> None:
    dot_text = run("diagram", str(path), "--format", "dot", "--core", CORE_SQL)
    assert dot_text.exit_code == 0, dot_text.stderr
    checked = subprocess.run(["dot", "-Tsvg"], input=dot_text.stdout, capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and not checked.stderr, checked.stderr
    svg = run("diagram", str(path), "--format", "svg", "--core", CORE_SQL)
    assert svg.exit_code == 0, svg.stderr
    assert svg.stdout.lstrip().startswith("<?xml") and "</svg>" in svg.stdout
    for item in loading.load([str(path)]):
        assert f"cluster_{item.spec.plugin_id}" in svg.stdout
        for table in planning.shape(item.spec).tables:
            assert f"<title>{item.spec.plugin_id}__{table.name}</title>" in svg.stdout


def test_the_dependency_graph(tmp_path: Path) -> None:
    outcome = run("diagram", str(EXAMPLES), "--dependencies")
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.splitlines()[0] == "flowchart LR"
    assert "    kb -->|dependsOn| comments" in outcome.stdout.splitlines()
    dot_text = run("diagram", str(EXAMPLES), "--format", "dot", "--core", CORE_SQL).stdout
    assert 'lhead="cluster_comments", style=dashed, color=gray40, label="dependsOn"' in dot_text


def test_drawn_from_a_database_as_from_its_files(db_url: str) -> None:
    """The registry's plugins and the core tables read from the database give the picture of the files."""
    load_core(db_url)
    applied = run("apply", str(EXAMPLES), "-d", db_url)
    assert applied.exit_code == 0, applied.stderr
    from_database = run("diagram", "-d", db_url)
    assert from_database.exit_code == 0, from_database.stderr
    assert from_database.stdout == run("diagram", str(EXAMPLES), "--core", CORE_SQL).stdout


def test_without_graphviz_svg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    outcome = run("diagram", str(EXAMPLES / "comments.yaml"), "--format", "svg")
    assert outcome.exit_code == 1
    assert "ES766" in outcome.stderr and "graphviz" in outcome.stderr.lower()


@pytest.mark.parametrize("args", [[], [str(EXAMPLES), "-d", "sqlite:///x.db"]])
def test_files_or_a_database(args: list[str]) -> None:
    outcome = run("diagram", *args)
    assert outcome.exit_code == 2 and "ES763" in outcome.stderr


def test_the_page_shows_what_its_commands_print() -> None:
    """docs/diagram.md: each command runs, and its Mermaid blocks are what the first two print."""
    page = (REPO / "docs" / "diagram.md").read_text()
    (commands,) = re.findall(r"```sh\n(.*?)```", page, re.DOTALL)
    outputs = []
    for line in commands.splitlines():
        args = shlex.split(line)
        assert args[0] == "extschema"
        if "svg" in args and shutil.which("dot") is None:
            continue
        outcome = run(*[str(REPO / a) if a.startswith("examples/") else a for a in args[1:]])
        assert outcome.exit_code == 0, (line, outcome.stderr)
        outputs.append(outcome.stdout)
    assert re.findall(r"```mermaid\n(.*?)```", page, re.DOTALL) == outputs[:2]


def test_dependencies_as_graphviz() -> None:
    outcome = run("diagram", str(EXAMPLES), "--dependencies", "--format", "dot")
    assert outcome.exit_code == 0, outcome.stderr
    assert '  "kb" -> "comments" [label="dependsOn"];' in outcome.stdout.splitlines()
    if shutil.which("dot"):
        drawn = subprocess.run(["dot", "-Tsvg"], input=outcome.stdout, capture_output=True, text=True, check=False)
        assert drawn.returncode == 0 and "<title>kb&#45;&gt;comments</title>" in drawn.stdout, drawn.stderr


def test_without_core_tables_a_core_reference_is_named_and_typed_as_an_id() -> None:
    outcome = run("diagram", str(EXAMPLES / "comments.yaml"))
    assert outcome.exit_code == 0, outcome.stderr
    entities, relations = _mermaid(outcome.stdout)
    assert set(entities) == {"comments__comment"}
    assert ("comments__comment", "core__work_orders", "work_order_id") in relations
    assert "        BigInt work_order_id FK" in outcome.stdout.splitlines()
