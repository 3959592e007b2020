# TAF16 trigger to the smart meter gateway's HAN interface: one HTTPS POST with
# mutual TLS per event (wire format in docs/HAN.md). Every outcome other than an
# acknowledgement (200/201 with the gateway's record for the same UUID) raises
# LinkError with a clear message; the outbox is the one place that retries.
# The whole exchange has a deadline (real ms: a wire-level timeout), so a hung
# gateway never blocks other tasks.
import json

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio
import ssl

from micropython import const

from dicamm.errors import LinkError
from dicamm import pem

_MAX_ANSWER = const(4096)
_TEXT_MAX = const(64)
# mbedTLS: MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, and the SSL layer's bad-certificate codes.
_VERIFY_CODES = (-0x2700, -0x7780, -0x7A00)


def parse_url(url):
    # "https://host:port/path" -> (scheme, host, port, path)
    i = url.find("://")
    if i < 0:
        raise LinkError("bad HAN URL %r" % url)
    scheme = url[:i]
    rest = url[i + 3:]
    j = rest.find("/")
    hostport, path = (rest, "/") if j < 0 else (rest[:j], rest[j:])
    if ":" in hostport:
        host, port = hostport.rsplit(":", 1)
        port = int(port)
    else:
        host, port = hostport, (443 if scheme == "https" else 80)
    if scheme not in ("http", "https"):
        raise LinkError("bad HAN URL scheme %r" % scheme)
    return scheme, host, port, path


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


def body(event):
    # The JSON sent to the gateway: exactly the four TAF16 fields.
    return json.dumps({"uuid": event["uuid"], "cls_id": event["cls_id"],
                       "text": event["text"][:_TEXT_MAX], "timestamp": event["timestamp"]})


def parse_answer(raw, uuid):
    # raw: the whole HTTP response. Returns the gateway's record or raises LinkError.
    head, sep, payload = raw.partition(b"\r\n\r\n")
    if not sep:
        raise LinkError("incomplete HTTP answer")
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[0].startswith(b"HTTP/"):
        raise LinkError("not an HTTP answer")
    try:
        status = int(line[1])
    except ValueError:
        raise LinkError("bad HTTP status line")
    if status not in (200, 201):
        raise LinkError("gateway answered HTTP %d" % status)
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
            if len(payload) < n:
                raise LinkError("answer cut short")
            payload = payload[:n]
    try:
        rec = json.loads(payload)
    except ValueError:
        raise LinkError("answer is not JSON")
    if not isinstance(rec, dict):
        raise LinkError("answer is not a JSON object")
    if rec.get("uuid") != uuid:
        raise LinkError("answer names another uuid")
    for k in ("seq", "reading_wh", "time"):
        if not isinstance(rec.get(k), int):
            raise LinkError("answer lacks %s" % k)
    if "meter_id" not in rec:
        raise LinkError("answer lacks meter_id")
    return rec


def _tls_message(e):
    # MicroPython raises ValueError with mbedTLS's verify text for an untrusted,
    # expired or wrong-name certificate, OSError with a (negative) code otherwise.
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    text = " ".join(str(e).split())
    if isinstance(e, ValueError) or code in _VERIFY_CODES or "VERIFY" in text:
        return "gateway certificate not trusted (%s)" % text
    if code > 0:  # a plain errno: the gateway hung up during the handshake
        return "TLS connection closed by gateway (errno %d; device certificate refused?)" % code
    return "TLS error (%s)" % text


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

    def _context(self):
        # Built once; certificates are read (and PEM converted) on the way in.
        if self.ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_cert_chain(read_der(self.cert_path), read_der(self.key_path))
            ctx.load_verify_locations(cadata=read_der(self.ca_path))
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx = ctx
        return self.ctx

    def request(self, event):
        b = body(event)
        return ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (self.path, self.host, self.port, len(b), b)).encode()

    async def _exchange(self, req):
        ctx = None if self.scheme == "http" else self._context()
        try:
            if ctx is None:
                r, w = await asyncio.open_connection(self.host, self.port)
            else:
                r, w = await asyncio.open_connection(self.host, self.port, ssl=ctx,
                                                     server_hostname=self.server_hostname)
        except ValueError as e:
            raise LinkError(_tls_message(e))
        except OSError as e:
            if ctx is not None and e.args and isinstance(e.args[0], int) and e.args[0] < 0:
                raise LinkError(_tls_message(e))
            raise LinkError("cannot connect to gateway %s:%d (%s)" % (self.host, self.port, e))
        try:
            try:
                w.write(req)
                await w.drain()
                buf = b""
                while len(buf) < _MAX_ANSWER:
                    chunk = await r.read(512)
                    if not chunk:
                        break
                    buf += chunk
            except (OSError, ValueError) as e:
                if ctx is not None:
                    raise LinkError(_tls_message(e))
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
