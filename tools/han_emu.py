#!/usr/bin/env python3
"""SMGW HAN endpoint emulator for TAF16 event triggers (bench and tests).

HTTPS with mutual TLS (the client must present a certificate from the test CA)
on 127.0.0.1:PORT, or plain HTTP with --plain. POST PATH with the JSON of
docs/HAN.md; answers 201 with the gateway's record for a new UUID and 200 with
the same record for a repeated UUID (idempotent). Keeps its own sequence
numbers; the meter reading comes from the meter emulator's log (--meter-log:
the last line that holds a JSON object with import_wh/energy_wh/reading_wh, or
else the last integer on the last line) or, without one, a counter.

Failure modes (--mode, or at run time the control file --control holding JSON
{"mode": "...", "slow_ms": N}, re-read on every connection):
  ok           normal answers
  500          answer HTTP 500, record nothing
  hang         record the event, never answer (the connection stays open)
  drop         record the event, close the connection without answering
  wrong-cert   serve a gateway certificate from another CA (rogue-ca)
  expired-cert serve an expired gateway certificate from the right CA
  slow         answer after slow_ms (default 3000)
  badjson      answer 200 with a body that is not JSON
  otheruuid    answer 200 with a record naming another UUID
  rsa-only     a gateway TR-03116-3 does not allow: an RSA certificate (rsa-gateway),
               RSA suites only (ECDHE-RSA, RSA key transport)
  tls1.0       a gateway TR-03116-3 does not allow: TLS 1.0 only, ECDHE-ECDSA-AES128-SHA

TLS (every mode but the last two): as TR-03116-3 chapter 5 ("TLS-Kommunikation im HAN")
asks of the gateway: TLS 1.2 only, the ECDHE-ECDSA suites with AES-128/256 in GCM or CBC
(RFC 5289) only, ECDHE on the PKI's curve (the file "curve" that tools/mkpki.sh writes:
prime256v1 or brainpoolP256r1/P384r1, RFC 7027). Each stored event records the version and
suite that the handshake agreed on ("tls", "cipher").

Store: every received event, one JSON line each, in --store (reloaded at
start, so the emulator can restart without losing its sequence).
Prints {"port": N} on stdout once listening.

  tools/han_emu.py --pki DIR --port 0 --store events.jsonl [--control ctl.json]
"""
import argparse
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import uuid as uuidlib
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclock import SimClock  # noqa: E402

MODES = ("ok", "500", "hang", "drop", "wrong-cert", "expired-cert", "slow", "badjson", "otheruuid",
         "rsa-only", "tls1.0")
