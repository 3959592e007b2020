# Console commands: help, status, meter, time, qh, config, log, unlock.
import json

from dicamm import VERSION
from dicamm.cli import UsageError


def _changes_always(args):
    return True


def _changes_if(*subs):
    def f(args):
        return bool(args.pos) and args.pos[0] in subs
    return f


def cmd_help(con, args):
    if args.pos:
        name, cmd = con.lookup(args.pos[0])
        if cmd is None:
            raise UsageError("no command '%s'" % args.pos[0][:32])
        con.write("%s: %s" % (name, cmd[1]))
        return
    names = []
    for g in con.groups:
        for name in sorted(g.COMMANDS):
            names.append((name, g.COMMANDS[name][1].split("\n")[0]))
    if args.json:
        con.write(json.dumps({"commands": [n for n, _ in names]}))
        return
    for name, text in names:
        con.write("  %-14s %s" % (name, text))
    con.write("Add --json to read-only commands for one JSON line. 'help COMMAND' for details.")


def status_dict(app):
    d = {"firmware": VERSION, "uptime_s": app.uptime_s(), "board": app.board.get("name"),
         "faults": dict(app.faults)}
    m = app.metering
    if m is not None:
        d["meter"] = m.as_dict()
        d["bus"] = m.bus_dict()
    else:
        d["meter"] = {"ok": False, "error": app.faults.get("meter")}
    d["time"] = app.timekeeper.info()
    if app.loadprofile is not None:
        d["qh"] = app.loadprofile.as_dict()
    s = app.storage
    d["storage"] = {"bytes_written": s.bytes_written, "write_ops": s.write_ops,
                    "journals": {k: {"next_seq": j.next_seq, "first_seq": j.first_seq, "evicted": j.evicted}
                                 for k, j in app.journals.items()}}
    for part in ("controller", "outbox", "mqtt"):
        obj = getattr(app, part)
        if obj is not None:
            d[part] = obj.status()
    tx = app.transactions
    if tx is not None:
        d["transactions"] = {"records": tx.journal.next_seq - tx.journal.first_seq, "next_pg": tx.next_pg(),
                             "open": tx.open is not None}
    try:
        import gc
        d["heap_free"] = gc.mem_free()
    except (ImportError, AttributeError):
        pass
    return d


def cmd_status(con, args):
    d = status_dict(con.app)

    def human(d):
        m = d["meter"]
        t = d["time"]
        con.write("DICAMM %s on %s, up %d s" % (d["firmware"], d["board"], d["uptime_s"]))
        if m.get("ok"):
            con.write("meter   %s @%s: %s W, import %s Wh, export %s Wh (age %.1f s)" % (
                m["model"], m["address"], m["power_w"], m["import_wh"], m["export_wh"], m["age_s"] or 0))
        else:
            con.write("meter   FAULT: %s" % m.get("error"))
        if "bus" in d:
            b = d["bus"]
            con.write("bus     %d transactions, errors %s" % (b["transactions"], b["errors"]))
        con.write("time    %s status %s (source %s)" % (t.get("iso") or t.get("unix"), t.get("status"), t.get("source")))
        for part in ("controller", "outbox", "mqtt", "transactions"):
            if part in d:
                con.write("%-7s %s" % (part[:7], json.dumps(d[part])))
        con.write("storage %d bytes in %d writes" % (d["storage"]["bytes_written"], d["storage"]["write_ops"]))
        if d["faults"]:
            for k, v in d["faults"].items():
                con.write("FAULT   %s: %s" % (k, v))
        else:
            con.write("faults  none")
    con.emit(args, d, human)


