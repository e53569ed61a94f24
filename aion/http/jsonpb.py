"""Temporal's JSON for API messages: protobuf's JSON mapping (camelCase names out, either name
in, enums by name — in, also by the short names Temporal takes —, 64-bit integers as strings,
bytes in base64) plus the **payload shorthand** Temporal's HTTP API uses by default: a `json/plain` payload is shown as the JSON value it holds,
`binary/null` as `null`, a `json/protobuf` one as its object with `_protoMessageType`; payloads
in any other form keep the standard `{"metadata": {...}, "data": "..."}`. On input, a payload
that is not in the standard form is taken as shorthand."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import message_pb2 as common_pb

PAYLOAD = common_pb.Payload.DESCRIPTOR.full_name
PAYLOADS = common_pb.Payloads.DESCRIPTOR.full_name
MESSAGE_TYPE_KEY = "_protoMessageType"
WELL_KNOWN = "google.protobuf."
_ENCODING = "encoding"
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class JsonError(ValueError):
    """The JSON does not describe a message of the expected type."""


def to_json(message: Message, shorthand: bool = True) -> bytes:
    """`message` in Temporal's JSON."""
    value = json_format.MessageToDict(message, preserving_proto_field_name=False)
    if shorthand:
        _shorten(message, value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def to_dict(message: Message, shorthand: bool = True) -> dict[str, Any]:
    """`message` as the dict its JSON is (for composing larger answers)."""
    value = json_format.MessageToDict(message, preserving_proto_field_name=False)
    if shorthand:
        _shorten(message, value)
    return value


def parse(body: Any, message: Message, shorthand: bool = True) -> None:
    """Merge a parsed JSON object into `message`; JsonError when it does not fit its type."""
    if not isinstance(body, dict):
        raise JsonError(f"expected a JSON object for {message.DESCRIPTOR.name}")
    body = _lengthen(message.DESCRIPTOR, body, shorthand)
    try:
        json_format.ParseDict(body, message)
    except json_format.ParseError as e:
        raise JsonError(str(e)) from None


# ---- out: the shorthand ------------------------------------------------------------------
def _shorten(message: Message, value: dict[str, Any]) -> None:
    """Replace, in `value` (the message's standard JSON), every payload that has a shorthand."""
    field: Any
    for field, field_value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type.full_name.startswith(WELL_KNOWN):
            continue  # their JSON is not an object of their fields
        key = field.json_name
        if key not in value:
            continue
        full_name = field.message_type.full_name
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            entries = value[key]
            for map_key, item in field_value.items():
                json_key = str(map_key).lower() if isinstance(map_key, bool) else str(map_key)
                entries[json_key] = _shorten_one(item, entries[json_key])
        elif repeated(field):
            value[key] = [_shorten_one(m, v) for m, v in zip(field_value, value[key], strict=True)]
        elif full_name in (PAYLOAD, PAYLOADS) or isinstance(value[key], dict):
            value[key] = _shorten_one(field_value, value[key])


def _shorten_one(message: Message, value: Any) -> Any:
    full_name = message.DESCRIPTOR.full_name
    if full_name == PAYLOAD:
        found, short = _payload_shorthand(message)  # type: ignore[arg-type]
        return short if found else value
    if full_name == PAYLOADS:
        shorts = [_payload_shorthand(p) for p in message.payloads]  # type: ignore[attr-defined]
        if all(found for found, _ in shorts):
            return [short for _, short in shorts]
        return value
    if isinstance(value, dict):
        _shorten(message, value)
    return value


def repeated(field: Any) -> bool:
    """Whether a field is repeated (a list, or a map)."""
    return bool(field.is_repeated)


def _payload_shorthand(payload: common_pb.Payload) -> tuple[bool, Any]:
    """(True, the shorthand value) for payloads that have one, else (False, None)."""
    metadata = payload.metadata
    encoding = metadata.get(_ENCODING, b"")
    try:
        if encoding == b"binary/null":
            return True, None
        if encoding == b"json/plain" and len(metadata) == 1:
            return True, json.loads(payload.data)
        if encoding == b"json/protobuf" and len(metadata) == 2 and metadata.get("messageType"):
            value = json.loads(payload.data)
            if isinstance(value, dict):
                value[MESSAGE_TYPE_KEY] = metadata["messageType"].decode()
                return True, value
    except (ValueError, UnicodeDecodeError):
        pass  # not the JSON its encoding claims: shown in the standard form
    return False, None


# ---- in: the shorthand and enum names ---------------------------------------------------
def _lengthen(descriptor: Any, body: Mapping[str, Any], shorthand: bool) -> dict[str, Any]:
    """A copy of `body` with every enum by its full name and, with `shorthand`, every
    shorthand payload in its standard JSON form."""
    out: dict[str, Any] = {}
    for key, item in body.items():
        field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        if field is not None and field.type == FieldDescriptor.TYPE_ENUM:
            out[key] = (
                [enum_name(field.enum_type, v) for v in item]
                if isinstance(item, list)
                else enum_name(field.enum_type, item)
            )
        elif field is None or field.type != FieldDescriptor.TYPE_MESSAGE or item is None:
            out[key] = item  # the protobuf parser judges unknown fields and scalars
        else:
            out[key] = _lengthen_field(field, item, shorthand)
    return out


def enum_name(enum: Any, value: Any) -> Any:
    """The full name of an enum value named as Temporal's JSON takes it: in full, or without
    its type's prefix in upper snake, snake, camel or Pascal case (`SCHEDULE_OVERLAP_POLICY_
    ALLOW_ALL`, `ALLOW_ALL`, `allow_all`, `allowAll`, `AllowAll`); anything else as given."""
    if not isinstance(value, str) or value in enum.values_by_name:
        return value
    full = f"{_upper_snake(enum.name)}_{_upper_snake(value)}"
    return full if full in enum.values_by_name else value


def _upper_snake(name: str) -> str:
    return _WORD_START.sub("_", name).upper()


def _lengthen_field(field: Any, item: Any, shorthand: bool) -> Any:
    message_type = field.message_type
    if message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        if value_field.type != FieldDescriptor.TYPE_MESSAGE or not isinstance(item, dict):
            return item
        return {k: _lengthen_value(value_field.message_type, v, shorthand) for k, v in item.items()}
    if repeated(field) and isinstance(item, list):
        return [_lengthen_value(message_type, v, shorthand) for v in item]
    return _lengthen_value(message_type, item, shorthand)


def _lengthen_value(descriptor: Any, item: Any, shorthand: bool) -> Any:
    if shorthand and descriptor.full_name == PAYLOAD:
        return _standard_payload(item)
    if shorthand and descriptor.full_name == PAYLOADS:
        if isinstance(item, list):
            return {"payloads": [_standard_payload(v) for v in item]}
        if isinstance(item, dict) and isinstance(item.get("payloads"), list):
            return {**item, "payloads": [_standard_payload(v) for v in item["payloads"]]}
        return item
    if isinstance(item, dict) and not descriptor.full_name.startswith(WELL_KNOWN):
        return _lengthen(descriptor, item, shorthand)
    return item


def _standard_payload(item: Any) -> Any:
    """A payload's standard JSON: as given when it is one already, else from the shorthand."""
    if isinstance(item, dict) and _is_standard(item):
        return item
    if item is None:
        return {"metadata": {_ENCODING: _b64(b"binary/null")}}
    if isinstance(item, dict) and isinstance(item.get(MESSAGE_TYPE_KEY), str):
        rest = {k: v for k, v in item.items() if k != MESSAGE_TYPE_KEY}
        metadata = {_ENCODING: _b64(b"json/protobuf"), "messageType": _b64(item[MESSAGE_TYPE_KEY])}
        return {"metadata": metadata, "data": _b64(_compact(rest))}
    return {"metadata": {_ENCODING: _b64(b"json/plain")}, "data": _b64(_compact(item))}


def _is_standard(item: dict[str, Any]) -> bool:
    """Whether an object is a payload in the standard form: metadata (with an encoding) and
    data, both base64, and nothing else (or binary/null metadata alone)."""
    metadata = item.get("metadata")
    if not isinstance(metadata, dict) or _ENCODING not in metadata:
        return False
    if not all(isinstance(v, str) and _decodes(v) for v in metadata.values()):
        return False
    if set(item) == {"metadata"}:
        return _decodes(metadata[_ENCODING]) == b"binary/null"
    data = item.get("data")
    return (
        set(item) == {"metadata", "data"} and isinstance(data, str) and _decodes(data) is not None
    )


def _decodes(text: str) -> bytes | None:
    alphabet = base64.urlsafe_b64decode if ("-" in text or "_" in text) else base64.b64decode
    try:
        return alphabet(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _compact(value: Any) -> bytes:
    """JSON as Go's encoder writes it: compact, object keys sorted, <, > and & escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.encode()


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()
