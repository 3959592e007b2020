# `meter scan`: find meters on the RS485 bus over the usual baud rates,
# parities and addresses 1-247. Any valid answer (values or an exception
# response) proves a device; the profiles' identification registers then name
# the model where they can. Progress is printed; Ctrl-C aborts.
import json

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from micropython import const

from dicamm.errors import ModbusError, ModbusException

_PROBE_TIMEOUT_MS = const(120)
_BAUDS = (9600, 2400, 19200, 4800, 38400, 115200)


class _ScanConfig:
    # The meter settings with one baud/parity swapped in, for hw.meter_port().
    def __init__(self, config, baud, parity):
        self.config = config
        self.over = {"meter.baud": baud, "meter.parity": parity}

    def get(self, key):
        return self.over.get(key, self.config.get(key))


async def probe(master, unit):
    # True when a device answers at this address (even with an exception).
    for fn in (4, 3):
        try:
            await master.read_registers(unit, fn, 0, 2)
            return True
        except ModbusException:
            return True
        except ModbusError:
            if fn == 3:
                return False
    return False


async def identify(master, unit):
    from dicamm import profiles
    from dicamm.meter import Meter
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


async def run(con, args):
    app = con.app
    from dicamm import hw
    from dicamm.modbus import ModbusMaster
    lo = args.int_flag("from", 1, 1, 247)
    hi = args.int_flag("to", 247, lo, 247)
    bauds = _BAUDS
    if "bauds" in args.flags:
        try:
            bauds = tuple(int(b) for b in args.flags["bauds"].split(","))
        except ValueError:
            raise ModbusError("--bauds wants a list like 9600,2400")
    parities = tuple(args.flags.get("parities", "N,E").upper().split(","))
    found = []
    m = app.metering
    if m is not None:
        m.paused = True
        old_port = m.master.port
    try:
        for baud in bauds:
            for parity in parities:
                if m is not None and old_port is not None:
                    try:
                        old_port.close()
                    except (AttributeError, OSError):
                        pass
                    old_port = None
                port = hw.meter_port(app.board, _ScanConfig(app.config, baud, parity))
                master = ModbusMaster(port, _PROBE_TIMEOUT_MS, 0)
                if not args.json:
                    con.write("scan %d baud 8%s1, addresses %d-%d ..." % (baud, parity, lo, hi))
                for unit in range(lo, hi + 1):
                    if await probe(master, unit):
                        model = await identify(master, unit)
                        row = {"address": unit, "baud": baud, "parity": parity, "model": model}
                        found.append(row)
                        if not args.json:
                            con.write("  found address %d at %d baud 8%s1: %s" % (unit, baud, parity, model or "unknown model"))
                try:
                    port.close()
                except (AttributeError, OSError):
                    pass
    finally:
        if m is not None:
            m.master.port = hw.meter_port(app.board, app.config)
            m.paused = False
    if args.json:
        con.write(json.dumps({"found": found}))
    else:
        con.write("scan done: %d meter(s) found%s" % (len(found), "; use 'meter set MODEL ADDRESS BAUD PARITY'" if found else ""))
