"""Adversarial review of the operator side of safe evolution (issues 8 and 9).

The first tests (a repair racing an approved drop, switching deletionPolicy, a conflicting CREATE at the
webhook) each failed before their fix; the e2e tests below them walk a kubectl user's paths that held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from extschema import reconcile
from extschema.controller import certificates, webhook
from extschema.controller.claims import ParsedSpecs, claim_of
from extschema.controller.runtime import memo_for, runtime
from extschema.controller.settings import Settings
from extschema.engine import Engine
from extschema.problems import ProblemError
from extschema.reconcile import lifecycle
from tests import test_operator_e2e as e2e
from tests import test_webhook
from tests.helpers import execute, ext_table, run, write_schema
from tests.test_metrics import scrape

pytest_plugins = ["tests.controlplane.fixtures"]
#: The operator e2e suite's fixtures: a namespace per test, operators started as subprocesses.
crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator

V1 = """
pluginId: race
version: 1.0.0
driftPolicy: Repair
tables:
  - name: item
    fields: [{name: title, type: String}, {name: note, type: Text}]
"""
V2 = V1.replace("1.0.0", "2.0.0").replace(", {name: note, type: Text}", "")


def _columns(url: str, plugin: str, table: str) -> set[str]:
    if url.startswith("sqlite"):
        return {row[1] for row in execute(url, f"PRAGMA table_info({ext_table(url, plugin, table)})")}
    rows = execute(
        url,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t",
        {"s": f"ext_{plugin}", "t": table},
    )
    return {row[0] for row in rows}


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _approved_apply(url: str, path: Path) -> None:
    plan_hash = run("plan", str(path), "-d", url, "-o", "json").item()["hash"]
    applied = run("apply", str(path), "-d", url, "--approve", plan_hash)
    assert applied.exit_code == 0, applied.stdout + applied.stderr


def test_a_repair_racing_an_approved_drop_does_not_recreate_the_dropped_column(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift loop reads the registration (v1), an approved v2 drops `note` meanwhile, then the repair
    takes the lock: it must repair against what is registered now, not re-create the column v2 dropped."""
    first = run("apply", str(write_schema(_dir(tmp_path / "v1"), "race", V1)), "-d", db_url)
    assert first.exit_code == 0, first.stdout + first.stderr
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'race', 'item')} (title, note) VALUES ('a', 'x'), ('b', 'y')")
    registered_of = lifecycle._registered

    def racing(engine: Engine, plugin_id: str | None) -> Any:
        registered = registered_of(engine, plugin_id)  # v1, as read before the lock
        _approved_apply(db_url, write_schema(_dir(tmp_path / "v2"), "race", V2))  # commits while the check runs
        return registered

    monkeypatch.setattr(lifecycle, "_registered", racing)
    engine = Engine(db_url)
    try:
        reconcile.repair(engine, "race")
    finally:
        engine.close()
    assert _columns(db_url, "race", "item") == {"id", "title"}  # the approved drop stays dropped
    kinds = [m["kind"] for m in run("history", "race", "-d", db_url, "-o", "json").items()]
    assert "repair" not in kinds, kinds


def _object(name: str, **spec: Any) -> reconcile.Loaded:
    body = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"pluginId": "keep", "version": "1.0.0", "tables": [{"name": "item", "fields": TITLE}], **spec},
    }
    return reconcile.from_object(body, f"ns/{name}")


TITLE = [{"name": "title", "type": "String"}]
NOTE = [{"name": "note", "type": "Text"}]


def _quiet(event: reconcile.MigrationEvent) -> None:
    """The reconcile's progress events are not what these tests check."""


