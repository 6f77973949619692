"""The Argo CD health check and the `approve` action (deploy/argocd/resource_customizations/...), run in Lua.

Argo CD runs these scripts in gopher-lua (Lua 5.1) with the resource as the global ``obj``; here lupa's Lua 5.1
does the same, driven by the files Argo CD's own test harness reads (health_test.yaml, actions/action_test.yaml),
so the directory can be proposed upstream as it is. Beside the recorded objects, every reason of the operator's
catalog is turned into conditions by the operator's own code (conditions.compute) and checked.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from lupa import lua51

from extschema import conditions
from extschema.loading import from_object
from extschema.status_model import ExtensionSchemaStatus
from tests.controlplane import Cluster, kstatus, kubectl_path

REPO = Path(__file__).resolve().parent.parent
CUSTOMIZATION = REPO / "deploy" / "argocd" / "resource_customizations" / "extschema.io" / "ExtensionSchema"
HEALTH_TESTS = yaml.safe_load((CUSTOMIZATION / "health_test.yaml").read_text())["tests"]
ACTION_TESTS = yaml.safe_load((CUSTOMIZATION / "actions" / "action_test.yaml").read_text())
#: Argo CD's status for each phase of the reason catalog: only a stalled resource is Degraded.
ARGO_STATUS = {"ready": "Healthy", "reconciling": "Progressing", "stalled": "Degraded", "idle": "Suspended"}
#: Reasons of the DatabaseTarget only.
TARGET_ONLY = {"Connected"}


def to_python(value: Any) -> Any:
    """A Lua value as Python, as Argo CD's JSON conversion makes it: tables with keys 1..n, and empty
    tables, become lists."""
    if lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if all(isinstance(k, int) for k in items) and sorted(items) == list(range(1, len(items) + 1)):
        return [to_python(items[i]) for i in range(1, len(items) + 1)]
    return {k: to_python(v) for k, v in items.items()}


def _restore_empty_maps(new: Any, old: Any) -> Any:
    """Argo CD's ``cleanReturnedObj``: an empty list where the object had a map was an empty map (Lua
    cannot tell them apart), so a script never turns ``{}`` into ``[]``."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _restore_empty_maps(v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, dict) and not new:
        return old
    if isinstance(new, list) and isinstance(old, list):
        return [_restore_empty_maps(n, o) for n, o in zip(new, old, strict=False)] + new[len(old) :]
    return new


def run_script(script: Path, obj: dict[str, Any]) -> Any:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return _restore_empty_maps(to_python(lua.execute(script.read_text())), obj)


def health(obj: dict[str, Any]) -> dict[str, str]:
    result: dict[str, str] = run_script(CUSTOMIZATION / "health.lua", obj)
    return result


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.mark.parametrize("case", HEALTH_TESTS, ids=[Path(t["inputPath"]).stem for t in HEALTH_TESTS])
def test_recorded_objects_have_the_expected_health(case: dict[str, Any]) -> None:
    assert health(load(CUSTOMIZATION / case["inputPath"])) == case["healthStatus"]


def test_every_recorded_object_is_tested_and_is_a_status_the_operator_writes() -> None:
    tested = {(CUSTOMIZATION / t["inputPath"]).resolve() for t in HEALTH_TESTS}
    assert tested == {p.resolve() for p in (CUSTOMIZATION / "testdata").glob("*.yaml")}
    covered = {health(load(path))["status"] for path in tested}
    assert covered == {"Healthy", "Progressing", "Degraded", "Suspended"}
    for path in [*tested, *(CUSTOMIZATION / "actions" / "testdata").glob("*.yaml")]:
        ExtensionSchemaStatus.model_validate(load(path).get("status") or {})


@pytest.mark.parametrize("reason", sorted(set(conditions.CATALOG) - TARGET_ONLY))
def test_every_reason_maps_to_its_argo_status(reason: str) -> None:
    """The conditions the operator writes for each reason (conditions.compute) give the phase's Argo CD status."""
    outcome = conditions.Outcome(reason, f"a message about {reason}")
    obj = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "x", "namespace": "ns", "generation": 4},
        "spec": {"pluginId": "x", "version": "1.0.0"},
        "status": {
            "observedGeneration": 4,
            "conditions": conditions.compute(None, outcome, 4, "2026-11-30T10:00:00Z"),
        },
    }
    result = health(obj)
    assert result["status"] == ARGO_STATUS[outcome.phase], result
    assert f"a message about {reason}" in result["message"]
    # The same resource while it is being deleted waits for its finalizer, whatever the reason.
    obj["metadata"] |= {"deletionTimestamp": "2026-11-30T11:00:00Z", "finalizers": ["extschema.io/cleanup"]}
    deleting = health(obj)
    assert deleting["status"] == "Progressing"
    assert deleting["message"].startswith("Deleting: waiting for finalizer extschema.io/cleanup")


