# uuid4, hmac256 (RFC 4231 vectors) and pem (PEM -> DER, certificate fields).
# Dual test: runs on MicroPython and CPython.
import os
from binascii import a2b_base64, b2a_base64, hexlify, unhexlify

from dicamm.proto import hmac256, pem, uuid4

# RFC 4231 test cases 1-4, 6, 7: (key, data, HMAC-SHA256). Case 5 (truncation) left out.
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (unhexlify("0102030405060708090a0b0c0d0e0f10111213141516171819"), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than "
     b"block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


def test_hmac_rfc4231_vectors():
    for key, data, want in RFC4231:
        assert hmac256.hexdigest(key, data) == want, (key[:4], want)
        assert hexlify(hmac256.digest(key, data)).decode() == want


def test_hmac_equal():
    assert hmac256.equal(b"abc", b"abc")
    assert not hmac256.equal(b"abc", b"abd")
    assert not hmac256.equal(b"abc", b"ab")


def test_uuid4_format_version_variant():
    seen = set()
    for _ in range(50):
        u = uuid4.from_bytes(os.urandom(16))
        assert len(u) == 36 and u == u.lower(), u
        parts = u.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12], u
        assert u[14] == "4", u
        assert u[19] in "89ab", u
        assert uuid4.is_valid(u), u
        seen.add(u)
    assert len(seen) == 50


def test_uuid4_bits_from_fixed_bytes():
    assert uuid4.from_bytes(b"\xff" * 16) == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    assert uuid4.from_bytes(b"\x00" * 16) == "00000000-0000-4000-8000-000000000000"


def test_uuid4_is_valid_rejects():
    for bad in ("", "ffffffff-ffff-1fff-bfff-ffffffffffff", "ffffffff-ffff-4fff-cfff-ffffffffffff",
                "FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF", "ffffffffxffff-4fff-bfff-ffffffffffff", None):
        assert not uuid4.is_valid(bad), bad


GATEWAY_PEM = """-----BEGIN CERTIFICATE-----
MIIB5zCCAY6gAwIBAgIUBzpZPHP6wFLjM/TBta71VKYSwiQwCgYIKoZIzj0EAwIw
LzEUMBIGA1UECgwLRElDQU1NIHRlc3QxFzAVBgNVBAMMDkRJQ0FNTSB0ZXN0IENB
MB4XDTI2MTEyOTAzMjYyMFoXDTM2MTEyNjAzMjYyMFowKjEUMBIGA1UECgwLRElD
QU1NIHRlc3QxEjAQBgNVBAMMCTEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqGSM49
AwEHA0IABLfrfMOJ/gpR/kfiVxfD3UeAx8ybWgap4HF97QZNbUZiKG6EvoRJQNAY
RNov3b7uTFgdGWrx3sFa69ja0a6n4mujgYwwgYkwCQYDVR0TBAIwADALBgNVHQ8E
BAMCA4gwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYcEfwAAAYIJbG9j
YWxob3N0MB0GA1UdDgQWBBSwL99SDlSFJ2bIVNN4TaVBvMON7jAfBgNVHSMEGDAW
gBSUe+hpbOUEtCmjT8TtGjVcCAxpYjAKBggqhkjOPQQDAgNHADBEAiAlvso4dSE/
HQQuHE/VGVlQu5oXp0NtXl/bmpn3b/TylwIgF3tyUxFfyQFnc4cCodoHVX9ogqTY
QKts86nsoP+eezk=
-----END CERTIFICATE-----
"""


def _wrap(der, label):
    b64 = b2a_base64(der).replace(b"\n", b"")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN " + label + b"-----\r\n" + b"\r\n".join(lines) + b"\r\n-----END " + label + b"-----\r\n"


def test_pem_to_der_and_back():
    der = pem.to_der(GATEWAY_PEM)
    assert der[0] == 0x30 and len(der) == 491
    assert pem.to_der(_wrap(der, b"CERTIFICATE")) == der  # CRLF line ends
    assert pem.to_der(der) == der  # DER passes through
    assert pem.to_der(b"junk before\n" + GATEWAY_PEM.encode()) == der
    blob = bytes(range(200))
    assert pem.to_der(_wrap(blob, b"PRIVATE KEY")) == blob
    assert a2b_base64(b2a_base64(blob)) == blob


def test_cert_info():
    info = pem.cert_info(pem.to_der(GATEWAY_PEM))
    assert info == {"subject": "127.0.0.1", "issuer": "DICAMM test CA",
                    "not_before": "2026-11-29T03:26:20Z", "not_after": "2036-11-26T03:26:20Z"}, info


def test_cert_info_rejects_garbage():
    for bad in (b"", b"\x30\x05\x02\x01", b"\x30\x82\x10\x00abc"):
        try:
            pem.cert_info(bad)
            assert False, bad
        except ValueError:
            pass
