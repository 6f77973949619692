"""Semantic versions in semver 2.0 order, for the rule that a changed schema needs a new version.

Validation checks that a spec's version is a semantic version (ES115); here versions are only
ordered. Build metadata (``+…``) does not take part: ``1.0.0+a`` and ``1.0.0+b`` are equal, as
semver.org says, so a changed schema needs more than new build metadata.
"""

from __future__ import annotations


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as *a* is lower than, equal to or higher than *b*; ``ValueError`` for a
    string that is not a semantic version."""
    left, right = _key(a), _key(b)
    return (left > right) - (left < right)


def _key(version: str) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
    text = version.split("+", 1)[0]
    core, dash, pre = text.partition("-")
    numbers = core.split(".")
    if len(numbers) != 3 or not all(_is_number(n) for n in numbers) or (dash and not pre):
        raise ValueError(f"{version!r} is not a semantic version")
    major, minor, patch = (int(n) for n in numbers)
    # A pre-release sorts before its release; its identifiers compare numerically when numeric,
    # numeric ones before alphanumeric ones, and a shorter list first when one is a prefix.
    identifiers = tuple((0, int(p), "") if _is_number(p) else (1, 0, p) for p in pre.split(".")) if dash else ()
    if any(not p for p in pre.split(".")) and dash:
        raise ValueError(f"{version!r} is not a semantic version")
    return (major, minor, patch), 0 if dash else 1, identifiers


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
