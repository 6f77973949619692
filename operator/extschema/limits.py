"""The single source of the limits and defaults extschema holds to.

Most numbers are PostgreSQL's own limits (a spec that passes validation must not fail there);
the rest are extschema's choices: defaults for options a spec may leave out, the bounds the CRD
declares, the registry's column sizes, migration and connection timeouts, and the operator's
pacing. Each number is named once here and read where it applies (modules that exported a name
before keep it as an alias). Pure data: this module imports nothing, so every layer may use it.
"""

from __future__ import annotations

MAX_COLUMNS = 1600  # PostgreSQL's limit per table, counting id and FK columns
MAX_INDEX_FIELDS = 32  # PostgreSQL's INDEX_MAX_KEYS
MAX_PATTERN_LENGTH = 1000
MAX_PATTERN_SIZE = 2000  # positions a pattern unrolls to (portable_regex.expanded_size); measured on PostgreSQL 15
MAX_REPEAT = 255  # PostgreSQL's RE_DUP_MAX: larger {m,n} bounds are an error there
MAX_VARCHAR_LENGTH = 10_485_760  # PostgreSQL's varchar(n) limit
DEFAULT_STRING_LENGTH = 255  # a String without maxLength: varchar(255), the common ORM default
DEFAULT_PRECISION = 18  # a Decimal without precision: numeric(18, 2) holds any BigInt and cents
DEFAULT_SCALE = 2
MAX_PRECISION = 1000  # PostgreSQL's NUMERIC_MAX_PRECISION
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated
MAX_ENUM_LABEL_BYTES = MAX_IDENTIFIER_BYTES  # an enum label is a PostgreSQL name too
INT_RANGES = {"Int": (-(2**31), 2**31 - 1), "BigInt": (-(2**63), 2**63 - 1)}
MAX_PLUGIN_ID_LENGTH = 40  # keeps "ext_<id>" schemas and SQLite's "ext_<id>__" table prefixes well inside 63 bytes
MAX_VERSION_LENGTH = 64  # spec.version; the registry column holds REGISTRY_VERSION_LENGTH
MAX_RESOURCE_NAME_LENGTH = 253  # metadata.name: a Kubernetes DNS-1123 subdomain
MAX_NAMESPACE_LENGTH = 63  # metadata.namespace: a DNS-1123 label
#: An owner is "namespace/name" in a cluster, "name" from files.
MAX_OWNER_LENGTH = MAX_NAMESPACE_LENGTH + 1 + MAX_RESOURCE_NAME_LENGTH
MAX_TIMEZONE_OFFSET_MINUTES = 15 * 60 + 59  # PostgreSQL refuses larger displacements ("+16:00")

# Sizes of a spec's lists and texts, declared in the CRD so the API server refuses a runaway
# resource before the operator reads it (and CEL rules stay within their cost budget).
MAX_TABLES = 256
MAX_FIELDS = 1024  # per table; MAX_COLUMNS still applies to the table's columns in the database
MAX_ENUMS = 256
MAX_ENUM_VALUES = 1024
MAX_RELATIONSHIPS = 512
MAX_INDEXES = 128  # per table, and as many unique constraints
MAX_DEPENDS_ON = 64
MAX_LOCALES = 64
MAX_LOCALIZED_LABEL_LENGTH = 1024
MAX_DESCRIPTION_LENGTH = 4096
MAX_RAW_MIGRATIONS = 256  # spec.migrations: hand-written SQL steps
MAX_RAW_SQL_LENGTH = 262_144  # one step's sql or rollbackSql
MAX_PLAN_HASH_LENGTH = 64  # spec.approvedPlanHash; plans hash to 16 hex digits (planning.safety.plan_hash)

# Files the CLI and operator read.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024  # far above any real spec; refuses a file that is not one
#: An ExtensionSchema's spec as JSON. etcd stores at most 1.5 MiB per object (its default request limit), and the
#: object also holds its metadata (managedFields grow with the spec) and the status the operator writes: a
#: resource must never be stored that the operator could then not record a status for.
MAX_RESOURCE_SPEC_BYTES = 768 * 1024
#: Values that aliases may add to a document. An 8 MB spec without aliases has fewer values than
#: this; with them a small file could otherwise expand to more than memory holds.
MAX_ALIAS_EXPANSION = 100_000

# Column sizes of the registry tables (engine.registry); tests/test_limits.py holds them to the bounds above.
REGISTRY_PLUGIN_ID_LENGTH = 64  # >= MAX_PLUGIN_ID_LENGTH, with room to raise it
REGISTRY_VERSION_LENGTH = 256  # >= MAX_VERSION_LENGTH
REGISTRY_OWNER_LENGTH = 512  # >= MAX_OWNER_LENGTH
REGISTRY_STATUS_LENGTH = 20  # the longest status or migration kind ("rolled_back", "unregister")
UUID_LENGTH = 36  # a UUID as text: registry row ids, Uuid columns on SQLite
REGISTRY_MIGRATION_ID_LENGTH = 64  # migration ids are a per-plugin counter ("0001")
SHA256_HEX_LENGTH = 64  # a checksum as hex text

