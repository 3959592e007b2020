# PosixSerial + ModbusMaster end to end over a pseudo-terminal: the master
# runs in a MicroPython (and, as a nice-to-have, a CPython) process on the pty
# slave; a CPython thread on the pty master side answers with scripted
# frames, some split, slow, noisy, wrong or missing.
import json
import os
import select
import subprocess
import sys
import threading
import time

import pytest

from conftest import FIRMWARE, MICROPYTHON, SHIMS

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

H = bytes.fromhex


def crc(body):
    c = 0xFFFF
    for b in body:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return body + bytes([c & 0xFF, c >> 8])


def resp(hexbody):
    return crc(H(hexbody))


POWER = resp("010404449a5000")  # 1234.5 W
FOUR = resp("010408449a5000c2610000")  # 1234.5, -56.25
BAD_CRC = POWER[:-1] + bytes([POWER[-1] ^ 0xFF])

# One entry per request the responder receives: (expected request, chunks),
# chunks = [(delay_s before the chunk, bytes)], [] = stay silent.
REQ_POWER = crc(H("010400340002"))
REQ_0348 = crc(H("010300480004"))
REQ_W1 = crc(H("010600100001"))
REQ_WN = crc(H("0110001000020400010002"))
SCRIPT = [
    (REQ_POWER, [(0, POWER)]),  # op 0: clean
    (REQ_POWER, [(0.003 * (i > 0), POWER[i:i + 1]) for i in range(len(POWER))]),  # op 1: byte by byte
    (REQ_0348, [(0.2, resp("010308449a5000c2610000"))]),  # op 2: slow (200 ms of 500)
    (REQ_POWER, [(0, b"\x00\xff"), (0.01, POWER[:4]), (0.02, POWER[4:])]),  # op 3: noise, split
    (REQ_POWER, []),  # op 4: no answer ...
    (REQ_POWER, [(0, POWER)]),  # ... then the retry gets one
    (REQ_POWER, [(0, resp("018402"))]),  # op 5: exception 02
    (REQ_W1, [(0, REQ_W1)]),  # op 6: write single, echoed
    (REQ_WN, [(0, resp("011000100002"))]),  # op 7: write multiple
    (REQ_POWER, [(0, resp("020404449a5000"))]),  # op 8: wrong unit, three times
    (REQ_POWER, [(0, resp("020404449a5000"))]),
    (REQ_POWER, [(0, resp("020404449a5000"))]),
    (REQ_POWER, [(0, BAD_CRC)]),  # op 9: bad crc, then good
    (REQ_POWER, [(0, b"\x55" * 3 + POWER)]),
    (REQ_0348, [(0, FOUR[:6])]),  # op 10: wrong function (04 answer to 03) ... and retries
    (REQ_0348, [(0, FOUR)]),
    (REQ_0348, [(0, resp("010308449a5000c2610000"))]),
]

MASTER_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[2])
if len(sys.argv) > 3:  # CPython: host_tests/shims (micropython.const, time.ticks_*, asyncio.sleep_ms)
    sys.path.insert(0, sys.argv[3])
    import mp_host
    mp_host.install()
import json, time
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
from dicamm.drivers.posix_serial import PosixSerial
from dicamm.drivers.modbus import ModbusMaster
from dicamm.errors import ModbusError, ModbusException, ModbusFrameError, ModbusTimeout

def now_ms():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)

port = PosixSerial(sys.argv[1], 9600)
buf = bytearray(32)
t0 = now_ms()
n = port.readinto(buf)
print(json.dumps({"probe": n, "ms": now_ms() - t0}))
m = ModbusMaster(port, timeout_ms=500, retries=2)

OPS = [
    ("r", 1, 4, 0x34, 2), ("r", 1, 4, 0x34, 2), ("r", 1, 3, 0x48, 4), ("r", 1, 4, 0x34, 2),
    ("r", 1, 4, 0x34, 2), ("r", 1, 4, 0x34, 2), ("w1", 1, 0x10, 1), ("wn", 1, 0x10, [1, 2]),
    ("r", 1, 4, 0x34, 2), ("r", 1, 4, 0x34, 2), ("r", 1, 3, 0x48, 4),
]

async def main():
    for op in OPS:
        try:
            if op[0] == "r":
                r = (await m.read_registers(op[1], op[2], op[3], op[4])).hex()
            elif op[0] == "w1":
                r = await m.write_register(op[1], op[2], op[3])
            else:
                r = await m.write_registers(op[1], op[2], op[3])
            out = {"ok": r}
        except ModbusError as e:
            name = "ModbusError"
            for k in (ModbusException, ModbusFrameError, ModbusTimeout):
                if isinstance(e, k):
                    name = k.__name__
            out = {"err": name, "kind": getattr(e, "kind", None),
                   "code": getattr(e, "code", None)}
        print(json.dumps(out))
    print(json.dumps({"transactions": m.transactions, "tx": m.tx_bytes, "rx": m.rx_bytes,
                      "errors": m.errors}))

