"""``kubectl extschema`` (the kubectl-extschema program) against a real API server and a running operator: a
destructive version 2 waits, ``plan`` shows its hash and counts, ``approve`` refuses another hash, prints the patch
for GitOps without changing anything, and approves: the resource becomes Ready with the column gone."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from extschema import wire
from tests import test_operator_e2e as e2e
from tests.controlplane import Cluster
from tests.docsnippets import approval_hashes
from tests.helpers import REPO, subprocess_env
from tests.test_operator_e2e import Kube, Operator, columns, execute, physical, schema_doc

pytest_plugins = ["tests.controlplane.fixtures"]
#: The operator e2e suite's fixtures: a namespace per test, operators started as subprocesses.
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator


def _plugin_on_path(directory: Path) -> Path:
    """A kubectl-extschema on PATH, as the package installs it (its entry point), importing this checkout."""
    directory.mkdir(exist_ok=True)
    program = directory / "kubectl-extschema"
    program.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'from extschema.cli.kubectl import run; run()' \"$@\"\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return directory


def _kubectl(cluster: Cluster, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl ARGS`` as a user types it: kubectl finds the plugin on PATH and hands it $KUBECONFIG."""
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [str(cluster.kubectl_bin), *args], capture_output=True, text=True, env=env, timeout=180, cwd=REPO
    )


def test_the_entry_point_is_declared() -> None:
    scripts = (REPO / "pyproject.toml").read_text()
    assert 'kubectl-extschema = "extschema.cli.kubectl:run"' in scripts


