# Legal time: ties the device clock to UTC(PTB) by SNTP and says how far the
# time may be trusted (OCMF-style status S synchronised, I informative/manual,
# U unknown).
#
# Sources, in order of preference: the smart meter gateway (time.gateway,
# "host[:port]", optional), then time.servers (default PTB's four servers).
# How often each may be asked is dicamm.proto.ntp_poll's business (RFC 4330
# section 10: never twice within 15 s, a short burst only for the first sync,
# back-off on silence, kiss-o'-death obeyed). A sync asks every source that is due
# once (a first sync: a burst of time.samples, the answer with the shortest round
# trip, i.e. least asymmetry error, wins), then votes across the sources
# (dicamm.proto.time_vote: the majority, or our own synchronised clock as the
# second vote against a single source) and steps the clock by the chosen offset.
#
# Status S lasts while age_ms * drift_ppm / 1e6 <= max_drift_ms (integers).
# The age runs on the device's monotonic ticks, not on the wall clock (which
# steps), and is accumulated on every look so that a ticks wrap cannot make an
# old sync look fresh; run() looks at least once a day.
# Config keys (config.get(key), None = default): time.gateway, time.servers,
# time.max_drift_ms (1000), time.drift_ppm (0 = 50), time.resync_s (3600),
# time.retry_s (60), time.samples (4, the first sync's burst),
# time.sample_gap_ms (2000, the burst's gap, device time), time.timeout_ms
# (1000, real time), time.max_delay_ms (1000, real time).
from dicamm.platform import asyncio

from time import ticks_diff

from micropython import const

from dicamm import platform
from dicamm.errors import ConfigError, LinkError
from dicamm.proto.ntp_poll import BURST_GAP_MS, POOR_SYNC_REAL_MS, Peer, poor_sync
from dicamm.proto.time_vote import AGREE_MIN_MS, narrow, parse_hostport, vote

