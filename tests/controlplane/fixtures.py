"""pytest plugin: the session-scoped ``kube_cluster`` fixture.

Enable with ``pytest_plugins = ["tests.controlplane.fixtures"]`` in the root conftest.
``EXTSCHEMA_USE_EXISTING_CLUSTER=1`` with ``KUBECONFIG`` pointing at a reachable cluster uses that
cluster instead of starting one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .build import KUBERNETES_VERSION
from .cluster import Cluster, ControlPlane

_ready_seconds: list[float] = []


def existing_cluster() -> Cluster | None:
    """The cluster named by ``KUBECONFIG`` if ``EXTSCHEMA_USE_EXISTING_CLUSTER=1`` and reachable."""
    if os.environ.get("EXTSCHEMA_USE_EXISTING_CLUSTER") != "1":
        return None
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not first or not Path(first).is_file():
        print("EXTSCHEMA_USE_EXISTING_CLUSTER=1 but KUBECONFIG names no file", file=sys.stderr)
        return None
    cluster = Cluster.from_kubeconfig(Path(first))
    if not cluster.reachable():
        print(f"cluster of {first} unreachable: starting a local one", file=sys.stderr)
        return None
    return cluster


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Cluster]:
    """A running Kubernetes API server with an admin kubeconfig, kubectl and Python client."""
    cluster = existing_cluster()
    if cluster is not None:
        try:
            yield cluster
        finally:
            cluster.close_client()
        return
    # The context manager stops every process even when a test fails; atexit and a SIGTERM
    # handler in cluster.py cover interrupted runs.
    with ControlPlane() as cp:
        if cp.ready_seconds is not None:
            _ready_seconds.append(cp.ready_seconds)
        yield cp


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the start-to-ready time (uncaptured, unlike prints inside tests)."""
    for seconds in _ready_seconds:
        terminalreporter.write_line(f"local control plane (Kubernetes {KUBERNETES_VERSION}) ready in {seconds:.1f}s")
