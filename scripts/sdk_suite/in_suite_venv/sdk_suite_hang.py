"""pytest plugin the SDK suite runs with (`-p sdk_suite_hang`): explains failures in the report.

When a test fails on the per-test timeout, its coroutine is suspended, not on the stack, so
pytest's traceback only shows the event loop: this adds where the test was waiting (its await
chain, outermost first). For any failure it also adds what a temporalio exception wraps: the SDK
keeps that in `.cause` (not `__cause__`), which pytest does not show. scripts/sdk_suite/reasons.py
reads both sections back from the junit XML.

Runs under the suite's venv (Python 3.10+), not Aion's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

MAX_AWAIT_DEPTH = 40
MAX_CAUSES = 12


def _await_chain(coro: Any) -> list[str]:
    """`file:line in function` of each coroutine `coro` is awaiting through, outermost first."""
    out: list[str] = []
    depth = 0
    while coro is not None and depth < MAX_AWAIT_DEPTH:
        depth += 1
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "ag_frame", None)
            or getattr(coro, "gi_frame", None)
        )
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
        if awaited is None:
            break
        if isinstance(awaited, asyncio.Task):
            out.append("  (awaiting task " + awaited.get_name() + ")")
            awaited = awaited.get_coro()
        elif isinstance(awaited, asyncio.Future):
            out.append("  (awaiting " + type(awaited).__name__ + ")")
            break
        coro = awaited
    return out


def _add_section(report: pytest.TestReport, title: str, lines: list[str]) -> None:
    longrepr: Any = report.longrepr
    if hasattr(longrepr, "addsection"):
        longrepr.addsection(title, "\n".join(lines))
    else:
        report.longrepr = str(longrepr) + "\n" + title + ":\n" + "\n".join(lines) + "\n"


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    for attr in ("type", "non_retryable", "status", "retry_state"):
        value = getattr(exc, attr, None)
        if value not in (None, False, ""):
            text += f" [{attr}={value}]"
    return " ".join(text.split())[:400]


def _temporal_causes(exc: BaseException | None) -> list[str]:
    """The exception and what it wraps, outermost first: WorkflowFailureError -> ActivityError ->
    ApplicationError ..."""
    out: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(out) < MAX_CAUSES:
        seen.add(id(exc))
        out.append(_describe(exc))
        exc = getattr(exc, "cause", None) or exc.__cause__
    return out


def _waiting_at(item: pytest.Item) -> list[str]:
    """The await chains of the tasks running the test's own code, on the test's event loop."""
    funcargs = getattr(item, "funcargs", None)
    loop = funcargs.get("event_loop") if funcargs is not None else None
    if loop is None:
        return []
    lines: list[str] = []
    try:
        path = str(item.path)
        for task in asyncio.all_tasks(loop):
            chain = _await_chain(task.get_coro())
            if chain and chain[0].startswith(path + ":"):
                lines += chain
    except Exception as exc:  # never break the run over a diagnostic
        lines.append(f"(could not inspect tasks: {exc!r})")
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Append the SDK-SUITE-CAUSE and SDK-SUITE-HANG sections to a failure's report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed or call.excinfo is None:
        return
    try:
        causes = _temporal_causes(call.excinfo.value)
    except Exception:
        causes = []
    if len(causes) > 1:
        title = "SDK-SUITE-CAUSE: exception and what it wraps (.cause), outermost first"
        _add_section(report, title, causes)
    if call.when != "call" or "Timeout (>" not in str(report.longrepr):
        return
    lines = _waiting_at(item)
    if lines:
        _add_section(report, "SDK-SUITE-HANG: test coroutine was waiting at", lines)