def test_switching_deletion_policy_to_retain_is_not_a_schema_change(db_url: str) -> None:
    """Before deleting a plugin through Git one sets `deletionPolicy: Retain` to keep its data: that changes how
    the plugin is deleted, not its schema. It was refused with ES310 (the webhook refused the `kubectl apply`,
    and without the webhook the resource went Stalled/RefusedChange — Argo CD: Degraded)."""
    engine = Engine(db_url)
    try:
        reconcile.reconcile(engine, [_object("keep")], _quiet)
        execute(db_url, f"INSERT INTO {ext_table(db_url, 'keep', 'item')} (title) VALUES ('a')")
        retain = _object("keep", deletionPolicy="Retain")
        assert "needs approval" not in " ".join(webhook.admit(engine, retain, [], None))  # admitted
        (result,) = reconcile.reconcile(engine, [retain], _quiet)  # the operator's reconcile runs it
        registration = engine.registration("keep")
        assert registration is not None and registration.spec.deletion_policy == "Retain"
        assert registration.version == "1.0.0" and result.migration_id is not None
        # A real schema change under the same version is still refused.
        with pytest.raises(ProblemError) as refused:
            reconcile.reconcile(
                engine,
                [_object("keep", deletionPolicy="Retain", tables=[{"name": "item", "fields": [*TITLE, *NOTE]}])],
                _quiet,
            )
        assert {p.code for p in refused.value.problems} == {"ES310"}
    finally:
        engine.close()
    assert execute(db_url, f"SELECT title FROM {ext_table(db_url, 'keep', 'item')}") == [("a",)]


def _body(name: str, uid: str, created: str | None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid, "generation": 1}
    if created is not None:
        meta["creationTimestamp"] = created
    full = {"pluginId": "shared", "version": "1.0.0", "tables": [{"name": "item", "fields": TITLE}], **spec}
    return {"apiVersion": "extschema.io/v1alpha1", "kind": "ExtensionSchema", "metadata": meta, "spec": full}


def test_the_webhook_refuses_a_create_that_conflicts_with_an_older_resource_not_applied_yet(db_url: str) -> None:
    """An older resource claims pluginId `shared` but waits (DependencyNotReady): not in the registry yet. A new
    resource with the same pluginId loses to it in the reconcile (Stalled/Conflict), so the webhook must refuse
    it too. On CREATE the request has no creationTimestamp yet; the webhook took "" for it, sorted the new
    resource before every existing one, saw no older peer, and admitted it."""
    older = _body("first", "uid-1", "2026-01-01T00:00:00Z", dependsOn=["absent"])
    claims = claim_of(older, "ns", ParsedSpecs())
    memo = memo_for(Settings(default_database=db_url))
    new = _body("second", "", None)

    async def admit_create() -> None:
        await webhook.validate_schema(  # type: ignore[call-arg]
            body=new, spec=new["spec"], meta=new["metadata"], namespace="ns", dryrun=False, warnings=[],
            memo=memo, claims={key: [entry] for key, entry in claims.items()}, targets={}, old=None, new=new,
        )  # fmt: skip

    try:
        with pytest.raises(kopf.AdmissionError) as refused:
            asyncio.run(admit_create())
        assert "ns/first" in str(refused.value) and refused.value.code == 409, refused.value
    finally:
        runtime(memo).engines.close()


# --- the operator against a real API server ------------------------------------------------------


