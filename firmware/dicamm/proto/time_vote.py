# Which time source to believe: numbers in, a choice out.
#
# A candidate is (label, offset_ms, delay_ms, stratum), in order of preference.
# Two sources agree when their offsets differ by at most
#   max(AGREE_MIN_MS, delay_a + delay_b)
# (each offset is only known to +-delay/2; the factor 2 leaves room for path
# asymmetry and server jitter). The source agreeing with most others (ties: the
# preferred one) is the pivot; more than half of the sources that answered must
# agree with it, else nothing is chosen ("no majority"); sources not agreeing with
# it are rejected; the most preferred agreeing source is chosen.
# With a single candidate there is nothing to vote: it is chosen, unless our own
# clock is still synchronised (own_drift_ms: its drift budget, else None) and the
# source is further off than that: then our clock is the second vote.
from micropython import const

from dicamm.errors import ConfigError

AGREE_MIN_MS = const(500)
_NTP_PORT = const(123)


def parse_hostport(s, default_port=_NTP_PORT):
    # "host[:port]" -> (host, port); IPv6 literals are not supported.
    s = s.strip()
    if not s:
        raise ConfigError("empty time server")
    i = s.rfind(":")
    if i < 0:
        return s, default_port
    try:
        port = int(s[i + 1:])
    except ValueError:
        raise ConfigError("bad port in %r" % s)
    if not 0 < port < 65536 or i == 0:
        raise ConfigError("bad time server %r" % s)
    return s[:i], port


def narrow(offset_ms, error_ms, own_error_ms):
    # A new sample says UTC is at our clock + offset_ms, +-error_ms (half its
    # round trip); our clock, still synchronised, says UTC is within
    # +-own_error_ms of it (None: not synchronised). Both are honest bounds, so
    # UTC lies in their intersection: -> (offset, error) of its middle and half
    # width (Marzullo's interval intersection for two sources). A precise clock
    # is so not thrown away for a sample with a long round trip, and a precise
    # sample still corrects a clock that has drifted. Disjoint intervals: the
    # sample is taken as it is (the sources outvote our clock; the caller
    # reports the step).
    if own_error_ms is None:
        return offset_ms, error_ms
    lo = max(offset_ms - error_ms, -own_error_ms)
    hi = min(offset_ms + error_ms, own_error_ms)
    if lo > hi:
        return offset_ms, error_ms
    return (lo + hi) // 2, (hi - lo + 1) // 2


def agree(a, b):
    return abs(a[1] - b[1]) <= max(AGREE_MIN_MS, a[2] + b[2])


def vote(cands, own_drift_ms=None):
    # -> (chosen candidate or None, [(label, reason) rejected], error or None)
    n = len(cands)
    if n == 1:
        c = cands[0]
        if own_drift_ms is not None and abs(c[1]) > max(AGREE_MIN_MS, c[2] + own_drift_ms):
            return None, [(c[0], "single source, %d ms off our synchronised clock" % c[1])], \
                "single source disagrees with our synchronised clock"
        return c, [], None
    pivot, support = None, 0
    for a in cands:
        k = 0
        for b in cands:
            if agree(a, b):
                k += 1
        if k > support:  # strict: ties keep the preferred (earlier) source
            pivot, support = a, k
    if support * 2 <= n:
        return None, [(c[0], "no majority") for c in cands], "time sources disagree: no majority of %d" % n
    chosen = None
    rejected = []
    for c in cands:
        if agree(pivot, c):
            if chosen is None:
                chosen = c
        else:
            rejected.append((c[0], "disagrees with majority by %d ms" % (c[1] - pivot[1])))
    return chosen, rejected, None
