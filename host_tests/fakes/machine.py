# A fake `machine` module for host tests on the MicroPython unix port (and
# CPython). Never shipped: build_mpy and deploy take files from firmware/ and
# build/lib only. Every hardware action is appended to LOG, in order, so a test
# can check what happened first. Inputs come from INPUTS {pin: level} and
# RESET_CAUSE, which a test sets directly or through fake_machine.json in the
# working directory ({"reset_cause": 3, "inputs": {"0": 0}}).
import json

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

LOG = []
INPUTS = {}
RESET_CAUSE = PWRON_RESET

try:
    with open("fake_machine.json") as _f:
        _cfg = json.load(_f)
    RESET_CAUSE = _cfg.get("reset_cause", RESET_CAUSE)
    for _k, _v in _cfg.get("inputs", {}).items():
        INPUTS[int(_k)] = _v
except (OSError, ValueError):
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        self.id = id
        self.mode = mode
        self._value = value if value is not None else 0
        LOG.append(("pin", id, mode, pull, value))

    def init(self, mode=-1, pull=-1, value=None, **kw):
        self.mode = mode
        if value is not None:
            self._value = value
        LOG.append(("pin", self.id, mode, pull, value))

    def value(self, v=None):
        if v is None:
            if self.mode == Pin.IN:
                return INPUTS.get(self.id, 1)
            return self._value
        self._value = 1 if v else 0
        LOG.append(("set", self.id, self._value))

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    __call__ = value


class UART:
    def __init__(self, id, baudrate=9600, **kw):
        self.id = id
        self.baudrate = baudrate
        self.kw = kw
        self.rx = bytearray()
        self.tx = bytearray()
        LOG.append(("uart", id, baudrate))

    def write(self, buf):
        self.tx.extend(buf)
        return len(buf)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n < 0 else min(n, len(self.rx))
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def readinto(self, buf, n=None):
        data = self.read(len(buf) if n is None else n)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def flush(self):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.fed = 0
        LOG.append(("wdt", timeout))

    def feed(self):
        self.fed += 1


class RTC:
    def __init__(self):
        self._mem = b""

    def memory(self, data=None):
        if data is None:
            return self._mem
        self._mem = bytes(data)


def reset_cause():
    return RESET_CAUSE


def reset():
    LOG.append(("reset",))
    raise SystemExit("machine.reset")


def soft_reset():
    LOG.append(("soft_reset",))
    raise SystemExit("machine.soft_reset")


def freq(hz=None):
    return 240000000


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def idle():
    pass
