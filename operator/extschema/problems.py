"""Problems a user can see, each with a stable code.

Every error extschema reports to a person goes through :class:`Problem`: what is wrong, where
(a path like ``spec.tables[1].fields[0].type``) and how to fix it. Codes never change meaning
once released; ``docs/errors.md`` is checked against :data:`CATALOG` by a test.
"""

from __future__ import annotations

import dataclasses
import enum
import unicodedata
from collections.abc import Iterable, Sequence

#: code -> one-line title. Grouped: ES0xx documents, ES1xx spec rules, ES2xx conflicts,
#: ES3xx refused changes, ES4xx database, ES5xx warnings (the change goes ahead, with less than asked).
CATALOG: dict[str, str] = {
    "ES001": "The file is not valid YAML",
    "ES002": "A document is not a mapping",
    "ES003": "Unsupported apiVersion for an extschema kind",
    "ES004": "No ExtensionSchema document found",
    "ES005": "Path not found or not readable",
    "ES006": "Duplicate key in a YAML mapping",
    "ES007": "YAML aliases expand too far",
    "ES008": "A number has more digits than are kept",
    "ES009": "ExtensionSchema too large to record",
    "ES010": "Wrong value type",
    "ES011": "Unknown field",
    "ES012": "Missing required field",
    "ES013": "Value not one of the allowed choices",
    "ES014": "Unknown or misspelt kind",
    "ES015": "DatabaseTarget needs exactly one of url and urlSecretRef",
    "ES016": "Invalid duration",
    "ES017": "Invalid DatabaseTarget url",
    "ES018": "targetRef names no DatabaseTarget given",
    "ES019": "Schemas given together go to different databases",
    "ES020": "Invalid metadata.name",
    "ES026": "No such target of the ExtensionSchema",
    "ES027": "targetSelector matches no DatabaseTarget",
    "ES028": "An approval matches no waiting plan",
    "ES029": "targetRef, targetSelector and rollout do not fit together",
    "ES101": "Invalid identifier",
    "ES102": "Name too long for the database",
    "ES103": "Reserved name",
    "ES104": "Duplicate name",
    "ES105": "Default does not fit the field",
    "ES106": "Rule or option not valid for the field type",
    "ES107": "Inconsistent bounds",
    "ES108": "Invalid or non-portable regular expression",
    "ES109": "Invalid enum values",
    "ES110": "Invalid Decimal precision or scale",
    "ES111": "Index or constraint names an unknown field",
    "ES112": "Enum field without a known enum",
    "ES113": "Relationship end cannot be resolved",
    "ES114": "Too many columns",
    "ES115": "Invalid semantic version",
    "ES116": "Invalid pluginId",
    "ES117": "Invalid dependsOn",
    "ES118": "Reference to a plugin that is not in dependsOn",
    "ES119": "Invalid localization",
    "ES120": "onDelete SetNull on a required column",
    "ES121": "Too many fields in an index",
    "ES122": "Relationship field clashes with a declared field",
    "ES123": "Regular expression too complex",
    "ES124": "Name a database reserves",
    "ES125": "Raw SQL does not parse",
    "ES126": "Raw SQL touches objects outside the plugin",
    "ES127": "Invalid renamedFrom",
    "ES128": "Invalid renamedValues",
    "ES129": "Foreign keys between the plugin's tables go round",
    "ES201": "pluginId already claimed by another resource",
    "ES202": "Physical name collision",
    "ES203": "Enum name collision",
    "ES204": "Reference to a missing table or field",
    "ES205": "Dependency not declared or not registered",
    "ES206": "Dependency cycle",
    "ES207": "Foreign key type mismatch",
    "ES208": "Dependency not ready",
    "ES209": "Retained objects differ from the retained spec",
    "ES301": "Change cannot be carried out",
    "ES302": "New required field needs a default",
    "ES303": "Deletion blocked by dependent plugins",
    "ES304": "Migration history checksum mismatch",
    "ES305": "Nothing to roll back",
    "ES306": "Plugin not registered",
    "ES307": "Plan needs approval",
    "ES308": "Approval is for another plan",
    "ES309": "Existing rows violate the changed field",
    "ES310": "Schema changed without a new version",
    "ES311": "No recorded schema for the lower version",
    "ES312": "Type change not supported",
    "ES313": "Raw SQL not allowed by the target",
    "ES314": "No backup for that migration",
    "ES315": "Restore target missing",
    "ES316": "Applied raw SQL step changed",
    "ES317": "Latest migration never finished",
    "ES318": "Restore blocked by rows written since",
    "ES319": "Backed-up value does not fit the column now",
    "ES320": "--approve is not a plan hash",
    "ES401": "Database unreachable",
    "ES402": "Migration failed in the database",
    "ES403": "Temporary database error (retry)",
    "ES404": "Unsupported database URL",
    "ES405": "Registry row unreadable",
    "ES406": "Per-plugin roles need PostgreSQL",
    "ES407": "SQLite database file cannot be opened",
    "ES420": "Peering object cannot be set up",
    "ES421": "Peering object may not be created",
    "ES422": "Resource changed while it was being applied",
    "ES423": "Kubernetes API did not answer before a migration",
    "ES501": "Pattern not enforced by SQLite",
    "ES503": "Database differs from the unchanged spec (drift)",
    "ES701": "Invalid request value",
    "ES702": "No row with that id",
    "ES703": "Another row has that unique value",
    "ES704": "Foreign key conflict",
    "ES705": "The database refused a value",
    "ES706": "Missing or unknown bearer token",
    "ES707": "The token lacks the scope",
    "ES708": "Invalid tokens file",
    "ES709": "No tokens: the server binds to loopback only",
    "ES710": "Invalid list cursor",
    "ES711": "Nothing served at that path",
    "ES712": "Method not allowed on that path",
    "ES713": "Request body is not JSON",
    "ES714": "Database unavailable",
    "ES715": "Unexpected server error",
    "ES716": "Writes need a server with tokens",
    "ES601": "The ExtensionSchema is Stalled",
    "ES602": "Timed out waiting for the ExtensionSchema",
    "ES603": "The Kubernetes API cannot be used",
    "ES610": "No such ExtensionSchema",
    "ES611": "No plan waits for approval",
    "ES612": "The plan waiting is not the one approved",
    "ES613": "The resource kept changing while it was approved",
    "ES614": "The Kubernetes API cannot be used by kubectl extschema",
    "ES720": "The API request's plan needs approval (?approve=HASH)",
    "ES721": "The API request approves another plan",
    "ES722": "Schemas are read-only on this API server (kubectl apply)",
    "ES723": "The document's pluginId is not the URL's",
    "ES724": "Plugin not registered (API)",
    "ES725": "Migration not found or not the latest",
    "ES726": "Database not reachable (readiness)",
    "ES727": "The request body is not an ExtensionSchema document",
    "ES731": "--provider differs from the database's",
    "ES732": "A complete Prisma schema needs the database",
    "ES733": "A Prisma fragment references what only the database knows",
    "ES740": "No plugin to generate types for",
    "ES741": "Two generated type names are the same",
    "ES750": "A plugin table to analyse is missing",
    "ES751": "The plugin to analyse is not active",
    "ES760": "The core description cannot be read",
    "ES761": "A core table the diff needs is not described",
    "ES762": "The core SQL does not run on SQLite",
    "ES763": "Invalid diff or diagram arguments",
    "ES764": "A plugin of OLD is not in NEW (note)",
    "ES765": "A lower version cannot be diffed offline",
    "ES766": "Graphviz (dot) is not installed",
    "ES767": "Graphviz (dot) failed",
}


