# The boundary gate: at a quarter-hour boundary the load profile's reading
# comes first. A step that holds the event loop in one piece (the TLS handshake
# of a TAF16 post or of an MQTT connect, a burst of MQTT publishes) and runs
# across a boundary makes that reading late or a gap; schedule windows and
# limits start and end on quarter hours, so their events collide with the
# boundary as a rule. The load profile names the boundary it waits for
# (expect); a step awaits wait_clear(blocks_ms) right before it starts and
# waits from a quiet lead before that boundary until its value or gap is
# recorded. The lead is as long as the step may hold the loop (blocks_ms), so
# that it has ended before the boundary; a short step (a console command)
# waits only if it starts right before the boundary.
#
# Leads are real time, because a blocking step lasts real time whatever the
# bench clock's speed. The longest, _LEAD_MS (the default: a mutual-TLS
# handshake on an ESP32 takes hundreds of ms to about a second), is at most a
# third of a quarter hour's real time, so that on a fast bench clock (1440x:
# 625 real ms per quarter hour) the long steps keep two thirds of it. The gate
# opens at the latest hold_ms of device time after the boundary (when the load
# profile writes a gap), so a stuck load profile never stops the links for good.
from dicamm.platform import asyncio

from micropython import const

_LEAD_MS = const(2000)    # real ms of quiet before a boundary for the longest steps
_LEAD_SHARE = const(3)    # ...but at most this fraction (1/3) of the period
_RECHECK_MS = const(1000)  # real ms: a waiter looks again at least this often (clock steps)


def closed_for(boundary_ms, now_ms, lead_ms, hold_ms, real_ms_for):
    # Real ms a step must still wait at most (0: it may start now). Device
    # times in ms (boundary_ms None: no boundary pending); lead_ms real.
    if boundary_ms is None:
        return 0
    left = boundary_ms - now_ms
    if left > 0 and real_ms_for(left) > lead_ms:
        return 0
    end = left + hold_ms
    if end <= 0:
        return 0
    return max(1, real_ms_for(end))


class BoundaryGate:
    def __init__(self, clock, now_ms, period_ms, hold_ms):
        # now_ms(): legal time (the clock the boundaries are on); hold_ms:
        # device ms after a boundary by which it has a value or a gap.
        self.clock = clock
        self._now = now_ms
        self.hold_ms = hold_ms
        # at the clock's speed, not from now: a gate made before the bench clock
        # started got a lead longer than the period (650 real ms at 2880x) and
        # stayed closed for the longest steps all day (MQTT never connected)
        self.lead_ms = min(_LEAD_MS, clock.real_ms_at_speed(period_ms // _LEAD_SHARE))
        self.boundary_ms = None
        self.waits = 0          # steps that had to wait (status, tests)
        self._passed = asyncio.Event()

    def expect(self, boundary_ms):
        # The load profile: boundary_ms is the next one without a record.
        # A new boundary means the last one is recorded: wake the waiters.
        if boundary_ms != self.boundary_ms:
            self.boundary_ms = boundary_ms
            self._passed.set()
            self._passed.clear()  # the waiters woken already run; later ones wait

    def closed_for(self, blocks_ms=None):
        # Real ms a step that holds the loop for blocks_ms (real; None: the
        # longest, lead_ms) must still wait at most; 0: it may start now.
        lead = self.lead_ms if blocks_ms is None else min(blocks_ms, self.lead_ms)
        return closed_for(self.boundary_ms, self._now(), lead, self.hold_ms, self.clock.real_ms_for)

    async def wait_clear(self, blocks_ms=None):
        # Returns at once outside the quiet time; else when the boundary is
        # recorded (or the hold is over).
        w = self.closed_for(blocks_ms)
        if not w:
            return
        self.waits += 1
        while w:
            try:
                await asyncio.wait_for_ms(self._passed.wait(), min(w, _RECHECK_MS))
            except asyncio.TimeoutError:
                pass
            w = self.closed_for(blocks_ms)
