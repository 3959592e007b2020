# The SNTP client's manners (RFC 4330 section 10, "Best Practices"), seen from the
# servers' side: what each server received, by the clock it received it on.
#
#  - through the whole firmware on the bench rig: the gateway and a PTB-like server
#    answer, one answers with a RATE kiss-o'-death (section 8), one is silent; the
#    emulators list the simulated time of every request;
#  - against chrony (Debian's NTP server, real time): two servers and one that
#    rate-limits (drops answers), each behind a counting UDP relay.
# Rules checked: never two requests to one server less than 15 s apart except the
# first sync's burst (at most 4, at least 2 s apart, like NTP's iburst); ever longer
# intervals to the RATE server; status S from the others all the while.
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import FIRMWARE, MICROPYTHON, TOOLS
from waiting import wait_until

sys.path.insert(0, TOOLS)
from rig import Rig, day_start_ms  # noqa: E402

pytestmark = pytest.mark.slow  # runs the firmware, emulators and chrony as processes

S = 1000
MIN_POLL_MS = 15 * S  # RFC 4330 section 10: "MUST NOT ... less than 15 seconds"
BURST_MAX = 4
BURST_GAP_MS = 2 * S


def _gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def _check_manners(times, what, first_sync_within_ms=MIN_POLL_MS):
    # The first sync may burst (up to 4 requests 2 s apart, ended early by a
    # kiss or two failures); every other gap is 15 s or more. A gap of the
    # first sync is shorter than first_sync_within_ms: 15 s in real time; on a
    # fast simulated clock the caller passes the resync interval (the next sync
    # cannot start before it), since there a 2 s burst gap is a few real ms that
    # a loaded host stretches past 15 device s.
    gaps = _gaps(times)
    burst = 0
    while burst < len(gaps) and burst < BURST_MAX - 1 and gaps[burst] < first_sync_within_ms:
        assert gaps[burst] >= BURST_GAP_MS, (what, "burst gap", gaps)
        burst += 1
    rest = gaps[burst:]
    assert all(g >= MIN_POLL_MS for g in rest), (what, "gap under 15 s after the first sync", gaps)
    return rest


def test_manners_through_the_firmware_with_rate_and_silent_servers(tmp_path):
    speed = 720
    resync_s = 300
    timeout_ms = 100  # real time: at 720x a silent server costs 72 device s a request
    cfg = {"time": {"resync_s": resync_s, "retry_s": 60, "timeout_ms": timeout_ms, "samples": 4}}
    rig = Rig(tmp_path / "rig", speed=speed, start_ms=day_start_ms("2026-12-02") + 8 * 3_600_000,
              load="constant:800", sntp=("good", "good", "kod", "silent"), config=cfg, han=None, mqtt=False).start()
    try:
        t0 = rig.device_now_ms()
        rig.wait_device_ms(t0 + 2 * 3_600_000)  # two device hours
        info = rig.fw.json("time --json")
        stats = [rig.sntp_stats(i) for i in range(4)]
    finally:
        rig.stop()
    labels = ["127.0.0.1:%d" % p for p in rig.sntp_ports]
    gw, good, rate, silent = stats
    assert info["status"] == "S" and info["source"] in (labels[0], labels[1]), info
    # the answering sources: the first sync's burst, then one request per resync (the
    # next sync starts resync_s after the last one ended, and a sync waits up to two
    # timeouts on the silent server)
    round_ms = resync_s * S + 2 * timeout_ms * speed + 30 * S
    for name, st in (("gateway", gw), ("server", good)):
        rest = _check_manners(st["times_ms"], name, resync_s * S)
        assert all(resync_s * S <= g <= round_ms for g in rest[1:]), (name, rest)
        assert len(rest) >= 2 * 3600 * S // round_ms - 1, (name, len(rest))
    # RATE: one request ends the burst; then at least twice the resync interval,
    # doubling each time (a day at most)
    rest = _check_manners(rate["times_ms"], "RATE server", resync_s * S)
    assert rate["times_ms"] and len(rest) == len(rate["times_ms"]) - 1, rate  # no burst after a kiss
    for i, g in enumerate(rest):
        assert g >= (2 * resync_s * S) << i, ("RATE back-off", i, rest)
    assert info["servers"][labels[2]]["reason"] == "kod RATE", info["servers"][labels[2]]
    # silent: asked, never more often than every 15 s, and not given up on
    _check_manners(silent["times_ms"], "silent server", resync_s * S)
    assert silent["requests"] >= 3 and info["servers"][labels[3]]["status"] == "error", (silent, info["servers"])
    assert info["servers"][labels[3]]["reason"].endswith("timeout")


