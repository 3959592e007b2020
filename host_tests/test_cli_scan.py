"""`meter scan` at the console on a pty: two emulated meters at different
addresses and baud rates on one bus (the emulator answers only at the pty's
current baud), found and identified while the configured meter keeps being
polled; Ctrl-C aborts a long scan and metering carries on."""
import json
import os
import time

import pytest

from rig import Rig
from test_cli_pty import PROMPT, PtyFirmware

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(__file__), "..", ".venv", "bin",
                                                                "micropython")), reason="no MicroPython")]


@pytest.fixture
def bench(tmp_path):
    rig = Rig(tmp_path / "rig", meters=("3:sdm630:9600", "17:sdm120:2400"), load="constant:500",
              sntp=(), han=None).start(firmware=False)
    root = tmp_path / "device"
    os.makedirs(root)
    with open(root / "config.json", "w") as f:
        json.dump({"meter": {"port": rig.pty, "model": "sdm630", "address": 3, "baud": 9600, "timeout_ms": 300,
                             "retries": 1}}, f)
    fw = PtyFirmware(root, clock=rig.clock).start()
    try:
        deadline = time.monotonic() + 30
        while not fw.json("status --json")["meter"].get("ok"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        yield rig, fw
    finally:
        fw.stop()
        rig.stop()


def _unit3_polls(rig):
    # Regular meter reads of unit 3 (the scan's probes read 2 registers at 0).
    return [r for r in rig.meter_reads() if r.get("unit") == 3 and r.get("count", 0) > 2]


def test_scan_finds_two_meters_at_different_bauds(bench):
    rig, fw = bench
    before = fw.polls()
    n_before = len(_unit3_polls(rig))
    fw.type("meter scan --from 1 --to 20 --bauds 9600,2400 --parities N")
    out = fw.expect("scan done", 120) + fw.expect(PROMPT, 30)
    assert "scan 9600 baud 8N1, addresses 1-20 ..." in out
    assert "found address 3 at 9600 baud 8N1: sdm630" in out, out
    assert "found address 17 at 2400 baud 8N1: sdm120" in out, out
    assert "scan done: 2 meter(s) found" in out
    assert "meter set sdm120 17 2400 N" in out          # what to type next
    # the configured meter was polled during the scan, and still is afterwards
    during = len(_unit3_polls(rig)) - n_before
    assert during >= 2, during
    after = fw.polls()
    assert after > before
    deadline = time.monotonic() + 20
    while fw.polls() <= after:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert fw.json("meter read --json")["power_w"] == 500

    d = fw.json("meter scan --from 16 --to 18 --bauds 2400 --parities N --json", timeout=60)
    assert d["found"] == [{"address": 17, "baud": 2400, "parity": "N", "model": "sdm120"}]
    assert isinstance(d["meter_polls_during_scan"], int)


def test_ctrl_c_aborts_a_scan_and_metering_goes_on(bench):
    rig, fw = bench
    fw.type("meter scan --bauds 2400,9600 --parities N,E")
    fw.expect("... 32/247", 60)                       # progress while it runs
    polls_mid = len(_unit3_polls(rig))
    fw.write(b"echo typed during the scan\r")        # waits its turn
    time.sleep(0.5)
    fw.ctrl_c()
    out = fw.expect("aborted\n", 30) + fw.expect(PROMPT, 10)
    assert "scan done" not in out
    assert fw.command("echo after abort") == ["after abort"]
    p0 = fw.polls()
    deadline = time.monotonic() + 20
    while fw.polls() <= p0:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert fw.json("meter read --json")["ok"] is True
    assert len(_unit3_polls(rig)) > polls_mid


def test_scan_and_meter_set_need_the_pin(bench):
    rig, fw = bench
    fw.command("config set service.pin 4711")
    assert fw.command("meter scan --to 2") == [
        "error: this command needs the service PIN: add --pin PIN or run 'unlock PIN'"]
    assert fw.command("meter set sdm120 17 2400") == [
        "error: this command needs the service PIN: add --pin PIN or run 'unlock PIN'"]
    assert fw.json("meter read --json")["ok"] is True          # reading needs no PIN
    out = fw.command("meter set sdm120 17 2400 --pin 4711")
    assert out[0].startswith("meter set: sdm120 address 17, 2400 baud N")
