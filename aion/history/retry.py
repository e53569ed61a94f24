"""Retry policies: Temporal's defaults and the backoff between attempts."""

from __future__ import annotations

import math

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from aion.common.durations import MAX_REQUEST_DURATION_NS, validate_and_cap
from aion.common.timeutil import SECOND, dur, ns_of

RetryState = workflow_pb2.RetryState

DEFAULT_INITIAL_INTERVAL_NS = SECOND
DEFAULT_BACKOFF_COEFFICIENT = 2.0
DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT = 100


def normalize_policy(policy: common_pb.RetryPolicy) -> None:
    """Fill in Temporal's defaults and validate (intervals over 100 years are cut to 100 years);
    raises ValueError on a bad policy."""
    initial_problem = validate_and_cap(policy.initial_interval)
    maximum_problem = validate_and_cap(policy.maximum_interval)
    if ns_of(policy.initial_interval) == 0:
        policy.initial_interval.CopyFrom(dur(DEFAULT_INITIAL_INTERVAL_NS))
    if ns_of(policy.maximum_interval) == 0:
        maximum = DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT * ns_of(policy.initial_interval)
        policy.maximum_interval.CopyFrom(dur(min(maximum, MAX_REQUEST_DURATION_NS)))
    if policy.backoff_coefficient == 0:
        policy.backoff_coefficient = DEFAULT_BACKOFF_COEFFICIENT
    if policy.maximum_attempts == 1:
        return
    if initial_problem:
        raise ValueError(f"invalid InitialInterval set on retry policy: {initial_problem}")
    if policy.backoff_coefficient < 1:
        raise ValueError("BackoffCoefficient cannot be less than 1 on retry policy.")
    if maximum_problem:
        raise ValueError(f"invalid MaximumInterval set on retry policy: {maximum_problem}")
    if 0 < ns_of(policy.maximum_interval) < ns_of(policy.initial_interval):
        raise ValueError("MaximumInterval cannot be less than InitialInterval on retry policy.")
    if policy.maximum_attempts < 0:
        raise ValueError("MaximumAttempts cannot be negative on retry policy.")


def next_backoff(
    policy: common_pb.RetryPolicy | None,
    attempt: int,
    failure: failure_pb.Failure | None,
    now_ns: int,
    expiration_ns: int,
) -> tuple[int, int]:
    """The delay before attempt `attempt + 1`, or -1 with the RetryState saying why not."""
    if policy is None:
        return -1, RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    state = _failure_retry_state(policy, failure)
    if state != RetryState.RETRY_STATE_IN_PROGRESS:
        return -1, state
    if policy.maximum_attempts and attempt >= policy.maximum_attempts:
        return -1, RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    initial = ns_of(policy.initial_interval) or DEFAULT_INITIAL_INTERVAL_NS
    coefficient = policy.backoff_coefficient or DEFAULT_BACKOFF_COEFFICIENT
    try:
        raw = initial * coefficient ** (attempt - 1)
    except OverflowError:  # a huge coefficient
        raw = math.inf
    delay = int(raw) if raw < MAX_REQUEST_DURATION_NS else MAX_REQUEST_DURATION_NS
    maximum = ns_of(policy.maximum_interval)
    if maximum > 0:
        delay = min(delay, maximum)
    delay = _explicit_delay(failure, delay)
    if expiration_ns and now_ns + delay >= expiration_ns:
        return -1, RetryState.RETRY_STATE_TIMEOUT
    return delay, RetryState.RETRY_STATE_IN_PROGRESS


def failure_allows_retry(policy: common_pb.RetryPolicy | None, failure: failure_pb.Failure) -> bool:
    """Whether this failure, whatever the attempt count, may be retried under `policy`."""
    return (
        policy is not None
        and _failure_retry_state(policy, failure) == RetryState.RETRY_STATE_IN_PROGRESS
    )


def _failure_retry_state(policy: common_pb.RetryPolicy, failure: failure_pb.Failure | None) -> int:
    if failure is not None and failure.timeout_failure_info.timeout_type in (
        workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_START,
        workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
    ):
        return RetryState.RETRY_STATE_TIMEOUT
    if failure is not None and not _retryable(policy, failure):
        return RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    return RetryState.RETRY_STATE_IN_PROGRESS


def _retryable(policy: common_pb.RetryPolicy, failure: failure_pb.Failure) -> bool:
    if failure.HasField("application_failure_info"):
        info = failure.application_failure_info
        if info.non_retryable:
            return False
        return info.type not in policy.non_retryable_error_types
    if failure.HasField("timeout_failure_info"):
        return failure.timeout_failure_info.timeout_type in (
            workflow_pb2.TIMEOUT_TYPE_START_TO_CLOSE,
            workflow_pb2.TIMEOUT_TYPE_HEARTBEAT,
        )
    if failure.HasField("server_failure_info"):
        return not failure.server_failure_info.non_retryable
    return not (
        failure.HasField("canceled_failure_info") or failure.HasField("terminated_failure_info")
    )


def _explicit_delay(failure: failure_pb.Failure | None, delay: int) -> int:
    """An ApplicationError's next_retry_delay overrides the computed backoff."""
    if failure is not None and failure.HasField("application_failure_info"):
        explicit = failure.application_failure_info.next_retry_delay
        if ns_of(explicit) > 0:
            return min(ns_of(explicit), MAX_REQUEST_DURATION_NS)
    return delay
