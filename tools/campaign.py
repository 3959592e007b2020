#!/usr/bin/env python3
"""`make campaign`: a fault campaign over simulated days, then proof that nothing was lost.

The firmware runs on the MicroPython unix port (.mpy, as deployed) against the emulators
(tools/rig.py) on one simulated clock, with a schedule of windows every day and random
backend requests, while faults are injected at random:
  - bus faults: the meter emulator faults RATE of all transactions (drop, delay, corrupt,
    exception, wrong_unit, noise, split);
  - gateway outages (HAN answers 500, drops, hangs or is slow for a while);
  - broker outages (mosquitto stopped, started again);
  - SNTP servers that lie (offset) or fall silent, one at a time;
  - kills of the firmware process (SIGKILL) at random moments; the relay drops out with
    the power, the firmware starts again after a random dead time.
At the end the faults stop, the outbox drains, and the checks run from the device's
journals (its filesystem) and the emulators' own records:
  - every quarter hour from the first to the last is a value or a reported gap, once;
  - every TAF16 event reached the gateway exactly once, in the device's order;
  - every transaction record is there once and the chain verifies (tools/verify_tx.py);
  - no value came from a corrupt frame: every import_wh stored (quarter hours, events,
    transactions) is a value the meter emulator served in an unfaulted answer;
  - the relay rules held within each run of the firmware (min on, min off, cycles/h),
    from the relay line watched by the campaign.
Prints one JSON object with the counts; exit status 0 when lost and duplicated are 0
and no check failed.

    tools/campaign.py [--days 3] [--kills 50] [--speed 1440] [--fault-rate 0.1] [--seed N]
    tools/campaign.py --hours 3 --kills 5        # the short form the tests run
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import bench  # noqa: E402
from rig import day_start_ms  # noqa: E402

H_MS = 3_600_000
QH_S = 900
KINDS = ("drop", "delay", "corrupt", "exception", "wrong_unit", "noise", "split")
BAD_FRAMES = ("corrupt", "wrong_unit", "exception", "drop")  # answers that carry no valid value
RELAY = {"min_on_s": 120, "min_off_s": 120, "max_cycles_per_h": 6}


class RelayWatch:
    """Watches the emulated relay line (root/relay.gpio) and records every change
    with the simulated time and the firmware run it happened in."""

    def __init__(self, path, clock, period_s=0.003):
        self.path = path
        self.clock = clock
        self.period_s = period_s
        self.run_no = 0
        self.changes = []  # (device_ms, on, run_no, cause)
        self.state = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self):
        try:
            with open(self.path) as f:
                return "1" in f.read(1)
        except OSError:
            return False

    def _loop(self):
        while not self._stop.is_set():
            with self._lock:
                on = self._read()
                if on != self.state:
                    self.changes.append((self.clock.now_ms(), on, self.run_no, "firmware"))
                    self.state = on
            time.sleep(self.period_s)

    def power_loss(self):
        # The firmware died: a relay drops out without coil power.
        with self._lock:
            with open(self.path + ".tmp", "w") as f:
                f.write("0")
            os.replace(self.path + ".tmp", self.path)
            if self.state:
                self.changes.append((self.clock.now_ms(), False, self.run_no, "power loss"))
            self.state = False
            self.run_no += 1

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        self.thread.join(2)


def window_plan(day_ms, rnd, n=8):
    # n windows of 20-90 min at random places of the day, not overlapping.
    slot = 24 * H_MS // n
    out = []
    for i in range(n):
        length = rnd.randrange(20, 91) * 60_000
        start = day_ms + i * slot + rnd.randrange(0, slot - length)
        out.append({"id": "d%dw%d" % (day_ms // 86_400_000 % 1000, i), "start": start // 1000,
                    "end": (start + length) // 1000, "on": True})
    return out


def plan_actions(rnd, t0_ms, t1_ms, kills, speed):
    """[(device_ms, what, arg)] sorted: kills, outages and SNTP episodes over the span."""
    span = t1_ms - t0_ms
    hours = span / H_MS
    acts = []
    for _ in range(kills):
        acts.append((t0_ms + rnd.randrange(span), "kill", rnd.uniform(0.05, 0.8)))
    for _ in range(max(1, int(hours / 4))):
        at = t0_ms + rnd.randrange(span)
        acts.append((at, "han", rnd.choice(("500", "drop", "hang", "slow"))))
        acts.append((at + rnd.randrange(5, 120) * 60_000, "han", "ok"))
    for _ in range(max(1, int(hours / 6))):
        at = t0_ms + rnd.randrange(span)
        acts.append((at, "broker", "stop"))
        acts.append((at + rnd.randrange(5, 90) * 60_000, "broker", "start"))
    for _ in range(max(1, int(hours / 4))):
        at = t0_ms + rnd.randrange(span)
        i = rnd.randrange(3)
        mode = rnd.choice(("offset:%d" % (rnd.choice((-1, 1)) * rnd.randrange(20, 600)), "silent", "kod"))
        acts.append((at, "sntp", (i, mode)))
        acts.append((at + rnd.randrange(5, 180) * 60_000, "sntp", (i, "good")))
    for _ in range(max(1, int(hours / 3))):
        at = t0_ms + rnd.randrange(span)
        acts.append((at, "setpoint", rnd.choice(("on 1800", "off 1800", "on 600"))))
    acts.sort(key=lambda a: a[0])
    return acts


def run(a, log):
    rnd = random.Random(a.seed)
    if os.path.isdir(a.workdir):
        shutil.rmtree(a.workdir)
    os.makedirs(a.workdir)
    bench.build_mpy()
    day0 = day_start_ms(a.date)
    span_ms = int(a.hours * H_MS) if a.hours else a.days * 24 * H_MS
    share = a.fault_rate / len(KINDS)
    faults = ["%s:%g" % (k, share) for k in KINDS]
    rig = bench.BenchRig(a.workdir, form="mpy", speed=a.speed, start_ms=day0 - max(120_000, 2000 * a.speed),
                         load="day", mqtt=True, meter_faults=faults, seed=a.seed, lead_ms=800,
                         config={"relay": dict(RELAY), "mqtt": {"meter_period_s": 300}})
    counts = {"kills": 0, "han_outages": 0, "broker_outages": 0, "sntp_episodes": 0, "setpoints": 0,
              "schedules": 0}
    t_wall = time.monotonic()
    rig.start()
    watch = RelayWatch(os.path.join(rig.root, "relay.gpio"), rig.clock).start()
    acts = plan_actions(rnd, day0, day0 + span_ms, a.kills, a.speed)
    days = sorted({(day0 + i * 86_400_000) for i in range(int(span_ms // 86_400_000) + 1)})
    sched = [(d - 30 * 60_000 if d > day0 else rig.clock.now_ms(), "schedule", d) for d in days]
    acts = sorted(acts + sched, key=lambda x: x[0])

    def console(line):
        try:
            return rig.fw.command(line, timeout=30)
        except (TimeoutError, RuntimeError, OSError) as e:
            log("console %r: %s" % (line, e))
            return None

    try:
        for at, what, arg in acts:
            rig.wait_device_ms(at)
            if what == "kill":
                rig.fw.kill()
                watch.power_loss()
                time.sleep(arg)
                rig.start_firmware()
                counts["kills"] += 1
            elif what == "han":
                rig.set_han(arg)
                counts["han_outages"] += arg != "ok"
            elif what == "broker":
                if arg == "stop":
                    rig.broker.stop()
                    counts["broker_outages"] += 1
                else:
                    rig.broker.start()
            elif what == "sntp":
                rig.set_sntp(*arg)
                counts["sntp_episodes"] += arg[1] != "good"
            elif what == "setpoint":
                if console("setpoint " + arg) is not None:
                    counts["setpoints"] += 1
            elif what == "schedule":
                w = window_plan(arg, rnd)
                if console("schedule set '%s'" % json.dumps(w, separators=(",", ":"))) is not None:
                    counts["schedules"] += 1
            if not rig.fw.alive():
                log("firmware died by itself:\n" + "\n".join(rig.fw.transcript[-15:]))
                watch.power_loss()
                rig.start_firmware()
                counts["crashes"] = counts.get("crashes", 0) + 1
        rig.wait_device_ms(day0 + span_ms)
        # the faults end; let the outbox drain and the last quarter hour be taken
        log("faults off; draining")
        rig.set_han("ok")
        for i in range(3):
            rig.set_sntp(i, "good")
        if rig.broker.proc is None:
            rig.broker.start()
        rig.meter_control({"clear": True})
        end_wall = time.monotonic() + 120
        drained = False
        while time.monotonic() < end_wall:
            try:
                st = rig.fw.json("status --json", timeout=20)
            except (AssertionError, TimeoutError, RuntimeError):
                time.sleep(0.5)
                continue
            ob = st.get("outbox") or {}
            lb = (st.get("qh") or {}).get("last_boundary") or 0
            if ob.get("pending") == 0 and lb * 1000 >= day0 + span_ms:
                drained = True
                break
            time.sleep(0.5)
        counts["drained"] = drained
    finally:
        watch.stop()
        rig.stop()
    counts["wall_s"] = round(time.monotonic() - t_wall, 1)
    return rig, watch, counts, day0, span_ms


# -- the checks --------------------------------------------------------------

def check(rig, watch, counts, day0, span_ms, a):
    data = os.path.join(rig.root, "data")
    res = {"speed": a.speed, "simulated_h": span_ms / H_MS, "seed": a.seed}
    res.update(counts)
    problems = []
    # what the meter served, and with which fault
    served_ok, injected = set(), {}
    reads = rig.meter_reads()
    for r in reads:
        f = r.get("fault")
        if f:
            injected[f] = injected.get(f, 0) + 1
        elif r.get("import_wh") is not None:
            served_ok.add(r["import_wh"])
        if f not in BAD_FRAMES and r.get("import_wh") is not None:
            served_ok.add(r["import_wh"])
    res["bus_transactions"] = len(reads)
    res["bus_faults_injected"] = sum(injected.values())
    res["bus_faults_by_kind"] = injected
    res["faults_injected"] = (res["bus_faults_injected"] + counts["han_outages"] + counts["broker_outages"]
                              + counts["sntp_episodes"] + counts["kills"])

    # quarter hours: contiguous, once each, values honest
    qh_recs = [bench.qh_decode(p) for _, p in bench.read_journal_raw(data, "qh")]
    qh = bench.qh_expand(qh_recs)
    bs = [r["boundary"] for r in qh]
    dup = len(bs) - len(set(bs))
    missing = 0
    if bs:
        for i in range(1, len(bs)):
            step = bs[i] - bs[i - 1]
            if step <= 0:
                problems.append("qh out of order at %d" % bs[i])
            elif step != QH_S:
                missing += step // QH_S - 1
        want_last = (day0 + span_ms) // 1000
        if bs[-1] < want_last:
            missing += (want_last - bs[-1]) // QH_S
            problems.append("qh journal ends at %d, before %d" % (bs[-1], want_last))
    values = [r for r in qh if "gap" not in r]
    gaps = [r for r in qh if "gap" in r]
    bad_qh = [r for r in values if r["import_wh"] not in served_ok]
    res["qh"] = {"records": len(qh), "values": len(values), "gaps": len(gaps), "lost": missing, "duplicated": dup,
                 "from_corrupt_frames": len(bad_qh),
                 "gap_reasons": _tally(g["gap"].split(":")[0] for g in gaps)}
    if bad_qh:
        problems.append("qh values not served by the meter: %s" % [r["import_wh"] for r in bad_qh[:5]])

    # TAF16 events: the device's outbox against the gateway's store. The outbox journal
    # drops its oldest segments once they are acknowledged; the acks journal (half as
    # large again) still names those events by journal seq and UUID.
    evs = [(s, json.loads(p)) for s, p in bench.read_journal_raw(data, "outbox")]
    by_seq = {}
    for _, p in bench.read_journal_raw(data, "acks"):
        ack = json.loads(p)
        by_seq[ack["n"]] = ack["r"]["uuid"]
    evicted = sum(1 for n in by_seq if evs and n < evs[0][0])
    dev_dups = 0
    for s, e in evs:
        if by_seq.get(s, e["uuid"]) != e["uuid"]:
            problems.append("event seq %d: acknowledged with another UUID" % s)
        by_seq[s] = e["uuid"]
    dev_uuids = [by_seq[n] for n in sorted(by_seq)]
    dev_dups = len(dev_uuids) - len(set(dev_uuids))
    gw = rig.gateway_events()
    gw_uuids = [e["uuid"] for e in sorted(gw, key=lambda e: e["seq"])]
    ev_lost = [u for u in dev_uuids if u not in set(gw_uuids)]
    ev_dup = (len(gw_uuids) - len(set(gw_uuids))) + dev_dups
    foreign = [u for u in gw_uuids if u not in set(dev_uuids)]
    in_order = [u for u in gw_uuids if u in set(dev_uuids)] == [u for u in dev_uuids if u in set(gw_uuids)]
    bad_ev = [e for _, e in evs if e.get("reading_wh") is not None and e["reading_wh"] not in served_ok]
    res["events"] = {"records": len(dev_uuids), "evicted_after_ack": evicted, "at_gateway": len(gw), "lost": len(ev_lost), "duplicated": ev_dup,
                     "not_from_device": len(foreign), "in_order": in_order,
                     "from_corrupt_frames": len(bad_ev),
                     "kinds": _tally(e.get("kind") for _, e in evs)}
    if not in_order:
        problems.append("events reached the gateway out of order")
    if foreign:
        problems.append("%d events at the gateway that the device does not know" % len(foreign))
    if bad_ev:
        problems.append("event readings not served by the meter: %s" % [e["reading_wh"] for e in bad_ev[:5]])

    # transactions: once each, chain intact
    import verify_tx
    with open(os.path.join(rig.root, "device.key"), "rb") as f:
        key = f.read()
    recs, tx_problems = verify_tx.verify(data, key)
    good = [r for _, r in recs if isinstance(r, dict)]
    pgs = [r.get("pg") for r in good]
    bad_tx = [r for r in good for side in ("begin", "end")
              if (r.get(side) or {}).get("reading_wh") is not None and r[side]["reading_wh"] not in served_ok]
    res["transactions"] = {"records": len(recs), "chain_ok": not tx_problems, "duplicated": len(pgs) - len(set(pgs)),
                           "problems": [list(p) for p in tx_problems[:5]], "from_corrupt_frames": len(bad_tx),
                           "reasons": _tally((r.get("end") or {}).get("reason") for r in good)}
    if tx_problems:
        problems.append("transaction chain: %s" % (tx_problems[:3],))
    if bad_tx:
        problems.append("transaction readings not served by the meter")

    # the relay rules, within each run of the firmware
    forced = [e for _, e in evs if e.get("kind") == "stop" and (" by dso" in e.get("text", "")
                                                               or " by safety" in e.get("text", ""))]
    res["relay"] = relay_rules(watch.changes, a.speed, forced)
    if res["relay"]["violations"]:
        problems.append("relay rules broken: %s" % res["relay"]["violations"][:3])

    res["lost"] = res["qh"]["lost"] + res["events"]["lost"]
    res["duplicated"] = res["qh"]["duplicated"] + res["events"]["duplicated"] + res["transactions"]["duplicated"]
    res["records"] = {"qh": len(qh_recs), "quarter_hours": len(qh), "events": len(dev_uuids), "transactions": len(recs)}
    res["problems"] = problems
    res["ok"] = not problems and res["lost"] == 0 and res["duplicated"] == 0 and counts.get("drained", False)
    return res


def relay_rules(changes, speed, forced):
    # Tolerance: the watcher's sampling (a few real ms) on the simulated clock, plus the
    # controller's one-second step.
    tol = int(0.02 * speed * 1000) + 2000
    v = []
    ons = offs = 0
    by_run = {}
    for t, on, run_no, cause in changes:
        by_run.setdefault(run_no, []).append((t, on, cause))
    for run_no, ch in by_run.items():
        last_on = last_off = None
        on_times = []
        for t, on, cause in ch:
            if cause != "firmware":
                continue  # a power loss is not a switching of the firmware
            if on:
                ons += 1
                if last_off is not None and t - last_off < RELAY["min_off_s"] * 1000 - tol:
                    v.append("run %d: on %d s after off" % (run_no, (t - last_off) // 1000))
                on_times = [x for x in on_times if t - x < H_MS - tol] + [t]
                if len(on_times) > RELAY["max_cycles_per_h"]:
                    v.append("run %d: %d switch-ons within an hour" % (run_no, len(on_times)))
                last_on = t
            else:
                offs += 1
                if last_on is not None and t - last_on < RELAY["min_on_s"] * 1000 - tol:
                    if not any(abs(e["time_ms"] - t) < tol for e in forced):
                        v.append("run %d: off %d s after on" % (run_no, (t - last_on) // 1000))
                last_off = t
    return {"switch_ons": ons, "switch_offs": offs, "runs": len(by_run), "violations": v, "tolerance_ms": tol}


def _tally(items):
    out = {}
    for x in items:
        out[str(x)] = out.get(str(x), 0) + 1
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--hours", type=float, default=None, help="simulate this many hours instead of --days")
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--speed", type=int, default=1440)
    ap.add_argument("--fault-rate", type=float, default=0.10, help="share of bus transactions faulted")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CAMPAIGN_SEED", "14")))
    ap.add_argument("--date", default="2026-11-27")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "campaign-run"))
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, bench._stop_all)

    def log(msg):
        if not a.quiet:
            print("campaign: " + msg, file=sys.stderr, flush=True)

    log("%s at %dx, %d kills, %.0f %% bus faults, seed %d" % (
        "%g h" % a.hours if a.hours else "%d days" % a.days, a.speed, a.kills, a.fault_rate * 100, a.seed))
    rig, watch, counts, day0, span_ms = run(a, log)
    res = check(rig, watch, counts, day0, span_ms, a)
    text = json.dumps(res, sort_keys=True)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    log("faults injected %d (bus %d, kills %d), records %s, lost %d, duplicated %d: %s" % (
        res["faults_injected"], res["bus_faults_injected"], res["kills"], res["records"], res["lost"],
        res["duplicated"], "OK" if res["ok"] else "FAILED: %s" % res["problems"]))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
