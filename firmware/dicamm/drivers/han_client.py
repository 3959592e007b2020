# TAF16 trigger to the smart meter gateway's HAN interface: one HTTPS POST with
# mutual TLS per event (wire format in docs/HAN.md). Every outcome other than an
# acknowledgement (200/201 with the gateway's record for the same UUID) raises
# LinkError with a clear message; the outbox is the one place that retries.
# The whole exchange has a deadline (real ms: a wire-level timeout), so a hung
# gateway never blocks other tasks.
# The bytes on the wire (request, answer, TLS error wording) are proto/han_wire.py.
# TLS as BSI TR-03116-3 chapter 5 asks for the HAN: TLS 1.2 and the ECDHE-ECDSA suites
# with AES only (han_wire.HAN_SUITES), set on MicroPython's `tls` context (the `ssl`
# module's SSLContext wrapper has no set_ciphers). There is no minimum/maximum version
# setting: the list holds no TLS 1.3 suite, mbedTLS 3 has no TLS 1.0/1.1, and the
# agreed session is checked before the answer counts.
import tls

from micropython import const

from dicamm.errors import LinkError
from dicamm.platform import asyncio
from dicamm.proto import pem
from dicamm.proto.han_wire import HAN_SUITES, check_session, parse_answer, parse_url, request
from dicamm.proto.han_wire import body, tls_message  # noqa: F401 (API)

_MAX_ANSWER = const(4096)


def read_der(path):
    # A certificate or key file from the device filesystem, PEM or DER -> DER.
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise LinkError("cannot read %s" % path)
    try:
        return pem.to_der(data)
    except Exception:
        raise LinkError("bad PEM in %s" % path)


class HanClient:
    def __init__(self, url, cls_id="", ca=None, cert=None, key=None, plain_http=False,
                 timeout_ms=10000, server_hostname=None):
        self.url = url
        self.cls_id = cls_id
        self.scheme, self.host, self.port, self.path = parse_url(url)
        self.timeout_ms = timeout_ms
        self.server_hostname = server_hostname or self.host
        self.ctx = None
        if self.scheme == "http":
            if not plain_http:
                raise LinkError("plain HTTP to the gateway refused (set han.plain_http for the bench)")
        else:
            if not (ca and cert and key):
                raise LinkError("HTTPS needs han.ca, han.cert and han.key")
            self.ca_path, self.cert_path, self.key_path = ca, cert, key
        self.posts = 0
        self.last_error = None

    @classmethod
    def from_config(cls, cfg):
        # cfg: a dict with dotted keys ("han.url") or a nested "han" dict.
        han = cfg.get("han") if isinstance(cfg.get("han"), dict) else None

        def get(k, d=None):
            if han is not None:
                return han.get(k, d)
            return cfg.get("han." + k, d)
        return cls(get("url"), cfg.get("cls_id", ""), get("ca"), get("cert"), get("key"),
                   bool(get("plain_http", False)), int(get("timeout_ms", 10000)),
                   get("server_hostname"))

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

    def request(self, event):
        return request(self.host, self.port, self.path, event)

    async def _exchange(self, req):
        ctx = None if self.scheme == "http" else self.context()
        try:
            if ctx is None:
                r, w = await asyncio.open_connection(self.host, self.port)
            else:
                r, w = await asyncio.open_connection(self.host, self.port, ssl=ctx,
                                                     server_hostname=self.server_hostname)
        except ValueError as e:
            raise LinkError(tls_message(e))
        except OSError as e:
            if ctx is not None and e.args and isinstance(e.args[0], int) and e.args[0] < 0:
                raise LinkError(tls_message(e))
            raise LinkError("cannot connect to gateway %s:%d (%s)" % (self.host, self.port, e))
        try:
            try:
                w.write(req)
                await w.drain()  # the handshake is done once the request has left
                if ctx is not None:
                    check_session(w.s.cipher())
                buf = b""
                while len(buf) < _MAX_ANSWER:
                    chunk = await r.read(512)
                    if not chunk:
                        break
                    buf += chunk
            except (OSError, ValueError) as e:
                if ctx is not None:
                    raise LinkError(tls_message(e))
                raise LinkError("connection error (%s)" % e)
            if not buf:
                raise LinkError("connection closed without answer")
            return buf
        finally:
            try:
                w.close()
            except Exception:
                pass

    async def post_event(self, event):
        # -> the gateway's record {"uuid","seq","reading_wh","time","meter_id"}.
        if "cls_id" not in event:
            event["cls_id"] = self.cls_id
        self.posts += 1
        try:
            try:
                raw = await asyncio.wait_for_ms(self._exchange(self.request(event)), self.timeout_ms)
            except asyncio.TimeoutError:
                raise LinkError("gateway timeout after %d ms" % self.timeout_ms)
            rec = parse_answer(raw, event["uuid"])
        except LinkError as e:
            self.last_error = str(e)
            raise
        except (OSError, ValueError) as e:
            self.last_error = "HAN error (%s)" % e
            raise LinkError(self.last_error)
        self.last_error = None
        return rec
