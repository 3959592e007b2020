# Fail soft: the firmware started without umqtt on its path (a board where
# `mpremote mip install umqtt.simple` was forgotten) meters, keeps the load profile
# and switches the relay; MQTT is off with the fault that says what to do.
import os
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import FIRMWARE, MICROPYTHON, ROOT, TOOLS
from waiting import wait_until

sys.path.insert(0, TOOLS)
import broker as brokermod  # noqa: E402
from fwproc import Firmware  # noqa: E402
from rig import Rig, day_start_ms  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(brokermod.MOSQUITTO), reason="mosquitto not installed")]

FAULT = "umqtt.simple missing - mpremote mip install umqtt.simple@1.8.0"


class NoUmqttFirmware(Firmware):
    # firmware/main.py copied beside the device folder (so it adds no build/lib),
    # the firmware and the board files on MICROPYPATH: no umqtt anywhere
    def start(self):
        main = os.path.join(os.path.dirname(self.root_dir), "main.py")
        shutil.copyfile(os.path.join(FIRMWARE, "main.py"), main)
        env = dict(os.environ, MICROPYPATH=":".join([".frozen", FIRMWARE, os.path.join(ROOT, "boards")]))
        argv = [MICROPYTHON, "-X", "heapsize=%s" % self.heap, main, "--board", self.board, "--root", self.root_dir]
        argv += self.clock.args()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0, env=env)
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        return self


class NoUmqttRig(Rig):
    def start_firmware(self, wait_ready=True):
        self.write_config()
        self.fw = NoUmqttFirmware(self.root, clock=self.clock, heap=self.heap).start()
        if wait_ready:
            self.ready = self.fw.wait_ready()
        return self.fw


def test_without_umqtt_the_device_meters_profiles_and_switches(tmp_path):
    day0 = day_start_ms("2026-11-29")
    rig = NoUmqttRig(tmp_path / "rig", speed=120, start_ms=day0 + 14 * 60_000, mqtt=True,
                     slow=(20, 1000, 10000)).start()
    try:
        fw = rig.fw
        st = fw.json("status --json")
        assert st["faults"].get("mqtt") == FAULT, st["faults"]
        assert "FAULT   mqtt: " + FAULT in fw.command("status")
        # metering
        m = wait_until(lambda: (lambda r: r if r.get("power_w") is not None else None)(fw.json("meter read --json")),
                       30, 0.2, "a meter reading")
        assert m["import_wh"] > 0
        # the load profile: the boundaries at 00:15 and 00:30 are values
        wait_until(lambda: fw.json("status --json")["qh"]["values"] >= 2, 60, 0.3, "two quarter-hour values")
        qh = fw.json("qh --json --last 10")["qh"]
        assert [r["boundary"] for r in qh if "import_wh" in r][:2] == [day0 // 1000 + 900, day0 // 1000 + 1800], qh
        # relay control: the installer switches on, then back to auto (off)
        assert "relay on requested" in fw.command("relay on 5")[0]
        wait_until(lambda: fw.json("relay --json")["state"] == "on", 20, 0.1, "relay on")
        assert open(os.path.join(rig.root, "relay.gpio")).read() == "1"
        fw.command("relay off 5")
        wait_until(lambda: fw.json("relay --json")["state"] == "off", 30, 0.1, "relay off")
        assert open(os.path.join(rig.root, "relay.gpio")).read() == "0"
        # still without MQTT, and said so, not a dead device
        st = fw.json("status --json")
        assert st["faults"].get("mqtt") == FAULT and st.get("mqtt") in (None, {}), st
        assert fw.alive() and not [ln for ln in fw.stderr if "Traceback" in ln], fw.stderr
    finally:
        rig.stop()
