# The update's test parts shared by test_e2e_update and test_update_kills: the
# release tool, an HTTPS server over release folders (with faults), and the
# console steps of an update.
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading

from conftest import TOOLS
from waiting import wait_until

RELEASE = os.path.join(TOOLS, "release.py")


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
        self.gets = []   # the paths asked for, in order
        self.hung = threading.Event()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.gets.append(self.path)
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


def folder_is_whole(folder):
    # Every file of the manifest in a code folder, byte for byte as signed.
    m = json.load(open(os.path.join(folder, "manifest.json")))
    for e in m["files"]:
        p = os.path.join(folder, *e["path"].split("/"))
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == e["sha256"], (folder, e["path"])
    return m["version"]


def stage_consistent(stage):
    # What a failed or cut download leaves: nothing, or files each whole as signed
    # (for a resumed update of the same release, listed in pending.json).
    if not os.path.exists(stage):
        return 0
    if os.path.exists(os.path.join(stage, "manifest.json")):
        folder_is_whole(stage)
        return -1
    entries = {e["path"]: e for e in json.load(open(os.path.join(stage, "pending.json")))["files"]}
    n = 0
    for dirpath, _, names in os.walk(stage):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), stage).replace(os.sep, "/")
            if rel == "pending.json":
                continue
            e = entries[rel]
            b = open(os.path.join(dirpath, name), "rb").read()
            assert len(b) == e["size"] and hashlib.sha256(b).hexdigest() == e["sha256"], ("a part left", rel)
            n += 1
    return n
