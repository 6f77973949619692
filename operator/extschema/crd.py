"""The CustomResourceDefinitions, generated from the pydantic model.

Pure: :func:`extension_schema_crd` and :func:`database_target_crd` return plain dicts;
``extschema crd`` prints or writes them. The spec schema is converted from
:class:`extschema.model.ExtensionSchemaSpec`'s JSON schema into a structural OpenAPI v3 schema
(every node typed, no ``$ref``/``anyOf``), then given what the model cannot say: bounds on
every string and list, patterns, list types, and CEL rules for checks across fields. The
operator-only spec fields (``targetRef``, ``suspend``) are declared here. The status schemas are
converted the same way from :mod:`extschema.status_model`, which the operator also writes through,
so everything it writes to status is declared (undeclared fields are pruned).
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import yaml

from extschema import crd_reference, limits, model, naming, status_model

GROUP = model.API_GROUP
VERSION = "v1alpha1"
CATEGORY = "extschema"
IDENTIFIER_PATTERN = naming.IDENTIFIER.pattern

Schema = dict[str, Any]

MAX_NAME = limits.MAX_IDENTIFIER_BYTES


def _name(description: str | None = None) -> Schema:
    out: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": IDENTIFIER_PATTERN}
    if description:
        out["description"] = description
    return out


def _object_name(description: str, pattern: str | None = None) -> Schema:
    """A Kubernetes object name (or a Secret's key): at most 253 characters."""
    out: Schema = {"type": "string", "minLength": 1, "maxLength": limits.MAX_RESOURCE_NAME_LENGTH}
    if pattern:
        out["pattern"] = pattern
    out["description"] = description
    return out


# Extra keywords per node, by path ('[]' = list items, '{}' = map values). Applied after conversion.
_EXTRA: dict[str, Schema] = {
    "": {"required": ["pluginId", "version"]},
    "pluginId": {
        "minLength": 1,
        "maxLength": limits.MAX_PLUGIN_ID_LENGTH,
        "pattern": naming.PLUGIN_ID.pattern,
        "x-kubernetes-validations": [
            {
                "rule": "self == oldSelf",
                "message": "pluginId is immutable: create a new ExtensionSchema for another plugin",
            }
        ],
    },
    "version": {"minLength": 1, "maxLength": limits.MAX_VERSION_LENGTH},
    "description": {"maxLength": limits.MAX_DESCRIPTION_LENGTH},
    "dependsOn": {"maxItems": limits.MAX_DEPENDS_ON, "x-kubernetes-list-type": "set"},
    "dependsOn[]": {
        "minLength": 1,
        "maxLength": limits.MAX_PLUGIN_ID_LENGTH,
        "pattern": naming.PLUGIN_ID.pattern,
    },
    "enums": {"maxItems": limits.MAX_ENUMS, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    "enums[].name": _name(),
    "enums[].values": {"minItems": 1, "maxItems": limits.MAX_ENUM_VALUES, "x-kubernetes-list-type": "set"},
    "enums[].values[]": {"minLength": 1, "maxLength": limits.MAX_ENUM_LABEL_BYTES},
    "enums[].renamedValues": {"maxProperties": limits.MAX_ENUM_VALUES},
    "enums[].renamedValues{}": {"minLength": 1, "maxLength": limits.MAX_ENUM_LABEL_BYTES},
    "enums[].localization": {"maxProperties": limits.MAX_LOCALES},
    "enums[].localization{}": {"maxProperties": limits.MAX_ENUM_VALUES},
    "enums[].localization{}{}": {"maxLength": limits.MAX_LOCALIZED_LABEL_LENGTH},
    "tables": {
        "maxItems": limits.MAX_TABLES,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    },
    "tables[].name": _name(),
    "tables[].description": {"maxLength": limits.MAX_DESCRIPTION_LENGTH},
    "tables[].renamedFrom": _name(),
    "tables[].fields[].renamedFrom": _name(),
    "tables[].fields": {
        "maxItems": limits.MAX_FIELDS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    },
    "tables[].fields[]": {
        "x-kubernetes-validations": [
            {
                "rule": "self.type != 'Decimal' || !has(self.scale) || "
                f"self.scale <= (has(self.precision) ? self.precision : {limits.DEFAULT_PRECISION})",
                "message": f"scale must not exceed precision (default {limits.DEFAULT_PRECISION})",
                "fieldPath": ".scale",
            },
            {
                "rule": "self.type != 'Enum' || has(self.enum)",
                "message": "a field of type Enum names its enum in 'enum'",
                "fieldPath": ".enum",
            },
            {
                "rule": "self.type == 'Enum' || !has(self.enum)",
                "message": "'enum' is only allowed on fields of type Enum",
                "fieldPath": ".enum",
            },
        ]
    },
    "tables[].fields[].name": _name(),
    "tables[].fields[].enum": _name(),
    "tables[].fields[].precision": {"minimum": 1, "maximum": limits.MAX_PRECISION},
    "tables[].fields[].scale": {"minimum": 0, "maximum": limits.MAX_PRECISION},
    "tables[].fields[].description": {"maxLength": limits.MAX_DESCRIPTION_LENGTH},
    "tables[].fields[].validation.minLength": {"minimum": 0},
    "tables[].fields[].validation.maxLength": {"minimum": 1, "maximum": limits.MAX_VARCHAR_LENGTH},
    "tables[].fields[].validation.pattern": {"maxLength": limits.MAX_PATTERN_LENGTH},
    "tables[].fields[].validation": {
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                "message": "min must not exceed max",
            },
            {
                "rule": "!has(self.minLength) || !has(self.maxLength) || self.minLength <= self.maxLength",
                "message": "minLength must not exceed maxLength",
            },
        ]
    },
    "tables[].indexes": {"maxItems": limits.MAX_INDEXES, "x-kubernetes-list-type": "atomic"},
    "tables[].indexes[].fields": {
        "minItems": 1,
        "maxItems": limits.MAX_INDEX_FIELDS,
        "x-kubernetes-list-type": "atomic",
    },
    "tables[].indexes[].fields[]": _name(),
    "tables[].indexes[].name": _name(),
    "tables[].uniqueConstraints": {"maxItems": limits.MAX_INDEXES, "x-kubernetes-list-type": "atomic"},
    "tables[].uniqueConstraints[].fields": {
        "minItems": 1,
        "maxItems": limits.MAX_INDEX_FIELDS,
        "x-kubernetes-list-type": "atomic",
    },
    "tables[].uniqueConstraints[].fields[]": _name(),
    "tables[].uniqueConstraints[].name": _name(),
    "relationships": {"maxItems": limits.MAX_RELATIONSHIPS, "x-kubernetes-list-type": "atomic"},
    "migrations": {
        "maxItems": limits.MAX_RAW_MIGRATIONS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["id"],
    },
    "migrations[].id": {"minLength": 1, "maxLength": MAX_NAME, "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
    "migrations[].sql": {"minLength": 1, "maxLength": limits.MAX_RAW_SQL_LENGTH},
    "migrations[].rollbackSql": {"maxLength": limits.MAX_RAW_SQL_LENGTH},
    "approvedPlanHash": {"minLength": 1, "maxLength": limits.MAX_PLAN_HASH_LENGTH, "pattern": "^[0-9a-f]+$"},
    "relationships[].source": _name(),
    "relationships[].sourceField": _name(),
    "relationships[].target": {
        "minLength": 1,
        "maxLength": 2 * MAX_NAME + 1,
        "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$",
    },
    "relationships[].targetField": _name(),
    "relationships[].name": _name(),
    # Operator-only fields (model.ExtensionSchemaSpec.target_ref, .suspend).
    "targetRef.name": {
        "minLength": 1,
        "maxLength": limits.MAX_RESOURCE_NAME_LENGTH,
        "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    },
}

# A default may be a string, bool or number: CEL cannot see such an untyped node ("undefined field"),
# so whether it fits the field's type is checked by the operator (InvalidSpec, ES105, with its path).
_DEFAULT_DESCRIPTION = (
    "Constant default; must fit the type: true/false for Boolean, an integer for Int/BigInt, "
    "a number for Float/Decimal, a string otherwise ('now' for DateTime, 'today' for Date)."
)


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref:
        target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
        target.update({k: v for k, v in node.items() if k != "$ref"})
        return target
    return node


#: Keywords of the pydantic JSON schema kept as they are (bounds from ``Field(max_length=...)``, formats from
#: the status model); everything else a structural schema does not allow, or says otherwise.
_KEPT = ("format", "minLength", "maxLength", "minItems", "maxItems")


def _kept(node: Schema) -> Schema:
    return {key: value for key, value in node.items() if key in _KEPT or key.startswith("x-kubernetes-")}


def _convert(node: Schema, defs: dict[str, Schema], path: str, extra: dict[str, Schema] | None = None) -> Schema:
    """One node of the pydantic JSON schema as a structural OpenAPI v3 node.

    *extra* holds keywords per path added after conversion (the spec's :data:`_EXTRA`).
    """
    extra = _EXTRA if extra is None else extra
    node = _resolve(node, defs)
    description = node.get("description")
    if "anyOf" in node:
        options = [_resolve(o, defs) for o in node["anyOf"] if o.get("type") != "null"]
        types = {o.get("type") for o in options}
        if len(options) == 1:
            outer = {key: value for key, value in node.items() if key not in ("anyOf", "default", "title")}
            return _convert({**options[0], **outer}, defs, path, extra)
        if types <= {"integer", "number"}:
            out: Schema = {"type": "number"}
        else:
            # A scalar of several types (a field's default): CEL rules check it against the field type.
            out = {"x-kubernetes-preserve-unknown-fields": True}
            description = _DEFAULT_DESCRIPTION if path.endswith(".default") else description
    elif node.get("type") == "object" or "properties" in node:
        out = {"type": "object"}
        properties = node.get("properties")
        if properties:
            out["properties"] = {
                key: _convert(value, defs, f"{path}.{key}" if path else key, extra) for key, value in properties.items()
            }
            if node.get("required"):
                out["required"] = list(node["required"])
        extra_values = node.get("additionalProperties")
        if isinstance(extra_values, dict):
            out["additionalProperties"] = _convert(extra_values, defs, f"{path}{{}}", extra)
    elif node.get("type") == "array":
        out = {"type": "array", "items": _convert(node.get("items", {}), defs, f"{path}[]", extra)}
    else:
        out = {key: node[key] for key in ("type", "enum") if key in node}
        if "type" not in out:
            raise ValueError(f"untyped schema node at {path or 'spec'}")
    if "x-kubernetes-preserve-unknown-fields" not in out:
        out.update(_kept(node))
    if description:
        out["description"] = description
    out.update(copy.deepcopy(extra.get(path, {})))
    if out.get("type") == "array" and not out["items"].get("description"):
        out["items"]["description"] = f"One entry of {path.rsplit('.', 1)[-1]}."
    if (
        out.get("type") == "object"
        and "additionalProperties" in out
        and not out["additionalProperties"].get("description")
    ):
        out["additionalProperties"]["description"] = f"One value of {path.rsplit('.', 1)[-1]}."
    return out


def spec_schema() -> Schema:
    """The structural schema of ExtensionSchema.spec, operator fields included."""
    source = model.ExtensionSchemaSpec.model_json_schema(by_alias=True)
    defs = source.pop("$defs", {})
    schema = _convert(source, defs, "")
    schema["description"] = (
        "What a plugin asks of the database: its tables, enums and relationships. At most "
        f"{limits.MAX_RESOURCE_SPEC_BYTES // 1024} KiB as JSON (ES009), so the object also holds its status."
    )
    return schema


def _status_schema(model_class: type[pydantic.BaseModel]) -> Schema:
    """A status schema from its pydantic model (:mod:`extschema.status_model`), like the spec's."""
    source = model_class.model_json_schema(by_alias=True)
    defs = source.pop("$defs", {})
    return _convert(source, defs, "", {})


def extension_schema_status() -> Schema:
    """The status schema, with a default that the API server shows until the operator's first write.

    ``observedGeneration: 0`` makes a resource nobody has reconciled yet read as in progress to kstatus (Helm 4's
    ``--wait``, Flux), which reads an object without status as Current and would stop waiting before the
    operator has seen it. Defaults apply on every read, never stored; the operator's first write replaces it.
    """
    return {**_status_schema(status_model.ExtensionSchemaStatus), "default": {"observedGeneration": 0}}


def _crd(
    plural: str,
    kind: str,
    short: list[str],
    spec: Schema,
    status: Schema,
    columns: list[Schema],
    description: str,
) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/name": "extschema"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of this object."},
                                "kind": {"type": "string", "description": "Kind of this object."},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


_READY = '.status.conditions[?(@.type=="Ready")]'


def extension_schema_crd() -> Schema:
    columns: list[Schema] = [
        {"name": "Plugin", "type": "string", "jsonPath": ".spec.pluginId", "description": "pluginId"},
        {
            "name": "Version",
            "type": "string",
            "jsonPath": ".status.appliedVersion",
            "description": "Applied version",
        },
        {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status", "description": "Ready condition"},
        {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason", "description": "Why"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Target",
            "type": "string",
            "jsonPath": ".status.target",
            "priority": 1,
            "description": "DatabaseTarget",
        },
        {
            "name": "InSync",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="InSync")].status',
            "priority": 1,
            "description": "Whether the database matches the applied spec (drift check)",
        },
        {
            "name": "Pending",
            "type": "string",
            "jsonPath": ".status.pendingPlan.hash",
            "priority": 1,
            "description": "Hash of the plan waiting for approval (spec.approvedPlanHash)",
        },
        {
            "name": "Message",
            "type": "string",
            "jsonPath": f"{_READY}.message",
            "priority": 1,
            "description": "What to do",
        },
    ]
    return _crd(
        "extensionschemas",
        model.KIND,
        ["exts"],
        spec_schema(),
        extension_schema_status(),
        columns,
        "A plugin's database schema: tables, enums and relationships the operator creates and keeps.",
    )


