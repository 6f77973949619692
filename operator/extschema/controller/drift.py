"""The operator-wide drift check: Ready resources compared with their database every ``drift_interval``.

A resource that becomes Ready (reason Applied) is put on the :class:`Watchlist`; any other outcome,
suspension or deletion takes it off. One loop (:func:`extschema.controller.recheck.every`) checks the
resources that are due, one after the other in worker threads, and writes condition ``InSync`` only
when its verdict changed, so an unchanged database costs no API call. ``spec.driftPolicy: Repair``
re-creates what is missing first. Not a per-resource ``kopf.timer``: kopf would keep the last-seen
body of every ExtensionSchema in memory for it (the 1,000-resource memory goal).

The loop runs outside kopf's handlers, so it reads the resource and writes its status itself, with
the resourceVersion it read (a concurrent handler write makes it read again at the next tick).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from extschema import conditions
from extschema.conditions import Sync
from extschema.controller import database
from extschema.controller.kubeapi import KubeApi
from extschema.controller.logging import for_resource
from extschema.controller.recheck import Tracked
from extschema.controller.status import now
from extschema.controller.targets import Engines, Target

log = logging.getLogger("extschema.operator")

#: Events the drift check posts, by the InSync reason it shows (Drifted when the differences change).
EVENTS = {
    "Drifted": ("Warning", "DriftDetected"),
    "Repaired": ("Normal", "DriftRepaired"),
    "CheckFailed": ("Warning", "DriftCheckFailed"),
}


@dataclasses.dataclass
class Watched:
    """A Ready resource, as the drift loop sees it (refreshed by each reconcile that ends Applied)."""

    namespace: str
    name: str
    uid: str
    generation: int
    plugin_id: str
    target: Target
    repair: bool  # spec.driftPolicy == Repair
    due: float  # time.monotonic() of its next check
    shown: Sync | None = None  # what its InSync condition shows, as far as this operator knows


class Watchlist(Tracked[Watched]):
    """Ready resources, for the drift loop."""

    def track(self, meta: Mapping[str, Any], entry: Watched | None) -> None:
        old = self.get(str(meta.get("uid")))
        if entry is not None and old is not None:
            entry.due = min(entry.due, old.due)  # a re-run of an unchanged resource does not postpone its check
            if old.generation == entry.generation:
                entry.shown = old.shown
        super().track(meta, entry)


def watched(
    meta: Mapping[str, Any], spec: Mapping[str, Any], plugin_id: str, target: Target, interval: float, *, soon: bool
) -> Watched:
    """The entry of a resource that just ended Applied; *soon*: check at the next tick (its schema changed)."""
    return Watched(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        generation=int(meta.get("generation") or 0),
        plugin_id=plugin_id,
        target=target,
        repair=spec.get("driftPolicy") == "Repair",
        due=time.monotonic() + (0.0 if soon else interval),
    )


#: Compares one resource's database objects with its applied spec (repairing first if it should).
Check = Callable[[Watched], Awaitable[Sync]]
#: Shows a verdict in the resource's status: True when shown, None when the resource is gone, False to retry.
Show = Callable[[Watched, Sync], Awaitable[bool | None]]


async def check_round(watch: Watchlist, check: Check, show: Show, interval: float) -> None:
    """One round: check the resources that are due and show what changed; forget those that are gone."""
    for uid, entry in list(watch.items()):
        if entry.due > time.monotonic():
            continue
        entry.due = time.monotonic() + interval
        try:
            sync = await check(entry)
        except Exception as error:  # the database may be away: the next interval tries again
            for_resource(log, entry.namespace, entry.name).warning(
                "drift check of %s/%s failed: %s: %s", entry.namespace, entry.name, type(error).__name__, error
            )
            sync = conditions.sync_failed(error)  # the last verdict no longer holds
        if watch.get(uid) is not entry:
            continue  # reconciled meanwhile: its new entry is checked on its own schedule
        if sync == entry.shown and sync.reason != "Repaired":
            continue  # nothing new to show (a repair is always reported)
        try:
            done = await show(entry, sync)
        except Exception as error:
            for_resource(log, entry.namespace, entry.name).warning(
                "InSync of %s/%s not written: %s: %s", entry.namespace, entry.name, type(error).__name__, error
            )
            done = False
        if watch.get(uid) is not entry:
            continue
        if done is None:
            del watch[uid]
        elif done:
            entry.shown = sync
        else:
            entry.due = time.monotonic()  # changed meanwhile, or not yet Ready in the API: next tick


def status_update(body: Mapping[str, Any], entry: Watched, sync: Sync) -> dict[str, Any] | None:
    """The status to write for *sync*, or None when the resource shows it already.

    Raises :class:`Stale` while the resource is not the Ready generation the entry describes (its
    reconcile is pending; it re-tracks or untracks the resource).
    """
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ready = conditions.current(status.get("conditions"))
    if int(meta.get("generation") or 0) != entry.generation or not ready or ready.get("status") != "True":
        raise Stale(f"{entry.namespace}/{entry.name} is not Ready at generation {entry.generation}")
    if not conditions.sync_changed(status.get("conditions"), sync):
        return None
    return {"conditions": conditions.with_sync(status.get("conditions"), sync, entry.generation, now())}


class Stale(Exception):
    """The resource moved on since the entry was made; try again at the next tick."""


@dataclasses.dataclass
class DriftCheck:
    """The drift loop's :data:`Check` and :data:`Show` against the real database and API server."""

    api: KubeApi
    engines: Engines

    async def check(self, entry: Watched) -> Sync:
        engine = await asyncio.to_thread(self.engines.get, entry.target)
        differences, repaired, refused = await asyncio.to_thread(database.drift, engine, entry.plugin_id, entry.repair)
        return conditions.sync_of(differences, repaired, refused)

    async def show(self, entry: Watched, sync: Sync) -> bool | None:
        body = await self.api.get_schema(entry.namespace, entry.name)
        if body is None:
            return None
        try:
            update = status_update(body, entry, sync)
        except Stale:
            return False
        if update is not None:
            resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "")
            written = await self.api.patch_status(entry.namespace, entry.name, resource_version, update)
            if not written:
                return written
        if sync.reason in EVENTS and (update is not None or sync.reason == "Repaired"):
            await self._event(entry, sync)
        return True

    async def _event(self, entry: Watched, sync: Sync) -> None:
        type_, reason = EVENTS[sync.reason]
        involved = {"namespace": entry.namespace, "name": entry.name, "uid": entry.uid}
        try:
            await self.api.post_event(involved, type_, reason, sync.message)
        except Exception as error:  # an event is a courtesy: the condition is written
            for_resource(log, entry.namespace, entry.name).warning(
                "event %s for %s/%s not posted: %s", reason, entry.namespace, entry.name, error
            )
