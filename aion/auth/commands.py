"""`aion apikey ...` and `aion audit list`: through a running server's admin API (with a
system admin's credential), or straight on its database (`--db-filename` / `--dsn`: how the first
system admin key is made)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from typing import Any

import grpc

from aion.auth.config import duration_ns
from aion.auth.methods import ADMIN_SERVICE
from aion.common.timeutil import now_ns
from aion.persistence import Store

API_KEY_ENV = "AION_API_KEY"


def add_parsers(commands: Any) -> None:
    """The `apikey` and `audit` commands, on the CLI's subcommands."""
    apikey = commands.add_parser("apikey", help="manage API keys (system admins only)")
    apikey_commands = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_commands.add_parser("create", help="create a key; it is shown only once")
    create.add_argument("--namespace", "-n", required=True, help="namespace (temporal-system: all)")
    create.add_argument("--role", required=True, help="worker, reader, writer or admin")
    create.add_argument("--expires", metavar="DURATION", help="valid for this long (720h, 30d)")
    create.add_argument("--description", default="", help="what the key is for")
    apikey_commands.add_parser("list", help="list the keys (never their secrets)")
    for name, text in (("disable", "refuse a key from now on"), ("delete", "delete a key")):
        command = apikey_commands.add_parser(name, help=text)
        command.add_argument("key_id", help="the key's id (aion_<id>_...)")
    audit = commands.add_parser("audit", help="read the audit log (system admins only)")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    listing = audit_commands.add_parser("list", help="audit events, oldest first")
    listing.add_argument("--since", metavar="DURATION|TIME", help="1h (ago) or an ISO time")
    listing.add_argument("--namespace", "-n", help="only this namespace's events")
    listing.add_argument("--limit", type=int, default=1000)
    for command in (*apikey_commands.choices.values(), listing):
        _add_connection(command)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default="127.0.0.1:7233", help="server (HOST:PORT)")
    parser.add_argument(
        "--api-key", default=os.environ.get(API_KEY_ENV), help=f"system admin key (${API_KEY_ENV})"
    )
    add_tls_flags(parser)
    direct = parser.add_mutually_exclusive_group()
    direct.add_argument("--db-filename", help="work on this SQLite database instead of a server")
    direct.add_argument("--dsn", help="work on this PostgreSQL database instead of a server")


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """The client's TLS flags, as the `temporal` CLI names them (read by `channel`)."""
    parser.add_argument("--tls-cert-path", help="client certificate (mTLS)")
    parser.add_argument("--tls-key-path", help="client certificate's key (mTLS)")
    parser.add_argument("--tls-ca-path", help="CA of the server's certificate (turns on TLS)")
    parser.add_argument("--tls-server-name", help="name to expect in the server's certificate")


def _since_ns(text: str | None) -> int:
    if not text:
        return 0
    try:
        return now_ns() - duration_ns(text)
    except ValueError:
        return int(dt.datetime.fromisoformat(text).timestamp() * 10**9)


def request_of(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The admin method and request a command makes."""
    if args.command == "audit":
        request = {"since_ns": _since_ns(args.since), "limit": args.limit}
        if args.namespace:
            request["namespace"] = args.namespace
        return "ListAuditEvents", request
    command = args.apikey_command
    if command == "create":
        expires = now_ns() + duration_ns(args.expires) if args.expires else 0
        return "CreateApiKey", {
            "namespace": args.namespace,
            "role": args.role,
            "description": args.description,
            "expires_ns": expires,
        }
    if command == "list":
        return "ListApiKeys", {}
    return ("DisableApiKey" if command == "disable" else "DeleteApiKey"), {"key_id": args.key_id}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make the command's call; the response (gRPC errors raised as grpc.aio.AioRpcError)."""
    method, request = request_of(args)
    if args.db_filename or args.dsn:
        from aion.auth.admin import AdminOps

        store = store_of(args)
        await store.open()
        try:
            response: dict[str, Any] = await getattr(AdminOps(store), method)(request)
            return response
        finally:
            await store.close()
    async with channel(args) as connection:
        call = connection.unary_unary(
            ADMIN_SERVICE + method,
            request_serializer=lambda r: json.dumps(r).encode(),
            response_deserializer=json.loads,
        )
        metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
        result: dict[str, Any] = await call(request, metadata=metadata, timeout=30)
        return result


def store_of(args: argparse.Namespace) -> Store:
    """The store of `--dsn` or `--db-filename` (not opened yet)."""
    if args.dsn:
        from aion.persistence.postgres import PostgresStore

        return PostgresStore(args.dsn, upgrade_schema=False)
    from aion.persistence.sqlite import SQLiteStore

    return SQLiteStore(args.db_filename)


def channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """A channel to `--address`, with TLS when the `add_tls_flags` flags ask for it."""
    if not (args.tls_ca_path or args.tls_cert_path):
        return grpc.aio.insecure_channel(args.address)

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        read(args.tls_ca_path), read(args.tls_key_path), read(args.tls_cert_path)
    )
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.aio.secure_channel(args.address, credentials, options=options)


