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
    return json.dumps(_to_plain(obj), separators=(",", ":"), ensure_ascii=False).encode()


def decode(cls: type[T], data: bytes) -> T:
    return typing.cast(T, _from_plain(cls, json.loads(data)))


_SCALARS = (str, int, bool, float, type(None))
_MISSING = dataclasses.MISSING
_KEEP = object()  # a field without a default: always written
_EMPTY = object()  # a field made by a default factory: left out while empty
# Per dataclass: each field's name and when `_to_plain` may leave it out (at its scalar
# default, or _KEEP, or _EMPTY).
_LAYOUTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _layout(cls: type) -> tuple[tuple[str, Any], ...]:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        fields: list[tuple[str, Any]] = []
        for f in dataclasses.fields(cls):
            if f.default is not _MISSING and isinstance(f.default, _SCALARS):
                fields.append((f.name, f.default))
            elif f.default_factory is not _MISSING:
                fields.append((f.name, _EMPTY))
            else:
                fields.append((f.name, _KEEP))
        layout = _LAYOUTS[cls] = tuple(fields)
    return layout


def _to_plain(obj: Any) -> Any:
    """Plain JSON values; a dataclass field left at its default is left out (decoding gives
    it back), which keeps snapshots small and cheap to write."""
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, Message):
        return base64.b64encode(obj.SerializeToString()).decode()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        plain = {}
        for name, default in _layout(type(obj)):
            value = getattr(obj, name)
            if default is _KEEP:
                plain[name] = _to_plain(value)
            elif default is _EMPTY:
                if value:
                    plain[name] = _to_plain(value)
            elif default is None:
                if value is not None:
                    plain[name] = _to_plain(value)
            elif value != default or type(value) is not type(default):
                plain[name] = _to_plain(value)
        return plain
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
