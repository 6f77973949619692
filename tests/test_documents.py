"""The documents the CLI reads are the ones the operator accepts: operator-only fields (targetRef, suspend),
DatabaseTargets, other kinds skipped with a note, typos of kind and apiVersion refused with a suggestion, -R,
several versions of one plugin, every problem in one pass with its line and column."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLES, run, write_schema

KUSTOMIZE = EXAMPLES / "kustomize" / "base"
TAGS = KUSTOMIZE / "work-order-tags.yaml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _without_operator_fields(directory: Path) -> Path:
    document = yaml.safe_load(TAGS.read_text())
    for key in ("targetRef", "suspend"):
        document["spec"].pop(key, None)
    path = directory / "plain" / "tags.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# --- operator-only fields and DatabaseTargets --------------------------------------------------------------


def test_the_kustomize_example_validates_with_its_database_target() -> None:
    outcome = run("validate", str(KUSTOMIZE))
    assert outcome.exit_code == 0, outcome.stderr
    assert f"{TAGS}: tags 1.0.0: valid" in outcome.stdout
    assert f"{KUSTOMIZE / 'database-target.yaml'}: DatabaseTarget app-db: valid" in outcome.stdout
    assert re.search(r"note: .*kustomization.yaml:\d+: skipped kind Kustomization", outcome.stderr), outcome.stderr
    assert "warning" not in outcome.stderr  # its DatabaseTarget is among the files
    items = run("validate", str(KUSTOMIZE), "-o", "json").items()
    assert sorted((i["kind"], i["name"], i["pluginId"]) for i in items) == [
        ("DatabaseTarget", "app-db", None),
        ("ExtensionSchema", "work-order-tags", "tags"),
    ]


def test_a_schema_naming_a_target_not_given_validates_with_a_warning() -> None:
    outcome = run("validate", str(TAGS))
    assert outcome.exit_code == 0, outcome.stderr
    assert re.search(rf"warning: {re.escape(str(TAGS))}:\d+:\d+: spec.targetRef.name: ES018: ", outcome.stderr)
    envelope = run("validate", str(TAGS), "-o", "json").json()
    assert envelope["ok"] is True and [p["code"] for p in envelope["problems"]] == ["ES018"]


def test_operator_fields_change_no_plan_hash_and_no_checksum(db_url: str, tmp_path: Path) -> None:
    """targetRef says where the operator applies; the CLI applies to --database, and the plan and recorded checksum
    are those of the same schema without it."""
    plain = _without_operator_fields(tmp_path)
    with_ref = run("plan", str(KUSTOMIZE), "-d", db_url, "-o", "json").item()
    assert with_ref["hash"] == run("plan", str(plain), "-d", db_url, "-o", "json").item()["hash"]
    applied = run("apply", str(KUSTOMIZE), "-d", db_url)
    assert applied.exit_code == 0, applied.stderr
    assert run("apply", str(plain), "-d", db_url).stdout.strip() == "tags: unchanged"
    (migration,) = run("history", "tags", "-d", db_url, "-o", "json").items()
    assert migration["checksumOk"] is True


def test_apply_skips_a_suspended_schema_with_a_note(db_url: str, tmp_path: Path) -> None:
    suspended = write_schema(tmp_path, "paused", "pluginId: paused\nversion: 1.0.0\nsuspend: true\ntables: [{name: t}]")
    running = write_schema(
        tmp_path, "running", "pluginId: running\nversion: 1.0.0\nsuspend: false\ntables: [{name: t}]"
    )
    assert "paused 1.0.0: valid (suspended: apply skips it)" in run("validate", str(suspended)).stdout
    planned = run("plan", str(tmp_path), "-d", db_url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    assert sorted(p["pluginId"] for p in planned.items()) == ["paused", "running"]
    assert "paused planned, but apply skips it: spec.suspend is true" in planned.stderr
    applied = run("apply", str(tmp_path), "-d", db_url)
    assert applied.exit_code == 0, applied.stderr
    assert f"note: {suspended}: paused skipped: spec.suspend is true" in applied.stderr
    assert [p["pluginId"] for p in run("status", "-d", db_url, "-o", "json").items()] == ["running"]
    assert running.exists()


def test_schemas_for_different_targets_are_not_planned_together(sqlite_url: str, tmp_path: Path) -> None:
    write_schema(tmp_path, "a", "pluginId: a\nversion: 1.0.0\ntargetRef: {name: one}\ntables: [{name: t}]")
    write_schema(tmp_path, "b", "pluginId: b\nversion: 1.0.0\ntables: [{name: t}]")
    for command in ("plan", "apply", "conflicts"):
        outcome = run(command, str(tmp_path), "-d", sqlite_url)
        assert outcome.exit_code == 1, (command, outcome.stderr)
        assert "ES019" in outcome.stderr and "DatabaseTarget one: a; the operator's default database: b" in (
            outcome.stderr
        )
    assert run("validate", str(tmp_path)).exit_code == 0  # validating them together is fine


@pytest.mark.parametrize(
    ("spec", "code", "path", "line"),
    [
        ("url: sqlite:////data/app.db\n  lockTimeout: 5 s", "ES016", "spec.lockTimeout", 7),
        ("url: sqlite:////data/app.db\n  statementTimeout: 0s", "ES016", "spec.statementTimeout", 7),
        ("url: sqlite:////data/app.db\n  urlSecretRef: {name: db}", "ES015", "spec", 5),
        ("allowRawSql: true", "ES015", "spec", 5),
        ("url: postgresql://app:s3cret@db/app", "ES017", "spec.url", 6),
        ("url: mysql://db/app", "ES017", "spec.url", 6),
        ("url: sqlite:////x.db\n  lockTimout: 5s", "ES011", "spec.lockTimout", 7),
        ("url: sqlite:////x.db\n  allowRawSql: 'yes'", "ES010", "spec.allowRawSql", 7),
    ],
)
def test_a_database_target_is_checked_at_its_path(tmp_path: Path, spec: str, code: str, path: str, line: int) -> None:
    file = _write(
        tmp_path / "target.yaml",
        f"apiVersion: extschema.io/v1alpha1\nkind: DatabaseTarget\nmetadata:\n  name: db\nspec:\n  {spec}\n",
    )
    outcome = run("validate", str(file))
    assert outcome.exit_code == 1
    assert re.search(rf"^{re.escape(str(file))}:{line}:\d+: {re.escape(path)}: {code}: ", outcome.stderr, re.M), (
        outcome.stderr
    )
    assert "s3cret" not in outcome.stderr
    if code == "ES011":
        assert 'did you mean "lockTimeout"?' in outcome.stderr


# --- kinds --------------------------------------------------------------------------------------------------


SCHEMA = "metadata: {name: x}\nspec: {pluginId: x, version: 1.0.0}\n"


@pytest.mark.parametrize(
    ("head", "code", "expected"),
    [
        ("apiVersion: extschema.io/v1alpha1\nkind: ExtensionShema\n", "ES014", "did you mean ExtensionSchema?"),
        ("apiVersion: extschema.io/v1alpha1\nkind: extensionschema\n", "ES014", "did you mean ExtensionSchema?"),
        ("apiVersion: extschema.io/v1alpha1\nkind: DatabaseTargte\n", "ES014", "did you mean DatabaseTarget?"),
        ("apiVersion: apps/v1\nkind: ExtensionSchemas\n", "ES014", "did you mean ExtensionSchema?"),
        ("apiVersion: extschema.io/v1alpha1\nkind: Plugin\n", "ES014", "the kinds of extschema.io are"),
        ("apiVersion: extschema.io/v1alpha1\n", "ES014", "the document has no kind"),
        ("apiVersion: extschema.io/v1\nkind: ExtensionSchema\n", "ES003", "use extschema.io/v1alpha1"),
        ("apiVersion: extschem.io/v1alpha1\nkind: ExtensionSchema\n", "ES003", "use extschema.io/v1alpha1"),
        ("apiVersion: extschem.io/v1alpha1\nkind: Thing\n", "ES014", "the kinds of extschema.io are"),
    ],
)
def test_a_typo_in_kind_or_api_version_is_an_error_never_a_skipped_document(
    tmp_path: Path, head: str, code: str, expected: str
) -> None:
    good = write_schema(tmp_path, "good", "pluginId: good\nversion: 1.0.0")
    typo = _write(tmp_path / "typo.yaml", head + SCHEMA)
    for command in (("validate",), ("plan", "-d", f"sqlite:///{tmp_path / 'x.db'}")):
        outcome = run(command[0], str(good), str(typo), *command[1:])
        assert outcome.exit_code == 1, outcome.stdout
        (line,) = [line for line in outcome.stderr.splitlines() if str(typo) in line]
        assert re.match(rf"{re.escape(str(typo))}:\d+:1: (kind|apiVersion): {code}: ", line), line
        assert expected in line
    assert not (tmp_path / "x.db").exists()


def test_documents_of_other_kinds_are_skipped_with_a_note(tmp_path: Path) -> None:
    _write(
        tmp_path / "app.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {a: b}
        ---
        apiVersion: extschema.io/v1alpha1
        kind: ExtensionSchema
        metadata: {name: s}
        spec: {pluginId: s, version: 1.0.0}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        """,
    )
    outcome = run("validate", str(tmp_path))
    assert outcome.exit_code == 0, outcome.stderr
    assert f"note: {tmp_path / 'app.yaml'}:1: skipped kind ConfigMap (v1): not an extschema.io document" in (
        outcome.stderr
    )
    assert f"{tmp_path / 'app.yaml'}:11: skipped kind Deployment (apps/v1)" in outcome.stderr
    only_others = _write(tmp_path / "other" / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    nothing = run("validate", str(only_others))
    assert nothing.exit_code == 1 and "ES004" in nothing.stderr


# --- -R and directories ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("validate",),
        ("plan", "-d", "DB"),
        ("apply", "-d", "DB"),
        ("conflicts", "-d", "DB"),
        ("prisma", "--provider", "sqlite", "--fragment"),
        ("types", "--lang", "typescript"),
    ],
)
def test_recursive_reads_subdirectories_for_every_command_taking_paths(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    tree = tmp_path / "repo"
    (tree / "plugins" / "nested").mkdir(parents=True)
    write_schema(tree / "plugins" / "nested", "deep", "pluginId: deep\nversion: 1.0.0\ntables: [{name: item}]")
    (tree / ".git").mkdir()
    _write(tree / ".git" / "junk.yaml", "not: [valid")  # hidden directories are left out
    args = [a.replace("DB", f"sqlite:///{tmp_path / 'x.db'}") for a in command]
    flat = run(args[0], str(tree), *args[1:])
    assert flat.exit_code == 1 and "ES004" in flat.stderr and "add -R (--recursive)" in flat.stderr, flat.stderr
    deep = run(args[0], "-R", str(tree), *args[1:])
    assert deep.exit_code == 0, deep.stderr
    assert re.search("deep|Deep|1 schema", deep.stdout), deep.stdout


def test_versions_of_one_plugin_in_a_directory_say_how_to_validate_them() -> None:
    evolution = EXAMPLES / "evolution"
    together = run("validate", str(evolution))
    assert together.exit_code == 1
    assert "versions 1.0.0 and 2.0.0 of one plugin cannot be applied together" in together.stderr
    assert "extschema validate --each-file PATH" in together.stderr
    each = run("validate", "--each-file", str(evolution))
    assert each.exit_code == 0, each.stderr
    assert each.stdout.splitlines() == [
        f"{evolution / 'v1.yaml'}: helpdesk 1.0.0: valid",
        f"{evolution / 'v2.yaml'}: helpdesk 2.0.0: valid",
    ]


def test_each_file_still_refuses_a_plugin_declared_twice_in_one_file(tmp_path: Path) -> None:
    doc = "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: a}\n"
    doc += "spec: {pluginId: a, version: 1.0.0}\n"
    file = _write(tmp_path / "twice.yaml", f"{doc}---\n{doc}")
    outcome = run("validate", "--each-file", str(file))
    assert outcome.exit_code == 1 and re.search(rf"{re.escape(str(file))}:8:\d+: metadata.name: ES104", outcome.stderr)


# --- one pass, with lines -------------------------------------------------------------------------------


ONE_PASS = """
apiVersion: extschema.io/v1alpha1
kind: ExtensionSchema
metadata: {name: types}
spec:
  pluginId: types
  version: 1.0.0
  tables:
    - name: item
      fields:
        - {name: n, type: Int, validation: {min: 5, max: 1}}
        - {name: s, type: String, default: 5, colour: red}
        - {name: d, type: Decimal, precision: 4, scale: 9}
  relationships:
    - {source: item, target: core.work_orders, onDelete: SetNul}
"""


def test_structural_errors_do_not_hide_rule_errors_and_each_has_its_line(tmp_path: Path) -> None:
    file = _write(tmp_path / "types.yaml", ONE_PASS)
    outcome = run("validate", str(file))
    assert outcome.exit_code == 1
    found = {
        (m.group(2), m.group(3), int(m.group(1)))
        for m in re.finditer(rf"^{re.escape(str(file))}:(\d+):\d+: (\S+): (ES\d+): ", outcome.stderr, re.M)
    }
    assert found == {
        ("spec.tables[0].fields[1].colour", "ES011", 11),
        ("spec.relationships[0].onDelete", "ES013", 14),
        ("spec.tables[0].fields[0].validation.min", "ES107", 10),
        ("spec.tables[0].fields[1].default", "ES105", 11),
        ("spec.tables[0].fields[2].scale", "ES110", 12),
    }, outcome.stderr
    assert 'Unknown field "colour". Allowed fields here:' in outcome.stderr  # the sentence ends before the list
    problems = json.loads(run("validate", str(file), "-o", "json").stdout)["problems"]
    on_delete = next(p for p in problems if p["code"] == "ES013")
    assert (on_delete["file"], on_delete["line"], on_delete["column"]) == (str(file), 14, 48)  # the key onDelete
    assert all(isinstance(p["line"], int) and isinstance(p["column"], int) for p in problems)


def test_a_missing_required_value_still_reports_structure_only(tmp_path: Path) -> None:
    """A table without its name cannot be checked by the rules: only the structural problem, no invented ones."""
    file = _write(
        tmp_path / "noname.yaml",
        "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: a}\n"
        "spec:\n  pluginId: a\n  version: 1.0.0\n  tables:\n    - fields: [{name: x, type: Int}]\n",
    )
    outcome = run("validate", str(file))
    assert outcome.exit_code == 1
    assert [line.split(": ")[2] for line in outcome.stderr.splitlines()] == ["ES012"], outcome.stderr
    assert outcome.stderr.startswith(f"{file}:8:7: spec.tables[0].name: ES012")


def test_problems_found_against_the_database_carry_their_line(db_url: str, tmp_path: Path) -> None:
    """A conflict or a planning refusal about a path of a document points at its line too."""
    file = _write(
        tmp_path / "ref.yaml",
        """
        apiVersion: extschema.io/v1alpha1
        kind: ExtensionSchema
        metadata: {name: ref}
        spec:
          pluginId: ref
          version: 1.0.0
          tables:
            - name: t
          relationships:
            - {source: t, target: core.nosuch}
        """,
    )
    for command in ("conflicts", "plan"):
        outcome = run(command, str(file), "-d", db_url)
        assert outcome.exit_code == 1
        assert f"{file}:10:19: spec.relationships[0].target: ES204: " in outcome.stderr, outcome.stderr


def test_a_database_target_gets_every_problem_in_one_pass(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "target.yaml",
        """
        apiVersion: extschema.io/v1alpha1
        kind: DatabaseTarget
        metadata: {name: db}
        spec:
          url: sqlite:////data/app.db
          lockTimout: 5s
          statementTimeout: 2 minutes
          allowRawSql: "no"
        """,
    )
    outcome = run("validate", str(file))
    assert outcome.exit_code == 1
    found = re.findall(rf"^{re.escape(str(file))}:(\d+):\d+: (\S+): (ES\d+): ", outcome.stderr, re.M)
    assert sorted(found) == [
        ("6", "spec.lockTimout", "ES011"),
        ("7", "spec.statementTimeout", "ES016"),
        ("8", "spec.allowRawSql", "ES010"),
    ], outcome.stderr


def test_a_bare_spec_is_refused_with_how_to_wrap_it(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("pluginId: shop\nversion: 1.0.0\ntables: []\n")
    outcome = run("validate", str(bare))
    assert outcome.exit_code == 1
    assert "ES014" in outcome.stderr and "bare spec" in outcome.stderr and "kind: ExtensionSchema" in outcome.stderr
