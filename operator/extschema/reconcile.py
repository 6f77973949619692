"""The one line both shells drive: snapshot once → check → plan → gate → apply.

``extschema apply`` and the operator run the same steps; only the reporting differs (the CLI
prints, the operator writes status, conditions and events). Every step either returns a typed
result or raises :class:`~extschema.problems.ProblemError` with located, coded problems. While
migrations run, the caller's hook receives typed migration events (:data:`MigrationEvent`), so
the CLI's progress lines, the operator's events and metrics all read the same facts.

Loading (files, YAML, custom resources) lives in :mod:`extschema.loading`, which needs no
database; ``load``, ``Loaded`` and ``from_object`` are re-exported here for the shells.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence

from extschema import conflicts, model, planning
from extschema.dialects import RenderedPlan
from extschema.engine import ApplyResult, Engine, Registration, StalePlan, registered_by_another
from extschema.engine import drift as engine_drift
from extschema.loading import (
    Loaded,
    from_object,
    load,
)
from extschema.model import ExtensionSchemaSpec
from extschema.problems import Kind, Problem, ProblemError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Loaded",
    "MigrationEvent",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationStarted",
    "OnEvent",
    "Planned",
    "Snapshot",
    "apply_all",
    "apply_one",
    "check",
    "database_url",
    "delete",
    "drift",
    "from_object",
    "load",
    "locate",
    "plan_all",
    "plan_one",
    "reconcile",
    "reference_types",
    "rollback",
]

DEFAULT_DATABASE_URL = "sqlite:///extschema.db"
_STALE_RETRIES = 5


def database_url(explicit: str | None) -> str:
    """``--database``, else ``EXTSCHEMA_DATABASE_URL``, else the embedded SQLite file.

    An explicit empty URL is a mistake (an unset shell variable, ``--database "$URL"``), never a
    request for the local file: applying to the wrong database is worse than stopping. The same
    holds for ``EXTSCHEMA_DATABASE_URL`` set to nothing (``EXTSCHEMA_DATABASE_URL=$UNSET``).
    """
    from_environment = os.environ.get("EXTSCHEMA_DATABASE_URL")
    example = "a URL such as postgresql://HOST/DB or sqlite:///FILE"
    empty = None
    if explicit is not None and not explicit.strip():
        empty = (
            f"the database URL is empty; give {example}, "
            "or leave --database out to use $EXTSCHEMA_DATABASE_URL or sqlite:///extschema.db"
        )
    elif explicit is None and from_environment is not None and not from_environment.strip():
        empty = (
            f"$EXTSCHEMA_DATABASE_URL is set but empty; set it to {example}, "
            "unset it to use sqlite:///extschema.db, or give --database"
        )
    if empty is not None:
        raise ProblemError.one("ES404", "--database", empty, kind=Kind.USAGE)
    if explicit:
        return explicit
    return from_environment or DEFAULT_DATABASE_URL


# --- migration events ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MigrationStarted:
    """Spec *number* of *total* is being planned and applied (it may turn out unchanged)."""

    plugin_id: str
    version: str
    file: str
    #: Position in the run (1-based) and the run's length, for "[2/5]"-style progress.
    number: int
    total: int


@dataclasses.dataclass(frozen=True)
class MigrationFinished:
    """A spec was applied (``result.changed``) or found already in place."""

    result: ApplyResult
    number: int  # as in MigrationStarted
    total: int


@dataclasses.dataclass(frozen=True)
class MigrationFailed:
    """A spec could not be applied; the error is raised right after this event."""

    plugin_id: str
    error: ProblemError
    number: int  # as in MigrationStarted
    total: int


MigrationEvent = MigrationStarted | MigrationFinished | MigrationFailed
#: The one hook for progress: the CLI prints, the operator posts events, metrics count.
OnEvent = Callable[[MigrationEvent], None]


# --- conflicts ---------------------------------------------------------------------------------


def _claims(registrations: Sequence[Registration]) -> list[conflicts.Claim]:
    return [conflicts.Claim(r.owner, r.spec) for r in registrations]


def locate(problems: Iterable[Problem], loaded: Sequence[Loaded]) -> list[Problem]:
    """Attribute problems to the file of the document they are about."""
    files = {item.owner: item.file for item in loaded}
    return [
        p.located(files[p.subject]) if p.file is None and p.subject is not None and p.subject in files else p
        for p in problems
    ]


# --- plan + apply ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Planned:
    """The change one spec makes, rendered for the target database."""

    loaded: Loaded
    base: Registration | None
    plan: planning.Plan

    def render(self, engine: Engine, tag: str) -> RenderedPlan:
        return engine.dialect.render_plan(self.plan, backup_tag=f"m{tag}")

    def tables(self, engine: Engine, refs: planning.ReferenceTypes) -> list[str]:
        desired = planning.resolve(self.loaded.spec, refs)
        return [str(engine.dialect.namer.table(self.loaded.spec.plugin_id, t.name)) for t in desired.tables]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The registry and the core tables, read once per run (reflection is the slow part).

    Planning from a snapshot is safe: the engine re-reads the plugin's registration under the
    migration lock and refuses a plan whose base has moved (:class:`StalePlan`).
    """

    registrations: list[Registration]
    core: dict[tuple[str, str], dict[str, model.FieldType | None]]

    @classmethod
    def take(cls, engine: Engine, specs: Iterable[ExtensionSchemaSpec] = ()) -> Snapshot:
        """Read the registry, and the core tables with the columns of those *specs* reference."""
        referenced = {
            target.table
            for spec in specs
            for rel in spec.relationships
            if (target := model.parse_target(rel.target, spec.plugin_id)) is not None and target.is_core
        }
        return cls(engine.registrations(), engine.core_catalog(columns_of=referenced))

    def registration(self, plugin_id: str) -> Registration | None:
        return next((r for r in self.registrations if r.plugin_id == plugin_id), None)