_DURATION: Schema = {"maxLength": 16, "pattern": limits.DURATION_PATTERN}

#: Extra keywords of the DatabaseTarget spec, by path (like :data:`_EXTRA`).
_TARGET_EXTRA: dict[str, Schema] = {
    "": {
        "x-kubernetes-validations": [
            {
                "rule": "has(self.url) != has(self.urlSecretRef)",
                "message": "set exactly one of url and urlSecretRef",
            },
            {
                "rule": "!has(self.url) || !self.url.matches('^[A-Za-z0-9+.-]+://[^/@]*:[^/@]*@')",
                "message": "url must not contain a password: put the URL in a Secret and use urlSecretRef",
                "fieldPath": ".url",
            },
        ],
    },
    "url": {"maxLength": 2048},
    "urlSecretRef.name": {"minLength": 1, "maxLength": limits.MAX_RESOURCE_NAME_LENGTH},
    "urlSecretRef.key": {"minLength": 1, "maxLength": limits.MAX_RESOURCE_NAME_LENGTH},
    "lockTimeout": _DURATION,
    "statementTimeout": _DURATION,
}


def database_target_spec() -> Schema:
    """The structural schema of DatabaseTarget.spec, from :class:`extschema.model.DatabaseTargetSpec`."""
    source = model.DatabaseTargetSpec.model_json_schema(by_alias=True)
    defs = source.pop("$defs", {})
    return _convert(source, defs, "", _TARGET_EXTRA)


