"""Small helpers shared by the SDK-level tests."""

from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    """A workflow id or task queue name no other test uses."""
    return f"{prefix}-{uuid.uuid4()}"
