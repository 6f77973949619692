"""Defaults: each must be a value the field itself would accept, in both databases."""

from __future__ import annotations

import datetime
import decimal
import difflib
import math
import re
import sys
import typing

from extschema import limits, model, portable_regex
from extschema.validation import context, messages

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
)
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def default_reason(ctx: context.Context, field: model.FieldSpec, value: str | bool | int | float) -> str | None:
    """Why *value* cannot be the default of *field*, or None."""
    if isinstance(value, str) and "\0" in value:
        return "it contains a NUL character, which PostgreSQL cannot store"
    if isinstance(value, float) and not math.isfinite(value):
        return "it must be a finite number"
    kind = field.type
    if kind in context.TEXT_TYPES:
        return text_default_reason(ctx, field, value)
    if kind in context.NUMERIC_TYPES:
        return number_default_reason(ctx, field, value)
    if kind == "Boolean":
        return None if isinstance(value, bool) else "write true or false"
    if kind == "Json":
        return None  # any JSON scalar is a JSON document
    if not isinstance(value, str):
        return "expected a string; quote it"
    if kind == "Enum":
        enum = ctx.enums.get(field.enum or "")
        if enum is None or value in enum.values:
            return None
        close = difflib.get_close_matches(value, enum.values, n=1, cutoff=0.7)
        guess = f" (did you mean {messages.show(close[0])}?)" if close else ""
        return f"use one of the values of enum {messages.show(enum.name)}: {messages.listing(enum.values)}{guess}"
    if kind == "Uuid":
        return None if UUID.fullmatch(value) else "write a UUID like 123e4567-e89b-12d3-a456-426614174000"
    if kind == "Date":
        if DATE.fullmatch(value) and _parses(datetime.date.fromisoformat, value):
            return None
        return "write a date as YYYY-MM-DD, e.g. 2024-01-31"
    return _datetime_reason(value)


def _datetime_reason(value: str) -> str | None:
    """A DateTime default: 'now', or an instant both databases store and a client can read back.

    PostgreSQL refuses offsets beyond ±15:59 and stores instants in UTC: 0001-01-01T00:00:00+01:00
    becomes a date BC, which no client library reads back, so the UTC instant must lie in years
    1 to 9999 (dates themselves are bounded the same way by their YYYY-MM-DD form).
    """
    if value == "now":
        return None
    example = "write an ISO 8601 time with a timezone, e.g. 2024-01-01T00:00:00Z, or 'now'"
    if not DATETIME.fullmatch(value):
        return example
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return example
    offset = parsed.utcoffset()
    if offset is None:
        return example
    if abs(offset) > datetime.timedelta(minutes=limits.MAX_TIMEZONE_OFFSET_MINUTES):
        return "its UTC offset is beyond ±15:59, which PostgreSQL refuses"
    try:
        parsed.astimezone(datetime.UTC)
    except OverflowError:
        return "in UTC it falls outside the years 1 to 9999; move it inside them"
    return None


def text_default_reason(ctx: context.Context, field: model.FieldSpec, value: str | bool | int | float) -> str | None:
    if not isinstance(value, str):
        shown = str(value).lower() if isinstance(value, bool) else messages.format_number(value)
        return f"expected a string; quote it: {messages.show(shown)}"
    rules = field.validation or model.ValidationRules()
    maximum = rules.max_length
    if maximum is None and field.type == "String":
        maximum = limits.DEFAULT_STRING_LENGTH
    if maximum is not None and len(value) > maximum:
        return f"it is {len(value)} characters long; maxLength is {maximum}"
    if rules.min_length is not None and len(value) < rules.min_length:
        return f"it is {len(value)} characters long; minLength is {rules.min_length}"
    if (
        rules.pattern
        and portable_regex.is_portable_pattern(rules.pattern) is None
        and not portable_regex.search(rules.pattern, value)
    ):
        return f"it does not match the pattern {messages.show(rules.pattern)}"
    return None


def number_default_reason(ctx: context.Context, field: model.FieldSpec, value: str | bool | int | float) -> str | None:
    kind = field.type
    integral = kind in limits.INT_RANGES
    spelling = messages.yaml_number_spelling(value) if isinstance(value, str) and not integral else None
    if spelling is not None:
        return f"YAML reads it as text (a number needs a point and a signed exponent): write {spelling}"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integral and isinstance(value, float)):
        return f"expected {'an integer' if integral else 'a number'}, without quotes"
    if integral and not limits.INT_RANGES[kind][0] <= value <= limits.INT_RANGES[kind][1]:
        return f"it is outside the {kind} range {limits.INT_RANGES[kind][0]}..{limits.INT_RANGES[kind][1]}"
    if kind == "Float" and abs(value) > sys.float_info.max:
        return "it is outside the Float range"
    rules = field.validation or model.ValidationRules()
    if rules.min is not None and value < rules.min:
        return f"it is less than min {messages.format_number(rules.min)}"
    if rules.max is not None and value > rules.max:
        return f"it is greater than max {messages.format_number(rules.max)}"
    if kind == "Decimal":
        return _decimal_reason(field, value)
    return None


def _parses(parse: typing.Callable[[str], object], value: str) -> bool:
    """Whether *parse* accepts *value* and gives something (a timezone, for datetimes)."""
    try:
        return parse(value) is not None
    except ValueError:
        return False


def _decimal_reason(field: model.FieldSpec, value: int | float) -> str | None:
    precision = limits.DEFAULT_PRECISION if field.precision is None else field.precision
    scale = limits.DEFAULT_SCALE if field.scale is None else field.scale
    if not 0 <= scale <= precision <= limits.MAX_PRECISION:
        return None  # ES110 says what to fix first
    number = decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(repr(value))
    exponent = int(number.as_tuple().exponent)
    whole = max(len(number.as_tuple().digits) + exponent, 0)
    fraction = max(-exponent, 0)
    if whole > precision - scale:
        return f"it has {whole} digits before the point; Decimal({precision},{scale}) allows {precision - scale}"
    if fraction > scale:
        return f"it has {fraction} digits after the point; scale is {scale}"
    return None
