# German local time (CET/CEST) and quarter-hour arithmetic on Unix ms.
#
# Market messages use UTC; local time is for people and for the local calendar
# day (92, 96 or 100 quarter hours). EU rule: summer time (UTC+2) from the last
# Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC, else UTC+1.
# Calendar math is integer-only (days <-> civil date, proleptic Gregorian) so it
# does not depend on a port's time.gmtime() or its epoch.
from micropython import const

_DAY_MS = const(86400000)
_HOUR_MS = const(3600000)
QUARTER_MS = const(900000)
_CET_MS = const(3600000)
_CEST_MS = const(7200000)


def days_from_civil(y, m, d):
    # Days since 1970-01-01 of a Gregorian date (the year counted from March
    # so that the leap day is the last day of the "year").
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    # Inverse of days_from_civil: -> (year, month, day).
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400
    return (y + 1 if m <= 2 else y), m, d


def weekday(days):
    # 0 = Monday ... 6 = Sunday; 1970-01-01 was a Thursday.
    return (days + 3) % 7


def _last_sunday(y, m):
    # Days of the last Sunday of month m (March or October: 31 days).
    last = days_from_civil(y, m, 31)
    return last - (weekday(last) + 1) % 7


def dst_range_ms(year):
    # (start, end) of summer time in UTC ms: both at 01:00 UTC.
    return (_last_sunday(year, 3) * _DAY_MS + _HOUR_MS,
            _last_sunday(year, 10) * _DAY_MS + _HOUR_MS)


def utc_offset_ms(unix_ms):
    y = civil_from_days(unix_ms // _DAY_MS)[0]
    start, end = dst_range_ms(y)
    return _CEST_MS if start <= unix_ms < end else _CET_MS


def local_fields(unix_ms):
    # -> (year, month, day, hour, minute, second, ms, utc_offset_ms)
    off = utc_offset_ms(unix_ms)
    t = unix_ms + off
    days = t // _DAY_MS
    r = t - days * _DAY_MS
    y, m, d = civil_from_days(days)
    return (y, m, d, r // _HOUR_MS, r // 60000 % 60, r // 1000 % 60, r % 1000, off)


def _iso(y, m, d, hh, mi, ss, ms, with_ms):
    s = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, m, d, hh, mi, ss)
    if with_ms:
        s += ".%03d" % ms
    return s


def iso_local(unix_ms, with_ms=False):
    # "2026-03-29T03:00:00+02:00": local time with its UTC offset, for people.
    y, m, d, hh, mi, ss, ms, off = local_fields(unix_ms)
    return _iso(y, m, d, hh, mi, ss, ms, with_ms) + "+%02d:00" % (off // _HOUR_MS)


def iso_utc(unix_ms, with_ms=False):
    # "2026-03-29T01:00:00Z": for logs and market messages.
    days = unix_ms // _DAY_MS
    r = unix_ms - days * _DAY_MS
    y, m, d = civil_from_days(days)
    return _iso(y, m, d, r // _HOUR_MS, r // 60000 % 60, r // 1000 % 60, r % 1000, with_ms) + "Z"


def floor_quarter(unix_ms):
    # Start of the quarter hour containing unix_ms (quarter hours are aligned
    # in UTC and in CET/CEST alike: the offsets are whole hours).
    return unix_ms - unix_ms % QUARTER_MS


def next_quarter(unix_ms):
    # First quarter-hour boundary strictly after unix_ms.
    return floor_quarter(unix_ms) + QUARTER_MS


def local_day_range_ms(y, m, d):
    # [start, end) in UTC ms of the local calendar day y-m-d. Local midnight
    # (22:00 or 23:00 UTC) is never near a switch (01:00 UTC), so the offset
    # just before UTC midnight is the one at local midnight.
    start = days_from_civil(y, m, d) * _DAY_MS
    end = start + _DAY_MS
    return start - utc_offset_ms(start - _HOUR_MS), end - utc_offset_ms(end - _HOUR_MS)


def local_day(unix_ms):
    # Local calendar date (y, m, d) of an instant.
    t = unix_ms + utc_offset_ms(unix_ms)
    return civil_from_days(t // _DAY_MS)


def quarters_in_local_day(y, m, d):
    # 96 normally, 92 on the spring-forward day, 100 on the fall-back day.
    start, end = local_day_range_ms(y, m, d)
    return (end - start) // QUARTER_MS


def unix_from_civil(y, m, d, hh=0, mi=0, ss=0):
    # Unix seconds of a UTC date and time.
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss


def parse_date(text):
    # "YYYY-MM-DD" -> (y, m, d); ValueError if it is not a real date.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError("date must be YYYY-MM-DD")
    y, m, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
    if civil_from_days(days_from_civil(y, m, d)) != (y, m, d):
        raise ValueError("no such date %s" % text)
    return y, m, d


def local_hm(unix_ms):
    # "02:45+02:00": local clock time with its offset (CET +01:00, CEST +02:00).
    f = local_fields(unix_ms)
    return "%02d:%02d+%02d:00" % (f[3], f[4], f[7] // _HOUR_MS)
