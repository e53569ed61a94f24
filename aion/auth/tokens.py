"""JWT bearer tokens with Temporal's default claim mapping: `sub` names the caller, the
`permissions` claim lists `<namespace>:<role>` (`temporal-system:<role>`: a system role). The
signing keys come from a JWKS file (read at start) or URL (fetched, then cached by PyJWT)."""

from __future__ import annotations

import asyncio
import logging

import jwt

from aion.auth.plugin import Unauthenticated
from aion.auth.roles import Claims

log = logging.getLogger("aion.auth")

# Public-key algorithms only: a token signed with a shared secret is never accepted.
ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


class JwtVerifier:
    def __init__(
        self,
        jwks: str,
        issuer: str | None,
        audience: str | None,
        permissions_claim: str = "permissions",
    ) -> None:
        """See `aion.auth.config.JwtConfig` for the arguments."""
        self.issuer = issuer
        self.audience = audience
        self.permissions_claim = permissions_claim
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True)
        else:
            with open(jwks) as f:
                self._keys = jwt.PyJWKSet.from_json(f.read())

    async def _key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self._keys.keys) == 1:
            return self._keys.keys[0]
        return self._keys[str(kid)]

    async def claims(self, token: str) -> Claims:
        """The claims of a valid token; Unauthenticated for any fault (signature, key id,
        expiry, issuer, audience, form)."""
        try:
            key = await self._key(token)
            payload = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub"]},
            )
        except (jwt.PyJWTError, KeyError) as e:
            log.info("JWT refused: %s", e)
            raise Unauthenticated() from None
        subject = payload["sub"]
        if not isinstance(subject, str):
            raise Unauthenticated()
        claims = Claims(subject=subject, auth_type="jwt", credential_id=str(payload.get("jti", "")))
        permissions = payload.get(self.permissions_claim)
        if isinstance(permissions, list):
            for permission in permissions:
                if not isinstance(permission, str) or not claims.grant_permission(permission):
                    log.warning("JWT of %s: ignored permission %r", subject, permission)
        return claims
