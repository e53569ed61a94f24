"""Tracing (OpenTelemetry) and the workflow context of log lines.

Tracing is off unless the standard `OTEL_*` variables or the config file's `[tracing]` table
turn it on (`settings`). While it is off, `ACTIVE` is None, OpenTelemetry is not even imported
and the hot paths pay one `is None` test; `setup` imports `aion.tracing.otel` and sets `ACTIVE`.

What every log line that concerns a workflow carries (namespace, workflow id, run id) is kept in
a context variable (`context.py`), set per RPC (`traced`) and per history task (`set_workflow`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aion.tracing.config import TracingConfig, settings
from aion.tracing.context import WORKFLOW, note_run, set_workflow

if TYPE_CHECKING:
    from aion.tracing.otel import Tracing

__all__ = [
    "ACTIVE",
    "TracingConfig",
    "note_run",
    "set_workflow",
    "settings",
    "setup",
    "shutdown",
    "traced",
]

R = TypeVar("R")

ACTIVE: Tracing | None = None
"""The process's tracing, None while it is off (one server per process)."""


def setup(config: TracingConfig, environ: Mapping[str, str] = os.environ) -> None:
    """Turn tracing on when `config` and `environ` ask for it (else leave it off)."""
    global ACTIVE
    chosen = settings(config, environ)
    if chosen is None or ACTIVE is not None:
        return
    from aion.tracing.otel import Tracing  # OpenTelemetry only when tracing is on

    ACTIVE = Tracing(chosen)


def shutdown() -> None:
    """Export the spans still buffered and turn tracing off (blocks up to a few seconds)."""
    global ACTIVE
    active, ACTIVE = ACTIVE, None
    if active is not None:
        active.shutdown()


async def traced(operation: str, request: Any, context: Any, call: Awaitable[R]) -> R:
    """Run an RPC's `call` with the request as the workflow context of its log lines and, when
    tracing is on, in a server span (see `Tracing.rpc`)."""
    token = WORKFLOW.set(request)
    try:
        if ACTIVE is None:
            return await call
        return await ACTIVE.rpc(operation, request, context, call)
    finally:
        WORKFLOW.reset(token)
