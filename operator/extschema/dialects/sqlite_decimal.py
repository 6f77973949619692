"""Exact Decimal columns on SQLite, with built-in SQL only.

SQLite has no exact decimal type: a NUMERIC column turns ``'12345678901234567890.0123456789'``
into a REAL and keeps 15 digits. So a Decimal is stored as the text a client writes, and CHECKs
make that text a plain decimal number (``-?digits[.digits]``) within the column's precision and
scale. ``min``/``max`` compare numbers, not text: both sides are brought to one fixed width
(integer part zero-padded to ``precision - scale`` digits, fraction to ``scale`` digits), where
comparing text is comparing numbers, so bounds are exact whatever the number of digits.

Every condition lets NULL through (SQL's unknown), as a CHECK does for any column.
"""

from __future__ import annotations

import decimal


def plain(value: object) -> str:
    """A number as plain decimal text (``1e-05`` -> ``0.00001``), for a default the CHECKs accept."""
    number = decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(repr(value))
    return format(number, "f")


def well_formed(quoted: str, precision: int, scale: int) -> str:
    """Text that is a decimal number with at most ``precision - scale`` digits before the point
    (leading zeros aside) and ``scale`` after it (trailing zeros aside)."""
    whole = precision - scale
    return (
        f"{quoted} IS NULL OR (({quoted} GLOB '[0-9]*' OR {quoted} GLOB '-[0-9]*') "
        f"AND substr({quoted}, 2) NOT GLOB '*[^0-9.]*' AND {quoted} NOT GLOB '*.*.*' AND {quoted} NOT GLOB '*.' "
        f"AND instr(ltrim({quoted}, '-0') || '.', '.') <= {whole + 1} "
        f"AND (instr({quoted}, '.') = 0 OR length(rtrim({quoted}, '0')) - instr({quoted}, '.') <= {scale}))"
    )


def bounds(
    quoted: str, precision: int, scale: int, minimum: int | float | None, maximum: int | float | None
) -> list[str]:
    """``min``/``max`` conditions, exact (see the module docstring); the column is well-formed."""
    conditions: list[str] = []
    magnitude = _fixed_width(quoted, precision - scale, scale)
    negative = f"{quoted} GLOB '-*'"
    zero = "'" + "0" * precision + "'"
    if minimum is not None:
        # Values have at most *scale* fraction digits: v >= m  <=>  v >= m rounded up to the scale.
        low = _quantized(minimum, scale, decimal.ROUND_CEILING)
        low_text = _digits(abs(low), precision - scale, scale)
        if low_text is None:  # beyond every value the column holds
            conditions.append(f"{quoted} IS NULL OR 0" if low > 0 else f"{quoted} IS NULL OR 1")
        elif low >= 0:
            conditions.append(
                f"{quoted} IS NULL OR ((NOT {negative} OR {magnitude} = {zero}) AND {magnitude} >= '{low_text}')"
            )
        else:
            conditions.append(f"{quoted} IS NULL OR NOT {negative} OR {magnitude} <= '{low_text}'")
    if maximum is not None:
        high = _quantized(maximum, scale, decimal.ROUND_FLOOR)
        high_text = _digits(abs(high), precision - scale, scale)
        if high_text is None:
            conditions.append(f"{quoted} IS NULL OR 1" if high > 0 else f"{quoted} IS NULL OR 0")
        elif high >= 0:
            conditions.append(f"{quoted} IS NULL OR {negative} OR {magnitude} <= '{high_text}'")
        else:
            conditions.append(f"{quoted} IS NULL OR ({negative} AND {magnitude} >= '{high_text}')")
    return conditions


def _quantized(bound: int | float, scale: int, rounding: str) -> decimal.Decimal:
    exact = decimal.Decimal(bound) if isinstance(bound, int) else decimal.Decimal(repr(bound))
    context = decimal.Context(prec=max(len(exact.as_tuple().digits) + scale + 2, 28), rounding=rounding)
    return exact.quantize(decimal.Decimal(1).scaleb(-scale), context=context)


def _digits(magnitude: decimal.Decimal, whole: int, scale: int) -> str | None:
    """*magnitude* in the fixed width, or None when it has more than *whole* integer digits."""
    text = format(magnitude, f".{scale}f")
    integer, _, fraction = text.partition(".")
    integer = integer.lstrip("0")
    if len(integer) > whole:
        return None
    return integer.rjust(whole, "0") + fraction


def _fixed_width(quoted: str, whole: int, scale: int) -> str:
    """SQL for the column's absolute value in the fixed width (the column is well-formed)."""
    digits = f"ltrim({quoted}, '-0')"
    point = f"instr({digits} || '.', '.')"
    parts = []
    if whole:
        parts.append(f"substr('{'0' * whole}' || substr({digits}, 1, {point} - 1), -{whole})")
    if scale:
        parts.append(f"substr(substr({digits}, {point} + 1) || '{'0' * scale}', 1, {scale})")
    return " || ".join(parts) or "''"
