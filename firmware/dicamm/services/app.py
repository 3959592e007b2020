# The asyncio application: wires configuration, board hardware and drivers,
# and runs one task per concern (metering, load profile, time, control, TAF16
# outbox, MQTT, console). Optional parts are imported only when configured, to
# keep the heap small on an ESP32.
import gc
import sys
import time

from dicamm.platform import asyncio
from dicamm import VERSION
from dicamm.drivers.clock import Clock
from dicamm.proto.ringlog import RingLog
from dicamm.errors import DicammError
from dicamm.services import confirm


class App:
    def __init__(self, board, opts):
        self.board = board
        root = opts.get("root", "")
        self.root = root.rstrip("/") if root not in ("", "/") else ""
        self.clock = Clock(opts.get("speed", 1), opts.get("start_ms"), opts.get("epoch_ms"), opts.get("slow"))
        self.started = time.ticks_ms()
        self.log = RingLog()
        from dicamm.services.supervisor import Faults, Supervisor
        self._faults = Faults(self.info)
        self.faults = self._faults.active  # name -> text: status and MQTT show them
        self.fault = self._faults.set
        self.supervisor = Supervisor(self.fault)
        self.start = self.supervisor.start  # start(name, run): a task that errors do not end
        self.watch = self.supervisor.watch  # watch(name, fault, state, period_ms)
        from dicamm.drivers.config import Config
        from dicamm.drivers.journal import StorageStats
        self.config = Config(self.root or "/")
        self.storage = StorageStats()
        from dicamm.services.timekeeper import TimeKeeper
        self.timekeeper = TimeKeeper(self.clock, self.config)
        self.metering = None
        self.loadprofile = None
        self.controller = None
        self.outbox = None
        self.transactions = None
        self.tx_service = None   # services/transactions: events and records of the edges
        self.mqtt = None
        self.console = None
        self.journals = {}

    # -- helpers ---------------------------------------------------------
    def path(self, name):
        return (self.root + "/" + name) if self.root else "/" + name

    def info(self, text):
        self.log.add(self.timekeeper.now_ms(), text)

    def journal(self, name, max_bytes):
        # One Journal per name under data/ (a torn last record is logged).
        j = self.journals.get(name)
        if j is None:
            from dicamm.drivers.journal import open_in
            j = self.journals[name] = open_in(self.path("data"), name, max_bytes, self.storage, self.info)
        return j

    def boundary_gate(self):
        # The load profile's gate (None without a meter): long blocking steps
        # wait on it so that the quarter-hour reading comes first.
        lp = self.loadprofile
        return lp.gate if lp is not None else None

    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self.started) // 1000

    # -- metering --------------------------------------------------------
    def setup_meter(self):
        cfg = self.config
        if not cfg.get("meter.model"):
            self.fault("meter", "not configured: 'meter set MODEL ADDRESS BAUD' or run 'setup'")
            return False
        try:
            from dicamm.services.metering import from_config
            self.metering = from_config(self.board, cfg, self.timekeeper, self.clock, self.path("meter_profile.json"))
        except (DicammError, OSError) as e:
            self.fault("meter", "cannot open: %s" % e)
            return False
        self.fault("meter")
        return True

    def _meter_fault(self):
        m = self.metering  # before the first reading (not ok, no error) the fault stays as it is
        return None if m.ok else m.last_error or self.faults.get("meter")

    # -- start-up --------------------------------------------------------
    async def main(self):
        from dicamm.console.cli import Console
        self.console = Console(self)
        from dicamm.console import table
        table.preload(self.info, self.fault)  # the console's groups, once; a missing one: the "console" fault
        self.info("DICAMM %s starting on board %s" % (VERSION, self.board.get("name")))
        from dicamm.services import failsoft  # optional parts: a fault each, never a dead device
        if self.board.get("chip") is not None:
            failsoft.start(self, "net", self._start_network)
            from dicamm.drivers import startup
            self.start("watchdog", startup.watchdog)
        self.start("time", self.timekeeper.run)
        if self.setup_meter():
            self.start("metering", self.metering.run)
            self.watch("meter watch", "meter", self._meter_fault, 200)
            from dicamm.services.loadprofile import LoadProfile
            self.loadprofile = LoadProfile(self.journal("qh", self.config.get("storage.qh_max_bytes")),
                                           self.metering, self.timekeeper, self.clock, self.info)
            self.start("load profile", self.loadprofile.run)
        self.start_extras()
        gc.collect()
        self.start("console", self.console.run)
        while True:
            await asyncio.sleep_ms(60000)

    def _start_network(self):
        from dicamm.drivers.netif import keep_up
        self.start("network", lambda: keep_up(self))

    def start_extras(self):
        # The gateway link (TAF16) and MQTT are optional for metering: each
        # fails soft (services/failsoft.py); control always starts.
        from dicamm.services.commands import Commands
        from dicamm.services import failsoft
        self.commands = Commands(self)
        failsoft.start(self, "taf16", self.start_taf16)
        self.start_control()
        failsoft.start(self, "mqtt", self.start_mqtt)
        failsoft.start(self, "update", lambda: confirm.start(self))

    def file_path(self, name):
        # Certificate and key paths in the config, on the device's filesystem.
        from dicamm.drivers.fsutil import under_root
        return under_root(self.root, name)

    # -- TAF16 events and transactions -----------------------------------
    def start_taf16(self):
        from dicamm.drivers.txstore import Transactions, load_or_create_key
        cfg, m = self.config, self.metering
        self.transactions = Transactions(self.journal("tx", cfg.get("storage.events_max_bytes")),
                                         load_or_create_key(self.path("device.key")),
                                         ("DICAMM", cfg.get("device_id") or cfg.get("cls_id") or "", VERSION),
                                         self.path("data/tx.open"), decimals=m.decimals if m else 3)
        if cfg.get("han.url") and cfg.get("cls_id"):
            from dicamm.drivers.han_client import HanClient
            from dicamm.services.outbox import Outbox
            try:
                han = HanClient.from_config(cfg, self.file_path, self.boundary_gate())
            except DicammError as e:
                self.fault("taf16", "HAN link: %s" % e)
            else:
                han.prepare()
                ob = self.outbox = Outbox.from_config(cfg, han, self.path("data"), self.clock, self.storage)
                self.journals["outbox"], self.journals["acks"] = ob.events, ob.acks
                self.start("outbox", ob.run)
                self.watch("gateway watch", "taf16", ob.fault_text, 500)
        else:
            self.fault("taf16", "not configured: set cls_id and han.url")
        from dicamm.services.transactions import TransactionService
        svc = self.tx_service = TransactionService(self.transactions, self.timekeeper, m, self.outbox, self.info,
                                                   self.fault, self.boundary_gate())
        svc.start()
        self.start("tx signer", svc.run)

    def on_transition(self, ev):
        # The controller's edges; without the transactions service switching goes on unrecorded (taf16 fault).
        if self.tx_service is not None:
            self.tx_service.on_transition(ev)

    def raise_event(self, text, kind, reading_wh=None):
        if self.tx_service is None:
            from dicamm.errors import CommandError
            raise CommandError("TAF16 events are off: see the taf16 fault")
        return self.tx_service.raise_event(text, kind, reading_wh)

    # -- control ---------------------------------------------------------
    def start_control(self):
        from dicamm.drivers import hw
        from dicamm.drivers.fsutil import store
        from dicamm.services.control import Controller
        output = hw.relay_output(self.board, self.root or "/", self.clock.wall_ms, self.config)
        contact = hw.dso_contact(self.board, self.root or "/", self.config)
        c = Controller(output, self.clock, self.timekeeper, self.config, self.on_transition,
                       store(self.path("schedule.json")), self.boundary_gate(), store(self.path("dso.json")), contact)
        self.controller = c
        for line in (c.schedule.load_error, c.restored):
            if line:
                self.info(line)
        if contact is not None:
            self.start("grid contact", c.watch_contact)
        if self.metering is not None:
            m = self.metering
            m.listeners.append(lambda r: c.update_meter(r, m.asked_ticks))
        self.start("control", c.run)
        self.watch("element watch", "element", c.element_fault, 500)
        self.watch("grid watch", "dso", c.grid.fault, 500)

    # -- MQTT ------------------------------------------------------------
    def start_mqtt(self):
        cfg = self.config
        if not cfg.get("mqtt.host"):
            return
        from dicamm.drivers import fsutil, txstore
        from dicamm.services import device_info
        from dicamm.services.mqtt_link import MqttLink
        from dicamm.services.mqtt_streams import gateway_record
        lp = self.loadprofile
        sources = {"qh": lp.journal if lp else None,
                   "event": self.outbox.events if self.outbox else None,
                   "event/gateway": self.outbox.acks if self.outbox else None,
                   "tx": self.transactions.journal if self.transactions else None,
                   "state": self.state_dict, "reading": self.metering.good_reading if self.metering else lambda: None,
                   "stamp": self.timekeeper.stamp, "cursor_path": self.path("data/mqtt.cursor"),
                   "log": self.info, "read_file": lambda p: fsutil.read(self.file_path(p)),
                   "decode": {"event/gateway": gateway_record, "tx": txstore.decode}}
        sources.update(device_info.sources(self))  # identity and health
        if lp is not None:
            from dicamm.services.loadprofile import decode
            sources["decode"]["qh"] = decode
        self.mqtt = MqttLink(cfg, cfg.get("device_id") or "dicamm", self.commands, sources, self.clock,
                             self.boundary_gate())
        self.start("mqtt", self.mqtt.run)

    def state_dict(self):
        c = self.controller
        st = c.state() if c is not None else {"relay": "off", "faults": []}
        st["faults"] = sorted(self.faults) + st["faults"]
        st["time_status"] = self.timekeeper.status()
        st["firmware"] = VERSION
        return st


def run(board, opts):
    app = App(board, opts)
    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        pass
    except Exception as e:
        if board.get("chip") is None:
            raise
        # On a board a fatal error counts as a crash and resets; three in a
        # row and boot.py starts in safe mode.
        sys.print_exception(e)
        from dicamm.drivers import startup
        startup.crash_reset()
    return app
