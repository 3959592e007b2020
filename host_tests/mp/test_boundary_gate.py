# Boundary gate: when a long blocking step may start. The quiet time runs from
# a lead of real time before the pending quarter-hour boundary until it is
# recorded, and ends at the latest hold_ms of device time after it. Dual test
# (MicroPython and CPython); the waiting itself is in test_boundary_gate_wait.
from dicamm.services.boundary_gate import BoundaryGate, closed_for

QH = 900000
HOLD = 11000  # the load profile's: 9 s tolerance + 2 s largest time guard
B = 1750000500000 // QH * QH  # a boundary, Unix ms


class Clock:
    # real_ms_for as in dicamm.drivers.clock.Clock for a bench clock of this speed
    def __init__(self, speed):
        self.speed = speed

    def real_ms_for(self, device_ms):
        return device_ms if self.speed == 1 else max(0, device_ms // self.speed)

    real_ms_at_speed = real_ms_for


# (what, speed, lead real ms, device ms left to the boundary, real ms to wait at most)
CASES = [
    ("speed 1: before the lead", 1, 2000, 2001, 0),
    ("speed 1: lead starts", 1, 2000, 2000, 2000 + HOLD),
    ("speed 1: on the boundary", 1, 2000, 0, HOLD),
    ("speed 1: last ms of the hold", 1, 2000, -HOLD + 1, 1),
    ("speed 1: hold over (the gap is written)", 1, 2000, -HOLD, 0),
    ("speed 1: long past (clock stepped)", 1, 2000, -5 * QH, 0),
    ("speed 1: next quarter hour far", 1, 2000, QH - 1, 0),
    ("lead 0: just before", 1, 0, 1, 0),
    ("lead 0: on the boundary", 1, 0, 0, HOLD),
    ("1440x: before the lead (209 real ms)", 1440, 208, 301000, 0),
    ("1440x: lead starts (208 real ms)", 1440, 208, 300000, (300000 + HOLD) // 1440),
    ("1440x: after the boundary", 1440, 208, -5000, 4),
    ("1440x: under a real ms of hold left", 1440, 208, -HOLD + 100, 1),
    ("1440x: hold over", 1440, 208, -HOLD, 0),
]


def test_closed_for_table():
    for what, speed, lead, left, want in CASES:
        got = closed_for(B, B - left, lead, HOLD, Clock(speed).real_ms_for)
        assert got == want, (what, got, want)


def test_nothing_pending_is_clear():
    assert closed_for(None, B, 2000, HOLD, Clock(1).real_ms_for) == 0


def test_lead_is_real_time_but_a_third_of_a_quarter_hour_at_most():
    # (speed, lead real ms): 2 s on a device; on a fast bench clock a third of
    # the quarter hour's real time, so that long steps keep two thirds of it
    for speed, lead in ((1, 2000), (60, 2000), (150, 2000), (151, 1986), (720, 416), (1440, 208)):
        g = BoundaryGate(Clock(speed), lambda: B, QH, HOLD)
        assert g.lead_ms == lead, (speed, g.lead_ms, lead)


def test_lead_does_not_depend_on_where_the_bench_clock_stands():
    # The gate is made at start-up, often before the bench clock has started
    # (the rig's lead) or inside its slow motion: the lead is still a third of
    # the quarter hour at the clock's speed. (Asked from now, a gate made 800
    # real ms before the start got 650 ms at 2880x, longer than the period's
    # 312 ms: closed all day for an MQTT connect, which never came.)
    import time
    from dicamm.drivers.clock import Clock as DeviceClock
    now = time.time_ns() // 1000000
    for what, epoch, start in (("not started yet", now + 800, B - 120000),
                               ("in slow motion", now - 10, B - 500),
                               ("running fast", now - 10, B - 400000)):
        c = DeviceClock(2880, start, epoch, (20, 1000, 10000))
        g = BoundaryGate(c, lambda: B, QH, HOLD)
        assert g.lead_ms == 104, (what, g.lead_ms)


def test_gate_follows_the_load_profile():
    now = [B - 10000]
    g = BoundaryGate(Clock(1), lambda: now[0], QH, HOLD)
    assert g.closed_for() == 0                  # no boundary named yet
    g.expect(B)
    assert g.closed_for() == 0                  # 10 s ahead: outside the lead
    now[0] = B - 1500
    assert g.closed_for() == 1500 + HOLD        # in the lead
    assert g.closed_for(0) == 0                 # a step that blocks for no time may go
    now[0] = B + 300
    assert g.closed_for(0) == HOLD - 300        # boundary passed, not recorded yet
    g.expect(B + QH)                            # recorded: the next one is far
    assert g.closed_for() == 0 and g.closed_for(0) == 0
