# boot.py and dicamm.drivers.startup: boot.py runs on the MicroPython unix port with
# the fake machine (host_tests/fakes) in a scratch directory that stands for
# the board's filesystem; the helpers are also tested directly under CPython.
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import FIRMWARE, MICROPYTHON, ROOT

FAKES = os.path.join(ROOT, "host_tests", "fakes")
BOOT = os.path.join(FIRMWARE, "boot.py")

_RUNNER = """
import sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
exec(open(%r).read())
import json, machine
from dicamm.drivers import startup
print(json.dumps({"log": machine.LOG, "safe": startup.safe_mode, "crashes": startup.crashes,
                  "wdt": startup.wdt is not None}))
"""


def run_boot(tmp_path, reset_cause=1, inputs=None, board="esp32_devkitc", board_text=None):
    if board_text is None and board:
        board_text = open(os.path.join(ROOT, "boards", board + ".py")).read()
    if board_text is not None:
        (tmp_path / "board.py").write_text(board_text)
    (tmp_path / "fake_machine.json").write_text(json.dumps({"reset_cause": reset_cause, "inputs": inputs or {}}))
    (tmp_path / "run.py").write_text(_RUNNER % (FIRMWARE, FAKES, BOOT))
    r = subprocess.run([MICROPYTHON, "run.py"], cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["stdout"] = r.stdout
    return out


def test_power_on_relay_off_first_then_watchdog(tmp_path):
    out = run_boot(tmp_path)
    # The very first hardware action: relay pin 23 as output, driven low (off).
    assert out["log"][0] == ["pin", 23, 3, -1, 0]
    assert ["wdt", 30000] in out["log"]
    assert out["safe"] is None and out["wdt"] and out["crashes"] == 0


def test_active_low_relay_driven_high(tmp_path):
    text = open(os.path.join(ROOT, "boards", "esp32_devkitc.py")).read()
    text = text.replace('"active_low": False', '"active_low": True')
    out = run_boot(tmp_path, board_text=text)
    assert out["log"][0] == ["pin", 23, 3, -1, 1]


def test_hold_pins_after_relay(tmp_path):
    out = run_boot(tmp_path, board="lilygo_t_can485")
    assert out["log"][0] == ["pin", 32, 3, -1, 0]
    # a staged output's relays 2 and 3 (relay.stages_w) are off before anything else too
    assert out["log"][1:3] == [["pin", 18, 3, -1, 0], ["pin", 23, 3, -1, 0]]
    assert out["log"][3:6] == [["pin", 16, 3, -1, 1], ["pin", 19, 3, -1, 1], ["pin", 17, 3, -1, 1]]


def test_three_watchdog_resets_in_a_row_give_safe_mode(tmp_path):
    for n in (1, 2):
        out = run_boot(tmp_path, reset_cause=3)
        assert out["crashes"] == n and out["safe"] is None and out["wdt"]
    out = run_boot(tmp_path, reset_cause=3)
    assert out["crashes"] == 3 and out["safe"] == "crashes"
    assert out["log"][0] == ["pin", 23, 3, -1, 0]
    assert not out["wdt"] and not any(e[0] == "wdt" for e in out["log"])
    assert "SAFE MODE (crashes)" in out["stdout"]
    assert ["pin", 2, 3, -1, 1] in out["log"]  # status LED on
    # machine.reset() or a soft reboot keeps the count: still safe mode
    assert run_boot(tmp_path, reset_cause=5)["safe"] == "crashes"
    # a power-on is a fresh try
    out = run_boot(tmp_path, reset_cause=1)
    assert out["crashes"] == 0 and out["safe"] is None
    assert (tmp_path / "crash.count").read_text() == "0"


def test_safe_mode_pin_held(tmp_path):
    out = run_boot(tmp_path, inputs={"0": 0})
    assert out["safe"] == "pin" and not out["wdt"]
    assert out["log"][0] == ["pin", 23, 3, -1, 0]


def test_safe_mode_pin_released(tmp_path):
    assert run_boot(tmp_path, inputs={"0": 1})["safe"] is None


def test_safe_mode_flag_file(tmp_path):
    (tmp_path / "safemode").write_text("1")
    assert run_boot(tmp_path)["safe"] == "requested"


def test_no_board_file(tmp_path):
    out = run_boot(tmp_path, board=None)
    assert out["safe"] == "board" and out["log"] == []


def test_boot_compiles_with_mpy_cross(tmp_path):
    from conftest import MPY_CROSS
    for f in (BOOT, os.path.join(FIRMWARE, "dicamm", "drivers", "startup.py")):
        r = subprocess.run([MPY_CROSS, "-march=xtensawin", "-o", str(tmp_path / "x.mpy"), f],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# -- helpers under CPython ------------------------------------------------------

class _M:
    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5


@pytest.mark.parametrize("cause,before,after", [
    (3, 0, 1), (3, 2, 3), (1, 2, 0), (2, 2, 0), (4, 1, 0), (5, 2, 2), (0, 1, 1),
])
def test_next_count(cause, before, after):
    from dicamm.drivers import startup
    assert startup.next_count(cause, before, _M) == after


@pytest.mark.parametrize("held,flag,count,reason", [
    (False, False, 0, None), (False, False, 2, None), (False, False, 3, "crashes"),
    (True, False, 0, "pin"), (False, True, 0, "requested"), (True, True, 5, "pin"),
])
def test_decide(held, flag, count, reason):
    from dicamm.drivers import startup
    assert startup.decide(held, flag, count) == reason


def test_counter_file(tmp_path):
    from dicamm.drivers import startup
    root = str(tmp_path)
    assert startup.read_count(root) == 0
    assert startup.increment(root) == 1 and startup.increment(root) == 2
    assert startup.read_count(root) == 2
    assert not os.path.exists(os.path.join(root, "crash.count.tmp"))
    (tmp_path / "crash.count").write_text("")  # torn: counts as no crash
    assert startup.read_count(root) == 0
    startup.write_count(root, 3)
    startup.mark_healthy(root)
    assert startup.read_count(root) == 0 and startup.crashes == 0
    assert startup.path("", "x") == "x" and startup.path("/d/", "x") == "/d/x"


def test_safe_flag_and_crash_reset(tmp_path, monkeypatch):
    from dicamm.drivers import startup
    monkeypatch.syspath_prepend(FAKES)
    sys.modules.pop("machine", None)
    root = str(tmp_path)
    startup.request_safe_mode(root)
    assert (tmp_path / "safemode").exists()
    startup.write_count(root, 2)
    with pytest.raises(SystemExit):
        startup.leave_safe_mode(root)
    assert not (tmp_path / "safemode").exists() and startup.read_count(root) == 0
    with pytest.raises(SystemExit):
        startup.crash_reset(root)
    assert startup.read_count(root) == 1
    import machine
    assert machine.LOG[-1] == ("reset",)
    sys.modules.pop("machine", None)
