"""The plug-in point, in Temporal's shape: a `ClaimMapper` turns a call's credentials into
`Claims`, an `Authorizer` decides whether those claims may make the call. Either can be replaced by
a class named by its dotted path in the config (`[auth] claim_mapper = "pkg.module:Class"`); the
class is built without arguments. See docs/security.md."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import grpc
from temporalio.api.errordetails.v1 import message_pb2 as details_pb

from aion import errors
from aion.auth.methods import HEALTH_CHECKS, RULES, Scope
from aion.auth.roles import Claims, Role

UNAUTHORIZED = "Request unauthorized."
"""Temporal's text for every refused call: the caller learns nothing about why."""


class Unauthenticated(errors.ServiceError):
    """Missing, malformed, unknown, expired or revoked credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, message: str = UNAUTHORIZED) -> None:
        super().__init__(message)


class PermissionDenied(errors.PermissionDenied):
    """Valid credentials that do not allow the call (with Temporal's failure detail)."""

    def __init__(self, message: str = UNAUTHORIZED) -> None:
        super().__init__(message, details_pb.PermissionDeniedFailure())


@dataclass
class AuthInfo:
    """The credentials a call came with."""

    token: str = ""
    """The `authorization` header as sent (`Bearer ...`); empty without one."""
    extras: str = ""
    """The `authorization-extras` header."""
    tls_subject: str = ""
    """The verified client certificate's subject common name (mTLS); empty without one."""
    tls_names: list[str] = field(default_factory=list)
    """The verified client certificate's subject alternative names."""


@dataclass
class CallTarget:
    """What a call wants to do."""

    method: str
    """Full method name: `/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution`."""
    namespace: str
    request: Any = None


@runtime_checkable
class CapabilityToken(Protocol):
    """Rights carried by the credential itself (`Claims.extensions`)."""

    def allows(self, target: CallTarget) -> bool: ...


@runtime_checkable
class ClaimMapper(Protocol):
    async def get_claims(self, info: AuthInfo) -> Claims | None:
        """The caller's claims; None when the call carries no credentials at all. Raise
        `Unauthenticated` for credentials that are present but not valid."""


@runtime_checkable
class Authorizer(Protocol):
    async def authorize(self, claims: Claims | None, target: CallTarget) -> bool:
        """Whether `claims` (None: no credentials) may make the call."""


def decide(claims: Claims | None, method: str, namespace: str) -> bool:
    """The default decision: health checks always; otherwise the method's rule against the
    caller's system role, plus its role in the request's namespace for a namespace method."""
    if method in HEALTH_CHECKS:
        return True
    rule = RULES.get(method)
    if claims is None or rule is None:
        return False
    held = claims.system
    if rule.scope is Scope.NAMESPACE:
        held |= claims.namespaces.get(namespace, Role.NONE)
    return held.allows(rule.access)


class DefaultAuthorizer:
    """Temporal's roles per namespace, with Aion's worker category (`aion.auth.methods`)."""

    async def authorize(self, claims: Claims | None, target: CallTarget) -> bool:
        if claims is not None and isinstance(claims.extensions, CapabilityToken):
            return target.method in HEALTH_CHECKS or claims.extensions.allows(target)
        return decide(claims, target.method, target.namespace)


def load_plugin(path: str) -> Any:
    """An instance of the class at `module.path:Class` (or `module.path.Class`)."""
    module_name, sep, name = path.partition(":")
    if not sep:
        module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"cannot load {path!r}: {e}") from None
    return cls()
