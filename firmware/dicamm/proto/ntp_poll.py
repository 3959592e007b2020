# How often the SNTP client may ask each server: numbers in, decisions out.
#
# RFC 4330 section 10 (best practice for SNTP clients) and PTB's conditions for
# ptbtime1-4.ptb.de:
#   - never two requests to one server less than MIN_POLL_S apart ("MUST NOT under
#     any conditions use a poll interval less than 15 seconds"); the only exception
#     is a short burst for the first sync, as NTP's iburst: at most BURST_MAX
#     requests, at least BURST_GAP_MS apart;
#   - otherwise one request per server per sync: the burst is for a server's
#     first sync since start, and once again after _SILENT_ROUNDS silent syncs;
#   - a server that does not answer (or answers badly) is asked exponentially less
#     often, from time.retry_s up to time.resync_s;
#   - a kiss-o'-death (stratum 0) is obeyed: RATE (and any code other than DENY/RSTR)
#     at least doubles the server's interval, beyond the resync interval, up to a
#     day, and answers do not undo it; DENY and RSTR stop the server until a
#     restart or a change of the configured sources;
#   - a sync that left more than _POOR_SYNC_MS of error (a round trip stretched by
#     a busy start-up or network) is improved at time.retry_s, not kept until
#     time.resync_s: the load profile waits that error out before every boundary
#     read (up to half the legal 9 s). On the fast bench clock a real ms of loop
#     latency is `speed` device ms: the bar is at least POOR_SYNC_REAL_MS of it.
# Device milliseconds throughout (on a board the same as real time); the caller
# tells how much time went by (elapse), so a ticks wrap cannot matter.
from micropython import const

MIN_POLL_S = const(15)
_MIN_POLL_MS = const(15000)
BURST_MAX = const(4)
BURST_GAP_MS = const(2000)
_KOD_MAX_MS = const(86400000)  # a day
_SILENT_ROUNDS = const(3)  # this many failures in a row: the next answer may burst again
_STOP_CODES = ("DENY", "RSTR")
_POOR_SYNC_MS = const(1000)
POOR_SYNC_REAL_MS = const(3)


def poor_sync(error_ms, grain_ms):
    # error_ms: the last sync's error (None: none); grain_ms: POOR_SYNC_REAL_MS
    # of real time in device ms.
    return error_ms is not None and error_ms > max(_POOR_SYNC_MS, grain_ms)


class Peer:
    # One server's polling state.
    def __init__(self):
        self.wait_ms = 0  # until the next request may go
        self.backoff_ms = 0  # after silence or errors (0: healthy)
        self.floor_ms = _MIN_POLL_MS  # the least interval; raised by RATE
        self.fails = 0
        self.stopped = None  # "DENY"/"RSTR": never asked again (until reset)
        self.burst = True  # the next sync may burst

    def elapse(self, ms):
        self.wait_ms = self.wait_ms - ms if self.wait_ms > ms else 0

    def due(self):
        return self.stopped is None and self.wait_ms <= 0

    def samples(self, configured):
        # -> requests to send in this sync
        if not self.burst:
            return 1
        self.burst = False
        return min(BURST_MAX, max(1, int(configured)))

    def answer(self):
        # the server answered (usable or not is the caller's business)
        self.fails = 0
        self.backoff_ms = 0
        self.wait_ms = max(self.wait_ms, self.floor_ms)

    def failed(self, retry_ms, resync_ms):
        # silence, a network error or an unusable answer
        self.fails += 1
        if self.fails == _SILENT_ROUNDS:
            self.burst = True
        cap = max(_MIN_POLL_MS, resync_ms)
        step = max(_MIN_POLL_MS, retry_ms)
        self.backoff_ms = min(cap, self.backoff_ms * 2 if self.backoff_ms else step)
        self.wait_ms = max(self.wait_ms, self.backoff_ms, self.floor_ms)

    def kiss(self, code, resync_ms):
        if code in _STOP_CODES:
            self.stopped = code
            return
        self.floor_ms = min(_KOD_MAX_MS, max(2 * self.floor_ms, 2 * max(_MIN_POLL_MS, resync_ms)))
        self.wait_ms = max(self.wait_ms, self.floor_ms)

    def info(self):
        # for `time --json`: seconds until the next request, the back-off in force
        return {"next_s": None if self.stopped else (self.wait_ms + 999) // 1000,
                "interval_s": max(self.backoff_ms, self.floor_ms) // 1000,
                "stopped": self.stopped}
