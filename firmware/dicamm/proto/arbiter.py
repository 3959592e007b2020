# Who may switch the load, and when its relays allow it. Pure: no I/O, times are
# integer milliseconds on one monotonic base passed in by the caller.
#
# Sources, highest first (MISSION.md, "Control and who may switch"):
#   dso       the grid operator's limit under §14a EnWG (BNetzA BK6-22-300), in W.
#             Only for a controllable consumer, and never below the legal
#             minimum (dso_min_w: 4200 W, a scaled one for a large heat pump): a
#             lower limit is raised to it. Where it binds the load runs at the
#             most power at or below it: a modulating load gets it as setpoint,
#             a staged load its highest stage that fits, a single-stage load
#             above it switches off. A limit at or above what the load can draw
#             changes nothing.
#   safety    faults (plausibility); requests off
#   installer manual on/off with a time limit ("auto" = no request)
#   schedule  the active schedule window (on/off or W)
#   backend   setpoint W or on/off from the flexibility backend
#   default   off
# Every request carries an expiry; a lapsed one is ignored and the next rules.
#
# The load: single-stage (one relay, nominal_w), staged (stages_w: the power with
# 1, 2, 3 relays on; relay k is on from stage k up) or modulating (a setpoint
# 0..nominal_w, one relay's worth of protection for its on/off).
# Relay protection, per relay: minimum on time, minimum off time and a cap on
# switch-ons per sliding hour. A change that would break them is deferred with
# the reason (a staged load goes as far as its relays allow) and happens at the
# first decide() that allows it. Switching down or off for dso or safety is never
# deferred; switching on always respects min_off and the cycle cap. Power-up
# counts as a switch-off of every relay, so a crash loop cannot chatter them.
from micropython import const

from dicamm.proto.schema import LEGAL_MIN_W

_HOUR_MS = const(3600000)

SOURCES = ("dso", "safety", "installer", "schedule", "backend", "default")
_FORCING = ("dso", "safety")  # may switch down at once, whatever min_on says


def _ceil_s(ms):
    return (ms + 999) // 1000


