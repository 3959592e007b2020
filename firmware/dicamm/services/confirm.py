# A new version on trial proves itself (issue 19, item 3): metering reads the
# meter, the load profile's journal is open and the console runs, without a
# break for update.confirm_s; then the boot record says "confirmed" and the code
# folders nobody can start any more go. Not healthy within three times that: the
# record goes back to the previous version and the device restarts into it. A
# trial that crashes at start or never gets this far is main.py's and
# proto/slots.MAX_BOOTS' case. Its task runs only while a version is on trial.
import os
import sys
import time

from dicamm.platform import UNIX
from dicamm.drivers import codeslot, fsutil
from dicamm.proto import slots

from micropython import const

_CHECK_MS = const(1000)


def start(app):
    rec = codeslot.read(app.root)
    if rec and rec.get("trial"):
        app.start("update", Confirmer(app, rec).run)


def restart(app):
    # The device starts again: the MQTT link closed first (its clean "offline"), the
    # terminal given back; the unix port exits (whoever runs it starts it again).
    if app.mqtt is not None:
        try:
            app.mqtt.stop()
        except Exception:
            pass
    if not UNIX and app.board.get("chip") is not None:
        import machine
        machine.reset()
    if app.console is not None:
        app.console.restore_tty()
    sys.exit(0)


def unhealthy(app):
    # Why this start is not yet healthy, or None.
    m = app.metering
    if m is None:
        return "metering did not start"
    if not m.ok:
        return "meter not read (%s)" % (m.last_error or "no reading yet")
    if app.loadprofile is None:
        return "load profile journal not open"
    if app.console is None:
        return "console not running"
    return None


def drop_unused(app, rec):
    # code/<version> folders that are neither active nor previous
    keep = (rec.get("active"), rec.get("previous"))
    try:
        names = os.listdir(app.path("code"))
    except OSError:
        return
    for n in names:
        if "code/" + n not in keep:
            fsutil.rmtree(app.path("code/" + n))


class Confirmer:
    def __init__(self, app, rec):
        self.app = app
        self.rec = rec

    async def run(self):
        app = self.app
        clock = app.clock
        need_ms = 1000 * int(app.config.get("update.confirm_s"))
        t0 = clock.ticks_ms()
        since = None
        why = None
        app.info("update %s on trial (start %d of %d)" % (self.rec.get("version"), self.rec.get("boots", 0),
                                                           slots.MAX_BOOTS))
        while True:
            now = clock.ticks_ms()
            why = unhealthy(app)
            if why:
                since = None
            elif since is None:
                since = now
            if since is not None and time.ticks_diff(now, since) >= need_ms:
                rec = slots.confirm(codeslot.read(app.root) or self.rec)
                codeslot.write(app.root, rec)
                app.info("update %s confirmed" % rec.get("version"))
                drop_unused(app, rec)
                return
            if time.ticks_diff(now, t0) >= 3 * need_ms:
                rec = slots.rollback(codeslot.read(app.root) or self.rec, "health check failed: %s" % why)
                codeslot.write(app.root, rec)
                app.info("update %s rolled back: %s" % (self.rec.get("version"), why))
                restart(app)
            await clock.sleep_ms(_CHECK_MS)
