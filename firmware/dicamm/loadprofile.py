# TAF7-style load profile: the meter's import and export energy registers read
# at each quarter-hour boundary of UTC, stamped with legal time and its status,
# appended to a flash journal. A boundary that could not be read (meter down,
# device off) is recorded as a gap with the reason, never filled with an
# invented value.
import json

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from micropython import const

from dicamm.errors import ModbusError

_QH_MS = const(900000)
_TOLERANCE_MS = const(9000)   # 1 % of the period: what metering law allows
_RETRY_MS = const(500)
_ENERGY = ("import_wh", "export_wh")


def boundary_after(unix_ms):
    return (unix_ms // _QH_MS + 1) * _QH_MS


def encode(boundary_ms, taken_ms, status, import_wh, export_wh):
    return json.dumps({"b": boundary_ms // 1000, "t": taken_ms, "st": status,
                       "i": import_wh, "e": export_wh}).encode()


def encode_gap(boundary_ms, reason):
    return json.dumps({"b": boundary_ms // 1000, "gap": reason}).encode()


def decode(seq, payload):
    # Journal record -> the dict that the CLI, MQTT and tools show.
    r = json.loads(payload)
    out = {"seq": seq, "boundary": r["b"]}
    if "gap" in r:
        out["gap"] = r["gap"]
    else:
        out["import_wh"] = r["i"]
        out["export_wh"] = r["e"]
        out["time_ms"] = r["t"]
        out["time_status"] = r["st"]
        out["delay_ms"] = r["t"] - r["b"] * 1000
    return out


class LoadProfile:
    def __init__(self, journal, metering, timekeeper, clock):
        self.journal = journal
        self.metering = metering
        self.timekeeper = timekeeper
        self.clock = clock
        self.last_boundary_ms = None
        self.gaps = 0
        self.values = 0
        self.listeners = []   # callables(seq, dict) for MQTT
        last = journal.last(1)
        if last:
            self.last_boundary_ms = json.loads(last[0][1])["b"] * 1000

    def _append(self, payload):
        seq = self.journal.append(payload)
        rec = decode(seq, payload)
        for f in self.listeners:
            f(seq, rec)
        return rec

    async def take(self, boundary_ms):
        # Read the energy registers for this boundary, retrying until the
        # legal tolerance has passed; then a gap.
        reason = "meter unreachable"
        while True:
            try:
                r, t, st = await self.metering.read_now(_ENERGY)
                rec = self._append(encode(boundary_ms, t, st, r["import_wh"], r["export_wh"]))
                self.values += 1
                break
            except ModbusError as e:
                reason = "meter: %s" % e
            if self.timekeeper.now_ms() - boundary_ms > _TOLERANCE_MS:
                rec = self._append(encode_gap(boundary_ms, reason))
                self.gaps += 1
                break
            await asyncio.sleep_ms(min(_RETRY_MS, self.clock.real_ms_for(1000)) or 1)
        self.last_boundary_ms = boundary_ms
        return rec

    async def run(self):
        # Every boundary after the last one handled gets a value or a gap, in
        # order: a boundary further in the past than the tolerance (device off,
        # clock stepped forward) becomes a gap, never a late value.
        reason = "device off"
        while True:
            now = self.timekeeper.now_ms()
            if self.last_boundary_ms is None:
                pending = boundary_after(now)
            else:
                pending = self.last_boundary_ms + _QH_MS
            if pending > now:
                reason = "missed (clock step)"
                await self.clock.sleep_until_wall_ms(pending, self.timekeeper.now_ms)
                continue
            if now - pending > _TOLERANCE_MS:
                self._append(encode_gap(pending, reason))
                self.gaps += 1
                self.last_boundary_ms = pending
                continue
            await self.take(pending)

    def as_dict(self):
        return {"values": self.values, "gaps": self.gaps, "next_seq": self.journal.next_seq,
                "last_boundary": None if self.last_boundary_ms is None else self.last_boundary_ms // 1000}
