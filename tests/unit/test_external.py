"""Signals and cancel requests to other workflows, driven in process."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import failed_cause_pb2

from aion.history.commands import CommandError
from tests.unit.harness import CT, Workflow, command

NOT_FOUND = failed_cause_pb2.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND


def signal_external() -> command_pb.Command:
    return command(
        CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        execution=common_pb.WorkflowExecution(workflow_id="other"),
        signal_name="hello",
        control="c1",
    )


def test_signal_then_delivered() -> None:
    wf = Workflow()
    done = wf.run_first_task(signal_external())
    assert done.event_types == [
        "WORKFLOW_TASK_COMPLETED",
        "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    ]
    assert done.timers == [("signal_external", 0, {"id": 5})]
    request = wf.ms.s.signal_requests[5]
    assert request.request_id == f"{wf.ms.s.run_id}:5"
    assert request.namespace == "default" and request.namespace_id == "ns-id"
    wf.ms.external.signaled(request, "c1")
    assert wf.commit().event_types == ["EXTERNAL_WORKFLOW_EXECUTION_SIGNALED"]
    assert not wf.ms.s.signal_requests


def test_signal_failed() -> None:
    wf = Workflow()
    wf.run_first_task(signal_external())
    wf.ms.external.signal_failed(wf.ms.s.signal_requests[5], NOT_FOUND, "c1")
    failed = wf.commit()
    assert failed.event_types == ["SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED"]
    assert (
        failed.events[0].signal_external_workflow_execution_failed_event_attributes.control == "c1"
    )
    assert not wf.ms.s.signal_requests


def test_cancel_request_then_delivered_or_failed() -> None:
    wf = Workflow()
    cancel = command(
        CT.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION, workflow_id="a", reason="r"
    )
    done = wf.run_first_task(cancel, cancel)
    assert done.event_types[1:] == ["REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"] * 2
    assert done.timers == [("cancel_external", 0, {"id": 5}), ("cancel_external", 0, {"id": 6})]
    wf.ms.external.cancel_requested(wf.ms.s.cancel_requests[5])
    wf.ms.external.cancel_failed(wf.ms.s.cancel_requests[6], NOT_FOUND, "")
    assert wf.commit().event_types == [
        "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
    ]
    assert not wf.ms.s.cancel_requests


def test_a_pending_request_makes_the_next_reset_point_not_resettable() -> None:
    wf = Workflow()
    wf.run_first_task(signal_external())
    assert wf.ms.s.reset_points[0].resettable  # recorded before the request


def test_a_signal_without_a_workflow_id_fails_the_task() -> None:
    with pytest.raises(CommandError, match="WorkflowId is not set"):
        Workflow().run_first_task(
            command(CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION, signal_name="x")
        )
