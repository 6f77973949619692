"""docs/crd-reference.md: generated from the CRDs, current (test_crd checks it with crds/), complete, well-formed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extschema import crd, crd_reference

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / crd.REFERENCE


def _paths(node: dict[str, Any], path: str) -> Iterator[str]:
    yield path
    for key, child in node.get("properties", {}).items():
        yield from _paths(child, f"{path}.{key}")
    items = node.get("items")
    if isinstance(items, dict):
        for key, child in items.get("properties", {}).items():
            yield from _paths(child, f"{path}[].{key}")


@pytest.mark.parametrize("build", list(crd.FILES.values()))
def test_every_field_has_a_row(build: Any) -> None:
    doc = build()
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = PAGE.read_text()
    section = text.split(f"## {doc['spec']['names']['kind']}\n", 1)[1].split("\n## ", 1)[0]
    rows = {match.group(1) for match in re.finditer(r"^\| `([^`]+)` \|", section, re.M)}
    for part in ("spec", "status"):
        for path in _paths(schema["properties"][part], part):
            assert path in rows, f"{path} missing from {PAGE.name}"


def test_rows_are_well_formed_tables() -> None:
    for line in PAGE.read_text().splitlines():
        if line.startswith("| `"):
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) == 6, line  # 4 cells between 5 unescaped pipes


def test_pipes_and_newlines_are_escaped() -> None:
    node = {"type": "string", "description": "a|b\nc", "pattern": "^(a|b)$", "maxLength": 3}
    (row,) = crd_reference._rows(node, "spec.x", True)
    assert row == "| `spec.x` | string | yes | a\\|b c *at most 3 characters; pattern `^(a\\|b)$`.* |"