@pytest.mark.k8s
@pytest.mark.slow
def test_a_waiting_plan_through_suspend_revert_approval_and_a_later_version(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], db_url: str
) -> None:
    """pendingPlan, the pending-approvals gauge and the conditions along a GitOps life of one plugin."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    operator = run_operator(db_url, "--metrics-port", str(port))
    names = ["title", "note", "extra", "other"]
    doc = e2e.schema_doc("life", "life", [{"name": "item", "fields": [{"name": n, "type": "Text"} for n in names]}])
    kube.apply(doc)
    kube.wait("life")
    table = e2e.physical(db_url, "life", "item")
    e2e.execute(
        db_url, *(f"INSERT INTO {table} (title, note, extra, other) VALUES ('t', 'n', 'e', 'o')" for _ in "abc")
    )

    def version(number: str, *kept: str, **spec: Any) -> dict[str, Any]:
        fields = [{"name": n, "type": "Text"} for n in kept]
        changed = e2e.schema_doc("life", "life", [{"name": "item", "fields": fields}], **spec)
        changed["spec"]["version"] = number
        return changed

    def pending_approvals() -> float:
        return scrape(port, operator)["extschema_pending_approvals"]

    def waits(body: dict[str, Any]) -> None:
        assert e2e.condition_types(body) == {"Ready", "Reconciling"}, body["status"]
        assert body["status"]["pendingPlan"]["hash"] in kube.ready(body)["message"]

    # v2 drops `note`: it waits, and the gauge says so.
    kube.apply(version("2.0.0", "title", "extra", "other"))
    body = kube.wait_reason("life", "ApprovalRequired")
    waits(body)
    first = body["status"]["pendingPlan"]["hash"]
    assert pending_approvals() == 1
    # Suspended: nothing waits any more.
    kube.apply(version("2.0.0", "title", "extra", "other", suspend=True))
    body = kube.wait_reason("life", "Suspended")
    assert "pendingPlan" not in body["status"] and e2e.condition_types(body) == {"Ready"}
    assert pending_approvals() == 0
    # Resumed: the same plan waits again, with the same hash.
    kube.apply(version("2.0.0", "title", "extra", "other"))
    body = kube.wait_reason("life", "ApprovalRequired")
    assert body["status"]["pendingPlan"]["hash"] == first and pending_approvals() == 1
    # Reverted to the applied spec: nothing to approve.
    kube.apply(doc)
    body = kube.wait_reason("life", "Applied")
    assert "pendingPlan" not in body["status"] and e2e.condition_types(body) <= {"Ready", "InSync"}
    assert pending_approvals() == 0
    # v2 approved: it runs; the approval stays in Git.
    kube.apply(version("2.0.0", "title", "extra", "other", approvedPlanHash=first))
    kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/life", f"--timeout={e2e.WAIT}")
    body = kube.wait_reason("life", "Applied")
    assert "pendingPlan" not in body["status"] and "note" not in e2e.columns(db_url, table)
    # v3 drops `extra` with v2's approval still in the spec: another plan, another hash; it waits.
    kube.apply(version("3.0.0", "title", "other", approvedPlanHash=first))
    body = kube.wait_reason("life", "ApprovalRequired")
    waits(body)
    third = body["status"]["pendingPlan"]["hash"]
    assert third != first and f"{first} is ignored" in kube.ready(body)["message"]
    assert "extra" in e2e.columns(db_url, table) and pending_approvals() == 1
    # The spec changes again (v4 also drops `other`) together with the approval of v3's plan: stale, ignored.
    kube.apply(version("4.0.0", "title", approvedPlanHash=third))
    body = kube.wait_until(
        "life", lambda b: (b.get("status") or {}).get("pendingPlan", {}).get("hash") not in (None, third), "v4 plan"
    )
    waits(body)
    assert f"{third} is ignored" in kube.ready(body)["message"]
    assert {"extra", "other"} <= e2e.columns(db_url, table) and pending_approvals() == 1
    reasons = [e["reason"] for e in kube.events("life")]
    assert reasons.count("ApprovalRequired") == 4, reasons  # one per plan or approval shown, no repeats
    # Deleted while waiting: the gauge forgets it.
    kube("delete", "exts/life", f"--timeout={e2e.WAIT}")
    assert pending_approvals() == 0


@pytest.mark.k8s
@pytest.mark.slow
def test_versions_and_renames_through_kubectl(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], db_url: str
) -> None:
    """ES310 and ES311 stall with the path; a lower version goes back through the gate; a rename keeps the rows."""
    run_operator(db_url)

    def spec(number: str, *fields: dict[str, Any]) -> dict[str, Any]:
        doc = e2e.schema_doc("vers", "vers", [{"name": "item", "fields": list(fields)}])
        doc["spec"]["version"] = number
        return doc

    title, note = {"name": "title", "type": "String"}, {"name": "note", "type": "Text"}
    kube.apply(spec("1.0.0", title))
    kube.wait("vers")
    table = e2e.physical(db_url, "vers", "item")
    e2e.execute(db_url, *(f"INSERT INTO {table} (title) VALUES ('t{i}')" for i in range(5)))
    # The same version with another schema: Stalled, naming spec.version and ES310.
    kube.apply(spec("1.0.0", title, note))
    body = kube.wait_reason("vers", "RefusedChange")
    assert e2e.condition_types(body) == {"Ready", "Stalled"}
    assert kube.ready(body)["message"].startswith("spec.version: ES310"), kube.ready(body)
    kube.apply(spec("2.0.0", title, note))
    kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/vers", f"--timeout={e2e.WAIT}")
    e2e.execute(db_url, f"UPDATE {table} SET note = 'kept'")
    # A rename (renamedFrom) keeps every value.
    kube.apply(spec("3.0.0", title, {"name": "memo", "type": "Text", "renamedFrom": "note"}))
    kube("wait", "--for=jsonpath={.status.appliedVersion}=3.0.0", "exts/vers", f"--timeout={e2e.WAIT}")
    assert e2e.execute(db_url, f"SELECT count(*) FROM {table} WHERE memo = 'kept'") == [(5,)]
    # A lower version never applied with this schema: ES311, Stalled.
    kube.apply(spec("1.5.0", title))
    body = kube.wait_reason("vers", "RefusedChange")
    assert "ES311" in kube.ready(body)["message"] and "Stalled" in e2e.condition_types(body)
    # Back to 1.0.0 as it was applied: it drops `memo`, so it waits for an approval, then runs.
    kube.apply(spec("1.0.0", title))
    body = kube.wait_reason("vers", "ApprovalRequired")
    assert e2e.condition_types(body) == {"Ready", "Reconciling"} and "memo" in e2e.columns(db_url, table)
    back = spec("1.0.0", title)
    back["spec"]["approvedPlanHash"] = body["status"]["pendingPlan"]["hash"]
    kube.apply(back)
    kube("wait", "--for=jsonpath={.status.appliedVersion}=1.0.0", "exts/vers", f"--timeout={e2e.WAIT}")
    kube.wait("vers")
    assert "memo" not in e2e.columns(db_url, table)
    assert e2e.execute(db_url, f"SELECT count(*) FROM {table}") == [(5,)]


@pytest.mark.k8s
@pytest.mark.slow
def test_the_webhook_shows_the_hash_to_approve_admits_the_wait_and_a_bypass_still_stalls(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], sqlite_url: str, tmp_path: Path
) -> None:
    files = certificates.generate(tmp_path / "certs", ["127.0.0.1"])
    port = test_webhook.free_port()
    operator = run_operator(
        sqlite_url, "--webhook-port", str(port), "--webhook-cert", str(files.certfile),
        "--webhook-key", str(files.keyfile), "--webhook-ca", str(files.cafile),
    )  # fmt: skip
    test_webhook.wait_for_tls(port, operator)
    fields = [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]
    doc = e2e.schema_doc("hooked", "hooked", [{"name": "item", "fields": fields}])
    with test_webhook.webhook_configuration(kube, port, files.cafile):
        kube.apply(doc)
        kube.wait("hooked")
        e2e.execute(sqlite_url, f"INSERT INTO {e2e.physical(sqlite_url, 'hooked', 'item')} (note) VALUES ('n')")
        doc["spec"]["version"] = "2.0.0"
        doc["spec"]["tables"][0]["fields"] = fields[:1]
        shown = test_webhook.dry_run(kube, doc)
        assert shown.returncode == 0, shown.stderr  # waiting for an approval is no reason to refuse
        found = re.search(r"needs approval: set spec.approvedPlanHash: ([0-9a-f]{16})", shown.stderr)
        assert found is not None and "DROP" in shown.stderr.upper(), shown.stderr
        kube.apply(doc)
        body = kube.wait_reason("hooked", "ApprovalRequired")
        assert body["status"]["pendingPlan"]["hash"] == found.group(1)  # the dry run named the hash to commit
        doc["spec"]["approvedPlanHash"] = found.group(1)
        shown = test_webhook.dry_run(kube, doc)
        assert shown.returncode == 0 and "needs approval" not in shown.stderr, shown.stderr
        kube.apply(doc)
        kube("wait", "--for=jsonpath={.status.appliedVersion}=2.0.0", "exts/hooked", f"--timeout={e2e.WAIT}")
    # The webhook is down and ignored (failurePolicy Ignore): a conflict is stored, and the reconcile stalls it.
    down = test_webhook.free_port()
    with ignored_webhook(kube, down, files.cafile):
        out = kube.apply(e2e.simple("intruder", "hooked"), check=False)
        assert out.returncode == 0, out.stderr
        body = kube.wait_reason("intruder", "Conflict")
        assert "Stalled" in e2e.condition_types(body) and f"{kube.ns}/hooked" in kube.ready(body)["message"]


@contextlib.contextmanager
def ignored_webhook(kube: e2e.Kube, port: int, cafile: Path) -> Iterator[None]:
    """The chart's default failurePolicy (Ignore) pointing at a webhook that does not answer."""
    name, ca = f"extschema-down-{kube.ns}", cafile.read_bytes()
    rule = {"apiGroups": ["extschema.io"], "apiVersions": ["v1alpha1"], "resources": ["extensionschemas"]}
    hook = {
        "name": "validate.extschema.io",
        "clientConfig": {"url": f"https://127.0.0.1:{port}/validate", "caBundle": base64.b64encode(ca).decode()},
        "rules": [{**rule, "operations": ["CREATE", "UPDATE"], "scope": "*"}],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube.ns}},
        "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
    }  # fmt: skip
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration"}
    kube.cluster.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump({**doc, "metadata": {"name": name}, "webhooks": [hook]})
    )
    try:
        yield
    finally:
        kube.cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


