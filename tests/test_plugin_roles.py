"""Per-plugin database roles on real PostgreSQL: each role can CRUD its own plugin's tables and nothing else.

Two plugins and the host application's core tables hold rows; the ``tickets`` role logs in with the password
``engine.roles`` returned and is tried against its own tables (all of CRUD, identity ids), the other plugin's,
the core's, the registry, and DDL. Then: tables of a later version are covered without another grant, the
password is kept or replaced as asked, and dropping the role works whether the plugin's schema is still there
or already dropped (and does not stop DROP SCHEMA ... RESTRICT). SQLite is refused with ES406.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from extschema.engine import Engine, roles
from extschema.problems import ProblemError
from tests.controlplane import Cluster
from tests.helpers import approved_delete, execute, load_core, run, write_schema
from tests.specs import SHOP

pytest_plugins = ["tests.controlplane.fixtures"]

REPO = Path(__file__).resolve().parent.parent

TICKETS = """
pluginId: tickets
version: 1.0.0
tables:
  - name: ticket
    fields: [{name: title, type: String, required: true}]
relationships:
  - {source: ticket, sourceField: work_order_id, target: core.work_orders, type: ManyToOne, onDelete: Cascade}
"""

TICKETS_V2 = TICKETS.replace("version: 1.0.0", "version: 1.1.0").replace(
    "relationships:", "  - name: comment\n    fields: [{name: body, type: Text}]\nrelationships:"
)


@pytest.fixture
def engine(pg_url: str, tmp_path: Path) -> Iterator[Engine]:
    load_core(pg_url)
    execute(pg_url, "INSERT INTO work_orders (id, title) VALUES (1, 'pump'), (2, 'valve')")
    for name, body in (("shop", SHOP), ("tickets", TICKETS)):
        assert run("apply", str(write_schema(tmp_path, name, body)), "-d", pg_url).exit_code == 0
    execute(pg_url, """INSERT INTO ext_shop."order" (title) VALUES ('first order')""")
    engine = Engine(pg_url)
    yield engine
    for plugin in ("tickets", "shop"):
        roles.drop(engine, plugin)
    engine.close()


def login(role: roles.PluginRole) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(role.url, autocommit=True)


def password_is(pg_url: str, role: str, password: str) -> bool:
    """The role's stored SCRAM verifier is *password*'s (the test server trusts local logins, so a login alone
    would not show which password the role has)."""
    [(stored,)] = execute(pg_url, "SELECT rolpassword FROM pg_authid WHERE rolname = :role", {"role": role})
    head, _ = str(stored).removeprefix("SCRAM-SHA-256$").split("$")
    iterations, salt = head.split(":")
    return roles.scram_verifier(password, base64.b64decode(salt), int(iterations)) == stored


def denied(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> bool:
    try:
        conn.execute(sql)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


pytestmark = pytest.mark.postgres


def test_role_crud_on_its_own_tables_only(engine: Engine, pg_url: str) -> None:
    role = roles.ensure(engine, "tickets")
    assert role.role.startswith("ext_tickets__t_") and role.schema == "ext_tickets"
    assert password_is(pg_url, role.role, role.password) and not password_is(pg_url, role.role, "other")
    assert role.secret_data()["username"] == role.role and role.password not in repr(role)
    with login(role) as conn:
        row = conn.execute(
            "INSERT INTO ext_tickets.ticket (title, work_order_id) VALUES ('leak', 1) RETURNING id"
        ).fetchone()
        assert row is not None  # the identity column's sequence is usable
        conn.execute("INSERT INTO ext_tickets.ticket (title, work_order_id) VALUES ('noise', 2)")
        conn.execute("UPDATE ext_tickets.ticket SET title = 'big leak' WHERE id = %s", (row[0],))
        titles = {r[0] for r in conn.execute("SELECT title FROM ext_tickets.ticket")}
        assert titles == {"big leak", "noise"}
        assert conn.execute("DELETE FROM ext_tickets.ticket WHERE title = 'noise'").rowcount == 1
        # Another plugin's tables, the core's, the registry: not even readable.
        assert denied(conn, 'SELECT * FROM ext_shop."order"')
        assert denied(conn, "SELECT * FROM public.work_orders")
        assert denied(conn, "UPDATE public.work_orders SET title = 'x'")
        assert denied(conn, "SELECT * FROM extschema.extension_schemas")
        # No DDL, not even on its own schema, and no TRUNCATE.
        assert denied(conn, "CREATE TABLE ext_tickets.extra (id int)")
        assert denied(conn, "DROP TABLE ext_tickets.ticket")
        assert denied(conn, "ALTER TABLE ext_tickets.ticket ADD COLUMN x int")
        assert denied(conn, "TRUNCATE ext_tickets.ticket")
        assert denied(conn, "CREATE TABLE public.extra (id int)")
    # The other plugin's own role is just as confined.
    shop = roles.ensure(engine, "shop")
    with login(shop) as conn:
        assert conn.execute('SELECT title FROM ext_shop."order"').fetchall() == [("first order",)]
        assert denied(conn, "SELECT * FROM ext_tickets.ticket")


def test_tables_of_a_later_version_are_covered_and_passwords_kept_or_replaced(
    engine: Engine, pg_url: str, tmp_path: Path
) -> None:
    first = roles.ensure(engine, "tickets")
    assert run("apply", str(write_schema(tmp_path, "tickets", TICKETS_V2)), "-d", pg_url).exit_code == 0
    with login(first) as conn:  # no second ensure: default privileges cover the new table
        conn.execute("INSERT INTO ext_tickets.comment (body) VALUES ('hello')")
        assert conn.execute("SELECT body FROM ext_tickets.comment").fetchall() == [("hello",)]
    again = roles.ensure(engine, "tickets", first.password)  # e.g. from the existing Secret
    assert again.password == first.password and again.url == first.url
    assert password_is(pg_url, first.role, first.password)
    with login(again) as conn:
        assert conn.execute("SELECT count(*) FROM ext_tickets.comment").fetchone() == (1,)
    rotated = roles.ensure(engine, "tickets", "short")  # not a password this module makes: replaced
    assert rotated.password not in (first.password, "short")
    assert password_is(pg_url, first.role, rotated.password) and not password_is(pg_url, first.role, first.password)
    assert not password_is(pg_url, first.role, "short")


@pytest.mark.parametrize("order", ["role-then-plugin", "plugin-then-role"])
def test_drop_revokes_and_removes_the_role(engine: Engine, pg_url: str, order: str) -> None:
    role = roles.ensure(engine, "tickets")
    if order == "plugin-then-role":
        # The plugin's schema (with the role's default privileges in it) is dropped RESTRICT first.
        assert approved_delete(pg_url, "tickets").exit_code == 0
        assert execute(pg_url, "SELECT to_regnamespace('ext_tickets')") == [(None,)]
    assert roles.drop(engine, "tickets") is True
    assert execute(pg_url, f"SELECT count(*) FROM pg_roles WHERE rolname = '{role.role}'") == [(0,)]
    if order == "role-then-plugin":
        assert execute(pg_url, "SELECT count(*) FROM pg_default_acl") == [(0,)]
        assert approved_delete(pg_url, "tickets").exit_code == 0
    with pytest.raises(psycopg.OperationalError):
        login(role).close()
    assert roles.drop(engine, "tickets") is False


def test_sqlite_has_no_roles(sqlite_url: str) -> None:
    engine = Engine(sqlite_url)
    try:
        with pytest.raises(ProblemError) as raised:
            roles.ensure(engine, "tickets")
        (problem,) = raised.value.problems
        assert problem.code == "ES406" and problem.path == "spec.pluginRoles"
    finally:
        engine.close()


def test_scram_verifier_matches_the_rfc_7677_example() -> None:
    """RFC 7677 section 3 (user "user", password "pencil"): the exchange's proof and signature check out."""
    verifier = roles.scram_verifier("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    head, keys = verifier.split("$", 1)[1].split("$")
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}".encode()
    server_signature = hmac.new(server_key, auth, "sha256").digest()
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.new(stored_key, auth, "sha256").digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


