# Arbitration and relay protection: who rules, what is deferred and why, and
# what the grid operator's §14a limit does to a single-stage, staged and
# modulating load (BNetzA BK6-22-300: never below 4.2 kW, a load of 4.2 kW or
# less is never reduced). Dual test (MicroPython and CPython). Times in the
# tables are seconds.
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
    ("dso limit overrides a running schedule on a 6 kW element, min_on or not", [
        ("req", 100, "schedule", {"on": True, "until": 2 * H}),
        ("expect", 100, True, "schedule", None),
        ("req", 101, "dso", {"limit_w": 2000, "until": 1000}),
        ("expect", 101, False, "dso", None),
        ("expect", 999, False, "dso", None),
        # the limit lapses: back on, but the minimum off time holds
        ("expect", 1000, True, "schedule", None),
    ], {"nominal_w": 6000}),
    ("dso limit 0 W (raised to 4200 W) switches a 6 kW element off over a manual on", [
        ("req", 100, "installer", {"on": True, "until": 1000}),
        ("req", 100, "backend", {"on": False, "until": 1000}),
        ("expect", 100, True, "installer", None),
        ("req", 105, "dso", {"limit_w": 0, "until": 500}),
        ("expect", 105, False, "dso", None),
        ("clear", 130, "dso"),
        ("expect", 130, False, "installer", "min_off: 35 s left"),
        ("expect", 165, True, "installer", None),
    ], {"nominal_w": 6000}),
    ("dso limit 0 W on a 3 kW element changes nothing (raised to 4200 W, above all it draws)", [
        ("req", 100, "schedule", {"on": True, "until": H}),
        ("req", 100, "dso", {"limit_w": 0, "until": H}),
        ("expect", 100, True, "schedule", None),
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
    ], {"nominal_w": 6000}),
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


def run_case(steps, **kw):
    a = make(**kw)
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
    for case in CASES:
        name, steps = case[0], case[1]
        try:
            run_case(steps, **(case[2] if len(case) > 2 else {}))
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
    a = make(min_on_s=120, min_off_s=60, max_cycles_per_h=1, nominal_w=6000)
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
    a = make(min_on_s=min_on, min_off_s=min_off, max_cycles_per_h=cap, nominal_w=6000)
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
                a.request(name, power_w=rnd(6001), until_ms=until)
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
    a = make(nominal_w=6000)
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
    # the limit in force: as asked, as the law applies it, and what the load may draw
    assert st["limit"] == {"asked_w": 2000, "limit_w": 4200, "expires_in_s": 500, "binds": True}, st["limit"]
    assert st["allowed_w"] == 0     # a single-stage 6 kW element above the limit: off


def test_modulating_load_is_capped_by_dso_never_below_the_minimum():
    a = Arbiter(nominal_w=11000, min_on_s=60, min_off_s=60, max_cycles_per_h=6, modulating=True, now_ms=0)
    a.request("backend", power_w=9000, until_ms=H * 1000)
    assert a.decide(60000)[:2] == (True, "backend") and a.power_w == 9000
    a.request("dso", limit_w=1800, until_ms=H * 1000)
    on, src, reasons, _ = a.decide(61000)
    assert (on, src, a.power_w) == (True, "dso", 4200)     # raised to the legal minimum
    a.request("dso", limit_w=8000, until_ms=H * 1000)
    assert a.decide(62000)[:2] == (True, "dso") and a.power_w == 8000
    a.request("dso", limit_w=10000, until_ms=H * 1000)
    on, src, reasons, _ = a.decide(63000)
    assert (on, src, a.power_w) == (True, "backend", 9000)
    assert reasons["dso"] == "limit 10000 W; does not bind (wanted 9000 W)", reasons
    a.request("dso", limit_w=0, until_ms=H * 1000)
    assert a.decide(64000)[:2] == (True, "dso") and a.power_w == 4200   # §14a never switches it off
    assert a.status(64000)["allowed_w"] == 4200