@pytest.mark.k8s
@pytest.mark.slow
def test_repaired_then_in_sync_and_never_in_sync_while_waiting(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], db_url: str
) -> None:
    """After a repair the next check shows InSync; a resource waiting for an approval shows no InSync at all."""
    run_operator(db_url, "--drift-interval", "2s")
    fields = [{"name": "title", "type": "String"}, {"name": "note", "type": "Text"}]
    doc = e2e.schema_doc("mended", "mended", [{"name": "item", "fields": fields}], driftPolicy="Repair")
    kube.apply(doc)
    kube.wait("mended")
    kube.wait_until("mended", lambda b: kube.ready(b, "InSync").get("reason") == "InSync", "InSync")
    table = e2e.physical(db_url, "mended", "item")
    e2e.execute(db_url, f"INSERT INTO {table} (title, note) VALUES ('t', 'n')")
    e2e.execute(db_url, f"ALTER TABLE {table} DROP COLUMN note")
    kube.wait_until("mended", lambda b: kube.ready(b, "InSync").get("reason") == "Repaired", "Repaired", 30)
    assert "note" in e2e.columns(db_url, table)
    body = kube.wait_until("mended", lambda b: kube.ready(b, "InSync").get("reason") == "InSync", "InSync again", 30)
    assert kube.ready(body, "InSync")["status"] == "True"
    # v2 drops `title`: waiting for an approval, it is not Ready, so it shows no InSync (also after the checks).
    doc["spec"]["version"] = "2.0.0"
    doc["spec"]["tables"][0]["fields"] = fields[1:]
    kube.apply(doc)
    body = kube.wait_reason("mended", "ApprovalRequired")
    time.sleep(5)  # two drift intervals
    body = kube.get("mended")
    assert e2e.condition_types(body) == {"Ready", "Reconciling"}, body["status"]
    assert ("mended", "repair", "executed") in e2e.migrations(db_url)


