"""Cross-resource claims: which ExtensionSchemas target the same database, oldest first.

The ``claims`` index holds every valid ExtensionSchema per target database; older claims
(creationTimestamp, then namespace/name) are passed to the pipeline as peers, and a fingerprint of
the others' state tells the re-check loop when a waiting resource should run again.

A resource with ``spec.targetSelector`` claims its plugin on every DatabaseTarget it selects: its entry
sits under the namespace's :func:`selector_key` with the selector, and :func:`claims_on` adds it to the
claims of each target whose labels match (so targets added later are claimed without re-indexing).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from extschema import conditions, conflicts, limits, model, reconcile
from extschema.controller.targets import target_key
from extschema.problems import ProblemError


@dataclasses.dataclass(frozen=True)
class ClaimEntry:
    """One ExtensionSchema's claim on its target, as the claims index keeps it."""

    created: str
    owner: str
    uid: str
    generation: int
    ready: bool
    claim: conflicts.Claim
    #: spec.targetSelector of a resource going to every matching DatabaseTarget.
    selector: model.LabelSelector | None = None

    @property
    def order(self) -> tuple[str, str]:
        return self.created, self.owner


class ParsedSpecs:
    """Parsed specs by (uid, generation): the index and the reconcile parse each generation once."""

    def __init__(self, limit: int = limits.PARSED_SPECS_CACHE) -> None:
        self.limit = limit
        self._parsed: dict[tuple[str, int], reconcile.Loaded | None] = {}

    def __len__(self) -> int:
        return len(self._parsed)

    def get(self, body: Mapping[str, Any]) -> reconcile.Loaded | None:
        """The parsed document, or None when the spec is invalid (the reconcile reports why)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("uid")), int(meta.get("generation") or 0))
        if key not in self._parsed:
            if len(self._parsed) > self.limit:
                self._parsed.pop(next(iter(self._parsed)))
            try:
                self._parsed[key] = reconcile.from_object(dict(body), f"{meta.get('namespace')}/{meta.get('name')}")
            except ProblemError:
                self._parsed[key] = None
        return self._parsed[key]


def is_ready(status: Mapping[str, Any] | None) -> bool:
    ready = conditions.current((status or {}).get("conditions"))
    return bool(ready and ready.get("status") == "True")


def claim_of(body: Mapping[str, Any], namespace: str | None, parsed: ParsedSpecs) -> dict[str, ClaimEntry]:
    """The claims index entry of one ExtensionSchema: nothing for an invalid spec."""
    loaded = parsed.get(body)
    if loaded is None:
        return {}
    meta = body.get("metadata") or {}
    selector = loaded.spec.target_selector
    key = selector_key(namespace) if selector is not None else target_key(namespace, body.get("spec") or {})
    return {
        key: ClaimEntry(
            created=str(meta.get("creationTimestamp") or ""),
            owner=loaded.owner,
            uid=str(meta.get("uid")),
            generation=int(meta.get("generation") or 0),
            ready=is_ready(body.get("status")),
            claim=conflicts.Claim(loaded.owner, loaded.spec),
            selector=selector,
        )
    }


def selector_key(namespace: str | None) -> str:
    """Where the claims of a namespace's targetSelector resources are indexed (no target name has a '?')."""
    return f"{namespace or ''}/?selector"


def claims_on(
    claims: Mapping[str, Iterable[ClaimEntry]], key: str, labels: Mapping[str, str] | None
) -> list[ClaimEntry]:
    """Every claim on the target *key* (``namespace/name``, or ``default``): the resources naming it, and
    those of its namespace whose targetSelector matches its *labels* (None: the default database)."""
    found = list(claims.get(key, ()))
    if labels is not None and "/" in key:
        namespace = key.partition("/")[0]
        found.extend(e for e in claims.get(selector_key(namespace), ()) if e.selector and e.selector.matches(labels))
    return found


#: The creation time of a resource being created: admission requests carry none yet, and the new resource
#: is the newest (sorts after every RFC 3339 timestamp), as the reconcile will see it once it is stored.
NOT_CREATED_YET = "~"


def order_of(meta: Mapping[str, Any], owner: str) -> tuple[str, str]:
    """Where a resource stands among the claims on its target: oldest first (creationTimestamp, then owner)."""
    return (str(meta.get("creationTimestamp") or NOT_CREATED_YET), owner)


def peers_of(entries: Iterable[ClaimEntry], uid: str, order: tuple[str, str]) -> tuple[list[conflicts.Claim], str]:
    """Claims older than *order* (oldest first) and a fingerprint of all the others' state."""
    others = [e for e in entries if e.uid != uid]
    older = sorted((e for e in others if e.order < order), key=lambda e: e.order)
    text = "|".join(sorted(f"{e.owner}:{e.uid}:{e.generation}:{e.ready}" for e in others))
    return [e.claim for e in older], hashlib.sha256(text.encode()).hexdigest()
