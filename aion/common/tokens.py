"""Task tokens: opaque to workers, they name the task a worker answers for."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from aion import errors

T = TypeVar("T")


@dataclass(frozen=True)
class TaskToken:
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    attempt: int
    stamp: int = 0
    activity_id: str = ""
    query_task_id: str = ""

    def encode(self) -> bytes:
        """JSON of the fields not at their defaults (decoding gives the defaults back)."""
        fields = {
            "namespace_id": self.namespace_id,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "scheduled_event_id": self.scheduled_event_id,
            "attempt": self.attempt,
        }
        if self.stamp:
            fields["stamp"] = self.stamp
        if self.activity_id:
            fields["activity_id"] = self.activity_id
        if self.query_task_id:
            fields["query_task_id"] = self.query_task_id
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> TaskToken:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            raise errors.InvalidArgument("Error deserializing task token.") from None


def page_token(value: dict[str, object]) -> bytes:
    return base64.b64encode(json.dumps(value).encode())


def read_page_token(data: bytes) -> dict[str, object]:
    try:
        result = json.loads(base64.b64decode(data))
        assert isinstance(result, dict)
        return result
    except Exception:
        raise errors.InvalidArgument("Invalid NextPageToken.") from None


def page(items: Sequence[T], next_page_token: bytes, size: int) -> tuple[Sequence[T], bytes]:
    """The page of `items` a list request's token asks for (tokens hold an offset), and the
    token of the page after it (empty after the last)."""
    offset = int(read_page_token(next_page_token)["offset"]) if next_page_token else 0  # type: ignore[call-overload]
    following = page_token({"offset": offset + size}) if offset + size < len(items) else b""
    return items[offset : offset + size], following
