"""Nanosecond time helpers for protobuf Timestamp / Duration fields."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

SECOND = 1_000_000_000


def now_ns() -> int:
    return time.time_ns()


def ts(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // SECOND, nanos=ns % SECOND)


def dur(ns: int) -> Duration:
    return Duration(seconds=ns // SECOND, nanos=ns % SECOND)


def ns_of(value: Duration | Timestamp) -> int:
    return value.seconds * SECOND + value.nanos


# protobuf's valid ranges (0001-01-01 to 9999-12-31; ±10,000 years), outside which the JSON form
# and datetime conversions fail.
MIN_TIMESTAMP_S, MAX_TIMESTAMP_S = -62_135_596_800, 253_402_300_799
MAX_DURATION_S = 315_576_000_000


def clamp_times(message: Message) -> None:
    """Bring every Timestamp and Duration in `message`, at any depth, into protobuf's valid range
    (the nearest valid value)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = (
                value.values() if field.message_type.fields_by_name["value"].message_type else ()
            )
        else:
            values = value if field.is_repeated else (value,)
        for item in values:
            if isinstance(item, Timestamp):
                ns = min(max(ns_of(item), MIN_TIMESTAMP_S * SECOND), MAX_TIMESTAMP_S * SECOND)
                item.seconds, item.nanos = divmod(ns, SECOND)
            elif isinstance(item, Duration):
                limit = MAX_DURATION_S * SECOND
                item.CopyFrom(_signed_duration(min(max(ns_of(item), -limit), limit)))
            else:
                clamp_times(item)


def _signed_duration(ns: int) -> Duration:
    seconds, nanos = divmod(abs(ns), SECOND)
    return (
        Duration(seconds=seconds, nanos=nanos)
        if ns >= 0
        else Duration(seconds=-seconds, nanos=-nanos)
    )
