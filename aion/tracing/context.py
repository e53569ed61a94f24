"""The workflow a piece of work concerns, for log lines and span attributes.

An RPC stores its request (the fields are read from it only when a line is logged); a history
task stores a `WorkflowRef`. Each RPC and each task runs in its own asyncio task, so what one
sets is never seen by another.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from typing import Any, NamedTuple


class WorkflowRef(NamedTuple):
    namespace: str
    workflow_id: str
    run_id: str


WORKFLOW: ContextVar[Any] = ContextVar("aion_workflow", default=None)
"""A WorkflowRef, an RPC's request message, or None."""

NOTE_RUNS = False
"""Whether log lines name runs (the JSON format does): `note_run` costs a look at the request,
on every commit, only then."""


def set_workflow(namespace: str, workflow_id: str, run_id: str = "") -> None:
    """The workflow the rest of the current asyncio task concerns."""
    WORKFLOW.set(WorkflowRef(namespace, workflow_id, run_id))


def note_run(workflow_id: str, run_id: str) -> None:
    """The current work, which concerns `workflow_id` without naming a run (a start, or a call
    on the current run), reached run `run_id`: its log lines from here on name it."""
    if not NOTE_RUNS:
        return
    ref = current_workflow()
    if ref is not None and ref.workflow_id == workflow_id and not ref.run_id:
        WORKFLOW.set(WorkflowRef(ref.namespace, workflow_id, run_id))


@functools.cache
def _execution_field(descriptor: Any) -> str | None:
    """The field of a request type that holds a WorkflowExecution, if any."""
    for name in ("workflow_execution", "execution"):
        field = descriptor.fields_by_name.get(name)
        message = field.message_type if field is not None else None
        if message is not None and message.name == "WorkflowExecution":
            return name
    return None


def request_workflow(request: Any) -> WorkflowRef:
    """Namespace, workflow id and run id of an RPC request ("" where it has none)."""
    namespace = getattr(request, "namespace", "")
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return WorkflowRef(namespace if isinstance(namespace, str) else "", "", "")
    execution = _execution_field(descriptor)
    if execution is not None:
        e = getattr(request, execution)
        return WorkflowRef(namespace, e.workflow_id, e.run_id)
    workflow_id = getattr(request, "workflow_id", "")
    return WorkflowRef(namespace, workflow_id if isinstance(workflow_id, str) else "", "")


def current_workflow() -> WorkflowRef | None:
    """The workflow the current work concerns, None when it concerns none."""
    value = WORKFLOW.get()
    if value is None:
        return None
    ref = value if isinstance(value, WorkflowRef) else request_workflow(value)
    return ref if ref.workflow_id or ref.namespace else None
