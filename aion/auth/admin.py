"""Aion's admin API on the server's gRPC port: API keys and the audit log, for system admins.

`aion.admin.v1.AdminService/<Method>`, each request and response one JSON object (there is no
proto to compile; any gRPC client can call it with a JSON codec). `aion apikey ...` and
`aion audit list` use it; the same operations run on a database directly for the first key."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import grpc

from aion import errors
from aion.auth.apikeys import ApiKeys, new_key
from aion.auth.audit import AuditLog
from aion.auth.guard import Guard
from aion.auth.methods import ADMIN_SERVICE
from aion.auth.roles import parse_role
from aion.persistence import ApiKeyRecord, Store

Json = dict[str, Any]
Abort = Callable[[grpc.aio.ServicerContext, errors.ServiceError], Awaitable[None]]


def key_view(record: ApiKeyRecord) -> Json:
    """What may be shown of a key: everything but its hash."""
    view = asdict(record)
    del view["secret_hash"]
    return view


class AdminOps:
    """The operations, on a store (and, in a server, its key cache and audit log)."""

    def __init__(
        self, store: Store, api_keys: ApiKeys | None = None, audit: AuditLog | None = None
    ) -> None:
        self.store = store
        self.api_keys = api_keys
        self.audit = audit

    async def CreateApiKey(self, request: Json) -> Json:
        namespace = str(request.get("namespace", ""))
        if not namespace:
            raise errors.InvalidArgument("namespace is not set")
        try:
            parse_role(str(request.get("role", "")))
        except ValueError as e:
            raise errors.InvalidArgument(str(e)) from None
        created = new_key(
            namespace,
            str(request["role"]),
            str(request.get("description", "")),
            int(request.get("expires_ns", 0)),
        )
        await self.store.create_api_key(created.record)
        return {**key_view(created.record), "key": created.key}

    async def ListApiKeys(self, request: Json) -> Json:
        return {"keys": [key_view(r) for r in await self.store.list_api_keys()]}

    async def DisableApiKey(self, request: Json) -> Json:
        return await self._change(request, self.store.disable_api_key)

    async def DeleteApiKey(self, request: Json) -> Json:
        return await self._change(request, self.store.delete_api_key)

    async def _change(self, request: Json, change: Callable[[str], Awaitable[bool]]) -> Json:
        key_id = str(request.get("key_id", ""))
        if not await change(key_id):
            raise errors.NotFound(f"API key {key_id} not found")
        if self.api_keys is not None:
            self.api_keys.forget(key_id)
        return {"key_id": key_id}

    async def ListAuditEvents(self, request: Json) -> Json:
        since_ns = int(request.get("since_ns", 0))
        namespace = request.get("namespace") or None
        limit = int(request.get("limit", 1000))
        if self.audit is not None:
            events = await self.audit.list(since_ns, namespace, limit)
        else:
            events = await self.store.list_audit(since_ns, namespace, limit)
        return {"events": [asdict(e) for e in events]}


METHODS = ("CreateApiKey", "ListApiKeys", "DisableApiKey", "DeleteApiKey", "ListAuditEvents")


def admin_handler(ops: AdminOps, guard: Guard, abort: Abort) -> grpc.GenericRpcHandler:
    """The admin service's handler: each call checked by `guard` (system admins only)."""

    def behaviour(name: str) -> Callable[[Json, grpc.aio.ServicerContext], Awaitable[Json]]:
        method = ADMIN_SERVICE + name
        operation: Callable[[Json], Awaitable[Json]] = getattr(ops, name)

        async def handle(request: Json, context: grpc.aio.ServicerContext) -> Json:
            try:
                claims = await guard.check(method, request, context)
                try:
                    response = await operation(request)
                except (KeyError, TypeError, ValueError) as e:
                    raise errors.InvalidArgument(f"bad request: {e}") from None
                except errors.ServiceError as e:
                    if guard.audit is not None:
                        await guard.audit.record(
                            claims, method, str(request.get("namespace", "")), "", e.code.name
                        )
                    raise
                if guard.audit is not None:
                    await guard.audit.record(
                        claims, method, str(request.get("namespace", "")), "", "OK"
                    )
                return response
            except errors.ServiceError as e:
                await abort(context, e)
                raise AssertionError("unreachable") from None

        return handle

    return grpc.method_handlers_generic_handler(
        ADMIN_SERVICE.strip("/"),
        {
            name: grpc.unary_unary_rpc_method_handler(
                behaviour(name),
                request_deserializer=_decode,
                response_serializer=lambda response: json.dumps(response).encode(),
            )
            for name in METHODS
        },
    )


def _decode(raw: bytes) -> Json:
    value = json.loads(raw or b"{}")
    return value if isinstance(value, dict) else {}
