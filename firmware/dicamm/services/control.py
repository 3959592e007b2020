# The control task: every second of device time it asks the arbiter who rules,
# applies the decision to the output and reports transitions. It feeds the
# schedule's active window and the plausibility faults into the arbiter as the
# "schedule" and "safety" sources, and the grid operator's §14a signal
# (services/gridsignal.py: contact, bench console, failsafe, the record that
# survives a reboot) as "dso"; the command interface sets "installer",
# "backend" and the console's limit through manual(), backend() and dso().
#
# Two time bases: legal time (timekeeper.now_ms(), Unix ms) runs the schedule and
# stamps events; a private monotonic ms counter, summed from clock.ticks_ms()
# differences, runs expiries and relay protection, so a time sync that steps
# legal time never shortens a minimum on/off time.
#
# on_transition(event) gets, for every on/off switching and every schedule window
# start/end and every edge of the §14a limit: {"kind": "switch"|"window_start"|
# "window_end"|"limit", "time_ms",
# "time_status", "source", "old", "new", "power_w", "reason", "reading",
# "window_id", "late"}. Setpoint changes that keep a load on are not events.
import gc
import time

from dicamm.platform import asyncio

from micropython import const

from dicamm.proto.arbiter import Arbiter
from dicamm.errors import CommandError, ConfigError, DicammError
from dicamm.proto.plausibility import POWER_STAYS, Plausibility
from dicamm.proto.schedule import Schedule
from dicamm.proto.schema import DSO_W, LEGAL_MIN_W, MINUTES, POWER_W, TTL_S
from dicamm.services.gridsignal import GridSignal

_TICK_MS = const(1000)
_FEEDBACK_SETTLE_MS = const(2000)


# relay.* settings and their defaults
DEFAULTS = {
    "nominal_w": 3000, "min_on_s": 120, "min_off_s": 120, "max_cycles_per_h": 6,
    "plausibility_share": 0.5, "plausibility_s": 30,
    "fault_retry_s": 900, "fault_retry_max_s": 14400,
    "manual_default_min": 60, "manual_max_min": 10080,
    "backend_ttl_s": 900, "dso_ttl_s": 7200, "stages_w": [],
}
# dso.* settings (the grid operator's §14a limit) and their defaults
DSO_DEFAULTS = {
    "controllable": True, "min_w": LEGAL_MIN_W, "contact": "off", "contact_w": LEGAL_MIN_W,
    "failsafe_w": LEGAL_MIN_W, "failsafe_s": 7200, "heartbeat_s": 0,
}
_PROTECTION = ("min_on_s", "min_off_s", "max_cycles_per_h")


def setting(config, key, default=None):
    # config may be a nested dict {"relay": {...}}, a flat dict {"relay.x": ...}
    # or an object with get("relay.x", default).
    if config is None:
        return default
    if isinstance(config, dict):
        if key in config:
            return config[key]
        sec, _, name = key.partition(".")
        s = config.get(sec)
        return s.get(name, default) if isinstance(s, dict) else default
    try:
        v = config.get(key, default)
    except TypeError:  # get(key) without a default
        try:
            v = config.get(key)
        except (KeyError, ConfigError):
            v = None
    except (KeyError, ConfigError):
        v = None
    return default if v is None else v


