"""The security settings of a server (`[auth]` and `[tls]` in the config file). The parts
that check credentials are imported by `build`, only when auth is on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aion.common.durations import parse_duration

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
    audit_retention: str | None = None
    """How long audit events are kept (a Go duration or days: `2160h`, `90d`); None: for ever."""


@dataclass
class TlsConfig:
    """TLS on every port of the server (`aion.auth.tls`); with a client CA, every client must
    show a certificate it signed."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    peer_ca_file: str | None = None
    """The CA of the other processes' certificates, checked when calling them (default: the
    client CA, else the system's roots)."""


@dataclass
class Security:
    """What a server with auth on runs: the guard and the parts it is made of."""

    guard: Guard
    api_keys: ApiKeys | None
    audit: AuditLog | None


def build(config: AuthConfig, store: Store | None) -> Security:
    """What `config` asks for; API keys and the audit log need a store (None: neither)."""
    from aion.auth.apikeys import ApiKeys
    from aion.auth.audit import AuditLog
    from aion.auth.capabilities import BiscuitVerifier
    from aion.auth.guard import DefaultClaimMapper, Guard
    from aion.auth.plugin import Authorizer, ClaimMapper, DefaultAuthorizer, load_plugin
    from aion.auth.tokens import JwtVerifier

    api_keys = ApiKeys(store) if config.api_keys and store is not None else None
    retention = None if config.audit_retention is None else duration_ns(config.audit_retention)
    audit = AuditLog(store, retention) if config.audit and store is not None else None
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
    "audit_retention": str,
}
_JWT_KEYS = ("jwks", "issuer", "audience", "permissions_claim")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "peer_ca_file")


def duration_ns(text: str) -> int:
    """A Go duration, or whole days (`30d`), in nanoseconds."""
    if text.endswith("d") and text[:-1].isdigit():
        return int(text[:-1]) * 86_400 * 10**9
    return parse_duration(text)


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
    retention = table.get("audit_retention")
    if retention is not None:
        duration_ns(retention)  # ValueError (Go's text) when it is not a duration
    return AuthConfig(
        api_keys=table.get("api_keys", True),
        jwt=jwt_config,
        biscuit_root_key=table.get("biscuit_root_key"),
        tls_permissions=permissions,
        claim_mapper=table.get("claim_mapper"),
        authorizer=table.get("authorizer"),
        audit=table.get("audit", True),
        audit_retention=retention,
    )


def tls_from_table(table: dict[str, Any]) -> TlsConfig:
    """The `[tls]` table of a config file; ValueError names what is wrong."""
    _check(table, "tls", dict.fromkeys(_TLS_KEYS, str))
    if "cert_file" not in table or "key_file" not in table:
        raise ValueError("tls needs cert_file and key_file")
    return TlsConfig(**table)
