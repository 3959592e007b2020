# Console command `mqtt`: the state of the link to the flexibility backend
# (connected, broker, backlog per stream, last error). Read-only.
import json


def _status(app):
    link = app.mqtt
    if link is not None:
        d = link.status()
        d["configured"] = True
        return d
    host = app.config.get("mqtt.host")
    return {"configured": False, "connected": False,
            "last_error": "mqtt.host not set" if not host else "link not started"}


def cmd_mqtt(con, args):
    d = _status(con.app)

    def human(d):
        if not d["configured"]:
            con.write("mqtt    off: %s ('config set mqtt.host HOST', then restart)" % d["last_error"])
            return
        con.write("mqtt    %s %s%s, topics %s*" % (
            "connected to" if d["connected"] else "NOT connected to", d["broker"],
            " (TLS)" if d.get("tls") else "", d["prefix"]))
        if not d["connected"]:
            con.write("        next try in %d s" % d.get("retry_in_s", 0))
        if d.get("last_error"):
            con.write("        last error: %s" % d["last_error"])
        con.write("        backlog %s, in flight %d, lost %s" % (
            json.dumps(d.get("backlog")), d.get("inflight", 0), json.dumps(d.get("lost"))))
        con.write("        %d connects, %d failures, %d published, commands %d ok / %d refused" % (
            d.get("connects", 0), d.get("failures", 0), d.get("published", 0),
            d.get("commands", 0), d.get("refused", 0)))
    con.emit(args, d, human)
