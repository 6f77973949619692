"""The plugin as a whole: its id, its version, the plugins it depends on."""

from __future__ import annotations

import re

from extschema.validation import context, identifiers, messages

#: The official semver 2.0 expression (semver.org); ASCII so that \d is 0-9 only.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)


def check_plugin(ctx: context.Context) -> None:
    spec = ctx.spec
    reason = identifiers.plugin_id_reason(spec.plugin_id)
    if reason:
        ctx.add("ES116", ctx.at("pluginId"), f"pluginId {messages.show(spec.plugin_id)} is not valid: {reason}.")
    if not SEMVER.fullmatch(spec.version):
        guess = re.sub(r"^[vV]", "", spec.version.strip())
        guess = guess + ".0" * (2 - guess.count(".")) if re.fullmatch(r"[0-9]+(\.[0-9]+){0,2}", guess) else ""
        example = f' such as "{guess}"' if guess and SEMVER.fullmatch(guess) else ' such as "1.0.0"'
        ctx.add(
            "ES115",
            ctx.at("version"),
            f"version {messages.show(spec.version)} is not a semantic version (MAJOR.MINOR.PATCH, semver.org): "
            f"write one{example}.",
        )
    seen: dict[str, int] = {}
    for index, dep in enumerate(spec.depends_on):
        path = ctx.at(f"dependsOn[{index}]")
        if dep in seen:
            ctx.add(
                "ES104",
                path,
                f"dependsOn lists {messages.show(dep)} twice (first at dependsOn[{seen[dep]}]): remove one.",
            )
            continue
        seen[dep] = index
        if dep == spec.plugin_id:
            ctx.add("ES117", path, f"dependsOn lists the plugin itself ({messages.show(dep)}): remove it.")
            continue
        dep_reason = identifiers.plugin_id_reason(dep)
        if dep_reason:
            ctx.add("ES117", path, f"dependsOn entry {messages.show(dep)} is not a valid pluginId: {dep_reason}.")
