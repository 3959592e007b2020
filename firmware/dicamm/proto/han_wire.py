# The HAN interface's wire format (docs/HAN.md), without I/O: the gateway URL,
# the TAF16 trigger as an HTTP POST, the gateway's answer checked and parsed,
# and a TLS failure put into words. The socket and TLS side is
# drivers/han_client.py.
import json

from micropython import const

from dicamm.errors import LinkError

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


def body(event):
    # The JSON sent to the gateway: exactly the four TAF16 fields.
    return json.dumps({"uuid": event["uuid"], "cls_id": event["cls_id"],
                       "text": event["text"][:_TEXT_MAX], "timestamp": event["timestamp"]})


def request(host, port, path, event):
    # The whole HTTP request for one event, as bytes.
    b = body(event)
    return ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (path, host, port, len(b), b)).encode()


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


def tls_message(e):
    # MicroPython raises ValueError with mbedTLS's verify text for an untrusted,
    # expired or wrong-name certificate, OSError with a (negative) code otherwise.
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    text = " ".join(str(e).split())
    if isinstance(e, ValueError) or code in _VERIFY_CODES or "VERIFY" in text:
        return "gateway certificate not trusted (%s)" % text
    if code > 0:  # a plain errno: the gateway hung up during the handshake
        return "TLS connection closed by gateway (errno %d; device certificate refused?)" % code
    return "TLS error (%s)" % text
