"""The REST API over plugin tables (``extschema serve``), through httpx's ASGI transport on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import decimal
import hashlib
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extschema.api import Settings, create_app
from extschema.problems import ProblemError
from tests.helpers import EXAMPLES, REPO, approved_delete, execute, ext_table, load_core, run, sa_url, write_schema

TOKENS = {
    "admin": ["admin"],
    "reports-writer": ["customreports:write"],
    "reports-reader": ["customreports:read"],
    "comments-writer": ["comments:write"],
    "kb-writer": ["kb:write"],
}


class Api:
    """A synchronous face over httpx's ASGITransport (one request, one event loop)."""

    def __init__(self, app: FastAPI, token: str | None = None) -> None:
        self.app = app
        self.token = token

    def as_(self, token: str | None) -> Api:
        return Api(self.app, token)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = dict(options.pop("headers", {}))
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, headers=headers, **options)

        return asyncio.run(send())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    def patch(self, path: str, **options: Any) -> httpx.Response:
        return self.request("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> httpx.Response:
        return self.request("DELETE", path, **options)


def tokens_file(directory: Path) -> Path:
    lines = ["tokens:"]
    for name, scopes in TOKENS.items():
        digest = hashlib.sha256(f"token-{name}".encode()).hexdigest()
        lines.append(f"  - {{name: {name}, sha256: {digest}, scopes: [{', '.join(scopes)}]}}")
    path = directory / "tokens.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def problem(response: httpx.Response, status: int, code: str, path: str | None = None) -> dict[str, Any]:
    """The problem+json of *response*, checked: its status, shape and first error's code (and path)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].endswith(code) and body["title"]
    assert body["errors"] and all(set(e) == {"path", "code", "message"} for e in body["errors"])
    codes = [(e["code"], e["path"]) for e in body["errors"]]
    assert any(c == code and (path is None or p == path) for c, p in codes), codes
    return body


@pytest.fixture
def applied(db_url: str) -> str:
    """The examples applied, with two work orders and one piece of equipment in the core tables."""
    load_core(db_url)
    execute(db_url, "INSERT INTO work_orders (id, title) VALUES (1, 'Pump'), (2, 'Valve')")
    execute(db_url, "INSERT INTO equipment (id, serial_number, name) VALUES (1, 'SN-1', 'Press')")
    outcome = run("apply", str(EXAMPLES), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    return db_url


@pytest.fixture
def api(applied: str, tmp_path: Path) -> Iterator[Api]:
    app = create_app(Settings(applied, tokens_file=str(tokens_file(tmp_path))))
    yield Api(app, "token-admin")
    app.state.extschema.close()


REPORTS = "/api/v1/customreports/report"


def test_openapi_describes_every_active_table_and_docs_are_served(api: Api) -> None:
    spec = api.as_(None).get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path in (REPORTS, f"{REPORTS}/{{id}}", "/api/v1/comments/comment", "/api/v1/kb/article_comment"):
        assert path in paths
    assert set(paths[REPORTS]) == {"get", "post"} and set(paths[f"{REPORTS}/{{id}}"]) == {"get", "patch", "delete"}
    assert "patch" not in paths["/api/v1/kb/article_comment/{id}"]  # links are created and deleted
    assert api.as_(None).get("/docs").status_code == 200


def test_create_get_patch_delete(api: Api) -> None:
    created = api.post(REPORTS, json={"title": "Pump check", "work_order_id": 1, "score": "12.50"})
    assert created.status_code == 201, created.text
    row = created.json()
    assert created.headers["location"] == f"{REPORTS}/{row['id']}"
    assert row["status"] == "draft" and row["score"] == "12.50" and row["code"] is None
    assert api.get(created.headers["location"]).json() == row

    patched = api.patch(f"{REPORTS}/{row['id']}", json={"status": "published", "code": None})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**row, "status": "published"}  # absent fields are unchanged
    problem(api.patch(f"{REPORTS}/{row['id']}", json={"title": None}), 422, "ES701", "body.title")
    merge = api.patch(
        f"{REPORTS}/{row['id']}", content=b'{"score": null}', headers={"content-type": "application/merge-patch+json"}
    )
    assert merge.status_code == 200 and merge.json()["score"] is None

    assert api.delete(f"{REPORTS}/{row['id']}").status_code == 204
    problem(api.get(f"{REPORTS}/{row['id']}"), 404, "ES702", "path.id")
    problem(api.delete(f"{REPORTS}/{row['id']}"), 404, "ES702")
    problem(api.patch(f"{REPORTS}/{row['id']}", json={"title": "x"}), 404, "ES702")


def test_invalid_requests_are_422_with_paths(api: Api) -> None:
    body = problem(
        api.post(REPORTS, json={"title": "", "status": "bogus", "work_order_id": 1, "extra": 1}), 422, "ES701"
    )
    paths = {e["path"] for e in body["errors"]}
    assert {"body.title", "body.status", "body.extra"} <= paths
    problem(api.post(REPORTS, json={"title": "x", "work_order_id": 1, "code": "abc"}), 422, "ES701", "body.code")
    problem(api.post(REPORTS, json={"title": "x", "work_order_id": 1, "score": "100.01"}), 422, "ES701", "body.score")
    problem(api.post(REPORTS, json={"title": "x", "work_order_id": 1, "score": "1.234"}), 422, "ES701", "body.score")
    problem(api.post(REPORTS, content=b"{not json", headers={"content-type": "application/json"}), 422, "ES713")
    problem(api.post(REPORTS, json=[1, 2]), 422, "ES701")
    problem(api.get(REPORTS, params={"limit": 0}), 422, "ES701", "query.limit")
    problem(api.get(REPORTS, params={"limit": 1001}), 422, "ES701", "query.limit")
    problem(api.get(REPORTS, params={"published_at": "x"}), 422, "ES701", "query.published_at")  # no index
    problem(api.get(REPORTS, params={"sort": "score"}), 422, "ES701", "query.sort")
    problem(api.get(f"{REPORTS}/abc"), 422, "ES701", "path.id")
    problem(api.get(f"{REPORTS}/{2**63}"), 422, "ES701", "path.id")


def test_conflicts_are_409(api: Api) -> None:
    first = api.post(REPORTS, json={"title": "a", "work_order_id": 1, "code": "ABC-1"})
    assert first.status_code == 201
    problem(api.post(REPORTS, json={"title": "b", "work_order_id": 1, "code": "ABC-1"}), 409, "ES703", "body.code")
    problem(api.post(REPORTS, json={"title": "a", "work_order_id": 2}), 409, "ES703")  # (title, status) together
    problem(api.post(REPORTS, json={"title": "c", "work_order_id": 99}), 409, "ES704")
    second = api.post(REPORTS, json={"title": "d", "work_order_id": 1}).json()
    problem(api.patch(f"{REPORTS}/{second['id']}", json={"code": "ABC-1"}), 409, "ES703", "body.code")


def test_a_restricted_delete_is_409(db_url: str, tmp_path: Path) -> None:
    write_schema(
        tmp_path,
        "shop",
        """
        pluginId: shop
        version: 1.0.0
        tables:
          - name: category
            fields: [{name: name, type: String, required: true}]
          - name: product
            fields: [{name: name, type: String, required: true}]
        relationships:
          - {source: product, target: category, type: ManyToOne, onDelete: Restrict}
        """,
    )
    assert run("apply", str(tmp_path / "shop.yaml"), "-d", db_url).exit_code == 0
    app = create_app(Settings(db_url, tokens_file=str(tokens_file(tmp_path))))
    api = Api(app, "token-admin")
    category = api.post("/api/v1/shop/category", json={"name": "Tools"}).json()
    api.post("/api/v1/shop/product", json={"name": "Hammer", "category_id": category["id"]})
    problem(api.delete(f"/api/v1/shop/category/{category['id']}"), 409, "ES704", "path.id")
    product = api.get("/api/v1/shop/product", params={"include": "category"}).json()["items"][0]
    assert product["category"] == category
    app.state.extschema.close()


def test_tokens_and_scopes(api: Api) -> None:
    anonymous = api.as_(None)
    response = anonymous.get(REPORTS)
    problem(response, 401, "ES706", "header.authorization")
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem(api.as_("not-a-token").get(REPORTS), 401, "ES706")
    problem(anonymous.get(REPORTS, headers={"Authorization": "Basic eDp5"}), 401, "ES706")
    reader = api.as_("token-reports-reader")
    assert reader.get(REPORTS).status_code == 200
    problem(reader.post(REPORTS, json={"title": "x", "work_order_id": 1}), 403, "ES707")
    assert api.as_("token-reports-writer").post(REPORTS, json={"title": "x", "work_order_id": 1}).status_code == 201
    problem(api.as_("token-reports-writer").get("/api/v1/comments/comment"), 403, "ES707")
    # The schema is public; so is the problem shape of an unknown path.
    assert anonymous.get("/openapi.json").status_code == 200
    problem(anonymous.get("/api/v1/nope/nothing"), 404, "ES711")


def test_without_tokens_reads_only_and_loopback_only(applied: str, tmp_path: Path) -> None:
    app = create_app(Settings(applied))
    api = Api(app)
    assert api.get(REPORTS).status_code == 200
    problem(api.post(REPORTS, json={"title": "x", "work_order_id": 1}), 403, "ES716")
    app.state.extschema.close()
    for host in ("0.0.0.0", "10.1.2.3", "::"):
        with pytest.raises(ProblemError) as refused:
            create_app(Settings(applied, host=host))
        assert refused.value.problems[0].code == "ES709"
    for host in ("127.0.0.1", "::1", "localhost"):
        create_app(Settings(applied, host=host)).state.extschema.close()
    create_app(Settings(applied, tokens_file=str(tokens_file(tmp_path)), host="0.0.0.0")).state.extschema.close()


@pytest.mark.parametrize(
    "text",
    [
        "tokens: [{name: a, sha256: abc, scopes: [admin]}]",
        "tokens: [{name: a, sha256: " + "a" * 64 + ", scopes: [everything]}]",
        "tokens: [{name: a, sha256: " + "a" * 64 + ", scopes: [admin], extra: 1}]",
        "tokens: [{name: a, sha256: "
        + "a" * 64
        + ", scopes: [admin]}, {name: b, sha256: "
        + "a" * 64
        + ", scopes: []}]",
        "tokens: [",
        "- just a list",
    ],
)
def test_a_bad_tokens_file_is_a_usage_error(sqlite_url: str, tmp_path: Path, text: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(ProblemError) as refused:
        create_app(Settings(sqlite_url, tokens_file=str(path)))
    assert refused.value.kind == "usage" and refused.value.problems[0].code == "ES708"


def test_keyset_pages_filters_and_sorts(api: Api) -> None:
    titles = [f"r{i}" for i in range(7)]
    for i, title in enumerate(titles):
        status = "published" if i % 2 else "draft"
        assert api.post(REPORTS, json={"title": title, "status": status, "work_order_id": 1}).status_code == 201

    def walk(**params: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = api.get(REPORTS, params={**params, **({"after": cursor} if cursor else {})}).json()
            seen.extend(item["title"] for item in page["items"])
            cursor = page["next"]
            if cursor is None:
                return seen
            assert len(page["items"]) == params["limit"]

    assert walk(limit=3) == titles
    assert walk(limit=2, sort="-id") == titles[::-1]
    assert walk(limit=2, status="published") == ["r1", "r3", "r5"]
    assert walk(limit=2, sort="-status") == ["r5", "r3", "r1", "r6", "r4", "r2", "r0"]  # then ids down
    assert walk(limit=3, sort="code") == titles  # every code NULL: id order
    assert walk(limit=1000) == titles

    first = api.get(REPORTS, params={"limit": 2}).json()
    cursor = first["next"]
    tampered = base64.urlsafe_b64encode(base64.urlsafe_b64decode(cursor + "==")[:-1] + b"9").decode().rstrip("=")
    problem(api.get(REPORTS, params={"limit": 2, "after": tampered}), 422, "ES710", "query.after")
    problem(api.get(REPORTS, params={"limit": 2, "after": "%%%"}), 422, "ES710")
    problem(api.get(REPORTS, params={"limit": 2, "after": cursor, "sort": "-id"}), 422, "ES710")
    problem(api.get(REPORTS, params={"limit": 2, "after": cursor, "status": "draft"}), 422, "ES710")


def _counting(api: Api) -> list[str]:
    statements: list[str] = []
    engine = api.app.state.extschema.catalog.database.sa_engine

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "comment" in statement and "extension_schemas" not in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    return statements


def test_include_embeds_with_one_query_per_relationship(api: Api) -> None:
    writer = api.as_("token-admin")
    comments = "/api/v1/comments/comment"
    root = writer.post(comments, json={"author": "a", "body": "root", "work_order_id": 1}).json()
    replies = [
        writer.post(comments, json={"author": "b", "body": f"reply {i}", "work_order_id": 1, "parent_id": root["id"]})
        for i in range(6)
    ]
    assert all(r.status_code == 201 for r in replies)
    statements = _counting(api)

    def listed(limit: int) -> tuple[list[dict[str, Any]], int]:
        statements.clear()
        page = api.get(comments, params={"limit": limit, "include": ["parent", "comment_by_parent_id"]})
        assert page.status_code == 200, page.text
        return page.json()["items"], len(statements)

    few, few_count = listed(2)
    many, many_count = listed(7)
    assert few_count == many_count == 3  # the page, the parents, the replies: never one per row
    assert many[0]["parent"] is None and [r["id"] for r in many[0]["comment_by_parent_id"]] == [
        r.json()["id"] for r in replies
    ]
    assert all(item["parent"]["id"] == root["id"] for item in many[1:])
    assert few[1]["comment_by_parent_id"] == []
    single = api.get(f"{comments}/{root['id']}", params={"include": "comment_by_parent_id"}).json()
    assert len(single["comment_by_parent_id"]) == 6
    problem(api.get(comments, params={"include": "nothing"}), 422, "ES701", "query.include[0]")

    # ManyToMany: kb's articles embed comments of the comments plugin through the join table (and need its scope).
    article = writer.post("/api/v1/kb/article", json={"slug": "pumps", "title": "Pumps"}).json()
    link = writer.post("/api/v1/kb/article_comment", json={"article_id": article["id"], "comment_id": root["id"]})
    assert link.status_code == 201, link.text
    problem(
        writer.post("/api/v1/kb/article_comment", json={"article_id": article["id"], "comment_id": root["id"]}),
        409,
        "ES703",
    )
    embedded = api.get(f"/api/v1/kb/article/{article['id']}", params={"include": "comment"}).json()
    assert [c["id"] for c in embedded["comment"]] == [root["id"]]
    problem(api.as_("token-kb-writer").get("/api/v1/kb/article", params={"include": "comment"}), 403, "ES707")
    assert api.as_("token-kb-writer").get("/api/v1/kb/article").status_code == 200
    links = api.get("/api/v1/kb/article_comment", params={"article_id": article["id"]}).json()["items"]
    assert [lk["comment_id"] for lk in links] == [root["id"]]
    response = api.patch(f"/api/v1/kb/article_comment/{links[0]['id']}", json={})
    problem(response, 405, "ES712")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "DELETE"}
    assert api.delete(f"/api/v1/kb/article_comment/{links[0]['id']}").status_code == 204


def test_method_not_allowed_lists_every_method_of_the_path(api: Api) -> None:
    response = api.request("PUT", REPORTS, json={})
    problem(response, 405, "ES712", "method")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_enum_labels_follow_accept_language(api: Api) -> None:
    url = "/api/v1/customreports/enums/report_status"
    german = api.get(url, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert german.json()["locale"] == "de" and german.headers["content-language"] == "de"
    assert german.json()["values"][0] == {"value": "draft", "label": "Entwurf"}
    plain = api.get(url, headers={"Accept-Language": "ja"}).json()
    assert plain["locale"] is None and plain["values"][1] == {"value": "published", "label": "published"}
    french = api.get("/api/v1/inspections/enums/equipment_condition", headers={"Accept-Language": "en;q=0.9, fr"})
    assert french.json()["locale"] == "fr" and french.json()["values"][-1]["label"] == "Hors service"
    problem(api.get("/api/v1/customreports/enums/nothing"), 404, "ES711")


def test_every_field_type_round_trips(api: Api) -> None:
    inspections = "/api/v1/inspections/inspection"
    sent = {
        "condition": "good",
        "inspected_on": "2026-01-31",
        "inspector_id": "12345678-1234-5678-1234-567812345678",
        "readings": {"pressure": [1.5, 2], "ok": True, "note": None},
        "temperature_c": -12.25,
        "hours_run": 2**40,
        "equipment_id": 1,
    }
    created = api.post(inspections, json=sent)
    assert created.status_code == 201, created.text
    row = created.json()
    assert {k: row[k] for k in sent} == sent
    comment = api.post(
        "/api/v1/comments/comment",
        json={"author": "a", "body": "b", "work_order_id": 1, "created_at": "2026-01-31T10:00:00+02:00"},
    ).json()
    assert comment["created_at"].replace("Z", "+00:00") == "2026-01-31T08:00:00+00:00"
    assert comment["pinned"] is False
    for beyond in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"):  # no such instant in UTC
        problem(
            api.post(
                "/api/v1/comments/comment", json={"author": "a", "body": "b", "work_order_id": 1, "created_at": beyond}
            ),
            422,
            "ES705",
        )
        problem(api.get("/api/v1/comments/comment", params={"created_at": beyond}), 422, "ES705", "query")
    defaulted = api.post("/api/v1/comments/comment", json={"author": "a", "body": "b", "work_order_id": 1}).json()
    assert defaulted["created_at"] is not None
    listed = api.get(inspections, params={"condition": "good"}).json()["items"]
    assert [r["id"] for r in listed] == [row["id"]]
    assert api.get(inspections, params={"condition": "poor"}).json()["items"] == []
    problem(api.post(inspections, json={**sent, "temperature_c": 401}), 422, "ES701", "body.temperature_c")
    problem(api.post(inspections, json={**sent, "hours_run": -1}), 422, "ES701", "body.hours_run")
    problem(api.post(inspections, json={**sent, "equipment_id": 5}), 409, "ES704")


def test_a_registry_change_is_served_without_a_restart(api: Api, applied: str, tmp_path: Path) -> None:
    assert "/api/v1/shop/item" not in api.get("/openapi.json").json()["paths"]
    problem(api.get("/api/v1/shop/item"), 404, "ES711")
    spec = """
        pluginId: shop
        version: {version}
        tables:
          - name: item
            fields:
              - {{name: name, type: String, required: true}}
{extra}
    """
    path = write_schema(tmp_path, "shop", textwrap.dedent(spec.format(version="1.0.0", extra="")))
    assert run("apply", str(path), "-d", applied).exit_code == 0
    created = api.post("/api/v1/shop/item", json={"name": "bolt"})
    assert created.status_code == 201, created.text
    problem(api.post("/api/v1/shop/item", json={"name": "nut", "size": 3}), 422, "ES701", "body.size")
    extra = "              - {name: size, type: Int, validation: {min: 1}}"
    write_schema(tmp_path, "shop", textwrap.dedent(spec.format(version="1.1.0", extra=extra)))
    assert run("apply", str(path), "-d", applied).exit_code == 0
    assert api.post("/api/v1/shop/item", json={"name": "nut", "size": 3}).json()["size"] == 3
    assert "size" in api.get("/openapi.json").json()["components"]["schemas"]["ShopItem"]["properties"]
    assert approved_delete(applied, "shop").exit_code == 0
    problem(api.get("/api/v1/shop/item"), 404, "ES711")


def test_statements_cover_every_allowed_filter_sort_and_include(api: Api) -> None:
    catalog = api.app.state.extschema.catalog
    snapshot = catalog.snapshot()
    report = snapshot.table("customreports", "report")
    names = {s.name for s in report.statements()}
    assert {"get", "list", "filter:status", "filter:code", "filter:work_order_id", "sort:status", "sort:-code"} <= names
    assert "on-delete:work_order_id" in names
    comment = snapshot.table("comments", "comment")
    names = {s.name for s in comment.statements()}
    assert {"include:parent", "include:comment_by_parent_id", "on-delete:parent_id", "sort:created_at"} <= names
    article = snapshot.table("kb", "article")
    assert {"include:comment:links", "include:comment"} <= {s.name for s in article.statements()}
    with catalog.database.transaction(read_only=True) as conn:
        for table in snapshot.tables.values():
            for named in table.statements():
                conn.execute(named.statement).all()  # every one runs as rendered


@pytest.mark.postgres
def test_each_request_runs_as_its_plugins_role(pg_url: str, tmp_path: Path) -> None:
    """With per-plugin roles the API's login reaches a plugin's rows only through SET LOCAL ROLE of its role."""
    from extschema.engine import Engine, roles

    load_core(pg_url)
    execute(pg_url, "INSERT INTO work_orders (id, title) VALUES (1, 'Pump')")
    assert run("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", pg_url).exit_code == 0
    engine = Engine(pg_url)
    login = f"api_{hashlib.sha256(pg_url.encode()).hexdigest()[:12]}"
    api_url = sa.engine.make_url(pg_url).set(username=login, password=f"secret-{login}")
    api_url = api_url.render_as_string(hide_password=False)
    plugin_role = roles.ensure(engine, "customreports").role
    try:
        setup = [
            f"CREATE ROLE {login} LOGIN NOINHERIT PASSWORD 'secret-{login}'",
            f'GRANT "{plugin_role}" TO {login}',
            f"GRANT USAGE ON SCHEMA extschema TO {login}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA extschema TO {login}",
        ]
        for statement in setup:
            execute(pg_url, statement)
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            execute(api_url, "SELECT count(*) FROM ext_customreports.report")  # not without the role
        app = create_app(Settings(api_url, tokens_file=str(tokens_file(tmp_path))))
        api = Api(app, "token-admin")
        created = api.post(REPORTS, json={"title": "as the plugin", "work_order_id": 1})
        assert created.status_code == 201, created.text
        assert [r["title"] for r in api.get(REPORTS).json()["items"]] == ["as the plugin"]
        assert api.get(REPORTS, params={"work_order_id": 1}).status_code == 200
        app.state.extschema.close()
    finally:
        execute(pg_url, f"DROP OWNED BY {login}")
        execute(pg_url, f"DROP ROLE IF EXISTS {login}")
        roles.drop(engine, "customreports")
        engine.close()


DIFFERENTIAL = """
pluginId: diff
version: 1.0.0
enums:
  - {name: level, values: [low, high]}
tables:
  - name: sample
    fields:
      - {name: s, type: String, validation: {minLength: 2, maxLength: 5, pattern: '^[a-c]+$'}}
      - {name: t, type: Text, validation: {minLength: 1, maxLength: 6}}
      - {name: i, type: Int, validation: {min: -5, max: 5}}
      - {name: n, type: Int}
      - {name: b, type: BigInt, validation: {min: 0}}
      - {name: d, type: Decimal, precision: 5, scale: 2, validation: {min: -10, max: 100.5}}
      - {name: f, type: Float, validation: {min: 0, max: 1.5}}
      - {name: e, type: Enum, enum: level}
"""

_TEXT = st.text(alphabet="abcdZ-é ", max_size=8)
_INTS = st.one_of(
    st.integers(-8, 8),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
)
_DECIMALS = st.one_of(
    st.decimals(min_value=-20, max_value=200, places=2, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-2000, max_value=2000, places=4, allow_nan=False, allow_infinity=False),
    st.sampled_from(["100.5", "100.50", "100.51", "-10", "-10.01", "999.99", "1000", "0.001", "1e2"]).map(
        decimal.Decimal
    ),
)
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "s": _TEXT,
    "t": _TEXT,
    "i": _INTS,
    "n": _INTS,
    "b": _INTS,
    "d": _DECIMALS,
    "f": st.floats(min_value=-1, max_value=2, allow_nan=False),
    "e": st.sampled_from(["low", "high", "LOW", "", "medium"]),
}


def _stored(url: str, field: str, value: Any) -> bool:
    """The database's own verdict: the row inserts, bypassing the API, and keeps exactly *value*."""
    bound = format(value, "f") if isinstance(value, decimal.Decimal) and url.startswith("sqlite") else value
    table = ext_table(url, "diff", "sample")
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            try:
                row_id = conn.execute(sa.text(f"INSERT INTO {table} ({field}) VALUES (:v) RETURNING id"), {"v": bound})
                new_id = row_id.scalar_one()
                kept = conn.execute(sa.text(f"SELECT {field} FROM {table} WHERE id = :id"), {"id": new_id}).scalar_one()
            except (sa.exc.DBAPIError, OverflowError):
                transaction.rollback()
                return False
            transaction.rollback()
    finally:
        engine.dispose()
    if isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(kept)) == value
    return bool(kept == value and type(kept) is type(value))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_api_accepts_exactly_what_the_database_checks_accept(
    differential: tuple[str, Api], data: st.DataObject
) -> None:
    url, api = differential
    field = data.draw(st.sampled_from(sorted(_VALUES)))
    value = data.draw(_VALUES[field])
    sent = str(value) if isinstance(value, decimal.Decimal) else value
    response = api.post("/api/v1/diff/sample", json={field: sent})
    assert response.status_code in (201, 422), response.text
    assert (response.status_code == 201) == _stored(url, field, value), (field, value, response.text)


