"""`make bench`'s report (bench/report.py), in its quick mode: every file written, every figure next to its
baseline and goal. Figures are not checked: benchmarks print, tests never assert timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.postgres, pytest.mark.k8s]


def test_quick_report_writes_results_table_and_plots(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "report.py"),
            "--quick",
            "--out",
            str(tmp_path),
            "--only",
            "sweep,operator",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["cpus"] >= 1 and results["machine"]["postgresql"].startswith("psql")
    assert results["quick"] is True
    sweep = results["sweep"]["points"]
    assert [p["tables"] for p in sweep] == [5, 20]
    assert all(p["extschema_s"] > 0 and p["psql_s"] > 0 for p in sweep)
    operator = results["benchmarks"]["operator"]
    assert len(operator["apply_to_ready"]["samples_s"]) == operator["apply_to_ready"]["n"]
    assert [c["resources"] for c in operator["rss_mb"]["curve"]][-1] == operator["rss_mb"]["resources"]
    rows = {row["measure"]: row for row in results["goals"]}
    largest = rows["apply of the sweep's largest schema (tables: see the plot)"]
    assert largest["baseline_value"] == sweep[-1]["psql_s"]
    assert largest["value"] == round(sweep[-1]["extschema_s"] / sweep[-1]["psql_s"], 3)
    assert rows["operator RSS with all resources"]["value"] == operator["rss_mb"]["operator_rss_mb"]
    assert rows["REST API GET by id, p50"]["met"] is None  # not run: said, not invented
    table = (tmp_path / "results.md").read_text()
    assert "| measure | figure | baseline (same run) | goal | met |" in table and "not measured" in table
    for plot in ("apply-vs-tables.png", "operator-rss.png", "ready-latency.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
