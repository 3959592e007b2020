# The console's rarely used commands (help, time, config, unlock, lock, meter
# list and set): loaded for the command and dropped again afterwards
# (console/table.py DROP), so it is not kept in RAM.
import json

from dicamm.errors import UsageError


def cmd_help(con, args):
    if args.pos:
        name, cmd = con.lookup(args.pos[0])
        if cmd is None:
            raise UsageError("no command '%s'" % args.pos[0][:32])
        e = cmd[1]
        al = e[1].split()
        if args.json:
            con.write(json.dumps({"command": name, "help": e[7], "aliases": al,
                                  "needs_pin": e[3] is not None, "mqtt": "m" in e[4]}))
            return
        for i, line in enumerate(e[7].split("\n")):
            con.write(("%s: %s" % (name, line)) if i == 0 else "    " + line)
        if al:
            con.write("    aliases: " + " ".join(al))
        if e[3] is not None:
            con.write("    changes need the service PIN when one is set (--pin PIN or 'unlock PIN')")
        if "m" in e[4]:
            con.write("    also over MQTT: cmd/%s {%s}" % (name, ", ".join(f[0] for f in e[6])))
        if name == "config":
            from dicamm.proto import schema
            for k in schema.keys():
                con.write("    " + schema.describe(k) + (" (remote)" if k in schema.REMOTE else ""))
        return
    names = con.commands()
    if args.json:
        from dicamm.proto import cmdspec
        al = cmdspec.aliases()
        cmdspec.drop()
        con.write(json.dumps({"commands": [n for n, _ in names], "aliases": al}))
        return
    for name, text in names:
        con.write("  %-14s %s" % (name, text))
    con.write("Add --json to read-only commands for one JSON line. 'help COMMAND' for details.")


