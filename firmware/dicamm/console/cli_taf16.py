# Console commands for TAF16 events and transaction records.
import json

from dicamm.errors import UsageError


def cmd_event(con, args):
    if not args.pos:
        raise UsageError('usage: event "TEXT" (at most 64 characters)')
    text = " ".join(args.pos)
    r = con.app.commands.execute("event", {"text": text})
    con.write("event %s recorded; sent to the gateway in order (see 'events')" % r["uuid"])


def cmd_events(con, args):
    ob = con.app.outbox
    last = args.int_flag("last", 10, 1, 1000)
    if ob is None:
        raise UsageError("TAF16 is not configured: set cls_id and han.url")
    rows = ob.list(last)
    st = ob.status()
    if args.json:
        con.write_json({"events": rows, "status": st})
        return
    for e in rows:
        rec = e.get("record")
        con.write("%s  %-44s %s Wh  %s  %s" % (e.get("uuid"), e.get("text", "")[:44], e.get("reading_wh"),
                                                e.get("time_status"),
                                                "acked seq %s" % rec.get("seq") if rec else (
                                                    "acked" if e.get("acked") else "PENDING")))
    con.write("pending %s, acked %s%s%s" % (st.get("pending"), st.get("acked"),
                                          ", last error: %s" % st["last_error"] if st.get("last_error") else "",
                                          ", ALARM: %s" % st["alarm"] if st.get("alarm") else ""))


def cmd_tx(con, args):
    tx = con.app.transactions
    if tx is None:
        raise UsageError("no transaction records")
    rows = tx.list(args.int_flag("last", 10, 1, 1000))
    if args.json:
        con.write_json({"tx": rows, "open": tx.open})
        return
    for r in rows:
        b, e = r.get("begin", {}), r.get("end", {})
        con.write("#%s  %s Wh  begin %s Wh (time %s)  end %s Wh (time %s, reason %s)" % (
            r.get("pg"), r.get("energy_wh"), b.get("reading_wh"), b.get("time_status"),
            e.get("reading_wh"), e.get("time_status"), e.get("reason")))
    if tx.open:
        con.write("open transaction since %s Wh" % json.dumps(tx.open.get("begin")))
