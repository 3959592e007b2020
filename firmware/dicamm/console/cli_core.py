# Console commands: status, meter, qh, log, echo (the frequent ones: this
# group stays loaded). Declared in proto/cmdspec.py.
import json

from dicamm import VERSION
from dicamm.errors import UsageError


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


def _net_dict(app):
    try:
        from dicamm.drivers.netif import net_info
        return net_info(app)
    except ImportError:
        return None


def _free_bytes(app):
    try:
        import os
        st = os.statvfs(app.root or "/")
        return (st[1] or st[0]) * st[4]
    except (ImportError, AttributeError, OSError):
        return None


def cmd_status(con, args):
    app = con.app
    d = status_dict(app)
    net = _net_dict(app)
    if net is not None:
        d["net"] = net
    d["storage"]["free_bytes"] = _free_bytes(app)
    from dicamm.services import device_info  # what MQTT's identity and health topics say
    d["identity"] = device_info.identity(app)
    d["health"] = device_info.health(app)

    def human(d):
        m = d["meter"]
        t = d["time"]
        con.write("DICAMM %s on %s, up %d s" % (d["firmware"], d["board"], d["uptime_s"]))
        _identity_health(con, d["identity"], d["health"])
        if m.get("power_w") is not None:
            con.write("meter   %s @%s: %s W, import %s Wh, export %s Wh (age %.1f s)%s" % (
                m["model"], m["address"], m["power_w"], m["import_wh"], m["export_wh"], m["age_s"] or 0,
                "" if m.get("ok") else ", LAST READ FAILED: %s" % m.get("error")))
        elif "model" in m:
            con.write("meter   %s @%s: no reading (%s)" % (m["model"], m["address"], m.get("error")))
        else:
            con.write("meter   FAULT: %s" % m.get("error"))
        if m.get("serial"):
            con.write("        %s %s, serial %s" % (m["vendor"], m["meter_model"], m["serial"]))
        if "bus" in d:
            b = d["bus"]
            con.write("bus     %d polls, %d failed (%d invalid values); errors %s" % (
                b["polls"], b["failures"], b.get("invalid", 0), json.dumps(b["errors"])))
        con.write("time    %s status %s (source %s)" % (t.get("iso") or t.get("unix"), t.get("status"), t.get("source")))
        c = d.get("controller")
        if c:
            con.write("relay   %s, ruled by %s%s" % (c.get("state"), c.get("source"),
                                                    ", faults: " + ",".join(c["faults"]) if c.get("faults") else ""))
        o = d.get("outbox")
        if o:
            con.write("gateway %s events pending, %s acked%s" % (o.get("pending"), o.get("acked"),
                                                               ", last error: %s" % o["last_error"] if o.get("last_error") else ""))
        else:
            con.write("gateway not configured")
        q = d.get("mqtt")
        if q:
            con.write("mqtt    %s %s%s" % ("connected to" if q.get("connected") else "NOT connected to", q.get("broker"),
                                          ", last error: %s" % q["last_error"] if q.get("last_error") else ""))
        else:
            con.write("mqtt    not configured")
        n = d.get("net")
        if n:
            con.write("net     %s" % n.get("summary"))
        x = d.get("transactions")
        if x:
            con.write("tx      %d records%s" % (x["records"], ", one open" if x["open"] else ""))
        s = d["storage"]
        con.write("storage %d bytes in %d writes%s" % (s["bytes_written"], s["write_ops"],
                                                     ", %d kB free" % (s["free_bytes"] // 1024) if s["free_bytes"] is not None else ""))
        if d["faults"]:
            for k, v in d["faults"].items():
                con.write("FAULT   %s: %s" % (k, v))
        else:
            con.write("faults  none")
    con.emit(args, d, human)


def _identity_health(con, i, h):
    con.write("device  %s, CLS-ID %s; OCMF key %s" % (i["device_id"], i["cls_id"] or "(not set)",
                                                     i["ocmf_key"]["key"][-16:] if i["ocmf_key"] else "none"))
    n = h["net"] or {}
    net = n.get("kind")
    if "rssi_dbm" in n:
        net += " %s dBm" % n["rssi_dbm"] if n["connected"] else " NOT connected"
    elif "link" in n:
        net += " link up" if n["link"] else " NO link"
    con.write("health  reset %s, %d crash(es), %d bytes heap free, net %s, time %s%s" % (
        h["reset_cause"] or "unknown", h["crashes"], h["heap_free"], net, h["time_status"],
        " +-%d ms" % h["error_ms"] if h["error_ms"] is not None else ""))


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
            if d.get("serial"):
                con.write("  %s %s, serial %s%s%s" % (d["vendor"], d["meter_model"], d["serial"],
                                                      ", firmware " + d["firmware"] if d["firmware"] else "",
                                                      "  EXCHANGED (was %s)" % d["exchanged"][0] if d.get("exchanged") else ""))
        con.emit(args, d, human)
    elif sub in ("list", "set"):
        from dicamm.console import cli_admin
        cli_admin.meter_admin(con, args, sub)
    elif sub == "scan":
        from dicamm.console import scan
        await scan.run(con, args)
    else:
        raise UsageError("usage: meter read|list|set|scan")


def _csv_text(v):
    return str(v).replace(",", ";").replace("\n", " ")


def _qh_line(con, r, prev):
    # One human line of the load profile; prev: (boundary, import_wh) of the
    # value before, for the energy of the interval.
    from dicamm.proto import localtime
    b = r["boundary"] * 1000
    when = "%s (%s)" % (localtime.iso_local(b), localtime.iso_utc(b)[11:16] + "Z")
    if "gap" in r:
        n = r.get("missed", 1)
        more = "" if n == 1 else " (%d quarter hours, to %s)" % (n, localtime.iso_local(b + (n - 1) * 900000))
        con.write("#%d %s  GAP: %s%s" % (r["seq"], when, r["gap"], more))
        return
    delta = "" if prev is None or prev[0] != r["boundary"] - 900 else "  +%d Wh" % (r["import_wh"] - prev[1])
    notes = ""
    if r["time_status"] != "S":
        notes += "  (time %s: not legally timed)" % r["time_status"]
    if r.get("late"):
        notes += "  LATE: read %d ms after the boundary (law allows 9000)" % r["delay_ms"]
    con.write("#%d %s  import %d Wh  export %d Wh%s  %s +%d ms%s" % (
        r["seq"], when, r["import_wh"], r["export_wh"], delta, r["time_status"], r["delay_ms"], notes))


class _JsonRows:
    # One JSON object on one line, its "qh" list written row by row: a day
    # or a long listing never has to fit in the heap at once (ESP32).
    def __init__(self, con, as_json):
        self.out = con.out if as_json else None
        self.n = 0

    def open(self, head):
        if self.out is not None:
            self.out.write(json.dumps(head)[:-1] + (", " if head else "") + '"qh": [')

    def row(self, r):
        if self.out is not None:
            self.out.write((", " if self.n else "") + json.dumps(r))
        self.n += 1

    def close(self, tail):
        if self.out is not None:
            t = json.dumps(tail)
            self.out.write("]" + (", " + t[1:] if tail else "}") + "\n")


def _qh_day(con, args, j, decode):
    # The values of one local calendar day (CET/CEST): boundaries in
    # [local 00:00, next local 00:00), so 92, 96 or 100 of them. Gap records
    # are expanded per boundary; boundaries never recorded count as missing.
    from dicamm.proto import localtime
    if len(args.pos) < 2:
        raise UsageError("usage: qh day YYYY-MM-DD [--json]")
    try:
        y, m, d = localtime.parse_date(args.pos[1])
    except ValueError as e:
        raise UsageError(str(e))
    start, end = localtime.local_day_range_ms(y, m, d)
    s0, s1 = start // 1000, end // 1000
    expected = (end - start) // 900000
    # first pass: the counts for the header (nothing kept in RAM)
    values = gaps = legal = 0
    for seq, payload in j.records(j.first_seq):
        r = decode(seq, payload)
        b = r["boundary"]
        if "gap" in r:
            for k in range(r["missed"]):
                if s0 <= b + k * 900 < s1:
                    gaps += 1
        elif s0 <= b < s1:
            values += 1
            if r["time_status"] == "S" and not r["late"]:
                legal += 1
        if b >= s1:
            break
    head = {"date": args.pos[1], "start": s0, "end": s1, "expected": expected, "values": values,
            "gaps": gaps, "not_recorded": expected - values - gaps, "legal": legal}
    out = _JsonRows(con, args.json)
    out.open(head)
    if not args.json:
        con.write("%s local (CET/CEST): %d quarter hours; %d values (%d legally timed), %d gaps, %d not recorded" % (
            head["date"], expected, values, legal, gaps, head["not_recorded"]))
    prev = None  # (boundary s, import_wh, export_wh) of the latest value
    shown = None
    for seq, payload in j.records(j.first_seq):
        r = decode(seq, payload)
        b = r["boundary"]
        if "gap" in r:
            for k in range(r["missed"]):
                bk = b + k * 900
                if s0 <= bk < s1:
                    g = {"seq": seq, "boundary": bk, "gap": r["gap"],
                         "local": localtime.iso_local(bk * 1000), "utc": localtime.iso_utc(bk * 1000)}
                    out.row(g)
                    if not args.json:
                        _qh_line(con, g, None)
            continue
        if s0 <= b < s1:
            if prev is not None and prev[0] == b - 900:
                r["import_delta_wh"] = r["import_wh"] - prev[1]
                r["export_delta_wh"] = r["export_wh"] - prev[2]
            r["local"] = localtime.iso_local(b * 1000)
            r["utc"] = localtime.iso_utc(b * 1000)
            out.row(r)
            if not args.json:
                _qh_line(con, r, shown)
                shown = (b, r["import_wh"])
        prev = (b, r["import_wh"], r["export_wh"])
        if b >= s1:
            break
    out.close({})


def cmd_qh(con, args):
    app = con.app
    if app.loadprofile is None:
        raise UsageError("no load profile: the meter is not configured")
    from dicamm.services.loadprofile import decode
    from dicamm.proto import localtime
    j = app.loadprofile.journal
    last = args.int_flag("last", 8, 1, 10000)
    sub = args.pos[0] if args.pos else None
    if sub == "day":
        return _qh_day(con, args, j, decode)
    if sub == "export":
        con.write("seq,boundary_utc,boundary_local,import_wh,export_wh,time_status,delay_ms,read_ms,late,gap,missed,error_ms")
        for seq, payload in j.records(j.first_seq if "all" in args.flags else max(j.first_seq, j.next_seq - last)):
            r = decode(seq, payload)
            gap = "gap" in r
            con.write("%d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s" % (
                seq, localtime.iso_utc(r["boundary"] * 1000), localtime.iso_local(r["boundary"] * 1000),
                r.get("import_wh", ""), r.get("export_wh", ""), r.get("time_status", ""), r.get("delay_ms", ""),
                r.get("read_ms", ""), "" if gap else int(r["late"]), _csv_text(r["gap"]) if gap else "",
                r["missed"] if gap else "", r.get("error_ms", "")))
        return
    if sub is not None:
        raise UsageError("usage: qh [--last N] [--json] | qh day YYYY-MM-DD [--json] | qh export [--last N|--all]")
    if args.json:
        out = _JsonRows(con, True)
        out.open({})
        for seq, payload in j.records(max(j.first_seq, j.next_seq - last)):
            out.row(decode(seq, payload))
        out.close({"first_seq": j.first_seq, "next_seq": j.next_seq, "evicted": j.evicted})
        return
    prev = None
    for seq, payload in j.records(max(j.first_seq, j.next_seq - last)):
        r = decode(seq, payload)
        _qh_line(con, r, prev)
        prev = None if "gap" in r else (r["boundary"], r["import_wh"])


def cmd_log(con, args):
    from dicamm.proto import localtime
    rows = con.app.log.last(args.int_flag("last", 20, 1, 1000))
    if args.json:
        con.write_json({"log": [{"time_ms": t, "text": s} for t, s in rows]})
        return
    for t, s in rows:
        con.write("%s  %s" % (localtime.iso_utc(t), s))


def cmd_echo(con, args):
    # For scripts and tests: marks the end of a command's output.
    con.write(" ".join(args.pos))
