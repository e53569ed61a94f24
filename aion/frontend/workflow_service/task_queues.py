"""WorkflowService RPCs on task queues: DescribeTaskQueue (legacy and enhanced modes),
ListTaskQueuePartitions and UpdateTaskQueueConfig.

Aion keeps one partition per task queue, in the process that serves its pollers; a queue's
configuration (UpdateTaskQueueConfig) is kept by that process, in memory.
"""

from __future__ import annotations

import time

from temporalio.api.enums.v1 import deployment_pb2, task_queue_pb2
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import ts
from aion.common.versions import parse_version
from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, ServiceBase, require_task_queue

TQ = task_queue_pb2
ENHANCED = task_queue_pb2.DESCRIBE_TASK_QUEUE_MODE_ENHANCED
VERSIONED = deployment_pb2.WORKER_VERSIONING_MODE_VERSIONED
KINDS = {TQ.TASK_QUEUE_TYPE_WORKFLOW: "workflow", TQ.TASK_QUEUE_TYPE_ACTIVITY: "activity"}
POLLER_RATE = 100000.0  # what a poller may take a second (Temporal's default, unlimited here)
DEFAULT_TASK_QUEUE_RPS = 100000.0
MAX_REASON_LENGTH = 1000
MAX_FAIRNESS_KEY_LENGTH = 64


def _poller(identity: str, at_ns: int, version: str) -> taskqueue_pb.PollerInfo:
    info = taskqueue_pb.PollerInfo(
        identity=identity, last_access_time=ts(at_ns), rate_per_second=POLLER_RATE
    )
    if version:
        deployment, build_id = parse_version(version)
        info.deployment_options.deployment_name = deployment
        info.deployment_options.build_id = build_id
        info.deployment_options.worker_versioning_mode = VERSIONED
    return info


def _build_id(version: str) -> str:
    """The build id a poller's version is reported under ("" for an unversioned poller)."""
    return parse_version(version)[1] if version else ""


