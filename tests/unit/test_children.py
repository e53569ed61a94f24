"""The child workflow state machine (the parent's side), driven in process."""

from __future__ import annotations

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import failed_cause_pb2, workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.history.state.builder import BUFFERED_EVENT_ID
from aion.history.state.environment import DAY_NS as DAY
from aion.history.state.execution import ChildInfo
from aion.history.tasks.processor import awaits_child, awaits_policy
from tests.unit.harness import CT, IDENTITY, Workflow, command


def start_child(policy: int = 0) -> command_pb.Command:
    return command(
        CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        workflow_id="child-1",
        workflow_type=common_pb.WorkflowType(name="Child"),
        parent_close_policy=policy,
    )


def initiated(wf: Workflow, policy: int = 0) -> ChildInfo:
    done = wf.run_first_task(start_child(policy))
    assert done.event_types == [
        "WORKFLOW_TASK_COMPLETED",
        "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    ]
    assert done.timers == [("start_child", 0, {"id": 5})]
    attrs = done.events[1].start_child_workflow_execution_initiated_event_attributes
    assert attrs.task_queue.name == "tq" and attrs.workflow_task_timeout.seconds == 10
    assert attrs.parent_close_policy == (policy or workflow_pb2.PARENT_CLOSE_POLICY_TERMINATE)
    return wf.ms.s.children[5]


def completed_event() -> history_pb.HistoryEvent:
    return history_pb.HistoryEvent(
        workflow_execution_completed_event_attributes=history_pb.WorkflowExecutionCompletedEventAttributes()
    )


def test_initiated_started_completed() -> None:
    wf = Workflow()
    child = initiated(wf)
    assert child.create_request_id == f"{wf.ms.s.run_id}:5"
    wf.ms.children.started(child, "child-run", None)
    started = wf.commit()
    assert started.event_types == ["CHILD_WORKFLOW_EXECUTION_STARTED"]
    assert child.started_event_id == 6
    wf.ms.children.closed(child, completed_event())
    closed = wf.commit()
    assert closed.event_types == ["CHILD_WORKFLOW_EXECUTION_COMPLETED"]
    attrs = closed.events[0].child_workflow_execution_completed_event_attributes
    assert (attrs.initiated_event_id, attrs.started_event_id) == (5, 6)
    assert attrs.workflow_execution.run_id == "child-run"
    assert not wf.ms.s.children


def test_a_standby_holds_a_child_close_until_the_parent_took_it_in() -> None:
    """A standby's check of a closed child's notification: the parent's replication may lag
    behind the child's (another shard), so a parent not here, or not up to the initiation,
    still waits for it; one that recorded the close, or closed, does not."""
    wf = Workflow()
    assert awaits_child(None, 5)
    assert awaits_child(wf.ms, 5)
    child = initiated(wf)
    assert awaits_child(wf.ms, 5)
    wf.ms.children.started(child, "child-run", None)
    wf.commit()
    wf.ms.children.closed(child, completed_event())
    wf.commit()
    assert not awaits_child(wf.ms, 5)
    assert awaits_child(wf.ms, 9)  # a later child, not replicated yet
    wf.ms.terminate("done", None, IDENTITY)
    wf.commit()
    assert not awaits_child(wf.ms, 9)


def test_start_and_close_during_a_task_are_linked_when_flushed() -> None:
    wf = Workflow()
    child = initiated(wf)
    wf.signal_and_start_task()
    wf.ms.children.started(child, "child-run", None)
    assert child.started_event_id == BUFFERED_EVENT_ID
    wf.ms.children.closed(child, completed_event())
    wf.complete_task()
    wf.ms.workflow_task.schedule()
    flushed = wf.commit()
    assert flushed.event_types == [
        "WORKFLOW_TASK_COMPLETED",
        "CHILD_WORKFLOW_EXECUTION_STARTED",
        "CHILD_WORKFLOW_EXECUTION_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    started_id = flushed.events[1].event_id
    closed = flushed.events[2].child_workflow_execution_completed_event_attributes
    assert closed.started_event_id == started_id


def test_start_failed() -> None:
    wf = Workflow()
    child = initiated(wf)
    cause = failed_cause_pb2.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS
    wf.ms.children.start_failed(child, cause)
    assert wf.commit().event_types == ["START_CHILD_WORKFLOW_EXECUTION_FAILED"]
    assert not wf.ms.s.children


def test_a_continued_child_reports_its_last_run() -> None:
    wf = Workflow()
    child = initiated(wf)
    wf.ms.children.started(child, "run-a", None)
    wf.ms.children.closed(
        child,
        history_pb.HistoryEvent(
            workflow_execution_continued_as_new_event_attributes=history_pb.WorkflowExecutionContinuedAsNewEventAttributes()
        ),
    )
    assert wf.commit().event_types == ["CHILD_WORKFLOW_EXECUTION_STARTED"]
    wf.ms.children.follow_chain(child, "run-b")
    wf.ms.children.closed(child, completed_event())
    closed = wf.commit().events[0].child_workflow_execution_completed_event_attributes
    assert closed.workflow_execution.run_id == "run-b"


def test_closing_the_parent_applies_the_close_policy_to_started_children() -> None:
    wf = Workflow()
    child = initiated(wf)
    wf.ms.children.started(child, "child-run", None)
    wf.commit()
    wf.ms.terminate("enough", None, IDENTITY)
    closed = wf.commit()
    assert closed.event_types == ["WORKFLOW_EXECUTION_TERMINATED"]
    assert closed.timers == [
        ("apply_parent_close_policy", 0, {"id": 5}),
        ("delete_execution", DAY, {}),
    ]


def test_abandoned_children_are_left_alone() -> None:
    wf = Workflow()
    child = initiated(wf, workflow_pb2.PARENT_CLOSE_POLICY_ABANDON)
    wf.ms.children.started(child, "child-run", None)
    wf.commit()
    wf.ms.terminate("enough", None, IDENTITY)
    assert wf.commit().timers == [("delete_execution", DAY, {})]  # nothing for the child


def test_a_standby_holds_a_parent_close_policy_until_the_child_got_it() -> None:
    """A standby's check of a closed parent's close-policy task: held while the child (as
    replicated here) has yet to be terminated, or to get its cancel request, so that the
    policy is applied here should the namespace fail over before the active cluster did."""
    terminate = workflow_pb2.PARENT_CLOSE_POLICY_TERMINATE
    cancel = workflow_pb2.PARENT_CLOSE_POLICY_REQUEST_CANCEL
    assert awaits_policy(None, terminate)  # the child's shard lags behind the parent's
    child = Workflow()
    assert awaits_policy(child.ms, terminate)
    assert awaits_policy(child.ms, cancel)
    child.ms.request_cancel("", IDENTITY)
    child.commit()
    assert awaits_policy(child.ms, terminate)
    assert not awaits_policy(child.ms, cancel)
    child.ms.terminate("by parent close policy", None, IDENTITY)
    child.commit()
    assert not awaits_policy(child.ms, terminate)
