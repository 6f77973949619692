"""Per-plugin database roles (PostgreSQL): each plugin's application code gets its own least-privilege login.

The operator migrates with a powerful user; the plugin's code should not run with it. With roles enabled
(``spec.pluginRoles`` on a DatabaseTarget) every plugin gets one LOGIN role granted CONNECT on its database,
its own schema and read/insert/update/delete on its own tables (and their identity sequences), nothing else:
no DDL, no other plugin's schema, no core table, no registry. What PostgreSQL gives every role through PUBLIC
(temporary objects, CONNECT to other databases, large objects) is not revoked here: that would change it for
every role of the server (docs/plugin-roles.md lists it, and what an administrator runs to take it away). Its
credentials go into a Secret next to the ExtensionSchema; deleting the ExtensionSchema revokes everything and
drops the role.

The password is generated here and sent to the server only as a SCRAM-SHA-256 verifier, so statement logs
never contain it. ``ensure`` is idempotent: it creates or updates the role (setting the password it is given,
e.g. the one already in the Secret) and re-grants, so it can run after every apply.

SQLite has no users: asking for roles there is refused with ES406.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets

import sqlalchemy as sa

from extschema import naming
from extschema.dialects.postgresql import PostgresDialect
from extschema.engine.migrator import Engine
from extschema.problems import Kind, ProblemError

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
_PASSWORD_BYTES = 32


@dataclasses.dataclass(frozen=True)
class PluginRole:
    """A plugin's login: what goes into its Secret."""

    plugin_id: str
    role: str
    schema: str
    password: str = dataclasses.field(repr=False)
    url: str = dataclasses.field(repr=False)  # the target's URL with the role's credentials

    def secret_data(self) -> dict[str, str]:
        """The Secret's keys (``stringData``): a ready URL plus its parts for clients that want them."""
        return {"username": self.role, "password": self.password, "schema": self.schema, "url": self.url}


def new_password() -> str:
    return secrets.token_urlsafe(_PASSWORD_BYTES)


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for *password* (RFC 5802/7677; ASCII passwords, no SASLprep)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _dialect(engine: Engine) -> PostgresDialect:
    dialect = engine.database.dialect
    if not isinstance(dialect, PostgresDialect):
        raise ProblemError.one(
            "ES406",
            "spec.pluginRoles",
            f"per-plugin roles need PostgreSQL; this target is {dialect.name}, which has no database users. "
            "Remove spec.pluginRoles from the DatabaseTarget or point it at PostgreSQL.",
            kind=Kind.USAGE,
        )
    return dialect


def _usable(password: str) -> bool:
    """A password kept from an earlier Secret: only one this module could have made (no SASLprep needed)."""
    return len(password) >= 16 and password.isascii() and password.isprintable()


def role_name(engine: Engine, plugin_id: str) -> str:
    """The plugin's role in the target's database (roles are server-wide; the name includes the database)."""
    return _dialect(engine).plugin_role_name(plugin_id, sa.engine.make_url(engine.url).database or "")


def ensure(engine: Engine, plugin_id: str, password: str | None = None) -> PluginRole:
    """Create or update the plugin's role with *password* (a new one when None) and grant it its schema."""
    dialect = _dialect(engine)
    url = sa.engine.make_url(engine.url)
    role = dialect.plugin_role_name(plugin_id, url.database or "")
    password = password if password is not None and _usable(password) else new_password()
    with engine.database.transaction() as conn:
        exists = conn.exec_driver_sql(dialect.role_exists_query(role)).first() is not None
        statements = [
            *dialect.create_or_alter_role(role, exists, scram_verifier(password)),
            *dialect.grant_plugin_database(role, url.database or ""),
            *dialect.grant_plugin_role(plugin_id, role),
        ]
        engine.database.execute(conn, statements)
    login = url.set(username=role, password=password).render_as_string(hide_password=False)
    schema = naming.plugin_schema(plugin_id)
    return PluginRole(plugin_id=plugin_id, role=role, schema=schema, password=password, url=login)


def drop(engine: Engine, plugin_id: str) -> bool:
    """Revoke what the role was given and drop it; False when there was no role. Works before and after the
    plugin's schema is dropped. What the role made in the database (large objects) goes to the migrating user."""
    dialect = _dialect(engine)
    role = role_name(engine, plugin_id)
    schema = naming.plugin_schema(plugin_id)
    database = sa.engine.make_url(engine.url).database or ""
    with engine.database.transaction() as conn:
        if conn.exec_driver_sql(dialect.role_exists_query(role)).first() is None:
            return False
        has_schema = conn.exec_driver_sql(f"SELECT to_regnamespace({dialect.literal(schema)})").scalar() is not None
        owns = conn.exec_driver_sql(dialect.role_owns_objects_query(role)).first() is not None
        statements = [
            *(dialect.reassign_owned(role) if owns else []),
            *(dialect.revoke_plugin_role(plugin_id, role) if has_schema else []),
            *dialect.revoke_plugin_database(role, database),
            *dialect.drop_role(role),
        ]
        engine.database.execute(conn, statements)
    return True
