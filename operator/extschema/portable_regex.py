"""The portable subset of regular expressions: one meaning in the validator, PostgreSQL and SQLite.

A ``pattern`` rule becomes a CHECK constraint, evaluated by PostgreSQL's ARE engine (the ``~``
operator) and on SQLite by whatever the dialect renders, while the validator evaluates the same
pattern against defaults. :func:`is_portable_pattern` accepts only the constructs that behave
alike everywhere; :func:`search` evaluates a portable pattern as PostgreSQL does.
"""

from __future__ import annotations

import functools
import json
import re
import string
import warnings

from extschema import limits

_BOUND = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")

_ESCAPE_REASONS = {
    **dict.fromkeys(
        "bBAZzyYmM",
        "anchors and word boundaries (\\b, \\A, \\Z, \\y ...) differ between "
        "PostgreSQL and Python; use ^ and $ instead",
    ),
    **dict.fromkeys(
        "xuUNc0",
        "character-code escapes (\\x41, \\u00e9, \\N{...}, \\0) are not portable; write the character itself",
    ),
    **dict.fromkeys("123456789", "backreferences (\\1 ...) are not portable; repeat the sub-pattern instead"),
}


def _escape_reason(pattern: str, position: int, *, in_class: bool) -> str | None:
    """Whether the escape at *position* (a backslash) is in the portable subset."""
    if position + 1 >= len(pattern):
        return "it ends with a lone backslash; write \\\\ for a literal backslash"
    char = pattern[position + 1]
    if char in ("dws" if in_class else "dDwWsS") or (char.isascii() and char in string.punctuation):
        return None
    if char in "DWS":
        return f"\\{char} is not allowed inside [...] in PostgreSQL; use a negated class [^...] instead"
    reason = _ESCAPE_REASONS.get(char)
    if reason:
        return f"\\{char} at position {position}: {reason}"
    return (
        f"the escape \\{json.dumps(char, ensure_ascii=False)[1:-1]} at position "
        f"{position} is not in the portable subset "
        "(only \\d \\D \\w \\W \\s \\S and escaped punctuation); write the character itself"
    )


def _class_end(pattern: str, start: int) -> int:
    """Index just past the ``]`` closing the class opened at *start*; len+1 if unterminated."""
    position = start + 1
    if pattern.startswith("^", position):
        position += 1
    if pattern.startswith("]", position):  # a leading ] is literal
        position += 1
    while position < len(pattern):
        if pattern[position] == "\\":
            position += 2
        elif pattern[position] == "]":
            return position + 1
        else:
            position += 1
    return len(pattern) + 1


def _class_reason(pattern: str, start: int, end: int) -> str | None:
    if end > len(pattern):
        return f"the character class '[' at position {start} is never closed; add ']' or write \\["
    position = start + 1
    while position < end - 1:
        char = pattern[position]
        if char == "\\":
            reason = _escape_reason(pattern, position, in_class=True)
            if reason:
                return reason
            position += 2
            continue
        if char == "[":
            return (
                f"'[' inside a character class at position {position}: POSIX classes like [[:alpha:]] and "
                "nested sets are not portable; write \\[ for a literal bracket"
            )
        pair = pattern[position : position + 2]
        if pair in ("&&", "||", "~~", "--"):
            return f"{pair!r} inside a character class at position {position} is a set operation in Python; escape it"
        position += 1
    return None


def _group_reason(pattern: str, position: int) -> str:
    """Why the ``(?`` construct at *position* is not portable (only ``(?:`` is)."""
    rest = pattern[position + 2 : position + 4]
    if rest[:1] in ("=", "!"):
        what = "lookahead (?=...) / (?!...)"
    elif rest in ("<=", "<!"):
        what = "lookbehind (?<=...) / (?<!...)"
    elif rest[:1] in ("P", "<"):
        what = "named groups (?P<name>...)"
    elif rest[:1] == "#":
        what = "comments (?#...)"
    elif rest[:1] in (">", "("):
        what = "atomic and conditional groups"
    else:
        what = "inline flags like (?i)"
    return f"{what} at position {position} are not portable; use plain ( ) or (?: ) groups"


