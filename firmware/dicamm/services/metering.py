# The metering service: polls the MID meter over Modbus RTU, keeps the latest
# good reading with its legal time stamp, and counts every bus fault so that
# `status` shows it. A value from a failed transaction is never kept, nor an
# invalid one (drivers/meter.py). The meter's identity (serial, model,
# firmware) is read at start and every identity_ms; a different serial is a
# meter exchange, told to identity_listeners(old, new).
import time

from micropython import const

from dicamm.platform import asyncio

from dicamm.errors import ModbusError
from dicamm.proto.profiles import kwh_decimals

_IDENTITY_MS = const(600000)  # device ms between two reads of the meter's identity
_BUS_SHARE_MS = const(250)    # real ms the bus and the loop may take between two polls (stale_after_ms)


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
        self.invalid = 0           # reads refused as invalid values (NaN, negative, backwards)
        self.identity = None       # {"vendor", "model", "serial", "firmware"} read from the meter
        self.exchanged = None      # (old serial, new serial) after a meter exchange
        self.identity_listeners = []  # callables(old, new) on a meter exchange
        self.identity_ms = _IDENTITY_MS
        self._identity_at = None
        self.identity_error = None
        self.decimals = kwh_decimals(meter.profile)  # kWh places of OCMF RV

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
            if str(e).startswith("invalid value"):
                self.invalid += 1
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

    async def check_identity(self):
        # Reads the meter's identity; a serial other than the known one is an
        # exchange: the energy floor is reset (the new meter counts from its
        # own reading) and the listeners are told. Returns the identity.
        old = self.identity
        # after the first full read only the serial: one short transaction
        new = await self.meter.read_identity(None if old is None else ("serial",), old)
        self._identity_at = self.clock.ticks_ms()
        self.identity = new
        if old is not None and new["serial"] != old["serial"]:
            try:  # another meter: its model and firmware too
                self.identity = new = await self.meter.read_identity()
            except ModbusError:
                pass
            self.exchanged = (old["serial"], new["serial"])
            self.meter.floor = {}
            self.ok = False  # the last reading was the old meter's
            for f in self.identity_listeners:
                f(old, new)
        return new

    def meter_identity(self):
        # The identity read from the meter, or the profile's with serial
        # "UNREAD" before the first read (or for a profile without one).
        if self.identity is not None and self.identity["serial"]:
            return self.identity
        p = self.meter.profile
        return {"vendor": p.get("vendor", ""), "model": p.get("model", p["name"]), "serial": "UNREAD",
                "firmware": ""}

    def good_reading(self):
        # The latest reading, or None while the meter is not answering.
        return self.reading if self.ok else None

    def edge_reading(self):
        # The reading a transaction edge or an event uses without waiting: the
        # last good one with its own legal time and status (never stamped with
        # the current time). Older than three poll periods, or after a failed
        # read, it is marked: ST "T" (timeout), EF "E" (energy not usable), and
        # "age_ms" says how old. None before the first reading.
        r = self.reading
        if r is None:
            return None
        age = self.age_ms()
        stale = not self.ok or age is None or age > self.stale_after_ms()
        return {"t": self.reading_ms, "s": self.reading_status, "i": r["import_wh"],
                "x": r.get("export_wh"), "st": "T" if stale else "G", "ef": "E" if stale else "",
                "age_ms": age}

    def stale_after_ms(self):
        # Device ms after which the last reading is stale: three poll periods
        # and 2 s, plus the real time the bus and the loop may take between two
        # polls (a transaction on the wire, the load profile's hold of the bus
        # before a boundary): 250 ms on a board; on the bench clock that share
        # is many device s (at 1440x every window edge's reading was "stale").
        return 3 * self.poll_ms + 2000 + self.clock.device_ms_at_speed(_BUS_SHARE_MS)

    async def fresh_reading(self):
        # The reading of an edge taken afresh (one full read now); when the
        # meter does not answer, edge_reading() with its age and marks.
        try:
            await self.read_now()
        except ModbusError:
            pass
        return self.edge_reading()

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
            at = self._identity_at
            if at is None or time.ticks_diff(self.clock.ticks_ms(), at) >= self.identity_ms:
                try:
                    await self.check_identity()
                    self.identity_error = None
                except ModbusError as e:  # tried again after identity_ms; readings go on
                    self._identity_at = self.clock.ticks_ms()
                    self.identity_error = str(e)
                continue  # one transaction a turn: the reserved check comes first again
            try:
                await self.read_now()
            except ModbusError:
                pass
            await self.clock.sleep_ms(self.poll_ms)

    def as_dict(self):
        d = {"model": self.meter.profile["name"], "address": self.meter.unit, "ok": self.ok}
        if self.identity is not None:
            for k in ("vendor", "serial", "firmware"):
                d[k] = self.identity[k]
            d["meter_model"] = self.identity["model"]
        if self.exchanged:
            d["exchanged"] = list(self.exchanged)
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
                "polls": self.polls, "failures": self.failures, "invalid": self.invalid}


def from_config(board, cfg, timekeeper, clock, profile_path):
    # The meter on the board's RS485 port as configured (meter.*); raises
    # DicammError or OSError when it cannot be opened.
    from dicamm.drivers import hw
    from dicamm.drivers.meter import Meter, load_profile
    from dicamm.drivers.modbus import ModbusMaster
    profile = load_profile(cfg.get("meter.model"), profile_path)
    master = ModbusMaster(hw.meter_port(board, cfg), cfg.get("meter.timeout_ms"), cfg.get("meter.retries"))
    meter = Meter(master, profile, cfg.get("meter.address"))
    return Metering(master, meter, timekeeper, clock, cfg.get("meter.poll_s") * 1000)
