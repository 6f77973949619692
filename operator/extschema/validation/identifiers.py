"""Names extschema creates: safe identifiers, within the database's limits, not reserved."""

from __future__ import annotations

import re
import typing
import unicodedata

from extschema import limits, naming
from extschema.validation import messages

if typing.TYPE_CHECKING:
    from extschema.validation import context

#: Names a core or other plugin's table/column may have: we only quote them, but refuse oddities.
FOREIGN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: PostgreSQL's reserved key words: those of PostgreSQL 15 (pg_get_keywords() categories R and T)
#: and the older ones SQLAlchemy's postgresql dialect still lists (new, of, off, old); tests compare
#: with both. extschema quotes names, so these work as names on both databases (a test applies each).
POSTGRESQL_RESERVED_WORDS = _words(
    """
    all analyse analyze and any array as asc asymmetric authorization between binary both case cast
    check collate collation column concurrently constraint create cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user default deferrable desc
    distinct do else end except false fetch for foreign freeze from full grant group having ilike in
    initially inner intersect into is isnull join lateral leading left like limit localtime
    localtimestamp natural new not notnull null of off offset old on only or order outer over overlaps placing
    primary references returning right select session_user similar some symmetric table tablesample
    then to trailing true union unique user using variadic verbose when where window with
    """
)
#: SQLite's key words (sqlite.org/lang_keywords.html, 3.45).
SQLITE_KEYWORDS = _words(
    """
    abort action add after all alter always analyze and as asc attach autoincrement before begin
    between by cascade case cast check collate column commit conflict constraint create cross
    current current_date current_time current_timestamp database default deferrable deferred delete
    desc detach distinct do drop each else end escape except exclude exclusive exists explain fail
    filter first following for foreign from full generated glob group groups having if ignore
    immediate in index indexed initially inner insert instead intersect into is isnull join key last
    left like limit match materialized natural no not nothing notnull null nulls of offset on or
    order others outer over partition plan pragma preceding primary query raise range recursive
    references regexp reindex release rename replace restrict returning right rollback row rows
    savepoint select set table temp temporary then ties to transaction trigger unbounded union
    unique update using vacuum values view virtual when where window with without
    """
)
#: Key words a database refuses as a bare column or constraint name that the rendering leaves
#: unquoted today (it quotes only the words SQLAlchemy's lists know, and those lists predate these):
#: "syntax error at or near 'collation'". Tests recompute both sets against the real databases;
#: they can go once the dialects always quote.
SQLITE_UNQUOTED_KEYWORDS = frozenset({"nothing", "returning"})
POSTGRESQL_UNQUOTED_KEYWORDS = frozenset({"collation", "concurrently", "lateral", "tablesample"})
#: PostgreSQL's system columns: no table may have a column of that name, quoted or not.
POSTGRESQL_SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})


