# `meter scan`: find meters on the RS485 bus over the usual baud rates,
# parities and addresses 1-247. Any valid answer (values or an exception
# response) proves a device; the profiles' identification registers then name
# the model where they can. Progress is printed; Ctrl-C aborts.
# The scan borrows the meter's serial port (Bus) but keeps the metering going:
# whenever a poll is due it switches back to the meter's settings and reads it,
# so the load profile misses nothing during a long scan.
import json
import time

from micropython import const

from dicamm.errors import ModbusError, ModbusException

_PROBE_MIN_MS = const(120)
_PROGRESS_EVERY = const(32)
_BAUDS = (9600, 2400, 19200, 4800, 38400, 115200)
_ALLOWED_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class _ScanConfig:
    # The meter settings with one baud/parity swapped in, for hw.meter_port().
    def __init__(self, config, baud, parity):
        self.config = config
        self.over = {"meter.baud": baud, "meter.parity": parity}

    def get(self, key):
        return self.over.get(key, self.config.get(key))


def probe_timeout_ms(baud):
    # Room for a short answer (~30 characters of 11 bits) on a slow line.
    return max(_PROBE_MIN_MS, 60 + 330000 // baud)


def _close(port):
    try:
        port.close()
    except (AttributeError, OSError):
        pass


class Bus:
    # The one meter port, lent out by the metering task. use(baud, parity)
    # reopens it with other settings; keep_metering() lets the meter's regular
    # poll through when it is due; close() hands the port back.
    def __init__(self, app):
        self.app = app
        self.m = app.metering
        self.port = None
        self.settings = None
        self.polls = 0
        self._last_poll = time.ticks_ms()
        if self.m is not None:
            self.m.paused = True
            self.port = self.m.master.port
            self.settings = (app.config.get("meter.baud"), app.config.get("meter.parity"))

    def use(self, baud, parity):
        from dicamm.drivers import hw
        if self.settings != (baud, parity) or self.port is None:
            if self.port is not None:
                _close(self.port)
                self.port = None
            self.port = hw.meter_port(self.app.board, _ScanConfig(self.app.config, baud, parity))
            self.settings = (baud, parity)
        return self.port

    async def keep_metering(self):
        m = self.m
        if m is None:
            return
        if time.ticks_diff(time.ticks_ms(), self._last_poll) < max(self.app.clock.real_ms_at_speed(m.poll_ms), 200):
            return
        cfg = self.app.config
        m.master.port = self.use(cfg.get("meter.baud"), cfg.get("meter.parity"))
        self._last_poll = time.ticks_ms()
        try:
            await m.read_now()
            self.polls += 1
        except ModbusError:
            pass

    def close(self):
        # Synchronous (runs in `finally` after Ctrl-C too).
        m = self.m
        if m is not None:
            cfg = self.app.config
            try:
                m.master.port = self.use(cfg.get("meter.baud"), cfg.get("meter.parity"))
            except (OSError, ValueError) as e:
                self.app.fault("meter", "cannot reopen the port after a scan: %s" % e)
            m.paused = False
        elif self.port is not None:
            _close(self.port)
            self.port = None


async def probe(master, unit):
    # True when a device answers at this address (even with an exception).
    # A timeout means nobody is there; a device that lacks function 4 says so
    # with exception 01, so one request per address is enough.
    try:
        await master.read_registers(unit, 4, 0, 2)
        return True
    except ModbusException:
        return True
    except ModbusError:
        return False


async def identify(master, unit):
    from dicamm.proto import profiles
    from dicamm.drivers.meter import Meter
    for name in profiles.names():
        p = profiles.get(name)
        if not p.get("ident"):
            continue
        try:
            got = await Meter(master, p, unit).identify()
        except ModbusError:
            got = None
        if got:
            return got
    return None


async def try_meter(app, model, unit, baud, parity):
    # One live read of a meter with the given settings (the wizard's check).
    # -> Reading dict; raises ModbusError/DicammError. Borrows the port like a scan.
    from dicamm.drivers.modbus import ModbusMaster
    from dicamm.drivers.meter import Meter, load_profile
    profile = load_profile(model, app.path("meter_profile.json"))
    bus = Bus(app)
    try:
        master = ModbusMaster(bus.use(baud, parity), max(300, probe_timeout_ms(baud)), 1)
        return await Meter(master, profile, unit).read()
    finally:
        bus.close()


def _parse_bauds(text):
    try:
        bauds = tuple(int(b) for b in text.split(","))
    except ValueError:
        bauds = ()
    if not bauds or any(b not in _ALLOWED_BAUDS for b in bauds):
        raise ModbusError("--bauds wants a list of %s" % ",".join(str(b) for b in _ALLOWED_BAUDS))
    return bauds


async def run(con, args):
    app = con.app
    from dicamm.drivers.modbus import ModbusMaster
    lo = args.int_flag("from", 1, 1, 247)
    hi = args.int_flag("to", 247, lo, 247)
    bauds = _parse_bauds(args.flags["bauds"]) if "bauds" in args.flags else _BAUDS
    parities = tuple(p.strip() for p in str(args.flags.get("parities", "N,E")).upper().split(","))
    for p in parities:
        if p not in ("N", "E", "O"):
            raise ModbusError("--parities wants N, E and/or O")
    if app.config.get("meter.port") == "" and app.board.get("chip") is None:
        raise ModbusError("no serial port: set meter.port (the unix port needs a tty path)")
    found = []
    bus = Bus(app)
    try:
        for baud in bauds:
            for parity in parities:
                master = ModbusMaster(bus.use(baud, parity), probe_timeout_ms(baud), 0)
                if not args.json:
                    con.write("scan %d baud 8%s1, addresses %d-%d ..." % (baud, parity, lo, hi))
                for unit in range(lo, hi + 1):
                    await bus.keep_metering()
                    master.port = bus.use(baud, parity)
                    if await probe(master, unit):
                        model = await identify(master, unit)
                        row = {"address": unit, "baud": baud, "parity": parity, "model": model}
                        found.append(row)
                        if not args.json:
                            con.write("  found address %d at %d baud 8%s1: %s" % (
                                unit, baud, parity, model or "unknown model"))
                    elif not args.json and (unit - lo + 1) % _PROGRESS_EVERY == 0 and unit < hi:
                        con.write("  ... %d/%d" % (unit, hi))
    finally:
        bus.close()
    if args.json:
        con.write(json.dumps({"found": found, "meter_polls_during_scan": bus.polls}))
    else:
        con.write("scan done: %d meter(s) found%s" % (len(found), "; use 'meter set MODEL ADDRESS BAUD PARITY'" if found else ""))
        for r in found:
            if r["model"]:
                con.write("  meter set %s %d %d %s" % (r["model"], r["address"], r["baud"], r["parity"]))
