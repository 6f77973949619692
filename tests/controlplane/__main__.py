"""Command line: ``python -m tests.controlplane {up,down,status,build,kubectl-path}``.

``up`` leaves the control plane running in the background with its state in ``.cluster/`` at
the repository root; ``down`` stops it. Progress goes to stderr; results to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .build import KUBERNETES_VERSION, bin_dir, ensure_binaries, kubectl_path
from .cluster import Cluster, ControlPlane, pid_alive, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / ".cluster"
STATE_FILE = STATE_DIR / "state.json"


def _read_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return state


def _ours(child: dict[str, Any]) -> bool:
    """The recorded pid still runs the recorded binary (guards against pid reuse)."""
    pid = int(child["pid"])
    if not pid_alive(pid):
        return False
    try:
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return exe == child.get("cmdline")


def _running(state: dict[str, Any]) -> bool:
    children = state.get("children", [])
    return bool(children) and all(_ours(c) for c in children)


def cmd_up(_: argparse.Namespace) -> int:
    """Start a detached control plane unless one is already running."""
    state = _read_state()
    kubeconfig = STATE_DIR / "kubeconfig"
    if state and _running(state) and Cluster.from_kubeconfig(kubeconfig).reachable():
        print(f"already running at {state['server']}; KUBECONFIG={kubeconfig}")
        return 0
    _stop(state)  # a stale or half-dead previous run: clear it out first
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    bins = ensure_binaries()
    cp = ControlPlane(STATE_DIR, detached=True, binaries=bins)
    cp.start()
    cp.write_state(STATE_FILE)
    print(f"Kubernetes {KUBERNETES_VERSION} at {cp.server}", file=sys.stderr)
    print(f"control plane ready in {cp.ready_seconds:.1f}s; KUBECONFIG={cp.kubeconfig}")
    return 0


def _stop(state: dict[str, Any] | None) -> bool:
    """Stop the recorded processes, newest first; True if any was running."""
    if not state:
        return False
    stopped = False
    for child in reversed(state.get("children", [])):
        if _ours(child):
            stop_process(int(child["pid"]))
            stopped = True
    return stopped


def cmd_down(_: argparse.Namespace) -> int:
    """Stop the detached control plane and remove ``.cluster/`` (idempotent)."""
    stopped = _stop(_read_state())
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    print("control plane stopped" if stopped else "control plane was not running")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    """Exit 0 and print the server if the detached control plane runs, else exit 1."""
    state = _read_state()
    if state and _running(state):
        print(f"running at {state['server']}; KUBECONFIG={STATE_DIR / 'kubeconfig'}")
        return 0
    print("not running")
    return 1


def cmd_build(args: argparse.Namespace) -> int:
    """Build (or verify the cache of) the binaries."""
    ensure_binaries(force=args.force)
    print(bin_dir())
    return 0


def cmd_kubectl_path(_: argparse.Namespace) -> int:
    """Print the pinned kubectl's path."""
    print(kubectl_path())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start in the background (state in .cluster/)").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what 'up' started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="is 'up' running?").set_defaults(func=cmd_status)
    build = sub.add_parser("build", help="build and cache the binaries")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(func=cmd_build)
    sub.add_parser("kubectl-path", help="print the pinned kubectl's path").set_defaults(func=cmd_kubectl_path)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