async def cmd_meter(con, args):
    app = con.app
    sub = args.pos[0] if args.pos else "read"
    if sub == "read":
        m = app.metering
        if m is None:
            raise UsageError("meter not configured: 'meter set MODEL ADDRESS [BAUD [PARITY]]'")
        if "now" in args.pos:
            try:
                await m.read_now()
            except Exception:
                pass
        d = m.as_dict()
        if "bus" in args.flags:
            d["bus"] = m.bus_dict()

        def human(d):
            if d.get("power_w") is None:
                con.write("meter %s @%s: no reading yet (%s)" % (d["model"], d["address"], d.get("error")))
                return
            con.write("%s @%s  %s W  import %s Wh  export %s Wh  age %.1f s  time %s%s" % (
                d["model"], d["address"], d["power_w"], d["import_wh"], d["export_wh"],
                d["age_s"] or 0, d["time_status"], "" if d["ok"] else "  LAST READ FAILED: %s" % d["error"]))
        con.emit(args, d, human)
    elif sub == "list":
        from dicamm import profiles
        rows = []
        for n in profiles.names():
            p = profiles.get(n)
            rows.append({"name": n, "model": p.get("model", n), "baud": p.get("baud"), "fields": sorted(p["fields"])})
        con.emit(args, {"profiles": rows}, lambda d: [con.write("  %-10s %-28s %s baud  %s" % (
            r["name"], r["model"], r["baud"], " ".join(r["fields"]))) for r in d["profiles"]])
    elif sub == "set":
        if len(args.pos) < 3:
            raise UsageError("usage: meter set MODEL ADDRESS [BAUD [PARITY]]")
        from dicamm import profiles
        model = args.pos[1]
        if model != "custom" and model not in profiles.names():
            raise UsageError("unknown model '%s' (see 'meter list')" % model[:32])
        cfg = app.config
        cfg.set("meter.model", model)
        cfg.set("meter.address", args.pos[2])
        if len(args.pos) > 3:
            cfg.set("meter.baud", args.pos[3])
        elif model != "custom":
            cfg.set("meter.baud", profiles.get(model).get("baud", 9600))
        if len(args.pos) > 4:
            cfg.set("meter.parity", args.pos[4].upper())
        cfg.save()
        con.write("meter set: %s address %s, %s baud %s; takes effect after 'reboot'" % (
            model, cfg.get("meter.address"), cfg.get("meter.baud"), cfg.get("meter.parity")))
    elif sub == "scan":
        from dicamm import scan
        await scan.run(con, args)
    else:
        raise UsageError("usage: meter read|list|set|scan")


def cmd_time(con, args):
    tk = con.app.timekeeper
    sub = args.pos[0] if args.pos else None
    if sub is None:
        d = tk.info()
        con.emit(args, d, lambda d: con.write("%s  status %s  source %s  offset %s ms  delay %s ms  sync age %s s" % (
            d.get("iso") or d.get("unix"), d["status"], d.get("source"), d.get("offset_ms"), d.get("delay_ms"), d.get("age_s"))))
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
    con.emit(args, d, "time sync: %s, status %s, offset %s ms" % ("ok" if ok else "FAILED (%s)" % d.get("last_error"),
                                                                   d["status"], d.get("offset_ms")))


def _parse_time(text):
    if text.isdigit():
        return int(text) * 1000
    # YYYY-MM-DDTHH:MM:SSZ in UTC
    try:
        from dicamm.localtime import unix_from_civil
        y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except (ValueError, IndexError):
        raise UsageError("time must be Unix seconds or YYYY-MM-DDTHH:MM:SSZ (UTC)")
    return unix_from_civil(y, mo, d, h, mi, s) * 1000


def _journal_rows(j, decode, last):
    rows = j.last(last)
    return [decode(seq, payload) for seq, payload in rows]


