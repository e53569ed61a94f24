"""The Workflow Update state machine, driven in process (futures need a running loop)."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.protocol.v1 import message_pb2 as protocol_pb
from temporalio.api.update.v1 import message_pb2 as update_pb

from aion import errors
from aion.history.commands import CommandContext, handle_commands
from aion.history.protocol import Messages
from aion.history.state.updates import Update, UpdateAborted
from tests.unit.harness import CT, IDENTITY, Workflow, command


def request(update_id: str) -> update_pb.Request:
    return update_pb.Request(
        meta=update_pb.Meta(update_id=update_id),
        input=update_pb.Input(name="set", args=common_pb.Payloads()),
    )


def message(update_id: str, body: Message) -> protocol_pb.Message:
    msg = protocol_pb.Message(
        id=f"{update_id}/{type(body).__name__}", protocol_instance_id=update_id
    )
    msg.body.Pack(body)
    return msg


def admitted(wf: Workflow, update_id: str = "u1") -> Update:
    """An update delivered on a started speculative workflow task."""
    wf.run_first_task()
    update = wf.ms.updates.admit(request(update_id))
    wt = wf.ms.s.workflow_task
    assert wt is not None and wt.speculative
    assert wf.commit().event_types == []
    wf.start_task()
    messages = wf.ms.updates.deliver(wt)
    assert [m.protocol_instance_id for m in messages] == [update_id]
    assert messages[0].event_id == wt.started_event_id - 1
    return update


def complete_with(wf: Workflow, *bodies: Message) -> None:
    """Complete the started task with protocol messages about update u1, each named by a
    command, as RespondWorkflowTaskCompleted does."""
    msgs = [message("u1", body) for body in bodies]
    wt = wf.ms.s.workflow_task
    assert wt is not None
    handler = Messages(wf.ms, msgs)
    completed = wf.ms.workflow_task.complete(IDENTITY)
    ctx = CommandContext(wf.ms, completed.event_id, IDENTITY, False, apply_message=handler.apply)
    handle_commands(
        ctx,
        [command(CT.COMMAND_TYPE_PROTOCOL_MESSAGE, message_id=m.id) for m in msgs],
    )
    handler.reject_unprocessed(wt)


async def test_accept_then_complete() -> None:
    wf = Workflow()
    update = admitted(wf)
    acceptance = update_pb.Acceptance(accepted_request_sequencing_event_id=5)
    response = update_pb.Response(
        meta=update_pb.Meta(update_id="u1"), outcome=update_pb.Outcome(success=common_pb.Payloads())
    )
    complete_with(wf, acceptance)
    assert not update.accepted.done()  # resolved only once the transition commits
    accepted = wf.commit()
    assert accepted.event_types == [
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    ]
    assert update.accepted.done() and update.accepted.result() is None
    assert wf.ms.s.updates["u1"].accepted_event_id == 8
    wf.signal_and_start_task()
    complete_with(wf, response)
    done = wf.commit()
    assert done.event_types[-1] == "WORKFLOW_EXECUTION_UPDATE_COMPLETED"
    assert update.outcome.result().HasField("success")
    assert wf.ms.updates.find("u1") is wf.ms.s.updates["u1"]


async def test_a_rejected_update_leaves_no_trace() -> None:
    wf = Workflow()
    update = admitted(wf)
    wf.ms.updates.reject(update, failure_pb.Failure(message="no"))
    wf.ms.workflow_task.discard_speculative()
    assert wf.commit().event_types == []
    assert update.outcome.result().failure.message == "no"
    assert wf.ms.updates.find("u1") is None and not wf.ms.s.updates


async def test_an_update_the_worker_ignored_is_rejected() -> None:
    wf = Workflow()
    update = admitted(wf)
    complete_with(wf)
    wf.commit()
    assert update.outcome.result().failure.application_failure_info.type == "UnprocessedUpdate"


async def test_closing_the_run_aborts_updates() -> None:
    wf = Workflow()
    update = admitted(wf)
    wf.ms.terminate("enough", None, IDENTITY)
    closed = wf.commit()
    assert closed.event_types == [
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_EXECUTION_TERMINATED",
    ]
    with pytest.raises(errors.NotFound):
        update.outcome.result()


async def test_clearing_the_registry_asks_callers_to_retry() -> None:
    wf = Workflow()
    update = admitted(wf)
    wf.ms.updates.clear(UpdateAborted())
    with pytest.raises(UpdateAborted):
        update.accepted.result()


async def test_too_many_in_flight_updates() -> None:
    wf = Workflow()
    wf.run_first_task()
    for n in range(wf.ms.history.limits.in_flight_updates):
        wf.ms.updates.admit(request(f"u{n}"))
    with pytest.raises(errors.ResourceExhausted):
        wf.ms.updates.admit(request("one-too-many"))