def reference_types(
    snapshot: Snapshot, specs: Iterable[ExtensionSchemaSpec]
) -> dict[tuple[str, str], dict[str, model.FieldType | None]]:
    """Column types of core tables, registered plugins and the specs being applied."""
    refs: dict[tuple[str, str], dict[str, model.FieldType | None]] = dict(snapshot.core)
    for registration in snapshot.registrations:
        refs.update(planning.reference_types_of(registration.spec))
    for spec in specs:
        refs.update(planning.reference_types_of(spec))
    return refs


def plan_one(
    engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes, snapshot: Snapshot | None = None
) -> Planned:
    """The plan of one spec from its registration in *snapshot* (read now when not given).

    A plan from a snapshot may be stale by the time it runs; the engine refuses it under the lock
    (:class:`StalePlan`) and :func:`apply_one` plans again from a fresh read.
    """
    plugin_id = loaded.spec.plugin_id
    base = snapshot.registration(plugin_id) if snapshot is not None else engine.registration(plugin_id)
    if base is not None and base.owner != loaded.owner:
        error = registered_by_another(plugin_id, base.owner)
        raise ProblemError([p.located(loaded.file) for p in error.problems], error.kind)
    if base is not None and base.checksum == loaded.spec.checksum() and base.status == "active":
        return Planned(loaded, base, planning.Plan(loaded.spec.plugin_id, ()))
    try:
        plan = planning.plan(base.spec if base else None, loaded.spec, refs)
    except ProblemError as error:
        raise ProblemError([p.located(loaded.file) for p in error.problems], error.kind) from None
    return Planned(loaded, base, plan)


