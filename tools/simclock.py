"""Host side of the bench's simulated clock (see firmware/dicamm/clock.py).

device_ms = start_ms + (real_ms - epoch_ms) * speed, the same formula as the
firmware's Clock, so emulators and firmware agree on the time.
"""
import argparse
import time


class SimClock:
    def __init__(self, speed=1, start_ms=None, epoch_ms=None):
        now = time.time_ns() // 1_000_000
        self.speed = speed
        self.epoch_ms = now if epoch_ms is None else epoch_ms
        self.start_ms = now if start_ms is None else start_ms

    def now_ms(self):
        return self.start_ms + (time.time_ns() // 1_000_000 - self.epoch_ms) * self.speed

    def now(self):
        return self.now_ms() / 1000.0

    def real_seconds(self, device_seconds):
        return device_seconds / self.speed

    def args(self):
        return ["--speed", str(self.speed), "--start-ms", str(self.start_ms), "--epoch-ms", str(self.epoch_ms)]

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser):
        parser.add_argument("--speed", type=int, default=1, help="device seconds per real second")
        parser.add_argument("--start-ms", type=int, default=None, help="device Unix ms at --epoch-ms")
        parser.add_argument("--epoch-ms", type=int, default=None, help="real Unix ms where device time is --start-ms")

    @classmethod
    def from_args(cls, a):
        return cls(a.speed, a.start_ms, a.epoch_ms)
