"""Regular expressions as databases without a regex operator can check them.

SQLite has no regular-expression operator of its own (``REGEXP`` calls a function each client
would have to register), but it has ``GLOB``, ``length`` and ``substr``, which every SQLite client
understands. A pattern is translated only when the translation is exact: the result accepts
precisely the strings in which PostgreSQL's ``~`` finds a match. Anything else is left to the
caller (the SQLite dialect then does not enforce the pattern, and says so at plan time).

Translated: a sequence of one-character atoms — literal characters (and escaped ASCII
punctuation such as ``\\.``), ``.``, bracket classes without escapes or nested ``[`` — each
optionally quantified, with ``^`` at the start and ``$`` at the end. :func:`to_glob` covers the
patterns one GLOB expresses (fixed counts, ``.*``); :func:`translate` also those with one
variable-length run of a class between fixed parts (``^[A-Z]{3}-[0-9]+$``), which need a length
and a content condition besides the GLOB.
"""

from __future__ import annotations

import dataclasses
import re
import string

#: Characters with a meaning in a regular expression that no translation here expresses.
_UNTRANSLATABLE = frozenset("*+?{}()|^$")
#: GLOB's own special characters, matched literally as one-character classes.
_GLOB_SPECIAL = frozenset("*?[")
_BOUND = re.compile(r"\{([0-9]{1,3})(,([0-9]{0,3}))?\}")
#: Longest GLOB a translation may produce (counted repetitions are written out).
MAX_GLOB_LENGTH = 2000


@dataclasses.dataclass(frozen=True)
class Atom:
    """One character matcher, repeated *low* to *high* times (None: no upper bound)."""

    glob: str  # as GLOB writes one such character: "a", "[*]", "?", "[a-z]"
    low: int = 1
    high: int | None = 1

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def outsider(self) -> str | None:
        """A GLOB class matching one character this atom does not accept; None for ``.``."""
        if self.glob == "?":
            return None
        if self.glob.startswith("[^"):
            return "[" + self.glob[2:]
        if self.glob.startswith("[") and len(self.glob) > 3:
            return "[^" + self.glob[1:]
        char = self.glob[1] if self.glob.startswith("[") else self.glob
        return f"[^{char}]"


@dataclasses.dataclass(frozen=True)
class Translation:
    """A pattern as built-in SQLite conditions: the value matches :attr:`glob`; when :attr:`run`
    is set, its length lies in :attr:`length` and the characters between the first
    :attr:`before` and the last :attr:`after` contain nothing matching :attr:`run` (a GLOB class)."""

    glob: str
    length: tuple[int, int | None] = (0, None)
    before: int = 0
    after: int = 0
    run: str | None = None

    @property
    def glob_only(self) -> bool:
        return self.run is None and self.length == (0, None)


def to_glob(pattern: str) -> str | None:
    """The GLOB pattern equivalent to searching for *pattern*, or None when there is none.

    A regex search matches anywhere, a GLOB the whole string, so an unanchored end becomes ``*``.
    """
    found = translate(pattern)
    return found.glob if found is not None and found.glob_only else None


def translate(pattern: str) -> Translation | None:
    """Exact built-in SQLite conditions for searching *pattern* (see :class:`Translation`), or None."""
    parsed = _parse(pattern)
    if parsed is None:
        return None
    anchored_start, atoms, anchored_end = parsed
    # A search needs only the fewest repetitions of an atom at an unanchored end.
    while not anchored_start and atoms and not atoms[0].fixed:
        atoms = [Atom(atoms[0].glob, atoms[0].low, atoms[0].low), *atoms[1:]]
        atoms = atoms[1:] if atoms[0].low == 0 else atoms
    while not anchored_end and atoms and not atoms[-1].fixed:
        atoms = [*atoms[:-1], Atom(atoms[-1].glob, atoms[-1].low, atoms[-1].low)]
        atoms = atoms[:-1] if atoms[-1].low == 0 else atoms
    stars = [a for a in atoms if a.glob == "?" and a.high is None]
    variable = [a for a in atoms if not a.fixed and not (a.glob == "?" and a.high is None)]
    head = "" if anchored_start else "*"
    tail = "" if anchored_end else "*"
    if not variable:
        glob = head + "".join(a.glob * a.low + ("*" if a.high is None else "") for a in atoms) + tail
        return Translation(glob) if len(glob) <= MAX_GLOB_LENGTH else None
    if len(variable) > 1 or stars or not (anchored_start and anchored_end):
        return None
    (run,) = variable
    at = atoms.index(run)
    before, after = sum(a.low for a in atoms[:at]), sum(a.low for a in atoms[at + 1 :])
    glob = "".join(a.glob * a.low for a in atoms[:at]) + "*" + "".join(a.glob * a.low for a in atoms[at + 1 :])
    if len(glob) > MAX_GLOB_LENGTH:
        return None
    fixed = before + after
    high = None if run.high is None else fixed + run.high
    return Translation(glob, (fixed + run.low, high), before, after, run.outsider())


def _parse(pattern: str) -> tuple[bool, list[Atom], bool] | None:
    """``(anchored at the start, atoms, anchored at the end)``, or None outside the translated subset."""
    position = 0
    atoms: list[Atom] = []
    anchored_start = pattern.startswith("^")
    if anchored_start:
        position = 1
    anchored_end = False
    while position < len(pattern):
        char = pattern[position]
        if char == "$" and position == len(pattern) - 1:
            anchored_end = True
            position += 1
            continue
        if char == ".":
            glob, position = "?", position + 1
        elif char == "[":
            end = _class_end(pattern, position)
            translated = None if end is None else _class_to_glob(pattern[position + 1 : end])
            if end is None or translated is None:
                return None
            glob, position = translated, end + 1
        elif char == "\\":
            escaped = pattern[position + 1 : position + 2]
            if not escaped or escaped not in string.punctuation:
                return None
            glob, position = _literal(escaped), position + 2
        elif char in _UNTRANSLATABLE:
            return None
        else:
            glob, position = _literal(char), position + 1
        quantified = _quantifier(pattern, position)
        if quantified is None:
            return None
        (low, high), position = quantified
        atoms.append(Atom(glob, low, high))
    return anchored_start, atoms, anchored_end


def _quantifier(pattern: str, position: int) -> tuple[tuple[int, int | None], int] | None:
    """The repetition at *position* (``(1, 1)`` when there is none) and the position after it."""
    char = pattern[position : position + 1]
    if char in ("*", "+", "?"):
        counts: tuple[int, int | None] = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        end = position + 1
    elif char == "{":
        bound = _BOUND.match(pattern, position)
        if bound is None:
            return None
        low = int(bound.group(1))
        high = low if bound.group(2) is None else (int(bound.group(3)) if bound.group(3) else None)
        if high is not None and high < low:
            return None
        counts, end = (low, high), bound.end()
    else:
        return (1, 1), position
    if pattern.startswith("?", end):  # lazy: whether a match exists is the same
        end += 1
    if pattern[end : end + 1] in ("*", "+", "?", "{"):
        return None
    return counts, end


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
