"""Reading ExtensionSchema documents: files and directories, YAML, custom resources.

Loading is the first step of every command and the only one most users run without a database
(``extschema validate``), so it imports neither the engine nor SQLAlchemy. YAML is hostile input:
a duplicate key would silently drop a value, and a few hundred bytes of nested aliases
("billion laughs") can describe 100 M values. Both are refused with a coded, located problem
before anything is constructed from the document.

Every document of the ``extschema.io`` group the operator accepts is read here: ExtensionSchemas
(operator-only fields included, typed in the model) and DatabaseTargets, each checked. A document
of another group (a ConfigMap, a Kustomization in the same directory) is skipped and reported as
:class:`Skipped`; a kind or apiVersion close to extschema's is a typo (ES014), never skipped.
Problems carry the line and column of the YAML node their path names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import difflib
import gc
import json
import math
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from extschema import limits, model, validation
from extschema.model import ExtensionSchema, ExtensionSchemaSpec
from extschema.problems import Kind, Problem, ProblemError
from extschema.validation import messages, structural

MAX_ALIAS_EXPANSION = limits.MAX_ALIAS_EXPANSION

#: Spec fields only the operator acts on (which database, whether to pause); typed in the model.
OPERATOR_SPEC_FIELDS = ("targetRef", "suspend")

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclasses.dataclass(frozen=True)
class Loaded:
    """One ExtensionSchema document and where it came from."""

    file: str
    document: ExtensionSchema
    #: Where each path of the document is written (None for documents not read from YAML text).
    locations: Locations | None = dataclasses.field(default=None, compare=False, repr=False)

    def locate(self, problem: Problem) -> Problem:
        """*problem* (about this document) with its file, line and column."""
        located = problem.located(self.file)
        return self.locations.locate(located) if self.locations is not None else located

    @property
    def spec(self) -> ExtensionSchemaSpec:
        return self.document.spec

    @property
    def owner(self) -> str:
        return self.document.owner


@dataclasses.dataclass(frozen=True)
class Target:
    """One DatabaseTarget document and where it came from."""

    file: str
    document: model.DatabaseTarget

    @property
    def name(self) -> str:
        return self.document.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.document.metadata.namespace


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A document of another group (ConfigMap, Kustomization...): not extschema's, left alone."""

    file: str
    number: int  # 1-based, in its file
    kind: str | None
    api_version: str | None
    line: int | None = None

    def note(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        what = f"kind {self.kind}" if self.kind else "a document without kind"
        group = f" ({self.api_version})" if self.api_version else ""
        return f"{where}: skipped {what}{group}: not an extschema.io document"


@dataclasses.dataclass
class Documents:
    """Everything read from some files: schemas, targets, what was skipped, and every problem."""

    schemas: list[Loaded] = dataclasses.field(default_factory=list)
    targets: list[Target] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    def extend(self, other: Documents) -> None:
        self.schemas.extend(other.schemas)
        self.targets.extend(other.targets)
        self.skipped.extend(other.skipped)
        self.problems.extend(other.problems)
        self.files.extend(other.files)


# --- files -------------------------------------------------------------------------------------


def _yaml_in(directory: Path, recursive: bool) -> list[Path]:
    """The *.yaml/*.yml entries of *directory*, sorted; with *recursive*, of its subdirectories too
    (hidden ones such as .git left out, symbolic links to directories not followed)."""
    if not recursive:
        return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / n for n in names if Path(n).suffix in (".yaml", ".yml"))
    return sorted(found)


def files(paths: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[Problem]]:
    """The files *paths* name (directories: their YAML files), and the problems of paths that name none."""
    return _files(paths, recursive)


def _files(paths: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found: list[Path] = []
            dangling = 0
            for entry in _yaml_in(path, recursive):
                if entry.is_file():
                    found.append(entry)
                elif entry.is_symlink() and not entry.exists():
                    # Silently skipping it would apply a directory with a schema missing.
                    dangling += 1
                    problems.append(
                        Problem("ES005", "", "dangling symbolic link: its target does not exist", file=str(entry))
                    )
            if not found and not dangling:
                nested = not recursive and any(_yaml_in(path, True))
                hint = "; its subdirectories have some: add -R (--recursive)" if nested else ""
                problems.append(Problem("ES004", "", f"directory has no *.yaml or *.yml files{hint}", file=raw))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem("ES005", "", "no such file or directory", file=raw))
    return files, problems


# --- YAML --------------------------------------------------------------------------------------

