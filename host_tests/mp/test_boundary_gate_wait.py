# Boundary gate, waiting: a step in the quiet time before a boundary starts
# right after the boundary is recorded, not later; outside it, or when the load
# profile is stuck past the hold, it does not wait. The TAF16 outbox posts an
# event raised in the quiet time after the boundary, in order, once.
# micropython-only (asyncio.sleep_ms / wait_for_ms, time.ticks_*)
import os
import time

import asyncio

from dicamm.services.boundary_gate import BoundaryGate
from dicamm.services.outbox import Outbox

QH = 900000
B = 1750000500000 // QH * QH
_ROOT = "/tmp/dicamm_tgate_%d" % (time.ticks_ms() % 1000000)


class Clock:
    # speed 1: device ms are real ms
    def real_ms_for(self, ms):
        return ms

    real_ms_at_speed = real_ms_for

    def ticks_ms(self):
        return time.ticks_ms()


class Legal:
    # legal time that runs with real time from `left` ms before the boundary B
    def __init__(self, left):
        self.t0 = time.ticks_ms()
        self.left = left

    def now_ms(self):
        return B - self.left + time.ticks_diff(time.ticks_ms(), self.t0)


def gate(left, hold=10000):
    lg = Legal(left)
    g = BoundaryGate(Clock(), lg.now_ms, QH, hold)
    g.expect(B)
    return g, lg


def test_waits_for_the_record_then_goes_at_once():
    g, lg = gate(500)                       # 0.5 s before the boundary: in the 2 s lead
    done = []

    async def step():
        await g.wait_clear()
        done.append(lg.now_ms())

    async def load_profile():
        while lg.now_ms() < B + 30:         # read at the boundary (+30 ms)
            await asyncio.sleep_ms(5)
        assert not done                     # nothing started before the record
        g.expect(B + QH)                    # recorded
        t = lg.now_ms()
        await asyncio.sleep_ms(20)
        return t

    async def main():
        task = asyncio.create_task(step())
        t = await load_profile()
        await task
        return t

    t = asyncio.run(main())
    assert len(done) == 1 and 0 <= done[0] - t < 20, (done, t)
    assert g.waits == 1


def test_no_wait_outside_the_lead_or_for_a_short_step():
    g, lg = gate(3000)                      # 3 s before: outside the 2 s lead
    g2, _ = gate(300)                       # 0.3 s before: a 50 ms step may still go

    async def main():
        t = time.ticks_ms()
        await g.wait_clear()
        await g2.wait_clear(50)
        return time.ticks_diff(time.ticks_ms(), t)

    assert asyncio.run(main()) < 20
    assert g.waits == 0 and g2.waits == 0


def test_stuck_load_profile_holds_no_longer_than_the_hold():
    g, lg = gate(0, hold=150)               # on the boundary; nobody records it

    async def main():
        await g.wait_clear()
        return lg.now_ms() - B

    late = asyncio.run(main())
    assert 150 <= late < 400, late


def test_outbox_posts_after_the_record_in_order():
    try:
        os.mkdir(_ROOT)
    except OSError:
        pass
    g, lg = gate(200)
    posted = []

    async def poster(ev):
        posted.append((ev["text"], lg.now_ms()))
        return {"uuid": ev["uuid"], "seq": len(posted), "reading_wh": 1, "time": 1, "meter_id": "m"}

    ob = Outbox(_ROOT, Clock(), poster, max_bytes=8192, segment_bytes=2048, gate=g)

    async def main():
        task = asyncio.create_task(ob.run())
        ob.add("window_start", "window w start", B, "S", 1)     # raised in the quiet time
        ob.add("start", "start by schedule", B, "S", 1)
        await asyncio.sleep_ms(300)                             # the boundary passes, unrecorded
        assert posted == [] and ob.pending() == 2
        g.expect(B + QH)
        t = lg.now_ms()
        for _ in range(100):
            if ob.pending() == 0:
                break
            await asyncio.sleep_ms(5)
        task.cancel()
        return t

    t = asyncio.run(main())
    assert [p[0] for p in posted] == ["window w start", "start by schedule"], posted
    assert all(p[1] >= t for p in posted) and ob.acked == 2
