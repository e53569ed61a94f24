"""Where every call is checked: its credentials mapped to claims, the claims authorized for
the method and namespace, writes and refusals audited. `aion.frontend.rpc` hands each call of a
guarded servicer to its `ServiceGuard`; a servicer without one (auth off) pays nothing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from aion import errors
from aion.auth.apikeys import PREFIX, ApiKeys
from aion.auth.audit import AuditLog
from aion.auth.capabilities import BiscuitVerifier
from aion.auth.methods import HEALTH_CHECKS, RULES, WORKFLOW_SERVICE
from aion.auth.plugin import (
    AuthInfo,
    Authorizer,
    CallTarget,
    ClaimMapper,
    PermissionDenied,
    Unauthenticated,
)
from aion.auth.roles import Access, Claims
from aion.auth.tokens import JwtVerifier
from aion.persistence import StoreUnavailableError

log = logging.getLogger("aion.auth")

R = TypeVar("R")
UNAUDITED = frozenset({Access.READ, Access.WORKER})
RESPOND_WORKFLOW_TASK_COMPLETED = WORKFLOW_SERVICE + "RespondWorkflowTaskCompleted"
# Commands that act on another namespace, and the method they amount to there (as Temporal).
_CROSS_NAMESPACE = {
    "signal_external_workflow_execution_command_attributes": "SignalWorkflowExecution",
    "start_child_workflow_execution_command_attributes": "StartWorkflowExecution",
    "request_cancel_external_workflow_execution_command_attributes": (
        "RequestCancelWorkflowExecution"
    ),
}


class DefaultClaimMapper:
    """Aion's credentials: a bearer API key (`aion_...`), JWT or biscuit, else a verified client
    certificate whose subject common name or a SAN is mapped to permissions in the config."""

    def __init__(
        self,
        api_keys: ApiKeys | None,
        jwt: JwtVerifier | None,
        tls_permissions: Mapping[str, list[str]],
        biscuits: BiscuitVerifier | None = None,
    ) -> None:
        self.api_keys = api_keys
        self.jwt = jwt
        self.tls_permissions = tls_permissions
        self.biscuits = biscuits

    async def get_claims(self, info: AuthInfo) -> Claims | None:
        if info.token:
            scheme, _, credential = info.token.strip().partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                raise Unauthenticated()
            if self.api_keys is not None and credential.startswith(PREFIX):
                return await self.api_keys.claims(credential)
            if self.jwt is not None and "." in credential:  # a JWT has dots, a biscuit none
                return await self.jwt.claims(credential)
            if self.biscuits is not None:
                return self.biscuits.claims(credential)
            raise Unauthenticated()
        if info.tls_subject or info.tls_names:
            return self._certificate_claims(info)
        return None

    def _certificate_claims(self, info: AuthInfo) -> Claims:
        subject = info.tls_subject or info.tls_names[0]
        claims = Claims(subject=subject, auth_type="mtls", credential_id=subject)
        for name in (info.tls_subject, *info.tls_names):
            for permission in self.tls_permissions.get(name, ()):
                claims.grant_permission(permission)
        return claims


def auth_info(context: Any) -> AuthInfo:
    """The credentials of a call: its metadata and, on a TLS connection with a verified client
    certificate, the certificate's names (gRPC's `auth_context`; an HTTP call's context gives
    them in the same shape)."""
    info = AuthInfo()
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            info.token = value
        elif key == "authorization-extras":
            info.extras = value
    auth_context = getattr(context, "auth_context", None)
    if auth_context is not None:
        properties = auth_context() or {}
        common_names = properties.get("x509_common_name") or ()
        if common_names:
            info.tls_subject = _text(common_names[0])
        info.tls_names = [_text(n) for n in properties.get("x509_subject_alternative_name", ())]
    return info


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def cross_namespace_targets(method: str, request: Any, namespace: str) -> set[tuple[str, str]]:
    """(method, namespace) of each command of a completed workflow task that acts on another
    namespace: the caller needs that method there too."""
    if method != RESPOND_WORKFLOW_TASK_COMPLETED:
        return set()
    targets = set()
    for command in request.commands:
        kind = command.WhichOneof("attributes")
        api = _CROSS_NAMESPACE.get(kind or "")
        if api is not None:
            target = getattr(command, kind).namespace
            if target and target != namespace:
                targets.add((WORKFLOW_SERVICE + api, target))
    return targets


def workflow_id_of(request: Any) -> str:
    workflow_id = getattr(request, "workflow_id", "")
    if not workflow_id and hasattr(request, "workflow_execution"):
        workflow_id = request.workflow_execution.workflow_id
    return workflow_id if isinstance(workflow_id, str) else ""


@dataclass
class Guard:
    """The server's credential checks, shared by the services it guards."""

    mapper: ClaimMapper
    authorizer: Authorizer
    audit: AuditLog | None

    def service(self, prefix: str) -> ServiceGuard:
        """The guard of one service (`/package.Service/`)."""
        return ServiceGuard(self, prefix)

    async def check(self, method: str, request: Any, context: Any) -> Claims | None:
        """The caller's claims if it may call `method`; else Unauthenticated or
        PermissionDenied (audited)."""
        namespace = getattr(request, "namespace", "")
        claims: Claims | None = None
        try:
            try:
                claims = await self.mapper.get_claims(auth_info(context))
                allowed = await self.authorizer.authorize(
                    claims, CallTarget(method, namespace, request)
                )
                for target_method, target in cross_namespace_targets(method, request, namespace):
                    allowed = allowed and await self.authorizer.authorize(
                        claims, CallTarget(target_method, target, request)
                    )
            except errors.ServiceError:
                raise
            except StoreUnavailableError as e:  # keys cannot be read: retry later
                raise errors.Unavailable(f"persistence unavailable: {e}") from None
            except Exception:
                log.exception("authorizing %s failed", method)
                raise PermissionDenied() from None
            if not allowed:
                raise Unauthenticated() if claims is None else PermissionDenied()
        except errors.ServiceError as e:
            if self.audit is not None:
                await self.audit.record(
                    claims, method, namespace, workflow_id_of(request), e.code.name
                )
            raise
        return claims


@dataclass
class ServiceGuard:
    guard: Guard
    prefix: str

    async def serve(
        self,
        operation: str,
        request: Any,
        context: Any,
        call: Callable[[Any, Any], Awaitable[R]],
    ) -> R:
        """Make the call if its credentials allow it; audit it if it writes."""
        method = self.prefix + operation
        claims = await self.guard.check(method, request, context)
        audit = self.guard.audit
        rule = RULES.get(method)
        if audit is None or rule is None or rule.access in UNAUDITED or method in HEALTH_CHECKS:
            return await call(request, context)
        namespace = getattr(request, "namespace", "")
        try:
            response = await call(request, context)
        except errors.ServiceError as e:
            # A call refused by a rate or in-flight limit changed nothing; auditing each one
            # would make a flood write to the database at the flooder's pace.
            if e.code is not grpc.StatusCode.RESOURCE_EXHAUSTED:
                await audit.record(claims, method, namespace, workflow_id_of(request), e.code.name)
            raise
        await audit.record(claims, method, namespace, workflow_id_of(request), "OK")
        return response
