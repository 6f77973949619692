"""``make demo``: the whole product on one machine, driven with kubectl like a user would.

Starts a real Kubernetes control plane (or uses the cluster in ``KUBECONFIG``), a throwaway
PostgreSQL (SQLite when PostgreSQL's server binaries are missing), installs the CRDs, runs the
operator, applies the examples, waits for Ready, shows what was created, shows a rejected claim, takes a
plugin to its next version through an approval, then deletes one schema and shows the cleanup.
Everything it started is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from tests import pgserver  # noqa: E402
from tests.controlplane import Cluster, ControlPlane  # noqa: E402

EXAMPLES = REPO / "examples"
EVOLUTION = EXAMPLES / "evolution"
SCHEMAS = sorted(EXAMPLES.glob("*.yaml"))
TIMEOUT = "180s"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    kubeconfig = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if kubeconfig and Path(kubeconfig).is_file():
        existing = Cluster.from_kubeconfig(Path(kubeconfig))
        if existing.reachable():
            say(f"using the cluster of KUBECONFIG={kubeconfig}")
            yield existing
            return
    say("starting a local Kubernetes control plane (etcd + kube-apiserver + controller-manager)")
    with ControlPlane() as plane:
        print(f"ready in {plane.ready_seconds:.1f}s", flush=True)
        yield plane


@contextlib.contextmanager
def database(workdir: Path) -> Iterator[str]:
    try:
        pgserver.find_bindir()
    except RuntimeError:
        say("PostgreSQL server binaries not found: using SQLite")
        yield f"sqlite:///{workdir / 'demo.db'}"
        return
    say("starting a throwaway PostgreSQL")
    with pgserver.running_server() as url:
        print(url, flush=True)
        yield url


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(command)}", flush=True)
    done = subprocess.run(command, text=True, capture_output=True)
    print((done.stdout + done.stderr).rstrip(), flush=True)
    if check and done.returncode != 0:
        raise SystemExit(f"demo step failed: {' '.join(command)}")
    return done


def wait_for(kubectl: list[str], resource: str, jsonpath: str, seconds: int = 60) -> str:
    """Poll a status field until it has a value (kubectl wait cannot wait for a field to appear)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = run(*kubectl, "get", resource, "-o", f"jsonpath={jsonpath}", check=False).stdout.strip()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"demo step failed: {resource} has no {jsonpath}")


def evolve(kubectl: list[str], extschema: list[str], url: str) -> None:
    """examples/evolution/: version 2 drops a field, so it waits for an approval of its plan's hash."""
    say("a plugin's next version: examples/evolution/v1.yaml, then v2.yaml (a rename, enum values, a dropped field)")
    run(*kubectl, "apply", "-f", str(EVOLUTION / "v1.yaml"))
    run(*kubectl, "wait", "--for=condition=Ready", "exts/helpdesk", f"--timeout={TIMEOUT}")
    run(*kubectl, "apply", "-f", str(EVOLUTION / "v2.yaml"))
    digest = wait_for(kubectl, "exts/helpdesk", "{.status.pendingPlan.hash}")
    run(*kubectl, "get", "exts/helpdesk", "-o", "wide")

    say(f"approving exactly that plan: spec.approvedPlanHash={digest} (in Git, or Argo CD's action approve)")
    run(*kubectl, "patch", "exts/helpdesk", "--type=merge", "-p", json.dumps({"spec": {"approvedPlanHash": digest}}))
    run(*kubectl, "wait", "--for=condition=Ready", "exts/helpdesk", f"--timeout={TIMEOUT}")
    run(*extschema, "history", "helpdesk", "--database", url)
    run(*kubectl, "delete", "exts/helpdesk", f"--timeout={TIMEOUT}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="extschema-demo-") as tmp, cluster() as kube, database(Path(tmp)) as url:
        workdir = Path(tmp)
        kubectl = [str(kube.kubectl_bin), "--kubeconfig", str(kube.kubeconfig)]
        extschema = [sys.executable, "-m", "extschema"]
        env = {
            **os.environ,
            "KUBECONFIG": str(kube.kubeconfig),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])),
        }

        say("the host application's own tables (examples/core/core.sql)")
        run(sys.executable, str(EXAMPLES / "core" / "load.py"), url)

        say("installing the CRDs")
        run(*kubectl, "apply", "-f", str(REPO / "crds"))
        run(*kubectl, "wait", "--for=condition=Established", "crd/extensionschemas.extschema.io", "--timeout=60s")

        say("starting the operator: extschema run")
        log = (workdir / "operator.log").open("wb")
        operator = subprocess.Popen(
            [*extschema, "run", "--standalone", "-A", "--database", url], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            say("kubectl apply the examples")
            run(*kubectl, "apply", *[arg for path in SCHEMAS for arg in ("-f", str(path))])
            run(*kubectl, "wait", "--for=condition=Ready", "exts", "--all", f"--timeout={TIMEOUT}")
            run(*kubectl, "get", "exts", "-A", "-o", "wide")

            say("what the database holds now")
            run(*extschema, "status", "--database", url)

            say("a second resource claiming pluginId customreports is refused (Stalled/Conflict)")
            run(*kubectl, "apply", "-f", str(EXAMPLES / "rejected" / "report-takeover.yaml"))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reason = run(
                    *kubectl,
                    "get",
                    "exts/rogue-reports",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Stalled')].reason}",
                    check=False,
                ).stdout
                if reason.strip() == "Conflict":
                    break
                time.sleep(1)
            run(*kubectl, "get", "exts", "-o", "wide")
            run(*kubectl, "delete", "exts/rogue-reports", f"--timeout={TIMEOUT}")

            evolve(kubectl, extschema, url)

            say("deleting knowledge-base: its tables are dropped (data backed up first)")
            run(*kubectl, "delete", "exts/knowledge-base", f"--timeout={TIMEOUT}")
            run(*extschema, "status", "--database", url)
            run(*extschema, "history", "kb", "--database", url)

            say("cleaning up: deleting the remaining schemas")
            run(
                *kubectl,
                "delete",
                *[arg for path in SCHEMAS for arg in ("-f", str(path))],
                "--ignore-not-found",
                f"--timeout={TIMEOUT}",
            )
        except SystemExit:
            log.flush()
            print("operator log (last lines):", flush=True)
            print("\n".join((workdir / "operator.log").read_text(errors="replace").splitlines()[-40:]), flush=True)
            raise
        finally:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
            log.close()
        say("done: the operator, the database and the control plane it started are stopped")


if __name__ == "__main__":
    main()