def identifier_reason(name: str) -> str | None:
    """Why *name* is not a safe identifier, or None."""
    if naming.IDENTIFIER.fullmatch(name) and "__" not in name and not name.endswith("_"):
        return None
    if not name:
        return "it is empty"
    bad = next((c for c in name if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_")), None)
    if bad is not None:
        reason = f"it contains {messages.describe_char(bad)}"
        if any(c in name for c in ";'\"`") or "--" in name:
            reason += " (names are identifiers, never SQL)"
        return reason
    if not name[0].isalpha():
        return "it must start with a lowercase letter"
    if "__" in name:
        return "it contains '__', which SQLite table names use to separate plugin and table"
    return "it ends with '_', which could form '__' (the SQLite plugin/table separator)"


def suggest_identifier(name: str) -> str | None:
    """A lower_snake_case spelling of *name*, when one can be guessed."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    folded = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", folded)
    guess = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    if guess and not guess[0].isalpha():
        guess = f"n_{guess}"
    guess = guess[: limits.MAX_IDENTIFIER_BYTES].rstrip("_")
    if not guess or guess == name or identifier_reason(guess) or guess.startswith(naming.RESERVED_PREFIXES):
        return None
    return guess


def plugin_id_reason(plugin_id: str) -> str | None:
    """Why *plugin_id* cannot name a plugin, or None."""
    if not naming.PLUGIN_ID.fullmatch(plugin_id) or "__" in plugin_id or plugin_id.endswith("_"):
        reason = identifier_reason(plugin_id) or "it must match ^[a-z][a-z0-9_]*$"
        guess = suggest_identifier(plugin_id)
        return reason + (f" (e.g. {messages.show(guess[: limits.MAX_PLUGIN_ID_LENGTH])})" if guess else "")
    if len(plugin_id) > limits.MAX_PLUGIN_ID_LENGTH:
        return f"it is {len(plugin_id)} characters long; at most {limits.MAX_PLUGIN_ID_LENGTH} are allowed"
    if plugin_id.startswith(naming.RESERVED_PREFIXES):
        return f"names starting with {', '.join(naming.RESERVED_PREFIXES)} are reserved"
    if plugin_id == naming.CORE:
        return "'core' names the host application's tables"
    return None


def database_reserved_reason(name: str, *, column: bool) -> str | None:
    """Why a database refuses *name* for a column (or a constraint, *column* False), or None."""
    if column and name in POSTGRESQL_SYSTEM_COLUMNS:
        return "it is a PostgreSQL system column, which no table may redefine"
    for database, words in (("SQLite", SQLITE_UNQUOTED_KEYWORDS), ("PostgreSQL", POSTGRESQL_UNQUOTED_KEYWORDS)):
        if name in words:
            return f"it is a {database} key word, which {database} cannot read as a name here"
    return None


def check_identifier(
    ctx: context.Context,
    name: str,
    path: str,
    what: str,
    *,
    column: bool = False,
    constraint: bool = False,
    hint: str = "",
) -> bool:
    """ES101/ES102/ES103 for a name extschema will create; True when it is fine."""
    before = len(ctx.problems)
    reason = identifier_reason(name)
    if reason:
        guess = suggest_identifier(name)
        example = f" such as {messages.show(guess)}" if guess else ""
        ctx.add(
            "ES101",
            path,
            f"{what} {messages.show(name)} is not a valid identifier: {reason}. Use lower_snake_case "
            "(a lowercase letter, then lowercase letters, digits and single "
            f"underscores){example}.{hint}",
        )
    size = messages.byte_length(name)
    if size > limits.MAX_IDENTIFIER_BYTES:
        ctx.add(
            "ES102",
            path,
            f"{what} {messages.show(name)} is {size} bytes; the database limit is {limits.MAX_IDENTIFIER_BYTES}: "
            f"shorten it by {messages.byte_count(size - limits.MAX_IDENTIFIER_BYTES)}.{hint}",
        )
    reserved = database_reserved_reason(name, column=column) if column or constraint else None
    if reserved:
        ctx.add(
            "ES124", path, f"{what} {messages.show(name)} cannot be used: {reserved}. Rename it, e.g. {name}_value."
        )
    if column and name in naming.RESERVED_COLUMNS:
        ctx.add(
            "ES103",
            path,
            f"{what} 'id' is reserved: every table gets the primary key 'id'. Rename it.{hint}",
        )
    if name.startswith(naming.RESERVED_PREFIXES):
        ctx.add(
            "ES103",
            path,
            f"{what} {messages.show(name)} starts with a reserved prefix "
            f"({', '.join(naming.RESERVED_PREFIXES)}): "
            f"rename it.{hint}",
        )
    return len(ctx.problems) == before


def too_long_physical(ctx: context.Context, name: str, path: str, what: str) -> None:
    physical = naming.Namer("prefix").table(ctx.spec.plugin_id, name).name
    size = messages.byte_length(physical)
    ctx.add(
        "ES102",
        path,
        f"{what} {messages.show(name)} is stored on SQLite as {messages.show(physical)}, {size} bytes; the limit is "
        f"{limits.MAX_IDENTIFIER_BYTES}: shorten the name by "
        f"{messages.byte_count(size - limits.MAX_IDENTIFIER_BYTES)}.",
    )
