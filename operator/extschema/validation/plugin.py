"""The plugin as a whole: its id, its version, the plugins it depends on."""

from __future__ import annotations

import re

from extschema import limits, model
from extschema.problems import Problem
from extschema.validation import context, identifiers, messages

#: Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label).
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

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
    if len(spec.version) > limits.MAX_VERSION_LENGTH:
        ctx.add(
            "ES115",
            ctx.at("version"),
            f"version is {len(spec.version)} characters long; at most {limits.MAX_VERSION_LENGTH} are allowed.",
        )
    elif not SEMVER.fullmatch(spec.version):
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


def check_metadata(metadata: model.ObjectMeta, path: str = "metadata") -> list[Problem]:
    """ES020 unless the name (and namespace) are what Kubernetes would accept and the registry can hold.

    The name is the plugin's owner in the registry; from files it is also what a cluster would
    later call the same object, so it follows Kubernetes' rules there too.
    """
    problems = []
    for key, value, pattern, limit, kind in (
        ("name", metadata.name, DNS_SUBDOMAIN, limits.MAX_RESOURCE_NAME_LENGTH, "DNS subdomain"),
        ("namespace", metadata.namespace, DNS_LABEL, limits.MAX_NAMESPACE_LENGTH, "DNS label"),
    ):
        if value is None:
            continue
        if len(value) > limit:
            reason = f"it is {len(value)} characters long; at most {limit} are allowed"
        elif not pattern.fullmatch(value):
            reason = (
                f"it must be a {kind}: lowercase letters, digits and '-'{' and ' + repr('.') if key == 'name' else ''}"
            )
            reason += ", starting and ending with a letter or digit"
        else:
            continue
        problems.append(
            Problem("ES020", f"{path}.{key}", f"metadata.{key} {messages.show(value)} is not valid: {reason}.")
        )
    return problems
