# Waiting for a condition in the end-to-end tests: poll with a generous
# deadline, never assert on wall-clock speed (the machine may be loaded).
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
