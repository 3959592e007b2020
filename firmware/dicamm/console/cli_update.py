# Console command `update`: a signed release installed from its URL (issue 19);
# the work is services/update.py, which runs on after this module is dropped.
from dicamm.errors import UsageError

_USAGE = "usage: update [--json] | update install URL [--downgrade]"


def _show(d):
    line = "update: %s" % d["state"]
    if d.get("version"):
        line += " %s" % d["version"]
    if d["state"] in ("download", "staged", "failed") and d.get("total"):
        line += ", %d of %d bytes" % (d["bytes"], d["total"])
    if d.get("file") and d["state"] == "download":
        line += " (%s)" % d["file"]
    if d.get("error"):
        line += ": %s" % d["error"]
    b = d.get("boot") or {}
    if b.get("active"):
        line += "\nrunning %s from %s%s" % (b.get("version"), b["active"], " ON TRIAL (start %d)" % b.get("boots", 0)
                                            if b.get("trial") else "")
    last = b.get("last")
    if last:
        line += "\nlast: %s %s%s" % (last.get("event"), last.get("version"), ": %s" % last["why"] if last.get("why") else "")
    return line


def cmd_update(con, args):
    from dicamm.services.update import updater
    u = updater(con.app)
    if not args.pos:
        con.emit(args, dict(u.state, boot=u.boot_record()), lambda d: con.write(_show(d)))
        return
    if args.pos[0] != "install" or len(args.pos) != 2:
        raise UsageError(_USAGE)
    con.app.commands.execute("update", {"url": args.pos[1], "downgrade": bool(args.flags.get("downgrade"))})
    con.write("update from %s started; 'update' shows its progress" % args.pos[1])
