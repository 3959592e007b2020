# CPython stand-ins for the MicroPython APIs the firmware calls (time.ticks_*,
# asyncio.sleep_ms), installed by conftest.py before any firmware module is
# imported. Host tests only: the firmware itself never carries a fallback.
import asyncio
import time


def _ticks_ms():
    return time.monotonic_ns() // 1000000


def _ticks_add(t, d):
    return t + d  # no wrap-around on the host


def _ticks_diff(a, b):
    return a - b


async def _sleep_ms(ms):
    await asyncio.sleep(ms / 1000)


def install():
    for name, fn in (("ticks_ms", _ticks_ms), ("ticks_add", _ticks_add), ("ticks_diff", _ticks_diff)):
        if not hasattr(time, name):
            setattr(time, name, fn)
    if not hasattr(asyncio, "sleep_ms"):
        asyncio.sleep_ms = _sleep_ms
