# Schedule ("Fahrplan"): windows for §13k EnWG and tariffs, executed on legal time.
# A window is {"id": str, "start": Unix s UTC, "end": Unix s UTC, and either
# "on": bool or "power_w": int}. Pure apart from a save(bytes)/load() pair passed
# in (the app hands it fsutil.write_atomic/fsutil.read); a new schedule is checked
# as a whole and replaces the old one as a whole, or not at all.
#
# active(now_ms) is computed from the clock alone, so a window that began while the
# device was off is joined late and one that ended is never replayed. poll(now_ms)
# reports window start/end transitions for TAF16 events.
import json

from micropython import const

from dicamm.errors import CommandError, StorageError
from dicamm.proto.schema import POWER_W, WINDOWS

MAX_WINDOWS = WINDOWS[1]
_MAX_ID = const(64)
_KEYS = ("id", "start", "end", "on", "power_w")
# A window reported this long (s) after its start still counts as joined on
# time: the control tick, and at a quarter-hour boundary the wait for the load
# profile's reading (boundary_gate: at most 11 s).
_JOIN_SLACK_S = const(15)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate(windows, max_windows=MAX_WINDOWS):
    # -> a new sorted list of clean window dicts; raises CommandError.
    if not isinstance(windows, list):
        raise CommandError("schedule: a list of windows expected")
    if len(windows) > max_windows:
        raise CommandError("schedule: %d windows, at most %d" % (len(windows), max_windows))
    out = []
    ids = {}
    for i, w in enumerate(windows):
        if not isinstance(w, dict):
            raise CommandError("window %d: an object expected" % i)
        for k in w:
            if k not in _KEYS:
                raise CommandError("window %d: unknown key %s" % (i, k))
        wid = w.get("id")
        if not isinstance(wid, str) or not 0 < len(wid) <= _MAX_ID:
            raise CommandError("window %d: id must be a string of 1-%d chars" % (i, _MAX_ID))
        if wid in ids:
            raise CommandError("window %s: id not unique" % wid)
        ids[wid] = 1
        s = w.get("start")
        e = w.get("end")
        if not _is_int(s) or not _is_int(e) or s < 0:
            raise CommandError("window %s: start/end must be Unix seconds (int)" % wid)
        if e <= s:
            raise CommandError("window %s: end must be after start" % wid)
        c = {"id": wid, "start": s, "end": e}
        if ("on" in w) == ("power_w" in w):
            raise CommandError("window %s: give either on or power_w" % wid)
        if "on" in w:
            if not isinstance(w["on"], bool):
                raise CommandError("window %s: on must be true or false" % wid)
            c["on"] = w["on"]
        else:
            p = w["power_w"]
            if not _is_int(p) or not POWER_W[0] <= p <= POWER_W[1]:
                raise CommandError("window %s: power_w must be an int %d-%d" % (wid, POWER_W[0], POWER_W[1]))
            c["power_w"] = p
        out.append(c)
    out.sort(key=lambda c: c["start"])
    for i in range(1, len(out)):
        if out[i]["start"] < out[i - 1]["end"]:
            raise CommandError("windows %s and %s overlap" % (out[i - 1]["id"], out[i]["id"]))
    return out


class Schedule:
    def __init__(self, save=None, load=None, max_windows=MAX_WINDOWS):
        self._save = save
        self._max = max_windows
        self.windows = []
        self.load_error = None  # why the stored schedule was not usable
        self._current = None    # id of the window poll() last reported active
        self._polled = False
        if load is not None:
            self._restore(load)

    def _restore(self, load):
        try:
            data = load()
            if data:
                self.windows = validate(json.loads(data)["windows"], self._max)
        except (ValueError, KeyError, TypeError, OSError, CommandError, StorageError) as e:
            self.windows = []
            self.load_error = "stored schedule ignored: %s" % e

    def replace(self, windows):
        # Validate all, then store, then switch over; raises CommandError (bad
        # input) or the save function's error, leaving the old schedule in place.
        new = validate(windows, self._max)
        if self._save is not None:
            self._save(json.dumps({"v": 1, "windows": new}).encode())
        self.windows = new
        self.load_error = None
        return len(new)

    def active(self, now_ms):
        t = now_ms // 1000
        for w in self.windows:
            if w["start"] <= t < w["end"]:
                return w
            if w["start"] > t:
                break
        return None

    def next_change_s(self, now_ms):
        # Unix s of the next window start or end after now_ms, or None.
        t = now_ms // 1000
        for w in self.windows:
            if w["start"] > t:
                return w["start"]
            if w["end"] > t:
                return w["end"]
        return None

    def poll(self, now_ms):
        # -> list of transitions since the last poll, each
        # {"kind": "window_start"|"window_end", "id", "window", "late": bool}.
        # "late" marks a window joined after its start (restart or replaced
        # schedule); an end not at the window's end (replaced) has late=True too.
        out = []
        w = self.active(now_ms)
        wid = w["id"] if w else None
        cur = self._current
        if wid != cur:
            if cur is not None:
                old = None
                for x in self.windows:
                    if x["id"] == cur:
                        old = x
                early = old is None or now_ms // 1000 < old["end"]
                out.append({"kind": "window_end", "id": cur, "window": old, "late": early})
            if w is not None:
                # on the first poll after start-up, or when the schedule was
                # replaced, the window may have begun a while ago
                late = not self._polled or now_ms // 1000 > w["start"] + _JOIN_SLACK_S
                out.append({"kind": "window_start", "id": wid, "window": w, "late": late})
            self._current = wid
        self._polled = True
        return out

    def info(self, now_ms):
        w = self.active(now_ms)
        return {"windows": self.windows, "active": w["id"] if w else None,
                "next_change_s": self.next_change_s(now_ms), "load_error": self.load_error}