def check(
    engine: Engine,
    loaded: Sequence[Loaded],
    peers: Sequence[conflicts.Claim] = (),
    snapshot: Snapshot | None = None,
) -> list[Loaded]:
    """Conflicts and dependencies of validated schemas; returns them in dependency order.

    *peers* are claims not yet in the registry that came first (the operator's other resources,
    oldest first). Raises ``conflict`` problems, or ``dependency`` when the only trouble is a
    dependency that is not registered yet (the operator waits for it).
    """
    snapshot = snapshot or Snapshot.take(engine, [item.spec for item in loaded])
    candidates = sorted(loaded, key=lambda item: (item.owner, item.spec.plugin_id))
    registered = _claims(snapshot.registrations)
    registered_ids = {c.spec.plugin_id for c in registered}
    earlier = [p for p in peers if p.spec.plugin_id not in registered_ids]
    problems = conflicts.detect(
        [conflicts.Claim(c.owner, c.spec) for c in candidates],
        [*registered, *earlier],
        snapshot.core,
        engine.dialect.namer,
    )
    problems.extend(_unowned_objects(engine, candidates, registered_ids))
    # A peer that is not registered yet is no dependency one can build on.
    pending = {p.spec.plugin_id for p in earlier}
    for item in candidates:
        for index, dependency in enumerate(item.spec.depends_on):
            if dependency in pending and dependency not in {c.spec.plugin_id for c in candidates}:
                problems.append(
                    Problem(
                        "ES208",
                        f"spec.dependsOn[{index}]",
                        f"{item.owner!r} depends on plugin "
                        f"{dependency!r}, which is not applied yet; it proceeds once it is",
                        subject=item.owner,
                    )
                )
    if problems:
        kind = Kind.DEPENDENCY if all(p.code == "ES208" for p in problems) else Kind.CONFLICT
        raise ProblemError(locate(problems, loaded), kind=kind)
    order = {s.plugin_id: i for i, s in enumerate(conflicts.dependency_order([item.spec for item in loaded]))}
    return sorted(loaded, key=lambda item: order[item.spec.plugin_id])


def _unowned_objects(engine: Engine, candidates: Sequence[Loaded], registered_ids: set[str]) -> list[Problem]:
    """ES202 for a plugin not registered whose tables, schema or types exist already (left by
    ``delete --retain``, or made by hand): installing it would fail in the database on CREATE."""
    problems = []
    for item in candidates:
        plugin_id = item.spec.plugin_id
        if plugin_id in registered_ids:
            continue
        found = engine.physical_objects(plugin_id)
        # Registered since the snapshot (a concurrent apply commits its tables and registration together).
        if found and engine.registration(plugin_id) is None:
            problems.append(
                Problem(
                    "ES202",
                    "spec.pluginId",
                    f"plugin {plugin_id!r} is not registered, but its objects exist: {', '.join(found)} (left by "
                    "`extschema delete --retain`, or made by hand); back up what you need and drop them, "
                    "or choose another pluginId",
                    subject=item.owner,
                )
            )
    return problems


def reconcile(
    engine: Engine, loaded: Sequence[Loaded], on_event: OnEvent, peers: Sequence[conflicts.Claim] = ()
) -> list[ApplyResult]:
    """The whole line after loading, one step after the other; stops at the first failure.

    1. snapshot: read the registry and the core tables once;
    2. check: conflicts and dependencies, giving the dependency order;
    3. plan: every spec against the snapshot;
    4. gate: a refused change anywhere stops the run before any migration starts;
    5. apply: in order, each spec re-planned under the lock if its registration moved.
    """
    specs = [item.spec for item in loaded]
    snapshot = Snapshot.take(engine, specs)
    ordered = check(engine, loaded, peers, snapshot)
    refs = reference_types(snapshot, specs)
    planned = gate(engine, ordered, refs, snapshot)
    return apply_all(engine, ordered, on_event, snapshot, planned)


def gate(
    engine: Engine, ordered: Sequence[Loaded], refs: planning.ReferenceTypes, snapshot: Snapshot | None = None
) -> list[Planned]:
    """Plan every spec before any migration runs; a refused change anywhere stops the whole run.

    Without this step the first specs of a run would be applied before a later one is refused
    (ES301/ES302), leaving the database half way. Every refusal is reported at once.
    """
    planned: list[Planned] = []
    problems: list[Problem] = []
    kind: Kind | None = None
    for item in ordered:
        try:
            planned.append(plan_one(engine, item, refs, snapshot))
        except ProblemError as error:
            problems.extend(error.problems)
            kind = kind or error.kind
    if kind is not None:
        raise ProblemError(problems, kind)
    return planned


