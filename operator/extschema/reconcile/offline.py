"""Plans without a database (``extschema diff OLD NEW``): the same proposal, hash and SQL ``plan`` gives
against a database at OLD, made on a stand-in.

The stand-in is a throwaway SQLite file holding the core tables (from ``--core FILE.sql`` or a core
description) and OLD applied to it without its raw SQL steps (what they did to rows does not change a
plan). :func:`~extschema.reconcile.pipeline.propose` then plans NEW on it as on any database: the same
checks, base (OLD's checksum) and reference types, so the same plan and hash. Each plan is rendered
again for the dialect asked for (rendering needs no connection). Data counts need the data: a diff
has none, so its operations are :class:`Uncounted` and say so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml

from extschema import dialects, model, planning
from extschema.engine import Engine, Registration, standin
from extschema.engine import lint as squawk
from extschema.loading import Loaded
from extschema.naming import PLAN_PREVIEW_TAG, backup_tag
from extschema.planning import safety
from extschema.problems import Kind, Problem, ProblemError
from extschema.reconcile.approval import _UNITS, CheckedOp, Planned, Proposal, Reviewed
from extschema.reconcile.pipeline import apply_one, propose

#: The dialect a diff renders for unless asked otherwise: the operator's database.
DEFAULT_DIALECT = "postgresql"
DIALECTS = tuple(dialects.REGISTRY)
#: Types a core description may give a column: the logical field types (a column of a type
#: extschema does not map, e.g. JSON, is ``null``).
CORE_TYPES: tuple[str, ...] = tuple(t for t in get_args(model.FieldType) if t != "Enum")

CoreTypes = dict[tuple[str, str], dict[str, model.FieldType | None]]


@dataclasses.dataclass(frozen=True)
class Core:
    """The host application's tables for planning without a database: a core description's types,
    or DDL to read into the stand-in (``--core FILE.sql``), or none."""

    source: str | None = None
    #: Column types by table, from a core description.
    tables: Mapping[str, Mapping[str, model.FieldType | None]] | None = None
    #: SQL run in the stand-in (the core tables are reflected from it as from a database).
    sql: str | None = None

    @classmethod
    def read(cls, path: str | None) -> Core:
        """``--core FILE``: ``*.sql`` is DDL, anything else a core description (YAML or JSON); ES760 when unreadable."""
        if path is None:
            return cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProblemError.one("ES760", "--core", f"cannot read {path}: {error}", kind=Kind.INVALID) from None
        if path.endswith(".sql"):
            return cls(path, sql=text)
        return cls(path, tables=parse_core_description(text, path))


def parse_core_description(text: str, file: str) -> dict[str, dict[str, model.FieldType | None]]:
    """A core description: ``coreTables: {TABLE: {COLUMN: TYPE}}`` (docs/diff.md); ES760 for anything else."""

    def invalid(path: str, message: str) -> ProblemError:
        return ProblemError([Problem("ES760", path, message, file=file)], Kind.INVALID)

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        raise invalid("", f"not valid YAML or JSON: {str(error).splitlines()[0]}") from None
    example = "coreTables: {work_orders: {id: Int, title: String}}"
    if len(documents) != 1 or not isinstance(documents[0], dict) or set(documents[0]) != {"coreTables"}:
        raise invalid("", f"a core description is one mapping with the single key coreTables, e.g. {example}")
    tables = documents[0]["coreTables"]
    if not isinstance(tables, dict) or not tables:
        raise invalid("coreTables", f"coreTables maps each core table to its columns, e.g. {example}")
    found: dict[str, dict[str, model.FieldType | None]] = {}
    for table, columns in tables.items():
        where = f"coreTables.{table}"
        if not isinstance(table, str) or not table:
            raise invalid("coreTables", f"table name {table!r} is not a name")
        if not isinstance(columns, dict) or not columns:
            raise invalid(where, f"map each column of {table} to its type, e.g. {{id: Int, title: String}}")
        found[table] = {}
        for column, kind in columns.items():
            if not isinstance(column, str) or not column:
                raise invalid(where, f"column name {column!r} is not a name")
            if kind is not None and kind not in CORE_TYPES:
                raise invalid(
                    f"{where}.{column}",
                    f"type {kind!r} is not one of {', '.join(CORE_TYPES)} (null for a type extschema does not map)",
                )
            found[table][column] = kind
    return found


class Uncounted(CheckedOp):
    """An operation reviewed without data: its checks are what ``plan`` counts against a database."""

    def counted(self) -> list[tuple[safety.DataCheck, int]]:
        return []

    def describe(self) -> str:
        """``drop column ticket.note (values not counted: no database)``."""
        text = self.classified.op.describe()
        checks = self.classified.checks
        if not checks:
            return text
        unit = _UNITS[checks[0].kind].split(" ")[0]
        return f"{text} ({unit} not counted: no database)"


@dataclasses.dataclass(frozen=True)
class Diff:
    """What applying NEW to a database at OLD would do, for one dialect, with no database."""

    dialect: str
    #: One per plugin of NEW, in dependency order, rendered for :attr:`dialect`, uncounted.
    items: tuple[Proposal.Item, ...]
    #: The version each plugin has in OLD (absent: new in NEW).
    old_versions: Mapping[str, str]
    #: Plugins of OLD that NEW does not hold: applying NEW leaves them as they are.
    left: tuple[Registration, ...]

    def notes(self) -> list[Problem]:
        """ES764 for each plugin of OLD that NEW leaves out (applying does not remove a plugin)."""
        return [
            Problem(
                "ES764",
                "OLD",
                f"plugin {r.plugin_id!r} ({r.version}) is in OLD but not in NEW: applying NEW leaves it as it is; "
                f"`extschema delete {r.plugin_id}` removes a plugin",
                subject=r.owner,
            )
            for r in self.left
        ]


class _StandIn(Engine):
    """An engine on a throwaway SQLite file whose core tables are a core description's (when given):
    their types are the description's, not what SQLite would read back (it has no UUID, for one)."""

    def __init__(self, url: str, core: Core) -> None:
        # Raw SQL is shown, never run: a diff plans what apply --allow-raw-sql would run.
        super().__init__(url, allow_raw_sql=True)
        self._core = core

    def core_catalog(self, columns_of: Any = None) -> CoreTypes:
        if self._core.tables is None:
            return super().core_catalog(columns_of)
        return {("core", table): dict(columns) for table, columns in self._core.tables.items()}


