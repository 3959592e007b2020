# Modbus RTU framing for the master side. Pure: bytes in, values out; no I/O
# and no clock. Requests are built into a caller's preallocated buffer; the
# ResponseParser is fed bytes as they arrive and hunts for the one frame the
# master waits for: it skips garbage before a frame, waits for split frames,
# slides one byte on a bad CRC, and drops valid frames that are not the
# answer (another unit, another function, wrong length or echo), remembering
# why so that a missing answer can be reported as the right kind of fault.
from micropython import const

from dicamm.proto.crc16 import append as _crc_append
from dicamm.proto.crc16 import valid as _crc_valid
from dicamm.errors import ModbusException, ModbusFrameError

READ_HOLDING = const(0x03)
READ_INPUT = const(0x04)
WRITE_SINGLE = const(0x06)
WRITE_MULTIPLE = const(0x10)

MAX_FRAME = const(256)  # RTU ADU limit: unit + PDU (253) + CRC
_MAX_READ = const(125)  # registers per read request
_MAX_WRITE = const(123)  # registers per write-multiple request
_MAX_BYTE_COUNT = const(250)  # largest byte count field in any read response


def t35_us(baud):
    # Inter-frame silence: 3.5 characters of 11 bits; fixed 1750 us above 19200.
    if baud > 19200:
        return 1750
    return (38500000 + baud - 1) // baud


def frame_us(nbytes, baud):
    # Time on the wire for nbytes characters of 11 bits (rounded up).
    return (nbytes * 11000000 + baud - 1) // baud


def response_len(function, count):
    # Length of a normal response to a request we built (exceptions are 5).
    if function == READ_HOLDING or function == READ_INPUT:
        return 5 + 2 * count
    return 8


def _check_unit(unit):
    if unit < 1 or unit > 247:
        raise ValueError("unit")


def _check_word(v):
    if v < 0 or v > 0xFFFF:
        raise ValueError("register value")


def _header(buf, unit, function, address, word):
    _check_unit(unit)
    _check_word(address)
    buf[0] = unit
    buf[1] = function
    buf[2] = address >> 8
    buf[3] = address & 0xFF
    buf[4] = word >> 8
    buf[5] = word & 0xFF


def build_read(buf, unit, function, address, count):
    # 0x03 / 0x04 request into buf; returns its length (8).
    if function != READ_HOLDING and function != READ_INPUT:
        raise ValueError("function")
    if count < 1 or count > _MAX_READ:
        raise ValueError("count")
    _header(buf, unit, function, address, count)
    return _crc_append(buf, 6)


def build_write_single(buf, unit, address, value):
    # 0x06 request; returns 8.
    _check_word(value)
    _header(buf, unit, WRITE_SINGLE, address, value)
    return _crc_append(buf, 6)


def build_write_multiple(buf, unit, address, values):
    # 0x10 request; returns 9 + 2 * len(values).
    count = len(values)
    if count < 1 or count > _MAX_WRITE:
        raise ValueError("count")
    _header(buf, unit, WRITE_MULTIPLE, address, count)
    buf[6] = 2 * count
    j = 7
    for v in values:
        _check_word(v)
        buf[j] = v >> 8
        buf[j + 1] = v & 0xFF
        j += 2
    return _crc_append(buf, j)


def exception_error(code, function):
    # The ModbusException for an exception response (function | 0x80, code).
    return ModbusException(code, function)


def _length_for(buf, i, n, f):
    # Frame length implied by the function code at buf[i+1] = f;
    # 0 = not a frame start, -1 = need more bytes to tell.
    if f & 0x80:
        return 5
    if f == 1 or f == 2 or f == 3 or f == 4:
        if i + 2 >= n:
            return -1
        bc = buf[i + 2]
        if bc == 0 or bc > _MAX_BYTE_COUNT or (f >= 3 and bc & 1):
            return 0
        return 5 + bc
    if f == 5 or f == 6 or f == 15 or f == 16:
        return 8
    return 0


