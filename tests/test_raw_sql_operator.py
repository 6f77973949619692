"""allowRawSql on a DatabaseTarget, end to end: a real API server, the operator process, SQLite files.

The fixtures and helpers are those of tests/test_operator_e2e.py (its own namespace and operator per test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extschema import model, planning
from extschema.planning import safety
from tests import test_operator_e2e as e2e
from tests.helpers import execute

pytestmark = [pytest.mark.k8s, pytest.mark.slow]
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator  # fixtures, used through request


def _target(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "DatabaseTarget",
        "metadata": {"name": name},
        "spec": {"url": url, **spec},
    }


def _approved(doc: dict[str, Any]) -> dict[str, Any]:
    """*doc* with its first plan approved in Git (spec.approvedPlanHash): a raw SQL step is a rewriting step."""
    schema = {k: v for k, v in doc["spec"].items() if k != "targetRef"}  # where it goes is not the schema
    plan = planning.plan(None, model.parse_spec(schema), {})
    return {**doc, "spec": {**doc["spec"], "approvedPlanHash": safety.plan_hash(None, plan)}}


def _step(plugin: str) -> dict[str, str]:
    return {
        "id": "0001_seed",
        "sql": f"INSERT INTO ext_{plugin}.item (title) VALUES ('first'), ('second')",
        "rollbackSql": f"DELETE FROM ext_{plugin}.item WHERE title IN ('first', 'second')",
    }


def test_raw_sql_runs_only_where_the_database_target_allows_it(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    kube: e2e.Kube = request.getfixturevalue("kube")
    request.getfixturevalue("run_operator")(request.getfixturevalue("sqlite_url"))
    allowing, plain = f"sqlite:///{tmp_path / 'allowing.db'}", f"sqlite:///{tmp_path / 'plain.db'}"
    kube.apply(_target("allowing", allowing, allowRawSql=True), _target("plain", plain))

    kube.apply(_approved(e2e.simple("seeded", "seeded", targetRef={"name": "allowing"}, migrations=[_step("seeded")])))
    kube.wait("seeded")
    assert execute(allowing, "SELECT title FROM ext_seeded__item ORDER BY id") == [("first",), ("second",)]
    assert kube.get("seeded")["status"]["lastMigration"]["changes"][-1] == "run SQL step 0001_seed"

    kube.apply(_approved(e2e.simple("refused", "refused", targetRef={"name": "plain"}, migrations=[_step("refused")])))
    ready = kube.ready(kube.wait_reason("refused", "RefusedChange"))
    assert ready["status"] == "False"
    assert "spec.migrations[0]" in ready["message"] and "allowRawSql" in ready["message"]
    assert not any("refused" in t for t in e2e.tables(plain))  # nothing ran, not even the declarative part
