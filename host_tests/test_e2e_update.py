# Issue 19, item 2, through the whole firmware on the MicroPython unix port: a
# release made by tools/release.py, served over HTTPS (a Python server with the
# test PKI's gateway certificate, checked by the device against update.ca),
# downloaded with `update install URL` into update/stage while the meter is read
# on; and every refusal the issue lists, each in its words, with nothing staged:
# a bad signature, another key, another board, a downgrade, a changed file, a
# file cut short, a server that answers 404 or 500 or hangs, not enough flash, and
# a second update while one runs.
import hashlib
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, TOOLS
from rig import Rig
from waiting import running, wait_until

pytestmark = pytest.mark.slow  # runs the firmware and the emulators as processes

RELEASE = os.path.join(TOOLS, "release.py")
TIMEOUT_MS = 1500


def tool(*args):
    r = subprocess.run([sys.executable, RELEASE] + list(args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip().splitlines()[-1]


class ReleaseServer:
    # HTTPS over the release folders; `faults` maps a path to "404", "500", "hang" (head
    # sent, then silence) or "cut" (the head promises every byte, half of them come).
    def __init__(self, root, pki):
        self.root = root
        self.faults = {}
        self.hung = threading.Event()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                fault = srv.faults.get(self.path)
                if fault in ("404", "500"):
                    self.send_error(int(fault))
                    return
                p = os.path.join(srv.root, *self.path.lstrip("/").split("/"))
                if not os.path.isfile(p):
                    self.send_error(404)
                    return
                body = open(p, "rb").read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "hang":
                    self.wfile.flush()
                    srv.hung.wait(30)
                    return
                self.wfile.write(body[:len(body) // 2] if fault == "cut" else body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(pki, "gateway.pem"), os.path.join(pki, "gateway.key.pem"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return "https://127.0.0.1:%d/%s/manifest.json" % (self.port, name)

    def stop(self):
        self.hung.set()
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("update")
    key, other = str(tmp / "release-key.pem"), str(tmp / "other-key.pem")
    pub = tool("keygen", "--out", key)
    tool("keygen", "--out", other)
    rels = tmp / "releases"
    for name, args in (("good", ("--board", "unix", "--key", key, "--version", "0.2.0")),
                       ("other-key", ("--board", "unix", "--key", other, "--version", "0.2.0")),
                       ("other-board", ("--board", "esp32s3_devkitc", "--key", key, "--version", "0.2.0")),
                       ("old", ("--board", "unix", "--key", key, "--version", "0.0.1"))):
        tool("build", "--out", str(rels / name), *args)
    # a release whose manifest was changed after signing, and one whose file was
    shutil.copytree(rels / "good", rels / "tampered")
    m = rels / "tampered" / "manifest.json"
    m.write_bytes(m.read_bytes().replace(b'"0.2.0"', b'"0.2.1"'))
    shutil.copytree(rels / "good", rels / "bad-file")
    f = rels / "bad-file" / "files" / "main.py"
    b = bytearray(f.read_bytes())
    b[-2] ^= 0x20   # same size, one bit off
    f.write_bytes(bytes(b))
    r = Rig(tmp, speed=10, load="constant:400", sntp=("good",),
            config={"update": {"pubkey": pub, "ca": "certs/ca.pem", "timeout_ms": TIMEOUT_MS}})
    with running(r) as r:
        srv = ReleaseServer(str(rels), r.pki)
        try:
            yield r, srv, rels
        finally:
            srv.stop()


def update_state(rig):
    return rig.fw.json("update --json")


def install(rig, url, *flags):
    out = rig.fw.command(" ".join(("update install", url) + flags))
    assert any("started" in ln for ln in out), out
    return wait_until(lambda: (lambda d: d if d["state"] in ("staged", "failed") else None)(update_state(rig)),
                      60, what="update finished")


def staged(rig):
    return os.path.join(rig.root, "update", "stage")


def stage_whole_or_absent(rig):
    # A failed download leaves no part of itself: no stage, or a whole earlier one.
    if not os.path.exists(staged(rig)):
        return
    m = json.loads(open(os.path.join(staged(rig), "manifest.json"), "rb").read())
    for e in m["files"]:
        p = os.path.join(staged(rig), *e["path"].split("/"))
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == e["sha256"], e["path"]


def test_a_signed_release_is_downloaded_and_checked_while_metering_runs(setup):
    rig, srv, rels = setup
    before = rig.fw.json("status --json")["bus"]["polls"]
    d = install(rig, srv.url("good"))
    assert d["state"] == "staged" and d["version"] == "0.2.0" and d["error"] is None, d
    m = json.loads((rels / "good" / "manifest.json").read_bytes())
    assert d["bytes"] == d["total"] == sum(e["size"] for e in m["files"])
    for e in m["files"]:   # every byte as signed
        p = os.path.join(staged(rig), *e["path"].split("/"))
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == e["sha256"], e["path"]
    assert open(os.path.join(staged(rig), "manifest.json"), "rb").read() == (rels / "good" / "manifest.json").read_bytes()
    # the meter was read on meanwhile, and the running firmware is still the old one
    st = rig.fw.json("status --json")
    assert st["bus"]["polls"] > before and st["meter"]["ok"], (before, st["bus"], st["meter"])
    assert st["firmware"] == "0.1.0"
    assert "update: staged 0.2.0" in rig.fw.command("update")[0]


@pytest.mark.parametrize("name, fault, want", [
    ("tampered", None, "bad signature: manifest not signed by the release key"),
    ("other-key", None, "bad signature: manifest not signed by the release key"),
    ("other-board", None, "wrong board: release for esp32s3_devkitc, this is unix"),
    ("old", None, "downgrade: 0.0.1 is older than 0.1.0"),
    ("bad-file", None, "sha256 mismatch: main.py"),
    ("good", ("/good/files/main.py", "cut"), "connection closed at byte"),
    ("good", ("/good/manifest.json", "404"), "server answered HTTP 404 for /good/manifest.json"),
    ("good", ("/good/manifest.sig", "500"), "server answered HTTP 500 for /good/manifest.sig"),
    ("good", ("/good/files/board.mpy", "hang"), "server silent for %d ms" % TIMEOUT_MS),
])
def test_a_bad_release_or_server_is_refused_in_its_words_and_nothing_is_staged(setup, name, fault, want):
    rig, srv, _ = setup
    srv.faults = dict([fault]) if fault else {}
    try:
        d = install(rig, srv.url(name))
    finally:
        srv.faults = {}
    assert d["state"] == "failed" and d["error"].startswith(want), d
    stage_whole_or_absent(rig)
    assert rig.fw.json("meter read --json")["power_w"] is not None


def test_not_enough_flash_is_refused_before_a_file_is_fetched(setup):
    rig, srv, _ = setup
    rig.fw.command("config set update.keep_free_kib %d" % (1 << 30))
    try:
        d = install(rig, srv.url("good"))
    finally:
        rig.fw.command("config unset update.keep_free_kib")
    assert d["state"] == "failed" and d["error"].startswith("not enough flash: the release needs"), d
    assert d["bytes"] == 0


def test_a_downgrade_asked_for_is_allowed(setup):
    rig, srv, _ = setup
    d = install(rig, srv.url("old"), "--downgrade")
    assert d["state"] == "staged" and d["version"] == "0.0.1", d


def test_one_update_at_a_time(setup):
    rig, srv, _ = setup
    srv.faults = {"/good/files/board.mpy": "hang"}
    try:
        rig.fw.command("update install " + srv.url("good"))
        wait_until(lambda: update_state(rig)["file"] == "board.mpy", 30, what="the download at the hanging file")
        out = rig.fw.command("update install " + srv.url("good"))
        assert any("busy: an update is running (download)" in ln for ln in out), out
        wait_until(lambda: update_state(rig)["state"] == "failed", 30, what="the hung download failed")
    finally:
        srv.faults = {}


def test_usage_and_url_errors(setup):
    rig, srv, _ = setup
    assert any("usage: update" in ln for ln in rig.fw.command("update fetch x"))
    assert any("names a release's manifest.json" in ln for ln in rig.fw.command("update install https://x/"))
    out = rig.fw.command("update install http://127.0.0.1:%d/good/manifest.json" % srv.port)
    d = wait_until(lambda: (lambda d: d if d["state"] == "failed" else None)(update_state(rig)), 30, what="failed")
    assert d["error"].startswith("plain http refused"), (out, d)
