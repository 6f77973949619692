"""A staged rollout of one ExtensionSchema over the DatabaseTargets its ``spec.targetSelector`` selects.

Pure: which targets migrate in which wave, whether a paused rollout goes on, and what the rollout as a
whole says once a run stopped. The operator (``extschema.controller.rollout``) runs the waves.

Canary targets come first, in waves of at most ``maxParallel`` (ordered by name); the others only once
every canary is Ready, in waves of at most ``maxParallel``. A failed target with ``pauseOnFailure``
pauses the rollout: no new wave starts until the spec changes or the ``extschema.io/resume`` annotation
gets a new value. Waiting for an approval is not a failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

#: What one target's last run left: Ready, waiting for an approval, failed, or not run yet.
State = Literal["ready", "waiting", "failed", "pending"]
Phase = Literal["Progressing", "Paused", "Complete"]

#: The annotation whose new value resumes a paused rollout.
RESUME_ANNOTATION = "extschema.io/resume"


@dataclasses.dataclass(frozen=True)
class Wave:
    """Targets that migrate at the same time (at most maxParallel), numbered from 1."""

    number: int
    targets: tuple[str, ...]
    canary: bool


def plan_waves(names: Iterable[str], canaries: Collection[str], max_parallel: int) -> list[Wave]:
    """The waves of a rollout: the canaries first, then the others, each group by name in waves of
    at most *max_parallel* targets."""
    if max_parallel < 1:
        raise ValueError("max_parallel must be at least 1")
    ordered = sorted(set(names))
    waves: list[Wave] = []
    for canary in (True, False):
        group = [n for n in ordered if (n in canaries) is canary]
        for start in range(0, len(group), max_parallel):
            waves.append(Wave(len(waves) + 1, tuple(group[start : start + max_parallel]), canary))
    return waves


def resumes(
    *, paused: bool, paused_generation: int | None, generation: int, resumed: str | None, annotation: str | None
) -> bool:
    """Whether a run goes on: the rollout is not paused, or its spec changed since it paused, or the
    resume annotation has a value it has not acted on yet."""
    if not paused:
        return True
    return paused_generation != generation or (annotation is not None and annotation != resumed)


@dataclasses.dataclass(frozen=True)
class Summary:
    """The rollout as a whole after a run: its phase, and the reason and message of its Ready condition."""

    phase: Phase
    reason: str
    message: str


def _names(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def summarize(
    states: Mapping[str, State],
    *,
    selector: str,
    waiting_hashes: Mapping[str, Sequence[str]] | None = None,
    failures: Mapping[str, str] | None = None,
    paused_at: str | None = None,
    interrupted_by: int | None = None,
    canary_blocked: bool = False,
) -> Summary:
    """What the rollout says: *states* by target (wave order), *waiting_hashes* (plan hash → targets
    waiting for its approval), *failures* (target → why), where it paused, whether a newer generation
    interrupted it, and whether unready canaries held the other targets back."""
    total = len(states)
    ready = sorted(n for n, s in states.items() if s == "ready")
    failures = dict(failures or {})
    waiting_hashes = dict(waiting_hashes or {})
    if total == 0 and not failures:
        return Summary(
            "Progressing",
            "NoTargetsSelected",
            f"no DatabaseTarget in this namespace matches spec.targetSelector ({selector or 'everything'}); "
            "label one to match and it gets the plugin",
        )
    if interrupted_by is not None:
        return Summary(
            "Progressing",
            "Progressing",
            f"a newer spec (generation {interrupted_by}) interrupted the rollout between waves with "
            f"{len(ready)}/{total} targets Ready; it starts again for the new spec",
        )
    if paused_at is not None:
        why = failures.get(paused_at, "it is not Ready")
        return Summary(
            "Paused",
            "RolloutPaused",
            f"rollout paused at target {paused_at} ({len(ready)}/{total} Ready): {why}; fix it, then resume with "
            "`kubectl annotate exts NAME extschema.io/resume=$(date +%s) --overwrite`, or change the spec",
        )
    parts: list[str] = []
    if failures:
        failed = sorted(failures)
        parts.append(f"{len(failed)} target(s) failed ({_names(failed)}): {failures[failed[0]]}")
    for plan_hash, names in waiting_hashes.items():
        parts.append(
            f"plan {plan_hash} waits for approval on {len(names)} target(s) ({_names(list(names))}); "
            f"add it to spec.approvedPlanHashes (or set spec.approvedPlanHash) to apply it on every one of them"
        )
    if canary_blocked:
        parts.append("the other targets wait until every canary is Ready")
    if failures:
        return Summary("Complete", "TargetsNotReady", f"{len(ready)}/{total} targets Ready; " + "; ".join(parts))
    if waiting_hashes or canary_blocked:
        return Summary("Progressing", "ApprovalRequired", f"{len(ready)}/{total} targets Ready; " + "; ".join(parts))
    if len(ready) < total:
        pending = sorted(n for n, s in states.items() if s != "ready")
        return Summary("Progressing", "Progressing", f"{len(ready)}/{total} targets Ready; waiting: {_names(pending)}")
    return Summary("Complete", "Applied", f"applied to all {total} selected targets ({selector or 'everything'})")
