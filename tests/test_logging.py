"""JSON logs: one object per line, and the resource's namespace/name on every line about a resource."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import kopf
import pytest
from kopf._core.actions.loggers import LocalObjectLogger

from extschema.controller import logging as logs

BODY = {
    "apiVersion": "extschema.io/v1alpha1",
    "kind": "ExtensionSchema",
    "metadata": {"namespace": "shop", "name": "orders", "uid": "u-1"},
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """``configure`` as ``extschema run --log-format json`` calls it, with its handler writing to a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    logs.configure("json", verbose=False)
    stream = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler not in saved_handlers:
            handler.setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_kopf_object_logger_lines_carry_namespace_and_name(captured: io.StringIO) -> None:
    logger = LocalObjectLogger(body=kopf.Body(BODY), settings=kopf.OperatorSettings())
    logger.info("Handler 'reconcile' succeeded.")
    logger.warning("two\nlines")
    first, second = lines(captured)
    assert first["message"] == "Handler 'reconcile' succeeded." and first["level"] == "info"
    assert (first["kind"], first["namespace"], first["name"], first["uid"]) == (
        "ExtensionSchema",
        "shop",
        "orders",
        "u-1",
    )
    assert second["message"] == "two\nlines" and second["namespace"] == "shop"  # still one line of output
    assert len(captured.getvalue().splitlines()) == 2


def test_operator_lines_outside_handlers(captured: io.StringIO) -> None:
    log = logging.getLogger("extschema.operator")
    logs.for_resource(log, "shop", "orders").warning("drift check of %s failed", "orders")
    try:
        raise RuntimeError("database away")
    except RuntimeError:
        log.exception("re-check failed")
    about, general = lines(captured)
    assert about["namespace"] == "shop" and about["name"] == "orders" and about["logger"] == "extschema.operator"
    assert "namespace" not in general and "name" not in general  # not about a resource: no identity invented
    assert "RuntimeError: database away" in str(general["exception"])
    assert len(captured.getvalue().splitlines()) == 2


def test_text_format_prefixes_the_resource(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure("text", verbose=False)
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler) and handler not in saved_handlers:
                handler.setStream(stream)
        LocalObjectLogger(body=kopf.Body(BODY), settings=kopf.OperatorSettings()).info("hello")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert "[shop/orders] hello" in stream.getvalue()
    with pytest.raises(ValueError, match="unknown log format"):
        logs.configure("xml", verbose=False)
