"""Schedules: the spec engine that says when a schedule's actions run (see `spec`)."""

from aion.schedules.spec import (
    CompiledSpec,
    InvalidSpec,
    NextTime,
    TooManyExclusions,
    canonicalize,
    describe_form,
    jitter_seed,
)

__all__ = [
    "CompiledSpec",
    "InvalidSpec",
    "NextTime",
    "TooManyExclusions",
    "canonicalize",
    "describe_form",
    "jitter_seed",
]
