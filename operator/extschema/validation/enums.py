"""Enums: a valid type name, labels PostgreSQL can store, localizations that name real values."""

from __future__ import annotations

import re

from extschema import limits, model
from extschema.validation import context, identifiers, messages

LOCALE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def check_enum(ctx: context.Context, enum: model.EnumSpec, path: str) -> None:
    identifiers.check_identifier(ctx, enum.name, f"{path}.name", "enum name")
    if not enum.values:
        ctx.add("ES109", f"{path}.values", f"enum {messages.show(enum.name)} has no values: list at least one.")
    seen: dict[str, int] = {}
    for index, value in enumerate(enum.values):
        value_path = f"{path}.values[{index}]"
        size = messages.byte_length(value)
        if not value:
            ctx.add("ES109", value_path, "An enum value is empty: remove it or give it text.")
        elif "\0" in value:
            ctx.add("ES109", value_path, f"enum value {messages.show(value)} contains a NUL character: remove it.")
        elif size > limits.MAX_ENUM_LABEL_BYTES:
            ctx.add(
                "ES109",
                value_path,
                f"enum value {messages.show(value)} is {size} bytes; PostgreSQL allows {limits.MAX_ENUM_LABEL_BYTES}: "
                f"shorten it by {messages.byte_count(size - limits.MAX_ENUM_LABEL_BYTES)}.",
            )
        if value in seen:
            ctx.add(
                "ES109",
                value_path,
                f"enum value {messages.show(value)} is listed twice (first at values[{seen[value]}]): remove one.",
            )
        else:
            seen[value] = index
    for locale, labels in enum.localization.items():
        locale_path = messages.render_path(f"{path}.localization", [locale])
        if not LOCALE.fullmatch(locale):
            ctx.add(
                "ES119",
                locale_path,
                f"locale {messages.show(locale)} is not a language tag: write it like 'de' or 'pt-BR'.",
            )
        for value, label in labels.items():
            label_path = messages.render_path(locale_path, [value])
            if value not in seen:
                ctx.add(
                    "ES119",
                    label_path,
                    f"localization names {messages.show(value)}, which is not a value of "
                    f"enum {messages.show(enum.name)} "
                    f"(values: {messages.listing(enum.values)}).{messages.close_match(value, seen)}",
                )
            if "\0" in label:
                ctx.add("ES119", label_path, "The label contains a NUL character: remove it.")
