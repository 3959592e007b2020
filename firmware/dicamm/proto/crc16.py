# CRC-16/MODBUS: poly 0xA001 (reflected 0x8005), init 0xFFFF, no final xor.
# Check value 0x4B37 for b"123456789". On the wire the low byte goes first.
# Table-driven: one 512-byte table (low, high byte per entry) built at import,
# which is ~8x faster than the bitwise loop on an ESP32 and costs 512 bytes RAM.
from micropython import const

_POLY = const(0xA001)


def _make_table():
    t = bytearray(512)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t[2 * i] = c & 0xFF
        t[2 * i + 1] = c >> 8
    return bytes(t)


_TABLE = _make_table()


def crc16(data, start=0, end=-1):
    # CRC of data[start:end] (end=-1: to the end) without slicing/copying.
    if end < 0:
        end = len(data)
    t = _TABLE
    c = 0xFFFF
    for i in range(start, end):
        k = ((c ^ data[i]) & 0xFF) << 1
        c = (c >> 8) ^ (t[k] | (t[k + 1] << 8))
    return c


def append(buf, n):
    # Writes the CRC of buf[0:n] at buf[n], buf[n+1] (low first); returns n + 2.
    c = crc16(buf, 0, n)
    buf[n] = c & 0xFF
    buf[n + 1] = c >> 8
    return n + 2


def valid(buf, start, end):
    # True when buf[start:end] is a frame whose last two bytes are its CRC.
    if end - start < 4:
        return False
    c = crc16(buf, start, end - 2)
    return buf[end - 2] == (c & 0xFF) and buf[end - 1] == (c >> 8)
