"""The Nexus endpoint registry behind OperatorService's `*NexusEndpoint` RPCs: the reference's
checks and messages, endpoints persisted in the store (versioned: an update names the version it
read), listed in id order. Aion keeps the registry; it does not dispatch Nexus operations.

Where the reference's answer would be INTERNAL or inconsistent, Aion answers otherwise: a page
token that is not one of its own is INVALID_ARGUMENT, and renaming an endpoint to another's name
is ALREADY_EXISTS (the reference lets two endpoints share it)."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.operatorservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import now_ns, ts
from aion.common.tokens import page_token, read_page_token
from aion.namespaces import NamespaceRegistry
from aion.persistence.store import ConditionFailedError, NexusEndpointRecord, Store

NAME_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9]$")
MAX_NAME_BYTES = 200
MAX_TASK_QUEUE_BYTES = 1000
MAX_URL_BYTES = 4 * 1024
MAX_DESCRIPTION_BYTES = 20000
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
RESERVED_TASK_QUEUE_PREFIX = "/_sys/"
_UUID_LENGTHS = (32, 36, 38, 45)  # the forms the reference's UUID parser takes


def _quoted(text: str) -> str:
    """Go's `%q` of `text` (for the ASCII messages quoted here)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class NexusEndpoints:
    """Create, update, delete, get and list Nexus endpoints."""

    def __init__(self, store: Store, namespaces: NamespaceRegistry) -> None:
        self.store = store
        self.namespaces = namespaces

    async def create(self, request: rr.CreateNexusEndpointRequest) -> nexus_pb.Endpoint:
        self._check_spec(request.spec)
        if await self.store.find_nexus_endpoint(request.spec.name) is not None:
            raise _name_taken("creating", request.spec.name)
        endpoint = nexus_pb.Endpoint(
            version=1, id=str(uuid.uuid4()), spec=request.spec, created_time=ts(now_ns())
        )
        await self._save(endpoint, None)
        return endpoint

    async def update(self, request: rr.UpdateNexusEndpointRequest) -> nexus_pb.Endpoint:
        self._check_spec(request.spec)
        previous = await self._existing(request.id)
        if previous is None:
            raise errors.NotFound(
                f"error updating Nexus endpoint. endpoint ID {request.id} not found"
            )
        _check_version(request.version, previous.version)
        # As the reference: the update's clock is the last modification, its created time goes.
        endpoint = nexus_pb.Endpoint(
            version=previous.version + 1,
            id=previous.id,
            spec=request.spec,
            last_modified_time=ts(now_ns()),
        )
        await self._save(endpoint, previous.version)
        return endpoint

    async def delete(self, request: rr.DeleteNexusEndpointRequest) -> None:
        issues = _id_issues(request.id)
        if request.version <= 0:
            issues.append("endpoint version is non-positive")
        _raise(issues)
        if not await self.store.delete_nexus_endpoint(_canonical(request.id)):
            raise errors.NotFound(f"error deleting nexus endpoint with ID: {request.id}")

    async def get(self, endpoint_id: str) -> nexus_pb.Endpoint:
        _raise(_id_issues(endpoint_id))
        endpoint = await self._existing(_canonical(endpoint_id))
        if endpoint is None:
            raise errors.NotFound(f"Nexus endpoint with ID `{endpoint_id}` not found")
        return endpoint

    async def list(self, request: rr.ListNexusEndpointsRequest) -> rr.ListNexusEndpointsResponse:
        if request.name:  # one endpoint or none; page size and token are ignored
            found = await self.store.find_nexus_endpoint(request.name)
            return rr.ListNexusEndpointsResponse(endpoints=[] if found is None else [_read(found)])
        size = request.page_size or DEFAULT_PAGE_SIZE
        if size < 0:
            raise errors.InvalidArgument("page_size is negative")
        if size > MAX_PAGE_SIZE:
            raise errors.InvalidArgument(f"page_size exceeds limit of {MAX_PAGE_SIZE}")
        after = ""
        if request.next_page_token:
            after = str(read_page_token(request.next_page_token).get("LastID", ""))
        records = await self.store.list_nexus_endpoints(after, size)
        # As the reference: a full page has a next page, which may be empty.
        token = page_token({"LastID": records[-1].id}) if len(records) == size else b""
        return rr.ListNexusEndpointsResponse(
            endpoints=[_read(r) for r in records], next_page_token=token
        )

    async def _existing(self, endpoint_id: str) -> nexus_pb.Endpoint | None:
        record = await self.store.get_nexus_endpoint(endpoint_id)
        return None if record is None else _read(record)

    async def _save(self, endpoint: nexus_pb.Endpoint, expected_version: int | None) -> None:
        record = NexusEndpointRecord(
            endpoint.id, endpoint.spec.name, endpoint.version, endpoint.SerializeToString()
        )
        try:
            await self.store.save_nexus_endpoint(record, expected_version)
        except ConditionFailedError:
            now = await self.store.get_nexus_endpoint(endpoint.id)
            if expected_version is not None and (now is None or now.version != expected_version):
                _check_version(expected_version, now.version if now else 0)
            raise _name_taken(
                "creating" if expected_version is None else "updating", endpoint.spec.name
            ) from None
        endpoint.url_prefix = f"/nexus/endpoints/{endpoint.id}/services"

    def _check_spec(self, spec: nexus_pb.EndpointSpec) -> None:
        """The reference's checks of a created or updated endpoint's spec, in its order."""
        issues = _name_issues(spec.name)
        variant = spec.target.WhichOneof("variant") if spec.HasField("target") else None
        if variant is None:
            issues.append("empty target variant")
            _raise(issues)
        if variant == "worker":
            worker = spec.target.worker
            if not worker.namespace:
                issues.append("target namespace not set")
            elif self.namespaces.id_of(worker.namespace) is None:
                raise errors.FailedPrecondition(
                    "could not verify namespace referenced by target exists: "
                    + errors.namespace_not_found(worker.namespace).message
                )
            if problem := _task_queue_problem(worker.task_queue):
                issues.append(f"invalid target task queue: {_quoted(problem)}")
        else:
            issues += _url_issues(spec.target.external.url)
        if spec.description.ByteSize() > MAX_DESCRIPTION_BYTES:
            issues.append(f"description size exceeds limit of {MAX_DESCRIPTION_BYTES}")
        _raise(issues)


