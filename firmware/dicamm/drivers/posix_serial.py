# Serial port on the unix port (a USB adapter's tty or a pty from the bench
# emulator), with the serial port contract of ModbusMaster.
#
# Never blocking: MicroPython's open() has no O_NONBLOCK and its
# FileIO.readinto() keeps calling read(2) until the buffer is full, so on a
# tty in the usual raw mode (VMIN=1) it would block the event loop. We set
# VMIN=0 and VTIME=0: read(2) then returns at once with what is there, 0 when
# nothing is, and readinto() stops at that 0. A poll with timeout 0 in front
# skips the read call when nothing is waiting. CPython behaves the same way.
import select
import termios

from micropython import const

# Linux termios values (MicroPython's termios exports only a few B* names).
_BAUD = {1200: 9, 1800: 10, 2400: 11, 4800: 12, 9600: 13, 19200: 14, 38400: 15,
         57600: 0o10001, 115200: 0o10002, 230400: 0o10003}
_CSIZE = const(0o60)
_CS8 = const(0o60)
_CSTOPB = const(0o100)
_CREAD = const(0o200)
_PARENB = const(0o400)
_PARODD = const(0o1000)
_CLOCAL = const(0o4000)
_CRTSCTS = const(0o20000000000)
_INPCK = const(0o20)
_VTIME = const(5)
_VMIN = const(6)
_POLLIN = const(1)
_POLLERR_HUP = const(0x18)  # POLLERR | POLLHUP
_EIO = const(5)
_FLUSH_MAX = const(4096)  # bytes dropped per flush_input at most


class PosixSerial:
    def __init__(self, path, baud, parity="N", stopbits=1):
        if baud not in _BAUD:
            raise ValueError("baud")
        if parity not in ("N", "E", "O") or stopbits not in (1, 2):
            raise ValueError("framing")
        self.path = path
        self.baud = baud
        self._f = open(path, "r+b", buffering=0)
        try:
            self._fd = self._f.fileno()
            self._configure(baud, parity, stopbits)
            self._poll = select.poll()
            self._poll.register(self._f, select.POLLIN)
        except Exception:
            self._f.close()
            raise
        self._scrap = bytearray(64)

    def _configure(self, baud, parity, stopbits):
        a = termios.tcgetattr(self._fd)
        speed = _BAUD[baud]
        cflag = a[2] & ~(_CSIZE | _PARENB | _PARODD | _CSTOPB | _CRTSCTS)
        cflag |= _CS8 | _CREAD | _CLOCAL
        iflag = 0
        if parity != "N":
            cflag |= _PARENB
            iflag = _INPCK
            if parity == "O":
                cflag |= _PARODD
        if stopbits == 2:
            cflag |= _CSTOPB
        a[0] = iflag  # no CR/LF mapping, no XON/XOFF, no break handling
        a[1] = 0  # raw output
        a[2] = cflag
        a[3] = 0  # no echo, no canonical mode, no signals
        a[4] = speed
        a[5] = speed
        cc = a[6]
        cc[_VMIN] = 0
        cc[_VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, a)

    def _ready(self):
        for _, ev in self._poll.poll(0):
            if ev & _POLLIN:
                return True
            if ev & _POLLERR_HUP:  # adapter unplugged, pty peer closed
                raise OSError(_EIO)
        return False

    def readinto(self, buf):
        # Bytes already received (0 when none); never waits.
        if not self._ready():
            return 0
        n = self._f.readinto(buf)
        return n or 0

    def write(self, buf):
        # Blocking fd: returns once the kernel holds every byte (MicroPython
        # loops itself; CPython may take a part, so finish it here).
        mv = memoryview(buf)
        done = 0
        total = len(mv)
        while done < total:
            n = self._f.write(mv[done:])
            if not n:
                break
            done += n
        return done

    def flush_input(self):
        dropped = 0
        while dropped < _FLUSH_MAX:
            n = self.readinto(self._scrap)
            if not n:
                return
            dropped += n

    def close(self):
        if self._f is not None:
            try:
                self._poll.unregister(self._f)
            except Exception:
                pass
            self._f.close()
            self._f = None
