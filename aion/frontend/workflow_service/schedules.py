"""WorkflowService RPCs on schedules."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, ServiceBase
from aion.schedules import api as schedules


class ScheduleRpcs(ServiceBase):
    """Create, describe, update, patch, delete, list and count schedules."""

    @rpc
    async def CreateSchedule(
        self, request: rr.CreateScheduleRequest, context: Ctx
    ) -> rr.CreateScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        self._check_search_attributes(ns, request)
        self._check_search_attributes(ns, request.schedule.action.start_workflow)
        return await schedules.create_schedule(self.engine, ns, request)

    @rpc
    async def DescribeSchedule(
        self, request: rr.DescribeScheduleRequest, context: Ctx
    ) -> rr.DescribeScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.describe_schedule(self.engine, ns, request)

    @rpc
    async def UpdateSchedule(
        self, request: rr.UpdateScheduleRequest, context: Ctx
    ) -> rr.UpdateScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        self._check_search_attributes(ns, request)
        self._check_search_attributes(ns, request.schedule.action.start_workflow)
        return await schedules.update_schedule(self.engine, ns, request)

    @rpc
    async def PatchSchedule(
        self, request: rr.PatchScheduleRequest, context: Ctx
    ) -> rr.PatchScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.patch_schedule(self.engine, ns, request)

    @rpc
    async def DeleteSchedule(
        self, request: rr.DeleteScheduleRequest, context: Ctx
    ) -> rr.DeleteScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.delete_schedule(self.engine, ns, request)

    @rpc
    async def ListSchedules(
        self, request: rr.ListSchedulesRequest, context: Ctx
    ) -> rr.ListSchedulesResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.list_schedules(self.engine, ns, request)

    @rpc
    async def CountSchedules(
        self, request: rr.CountSchedulesRequest, context: Ctx
    ) -> rr.CountSchedulesResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.count_schedules(self.engine, ns, request)

    @rpc
    async def ListScheduleMatchingTimes(
        self, request: rr.ListScheduleMatchingTimesRequest, context: Ctx
    ) -> rr.ListScheduleMatchingTimesResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.list_schedule_matching_times(self.engine, ns, request)
