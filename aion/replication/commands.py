"""`aion replication dlq list|purge|merge --address HOST:PORT`: a cluster's replication DLQ,
through its `aion.replication.v1.Replication/DLQ` call; `aion replication branches --address
HOST:PORT --namespace NS --workflow-id ID [--run-id ID]`: the branches of a run's history that
lost a conflict between clusters, hidden from its history (`.../Branches`); `aion replication
status`: where its replication stands per shard (`.../Status`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from aion.auth.commands import add_tls_flags, channel
from aion.replication.remote import SECRET_HEADER, SERVICE, read_secret

ACTIONS = ("list", "purge", "merge")
SECRET_FILE_ENV = "AION_REPLICATION_SECRET_FILE"


def add_parsers(commands: Any) -> None:
    replication = commands.add_parser("replication", help="replication between clusters")
    replication_commands = replication.add_subparsers(dest="replication_command", required=True)
    dlq = replication_commands.add_parser(
        "dlq", help="the replication tasks that kept failing on a cluster"
    )
    dlq.add_argument("action", choices=ACTIONS)
    dlq.add_argument("--source-cluster", default="", help="only the tasks of this cluster")
    branches = replication_commands.add_parser(
        "branches", help="a run's hidden history branches (that lost a conflict)"
    )
    branches.add_argument("--namespace", "-n", required=True)
    branches.add_argument("--workflow-id", "-w", required=True)
    branches.add_argument("--run-id", "-r", default="", help="(default: the current run)")
    status = replication_commands.add_parser(
        "status",
        help="per shard: what this cluster has applied of each other's tasks, and what each "
        "other cluster has acknowledged of this one's",
    )
    for command in (dlq, status, branches):
        command.add_argument(
            "--address", default="127.0.0.1:7233", help="the cluster's gRPC address"
        )
        add_connection_flags(command)


def add_connection_flags(command: argparse.ArgumentParser) -> None:
    """The shared secret and TLS flags of a command calling the replication service."""
    command.add_argument(
        "--replication-secret-file",
        default=os.environ.get(SECRET_FILE_ENV),
        help=f"the clusters' shared secret, if they have one (${SECRET_FILE_ENV})",
    )
    add_tls_flags(command)


async def call(
    args: argparse.Namespace, method: str, request: dict[str, Any], timeout: float = 60
) -> dict[str, Any]:
    """`method` of the replication service at `args.address`, with the command's secret and
    TLS flags; its JSON answer."""
    secret = args.replication_secret_file
    metadata = ((SECRET_HEADER, read_secret(secret)),) if secret else ()
    async with channel(args) as connection:
        rpc = connection.unary_unary(f"/{SERVICE}/{method}")
        raw = await rpc(json.dumps(request).encode(), timeout=timeout, metadata=metadata)
    answer: dict[str, Any] = json.loads(raw)
    return answer


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make the call; its answer (gRPC errors raised as grpc.aio.AioRpcError, an unreadable
    secret file as OSError)."""
    return asyncio.run(_call(args))


async def _call(args: argparse.Namespace) -> dict[str, Any]:
    if args.replication_command == "status":
        method, request = "Status", {}
    elif args.replication_command == "branches":
        method = "Branches"
        request = {"namespace": args.namespace, "workflow_id": args.workflow_id}
        request["run_id"] = args.run_id
    else:
        method = "DLQ"
        request = {"action": args.action, "source_cluster": args.source_cluster}
    return await call(args, method, request)
