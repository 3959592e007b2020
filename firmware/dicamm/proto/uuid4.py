# RFC 4122 version 4 UUIDs (random), lower-case text. Pure: the caller hands in
# the 16 random bytes (os.urandom(16) on the device, fixed bytes in tests).
from binascii import hexlify


def from_bytes(b):
    # Set the version (4) and variant (10xx) bits on 16 random bytes.
    b = bytearray(b)
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = hexlify(b).decode()
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def is_valid(s):
    # True for a lower-case version 4 UUID with the RFC 4122 variant.
    if not isinstance(s, str) or len(s) != 36:
        return False
    for i in range(36):
        c = s[i]
        if i in (8, 13, 18, 23):
            if c != "-":
                return False
        elif c not in "0123456789abcdef":
            return False
    return s[14] == "4" and s[19] in "89ab"
