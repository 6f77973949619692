"""``extschema wait NAME --for Ready``: how it reads a resource, and its exit codes without a cluster.

The watch itself runs against the real API server in tests/test_plugin_chart.py (the plugin chart's init
container); here only what decides the outcome, on the statuses the operator writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from extschema import conditions, kubewait, wire
from tests.helpers import REPO, subprocess_env


def _body(reason: str | None, generation: int = 3, observed: int | None = 3, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "notes", "namespace": "ns", "generation": generation}}
    if reason is not None:
        outcome = conditions.Outcome(reason, f"a message about {reason}")
        found = conditions.compute(None, outcome, observed, "2026-12-01T10:00:00Z")
        body["status"] = {"conditions": found, **status}
        if observed is not None:
            body["status"]["observedGeneration"] = observed
    return body


def test_ready_only_for_the_current_generation() -> None:
    assert kubewait.judge(_body("Applied", appliedVersion="2.0.0")) == kubewait.Seen(
        ready=True, text="Ready (version 2.0.0)"
    )
    # The Ready of the previous spec (a `helm upgrade` the operator has not seen yet) is not this spec's.
    stale = kubewait.judge(_body("Applied", generation=4, observed=3))
    assert not stale.ready and stale.text == "waiting for the operator to reconcile generation 4"


def test_stalled_ends_the_wait_with_the_condition_message() -> None:
    seen = kubewait.judge(_body("Conflict"))
    assert seen.stalled and not seen.ready
    assert seen.text == "Stalled: Conflict: a message about Conflict"


def test_everything_else_is_progress_with_the_reason() -> None:
    for reason in ("Progressing", "ApprovalRequired", "DependencyNotReady", "DatabaseUnavailable"):
        seen = kubewait.judge(_body(reason))
        assert not seen.ready and not seen.stalled
        assert seen.text == f"{reason}: a message about {reason}"
    assert kubewait.judge(None).text == "does not exist yet"
    assert kubewait.judge(_body(None)).text == "waiting for the operator to reconcile generation 3"
    deleting = _body("Applied")
    deleting["metadata"]["deletionTimestamp"] = "2026-12-01T10:00:00Z"
    assert kubewait.judge(deleting) == kubewait.Seen(text="is being deleted")


def test_progress_lines_are_escaped() -> None:
    assert kubewait.line("ns", "notes", "Conflict: \x1b[2Jcleared") == (
        "extensionschema ns/notes: Conflict: \\x1b[2Jcleared"
    )


def _wait(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extschema", "wait", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        cwd=REPO,
        timeout=120,
    )


def test_without_credentials_it_exits_3_saying_so(tmp_path: Any) -> None:
    proc = _wait("notes", "--for", "Ready", KUBECONFIG=str(tmp_path / "missing"))
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("extensionschema notes: ES603: cannot read the Kubernetes credentials")
    assert "Traceback" not in proc.stderr


def test_json_output_names_the_code() -> None:
    proc = _wait("notes", "--for", "Ready", "-o", "json", KUBECONFIG="/nonexistent/kubeconfig")
    assert proc.returncode == 3 and proc.stderr == ""
    failure = wire.Failure.model_validate(json.loads(proc.stdout))
    assert (failure.ok, failure.reason, [p.code for p in failure.problems]) == (False, "unreachable", ["ES603"])
    assert failure.problems[0].subject == "notes"


def test_usage_errors_exit_2() -> None:
    assert _wait("notes").returncode == 2  # --for is required
    assert _wait("notes", "--for", "Deleted").returncode == 2
    proc = _wait("notes", "--for", "Ready", "--timeout", "soon")
    assert proc.returncode == 2 and "'soon' is not a duration" in proc.stderr
