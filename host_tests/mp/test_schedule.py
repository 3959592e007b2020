# Schedule ("Fahrplan"): validation, late join after a restart, no replay of an
# ended window, atomic replacement. Dual test (MicroPython and CPython).
import json

from dicamm.errors import CommandError, StorageError
from dicamm.proto.schedule import MAX_WINDOWS, Schedule, validate

T0 = 1750000000  # Unix s


def W(wid, start, end, **kw):
    w = {"id": wid, "start": T0 + start, "end": T0 + end}
    if not kw:
        kw = {"on": True}
    w.update(kw)
    return w


class Store:
    # The save/load pair the app builds from fsutil.write_atomic/fsutil.read.
    def __init__(self, data=None, fail=False):
        self.data = data
        self.fail = fail
        self.saves = 0

    def save(self, b):
        if self.fail:
            raise StorageError("flash full")
        self.data = bytes(b)
        self.saves += 1

    def load(self):
        return self.data


BAD = [
    ("not a list", {"id": "a"}, "a list"),
    ("end before start", [W("a", 100, 100)], "end must be after start"),
    ("overlap", [W("a", 0, 100), W("b", 99, 200)], "overlap"),
    ("overlap unsorted", [W("b", 50, 60), W("a", 0, 100)], "overlap"),
    ("duplicate id", [W("a", 0, 10), W("a", 20, 30)], "not unique"),
    ("both on and power", [W("a", 0, 10, on=True, power_w=5)], "either on or power_w"),
    ("neither", [{"id": "a", "start": T0, "end": T0 + 1}], "either on or power_w"),
    ("float time", [{"id": "a", "start": T0 + 0.5, "end": T0 + 10, "on": True}], "Unix seconds"),
    ("bool time", [{"id": "a", "start": True, "end": T0, "on": True}], "Unix seconds"),
    ("negative power", [W("a", 0, 10, power_w=-1)], "power_w"),
    ("on not bool", [W("a", 0, 10, on=1)], "true or false"),
    ("empty id", [W("", 0, 10)], "id must be"),
    ("id not str", [{"id": 7, "start": T0, "end": T0 + 1, "on": True}], "id must be"),
    ("unknown key", [W("a", 0, 10, on=True, colour="red")], "unknown key"),
    ("window not a dict", ["a"], "an object"),
    ("too many", [W("w%d" % i, 10 * i, 10 * i + 5) for i in range(MAX_WINDOWS + 1)], "at most"),
]


def test_validation_table():
    for name, windows, msg in BAD:
        try:
            validate(windows)
        except CommandError as e:
            assert msg in str(e), (name, str(e))
            continue
        raise AssertionError("accepted: " + name)


def test_valid_schedule_sorted_and_touching_windows_allowed():
    ws = validate([W("b", 100, 200, power_w=2000), W("a", 0, 100), W("c", 200, 300, on=False)])
    assert [w["id"] for w in ws] == ["a", "b", "c"]
    assert validate([W("w%d" % i, 10 * i, 10 * i + 5) for i in range(MAX_WINDOWS)])


def test_active_window():
    s = Schedule()
    s.replace([W("a", 0, 100), W("b", 200, 300, power_w=1500)])
    ms = lambda sec: (T0 + sec) * 1000
    assert s.active(ms(-1)) is None
    assert s.active(ms(0))["id"] == "a"
    assert s.active(ms(100) - 1)["id"] == "a"
    assert s.active(ms(100)) is None
    assert s.active(ms(250))["power_w"] == 1500
    assert s.active(ms(300)) is None
    assert s.next_change_s(ms(50)) == T0 + 100
    assert s.next_change_s(ms(150)) == T0 + 200
    assert s.next_change_s(ms(300)) is None


def test_transitions_in_normal_run():
    s = Schedule()
    s.replace([W("a", 10, 20), W("b", 20, 30)])
    seen = []
    for sec in range(0, 40):
        for t in s.poll((T0 + sec) * 1000):
            seen.append((sec, t["kind"], t["id"], t["late"]))
    assert seen == [(10, "window_start", "a", False), (20, "window_end", "a", False),
                    (20, "window_start", "b", False), (30, "window_end", "b", False)], seen


def test_late_join_after_restart_and_ended_window_not_replayed():
    st = Store()
    s = Schedule(st.save, st.load)
    s.replace([W("past", 0, 100), W("now", 200, 400), W("later", 500, 600)])
    assert st.saves == 1
    # the device restarts at T0+300: "past" ended while it was off, "now" runs
    s2 = Schedule(st.save, st.load)
    assert s2.load_error is None and len(s2.windows) == 3
    tr = s2.poll((T0 + 300) * 1000)
    assert [(t["kind"], t["id"], t["late"]) for t in tr] == [("window_start", "now", True)], tr
    assert s2.active((T0 + 300) * 1000)["id"] == "now"
    # a restart after every window ended replays nothing
    s3 = Schedule(st.save, st.load)
    assert s3.poll((T0 + 700) * 1000) == []
    assert s3.active((T0 + 700) * 1000) is None


def test_atomic_replace_keeps_old_schedule_on_error():
    st = Store()
    s = Schedule(st.save, st.load)
    s.replace([W("a", 0, 100)])
    stored = st.data
    try:
        s.replace([W("x", 0, 100), W("y", 50, 150)])  # overlap: refused as a whole
    except CommandError:
        pass
    else:
        raise AssertionError("overlap accepted")
    assert [w["id"] for w in s.windows] == ["a"] and st.data == stored
    st.fail = True
    try:
        s.replace([W("z", 0, 100)])
    except StorageError:
        pass
    else:
        raise AssertionError("storage error hidden")
    assert [w["id"] for w in s.windows] == ["a"] and st.data == stored
    st.fail = False
    s.replace([W("b", 0, 50), W("c", 60, 70)])
    assert [w["id"] for w in json.loads(st.data)["windows"]] == ["b", "c"]
    assert [w["id"] for w in Schedule(st.save, st.load).windows] == ["b", "c"]


def test_replacing_ends_the_running_window():
    s = Schedule()
    s.replace([W("a", 0, 100)])
    assert [t["kind"] for t in s.poll((T0 + 10) * 1000)] == ["window_start"]
    s.replace([W("b", 50, 100)])
    tr = s.poll((T0 + 20) * 1000)
    assert [(t["kind"], t["id"], t["late"]) for t in tr] == [("window_end", "a", True)], tr
    tr = s.poll((T0 + 70) * 1000)  # 20 s after b's start: more than the slack
    assert [(t["kind"], t["id"], t["late"]) for t in tr] == [("window_start", "b", True)], tr


def test_corrupt_store_gives_empty_schedule():
    for data in (b"{not json", b'{"windows": [{"id": "a"}]}', b'{"v": 1}'):
        st = Store(data)
        s = Schedule(st.save, st.load)
        assert s.windows == [] and s.load_error, data
    assert Schedule(Store(None).save, Store(None).load).load_error is None
