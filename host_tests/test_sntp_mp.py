# Legal time end to end: tools/sntp_emu.py servers on 127.0.0.1 answering from
# the simulated clock, and the firmware's SNTP client and TimeKeeper on the
# MicroPython unix port against them (the device clock runs 10x fast).
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

from waiting import wait_until

from conftest import FIRMWARE, MICROPYTHON, ROOT, TOOLS

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes
from simclock import SimClock
from dicamm.proto import sntp_packet as P

EMU = os.path.join(TOOLS, "sntp_emu.py")
SPEED = 10
START_MS = 1782000000000  # 2026-06-21, device time at the epoch


class Emu:
    def __init__(self, clock, mode, control=None):
        argv = [sys.executable, EMU, "--mode", mode] + clock.args()
        if control:
            argv += ["--control", str(control)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        self.port = json.loads(line)["port"]
        self.label = "127.0.0.1:%d" % self.port

    def mode(self, mode):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.sendto(b"mode " + mode.encode(), ("127.0.0.1", self.port))
            return s.recv(100).decode()
        finally:
            s.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def emus():
    started = []
    clock = SimClock(SPEED, START_MS)

    def start(*modes, control=None):
        out = [Emu(clock, m, control) for m in modes]
        started.extend(out)
        return out

    start.clock = clock
    yield start
    for e in started:
        e.stop()


def host_query(port, timeout=1.0, t1=None):
    # A CPython client built from the firmware's pure packet code.
    buf = bytearray(48)
    t1 = t1 if t1 is not None else time.time_ns() // 1000000
    P.request(buf, t1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(buf, ("127.0.0.1", port))
        n = s.recv_into(buf)
    finally:
        s.close()
    return P.parse(buf, n, t1)


# --- the emulator alone (CPython) -------------------------------------------------

def test_emulator_modes(emus, tmp_path):
    clock = emus.clock
    ctl = tmp_path / "mode"
    (e,) = emus("good", control=ctl)
    li, stratum, t2, t3, refid = host_query(e.port)
    assert (li, stratum, refid) == (0, 1, "PTB")
    assert abs(t2 - clock.now_ms()) < 1000
    assert e.mode("offset:-30") == "ok offset:-30"
    assert abs(host_query(e.port)[2] - clock.now_ms() + 30000) < 1000
    assert e.mode("jump:100") == "ok jump:100"  # adds to the offset: +70 s
    assert abs(host_query(e.port)[2] - clock.now_ms() - 70000) < 1000
    for mode, reason, kod in (("kod", "kod RATE", "RATE"), ("kod:DENY", "kod DENY", "DENY"),
                              ("stratum0", "kod ?", "?"), ("unsync", "unsynchronised (LI=3)", None)):
        assert e.mode(mode) == "ok " + mode
        with pytest.raises(P.SntpReject) as x:
            host_query(e.port)
        assert (x.value.reason, x.value.kod) == (reason, kod), mode
    assert e.mode("bogus").startswith("error")
    e.mode("silent")
    with pytest.raises(socket.timeout):
        host_query(e.port, timeout=0.3)
    ctl.write_text("good\n")  # the control file works too
    deadline = time.time() + 5
    while True:
        try:
            assert abs(host_query(e.port, timeout=0.2)[2] - clock.now_ms()) < 1000
            break
        except socket.timeout:
            assert time.time() < deadline
    # an answer echoes our T1: a different T1 is "not our answer"
    with pytest.raises(P.SntpReject, match="not our answer"):
        buf = bytearray(48)
        P.request(buf, 1000)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.sendto(buf, ("127.0.0.1", e.port))
        n = s.recv_into(buf)
        s.close()
        P.parse(buf, n, 2000)


def test_emulator_jump_at_a_moment(emus):
    clock = emus.clock
    (e,) = emus("good")
    at = clock.now_ms() + 20_000
    e.mode("jump:-3600@20")  # 20 device seconds = 2 real seconds from now
    before = host_query(e.port)[2]
    if clock.now_ms() < at:   # (asked before the jump: the true time)
        assert abs(before - clock.now_ms()) < 1000
    wait_until(lambda: clock.now_ms() > at + 1000 and abs(host_query(e.port)[2] - clock.now_ms() + 3600000) < 1000,
               timeout=30, interval=0.1, what="the emulator's jump")


# --- firmware on MicroPython -----------------------------------------------------

# Arguments are embedded in the script: this MicroPython unix build dies
# ("FATAL: uncaught NLR") when a command-line argument is 256+ bytes long.
def mp_script(template, arg):
    return template % {"fw": FIRMWARE, "arg": json.dumps(arg)}


def run_mp(script, arg, timeout=60):
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=512k", "-c", mp_script(script, arg)],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


QUERY = r'''
import sys
sys.path.insert(0, %(fw)r)
import asyncio, json
from dicamm.drivers.clock import Clock
from dicamm.drivers.sntp import SntpClient
from dicamm.errors import LinkError
a = json.loads(%(arg)r)
async def main():
    c = SntpClient(Clock(a["speed"], a["start_ms"], a["epoch_ms"]))
    for port in a["ports"]:
        try:
            off, delay, server, stratum = await c.query("127.0.0.1", port, 300)
            print(json.dumps({"port": port, "offset": off, "delay": delay, "stratum": stratum}))
        except LinkError as e:
            print(json.dumps({"port": port, "err": str(e), "kod": getattr(e, "kod", None)}))
    await c.query("127.0.0.1", a["ports"][0], 300)  # the good server again: its address is kept
    print(json.dumps({"resolved": c.resolved}))
asyncio.run(main())
'''


def test_sntp_client_on_micropython(emus):
    clock = emus.clock
    es = emus("good", "offset:-30", "kod", "unsync", "silent")
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there: ICMP port unreachable
    arg = {"speed": SPEED, "start_ms": clock.start_ms - 5000, "epoch_ms": clock.epoch_ms,
           "ports": [e.port for e in es] + [dead_port]}
    t0 = time.time()
    rows = run_mp(QUERY, arg)
    # RFC 4330 section 10: no DNS lookup for every request (one per server here)
    assert rows[-1] == {"resolved": len(arg["ports"])}, rows[-1]
    out = {r["port"]: r for r in rows[:-1]}
    good, off30, kod, unsync, silent = (out[e.port] for e in es)
    assert abs(good["offset"] - 5000) <= 200 and 0 <= good["delay"] <= 200, good
    assert good["stratum"] == 1
    assert abs(off30["offset"] - 5000 + 30000) <= 200, off30
    assert kod == {"port": es[2].port, "err": "kod RATE", "kod": "RATE"}
    assert unsync["err"] == "unsynchronised (LI=3)" and unsync["kod"] is None
    assert silent["err"].endswith("timeout"), silent
    assert "err" in out[dead_port], out[dead_port]
    assert time.time() - t0 < 10


KEEPER = r'''
import sys
sys.path.insert(0, %(fw)r)
import asyncio, json, time
from dicamm.drivers.clock import Clock
from dicamm.services.timekeeper import TimeKeeper
a = json.loads(%(arg)r)
clock = Clock(a["speed"], a["start_ms"] + a["rtc_error_ms"], a["epoch_ms"])
def truth():
    return a["start_ms"] + (time.time_ns() // 1000000 - a["epoch_ms"]) * a["speed"]
def out(phase, tk):
    i = tk.info()
    i["phase"] = phase
    i["err_ms"] = tk.now_ms() - truth()
    print(json.dumps(i))
async def main():
    tk = TimeKeeper(clock, a["config"])
    out("start", tk)
    task = asyncio.create_task(tk.run())
    t0 = time.ticks_ms()
    while tk.status() != "S" and time.ticks_diff(time.ticks_ms(), t0) < 15000:
        await asyncio.sleep_ms(20)
    out("synced", tk)
    last = tk.status()
    t0 = time.ticks_ms()
    u_since = None
    while time.ticks_diff(time.ticks_ms(), t0) < 20000:
        st = tk.status()
        if st != last:
            out("change", tk)
            last = st
        if st != "S":
            if u_since is None:
                u_since = time.ticks_ms()
            elif time.ticks_diff(time.ticks_ms(), u_since) > 1500:
                break
        await asyncio.sleep_ms(20)
    out("end", tk)
    task.cancel()
asyncio.run(main())
'''


def test_timekeeper_majority_then_silence(emus):
    clock = emus.clock
    gw, bad, good = emus("good", "offset:3600", "good")
    budget_s = 20  # 1000 ms at 50000 ppm: 20 device seconds = 2 real seconds
    config = {"time.gateway": gw.label, "time.servers": [bad.label, good.label],
              "time.samples": 4, "time.sample_gap_ms": 2000, "time.timeout_ms": 300,
              "time.max_drift_ms": 1000, "time.drift_ppm": 50000,
              "time.resync_s": 16, "time.retry_s": 15}
    arg = {"speed": SPEED, "start_ms": clock.start_ms, "epoch_ms": clock.epoch_ms,
           "rtc_error_ms": -7200000, "config": config}
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=512k", "-c", mp_script(KEEPER, arg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()

    def next_line():
        x = lines.get(timeout=40)
        assert x is not None, proc.stderr.read()
        return json.loads(x)

    try:
        start = next_line()
        assert start["status"] == "U" and abs(start["err_ms"] + 7200000) < 1000
        synced = next_line()
        assert synced["phase"] == "synced" and synced["status"] == "S", synced
        assert synced["source"] == gw.label
        assert abs(synced["err_ms"]) < 500, synced["err_ms"]
        assert abs(synced["offset_ms"] - 7200000) < 500
        assert synced["single_source"] is False
        srv = synced["servers"]
        assert srv[bad.label]["status"] == "rejected", srv
        assert "majority" in srv[bad.label]["reason"]
        assert srv[gw.label]["status"] == "ok" and srv[good.label]["status"] == "ok"
        assert srv[gw.label]["gateway"] is True
        for e in (gw, bad, good):
            assert e.mode("silent") == "ok silent"
        silenced = time.time()
        changes = []
        while True:
            x = next_line()
            changes.append(x)
            if x["phase"] == "end":
                break
        assert changes[0]["phase"] == "change" and changes[0]["status"] == "U", changes
        # S lasted the drift budget (measured from the last sync), not longer
        assert budget_s <= changes[0]["age_s"] <= budget_s + 2, changes[0]
        assert time.time() - silenced >= budget_s / SPEED - 1.0
        end = changes[-1]
        assert end["status"] == "U"
        assert all(s["status"] == "error" and s["reason"].endswith("timeout") for s in end["servers"].values()), end
        assert end["last_error"] == "no time source answered"
        assert all(x["status"] != "S" for x in changes)
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