asyncio.run(main())
port.close()
"""


class Responder(threading.Thread):
    def __init__(self, fd, script):
        threading.Thread.__init__(self, daemon=True)
        self.fd = fd
        self.script = list(script)
        self.requests = []
        self.stop = False
        self.error = None

    def run(self):
        buf = b""
        try:
            while not self.stop:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if not r:
                    continue
                try:
                    buf += os.read(self.fd, 512)
                except OSError:  # slave side closed
                    return
                while len(buf) >= 8:
                    size = 9 + buf[6] if buf[1] == 0x10 else 8
                    if len(buf) < size:
                        break
                    req, buf = buf[:size], buf[size:]
                    self.requests.append(req)
                    if not self.script:
                        continue
                    _, chunks = self.script.pop(0)
                    for delay, data in chunks:
                        if delay:
                            time.sleep(delay)
                        os.write(self.fd, data)
        except Exception as e:  # reported by the test
            self.error = e


def run_master(tmp_path, argv):
    mfd, sfd = os.openpty()
    path = os.ttyname(sfd)
    script = tmp_path / "master.py"
    script.write_text(MASTER_SCRIPT)
    resp_thread = Responder(mfd, SCRIPT)
    resp_thread.start()
    try:
        r = subprocess.run(argv + [str(script), path, FIRMWARE] + ([SHIMS] if "python" in argv[0] else []),
                           capture_output=True, text=True, timeout=60)
    finally:
        resp_thread.stop = True
        resp_thread.join(2)
        os.close(sfd)
        os.close(mfd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert resp_thread.error is None, resp_thread.error
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    return lines, resp_thread


def check(lines, responder):
    probe, ops, stats = lines[0], lines[1:-1], lines[-1]
    # Nothing waiting on the tty: readinto returns at once.
    assert probe["probe"] == 0 and probe["ms"] < 50, probe
    assert ops[0] == {"ok": "449a5000"}
    assert ops[1] == {"ok": "449a5000"}
    assert ops[2] == {"ok": "449a5000c2610000"}
    assert ops[3] == {"ok": "449a5000"}
    assert ops[4] == {"ok": "449a5000"}
    assert ops[5] == {"err": "ModbusException", "kind": None, "code": 2}
    assert ops[6] == {"ok": None}
    assert ops[7] == {"ok": None}
    assert ops[8]["err"] == "ModbusFrameError" and ops[8]["kind"] == "unit"
    assert ops[9] == {"ok": "449a5000"}
    assert ops[10] == {"ok": "449a5000c2610000"}
    assert len(ops) == 11
    # Exactly the requests the script expects, byte for byte.
    assert responder.requests == [req for req, _ in SCRIPT]
    assert stats["transactions"] == len(SCRIPT)
    assert stats["tx"] == sum(len(req) for req, _ in SCRIPT)
    assert stats["rx"] == sum(len(d) for _, chunks in SCRIPT for _, d in chunks)
    e = stats["errors"]
    assert e["timeout"] == 1 and e["exception"] == 1 and e["unit"] == 3 and e["crc"] == 1, e
    assert e["frame"] == 2 and e["port"] == 0, e


def test_master_on_micropython_over_pty(tmp_path):
    lines, responder = run_master(tmp_path, [MICROPYTHON, "-X", "heapsize=512k"])
    check(lines, responder)


def test_master_on_cpython_over_pty(tmp_path):
    lines, responder = run_master(tmp_path, [sys.executable])
    check(lines, responder)


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
def test_posix_serial_reads_without_blocking(tmp_path, interp):
    # A burst arrives while the reader is busy; readinto returns what is there
    # (parts of it if the buffer is small) and 0 right away once drained.
    mfd, sfd = os.openpty()
    path = os.ttyname(sfd)
    script = tmp_path / "probe.py"
    script.write_text(r"""
import sys
sys.path.insert(0, sys.argv[2])
if len(sys.argv) > 3:
    sys.path.insert(0, sys.argv[3])
import time
from dicamm.drivers.posix_serial import PosixSerial

def now_ms():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)

p = PosixSerial(sys.argv[1], 19200, parity="E", stopbits=1)
print("ready")
sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
got = b""
buf = bytearray(7)
t = now_ms()
while len(got) < 20 and now_ms() - t < 5000:
    n = p.readinto(buf)
    got += bytes(buf[:n])
t = now_ms()
for _ in range(100):
    assert p.readinto(buf) == 0
print(got.hex(), now_ms() - t)
p.write(b"pong")
p.close()
""")
    argv = [MICROPYTHON] if interp == "micropython" else [sys.executable]
    proc = subprocess.Popen(argv + [str(script), path, FIRMWARE] + ([SHIMS] if interp == "cpython" else []),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.write(mfd, bytes(range(20)))
        out = proc.stdout.readline().split()
        assert out[0] == bytes(range(20)).hex(), out
        assert int(out[1]) < 500
        r, _, _ = select.select([mfd], [], [], 5)
        assert r and os.read(mfd, 16) == b"pong"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(sfd)
        os.close(mfd)
