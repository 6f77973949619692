"""What a run reads once: the registry and the core tables (:class:`Snapshot`), and the column types
planning resolves references against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence

from extschema import model, planning
from extschema.engine import (
    Engine,
    Registration,
)
from extschema.loading import (
    Loaded,
)
from extschema.model import ExtensionSchemaSpec
from extschema.problems import Problem


def locate(problems: Iterable[Problem], loaded: Sequence[Loaded]) -> list[Problem]:
    """Attribute problems to the file (and the line) of the document they are about."""
    documents = {item.owner: item for item in loaded}
    return [
        documents[p.subject].locate(p) if p.file is None and p.subject is not None and p.subject in documents else p
        for p in problems
    ]


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
        return cls(engine.registrations(), engine.core_catalog(columns_of=_core_referenced(specs)))

    @classmethod
    def registered(
        cls, engine: Engine, plugin_id: str | None = None, *, among: Collection[str] | None = None
    ) -> Snapshot:
        """Read the registry, and the core tables with the columns the registered spec of *plugin_id*
        (of the plugins *among*; of every plugin when neither is given) references: what comparing
        registered specs with the database takes."""
        registrations = engine.registrations()
        wanted = among if among is not None else None if plugin_id is None else {plugin_id}
        chosen = [r.spec for r in registrations if wanted is None or r.plugin_id in wanted]
        return cls(registrations, engine.core_catalog(columns_of=_core_referenced(chosen)))

    def registration(self, plugin_id: str) -> Registration | None:
        return next((r for r in self.registrations if r.plugin_id == plugin_id), None)


def _core_referenced(specs: Iterable[ExtensionSchemaSpec]) -> set[str]:
    return {
        target.table
        for spec in specs
        for rel in spec.relationships
        if (target := model.parse_target(rel.target, spec.plugin_id)) is not None and target.is_core
    }


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