def _time(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds")


def render(args: argparse.Namespace, response: dict[str, Any]) -> str:
    """What a command prints."""
    if args.command == "audit":
        return "\n".join(json.dumps(event) for event in response["events"])
    command = args.apikey_command
    if command == "create":
        return (
            f"API key {response['key_id']} ({response['namespace']}:{response['role']}, "
            f"expires {_time(response['expires_ns'])}); it is shown only this once:\n"
            f"{response['key']}"
        )
    if command == "list":
        lines = ["KEY ID            NAMESPACE  ROLE    CREATED  EXPIRES  DISABLED  DESCRIPTION"]
        for key in response["keys"]:
            lines.append(
                f"{key['key_id']}  {key['namespace']}  {key['role']}  {_time(key['created_ns'])}"
                f"  {_time(key['expires_ns'])}  {'yes' if key['disabled'] else 'no'}"
                f"  {key['description']}"
            )
        return "\n".join(lines)
    return f"API key {response['key_id']} {command}d"


def add_server_flags(parser: argparse.ArgumentParser, server: bool = True) -> None:
    """The security flags of `aion server start` and `start-dev` (any auth flag turns auth on);
    `server=False`: those of the codec server (no peers, no audit log)."""
    group = parser.add_argument_group("security (docs/security.md)")
    group.add_argument("--auth", action="store_true", help="turn auth on (Aion's API keys)")
    group.add_argument("--jwt-jwks", metavar="FILE|URL", help="accept JWTs signed by these keys")
    group.add_argument("--jwt-issuer", help="the iss a JWT must have")
    group.add_argument("--jwt-audience", help="the aud a JWT must have")
    group.add_argument(
        "--biscuit-root-key",
        metavar="PEM-FILE|HEX",
        help="accept biscuit tokens signed by this (Ed25519) root key",
    )
    group.add_argument(
        "--tls-permission",
        action="append",
        metavar="NAME=NAMESPACE:ROLE",
        help="grant a client certificate (subject CN or SAN) a role (repeatable)",
    )
    group.add_argument("--tls-cert-file", help="server certificate (turns TLS on)")
    group.add_argument("--tls-key-file", help="server certificate's key")
    group.add_argument("--tls-client-ca-file", help="require client certificates from this CA")
    if not server:
        parser.set_defaults(tls_peer_ca_file=None, audit_retention=None)
        return
    group.add_argument(
        "--tls-peer-ca-file",
        help="CA of the other server processes' certificates (default: --tls-client-ca-file)",
    )
    group.add_argument(
        "--audit-retention",
        metavar="DURATION",
        help="delete audit events older than this (2160h, 90d; default: keep them)",
    )


def flag_tables(args: argparse.Namespace) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The `[auth]` and `[tls]` tables the flags given make (None: no such flag)."""
    auth: dict[str, Any] = {}
    if args.auth:
        auth["api_keys"] = True
    if args.jwt_jwks:
        jwt = {"jwks": args.jwt_jwks, "issuer": args.jwt_issuer, "audience": args.jwt_audience}
        auth["jwt"] = {k: v for k, v in jwt.items() if v}
    if args.biscuit_root_key:
        auth["biscuit_root_key"] = args.biscuit_root_key
    for item in args.tls_permission or ():
        name, sep, permission = item.partition("=")
        if not sep:
            raise ValueError(f"--tls-permission wants NAME=NAMESPACE:ROLE, not {item!r}")
        auth.setdefault("tls_permissions", {}).setdefault(name, []).append(permission)
    if args.audit_retention:
        if not auth:
            raise ValueError("--audit-retention needs auth on (--auth, --jwt-jwks, ...)")
        auth["audit_retention"] = args.audit_retention
    tls = {
        key: value
        for key, value in (
            ("cert_file", args.tls_cert_file),
            ("key_file", args.tls_key_file),
            ("client_ca_file", args.tls_client_ca_file),
            ("peer_ca_file", args.tls_peer_ca_file),
        )
        if value
    }
    return auth or None, tls or None
