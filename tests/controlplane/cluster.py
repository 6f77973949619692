"""Run etcd + kube-apiserver + kube-controller-manager as local processes (no Docker).

``ControlPlane`` is a context manager for tests and scripts::

    with ControlPlane() as cp:
        cp.kubectl("get", "namespaces")

``Cluster`` is the connection part alone (kubeconfig, server, token, kubectl, Python client), also
usable for an existing cluster via ``Cluster.from_kubeconfig``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import yaml

from . import pki
from .build import Binaries, ensure_binaries, kubectl_path, log

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

READY_TIMEOUT = 90.0
STOP_GRACE = 10.0


class Cluster:
    """Connection to a Kubernetes API server: kubeconfig, URL, token, kubectl and Python client."""

    def __init__(self, kubeconfig: Path, server: str, token: str | None, kubectl_bin: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.server = server
        self.token = token
        self.kubectl_bin = kubectl_bin or kubectl_path()
        self._api_client: ApiClient | None = None

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> Cluster:
        """Read server and (optional) bearer token of the current context of a kubeconfig."""
        cfg: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user: dict[str, Any] = next(
            (u["user"] or {} for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {}
        )
        token = user.get("token")
        return cls(kubeconfig, str(cluster["server"]), str(token) if token else None)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; on failure (check) raise with its stderr."""
        cmd = [str(self.kubectl_bin), f"--kubeconfig={self.kubeconfig}", *args]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=env, timeout=timeout)
        for _ in range(20):
            # `kubectl wait --for=condition=...` on an object created a moment ago fails ("conditions
            # accessor error") instead of waiting while it has no status.conditions yet: ask again.
            if not (args and args[0] == "wait" and proc.returncode != 0 and "accessor error" in proc.stderr):
                break
            time.sleep(0.25)
            proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(proc)
        return proc

    @property
    def api_client(self) -> ApiClient:
        """Admin client of the official ``kubernetes`` package, built from the kubeconfig."""
        if self._api_client is None:
            from kubernetes import config  # imported lazily: only tests need the package

            self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def close_client(self) -> None:
        """Close the Python client's connection pool (avoids ResourceWarnings at exit)."""
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    def reachable(self, timeout: float = 5.0) -> bool:
        """True if ``kubectl version`` can talk to the server."""
        try:
            proc = self.kubectl("version", "--request-timeout=5s", check=False, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0


class KubectlError(RuntimeError):
    """kubectl exited non-zero; carries the completed process."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        cmd = " ".join(str(a) for a in proc.args)
        super().__init__(f"{cmd} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        self.proc = proc


def free_port() -> int:
    """A currently free loopback TCP port (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes] | None
    pid: int
    exe: str
    cmd: tuple[str, ...] = ()


# Every started, not yet stopped ControlPlane of this process: stopped at exit or on SIGTERM/SIGHUP.
_LIVE: set[ControlPlane] = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    with _LIVE_LOCK:
        planes = list(_LIVE)
    for cp in planes:
        cp.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Stop children first, then die from the same signal as the default action would.
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


class ControlPlane(Cluster):
    """A local etcd + kube-apiserver (+ kube-controller-manager) on free loopback ports.

    ``workdir=None`` uses a temporary directory removed on stop. ``detached=True`` (for
    ``python -m tests.controlplane up``) leaves the processes running when this Python process
    exits; ``python -m tests.controlplane down`` ends them later from ``state()``.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        controller_manager: bool = True,
        detached: bool = False,
        binaries: Binaries | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="extschema-cp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.controller_manager = controller_manager
        self.detached = detached
        self._binaries = binaries
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        super().__init__(
            self.workdir / "kubeconfig",
            f"https://127.0.0.1:{self.port}",
            secrets.token_hex(24),
            kubectl_bin=binaries.kubectl if binaries else None,
        )
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self.children: list[_Child] = []
        self.ready_seconds: float | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the started children, by name."""
        return {c.name: c.pid for c in self.children}

    def start(self) -> ControlPlane:
        """Build if needed, start everything and wait until the API server serves requests."""
        bins = self._binaries or ensure_binaries()
        self.kubectl_bin = bins.kubectl
        if not self.detached:
            _install_cleanup_handlers()
            with _LIVE_LOCK:
                _LIVE.add(self)
        try:
            self._start(bins)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, bins: Binaries) -> None:
        keys = pki.generate(self.workdir / "pki")
        kcm_token = secrets.token_hex(24)
        tokens = self.workdir / "tokens.csv"
        tokens.touch(mode=0o600)
        # Static tokens: an admin in system:masters and the controller-manager's own identity,
        # which RBAC's bootstrap roles already know.
        tokens.write_text(
            f'{self.token},admin,admin,"system:masters"\n'
            f"{kcm_token},system:kube-controller-manager,kube-controller-manager\n"
        )
        self._write_kubeconfig(self.kubeconfig, self.token or "", "admin")
        kcm_kubeconfig = self.workdir / "kcm.kubeconfig"
        self._write_kubeconfig(kcm_kubeconfig, kcm_token, "kube-controller-manager")

        started = time.monotonic()
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn(
            "etcd",
            [
                str(bins.etcd),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",  # test data: durability is not worth the latency
                "--log-level=warn",
            ],
        )
        self._wait_http(f"{etcd_url}/health", "etcd", lambda status, body: status == 200)
        self._spawn(
            "kube-apiserver",
            [
                str(bins.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                # Without it the server looks for a default route, which sandboxes may lack.
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'cert-dir'}",
                f"--tls-cert-file={keys.serving_cert}",
                f"--tls-private-key-file={keys.serving_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--service-account-issuer=https://127.0.0.1:{self.port}",
                f"--service-account-key-file={keys.sa_key}",
                f"--service-account-signing-key-file={keys.sa_key}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                # The ServiceAccount admission plugin would block pods until token controllers run.
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--v=1",
            ],
        )
        self._wait_http(f"{self.server}/readyz", "kube-apiserver", lambda status, body: status == 200)
        self._wait_http(
            f"{self.server}/api/v1/namespaces/default",
            "the default namespace",
            lambda status, body: status == 200,
        )
        self.ready_seconds = time.monotonic() - started
        if self.controller_manager:
            self._spawn(
                "kube-controller-manager",
                [
                    str(bins.kube_controller_manager),
                    f"--kubeconfig={kcm_kubeconfig}",
                    f"--authentication-kubeconfig={kcm_kubeconfig}",
                    f"--authorization-kubeconfig={kcm_kubeconfig}",
                    # deployment and replicaset write a Deployment's status (Available with 0 replicas), which
                    # kstatus waits for (Helm 4's --wait); without a scheduler or kubelet no pod ever runs.
                    "--controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token,deployment,replicaset",
                    f"--service-account-private-key-file={keys.sa_key}",
                    f"--root-ca-file={keys.ca_cert}",
                    # Each controller acts as its own service account, as in real clusters.
                    "--use-service-account-credentials=true",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    "--leader-elect=false",
                    "--v=1",
                ],
            )
        log(f"control plane ready at {self.server} in {self.ready_seconds:.1f}s")

    def stop(self) -> None:
        """Stop the children (SIGTERM, then SIGKILL after a grace period); remove a temp workdir."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._stopped:
            return
        self._stopped = True
        self.close_client()
        # Reverse order: controller-manager, then API server, then etcd (which holds the data).
        for child in reversed(self.children):
            stop_process(child.pid, child.proc)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_servers(self, *, hard: bool = False) -> None:
        """Stop every process (SIGKILL when *hard*) keeping their data and ports for :meth:`start_servers`: an
        outage of the control plane (tests/chaos). The controller-manager goes too (it may exit by itself while
        the API server is away)."""
        for child in reversed(self.children):
            if hard:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            stop_process(child.pid, child.proc, grace=5)

    def start_servers(self) -> None:
        """Start them again as they were started, in order, each once the one before serves."""
        stopped, self.children = self.children, []
        for child in stopped:
            self._spawn(child.name, list(child.cmd))
            if child.name == "etcd":
                self._wait_http(f"http://127.0.0.1:{self.etcd_port}/health", "etcd", lambda status, body: status == 200)
            elif child.name == "kube-apiserver":
                self._wait_http(f"{self.server}/readyz", "kube-apiserver", lambda status, body: status == 200)

    # -- helpers -------------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str]) -> None:
        logfile = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - child keeps it open
        try:
            # Own session = own process group, so stop() can signal the whole group, and a
            # Ctrl-C on the terminal reaches only us (we then stop the children cleanly).
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        finally:
            logfile.close()
        self.children.append(_Child(name, None if self.detached else proc, proc.pid, cmd[0], tuple(cmd)))
        if self.detached:
            # Never waited for here; forget the Popen so its destructor doesn't warn.
            proc.returncode = 0

    def _check_children(self, waiting_for: str) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited ({child.proc.returncode}) while waiting for "
                    f"{waiting_for}; log tail:\n{self.log_tail(child.name)}"
                )

    def log_tail(self, name: str, lines: int = 30) -> str:
        """Last lines of a child's log file."""
        path = self.workdir / f"{name}.log"
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _wait_http(self, url: str, what: str, ok: Any) -> None:
        """Poll ``url`` until ``ok(status, body)``; fail early if a child died."""
        deadline = time.monotonic() + READY_TIMEOUT
        headers = {"Authorization": f"Bearer {self.token}"} if url.startswith("https") else {}
        ctx = self._ssl_context() if url.startswith("https") else None
        last = ""
        while time.monotonic() < deadline:
            self._check_children(what)
            req = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                    status, body = resp.status, resp.read().decode(errors="replace")
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read().decode(errors="replace")
                exc.close()
            except (OSError, ssl.SSLError) as exc:
                status, body = 0, str(exc)
            if ok(status, body):
                return
            last = f"{status} {body[:300]}"
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what} ({url}); last answer: {last}")

    def _write_kubeconfig(self, path: Path, token: str, user: str) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "extschema",
                    "cluster": {"server": self.server, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "extschema", "context": {"cluster": "extschema", "user": user}}],
            "current-context": "extschema",
            "preferences": {},
        }
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def state(self) -> dict[str, Any]:
        """What ``down`` needs to find and stop a detached control plane."""
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            # argv[0] as we exec'd it (not read back from /proc: right after a spawn it can
            # still be empty), so that `down` can tell our process from a reused pid.
            "children": [{"name": c.name, "pid": c.pid, "cmdline": c.exe} for c in self.children],
            "ready_seconds": self.ready_seconds,
        }

    def write_state(self, path: Path) -> None:
        """Persist ``state()`` as JSON."""
        path.write_text(json.dumps(self.state(), indent=2) + "\n")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (after the parenthesised command name) is the state; Z = zombie, X = dead.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def stop_process(pid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group led by ``pid``, wait ``grace`` seconds, then SIGKILL it."""

    def signal_group(sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            # Not a group leader we own (should not happen); fall back to the process itself.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def gone(timeout: float) -> bool:
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
        return not pid_alive(pid)

    if proc is not None and proc.poll() is not None:
        signal_group(signal.SIGKILL)  # leader already gone: sweep any stragglers in its group
        return
    signal_group(signal.SIGTERM)
    if not gone(grace):
        log(f"pid {pid} ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
        signal_group(signal.SIGKILL)
        gone(5.0)