def _direct(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The kubectl-extschema program itself, as kubectl runs it."""
    return subprocess.run(
        [sys.executable, "-c", "from extschema.cli.kubectl import run; run()", *args],
        capture_output=True,
        text=True,
        env={**subprocess_env(), **env},
        cwd=REPO,
        timeout=120,
    )


def test_without_credentials_it_exits_3_saying_so(tmp_path: Path) -> None:
    shown = _direct("plan", "orders", KUBECONFIG=str(tmp_path / "missing"))
    assert shown.returncode == 3 and "Traceback" not in shown.stderr
    assert shown.stderr.startswith("extensionschema orders: ES614: cannot read the Kubernetes credentials")
    failed = _direct("approve", "orders", "-o", "json", KUBECONFIG=str(tmp_path / "missing"))
    failure = wire.Failure.model_validate(json.loads(failed.stdout))
    assert (failed.returncode, failure.reason, [p.code for p in failure.problems]) == (3, "unreachable", ["ES614"])


def test_usage_errors_exit_2_and_help_names_the_program() -> None:
    assert _direct("approve").returncode == 2  # NAME is required
    assert _direct("plan", "orders", "-o", "wide").returncode == 2
    shown = _direct("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: kubectl extschema ")
    assert {"plan", "approve", "history"} <= set(shown.stdout.split())


@pytest.mark.k8s
@pytest.mark.slow
def test_plan_and_approve_a_destructive_version(
    kube: Kube, run_operator: Callable[..., Operator], sqlite_url: str, tmp_path: Path
) -> None:
    bin_dir = _plugin_on_path(tmp_path / "bin")

    def plugin(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(kube.cluster, bin_dir, "extschema", *args, "-n", kube.ns)

    run_operator(sqlite_url)
    fields: list[dict[str, Any]] = [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]
    doc = schema_doc("orders", "orders", [{"name": "item", "fields": fields}])
    kube.apply(doc)
    kube.wait("orders")
    idle = plugin("plan", "orders")
    assert idle.returncode == 0 and "no plan waits for approval" in idle.stdout, idle.stderr
    assert plugin("approve", "orders").returncode == 1  # ES611: nothing to approve
    table = physical(sqlite_url, "orders", "item")
    execute(sqlite_url, *(f"INSERT INTO {table} (title, note) VALUES ('t{i}', 'n{i}')" for i in range(1200)))

    doc["spec"]["version"] = "2.0.0"
    doc["spec"]["tables"][0]["fields"] = fields[:1]
    kube.apply(doc)
    pending = kube.wait_reason("orders", "ApprovalRequired")["status"]["pendingPlan"]["hash"]
    assert approval_hashes("docs/kubectl-plugin.md") == {pending}  # the page shows this very plan's hash

    shown = plugin("plan", "orders")
    assert shown.returncode == 0, shown.stderr
    assert f"plan {pending}: destructive" in shown.stdout and "drop column item.note" in shown.stdout
    assert "1,200 values lost" in shown.stdout and shown.stdout.splitlines()[2].split()[:2] == ["STEP", "CLASS"]
    (listed,) = wire.PlanList.model_validate(json.loads(plugin("plan", "orders", "-o", "json").stdout)).items
    assert (listed.plugin_id, listed.version, listed.hash, listed.op_class) == (
        "orders",
        "2.0.0",
        pending,
        "destructive",
    )

    wrong = plugin("approve", "orders", "0123456789abcdef")
    assert wrong.returncode == 1 and "ES612" in wrong.stderr and pending in wrong.stderr
    printed = plugin("approve", "orders", pending, "--print-patch")
    assert printed.returncode == 0, printed.stderr
    command = next(line for line in printed.stdout.splitlines() if line.startswith("kubectl patch"))
    assert command == (
        f"kubectl patch extensionschema orders -n {kube.ns} --type merge "
        f'-p \'{{"spec":{{"approvedPlanHash":"{pending}"}}}}\''
    )
    snippet = yaml.safe_load(printed.stdout[printed.stdout.index("spec:") :])
    assert snippet == {"spec": {"approvedPlanHash": pending}}
    assert "approvedPlanHash" not in kube.get("orders")["spec"]  # printing changed nothing

    approved = plugin("approve", "orders", pending)
    assert approved.returncode == 0, approved.stderr
    assert f"approved plan {pending}" in approved.stdout and "drop column item.note" in approved.stdout
    assert kube.get("orders")["spec"]["approvedPlanHash"] == pending
    kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/orders", "--timeout=60s")
    kube.wait("orders")
    assert "note" not in columns(sqlite_url, table)

    history = plugin("history", "orders")
    assert history.returncode == 0, history.stderr
    assert "CONDITION" in history.stdout and "drop column item.note" in history.stdout
    (view,) = wire.ResourceHistoryList.model_validate(
        json.loads(plugin("history", "orders", "-o", "json").stdout)
    ).items
    assert (view.applied_version, view.last_migration and view.last_migration.version) == ("2.0.0", "2.0.0")
    assert "ApprovalRequired" in {e.reason for e in view.events}
    missing = plugin("plan", "nosuch")
    assert missing.returncode == 1 and "ES610" in missing.stderr


# --- many databases: spec.targetSelector ----------------------------------------------------------

#: orders as three sites hold it: site-a and site-c at 1.0.0, site-b still at 0.9.0 (without item.code).
_SITE = """
apiVersion: extschema.io/v1alpha1
kind: ExtensionSchema
metadata: {name: orders}
spec:
  pluginId: orders
  version: VERSION
  tables:
    - name: item
      fields:
        - {name: title, type: String}
FIELDS"""
_NOTE = "        - {name: note, type: Text}\n"
_CODE = "        - {name: code, type: String}\n"
V09 = _SITE.replace("VERSION", "0.9.0").replace("FIELDS", _NOTE)
V1 = _SITE.replace("VERSION", "1.0.0").replace("FIELDS", _NOTE + _CODE)
#: 2.0.0 drops item.note: destructive on every site, with another hash where the base differs (site-b).
V2 = _SITE.replace("VERSION", "2.0.0").replace("FIELDS", _CODE)


def _file(directory: Path, name: str, text: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(text)
    return str(directory / f"{name}.yaml")


def _site(tmp_path: Path, name: str, spec: str, notes: int) -> tuple[str, dict[str, Any]]:
    """A site's database at *spec* with *notes* notes, and the plan of 2.0.0 there (``plan -o json``)."""
    from tests.helpers import ext_table, run

    url = f"sqlite:///{tmp_path / name}.db"
    assert run("apply", _file(tmp_path / name, "orders", spec), "-d", url).exit_code == 0
    table = ext_table(url, "orders", "item")
    for i in range(notes):
        execute(url, f"INSERT INTO {table} (title, note) VALUES ('t{i}', 'n{i}')")
    planned = run("plan", _file(tmp_path / name, "orders-2", V2), "-d", url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    plan: dict[str, Any] = planned.item()
    return url, plan


def _target(name: str, plan: dict[str, Any], applied: str, ops: bool = True) -> dict[str, Any]:
    """A status.targets entry waiting with *plan*, as the operator writes it (through the status model)."""
    from extschema.controller import status as status_mod
    from extschema.status_model import TargetStatus

    view = wire.PlanView.model_validate(plan)
    pending = status_mod.pending_fields(view if ops else view.model_copy(update={"ops": []}))["pendingPlan"]
    outcome = status_mod.approval_outcome(view)
    condition = {"observedGeneration": 1, "lastTransitionTime": "2026-12-07T06:00:00Z", "message": outcome.message}
    return TargetStatus.model_validate(
        {
            "name": name,
            "appliedVersion": applied,
            "pendingPlan": pending,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ApprovalRequired", **condition},
                {"type": "Reconciling", "status": "True", "reason": "ApprovalRequired", **condition},
            ],
        }
    ).model_dump(mode="json", by_alias=True, exclude_none=True)


def _write_status(kube: Kube, name: str, status: dict[str, Any]) -> None:
    """Status as the operator writes it: through the status subresource, for the current generation."""
    from extschema.status_model import ExtensionSchemaStatus

    status = {"observedGeneration": kube.get(name)["metadata"]["generation"], **status}
    ExtensionSchemaStatus.model_validate(status)
    kube("patch", "exts", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


@pytest.mark.k8s
def test_fleet_plans_are_grouped_by_hash_and_approved_into_the_list(kube: Kube, tmp_path: Path) -> None:
    """Three sites, two bases: `plan` groups the targets by hash with each one's counts; `approve` adds the
    hashes to spec.approvedPlanHashes (all, --hash, --target); the hashes so approved apply 2.0.0 everywhere."""
    from tests.helpers import run

    bin_dir = _plugin_on_path(tmp_path / "bin")

    def plugin(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(kube.cluster, bin_dir, "extschema", *args, "-n", kube.ns)

    url_a, plan_a = _site(tmp_path, "site-a", V1, 5)
    url_b, plan_b = _site(tmp_path, "site-b", V09, 3)
    url_c, plan_c = _site(tmp_path, "site-c", V1, 2)
    assert plan_a["hash"] == plan_c["hash"] != plan_b["hash"]  # one hash per base
    doc = yaml.safe_load(V2)
    doc["spec"]["targetSelector"] = {"matchLabels": {"app": "orders"}}
    doc["spec"]["rollout"] = {"maxParallel": 2}
    kube.apply(doc)
    waiting = f"waiting for approval of {plan_a['hash']} and {plan_b['hash']}"
    site_b = _target("site-b", plan_b, "0.9.0")

    def operator_writes(site_b: dict[str, Any], ready: str, message: str) -> None:
        condition = {"lastTransitionTime": "2026-12-07T06:00:00Z", "message": message}
        _write_status(
            kube,
            "orders",
            {
                "pendingPlan": _target("site-a", plan_a, "1.0.0")["pendingPlan"],
                "targets": [
                    _target("site-a", plan_a, "1.0.0"),
                    site_b,
                    _target("site-c", plan_c, "1.0.0", ops=False),  # ops kept on the first target of a hash only
                ],
                "targetsReady": ready,
                "rollout": {"phase": "Progressing", "message": message},
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ApprovalRequired", **condition},
                    {"type": "Reconciling", "status": "True", "reason": "ApprovalRequired", **condition},
                ],
            },
        )

    operator_writes(site_b, "0/3", waiting)

    shown = plugin("plan", "orders")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"plan {plan_a['hash']}: destructive, waits for approval on 2 targets: site-a, site-c" in text
    assert f"plan {plan_b['hash']}: destructive, waits for approval on 1 target: site-b" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("site-")}
    assert "5 values lost" in rows["site-a"] and "3 values lost" in rows["site-b"]
    assert rows["site-c"].split()[1] == "1.0.0" and "drop column item.note (2 values)" in rows["site-c"]
    assert "targets ready 0/3" in text.splitlines()[0]
    listed = wire.PendingPlanList.model_validate(json.loads(plugin("plan", "orders", "-o", "json").stdout)).items
    assert [(p.hash, [t.name for t in p.targets]) for p in listed] == [
        (plan_a["hash"], ["site-a", "site-c"]),
        (plan_b["hash"], ["site-b"]),
    ]
    assert listed[0].ops[0].check is not None and listed[0].ops[0].check.count == 5
    assert listed[0].targets[1].ops == [] and listed[0].targets[1].summary == "drop column item.note (2 values)"

    printed = plugin("approve", "orders", "--print-patch")
    assert printed.returncode == 0, printed.stderr
    snippet = yaml.safe_load(printed.stdout[printed.stdout.index("spec:") :])
    assert snippet == {"spec": {"approvedPlanHashes": [plan_a["hash"], plan_b["hash"]]}}
    assert "approvedPlanHashes" not in kube.get("orders")["spec"]  # printing changed nothing

    # Refused, changing nothing: a hash no target waits with, a target the resource has not, both ways at once.
    wrong = plugin("approve", "orders", "--hash", "0123456789abcdef")
    assert wrong.returncode == 1 and "ES612" in wrong.stderr and plan_b["hash"] in wrong.stderr
    missing = plugin("approve", "orders", "--target", "site-z")
    assert missing.returncode == 1 and "ES026" in missing.stderr and "site-a, site-b, site-c" in missing.stderr
    assert plugin("approve", "orders", "--hash", plan_b["hash"], "--target", "site-a").returncode == 2
    assert "approvedPlanHashes" not in kube.get("orders")["spec"]

    one = plugin("approve", "orders", "--hash", plan_b["hash"])
    assert one.returncode == 0, one.stderr
    assert f"approved plan {plan_b['hash']} for 1 target" in one.stdout
    assert kube.get("orders")["spec"]["approvedPlanHashes"] == [plan_b["hash"]]
    # Until the operator observed the approval, nothing is approved on a stale view.
    stale = plugin("approve", "orders")
    assert stale.returncode == 1 and "ES611" in stale.stderr and "has not planned generation 2" in stale.stderr
    # The operator applied site-b's plan (the approval of its base); site-a and site-c still wait.
    applied_b = {"name": "site-b", "appliedVersion": "2.0.0", "conditions": [{"type": "Ready", "status": "True"}]}
    waiting = f"waiting for approval of {plan_a['hash']}"
    operator_writes(applied_b, "1/3", waiting)
    by_target = plugin("approve", "orders", "--target", "site-c", "-o", "json")
    assert by_target.returncode == 0, by_target.stderr
    (approved,) = wire.PendingPlanList.model_validate(json.loads(by_target.stdout)).items
    assert approved.hash == plan_a["hash"] and [t.name for t in approved.targets] == ["site-a", "site-c"]
    assert kube.get("orders")["spec"]["approvedPlanHashes"] == [plan_b["hash"], plan_a["hash"]]
    operator_writes(applied_b, "1/3", waiting)
    assert plugin("approve", "orders").returncode == 0  # all again: nothing repeated
    spec = kube.get("orders")["spec"]
    assert spec["approvedPlanHashes"] == [plan_b["hash"], plan_a["hash"]] and "approvedPlanHash" not in spec

    history = plugin("history", "orders")
    assert history.returncode == 0, history.stderr
    assert f"rollout Progressing: {waiting}" in history.stdout and "targets ready: 1/3" in history.stdout
    rows = {line.split()[0]: line.split() for line in history.stdout.splitlines() if line.startswith("site-")}
    assert rows["site-b"] == ["site-b", "True", "-", "2.0.0", "-"]
    assert rows["site-c"][:5] == ["site-c", "False", "ApprovalRequired", "1.0.0", plan_a["hash"]]
    listed_history = json.loads(plugin("history", "orders", "-o", "json").stdout)
    (view,) = wire.ResourceHistoryList.model_validate(listed_history).items
    assert [(t.name, t.pending_plan) for t in view.targets] == [
        ("site-a", plan_a["hash"]),
        ("site-b", None),
        ("site-c", plan_a["hash"]),
    ]
    assert view.rollout is not None and view.rollout.phase == "Progressing" and view.targets_ready == "1/3"

    # The approved spec, as the cluster holds it, applies 2.0.0 on every site: one hash per base.
    approved_spec = yaml.safe_dump({**doc, "spec": {**doc["spec"], **kube.get("orders")["spec"]}})
    for url in (url_a, url_b, url_c):
        applied = run("apply", _file(tmp_path / "approved", "orders", approved_spec), "-d", url)
        assert applied.exit_code == 0, applied.stderr
        assert "note" not in columns(url, physical(url, "orders", "item"))


@pytest.mark.k8s
def test_target_of_a_resource_with_one_database(kube: Kube, tmp_path: Path) -> None:
    """--target on a targetRef resource names its one database (status.targets); approving still sets
    spec.approvedPlanHash, as before targets."""
    bin_dir = _plugin_on_path(tmp_path / "bin")

    def plugin(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(kube.cluster, bin_dir, "extschema", *args, "-n", kube.ns)

    _url, plan = _site(tmp_path, "app-db", V1, 4)
    doc = yaml.safe_load(V2)
    doc["spec"]["targetRef"] = {"name": "app-db"}
    kube.apply(doc)
    entry = _target("app-db", plan, "1.0.0")
    _write_status(
        kube,
        "orders",
        {
            "pendingPlan": entry["pendingPlan"],
            "target": "app-db",
            "targets": [entry],
            "targetsReady": "0/1",
            "conditions": entry["conditions"],
        },
    )
    other = plugin("approve", "orders", "--target", "site-a")
    assert other.returncode == 1 and "ES026" in other.stderr and "app-db" in other.stderr
    approved = plugin("approve", "orders", "--target", "app-db")
    assert approved.returncode == 0, approved.stderr
    spec = kube.get("orders")["spec"]
    assert spec["approvedPlanHash"] == plan["hash"] and "approvedPlanHashes" not in spec
    history = plugin("history", "orders")
    assert history.returncode == 0 and "TARGET" not in history.stdout  # one database: the conditions say it all
