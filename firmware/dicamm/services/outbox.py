# The TAF16 outbox: every event is appended to flash BEFORE it is sent; one
# sender task posts them strictly in order and retries the head with the same
# UUID (exponential backoff on the device clock) until the gateway acknowledges
# it. Acknowledgements go to a second journal with the gateway's record, so
# after a reboot the state is rebuilt from the two journals: events with a
# journal seq above the last acknowledged one are pending. Because delivery is
# in order, acknowledged events are always the oldest, so the journals' own
# eviction of old segments drops acknowledged entries first; if it ever has to
# drop an unacknowledged one, the alarm is raised (status()["alarm"]).
import json
import time
from os import urandom

from micropython import const

from dicamm.errors import LinkError
from dicamm.platform import asyncio
from dicamm.proto.uuid4 import from_bytes

_TEXT_MAX = const(64)
_FULL_PCT = const(75)  # alarm when pending events fill this share of the journal


class Outbox:
    def __init__(self, journal_dir, clock, poster, max_bytes=65536, segment_bytes=8192,
                 stats=None, cls_id="", backoff_min_ms=2000, backoff_max_ms=600000,
                 on_ack=None, journal_class=None, gate=None, link=None):
        if journal_class is None:
            from dicamm.drivers.journal import Journal as journal_class
        self.clock = clock
        self.poster = poster  # async poster(event) -> gateway record; raises LinkError
        self.cls_id = cls_id
        self.max_bytes = max_bytes
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.on_ack = on_ack  # on_ack(event, record), e.g. publish on MQTT
        self.gate = gate      # boundary_gate.BoundaryGate: a post's TLS handshake blocks the loop
        # link (HanClient): blocks_ms() how long the next post holds the loop (short on a
        # kept connection), idle_left_ms() and close() for the connection kept between events
        self.link = link
        self.events = journal_class(journal_dir, "outbox", max_bytes, segment_bytes, stats)
        # Ack entries are about as large as events: 1.5 times the room keeps every
        # ack at least as long as its event.
        self.acks = journal_class(journal_dir, "acks", max_bytes + max_bytes // 2, segment_bytes, stats)
        self.acked_upto = 0  # highest events-journal seq acknowledged (seqs start at 1)
        self.acked = 0
        self.last_error = None
        self.last_ack = None
        self.alarm = None
        self.lost = 0
        self.attempts = 0
        self._backoff = 0
        self._retry_at = None  # device ticks of the next attempt, None = now
        self._wake = asyncio.Event()
        self._kick = asyncio.Event()
        self._recover()

    def _recover(self):
        for _, payload in self.acks.records():
            try:
                a = json.loads(payload)
            except ValueError:
                continue
            self.acked += 1
            if a["n"] > self.acked_upto:
                self.acked_upto = a["n"]
        self._pending_bytes = 0
        for seq, payload in self.events.records(self.acked_upto + 1):
            self._pending_bytes += len(payload)
        self._check_lost()

    def _check_lost(self):
        # Unacknowledged events evicted by the journal: raise the alarm, go on
        # with the oldest one still there.
        first = self.events.first_seq
        if first > self.acked_upto + 1 and self.events.next_seq > self.acked_upto + 1:
            n = first - (self.acked_upto + 1)
            self.lost += n
            self.acked_upto = first - 1
            self.alarm = "outbox overflow: %d unacknowledged events dropped" % self.lost
        elif self.alarm is None and self._pending_bytes * 100 > self.max_bytes * _FULL_PCT:
            self.alarm = "outbox nearly full: %d bytes unacknowledged" % self._pending_bytes
        elif self.alarm and self.lost == 0 and self._pending_bytes * 100 <= self.max_bytes * _FULL_PCT // 2:
            self.alarm = None

    def pending(self):
        n = self.events.next_seq - max(self.acked_upto + 1, self.events.first_seq)
        return n if n > 0 else 0

    def add(self, kind, text, time_ms, time_status, reading_wh=None, uuid=None, reading=None, error_ms=None):
        # Record an event now (durable on return) and wake the sender.
        # reading (metering.edge_reading()): the reading's own time goes with
        # it, and "stale_ms" (its age) when it is not current. error_ms: how
        # far time_ms may be off legal time (timekeeper.error_bound_ms(), while S).
        ev = {"uuid": uuid or from_bytes(urandom(16)), "cls_id": self.cls_id, "text": text[:_TEXT_MAX],
              "timestamp": time_ms // 1000, "reading_wh": reading_wh, "time_ms": time_ms,
              "time_status": time_status, "kind": kind}
        if error_ms is not None and time_status == "S":
            ev["error_ms"] = error_ms
        if reading is not None:
            ev["reading_ms"] = reading["t"]
            if reading["ef"]:
                ev["stale_ms"] = reading["age_ms"]
        payload = json.dumps(ev).encode()
        ev["seq"] = self.events.append(payload)
        self._pending_bytes += len(payload)
        self._check_lost()
        self._wake.set()
        return ev

    def head(self):
        for seq, payload in self.events.records(self.acked_upto + 1):
            ev = json.loads(payload)
            ev["seq"] = seq
            return ev
        return None

    def retry_now(self):
        self._retry_at = None
        self._kick.set()
        self._wake.set()

    async def send_one(self):
        # Post the head once. Returns True when it was acknowledged, False when
        # there was nothing to send; raises LinkError otherwise.
        ev = self.head()
        if ev is None:
            return False
        seq = ev.pop("seq")
        self.attempts += 1
        try:
            rec = await self.poster(ev)
        except LinkError as e:
            self.last_error = str(e)
            raise
        except Exception as e:  # a bug or an unexpected OS error: same handling
            self.last_error = "%s: %s" % (type(e).__name__, e)
            raise LinkError(self.last_error)
        self.acks.append(json.dumps({"n": seq, "r": rec}).encode())
        self.acked_upto = seq
        self.acked += 1
        self._pending_bytes -= len(json.dumps(ev))
        if self._pending_bytes < 0 or self.pending() == 0:
            self._pending_bytes = 0
        self.last_ack = rec
        self.last_error = None
        self._check_lost()
        if self.on_ack:
            try:
                self.on_ack(ev, rec)
            except Exception:
                pass
        return True

    def _delay(self):
        if self._backoff == 0:
            self._backoff = self.backoff_min_ms
        else:
            self._backoff = min(self._backoff * 2, self.backoff_max_ms)
        return self._backoff

    @classmethod
    def from_config(cls, cfg, han, folder, clock, stats):
        # The outbox in front of a HAN client (drivers/han_client), as configured.
        return cls(folder, clock, han.post_event, cfg.get("storage.outbox_max_bytes"),
                   cfg.get("storage.segment_bytes"), stats, cfg.get("cls_id"), gate=han.gate, link=han)

    def fault_text(self):
        # The "taf16" fault: the alarm, or the gateway link's problem (refused
        # certificate, timeouts, HTTP errors) while events wait; else None.
        if self.alarm:
            return self.alarm
        if self.last_error and self.pending():
            return "gateway: %s (%d pending)" % (self.last_error, self.pending())

    async def run(self):
        # The sender task: in order, one event at a time, forever.
        while True:
            if self.pending() == 0:
                self._wake.clear()
                idle = self.link.idle_left_ms() if self.link is not None else None
                if idle is None:
                    await self._wake.wait()
                    continue
                try:  # nothing to send: the kept connection is closed after its idle time
                    await asyncio.wait_for_ms(self._wake.wait(), max(1, idle))
                except asyncio.TimeoutError:
                    self.link.close()
                continue
            if self.gate is not None:
                # the quarter-hour reading first; the event goes right after it
                await self.gate.wait_clear(self.link.blocks_ms() if self.link is not None else None)
            try:
                await self.send_one()
                self._backoff = 0
                self._retry_at = None
            except LinkError:
                delay = self._delay()
                self._retry_at = time.ticks_add(self.clock.ticks_ms(), delay)
                self._kick.clear()
                try:
                    await asyncio.wait_for_ms(self._kick.wait(), max(1, self.clock.real_ms_for(delay)))
                except asyncio.TimeoutError:
                    pass
                self._retry_at = None

    def status(self):
        nxt = None
        if self._retry_at is not None:
            nxt = max(0, time.ticks_diff(self._retry_at, self.clock.ticks_ms()))
        return {"pending": self.pending(), "acked": self.acked, "last_error": self.last_error,
                "next_retry_ms": nxt, "backoff_ms": self._backoff, "attempts": self.attempts,
                "alarm": self.alarm, "lost": self.lost, "last_ack": self.last_ack}

    def list(self, last=10):
        # The last N events, oldest first, each with "acked" and the gateway's
        # "record" when acknowledged (for the CLI `events` command).
        recs = {}
        for _, payload in self.acks.last(last):
            try:
                a = json.loads(payload)
                recs[a["n"]] = a["r"]
            except (ValueError, KeyError):
                pass
        out = []
        for seq, payload in self.events.last(last):
            ev = json.loads(payload)
            ev["seq"] = seq
            ev["acked"] = seq <= self.acked_upto
            ev["record"] = recs.get(seq)
            out.append(ev)
        return out
