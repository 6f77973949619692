"""Unit tests of the operator's handler logic, without an API server (kopf's Body/Patch and fakes).

What the operator does against a real API server is tested in test_operator_e2e.py; these tests pin the
decisions inside: peer ordering, retry-or-stall, re-check pokes, target resolution, memo state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
import pytest

from extschema import conditions, conflicts, limits, model, reconcile, wire
from extschema.conditions import Outcome
from extschema.controller import claims, drift, recheck, runtime, settings, status, targets
from extschema.controller.diffbase import DigestDiffBaseStorage
from extschema.controller.kubeapi import KubeApi
from extschema.engine.lint import LintFinding
from extschema.problems import Kind, Problem, ProblemError
from extschema.status_model import DatabaseTargetStatus, ExtensionSchemaStatus

SPEC = model.parse_spec({"pluginId": "shop", "version": "1.0.0"})


def _entry(owner: str, created: str, uid: str, *, generation: int = 1, ready: bool = False) -> claims.ClaimEntry:
    return claims.ClaimEntry(created, owner, uid, generation, ready, conflicts.Claim(owner, SPEC))


def _body(**status_fields: Any) -> kopf.Body:
    raw = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "shop", "namespace": "ns", "uid": "u1", "generation": 4},
        "spec": {"pluginId": "shop", "version": "1.0.0"},
        "status": status_fields,
    }
    return kopf.Body(raw)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "event", lambda body, **kwargs: posted.append(kwargs))
    return posted


def _applied(patch: kopf.Patch, body: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {"status": dict(body.get("status") or {})}
    for fn in patch.fns:
        fn(raw)
    return raw["status"]


# --- claims ---------------------------------------------------------------------------------------


def test_peers_are_the_older_claims_oldest_first_and_self_is_excluded() -> None:
    entries = [
        _entry("ns/c", "2026-01-03T00:00:00Z", "uc"),
        _entry("ns/y", "2026-01-01T00:00:00Z", "uy"),  # oldest, though its name sorts late
        _entry("ns/me", "2026-01-02T00:00:00Z", "ume"),
        _entry("ns/b", "2026-01-02T00:00:00Z", "ub"),  # same time: ordered by owner, "ns/b" < "ns/me"
        _entry("ns/z", "2026-01-02T00:00:00Z", "uz"),  # same time, later owner: younger
    ]
    peers, _ = claims.peers_of(entries, "ume", ("2026-01-02T00:00:00Z", "ns/me"))
    assert [p.owner for p in peers] == ["ns/y", "ns/b"]


def test_peer_fingerprint_follows_the_others_state_not_their_order() -> None:
    a, b = _entry("ns/a", "1", "ua"), _entry("ns/b", "2", "ub")
    order = ("3", "ns/me")
    _, first = claims.peers_of([a, b], "ume", order)
    _, reordered = claims.peers_of([b, a], "ume", order)
    _, with_self = claims.peers_of([b, a, _entry("ns/me", "3", "ume", generation=9)], "ume", order)
    _, b_ready = claims.peers_of([a, _entry("ns/b", "2", "ub", ready=True)], "ume", order)
    _, b_changed = claims.peers_of([a, _entry("ns/b", "2", "ub", generation=2)], "ume", order)
    _, a_gone = claims.peers_of([b], "ume", order)
    assert first == reordered == with_self
    assert len({first, b_ready, b_changed, a_gone}) == 4


def test_parsed_specs_parse_each_generation_once_and_invalid_specs_claim_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = reconcile.from_object

    def counting(body: dict[str, object], source: str) -> reconcile.Loaded:
        calls.append(source)
        return real(body, source)

    monkeypatch.setattr(reconcile, "from_object", counting)
    parsed = claims.ParsedSpecs(limit=1)
    body = _body()
    first = parsed.get(body)
    assert first is not None and first.owner == "ns/shop"
    assert parsed.get(body) is first and calls == ["ns/shop"]
    entry = claims.claim_of(body, "ns", parsed)
    assert list(entry) == [settings.DEFAULT_TARGET] and entry[settings.DEFAULT_TARGET].uid == "u1"
    invalid = kopf.Body({**dict(body), "metadata": {**body["metadata"], "uid": "u2"}, "spec": {"pluginId": "Bad!"}})
    assert parsed.get(invalid) is None and claims.claim_of(invalid, "ns", parsed) == {}
    parsed.get(kopf.Body({**dict(body), "metadata": {**body["metadata"], "uid": "u3"}}))
    assert len(parsed) <= 2  # bounded: the oldest entry is dropped beyond the limit


def test_a_selector_resource_claims_every_target_it_selects() -> None:
    """Its claim sits under the namespace's selector key and joins the claims of each matching target."""
    parsed = claims.ParsedSpecs()
    selector = {"matchLabels": {"app": "shop"}}
    raw = dict(_body())
    body = kopf.Body(
        {**raw, "metadata": {**raw["metadata"], "uid": "sel"}, "spec": {**raw["spec"], "targetSelector": selector}}
    )
    entry = claims.claim_of(body, "ns", parsed)
    assert list(entry) == [claims.selector_key("ns")]
    named = claims.claim_of(kopf.Body({**raw, "spec": {**raw["spec"], "targetRef": {"name": "db"}}}), "ns", parsed)
    index = {key: [value] for key, value in {**entry, **named}.items()}  # as kopf.Index: key -> entries
    assert [e.uid for e in claims.claims_on(index, "ns/db", {"app": "shop"})] == ["u1", "sel"]
    assert [e.uid for e in claims.claims_on(index, "ns/db", {"app": "other"})] == ["u1"]
    assert claims.claims_on(index, "ns/other", {"app": "shop"})[0].uid == "sel"
    assert claims.claims_on(index, "other/db", {"app": "shop"}) == []  # a selector stays in its namespace
    assert claims.claims_on(index, settings.DEFAULT_TARGET, None) == []