def _scan_reason(pattern: str) -> str | None:
    """Walk the pattern once, rejecting anything outside the portable subset."""
    position, repeatable = 0, False
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            reason = _escape_reason(pattern, position, in_class=False)
            if reason:
                return reason
            position, repeatable = position + 2, True
        elif char == "[":
            end = _class_end(pattern, position)
            reason = _class_reason(pattern, position, end)
            if reason:
                return reason
            position, repeatable = end, True
        elif char == "(":
            if pattern.startswith("(?", position) and not pattern.startswith("(?:", position):
                return _group_reason(pattern, position)
            position, repeatable = position + (3 if pattern.startswith("(?:", position) else 1), False
        elif char in "*+?{":
            reason, position = _quantifier(pattern, position, repeatable)
            if reason:
                return reason
            repeatable = False
        elif char in "}]":
            return f"unescaped {char!r} at position {position}; write \\{char} for a literal one"
        else:
            repeatable = char not in "^$|"
            position += 1
    return None


def _quantifier(pattern: str, position: int, repeatable: bool) -> tuple[str | None, int]:
    """Check the quantifier at *position*; return (reason, position after it)."""
    if not repeatable:
        return f"the quantifier {pattern[position]!r} at position {position} has nothing to repeat", position
    end = position + 1
    if pattern[position] == "{":
        bound = _BOUND.match(pattern, position)
        if not bound:
            return (
                f"'{{' at position {position} must start {{m}}, {{m,}} or {{m,n}}; write \\{{ for a literal one",
                position,
            )
        low, high = int(bound.group(1)), bound.group(3)
        if low > limits.MAX_REPEAT or (high and int(high) > limits.MAX_REPEAT):
            return (
                f"repetition counts above {limits.MAX_REPEAT} are an error in PostgreSQL (at position {position})",
                position,
            )
        end = bound.end()
    if pattern.startswith("?", end):  # lazy: same match/no-match on both sides
        end += 1
    if pattern.startswith("+", end):
        return f"possessive quantifiers (like a++) at position {position} are not portable", position
    return None, end


@functools.lru_cache(maxsize=1024)
def is_portable_pattern(pattern: str) -> str | None:
    """None when *pattern* is in the portable subset and compiles; otherwise the reason."""
    if len(pattern) > limits.MAX_PATTERN_LENGTH:
        return f"it is {len(pattern)} characters long; at most {limits.MAX_PATTERN_LENGTH} are allowed"
    if not pattern:
        return "it is empty and would match everything; remove it"
    if "\0" in pattern:
        return "it contains a NUL character, which PostgreSQL cannot store"
    reason = _scan_reason(pattern)
    if reason:
        return reason
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FutureWarnings announce a change of meaning
            re.compile(pattern)
    except (re.error, Warning) as exc:
        return f"it does not compile: {exc}"
    return None


def _to_python(pattern: str) -> str:
    """PostgreSQL's ``$`` matches only at the very end; Python's also before a final newline."""
    out: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            out.append(pattern[position : position + 2])
            position += 2
        elif char == "[":
            end = min(_class_end(pattern, position), len(pattern))
            out.append(pattern[position:end])
            position = end
        else:
            out.append(r"\Z" if char == "$" else char)
            position += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    # DOTALL: PostgreSQL's '.' matches a newline too.
    return re.compile(_to_python(pattern), re.DOTALL)


def search(pattern: str, value: str) -> bool:
    """``value ~ pattern`` as PostgreSQL evaluates it, for portable patterns; SQLite's REGEXP.

    Raises :class:`re.error` for a pattern that does not compile (validation refuses those).
    """
    return _compiled(pattern).search(value) is not None


#: The name the engine and older callers use.
portable_regex_search = search