class Arbiter:
    def __init__(self, nominal_w=0, min_on_s=0, min_off_s=0, max_cycles_per_h=0,
                 modulating=False, now_ms=0, stages_w=None, dso_min_w=LEGAL_MIN_W, controllable=True):
        self.modulating = modulating
        self.stages = [int(w) for w in stages_w] if stages_w and not modulating else [int(nominal_w)]
        self.nominal_w = self.stages[-1]   # the rated power: all the load can draw
        self.configure(min_on_s, min_off_s, max_cycles_per_h)
        self.dso_min_w = int(dso_min_w)
        self.controllable = bool(controllable)
        self.on = False           # commanded state (power-up: off)
        self.stage = 0            # relays on (0..len(stages)); 1 for a modulating load that is on
        self.power_w = 0          # commanded power
        n = 1 if modulating else len(self.stages)
        self._chg = [now_ms] * n  # per relay: its last switching, power-up counts as one
        self._ons = [[] for _ in range(n)]   # per relay: switch-on times within the last hour
        self._req = {}            # source -> [on, power_w, limit_w, until_ms, why]

    def configure(self, min_on_s, min_off_s, max_cycles_per_h):
        # Relay protection; takes effect at the next decide().
        self.min_on_ms = int(min_on_s) * 1000
        self.min_off_ms = int(min_off_s) * 1000
        self.max_cycles = int(max_cycles_per_h)

    # -- requests ---------------------------------------------------------
    def request(self, source, on=None, power_w=None, limit_w=None, until_ms=None, why=None):
        # Exactly one of on / power_w / limit_w (limit_w only for "dso", as
        # asked: the legal minimum is applied here). until_ms None = no expiry.
        # Replaces the source's previous request.
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
        # -> (asked limit_w, until_ms or None) of the grid operator's live limit, or None
        r = self._req.get("dso")
        return (r[2], r[3]) if self._live(r, now_ms) else None

    def legal_limit(self, asked_w):
        # The limit that applies to this load: None when it is no controllable
        # consumer, else never below the legal minimum.
        return max(int(asked_w), self.dso_min_w) if self.controllable else None

    def allowed_w(self, now_ms):
        # The most power the load may draw now (the grid operator's limit applied).
        d = self.dso_limit(now_ms)
        lim = self.legal_limit(d[0]) if d is not None else None
        if lim is None or lim >= self.nominal_w:
            return self.nominal_w
        if self.modulating:
            return lim
        return self._stage_w(self._fit(lim))

    def _live(self, r, now_ms):
        return r is not None and (r[3] is None or now_ms < r[3])

    def _stage_w(self, k):
        return self.stages[k - 1] if k > 0 else 0

    def _fit(self, lim):
        # the highest stage at or below lim
        k = 0
        for i, w in enumerate(self.stages):
            if w <= lim:
                k = i + 1
        return k

    def _nearest(self, p):
        # the stage nearest to a setpoint (ties go up; 0 W is off)
        best = 0
        if p > 0:
            for i, w in enumerate(self.stages):
                if 2 * p >= self._stage_w(best) + w:
                    best = i + 1
        return best

    def _wish(self, r):
        # (on, power_w) a request asks for.
        if r[0] is not None:
            return r[0], (self.nominal_w if r[0] else 0)
        p = r[1]
        if self.modulating:
            return p > 0, p
        w = self._stage_w(self._nearest(p))
        return w > 0, w

    def _stage_of(self, on, pw):
        if not on:
            return 0
        if self.modulating:
            return 1
        for i, w in enumerate(self.stages):
            if w >= pw:
                return i + 1
        return len(self.stages)

    # -- the decision -------------------------------------------------------
    def _prune(self, now_ms):
        for ons in self._ons:
            while ons and now_ms - ons[0] >= _HOUR_MS:
                ons.pop(0)

    def _relay(self, i):
        return " relay %d" % (i + 1) if len(self._chg) > 1 else ""

    def _why_not_on(self, i, now_ms):
        left = self.min_off_ms - (now_ms - self._chg[i])
        if left > 0:
            return "min_off%s: %d s left" % (self._relay(i), _ceil_s(left))
        if self.max_cycles:
            self._prune(now_ms)
            ons = self._ons[i]
            if len(ons) >= self.max_cycles:
                return "cycle cap %d/h%s reached, next in %d s" % (
                    self.max_cycles, self._relay(i), _ceil_s(ons[0] + _HOUR_MS - now_ms))
        return None

    def _dso(self, now_ms, src, on, pw, reasons):
        # -> (src, on, pw) with the grid operator's limit applied
        d = self._req.get("dso")
        if d is None:
            reasons["dso"] = "no request"
        elif not self._live(d, now_ms):
            reasons["dso"] = "expired %d s ago" % ((now_ms - d[3]) // 1000)
        else:
            asked = d[2]
            lim = self.legal_limit(asked)
            text = "limit %d W" % asked
            if lim is None:
                reasons["dso"] = text + " ignored: no controllable consumer (14a EnWG)"
                return src, on, pw
            if asked < lim:
                text += " raised to the legal minimum %d W" % lim
            if lim >= self.nominal_w:
                reasons["dso"] = text + "; does not bind: the load draws at most %d W" % self.nominal_w
            elif pw <= lim:
                reasons["dso"] = text + "; does not bind (wanted %d W)" % pw
            else:
                pw = lim if self.modulating else self._stage_w(self._fit(lim))
                on = pw > 0
                reasons[src] = "outranked by dso"
                src = "dso"
        return src, on, pw

    def evaluate(self, now_ms):
        # -> (state_on, power_w, wanted_on, wanted_w, source, reasons, deferred,
        # state_stage) without committing anything.
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
        src, on, pw = self._dso(now_ms, src, on, pw, reasons)

        deferred = None
        want = self._stage_of(on, pw)
        got = want
        cur = self.stage
        if want > cur:
            for i in range(cur, want):          # relay i switches on, bottom up
                deferred = self._why_not_on(i, now_ms)
                if deferred:
                    got = i
                    break
        elif want < cur and src not in _FORCING:
            for i in range(cur - 1, want - 1, -1):   # relay i switches off, top down
                left = self.min_on_ms - (now_ms - self._chg[i])
                if left > 0:
                    deferred = "min_on%s: %d s left" % (self._relay(i), _ceil_s(left))
                    got = i + 1
                    break
        if got == want:
            s_on, s_pw = on, pw
        elif self.modulating:
            s_on, s_pw = self.on, self.power_w
        else:
            s_on, s_pw = got > 0, self._stage_w(got)
        return s_on, s_pw, on, pw, src, reasons, deferred, got

    def decide(self, now_ms):
        # -> (state_on, source, reasons, deferred); commits the switching, so the
        # caller must apply self.on / self.stage / self.power_w to the output.
        s_on, s_pw, _, _, src, reasons, deferred, got = self.evaluate(now_ms)
        cur = self.stage
        if got != cur:
            self._prune(now_ms)
            for i in range(min(cur, got), max(cur, got)):
                self._chg[i] = now_ms
                if got > cur:
                    self._ons[i].append(now_ms)
        self.stage = got
        self.on = s_on
        self.power_w = s_pw
        return s_on, src, reasons, deferred

    def cycles_last_h(self, now_ms):
        # switch-ons of the busiest relay in the last hour
        self._prune(now_ms)
        return max(len(ons) for ons in self._ons)

    def status(self, now_ms):
        # Compact dict for `relay --json`.
        s_on, s_pw, w_on, w_pw, src, reasons, deferred, got = self.evaluate(now_ms)
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
        elif len(self.stages) > 1:
            st["stage"] = self.stage
            st["stages_w"] = list(self.stages)
            st["power_w"] = self.power_w
            st["wanted_w"] = w_pw
        d = self.dso_limit(now_ms)
        st["limit"] = None if d is None else {
            "asked_w": d[0], "limit_w": self.legal_limit(d[0]),
            "expires_in_s": None if d[1] is None else max(0, _ceil_s(d[1] - now_ms)),
            "binds": src == "dso"}
        st["allowed_w"] = self.allowed_w(now_ms)
        return st
