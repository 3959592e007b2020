# The transactions service (services/transactions.py) without an App: the
# TAF16 wording of switching and window edges, the OCMF 1.4 end reasons
# (table 11: R remote, L local, A abort, E end, P power failure), the begin on
# flash at the edge itself, the stop at the reading its TAF16 event carries
# (never a later one), and a power cut during a transaction.
# Dual test: MicroPython and CPython, on the real Journal and transaction store.
import os

from scratch import fresh_dir

from dicamm.platform import asyncio

from dicamm.drivers import txstore
from dicamm.drivers.journal import Journal
from dicamm.proto import ocmf
from dicamm.services.transactions import TransactionService, stop_reason, switch_text, window_text

KEY = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
GW = ("DICAMM", "DIC-0001", "0.9.0")
METER = {"vendor": "Eastron", "model": "SDM630-Modbus", "serial": "12345678", "firmware": ""}
T0 = 1796214124000


def _dir(name):
    return fresh_dir('dicamm_txsvc', name)


class FakeTime:
    def __init__(self):
        self.t = T0

    def stamp(self):
        return self.t, "S"


class FakeMetering:
    # The poll's last reading (no fresh_reading: the edges never read afresh).
    def __init__(self, clock):
        self.clock = clock
        self.wh = 1000
        self.edge_reads = 0

    def edge_reading(self):
        self.edge_reads += 1
        return {"t": self.clock.t, "s": "S", "i": self.wh, "x": 0, "st": "G", "ef": "", "age_ms": 0}

    def meter_identity(self):
        return METER


def _service(name):
    d = _dir(name)
    store = txstore.Transactions(Journal(d, "tx", 65536, 8192), KEY, GW, d + "/tx.open")
    clock = FakeTime()
    m = FakeMetering(clock)
    log, faults = [], {}
    svc = TransactionService(store, clock, m, None, log.append, lambda n, t=None: faults.__setitem__(n, t))
    return d, store, clock, m, svc, log, faults


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _switch(on, source, reason="", request_id=None):
    return {"kind": "switch", "new": on, "source": source, "reason": reason, "request_id": request_id}


def test_event_texts():
    cases = [((True, "backend", "setpoint 3000 W", None), "start by backend: setpoint 3000 W"),
             ((True, "schedule", "window w1", None), "start by schedule: window w1"),
             ((False, "installer", "manual off", "backend"), "stop by installer: manual off"),
             ((False, "default", "", "backend"), "stop by default: backend request ended"),
             ((False, "default", "", None), "stop by default: no request"),
             ((False, "schedule", "schedule", "schedule"), "stop by schedule: schedule request ended")]
    for args, want in cases:
        assert switch_text(*args) == want, (args, switch_text(*args))
    assert window_text("window_start", "w1", False) == "window w1 start"
    assert window_text("window_start", "w1", True) == "window w1 start (joined late)"
    assert window_text("window_end", "w1", True) == "window w1 end (early)"
    assert window_text("window_end", "w1", False) == "window w1 end"


def test_end_reasons():
    # OCMF 1.4 table 11
    for src, want in (("dso", "R"), ("backend", "R"), ("safety", "A"), ("installer", "L"),
                      ("schedule", "E"), ("default", "E")):
        assert stop_reason(src) == want, src


def test_begin_on_flash_at_the_edge_and_end_signed_at_the_edge_reading():
    d, store, clock, m, svc, log, _ = _service("edge")
    svc.on_transition(_switch(True, "backend", "setpoint", "req-7"))
    # nothing awaited yet: the open transaction is already on flash
    assert store.open is not None and os.stat(d + "/tx.open")[6] > 0
    assert store.open["begin"]["i"] == 1000 and store.open["meter"] == METER
    clock.t += 900000
    m.wh = 4000
    svc.on_transition(_switch(False, "default"))
    assert svc.ended == 1 and store.open is None   # no boundary near: signed at the edge
    assert m.edge_reads == 2   # one reading per edge: the event's is the record's
    s = ocmf.summary(store.journal.last(1)[0][1])
    assert s["begin"]["reading_wh"] == 1000 and s["end"]["reading_wh"] == 4000, s
    assert s["end"]["reason"] == "E" and s["end"]["time_ms"] == T0 + 900000 and s["end"]["st"] == "G", s
    assert [ln for ln in log if "stop by default: backend request ended" in ln], log


def test_a_stop_then_a_start_give_one_record_and_a_new_open_one():
    _, store, clock, m, svc, _, _ = _service("order")
    svc.on_transition(_switch(True, "backend", "setpoint"))
    clock.t += 1000
    svc.on_transition(_switch(False, "safety", "overtemperature"))
    clock.t += 1000
    svc.on_transition(_switch(True, "backend", "setpoint"))
    recs = [ocmf.summary(p) for _, p in store.journal.last(5)]
    assert len(recs) == 1 and recs[0]["end"]["reason"] == "A" and recs[0]["pg"] == 1, recs  # safety: A
    assert store.open is not None and store.open["pg"] == 2 and store.open["begin"]["t"] == T0 + 2000


