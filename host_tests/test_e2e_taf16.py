# End to end on the MicroPython unix port: TAF16 event triggers reach the HAN
# gateway emulator (mutual TLS) and the device keeps signed OCMF transaction records
# whose energy is the meter emulator's, all on one simulated clock (60x).
#
# Issue 5: a transaction's two events arrive with the right fields and the
# record's energy equals the meter's; with the gateway failing (500, hang, drop)
# and the firmware killed at 20+ random moments, every event arrives exactly
# once and in order, and transactions cut by a kill end with TX P; the records
# verify with tools/verify_tx.py and pyocmf and tampering is found; a gateway certificate
# from another CA is refused with a clear error.
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import binascii

import pytest

from rig import Rig, day_start_ms, ROOT
from waiting import relay, running, wait_delivered, wait_until
from verify_tx import read_journal

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

SPEED = 60
BASE_W = 500
ELEMENT_W = 3000
CLS_ID = "CLS-BENCH-0001"
KILLS = 22
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

CFG = {"relay": {"min_on_s": 10, "min_off_s": 10, "max_cycles_per_h": 30, "nominal_w": ELEMENT_W},
       "storage": {"outbox_max_bytes": 262144, "events_max_bytes": 262144}}


def ready(rig, timeout=60):
    rig.fw.wait_for("status --json", lambda d: d.get("meter", {}).get("ok") and "outbox" in d, timeout=timeout)


def outbox_status(rig):
    return rig.fw.json("events --json --last 1")["status"]


def real_ms_of(rig, device_ms):
    return rig.clock.real_ms_at(device_ms)


def wait_device_s(rig, seconds):
    rig.wait_device_ms(rig.device_now_ms() + seconds * 1000)


def device_outbox(rig):
    # The device's event journal read straight from its flash (device order).
    return [e for _, e in read_journal(os.path.join(rig.root, "data"), "outbox")]


def check_fields(g):
    assert UUID4.match(g["uuid"]), g
    assert g["cls_id"] == CLS_ID, g
    assert isinstance(g["text"], str) and 0 < len(g["text"]) <= 64, g
    assert isinstance(g["timestamp"], int) and not isinstance(g["timestamp"], bool), g


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with running(Rig(tmp_path_factory.mktemp("e2e_taf16"), speed=SPEED,
                start_ms=day_start_ms("2026-03-02") + 10 * 3600_000, load="constant:%d" % BASE_W,
                element_w=ELEMENT_W, config=CFG), up=ready) as r:
        yield r


def served_before(log, t_ms, n=3):
    # import_wh of the last n reads the meter emulator served up to t_ms
    vals = [e["import_wh"] for e in log if e["t_ms"] <= t_ms and e.get("import_wh") is not None]
    return vals[-n:]


