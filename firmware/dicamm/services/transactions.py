# The transactions service: what the load's switching means for the records.
# Owns the TAF16 event wording of switching edges and window edges, the OCMF
# end reasons, the close after a power cut and after a meter exchange. It gets
# what it uses (the transaction store, legal time, the metering service, the
# outbox, a log and a fault setter), never the application.
#
# Everything is decided at the edge itself, before anything is awaited: the
# TAF16 event is on flash (outbox), a begin is on flash (tx.open), and so is a
# stop's end (reading, reason, event). The stop's signature (one P-256 scalar
# product, held in one piece: ~10 ms on the unix port, 15 device s at 1440x;
# far longer on an ESP32) follows at once unless a quarter-hour boundary is
# near (the boundary gate is closed for it: a stop on a window's end falls on
# one as a rule); then the signer task makes it right after the boundary's
# reading. It is one piece on purpose: signed in steps between the other
# tasks, its ~1 KB of payload and big numbers met the TLS and MQTT buffers of
# the same moment, and a day in 96 KiB on 32 bits ran out of memory.
# Begin and end use the reading the edge's TAF16 event carries (the last poll,
# at most a poll period old, with its own time, marked when stale), so the
# gateway's legal record and the OCMF record name the same reading. A
# power cut before the stop ends the transaction with TX "P" at the last
# reading noted on flash (recover at the next start); a cut after the stop
# but before its signature ends it with the stop's own end.
import gc

from micropython import const

from dicamm.platform import asyncio

_SIGN_BLOCKS_MS = const(1000)  # real ms one signature may hold the loop (an ESP32: up to about a second)

# Who switched the load off -> OCMF TX of the end reading (OCMF 1.4, table 11:
# R remote, A abort, L local; E plain end).
_END_REASON = {"dso": "R", "backend": "R", "safety": "A", "installer": "L"}


def stop_reason(source):
    return _END_REASON.get(source, "E")


def switch_text(on, source, reason, started_by):
    # The TAF16 event text of a switching edge. started_by: who switched the
    # load on (for a stop by default, when that request ended).
    why = reason or ""
    if on:
        return "start by %s: %s" % (source, why)
    if source == "default" or why == source:
        why = ("%s request ended" % started_by) if started_by else "no request"
    return "stop by %s: %s" % (source, why)


def window_text(kind, window_id, late):
    # The TAF16 event text of a schedule window's start or end.
    if kind == "window_start":
        tail = " (joined late)" if late else ""
    else:
        tail = " (early)" if late else ""
    return "window %s %s%s" % (window_id, kind[7:], tail)


