# The MicroPython unix port on a host (bench, simulation, tests). No pins: the
# meter is a serial device or pty given in the config (meter.port), the relay
# is emulated in the file relay.gpio under --root. The host is already on the
# network, so the firmware brings no interface up.
BOARD = {
    "name": "unix",
    "chip": None,
    "firmware_image": {"name": "unix", "version": "1.29.0",
                       "page": "none: the unix port is .venv/bin/micropython (make setup)", "frozen": False},
    "meter_uart": {"id": None, "tx": None, "rx": None, "de": None},
    "relay": {"pin": None, "active_low": False, "feedback": None, "feedback_active_low": False},
    "led": None,
    "safe_mode_pin": None,
    "net": {"kind": "none"},
    "fs": "host",
}
