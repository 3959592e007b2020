# The grid operator's §14a signal before the arbiter (pure: states and times in,
# the limit in force and its edges out; ms on the controller's monotonic base).
# Which channel asks for which limit until when, the failsafe when the signal's
# source is lost, the edges that become TAF16 events, and the record that lets a
# limit survive a reboot. What the limit does to the load (the legal minimum,
# what binds) is the arbiter's.
#
# Channels (the strictest live one rules):
#   contact   the control box's relay contact (FNN Steuerbox): as long as it signals
#   console   the bench console's `dso` command, with a time to live
#   failsafe  while the source is lost (a contact input that reports a fault, or a
#             configured heartbeat that stopped), for failsafe_ms; it ends when
#             the source is back, and does not start again in the same loss
# A limit that does not change (a sender repeating it) is no edge.
CHANNELS = ("contact", "console", "failsafe")


class GridLimit:
    def __init__(self, failsafe_w, failsafe_ms, heartbeat_ms=0, contact_w=None, now_ms=0):
        self.failsafe_w = int(failsafe_w)
        self.failsafe_ms = int(failsafe_ms)
        self.heartbeat_ms = int(heartbeat_ms)
        self.contact_w = contact_w
        self._req = {}          # channel -> [asked_w, until_ms or None]
        self._ended = {}        # channel -> why its request ended (lifted, released)
        self._heard = now_ms    # the console channel was last heard (heartbeat)
        self._contact_lost = False
        self.lost = None        # None, or what was lost: "contact", "heartbeat"
        self.last = None        # (channel, asked_w) in force at the last poll
        self.dirty = False      # the record changed: save it

    # -- inputs ----------------------------------------------------------
    def set(self, channel, asked_w, until_ms):
        self._req[channel] = [int(asked_w), until_ms]
        self._ended.pop(channel, None)
        self.dirty = True

    def clear(self, channel, why):
        if self._req.pop(channel, None) is not None:
            self._ended[channel] = why
            self.dirty = True

    def heard(self, now_ms):
        # The console channel's sender spoke (a limit, or lifting one).
        self._heard = now_ms

    def contact(self, signals, now_ms):
        # The debounced contact: True (limit), False (none), None (the input
        # reports a fault: a broken wire on a supervised input).
        self._contact_lost = signals is None
        if signals and self.contact_w is not None:
            if "contact" not in self._req:
                self.set("contact", self.contact_w, None)
        else:
            self.clear("contact", "released" if signals is False else "input fault")

    # -- state -----------------------------------------------------------
    def _live(self, r, now_ms):
        return r[1] is None or now_ms < r[1]

    def active(self, now_ms):
        # -> (channel, asked_w, until_ms or None) of the strictest live request, or None
        best = None
        for ch in CHANNELS:
            r = self._req.get(ch)
            if r is not None and self._live(r, now_ms) and (best is None or r[0] < best[1]):
                best = (ch, r[0], r[1])
        return best

    def _check_lost(self, now_ms):
        lost = "contact" if self._contact_lost else None
        if lost is None and self.heartbeat_ms and now_ms - self._heard >= self.heartbeat_ms:
            lost = "heartbeat"
        if lost is not None and self.lost is None:
            self.lost = lost
            self.set("failsafe", self.failsafe_w, now_ms + self.failsafe_ms)
        elif lost is None and self.lost is not None:
            self.lost = None
            self.clear("failsafe", "source back")
            self.dirty = True

    def poll(self, now_ms):
        # -> a list of edges (kind, channel, asked_w, why): kind "start",
        # "change" or "end"; at most one per call.
        self._check_lost(now_ms)
        for ch in CHANNELS:
            r = self._req.get(ch)
            if r is not None and not self._live(r, now_ms):
                del self._req[ch]
                self._ended[ch] = "lapsed" if ch != "failsafe" else "failsafe over"
                self.dirty = True
        a = self.active(now_ms)
        cur = None if a is None else (a[0], a[1])
        was = self.last
        if cur == was:
            return []
        self.last = cur
        self.dirty = True
        if cur is None:
            return [("end", was[0], was[1], self._ended.get(was[0]) or "ended")]
        return [("start" if was is None else "change", cur[0], cur[1], None)]

    # -- the record that survives a reboot -----------------------------
    def record(self, now_ms, legal_ms):
        # What a reboot must not forget, in legal ms: the console's and the
        # failsafe's limits, a loss in progress, the limit in force. The
        # contact is read again at start-up.
        self.dirty = False
        out = {"at": legal_ms, "lost": self.lost, "last": list(self.last) if self.last else None}
        for ch in ("console", "failsafe"):
            r = self._req.get(ch)
            if r is not None:
                out[ch] = [r[0], None if r[1] is None else legal_ms + r[1] - now_ms]
        return out

    def restore(self, rec, now_ms, legal_ms):
        # The record back after a reboot. The time left counts from legal time
        # when it is later than the record's; a clock that stands before it
        # (lost over the outage) gives the limit all the time it had then, never less.
        # -> the channels restored.
        if not isinstance(rec, dict):
            return []
        at = rec.get("at") or 0
        out = []
        for ch in ("console", "failsafe"):
            r = rec.get(ch)
            if not isinstance(r, list) or len(r) != 2 or not isinstance(r[0], int):
                continue
            if r[1] is None:
                self._req[ch] = [r[0], None]
            else:
                left = r[1] - (legal_ms if legal_ms >= at else at)
                if left <= 0:
                    self._ended[ch] = "lapsed while off"
                    continue
                self._req[ch] = [r[0], now_ms + left]
            out.append(ch)
        if rec.get("lost") in ("contact", "heartbeat"):
            # the loss goes on until the source is back: not heard since the
            # reboot, the heartbeat is still lost; the contact is read again
            self.lost = rec["lost"]
            if self.lost == "heartbeat":
                self._heard = now_ms - self.heartbeat_ms
        last = rec.get("last")
        if isinstance(last, list) and len(last) == 2 and last[0] in CHANNELS:
            self.last = (last[0], last[1])
            if last[0] not in self._req and last[0] != "contact":
                self._ended.setdefault(last[0], "lapsed while off")
        return out
