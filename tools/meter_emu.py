#!/usr/bin/env python3
"""Modbus RTU meter emulator for the bench (pymodbus is the meter).

Serves one or more meters on a pty pair it creates and prints {"pty": PATH} as
the first line on stdout. Register maps come from firmware/dicamm/proto/profiles.py,
so the emulator and the firmware share one source of truth. pymodbus holds the
registers (SimDevice/SimData datastore) and decodes/encodes every PDU and RTU
frame; this file adds the line: baud/parity check, wire timing and faults.

  meter_emu.py --meter 1:sdm630 [--meter 2:sdm120:9600] [--pty-link PATH]
      [--load constant:W | steps:W1,W2:SECONDS | day] [--relay-file F --element-w 3000 [--stages-w 2000,4000,6000]
      [--element-broken]] [--speed S --start-ms T0 --epoch-ms E] [--wire-timing]
      [--fault KIND:RATE ...] [--control SOCKET] [--log FILE] [--seed N]

Fault kinds: drop delay corrupt exception wrong_unit noise split. On demand, send
JSON lines to the --control UNIX socket: {"fault": "corrupt", "count": 1, "unit": 1},
{"load": "constant:500"}, {"clear": true}, {"nan": N} (the next N answers carry
an invalid import register: NaN for float32, all ones for "nan" profiles),
{"serial": "20260099", "unit": 1} (a
meter exchange: the identity registers show another serial; with "import_wh" the
new meter's register starts there); each is answered with {"ok": true}.
Identity registers (serial, model, firmware) are served as the profile's
"identity" says: --serial (default 2026000 + unit), model and firmware texts.
Every read answered (or faulted) is logged to --log as a JSON line:
{"t_ms", "unit", "function", "address", "count", "import_wh", "export_wh", "power_w", "fault",
"relays_on"} (relays_on: how many of the element's relays were on, its stage).
A meter whose baud or parity differs from the pty's current termios setting stays
silent, as a real meter that only sees garbage.
"""
import argparse
import asyncio
import json
import logging
import os
import random
import struct
import sys
import termios
import tty
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, os.path.join(ROOT, "host_tests", "shims"), os.path.join(ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from dicamm.proto import profiles  # noqa: E402
from emu_load import WMS_PER_WH, Integrator, parse_load  # noqa: E402
from simclock import SimClock  # noqa: E402

from pymodbus.constants import ExcCodes  # noqa: E402
from pymodbus.framer import FramerRTU  # noqa: E402
from pymodbus.pdu import DecodePDU, ExceptionResponse  # noqa: E402
from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: E402
from pymodbus.simulator.simcore import SimCore  # noqa: E402

FAULTS = ("drop", "delay", "corrupt", "exception", "wrong_unit", "noise", "split")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
SPEED = {getattr(termios, "B%d" % b): b for b in BAUDS}
TURNAROUND_S = 0.003
VOLTAGE = 230.0


def encode(field, value, floor=False):
    """Register words (as on the wire, in the profile's word order) for a value
    in the field's unit (Wh, W, V, A)."""
    fn, reg, typ, lsw_first, num, den = field
    n = profiles.size(typ)
    if typ == "float32":
        words = list(struct.unpack(">HH", struct.pack(">f", float(Fraction(value) * den / num))))
    else:
        x = Fraction(value) * den / num
        raw = int(x // 1) if floor else round(x)
        bits = 16 * n
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if typ[0] == "i" else (0, (1 << bits) - 1)
        raw = max(lo, min(hi, raw)) & ((1 << bits) - 1)
        words = [(raw >> (16 * (n - 1 - i))) & 0xFFFF for i in range(n)]
    return words[::-1] if lsw_first else words


def _words_bytes(words):
    return b"".join(struct.pack(">H", w) for w in words)


class EmuMeter:
    def __init__(self, unit, profile, baud, integ, serial=None):
        self.unit = unit
        self.serial = str(serial if serial is not None else 2026000 + unit)
        self.profile = profile
        self.baud = baud
        self.parity = profile.get("parity", "N")
        self.integ = integ
        self.exc = None      # exception code to answer with, set per request
        self.nan = 0         # answers left with an invalid import register
        self.served = {}     # the values the registers hold now (decoded back)
        self.device = SimDevice(id=unit, simdata=self._layout(), action=self._action)

    def _layout(self):
        # Registers the meter defines. Tolerant meters (max_gap > 0) define a
        # zero-filled span around their fields; strict ones only their fields and
        # their documented areas, so reading across a hole gives exception 02.
        p = self.profile
        addrs = {3: set(), 4: set()}
        for f in p["fields"].values():
            addrs[f[0]].update(range(f[1], f[1] + profiles.size(f[2])))
        for fn in (3, 4):
            if addrs[fn]:
                if p.get("max_gap", 0) > 0:
                    addrs[fn].update(range(0, max(addrs[fn]) + 16))
                for a, b in p.get("ranges", ()):
                    if any(a <= x < b for x in addrs[fn]):
                        addrs[fn].update(range(a, b))
        for spec in (p.get("identity") or {}).values():
            addrs[spec[0]].update(range(spec[1], spec[1] + spec[2]))
        idn = p.get("ident")
        ident_words = None
        if idn:
            addrs[idn[0]].update(range(idn[1], idn[1] + idn[2]))
            want = idn[3]
            if isinstance(want, int):
                ident_words = [(want >> (16 * (idn[2] - 1 - i))) & 0xFFFF for i in range(idn[2])]
            else:
                text = (want + b" 112-100").ljust(2 * idn[2], b"\0")[:2 * idn[2]]
                ident_words = list(struct.unpack(">%dH" % idn[2], text))
        blocks = {}
        for fn in (3, 4):
            runs, start, prev = [], None, None
            for a in sorted(addrs[fn]):
                if start is None or a != prev + 1:
                    if start is not None:
                        runs.append(SimData(start, count=prev - start + 1, values=0, datatype=DataType.REGISTERS))
                    start = a
                prev = a
            if start is not None:
                runs.append(SimData(start, count=prev - start + 1, values=0, datatype=DataType.REGISTERS))
            blocks[fn] = runs or [SimData(0, datatype=DataType.INVALID)]
        self.ident = (idn, ident_words)
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return (bits, list(bits), blocks[3], blocks[4])

    def identity_words(self):
        # {(function, register): words} of the identity registers now.
        out = {}
        texts = {"serial": self.serial, "model": self.profile.get("model", ""), "firmware": "1.0.7-emu"}
        for name, (fn, reg, cnt, kind) in (self.profile.get("identity") or {}).items():
            if kind == "ascii":
                b = texts[name].encode()[:2 * cnt].ljust(2 * cnt, b"\0")
                words = list(struct.unpack(">%dH" % cnt, b))
            else:
                v = int(texts[name]) if texts[name].isdigit() else 0
                words = [(v >> (16 * (cnt - 1 - i))) & 0xFFFF for i in range(cnt)]
            out[(fn, reg)] = words
        return out

    def values(self):
        p = self.integ.power_w()
        cur = abs(p) / VOLTAGE / self.profile.get("phases", 1)
        return {"power_w": p, "import_wh": self.integ.import_wh, "export_wh": self.integ.export_wh,
                "total_wh": self.integ.import_wh + self.integ.export_wh, "voltage_v": VOLTAGE, "current_a": cur}

    async def _action(self, fc, start, address, count, registers, set_values):
        # pymodbus calls this before it answers: refresh the registers from the
        # integrator, or answer with an exception when a fault asks for one.
        if self.exc is not None:
            return self.exc
        vals = self.values()
        self.served = {}
        for name, f in self.profile["fields"].items():
            if f[0] != fc:
                continue
            words = encode(f, vals[name], floor=name.endswith("_wh"))
            if name == "import_wh" and self.nan > 0 and address <= f[1] < address + count:
                self.nan -= 1
                words = [0x7FC0, 0x0000] if f[2] == "float32" else [0xFFFF] * len(words)
            registers[f[1] - start:f[1] - start + len(words)] = words
            if address <= f[1] and f[1] + len(words) <= address + count:
                blk = (f[0], f[1], len(words), (name,))
                self.served[name] = profiles.decode(self.profile, blk, _words_bytes(words))[name]
        for (ifn, reg), words in self.identity_words().items():
            if ifn == fc and start <= reg and reg + len(words) <= start + len(registers):
                registers[reg - start:reg - start + len(words)] = words
        idn, words = self.ident
        if idn and idn[0] == fc:
            registers[idn[1] - start:idn[1] - start + len(words)] = words
        return None


class Emulator:
    def __init__(self, args, meters, clock):
        self.args = args
        self.meters = {m.unit: m for m in meters}
        self.clock = clock
        self.core = SimCore([m.device for m in meters])
        self.framer = FramerRTU(DecodePDU(True))
        self.rates = dict(args.fault)
        self.queue = []          # [kind, count, unit or None] from the control socket
        self.rng = random.Random(args.seed)
        self.buf = b""
        self.flush_handle = None
        self.relays_on = 0       # the element's stage: how many relay files read "1"
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        attrs = termios.tcgetattr(self.slave_fd)
        attrs[4] = attrs[5] = termios.B9600
        termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs)
        # Linux ptys may refuse PARENB (EINVAL); then parity cannot differ on
        # this line and only the baud is checked.
        try:
            termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs[:2] + [attrs[2] | termios.PARENB] + attrs[3:])
            self.check_parity = True
        except termios.error:
            self.check_parity = False
        termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs)
        os.set_blocking(self.master_fd, False)
        self.path = os.ttyname(self.slave_fd)

    # -- the line --------------------------------------------------------
    def line(self):
        a = termios.tcgetattr(self.slave_fd)
        parity = "N" if not a[2] & termios.PARENB else ("O" if a[2] & termios.PARODD else "E")
        return SPEED.get(a[5], 0), parity

    def char_s(self, baud):
        return 11.0 / baud

    def on_readable(self):
        try:
            data = os.read(self.master_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # no reader on the slave side yet
        if not data:
            return
        self.buf += data
        baud = self.line()[0] or 9600
        if self.flush_handle:
            self.flush_handle.cancel()
        # A frame ends after 3.5 characters of silence; the pty delivers whole
        # writes, so give the master a generous window before dropping a fragment.
        self.flush_handle = asyncio.get_running_loop().call_later(
            max(0.05, 4 * self.char_s(baud)), self._drop_fragment)
        self._parse()

    def _drop_fragment(self):
        self.buf = b""

    def _parse(self):
        while self.buf:
            used, dev_id, _tid, frame = self.framer.decode(self.buf)
            if not used:
                return
            req_len = len(self.buf)
            self.buf = self.buf[used:]
            if frame:
                asyncio.ensure_future(self.handle(dev_id, frame, req_len))

    # -- one request -----------------------------------------------------
    def pick_fault(self, unit):
        for q in self.queue:
            if q[2] in (None, unit):
                q[1] -= 1
                if q[1] <= 0:
                    self.queue.remove(q)
                return q[0]
        for kind, rate in self.rates.items():
            if self.rng.random() < rate:
                return kind
        return None

    async def handle(self, unit, frame, req_len):
        m = self.meters.get(unit)
        if m is None:
            return
        baud, parity = self.line()
        if baud != m.baud or (self.check_parity and parity != m.parity):
            return  # the meter hears garbage at the wrong speed or parity
        fault = self.pick_fault(unit)
        t_ms = self.clock.now_ms()
        m.integ.advance(t_ms)
        pdu = self.framer.decoder.decode(frame)
        if pdu is None:  # e.g. a count over 125
            resp = ExceptionResponse(frame[0] & 0x7F, ExcCodes.ILLEGAL_VALUE)
        else:
            m.exc = self.rng.choice((ExcCodes.DEVICE_FAILURE, ExcCodes.DEVICE_BUSY)) if fault == "exception" else None
            m.served = {}
            resp = await pdu.datastore_update(self.core, unit)
            m.exc = None
        resp.dev_id = unit
        out = self.framer.buildFrame(resp)
        if self.log and pdu is not None and pdu.function_code in (3, 4):
            s = m.served
            self.log.write(json.dumps({"t_ms": t_ms, "unit": unit, "function": pdu.function_code,
                                       "address": pdu.address, "count": pdu.count,
                                       "import_wh": s.get("import_wh"), "export_wh": s.get("export_wh"),
                                       "power_w": s.get("power_w"), "fault": fault,
                                       "relays_on": self.relays_on}) + "\n")
        if fault == "drop":
            return
        delay = 0.0
        if self.args.wire_timing:
            c = self.char_s(baud)
            delay = (req_len + 3.5 + len(out)) * c + TURNAROUND_S
        if fault == "delay":
            delay += self.args.delay_ms / 1000.0
        if fault == "corrupt":
            i = self.rng.randrange(3, len(out))
            out = out[:i] + bytes([out[i] ^ 0x5A]) + out[i + 1:]
        elif fault == "wrong_unit":
            out = self.framer.encode(out[1:-2], unit % 247 + 1, 0)
        elif fault == "noise":
            junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 6)))
            out = junk + out + junk[::-1]
        pieces = [out]
        if fault == "split":
            a = self.rng.randrange(1, len(out) - 1)
            b = self.rng.randrange(a + 1, len(out))
            pieces = [out[:a], out[a:b], out[b:]]
        if delay:
            await asyncio.sleep(delay)
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(max(0.002, 1.5 * self.char_s(baud)))
            self.write(piece)

    def write(self, data):
        try:
            os.write(self.master_fd, data)
        except OSError:
            pass

    # -- housekeeping ------------------------------------------------------
    async def ticker(self):
        # Integrates energy and follows the relay file (the firmware's
        # emulated relay writes "1"/"0" into it). A staged element (--stages-w)
        # follows relay.gpio, relay2.gpio, relay3.gpio beside it: stage k has
        # relays 1..k on and draws the k-th power.
        stages = [int(w) for w in self.args.stages_w.split(",")] if self.args.stages_w else None
        files = [self.args.relay_file] if self.args.relay_file else []
        if files and stages:
            base = self.args.relay_file[:-len(".gpio")] if self.args.relay_file.endswith(".gpio") else self.args.relay_file
            files += ["%s%d.gpio" % (base, i + 1) for i in range(1, len(stages))]
        while True:
            t = self.clock.now_ms()
            k = 0
            if files and not self.args.element_broken:
                for path in files:
                    try:
                        with open(path) as f:
                            if "1" not in f.read():
                                break
                    except OSError:
                        break
                    k += 1
            self.relays_on = k
            w = (stages[k - 1] if stages else self.args.element_w) if k else 0
            for m in self.meters.values():
                m.integ.set_extra(t, w)
            await asyncio.sleep(0.02)

    async def control(self, reader, writer):
        while line := await reader.readline():
            try:
                cmd = json.loads(line)
                if "fault" in cmd:
                    if cmd["fault"] not in FAULTS:
                        raise ValueError("unknown fault %r" % cmd["fault"])
                    self.queue.append([cmd["fault"], int(cmd.get("count", 1)), cmd.get("unit")])
                if "load" in cmd:
                    load = parse_load(cmd["load"])
                    for m in self.meters.values():
                        m.integ.set_load(self.clock.now_ms(), load)
                if "nan" in cmd:
                    for m in self.meters.values():
                        if cmd.get("unit") in (None, m.unit):
                            m.nan = int(cmd["nan"])
                if "serial" in cmd:
                    for m in self.meters.values():
                        if cmd.get("unit") in (None, m.unit):
                            m.serial = str(cmd["serial"])
                            if "import_wh" in cmd:
                                m.integ.advance(self.clock.now_ms())
                                m.integ.import_wms = int(cmd["import_wh"]) * WMS_PER_WH
                if cmd.get("clear"):
                    self.queue.clear()
                reply = {"ok": True}
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": str(e)}
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        writer.close()

    async def run(self):
        loop = asyncio.get_running_loop()
        loop.add_reader(self.master_fd, self.on_readable)
        tasks = [asyncio.ensure_future(self.ticker())]
        if self.args.control:
            if os.path.exists(self.args.control):
                os.unlink(self.args.control)
            await asyncio.start_unix_server(self.control, path=self.args.control)
        if self.args.pty_link:
            tmp = self.args.pty_link + ".tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.args.pty_link)
        print(json.dumps({"pty": self.path}), flush=True)
        await asyncio.gather(*tasks)


