"""How values, names and paths appear in messages: short, escaped, printable in any terminal."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def render_path(prefix: str, parts: Iterable[str | int]) -> str:
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{show(part)}]"
    return path


def join_words(words: Sequence[str]) -> str:
    unique = list(dict.fromkeys(words))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " or " + unique[-1]


# --- Display helpers --------------------------------------------------------------------------


def show(value: Any, limit: int = 60) -> str:
    """A user's value quoted for a message: short, escaped, printable in any terminal."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def plain_number(value: int | float) -> str | None:
    """The number as written, or None for integers too large to print (Python refuses)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return None
    return repr(value)


#: A number YAML 1.1 reads as text: an exponent without a point or without a sign (1e308, 1.5e3).
_TEXT_NUMBER = re.compile(r"([-+]?)([0-9]+)(?:\.([0-9]*))?[eE]([-+]?)([0-9]+)")


def yaml_number_spelling(text: str) -> str | None:
    """How to write *text* so YAML reads a number (``1e308`` -> ``1.0e+308``), if that is what it is."""
    match = _TEXT_NUMBER.fullmatch(text.strip())
    if match is None:
        return None
    sign, whole, fraction, exponent_sign, exponent = match.groups()
    return f"{sign}{whole}.{fraction or '0'}e{exponent_sign or '+'}{exponent}"


def format_number(value: int | float) -> str:
    if isinstance(value, int) and plain_number(value) is None:
        return f"an integer of about {math.ceil(value.bit_length() * math.log10(2))} digits"
    return repr(value)


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        plain = plain_number(value)
        return f"the number {plain}" if plain is not None else format_number(value)
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} value"


def byte_length(text: str) -> int:
    """UTF-8 size; lone surrogates (possible from YAML escapes) count instead of raising."""
    return len(text.encode("utf-8", "surrogatepass"))


def describe_char(char: str) -> str:
    if char == "\0":
        return "a NUL character"
    if char.isspace():
        return "whitespace"
    if not char.isascii():
        return f"the non-ASCII character {show(char)} (U+{ord(char):04X})"
    if char.isupper():
        return f"the uppercase letter {show(char)}"
    return f"the character {show(char)}"


def byte_count(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


def join_path(base: str, suffix: str) -> str:
    return f"{base}.{suffix}" if base else suffix


def close_match(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return f" Did you mean {show(match[0])}?" if match else ""


def listing(names: Iterable[str]) -> str:
    shown = list(names)
    if not shown:
        return "none"
    text = ", ".join(shown[:10])
    return text + (f" (and {len(shown) - 10} more)" if len(shown) > 10 else "")
