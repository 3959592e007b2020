# Who may switch the load, and when the relay allows it. Pure: no I/O, times are
# integer milliseconds on one monotonic base passed in by the caller.
#
# Sources, highest first (MISSION.md, "Control and who may switch"):
#   dso       grid operator's limit (§14a EnWG) in W; binds a single-stage element
#             whose nominal power is above it (= off), caps a modulating load
#   safety    faults (plausibility); requests off
#   installer manual on/off with a time limit ("auto" = no request)
#   schedule  the active schedule window (on/off or W)
#   backend   setpoint W or on/off from the flexibility backend
#   default   off
# Every request carries an expiry; a lapsed one is ignored and the next rules.
#
# Relay protection: minimum on time, minimum off time and a cap on switch-ons per
# sliding hour. A change that would break them is deferred with the reason and
# happens at the first decide() that allows it. Switching off for dso or safety is
# never deferred; switching on always respects min_off and the cycle cap.
# Power-up counts as a switch-off at construction time, so a crash loop cannot
# chatter the relay.
from micropython import const

_HOUR_MS = const(3600000)

SOURCES = ("dso", "safety", "installer", "schedule", "backend", "default")
_FORCING = ("dso", "safety")  # may switch off at once, whatever min_on or the cap say


def _ceil_s(ms):
    return (ms + 999) // 1000


