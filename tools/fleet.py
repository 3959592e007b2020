#!/usr/bin/env python3
"""A small fleet on one machine: N firmware instances (MicroPython unix port), each
with its own meter emulator, all against ONE MQTT broker (mosquitto), ONE gateway
(HAN) emulator and one set of SNTP servers; then what the broker side received.

    tools/fleet.py [-n 5] [--minutes 120] [--speed 600] [--rollout 0.2.0] [--json]

Each device gets its own device_id and CLS-ID (dicamm-fleet-01 ...), raises one TAF16
event, and is watched by a subscriber on `dicamm/#`. The report lists, per device, the
messages by topic kind (state, reading, qh, event, ...), whether it came online, and
how many of its events the gateway stored. docs/FLEET.md says how the same devices
point at a clustered broker when one broker is not enough.

--rollout VERSION: a signed release of this tree with that version (tools/release.py,
a bench key made in the work folder) is served over HTTPS, every device gets the key
(update.pubkey) and the server's CA, and the backend's `cmd/update` goes to each device
after its hello event; a device that restarts into the new version is started again
(the unix port exits where a board resets). The report adds each device's version and
its update's last word (confirmed, or rolled back and why).
"""
import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from broker import Client  # noqa: E402
from rig import Rig, day_start_ms  # noqa: E402


