# Does the element really draw power when switched on, and stop when switched off?
# Pure: fed (now_ms, power_w, relay_on) from the sub-meter; times in integer ms on
# the controller's monotonic base.
#
# After an off->on edge the metered power must rise by share * nominal (or of the
# commanded setpoint) within within_s, else fault "no_power_rise" (element broken,
# or the tank is hot and its thermostat open: the meter cannot tell them apart).
# After an on->off edge (and at start-up, relay off) it must fall below that
# threshold, else fault "power_stays" (relay welded).
# A staged load (staged=True, fed the stage's power as target_w) is judged at
# each stage change too: a step up must raise the power by share * the step, a
# step down lower it by as much, else no_power_rise or power_stays.
#
# Clearing rule:
# - power_stays clears as soon as a sample with the relay off is below threshold;
#   until then the controller keeps safety's "off" request without expiry.
# - no_power_rise clears on any later sample with the relay on and power at or above
#   the threshold (the thermostat closed again). It does not latch: the fault holds
#   the relay off only until hold_until_ms (retry_s, doubled after each further
#   failed check up to retry_max_s, reset by a good one). When the hold lapses the
#   lower sources may switch on again and the check runs anew, so a tank that has
#   cooled brings the element back without anyone's help.
# Samples with power_w None only mark the switching moment. No samples, no verdict:
# a silent meter is the meter's fault, not the element's.
from micropython import const

NO_POWER_RISE = "no_power_rise"
POWER_STAYS = "power_stays"
_RISE = const(1)
_FALL = const(2)
_STEP_DOWN = const(3)


class Plausibility:
    def __init__(self, nominal_w, share=0.5, within_s=30, retry_s=900, retry_max_s=14400, staged=False):
        self.staged = staged
        self._target = None       # the stage's power at the last edge (staged)
        self.nominal_w = int(nominal_w)
        self.share = share
        self.within_ms = int(within_s) * 1000
        self.retry_ms = int(retry_s) * 1000
        self.retry_max_ms = int(retry_max_s) * 1000
        self.faults = {}          # name -> {"since_ms", "detail"}
        self.hold_until_ms = None # no_power_rise keeps the relay off until then
        self._next_hold_ms = self.retry_ms
        self._on = None           # relay state of the last feed
        self._check = 0           # _RISE, _FALL or 0
        self._deadline = 0
        self._base = None         # power before the edge
        self._thr = 0
        self._last_p = None

    def _threshold(self, target_w):
        t = int((target_w if target_w else self.nominal_w) * self.share)
        return t if t > 0 else 1

    def _raise(self, name, now_ms, detail):
        if name not in self.faults:
            self.faults[name] = {"since_ms": now_ms, "detail": detail}
            return [(name, True)]
        return []

    def _clear(self, name):
        if self.faults.pop(name, None) is not None:
            return [(name, False)]
        return []

    def feed(self, now_ms, power_w, relay_on, target_w=None):
        # -> list of (fault name, raised: bool) that changed with this sample.
        out = []
        if relay_on != self._on:
            first = self._on is None
            self._on = relay_on
            self._base = self._last_p
            self._deadline = now_ms + self.within_ms
            self._thr = self._threshold(target_w)
            self._check = _RISE if relay_on else _FALL
            if first and relay_on:
                self._check = 0  # already on at start: no edge to judge
            self._target = target_w
        elif relay_on and self.staged and target_w is not None and target_w != self._target:
            # a stage change while on: the step must show in the power
            step = target_w - (self._target or 0)
            self._base = self._last_p
            self._deadline = now_ms + self.within_ms
            self._thr = max(1, int(abs(step) * self.share))
            self._check = _RISE if step > 0 else _STEP_DOWN
            self._target = target_w
        if power_w is None:
            return out
        self._last_p = power_w
        thr = self._thr or self._threshold(target_w)
        if relay_on and self._check == _STEP_DOWN:
            if self._base is None or self._base - power_w >= thr:
                self._check = 0
                out += self._clear(POWER_STAYS)
            elif now_ms >= self._deadline:
                self._check = 0
                out += self._raise(POWER_STAYS, now_ms, "%d W after a step down to %d W: relay welded?"
                                   % (power_w, self._target))
        elif relay_on:
            base = self._base if self._base is not None else 0
            if power_w - base >= thr or (self._check != _RISE and power_w >= thr):
                self._check = 0
                self._next_hold_ms = self.retry_ms
                self.hold_until_ms = None
                out += self._clear(NO_POWER_RISE)
            elif self._check == _RISE and now_ms >= self._deadline:
                self._check = 0
                self.hold_until_ms = now_ms + self._next_hold_ms
                self._next_hold_ms = min(self._next_hold_ms * 2, self.retry_max_ms)
                # a new failure refreshes the fault (new time, new hold)
                self.faults.pop(NO_POWER_RISE, None)
                out += self._raise(NO_POWER_RISE, now_ms,
                                   "power +%d W < %d W within %d s: element broken or thermostat open"
                                   % (power_w - base, thr, self.within_ms // 1000))
        else:
            base = self._base
            if power_w < thr or (base is not None and base - power_w >= thr):
                self._check = 0
                out += self._clear(POWER_STAYS)
            elif self._check == _FALL and now_ms >= self._deadline:
                self._check = 0
                out += self._raise(POWER_STAYS, now_ms,
                                   "%d W after switching off: relay welded?" % power_w)
        return out

    def holding(self, now_ms):
        # The fault the safety source should enforce now, or None.
        if POWER_STAYS in self.faults:
            return POWER_STAYS
        if NO_POWER_RISE in self.faults and self.hold_until_ms is not None \
                and now_ms < self.hold_until_ms:
            return NO_POWER_RISE
        return None

    def info(self, now_ms):
        h = self.hold_until_ms
        return {"faults": dict(self.faults),
                "hold_s": max(0, (h - now_ms + 999) // 1000) if h is not None and NO_POWER_RISE in self.faults else 0}
