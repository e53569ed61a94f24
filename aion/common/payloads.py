"""Payloads the server writes itself, as Temporal's Go data converter encodes them."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb


def json_payload(value: Any) -> common_pb.Payload:
    """`value` as the Go SDK's default data converter's payload (json/plain)."""
    return common_pb.Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())
