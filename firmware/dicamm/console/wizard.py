# `setup`: the commissioning wizard. Walks the installer through meter,
# network, time sources, CLS-ID, gateway (URL and certificates) and backend,
# checks each step live, saves the configuration atomically and ends with the
# selftest. Answers come line by line from the console (console.ask): Enter
# keeps the value shown in [brackets], "-" empties it, "back" returns to the
# previous step, "quit" leaves without saving. Loaded only when used.
import json

from dicamm.console import certs, device
from dicamm.errors import ConfigError, DicammError, UsageError


class _Back(Exception):
    pass


class _Quit(Exception):
    pass


class Wizard:
    def __init__(self, con):
        self.con = con
        self.app = con.app
        self.cfg = con.app.config

    def say(self, text):
        self.con.write(text)

    async def q(self, prompt, default=None, secret=False):
        a = await self.con.ask(prompt, default, secret)
        low = a.lower() if isinstance(a, str) else a
        if low == "back":
            raise _Back()
        if low == "quit":
            raise _Quit()
        return a

    async def field(self, key, prompt, required=False):
        # Ask for one config value until it passes the schema check; sets it.
        from dicamm.drivers import config
        secret = config.is_secret(key)
        while True:
            cur = self.cfg.get(key)
            shown = ",".join(cur) if isinstance(cur, list) else ("" if cur is None else str(cur))
            if isinstance(cur, bool):
                shown = "yes" if cur else "no"
            a = await self.q(prompt, shown, secret)
            if a == "-":
                a = ""
            if required and not a:
                self.con.error("%s is needed" % key)
                continue
            try:
                return self.cfg.set(key, a)
            except ConfigError as e:
                self.con.error(str(e))

    async def yes(self, prompt, default="yes"):
        while True:
            a = (await self.q(prompt + " (yes/no)", default)).lower()
            if a in ("y", "yes", "j", "ja"):
                return True
            if a in ("n", "no", "nein"):
                return False

    # -- steps -----------------------------------------------------------------
    async def step_meter(self):
        from dicamm.proto import profiles
        from dicamm.console import scan
        self.say("")
        self.say("== 1/6 Meter (RS485 Modbus RTU) ==")
        if self.app.board.get("chip") is None:
            await self.field("meter.port", "serial port of the meter (tty path)", True)
        names = profiles.names()
        while True:
            model = await self.q("meter model (%s, or 'scan')" % ", ".join(names),
                                 self.cfg.get("meter.model") or "sdm630")
            if model == "scan":
                await self.quick_scan()
                continue
            if model != "custom" and model not in names:
                self.con.error("unknown model '%s'" % model[:32])
                continue
            self.cfg.set("meter.model", model)
            if model != "custom" and self.cfg.is_default("meter.baud"):
                self.cfg.set("meter.baud", profiles.get(model).get("baud", 9600))
            if model != "custom" and self.cfg.is_default("meter.parity"):
                self.cfg.set("meter.parity", profiles.get(model).get("parity", "N"))
            break
        await self.field("meter.address", "Modbus address (1-247)")
        await self.field("meter.baud", "baud rate")
        await self.field("meter.parity", "parity (N, E, O)")
        while True:
            c = self.cfg
            self.say("reading the meter: %s at address %d, %d baud 8%s1 ..." % (
                c.get("meter.model"), c.get("meter.address"), c.get("meter.baud"), c.get("meter.parity")))
            try:
                r = await scan.try_meter(self.app, c.get("meter.model"), c.get("meter.address"),
                                         c.get("meter.baud"), c.get("meter.parity"))
            except (DicammError, OSError, ValueError) as e:
                self.con.error("no good answer: %s" % e)
                self.say("check wiring (A to A, B to B), address, baud and parity on the meter's display")
                a = (await self.q("Enter tries again, 'edit' changes the settings, 'skip' keeps them", "")).lower()
                if a == "edit":
                    raise _Redo()
                if a == "skip":
                    return
                continue
            self.say("meter answers: %s W, import %s Wh, export %s Wh%s" % (
                r["power_w"], r["import_wh"], r["export_wh"],
                ", %.1f V" % r["voltage_v"] if r.get("voltage_v") is not None else ""))
            return

    async def quick_scan(self):
        from dicamm.console import scan
        from dicamm.console.cli_editor import Args
        self.say("scanning addresses 1-32 at 9600 and 2400 baud (Ctrl-C aborts the whole setup) ...")
        await scan.run(self.con, Args(["--to", "32", "--bauds", "9600,2400", "--parities", "N,E"],
                                      ("to", "bauds", "parities")))

    async def step_network(self):
        from dicamm.drivers import netif
        self.say("")
        self.say("== 2/6 Network ==")
        kind = (self.app.board.get("net") or {}).get("kind", "none")
        if self.app.board.get("chip") is None:
            self.say("unix port: the host's network is used; Wi-Fi settings only apply on a board")
            await self.field("net.hostname", "hostname (optional, '-' for none)")
            return
        if kind == "wifi":
            await self.field("net.ssid", "Wi-Fi name (SSID)", True)
            await self.field("net.password", "Wi-Fi password")
        await self.field("net.hostname", "hostname (optional)")
        if kind == "none":
            return
        while True:
            self.say("connecting ...")
            d = await netif.net_connect(self.app)
            self.say(d["summary"])
            if d.get("connected"):
                return
            a = (await self.q("Enter tries again, 'skip' goes on without network", "")).lower()
            if a == "skip":
                return

    async def step_time(self):
        self.say("")
        self.say("== 3/6 Time (legal time from the gateway and NTP servers) ==")
        await self.field("time.gateway", "gateway SNTP host[:port] ('-' for none)")
        await self.field("time.servers", "NTP servers host[:port], comma separated")
        while True:
            self.say("synchronising ...")
            d = await self.app.timekeeper.sync_now()
            if d["status"] == "S":
                self.say("time synchronised with %s, offset %s ms" % (d.get("source"), d.get("offset_ms")))
                return
            self.con.error("time not synchronised (status %s): %s" % (d["status"], d.get("last_error") or "no answer"))
            a = (await self.q("Enter tries again, 'skip' goes on", "")).lower()
            if a == "skip":
                return

    async def step_ids(self):
        self.say("")
        self.say("== 4/6 Identity ==")
        await self.field("cls_id", "CLS-ID of this device (from the gateway operator)", True)
        if not self.cfg.get("device_id"):
            self.cfg.set("device_id", self.cfg.get("cls_id").lower()[:64])
        await self.field("device_id", "device id (MQTT client id and topic)")

    async def cert(self, key, what):
        while True:
            cur = self.cfg.get(key)
            a = await self.q("%s: paste the PEM block, or a file path%s" % (
                what, ", Enter keeps %s" % cur if cur else ""), cur or None)
            if a.startswith("-----BEGIN"):
                try:
                    text = await certs.read_pem(self.con, a)
                    rel, info = certs.store_pem(self.app, key, text)
                except (UsageError, DicammError) as e:
                    self.con.error(str(e))
                    continue
                self.say("%s stored as %s: %s" % (key, rel, info))
                return
            if not a:
                self.con.error("%s is needed for TLS" % key)
                continue
            from dicamm.drivers import fsutil
            if fsutil.read(self.app.file_path(a)) is None:
                self.con.error("no file %s" % a)
                continue
            self.cfg.set(key, a)
            return

    async def check_live(self, check, doing, accept):
        # Run one selftest check now; until it gives a result in `accept` the
        # installer may try again, edit the step's settings, or skip.
        from dicamm.console import selftest
        while True:
            self.say(doing)
            r = (await selftest.run_checks(self.app, (check,)))[0]
            self.say("%s %s" % (r["result"], r["detail"]))
            if r["result"] in accept:
                return
            a = (await self.q("Enter tries again, 'edit' changes the settings, 'skip' goes on", "")).lower()
            if a == "edit":
                raise _Redo()
            if a == "skip":
                return

    async def step_gateway(self):
        self.say("")
        self.say("== 5/6 Smart meter gateway (TAF16 events over HAN, mutual TLS) ==")
        url = await self.field("han.url", "gateway URL (https://HOST:PORT/PATH, '-' for none)")
        if not url:
            self.say("no gateway: TAF16 events stay on the device")
            return
        if url.startswith("http://"):
            self.cfg.set("han.plain_http", await self.yes("plain HTTP is for the bench only: allow it?", "no"))
        else:
            await self.cert("han.ca", "gateway CA certificate")
            await self.cert("han.cert", "device certificate")
            await self.cert("han.key", "device private key")
        await self.check_live("gateway", "connecting to the gateway ...", ("PASS",))

    async def step_backend(self):
        self.say("")
        self.say("== 6/6 Backend (MQTT) ==")
        host = await self.field("mqtt.host", "MQTT broker host ('-' for none)")
        if not host:
            self.say("no backend")
            return
        await self.field("mqtt.port", "MQTT port")
        await self.field("mqtt.user", "MQTT user ('-' for none)")
        await self.field("mqtt.password", "MQTT password ('-' for none)")
        await self.field("mqtt.tls", "MQTT over TLS (yes/no)")
        await self.check_live("broker", "connecting to the broker ...", ("PASS", "SKIP"))