@pytest.mark.k8s
@pytest.mark.slow
def test_many_resources_in_sync_cost_no_status_writes(
    kube: e2e.Kube, run_operator: Callable[..., e2e.Operator], db_url: str
) -> None:
    """One loop checks every Ready resource; once each shows InSync, further checks write nothing."""
    run_operator(db_url, "--drift-interval", "1s")
    docs = [e2e.simple(f"many{i}", f"many{i}") for i in range(15)]
    kube.apply(*docs)
    for doc in docs:
        name = doc["metadata"]["name"]
        kube.wait_until(name, lambda b: kube.ready(b, "InSync").get("status") == "True", "InSync", 90)
    versions = {d["metadata"]["name"]: kube.get(d["metadata"]["name"])["metadata"]["resourceVersion"] for d in docs}
    time.sleep(4)  # four drift intervals
    after = {d["metadata"]["name"]: kube.get(d["metadata"]["name"])["metadata"]["resourceVersion"] for d in docs}
    assert after == versions
    # A column added by hand to one of them shows on that one only.
    e2e.execute(db_url, f"ALTER TABLE {e2e.physical(db_url, 'many7', 'item')} ADD COLUMN extra TEXT")
    kube.wait_until("many7", lambda b: kube.ready(b, "InSync").get("status") == "False", "Drifted", 30)
    changed = {
        d["metadata"]["name"]
        for d in docs
        if kube.get(d["metadata"]["name"])["metadata"]["resourceVersion"] != versions[d["metadata"]["name"]]
    }
    assert changed == {"many7"}


