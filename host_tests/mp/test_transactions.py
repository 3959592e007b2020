# The transactions service (services/transactions.py) without an App: the
# TAF16 wording of switching and window edges, the OCMF 1.4 end reasons
# (table 11: R remote, L local, A abort, E end, P power failure), the begin on
# flash at the edge itself, the stop at the reading its TAF16 event carries
# (never a later one), and a power cut during a transaction.
# Dual test: MicroPython and CPython, on the real Journal and transaction store.
import os

from dicamm.drivers import txstore
from dicamm.drivers.journal import Journal
from dicamm.proto import ocmf
from dicamm.services.transactions import TransactionService, stop_reason, switch_text, window_text

KEY = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
GW = ("DICAMM", "DIC-0001", "0.9.0")
METER = {"vendor": "Eastron", "model": "SDM630-Modbus", "serial": "12345678", "firmware": ""}
T0 = 1796214124000


def _dir(name):
    try:
        os.stat("/tmp")
        d = "/tmp/dicamm_txsvc_" + name
    except OSError:
        d = "/dicamm_txsvc_" + name
    try:
        for f in os.listdir(d):
            os.remove(d + "/" + f)
    except OSError:
        os.mkdir(d)
    return d


class FakeTime:
    def __init__(self):
        self.t = T0

    def stamp(self):
        return self.t, "S"


class FakeMetering:
    # The poll's last reading, and a fresh read that gives a newer one or
    # (answers=False) fails like metering.fresh_reading: the last, marked.
    def __init__(self, clock):
        self.clock = clock
        self.wh = 1000
        self.answers = True
        self.fresh = 0

    def edge_reading(self, stale=False):
        return {"t": self.clock.t, "s": "S", "i": self.wh, "x": 0, "st": "T" if stale else "G",
                "ef": "E" if stale else "", "age_ms": 0}

    async def fresh_reading(self):
        self.fresh += 1
        if not self.answers:
            return self.edge_reading(stale=True)
        self.clock.t += 40
        self.wh += 1
        return self.edge_reading()

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
    assert m.fresh == 0 and svc.ended == 1 and store.open is None
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


def test_meter_exchange_aborts_with_a_fault():
    _, store, clock, m, svc, _, faults = _service("swap")
    svc.on_transition(_switch(True, "backend", "setpoint"))
    svc.meter_exchanged(METER, dict(METER, serial="87654321"))
    assert faults["meter_id"] == "meter exchanged: serial 87654321, was 12345678"
    s = ocmf.summary(store.journal.last(1)[0][1])
    assert s["end"]["reason"] == "A" and s["end"]["st"] == "X" and s["end"]["ef"] == "E", s
