# Arbitration and relay protection: who rules, what is deferred and why.
# Dual test (MicroPython and CPython). Times in the tables are seconds.
from dicamm.proto.arbiter import SOURCES, Arbiter

H = 3600


def make(**kw):
    a = dict(nominal_w=3000, min_on_s=120, min_off_s=60, max_cycles_per_h=6)
    a.update(kw)
    return Arbiter(now_ms=0, **a)


# Each case: list of steps.
#   ("req", t, source, kwargs with until in s)   ("clear", t, source)
#   ("expect", t, on, source, deferred prefix or None)
CASES = [
    ("power-up is off, min_off counts from power-up", [
        ("expect", 0, False, "default", None),
        ("req", 1, "backend", {"on": True, "until": H}),
        ("expect", 1, False, "backend", "min_off: 59 s left"),
        ("expect", 60, True, "backend", None),
    ]),
    ("dso limit overrides a running schedule, min_on or not", [
        ("req", 100, "schedule", {"on": True, "until": 2 * H}),
        ("expect", 100, True, "schedule", None),
        ("req", 101, "dso", {"limit_w": 2000, "until": 1000}),
        ("expect", 101, False, "dso", None),
        ("expect", 999, False, "dso", None),
        # the limit lapses: back on, but the minimum off time holds
        ("expect", 1000, True, "schedule", None),
    ]),
    ("dso limit overrides a manual on", [
        ("req", 100, "installer", {"on": True, "until": 1000}),
        ("req", 100, "backend", {"on": False, "until": 1000}),
        ("expect", 100, True, "installer", None),
        ("req", 105, "dso", {"limit_w": 0, "until": 500}),
        ("expect", 105, False, "dso", None),
        ("clear", 130, "dso"),
        ("expect", 130, False, "installer", "min_off: 35 s left"),
        ("expect", 165, True, "installer", None),
    ]),
    ("dso limit above nominal does not bind", [
        ("req", 100, "schedule", {"on": True, "until": H}),
        ("req", 100, "dso", {"limit_w": 4200, "until": H}),
        ("expect", 100, True, "schedule", None),
    ]),
    ("dso switches off within min_on; switching back on waits for min_off", [
        ("req", 100, "backend", {"on": True, "until": H}),
        ("expect", 100, True, "backend", None),
        ("req", 101, "dso", {"limit_w": 1000, "until": 110}),
        ("expect", 101, False, "dso", None),
        ("expect", 110, False, "backend", "min_off: 51 s left"),
        ("expect", 161, True, "backend", None),
    ]),
    ("an expired source lapses and the next one rules", [
        ("req", 100, "installer", {"on": True, "until": 400}),
        ("req", 100, "backend", {"on": False, "until": 900}),
        ("expect", 100, True, "installer", None),
        ("expect", 399, True, "installer", None),
        ("expect", 400, False, "backend", None),
        ("expect", 900, False, "default", None),
    ]),
    ("min_on defers switching off, the change happens when allowed", [
        ("req", 100, "backend", {"on": True, "until": H}),
        ("expect", 100, True, "backend", None),
        ("req", 130, "backend", {"on": False, "until": H}),
        ("expect", 130, True, "backend", "min_on: 90 s left"),
        ("expect", 219, True, "backend", "min_on: 1 s left"),
        ("expect", 220, False, "backend", None),
    ]),
    ("safety switches off at once and outranks the installer", [
        ("req", 100, "installer", {"on": True, "until": H}),
        ("expect", 100, True, "installer", None),
        ("req", 101, "safety", {"on": False, "until": 500}),
        ("expect", 101, False, "safety", None),
        ("expect", 500, True, "installer", None),
    ]),
    ("backend setpoint on a single-stage element rounds to the nearest stage", [
        ("req", 100, "backend", {"power_w": 1400, "until": H}),
        ("expect", 100, False, "backend", None),
        ("req", 101, "backend", {"power_w": 1500, "until": H}),
        ("expect", 101, True, "backend", None),
    ]),
]


def run_case(steps):
    a = make()
    for st in steps:
        kind, t = st[0], st[1] * 1000
        if kind == "req":
            kw = dict(st[3])
            kw["until_ms"] = kw.pop("until") * 1000
            a.request(st[2], **kw)
        elif kind == "clear":
            a.clear(st[2])
        else:
            on, src, reasons, deferred = a.decide(t)
            got = (on, src, deferred)
            want_def = st[4]
            ok = on == st[2] and src == st[3] and (
                deferred is None if want_def is None else
                (deferred is not None and deferred.startswith(want_def)))
            assert ok, (st, got, reasons)
            assert set(reasons) | {src} == set(SOURCES), reasons
            assert src not in reasons
    return a


def test_table():
    for name, steps in CASES:
        try:
            run_case(steps)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (name, e))


def test_cycle_cap_defers_with_next_time():
    a = make(min_on_s=0, min_off_s=0, max_cycles_per_h=3)
    t = 0
    for i in range(3):
        a.request("backend", on=True, until_ms=10 * H * 1000)
        assert a.decide(t)[0] is True
        t += 10000
        a.request("backend", on=False, until_ms=10 * H * 1000)
        assert a.decide(t)[0] is False
        t += 10000
    a.request("backend", on=True, until_ms=10 * H * 1000)
    on, src, _, deferred = a.decide(t)
    assert on is False and src == "backend"
    # first switch-on was at 0 s, so the next is allowed at 3600 s
    assert deferred == "cycle cap 3/h reached, next in %d s" % (H - 60), deferred
    assert a.decide(H * 1000 - 1)[0] is False
    assert a.decide(H * 1000)[0] is True
    assert a.cycles_last_h(H * 1000) == 3


