"""The condition catalog and how conditions change (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from extschema import conditions
from extschema.conditions import Outcome
from extschema.problems import Problem, ProblemError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "conditions.md"
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def _types(conds: list[dict[str, object]]) -> list[object]:
    return [c["type"] for c in conds]


def test_applied_is_ready_without_reconciling_or_stalled() -> None:
    conds = conditions.compute([], Outcome("Applied", "done"), 3, T0)
    assert _types(conds) == ["Ready"]
    assert conds[0] == {
        "type": "Ready",
        "status": "True",
        "reason": "Applied",
        "message": "done",
        "observedGeneration": 3,
        "lastTransitionTime": T0,
    }


def test_stalled_and_reconciling_present_only_while_true() -> None:
    stalled = conditions.compute([], Outcome("InvalidSpec", "spec.tables[0].name: ES101: bad"), 1, T0)
    assert _types(stalled) == ["Ready", "Stalled"]
    assert stalled[0]["status"] == "False" and stalled[1]["status"] == "True"
    waiting = conditions.compute(stalled, Outcome("DependencyNotReady", "wait"), 1, T1)
    assert _types(waiting) == ["Ready", "Reconciling"]
    ready = conditions.compute(waiting, Outcome("Applied", "ok"), 2, T1)
    assert _types(ready) == ["Ready"]
    idle = conditions.compute(ready, Outcome("Suspended", "paused"), 2, T1)
    assert _types(idle) == ["Ready"] and idle[0]["status"] == "False"


def test_last_transition_time_kept_unless_status_flips() -> None:
    first = conditions.compute([], Outcome("Conflict", "a"), 1, T0)
    same_status = conditions.compute(first, Outcome("InvalidSpec", "b"), 2, T1)
    assert same_status[0]["lastTransitionTime"] == T0  # Ready stays False
    assert same_status[1]["lastTransitionTime"] == T0  # Stalled stays True
    assert same_status[0]["reason"] == "InvalidSpec" and same_status[0]["observedGeneration"] == 2
    flipped = conditions.compute(same_status, Outcome("Applied", "ok"), 2, T1)
    assert flipped[0]["lastTransitionTime"] == T1


def test_other_conditions_are_kept() -> None:
    foreign = {"type": "Custom", "status": "True", "reason": "X", "message": "", "lastTransitionTime": T0}
    conds = conditions.compute([foreign], Outcome("Applied", "ok"), 1, T0)
    assert foreign in conds and _types(conds)[0] == "Ready"


def test_long_messages_are_truncated() -> None:
    conds = conditions.compute([], Outcome("MigrationFailed", "x" * 10_000), 1, T0)
    assert len(conds[0]["message"]) == conditions.MAX_MESSAGE


def test_changed_detects_reason_or_message() -> None:
    conds = conditions.compute([], Outcome("Conflict", "a"), 1, T0)
    assert not conditions.changed(conds, Outcome("Conflict", "a"))
    assert conditions.changed(conds, Outcome("Conflict", "b"))
    assert conditions.changed(None, Outcome("Applied", "a"))


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        ("invalid", "ES101", "InvalidSpec"),
        ("conflict", "ES201", "Conflict"),
        ("dependency", "ES208", "DependencyNotReady"),
        ("refused", "ES301", "RefusedChange"),
        ("refused", "ES303", "DeletionBlocked"),
        ("refused", "ES209", "AdoptionRefused"),
        ("database", "ES402", "MigrationFailed"),
        ("retryable", "ES403", "DatabaseUnavailable"),
        ("unreachable", "ES401", "DatabaseUnavailable"),
        ("usage", "ES404", "InvalidTarget"),
        ("approval", "ES307", "ApprovalRequired"),
    ],
)
def test_problem_kinds_map_to_reasons(kind: str, code: str, reason: str) -> None:
    outcome = conditions.outcome_of(ProblemError([Problem(code, "spec.tables[0].fields[1].type", "msg")], kind))
    assert outcome.reason == reason
    assert outcome.message == f"spec.tables[0].fields[1].type: {code}: msg"


def test_retried_reasons_and_backoff() -> None:
    retried = {name for name, r in conditions.CATALOG.items() if r.retried}
    assert retried == {"DatabaseUnavailable", "TargetNotFound", "InternalError"}
    assert [conditions.backoff(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Outcome("Whatever", "")


def test_reasons_are_camel_case_and_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `([A-Za-z]+)`", text, flags=re.MULTILINE))
    assert documented == set(conditions.CATALOG)
    for name in conditions.CATALOG:
        assert re.fullmatch(r"[A-Z][a-zA-Z]+", name)
    required = {
        "Applied",
        "InvalidSpec",
        "Conflict",
        "DependencyNotReady",
        "DatabaseUnavailable",
        "MigrationFailed",
        "Suspended",
        "Deleting",
        "DeletionBlocked",
    }
    assert required <= set(conditions.CATALOG)


def test_in_sync_reasons_are_documented_with_their_status() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^#### `([A-Za-z]+)`\n\n\*InSync=(True|False|Unknown)\*", text, flags=re.MULTILINE))
    shown = {True: "True", False: "False", None: "Unknown"}
    assert documented == {name: shown[r.in_sync] for name, r in conditions.IN_SYNC_REASONS.items()}


def test_sync_verdicts() -> None:
    clean = conditions.sync_of([])
    assert (clean.reason, clean.in_sync) == ("InSync", True) and "in sync" in clean.message
    drifted = conditions.sync_of(["extra column ext_shop.item.note", "missing index ix_item_title"])
    assert (drifted.reason, drifted.in_sync) == ("Drifted", False)
    assert drifted.message.startswith("2 differences from the applied spec: extra column ext_shop.item.note; missing")
    repaired = conditions.sync_of([], ["index ix_item_title"])
    assert (repaired.reason, repaired.in_sync) == ("Repaired", True) and "index ix_item_title" in repaired.message
    partly = conditions.sync_of(["extra column ext_shop.item.note"], ["index ix_item_title"])
    assert partly.reason == "Drifted" and "1 difference " in partly.message and "repaired: index" in partly.message
    with pytest.raises(ValueError):
        conditions.Sync("Whatever", "")


def test_in_sync_is_kept_while_ready_and_removed_otherwise() -> None:
    ready = conditions.compute([], Outcome("Applied", "ok"), 1, T0)
    drifted = conditions.sync_of(["extra column x"])
    with_sync = conditions.with_sync(ready, drifted, 1, T1)
    assert _types(with_sync) == ["Ready", "InSync"]
    in_sync = conditions.current(with_sync, conditions.IN_SYNC)
    assert in_sync is not None and (in_sync["status"], in_sync["reason"], in_sync["lastTransitionTime"]) == (
        "False",
        "Drifted",
        T1,
    )
    assert not conditions.sync_changed(with_sync, drifted)
    assert conditions.sync_changed(with_sync, conditions.sync_of([])) and conditions.sync_changed(ready, drifted)
    still_ready = conditions.compute(with_sync, Outcome("Applied", "ok again"), 1, T1)
    assert _types(still_ready) == ["Ready", "InSync"]
    waiting = conditions.compute(with_sync, Outcome("ApprovalRequired", "approve plan abc"), 2, T1)
    assert _types(waiting) == ["Ready", "Reconciling"]  # never Stalled, and no stale drift verdict
