"""One field: its type's options, its validation rules and its default."""

from __future__ import annotations

import math
import sys

from extschema import limits, model, portable_regex
from extschema.validation import context, defaults, messages


def check_field(ctx: context.Context, field: model.FieldSpec, path: str) -> None:
    kind = field.type
    ctx.check_text(field.description, f"{path}.description")
    if kind == "Enum":
        if field.enum is None:
            ctx.add(
                "ES112",
                f"{path}.enum",
                f"A field of type Enum needs 'enum:' naming one of spec.enums "
                f"(declared: {messages.listing(ctx.enums)}).",
            )
        elif field.enum not in ctx.enums:
            ctx.add(
                "ES112",
                f"{path}.enum",
                f"enum {messages.show(field.enum)} is not declared in spec.enums (declared: "
                f"{messages.listing(ctx.enums)})."
                f"{messages.close_match(field.enum, ctx.enums)}",
            )
    elif field.enum is not None:
        ctx.add(
            "ES106",
            f"{path}.enum",
            f"'enum' only applies to type Enum, not {kind}: remove it or use type: Enum.",
        )
    if kind == "Decimal":
        check_decimal(ctx, field, path)
    else:
        for option, value in (("precision", field.precision), ("scale", field.scale)):
            if value is not None:
                ctx.add(
                    "ES106",
                    f"{path}.{option}",
                    f"'{option}' only applies to Decimal, not {kind}: remove it.",
                )
    if field.validation is not None:
        check_rules(ctx, field, field.validation, f"{path}.validation")
    if field.default is not None:
        reason = defaults.default_reason(ctx, field, field.default)
        if reason:
            ctx.add(
                "ES105",
                f"{path}.default",
                f"default {messages.describe(field.default)} does not fit {kind} field "
                f"{messages.show(field.name)}: {reason}.",
            )


def check_decimal(ctx: context.Context, field: model.FieldSpec, path: str) -> None:
    precision = limits.DEFAULT_PRECISION if field.precision is None else field.precision
    scale = limits.DEFAULT_SCALE if field.scale is None else field.scale
    if not 1 <= precision <= limits.MAX_PRECISION:
        ctx.add("ES110", f"{path}.precision", f"precision {precision} must be between 1 and {limits.MAX_PRECISION}.")
    elif not 0 <= scale <= precision:
        where = "scale" if field.scale is not None else "precision"
        implied = "" if field.scale is not None else f" (scale defaults to {limits.DEFAULT_SCALE}; set it explicitly)"
        ctx.add(
            "ES110",
            f"{path}.{where}",
            f"scale {scale} must be between 0 and precision {precision}{implied}.",
        )


def check_rules(ctx: context.Context, field: model.FieldSpec, rules: model.ValidationRules, path: str) -> None:
    kind = field.type
    text, numeric = (context.TEXT_TYPES, "String and Text"), (context.NUMERIC_TYPES, "Int, BigInt, Float and Decimal")
    options = (
        ("minLength", rules.min_length, text),
        ("maxLength", rules.max_length, text),
        ("pattern", rules.pattern, text),
        ("min", rules.min, numeric),
        ("max", rules.max, numeric),
    )
    for key, value, (types, names) in options:
        if value is not None and kind not in types:
            ctx.add("ES106", f"{path}.{key}", f"'{key}' only applies to {names} fields, not {kind}: remove it.")
    if kind in context.TEXT_TYPES:
        check_lengths(ctx, kind, rules, path)
        if rules.pattern is not None:
            check_pattern(ctx, rules.pattern, f"{path}.pattern")
    if kind in context.NUMERIC_TYPES:
        check_bounds(ctx, kind, rules, path)


def check_pattern(ctx: context.Context, pattern: str, path: str) -> None:
    """ES108 outside the portable subset, ES123 when PostgreSQL could not compile it quickly."""
    reason = portable_regex.syntax_reason(pattern)
    if reason:
        shown = messages.show(pattern)
        ctx.add("ES108", path, f"pattern {shown} cannot be used on both PostgreSQL and SQLite: {reason}.")
        return
    reason = portable_regex.complexity_reason(pattern)
    if reason:
        ctx.add("ES123", path, f"pattern {messages.show(pattern)} is too complex: {reason}.")


def check_lengths(ctx: context.Context, kind: str, rules: model.ValidationRules, path: str) -> None:
    if rules.min_length is not None and rules.min_length < 0:
        ctx.add("ES107", f"{path}.minLength", f"minLength {rules.min_length} must be 0 or more.")
    least = 1 if kind == "String" else 0
    maximum = rules.max_length
    if maximum is not None and maximum < least:
        ctx.add("ES107", f"{path}.maxLength", f"maxLength {maximum} must be {least} or more.")
    elif kind == "String" and maximum is not None and maximum > limits.MAX_VARCHAR_LENGTH:
        ctx.add(
            "ES106",
            f"{path}.maxLength",
            f"maxLength {maximum} is more than PostgreSQL's varchar limit {limits.MAX_VARCHAR_LENGTH}: use type Text.",
        )
    if maximum is None and kind == "String":
        maximum = limits.DEFAULT_STRING_LENGTH
    if rules.min_length is not None and maximum is not None and rules.min_length > maximum:
        implied = " (String's default maxLength)" if rules.max_length is None else ""
        ctx.add(
            "ES107",
            f"{path}.minLength",
            f"minLength {rules.min_length} is greater than maxLength {maximum}{implied}: lower it or raise maxLength.",
        )


def check_bounds(ctx: context.Context, kind: str, rules: model.ValidationRules, path: str) -> None:
    usable = True
    for key, bound in (("min", rules.min), ("max", rules.max)):
        if bound is None:
            continue
        if isinstance(bound, float) and not math.isfinite(bound):
            ctx.add("ES107", f"{path}.{key}", f"{key} must be a finite number, not {bound}.")
            usable = False
        elif kind in limits.INT_RANGES and not limits.INT_RANGES[kind][0] <= bound <= limits.INT_RANGES[kind][1]:
            low, high = limits.INT_RANGES[kind]
            ctx.add(
                "ES106",
                f"{path}.{key}",
                f"{key} {messages.format_number(bound)} is outside the {kind} range {low}..{high}"
                f"{'; use BigInt' if kind == 'Int' else ''}.",
            )
        elif kind == "Float" and abs(bound) > sys.float_info.max:
            ctx.add("ES106", f"{path}.{key}", f"{key} {messages.format_number(bound)} is outside the Float range.")
    if usable and rules.min is not None and rules.max is not None and rules.min > rules.max:
        ctx.add(
            "ES107",
            f"{path}.min",
            f"min {messages.format_number(rules.min)} is greater than max "
            f"{messages.format_number(rules.max)}: swap them.",
        )
