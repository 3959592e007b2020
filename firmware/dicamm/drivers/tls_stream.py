# A TLS client connection for asyncio that waits on the plain socket beneath it;
# closing a connection on its socket; certificate files as DER for a TLS context.
#
# Why not asyncio.open_connection(ssl=...): its stream waits on the TLS socket,
# an object without a file descriptor. The unix port's select.poll checks such
# objects by calling them every millisecond, and then sleeps that millisecond
# even when the event loop asked for a timeout of 0: while a TLS read waits in the
# poll set (a gateway slow to answer, or one that hangs until the post's deadline)
# every step of every task costs about 1 ms (measured on the unix port: 449
# scheduler steps per ms without, 0.9 with one such read waiting). On the bench's
# 1440x clock one step is then 1.4 device s: SNTP samples took 17-27 real ms (legal
# time uncertain by 12-14 s) and the load profile's read overshot its 9 s. The
# ESP32 port returns at once either way; waiting on the descriptor costs nothing on
# both. The TLS socket is read first (it may hold decrypted bytes the descriptor no
# longer shows); a write that would block (the handshake waiting for the
# gateway's next flight) retries after 1 ms, a sleep that keeps no object in the
# poll set.
from errno import EINPROGRESS
import select
import socket

from micropython import const

from dicamm.errors import LinkError
from dicamm.platform import asyncio
from dicamm.proto import pem

_RETRY_MS = const(1)
_NOTHING = bytearray(0)  # a read of nothing: only the wait for the descriptor


class TlsStream:
    # The reader and writer of one TLS connection: `s` the TLS socket, `raw` the
    # socket beneath it, whose descriptor the waits are on.
    def __init__(self, tls_sock, raw):
        self.s = tls_sock
        self.raw = raw
        self._wait = asyncio.StreamReader(raw)  # its readinto(nothing): wait until readable
        self._out = b""

    async def read(self, n):
        # Up to n > 0 bytes; b"" at the end of the stream.
        while True:
            r = self.s.read(n)
            if r is not None:
                return r
            await self._wait.readinto(_NOTHING)

    def write(self, buf):
        self._out += buf

    async def drain(self):
        # Sends what write() took; a would-block (the handshake waiting for the
        # gateway's next flight) retries after _RETRY_MS.
        mv = memoryview(self._out)
        off = 0
        while off < len(mv):
            n = self.s.write(mv[off:])
            if n is None:
                await asyncio.sleep_ms(_RETRY_MS)
            else:
                off += n
        self._out = b""
        await asyncio.sleep_ms(0)  # drain always yields, as asyncio's does


async def open_tls(host, port, ctx, server_hostname):
    # -> (reader, writer), one TlsStream; the handshake runs in the first drain.
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    raw = socket.socket(ai[0], ai[1], ai[2])
    raw.setblocking(False)
    try:
        raw.connect(ai[-1])
    except OSError as e:
        if e.errno != EINPROGRESS:
            raw.close()
            raise
    p = select.poll()
    p.register(raw, select.POLLOUT)  # connected (or failed: the handshake then says how)
    while not p.poll(0):
        await asyncio.sleep_ms(_RETRY_MS)
    s = ctx.wrap_socket(raw, server_hostname=server_hostname, do_handshake_on_connect=False)
    s.setblocking(False)
    st = TlsStream(s, raw)
    return st, st


def close(conn):
    # Closes a (reader, writer) connection, TLS or plain, or nothing (None), on
    # its socket: asyncio's Stream.close() does nothing.
    if conn is not None:
        try:
            conn[1].s.close()
        except Exception:
            pass


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
