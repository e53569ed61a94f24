"""The scheduler's decisions: what a schedule does as time passes, as a deterministic state machine.

This is Temporal's scheduler workflow (service/worker/scheduler/workflow.go and buffer.go)
without the workflow: a `Scheduler` holds the schedule, its `ScheduleInfo` and the internal
state (last processed time, buffered starts, ongoing backfills, conflict token), and its
methods change that state given the current time, never reading a clock or doing I/O.

- `Scheduler.create` starts a schedule; `patch` (trigger, backfill, pause, unpause) and
  `update` apply the PatchSchedule and UpdateSchedule signals;
- `process_time(now)` runs one wakeup: it takes the action times that passed, applies the
  catchup window, backfills and the overlap policies, and returns a `Decision` (workflows to
  start, to cancel, to terminate, and when to wake up next);
- the caller starts the workflows and reports `started` (or `start_failed`), and reports
  workflows the schedule started that closed with `on_workflow_closed`;
- `describe` answers DescribeSchedule; `to_json`/`from_json` persist the whole state.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1.message_pb2 import (
    Memo,
    Payloads,
    SearchAttributes,
    WorkflowExecution,
)
from temporalio.api.enums.v1.schedule_pb2 import ScheduleOverlapPolicy
from temporalio.api.enums.v1.workflow_pb2 import WorkflowExecutionStatus, WorkflowIdReusePolicy
from temporalio.api.failure.v1.message_pb2 import Failure
from temporalio.api.schedule.v1.message_pb2 import (
    Schedule,
    ScheduleActionResult,
    ScheduleInfo,
    SchedulePatch,
)
from temporalio.api.workflowservice.v1.request_response_pb2 import StartWorkflowExecutionRequest

from aion.common.payloads import json_payload
from aion.schedules.decision import Backfill, BufferedStart, Decision, StartWorkflow
from aion.schedules.spec import CompiledSpec, InvalidSpec, NextTime, jitter_seed

# Temporal's CurrentTweakablePolicies (service/worker/scheduler/workflow.go).
DEFAULT_CATCHUP_WINDOW = dt.timedelta(days=365)
MIN_CATCHUP_WINDOW = dt.timedelta(seconds=10)
FUTURE_ACTION_COUNT = 10
RECENT_ACTION_COUNT = 10
MAX_BUFFER_SIZE = 1000
BACKFILLS_PER_ITERATION = 10
INITIAL_CONFLICT_TOKEN = 1

SKIP = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP
BUFFER_ONE = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
BUFFER_ALL = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL
CANCEL_OTHER = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER
TERMINATE_OTHER = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER
ALLOW_ALL = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
UNSPECIFIED = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED

RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
FAILED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED
TIMED_OUT = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_COPIED_ACTION_FIELDS = (  # NewWorkflowExecutionInfo's message fields a start passes on
    "workflow_type",
    "task_queue",
    "input",
    "workflow_execution_timeout",
    "workflow_run_timeout",
    "workflow_task_timeout",
    "retry_policy",
    "memo",
    "header",
    "user_metadata",
    "priority",
)
_M = TypeVar("_M", bound=Message)


class ScheduleConflict(Exception):
    """An update's conflict token is not the schedule's current one (Temporal ignores it)."""


@dataclass
class Scheduler:
    """One schedule's complete state; see the module docstring for the protocol."""

    namespace: str
    namespace_id: str
    schedule_id: str
    schedule: Schedule
    info: ScheduleInfo
    last_processed_time: dt.datetime
    conflict_token: int = INITIAL_CONFLICT_TOKEN
    buffered_starts: list[BufferedStart] = field(default_factory=list)
    ongoing_backfills: list[Backfill] = field(default_factory=list)
    last_completion_result: Payloads | None = None
    continued_failure: Failure | None = None
    memo: Memo | None = None  # the schedule's own, shown by DescribeSchedule and ListSchedules
    search_attributes: SearchAttributes | None = None

    def __post_init__(self) -> None:
        self._ensure_fields()
        self._compile()

    @classmethod
    def create(
        cls,
        namespace: str,
        namespace_id: str,
        schedule_id: str,
        schedule: Schedule,
        now: dt.datetime,
        initial_patch: SchedulePatch | None = None,
    ) -> Scheduler:
        """A new schedule created at `now`, with CreateSchedule's optional initial patch."""
        info = ScheduleInfo()
        info.create_time.FromDatetime(now)
        copy = Schedule()
        copy.CopyFrom(schedule)
        s = cls(namespace, namespace_id, schedule_id, copy, info, now)
        if initial_patch is not None:
            s.patch(initial_patch, now)
        return s

    # --- signals --------------------------------------------------------------------------

    def patch(self, patch: SchedulePatch, now: dt.datetime) -> None:
        """PatchSchedule: trigger immediately, backfill, pause and unpause (notes verbatim;
        an empty note means no pause/unpause). Call `process_time` afterwards."""
        if patch.HasField("trigger_immediately"):
            trigger = patch.trigger_immediately
            at = _time(trigger.scheduled_time) if trigger.HasField("scheduled_time") else now
            self._add_start(at, at, trigger.overlap_policy, manual=True)
        for request in patch.backfill_request:
            if len(self.ongoing_backfills) >= MAX_BUFFER_SIZE:
                self.info.buffer_dropped += 1
                continue
            self.ongoing_backfills.append(
                Backfill(
                    # the start time is inclusive: Temporal looks after one millisecond before
                    _time(request.start_time) - dt.timedelta(milliseconds=1),
                    _time(request.end_time),
                    request.overlap_policy,
                )
            )
        if patch.pause:
            self.schedule.state.paused = True
            self.schedule.state.notes = patch.pause
            self.conflict_token += 1
        if patch.unpause:
            self.schedule.state.paused = False
            self.schedule.state.notes = patch.unpause
            self.conflict_token += 1

    def update(self, schedule: Schedule, now: dt.datetime, conflict_token: int = 0) -> None:
        """UpdateSchedule: replace spec, action, policies and state (not the info); action
        times before `now` are no longer taken. Raises `ScheduleConflict` when
        `conflict_token` is neither 0 nor the current token."""
        if conflict_token not in (0, self.conflict_token):
            raise ScheduleConflict
        self.schedule = Schedule()
        self.schedule.CopyFrom(schedule)
        self._ensure_fields()
        self._compile()
        self.info.update_time.FromDatetime(now)
        self.conflict_token += 1

    # --- time -----------------------------------------------------------------------------

    def process_time(self, now: dt.datetime) -> Decision:
        """One wakeup at `now`: take the action times since the last processed time (after a
        restart, those still inside the catchup window run), then backfills, then the buffer."""
        start = self.last_processed_time
        end = max(now, start)  # time never goes backwards
        next_wakeup, last = self._process_time_range(start, end, UNSPECIFIED, manual=False)
        self.last_processed_time = last
        self._process_backfills()
        decision = Decision()
        while self._process_buffer(now, decision):
            pass
        more_backfills = self._more_allow_all_backfills()
        can_act = self._can_take_scheduled_action(manual=False)
        if more_backfills:
            next_wakeup = now + dt.timedelta(seconds=1)
        elif not can_act:
            next_wakeup = None  # paused or out of actions: sleep until something changes
        decision.next_wakeup = next_wakeup
        idle = not (self.schedule.state.paused or more_backfills or (next_wakeup and can_act))
        if idle:
            decision.idle_since = self._last_event()
        return decision

    def _last_event(self) -> dt.datetime:
        """The last action, update or creation: retention counts from it."""
        times = [_time(self.info.create_time)]
        if self.info.HasField("update_time"):
            times.append(_time(self.info.update_time))
        if self.info.recent_actions:
            times.append(_time(self.info.recent_actions[-1].actual_time))
        return max(times)

    def started(self, workflow_id: str, run_id: str, start_time: dt.datetime) -> None:
        """The caller started a workflow of the last `Decision`: record its run and start time."""
        for result in self.info.recent_actions:
            if result.start_workflow_result.workflow_id == workflow_id:
                result.start_workflow_result.run_id = run_id
                result.actual_time.FromDatetime(start_time)
        for execution in self.info.running_workflows:
            if execution.workflow_id == workflow_id:
                execution.run_id = run_id

    def start_failed(self, workflow_id: str) -> None:
        """A start of the last `Decision` failed: Temporal drops it and records no action."""
        recent = self.info.recent_actions
        for i in reversed(range(len(recent))):
            if recent[i].start_workflow_result.workflow_id == workflow_id:
                del recent[i]
                self.info.action_count -= 1
                break
        self._forget_running(workflow_id)

    def on_workflow_closed(
        self,
        workflow_id: str,
        status: WorkflowExecutionStatus.ValueType,
        *,
        failure: Failure | None = None,
        result: Payloads | None = None,
    ) -> None:
        """A workflow this schedule started closed: stop tracking it, record its status in the
        recent actions, pause the schedule if it failed or timed out and the policy says so,
        and keep its result (or failure) for the next start. Call `process_time` afterwards."""
        if status == RUNNING:
            return
        self._forget_running(workflow_id)
        for action in self.info.recent_actions:
            if action.start_workflow_result.workflow_id == workflow_id:
                action.start_workflow_status = status
        state = self.schedule.state
        if self.schedule.policies.pause_on_failure and not state.paused:
            if status == FAILED:
                message = failure.message if failure is not None else ""
                state.notes = f"paused due to workflow failure: {workflow_id}: {message}"
            elif status == TIMED_OUT:
                state.notes = f"paused due to workflow timeout: {workflow_id}"
            if status in (FAILED, TIMED_OUT):
                state.paused = True
                self.conflict_token += 1
        if result is not None:
            self.last_completion_result = result
            self.continued_failure = None
        elif failure is not None:
            self.continued_failure = failure

    # --- describe -------------------------------------------------------------------------

    def describe(self) -> tuple[Schedule, ScheduleInfo, int]:
        """DescribeSchedule: the schedule (defaults filled in), its info with the next action
        times and buffer size, and the conflict token."""
        info = ScheduleInfo()
        info.CopyFrom(self.info)
        info.buffer_size = len(self.buffered_starts)
        for t in self.future_action_times(FUTURE_ACTION_COUNT):
            info.future_action_times.append(_timestamp(t))
        schedule = Schedule()
        schedule.CopyFrom(self.schedule)
        return schedule, info, self.conflict_token

    def future_action_times(self, n: int) -> list[dt.datetime]:
        """Up to `n` next action times after the last processed time (no more than the
        remaining actions, none before the last update)."""
        if self.schedule.state.limited_actions:
            n = min(n, self.schedule.state.remaining_actions)
        update_time = _time(self.info.update_time)
        out: list[dt.datetime] = []
        for t in self._times_after(self.last_processed_time):
            if len(out) >= n:
                break
            if t.actual >= update_time:
                out.append(t.actual)
        return out

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The whole state as JSON (see `from_json`)."""
        return json.dumps(
            {
                "namespace": self.namespace,
                "namespace_id": self.namespace_id,
                "schedule_id": self.schedule_id,
                "schedule": json_format.MessageToDict(self.schedule),
                "info": json_format.MessageToDict(self.info),
                "last_processed_time": self.last_processed_time.isoformat(),
                "conflict_token": self.conflict_token,
                "buffered_starts": [
                    [
                        s.nominal_time.isoformat(),
                        s.actual_time.isoformat(),
                        s.overlap_policy,
                        s.manual,
                    ]
                    for s in self.buffered_starts
                ],
                "ongoing_backfills": [
                    [b.start_time.isoformat(), b.end_time.isoformat(), b.overlap_policy]
                    for b in self.ongoing_backfills
                ],
                "last_completion_result": _dict_or_none(self.last_completion_result),
                "continued_failure": _dict_or_none(self.continued_failure),
                "memo": _dict_or_none(self.memo),
                "search_attributes": _dict_or_none(self.search_attributes),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Scheduler:
        """The state `to_json` saved."""
        d = json.loads(text)
        parse = dt.datetime.fromisoformat
        return cls(
            d["namespace"],
            d["namespace_id"],
            d["schedule_id"],
            json_format.ParseDict(d["schedule"], Schedule()),
            json_format.ParseDict(d["info"], ScheduleInfo()),
            parse(d["last_processed_time"]),
            d["conflict_token"],
            [BufferedStart(parse(n), parse(a), p, m) for n, a, p, m in d["buffered_starts"]],
            [Backfill(parse(s), parse(e), p) for s, e, p in d["ongoing_backfills"]],
            _message_or_none(d["last_completion_result"], Payloads),
            _message_or_none(d["continued_failure"], Failure),
            _message_or_none(d.get("memo"), Memo),
            _message_or_none(d.get("search_attributes"), SearchAttributes),
        )

    # --- internals ------------------------------------------------------------------------

    def _ensure_fields(self) -> None:
        """Fill in the defaults eagerly so that they show in DescribeSchedule."""
        policies = self.schedule.policies
        policies.overlap_policy = self._resolve(policies.overlap_policy)
        policies.catchup_window.FromTimedelta(self._catchup_window())
        self.schedule.spec.SetInParent()
        self.schedule.action.SetInParent()
        self.schedule.state.SetInParent()

    def _compile(self) -> None:
        try:
            self._spec: CompiledSpec | None = CompiledSpec.from_proto(self.schedule.spec)
            self.info.invalid_schedule_error = ""
        except InvalidSpec as err:
            self._spec = None
            self.info.invalid_schedule_error = err.message

    def _catchup_window(self) -> dt.timedelta:
        policies = self.schedule.policies
        if not policies.HasField("catchup_window"):
            return DEFAULT_CATCHUP_WINDOW
        return max(policies.catchup_window.ToTimedelta(), MIN_CATCHUP_WINDOW)

    def _resolve(self, policy: int) -> ScheduleOverlapPolicy.ValueType:
        return ScheduleOverlapPolicy.ValueType(
            policy or self.schedule.policies.overlap_policy or SKIP
        )

    def _times_after(self, after: dt.datetime) -> Iterator[NextTime]:
        """The action times after `after`, in order (none for an invalid spec)."""
        if self._spec is None:
            return
        seed = jitter_seed(self.namespace_id, self.schedule_id)
        while True:
            try:
                found = self._spec.next_time(after, seed)
            except InvalidSpec:  # too many exclusions: Temporal takes no further action
                return
            if found is None:
                return
            yield found
            after = found.actual

    def _can_take_scheduled_action(self, manual: bool, decrement: bool = False) -> bool:
        if manual:
            return True
        state = self.schedule.state
        if state.paused:
            return False
        if not state.limited_actions:
            return True
        if state.remaining_actions > 0:
            if decrement:
                state.remaining_actions -= 1
                self.conflict_token += 1
            return True
        return False

    def _process_time_range(
        self,
        start: dt.datetime,
        end: dt.datetime,
        overlap_policy: int,
        manual: bool,
        limit: list[int] | None = None,
    ) -> tuple[dt.datetime | None, dt.datetime]:
        """Buffer the action times in (start, end]; returns the first time after them (None
        when there is none) and the time processing got to."""
        if self._spec is None:
            return None, end
        if not self._can_take_scheduled_action(manual):
            # skip the whole range: paused time is not made up for later, nor counted missed
            return next((t.actual for t in self._times_after(end)), None), end
        last = start
        catchup_window = self._catchup_window()
        update_time = _time(self.info.update_time)
        for t in self._times_after(start):
            if t.actual > end:
                return t.actual, last
            if not manual and t.actual < update_time:
                continue
            last = t.actual  # (Temporal would count a missed time again at the next wakeup)
            if not manual and end - t.actual > catchup_window:
                self.info.missed_catchup_window += 1
                continue
            self._add_start(t.nominal, t.actual, overlap_policy, manual)
            if limit is not None:
                limit[0] -= 1
                if limit[0] <= 0:
                    return t.actual, last
        return None, last

    def _add_start(
        self, nominal: dt.datetime, actual: dt.datetime, overlap_policy: int, manual: bool
    ) -> None:
        if len(self.buffered_starts) >= MAX_BUFFER_SIZE:
            self.info.buffer_dropped += 1
            return
        self.buffered_starts.append(BufferedStart(nominal, actual, overlap_policy, manual))

    def _process_backfills(self) -> None:
        """Turn up to `BACKFILLS_PER_ITERATION` backfilled times into buffered starts, using
        at most half the buffer."""
        limit = [BACKFILLS_PER_ITERATION]
        while (
            self.ongoing_backfills
            and limit[0] > 0
            and len(self.buffered_starts) < MAX_BUFFER_SIZE // 2
        ):
            backfill = self.ongoing_backfills[0]
            following, _ = self._process_time_range(
                backfill.start_time, backfill.end_time, backfill.overlap_policy, True, limit
            )
            if following is None or following > backfill.end_time:
                self.ongoing_backfills.pop(0)
            else:
                backfill.start_time = following

    def _more_allow_all_backfills(self) -> bool:
        backfills = self.ongoing_backfills
        return bool(backfills) and self._resolve(backfills[0].overlap_policy) == ALLOW_ALL

    def _process_buffer(self, now: dt.datetime, decision: Decision) -> bool:
        """One pass of Temporal's ProcessBuffer; True when another pass may do more."""
        if not self.schedule.action.HasField("start_workflow") or not self.buffered_starts:
            self.buffered_starts = []
            return False
        running = list(self.info.running_workflows)
        overlapping: list[BufferedStart] = []
        non_overlapping: BufferedStart | None = None
        new_buffer: list[BufferedStart] = []
        need_cancel = need_terminate = False
        for start in self.buffered_starts:
            policy = self._resolve(start.overlap_policy)
            if policy == ALLOW_ALL:
                overlapping.append(start)
            elif not running and non_overlapping is None:
                non_overlapping = start
            elif policy == SKIP:
                self.info.overlap_skipped += 1
            elif policy == BUFFER_ONE:
                if new_buffer:
                    self.info.overlap_skipped += 1
                else:
                    new_buffer.append(start)
            elif policy == BUFFER_ALL:
                new_buffer.append(start)
            elif policy in (CANCEL_OTHER, TERMINATE_OTHER):
                if running:
                    need_cancel |= policy == CANCEL_OTHER
                    need_terminate |= policy == TERMINATE_OTHER
                    new_buffer.append(start)  # starts once the running one has closed
                else:
                    non_overlapping = start  # replaces the one not started yet
        if need_cancel or need_terminate:
            overlapping = []  # they would be cancelled or terminated right away
        self.buffered_starts = new_buffer
        try_again = False
        for start in overlapping + ([non_overlapping] if non_overlapping else []):
            if not self._can_take_scheduled_action(start.manual, decrement=True):
                try_again = True  # paused or out of actions: drain the buffer
                continue
            decision.starts.append(self._start(start, now, start is non_overlapping))
        targets = decision.terminate if need_terminate else decision.cancel
        if need_cancel or need_terminate:
            for execution in running:
                if all(e.workflow_id != execution.workflow_id for e in targets):
                    targets.append(_copy(execution))
        return try_again

    def _start(self, start: BufferedStart, now: dt.datetime, track: bool) -> StartWorkflow:
        """The StartWorkflowExecution request for `start`, recorded as an action already
        (`started` fills in the run id)."""
        action = self.schedule.action.start_workflow
        nominal = start.nominal_time.astimezone(dt.UTC).replace(microsecond=0)
        workflow_id = f"{action.workflow_id}-{format_nominal_time(nominal)}"
        request = StartWorkflowExecutionRequest(
            namespace=self.namespace,
            workflow_id=workflow_id,
            identity=f"temporal-scheduler-{self.namespace}-{self.schedule_id}",
            # Fixed per action, so a step repeated after a crash starts nothing twice, and
            # distinct per action, so two starts of one workflow id are two runs.
            request_id=str(
                uuid.uuid5(
                    uuid.NAMESPACE_URL,
                    f"{self.namespace_id}/{self.schedule_id}/{workflow_id}/{self.info.action_count}",
                )
            ),
            workflow_id_reuse_policy=(
                WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
                if start.manual
                else WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
            ),
            search_attributes=self._search_attributes(action.search_attributes, nominal),
        )
        for name in _COPIED_ACTION_FIELDS:
            if action.HasField(name):  # type: ignore[arg-type]
                getattr(request, name).CopyFrom(getattr(action, name))
        if self._resolve(start.overlap_policy) != ALLOW_ALL:
            # ALLOW_ALL runs take no part in last completion result / continued failure
            if self.last_completion_result is not None:
                request.last_completion_result.CopyFrom(self.last_completion_result)
            if self.continued_failure is not None:
                request.continued_failure.CopyFrom(self.continued_failure)
        execution = WorkflowExecution(workflow_id=workflow_id)
        self.info.action_count += 1
        self.info.recent_actions.append(
            ScheduleActionResult(
                schedule_time=_timestamp(start.actual_time),
                actual_time=_timestamp(now),
                start_workflow_result=execution,
                start_workflow_status=RUNNING,
            )
        )
        del self.info.recent_actions[:-RECENT_ACTION_COUNT]
        if track:  # only non-overlapping runs are watched for overlap
            self.info.running_workflows.append(execution)
        return StartWorkflow(request, start.nominal_time, start.actual_time, start.manual)

    def _search_attributes(self, given: SearchAttributes, nominal: dt.datetime) -> SearchAttributes:
        out = SearchAttributes()
        out.CopyFrom(given)
        out.indexed_fields["TemporalScheduledStartTime"].CopyFrom(
            json_payload(format_nominal_time(nominal))
        )
        out.indexed_fields["TemporalScheduledById"].CopyFrom(json_payload(self.schedule_id))
        return out

    def _forget_running(self, workflow_id: str) -> None:
        running = self.info.running_workflows
        for i in reversed(range(len(running))):
            if running[i].workflow_id == workflow_id:
                del running[i]


def format_nominal_time(t: dt.datetime) -> str:
    """Go's `time.RFC3339` of a UTC time truncated to the second, e.g. 2009-11-10T23:00:00Z:
    what Temporal appends to the workflow id and sets as TemporalScheduledStartTime."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(ts: Timestamp) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def _timestamp(t: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


def _copy(execution: WorkflowExecution) -> WorkflowExecution:
    out = WorkflowExecution()
    out.CopyFrom(execution)
    return out


def _dict_or_none(message: Message | None) -> dict[str, Any] | None:
    return None if message is None else json_format.MessageToDict(message)


def _message_or_none(d: dict[str, Any] | None, cls: type[_M]) -> _M | None:
    return None if d is None else json_format.ParseDict(d, cls())
