"""What the auth tests share: the expected role matrix (written out here, independently of
aion.auth), certificates and JWTs made with `cryptography` and PyJWT."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from aion.auth.methods import RULES, Scope
from aion.auth.roles import Access
from tests.servers import ROOT


def aion_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`aion ARGS...` run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "aion", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def created_key(result: subprocess.CompletedProcess[str]) -> str:
    """The key an `aion apikey create` printed."""
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


NAMESPACE = "default"
OTHER = "other"

# Callers: name -> (namespace, role) of its one permission; None: no credentials.
CALLERS: dict[str, tuple[str, str] | None] = {
    "anonymous": None,
    "reader": (NAMESPACE, "reader"),
    "worker": (NAMESPACE, "worker"),
    "writer": (NAMESPACE, "writer"),
    "admin": (NAMESPACE, "admin"),
    "other-admin": (OTHER, "admin"),
    "system-admin": ("temporal-system", "admin"),
}
# What each role may do, as docs/security.md states it.
MAY = {
    "reader": {Access.READ},
    "worker": {Access.READ, Access.WORKER},
    "writer": {Access.READ, Access.WORKER, Access.WRITE},
    "admin": set(Access),
}
HEALTH = {
    "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
    "/grpc.health.v1.Health/Check",
}


def expected(caller: str, method: str, namespace: str = NAMESPACE) -> str:
    """`allow`, `unauthenticated` or `denied`."""
    if method in HEALTH:
        return "allow"
    held = CALLERS[caller]
    if held is None:
        return "unauthenticated"
    rule = RULES[method]
    held_namespace, role = held
    if held_namespace == "temporal-system" or (
        rule.scope is Scope.NAMESPACE and held_namespace == namespace
    ):
        return "allow" if rule.access in MAY[role] else "denied"
    return "denied"


@dataclass
class Pki:
    """A CA and certificates it signed, as PEM files in a directory."""

    directory: Path
    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate

    @classmethod
    def create(cls, directory: Path) -> Pki:
        key = _rsa()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Aion test CA")])
        cert = (
            _builder(name, name, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        pki = cls(directory, key, cert)
        (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pki

    @property
    def ca_path(self) -> str:
        return str(self.directory / "ca.pem")

    def issue(self, name: str, server: bool = False) -> tuple[str, str]:
        """(certificate path, key path) of a certificate for `name` (its CN and a DNS SAN; a
        server's also 127.0.0.1)."""
        key = _rsa()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        sans: list[x509.GeneralName] = [x509.DNSName(name)]
        if server:
            sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            _builder(subject, self.ca_cert.subject, key)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_path), str(key_path)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )


ISSUER = "https://issuer.test"
AUDIENCE = "aion-test"


@dataclass
class TokenIssuer:
    """Signs JWTs with an RSA key published (with its key id) in a JWKS file."""

    key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def create(cls, jwks_path: Path, kid: str = "key-1") -> TokenIssuer:
        issuer = cls(_rsa(), kid)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.key.public_key()))
        public.update(kid=kid, use="sig", alg="RS256")
        jwks_path.write_text(json.dumps({"keys": [public]}))
        return issuer

    def token(self, permissions: list[str], **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": "jwt-user",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "permissions": permissions,
            **overrides,
        }
        kid = claims.pop("kid", self.kid)
        key = claims.pop("key", self.key)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    @staticmethod
    def other_key() -> rsa.RSAPrivateKey:
        return _rsa()
