"""A real local Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager).

Built from the Go module proxy (see ``build``), run as plain local processes (see ``cluster``),
exposed to pytest through ``fixtures`` and to people through ``python -m tests.controlplane``.
"""

from __future__ import annotations

from .build import ETCD_VERSION, KUBERNETES_VERSION, ensure_binaries, kubectl_path
from .cluster import Cluster, ControlPlane, KubectlError

__all__ = [
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "Cluster",
    "ControlPlane",
    "KubectlError",
    "ensure_binaries",
    "kubectl_path",
]
