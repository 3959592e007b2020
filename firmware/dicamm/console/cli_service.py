# Console commands for commissioning and diagnosis: net, cert, selftest,
# reboot, factory-reset and the setup wizard. The heavy parts (selftest.py,
# wizard.py) are imported only when used, to keep the ESP32 heap free.
# Code that only runs on a board (network, machine) is imported inside the
# functions that need it, so this module imports cleanly on the unix port.
import json
import os

from dicamm.console.certs import CERT_KEYS, cert_rows, read_pem, store_pem
from dicamm.console.device import reboot
from dicamm.drivers.netif import net_connect, net_info  # the network lives in netif
from dicamm.errors import UsageError

_SHORT = {"ca": "han.ca", "cert": "han.cert", "key": "han.key"}


def cmd_net(con, args):
    app = con.app
    sub = args.pos[0] if args.pos else None
    if sub is None:
        d = net_info(app)
        con.emit(args, d, d["summary"])
    elif sub == "set":
        if len(args.pos) < 3 or args.pos[1] not in ("ssid", "password", "hostname"):
            raise UsageError("usage: net set ssid|password|hostname VALUE")
        key = "net." + args.pos[1]
        app.config.set(key, " ".join(args.pos[2:]))
        app.config.save()
        con.write("%s saved; 'net connect' (board) or 'reboot' applies it" % key)
    elif sub == "connect":
        return _net_connect_cmd(con, args)
    else:
        raise UsageError("usage: net [--json] | net set ssid|password|hostname VALUE | net connect")


async def _net_connect_cmd(con, args):
    d = await net_connect(con.app)
    con.emit(args, d, d["summary"])


# -- certificates -------------------------------------------------------------
def _show_certs(con, args):
    rows = cert_rows(con.app)

    def human(d):
        for r in d["certs"]:
            if "subject" in r:
                con.write("%-9s %s: subject %s, issuer %s, valid %s .. %s: %s" % (
                    r["key"], r["path"], json.dumps(r["subject"]), json.dumps(r["issuer"]),
                    r["not_before"][:10], r["not_after"][:10], r["state"]))
            else:
                con.write("%-9s %s%s" % (r["key"], (r["path"] + ": ") if r["path"] else "", r["state"]))
    con.emit(args, {"certs": rows}, human)


async def _cert_load(con, args):
    key = args.pos[1] if len(args.pos) > 1 else ""
    key = _SHORT.get(key, key)
    if key not in CERT_KEYS:
        raise UsageError("usage: cert load %s" % "|".join(CERT_KEYS))
    con.write("paste the PEM block for %s now (it ends with the -----END ...----- line; Ctrl-C aborts):" % key)
    text = await read_pem(con)
    rel, what = store_pem(con.app, key, text)
    con.app.config.save()
    con.write("%s stored in %s (%s); 'reboot' to use it" % (key, rel, what))


def cmd_cert(con, args):
    sub = args.pos[0] if args.pos else None
    if sub in (None, "show"):
        _show_certs(con, args)
    elif sub == "load":
        return _cert_load(con, args)
    else:
        raise UsageError("usage: cert [--json] | cert load NAME (%s)" % "|".join(CERT_KEYS))


# -- selftest, setup -------------------------------------------------------------
def cmd_selftest(con, args):
    from dicamm.console import selftest
    return selftest.run(con, args)


def cmd_setup(con, args):
    from dicamm.console import wizard
    return wizard.run(con, args)


# -- reboot, factory reset ---------------------------------------------------------
def cmd_reboot(con, args):
    reboot(con)


def _rmtree(path):
    # Remove a file or a directory with everything in it; -> files removed.
    try:
        mode = os.stat(path)[0]
    except OSError:
        return 0
    if mode & 0x4000:
        n = 0
        for name in os.listdir(path):
            n += _rmtree(path + "/" + name)
        os.rmdir(path)
        return n
    os.remove(path)
    return 1


# What a factory reset erases: settings, records, certificates, the device's
# record signing key. The firmware itself, boot.py and board.py stay.
_WIPE = ("config.json", "config.json.bak", "config.json.tmp", "data", "certs", "device.key",
         "schedule.json", "meter_profile.json", "selftest.probe")


async def _factory_reset(con, args):
    con.write("FACTORY RESET erases the configuration, all records (load profile, events, transactions),")
    con.write("the certificates and the device key. Records not yet sent are lost.")
    a = await con.ask("type yes to erase everything")
    if a != "yes":
        con.write("factory reset cancelled")
        return
    app = con.app
    n = 0
    for name in _WIPE:
        try:
            n += _rmtree(app.path(name))
        except OSError as e:
            con.error("cannot remove %s: %s" % (name, e))
    con.write("factory reset: %d files removed" % n)
    reboot(con, "factory reset")


def cmd_factory_reset(con, args):
    return _factory_reset(con, args)
