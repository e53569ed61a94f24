"""Calls to other clusters: their identity (`aion.replication.v1.Replication/DescribeCluster`),
their global namespaces (`.../Namespaces`), their replication tasks and history, and a client's
call forwarded to a namespace's active cluster (Temporal's WorkflowService call as the client
made it). The replication calls carry the connected clusters' shared secret (when configured)
in the `aion-replication-secret` header; a forwarded call carries the client's credentials."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.cluster_metadata import ClusterMetadata
from aion.common.channels import Channels, caller_metadata
from aion.persistence import NamespaceRecord, RemoteClusterRecord, ReplicationTaskRecord

SERVICE = "aion.replication.v1.Replication"
DESCRIBE_METHOD = f"/{SERVICE}/DescribeCluster"
NAMESPACES_METHOD = f"/{SERVICE}/Namespaces"
TASKS_METHOD = f"/{SERVICE}/Tasks"
HISTORY_METHOD = f"/{SERVICE}/History"
REAPPLY_METHOD = f"/{SERVICE}/Reapply"
BACKLOG_METHOD = f"/{SERVICE}/Backlog"
WATERMARKS_METHOD = f"/{SERVICE}/Watermarks"
WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
CALL_TIMEOUT_S = 10.0
# Temporal's headers: `xdc-redirection: false` keeps a call on the cluster it reached; the
# others mark a forwarded call and the cluster it came from.
REDIRECTION = "xdc-redirection"
REDIRECTED_API = "xdc-redirection-api"
SOURCE_CLUSTER = "xdc-redirection-source-cell"
_REDIRECTION_HEADERS = frozenset((REDIRECTION, REDIRECTED_API, SOURCE_CLUSTER))
SECRET_HEADER = "aion-replication-secret"


def read_secret(path: str) -> str:
    """The shared secret in the file at `path` (surrounding whitespace dropped); OSError when
    it cannot be read or is empty."""
    with open(path, encoding="utf-8") as f:
        secret = f.read().strip()
    if not secret:
        raise OSError(f"the replication secret file {path} is empty")
    return secret


class RemoteClusters:
    """The clusters connected to this one (`clusters`), reached over channels opened on first
    use."""

    def __init__(
        self,
        clusters: ClusterMetadata,
        credentials: Callable[[], grpc.ChannelCredentials] | None = None,
        secret: str = "",
    ) -> None:
        """`credentials`: TLS credentials for a new channel (None: plaintext); `secret`: the
        connected clusters' shared secret ("": none)."""
        self.clusters = clusters
        self._channels = Channels(credentials)
        self._channel = self._channels.get
        self._metadata = ((SECRET_HEADER, secret),) if secret else ()

    async def close(self) -> None:
        await self._channels.close()

    async def describe(self, address: str) -> RemoteClusterRecord:
        """The identity of the cluster at `address` (`ClusterMetadata.identity` there);
        UNAVAILABLE with Temporal's message when it cannot be reached."""
        call = self._channel(address).unary_unary(DESCRIBE_METHOD)
        try:
            raw = await call(b"", timeout=CALL_TIMEOUT_S, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise errors.Unavailable(
                f"Unable connect to remote cluster {address} with error: {e.details()}."
            ) from None
        return RemoteClusterRecord(**json.loads(raw))

    async def namespaces(self, address: str) -> list[NamespaceRecord]:
        """The global namespaces the cluster at `address` replicates to this one."""
        answer = await self._call(
            address, NAMESPACES_METHOD, {"cluster": self.clusters.current_name}
        )
        return [
            NamespaceRecord(
                id=item["id"],
                name=item["name"],
                data=_unpack(item["data"]),
                config_version=item["config_version"],
            )
            for item in answer["namespaces"]
        ]

    async def replication_tasks(
        self, address: str, shard_id: int, after_task_id: int, limit: int
    ) -> list[tuple[ReplicationTaskRecord, list[bytes]]]:
        """The replication tasks of the cluster at `address`'s shard after `after_task_id`
        (which acknowledges those up to it), each with its events."""
        request = {
            "cluster": self.clusters.current_name,
            "shard_id": shard_id,
            "after_task_id": after_task_id,
            "limit": limit,
        }
        answer = await self._call(address, TASKS_METHOD, request)
        return [decode_task(item) for item in answer["tasks"]]

    async def history(
        self, address: str, key: tuple[str, str, str], first_event_id: int, limit: int
    ) -> list[bytes]:
        """Events of an execution at the cluster at `address`, from `first_event_id`."""
        request = {"execution": list(key), "first_event_id": first_event_id, "limit": limit}
        answer = await self._call(address, HISTORY_METHOD, request)
        return decode_events(answer["events"])

    async def reapply(self, address: str, key: tuple[str, str, str], events: list[bytes]) -> None:
        """Have the cluster at `address` (the namespace's active one) re-apply the events of a
        branch that lost a conflict here on its run `key`."""
        request = {"execution": list(key), "events": [_pack(e) for e in events]}
        await self._call(address, REAPPLY_METHOD, request)

    async def backlog(
        self,
        address: str,
        applied: dict[int, int],
        namespace_id: str = "",
        timeout: float = CALL_TIMEOUT_S,
    ) -> dict[int, tuple[int, int]]:
        """Per shard of the cluster at `address`: its highest replication task id and how many
        of its tasks follow `applied` (shard id -> the task id applied here), of the namespace
        `namespace_id` only when given."""
        request = {
            "applied": {str(shard): task_id for shard, task_id in applied.items()},
            "namespace_id": namespace_id,
        }
        answer = await self._call(address, BACKLOG_METHOD, request, timeout)
        return {int(shard): (highest, lag) for shard, (highest, lag) in answer["shards"].items()}

    async def watermarks(
        self, address: str, shard_ids: list[int], timeout: float
    ) -> dict[int, int]:
        """How far the cluster at `address` has applied each of this cluster's shards (the last
        task id applied there, 0: none)."""
        request = {"cluster": self.clusters.current_name, "shard_ids": shard_ids}
        answer = await self._call(address, WATERMARKS_METHOD, request, timeout)
        return {int(shard): task_id for shard, task_id in answer["watermarks"].items()}

    async def _call(
        self, address: str, method: str, request: dict[str, Any], timeout: float = CALL_TIMEOUT_S
    ) -> Any:
        call = self._channel(address).unary_unary(method)
        raw = await call(json.dumps(request).encode(), timeout=timeout, metadata=self._metadata)
        return json.loads(raw)

    async def forward(
        self, address: str, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message:
        """Make the client's WorkflowService call on the cluster at `address`, kept there
        (`xdc-redirection: false`); its answer, or its error passed on to the client as is."""
        call = self._channel(address).unary_unary(
            WORKFLOW_SERVICE + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=getattr(rr, f"{method}Response").FromString,
        )
        metadata = caller_metadata(context, _REDIRECTION_HEADERS)
        metadata += [
            (REDIRECTION, "false"),
            (REDIRECTED_API, "true"),
            (SOURCE_CLUSTER, self.clusters.current_name),
        ]
        try:
            response: Message = await call(
                request, timeout=context.time_remaining(), metadata=metadata
            )
        except grpc.aio.AioRpcError as e:
            await context.abort(
                e.code(), e.details() or "", trailing_metadata=tuple(e.trailing_metadata() or ())
            )
            raise AssertionError("unreachable") from None
        return response


def encode_tasks(tasks: list[tuple[ReplicationTaskRecord, list[bytes]]]) -> bytes:
    """The answer of `Tasks` (read by `RemoteClusters.replication_tasks`)."""
    return json.dumps({"tasks": [encode_task(task, events) for task, events in tasks]}).encode()


def encode_task(task: ReplicationTaskRecord, events: list[bytes]) -> dict[str, Any]:
    """A replication task with its events, as JSON (on the wire, and in the DLQ)."""
    return {
        "task": {**dataclasses.asdict(task), "state": _pack(task.state)},
        "events": [_pack(e) for e in events],
    }


def decode_task(item: dict[str, Any]) -> tuple[ReplicationTaskRecord, list[bytes]]:
    task = ReplicationTaskRecord(**{**item["task"], "state": _unpack(item["task"]["state"])})
    return task, [_unpack(e) for e in item["events"]]


def decode_events(items: list[str]) -> list[bytes]:
    """Events as `encode_events` and `RemoteClusters.reapply` send them."""
    return [_unpack(e) for e in items]


def encode_events(events: list[bytes]) -> bytes:
    """The answer of `History` (read by `RemoteClusters.history`)."""
    return json.dumps({"events": [_pack(e) for e in events]}).encode()


def _pack(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unpack(text: str) -> bytes:
    return base64.b64decode(text)


def encode_namespaces(records: list[NamespaceRecord]) -> bytes:
    """The answer of `Namespaces` (read by `RemoteClusters.namespaces`)."""
    items = [
        {
            "id": r.id,
            "name": r.name,
            "data": _pack(r.data),
            "config_version": r.config_version,
        }
        for r in records
    ]
    return json.dumps({"namespaces": items}).encode()