def test_a_single_target_resource_mirrors_its_status_in_one_targets_entry(events: list[dict[str, Any]]) -> None:
    patch, body = kopf.Patch(), _body()
    applied = {"appliedVersion": "1.0.0", "appliedChecksum": "c" * 64}
    status.settle(body, patch, Outcome("Applied", "ok"), status.Stats(), fields=applied, target="db")
    written = _applied(patch, body)
    (entry,) = written["targets"]
    assert entry["name"] == "db" and entry["appliedVersion"] == "1.0.0" and written["targetsReady"] == "1/1"
    assert entry["conditions"][0]["reason"] == "Applied"
    waiting = kopf.Patch()
    with pytest.raises(kopf.TemporaryError):
        status.settle(_body(**written), waiting, Outcome("DatabaseUnavailable", "down"), status.Stats(), target="db")
    again = _applied(waiting, _body(**written))
    assert again["targetsReady"] == "0/1" and again["targets"][0]["conditions"][0]["reason"] == "DatabaseUnavailable"


def test_claims_conflict_within_one_target() -> None:
    assert targets.target_key("ns", {}) == settings.DEFAULT_TARGET
    assert targets.target_key("ns", {"targetRef": {"name": "db"}}) == "ns/db"


# --- status: retry or stall -----------------------------------------------------------------------


def test_settle_retries_retried_reasons_with_backoff(events: list[dict[str, Any]]) -> None:
    stats, patch, body = status.Stats(), kopf.Patch(), _body()
    with pytest.raises(kopf.TemporaryError) as raised:
        status.settle(body, patch, Outcome("DatabaseUnavailable", "down"), stats, retry=3, fields={"target": "db"})
    assert raised.value.delay == conditions.backoff(3) == 8.0
    written = _applied(patch, body)
    assert written["target"] == "db" and written["observedGeneration"] == 4
    ready = conditions.current(written["conditions"])
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "DatabaseUnavailable"
    assert stats.failures == 1 and stats.last_success is None
    assert [e["reason"] for e in events] == ["DatabaseUnavailable"] and events[0]["type"] == "Warning"
    ExtensionSchemaStatus.model_validate(written)  # only declared fields (the CRD would prune others)


def test_settle_stalls_on_reasons_a_person_must_fix(events: list[dict[str, Any]]) -> None:
    stats, patch, body = status.Stats(), kopf.Patch(), _body(tables=["old"])
    assert status.settle(body, patch, Outcome("InvalidSpec", "bad field"), stats, fields={"tables": None}) is None
    written = _applied(patch, body)
    assert "tables" not in written  # None removes a field
    assert {c["type"] for c in written["conditions"]} >= {"Ready", "Stalled"}
    assert stats.failures == 1 and len(events) == 1


def test_settle_posts_no_event_when_the_ready_condition_is_unchanged(events: list[dict[str, Any]]) -> None:
    stats, patch = status.Stats(), kopf.Patch()
    outcome = Outcome("Applied", "plugin shop 1.0.0 applied to default")
    first = _applied(patch, _body())
    status.settle(_body(), patch, outcome, stats)
    applied = _applied(patch, _body(**first))
    status.settle(_body(**applied), kopf.Patch(), outcome, stats)
    assert len(events) == 1 and events[0]["type"] == "Normal"
    assert stats.last_success is not None and stats.failures == 0
    assert status.settle(_body(**applied), kopf.Patch(), outcome, stats, event="MigrationSucceeded") is None
    assert events[-1]["reason"] == "MigrationSucceeded"


def test_outcomes_of_errors() -> None:
    settled = status.Settle(Outcome("TargetNotFound", "no target"))
    assert status.outcome_of(settled) is settled.outcome
    unexpected = status.outcome_of(ValueError("boom"))
    assert unexpected.reason == "InternalError" and "ValueError: boom" in unexpected.message


@pytest.mark.parametrize(
    ("outcome", "delay", "reason"),
    [
        (Outcome("DeletionBlocked", "others depend on it"), 7.0, "DeletionBlocked"),
        (Outcome("DatabaseUnavailable", "down"), conditions.backoff(2), "Deleting"),
        (Outcome("MigrationFailed", "drop failed"), 60.0, "MigrationFailed"),
    ],
)
def test_cleanup_always_retries_and_keeps_the_finalizer(
    events: list[dict[str, Any]], outcome: Outcome, delay: float, reason: str
) -> None:
    patch, body = kopf.Patch(), _body()
    with pytest.raises(kopf.TemporaryError) as raised:
        status.cleanup_waits(body, patch, outcome, status.Stats(), 2, logging.getLogger("test"), 7.0)
    assert raised.value.delay == delay
    ready = conditions.current(_applied(patch, body)["conditions"])
    assert ready is not None and ready["reason"] == reason


class _Registration:
    version = "1.0.0"
    checksum = "c" * 64
    tables = ("ext_shop_orders",)


class _Result:
    changed = True
    migration_id = "m-1"
    description = ["x" * 2000, "add column"]
    duration_ms = None
    registration = _Registration()


def test_applied_fields_are_declared_and_bounded() -> None:
    fields = status.applied_fields(_Result(), "1.0.0")  # type: ignore[arg-type]
    assert fields["tables"] == ["ext_shop_orders"] and fields["appliedChecksum"] == "c" * 64
    migration = fields["lastMigration"]
    assert migration["changes"] == ["x" * status.MAX_CHANGE, "add column"] and migration["durationMs"] == 0
    assert migration["time"].endswith("Z") and len(migration["time"]) == 20
    ExtensionSchemaStatus.model_validate(fields)
    unchanged = type("Unchanged", (), {"changed": False, "registration": None})()
    assert status.applied_fields(unchanged, "1.0.0") == {}


def test_database_target_status_fields_are_declared() -> None:
    patch = kopf.Patch()
    patch.fns.append(status.status_fn(Outcome("Connected", "ok"), 2, {"backend": "sqlite", "serverVersion": "3"}))
    DatabaseTargetStatus.model_validate(_applied(patch, _body()))


