# The pymodbus-based meter emulator (tools/meter_emu.py), driven over its pty
# with raw RTU frames: values per profile, energy integration, the element
# relay, every fault kind, and silence at the wrong baud.
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import serial

from conftest import ROOT
from dicamm.proto import profiles

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

EMU = os.path.join(ROOT, "tools", "meter_emu.py")


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes((crc & 0xFF, crc >> 8))


def frame_ok(f):
    return len(f) >= 5 and crc16(f[:-2]) == f[-2:]


class Emu:
    def __init__(self, tmp_path, *args):
        self.log = str(tmp_path / "emu.log")
        self.ctl = str(tmp_path / "emu.sock")
        self.proc = subprocess.Popen([sys.executable, EMU, "--log", self.log, "--control", self.ctl, "--seed", "1",
                                      "--pty-link", str(tmp_path / "meter.pty")] + list(args),
                                     stdout=subprocess.PIPE, text=True)
        self.pty = json.loads(self.proc.stdout.readline())["pty"]
        assert os.path.realpath(str(tmp_path / "meter.pty")) == self.pty
        self.port = serial.Serial(self.pty, 9600, timeout=0.05)

    def close(self):
        self.port.close()
        self.proc.terminate()
        self.proc.wait(5)

    def baud(self, b):
        self.port.baudrate = b

    def ask(self, unit, fn, addr, count, wait=0.4):
        req = bytes((unit, fn, addr >> 8, addr & 0xFF, count >> 8, count & 0xFF))
        self.port.reset_input_buffer()
        self.port.write(req + crc16(req))
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            out += self.port.read(300)
            if fn in (3, 4) and len(out) >= 5 and out[0] == unit and out[1] == fn and len(out) >= out[2] + 5:
                break
        return out

    def control(self, **cmd):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.ctl)
        s.sendall((json.dumps(cmd) + "\n").encode())
        reply = json.loads(s.makefile().readline())
        s.close()
        return reply

    def log_lines(self):
        with open(self.log) as f:
            return [json.loads(x) for x in f if x.strip()]


@pytest.fixture
def emu_factory(tmp_path):
    made = []

    def make(*args):
        e = Emu(tmp_path, *args)
        made.append(e)
        return e
    yield make
    for e in made:
        e.close()


def read_profile(e, unit, p):
    vals = {}
    for b in profiles.plan(p, [f for f in profiles.STANDARD if f in p["fields"]]):
        r = e.ask(unit, b[0], b[1], b[2])
        assert frame_ok(r) and r[1] == b[0] and r[2] == 2 * b[2], (p["name"], r.hex())
        vals.update(profiles.decode(p, b, r[3:-2]))
    return vals


def test_every_profile_serves_its_map(emu_factory):
    names = ["sdm72dm", "sdm630", "abb_b21", "abb_b23", "em111"]
    args = []
    for i, n in enumerate(names):
        args += ["--meter", "%d:%s" % (i + 1, n)]
    e = emu_factory(*(args + ["--meter", "9:sdm120", "--load", "constant:1500", "--import-wh", "7654321"]))
    for i, n in enumerate(names):
        p = profiles.get(n)
        v = read_profile(e, i + 1, p)
        assert v["power_w"] == 1500, (n, v)
        assert 7654321 - 100 <= v["import_wh"] <= 7654321 + 1000, (n, v)
        assert v["export_wh"] == 0
        if "voltage_v" in v:
            assert abs(v["voltage_v"] - 230.0) < 0.2
            assert abs(v["current_a"] - 1500 / 230.0 / p["phases"]) < 0.01
        log = [x for x in e.log_lines() if x["unit"] == i + 1]
        assert [x for x in log if x["import_wh"] is not None][-1]["import_wh"] == v["import_wh"]
        assert [x for x in log if x["power_w"] is not None][-1]["power_w"] == 1500
    e.baud(2400)
    v = read_profile(e, 9, profiles.get("sdm120"))
    assert v["power_w"] == 1500


def test_identification_registers(emu_factory):
    e = emu_factory("--meter", "1:sdm630", "--meter", "2:abb_b23")
    r = e.ask(1, 3, 0xFC02, 1)
    assert frame_ok(r) and profiles.ident_matches(profiles.get("sdm630"), r[3:-2])
    r = e.ask(2, 3, 0x8960, 6)
    assert frame_ok(r) and profiles.ident_matches(profiles.get("abb_b23"), r[3:-2])
    assert not profiles.ident_matches(profiles.get("abb_b21"), r[3:-2])


def test_strict_meter_refuses_holes(emu_factory):
    e = emu_factory("--meter", "2:abb_b23")
    r = e.ask(2, 3, 0x5000, 0x20)          # runs past the energy area
    assert frame_ok(r) and r[1] == 0x83 and r[2] == 2
    r = e.ask(2, 4, 0x5000, 2)             # input registers: none
    assert frame_ok(r) and r[1] == 0x84
    r = e.ask(2, 3, 0x5B00, 0x2E)          # the whole instantaneous area is fine
    assert frame_ok(r) and r[1] == 3