def start_fleet(workdir, n, speed, start_ms, extra=None):
    """-> (hub rig with broker, gateway and SNTP, [device rigs]). extra: config for all."""
    extra = extra or {}
    hub = Rig(os.path.join(workdir, "dev01"), speed=speed, start_ms=start_ms, load="day", mqtt=True, seed=1,
              config=dict(extra, device_id="dicamm-fleet-01", cls_id="CLS-FLEET-0001"))
    hub.start(firmware=False)
    devs = [hub]
    for i in range(2, n + 1):
        r = Rig(os.path.join(workdir, "dev%02d" % i), speed=speed, start_ms=hub.clock.start_ms, load="day",
                sntp=(), han=None, mqtt=False, seed=i, import_wh=1_000_000 + 10_000 * i,
                config=dict(extra, device_id="dicamm-fleet-%02d" % i, cls_id="CLS-FLEET-%04d" % i))
        r.clock = hub.clock  # one simulated clock for all
        r.start_meter()
        # share the hub's servers
        r.sntp_ports, r.han_port, r.han_mode, r.broker = hub.sntp_ports, hub.han_port, "tls", hub.broker
        certs = os.path.join(r.root, "certs")
        os.makedirs(certs, exist_ok=True)
        for name in ("ca.pem", "device.pem", "device.key.pem"):
            shutil.copy(os.path.join(hub.pki, name), os.path.join(certs, name))
        devs.append(r)
    return hub, devs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5, help="number of devices")
    ap.add_argument("--minutes", type=float, default=120, help="device minutes to run")
    ap.add_argument("--speed", type=int, default=600)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "fleet-run"))
    ap.add_argument("--json", action="store_true", help="print only the JSON report")
    ap.add_argument("--rollout", metavar="VERSION", help="roll a signed release of this version out over MQTT")
    a = ap.parse_args(argv)
    if os.path.isdir(a.workdir):
        shutil.rmtree(a.workdir)
    start = day_start_ms("2026-11-29") + 6 * 3_600_000
    extra, server = {}, None
    if a.rollout:
        import release
        os.makedirs(a.workdir)
        key = os.path.join(a.workdir, "bench-release-key.pem")   # a bench key: never a fleet's
        extra = {"update": {"pubkey": release.keygen(key), "ca": "certs/ca.pem", "confirm_s": 120}}
        release.build("unix", key, os.path.join(a.workdir, "releases", a.rollout), a.rollout)
    hub, devs = start_fleet(a.workdir, a.n, a.speed, start, extra)
    if a.rollout:
        from release_server import ReleaseServer
        server = ReleaseServer(os.path.join(a.workdir, "releases"), hub.pki)
    sub = None
    try:
        sub = Client(hub.broker.port, client_id="fleet-watch")
        sub.subscribe("dicamm/#", qos=1)
        for r in devs:
            r.start_firmware()
        time.sleep(min(5.0, 60_000 / a.speed))
        for i, r in enumerate(devs):
            r.fw.command('event "fleet hello %d"' % (i + 1))
        if server is not None:
            for i, r in enumerate(devs):
                did = r.device_config()["device_id"]
                sub.publish("dicamm/%s/cmd/update" % did, json.dumps(
                    {"id": "rollout-%d" % (i + 1), "url": server.url(a.rollout)}).encode(), qos=1)
        end = start + int(a.minutes * 60_000)
        while hub.clock.now_ms() < end:
            for r in devs:
                if not r.fw.alive():   # restarted into the new version: the power-on a board does itself
                    r.start_firmware(wait_ready=False)
            time.sleep(0.5)
        states = {}
        for r in devs:
            try:
                states[r.device_config()["device_id"]] = st = r.fw.json("status --json")
                if server is not None:
                    st["update"] = r.fw.json("update --json")
            except Exception as e:  # noqa: BLE001 - report a device that does not answer
                states[r.device_config()["device_id"]] = {"error": str(e)}
        time.sleep(1)
        msgs = list(sub.messages)
    finally:
        if server is not None:
            server.stop()
        if sub is not None:
            try:
                sub.sock.close()
            except OSError:
                pass
        for r in devs[1:]:
            r.broker = None  # the hub owns the broker
            r.stop()
        hub.stop()
    gw = hub.gateway_events()
    report = {"devices": a.n, "speed": a.speed, "device_minutes": a.minutes, "broker_messages": len(msgs),
              "gateway_events": len(gw), "per_device": {}}
    for r in devs:
        did = r.device_config()["device_id"]
        cls = r.device_config()["cls_id"]
        mine = [m for m in msgs if m.topic.split("/")[1:2] == [did]]
        kinds = {}
        for m in mine:
            k = "/".join(m.topic.split("/")[2:4]) or "(root)"
            kinds[k] = kinds.get(k, 0) + 1
        st = states.get(did, {})
        report["per_device"][did] = {"messages": len(mine), "by_topic": kinds,
                                     "gateway_events": sum(1 for e in gw if e.get("cls_id") == cls),
                                     "mqtt_connected": (st.get("mqtt") or {}).get("connected"),
                                     "qh_values": (st.get("qh") or {}).get("values"),
                                     "firmware": st.get("firmware"), "error": st.get("error")}
        if a.rollout:
            u = st.get("update") or {}
            last = (u.get("boot") or {}).get("last") or {}
            report["per_device"][did]["update"] = {"state": u.get("state"), "error": u.get("error"),
                                                   "last": last.get("event"), "why": last.get("why")}
    if a.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("fleet of %d on one broker (port %s) and one gateway, %g device minutes at %dx" % (
            a.n, hub.broker.port if hub.broker else "-", a.minutes, a.speed))
        for did, d in report["per_device"].items():
            print("  %-16s %-6s %4d messages  mqtt %-5s  qh %s  gateway events %d  %s%s" % (
                did, d["firmware"], d["messages"], d["mqtt_connected"], d["qh_values"], d["gateway_events"],
                " ".join("%s:%d" % kv for kv in sorted(d["by_topic"].items())),
                "  update %s" % (d["update"]["last"] or d["update"]["state"]) if "update" in d else ""))
        print("broker received %d messages; gateway stored %d events" % (len(msgs), len(gw)))
        print(json.dumps(report, sort_keys=True))
    ok = all(d["messages"] > 0 and d["gateway_events"] >= 1 for d in report["per_device"].values())
    if a.rollout:
        ok = ok and all(d["firmware"] == a.rollout and d["update"]["last"] == "confirmed"
                        for d in report["per_device"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