# Migrations.
DEFAULT_LOCK_TIMEOUT_MS = 5_000  # wait this long for a table lock, then fail instead of queueing behind others
DEFAULT_STATEMENT_TIMEOUT_MS = 60_000  # no single statement in a migration's transaction runs longer than a minute
#: A migration that cannot get a table lock within lock_timeout (55P03) is tried again this many times in all,
#: after a random pause of up to base * 2**(attempt - 1) seconds ("full jitter"), capped; then ES403.
LOCK_RETRY_ATTEMPTS = 5
LOCK_RETRY_BASE_S = 0.25
LOCK_RETRY_CAP_S = 4.0
POSTGRESQL_CONNECT_TIMEOUT_S = 10  # an unreachable server is reported, not waited for
SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long SQLite waits for another writer's lock before "database is locked"

# The operator (controller.settings, controller.status, conditions).
RECHECK_INTERVAL_S = 2.0  # between re-checks of waiting resources; $EXTSCHEMA_RECHECK_SECONDS overrides it
RECHECK_FALLBACK_S = 60.0  # re-run a waiting resource at least this often (changes made outside the cluster)
BLOCKED_RETRY_S = 5.0  # before retrying a deletion blocked by dependents
DATABASE_THREADS = 16  # worker threads for blocking database calls
#: Connections to the API server for requests (patches, events), besides the watch streams. Each TLS connection
#: keeps ~300 kB (asyncio's 256 kB SSL buffer): 32 cost ~8 MB RSS more than 8 with 1,000 resources. With 8, one
#: operator starting on 3,000 resources queued its patches past kopf's request timeout, and kopf leaves a resource
#: whose finalizer patch timed out unhandled until it next changes (2 of 3,000 in bench/fleet_shards.py's baseline).
API_REQUEST_CONNECTIONS = 32
MALLOC_ARENAS = 2  # glibc malloc arenas of the operator process (controller.main; $MALLOC_ARENA_MAX overrides)
RETRY_BACKOFF_CAP_S = 60.0  # retried reasons back off 1, 2, 4 ... seconds, never longer than this
STALLED_RETRY_S = 60.0  # a cleanup the database refused is retried this slowly: a person must look
TARGET_PING_INTERVAL_S = 60.0  # a DatabaseTarget's connection is re-checked this often
KUBE_API_TIMEOUT_S = 30  # the operator's own API calls (reading a Secret) give up after this
# kopf's retries of a failed Kubernetes API request (seconds between attempts): its own 1 ... 21 s (54 s in all), then
# every 30 s, about 5 minutes in all, so that a restart of the control plane is waited out, not an unexpected error.
#: How long a migration about to start waits for the Kubernetes API to confirm its resource is unchanged.
CONFIRM_TIMEOUT_S = 10.0
API_ERROR_BACKOFFS_S = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, *(30.0,) * 9)
#: Compiled statements SQLAlchemy keeps per engine (its default is 500). The hot statements (registry reads) are
#: few and stay in the LRU; each plugin's DDL and catalog reflection compile statements of their own that are
#: never reused: at the default they held ~9 MB of an operator with 500 resources.
SQL_QUERY_CACHE_SIZE = 64
PARSED_SPECS_CACHE = 8192  # parsed specs the operator keeps, by (uid, generation)
MAX_CONDITION_MESSAGE = 4096  # a condition's message is cut to this, so status stays readable
MAX_EVENT_MESSAGE = 1024  # a Kubernetes event's message is cut to this
MAX_STATUS_CHANGES = 4096  # lines of status.lastMigration.changes (declared in the CRD)
MAX_STATUS_CHANGE_LENGTH = 1024  # characters of one such line
MAX_STATUS_PLAN_OPS = 256  # operations shown in status.pendingPlan.ops (declared in the CRD)
MAX_SELECTED_TARGETS = 1000  # DatabaseTargets one ExtensionSchema may select (status.targets[] bound)
MAX_STATUS_LINT_FINDINGS = 64  # squawk findings shown in status.pendingPlan.lint (declared in the CRD)
DRIFT_INTERVAL_S = 300.0  # how often the operator compares a Ready plugin's objects with its applied spec


#: What :func:`parse_duration_ms` accepts, for the CRD's pattern.
DURATION_PATTERN = r"^[0-9]+(ms|s|m)$"


def parse_duration_ms(text: str) -> int | None:
    """``500ms``, ``5s`` or ``2m`` in milliseconds (a DatabaseTarget's and the CLI's timeouts); None when malformed."""
    for suffix, factor in (("ms", 1), ("s", 1000), ("m", 60_000)):
        number = text[: -len(suffix)]
        if text.endswith(suffix) and number.isascii() and number.isdigit():
            return int(number) * factor
    return None
