# The metering service: polls the MID meter over Modbus RTU, keeps the latest
# good reading with its legal time stamp, and counts every bus fault so that
# `status` shows it. A value from a failed transaction is never kept.
import time

from dicamm.platform import asyncio

from dicamm.errors import ModbusError


class Metering:
    def __init__(self, master, meter, timekeeper, clock, poll_ms=1000):
        self.master = master
        self.meter = meter
        self.timekeeper = timekeeper
        self.clock = clock
        self.poll_ms = poll_ms
        self.reading = None        # last good Reading dict
        self.reading_ms = None     # legal time of it
        self.reading_status = "U"
        self.reading_ticks = None  # device ticks when taken, for the age
        self.asked_ticks = None    # device ticks when its request went out
        self.ok = False
        self.last_error = None
        self.last_error_ms = None
        self.polls = 0
        self.failures = 0
        self.first_reading_ticks = None
        self.listeners = []        # callables(reading) after each good poll
        self.paused = False        # set while `meter scan` owns the bus
        self.reserved = False      # set by the load profile just before a boundary

    def reserve(self, on):
        # The quarter-hour reading needs the bus at the boundary: while
        # reserved, the poller starts no new transaction (one already running
        # finishes first; the load profile reserves early enough for that).
        self.reserved = on

    async def read_now(self, fields=None):
        # One read of the meter; raises ModbusError. Stamps with legal time when
        # the answer arrived.
        self.polls += 1
        asked = self.clock.ticks_ms()
        try:
            r = await self.meter.read(fields)
        except ModbusError as e:
            self.failures += 1
            self.ok = False
            self.last_error = "%s: %s" % (e.__class__.__name__, e)
            self.last_error_ms = self.timekeeper.now_ms()
            raise
        t, st = self.timekeeper.stamp()
        if fields is None:
            self.reading = r
            self.reading_ms = t
            self.reading_status = st
            self.reading_ticks = self.clock.ticks_ms()
            self.asked_ticks = asked  # when the request of this reading went out
            if self.first_reading_ticks is None:
                self.first_reading_ticks = time.ticks_ms()
            self.ok = True
            for f in self.listeners:
                f(r)
        return r, t, st

    def age_ms(self):
        if self.reading_ticks is None:
            return None
        return time.ticks_diff(self.clock.ticks_ms(), self.reading_ticks)

    async def run(self):
        while True:
            if self.paused:
                await asyncio.sleep_ms(100)
                continue
            if self.reserved:
                await asyncio.sleep_ms(1)
                continue
            try:
                await self.read_now()
            except ModbusError:
                pass
            await self.clock.sleep_ms(self.poll_ms)

    def as_dict(self):
        d = {"model": self.meter.profile["name"], "address": self.meter.unit, "ok": self.ok}
        if self.reading is not None:
            for k in ("power_w", "import_wh", "export_wh", "voltage_v", "current_a"):
                if k in self.reading:
                    d[k] = self.reading[k]
            age = self.age_ms()
            d["age_s"] = None if age is None else age / 1000
            d["time_ms"] = self.reading_ms
            d["time_status"] = self.reading_status
        d["error"] = self.last_error
        return d

    def bus_dict(self):
        m = self.master
        return {"transactions": m.transactions, "tx_bytes": m.tx_bytes, "rx_bytes": m.rx_bytes,
                "errors": dict(m.errors), "last_error": m.last_error,
                "polls": self.polls, "failures": self.failures}
