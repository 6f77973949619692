"""The ``extschema`` command line: a thin shell over :mod:`extschema.reconcile`.

Exit codes are a contract: 0 ok; 1 invalid spec, conflict or refused change; 2 usage error;
3 database unreachable or database error; 4 timed out (``wait``). No user error ends in a traceback.

Start-up is part of the interface: ``--version`` and ``validate`` import neither the engine
(SQLAlchemy, psycopg) nor kopf; commands that need a database import them when they run.
Text written to the terminal is escaped (:func:`~extschema.problems.escape`): file names and
registry values may hold escape sequences.
"""

from extschema.cli import codegen, lifecycle, offline, schemas, servers, shells
from extschema.cli.base import EXIT_BY_KIND, EXIT_DATABASE, EXIT_INVALID, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, main

# Last, once every module above has added its commands: each --help ends with its examples.
shells.attach_examples(main, shells.EXAMPLES)

__all__ = [
    "EXIT_BY_KIND",
    "EXIT_DATABASE",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "codegen",
    "lifecycle",
    "main",
    "offline",
    "schemas",
    "servers",
    "shells",
]
