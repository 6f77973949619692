"""examples/: every schema is valid and carries its sync wave; the evolution example upgrades losing no row.

The four top-level examples are applied together by test_cli (and by ``make demo``); the kustomize example is
built and dry-run by test_argocd; the plugin chart (``examples/plugin-chart/``) is installed by test_plugin_chart.
This module covers what lives in sub-directories: ``examples/evolution/``
(version 1 applied and filled, version 2 planned, gated, approved by its hash, applied: renamed values kept,
the dropped field's values backed up and restored) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import EXAMPLES, REPO, execute, ext_table, load_core, run

EVOLUTION = EXAMPLES / "evolution"
V1 = str(EVOLUTION / "v1.yaml")
V2 = str(EVOLUTION / "v2.yaml")

#: (title, priority, note, work order) of the tickets written under version 1.
TICKETS = [
    ("printer jams", "normal", "tray 2", 1),
    ("no network", "high", None, 1),
    ("new chair", "low", "blue, please", None),
    ("badge expired", "normal", "since Monday", 2),
]


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every ExtensionSchema and DatabaseTarget document under examples/ (rejected ones included)."""
    found = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        if "plugin-chart" in path.parts:
            continue  # Helm templates, not YAML: tests/test_plugin_chart.py renders and checks them
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") in ("ExtensionSchema", "DatabaseTarget"):
                found.append((path, document))
    return found


def test_there_are_at_least_five_examples_and_every_one_validates() -> None:
    """One file at a time: the versions of examples/evolution/ are one plugin's, never applied together."""
    schemas = sorted({path for path, doc in _documents() if doc["kind"] == "ExtensionSchema"})
    assert len([p for p in schemas if p.parent.name != "rejected"]) >= 5, schemas
    for path in schemas:
        outcome = run("validate", str(path))
        assert outcome.exit_code == 0, (path, outcome.stdout, outcome.stderr)


def _yaml_files(*roots: Path) -> list[Path]:
    """Every YAML file under *roots*, Helm templates left out (rendered below: they are not YAML until then)."""
    return sorted(
        p for root in roots for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and "templates" not in p.parts
    )


def _validated(*paths: str) -> set[str]:
    """Validate every file on its own (`validate --each-file`); the files it read, each valid or skipped by kind."""
    outcome = run("validate", "--each-file", *paths)
    assert outcome.exit_code == 0, outcome.stderr
    assert "warning" not in outcome.stderr, outcome.stderr
    valid = {line.split(": ", 1)[0] for line in outcome.stdout.splitlines() if line.endswith(": valid")}
    skipped = {m.group(1) for m in re.finditer(r"^note: (.+?):\d+: skipped ", outcome.stderr, re.M)}
    return valid | skipped


def test_validate_reads_every_yaml_under_examples_and_deploy_and_skips_none() -> None:
    """What a GitOps repository holds next to its schemas: each file is valid or holds only other kinds, never a
    document silently dropped or refused (the kustomize example's targetRef, the argocd testdata's status)."""
    files = _yaml_files(EXAMPLES, REPO / "deploy")
    assert {str(p) for p in files} == _validated(*map(str, files))
    ours = run("validate", "--each-file", *map(str, files), "-o", "json").items()
    assert {item["file"] for item in ours} >= {str(EXAMPLES / "kustomize" / "base" / "work-order-tags.yaml")}
    # -R over the same directories reads the same files
    recursive = run("validate", "--each-file", "-R", str(EXAMPLES), str(REPO / "deploy"))
    assert recursive.exit_code == 1  # the plugin chart's templates are not YAML before Helm renders them
    assert {m.group(1) for m in re.finditer(r"^(\S+?):\d+:\d+: -: ES001", recursive.stderr, re.M)} == {
        str(p) for p in (EXAMPLES / "plugin-chart" / "templates").glob("*.yaml")
    }


