"""limits.py is the one source of limits: the places that store or declare a value hold what validation lets through."""

from __future__ import annotations

import ast
import hashlib
import inspect

import sqlalchemy as sa

from extschema import crd, limits
from extschema.engine import STATUSES_MIGRATION, STATUSES_SCHEMA, Engine
from extschema.engine.registry import ENDING_KINDS


def _length(table: sa.Table, column: str) -> int:
    kind = table.c[column].type
    assert isinstance(kind, sa.String) and kind.length is not None, f"{table.name}.{column} is unbounded"
    return kind.length


def test_registry_columns_hold_every_value_validation_accepts(sqlite_url: str) -> None:
    engine = Engine(sqlite_url)
    try:
        registry = engine.registry
        for table in (registry.schemas, registry.migrations):
            assert _length(table, "plugin_id") >= limits.MAX_PLUGIN_ID_LENGTH
            assert _length(table, "version") >= limits.MAX_VERSION_LENGTH
            assert _length(table, "owner") >= limits.MAX_OWNER_LENGTH
            assert _length(table, "status") >= max(len(s) for s in (*STATUSES_SCHEMA, *STATUSES_MIGRATION))
        assert _length(registry.schemas, "checksum") >= len(hashlib.sha256().hexdigest())
        assert _length(registry.migrations, "checksum_sql") >= len(hashlib.sha256().hexdigest())
        assert _length(registry.migrations, "kind") >= max(len(k) for k in ("apply", "rollback", *ENDING_KINDS))
    finally:
        engine.close()


def test_owner_bound_covers_a_namespaced_name() -> None:
    # "namespace/name" of the longest namespace and name Kubernetes allows
    owner = "n" * limits.MAX_NAMESPACE_LENGTH + "/" + "m" * limits.MAX_RESOURCE_NAME_LENGTH
    assert len(owner) == limits.MAX_OWNER_LENGTH


def test_crd_and_status_declare_the_validation_bounds() -> None:
    spec = crd.spec_schema()["properties"]
    assert spec["pluginId"]["maxLength"] == limits.MAX_PLUGIN_ID_LENGTH
    assert spec["version"]["maxLength"] == limits.MAX_VERSION_LENGTH
    status = crd.extension_schema_status()["properties"]
    assert status["appliedVersion"]["maxLength"] >= limits.MAX_VERSION_LENGTH
    assert status["lastMigration"]["properties"]["version"]["maxLength"] >= limits.MAX_VERSION_LENGTH
    assert status["target"]["maxLength"] >= limits.MAX_RESOURCE_NAME_LENGTH
    assert status["lastMigration"]["properties"]["id"]["maxLength"] >= limits.REGISTRY_MIGRATION_ID_LENGTH


def test_limits_imports_nothing() -> None:
    """The lowest layer: every module may import it, so it imports nothing (but ``__future__``)."""
    tree = ast.parse(inspect.getsource(limits))
    imported = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert [getattr(node, "module", None) for node in imported] == ["__future__"]
