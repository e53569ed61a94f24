"""Nanosecond time helpers for protobuf Timestamp / Duration fields."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
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
