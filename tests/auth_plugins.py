"""Plug-ins for tests/test_auth_config.py, loaded by the server from `[auth]` by dotted path."""

from __future__ import annotations

from aion.auth.plugin import AuthInfo, CallTarget, Unauthenticated, decide
from aion.auth.roles import Claims, Role


class PasswordMapper:
    """`Bearer open-sesame` is a writer of `default`; any other credential is refused."""

    async def get_claims(self, info: AuthInfo) -> Claims | None:
        if not info.token:
            return None
        if info.token != "Bearer open-sesame":
            raise Unauthenticated()
        claims = Claims(subject="ali-baba", auth_type="password", credential_id="sesame")
        claims.grant("default", Role.WRITER)
        return claims


class NoTerminations:
    """Aion's roles, except that nobody terminates workflows."""

    async def authorize(self, claims: Claims | None, target: CallTarget) -> bool:
        if target.method.endswith("/TerminateWorkflowExecution"):
            return False
        return decide(claims, target.method, target.namespace)
