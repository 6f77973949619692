"""Counts of fuzz cases per channel, written to a JSON file and printed as the run's summary table."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

from tests.helpers import REPO

#: Where the counts of a run go ($FUZZ_REPORT; make fuzz prints them at the end).
REPORT = Path(os.environ.get("FUZZ_REPORT") or REPO / ".fuzz" / "summary.json")
COUNTS: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
#: Bugs the fuzz suite found, fixed where they lived, each with its regression test (docs/fuzz.md lists them too).
BUGS_FIXED = [
    "tests/test_loading.py::test_a_deeply_nested_value_is_a_problem_not_a_recursion_error",
    "tests/test_validation.py::test_two_indexes_the_database_would_name_alike_are_refused",
    "tests/test_loading.py::test_a_character_yaml_refuses_is_es001_at_its_line_and_column",
]


def count(channel: str, outcome: str) -> None:
    """One case of *channel* ("cli sqlite", "rest postgresql", "kubectl", ...): "accepted" or "rejected"."""
    COUNTS[channel][outcome] += 1


def save() -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({k: dict(v) for k, v in sorted(COUNTS.items())}, indent=2) + "\n")


def table(counts: dict[str, Any]) -> str:
    """The summary: cases per channel, accepted and rejected, failures (0 when the run passed)."""
    lines = ["| channel | cases | accepted | rejected |", "|---|---:|---:|---:|"]
    total = collections.Counter[str]()
    for channel, found in sorted(counts.items()):
        cases = sum(found.values())
        total.update(found)
        lines.append(f"| {channel} | {cases} | {found.get('accepted', 0)} | {found.get('rejected', 0)} |")
    lines.append(f"| **all** | {sum(total.values())} | {total.get('accepted', 0)} | {total.get('rejected', 0)} |")
    return "\n".join(lines)
