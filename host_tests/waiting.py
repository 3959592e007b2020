# Waiting for a condition in the end-to-end tests: poll with a generous
# deadline, never assert on wall-clock speed (the machine may be loaded).
import contextlib
import time


def wait_until(fn, timeout=60, interval=0.1, what="condition"):
    """Call fn until it returns something true; return that, or fail after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last %r)" % (what, last))


def relay(rig):
    """The firmware's `relay --json`."""
    return rig.fw.json("relay --json")


def wait_relay(rig, pred, timeout=60, what="relay state"):
    """Wait until pred(relay --json); return that answer, or fail showing the last one."""
    box = {}

    def check():
        box["st"] = relay(rig)
        return pred(box["st"])
    try:
        wait_until(check, timeout, 0.1, what)
    except AssertionError:
        raise AssertionError("timed out waiting for %s; last relay --json %r" % (what, box.get("st")))
    return box["st"]


def ready(rig):
    """Wait until the firmware reads the meter and its controller runs."""
    rig.fw.wait_for("status --json", lambda d: d.get("meter", {}).get("ok") and d.get("controller"), timeout=60)


def wait_delivered(rig, timeout=120):
    """Wait until the outbox has no TAF16 event pending; return its status."""
    return rig.fw.wait_for("events --json --last 1", lambda d: d["status"]["pending"] == 0, timeout=timeout,
                           interval=0.3)["status"]


@contextlib.contextmanager
def running(rig, up=ready):
    """A started rig, once up(rig) has seen the firmware ready; stopped whatever happens.
    A module fixture: `with running(Rig(...)) as r: yield r`."""
    rig.start()
    try:
        up(rig)
        yield rig
    finally:
        rig.stop()
