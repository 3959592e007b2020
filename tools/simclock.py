"""Host side of the bench's simulated clock (see firmware/dicamm/drivers/clock.py).

device_ms = start_ms + (real_ms - epoch_ms) * speed, optionally in slow motion
around each quarter-hour boundary (--slow SLOW[:LEAD_MS:TAIL_MS]): the formula is
the firmware's own (firmware/dicamm/proto/simtime.py), so emulators and firmware agree
on the time.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware"))
from dicamm.proto.simtime import SimTime, parse_slow  # noqa: E402


def _real_ms():
    return time.time_ns() // 1_000_000


class SimClock:
    def __init__(self, speed=1, start_ms=None, epoch_ms=None, slow=None):
        now = _real_ms()
        self.sim = SimTime(speed, now if start_ms is None else start_ms, now if epoch_ms is None else epoch_ms,
                           *(slow or (0, 0, 0)))
        self.speed = speed
        self.epoch_ms = self.sim.epoch_ms
        self.start_ms = self.sim.start_ms
        self.slow = self.sim.slow

    def now_ms(self):
        return self.sim.device_ms(_real_ms())

    def now(self):
        return self.now_ms() / 1000.0

    def real_ms_at(self, device_ms):
        """Real Unix ms at which device time reaches device_ms."""
        return self.sim.real_ms(device_ms)

    def real_seconds(self, device_seconds):
        """Real seconds that device_seconds of device time take from now."""
        now = _real_ms()
        return max(0, self.sim.real_ms(self.sim.device_ms(now) + int(device_seconds * 1000)) - now) / 1000.0

    def args(self):
        return self.sim.args()

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser):
        parser.add_argument("--speed", type=int, default=1, help="device seconds per real second")
        parser.add_argument("--start-ms", type=int, default=None, help="device Unix ms at --epoch-ms")
        parser.add_argument("--epoch-ms", type=int, default=None, help="real Unix ms where device time is --start-ms")
        parser.add_argument("--slow", type=parse_slow, default=None,
                            help="SLOW[:LEAD_MS:TAIL_MS]: device speed from LEAD_MS before to TAIL_MS after each "
                                 "quarter-hour boundary")

    @classmethod
    def from_args(cls, a):
        return cls(a.speed, a.start_ms, a.epoch_ms, getattr(a, "slow", None))
