# Device clock: scaled time for the bench runs faster and stays monotonic.
# micropython-only (uses time.ticks_*)
import time

from dicamm.drivers.clock import Clock


def test_scaled_clock_runs_fast():
    c = Clock(speed=1000, start_ms=1700000000000)
    w0 = c.wall_ms()
    t0 = c.ticks_ms()
    time.sleep(0.02)
    dw = c.wall_ms() - w0
    assert 15000 <= dw <= 200000, dw
    assert time.ticks_diff(c.ticks_ms(), t0) >= 15000


def test_set_wall_steps_the_base():
    c = Clock(speed=1, start_ms=1700000000000)
    c.set_wall_ms(1800000000000)
    assert abs(c.wall_ms() - 1800000000000) < 1000