def test_dso_not_deferred_by_cap_or_min_on_but_on_waits_for_min_off():
    a = make(min_on_s=120, min_off_s=60, max_cycles_per_h=1)
    a.request("installer", on=True, until_ms=2 * H * 1000)
    assert a.decide(100000)[0] is True          # the one cycle of this hour
    a.request("dso", limit_w=0, until_ms=110000)
    assert a.decide(101000) == (False, "dso", a.decide(101000)[2], None)
    on, src, _, deferred = a.decide(110000)      # limit lapsed
    assert (on, src, deferred) == (False, "installer", "min_off: 51 s left")
    on, src, _, deferred = a.decide(161000)
    assert (on, src) == (False, "installer") and deferred.startswith("cycle cap 1/h reached")
    assert a.decide(3700000)[0] is True


def _lcg(seed):
    s = [seed]

    def nxt(n):
        s[0] = (s[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (s[0] >> 8) % n
    return nxt


def test_burst_of_contradicting_requests_keeps_protection():
    # 1000 requests from four sources within one simulated hour (plus a tail),
    # decide() every second; min on/off and the cycle cap must hold throughout,
    # except that dso and safety may cut a minimum on time short.
    min_on, min_off, cap = 120, 60, 6
    a = make(min_on_s=min_on, min_off_s=min_off, max_cycles_per_h=cap)
    rnd = _lcg(4)
    names = ("backend", "schedule", "installer", "backend", "schedule", "backend", "dso", "safety")
    reqs = {}
    for _ in range(1000):
        t = rnd(H * 1000)
        reqs.setdefault(t // 1000, []).append(names[rnd(len(names))])
    switches = []   # (t_ms, on, source)
    deferred_seen = 0
    for sec in range(2 * H):
        t = sec * 1000
        for name in reqs.get(sec, ()):
            until = t + (1 + rnd(600)) * 1000
            if name == "dso":
                a.request("dso", limit_w=(0, 2000, 5000)[rnd(3)], until_ms=t + (1 + rnd(120)) * 1000)
            elif name == "safety":
                a.request("safety", on=False, until_ms=t + (1 + rnd(30)) * 1000)
            elif rnd(3) == 0:
                a.request(name, power_w=rnd(3001), until_ms=until)
            else:
                a.request(name, on=rnd(2) == 1, until_ms=until)
        before = a.on
        on, src, reasons, deferred = a.decide(t)
        if deferred:
            deferred_seen += 1
            assert on == before
        if on != before:
            switches.append((t, on, src))
    assert len(switches) >= 6, switches
    assert deferred_seen > 0
    last_change = 0  # power-up counts as switching off
    ons = []
    for t, on, src in switches:
        if on:
            assert t - last_change >= min_off * 1000, (t, last_change)
            ons.append(t)
        elif src not in ("dso", "safety"):
            assert t - last_change >= min_on * 1000, (t, last_change, src)
        last_change = t
    for i in range(len(ons)):
        in_hour = [x for x in ons if ons[i] <= x < ons[i] + H * 1000]
        assert len(in_hour) <= cap, (ons[i], in_hour)


def test_deferred_is_never_dropped():
    # A deferred wish stays visible and is carried out once allowed.
    a = make()
    a.request("installer", on=True, until_ms=H * 1000)
    st = a.status(10000)
    assert st["state"] == "off" and st["wanted"] == "on"
    assert st["deferred"] == "min_off: 50 s left", st
    a.decide(10000)
    assert a.decide(60000)[0] is True


def test_status_shape():
    a = make()
    a.request("schedule", on=True, until_ms=H * 1000, why="window w1")
    a.request("backend", power_w=2000, until_ms=1000)
    a.request("dso", limit_w=2000, until_ms=600000)
    a.decide(100000)
    st = a.status(100000)
    assert st["state"] == "off" and st["source"] == "dso" and st["wanted"] == "off"
    assert st["deferred"] is None
    assert st["cycles_last_h"] == 0
    s = st["sources"]
    assert set(s) == set(SOURCES)
    assert s["dso"] == {"request": "limit 2000 W", "expires_in_s": 500, "why_not": None}
    assert s["schedule"]["why_not"] == "outranked by dso"
    assert s["schedule"]["why"] == "window w1"
    assert s["backend"]["why_not"] == "expired 99 s ago"
    assert s["backend"]["request"] == "2000 W" and s["backend"]["expires_in_s"] == 0
    assert s["installer"] == {"request": None, "expires_in_s": None, "why_not": "no request"}
    assert s["default"]["request"] == "off"


def test_modulating_load_is_capped_by_dso():
    a = Arbiter(nominal_w=3000, min_on_s=60, min_off_s=60, max_cycles_per_h=6, modulating=True, now_ms=0)
    a.request("backend", power_w=2500, until_ms=H * 1000)
    assert a.decide(60000)[:2] == (True, "backend") and a.power_w == 2500
    a.request("dso", limit_w=1800, until_ms=H * 1000)
    assert a.decide(61000)[:2] == (True, "dso") and a.power_w == 1800
    a.request("dso", limit_w=4000, until_ms=H * 1000)
    on, src, reasons, _ = a.decide(62000)
    assert (on, src, a.power_w) == (True, "backend", 2500)
    assert reasons["dso"].startswith("limit 4000 W does not bind")
    a.request("dso", limit_w=0, until_ms=H * 1000)
    assert a.decide(63000)[:2] == (False, "dso") and a.power_w == 0


def test_bad_requests_rejected():
    a = make()
    for src, kw in (("nobody", {"on": True}), ("default", {"on": True}),
                    ("backend", {}), ("backend", {"on": True, "power_w": 5}),
                    ("backend", {"limit_w": 5}), ("dso", {"on": False})):
        try:
            a.request(src, **kw)
        except ValueError:
            continue
        raise AssertionError((src, kw))
