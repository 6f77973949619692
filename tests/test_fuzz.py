"""The fuzz suite (docs/fuzz.md): generated ExtensionSchema documents, valid and broken, through every front door.

Bounded here (``make test``: a few dozen cases per channel); ``make fuzz`` runs the same tests with
``$FUZZ_EXAMPLES`` cases each and prints the summary. Properties (tests/fuzz/checks.py): no traceback, a
rejection names a path and a code for each problem and changes nothing in the database, an accepted document
applies and planning it again is empty; the same valid spec accepts and rejects the same rows on PostgreSQL
and SQLite.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from extschema import loading, planning
from extschema.api import Settings, create_app
from tests import rowvalues
from tests.fuzz import checks, documents, tally
from tests.helpers import run, subprocess_env

pytest_plugins = ["tests.fuzz.report"]
pytestmark = [pytest.mark.slow]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def fuzz_settings(ci: int, share: float = 1.0) -> settings:
    """*ci* examples in make test; in make fuzz *share* of $FUZZ_EXAMPLES (the slow channels take fewer)."""
    return settings(
        max_examples=max(1, round(documents.EXAMPLES * share)) if documents.EXAMPLES else ci,
        deadline=None,
        derandomize=documents.EXAMPLES == 0,  # CI: the same cases every run; make fuzz: new ones each run
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: a case costs a database
    )


@pytest.fixture(scope="module")
def databases(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str, pytest.FixtureRequest], checks.Databases]]:
    """Fresh databases per case; PostgreSQL's server is started only when a test asks for it."""
    made: dict[str, checks.Databases] = {}
    directory = tmp_path_factory.mktemp("fuzz")

    def get(backend: str, request: pytest.FixtureRequest) -> checks.Databases:
        if backend not in made:
            admin = str(request.getfixturevalue("pg_admin_url")) if backend == "postgresql" else None
            made[backend] = checks.Databases(directory / backend, admin)
        return made[backend]

    yield get
    for found in made.values():
        found.close()


def _write(directory: Path, case: documents.Case) -> Path:
    path = directory / "fuzz.yaml"
    path.write_text(case.text())
    return path


# --- the CLI ---------------------------------------------------------------------------------------


