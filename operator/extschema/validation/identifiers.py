"""Names extschema creates: safe identifiers, within the database's limits, not reserved."""

from __future__ import annotations

import re
import typing
import unicodedata

from extschema import naming
from extschema.validation import messages

if typing.TYPE_CHECKING:
    from extschema.validation import context

#: Names a core or other plugin's table/column may have: we only quote them, but refuse oddities.
FOREIGN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    guess = guess[: naming.MAX_IDENTIFIER_BYTES].rstrip("_")
    if not guess or guess == name or identifier_reason(guess) or guess.startswith(naming.RESERVED_PREFIXES):
        return None
    return guess


def plugin_id_reason(plugin_id: str) -> str | None:
    """Why *plugin_id* cannot name a plugin, or None."""
    if not naming.PLUGIN_ID.fullmatch(plugin_id) or "__" in plugin_id or plugin_id.endswith("_"):
        reason = identifier_reason(plugin_id) or "it must match ^[a-z][a-z0-9_]*$"
        guess = suggest_identifier(plugin_id)
        return reason + (f" (e.g. {messages.show(guess[: naming.MAX_PLUGIN_ID_LENGTH])})" if guess else "")
    if len(plugin_id) > naming.MAX_PLUGIN_ID_LENGTH:
        return f"it is {len(plugin_id)} characters long; at most {naming.MAX_PLUGIN_ID_LENGTH} are allowed"
    if plugin_id.startswith(naming.RESERVED_PREFIXES):
        return f"names starting with {', '.join(naming.RESERVED_PREFIXES)} are reserved"
    if plugin_id == naming.CORE:
        return "'core' names the host application's tables"
    return None


def check_identifier(
    ctx: context.Context, name: str, path: str, what: str, *, column: bool = False, hint: str = ""
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
    if size > naming.MAX_IDENTIFIER_BYTES:
        ctx.add(
            "ES102",
            path,
            f"{what} {messages.show(name)} is {size} bytes; the database limit is {naming.MAX_IDENTIFIER_BYTES}: "
            f"shorten it by {messages.byte_count(size - naming.MAX_IDENTIFIER_BYTES)}.{hint}",
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
        f"{naming.MAX_IDENTIFIER_BYTES}: shorten the name by "
        f"{messages.byte_count(size - naming.MAX_IDENTIFIER_BYTES)}.",
    )