# --- targets --------------------------------------------------------------------------------------


def _resolve(
    spec: Mapping[str, Any], default: str | None = None, index: Mapping[Any, Any] | None = None, raw_sql: bool = False
) -> Any:
    given = settings.Settings(default_database=default, default_allow_raw_sql=raw_sql)
    typed = {key: [targets.TargetEntry.of(key[1], {}, s) for s in specs] for key, specs in (index or {}).items()}
    return asyncio.run(targets.resolve_target(KubeApi(), given, "ns", spec, typed))  # type: ignore[arg-type]


def test_resolve_target_default_database() -> None:
    target = _resolve({}, default="sqlite:///app.db")
    assert (target.key, target.label, target.url) == ("default", "default", "sqlite:///app.db")
    assert "sqlite" not in repr(target)  # the URL may hold a password: never in logs


def test_resolve_target_without_default_or_target_is_not_found() -> None:
    with pytest.raises(status.Settle) as raised:
        _resolve({})
    assert raised.value.outcome.reason == "TargetNotFound" and "--database" in raised.value.outcome.message
    with pytest.raises(status.Settle) as raised:
        _resolve({"targetRef": {"name": "db"}}, default="sqlite:///app.db")
    assert raised.value.outcome.reason == "TargetNotFound" and "ns/db" in raised.value.outcome.message


def test_resolve_target_reads_the_database_target() -> None:
    index = {("ns", "db"): [{"url": "sqlite:///t.db", "lockTimeout": "2s", "statementTimeout": "1m"}]}
    target = _resolve({"targetRef": {"name": "db"}}, index=index)
    assert (target.key, target.label, target.url) == ("ns/db", "db", "sqlite:///t.db")
    assert (target.lock_timeout_ms, target.statement_timeout_ms) == (2_000, 60_000)
    with pytest.raises(status.Settle) as raised:
        _resolve({"targetRef": {"name": "db"}}, index={("ns", "db"): [{}]})
    assert raised.value.outcome.reason == "InvalidTarget"


def test_secret_needs_credentials_first() -> None:
    index = {("ns", "db"): [{"urlSecretRef": {"name": "s"}}]}
    with pytest.raises(status.Settle) as raised:
        _resolve({"targetRef": {"name": "db"}}, index=index)
    assert raised.value.outcome.reason == "TargetNotFound" and "credentials" in raised.value.outcome.message


@pytest.mark.parametrize("text", ["2h", "s", "5 secs", "0s"])
def test_malformed_duration_is_an_error_on_the_target(text: str) -> None:
    """Never the silent default: the target (and every resource going to it) says which field is wrong."""
    with pytest.raises(status.Settle) as raised:
        _resolve({"targetRef": {"name": "db"}}, index={("ns", "db"): [{"url": "sqlite:///t.db", "lockTimeout": text}]})
    outcome = raised.value.outcome
    assert outcome.reason == "InvalidTarget" and "spec.lockTimeout" in outcome.message and "ns/db" in outcome.message


def test_target_entry_keeps_typed_spec_and_labels() -> None:
    entry = targets.TargetEntry.of("db", {"tier": "prod"}, {"url": "sqlite:///t.db", "statementTimeout": "90s"})
    assert entry.spec is not None and entry.spec.statement_timeout == "90s" and entry.labels == {"tier": "prod"}
    bad = targets.TargetEntry.of("db", None, {"url": "sqlite:///t.db", "allowRawSql": "yes"})
    assert bad.spec is None and bad.error is not None and "spec.allowRawSql" in bad.error


def test_engines_are_shared_per_database_and_closed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engines = targets.Engines()
    one = engines.get(targets.Target("default", "default", url))
    assert engines.get(targets.Target("k", "other label", url)) is one
    assert engines.get(targets.Target("k", "k", url, lock_timeout_ms=1)) is not one and len(engines) == 2
    engines.close()
    assert len(engines) == 0


# --- re-check loop --------------------------------------------------------------------------------


class _Pokes:
    def __init__(self, answer: bool | None, waitlist: recheck.Waitlist | None = None) -> None:
        self.answer, self.waitlist, self.calls = answer, waitlist, list[tuple[str, str]]()

    async def __call__(self, namespace: str, name: str) -> bool | None:
        self.calls.append((namespace, name))
        if self.waitlist is not None:  # the resource reconciles while the poke is on its way
            self.waitlist.track({"uid": "ume"}, None)
        return self.answer


def _waiting(fingerprint: str, poked: float) -> tuple[recheck.Waitlist, recheck.Waiting, dict[str, Any]]:
    index = {"default": [_entry("ns/a", "1", "ua")]}
    waitlist = recheck.Waitlist()
    entry = recheck.Waiting("ns", "me", "default", ("2", "ns/me"), fingerprint, poked)
    waitlist.track({"uid": "ume"}, entry)
    return waitlist, entry, index


def _fingerprint(index: dict[str, Any]) -> str:
    return claims.peers_of(index["default"], "ume", ("2", "ns/me"))[1]


def test_recheck_leaves_a_waiting_resource_alone_while_nothing_changed() -> None:
    waitlist, entry, index = _waiting("", 0.0)
    entry.fingerprint, entry.poked = _fingerprint(index), float("inf")
    poke = _Pokes(True)
    asyncio.run(recheck.recheck(index, waitlist, poke, fallback=60))  # type: ignore[arg-type]
    assert poke.calls == []


def test_recheck_pokes_when_claims_changed_and_remembers_them() -> None:
    waitlist, entry, index = _waiting("stale", float("inf"))
    poke = _Pokes(True)
    asyncio.run(recheck.recheck(index, waitlist, poke, fallback=60))  # type: ignore[arg-type]
    assert poke.calls == [("ns", "me")] and entry.fingerprint == _fingerprint(index)


