# One HTTP(S) GET whose body goes to a sink chunk by chunk (the firmware update's
# download): never more than one chunk in RAM, a deadline for the head and for
# every chunk (real ms, a wire-level limit), so a server that hangs, trickles or
# answers too much fails with a clear LinkError while the other tasks run on.
# TLS waits are on the socket's descriptor (drivers/tls_stream.py).
from micropython import const

from dicamm.errors import LinkError
from dicamm.platform import asyncio
from dicamm.drivers.tls_stream import close, open_tls
from dicamm.proto.http import content_length, get_request, headers, parse_url, status

_HEAD_MAX = const(2048)
_CHUNK = const(512)


async def _read(r, timeout_ms, what):
    try:
        return await asyncio.wait_for_ms(r.read(_CHUNK), timeout_ms)
    except asyncio.TimeoutError:
        raise LinkError("server silent for %d ms (%s)" % (timeout_ms, what))
    except (OSError, ValueError) as e:
        raise LinkError("connection error (%s) in %s" % (e, what))


async def get(url, sink, ctx=None, plain_ok=False, timeout_ms=10000, max_bytes=1 << 20):
    # GET url; sink(bytes) gets the body in chunks; returns its length. ctx: the
    # TLS context for https (its CA decides whom to trust); plain http only
    # with plain_ok (the bench).
    scheme, host, port, path = parse_url(url)
    if scheme == "http" and not plain_ok:
        raise LinkError("plain http refused (update.plain_http is for the bench)")
    try:
        if scheme == "https":
            conn = await asyncio.wait_for_ms(open_tls(host, port, ctx, host), timeout_ms)
        else:
            conn = await asyncio.wait_for_ms(asyncio.open_connection(host, port), timeout_ms)
    except asyncio.TimeoutError:
        raise LinkError("cannot connect to %s:%d within %d ms" % (host, port, timeout_ms))
    except OSError as e:
        raise LinkError("cannot connect to %s:%d (%s)" % (host, port, e))
    r, w = conn
    try:
        w.write(get_request(host, port, path))
        try:
            await asyncio.wait_for_ms(w.drain(), timeout_ms)   # with TLS: the handshake
        except asyncio.TimeoutError:
            raise LinkError("no TLS handshake with %s:%d within %d ms" % (host, port, timeout_ms))
        except (OSError, ValueError) as e:
            raise LinkError("TLS with %s:%d failed (%s)" % (host, port, e))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = await _read(r, timeout_ms, "answer head")
            if not chunk:
                raise LinkError("connection closed before the answer")
            buf += chunk
            if len(buf) > _HEAD_MAX:
                raise LinkError("answer head over %d bytes" % _HEAD_MAX)
        head, _, rest = buf.partition(b"\r\n\r\n")
        line, hs = headers(head)
        code = status(line)
        if code != 200:
            raise LinkError("server answered HTTP %d for %s" % (code, path))
        n = content_length(hs)
        if n is None:
            raise LinkError("answer without Content-Length")
        if n > max_bytes:
            raise LinkError("answer of %d bytes, at most %d expected" % (n, max_bytes))
        got = 0
        while True:
            if rest:
                take = rest[:n - got]
                sink(take)
                got += len(take)
            if got >= n:
                return n
            rest = await _read(r, timeout_ms, "body at byte %d of %d" % (got, n))
            if not rest:
                raise LinkError("connection closed at byte %d of %d" % (got, n))
    finally:
        close(conn)
