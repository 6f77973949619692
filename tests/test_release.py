"""One version everywhere (package, image tag, chart, docs, CHANGELOG) and `make dist` building the release."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests import image_build, release

REPO = release.REPO


def test_every_place_says_the_version_of_pyproject() -> None:
    assert release.check() == []
    import extschema

    assert extschema.__version__ == release.version()


def test_stamp_writes_every_place_and_check_names_what_disagrees(tmp_path: Path) -> None:
    for relative in {"pyproject.toml", "CHANGELOG.md", *(place for place, _ in release.PLACES)}:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relative, tmp_path / relative)
    release.stamp("9.8.7-rc1", tmp_path)
    assert release.version(tmp_path) == "9.8.7-rc1"
    # Only the CHANGELOG is left: people write its section.
    assert release.check(tmp_path) == [f"CHANGELOG.md: newest release is {release.version()}, expected 9.8.7-rc1"]
    chart = yaml.safe_load((tmp_path / "charts/extschema/Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == "9.8.7-rc1"
    with pytest.raises(SystemExit, match="not a version"):
        release.stamp("nine", tmp_path)


@pytest.mark.helm
def test_make_dist_builds_every_artifact_of_the_version() -> None:
    if image_build.tools_missing():
        pytest.skip(f"image tools missing: {image_build.tools_missing()}")
    version = release.version()
    proc = subprocess.run(["make", "-s", "dist"], cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = {p.name for p in release.DIST.iterdir() if not p.name.startswith(".")}
    assert built == {
        f"extschema-{version}-py3-none-any.whl",
        f"extschema-{version}.tar.gz",
        f"extschema-{version}.tgz",
        f"extschema-image-{version}.tar",
    }
    with zipfile.ZipFile(release.DIST / f"extschema-{version}-py3-none-any.whl") as wheel:
        metadata = wheel.read(f"extschema-{version}.dist-info/METADATA").decode()
        assert f"\nVersion: {version}\n" in metadata
        assert "extschema/cli/__init__.py" in wheel.namelist()
    with tarfile.open(release.DIST / f"extschema-{version}.tgz") as chart:
        meta = yaml.safe_load(chart.extractfile("extschema/Chart.yaml").read())  # type: ignore[union-attr]
        assert meta["version"] == meta["appVersion"] == version
        assert "extschema/files/grafana-dashboard.json" in chart.getnames()
    with tarfile.open(release.DIST / f"extschema-image-{version}.tar") as image:
        index = json.loads(image.extractfile("index.json").read())  # type: ignore[union-attr]
        names = {m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]}
        assert any(name and name.endswith(version) for name in names), names