def plan_all(engine: Engine, loaded: Sequence[Loaded]) -> list[tuple[Planned, RenderedPlan]]:
    """check → plan every spec, in dependency order, from one snapshot; runs nothing."""
    specs = [item.spec for item in loaded]
    snapshot = Snapshot.take(engine, specs)
    ordered = check(engine, loaded, snapshot=snapshot)
    refs = reference_types(snapshot, specs)
    planned = [plan_one(engine, item, refs, snapshot) for item in ordered]
    return [(p, p.render(engine, "planned")) for p in planned]


def apply_one(
    engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes, planned: Planned | None = None
) -> ApplyResult:
    """Apply one spec (*planned* already, or planned here); replan when another applier moved the registry."""
    for attempt in range(_STALE_RETRIES):
        if planned is None or attempt:
            planned = plan_one(engine, loaded, refs)
        base_checksum = planned.base.checksum if planned.base else None
        try:
            result = engine.apply(loaded.owner, loaded.spec, planned.plan, base_checksum, planned.tables(engine, refs))
        except StalePlan:
            continue
        except ProblemError as error:
            raise ProblemError(
                [p.located(loaded.file) if p.file is None else p for p in error.problems], error.kind
            ) from None
        return dataclasses.replace(result, warnings=tuple(w.located(loaded.file) for w in result.warnings))
    raise ProblemError.one(
        "ES403",
        "database",
        f"plugin {loaded.spec.plugin_id!r} kept changing while it was being applied; try again",
        kind=Kind.RETRYABLE,
    )


def apply_all(
    engine: Engine,
    loaded: Sequence[Loaded],
    on_event: OnEvent,
    snapshot: Snapshot | None = None,
    planned: Sequence[Planned] | None = None,
) -> list[ApplyResult]:
    """Apply in dependency order (already sorted by :func:`check`); stop at the first failure.

    *planned* are the gate's plans, one per spec in the same order (planned here when not given).
    """
    specs = [item.spec for item in loaded]
    refs = reference_types(snapshot or Snapshot.take(engine, specs), specs)
    results = []
    total = len(loaded)
    for number, item in enumerate(loaded, start=1):
        on_event(MigrationStarted(item.spec.plugin_id, item.spec.version, item.file, number, total))
        try:
            result = apply_one(engine, item, refs, planned[number - 1] if planned else None)
        except ProblemError as error:
            on_event(MigrationFailed(item.spec.plugin_id, error, number, total))
            raise
        on_event(MigrationFinished(result, number, total))
        results.append(result)
    return results


def rollback(engine: Engine, plugin_id: str) -> ApplyResult:
    return engine.rollback(plugin_id)


def delete(engine: Engine, plugin_id: str, retain: bool | None = None) -> ApplyResult:
    """Drop (or with Retain, unregister) a plugin; its objects are torn down in reverse order."""

    def teardown(spec: ExtensionSchemaSpec) -> planning.Plan:
        return planning.teardown(spec, reference_types(Snapshot.take(engine, [spec]), []))

    for _ in range(_STALE_RETRIES):
        try:
            return engine.delete(plugin_id, teardown, retain)
        except StalePlan:
            continue
    raise ProblemError.one(
        "ES403",
        "database",
        f"plugin {plugin_id!r} kept changing while it was being deleted; try again",
        kind=Kind.RETRYABLE,
    )


def drift(engine: Engine, plugin_id: str | None = None) -> list[engine_drift.DriftReport]:
    """Drift of one plugin, or of every registered plugin, against its registered spec."""
    ids = [plugin_id] if plugin_id is not None else [r.plugin_id for r in engine.registrations()]
    return [engine_drift.detect(engine, p) for p in ids]
