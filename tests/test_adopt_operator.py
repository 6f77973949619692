"""Adopting what deletionPolicy Retain kept, through the operator: a re-created ExtensionSchema takes its
plugin's retained objects back (Ready, rows intact, an ``adopt`` migration), or stalls with AdoptionRefused
naming each difference. A real kube-apiserver and real PostgreSQL, driven with kubectl."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests import test_operator_e2e as e2e
from tests.helpers import execute
from tests.test_operator_e2e import Kube, Operator, migrations, simple, tables

pytest_plugins = ["tests.controlplane.fixtures"]
#: The operator e2e suite's fixtures: a namespace per test, operators started as subprocesses.
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.postgres]


def test_a_recreated_resource_adopts_what_retain_kept(
    kube: Kube, run_operator: Callable[..., Operator], pg_url: str
) -> None:
    run_operator(pg_url)
    doc = simple("kept", "kept", deletionPolicy="Retain")
    kube.apply(doc)
    kube.wait("kept")
    execute(pg_url, """INSERT INTO "ext_kept"."item" (title) VALUES ('first'), ('second')""")
    kube("delete", "exts", "kept", "--timeout=60s")
    assert ("kept", "unregister", "executed") in migrations(pg_url)

    kube.apply(doc)
    kube.wait("kept")
    body = kube.get("kept")
    assert "adopted" in kube.ready(body)["message"], body["status"]
    assert [r for r in migrations(pg_url) if r[0] == "kept" and r[1] == "adopt"] == [("kept", "adopt", "executed")]
    assert execute(pg_url, 'SELECT title FROM "ext_kept"."item" ORDER BY id') == [("first",), ("second",)]

    # Retained again, then changed by hand: the re-created resource stalls, naming the difference.
    kube("delete", "exts", "kept", "--timeout=60s")
    execute(pg_url, 'ALTER TABLE "ext_kept"."item" ADD COLUMN extra TEXT')
    before = tables(pg_url)
    kube.apply(doc)
    refused = kube.ready(kube.wait_reason("kept", "AdoptionRefused"))
    assert "ES209" in refused["message"] and "extra column item.extra" in refused["message"], refused
    assert kube.ready(kube.get("kept"), "Stalled").get("status") == "True"
    assert tables(pg_url) == before
    assert execute(pg_url, 'SELECT count(*) FROM "ext_kept"."item"') == [(2,)]
