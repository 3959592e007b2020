"""SNTP server emulator for the bench: answers on 127.0.0.1 from the simulated clock.

    python tools/sntp_emu.py [--port N] [--mode MODE] [--control FILE] [simclock args]

Prints {"port": N} as one JSON line when it listens (port 0 = pick a free one);
start several instances for several servers. Modes:

    good              correct time (the simulated clock)
    offset:SECONDS    answer SECONDS off (may be negative or fractional)
    jump:SECONDS[@AFTER]  step our time by SECONDS, AFTER device seconds from now
                      (default at once); steps add up and stay
    silent            read requests, never answer
    kod[:CODE]        kiss-o'-death (stratum 0, reference ID CODE, default RATE)
    stratum0          stratum 0 with an empty reference ID
    unsync            leap indicator 3 (clock not synchronised), stratum 16

"good" also clears any offset; the other answering modes keep the current one.
The mode can be changed at run time by writing it into the --control file
(read when it changes) or by sending the UDP datagram b"mode MODE" to the server
port (answer b"ok MODE" or b"error ..."). Each change is printed as a JSON line.
The datagram b"stats" is answered with JSON: {"requests": N, "times_ms": [...]},
the simulated time of every client request so far (to check a client's manners).
"""
import argparse
import json
import os
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclock import SimClock  # noqa: E402

NTP_UNIX_S = 2208988800
ANSWER_KINDS = ("good", "kod", "stratum0", "unsync")


def ntp_bytes(unix_ms):
    s, ms = divmod(unix_ms, 1000)
    return ((s + NTP_UNIX_S) % (1 << 32)).to_bytes(4, "big") + ((ms << 32) // 1000).to_bytes(4, "big")


class SntpEmu:
    def __init__(self, clock, mode="good"):
        self.clock = clock
        self.kind = "good"
        self.kod_code = "RATE"
        self.offset_ms = 0
        self.jumps = []  # [(device_ms, delta_ms)]
        self.answered = 0
        self.requests = 0
        self.times_ms = []  # simulated time of each client request
        self.set_mode(mode)

    def set_mode(self, text):
        text = text.strip()
        name, _, arg = text.partition(":")
        if name == "good":
            self.kind, self.offset_ms, self.jumps = "good", 0, []
        elif name == "offset":
            self.kind, self.offset_ms = "good", round(float(arg) * 1000)
        elif name == "jump":
            delta, _, after = arg.partition("@")
            at = self.clock.now_ms() + round(float(after or 0) * 1000)
            self.kind = "good" if self.kind == "silent" else self.kind
            self.jumps.append((at, round(float(delta) * 1000)))
            self.apply_jumps()
        elif name == "silent":
            self.kind = "silent"
        elif name == "kod":
            code = arg or "RATE"
            if not 1 <= len(code) <= 4 or not code.isascii():
                raise ValueError("kiss code must be 1-4 ASCII characters")
            self.kind, self.kod_code = "kod", code
        elif name in ("stratum0", "unsync"):
            self.kind = name
        else:
            raise ValueError("unknown mode %r" % text)
        self.mode = text

    def apply_jumps(self):
        now = self.clock.now_ms()
        due = [j for j in self.jumps if j[0] <= now]
        for j in due:
            self.offset_ms += j[1]
            self.jumps.remove(j)
            emit({"event": "jump", "by_ms": j[1], "offset_ms": self.offset_ms})

    def now_ms(self):
        return self.clock.now_ms() + self.offset_ms

    def answer(self, req, t2_ms):
        # -> reply bytes or None (silent, or not a client request)
        if len(req) < 48 or req[0] & 7 != 3:
            return None
        self.requests += 1
        self.times_ms.append(self.clock.now_ms())
        if self.kind == "silent":
            return None
        vn = (req[0] >> 3) & 7 or 4
        li, stratum, refid = 0, 1, b"PTB\0"
        if self.kind == "kod":
            li, stratum, refid = 3, 0, self.kod_code.encode().ljust(4, b"\0")
        elif self.kind == "stratum0":
            li, stratum, refid = 0, 0, b"\0\0\0\0"
        elif self.kind == "unsync":
            li, stratum, refid = 3, 16, b"\0\0\0\0"
        head = bytes([(li << 6) | (vn << 3) | 4, stratum, req[2], 0xEC])  # precision 2**-20 s
        root = (0).to_bytes(4, "big") + (0x10).to_bytes(4, "big")  # root delay, dispersion
        ref = ntp_bytes(t2_ms - 16000)  # "last set 16 s ago"
        t3_ms = self.now_ms()
        self.answered += 1
        return head + root + refid + ref + bytes(req[40:48]) + ntp_bytes(t2_ms) + ntp_bytes(t3_ms)

    def control(self, text):
        try:
            self.set_mode(text)
        except ValueError as e:
            return "error %s" % e
        emit({"mode": self.mode, "offset_ms": self.offset_ms})
        return "ok " + self.mode


def emit(obj):
    print(json.dumps(obj), flush=True)


def read_control(path, last):
    # -> (new text or None, new stamp)
    try:
        st = os.stat(path)
    except OSError:
        return None, last
    stamp = (st.st_mtime_ns, st.st_size)
    if stamp == last:
        return None, last
    with open(path) as f:
        text = f.read().strip()
    return (text or None), stamp


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", default="good")
    p.add_argument("--control", help="file holding the mode; re-read when it changes")
    SimClock.add_arguments(p)
    a = p.parse_args(argv)
    emu = SntpEmu(SimClock.from_args(a), a.mode)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", a.port))
    ctl_stamp = None
    if a.control:
        text, ctl_stamp = read_control(a.control, None)
        if text:  # a control file that already holds a mode wins over --mode
            emu.set_mode(text)
    emit({"port": sock.getsockname()[1], "mode": emu.mode})
    while True:
        ready, _, _ = select.select([sock], [], [], 0.05)
        emu.apply_jumps()
        if a.control:
            text, ctl_stamp = read_control(a.control, ctl_stamp)
            if text:
                emu.control(text)
        if not ready:
            continue
        data, addr = sock.recvfrom(512)
        t2 = emu.now_ms()
        if data == b"stats":
            sock.sendto(json.dumps({"requests": emu.requests, "times_ms": emu.times_ms}).encode(), addr)
            continue
        if data.startswith(b"mode "):
            sock.sendto(emu.control(data[5:].decode("ascii", "replace")).encode(), addr)
            continue
        out = emu.answer(data, t2)
        if out is not None:
            sock.sendto(out, addr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
