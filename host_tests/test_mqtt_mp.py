# The MQTT link on the MicroPython unix port against a real mosquitto (our own,
# on a free loopback port): telemetry, every command good and bad, an outage
# with store-and-forward, a reboot, refused credentials, TLS.
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import MICROPYTHON, ROOT
from waiting import wait_until

import broker as brokermod

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(brokermod.MOSQUITTO), reason="mosquitto not installed")]

AGENT = os.path.join(ROOT, "host_tests", "mqtt_agent.py")
DEV = "dev1"
P = "dicamm/%s/" % DEV


class Agent:
    def __init__(self, work, config, speed=1):
        self.work = str(work)
        self.cfg = {"device_id": DEV, "speed": speed, "config": config}
        self.seq = {"qh": 0, "event": 0, "tx": 0}
        self.proc = None
        self._write_config()

    def _write_config(self):
        with open(os.path.join(self.work, "config.json"), "w") as f:
            json.dump(self.cfg, f)

    def set(self, key, value):
        self.cfg["config"][key] = value
        self._write_config()

    def start(self):
        for name in ("stop", "status.json"):
            try:
                os.remove(os.path.join(self.work, name))
            except OSError:
                pass
        self.log = open(os.path.join(self.work, "agent.log"), "ab")
        self.proc = subprocess.Popen([MICROPYTHON, AGENT, self.work], stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def append(self, stream, n=1):
        with open(os.path.join(self.work, stream + ".jnl"), "a") as f:
            for _ in range(n):
                s = self.seq[stream]
                f.write('%d {"stream":"%s","n":%d}\n' % (s, stream, s))
                self.seq[stream] = s + 1

    def status(self):
        try:
            with open(os.path.join(self.work, "status.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait(self, pred, timeout=15, what="status"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st and pred(st):
                return st
            if self.proc.poll() is not None:
                raise AssertionError("agent exited: %s" % self.log_text())
            time.sleep(0.05)
        raise AssertionError("%s not reached; last %s; log %s" % (what, self.status(), self.log_text()[-2000:]))

    def executed(self):
        try:
            with open(os.path.join(self.work, "executed.log")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def log_text(self):
        with open(os.path.join(self.work, "agent.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is None:
            return
        open(os.path.join(self.work, "stop"), "w").close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.log.close()


@pytest.fixture
def cleanup():
    items = []
    yield items
    for x in reversed(items):
        try:
            x.stop() if isinstance(x, Agent) else x.close()
        except Exception:
            pass


def seqs(client, stream):
    return [m.json()["seq"] for m in client.topics("/" + stream)]


def first_seen(values):
    out = []
    seen = set()
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def base_config(port, **kw):
    c = {"mqtt.host": "127.0.0.1", "mqtt.port": port, "mqtt.meter_period_s": 1, "mqtt.keepalive_s": 10,
         "mqtt.backoff_s": 1, "mqtt.backoff_max_s": 2, "mqtt.timeout_ms": 1000}
    c.update(kw)
    return c


T0 = 1750000000
GOOD = [
    ("relay", {"id": "g-relay", "mode": "on", "minutes": 30}),
    ("setpoint", {"id": "g-setpoint", "power_w": 2000, "ttl_s": 900}),
    ("schedule", {"id": "g-schedule", "windows": [{"id": "w1", "start": T0, "end": T0 + 3600, "power_w": 3000}]}),
    ("event", {"id": "g-event", "text": "13k window start"}),
    ("config", {"id": "g-config", "key": "mqtt.meter_period_s", "value": 2}),
]
# (name, raw payload, id in the ack, words in the error)
BAD = [
    ("relay", b"switch it on", None, "not JSON"),
    ("relay", b'{"id":"big","mode":"on","pad":"' + b"x" * 5000 + b'"}', None, "too large"),
    ("reboot", b'{"id":"b-unknown"}', "b-unknown", "unknown command"),
    ("relay", b'{"mode":"on"}', None, "id: missing"),
    ("relay", b'{"id":"b-type","mode":true}', "b-type", "mode: must be one of"),
    ("setpoint", b'{"id":"b-range","power_w":-5}', "b-range", "out of range"),
    ("setpoint", b'{"id":"b-float","power_w":1.5}', "b-float", "must be an integer"),
    ("schedule", b'{"id":"b-sched","windows":[{"id":"a","start":10,"end":5,"on":true}]}', "b-sched", "end must be"),
    # §14a EnWG: the grid operator's limit is not the backend's to set or lift
    ("dso", b'{"id":"b-dso","limit_w":4200}', "b-dso", "the backend can neither set nor lift it"),
    ("dso", b'{"id":"b-dso0","limit_w":null}', "b-dso0", "refused: the 14a EnWG limit is the grid operator's"),
    ("event", b'{"id":"b-event","text":""}', "b-event", "length"),
    ("config", b'{"id":"b-key","key":"mqtt.host","value":"10.0.0.1"}', "b-key", "may not be set remotely"),
    ("config", b'{"id":"b-val","key":"mqtt.meter_period_s","value":0}', "b-val", "out of range"),
    # valid on the wire, refused by the application (CommandError)
    ("setpoint", b'{"id":"b-app","power_w":60000}', "b-app", "above the element"),
]


def test_telemetry_commands_discovery(tmp_path, cleanup):
    b = brokermod.Broker().start()
    cleanup.append(b)
    sub = brokermod.Client(b.port, client_id="backend").subscribe("dicamm/#").subscribe("homeassistant/#")
    cleanup.append(sub)
    # a retained command would replay at every connect: it must be ignored
    sub.publish(P + "cmd/relay", '{"id":"stale","mode":"on"}', qos=1, retain=True)
    a = Agent(tmp_path, base_config(b.port, **{"mqtt.discovery": True}))
    a.append("qh", 3)
    a.append("event", 2)
    a.append("tx", 2)
    a.start()
    cleanup.append(a)
    sub.wait_for(lambda m: m.topic == P + "status" and m.payload == b"online")
    st = sub.wait_for(lambda m: m.topic == P + "state").json()
    assert st["relay"] == "off" and st["time_status"] == "S"
    meter = sub.wait_for(lambda m: m.topic == P + "meter").json()
    assert {"power_w", "import_wh", "export_wh", "time_ms", "time_status"} <= set(meter)
    sub.wait_count(lambda m: m.topic == P + "tx", 2)
    sub.wait_count(lambda m: m.topic == P + "qh", 3)
    sub.wait_count(lambda m: m.topic == P + "event", 2)
    assert seqs(sub, "qh") == [0, 1, 2] and seqs(sub, "event") == [0, 1] and seqs(sub, "tx") == [0, 1]
    assert sub.topics("/qh")[0].json() == {"seq": 0, "stream": "qh", "n": 0}
    assert all(m.qos == 1 for m in sub.topics("/qh"))

    # Home Assistant discovery
    # (7 entities, and the 2 of the read-only relay form retired with empty payloads)
    disc = {m.topic: m.json() if m.payload else None
            for m in sub.wait_count(lambda m: m.topic.startswith("homeassistant/"), 9)}
    power = disc["homeassistant/sensor/dicamm_%s/power/config" % DEV]
    assert power["device_class"] == "power" and power["unit_of_measurement"] == "W"
    assert power["state_topic"] == P + "meter" and power["availability_topic"] == P + "status"
    for key in ("energy_import", "energy_export"):
        e = disc["homeassistant/sensor/dicamm_%s/%s/config" % (DEV, key)]
        assert e["device_class"] == "energy" and e["unit_of_measurement"] == "Wh"
        assert e["state_class"] == "total_increasing"
    # the backend may command the relay over MQTT: a switch and a mode select
    assert disc["homeassistant/switch/dicamm_%s/relay/config" % DEV]["payload_on"] == "on"
    assert disc["homeassistant/switch/dicamm_%s/relay/config" % DEV]["command_topic"] == P + "cmd/relay"
    # what it sends is a backend request (cmdspec.PRIORITY), and the select shows that request
    assert "value_json.backend" in disc["homeassistant/select/dicamm_%s/mode/config" % DEV]["value_template"]
    assert disc["homeassistant/binary_sensor/dicamm_%s/relay/config" % DEV] is None
    assert all("object_id" not in c for c in disc.values() if c)

    # every command, good and bad: one ack each, in order
    sent = []
    for name, body in GOOD:
        sub.publish(P + "cmd/" + name, json.dumps(body), qos=1)
        sent.append((body["id"], True, None))
    for name, raw, cid, words in BAD:
        sub.publish(P + "cmd/" + name, raw, qos=1)
        sent.append((cid, False, words))
    acks = sub.wait_count(lambda m: m.topic == P + "ack", len(sent))
    assert len(acks) == len(sent), [m.payload for m in acks]
    for m, (cid, ok, words) in zip(acks, sent):
        a_ = m.json()
        assert a_["id"] == cid and a_["ok"] is ok, (a_, cid)
        if ok:
            assert a_["result"] == {"done": a_["cmd"]}
        else:
            assert words in a_["error"], (a_, words)
    # only the good ones reached the application, each once, with their args
    assert a.executed() == [[n, {k: v for k, v in body.items() if k != "id"}] for n, body in GOOD]
    # the state follows the relay command
    sub.wait_for(lambda m: m.topic == P + "state" and m.json()["relay"] == "on")

    # a repeated id (QoS 1 redelivery or a retry) gets the same ack and is not run again
    sub.publish(P + "cmd/relay", json.dumps(GOOD[0][1]), qos=1)
    acks = sub.wait_count(lambda m: m.topic == P + "ack", len(sent) + 1)
    assert acks[-1].payload == acks[0].payload
    assert len(a.executed()) == len(GOOD)
    assert not [m for m in sub.topics("/ack") if m.json()["id"] == "stale"]

    st = a.wait(lambda s: s["commands"] == len(GOOD), what="command counters")
    assert st["refused"] == len(BAD) and st["connected"] and st["reconnects"] == 0
    assert st["backlog"] == {"qh": 0, "event": 0, "tx": 0}
    a.stop()
    sub.wait_for(lambda m: m.topic == P + "status" and m.payload == b"offline")
    with open(os.path.join(str(tmp_path), "mqtt.cursor")) as f:
        assert json.load(f) == {"qh": 3, "event": 2, "tx": 2}


def test_outage_store_and_forward_and_reboot(tmp_path, cleanup):
    # Device clock 1200x: the 3 s outage is an hour of device time.
    b = brokermod.Broker(persistence=True).start()
    cleanup.append(b)

    def backend():
        c = brokermod.Client(b.port, client_id="backend", clean_session=False).subscribe(P + "#")
        cleanup.append(c)
        return c

    sub = backend()
    a = Agent(tmp_path, base_config(b.port), speed=1200)
    a.append("qh", 4)
    a.append("event", 2)
    a.append("tx", 2)
    a.start()
    cleanup.append(a)
    sub.wait_count(lambda m: m.topic == P + "qh", 4)
    sub.wait_count(lambda m: m.topic == P + "tx", 2)
    received = {s: [] for s in ("qh", "event", "tx")}

    def collect(c):
        for s in received:
            received[s] += seqs(c, s)

    a.wait(lambda s: s["backlog"] == {"qh": 0, "event": 0, "tx": 0}, what="empty backlog")
    sub.close()
    collect(sub)
    b.stop()
    a.wait(lambda s: not s["connected"], what="link down")
    for _ in range(30):  # an hour of device time: 4 qh, events and tx records per 6 device minutes
        a.append("qh")
        a.append("event")
        a.append("tx")
        time.sleep(0.1)
    # the agent reads the journal files and writes its status on its own beat: a status
    # written before it saw the last append says 29; wait for one that has seen them all
    st = a.wait(lambda s: s["failures"] >= 2 and s["backlog"] == {"qh": 30, "event": 30, "tx": 30},
                what="retries while the broker is down, all 30 records of each stream kept")
    assert st["backlog"] == {"qh": 30, "event": 30, "tx": 30}
    assert "link lost" in st["last_error"] or "ECONNREFUSED" in st["last_error"] or "Errno" in st["last_error"]
    assert st["max_lag_ms"] < 300, st  # the loop was never blocked for long
    b.start()
    sub = backend()
    a.wait(lambda s: s["connected"] and s["backlog"] == {"qh": 0, "event": 0, "tx": 0}, timeout=20,
           what="backlog sent after the outage")
    total = {"qh": 34, "event": 32, "tx": 32}
    # every record of every stream arrives (resent ones may come twice)
    wait_until(lambda: all(set(range(n)) <= set(received[s] + seqs(sub, s)) for s, n in total.items()),
               20, what="every record after the outage")
    collect(sub)
    for s, n in total.items():
        assert first_seen(received[s]) == list(range(n)), (s, received[s])
        assert len(received[s]) - n <= 8, (s, received[s])  # at most a window of QoS 1 duplicates
    assert a.status()["reconnects"] == 1

    # reboot without a clean stop: the cursor on flash may be a little behind;
    # nothing is lost and the resent records carry their seq
    a.kill()
    a.append("qh", 5)
    a.start()
    a.wait(lambda s: s["connected"] and s["backlog"]["qh"] == 0, what="sent after reboot")
    sub.wait_for(lambda m: m.topic == P + "qh" and m.json()["seq"] == 38)
    after = [m.json()["seq"] for m in sub.topics("/qh")]
    assert set(range(34, 39)) <= set(after)
    assert len(after) <= 5 + 32
    assert first_seen(after) == sorted(first_seen(after))
    a.stop()


def test_refused_credentials_back_off_then_connect(tmp_path, cleanup):
    b = brokermod.Broker(users={"dicamm": "s3cret"}).start()
    cleanup.append(b)
    a = Agent(tmp_path, base_config(b.port, **{"mqtt.user": "dicamm", "mqtt.password": "wrong",
                                               "mqtt.backoff_max_s": 8}))
    a.start()
    cleanup.append(a)
    times = []
    last = 0
    deadline = time.monotonic() + 15
    while len(times) < 4 and time.monotonic() < deadline:
        f = a.status().get("failures", 0)
        if f > last:
            times.append(time.monotonic())
            last = f
        time.sleep(0.02)
    st = a.status()
    assert len(times) >= 4, st
    assert not st["connected"] and st["connects"] == 0
    assert "broker refused the connection" in st["last_error"], st
    assert "not authorized" in st["last_error"] or "bad user name" in st["last_error"]
    gaps = [t2 - t1 for t1, t2 in zip(times, times[1:])]
    # backoff 1, 2, 4 s, each with 50..100 % jitter
    assert 0.4 <= gaps[0] <= 1.3 and 0.9 <= gaps[1] <= 2.3 and 1.9 <= gaps[2] <= 4.3, gaps
    assert st["max_lag_ms"] < 300
    a.stop()
    a.set("mqtt.password", "s3cret")
    a.start()
    a.wait(lambda s: s["connected"] and s["last_error"] is None, what="connected with good credentials")
    a.stop()


def test_tls_with_ca_verification(tmp_path, cleanup):
    b = brokermod.Broker(tls=True, require_client_cert=True).start()
    cleanup.append(b)
    sub = brokermod.Client(b.port, client_id="backend").subscribe("dicamm/#")
    cleanup.append(sub)
    tls = {"mqtt.tls": True, "mqtt.port": b.tls_port, "mqtt.ca": b.ca[0], "mqtt.server_hostname": "localhost",
           "mqtt.cert": b.client_cert[0], "mqtt.key": b.client_cert[1]}
    good = tmp_path / "good"
    good.mkdir()
    a = Agent(good, base_config(b.port, **tls))
    a.append("qh", 2)
    a.start()
    cleanup.append(a)
    sub.wait_for(lambda m: m.topic == P + "status" and m.payload == b"online")
    sub.wait_count(lambda m: m.topic == P + "qh", 2)
    assert a.status()["tls"] is True
    sub.publish(P + "cmd/relay", '{"id":"t1","mode":"off"}', qos=1)
    assert sub.wait_for(lambda m: m.topic == P + "ack").json() == {"id": "t1", "ok": True, "cmd": "relay",
                                                                   "result": {"done": "relay"}}
    a.stop()

    # a broker whose certificate does not chain to the configured CA is refused
    bad = tmp_path / "bad"
    bad.mkdir()
    a2 = Agent(bad, base_config(b.port, **dict(tls, **{"mqtt.ca": b.other_ca[0], "mqtt.client_id": "x2"})))
    a2.start()
    cleanup.append(a2)
    st = a2.wait(lambda s: s["failures"] >= 1, what="TLS refusal")
    assert not st["connected"] and st["connects"] == 0
    assert "VERIFY" in st["last_error"].upper() or "CERT" in st["last_error"].upper(), st
    a2.stop()

    # TLS without a CA is a configuration error, not a silent unverified link
    none = tmp_path / "none"
    none.mkdir()
    cfg = base_config(b.port, **tls)
    del cfg["mqtt.ca"]
    a3 = Agent(none, cfg)
    a3.start()
    cleanup.append(a3)
    st = a3.wait(lambda s: s["failures"] >= 1, what="missing CA")
    assert "mqtt.ca" in st["last_error"]
    a3.stop()
