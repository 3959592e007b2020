# Device clock: a monotonic millisecond counter and the free-running wall clock
# (the board's RTC, or the unix clock). Legal time is layered on top of it by the
# time keeper. On the unix port the clock can run faster than real time for the
# bench: device time = start + (real time - epoch) * speed, optionally in slow
# motion around quarter-hour boundaries (dicamm.proto.simtime, shared with the host
# emulators through tools/simclock.py), so all of them agree.
#
# All values are integers in milliseconds: on an ESP32 a float has 24 bits of
# mantissa, far too few for a Unix time in ms.
import time

from dicamm.platform import asyncio


class Clock:
    def __init__(self, speed=1, start_ms=None, epoch_ms=None, slow=None):
        # slow: None, or (slow speed, lead ms, tail ms) around each boundary
        self.speed = speed
        self._sim = None
        if speed != 1 or start_ms is not None or slow:
            from dicamm.proto.simtime import SimTime
            now = time.time_ns() // 1000000
            self._sim = SimTime(speed, now if start_ms is None else start_ms,
                                now if epoch_ms is None else epoch_ms, *(slow or (0, 0, 0)))
            self.start_ms = self._sim.start_ms
            self.epoch_ms = self._sim.epoch_ms
        self._wall_adjust_ms = 0  # set_wall() on the free-running base

    def _real_ms(self):
        return time.time_ns() // 1000000

    def ticks_ms(self):
        # Monotonic device milliseconds; compare with time.ticks_diff only.
        if self._sim is None:
            return time.ticks_ms()
        return time.ticks_add(0, self._sim.device_ms(self._real_ms()) - self.start_ms)

    def wall_ms(self):
        # The free-running wall clock (RTC) in Unix milliseconds.
        if self._sim is None:
            try:
                return time.time_ns() // 1000000 + self._wall_adjust_ms
            except AttributeError:  # ports without time_ns
                return time.time() * 1000 + self._wall_adjust_ms
        return self._sim.device_ms(self._real_ms()) + self._wall_adjust_ms

    def resolution_ms(self):
        # The grain of ticks_ms and wall_ms in device ms: 1 on a board; on the
        # fast bench clock one real ms, i.e. `speed` device ms (the time keeper
        # counts it into the error of every sync).
        return 1 if self._sim is None else max(1, self.speed)

    def set_wall_ms(self, unix_ms):
        # Step the RTC base (after a good time sync, or by hand).
        self._wall_adjust_ms += unix_ms - self.wall_ms()

    def real_ms_for(self, device_ms):
        # How long to really wait for device_ms of device time from now.
        sim = self._sim
        if sim is None:
            return device_ms
        if not sim.slow:
            return self.real_ms_at_speed(device_ms)
        real = self._real_ms()
        return max(0, sim.real_ms(sim.device_ms(real) + device_ms) - real)

    def real_ms_at_speed(self, device_ms):
        # The real ms device_ms last at the clock's speed, wherever the clock
        # stands (real_ms_for asks from now: before the bench clock starts, or
        # in its slow motion, that is longer). The shortest they can take.
        return max(0, device_ms // self.speed)

    def device_ms_at_speed(self, real_ms):
        # The device ms real_ms of real time cover at the clock's speed.
        return real_ms * self.speed

    async def sleep_ms(self, device_ms):
        # At least device_ms of device time: a rule such as "15 s between two
        # requests" must hold on the fast bench clock too, where one real ms
        # (the loop's grain) is many device ms; so wait on and check again.
        end = time.ticks_add(self.ticks_ms(), device_ms)
        left = device_ms
        while left > 0:
            await asyncio.sleep_ms(max(1, self.real_ms_for(left)))
            left = time.ticks_diff(end, self.ticks_ms())

    async def sleep_until_wall_ms(self, unix_ms, read_wall=None):
        # Sleep until the wall clock (or read_wall(), e.g. legal time) reaches
        # unix_ms; re-reads the clock because it may be stepped meanwhile.
        read = read_wall or self.wall_ms
        while True:
            left = unix_ms - read()
            if left <= 0:
                return
            await asyncio.sleep_ms(max(1, min(self.real_ms_for(left), 1000)))
