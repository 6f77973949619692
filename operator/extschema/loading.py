"""Reading ExtensionSchema documents: files and directories, YAML, custom resources.

Loading is the first step of every command and the only one most users run without a database
(``extschema validate``), so it imports neither the engine nor SQLAlchemy. YAML is hostile input:
a duplicate key would silently drop a value, and a few hundred bytes of nested aliases
("billion laughs") can describe 100 M values. Both are refused with a coded, located problem
before anything is constructed from the document.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import math
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from extschema import limits, model, validation
from extschema.model import ExtensionSchema, ExtensionSchemaSpec
from extschema.problems import Kind, Problem, ProblemError

MAX_ALIAS_EXPANSION = limits.MAX_ALIAS_EXPANSION

#: Spec fields only the operator reads (which database, whether to pause).
OPERATOR_SPEC_FIELDS = ("targetRef", "suspend")

_MERGE_TAG = "tag:yaml.org,2002:merge"


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


# --- files -------------------------------------------------------------------------------------


def _files(paths: Sequence[str]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found: list[Path] = []
            dangling = 0
            for entry in sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")):
                if entry.is_file():
                    found.append(entry)
                elif entry.is_symlink() and not entry.exists():
                    # Silently skipping it would apply a directory with a schema missing.
                    dangling += 1
                    problems.append(
                        Problem("ES005", "", "dangling symbolic link: its target does not exist", file=str(entry))
                    )
            if not found and not dangling:
                problems.append(Problem("ES004", "", "directory has no *.yaml or *.yml files", file=raw))
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


def _documents(text: str) -> list[object]:
    """Compose each document, check it, then construct it (libyaml speed for the parsing)."""
    loader = _StrictLoader(text)
    try:
        documents: list[object] = []
        while loader.check_node():
            node = loader.get_node()
            _check_expansion(node)
            documents.append(loader.construct_document(node))
        return documents
    finally:
        loader.dispose()


def parse_text(text: str, file: str) -> tuple[list[Loaded], list[Problem]]:
    """Every ExtensionSchema document in a YAML stream, validated; other kinds are skipped."""
    try:
        documents = _documents(text)
    except _YAMLRefused as error:
        where = f"line {error.mark.line + 1}, column {error.mark.column + 1}: " if error.mark is not None else ""
        return [], [Problem(error.code, "", f"{where}{error.message}", file=file)]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        return [], [Problem("ES001", "", f"{where}{reason}; fix the YAML syntax", file=file)]
    except (ValueError, RecursionError) as error:  # e.g. an integer of more than 4,300 digits
        return [], [Problem("ES001", "", f"cannot read a value: {error}", file=file)]
    return parse_documents(documents, file)


# --- documents ---------------------------------------------------------------------------------


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
            if file.stat().st_size > limits.MAX_DOCUMENT_BYTES:
                problems.append(
                    Problem("ES005", "", f"file is larger than {limits.MAX_DOCUMENT_BYTES} bytes", file=str(file))
                )
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
        raise ProblemError(problems, kind=Kind.INVALID)
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
    spec = data.get("spec")
    if isinstance(spec, dict):
        # Operator-only fields are not part of the engine's spec.
        data["spec"] = {k: v for k, v in spec.items() if k not in OPERATOR_SPEC_FIELDS}
    loaded, problems = parse_documents([data], source)
    if problems:
        raise ProblemError(problems, kind=Kind.INVALID)
    return loaded[0]
