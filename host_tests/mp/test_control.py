# Control task and outputs: power-up state, transitions, priorities end to end,
# plausibility faults through the safety source.
# micropython-only (device Clock with time.ticks_*, asyncio.wait_for_ms)
import os
import time

import asyncio

from dicamm.drivers.clock import Clock
from dicamm.services.control import Controller
from dicamm.errors import CommandError, ModbusTimeout
from dicamm.drivers.relay import FileRelay, RelayOutput, SetpointOutput

T0 = 1750000000000  # legal time at start, Unix ms


class FakeOutput:
    def __init__(self, on=False):
        self.on = on
        self.calls = []
        self.fb = None

    def set(self, on):
        self.calls.append(on)
        self.on = on

    def feedback(self):
        return self.fb


class StepClock:
    # A device clock the test moves by hand.
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def real_ms_for(self, ms):
        return ms


class Legal:
    def __init__(self, clock, base=T0):
        self.clock = clock
        self.base = base

    def now_ms(self):
        return self.base + self.clock.ticks_ms()

    def status(self):
        return "S"


CFG = {"relay": {"nominal_w": 3000, "min_on_s": 60, "min_off_s": 30, "max_cycles_per_h": 6,
                 "plausibility_share": 0.5, "plausibility_s": 20, "fault_retry_s": 600}}
# a 6 kW element, which a §14a limit (never below 4.2 kW) switches off
CFG6 = {"relay": dict(CFG["relay"], nominal_w=6000)}


def make(out=None, cfg=CFG, store=None, clock=None):
    clock = clock or StepClock()
    events = []
    c = Controller(out or FakeOutput(), clock, Legal(clock), cfg, events.append, store)
    return c, clock, events


def steps(c, clock, until_s, every_s=1, power=None):
    # advance the step clock to until_s, one controller step per every_s
    async def go():
        while clock.t < until_s * 1000:
            clock.t += every_s * 1000
            if power is not None:
                c.update_meter({"power_w": power(c)})
            await c.step()
    asyncio.run(go())


def sw(events):
    return [(e["source"], e["old"], e["new"]) for e in events if e["kind"] == "switch"]


def test_power_up_state_off():
    out = FakeOutput(on=True)  # left on by a crash
    c, clock, ev = make(out)
    asyncio.run(c.start())
    assert out.on is False and out.calls == [False]
    assert sw(ev) == [("power_up", True, False)]
    assert ev[0]["time_ms"] == T0 and ev[0]["time_status"] == "S"
    assert c.status()["state"] == "off"
    # already off: no transition, but the output is still driven off
    out2 = FakeOutput(on=False)
    c2, _, ev2 = make(out2)
    asyncio.run(c2.start())
    assert out2.calls == [False] and ev2 == []


def test_manual_on_waits_for_min_off_then_dso_overrides():
    c, clock, ev = make(cfg=CFG6)
    asyncio.run(c.start())
    st = c.manual("on", 30)
    assert st["wanted"] == "on" and st["deferred"] == "min_off: 30 s left", st
    steps(c, clock, 29)
    assert c.output.on is False
    steps(c, clock, 31)
    assert c.output.on is True
    assert sw(ev) == [("installer", False, True)]
    e = ev[-1]
    assert e["reason"] == "manual on for 30 min" and e["time_ms"] == T0 + 30000
    c.dso(0, 600)  # within min_on: not deferred
    steps(c, clock, 32)
    assert c.output.on is False and sw(ev)[-1] == ("dso", True, False)
    st = c.status()
    assert st["source"] == "dso" and st["sources"]["installer"]["why_not"] == "outranked by dso"
    c.dso(None)
    steps(c, clock, 50)
    assert c.output.on is False and c.status()["deferred"].startswith("min_off")
    steps(c, clock, 63)
    assert c.output.on is True and sw(ev)[-1] == ("installer", False, True)
    c.manual("auto")
    steps(c, clock, 130)
    assert c.output.on is False and sw(ev)[-1] == ("default", True, False)


