"""Task tokens: opaque to workers, they name the task a worker answers for."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass

from aion import errors


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
        return json.dumps(asdict(self), separators=(",", ":")).encode()

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