def _read(record: NexusEndpointRecord) -> nexus_pb.Endpoint:
    endpoint = nexus_pb.Endpoint.FromString(record.data)
    endpoint.url_prefix = f"/nexus/endpoints/{endpoint.id}/services"
    return endpoint


def _check_version(given: int, current: int) -> None:
    if given != current:
        raise errors.FailedPrecondition(
            f"nexus endpoint version mismatch. received: {given} expected {current}"
        )


def _name_taken(doing: str, name: str) -> errors.AlreadyExists:
    return errors.AlreadyExists(
        f"error {doing} Nexus endpoint. Endpoint with name {name} already registered"
    )


def _raise(issues: list[str]) -> None:
    """The reference's INVALID_ARGUMENT of a request's issues, all in one message."""
    if issues:
        raise errors.InvalidArgument(", ".join(issues))


def _name_issues(name: str) -> list[str]:
    if not name:
        return ["endpoint name not set"]
    issues = []
    if len(name.encode()) > MAX_NAME_BYTES:
        issues.append(f"endpoint name exceeds length limit of {MAX_NAME_BYTES}")
    if not NAME_PATTERN.match(name):
        issues.append(f"endpoint name must match the regex: {_quoted(NAME_PATTERN.pattern)}")
    return issues


def _task_queue_problem(name: str) -> str:
    if not name:
        return "taskQueue is not set"
    if len(name.encode()) > MAX_TASK_QUEUE_BYTES:
        return "taskQueue length exceeds limit"
    if name.startswith(RESERVED_TASK_QUEUE_PREFIX):
        return f"task queue name cannot start with reserved prefix {RESERVED_TASK_QUEUE_PREFIX}"
    return ""


def _url_issues(url: str) -> list[str]:
    if not url:
        return ["empty target URL"]
    if len(url.encode()) > MAX_URL_BYTES:
        return [f"target URL length exceeds limit of {MAX_URL_BYTES}"]
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as e:
        return [f"invalid target URL: {e}"]
    if scheme not in ("http", "https"):
        return [f"invalid target URL scheme: {_quoted(scheme)}, expected http or https"]
    return []


def _id_issues(endpoint_id: str) -> list[str]:
    if not endpoint_id:
        return ["endpoint ID not set"]
    if len(endpoint_id) not in _UUID_LENGTHS:
        return [f"malformed endpoint ID: {_quoted(f'invalid UUID length: {len(endpoint_id)}')}"]
    try:
        uuid.UUID(endpoint_id)
    except ValueError:
        return [f"malformed endpoint ID: {_quoted('invalid UUID format')}"]
    return []


def _canonical(endpoint_id: str) -> str:
    """The id as stored (the reference compares ids as UUID bytes)."""
    return str(uuid.UUID(endpoint_id))
