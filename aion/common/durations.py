"""Go's duration syntax (`time.ParseDuration`), as Temporal reads durations in configuration
and schedule specs, with Go's error texts; and Temporal's check of the durations in requests."""

from __future__ import annotations

import re

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from aion import errors
from aion.common.timeutil import SECOND

MAX_INT64 = (1 << 63) - 1
DAYS_SUFFIX = re.compile(r"([0-9]+(\.[0-9]*)?|(\.[0-9]+))d")
UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": SECOND,
    "m": 60 * SECOND,
    "h": 3600 * SECOND,
}


class GoError(ValueError):
    """An error with the text Go's standard library gives for the same input."""


def quote(text: str) -> str:
    """Go's `strconv.Quote` for the printable strings that appear in error messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_duration(text: str) -> int:
    """`time.ParseDuration`, in nanoseconds, with Go's error texts."""
    invalid = GoError(f"time: invalid duration {quote(text)}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise invalid
        whole_digits = _leading_digits(rest)
        whole = int(whole_digits) if whole_digits else 0
        if whole > 1 << 63:
            raise invalid
        rest = rest[len(whole_digits) :]
        fraction, scale, has_fraction = 0, 1.0, False
        if rest.startswith("."):
            fraction_digits = _leading_digits(rest[1:])
            rest = rest[1 + len(fraction_digits) :]
            has_fraction = bool(fraction_digits)
            fraction, scale = _leading_fraction(fraction_digits)
        if not whole_digits and not has_fraction:
            raise invalid
        unit_len = 0
        while unit_len < len(rest) and not (rest[unit_len] == "." or "0" <= rest[unit_len] <= "9"):
            unit_len += 1
        if unit_len == 0:
            raise GoError(f"time: missing unit in duration {quote(text)}")
        unit_text, rest = rest[:unit_len], rest[unit_len:]
        unit = UNIT_NS.get(unit_text)
        if unit is None:
            raise GoError(f"time: unknown unit {quote(unit_text)} in duration {quote(text)}")
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if fraction:
            # Go adds the fraction in float64 arithmetic; so does Python's float.
            value += int(float(fraction) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > MAX_INT64:
        raise invalid
    return total


def parse_temporal_duration(text: str) -> int:
    """Temporal's duration syntax (Go's plus `d` for 24 hours), in nanoseconds."""
    return parse_duration(DAYS_SUFFIX.sub(lambda m: "%fh" % (24 * float(m.group(0)[:-1])), text))


def _leading_digits(text: str) -> str:
    end = 0
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return text[:end]


def _leading_fraction(digits: str) -> tuple[int, float]:
    """Go's leadingFraction: digits stop adding precision once the value would overflow."""
    value, scale = 0, 1.0
    for digit in digits:
        if value > MAX_INT64 // 10 or value * 10 + int(digit) > 1 << 63:
            break
        value = value * 10 + int(digit)
        scale *= 10
    return value, scale


def go_duration_ns(seconds: int, nanos: int) -> int:
    """`durationpb.Duration.AsDuration()`: nanoseconds, saturating at the int64 limits."""
    return max(-MAX_INT64 - 1, min(MAX_INT64, seconds * SECOND + nanos))


# Temporal caps the durations of requests and commands at 100 years (`ValidateAndCapProtoDuration`).
MAX_REQUEST_DURATION_NS = 100 * 365 * 24 * 3600 * SECOND


def validate_and_cap(d: Duration) -> str | None:
    """Temporal's check of a duration in a request or command: what is wrong with it (Temporal's
    text), or None. A valid one over 100 years is cut to 100 years in place, and nanos out of
    range are carried into the seconds, so the value converts and persists."""
    if (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
        return "duration has seconds and nanos with different signs"
    ns = go_duration_ns(d.seconds, d.nanos)
    if ns < 0:
        return "negative duration"
    if ns > MAX_REQUEST_DURATION_NS:
        d.seconds, d.nanos = MAX_REQUEST_DURATION_NS // SECOND, 0
    elif d.nanos >= SECOND:
        d.seconds, d.nanos = divmod(ns, SECOND)
    return None


def capped_ns(d: Duration) -> int:
    """`d` in nanoseconds, at most 100 years: for a duration Temporal takes as it is, which added
    to the current time must stay a valid time."""
    return min(go_duration_ns(d.seconds, d.nanos), MAX_REQUEST_DURATION_NS)


# The durations of a start request (or a schedule's start action) and their names in Temporal's
# errors.
START_DURATIONS = (
    ("workflow_execution_timeout", "WorkflowExecutionTimeoutSeconds"),
    ("workflow_run_timeout", "WorkflowRunTimeoutSeconds"),
    ("workflow_task_timeout", "WorkflowTaskTimeoutSeconds"),
    ("workflow_start_delay", "WorkflowStartDelaySeconds"),
)


def check_start_durations(request: Message) -> None:
    """INVALID_ARGUMENT for a negative timeout or start delay of a start; one over 100 years is
    cut to 100 years, as Temporal does."""
    fields = request.DESCRIPTOR.fields_by_name
    for field, name in START_DURATIONS:
        if field in fields and (problem := validate_and_cap(getattr(request, field))):
            raise errors.InvalidArgument(f"An invalid {name} is set on request. cause: {problem}")
