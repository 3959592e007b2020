# Start-up on a board: crash counter, safe-mode decision, watchdog. boot.py
# calls boot() after it has put the relay into its power-up state; the
# application reads the outcome (safe_mode, crashes), feeds the watchdog with
# feed() and calls mark_healthy() once it has run stably.
#
# This module imports nothing from the rest of the package on purpose: safe
# mode must still work when another module is broken. Hence its own atomic
# write rather than fsutil's.
#
# Counting: a watchdog reset is an unclean start and adds one; a power-on,
# reset button or deep-sleep wake clears the count (a fresh try); any other
# start (machine.reset(), a soft reboot) leaves it as it is. The application
# counts its own fatal errors with crash_reset(). Three in a row: safe mode.
import os

from micropython import const

CRASH_FILE = "crash.count"
SAFE_FLAG = "safemode"  # present: safe mode until leave_safe_mode()
CRASH_LIMIT = const(3)
WDT_MS = const(30000)
_PIN_READS = const(5)

# Outcome of boot(), read by main.py and the application.
safe_mode = None  # None, or why: "pin", "requested", "crashes", "fs", "board"
crashes = 0
reset_cause = None
wdt = None


def path(root, name):
    if not root:
        return name
    return root + name if root.endswith("/") else root + "/" + name


def read_count(root=""):
    try:
        with open(path(root, CRASH_FILE)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0  # missing or torn: no evidence of a crash


def write_count(root, n):
    # Atomic: a power cut leaves the old or the new count, never half a file.
    p = path(root, CRASH_FILE)
    with open(p + ".tmp", "w") as f:
        f.write(str(n))
        f.flush()
    os.rename(p + ".tmp", p)


def increment(root=""):
    n = read_count(root) + 1
    write_count(root, n)
    return n


def clear(root=""):
    if read_count(root):
        write_count(root, 0)


def next_count(cause, count, machine):
    # The crash count after a start with reset cause `cause`.
    if cause == getattr(machine, "WDT_RESET", 3):
        return count + 1
    fresh = (getattr(machine, "PWRON_RESET", 1), getattr(machine, "HARD_RESET", 2),
             getattr(machine, "DEEPSLEEP_RESET", 4))
    if cause in fresh:
        return 0
    return count


def decide(pin_held, requested, count):
    # Why the board starts in safe mode, or None for a normal start.
    if pin_held:
        return "pin"
    if requested:
        return "requested"
    if count >= CRASH_LIMIT:
        return "crashes"
    return None


def pin_held(machine, pin):
    # The safe-mode button pulls the pin low; all reads must agree (bounce).
    if pin is None:
        return False
    Pin = machine.Pin
    try:
        p = Pin(pin, Pin.IN, Pin.PULL_UP)
    except (ValueError, OSError):
        p = Pin(pin, Pin.IN)  # input-only pins have external pull-ups
    import time
    for _ in range(_PIN_READS):
        if p.value():
            return False
        time.sleep_ms(5)
    return True


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def boot(machine, board, root=""):
    # Everything boot.py does after the relay; returns safe_mode.
    global safe_mode, crashes, reset_cause, wdt
    if not board:
        safe_mode = "board"
        print("boot: no board.py: safe mode")
        return safe_mode
    for pin, level in board.get("meter_uart", {}).get("hold", ()):
        machine.Pin(pin, machine.Pin.OUT, value=level)
    held = pin_held(machine, board.get("safe_mode_pin"))
    reset_cause = machine.reset_cause()
    fs_bad = False
    try:
        os.statvfs(root or "/")
        prev = read_count(root)
        crashes = next_count(reset_cause, prev, machine)
        if crashes != prev:
            write_count(root, crashes)
    except OSError as e:
        fs_bad = True
        print("boot: filesystem not writable:", e)
    safe_mode = "fs" if fs_bad and not held else decide(held, _exists(path(root, SAFE_FLAG)), crashes)
    if safe_mode:
        led = board.get("led")
        if led is not None:
            machine.Pin(led, machine.Pin.OUT, value=1)
        # No watchdog in safe mode: an ESP32 cannot stop it again, and the
        # console must stay usable.
        print("boot: SAFE MODE (%s), %d crash(es): application skipped." % (safe_mode, crashes))
        print("boot: leave with: import dicamm.drivers.startup as s; s.leave_safe_mode()")
    else:
        wdt = machine.WDT(timeout=board.get("watchdog_ms", WDT_MS))
    return safe_mode


def feed():
    if wdt is not None:
        wdt.feed()


def mark_healthy(root=""):
    # The application has run stably: past crashes no longer count.
    global crashes
    crashes = 0
    clear(root)


def request_safe_mode(root=""):
    with open(path(root, SAFE_FLAG), "w") as f:
        f.write("1")


def leave_safe_mode(root="", reset=True):
    try:
        os.remove(path(root, SAFE_FLAG))
    except OSError:
        pass
    clear(root)
    if reset:
        import machine
        machine.reset()


def crash_reset(root=""):
    # Last resort of the application after a fatal error: count it, restart.
    try:
        increment(root)
    finally:
        import machine
        machine.reset()


async def watchdog():
    # The app's "watchdog" task: feeds the board's watchdog (started by
    # boot.py) from the event loop, so that a task that hogs the loop resets
    # the board. After ten quiet minutes the crash counter is cleared.
    # (asyncio is imported here: boot.py imports this module without it.)
    import time
    from dicamm.platform import asyncio
    healthy_at = time.ticks_add(time.ticks_ms(), 600000)
    while True:
        feed()
        if healthy_at is not None and time.ticks_diff(time.ticks_ms(), healthy_at) >= 0:
            mark_healthy()
            healthy_at = None
        await asyncio.sleep_ms(5000)