def _helm(*args: str) -> str:
    from tests.controlplane.helm import ensure_helm

    proc = subprocess.run(
        [str(ensure_helm()), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return proc.stdout


@pytest.mark.helm
@pytest.mark.parametrize("values", [[], ["--set", "database.existingSecret=app-db"]], ids=["targets", "default-db"])
def test_the_charts_notes_example_validates(tmp_path: Path, values: list[str]) -> None:
    """NOTES.txt prints a first resource to kubectl apply: the CLI accepts it as printed."""
    out = _helm("install", "x", str(REPO / "charts" / "extschema"), "--dry-run=client", *values)
    match = re.search(r"cat <<'YAML' \| kubectl apply -n \S+ -f -\n(.*?)\n\s*YAML\n", out, re.S)
    assert match, out
    notes = tmp_path / "notes.yaml"
    notes.write_text(textwrap.dedent(match.group(1)))
    outcome = run("validate", str(notes))
    assert outcome.exit_code == 0, outcome.stderr
    assert f"{notes}: hello 1.0.0: valid" in outcome.stdout
    assert ("DatabaseTarget app-db: valid" in outcome.stdout) == (not values)


@pytest.mark.helm
def test_the_plugin_charts_rendered_schema_validates(tmp_path: Path) -> None:
    rendered = tmp_path / "plugin-chart.yaml"
    rendered.write_text(_helm("template", "notes", str(EXAMPLES / "plugin-chart")))
    outcome = run("validate", str(rendered))
    assert outcome.exit_code == 0, outcome.stderr
    assert ": valid" in outcome.stdout and "skipped kind Deployment" in outcome.stderr


def test_every_example_meant_for_git_carries_its_sync_wave() -> None:
    """CRDs come with the chart; DatabaseTargets wave 1, schemas 2, schemas depending on others 3 (docs/install.md)."""
    for path, doc in _documents():
        if path.parent.name == "rejected":
            continue
        wave = doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave")
        expected = "1" if doc["kind"] == "DatabaseTarget" else ("3" if doc["spec"].get("dependsOn") else "2")
        assert wave == expected, f"{path.relative_to(EXAMPLES)}: sync-wave {wave!r}, expected {expected!r}"


def _backup_table(url: str, name: str) -> str:
    if url.startswith("sqlite") or "." in name:
        return ".".join(f'"{part}"' for part in name.split("."))
    return f'"extschema_backup"."{name}"'


def test_the_evolution_example_upgrades_keeping_every_row(db_url: str) -> None:
    load_core(db_url)
    execute(db_url, "INSERT INTO work_orders (id, title) VALUES (1, 'boiler'), (2, 'lobby')")
    assert run("apply", V1, "-d", db_url).exit_code == 0
    table = ext_table(db_url, "helpdesk", "ticket")
    for title, priority, note, order in TICKETS:
        execute(
            db_url,
            f"INSERT INTO {table} (title, priority, note, work_order_id) VALUES (:t, :p, :n, :o)",
            {"t": title, "p": priority, "n": note, "o": order},
        )

    planned = run("plan", V2, "-d", db_url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    plan = planned.item()
    assert plan["class"] == "destructive"
    assert [(op["description"], op["class"]) for op in plan["ops"]] == [
        ("rename column ticket.title to subject", "safe"),
        ("rename value normal of enum ticket_priority to medium", "safe"),
        ("add values urgent to enum ticket_priority", "safe"),
        ("drop column ticket.note", "destructive"),
    ]
    check = plan["ops"][-1]["check"]
    assert (check["kind"], check["table"], check["column"], check["count"]) == ("values_lost", "ticket", "note", 3)
    assert plan["hash"] == run("plan", V2, "-d", db_url, "-o", "json").item()["hash"]  # stable

    # Not approved, and approved with another plan's hash: refused, nothing changes.
    unapproved = run("apply", V2, "-d", db_url, "-o", "json")
    assert unapproved.exit_code == 1
    assert [p["code"] for p in json.loads(unapproved.stdout)["problems"]] == ["ES307"]
    (pending,) = unapproved.items()
    assert pending["hash"] == plan["hash"] and pending["destructive"] is True
    stale = run("apply", V2, "-d", db_url, "--approve", "0123456789abcdef")
    assert stale.exit_code == 1 and "ES308" in stale.stderr
    assert len(run("history", "helpdesk", "-d", db_url, "-o", "json").items()) == 1
    assert execute(db_url, f"SELECT count(*) FROM {table} WHERE note IS NOT NULL")[0][0] == 3

    applied = run("apply", V2, "-d", db_url, "--approve", plan["hash"])
    assert applied.exit_code == 0, applied.stderr
    assert "backed up ticket.note" in applied.stdout
    rows = execute(db_url, f"SELECT id, subject, priority, work_order_id FROM {table} ORDER BY id")
    assert [tuple(r[1:]) for r in rows] == [
        (title, "medium" if priority == "normal" else priority, order) for title, priority, _, order in TICKETS
    ]
    execute(db_url, f"INSERT INTO {table} (subject, priority) VALUES ('flood', 'urgent')")  # the added value works
    assert execute(db_url, f"SELECT priority FROM {table} WHERE subject = 'flood'") == [("urgent",)]

    # Every value of the dropped field is in the backup, by id.
    (backup,) = run("backups", "helpdesk", "-d", db_url, "-o", "json").items()
    assert (backup["migrationId"], backup["sourceTable"], backup["sourceColumn"]) == ("0002", "ticket", "note")
    assert backup["rows"] == len(TICKETS)
    saved = execute(db_url, f"SELECT id, note FROM {_backup_table(db_url, backup['backupTable'])} ORDER BY id")
    assert [tuple(r) for r in saved] == [(r[0], t[2]) for r, t in zip(rows, TICKETS, strict=True)]

    # The plan is done: planning v2 again finds nothing, and the database is as the spec says.
    assert run("plan", V2, "-d", db_url, "-o", "json").item()["ops"] == []
    assert run("drift", "helpdesk", "-d", db_url).exit_code == 0

    # Rolling migration 0002 back brings version 1 back with every title, priority and note.
    execute(db_url, f"DELETE FROM {table} WHERE priority = 'urgent'")  # the one row v1 could not hold
    rolled_back = run("rollback", "helpdesk", "-d", db_url)
    assert rolled_back.exit_code == 0, rolled_back.stderr
    back = execute(db_url, f"SELECT title, priority, note, work_order_id FROM {table} ORDER BY id")
    assert [tuple(r) for r in back] == TICKETS


def test_the_evolution_example_is_approved_through_the_spec(sqlite_url: str, tmp_path: Path) -> None:
    """spec.approvedPlanHash (what Git holds, what the Argo CD action sets) approves exactly as --approve does."""
    load_core(sqlite_url)
    assert run("apply", V1, "-d", sqlite_url).exit_code == 0
    digest = run("plan", V2, "-d", sqlite_url, "-o", "json").item()["hash"]
    document = yaml.safe_load(Path(V2).read_text())
    approved = tmp_path / "v2-approved.yaml"
    for given, exit_code in (("0123456789abcdef", 1), (digest, 0)):
        document["spec"]["approvedPlanHash"] = given
        approved.write_text(yaml.safe_dump(document, sort_keys=False))
        assert run("plan", str(approved), "-d", sqlite_url, "-o", "json").item()["hash"] == digest  # not hashed
        outcome = run("apply", str(approved), "-d", sqlite_url)
        assert outcome.exit_code == exit_code, outcome.stderr
        assert ("ES308" in outcome.stderr) == (exit_code == 1)
    (helpdesk,) = run("status", "-d", sqlite_url, "-o", "json").items()
    assert helpdesk["version"] == "2.0.0"
