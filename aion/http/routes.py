"""The HTTP routes of Temporal's API, read at run time from the `google.api.http` annotations
on the WorkflowService and OperatorService methods in the SDK's descriptors (each rule and its
additional bindings: the `/api/v1/...` paths and the primary ones)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from google.api import annotations_pb2
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

SERVICES: tuple[Any, ...] = (
    workflow_service.DESCRIPTOR.services_by_name["WorkflowService"],
    operator_service.DESCRIPTOR.services_by_name["OperatorService"],
)


@dataclass(frozen=True)
class Variable:
    """A path segment bound to a request field (`execution.workflow_id`)."""

    field_path: str


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    http_method: str  # GET, POST, DELETE, ...
    template: str
    segments: tuple[str | Variable, ...]
    service: str  # the service's full name
    method: str  # the RPC's name
    request_type: Any  # the request message's descriptor
    body: str  # "*": the whole request is the body; "": fields come from the query string

    @property
    def literals(self) -> int:
        return sum(isinstance(s, str) for s in self.segments)


def _segments(template: str) -> tuple[str | Variable, ...]:
    parts = template.strip("/").split("/")
    return tuple(Variable(p[1:-1]) if p.startswith("{") else p for p in parts)


def load_routes(services: tuple[Any, ...] = SERVICES) -> list[Route]:
    """Every HTTP binding the services' methods declare."""
    routes: list[Route] = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            for binding in (rule, *rule.additional_bindings):
                kind = binding.WhichOneof("pattern")
                if kind is None or kind == "custom":
                    continue
                template = getattr(binding, kind)
                routes.append(
                    Route(
                        kind.upper(),
                        template,
                        _segments(template),
                        service.full_name,
                        method.name,
                        method.input_type,
                        binding.body,
                    )
                )
    return routes


class Router:
    """Finds the route of a request: the path's segments against each template of the same
    length, literal segments before variables where two templates could both match."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._by_length: dict[int, list[Route]] = {}
        for route in sorted(routes, key=lambda r: -r.literals):
            self._by_length.setdefault(len(route.segments), []).append(route)

    def match(self, http_method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route of `http_method` on `path` and its path variables; None if none."""
        for route, variables in self._matching(path):
            if route.http_method == http_method:
                return route, variables
        return None

    def has_path(self, path: str) -> bool:
        """Whether some route has this path (for any method)."""
        return next(self._matching(path), None) is not None

    def _matching(self, path: str) -> Iterator[tuple[Route, dict[str, str]]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        for route in self._by_length.get(len(parts), ()):
            variables: dict[str, str] = {}
            for segment, part in zip(route.segments, parts, strict=True):
                if isinstance(segment, Variable):
                    if not part:
                        break
                    variables[segment.field_path] = part
                elif segment != part:
                    break
            else:
                yield route, variables
