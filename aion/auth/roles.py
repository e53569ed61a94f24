"""Who a caller is (`Claims`) and what each role may do (`Access`, `Role`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

SYSTEM_NAMESPACE = "temporal-system"
"""A permission on this namespace is a system-wide role (`temporal-system:admin`)."""


class Access(enum.Enum):
    """What a method does, hence which roles may call it."""

    WORKER = "worker"  # what a worker does: poll, respond, heartbeat
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class Role(enum.Flag):
    """A caller's roles in one namespace (or system-wide); several may be held at once."""

    NONE = 0
    WORKER = enum.auto()
    READER = enum.auto()
    WRITER = enum.auto()
    ADMIN = enum.auto()

    def allows(self, access: Access) -> bool:
        return any(access in GRANTS[role] for role in self)


GRANTS: dict[Role, frozenset[Access]] = {
    Role.WORKER: frozenset({Access.WORKER, Access.READ}),
    Role.READER: frozenset({Access.READ}),
    Role.WRITER: frozenset({Access.WORKER, Access.READ, Access.WRITE}),
    Role.ADMIN: frozenset(Access),
}

# Role names as permissions spell them: Temporal's (`read`, `write`, ...) and the nouns.
ROLE_NAMES: dict[str, Role] = {
    "worker": Role.WORKER,
    "read": Role.READER,
    "reader": Role.READER,
    "write": Role.WRITER,
    "writer": Role.WRITER,
    "admin": Role.ADMIN,
}


def parse_role(name: str) -> Role:
    """A role by name (any case); ValueError for an unknown one."""
    try:
        return ROLE_NAMES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown role {name!r} (known: worker, reader, writer, admin)") from None


@dataclass
class Claims:
    """What the credentials of a call say about its caller."""

    subject: str
    """Who: a key's id, a token's `sub`, a certificate's subject."""
    auth_type: str
    """How they proved it: `apikey`, `jwt`, `mtls` or a plug-in's own word."""
    system: Role = Role.NONE
    namespaces: dict[str, Role] = field(default_factory=dict)
    credential_id: str = ""
    """Which credential (a key's id, a token's `jti`): for the audit log, never a secret."""
    extensions: Any = None
    """What else a claim mapper keeps for its authorizer; a `plugin.CapabilityToken` here
    (a biscuit) decides the call instead of the roles."""

    def grant(self, namespace: str, role: Role) -> None:
        if namespace == SYSTEM_NAMESPACE:
            self.system |= role
        else:
            self.namespaces[namespace] = self.namespaces.get(namespace, Role.NONE) | role

    def grant_permission(self, permission: str) -> bool:
        """Add a `<namespace>:<role>` permission; False (and nothing added) if malformed."""
        namespace, sep, role_name = permission.partition(":")
        role = ROLE_NAMES.get(role_name.strip().lower())
        if not sep or not namespace or role is None:
            return False
        self.grant(namespace, role)
        return True
