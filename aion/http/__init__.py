"""Temporal's HTTP API: WorkflowService and OperatorService over HTTP and JSON, routed by the
`google.api.http` annotations of the API's descriptors (`routes`), in Temporal's JSON with the
payload shorthand (`jsonpb`), served by aiohttp on the gRPC server's event loop (`server`)."""

from aion.http.server import HttpApi

__all__ = ["HttpApi"]
