# The grid operator's §14a signal before the arbiter (proto/gridlimit.py):
# channels, the strictest rules, edges once each, the failsafe when the source
# is lost (EEBus LPC's failsafe limit and duration, for the contact and a
# heartbeat), and the record that survives a reboot. Dual test; times in s.
from dicamm.proto.gridlimit import GridLimit

S = 1000
L0 = 1750000000000   # legal ms


def make(heartbeat_s=0):
    return GridLimit(failsafe_w=4200, failsafe_ms=600 * S, heartbeat_ms=heartbeat_s * S, contact_w=4200)


# steps: ("set", t, channel, asked, until) ("clear", t, channel, why) ("contact", t, state)
#        ("heard", t) ("poll", t, edges, active (channel, asked) or None)
CASES = [
    ("a console limit: start, a repeat is no edge, a change is one, it lapses", [
        ("set", 10, "console", 0, 100),
        ("poll", 10, [("start", "console", 0, None)], ("console", 0)),
        ("set", 20, "console", 0, 130),
        ("poll", 20, [], ("console", 0)),
        ("set", 30, "console", 5000, 130),
        ("poll", 30, [("change", "console", 5000, None)], ("console", 5000)),
        ("poll", 129, [], ("console", 5000)),
        ("poll", 130, [("end", "console", 5000, "lapsed")], None),
        ("poll", 131, [], None),
    ]),
    ("lifted by its sender", [
        ("set", 10, "console", 4200, 1000),
        ("poll", 11, [("start", "console", 4200, None)], ("console", 4200)),
        ("clear", 12, "console", "lifted"),
        ("poll", 12, [("end", "console", 4200, "lifted")], None),
    ]),
    ("the contact signals as long as it does; the strictest channel rules", [
        ("contact", 5, False),
        ("poll", 5, [], None),
        ("contact", 10, True),
        ("poll", 10, [("start", "contact", 4200, None)], ("contact", 4200)),
        ("set", 20, "console", 6000, 200),
        ("poll", 20, [], ("contact", 4200)),
        ("contact", 30, False),
        ("poll", 30, [("change", "console", 6000, None)], ("console", 6000)),
        ("clear", 40, "console", "lifted"),
        ("poll", 40, [("end", "console", 6000, "lifted")], None),
    ]),
    ("a contact input fault: the failsafe for its duration, once per loss", [
        ("contact", 10, None),
        ("poll", 10, [("start", "failsafe", 4200, None)], ("failsafe", 4200)),
        ("poll", 609, [], ("failsafe", 4200)),
        ("poll", 610, [("end", "failsafe", 4200, "failsafe over")], None),
        ("contact", 700, None),
        ("poll", 700, [], None),              # still lost: no second failsafe
        ("contact", 800, False),
        ("poll", 800, [], None),              # back
        ("contact", 900, None),
        ("poll", 900, [("start", "failsafe", 4200, None)], ("failsafe", 4200)),   # a new loss
        ("contact", 950, True),
        ("poll", 950, [("change", "contact", 4200, None)], ("contact", 4200)),
    ]),
    ("a heartbeat that stops: the failsafe; heard again, it ends", [
        ("heard", 0),
        ("poll", 59, [], None),
        ("poll", 60, [("start", "failsafe", 4200, None)], ("failsafe", 4200)),
        ("heard", 100),
        ("poll", 100, [("end", "failsafe", 4200, "source back")], None),
        ("set", 110, "console", 0, 10000),
        ("heard", 110),
        ("poll", 110, [("start", "console", 0, None)], ("console", 0)),
        ("poll", 170, [], ("console", 0)),    # the failsafe (4200 W) is looser than the limit in force
        ("poll", 771, [], ("console", 0)),
    ]),
]


def run(steps, heartbeat_s=0):
    g = make(heartbeat_s)
    for st in steps:
        kind, t = st[0], st[1] * S
        if kind == "set":
            g.set(st[2], st[3], st[4] * S)
        elif kind == "clear":
            g.clear(st[2], st[3])
        elif kind == "contact":
            g.contact(st[2], t)
        elif kind == "heard":
            g.heard(t)
        else:
            got = g.poll(t)
            a = g.active(t)
            assert got == st[2], (st, got)
            assert (a[:2] if a else None) == st[3], (st, a)
    return g


def test_table():
    for name, steps in CASES:
        try:
            run(steps, 60 if "heartbeat" in name else 0)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (name, e))


def _after_reboot(rec, legal_ms, heartbeat_s=0):
    g = make(heartbeat_s)
    g.restore(rec, 0, legal_ms)
    return g


def test_record_restores_the_time_left():
    g = make()
    g.set("console", 0, 100 * S)
    g.poll(0)
    rec = g.record(20 * S, L0)             # 80 s left at legal L0
    assert rec["console"] == [0, L0 + 80 * S] and rec["last"] == ["console", 0] and not g.dirty
    # back 30 s later: 50 s left, the same limit, no edge
    g2 = _after_reboot(rec, L0 + 30 * S)
    assert g2.active(0) == ("console", 0, 50 * S)
    assert g2.poll(0) == [] and g2.poll(49 * S) == []
    assert g2.poll(50 * S) == [("end", "console", 0, "lapsed")]
    # a clock that came back before the record (time lost over the outage): all 80 s, never less
    g3 = _after_reboot(rec, L0 - 3600 * S)
    assert g3.active(0) == ("console", 0, 80 * S)
    # back after it lapsed: its end is an edge, once
    g4 = _after_reboot(rec, L0 + 200 * S)
    assert g4.active(0) is None
    assert g4.poll(0) == [("end", "console", 0, "lapsed while off")] and g4.poll(1) == []


def test_record_keeps_a_loss_and_its_failsafe():
    g = make(heartbeat_s=60)
    assert g.poll(60 * S) == [("start", "failsafe", 4200, None)]
    rec = g.record(100 * S, L0)
    assert rec["lost"] == "heartbeat" and rec["failsafe"] == [4200, L0 + 560 * S]
    g2 = _after_reboot(rec, L0 + 60 * S, heartbeat_s=60)
    assert g2.active(0) == ("failsafe", 4200, 500 * S) and g2.lost == "heartbeat"
    assert g2.poll(0) == [] and g2.poll(499 * S) == []
    assert g2.poll(500 * S) == [("end", "failsafe", 4200, "failsafe over")]
    assert g2.poll(2000 * S) == []          # the same loss: no second failsafe
    g2.heard(2001 * S)
    assert g2.poll(2001 * S) == [] and g2.lost is None


def test_bad_records_restore_nothing():
    for rec in (None, 7, "x", {}, {"console": "x"}, {"console": [1]}, {"console": ["a", 5]},
                {"last": ["nobody", 5]}, {"lost": "aliens"}):
        g = make()
        g.restore(rec, 0, L0)
        assert g.active(0) is None and g.lost is None, rec
        assert g.poll(0) == [], rec
