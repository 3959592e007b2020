#!/usr/bin/env python3
"""Signed firmware releases (issue 19; the device's side is firmware/dicamm/proto/release.py).

    tools/release.py keygen --out KEY.pem       a release key (P-256), kept OUTSIDE the repo;
                                                prints the public key for config update.pubkey
    tools/release.py pubkey --key KEY.pem       the public key again (hex of DER SubjectPublicKeyInfo)
    tools/release.py build --board BOARD --key KEY.pem --out DIR [--version X.Y.Z] [--image FILE]
    tools/release.py sign DIR --key KEY.pem     the manifest again from DIR/files (sizes, SHA-256) and
                                                signed: files changed by hand, or signing on another machine
    tools/release.py verify DIR --pubkey HEX [--board BOARD]

A release is DIR/manifest.json, DIR/manifest.sig (ECDSA P-256/SHA-256, DER, over the
exact bytes of manifest.json) and DIR/files/<path> for every file the manifest lists.
For a board that runs .mpy files these are the compiled modules `make deploy` installs
(tools/build_mpy.py), without the starter config: an update never touches config,
journals, certificates or keys. For a board with the firmware frozen in (its board
file says firmware_image["frozen"]) the release is the application image built by
`make image`, given with --image. --version builds the release with that version in
dicamm.VERSION (what `status --json` shows after the update); without it the source's.
Signing uses the pinned `cryptography` package, an implementation independent of the
device's verifier (proto/p256.py).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import build_mpy  # noqa: E402

FORMAT = "dicamm-release/1"  # proto/release.py FORMAT
_VERSION_LINE = re.compile(r'^VERSION = "([0-9]+\.[0-9]+\.[0-9]+)"$', re.M)
INIT = os.path.join(ROOT, "firmware", "dicamm", "__init__.py")


def _crypto():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    return hashes, serialization, ec


def source_version():
    with open(INIT) as f:
        m = _VERSION_LINE.search(f.read())
    if not m:
        raise SystemExit("release: no VERSION line in %s" % INIT)
    return m.group(1)


def keygen(out):
    hashes, serialization, ec = _crypto()
    if os.path.exists(out):
        raise SystemExit("release: %s exists; a release key is never overwritten" % out)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return pubkey_hex(out)


def _load_key(path):
    hashes, serialization, ec = _crypto()
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SystemExit("release: %s is not a P-256 private key" % path)
    return key


def pubkey_hex(key_path):
    hashes, serialization, ec = _crypto()
    pub = _load_key(key_path).public_key()
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex()


def sign(key_path, data):
    hashes, serialization, ec = _crypto()
    return _load_key(key_path).sign(data, ec.ECDSA(hashes.SHA256()))


def verify(release_dir, pub_hex, board=None):
    """Host-side check of a release: signature, every file's size and SHA-256."""
    from cryptography.exceptions import InvalidSignature
    hashes, serialization, ec = _crypto()
    data = open(os.path.join(release_dir, "manifest.json"), "rb").read()
    sig = open(os.path.join(release_dir, "manifest.sig"), "rb").read()
    pub = serialization.load_der_public_key(bytes.fromhex(pub_hex))
    try:
        pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SystemExit("release: bad signature")
    m = json.loads(data)
    if board and m["board"] != board:
        raise SystemExit("release: for board %s, not %s" % (m["board"], board))
    for e in m["files"]:
        p = os.path.join(release_dir, "files", *e["path"].split("/"))
        b = open(p, "rb").read()
        if len(b) != e["size"] or hashlib.sha256(b).hexdigest() != e["sha256"]:
            raise SystemExit("release: %s does not match the manifest" % e["path"])
    return m


