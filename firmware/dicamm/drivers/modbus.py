# Modbus RTU master: the transaction layer over a serial port object
# (write, readinto that never blocks, flush_input, baud). One transaction at
# a time (asyncio.Lock); each attempt waits for t3.5 of line silence, sends
# the request, then polls the port and feeds the hunting parser until the
# answer is complete or the response deadline passes. Timeouts and frame
# errors are retried, exception responses are not (except 06 busy).
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from dicamm.errors import ModbusError, ModbusException, ModbusFrameError, ModbusTimeout
from dicamm.platform import asyncio
from dicamm.proto import rtu

_POLL_MS = const(1)  # between reads of the port while waiting
_BUSY_BACKOFF_MS = const(100)  # before repeating a request answered "busy"
_BUSY = const(6)
_FRAME_KINDS = ("function", "count", "echo", "truncated")


class ModbusMaster:
    def __init__(self, port, timeout_ms=1000, retries=2):
        self.port = port
        self.timeout_ms = timeout_ms
        self.retries = retries
        self._req = bytearray(rtu.MAX_FRAME)
        self._reqmv = memoryview(self._req)
        self._parser = rtu.ResponseParser()
        self._lock = asyncio.Lock()
        self._last_io = ticks_add(ticks_ms(), -1000)  # line assumed quiet
        # Counters: requests put on the wire (every attempt), bytes each way,
        # failed attempts by kind, and the text of the last failure.
        self.transactions = 0
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.errors = {"timeout": 0, "crc": 0, "unit": 0, "exception": 0, "frame": 0, "port": 0}
        self.last_error = None

    async def read_registers(self, unit, function, address, count):
        # 0x03 / 0x04: bytes of 2 * count, big-endian words as on the wire.
        async with self._lock:
            n = rtu.build_read(self._req, unit, function, address, count)
            r = await self._transact(n, unit, function, count, False)
            return bytes(r)

    async def write_register(self, unit, address, value):
        # 0x06: the slave echoes the request.
        async with self._lock:
            n = rtu.build_write_single(self._req, unit, address, value)
            await self._transact(n, unit, rtu.WRITE_SINGLE, 1, True)

    async def write_registers(self, unit, address, values):
        # 0x10: the answer repeats address and quantity.
        async with self._lock:
            n = rtu.build_write_multiple(self._req, unit, address, values)
            await self._transact(n, unit, rtu.WRITE_MULTIPLE, len(values), True)

    async def _transact(self, n, unit, function, count, echo):
        attempt = 0
        while True:
            try:
                return await self._attempt(n, unit, function, count, echo)
            except ModbusException as e:
                self._fail("exception", e, unit, function)
                if e.code != _BUSY or attempt >= self.retries:
                    raise
                await asyncio.sleep_ms(_BUSY_BACKOFF_MS)
            except ModbusTimeout as e:
                self._fail("timeout", e, unit, function)
                if attempt >= self.retries:
                    raise
            except ModbusFrameError as e:
                kind = getattr(e, "kind", "frame")
                self._fail("frame" if kind in _FRAME_KINDS else kind, e, unit, function)
                if attempt >= self.retries:
                    raise
            attempt += 1

    def _fail(self, kind, exc, unit, function):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = "%s: unit %d function 0x%02x: %s" % (kind, unit, function, exc)

    async def _attempt(self, n, unit, function, count, echo):
        port = self.port
        p = self._parser
        p.expect(unit, function, count, self._reqmv[2:6] if echo else None)
        await self._quiet()
        try:
            w = port.write(self._reqmv[:n])
        except OSError as e:
            self._port_error(e)
        if w is None:  # some UART drivers report a write timeout so
            w = 0
        self.transactions += 1
        self.tx_bytes += w
        if w != n:
            self._port_error("short write %d of %d" % (w, n))
        now = ticks_ms()
        # The request may still be leaving a slow line: start the response
        # deadline once its last character is out.
        tx_ms = rtu.frame_us(n, port.baud) // 1000 + 1
        self._last_io = ticks_add(now, tx_ms)
        deadline = ticks_add(now, tx_ms + self.timeout_ms)
        while True:
            try:
                got = port.readinto(p.space())
            except OSError as e:
                self._port_error(e)
            if got:
                self.rx_bytes += got
                self._last_io = ticks_ms()
                r = p.added(got)  # raises ModbusException on an exception answer
                if r is not None:
                    return r
            if ticks_diff(deadline, ticks_ms()) <= 0:  # also on a babbling line
                e = p.frame_error()
                if e is not None:
                    raise e
                raise ModbusTimeout("no answer in %d ms" % self.timeout_ms)
            await asyncio.sleep_ms(_POLL_MS)

    def _port_error(self, why):
        self.errors["port"] += 1
        self.last_error = "port: %s" % (why,)
        raise ModbusError("port: %s" % (why,))

    async def _quiet(self):
        # Drop stale input, then make sure the line has been silent for t3.5
        # before we talk (a late answer to a previous request is discarded).
        port = self.port  # read each time: `meter scan` swaps ports and bauds
        t35_ms = (rtu.t35_us(port.baud) + 999) // 1000
        try:
            port.flush_input()
        except OSError as e:
            self._port_error(e)
        scratch = self._parser.space()
        deadline = ticks_add(ticks_ms(), self.timeout_ms)
        while True:
            try:
                got = port.readinto(scratch)
            except OSError as e:
                self._port_error(e)
            now = ticks_ms()
            if got:
                self.rx_bytes += got
                self._last_io = now
            idle = ticks_diff(now, self._last_io)
            if idle >= t35_ms:
                return
            if ticks_diff(deadline, now) <= 0:
                return  # a babbling line: send anyway, the parser hunts
            await asyncio.sleep_ms(t35_ms - idle)
