# TAF16 trigger to the smart meter gateway's HAN interface: an HTTPS POST with
# mutual TLS per event (wire format in docs/HAN.md). Every outcome other than an
# acknowledgement (200/201 with the gateway's record for the same UUID) raises
# LinkError with a clear message; the outbox is the one place that retries.
# Each exchange has a deadline (real ms: a wire-level timeout), so a hung
# gateway never blocks other tasks.
# One TLS session, many events: the connection stays open for han.idle_s after
# an answer (HTTP/1.1 persistence, RFC 9112 9.3) unless the gateway says it
# closes, and the next event goes over it without a handshake. A gateway may
# close an idle connection at any time (RFC 9112 9.6); a request that got no
# answer byte on a kept connection is sent again at once on a new one (RFC 9112
# 9.3.1: the client may retry when the connection closed before any response;
# the same UUID makes the repeat the same event at the gateway).
# The bytes on the wire (request, answer, TLS error wording) are proto/han_wire.py.
# TLS as BSI TR-03116-3 chapter 5 asks for the HAN: TLS 1.2 and the ECDHE-ECDSA suites
# with AES only (han_wire.HAN_SUITES), set on MicroPython's `tls` context (the `ssl`
# module's SSLContext wrapper has no set_ciphers). There is no minimum/maximum version
# setting: the list holds no TLS 1.3 suite, mbedTLS 3 has no TLS 1.0/1.1, and the
# agreed session is checked before the answer counts.
import select
import time

import tls

from micropython import const

from dicamm.errors import DicammError, LinkError
from dicamm.platform import asyncio
from dicamm.drivers.tls_stream import close, open_tls, read_der
from dicamm.proto.han_wire import HAN_SUITES, answer_size, check_session, parse_answer, persistence, request
from dicamm.proto.http import parse_url
from dicamm.proto.han_wire import body, tls_message  # noqa: F401 (API)

_MAX_ANSWER = const(4096)
_REUSE_BLOCKS_MS = const(100)  # real ms a post on a kept connection holds the loop at most (no handshake)
_MARGIN_MS = const(1000)       # stop using a connection this long before the gateway's own idle timeout


class _Stale(Exception):
    # A kept connection was closed before any answer byte: send again on a new one.
    pass


