# The control box's contact (FNN Steuerbox behind the smart meter gateway, §14a
# EnWG) on a digital input, debounced here: a new state counts once the input
# has held it for debounce_ms of real time (contact bounce is physical, not
# device time). Polarity, from the config: "no" (normally open: a closed
# contact signals the limit) or "nc" (normally closed: an open contact signals
# it, so a broken wire limits the load where a normally open one would hide it).
#   read(real_ms) -> True (the limit is signalled), False (not), None (the input
#                    reports a fault, e.g. a supervised input's broken wire)
# The raw input: PinContact (a machine.Pin-like object with value(), passed in)
# or FileContact (the unix port: a file holding 1 closed / 0 open, anything else
# or no file is an input fault), or MissingInput (configured, but not on the board).
import time


class PinContact:
    def __init__(self, pin, active_low=False):
        self._pin = pin
        self._low = bool(active_low)

    def closed(self):
        return bool(self._pin.value()) != self._low


class FileContact:
    def __init__(self, path):
        self.path = path

    def closed(self):
        try:
            with open(self.path) as f:
                v = f.read(8).strip()
        except OSError:
            return None
        return True if v == "1" else (False if v == "0" else None)


class MissingInput:
    # A contact the config asks for that the board cannot give: always an
    # input fault, so the failsafe applies and status says why.
    def __init__(self, why):
        self.why = why

    def closed(self):
        return None


class Contact:
    def __init__(self, raw, polarity="no", debounce_ms=200):
        if polarity not in ("no", "nc"):
            raise ValueError("polarity")
        self.raw = raw
        self.nc = polarity == "nc"
        self.debounce_ms = int(debounce_ms)
        self.state = None        # the settled reading
        self._cand = None        # a reading waiting to settle
        self._since = None
        self.bounces = 0         # readings that changed back before they settled

    def read(self, real_ms):
        c = self.raw.closed()
        r = None if c is None else (c != self.nc)
        if self._since is None:          # the first reading counts at once (start-up)
            self.state = self._cand = r
            self._since = real_ms
        elif r != self._cand:
            if self._cand != self.state:
                self.bounces += 1
            self._cand = r
            self._since = real_ms
        elif r != self.state and time.ticks_diff(real_ms, self._since) >= self.debounce_ms:
            self.state = r
        return self.state
