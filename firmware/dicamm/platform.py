# The one place that asks which implementation and port we run on, and the one
# import of asyncio (uasyncio on older MicroPython). Host stand-ins for
# MicroPython-only APIs (time.ticks_*, asyncio.sleep_ms) live in host test code
# (host_tests/shims), never here.
import sys

try:
    import asyncio
except ImportError:  # pragma: no cover (MicroPython before 1.21)
    import uasyncio as asyncio  # noqa: F401

MICROPYTHON = sys.implementation.name == "micropython"
UNIX = sys.platform in ("linux", "darwin")
LINUX = sys.platform == "linux"


def rand16():
    # 16 random bits (backoff jitter); the ticks where there is no random module.
    try:
        import random
        return random.getrandbits(16)
    except (ImportError, AttributeError):  # pragma: no cover
        import time
        return time.ticks_ms() & 0xFFFF