def test_energy_integrates_power_times_time(emu_factory):
    e = emu_factory("--meter", "1:sdm630", "--load", "constant:3600", "--speed", "100", "--import-wh", "0")
    p = profiles.get("sdm630")
    seen = []
    for _ in range(6):
        seen.append(read_profile(e, 1, p)["import_wh"])
        time.sleep(0.15)
    assert seen == sorted(seen) and seen[-1] > seen[0]
    log = [x for x in e.log_lines() if x["import_wh"] is not None]
    a, b = log[0], log[-1]
    # 3600 W is 1 Wh per device second
    expect = (b["t_ms"] - a["t_ms"]) / 1000.0
    assert abs((b["import_wh"] - a["import_wh"]) - expect) <= 2, (a, b)
    assert all(x["export_wh"] == 0 for x in log)


def test_negative_power_counts_export(emu_factory):
    e = emu_factory("--meter", "1:abb_b23", "--load", "steps:-3600,-3600:10", "--speed", "200", "--export-wh", "500")
    p = profiles.get("abb_b23")
    v1 = read_profile(e, 1, p)
    time.sleep(0.3)
    v2 = read_profile(e, 1, p)
    assert v1["power_w"] == -3600 and v2["export_wh"] > v1["export_wh"] >= 500
    assert v2["import_wh"] == v1["import_wh"]


def test_relay_file_adds_the_element(emu_factory, tmp_path):
    relay = tmp_path / "relay.gpio"
    relay.write_text("0")
    e = emu_factory("--meter", "1:em111", "--load", "constant:200", "--relay-file", str(relay), "--element-w", "3000")
    p = profiles.get("em111")
    assert read_profile(e, 1, p)["power_w"] == 200
    relay.write_text("1")
    time.sleep(0.1)
    assert read_profile(e, 1, p)["power_w"] == 3200
    e2 = emu_factory("--meter", "1:em111", "--load", "constant:200", "--relay-file", str(relay), "--element-broken")
    e.close()
    assert read_profile(e2, 1, p)["power_w"] == 200


def test_control_changes_load(emu_factory):
    e = emu_factory("--meter", "1:sdm630", "--load", "constant:100")
    assert e.control(load="constant:-750") == {"ok": True}
    assert read_profile(e, 1, profiles.get("sdm630"))["power_w"] == -750
    assert not e.control(fault="meltdown")["ok"]


def test_each_fault_kind(emu_factory):
    e = emu_factory("--meter", "1:sdm630", "--delay-ms", "700")
    good = e.ask(1, 4, 0x34, 2)
    assert frame_ok(good) and len(good) == 9

    def once(kind, wait=0.4):
        assert e.control(fault=kind, count=1) == {"ok": True}
        return e.ask(1, 4, 0x34, 2, wait)

    assert once("drop") == b""
    assert once("delay", 0.3) == b""
    time.sleep(0.6)
    late = e.port.read(100)
    assert frame_ok(late) and len(late) == 9
    r = once("corrupt")
    assert len(r) == 9 and r[:2] == b"\x01\x04" and not frame_ok(r)
    r = once("exception")
    assert frame_ok(r) and r[1] == 0x84 and r[2] in (4, 6)
    r = once("wrong_unit")
    assert frame_ok(r) and r[0] != 1 and r[1] == 4
    r = once("noise", 0.3)
    assert len(r) > 9 and not frame_ok(r)
    assert any(frame_ok(r[i:i + 9]) and r[i] == 1 for i in range(len(r) - 8))
    r = once("split")
    assert frame_ok(r) and len(r) == 9
    assert frame_ok(e.ask(1, 4, 0x34, 2))   # and back to normal
    kinds = [x["fault"] for x in e.log_lines()]
    for k in ("drop", "delay", "corrupt", "exception", "wrong_unit", "noise", "split"):
        assert k in kinds, k


def test_fault_rate(emu_factory):
    e = emu_factory("--meter", "1:sdm630", "--fault", "drop:1.0")
    assert e.ask(1, 4, 0x34, 2) == b""
    assert e.log_lines()[-1]["fault"] == "drop"


def test_wrong_baud_is_silent(emu_factory):
    e = emu_factory("--meter", "4:sdm120", "--meter", "5:sdm630:19200")
    assert e.ask(4, 4, 0x0C, 2) == b""            # pty at 9600, meter at 2400
    e.baud(2400)
    assert frame_ok(e.ask(4, 4, 0x0C, 2))
    assert e.ask(5, 4, 0x34, 2) == b""
    e.baud(19200)
    assert frame_ok(e.ask(5, 4, 0x34, 2))
    assert e.ask(4, 4, 0x0C, 2) == b""


def test_wire_timing_delays_answers(emu_factory):
    e = emu_factory("--meter", "4:sdm120", "--wire-timing")
    e.baud(2400)
    t = time.monotonic()
    r = e.ask(4, 4, 0x00, 0x4C, 1.0)               # 157-byte answer: about 0.72 s at 2400 baud
    dt = time.monotonic() - t
    assert frame_ok(r) and len(r) == 157
    assert dt >= (8 + 3.5 + 157) * 11 / 2400.0
