"""TLS on every port of a server from one set of certificate files (`[tls]`), read again when
they change: the gRPC port through grpc's certificate fetcher, the HTTP listeners (HTTP API, Web
UI, metrics, codec server) through the SSL context's server-name callback. Both run at the start
of each new connection's handshake, so a rotated certificate serves the next connection, with no
restart and no timer."""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import grpc

from aion.auth.config import TlsConfig

log = logging.getLogger("aion.tls")

FileStamp = tuple[int, int, int]  # (inode, size, modification time in ns) of a file


@dataclass(frozen=True)
class _Loaded:
    """One reading of the files: their bytes, and the SSL context made of them."""

    cert: bytes
    key: bytes
    client_ca: bytes | None
    context: ssl.SSLContext


class ServerCertificates:
    """The server certificate, its key and the client CA of a `TlsConfig`, reloaded when one of
    the files changes. A change that cannot be loaded (a key that does not match the
    certificate, a file half written) is logged and the certificate in use is kept."""

    def __init__(self, config: TlsConfig) -> None:
        """Reads the files; OSError or ssl.SSLError when they cannot be."""
        self.config = config
        self._lock = threading.Lock()  # grpc's fetcher runs on grpc's threads
        self._stamp = self._stamps()
        self._refused: tuple[FileStamp, ...] | None = None
        self._loaded = self._load()
        self.generation = 0
        """Bumped at each reload."""

    @property
    def client_auth(self) -> bool:
        """Whether every client must show a certificate signed by the client CA."""
        return self.config.client_ca_file is not None

    def _paths(self) -> list[str]:
        c = self.config
        return [c.cert_file, c.key_file, *([c.client_ca_file] if c.client_ca_file else [])]

    def _stamps(self) -> tuple[FileStamp, ...]:
        stamps = []
        for path in self._paths():
            st = os.stat(path)
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)

    def _load(self) -> _Loaded:
        contents = []
        for path in self._paths():
            with open(path, "rb") as f:
                contents.append(f.read())
        cert, key, client_ca = contents[0], contents[1], contents[2] if len(contents) > 2 else None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.config.cert_file, self.config.key_file)
        if client_ca is not None:
            context.load_verify_locations(cadata=client_ca.decode())
            context.verify_mode = ssl.CERT_REQUIRED
        context.sni_callback = self._on_handshake
        return _Loaded(cert, key, client_ca, context)

    def refresh(self) -> _Loaded:
        """The files' current reading: read again if they changed since the last one."""
        with self._lock:
            try:
                stamp = self._stamps()
                if stamp in (self._stamp, self._refused):
                    return self._loaded
                self._loaded = self._load()
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                self._refused = self._stamps_or_none()
                log.warning("TLS certificate files not reloaded, the ones in use kept: %s", e)
                return self._loaded
            self._stamp = stamp
            self.generation += 1
            log.info("TLS certificate files reloaded (%s)", self.config.cert_file)
            return self._loaded

    def _stamps_or_none(self) -> tuple[FileStamp, ...] | None:
        try:
            return self._stamps()
        except OSError:  # a file missing half-way through a rotation: try again next time
            return None

    # ---- gRPC ---------------------------------------------------------------------------
    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials of the gRPC port, asking for the files' changes at each connection."""
        served = [self.generation]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            loaded = self.refresh()
            if served[0] == self.generation:
                return None  # grpc keeps its current context
            served[0] = self.generation
            return _grpc_configuration(loaded)

        return grpc.dynamic_ssl_server_credentials(
            _grpc_configuration(self._loaded), fetch, require_client_authentication=self.client_auth
        )

    def channel_credentials(self, ca_file: str | None) -> grpc.ChannelCredentials:
        """Credentials for calling another process of the cluster: this server's certificate
        as the client certificate, the other's checked against `ca_file` (None: the system's
        roots)."""
        loaded = self.refresh()
        root = None
        if ca_file:
            with open(ca_file, "rb") as f:
                root = f.read()
        return grpc.ssl_channel_credentials(root, loaded.key, loaded.cert)

    # ---- HTTP listeners -----------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        """The context of an HTTP listener; each handshake switches to the files' current one."""
        return self._loaded.context

    def _on_handshake(self, connection: Any, server_name: str | None, context: Any) -> None:
        """Called by OpenSSL on every ClientHello (with or without a server name)."""
        current = self.refresh().context
        if connection.context is not current:
            connection.context = current


def _grpc_configuration(loaded: _Loaded) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(loaded.key, loaded.cert)], root_certificates=loaded.client_ca
    )


def certificate_names(transport: Any) -> dict[str, list[bytes]]:
    """The verified client certificate of an HTTP connection as grpc's auth context names it:
    its subject common name and subject alternative names (empty without one)."""
    peercert = transport.get_extra_info("peercert") if transport is not None else None
    if not peercert:
        return {}
    common_names = [
        value.encode()
        for rdn in peercert.get("subject", ())
        for key, value in rdn
        if key == "commonName"
    ]
    alternative = [value.encode() for _, value in peercert.get("subjectAltName", ())]
    return {"x509_common_name": common_names, "x509_subject_alternative_name": alternative}