DEPENDED_ON = """
pluginId: base
version: 1.0.0
tables:
  - name: item
    fields: [{name: title, type: String}]
  - name: other
    fields: [{name: title, type: String}]
"""
DEPENDENT = """
pluginId: user
version: 1.0.0
dependsOn: [base]
tables:
  - name: link
    fields: [{name: title, type: String}]
relationships:
  - {source: link, target: base.item, type: ManyToOne}
"""


def _apply_base_and_user(url: str, tmp_path: Path) -> None:
    directory = _dir(tmp_path / "v1")
    first = run(
        "apply",
        str(write_schema(directory, "base", DEPENDED_ON)),
        str(write_schema(directory, "user", DEPENDENT)),
        "-d",
        url,
    )
    assert first.exit_code == 0, first.stdout + first.stderr


def test_an_approved_drop_of_a_table_another_plugin_references_is_refused(db_url: str, tmp_path: Path) -> None:
    """Plugin `user` has a foreign key to `base.item`. An approved `base` 2.0.0 without `item` was run: on SQLite
    it dropped the table and left `user.link` pointing at nothing (every insert into it failed from then on); on
    PostgreSQL it failed in the database. The dependent's references are checked against the new spec."""
    _apply_base_and_user(db_url, tmp_path)
    execute(db_url, f"INSERT INTO {ext_table(db_url, 'base', 'item')} (title) VALUES ('kept')")
    without_item = DEPENDED_ON.replace("1.0.0", "2.0.0").replace(
        "  - name: item\n    fields: [{name: title, type: String}]\n", ""
    )
    path = write_schema(_dir(tmp_path / "v2"), "base", without_item)
    planned = run("plan", str(path), "-d", db_url, "-o", "json")
    assert planned.exit_code != 0 and "ES204" in planned.stdout + planned.stderr, planned.stdout + planned.stderr
    refused = run("apply", str(path), "-d", db_url, "--approve", "0123456789abcdef")
    assert (
        refused.exit_code == 1
        and "ES204" in refused.stdout + refused.stderr
        and "user" in refused.stdout + refused.stderr
    )
    assert execute(db_url, f"SELECT title FROM {ext_table(db_url, 'base', 'item')}") == [("kept",)]


def test_renaming_a_table_another_plugin_references_still_runs(db_url: str, tmp_path: Path) -> None:
    """A rename keeps the table and its foreign keys follow it, so it is no broken dependent: the operator applies
    the two resources one at a time, and the dependent can only follow once the rename has run."""
    _apply_base_and_user(db_url, tmp_path)
    renamed = DEPENDED_ON.replace("1.0.0", "2.0.0").replace("name: item\n", "name: thing\n    renamedFrom: item\n")
    applied = run("apply", str(write_schema(_dir(tmp_path / "v2"), "base", renamed)), "-d", db_url)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
