"""The generated CRDs: structural, bounded, documented, and equal to the committed files (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extschema import crd, status_model, wire

REPO = Path(__file__).resolve().parent.parent


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{key}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _schema(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("relative", sorted(crd.written_files()))
def test_committed_crds_equal_generated_output(relative: str) -> None:
    """crds/ and the chart's templates are what `extschema crd --write` generates: regenerate when this fails."""
    path = REPO / relative
    assert path.is_file(), f"{path} missing: run `extschema crd --write`"
    assert path.read_text(encoding="utf-8") == crd.written_files()[relative], (
        f"{path} is stale: run `extschema crd --write`"
    )


@pytest.mark.parametrize("build", [crd.extension_schema_crd, crd.database_target_crd])
def test_structural_bounded_and_described(build: Any) -> None:
    doc = build()
    for path, node in _nodes(_schema(doc)["properties"]["spec"], "spec"):
        assert node.get("description"), f"{path} has no description"
        assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} is untyped"
        if node.get("type") == "string":
            assert "maxLength" in node or "enum" in node, f"{path} has no maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} has no maxItems"
    status = _schema(doc)["properties"]["status"]
    # The one default: what a resource shows before the operator's first write (kstatus: in progress, not Current).
    assert status.get("default") == (
        {"observedGeneration": 0} if doc["spec"]["names"]["kind"] == "ExtensionSchema" else None
    )
    for path, node in _nodes(status, "status"):
        assert node.get("description"), f"{path} has no description"
        assert "$ref" not in node and "anyOf" not in node and ("default" not in node or node is status), path
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, f"{path} is untyped"
        if node["type"] == "string":
            assert "maxLength" in node or "enum" in node or node.get("format") == "date-time", f"{path} unbounded"
        if node["type"] == "array":
            assert "maxItems" in node and node.get("x-kubernetes-list-type"), f"{path} unbounded"
        if node["type"] == "integer":
            assert node.get("format") == "int64", path
    assert yaml.safe_load(crd.render(doc)) == doc


