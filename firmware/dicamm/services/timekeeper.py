# Legal time: ties the device clock to UTC(PTB) by SNTP and says how far the
# time may be trusted (OCMF-style status S synchronised, I informative/manual,
# U unknown).
#
# Sources, in order of preference: the smart meter gateway (time.gateway,
# "host[:port]", optional), then time.servers (default the three PTB servers).
# A sync asks every source time.samples times and keeps its answer with the
# shortest round trip (least asymmetry error). Then the majority rule:
#   two sources agree when their offsets differ by at most
#   max(500 ms, delay_a + delay_b)   (each offset is only known to +-delay/2;
#   the factor 2 leaves room for path asymmetry and server jitter);
#   the source agreeing with most others (ties: the preferred one) is the pivot;
#   it must be agreed with by more than half of the sources that answered,
#   else nothing is set ("no majority"); sources not agreeing with it are
#   rejected. The clock is stepped by the offset of the most preferred
#   agreeing source.
# With a single answering source there is nothing to vote: it is accepted and
# noted (single_source), unless our own time is still S and the source is
# further off than the drift budget allows: then our clock is the second vote.
#
# Status S lasts while age_ms * drift_ppm / 1e6 <= max_drift_ms (integers).
# The age runs on the device's monotonic ticks, not on the wall clock (which
# steps), and is accumulated on every look so that a ticks wrap cannot make an
# old sync look fresh; run() looks at least once a day.
# Config keys (config.get(key), None = default): time.gateway, time.servers,
# time.max_drift_ms (1000), time.drift_ppm (0 = 50), time.resync_s (3600),
# time.retry_s (60), time.samples (4), time.timeout_ms (1000, real time),
# time.sample_gap_ms (1000, real time), time.max_delay_ms (1000, real time).
from dicamm.platform import asyncio

from time import ticks_diff

from micropython import const

from dicamm import platform
from dicamm.errors import ConfigError, LinkError

DEFAULT_SERVERS = ("ptbtime1.ptb.de", "ptbtime2.ptb.de", "ptbtime3.ptb.de")
_NTP_PORT = const(123)
_AGREE_MIN_MS = const(500)
_DEFAULT_PPM = const(50)
_MAX_WAIT_MS = const(3600000)  # run() looks at the age at least this often
_FAILS_PER_SOURCE = const(2)  # give up on a source after this many failed samples


def parse_hostport(s, default_port=_NTP_PORT):
    # "host[:port]" -> (host, port); IPv6 literals are not supported.
    s = s.strip()
    if not s:
        raise ConfigError("empty time server")
    i = s.rfind(":")
    if i < 0:
        return s, default_port
    try:
        port = int(s[i + 1:])
    except ValueError:
        raise ConfigError("bad port in %r" % s)
    if not 0 < port < 65536 or i == 0:
        raise ConfigError("bad time server %r" % s)
    return s[:i], port


def _agree(a, b):
    # a, b: (label, offset_ms, delay_ms, stratum)
    return abs(a[1] - b[1]) <= max(_AGREE_MIN_MS, a[2] + b[2])


