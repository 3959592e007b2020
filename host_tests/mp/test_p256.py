# ECDSA P-256 / SHA-256 (proto/p256.py): the deterministic nonces and
# signatures of RFC 6979 appendix A.2.5, DER encoding (RFC 3279 2.2.3,
# RFC 5480), and bad input. Dual test: runs on MicroPython and CPython.
from binascii import hexlify, unhexlify

from dicamm.proto import p256

# RFC 6979 A.2.5: the key pair of the P-256 examples.
X = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
# RFC 6979 A.2.5, "With SHA-256": message, k, r, s.
VECTORS = [
    (b"sample",
     0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
     0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
     0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8),
    (b"test",
     0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
     0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
     0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083),
]


def test_public_key_rfc6979():
    assert p256.public_key(X) == (UX, UY)
    assert p256.on_curve((UX, UY))
    assert p256.on_curve(p256.G)


def test_nonce_rfc6979():
    import hashlib
    for msg, k, _, _ in VECTORS:
        got = next(p256._nonces(X, hashlib.sha256(msg).digest()))
        assert got == k, (msg, hex(got))


def test_sign_rfc6979():
    for msg, _, r, s in VECTORS:
        assert p256.sign(X, msg) == (r, s), msg


def test_signing_yields_then_gives_signature():
    steps = list(p256.signing(X, b"sample"))
    assert steps[-1] == VECTORS[0][2:]
    assert all(v is None for v in steps[:-1]) and len(steps) >= 8, len(steps)


def test_verify_good_and_bad():
    pub = (UX, UY)
    for msg, _, r, s in VECTORS:
        assert p256.verify(pub, msg, r, s)
        assert not p256.verify(pub, msg + b"x", r, s)
        assert not p256.verify(pub, msg, r, (s + 1) % p256.N)
        assert not p256.verify(pub, msg, 0, s)
        assert not p256.verify(pub, msg, r, p256.N)
    other = p256.public_key(12345)
    assert not p256.verify(other, b"sample", VECTORS[0][2], VECTORS[0][3])
    assert not p256.verify((UX, UY + 1), b"sample", VECTORS[0][2], VECTORS[0][3])


def test_der_signature_roundtrip():
    for _, _, r, s in VECTORS:
        der = p256.sig_der(r, s)
        assert p256.sig_from_der(der) == (r, s)
    # r has its top bit set: a 0x00 pad byte; s of the "test" vector starts
    # with 0x01: no pad, 32 bytes
    der = p256.sig_der(VECTORS[1][2], VECTORS[1][3])
    assert der[:5] == b"\x30\x45\x02\x21\x00" and der[37:39] == b"\x02\x20", hexlify(der)
    small = p256.sig_der(1, 0x7F)
    assert small == unhexlify("300602010102017f"), hexlify(small)


def test_der_signature_bad_input():
    good = p256.sig_der(VECTORS[0][2], VECTORS[0][3])
    bad = [b"", b"\x30\x00", good[:-1], good + b"\x00", b"\x31" + good[1:],
           good[:2] + b"\x03" + good[3:], unhexlify("3006020181020101")]
    for b in bad:
        try:
            p256.sig_from_der(b)
        except (ValueError, IndexError):
            continue
        raise AssertionError("accepted %s" % hexlify(b))


def test_public_key_der():
    der = p256.pub_der((UX, UY))
    assert len(der) == 91 and hexlify(der[:2]) == b"3059"
    assert p256.pub_from_der(der) == (UX, UY)
    assert p256.pub_from_der(der[26:]) == (UX, UY)
    for b in (der[:-1], der[:26] + b"\x02" + der[27:], der[:-1] + bytes([der[-1] ^ 1])):
        try:
            p256.pub_from_der(b)
        except ValueError:
            continue
        raise AssertionError("accepted a bad key")


def test_private_key_range():
    for bad in (0, p256.N, -1):
        try:
            p256.public_key(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %d" % bad)
    assert p256.private_from_seed(b"\x00" * 32) == 1
    assert 0 < p256.private_from_seed(b"\xff" * 32) < p256.N
