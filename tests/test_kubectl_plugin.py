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
