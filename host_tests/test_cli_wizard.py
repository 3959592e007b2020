"""The commissioning wizard from factory state (empty config) to a passing
selftest, typed at the console on a pty as an installer would: emulators from
the bench rig (meter, SNTP, HAN gateway with mutual TLS, mosquitto), the
firmware started by hand on an empty root, certificates pasted as PEM."""
import os
import re
import time

import pytest

from rig import Rig
from test_cli_pty import PROMPT, PtyFirmware

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(__file__), "..", ".venv", "bin",
                                                                "micropython")), reason="no MicroPython")]


def _pem_lines(path):
    with open(path) as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]


def test_wizard_from_factory_state_to_passing_selftest(tmp_path):
    rig = Rig(tmp_path / "rig", meters=("1:sdm630",), load="constant:700", mqtt=True).start(firmware=False)
    root = tmp_path / "fresh"
    fw = PtyFirmware(root, clock=rig.clock).start()
    fw2 = None
    try:
        assert not os.path.exists(root / "config.json")
        assert fw.json("status --json")["meter"]["ok"] is False

        def answer(question, text, timeout=30):
            fw.expect(question, timeout)
            fw.expect(": ", 5)
            fw.type(text)

        fw.type("setup")
        fw.expect("== 1/6 Meter")
        answer("serial port of the meter", rig.pty)
        answer("meter model", "sdm630")
        answer("Modbus address", "")                       # Enter keeps [1]
        answer("baud rate", "")                            # [9600] from the profile
        answer("parity", "")
        out = fw.expect("meter answers: ", 30) + fw.expect("\n")
        assert "reading the meter: sdm630 at address 1, 9600 baud 8N1" in out
        answer("hostname", "")
        fw.expect("== 3/6 Time")
        answer("gateway SNTP host", "127.0.0.1:%d" % rig.sntp_ports[0])
        # a wrong answer is refused with the reason and asked again
        answer("NTP servers", "not a host/name")
        fw.expect("error: time.servers")
        answer("NTP servers", ",".join("127.0.0.1:%d" % p for p in rig.sntp_ports[1:]))
        fw.expect("time synchronised with", 60)
        # 'back' returns to the previous step, Enter keeps what was typed there
        answer("CLS-ID", "back")
        fw.expect("== 3/6 Time")
        answer("gateway SNTP host", "")
        answer("NTP servers", "")
        fw.expect("time synchronised with", 60)
        answer("CLS-ID", "CLS-PTY-0042")
        answer("device id", "")
        fw.expect("== 5/6 Smart meter gateway")
        answer("gateway URL", "https://127.0.0.1:%d/taf16" % rig.han_port)
        for question, name in (("gateway CA certificate", "ca.pem"), ("device certificate", "device.pem"),
                               ("device private key", "device.key.pem")):
            fw.expect(question)
            fw.expect(": ", 5)
            for line in _pem_lines(os.path.join(rig.pki, name)):   # pasted line by line
                fw.type(line)
            fw.expect("stored as certs/")
        out = fw.expect("== 6/6", 60)
        assert "PASS 127.0.0.1:%d TLS handshake with both certificates ok" % rig.han_port in out, out
        answer("MQTT broker host", "127.0.0.1")
        answer("MQTT port", str(rig.broker.port))
        answer("MQTT user", "")
        answer("MQTT password", "")
        answer("MQTT over TLS", "no")
        out = fw.expect("configuration saved:", 60)
        assert "PASS 127.0.0.1:%d accepted CONNECT" % rig.broker.port in out, out
        fw.expect("== selftest ==\n", 30)
        out = fw.expect(re.compile(r"selftest (PASSED|FAILED).*\n"), 90)
        for check in ("meter", "time", "relay", "gateway", "broker", "storage"):
            assert ("PASS %-8s" % check) in out, out
        assert "selftest PASSED" in out, out
        answer("reboot now", "yes")
        fw.expect("the firmware exits now")
        assert fw.wait_exit() == 0

        # what was saved: the answers, the certificates as DER files
        import json
        cfg = json.load(open(root / "config.json"))
        assert cfg["cls_id"] == "CLS-PTY-0042" and cfg["meter.model"] == "sdm630" and cfg["meter.port"] == rig.pty
        assert cfg["han.ca"] == "certs/han.ca.der" and os.path.getsize(root / "certs" / "han.key.der") > 30
        assert open(root / "certs" / "han.ca.der", "rb").read() == open(os.path.join(rig.pki, "ca.der"), "rb").read()

        # started again: metering, time, gateway and broker all up with the saved settings
        fw2 = PtyFirmware(root, clock=rig.clock).start()
        fw2_deadline = time.monotonic() + 60
        while True:
            d = fw2.json("status --json")
            if d["meter"].get("ok") and d.get("mqtt", {}).get("connected") and d["time"]["status"] == "S":
                break
            assert time.monotonic() < fw2_deadline, d
            time.sleep(0.5)
        assert d["meter"]["power_w"] == 700
        sel = fw2.json("selftest --json", timeout=90)
        assert sel["ok"] is True, sel
        fw2.type("event 'after setup'")
        fw2.expect(PROMPT)
        deadline = time.monotonic() + 30
        while not any(e.get("text") == "after setup" for e in rig.gateway_events()):
            assert time.monotonic() < deadline, rig.gateway_events()
            time.sleep(0.3)
    finally:
        fw.stop()
        if fw2 is not None:
            fw2.stop()
        rig.stop()


def test_wizard_quit_saves_nothing_and_ctrl_c_aborts(tmp_path):
    root = tmp_path / "fresh"
    fw = PtyFirmware(root).start()
    try:
        fw.type("setup")
        fw.expect("serial port of the meter")
        fw.expect(": ")
        fw.type("/dev/null-nothing")
        fw.expect("meter model")
        fw.expect(": ")
        fw.type("quit")
        fw.expect("setup left: nothing saved\n" + PROMPT)
        assert not os.path.exists(root / "config.json")
        assert fw.json("config show meter --json")["meter.port"] == ""
        fw.type("setup")
        fw.expect("serial port of the meter")
        fw.ctrl_c()
        fw.expect("aborted\n" + PROMPT)
        assert fw.command("echo still here") == ["still here"]
        assert fw.json("config show meter --json")["meter.port"] == ""
    finally:
        fw.stop()
