"""``make demo-helm``: a plugin installed by its own Helm chart (examples/plugin-chart/), with Helm 4.

Like ``make demo`` it starts what it needs (a control plane, a database, the operator; Helm is built on first use
and cached), then: ``helm install --wait`` returns once the plugin's ExtensionSchema is Ready, the init container's
``extschema wait`` agrees, and ``helm uninstall --wait`` keeps the tables (deletionPolicy Retain). The local control
plane runs no pods, so the plugin's Deployment is scaled to 0 and its init container's command runs here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "examples")]

from demo import TIMEOUT, cluster, database, run, say  # noqa: E402
from tests.controlplane.helm import ensure_helm  # noqa: E402

CHART = REPO / "examples" / "plugin-chart"
NAMESPACE = "plugins"


def main() -> None:
    helm = str(ensure_helm())
    with tempfile.TemporaryDirectory(prefix="extschema-demo-") as tmp, cluster() as kube, database(Path(tmp)) as url:
        kubeconfig = str(kube.kubeconfig)
        kubectl = [str(kube.kubectl_bin), "--kubeconfig", kubeconfig]
        extschema = [sys.executable, "-m", "extschema"]
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])),
        }
        os.environ.update(env)  # for the commands run() starts

        say("installing the CRDs, starting the operator")
        run(*kubectl, "apply", "-f", str(REPO / "crds"))
        run(*kubectl, "wait", "--for=condition=Established", "crd/extensionschemas.extschema.io", "--timeout=60s")
        log = (Path(tmp) / "operator.log").open("wb")
        operator = subprocess.Popen(
            [*extschema, "run", "--standalone", "-A", "--database", url], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            say(f"helm install the plugin's own chart ({helm}): --wait returns once its tables exist")
            run(helm, "version", "--short")
            run(
                helm,
                "install",
                "notes",
                str(CHART),
                "-n",
                NAMESPACE,
                "--create-namespace",
                "--set",
                "replicaCount=0",
                "--wait",
                "--timeout",
                TIMEOUT,
            )
            run(*kubectl, "get", "exts", "-n", NAMESPACE, "-o", "wide")

            say("the plugin's init container: extschema wait notes --for Ready")
            run(*extschema, "wait", "notes", "--for", "Ready", "--namespace", NAMESPACE, "--timeout", "60s")
            run(*extschema, "status", "--database", url)

            say("helm uninstall: deletionPolicy Retain keeps the tables")
            run(helm, "uninstall", "notes", "-n", NAMESPACE, "--wait", "--timeout", TIMEOUT)
            run(*extschema, "status", "--database", url)
        except SystemExit:
            log.flush()
            print("operator log (last lines):", flush=True)
            print("\n".join((Path(tmp) / "operator.log").read_text(errors="replace").splitlines()[-40:]), flush=True)
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
