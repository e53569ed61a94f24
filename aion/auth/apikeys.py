"""API keys Aion issues: `aion_<id>_<secret>`, sent as `Authorization: Bearer <key>`.

The id is public (it names the key in lists and the audit log); the secret is 256 random bits,
of which only the SHA-256 is stored and compared in constant time. A slow password hash would add
nothing against a 256-bit secret and cost every call."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from aion.auth.plugin import Unauthenticated
from aion.auth.roles import Claims, parse_role
from aion.common.timeutil import now_ns
from aion.persistence import ApiKeyRecord, Store

PREFIX = "aion_"
CACHE_S = 1.0
"""How long a key read from the store is reused. This process forgets a key it disables or
deletes at once; other processes sharing the database, within this time."""


@dataclass
class NewKey:
    record: ApiKeyRecord
    key: str
    """The key itself: shown once, never stored."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(namespace: str, role: str, description: str = "", expires_ns: int = 0) -> NewKey:
    """A fresh key granting `role` in `namespace` (`temporal-system`: a system role)."""
    parse_role(role)  # ValueError for an unknown role
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        key_id=key_id,
        secret_hash=_hash(secret),
        namespace=namespace,
        role=role.lower(),
        description=description,
        created_ns=now_ns(),
        expires_ns=expires_ns,
        disabled=False,
    )
    return NewKey(record, f"{PREFIX}{key_id}_{secret}")


def split(key: str) -> tuple[str, str] | None:
    """(id, secret) of a key in Aion's form, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


class ApiKeys:
    """Checks keys against the store (each read reused for at most `CACHE_S`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    async def claims(self, key: str) -> Claims:
        """The claims of a valid key; Unauthenticated for anything else."""
        parts = split(key)
        if parts is None:
            raise Unauthenticated()
        key_id, secret = parts
        record = await self._record(key_id)
        if (
            record is None
            or not hmac.compare_digest(record.secret_hash, _hash(secret))
            or record.disabled
            or (record.expires_ns and record.expires_ns <= now_ns())
        ):
            raise Unauthenticated()
        claims = Claims(subject=f"apikey:{key_id}", auth_type="apikey", credential_id=key_id)
        claims.grant(record.namespace, parse_role(record.role))
        return claims

    async def _record(self, key_id: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        record = await self.store.get_api_key(key_id)
        if len(self._cache) > 10_000:  # keys tried at random must not grow it without end
            self._cache.clear()
        self._cache[key_id] = (now, record)
        return record