# libyaml's parser when present: the pure-Python one takes seconds on a 1,000-table document.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YAMLRefused(yaml.YAMLError):
    """A document YAML accepts and extschema does not (duplicate key, alias bomb)."""

    def __init__(self, code: str, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.mark = mark
        self.message = message


class _StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # "<<: *base" keys may be overridden by explicit ones, as YAML says
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                first = seen[key].start_mark.line + 1
                raise _YAMLRefused(
                    "ES006",
                    key_node.start_mark,
                    f"duplicate key {key!r} (first at line {first}); YAML keeps only the last, remove one",
                )
            if isinstance(key, Hashable):
                seen[key] = key_node
        result: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return result

    def construct_exact_float(self, node: yaml.ScalarNode) -> float:
        """A float, refused when it cannot hold the number as written: a Decimal default or bound
        would otherwise change silently (0.12345678901234567891 reads as 0.12345678901234568)."""
        value: float = self.construct_yaml_float(node)
        written = str(node.value).replace("_", "")
        if math.isfinite(value) and ":" not in written:  # YAML 1.1 also has base-60 floats (1:30.5)
            try:
                exact = decimal.Decimal(written) == decimal.Decimal(repr(value))
            except decimal.InvalidOperation:
                exact = True  # not a plain decimal spelling: nothing more to compare
            if not exact:
                raise _YAMLRefused(
                    "ES008",
                    node.start_mark,
                    f"the number {written} has more digits than are kept: it would be read as {value!r}; "
                    "write it with at most 17 significant digits",
                )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_exact_float)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand to more than :data:`MAX_ALIAS_EXPANSION` values.

    Works on the composed graph, where an alias is the same node object reached twice: the
    expanded size of each node is computed once (iteratively, so depth costs no recursion), so
    checking a billion-laughs file takes microseconds. A recursive alias counts once; the model
    then reports the field it loops through.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if children_done:
            in_progress.discard(ident)
            sizes[ident] = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
            continue
        if ident in sizes or ident in in_progress:
            continue
        in_progress.add(ident)
        distinct += 1
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    expanded = sizes[id(root)]
    if expanded - distinct > MAX_ALIAS_EXPANSION:
        raise _YAMLRefused(
            "ES007",
            root.start_mark,
            f"aliases expand this document to {expanded:,} values (more than {MAX_ALIAS_EXPANSION:,} "
            "added by aliases); write the values out or use fewer nested aliases",
        )


