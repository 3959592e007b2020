# RTU framing: golden request frames, and a table of response byte streams
# (good, garbage before/inside/after, split, bad CRC, wrong unit/function/
# count, truncated, exceptions) fed to the hunting ResponseParser.
from dicamm.proto import rtu
from dicamm.proto.crc16 import crc16
from dicamm.errors import ModbusException

H = bytes.fromhex

# SDM630: total active power 0x0034 (float32 in 2 input registers) = 1234.5 W
REQ_POWER = "0104003400023005"
RESP_POWER = "010404449a5000f35b"
# Import energy 0x0048 as holding-register read of 4 registers
REQ_0348 = "010300480004c41f"
# Four input registers: 1234.5 and -56.25
RESP_4REGS = "010408449a5000c26100007bf1"
EXC_02 = "018402c2c1"  # illegal data address for function 04
WRITE1_REQ = "01060010000149cf"  # write 1 to holding register 0x0010
WRITEN_REQ = "011000100002040001000222a2"  # write [1, 2] to 0x0010
WRITEN_RESP = "011000100002400d"

POWER = (1, rtu.READ_INPUT, 2)  # what the parser waits for


def crc(body_hex):
    # body + CRC low byte first, as hex
    b = H(body_hex)
    c = crc16(b)
    return body_hex + "%02x%02x" % (c & 0xFF, c >> 8)


def run(expect, chunks, echo=None):
    # -> (parser, outcome): ("ok", payload hex), ("exc", code), ("err", kind), ("none", None)
    p = rtu.ResponseParser()
    p.expect(expect[0], expect[1], expect[2], echo)
    try:
        for c in chunks:
            r = p.feed(H(c) if isinstance(c, str) else c)
            if r is not None:
                return p, ("ok", bytes(r).hex())
    except ModbusException as e:
        return p, ("exc", e.code)
    e = p.frame_error()
    if e is None:
        return p, ("none", None)
    return p, ("err", e.kind)


def test_build_requests_golden():
    buf = bytearray(rtu.MAX_FRAME)
    n = rtu.build_read(buf, 1, rtu.READ_INPUT, 0x0034, 2)
    assert bytes(buf[:n]).hex() == REQ_POWER
    n = rtu.build_read(buf, 1, rtu.READ_HOLDING, 0x0048, 4)
    assert bytes(buf[:n]).hex() == REQ_0348
    n = rtu.build_write_single(buf, 1, 0x0010, 1)
    assert bytes(buf[:n]).hex() == WRITE1_REQ
    n = rtu.build_write_multiple(buf, 1, 0x0010, [1, 2])
    assert bytes(buf[:n]).hex() == WRITEN_REQ
    n = rtu.build_write_multiple(buf, 247, 0xFFFF, [0xFFFF] * 123)
    assert n == 9 + 246 and buf[0] == 247 and buf[6] == 246


def test_build_rejects_bad_arguments():
    buf = bytearray(rtu.MAX_FRAME)
    bad = [
        lambda: rtu.build_read(buf, 0, 4, 0, 1),  # broadcast cannot be read
        lambda: rtu.build_read(buf, 248, 4, 0, 1),
        lambda: rtu.build_read(buf, 1, 5, 0, 1),
        lambda: rtu.build_read(buf, 1, 4, 0, 0),
        lambda: rtu.build_read(buf, 1, 4, 0, 126),
        lambda: rtu.build_read(buf, 1, 4, 0x10000, 1),
        lambda: rtu.build_write_single(buf, 1, 0, -1),
        lambda: rtu.build_write_single(buf, 1, 0, 0x10000),
        lambda: rtu.build_write_multiple(buf, 1, 0, []),
        lambda: rtu.build_write_multiple(buf, 1, 0, [0] * 124),
        lambda: rtu.build_write_multiple(buf, 1, 0, [1, 70000]),
    ]
    for i, f in enumerate(bad):
        try:
            f()
        except ValueError:
            continue
        raise AssertionError("case %d accepted" % i)


def test_timing_helpers():
    assert rtu.t35_us(2400) == 16042
    assert rtu.t35_us(9600) == 4011
    assert rtu.t35_us(19200) == 2006
    assert rtu.t35_us(19201) == 1750
    assert rtu.t35_us(115200) == 1750
    assert rtu.frame_us(8, 9600) == 9167
    assert rtu.frame_us(1, 2400) == 4584
    assert rtu.response_len(rtu.READ_INPUT, 2) == 9
    assert rtu.response_len(rtu.WRITE_SINGLE, 1) == 8