def test_schedule_joined_late_after_restart():
    stored = {}
    store = (lambda b: stored.__setitem__("d", b), lambda: stored.get("d"))
    c, clock, ev = make(store=store)
    c.load_schedule([{"id": "w1", "start": T0 // 1000 - 3600, "end": T0 // 1000 + 120, "on": True},
                     {"id": "old", "start": T0 // 1000 - 7200, "end": T0 // 1000 - 3600, "on": True}])
    # "restart": a new controller loads the stored schedule
    c, clock, ev = make(store=store)
    asyncio.run(c.start())
    steps(c, clock, 1)
    kinds = [(e["kind"], e["window_id"], e["late"]) for e in ev]
    assert kinds == [("window_start", "w1", True)], kinds
    steps(c, clock, 30)
    assert c.output.on is True and sw(ev) == [("schedule", False, True)]
    steps(c, clock, 125)
    assert ("window_end", "w1", False) in [(e["kind"], e["window_id"], e["late"]) for e in ev]
    assert c.output.on is False and sw(ev)[-1] == ("default", True, False)
    assert c.schedule_status()["active"] is None


def test_broken_element_raises_safety_fault():
    c, clock, ev = make()
    asyncio.run(c.start())
    c.backend(on=True, ttl_s=3600)
    steps(c, clock, 60, power=lambda c: 0)  # the element never draws power
    st = c.status()
    assert "no_power_rise" in st["faults"], st
    assert c.output.on is False
    assert sw(ev) == [("backend", False, True), ("safety", True, False)], sw(ev)
    assert st["sources"]["safety"]["why"] == "fault no_power_rise"
    assert st["sources"]["backend"]["why_not"] == "outranked by safety"
    # the hold lapses after 600 s, the element is tried again and now works
    steps(c, clock, 700, every_s=5, power=lambda c: 3000 if c.output.on else 0)
    assert c.output.on is True and c.status()["faults"] == {}
    assert sw(ev)[-1] == ("backend", False, True)


def test_reading_asked_before_the_switching_is_no_evidence():
    # A poll that went out before the relay switched on (it was on the wire, or
    # waited behind a long step) and is answered after the plausibility deadline
    # shows the old power: it must not raise no_power_rise; a reading asked for
    # after the switching that still shows no rise does.
    c, clock, ev = make()
    asyncio.run(c.start())
    c.backend(on=True, ttl_s=3600)
    steps(c, clock, 31)
    assert c.output.on is True
    on_at = ev[-1]["time_ms"] - T0            # device ticks of the switching
    asked = on_at - 500                      # requested half a second before the switch
    clock.t = on_at + 25000                  # answered after the 20 s deadline
    c.update_meter({"power_w": 0}, asked)
    asyncio.run(c.step())
    assert c.status()["faults"] == {} and c.output.on is True
    c.update_meter({"power_w": 0}, on_at + 1000)   # asked after the switch: no rise
    asyncio.run(c.step())
    assert "no_power_rise" in c.status()["faults"] and c.output.on is False


def test_welded_relay_holds_off():
    c, clock, ev = make(cfg={"relay": {"min_on_s": 0, "min_off_s": 0, "plausibility_s": 10}})
    asyncio.run(c.start())
    steps(c, clock, 20, power=lambda c: 3000)
    assert "power_stays" in c.status()["faults"]
    c.manual("on", 10)
    steps(c, clock, 30, power=lambda c: 3000)
    assert c.output.on is False and c.status()["source"] == "safety"
    steps(c, clock, 40, power=lambda c: 0)  # repaired
    assert c.output.on is True and c.status()["faults"] == {}


def test_command_errors():
    c, _, _ = make()
    for fn, args in ((c.manual, ("maybe",)), (c.manual, ("on", 0)), (c.manual, ("on", "5")),
                     (c.backend, (True, 100)), (c.backend, (None, -1, 60)),
                     (c.backend, (True, None, 0)), (c.dso, (-5, 60)), (c.dso, (100, 10 ** 7))):
        try:
            fn(*args)
        except CommandError:
            continue
        raise AssertionError((fn, args))
    try:
        c.load_schedule([{"id": "a", "start": 10, "end": 5, "on": True}])
    except CommandError:
        pass
    else:
        raise AssertionError("bad schedule")


async def until(cond, real_ms=3000):
    # Waits poll a condition with a deadline, so a loaded host only makes a test slower.
    t = time.ticks_ms()
    while not cond():
        assert time.ticks_diff(time.ticks_ms(), t) < real_ms, "timeout"
        await asyncio.sleep_ms(1)


async def cancelled(task):
    # MicroPython's wait_for (the controller's tick) swallows a cancel that
    # arrives as its wait ends, and the task runs on: one test in three then
    # awaited it for ever. Cancel again until the task has ended, within a deadline.
    t = time.ticks_ms()
    while not task.done():
        assert time.ticks_diff(time.ticks_ms(), t) < 3000, "the task does not end when cancelled"
        task.cancel()
        await asyncio.sleep_ms(1)


def fast_controller(on):
    # The real task on a device clock 1000x faster than real time.
    out = FakeOutput(on=on)
    clock = Clock(speed=1000, start_ms=T0)
    ev = []
    return out, clock, ev, Controller(out, clock, clock.wall_ms, CFG6, ev.append)


def test_run_task_with_fast_clock():
    out, clock, ev, c = fast_controller(on=True)

    async def main():
        task = asyncio.create_task(c.run())
        await until(lambda: out.calls)
        assert out.on is False                  # power-up state
        await until(lambda: clock.wall_ms() - T0 > 40000)
        c.manual("on", 600)
        await until(lambda: out.on)              # min_off (30 s) had passed already
        c.dso(1000, 3600)
        await until(lambda: not out.on)
        c.dso(None)
        await until(lambda: out.on)              # back after min_off, 30 s device time
        await cancelled(task)

    asyncio.run(main())
    assert sw(ev) == [("power_up", True, False), ("installer", False, True), ("dso", True, False),
                      ("installer", False, True)], ev
    # every edge of the limit is an event, before the switching it causes
    assert [(e["kind"], e["reason"]) for e in ev if e["kind"] != "switch" or e["source"] == "dso"] == [
        ("limit", "14a limit 1000 W raised to the legal minimum 4200 W (console)"),
        ("switch", "14a limit 4200 W (asked 1000 W, console)"),
        ("limit", "14a limit ended: lifted (console)")], ev
    ev = [e for e in ev if e["kind"] == "switch"]
    assert ev[1]["time_status"] is None and ev[1]["time_ms"] - T0 >= 40000
    # min_off 30 s; the legal stamps are read a moment after the decision, and a
    # real millisecond of scheduling delay is a device second here
    assert ev[3]["time_ms"] - ev[2]["time_ms"] >= 25000
    assert c.last_error is None, c.last_error


# -- outputs -------------------------------------------------------------

class Pin:
    def __init__(self, v=0):
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


def test_relay_output_polarity_and_feedback():
    p, fb = Pin(1), Pin(1)
    r = RelayOutput(p, active_low=True, feedback=fb, feedback_active_low=True)
    assert r.on is False  # high level on an active-low relay = off
    r.set(True)
    assert p.v == 0 and r.on is True
    assert r.feedback() is False
    fb.v = 0
    assert r.feedback() is True
    r2 = RelayOutput(Pin(0))
    r2.set(True)
    assert r2._pin.v == 1 and r2.feedback() is None


def test_file_relay_state_and_history():
    path = "/tmp/dicamm_relay_%d.gpio" % time.ticks_us()
    t = [1000]
    r = FileRelay(path, lambda: t[0])
    assert r.on is False
    r.set(True)
    with open(path) as f:
        assert f.read() == "1"
    t[0] = 2000
    r.set(True)   # no change, no history entry
    r.set(False)
    with open(path) as f:
        assert f.read() == "0"
    assert r.history == [(1000, True), (2000, False)]
    r.set(True)
    assert FileRelay(path).on is True  # state survives a restart of the emulation
    os.remove(path)


class FakeMaster:
    def __init__(self, fail=False):
        self.writes = []
        self.fail = fail

    async def write_register(self, unit, address, value):
        if self.fail:
            raise ModbusTimeout("no answer")
        self.writes.append((unit, address, value))


def test_setpoint_output_and_modulating_controller():
    m = FakeMaster()
    out = SetpointOutput(m, 3, 1000, scale=1, nominal_w=11000)
    asyncio.run(out.set(True))
    assert m.writes == [(3, 1000, 11000)] and out.on and out.power_w == 11000
    asyncio.run(out.set_power(1234))
    asyncio.run(out.set(False))
    assert m.writes[1:] == [(3, 1000, 1234), (3, 1000, 0)] and not out.on
    m.writes = []
    c, clock, ev = make(out=out, cfg={"relay": {"min_on_s": 0, "min_off_s": 0, "nominal_w": 11000}})
    asyncio.run(c.start())
    c.backend(power_w=9000, ttl_s=600)
    steps(c, clock, 2)
    c.dso(1500, 600)   # raised to the legal minimum: 4200 W
    steps(c, clock, 4)
    assert m.writes == [(3, 1000, 0), (3, 1000, 9000), (3, 1000, 4200)], m.writes
    assert sw(ev) == [("backend", False, True)] and ev[-1]["power_w"] == 9000
    st = c.status()
    assert st["source"] == "dso" and st["power_w"] == 4200 and st["limit"]["asked_w"] == 1500
    # a failed write is retried on the next step, and not reported as switched
    m.fail = True
    c.dso(6000, 600)
    steps(c, clock, 6)
    assert out.power_w == 4200 and c.last_error.startswith("output:")
    m.fail = False
    steps(c, clock, 7)
    assert out.power_w == 6000 and sw(ev) == [("backend", False, True)]   # a limit never switches it off
    c.backend(power_w=0, ttl_s=600)
    steps(c, clock, 8)
    assert out.power_w == 0 and sw(ev)[-1] == ("backend", True, False)


def test_run_started_again_keeps_the_relay_state():
    # The application starts a failed task again (app._supervised): the second
    # run of the controller must not switch the load off as at power-up.
    out, clock, ev, c = fast_controller(on=False)

    async def main():
        task = asyncio.create_task(c.run())
        await until(lambda: out.calls)
        await until(lambda: clock.wall_ms() - T0 > 40000)
        c.manual("on", 600)
        await until(lambda: out.on)
        await cancelled(task)                        # the task ended (here: cancelled)
        n = len(out.calls)
        task = asyncio.create_task(c.run())          # ...and started again
        await until(lambda: clock.wall_ms() - T0 > 60000)
        assert out.on is True and False not in out.calls[n:], out.calls
        await cancelled(task)

    asyncio.run(main())
    assert sw(ev) == [("installer", False, True)], ev


def test_staged_element_dimmed_to_its_4kw_stage_by_a_0w_limit():
    # 2/4/6 kW on three relays (relay.stages_w). §14a: a limit of 0 W is raised to
    # 4200 W, the highest stage that fits is 4 kW; each stage's power is checked.
    from dicamm.drivers.relay import StagedOutput
    relays = [FakeOutput(), FakeOutput(), FakeOutput()]
    out = StagedOutput(relays, [2000, 4000, 6000])
    cfg = {"relay": dict(CFG["relay"], nominal_w=6000, min_off_s=0)}
    c, clock, ev = make(out=out, cfg=cfg)
    asyncio.run(c.start())
    c.backend(on=True, ttl_s=3600)
    steps(c, clock, 5, power=lambda c: 500 + c.arbiter.power_w)
    assert out.stage == 3 and [r.on for r in relays] == [True, True, True]
    c.dso(0, 600)
    steps(c, clock, 6, power=lambda c: 500 + c.arbiter.power_w)
    st = c.status()
    assert out.stage == 2 and [r.on for r in relays] == [True, True, False]
    assert (st["source"], st["stage"], st["power_w"], st["allowed_w"]) == ("dso", 2, 4000, 4000), st
    assert st["limit"]["asked_w"] == 0 and st["limit"]["limit_w"] == 4200 and st["limit"]["source"] == "console"
    assert [e["reason"] for e in ev if e["kind"] == "limit"] == [
        "14a limit 0 W raised to the legal minimum 4200 W (console)"]
    assert sw(ev) == [("backend", False, True)]     # still on: a stage change is no switching
    steps(c, clock, 60, power=lambda c: 500 + c.arbiter.power_w)
    assert c.status()["faults"] == {}
    c.dso(None)
    steps(c, clock, 200, power=lambda c: 500 + c.arbiter.power_w)
    assert out.stage == 3 and c.status()["faults"] == {}
    assert out.history[-2:] == [(None, 2), (None, 3)]
    # relay 3 welded open: the step to stage 3 shows no rise
    c.dso(0, 600)
    steps(c, clock, 300, power=lambda c: 500 + c.arbiter.power_w)
    c.dso(None)
    steps(c, clock, 400, power=lambda c: 500 + min(c.arbiter.power_w, 4000))
    assert "no_power_rise" in c.status()["faults"], c.status()