class ResponseParser:
    def __init__(self, size=MAX_FRAME):
        if size < MAX_FRAME:
            raise ValueError("size")
        self.buf = bytearray(size)
        self._mv = memoryview(self.buf)
        self._echo = bytearray(4)
        self.n = 0
        self.unit = 0
        self.function = 0
        self.count = 0
        self._has_echo = False
        self.done = False
        self.error = None  # kind of the last rejected frame in this exchange
        self.detail = None
        # Life-time diagnostics.
        self.foreign = 0  # valid frames from another unit
        self.crc_errors = 0  # candidate frames with a bad CRC
        self.skipped = 0  # bytes dropped while hunting

    def expect(self, unit, function, count, echo=None):
        # Start waiting for the answer. count: registers read (03/04) or
        # written (10); echo: the 4 bytes (address, value/quantity) a 06/10
        # answer must repeat, or None to accept any.
        self.unit = unit
        self.function = function
        self.count = count
        self._has_echo = echo is not None
        if self._has_echo:
            self._echo[:] = echo
        self.n = 0
        self.done = False
        self.error = None
        self.detail = None

    def space(self):
        # Free part of the buffer, for port.readinto(); then call added(k).
        return self._mv[self.n:]

    def added(self, k):
        # k bytes were written into space(). Returns the payload as a
        # memoryview (03/04: the register bytes; 06/10: the 4 echoed bytes)
        # once the answer is complete, else None. Raises ModbusException on
        # an exception response from our unit.
        if self.done or k <= 0:
            return None
        self.n += k
        return self._scan()

    def feed(self, data):
        # Copying variant of space()/added() for any length of data.
        pos = 0
        total = len(data)
        mv = memoryview(data)
        while pos < total and not self.done:
            room = len(self.buf) - self.n
            if room == 0:  # cannot happen for frames <= MAX_FRAME; stay safe
                self._drop(1)
                room = 1
            k = min(room, total - pos)
            self.buf[self.n:self.n + k] = mv[pos:pos + k]
            pos += k
            r = self.added(k)
            if r is not None:
                return r
        return None

    def pending(self):
        # True when bytes of a possible, still incomplete frame are held.
        return not self.done and self.n >= 2

    def frame_error(self):
        # The fault to report when the deadline passes without an answer:
        # ModbusFrameError with .kind in crc, unit, function, count, echo,
        # truncated; or None (nothing but silence: a timeout).
        if self.error is None:
            if not self.pending():
                return None
            self._reject("truncated", "truncated frame (%d bytes)" % self.n)
        e = ModbusFrameError(self.detail)
        e.kind = self.error
        return e

    def _reject(self, kind, detail):
        self.error = kind
        self.detail = detail

    def _drop(self, k):
        if k <= 0:
            return
        n = self.n
        buf = self.buf
        for j in range(n - k):  # explicit: slice copies may use memcpy on overlap
            buf[j] = buf[j + k]
        self.n = n - k
        self.skipped += k

    def _scan(self):
        buf = self.buf
        n = self.n
        unit = self.unit
        want = self.function
        i = 0
        keep = -1  # first start that may still grow into a frame
        while i + 1 < n:
            u = buf[i]
            f = buf[i + 1]
            if u == 0 or u > 247:
                i += 1
                continue
            if u != unit and f != want and f != (want | 0x80):
                i += 1  # another unit's traffic we cannot size reliably
                continue
            size = _length_for(buf, i, n, f)
            if size == 0:
                i += 1
                continue
            if size < 0 or i + size > n:
                if keep < 0:
                    keep = i
                i += 1
                continue
            if not _crc_valid(buf, i, i + size):
                if keep < 0:  # counted once: everything up to here is dropped
                    self.crc_errors += 1
                    self._reject("crc", "bad crc")
                i += 1
                continue
            r = self._judge(i, size)
            if r is not None:
                self.done = True
                self.skipped += i
                return r
            # A valid frame that is not the answer: consume it whole.
            keep = -1
            i += size
        self._drop(keep if keep >= 0 else min(i, n))
        return None

    def _judge(self, i, size):
        # A frame with a good CRC at buf[i:i+size]: the payload, or None
        # after noting why it is not the answer.
        buf = self.buf
        u = buf[i]
        f = buf[i + 1]
        if u != self.unit:
            self.foreign += 1
            self._reject("unit", "answer from unit %d, expected %d" % (u, self.unit))
            return None
        if f == self.function | 0x80:
            self.done = True
            raise exception_error(buf[i + 2], self.function)
        if f != self.function:
            self._reject("function", "function 0x%02x, expected 0x%02x" % (f, self.function))
            return None
        if f == READ_HOLDING or f == READ_INPUT:
            bc = buf[i + 2]
            if bc != 2 * self.count:
                self._reject("count", "byte count %d, expected %d" % (bc, 2 * self.count))
                return None
            return self._mv[i + 3:i + 3 + bc]
        if self._has_echo:
            e = self._echo
            if buf[i + 2] != e[0] or buf[i + 3] != e[1] or buf[i + 4] != e[2] or buf[i + 5] != e[3]:
                self._reject("echo", "echo does not match the request")
                return None
        elif f == WRITE_MULTIPLE and ((buf[i + 4] << 8) | buf[i + 5]) != self.count:
            self._reject("count", "quantity %d, expected %d" % ((buf[i + 4] << 8) | buf[i + 5], self.count))
            return None
        return self._mv[i + 2:i + 6]
