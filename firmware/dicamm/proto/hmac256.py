# HMAC-SHA256 (RFC 2104) on hashlib.sha256; MicroPython has no hmac module.
from micropython import const
import hashlib

_BLOCK = const(64)


def _xor(key, pad):
    out = bytearray(_BLOCK)
    for i in range(_BLOCK):
        out[i] = key[i] ^ pad
    return out


class HMAC:
    # Incremental: update() with the message in pieces, then digest(); a long
    # message need not be in RAM in one piece.
    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = bytes(key) + bytes(_BLOCK - len(key))
        self._inner = hashlib.sha256(_xor(key, 0x36))
        self._outer_key = _xor(key, 0x5C)

    def update(self, msg):
        self._inner.update(msg)

    def digest(self):
        outer = hashlib.sha256(self._outer_key)
        outer.update(self._inner.digest())
        return outer.digest()


def digest(key, msg):
    h = HMAC(key)
    h.update(msg)
    return h.digest()


def hexdigest(key, msg):
    from binascii import hexlify
    return hexlify(digest(key, msg)).decode()


def equal(a, b):
    # Compare without stopping at the first difference.
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0