class TaskQueueRpcs(ServiceBase):
    """Task queue descriptions and configuration."""

    @rpc
    async def DescribeTaskQueue(
        self, request: rr.DescribeTaskQueueRequest, context: Ctx
    ) -> rr.DescribeTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        if request.api_mode == ENHANCED:
            return self._describe_enhanced(ns.id, request)
        kind = KINDS.get(request.task_queue_type) or "workflow"
        name = request.task_queue.name
        response = rr.DescribeTaskQueueResponse(
            pollers=[_poller(*p) for p in self.matching.pollers(ns.id, name, kind)]
        )
        stats = self.matching.stats(ns.id, name, kind)
        if request.report_stats:
            response.stats.CopyFrom(stats)
            response.stats_by_priority_key[3].CopyFrom(stats)  # the default priority
        if request.include_task_queue_status:
            response.task_queue_status.backlog_count_hint = stats.approximate_backlog_count
            response.task_queue_status.rate_per_second = DEFAULT_TASK_QUEUE_RPS
        if request.report_config:
            config = self.matching.config(ns.id, name, kind)
            if config is not None:
                response.config.CopyFrom(config)
        return response

    def _describe_enhanced(
        self, namespace_id: str, request: rr.DescribeTaskQueueRequest
    ) -> rr.DescribeTaskQueueResponse:
        """Pollers and stats per build id and task queue type (workflow and activity unless
        named), for the build ids selected (the unversioned queue unless named)."""
        if request.task_queue.kind == TQ.TASK_QUEUE_KIND_STICKY:
            raise errors.InvalidArgument(
                "Enhanced DescribeTaskQueue is not valid for a sticky queue, use"
                " api_mode=UNSPECIFIED or a normal queue."
            )
        name = request.task_queue.name
        types = list(request.task_queue_types) or [
            TQ.TASK_QUEUE_TYPE_WORKFLOW,
            TQ.TASK_QUEUE_TYPE_ACTIVITY,
        ]
        if request.HasField("versions"):
            selection = request.versions
            build_ids = list(dict.fromkeys(selection.build_ids))
            if selection.unversioned and "" not in build_ids:
                build_ids.append("")
            if selection.all_active:
                for queue_kind in KINDS.values():
                    for _, _, version in self.matching.pollers(namespace_id, name, queue_kind):
                        if _build_id(version) not in build_ids:
                            build_ids.append(_build_id(version))
        else:
            build_ids = [""]  # the default build id: no assignment rules, so unversioned
        response = rr.DescribeTaskQueueResponse()
        for build_id in build_ids:
            version_info = response.versions_info[build_id]
            for task_type in types:
                type_info = version_info.types_info[task_type]
                kind = KINDS.get(task_type)
                if request.report_pollers and kind is not None:
                    type_info.pollers.extend(
                        _poller(*p)
                        for p in self.matching.pollers(namespace_id, name, kind)
                        if _build_id(p[2]) == build_id
                    )
                if request.report_stats:
                    if kind is not None and build_id == "":
                        type_info.stats.CopyFrom(self.matching.stats(namespace_id, name, kind))
                    else:
                        type_info.stats.approximate_backlog_age.SetInParent()
            if request.report_task_reachability:
                version_info.task_reachability = (
                    TQ.BUILD_ID_TASK_REACHABILITY_REACHABLE
                    if build_id == ""
                    else TQ.BUILD_ID_TASK_REACHABILITY_UNREACHABLE
                )
        return response

    @rpc
    async def ListTaskQueuePartitions(
        self, request: rr.ListTaskQueuePartitionsRequest, context: Ctx
    ) -> rr.ListTaskQueuePartitionsResponse:
        require_task_queue(request.task_queue.name)
        self.namespaces.get(request.namespace)
        partition = taskqueue_pb.TaskQueuePartitionMetadata(
            key=request.task_queue.name, owner_host_name=self.address
        )
        return rr.ListTaskQueuePartitionsResponse(
            activity_task_queue_partitions=[partition],
            workflow_task_queue_partitions=[partition],
        )

    @rpc
    async def UpdateTaskQueueConfig(
        self, request: rr.UpdateTaskQueueConfigRequest, context: Ctx
    ) -> rr.UpdateTaskQueueConfigResponse:
        ns = self.namespaces.get(request.namespace)
        workflow_queue = request.task_queue_type == TQ.TASK_QUEUE_TYPE_WORKFLOW
        queue_limit = (
            request.update_queue_rate_limit if request.HasField("update_queue_rate_limit") else None
        )
        key_limit = (
            request.update_fairness_key_rate_limit_default
            if request.HasField("update_fairness_key_rate_limit_default")
            else None
        )
        for label, what, update in (
            ("UpdateQueueRateLimit", "", queue_limit),
            ("UpdateFairnessKeyRateLimitDefault", "fairness key ", key_limit),
        ):
            if update is None or not update.HasField("rate_limit"):
                continue
            if workflow_queue:
                raise errors.InvalidArgument(
                    f"Setting {what}rate limit on workflow task queues is not allowed."
                )
            if update.rate_limit.requests_per_second < 0:
                raise errors.InvalidArgument(
                    f"RequestsPerSecond for {label} rate limit must be non-negative."
                )
            if len(update.reason) > MAX_REASON_LENGTH:
                raise errors.InvalidArgument(
                    f"{label}.Reason field too long (max {MAX_REASON_LENGTH} characters)."
                )
        _check_fairness_weights(request)
        require_task_queue(request.task_queue)
        if request.task_queue_type not in KINDS:
            raise errors.InvalidArgument("Invalid task queue type.")
        kind = KINDS[request.task_queue_type]
        config = taskqueue_pb.TaskQueueConfig()
        current = self.matching.config(ns.id, request.task_queue, kind)
        if current is not None:
            config.CopyFrom(current)
        now = ts(time.time_ns())
        for update, target in (
            (queue_limit, config.queue_rate_limit),
            (key_limit, config.fairness_keys_rate_limit_default),
        ):
            if update is None:
                continue
            target.Clear()
            if update.HasField("rate_limit"):
                target.rate_limit.CopyFrom(update.rate_limit)
            target.metadata.reason = update.reason
            target.metadata.update_identity = request.identity
            target.metadata.update_time.CopyFrom(now)
        for key, weight in request.set_fairness_weight_overrides.items():
            config.fairness_weight_overrides[key] = weight
        for key in request.unset_fairness_weight_overrides:
            config.fairness_weight_overrides.pop(key, None)
        self.matching.set_config(ns.id, request.task_queue, kind, config)
        return rr.UpdateTaskQueueConfigResponse(config=config)


def _check_fairness_weights(request: rr.UpdateTaskQueueConfigRequest) -> None:
    for key, weight in request.set_fairness_weight_overrides.items():
        _check_fairness_key(key)
        if not weight > 0:
            raise errors.InvalidArgument(
                f'invalid fairness weight weight for key "{key}": must be greater than zero'
            )
    for key in request.unset_fairness_weight_overrides:
        _check_fairness_key(key)
        if key in request.set_fairness_weight_overrides:
            raise errors.InvalidArgument(
                f'fairness weight override key "{key}" present in both set and unset lists'
            )


def _check_fairness_key(key: str) -> None:
    if not key:
        raise errors.InvalidArgument("fairness weight override key must not be empty")
    if len(key) > MAX_FAIRNESS_KEY_LENGTH:
        raise errors.InvalidArgument("fairness key length exceeds limit")
