"""The security settings of a server (`[auth]` and `[tls]` in the config file). The parts
that check credentials are imported by `build`, only when auth is on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from aion.auth.apikeys import ApiKeys
    from aion.auth.audit import AuditLog
    from aion.auth.guard import Guard
    from aion.persistence import Store


@dataclass
class JwtConfig:
    jwks: str
    """A JWKS file's path, or an `https://` (or `http://`) URL serving one."""
    issuer: str | None = None
    """The `iss` a token must have; None: not checked."""
    audience: str | None = None
    """The `aud` a token must have; None: a token with an `aud` is refused, as PyJWT does."""
    permissions_claim: str = "permissions"


@dataclass
class AuthConfig:
    """Auth is on when a server has one of these (`ServerConfig.auth`)."""

    api_keys: bool = True
    """Accept the API keys Aion issues (`aion apikey create`)."""
    jwt: JwtConfig | None = None
    """Accept JWTs signed by these keys."""
    biscuit_root_key: str | None = None
    """Accept biscuits signed by this root key (a PEM file, or the Ed25519 key in hex)."""
    tls_permissions: dict[str, list[str]] = field(default_factory=dict)
    """A verified client certificate's subject common name or SAN to its permissions
    (`<namespace>:<role>`)."""
    claim_mapper: str | None = None
    """A plug-in `ClaimMapper` class (`module:Class`) instead of Aion's."""
    authorizer: str | None = None
    """A plug-in `Authorizer` class (`module:Class`) instead of Aion's roles."""
    audit: bool = True
    """Keep the audit log."""


@dataclass
class TlsConfig:
    """TLS on the gRPC port; with a client CA, every client must show a certificate it signed."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        with open(self.cert_file, "rb") as f:
            cert = f.read()
        with open(self.key_file, "rb") as f:
            key = f.read()
        ca = None
        if self.client_ca_file:
            with open(self.client_ca_file, "rb") as f:
                ca = f.read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


@dataclass
class Security:
    """What a server with auth on runs: the guard and the parts it is made of."""

    guard: Guard
    api_keys: ApiKeys | None
    audit: AuditLog | None


def build(config: AuthConfig, store: Store) -> Security:
    from aion.auth.apikeys import ApiKeys
    from aion.auth.audit import AuditLog
    from aion.auth.capabilities import BiscuitVerifier
    from aion.auth.guard import DefaultClaimMapper, Guard
    from aion.auth.plugin import Authorizer, ClaimMapper, DefaultAuthorizer, load_plugin
    from aion.auth.tokens import JwtVerifier

    api_keys = ApiKeys(store) if config.api_keys else None
    audit = AuditLog(store) if config.audit else None
    mapper: ClaimMapper
    if config.claim_mapper:
        mapper = load_plugin(config.claim_mapper)
    else:
        jwt = None
        if config.jwt is not None:
            c = config.jwt
            jwt = JwtVerifier(c.jwks, c.issuer, c.audience, c.permissions_claim)
        biscuits = BiscuitVerifier(config.biscuit_root_key) if config.biscuit_root_key else None
        mapper = DefaultClaimMapper(api_keys, jwt, config.tls_permissions, biscuits)
    authorizer: Authorizer = (
        load_plugin(config.authorizer) if config.authorizer else DefaultAuthorizer()
    )
    return Security(Guard(mapper, authorizer, audit), api_keys, audit)


_AUTH_KEYS = {
    "api_keys": bool,
    "audit": bool,
    "claim_mapper": str,
    "authorizer": str,
    "jwt": dict,
    "biscuit_root_key": str,
    "tls_permissions": dict,
}
_JWT_KEYS = ("jwks", "issuer", "audience", "permissions_claim")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file")


def _check(table: dict[str, Any], name: str, keys: dict[str, type]) -> None:
    for key, value in table.items():
        if key not in keys:
            raise ValueError(f"unknown key {name}.{key} (known keys: {', '.join(keys)})")
        if not isinstance(value, keys[key]):
            raise ValueError(f"{name}.{key} must be a {keys[key].__name__}")


def auth_from_table(table: dict[str, Any]) -> AuthConfig:
    """The `[auth]` table of a config file; ValueError names what is wrong."""
    _check(table, "auth", _AUTH_KEYS)
    jwt = table.get("jwt")
    jwt_config = None
    if jwt is not None:
        _check(jwt, "auth.jwt", dict.fromkeys(_JWT_KEYS, str))
        if "jwks" not in jwt:
            raise ValueError("auth.jwt needs jwks (a JWKS file's path or URL)")
        jwt_config = JwtConfig(**jwt)
    permissions = table.get("tls_permissions", {})
    for name, granted in permissions.items():
        if not isinstance(granted, list) or not all(isinstance(p, str) for p in granted):
            raise ValueError(f"auth.tls_permissions.{name} must be a list of NAMESPACE:ROLE")
    return AuthConfig(
        api_keys=table.get("api_keys", True),
        jwt=jwt_config,
        biscuit_root_key=table.get("biscuit_root_key"),
        tls_permissions=permissions,
        claim_mapper=table.get("claim_mapper"),
        authorizer=table.get("authorizer"),
        audit=table.get("audit", True),
    )


def tls_from_table(table: dict[str, Any]) -> TlsConfig:
    """The `[tls]` table of a config file; ValueError names what is wrong."""
    _check(table, "tls", dict.fromkeys(_TLS_KEYS, str))
    if "cert_file" not in table or "key_file" not in table:
        raise ValueError("tls needs cert_file and key_file")
    return TlsConfig(**table)
