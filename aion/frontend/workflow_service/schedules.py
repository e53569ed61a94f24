"""WorkflowService RPCs on schedules."""

from __future__ import annotations

from typing import TypeVar

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, Operation, ResponseT, ServiceBase
from aion.schedules import api as schedules
from aion.schedules.runtime import ScheduleRuntime

ScheduleWriteT = TypeVar("ScheduleWriteT", rr.CreateScheduleRequest, rr.UpdateScheduleRequest)


class ScheduleRpcs(ServiceBase):
    """Create, describe, update, patch, delete, list and count schedules."""

    async def _write_schedule(
        self,
        operation: Operation[ScheduleRuntime, ScheduleWriteT, ResponseT],
        request: ScheduleWriteT,
    ) -> ResponseT:
        """Create or update a schedule once its search attributes and those of the workflows it
        starts pass the namespace's checks."""
        ns = self.namespaces.get(request.namespace)
        self._check_search_attributes(ns, request)
        self._check_search_attributes(ns, request.schedule.action.start_workflow)
        return await operation(self.schedules, ns, request)

    @rpc
    async def CreateSchedule(
        self, request: rr.CreateScheduleRequest, context: Ctx
    ) -> rr.CreateScheduleResponse:
        return await self._write_schedule(schedules.create_schedule, request)

    @rpc
    async def DescribeSchedule(
        self, request: rr.DescribeScheduleRequest, context: Ctx
    ) -> rr.DescribeScheduleResponse:
        return await self._with_namespace(self.schedules, schedules.describe_schedule, request)

    @rpc
    async def UpdateSchedule(
        self, request: rr.UpdateScheduleRequest, context: Ctx
    ) -> rr.UpdateScheduleResponse:
        return await self._write_schedule(schedules.update_schedule, request)

    @rpc
    async def PatchSchedule(
        self, request: rr.PatchScheduleRequest, context: Ctx
    ) -> rr.PatchScheduleResponse:
        return await self._with_namespace(self.schedules, schedules.patch_schedule, request)

    @rpc
    async def DeleteSchedule(
        self, request: rr.DeleteScheduleRequest, context: Ctx
    ) -> rr.DeleteScheduleResponse:
        return await self._with_namespace(self.schedules, schedules.delete_schedule, request)

    @rpc
    async def ListSchedules(
        self, request: rr.ListSchedulesRequest, context: Ctx
    ) -> rr.ListSchedulesResponse:
        return await self._with_namespace(self.schedules, schedules.list_schedules, request)

    @rpc
    async def CountSchedules(
        self, request: rr.CountSchedulesRequest, context: Ctx
    ) -> rr.CountSchedulesResponse:
        return await self._with_namespace(self.schedules, schedules.count_schedules, request)

    @rpc
    async def ListScheduleMatchingTimes(
        self, request: rr.ListScheduleMatchingTimesRequest, context: Ctx
    ) -> rr.ListScheduleMatchingTimesResponse:
        return await self._with_namespace(
            self.schedules, schedules.list_schedule_matching_times, request
        )
