"""Regular expressions as SQLite's built-in SQL can check them: GLOB, length and substr.

SQLite has no regular-expression operator of its own (``REGEXP`` calls a function each client
would have to register), but it has ``GLOB``, ``length`` and ``substr``, which every SQLite client
understands. A pattern is translated only when the translation is exact: the result accepts
precisely the strings in which PostgreSQL's ``~`` finds a match. Anything else is left to the
caller (the SQLite dialect then does not enforce the pattern, and says so at plan time).

The pattern is read once, by :func:`extschema.portable_regex.parse` (the parser validation uses),
and only portable patterns are translated. Translated: a sequence of one-character matchers —
literal characters, ``.``, bracket classes — each optionally quantified, groups without ``|``
(inlined; repeated a fixed number of times, or any number when they hold one such matcher), with
``^`` at the very start and ``$`` at the very end. :func:`to_glob` covers the patterns one GLOB
expresses (fixed counts, ``.*``); :func:`translate` also those with one variable-length run of a
class between fixed parts (``^[A-Z]{3}-[0-9]+$``), which need a length and a content condition
besides the GLOB.
"""

from __future__ import annotations

import dataclasses

from extschema import portable_regex
from extschema.portable_regex import Anchor, AnyChar, CharClass, Group, Literal, Node, Repeat

#: GLOB's own special characters, matched literally as one-character classes.
_GLOB_SPECIAL = frozenset("*?[")
#: Characters a GLOB class reads specially: where they may stand, and where not as a range's end.
_CLASS_SPECIAL = frozenset("]-^")
#: Longest GLOB a translation may produce (counted repetitions are written out); SQLite refuses
#: patterns past SQLITE_MAX_LIKE_PATTERN_LENGTH (50,000 by default) at every insert.
MAX_GLOB_LENGTH = 2000


@dataclasses.dataclass(frozen=True)
class _Run:
    """One character matcher (*chars*; None for ``.``), repeated *low* to *high* times (None: unbounded)."""

    chars: CharClass | None
    low: int = 1
    high: int | None = 1

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    @property
    def star(self) -> bool:
        """``.*``, ``.+``, ``.{m,}``: GLOB writes these directly."""
        return self.chars is None and self.high is None


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
    """The GLOB pattern equivalent to searching for *pattern*, or None when one GLOB cannot say it.

    A regex search matches anywhere, a GLOB the whole string, so an unanchored end becomes ``*``.
    """
    found = translate(pattern)
    return found.glob if found is not None and found.glob_only else None


def translate(pattern: str) -> Translation | None:
    """Exact built-in SQLite conditions for searching *pattern* (see :class:`Translation`), or None."""
    if portable_regex.is_portable_pattern(pattern) is not None:
        return None  # its meaning on PostgreSQL is not the validator's: nothing to translate exactly
    tree = portable_regex.parse(pattern)
    if len(tree.alternatives) != 1:
        return None
    nodes = tree.alternatives[0]
    anchored_start = bool(nodes) and nodes[0] == Anchor("^")
    anchored_end = len(nodes) > anchored_start and nodes[-1] == Anchor("$")
    runs = _runs(nodes[int(anchored_start) : len(nodes) - int(anchored_end)])
    if runs is None:
        return None
    # A search needs only the fewest repetitions of a matcher at an unanchored end.
    while not anchored_start and runs and not runs[0].fixed:
        runs = [dataclasses.replace(runs[0], high=runs[0].low), *runs[1:]]
        runs = runs[1:] if runs[0].low == 0 else runs
    while not anchored_end and runs and not runs[-1].fixed:
        runs = [*runs[:-1], dataclasses.replace(runs[-1], high=runs[-1].low)]
        runs = runs[:-1] if runs[-1].low == 0 else runs
    variable = [r for r in runs if not r.fixed and not r.star]
    if not variable:
        glob = _glob(runs)
        if glob is None:
            return None
        glob = ("" if anchored_start else "*") + glob + ("" if anchored_end else "*")
        return Translation(glob) if len(glob) <= MAX_GLOB_LENGTH else None
    if len(variable) > 1 or any(r.star for r in runs) or not (anchored_start and anchored_end):
        return None
    (run,) = variable
    at = runs.index(run)
    head, tail = _glob(runs[:at]), _glob(runs[at + 1 :])
    outsider = None if run.chars is None else _glob_class(dataclasses.replace(run.chars, negated=not run.chars.negated))
    if head is None or tail is None or (run.chars is not None and outsider is None):
        return None
    glob = head + "*" + tail
    if len(glob) > MAX_GLOB_LENGTH:
        return None
    before, after = sum(r.low for r in runs[:at]), sum(r.low for r in runs[at + 1 :])
    fixed = before + after
    high = None if run.high is None else fixed + run.high
    return Translation(glob, (fixed + run.low, high), before, after, outsider)