def test_recheck_pokes_after_the_fallback_interval() -> None:
    waitlist, entry, index = _waiting("", 0.0)
    entry.fingerprint = _fingerprint(index)
    poke = _Pokes(True)
    asyncio.run(recheck.recheck(index, waitlist, poke, fallback=0))  # type: ignore[arg-type]
    assert poke.calls == [("ns", "me")] and entry.poked > 0.0


def test_recheck_forgets_gone_resources_and_retries_failed_pokes() -> None:
    waitlist, entry, index = _waiting("stale", 0.0)
    asyncio.run(recheck.recheck(index, waitlist, _Pokes(False), fallback=60))  # type: ignore[arg-type]
    assert waitlist["ume"] is entry and entry.fingerprint == "stale"  # tried again next round
    asyncio.run(recheck.recheck(index, waitlist, _Pokes(None), fallback=60))  # type: ignore[arg-type]
    assert "ume" not in waitlist


def test_recheck_does_not_touch_a_resource_that_reconciled_meanwhile() -> None:
    waitlist, entry, index = _waiting("stale", 0.0)
    asyncio.run(recheck.recheck(index, waitlist, _Pokes(None, waitlist), fallback=60))  # type: ignore[arg-type]
    assert "ume" not in waitlist and entry.fingerprint == "stale"


def test_due() -> None:
    entry = recheck.Waiting("ns", "me", "default", ("", ""), "f", 100.0)
    assert not recheck.due(entry, "f", 130.0, 60.0)
    assert recheck.due(entry, "g", 130.0, 60.0) and recheck.due(entry, "f", 161.0, 60.0)


# --- settings and memo ----------------------------------------------------------------------------


def test_settings_from_environment_and_flags() -> None:
    env = {"EXTSCHEMA_DATABASE_URL": "sqlite:///env.db", "EXTSCHEMA_RECHECK_SECONDS": "0.5"}
    from_env = settings.Settings.from_env(env)
    assert (from_env.default_database, from_env.recheck_interval) == ("sqlite:///env.db", 0.5)
    flagged = settings.Settings.from_env(env, default_database="sqlite:///flag.db", api_connections=40)
    assert (flagged.default_database, flagged.api_connections) == ("sqlite:///flag.db", 40)
    assert settings.Settings.from_env({}).default_database is None
    with pytest.raises(TypeError, match="recheck_intervall"):
        settings.Settings.from_env({}, recheck_intervall=1)


def test_operator_state_lives_in_the_memo() -> None:
    given = settings.Settings(default_database="sqlite:///x.db")
    memo = runtime.memo_for(given)
    state = runtime.runtime(memo)
    assert state.settings is given and runtime.runtime(memo) is state
    copied = kopf.Memo(memo)  # kopf hands each resource a shallow copy: the state is shared
    assert runtime.runtime(copied) is state
    fresh = kopf.Memo()
    assert runtime.runtime(fresh) is runtime.runtime(fresh) is not state


# --- DatabaseTarget handlers, called as kopf calls them ----------------------------------------------


def _target_call(handler: Any, spec: Mapping[str, Any], memo: kopf.Memo) -> tuple[kopf.Patch, Any]:
    patch = kopf.Patch()
    body = kopf.Body({"metadata": {"name": "db", "namespace": "ns", "generation": 1}, "spec": dict(spec)})
    kwargs = {"spec": spec, "namespace": "ns", "name": "db", "patch": patch, "memo": memo, "retry": 1}
    try:
        return patch, asyncio.run(handler(body=body, logger=logging.getLogger("test"), **kwargs))
    except kopf.TemporaryError as error:
        return patch, error


def test_connect_reports_backend_and_version(events: list[dict[str, Any]], tmp_path: Path) -> None:
    from extschema.controller import handlers

    memo = runtime.memo_for(settings.Settings())
    patch, result = _target_call(handlers.connect_target, {"url": f"sqlite:///{tmp_path / 'app.db'}"}, memo)
    written = _applied(patch, {})
    assert result is None and written["backend"] == "sqlite" and written["serverVersion"]
    DatabaseTargetStatus.model_validate(written)
    assert len(runtime.runtime(memo).engines) == 1
    runtime.runtime(memo).engines.close()


def test_connect_retries_but_the_ping_timer_does_not(events: list[dict[str, Any]]) -> None:
    from extschema.controller import handlers

    memo = runtime.memo_for(settings.Settings())
    spec = {"urlSecretRef": {"name": "s"}}  # no credentials yet: TargetNotFound, a retried reason
    _, retried = _target_call(handlers.connect_target, spec, memo)
    assert isinstance(retried, kopf.TemporaryError) and retried.delay == conditions.backoff(1)
    patch, result = _target_call(handlers.ping_target, spec, memo)
    assert result is None
    ready = conditions.current(_applied(patch, {})["conditions"])
    assert ready is not None and ready["reason"] == "TargetNotFound"


# --- approvals ------------------------------------------------------------------------------------


def _pending(plugin_id: str = "shop", hash: str = "a1b2c3d4e5f60718", op_class: str = "destructive") -> Any:
    """A waiting plan, as reconcile's gate reports it."""
    return wire.PlanView(
        plugin_id=plugin_id,
        version="2.0.0",
        hash=hash,
        op_class=op_class,  # type: ignore[arg-type]
        needs_approval=True,
        destructive=op_class == "destructive",
        summary="drop column item.note (120 values)",
        ops=[],
    )


def _approval_required(*pending: Any) -> reconcile.ApprovalRequired:
    return reconcile.ApprovalRequired([Problem("ES307", "spec", "plan needs approval")], pending)


def test_pending_plan_of_an_approval_error_only() -> None:
    mine, other = _pending("shop"), _pending("other", "ffff000011112222")
    assert status.pending_of(_approval_required(other, mine), "shop") is mine
    assert status.pending_of(_approval_required(other), "shop") is other
    assert status.pending_of(ProblemError([Problem("ES301", "spec", "refused")], Kind.REFUSED), "shop") is None
    assert status.pending_of(ValueError("x"), "shop") is None


