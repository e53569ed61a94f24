"""Serializes mutable state (dataclasses holding protobuf messages) to compact JSON and back.

Fields added later decode to their defaults, so old snapshots stay readable.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import typing
from functools import cache
from typing import Any, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")


def encode(obj: Any) -> bytes:
    return json.dumps(_to_plain(obj), separators=(",", ":")).encode()


def decode(cls: type[T], data: bytes) -> T:
    return typing.cast(T, _from_plain(cls, json.loads(data)))


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Message):
        return base64.b64encode(obj.SerializeToString()).decode()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return [[_to_plain(k), _to_plain(v)] for k, v in obj.items()]
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    return obj


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_plain(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _from_plain(inner[0], value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_from_plain(item, v) for v in value]
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        return {_from_plain(k_tp, k): _from_plain(v_tp, v) for k, v in value}
    if isinstance(tp, type) and issubclass(tp, Message):
        msg = tp()
        msg.ParseFromString(base64.b64decode(value))
        return msg
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        return tp(**{k: _from_plain(hints[k], v) for k, v in value.items() if k in names})
    if tp is bytes:
        return base64.b64decode(value)
    return value


M = TypeVar("M", bound=Message)


def pack(message: Message) -> str:
    """A protobuf message as text, for JSON sent to another process."""
    return base64.b64encode(message.SerializeToString()).decode()


def unpack(cls: type[M], text: str) -> M:
    return cls.FromString(base64.b64decode(text))
