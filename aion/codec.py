"""End-to-end payload encryption: an AES-256-GCM `PayloadCodec` for workers and clients
(`from aion.codec import EncryptionCodec, KeyRing`), the codec `aion codec-server` serves.

Each payload is serialized whole (metadata and data), encrypted with the current key under a fresh
96-bit nonce and the key id as associated data, and replaced by a payload whose metadata says
`encoding: binary/encrypted` and `encryption-key-id: <id>` and whose data is the nonce followed by
the ciphertext. Decoding looks the key up by that id, so payloads written under retired keys still
decode while the key ring holds them; payloads of any other encoding pass through unchanged.

The key ring is JSON, in a file or an environment variable (see `KeyRing.from_env`):

    {"current": "2026-12", "keys": {"2026-11": "<base64 of 32 bytes>", "2026-12": "<...>"}}

This module imports neither the server nor an HTTP library: workers can import it cheaply.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_FILE_ENV = "AION_CODEC_KEY_FILE"
KEYS_ENV = "AION_CODEC_KEYS"

_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16


class KeyRingError(ValueError):
    """A key ring that cannot be used: missing, not JSON, or with a malformed key."""


class CodecError(ValueError):
    """A payload that claims to be encrypted but cannot be decrypted."""


@dataclass(frozen=True)
class KeyRing:
    """AES-256 keys by id: all of them decrypt, `current` encrypts."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyRingError(f"the current key {self.current!r} is not among the keys")
        for key_id, key in self.keys.items():
            if not key_id:
                raise KeyRingError("a key id is empty")
            if len(key) != _KEY_BYTES:
                raise KeyRingError(
                    f"key {key_id!r} has {len(key)} bytes; AES-256 needs {_KEY_BYTES}"
                )

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """Parses `{"current": ID, "keys": {ID: BASE64, ...}}`."""
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError as e:
            raise KeyRingError(f"the key ring is not JSON: {e}") from None
        if not isinstance(document, dict) or set(document) != {"current", "keys"}:
            raise KeyRingError('the key ring must be an object {"current": ID, "keys": {...}}')
        current, encoded = document["current"], document["keys"]
        if not isinstance(current, str) or not isinstance(encoded, dict) or not encoded:
            raise KeyRingError('"current" must be a key id and "keys" an object of keys')
        keys = {}
        for key_id, value in encoded.items():
            if not isinstance(value, str):
                raise KeyRingError(f"key {key_id!r} must be a base64 string")
            try:
                keys[key_id] = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise KeyRingError(f"key {key_id!r} is not valid base64") from None
        return cls(keys, current)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """Reads a key ring file (JSON, as `from_json`)."""
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise KeyRingError(f"cannot read the key file: {e}") from None
        return cls.from_json(text)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KeyRing:
        """The key ring in the file named by `AION_CODEC_KEY_FILE`, else the JSON in
        `AION_CODEC_KEYS`."""
        if path := environ.get(KEY_FILE_ENV):
            return cls.from_file(path)
        if text := environ.get(KEYS_ENV):
            return cls.from_json(text)
        raise KeyRingError(f"no key ring: set {KEY_FILE_ENV} or {KEYS_ENV}")


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM payload encryption with key ids in the metadata (see the module docstring)."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encrypt(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decrypt(payloads)

    def encrypt(self, payloads: Sequence[Payload]) -> list[Payload]:
        """`encode`, synchronously."""
        key_id = self._keys.current
        cipher = self._ciphers[key_id]
        encrypted = []
        for payload in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            encrypted.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: key_id.encode()},
                    data=nonce + sealed,
                )
            )
        return encrypted

    def decrypt(self, payloads: Sequence[Payload]) -> list[Payload]:
        """`decode`, synchronously; raises `CodecError` for a payload it cannot decrypt."""
        return [self._decrypt_one(i, payload) for i, payload in enumerate(payloads)]

    def _decrypt_one(self, index: int, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID)
        if raw_id is None:
            raise CodecError(f"payload {index}: encrypted but has no {KEY_ID} metadata")
        key_id = raw_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(f"payload {index}: unknown encryption key {key_id!r}")
        if len(payload.data) < _NONCE_BYTES + _TAG_BYTES:
            raise CodecError(f"payload {index}: encrypted data too short")
        nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, raw_id))
        except InvalidTag:
            raise CodecError(
                f"payload {index}: cannot decrypt with key {key_id!r} (wrong key or altered data)"
            ) from None
        except DecodeError:
            raise CodecError(f"payload {index}: the decrypted bytes are not a payload") from None
