# The one door for changes from the console and the MQTT link: relay,
# setpoint, schedule, dso (the bench's §14a limit: console only), event
# (TAF16) and config. execute() first runs the one check (proto/cmdcheck.py:
# the fields and limits declared in proto/cmdspec.py, the same that
# mqtt_cmd.parse runs, and which channel may issue what), so both channels
# refuse the same things with the same words, and nothing changes on a
# refusal; do_<name> then acts on already checked values. via: "c" console,
# "m" MQTT; a relay request ranks by its channel (cmdspec.PRIORITY).
from dicamm.errors import CommandError, ConfigError


class Commands:
    def __init__(self, app):
        self.app = app

    def _controller(self):
        c = self.app.controller
        if c is None:
            raise CommandError("no relay/load output on this device")
        return c

    def execute(self, name, args, via="c"):
        from dicamm.proto.cmdcheck import checked
        args, err = checked(name, args, via) if isinstance(name, str) else (None, None)
        if args is None:
            raise CommandError(err or "unknown command '%s'" % str(name)[:32])
        return getattr(self, "do_" + name)(args, via)

    def do_relay(self, args, via):
        from dicamm.proto import cmdspec
        source = cmdspec.PRIORITY[via]
        cmdspec.drop()
        c = self._controller()
        mode, minutes = args["mode"], args.get("minutes")
        if source == "installer":
            c.manual(mode, minutes)
        elif mode == "auto":
            c.backend()
        else:
            c.backend(on=mode == "on", ttl_s=None if minutes is None else minutes * 60)
        return c.status()

    def do_setpoint(self, args, via):
        c = self._controller()
        if "on" in args:
            c.backend(on=args["on"], ttl_s=args.get("ttl_s"))
        else:
            c.backend(power_w=args["power_w"], ttl_s=args.get("ttl_s"))
        return c.status()

    def do_dso(self, args, via):
        # The bench console's limit; its edges (set, raised to the legal
        # minimum, lifted, lapsed) become TAF16 events in the controller.
        c = self._controller()
        c.dso(args["limit_w"], args.get("ttl_s"))
        return c.status()

    def do_schedule(self, args, via):
        self._controller().load_schedule(args["windows"])
        return {"windows": len(args["windows"])}

    def do_event(self, args, via):
        if self.app.outbox is None:
            raise CommandError("TAF16 is not configured (cls_id and han.url)")
        ev = self.app.raise_event(args["text"], "manual")
        return {"uuid": ev["uuid"]}

    def do_update(self, args, via):
        # A signed release installed in the background (services/update.py).
        from dicamm.services.update import updater
        u = updater(self.app)
        u.start(args["url"], allow_downgrade=bool(args.get("downgrade")))
        return dict(u.state)

    def do_config(self, args, via):
        key = args["key"]
        cfg = self.app.config
        try:
            cfg.set(key, args["value"])
        except ConfigError as e:
            raise CommandError(str(e))
        cfg.save()
        c = self.app.controller
        if c is not None and key.startswith("relay."):
            c.reconfigure()   # the relay protection keys take effect at once
        return {"key": key, "value": cfg.get(key)}
