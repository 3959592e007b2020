# SNTP client: one request, one answer, over a non-blocking UDP socket.
#
# T1 and T4 come from the device clock's wall_ms() (the clock we correct);
# the answer deadline is real time (time.ticks_ms), as for every wire-level
# timeout. Waiting uses the asyncio IO queue (StreamReader on the socket), so
# T4 is read as soon as the datagram arrives and other tasks keep running.
# DNS: socket.getaddrinfo() blocks on boards (lwIP) for up to a few seconds and
# tells no TTL, so an answer is kept for an hour of real time (RFC 4330 section 10:
# a client should not resolve the name for every request), and dropped at once
# when the server stops answering (it may have moved).
import socket
import time

from dicamm.platform import asyncio

from micropython import const

from dicamm.proto import sntp_packet
from dicamm.errors import LinkError

NTP_PORT = const(123)
_DNS_KEEP_MS = const(3600000)


class SntpClient:
    def __init__(self, clock):
        self.clock = clock
        self._buf = bytearray(sntp_packet.PACKET_LEN)  # request and reply
        self.ignored = 0  # datagrams that were not the answer to our request
        # One buffer serves every query: a console `time sync` running beside
        # the background resync waits its turn instead of sharing it.
        self._lock = asyncio.Lock()
        self._dns = {}  # (host, port) -> (address, real ticks when resolved)
        self.resolved = 0  # DNS lookups made

    def _address(self, host, port):
        key = (host, port)
        hit = self._dns.get(key)
        if hit and time.ticks_diff(time.ticks_ms(), hit[1]) < _DNS_KEEP_MS:
            return hit[0]
        try:
            addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        except Exception as e:  # OSError or a port's own gaierror
            raise LinkError("dns %s: %r" % (host, e))
        self.resolved += 1
        self._dns[key] = (addr, time.ticks_ms())
        return addr

    async def query(self, host, port=NTP_PORT, timeout_ms=1000):
        # -> (offset_ms, delay_ms, server, stratum); raises LinkError
        # (SntpReject with .kod for a server that refused us).
        addr = self._address(host, port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # connect() makes the kernel drop datagrams from other addresses
            sock.connect(addr)
            async with self._lock:
                return await self._exchange(sock, host, timeout_ms)
        except OSError as e:
            self._dns.pop((host, port), None)
            raise LinkError("%s: %r" % (host, e))
        except LinkError as e:
            if getattr(e, "kod", None) is None:  # silence or garbage: ask DNS again next time
                self._dns.pop((host, port), None)
            raise
        finally:
            sock.close()

    async def _exchange(self, sock, host, timeout_ms):
        buf = self._buf
        clock = self.clock
        reader = asyncio.StreamReader(sock)
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        t1 = clock.wall_ms()
        sntp_packet.request(buf, t1)
        sock.write(buf)
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                raise LinkError("%s: timeout" % host)
            try:
                n = await asyncio.wait_for_ms(reader.readinto(buf), left)
            except asyncio.TimeoutError:
                raise LinkError("%s: timeout" % host)
            t4 = clock.wall_ms()
            if not n:
                continue
            try:
                li, stratum, t2, t3, refid = sntp_packet.parse(buf, n, t1)
            except sntp_packet.SntpReject as e:
                if e.reason != "not our answer":
                    raise
                self.ignored += 1  # keep listening for the real one
                continue
            offset, delay = sntp_packet.offset_delay(t1, t2, t3, t4)
            if delay < 0:
                raise LinkError("%s: negative delay" % host)
            return offset, delay, host, stratum
