"""`aion replication dlq list|purge|merge --address HOST:PORT`: a cluster's replication DLQ,
through its `aion.replication.v1.Replication/DLQ` call; `aion replication status`: where its
replication stands per shard (`.../Status`)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import grpc

from aion.replication.remote import SERVICE

ACTIONS = ("list", "purge", "merge")


def add_parsers(commands: Any) -> None:
    replication = commands.add_parser("replication", help="replication between clusters")
    replication_commands = replication.add_subparsers(dest="replication_command", required=True)
    dlq = replication_commands.add_parser(
        "dlq", help="the replication tasks that kept failing on a cluster"
    )
    dlq.add_argument("action", choices=ACTIONS)
    dlq.add_argument("--address", default="127.0.0.1:7233", help="the cluster's gRPC address")
    dlq.add_argument("--source-cluster", default="", help="only the tasks of this cluster")
    status = replication_commands.add_parser(
        "status",
        help="per shard: what this cluster has applied of each other's tasks, and what each "
        "other cluster has acknowledged of this one's",
    )
    status.add_argument("--address", default="127.0.0.1:7233", help="the cluster's gRPC address")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make the call; its answer (gRPC errors raised as grpc.aio.AioRpcError)."""
    return asyncio.run(_call(args))


async def _call(args: argparse.Namespace) -> dict[str, Any]:
    if args.replication_command == "status":
        method, request = "Status", {}
    else:
        method = "DLQ"
        request = {"action": args.action, "source_cluster": args.source_cluster}
    async with grpc.aio.insecure_channel(args.address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}")
        answer: dict[str, Any] = json.loads(await call(json.dumps(request).encode(), timeout=60))
    return answer
