# The bench's simulated clock (dicamm.proto.simtime): linear, and in slow motion around
# every quarter-hour boundary; the same integer formula in firmware and emulators.
from dicamm.proto.simtime import SimTime, parse_slow

QH = 900000
T0 = 1795910400000 - 60000   # one minute before a boundary (2026-11-28T00:00Z)
E = 1700000000000            # real epoch


def test_linear_both_ways():
    s = SimTime(720, T0, E)
    for r in (0, 1, 83, 1000, 123457):
        d = s.device_ms(E + r)
        assert d == T0 + 720 * r
        assert s.real_ms(d) == E + r
    assert s.device_ms(E - 10) == T0 - 7200   # before the epoch the clock runs too


def test_slow_motion_around_the_boundary():
    # 720x, but 30x from 3 s before to 12 s after each boundary
    s = SimTime(720, T0, E, 30, 3000, 12000)
    b = T0 + 60000
    # fast until the window opens: 57 s of device time in 57000/720 real ms
    r_open = s.real_ms(b - 3000)
    assert r_open - E == 57000 // 720
    # inside the window 30 device ms per real ms: the 9 s tolerance lasts 300 real ms
    assert s.real_ms(b + 9000) - s.real_ms(b) == 300
    # (real_ms rounds down: at that real ms the boundary is up to one real ms ahead)
    assert b + 3000 - 30 < s.device_ms(s.real_ms(b) + 100) <= b + 3000
    # after it fast again; a whole period lasts 15 s / 30 + 885 s / 720 real
    assert s.real_ms(b + QH) - s.real_ms(b) == 500 + 885000 // 720 or \
        s.real_ms(b + QH) - s.real_ms(b) == 500 + 885000 // 720 + 1


TABLE = [
    # (speed, slow, lead, tail, start offset before a boundary)
    (720, 30, 3000, 12000, 60000),
    (1440, 60, 0, 9000, 1),
    (300, 299, 1000, 1000, 899999),
    (1440, 20, 3000, 12000, -5000),   # starts inside a window
]


def test_round_trip_and_monotonic():
    for speed, slow, lead, tail, before in TABLE:
        s = SimTime(speed, T0 + 60000 - before, E, slow, lead, tail)
        assert s.device_ms(E) == s.start_ms, (speed, slow)
        last = None
        for r in range(-50, 4000, 7):
            d = s.device_ms(E + r)
            assert last is None or d >= last, (speed, slow, r)
            last = d
            # the real time at which d is reached is r or a little before (rounding down)
            assert s.real_ms(d) <= E + r and s.device_ms(s.real_ms(d) + 1) > d - speed, (speed, slow, r)


def test_args_and_parse():
    s = SimTime(720, T0, E, 30, 3000, 12000)
    assert s.args() == ["--speed", "720", "--start-ms", str(T0), "--epoch-ms", str(E), "--slow", "30:3000:12000"]
    assert SimTime(720, T0, E).args()[-2:] == ["--epoch-ms", str(E)]
    assert parse_slow("30:3000:12000") == (30, 3000, 12000)
    assert parse_slow("0") == (0, 0, 0) and parse_slow("") == (0, 0, 0)
    assert parse_slow("40")[0] == 40


def test_bad_slow_motion_refused():
    for bad in ((720, 720, 0, 0), (720, 0 - 1, 0, 0), (720, 30, -1, 0), (720, 30, 450000, 450000)):
        try:
            SimTime(bad[0], T0, E, bad[1], bad[2], bad[3])
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (bad,))
    try:
        parse_slow("1:2")
    except ValueError:
        return
    raise AssertionError("accepted 1:2")
