# The small command interface that the console and the MQTT link both call:
# relay, setpoint, schedule, dso (§14a limit), event (TAF16) and config. Input
# is a dict of already-parsed values; every check happens here, so both doors
# refuse the same things with the same words, and nothing changes on a refusal.
from dicamm.errors import CommandError, ConfigError

# Keys the backend may change over MQTT. Network, certificates, the meter
# wiring and the service PIN stay with the installer.
CONFIG_WHITELIST = ("mqtt.meter_period_s", "relay.min_on_s", "relay.min_off_s",
                    "relay.max_cycles_per_h", "relay.nominal_w", "time.resync_s",
                    "mqtt.discovery")

_MAX_TTL_S = 7 * 86400


def _int(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if v is None:
        raise CommandError("'%s' is missing" % key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise CommandError("'%s' must be an integer" % key)
    if not lo <= v <= hi:
        raise CommandError("'%s' must be %d..%d" % (key, lo, hi))
    return v


class Commands:
    def __init__(self, app):
        self.app = app

    def _controller(self):
        c = self.app.controller
        if c is None:
            raise CommandError("no relay/load output on this device")
        return c

    def execute(self, name, args):
        if not isinstance(args, dict):
            raise CommandError("arguments must be a JSON object")
        fn = getattr(self, "do_" + name, None) if name.isalpha() else None
        if fn is None:
            raise CommandError("unknown command '%s'" % name[:32])
        return fn(args)

    def do_relay(self, args):
        mode = args.get("mode")
        if mode not in ("on", "off", "auto"):
            raise CommandError("'mode' must be on, off or auto")
        minutes = args.get("minutes")
        if minutes is not None:
            minutes = _int(args, "minutes", 1, 7 * 1440)
        self._controller().manual(mode, minutes)
        return self._controller().status()

    def do_setpoint(self, args):
        ttl = _int(args, "ttl_s", 10, _MAX_TTL_S, 900)
        if "on" in args:
            if not isinstance(args["on"], bool):
                raise CommandError("'on' must be true or false")
            self._controller().backend(on=args["on"], ttl_s=ttl)
        else:
            w = _int(args, "power_w", 0, 100000)
            self._controller().backend(power_w=w, ttl_s=ttl)
        return self._controller().status()

    def do_dso(self, args):
        ttl = _int(args, "ttl_s", 10, _MAX_TTL_S, 3600)
        limit = args.get("limit_w")
        if limit is not None:
            limit = _int(args, "limit_w", 0, 100000)
        self._controller().dso(limit, ttl)
        if limit is not None:
            self.app.raise_event("grid operator limit %d W for %d s (14a EnWG)" % (limit, ttl), "dso")
        else:
            self.app.raise_event("grid operator limit lifted (14a EnWG)", "dso")
        return self._controller().status()

    def do_schedule(self, args):
        windows = args.get("windows")
        if not isinstance(windows, list):
            raise CommandError("'windows' must be a list")
        self._controller().load_schedule(windows)
        return {"windows": len(windows)}

    def do_event(self, args):
        text = args.get("text")
        if not isinstance(text, str) or not text or len(text) > 64:
            raise CommandError("'text' must be 1..64 characters")
        if self.app.outbox is None:
            raise CommandError("TAF16 is not configured (cls_id and han.url)")
        ev = self.app.raise_event(text, "manual")
        return {"uuid": ev["uuid"]}

    def do_config(self, args):
        key = args.get("key")
        if key not in CONFIG_WHITELIST:
            raise CommandError("config key '%s' may not be set remotely" % str(key)[:40])
        if "value" not in args:
            raise CommandError("'value' is missing")
        cfg = self.app.config
        try:
            cfg.set(key, args["value"])
        except ConfigError as e:
            raise CommandError(str(e))
        cfg.save()
        return {"key": key, "value": cfg.get(key)}
