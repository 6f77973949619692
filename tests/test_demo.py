"""``make demo`` (examples/demo.py) keeps working: the README's first command, run end to end."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.controlplane import Cluster
from tests.helpers import REPO, subprocess_env

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.postgres]


def test_demo_runs_end_to_end(kube_cluster: Cluster) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(KUBECONFIG=str(kube_cluster.kubeconfig)),
        cwd=REPO,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert output.count("condition met") >= 7  # the CRD, the four examples, helpdesk's two versions
    assert "Conflict" in output and "ES201" in output
    assert '"knowledge-base" deleted' in output and "dropped all objects" in output
    # examples/evolution/: version 2 waits for its approval, then runs once spec.approvedPlanHash names its plan.
    assert "ApprovalRequired" in output and re.search(r"helpdesk\s+0002\s+apply\s+2\.0\.0\s+executed", output)


@pytest.mark.helm
def test_demo_helm_installs_a_plugin_by_its_own_chart(kube_cluster: Cluster) -> None:
    """``make demo-helm`` (examples/demo_helm.py): the plugin chart installed with --wait, waited for, uninstalled."""
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo_helm.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(KUBECONFIG=str(kube_cluster.kubeconfig)),
        cwd=REPO,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "STATUS: deployed" in output and "extensionschema plugins/notes: Ready (version 1.0.0)" in output
    assert 'release "notes" uninstalled' in output