def test_a_ready_condition_of_an_older_generation_is_not_healthy() -> None:
    obj = load(CUSTOMIZATION / "testdata" / "healthy.yaml")
    obj["metadata"]["generation"] += 1
    assert health(obj)["status"] == "Progressing"
    obj["status"]["observedGeneration"] = obj["metadata"]["generation"]  # status caught up, condition did not
    assert health(obj) == {
        "status": "Progressing",
        "message": f"Waiting for the operator to reconcile generation {obj['metadata']['generation']}",
    }


@pytest.mark.parametrize("case", ACTION_TESTS["discoveryTests"], ids=lambda c: Path(c["inputPath"]).stem)
def test_approve_is_offered_only_while_a_plan_waits(case: dict[str, Any]) -> None:
    actions = run_script(
        CUSTOMIZATION / "actions" / "discovery.lua", load(CUSTOMIZATION / "actions" / case["inputPath"])
    )
    assert [{"name": name, **spec} for name, spec in sorted(actions.items())] == case["result"]


@pytest.mark.parametrize("case", ACTION_TESTS["actionTests"], ids=lambda c: c["action"])
def test_approve_sets_the_approved_hashes_from_the_pending_plans(case: dict[str, Any]) -> None:
    before = load(CUSTOMIZATION / "actions" / case["inputPath"])
    after = run_script(CUSTOMIZATION / "actions" / case["action"] / "action.lua", before)
    expected = load(CUSTOMIZATION / "actions" / case["expectedOutputPath"])
    assert after == expected
    if "targetSelector" not in before["spec"]:
        assert after["spec"]["approvedPlanHash"] == before["status"]["pendingPlan"]["hash"]
        assert {k: v for k, v in after["spec"].items() if k != "approvedPlanHash"} == before["spec"]
        return
    # Many targets: every distinct pending hash is added to approvedPlanHashes, the approvals already there kept.
    pending = {t["pendingPlan"]["hash"] for t in before["status"]["targets"] if "pendingPlan" in t}
    given = before["spec"].get("approvedPlanHashes", [])
    assert len(pending) > 1 and given
    assert after["spec"]["approvedPlanHashes"][: len(given)] == given
    assert set(after["spec"]["approvedPlanHashes"]) == {*given, *pending}
    assert {k: v for k, v in after["spec"].items() if k != "approvedPlanHashes"} == {
        k: v for k, v in before["spec"].items() if k != "approvedPlanHashes"
    }


FLEET = CUSTOMIZATION / "testdata" / "fleet-approval-required.yaml"


def _approve(obj: dict[str, Any]) -> dict[str, Any]:
    after: dict[str, Any] = run_script(CUSTOMIZATION / "actions" / "approve" / "action.lua", obj)
    return after


def test_approve_on_a_fleet_leaves_approved_plan_hash_and_repeats_no_hash() -> None:
    obj = load(FLEET)
    obj["spec"] |= {"approvedPlanHash": "0000111122223333", "approvedPlanHashes": ["a1b2c3d4e5f60718"]}
    after = _approve(obj)
    assert after["spec"]["approvedPlanHash"] == "0000111122223333"
    assert after["spec"]["approvedPlanHashes"] == ["a1b2c3d4e5f60718", "9e8d7c6b5a403f2e"]
    assert _approve(after) == after  # approving again changes nothing


def test_approve_on_a_fleet_stays_within_the_crd_bound() -> None:
    """spec.approvedPlanHashes holds at most 64 (CRD maxItems): the oldest approvals no target waits with go."""
    obj = load(FLEET)
    old = [f"{i:016x}" for i in range(64)]
    obj["spec"]["approvedPlanHashes"] = old
    hashes = _approve(obj)["spec"]["approvedPlanHashes"]
    assert len(hashes) == 64 and hashes == [*old[2:], "a1b2c3d4e5f60718", "9e8d7c6b5a403f2e"]


def test_a_waiting_target_alone_offers_approve() -> None:
    obj = load(FLEET)
    del obj["status"]["pendingPlan"]
    actions = run_script(CUSTOMIZATION / "actions" / "discovery.lua", obj)
    assert actions["approve"] == {"disabled": False}
    assert _approve(obj)["spec"]["approvedPlanHashes"][-2:] == ["a1b2c3d4e5f60718", "9e8d7c6b5a403f2e"]


