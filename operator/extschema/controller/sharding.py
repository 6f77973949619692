"""Sharding: N operators (``extschema run --shard I --shards N``), each owning the ExtensionSchemas labeled
``extschema.io/shard: "I"`` (docs/sharding.md).

Shard I watches only its own resources (a server-side label selector, so the others never reach its memory,
its indexes or kopf's finalizer logic); shard 0 also sees the unassigned ones (no label, or not a shard of N)
and stamps them with :func:`shard_of`, which the mutating webhook uses too. DatabaseTargets are watched by
every shard (each needs the ``targets`` index); their status is written by shard 0 only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from extschema.controller.runtime import runtime
from extschema.controller.settings import FINALIZER, GROUP, SCHEMAS, Settings

LABEL = "extschema.io/shard"


def shard_of(namespace: str | None, name: str, shards: int) -> int:
    """The shard of ``namespace/name`` among *shards*: stable across processes, versions and machines
    (SHA-256, not Python's salted ``hash()``)."""
    digest = hashlib.sha256(f"{namespace or ''}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def assigned(value: object, shards: int) -> int | None:
    """The shard a label value names, or None when it names none of *shards* (absent, not a number, too big)."""
    if not isinstance(value, str) or not value.isdigit() or str(int(value)) != value:
        return None
    shard = int(value)
    return shard if shard < shards else None


def watch_selector(shard: int, shards: int) -> str:
    """The label selector of shard *shard*'s ExtensionSchema watch: its own; for shard 0 also the unassigned
    (``notin`` matches objects without the label, and values that name no shard)."""
    if shard == 0:
        return f"{LABEL} notin ({','.join(str(i) for i in range(1, shards))})"
    return f"{LABEL}={shard}"


def label_for(settings: Settings, namespace: str | None, name: str, labels: Mapping[str, Any]) -> str | None:
    """The shard label a resource needs (for the labeling by shard 0 and the mutating webhook); None when it has
    a valid one already or the operator is not sharded."""
    if settings.shards <= 1 or assigned(labels.get(LABEL), settings.shards) is not None:
        return None
    return str(shard_of(namespace, name, settings.shards))


def labeled(label: str) -> Callable[[kopf.RawBody], None]:
    """A patch function (``kopf.Patch.fns``) setting the shard label on a body."""

    def label_body(body: kopf.RawBody) -> None:
        metadata = body.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), LABEL: label}

    return label_body


# --- kopf filters (label filters get the label's value and the handler's kwargs, memo included) ---------------


def owned(value: object, memo: kopf.Memo, **_: Any) -> bool:
    """Filter of the reconcile and the claims index: this shard's resources (all of them unsharded)."""
    settings = runtime(memo).settings
    return settings.shards <= 1 or assigned(value, settings.shards) == settings.shard


def unassigned(value: object, memo: kopf.Memo, **_: Any) -> bool:
    """Filter of shard 0's labeler: resources no shard owns yet (only shard 0 sees them)."""
    settings = runtime(memo).settings
    return settings.shards > 1 and settings.shard == 0 and assigned(value, settings.shards) is None


def owned_or_unassigned(value: object, memo: kopf.Memo, **kwargs: Any) -> bool:
    """Filter of the deletion handler. Shard 0 also keeps the finalizer of an unassigned resource it sees (kopf
    removes the finalizer of any object no deletion handler matches) and cleans it up if it is deleted before
    it is labeled; no other shard sees such a resource."""
    return owned(value, memo) or unassigned(value, memo)


def writes_targets(memo: kopf.Memo, **_: Any) -> bool:
    """Whether this operator writes DatabaseTargets' status: unsharded, or shard 0."""
    return runtime(memo).settings.shard == 0


def keeps_target_finalizer(memo: kopf.Memo, meta: Mapping[str, Any], **_: Any) -> bool:
    """Filter of the DatabaseTarget timer, which makes kopf put its finalizer on the targets. Shard 0 adds it;
    the other shards only keep it once it is there (kopf takes it off an object no handler needing it matches).
    Two operators adding the same finalizer at once would race: kopf retries the loser's patch only at the
    object's next change, which a no-op retry never makes, and leaves it unhandled."""
    return writes_targets(memo) or FINALIZER in (meta.get("finalizers") or ())


def configure(settings: kopf.OperatorSettings, options: Settings) -> None:
    """Narrow the ExtensionSchema watch to this shard's resources (server-side), before kopf starts watching."""
    if options.shards > 1:
        settings.watching.label_selectors[GROUP, SCHEMAS] = watch_selector(options.shard, options.shards)