# --- what PUBLIC still gives every role, as docs/plugin-roles.md lists it -------------------------------------


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def refused_login(url: str) -> bool:
    try:
        psycopg.connect(url, autocommit=True).close()
    except psycopg.OperationalError as error:
        return "permission denied for database" in str(error)
    return False


@pytest.fixture
def other_database(pg_admin_url: str, pg_url: str) -> Iterator[str]:
    """Another database on the same server, with a table of its own (granted to nobody)."""
    name = f"other_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    execute(url, "CREATE TABLE public.payroll (id int, salary int)")
    execute(url, "INSERT INTO public.payroll VALUES (1, 100)")
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_what_public_still_grants_the_role_and_how_an_administrator_takes_it_away(
    engine: Engine, pg_url: str, other_database: str
) -> None:
    """Before: docs/plugin-roles.md said the role "can only use its own schema" and "cannot run DDL", while
    PUBLIC's defaults let it create temporary objects and log in to the server's other databases."""
    role = roles.ensure(engine, "tickets")
    elsewhere = role.url.rsplit("/", 1)[0] + f"/{other_database}"
    execute(pg_url, "CREATE FUNCTION public.double_it(n int) RETURNS int LANGUAGE sql AS 'SELECT 2 * n'")
    with login(role) as conn:
        # Temporary objects in its own session (PUBLIC's TEMPORARY on the database).
        conn.execute("CREATE TEMP TABLE scratch (a int)")
        conn.execute("CREATE TEMP VIEW scratch_view AS SELECT a FROM scratch")
        conn.execute("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        assert conn.execute("SELECT pg_temp.f()").fetchone() == (1,)
        # The catalogs name every table (another plugin's too), but no rows can be read.
        names = {
            r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'ext_shop'::regnamespace")
        }
        assert "order" in names and denied(conn, 'SELECT * FROM ext_shop."order"')
        # Functions PUBLIC may execute (PostgreSQL's default for every new function).
        assert conn.execute("SELECT public.double_it(21)").fetchone() == (42,)
        # Still no schema of its own making, no other role, nothing in extschema's backups.
        assert denied(conn, "CREATE SCHEMA mine") and denied(conn, "SET ROLE postgres")
        assert denied(conn, "SELECT * FROM extschema_backup.anything")
        # Large objects need no privilege: the role owns what it creates.
        (oid,) = conn.execute("SELECT lo_from_bytea(0, 'kept'::bytea)").fetchone() or (None,)
    # The server's other databases (PUBLIC's CONNECT): it logs in, but reads no table there.
    with psycopg.connect(elsewhere, autocommit=True) as conn:
        assert denied(conn, "SELECT * FROM public.payroll") and denied(conn, "SET ROLE postgres")
        conn.execute("CREATE TEMP TABLE scratch (a int)")
        conn.execute("SELECT lo_from_bytea(0, 'elsewhere'::bytea)")

    # What docs/plugin-roles.md tells an administrator to run; extschema's own CONNECT grant keeps the
    # role's way into its database.
    execute(pg_url, f'REVOKE TEMPORARY ON DATABASE "{_database(pg_url)}" FROM PUBLIC')
    execute(pg_url, f'REVOKE CONNECT ON DATABASE "{_database(pg_url)}" FROM PUBLIC')
    execute(pg_url, f'REVOKE CONNECT ON DATABASE "{other_database}" FROM PUBLIC')
    with login(role) as conn:
        assert denied(conn, "CREATE TEMP TABLE scratch (a int)")
        assert denied(conn, "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("INSERT INTO ext_tickets.ticket (title, work_order_id) VALUES ('still works', 1)")
    assert refused_login(elsewhere)

    # Dropping the role keeps the large object it made (it may hold the plugin's data): it goes to the
    # operator's user. One in another database stops the drop until an administrator reassigns it there.
    with pytest.raises(ProblemError) as raised:
        roles.drop(engine, "tickets")
    assert raised.value.problems[0].code == "ES402"
    other_url = pg_url.rsplit("/", 1)[0] + f"/{other_database}"
    execute(other_url, f'REASSIGN OWNED BY "{role.role}" TO CURRENT_USER')
    assert roles.drop(engine, "tickets") is True
    assert execute(pg_url, f"SELECT convert_from(lo_get({oid}), 'UTF8')") == [("kept",)]
    assert execute(pg_url, "SELECT count(*) FROM pg_database WHERE datacl::text LIKE '%ext_tickets%'") == [(0,)]


# --- the operator: spec.pluginRoles on a DatabaseTarget -----------------------------------------------------


@pytest.mark.k8s
@pytest.mark.slow
def test_operator_hands_out_credentials_and_drops_the_role(kube_cluster: Cluster, pg_url: str, tmp_path: Path) -> None:
    """The ExtensionSchema's Secret <name>-db-credentials logs in as a role confined to the plugin; deleting the
    resource drops the role and (ownerReference) the Secret."""
    load_core(pg_url)
    execute(pg_url, "INSERT INTO work_orders (id, title) VALUES (1, 'pump')")
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/extensionschemas.extschema.io", "crd/databasetargets.extschema.io"
    )
    namespace = f"roles-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", namespace)
    target = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "DatabaseTarget",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"url": pg_url, "pluginRoles": True},
    }
    schema = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "tickets", "namespace": namespace},
        "spec": {**yaml.safe_load(TICKETS), "targetRef": {"name": "app"}},
    }
    log = tmp_path / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "EXTSCHEMA_RECHECK_SECONDS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "extschema", "run", "--standalone", "-n", namespace],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    kubectl = functools.partial(kube_cluster.kubectl, "-n", namespace)
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all([target, schema]))
        kubectl("wait", "--for=condition=Ready", "exts/tickets", "--timeout=60s")
        secret = json.loads(kubectl("get", "secret", "tickets-db-credentials", "-o", "json").stdout)
        data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
        assert set(data) == {"username", "password", "schema", "url"} and data["schema"] == "ext_tickets"
        (owner,) = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("ExtensionSchema", "tickets")
        assert password_is(pg_url, data["username"], data["password"])
        with psycopg.connect(data["url"], autocommit=True) as conn:
            conn.execute("INSERT INTO ext_tickets.ticket (title, work_order_id) VALUES ('leak', 1)")
            assert conn.execute("SELECT title FROM ext_tickets.ticket").fetchall() == [("leak",)]
            assert denied(conn, "SELECT * FROM public.work_orders")
        # A re-reconcile (spec touched) keeps the password the applications already read.
        kubectl("patch", "exts/tickets", "--type=merge", "-p", '{"spec":{"description":"tickets v1"}}')
        kubectl("wait", "--for=jsonpath={.status.observedGeneration}=2", "exts/tickets", "--timeout=60s")
        again = json.loads(kubectl("get", "secret", "tickets-db-credentials", "-o", "json").stdout)
        assert base64.b64decode(again["data"]["password"]).decode() == data["password"]
        assert password_is(pg_url, data["username"], data["password"])

        kubectl("delete", "exts/tickets", "--timeout=60s")
        assert execute(pg_url, f"SELECT count(*) FROM pg_roles WHERE rolname = '{data['username']}'") == [(0,)]
        kubectl("wait", "--for=delete", "secret/tickets-db-credentials", "--timeout=60s")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(log.read_text(errors="replace")[-4000:])
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
