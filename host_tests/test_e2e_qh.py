# End to end: legal time and the quarter-hour load profile through the whole
# firmware on the MicroPython unix port, against the bench rig (meter emulator,
# three SNTP emulators, gateway) on one fast simulated clock.
#
#  - a simulated DST day (2026-10-25, 25 h) gives 100 consecutive UTC values;
#    every stored value is one the meter emulator really served, read within
#    the legal 9 s after its boundary, and the differences are the emulator's
#    integrated energy; the delay distribution is printed;
#  - the spring-forward day 2026-03-29 has 92 quarter hours (window around
#    the switch through the firmware, the count from `qh day`);
#  - kill -9 at 20+ random moments: nothing committed lost or duplicated,
#    sequence numbers consecutive, every boundary a value or a reported gap,
#    no invented values;
#  - time status U / I / S, the 3600 s liar outvoted, S expiring on the drift
#    budget, and what the firmware says when all sources move together.
import json
import os
import random
import sys
import time

import pytest

from conftest import TOOLS

sys.path.insert(0, TOOLS)
from emu_load import Day, Integrator, WMS_PER_WH  # noqa: E402
from rig import Rig, day_start_ms  # noqa: E402
from waiting import wait_until

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

QH = 900_000
TOL = 9_000
HOUR = 3_600_000
QH_READ = (4, 0x48, 4)
SLOW = (40, 1000, 10000)  # slow motion at each boundary: 40x from 1 s before to 10 s after  # the load profile's read: import + export registers of the SDM630


def _wait(pred, timeout, what, interval=0.1):
    return wait_until(pred, timeout, interval, what)


def _qh_reads(rig):
    return [r for r in rig.meter_reads() if (r["function"], r["address"], r["count"]) == QH_READ]


def _all_qh(fw):
    return fw.json("qh --json --last 10000", timeout=60)["qh"]


def _served_for(value, reads, speed):
    # The emulator read that produced this stored value: the load profile's
    # read whose emulator time lies in [request sent, answer] of the record,
    # widened each side by one device clock quantum (`speed` ms) and by the
    # uncertainty of legal time the firmware stored with the value: at 1440x a
    # sync's round trip of 3 real ms is 4.3 device s, so the stamp is only
    # known to +-2 s, and the firmware says so. (A value stamped I or U has no
    # bound; on the rig its clock runs on from the sim clock, within a quantum.)
    t = value["time_ms"]
    q = t - value["read_ms"]
    slack = speed + (value["error_ms"] if value["time_status"] == "S" else 0)
    hits = [r for r in reads if q - slack <= r["t_ms"] <= t + slack]
    return hits


def _percentiles(xs):
    xs = sorted(xs)
    if not xs:
        return {}
    pick = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
    return {"n": len(xs), "min": xs[0], "p50": pick(0.5), "p90": pick(0.9), "max": xs[-1]}


def _check_chain(rows):
    # Sequence numbers consecutive; boundaries consecutive quarter hours,
    # each covered exactly once by a value or a gap record.
    for a, b in zip(rows, rows[1:]):
        assert b["seq"] == a["seq"] + 1, (a, b)
        last_a = a["boundary"] + (a.get("missed", 1) - 1) * 900
        assert b["boundary"] == last_a + 900, ("boundary not covered exactly once", a, b)


