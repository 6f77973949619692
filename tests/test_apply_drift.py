"""`extschema apply` of an unchanged spec whose objects are gone reports the drift, not "unchanged"."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import execute, ext_table, run, write_schema
from tests.test_backups import V1


def test_apply_of_an_unchanged_spec_reports_missing_objects_as_drift(db_url: str, tmp_path: Path) -> None:
    path = str(write_schema(tmp_path, "shop", V1))
    assert run("apply", path, "-d", db_url).exit_code == 0
    in_sync = run("apply", path, "-d", db_url)
    assert in_sync.exit_code == 0 and "shop: unchanged" in in_sync.stdout and "warning" not in in_sync.stderr
    execute(db_url, f"DROP TABLE {ext_table(db_url, 'shop', 'order')}")
    drifted = run("apply", path, "-d", db_url)
    assert drifted.exit_code == 0, drifted.stdout + drifted.stderr  # a warning: the exit code stays
    assert "shop: unchanged" not in drifted.stdout and "drift" in drifted.stdout, drifted.stdout
    assert "ES503" in drifted.stderr and "missing table order" in drifted.stderr, drifted.stderr
    assert "extschema drift shop --repair" in drifted.stderr
    as_json = run("apply", path, "-d", db_url, "-o", "json").items()[0]
    assert as_json["changed"] is False and [w["code"] for w in as_json["warnings"]] == ["ES503"]
    assert run("drift", "shop", "--repair", "-d", db_url).exit_code in (0, 1)
    repaired = run("apply", path, "-d", db_url)
    assert "shop: unchanged" in repaired.stdout and "warning" not in repaired.stderr, repaired.stdout + repaired.stderr
