# Board start-up; runs before main.py on the board, never on the unix port.
# The relays (the relay and a staged output's others) go to their power-up state (off) first, before anything that can
# fail; then dicamm.drivers.startup drives the board's hold pins, decides on safe mode
# (button held, safemode file, three crashes in a row, filesystem) and starts
# the watchdog unless in safe mode. main.py skips the application when
# dicamm.drivers.startup.safe_mode is set.
import machine

try:
    from board import BOARD
except Exception as e:
    BOARD = None
    print("boot: board.py:", repr(e))

try:
    for _r in [BOARD["relay"]] + list(BOARD.get("stages") or ()):
        if _r["pin"] is not None:
            machine.Pin(_r["pin"], machine.Pin.OUT, value=1 if _r["active_low"] else 0)
except Exception as e:
    print("boot: relay:", repr(e))

try:
    from dicamm.drivers import startup

    startup.boot(machine, BOARD, "")
except Exception as e:
    print("boot: start-up failed:", repr(e))
