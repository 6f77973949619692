"""Long-running commands: run (the operator), serve (the REST API), wait (for a resource)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from extschema.cli.base import (
    EXIT_DATABASE,
    EXIT_INVALID,
    EXIT_TIMEOUT,
    database_option,
    emit_json,
    main,
    output_option,
    parse_duration_option,
    reported,
)
from extschema.problems import Problem, escape

if TYPE_CHECKING:
    pass


@main.command()
@click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    envvar="EXTSCHEMA_DATABASE_URL",
    show_envvar=True,
    help="Default database for ExtensionSchemas without spec.targetRef.",
)
@click.option("--namespace", "-n", "namespaces", multiple=True, metavar="NS", help="Watch this namespace (repeatable).")
@click.option("--all-namespaces", "-A", "all_namespaces", is_flag=True, help="Watch every namespace.")
@click.option("--liveness", metavar="URL", help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz.")
@click.option(
    "--readiness",
    metavar="URL",
    help="Readiness endpoint, e.g. http://0.0.0.0:8081/readyz: 200 once logged in to Kubernetes and while the "
    "default database answers, else 503 with the reason.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json", "plain"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, with the resource's namespace and name (plain: same as text).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    envvar="EXTSCHEMA_METRICS_PORT",
    show_envvar=True,
    help="Serve /metrics (0: off).",
)
@click.option("--webhook-port", type=int, default=0, help="Serve the validating admission webhook (0: off).")
@click.option(
    "--webhook-host",
    default="127.0.0.1",
    show_default=True,
    help="Name or IP the API server calls, for the certificate generated without --webhook-cert.",
)
@click.option("--webhook-cert", type=click.Path(exists=True, dir_okay=False), help="Serving certificate (PEM).")
@click.option("--webhook-key", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM).")
@click.option("--webhook-ca", type=click.Path(exists=True, dir_okay=False), help="CA of the certificate (caBundle).")
@click.option("--standalone", is_flag=True, help="No kopf peering (run exactly one replica).")
@click.option(
    "--shard",
    type=int,
    metavar="I",
    help="Own only the ExtensionSchemas labeled extschema.io/shard=I, one of --shards N operators "
    "(docs/sharding.md); shard 0 labels the unlabeled ones.",
)
@click.option("--shards", type=int, metavar="N", help="How many shards there are (with --shard).")
@click.option(
    "--peering",
    metavar="NAME",
    help="Run as one of several replicas sharing the kopf peering object NAME: one is active, the others stand "
    "by and take over within ~10 s when it dies (docs/ha.md). Created when missing.",
)
@click.option(
    "--priority",
    type=int,
    help="This replica's peering priority; the live replica with the highest is active. Default: the older "
    "replica wins (derived from the start time; two replicas never tie).",
)
@click.option(
    "--drift-interval",
    metavar="DURATION",
    envvar="EXTSCHEMA_DRIFT_INTERVAL",
    show_envvar=True,
    help="How often each Ready resource's database objects are compared with its spec, e.g. 30s, 5m (default 5m).",
)
@click.option(
    "--allow-raw-sql",
    is_flag=True,
    envvar="EXTSCHEMA_ALLOW_RAW_SQL",
    show_envvar=True,
    help="Let schemas on the default database (--database) run their raw SQL steps (spec.migrations); "
    "a DatabaseTarget allows them with spec.allowRawSql.",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def run(
    database: str | None,
    namespaces: Sequence[str],
    all_namespaces: bool,
    liveness: str | None,
    readiness: str | None,
    log_format: str,
    standalone: bool,
    shard: int | None,
    shards: int | None,
    peering: str | None,
    priority: int | None,
    drift_interval: str | None,
    allow_raw_sql: bool,
    verbose: bool,
    **observe: Any,
) -> None:
    """Run the Kubernetes operator (kopf) for ExtensionSchema and DatabaseTarget resources.

    It runs until stopped and logs (--log-format) instead of printing a result: it has no -o. Options with an
    env var also read it (the chart sets them); docs/operator.md lists every setting.
    """
    # The one import between the shells (declared in the import-linter contracts): the operator is
    # started, never reached into; kopf is imported by controller.main only.
    from extschema import controller

    if bool(namespaces) == all_namespaces:
        raise click.UsageError("pass -A (all namespaces) or one or more -n NAMESPACE")
    if readiness is not None and not _is_http_url_with_port(readiness):
        example = "http://0.0.0.0:8081/readyz"
        raise click.BadParameter(f"give an http URL with a port, e.g. {example}", param_hint="--readiness")
    if bool(observe["webhook_cert"]) != bool(observe["webhook_key"]):
        raise click.UsageError("pass --webhook-cert and --webhook-key together")
    if standalone and (peering or priority is not None):
        raise click.UsageError("--standalone runs without peering: drop --peering/--priority, or --standalone")
    if priority is not None and not peering:
        raise click.UsageError("--priority needs --peering NAME (the peering object the replicas share)")
    options: dict[str, Any] = {"default_allow_raw_sql": allow_raw_sql, "peering": peering, "priority": priority}
    options.update(observe)
    if shard is not None or shards is not None:
        options.update(shard=shard, shards=shards)
        _check_shard(shard, shards)
    if drift_interval:
        try:
            options["drift_interval"] = controller.seconds(drift_interval)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--drift-interval") from None
    controller.main(
        controller.Settings.from_env(
            default_database=database,
            namespaces=tuple(namespaces),
            clusterwide=all_namespaces,
            standalone=standalone,
            liveness=liveness,
            readiness=readiness,
            log_format="json" if log_format == "json" else "text",
            verbose=verbose,
            **options,
        )
    )


def _check_shard(shard: int | None, shards: int | None) -> None:
    if shard is None or shards is None:
        raise click.UsageError("pass --shard I and --shards N together (0 <= I < N), e.g. --shard 0 --shards 3")
    if shards < 1:
        raise click.BadParameter(f"{shards} shards: give 1 or more", param_hint="--shards")
    if not 0 <= shard < shards:
        raise click.BadParameter(f"{shard} is not a shard of {shards}: give 0 to {shards - 1}", param_hint="--shard")


def _is_http_url_with_port(url: str) -> bool:
    import urllib.parse

    parsed = urllib.parse.urlsplit(url)
    try:
        return parsed.scheme == "http" and parsed.port is not None
    except ValueError:  # a port that is not a number
        return False


@main.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (non-loopback needs --tokens).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False),
    help="YAML file of bearer tokens {tokens: [{name, sha256, scopes}]}; without it: reads only, loopback only.",
)
@click.option(
    "--read-only-schemas",
    is_flag=True,
    help="Refuse schema changes through the API (405): the operator owns them (kubectl apply).",
)
def serve(database: str | None, host: str, port: int, tokens_file: str | None, read_only_schemas: bool) -> None:
    """Serve the REST API over every active plugin's tables (docs/api.md).

    It runs until stopped and answers in JSON over HTTP (OpenAPI at /openapi.json): it has no -o.
    """
    from extschema import reconcile

    with reported():
        # Started, never reached into (the shells are siblings): FastAPI and uvicorn are imported by api only.
        from extschema import api

        url = reconcile.database_url(database)
        api.main(url, host=host, port=port, tokens_file=tokens_file, read_only_schemas=read_only_schemas)


@main.command("wait")
@click.argument("name")
@click.option(
    "--for",
    "condition",
    type=click.Choice(["Ready"]),
    required=True,
    help="The condition to wait for (Ready: the database matches the current spec).",
)
@click.option("--namespace", "-n", metavar="NS", help="Its namespace (default: the pod's, else the kubeconfig's).")
@click.option(
    "--timeout",
    "timeout_ms",
    default="10m",
    show_default=True,
    callback=parse_duration_option,
    help="Give up after this long.",
)
@output_option
def wait_for(name: str, condition: str, namespace: str | None, timeout_ms: int, output: str) -> None:
    """Wait until the ExtensionSchema NAME is Ready (exit 0), Stalled (1) or the timeout passes (4).

    For a plugin's init container: its pods start only once the tables exist. Exit 3 when the Kubernetes API
    refuses the credentials or none are found. Text output prints one line per change on stdout.
    """
    from extschema import kubewait, wire

    def say(ns: str, text: str) -> None:
        if output == "text":
            click.echo(kubewait.line(ns, name, text))

    def fail(code: str, where: str, message: str, exit_code: int) -> NoReturn:
        if output != "text":
            reason = {EXIT_TIMEOUT: "timeout", EXIT_DATABASE: "unreachable"}.get(exit_code, "stalled")
            emit_json(wire.Failure.because(reason, [Problem(code, "", message, subject=where)]))
        else:
            click.echo(f"extensionschema {escape(where)}: {code}: {escape(message)}", err=True)
        sys.exit(exit_code)

    try:
        waited = kubewait.wait(name, namespace, timeout_ms / 1000, say)
    except kubewait.ApiError as error:
        fail(kubewait.NO_API, name, str(error), EXIT_DATABASE)
    where = f"{waited.namespace}/{name}"
    if waited.end == "stalled":
        fail(kubewait.STALLED, where, f"it is Stalled and needs a person: {waited.text}", EXIT_INVALID)
    if waited.end == "timeout":
        seconds = f"{timeout_ms / 1000:g}s"
        fail(kubewait.TIMED_OUT, where, f"not {condition} after {seconds}; last seen: {waited.text}", EXIT_TIMEOUT)
    if output != "text":
        emit_json(wire.WaitList.of([wire.WaitView(name=name, namespace=waited.namespace, state=waited.text)]))
