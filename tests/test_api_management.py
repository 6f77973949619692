"""The REST API's management routes (``/api/v1/extensions``), health and metrics, through httpx's ASGI
transport on SQLite and PostgreSQL: the JSON the CLI's ``-o json`` prints, scopes (admin vs plugin), the
approval gate of PUT/DELETE/rollback (409 naming the hash, nothing changed), ``--read-only-schemas`` (405
naming kubectl apply), ``/readyz`` following the database, Prometheus ``/metrics``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from extschema import wire
from extschema.api import Settings, create_app
from tests.helpers import EXAMPLES, REPO, execute, ext_table, load_core, run, subprocess_env, tables

REPORTS = EXAMPLES / "custom-reports.yaml"
KB = EXAMPLES / "comments.yaml"
TOKENS = {"admin": ["admin"], "reports": ["customreports:read"], "kbwriter": ["comments:write"]}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer secret-{name}"}


ADMIN, REPORTS_READER, KB_WRITER = bearer("admin"), bearer("reports"), bearer("kbwriter")


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    entries = [
        {"name": name, "sha256": hashlib.sha256(f"secret-{name}".encode()).hexdigest(), "scopes": scopes}
        for name, scopes in TOKENS.items()
    ]
    path.write_text(yaml.safe_dump({"tokens": entries}))
    return path


class Api:
    """An app over one database, called in-process (no server, no port)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def __call__(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.request(method, path, headers=headers, **kw)

        return asyncio.run(call())


@pytest.fixture
def make_api(tokens_file: Path) -> Iterator[Callable[..., Api]]:
    apps: list[FastAPI] = []

    def make(url: str, read_only: bool = False, tokens: bool = True) -> Api:
        settings = Settings(
            database_url=url, tokens_file=str(tokens_file) if tokens else None, read_only_schemas=read_only
        )
        app = create_app(settings)
        apps.append(app)
        return Api(app)

    yield make
    for app in apps:
        app.state.extschema.engine.close()


@pytest.fixture
def applied(db_url: str) -> str:
    """*db_url* with the core tables and the custom-reports and knowledge-base plugins applied by the CLI."""
    load_core(db_url)
    outcome = run("apply", str(REPORTS), str(KB), "--database", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    return db_url


def document(path: Path = REPORTS) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def without_field(doc: dict[str, Any], field: str, version: str = "1.1.0") -> dict[str, Any]:
    """*doc* at *version* with *field* of its first table dropped (a destructive change)."""
    changed = copy.deepcopy(doc)
    changed["spec"]["version"] = version
    table = changed["spec"]["tables"][0]
    table["fields"] = [f for f in table["fields"] if f["name"] != field]
    table["indexes"] = [i for i in table.get("indexes", []) if field not in i["fields"]]
    return changed


def cli_json(*args: str) -> Any:
    outcome = run(*args, "-o", "json")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return outcome.json()


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and code in [e["code"] for e in body["errors"]], body
    return body


def columns(url: str, plugin: str) -> list[str]:
    api = create_app(Settings(database_url=url))
    try:
        spec = api.state.extschema.engine.registration(plugin).spec
        return [f.name for f in spec.tables[0].fields]
    finally:
        api.state.extschema.engine.close()


# --- reads: the CLI's JSON --------------------------------------------------------------------------


def test_reads_answer_what_the_cli_prints(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    listed = api("GET", "/api/v1/extensions", ADMIN)
    assert listed.status_code == 200
    assert listed.json() == cli_json("status", "--database", applied)
    assert [p["pluginId"] for p in listed.json()["items"]] == ["comments", "customreports"]
    assert {p["status"] for p in listed.json()["items"]} == {"active"}
    history = api("GET", "/api/v1/extensions/customreports/migrations", ADMIN)
    assert history.json() == cli_json("history", "customreports", "--database", applied)
    assert [m["migrationId"] for m in history.json()["items"]] == ["0001"]
    for answer in (listed, history):
        wire.parse(answer.json())  # a wire envelope, validated against its kind


def test_schema_is_the_applied_document_and_can_be_sent_back_unchanged(
    applied: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(applied)
    got = api("GET", "/api/v1/extensions/customreports/schema", REPORTS_READER)
    assert got.status_code == 200
    body = got.json()
    source = document()
    assert body["metadata"] == {"name": source["metadata"]["name"]}
    assert body["spec"]["pluginId"] == "customreports" and body["spec"]["version"] == "1.0.0"
    assert [f["name"] for f in body["spec"]["tables"][0]["fields"]] == [
        f["name"] for f in source["spec"]["tables"][0]["fields"]
    ]
    assert body["status"]["state"] == "active" and body["status"]["version"] == "1.0.0"
    put = api("PUT", "/api/v1/extensions/customreports/schema", ADMIN, json=body)
    assert put.status_code == 200, put.text
    assert [(r["pluginId"], r["changed"]) for r in put.json()["items"]] == [("customreports", False)]


def test_unknown_plugin_or_migration_is_404(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    problem(api("GET", "/api/v1/extensions/nosuch/schema", ADMIN), 404, "ES724")
    problem(api("GET", "/api/v1/extensions/nosuch/migrations", ADMIN), 404, "ES724")
    problem(api("POST", "/api/v1/extensions/customreports/migrations/9999/rollback", ADMIN), 404, "ES725")
    problem(api("DELETE", "/api/v1/extensions/nosuch/schema", ADMIN), 404, "ES724")


def test_conflicts_of_the_registered_plugins(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    clean = api("GET", "/api/v1/extensions/conflicts", ADMIN)
    assert clean.status_code == 200
    assert clean.json()["kind"] == "ConflictList" and clean.json()["ok"] is True and clean.json()["items"] == []
    wire.parse(clean.json())
    # The host drops a core table both plugins reference: each is reported, as `extschema conflicts` would.
    execute(applied, "DROP TABLE work_orders" + (" CASCADE" if applied.startswith("postgresql") else ""))
    found = api("GET", "/api/v1/extensions/conflicts", ADMIN).json()
    assert found["ok"] is False
    assert sorted((p["code"], p["file"]) for p in found["items"]) == [
        ("ES204", "registered plugin comments"),
        ("ES204", "registered plugin customreports"),
    ]
    assert "work_orders" in found["items"][0]["message"]


# --- validate and plan: no side effects ------------------------------------------------------------


def test_validate_reports_problems_as_the_cli_does_and_changes_nothing(
    applied: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(applied)
    ok = api("POST", "/api/v1/extensions/customreports/schema/validate", REPORTS_READER, json=document())
    assert ok.status_code == 200
    assert ok.json()["kind"] == "SchemaList" and ok.json()["ok"] is True
    assert ok.json()["items"][0]["pluginId"] == "customreports"
    bad = document()
    bad["spec"]["tables"][0]["fields"][0]["type"] = "Strin"
    invalid = problem(
        api("POST", "/api/v1/extensions/customreports/schema/validate", REPORTS_READER, json=bad), 422, "ES013"
    )
    assert invalid["errors"][0]["path"].startswith("spec.tables[0].fields[0]")
    other = api("POST", "/api/v1/extensions/customreports/schema/validate", REPORTS_READER, json=document(KB))
    assert [e["code"] for e in problem(other, 422, "ES723")["errors"]] == ["ES723"]
    for body in ({"kind": "Pod"}, {**document(), "status": []}):
        problem(api("POST", "/api/v1/extensions/customreports/schema/validate", ADMIN, json=body), 422, "ES727")
    # Another resource claiming the plugin conflicts with its owner (409), as `extschema conflicts` says.
    taken = document()
    taken["metadata"]["name"] = "custom-reports-copy"
    conflict = api("POST", "/api/v1/extensions/customreports/schema/validate", ADMIN, json=taken)
    assert conflict.status_code == 409, conflict.text
    assert all(e["code"].startswith("ES2") for e in conflict.json()["errors"])
    wire.parse(ok.json())


def test_plan_returns_the_hash_and_runs_nothing(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    before = api("GET", "/api/v1/extensions/customreports/migrations", ADMIN).json()
    planned = api(
        "POST", "/api/v1/extensions/customreports/plan", REPORTS_READER, json=without_field(document(), "code")
    )
    assert planned.status_code == 200, planned.text
    wire.parse(planned.json())
    (plan,) = planned.json()["items"]
    assert plan["class"] == "destructive" and plan["needsApproval"] is True
    assert [op["kind"] for op in plan["ops"]] == ["drop_column"]
    assert len(plan["hash"]) == 16 and plan["sql"]
    assert api("GET", "/api/v1/extensions/customreports/migrations", ADMIN).json() == before
    assert "code" in columns(applied, "customreports")
    # The same plan as `extschema plan`: the same hash for the same document and database.
    again = api("POST", "/api/v1/extensions/customreports/plan", ADMIN, json=without_field(document(), "code"))
    assert again.json()["items"][0]["hash"] == plan["hash"]


# --- the approval gate -----------------------------------------------------------------------------


def test_destructive_put_needs_the_exact_hash(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    url = "/api/v1/extensions/customreports/schema"
    changed = without_field(document(), "code")
    expected = api("POST", "/api/v1/extensions/customreports/plan", ADMIN, json=changed).json()["items"][0]["hash"]

    refused = problem(api("PUT", url, ADMIN, json=changed), 409, "ES720")
    assert refused["approve"] == expected and expected in refused["errors"][0]["message"]
    assert f"?approve={expected}" in refused["errors"][0]["message"]
    assert refused["pending"][0]["hash"] == expected and refused["pending"][0]["class"] == "destructive"
    assert "code" in columns(applied, "customreports")  # nothing ran

    stale = problem(api("PUT", url, ADMIN, json=changed, params={"approve": "0123456789abcdef"}), 409, "ES721")
    assert stale["approve"] == expected
    assert "code" in columns(applied, "customreports")

    done = api("PUT", url, ADMIN, json=changed, params={"approve": expected})
    assert done.status_code == 200, done.text
    wire.parse(done.json())
    (result,) = done.json()["items"]
    assert result["changed"] is True and result["migration"] == "0002"
    assert "code" not in columns(applied, "customreports")
    assert api("GET", url, ADMIN).json()["status"]["version"] == "1.1.0"


def test_safe_put_needs_no_approval(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    changed = document()
    changed["spec"]["version"] = "1.1.0"
    changed["spec"]["tables"][0]["fields"].append({"name": "note", "type": "Text"})
    done = api("PUT", "/api/v1/extensions/customreports/schema", ADMIN, json=changed)
    assert done.status_code == 200, done.text
    assert "note" in columns(applied, "customreports")


def test_delete_drops_only_with_approval_or_retains(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    url = "/api/v1/extensions/customreports/schema"
    refused = problem(api("DELETE", url, ADMIN), 409, "ES720")
    assert "drop table report" in refused["errors"][0]["message"]
    assert any("customreports" in t for t in tables(applied))
    done = api("DELETE", url, ADMIN, params={"approve": refused["approve"]})
    assert done.status_code == 200, done.text
    assert not any("customreports" in t and "backup" not in t for t in tables(applied))
    problem(api("GET", url, ADMIN), 404, "ES724")
    kept = api("DELETE", "/api/v1/extensions/comments/schema", ADMIN, params={"retain": "true"})
    assert kept.status_code == 200, kept.text
    assert any(t.startswith("ext_comments") for t in tables(applied))
    assert [p["pluginId"] for p in api("GET", "/api/v1/extensions", ADMIN).json()["items"]] == []


def test_rollback_undoes_the_latest_migration_through_the_gate(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    base = "/api/v1/extensions/customreports"
    changed = document()
    changed["spec"]["version"] = "1.1.0"
    changed["spec"]["tables"][0]["fields"].append({"name": "note", "type": "Text"})
    assert api("PUT", f"{base}/schema", ADMIN, json=changed).status_code == 200
    problem(api("POST", f"{base}/migrations/0001/rollback", ADMIN), 409, "ES725")  # not the latest
    # Rolling back drops the new column: its values go (backed up) only with the rollback's hash.
    execute(applied, f"INSERT INTO {ext_table(applied, 'customreports', 'report')} (title, note) VALUES ('t', 'n')")
    refused = problem(api("POST", f"{base}/migrations/0002/rollback", ADMIN), 409, "ES720")
    assert "note" in columns(applied, "customreports")
    done = api("POST", f"{base}/migrations/0002/rollback", ADMIN, params={"approve": refused["approve"]})
    assert done.status_code == 200, done.text
    assert "note" not in columns(applied, "customreports")
    history = api("GET", f"{base}/migrations", ADMIN).json()["items"]
    assert [(m["migrationId"], m["status"]) for m in history] == [("0001", "executed"), ("0002", "rolled_back")]


# --- auth -----------------------------------------------------------------------------------------


def test_scopes_admin_versus_plugin(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    problem(api("GET", "/api/v1/extensions"), 401, "ES706")
    problem(api("GET", "/api/v1/extensions", {"Authorization": "Bearer wrong"}), 401, "ES706")
    # A plugin's token sees its plugins only, reads them, and changes nothing.
    mine = api("GET", "/api/v1/extensions", REPORTS_READER).json()["items"]
    assert [p["pluginId"] for p in mine] == ["customreports"]
    assert api("GET", "/api/v1/extensions/customreports/schema", REPORTS_READER).status_code == 200
    problem(api("GET", "/api/v1/extensions/comments/schema", REPORTS_READER), 403, "ES707")
    problem(api("GET", "/api/v1/extensions/conflicts", REPORTS_READER), 403, "ES707")
    # Changing a schema is admin only, even for a token that may write the plugin's rows.
    problem(api("PUT", "/api/v1/extensions/comments/schema", KB_WRITER, json=document(KB)), 403, "ES707")
    problem(api("DELETE", "/api/v1/extensions/comments/schema", KB_WRITER), 403, "ES707")
    problem(api("POST", "/api/v1/extensions/comments/migrations/0001/rollback", KB_WRITER), 403, "ES707")
    assert any(t.startswith("ext_comments") for t in tables(applied))


def test_without_tokens_reads_only(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied, tokens=False)
    assert api("GET", "/api/v1/extensions").status_code == 200
    assert api("GET", "/api/v1/extensions/conflicts").status_code == 200
    assert api("POST", "/api/v1/extensions/comments/plan", json=document(KB)).status_code == 200
    problem(api("DELETE", "/api/v1/extensions/comments/schema"), 403, "ES716")


def test_read_only_schemas_answer_405_naming_kubectl_apply(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied, read_only=True)
    base = "/api/v1/extensions/customreports"
    for method, path, allow in (
        ("PUT", f"{base}/schema", "GET"),
        ("DELETE", f"{base}/schema", "GET"),
        ("POST", f"{base}/migrations/0001/rollback", ""),
    ):
        for headers in (ADMIN, None):
            answer = api(method, path, headers, json=document())
            body = problem(answer, 405, "ES722")
            assert "kubectl apply" in body["errors"][0]["message"]
            assert answer.headers["allow"] == allow
    assert any("customreports" in t for t in tables(applied))
    assert api("GET", f"{base}/schema", ADMIN).status_code == 200
    assert api("POST", f"{base}/plan", ADMIN, json=without_field(document(), "code")).status_code == 200


# --- health and metrics ---------------------------------------------------------------------------


def test_healthz_and_readyz(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    assert api("GET", "/healthz").json() == {"ok": True}
    ready = api("GET", "/readyz")
    assert ready.status_code == 200 and ready.json()["ok"] is True


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_readyz_fails_while_the_database_is_down(
    backend: str, make_api: Callable[..., Api], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        broken = tmp_path / "app.db"
        broken.write_bytes(b"not a database: " * 16)  # opens, then every read fails
        down = f"sqlite:///{broken}"
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        base, _, name = pg_url.rpartition("/")
        down = f"{base.rsplit(':', 1)[0]}:{_closed_port()}/{name}"
    api = make_api(down)
    assert api("GET", "/healthz").status_code == 200  # alive: a database outage restarts nothing
    body = problem(api("GET", "/readyz"), 503, "ES726")
    assert "not ready" in body["detail"]
    if backend == "sqlite":
        broken.unlink()
        load_core(down)
        assert api("GET", "/readyz").status_code == 200  # ready again once the database is


def test_metrics_by_route_template_status_and_statements(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    for _ in range(3):
        assert api("GET", "/api/v1/extensions/customreports/schema", ADMIN).status_code == 200
    api("GET", "/api/v1/extensions/nosuch/schema", ADMIN)
    api("GET", "/nothing/here")
    answer = api("GET", "/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    durations = families["extschema_api_request_duration_seconds"]
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in durations.samples
        if s.name.endswith("_count")
    }
    template = "/api/v1/extensions/{pluginId}/schema"
    assert counts[("GET", template, "200")] == 3
    assert counts[("GET", template, "404")] == 1
    assert counts[("GET", "unmatched", "404")] == 1
    assert not any("customreports" in route or "nosuch" in route for _, route, _ in counts)
    statements = families["extschema_api_statements_per_request"]
    by_route = {
        s.labels["route"]: s.value
        for s in statements.samples
        if s.name.endswith("_sum") and s.labels["method"] == "GET"
    }
    assert by_route[template] >= 3  # every request read the registry
    assert by_route["unmatched"] == 0
    assert "/metrics" not in json.dumps([s.labels for s in durations.samples])


# --- the page: docs/api-management.md --------------------------------------------------------------

PAGE = REPO / "docs" / "api-management.md"
BLOCK = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def page_blocks() -> tuple[dict[str, str], list[str]]:
    """The page's titled blocks (title -> text) and its ```sh lines."""
    files: dict[str, str] = {}
    commands: list[str] = []
    for language, info, body in BLOCK.findall(PAGE.read_text()):
        title = re.fullmatch(r'\s*title="([^"]+)"\s*', info)
        if title:
            files[title.group(1)] = body
        elif language == "sh":
            commands += [line for line in body.splitlines() if line.strip()]
    return files, commands


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "extschema serve exited"
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("extschema serve did not become ready")


def test_the_tokens_on_the_page_are_the_digests_it_says() -> None:
    files, _ = page_blocks()
    text = files["tokens.yaml"]
    for token, digest in re.findall(r"printf %s (\S+) \| sha256sum\n\s*sha256: ([0-9a-f]{64})", text):
        assert hashlib.sha256(token.encode()).hexdigest() == digest


@pytest.mark.slow
def test_the_session_on_the_page_runs_against_extschema_serve(db_url: str, tmp_path: Path) -> None:
    """The page's commands as written (its SQLite file replaced by *db_url*): apply, `extschema serve` as a real
    process on a free port, then session.py; every print prints what its comment says."""
    files, commands = page_blocks()
    for name in ("tokens.yaml", "session.py"):
        (tmp_path / name).write_text(files[name])
    load_core(db_url)
    (apply_line, serve_line) = commands
    apply_args = shlex.split(re.sub(r"sqlite:///\S+\.db", db_url, apply_line))
    assert apply_args[:2] == ["extschema", "apply"]
    outcome = run(*[str(REPO / a) if a.startswith("examples/") else a for a in apply_args[1:]])
    assert outcome.exit_code == 0, outcome.stderr
    port = _free_port()
    serve_args = shlex.split(re.sub(r"sqlite:///\S+\.db", db_url, serve_line).replace("--port 8080", f"--port {port}"))
    assert serve_args[:2] == ["extschema", "serve"]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "extschema", *serve_args[1:]],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(base, server)
        done = subprocess.run(
            [sys.executable, "session.py"],
            cwd=tmp_path,
            env={**subprocess_env(), "BASE": base},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert done.returncode == 0, done.stderr
    expected = re.findall(r"^print\(.*\)  # (.*)$", files["session.py"], re.MULTILINE)
    printed = done.stdout.splitlines()
    assert len(printed) == len(expected), done.stdout
    for line, comment in zip(printed, expected, strict=True):
        pattern = re.escape(comment).replace("HASH", "[0-9a-f]{16}")
        assert re.fullmatch(pattern, line), (line, comment)
    assert b"Traceback" not in errors, errors.decode()[-2000:]


@pytest.mark.helm
def test_the_pages_chart_values_deploy_the_api_read_only() -> None:
    from tests.controlplane import KUBERNETES_VERSION
    from tests.controlplane.helm import ensure_helm

    files, _ = page_blocks()
    values = yaml.safe_load(files["values-api.yaml"])
    kube = ["-n", "extschema-system", "--kube-version", KUBERNETES_VERSION]
    rendered = subprocess.run(
        [str(ensure_helm()), "template", "extschema", str(REPO / "charts" / "extschema"), "-f", "-", *kube],
        input=yaml.safe_dump(values),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "extschema-api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert container["args"][0] == "serve" and "--read-only-schemas" in container["args"]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} >= {
        ("Service", "extschema-api"),
        ("NetworkPolicy", "extschema-api"),
    }
    page = PAGE.read_text()
    assert "service/extschema-api" in page and "--from-file=tokens.yaml" in page


def test_demo_cli_serves_a_few_requests_and_stops(tmp_path: Path) -> None:
    """The last step of `make demo-cli` (examples/serve_demo.py) on a database the demo applied."""
    url = f"sqlite:///{tmp_path}/demo.db"
    load_core(url)
    assert run("apply", str(EXAMPLES), "--database", url).exit_code == 0
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "serve_demo.py"), url],
        capture_output=True,
        text=True,
        timeout=180,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert " 200 comments 1.2.0 active, customreports 1.0.0 active" in lines["GET /api/v1/extensions"]
    assert re.search(r" 200 destructive plan [0-9a-f]{16}$", lines["POST .../customreports/plan (drop field code)"])
    assert lines["DELETE .../customreports/schema"].endswith(" 403 ES716")
    assert done.stdout.rstrip().endswith("== server stopped ==")
    assert "Traceback" not in done.stderr


def test_openapi_describes_the_document_and_405_lists_every_method(applied: str, make_api: Callable[..., Api]) -> None:
    api = make_api(applied)
    spec = api("GET", "/openapi.json").json()
    put = spec["paths"]["/api/v1/extensions/{pluginId}/schema"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert body["properties"]["spec"]["properties"]["pluginId"]["pattern"]
    assert {"400", "405", "409", "422"} <= set(put["responses"])
    # Starlette names the first route's methods only; the answer lists every route of the path.
    answer = api("PATCH", "/api/v1/extensions/customreports/schema", ADMIN)
    assert problem(answer, 405, "ES712") and answer.headers["allow"] == "DELETE, GET, PUT"
