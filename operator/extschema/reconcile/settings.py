"""Which database a shell works on: ``--database``, else ``$EXTSCHEMA_DATABASE_URL``, else the local file.

Its own module, light on purpose: every CLI command asks it first, before it knows whether it plans.
"""

from __future__ import annotations

import os

from extschema.problems import Kind, ProblemError

DEFAULT_DATABASE_URL = "sqlite:///extschema.db"


def database_url(explicit: str | None) -> str:
    """``--database``, else ``EXTSCHEMA_DATABASE_URL``, else the embedded SQLite file.

    An explicit empty URL is a mistake (an unset shell variable, ``--database "$URL"``), never a
    request for the local file: applying to the wrong database is worse than stopping. The same
    holds for ``EXTSCHEMA_DATABASE_URL`` set to nothing (``EXTSCHEMA_DATABASE_URL=$UNSET``).
    """
    from_environment = os.environ.get("EXTSCHEMA_DATABASE_URL")
    example = "a URL such as postgresql://HOST/DB or sqlite:///FILE"
    empty = None
    if explicit is not None and not explicit.strip():
        empty = (
            f"the database URL is empty; give {example}, "
            "or leave --database out to use $EXTSCHEMA_DATABASE_URL or sqlite:///extschema.db"
        )
    elif explicit is None and from_environment is not None and not from_environment.strip():
        empty = (
            f"$EXTSCHEMA_DATABASE_URL is set but empty; set it to {example}, "
            "unset it to use sqlite:///extschema.db, or give --database"
        )
    if empty is not None:
        raise ProblemError.one("ES404", "--database", empty, kind=Kind.USAGE)
    if explicit:
        return explicit
    return from_environment or DEFAULT_DATABASE_URL
