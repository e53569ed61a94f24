"""The worker registry: each worker's latest heartbeat (RecordWorkerHeartbeat), listed,
counted and described for `temporal worker list/describe/count`.

Kept in memory by the process the heartbeats reach, as Temporal's matching service keeps
them; an entry expires five minutes after its last heartbeat (Temporal's default TTL).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from temporalio.api.enums.v1 import common_pb2
from temporalio.api.worker.v1 import message_pb2 as worker_pb

from aion import errors

ENTRY_TTL_NS = 5 * 60 * 1_000_000_000
INTERNAL_QUEUE_PREFIX = "temporal-sys-"

# The columns a worker query may compare, and how each is read from a heartbeat.
COLUMNS: dict[str, Callable[[worker_pb.WorkerHeartbeat], str]] = {
    "workerinstancekey": lambda hb: hb.worker_instance_key,
    "workeridentity": lambda hb: hb.worker_identity,
    "hostname": lambda hb: hb.host_info.host_name,
    "taskqueue": lambda hb: hb.task_queue,
    "deploymentname": lambda hb: hb.deployment_version.deployment_name,
    "buildid": lambda hb: hb.deployment_version.build_id,
    "sdkname": lambda hb: hb.sdk_name,
    "sdkversion": lambda hb: hb.sdk_version,
    "workerstatus": lambda hb: common_pb2.WorkerStatus.Name(hb.status).removeprefix(
        "WORKER_STATUS_"
    ),
    "status": lambda hb: common_pb2.WorkerStatus.Name(hb.status).removeprefix("WORKER_STATUS_"),
}
_CONDITION = re.compile(
    r"\s*`?(?P<column>\w+)`?\s*(?P<op>=|!=)\s*(?P<quote>['\"])(?P<value>.*?)(?P=quote)\s*",
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)

Predicate = Callable[[worker_pb.WorkerHeartbeat], bool]


def parse_query(query: str) -> Predicate:
    """A predicate for a worker query: conditions `Column = 'value'` or `Column != 'value'`
    joined by AND (the columns of Temporal's worker queries compared as strings)."""
    if not query.strip():
        return lambda _: True
    checks: list[Predicate] = []
    for part in _AND.split(query.strip()):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise errors.InvalidArgument(f"invalid query: unsupported condition {part.strip()!r}")
        read = COLUMNS.get(match["column"].lower())
        if read is None:
            raise errors.InvalidArgument(f"invalid query: unknown column {match['column']}")
        value = match["value"]
        if read is COLUMNS["workerstatus"] or read is COLUMNS["status"]:
            value = value.upper().removeprefix("WORKER_STATUS_")
        checks.append(_condition(read, value, match["op"] == "="))
    return lambda hb: all(check(hb) for check in checks)


def _condition(
    read: Callable[[worker_pb.WorkerHeartbeat], str], value: str, equal: bool
) -> Predicate:
    return lambda hb: (read(hb) == value) == equal


class WorkerRegistry:
    """Heartbeats by (namespace id, worker instance key)."""

    def __init__(self) -> None:
        self._workers: dict[str, dict[str, tuple[worker_pb.WorkerHeartbeat, int]]] = {}

    def record(self, namespace_id: str, heartbeats: Iterable[worker_pb.WorkerHeartbeat]) -> None:
        workers = self._workers.setdefault(namespace_id, {})
        now = time.time_ns()
        for heartbeat in heartbeats:
            if heartbeat.worker_instance_key:
                workers[heartbeat.worker_instance_key] = (heartbeat, now)
        self._expire(namespace_id, now)

    def _expire(self, namespace_id: str, now: int) -> None:
        workers = self._workers.get(namespace_id, {})
        for key in [k for k, (_, at) in workers.items() if at < now - ENTRY_TTL_NS]:
            del workers[key]

    def select(
        self, namespace_id: str, query: str, include_system: bool
    ) -> list[worker_pb.WorkerHeartbeat]:
        """The live workers matching the query, by worker instance key."""
        predicate = parse_query(query)
        self._expire(namespace_id, time.time_ns())
        return [
            hb
            for key, (hb, _) in sorted(self._workers.get(namespace_id, {}).items())
            if (include_system or not hb.task_queue.startswith(INTERNAL_QUEUE_PREFIX))
            and predicate(hb)
        ]

    def describe(self, namespace_id: str, worker_instance_key: str) -> worker_pb.WorkerHeartbeat:
        self._expire(namespace_id, time.time_ns())
        entry = self._workers.get(namespace_id, {}).get(worker_instance_key)
        if entry is None:
            raise errors.NotFound(f"Worker {worker_instance_key} not found")
        return entry[0]


def list_info(hb: worker_pb.WorkerHeartbeat) -> worker_pb.WorkerListInfo:
    """The short form ListWorkers also returns."""
    info = worker_pb.WorkerListInfo(
        worker_instance_key=hb.worker_instance_key,
        worker_identity=hb.worker_identity,
        task_queue=hb.task_queue,
        deployment_version=hb.deployment_version if hb.HasField("deployment_version") else None,
        sdk_name=hb.sdk_name,
        sdk_version=hb.sdk_version,
        status=hb.status,
        start_time=hb.start_time if hb.HasField("start_time") else None,
        host_name=hb.host_info.host_name,
        worker_grouping_key=hb.host_info.worker_grouping_key,
        process_id=hb.host_info.process_id,
    )
    info.plugins.extend(hb.plugins)
    info.drivers.extend(hb.drivers)
    return info
