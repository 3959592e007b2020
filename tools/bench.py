#!/usr/bin/env python3
"""`make bench`: what the firmware costs, measured in one run and printed as ONE JSON object.

The firmware runs on the MicroPython unix port against the emulators (tools/rig.py):
  1. the day: one simulated UTC day with the meter emulator's wire timing at 9600 baud,
     MQTT online, 8 schedule windows (8 transactions); from it the quarter-hour delays,
     the TAF16 event latencies, flash bytes and writes per day (StorageStats), the Modbus
     transactions and bytes per poll, the heap high-water mark (`mem --json`), wall time
     per simulated day and boot-to-first-reading; beside it the latency of one TAF16 post
     on a new mutual-TLS connection and on a kept one (tools/han_bench.py);
  2. the heap: days at a higher speed (no wire timing, slow motion around each boundary)
     bisected over `-X heapsize` for the smallest heap in which the day passes: no
     MemoryError, every quarter hour of the day a value read within the legal 9 s (a late
     gap is no pass; each run says why it failed: memory, boot (never read the meter),
     late, values, console), the console still answers. Frozen32 first (`heap_min_kib_frozen32`, the headline
     `heap_min_kib`): the 32-bit unix port with the firmware frozen in, as on an ESP32
     without PSRAM (`make setup` builds build/frozen-unix32/micropython; `make bench`
     passes it); with --frozen-micropython the same on 64 bits, with
     --plain32-micropython as .mpy on a 32-bit interpreter (form mpy32), then the
     --forms (.mpy, what `make deploy` installs, on the 64-bit interpreter of .venv).

Times inside the device are device ms at the run's speed (device seconds per real
second, reported); wall times are real. Every figure comes from this run.

    tools/bench.py [--quick] [--speed 240] [--heap-speed 2880] [--no-heap] [--out FILE]
        [--frozen-micropython PATH] [--frozen32-micropython PATH] [--plain32-micropython PATH]
        [--forms mpy,py] [--workdir DIR] [--heap-only]
"""
import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
for _p in (os.path.join(ROOT, "host_tests", "shims"), os.path.join(ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.append(_p)

import fwproc  # noqa: E402
from rig import Rig, day_start_ms  # noqa: E402

H_MS = 3_600_000
QH_MS = 900_000
DAY = "2026-11-29"  # a plain 96-quarter-hour day (no clock change)
# The heap-search days in slow motion from 1 s before to 10 s after each boundary: the
# legal 9 s last 225 real ms, so that a late gap says the host was busy, not the heap
HEAP_SLOW = (40, 1000, 10000)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


# -- how the firmware is run -------------------------------------------------

class CodeFirmware(fwproc.Firmware):
    """fwproc.Firmware that runs the firmware as .py (firmware/main.py), as .mpy
    (build/unix, compiled by tools/build_mpy.py) or frozen into another interpreter."""

    def __init__(self, root_dir, clock=None, heap="512k", form="py", micropython=None):
        super().__init__(root_dir, clock=clock, heap=heap)
        self.form = form
        self.micropython = micropython or fwproc.MICROPYTHON
        self.spawned = None

    def start(self):
        env = dict(os.environ)
        if self.form == "py":
            main = fwproc.MAIN
        elif self.form.startswith("frozen"):
            # the firmware is in the interpreter: only main.py, a copy beside the device
            # folder (not build/unix, which a build_mpy run elsewhere may be rewriting)
            main = os.path.join(os.path.dirname(os.path.abspath(self.root_dir)), "main.py")
            shutil.copyfile(fwproc.MAIN, main)
        else:
            main = os.path.join(ROOT, "build", "unix", "main.py")
        if self.form != "py":
            path = [".frozen"]
            if self.form.startswith("mpy"):
                path.append(os.path.join(ROOT, "build", "unix", "lib"))
            path += [os.path.join(ROOT, "boards"), os.path.join(ROOT, "build", "lib")]
            env["MICROPYPATH"] = ":".join(path)
        argv = [self.micropython, "-X", "heapsize=%s" % self.heap, main, "--board", self.board,
                "--root", self.root_dir]
        if self.clock is not None:
            argv += self.clock.args()
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, env=env)
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        return self

    def memory_errors(self):
        return [ln for ln in list(self.transcript) + list(self.stderr) if "MemoryError" in ln]


_LIVE = set()  # rigs running, stopped at exit (also on SIGTERM) so nothing is left behind


def _stop_all(*_):
    for r in list(_LIVE):
        try:
            r.stop()
        except Exception:  # noqa: BLE001
            pass
    if _:
        os._exit(143)


atexit.register(_stop_all)


class BenchRig(Rig):
    def __init__(self, workdir, form="py", micropython=None, **kw):
        super().__init__(workdir, **kw)
        self.form = form
        self.micropython = micropython

    def start(self, firmware=True):
        _LIVE.add(self)
        return super().start(firmware)

    def stop(self):
        _LIVE.discard(self)
        super().stop()

    def start_firmware(self, wait_ready=False):
        # the bench measures the boot itself: no waiting here unless asked for
        self.write_config()
        self.fw = CodeFirmware(self.root, clock=self.clock, heap=self.heap, form=self.form,
                               micropython=self.micropython).start()
        if wait_ready:
            self.ready = self.fw.wait_ready()
        return self.fw


def build_mpy():
    subprocess.run([sys.executable, os.path.join(HERE, "build_mpy.py"), "--board", "unix"], check=True,
                   stdout=subprocess.DEVNULL)


def windows_for(day_ms, n=8, minutes=45, span_h=24):
    # n windows spread over the span, each switching the element on for `minutes`.
    step = int(span_h * H_MS) // n
    return [{"id": "w%d" % i, "start": (day_ms + i * step + step // 4) // 1000,
             "end": (day_ms + i * step + step // 4 + minutes * 60_000) // 1000, "on": True} for i in range(n)]


# -- one simulated day -------------------------------------------------------

def run_day(workdir, speed, heap="512k", form="py", micropython=None, wire_timing=False, mqtt=True,
            hours=24.0, windows=8, deadline_s=None, log=None, late_ok=False, slow=None):
    """Run the firmware through `hours` of the day DAY; returns what was measured.
    passes = no MemoryError, every boundary of the span a value (late_ok: or a late
    gap), console answers. slow: (speed, lead ms, tail ms) of slow motion around each
    boundary (tools/simclock.py), so that a fast day leaves the legal 9 s real time."""
    say = log or (lambda *a: None)
    if os.path.isdir(workdir):
        shutil.rmtree(workdir)
    day0 = day_start_ms(DAY)
    end_ms = day0 + int(hours * H_MS)
    rig = BenchRig(workdir, form=form, micropython=micropython, speed=speed, start_ms=day0 - max(120_000, 2 * speed * 1000),
                   load="day", mqtt=mqtt, wire_timing=wire_timing, heap=heap, lead_ms=800, slow=slow)
    out = {"speed": speed, "heap": heap, "form": form, "wire_timing": wire_timing, "hours": hours, "slow": slow}
    t_wall0 = time.monotonic()
    rig.start()
    fw = rig.fw
    snaps = {}
    boot_ms = None
    answers = {}
    out["console_answers"] = False
    out["memory_errors"] = []
    out["alive"] = False
    try:
        # boot to the first good meter reading, seen from the console (real ms)
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and fw.alive():
            try:
                m = fw.json("meter read --json", timeout=10)
            except (AssertionError, TimeoutError, RuntimeError):
                m = {}
            if m.get("power_w") is not None:
                boot_ms = int((time.monotonic() - fw.spawned) * 1000)
                break
            time.sleep(0.02)
        out["boot_to_first_reading_ms"] = boot_ms
        if boot_ms is None:  # no day to follow (a heap far too small: every task restarting)
            raise TimeoutError("no meter reading within 60 s of the start")
        if windows:
            ans = fw.command("schedule set '%s'" % json.dumps(windows_for(day0, windows, 45 if hours >= 12 else 20, hours), separators=(",", ":")))
            out["schedule_answer"] = ans
        # the day: storage counters at the first and the last boundary of the span
        first_b, last_b = day0 // 1000, end_ms // 1000
        limit = time.monotonic() + (deadline_s or (hours * 3600 / speed * 2 + 120))
        # The day is followed with the load profile's last record (a short answer, as an
        # installer's `qh` would be), not with `status --json`: a 4 KB answer several
        # times a real second is no load a board ever sees and made the heap and the
        # loop the bench's own. The storage counters are asked for at the two edges.
        while time.monotonic() < limit and fw.alive():
            # half an hour of device time past the span without its last record: the
            # day has failed (a firmware short of heap keeps running, its console quiet)
            over = rig.device_now_ms() > end_ms + 2 * QH_MS
            try:
                rows = fw.json("qh --json --last 1", timeout=20)["qh"]
            except (AssertionError, TimeoutError, KeyError):
                if over:
                    break
                time.sleep(0.5)
                continue
            lb = rows[-1]["boundary"] + (rows[-1].get("missed", 1) - 1) * QH_MS // 1000 if rows else None
            edge = lb is not None and (lb >= last_b or (lb >= first_b and "a" not in snaps))
            if edge:
                try:
                    storage = fw.json("status --json", timeout=20)["storage"]
                except (AssertionError, TimeoutError, KeyError):
                    time.sleep(0.5)
                    continue
                if "a" not in snaps:
                    snaps["a"] = (lb, storage)
                    out["t_day_start_wall"] = time.monotonic()
                if lb >= last_b:
                    snaps["b"] = (lb, storage)
                    out["t_day_end_wall"] = time.monotonic()
                    break
            if over:
                break
            time.sleep(min(1.0, max(0.05, 300.0 / speed)))
        out["alive"] = fw.alive()
        answers = {}
        quiet = None
        for cmd in ("mem --json", "status --json", "tx --json --last 20"):
            if quiet:  # one unanswered command is enough: the day fails either way
                answers[cmd.split()[0]] = {"error": "not asked: " + quiet}
                continue
            try:
                answers[cmd.split()[0]] = fw.json(cmd, timeout=30)
            except Exception as e:  # noqa: BLE001 - an answer missing is a failed day
                answers[cmd.split()[0]] = {"error": str(e)}
                quiet = "%r got no answer" % cmd
        out["console_answers"] = all("error" not in a for a in answers.values())
        out["memory_errors"] = fw.memory_errors()[:3]
    except (OSError, RuntimeError, TimeoutError, AssertionError) as e:  # the firmware died
        out["error"] = "%s: %s" % (type(e).__name__, e)
        out["alive"] = fw.alive()
        out["memory_errors"] = fw.memory_errors()[:3]
    finally:
        rig.stop()
    out["wall_s"] = round(time.monotonic() - t_wall0, 1)
    wall0, wall1 = out.pop("t_day_start_wall", None), out.pop("t_day_end_wall", None)
    # (a loaded host may poll first after the day's last boundary: then there is no span)
    span_h = (snaps["b"][0] - snaps["a"][0]) / 3600.0 if wall0 is not None and wall1 is not None else 0
    if span_h > 0:
        out["sim_day_wall_s"] = round((wall1 - wall0) * 24 / span_h, 1)
        a, b = snaps["a"][1], snaps["b"][1]
        out["flash_span_h"] = span_h
        out["flash_bytes"] = b["bytes_written"] - a["bytes_written"]
        out["flash_writes"] = b["write_ops"] - a["write_ops"]
    # the journals as the firmware left them on its filesystem (no big console answers
    # that would need large heap blocks)
    data = os.path.join(rig.root, "data")
    qh = [r for r in qh_expand(journal_records(data, "qh", qh_decode)) if day0 // 1000 < r["boundary"] <= end_ms // 1000]
    answers["events"] = {"events": journal_records(data, "outbox", json.loads)}
    out["qh_boundaries"] = len(qh)
    out["qh_values"] = sum(1 for r in qh if "gap" not in r)
    out["qh_gaps"] = [r["gap"] for r in qh if "gap" in r][:5]
    out["qh_delays_ms"] = [r["delay_ms"] for r in qh if "delay_ms" in r]
    want = int(round((end_ms - day0) / QH_MS))
    # A quarter hour read too late at a high simulation speed (9 s of device time are a
    # few real ms there) is a gap of the speed, not of memory: it counts as recorded.
    out["qh_late_gaps"] = sum(1 for r in qh if "late" in r.get("gap", ""))
    out["passes"] = bool(out["alive"] and not out["memory_errors"] and out["console_answers"]
                         and out["qh_boundaries"] == want
                         and out["qh_values"] + (out["qh_late_gaps"] if late_ok else 0) == want)
    out["answers"] = answers
    out["rig"] = {"clock": rig.clock, "han_store": rig.han_store, "meter_log": rig.meter_log, "day0": day0,
                  "end_ms": end_ms}
    say("day %s heap %s speed %d: %s (%d/%d values, wall %.0f s)%s" % (
        form, heap, speed, "passes" if out["passes"] else "FAILS", out["qh_values"], want, out["wall_s"],
        " " + out["memory_errors"][0] if out["memory_errors"] else ""))
    return out


def journal_records(dirpath, name, decode):
    try:
        return [decode(r) for _, r in read_journal_raw(dirpath, name)]
    except FileNotFoundError:
        return []


def read_journal_raw(dirpath, name):
    # (where, payload bytes) of every readable record, in order (tools/verify_tx.py format)
    import binascii
    import struct
    pre = name + "."
    segs = sorted(int(f[len(pre):]) for f in os.listdir(dirpath) if f.startswith(pre) and f[len(pre):].isdigit())
    for first in segs:
        with open(os.path.join(dirpath, "%s.%06d" % (name, first)), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 11 <= len(data):
            magic, n, seq = struct.unpack_from("<BHI", data, pos)
            if magic != 0xD5 or pos + 11 + n > len(data):
                break
            payload = data[pos + 7:pos + 7 + n]
            (crc,) = struct.unpack_from("<I", data, pos + 7 + n)
            if binascii.crc32(payload, binascii.crc32(data[pos:pos + 7])) == crc:
                yield seq, payload
            pos += 11 + n


def qh_decode(payload):
    # one journal record -> a dict; a gap record may cover n boundaries ("missed")
    r = json.loads(payload)
    out = {"boundary": r["b"]}
    if "gap" in r:
        out["gap"] = r["gap"]
        out["missed"] = r.get("n", 1)
    else:
        out.update(import_wh=r["i"], export_wh=r["e"], time_ms=r["t"], time_status=r["st"],
                   delay_ms=r["t"] - r["b"] * 1000)
    return out


def qh_expand(records):
    # per-boundary rows: a gap record covering n quarter hours becomes n gap rows
    out = []
    for r in records:
        if "gap" in r:
            for i in range(r.get("missed", 1)):
                out.append({"boundary": r["boundary"] + i * QH_MS // 1000, "gap": r["gap"]})
        else:
            out.append(r)
    return out


# -- figures from a day --------------------------------------------------------

def event_latencies(day, kinds=("start", "stop")):
    # switching transition (the event's legal time) -> the gateway stored it
    # (its real receive time put on the simulated clock). Device ms and real ms.
    clock = day["rig"]["clock"]
    got = {}
    try:
        with open(day["rig"]["han_store"]) as f:
            for line in f:
                e = json.loads(line)
                got[e["uuid"]] = e["received_real_ms"]
    except FileNotFoundError:
        pass
    dev, real = [], []
    for ev in day["answers"].get("events", {}).get("events", []):
        if ev.get("kind") in kinds and ev["uuid"] in got:
            r = got[ev["uuid"]]
            d = clock.sim.device_ms(r) - ev["time_ms"]
            dev.append(d)
            real.append(d / clock.speed)
    return dev, real


def modbus_figures(day):
    """Per profile: the firmware's plan for the standard value set and for the energy
    pair of the load profile, the least the register layout allows, and for the
    profile under test the same measured on the wire (emulator log, bus counters)."""
    from dicamm.proto import profiles

    def cost(blocks):
        # request 8 bytes (addr, fn, start, count, crc); answer 5 + 2 per register
        return len(blocks), sum(8 + 5 + 2 * b[2] for b in blocks)

    out = {}
    for name in profiles.names():
        p = profiles.get(name)
        std = [f for f in profiles.STANDARD if f in p["fields"]]
        energy = [f for f in ("import_wh", "export_wh") if f in p["fields"]]
        plan_std = profiles.plan(p, std)
        plan_e = profiles.plan(p, energy)
        # The least: one request per function code and 125-register window if the
        # meter let a read span any hole (a lower bound the layout cannot beat).
        least = []
        for fn in sorted({p["fields"][f][0] for f in std}):
            regs = sorted(r for f in std if p["fields"][f][0] == fn
                          for r in range(p["fields"][f][1], p["fields"][f][1] + profiles.size(p["fields"][f][2])))
            lo = regs[0]
            for r in regs:
                if r - lo >= min(p.get("max_regs", 125), 125):
                    least.append((fn, lo, regs[regs.index(r) - 1] - lo + 1))
                    lo = r
            least.append((fn, lo, regs[-1] - lo + 1))
        tx, by = cost(plan_std)
        etx, eby = cost(plan_e)
        ltx, lby = cost(least)
        out[name] = {"fields": std, "tx_per_poll": tx, "bytes_per_poll": by,
                     "energy_tx": etx, "energy_bytes": eby, "least_tx": ltx, "least_bytes": lby,
                     "blocks": [[b[0], b[1], b[2]] for b in plan_std]}
    # measured on the wire for the profile in use
    model = day["answers"].get("status", {}).get("meter", {}).get("model", "sdm630")
    p = profiles.get(model)
    std_blocks = {(b[0], b[1], b[2]) for b in profiles.plan(p, [f for f in profiles.STANDARD if f in p["fields"]])}
    first = min(std_blocks, key=lambda b: (b[0], b[1]))
    n_first = n_std = bytes_std = 0
    with open(day["rig"]["meter_log"]) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            k = (r["function"], r["address"], r["count"])
            if k in std_blocks:
                n_std += 1
                bytes_std += 8 + 5 + 2 * r["count"]
                if k == first:
                    n_first += 1
    bus = day["answers"].get("status", {}).get("bus", {})
    m = {"profile": model, "polls_on_wire": n_first,
         "tx_per_poll": round(n_std / n_first, 3) if n_first else None,
         "bytes_per_poll": round(bytes_std / n_first, 1) if n_first else None}
    if bus.get("transactions"):
        m["bus_bytes_per_tx"] = round((bus["tx_bytes"] + bus["rx_bytes"]) / bus["transactions"], 1)
        m["bus_transactions"] = bus["transactions"]
    return out, m


def bisect_heap(work, form, micropython, speed, lo_k, hi_k, step_k, hours, log, parallel=2):
    """Smallest heap (KiB, to step_k) in which the day passes, between lo_k (assumed to
    fail; tried at the end when the answer is next to it) and hi_k (tried first). Each
    round runs `parallel` days at once and cuts the interval into parallel+1 parts."""
    runs = []

    def trial(k, again=True):
        # A pass: no MemoryError, every quarter hour a value read in time (a late gap
        # is no pass), the console answers. A run whose only fault is late gaps (the
        # host, not the heap) is tried once more; the runs say which it was.
        try:
            d = run_day(os.path.join(work, "heap-%s-%dk" % (form, k)), speed, heap="%dk" % k, form=form,
                        micropython=micropython, mqtt=True, hours=hours, log=log, slow=HEAP_SLOW)
        except Exception as e:  # the rig itself broke (a host too loaded to start it): say so, count no pass
            traceback.print_exc()
            runs.append({"heap_kib": k, "passes": False, "values": 0, "late_gaps": 0, "memory_error": False,
                         "why": "rig", "rig_error": "%s: %s" % (type(e).__name__, e)})
            return False
        mem = d["memory_errors"]
        # "late" only when late gaps are the one fault (the host, not the heap: tried again);
        # a day that never read the meter is "boot"
        only_late = d["qh_late_gaps"] and d["qh_values"] + d["qh_late_gaps"] == d["qh_boundaries"] \
            and d["console_answers"]
        why = None if d["passes"] else ("memory" if mem else "boot" if d.get("boot_to_first_reading_ms") is None
                                       else "late" if only_late else
                                       "values" if d["qh_values"] < d["qh_boundaries"] or not d["qh_boundaries"]
                                       else "console" if not d["console_answers"] else "died")
        runs.append({"heap_kib": k, "passes": d["passes"], "values": d["qh_values"], "boundaries": d["qh_boundaries"],
                     "late_gaps": d["qh_late_gaps"], "memory_error": bool(mem), "why": why,
                     "memory_error_text": _memory_error_text(mem[0]) if mem else None})
        if why == "late" and again:
            return trial(k, False)
        return d["passes"]

    def trials(ks):
        got = {}
        ts = [threading.Thread(target=lambda k=k: got.__setitem__(k, trial(k))) for k in ks]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return got

    if not trial(hi_k):
        return None, runs
    lo0 = lo_k
    while hi_k - lo_k > step_k:
        n = min(parallel, (hi_k - lo_k) // step_k - 1)
        ks = sorted({lo_k + (hi_k - lo_k) * (i + 1) // (n + 1) // step_k * step_k for i in range(n)} - {lo_k, hi_k})
        if not ks:
            ks = [lo_k + step_k]
        got = trials(ks)
        for k in ks:
            if got[k]:
                hi_k = min(hi_k, k)
        lo_k = max([lo_k] + [k for k in ks if not got[k] and k < hi_k])
    if hi_k == lo0 + step_k and trial(lo0):
        hi_k = lo0  # the range started too high: lo0 passes too (an upper bound then)
    return hi_k, runs


def _memory_error_text(line):
    # the MemoryError's own words out of a console line or a traceback
    i = line.find("MemoryError")
    return line[max(0, i - 80):i + 100] if i >= 0 else line[:180]


def heap_search(a, res, log):
    # frozen32 first: the form of an ESP32 without PSRAM, the figure that matters
    step = 64 if a.quick else 8
    hh = 1.0 if a.quick else 24.0
    forms = []
    if a.frozen32_micropython:
        forms.append(("frozen32", a.frozen32_micropython))
    if a.frozen_micropython:
        forms.append(("frozen", a.frozen_micropython))
    if a.plain32_micropython:
        forms.append(("mpy32", a.plain32_micropython))
    forms += [(f, None) for f in a.forms.split(",") if f]
    res["heap_search"] = {}
    for form, mp in forms:
        lo, hi = {"py": (384, 896), "mpy": (256, 576), "frozen": (96, 320), "frozen32": (48, 160), "mpy32": (128, 320)}[form]
        best, runs = bisect_heap(os.path.join(a.workdir, "heap"), form, mp, a.heap_speed, lo, hi, step, hh, log)
        res["heap_search"][form] = {"min_kib": best, "runs": runs, "speed": a.heap_speed, "slow": list(HEAP_SLOW),
                                    "hours": hh, "step_kib": step, "micropython": _mp_version(mp),
                                    "failed_memory_kib": sorted({r["heap_kib"] for r in runs if r.get("memory_error")}),
                                    "failed_late_kib": sorted({r["heap_kib"] for r in runs if r.get("why") == "late"})}
        res["heap_min_kib_" + form] = best
    for form in ("frozen32", "frozen", "mpy32", "mpy", "py"):
        if res.get("heap_min_kib_" + form):
            res["heap_min_kib"] = res["heap_min_kib_" + form]
            res["heap_min_form"] = form
            break


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 device hours, 2 windows, a coarse heap search (smoke)")
    ap.add_argument("--speed", type=int, default=None, help="speed of the wire-timed day (default 240; quick 240)")
    ap.add_argument("--heap-speed", type=int, default=2880,
                    help="speed of the heap-search days (in slow motion %dx around each boundary)" % HEAP_SLOW[0])
    ap.add_argument("--heap", default="512k", help="the default heap of the measured day")
    ap.add_argument("--forms", default="mpy", help="code forms for the heap search: mpy,py")
    ap.add_argument("--frozen-micropython", default=os.environ.get("DICAMM_FROZEN_MICROPYTHON"),
                    help="a unix micropython with the firmware frozen in (tools/build_frozen_unix.sh)")
    ap.add_argument("--frozen32-micropython", default=os.environ.get("DICAMM_FROZEN32_MICROPYTHON"),
                    help="the same built for 32 bits (BITS=32 tools/build_frozen_unix.sh)")
    ap.add_argument("--plain32-micropython", default=os.environ.get("DICAMM_PLAIN32_MICROPYTHON"),
                    help="a 32-bit unix micropython without the firmware, which then runs as .mpy "
                         "(FREEZE=0 BITS=32 tools/build_frozen_unix.sh)")
    ap.add_argument("--no-heap", action="store_true", help="the measured day only")
    ap.add_argument("--heap-only", action="store_true", help="the heap search only")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench-run"))
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_all)

    def log(msg):
        if a.verbose or not a.quick:
            print("bench: " + msg, file=sys.stderr, flush=True)

    hours = 2.0 if a.quick else 24.0
    speed = a.speed or 240
    os.makedirs(a.workdir, exist_ok=True)
    build_mpy()
    t0 = time.monotonic()
    heap_res = {}
    heap_thread = None
    if not a.no_heap and not a.heap_only:
        # the heap search runs beside the wire-timed day (2 cores: the day mostly waits on the wire)
        heap_thread = threading.Thread(target=heap_search, args=(a, heap_res, log), daemon=True)
        heap_thread.start()
    if a.heap_only:
        heap_search(a, heap_res, log)
        res = {"date": time.strftime("%Y-%m-%d"), "micropython": _mp_version()}
        res.update(heap_res)
        res["bench_wall_s"] = round(time.monotonic() - t0, 1)
        return _report(a, res, True)
    log("the day: %g h at %dx with wire timing 9600 baud, MQTT online, %d windows" % (
        hours, speed, 2 if a.quick else 8))
    day = run_day(os.path.join(a.workdir, "day"), speed, heap=a.heap, form="mpy", wire_timing=True,
                  hours=hours, windows=2 if a.quick else 8, log=log)
    res = {"date": time.strftime("%Y-%m-%d"), "micropython": _mp_version(), "day_speed": speed,
           "day_hours": hours, "day_passes": day["passes"], "qh_values": day["qh_values"],
           "qh_gaps": day["qh_gaps"], "schedule_answer": day.get("schedule_answer")}
    dly = day["qh_delays_ms"]
    res.update({"qh_delay_ms_p50": pct(dly, 50), "qh_delay_ms_p99": pct(dly, 99), "qh_delay_ms_max": max(dly) if dly else None,
                "qh_delay_note": "device ms at %dx: real ms = device ms / %d" % (speed, speed)})
    dev, real = event_latencies(day)
    res.update({"events_measured": len(dev), "event_latency_ms_p50": pct(dev, 50), "event_latency_ms_p99": pct(dev, 99),
                "event_latency_real_ms_p50": pct(real, 50), "event_latency_real_ms_p99": pct(real, 99),
                "event_latency_note": "transition (legal time) to stored at the gateway, device ms at %dx" % speed})
    tx = day["answers"].get("tx", {}).get("tx", [])
    res["transactions"] = len(tx)
    if "flash_bytes" in day:
        scale = 24.0 / day["flash_span_h"]
        res["flash_bytes_per_day"] = int(round(day["flash_bytes"] * scale))
        res["flash_writes_per_day"] = int(round(day["flash_writes"] * scale))
        res["flash_measured_h"] = day["flash_span_h"]
    res["sim_day_wall_s"] = day.get("sim_day_wall_s")
    res["boot_to_first_reading_ms"] = day["boot_to_first_reading_ms"]
    mem = day["answers"].get("mem", {})
    res["heap_peak_kib"] = round(mem["peak_alloc"] / 1024, 1) if "peak_alloc" in mem else None
    res["heap_peak_at_heap"] = a.heap
    prof, wire = modbus_figures(day)
    res["modbus_tx_per_poll"] = {k: v["tx_per_poll"] for k, v in prof.items()}
    res["modbus_bytes_per_poll"] = {k: v["bytes_per_poll"] for k, v in prof.items()}
    res["modbus_least_tx_per_poll"] = {k: v["least_tx"] for k, v in prof.items()}
    res["modbus_least_bytes_per_poll"] = {k: v["least_bytes"] for k, v in prof.items()}
    res["modbus_energy_read"] = {k: [v["energy_tx"], v["energy_bytes"]] for k, v in prof.items()}
    res["modbus_measured"] = wire
    import sign_bench  # one ECDSA signature: time and heap (64-bit, and the 32-bit build when given)
    res.update(sign_bench.figures(fwproc.MICROPYTHON, a.frozen32_micropython or a.plain32_micropython))
    import han_bench  # one TAF16 post: on a new mutual-TLS connection and on a kept one
    res.update(han_bench.figures(fwproc.MICROPYTHON, a.frozen32_micropython or a.plain32_micropython,
                                 n=10 if a.quick else 20))
    if heap_thread is not None:
        heap_thread.join()
        res.update(heap_res)
    res["bench_wall_s"] = round(time.monotonic() - t0, 1)
    return _report(a, res, day["passes"])


def _report(a, res, passes):
    text = json.dumps(res, sort_keys=True)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0 if passes else 1


def _mp_version(exe=None):
    try:
        return subprocess.run([exe or fwproc.MICROPYTHON, "-c", "import sys; print(sys.version, \"64-bit\" if sys.maxsize > 1 << 32 else \"32-bit\")"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