def test_approval_message_says_an_approval_of_another_plan_is_ignored() -> None:
    pending = _pending()
    waiting = status.approval_outcome(pending)
    assert waiting.reason == "ApprovalRequired" and waiting.phase == "reconciling"
    assert "a1b2c3d4e5f60718" in waiting.message and "ignored" not in waiting.message
    assert "drop column item.note (120 values)" in waiting.message
    stale = status.approval_outcome(pending, {"0000111122223333"})
    assert stale.message.startswith("approved hash 0000111122223333 is ignored here")
    assert "the current plan is a1b2c3d4e5f60718" in stale.message
    several = status.approval_outcome(pending, {"ffff111122223333", "0000111122223333"})
    assert several.message.startswith("approved hashes 0000111122223333, ffff111122223333 are ignored here")
    # Approved among others (a fleet's other bases): nothing is said to be ignored.
    assert "ignored" not in status.approval_outcome(pending, {pending.hash}).message
    assert "ignored" not in status.approval_outcome(pending, {pending.hash, "0000111122223333"}).message


def test_the_hashes_a_raw_spec_approves() -> None:
    spec = {"approvedPlanHash": "aa", "approvedPlanHashes": ["bb", "aa", ""]}
    assert status.approved_hashes_of(spec) == {"aa", "bb"}
    assert status.approved_hashes_of({}) == frozenset()


def test_pending_plan_status_is_declared_and_bounded() -> None:
    finding = LintFinding("r" * 300, "warning", "m" * 5000, 1)
    fields = status.pending_fields(_pending(op_class="rewriting"), [finding] * 100)
    plan = fields["pendingPlan"]
    assert (plan["hash"], plan["class"], plan["destructive"]) == ("a1b2c3d4e5f60718", "rewriting", False)
    assert len(plan["lint"]) == limits.MAX_STATUS_LINT_FINDINGS
    assert len(plan["lint"][0]["message"]) == status.MAX_CHANGE
    ExtensionSchemaStatus.model_validate(fields)
    assert "lint" not in status.pending_fields(_pending())["pendingPlan"]


def test_pending_plan_is_present_only_while_approval_is_required(events: list[dict[str, Any]]) -> None:
    stats, patch, body = status.Stats(), kopf.Patch(), _body()
    pending = _pending()
    waiting = status.approval_outcome(pending)
    assert status.settle(body, patch, waiting, stats, fields=status.pending_fields(pending)) is None  # no retry
    written = _applied(patch, body)
    assert written["pendingPlan"]["hash"] == pending.hash
    assert [c["type"] for c in written["conditions"]] == ["Ready", "Reconciling"]  # never Stalled
    status.settle(_body(**written), kopf.Patch(), waiting, stats, fields=status.pending_fields(pending))
    assert [e["reason"] for e in events] == ["ApprovalRequired"]  # one event while it waits
    for outcome in (Outcome("Applied", "done"), Outcome("InvalidSpec", "bad"), Outcome("Suspended", "paused")):
        patch = kopf.Patch()
        status.settle(_body(**written), patch, outcome, stats)
        assert "pendingPlan" not in _applied(patch, _body(**written))


def _schema_call(memo: kopf.Memo, spec: Mapping[str, Any], generation: int = 1) -> tuple[kopf.Patch, Any]:
    from extschema.controller import handlers

    body = _body()
    raw = {**dict(body), "spec": dict(spec), "metadata": {**body["metadata"], "generation": generation}}
    patch = kopf.Patch()
    kwargs = {"claims": {}, "targets": {}, "retry": 0}
    result = asyncio.run(
        handlers.reconcile_schema(
            body=kopf.Body(raw),
            spec=raw["spec"],
            meta=raw["metadata"],
            namespace="ns",
            patch=patch,
            logger=logging.getLogger("test"),
            memo=memo,
            **kwargs,
        )
    )
    return patch, result


