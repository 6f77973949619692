"""The operator's state, kept in kopf's memo instead of module globals.

``extschema run`` puts a :class:`Runtime` (with the settings from its flags) into the memo it passes
to ``kopf.run``; kopf hands every handler a shallow copy of that memo, so all handlers share the one
Runtime. Started another way (``kopf run``), the startup or login handler creates it from the
environment.
"""

from __future__ import annotations

import asyncio
import dataclasses

import kopf

from extschema.controller.claims import ParsedSpecs
from extschema.controller.drift import Watchlist
from extschema.controller.kubeapi import KubeApi
from extschema.controller.readiness import Readiness
from extschema.controller.recheck import Waitlist
from extschema.controller.settings import Settings
from extschema.controller.status import Stats
from extschema.controller.targets import Engines

KEY = "extschema"


@dataclasses.dataclass
class Runtime:
    settings: Settings
    api: KubeApi = dataclasses.field(default_factory=KubeApi)
    engines: Engines = dataclasses.field(default_factory=Engines)
    parsed: ParsedSpecs = dataclasses.field(default_factory=ParsedSpecs)
    waiting: Waitlist = dataclasses.field(default_factory=Waitlist)
    stats: Stats = dataclasses.field(default_factory=Stats)
    #: Ready resources the drift loop checks.
    drift: Watchlist = dataclasses.field(default_factory=Watchlist)
    recheck: asyncio.Task[None] | None = None
    drift_loop: asyncio.Task[None] | None = None
    readiness: Readiness | None = None
    #: (namespace, name) → (labels, generation) of each DatabaseTarget seen, to poke selectors on a change.
    selections: dict[tuple[str, str], tuple[dict[str, str], int]] = dataclasses.field(default_factory=dict)


def memo_for(settings: Settings) -> kopf.Memo:
    """The memo ``extschema run`` passes to ``kopf.run``."""
    memo = kopf.Memo()
    memo[KEY] = Runtime(settings)
    return memo


def runtime(memo: kopf.Memo) -> Runtime:
    """The operator's Runtime; created from the environment on first use if ``kopf.run`` got none.

    Operator-level handlers (login, startup) receive the operator's memo itself, and one of them runs
    before any resource handler, whose memos are copies of it.
    """
    found = memo.get(KEY)
    if not isinstance(found, Runtime):
        found = memo[KEY] = Runtime(Settings.from_env())
    return found