class Arbiter:
    def __init__(self, nominal_w=0, min_on_s=0, min_off_s=0, max_cycles_per_h=0,
                 modulating=False, now_ms=0):
        self.nominal_w = int(nominal_w)
        self.min_on_ms = int(min_on_s) * 1000
        self.min_off_ms = int(min_off_s) * 1000
        self.max_cycles = int(max_cycles_per_h)
        self.modulating = modulating
        self.on = False           # commanded state (power-up: off)
        self.power_w = 0          # commanded power (nominal_w when a relay is on)
        self.changed_ms = now_ms  # last switching, power-up counts as one
        self._ons = []            # switch-on times within the last hour
        self._req = {}            # source -> [on, power_w, limit_w, until_ms, why]

    # -- requests ---------------------------------------------------------
    def request(self, source, on=None, power_w=None, limit_w=None, until_ms=None, why=None):
        # Exactly one of on / power_w / limit_w (limit_w only for "dso").
        # until_ms None = no expiry. Replaces the source's previous request.
        if source not in SOURCES or source == "default":
            raise ValueError("source")
        if (on is None) + (power_w is None) + (limit_w is None) != 2:
            raise ValueError("one of on, power_w, limit_w")
        if (limit_w is not None) != (source == "dso"):
            raise ValueError("limit_w is for dso only")
        self._req[source] = [on, power_w, limit_w, until_ms, why]

    def clear(self, source):
        self._req.pop(source, None)

    def get(self, source):
        return self._req.get(source)

    def dso_limit(self, now_ms):
        # -> (limit_w, until_ms or None) of the grid operator's live limit, or None
        r = self._req.get("dso")
        return (r[2], r[3]) if self._live(r, now_ms) else None

    def _live(self, r, now_ms):
        return r is not None and (r[3] is None or now_ms < r[3])

    def _wish(self, r):
        # (on, power_w) a request asks for.
        if r[0] is not None:
            return r[0], (self.nominal_w if r[0] else 0)
        p = r[1]
        if self.modulating:
            return p > 0, p
        # single stage: on when the setpoint is nearer to nominal than to zero
        on = p > 0 and 2 * p >= self.nominal_w
        return on, (self.nominal_w if on else 0)

    # -- the decision -------------------------------------------------------
    def _prune(self, now_ms):
        ons = self._ons
        while ons and now_ms - ons[0] >= _HOUR_MS:
            ons.pop(0)

    def evaluate(self, now_ms):
        # -> (state_on, power_w, wanted_on, wanted_w, source, reasons, deferred)
        # without committing anything.
        reasons = {}
        src = None
        on = False
        pw = 0
        for name in ("safety", "installer", "schedule", "backend"):
            r = self._req.get(name)
            if r is None:
                reasons[name] = "no request"
            elif not self._live(r, now_ms):
                reasons[name] = "expired %d s ago" % ((now_ms - r[3]) // 1000)
            elif src is None:
                src = name
                on, pw = self._wish(r)
            else:
                reasons[name] = "outranked by " + src
        if src is None:
            src = "default"
        else:
            reasons["default"] = "outranked by " + src
        d = self._req.get("dso")
        if d is None:
            reasons["dso"] = "no request"
        elif not self._live(d, now_ms):
            reasons["dso"] = "expired %d s ago" % ((now_ms - d[3]) // 1000)
        else:
            lim = d[2]
            binds = False
            if self.modulating:
                if pw > lim or lim <= 0:
                    binds = True
                    pw = max(0, min(pw, lim))
                    on = pw > 0
            elif self.nominal_w > lim:
                binds = True
                on = False
                pw = 0
            if binds:
                reasons[src] = "outranked by dso"
                src = "dso"
            else:
                reasons["dso"] = "limit %d W does not bind (wanted %d W)" % (lim, pw)

        deferred = None
        s_on, s_pw = on, pw
        if on and not self.on:
            left = self.min_off_ms - (now_ms - self.changed_ms)
            if left > 0:
                deferred = "min_off: %d s left" % _ceil_s(left)
            elif self.max_cycles:
                self._prune(now_ms)
                if len(self._ons) >= self.max_cycles:
                    deferred = "cycle cap %d/h reached, next in %d s" % (
                        self.max_cycles, _ceil_s(self._ons[0] + _HOUR_MS - now_ms))
        elif self.on and not on and src not in _FORCING:
            left = self.min_on_ms - (now_ms - self.changed_ms)
            if left > 0:
                deferred = "min_on: %d s left" % _ceil_s(left)
        if deferred:
            s_on, s_pw = self.on, self.power_w
        return s_on, s_pw, on, pw, src, reasons, deferred

    def decide(self, now_ms):
        # -> (state_on, source, reasons, deferred); commits the switching, so the
        # caller must apply self.on / self.power_w to the output.
        s_on, s_pw, _, _, src, reasons, deferred = self.evaluate(now_ms)
        if s_on != self.on:
            self.on = s_on
            self.changed_ms = now_ms
            if s_on:
                self._prune(now_ms)
                self._ons.append(now_ms)
        self.power_w = s_pw
        return s_on, src, reasons, deferred

    def cycles_last_h(self, now_ms):
        self._prune(now_ms)
        return len(self._ons)

    def status(self, now_ms):
        # Compact dict for `relay --json`.
        s_on, s_pw, w_on, w_pw, src, reasons, deferred = self.evaluate(now_ms)
        sources = {}
        for name in SOURCES:
            r = self._req.get(name)
            if name == "default":
                e = {"request": "off", "expires_in_s": None}
            elif r is None:
                e = {"request": None, "expires_in_s": None}
            else:
                if r[0] is not None:
                    req = "on" if r[0] else "off"
                elif r[1] is not None:
                    req = "%d W" % r[1]
                else:
                    req = "limit %d W" % r[2]
                e = {"request": req,
                     "expires_in_s": None if r[3] is None else max(0, _ceil_s(r[3] - now_ms))}
                if r[4]:
                    e["why"] = r[4]
            e["why_not"] = reasons.get(name)
            sources[name] = e
        st = {"state": "on" if self.on else "off", "source": src,
              "wanted": "on" if w_on else "off", "deferred": deferred,
              "sources": sources, "cycles_last_h": self.cycles_last_h(now_ms)}
        if self.modulating:
            st["power_w"] = self.power_w
            st["wanted_w"] = w_pw
        return st