def test_reconcile_waits_for_approval_then_applies_and_is_watched_for_drift(
    events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from extschema.controller import database

    memo = runtime.memo_for(settings.Settings(default_database=f"sqlite:///{tmp_path / 'app.db'}"))
    run = runtime.runtime(memo)
    pending = _pending()
    seen: list[str | None] = []

    def gated(engine: Any, loaded: reconcile.Loaded, peers: Any, started: Any, *_metrics: Any) -> Any:
        seen.append(loaded.spec.approved_plan_hash)
        if loaded.spec.approved_plan_hash != pending.hash:
            raise _approval_required(pending)
        return _Result()

    monkeypatch.setattr(database, "apply", gated)
    findings: list[Any] = [LintFinding("ban-drop-column", "warning", "dropping a column may break clients", 0)]

    def lint(engine: Any, waiting: reconcile.ApprovalRequired, plugin_id: str) -> list[LintFinding]:
        if not findings:
            raise OSError("squawk vanished")
        return [findings.pop()]

    monkeypatch.setattr(database, "lint", lint)
    spec = {"pluginId": "shop", "version": "1.0.0"}
    patch, _ = _schema_call(memo, spec)
    assert _applied(patch, _body())["pendingPlan"]["lint"][0]["rule"] == "ban-drop-column"
    spec["approvedPlanHash"] = "0000111122223333"
    patch, result = _schema_call(memo, spec, generation=2)  # the lint fails now: the plan still waits, shown without it
    assert result is None  # not retried on a timer: the spec's next change runs it
    written = _applied(patch, _body())
    assert "lint" not in written["pendingPlan"]
    ready = conditions.current(written["conditions"])
    assert ready is not None and ready["reason"] == "ApprovalRequired" and "is ignored" in ready["message"]
    assert written["pendingPlan"]["hash"] == pending.hash
    assert "u1" not in run.drift and "u1" not in run.waiting
    patch, _ = _schema_call(memo, {**spec, "approvedPlanHash": pending.hash}, generation=3)
    applied = _applied(patch, _body(**written))
    assert "pendingPlan" not in applied and conditions.current(applied["conditions"])["reason"] == "Applied"  # type: ignore[index]
    assert seen == [None, "0000111122223333", pending.hash]  # the spec's approval reaches reconcile
    entry = run.drift["u1"]
    assert (entry.plugin_id, entry.generation, entry.repair) == ("shop", 3, False)
    assert entry.due <= time.monotonic()  # the schema changed: checked at the next tick
    run.engines.close()


# --- drift loop -----------------------------------------------------------------------------------

TARGET = targets.Target("default", "default", "sqlite:///x.db")


def _watched(due: float = 0.0, generation: int = 4, **meta: Any) -> drift.Watched:
    return drift.Watched("ns", "shop", "u1", generation, "shop", TARGET, False, due, **meta)


class _Drift:
    """A fake Check and Show: verdicts in turn, and the answers of show."""

    def __init__(self, *verdicts: conditions.Sync | Exception, shown: bool | None = True) -> None:
        self.verdicts, self.answer = list(verdicts), shown
        self.checked: list[str] = []
        self.shown: list[conditions.Sync] = []

    async def check(self, entry: drift.Watched) -> conditions.Sync:
        self.checked.append(entry.name)
        verdict = self.verdicts.pop(0)
        if isinstance(verdict, Exception):
            raise verdict
        return verdict

    async def show(self, entry: drift.Watched, sync: conditions.Sync) -> bool | None:
        self.shown.append(sync)
        return self.answer


def _round(watch: drift.Watchlist, fake: _Drift, interval: float = 300.0) -> None:
    asyncio.run(drift.check_round(watch, fake.check, fake.show, interval))


def test_drift_round_checks_due_resources_and_shows_only_new_verdicts() -> None:
    watch = drift.Watchlist()
    watch.track({"uid": "u1"}, _watched())
    watch.track({"uid": "u2"}, dataclasses.replace(_watched(due=float("inf")), uid="u2", name="later"))
    drifted = conditions.sync_of(["extra column item.note: added by hand"])
    fake = _Drift(drifted)
    _round(watch, fake)
    assert fake.checked == ["shop"] and fake.shown == [drifted] and watch["u1"].shown == drifted
    assert watch["u1"].due > time.monotonic() + 200  # next check one interval later
    watch["u1"].due = 0.0
    again = _Drift(drifted)
    _round(watch, again)
    assert again.checked == ["shop"] and again.shown == []  # same verdict: no API call at all
    repaired = conditions.sync_of([], ["re-created: index ix"])
    watch["u1"].due, watch["u1"].shown = 0.0, repaired
    twice = _Drift(repaired)
    _round(watch, twice)
    assert twice.shown == [repaired]  # every repair is reported, even an identical one


def test_drift_round_survives_failures_and_forgets_gone_resources() -> None:
    watch = drift.Watchlist()
    watch.track({"uid": "u1"}, _watched())
    failed = _Drift(RuntimeError("database away"))
    _round(watch, failed)
    # A check that cannot run shows Unknown with the error, never the last verdict; tried again next interval.
    (unknown,) = failed.shown
    assert (unknown.reason, unknown.status) == ("CheckFailed", None) and "database away" in unknown.message
    assert watch["u1"].shown == unknown and watch["u1"].due > time.monotonic()
    watch["u1"].due = 0.0
    _round(watch, _Drift(conditions.sync_of([]), shown=False))
    assert watch["u1"].shown == unknown and watch["u1"].due <= time.monotonic()  # not written: next tick
    _round(watch, _Drift(conditions.sync_of([]), shown=None))
    assert "u1" not in watch


def test_digest_diff_base_reads_an_older_operators_whole_essence_as_unchanged() -> None:
    """Upgrade: a resource last handled by an operator that stored the whole essence in an annotation is not
    taken for a changed one; the next store writes the digest and removes the whole essence."""
    prefix = "kopf.extschema.io"
    old = kopf.AnnotationsDiffBaseStorage(prefix=prefix, key="last-handled-configuration")
    raw: dict[str, Any] = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "shop", "namespace": "ns", "labels": {"team": "a"}, "annotations": {"note": "x"}},
        "spec": {"pluginId": "shop", "version": "1.0.0", "tables": [{"name": "item"}]},
        "status": {"appliedVersion": "1.0.0"},
    }
    written = kopf.Patch()
    old.store(body=kopf.Body(raw), patch=written, essence=old.build(body=kopf.Body(raw)))
    raw["metadata"]["annotations"].update(written["metadata"]["annotations"])
    raw["metadata"]["annotations"][f"{prefix}/reconcile"] = '{"started": "2026-01-01T00:00:00"}'  # progress
    new = DigestDiffBaseStorage(prefix)
    body = kopf.Body(raw)
    assert new.fetch(body=body) == new.build(body=body)  # unchanged: no update handlers run
    raw["spec"]["version"] = "1.1.0"
    assert new.fetch(body=kopf.Body(raw)) != new.build(body=kopf.Body(raw))  # a real change still is one
    patch = kopf.Patch()
    new.store(body=kopf.Body(raw), patch=patch, essence=new.build(body=kopf.Body(raw)))
    annotations = patch["metadata"]["annotations"]
    assert annotations[f"{prefix}/last-handled-configuration"] is None and len(annotations[new.key]) == 64
    raw["metadata"]["annotations"].update(annotations)
    assert new.fetch(body=kopf.Body(raw)) == new.build(body=kopf.Body(raw))


