"""Unit tests of the scheduler state machine (`aion.schedules.scheduler`), on a fixed clock."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import ScheduleOverlapPolicy as P
from temporalio.api.enums.v1 import WorkflowExecutionStatus as S
from temporalio.api.enums.v1 import WorkflowIdReusePolicy
from temporalio.api.failure.v1 import Failure
from temporalio.api.schedule.v1 import (
    BackfillRequest,
    Schedule,
    SchedulePatch,
    TriggerImmediatelyRequest,
)

from aion.schedules import Decision, ScheduleConflict, Scheduler

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def at(minutes: float) -> dt.datetime:
    return T0 + minutes * MINUTE


def schedule(policies: dict[str, Any] | None = None, **state: Any) -> Schedule:
    return json_format.ParseDict(
        {
            "spec": {"interval": [{"interval": "60s"}]},
            "action": {
                "startWorkflow": {
                    "workflowId": "wf",
                    "workflowType": {"name": "Job"},
                    "taskQueue": {"name": "q"},
                    "memo": {"fields": {"m": {"data": "MQ=="}}},
                    "searchAttributes": {"indexedFields": {"Custom": {"data": "Mg=="}}},
                }
            },
            "policies": policies or {},
            "state": state,
        },
        Schedule(),
    )


def new(policies: dict[str, Any] | None = None, **state: Any) -> Scheduler:
    return Scheduler.create("ns", "ns-id", "sched", schedule(policies, **state), T0)


def run(s: Scheduler, now: dt.datetime) -> Decision:
    """A wakeup whose starts all succeed."""
    decision = s.process_time(now)
    for start in decision.starts:
        s.started(start.request.workflow_id, "run-" + start.request.workflow_id, now)
    return decision


def ids(decision: Decision) -> list[str]:
    return [start.request.workflow_id for start in decision.starts]


def running(s: Scheduler) -> list[str]:
    return [e.workflow_id for e in s.info.running_workflows]


def test_start_request_id_search_attributes_memo_and_recent_actions() -> None:
    s = new()
    first = run(s, T0)
    assert first.starts == [] and first.next_wakeup == at(1)
    d = run(s, at(1))
    (start,) = d.starts
    req = start.request
    assert req.workflow_id == "wf-2024-01-01T00:01:00Z"
    assert req.namespace == "ns" and req.workflow_type.name == "Job" and req.task_queue.name == "q"
    assert req.identity == "temporal-scheduler-ns-sched"
    assert (
        req.workflow_id_reuse_policy
        == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
    )
    assert req.memo.fields["m"].data == b"1"
    fields = req.search_attributes.indexed_fields
    assert fields["Custom"].data == b"2"
    assert fields["TemporalScheduledById"].data == b'"sched"'
    assert fields["TemporalScheduledStartTime"].data == b'"2024-01-01T00:01:00Z"'
    assert fields["TemporalScheduledById"].metadata["encoding"] == b"json/plain"
    assert not req.HasField("retry_policy") and not req.HasField("last_completion_result")
    assert d.next_wakeup == at(2)
    _, info, token = s.describe()
    assert token == 1 and info.action_count == 1
    assert [e.workflow_id for e in info.running_workflows] == [req.workflow_id]
    assert info.running_workflows[0].run_id == "run-" + req.workflow_id
    (recent,) = info.recent_actions
    assert recent.schedule_time.ToDatetime(dt.UTC) == at(1)
    assert recent.start_workflow_result.run_id == "run-" + req.workflow_id
    assert recent.start_workflow_status == S.WORKFLOW_EXECUTION_STATUS_RUNNING
    assert [t.ToDatetime(dt.UTC) for t in info.future_action_times] == [at(i) for i in range(2, 12)]
    assert info.create_time.ToDatetime(dt.UTC) == T0
    s.on_workflow_closed(req.workflow_id, S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    assert s.describe()[1].recent_actions[0].start_workflow_status == (
        S.WORKFLOW_EXECUTION_STATUS_COMPLETED
    )
    assert running(s) == []


def test_describe_fills_in_default_policies() -> None:
    described, _, _ = new().describe()
    assert described.policies.overlap_policy == P.SCHEDULE_OVERLAP_POLICY_SKIP
    assert described.policies.catchup_window.ToTimedelta() == dt.timedelta(days=365)
    small = new({"catchupWindow": "1s"}).describe()[0]
    assert small.policies.catchup_window.ToTimedelta() == dt.timedelta(seconds=10)


def test_recent_actions_keep_the_last_ten() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"})
    d = run(s, at(12))
    assert len(d.starts) == 12
    info = s.describe()[1]
    assert info.action_count == 12 and len(info.recent_actions) == 10
    assert info.recent_actions[0].start_workflow_result.workflow_id == "wf-2024-01-01T00:03:00Z"


def test_skip_while_running() -> None:
    s = new()
    run(s, at(1))
    d = run(s, at(2))
    assert d.starts == [] and s.info.overlap_skipped == 1
    s.on_workflow_closed("wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    assert run(s, at(2.5)).starts == []  # the skipped one is gone
    assert ids(run(s, at(3))) == ["wf-2024-01-01T00:03:00Z"]


def test_buffer_one() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_BUFFER_ONE"})
    run(s, at(1))
    assert run(s, at(2)).starts == [] and run(s, at(3)).starts == []
    assert s.describe()[1].buffer_size == 1 and s.info.overlap_skipped == 1
    s.on_workflow_closed("wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    assert ids(run(s, at(3.5))) == ["wf-2024-01-01T00:02:00Z"]


def test_buffer_all() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_BUFFER_ALL"})
    assert ids(run(s, at(3))) == ["wf-2024-01-01T00:01:00Z"]
    assert len(s.buffered_starts) == 2 and s.info.overlap_skipped == 0
    s.on_workflow_closed("wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    assert ids(run(s, at(3))) == ["wf-2024-01-01T00:02:00Z"]
    s.on_workflow_closed("wf-2024-01-01T00:02:00Z", S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    assert ids(run(s, at(3))) == ["wf-2024-01-01T00:03:00Z"]


def test_cancel_other_and_terminate_other() -> None:
    for policy, status in [
        ("SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER", S.WORKFLOW_EXECUTION_STATUS_CANCELED),
        ("SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER", S.WORKFLOW_EXECUTION_STATUS_TERMINATED),
    ]:
        s = new({"overlapPolicy": policy, "pauseOnFailure": True})
        run(s, at(1))
        d = run(s, at(2))
        asked = d.cancel if "CANCEL" in policy else d.terminate
        other = d.terminate if "CANCEL" in policy else d.cancel
        assert d.starts == [] and other == []
        assert [e.workflow_id for e in asked] == ["wf-2024-01-01T00:01:00Z"]
        assert asked[0].run_id == "run-wf-2024-01-01T00:01:00Z"
        s.on_workflow_closed("wf-2024-01-01T00:01:00Z", status)
        assert not s.schedule.state.paused  # canceled/terminated are not failures
        assert ids(run(s, at(2))) == ["wf-2024-01-01T00:02:00Z"]


def test_cancel_other_replaces_a_start_not_made_yet() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER"})
    assert ids(run(s, at(3))) == ["wf-2024-01-01T00:03:00Z"]


def test_allow_all_runs_overlap_and_are_not_tracked() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"})
    s.on_workflow_closed("x", S.WORKFLOW_EXECUTION_STATUS_COMPLETED, result=Payloads())
    assert ids(run(s, at(2))) == ["wf-2024-01-01T00:01:00Z", "wf-2024-01-01T00:02:00Z"]
    assert running(s) == [] and s.info.action_count == 2
    assert not run(s, at(3)).starts[0].request.HasField("last_completion_result")


def test_last_completion_result_and_continued_failure_are_passed_on() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_BUFFER_ALL"})
    run(s, at(1))
    result = json_format.ParseDict({"payloads": [{"data": "Mw=="}]}, Payloads())
    s.on_workflow_closed(
        "wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_COMPLETED, result=result
    )
    req = run(s, at(2)).starts[0].request
    assert req.last_completion_result == result and not req.HasField("continued_failure")
    s.on_workflow_closed(
        req.workflow_id, S.WORKFLOW_EXECUTION_STATUS_FAILED, failure=Failure(message="boom")
    )
    req = run(s, at(3)).starts[0].request
    assert req.last_completion_result == result and req.continued_failure.message == "boom"


def test_catchup_window_after_a_restart() -> None:
    s = new({"catchupWindow": "90s", "overlapPolicy": "SCHEDULE_OVERLAP_POLICY_BUFFER_ALL"})
    d = run(s, at(10))  # down for ten minutes: only 00:09 and 00:10 are inside the window
    assert ids(d) == ["wf-2024-01-01T00:09:00Z"] and len(s.buffered_starts) == 1
    assert s.info.missed_catchup_window == 8 and d.next_wakeup == at(11)
    run(s, at(10.5))
    assert s.info.missed_catchup_window == 8  # not counted twice


def test_restart_runs_everything_inside_the_default_window() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"})
    assert len(run(s, T0 + dt.timedelta(hours=10)).starts) == 600
    assert s.info.missed_catchup_window == 0
    # a day: the buffer holds at most 1000 starts, the rest are dropped
    assert len(run(s, at(600) + dt.timedelta(days=1)).starts) == 1000
    assert s.info.buffer_dropped == 24 * 60 - 1000


def test_time_going_backwards_takes_nothing() -> None:
    s = new()
    run(s, at(1))
    assert run(s, T0).starts == [] and s.info.action_count == 1


def test_pause_and_unpause_notes_and_paused_time_is_not_made_up() -> None:
    s = new()
    s.patch(SchedulePatch(pause="Paused via Python SDK"), at(0.5))
    assert s.schedule.state.paused and s.schedule.state.notes == "Paused via Python SDK"
    assert s.conflict_token == 2
    d = run(s, at(5.5))
    assert d.starts == [] and d.next_wakeup is None and s.info.missed_catchup_window == 0
    s.patch(SchedulePatch(unpause="back"), at(5.5))
    assert not s.schedule.state.paused and s.schedule.state.notes == "back"
    assert s.conflict_token == 3
    d = run(s, at(5.5))
    assert d.starts == [] and d.next_wakeup == at(6)
    assert ids(run(s, at(6))) == ["wf-2024-01-01T00:06:00Z"]
    s.patch(SchedulePatch(), at(6))
    assert s.conflict_token == 3  # empty notes change nothing


def test_pause_on_failure() -> None:
    s = new({"pauseOnFailure": True})
    run(s, at(1))
    s.on_workflow_closed(
        "wf-2024-01-01T00:01:00Z",
        S.WORKFLOW_EXECUTION_STATUS_FAILED,
        failure=Failure(message="boom"),
    )
    assert s.schedule.state.paused
    assert s.schedule.state.notes == "paused due to workflow failure: wf-2024-01-01T00:01:00Z: boom"
    assert run(s, at(3)).starts == []
    s = new({"pauseOnFailure": True})
    run(s, at(1))
    s.on_workflow_closed("wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_TIMED_OUT)
    assert s.schedule.state.notes == "paused due to workflow timeout: wf-2024-01-01T00:01:00Z"
    s = new()  # without the policy a failure changes nothing
    run(s, at(1))
    s.on_workflow_closed("wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_FAILED)
    assert not s.schedule.state.paused


def test_limited_actions() -> None:
    s = new(
        {"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"},
        limitedActions=True,
        remainingActions=3,
    )
    assert [t.minute for t in s.future_action_times(10)] == [1, 2, 3]
    assert len(run(s, at(2)).starts) == 2
    assert s.schedule.state.remaining_actions == 1 and s.conflict_token == 3
    d = run(s, at(5))
    assert ids(d) == ["wf-2024-01-01T00:03:00Z"] and s.schedule.state.remaining_actions == 0
    assert d.next_wakeup is None and s.describe()[1].future_action_times == []
    assert run(s, at(9)).starts == []


def test_trigger_immediately_ignores_pause_and_uses_its_policy() -> None:
    s = new(paused=True)
    trigger = TriggerImmediatelyRequest(overlap_policy=P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL)
    trigger.scheduled_time.FromDatetime(at(0.25))
    s.patch(SchedulePatch(trigger_immediately=trigger), at(0.5))
    (start,) = run(s, at(0.5)).starts
    assert start.manual and start.request.workflow_id == "wf-2024-01-01T00:00:15Z"
    assert start.request.workflow_id_reuse_policy == (
        WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
    )
    assert running(s) == []  # allow-all runs are not tracked
    s = new()
    s.patch(SchedulePatch(trigger_immediately=TriggerImmediatelyRequest()), at(0.5))
    assert ids(run(s, at(0.5))) == ["wf-2024-01-01T00:00:30Z"]
    assert running(s) == ["wf-2024-01-01T00:00:30Z"]


def backfill(start: dt.datetime, end: dt.datetime, policy: int) -> SchedulePatch:
    request = BackfillRequest(overlap_policy=policy)  # type: ignore[arg-type]
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(end)
    return SchedulePatch(backfill_request=[request])


def test_backfill_allow_all_in_batches_of_ten() -> None:
    s = new(paused=True)
    s.last_processed_time = at(100)
    s.patch(backfill(at(1), at(25), P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL), at(100))
    d = run(s, at(100))
    assert ids(d)[0] == "wf-2024-01-01T00:01:00Z" and len(d.starts) == 10  # start is inclusive
    assert d.next_wakeup == at(100) + dt.timedelta(seconds=1)
    assert len(run(s, at(101)).starts) == 10
    d = run(s, at(102))
    assert ids(d)[-1] == "wf-2024-01-01T00:25:00Z" and len(d.starts) == 5
    assert d.next_wakeup is None and s.ongoing_backfills == []
    assert all(start.manual for start in d.starts)


def test_backfill_buffer_all_waits_for_each_run() -> None:
    s = new(paused=True)
    s.last_processed_time = at(100)
    s.patch(backfill(at(1), at(3), P.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL), at(100))
    assert ids(run(s, at(100))) == ["wf-2024-01-01T00:01:00Z"]
    assert len(s.buffered_starts) == 2
    s.on_workflow_closed("wf-2024-01-01T00:01:00Z", S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    assert ids(run(s, at(100))) == ["wf-2024-01-01T00:02:00Z"]


def test_update_resets_and_checks_the_conflict_token() -> None:
    s = new()
    run(s, at(1))
    try:
        s.update(schedule(), at(1.5), conflict_token=7)
        raise AssertionError("expected a conflict")
    except ScheduleConflict:
        pass
    changed = schedule({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"})
    changed.spec.interval[0].interval.FromSeconds(120)
    s.update(changed, at(1.5), conflict_token=1)
    assert s.conflict_token == 2 and s.info.action_count == 1  # the info is kept
    assert s.info.update_time.ToDatetime(dt.UTC) == at(1.5)
    assert s.future_action_times(2) == [at(2), at(4)]
    assert ids(run(s, at(2))) == ["wf-2024-01-01T00:02:00Z"]


def test_update_discards_times_before_it() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"})
    s.update(schedule({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"}), at(3.5))
    assert ids(run(s, at(4))) == ["wf-2024-01-01T00:04:00Z"]


def test_invalid_spec_takes_no_action() -> None:
    bad = schedule()
    bad.spec.interval[0].interval.FromSeconds(0)
    s = Scheduler.create("ns", "ns-id", "sched", bad, T0)
    assert s.info.invalid_schedule_error == "Invalid schedule spec: interval is too small"
    d = run(s, at(5))
    assert d.starts == [] and d.next_wakeup is None


def test_start_failed_records_no_action() -> None:
    s = new()
    d = s.process_time(at(1))
    s.start_failed(d.starts[0].request.workflow_id)
    assert s.info.action_count == 0 and running(s) == [] and len(s.info.recent_actions) == 0


def test_json_round_trip() -> None:
    s = new({"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_BUFFER_ALL"})
    run(s, at(3))
    s.patch(backfill(at(1), at(2), P.SCHEDULE_OVERLAP_POLICY_SKIP), at(3))
    s.on_workflow_closed("zzz", S.WORKFLOW_EXECUTION_STATUS_FAILED, failure=Failure(message="f"))
    text = s.to_json()
    json.loads(text)
    copy = Scheduler.from_json(text)
    assert copy.to_json() == text
    assert copy.describe() == s.describe()


def test_jitter_delays_the_start_but_not_the_workflow_id() -> None:
    jittered = schedule()
    jittered.spec.jitter.FromSeconds(30)
    s = Scheduler.create("ns", "ns-id", "sched", jittered, T0)
    d = run(s, T0)
    assert d.next_wakeup is not None and at(1) < d.next_wakeup < at(1.5)
    assert run(s, at(1)).starts == []  # the nominal time alone is not enough
    (start,) = run(s, d.next_wakeup).starts
    assert start.nominal_time == at(1) and start.actual_time == d.next_wakeup
    assert start.request.workflow_id == "wf-2024-01-01T00:01:00Z"
    assert s.info.recent_actions[0].schedule_time.ToDatetime(dt.UTC) == d.next_wakeup


def test_idle_since_its_last_event_once_it_has_nothing_left_to_do() -> None:
    s = new(limitedActions=True, remainingActions=1)
    assert run(s, at(0)).idle_since is None  # an action is still to come
    decision = run(s, at(1))  # takes the last one
    assert decision.idle_since == at(1)
    assert run(s, at(5)).idle_since == at(1), "retention counts from the last event"

    paused = new(paused=True)
    assert run(paused, at(3)).idle_since is None, "a paused schedule is kept"
    unpaused = new()
    unpaused.update(schedule(limitedActions=True, remainingActions=0), at(2))
    assert run(unpaused, at(3)).idle_since == at(2)
