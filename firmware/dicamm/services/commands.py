# The one door for changes from the console and the MQTT link: relay,
# setpoint, schedule, dso (§14a limit), event (TAF16) and config. execute()
# first runs the one check (proto/cmdcheck.py: the fields and limits declared
# in proto/cmdspec.py, the same that mqtt_cmd.parse runs), so both channels refuse the same
# things with the same words, and nothing changes on a refusal; do_<name> then
# acts on already checked values.
from dicamm.errors import CommandError, ConfigError


class Commands:
    def __init__(self, app):
        self.app = app

    def _controller(self):
        c = self.app.controller
        if c is None:
            raise CommandError("no relay/load output on this device")
        return c

    def execute(self, name, args):
        from dicamm.proto.cmdcheck import checked
        args, err = checked(name, args) if isinstance(name, str) else (None, None)
        if args is None:
            raise CommandError(err or "unknown command '%s'" % str(name)[:32])
        return getattr(self, "do_" + name)(args)

    def do_relay(self, args):
        self._controller().manual(args["mode"], args.get("minutes"))
        return self._controller().status()

    def do_setpoint(self, args):
        c = self._controller()
        if "on" in args:
            c.backend(on=args["on"], ttl_s=args.get("ttl_s"))
        else:
            c.backend(power_w=args["power_w"], ttl_s=args.get("ttl_s"))
        return c.status()

    def do_dso(self, args):
        limit, ttl = args["limit_w"], args.get("ttl_s")
        c = self._controller()
        c.dso(limit, ttl)
        if ttl is None:
            ttl = c.settings["dso_ttl_s"]
        if limit is not None:
            self.app.raise_event("grid operator limit %d W for %d s (14a EnWG)" % (limit, ttl), "dso")
        else:
            self.app.raise_event("grid operator limit lifted (14a EnWG)", "dso")
        return c.status()

    def do_schedule(self, args):
        self._controller().load_schedule(args["windows"])
        return {"windows": len(args["windows"])}

    def do_event(self, args):
        if self.app.outbox is None:
            raise CommandError("TAF16 is not configured (cls_id and han.url)")
        ev = self.app.raise_event(args["text"], "manual")
        return {"uuid": ev["uuid"]}

    def do_config(self, args):
        key = args["key"]
        cfg = self.app.config
        try:
            cfg.set(key, args["value"])
        except ConfigError as e:
            raise CommandError(str(e))
        cfg.save()
        return {"key": key, "value": cfg.get(key)}
