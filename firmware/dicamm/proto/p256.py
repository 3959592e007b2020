# ECDSA on NIST P-256 (secp256r1) with SHA-256, the OCMF default
# "ECDSA-secp256r1-SHA256", in plain integers: MicroPython has arbitrary
# precision ints on unix and esp32, CPython gives the same answers.
#
# Nonces are deterministic (RFC 6979 section 3.2, HMAC-SHA256), so a weak
# random source on the device can never leak the key; signatures and public
# keys are DER as OCMF wants (SM "application/x-der", SubjectPublicKeyInfo).
# Points are kept in Jacobian coordinates (X, Y, Z) = (X/Z^2, Y/Z^3): one
# inversion per scalar product, no tables (a few hundred bytes of heap).
#
# signing() is a generator that yields None every few bits of the scalar
# product, so that an asyncio caller can let other tasks run between the
# steps; its last value is (r, s). sign() drains it at once.
# Not constant-time (Python integers are not): the key is safe from remote
# timing only because signing happens at transaction edges the attacker does
# not choose to the microsecond; see docs/TRANSACTIONS.md.
import hashlib

from dicamm.proto import hmac256

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
# DER SubjectPublicKeyInfo header of an uncompressed P-256 key (RFC 5480):
# SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04|X|Y }
_SPKI = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_STEP_BITS = 16  # bits of the scalar between two yields


def _inv(a, m):
    # a^-1 mod m (m prime, a not 0 mod m), extended Euclid.
    a %= m
    x0, x1, r0, r1 = 0, 1, m, a
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        x0, x1 = x1, x0 - q * x1
    if r0 != 1:
        raise ValueError("not invertible")
    return x0 % m


def _double(pt):
    # 2*pt for a = -3 (dbl-2001-b); the point at infinity has Z = 0.
    x, y, z = pt
    if not y or not z:
        return (1, 1, 0)
    zz = z * z % P
    yy = y * y % P
    s = 4 * x * yy % P
    m = 3 * (x - zz) * (x + zz) % P
    x3 = (m * m - 2 * s) % P
    return (x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P)


def _add_affine(pt, ax, ay):
    # pt + (ax, ay) with the second point affine (Z = 1): mixed addition.
    x, y, z = pt
    if not z:
        return (ax, ay, 1)
    zz = z * z % P
    u2 = ax * zz % P
    s2 = ay * zz * z % P
    h = (u2 - x) % P
    r = (s2 - y) % P
    if not h:
        return _double(pt) if not r else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    v = x * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    return (x3, (r * (v - x3) - y * hhh) % P, z * h % P)


def _affine(pt):
    x, y, z = pt
    if not z:
        return None
    zi = _inv(z, P)
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


def _mul_steps(k, ax, ay, out):
    # k * (ax, ay), left to right over 256 bits (doubling infinity costs
    # nothing; MicroPython's int has no bit_length); yields every _STEP_BITS
    # bits, the affine result (or None for infinity) lands in out[0].
    acc = (1, 1, 0)
    n = 0
    for i in range(255, -1, -1):
        acc = _double(acc)
        if (k >> i) & 1:
            acc = _add_affine(acc, ax, ay)
        n += 1
        if n >= _STEP_BITS:
            n = 0
            yield
    out[0] = _affine(acc)


def _mul(k, pt):
    out = [None]
    for _ in _mul_steps(k, pt[0], pt[1], out):
        pass
    return out[0]


def on_curve(pt):
    x, y = pt
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x + 3 * x - B) % P == 0


def _i2b(v):
    return v.to_bytes(32, "big")


def _b2i(b):
    return int.from_bytes(b, "big")


def public_key(d):
    # (x, y) of the private key d (1 <= d < N).
    if not 0 < d < N:
        raise ValueError("private key out of range")
    return _mul(d, G)


def private_from_seed(seed):
    # A private key from 32+ random bytes (os.urandom at commissioning):
    # reduced into 1..N-1 (the bias of 2^256 mod N is below 2^-128).
    return _b2i(seed) % (N - 1) + 1


def _hmac(key, *parts):
    h = hmac256.HMAC(key)
    for p in parts:
        h.update(p)
    return h.digest()


def _nonces(d, h1):
    # RFC 6979 3.2: candidate k for key d and message hash h1 (qlen = hlen = 256).
    x = _i2b(d)
    e = _i2b(_b2i(h1) % N)  # bits2octets
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = _hmac(k, v, b"\x00", x, e)
    v = _hmac(k, v)
    k = _hmac(k, v, b"\x01", x, e)
    v = _hmac(k, v)
    while True:
        v = _hmac(k, v)
        yield _b2i(v)
        k = _hmac(k, v, b"\x00")
        v = _hmac(k, v)


def signing(d, msg, h1=None):
    # Generator: None while working, finally (r, s) over SHA-256(msg), or over
    # the digest h1 when given (a message hashed piece by piece).
    if h1 is None:
        h1 = hashlib.sha256(msg).digest()
    e = _b2i(h1)
    for k in _nonces(d, h1):
        if not 0 < k < N:
            continue
        out = [None]
        for _ in _mul_steps(k, G[0], G[1], out):
            yield None
        r = out[0][0] % N
        if not r:
            continue
        s = _inv(k, N) * (e + r * d) % N
        if s:
            yield (r, s)
            return


def sign(d, msg):
    for v in signing(d, msg):
        if v is not None:
            return v


def verify(pub, msg, r, s):
    # True when (r, s) is a valid signature of msg under the public key pub.
    if not (0 < r < N and 0 < s < N) or pub is None or not on_curve(pub):
        return False
    e = _b2i(hashlib.sha256(msg).digest())
    w = _inv(s, N)
    p1 = _mul(e * w % N, G)
    p2 = _mul(r * w % N, pub)
    if p1 is None:
        q = p2
    elif p2 is None:
        q = p1
    else:
        q = _affine(_add_affine((p1[0], p1[1], 1), p2[0], p2[1]))
    return q is not None and q[0] % N == r


# -- DER ----------------------------------------------------------------------

def _der_int(v):
    b = _i2b(v).lstrip(b"\x00") or b"\x00"
    if b[0] & 0x80:
        b = b"\x00" + b
    return b"\x02" + bytes([len(b)]) + b


def sig_der(r, s):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 2.2.3)
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def sig_from_der(der):
    # (r, s) from a DER signature; ValueError when it is not one.
    der = bytes(der)
    if len(der) < 8 or der[0] != 0x30 or der[1] != len(der) - 2:
        raise ValueError("not a DER signature")
    out = []
    pos = 2
    for _ in range(2):
        if der[pos] != 0x02:
            raise ValueError("not a DER integer")
        n = der[pos + 1]
        v = der[pos + 2:pos + 2 + n]
        if not 0 < n <= 33 or len(v) != n or (v[0] & 0x80):
            raise ValueError("bad DER integer")
        out.append(_b2i(v))
        pos += 2 + n
    if pos != len(der):
        raise ValueError("trailing bytes after DER signature")
    return out[0], out[1]


def pub_der(pub):
    return _SPKI + b"\x04" + _i2b(pub[0]) + _i2b(pub[1])


def pub_from_der(der):
    # (x, y) from a DER SubjectPublicKeyInfo (or a bare 04|X|Y point).
    der = bytes(der)
    if der.startswith(_SPKI):
        der = der[len(_SPKI):]
    if len(der) != 65 or der[0] != 4:
        raise ValueError("not an uncompressed P-256 public key")
    pub = (_b2i(der[1:33]), _b2i(der[33:]))
    if not on_curve(pub):
        raise ValueError("point is not on P-256")
    return pub
