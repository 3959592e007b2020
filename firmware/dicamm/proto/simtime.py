# Simulated time for the bench (unix port only; a board's clock is real): device
# time as a function of real time, one formula for the firmware's Clock and the
# host emulators (tools/simclock.py imports this module), so all of them agree.
#
# Linear at `speed` device ms per real ms; optionally in slow motion, at `slow`,
# from `lead_ms` before to `tail_ms` after every quarter-hour boundary of device
# time. The load profile must read the meter within 9 s of device time after a
# boundary: at 720x that is 12.5 real ms, less than a loaded host's scheduling
# jitter; at 30x it is 300 ms. Between boundaries the day still runs fast.
#
# Integers only (a Unix time in ms does not fit a float32). With slow motion,
# real time is counted in units of 1/(speed * slow) ms, so that both speeds
# divide it exactly: one period of the boundaries lasts
#   window * speed + (period - window) * slow   units.
_PERIOD_MS = 900000


class SimTime:
    def __init__(self, speed, start_ms, epoch_ms, slow=0, lead_ms=0, tail_ms=0):
        self.speed = speed
        self.start_ms = start_ms
        self.epoch_ms = epoch_ms
        self.slow = slow
        self.lead_ms = lead_ms
        self.tail_ms = tail_ms
        if slow:
            if not 0 < slow < speed or lead_ms < 0 or tail_ms < 0 or lead_ms + tail_ms >= _PERIOD_MS:
                raise ValueError("slow motion: 0 < slow < speed, lead + tail < 15 min")
            self._window = lead_ms + tail_ms
            self._units = speed * slow  # units per real ms
            self._per_period = self._window * speed + (_PERIOD_MS - self._window) * slow
            self._t0 = self._units_at(start_ms)

    def _units_at(self, device_ms):
        # Real time (units) from a window's start to device_ms; windows start
        # lead_ms before each boundary.
        v = device_ms + self.lead_ms
        k, m = v // _PERIOD_MS, v % _PERIOD_MS
        w = self._window
        if m < w:
            return k * self._per_period + m * self.speed
        return k * self._per_period + w * self.speed + (m - w) * self.slow

    def _device_at(self, units):
        k, rem = units // self._per_period, units % self._per_period
        w = self._window
        if rem < w * self.speed:
            m = rem // self.speed
        else:
            m = w + (rem - w * self.speed) // self.slow
        return k * _PERIOD_MS + m - self.lead_ms

    def device_ms(self, real_ms):
        # Device time (Unix ms) at real time real_ms.
        if not self.slow:
            return self.start_ms + (real_ms - self.epoch_ms) * self.speed
        return self._device_at(self._t0 + (real_ms - self.epoch_ms) * self._units)

    def real_ms(self, device_ms):
        # The real time (Unix ms, rounded down) at which device time reaches device_ms.
        if not self.slow:
            return self.epoch_ms + (device_ms - self.start_ms) // self.speed
        return self.epoch_ms + (self._units_at(device_ms) - self._t0) // self._units

    def args(self):
        # Command-line form, as main.py and the emulators take it.
        a = ["--speed", str(self.speed), "--start-ms", str(self.start_ms), "--epoch-ms", str(self.epoch_ms)]
        if self.slow:
            a += ["--slow", "%d:%d:%d" % (self.slow, self.lead_ms, self.tail_ms)]
        return a


def parse_slow(text):
    # "SLOW[:LEAD_MS:TAIL_MS]" -> (slow, lead_ms, tail_ms); "" or "0" -> (0, 0, 0).
    if not text or text == "0":
        return 0, 0, 0
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        parts += [_DEFAULT_LEAD_MS, _DEFAULT_TAIL_MS]
    if len(parts) != 3:
        raise ValueError("--slow SLOW[:LEAD_MS:TAIL_MS]")
    return parts[0], parts[1], parts[2]


_DEFAULT_LEAD_MS = 3000   # the load profile reserves the bus and spins before a boundary
_DEFAULT_TAIL_MS = 12000  # past the 9 s tolerance: a retried read still runs slowly