class HanClient:
    def __init__(self, url, cls_id="", ca=None, cert=None, key=None, plain_http=False,
                 timeout_ms=10000, server_hostname=None, idle_s=0, gate=None):
        self.url = url
        self.cls_id = cls_id
        self.scheme, self.host, self.port, self.path = parse_url(url)
        self.timeout_ms = timeout_ms
        # the name looked for in the gateway's certificate and sent as SNI
        self.server_hostname = server_hostname or self.host
        self.idle_ms = idle_s * 1000
        self.gate = gate  # boundary_gate: a handshake holds the loop, never across a boundary
        self.ctx = None
        if self.scheme == "http":
            if not plain_http:
                raise LinkError("plain HTTP to the gateway refused (set han.plain_http for the bench)")
        else:
            if not (ca and cert and key):
                raise LinkError("HTTPS needs han.ca, han.cert and han.key")
            self.ca_path, self.cert_path, self.key_path = ca, cert, key
        self.posts = 0
        self.connects = 0   # connections opened (handshakes)
        self.reused = 0     # posts that went over a kept connection
        self.stale = 0      # kept connections the gateway had closed when the next event came
        self.last_error = None
        self._conn = None   # (reader, writer) kept for the next event
        self._live = None   # the connection of the exchange under way
        self._idle_at = 0   # real ticks when it went idle
        self._keep_ms = 0   # how long it may stay idle

    @classmethod
    def from_config(cls, cfg, file_path=None, gate=None):
        # cfg: the Config, or a dict with dotted keys ("han.url") or a nested
        # "han" dict; defaults from the schema (the one source). file_path
        # turns a configured file name into a path on the device.
        from dicamm.proto.schema import SCHEMA
        han = cfg.get("han") if isinstance(cfg, dict) and isinstance(cfg.get("han"), dict) else None

        def get(k):
            d = SCHEMA["han." + k][1]
            v = han.get(k, d) if han is not None else cfg.get("han." + k, d)
            return file_path(v) if file_path and k in ("ca", "cert", "key") else v
        return cls(get("url"), cfg.get("cls_id", ""), get("ca"), get("cert"), get("key"),
                   bool(get("plain_http")), int(get("timeout_ms")), get("server_hostname") or None,
                   int(get("idle_s")), gate)

    def context(self):
        # Built once; certificates are read (and PEM converted) on the way in.
        if self.ctx is None:
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.set_ciphers(HAN_SUITES)
            try:
                ctx.load_cert_chain(read_der(self.cert_path), read_der(self.key_path))
                ctx.load_verify_locations(read_der(self.ca_path))
            except ValueError as e:
                # mbedTLS cannot parse a key or certificate on a curve it was built without
                raise LinkError("HAN certificates not usable (%s): Brainpool needs a firmware built "
                                "with it (docs/FLASHING.md)" % e)
            ctx.verify_mode = tls.CERT_REQUIRED
            self.ctx = ctx
        return self.ctx

    def prepare(self):
        # The TLS context now, at start-up, while the heap is in one piece: its
        # certificates are read in blocks of ~2 KB that the fragmented heap of a
        # running day may not have (on the frozen 32-bit build in 96 KiB every post
        # of a day failed with "allocating 1764 bytes"). A certificate that is not
        # usable is left to the first post, which reports it; the outbox keeps its events.
        if self.scheme == "http":
            return
        try:
            self.context()
        except (DicammError, OSError):
            pass

    def request(self, event):
        return request(self.host, self.port, self.path, event, self.idle_ms > 0)

    # --- the kept connection ------------------------------------------------
    def idle_left_ms(self):
        # Real ms the kept connection may still wait for an event (None: none kept).
        if self._conn is None:
            return None
        return max(0, self._keep_ms - time.ticks_diff(time.ticks_ms(), self._idle_at))

    def blocks_ms(self):
        # How long the next post may hold the loop (for the boundary gate):
        # short on a kept connection, None (the longest: a handshake) otherwise.
        return _REUSE_BLOCKS_MS if self.idle_left_ms() else None

    def close(self):
        c, self._conn = self._conn, None
        close(c)

    def _usable(self):
        # The kept connection, if it is not past its idle time and nothing has
        # arrived on it (a gateway's close or TLS close_notify makes it readable).
        if not self.idle_left_ms():
            self.close()
            return None
        p = select.poll()
        w = self._conn[1]
        p.register(getattr(w, "raw", w.s), select.POLLIN)  # the descriptor (drivers/tls_stream.py)
        if p.poll(0):
            self.stale += 1
            self.close()
            return None
        return self._conn

    # --- one exchange ---------------------------------------------------------
    async def _connect(self):
        ctx = None if self.scheme == "http" else self.context()
        self.connects += 1
        try:
            if ctx is None:
                return await asyncio.open_connection(self.host, self.port)
            return await open_tls(self.host, self.port, ctx, self.server_hostname)
        except ValueError as e:
            raise LinkError(tls_message(e))
        except OSError as e:
            if ctx is not None and e.args and isinstance(e.args[0], int) and e.args[0] < 0:
                raise LinkError(tls_message(e))
            raise LinkError("cannot connect to gateway %s:%d (%s)" % (self.host, self.port, e))

    async def _exchange(self, conn, req, fresh):
        # -> the whole answer. On a kept connection (not fresh) a close before
        # any answer byte raises _Stale.
        r, w = conn
        tls_on = self.scheme != "http"
        buf = b""
        try:
            w.write(req)
            await w.drain()  # on a new connection the handshake is done once the request has left
            if tls_on and fresh:
                check_session(w.s.cipher())
            n = None
            while len(buf) < _MAX_ANSWER:
                chunk = await r.read(512)
                if not chunk:
                    break
                buf += chunk
                if n is None:
                    n = answer_size(buf)
                if n is not None and 0 <= n <= len(buf):
                    break
        except (OSError, ValueError) as e:
            if not fresh and not buf:
                raise _Stale()
            if tls_on:
                raise LinkError(tls_message(e))
            raise LinkError("connection error (%s)" % e)
        if not buf:
            if not fresh:
                raise _Stale()
            raise LinkError("connection closed without answer")
        return buf

    async def _attempt(self, conn, req):
        # Connect (conn None) and exchange: one deadline for both.
        fresh = conn is None
        if fresh:
            conn = await self._connect()
        self._live = conn
        return await self._exchange(conn, req, fresh)

    async def _post(self, conn, req, uuid):
        # One attempt; the connection is kept for the next event when both sides agree.
        try:
            raw = await asyncio.wait_for_ms(self._attempt(conn, req), self.timeout_ms)
        except asyncio.TimeoutError:
            raise LinkError("gateway timeout after %d ms" % self.timeout_ms)
        rec = parse_answer(raw, uuid)
        keep = persistence(raw) if self.idle_ms else -1
        if keep >= 0:
            self._conn, self._live = self._live, None
            self._idle_at = time.ticks_ms()
            self._keep_ms = self.idle_ms if keep == 0 else min(self.idle_ms, keep * 1000 - _MARGIN_MS)
        return rec

    def _drop_live(self):
        c, self._live = self._live, None
        close(c)

    async def post_event(self, event):
        # -> the gateway's record {"uuid","seq","reading_wh","time","meter_id"}.
        if "cls_id" not in event:
            event["cls_id"] = self.cls_id
        self.posts += 1
        req = self.request(event)
        conn = self._usable() if self._conn is not None else None
        self._conn = None  # in use: kept again only after a good answer
        try:
            try:
                if conn is not None:
                    try:
                        rec = await self._post(conn, req, event["uuid"])
                        self.reused += 1
                        return self._ok(rec)
                    except _Stale:
                        self.stale += 1
                        self._drop_live()
                    if self.gate is not None:
                        await self.gate.wait_clear()  # the new connection's handshake holds the loop
                return self._ok(await self._post(None, req, event["uuid"]))
            finally:
                self._drop_live()  # anything but a kept connection is closed
        except LinkError as e:
            self.last_error = str(e)
            raise
        except (OSError, ValueError) as e:
            self.last_error = "HAN error (%s)" % e
            raise LinkError(self.last_error)

    def _ok(self, rec):
        self.last_error = None
        return rec

    def status(self):
        return {"posts": self.posts, "connects": self.connects, "reused": self.reused, "stale": self.stale,
                "kept_ms": self.idle_left_ms()}
