# Console commands for TAF16 events and transaction records.
import json

from dicamm.errors import UsageError


def _dump(out, obj):
    try:
        json.dump(obj, out)
    except OSError:  # not a stream (an object with write() only)
        out.write(json.dumps(obj))


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
    # tx [--last N] [--json] | tx key | tx export [--last N]
    tx = con.app.transactions
    if tx is None:
        raise UsageError("no transaction records")
    sub = args.pos[0] if args.pos else ""
    if sub == "key":
        # The public key (hex DER, ECDSA-secp256r1) that verifies the records.
        con.write_json({"SA": "ECDSA-secp256r1-SHA256", "key": tx.public_key_hex()}) if args.json \
            else con.write(tx.public_key_hex())
        return
    if sub == "export":
        # One OCMF string per line, as pyocmf and the Transparenzsoftware read them.
        for seq, p in tx.journal.last(args.int_flag("last", 1000, 1, 100000)):
            con.write(bytes(p).decode())
        return
    if sub:
        raise UsageError("usage: tx [--last N] [--json] | tx key | tx export [--last N]")
    rows = tx.rows(args.int_flag("last", 10, 1, 1000))
    if args.json:
        # {"tx": [...], "open": ...} written record by record (one in the heap)
        out = con.out
        out.write('{"tx": [')
        sep = ""
        for r in rows:
            out.write(sep)
            _dump(out, r)
            sep = ", "
        out.write('], "open": ')
        _dump(out, tx.open)
        out.write("}\n")
        return
    for r in rows:
        b, e = r.get("begin", {}), r.get("end", {})
        con.write("T%s  %s Wh  begin %s Wh (%s%s)  end %s Wh (%s%s, TX %s, ST %s)" % (
            r.get("pg"), r.get("energy_wh"), b.get("reading_wh"), b.get("time_status"),
            " EF " + b["ef"] if b.get("ef") else "", e.get("reading_wh"), e.get("time_status"),
            " EF " + e["ef"] if e.get("ef") else "", e.get("reason"), e.get("st")))
    if tx.open:
        b = tx.open["begin"]
        con.write("open transaction T%s since %s Wh (meter %s)" % (tx.open["pg"], b["i"], tx.open["meter"]["serial"]))
