"""Command line: `aion server start-dev ...` (also `python -m aion ...`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aion.server import AionServer, ServerConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aion", description="Aion durable execution server")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="run a server")
    server_commands = server.add_subparsers(dest="server_command", required=True)
    dev = server_commands.add_parser("start-dev", help="start a development server")
    dev.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    dev.add_argument("--port", "-p", type=int, default=7233, help="gRPC port")
    dev.add_argument("--db-filename", "-f", help="SQLite file (default: in memory)")
    dev.add_argument(
        "--namespace", "-n", action="append", default=[], help="extra namespace to register"
    )
    dev.add_argument("--log-level", default="warning", help="debug, info, warning, error")
    return parser


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


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = ServerConfig(
        ip=args.ip,
        port=args.port,
        db_filename=args.db_filename,
        namespaces=["default", *args.namespace],
    )
    try:
        asyncio.run(_serve(config))
    except OSError as e:
        print(f"aion: {e}", file=sys.stderr)
        sys.exit(1)