def _children(node: yaml.Node) -> Iterable[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return ()


def _documents(text: str) -> tuple[list[object], list[yaml.Node]]:
    """Compose each document, check it, then construct it (libyaml speed for the parsing); the
    composed nodes are kept to locate problems."""
    loader = _StrictLoader(text)
    aliases = "*" in text  # an alias is written *name: without one, nothing can expand
    try:
        documents: list[object] = []
        nodes: list[yaml.Node] = []
        while loader.check_node():
            node = loader.get_node()
            if aliases:
                _check_expansion(node)
            documents.append(loader.construct_document(node))
            nodes.append(node)
        return documents, nodes
    finally:
        loader.dispose()


# --- locations ---------------------------------------------------------------------------------


class Locations:
    """Path (``spec.tables[0].name``, as problems say it) -> line and column (1-based) of its YAML."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root
        self._index: dict[str, tuple[int, int]] | None = None

    def _build(self) -> dict[str, tuple[int, int]]:
        index: dict[str, tuple[int, int]] = {}
        if self._root is None:
            return index
        index[""] = (self._root.start_mark.line + 1, self._root.start_mark.column + 1)
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, str]] = [(self._root, "")]
        while stack:
            node, path = stack.pop()
            if id(node) in seen:  # an alias reached again: one location is enough
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                        continue
                    child = messages.render_path(path, [str(key.value)])
                    index.setdefault(child, (key.start_mark.line + 1, key.start_mark.column + 1))
                    stack.append((value, child))
            elif isinstance(node, yaml.SequenceNode):
                for number, item in enumerate(node.value):
                    child = f"{path}[{number}]"
                    index.setdefault(child, (item.start_mark.line + 1, item.start_mark.column + 1))
                    stack.append((item, child))
        return index

    def find(self, path: str) -> tuple[int, int] | None:
        """Where *path* is written, else where its nearest written parent is."""
        if self._index is None:
            self._index = self._build()
        while True:
            found = self._index.get(path)
            if found is not None or not path:
                return found
            cut = max(path.rfind("."), path.rfind("["))
            path = path[: max(cut, 0)]

    def locate(self, problem: Problem) -> Problem:
        if problem.line is not None:
            return problem
        found = self.find(problem.path)
        return problem.at(*found) if found else problem


def _at_mark(problem: Problem, mark: yaml.Mark | None) -> Problem:
    return problem.at(mark.line + 1, mark.column + 1) if mark is not None else problem


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading a schema allocates many small objects and frees almost none: the garbage collector's
    passes over them find nothing and cost about a third of loading a large schema."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def read_text(text: str, file: str) -> Documents:
    """Every extschema.io document in a YAML stream, validated; documents of other groups skipped."""
    with _collector_paused():
        return _read_text(text, file)


def _read_text(text: str, file: str) -> Documents:
    try:
        documents, nodes = _documents(text)
    except _YAMLRefused as error:
        problem = Problem(error.code, "", error.message, file=file)
        return Documents(problems=[_at_mark(problem, error.mark)], files=[file])
    except yaml.reader.ReaderError as error:  # a character YAML refuses: its position, not a mark
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        reason = f"unacceptable character #x{error.character:04x}: {error.reason}"
        fix = f"remove it, or write it as an escape (\\u{error.character:04x}) in a double-quoted string"
        problem = Problem("ES001", "", f"{reason}; {fix}", file=file)
        return Documents(problems=[problem.at(line, column)], files=[file])
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        problem = Problem("ES001", "", f"{reason}; fix the YAML syntax", file=file)
        return Documents(problems=[_at_mark(problem, mark)], files=[file])
    except (ValueError, RecursionError) as error:  # e.g. an integer of more than 4,300 digits
        return Documents(problems=[Problem("ES001", "", f"cannot read a value: {error}", file=file)], files=[file])
    found = _parse(documents, file, nodes)
    found.files.append(file)
    return found


def parse_text(text: str, file: str) -> tuple[list[Loaded], list[Problem]]:
    """Every ExtensionSchema document in a YAML stream, validated; other kinds are skipped."""
    found = read_text(text, file)
    return found.schemas, found.problems


# --- documents ---------------------------------------------------------------------------------


def parse_documents(documents: Sequence[object], file: str) -> tuple[list[Loaded], list[Problem]]:
    """Validate parsed documents: structure first, then every semantic rule."""
    found = _parse(documents, file, None)
    return found.schemas, found.problems


def _close(value: str, choices: Sequence[str], cutoff: float = 0.8) -> str | None:
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[match[0]] if match else None


def _kind_problem(data: dict[Any, Any], prefix: str) -> Problem | None:
    """ES014 for a document that looks meant for extschema but names no kind of it (a typo);
    None for a document of another group, which is skipped."""
    kind, api = data.get("kind"), data.get("apiVersion")
    group = api.split("/", 1)[0] if isinstance(api, str) else ""
    ours = group == model.API_GROUP or _close(group, [model.API_GROUP]) is not None
    choices = ", ".join(model.KINDS)
    if isinstance(kind, str):
        close = _close(kind, model.KINDS)
        if close is None and not ours:
            return None
        hint = f": did you mean {close}?" if close else f"; the kinds of {model.API_GROUP} are {choices}"
        return Problem("ES014", "kind", f"{prefix}kind {kind!r} is not an extschema kind{hint}")
    spec = data.get("spec")
    if "pluginId" in data:  # a bare spec: the fields the document holds under spec
        return Problem(
            "ES014",
            "kind",
            f"{prefix}the document is a bare spec (pluginId at the top): write it as the resource kubectl applies, "
            f"apiVersion: {model.API_VERSION}, kind: {model.KIND}, metadata: {{name: ...}}, and these fields under "
            "spec:",
        )
    if ours or (isinstance(spec, dict) and "pluginId" in spec):
        add = f"add kind: {model.KIND} (or {model.TARGET_KIND})"
        return Problem("ES014", "kind", f"{prefix}the document has no kind: {add}")
    return None


def _parse(documents: Sequence[object], file: str, nodes: Sequence[yaml.Node] | None) -> Documents:
    found = Documents()
    for number, data in enumerate(documents):
        if data is None:
            continue
        where = Locations(nodes[number] if nodes is not None else None)
        prefix = f"[document {number + 1}] " if len(documents) > 1 else ""
        if not isinstance(data, dict):
            problem = Problem(
                "ES002",
                "",
                f"{prefix}document is a {type(data).__name__}, expected a mapping "
                "with apiVersion, kind, metadata and spec",
                file=file,
            )
            found.problems.append(where.locate(problem))
            continue
        kind = data.get("kind")
        if kind not in model.KINDS:
            typo = _kind_problem(data, prefix)
            if typo is not None:
                found.problems.append(where.locate(typo.located(file)))
            else:
                line = where.find("")
                api = data.get("apiVersion")
                found.skipped.append(
                    Skipped(
                        file,
                        number + 1,
                        str(kind) if kind is not None else None,
                        str(api) if api is not None else None,
                        line[0] if line else None,
                    )
                )
            continue
        if data.get("apiVersion") != model.API_VERSION:
            api = data.get("apiVersion")
            problem = Problem(
                "ES003",
                "apiVersion",
                f"{prefix}apiVersion {api!r} is not supported for kind {kind}; use {model.API_VERSION}",
                file=file,
            )
            found.problems.append(where.locate(problem))
            continue
        if kind == model.TARGET_KIND:
            target, problems = _parse_target(data)
            if target is not None:
                found.targets.append(Target(file, target))
        else:
            document, problems = _parse_schema(data)
            if document is not None:
                found.schemas.append(Loaded(file, document, where if nodes is not None else None))
        found.problems.extend(where.locate(p.located(file)) for p in problems)
    return found


_D = TypeVar("_D", model.ExtensionSchema, model.DatabaseTarget)


def _checked(
    data: dict[Any, Any], parse: Callable[[Any], _D], rules: Callable[[_D], list[Problem]]
) -> tuple[_D | None, list[Problem]]:
    """The document, or every problem: structural ones, and the rules the rest still lets check.

    When the structural errors are all in values that may be left out (an unknown key, a misspelt
    choice with a default), they are left out and the rules run on the rest, so one pass reports
    everything; rule problems at or under a left-out path are dropped (they would be about the default).
    """
    try:
        document = parse(data)
    except model.ValidationError as error:
        problems = validation.structural_problems(error)
        pruned = structural.prunable(error)
        rest = _without(data, pruned) if pruned is not None else None
        try:
            partial = parse(rest) if rest is not None else None
        except model.ValidationError:
            partial = None
        if partial is None or pruned is None:
            return None, problems
        skipped = {messages.render_path("", parts) for parts in pruned} | {p.path for p in problems}
        problems += [p for p in rules(partial) if not any(_under(p.path, s) for s in skipped)]
        return None, problems
    found = rules(document)
    return (None, found) if found else (document, [])


def _parse_schema(data: dict[Any, Any]) -> tuple[model.ExtensionSchema | None, list[Problem]]:
    return _checked(
        data,
        model.parse_document,
        lambda d: validation.validate_metadata(d.metadata) + validation.validate(d.spec),
    )


def _parse_target(data: dict[Any, Any]) -> tuple[model.DatabaseTarget | None, list[Problem]]:
    return _checked(
        data,
        model.parse_target_document,
        lambda d: validation.validate_metadata(d.metadata) + validation.check_target(d.spec),
    )


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _without(data: dict[Any, Any], paths: Sequence[Sequence[str | int]]) -> dict[Any, Any] | None:
    """A copy of *data* without the values at *paths*; None when a path does not lead to a mapping key.

    Only the containers along each path are copied: the rest is shared, so a deeply nested value costs no
    recursion (a deep copy of one 500 levels deep raised RecursionError)."""
    rest = dict(data)
    for parts in paths:
        node: Any = rest
        for part in parts[:-1]:
            try:
                child = node[part]
            except (KeyError, IndexError, TypeError):
                return None
            if isinstance(child, dict | list):
                child = child.copy()
                node[part] = child
            node = child
        if not isinstance(node, dict) or parts[-1] not in node:
            return None
        del node[parts[-1]]
    return rest


def read(paths: Sequence[str], recursive: bool = False) -> Documents:
    """Read every file of *paths* (directories: their *.yaml/*.yml, with *recursive* their subdirectories' too)."""
    files, problems = _files(paths, recursive)
    found = Documents(problems=problems)
    for file in files:
        try:
            if file.stat().st_size > limits.MAX_DOCUMENT_BYTES:
                found.problems.append(
                    Problem("ES005", "", f"file is larger than {limits.MAX_DOCUMENT_BYTES} bytes", file=str(file))
                )
                continue
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            found.problems.append(Problem("ES005", "", f"cannot read: {error}", file=str(file)))
            continue
        found.extend(read_text(text, str(file)))
    return found


def check(found: Documents, paths: Sequence[str], each_file: bool = False) -> list[Problem]:
    """The problems of documents read together: none found, a plugin or a target declared twice.

    *each_file*: every file is a set of its own (``validate --each-file``): declared twice only within a file.
    """
    problems = list(found.problems)
    if not found.schemas and not found.targets and not problems:
        problems.append(
            Problem(
                "ES004",
                "",
                f"no {model.KIND} or {model.TARGET_KIND} document (apiVersion {model.API_VERSION}) found",
                file=", ".join(paths),
            )
        )
    for file in dict.fromkeys(found.files) if each_file else [None]:
        problems.extend(_duplicates([s for s in found.schemas if file in (None, s.file)]))
        problems.extend(_duplicate_targets([t for t in found.targets if file in (None, t.file)]))
    return problems


def load(paths: Sequence[str], recursive: bool = False) -> list[Loaded]:
    """Read and validate every ExtensionSchema in *paths*; raise with all problems at once."""
    found = read(paths, recursive)
    problems = check(found, paths)
    if not found.schemas and not problems:
        problems.append(
            Problem(
                "ES004", "", f"no {model.KIND} document (apiVersion {model.API_VERSION}) found", file=", ".join(paths)
            )
        )
    if problems:
        raise ProblemError(problems, kind=Kind.INVALID)
    return found.schemas


def target_warnings(found: Documents) -> list[Problem]:
    """ES018 for each schema whose spec.targetRef names a DatabaseTarget not among the documents read
    (it may live elsewhere: a warning, not an error)."""
    given = {(t.namespace, t.name) for t in found.targets}
    warnings = []
    for item in found.schemas:
        ref = item.spec.target_ref
        if ref is not None and (item.document.metadata.namespace, ref.name) not in given:
            warnings.append(
                item.locate(
                    Problem(
                        "ES018",
                        "spec.targetRef.name",
                        f"DatabaseTarget {ref.name!r} is not among the files given; the operator needs it in the same "
                        "namespace (add its file to check it too)",
                    )
                )
            )
    return warnings


def one_target(schemas: Sequence[Loaded]) -> list[Problem]:
    """ES019 when *schemas* go to different databases in a cluster (their spec.targetRef differ): one run
    of plan or apply has one --database."""
    by_target: dict[str, list[str]] = {}
    for item in schemas:
        ref = item.spec.target_ref
        name = f"DatabaseTarget {ref.name}" if ref is not None else "the operator's default database"
        by_target.setdefault(name, []).append(item.spec.plugin_id)
    if len(by_target) < 2:
        return []
    groups = "; ".join(f"{name}: {', '.join(ids)}" for name, ids in by_target.items())
    return [
        Problem(
            "ES019",
            "spec.targetRef",
            f"these schemas go to different databases ({groups}); run once per database, each with its --database",
        )
    ]


def _duplicates(loaded: Sequence[Loaded]) -> Iterable[Problem]:
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for item in loaded:
        key = (item.owner, item.spec.plugin_id)
        if key in seen:
            other_file, other_version = seen[key]
            hint = "keep one document"
            if other_version != item.spec.version:  # versions of one plugin, like examples/evolution/
                hint = (
                    f"versions {other_version} and {item.spec.version} of one plugin cannot be applied together; "
                    "keep one, or check each file on its own: extschema validate --each-file PATH"
                )
            yield item.locate(
                Problem(
                    "ES104",
                    "metadata.name",
                    f"{item.owner!r} declares plugin {item.spec.plugin_id!r} twice (also in {other_file}); {hint}",
                )
            )
        seen[key] = (item.file, item.spec.version)


def _duplicate_targets(targets: Sequence[Target]) -> Iterable[Problem]:
    seen: dict[tuple[str | None, str], str] = {}
    for target in targets:
        key = (target.namespace, target.name)
        if key in seen:
            yield Problem(
                "ES104",
                "metadata.name",
                f"DatabaseTarget {target.name!r} is declared twice (also in {seen[key]}); keep one document",
                file=target.file,
            )
        seen[key] = target.file


def _require_recordable(spec: object) -> None:
    """ES009 for a spec too large to keep in one Kubernetes object with its status (checked before any work)."""
    size = len(json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limits.MAX_RESOURCE_SPEC_BYTES:
        problem = Problem(
            "ES009",
            "spec",
            f"the spec is {size:,} bytes as JSON, more than the {limits.MAX_RESOURCE_SPEC_BYTES:,} an ExtensionSchema "
            "may hold (etcd stores at most 1.5 MiB per object, with its metadata and status); split the plugin into "
            "several plugins (dependsOn), or shorten descriptions and localization",
        )
        raise ProblemError([problem], kind=Kind.INVALID)


def from_object(body: dict[str, object], source: str) -> Loaded:
    """Validate a custom resource read from the API server (the operator's load step)."""
    _require_recordable(body.get("spec"))
    data = {key: body.get(key) for key in ("apiVersion", "kind", "metadata", "spec")}
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        data["metadata"] = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    loaded, problems = parse_documents([data], source)
    if problems:
        raise ProblemError(problems, kind=Kind.INVALID)
    return loaded[0]
