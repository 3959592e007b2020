# End to end: the whole firmware on the MicroPython unix port (tools/rig.py:
# meter, SNTP and gateway emulators on one fast simulated clock) against a real
# mosquitto. A "backend" client with a persistent session sees what the device
# publishes; commands go through the app's real Commands; the console
# (`relay --json`, `schedule --json`, `config show --json`, `mqtt --json`)
# checks what changed. The tests run in file order on one rig.
import json
import os
import statistics
import time

import pytest

import broker as brokermod
from rig import Rig, day_start_ms

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(brokermod.MOSQUITTO), reason="mosquitto not installed")]

SPEED = 120                     # 1 s real = 2 device minutes; an hour is 30 s
DEV = "dicamm-bench"
P = "dicamm/%s/" % DEV
STREAMS = ("qh", "event", "event/gateway", "tx")
JOURNAL = {"qh": "qh", "event": "outbox", "event/gateway": "acks", "tx": "tx"}
DEADLINE = 60                   # seconds: generous, for a loaded machine
HEALTH_S = 120                  # mqtt.health_period_s: device s (1 s real at SPEED)


class Backend:
    # The backend's view: a persistent session (clean_session=False) on a
    # persistent broker, so that nothing published while it is away is lost.
    def __init__(self, port):
        self.port = port
        self.old = []
        self.c = None
        self.connect()

    def connect(self):
        if self.c is not None:
            self.old += self.c.messages
        deadline = time.monotonic() + 20
        while True:
            try:
                self.c = brokermod.Client(self.port, client_id="backend", clean_session=False, keepalive=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.c.subscribe(P + "#", qos=1)

    def all(self, topic=None):
        msgs = self.old + list(self.c.messages)
        return [m for m in msgs if topic is None or m.topic == P + topic]

    def wait(self, pred, timeout=DEADLINE, what="message"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.all():
                if pred(m):
                    return m
            time.sleep(0.05)
        raise AssertionError("no %s within %d s; last: %r" % (what, timeout, self.all()[-5:]))

    def close(self):
        self.c.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e_mqtt")
    r = Rig(work, speed=SPEED, start_ms=day_start_ms("2026-11-29") + 3600_000 - 120_000, load="constant:800",
            mqtt=True, config={"mqtt": {"backoff_s": 1, "backoff_max_s": 2, "discovery": True,
                                        "health_period_s": HEALTH_S}})
    r.start(firmware=False)
    # The broker keeps sessions and queued QoS 1 messages across a restart.
    r.broker.stop()
    r.broker.persistence = True
    r.broker._write_files()
    r.broker.start()
    r.backend = Backend(r.broker.port)
    r.start_firmware()
    # The device subscribes to its cmd/ topics before it says "online" on the same
    # connection: a backend that waits for it (as Home Assistant's availability does)
    # loses no command.
    r.backend.wait(lambda m: m.topic == P + "status" and m.payload == b"online", what="the device online")
    try:
        yield r
    finally:
        r.backend.close()
        r.stop()


def ack_of(rig, name, payload, timeout=DEADLINE):
    """Publish a command; return the ack that answers it (the first new one)."""
    b = rig.backend
    n = len(b.all("ack"))
    pub = brokermod.Client(rig.broker.port, client_id="ops-%d" % time.monotonic_ns())
    try:
        pub.publish(P + "cmd/" + name, payload, qos=1)
    finally:
        pub.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acks = b.all("ack")
        if len(acks) > n:
            return acks[n].json()
        time.sleep(0.05)
    raise AssertionError("no ack to %s %r; firmware log %s" % (name, payload, rig.fw.command("log")))


def journals(fw):
    return fw.json("status --json")["storage"]["journals"]


def wait_json(fw, line, pred, timeout=DEADLINE):
    return fw.wait_for(line, pred, timeout=timeout, interval=0.2)


def requests(fw):
    return {k: v.get("request") for k, v in fw.json("relay --json")["sources"].items()}


def snapshot(fw):
    return (requests(fw), fw.json("schedule --json")["windows"], fw.json("config show --json"),
            journals(fw).get("outbox", {}).get("next_seq"))


def check_stream(rig, name, upto):
    """Every record of the stream below seq `upto` arrived: in order of first
    arrival, each seq once (a QoS 1 duplicate has the same seq and payload)."""
    first = {}
    order = []
    for m in rig.backend.all(name):
        d = m.json()
        s = d["seq"]
        if s in first:
            assert first[s] == d, "seq %d of %s arrived twice with different content" % (s, name)
            continue
        first[s] = d
        order.append(s)
    assert order == sorted(order), "%s out of order: %s" % (name, order)
    return first


def wait_stream_complete(rig, name, lo, hi):
    deadline = time.monotonic() + DEADLINE
    while True:
        got = check_stream(rig, name, hi)
        missing = [s for s in range(lo, hi) if s not in got]
        if not missing:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%s: seqs %s never arrived; mqtt %s" % (name, missing, rig.fw.json("mqtt --json")))
        time.sleep(0.1)


# -- telemetry ---------------------------------------------------------------

def test_status_state_and_discovery_are_retained(rig):
    fw = rig.fw
    wait_json(fw, "mqtt --json", lambda d: d["connected"] and d["prefix"] == P)
    wait_json(fw, "time --json", lambda d: d.get("status") == "S")
    # once the broker has passed them on, they are stored: a late subscriber gets them as retained
    # (the broker stores a retained message before it passes it on)
    rig.backend.wait(lambda m: m.topic == P + "state" and m.json()["time_status"] == "S", what="state with S")
    late = brokermod.Client(rig.broker.port, client_id="late-joiner").subscribe(P + "#").subscribe("homeassistant/#")
    try:
        st = late.wait_for(lambda m: m.topic == P + "status", DEADLINE)
        assert st.retain and st.payload == b"online"
        state = late.wait_for(lambda m: m.topic == P + "state", DEADLINE)
        assert state.retain
        d = state.json()
        assert d["relay"] in ("on", "off") and d["firmware"] and isinstance(d["faults"], list)
        assert "source" in d and d["time_status"] in ("S", "I", "U")
        # the §14a limit in force (None: none): as the law applies it, as asked, from where, until when,
        # and the power the load may draw
        assert {"limit_w", "limit_asked_w", "limit_source", "limit_until_ms", "allowed_w", "backend"} <= set(d), d
        uid = "dicamm_" + DEV
        want = {("sensor", "power"): ("power", "W", "meter", "power_w"),
                ("sensor", "energy_import"): ("energy", "Wh", "meter", "import_wh"),
                ("sensor", "energy_export"): ("energy", "Wh", "meter", "export_wh"),
                ("sensor", "grid_limit"): ("power", "W", "state", "limit_w"),
                ("sensor", "time_status"): ("enum", None, "state", "time_status"),
                ("switch", "relay"): (None, None, "state", "relay"),
                ("select", "mode"): (None, None, "state", "backend")}   # the backend's request (cmd/relay)
        for (comp, key), (cls, unit, topic, field) in want.items():
            t = "homeassistant/%s/%s/%s/config" % (comp, uid, key)
            m = late.wait_for(lambda m: m.topic == t, DEADLINE)
            assert m.retain
            c = m.json()
            assert c.get("device_class") == cls and c.get("unit_of_measurement") == unit, c
            assert c["state_topic"] == P + topic and field in c["value_template"]
            assert c["availability_topic"] == P + "status" and c["device"]["identifiers"] == [uid]
            if cls == "energy":
                assert c["state_class"] == "total_increasing"
            # Home Assistant 2026.4: default_entity_id, not object_id; origin; device identity
            assert "object_id" not in c and c["default_entity_id"] == "%s.dicamm_%s_%s" % (
                comp, DEV.replace("-", "_"), key), c
            assert c["origin"]["name"] and c["device"]["serial_number"] and c["device"]["sw_version"]
            assert ("expire_after" in c) == (topic == "meter"), c
    finally:
        late.close()


def test_identity_is_retained_and_says_what_status_says(rig):
    # issue 18: who the device is, for a backend operator: device, CLS-ID, meter
    # vendor/model/serial/firmware, firmware version and the OCMF key (retained)
    fw = rig.fw
    wait_json(fw, "status --json", lambda d: d["meter"].get("serial") and d["mqtt"]["connected"])
    key = fw.json("tx key --json")
    # the identity with the meter is published when the device sees it change (checked
    # every 10 s): wait for that, so the late subscriber gets it from the broker's retained
    # store (a copy published to an open subscription comes with retain 0, MQTT 3.1.1 s. 3.3.1.3)
    rig.backend.wait(lambda m: m.topic == P + "identity" and m.json()["meter"] is not None,
                     what="identity with the meter published")
    late = brokermod.Client(rig.broker.port, client_id="late-identity").subscribe(P + "identity")
    try:
        m = late.wait_for(lambda m: m.json()["meter"] is not None, DEADLINE)  # the meter's identity is read after start
    finally:
        late.close()
    assert m.retain
    ident = m.json()
    st = fw.json("status --json")
    meter = st["meter"]
    assert ident == {"device_id": DEV, "cls_id": "CLS-BENCH-0001", "firmware": st["firmware"], "board": "unix",
                     "meter": {"vendor": meter["vendor"], "model": meter["meter_model"], "serial": meter["serial"],
                               "firmware": meter["firmware"]},
                     "ocmf_key": {"SA": "ECDSA-secp256r1-SHA256", "key": key["key"]}}, ident
    assert st["identity"] == ident  # the console's status shows the same
    human = "\n".join(fw.command("status"))
    assert "device  %s, CLS-ID CLS-BENCH-0001; OCMF key %s" % (DEV, key["key"][-16:]) in human, human


def test_health_is_periodic(rig):
    # issue 18: uptime, reset cause, network, free heap and the time's status and
    # error, every mqtt.health_period_s of device time (retained: the last one stays)
    t0 = time.monotonic()
    b = rig.backend
    b.wait(lambda m: m.topic == P + "health" and m.t >= t0 and len([x for x in b.all("health") if x.t >= t0]) >= 4,
           what="4 health messages")
    hs = [x for x in b.all("health") if x.t >= t0]
    assert all(x.retain for x in hs) or not any(x.retain for x in hs)  # delivered live: retain flag off
    ds = [x.json() for x in hs]
    gaps = [(q["time_ms"] - p["time_ms"]) / 1000 for p, q in zip(ds, ds[1:])]
    assert all(HEALTH_S - 2 <= g <= 3 * HEALTH_S for g in gaps), gaps
    for d in ds:
        assert set(d) == {"uptime_s", "reset_cause", "crashes", "net", "heap_free", "time_status", "error_ms",
                          "time_ms"}, d
        assert d["reset_cause"] is None and d["crashes"] == 0  # the unix port has no reset cause
        assert d["net"] == {"kind": "host"} and d["heap_free"] > 0
        assert d["time_status"] == "S" and isinstance(d["error_ms"], int) and d["error_ms"] >= 0, d
    ups = [d["uptime_s"] for d in ds]
    assert ups == sorted(ups) and ups[-1] > ups[0], ups
    h = rig.fw.json("status --json")["health"]
    assert set(h) == set(ds[-1]) and h["uptime_s"] >= ups[-1]
    late = brokermod.Client(rig.broker.port, client_id="late-health").subscribe(P + "health")
    try:
        r = late.wait_for(lambda m: True, DEADLINE)
        assert r.retain and set(r.json()) == set(ds[0])
    finally:
        late.close()


def _meter_spacing_s(rig, since):
    ms = [m.json() for m in rig.backend.all("meter") if m.t >= since]
    t = [d["time_ms"] for d in ms]
    return [(b - a) / 1000 for a, b in zip(t, t[1:])], ms


def test_meter_period_and_its_change_by_command(rig):
    t0 = time.monotonic()
    rig.backend.wait(lambda m: m.topic == P + "meter" and m.t >= t0 and len(_meter_spacing_s(rig, t0)[0]) >= 4,
                     what="5 meter messages")
    gaps, ms = _meter_spacing_s(rig, t0)
    assert {"power_w", "import_wh", "export_wh", "time_ms", "time_status"} <= set(ms[-1])
    # 60 s of device time; the link polls every 50 ms real (6 s device at 120x)
    assert 55 <= statistics.median(gaps) <= 80, gaps
    a = ack_of(rig, "config", '{"id":"period","key":"mqtt.meter_period_s","value":180}')
    assert a == {"id": "period", "ok": True, "cmd": "config",
                 "result": {"key": "mqtt.meter_period_s", "value": 180}}
    assert rig.fw.json("config show --json")["mqtt.meter_period_s"] == 180
    t1 = time.monotonic()
    rig.backend.wait(lambda m: m.topic == P + "meter" and len(_meter_spacing_s(rig, t1)[0]) >= 3,
                     what="4 meter messages at the new period")
    gaps, _ = _meter_spacing_s(rig, t1)
    assert 175 <= statistics.median(gaps) <= 200, gaps
    assert ack_of(rig, "config", '{"id":"period2","key":"mqtt.meter_period_s","value":60}')["ok"]


# -- commands ----------------------------------------------------------------

BAD = [
    ("relay", b"this is not json", "not JSON"),
    ("relay", b'{"id":"big","mode":"on","pad":"' + b"x" * 5000 + b'"}', "too large"),
    ("relay", b"[1, 2]", "not a JSON object"),
    ("relay", b'{"mode":"on"}', "id: missing"),
    ("reboot", b'{"id":"u1"}', "unknown command"),
    ("relay", b'{"id":"b1","mode":1}', "mode: must be one of"),
    ("relay", b'{"id":"b2","mode":"on","minutes":"5"}', "minutes: must be an integer"),
    ("relay", b'{"id":"b3","mode":"on","minutes":0}', "out of range"),
    ("relay", b'{"id":"b4","mode":"on","colour":"red"}', "colour: unknown field"),
    ("setpoint", b'{"id":"b5","power_w":-5}', "out of range"),
    ("setpoint", b'{"id":"b6","power_w":100,"on":true}', "either power_w or on"),
    ("setpoint", b'{"id":"b7","on":"yes"}', "must be true or false"),
    ("setpoint", b'{"id":"b8","power_w":2000,"ttl_s":5}', "out of range"),
    # §14a EnWG: the grid operator's limit is never the backend's, well formed or not
    ("dso", b'{"id":"b9","limit_w":4200}', "the backend can neither set nor lift it"),
    ("dso", b'{"id":"b10","limit_w":null}', "the backend can neither set nor lift it"),
    ("dso", b'{"id":"b11","limit_w":4200.5}', "refused: the 14a EnWG limit is the grid operator's"),
    ("schedule", b'{"id":"b12","windows":"soon"}', "must be a list"),
    ("schedule", b'{"id":"b13","windows":[{"id":"w","start":2000,"end":1000,"on":true}]}', ""),
    ("event", b'{"id":"b14","text":""}', "length"),
    ("event", b'{"id":"b15","text":"' + b"y" * 65 + b'"}', "length"),
    ("config", b'{"id":"b16","key":"mqtt.host","value":"evil.example"}', "may not be set remotely"),
    ("config", b'{"id":"b17","key":"service.pin","value":"1234"}', "may not be set remotely"),
    ("config", b'{"id":"b18","key":"relay.min_on_s","value":"10"}', "relay.min_on_s: '10' is not a valid int"),
    ("config", b'{"id":"b19","key":"relay.min_on_s","value":99999}', "out of range"),
    ("config", b'{"id":"b20","key":"mqtt.discovery","value":1}', "mqtt.discovery: 1 is not a valid bool"),
    # what decides which §14a limits bind stays with the installer
    ("config", b'{"id":"b21","key":"relay.nominal_w","value":0}', "may not be set remotely"),
    ("config", b'{"id":"b22","key":"dso.min_w","value":100000}', "may not be set remotely"),
    ("config", b'{"id":"b23","key":"dso.controllable","value":false}', "may not be set remotely"),
]


def test_bad_commands_are_refused_with_a_reason_and_change_nothing(rig):
    fw = rig.fw
    before = snapshot(fw)
    for name, payload, why in BAD:
        a = ack_of(rig, name, payload)
        assert a["ok"] is False and why in a["error"], (name, payload[:60], a)
        assert a["error"], a
        try:
            sent_id = json.loads(payload).get("id")
        except (ValueError, AttributeError):
            sent_id = None
        if sent_id is not None and b"x" * 100 not in payload:
            assert a["id"] == sent_id
    assert fw.alive()
    assert snapshot(fw) == before
    st = fw.json("mqtt --json")
    assert st["connected"] and st["refused"] >= len(BAD)


def test_good_commands_change_the_device(rig):
    fw = rig.fw
    # a relay request from MQTT is the backend's (never the installer's, who
    # outranks it at the device): on for 30 minutes
    a = ack_of(rig, "relay", '{"id":"r1","mode":"on","minutes":30}')
    assert a["ok"] and a["result"]["source"] == "backend" and "sources" not in a["result"], a
    assert requests(fw)["backend"] == "on" and requests(fw)["installer"] is None
    # its 30 minutes (not relay.backend_ttl_s), less the device time since (a real s is 120 device s)
    assert 1800 - 5 * SPEED <= fw.json("relay --json")["sources"]["backend"]["expires_in_s"] <= 1800
    wait_json(fw, "relay --json", lambda d: d["state"] == "on")
    rig.backend.wait(lambda m: m.topic == P + "state" and m.json()["relay"] == "on"
                     and m.json()["source"] == "backend" and m.json()["backend"] == "on", what="state relay on")
    # the same id again: the first answer again, not run twice
    assert ack_of(rig, "relay", '{"id":"r1","mode":"on","minutes":30}') == a
    fw.command("relay off 5")          # the installer at the device outranks it
    a = ack_of(rig, "relay", '{"id":"r1b","mode":"on","minutes":30}')
    assert a["ok"] and a["result"]["source"] == "installer" and a["result"]["wanted"] == "off", a
    fw.command("relay auto")
    assert ack_of(rig, "relay", '{"id":"r2","mode":"auto"}')["ok"]
    assert requests(fw)["backend"] is None

    a = ack_of(rig, "setpoint", '{"id":"s1","power_w":2000,"ttl_s":3600}')
    assert a["ok"], a
    assert requests(fw)["backend"] == "2000 W"
    a = ack_of(rig, "setpoint", '{"id":"s2","on":false,"ttl_s":3600}')
    assert a["ok"] and requests(fw)["backend"] not in (None, "2000 W"), (a, requests(fw))

    # §14a: a grid operator's limit in force (the bench console's) can be neither
    # lifted nor changed from MQTT; the ack says why; the state shows it
    fw.command("dso 0 3600")
    for cid, body in (("d1", '"limit_w":null'), ("d2", '"limit_w":100000,"ttl_s":60')):
        a = ack_of(rig, "dso", '{"id":"%s",%s}' % (cid, body))
        assert a["ok"] is False and "the backend can neither set nor lift it" in a["error"], a
        assert requests(fw)["dso"] == "limit 0 W", requests(fw)
    m = rig.backend.wait(lambda m: m.topic == P + "state" and m.json().get("limit_source") == "console",
                         what="state with the limit")
    d = m.json()
    assert (d["limit_w"], d["limit_asked_w"], d["allowed_w"]) == (4200, 0, 3000), d
    assert d["limit_until_ms"] > rig.device_now_ms()
    fw.command("dso off")
    assert requests(fw)["dso"] is None

    start = rig.device_now_ms() // 1000 + 7200
    win = {"id": "13k-77", "start": start, "end": start + 3600, "power_w": 3000}
    a = ack_of(rig, "schedule", json.dumps({"id": "w1", "windows": [win]}))
    assert a == {"id": "w1", "ok": True, "cmd": "schedule", "result": {"windows": 1}}
    got = fw.json("schedule --json")["windows"]
    assert len(got) == 1 and got[0]["id"] == "13k-77" and got[0]["start"] == start
    assert ack_of(rig, "schedule", '{"id":"w2","windows":[]}')["ok"]
    assert fw.json("schedule --json")["windows"] == []

    for key, value in (("relay.min_on_s", 60), ("relay.max_cycles_per_h", 12), ("mqtt.discovery", True),
                       ("time.resync_s", 7200), ("relay.min_off_s", 120)):
        a = ack_of(rig, "config", json.dumps({"id": "c-" + key, "key": key, "value": value}))
        assert a["ok"] and a["result"] == {"key": key, "value": value}, a
        assert fw.json("config show --json")[key] == value
        if key.startswith("relay."):   # control settings take effect at once, not at the next restart
            assert fw.json("relay --json")[key[6:]] == value, key
    # ...as the relay's protection shows: a long minimum off time defers the next switch-on
    wait_json(fw, "relay --json", lambda d: d["state"] == "off")
    assert ack_of(rig, "config", '{"id":"c-long","key":"relay.min_off_s","value":3600}')["ok"]
    a = ack_of(rig, "setpoint", '{"id":"s-on","on":true,"ttl_s":600}')
    assert a["ok"] and (a["result"]["deferred"] or "").startswith("min_off: "), a
    assert int(a["result"]["deferred"].split()[1]) > 600, a
    assert ack_of(rig, "config", '{"id":"c-short","key":"relay.min_off_s","value":0}')["ok"]
    wait_json(fw, "relay --json", lambda d: d["state"] == "on" and d["deferred"] is None)
    assert ack_of(rig, "setpoint", '{"id":"s-off","on":false,"ttl_s":600}')["ok"]
    assert ack_of(rig, "config", '{"id":"c-back","key":"relay.min_off_s","value":120}')["ok"]

    a = ack_of(rig, "event", '{"id":"e1","text":"backend marks a 13k window"}')
    assert a["ok"], a
    uuid = a["result"]["uuid"]
    ev = rig.backend.wait(lambda m: m.topic == P + "event" and m.json()["uuid"] == uuid, what="the event")
    assert ev.json()["text"] == "backend marks a 13k window" and ev.json()["kind"] == "manual"
    # the repeated command is answered from the stored ack, after it was handled: no second event
    assert ack_of(rig, "event", '{"id":"e1","text":"backend marks a 13k window"}') == a
    assert [e["uuid"] for e in fw.json("events --json --last 50")["events"]].count(uuid) == 1


# -- record streams ---------------------------------------------------------

def test_qh_events_gateway_records_and_tx(rig):
    fw = rig.fw
    b = rig.backend
    # quarter hours with seq, as in the flash journal
    b.wait(lambda m: m.topic == P + "qh" and len(b.all("qh")) >= 2, what="two qh values")
    rows = {r["seq"]: r for r in fw.json("qh --json --last 50")["qh"]}
    for m in b.all("qh"):
        d = m.json()
        assert m.qos == 1 and d["boundary"] % 900 == 0
        assert rows[d["seq"]]["boundary"] == d["boundary"]
        assert rows[d["seq"]].get("import_wh") == d.get("import_wh")
    # a TAF16 event and the gateway's record of it
    fw.command('event "mqtt e2e marker"')
    ev = b.wait(lambda m: m.topic == P + "event" and m.json()["text"] == "mqtt e2e marker", what="event")
    uuid = ev.json()["uuid"]
    gw = b.wait(lambda m: m.topic == P + "event/gateway" and m.json()["uuid"] == uuid, what="gateway record")
    g = gw.json()
    assert g["event_seq"] == ev.json()["seq"] and g["record"]["uuid"] == uuid
    assert isinstance(g["record"]["seq"], int) and isinstance(g["record"]["reading_wh"], int)
    mine = [e for e in fw.json("events --json --last 50")["events"] if e["uuid"] == uuid][0]
    assert mine["record"] == g["record"]
    # a transaction: switched on and off by the installer
    n_tx = len(b.all("tx"))
    fw.command("relay on 30")
    wait_json(fw, "relay --json", lambda d: d["state"] == "on")
    fw.command("relay off 1")
    wait_json(fw, "relay --json", lambda d: d["state"] == "off")
    fw.command("relay auto")
    b.wait(lambda m: m.topic == P + "tx" and len(b.all("tx")) > n_tx, what="a tx record")
    tx = b.all("tx")[-1].json()
    local = {r["pg"]: r for r in fw.json("tx --json --last 50")["tx"]}
    assert tx["pg"] in local
    assert {k: v for k, v in tx.items() if k not in ("seq", "ocmf")} == local[tx["pg"]]
    import pyocmf  # the signed OCMF record, unchanged: its signature holds under the device's key
    assert pyocmf.OCMF.from_string(tx["ocmf"]).verify_signature(fw.command("tx key")[0].strip())
    for name in STREAMS:
        check_stream(rig, name, None)


def test_last_will_says_offline_when_the_firmware_dies(rig):
    b = rig.backend
    n = len(b.all("status"))
    rig.fw.kill()
    m = b.wait(lambda m: m.topic == P + "status" and b.all("status").index(m) >= n, what="status after kill")
    assert m.payload == b"offline"
    late = brokermod.Client(rig.broker.port, client_id="late2").subscribe(P + "status")
    try:
        r = late.wait_for(lambda m: True, DEADLINE)
        assert r.retain and r.payload == b"offline"
    finally:
        late.close()
    rig.start_firmware()
    b.wait(lambda m: m.topic == P + "status" and b.all("status").index(m) > n and m.payload == b"online",
           what="online after restart")
    wait_json(rig.fw, "mqtt --json", lambda d: d["connected"])


# -- an hour without a broker ---------------------------------------------

def _delays(fw, lo, hi):
    return [r["delay_ms"] for r in fw.json("qh --json --last 200")["qh"] if lo <= r["seq"] < hi and "gap" not in r]


def test_broker_outage_of_an_hour_with_a_reboot_loses_nothing(rig, record_property):
    fw = rig.fw
    wait_json(fw, "mqtt --json", lambda d: d["connected"] and not any(d["backlog"].values()))
    j = journals(fw)
    up_delays = _delays(fw, 0, j["qh"]["next_seq"])
    qh_at_stop = j["qh"]["next_seq"]
    rig.broker.stop()
    t0 = rig.device_now_ms()
    st = wait_json(fw, "mqtt --json", lambda d: not d["connected"] and d["last_error"])
    assert "127.0.0.1" in st["last_error"] or "closed" in st["last_error"] or "lost" in st["last_error"], st
    # records of every stream made during the outage
    fw.command('event "during the outage"')
    fw.command("relay on 30")
    wait_json(fw, "relay --json", lambda d: d["state"] == "on")
    rig.wait_device_ms(t0 + 1_800_000)
    fw.command("relay auto")
    st = wait_json(fw, "mqtt --json", lambda d: d["backlog"]["qh"] >= 1 and d["backlog"]["event"] >= 1)
    assert not st["connected"] and st["last_error"]
    assert fw.json("status --json")["mqtt"]["last_error"]
    fw2 = rig.restart_firmware(kill=True)   # power cut in the middle of the outage
    rig.wait_device_ms(t0 + 3_600_000 + 60_000)
    j = wait_json(fw2, "status --json", lambda d: d["storage"]["journals"]["qh"]["next_seq"] >= qh_at_stop + 4)
    j = j["storage"]["journals"]
    down_delays = _delays(fw2, qh_at_stop, j["qh"]["next_seq"])
    st = fw2.json("mqtt --json")
    assert not st["connected"] and st["backlog"]["qh"] >= 4, st
    # metering never stopped while the link was down (gaps only while the firmware was dead)
    assert len(down_delays) >= 3, fw2.json("qh --json --last 10")
    rig.broker.start()
    rig.backend.connect()
    wait_json(fw2, "mqtt --json", lambda d: d["connected"])
    j = journals(fw2)
    for name in STREAMS:
        jn = j[JOURNAL[name]]
        wait_stream_complete(rig, name, jn["first_seq"], jn["next_seq"])
    wait_json(fw2, "mqtt --json", lambda d: not any(d["backlog"].values()))
    text = "qh delay (device ms at %dx; real ms = /%d): broker up %s, broker down %s" % (
        SPEED, SPEED, up_delays, down_delays)
    print(text)
    record_property("qh_delay", text)
    with open(os.path.join(rig.workdir, "qh_delay.txt"), "w") as f:
        f.write(text + "\n")


def test_a_hung_broker_does_not_stall_metering(rig, record_property):
    # mosquitto frozen (SIGSTOP): TCP connects are accepted by the kernel but no
    # CONNACK ever comes. The link awaits it; the load profile goes on.
    import signal
    fw = rig.fw
    wait_json(fw, "mqtt --json", lambda d: d["connected"])
    rig.broker.proc.send_signal(signal.SIGSTOP)
    try:
        fw = rig.restart_firmware(kill=True)
        st = wait_json(fw, "mqtt --json", lambda d: d["failures"] >= 2)
        assert "no answer" in st["last_error"] and not st["connected"], st
        qh0 = journals(fw)["qh"]["next_seq"]
        t0 = rig.device_now_ms()
        rig.wait_device_ms(t0 + 4 * 900_000 + 30_000)
        j = wait_json(fw, "status --json", lambda d: d["storage"]["journals"]["qh"]["next_seq"] >= qh0 + 4)
        hi = j["storage"]["journals"]["qh"]["next_seq"]
        rows = [r for r in fw.json("qh --json --last 50")["qh"] if qh0 <= r["seq"] < hi]
        values = [r["delay_ms"] for r in rows if "gap" not in r]
        # every boundary read while connects hang (one slack for a loaded machine)
        assert len(values) >= len(rows) - 1 and len(rows) >= 4, rows
        assert fw.json("mqtt --json")["failures"] >= 4
    finally:
        rig.broker.proc.send_signal(signal.SIGCONT)
    wait_json(fw, "mqtt --json", lambda d: d["connected"] and not any(d["backlog"].values()))
    text = "qh delay with the broker hung (device ms at %dx): %s" % (SPEED, values)
    print(text)
    record_property("qh_delay_hung", text)
    with open(os.path.join(rig.workdir, "qh_delay.txt"), "a") as f:
        f.write(text + "\n")


# -- refused credentials (last: it leaves a password broker) -------------------

def test_refused_credentials_give_a_clear_error_and_metering_goes_on(rig, tmp_path):
    fw = rig.fw
    rig.broker.stop()
    strict = brokermod.Broker(port=rig.broker.port, users={"dicamm": "right-one"}, workdir=str(tmp_path / "strict"))
    strict.start()
    try:
        fw.command("config set mqtt.user dicamm")
        fw.command("config set mqtt.password wrong-one")
        st = wait_json(fw, "mqtt --json", lambda d: d["last_error"] and "refused" in d["last_error"])
        assert not st["connected"]
        print("refused login: %s" % st["last_error"])
        assert "password" in st["last_error"] or "not authorized" in st["last_error"], st
        s = fw.json("status --json")
        assert "refused" in s["mqtt"]["last_error"]
        assert "wrong-one" not in json.dumps(s) and "wrong-one" not in json.dumps(st)
        qh = s["storage"]["journals"]["qh"]["next_seq"]
        wait_json(fw, "status --json", lambda d: d["storage"]["journals"]["qh"]["next_seq"] >= qh + 2)
        assert fw.json("meter read --json")["power_w"] is not None
        human = "\n".join(fw.command("mqtt"))
        assert "NOT connected" in human and "refused" in human
        fw.command("config set mqtt.password right-one")
        wait_json(fw, "mqtt --json", lambda d: d["connected"] and d["last_error"] is None)
    finally:
        strict.close()
