"""One version everywhere, and the release artifacts (``make dist``).

The version lives in pyproject.toml; ``stamp`` writes it into every other place a user reads it (the package's
``__version__``, uv.lock, the chart's version and appVersion, the plugin chart's image tag, the docs' image
references), ``check`` lists the places that disagree, and ``dist`` builds into ``dist/``:

- ``extschema-VERSION-py3-none-any.whl`` and ``extschema-VERSION.tar.gz`` (uv build, from the locked tree);
- ``extschema-VERSION.tgz`` (helm package of charts/extschema);
- ``extschema-image-VERSION.tar`` (the operator image as an OCI archive named ``extschema:VERSION``; load it with
  ``podman load -i`` or ``skopeo copy oci-archive:... docker://REGISTRY/extschema:VERSION``; docs/install.md).

Command line: ``python -m tests.release check|stamp VERSION|dist [--no-image]``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "dist"
SEMVER = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?$")
IMAGE = "ghcr.io/extschema/extschema"

#: (file, pattern whose group 1 is the version): every place the release version is written.
PLACES: tuple[tuple[str, str], ...] = (
    ("operator/extschema/__init__.py", r'^__version__ = "([^"]+)"$'),
    ("uv.lock", r'^name = "extschema"\nversion = "([^"]+)"$'),
    ("charts/extschema/Chart.yaml", r"^version: (\S+)$"),
    ("charts/extschema/Chart.yaml", r'^appVersion: "([^"]+)"$'),
    ("examples/plugin-chart/values.yaml", r'^    tag: "([^"]+)"$'),
    ("docs/image.md", r"registry\.example\.com/extschema:(\S+) \."),
    ("docs/helm-plugins.md", rf"`{re.escape(IMAGE)}:([^`]+)`"),
    ("docs/helm-plugins.md", rf"image: {re.escape(IMAGE)}:(\S+)$"),
)


def version(root: Path = REPO) -> str:
    """The release version: pyproject.toml's."""
    with open(root / "pyproject.toml", "rb") as file:
        found: str = tomllib.load(file)["project"]["version"]
    return found


def changelog_version(root: Path = REPO) -> str | None:
    """The newest released version in CHANGELOG.md (``## [X.Y.Z] - DATE``)."""
    match = re.search(r"^## \[([^\]]+)\] - \d{4}-\d{2}-\d{2}$", (root / "CHANGELOG.md").read_text(), re.MULTILINE)
    return match.group(1) if match else None


def _each(root: Path, act: Callable[[str, re.Match[str]], None]) -> None:
    for relative, pattern in PLACES:
        text = (root / relative).read_text()
        matches = list(re.finditer(pattern, text, re.MULTILINE))
        if not matches:
            raise SystemExit(f"{relative}: no version found by {pattern!r} (keep tests/release.py in step)")
        for match in matches:
            act(relative, match)


def check(root: Path = REPO) -> list[str]:
    """The places whose version is not pyproject.toml's, as ``FILE: found X, expected Y`` lines."""
    expected, wrong = version(root), list[str]()

    def compare(relative: str, match: re.Match[str]) -> None:
        if match.group(1) != expected:
            wrong.append(f"{relative}: found {match.group(1)}, expected {expected}")

    _each(root, compare)
    if changelog_version(root) != expected:
        wrong.append(f"CHANGELOG.md: newest release is {changelog_version(root)}, expected {expected}")
    return wrong


def stamp(new: str, root: Path = REPO) -> None:
    """Write *new* into pyproject.toml and every place of PLACES (CHANGELOG.md is written by people)."""
    if not SEMVER.match(new):
        raise SystemExit(f"{new!r} is not a version such as 1.2.3 or 1.2.3-rc1")
    pyproject = root / "pyproject.toml"
    text = re.sub(r'^version = "[^"]+"$', f'version = "{new}"', pyproject.read_text(), count=1, flags=re.M)
    pyproject.write_text(text)
    for relative in dict.fromkeys(relative for relative, _ in PLACES):
        path = root / relative
        text = path.read_text()
        for place, pattern in PLACES:
            if place == relative:
                text = re.sub(pattern, lambda m: m.group(0).replace(m.group(1), new), text, flags=re.MULTILINE)
        path.write_text(text)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, cwd=REPO, check=True, timeout=1800)


def dist(with_image: bool = True) -> list[Path]:
    """Build every artifact of this version into dist/ (emptied first); refuses when the versions disagree."""
    wrong = check()
    if wrong:
        raise SystemExit("versions disagree (python -m tests.release stamp VERSION):\n" + "\n".join(wrong))
    release = version()
    shutil.rmtree(DIST, ignore_errors=True)
    DIST.mkdir()
    _run(str(REPO / ".make" / "uv" / "bin" / "uv"), "build", "--quiet", "--out-dir", str(DIST), str(REPO))
    from tests.controlplane.helm import ensure_helm

    _run(str(ensure_helm()), "package", str(REPO / "charts" / "extschema"), "--destination", str(DIST))
    if with_image:
        from tests import image_build

        built = image_build.ensure_image()
        named = f"localhost/extschema:{release}"
        image_build.run("podman", "tag", built.image, named)
        archive = DIST / f"extschema-image-{release}.tar"
        image_build.run("podman", "save", "--format", "oci-archive", "-o", str(archive), named)
    return sorted(p for p in DIST.iterdir() if not p.name.startswith("."))


def main(argv: list[str]) -> None:
    if argv[:1] == ["check"]:
        wrong = check()
        print("\n".join(wrong) or f"every place says {version()}")
        sys.exit(1 if wrong else 0)
    if argv[:1] == ["stamp"] and len(argv) == 2:
        stamp(argv[1])
        print(f"stamped {argv[1]}; add its section to CHANGELOG.md")
        return
    if argv[:1] == ["dist"]:
        for path in dist(with_image="--no-image" not in argv):
            print(path.relative_to(REPO))
        return
    raise SystemExit("usage: python -m tests.release check | stamp VERSION | dist [--no-image]")


if __name__ == "__main__":
    main(sys.argv[1:])
