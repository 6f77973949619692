"""``make demo-cli`` (the CLI on an embedded SQLite file) keeps working and shows what the README promises: an
offline diff with the plan's hash, a gated delete with its preview, and a diagram."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, subprocess_env


def test_make_demo_cli_shows_diff_gated_delete_and_diagram(tmp_path: Path) -> None:
    database, svg = tmp_path / "demo.db", tmp_path / "plugins.svg"
    # -o: the environment is installed already (the test runs inside it); never reinstall from a test.
    make = ["make", "-s", "-o", ".make/installed", "demo-cli", f"PYTHON={sys.executable}"]
    done = subprocess.run(
        [*make, f"DEMO_DB=sqlite:///{database}", f"DEMO_SVG={svg}"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "-- diff examples/evolution/v1.yaml -> examples/evolution/v2.yaml" in out and "plan " in out
    assert "delete would run as migration" in out and "(dry run: nothing was changed)" in out  # the preview
    assert "ES307" in out and "--approve" in out  # refused without the hash, then run with it
    assert "erDiagram" in out
    if shutil.which("dot"):
        assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
