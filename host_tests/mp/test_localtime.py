# Local time (CET/CEST), calendar math and quarter hours.
# Dual test: runs on MicroPython and CPython.
from dicamm.proto import localtime as L

H = 3600000
D = 86400000


def test_civil_days_table():
    table = [
        ((1970, 1, 1), 0),
        ((1969, 12, 31), -1),
        ((2000, 2, 29), 11016),
        ((2000, 3, 1), 11017),
        ((2026, 1, 1), 20454),
        ((2026, 3, 29), 20541),
        ((2026, 10, 25), 20751),
        ((2100, 3, 1), 47541),  # 2100 is not a leap year
        ((1900, 1, 1), -25567),
    ]
    for ymd, days in table:
        assert L.days_from_civil(*ymd) == days, (ymd, L.days_from_civil(*ymd))
        assert L.civil_from_days(days) == ymd, (days, L.civil_from_days(days))


def test_civil_round_trip_over_years():
    for days in range(-800, 60000, 37):
        assert L.days_from_civil(*L.civil_from_days(days)) == days, days


def test_weekday():
    assert L.weekday(0) == 3  # 1970-01-01 Thursday
    assert L.weekday(L.days_from_civil(2026, 3, 29)) == 6  # Sunday
    assert L.weekday(L.days_from_civil(2026, 10, 25)) == 6


def test_dst_range_table():
    table = [
        (2024, (2024, 3, 31), (2024, 10, 27)),
        (2025, (2025, 3, 30), (2025, 10, 26)),
        (2026, (2026, 3, 29), (2026, 10, 25)),
        (2027, (2027, 3, 28), (2027, 10, 31)),
    ]
    for year, spring, autumn in table:
        start, end = L.dst_range_ms(year)
        assert start == L.days_from_civil(*spring) * D + H, year
        assert end == L.days_from_civil(*autumn) * D + H, year


def test_utc_offset_around_switches():
    start, end = L.dst_range_ms(2026)
    assert L.utc_offset_ms(start - 1) == H
    assert L.utc_offset_ms(start) == 2 * H
    assert L.utc_offset_ms(end - 1) == 2 * H
    assert L.utc_offset_ms(end) == H
    assert L.utc_offset_ms(L.days_from_civil(2026, 1, 15) * D) == H
    assert L.utc_offset_ms(L.days_from_civil(2026, 7, 15) * D) == 2 * H


def test_iso_local_table():
    d0329 = L.days_from_civil(2026, 3, 29) * D
    d1025 = L.days_from_civil(2026, 10, 25) * D
    table = [
        (d0329 + H - 1000, "2026-03-29T01:59:59+01:00"),
        (d0329 + H, "2026-03-29T03:00:00+02:00"),  # 02:00 local never happens
        (d1025 + H - 1000, "2026-10-25T02:59:59+02:00"),
        (d1025 + H, "2026-10-25T02:00:00+01:00"),  # 02:xx happens twice
        (L.days_from_civil(2025, 12, 31) * D + 23 * H + 30 * 60000, "2026-01-01T00:30:00+01:00"),
        (0, "1970-01-01T01:00:00+01:00"),
    ]
    for ms, want in table:
        assert L.iso_local(ms) == want, (ms, L.iso_local(ms), want)


def test_iso_with_ms_and_utc():
    ms = L.days_from_civil(2026, 7, 1) * D + 12 * H + 34 * 60000 + 56789
    assert L.iso_local(ms, True) == "2026-07-01T14:34:56.789+02:00"
    assert L.iso_utc(ms) == "2026-07-01T12:34:56Z"
    assert L.iso_utc(ms, True) == "2026-07-01T12:34:56.789Z"


def test_quarters_in_local_day():
    table = [
        ((2026, 3, 29), 92),
        ((2026, 10, 25), 100),
        ((2026, 6, 1), 96),
        ((2026, 3, 28), 96),
        ((2026, 3, 30), 96),
        ((2026, 10, 24), 96),
        ((2026, 10, 26), 96),
        ((2026, 1, 1), 96),
        ((2027, 3, 28), 92),
        ((2027, 10, 31), 100),
    ]
    for ymd, n in table:
        assert L.quarters_in_local_day(*ymd) == n, (ymd, L.quarters_in_local_day(*ymd))


def test_local_day_range():
    start, end = L.local_day_range_ms(2026, 3, 29)
    assert L.iso_utc(start) == "2026-03-28T23:00:00Z"
    assert L.iso_utc(end) == "2026-03-29T22:00:00Z"
    start, end = L.local_day_range_ms(2026, 10, 25)
    assert L.iso_utc(start) == "2026-10-24T22:00:00Z"
    assert L.iso_utc(end) == "2026-10-25T23:00:00Z"
    assert L.iso_local(start) == "2026-10-25T00:00:00+02:00"
    assert L.iso_local(end) == "2026-10-26T00:00:00+01:00"


def test_local_day_of_instant():
    start, end = L.local_day_range_ms(2026, 10, 25)
    assert L.local_day(start) == (2026, 10, 25)
    assert L.local_day(end - 1) == (2026, 10, 25)
    assert L.local_day(end) == (2026, 10, 26)
    assert L.local_day(start - 1) == (2026, 10, 24)


def test_quarter_helpers():
    base = L.days_from_civil(2026, 3, 29) * D  # UTC midnight
    table = [
        (base, base, base + 900000),
        (base + 1, base, base + 900000),
        (base + 899999, base, base + 900000),
        (base + 900000, base + 900000, base + 1800000),
        (base - 1, base - 900000, base),
    ]
    for ms, floor, nxt in table:
        assert L.floor_quarter(ms) == floor, ms
        assert L.next_quarter(ms) == nxt, ms


def test_quarter_boundaries_fill_the_local_day():
    for ymd in ((2026, 3, 29), (2026, 10, 25), (2026, 5, 5)):
        start, end = L.local_day_range_ms(*ymd)
        t, n = start, 0
        while t < end:
            assert L.floor_quarter(t) == t
            t = L.next_quarter(t)
            n += 1
        assert t == end and n == L.quarters_in_local_day(*ymd), ymd