def _time_json(d):
    # "unix" as seconds with exactly three decimals, printed from the integer
    # ms (a board's single-precision float cannot hold it).
    ms = d["unix_ms"]
    d["unix"] = "@unix@"
    return json.dumps(d).replace('"@unix@"', "%d.%03d" % (ms // 1000, ms % 1000))


_STATUS_WORDS = {"S": "synchronised", "I": "informative (set by hand)", "U": "unknown"}


def _time_human(con, d):
    con.write("%s  status %s %s  source %s  offset %s ms  delay %s ms  sync age %s s" % (
        d.get("iso") or d.get("unix"), d["status"], _STATUS_WORDS.get(d["status"], ""), d.get("source"),
        d.get("offset_ms"), d.get("delay_ms"), d.get("age_s")))
    for label, r in sorted(d.get("servers", {}).items()):
        con.write("  %-22s %-8s %s" % (label, r.get("status"), r.get("reason") or "offset %s ms delay %s ms" % (
            r.get("offset_ms"), r.get("delay_ms"))))
    if d.get("suspect_step"):
        sp = d["suspect_step"]
        con.write("  WARNING: clock stepped by %d ms while synchronised (drift budget %d ms): all sources moved together"
                  " or the clock failed; check the time sources" % (sp["by_ms"], sp["budget_ms"]))
    if d.get("last_error"):
        con.write("  last error: %s" % d["last_error"])


def cmd_time(con, args):
    tk = con.app.timekeeper
    sub = args.pos[0] if args.pos else None
    if sub is None:
        d = tk.info()
        if args.json:
            con.write(_time_json(d))
        else:
            _time_human(con, d)
    elif sub == "set":
        if len(args.pos) < 2:
            raise UsageError("usage: time set UNIX_SECONDS|YYYY-MM-DDTHH:MM:SSZ")
        tk.set_manual(_parse_time(args.pos[1]))
        con.write("time set by hand: status I (informative) until the next good sync")
    elif sub == "sync":
        return _time_sync(con, args)
    else:
        raise UsageError("usage: time [set T|sync] [--json]")


async def _time_sync(con, args):
    ok = await con.app.timekeeper.sync_once()
    d = con.app.timekeeper.info()
    d["synced"] = bool(ok)
    if args.json:
        con.write(_time_json(d))
        return
    con.emit(args, d, "time sync: %s, status %s, offset %s ms" % ("ok" if ok else "FAILED (%s)" % d.get("last_error"),
                                                                   d["status"], d.get("offset_ms")))


def _parse_time(text):
    if text.isdigit():
        return int(text) * 1000
    # YYYY-MM-DDTHH:MM:SSZ in UTC
    try:
        from dicamm.proto.localtime import unix_from_civil, parse_date
        y, mo, d = parse_date(text[0:10])
        if len(text) != 20 or text[10] != "T" or text[19] != "Z":
            raise ValueError(text)
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if h > 23 or mi > 59 or s > 59:
            raise ValueError(text)
    except (ValueError, IndexError):
        raise UsageError("time must be Unix seconds or YYYY-MM-DDTHH:MM:SSZ (UTC)")
    return unix_from_civil(y, mo, d, h, mi, s) * 1000


def cmd_config(con, args):
    cfg = con.app.config
    sub = args.pos[0] if args.pos else "show"
    if sub == "show":
        d = cfg.as_dict(True)
        if len(args.pos) > 1:   # config show PREFIX
            d = {k: v for k, v in d.items() if k.startswith(args.pos[1])}
            if not d:
                raise UsageError("no key starts with '%s' ('help config' lists them)" % args.pos[1][:32])
        if args.json:
            con.write_json(d)
            return
        for k in sorted(d):
            con.write("  %s = %s%s" % (k, json.dumps(d[k]), "" if cfg.is_default(k) else "  (set)"))
        for p in cfg.problems:
            con.write("  note: " + p)
    elif sub == "set":
        if len(args.pos) < 3:
            raise UsageError("usage: config set KEY VALUE ('help config' lists the keys)")
        cfg.set(args.pos[1], " ".join(args.pos[2:]))
        cfg.save()
        c = getattr(con.app, "controller", None)
        if c is not None and args.pos[1].startswith("relay."):
            c.reconfigure()   # relay protection at once
        con.write("%s = %s (saved; some keys take effect after 'reboot')" % (args.pos[1], json.dumps(cfg.as_dict(True).get(args.pos[1]))))
    elif sub == "unset":
        if len(args.pos) < 2:
            raise UsageError("usage: config unset KEY")
        cfg.unset(args.pos[1])
        cfg.save()
        con.write("%s reset to its default" % args.pos[1])
    elif sub == "export":
        con.write(cfg.export_json())
    elif sub == "import":
        if len(args.pos) < 2:
            raise UsageError("usage: config import '{...json...}'")
        changed = cfg.import_json(" ".join(args.pos[1:]))
        cfg.save()
        con.write("config imported and saved: %s" % (", ".join(changed) or "nothing changed"))
    else:
        raise UsageError("usage: config show [PREFIX]|set|unset|export|import")


def cmd_unlock(con, args):
    if not args.pos:
        raise UsageError("usage: unlock PIN | unlock --lock")
    con.unlock(args.pos[0])
    con.write("unlocked for 10 minutes ('unlock --lock' locks again)")


def cmd_lock(con, args):
    con.lock()
    con.write("locked: changes need the service PIN again")


def meter_admin(con, args, sub):
    # meter list | meter set MODEL ADDRESS [BAUD [PARITY]]
    app = con.app
    if sub == "list":
        from dicamm.proto import profiles
        rows = []
        for n in profiles.names():
            p = profiles.get(n)
            rows.append({"name": n, "model": p.get("model", n), "baud": p.get("baud"), "fields": sorted(p["fields"])})
        con.emit(args, {"profiles": rows}, lambda d: [con.write("  %-10s %-28s %s baud  %s" % (
            r["name"], r["model"], r["baud"], " ".join(r["fields"]))) for r in d["profiles"]])
    else:
        if len(args.pos) < 3:
            raise UsageError("usage: meter set MODEL ADDRESS [BAUD [PARITY]]")
        from dicamm.proto import profiles
        model = args.pos[1]
        if model != "custom" and model not in profiles.names():
            raise UsageError("unknown model '%s' (see 'meter list')" % model[:32])
        cfg = app.config
        old = cfg.export_json(False)
        try:
            cfg.set("meter.model", model)
            cfg.set("meter.address", args.pos[2])
            if len(args.pos) > 3:
                cfg.set("meter.baud", args.pos[3])
            elif model != "custom":
                cfg.set("meter.baud", profiles.get(model).get("baud", 9600))
            if len(args.pos) > 4:
                cfg.set("meter.parity", args.pos[4].upper())
        except Exception:
            cfg.import_json(old, True)   # all or nothing
            raise
        cfg.save()
        con.write("meter set: %s address %s, %s baud %s; takes effect after 'reboot'" % (
            model, cfg.get("meter.address"), cfg.get("meter.baud"), cfg.get("meter.parity")))
