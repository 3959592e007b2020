# TAF7-style load profile: the meter's import and export energy registers read
# at each quarter-hour boundary of UTC, stamped with legal time and its status,
# appended to a flash journal. A boundary that could not be read (meter down,
# device off, clock stepped over it) is recorded as a gap with the reason,
# never filled with an invented value.
#
# Journal records (JSON, small on purpose: one per quarter hour for years):
#   value {"b": boundary s, "t": legal ms when the answer arrived, "r": ms the
#          read took (request sent at t - r), "st": S|I|U, "i": Wh, "e": Wh,
#          "u": ms legal time was uncertain by when t was taken (while S; absent else)}
#   gap   {"b": first boundary s, "gap": reason, "n": boundaries (default 1)}
# The meter sampled its registers somewhere in [t - r, t]; delay_ms = t - b is
# the honest upper bound of how late after the boundary the value is. A value
# that arrived later than the legal tolerance (9 s) is kept, marked late, never
# moved onto the boundary. Boundaries only ever increase in the journal: a
# clock stepped back behind the last recorded boundary waits for it again.
#
# Timing: the task wakes _EARLY_MS of real time before a boundary, asks the
# metering poller to leave the bus free, and then spins (yielding to the other
# tasks) until legal time reaches the boundary plus its uncertainty (half the
# last sync's round trip plus drift, while S), so the request goes out in the
# first millisecond at which the boundary has surely passed. Its gate
# (boundary_gate) keeps the long blocking steps of the other tasks (TLS
# handshakes, MQTT bursts) away from that moment.
import json

from dicamm.platform import asyncio

from micropython import const

from dicamm.services.boundary_gate import BoundaryGate
from dicamm.errors import ModbusError

QH_MS = const(900000)
TOLERANCE_MS = const(9000)   # 1 % of the period: what metering law allows
_QH_S = const(900)
_EARLY_MS = const(60)        # real ms: reserve the bus and spin before a boundary
_RETRY_MS = const(200)       # real ms between reads of a failing meter
# At most half the tolerance waits out the uncertainty of legal time (a read
# before the true boundary would be worse than a late one); the other half is
# for the read and its retries (tens of ms each, 200 real ms apart).
_MAX_GUARD_MS = const(4500)
_ENERGY = ("import_wh", "export_wh")


