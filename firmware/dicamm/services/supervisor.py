# Tasks that an unexpected error does not end, and the faults the device shows.
# A supervised task that fails (a MemoryError in a fragmented heap, a bug)
# becomes the "task" fault and a log line, and starts again after a pause; the
# fault clears after a quiet time without a new failure. A watcher turns a
# service's state into a named fault that status and MQTT see.
import gc

from dicamm.platform import asyncio
from micropython import const

_RESTART_MS = const(1000)       # pause before a failed task starts again
_TASK_QUIET_MS = const(600000)  # the "task" fault clears after this long without a failure


class Faults:
    # Named faults (name -> text) with a log line at every change.
    def __init__(self, info):
        self.info = info
        self.active = {}

    def set(self, name, text=None):
        # Set (text) or clear (None) a named fault.
        if text is None:
            if self.active.pop(name, None) is not None:
                self.info("fault cleared: " + name)
        elif self.active.get(name) != text:
            self.active[name] = text
            self.info("fault %s: %s" % (name, text))


class Supervisor:
    def __init__(self, fault):
        self.fault = fault          # fault(name, text or None)
        self.tasks = []
        self.restarts = 0
        self.quiet_ms = _TASK_QUIET_MS
        self._clearer = False

    def start(self, name, run):
        # Runs the coroutine function `run` as a supervised task.
        t = asyncio.create_task(self._supervised(name, run))
        self.tasks.append(t)
        return t

    def watch(self, name, fault, state, period_ms):
        # Every period: fault(fault, state()) (None clears it).
        async def run():
            while True:
                self.fault(fault, state())
                await asyncio.sleep_ms(period_ms)
        self.start(name, run)

    async def _supervised(self, name, run):
        while True:
            try:
                await run()
                return
            except Exception as e:  # CancelledError is no Exception: stop goes through
                self.restarts += 1
                try:
                    self.fault("task", "%s restarted after %s: %s" % (name, type(e).__name__, e))
                except MemoryError:  # not even room for the text: the restart matters more
                    pass
                e = None
                gc.collect()
                await asyncio.sleep_ms(_RESTART_MS)
                if not self._clearer:
                    try:
                        asyncio.create_task(self._clear_task_fault())
                        self._clearer = True
                    except MemoryError:
                        pass

    async def _clear_task_fault(self):
        # One clearer however often tasks fail: the fault stays while they keep
        # failing and clears after a quiet time without a new failure.
        n = None
        while n != self.restarts:
            n = self.restarts
            await asyncio.sleep_ms(self.quiet_ms)
        self.fault("task")
        self._clearer = False