def test_transaction_events_reach_the_gateway_and_energy_matches_the_meter(rig):
    wait_device_s(rig, 30)  # power-up minimum off time (10 device s)
    before = len(rig.gateway_events())
    out = rig.fw.command("relay on 3")
    assert "relay on requested" in out[0], out
    wait_until(lambda: relay(rig)["state"] == "on", 30, what="relay on")
    wait_until(lambda: relay(rig)["state"] == "off", 60, what="manual on lapses after 3 min")
    wait_delivered(rig)
    tx = rig.fw.json("tx --json --last 1")
    rec = tx["tx"][-1]
    b, e = rec["begin"], rec["end"]
    assert e["reason"] == "E" and b["st"] == e["st"] == "G" and b["ef"] == e["ef"] == ""  # OCMF table 7, 10
    assert rec["meter_model"] == "SDM630-Modbus" and rec["meter_serial"].isdigit()
    assert b["time_status"] == "S" and e["time_status"] == "S"
    assert rec["energy_wh"] == e["reading_wh"] - b["reading_wh"]

    gw = {g["uuid"]: g for g in rig.gateway_events()[before:]}
    assert set(gw) == {b["uuid"], e["uuid"]}, gw
    gs, ge = gw[b["uuid"]], gw[e["uuid"]]
    for g in (gs, ge):
        check_fields(g)
    assert gs["text"] == "start by installer: manual on for 3 min", gs
    assert ge["text"] == "stop by default: installer request ended", ge
    # The record's readings keep their own time (the poll's, issue 17), just before
    # the event's; the device's event says which reading it carried (reading_ms).
    dev = {d["uuid"]: d for d in device_outbox(rig)}
    # "Just before": within one poll period (meter.poll_s, 1 s) and the real time the
    # bus and the loop may take between two polls (metering._BUS_SHARE_MS, 250 ms) at
    # the clock's speed; a flat 5 device s was 83 real ms at 60x (5.2 s seen beside other tests)
    for g, r in ((gs, b), (ge, e)):
        assert 0 <= g["timestamp"] * 1000 + 999 - r["time_ms"] <= 1000 + 250 * SPEED, (g, r)
        assert dev[g["uuid"]]["reading_ms"] == r["time_ms"] and "stale_ms" not in dev[g["uuid"]]
        # the trigger carries the time status it was stamped with and that stamp's
        # uncertainty (issue 18), as the device journalled them
        assert g["time_status"] == "S" and g["legal_time"] and "mark" not in g, g
        assert isinstance(g["error_ms"], int) and g["error_ms"] == dev[g["uuid"]]["error_ms"] >= 0, (g, dev[g["uuid"]])
    assert gs["seq"] + 1 == ge["seq"]

    # The record's readings are values the meter emulator served just before the
    # event moments, so its energy is the meter's energy in that window.
    log = rig.meter_reads()
    assert b["reading_wh"] in served_before(log, b["time_ms"]), (b, served_before(log, b["time_ms"]))
    assert e["reading_wh"] in served_before(log, e["time_ms"]), (e, served_before(log, e["time_ms"]))
    # and that energy is physical: base load plus element for ~3 minutes
    dur_ms = e["time_ms"] - b["time_ms"]
    expect = (BASE_W + ELEMENT_W) * dur_ms // 3_600_000
    assert abs(rec["energy_wh"] - expect) <= 10, (rec["energy_wh"], expect, dur_ms)

    lat = [g["received_real_ms"] - real_ms_of(rig, t) for g, t in ((gs, b["time_ms"]), (ge, e["time_ms"]))]
    print("transaction: %d Wh over %d device s (meter: %s Wh at the gateway); switching -> gateway "
          "received: %.0f / %.0f real ms" % (rec["energy_wh"], dur_ms // 1000,
                                              ge["reading_wh"] - gs["reading_wh"], lat[0], lat[1]))


def test_wrong_gateway_certificate_is_refused(rig):
    wait_delivered(rig)
    rig.set_han("wrong-cert")
    try:
        before = len(rig.gateway_events())
        out = rig.fw.command('event "certificate check"')
        uuid = re.search(r"event (\S+) recorded", out[0]).group(1)
        st = wait_until(lambda: (lambda s: s if s["last_error"] and s["pending"] else None)(outbox_status(rig)),
                        30, what="a refused handshake")
        assert "gateway certificate not trusted" in st["last_error"], st
        status = rig.fw.wait_for("status --json", lambda d: "taf16" in d["faults"], timeout=10)
        assert "certificate not trusted" in status["faults"]["taf16"], status["faults"]
        human = rig.fw.command("events --last 2")
        assert "PENDING" in human[-2] and "last error: gateway certificate not trusted" in human[-1], human
        assert len(rig.gateway_events()) == before  # nothing reached the gateway
    finally:
        rig.set_han("ok")
    wait_delivered(rig, 60)
    gw = [g for g in rig.gateway_events() if g["uuid"] == uuid]
    assert len(gw) == 1 and gw[0]["text"] == "certificate check"
    wait_until(lambda: "taf16" not in rig.fw.json("status --json")["faults"], 10, what="fault clears")