class TransactionService:
    def __init__(self, store, timekeeper, metering, outbox, info, fault, gate=None):
        # store: drivers/txstore.Transactions; metering: services/metering
        # (None without a meter); outbox: services/outbox (None without a
        # gateway); info(text); fault(name, text or None); gate: the load
        # profile's BoundaryGate (None: every signature at its edge).
        self.store = store
        self.gate = gate
        self.timekeeper = timekeeper
        self.metering = metering
        self.outbox = outbox
        self.info = info
        self.fault = fault
        self.started_by = None   # who switched the load on (for the stop event's text)
        self.ended = 0           # records signed since start
        self._to_sign = asyncio.Event()

    # -- TAF16 events ----------------------------------------------------
    def raise_event(self, text, kind, reading_wh=None):
        # A TAF16 trigger: UUID, reading and legal time taken now, written to
        # the flash outbox before anything is sent. Returns the event (or a
        # local one with a UUID when no gateway is configured). The reading is
        # the last good one with its own time, marked when stale.
        m = self.metering
        rd = m.edge_reading() if m is not None and reading_wh is None else None
        return self._event(text, kind, rd, rd["i"] if rd else reading_wh)

    def _event(self, text, kind, rd, wh):
        t, st = self.timekeeper.stamp()
        text = text[:64]
        if self.outbox is not None:
            # error_ms: how far t may be off legal time (while S): the gateway gets it (docs/HAN.md)
            ev = self.outbox.add(kind, text, t, st, wh, reading=rd, error_ms=self.timekeeper.error_bound_ms())
        else:
            from os import urandom
            from dicamm.proto.uuid4 import from_bytes
            ev = {"uuid": from_bytes(urandom(16)), "text": text, "time_ms": t, "time_status": st,
                  "reading_wh": wh, "kind": kind}
        self.info("event %s: %s" % (ev["uuid"][:8], text))
        return ev

    # -- edges -----------------------------------------------------------
    def on_transition(self, ev):
        # The controller's switching transitions and schedule window edges.
        kind = ev["kind"]
        if kind == "switch":
            self._switch(ev)
        elif kind == "limit":
            self.raise_event(ev["reason"], "dso")
        elif kind in ("window_start", "window_end"):
            self.raise_event(window_text(kind, ev.get("window_id"), ev.get("late")), kind)

    def _switch(self, ev):
        on, src = ev["new"], ev.get("source")
        text = switch_text(on, src, ev.get("reason"), self.started_by)
        self.started_by = src if on else None
        m, tx = self.metering, self.store
        rd = m.edge_reading() if m is not None else None   # one reading for the event and the record
        e = self._event(text, "start" if on else "stop", rd, rd["i"] if rd else None)
        if rd is None:
            return  # no reading yet: no transaction can begin or end on one
        if on:
            from dicamm.proto.ocmf import identification
            tx.begin(rd, m.meter_identity(), identification(e["uuid"], ev.get("request_id")), e["uuid"])
        elif tx.close(rd, stop_reason(src), e["uuid"]):
            if self.gate is not None and self.gate.closed_for(_SIGN_BLOCKS_MS):
                self._to_sign.set()   # the boundary's reading first: the signer task
            else:
                self.sign()

    def sign(self):
        # Signs and stores the decided end, if one waits; its pg or None.
        pg = self.store.finish()
        if pg:
            self.ended += 1
            self.info("transaction %d ended" % pg)
        return pg

    async def run(self):
        # The signer task: a stop's record whose edge came just before a
        # quarter-hour boundary, signed once the boundary is recorded.
        while True:
            await self._to_sign.wait()
            self._to_sign.clear()
            if self.gate is not None:
                await self.gate.wait_clear(_SIGN_BLOCKS_MS)
            if self.store.ending():
                gc.collect()  # the largest free block back before the big numbers
                self.sign()

    def note_reading(self):
        # Each poll of an open transaction: the latest reading, on flash now
        # and then, so that a power cut ends it (P) at the last one noted.
        if self.store.open is not None:
            self.store.note(self.metering.edge_reading())

    # -- start-up and meter exchange -------------------------------------
    def start(self):
        # At start-up: close what a power cut left open, then follow the
        # meter's readings (the open transaction's last one) and its identity.
        self.recover()
        m = self.metering
        if m is not None:
            m.listeners.append(lambda r: self.note_reading())
            m.identity_listeners.append(self.meter_exchanged)

    def recover(self):
        # An open transaction left by a power cut ends with P at the last
        # reading on flash, with that reading's own time.
        tx = self.store
        if tx.open is None:
            return
        if tx.ending():  # the stop and its event came before the cut; only the signature did not
            self.sign()
            return
        ev = self.raise_event("transaction %d ended by power failure" % tx.next_pg(), "stop")
        if tx.recover(ev["uuid"]):
            self.info("transaction %d closed after power loss (P)" % (tx.next_pg() - 1))

    def meter_exchanged(self, old, new):
        # Another serial under a running transaction: it ends aborted (TX A,
        # ST X, EF E) at the old meter's last reading; a fault and an event.
        text = "meter exchanged: serial %s, was %s" % (new["serial"], old["serial"])
        self.fault("meter_id", text)
        self.store.meter_exchanged(self.raise_event(text, "meter")["uuid"])