def _restamp_version(board, built, version):
    # dicamm/__init__.mpy compiled again with VERSION = version
    arch = build_mpy.ARCH[board["chip"]]
    for local, dev in built:
        if dev == "lib/dicamm/__init__.mpy":
            with open(INIT) as f:
                text = _VERSION_LINE.sub('VERSION = "%s"' % version, f.read())
            with tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "__init__.py")
                with open(src, "w") as f:
                    f.write(text)
                cmd = [build_mpy.mpy_cross_exe(), "-o", local, "-s", "__init__.py"]
                if arch:
                    cmd.append("-march=" + arch)
                subprocess.run(cmd + [src], check=True)
            return
    raise SystemExit("release: the build has no lib/dicamm/__init__.mpy")


def build(board_name, key_path, out, version=None, image=None):
    version = version or source_version()
    if not re.match(r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$", version):
        raise SystemExit("release: version %r is not MAJOR.MINOR.PATCH" % version)
    if os.path.exists(out):
        shutil.rmtree(out)
    files_dir = os.path.join(out, "files")
    os.makedirs(files_dir)
    _, board = build_mpy.load_board(board_name)
    if board["firmware_image"].get("frozen"):
        if not image:
            raise SystemExit("release: board %s runs the firmware frozen in: give the image of "
                             "`make image` with --image" % board_name)
        shutil.copyfile(image, os.path.join(files_dir, "app.bin"))
        kind, paths = "image", ["app.bin"]
    else:
        if image:
            raise SystemExit("release: board %s runs .mpy files; --image is for frozen boards" % board_name)
        with tempfile.TemporaryDirectory() as tmp:
            board, built = build_mpy.build(board_name, tmp)
            if version != source_version():
                _restamp_version(board, built, version)
            paths = []
            for local, dev in built:
                dest = os.path.join(files_dir, *dev.split("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(local, dest)
                paths.append(dev)
        kind = "mpy"
    manifest = {"format": FORMAT, "version": version, "board": board_name, "kind": kind, "files": []}
    return write_signed(out, manifest, paths, key_path)


def write_signed(out, manifest, paths, key_path):
    # manifest.json with every file's size and SHA-256 as it is in out/files, and its signature
    entries = []
    for p in paths:
        b = open(os.path.join(out, "files", *p.split("/")), "rb").read()
        entries.append({"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()})
    manifest = dict(manifest, files=entries)
    data = json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"
    with open(os.path.join(out, "manifest.json"), "wb") as f:
        f.write(data)
    with open(os.path.join(out, "manifest.sig"), "wb") as f:
        f.write(sign(key_path, data))
    return manifest


def resign(release_dir, key_path):
    with open(os.path.join(release_dir, "manifest.json"), "rb") as f:
        manifest = json.load(f)
    return write_signed(release_dir, manifest, [e["path"] for e in manifest["files"]], key_path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--out", required=True)
    p = sub.add_parser("pubkey")
    p.add_argument("--key", required=True)
    b = sub.add_parser("build")
    b.add_argument("--board", required=True)
    b.add_argument("--key", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--version")
    b.add_argument("--image")
    g = sub.add_parser("sign")
    g.add_argument("dir")
    g.add_argument("--key", required=True)
    v = sub.add_parser("verify")
    v.add_argument("dir")
    v.add_argument("--pubkey", required=True)
    v.add_argument("--board")
    a = ap.parse_args(argv)
    if a.cmd == "keygen":
        print(keygen(a.out))
    elif a.cmd == "pubkey":
        print(pubkey_hex(a.key))
    elif a.cmd == "build":
        m = build(a.board, a.key, a.out, a.version, a.image)
        print("release %s for %s: %d files, %d bytes -> %s" % (m["version"], m["board"], len(m["files"]),
                                                             sum(e["size"] for e in m["files"]), a.out))
    elif a.cmd == "sign":
        m = resign(a.dir, a.key)
        print("release %s for %s: %d files signed" % (m["version"], m["board"], len(m["files"])))
    else:
        m = verify(a.dir, a.pubkey, a.board)
        print("release %s for %s: signature and %d files good" % (m["version"], m["board"], len(m["files"])))


if __name__ == "__main__":
    main()
