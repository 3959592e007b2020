"""Load curves and exact energy integration for the meter emulator.

A load is piecewise constant: power_w(t_ms) and next_change(t_ms), so the
integrator adds power * time exactly, in W*ms (integers), splitting at every
change. Specs (--load):
  constant:W            e.g. constant:800, constant:-1200 (export)
  steps:W1,W2,...:SECONDS  cycle through the values, SECONDS each (device time)
  day                   a household-like day (base load, fridge, meals, evening)
"""
FAR_MS = 10 ** 15
WMS_PER_WH = 3_600_000


class Constant:
    def __init__(self, w):
        self.w = int(w)

    def power_w(self, t_ms):
        return self.w

    def next_change(self, t_ms):
        return t_ms + FAR_MS


class Steps:
    def __init__(self, values, seconds):
        if not values or seconds <= 0:
            raise ValueError("steps needs values and a positive period")
        self.values = [int(v) for v in values]
        self.period = int(seconds * 1000)

    def power_w(self, t_ms):
        return self.values[(t_ms // self.period) % len(self.values)]

    def next_change(self, t_ms):
        return (t_ms // self.period + 1) * self.period


class Day:
    # Local time taken as UTC+1; the curve changes once a minute (device time).
    # (start hour, end hour, W) added on top of a 150 W base load.
    BLOCKS = ((6.5, 8.5, 900), (11.5, 13.5, 1800), (13.5, 17.0, 300), (17.0, 18.0, 600),
              (18.0, 21.5, 1200), (21.5, 23.0, 450))

    def power_w(self, t_ms):
        minute = (t_ms // 60_000 + 60) % 1440
        h = minute / 60
        w = 150
        for a, b, extra in self.BLOCKS:
            if a <= h < b:
                w += extra
        if minute % 45 < 15:  # the fridge compressor
            w += 120
        return w

    def next_change(self, t_ms):
        return (t_ms // 60_000 + 1) * 60_000


def parse_load(spec):
    kind, _, rest = spec.partition(":")
    if kind == "constant":
        return Constant(int(rest))
    if kind == "steps":
        vals, _, secs = rest.rpartition(":")
        return Steps([int(v) for v in vals.split(",") if v], float(secs))
    if kind == "day":
        return Day()
    raise ValueError("unknown load %r (constant:W, steps:W1,W2:S, day)" % spec)


class Integrator:
    """Import/export energy of one meter in W*ms, exact integers."""

    def __init__(self, load, t_ms, import_wh=0, export_wh=0):
        self.load = load
        self.t_ms = t_ms
        self.extra_w = 0             # the element, while the relay is on
        self.import_wms = import_wh * WMS_PER_WH
        self.export_wms = export_wh * WMS_PER_WH

    def power_w(self, t_ms=None):
        return self.load.power_w(self.t_ms if t_ms is None else t_ms) + self.extra_w

    def advance(self, t_ms):
        t = self.t_ms
        while t < t_ms:
            end = min(t_ms, self.load.next_change(t))
            p = self.load.power_w(t) + self.extra_w
            if p > 0:
                self.import_wms += p * (end - t)
            else:
                self.export_wms += -p * (end - t)
            t = end
        self.t_ms = max(self.t_ms, t_ms)

    def set_extra(self, t_ms, w):
        self.advance(t_ms)
        self.extra_w = w

    def set_load(self, t_ms, load):
        self.advance(t_ms)
        self.load = load

    @property
    def import_wh(self):
        return self.import_wms // WMS_PER_WH

    @property
    def export_wh(self):
        return self.export_wms // WMS_PER_WH