def boundary_after(unix_ms):
    return (unix_ms // QH_MS + 1) * QH_MS


def encode(boundary_ms, taken_ms, status, import_wh, export_wh, read_ms=0, error_ms=None):
    d = {"b": boundary_ms // 1000, "t": taken_ms, "r": read_ms, "st": status,
         "i": import_wh, "e": export_wh}
    if error_ms is not None:
        d["u"] = error_ms
    return json.dumps(d).encode()


def encode_gap(boundary_ms, reason, n=1):
    d = {"b": boundary_ms // 1000, "gap": reason}
    if n != 1:
        d["n"] = n
    return json.dumps(d).encode()


def last_boundary_s(r):
    # Last boundary (s) a raw record covers.
    return r["b"] + (r.get("n", 1) - 1) * _QH_S


def decode(seq, payload):
    # Journal record -> the dict that the CLI, MQTT and tools show.
    r = json.loads(payload)
    out = {"seq": seq, "boundary": r["b"]}
    if "gap" not in r and (r.get("i") is None or r.get("e") is None):
        r = {"gap": "meter: invalid value (a NaN kept by firmware before issue 17)"}
    if "gap" in r:
        out["gap"] = r["gap"]
        out["missed"] = r.get("n", 1)
    else:
        out["import_wh"] = r["i"]
        out["export_wh"] = r["e"]
        out["time_ms"] = r["t"]
        out["time_status"] = r["st"]
        d = r["t"] - r["b"] * 1000
        out["delay_ms"] = d
        out["read_ms"] = r.get("r", 0)
        if "u" in r:
            # the stamp is the true time to within this (half the sync's round trip plus drift)
            out["error_ms"] = r["u"]
        out["late"] = d > TOLERANCE_MS
    return out


class LoadProfile:
    def __init__(self, journal, metering, timekeeper, clock, log=None):
        self.journal = journal
        self.metering = metering
        self.timekeeper = timekeeper
        self.clock = clock
        self.log = log               # callable(text) or None
        self.last_boundary_ms = None
        self.pending_ms = None       # the next boundary to handle
        self.boot_ms = timekeeper.now_ms()
        self.gaps = 0                # gap records written since start
        self.values = 0
        self.late = 0
        self.last_delay_ms = None
        self.max_delay_ms = None
        self.listeners = []          # callables(seq, dict) for MQTT
        # Long steps of other tasks wait on this from shortly before a
        # boundary until it is recorded (a value or, by the tolerance, a gap).
        self.gate = BoundaryGate(clock, timekeeper.now_ms, QH_MS, TOLERANCE_MS + _MAX_GUARD_MS)
        last = journal.last(1)
        if last:
            self.last_boundary_ms = last_boundary_s(json.loads(last[0][1])) * 1000

    def _say(self, text):
        if self.log is not None:
            self.log(text)

    def _append(self, payload):
        seq = self.journal.append(payload)
        rec = decode(seq, payload)
        for f in self.listeners:
            f(seq, rec)
        return rec

    async def take(self, boundary_ms):
        # Read the energy registers for this boundary, retrying while the legal
        # tolerance lasts; then a gap. A read that started in time but finished
        # late is kept with its true time (marked late).
        tk = self.timekeeper
        reason = "meter unreachable"
        m = self.metering
        while True:
            q = tk.now_ms()
            try:
                r, t, st = await m.read_now(_ENERGY)
                rec = self._append(encode(boundary_ms, t, st, r["import_wh"], r["export_wh"], t - q,
                                          tk.error_bound_ms() if st == "S" else None))
                self.values += 1
                d = rec["delay_ms"]
                self.last_delay_ms = d
                if self.max_delay_ms is None or d > self.max_delay_ms:
                    self.max_delay_ms = d
                if rec["late"]:
                    self.late += 1
                break
            except ModbusError as e:
                reason = "meter: %s" % e
            if tk.now_ms() - boundary_ms > TOLERANCE_MS:
                rec = self._append(encode_gap(boundary_ms, reason))
                self.gaps += 1
                break
            m.reserve(False)
            await asyncio.sleep_ms(_RETRY_MS)
            m.reserve(True)
        self.last_boundary_ms = boundary_ms
        return rec

    async def _wait(self, boundary_ms):
        # Sleep until _EARLY_MS (real) before the boundary, then hold the bus
        # and spin until legal time reaches it. Re-reads the clock each turn:
        # it may be stepped meanwhile.
        tk = self.timekeeper
        clock = self.clock
        while True:
            left = boundary_ms - tk.now_ms()
            if left <= 0:
                return
            real = clock.real_ms_for(left)
            if real > _EARLY_MS:
                await asyncio.sleep_ms(min(real - _EARLY_MS, 1000))
                continue
            self.metering.reserve(True)
            await asyncio.sleep_ms(0)

    async def run(self):
        # Every boundary after the last one handled gets a value or a gap, in
        # order: boundaries further in the past than the tolerance (device off,
        # clock stepped forward, task blocked) become one gap record, never a
        # late value.
        tk = self.timekeeper
        while True:
            now = tk.now_ms()
            if self.pending_ms is None:
                if self.last_boundary_ms is None:
                    self.pending_ms = boundary_after(now)
                else:
                    self.pending_ms = self.last_boundary_ms + QH_MS
            pending = self.pending_ms
            self.gate.expect(pending)
            # Never read before the true boundary: wait out the uncertainty
            # of legal time (half the sync's round trip plus drift).
            guard = tk.error_bound_ms() or 0
            if now < pending + min(guard, _MAX_GUARD_MS):
                if pending - now > 2 * QH_MS and self.last_boundary_ms is not None \
                        and pending == self.last_boundary_ms + QH_MS:
                    self._say("qh: clock is %d s behind the last recorded boundary; waiting for it"
                              % ((pending - now) // 1000))
                self.metering.reserve(False)
                await self._wait(pending + min(guard, _MAX_GUARD_MS))
                continue
            if now - pending > TOLERANCE_MS:
                # all boundaries b with now - b > tolerance, as one record
                n = (now - TOLERANCE_MS - 1 - pending) // QH_MS + 1
                if pending < self.boot_ms:
                    n = min(n, (self.boot_ms - pending - 1) // QH_MS + 1)
                    reason = "device off"
                elif tk.steps_since(pending):
                    reason = "clock stepped"
                else:
                    reason = "missed (late)"
                self.metering.reserve(False)
                self._append(encode_gap(pending, reason, n))
                self.gaps += 1
                self.last_boundary_ms = pending + (n - 1) * QH_MS
                self.pending_ms = self.last_boundary_ms + QH_MS
                continue
            self.metering.reserve(True)
            try:
                await self.take(pending)
            finally:
                self.metering.reserve(False)
            self.pending_ms = pending + QH_MS

    def as_dict(self):
        return {"values": self.values, "gaps": self.gaps, "late": self.late, "next_seq": self.journal.next_seq,
                "last_boundary": None if self.last_boundary_ms is None else self.last_boundary_ms // 1000,
                "next_boundary": None if self.pending_ms is None else self.pending_ms // 1000,
                "last_delay_ms": self.last_delay_ms, "max_delay_ms": self.max_delay_ms,
                "gate_lead_ms": self.gate.lead_ms, "gate_waits": self.gate.waits}
