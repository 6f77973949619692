"""One database: its URL, the SQLAlchemy engine its dialect builds, transactions, and its errors as problems.

Everything that differs between databases (driver options, per-connection setup, foreign key
switching, how statements are sent) is asked of the dialect from :data:`extschema.dialects.REGISTRY`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import dialects
from extschema.dialects import Dialect, ErrorClass
from extschema.dialects.base import READ_ONLY
from extschema.problems import ProblemError

_URL_HELP = "use sqlite:///path.db or postgresql://user:password@host:5432/db"
_UNPARSEABLE = "<unparseable database URL>"
_BAD_PORT = (
    ": its port is not a number, a [ of an IPv6 host is not closed, or the password holds an @, : or / "
    "(percent-encode them: %40, %3A, %2F)"
)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs: every message showing a URL shows this.

    Masked as text, not as a URL parser reads it: a malformed URL (a port that is not a number, an
    unescaped ``@`` or ``:`` in the password) is exactly the one to show, and a parser that splits it
    elsewhere than the driver would show part of the password as the host. Everything between
    ``scheme://`` and the last ``@`` is the user and password; a ``password`` query parameter is masked too.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        return _UNPARSEABLE
    userinfo, at, location = rest.rpartition("@")
    if at and not scheme.startswith("sqlite"):  # a SQLite path may hold "@" and ":", but never a password
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{location}"
    return f"{scheme}://{_PASSWORD_PARAMETER.sub(_MASKED, rest)}"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
#: ``?password=…`` (also ``sslpassword``): libpq takes a password from the query too.
_PASSWORD_PARAMETER = re.compile(r"([?&][^=&#]*password=)[^&#]*", re.IGNORECASE)
_MASKED = r"\1***"


def lock_key(plugin_id: str) -> tuple[int, int]:
    """The keys of a plugin's migration lock: two signed 32-bit keys from SHA-256 (``hashtext`` is
    32-bit and collides)."""
    digest = hashlib.sha256(f"extschema:{plugin_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True), int.from_bytes(digest[4:8], "big", signed=True)


def _usage(message: str) -> ProblemError:
    return ProblemError.one("ES404", "--database", message, kind="usage")


def parse_url(url: str) -> sa.URL:
    """*url* parsed, or a usage error (ES404) saying what is wrong with it."""
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018 -- a port that is not a number only fails when read
    except (sa.exc.ArgumentError, ValueError) as error:
        # Not the parser's own words: they quote what it took for the port, which may be part of the password.
        detail = _BAD_PORT if isinstance(error, ValueError) else ""
        shown = redact(url)
        what = "the database URL has no scheme://" if shown == _UNPARSEABLE else f"{shown} is not a database URL"
        raise _usage(f"{what}{detail}; {_URL_HELP}") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        # Else the driver reports it as a connection failure, as if the server were down.
        raise _usage(f"{redact(url)}: port {parsed.port} is out of range (1-65535); {_URL_HELP}")
    return parsed


class Database:
    """A database reached through its dialect: connections, transactions, error classification."""

    def __init__(self, url: str, core_schema: str = "public", pre_ping: bool = True) -> None:
        self.url = url
        parsed = parse_url(url)
        backend = parsed.get_backend_name()
        if backend not in dialects.REGISTRY:
            raise _usage(f"{redact(url)}: unsupported database {backend!r}; extschema supports postgresql and sqlite")
        self.dialect: Dialect = dialects.REGISTRY[backend].for_database(core_schema)
        problem = self.dialect.url_problem(parsed)
        if problem is not None:
            raise _usage(f"{redact(url)}: {problem}")
        problem = self.dialect.open_problem(parsed)
        if problem is not None:  # before connecting: a read would show an empty database instead
            raise ProblemError.one("ES407", "--database", f"cannot open {redact(url)}: {problem}", kind="usage")
        try:
            self.sa_engine = self.dialect.create_engine(parsed, pre_ping=pre_ping)
        except (sa.exc.ArgumentError, ValueError, ImportError) as error:
            raise _usage(f"{redact(url)}: {error}; {_URL_HELP}") from None
        self._parsed = parsed
        self._empty_engine: sa.Engine | None = None
        # Statements run on the raw driver cursor raise the driver's own errors.
        self._driver_error: type[Exception] = self.sa_engine.dialect.dbapi.Error  # type: ignore[union-attr]

    def close(self) -> None:
        self.sa_engine.dispose()
        if self._empty_engine is not None:
            self._empty_engine.dispose()

    def _engine(self, read_only: bool) -> sa.Engine:
        """Reads of a database that connecting would create (a missing SQLite file) see an empty one instead."""
        if read_only and self.dialect.created_by_connecting(self._parsed):
            if self._empty_engine is None:
                self._empty_engine = self.dialect.empty_engine()
            return self._empty_engine
        return self.sa_engine

    @contextlib.contextmanager
    def transaction(self, foreign_keys_off: bool = False, read_only: bool = False) -> Iterator[Connection]:
        """One transaction; errors come out as :class:`ProblemError` classified by the dialect.

        *read_only* transactions take no write lock (SQLite: a deferred BEGIN), so reads work on a
        database the user may only read.
        """
        try:
            with self._engine(read_only).connect() as conn:
                raw = conn.connection.dbapi_connection
                conn.info[READ_ONLY] = read_only
                if foreign_keys_off:
                    self.dialect.set_foreign_keys(raw, enabled=False)
                try:
                    with conn.begin():
                        yield conn
                finally:
                    if foreign_keys_off:
                        self.dialect.set_foreign_keys(raw, enabled=True)
        except (sa.exc.DBAPIError, OSError, self._driver_error) as error:
            raise self.problem(error) from error

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for catalog reads (inspection), errors classified as for transactions."""
        try:
            with self._engine(read_only=True).connect() as conn:
                conn.info[READ_ONLY] = True
                yield conn
        except (sa.exc.DBAPIError, OSError, self._driver_error) as error:
            raise self.problem(error) from error

    def execute(self, conn: Connection, statements: Sequence[str], foreign_keys_off: bool = False) -> None:
        """Run SQL text in *conn*'s transaction, as the dialect sends it."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            self.dialect.execute(cursor, statements, foreign_keys_off)
        finally:
            cursor.close()

    def execute_batch(self, conn: Connection, statements: Sequence[str]) -> None:
        """Run *statements* in *conn*'s transaction in as few round trips as the dialect allows
        (:meth:`Dialect.execute_batch`: a failure raises :class:`~extschema.dialects.BatchFailed`)."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            self.dialect.execute_batch(cursor, statements)
        finally:
            cursor.close()

    def problem(self, error: BaseException) -> ProblemError:
        """A database error as the problem a user sees (ES401 unreachable, ES403 retryable, ES402)."""
        kind = self.dialect.classify(error)
        message = database_message(error)
        if kind is ErrorClass.UNREACHABLE:
            return ProblemError.one(
                self.dialect.unreachable_code,
                "database",
                f"cannot reach {redact(self.url)}: {message}; {self.dialect.unreachable_hint}",
                kind="unreachable",
            )
        if kind is ErrorClass.RETRYABLE:
            return ProblemError.one(
                "ES403", "database", f"temporary database error, safe to retry: {message}", kind="retryable"
            )
        return ProblemError.one("ES402", "database", message, kind="database")

    def ping(self) -> str:
        """Connect and return the server version (raises ES401 when unreachable)."""
        with self.transaction(read_only=True) as conn:
            return self.dialect.server_version(conn)


def database_message(error: BaseException) -> str:
    """The database's own words, without SQLAlchemy's wrapping and SQL echo."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    sqlstate = getattr(original, "sqlstate", None)
    first = text.splitlines()[0] if text else type(original).__name__
    return f"{first} (SQLSTATE {sqlstate})" if sqlstate else first
