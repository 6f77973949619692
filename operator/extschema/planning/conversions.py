"""Which changes of a column extschema can carry out, and which ones existing rows may violate.

One table of type changes, read by the policy (a change not in it is refused with ES312) and by
:mod:`extschema.planning.safety` (how risky the change is). The rule: a conversion is supported
when every database converts every value the same, well-defined way — or refuses the row, which
the data check counts beforehand. Conversions that would need a guess (a date's text form, how to
round a float, what a boolean is as text) are not: add a new field, copy the data with a
``spec.migrations`` step, then drop the old field.

=================================  ===========  =========================================
from → to                          class        rows that violate the new column
=================================  ===========  =========================================
String(n) → String(m)              safe         m < n: values longer than m
String ↔ Text                      safe         Text → String(n): values longer than n
Int → BigInt                       rewriting    —
BigInt → Int                       rewriting    values outside Int's range
Int / BigInt → Decimal(p, s)       rewriting    p - s < 10 / 19 digits: values too large
Int → Float                        rewriting    —
BigInt → Float                     rewriting    values beyond ±2⁵³ (they would be rounded)
Decimal(p, s) → Decimal(q, t)      safe         fewer integer digits (too large) or t < s (rounded)
Enum → String / Text               rewriting    String(n): values longer than n
String / Text → Enum               rewriting    values not in the enum
Enum e → Enum f                    rewriting    values not in f
=================================  ===========  =========================================

A conversion with violating rows is *narrowing*: the operation is destructive and carries a
``rows_violating`` check. Rules narrow the same way (:func:`narrowing`): a new or stricter
length, bound, pattern, NOT NULL, UNIQUE or foreign key.
"""

from __future__ import annotations

from typing import Literal

from extschema.model import FieldType
from extschema.planning.resolved import ColumnDef

#: How a type change runs, ignoring rows that may violate it (:func:`narrowing` says that).
TypeChange = Literal["safe", "rewriting"]

#: Decimal digits an integer type can hold.
INTEGER_DIGITS: dict[FieldType, int] = {"Int": 10, "BigInt": 19}
INT_RANGE = (-(2**31), 2**31 - 1)
#: Beyond this a double cannot hold every integer.
FLOAT_EXACT = 2**53

_TEXT: frozenset[FieldType] = frozenset({"String", "Text"})

#: Supported changes between different types (same-type changes are always supported).
TYPE_CHANGES: dict[tuple[FieldType, FieldType], TypeChange] = {
    ("String", "Text"): "safe",
    ("Text", "String"): "safe",
    ("Int", "BigInt"): "rewriting",
    ("BigInt", "Int"): "rewriting",
    ("Int", "Decimal"): "rewriting",
    ("BigInt", "Decimal"): "rewriting",
    ("Int", "Float"): "rewriting",
    ("BigInt", "Float"): "rewriting",
    ("Enum", "String"): "rewriting",
    ("Enum", "Text"): "rewriting",
    ("String", "Enum"): "rewriting",
    ("Text", "Enum"): "rewriting",
}


def type_change(before: ColumnDef, after: ColumnDef) -> TypeChange | None:
    """How the column's type changes; None when extschema cannot convert it (ES312)."""
    if before.type != after.type:
        return TYPE_CHANGES.get((before.type, after.type))
    if before.type == "Enum" and _enum_name(before) != _enum_name(after):
        return "rewriting"
    if before.type == "Decimal" and (before.precision, before.scale) != (after.precision, after.scale):
        # PostgreSQL keeps the rows of numeric(p, s) → numeric(q, s) with q > p; any other change recasts them.
        return (
            "safe" if before.scale == after.scale and (after.precision or 0) >= (before.precision or 0) else "rewriting"
        )
    return "safe"


