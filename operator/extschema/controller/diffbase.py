"""kopf's diff base as a digest: what the operator last handled, in one short annotation.

kopf decides between create, update and "nothing changed" by comparing a resource's essence (its spec,
labels and annotations) with the essence stored when it last handled it. kopf's default storage keeps
that essence whole in an annotation, and Kubernetes caps all annotations of an object at 256 KiB: a spec
above ~256 KiB (within the CRD's bounds and etcd's limit) could be migrated but never recorded, as every
patch of the resource was refused. The operator never reads the old essence (the database registry says
what was applied; handlers read the current spec), so a SHA-256 of it is all kopf needs to tell whether
the essence changed.

A status behind the spec is not handled: kopf writes the diff base (the body) and the status (its subresource)
in two requests, so an operator killed between them leaves the spec recorded as handled with the status of the
generation before. A restarted operator re-runs every resource (resume handlers) and heals it; a standby taking
over (peering) does not, so the resource would stay stale for good (found by the chaos suite's kill of the
active replica). :meth:`DigestDiffBaseStorage.fetch` therefore reports a resource whose
``status.observedGeneration`` is behind ``metadata.generation`` as changed, and its update handlers run again
(idempotent: the registry says what was applied).

Upgrade: a resource handled by an older operator carries the whole essence in
``kopf.extschema.io/last-handled-configuration``; it is read as the digest of that essence (so an
unchanged resource is not taken for a changed one), and removed at the next store.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf

from extschema.controller.settings import KIND

#: kopf's default storage kept the essence whole under this key (operators before the digest).
LEGACY_KEY = "last-handled-configuration"
KEY = "last-handled-digest"


class DigestDiffBaseStorage(kopf.DiffBaseStorage):
    """The diff base as ``{"digest": <sha256 of the essence>}`` in annotation ``PREFIX/last-handled-digest``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.key = f"{prefix}/{KEY}"
        self.legacy = f"{prefix}/{LEGACY_KEY}"

    def digest(self, essence: Any) -> str:
        """SHA-256 of *essence* without this operator's own annotations (progress, markers, the diff base)."""
        essence = copy.deepcopy(essence)
        annotations = (essence.get("metadata") or {}).get("annotations") or {}
        self.remove_annotations(essence, {k for k in annotations if k.startswith(f"{self.prefix}/")})
        self.remove_empty_stanzas(essence)
        canonical = json.dumps(essence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def build(self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, {"digest": self.digest(essence)})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        found = self._fetch(body)
        if found is not None and status_behind(body):
            digest = cast(dict[str, Any], found)["digest"]
            return cast(kopf.BodyEssence, {"digest": f"{digest} (status behind)"})
        return found

    def _fetch(self, body: kopf.Body) -> kopf.BodyEssence | None:
        annotations = body.metadata.annotations
        stored = annotations.get(self.key)
        if stored:
            return cast(kopf.BodyEssence, {"digest": stored.strip()})
        legacy = annotations.get(self.legacy)
        if legacy:
            try:
                essence = json.loads(legacy)
            except ValueError:
                return None  # unreadable: handled as new (the reconcile is idempotent)
            if isinstance(essence, dict):
                return cast(kopf.BodyEssence, {"digest": self.digest(essence)})
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        patch.metadata.annotations[self.key] = str(cast(dict[str, Any], essence)["digest"])
        if self.legacy in body.metadata.annotations:
            patch.metadata.annotations[self.legacy] = None  # the whole essence of an older operator
        self._store_marker(prefix=self.prefix, patch=patch, body=body)


def status_behind(body: kopf.Body) -> bool:
    """An ExtensionSchema's status was written for an older generation than its spec's (or never, once handled).
    Only ExtensionSchemas: every reconcile writes their observedGeneration; a DatabaseTarget's status has none."""
    if body.get("kind") != KIND:
        return False
    generation = body.metadata.get("generation")
    observed = (body.get("status") or {}).get("observedGeneration")
    return isinstance(generation, int) and observed != generation
