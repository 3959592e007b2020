# Modbus master over an in-memory port that scripts answers and faults.
# micropython-only (uses time.ticks_* and asyncio.sleep_ms)
import asyncio
import time

from dicamm.errors import ModbusError, ModbusException, ModbusFrameError, ModbusTimeout
from dicamm.drivers.modbus import ModbusMaster
from dicamm.drivers.uart_rs485 import Rs485Uart

H = bytes.fromhex
REQ_POWER = H("0104003400023005")
RESP_POWER = H("010404449a5000f35b")
RESP_POWER_UNIT2 = H("020404449a5000c05b")
EXC_02 = H("018402c2c1")
EXC_BUSY = H("018406c302")
WRITE1 = H("01060010000149cf")
WRITEN_REQ = H("011000100002040001000222a2")
WRITEN_RESP = H("011000100002400d")


class FakePort:
    # script: one entry per request written: a list of (delay_ms, bytes)
    # chunks delivered that long after the write; [] = no answer.
    def __init__(self, script, baud=9600, stale=b""):
        self.baud = baud
        self.script = list(script)
        self.written = []
        self.write_ticks = []
        self.pending = []  # [due_ticks, bytes]
        self.last_rx_ticks = None
        self.flushes = 0
        self.fail = None
        if stale:
            self.pending.append([time.ticks_ms(), stale])

    def write(self, buf):
        if self.fail:
            raise OSError(self.fail)
        now = time.ticks_ms()
        self.written.append(bytes(buf))
        self.write_ticks.append(now)
        if self.script:
            for delay, data in self.script.pop(0):
                self.pending.append([time.ticks_add(now, delay), data])
        return len(buf)

    def readinto(self, buf):
        if self.fail:
            raise OSError(self.fail)
        if not self.pending:
            return 0
        due, data = self.pending[0]
        now = time.ticks_ms()
        if time.ticks_diff(now, due) < 0:
            return 0
        k = min(len(buf), len(data))
        buf[0:k] = data[:k]
        if k == len(data):
            self.pending.pop(0)
        else:
            self.pending[0][1] = data[k:]
        self.last_rx_ticks = now
        return k

    def flush_input(self):
        self.flushes += 1
        now = time.ticks_ms()
        while self.pending and time.ticks_diff(now, self.pending[0][0]) >= 0:
            self.pending.pop(0)


def run(coro):
    return asyncio.run(coro)


def no_errors(m):
    for k in m.errors:
        if m.errors[k]:
            return False
    return True


def test_read_ok_exact_bytes_and_counters():
    port = FakePort([[(3, RESP_POWER)]])
    m = ModbusMaster(port, timeout_ms=200)
    data = run(m.read_registers(1, 4, 0x0034, 2))
    assert data == H("449a5000") and isinstance(data, bytes)
    assert port.written == [REQ_POWER]
    assert m.transactions == 1 and m.tx_bytes == 8 and m.rx_bytes == 9
    assert no_errors(m) and m.last_error is None
    assert port.flushes == 1


def test_split_slow_answer_with_noise():
    port = FakePort([[(1, b"\x00\xff"), (5, RESP_POWER[:3]), (15, RESP_POWER[3:7]), (30, RESP_POWER[7:])]])
    m = ModbusMaster(port, timeout_ms=200)
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert m.rx_bytes == 11 and no_errors(m)


def test_timeout_then_success_on_retry():
    port = FakePort([[], [(2, RESP_POWER)]])
    m = ModbusMaster(port, timeout_ms=30, retries=2)
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert port.written == [REQ_POWER, REQ_POWER]
    assert m.transactions == 2 and m.tx_bytes == 16
    assert m.errors["timeout"] == 1
    assert m.last_error.startswith("timeout")


def test_timeout_after_all_retries():
    port = FakePort([])
    m = ModbusMaster(port, timeout_ms=20, retries=2)
    t0 = time.ticks_ms()
    try:
        run(m.read_registers(1, 4, 0x0034, 2))
        raise AssertionError("no timeout")
    except ModbusTimeout:
        pass
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert len(port.written) == 3 and m.errors["timeout"] == 3
    assert 60 <= took < 500, took


