# SNTP packets: golden request/reply bytes, rejects, offset/delay math, eras.
# Dual test: runs on MicroPython and CPython.
from dicamm.proto import sntp_packet as P
from dicamm.errors import LinkError

T1 = 1767225600123  # 2026-01-01T00:00:00.123Z
T1_HEX = "ed0037801f7ced91"
T2_HEX = "ed0037812c49ba5e"  # T1 + 1050 ms
T3_HEX = "ed0037812ccccccc"  # T1 + 1052 ms (fraction truncated: rounds back to .175)
REF_HEX = "ed0037441f7ced91"  # T1 - 60 s

GOLDEN_REQUEST = "23" + "00" * 39 + T1_HEX


def reply(b0="24", stratum="01", refid="50544200", orig=T1_HEX, recv=T2_HEX, xmit=T3_HEX):
    # LI/VN/mode, stratum, poll 6, precision -20, root delay, root dispersion,
    # reference ID, reference, originate, receive, transmit timestamps.
    return bytearray(bytes.fromhex(b0 + stratum + "06ec" + "00000010" + "00000020" + refid
                                   + REF_HEX + orig + recv + xmit))


def rejected(buf, n=48):
    try:
        P.parse(buf, n, T1)
    except P.SntpReject as e:
        return e
    return None


def test_request_golden_bytes():
    buf = bytearray(b"\xff" * 48)  # stale content must be cleared
    P.request(buf, T1)
    assert bytes(buf) == bytes.fromhex(GOLDEN_REQUEST), bytes(buf)


def test_parse_golden_reply():
    li, stratum, t2, t3, refid = P.parse(reply(), 48, T1)
    assert (li, stratum, refid) == (0, 1, "PTB")
    assert t2 == T1 + 1050 and t3 == T1 + 1052, (t2 - T1, t3 - T1)


def test_offset_delay_from_golden_reply():
    _, _, t2, t3, _ = P.parse(reply(), 48, T1)
    t4 = T1 + 30
    # offset = (1050 + (1052 - 30)) / 2; delay = 30 - 2
    assert P.offset_delay(T1, t2, t3, t4) == (1036, 28)


def test_offset_delay_table():
    # (t1, t2, t3, t4) -> (offset, delay); offset floored to whole ms
    table = [
        ((1000, 1000, 1000, 1000), (0, 0)),
        ((1000, 1010, 1010, 1020), (0, 20)),  # symmetric path, same clocks
        ((1000, 4600010, 4600012, 1030), (4598996, 28)),  # we are ~4599 s behind
        ((5000000, 1010, 1012, 5000030), (-4999004, 28)),  # we are ~4999 s ahead
        ((1000, 1011, 1012, 1020), (1, 19)),  # odd sum 3: floored
        ((1000, 1009, 1010, 1020), (-1, 19)),  # odd sum -1: floored toward -inf
    ]
    for args, want in table:
        got = P.offset_delay(*args)
        assert got == want, (args, got, want)


def test_rejects_table():
    cases = [
        ("wrong originate", reply(orig="ed0037801f7ced92"), "not our answer", None),
        ("zero originate", reply(orig="0" * 16), "not our answer", None),
        ("kod RATE", reply(stratum="00", refid="52415445"), "kod RATE", "RATE"),
        ("kod DENY", reply(stratum="00", refid="44454e59"), "kod DENY", "DENY"),
        ("stratum 0 no code", reply(stratum="00", refid="00000000"), "kod ?", "?"),
        ("LI=3", reply(b0="e4"), "unsynchronised (LI=3)", None),
        ("stratum 16", reply(stratum="10"), "stratum 16", None),
        ("client mode", reply(b0="23"), "mode 3", None),
        ("broadcast mode", reply(b0="25"), "mode 5", None),
        ("version 0", reply(b0="04"), "version 0", None),
        ("zero transmit", reply(xmit="0" * 16), "zero transmit time", None),
        ("T3 before T2", reply(recv=T3_HEX, xmit=T2_HEX), "server sent before it received", None),
    ]
    for name, buf, reason, kod in cases:
        e = rejected(buf)
        assert e is not None, name
        assert isinstance(e, LinkError), name
        assert e.reason == reason, (name, e.reason)
        assert e.kod == kod, (name, e.kod)


def test_short_packet_rejected():
    assert rejected(reply(), 47).reason == "short packet"
    assert rejected(reply(), None).reason == "short packet"


def test_kod_checked_only_after_originate():
    # A forged kiss-o'-death that does not echo our T1 is "not our answer".
    e = rejected(reply(stratum="00", refid="44454e59", orig="1" * 16))
    assert e.kod is None and e.reason == "not our answer"


def test_version_3_and_leap_warning_accepted():
    li, stratum, _, _, _ = P.parse(reply(b0="5c"), 48, T1)  # LI 1, VN 3, mode 4
    assert (li, stratum) == (1, 1)


def test_ntp_unix_conversion_table():
    table = [
        (0, (2208988800, 0)),
        (1000, (2208988801, 0)),
        (500, (2208988800, 2147483648)),
        (T1, (0xED003780, 0x1F7CED91)),
        (2085978495999, (0xFFFFFFFF, 4290672328)),  # last ms of era 0 (2036-02-07)
        (2085978496000, (0, 0)),  # era 1 starts
        (2085978497000, (1, 0)),
        (4102444800000, (0x7830D580, 0)),  # 2100-01-01
    ]
    for ms, ntp in table:
        assert P.unix_ms_to_ntp(ms) == ntp, (ms, P.unix_ms_to_ntp(ms), ntp)
        assert P.ntp_to_unix_ms(ntp[0], ntp[1]) == ms, (ntp, P.ntp_to_unix_ms(ntp[0], ntp[1]), ms)


def test_round_trip_every_ms_of_a_second():
    base = 1782000000000
    for ms in range(0, 1000, 7):
        s, f = P.unix_ms_to_ntp(base + ms)
        assert P.ntp_to_unix_ms(s, f) == base + ms, ms


def test_reply_parsed_in_request_buffer():
    # One buffer for both directions: the reply overwrites the request.
    buf = bytearray(48)
    P.request(buf, T1)
    buf[:] = reply()
    assert P.parse(buf, 48, T1)[2] == T1 + 1050