def database_target_status() -> Schema:
    return _status_schema(status_model.DatabaseTargetStatus)


def database_target_crd() -> Schema:
    columns: list[Schema] = [
        {"name": "Backend", "type": "string", "jsonPath": ".status.backend", "description": "Database kind"},
        {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status", "description": "Connected"},
        {
            "name": "Server",
            "type": "string",
            "jsonPath": ".status.serverVersion",
            "description": "Server version",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Message",
            "type": "string",
            "jsonPath": f"{_READY}.message",
            "priority": 1,
            "description": "Last error",
        },
    ]
    return _crd(
        "databasetargets",
        "DatabaseTarget",
        ["dbt"],
        database_target_spec(),
        database_target_status(),
        columns,
        "A database ExtensionSchemas can target (spec.targetRef).",
    )


#: file name -> generator, for ``extschema crd --write`` and the test that compares them.
FILES = {
    "extensionschemas.yaml": extension_schema_crd,
    "databasetargets.yaml": database_target_crd,
}


def render(crd: Schema) -> str:
    header = (
        "# Generated by `extschema crd --write` from operator/extschema/model.py, status_model.py and crd.py."
        " Do not edit.\n"
    )
    return header + yaml.safe_dump(crd, sort_keys=False, width=120, allow_unicode=True)


def rendered_files() -> dict[str, str]:
    return {name: render(build()) for name, build in FILES.items()}


#: The chart's copies are templates, not files in its ``crds/`` directory: Helm installs ``crds/`` once and
#: never upgrades it, while templates are upgraded with the release (and kept on uninstall, see below).
CHART_CRDS = "charts/extschema/templates/crds"


def chart_template(crd: Schema, condition: str = ".Values.crds.create") -> str:
    """*crd* as a Helm template: behind ``crds.create``, with the chart's labels and
    ``helm.sh/resource-policy: keep`` so that ``helm uninstall`` never deletes the CRD (and every resource)."""
    spec = yaml.safe_dump({"spec": crd["spec"]}, sort_keys=False, width=120, allow_unicode=True)
    if "{{" in spec:  # Helm would read it as a template action
        raise ValueError("a CRD description contains '{{'")
    return (
        f"{{{{- if {condition} }}}}\n"
        "# Generated by `extschema crd --write` from the model, like crds/; the same CRD. Do not edit.\n"
        f"apiVersion: {crd['apiVersion']}\n"
        f"kind: {crd['kind']}\n"
        "metadata:\n"
        f"  name: {crd['metadata']['name']}\n"
        "  labels:\n"
        '    {{- include "extschema.labels" . | nindent 4 }}\n'
        "  annotations:\n"
        "    # Never deleted by helm uninstall: deleting a CRD deletes every resource of its kind.\n"
        "    helm.sh/resource-policy: keep\n"
        f"{spec}"
        "{{- end }}\n"
    )


def kopf_peering_crd(kind: str, scope: str) -> Schema:
    """kopf's peering CRD (kopf's peering.yaml): ``extschema run --peering`` keeps its replicas' keep-alives in
    one object of it (docs/ha.md)."""
    plural = f"{kind.lower()}s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "scope": scope,
            "group": "kopf.dev",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    },
                }
            ],
        },
    }