# What a limit does to a load (BK6-22-300): (load, asked limit, wish) ->
# (power, source, the dso reason's words or None when it binds).
#   load: ("single", nominal) | ("staged", stages) | ("mod", nominal); kw for the arbiter
LEGAL = [
    (("single", 3000), {}, 0, "on", 3000, "backend", "limit 0 W raised to the legal minimum 4200 W; "
                                                    "does not bind: the load draws at most 3000 W"),
    (("single", 4200), {}, 0, "on", 4200, "backend", "does not bind: the load draws at most 4200 W"),
    (("single", 6000), {}, 0, "on", 0, "dso", None),
    (("single", 6000), {}, 5999, "on", 0, "dso", None),
    (("single", 6000), {}, 6000, "on", 6000, "backend", "limit 6000 W; does not bind: the load draws at most"),
    (("single", 6000), {}, 0, "off", 0, "backend", "does not bind (wanted 0 W)"),
    (("staged", (2000, 4000, 6000)), {}, 0, "on", 4000, "dso", None),
    (("staged", (2000, 4000, 6000)), {}, 4100, "on", 4000, "dso", None),
    (("staged", (2000, 4000, 6000)), {}, 5000, "on", 4000, "dso", None),
    (("staged", (2000, 4000, 6000)), {}, 0, 2000, 2000, "backend", "does not bind (wanted 2000 W)"),
    (("staged", (3000, 6000, 9000)), {}, 0, "on", 3000, "dso", None),
    (("staged", (5000, 10000)), {}, 0, "on", 0, "dso", None),
    (("mod", 11000), {}, 0, 11000, 4200, "dso", None),
    (("mod", 11000), {}, 0, 3000, 3000, "backend", "does not bind (wanted 3000 W)"),
    (("mod", 4000), {}, 0, 4000, 4000, "backend", "does not bind: the load draws at most 4000 W"),
    # a large heat pump: a scaled minimum (dso.min_w), set by the installer
    (("mod", 20000), {"dso_min_w": 8000}, 0, 20000, 8000, "dso", None),
    # no controllable consumer under §14a: the limit is ignored, and says so
    (("single", 6000), {"controllable": False}, 0, "on", 6000, "backend",
     "limit 0 W ignored: no controllable consumer (14a EnWG)"),
]


def test_legal_semantics_table():
    for load, kw, asked, wish, power, src, why in LEGAL:
        kind, size = load
        args = dict(min_on_s=0, min_off_s=0, max_cycles_per_h=0, now_ms=0)
        args.update(kw)
        if kind == "staged":
            a = Arbiter(stages_w=size, **args)
        else:
            a = Arbiter(nominal_w=size, modulating=kind == "mod", **args)
        if wish in ("on", "off"):
            a.request("backend", on=wish == "on", until_ms=H * 1000)
        else:
            a.request("backend", power_w=wish, until_ms=H * 1000)
        a.request("dso", limit_w=asked, until_ms=H * 1000)
        on, got_src, reasons, deferred = a.decide(1000)
        what = (load, kw, asked, wish)
        assert deferred is None, (what, deferred)
        assert (a.power_w, got_src) == (power, src), (what, a.power_w, got_src, reasons)
        assert on == (power > 0), what
        if why is None:
            assert reasons.get("dso") is None, (what, reasons)
        else:
            assert why in reasons["dso"], (what, reasons["dso"])
        st = a.status(1000)
        assert st["limit"]["limit_w"] == (None if kw.get("controllable") is False
                                          else max(asked, kw.get("dso_min_w", 4200))), (what, st["limit"])
        assert st["allowed_w"] >= a.power_w or got_src != "dso", (what, st)


def test_staged_relays_are_protected_each():
    # 2/4/6 kW on three relays, relay k on from stage k; min on 60 s, off 30 s,
    # 2 switch-ons per relay and hour.
    a = Arbiter(stages_w=(2000, 4000, 6000), min_on_s=60, min_off_s=30, max_cycles_per_h=2, now_ms=0)
    a.request("backend", on=True, until_ms=10 * H * 1000)
    assert a.decide(10000) == (False, "backend", a.decide(10000)[2], "min_off relay 1: 20 s left")
    a.decide(30000)
    assert (a.stage, a.power_w) == (3, 6000)
    a.request("backend", power_w=2100, until_ms=10 * H * 1000)     # nearest stage: 2 kW
    on, src, _, deferred = a.decide(50000)
    assert (a.stage, deferred) == (3, "min_on relay 3: 40 s left")
    a.decide(90000)
    assert (a.stage, a.power_w) == (1, 2000)
    a.request("backend", power_w=5200, until_ms=10 * H * 1000)     # nearest: 6 kW
    a.decide(100000)
    assert (a.stage, a.status(100000)["deferred"]) == (1, "min_off relay 2: 20 s left")
    a.decide(120000)
    assert a.stage == 3
    # the grid operator: 4.2 kW at most -> the 4 kW stage at once, inside min on
    a.request("dso", limit_w=0, until_ms=200000)
    on, src, _, deferred = a.decide(121000)
    assert (a.stage, a.power_w, src, deferred) == (2, 4000, "dso", None)
    st = a.status(121000)
    assert st["stage"] == 2 and st["stages_w"] == [2000, 4000, 6000] and st["allowed_w"] == 4000
    # the limit lapses: relay 3 has had its two switch-ons of the hour (30 s, 120 s)
    on, src, _, deferred = a.decide(200000)
    assert a.stage == 2 and deferred == "cycle cap 2/h relay 3 reached, next in %d s" % (H - 170), deferred
    assert a.cycles_last_h(200000) == 2
    assert a.decide(30000 + H * 1000 - 1000)[3].startswith("cycle cap")
    a.decide(30000 + H * 1000)
    assert a.stage == 3


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
