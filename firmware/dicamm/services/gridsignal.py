# The grid operator's §14a signal for the controller: the control box contact
# (debounced in its driver), the bench console's limit and the failsafe
# (proto/gridlimit.py) become the arbiter's "dso" request; the limit in force
# is written atomically whenever it changes and read back at start-up, before
# the first decision, so a reboot comes back limited; each edge of the limit
# comes back as the text of its TAF16 event.
import json
import time

from micropython import const

from dicamm.platform import asyncio
from dicamm.proto.gridlimit import GridLimit

_POLL_MS = const(20)   # contact sampling, real ms: the debounce sees several samples of a bounce

class GridSignal:
    def __init__(self, settings, arbiter, contact=None, store=None):
        # settings: the controller's (failsafe_w, failsafe_s, heartbeat_s, contact_w).
        # contact: a driver with read(real_ms) -> True/False/None, or None.
        # store: (save(bytes), load() -> bytes|None) or None.
        s = settings
        self.arbiter = arbiter
        self.contact = contact
        self._save, self._load = store if store else (None, None)
        self.limit = GridLimit(s["failsafe_w"], s["failsafe_s"] * 1000, s["heartbeat_s"] * 1000,
                               s["contact_w"] if contact is not None else None)
        self.contact_state = None if contact is not None else "none"
        self.last_error = None
        self.last_end = None   # how the last limit ended: "lapsed (console)"

    def restore(self, now, legal):
        # -> a line for the log, or None. Puts the restored limit into the
        # arbiter at once.
        if self._load is None:
            return None
        try:
            b = self._load()
            rec = json.loads(b) if b else None
        except (OSError, ValueError) as e:
            return "14a limit record unreadable: %s" % e
        self.limit.restore(rec, now, legal)
        self._push(now)
        a = self.limit.active(now)
        if a is None:
            return None
        left = "no expiry" if a[2] is None else "%d s left" % ((a[2] - now) // 1000)
        return "14a limit %d W (%s) restored after restart, %s" % (a[1], a[0], left)

    # -- inputs ----------------------------------------------------------
    def console(self, now, asked_w, until_ms):
        # The bench console's `dso` (None = lift); also the heartbeat.
        g = self.limit
        g.heard(now)
        if asked_w is None:
            g.clear("console", "lifted")
        else:
            g.set("console", asked_w, until_ms)
        self._push(now)

    def read_contact(self):
        if self.contact is None:
            return None
        s = self.contact.read(time.ticks_ms())
        self.contact_state = "lost" if s is None else ("signals" if s else "idle")
        return s

    async def watch(self, kick):
        # A task: samples the contact often enough for its debounce and wakes
        # the controller on a settled change.
        last = self.read_contact()
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            s = self.read_contact()
            if s != last:
                last = s
                kick()

    # -- each control step -----------------------------------------------
    def sync(self, now, legal):
        # -> the texts of this step's edges (TAF16 events); the arbiter gets
        # the limit in force, the record is saved when it changed.
        g = self.limit
        if self.contact is not None:
            g.contact(self.read_contact(), now)
        edges = g.poll(now)
        for e in edges:
            if e[0] == "end":
                self.last_end = "%s (%s)" % (e[3], e[1])
        texts = [self._text(e) for e in edges]
        self._push(now)
        if g.dirty and self._save is not None:
            try:
                self._save(json.dumps(g.record(now, legal)).encode())
            except OSError as e:  # the limit holds in RAM; status shows what failed
                self.last_error = "14a record: %s" % e
        return texts

    def _push(self, now):
        a = self.limit.active(now)
        if a is None:
            self.arbiter.clear("dso")
        else:
            lim = self.arbiter.legal_limit(a[1])
            why = ("14a limit %d W (asked %d W, %s)" % (lim, a[1], a[0]) if lim is not None and lim > a[1]
                   else "14a limit %d W (%s)" % (a[1], a[0]))
            self.arbiter.request("dso", limit_w=a[1], until_ms=a[2], why=why)

    def _text(self, edge):
        kind, ch, asked, why = edge
        if kind == "end":
            return "14a limit ended: %s (%s)" % (why, ch)
        lim = self.arbiter.legal_limit(asked)
        if lim is None:
            return "14a limit %d W (%s): no controllable consumer" % (asked, ch)
        if asked < lim:
            return "14a limit %d W raised to the legal minimum %d W (%s)" % (asked, lim, ch)
        return "14a limit %d W (%s)" % (asked, ch)

    # -- reports -----------------------------------------------------------
    def fault(self):
        # The "dso" fault for status and MQTT: the signal's source is lost.
        g = self.limit
        if g.lost is None:
            return None
        why = getattr(getattr(self.contact, "raw", None), "why", None) if g.lost == "contact" else None
        return "14a signal lost (%s%s): failsafe limit %d W for at most %d s" % (
            g.lost, ": " + why if why else "", g.failsafe_w, g.failsafe_ms // 1000)

    def info(self, now, legal, st):
        # Adds to the arbiter's status `st`: the limit's source (channel), its
        # expiry in legal ms, the contact and a lost source.
        a = self.limit.active(now)
        lim = st.get("limit")
        if lim is not None and a is not None:
            lim["source"] = a[0]
            lim["until_ms"] = None if a[2] is None else legal + a[2] - now
        st["grid_signal"] = {"contact": self.contact_state, "bounces": getattr(self.contact, "bounces", None),
                             "lost": self.limit.lost, "last_end": self.last_end,
                             "heartbeat_s": self.limit.heartbeat_ms // 1000 or None,
                             "last_error": self.last_error}
        return st
