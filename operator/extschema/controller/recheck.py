"""The operator-wide loop that re-runs resources waiting for others (Conflict, DependencyNotReady).

A waiting resource is poked (an annotation touched, so its update handler runs) when the claims of
its target changed since it last ran, or after the fallback interval for changes made outside this
cluster. Losers of a conflict thus proceed by themselves once the winner is deleted, and dependents
once their dependencies are Ready. (Not a per-resource ``kopf.timer``: any timer or daemon on a
resource kind makes kopf keep the full last-seen body of every object of that kind in memory.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import kopf

from extschema.controller.claims import ClaimEntry, peers_of
from extschema.controller.settings import Settings

log = logging.getLogger("extschema.operator")

#: Pokes one resource: True when done, None when it is gone, False to retry at the next round.
Poke = Callable[[str, str], Awaitable[bool | None]]


@dataclasses.dataclass
class Waiting:
    """A resource waiting for others (Conflict, DependencyNotReady), as the re-check loop sees it."""

    namespace: str
    name: str
    target: str
    order: tuple[str, str]
    fingerprint: str  # of its target's other claims when it last ran
    poked: float  # time.monotonic() of its last run or poke


T = TypeVar("T")


class Tracked(dict[str, T]):
    """uid → what an operator-wide loop keeps of a resource; only touched on the event loop."""

    def track(self, meta: Mapping[str, Any], entry: T | None) -> None:
        """Start (or refresh) tracking the resource of *meta*; None stops it."""
        uid = str(meta.get("uid"))
        if entry is None:
            self.pop(uid, None)
        else:
            self[uid] = entry


class Waitlist(Tracked[Waiting]):
    """Resources waiting for others, for the re-check loop."""


def due(entry: Waiting, fingerprint: str, now: float, fallback: float) -> bool:
    """Whether a waiting resource should run again: its target's claims changed, or it waited long enough."""
    return fingerprint != entry.fingerprint or now - entry.poked > fallback


async def recheck(claims: kopf.Index[str, ClaimEntry], waiting: Waitlist, poke: Poke, fallback: float) -> None:
    """One round: poke the waiting resources that are due, forget those that are gone."""
    for uid, entry in list(waiting.items()):
        _peers, fingerprint = peers_of(claims.get(entry.target, ()), uid, entry.order)
        now = time.monotonic()
        if not due(entry, fingerprint, now, fallback):
            continue
        done = await poke(entry.namespace, entry.name)
        if waiting.get(uid) is not entry:
            continue  # reconciled meanwhile: it re-registered itself if it still waits
        if done is None:
            del waiting[uid]
        elif done:
            entry.fingerprint, entry.poked = fingerprint, now


async def every(seconds: float, round_: Callable[[], Awaitable[None]], what: str) -> None:
    """One operator-wide loop: every *seconds*, one round; never dies (a failed round is logged).

    The operator's periodic work (re-checking waiting resources, checking Ready ones for drift) runs in
    such loops over in-memory lists, never in per-resource kopf timers.
    """
    while True:
        await asyncio.sleep(seconds)
        try:
            await round_()
        except Exception:
            log.exception("%s failed", what)


async def recheck_loop(claims: kopf.Index[str, ClaimEntry], waiting: Waitlist, poke: Poke, settings: Settings) -> None:
    """Every ``recheck_interval`` seconds, one round (waiting resources would wait forever without it)."""
    await every(
        settings.recheck_interval,
        lambda: recheck(claims, waiting, poke, settings.recheck_fallback),
        "re-check of waiting resources",
    )
