"""FarmHash `Fingerprint32` (the farmhashmk 32-bit hash), which Temporal uses to seed schedule
jitter and to pick the workflows a ramping worker deployment version gets."""

from __future__ import annotations

MASK = 0xFFFFFFFF
C1 = 0xCC9E2D51
C2 = 0x1B873593


def _rotr(value: int, shift: int) -> int:
    return ((value >> shift) | (value << (32 - shift))) & MASK


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK
    return h ^ (h >> 16)


def _mur(a: int, h: int) -> int:
    a = (_rotr((a * C1) & MASK, 17) * C2) & MASK
    h = _rotr(h ^ a, 19)
    return (h * 5 + 0xE6546B64) & MASK


def _word(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _len0to4(data: bytes) -> int:
    b, c = 0, 9
    for byte in data:
        signed = byte - 256 if byte > 127 else byte
        b = (b * C1 + signed) & MASK
        c ^= b
    return _fmix(_mur(b, _mur(len(data), c)))


def _len5to12(data: bytes) -> int:
    n = len(data)
    a = (n + _word(data, 0)) & MASK
    b = (n * 5 + _word(data, n - 4)) & MASK
    c = (9 + _word(data, (n >> 1) & 4)) & MASK
    d = n * 5
    return _fmix(_mur(c, _mur(b, _mur(a, d))))


def _len13to24(data: bytes) -> int:
    n = len(data)
    a = _word(data, (n >> 1) - 4)
    b = _word(data, 4)
    c = _word(data, n - 8)
    d = _word(data, n >> 1)
    e = _word(data, 0)
    f = _word(data, n - 4)
    h = (d * C1 + n) & MASK
    a = (_rotr(a, 12) + f) & MASK
    h = (_mur(c, h) + a) & MASK
    a = (_rotr(a, 3) + c) & MASK
    h = (_mur(e, h) + a) & MASK
    a = (_rotr((a + f) & MASK, 12) + d) & MASK
    h = (_mur(b, h) + a) & MASK
    return _fmix(h)


def _scramble(word: int) -> int:
    return (_rotr((word * C1) & MASK, 17) * C2) & MASK


def _step(h: int, word: int) -> int:
    return (_rotr(h ^ word, 19) * 5 + 0xE6546B64) & MASK


def fingerprint32(data: bytes) -> int:
    """The 32-bit fingerprint of `data` (stable across platforms and versions)."""
    n = len(data)
    if n <= 4:
        return _len0to4(data)
    if n <= 12:
        return _len5to12(data)
    if n <= 24:
        return _len13to24(data)
    h = _step(_step(n, _scramble(_word(data, n - 4))), _scramble(_word(data, n - 16)))
    g = (C1 * n) & MASK
    f = g
    g = _step(_step(g, _scramble(_word(data, n - 8))), _scramble(_word(data, n - 12)))
    f = (_rotr((f + _scramble(_word(data, n - 20))) & MASK, 19) + 113) & MASK
    at = 0
    while n - at > 20:
        a, b, c, d, e = (_word(data, at + 4 * i) for i in range(5))
        h = (_mur(d, (h + a) & MASK) + e) & MASK
        g = (_mur(c, (g + b) & MASK) + a) & MASK
        f = (_mur((b + e * C1) & MASK, (f + c) & MASK) + d) & MASK
        f = (f + g) & MASK
        g = (g + f) & MASK
        at += 20
    g = (_rotr((_rotr(g, 11) * C1) & MASK, 17) * C1) & MASK
    f = (_rotr((_rotr(f, 11) * C1) & MASK, 17) * C1) & MASK
    h = (_rotr((h + g) & MASK, 19) * 5 + 0xE6546B64) & MASK
    h = (_rotr(h, 17) * C1) & MASK
    h = (_rotr((h + f) & MASK, 19) * 5 + 0xE6546B64) & MASK
    return (_rotr(h, 17) * C1) & MASK
