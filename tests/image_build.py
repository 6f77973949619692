"""Build the operator image from ``operator/Dockerfile`` without a Docker engine, cached.

There is no Docker daemon and no registry in CI, so the image is built daemonless:

1. the base: Debian's ``mmdebstrap`` makes a minimal bookworm rootfs with ``python3`` and ``python3-venv``,
   ``podman import`` turns it into ``localhost/extschema-base:<recipe hash>`` (once per recipe);
2. the image: ``buildah bud --build-arg BASE_IMAGE=<base>`` builds the unchanged Dockerfile into
   ``localhost/extschema:<content hash>``, the hash covering the Dockerfile, .dockerignore, pyproject.toml,
   uv.lock, README.md and every file under operator/extschema, so an unchanged tree reuses the image.

Both steps run under the file lock ``tests.controlplane`` takes for its builds, so parallel pytest runs never
build twice. Everything runs with ``runc`` and a containers.conf without default
ulimits: this sandbox cannot set rlimits for containers, and ``crun`` fails here.

Command line: ``python -m tests.image_build`` builds (or reuses) and prints the image name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.controlplane.build import _build_lock, cache_root

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "operator" / "Dockerfile"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
BASE_REPO = "localhost/extschema-base"
IMAGE_REPO = "localhost/extschema"
# The files COPY'd into the image (keep in step with .dockerignore) plus the build recipe itself.
IMAGE_INPUTS = ("operator/Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock", "README.md")
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'
# Behind a TLS-intercepting proxy the build reaches PyPI only with the host's CA bundle: handed to the build as a
# secret (see the Dockerfile), never stored in a layer.
HOST_CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageUnavailable(RuntimeError):
    """podman/buildah/mmdebstrap are missing or cannot run containers here (tests skip with this message)."""


@dataclass(frozen=True)
class Built:
    """An image ready to run, and how long building it took (0 when it came from the cache)."""

    image: str
    base: str
    build_seconds: float
    base_seconds: float


def image_dir() -> Path:
    return cache_root() / "image"


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    """Environment for podman/buildah: our containers.conf (runc, no default ulimits)."""
    conf = image_dir() / "containers.conf"
    if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def tools_missing() -> list[str]:
    return [tool for tool in ("podman", "buildah", "mmdebstrap", "runc") if shutil.which(tool) is None]


def run(*cmd: str, check: bool = True, capture: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env(), text=True, capture_output=capture, check=check, timeout=timeout)


def image_exists(name: str) -> bool:
    return run("podman", "image", "exists", name, check=False).returncode == 0


def _digest(parts: Iterator[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def base_tag() -> str:
    """Hash of the base recipe: a new package list or suite makes a new base."""
    recipe = json.dumps({"suite": SUITE, "packages": BASE_PACKAGES, "path": DEFAULT_PATH})
    return _digest(iter([("recipe", recipe.encode())]))


def image_tag(base: str) -> str:
    """Hash of everything that goes into the image: Dockerfile, context files and the base."""

    def parts() -> Iterator[tuple[str, bytes]]:
        yield "base", base.encode()
        for name in IMAGE_INPUTS:
            yield name, (REPO / name).read_bytes()
        for path in sorted((REPO / "operator" / "extschema").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield str(path.relative_to(REPO)), path.read_bytes()

    return _digest(parts())


def ensure_base() -> tuple[str, float]:
    """The mmdebstrap base image (built once per recipe). Returns (name, seconds spent building)."""
    name = f"{BASE_REPO}:{base_tag()}"
    if image_exists(name):
        return name, 0.0
    started = time.monotonic()
    rootfs = image_dir() / f"rootfs-{base_tag()}.tar"
    log(f"mmdebstrap {SUITE} with {', '.join(BASE_PACKAGES)} (about 90 s)")
    try:
        run(
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(rootfs),
            capture=False,
        )
        run("podman", "import", "--change", f"ENV=PATH={DEFAULT_PATH}", str(rootfs), name)
    finally:
        rootfs.unlink(missing_ok=True)
    return name, time.monotonic() - started


def ensure_image() -> Built:
    """Build (or reuse) the base and the image; raises ImageUnavailable when this machine cannot."""
    missing = tools_missing()
    if missing:
        hint = "apt-get install -y podman buildah mmdebstrap runc uidmap"
        raise ImageUnavailable(f"missing {', '.join(missing)} ({hint})")
    with _build_lock():
        base, base_seconds = ensure_base()
        name = f"{IMAGE_REPO}:{image_tag(base)}"
        if image_exists(name):
            return Built(name, base, 0.0, base_seconds)
        log(f"buildah bud {DOCKERFILE.relative_to(REPO)} -> {name}")
        started = time.monotonic()
        secret = ["--secret", f"id=cacert,src={HOST_CA_BUNDLE}"] if HOST_CA_BUNDLE.is_file() else []
        run(
            "buildah",
            "bud",
            "--isolation",
            "chroot",
            "--layers=false",
            *secret,
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-f",
            str(DOCKERFILE),
            "-t",
            name,
            str(REPO),
            capture=False,
        )
        seconds = time.monotonic() - started
        _prune_old_images()
        (image_dir() / "last-build.json").write_text(json.dumps({"image": name, "seconds": round(seconds, 1)}) + "\n")
        return Built(name, base, seconds, base_seconds)


def _prune_old_images() -> None:
    """Every source change makes a new image: drop those older than a day (an image some other checkout is
    running right now is younger, or podman refuses to remove it)."""
    old = run("podman", "images", "--filter", f"reference={IMAGE_REPO}", "--filter", "until=24h", "-q", check=False)
    ids = sorted(set(old.stdout.split()))
    if ids:
        run("podman", "rmi", *ids, check=False)


def check_runnable(image: str) -> None:
    """Run the image once (``--help``): raises ImageUnavailable when podman cannot start containers here."""
    proc = run("podman", "--runtime", "runc", "run", "--rm", "--network=host", image, "--help", check=False)
    if proc.returncode != 0:
        raise ImageUnavailable(f"podman cannot run containers here: {proc.stderr.strip()[-500:]}")


if __name__ == "__main__":
    built = ensure_image()
    log(f"base {built.base} ({built.base_seconds:.0f} s), image built in {built.build_seconds:.0f} s")
    print(built.image)