def narrowing(before: ColumnDef, after: ColumnDef) -> list[str]:
    """Why rows valid for *before* may be invalid for *after* (empty: every row stays valid)."""
    reasons: list[str] = []
    if before.nullable and not after.nullable:
        reasons.append("it becomes required: rows without a value violate it")
    if after.unique and not before.unique:
        reasons.append("it becomes unique: rows sharing a value violate it")
    reasons.extend(_type_narrowing(before, after))
    reasons.extend(_rule_narrowing(before, after))
    fk, previous = after.foreign_key, before.foreign_key
    if fk is not None and (previous is None or (previous.references, previous.column) != (fk.references, fk.column)):
        reasons.append(f"it references {fk.references}.{fk.column}: values without such a row violate it")
    return reasons


def narrows_values(before: ColumnDef, after: ColumnDef) -> bool:
    """Whether *after*'s type holds less than *before*'s (length, digits, decimals, range, enum
    values): converting a value that does not fit would change it, where a rule only refuses it."""
    return bool(_type_narrowing(before, after))


def _enum_name(column: ColumnDef) -> str | None:
    return column.enum.name if column.enum is not None else None


def _enum_values(column: ColumnDef) -> frozenset[str] | None:
    """The values an enum column may hold; None when it is not an enum column (or the enum is unknown)."""
    return frozenset(column.enum.values) if column.enum is not None else None


def max_text_length(column: ColumnDef) -> int | None:
    """The longest text *column* admits: a String's length, a Text's maxLength, an enum's longest value."""
    if column.type == "String":
        return column.string_length
    if column.type == "Text":
        return column.max_length
    if column.type == "Enum" and column.enum is not None and column.enum.values:
        return max(len(v) for v in column.enum.values)
    return None


def integer_digits(column: ColumnDef) -> int | None:
    """Digits before the decimal point the column holds (None: not limited by its type)."""
    if column.type in INTEGER_DIGITS:
        return INTEGER_DIGITS[column.type]
    if column.type == "Decimal" and column.precision is not None:
        return column.precision - (column.scale or 0)
    return None


def _type_narrowing(before: ColumnDef, after: ColumnDef) -> list[str]:
    reasons: list[str] = []
    if before.type == "BigInt" and after.type == "Float":
        reasons.append(f"Float holds integers exactly only up to ±{FLOAT_EXACT}: larger values violate it")
    digits_before, digits_after = integer_digits(before), integer_digits(after)
    if digits_after is not None and (digits_before is None or digits_after < digits_before):
        if after.type == "Int":
            reasons.append(f"Int holds {INT_RANGE[0]}..{INT_RANGE[1]}: values outside violate it")
        else:
            reasons.append(f"it holds {digits_after} digits before the point: larger values violate it")
    if after.type == "Decimal" and before.type == "Decimal" and (after.scale or 0) < (before.scale or 0):
        reasons.append(f"it keeps {after.scale} decimals: values with more violate it (they would be rounded)")
    if after.type == "Enum":
        values_before, values_after = _enum_values(before), _enum_values(after)
        if values_after is not None and (values_before is None or not values_before <= values_after):
            reasons.append(f"values not in enum {_enum_name(after)} violate it")
    length_before, length_after = max_text_length(before), max_text_length(after)
    if length_after is not None and (length_before is None or length_after < length_before):
        reasons.append(f"it holds at most {length_after} characters: longer values violate it")
    return reasons


def _rule_narrowing(before: ColumnDef, after: ColumnDef) -> list[str]:
    reasons: list[str] = []
    if after.min_length is not None and (before.min_length is None or after.min_length > before.min_length):
        reasons.append(f"minLength {after.min_length}: shorter values violate it")
    if after.min is not None and (before.min is None or after.min > before.min):
        reasons.append(f"min {after.min}: smaller values violate it")
    if after.max is not None and (before.max is None or after.max < before.max):
        reasons.append(f"max {after.max}: larger values violate it")
    if after.pattern is not None and after.pattern != before.pattern:
        reasons.append(f"pattern {after.pattern!r}: values without a match violate it")
    return reasons