def test_gateway_failing_then_back_and_kills_lose_or_duplicate_nothing(rig):
    rnd = random.Random(5)
    wait_delivered(rig)
    n_before = len(device_outbox(rig))
    # 1. the gateway fails in each way for a while, the firmware keeps running
    for mode, word in (("500", "HTTP 500"), ("hang", "timeout"), ("drop", "without answer")):
        rig.set_han(mode)
        rig.fw.command('event "outage %s"' % mode)
        wait_until(lambda: word in (outbox_status(rig)["last_error"] or ""), 60, what="error " + word)
    rig.fw.command("setpoint on 120")  # a transaction while the gateway is down
    wait_until(lambda: outbox_status(rig)["pending"] >= 3, 30, what="events held while the gateway is down")
    rig.set_han("ok")
    wait_delivered(rig)

    # 2. the firmware killed at random moments while events are made and the
    # gateway fails now and then
    ep_expected = []
    # weighted towards switching on, so that many kills cut an open transaction
    actions = ['event "kill test %d"', "relay on 2", "relay on 2", "relay on 2", "relay off 1", "relay auto",
               "setpoint on 120", "setpoint off 120", "dso 0 60", "dso off"]
    for i in range(KILLS):
        rig.set_han(rnd.choice(("ok", "ok", "ok", "500", "hang", "drop")))
        t_end = time.monotonic() + rnd.uniform(0.0, 1.5)
        while True:
            a = rnd.choice(actions)
            rig.fw.send(a % i if "%d" in a else a)
            if time.monotonic() >= t_end:
                break
            time.sleep(rnd.uniform(0.05, 0.4))
        rig.fw.kill()
        open_path = os.path.join(rig.root, "data", "tx.open")
        if os.path.exists(open_path):
            with open(open_path) as f:
                ep_expected.append(json.loads(f.read())["uuid"])
        rig.start_firmware()
        rig.fw.wait_for("status --json", lambda d: "outbox" in d, timeout=60)
    rig.set_han("ok")
    rig.fw.command("relay auto")
    ready(rig)
    wait_delivered(rig, 180)

    dev = device_outbox(rig)
    gws = rig.gateway_events()
    uuids = [g["uuid"] for g in gws]
    assert len(uuids) == len(set(uuids)), "a uuid reached the gateway twice"
    for g in gws:
        check_fields(g)
    # every event of the device arrived exactly once, in the device's order
    # (gateway sequence = device journal order), and nothing else arrived
    assert [g["uuid"] for g in sorted(gws, key=lambda g: g["seq"])] == [e["uuid"] for e in dev]
    assert len(dev) - n_before >= KILLS  # the campaign did make events
    # the acknowledgements kept are the gateway's own records
    acks = {a["r"]["uuid"]: a["r"] for _, a in read_journal(os.path.join(rig.root, "data"), "acks")}
    for g in gws:
        assert acks[g["uuid"]]["seq"] == g["seq"]

    # transactions open at a kill were closed with TX P (OCMF table 7), each exactly once
    recs = rig.fw.json("tx --json --last 1000")["tx"]
    begins = [r["begin"]["uuid"] for r in recs]
    assert len(begins) == len(set(begins)), "a transaction was recorded twice"
    by_begin = {r["begin"]["uuid"]: r for r in recs}
    for u in ep_expected:
        assert by_begin[u]["end"]["reason"] == "P", by_begin[u]
    assert [r["pg"] for r in recs] == list(range(recs[0]["pg"], recs[0]["pg"] + len(recs)))
    texts = {e["uuid"]: e["text"] for e in dev}
    for r in recs:
        if r["end"]["reason"] == "P":
            assert "ended by power failure" in texts[r["end"]["uuid"]]
    print("kill campaign: %d kills, %d events delivered once each, %d transactions (%d EP)" % (
        KILLS, len(dev), len(recs), len(ep_expected)))