def test_a_fleet_waiting_on_many_targets_names_a_few_and_counts_the_rest() -> None:
    obj = load(FLEET)
    (first, *_) = obj["status"]["targets"]
    # Copies: lupa converts an object shared by several entries once only.
    obj["status"]["targets"] = [copy.deepcopy({**first, "name": f"site-{i:02d}"}) for i in range(12)]
    message = health(obj)["message"]
    assert message.startswith("Waiting for approval of plan a1b2c3d4e5f60718 on site-00, site-01, site-02, ")
    assert "site-04, and 7 more (targets ready: 0/3): run the action 'approve' or add the hash " in message


def test_a_paused_rollout_of_an_older_generation_waits_for_the_new_one() -> None:
    """A spec change resumes a paused rollout: until the operator observed it, Progressing, not Degraded."""
    obj = load(CUSTOMIZATION / "testdata" / "fleet-paused.yaml")
    obj["metadata"]["generation"] += 1
    assert health(obj) == {"status": "Progressing", "message": "Waiting for the operator to reconcile generation 4"}


def test_one_database_with_a_targets_entry_reads_as_before() -> None:
    """targetRef (or none): status.targets holds the one entry; the health and approve stay those of pendingPlan."""
    obj = load(CUSTOMIZATION / "testdata" / "approval-required.yaml")
    plan = obj["status"]["pendingPlan"]
    obj["status"] |= {"targets": [{"name": "default", "pendingPlan": copy.deepcopy(plan)}], "targetsReady": "0/1"}
    expected = next(t for t in HEALTH_TESTS if t["inputPath"] == "testdata/approval-required.yaml")
    assert health(obj) == expected["healthStatus"]
    after = _approve(obj)
    assert after["spec"]["approvedPlanHash"] == plan["hash"] and "approvedPlanHashes" not in after["spec"]


# --- sync waves and the kustomize example ----------------------------------------------------------

EXAMPLES = REPO / "examples"
KUSTOMIZE = EXAMPLES / "kustomize"
WAVE = "argocd.argoproj.io/sync-wave"


def kustomize(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(kubectl_path()), "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def wave(doc: dict[str, Any]) -> int:
    return int(doc["metadata"]["annotations"][WAVE])


def test_sync_waves_order_targets_before_schemas_before_dependents() -> None:
    schemas = [load(path) for path in sorted(EXAMPLES.glob("*.yaml"))]
    schemas += [d for d in kustomize(KUSTOMIZE / "base") if d["kind"] == "ExtensionSchema"]
    targets = [d for d in kustomize(KUSTOMIZE / "base") if d["kind"] == "DatabaseTarget"]
    assert schemas and targets
    by_plugin = {doc["spec"]["pluginId"]: doc for doc in schemas}
    for schema in schemas:
        assert wave(schema) > max(wave(t) for t in targets), schema["metadata"]["name"]
        for dependency in schema["spec"].get("dependsOn", []):
            assert wave(schema) > wave(by_plugin[dependency]), schema["metadata"]["name"]


def test_kustomize_overlay_builds_valid_resources() -> None:
    docs = kustomize(KUSTOMIZE / "overlays" / "production")
    assert {(d["kind"], d["metadata"]["namespace"]) for d in docs} == {
        ("DatabaseTarget", "plugins"),
        ("ExtensionSchema", "plugins"),
    }
    (target,) = (d for d in docs if d["kind"] == "DatabaseTarget")
    assert target["spec"] == {
        "urlSecretRef": {"name": "app-db", "key": "url"},
        "lockTimeout": "10s",
        "statementTimeout": "5m",
    }
    (schema,) = (d for d in docs if d["kind"] == "ExtensionSchema")
    assert schema["spec"]["targetRef"] == {"name": target["metadata"]["name"]}
    loaded = from_object(schema, "kustomize")  # what the operator parses: valid
    assert loaded.spec.plugin_id == "tags"


@pytest.mark.k8s
def test_kustomize_overlay_passes_server_side_dry_run(kube_cluster: Cluster) -> None:
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for crd in ("extensionschemas", "databasetargets"):  # the overlay has both kinds
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.extschema.io")
    if kube_cluster.kubectl("get", "namespace", "plugins", check=False).returncode != 0:
        kube_cluster.kubectl("create", "namespace", "plugins")
    out = kube_cluster.kubectl("apply", "--dry-run=server", "-k", str(KUSTOMIZE / "overlays" / "production")).stdout
    assert "databasetarget.extschema.io/app-db created (server dry run)" in out
    assert "extensionschema.extschema.io/work-order-tags created (server dry run)" in out


def test_argocd_cm_component_carries_the_scripts_verbatim(tmp_path: Path) -> None:
    """deploy/argocd is a kustomize Component merging the scripts into an Argo CD install's argocd-cm."""
    argocd_cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd"},
        "data": {"url": "https://argocd.example.com"},
    }
    (tmp_path / "argocd-cm.yaml").write_text(yaml.safe_dump(argocd_cm))
    component = os.path.relpath(REPO / "deploy" / "argocd", tmp_path)  # kustomize wants a relative path
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["argocd-cm.yaml"], "components": [component]})
    )
    (config_map,) = kustomize(tmp_path)
    data = config_map["data"]
    assert data["url"] == "https://argocd.example.com"  # merged, not replaced
    assert (
        data["resource.customizations.health.extschema.io_ExtensionSchema"]
        == (CUSTOMIZATION / "health.lua").read_text()
    )
    actions = yaml.safe_load(data["resource.customizations.actions.extschema.io_ExtensionSchema"])
    assert actions["discovery.lua"] == (CUSTOMIZATION / "actions" / "discovery.lua").read_text()
    (approve,) = actions["definitions"]
    assert approve["name"] == "approve"
    assert approve["action.lua"] == (CUSTOMIZATION / "actions" / "approve" / "action.lua").read_text()


