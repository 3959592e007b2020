# Signed releases (issue 19, item 1): tools/release.py builds and signs a release
# with the pinned `cryptography` package, and the device's own checks
# (proto/release.py, run on the MicroPython unix port) accept it and refuse a
# changed manifest, another key, another board, a downgrade, a changed or cut
# file. Two implementations of ECDSA P-256/SHA-256 (FIPS 186-4 6.4) meet here:
# OpenSSL's, through cryptography, signs; the firmware's proto/p256 verifies.
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import MICROPYTHON, ROOT, TOOLS

RELEASE = os.path.join(TOOLS, "release.py")

# Runs on MicroPython: the release in sys.argv-less form, paths from the env file
_CHECK = r"""
import json
from dicamm.errors import UpdateError
from dicamm.proto import release
args = json.loads(open(%r).read())
d = args["dir"]
try:
    pub = release.public_key(args["pubkey"])
    m = release.check(open(d + "/manifest.json", "rb").read(), open(d + "/manifest.sig", "rb").read(),
                      pub, args["board"], args["current"])
    buf = bytearray(512)
    for e in m["files"]:
        fc = release.FileCheck(e)
        with open(d + "/files/" + e["path"], "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                fc.feed(memoryview(buf)[:n])
        fc.finish()
    print("OK", m["version"], len(m["files"]), release.total_bytes(m))
except UpdateError as e:
    print("REFUSED", e)
"""


def tool(*args):
    r = subprocess.run([sys.executable, RELEASE] + list(args), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def device_check(tmp_path, rel_dir, pubkey, board="unix", current="0.1.0"):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"dir": str(rel_dir), "pubkey": pubkey, "board": board, "current": current}))
    script = tmp_path / "check.py"
    script.write_text(_CHECK % str(args))
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "firmware"))
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=256k", str(script)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def signed_release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    key = str(tmp / "release-key.pem")
    rc, out = tool("keygen", "--out", key)
    assert rc == 0, out
    pub = out.strip().splitlines()[-1]
    rel = tmp / "rel"
    rc, out = tool("build", "--board", "unix", "--key", key, "--out", str(rel), "--version", "0.2.0")
    assert rc == 0, out
    assert "release 0.2.0 for unix" in out
    return key, pub, rel


def test_keygen_writes_a_private_key_once_and_prints_the_der_public_key(tmp_path):
    key = str(tmp_path / "k.pem")
    rc, out = tool("keygen", "--out", key)
    assert rc == 0, out
    pub = out.strip().splitlines()[-1]
    # SubjectPublicKeyInfo of an uncompressed P-256 point (RFC 5480): 91 bytes
    assert len(pub) == 182 and pub.startswith("3059301306072a8648ce3d0201")
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert tool("pubkey", "--key", key) == (0, pub + "\n")
    rc, out = tool("keygen", "--out", key)
    assert rc != 0 and "never overwritten" in out


def test_the_release_holds_what_deploy_installs_but_no_config(signed_release):
    _, pub, rel = signed_release
    m = json.loads((rel / "manifest.json").read_bytes())
    paths = [e["path"] for e in m["files"]]
    assert m["format"] == "dicamm-release/1" and m["kind"] == "mpy" and m["board"] == "unix"
    assert "lib/dicamm/services/app.mpy" in paths and "lib/dicamm/proto/release.mpy" in paths
    assert "main.py" in paths and "board.mpy" in paths
    assert not [p for p in paths if "config" in p and p.endswith(".json")]
    rc, out = tool("verify", str(rel), "--pubkey", pub, "--board", "unix")
    assert rc == 0 and "signature and %d files good" % len(paths) in out, out


def test_the_version_of_the_release_is_the_version_the_code_reports(signed_release, tmp_path):
    _, _, rel = signed_release
    env = dict(os.environ, MICROPYPATH=str(rel / "files" / "lib"))
    r = subprocess.run([MICROPYTHON, "-c", "import dicamm; print(dicamm.VERSION)"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.stdout.strip() == "0.2.0", r.stdout + r.stderr


def test_the_device_accepts_the_host_signed_release(signed_release, tmp_path):
    _, pub, rel = signed_release
    m = json.loads((rel / "manifest.json").read_bytes())
    got = device_check(tmp_path, rel, pub)
    assert got == "OK 0.2.0 %d %d" % (len(m["files"]), sum(e["size"] for e in m["files"])), got


def _copy(rel, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(rel, dst)
    return dst


def test_the_device_refuses_every_altered_release(signed_release, tmp_path):
    key, pub, rel = signed_release
    other = str(tmp_path / "other.pem")
    rc, other_pub = tool("keygen", "--out", other)
    other_pub = other_pub.strip().splitlines()[-1]

    def manifest_changed(d):
        p = d / "manifest.json"
        p.write_bytes(p.read_bytes().replace(b'"0.2.0"', b'"0.3.0"'))

    def file_changed(d):
        p = d / "files" / "lib" / "dicamm" / "services" / "app.mpy"
        b = bytearray(p.read_bytes())
        b[len(b) // 2] ^= 1
        p.write_bytes(bytes(b))

    def file_cut(d):
        p = d / "files" / "main.py"
        p.write_bytes(p.read_bytes()[:-10])

    cases = [
        ("manifest changed", manifest_changed, pub, "unix", "0.1.0", "REFUSED bad signature: manifest not signed"),
        ("another key", None, other_pub, "unix", "0.1.0", "REFUSED bad signature: manifest not signed"),
        ("wrong board", None, pub, "esp32s3_devkitc", "0.1.0", "REFUSED wrong board: release for unix"),
        ("downgrade", None, pub, "unix", "0.3.0", "REFUSED downgrade: 0.2.0 is older than 0.3.0"),
        ("already installed", None, pub, "unix", "0.2.0", "REFUSED already installed"),
        ("file changed", file_changed, pub, "unix", "0.1.0", "REFUSED sha256 mismatch: lib/dicamm/services/app.mpy"),
        ("file cut", file_cut, pub, "unix", "0.1.0", "REFUSED truncated: main.py"),
    ]
    for name, alter, pubkey, board, current, want in cases:
        d = _copy(rel, tmp_path)
        if alter:
            alter(d)
        got = device_check(tmp_path, d, pubkey, board, current)
        assert got.startswith(want), (name, got)
        if alter:  # the host's check agrees
            rc, out = tool("verify", str(d), "--pubkey", pubkey)
            assert rc != 0 and "release:" in out, (name, out)
        shutil.rmtree(d)


def test_a_frozen_board_needs_the_image_and_a_bad_version_is_refused(tmp_path, signed_release):
    key, _, _ = signed_release
    rc, out = tool("build", "--board", "esp32_devkitc", "--key", key, "--out", str(tmp_path / "r"))
    assert rc != 0 and "runs the firmware frozen in" in out
    image = tmp_path / "app.bin"
    image.write_bytes(os.urandom(4096))
    rc, out = tool("build", "--board", "esp32_devkitc", "--key", key, "--out", str(tmp_path / "r"),
                   "--image", str(image), "--version", "0.2.0")
    assert rc == 0, out
    m = json.loads((tmp_path / "r" / "manifest.json").read_bytes())
    assert m["kind"] == "image" and [e["path"] for e in m["files"]] == ["app.bin"] and m["files"][0]["size"] == 4096
    rc, out = tool("build", "--board", "unix", "--key", key, "--out", str(tmp_path / "v"), "--version", "1.2")
    assert rc != 0 and "not MAJOR.MINOR.PATCH" in out