# --- chrony -----------------------------------------------------------------------

CHRONYD = shutil.which("chronyd") or ("/usr/sbin/chronyd" if os.path.exists("/usr/sbin/chronyd") else None)


class CountingRelay:
    # A UDP relay in front of one chronyd: forwards each request, relays the answer,
    # and notes the real time (ms) each request arrived.
    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.times_ms = []
        self.answers = 0
        self.client = None
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for s in ready:
                data, addr = s.recvfrom(2048)
                if s is self.front:
                    self.times_ms.append(time.monotonic_ns() // 1_000_000)
                    self.client = addr
                    self.back.sendto(data, self.target)
                elif self.client:
                    self.answers += 1
                    self.front.sendto(data, self.client)

    def stop(self):
        self._stop = True
        self.thread.join(2)
        self.front.close()
        self.back.close()


def _chronyd(workdir, name, port, extra=""):
    conf = os.path.join(workdir, name + ".conf")
    with open(conf, "w") as f:
        f.write("port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\ncmdport 0\n"
                "pidfile %s\n%s\n" % (port, os.path.join(workdir, name + ".pid"), extra))
    argv = [CHRONYD, "-d", "-x", "-f", conf]
    if os.geteuid() == 0:
        argv[1:1] = ["-u", "root"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _chrony_answers(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(b"\x23" + bytes(47), ("127.0.0.1", port))
        return len(s.recv(100)) >= 48
    except OSError:
        return False
    finally:
        s.close()


KEEPER = r'''
import sys
sys.path.insert(0, %(fw)r)
import asyncio, json, time
from dicamm.drivers.clock import Clock
from dicamm.services.timekeeper import TimeKeeper
a = json.loads(%(arg)r)
async def main():
    tk = TimeKeeper(Clock(1, time.time_ns() // 1000000 - 7200000, time.time_ns() // 1000000), a["config"])
    task = asyncio.create_task(tk.run())
    t0 = time.ticks_ms()
    seen = []
    while time.ticks_diff(time.ticks_ms(), t0) < a["run_ms"]:
        st = tk.status()
        if not seen or seen[-1] != st:
            seen.append(st)
        await asyncio.sleep_ms(50)
    i = tk.info()
    i["seen"] = seen
    print(json.dumps(i))
    task.cancel()
asyncio.run(main())
'''


@pytest.mark.skipif(CHRONYD is None, reason="chronyd missing: `make setup` installs Debian's chrony")
def test_manners_against_chrony(tmp_path):
    # Real time: three chronyd servers, the third rate-limiting (at most one answer
    # per 64 s, burst 1: chrony drops the rest; leak 4: one in 16 answered anyway).
    ports = [_free_udp_port() for _ in range(3)]
    procs = [_chronyd(str(tmp_path), "a", ports[0]), _chronyd(str(tmp_path), "b", ports[1]),
             _chronyd(str(tmp_path), "c", ports[2], "ratelimit interval 6 burst 1 leak 4")]
    relays = []
    try:
        for p, port in zip(procs, ports):
            wait_until(lambda: _chrony_answers(port) or p.poll() is not None, timeout=10, interval=0.1,
                       what="chronyd answering")
            assert p.poll() is None, p.stderr.read()
        relays = [CountingRelay(port) for port in ports]
        config = {"time.servers": ["127.0.0.1:%d" % r.port for r in relays], "time.samples": 2,
                  "time.timeout_ms": 500, "time.resync_s": 16, "time.retry_s": 15}
        arg = {"config": config, "run_ms": 42000}
        script = KEEPER % {"fw": FIRMWARE, "arg": json.dumps(arg)}
        r = subprocess.run([MICROPYTHON, "-X", "heapsize=512k", "-c", script], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        info = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        for x in relays:
            x.stop()
        for p in procs:
            p.terminate()
            p.wait(5)
    a, b, c = relays
    assert info["status"] == "S" and info["seen"][-1] == "S", info
    assert info["source"] in (config["time.servers"][0], config["time.servers"][1]), info
    # the chosen source's last answer is chrony's (`local stratum 8`)
    assert info["servers"][info["source"]].get("stratum") == 8, info["servers"]
    for name, relay in (("chrony a", a), ("chrony b", b), ("rate-limiting chrony", c)):
        rest = _check_manners(relay.times_ms, name)
        assert len(relay.times_ms) >= 3 and rest, (name, relay.times_ms)  # asked again after the first sync
    # the rate-limiting server dropped answers, and was asked no more often for it
    assert c.answers < len(c.times_ms), (c.answers, c.times_ms)
    assert len(c.times_ms) <= len(a.times_ms), (c.times_ms, a.times_ms)
