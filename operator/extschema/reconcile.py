"""The one pipeline both shells drive: load → validate → check conflicts → plan → apply → report.

``extschema apply`` and the operator run the same steps; only the reporting differs (the CLI
prints, the operator writes status, conditions and events). Every step either returns its
result or raises :class:`~extschema.problems.ProblemError` with located, coded problems.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import yaml

from extschema import conflicts, model, planning, validation
from extschema.dialects import RenderedPlan
from extschema.engine import ApplyResult, Engine, Registration, StalePlan
from extschema.model import ExtensionSchema, ExtensionSchemaSpec
from extschema.problems import Problem, ProblemError

DEFAULT_DATABASE_URL = "sqlite:///extschema.db"
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
_STALE_RETRIES = 5

Progress = Callable[[str], None]


def database_url(explicit: str | None) -> str:
    """``--database``, else ``EXTSCHEMA_DATABASE_URL``, else the embedded SQLite file."""
    return explicit or os.environ.get("EXTSCHEMA_DATABASE_URL") or DEFAULT_DATABASE_URL


@dataclasses.dataclass(frozen=True)
class Loaded:
    """One ExtensionSchema document and where it came from."""

    file: str
    document: ExtensionSchema

    @property
    def spec(self) -> ExtensionSchemaSpec:
        return self.document.spec

    @property
    def owner(self) -> str:
        return self.document.owner


# --- load + validate ----------------------------------------------------------------------------


def _files(paths: Sequence[str]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                problems.append(Problem("ES004", "", "directory has no *.yaml or *.yml files", file=raw))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem("ES005", "", "no such file or directory", file=raw))
    return files, problems


def parse_text(text: str, file: str) -> tuple[list[Loaded], list[Problem]]:
    """Every ExtensionSchema document in a YAML stream, validated; other kinds are skipped."""
    try:
        # libyaml's parser when present: the pure-Python one takes seconds on a 1,000-table document.
        documents = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        return [], [Problem("ES001", "", f"{where}{reason}; fix the YAML syntax", file=file)]
    except (ValueError, RecursionError) as error:  # e.g. an integer of more than 4,300 digits
        return [], [Problem("ES001", "", f"cannot read a value: {error}", file=file)]
    return parse_documents(documents, file)


def parse_documents(documents: Sequence[object], file: str) -> tuple[list[Loaded], list[Problem]]:
    """Validate parsed documents: structure first, then every semantic rule."""
    loaded: list[Loaded] = []
    problems: list[Problem] = []
    for number, data in enumerate(documents):
        if data is None:
            continue
        prefix = f"[document {number + 1}] " if len(documents) > 1 else ""
        if not isinstance(data, dict):
            problems.append(
                Problem(
                    "ES002",
                    "",
                    f"{prefix}document is a {type(data).__name__}, expected a mapping "
                    "with apiVersion, kind, metadata and spec",
                    file=file,
                )
            )
            continue
        if data.get("kind") != model.KIND:
            continue
        if data.get("apiVersion") != model.API_VERSION:
            problems.append(
                Problem(
                    "ES003",
                    "apiVersion",
                    f"{prefix}apiVersion {data.get('apiVersion')!r} is not supported; use {model.API_VERSION}",
                    file=file,
                )
            )
            continue
        try:
            document = model.parse_document(data)
        except model.ValidationError as error:
            problems.extend(p.located(file) for p in validation.structural_problems(error))
            continue
        found = validation.validate_metadata(document.metadata) + validation.validate(document.spec)
        if found:
            problems.extend(p.located(file) for p in found)
            continue
        loaded.append(Loaded(file, document))
    return loaded, problems


def load(paths: Sequence[str]) -> list[Loaded]:
    """Read and validate every ExtensionSchema in *paths*; raise with all problems at once."""
    files, problems = _files(paths)
    loaded: list[Loaded] = []
    for file in files:
        try:
            if file.stat().st_size > MAX_DOCUMENT_BYTES:
                problems.append(Problem("ES005", "", f"file is larger than {MAX_DOCUMENT_BYTES} bytes", file=str(file)))
                continue
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem("ES005", "", f"cannot read: {error}", file=str(file)))
            continue
        found, file_problems = parse_text(text, str(file))
        loaded.extend(found)
        problems.extend(file_problems)
    if not loaded and not problems:
        problems.append(
            Problem(
                "ES004", "", f"no {model.KIND} document (apiVersion {model.API_VERSION}) found", file=", ".join(paths)
            )
        )
    problems.extend(_duplicates(loaded))
    if problems:
        raise ProblemError(problems, kind="invalid")
    return loaded


def _duplicates(loaded: Sequence[Loaded]) -> Iterable[Problem]:
    seen: dict[tuple[str, str], str] = {}
    for item in loaded:
        key = (item.owner, item.spec.plugin_id)
        if key in seen:
            yield Problem(
                "ES104",
                "metadata.name",
                f"{item.owner!r} declares plugin {item.spec.plugin_id!r} twice "
                f"(also in {seen[key]}); keep one document",
                file=item.file,
            )
        seen[key] = item.file


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
        desired = planning.desired_state(self.loaded.spec, refs)
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


def plan_one(engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes) -> Planned:
    base = engine.registration(loaded.spec.plugin_id)
    if base is not None and base.owner != loaded.owner:
        raise ProblemError(
            [
                Problem(
                    "ES201",
                    "spec.pluginId",
                    f"plugin {loaded.spec.plugin_id!r} is already registered by {base.owner!r}; "
                    "choose another pluginId, or delete that one first",
                    file=loaded.file,
                )
            ],
            kind="conflict",
        )
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
        kind = "dependency" if all(p.code == "ES208" for p in problems) else "conflict"
        raise ProblemError(locate(problems, loaded), kind=kind)
    order = {s.plugin_id: i for i, s in enumerate(conflicts.dependency_order([item.spec for item in loaded]))}
    return sorted(loaded, key=lambda item: order[item.spec.plugin_id])


def prepare(engine: Engine, paths: Sequence[str]) -> list[Loaded]:
    """load → validate → check conflicts; nothing runs unless every document is clean."""
    return check(engine, load(paths))


def reconcile(
    engine: Engine, loaded: Sequence[Loaded], progress: Progress, peers: Sequence[conflicts.Claim] = ()
) -> list[ApplyResult]:
    """The whole line after loading: check conflicts and dependencies → plan → apply."""
    snapshot = Snapshot.take(engine, [item.spec for item in loaded])
    return apply_all(engine, check(engine, loaded, peers, snapshot), progress, snapshot)


def from_object(body: dict[str, object], source: str) -> Loaded:
    """Validate a custom resource read from the API server (the operator's load step)."""
    data = {key: body.get(key) for key in ("apiVersion", "kind", "metadata", "spec")}
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        data["metadata"] = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    spec = data.get("spec")
    if isinstance(spec, dict):
        # Operator-only fields are not part of the engine's spec.
        data["spec"] = {k: v for k, v in spec.items() if k not in OPERATOR_SPEC_FIELDS}
    loaded, problems = parse_documents([data], source)
    if problems:
        raise ProblemError(problems, kind="invalid")
    return loaded[0]


#: Spec fields only the operator reads (which database, whether to pause).
OPERATOR_SPEC_FIELDS = ("targetRef", "suspend")


def plan_all(engine: Engine, loaded: Sequence[Loaded]) -> list[tuple[Planned, RenderedPlan]]:
    refs = reference_types(Snapshot.take(engine, [item.spec for item in loaded]), [item.spec for item in loaded])
    planned = [plan_one(engine, item, refs) for item in loaded]
    return [(p, p.render(engine, "planned")) for p in planned]


def apply_one(engine: Engine, loaded: Loaded, refs: planning.ReferenceTypes) -> ApplyResult:
    """Plan and apply one spec; replan when another applier moved the registry meanwhile."""
    for _ in range(_STALE_RETRIES):
        planned = plan_one(engine, loaded, refs)
        base_checksum = planned.base.checksum if planned.base else None
        try:
            return engine.apply(loaded.owner, loaded.spec, planned.plan, base_checksum, planned.tables(engine, refs))
        except StalePlan:
            continue
        except ProblemError as error:
            raise ProblemError(
                [p.located(loaded.file) if p.file is None else p for p in error.problems], error.kind
            ) from None
    raise ProblemError.one(
        "ES403",
        "database",
        f"plugin {loaded.spec.plugin_id!r} kept changing while it was being applied; try again",
        kind="retryable",
    )


def apply_all(
    engine: Engine, loaded: Sequence[Loaded], progress: Progress, snapshot: Snapshot | None = None
) -> list[ApplyResult]:
    """Apply in dependency order (already sorted by :func:`check`); stop at the first failure."""
    specs = [item.spec for item in loaded]
    refs = reference_types(snapshot or Snapshot.take(engine, specs), specs)
    results = []
    for number, item in enumerate(loaded, start=1):
        progress(f"[{number}/{len(loaded)}] {item.spec.plugin_id} {item.spec.version} ({item.file})")
        results.append(apply_one(engine, item, refs))
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
        kind="retryable",
    )
