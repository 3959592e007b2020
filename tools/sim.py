#!/usr/bin/env python3
"""`make sim`: the bench simulation.

Runs the firmware on the MicroPython unix port against the emulators (tools/rig.py):
a pymodbus meter with a household load and the heating element behind the emulated
relay, three SNTP servers, the smart meter gateway's HAN endpoint (mutual TLS) and,
where mosquitto is installed, an MQTT broker. The simulated clock runs a whole day
in about a minute. It loads a schedule of §13k windows, lets the grid operator
limit (§14a EnWG) one of them through the control box contact, shows live readings
as the day goes by, and at the end prints the quarter-hour load profile, the TAF16
events and the transactions, and draws the day as a PNG.

The element is a 6 kW heating element on three relays (2/4/6 kW stages). At 17:30
UTC the grid operator's control box closes its contact (the file dso.contact under
the device's root) for half an hour: the limit is 4200 W, the legal minimum, so
the element runs at its 4 kW stage, and the picture marks the limit. With a 3 kW
element (--element 3000) the same signal changes nothing, and the device says so:
a load that draws at most 4.2 kW is never limited under §14a.

    make sim                                  # one day, 1440x
    make sim SIM_ARGS="--element 3000"        # a 3 kW single-stage element
    make sim SIM_ARGS="--date 2026-10-25"     # the day the clocks go back: 100 quarter hours
    make sim SIM_ARGS="--interactive"         # then type console commands yourself
"""
import argparse
import datetime
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from rig import Rig, day_start_ms  # noqa: E402

_BEFORE_DAY_MS = 30 * 60_000   # device time the run starts before the UTC day
_READY_S = 20                  # real s for the device to read the meter and sync its time

try:
    from zoneinfo import ZoneInfo
    BERLIN = ZoneInfo("Europe/Berlin")
except Exception:  # pragma: no cover - no tz database
    BERLIN = datetime.timezone(datetime.timedelta(hours=1))


def local(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, BERLIN).strftime("%Y-%m-%d %H:%M %Z")


