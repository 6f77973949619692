"""The single source of the limits and defaults a spec is held to.

Most numbers are PostgreSQL's own limits (a spec that passes validation must not fail there);
the rest are extschema's defaults for options a spec may leave out. Pure data: this module
imports nothing from extschema so every layer may use it.
"""

from __future__ import annotations

MAX_COLUMNS = 1600  # PostgreSQL's limit per table, counting id and FK columns
MAX_INDEX_FIELDS = 32  # PostgreSQL's INDEX_MAX_KEYS
MAX_PATTERN_LENGTH = 1000
MAX_PATTERN_SIZE = 2000  # positions a pattern unrolls to (portable_regex.expanded_size); measured on PostgreSQL 15
MAX_REPEAT = 255  # PostgreSQL's RE_DUP_MAX: larger {m,n} bounds are an error there
MAX_VARCHAR_LENGTH = 10_485_760  # PostgreSQL's varchar(n) limit
DEFAULT_STRING_LENGTH = 255
DEFAULT_PRECISION = 18
DEFAULT_SCALE = 2
MAX_PRECISION = 1000
MAX_ENUM_LABEL_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
INT_RANGES = {"Int": (-(2**31), 2**31 - 1), "BigInt": (-(2**63), 2**63 - 1)}
MAX_VERSION_LENGTH = 64  # spec.version; the registry column holds 256
MAX_RESOURCE_NAME_LENGTH = 253  # metadata.name: a Kubernetes DNS-1123 subdomain
MAX_NAMESPACE_LENGTH = 63  # metadata.namespace: a DNS-1123 label (owner "namespace/name" fits the registry's 512)
MAX_TIMEZONE_OFFSET_MINUTES = 15 * 60 + 59  # PostgreSQL refuses larger displacements ("+16:00")
