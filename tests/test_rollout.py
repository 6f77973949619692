"""The staged rollout's pure planning (extschema.rollout): waves, pause and resume, the rollout's verdict."""

from __future__ import annotations

import pytest

from extschema import conditions
from extschema import rollout as plan


def _targets(waves: list[plan.Wave]) -> list[tuple[str, ...]]:
    return [w.targets for w in waves]


def test_canaries_first_then_waves_of_max_parallel_by_name() -> None:
    names = [f"db{i:02d}" for i in range(7, 0, -1)]  # given out of order
    waves = plan.plan_waves(names, {"db05", "db02"}, 2)
    assert _targets(waves) == [("db02", "db05"), ("db01", "db03"), ("db04", "db06"), ("db07",)]
    assert [w.canary for w in waves] == [True, False, False, False]
    assert [w.number for w in waves] == [1, 2, 3, 4]


def test_more_canaries_than_max_parallel_take_several_waves() -> None:
    waves = plan.plan_waves(["a", "b", "c", "d"], {"a", "b", "c"}, 2)
    assert _targets(waves) == [("a", "b"), ("c",), ("d",)]
    assert [w.canary for w in waves] == [True, True, False]


@pytest.mark.parametrize("width", [1, 3, 10, 1000])
def test_every_target_exactly_once_and_no_wave_wider_than_max_parallel(width: int) -> None:
    names = [f"t{i}" for i in range(23)] + ["t1"]  # a duplicate name counts once
    waves = plan.plan_waves(names, {"t3", "t17"}, width)
    flat = [n for w in waves for n in w.targets]
    assert sorted(flat) == sorted(set(names)) and len(flat) == len(set(flat))
    assert all(1 <= len(w.targets) <= width for w in waves)


def test_no_targets_no_waves_and_max_parallel_must_be_positive() -> None:
    assert plan.plan_waves([], set(), 3) == []
    with pytest.raises(ValueError):
        plan.plan_waves(["a"], set(), 0)


def test_paused_rollout_resumes_on_a_new_annotation_value_or_a_spec_change() -> None:
    assert plan.resumes(paused=False, paused_generation=1, generation=1, resumed=None, annotation=None)
    stays = {"paused": True, "paused_generation": 3, "generation": 3}
    assert not plan.resumes(**stays, resumed=None, annotation=None)
    assert not plan.resumes(**stays, resumed="1", annotation="1")  # already acted on
    assert plan.resumes(**stays, resumed="1", annotation="2")
    assert plan.resumes(**stays, resumed=None, annotation="now")
    assert plan.resumes(paused=True, paused_generation=3, generation=4, resumed="1", annotation="1")


def test_summaries_use_catalog_reasons() -> None:
    ready = plan.summarize({"a": "ready", "b": "ready"}, selector="tier=prod")
    assert (ready.phase, ready.reason) == ("Complete", "Applied") and "all 2" in ready.message
    paused = plan.summarize(
        {"a": "ready", "b": "failed", "c": "pending"}, selector="", failures={"b": "database down"}, paused_at="b"
    )
    assert (paused.phase, paused.reason) == ("Paused", "RolloutPaused")
    assert "target b" in paused.message and "database down" in paused.message
    assert "extschema.io/resume" in paused.message
    waiting = plan.summarize(
        {"a": "waiting", "b": "pending"}, selector="", waiting_hashes={"abc123": ["a"]}, canary_blocked=True
    )
    assert (waiting.phase, waiting.reason) == ("Progressing", "ApprovalRequired")
    assert "abc123" in waiting.message and "canary" in waiting.message
    failed = plan.summarize({"a": "ready", "b": "failed"}, selector="", failures={"b": "boom"})
    assert (failed.phase, failed.reason) == ("Complete", "TargetsNotReady") and "boom" in failed.message
    interrupted = plan.summarize({"a": "ready", "b": "pending"}, selector="", interrupted_by=4)
    assert interrupted.reason == "Progressing" and "generation 4" in interrupted.message
    none = plan.summarize({}, selector="tier=prod")
    assert none.reason == "NoTargetsSelected" and "tier=prod" in none.message
    for summary in (ready, paused, waiting, failed, interrupted, none):
        assert summary.reason in conditions.CATALOG