def cli_case(url: str, path: Path) -> str:
    """validate, apply and plan one document on *url*; the properties checked; "accepted" or "rejected"."""
    before = checks.snapshot(url)
    validated = run("validate", str(path), "-o", "json")
    applied = run("apply", str(path), "-d", url, "-o", "json")
    checks.no_traceback(validated.stdout, validated.stderr, applied.stdout, applied.stderr)
    assert validated.exit_code in (0, 1), validated.stdout + validated.stderr
    problems = validated.json()["problems"]
    if validated.exit_code == 0 and applied.exit_code == 1:
        # Valid, yet refused for what only the database knows: a plugin or core table it names is not there.
        assert {p["code"] for p in applied.json()["problems"]} <= checks.DATABASE_ONLY, applied.stdout
        problems = applied.json()["problems"]
    elif validated.exit_code == 0:
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        planned = run("plan", str(path), "-d", url, "-o", "json")
        assert planned.exit_code == 0, planned.stdout + planned.stderr
        assert [item["ops"] for item in planned.items()] == [[]], planned.stdout  # round trip: nothing left to do
        return "accepted"
    assert problems and not checks.unnamed(problems), problems
    assert applied.exit_code == 1, applied.stdout + applied.stderr
    assert not checks.unnamed(applied.json()["problems"]), applied.stdout
    assert checks.snapshot(url) == before, "a rejected document changed the database"
    return "rejected"


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_validate_apply_plan(backend: str, databases: Any, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dbs: checks.Databases = databases(backend, request)

    @fuzz_settings(30 if backend == "sqlite" else 20)
    @given(case=documents.documents())
    def check(case: documents.Case) -> None:
        with dbs.fresh(backend) as url:
            tally.count(f"cli {backend}", cli_case(url, _write(tmp_path, case)))

    check()


def _located_line(line: str) -> bool:
    """A text problem line names a field path, or (ES001) the line and column of the unreadable YAML."""
    if " spec" in line or " metadata" in line:
        return True
    return re.search(r":\d+:\d+: -: ES001: ", line) is not None


def test_cli_subprocess(databases: Any, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A few cases through ``python -m extschema`` itself: stderr of a real process holds no traceback."""
    dbs: checks.Databases = databases("sqlite", request)

    @fuzz_settings(3, share=0.1)
    @given(case=documents.documents())
    def check(case: documents.Case) -> None:
        path = _write(tmp_path, case)
        with dbs.fresh("sqlite") as url:
            before = checks.snapshot(url)
            outcomes = [
                subprocess.run(
                    [sys.executable, "-m", "extschema", command, str(path), *extra],
                    capture_output=True,
                    text=True,
                    env=subprocess_env(),
                    timeout=120,
                )
                for command, extra in (("validate", []), ("apply", ["-d", url]))
            ]
            for done in outcomes:
                checks.no_traceback(done.stdout, done.stderr)
                assert done.returncode in (0, 1), done.stderr
            validated, applied = outcomes
            if applied.returncode and not validated.returncode:  # only the database can refuse these
                codes = set(re.findall(r": (ES\d{3}): ", applied.stderr))
                assert codes and codes <= checks.DATABASE_ONLY, applied.stderr
                assert checks.snapshot(url) == before
            else:
                assert applied.returncode == validated.returncode, applied.stderr
            if validated.returncode:
                # Text problems: FILE:LINE:COL: PATH: CODE: message, one a line; unreadable YAML has no path yet.
                lines = [line for line in validated.stderr.splitlines() if ": ES" in line]
                assert lines and all(_located_line(line) for line in lines), validated.stderr
                assert checks.snapshot(url) == before
            tally.count("cli subprocess", "rejected" if validated.returncode else "accepted")

    check()


# --- the REST API ----------------------------------------------------------------------------------

TOKEN = "fuzz-admin"


class Api:
    def __init__(self, url: str, tokens: Path) -> None:
        self.app = create_app(Settings(url, tokens_file=str(tokens)))

    def __call__(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                return await client.request(method, path, headers=headers, **options)

        return asyncio.run(send())

    def close(self) -> None:
        self.app.state.extschema.close()


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert errors and not checks.unnamed(errors), errors
    return errors


def rest_case(api: Api, url: str, doc: dict[str, Any]) -> str:
    plugin = doc["spec"].get("pluginId") if isinstance(doc.get("spec"), dict) else None
    base = f"/api/v1/extensions/{urllib.parse.quote(plugin if isinstance(plugin, str) and plugin else 'fuzz', safe='')}"
    before = checks.snapshot(url)
    validated = api("POST", f"{base}/schema/validate", json=doc)
    if validated.status_code != 200:
        _errors(validated)
        _errors(api("POST", f"{base}/plan", json=doc))
        _errors(api("PUT", f"{base}/schema", json=doc))
        assert checks.snapshot(url) == before, "a rejected document changed the database"
        return "rejected"
    put = api("PUT", f"{base}/schema", json=doc)
    if put.status_code != 200:  # valid, yet a plugin or core table it names is not there
        assert {e["code"] for e in _errors(put)} <= checks.DATABASE_ONLY, put.text
        assert checks.snapshot(url) == before, "a rejected document changed the database"
        return "rejected"
    planned = api("POST", f"{base}/plan", json=doc)
    assert planned.status_code == 200 and [i["ops"] for i in planned.json()["items"]] == [[]], planned.text
    got = api("GET", f"{base}/schema")
    assert got.status_code == 200, got.text
    again = api("PUT", f"{base}/schema", json=got.json())  # what GET answers can be sent back: nothing to do
    assert again.status_code == 200 and [i["changed"] for i in again.json()["items"]] == [False], again.text
    return "accepted"


@pytest.mark.parametrize("backend", BACKENDS)
def test_rest_schema_endpoints(backend: str, databases: Any, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dbs: checks.Databases = databases(backend, request)
    tokens = tmp_path / "tokens.yaml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    tokens.write_text(f"tokens:\n  - {{name: fuzz, sha256: {digest}, scopes: [admin]}}\n")

    @fuzz_settings(15 if backend == "sqlite" else 10)
    @given(case=documents.documents())
    def check(case: documents.Case) -> None:
        with dbs.fresh(backend) as url:
            api = Api(url, tokens)
            try:
                tally.count(f"rest {backend}", rest_case(api, url, case.doc))
            finally:
                api.close()

    check()


# --- differential: the same valid spec, rows on PostgreSQL and on SQLite -------------------------


@pytest.mark.postgres
def test_postgresql_and_sqlite_accept_the_same_rows(
    databases: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    sqlite, pg = databases("sqlite", request), databases("postgresql", request)

    @fuzz_settings(5, share=0.2)
    @given(case=documents.documents(broken=0), data=st.data())
    def check(case: documents.Case, data: st.DataObject) -> None:
        found = loading.read_text(case.text(), "fuzz.yaml")
        assume(not found.problems and case.doc["spec"]["tables"])
        path = _write(tmp_path, case)
        spec = found.schemas[0].document.spec
        shaped = planning.shape(spec)
        with sqlite.fresh("sqlite") as lite_url, pg.fresh("postgresql") as pg_url:
            lite = run("apply", str(path), "-d", lite_url, "-o", "json")
            if lite.exit_code == 1:  # a core table or a dependency that is not there: no rows to compare
                assert {p["code"] for p in lite.json()["problems"]} <= checks.DATABASE_ONLY, lite.stdout
            assume(lite.exit_code == 0)
            assert run("apply", str(path), "-d", pg_url).exit_code == 0, lite.stdout
            unenforced = " ".join(w["message"] for w in lite.item()["warnings"] if w["code"] == "ES501")
            for table in spec.tables:
                targets = [rowvalues.Target.open(u, shaped, spec.plugin_id, table.name) for u in (lite_url, pg_url)]
                try:
                    for name, col in targets[0].defs.items():
                        if f"{table.name}.{name}" in unenforced:
                            continue  # SQLite does not enforce the pattern (plan warning ES501)
                        for value in data.draw(st.lists(rowvalues.values_of(col), min_size=1, max_size=4)):
                            if isinstance(value, str) and "\x00" in value:
                                continue  # the row models refuse NUL before any database sees it (rowmodels.py)
                            answers = [t.accepts(name, value) for t in targets]
                            assert answers[0] == answers[1], (table.name, name, value, answers)
                            tally.count("rows sqlite = postgresql", "accepted" if answers[0] else "rejected")
                finally:
                    for t in targets:
                        t.close()
        tally.count("differential specs", "accepted")

    check()


# --- kubectl apply: kube-apiserver (the CRD's schema), the webhook and the operator --------------

try:
    from extschema.controller import certificates
    from tests import test_operator_e2e as e2e
    from tests import test_webhook as hooks
except ImportError:  # pragma: no cover - the operator's extras are dev dependencies
    e2e = hooks = certificates = None  # type: ignore[assignment]
else:
    crds, kube, run_operator = e2e.crds, e2e.kube, e2e.run_operator

#: Where kube-apiserver or the webhook says a refused document is wrong: a field path.
KUBE_PATH = ("spec.", "metadata.", "spec:", ".spec")


@pytest.mark.k8s
def test_kubectl_apply_through_the_webhook_and_the_operator(
    kube: Any, run_operator: Any, sqlite_url: str, tmp_path: Path
) -> None:
    checks.load_core(sqlite_url)
    files = certificates.generate(tmp_path / "certs", ["127.0.0.1"])
    port = hooks.free_port()
    operator = run_operator(
        sqlite_url, "--webhook-port", str(port), "--webhook-cert", str(files.certfile),
        "--webhook-key", str(files.keyfile), "--webhook-ca", str(files.cafile),
    )  # fmt: skip
    hooks.wait_for_tls(port, operator)
    counter = iter(range(10**6))
    with hooks.webhook_configuration(kube, port, files.cafile):

        @fuzz_settings(8, share=0.2)
        @given(case=documents.documents())
        def check(case: documents.Case) -> None:
            doc = dict(case.doc, metadata={"name": f"fz-{next(counter)}"})
            before = checks.snapshot(sqlite_url)
            out = kube("apply", "-f", "-", input=yaml.safe_dump(doc, allow_unicode=True), check=False)
            checks.no_traceback(out.stdout, out.stderr)
            if out.returncode != 0:
                assert any(p in out.stderr for p in KUBE_PATH), out.stderr
                if "admission webhook" in out.stderr:
                    assert "ES" in out.stderr, out.stderr  # the webhook's refusals carry their code
                assert checks.snapshot(sqlite_url) == before, "a refused resource changed the database"
                tally.count("kubectl", "rejected")
                return
            name = doc["metadata"]["name"]
            waits = ("DependencyNotReady",)  # valid, waiting for a plugin it depends on
            body = kube.wait_until(
                name,
                lambda b: kube.ready(b).get("status") == "True" or kube.ready(b).get("reason") in waits
                or kube.ready(b, "Stalled").get("status") == "True",
                "an outcome",
            )  # fmt: skip
            stalled = kube.ready(body, "Stalled").get("message", "")
            assert (
                kube.ready(body).get("status") == "True"
                or kube.ready(body)["reason"] in waits
                or any(code in stalled for code in checks.DATABASE_ONLY)
            ), body["status"]
            tally.count("kubectl", "accepted")

        check()
    checks.no_traceback(operator.tail(100_000))
