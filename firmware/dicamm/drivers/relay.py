# Outputs that switch the load. All share one interface:
#   set(on)      switch; returns None when done, or an awaitable to await
#   on           the commanded state (property)
#   feedback()   the contact's real state from an input, or None if there is none
# A load that takes a power setpoint adds set_power(w) and power_w; its presence
# tells the controller the load is modulating.
# Pins and Modbus masters are passed in, never created here (boards/ has the pins).
import os

from micropython import const

_HISTORY = const(64)  # switching history kept in RAM (FileRelay)


class RelayOutput:
    # A relay on a GPIO pin (machine.Pin-like: value() / value(v)).
    def __init__(self, pin, active_low=False, feedback=None, feedback_active_low=False):
        self._pin = pin
        self._low = bool(active_low)
        self._fb = feedback
        self._fb_low = bool(feedback_active_low)
        try:
            self._on = bool(pin.value()) != self._low
        except (AttributeError, TypeError, OSError):
            self._on = False

    def set(self, on):
        on = bool(on)
        self._pin.value(0 if on == self._low else 1)
        self._on = on

    @property
    def on(self):
        return self._on

    def feedback(self):
        if self._fb is None:
            return None
        return bool(self._fb.value()) != self._fb_low


class FileRelay:
    # The unix board's emulated relay: its state lives in a file ("1"/"0", written
    # atomically) that the meter emulator reads to add the element's power.
    # history holds the last switchings as (time_ms, on); time from now_ms_fn
    # (e.g. clock.wall_ms), None without one.
    def __init__(self, path, now_ms_fn=None):
        self.path = path
        self._now = now_ms_fn
        self.history = []
        try:
            with open(path) as f:
                self._on = f.read(1) == "1"
        except OSError:
            self._on = False

    def set(self, on):
        on = bool(on)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("1" if on else "0")
            f.flush()
        os.rename(tmp, self.path)
        changed = on != self._on
        self._on = on
        if changed:
            self.history.append((self._now() if self._now else None, on))
            if len(self.history) > _HISTORY:
                self.history.pop(0)

    @property
    def on(self):
        return self._on

    def feedback(self):
        return None


class SetpointOutput:
    # A load taking a power setpoint in a Modbus holding register (e.g. a
    # my-PV AC ELWA-style watts register). register value = watts // scale
    # (scale = W per count). set(on) maps to nominal_w / 0. Raises ModbusError
    # from the master; the state changes only after the write succeeded.
    def __init__(self, master, unit, register, scale=1, nominal_w=0, refresh_s=0):
        self._m = master
        self.unit = unit
        self.register = register
        self.scale = scale if scale > 0 else 1
        self.nominal_w = int(nominal_w)
        self.refresh_ms = int(refresh_s) * 1000  # re-send period for loads with a watchdog
        self.power_w = 0

    async def set_power(self, w):
        w = max(0, int(w))
        v = min(0xFFFF, w // self.scale)
        await self._m.write_register(self.unit, self.register, v)
        self.power_w = v * self.scale

    def set(self, on):
        return self.set_power(self.nominal_w if on else 0)

    @property
    def on(self):
        return self.power_w > 0

    def feedback(self):
        return None


class StagedOutput:
    # A load on 2 or 3 relays (a three-phase heating element, one relay per
    # phase): stage k has relays 1..k on and draws stages_w[k-1]. Relays switch
    # off from the top and on from the bottom. history holds (time_ms, stage)
    # where the first relay keeps a clock (FileRelay).
    def __init__(self, relays, stages_w):
        self.relays = relays
        self.stages_w = [int(w) for w in stages_w]
        k = 0
        while k < len(relays) and relays[k].on:
            k += 1
        self.stage = k
        self._now = getattr(relays[0], "_now", None)
        self.history = []

    def set_stage(self, k):
        k = max(0, min(int(k), len(self.relays)))
        for i in range(len(self.relays) - 1, k - 1, -1):
            self.relays[i].set(False)
        for i in range(k):
            self.relays[i].set(True)
        if k != self.stage:
            self.history.append((self._now() if self._now else None, k))
            if len(self.history) > _HISTORY:
                self.history.pop(0)
        self.stage = k

    def set(self, on):
        self.set_stage(len(self.relays) if on else 0)

    @property
    def on(self):
        return self.stage > 0

    def feedback(self):
        # the first relay's contact: closed from stage 1 up
        return self.relays[0].feedback()