@pytest.fixture
def differential(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Api]]:
    write_schema(tmp_path, "diff", DIFFERENTIAL)
    outcome = run("apply", str(tmp_path / "diff.yaml"), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    app = create_app(Settings(db_url, tokens_file=str(tokens_file(tmp_path))))
    yield db_url, Api(app, "token-admin")
    app.state.extschema.close()


_BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _subset(expected: Any, found: Any) -> bool:
    """Whether *found* has everything *expected* shows (dicts may show fewer keys; lists are whole)."""
    if isinstance(expected, dict):
        return isinstance(found, dict) and all(k in found and _subset(v, found[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(found, list) and len(found) == len(expected) and all(map(_subset, expected, found))
    return bool(expected == found)


def _http(text: str) -> tuple[str, dict[str, str], str]:
    head, _, body = text.partition("\n\n")
    first, *lines = head.splitlines()
    headers = dict(line.split(": ", 1) for line in lines)
    return first, headers, body.strip()


def test_the_requests_of_docs_api_md_answer_as_shown(applied: str, tmp_path: Path) -> None:
    page = (REPO / "docs" / "api.md").read_text()
    blocks = _BLOCK.findall(page)
    (tokens_yaml,) = [text for kind, title, text in blocks if 'title="tokens.yaml"' in title]
    for token, digest in re.findall(r"# token: (\S+)\n\s+sha256: (\w+)", tokens_yaml):
        assert hashlib.sha256(token.encode()).hexdigest() == digest
    (tmp_path / "tokens.yaml").write_text(tokens_yaml)
    app = create_app(Settings(applied, tokens_file=str(tmp_path / "tokens.yaml")))
    api = Api(app)
    exchanges = [text for kind, _, text in blocks if kind == "http"]
    assert len(exchanges) >= 12 and len(exchanges) % 2 == 0
    try:
        for request, answer in zip(exchanges[::2], exchanges[1::2], strict=True):
            line, headers, body = _http(request)
            method, path = line.split(" ", 1)
            response = api.request(method, path, headers=headers, content=body.encode() if body else None)
            status_line, expected_headers, expected_body = _http(answer)
            assert response.status_code == int(status_line.split()[1]), (line, response.text)
            for name, value in expected_headers.items():
                assert response.headers[name].startswith(value), (line, name, response.headers)
            assert _subset(json.loads(expected_body), response.json()), (line, response.text)
    finally:
        app.state.extschema.close()


def test_serve_refuses_bad_settings_before_binding(sqlite_url: str, tmp_path: Path) -> None:
    outcome = run("serve", "-d", sqlite_url, "--host", "0.0.0.0")
    assert outcome.exit_code == 2 and "ES709" in outcome.stderr
    (tmp_path / "tokens.yaml").write_text("tokens: [{name: a, sha256: nothex, scopes: [admin]}]")
    outcome = run("serve", "-d", sqlite_url, "--tokens", str(tmp_path / "tokens.yaml"))
    assert outcome.exit_code == 2 and "ES708" in outcome.stderr and "--tokens" in outcome.stderr