@contextlib.contextmanager
def stand_in(core: Core) -> Iterator[Engine]:
    """A throwaway SQLite database holding *core*'s tables; removed on exit."""
    with tempfile.TemporaryDirectory(prefix="extschema-diff-") as directory:
        engine = _StandIn(f"sqlite:///{Path(directory) / 'stand-in.db'}", core)
        standin.throwaway(engine)
        try:
            if core.sql is not None:
                standin.run_script(engine, core.sql, core.source or "--core")
            elif core.tables is not None:
                standin.create_core_tables(engine, {t: list(c) for t, c in core.tables.items()})
            yield engine
        finally:
            engine.close()


def _require_core(engine: Engine, loaded: Sequence[Loaded], core: Core) -> None:
    """ES761 for each relationship to a core table the stand-in does not hold: say where the core comes from."""
    present = {table for _, table in engine.core_catalog()}
    problems = []
    for item in loaded:
        for index, rel in enumerate(item.spec.relationships):
            target = model.parse_target(rel.target, item.spec.plugin_id)
            if target is None or not target.is_core or target.table in present:
                continue
            given = f"the core tables of {core.source} are {', '.join(sorted(present)) or 'none'}"
            problems.append(
                Problem(
                    "ES761",
                    f"spec.relationships[{index}].target",
                    f"{rel.target} is a core table, and a diff reads no database: "
                    + (f"{given}; add it there" if core.source else "give the core tables with --core FILE")
                    + " (a file of CREATE TABLE statements, or a core description: docs/diff.md)",
                    file=item.file,
                    subject=item.owner,
                )
            )
    if problems:
        raise ProblemError(problems, Kind.INVALID)


