"""WorkflowService RPCs on workers themselves: their heartbeats, and listing, counting and
describing them (`temporal worker list/describe/count`)."""

from __future__ import annotations

from temporalio.api.worker.v1 import message_pb2 as worker_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.tokens import page_token, read_page_token
from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, ServiceBase
from aion.matching.workers import list_info


class WorkerRpcs(ServiceBase):
    """The worker registry of matching, which SDK workers heartbeat into."""

    @rpc
    async def RecordWorkerHeartbeat(
        self, request: rr.RecordWorkerHeartbeatRequest, context: Ctx
    ) -> rr.RecordWorkerHeartbeatResponse:
        ns = self.namespaces.get(request.namespace)
        self.matching.workers.record(ns.id, request.worker_heartbeat)
        return rr.RecordWorkerHeartbeatResponse()

    @rpc
    async def ListWorkers(
        self, request: rr.ListWorkersRequest, context: Ctx
    ) -> rr.ListWorkersResponse:
        ns = self.namespaces.get(request.namespace)
        workers = self.matching.workers.select(ns.id, request.query, request.include_system_workers)
        if request.next_page_token:
            after = str(read_page_token(request.next_page_token).get("after", ""))
            workers = [hb for hb in workers if hb.worker_instance_key > after]
        response = rr.ListWorkersResponse()
        if request.page_size > 0 and len(workers) > request.page_size:
            workers = workers[: request.page_size]
            response.next_page_token = page_token({"after": workers[-1].worker_instance_key})
        response.workers_info.extend(worker_pb.WorkerInfo(worker_heartbeat=hb) for hb in workers)
        response.workers.extend(list_info(hb) for hb in workers)
        return response

    @rpc
    async def CountWorkers(
        self, request: rr.CountWorkersRequest, context: Ctx
    ) -> rr.CountWorkersResponse:
        ns = self.namespaces.get(request.namespace)
        workers = self.matching.workers.select(ns.id, request.query, request.include_system_workers)
        return rr.CountWorkersResponse(count=len(workers))

    @rpc
    async def DescribeWorker(
        self, request: rr.DescribeWorkerRequest, context: Ctx
    ) -> rr.DescribeWorkerResponse:
        ns = self.namespaces.get(request.namespace)
        if not request.worker_instance_key:
            raise errors.InvalidArgument("WorkerInstanceKey is not set on request.")
        heartbeat = self.matching.workers.describe(ns.id, request.worker_instance_key)
        return rr.DescribeWorkerResponse(
            worker_info=worker_pb.WorkerInfo(worker_heartbeat=heartbeat)
        )