#: Not model CRDs (no reference, no JSON schema): kopf's own, installed by the chart only where peering runs.
PEERING_FILES = {
    "clusterkopfpeerings.yaml": kopf_peering_crd("ClusterKopfPeering", "Cluster"),
    "kopfpeerings.yaml": kopf_peering_crd("KopfPeering", "Namespaced"),
}
PEERING_CONDITION = '(include "extschema.installPeeringCrds" .)'

#: The field reference, generated from the same CRDs (:mod:`extschema.crd_reference`).
REFERENCE = "docs/crd-reference.md"


def written_files() -> dict[str, str]:
    """What ``extschema crd --write`` writes, by path relative to the repository: crds/, the chart's templates and
    docs/crd-reference.md."""
    files = {f"crds/{name}": text for name, text in rendered_files().items()}
    files.update({f"{CHART_CRDS}/{name}": chart_template(build()) for name, build in FILES.items()})
    for name, peering in PEERING_FILES.items():  # kopf's, for several replicas (docs/ha.md)
        header = "# kopf's peering CRD, for `extschema run --peering` (docs/ha.md); by `extschema crd --write`.\n"
        files[f"crds/{name}"] = header + yaml.safe_dump(peering, sort_keys=False, width=120)
        files[f"{CHART_CRDS}/{name}"] = chart_template(peering, PEERING_CONDITION)
    files[REFERENCE] = crd_reference.render([build() for build in FILES.values()])
    return files