def _install(engine: Engine, old: Sequence[Loaded]) -> None:
    """Apply *old* to the stand-in as a fresh install, without its raw SQL steps (their effect on rows
    does not change a plan); the registry then records *old* exactly, as the database at OLD does."""
    proposal = propose(engine, old)
    for item in proposal.items:
        ops = tuple(op for op in item.plan.ops if not isinstance(op, planning.RunSql))
        planned = Planned(item.loaded, item.base, planning.Plan(item.plugin_id, ops))
        apply_one(engine, item.loaded, proposal.refs, planned, resolved=item.resolved)


def _offline(item: Proposal.Item, dialect: dialects.Dialect, lint: bool, lint_ignore: Collection[str]) -> Proposal.Item:
    """*item* rendered for *dialect*, its operations uncounted. Backups are named after the preview tag:
    the migration id apply will record is in the database's history, which a diff does not have."""
    preview = dialect.render_plan(item.plan, backup_tag=backup_tag(PLAN_PREVIEW_TAG))
    classified = safety.classify_plan(item.plan)
    reviewed = Reviewed(
        item.planned,
        item.planned.hash(),
        safety.plan_class(classified),
        tuple(Uncounted(c) for c in classified),
    )
    settings = item.loaded.spec.lint
    ignored = {*lint_ignore, *(settings.ignore if settings else ())}
    findings = tuple(squawk.lint(preview, dialect.name, item.plan, ignored)) if lint else None
    return Proposal.Item(reviewed, item.resolved, preview, findings)


def diff(
    old: Sequence[Loaded],
    new: Sequence[Loaded],
    *,
    core: Core = Core(),
    dialect: str = DEFAULT_DIALECT,
    lint: bool = False,
    lint_ignore: Collection[str] = (),
    core_schema: str = "public",
) -> Diff:
    """What ``plan NEW`` says against a database at *old* (nothing applied when empty), rendered for *dialect*."""
    if dialect not in dialects.REGISTRY:
        raise ProblemError.one(
            "ES763", "--dialect", f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}", kind=Kind.USAGE
        )
    target = dialects.REGISTRY[dialect].for_database(core_schema)
    with stand_in(core) as engine:
        _require_core(engine, [*old, *new], core)
        if old:
            _install(engine, old)
        registered = engine.registrations()
        try:
            proposal = propose(engine, new)
        except ProblemError as error:
            raise _offline_problems(error) from None
        wanted = {item.plugin_id for item in proposal.items}
        return Diff(
            dialect,
            tuple(_offline(item, target, lint, lint_ignore) for item in proposal.items),
            {r.plugin_id: r.version for r in registered},
            tuple(r for r in registered if r.plugin_id not in wanted),
        )


def _offline_problems(error: ProblemError) -> ProblemError:
    """*error*, with ES311 (a lower version no database recorded) said as a diff can say it: ES765."""
    if all(p.code != "ES311" for p in error.problems):
        return error
    problems = [
        dataclasses.replace(
            p,
            code="ES765",
            message=f"{p.message.split(';')[0]}: going back to a version is planned only against the database "
            "whose history records it; plan it there with `extschema plan NEW -d URL`",
        )
        if p.code == "ES311"
        else p
        for p in error.problems
    ]
    return ProblemError(problems, error.kind)


def core_types(core: Core) -> dict[str, dict[str, model.FieldType | None]]:
    """The column types of *core*'s tables, as planning reads them (read from the stand-in for SQL)."""
    if core.tables is not None:
        return {table: dict(columns) for table, columns in core.tables.items()}
    if core.sql is None:
        return {}
    with stand_in(core) as engine:
        return {table: columns for (_, table), columns in engine.core_catalog().items()}
