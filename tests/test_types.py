"""`extschema types`: emitted Python is the runtime models as source; TypeScript and JSON Schema check out."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema_rs
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extschema import loading, planning, rowmodels, typegen
from extschema.planning import Resolved
from tests import rowvalues
from tests.conftest import EXAMPLES, REPO
from tests.helpers import load_core, run, write_schema

EXAMPLE_FILES = [*sorted(EXAMPLES.glob("*.yaml")), EXAMPLES / "evolution" / "v2.yaml"]
TSC = REPO / "tests" / "js" / "node_modules" / ".bin" / "tsc"


def _resolved(*paths: Path) -> list[Resolved]:
    return [planning.shape(item.spec) for item in loading.load([str(p) for p in paths])]


def _cases() -> dict[str, list[Resolved]]:
    """Each example on its own, all of them together, and the spec with every type and rule."""
    cases = {path.stem.replace("-", "_"): _resolved(path) for path in EXAMPLE_FILES}
    cases["all_examples"] = _resolved(*(p for p in EXAMPLE_FILES if p.parent == EXAMPLES))
    cases["every_rule"] = [rowvalues.resolved()]
    return cases


@pytest.fixture
def emitted(tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    """Every case's emitted Python module, imported."""
    modules: dict[str, ModuleType] = {}
    for name, resolved in _cases().items():
        path = tmp_path / f"rows_{name}.py"
        path.write_text(typegen.emit("python", resolved))
        spec = importlib.util.spec_from_file_location(f"rows_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # pydantic resolves the annotations in the module's namespace
        spec.loader.exec_module(module)
        modules[name] = module
    yield modules
    for module in modules.values():
        sys.modules.pop(module.__name__, None)


def _runtime(resolved: Resolved) -> dict[str, rowmodels.TableModels]:
    return rowmodels.models_for(resolved, resolved.plugin_id)


def test_emitted_python_models_have_the_runtime_models_json_schema(emitted: dict[str, ModuleType]) -> None:
    compared = 0
    for name, resolved in _cases().items():
        module = emitted[name]
        for schema in resolved:
            for table in _runtime(schema).values():
                for runtime in (table.read, table.create, table.patch):
                    source = getattr(module, runtime.__name__)
                    for mode in ("validation", "serialization"):
                        assert source.model_json_schema(mode=mode) == runtime.model_json_schema(mode=mode), (
                            name,
                            runtime.__name__,
                            mode,
                        )
                    compared += 1
    assert compared >= 3 * 8


@pytest.mark.parametrize("column", rowvalues.columns())
def test_emitted_python_models_validate_like_the_runtime_ones(emitted: dict[str, ModuleType], column: str) -> None:
    runtime = _runtime(rowvalues.resolved())[rowvalues.TABLE]
    module = emitted["every_rule"]

    @settings(max_examples=80, deadline=None, derandomize=True, database=None)
    @given(value=rowvalues.values_for(column))
    def check(value: Any) -> None:
        body = json.dumps({column: value})
        for model in (runtime.create, runtime.patch):
            answers = []
            for candidate in (model, getattr(module, model.__name__)):
                try:
                    answers.append(candidate.model_validate_json(body).model_dump(mode="json"))
                except pydantic.ValidationError as error:
                    answers.append([(e["loc"], e["type"], e["msg"]) for e in error.errors()])
            assert answers[0] == answers[1], (model.__name__, value)

    check()


def test_mypy_strict_accepts_the_emitted_python(tmp_path: Path) -> None:
    files = []
    for name, resolved in _cases().items():
        path = tmp_path / f"rows_{name}.py"
        path.write_text(typegen.emit("python", resolved))
        files.append(str(path))
    use = tmp_path / "use_rows.py"
    use.write_text(
        textwrap.dedent(
            """
            from decimal import Decimal

            from rows_custom_reports import CustomreportsReport, CustomreportsReportCreate, CustomreportsReportStatus

            made = CustomreportsReportCreate.model_validate({"title": "t", "score": "1.50"})
            status: CustomreportsReportStatus = "draft"
            score: Decimal | None = made.score
            title: str = made.title
            row = CustomreportsReport.model_validate({"id": 1, "title": "t", "status": status, "score": None,
                                                      "code": None, "published_at": None, "work_order_id": None})
            ident: int = row.id
            wrong: int = row.title  # type: ignore[assignment]
            """
        )
    )
    outcome = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", "", "--no-incremental", "--warn-unused-ignores",
         *files, str(use)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


def _tsc(directory: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None:  # pragma: no cover - CI has node
        pytest.skip("node is not installed (CI installs it: .ci/install-deps)")
    assert TSC.exists(), "run `npm ci` in tests/js (.ci/install-deps does)"
    files = sorted(str(p) for p in directory.glob("*.ts"))
    return subprocess.run(
        [str(TSC), "--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
         *files],
        cwd=directory, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


TS_USE = """
import type {
  CustomreportsReport, CustomreportsReportCreate, CustomreportsReportPatch, CustomreportsReportStatus,
} from "./custom_reports";
import { CustomreportsReportStatusLabels, CustomreportsReportStatusValues } from "./custom_reports";
import type { KbArticleCommentCreate } from "./knowledge_base";

const ok: CustomreportsReportCreate = { title: "t", status: "published", score: "12.50", work_order_id: 1 };
const asNumber: CustomreportsReportCreate = { title: "t", score: 12.5 };
const patch: CustomreportsReportPatch = { code: null };
const status: CustomreportsReportStatus = CustomreportsReportStatusValues[0];
const label: string | undefined = CustomreportsReportStatusLabels["de"]?.draft;
const link: KbArticleCommentCreate = { article_id: 1, comment_id: 2 };
function readScore(row: CustomreportsReport): string | null { return row.score; }

// @ts-expect-error title is required on Create
const missing: CustomreportsReportCreate = { status: "draft" };
// @ts-expect-error not a value of the enum
const bogus: CustomreportsReportCreate = { title: "t", status: "bogus" };
// @ts-expect-error title is NOT NULL: Patch may omit it, not null it
const nulled: CustomreportsReportPatch = { title: null };
// @ts-expect-error unknown field
const extra: CustomreportsReportCreate = { title: "t", nope: 1 };
// @ts-expect-error a Read score is a string (exact decimal), not a number
const score: number = readScore({} as CustomreportsReport);
// @ts-expect-error id is a number
const wrongId: CustomreportsReport["id"] = "1";

export { ok, asNumber, patch, status, label, link, missing, bogus, nulled, extra, score, wrongId };
"""


def test_tsc_strict_accepts_the_emitted_typescript_and_rejects_wrong_types(tmp_path: Path) -> None:
    for name, resolved in _cases().items():
        (tmp_path / f"{name}.ts").write_text(typegen.emit("typescript", resolved))
    (tmp_path / "use.ts").write_text(TS_USE)
    outcome = _tsc(tmp_path)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


def test_tsc_fails_when_an_expected_error_does_not_happen(tmp_path: Path) -> None:
    # The @ts-expect-error lines above prove something only if tsc reports an unused one.
    (tmp_path / "custom_reports.ts").write_text(typegen.emit("typescript", _cases()["custom_reports"]))
    (tmp_path / "use.ts").write_text(
        'import type { CustomreportsReportCreate } from "./custom_reports";\n'
        '// @ts-expect-error\nconst fine: CustomreportsReportCreate = { title: "t" };\nexport { fine };\n'
    )
    outcome = _tsc(tmp_path)
    assert outcome.returncode != 0 and "TS2578" in outcome.stdout, outcome.stdout


def test_json_schema_is_one_2020_12_document_of_the_runtime_models() -> None:
    resolved = _cases()["all_examples"]
    document = json.loads(typegen.emit("jsonschema", resolved))
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema_rs.meta.is_valid(document)
    expected = {m.__name__ for r in resolved for t in _runtime(r).values() for m in (t.read, t.create, t.patch)}
    assert set(document["$defs"]) == expected | {"JsonValue"}  # Json fields refer to it
    report = _runtime(next(r for r in resolved if r.plugin_id == "customreports"))["report"]
    assert document["$defs"]["CustomreportsReportCreate"] == report.create.model_json_schema()
    assert document["$defs"]["CustomreportsReport"] == report.read.model_json_schema(mode="serialization")

    def valid(name: str, instance: Any) -> bool:
        return bool(jsonschema_rs.validator_for({**document, "$ref": f"#/$defs/{name}"}).is_valid(instance))

    assert valid("CustomreportsReportCreate", {"title": "t", "score": "1.5", "code": "ABC-1"})
    assert not valid("CustomreportsReportCreate", {"status": "draft"})
    assert not valid("CustomreportsReportCreate", {"title": "t", "status": "bogus"})
    assert not valid("CustomreportsReportCreate", {"title": "t", "code": "abc"})
    assert not valid("CustomreportsReportPatch", {"nope": 1})


def test_cli_types_from_files_prints_the_emitted_text() -> None:
    path = EXAMPLES / "custom-reports.yaml"
    for lang in typegen.LANGS:
        outcome = run("types", "--lang", lang, str(path))
        assert outcome.exit_code == 0, outcome.stderr
        assert outcome.stdout == typegen.emit(lang, _resolved(path))
    outcome = run("types", "--lang", "python", str(EXAMPLES))
    assert "class KbArticleComment(BaseModel):" in outcome.stdout


def test_cli_types_reads_the_active_plugins_of_a_database(db_url: str) -> None:
    load_core(db_url)
    for name in ("custom-reports.yaml", "comments.yaml", "knowledge-base.yaml"):
        assert run("apply", str(EXAMPLES / name), "-d", db_url).exit_code == 0
    outcome = run("types", "--lang", "typescript", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.startswith("// Row models of extschema plugins: comments, customreports, kb.")
    assert "export interface KbArticleCommentCreate {" in outcome.stdout
    # The same as the files, resolved against the database (core.work_orders.id is a BigInt there too).
    files = run("types", "--lang", "typescript", str(EXAMPLES / "comments.yaml"), str(EXAMPLES / "custom-reports.yaml"),
                str(EXAMPLES / "knowledge-base.yaml"), "-d", db_url)  # fmt: skip
    assert files.stdout == outcome.stdout


def test_cli_types_without_plugins_says_what_to_do(sqlite_url: str) -> None:
    outcome = run("types", "--lang", "python", "-d", sqlite_url)
    assert outcome.exit_code == 2
    assert "ES740" in outcome.stderr and "apply a schema first" in outcome.stderr


def test_colliding_type_names_are_refused(tmp_path: Path) -> None:
    one = write_schema(
        tmp_path, "one", "pluginId: a\nversion: 1.0.0\ntables: [{name: b_c, fields: [{name: x, type: Int}]}]"
    )
    two = write_schema(
        tmp_path, "two", "pluginId: a_b\nversion: 1.0.0\ntables: [{name: c, fields: [{name: x, type: Int}]}]"
    )
    outcome = run("types", "--lang", "typescript", str(one), str(two))
    assert outcome.exit_code == 1
    assert "ES741" in outcome.stderr and "ABC" in outcome.stderr and "a.b_c" in outcome.stderr


# --- docs/types.md, as written ------------------------------------------------------------------

BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOC_DATABASE = "postgresql://app@db.internal/app"


def test_the_types_page_runs_as_written(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```sh line runs (its output redirected as written), every titled block is what the files hold,
    every ```python block runs and prints the ```text block after it; on both databases."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    database = db_url
    load_core(database)
    assert run("apply", str(EXAMPLES), "-d", database).exit_code == 0
    printed: str | None = None
    checked: list[str] = []
    for language, info, body in BLOCK.findall((REPO / "docs" / "types.md").read_text()):
        title = re.fullmatch(r'\s*title="([^"]+)"\s*', info)
        if language == "sh":
            for line in filter(None, body.splitlines()):
                words = shlex.split(line.replace(DOC_DATABASE, database))
                assert words[0] == "extschema" and words[-2] == ">", line
                outcome = run(*words[1:-2])
                assert outcome.exit_code == 0, (line, outcome.stderr)
                (tmp_path / words[-1]).write_text(outcome.stdout)
                checked.append(words[-1])
        elif language == "python":
            assert title, "a python block names its file"
            (tmp_path / title.group(1)).write_text(body)
            done = subprocess.run(
                [sys.executable, title.group(1)], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
            )
            assert done.returncode == 0, done.stderr
            printed = done.stdout
        elif language == "text" and printed is not None:
            assert body == printed
            printed = None
            checked.append("printed")
        elif title and language == "json":
            file, _, pointer = title.group(1).partition("#")
            found = json.loads((tmp_path / file).read_text())
            for part in pointer.strip("/").split("/"):
                found = found[part]
            assert found == json.loads(body)
            checked.append(title.group(1))
        elif title:
            assert (tmp_path / title.group(1)).read_text() == body, title.group(1)
            checked.append(title.group(1))
    assert {"reports.ts", "reports_models.py", "reports.schema.json", "plugins.ts", "printed"} <= set(checked)
    assert "export interface KbArticleCommentCreate {" in (tmp_path / "plugins.ts").read_text()


# --- generated specs ------------------------------------------------------------------------------

_AWKWARD = st.lists(
    st.sampled_from(["a", "Z", " ", "'", '"', "\\", "*/", "\n", "é", "😀", "${x}", "`"]), min_size=1, max_size=6
).map("".join)
_PATTERNS = ["^[A-Z]{3}-[0-9]+$", "a.c$", "^(ab|cd)+$", "[]x]", "^\\.\\*$", "^[^'\"]*$"]


@st.composite
def _field(draw: st.DrawFn, name: str, enums: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from([*typegen_types(), *(["Enum"] if enums else [])]))
    field: dict[str, Any] = {"name": name, "type": kind, "required": draw(st.booleans())}
    if draw(st.booleans()):
        field["description"] = draw(_AWKWARD)
    rules: dict[str, Any] = {}
    if kind in ("String", "Text"):
        low = draw(st.integers(0, 5))
        rules = {"minLength": low or None, "maxLength": draw(st.integers(max(low, 1), 300)),
                 "pattern": draw(st.none() | st.sampled_from(_PATTERNS))}  # fmt: skip
    elif kind in ("Int", "BigInt", "Float", "Decimal"):
        low = draw(st.integers(-1000, 1000) | st.floats(-1000, 1000).map(lambda f: round(f, 1)))
        rules = {"min": draw(st.none() | st.just(low)), "max": draw(st.none() | st.just(low + 500))}
        if kind == "Decimal":
            field["precision"] = draw(st.integers(4, 30))
            field["scale"] = draw(st.integers(0, 3))
    elif kind == "Enum":
        field["enum"] = draw(st.sampled_from(enums))
    rules = {k: v for k, v in rules.items() if v is not None}
    if rules:
        field["validation"] = rules
    if field["required"] and draw(st.booleans()) and kind == "Boolean":
        field["default"] = draw(st.booleans())
    return field


def typegen_types() -> list[str]:
    return ["String", "Text", "Int", "BigInt", "Float", "Decimal", "Boolean", "Date", "DateTime", "Json", "Uuid"]


@st.composite
def _specs(draw: st.DrawFn) -> dict[str, Any]:
    enums = [
        {"name": f"e{i}", "values": draw(st.lists(_AWKWARD, min_size=1, max_size=4, unique=True))}
        for i in range(draw(st.integers(0, 2)))
    ]
    names = [e["name"] for e in enums]
    tables = [
        {"name": f"t{i}", "description": draw(st.none() | _AWKWARD),
         "fields": [draw(_field(f"f{j}", names)) for j in range(draw(st.integers(0, 5)))]}
        for i in range(draw(st.integers(1, 3)))
    ]  # fmt: skip
    relationships = []
    if len(tables) > 1 and draw(st.booleans()):
        relationships.append(
            {"source": "t0", "target": "t1", "type": draw(st.sampled_from(["ManyToOne", "ManyToMany"]))}
        )
    return {"pluginId": f"gen_{draw(st.integers(0, 99))}", "version": "1.0.0", "enums": enums, "tables": tables,
            "relationships": relationships}  # fmt: skip


def test_generated_specs_emit_python_equal_to_the_runtime_models_and_typescript_tsc_accepts(tmp_path: Path) -> None:
    emitted_ts: list[str] = []

    @settings(max_examples=25, deadline=None, derandomize=True, database=None)
    @given(data=_specs())
    def check(data: dict[str, Any]) -> None:
        document = {"apiVersion": "extschema.io/v1alpha1", "kind": "ExtensionSchema", "metadata": {"name": "gen"},
                    "spec": data}  # fmt: skip
        loaded, problems = loading.parse_documents([document], "generated")
        assert not problems, [p.render() for p in problems]
        resolved = planning.shape(loaded[0].spec)
        module = ModuleType("generated_rows")
        sys.modules["generated_rows"] = module
        try:
            exec(compile(typegen.emit("python", [resolved]), "generated_rows.py", "exec"), module.__dict__)
            for table in _runtime(resolved).values():
                for runtime in (table.read, table.create, table.patch):
                    source = module.__dict__[runtime.__name__]
                    for mode in ("validation", "serialization"):
                        assert source.model_json_schema(mode=mode) == runtime.model_json_schema(mode=mode)
        finally:
            sys.modules.pop("generated_rows", None)
        emitted_ts.append(typegen.emit("typescript", [resolved]))

    check()
    for number, source in enumerate(emitted_ts):
        (tmp_path / f"gen_{number}.ts").write_text(source)
    outcome = _tsc(tmp_path)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


def test_types_from_files_stays_light() -> None:
    """Like validate: no SQLAlchemy, psycopg or kopf for files (tests/test_startup.py's probe)."""
    from tests.test_startup import _loaded_by

    code, loaded = _loaded_by("types", "--lang", "typescript", str(EXAMPLES))
    assert code == 0
    assert loaded == "[]"
