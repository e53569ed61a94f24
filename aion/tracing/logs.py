"""The server's log lines: `text` (the default) or `json`, one JSON object a line.

A JSON line has `time` (UTC, RFC 3339 with milliseconds), `level`, `logger`, `message`; on a line
that concerns a workflow, `namespace`, `workflow_id` and `run_id` (from the RPC or the history
task being served, or a record's extras of those names); under a span being recorded,
`trace_id` and `span_id` (hex, as OpenTelemetry writes them); `error` with the traceback when
the line carries one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from aion import tracing
from aion.tracing import context
from aion.tracing.context import current_workflow

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = ("namespace", "workflow_id", "run_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = current_workflow()
        if ref is not None:
            for name, value in zip(_FIELDS, ref, strict=True):
                if value:
                    line[name] = value
        for name in _FIELDS:
            extra = record.__dict__.get(name)
            if extra:
                line[name] = extra
        if tracing.ACTIVE is not None:
            line.update(_trace_fields())
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["error"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def _trace_fields() -> dict[str, str]:
    from opentelemetry import trace  # loaded already: tracing is on

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def configure(level: int, log_format: str = "text") -> None:
    """Log to stderr at `level` in `log_format` (`text` or `json`)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be text or json, not {log_format}")
    context.NOTE_RUNS = log_format == "json"
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler])
