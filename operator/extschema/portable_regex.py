"""The portable subset of regular expressions: one meaning in the validator, PostgreSQL and SQLite.

A ``pattern`` rule becomes a CHECK constraint, evaluated by PostgreSQL's ARE engine (the ``~``
operator) and on SQLite by built-in GLOB/length/substr conditions where the pattern translates
exactly (:mod:`extschema.dialects.sqlite_patterns`, from the tree :func:`parse` builds), while
the validator evaluates the same pattern against defaults. :func:`is_portable_pattern` accepts
only the constructs that behave alike everywhere; :func:`search` evaluates a portable pattern as
PostgreSQL does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import string
import warnings

import re2

from extschema import limits

_BOUND = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")

#: Shorthand classes are Unicode-aware in Python, locale-dependent in PostgreSQL and ASCII in RE2,
#: so a pattern using them would accept different values in each place: they are refused, with
#: the ASCII spelling that means the same everywhere.
_ASCII_CLASSES = {
    "d": "e.g. [0-9]",
    "D": "e.g. [^0-9]",
    "w": "e.g. [A-Za-z0-9_]",
    "W": "e.g. [^A-Za-z0-9_]",
    "s": "e.g. [ ] (a space) or the whitespace characters themselves inside [...]",
    "S": "e.g. [^ ] or a negated class of the whitespace characters themselves",
}
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
    if char.isascii() and char in string.punctuation:
        return None
    spelled = _ASCII_CLASSES.get(char)
    if spelled is not None:
        where = " (inside [...], write the characters without the outer brackets)" if in_class else ""
        return (
            f"\\{char} at position {position} means different characters in Python, PostgreSQL (locale-dependent) "
            f"and SQLite beyond ASCII: spell the class out, {spelled}{where}"
        )
    reason = _ESCAPE_REASONS.get(char)
    if reason:
        return f"\\{char} at position {position}: {reason}"
    return (
        f"the escape \\{json.dumps(char, ensure_ascii=False)[1:-1]} at position "
        f"{position} is not in the portable subset "
        "(only escaped punctuation such as \\. or \\[); write the character itself"
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
    _, dashed = _class_ranges(_class_items(pattern, start, end - 1))
    if dashed is not None:
        return (
            f"the '-' after the range {dashed[0]}-{dashed[1]} in the class at position {start} is an error in "
            "PostgreSQL; write \\- for a literal dash, or put it last"
        )
    return None


def _class_items(pattern: str, start: int, end: int) -> list[tuple[str, bool]]:
    """The members written between the ``[`` at *start* and the ``]`` at *end*: (character, escaped)."""
    position = start + 1 + pattern.startswith("^", start + 1)
    items: list[tuple[str, bool]] = []
    while position < end:
        escaped = pattern[position] == "\\"
        position += escaped
        items.append((pattern[position], escaped))
        position += 1
    return items


def _class_ranges(items: list[tuple[str, bool]]) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """Members as inclusive ranges (``x-y``: an unescaped dash between two members), and the first
    range followed by another unescaped dash and a member: Python reads ``[a-c-e]`` as a-c, '-' and
    'e', PostgreSQL fails on it ("invalid character range")."""
    ranges: list[tuple[str, str]] = []
    dashed: tuple[str, str] | None = None
    index = 0
    while index < len(items):
        if index + 2 < len(items) and items[index + 1] == ("-", False):
            ranges.append((items[index][0], items[index + 2][0]))
            if dashed is None and index + 4 < len(items) and items[index + 3] == ("-", False):
                dashed = ranges[-1]
            index += 3
        else:
            ranges.append((items[index][0], items[index][0]))
            index += 1
    return ranges, dashed


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


# --- The parsed form: one tree for the complexity bound and SQLite's translation -------------------


@dataclasses.dataclass(frozen=True)
class Literal:
    char: str


@dataclasses.dataclass(frozen=True)
class AnyChar:
    """``.``: any character, a newline included (PostgreSQL's ``~`` is not newline-sensitive)."""


@dataclasses.dataclass(frozen=True)
class CharClass:
    ranges: tuple[tuple[str, str], ...]  # inclusive, by code point; a single character is (c, c)
    negated: bool


@dataclasses.dataclass(frozen=True)
class Anchor:
    kind: str  # "^" or "$"


@dataclasses.dataclass(frozen=True)
class Group:
    alternatives: tuple[tuple[Node, ...], ...]


@dataclasses.dataclass(frozen=True)
class Repeat:
    node: Node
    low: int
    high: int | None  # None: unbounded


Node = Literal | AnyChar | CharClass | Anchor | Group | Repeat


class _Parser:
    """Recursive descent over a pattern :func:`_scan_reason` accepted (so no error paths here)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.position = 0

    def alternatives(self) -> Group:
        branches = [self.sequence()]
        while self.pattern.startswith("|", self.position):
            self.position += 1
            branches.append(self.sequence())
        return Group(tuple(branches))

    def sequence(self) -> tuple[Node, ...]:
        nodes: list[Node] = []
        while self.position < len(self.pattern) and self.pattern[self.position] not in "|)":
            nodes.append(self.quantified(self.atom()))
        return tuple(nodes)

    def atom(self) -> Node:
        char = self.pattern[self.position]
        if char == "(":
            self.position += 3 if self.pattern.startswith("(?:", self.position) else 1
            group = self.alternatives()
            self.position += 1  # ")"
            return group
        if char == "[":
            return self.char_class()
        self.position += 2 if char == "\\" else 1
        if char == "\\":
            return Literal(self.pattern[self.position - 1])
        if char == ".":
            return AnyChar()
        return Anchor(char) if char in "^$" else Literal(char)

    def char_class(self) -> CharClass:
        end = _class_end(self.pattern, self.position) - 1  # index of the closing ]
        negated = self.pattern.startswith("^", self.position + 1)
        ranges, _ = _class_ranges(_class_items(self.pattern, self.position, end))
        self.position = end + 1
        return CharClass(tuple(ranges), negated)

    def quantified(self, node: Node) -> Node:
        while self.position < len(self.pattern) and self.pattern[self.position] in "*+?{":
            char = self.pattern[self.position]
            if char == "{":
                bound = _BOUND.match(self.pattern, self.position)
                assert bound is not None  # the scan accepted it
                low = int(bound.group(1))
                high = low if bound.group(2) is None else (int(bound.group(3)) if bound.group(3) else None)
                self.position = bound.end()
            else:
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
                self.position += 1
            if self.pattern.startswith("?", self.position):  # lazy: same yes/no answer
                self.position += 1
            node = Repeat(node, low, high)
        return node


def parse(pattern: str) -> Group:
    """The tree of a portable pattern (call :func:`is_portable_pattern` first)."""
    return _Parser(pattern).alternatives()


def expanded_size(node: Node) -> int:
    """How many character positions the pattern unrolls to, each counted repeat copied out.

    PostgreSQL compiles ``x{m,n}`` by copying ``x`` n times, optional copies with bypass arcs, so
    its automaton grows with this number; past a limit it fails with "regular expression is too
    complex", and compiling takes seconds well before. Measured on PostgreSQL 15 with thousands of
    generated patterns: with repeats of empty-matching operands refused (:func:`nullable`), every
    pattern of at most :data:`limits.MAX_PATTERN_SIZE` positions compiled in under 10 ms, while
    e.g. ``(a?){0,250}`` seven times (5250) or ``a{0,255}`` a hundred times (51000) fail.
    """
    if isinstance(node, Group):
        size = sum(sum(expanded_size(n) for n in branch) for branch in node.alternatives)
        return size + (len(node.alternatives) if len(node.alternatives) > 1 else 0)
    if isinstance(node, Repeat):
        copies = node.high if node.high is not None else node.low + 1  # an unbounded tail counts once
        return expanded_size(node.node) * max(copies, 1) + copies - node.low  # plus a bypass per optional copy
    return 0 if isinstance(node, Anchor) else 1


def nullable(node: Node) -> bool:
    """Whether *node* can match the empty string."""
    if isinstance(node, Group):
        return any(all(nullable(n) for n in branch) for branch in node.alternatives)
    if isinstance(node, Repeat):
        return node.low == 0 or nullable(node.node)
    return isinstance(node, Anchor)


def _nullable_repeat(node: Node) -> Repeat | None:
    """The first repeat whose operand can match the empty string, like ``(a?){0,50}`` or ``(a*)+``."""
    if isinstance(node, Group):
        children: tuple[Node, ...] = tuple(n for branch in node.alternatives for n in branch)
    elif isinstance(node, Repeat):
        if nullable(node.node) and not (node.low == 0 and node.high == 1):
            return node
        children = (node.node,)
    else:
        children = ()
    return next((found for child in children if (found := _nullable_repeat(child)) is not None), None)


# --- Checking and evaluating ---------------------------------------------------------------------


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.dot_nl = True  # PostgreSQL's '.' matches a newline too
    options.never_capture = True
    options.log_errors = False
    return options


_RE2_OPTIONS = _re2_options()


@functools.lru_cache(maxsize=1024)
def is_portable_pattern(pattern: str) -> str | None:
    """None when *pattern* is in the portable subset and compiles everywhere; otherwise the reason.

    Everywhere means Python's re (the syntax), RE2 (the engine :func:`search` uses) and PostgreSQL,
    whose limits are kept by bounding :func:`expanded_size` and refusing repeats of operands that
    can match the empty string. ``\\d``, ``\\w`` and ``\\s`` are refused: they mean different
    characters in each engine beyond ASCII, while ``[0-9]`` means the same everywhere.
    """
    return syntax_reason(pattern) or complexity_reason(pattern)


def syntax_reason(pattern: str) -> str | None:
    """Why *pattern* is outside the portable subset or does not compile (Python's re), or None."""
    if len(pattern) > limits.MAX_PATTERN_LENGTH:
        return f"it is {len(pattern)} characters long; at most {limits.MAX_PATTERN_LENGTH} are allowed"
    if not pattern:
        return "it is empty and would match everything; remove it"
    if "\0" in pattern:
        return "it contains a NUL character, which PostgreSQL cannot store"
    if any(0xD800 <= ord(char) <= 0xDFFF for char in pattern):
        return "it contains a lone surrogate character (from an escape like \\ud800), which is not valid text"
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


@functools.lru_cache(maxsize=1024)
def complexity_reason(pattern: str) -> str | None:
    """Why a syntactically portable *pattern* is too costly for PostgreSQL or RE2 to compile, or None."""
    tree = parse(pattern)
    if _nullable_repeat(tree) is not None:
        return (
            "it repeats something that can match the empty string (like (a?){0,50} or (a*)+); PostgreSQL "
            "takes seconds to compile such patterns: repeat the non-optional part instead (a{0,50}, a*)"
        )
    size = expanded_size(tree)
    if size > limits.MAX_PATTERN_SIZE:
        return (
            f"it unrolls to {size} character positions (each {{m,n}} copies what it repeats n times); "
            "PostgreSQL refuses large ones as too complex and compiles them slowly before that, so at most "
            f"{limits.MAX_PATTERN_SIZE} are allowed: "
            "use smaller counts or fewer nested repeats"
        )
    try:
        _compiled(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"it is too complex to evaluate in linear time ({detail}): use smaller counts or fewer nested repeats"
    return None


def _to_re2(pattern: str) -> str:
    r"""PostgreSQL's ``$`` matches only at the very end: RE2's ``\z``."""
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
            out.append(r"\z" if char == "$" else char)
            position += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re2._Regexp:
    return re2.compile(_to_re2(pattern), _RE2_OPTIONS)


def search(pattern: str, value: str) -> bool:
    """``value ~ pattern`` as PostgreSQL evaluates it, for portable patterns, in linear time (RE2).

    No pattern can make this backtrack: RE2 runs in time linear in the value. A lone surrogate in
    *value* (which neither database can store) is matched as U+FFFD, one character like it.
    Raises :class:`re2.error` for a pattern that does not compile (validation refuses those).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in value)
    return _compiled(pattern).search(value) is not None


#: The name the engine and older callers use.