# --------------------------------------------------------------------------
def test_dst_day_100_values_match_emulator(tmp_path, capsys):
    # 2026-10-25 local: from 2026-10-24T22:00Z to 2026-10-25T23:00Z (25 hours).
    # The day runs at 1440x, in slow motion (40x) from 1 s before to 10 s after
    # each boundary: the legal 9 s after a boundary (1 % of the 15-min period,
    # as metering law allows) last 225 real ms, so no host load can make a read
    # late; every boundary is a value, none late, none a gap.
    speed = 1440
    day0 = day_start_ms("2026-10-25")
    first = day0 - 2 * HOUR
    start = first - HOUR          # the firmware is up long before the first boundary of the day
    end = day0 + 23 * HOUR + 30_000
    rig = Rig(tmp_path / "rig", speed=speed, start_ms=start, load="day", import_wh=2_000_000,
              slow=SLOW).start()
    try:
        assert rig.ready["qh"]["next_boundary"] * 1000 <= first, ("firmware up too late", rig.ready["qh"])
        rig.wait_device_ms(end)
        fw = rig.fw
        rows = _all_qh(fw)
        day = fw.json("qh day 2026-10-25 --json", timeout=60)
        after = fw.json("qh day 2026-10-26 --json", timeout=60)
        text = fw.command("qh day 2026-10-25", timeout=60)
        csv = fw.command("qh export --last 3")
        st = fw.json("status --json")
    finally:
        rig.stop()
    reads = _qh_reads(rig)
    _check_chain(rows)
    assert not [r for r in rows if "gap" in r], [r for r in rows if "gap" in r]
    rows = [r for r in rows if r["boundary"] * 1000 >= first]

    # 101 consecutive UTC quarter hours: 22:00Z on the 24th .. 23:00Z on the 25th
    assert [r["boundary"] * 1000 for r in rows] == [first + k * QH for k in range(101)], rows[:3]
    values = rows

    # the local day: 100 quarter hours; the hour 02:00-03:00 shown twice, CEST then CET
    assert day["expected"] == 100 and day["values"] == 100 and day["gaps"] == 0 and day["not_recorded"] == 0, \
        {k: day[k] for k in ("expected", "values", "gaps", "not_recorded")}
    assert day["values"] == len([r for r in values if day0 - 2 * HOUR <= r["boundary"] * 1000 < day0 + 23 * HOUR])
    locs = [r["local"] for r in day["qh"]]
    assert len(locs) == 100 and len(set(locs)) == 100
    assert locs[0] == "2026-10-25T00:00:00+02:00" and locs[-1] == "2026-10-25T23:45:00+01:00"
    assert locs.index("2026-10-25T02:45:00+02:00") + 1 == locs.index("2026-10-25T02:00:00+01:00")
    assert day["legal"] == sum(1 for r in day["qh"] if "gap" not in r and r["time_status"] == "S" and not r["late"])
    head = "100 quarter hours; %d values (%d legally timed), %d gaps, 0 not recorded" % (
        day["values"], day["legal"], day["gaps"])
    assert head in text[0], text[:2]
    assert sum("T02:15:00" in line for line in text) == 2, "the repeated hour is not shown twice"
    # a normal local day has 96; the run saw only its first boundary
    assert after["expected"] == 96 and after["values"] + after["gaps"] == 1 and after["not_recorded"] == 95, after
    assert csv[0].startswith("seq,boundary_utc,boundary_local,import_wh") and len(csv) == 4, csv

    # every value: really served by the emulator, stamped S; within the
    # tolerance after its boundary unless marked late; the differences are
    # the integrated load
    dev_delays, emu_delays, real_delays = [], [], []
    served = {}
    for r in values:
        b = r["boundary"] * 1000
        hits = _served_for(r, reads, speed)
        assert len(hits) == 1, ("no single emulator read for the stored value", r, hits)
        e = hits[0]
        assert e["import_wh"] == r["import_wh"] and e["export_wh"] == r["export_wh"], (r, e)
        assert r["delay_ms"] >= 0 and e["t_ms"] >= b and r["late"] == (r["delay_ms"] > TOL), (r, e)
        if not r["late"]:
            assert e["t_ms"] - b <= TOL, ("emulator served outside the tolerance", r, e)
        assert r["time_status"] == "S", r
        dev_delays.append(r["delay_ms"])
        emu_delays.append(e["t_ms"] - b)
        real_delays.append(r["delay_ms"] / speed)
        served[r["boundary"]] = (r, e)
    assert not [r for r in values if r["late"]]
    load = Day()
    pairs = 0
    for bnd in sorted(served):
        if bnd + 900 not in served:
            continue
        (ra, a), (rb, b) = served[bnd], served[bnd + 900]
        integ = Integrator(load, a["t_ms"])
        integ.advance(b["t_ms"])
        diff = rb["import_wh"] - ra["import_wh"]
        # the registers hold whole Wh (floored), so the difference of two
        # readings is within one Wh of the exact integral between the reads
        assert (diff - 1) * WMS_PER_WH < integ.import_wms < (diff + 1) * WMS_PER_WH, (ra, rb, integ.import_wms)
        pairs += 1
    assert pairs >= 94
    by_b = {r["boundary"]: r for r in day["qh"]}
    for bnd, r in by_b.items():
        if "import_delta_wh" in r and bnd - 900 in served:   # (the day's first: against 21:45Z)
            assert r["import_delta_wh"] == r["import_wh"] - served[bnd - 900][0]["import_wh"]
    assert st["qh"]["gaps"] == 0 and st["qh"]["late"] == 0
    with capsys.disabled():
        print("\n[qh at speed %d, %s around boundaries: %d boundaries, %d values]" % (
            speed, "%dx from -%d ms to +%d ms" % SLOW, len(rows), len(values)))
        print("  delay after boundary, firmware stamp, device ms: %s" % _percentiles(dev_delays))
        print("  delay after boundary, emulator read, device ms:  %s" % _percentiles(emu_delays))
        print("  delay after boundary, firmware stamp, real ms:   %s" % _percentiles(real_delays))
        print("  read duration (request to answer), device ms:   %s" % _percentiles([r["read_ms"] for r in values]))