def _declared(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Paths in *value* the structural *schema* would prune (or that have the wrong type)."""
    if isinstance(value, dict):
        assert schema["type"] == "object", path
        for key, child in value.items():
            if key not in schema.get("properties", {}):
                yield f"{path}.{key}"
            else:
                yield from _declared(child, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list):
        assert schema["type"] == "array", path
        for child in value:
            yield from _declared(child, schema["items"], f"{path}[]")
    else:
        expected = {"string": str, "integer": int, "boolean": bool}[schema["type"]]
        assert isinstance(value, expected) and isinstance(value, bool) == (expected is bool), path


@pytest.mark.parametrize(
    ("build", "status"),
    [
        (
            crd.extension_schema_crd,
            status_model.ExtensionSchemaStatus(
                observed_generation=3,
                applied_version="1.0.0",
                applied_checksum="a" * 64,
                target="default",
                tables=["p_one"],
                last_migration=status_model.LastMigration(
                    id="m1", version="1.0.0", changes=["create table p_one"], duration_ms=5, time="2026-01-02T03:04:05Z"
                ),
                pending_plan=status_model.PendingPlan(
                    hash="a1b2c3d4e5f60718",
                    summary="drop column item.note (120 values)",
                    destructive=True,
                    plan_class="destructive",
                    ops=[
                        wire.OpView(
                            kind="drop_column",
                            description="drop column item.note",
                            op_class="destructive",
                            reason="drops the column and its values",
                            check=wire.CheckView(kind="values_lost", table="item", column="note", count=120),
                            more_checks=[wire.CheckView(kind="values_lost", table="item", column="memo", count=1)],
                        )
                    ],
                    lint=[wire.LintView(rule="ban-drop-column", level="warning", message="m", statement=1)],
                ),
                targets=[
                    status_model.TargetStatus(
                        name="eu-1",
                        applied_version="1.0.0",
                        applied_checksum="a" * 64,
                        last_migration=status_model.LastMigration(id="m1", version="1.0.0"),
                        pending_plan=status_model.PendingPlan(
                            hash="a1b2c3d4e5f60718", summary="s", destructive=True, plan_class="destructive"
                        ),
                        conditions=[status_model.Condition(type="Ready", status="True", reason="Applied")],
                    )
                ],
                targets_ready="1/1",
                rollout=status_model.RolloutStatus(phase="Paused", message="m", paused_at="eu-1", resumed="1"),
                conditions=[
                    status_model.Condition(
                        type="Ready",
                        status="True",
                        reason="Applied",
                        message="ok",
                        observed_generation=3,
                        last_transition_time="2026-01-02T03:04:05Z",
                    )
                ],
            ),
        ),
        (
            crd.database_target_crd,
            status_model.DatabaseTargetStatus(
                observed_generation=1,
                backend="sqlite",
                server_version="3.45",
                conditions=[status_model.Condition(type="Ready", status="False", reason="DatabaseUnavailable")],
            ),
        ),
    ],
)
def test_status_schema_is_generated_from_the_status_model(build: Any, status: Any) -> None:
    """Every field of the status model, fully set, survives the CRD's pruning: the schema comes from the model."""
    dumped = status.dump()
    assert set(dumped) == {field.alias or name for name, field in type(status).model_fields.items()}
    schema = _schema(build())["properties"]["status"]
    assert list(_declared(dumped, schema, "status")) == []
    assert dumped["conditions"][0].get("lastTransitionTime", "2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    assert schema["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_extension_schema_names_columns_and_subresource() -> None:
    doc = crd.extension_schema_crd()
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "extensionschemas.extschema.io"
    assert spec["names"]["shortNames"] == ["exts"] and spec["names"]["categories"] == ["extschema"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        *("Plugin", "Version", "Ready", "Reason", "Targets", "Age"),
        *("Target", "InSync", "Pending", "Message"),
    ]
    assert columns["Version"]["jsonPath"] == ".status.appliedVersion"
    assert columns["Pending"]["jsonPath"] == ".status.pendingPlan.hash"
    assert columns["Targets"]["jsonPath"] == ".status.targetsReady"
    assert all(columns[name]["priority"] == 1 for name in ("Target", "InSync", "Pending", "Message"))
    assert "priority" not in columns["Ready"]


def test_status_declares_everything_the_operator_writes() -> None:
    status = _schema(crd.extension_schema_crd())["properties"]["status"]["properties"]
    assert {
        "observedGeneration",
        "appliedVersion",
        "appliedChecksum",
        "tables",
        "lastMigration",
        "pendingPlan",
        "conditions",
        "target",
    } <= set(status)
    condition = status["conditions"]["items"]["properties"]
    assert set(condition) == {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}
    assert set(status["lastMigration"]["properties"]) == {"id", "version", "changes", "durationMs", "time"}
    pending = status["pendingPlan"]
    assert set(pending["properties"]) == {"hash", "summary", "destructive", "class", "ops", "lint"}
    assert set(pending["required"]) == {"hash", "summary", "destructive", "class"}
    assert pending["properties"]["class"]["enum"] == ["rewriting", "destructive"]
    assert set(pending["properties"]["lint"]["items"]["properties"]) == {"rule", "level", "message", "statement"}
    op = pending["properties"]["ops"]["items"]["properties"]
    assert set(op) == {"kind", "description", "class", "reason", "check", "moreChecks"}


def test_named_lists_are_maps_and_rules_exist() -> None:
    spec = _schema(crd.extension_schema_crd())["properties"]["spec"]
    props = spec["properties"]
    for key in ("tables", "enums"):
        assert props[key]["x-kubernetes-list-type"] == "map"
        assert props[key]["x-kubernetes-list-map-keys"] == ["name"]
    fields = props["tables"]["items"]["properties"]["fields"]
    assert fields["x-kubernetes-list-type"] == "map"
    assert props["pluginId"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    rules = " ".join(r["rule"] for r in fields["items"]["x-kubernetes-validations"])
    assert "self.scale <=" in rules and "has(self.enum)" in rules
    assert props["tables"]["items"]["properties"]["fields"]["items"]["properties"]["type"]["enum"][0] == "String"
    assert props["deletionPolicy"]["enum"] == ["Drop", "Retain"]
    assert props["targetRef"]["required"] == ["name"] and props["suspend"]["type"] == "boolean"


def test_operator_only_fields_are_typed_in_the_model_and_leave_the_checksum_alone() -> None:
    """One document everywhere: the CLI reads targetRef and suspend as the CRD declares them (generated from the
    model), and a schema's checksum (so its plan hashes and recorded history) does not depend on them."""
    from extschema import model

    properties = model.ExtensionSchemaSpec.model_json_schema(by_alias=True)["properties"]
    assert {"targetRef", "suspend"} <= set(properties)
    plain = model.parse_spec({"pluginId": "p", "version": "1.0.0"})
    operated = model.parse_spec({"pluginId": "p", "version": "1.0.0", "targetRef": {"name": "db"}, "suspend": True})
    assert operated.target_ref is not None and operated.target_ref.name == "db" and operated.suspend is True
    assert plain.checksum() == operated.checksum()
    assert plain.canonical_json() == operated.canonical_json()


def test_database_target_spec_is_generated_from_the_model() -> None:
    from extschema import model

    spec = _schema(crd.database_target_crd())["properties"]["spec"]
    assert set(spec["properties"]) == set(model.DatabaseTargetSpec.model_json_schema(by_alias=True)["properties"])


def test_database_target_requires_exactly_one_url_source() -> None:
    spec = _schema(crd.database_target_crd())["properties"]["spec"]
    assert set(spec["properties"]) == {
        "url",
        "urlSecretRef",
        "lockTimeout",
        "statementTimeout",
        "allowRawSql",
        "pluginRoles",
    }
    assert any(r["rule"] == "has(self.url) != has(self.urlSecretRef)" for r in spec["x-kubernetes-validations"])
