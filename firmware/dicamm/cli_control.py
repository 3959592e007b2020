# Console commands for switching: relay, schedule, setpoint, dso. Changes go
# through commands.Commands, the same door the MQTT link uses.
import json

from dicamm.cli import UsageError


def _changes_relay(args):
    return bool(args.pos) and args.pos[0] in ("on", "off", "auto", "test")


def _ctl(con):
    c = con.app.controller
    if c is None:
        raise UsageError("no relay on this device")
    return c


def _show_relay(con, args, st):
    def human(st):
        con.write("relay %s, ruled by %s%s" % (st.get("state"), st.get("source"),
                                                "  (deferred: %s)" % st["deferred"] if st.get("deferred") else ""))
        for name, s in (st.get("sources") or {}).items():
            con.write("  %-9s %s%s" % (name, json.dumps(s.get("request")),
                                       "  - " + s["why_not"] if s.get("why_not") else ""))
        if st.get("faults"):
            con.write("  faults: %s" % json.dumps(st["faults"]))
    con.emit(args, st, human)


async def cmd_relay(con, args):
    c = _ctl(con)
    sub = args.pos[0] if args.pos else None
    if sub is None:
        _show_relay(con, args, c.status())
    elif sub in ("on", "off", "auto"):
        minutes = None
        if len(args.pos) > 1:
            try:
                minutes = int(args.pos[1])
            except ValueError:
                raise UsageError("minutes must be a number")
        st = con.app.commands.execute("relay", {"mode": sub, "minutes": minutes} if minutes else {"mode": sub})
        con.write("relay %s requested by the installer%s; now %s (%s)" % (
            sub, " for %d min" % minutes if minutes else "", st.get("state"), st.get("deferred") or "applied"))
    elif sub == "test":
        from dicamm import relaytest
        await relaytest.run(con, args)
    else:
        raise UsageError("usage: relay [on|off|auto [MINUTES]] | relay test | relay --json")


def cmd_schedule(con, args):
    c = _ctl(con)
    sub = args.pos[0] if args.pos else None
    if sub is None:
        info = c.schedule_status()
        con.emit(args, info, lambda d: con.write(json.dumps(d)))
    elif sub == "set":
        if len(args.pos) < 2:
            raise UsageError("usage: schedule set '[{\"id\":..,\"start\":..,\"end\":..,\"on\":true}]'")
        try:
            windows = json.loads(" ".join(args.pos[1:]))
        except ValueError:
            raise UsageError("schedule must be a JSON list of windows")
        r = con.app.commands.execute("schedule", {"windows": windows})
        con.write("schedule replaced: %d window(s)" % r["windows"])
    elif sub == "clear":
        con.app.commands.execute("schedule", {"windows": []})
        con.write("schedule cleared")
    else:
        raise UsageError("usage: schedule [--json] | schedule set JSON | schedule clear")


def cmd_dso(con, args):
    if not args.pos:
        raise UsageError("usage: dso LIMIT_W [TTL_S] | dso off")
    if args.pos[0] == "off":
        con.app.commands.execute("dso", {"limit_w": None})
        con.write("grid operator limit lifted")
        return
    try:
        a = {"limit_w": int(args.pos[0])}
        if len(args.pos) > 1:
            a["ttl_s"] = int(args.pos[1])
    except ValueError:
        raise UsageError("limit and ttl must be numbers")
    st = con.app.commands.execute("dso", a)
    con.write("grid operator limit %d W set; relay %s" % (a["limit_w"], st.get("state")))


def cmd_setpoint(con, args):
    if not args.pos:
        raise UsageError("usage: setpoint POWER_W|on|off [TTL_S]")
    a = {}
    v = args.pos[0]
    if v in ("on", "off"):
        a["on"] = v == "on"
    else:
        try:
            a["power_w"] = int(v)
        except ValueError:
            raise UsageError("setpoint must be watts, on or off")
    if len(args.pos) > 1:
        try:
            a["ttl_s"] = int(args.pos[1])
        except ValueError:
            raise UsageError("ttl must be a number")
    st = con.app.commands.execute("setpoint", a)
    con.write("backend setpoint %s; relay %s, ruled by %s" % (v, st.get("state"), st.get("source")))


COMMANDS = {
    "relay": (cmd_relay, "relay [--json] | relay on|off|auto [MINUTES] (installer) | relay test", _changes_relay),
    "schedule": (cmd_schedule, "schedule [--json] | schedule set JSON | schedule clear", lambda a: bool(a.pos)),
    "dso": (cmd_dso, "dso LIMIT_W [TTL_S] | dso off: the grid operator's §14a limit (bench)", lambda a: True),
    "setpoint": (cmd_setpoint, "setpoint POWER_W|on|off [TTL_S]: a backend request (bench)", lambda a: True),
}
