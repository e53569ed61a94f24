"""WorkflowService RPCs on batch operations."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.batch import api as batches
from aion.batch.runtime import BatchRuntime
from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, ServiceBase

REQUIRED_NAMESPACE = "Namespace is not set on request."


class BatchRpcs(ServiceBase):
    """Start, stop, describe and list batch operations."""

    @property
    def _batches(self) -> BatchRuntime:
        if self.batches is None:
            raise errors.Unimplemented("batch operations are not served")
        return self.batches

    @rpc
    async def StartBatchOperation(
        self, request: rr.StartBatchOperationRequest, context: Ctx
    ) -> rr.StartBatchOperationResponse:
        batches.validate_start(request)
        return await self._with_namespace(self._batches, batches.start_batch_operation, request)

    @rpc
    async def StopBatchOperation(
        self, request: rr.StopBatchOperationRequest, context: Ctx
    ) -> rr.StopBatchOperationResponse:
        _require_job(request.job_id, request.namespace)
        if not request.reason:
            raise errors.InvalidArgument("Reason is not set on request.")
        return await self._with_namespace(self._batches, batches.stop_batch_operation, request)

    @rpc
    async def DescribeBatchOperation(
        self, request: rr.DescribeBatchOperationRequest, context: Ctx
    ) -> rr.DescribeBatchOperationResponse:
        _require_job(request.job_id, request.namespace)
        return await self._with_namespace(self._batches, batches.describe_batch_operation, request)

    @rpc
    async def ListBatchOperations(
        self, request: rr.ListBatchOperationsRequest, context: Ctx
    ) -> rr.ListBatchOperationsResponse:
        if not request.namespace:
            raise errors.InvalidArgument(REQUIRED_NAMESPACE)
        return await self._with_namespace(self._batches, batches.list_batch_operations, request)


def _require_job(job_id: str, namespace: str) -> None:
    if not job_id:
        raise errors.InvalidArgument("JobId is not set on request.")
    if not namespace:
        raise errors.InvalidArgument(REQUIRED_NAMESPACE)