# (name, expect, chunks, outcome)
CASES = [
    ("clean", POWER, [RESP_POWER], ("ok", "449a5000")),
    ("four registers", (1, 4, 4), [RESP_4REGS], ("ok", "449a5000c2610000")),
    ("holding read", (1, 3, 2), [crc("010304000a0014")], ("ok", "000a0014")),
    ("noise before", POWER, ["ff00ff", RESP_POWER], ("ok", "449a5000")),
    ("unit byte before", POWER, ["01" + RESP_POWER], ("ok", "449a5000")),
    ("header-like before", POWER, ["010402" + RESP_POWER], ("ok", "449a5000")),
    ("long bogus count before", POWER, ["0104f0" + RESP_POWER], ("ok", "449a5000")),
    ("garbage after", POWER, [RESP_POWER + "deadbeef"], ("ok", "449a5000")),
    ("garbage inside then resent", POWER, [RESP_POWER[:8] + "77" + RESP_POWER[8:], RESP_POWER],
     ("ok", "449a5000")),
    ("garbage inside only", POWER, [RESP_POWER[:8] + "77" + RESP_POWER[8:]], ("err", "crc")),
    ("bad crc", POWER, [RESP_POWER[:-2] + "5c"], ("err", "crc")),
    ("bad crc then good", POWER, [RESP_POWER[:-2] + "5c", RESP_POWER], ("ok", "449a5000")),
    ("wrong unit", POWER, ["020404449a5000c05b"], ("err", "unit")),
    ("wrong unit then ours", POWER, ["020404449a5000c05b", RESP_POWER], ("ok", "449a5000")),
    ("wrong function", POWER, [crc("010304449a5000")], ("err", "function")),
    ("other exception function", POWER, [crc("018302")], ("err", "function")),
    ("bad byte count", POWER, [RESP_4REGS], ("err", "count")),
    ("truncated", POWER, [RESP_POWER[:-2]], ("err", "truncated")),
    ("header only", POWER, ["0104"], ("err", "truncated")),
    ("silence", POWER, [], ("none", None)),
    ("line noise only", POWER, ["00ff00ff"], ("none", None)),
    ("exception 02", POWER, [EXC_02], ("exc", 2)),
    ("exception busy after noise", POWER, ["00", crc("018406")], ("exc", 6)),
    ("exception from other unit", POWER, [crc("028402")], ("err", "unit")),
    ("write single echo", (1, 6, 1), [WRITE1_REQ], ("ok", "00100001")),
    ("write multiple", (1, 0x10, 2), [WRITEN_RESP], ("ok", "00100002")),
    ("write multiple wrong quantity", (1, 0x10, 3), [WRITEN_RESP], ("err", "count")),
]


def test_response_table():
    for name, expect, chunks, outcome in CASES:
        p, got = run(expect, chunks)
        assert got == outcome, (name, got, outcome)


def test_write_single_echo_checked():
    echo = H("00100001")
    assert run((1, 6, 1), [WRITE1_REQ], echo)[1] == ("ok", "00100001")
    assert run((1, 6, 1), [crc("010600100002")], echo)[1] == ("err", "echo")
    assert run((1, 0x10, 2), [WRITEN_RESP], H("00100002"))[1] == ("ok", "00100002")
    assert run((1, 0x10, 2), [crc("011000110002")], H("00100002"))[1] == ("err", "echo")


def test_split_at_every_position():
    for expect, frame, outcome in [
        (POWER, RESP_POWER, ("ok", "449a5000")),
        ((1, 4, 4), "ff" + RESP_4REGS + "00", ("ok", "449a5000c2610000")),
        (POWER, EXC_02, ("exc", 2)),
        ((1, 0x10, 2), WRITEN_RESP, ("ok", "00100002")),
    ]:
        raw = H(frame)
        for k in range(1, len(raw)):
            got = run(expect, [raw[:k], raw[k:]])[1]
            assert got == outcome, (frame, k, got)
        got = run(expect, [raw[i:i + 1] for i in range(len(raw))])[1]
        assert got == outcome, (frame, "bytewise", got)


def test_counters():
    p, got = run(POWER, ["020404449a5000c05b", "ff", RESP_POWER[:-2] + "5c", RESP_POWER])
    assert got == ("ok", "449a5000")
    assert p.foreign == 1
    assert p.crc_errors == 1
    assert p.skipped >= 9 + 1 + 9


def test_no_values_from_any_single_bit_error():
    raw = H(RESP_POWER)
    for i in range(len(raw)):
        for bit in range(8):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            p, got = run(POWER, [bytes(bad)])
            assert got[0] != "ok" and got[0] != "exc", (i, bit, got)
            # and the parser still resyncs on the next good frame
            r = p.feed(raw)
            assert r is not None and bytes(r) == H("449a5000"), (i, bit)


def test_readinto_space_interface_and_reuse():
    p = rtu.ResponseParser()
    raw = H(RESP_POWER)
    for _ in range(2):  # the same parser serves the next exchange
        p.expect(1, 4, 2)
        sp = p.space()
        sp[0:5] = raw[:5]
        assert p.added(5) is None
        sp = p.space()
        sp[0:4] = raw[5:]
        r = p.added(4)
        assert bytes(r) == H("449a5000")
        assert p.added(0) is None and p.feed(b"\x01") is None  # done: ignored


def test_largest_read_bytewise():
    data = bytes(range(250))
    frame = H(crc("0104fa" + data.hex()))
    assert len(frame) == 255
    p = rtu.ResponseParser()
    p.expect(1, 4, 125)
    r = None
    for i in range(len(frame)):
        r = p.feed(frame[i:i + 1])
        if r is not None:
            assert i == len(frame) - 1
    assert r is not None and bytes(r) == data


def test_large_garbage_stream_never_overflows():
    p = rtu.ResponseParser()
    p.expect(1, 4, 2)
    junk = bytes((i * 37 + 11) & 0xFF for i in range(1000))
    p.feed(junk)
    assert p.n < rtu.MAX_FRAME
    r = p.feed(H(RESP_POWER))
    assert r is not None and bytes(r) == H("449a5000")