# --- kstatus (Flux) -----------------------------------------------------------------------------------

#: kstatus' status for each phase of the reason catalog. kstatus reads Ready=False as not there yet, so a
#: suspended resource is InProgress (a Flux health check on it waits; docs/concepts.md says so).
KSTATUS = {"ready": "Current", "reconciling": "InProgress", "stalled": "Failed", "idle": "InProgress"}
#: The same for Argo CD's view of the recorded objects (being deleted: Terminating in kstatus).
KSTATUS_OF_ARGO = {"Healthy": "Current", "Progressing": "InProgress", "Degraded": "Failed", "Suspended": "InProgress"}


def _catalog_object(reason: str) -> dict[str, Any]:
    outcome = conditions.Outcome(reason, f"a message about {reason}")
    return {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "x", "namespace": "ns", "generation": 4},
        "spec": {"pluginId": "x", "version": "1.0.0"},
        "status": {"observedGeneration": 4, "conditions": conditions.compute(None, outcome, 4, "2026-11-30T10:00:00Z")},
    }


def test_kstatus_reads_the_operator_conditions_as_flux_needs() -> None:
    """sigs.k8s.io/cli-utils' kstatus itself (Go), on every catalog reason and every recorded object."""
    reasons = sorted(set(conditions.CATALOG) - TARGET_ONLY)
    recorded = [CUSTOMIZATION / case["inputPath"] for case in HEALTH_TESTS]
    objects = [_catalog_object(reason) for reason in reasons] + [load(path) for path in recorded]
    results = kstatus.compute(objects)
    for reason, result in zip(reasons, results, strict=False):
        assert result["status"] == KSTATUS[conditions.reason(reason).phase], (reason, result)
    for path, case, result in zip(recorded, HEALTH_TESTS, results[len(reasons) :], strict=True):
        obj = load(path)
        expected = KSTATUS_OF_ARGO[case["healthStatus"]["status"]]
        if "deletionTimestamp" in obj["metadata"]:
            expected = "Terminating"
        elif "status" not in obj:
            expected = "Current"  # kstatus' known gap for objects nobody reconciled yet (docs/install.md, Flux)
        assert result["status"] == expected, (path.name, result)


def _flux_expressions() -> dict[str, str]:
    text = (REPO / "docs" / "install.md").read_text()
    block = text.split("healthCheckExprs:\n", 1)[1].split("```", 1)[0]
    (check,) = yaml.safe_load(block)
    return {key: check[key] for key in ("current", "failed")}


def test_flux_cel_health_check_in_the_docs_agrees_with_argo() -> None:
    """docs/install.md's Flux healthCheckExprs, evaluated with CEL on the objects the Argo CD check is tested with."""
    programs = {
        name: celpy.Environment().program(celpy.Environment().compile(expr))
        for name, expr in _flux_expressions().items()
    }
    reasons = sorted(set(conditions.CATALOG) - TARGET_ONLY)
    objects = [_catalog_object(reason) for reason in reasons]
    objects += [load(CUSTOMIZATION / case["inputPath"]) for case in HEALTH_TESTS]
    for obj in objects:
        if "deletionTimestamp" in obj["metadata"]:
            continue  # Flux waits for deletion itself
        activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
        argo = health(obj)["status"]
        assert bool(programs["current"].evaluate(activation)) == (argo == "Healthy"), obj
        assert bool(programs["failed"].evaluate(activation)) == (argo == "Degraded"), obj