class TimeKeeper:
    def __init__(self, clock, config, query=None):
        self.clock = clock
        self.config = config
        self._query = query  # async (host, port, timeout_ms) -> (offset, delay, server, stratum)
        self._synced = False
        self._manual = False
        self._age = 0  # ms of device ticks since the last good sync
        self._tick = 0
        self.source = None
        self.offset_ms = None
        self.delay_ms = None
        self.sync_unix_ms = None  # legal time right after the last step
        self.single_source = False
        self.servers = {}  # label -> last result or rejection reason
        self.last_error = None
        self.syncs = 0
        self._kod = {}  # label -> rounds to skip (-1: for good)
        self.last_step = None  # (legal ms after the step, step ms)
        self.suspect_step = None

    # --- config -------------------------------------------------------------
    def _cfg(self, key, default):
        try:
            v = self.config.get(key)
        except (KeyError, ConfigError):
            v = None
        return default if v is None else v

    def _sources(self):
        # -> [(label, host, port, is_gateway)] in order of preference
        out = []
        gw = self._cfg("time.gateway", None)
        if gw:
            out.append((gw, True))
        servers = self._cfg("time.servers", DEFAULT_SERVERS)
        if isinstance(servers, str):
            servers = servers.split(",")
        for s in servers:
            out.append((s.strip(), False))
        labels = [o[0] for o in out]
        for label in list(self.servers):
            if label not in labels:
                del self.servers[label]  # dropped from the config
        res = []
        for label, gw in out:
            try:
                host, port = parse_hostport(label)
            except ConfigError as e:
                self.servers[label] = {"status": "error", "reason": str(e)}
                continue
            res.append((label, host, port, gw))
        return res

    def _budget(self):
        # -> (max_drift_ms, worst-case drift in parts per billion). drift_ppm is
        # a bound, so its sign does not matter; 0 means "not set" (50 ppm, an
        # ESP32 crystal over temperature); never below 1 ppm: no RTC is perfect.
        ppm = abs(self._cfg("time.drift_ppm", 0)) or _DEFAULT_PPM
        return int(self._cfg("time.max_drift_ms", 1000)), max(1000, int(ppm * 1000))

    # --- status -------------------------------------------------------------
    def _age_ms(self):
        if not self._synced:
            return None
        now = self.clock.ticks_ms()
        self._age += ticks_diff(now, self._tick)
        self._tick = now
        return self._age

    def _fresh_left_ms(self):
        # Device ms until S expires (<0: expired); None if not synced.
        age = self._age_ms()
        if age is None:
            return None
        max_drift, ppb = self._budget()
        return max_drift * 1000000000 // ppb - age

    def status(self):
        left = self._fresh_left_ms()
        if left is not None and left >= 0:
            return "S"
        return "I" if self._manual else "U"

    def now_ms(self):
        return self.clock.wall_ms()

    def stamp(self):
        return self.clock.wall_ms(), self.status()

    def set_manual(self, unix_ms):
        # The installer sets the time by hand: informative, never S.
        by = unix_ms - self.clock.wall_ms()
        self.clock.set_wall_ms(unix_ms)
        if abs(by) > _AGREE_MIN_MS:
            self.last_step = (unix_ms, by)
        self.suspect_step = None
        self._manual = True
        self._synced = False
        self.source = "manual"
        self.offset_ms = self.delay_ms = None
        self.sync_unix_ms = unix_ms
        self.single_source = False

    # --- sync ---------------------------------------------------------------
    def _get_query(self):
        if self._query is None:
            from dicamm.drivers.sntp import SntpClient
            self._query = SntpClient(self.clock).query
        return self._query

    async def _best_sample(self, label, host, port, gw):
        # Best-by-delay sample of one source, or None (reason in self.servers).
        query = self._get_query()
        samples = max(1, int(self._cfg("time.samples", 4)))
        timeout = int(self._cfg("time.timeout_ms", 1000))
        gap = int(self._cfg("time.sample_gap_ms", 1000))
        max_delay = int(self._cfg("time.max_delay_ms", 1000))
        best = None
        err = None
        fails = 0
        for i in range(samples):
            if i and gap > 0:
                await asyncio.sleep_ms(gap)
            try:
                offset, delay, _, stratum = await query(host, port, timeout)
            except LinkError as e:
                kod = getattr(e, "kod", None)
                if kod:
                    # RFC 4330: DENY/RSTR mean stop asking; RATE (and the
                    # rest) mean ask less: skip the source in the next round.
                    self._kod[label] = -1 if kod in ("DENY", "RSTR") else 1
                    err = "kod " + kod
                    best = None
                    break
                err = str(e)
                fails += 1
                if fails >= _FAILS_PER_SOURCE:
                    break
                continue
            # the limit is on the wire's round trip, in real time like timeout_ms (on a
            # board the same; on the fast bench clock a 2 ms round trip is seconds)
            if self.clock.real_ms_for(delay) > max_delay:
                err = "delay %d ms > %d" % (delay, max_delay)
                continue
            if best is None or delay < best[2]:
                best = (label, offset, delay, stratum)
        r = {"status": "ok" if best else "error", "gateway": gw, "reason": None if best else err}
        if best:
            r["offset_ms"] = best[1]
            r["delay_ms"] = best[2]
            r["stratum"] = best[3]
        self.servers[label] = r
        return best

    async def sync_once(self):
        # Ask all sources, vote, step the clock. -> True if the clock was set.
        cands = []
        for label, host, port, gw in self._sources():
            skip = self._kod.get(label, 0)
            if skip:
                if skip > 0:
                    self._kod[label] = skip - 1
                self.servers[label] = {"status": "skipped", "gateway": gw,
                                       "reason": "kiss-o'-death: " + ("denied" if skip < 0 else "rate limited")}
                continue
            best = await self._best_sample(label, host, port, gw)
            if best:
                cands.append(best)
        if not cands:
            self.last_error = "no time source answered"
            return False
        chosen = self._vote(cands)
        if chosen is None:
            return False
        label, offset, delay, stratum = chosen
        clock = self.clock
        self._note_step(offset, delay)
        clock.set_wall_ms(clock.wall_ms() + offset)
        self._synced = True
        self._manual = False
        self._age = 0
        self._tick = clock.ticks_ms()
        self.source = label
        self.offset_ms = offset
        self.delay_ms = delay
        self.sync_unix_ms = clock.wall_ms()
        self.single_source = len(cands) == 1
        self.syncs += 1
        self.last_error = None
        return True

    def _note_step(self, offset, delay):
        # What the firmware can say about a step it is about to make. While S,
        # our own clock cannot be further off than the drift budget: a larger
        # step means the sources moved (all together: a false sync we cannot
        # outvote) or our clock failed. It is taken (the sources are the
        # majority) but kept visible in `time` as suspect_step until the next
        # manual set, and every step is remembered for the load profile's gaps.
        left = self._fresh_left_ms()
        if left is not None and left >= 0:
            max_drift, ppb = self._budget()
            budget = self._age * ppb // 1000000000 + delay + _AGREE_MIN_MS
            if abs(offset) > budget:
                self.suspect_step = {"by_ms": offset, "budget_ms": budget, "at_ms": self.clock.wall_ms() + offset}
                self.last_error = "time stepped by %d ms while synchronised (drift budget %d ms): check the time sources" % (
                    offset, budget)
        if abs(offset) > _AGREE_MIN_MS:
            self.last_step = (self.clock.wall_ms() + offset, offset)

    def error_bound_ms(self):
        # How far legal time may be off UTC now, while S (else None): half the
        # round trip of the sync (the offset is only known to +-delay/2) plus
        # the worst drift since.
        left = self._fresh_left_ms()
        if left is None or left < 0 or self.delay_ms is None:
            return None
        _, ppb = self._budget()
        return (self.delay_ms + 1) // 2 + self._age * ppb // 1000000000

    def steps_since(self, unix_ms):
        # True if the clock was stepped (by more than 0.5 s) at or after unix_ms.
        return self.last_step is not None and self.last_step[0] >= unix_ms

    def _vote(self, cands):
        n = len(cands)
        if n == 1:
            c = cands[0]
            left = self._fresh_left_ms()
            if left is not None and left >= 0:
                max_drift, _ = self._budget()
                if abs(c[1]) > max(_AGREE_MIN_MS, c[2] + max_drift):
                    self._reject(c, "single source, %d ms off our synchronised clock" % c[1])
                    self.last_error = "single source disagrees with our synchronised clock"
                    return None
            return c
        pivot, support = None, 0
        for a in cands:
            k = 0
            for b in cands:
                if _agree(a, b):
                    k += 1
            if k > support:  # strict: ties keep the preferred (earlier) source
                pivot, support = a, k
        if support * 2 <= n:
            for c in cands:
                self._reject(c, "no majority")
            self.last_error = "time sources disagree: no majority of %d" % n
            return None
        chosen = None
        for c in cands:
            if _agree(pivot, c):
                if chosen is None:
                    chosen = c
            else:
                self._reject(c, "disagrees with majority by %d ms" % (c[1] - pivot[1]))
        return chosen

    def _reject(self, c, reason):
        r = self.servers[c[0]]
        r["status"] = "rejected"
        r["reason"] = reason

    # --- task ---------------------------------------------------------------
    async def run(self):
        # Resync every time.resync_s while S (and before S would expire),
        # every time.retry_s otherwise. Device time, via the clock.
        while True:
            try:
                await self.sync_once()
            except Exception as e:  # never let the time task die
                self.last_error = repr(e)
            resync = int(self._cfg("time.resync_s", 3600)) * 1000
            retry = int(self._cfg("time.retry_s", 60)) * 1000
            left = self._fresh_left_ms()
            if left is not None and left >= 0:
                wait = min(resync, max(retry, left))
            else:
                wait = min(retry, resync)
            await self.clock.sleep_ms(max(1000, min(wait, _MAX_WAIT_MS)))

    def info(self):
        # For `time --json`.
        now, st = self.stamp()
        age = self._age_ms()
        left = self._fresh_left_ms()
        from dicamm.proto.localtime import iso_utc
        return {
            # unix: seconds with fraction; a board's single-precision float
            # cannot hold that, so the console prints unix_ms as "%d.%03d".
            "unix": now / 1000 if platform.UNIX else now // 1000,
            "unix_ms": now,
            "iso": iso_utc(now, True),
            "status": st,
            "s_left_s": None if left is None or left < 0 else left // 1000,
            "error_ms": self.error_bound_ms(),
            "manual": self._manual,
            "suspect_step": self.suspect_step,
            "source": self.source,
            "offset_ms": self.offset_ms,
            "delay_ms": self.delay_ms,
            "age_s": None if age is None else age // 1000,
            "synced_at_ms": self.sync_unix_ms,
            "single_source": self.single_source,
            "syncs": self.syncs,
            "servers": self.servers,
            "last_error": self.last_error,
        }
