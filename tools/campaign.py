#!/usr/bin/env python3
"""`make campaign`: a fault campaign over simulated days, then proof that nothing was lost.

The firmware runs on the MicroPython unix port (.mpy, as deployed) against the emulators
(tools/rig.py) on one simulated clock, with a schedule of windows every day and random
backend requests, while faults are injected at random:
  - bus faults: the meter emulator faults RATE of all transactions (drop, delay, corrupt,
    exception, wrong_unit, noise, split);
  - gateway outages (HAN answers 500, drops, hangs or is slow for a while), and gateways
    that keep connections badly: one closing idle connections early (after 300 real ms
    though it announces 30 s), one whose close crosses the next request (`race`);
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
  - late quarter hours are told apart: a `missed (late)` gap (the boundary passed by
    more than the legal 9 s before its read began) and a value marked late (it arrived
    after B + 9 s), each in a faulted or a fault-free stretch. Boundary B lies in a
    faulted stretch when, in device time:
      bus    a faulted transaction in the meter emulator's log (one line per request,
             with its fault) holds the bus into [B, B + 9 s]: drop, delay, corrupt and
             wrong_unit give no usable answer, so the master waits out its deadline,
             meter.timeout_ms of real time (300 ms: 432 device s, 7 minutes at 1440x,
             so a faulted read is necessarily late); an exception, the busy back-off
             (100 ms real); noise and split, whose frames the parser recovers, nothing
             more; each plus BUS_SLACK_MS real. The boundary's own read faulted is such
             a stretch. So is an unfaulted transaction on which a `delay` fault's late
             answer (DELAY_FAULT_MS after its request) landed while it waited: the log
             shows silence for the deadline after it;
      power  a kill, crash or restart of the firmware in [B - BOOT_MARGIN_MS real, B + 9 s]
             (off, or still booting: boot to first reading is ~0.3 s real);
      clock  an SNTP server lying (offset) at some time in [B - RESYNC_MS, B + 9 s]
             (the clock may be stepped by the lie or back after it until the next
             resync; silent and kod servers step nothing).
    Every other boundary is fault-free, and a late gap there fails the campaign. Late
    values are counted, not failed. The day runs in slow motion around each boundary
    (--slow, as `make sim`: 100x from 0.5 s before to 9.5 s after), so that the legal
    9 s are 90 real ms, not the 6 ms of 1440x that any scheduling hiccup of a loaded
    host (or one TLS handshake computed as a slow gateway answers) takes; the checks
    turn real-time spans into device time with the run's own clock formula.
    Each fault-free late gap names the TAF16 events whose post was under way at B;
  - the relay rules held within each run of the firmware (min on, min off after an
    off and after power-up, cycles/h), from the relay line watched by the campaign;
    each edge is paired with the device's own record of it (the k-th edge of a run
    with the k-th `start by`/`stop by` event of that run, the run's events ending at
    the last seq on flash when it died), and an off edge inside min on is allowed only
    when that stop event names dso (with a §14a limit on record and not ended: a limit
    survives a reboot) or safety (with its fault), and the transaction it ended agrees (ER, EE).
    A power loss (kill) is not a switching of the firmware.
Prints one JSON object with the counts; exit status 0 when lost and duplicated are 0
and no check failed. The workdir keeps what the checks read (RUN_FILE holds what only
the campaign saw: relay edges, run marks, actions), so `--check-only` judges it again.

    tools/campaign.py [--days 3] [--kills 50] [--speed 1440] [--fault-rate 0.1] [--seed N]
    tools/campaign.py --hours 3 --kills 5        # the short form the tests run
    tools/campaign.py --check-only --workdir DIR  # judge a kept run again
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

import bench  # noqa: E402  (puts firmware/ and the shims on the path)
from dicamm.services.loadprofile import TOLERANCE_MS  # noqa: E402
from dicamm.proto.plausibility import NO_POWER_RISE, POWER_STAYS  # noqa: E402
from dicamm.proto.simtime import SimTime, parse_slow  # noqa: E402
from rig import day_start_ms, read_jsonl  # noqa: E402

H_MS = 3_600_000
QH_S = 900
KINDS = ("drop", "delay", "corrupt", "exception", "wrong_unit", "noise", "split")
BAD_FRAMES = ("corrupt", "wrong_unit", "exception", "drop")  # answers that carry no valid value
RELAY = {"min_on_s": 120, "min_off_s": 120, "max_cycles_per_h": 6}
TX_END = {"safety": "A", "dso": "R", "backend": "R", "installer": "L"}  # OCMF TX of the end by stop source (else E)
RUN_FILE = "campaign-run.json"  # what only the campaign saw (relay edges, actions), kept for --check-only
DELAY_FAULT_MS = 1500     # the meter emulator's `delay` fault (its --delay-ms default), real ms
NO_ANSWER = ("drop", "delay", "corrupt", "wrong_unit")
HAN_CONN_FAULTS = ("early", "race")  # han_emu --conn: connections closed early, or across a request  # bus faults after which the master waits out its deadline
BUSY_BACKOFF_MS = 100     # real ms: the master's back-off before repeating a request answered "busy"
BUS_SLACK_MS = 50         # real ms: a faulted transaction's hold beyond that, until the bus is surely free
BOOT_MARGIN_MS = 1000     # real ms after a restart in which the firmware may still be booting
RESYNC_MS = 3_600_000     # device ms: time.resync_s, how long a lie-stepped clock may stay wrong
POST_MARGIN_MS = 200      # real ms: a TAF16 post begun this long before a boundary still runs at it
LATE_GAP = "missed (late)"


class RelayWatch:
    """Watches the emulated relay line (root/relay.gpio) and records every change
    with the simulated time and the firmware run it happened in."""

    def __init__(self, path, clock, period_s=0.003):
        self.path = path
        self.clock = clock
        self.period_s = period_s
        self.run_no = 0
        self.changes = []  # (device_ms, on, run_no, cause): "initial", "firmware", "power loss"
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
                    self.changes.append((self.clock.now_ms(), on, self.run_no,
                                         "initial" if self.state is None else "firmware"))
                    self.state = on
            time.sleep(self.period_s)

    def power_loss(self):
        # The firmware died: a relay drops out without coil power.
        with self._lock:
            on = self._read()
            if on != self.state:  # switched since the last look: still the firmware's edge
                self.changes.append((self.clock.now_ms(), on, self.run_no, "firmware"))
                self.state = on
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
    for i in range(max(1, int(hours / 4)) + 1):
        at = t0_ms + rnd.randrange(span)
        # the first: always a gateway that closes idle connections early
        acts.append((at, "han", "early" if i == 0 else rnd.choice(("500", "drop", "hang", "slow", "early", "race"))))
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
    slow = parse_slow(a.slow)
    rig = bench.BenchRig(a.workdir, form="mpy", speed=a.speed, start_ms=day0 - max(120_000, 2000 * a.speed),
                         load="day", mqtt=True, meter_faults=faults, seed=a.seed, lead_ms=800,
                         slow=slow if slow[0] else None,
                         config={"relay": dict(RELAY), "mqtt": {"meter_period_s": 300}})
    counts = {"kills": 0, "han_outages": 0, "broker_outages": 0, "sntp_episodes": 0, "setpoints": 0,
              "schedules": 0, "han_faults": {}}
    done = []  # (device_ms, what, arg) as carried out, for the checks
    marks = []  # per firmware run: the last TAF16 event seq it wrote (read from flash once it is dead)
    data = os.path.join(rig.root, "data")
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
            done.append((rig.clock.now_ms(), what, arg))
            if what == "kill":
                rig.fw.kill()
                watch.power_loss()
                marks.append(last_event_seq(data))
                time.sleep(arg)
                rig.start_firmware()
                done.append((rig.clock.now_ms(), "restart", None))
                counts["kills"] += 1
            elif what == "han":
                if arg in HAN_CONN_FAULTS:  # the gateway answers, but keeps connections badly
                    rig.set_han("ok", conn=arg, early_ms=300)
                else:
                    rig.set_han(arg)
                counts["han_outages"] += arg != "ok"
                if arg != "ok":
                    counts["han_faults"][arg] = counts["han_faults"].get(arg, 0) + 1
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
                marks.append(last_event_seq(data))
                done.append((rig.clock.now_ms(), "crash", None))
                rig.start_firmware()
                done.append((rig.clock.now_ms(), "restart", None))
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
        # the firmware ends before the watch, so that every edge of the last run is seen
        if rig.fw is not None:
            rig.fw.stop()
        time.sleep(0.05)
        watch.stop()
        marks.append(last_event_seq(data))
        rig.stop()
    counts["wall_s"] = round(time.monotonic() - t_wall, 1)
    sim = rig.clock.sim
    state = {"args": {"speed": a.speed, "seed": a.seed, "slow": a.slow}, "counts": counts, "day0": day0,
             "span_ms": span_ms,
             "clock": [sim.speed, sim.start_ms, sim.epoch_ms, sim.slow, sim.lead_ms, sim.tail_ms],
             "changes": watch.changes, "run_marks": marks, "actions": done,
             "meter": {"timeout_ms": rig.device_config()["meter"]["timeout_ms"],
                       "retries": rig.device_config()["meter"]["retries"], "delay_ms": DELAY_FAULT_MS}}
    with open(os.path.join(a.workdir, RUN_FILE), "w") as f:
        json.dump(state, f)
    return Recorded(a.workdir, state)


# -- the checks --------------------------------------------------------------

class Recorded:
    """A finished campaign as its workdir holds it: the device's filesystem, the
    emulators' logs and RUN_FILE (relay edges, run marks, actions). The checks read
    only this, so `--check-only` judges a kept workdir again."""

    def __init__(self, workdir, state=None):
        self.workdir = os.path.abspath(workdir)
        if state is None:
            with open(os.path.join(self.workdir, RUN_FILE)) as f:
                state = json.load(f)
        self.state = state
        self.root = os.path.join(self.workdir, "device")

    def meter_reads(self):
        return read_jsonl(os.path.join(self.workdir, "meter.log"))

    def gateway_events(self):
        return read_jsonl(os.path.join(self.workdir, "han_store.jsonl"))


def last_event_seq(data):
    # The newest TAF16 event on flash: the outbox journal, or for segments it has
    # dropped after acknowledgement the acks journal, which names them by seq.
    last = 0
    for name in ("outbox", "acks"):
        try:
            for seq, p in bench.read_journal_raw(data, name):
                last = max(last, seq if name == "outbox" else json.loads(p)["n"])
        except (FileNotFoundError, ValueError):
            pass
    return last


def check(rec, a=None):
    st = rec.state
    counts, day0, span_ms = st["counts"], st["day0"], st["span_ms"]
    speed = st["args"]["speed"]
    data = os.path.join(rec.root, "data")
    res = {"speed": speed, "simulated_h": span_ms / H_MS, "seed": st["args"]["seed"],
           "slow": st["args"].get("slow", "0")}
    # the run's clock (a run kept from before slow motion: linear at its speed)
    sim = SimTime(*st["clock"]) if "clock" in st else SimTime(speed, 0, 0)
    res.update(counts)
    problems = []
    # what the meter served, and with which fault
    served_ok, injected = set(), {}
    reads = rec.meter_reads()
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
    gw = rec.gateway_events()
    late = qh_lateness(qh, reads, st["actions"], gw, sim, st["meter"])
    res["qh"] = {"records": len(qh), "values": len(values), "gaps": len(gaps), "lost": missing, "duplicated": dup,
                 "from_corrupt_frames": len(bad_qh),
                 "gap_reasons": _tally(g["gap"].split(":")[0] for g in gaps)}
    res["qh"].update(late)
    if bad_qh:
        problems.append("qh values not served by the meter: %s" % [r["import_wh"] for r in bad_qh[:5]])
    for g in late["fault_free_late_gaps"]:
        posts = "; ".join("TAF16 %r stamped %+d s, at the gateway %+d s" % (e["text"], e["stamped_s"], e["received_s"])
                          for e in g["taf16_posts"])
        problems.append("late gap in a fault-free stretch at %s (%d)%s" % (
            g["utc"], g["boundary"], ": " + posts if posts else ", no TAF16 event posted then"))

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

    # transactions: once each, signatures and pagination intact
    import verify_tx
    pub = verify_tx.key_file_public(os.path.join(rec.root, "device.key"))
    recs, tx_problems = verify_tx.verify(data, pub)
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

    # the relay rules, within each run of the firmware, each edge judged by its own
    # cause: the device's switch event for it and the transaction it ended
    dev_events = device_events(evs, by_seq, gw)
    tx_end = {(r.get("end") or {}).get("uuid"): r["end"]["reason"] for r in good if (r.get("end") or {}).get("uuid")}
    res["relay"] = relay_rules(st["changes"], st["run_marks"], dev_events, tx_end, speed,
                               [t for t, what, _ in st["actions"] if what == "restart"])
    if res["relay"]["violations"]:
        problems.append("relay rules broken: %s" % res["relay"]["violations"][:3])
    if res["relay"]["unmatched"]:
        problems.append("relay edges and the device's switch events disagree: %s" % res["relay"]["unmatched"][:3])

    res["lost"] = res["qh"]["lost"] + res["events"]["lost"]
    res["duplicated"] = res["qh"]["duplicated"] + res["events"]["duplicated"] + res["transactions"]["duplicated"]
    res["records"] = {"qh": len(qh_recs), "quarter_hours": len(qh), "events": len(dev_uuids), "transactions": len(recs)}
    res["problems"] = problems
    res["ok"] = not problems and res["lost"] == 0 and res["duplicated"] == 0 and counts.get("drained", False)
    return res


def device_events(outbox, by_seq, gw):
    """[(seq, event)] every TAF16 event the device wrote, in its order: from the outbox
    journal ([(seq, event)]), and for the segments it dropped once they were
    acknowledged, from the acks journal (by_seq: seq -> UUID) with the text the gateway
    stored under that UUID (the device sent it; the checks above hold the gateway to
    exactly the device's events)."""
    texts = {e["uuid"]: e.get("text") for e in gw}
    kept = dict(outbox)
    return [(n, kept[n] if n in kept else {"uuid": by_seq[n], "text": texts.get(by_seq[n])}) for n in sorted(by_seq)]


# -- quarter hours that came late ----------------------------------------------

def device_after(sim, t_ms, real_ms):
    """Device time real_ms of real time after (negative: before) device time t_ms, with the
    run's clock formula: in slow motion a real span covers fewer device ms than at speed.
    One real ms more, so that the rounding down of SimTime.real_ms never shortens a span."""
    return sim.device_ms(sim.real_ms(t_ms) + real_ms + (1 if real_ms >= 0 else -1))


def qh_lateness(qh, reads, actions, gw, sim, meter):
    """Late quarter hours (`missed (late)` gaps, values later than B + 9 s) by the
    stretch they fell in: faulted (bus, power, clock: the module's docstring defines
    them) or fault-free. The fault-free late gaps come with the TAF16 events whose post
    was under way at the boundary (stamped to received at the gateway)."""
    tol = TOLERANCE_MS
    timeout = meter["timeout_ms"]
    lands = sorted(device_after(sim, r["t_ms"], meter["delay_ms"]) for r in reads if r.get("fault") == "delay")
    bus = []
    for k, r in enumerate(reads):
        f, t = r.get("fault"), r["t_ms"]
        nxt = reads[k + 1]["t_ms"] if k + 1 < len(reads) else t  # the last one: no silence seen after it
        if f in NO_ANSWER:
            bus.append((t, device_after(sim, t, timeout + BUS_SLACK_MS)))
        elif f == "exception":
            bus.append((t, device_after(sim, t, BUSY_BACKOFF_MS + BUS_SLACK_MS)))
        elif f:
            bus.append((t, device_after(sim, t, BUS_SLACK_MS)))
        else:
            end = device_after(sim, t, timeout)
            if nxt - t >= (end - t) * 9 // 10 and any(t <= x <= end for x in lands):
                # a late answer spoilt it: the master waited out its deadline
                bus.append((t, device_after(sim, t, timeout + BUS_SLACK_MS)))
    bus.sort()
    power = sorted(t for t, what, _ in actions if what in ("kill", "crash", "restart"))
    lies, begun = [], {}
    for t, what, arg in actions:
        if what == "sntp":
            i, mode = arg
            if mode.startswith("offset") and i not in begun:
                begun[i] = t
            elif mode == "good" and i in begun:
                lies.append((begun.pop(i), t))
    lies += [(t, float("inf")) for t in begun.values()]

    def causes(b):
        c = []
        if any(s <= b + tol and e >= b for s, e in bus):
            c.append("bus")
        if any(device_after(sim, b, -BOOT_MARGIN_MS) <= t <= b + tol for t in power):
            c.append("power")
        if any(s <= b + tol and e + RESYNC_MS >= b for s, e in lies):
            c.append("clock")
        return c

    def posts(b):
        lo = device_after(sim, b, -POST_MARGIN_MS)
        out = []
        for e in gw:
            sent, got = e["timestamp"] * 1000, e["time"] * 1000
            if sent <= b + tol and got >= lo:
                out.append({"text": e["text"], "stamped_s": (sent - b) // 1000, "received_s": (got - b) // 1000})
        return out

    stretches = {"fault_free": 0, "faulted": 0, "by_cause": {"bus": 0, "power": 0, "clock": 0}}
    out = {"values": {"faulted": 0, "fault_free": 0}, "gaps": {"faulted": 0, "fault_free": 0}}
    free_gaps = []
    for r in qh:
        b = r["boundary"] * 1000
        c = causes(b)
        stretches["faulted" if c else "fault_free"] += 1
        for x in c:
            stretches["by_cause"][x] += 1
        if "gap" in r:
            if not r["gap"].startswith(LATE_GAP):
                continue
            what = "gaps"
        elif r["delay_ms"] > tol:
            what = "values"
        else:
            continue
        out[what]["faulted" if c else "fault_free"] += 1
        if what == "gaps" and not c:
            free_gaps.append({"boundary": r["boundary"], "taf16_posts": posts(b),
                              "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["boundary"]))})
    return {"late_values": out["values"]["faulted"] + out["values"]["fault_free"],
            "late_gaps": out["gaps"]["faulted"] + out["gaps"]["fault_free"],
            "late": out, "stretches": stretches, "fault_free_late_gaps": free_gaps}


# -- the relay rules -------------------------------------------------------------

def switch_kind(text):
    # "start by SRC: why" / "stop by SRC: why" -> ("start"|"stop", SRC); else (None, None)
    for kind in ("start", "stop"):
        head = kind + " by "
        if text and text.startswith(head):
            return kind, text[len(head):].split(":")[0]
    return None, None


def relay_rules(changes, marks, events, tx_end, speed, restarts):
    """Min on, min off and the cycle cap within each run of the firmware, from the relay
    line the campaign watched. Each edge is paired with the device's own record of it:
    the firmware writes the output, then the switch event (`start by SRC` / `stop by
    SRC`), so within one run the k-th edge is the k-th switch event of that run (the
    events a run wrote end at its mark, read from flash when it died); only its last
    edge may lack one, when the power went between the two. An off edge inside min on
    is allowed only when its stop event names dso or safety and the device's records
    back it: safety with its fault named and the transaction ended EE, dso with a §14a
    limit on record and not ended (in this run or before: it is restored after a
    reboot, and its end is an event too), the transaction ended ER. A power loss
    (kill) is not a switching of the firmware; power-up counts as a switch-off."""
    tol = int(0.02 * speed * 1000) + 2000
    v, unmatched, forced, causes = [], [], [], {}
    ons = offs = missing = 0
    by_run = {}
    for t, on, run_no, cause in changes:
        by_run.setdefault(run_no, []).append((t, on, cause))
    runs_n = max(by_run) + 1 if by_run else 0
    for run_no in range(runs_n):
        lo = marks[run_no - 1] if 0 < run_no <= len(marks) else 0
        hi = marks[run_no] if run_no < len(marks) else float("inf")
        evs = [(n, e) for n, e in events if lo < n <= hi]
        sw = [(n, e) + switch_kind(e.get("text")) for n, e in evs]
        sw = [x for x in sw if x[2]]
        limits = [(n, not (e.get("text") or "").startswith("14a limit ended")) for n, e in events
                  if (e.get("text") or "").startswith("14a limit") and n <= hi]
        edges, state = [], False
        for t, on, cause in by_run.get(run_no, []):
            if cause == "firmware" and on != state:
                edges.append((t, on))
            state = on if cause == "firmware" else False
        if len(sw) > len(edges):
            unmatched.append("run %d: %d switch events for %d relay edges" % (run_no, len(sw), len(edges)))
        last_on = last_off = None
        up = restarts[run_no - 1] if 0 < run_no <= len(restarts) else None
        on_times = []
        for k, (t, on) in enumerate(edges):
            ev = sw[k] if k < len(sw) else None
            if ev is None:
                if k != len(edges) - 1:
                    unmatched.append("run %d: relay %s at %d without a switch event" % (run_no, "on" if on else "off", t))
                else:
                    missing += 1  # the power went between the output and the event
            elif ev[2] != ("start" if on else "stop"):
                unmatched.append("run %d: relay %s at %d, but the device's event %d is %r" % (
                    run_no, "on" if on else "off", t, ev[0], ev[1].get("text")))
                ev = None
            if on:
                ons += 1
                if last_off is not None and t - last_off < RELAY["min_off_s"] * 1000 - tol:
                    v.append("run %d: on %d s after off" % (run_no, (t - last_off) // 1000))
                elif last_off is None and up is not None and t - up < RELAY["min_off_s"] * 1000 - tol:
                    v.append("run %d: on %d s after power-up" % (run_no, (t - up) // 1000))
                on_times = [x for x in on_times if t - x < H_MS - tol] + [t]
                if len(on_times) > RELAY["max_cycles_per_h"]:
                    v.append("run %d: %d switch-ons within an hour" % (run_no, len(on_times)))
                last_on = t
                continue
            offs += 1
            text = ev[1].get("text") if ev else None
            src = ev[3] if ev else None
            causes[src or "unknown"] = causes.get(src or "unknown", 0) + 1
            reason = tx_end.get(ev[1].get("uuid")) if ev else None
            if reason is not None and reason != TX_END.get(src, "E"):
                v.append("run %d: %r ended its transaction %s" % (run_no, text, reason))
            if last_on is not None and t - last_on < RELAY["min_on_s"] * 1000 - tol:
                why = forced_why(src, text, ev[0] if ev else None, limits)
                if why is None:
                    v.append("run %d: off %d s after on (%s)" % (run_no, (t - last_on) // 1000,
                                                                 text or "no stop event on the device"))
                else:
                    forced.append({"run": run_no, "on_s": (t - last_on) // 1000, "event": text,
                                   "tx_end": reason, "why": why})
            last_off = t
    return {"switch_ons": ons, "switch_offs": offs, "runs": runs_n, "violations": v, "tolerance_ms": tol,
            "off_causes": causes, "forced_inside_min_on": forced, "edges_without_event": missing,
            "unmatched": unmatched}


def forced_why(src, text, seq, limits):
    # Why an off edge inside min on is allowed, from the device's records, or None.
    if src == "safety" and text and (": fault " + NO_POWER_RISE in text or ": fault " + POWER_STAYS in text):
        return "safety: " + text.split(": fault ")[1]
    if src == "dso":
        raised = [ok for n, ok in limits if n < seq]
        if raised and raised[-1]:
            return "dso: 14a limit on record"
    return None


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
    ap.add_argument("--slow", default="100:500:9500",
                    help="slow motion SPEED:LEAD_MS:TAIL_MS around each quarter hour, as make sim (0: none)")
    ap.add_argument("--fault-rate", type=float, default=0.10, help="share of bus transactions faulted")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CAMPAIGN_SEED", "14")))
    ap.add_argument("--date", default="2026-11-27")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "campaign-run"))
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--check-only", action="store_true",
                    help="judge the campaign kept in --workdir again, without running it")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, bench._stop_all)

    def log(msg):
        if not a.quiet:
            print("campaign: " + msg, file=sys.stderr, flush=True)

    if a.check_only:
        rec = Recorded(a.workdir)
    else:
        log("%s at %dx (slow motion %s around each boundary), %d kills, %.0f %% bus faults, seed %d" % (
            "%g h" % a.hours if a.hours else "%d days" % a.days, a.speed, a.slow, a.kills, a.fault_rate * 100,
            a.seed))
        rec = run(a, log)
    res = check(rec)
    text = json.dumps(res, sort_keys=True)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    q, rl = res["qh"], res["relay"]
    log("quarter hours %d = %d values (%d late: %d faulted, %d fault-free) + %d gaps %s; "
        "late gaps %d: %d in faulted stretches, %d in fault-free ones (of %d fault-free boundaries)" % (
            q["records"], q["values"], q["late_values"], q["late"]["values"]["faulted"],
            q["late"]["values"]["fault_free"], q["gaps"], q["gap_reasons"], q["late_gaps"],
            q["late"]["gaps"]["faulted"], q["late"]["gaps"]["fault_free"], q["stretches"]["fault_free"]))
    log("relay: %d on, %d off by %s; inside min on by dso/safety: %d; violations %d" % (
        rl["switch_ons"], rl["switch_offs"], rl["off_causes"], len(rl["forced_inside_min_on"]), len(rl["violations"])))
    log("faults injected %d (bus %d, kills %d), records %s, lost %d, duplicated %d: %s" % (
        res["faults_injected"], res["bus_faults_injected"], res["kills"], res["records"], res["lost"],
        res["duplicated"], "OK" if res["ok"] else "FAILED: %s" % res["problems"]))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
