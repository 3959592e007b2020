# Console commands for switching: relay, schedule, setpoint, dso. Changes go
# through commands.Commands, the same door the MQTT link uses.
import json

from dicamm.errors import UsageError


def _ctl(con):
    c = con.app.controller
    if c is None:
        raise UsageError("no relay on this device")
    return c


def _relay_status(c):
    # The controller's view plus what the output itself did: its switching
    # history (device wall ms, on) where the output keeps one (FileRelay).
    st = c.status()
    out = c.output
    h = getattr(out, "history", None)
    if h is not None:
        st["history"] = [[t, int(on)] for t, on in h]   # on: bool, or a staged output's stage
    st["output_on"] = bool(out.on)
    st["min_on_s"] = c.settings["min_on_s"]
    st["min_off_s"] = c.settings["min_off_s"]
    st["max_cycles_per_h"] = c.settings["max_cycles_per_h"]
    return st


def _show_relay(con, args, st):
    from dicamm.proto.arbiter import SOURCES

    def human(st):
        con.write("relay %s, ruled by %s%s" % (st.get("state"), st.get("source"),
                                                "  (deferred: %s)" % st["deferred"] if st.get("deferred") else ""))
        srcs = st.get("sources") or {}
        for name in SOURCES:
            s = srcs.get(name)
            if s is None:
                continue
            exp = s.get("expires_in_s")
            con.write("  %-9s %-12s%s%s" % (name, s.get("request") or "-",
                                           " (%d s left)" % exp if exp is not None else "",
                                           "  - " + s["why_not"] if s.get("why_not") else "  <- rules"))
        lim = st.get("limit")
        if lim:
            exp = lim.get("expires_in_s")
            con.write("  14a limit %s W (asked %s W, from %s%s): %s; the load may draw %s W" % (
                lim.get("limit_w"), lim.get("asked_w"), lim.get("source"),
                ", %d s left" % exp if exp is not None else "", "binds" if lim.get("binds") else "does not bind",
                st.get("allowed_w")))
        if "stage" in st:
            con.write("  stage %d of %d (%s W), %s W now" % (st["stage"], len(st["stages_w"]),
                                                          "/".join(str(w) for w in st["stages_w"]), st["power_w"]))
        con.write("  cycles in the last hour: %s of %s; min on %s s, min off %s s" % (
            st.get("cycles_last_h"), st.get("max_cycles_per_h"), st.get("min_on_s"), st.get("min_off_s")))
        if st.get("faults"):
            con.write("  FAULTS: %s" % json.dumps(st["faults"]))
        if st.get("last_error"):
            con.write("  last error: %s" % st["last_error"])
    con.emit(args, st, human)


async def cmd_relay(con, args):
    c = _ctl(con)
    sub = args.pos[0] if args.pos else None
    if sub is None:
        _show_relay(con, args, _relay_status(c))
    elif sub in ("on", "off", "auto"):
        minutes = None
        if len(args.pos) > 1:
            try:
                minutes = int(args.pos[1])
            except ValueError:
                raise UsageError("minutes must be a number")
        st = con.app.commands.execute("relay", {"mode": sub} if minutes is None else {"mode": sub, "minutes": minutes})
        if st.get("deferred"):
            how = "deferred: %s" % st["deferred"]
        elif sub == "auto":
            how = "ruled by %s" % st.get("source")
        elif st.get("source") not in ("installer", "default"):
            how = "outranked by %s" % st.get("source")
        elif st.get("wanted") != st.get("state"):
            how = "switching %s" % st.get("wanted")
        else:
            how = "no change needed"
        con.write("relay %s requested by the installer%s; relay %s now (%s)" % (
            sub, " for %d min" % minutes if minutes is not None else "", st.get("state"), how))
    elif sub == "test":
        from dicamm.console import relaytest
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
    lim = st.get("limit") or {}
    words = ["grid operator limit %d W set" % a["limit_w"]]
    if lim.get("limit_w") is None:
        words.append("ignored: no controllable consumer under 14a EnWG (dso.controllable)")
    else:
        if lim["limit_w"] > a["limit_w"]:
            words.append("raised to the legal minimum %d W" % lim["limit_w"])
        if st.get("source") == "dso":
            words.append("binds: the load may draw %d W, relay %s" % (st["allowed_w"], st.get("state")))
        else:
            words.append((st["sources"]["dso"].get("why_not") or "").split("; ")[-1])
            if "at most" not in words[-1]:
                words[-1] += ": the load may draw %d W" % st["allowed_w"]
    con.write("; ".join(words))


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