# BSI TR-03116-3 chapter 5 (HAN): TLS 1.2 with these suites (OpenSSL's names for
# TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, _256_GCM_SHA384, _128_CBC_SHA256, _256_CBC_SHA384)
TR03116_SUITES = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                  "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384")
# the two gateways the device must refuse: (certificate, suites, TLS version)
REFUSED = {"rsa-only": ("rsa-gateway", "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256:AES256-SHA256", "TLSv1_2"),
           "tls1.0": ("gateway", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", "TLSv1")}


def server_context(pki, name, suites=TR03116_SUITES, version="TLSv1_2", curve=None):
    # A TLS server context of exactly one protocol version that asks for a client
    # certificate from the test CA.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS 1.0 is deprecated: that is the point of tls1.0
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    ctx.set_ciphers(suites)
    if curve:
        ctx.set_ecdh_curve(curve)
    ctx.load_cert_chain(os.path.join(pki, name + ".pem"), os.path.join(pki, name + ".key.pem"))
    ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Gateway:
    def __init__(self, a):
        self.a = a
        self.clock = SimClock.from_args(a)
        self.lock = threading.Lock()
        self.records = {}  # uuid -> record
        self.seq = 0
        self.counter_wh = a.start_wh
        if a.store and os.path.exists(a.store):
            with open(a.store) as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    self.records[e["uuid"]] = self._record_of(e)
                    self.seq = max(self.seq, e["seq"])
                    self.counter_wh = max(self.counter_wh, e["reading_wh"])
        self.contexts = {}
        if not a.plain:
            curve = None
            if os.path.exists(os.path.join(a.pki, "curve")):
                with open(os.path.join(a.pki, "curve")) as f:
                    curve = f.read().strip()
            for mode, name in (("ok", "gateway"), ("wrong-cert", "rogue-gateway"),
                               ("expired-cert", "expired-gateway")):
                self.contexts[mode] = server_context(a.pki, name, a.suites, curve=curve)
            for mode, (name, suites, version) in REFUSED.items():
                if os.path.exists(os.path.join(a.pki, name + ".pem")):
                    self.contexts[mode] = server_context(a.pki, name, suites, version, curve)

    @staticmethod
    def _record_of(e):
        return {"uuid": e["uuid"], "seq": e["seq"], "reading_wh": e["reading_wh"],
                "time": e["time"], "meter_id": e["meter_id"]}

    def control(self):
        c = {"mode": self.a.mode, "slow_ms": self.a.slow_ms}
        if self.a.control and os.path.exists(self.a.control):
            try:
                with open(self.a.control) as f:
                    c.update(json.load(f))
            except (OSError, ValueError):
                pass
        return c

    def reading_wh(self):
        if self.a.meter_log:
            try:
                with open(self.a.meter_log, "rb") as f:
                    f.seek(0, 2)
                    f.seek(max(0, f.tell() - 4096))
                    lines = f.read().decode(errors="replace").strip().splitlines()
                for line in reversed(lines):
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        obj = None
                    if isinstance(obj, dict):
                        for k in ("import_wh", "energy_wh", "reading_wh"):
                            if isinstance(obj.get(k), (int, float)):
                                return int(obj[k])
                    nums = re.findall(r"\d+", line)
                    if nums:
                        return int(nums[-1])
            except OSError:
                pass
        self.counter_wh += self.a.step_wh
        return self.counter_wh

    def take(self, ev, client, tls=None):
        # -> (status, record); a repeated UUID gets the same record.
        with self.lock:
            rec = self.records.get(ev["uuid"])
            if rec is not None:
                return 200, rec
            self.seq += 1
            entry = {"uuid": ev["uuid"], "cls_id": ev["cls_id"], "text": ev["text"],
                     "timestamp": ev["timestamp"], "seq": self.seq, "reading_wh": self.reading_wh(),
                     "time": self.clock.now_ms() // 1000, "meter_id": self.a.meter_id,
                     "client": client, "received_real_ms": time.time_ns() // 1_000_000}
            if tls:
                entry["tls"], entry["cipher"] = tls
            if self.a.store:
                with open(self.a.store, "a") as f:
                    f.write(json.dumps(entry, sort_keys=True) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            rec = self._record_of(entry)
            self.records[ev["uuid"]] = rec
            return 201, rec


def read_request(conn):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > 65536:
            return None
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = lines[0].split()[:2]
    n = 0
    for h in lines[1:]:
        k, _, v = h.partition(":")
        if k.strip().lower() == "content-length":
            n = int(v.strip())
    while len(body) < n:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        body += chunk
    return method, path, body[:n]


def answer(conn, status, obj=None, raw=None):
    reasons = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    body = raw if raw is not None else json.dumps(obj).encode()
    conn.sendall(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                  "Connection: close\r\n\r\n" % (status, reasons.get(status, "X"), len(body))).encode() + body)


def valid_event(ev):
    return (isinstance(ev, dict) and isinstance(ev.get("uuid"), str) and len(ev["uuid"]) == 36
            and isinstance(ev.get("cls_id"), str) and isinstance(ev.get("text"), str)
            and len(ev["text"]) <= 64 and isinstance(ev.get("timestamp"), int)
            and not isinstance(ev.get("timestamp"), bool))


def serve(gw, raw, log):
    ctl = gw.control()
    mode = ctl.get("mode", "ok")
    conn = raw
    client = None
    tls = None
    try:
        raw.settimeout(30)
        if not gw.a.plain:
            if mode in REFUSED and mode not in gw.contexts:
                log("mode %s needs %s.pem in the PKI (tools/mkpki.sh)" % (mode, REFUSED[mode][0]))
                return
            ctx = gw.contexts.get(mode, gw.contexts["ok"])
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log("TLS handshake failed: %s" % e)
                return
            tls = (conn.version(), conn.cipher()[0])
            cert = conn.getpeercert() or {}
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        client = v
        req = read_request(conn)
        if req is None:
            return
        method, path, body = req
        if method != "POST" or path != gw.a.path:
            answer(conn, 404, {"error": "not found"})
            return
        try:
            ev = json.loads(body)
        except ValueError:
            ev = None
        if not valid_event(ev):
            answer(conn, 400, {"error": "bad event"})
            return
        if mode == "500":
            answer(conn, 500, {"error": "emulated failure"})
            return
        status, rec = gw.take(ev, client, tls)
        log("%s %s seq=%d %s" % (mode, ev["uuid"], rec["seq"], "repeat" if status == 200 else "new"))
        if mode == "drop":
            return
        if mode == "hang":
            conn.settimeout(600)
            try:
                while conn.recv(1024):
                    pass
            except OSError:
                pass
            return
        if mode == "slow":
            time.sleep(int(ctl.get("slow_ms", 3000)) / 1000.0)
        if mode == "badjson":
            answer(conn, 200, raw=b"{not json")
        elif mode == "otheruuid":
            answer(conn, 200, dict(rec, uuid=str(uuidlib.uuid4())))
        else:
            answer(conn, status, rec)
    except (OSError, ValueError) as e:
        log("connection error: %s" % e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument("--plain", action="store_true", help="plain HTTP instead of HTTPS with mutual TLS")
    p.add_argument("--pki", help="folder made by tools/mkpki.sh")
    p.add_argument("--path", default="/taf16")
    p.add_argument("--suites", default=TR03116_SUITES,
                   help="OpenSSL cipher list for TLS 1.2 (default: the four TR-03116-3 suites)")
    p.add_argument("--store", help="JSON-lines file of received events")
    p.add_argument("--meter-log", help="the meter emulator's log file (reading source)")
    p.add_argument("--meter-id", default="1EMH0012345678")
    p.add_argument("--start-wh", type=int, default=100000)
    p.add_argument("--step-wh", type=int, default=7, help="counter step per event without --meter-log")
    p.add_argument("--mode", default="ok", choices=MODES)
    p.add_argument("--slow-ms", type=int, default=3000)
    p.add_argument("--control", help="JSON file {\"mode\": ..., \"slow_ms\": ...} re-read per connection")
    p.add_argument("--quiet", action="store_true")
    SimClock.add_arguments(p)
    a = p.parse_args(argv)
    if not a.plain and not a.pki:
        p.error("--pki DIR is needed for HTTPS (or use --plain)")
    gw = Gateway(a)

    def log(msg):
        if not a.quiet:
            print(msg, file=sys.stderr, flush=True)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, a.port))
    srv.listen(16)
    print(json.dumps({"port": srv.getsockname()[1]}), flush=True)
    try:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(gw, conn, log), daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