def cmd_qh(con, args):
    app = con.app
    if app.loadprofile is None:
        raise UsageError("no load profile: the meter is not configured")
    from dicamm.loadprofile import decode
    from dicamm import localtime
    j = app.loadprofile.journal
    last = args.int_flag("last", 8, 1, 10000)
    if args.pos and args.pos[0] == "export":
        con.write("seq,boundary_utc,boundary_local,import_wh,export_wh,time_status,delay_ms,gap")
        for seq, payload in j.records(j.first_seq if "all" in args.flags else max(j.first_seq, j.next_seq - last)):
            r = decode(seq, payload)
            con.write("%d,%s,%s,%s,%s,%s,%s,%s" % (
                seq, localtime.iso_utc(r["boundary"] * 1000), localtime.iso_local(r["boundary"] * 1000),
                r.get("import_wh", ""), r.get("export_wh", ""), r.get("time_status", ""), r.get("delay_ms", ""),
                r.get("gap", "")))
        return
    rows = _journal_rows(j, decode, last)
    if args.json:
        con.write(json.dumps({"qh": rows, "first_seq": j.first_seq, "next_seq": j.next_seq, "evicted": j.evicted}))
        return
    prev = None
    for r in rows:
        when = localtime.iso_local(r["boundary"] * 1000)
        if "gap" in r:
            con.write("#%d %s  GAP: %s" % (r["seq"], when, r["gap"]))
            prev = None
            continue
        delta = "" if prev is None else "  +%d Wh" % (r["import_wh"] - prev)
        legal = "" if r["time_status"] == "S" else "  (time %s: not legally timed)" % r["time_status"]
        con.write("#%d %s  import %d Wh  export %d Wh%s%s" % (r["seq"], when, r["import_wh"], r["export_wh"], delta, legal))
        prev = r["import_wh"]


def cmd_config(con, args):
    cfg = con.app.config
    sub = args.pos[0] if args.pos else "show"
    if sub == "show":
        d = cfg.as_dict(True)
        con.emit(args, d, lambda d: [con.write("  %s = %s" % (k, json.dumps(d[k]))) for k in sorted(d)])
    elif sub == "set":
        if len(args.pos) < 3:
            raise UsageError("usage: config set KEY VALUE")
        cfg.set(args.pos[1], " ".join(args.pos[2:]))
        cfg.save()
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
        cfg.import_json(" ".join(args.pos[1:]))
        cfg.save()
        con.write("config imported and saved")
    else:
        raise UsageError("usage: config show|set|unset|export|import")


def cmd_log(con, args):
    from dicamm import localtime
    rows = con.app.log.last(args.int_flag("last", 20, 1, 1000))
    if args.json:
        con.write(json.dumps({"log": [{"time_ms": t, "text": s} for t, s in rows]}))
        return
    for t, s in rows:
        con.write("%s  %s" % (localtime.iso_utc(t), s))


def cmd_unlock(con, args):
    if not args.pos:
        raise UsageError("usage: unlock PIN")
    con.unlock(args.pos[0])
    con.write("unlocked for 10 minutes")


def cmd_echo(con, args):
    # For scripts and tests: marks the end of a command's output.
    con.write(" ".join(args.pos))


COMMANDS = {
    "echo": (cmd_echo, "echo TEXT: print TEXT (marks the end of output for scripts)", None),
    "help": (cmd_help, "list commands; 'help COMMAND' for one", None),
    "status": (cmd_status, "one screen: meter, bus, time, relay, gateway, MQTT, storage, faults [--json]", None),
    "meter": (cmd_meter, "meter read [now] [--bus] | list | set MODEL ADDR [BAUD [PARITY]] | scan [--from A --to B --bauds 9600,2400]",
              _changes_if("set"), ("from", "to", "bauds", "parities")),
    "time": (cmd_time, "time | time set UNIX|ISO-UTC (status I) | time sync [--json]", _changes_if("set")),
    "qh": (cmd_qh, "quarter-hour load profile: qh [--last N] [--json] | qh export [--last N|--all] (CSV)", None),
    "config": (cmd_config, "config show | set KEY VALUE | unset KEY | export | import JSON (secrets masked)",
               _changes_if("set", "unset", "import")),
    "log": (cmd_log, "recent log lines [--last N] [--json]", None),
    "unlock": (cmd_unlock, "unlock PIN: allow changes for 10 minutes when a service PIN is set", None),
}
