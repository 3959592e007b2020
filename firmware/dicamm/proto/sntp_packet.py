# SNTP (RFC 4330) packets: bytes in, values out. No sockets, no clocks.
#
# Times are integers: Unix milliseconds on our side, NTP 64-bit fixed point
# (32-bit seconds since 1900 + 32-bit fraction) on the wire. Era: a seconds
# field with its top bit set lies in 1968-2036 (era 0), otherwise in 2036-2104
# (era 1), the rule of RFC 4330 section 3, so no float and no 2036 rollover.
#
# One 48-byte buffer serves request and reply: the client writes T1 into it,
# sends, reads the answer into the same buffer, and parse() checks the
# answer's originate timestamp against T1 recomputed from the integer ms.
from micropython import const

from dicamm.errors import LinkError

PACKET_LEN = const(48)
_NTP_UNIX_S = const(2208988800)  # seconds from 1900-01-01 to 1970-01-01
_ERA_S = const(4294967296)  # 2**32 seconds
_HALF_FRAC = const(2147483648)  # 2**31: half a fraction unit, for rounding
_LI_UNSYNC = const(3)
_MODE_CLIENT = const(3)
_MODE_SERVER = const(4)
_VERSION = const(4)
_STRATUM_MAX = const(15)
_OFF_REFID = const(12)
_OFF_ORIG = const(24)
_OFF_RECV = const(32)
_OFF_XMIT = const(40)


class SntpReject(LinkError):
    # A reply we must not use. kod holds the kiss code ("RATE", "DENY", ...)
    # when the server sent a kiss-o'-death (stratum 0), else None.
    def __init__(self, reason, kod=None):
        super().__init__(reason)
        self.reason = reason
        self.kod = kod


def unix_ms_to_ntp(unix_ms):
    # -> (seconds, fraction), both 32-bit unsigned.
    s = unix_ms // 1000
    ms = unix_ms - s * 1000
    return (s + _NTP_UNIX_S) % _ERA_S, (ms << 32) // 1000


def ntp_to_unix_ms(sec, frac):
    # Rounded to the nearest ms; era chosen by the top bit of sec.
    if sec < _HALF_FRAC:  # top bit clear: era 1 (after 2036-02-07)
        sec += _ERA_S
    ms = (frac * 1000 + _HALF_FRAC) >> 32
    return (sec - _NTP_UNIX_S) * 1000 + ms


def _put32(buf, off, v):
    buf[off] = (v >> 24) & 0xFF
    buf[off + 1] = (v >> 16) & 0xFF
    buf[off + 2] = (v >> 8) & 0xFF
    buf[off + 3] = v & 0xFF


def _get32(buf, off):
    return (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]


def request(buf, t1_ms):
    # Fill buf[0:48] with a client request whose transmit timestamp is T1.
    for i in range(PACKET_LEN):
        buf[i] = 0
    buf[0] = (_VERSION << 3) | _MODE_CLIENT  # LI 0, VN 4, mode 3: 0x23
    sec, frac = unix_ms_to_ntp(t1_ms)
    _put32(buf, _OFF_XMIT, sec)
    _put32(buf, _OFF_XMIT + 4, frac)
    return buf


def _refid(buf):
    s = ""
    for i in range(_OFF_REFID, _OFF_REFID + 4):
        c = buf[i]
        if 32 < c < 127:
            s += chr(c)
    return s


def parse(buf, n, t1_ms):
    # Check a reply of n bytes against our request's T1.
    # -> (li, stratum, t2_ms, t3_ms, refid); raises SntpReject.
    if n is None or n < PACKET_LEN:
        raise SntpReject("short packet")
    b0 = buf[0]
    li = b0 >> 6
    vn = (b0 >> 3) & 7
    mode = b0 & 7
    stratum = buf[1]
    if mode != _MODE_SERVER:
        raise SntpReject("mode %d" % mode)
    if vn < 1 or vn > _VERSION:
        raise SntpReject("version %d" % vn)
    sec, frac = unix_ms_to_ntp(t1_ms)
    if _get32(buf, _OFF_ORIG) != sec or _get32(buf, _OFF_ORIG + 4) != frac:
        raise SntpReject("not our answer")  # stale, duplicated or forged
    refid = _refid(buf)
    if stratum == 0:
        raise SntpReject("kod " + (refid or "?"), refid or "?")
    if li == _LI_UNSYNC:
        raise SntpReject("unsynchronised (LI=3)")
    if stratum > _STRATUM_MAX:
        raise SntpReject("stratum %d" % stratum)
    t3s = _get32(buf, _OFF_XMIT)
    t3f = _get32(buf, _OFF_XMIT + 4)
    if t3s == 0 and t3f == 0:
        raise SntpReject("zero transmit time")
    t2 = ntp_to_unix_ms(_get32(buf, _OFF_RECV), _get32(buf, _OFF_RECV + 4))
    t3 = ntp_to_unix_ms(t3s, t3f)
    if t3 < t2:
        raise SntpReject("server sent before it received")
    return li, stratum, t2, t3, refid


def offset_delay(t1, t2, t3, t4):
    # RFC 4330: offset = ((T2-T1)+(T3-T4))/2 (floored to whole ms),
    # delay = (T4-T1)-(T3-T2). The offset is what to add to our clock.
    return ((t2 - t1) + (t3 - t4)) // 2, (t4 - t1) - (t3 - t2)
