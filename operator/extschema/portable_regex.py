"""Regular expressions as databases without a regex operator can check them.

SQLite has no regular-expression operator of its own (``REGEXP`` calls a function each client
would have to register), but it has ``GLOB``, which every SQLite client understands. A pattern is
translated only when the translation is exact: the GLOB accepts precisely the strings in which
PostgreSQL's ``~`` finds a match. Anything else is left to the caller (the SQLite dialect then
does not enforce the pattern, and says so at plan time).
"""

from __future__ import annotations

import string

#: Characters with a meaning in a regular expression that GLOB cannot express.
_UNTRANSLATABLE = frozenset("*+?{}()|^$")
#: GLOB's own special characters, matched literally as one-character classes.
_GLOB_SPECIAL = frozenset("*?[")


def to_glob(pattern: str) -> str | None:
    """The GLOB pattern equivalent to searching for *pattern*, or None when there is none.

    Translated exactly: literal characters (and escaped ASCII punctuation such as ``\\.``), ``.``,
    ``.*``, ``^`` at the start, ``$`` at the end, and bracket classes without escapes or nested
    ``[`` (``[a-z]``, ``[^0-9_]``). A regex search matches anywhere, a GLOB the whole string, so
    an unanchored end becomes ``*``.
    """
    position = 0
    out: list[str] = []
    if pattern.startswith("^"):
        position = 1
    else:
        out.append("*")
    anchored_end = False
    while position < len(pattern):
        char = pattern[position]
        if char == "$" and position == len(pattern) - 1:
            anchored_end = True
            position += 1
        elif char == ".":
            if pattern.startswith("*", position + 1):
                out.append("*")
                position += 2
            else:
                out.append("?")
                position += 1
        elif char == "[":
            end = _class_end(pattern, position)
            if end is None:
                return None
            translated = _class_to_glob(pattern[position + 1 : end])
            if translated is None:
                return None
            out.append(translated)
            position = end + 1
        elif char == "\\":
            escaped = pattern[position + 1 : position + 2]
            if not escaped or escaped not in string.punctuation:
                return None
            out.append(_literal(escaped))
            position += 2
        elif char in _UNTRANSLATABLE:
            return None
        else:
            out.append(_literal(char))
            position += 1
    if not anchored_end:
        out.append("*")
    return "".join(out)


def _literal(char: str) -> str:
    return f"[{char}]" if char in _GLOB_SPECIAL else char


def _class_end(pattern: str, start: int) -> int | None:
    """The index of the ``]`` closing the class opened at *start* (a leading ``]`` is a member)."""
    position = start + 1
    if pattern.startswith("^", position):
        position += 1
    if pattern.startswith("]", position):
        position += 1
    end = pattern.find("]", position)
    return None if end < 0 else end


def _class_to_glob(body: str) -> str | None:
    """A bracket class body as GLOB writes it, when both read it the same way.

    Both take a leading ``^`` as negation, a leading ``]`` and a first or last ``-`` as members,
    and ``x-y`` as a range of code points. Escapes, nested ``[`` (POSIX classes, collating
    elements) and ambiguous dashes (``a-c-e``) are not translated.
    """
    negated = body.startswith("^")
    members = body[1:] if negated else body
    if not members or "\\" in members or "[" in members or members.startswith("]-"):
        return None  # "]-x" is a range in a regex, a "]" and a "-" in GLOB
    index = 0
    while index < len(members):
        if members[index] == "-" and 0 < index < len(members) - 1:
            return None  # a dash not forming a range with the single character before it
        if index + 2 < len(members) and members[index + 1] == "-":
            if members[index] > members[index + 2]:
                return None  # an error in PostgreSQL, an empty range in GLOB
            index += 3
        else:
            index += 1
    return "[" + ("^" if negated else "") + members + "]"