def test_power_cut_during_a_transaction_ends_it_with_p_at_the_last_noted_reading():
    d, store, clock, m, svc, _, _ = _service("cut")
    svc.on_transition(_switch(True, "dso", "limit"))
    clock.t += 900000
    m.wh = 1500
    svc.note_reading()          # a poll 15 min on: noted on flash
    # power cut now
    store2 = txstore.Transactions(Journal(d, "tx", 65536, 8192), KEY, GW, d + "/tx.open")
    svc2 = TransactionService(store2, clock, m, None, lambda t: None, lambda n, t=None: None)
    svc2.recover()
    s = ocmf.summary(store2.journal.last(1)[0][1])
    assert s["end"]["reason"] == "P" and s["end"]["reading_wh"] == 1500 and s["end"]["time_ms"] == T0 + 900000, s
    assert store2.open is None


class FakeGate:
    # services/boundary_gate.BoundaryGate as the service sees it: closed for
    # `closed_ms` real ms until the boundary is recorded (recorded()).
    def __init__(self, closed_ms):
        self.closed_ms = closed_ms
        self.asked = []
        self._recorded = asyncio.Event()

    def closed_for(self, blocks_ms=None):
        self.asked.append(blocks_ms)
        return self.closed_ms

    async def wait_clear(self, blocks_ms=None):
        if self.closed_ms:
            await self._recorded.wait()

    def recorded(self):
        self.closed_ms = 0
        self._recorded.set()


def test_a_stop_just_before_a_boundary_is_signed_after_its_reading():
    # A window's end on a quarter hour: the stop's event and end are on flash
    # at the edge, the signature (one piece, ~10 ms on the unix port: 15
    # device s at 1440x) waits until the boundary's reading is recorded.
    d, store, clock, m, _, log, _ = _service("gate")
    gate = FakeGate(150)
    svc = TransactionService(store, clock, m, None, log.append, lambda n, t=None: None, gate)

    async def day():
        signer = asyncio.create_task(svc.run())
        svc.on_transition(_switch(True, "schedule", "window w1"))
        clock.t += 60000
        m.wh = 1300
        svc.on_transition(_switch(False, "schedule", "schedule"))
        assert gate.asked == [1000], gate.asked   # asked for as long as a signature may hold the loop
        for _ in range(5):
            await asyncio.sleep_ms(0)
        assert svc.ended == 0 and store.ending()[0] == "E" and b'"end"' in _read(d + "/tx.open")
        assert not store.journal.last(1)
        gate.recorded()
        for _ in range(50):
            if svc.ended:
                break
            await asyncio.sleep_ms(1)
        signer.cancel()
    asyncio.run(day())
    assert svc.ended == 1 and store.open is None
    s = ocmf.summary(store.journal.last(1)[0][1])
    assert s["end"]["reason"] == "E" and s["end"]["reading_wh"] == 1300 and s["end"]["time_ms"] == T0 + 60000, s


def test_power_cut_after_a_stop_before_its_signature_ends_it_with_the_stop():
    # The stop's reading, reason (safety: A) and event are on flash at the
    # edge; a cut before the signer ran ends it with them, not with P, and
    # raises no second event.
    d, store, clock, m, _, _, _ = _service("cutstop")
    svc = TransactionService(store, clock, m, None, lambda t: None, lambda n, t=None: None, FakeGate(150))
    svc.on_transition(_switch(True, "backend", "setpoint"))
    clock.t += 60000
    m.wh = 1200
    svc.on_transition(_switch(False, "safety", "overtemperature"))
    clock.t += 5000
    m.wh = 1300     # later readings do not move the decided end
    svc.note_reading()
    # power cut now
    store2 = txstore.Transactions(Journal(d, "tx", 65536, 8192), KEY, GW, d + "/tx.open")
    log2 = []
    svc2 = TransactionService(store2, clock, m, None, log2.append, lambda n, t=None: None)
    svc2.recover()
    s = ocmf.summary(store2.journal.last(1)[0][1])
    assert s["end"]["reason"] == "A" and s["end"]["reading_wh"] == 1200 and s["end"]["time_ms"] == T0 + 60000, s
    assert store2.open is None and svc2.ended == 1
    assert not [ln for ln in log2 if ln.startswith("event ")], log2


def test_meter_exchange_aborts_with_a_fault():
    _, store, clock, m, svc, _, faults = _service("swap")
    svc.on_transition(_switch(True, "backend", "setpoint"))
    svc.meter_exchanged(METER, dict(METER, serial="87654321"))
    assert faults["meter_id"] == "meter exchanged: serial 87654321, was 12345678"
    s = ocmf.summary(store.journal.last(1)[0][1])
    assert s["end"]["reason"] == "A" and s["end"]["st"] == "X" and s["end"]["ef"] == "E", s