def _meter_arg(s):
    parts = s.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("--meter UNIT:PROFILE[:BAUD]")
    unit = int(parts[0])
    if not 1 <= unit <= 247:
        raise argparse.ArgumentTypeError("unit must be 1..247")
    p = profiles.get(parts[1])
    return unit, p, int(parts[2]) if len(parts) == 3 else p["baud"]


def _fault_arg(s):
    kind, _, rate = s.partition(":")
    if kind not in FAULTS:
        raise argparse.ArgumentTypeError("fault kinds: " + " ".join(FAULTS))
    return kind, float(rate or 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meter", action="append", type=_meter_arg, required=True, help="UNIT:PROFILE[:BAUD]")
    ap.add_argument("--pty-link", help="symlink to the pty's slave side")
    ap.add_argument("--load", default="constant:1000")
    ap.add_argument("--import-wh", type=int, default=1234567, help="import register at start")
    ap.add_argument("--serial", help="serial number of the (first) meter")
    ap.add_argument("--export-wh", type=int, default=0)
    ap.add_argument("--relay-file")
    ap.add_argument("--element-w", type=int, default=3000)
    ap.add_argument("--element-broken", action="store_true")
    ap.add_argument("--stages-w", help="a staged element: the power with 1, 2, 3 relays on (comma separated)")
    ap.add_argument("--wire-timing", action="store_true")
    ap.add_argument("--fault", action="append", type=_fault_arg, default=[], help="KIND:RATE")
    ap.add_argument("--delay-ms", type=int, default=1500, help="extra delay of the 'delay' fault")
    ap.add_argument("--control", help="UNIX socket for JSON-line commands")
    ap.add_argument("--log", help="JSON lines, one per read served")
    ap.add_argument("--seed", type=int, default=None)
    SimClock.add_arguments(ap)
    args = ap.parse_args(argv)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    clock = SimClock.from_args(args)
    t0 = clock.now_ms()
    meters = [EmuMeter(u, p, b, Integrator(parse_load(args.load), t0, args.import_wh, args.export_wh),
                       args.serial if i == 0 else None)
              for i, (u, p, b) in enumerate(args.meter)]
    emu = Emulator(args, meters, clock)
    try:
        asyncio.run(emu.run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