# PTB's two sites (Braunschweig: ptbtime1-3, Berlin: ptbtime4)
DEFAULT_SERVERS = ("ptbtime1.ptb.de", "ptbtime2.ptb.de", "ptbtime3.ptb.de", "ptbtime4.ptb.de")
_DEFAULT_PPM = const(50)
_MAX_WAIT_MS = const(3600000)  # run() looks at the age at least this often
_FAILS_PER_SOURCE = const(2)  # end a burst after this many failed samples


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
        self.sync_error_ms = None  # UTC within +-this of the clock at the last sync
        self.sync_unix_ms = None  # legal time right after the last step
        self.single_source = False
        self.servers = {}  # label -> last result or rejection reason
        self.last_error = None
        self.syncs = 0
        self._peers = {}  # label -> ntp_poll.Peer
        self._peers_key = None  # the configured sources they belong to
        self._peer_tick = clock.ticks_ms()
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
        key = ",".join(labels)
        if key != self._peers_key:
            # another set of sources: every server starts afresh (a DENY included)
            self._peers_key = key
            self._peers = {}
            self._peer_tick = self.clock.ticks_ms()
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
        if abs(by) > AGREE_MIN_MS:
            self.last_step = (unix_ms, by)
        self.suspect_step = None
        self._manual = True
        self._synced = False
        self.source = "manual"
        self.offset_ms = self.delay_ms = self.sync_error_ms = None
        self.sync_unix_ms = unix_ms
        self.single_source = False

    # --- sync ---------------------------------------------------------------
    def _get_query(self):
        if self._query is None:
            from dicamm.drivers.sntp import SntpClient
            self._query = SntpClient(self.clock).query
        return self._query

    def _look(self):
        # Let every server's wait run down by the device time since the last look.
        now = self.clock.ticks_ms()
        gone = ticks_diff(now, self._peer_tick)
        self._peer_tick = now
        for peer in self._peers.values():
            peer.elapse(gone)

    def _peer(self, label):
        peer = self._peers.get(label)
        if peer is None:
            peer = self._peers[label] = Peer()
        return peer

    async def _best_sample(self, label, host, port, gw, peer):
        # Best-by-delay sample of one source, or None (reason in self.servers).
        query = self._get_query()
        samples = peer.samples(self._cfg("time.samples", 4))
        timeout = int(self._cfg("time.timeout_ms", 1000))
        gap = max(BURST_GAP_MS, int(self._cfg("time.sample_gap_ms", BURST_GAP_MS)))
        max_delay = int(self._cfg("time.max_delay_ms", 1000))
        best = None
        err = None
        kod = None
        answered = False
        fails = 0
        for i in range(samples):
            if i:
                await self.clock.sleep_ms(gap)
            try:
                offset, delay, _, stratum = await query(host, port, timeout)
            except LinkError as e:
                kod = getattr(e, "kod", None)
                err = "kod " + kod if kod else str(e)
                if kod:
                    best = None  # a kiss ends the burst; nothing from this server counts
                    break
                fails += 1
                if fails >= _FAILS_PER_SOURCE:
                    break
                continue
            answered = True
            # the limit is on the wire's round trip, in real time like timeout_ms (on a
            # board the same; on the fast bench clock a 2 ms round trip is seconds)
            if self.clock.real_ms_for(delay) > max_delay:
                err = "delay %d ms > %d" % (delay, max_delay)
                continue
            if best is None or delay < best[2]:
                best = (label, offset, delay, stratum)
        self._look()
        resync_ms = int(self._cfg("time.resync_s", 3600)) * 1000
        if kod:
            peer.kiss(kod, resync_ms)
        elif best or answered:
            peer.answer()
        else:
            peer.failed(int(self._cfg("time.retry_s", 60)) * 1000, resync_ms)
        r = {"status": "ok" if best else "error", "gateway": gw, "reason": None if best else err}
        if best:
            r["offset_ms"] = best[1]
            r["delay_ms"] = best[2]
            r["stratum"] = best[3]
        r.update(peer.info())
        self.servers[label] = r
        return best

    async def sync_now(self):
        # One sync asked for at the console (selftest, setup); its error is
        # kept in last_error. Returns info().
        try:
            await self.sync_once()
        except Exception as e:
            self.last_error = repr(e)
        return self.info()

    async def sync_once(self):
        # Ask every source that is due, vote, step the clock. -> True if the clock was set.
        cands = []
        waiting = None
        asked = 0
        sources = self._sources()
        self._look()
        for label, host, port, gw in sources:
            peer = self._peer(label)
            if not peer.due():
                r = self.servers.get(label) or {"status": "waiting", "gateway": gw, "reason": None}
                if peer.stopped:
                    r = {"status": "stopped", "gateway": gw,
                         "reason": "kiss-o'-death %s: not asked again until a restart or a change of time sources" % peer.stopped}
                else:
                    waiting = peer.wait_ms if waiting is None else min(waiting, peer.wait_ms)
                r.update(peer.info())
                self.servers[label] = r
                continue
            asked += 1
            best = await self._best_sample(label, host, port, gw, peer)
            if best:
                cands.append(best)
        if not cands:
            if not asked and waiting is not None:
                self.last_error = "no time source due: the next may be asked in %d s" % ((waiting + 999) // 1000)
            elif not asked:
                self.last_error = "no time source left to ask"
            else:
                self.last_error = "no time source answered"
            return False
        chosen = self._vote(cands)
        if chosen is None:
            return False
        label, offset, delay, stratum = chosen
        clock = self.clock
        offset, err = narrow(offset, (delay + 1) // 2 + 2 * self._grain_ms(), self.error_bound_ms())
        self._note_step(offset, delay)
        clock.set_wall_ms(clock.wall_ms() + offset)
        self._synced = True
        self._manual = False
        self._age = 0
        self._tick = clock.ticks_ms()
        self.source = label
        self.offset_ms = offset
        self.delay_ms = delay
        self.sync_error_ms = err
        self.sync_unix_ms = clock.wall_ms()
        self.single_source = len(cands) == 1
        self.syncs += 1
        self.last_error = None
        return True

    def next_due_ms(self):
        # device ms until some source may be asked again (None: none ever will)
        self._look()
        waits = [p.wait_ms for p in self._peers.values() if not p.stopped]
        return min(waits) if waits else None

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
            budget = self._age * ppb // 1000000000 + delay + 4 * self._grain_ms() + AGREE_MIN_MS
            if abs(offset) > budget:
                self.suspect_step = {"by_ms": offset, "budget_ms": budget, "at_ms": self.clock.wall_ms() + offset}
                self.last_error = "time stepped by %d ms while synchronised (drift budget %d ms): check the time sources" % (
                    offset, budget)
        if abs(offset) > AGREE_MIN_MS:
            self.last_step = (self.clock.wall_ms() + offset, offset)

    def _grain_ms(self):
        # The clocks' grain: the offset of a sample is known to +-delay/2 plus
        # the grain of our clock's stamps (t1, t4) and of the server's (t2, t3),
        # taken as no coarser than ours (1 ms on a board; one real ms, i.e.
        # `speed` device ms, on the bench clock, where a round trip often reads 0).
        fn = getattr(self.clock, "resolution_ms", None)
        return fn() if fn is not None else 0

    def error_bound_ms(self):
        # How far legal time may be off UTC now, while S (else None): the
        # sync's error (half its round trip, narrowed by the clock it
        # corrected: time_vote.narrow) plus the worst drift since.
        left = self._fresh_left_ms()
        if left is None or left < 0 or self.sync_error_ms is None:
            return None
        _, ppb = self._budget()
        return self.sync_error_ms + self._age * ppb // 1000000000

    def poor_sync(self):
        # True while S rests on a sync whose error is worth improving soon.
        return poor_sync(self.sync_error_ms, self.clock.device_ms_at_speed(POOR_SYNC_REAL_MS))

    def steps_since(self, unix_ms):
        # True if the clock was stepped (by more than 0.5 s) at or after unix_ms.
        return self.last_step is not None and self.last_step[0] >= unix_ms

    def _vote(self, cands):
        left = self._fresh_left_ms()
        own = self._budget()[0] if left is not None and left >= 0 else None
        chosen, rejected, err = vote(cands, own)
        for label, reason in rejected:
            r = self.servers[label]
            r["status"] = "rejected"
            r["reason"] = reason
        if err:
            self.last_error = err
        return chosen

    # --- task ---------------------------------------------------------------
    async def run(self):
        # Resync every time.resync_s while S (and before S would expire), every
        # time.retry_s otherwise or after a poor sync. Device time, via the clock.
        while True:
            try:
                await self.sync_once()
            except Exception as e:  # never let the time task die
                self.last_error = repr(e)
            resync = int(self._cfg("time.resync_s", 3600)) * 1000
            retry = int(self._cfg("time.retry_s", 60)) * 1000
            left = self._fresh_left_ms()
            if left is not None and left >= 0 and not self.poor_sync():
                wait = min(resync, max(retry, left))
            else:
                wait = min(retry, resync)
            due = self.next_due_ms()  # no use waking before a source may be asked
            if due is not None and due > wait:
                wait = due
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