def test_spring_forward_day_has_92(tmp_path):
    # Through the switch 2026-03-29 01:00Z (02:00 CET -> 03:00 CEST), in slow motion
    # at the boundaries (see the DST day): every boundary from the firmware's first
    # one is a value.
    speed = 720
    day0 = day_start_ms("2026-03-29")
    # (the rig's clock reaches start_ms 1.5 real s after it is made: 18 device min)
    rig = Rig(tmp_path / "rig", speed=speed, start_ms=day0 + 5 * 60_000, load="constant:1200", slow=SLOW).start()
    try:
        first_ms = rig.ready["qh"]["next_boundary"] * 1000
        assert first_ms <= day0 + 45 * 60_000, ("firmware up too late", rig.ready["qh"])
        rig.wait_device_ms(day0 + 90 * 60_000 + 20_000)
        day = rig.fw.json("qh day 2026-03-29 --json", timeout=60)
        text = rig.fw.command("qh day 2026-03-29", timeout=60)
    finally:
        rig.stop()
    assert day["expected"] == 92
    locs = [r["local"] for r in day["qh"]]
    # from the firmware's first boundary every quarter hour through the switch
    # (01:45 CET is followed by 03:00 CEST)
    every = ["2026-03-29T01:00:00+01:00", "2026-03-29T01:15:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T01:45:00+01:00",
             "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00", "2026-03-29T03:30:00+02:00"]
    # The firmware may record a boundary before its console first answers (`ready`):
    # its values start at that boundary or earlier, and none is missing after it.
    assert locs and locs[0] in every, (locs, first_ms)
    start = every.index(locs[0])
    assert start <= (first_ms - day0) // QH and locs == every[start:], (locs, first_ms)
    assert day["values"] == len(locs) and day["gaps"] == 0 and day["not_recorded"] == 92 - len(locs), day
    # 1200 W over 15 minutes is 300 Wh, across the switch as anywhere
    # (registers hold whole Wh and each read lands up to a second late: +-1 Wh)
    deltas = [r["import_delta_wh"] for r in day["qh"] if "import_delta_wh" in r]
    assert len(deltas) == len(locs) - 1 and all(abs(d - 300) <= 1 for d in deltas), day["qh"]
    assert any("03:00:00+02:00 (01:00Z)" in line for line in text), text