def _int_arg(v, name, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise CommandError("%s must be an integer %d-%d" % (name, lo, hi))
    return v


class Controller:
    def __init__(self, output, clock, timekeeper, config, on_transition=None, schedule_store=None, gate=None,
                 limit_store=None, contact=None):
        # timekeeper: a TimeKeeper (now_ms(), status()) or a plain now_ms callable.
        # schedule_store, limit_store: (save(bytes), load() -> bytes|None) or None.
        # gate: the load profile's BoundaryGate or None.
        # contact: the control box's contact input (drivers/contact.py) or None.
        self.output = output
        self.config = config
        self.gate = gate
        self.clock = clock
        if hasattr(timekeeper, "now_ms"):
            self._legal = timekeeper.now_ms
            self._tstatus = getattr(timekeeper, "status", None)
        else:
            self._legal = timekeeper
            self._tstatus = None
        self.on_transition = on_transition
        s = {}
        for k in DEFAULTS:
            s[k] = setting(config, "relay." + k, DEFAULTS[k])
        d = {}
        for k in DSO_DEFAULTS:
            d[k] = setting(config, "dso." + k, DSO_DEFAULTS[k])
        self.settings = s
        self.modulating = hasattr(output, "set_power")
        stages = getattr(output, "stages_w", None) or None
        self._ticks = clock.ticks_ms()
        self._mono = 0
        self.arbiter = Arbiter(s["nominal_w"], s["min_on_s"], s["min_off_s"],
                               s["max_cycles_per_h"], self.modulating, now_ms=0, stages_w=stages,
                               dso_min_w=d["min_w"], controllable=d["controllable"])
        self.grid = GridSignal(d, self.arbiter, contact, limit_store)
        self.restored = self.grid.restore(0, self._legal())
        save, load = schedule_store if schedule_store else (None, None)
        self.schedule = Schedule(save, load)
        self.staged = stages is not None
        self.plausibility = Plausibility(self.arbiter.nominal_w, s["plausibility_share"], s["plausibility_s"],
                                         s["fault_retry_s"], s["fault_retry_max_s"], self.staged)
        self.reading = None
        self.source = "power_up"
        self.deferred = None
        self.last_error = None
        self.feedback_fault = None
        self._applied = None     # (on, power_w) last applied to the output
        self._applied_ms = 0
        self._wake = None

    # -- time --------------------------------------------------------------
    def now_ms(self):
        # Monotonic ms since the controller was created.
        t = self.clock.ticks_ms()
        self._mono += time.ticks_diff(t, self._ticks)
        self._ticks = t
        return self._mono

    def _status_letter(self):
        return self._tstatus() if self._tstatus else None

    # -- the loop ------------------------------------------------------------
    async def start(self):
        # Power-up state: off, whatever the output was left in.
        old = bool(self.output.on)
        self._applied = None
        if await self._apply(self.now_ms(), False, 0):
            if old:
                self._emit("switch", "power_up", old, False, "power-up state off")

    async def run(self):
        if self._wake is None:
            # First start: the power-up state. Started again after an internal
            # error, the controller keeps the state it had.
            self._wake = asyncio.Event()
            await self.start()
        ms = self.clock.real_ms_for(_TICK_MS)
        while True:
            if self.gate is not None:
                # Windows and limits start and end on quarter hours: the edge's
                # events and transaction record (flash writes, a collection)
                # wait until the boundary's reading is in, a fraction of a
                # second on a device (at most the 9 s tolerance and the time
                # guard with a failing meter).
                await self.gate.wait_clear(0)
            try:
                await self.step()
            except Exception as e:  # keep control alive; status shows what broke
                self.last_error = "step: %r" % (e,)
            try:
                if hasattr(asyncio, "wait_for_ms"):
                    await asyncio.wait_for_ms(self._wake.wait(), ms)
                else:
                    await asyncio.wait_for(self._wake.wait(), ms / 1000)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def _kick(self):
        if self._wake is not None:
            self._wake.set()

    async def step(self):
        now = self.now_ms()
        legal = self._legal()
        a = self.arbiter
        for t in self.schedule.poll(legal):
            st = self._applied[0] if self._applied else False
            self._emit(t["kind"], "schedule", st, st, "window %s" % t["id"], t["id"], t["late"])
        w = self.schedule.active(legal)
        if w is not None:
            a.request("schedule", on=w.get("on"), power_w=w.get("power_w"),
                      until_ms=now + w["end"] * 1000 - legal, why="window " + w["id"])
        else:
            a.clear("schedule")
        p = self.plausibility
        h = p.holding(now)
        if h is not None:
            a.request("safety", on=False, until_ms=None if h == POWER_STAYS else p.hold_until_ms,
                      why="fault " + h)
        else:
            a.clear("safety")
        st = self._applied[0] if self._applied else False
        for text in self.grid.sync(now, legal):
            self._emit("limit", "dso", st, st, text)

        old = self._applied[0] if self._applied else False
        on, src, _, deferred = a.decide(now)
        self.source = src
        self.deferred = deferred
        target = (on, a.power_w)
        refresh = getattr(self.output, "refresh_ms", 0)
        if target != self._applied or (refresh and now - self._applied_ms >= refresh):
            if await self._apply(now, on, a.power_w) and on != old:
                r = a.get(src)
                why = r[4] if r is not None and r[4] else src
                self._emit("switch", src, old, on, why)
        self._check_feedback(now)

    async def _apply(self, now, on, power_w):
        try:
            if self.modulating:
                r = self.output.set_power(power_w)
            elif hasattr(self.output, "set_stage"):
                r = self.output.set_stage(self.arbiter.stage if on else 0)
            else:
                r = self.output.set(on)
            if r is not None:
                await r
        except (DicammError, OSError) as e:
            self.last_error = "output: %s" % (e,)
            return False
        was = self._applied
        self._applied = (on, power_w)
        self._applied_ms = now
        if was is None or was[0] != on or self.staged and was[1] != power_w:
            # an edge (a staged load's stage change too) for the plausibility check
            self.plausibility.feed(now, None, on, power_w if self.modulating or self.staged else None)
        return True

    def _check_feedback(self, now):
        fb = self.output.feedback()
        if fb is None or self._applied is None or now - self._applied_ms < _FEEDBACK_SETTLE_MS:
            return
        on = self._applied[0]
        self.feedback_fault = None if fb == on else (
            "contact %s while commanded %s" % ("closed" if fb else "open", "on" if on else "off"))

    def _emit(self, kind, source, old, new, reason, window_id=None, late=None):
        if self.on_transition is None:
            return
        ev = {"kind": kind, "time_ms": self._legal(), "time_status": self._status_letter(),
              "source": source, "old": old, "new": new,
              "power_w": self._applied[1] if self._applied else 0,
              "reason": reason, "reading": self.reading, "window_id": window_id, "late": late}
        if kind == "switch":
            # The consumer writes an event and a transaction record: a few
            # times a day, worth a collection first so that a fragmented heap
            # has its largest free block back.
            gc.collect()
        try:
            self.on_transition(ev)
        except Exception as e:  # a consumer's bug must not stop switching
            self.last_error = "on_transition: %r" % (e,)

    # -- inputs --------------------------------------------------------------
    def update_meter(self, reading, asked_ticks=None):
        # The latest meter reading (meter.Reading dict); feeds plausibility.
        # asked_ticks: device ticks when its request went out. A reading asked
        # for before the last switching shows the load as it was before it: no
        # evidence for or against the switching (a poll that was on the wire,
        # or waited behind a long step, must not make "no power rise").
        self.reading = reading
        if self._applied is None or reading is None or reading.get("power_w") is None:
            return
        if asked_ticks is not None:
            asked = self.now_ms() - time.ticks_diff(self.clock.ticks_ms(), asked_ticks)
            if asked < self._applied_ms:
                return
        on, pw = self._applied
        if self.plausibility.feed(self.now_ms(), reading["power_w"], on,
                                  pw if self.modulating or self.staged else None):
            self._kick()

    # -- commands (called by commands.Commands for the CLI and MQTT) ---------
    def manual(self, mode, minutes=None):
        if mode == "auto":
            self.arbiter.clear("installer")
        elif mode in ("on", "off"):
            s = self.settings
            if minutes is None:
                minutes = s["manual_default_min"]
            minutes = _int_arg(minutes, "minutes", MINUTES[0], s["manual_max_min"])
            self.arbiter.request("installer", on=mode == "on",
                                 until_ms=self.now_ms() + minutes * 60000,
                                 why="manual %s for %d min" % (mode, minutes))
        else:
            raise CommandError("mode must be on, off or auto")
        self._kick()
        return self.status()

    def backend(self, on=None, power_w=None, ttl_s=None):
        # on or power_w with a time to live; neither = release.
        if on is None and power_w is None:
            self.arbiter.clear("backend")
        else:
            if (on is None) == (power_w is None):
                raise CommandError("give either on or power_w")
            if on is not None and not isinstance(on, bool):
                raise CommandError("on must be true or false")
            if power_w is not None:
                _int_arg(power_w, "power_w", POWER_W[0], POWER_W[1])
            ttl = _int_arg(self.settings["backend_ttl_s"] if ttl_s is None else ttl_s,
                           "ttl_s", TTL_S[0], TTL_S[1])
            self.arbiter.request("backend", on=on, power_w=power_w,
                                 until_ms=self.now_ms() + ttl * 1000,
                                 why="backend %s" % (("on" if on else "off") if on is not None
                                                     else "%d W" % power_w))
        self._kick()
        return self.status()

    def dso(self, limit_w=None, ttl_s=None):
        # The bench console's §14a limit in W with a time to live; None = lifted.
        now = self.now_ms()
        if limit_w is None:
            self.grid.console(now, None, None)
        else:
            _int_arg(limit_w, "limit_w", DSO_W[0], DSO_W[1])
            ttl = _int_arg(self.settings["dso_ttl_s"] if ttl_s is None else ttl_s,
                           "ttl_s", TTL_S[0], TTL_S[1])
            self.grid.console(now, limit_w, now + ttl * 1000)
        self._kick()
        return self.status()

    def reconfigure(self):
        # The relay protection settings from the config, at once (a remote
        # change must not wait for a restart).
        s = self.settings
        for k in _PROTECTION:
            s[k] = setting(self.config, "relay." + k, DEFAULTS[k])
        self.arbiter.configure(s["min_on_s"], s["min_off_s"], s["max_cycles_per_h"])
        self._kick()

    async def watch_contact(self):
        # A task where a control box contact is configured: its debounce
        # needs samples more often than control steps come.
        await self.grid.watch(self._kick)

    def load_schedule(self, windows):
        n = self.schedule.replace(windows)
        self._kick()
        return {"windows": n}

    # -- reports ---------------------------------------------------------
    def status(self):
        now = self.now_ms()
        st = self.grid.info(now, self._legal(), self.arbiter.status(now))
        if self._applied is not None:
            st["state"] = "on" if self._applied[0] else "off"
        faults = self.plausibility.info(now)
        f = faults["faults"]
        if self.feedback_fault:
            f["feedback"] = {"since_ms": self._applied_ms, "detail": self.feedback_fault}
        st["faults"] = f
        st["fault_hold_s"] = faults["hold_s"]
        st["metered_w"] = self.reading.get("power_w") if self.reading else None
        st["last_error"] = self.last_error
        return st

    def element_fault(self):
        # Element and relay faults (plausibility, contact feedback) as the
        # text of the "element" fault that status and MQTT show, or None.
        f = self.plausibility.faults
        if f:
            name = sorted(f)[0]
            return "%s: %s" % (name, f[name].get("detail"))
        if self.feedback_fault:
            return "feedback: " + self.feedback_fault
        return None

    def state(self):
        # The part of MQTT `state` that is the controller's (docs/MQTT.md).
        st = self.status()
        src = st["sources"]
        lim = st.get("limit") or {}
        back = src["backend"]["request"]
        return {"relay": st["state"], "source": st["source"], "mode": src["installer"]["request"] or "auto",
                "backend": back if back in ("on", "off") else "auto", "faults": sorted(st["faults"]),
                "limit_w": lim.get("limit_w"), "limit_asked_w": lim.get("asked_w"),
                "limit_source": lim.get("source"), "limit_until_ms": lim.get("until_ms"),
                "allowed_w": st["allowed_w"], "stage": st.get("stage")}

    def schedule_status(self):
        return self.schedule.info(self._legal())
