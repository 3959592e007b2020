# Every board file loads on the MicroPython unix port (with the fake machine on
# sys.path, as a driver would see it), defines only BOARD, and its pins are
# plausible for its chip: ints or None, none used twice, none on the flash.
import glob
import json
import os
import subprocess

import pytest

from conftest import MICROPYTHON, ROOT

BOARDS = os.path.join(ROOT, "boards")
FAKES = os.path.join(ROOT, "host_tests", "fakes")
NAMES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(BOARDS, "*.py")))
REQUIRED = {"esp32_devkitc", "esp32s3_devkitc", "olimex_esp32_poe_iso", "lilygo_t_can485", "unix"}
KEYS = {"name", "chip", "firmware_image", "meter_uart", "relay", "stages", "dso_input", "led", "safe_mode_pin",
        "net", "fs"}

# Pins a board must not use: SPI flash (and octal PSRAM, USB, console on the S3).
FORBIDDEN = {"esp32": set(range(6, 12)) | {1, 3},
             "esp32s3": set(range(26, 38)) | {19, 20, 43, 44},
             "esp32c3": set(range(12, 18)) | {18, 19, 20, 21}}
INPUT_ONLY = {"esp32": set(range(34, 40)), "esp32s3": set(), "esp32c3": set()}
MAX_GPIO = {"esp32": 39, "esp32s3": 48, "esp32c3": 21}


def _load_all():
    script = ("import sys, json\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\nimport machine\n"
              "out = {}\nfor n in %r:\n    m = __import__(n)\n"
              "    out[n] = {'board': m.BOARD, 'names': [k for k in dir(m) if not k.startswith('__')]}\n"
              "print(json.dumps(out))\n") % (FAKES, BOARDS, NAMES)
    r = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


LOADED = {}


def loaded(name):
    if not LOADED:
        LOADED.update(_load_all())
    return LOADED[name]


def pins(board):
    """(role, pin, is_output) for every GPIO the board file names."""
    u, r, n = board["meter_uart"], board["relay"], board["net"]
    out = [("uart tx", u["tx"], True), ("uart rx", u["rx"], False), ("rs485 de", u["de"], True),
           ("relay", r["pin"], True), ("relay feedback", r["feedback"], False),
           ("led", board["led"], True), ("safe mode", board["safe_mode_pin"], False)]
    out += [("hold", p, True) for p, _ in u.get("hold", ())]
    for i, st in enumerate(board["stages"]):
        out += [("relay %d" % (i + 2), st["pin"], True), ("relay %d feedback" % (i + 2), st["feedback"], False)]
    out.append(("dso contact", board["dso_input"]["pin"], False))
    if n["kind"] == "ethernet":
        out += [("eth mdc", n["mdc"], True), ("eth mdio", n["mdio"], True),
                ("eth power", n["power"], True), ("eth ref_clk", n["ref_clk"], n["ref_clk_mode"] == "out")]
    return out


def test_required_boards_present():
    assert REQUIRED <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_board_shape(name):
    got = loaded(name)
    assert got["names"] == ["BOARD"], "a board file defines BOARD and nothing else"
    b = got["board"]
    assert set(b) == KEYS
    assert b["name"] == name
    assert b["chip"] in (None, "esp32", "esp32s3", "esp32c3")
    img = b["firmware_image"]
    assert isinstance(img["name"], str) and img["name"] and img["version"].count(".") == 2 and img["page"]
    if b["chip"] == "esp32s3":
        assert "S3" in img["name"]
    # frozen: the image must have the firmware frozen in (no PSRAM: .mpy does not fit)
    assert img["frozen"] is (b["chip"] == "esp32"), "ESP32 boards here have no PSRAM"
    assert {"id", "tx", "rx", "de"} <= set(b["meter_uart"]) <= {"id", "tx", "rx", "de", "hold"}
    assert set(b["relay"]) == {"pin", "active_low", "feedback", "feedback_active_low"}
    assert isinstance(b["relay"]["active_low"], bool) and isinstance(b["relay"]["feedback_active_low"], bool)
    # a staged output (relay.stages_w) of up to 3 relays; the control box contact (§14a)
    assert len(b["stages"]) == 2 and all(set(st) == set(b["relay"]) for st in b["stages"])
    assert set(b["dso_input"]) == {"pin", "active_low", "pull"} and b["dso_input"]["pull"] in (None, "up", "down")
    assert b["net"]["kind"] in ("wifi", "ethernet", "none")
    if b["net"]["kind"] == "ethernet":
        assert b["net"]["phy"] == "LAN8720" and isinstance(b["net"]["phy_addr"], int)
    for role, pin, _ in pins(b):
        assert pin is None or (isinstance(pin, int) and not isinstance(pin, bool)), (role, pin)
    for pin, level in b["meter_uart"].get("hold", ()):
        assert level in (0, 1)


@pytest.mark.parametrize("name", NAMES)
def test_board_pins(name):
    b = loaded(name)["board"]
    used = [(role, pin, is_out) for role, pin, is_out in pins(b) if pin is not None]
    if b["chip"] is None:
        assert used == [] and b["fs"] == "host" and b["meter_uart"]["id"] is None
        return
    assert b["fs"] == "littlefs"
    assert b["meter_uart"]["id"] in (1, 2), "UART0 is the console"
    assert b["relay"]["pin"] is not None
    seen = {}
    for role, pin, is_out in used:
        assert pin not in seen, "GPIO%d used for %s and %s" % (pin, seen.get(pin), role)
        seen[pin] = role
        assert 0 <= pin <= MAX_GPIO[b["chip"]], (role, pin)
        assert pin not in FORBIDDEN[b["chip"]], (role, pin)
        if is_out:
            assert pin not in INPUT_ONLY[b["chip"]], "%s on input-only GPIO%d" % (role, pin)