def _verify(key, source):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "verify_tx.py"), "--key", key, source,
                        "--json"], capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout)


def _rewrite(path, records):
    # records: [(seq, payload)] written in the firmware's journal framing
    with open(path, "wb") as f:
        for seq, payload in records:
            head = struct.pack("<BHI", 0xD5, len(payload), seq)
            f.write(head + payload + struct.pack("<I", binascii.crc32(payload, binascii.crc32(head))))


def _segments(d):
    out = []
    for name in sorted(os.listdir(d)):
        if name.startswith("tx.") and name[3:].isdigit():
            data = open(os.path.join(d, name), "rb").read()
            recs, pos = [], 0
            while pos + 11 <= len(data):
                _, n, seq = struct.unpack_from("<BHI", data, pos)
                recs.append((seq, data[pos + 7:pos + 7 + n]))
                pos += 11 + n
            out.append((name, recs))
    return out


def test_record_chain_verifies_and_tampering_is_found(rig, tmp_path):
    key = os.path.join(rig.root, "device.key")
    data = os.path.join(rig.root, "data")
    rc, summary = _verify(key, data)
    assert rc == 0 and summary["ok"], summary
    assert summary["records"] >= 2
    # the export printed by `tx export` (one OCMF string per line) verifies
    # with the public key the device shows, and with pyocmf
    export = tmp_path / "tx.txt"
    lines = [x for x in rig.fw.command("tx export") if x.startswith("OCMF|")]
    export.write_text("\n".join(lines) + "\n")
    pub = rig.fw.command("tx key")[0].strip()
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "verify_tx.py"), "--pubkey", pub, str(export),
                        "--json"], capture_output=True, text=True, timeout=60)
    s2 = json.loads(p.stdout)
    assert p.returncode == 0 and s2["records"] == summary["records"], s2
    import pyocmf
    for line in lines:
        assert pyocmf.OCMF.from_string(line).verify_signature(pub), line

    # altered: one reading changed, journal CRC made good again
    alt = tmp_path / "altered"
    shutil.copytree(data, alt)
    name, recs = _segments(str(alt))[0]
    text = recs[0][1].decode()
    i = text.index(",", text.index('"RV":')) - 1  # the last digit of the begin reading
    text = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]
    recs[0] = (recs[0][0], text.encode())
    _rewrite(str(alt / name), recs)
    rc, s = _verify(key, str(alt))
    assert rc == 1 and any("altered" in p["problem"] for p in s["problems"]), s

    # deleted: a record taken out of the middle
    dele = tmp_path / "deleted"
    shutil.copytree(data, dele)
    name, recs = _segments(str(dele))[0]
    assert len(recs) >= 3
    del recs[1]
    _rewrite(str(dele / name), recs)
    rc, s = _verify(key, str(dele))
    assert rc == 1 and any("deleted" in p["problem"] for p in s["problems"]), s

    # and the wrong key finds nothing genuine
    bad_key = tmp_path / "other.key"
    bad_key.write_bytes(b"\x01" * 32)
    rc, s = _verify(str(bad_key), data)
    assert rc == 1


def test_event_latency(rig):
    # Switching -> the gateway has the event, in real ms (reported, not judged).
    wait_delivered(rig)
    lat = []
    for i in range(6):
        before = len(rig.gateway_events())
        rig.fw.command('event "latency %d"' % i)
        wait_until(lambda: len(rig.gateway_events()) > before, 30, 0.01, "event %d at the gateway" % i)
        g = rig.gateway_events()[-1]
        ev = [e for e in device_outbox(rig) if e["uuid"] == g["uuid"]][0]
        lat.append(g["received_real_ms"] - real_ms_of(rig, ev["time_ms"]))
    lat.sort()
    print("event -> gateway latency, real ms: median %.0f, max %.0f" % (lat[len(lat) // 2], lat[-1]))
    assert all(x >= -50 for x in lat)  # the gateway never sees an event before it happened
