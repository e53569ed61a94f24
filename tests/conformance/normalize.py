"""Turn a workflow history into plain data that two servers should agree on exactly.

Every field of every event is kept, except for values that legitimately differ from run to
run or server to server. The rules, applied recursively to every message:

* fields named in `VOLATILE_FIELDS` are dropped (ids, identities, sizes, worker metadata);
* `google.protobuf.Timestamp` fields are dropped (wall-clock times); durations are kept;
* empty messages are treated like absent ones;
* payloads are decoded (JSON data parsed), and keys in `VOLATILE_FIELDS` are
  dropped from decoded JSON objects too (e.g. the times inside a local activity marker);
* a sticky task queue's (worker-generated) name becomes `<sticky>`;
* occurrences of the keys of `aliases` (the workflow id, the task queue) inside strings
  are replaced by their placeholders, and UUIDs inside strings (run ids) by `<uuid>`.
"""

from __future__ import annotations

import base64
import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import TaskQueueKind
from temporalio.api.history.v1 import History
from temporalio.api.taskqueue.v1 import TaskQueue

# Run ids and other server-made UUIDs quoted inside messages (e.g. a cancel reason).
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

VOLATILE_FIELDS = frozenset(
    {
        # Random or server-assigned ids.
        "run_id",
        "namespace_id",
        "original_execution_run_id",
        "first_execution_run_id",
        "new_execution_run_id",
        "continued_execution_run_id",
        "request_id",
        "task_id",
        # Who did it and with what build: differs per worker process.
        "identity",
        "binary_checksum",
        "worker_version",
        "build_id",
        "sdk_metadata",
        "build_id_redirect_counter",
        # Server bookkeeping that depends on encoding details.
        "history_size_bytes",
        # Worker-side details that are not the server's business.
        "stack_trace",
        # Times inside the local-activity marker's JSON payload.
        "complete_time",
        "original_schedule_time",
    }
)

Plain = dict[str, Any]


def normalize_history(history: History, aliases: Mapping[str, str] = {}) -> list[Plain]:
    """One plain dict per event; its `*_event_attributes` field is renamed `attributes`."""
    events = []
    for event in history.events:
        plain = _message(event, aliases)
        oneof = event.WhichOneof("attributes")
        if oneof in plain:
            plain["attributes"] = plain.pop(oneof)
        events.append(plain)
    return events


def _message(msg: Message, aliases: Mapping[str, str]) -> Plain:
    if isinstance(msg, Payload):
        return _payload(msg, aliases)
    out: Plain = {}
    for field, value in msg.ListFields():
        if field.name in VOLATILE_FIELDS or isinstance(value, Timestamp):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            converted: Any = {k: _value(value_field, v, aliases) for k, v in value.items()}
        elif field.is_repeated:
            converted = [_value(field, v, aliases) for v in value]
        else:
            converted = _value(field, value, aliases)
        if converted not in ({}, []):
            out[field.name] = converted
    if isinstance(msg, TaskQueue) and msg.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY:
        out["name"] = "<sticky>"
    return out


def _value(field: FieldDescriptor, value: Any, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, Message):
        if value.ByteSize() == 0:
            return {}
        if isinstance(value, Duration):
            return value.ToJsonString()
        return _message(value, aliases)
    if field.enum_type is not None:
        known = field.enum_type.values_by_number
        return known[value].name if value in known else value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, str):
        return _alias(value, aliases)
    return value


def _alias(text: str, aliases: Mapping[str, str]) -> str:
    for actual, placeholder in aliases.items():
        text = text.replace(actual, placeholder)
    return UUID.sub("<uuid>", text)


def _payload(payload: Payload, aliases: Mapping[str, str]) -> Plain:
    metadata = {k: v.decode(errors="replace") for k, v in payload.metadata.items()}
    encoding = metadata.get("encoding")
    data: Any
    if encoding and encoding.startswith("json/"):
        data = _json(json.loads(payload.data), aliases)
    elif encoding == "binary/null":
        data = None
    else:
        data = base64.b64encode(payload.data).decode()
    return {"metadata": metadata, "data": data}


def _json(value: Any, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _json(v, aliases) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_json(v, aliases) for v in value]
    if isinstance(value, str):
        return _alias(value, aliases)
    return value


def render(events: list[Plain]) -> list[str]:
    """Readable lines: a header per event, then one `dotted.path: json` line per leaf."""
    lines: list[str] = []
    for event in events:
        rest = {k: v for k, v in event.items() if k not in ("event_id", "event_type", "attributes")}
        lines.append(f"{event.get('event_id')} {event.get('event_type')}")
        for fields in (event.get("attributes", {}), rest):
            if fields:
                lines += [f"    {path}: {leaf}" for path, leaf in _leaves(fields, "")]
    return lines


def _leaves(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return [
            leaf
            for key, child in value.items()
            for leaf in _leaves(child, f"{path}.{key}" if path else key)
        ]
    if isinstance(value, list) and value:
        return [leaf for i, child in enumerate(value) for leaf in _leaves(child, f"{path}[{i}]")]
    return [(path, json.dumps(value, sort_keys=True))]


def diff(expected: list[Plain], actual: list[Plain], labels: tuple[str, str]) -> str:
    """A unified diff of two normalized histories ('' when they are equal)."""
    return "\n".join(
        difflib.unified_diff(
            render(expected), render(actual), labels[0], labels[1], n=6, lineterm=""
        )
    )