def test_exception_is_not_retried():
    port = FakePort([[(2, EXC_02)], [(2, RESP_POWER)]])
    m = ModbusMaster(port, timeout_ms=100)
    try:
        run(m.read_registers(1, 4, 0x0034, 2))
        raise AssertionError("no exception")
    except ModbusException as e:
        assert e.code == 2 and e.function == 4
    assert len(port.written) == 1
    assert m.errors["exception"] == 1 and m.errors["timeout"] == 0
    assert "exception" in m.last_error


def test_busy_is_retried():
    port = FakePort([[(2, EXC_BUSY)], [(2, RESP_POWER)]])
    m = ModbusMaster(port, timeout_ms=100)
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert len(port.written) == 2 and m.errors["exception"] == 1


def test_wrong_unit_is_a_frame_error_after_retries():
    port = FakePort([[(2, RESP_POWER_UNIT2)]] * 3)
    m = ModbusMaster(port, timeout_ms=20, retries=2)
    try:
        run(m.read_registers(1, 4, 0x0034, 2))
        raise AssertionError("accepted a foreign frame")
    except ModbusFrameError as e:
        assert e.kind == "unit"
    assert m.errors["unit"] == 3 and m.errors["timeout"] == 0
    assert len(port.written) == 3


def test_wrong_unit_then_ours_in_same_window():
    port = FakePort([[(2, RESP_POWER_UNIT2), (6, RESP_POWER)]])
    m = ModbusMaster(port, timeout_ms=100)
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert no_errors(m) and m.transactions == 1


def test_bad_crc_then_good_on_retry():
    bad = bytearray(RESP_POWER)
    bad[4] ^= 0x10
    port = FakePort([[(2, bytes(bad))], [(2, RESP_POWER)]])
    m = ModbusMaster(port, timeout_ms=30)
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert m.errors["crc"] == 1 and m.transactions == 2


def test_truncated_answer_is_a_frame_error():
    port = FakePort([[(2, RESP_POWER[:5])]])
    m = ModbusMaster(port, timeout_ms=20, retries=0)
    try:
        run(m.read_registers(1, 4, 0x0034, 2))
        raise AssertionError("accepted a truncated frame")
    except ModbusFrameError as e:
        assert e.kind == "truncated"
    assert m.errors["frame"] == 1


def test_stale_input_is_flushed_first():
    port = FakePort([[(2, RESP_POWER)]], stale=H("01040400000000fb84"))
    m = ModbusMaster(port, timeout_ms=100)
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert port.flushes == 1 and m.rx_bytes == 9


def test_silence_before_next_request():
    # 2400 baud: t3.5 = 16.04 ms -> 17 ms between the last byte and the next request
    port = FakePort([[(1, RESP_POWER)], [(1, RESP_POWER)]], baud=2400)
    m = ModbusMaster(port, timeout_ms=200)

    async def two():
        await m.read_registers(1, 4, 0x0034, 2)
        rx = port.last_rx_ticks
        await m.read_registers(1, 4, 0x0034, 2)
        return rx

    rx = run(two())
    assert time.ticks_diff(port.write_ticks[1], rx) >= 17


def test_write_single_and_multiple_exact_bytes():
    port = FakePort([[(2, WRITE1)], [(2, WRITEN_RESP)]])
    m = ModbusMaster(port, timeout_ms=100)

    async def go():
        r1 = await m.write_register(1, 0x0010, 1)
        r2 = await m.write_registers(1, 0x0010, [1, 2])
        return r1, r2

    assert run(go()) == (None, None)
    assert port.written == [WRITE1, WRITEN_REQ]
    assert m.tx_bytes == 8 + 13 and m.rx_bytes == 16 and no_errors(m)


def test_write_echo_mismatch():
    port = FakePort([[(2, H("01060010000209ce"))]])
    m = ModbusMaster(port, timeout_ms=20, retries=0)
    try:
        run(m.write_register(1, 0x0010, 1))
        raise AssertionError("accepted a wrong echo")
    except ModbusFrameError as e:
        assert e.kind == "echo"
    assert m.errors["frame"] == 1


