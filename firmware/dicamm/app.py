# The asyncio application: wires configuration, board hardware and drivers,
# and runs one task per concern (metering, load profile, time, control, TAF16
# outbox, MQTT, console). Optional parts are imported only when configured, to
# keep the heap small on an ESP32.
import gc
import sys
import time

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from dicamm import VERSION
from dicamm.clock import Clock
from dicamm.errors import DicammError


class RingLog:
    # The last few log lines in RAM for `log`; nothing is written to flash.
    def __init__(self, size=40):
        self.lines = [None] * size
        self.n = 0

    def add(self, t_ms, text):
        self.lines[self.n % len(self.lines)] = (t_ms, text)
        self.n += 1

    def last(self, k):
        k = min(k, self.n, len(self.lines))
        return [self.lines[(self.n - k + i) % len(self.lines)] for i in range(k)]


class App:
    def __init__(self, board, opts):
        self.board = board
        root = opts.get("root", "")
        self.root = root.rstrip("/") if root not in ("", "/") else ""
        self.clock = Clock(opts.get("speed", 1), opts.get("start_ms"), opts.get("epoch_ms"))
        self.started = time.ticks_ms()
        self.log = RingLog()
        self.faults = {}
        self.tasks = []
        from dicamm.config import Config
        from dicamm.journal import StorageStats
        self.config = Config(self.root or "/")
        self.storage = StorageStats()
        from dicamm.timekeeper import TimeKeeper
        self.timekeeper = TimeKeeper(self.clock, self.config)
        self.metering = None
        self.loadprofile = None
        self.controller = None
        self.outbox = None
        self.transactions = None
        self.mqtt = None
        self.console = None
        self.journals = {}

    # -- helpers ---------------------------------------------------------
    def path(self, name):
        return (self.root + "/" + name) if self.root else "/" + name

    def info(self, text):
        self.log.add(self.timekeeper.now_ms(), text)

    def fault(self, name, text=None):
        # Set (text) or clear (None) a named fault; status and MQTT show them.
        if text is None:
            if self.faults.pop(name, None) is not None:
                self.info("fault cleared: " + name)
        elif self.faults.get(name) != text:
            self.faults[name] = text
            self.info("fault %s: %s" % (name, text))

    def journal(self, name, max_bytes):
        j = self.journals.get(name)
        if j is None:
            from dicamm.journal import Journal
            from dicamm import fsutil
            d = self.path("data")
            fsutil.makedirs(d)
            j = Journal(d, name, max_bytes, min(8192, max_bytes // 4), self.storage)
            if j.recovered_torn:
                self.info("%s journal: dropped a torn last record after power loss" % name)
            self.journals[name] = j
        return j

    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self.started) // 1000

    def start(self, coro):
        t = asyncio.create_task(coro)
        self.tasks.append(t)
        return t

    # -- metering --------------------------------------------------------
    def setup_meter(self):
        from dicamm import profiles
        cfg = self.config
        if not cfg.get("meter.model"):
            self.fault("meter", "not configured: 'meter set MODEL ADDRESS BAUD' or run 'setup'")
            return False
        try:
            profile = self.load_profile(cfg.get("meter.model"))
            from dicamm import hw
            from dicamm.modbus import ModbusMaster
            from dicamm.meter import Meter
            from dicamm.metering import Metering
            port = hw.meter_port(self.board, cfg)
            master = ModbusMaster(port, cfg.get("meter.timeout_ms"), cfg.get("meter.retries"))
            meter = Meter(master, profile, cfg.get("meter.address"))
            self.metering = Metering(master, meter, self.timekeeper, self.clock, cfg.get("meter.poll_s") * 1000)
        except (DicammError, OSError) as e:
            self.fault("meter", "cannot open: %s" % e)
            return False
        self.fault("meter")
        return True

    def load_profile(self, name):
        from dicamm import profiles
        if name == "custom":
            import json
            from dicamm import fsutil
            raw = fsutil.read(self.path("meter_profile.json"))
            if raw is None:
                raise DicammError("model 'custom' needs meter_profile.json")
            return profiles.from_json(json.loads(raw))
        return profiles.get(name)

    async def watch_meter(self):
        # Turns the metering state into a fault that status and MQTT see.
        while True:
            m = self.metering
            if m.ok:
                self.fault("meter")
            elif m.last_error:
                self.fault("meter", m.last_error)
            await asyncio.sleep_ms(200)

    # -- start-up --------------------------------------------------------
    async def main(self):
        from dicamm.cli import Console
        self.console = Console(self)
        from dicamm import cli_core
        self.console.add(cli_core)
        self.register_extras()
        self.info("DICAMM %s starting on board %s" % (VERSION, self.board.get("name")))
        self.start(self.timekeeper.run())
        if self.setup_meter():
            self.start(self.metering.run())
            self.start(self.watch_meter())
            from dicamm.loadprofile import LoadProfile
            self.loadprofile = LoadProfile(self.journal("qh", self.config.get("storage.qh_max_bytes")),
                                           self.metering, self.timekeeper, self.clock)
            self.start(self.loadprofile.run())
        self.start_extras()
        gc.collect()
        self.start(self.console.run())
        while True:
            await asyncio.sleep_ms(60000)

    def register_extras(self):
        # Command groups of optional parts (control, TAF16, MQTT, commissioning).
        for name in ("cli_control", "cli_taf16", "cli_service"):
            try:
                mod = __import__("dicamm." + name, None, None, ("COMMANDS",))
            except ImportError:
                continue
            self.console.add(mod)

    def start_extras(self):
        for name in ("control", "taf16", "mqtt"):
            fn = getattr(self, "start_" + name, None)
            if fn:
                fn()


def run(board, opts):
    app = App(board, opts)
    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        pass
    return app