class _Redo(Exception):
    pass


async def run(con, args):
    from dicamm.console import selftest
    w = Wizard(con)
    cfg = con.app.config
    saved = dict(cfg._values)   # to put back on 'quit' (and Ctrl-C) without saving
    steps = (w.step_meter, w.step_network, w.step_time, w.step_ids, w.step_gateway, w.step_backend)
    con.write("DICAMM setup: Enter keeps the value in [brackets], '-' empties it, 'back' goes one step back,")
    con.write("'quit' leaves without saving. Nothing is saved before the end.")
    i = 0
    done = False
    try:
        while i < len(steps):
            try:
                await steps[i]()
                i += 1
            except _Back:
                i = max(0, i - 1)
            except _Redo:
                pass
        done = True
    except _Quit:
        con.write("setup left: nothing saved")
        return
    finally:
        if not done:
            cfg._values = saved
    cfg.save()
    con.write("")
    con.write("configuration saved:")
    for k, v in sorted(json.loads(cfg.export_json()).items()):
        con.write("  %s = %s" % (k, json.dumps(v)))
    tx = con.app.transactions
    if tx is not None:  # made on the device at its first start (and after factory-reset)
        con.write("transaction signing key (ECDSA P-256, give it to whoever verifies): %s" % tx.public_key_hex())
    con.write("")
    con.write("== selftest ==")
    ok = await selftest.run(con, args)
    try:
        again = await w.yes("reboot now so that the new settings take effect?", "yes")
    except (_Back, _Quit):
        again = False
    if again:
        device.reboot(con, "setup done")
    con.write("setup done%s; 'reboot' applies the settings" % ("" if ok else " with failures"))
