"""Command line: `aion server start ...`, `aion server start-dev ...`, `aion db migrate ...`,
`aion codec-server ...` (also `python -m aion ...`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from aion.auth import commands as auth_commands
from aion.auth import config as auth_settings
from aion.auth.config import AuthConfig, TlsConfig, auth_from_table, tls_from_table
from aion.auth.tls import ServerCertificates
from aion.cluster_metadata import REDIRECTION_POLICIES
from aion.config import (
    ConfigError,
    Settings,
    cluster_config,
    key_values,
    load,
    parse_dynamic_config,
    parse_search_attributes,
)
from aion.frontend import quotas
from aion.persistence import SchemaTooNewError, SchemaTooOldError, ShardCountMismatchError
from aion.replication import commands as replication_commands
from aion.replication import controller as failover_controller
from aion.replication import failover as failover_commands
from aion.server import (
    SCHEDULE_RETENTION,
    AionServer,
    ServerConfig,
)
from aion.tracing import logs
from aion.tracing.config import TracingError
from aion.tracing.logs import FORMATS as LOG_FORMATS
from aion.ui import UiConfig
from aion.versioning import drainage
from aion.visibility.search_attributes import TooManySearchAttributesError

if TYPE_CHECKING:
    from aion.codec import EncryptionCodec

log = logging.getLogger("aion")

# Options of the reference `temporal server start-dev` that Aion accepts and ignores.
IGNORED_OPTIONS = {
    "ui_disable_news_fetch": "Aion's web UI fetches no news",
    "sqlite_pragma": "Aion sets its own SQLite pragmas",
    "log_config": "Aion has no server config file",
}


def _add_server_arguments(parser: argparse.ArgumentParser, dev: bool) -> None:
    """The flags `start` and `start-dev` share; all default to None (`start-dev` sets its own
    defaults, `start` takes the config file's values for what is not given)."""
    parser.add_argument("--ip", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", "-p", type=int, help="gRPC port (default: 7233)")
    parser.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="port of Temporal's HTTP API"
        + (" (default: a free port)" if dev else " (default: none)"),
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="HTTP port serving GET /metrics and GET /health (default: none)",
    )
    storage = parser.add_mutually_exclusive_group()
    storage.add_argument(
        "--db-filename", "-f", help="SQLite file" + (" (default: in memory)" if dev else "")
    )
    storage.add_argument(
        "--dsn", help="PostgreSQL connection string (postgresql://user@host:5432/db) instead"
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        help="extra namespace to register" if dev else "namespace to register (repeatable)",
    )
    parser.add_argument(
        "--log-level",
        help=f"debug, info, warn(ing), error or never (default: {'warning' if dev else 'info'})",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="log lines as text or as JSON objects with trace and workflow ids (default: text)",
    )
    parser.add_argument(
        "--search-attribute",
        action="append",
        metavar="NAME=TYPE",
        help="custom search attribute to register in each start-up namespace (repeatable); "
        "TYPE is Text, Keyword, Int, Double, Bool, Datetime or KeywordList",
    )
    parser.add_argument(
        "--dynamic-config-value",
        action="append",
        metavar="KEY=VALUE",
        help="reference dynamic config value, VALUE in JSON (repeatable; honoured: "
        "the per-execution limits (limit.*, see docs/reliability.md), the rate limits "
        "(frontend.*RPS*, frontend.*BurstRatio*, admin.matching*DispatchRate, see "
        "docs/security.md; per namespace as a JSON list of constrained values), "
        f"{drainage.REFRESH_INTERVAL}, "
        f"{drainage.GRACE_PERIOD}; and Aion's own {SCHEDULE_RETENTION}, how long a "
        "schedule with nothing left to do is kept, e.g. '\"168h\"')",
    )
    auth_commands.add_server_flags(parser)
    _add_cluster_arguments(parser)
    parser.set_defaults(subparser=parser)


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """This cluster's identity (the `[cluster]` table's keys; docs/global-namespaces.md)."""
    group = parser.add_argument_group("cluster identity and global namespaces")
    group.add_argument("--cluster-name", metavar="NAME", help="(default: active)")
    group.add_argument(
        "--enable-global-namespace",
        action="store_const",
        const=True,
        help="serve global namespaces and connect to other clusters",
    )
    group.add_argument(
        "--failover-version-increment",
        type=int,
        metavar="N",
        help="the same on every connected cluster (default: 10)",
    )
    group.add_argument(
        "--initial-failover-version",
        type=int,
        metavar="N",
        help="this cluster's own, distinct, below the increment (default: 1)",
    )
    group.add_argument(
        "--master-cluster-name",
        metavar="NAME",
        help="the cluster that registers global namespaces (default: this one)",
    )
    group.add_argument(
        "--cluster-address",
        metavar="HOST:PORT",
        help="where other clusters reach this one (default: the broadcast address)",
    )
    group.add_argument(
        "--redirection-policy",
        choices=REDIRECTION_POLICIES,
        help="selected-apis-forwarding: a standby forwards Temporal's selected calls to the "
        "active cluster (default: noop)",
    )
    group.add_argument(
        "--replication-secret-file",
        metavar="FILE",
        help="the secret the connected clusters share: required of calls to the replication "
        "service, sent on this cluster's calls to the others",
    )
    group.add_argument(
        "--remote-tls-ca-file",
        metavar="FILE",
        help="call the other clusters over TLS, checking their certificates against this CA",
    )


def _cluster_table(args: argparse.Namespace) -> dict[str, Any] | None:
    """The `[cluster]` keys the flags give; None if none."""
    table = {
        "name": args.cluster_name,
        "enable_global_namespace": args.enable_global_namespace,
        "failover_version_increment": args.failover_version_increment,
        "initial_failover_version": args.initial_failover_version,
        "master_cluster_name": args.master_cluster_name,
        "address": args.cluster_address,
        "redirection_policy": args.redirection_policy,
        "replication_secret_file": args.replication_secret_file,
        "remote_tls_ca_file": args.remote_tls_ca_file,
    }
    return {key: value for key, value in table.items() if value is not None} or None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aion", description="Aion durable execution server")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="run a server")
    server_commands = server.add_subparsers(dest="server_command", required=True)
    start = server_commands.add_parser(
        "start", help="start a production server (needs --dsn or --db-filename, or a config file)"
    )
    start.add_argument(
        "--config", "-c", metavar="FILE", help="TOML config file; flags override its values"
    )
    _add_server_arguments(start, dev=False)
    start.add_argument("--num-shards", type=int, help="history shards (default: 4)")
    start.add_argument(
        "--broadcast-address",
        metavar="HOST:PORT",
        help="address other server processes use to reach this one (default: ip:port)",
    )
    start.add_argument(
        "--insecure",
        action="store_true",
        help="listen on a non-loopback address with auth off (anyone reaching it can do anything)",
    )
    dev = server_commands.add_parser("start-dev", help="start a development server")
    _add_server_arguments(dev, dev=True)
    dev.set_defaults(
        ip="127.0.0.1",
        port=7233,
        namespace=[],
        log_level="warning",
        search_attribute=[],
        dynamic_config_value=[],
    )
    ui = dev.add_argument_group("web UI")
    ui.add_argument("--headless", action="store_true", help="no web UI")
    ui.add_argument("--ui-port", type=int, metavar="PORT", help="(default: --port + 1000)")
    ui.add_argument("--ui-ip", metavar="IP", help="(default: --ip)")
    ui.add_argument("--ui-public-path", metavar="PATH", help="path prefix, e.g. /temporal")
    ui.add_argument("--ui-codec-endpoint", metavar="URL", help="remote codec server's URL")
    ui.add_argument("--ui-asset-path", metavar="DIR", help="a build of ui/ to serve instead")
    ui.add_argument(
        "--ui-api-key",
        metavar="KEY",
        default=os.environ.get("AION_UI_API_KEY") or None,
        help="credential the UI calls the server with when auth is on: anyone reaching the UI "
        "acts with its rights (default: $AION_UI_API_KEY; see docs/security.md)",
    )
    ignored = dev.add_argument_group("accepted for compatibility with the reference, ignored")
    ignored.add_argument("--ui-disable-news-fetch", action="store_true")
    ignored.add_argument("--sqlite-pragma", action="append", metavar="PRAGMA=VALUE")
    ignored.add_argument("--log-config", action="store_true")
    db = commands.add_parser("db", help="manage a PostgreSQL database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser("migrate", help="bring the schema up to date and exit")
    migrate.add_argument("--dsn", required=True, help="PostgreSQL connection string")
    migrate.set_defaults(subparser=migrate)
    codec = commands.add_parser(
        "codec-server",
        help="serve Temporal's remote codec protocol (AES-GCM payload encryption) for the Web UI "
        "and the CLI",
    )
    codec.add_argument(
        "--ip", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    codec.add_argument(
        "--port", "-p", type=int, default=8081, help="HTTP port, 0 for any free one (default: 8081)"
    )
    codec.add_argument(
        "--key-file",
        metavar="FILE",
        help="JSON key ring (default: $AION_CODEC_KEY_FILE, else the JSON in $AION_CODEC_KEYS); "
        "see docs/codec.md",
    )
    codec.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed to call it with credentials, e.g. the Web UI's "
        "http://localhost:8233 (repeatable; '*' allows any)",
    )
    codec.add_argument(
        "--token",
        default=os.environ.get("AION_CODEC_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' on every request "
        "(default: $AION_CODEC_TOKEN; unset: no check)",
    )
    codec.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    codec.add_argument("--db-filename", help="the server's SQLite file, for its API keys (--auth)")
    codec.add_argument("--dsn", help="the server's PostgreSQL database, for its API keys (--auth)")
    auth_commands.add_server_flags(codec, server=False)
    auth_commands.add_parsers(commands)
    replication_commands.add_parsers(commands)
    failover_controller.add_parsers(commands)
    failover_commands.add_parsers(commands)
    return parser


async def _until_stopped() -> None:
    """Returns on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(config: ServerConfig, label: str) -> None:
    server = AionServer(config)
    await server.start()
    scheme = "http" if config.tls is None else "https"
    if server.http is not None:  # printed first: "listening on" tells that all is up
        print(f"HTTP API on {scheme}://{config.ip}:{server.http.port}", flush=True)
    if server.ui is not None:
        ui = server.ui.config
        print(f"Web UI on {scheme}://{ui.ip}:{server.ui.port}{ui.public_path}", flush=True)
    print(f"{label} listening on {server.address}", flush=True)
    await _until_stopped()
    await server.stop()


async def _serve_codec(
    args: argparse.Namespace, codec: EncryptionCodec, auth: AuthConfig | None, tls: TlsConfig | None
) -> None:
    from aion import codec_server  # aiohttp: loaded by this command only

    store = None
    guard = None
    if auth is not None:
        if args.dsn or args.db_filename:  # API keys are checked only against a database
            store = auth_commands.store_of(args)
            await store.open()
        guard = auth_settings.build(dataclasses.replace(auth, audit=False), store).guard
    ssl_context = None if tls is None else ServerCertificates(tls).ssl_context()
    app = codec_server.create_app(codec, args.cors_origin, args.token, guard)
    runner, (host, port) = await codec_server.start(app, args.ip, args.port, ssl_context)
    scheme = "http" if tls is None else "https"
    print(f"Aion codec server listening on {scheme}://{host}:{port}", flush=True)
    await _until_stopped()
    await runner.cleanup()
    if store is not None:
        await store.close()


def _codec_server(args: argparse.Namespace) -> None:
    from aion.codec import EncryptionCodec, KeyRing, KeyRingError

    logs.configure(logging.getLevelName(args.log_level.upper()), "text")
    try:
        keys = KeyRing.from_file(args.key_file) if args.key_file else KeyRing.from_env()
        auth_table, tls_table = auth_commands.flag_tables(args)
        auth = None if auth_table is None else auth_from_table(auth_table)
        tls = None if tls_table is None else tls_from_table(tls_table)
    except (KeyRingError, ValueError) as e:
        _fail(str(e))
    if auth is not None and args.token:
        _fail("--token and the auth flags (--auth, --jwt-jwks, ...) exclude each other")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve_codec(args, EncryptionCodec(keys), auth, tls))
    except _fatal_errors(args.dsn) as e:
        _fail(str(e))


def _fail(message: str) -> NoReturn:
    """Stop the command with a one-line message on stderr and status 1."""
    print(f"aion: {message}", file=sys.stderr)
    sys.exit(1)


def _fatal_errors(dsn: str | None) -> tuple[type[Exception], ...]:
    """Errors that stop the command with a one-line message."""
    common = (OSError, SchemaTooNewError, SchemaTooOldError, ShardCountMismatchError)
    if not dsn:
        return common
    import asyncpg  # loaded only for PostgreSQL: it adds ~70 ms to every start

    return (*common, asyncpg.PostgresError)


def _migrate(dsn: str) -> None:
    from aion.persistence.postgres import migrate_dsn

    try:
        found, now = asyncio.run(migrate_dsn(dsn))
    except _fatal_errors(dsn) as e:
        _fail(str(e))
    if found == now:
        print(f"database schema is up to date (version {now})")
    else:
        print(f"database schema migrated from version {found} to {now}")


def _start_settings(args: argparse.Namespace) -> Settings:
    """`aion server start`: the config file's settings under the flags given; exits 1 with a
    one-line message when they are invalid."""
    try:
        flags: dict[str, Any] = {
            "ip": args.ip,
            "port": args.port,
            "metrics_port": args.metrics_port,
            "http_port": args.http_port,
            "broadcast_address": args.broadcast_address,
            "dsn": args.dsn,
            "db_filename": args.db_filename,
            "num_shards": args.num_shards,
            "namespaces": args.namespace,
            "log_level": args.log_level,
            "log_format": args.log_format,
            "search_attributes": args.search_attribute
            and key_values(args.search_attribute, "search attributes"),
            "dynamic_config": args.dynamic_config_value
            and parse_dynamic_config(args.dynamic_config_value),
            "cluster": _cluster_table(args),
        }
        flags["auth"], flags["tls"] = auth_commands.flag_tables(args)
        return load(args.config, flags)
    except ConfigError as e:
        _fail(str(e))


def _dev_settings(args: argparse.Namespace) -> Settings:
    """`aion server start-dev`: settings from the flags alone; bad ones are usage errors."""
    try:
        search_attributes = parse_search_attributes(args.search_attribute)
        dynamic_config = parse_dynamic_config(args.dynamic_config_value)
        auth, tls = auth_commands.flag_tables(args)
        auth_config = None if auth is None else auth_from_table(auth)
        tls_config = None if tls is None else tls_from_table(tls)
        cluster = cluster_config(_cluster_table(args) or {})
    except ValueError as e:
        args.subparser.error(str(e))
    server = ServerConfig(
        ip=args.ip,
        port=args.port,
        metrics_port=args.metrics_port,
        http_port=0 if args.http_port is None else args.http_port,
        db_filename=args.db_filename,
        dsn=args.dsn,
        namespaces=["default", *args.namespace],
        search_attributes=search_attributes,
        dynamic_config={**quotas.DEV_SERVER_DEFAULTS, **dynamic_config},
        auth=auth_config,
        tls=tls_config,
        ui=None if args.headless else _ui_config(args),
        cluster=cluster,
    )
    return Settings(server=server, log_level=args.log_level, log_format=args.log_format or "text")


def _is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _admin(args: argparse.Namespace) -> None:
    """`aion apikey ...`, `aion audit list`."""
    fatal: tuple[type[Exception], ...] = (ValueError, *_fatal_errors(args.dsn))
    try:
        response = asyncio.run(auth_commands.run(args))
    except grpc.aio.AioRpcError as e:
        _fail(f"{e.code().name}: {e.details()}")
    except fatal as e:
        _fail(str(e))
    print(auth_commands.render(args, response))


def _replication(args: argparse.Namespace) -> None:
    """`aion replication dlq|status|branches ...`, `aion namespace failover ...`: the answer as
    JSON."""
    commands = replication_commands if args.command == "replication" else failover_commands
    try:
        response = commands.run(args)
    except grpc.aio.AioRpcError as e:
        _fail(f"{e.code().name}: {e.details()}")
    except OSError as e:
        _fail(str(e))
    print(json.dumps(response, indent=2))


def _ui_config(args: argparse.Namespace) -> UiConfig:
    """start-dev's Web UI from its flags, defaulted as the reference's."""
    ui = UiConfig(
        ip=args.ui_ip or args.ip,
        port=args.port + 1000 if args.ui_port is None else args.ui_port,
        public_path="/" + path if (path := (args.ui_public_path or "").strip("/")) else "",
        codec_endpoint=args.ui_codec_endpoint or "",
        api_key=args.ui_api_key or "",
    )
    if args.ui_asset_path:
        ui.assets = Path(args.ui_asset_path)
    return ui


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows): the server spends a good part
    of its CPU in the loop's hand-offs between threads (gRPC's poller, SQLite's writer), which
    uvloop makes cheaper (bench/README.md, issue 15)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "db":
        _migrate(args.dsn)
        return
    if args.command == "codec-server":
        _codec_server(args)
        return
    if args.command in ("apikey", "audit"):
        _admin(args)
        return
    if args.command in ("replication", "namespace"):
        _replication(args)
        return
    if args.command == "failover-controller":
        failover_controller.run(args)
        return
    dev = args.server_command == "start-dev"
    settings = _dev_settings(args) if dev else _start_settings(args)
    level = settings.log_level.upper()
    logs.configure(
        logging.CRITICAL + 1 if level == "NEVER" else logging.getLevelName(level),
        settings.log_format,
    )
    if dev:
        for option, reason in IGNORED_OPTIONS.items():
            if getattr(args, option) not in (None, False):
                log.debug("--%s is ignored: %s", option.replace("_", "-"), reason)
    config = settings.server
    if not dev and config.auth is None and not args.insecure and not _is_loopback(config.ip):
        _fail(
            f"refusing to listen on {config.ip} with auth off: anyone reaching it could do "
            "anything; turn auth on (docs/security.md) or pass --insecure"
        )
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(config, "Aion dev server" if dev else "Aion server"))
    except _fatal_errors(config.dsn) as e:
        _fail(str(e))
    except TracingError as e:
        _fail(f"tracing: {e}")
    except TooManySearchAttributesError as e:
        _fail(f"invalid search attributes: {e}")
    except sqlite3.Error as e:
        _fail(f"SQLite database {config.db_filename or '(in memory)'}: {e}")
