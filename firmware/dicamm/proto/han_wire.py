# The HAN interface's wire format (docs/HAN.md), without I/O: the gateway URL,
# the TAF16 trigger as an HTTP POST, the gateway's answer checked and parsed
# (and whether the connection may carry the next event: HTTP/1.1 persistence,
# RFC 9112 section 9.3), and a TLS failure put into words. The socket and TLS
# side is drivers/han_client.py.
import json

from micropython import const

from dicamm.errors import LinkError
from dicamm.proto.http import headers, status

_TEXT_MAX = const(64)
# BSI TR-03116-3 chapter 5 ("TLS-Kommunikation im HAN"): TLS 1.2 (RFC 5246) with
# ECDHE-ECDSA and AES-128/256 in GCM or CBC mode (RFC 5289), spelled as mbedTLS
# names them (tls.SSLContext.set_ciphers, SSLSocket.cipher()).
HAN_SUITES = ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
              "TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA384")
HAN_TLS = "TLSv1.2"
# mbedTLS: MBEDTLS_ERR_X509_CERT_VERIFY_FAILED and MBEDTLS_ERR_SSL_BAD_CERTIFICATE;
# ..._SSL_FATAL_ALERT_MESSAGE (the gateway broke off the handshake: with this client's
# suites that means no suite or version in common); ..._BAD_PROTOCOL_VERSION and
# ..._HANDSHAKE_FAILURE (this client found none in the gateway's answer).
_VERIFY_CODES = (-0x2700, -0x7A00)
_ALERT = const(-0x7780)
_NO_COMMON = (-0x6E80, -0x6E00)


def body(event):
    # The JSON sent to the gateway: the four TAF16 fields and the time status
    # the timestamp was taken with (S/I/U; an event without one is U) with its
    # uncertainty in ms (error_ms: only while S, else null).
    st = event.get("time_status") or "U"
    err = event.get("error_ms") if st == "S" else None
    return json.dumps({"uuid": event["uuid"], "cls_id": event["cls_id"],
                       "text": event["text"][:_TEXT_MAX], "timestamp": event["timestamp"],
                       "time_status": st, "error_ms": err})


def request(host, port, path, event, keep=False):
    # The whole HTTP request for one event, as bytes. keep: ask the gateway to
    # keep the connection for the next event (else it closes after answering).
    b = body(event)
    return ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: %s\r\n\r\n%s"
            % (path, host, port, len(b), "keep-alive" if keep else "close", b)).encode()


def answer_size(buf):
    # How many bytes of buf the answer takes: None while its head is still
    # incomplete, -1 when it has no Content-Length (it ends when the gateway
    # closes). A persistent connection needs the length to find the end.
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    n = headers(buf[:i])[1].get(b"content-length")
    try:
        return i + 4 + int(n) if n is not None else -1
    except ValueError:
        raise LinkError("bad Content-Length")


def persistence(raw):
    # After a complete answer: -1 if the gateway closes the connection, else
    # the idle seconds it promises to keep it (its Keep-Alive timeout, 0 =
    # not said). HTTP/1.1 is persistent unless "Connection: close" (RFC 9112
    # 9.3); without a Content-Length the end of the answer is the close.
    head = raw.partition(b"\r\n\r\n")[0]
    line, hs = headers(head)
    if not line or line[0] != b"HTTP/1.1" or b"content-length" not in hs:
        return -1
    if b"close" in hs.get(b"connection", b"").lower():
        return -1
    for part in hs.get(b"keep-alive", b"").split(b","):
        k, _, v = part.strip().partition(b"=")
        if k.strip().lower() == b"timeout" and v.strip().isdigit():
            return int(v.strip())
    return 0


def parse_answer(raw, uuid):
    # raw: the whole HTTP response. Returns the gateway's record or raises LinkError.
    head, sep, payload = raw.partition(b"\r\n\r\n")
    if not sep:
        raise LinkError("incomplete HTTP answer")
    line, hs = headers(head)
    code = status(line)
    if code not in (200, 201):
        raise LinkError("gateway answered HTTP %d" % code)
    if b"content-length" in hs:
        try:
            n = int(hs[b"content-length"])
        except ValueError:
            raise LinkError("bad Content-Length")
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
    if code == _ALERT or code in _NO_COMMON:
        return ("gateway refused TLS: no TLS 1.2 ECDHE-ECDSA suite of BSI TR-03116-3 in common "
                "(gateway offers RSA or TLS < 1.2?) (%s)" % text)
    if code > 0:  # a plain errno: the gateway hung up during the handshake
        return "TLS connection closed by gateway (errno %d; device certificate refused?)" % code
    return "TLS error (%s)" % text


def check_session(cipher):
    # cipher: the TLS socket's cipher() after the handshake, (suite, version).
    if cipher[1] != HAN_TLS or cipher[0] not in HAN_SUITES:
        raise LinkError("gateway agreed on %s %s: not TLS 1.2 with a TR-03116-3 suite" % (cipher[1], cipher[0]))