def test_concurrent_users_are_serialised():
    port = FakePort([[(5, RESP_POWER)], [(5, H("01040400000000fb84"))]])
    m = ModbusMaster(port, timeout_ms=100)

    async def both():
        return await asyncio.gather(m.read_registers(1, 4, 0x0034, 2), m.read_registers(1, 4, 0x0034, 2))

    r = run(both())
    assert r[0] == H("449a5000") and r[1] == H("00000000")
    assert len(port.written) == 2
    # the second request went out only after the first answer was in
    assert time.ticks_diff(port.write_ticks[1], port.write_ticks[0]) >= 5


def test_port_error_is_a_modbus_error():
    port = FakePort([])
    port.fail = 5
    m = ModbusMaster(port, timeout_ms=20)
    try:
        run(m.read_registers(1, 4, 0x0034, 2))
        raise AssertionError("no error")
    except ModbusError as e:
        assert not isinstance(e, ModbusTimeout)
    assert m.errors["port"] == 1 and m.last_error.startswith("port")


def test_bad_arguments_raise_value_error():
    m = ModbusMaster(FakePort([]), timeout_ms=20)
    try:
        run(m.read_registers(1, 4, 0, 126))
        raise AssertionError("accepted")
    except ValueError:
        pass
    assert m.transactions == 0


# --- Rs485Uart over a fake UART and DE pin ---------------------------------

class FakePin:
    def __init__(self, log):
        self.log = log

    def value(self, v):
        self.log.append(("de", v, time.ticks_us()))


class FakeUart:
    def __init__(self, log, rx=b"", flush=True):
        self.log = log
        self.rx = bytearray(rx)
        if flush:
            self.flush = self._flush

    def write(self, buf):
        self.log.append(("write", bytes(buf), time.ticks_us()))
        return len(buf)

    def _flush(self):
        self.log.append(("flush", None, time.ticks_us()))

    def any(self):
        return len(self.rx)

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else n
        n = min(n, len(self.rx))
        buf[0:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


def test_rs485_de_around_write_with_flush():
    log = []
    u = Rs485Uart(FakeUart(log), 9600, FakePin(log))
    assert u.write(REQ_POWER) == 8
    assert [e[0:2] for e in log] == [("de", 0), ("de", 1), ("write", REQ_POWER), ("flush", None), ("de", 0)]


def test_rs485_de_waits_wire_time_without_flush():
    log = []
    u = Rs485Uart(FakeUart(log, flush=False), 9600, FakePin(log))
    u.write(REQ_POWER)
    kinds = [e[0:2] for e in log]
    assert kinds == [("de", 0), ("de", 1), ("write", REQ_POWER), ("de", 0)]
    assert time.ticks_diff(log[3][2], log[1][2]) >= 9167  # 8 chars * 11 bits at 9600


def test_rs485_readinto_never_blocks_and_flush_input():
    log = []
    uart = FakeUart(log, rx=b"abcdef")
    u = Rs485Uart(uart, 9600)
    buf = bytearray(4)
    assert u.readinto(buf) == 4 and bytes(buf) == b"abcd"
    assert u.readinto(buf) == 2 and bytes(buf[:2]) == b"ef"
    assert u.readinto(buf) == 0
    uart.rx = bytearray(100)
    u.flush_input()
    assert uart.any() == 0
    assert u.baud == 9600


def test_master_over_rs485_uart():
    log = []
    uart = FakeUart(log, rx=b"\x00")  # a glitch byte from the bus turn-around

    u = Rs485Uart(uart, 19200, FakePin(log))
    m = ModbusMaster(u, timeout_ms=50, retries=0)
    orig = uart.write

    def write(buf):
        n = orig(buf)
        uart.rx.extend(RESP_POWER)
        return n

    uart.write = write
    assert run(m.read_registers(1, 4, 0x0034, 2)) == H("449a5000")
    assert ("write", REQ_POWER) in [e[0:2] for e in log]


def test_babbling_line_still_ends_at_the_deadline():
    class Babbler(FakePort):
        def readinto(self, buf):
            buf[0] = 0x55
            return 1

    port = Babbler([])
    m = ModbusMaster(port, timeout_ms=30, retries=0)
    t0 = time.ticks_ms()
    try:
        run(m.read_registers(1, 4, 0x0034, 2))
        raise AssertionError("accepted noise")
    except ModbusTimeout:
        pass
    assert time.ticks_diff(time.ticks_ms(), t0) < 30 + 30 + 200
    assert m.errors["timeout"] == 1 and m.transactions == 1
