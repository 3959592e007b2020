# Plausibility of the metered power against the relay state: broken element,
# welded relay, normal operation. Dual test (MicroPython and CPython).
from dicamm.proto.plausibility import NO_POWER_RISE, POWER_STAYS, Plausibility


def make():
    # 3 kW element, power must rise by 1.5 kW within 30 s; hold 900 s, max 3600 s
    return Plausibility(3000, share=0.5, within_s=30, retry_s=900, retry_max_s=3600)


def run(p, samples):
    # samples: (t_s, power_w or None, relay_on) -> list of (t_s, name, raised)
    out = []
    for t, w, on in samples:
        for name, raised in p.feed(t * 1000, w, on):
            out.append((t, name, raised))
    return out


def test_normal_operation_no_fault():
    p = make()
    ev = run(p, [(0, 0, False), (5, 0, False), (10, None, True), (11, 0, True), (13, 2950, True),
                 (60, 3010, True), (100, None, False), (102, 3000, False), (104, 4, False),
                 (200, 0, False)])
    assert ev == [] and p.faults == {} and p.holding(200000) is None


def test_broken_element_detected_and_held_off_then_retried():
    p = make()
    ev = run(p, [(0, 0, False), (10, None, True), (15, 0, True), (39, 10, True), (40, 12, True)])
    assert ev == [(40, NO_POWER_RISE, True)], ev
    assert "element broken or thermostat open" in p.faults[NO_POWER_RISE]["detail"]
    assert p.holding(40000) == NO_POWER_RISE
    assert p.holding(40000 + 899999) == NO_POWER_RISE
    assert p.holding(40000 + 900000) is None  # hold lapses: may switch on again
    assert NO_POWER_RISE in p.faults          # but the fault is still shown
    # retry fails again: the hold doubles (1800 s), then is capped (3600 s)
    ev = run(p, [(1000, None, False), (1000, 0, False), (2000, None, True), (2031, 0, True)])
    assert ev == [(2031, NO_POWER_RISE, True)], ev
    assert p.hold_until_ms == (2031 + 1800) * 1000
    run(p, [(4000, None, False), (5000, None, True), (5031, 0, True)])
    assert p.hold_until_ms == (5031 + 3600) * 1000
    run(p, [(9000, None, False), (10000, None, True), (10031, 0, True)])
    assert p.hold_until_ms == (10031 + 3600) * 1000


def test_thermostat_open_clears_when_tank_cools():
    p = make()
    run(p, [(0, 0, False), (10, None, True), (41, 0, True)])
    assert NO_POWER_RISE in p.faults
    # still on (a higher source insisted), the thermostat closes later
    ev = run(p, [(500, 0, True), (900, 3000, True)])
    assert ev == [(900, NO_POWER_RISE, False)] and p.faults == {}
    assert p.holding(900000) is None
    # the hold period starts again from retry_s after a good check
    run(p, [(1000, None, False), (2000, None, True), (2031, 0, True)])
    assert p.hold_until_ms == (2031 + 900) * 1000


def test_welded_relay_detected_and_cleared():
    p = make()
    ev = run(p, [(0, 0, False), (10, None, True), (12, 3000, True), (100, None, False),
                 (105, 3000, False), (129, 2990, False), (130, 2990, False)])
    assert ev == [(130, POWER_STAYS, True)], ev
    assert p.holding(131000) == POWER_STAYS
    assert p.holding(10 ** 9) == POWER_STAYS  # held until power falls
    ev = run(p, [(500, 3, False)])
    assert ev == [(500, POWER_STAYS, False)] and p.holding(500000) is None


def test_welded_at_power_up():
    p = make()
    ev = run(p, [(0, None, False), (1, 3000, False), (31, 3000, False)])
    assert ev == [(31, POWER_STAYS, True)], ev


def test_thermostat_already_open_when_switching_off_is_fine():
    # element was on but drew nothing (tank hot): switching off cannot fall further
    p = make()
    ev = run(p, [(0, 0, False), (10, None, True), (12, 3000, True), (500, 0, True),
                 (600, None, False), (640, 0, False)])
    assert ev == [] and p.faults == {}


def test_no_samples_no_verdict():
    p = make()
    ev = run(p, [(0, 0, False), (10, None, True), (1000, None, True)])
    assert ev == [] and p.faults == {}


def test_setpoint_target_scales_threshold():
    p = make()
    p.feed(0, 0, False)
    p.feed(10000, None, True, 1000)  # modulating load asked for 1 kW: needs +500 W
    assert p.feed(12000, 600, True, 1000) == []
    assert p.feed(50000, 600, True, 1000) == [] and p.faults == {}


def test_staged_load_each_step_is_checked():
    # 2/4/6 kW: each stage change must show in the power (share 0.5 of the step)
    from dicamm.proto.plausibility import NO_POWER_RISE, POWER_STAYS, Plausibility as P
    p = P(6000, share=0.5, within_s=30, staged=True)
    p.feed(0, 500, False, 0)
    p.feed(1000, None, True, 2000)
    assert p.feed(5000, 2500, True, 2000) == [] and p.faults == {}
    p.feed(10000, None, True, 6000)          # up two stages: +4000 W expected, +2000 is enough
    assert p.feed(20000, 4600, True, 6000) == [] and p.faults == {}
    p.feed(30000, None, True, 4000)          # down one stage that does not drop: welded
    assert p.feed(50000, 6500, True, 4000) == []
    assert p.feed(61000, 6500, True, 4000) == [(POWER_STAYS, True)]
    p.feed(62000, None, False, 0)            # safety holds it off: all relays open, the power falls
    assert p.feed(63000, 500, False, 0) == [(POWER_STAYS, False)]
    q = P(6000, share=0.5, within_s=30, staged=True)
    q.feed(0, 500, False, 0)
    q.feed(1000, None, True, 4000)
    q.feed(2000, 4500, True, 4000)
    q.feed(3000, None, True, 6000)           # the step up shows nothing: a broken stage
    assert q.feed(34000, 4500, True, 6000) == [(NO_POWER_RISE, True)]