def test_a_status_behind_its_spec_is_not_handled_so_a_standby_taking_over_reconciles_it() -> None:
    """kopf stores the diff base (body) and the status (subresource) in two requests: an operator killed between
    them left the digest of generation 2 with the status of generation 1, and a standby that took over never
    reconciled it (tests/chaos: kill -9 active replica). Such a resource counts as changed until its status
    catches up; a DatabaseTarget (no observedGeneration) never does."""
    store = DigestDiffBaseStorage("kopf.extschema.io")
    raw: dict[str, Any] = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "shop", "namespace": "ns", "generation": 2, "annotations": {}},
        "spec": {"pluginId": "shop", "version": "1.1.0"},
        "status": {"observedGeneration": 2},
    }
    patch = kopf.Patch()
    store.store(body=kopf.Body(raw), patch=patch, essence=store.build(body=kopf.Body(raw)))
    raw["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    assert store.fetch(body=kopf.Body(raw)) == store.build(body=kopf.Body(raw))  # handled, status current
    raw["status"]["observedGeneration"] = 1  # the status patch never came
    assert store.fetch(body=kopf.Body(raw)) != store.build(body=kopf.Body(raw))
    del raw["status"]
    assert store.fetch(body=kopf.Body(raw)) != store.build(body=kopf.Body(raw))
    target = {**raw, "kind": "DatabaseTarget", "spec": {"url": "sqlite://"}}
    patch = kopf.Patch()
    store.store(body=kopf.Body(target), patch=patch, essence=store.build(body=kopf.Body(target)))
    target["metadata"] = {**raw["metadata"], "annotations": dict(patch["metadata"]["annotations"])}
    assert store.fetch(body=kopf.Body(target)) == store.build(body=kopf.Body(target))


def test_drift_round_leaves_a_resource_that_reconciled_meanwhile() -> None:
    watch = drift.Watchlist()
    watch.track({"uid": "u1"}, _watched())

    class Reconciled(_Drift):
        async def check(self, entry: drift.Watched) -> conditions.Sync:
            watch.track({"uid": "u1"}, None)
            return conditions.sync_of([])

    fake = Reconciled()
    _round(watch, fake)
    assert fake.shown == [] and "u1" not in watch


def test_watchlist_keeps_the_schedule_and_verdict_of_an_unchanged_resource() -> None:
    watch = drift.Watchlist()
    shown = conditions.sync_of([])
    watch.track({"uid": "u1"}, _watched(due=10.0, shown=shown))
    watch.track({"uid": "u1"}, _watched(due=500.0))  # re-run of the same generation (a resume, a poke)
    assert (watch["u1"].due, watch["u1"].shown) == (10.0, shown)
    watch.track({"uid": "u1"}, _watched(due=500.0, generation=5))  # a new generation: InSync unknown
    assert (watch["u1"].due, watch["u1"].shown) == (10.0, None)
    meta = {"uid": "u9", "namespace": "ns", "name": "x", "generation": 2}
    entry = drift.watched(meta, {"driftPolicy": "Repair"}, "x", TARGET, 30.0, soon=False)
    assert entry.repair and entry.due > time.monotonic() + 20
    assert drift.watched(meta, {}, "x", TARGET, 30.0, soon=True).due <= time.monotonic()


def _drift_body(generation: int = 4, ready: bool = True, **extra: Any) -> dict[str, Any]:
    conds = conditions.compute([], Outcome("Applied" if ready else "Progressing", "m"), generation, status.now())
    return {
        "metadata": {"name": "shop", "namespace": "ns", "generation": generation, "resourceVersion": "7"},
        "status": {"conditions": conds, **extra},
    }


def test_status_update_only_for_the_ready_generation_and_a_new_verdict() -> None:
    entry, drifted = _watched(), conditions.sync_of(["extra column item.note: added by hand"])
    update = drift.status_update(_drift_body(), entry, drifted)
    assert update is not None and [c["type"] for c in update["conditions"]] == ["Ready", "InSync"]
    ExtensionSchemaStatus.model_validate(update)
    assert drift.status_update(_drift_body(**update), entry, drifted) is None
    for stale in (_drift_body(generation=5), _drift_body(ready=False)):
        with pytest.raises(drift.Stale):
            drift.status_update(stale, entry, drifted)


class _FakeApi:
    def __init__(self, body: dict[str, Any] | None, patched: bool | None = True) -> None:
        self.body, self.patched = body, patched
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.events: list[tuple[str, str, str]] = []

    async def get_schema(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body

    async def patch_status(self, namespace: str, name: str, version: str, update: Mapping[str, Any]) -> bool | None:
        self.patches.append((version, update))
        return self.patched

    async def post_event(self, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def _show(api: _FakeApi, sync: conditions.Sync, entry: drift.Watched | None = None) -> bool | None:
    checker = drift.DriftCheck(api, targets.Engines())  # type: ignore[arg-type]
    return asyncio.run(checker.show(entry or _watched(), sync))


def test_drift_show_writes_with_the_resource_version_and_posts_events_on_change() -> None:
    drifted = conditions.sync_of(["extra column item.note: added by hand"])
    api = _FakeApi(_drift_body())
    assert _show(api, drifted) is True
    assert api.patches[0][0] == "7" and api.events == [("Warning", "DriftDetected", drifted.message)]
    shown = _FakeApi(_drift_body(**api.patches[0][1]))
    assert _show(shown, drifted) is True and shown.patches == [] and shown.events == []  # already shown
    repaired = conditions.sync_of([], ["re-created: create index ix"])
    assert _show(api, repaired) is True and api.events[-1][:2] == ("Normal", "DriftRepaired")
    assert _show(_FakeApi(None), drifted) is None  # gone
    assert _show(_FakeApi(_drift_body(generation=9)), drifted) is False  # its reconcile is pending
    conflict = _FakeApi(_drift_body(), patched=False)
    assert _show(conflict, drifted) is False and conflict.events == []


def test_drift_check_reports_and_repairs_through_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from extschema.controller import database

    calls: list[tuple[str, bool]] = []

    def fake(engine: Any, plugin_id: str, repair: bool) -> tuple[list[str], list[str], list[str]]:
        calls.append((plugin_id, repair))
        return ([], ["re-created: index ix"], []) if repair else (["missing index ix"], [], [])

    monkeypatch.setattr(database, "drift", fake)
    engines = targets.Engines()
    checker = drift.DriftCheck(KubeApi(), engines)
    assert asyncio.run(checker.check(_watched())).reason == "Drifted"
    assert asyncio.run(checker.check(dataclasses.replace(_watched(), repair=True))).reason == "Repaired"
    assert calls == [("shop", False), ("shop", True)]
    engines.close()


@pytest.mark.parametrize(
    ("text", "expected"), [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25), ("2", 2.0), ("1.5s", 1.5)]
)
def test_durations_of_settings(text: str, expected: float) -> None:
    assert settings.seconds(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "-1s", "5 minutes", "s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="positive duration"):
        settings.seconds(text)


def test_drift_interval_setting() -> None:
    assert settings.Settings.from_env({}).drift_interval == 300.0
    tuned = settings.Settings.from_env({"EXTSCHEMA_DRIFT_INTERVAL": "30s", "EXTSCHEMA_RECHECK_SECONDS": "2"})
    assert (tuned.drift_interval, tuned.drift_tick) == (30.0, 2.0)
    assert settings.Settings.from_env({}, drift_interval=0.5).drift_tick == 0.5


def test_every_keeps_looping_after_a_failed_round(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []

    async def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")

    async def main() -> None:
        task = asyncio.create_task(recheck.every(0.001, round_, "test loop"))
        while len(rounds) < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(rounds) >= 3 and "test loop failed" in caplog.text


def test_no_timer_or_daemon_on_extension_schemas() -> None:
    """Drift and re-checks run in operator-wide loops: a per-resource timer would make kopf keep every
    ExtensionSchema's body in memory (the 1,000-resource memory goal)."""
    from extschema.controller import handlers

    assert handlers.reconcile_schema  # the handlers are registered
    spawning = kopf.get_default_registry()._spawning.get_all_handlers()
    assert {h.id for h in spawning} == {"ping"}  # the DatabaseTarget connection check only
    assert all(h.selector is not None and h.selector.any_name == settings.TARGETS for h in spawning)


@pytest.fixture
def started_operator(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`extschema run` without kopf running: the keyword arguments of each kopf.run call."""
    for name in ("kubernetes", "kubernetes_asyncio", "pykube"):  # `run` hides them from kopf; restored after
        if name in sys.modules:
            monkeypatch.setitem(sys.modules, name, sys.modules[name])
        else:
            monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
            monkeypatch.delitem(sys.modules, name)
    started: list[Any] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.append(kwargs))
    monkeypatch.setattr(kopf, "configure", lambda **kwargs: None)  # leaves the test session's logging alone
    monkeypatch.delenv("EXTSCHEMA_ALLOW_RAW_SQL", raising=False)
    return started


def test_run_refuses_a_bad_drift_interval(started_operator: list[Any]) -> None:
    from click.testing import CliRunner

    from extschema import cli

    refused = CliRunner().invoke(cli.main, ["run", "-n", "ns", "--drift-interval", "soon"])
    assert refused.exit_code == 2 and "--drift-interval" in refused.output and started_operator == []
    accepted = CliRunner().invoke(cli.main, ["run", "-n", "ns", "--drift-interval", "45s"])
    assert accepted.exit_code == 0, accepted.output
    assert runtime.runtime(started_operator[0]["memo"]).settings.drift_interval == 45.0


def test_run_allow_raw_sql_lets_the_default_database_run_raw_sql_steps(started_operator: list[Any]) -> None:
    from click.testing import CliRunner

    from extschema import cli

    for args, allowed in ((["--allow-raw-sql"], True), ([], False)):
        outcome = CliRunner().invoke(cli.main, ["run", "-n", "ns", "--database", "sqlite:///app.db", *args])
        assert outcome.exit_code == 0, outcome.output
        given = runtime.runtime(started_operator[-1]["memo"]).settings
        assert given.default_allow_raw_sql is allowed
        target = asyncio.run(targets.resolve_target(KubeApi(), given, "ns", {}, {}))  # type: ignore[arg-type]
        assert (target.key, target.allow_raw_sql) == ("default", allowed)
        engines = targets.Engines()
        assert engines.get(target).allow_raw_sql is allowed
        engines.close()
    # A DatabaseTarget decides for itself (spec.allowRawSql), whatever the default database may do.
    index = {("ns", "db"): [{"url": "sqlite:///t.db"}]}
    assert _resolve({"targetRef": {"name": "db"}}, index=index, raw_sql=True).allow_raw_sql is False


def test_the_operator_retries_api_requests_through_a_control_plane_restart_of_minutes() -> None:
    """kopf gives a failed request up after 54 s, then logs an unexpected error with a traceback (found by the chaos
    suite stopping kube-apiserver and etcd for 75 s); the operator keeps kopf's first quick retries and then
    retries every 30 s for about 5 minutes."""
    from extschema.controller import handlers

    defaults = kopf.OperatorSettings().networking.error_backoffs
    configured = kopf.OperatorSettings()
    handlers.wait_out_api_outages(configured)
    backoffs = list(configured.networking.error_backoffs)
    assert sum(defaults) < 75 <= 300 <= sum(backoffs)
    assert backoffs[: len(list(defaults))] == list(defaults) and max(backoffs) <= 30


def test_a_migration_goes_ahead_only_for_the_generation_the_resource_is_at() -> None:
    """database.confirming, the check a migration runs under its lock (ES422), and fails closed (ES423)."""
    from extschema.controller import database

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def reading(answer: Any) -> Any:
        async def read() -> Any:
            if isinstance(answer, Exception):
                raise answer
            return answer

        return read

    try:
        database.confirming(loop, reading({"metadata": {"generation": 2}}), 2)()  # current: goes ahead
        refusals = [
            ({"metadata": {"generation": 3}}, "ES422"),
            (None, "ES422"),
            ({"metadata": {"generation": 2, "deletionTimestamp": "2026-12-07T00:00:00Z"}}, "ES422"),
            (OSError("connection refused"), "ES423"),
        ]
        for answer, code in refusals:
            with pytest.raises(ProblemError) as raised:
                database.confirming(loop, reading(answer), 2)()
            assert [p.code for p in raised.value.problems] == [code] and raised.value.kind == Kind.RETRYABLE
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
