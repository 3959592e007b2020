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
from micropython import const

_RESTART_MS = const(1000)       # pause before a failed task starts again
_TASK_QUIET_MS = const(600000)  # the "task" fault clears after this long without a failure


class App:
    def __init__(self, board, opts):
        self.board = board
        root = opts.get("root", "")
        self.root = root.rstrip("/") if root not in ("", "/") else ""
        self.clock = Clock(opts.get("speed", 1), opts.get("start_ms"), opts.get("epoch_ms"), opts.get("slow"))
        self.started = time.ticks_ms()
        self.log = RingLog()
        self.faults = {}
        self.tasks = []
        self.task_restarts = 0
        self.task_quiet_ms = _TASK_QUIET_MS
        self._task_fault_clearer = False
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
            from dicamm.drivers.journal import Journal
            from dicamm.drivers import fsutil
            d = self.path("data")
            fsutil.makedirs(d)
            j = Journal(d, name, max_bytes, min(8192, max_bytes // 4), self.storage)
            if j.recovered_torn:
                self.info("%s journal: dropped a torn last record after power loss" % name)
            self.journals[name] = j
        return j

    def boundary_gate(self):
        # The load profile's gate (None without a meter): long blocking steps
        # wait on it so that the quarter-hour reading comes first.
        lp = self.loadprofile
        return lp.gate if lp is not None else None

    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self.started) // 1000

    def start(self, name, run):
        # Runs the coroutine function `run` as a task that an unexpected error
        # (a MemoryError in a fragmented heap, a bug) does not end: the error
        # becomes the "task" fault and a log line, and the task starts again.
        t = asyncio.create_task(self._supervised(name, run))
        self.tasks.append(t)
        return t

    async def _supervised(self, name, run):
        while True:
            try:
                await run()
                return
            except Exception as e:  # CancelledError is no Exception: stop goes through
                self.task_restarts += 1
                try:
                    self.fault("task", "%s restarted after %s: %s" % (name, type(e).__name__, e))
                except MemoryError:  # not even room for the text: the restart matters more
                    pass
                e = None
                gc.collect()
                await asyncio.sleep_ms(_RESTART_MS)
                if not self._task_fault_clearer:
                    try:
                        asyncio.create_task(self._clear_task_fault())
                        self._task_fault_clearer = True
                    except MemoryError:
                        pass

    async def _clear_task_fault(self):
        # One clearer however often tasks fail: the fault stays while they keep
        # failing and clears after a quiet time without a new failure.
        n = None
        while n != self.task_restarts:
            n = self.task_restarts
            await asyncio.sleep_ms(self.task_quiet_ms)
        self.fault("task")
        self._task_fault_clearer = False

    # -- metering --------------------------------------------------------
    def setup_meter(self):
        cfg = self.config
        if not cfg.get("meter.model"):
            self.fault("meter", "not configured: 'meter set MODEL ADDRESS BAUD' or run 'setup'")
            return False
        try:
            from dicamm.drivers import hw
            from dicamm.drivers.meter import Meter, load_profile
            from dicamm.drivers.modbus import ModbusMaster
            profile = load_profile(cfg.get("meter.model"), self.path("meter_profile.json"))
            from dicamm.services.metering import Metering
            port = hw.meter_port(self.board, cfg)
            master = ModbusMaster(port, cfg.get("meter.timeout_ms"), cfg.get("meter.retries"))
            meter = Meter(master, profile, cfg.get("meter.address"))
            self.metering = Metering(master, meter, self.timekeeper, self.clock, cfg.get("meter.poll_s") * 1000)
        except (DicammError, OSError) as e:
            self.fault("meter", "cannot open: %s" % e)
            return False
        self.fault("meter")
        return True

    def watch(self, name, fault, state, period_ms):
        # A task that turns a service's state into a fault that status and MQTT
        # see: every period, fault(fault, state()) (None clears it).
        async def run():
            while True:
                self.fault(fault, state())
                await asyncio.sleep_ms(period_ms)
        self.start(name, run)

    def _meter_fault(self):
        m = self.metering  # before the first reading (not ok, no error) the fault stays as it is
        return None if m.ok else m.last_error or self.faults.get("meter")

    # -- start-up --------------------------------------------------------
    async def main(self):
        from dicamm.console.cli import Console
        self.console = Console(self)
        self.register_extras()
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
        from dicamm.drivers import netif
        self.start("network", lambda: netif.keep_up(self))

    def register_extras(self):
        # The console's groups, loaded once now (console/table.py preload);
        # a missing one is the "console" fault, the others answer.
        from dicamm.console import table
        from dicamm.services.failsoft import describe
        gone = table.preload(self.info)
        if gone:
            self.fault("console", "group %s" % "; ".join("%s: %s" % (n, describe(e)) for n, e in gone))

    def start_extras(self):
        # The gateway link (TAF16) and MQTT are optional for metering: each
        # fails soft (services/failsoft.py); control always starts.
        from dicamm.services.commands import Commands
        from dicamm.services import failsoft
        self.commands = Commands(self)
        failsoft.start(self, "taf16", self.start_taf16)
        self.start_control()
        failsoft.start(self, "mqtt", self.start_mqtt)

    def file_path(self, name):
        # Certificate and key paths in the config are relative to the device
        # filesystem's root (the --root folder on the unix port).
        if not name:
            return name
        if self.root and name.startswith("/") and not name.startswith(self.root + "/"):
            return self.root + name
        return name if name.startswith("/") else self.path(name)

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
                han = None
                self.fault("taf16", "HAN link: %s" % e)
            if han is not None:
                self.outbox = Outbox(self.path("data"), self.clock, han.post_event,
                                     cfg.get("storage.outbox_max_bytes"), cfg.get("storage.segment_bytes"),
                                     self.storage, cfg.get("cls_id"), gate=self.boundary_gate(), link=han)
                self.journals["outbox"] = self.outbox.events
                self.journals["acks"] = self.outbox.acks
                self.start("outbox", self.outbox.run)
                ob = self.outbox

                def state():
                    # Gateway link problems (refused certificate, timeouts, HTTP
                    # errors) and the outbox alarm become the "taf16" fault.
                    if ob.alarm:
                        return ob.alarm
                    if ob.last_error and ob.pending():
                        return "gateway: %s (%d pending)" % (ob.last_error, ob.pending())
                self.watch("gateway watch", "taf16", state, 500)
        else:
            self.fault("taf16", "not configured: set cls_id and han.url")
        from dicamm.services.transactions import TransactionService
        svc = TransactionService(self.transactions, self.timekeeper, m, self.outbox, self.info, self.fault)
        self.tx_service = svc
        svc.recover()
        if m is not None:
            m.listeners.append(lambda r: svc.note_reading())
            m.identity_listeners.append(svc.meter_exchanged)

    def on_transition(self, ev):
        # The controller's edges; without the transactions service (its start
        # failed soft) switching goes on unrecorded, and the taf16 fault says why.
        if self.tx_service is not None:
            self.tx_service.on_transition(ev)

    def raise_event(self, text, kind, reading_wh=None):
        if self.tx_service is None:
            from dicamm.errors import CommandError
            raise CommandError("TAF16 events are off: see the taf16 fault")
        return self.tx_service.raise_event(text, kind, reading_wh)

    # -- control ---------------------------------------------------------
    def start_control(self):
        from dicamm.drivers import fsutil, hw
        from dicamm.services.control import Controller
        output = hw.relay_output(self.board, self.root or "/", self.clock.wall_ms, self.config)
        p, q = self.path("schedule.json"), self.path("dso.json")
        contact = hw.dso_contact(self.board, self.root or "/", self.config)
        c = Controller(output, self.clock, self.timekeeper, self.config, self.on_transition,
                       (lambda b: fsutil.write_atomic(p, b), lambda: fsutil.read(p)), self.boundary_gate(),
                       (lambda b: fsutil.write_atomic(q, b), lambda: fsutil.read(q)), contact)
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
        def _gateway_record(seq, payload):
            # An acks-journal entry {"n": event seq, "r": gateway record} as the
            # backend reads it: which event, its UUID, and the gateway's record.
            import json
            a = json.loads(payload)
            r = a.get("r") or {}
            return {"seq": seq, "event_seq": a.get("n"), "uuid": r.get("uuid"), "record": r}

        cfg = self.config
        if not cfg.get("mqtt.host"):
            return
        from dicamm.drivers import fsutil, txstore
        from dicamm.services import device_info
        from dicamm.services.mqtt_link import MqttLink
        lp = self.loadprofile
        sources = {"qh": lp.journal if lp else None,
                   "event": self.outbox.events if self.outbox else None,
                   "event/gateway": self.outbox.acks if self.outbox else None,
                   "tx": self.transactions.journal if self.transactions else None,
                   "state": self.state_dict, "reading": self._mqtt_reading,
                   "stamp": self.timekeeper.stamp, "cursor_path": self.path("data/mqtt.cursor"),
                   "log": self.info, "read_file": lambda p: fsutil.read(self.file_path(p)),
                   "decode": {"event/gateway": _gateway_record, "tx": txstore.decode}}
        sources.update(device_info.sources(self))  # identity and health
        if lp is not None:
            from dicamm.services.loadprofile import decode
            sources["decode"]["qh"] = decode
        self.mqtt = MqttLink(cfg, cfg.get("device_id") or "dicamm", self.commands, sources, self.clock,
                             self.boundary_gate())
        self.start("mqtt", self.mqtt.run)

    def _mqtt_reading(self):
        m = self.metering
        return m.reading if m is not None and m.ok else None

    def state_dict(self):
        from dicamm import VERSION
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