# --------------------------------------------------------------------------
def test_power_cut_at_random_moments(tmp_path, capsys):
    speed = 1440
    rnd = random.Random(int(os.environ.get("QH_CUT_SEED", "3141")))
    start = day_start_ms("2026-06-01") + 7 * HOUR - 30_000
    rig = Rig(tmp_path / "rig", speed=speed, start_ms=start, load="day", slow=SLOW).start()
    seen = {}      # seq -> record, every one read back from a running firmware
    down = []      # (device ms killed, device ms restarted)
    cuts = 0
    try:
        fw = rig.fw
        while cuts < 21:
            if rnd.random() < 0.5:
                # look first (what we see is committed), then cut a bit later
                try:
                    for r in fw.json("qh --json --last 40", timeout=30)["qh"]:
                        old = seen.setdefault(r["seq"], r)
                        assert old == r, ("a committed record changed", old, r)
                except RuntimeError:
                    pass  # not up yet; cut anyway
            time.sleep(rnd.uniform(0.05, 2.0))
            killed = rig.device_now_ms()
            fw.kill()
            cuts += 1
            time.sleep(rnd.uniform(0.0, 0.6))
            restarted = rig.device_now_ms()
            fw = rig.restart_firmware(kill=True, wait_ready=False)  # the next cut may hit the boot
            down.append((killed, restarted))
        rig.wait_device_ms(rig.device_now_ms() + 2 * QH)
        rows = _all_qh(fw)
        st = fw.json("status --json")
    finally:
        rig.stop()
    reads = _qh_reads(rig)

    by_seq = {r["seq"]: r for r in rows}
    for seq, r in seen.items():
        assert by_seq.get(seq) == r, ("committed record lost or changed", r, by_seq.get(seq))
    assert rows[0]["seq"] == 1 and st["storage"]["journals"]["qh"]["evicted"] == 0
    _check_chain(rows)
    values = [r for r in rows if "gap" not in r]
    gaps = [r for r in rows if "gap" in r]
    assert len(set(r["boundary"] for r in values)) == len(values)
    for r in values:
        hits = _served_for(r, reads, speed)
        assert any(h["import_wh"] == r["import_wh"] and h["export_wh"] == r["export_wh"] for h in hits), \
            ("value the emulator never served", r, hits)
        assert r["delay_ms"] >= 0 and r["late"] == (r["delay_ms"] > TOL)
        # the firmware was running when it took the value
        assert not any(k < r["time_ms"] - r["read_ms"] and r["time_ms"] < w for k, w in down), r
    # every boundary whose whole tolerance passed while the firmware was dead is a gap
    # (one that restarts within the 9 s after a boundary may still read it in time:
    # the check above says it was running when it did)
    value_b = set(r["boundary"] * 1000 for r in values)
    first, last = rows[0]["boundary"] * 1000, rows[-1]["boundary"] * 1000
    dead_boundaries = 0
    for k, w in down:
        b = (k // QH + 1) * QH
        while b + TOL < w:
            if first <= b <= last:
                assert b not in value_b, ("value invented for a boundary while the device was off", b)
                dead_boundaries += 1
            b += QH
    assert dead_boundaries == 0 or gaps, "boundaries passed while off but no gap reported"
    assert all(g["gap"] in ("device off", "clock stepped", "missed (late)") or g["gap"].startswith("meter")
               for g in gaps), gaps
    assert len(values) >= 20
    with capsys.disabled():
        print("\n[power cut] %d cuts, %d records (%d values, %d gap records covering %d quarter hours), "
              "%d boundaries passed while off, %d records checked across restarts" % (
                  cuts, len(rows), len(values), len(gaps), sum(g["missed"] for g in gaps), dead_boundaries,
                  len(seen)))
        print("  delays (device ms) %s; late %d" % (_percentiles([r["delay_ms"] for r in values]),
                                                   sum(r["late"] for r in values)))


# --------------------------------------------------------------------------
def _time(fw):
    lines = fw.command("time --json")
    line = [x for x in lines if x.startswith("{")][0]
    return line, json.loads(line)


def _time_between(rig, fw, offset_ms=0):
    # `time --json`, checked against the rig's clock read before and after the
    # command: legal time must lie in that bracket (shifted by offset_ms, when the
    # sources lie together), widened only by the firmware's own error bound.
    # The bracket is what a round trip through the pipes takes, at any clock speed.
    before = rig.device_now_ms()
    line, t = _time(fw)
    after = rig.device_now_ms()
    err = t.get("error_ms") or 0
    assert before + offset_ms - err <= t["unix_ms"] <= after + offset_ms + err, (before, t, after)
    return line, t


def test_time_status_through_the_firmware(tmp_path):
    speed = 300
    start = day_start_ms("2026-11-03") + 10 * HOUR - 90_000
    cfg = {"time": {"retry_s": 15, "resync_s": 16, "timeout_ms": 400, "samples": 2,
                    "max_drift_ms": 100, "drift_ppm": 100}}  # S lasts 1000 s without a sync
    rig = Rig(tmp_path / "rig", speed=speed, start_ms=start, load="constant:800",
              sntp=("silent", "silent", "silent"), config=cfg, han=None).start()
    try:
        fw = rig.fw
        # 1. no source answers: U everywhere, also on the quarter-hour value
        line, t = _time_between(rig, fw)   # never synchronised: the free-running clock itself
        assert t["status"] == "U" and t["source"] is None and t["age_s"] is None
        for key in ("unix", "status", "source", "offset_ms", "delay_ms", "age_s"):
            assert key in t, key
        assert '"unix": %d.%03d' % (t["unix_ms"] // 1000, t["unix_ms"] % 1000) in line, line
        fw.wait_for("meter read --json", lambda d: d.get("import_wh") is not None, timeout=30)
        assert fw.json("meter read --json")["time_status"] == "U"
        qh = fw.wait_for("qh --json", lambda d: d["qh"], timeout=60)["qh"]
        assert qh[0]["time_status"] == "U" and "import_wh" in qh[0]
        assert "not legally timed" in " ".join(fw.command("qh"))

        # 2. set by hand: informative
        set_ms = day_start_ms("2026-11-03") + 10 * HOUR + 5 * 60_000
        before = rig.device_now_ms()
        out = fw.command("time set 2026-11-03T10:05:00Z")
        assert "status I" in out[0], out
        line, t = _time(fw)
        assert t["status"] == "I" and t["source"] == "manual" and t["manual"]
        # from the set on, the clock runs on from 10:05:00 (it is shown with whole seconds)
        assert set_ms <= t["unix_ms"] <= set_ms + rig.device_now_ms() - before + 1000, (t, before)
        fw.wait_for("meter read --json", lambda d: d["time_status"] == "I", timeout=30)

        # 3. the gateway (preferred source) is 3600 s off, two servers are good
        rig.set_sntp(0, "offset:3600")
        rig.set_sntp(1, "good")
        rig.set_sntp(2, "good")
        # (the emulators take up their new modes on their own time: wait until the firmware
        # has synchronised with all three answering, not just for the first S)
        gw = rig.device_config()["time"]["gateway"]
        t = fw.wait_for("time --json", lambda d: d["status"] == "S" and d["servers"].get(gw, {}).get("status")
                        == "rejected", timeout=60)
        reason = t["servers"][gw]["reason"]
        assert reason.startswith("disagrees with majority by "), reason
        # (offsets are known to half a round trip; at 300x a real ms is 300 device ms)
        assert abs(int(reason.split()[4]) - 3_600_000) < 60_000, reason
        assert t["source"] != gw and abs(t["offset_ms"]) < 60_000 and t["delay_ms"] is not None
        assert t["age_s"] is not None and t["age_s"] >= 0 and t["s_left_s"] > 0
        line, t = _time_between(rig, fw)   # corrected to the good majority, within its error bound
        assert t["status"] == "S" and t["suspect_step"] is None
        fw.wait_for("meter read --json", lambda d: d["time_status"] == "S", timeout=30)

        # 4. all sources silent: S falls when the drift budget is used up
        for i in range(3):
            rig.set_sntp(i, "silent")
        t = fw.wait_for("time --json", lambda d: d["status"] != "S", timeout=60)
        assert t["status"] == "U" and t["age_s"] * 1000 >= 100 * 1_000_000 // 100 - 1000
        fw.wait_for("meter read --json", lambda d: d["time_status"] == "U", timeout=30)

        # 5. good again, then all three move together by +3600 s: no vote can
        # see it, but a step far beyond the drift budget while S is reported,
        # and the skipped quarter hours are a gap "clock stepped", not values
        for i in range(3):
            rig.set_sntp(i, "good")
        fw.wait_for("time --json", lambda d: d["status"] == "S", timeout=60)
        before = fw.json("qh --json")["next_seq"]
        for i in range(3):
            rig.set_sntp(i, "offset:3600")
        t = fw.wait_for("time --json", lambda d: d.get("suspect_step"), timeout=60)
        assert t["status"] == "S" and abs(t["suspect_step"]["by_ms"] - 3_600_000) < 60_000
        _time_between(rig, fw, offset_ms=3_600_000)
        human = " ".join(fw.command("time"))
        assert "WARNING: clock stepped by" in human, human
        rows = fw.wait_for("qh --json --last 20",
                           lambda d: any(r["seq"] >= before and r.get("gap") == "clock stepped" for r in d["qh"]),
                           timeout=60)["qh"]
        g = [r for r in rows if r["seq"] >= before and r.get("gap") == "clock stepped"][0]
        assert g["missed"] >= 3, g
        _check_chain([r for r in rows if r["seq"] >= before])
    finally:
        rig.stop()


def test_local_day_helpers():
    # The unit functions behind `qh day` and `time set` (CPython).
    from dicamm.proto import localtime as L
    assert [L.quarters_in_local_day(2026, 3, 29), L.quarters_in_local_day(2026, 10, 25),
            L.quarters_in_local_day(2026, 11, 3)] == [92, 100, 96]
    assert L.unix_from_civil(2026, 10, 25, 1, 0, 0) * 1000 == L.dst_range_ms(2026)[1]
    assert L.parse_date("2026-02-28") == (2026, 2, 28)
    for bad in ("2026-02-29", "2026-13-01", "2026-1-1", "20260101xx"):
        with pytest.raises(ValueError):
            L.parse_date(bad)
    assert L.local_hm(L.dst_range_ms(2026)[0]) == "03:00+02:00"
    assert L.local_hm(L.dst_range_ms(2026)[0] - 1) == "01:59+01:00"
