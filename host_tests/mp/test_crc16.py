# CRC-16/MODBUS against the catalogue check value, a bitwise reference and
# golden frames (the CRC goes low byte first on the wire).
from dicamm.proto import crc16

GOLDEN = [
    # (frame without CRC, CRC as sent: low byte, high byte)
    ("010400340002", "3005"),  # SDM630 read input registers 0x0034 x2
    ("010404449a5000", "f35b"),  # its answer: 1234.5 W
    ("018402", "c2c1"),  # exception 02 for function 04
    ("010600100001", "49cf"),
    ("", "ffff"),  # empty input: the initial value
]


def _bitwise(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return c


def test_check_value():
    assert crc16.crc16(b"123456789") == 0x4B37


def test_golden_frames_low_byte_first():
    for body, wire in GOLDEN:
        c = crc16.crc16(bytes.fromhex(body))
        assert bytes([c & 0xFF, c >> 8]) == bytes.fromhex(wire), body


def test_table_matches_bitwise_reference():
    data = bytes(range(256)) + b"\x00\xff" * 7
    for end in (1, 2, 17, 100, len(data)):
        assert crc16.crc16(data, 0, end) == _bitwise(data[:end]), end


def test_range_and_memoryview():
    data = bytearray(b"xx123456789yy")
    assert crc16.crc16(data, 2, 11) == 0x4B37
    assert crc16.crc16(memoryview(data)[2:11]) == 0x4B37


def test_append_and_valid():
    buf = bytearray(16)
    buf[0:9] = b"123456789"
    assert crc16.append(buf, 9) == 11
    assert buf[9] == 0x37 and buf[10] == 0x4B
    assert crc16.valid(buf, 0, 11)
    buf[3] ^= 0x01
    assert not crc16.valid(buf, 0, 11)
    assert not crc16.valid(buf, 0, 3)  # too short to be a frame
