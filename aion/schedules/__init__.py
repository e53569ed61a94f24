"""Schedules: the spec engine that says when a schedule's actions run (see `spec`) and the
scheduler that decides what a schedule does as time passes (see `scheduler`)."""

from aion.schedules.scheduler import (
    Backfill,
    BufferedStart,
    Decision,
    ScheduleConflict,
    Scheduler,
    StartWorkflow,
)
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
    "Backfill",
    "BufferedStart",
    "Decision",
    "ScheduleConflict",
    "Scheduler",
    "StartWorkflow",
    "CompiledSpec",
    "InvalidSpec",
    "NextTime",
    "TooManyExclusions",
    "canonicalize",
    "describe_form",
    "jitter_seed",
]
