# A signed release's manifest (proto/release.py, issue 19): the signature over the
# manifest's exact bytes (ECDSA P-256/SHA-256, DER as RFC 3279 2.2.3), then the
# fields, the board and the version, each refusal in its own words; a file's
# bytes checked chunk by chunk against size and SHA-256. Dual test (MicroPython
# and CPython); the host-signed releases of tools/release.py are checked by
# host_tests/test_release.py.
import hashlib
import json

from dicamm.errors import UpdateError
from dicamm.proto import p256, release

KEY = p256.private_from_seed(b"test release key")
OTHER = p256.private_from_seed(b"someone else's key")
PUB = p256.public_key(KEY)
BODY = b"print('new firmware')\n"


def _hex(b):
    return "".join("%02x" % x for x in b)


def manifest(**over):
    m = {"format": "dicamm-release/1", "version": "0.2.0", "board": "unix", "kind": "mpy",
         "files": [{"path": "lib/dicamm/x.mpy", "size": len(BODY), "sha256": _hex(hashlib.sha256(BODY).digest())}]}
    m.update(over)
    return json.dumps(m).encode()


def signed(data, key=KEY):
    r, s = p256.sign(key, data)
    return data, p256.sig_der(r, s)


def refusal(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except UpdateError as e:
        return str(e)
    raise AssertionError("accepted: %r" % (args,))


def test_a_good_release_is_accepted():
    data, sig = signed(manifest())
    m = release.check(data, sig, PUB, "unix", "0.1.0")
    assert m["version"] == "0.2.0" and release.total_bytes(m) == len(BODY)


def test_the_public_key_of_the_config_is_der_hex():
    assert release.public_key(_hex(p256.pub_der(PUB))) == PUB
    assert refusal(release.public_key, "zz").startswith("release key:")
    assert refusal(release.public_key, "04" + "00" * 64).startswith("release key:")


def test_signature_refusals():
    data, sig = signed(manifest())
    cases = [
        ("a changed byte", data.replace(b"0.2.0", b"0.9.0"), sig, "bad signature: manifest not signed"),
        ("another key", data, signed(data, OTHER)[1], "bad signature: manifest not signed"),
        ("no DER", data, b"\x30\x02\x02\x00", "bad signature: manifest.sig is not"),
        ("empty", data, b"", "bad signature: manifest.sig is not"),
        ("a huge manifest", b" " * (release.MAX_MANIFEST_BYTES + 1), sig, "malformed: manifest of"),
    ]
    for name, d, s, want in cases:
        got = refusal(release.check, d, s, PUB, "unix", "0.1.0")
        assert got.startswith(want), (name, got)


def test_board_and_version_refusals():
    cases = [
        ("wrong board", manifest(board="esp32s3_devkitc"), "0.1.0", False, "wrong board: release for esp32s3_devkitc"),
        ("downgrade", manifest(version="0.0.9"), "0.1.0", False, "downgrade: 0.0.9 is older than 0.1.0"),
        ("same version", manifest(version="0.1.0"), "0.1.0", False, "already installed"),
        ("10 > 9, not as text", manifest(version="0.9.0"), "0.10.0", False, "downgrade"),
    ]
    for name, data, current, down, want in cases:
        data, sig = signed(data)
        got = refusal(release.check, data, sig, PUB, "unix", current, down)
        assert got.startswith(want), (name, got)
    data, sig = signed(manifest(version="0.0.9"))
    assert release.check(data, sig, PUB, "unix", "0.1.0", allow_downgrade=True)["version"] == "0.0.9"


def test_malformed_manifests_are_refused_after_the_signature():
    good = {"path": "lib/a.mpy", "size": 1, "sha256": "0" * 64}
    cases = [
        ("not JSON", b"{nope", "malformed: manifest.json is not JSON"),
        ("other format", manifest(format="dicamm-release/9"), "malformed: not a dicamm-release/1"),
        ("version", manifest(version="1.2"), "malformed: version"),
        ("version text", manifest(version="1.2.x"), "malformed: version"),
        ("kind", manifest(kind="tar"), "malformed: board or kind"),
        ("no files", manifest(files=[]), "malformed: files must list"),
        ("absolute path", manifest(files=[dict(good, path="/boot.py")]), "malformed: file path"),
        ("parent path", manifest(files=[dict(good, path="lib/../../config.json")]), "malformed: file path"),
        ("empty part", manifest(files=[dict(good, path="lib//a.mpy")]), "malformed: file path"),
        ("negative size", manifest(files=[dict(good, size=-1)]), "malformed: size"),
        ("size as text", manifest(files=[dict(good, size="1")]), "malformed: size"),
        ("short sha", manifest(files=[dict(good, sha256="ab")]), "malformed: sha256"),
        ("upper-case sha", manifest(files=[dict(good, sha256="A" * 64)]), "malformed: sha256"),
        ("twice", manifest(files=[good, good]), "malformed: lib/a.mpy listed twice"),
        ("image of two", manifest(kind="image", files=[good, dict(good, path="b.bin")]), "malformed: an image"),
    ]
    for name, data, want in cases:
        data, sig = signed(data)
        got = refusal(release.check, data, sig, PUB, "unix", "0.1.0")
        assert got.startswith(want), (name, got)


def test_a_file_is_checked_chunk_by_chunk():
    entry = json.loads(manifest())["files"][0]
    ok = release.FileCheck(entry)
    for i in range(0, len(BODY), 5):
        ok.feed(BODY[i:i + 5])
    ok.finish()
    cases = [
        ("truncated", BODY[:-1], "truncated: lib/dicamm/x.mpy has %d of %d bytes" % (len(BODY) - 1, len(BODY))),
        ("changed", BODY[:-1] + b"?", "sha256 mismatch: lib/dicamm/x.mpy"),
        ("too long", BODY + b"!", "too long: lib/dicamm/x.mpy"),
    ]
    for name, body, want in cases:
        fc = release.FileCheck(entry)
        got = refusal(lambda: (fc.feed(body), fc.finish()))
        assert got.startswith(want), (name, got)


def test_the_key_as_the_installer_sets_it_is_the_key_the_check_uses():
    from dicamm.proto import schema
    text = schema.check("update.pubkey", _hex(p256.pub_der(PUB)).upper())
    assert release.public_key(text) == PUB
    for bad in ("xyz", "abc", "ab" * 92):
        try:
            schema.check("update.pubkey", bad)
        except Exception as e:
            assert "update.pubkey" in str(e), e
        else:
            raise AssertionError(bad)
