"""Adopting what ``delete --retain`` kept: applying the plugin again takes its objects back.

An unregistered plugin whose objects exist is refused (ES202) unless its history says they were
retained (:meth:`Engine.retained`: its last ending migration is the ``unregister`` that kept them).
Then the apply plans from the retained spec as if it were registered (:func:`base`), so the same
spec plans nothing and a newer version plans the upgrade from the retained one (same plan, same
hash as for a registered plugin), through the same approval gate. Before anything is planned the
objects are compared with the retained spec, as drift compares: any difference refuses (ES209)
with each one named. The run then records an ``adopt`` migration that runs no SQL and registers
the retained spec again (:func:`run`), and the upgrade, if any, as an apply after it.

Objects with no such record (made by hand, or left by a ``delete`` that was meant to drop them)
are never taken over.
"""

from __future__ import annotations

from extschema import planning
from extschema.engine import RETAINED, ApplyResult, Engine, Registration, Retained, StalePlan
from extschema.engine.kinds.adopt import mismatch
from extschema.loading import Loaded
from extschema.problems import ProblemError


def retained(engine: Engine, plugin_id: str) -> Retained | None:
    """What ``delete --retain`` left of *plugin_id* (unregistered), when tables of it are still there (a
    schema or enum type left without them holds no data to adopt: ES202 says to drop it)."""
    source = engine.retained(plugin_id)
    return source if source is not None and engine.physical_tables(plugin_id) else None


def is_retained(base: Registration | None) -> bool:
    """Whether *base* is a retained plugin's made-up registration (:func:`base`), not a stored one."""
    return base is not None and base.status == RETAINED


def adopts(base: Registration | None) -> str | None:
    """What a plan from *base* adopts first, said for its reader (None: *base* is not retained)."""
    if not is_retained(base):
        return None
    assert base is not None
    return (
        f"adopts the objects `delete --retain` kept of {base.plugin_id} {base.version} (checked: exactly that "
        "version): registered again, unchanged"
    )


def _expected(source: Retained, refs: planning.ReferenceTypes) -> planning.Resolved:
    """The retained spec resolved (its own tables' types are its own, not those of the spec applied now)."""
    return planning.resolve(source.spec, {**refs, **planning.reference_types_of(source.spec)})


def base(engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes) -> Registration | None:
    """The registration *loaded* plans from when its plugin is not registered: the retained spec, when
    ``delete --retain`` left its objects and they are exactly that spec (else ES209, nothing changed);
    None when nothing was retained (a fresh install, or ES202 from the conflict check)."""
    source = retained(engine, loaded.spec.plugin_id)
    if source is None:
        return None
    found = engine.adoption_differences(_expected(source, refs))
    if found:
        error = mismatch(source, found)
        raise ProblemError([p.located(loaded.file) for p in error.problems], error.kind)
    return source.registration(loaded.owner)


def run(engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes, planned_from: Registration) -> ApplyResult:
    """Record the ``adopt`` migration of *planned_from* (a retained base, :func:`base`) for *loaded*'s owner.

    Raises :class:`extschema.engine.StalePlan` when the plugin was registered, or its history moved,
    since it was planned (the caller plans again), ES209 when its objects changed since."""
    plugin_id = loaded.spec.plugin_id
    source = engine.retained(plugin_id)
    if source is None or source.checksum != planned_from.checksum:
        raise StalePlan(plugin_id)
    expected = _expected(source, refs)
    tables = expected.physical_tables(engine.dialect.namer)
    return engine.adopt(loaded.owner, source, expected, tables)
