"""The rules of a DatabaseTarget spec the model alone cannot say (the CRD's CEL rules and patterns, as problems)."""

from __future__ import annotations

import re

from extschema import limits, model
from extschema.problems import Problem
from extschema.validation import messages

#: A URL whose user part has a password (``scheme://user:password@``): the CRD's rule, word for word.
_PASSWORD = re.compile(r"^[A-Za-z0-9+.-]+://[^/@]*:[^/@]*@")
_SCHEMES = ("postgresql", "postgres", "sqlite")


def check_target(spec: model.DatabaseTargetSpec, path: str = "spec") -> list[Problem]:
    """ES015 (url and urlSecretRef), ES016 (durations), ES017 (the URL itself)."""
    problems: list[Problem] = []
    if (spec.url is None) == (spec.url_secret_ref is None):
        which = "both" if spec.url is not None else "neither"
        problems.append(
            Problem(
                "ES015",
                path,
                f"a DatabaseTarget sets exactly one of url and urlSecretRef; this one sets {which}: use url for a URL "
                "without a password, urlSecretRef for a Secret holding one",
            )
        )
    if spec.url is not None:
        scheme = spec.url.partition("://")[0].partition("+")[0]
        if _PASSWORD.match(spec.url):
            problems.append(
                Problem(
                    "ES017",
                    f"{path}.url",
                    "url holds a password: put the URL in a Secret and name it with urlSecretRef "
                    "(kubectl create secret generic NAME --from-literal=url=...)",
                )
            )
        elif "://" not in spec.url or scheme not in _SCHEMES:
            problems.append(
                Problem(
                    "ES017",
                    f"{path}.url",
                    "url is not a database URL: use sqlite:////path/app.db or postgresql://host:5432/db",
                )
            )
    for key, value in (("lockTimeout", spec.lock_timeout), ("statementTimeout", spec.statement_timeout)):
        if value is None:
            continue
        parsed = limits.parse_duration_ms(value)
        if parsed is None or parsed <= 0 or len(value) > 16:
            problems.append(
                Problem(
                    "ES016",
                    f"{path}.{key}",
                    f"{messages.show(value)} is not a duration: write a whole number with ms, s or m (500ms, 5s, 2m)",
                )
            )
    return problems
