# The MicroPython unix port on a host (bench, simulation, tests). No pins: the
# meter is a serial device or pty given in the config (meter.port), the relay
# is emulated in the file relay.gpio under --root (a staged output's relays 2
# and 3 in relay2.gpio, relay3.gpio). The control box contact (dso.contact) is
# the file dso.contact under --root: "1" closed, "0" open; anything else, or no
# file, is an input fault (a broken wire on a supervised input): tests and
# `make sim` write it (atomically) to drive the §14a limit. The host is already
# on the network, so the firmware brings no interface up.
BOARD = {
    "name": "unix",
    "chip": None,
    "firmware_image": {"name": "unix", "version": "1.29.0",
                       "page": "none: the unix port is .venv/bin/micropython (make setup)", "frozen": False},
    "meter_uart": {"id": None, "tx": None, "rx": None, "de": None},
    "relay": {"pin": None, "active_low": False, "feedback": None, "feedback_active_low": False},
    "stages": [{"pin": None, "active_low": False, "feedback": None, "feedback_active_low": False},
               {"pin": None, "active_low": False, "feedback": None, "feedback_active_low": False}],
    "dso_input": {"pin": None, "active_low": False, "pull": None},
    "led": None,
    "safe_mode_pin": None,
    "net": {"kind": "none"},
    "fs": "host",
}
