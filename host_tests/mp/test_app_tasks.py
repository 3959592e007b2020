# The application's tasks: an unexpected error in one (a MemoryError in a
# fragmented heap, a bug) is the "task" fault and a restart, never a dead task;
# a task that returns is done; cancelling still stops it.
# micropython-only (App needs the device Clock with time.ticks_* and asyncio.sleep_ms)
import os
import time

import asyncio

from dicamm.services.app import App

_ROOT = "/tmp/dicamm_tapp_%d" % (time.ticks_ms() % 1000000)


def make_app():
    try:
        os.mkdir(_ROOT)
    except OSError:
        pass
    return App({"name": "unix"}, {"root": _ROOT})


async def until(cond, real_ms=5000):
    t = time.ticks_ms()
    while not cond():
        assert time.ticks_diff(time.ticks_ms(), t) < real_ms, "timeout"
        await asyncio.sleep_ms(5)


def test_failing_task_is_a_fault_and_runs_again():
    app = make_app()
    runs = []

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise MemoryError("memory allocation failed, allocating 480 bytes")
        while True:
            await asyncio.sleep_ms(10)

    async def main():
        t = app.start("metering", flaky)
        await until(lambda: len(runs) == 3)
        assert app.supervisor.restarts == 2
        f = app.faults.get("task")
        assert f == "metering restarted after MemoryError: memory allocation failed, allocating 480 bytes", f
        assert any("fault task: metering restarted" in ln[1] for ln in app.log.last(10))
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        assert len(runs) == 3               # cancelled: not started again

    asyncio.run(main())


def test_task_fault_clears_after_a_quiet_time():
    app = make_app()
    app.supervisor.quiet_ms = 50              # ten minutes on a device
    runs = []

    async def once():
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("bug")

    async def main():
        app.start("console", once)
        await until(lambda: len(runs) == 2)  # failed, started again, returned: done
        assert "console restarted after ValueError: bug" == app.faults.get("task")
        await until(lambda: "task" not in app.faults)

    asyncio.run(main())
    assert len(runs) == 2
