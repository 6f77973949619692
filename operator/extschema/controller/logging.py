"""The operator's log lines: text for people, or one JSON object per line for log collectors.

``extschema run --log-format json`` writes every line — kopf's, the operator's, aiohttp's — as one
JSON object with ``time``, ``level``, ``logger`` and ``message``; a line about a resource also has
its ``kind``, ``namespace`` and ``name`` (and ``uid``), taken from the ``k8s_ref`` extra that kopf's
per-object logger (the ``logger`` handlers get) puts on every record, or that :func:`for_resource`
puts on the operator's own lines written outside handlers. A multi-line message or traceback stays
inside its JSON string, so a line is always a whole record.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import kopf

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the resource's identity as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            data.update({key: ref[key] for key in ("kind", "namespace", "name", "uid") if ref.get(key)})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


def for_resource(
    logger: logging.Logger, namespace: str, name: str, kind: str = "ExtensionSchema"
) -> logging.LoggerAdapter[logging.Logger]:
    """*logger* with the resource's identity on each line, for code outside kopf's handlers (the loops)."""
    return logging.LoggerAdapter(logger, {"k8s_ref": {"kind": kind, "namespace": namespace, "name": name}})


def configure(log_format: str, verbose: bool) -> None:
    """kopf's logging setup (levels, its stream handler), with the JSON formatter on it for ``json``."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; expected one of {', '.join(FORMATS)}")
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN, log_prefix=True)
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
