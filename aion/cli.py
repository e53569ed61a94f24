"""Command line: `aion server start-dev ...`, `aion db migrate ...` (also `python -m aion ...`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from aion.persistence import SchemaTooNewError
from aion.server import AionServer, ServerConfig
from aion.visibility.query import TYPE_NAMES
from aion.visibility.search_attributes import (
    FIELDS_PER_TYPE,
    TooManySearchAttributesError,
    is_reserved,
    parse_type,
)

log = logging.getLogger("aion")

# Options of the reference `temporal server start-dev` that Aion accepts and ignores.
IGNORED_OPTIONS = {
    "headless": "Aion has no web UI",
    "ui_port": "Aion has no web UI",
    "ui_ip": "Aion has no web UI",
    "ui_asset_path": "Aion has no web UI",
    "ui_codec_endpoint": "Aion has no web UI",
    "ui_public_path": "Aion has no web UI",
    "ui_disable_news_fetch": "Aion has no web UI",
    "http_port": "Aion has no HTTP API yet",
    "metrics_port": "Aion has no metrics endpoint yet",
    "sqlite_pragma": "Aion sets its own SQLite pragmas",
    "log_config": "Aion has no server config file",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aion", description="Aion durable execution server")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="run a server")
    server_commands = server.add_subparsers(dest="server_command", required=True)
    dev = server_commands.add_parser("start-dev", help="start a development server")
    dev.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    dev.add_argument("--port", "-p", type=int, default=7233, help="gRPC port")
    storage = dev.add_mutually_exclusive_group()
    storage.add_argument("--db-filename", "-f", help="SQLite file (default: in memory)")
    storage.add_argument(
        "--dsn", help="PostgreSQL connection string (postgresql://user@host:5432/db) instead"
    )
    dev.add_argument(
        "--namespace", "-n", action="append", default=[], help="extra namespace to register"
    )
    dev.add_argument(
        "--log-level", default="warning", help="debug, info, warn(ing), error or never"
    )
    dev.add_argument(
        "--search-attribute",
        action="append",
        default=[],
        metavar="NAME=TYPE",
        help="custom search attribute to register in each start-up namespace (repeatable); "
        "TYPE is Text, Keyword, Int, Double, Bool, Datetime or KeywordList",
    )
    dev.add_argument(
        "--dynamic-config-value",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reference dynamic config value, VALUE in JSON (repeatable; accepted, not honoured)",
    )
    ignored = dev.add_argument_group("accepted for compatibility with the reference, ignored")
    ignored.add_argument("--headless", action="store_true", help="(no web UI)")
    for flag in ("--ui-port", "--http-port", "--metrics-port"):
        ignored.add_argument(flag, type=int, metavar="PORT")
    for flag in ("--ui-ip", "--ui-asset-path", "--ui-codec-endpoint", "--ui-public-path"):
        ignored.add_argument(flag, metavar="VALUE")
    ignored.add_argument("--ui-disable-news-fetch", action="store_true")
    ignored.add_argument("--sqlite-pragma", action="append", metavar="PRAGMA=VALUE")
    ignored.add_argument("--log-config", action="store_true")
    dev.set_defaults(subparser=dev)
    db = commands.add_parser("db", help="manage a PostgreSQL database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser("migrate", help="bring the schema up to date and exit")
    migrate.add_argument("--dsn", required=True, help="PostgreSQL connection string")
    migrate.set_defaults(subparser=migrate)
    return parser


def _key_values(items: list[str], what: str) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict (later keys win); ValueError names the bad one."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"invalid {what}: missing expected '=' in {json.dumps(item)}")
        pairs[key] = value
    return pairs


def parse_dynamic_config(items: list[str]) -> dict[str, Any]:
    """`--dynamic-config-value KEY=VALUE` flags: VALUE must be JSON, as the reference wants."""
    values: dict[str, Any] = {}
    for key, text in _key_values(items, "dynamic config values").items():
        try:
            values[key] = json.loads(text)
        except ValueError as e:
            raise ValueError(
                f"invalid dynamic config values: invalid JSON value for key {json.dumps(key)}: {e}"
            ) from None
    return values


def parse_search_attributes(items: list[str]) -> dict[str, int]:
    """`--search-attribute NAME=TYPE` flags; TYPE case-insensitively, as the reference."""
    attributes: dict[str, int] = {}
    for name, type_name in _key_values(items, "search attributes").items():
        sa_type = parse_type(type_name)
        if sa_type is None:
            raise ValueError(f"invalid search attribute value type {json.dumps(type_name)}")
        if is_reserved(name):
            raise ValueError(f"invalid search attributes: {name} is reserved by the system")
        attributes[name] = sa_type
    for sa_type, limit in FIELDS_PER_TYPE.items():
        if sum(1 for t in attributes.values() if t == sa_type) > limit:
            raise ValueError(
                f"invalid search attributes: cannot have more than {limit} search attributes "
                f"of type {TYPE_NAMES[sa_type]}"
            )
    return attributes


async def _serve(config: ServerConfig) -> None:
    server = AionServer(config)
    await server.start()
    print(f"Aion dev server listening on {server.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def _fatal_errors(dsn: str | None) -> tuple[type[Exception], ...]:
    """Errors that stop the command with a one-line message."""
    if not dsn:
        return (OSError, SchemaTooNewError)
    import asyncpg  # loaded only for PostgreSQL: it adds ~70 ms to every start

    return (OSError, SchemaTooNewError, asyncpg.PostgresError)


def _migrate(dsn: str) -> None:
    from aion.persistence.postgres import migrate_dsn

    try:
        found, now = asyncio.run(migrate_dsn(dsn))
    except _fatal_errors(dsn) as e:
        print(f"aion: {e}", file=sys.stderr)
        sys.exit(1)
    if found == now:
        print(f"database schema is up to date (version {now})")
    else:
        print(f"database schema migrated from version {found} to {now}")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "db":
        _migrate(args.dsn)
        return
    try:
        search_attributes = parse_search_attributes(args.search_attribute)
        dynamic_config = parse_dynamic_config(args.dynamic_config_value)
    except ValueError as e:
        args.subparser.error(str(e))
    level = args.log_level.upper()
    logging.basicConfig(
        level=logging.CRITICAL + 1 if level == "NEVER" else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for option, reason in IGNORED_OPTIONS.items():
        if getattr(args, option) not in (None, False):
            log.debug("--%s is ignored: %s", option.replace("_", "-"), reason)
    config = ServerConfig(
        ip=args.ip,
        port=args.port,
        db_filename=args.db_filename,
        dsn=args.dsn,
        namespaces=["default", *args.namespace],
        search_attributes=search_attributes,
        dynamic_config=dynamic_config,
    )
    try:
        asyncio.run(_serve(config))
    except _fatal_errors(config.dsn) as e:
        print(f"aion: {e}", file=sys.stderr)
        sys.exit(1)
    except TooManySearchAttributesError as e:
        print(f"aion: invalid search attributes: {e}", file=sys.stderr)
        sys.exit(1)
