"""The history builder and the execution snapshot, driven in process."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2

from aion.common.limits import Limits
from aion.history.mutable_state import MutableState
from aion.history.state.execution import VersionHistoryItem, restore, snapshot
from tests.unit.harness import Workflow

Reason = workflow_pb2.SuggestContinueAsNewReason


def test_ids_sizes_and_the_version_history() -> None:
    wf = Workflow()
    first = wf.commit()
    s = wf.ms.s
    assert s.next_event_id == 3
    assert s.last_event_task_id == first.events[-1].task_id
    assert s.history_size_bytes == sum(e.ByteSize() for e in first.events)
    assert s.version_history == [VersionHistoryItem(event_id=2, version=0)]
    s.failover_version = 7
    wf.ms.signal("go", None, "client", None)
    assert wf.commit().events[0].version == 7
    assert s.version_history == [VersionHistoryItem(2, 0), VersionHistoryItem(3, 7)]


def test_continue_as_new_is_suggested_from_the_limits_on() -> None:
    """As the reference: once the started event's id reaches the count limit."""
    wf = Workflow(limits=Limits(suggest_continue_as_new_count=4))
    wf.commit()
    assert wf.ms.s.next_event_id == 3
    assert not wf.ms.history.continue_as_new_reasons()
    wf.ms.signal("go", None, "client", None)
    assert wf.ms.history.continue_as_new_reasons() == [
        Reason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_HISTORY_EVENTS
    ]
    wf.start_task()  # the task that tells the worker
    assert wf.ms.mutation.events == []


def test_mutation_reset_leaves_committed_lists_alone() -> None:
    wf = Workflow()
    events = wf.ms.mutation.events
    assert wf.ms.mutation and wf.ms.dirty
    wf.ms.mutation.reset()
    assert len(events) == 2  # a transaction may still hold them
    assert not wf.ms.mutation and not wf.ms.dirty


def test_copied_events_keep_their_ids() -> None:
    wf = Workflow()
    source = wf.commit().events
    copy = wf.spawn(restore(snapshot(Workflow().ms.s)))
    copy.mutation.reset()
    copy.s.next_event_id = 1
    for event in source:
        copy.history.copy_event(event)
    assert [e.event_id for e in copy.mutation.events] == [1, 2]
    assert copy.s.next_event_id == 3


def test_snapshots_round_trip_and_old_ones_decode_with_defaults() -> None:
    wf = Workflow()
    wf.run_first_task()
    wf.ms.s.memo = common_pb.Memo(fields={"k": common_pb.Payload(data=b"v")})
    data = wf.ms.snapshot()
    assert MutableState.restore(data) == wf.ms.s
    plain = json.loads(data)
    assert "updates" not in plain  # fields at their defaults are left out
    for name in ("used_deployment_versions", "versioning_override", "updates"):
        plain.pop(name, None)  # fields older snapshots do not have
    plain["activities"] = []  # older snapshots wrote every field, at its default too
    old = restore(json.dumps(plain).encode())
    assert old.used_deployment_versions == [] and old.updates == {}
    assert old.memo == wf.ms.s.memo
