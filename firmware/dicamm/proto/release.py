# A signed firmware release (issue 19): its manifest, the signature over it and
# the checks the device makes before it downloads a byte of code. Pure: bytes
# in, a checked manifest or an UpdateError out; the download, the staging area
# and the switch live in the update service.
#
# A release is two files beside each other: manifest.json and manifest.sig, an
# ECDSA P-256/SHA-256 signature (DER, RFC 3279 2.2.3) over the exact bytes of
# manifest.json, made with the release key (tools/release.py). The device holds
# the release public key (config update.pubkey, DER SubjectPublicKeyInfo in hex).
# Signing the bytes, not a re-serialised object, means the device never has to
# reproduce the host's JSON: it checks the signature first and only then parses.
#
# manifest.json:
#   {"format": "dicamm-release/1", "version": "0.2.0", "board": "esp32s3_devkitc",
#    "kind": "mpy", "files": [{"path": "lib/dicamm/proto/rtu.mpy", "size": 1234,
#    "sha256": "<64 hex>"}, ...]}
# kind "mpy": the compiled modules `make deploy` installs, paths relative to the
# device's root; kind "image": one file, the application image for the next OTA
# partition of a board with the firmware frozen in.
import hashlib
import json

from dicamm.errors import UpdateError
from dicamm.proto import p256

FORMAT = "dicamm-release/1"
KINDS = ("mpy", "image")
MAX_MANIFEST_BYTES = 16384  # ~90 files of a .mpy bundle take 9 KiB
MAX_FILES = 200
_HEX = "0123456789abcdef"


def parse_version(text):
    # "1.2.3" -> (1, 2, 3); three numbers, each 0..9999, nothing else.
    parts = str(text).split(".") if isinstance(text, str) else []
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 4 for p in parts):
        raise UpdateError("malformed: version %r is not MAJOR.MINOR.PATCH" % (text,))
    return tuple(int(p) for p in parts)


def public_key(text):
    # The release public key of config update.pubkey (hex of DER or of 04|X|Y).
    try:
        return p256.pub_from_der(bytes.fromhex(text))
    except (ValueError, TypeError) as e:
        raise UpdateError("release key: %s" % e)


def verify_signature(manifest_bytes, sig_der, pub):
    # UpdateError unless sig_der is the release key's signature of the bytes.
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise UpdateError("malformed: manifest of %d bytes (at most %d)" % (len(manifest_bytes), MAX_MANIFEST_BYTES))
    try:
        r, s = p256.sig_from_der(sig_der)
    except (ValueError, IndexError):
        raise UpdateError("bad signature: manifest.sig is not a DER ECDSA signature")
    if not p256.verify(pub, manifest_bytes, r, s):
        raise UpdateError("bad signature: manifest not signed by the release key")


def _check_path(path):
    if not isinstance(path, str) or not path or len(path) > 120:
        raise UpdateError("malformed: file path %r" % (path,))
    if path[0] == "/" or "\\" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise UpdateError("malformed: file path %r leaves the release" % path)


def _check_file(entry):
    if not isinstance(entry, dict):
        raise UpdateError("malformed: file entry %r" % (entry,))
    _check_path(entry.get("path"))
    size, digest = entry.get("size"), entry.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UpdateError("malformed: size of %s" % entry["path"])
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in _HEX for c in digest):
        raise UpdateError("malformed: sha256 of %s" % entry["path"])


def parse(manifest_bytes):
    # The manifest as a dict with its fields checked (after verify_signature).
    try:
        m = json.loads(manifest_bytes)
    except (ValueError, UnicodeError):
        raise UpdateError("malformed: manifest.json is not JSON")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise UpdateError("malformed: not a %s manifest" % FORMAT)
    parse_version(m.get("version"))
    if not isinstance(m.get("board"), str) or m.get("kind") not in KINDS:
        raise UpdateError("malformed: board or kind missing")
    files = m.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        raise UpdateError("malformed: files must list 1 to %d entries" % MAX_FILES)
    seen = set()
    for entry in files:
        _check_file(entry)
        if entry["path"] in seen:
            raise UpdateError("malformed: %s listed twice" % entry["path"])
        seen.add(entry["path"])
    if m["kind"] == "image" and len(files) != 1:
        raise UpdateError("malformed: an image release holds one file")
    return m


def check(manifest_bytes, sig_der, pub, board, current, allow_downgrade=False):
    # The checked manifest of a release this device may install, else UpdateError:
    # signature first (nothing unsigned is parsed), then board, then version.
    verify_signature(manifest_bytes, sig_der, pub)
    m = parse(manifest_bytes)
    if m["board"] != board:
        raise UpdateError("wrong board: release for %s, this is %s" % (m["board"], board))
    new, now = parse_version(m["version"]), parse_version(current)
    if new == now:
        raise UpdateError("already installed: version %s" % m["version"])
    if new < now and not allow_downgrade:
        raise UpdateError("downgrade: %s is older than %s (ask for it explicitly)" % (m["version"], current))
    return m


def total_bytes(m):
    return sum(e["size"] for e in m["files"])


class FileCheck:
    # A file's bytes against its manifest entry, fed chunk by chunk as they arrive.
    def __init__(self, entry):
        self.entry = entry
        self.seen = 0
        self._h = hashlib.sha256()

    def feed(self, chunk):
        self.seen += len(chunk)
        if self.seen > self.entry["size"]:
            raise UpdateError("too long: %s has more than %d bytes" % (self.entry["path"], self.entry["size"]))
        self._h.update(chunk)

    def finish(self):
        if self.seen != self.entry["size"]:
            raise UpdateError("truncated: %s has %d of %d bytes" % (self.entry["path"], self.seen, self.entry["size"]))
        if _hex(self._h.digest()) != self.entry["sha256"]:
            raise UpdateError("sha256 mismatch: %s" % self.entry["path"])


def _hex(b):
    return "".join("%02x" % x for x in b)
