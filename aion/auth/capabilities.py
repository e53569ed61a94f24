"""Biscuit capability tokens: the token carries rights rather than an identity, signed by a root
key whose public half the server is configured with. Its holder can attenuate it offline
(append a block of checks: only this task queue, only this workflow type) into a child token
that can do less, never more.

The authority block grants roles as the other credentials do: `role("orders", "worker")`
(`temporal-system`: system-wide). Each call adds the facts a policy can test: `namespace`,
`operation` (the method's name), `access` (worker, read, write, admin), and when the request
has them `task_queue`, `workflow_type` and `workflow_id`; and `time`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import biscuit_auth

from aion.auth.methods import RULES, Scope
from aion.auth.plugin import CallTarget, Unauthenticated
from aion.auth.roles import SYSTEM_NAMESPACE, Claims

log = logging.getLogger("aion.auth")

# The package's type stubs lag behind its API (from_pem, set_time, Algorithm): typed loosely.
biscuit: Any = biscuit_auth

# The roles (`aion.auth.roles.GRANTS`) as Datalog rules, and the policies.
POLICY = """
right($ns, "read") <- role($ns, "reader");
right($ns, "read") <- role($ns, "worker");
right($ns, "worker") <- role($ns, "worker");
right($ns, "read") <- role($ns, "writer");
right($ns, "worker") <- role($ns, "writer");
right($ns, "write") <- role($ns, "writer");
right($ns, $access) <- role($ns, "admin"), access($access);
allow if namespace($ns), access($access), right($ns, $access);
allow if access($access), right({system}, $access);
"""


def root_key(value: str) -> Any:
    """The root public key: a PEM file's path, or the Ed25519 key's 32 bytes in hex."""
    if os.path.exists(value):
        with open(value) as f:
            return biscuit.PublicKey.from_pem(f.read())
    return biscuit.PublicKey.from_bytes(bytes.fromhex(value), biscuit.Algorithm.Ed25519)


@dataclass
class Capability:
    """A verified token, kept on its claims: it decides each call instead of the roles."""

    token: Any  # a verified biscuit_auth.Biscuit

    def allows(self, target: CallTarget) -> bool:
        rule = RULES.get(target.method)
        if rule is None:
            return False
        builder = biscuit.AuthorizerBuilder(POLICY, {"system": SYSTEM_NAMESPACE})
        facts: dict[str, Any] = {
            "operation": target.method.rsplit("/", 1)[-1],
            "access": rule.access.value,
        }
        if rule.scope is Scope.NAMESPACE:
            facts["namespace"] = target.namespace
        facts.update(_request_facts(target.request))
        for name, value in facts.items():
            builder.add_fact(biscuit.Fact(f"{name}({{value}})", {"value": value}))
        builder.set_time()
        try:
            builder.build(self.token).authorize()
        except biscuit.AuthorizationError:
            return False
        return True


def _request_facts(request: Any) -> dict[str, str]:
    fields = {
        "task_queue": getattr(getattr(request, "task_queue", None), "name", None),
        "workflow_type": getattr(getattr(request, "workflow_type", None), "name", None),
        "workflow_id": getattr(request, "workflow_id", None),
    }
    return {name: value for name, value in fields.items() if isinstance(value, str) and value}


class BiscuitVerifier:
    def __init__(self, root: str) -> None:
        self.root = root_key(root)

    def claims(self, token: str) -> Claims:
        """The claims of a token signed (through all its blocks) by the root key."""
        try:
            parsed = biscuit.Biscuit.from_base64(token, self.root)
        except (biscuit.BiscuitValidationError, biscuit.BiscuitSerializationError, ValueError) as e:
            log.info("biscuit refused: %s", e)
            raise Unauthenticated() from None
        revocation = parsed.revocation_ids[-1] if parsed.revocation_ids else ""
        return Claims(
            subject="biscuit",
            auth_type="biscuit",
            credential_id=str(revocation)[:16],
            extensions=Capability(parsed),
        )