class Kind(enum.StrEnum):
    """What kind of failure stops the work; picks the CLI exit code and the operator's condition reason.

    A ``StrEnum``, so ``error.kind == "conflict"`` and mappings keyed by the plain strings keep working.
    """

    INVALID = "invalid"  # the spec breaks a rule (exit 1, InvalidSpec)
    CONFLICT = "conflict"  # another claim holds a name (exit 1, Conflict)
    REFUSED = "refused"  # the change is not allowed (exit 1, RefusedChange)
    DEPENDENCY = "dependency"  # a dependency is not applied yet (exit 1, DependencyNotReady)
    USAGE = "usage"  # the command line or URL is wrong (exit 2, InvalidTarget)
    DATABASE = "database"  # the database refused the migration (exit 3, MigrationFailed)
    APPROVAL = "approval"  # the plan waits for an approval of its hash (exit 1, ApprovalRequired)
    RETRYABLE = "retryable"  # a temporary database error (exit 3, DatabaseUnavailable, retried)
    UNREACHABLE = "unreachable"  # no connection (exit 3, DatabaseUnavailable, retried)


def escape(text: str, newlines: bool = False) -> str:
    """*text* safe for a terminal: control and format characters written as Python escapes (``\\x1b``).

    File names, plugin names and registry values can hold escape sequences that would clear the
    screen or rewrite earlier lines; ``newlines`` keeps line breaks (a database's multi-line message).
    """
    return "".join(
        char
        if (newlines and char == "\n") or unicodedata.category(char) not in _UNPRINTABLE
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


#: Unicode categories never written raw to a terminal: controls, format (bidi overrides), separators
#: other than the space, surrogates, private use and unassigned code points.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong, located and explained."""

    code: str
    path: str
    message: str
    file: str | None = None
    #: Whose document it is about (``namespace/name`` or a document's name), when several are checked together.
    subject: str | None = None
    #: Where in the file (1-based), when the path could be traced back to the YAML it came from; set by
    #: :meth:`at` only (not constructor arguments: callers pass ``**{"file": ..., "subject": ...}``).
    line: int | None = dataclasses.field(default=None, init=False)
    column: int | None = dataclasses.field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.code not in CATALOG:  # a programming error, never user input
            raise ValueError(f"unknown problem code {self.code!r}")

    def located(self, file: str) -> Problem:
        """The same problem, attributed to a file."""
        return self._placed(dataclasses.replace(self, file=file), self.line, self.column)

    def at(self, line: int | None, column: int | None) -> Problem:
        """The same problem, with its line and column in the file."""
        return self._placed(dataclasses.replace(self), line, column)

    def about(self, subject: str) -> Problem:
        """The same problem, attributed to the owner of a document."""
        return self._placed(dataclasses.replace(self, subject=subject), self.line, self.column)

    @staticmethod
    def _placed(problem: Problem, line: int | None, column: int | None) -> Problem:
        object.__setattr__(problem, "line", line)
        object.__setattr__(problem, "column", column)
        return problem

    def render(self) -> str:
        """``FILE[:LINE:COL]: spec.path: CODE: message`` — the CLI's one-line form, safe to print to a terminal."""
        where_in_file = f":{self.line}:{self.column}" if self.file and self.line is not None else ""
        prefix = f"{escape(self.file)}{where_in_file}: " if self.file else ""
        where = escape(self.path) or "-"
        return f"{prefix}{where}: {self.code}: {escape(self.message, newlines=True)}"


class ProblemError(Exception):
    """Raised below the shells when work must stop for reasons a user can fix.

    ``kind`` picks the CLI exit code and the operator's condition reason:
    ``invalid`` / ``conflict`` / ``refused`` / ``dependency`` (exit 1), ``usage`` (exit 2),
    ``database`` / ``unreachable`` / ``retryable`` (exit 3; the operator retries the last two
    with backoff).
    """

    def __init__(self, problems: Sequence[Problem], kind: Kind | str = Kind.INVALID) -> None:
        self.problems = list(problems)
        self.kind = Kind(kind)
        super().__init__("; ".join(p.render() for p in self.problems))

    @classmethod
    def one(cls, code: str, path: str, message: str, kind: Kind | str = Kind.INVALID) -> ProblemError:
        return cls([Problem(code, path, message)], kind)


def render_all(problems: Iterable[Problem]) -> str:
    return "\n".join(p.render() for p in problems)