def _runs(nodes: tuple[Node, ...]) -> list[_Run] | None:
    """The sequence as one-character matchers with counts, groups inlined; None if it has other parts."""
    runs: list[_Run] = []
    for node in nodes:
        found = _node_runs(node)
        if found is None:
            return None
        runs.extend(found)
    return runs


def _node_runs(node: Node) -> list[_Run] | None:
    if isinstance(node, Literal):
        return [_Run(CharClass(((node.char, node.char),), negated=False))]
    if isinstance(node, AnyChar):
        return [_Run(None)]
    if isinstance(node, CharClass):
        return [_Run(node)]
    if isinstance(node, Group):
        return _runs(node.alternatives[0]) if len(node.alternatives) == 1 else None
    if isinstance(node, Repeat):
        inner = _node_runs(node.node)
        if inner is None:
            return None
        if len(inner) == 1 and inner[0].low == inner[0].high == 1:  # (x){m,n} is x{m,n}
            return [dataclasses.replace(inner[0], low=node.low, high=node.high)]
        if node.low == node.high:  # (xy){2} is xyxy
            return inner * node.low
    return None  # an anchor inside the pattern, an alternative, or a repeat GLOB cannot count


def _glob(runs: list[_Run]) -> str | None:
    """The GLOB of fixed runs and stars, or None when a class has no GLOB form (or it is too long)."""
    parts: list[str] = []
    length = 0
    for run in runs:
        one = "?" if run.chars is None else _glob_char(run.chars)
        if one is None:
            return None
        part = one * run.low + ("*" if run.high is None else "")
        length += len(part)
        if length > MAX_GLOB_LENGTH:
            return None
        parts.append(part)
    return "".join(parts)


def _glob_char(chars: CharClass) -> str | None:
    """One character of *chars* as GLOB writes it: a literal where there is one, else a class."""
    if not chars.negated and len(chars.ranges) == 1 and chars.ranges[0][0] == chars.ranges[0][1]:
        char = chars.ranges[0][0]
        return f"[{char}]" if char in _GLOB_SPECIAL else char
    return _glob_class(chars)


def _glob_class(chars: CharClass) -> str | None:
    """A GLOB bracket class; the characters GLOB reads specially are placed where they are literal.

    GLOB, like a regex, takes a leading ``^`` as negation, a leading ``]`` and a last ``-`` as
    members, and ``x-y`` as a range of code points; a range ending in one of those is not written.
    """
    if any(low != high and ({low, high} & _CLASS_SPECIAL) for low, high in chars.ranges):
        return None
    singles = {low for low, high in chars.ranges if low == high}
    ranges = "".join(f"{low}-{high}" for low, high in chars.ranges if low != high)
    body = ("]" if "]" in singles else "") + ranges + "".join(sorted(singles - _CLASS_SPECIAL))
    dash = "-" if "-" in singles else ""
    if "^" in singles:
        if body or chars.negated:
            body += "^"
        elif dash:
            body, dash = "-^", ""
        else:
            return "^"  # "[^]" would be a negation; outside a class ^ is an ordinary character
    return "[" + ("^" if chars.negated else "") + body + dash + "]"