# --- JSON Schema for editors (``extschema schema --json-schema``) -------------------------------------

#: Where the schema says it lives (``$id``); the docs show how to point yaml-language-server at a local copy.
JSON_SCHEMA_ID = "https://extschema.io/schemas/v1alpha1/documents.json"
#: OpenAPI formats JSON Schema does not know (validators would ignore or reject them).
_OPENAPI_FORMATS = ("int32", "int64", "float", "double", "byte", "binary")
_METADATA: Schema = {
    "type": "object",
    "description": "Kubernetes object metadata: name (required), namespace, labels, annotations...",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": limits.MAX_RESOURCE_NAME_LENGTH},
        "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _json_node(node: Schema) -> Schema:
    """A structural OpenAPI node as JSON Schema (draft 7): the ``x-kubernetes-*`` keywords (CEL rules, list
    types) left out, and objects closed (``additionalProperties: false``) as the CLI reads them (ES011)."""
    out: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or (key == "format" and value in _OPENAPI_FORMATS):
            continue
        if key == "properties":
            out[key] = {name: _json_node(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _json_node(value)
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        out["type"] = ["string", "number", "boolean"]  # a field's default: a scalar, checked against its type
    return out


def _document_schema(crd: Schema) -> Schema:
    """One whole document of *crd*'s kind: apiVersion, kind, metadata and spec (status: what the operator wrote)."""
    (version,) = crd["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    kind = crd["spec"]["names"]["kind"]
    return {
        "type": "object",
        "description": root["description"],
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": f"{GROUP}/{VERSION}"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": _json_node(root["properties"]["spec"]),
            "status": {"type": "object", "description": "Written by the operator; ignored when applied."},
        },
        "additionalProperties": False,
    }


def json_schema() -> Schema:
    """The JSON Schema (draft 7) of ExtensionSchema and DatabaseTarget documents, for yaml-language-server and
    other editors: the CRDs' schemas (so whatever the model declares), picked by ``kind``. What CEL rules and
    :mod:`extschema.validation` check across fields is left to ``extschema validate``."""
    kinds = {build()["spec"]["names"]["kind"]: build() for build in FILES.values()}
    definitions = {kind: _document_schema(crd) for kind, crd in kinds.items()}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": JSON_SCHEMA_ID,
        "title": "extschema documents (" + ", ".join(definitions) + ")",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"const": f"{GROUP}/{VERSION}"},
            "kind": {"enum": list(definitions)},
        },
        "allOf": [
            {"if": {"properties": {"kind": {"const": kind}}}, "then": {"$ref": f"#/definitions/{kind}"}}
            for kind in definitions
        ],
        "definitions": definitions,
    }