def utc(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%H:%M")


def windows_for(day_ms):
    h = 3_600_000
    w = [("wind-night", 2 * h, 3 * h + 30 * 60_000), ("solar-noon", 11 * h, 13 * h),
         ("evening-13k", 17 * h, 18 * h + 30 * 60_000), ("late-wind", 22 * h, 23 * h)]
    return [{"id": i, "start": (day_ms + a) // 1000, "end": (day_ms + b) // 1000, "on": True} for i, a, b in w]


def live_line(st, now_ms):
    m = st.get("meter", {})
    c = st.get("controller", {})
    t = st.get("time", {})
    qh = st.get("qh", {})
    ob = st.get("outbox", {})
    mq = st.get("mqtt")
    power = "%6s W" % m.get("power_w") if m.get("ok") else "  FAULT "
    stage = " %d/%d" % (c["stage"], len(c["stages_w"])) if "stage" in c else ""
    lim = c.get("limit")
    limit = "  14a %s W%s" % (lim.get("limit_w"), "" if lim.get("binds") else " (no effect)") if lim else ""
    return "%s  %s  import %9s Wh  relay %-3s%s %-10s time %s  qh %3s gaps %s  events %s/%s%s%s%s" % (
        local(now_ms), power, m.get("import_wh"), c.get("state", "-"), stage, c.get("source", "-"),
        t.get("status"), qh.get("values"), qh.get("gaps"), ob.get("acked", "-"),
        (ob.get("acked", 0) or 0) + (ob.get("pending", 0) or 0),
        "  mqtt %s" % ("up" if mq.get("connected") else "down") if mq else "", limit,
        "  FAULTS %s" % ",".join(st.get("faults")) if st.get("faults") else "")


def limit_words(rs):
    # What the device says about a §14a limit in force (relay --json).
    lim = rs["limit"]
    head = "limit %s W from the %s (asked %s W)" % (lim["limit_w"], lim["source"], lim["asked_w"])
    if lim["binds"]:
        return "%s binds: the element may draw %s W%s" % (
            head, rs["allowed_w"], ", stage %d of %d" % (rs["stage"], len(rs["stages_w"])) if "stage" in rs else "")
    return "%s changes nothing: %s" % (head, (rs["sources"]["dso"]["why_not"] or "").split("; ")[-1])


def wait_ready(fw, timeout=_READY_S):
    # status --json once the meter is read and legal time is synchronised, else None
    try:
        return fw.wait_for("status --json", lambda st: st.get("meter", {}).get("ok")
                           and st.get("time", {}).get("status") == "S", timeout, 0.02)
    except AssertionError:
        return None


def wait_relay(fw, done, timeout=10.0):
    # relay --json once done(it) holds, or None after timeout real seconds
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rs = fw.json("relay --json")
        if done(rs):
            return rs
        time.sleep(0.02)
    return None


def limit_judged(rs):
    # the limit is in force and the arbiter has judged it
    lim = rs.get("limit")
    return bool(lim and (lim["binds"] or rs["sources"]["dso"].get("why_not")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--date", default=None, help="UTC day to simulate (default: today)")
    ap.add_argument("--speed", type=int, default=1440, help="device seconds per real second")
    ap.add_argument("--hours", type=float, default=24.0, help="device hours to run")
    ap.add_argument("--slow", default="100:500:9500",
                    help="slow motion SPEED:LEAD_MS:TAIL_MS around each quarter hour, so that a loaded host "
                         "cannot make the 9 s boundary reading late (0: none)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "sim-run"))
    ap.add_argument("--no-mqtt", action="store_true")
    ap.add_argument("--interactive", action="store_true", help="keep the console open at the end")
    ap.add_argument("--every", type=float, default=1.0, help="real seconds between live lines")
    ap.add_argument("--element", default="2000,4000,6000",
                    help="the heating element: W, or the W of each stage (2-3, comma separated)")
    a = ap.parse_args(argv)

    date = a.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    day_ms = day_start_ms(date)
    if os.path.isdir(a.workdir):
        shutil.rmtree(a.workdir)
    mqtt = not a.no_mqtt and (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"))
    # The device starts half an hour before the day (at 1440x 1.25 real s, beside the
    # rig's 1.5 s lead), so that it reads the meter and has legal time before 00:00:
    # with 2 minutes the first boundary was once a gap on a loaded host.
    start_ms = day_ms - _BEFORE_DAY_MS
    end_ms = day_ms + int(a.hours * 3_600_000) + 60_000
    from simclock import parse_slow
    slow = parse_slow(a.slow)
    stages = [int(w) for w in a.element.split(",")]
    # the control box contact: normally open, debounced by 20 real ms (at 1440x that
    # is half a device minute; on a board the default is 200 ms)
    rig = Rig(a.workdir, speed=a.speed, start_ms=start_ms, load="day", mqtt=bool(mqtt), slow=slow if slow[0] else None,
              element_w=stages[-1], stages_w=stages if len(stages) > 1 else None,
              config={"relay": {"min_on_s": 300, "min_off_s": 300, "plausibility_s": 300},
                      "dso": {"contact": "no", "debounce_ms": 20},
                      "mqtt": {"meter_period_s": 900}})
    rig.set_contact("0")
    print("DICAMM bench simulation: %s (UTC day), %dx real time, work folder %s" % (date, a.speed, a.workdir))
    rig.start()
    fw = rig.fw
    try:
        print("meter emulator on %s, gateway https://127.0.0.1:%s/taf16 (mutual TLS), SNTP on %s" % (
            rig.pty, rig.han_port, ", ".join(str(p) for p in rig.sntp_ports)))
        if rig.broker is not None:
            print("MQTT broker 127.0.0.1:%d - watch it: .venv/bin/python tools/broker.py sub --port %d 'dicamm/#'"
                  % (rig.broker.port, rig.broker.port))
            print("  and command it: .venv/bin/python tools/broker.py pub --port %d dicamm/dicamm-bench/cmd/relay "
                  "'{\"id\":\"1\",\"mode\":\"on\",\"minutes\":30}'" % rig.broker.port)
        up = wait_ready(fw)
        t_up = rig.device_now_ms()
        if up is None:
            print("!!! the device has no meter reading and legal time (S) after %d real s: %s" % (
                _READY_S, "; ".join(fw.stderr[-5:]) or "see its log"))
        elif t_up >= day_ms:
            print("!!! the device was ready only at %s, after the day began: its first quarter hours "
                  "may be gaps (a slow host, not a device fault)" % local(t_up))
        else:
            print("device up: meter read, legal time synchronised (S), %d device min before the day"
                  % ((day_ms - t_up) // 60_000))
        wins = windows_for(day_ms)
        fw.command("schedule set '%s'" % json.dumps(wins))
        print("schedule: " + ", ".join("%s %s-%s UTC" % (w["id"], utc(w["start"] * 1000), utc(w["end"] * 1000))
                                      for w in wins))
        print("element: %s" % ("%d kW on %d relays (stages %s W)" % (stages[-1] // 1000, len(stages),
                                                                    "/".join(str(w) for w in stages))
                                 if len(stages) > 1 else "%d W, one relay" % stages[0]))
        # the grid operator's control box: contact closed 17:30-18:00 UTC
        contact = [(day_ms + 17 * 3_600_000 + 30 * 60_000, "1"), (day_ms + 18 * 3_600_000, "0")]
        print()
        while rig.device_now_ms() < end_ms:
            if not fw.alive():
                raise SystemExit("firmware exited:\n" + "".join(fw.stderr[-30:]))
            now = rig.device_now_ms()
            if contact and now >= contact[0][0]:
                rig.set_contact(contact.pop(0)[1])
                if contact:
                    print(">>> %s the grid operator's control box closes its contact (§14a EnWG)" % local(now))
                    rs = wait_relay(fw, limit_judged)
                    print(">>> the device: " + (limit_words(rs) if rs else "no limit seen within 10 s"))
                else:
                    print(">>> %s the control box opens its contact: the limit ends" % local(now))
                    rs = wait_relay(fw, lambda rs: not rs.get("limit"))
                    print(">>> the device: " + ("no limit in force, the element may draw %s W again" % rs["allowed_w"]
                                                if rs else "the limit still in force after 10 s"))
            st = fw.json("status --json")
            print(live_line(st, now), flush=True)
            # the next live line, or the contact's next edge on its minute (20 real ms
            # are 29 device s at 1440x), whichever comes first
            wake = time.monotonic() + a.every
            while time.monotonic() < wake and not (contact and rig.device_now_ms() >= contact[0][0]):
                time.sleep(0.02)
        report(rig, day_ms, a.hours)
        if a.interactive:
            interactive(fw)
    finally:
        rig.stop()


def report(rig, day_ms, hours=24.0):
    fw = rig.fw
    print("\n== quarter-hour load profile (TAF7), local time, energy per interval ==")
    rows = fw.json("qh --json --last 200")["qh"]
    prev = None
    values = gaps = late = 0
    quarters = int(hours * 4)
    day_end = day_ms + quarters * 900_000
    for r in rows:
        in_day = day_ms <= r["boundary"] * 1000 < day_end
        if "gap" in r:
            gaps += in_day
            print("  #%-4d %s  GAP: %s" % (r["seq"], local(r["boundary"] * 1000), r["gap"]))
            prev = None
            continue
        values += in_day
        late += in_day and r["late"]
        d = "" if prev is None else "%6d Wh" % (r["import_wh"] - prev)
        bar = "" if prev is None else "#" * min(60, (r["import_wh"] - prev) // 25)
        print("  #%-4d %s  %9d Wh %s  %s%s %s" % (r["seq"], local(r["boundary"] * 1000), r["import_wh"], d,
                                                 r["time_status"], " LATE" if r["late"] else "", bar))
        prev = r["import_wh"]
    print("  the run's %d quarter hours of the UTC day: %d values (%d late), %d gaps" % (quarters, values, late, gaps))
    print("\n== TAF16 events (device) ==")
    for line in fw.command("events --last 40"):
        print("  " + line)
    gw = rig.gateway_events()
    print("  the gateway holds %d event(s)" % len(gw))
    print("\n== transactions ==")
    for line in fw.command("tx --last 20"):
        print("  " + line)
    st = fw.json("status --json")
    s = st.get("storage", {})
    print("\nflash: %s bytes in %s writes; bus: %s" % (s.get("bytes_written"), s.get("write_ops"),
                                                     json.dumps(st.get("bus", {}).get("errors"))))
    png = os.path.join(rig.workdir, "day.png")
    try:
        import plot_day
        plot_day.render(rig, png, span_ms=(day_ms, day_end))
        print("picture of the day: %s" % png)
    except Exception as e:  # matplotlib missing or no plot tool yet
        print("no picture: %s" % e)


def interactive(fw):
    print("\nconsole (type 'help', Ctrl-D to end):")
    for line in sys.stdin:
        for out in fw.command(line.rstrip("\n"), timeout=120):
            print(out)


if __name__ == "__main__":
    main()
