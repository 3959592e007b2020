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
{"mode": "...", "slow_ms": N, "conn": "...", "early_ms": N}, re-read on every
request):
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

Connections (--conn, or "conn" in the control file): HTTP/1.1 persistence
(RFC 9112 section 9.3):
  keep         keep the connection for the next request, announced as
               "Keep-Alive: timeout=KEEP_S" (--keep-s, default 30), closed after that
  close        "Connection: close": one request per connection
  early        announce KEEP_S but close an idle connection after early_ms
               (--early-ms, default 300 real ms), as a gateway short of sockets does
  race         keep the connection, but close it without answering when the next
               request arrives on it (after recording it): the close that crossed the
               device's request, which the device must send again on a new connection
A client asking "Connection: close" gets it. Each stored event records the number
of its connection ("conn", from 1) and its place on it ("on_conn", from 1).

Time status (docs/HAN.md): an event carries "time_status" S/I/U and "error_ms"
(int while S, else null). Every event is accepted and recorded with both; one
whose time is not legal time (I or U) is marked: "legal_time": false and "mark"
says why. "sni" records the server name the client asked for in its handshake.

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
CONNS = ("keep", "close", "early", "race")
MARKS = {"I": "time set by hand (I): not legal time", "U": "time unknown (U): not legal time"}
# BSI TR-03116-3 chapter 5 (HAN): TLS 1.2 with these suites (OpenSSL's names for
# TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, _256_GCM_SHA384, _128_CBC_SHA256, _256_CBC_SHA384)
TR03116_SUITES = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                  "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384")
# the two gateways the device must refuse: (certificate, suites, TLS version)
REFUSED = {"rsa-only": ("rsa-gateway", "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256:AES256-SHA256", "TLSv1_2"),
           "tls1.0": ("gateway", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", "TLSv1")}


def _note_sni(sock, name, ctx):
    sock.dicamm_sni = name  # the server name the client asked for (None: none sent)


def server_context(pki, name, suites=TR03116_SUITES, version="TLSv1_2", curve=None):
    # A TLS server context of exactly one protocol version that asks for a client
    # certificate from the test CA.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sni_callback = _note_sni
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
        self.conns = 0  # connections accepted
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
        c = {"mode": self.a.mode, "slow_ms": self.a.slow_ms, "conn": self.a.conn, "early_ms": self.a.early_ms}
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

    def take(self, ev, client, tls=None, conn=None):
        # -> (status, record); a repeated UUID gets the same record.
        with self.lock:
            rec = self.records.get(ev["uuid"])
            if rec is not None:
                return 200, rec
            self.seq += 1
            st = ev["time_status"]
            entry = {"uuid": ev["uuid"], "cls_id": ev["cls_id"], "text": ev["text"],
                     "timestamp": ev["timestamp"], "time_status": st, "error_ms": ev["error_ms"],
                     "legal_time": st == "S", "seq": self.seq, "reading_wh": self.reading_wh(),
                     "time": self.clock.now_ms() // 1000, "meter_id": self.a.meter_id,
                     "client": client, "received_real_ms": time.time_ns() // 1_000_000}
            if st in MARKS:
                entry["mark"] = MARKS[st]
            if conn:
                entry.update(conn)
            if tls:
                entry["tls"], entry["cipher"] = tls[:2]
                entry["sni"] = tls[2]
            if self.a.store:
                with open(self.a.store, "a") as f:
                    f.write(json.dumps(entry, sort_keys=True) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            rec = self._record_of(entry)
            self.records[ev["uuid"]] = rec
            return 201, rec


def read_request(conn, buf=b""):
    # -> (method, path, headers, body, rest of buf) or None when the client closed.
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
    hs = {}
    for h in lines[1:]:
        k, _, v = h.partition(":")
        hs[k.strip().lower()] = v.strip()
    n = int(hs.get("content-length", "0"))
    while len(body) < n:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        body += chunk
    return method, path, hs, body[:n], body[n:]


def answer(conn, status, obj=None, raw=None, keep_s=None):
    # keep_s: keep the connection, announcing this idle timeout; None: close it.
    reasons = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    body = raw if raw is not None else json.dumps(obj).encode()
    persist = "Connection: close\r\n" if keep_s is None else "Connection: keep-alive\r\nKeep-Alive: timeout=%d\r\n" % keep_s
    conn.sendall(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                  "%s\r\n" % (status, reasons.get(status, "X"), len(body), persist)).encode() + body)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def valid_event(ev):
    return (isinstance(ev, dict) and isinstance(ev.get("uuid"), str) and len(ev["uuid"]) == 36
            and isinstance(ev.get("cls_id"), str) and isinstance(ev.get("text"), str)
            and len(ev["text"]) <= 64 and _int(ev.get("timestamp"))
            and ev.get("time_status") in ("S", "I", "U")
            and (ev.get("error_ms") is None or (_int(ev["error_ms"]) and ev["error_ms"] >= 0)))


def serve(gw, raw, log):
    ctl = gw.control()
    mode = first = ctl.get("mode", "ok")
    conn = raw
    client = None
    tls = None
    with gw.lock:
        gw.conns += 1
        number = gw.conns
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
            tls = (conn.version(), conn.cipher()[0], getattr(conn, "dicamm_sni", None))
            cert = conn.getpeercert() or {}
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        client = v
        rest = b""
        on_conn = 0
        while True:
            req = read_request(conn, rest)
            if req is None:
                return
            on_conn += 1
            ctl = gw.control()  # a kept connection follows the mode of the moment
            if on_conn > 1:
                mode = ctl.get("mode", "ok")
                if not gw.a.plain and gw.contexts.get(mode, gw.contexts["ok"]) is not gw.contexts.get(first, gw.contexts["ok"]):
                    # another certificate or TLS setting: as a gateway restarted with it, the
                    # old session ends (unanswered, unrecorded); the next handshake shows it
                    log("TLS setup changed to %s: closing connection %d" % (mode, number))
                    return
            if not handle(gw, conn, req, ctl, mode, client, tls, number, on_conn, log):
                return
            rest = req[4]
            style = ctl.get("conn", "keep")
            wait = int(ctl.get("early_ms", 300)) / 1000.0 if style == "early" else gw.a.keep_s
            conn.settimeout(wait)  # an idle connection is closed after this
            try:
                if not rest:
                    rest = conn.recv(4096)
                    if not rest:
                        return
            except socket.timeout:
                log("closing idle connection %d after %g s" % (number, wait))
                return
            conn.settimeout(30)
    except (OSError, ValueError) as e:
        log("connection error: %s" % e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def handle(gw, conn, req, ctl, mode, client, tls, number, on_conn, log):
    # One request; True when the connection stays open for the next one.
    method, path, hs, body, _ = req
    style = ctl.get("conn", "keep")
    keep = None if style == "close" or "close" in hs.get("connection", "").lower() else gw.a.keep_s
    if method != "POST" or path != gw.a.path:
        answer(conn, 404, {"error": "not found"}, keep_s=keep)
        return keep is not None
    try:
        ev = json.loads(body)
    except ValueError:
        ev = None
    if not valid_event(ev):
        answer(conn, 400, {"error": "bad event"}, keep_s=keep)
        return keep is not None
    if mode == "500":
        answer(conn, 500, {"error": "emulated failure"}, keep_s=keep)
        return keep is not None
    status, rec = gw.take(ev, client, tls, {"conn": number, "on_conn": on_conn})
    log("%s %s seq=%d %s conn=%d/%d" % (mode, ev["uuid"], rec["seq"], "repeat" if status == 200 else "new",
                                        number, on_conn))
    if mode == "drop" or (style == "race" and on_conn > 1):
        return False
    if mode == "hang":
        conn.settimeout(600)
        try:
            while conn.recv(1024):
                pass
        except OSError:
            pass
        return False
    if mode == "slow":
        time.sleep(int(ctl.get("slow_ms", 3000)) / 1000.0)
    if mode == "badjson":
        answer(conn, 200, raw=b"{not json", keep_s=keep)
    elif mode == "otheruuid":
        answer(conn, 200, dict(rec, uuid=str(uuidlib.uuid4())), keep_s=keep)
    else:
        answer(conn, status, rec, keep_s=keep)
    return keep is not None


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
    p.add_argument("--conn", default="keep", choices=CONNS, help="connection persistence (see above)")
    p.add_argument("--keep-s", type=int, default=30, help="idle seconds a kept connection stays open (announced)")
    p.add_argument("--early-ms", type=int, default=300, help="conn early: real ms after which an idle one is closed")
    p.add_argument("--control", help="JSON file {\"mode\": ..., \"slow_ms\": ..., \"conn\": ...} re-read per request")
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
