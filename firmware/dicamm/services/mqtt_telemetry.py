# What the MQTT link publishes of its own accord (docs/MQTT.md): `state`
# (retained, on change), `meter` (every mqtt.meter_period_s), `identity`
# (retained, on connect and on change), `health` (retained, every
# mqtt.health_period_s) and Home Assistant discovery. The link (mqtt_link.py)
# owns the connection and calls connected() once per connect and turn() on
# every turn; this module only decides what is due and hands it to send().
import time

from micropython import const

from dicamm.services.mqtt_streams import field_parts

_STATE_CHECK_MS = const(1000)      # real ms between two looks at state
_IDENTITY_CHECK_MS = const(10000)  # ... and at identity (changes with a meter exchange only)
_MIN_PERIOD_MS = const(500)    # real-time floor of the meter and health periods (fast bench clock)

TOPICS = ("status", "state", "meter", "identity", "health", "ack", "update")


class Telemetry:
    # send(name, payload bytes, retain, qos); get(key, default); sources as for
    # MqttLink ("state", "reading", "stamp", "identity", "health"); clock: device clock.
    def __init__(self, send, get, sources, clock):
        self.send = send
        self.get = get
        self.src = sources
        self.clock = clock
        self._last = {}     # name -> last payload sent (state, identity)
        self._check_ms = self._ident_ms = time.ticks_ms()
        self._due = {}      # name -> (device ticks, real ticks) of the last periodic message

    def connected(self, discovery=None):
        # Right after a connect: everything retained afresh, health now.
        if discovery is not None:
            discovery()
        self._last = {}
        self._due.pop("health", None)
        self._changed("identity", True)
        self._changed("state", True)
        self._changed("update", True)

    def turn(self, now):
        if time.ticks_diff(now, self._check_ms) >= _STATE_CHECK_MS:
            self._check_ms = now
            self._changed("state", False)
            self._changed("update", False)
        if time.ticks_diff(now, self._ident_ms) >= _IDENTITY_CHECK_MS:
            self._ident_ms = now
            self._changed("identity", False)
        self._periodic("meter", "mqtt.meter_period_s", 10, self._reading, now, False, 0)
        self._periodic("health", "mqtt.health_period_s", 300, self.src.get("health"), now, True, 0)

    def _changed(self, name, force):
        # A retained message, sent when its content differs from the last one.
        # The dicts are compared, not their JSON: identity (~1 KB as text, the
        # OCMF key in it) is looked at every 10 s, and neither the look nor the
        # message may need a block of that size in a fragmented heap.
        fn = self.src.get(name)
        if fn is None:
            return
        d = fn()
        if d is None:
            return
        if force or d != self._last.get(name):
            self.send(name, field_parts(d), True, 1)
            self._last[name] = d

    def _periodic(self, name, key, default_s, fn, now, retain, qos):
        if fn is None:
            return
        period = int(self.get(key, default_s)) * 1000
        dev = self.clock.ticks_ms()
        last = self._due.get(name)
        if last is not None and (time.ticks_diff(dev, last[0]) < period or
                                 time.ticks_diff(now, last[1]) < _MIN_PERIOD_MS):
            return
        r = fn()
        if not r:
            return
        self._due[name] = (dev, now)
        self.send(name, field_parts(r), retain, qos)

    def _reading(self):
        fn = self.src.get("reading")
        r = fn() if fn is not None else None
        if r and "time_ms" not in r and self.src.get("stamp") is not None:
            r = dict(r)
            r["time_ms"], r["time_status"] = self.src["stamp"]()
        return r
