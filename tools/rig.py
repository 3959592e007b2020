"""The bench rig: the firmware on the MicroPython unix port with every
emulator around it, all on one simulated clock.

    meter emulator (pymodbus, pty)  <-- Modbus RTU -->  firmware  <-- console (stdin/stdout)
    SNTP emulators (gateway + servers, UDP)  <-- SNTP --'   |  '-- HTTPS mTLS --> HAN emulator
    relay.gpio (file) <-- emulated relay ------------------'   '-- MQTT --> mosquitto (optional)

Used by `make sim`, the benchmark, the fault campaign and the end-to-end tests.
Everything listens on 127.0.0.1 only.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from fwproc import PY_HEAP, Firmware  # noqa: E402
from simclock import SimClock  # noqa: E402

PY = sys.executable
QH_MS = 900_000


def day_start_ms(date_text):
    """Unix ms of 00:00 UTC on YYYY-MM-DD."""
    import datetime
    d = datetime.datetime.strptime(date_text, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp()) * 1000


def _read_json_line(proc, timeout=20):
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            try:
                return json.loads(line)
            except ValueError:
                continue
        if proc.poll() is not None:
            break
    raise RuntimeError("emulator gave no start line (%r); exit %s" % (line, proc.poll()))


def read_jsonl(path):
    """The JSON lines of a file an emulator appends to; a torn last line is skipped."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return out


def merge(base, extra):
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


_PKI_LOCK = threading.Lock()

class Rig:
    def __init__(self, workdir, speed=1, start_ms=None, meters=("1:sdm630",), load="day",
                 element_w=3000, element_broken=False, wire_timing=False, meter_faults=(),
                 sntp=("good", "good", "good"), han="tls", mqtt=False, heap=PY_HEAP,
                 config=None, import_wh=1_000_000, seed=1, lead_ms=1500, slow=None, meter_serial=None,
                 stages_w=None):
        self.workdir = os.path.abspath(str(workdir))
        self.root = os.path.join(self.workdir, "device")
        os.makedirs(self.root, exist_ok=True)
        now = time.time_ns() // 1_000_000
        # slow: (speed, lead ms, tail ms) of slow motion around each quarter-hour boundary
        # (dicamm.proto.simtime), for tests that need every boundary read within its 9 s at any load
        self.clock = SimClock(speed, start_ms if start_ms is not None else now, now + lead_ms, slow)
        self.meters = list(meters)
        self.load = load
        self.element_w = element_w
        self.element_broken = element_broken
        self.stages_w = list(stages_w) if stages_w else None   # a staged element (relay.stages_w)
        self.wire_timing = wire_timing
        self.meter_faults = list(meter_faults)
        self.sntp_modes = list(sntp or ())
        self.han_mode = han
        self.use_mqtt = mqtt
        self.heap = heap
        self.config_extra = config or {}
        self.import_wh = import_wh
        self.meter_serial = meter_serial  # the emulated meter's serial number (its default if None)
        self.seed = seed
        self.procs = []
        self.sntp_ports = []
        self.sntp_controls = []
        self.han_port = None
        self.broker = None
        self.fw = None
        self.pty = None
        self.meter_log = os.path.join(self.workdir, "meter.log")
        self.meter_ctl = os.path.join(self.workdir, "meter.sock")
        self.han_store = os.path.join(self.workdir, "han_store.jsonl")
        self.han_ctl = os.path.join(self.workdir, "han_control.json")
        self.pki = os.path.join(self.workdir, "pki")

    # -- emulators -----------------------------------------------------------
    def _spawn(self, argv):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.workdir)
        self.procs.append(p)
        return p

    def start_meter(self):
        argv = [PY, os.path.join(HERE, "meter_emu.py"), "--load", self.load, "--log", self.meter_log,
                "--control", self.meter_ctl, "--relay-file", os.path.join(self.root, "relay.gpio"),
                "--element-w", str(self.element_w), "--import-wh", str(self.import_wh),
                "--seed", str(self.seed)] + self.clock.args()
        for m in self.meters:
            argv += ["--meter", m]
        if self.meter_serial:
            argv += ["--serial", self.meter_serial]
        if self.element_broken:
            argv.append("--element-broken")
        if self.stages_w:
            argv += ["--stages-w", ",".join(str(w) for w in self.stages_w)]
        if self.wire_timing:
            argv.append("--wire-timing")
        for f in self.meter_faults:
            argv += ["--fault", f]
        p = self._spawn(argv)
        self.pty = _read_json_line(p)["pty"]
        self.meter_proc = p

    def start_sntp(self):
        for i, mode in enumerate(self.sntp_modes):
            ctl = os.path.join(self.workdir, "sntp%d.mode" % i)
            with open(ctl, "w") as f:
                f.write(mode)
            p = self._spawn([PY, os.path.join(HERE, "sntp_emu.py"), "--port", "0", "--mode", mode,
                             "--control", ctl] + self.clock.args())
            self.sntp_ports.append(_read_json_line(p)["port"])
            self.sntp_controls.append(ctl)

    def start_han(self):
        if not self.han_mode:
            return
        with _PKI_LOCK:  # rigs in threads (the bench) sharing a PKI folder: generated once, not twice at once
            if not os.path.exists(os.path.join(self.pki, "ca.der")):
                r = subprocess.run(["sh", os.path.join(HERE, "mkpki.sh"), self.pki],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    raise RuntimeError("mkpki.sh %s failed: %s" % (self.pki, r.stderr.strip()[-400:]))
        with open(self.han_ctl, "w") as f:
            json.dump({"mode": "ok"}, f)
        argv = [PY, os.path.join(HERE, "han_emu.py"), "--port", "0", "--pki", self.pki, "--store", self.han_store,
                "--meter-log", self.meter_log, "--control", self.han_ctl, "--quiet"] + self.clock.args()
        if self.han_mode == "plain":
            argv.append("--plain")
        p = self._spawn(argv)
        self.han_port = _read_json_line(p)["port"]
        certs = os.path.join(self.root, "certs")
        os.makedirs(certs, exist_ok=True)
        for name in ("ca.pem", "device.pem", "device.key.pem"):
            shutil.copy(os.path.join(self.pki, name), os.path.join(certs, name))

    def start_broker(self):
        if not self.use_mqtt:
            return
        from broker import Broker
        os.makedirs(os.path.join(self.workdir, "broker"), exist_ok=True)
        self.broker = Broker(workdir=os.path.join(self.workdir, "broker"))
        self.broker.start()

    # -- firmware ------------------------------------------------------------
    def device_config(self):
        cfg = {"device_id": "dicamm-bench", "cls_id": "CLS-BENCH-0001",
               "meter": {"port": self.pty, "model": self.meters[0].split(":")[1],
                         "address": int(self.meters[0].split(":")[0]), "timeout_ms": 300, "retries": 2},
               "time": {"servers": ["127.0.0.1:%d" % p for p in self.sntp_ports[1:]],
                        "gateway": "127.0.0.1:%d" % self.sntp_ports[0] if self.sntp_ports else ""},
               # the meter emulator follows the relay file every 20 real ms (more under load):
               # at 1440x the element's power shows up tens of device seconds after the switch
               "relay": {"min_on_s": 120, "min_off_s": 120, "max_cycles_per_h": 6,
                         "nominal_w": self.stages_w[-1] if self.stages_w else self.element_w,
                         "plausibility_s": min(600, max(30, self.clock.speed // 5))}}
        if self.stages_w:
            cfg["relay"]["stages_w"] = self.stages_w
        if len(self.meters[0].split(":")) > 2:
            cfg["meter"]["baud"] = int(self.meters[0].split(":")[2])
        if self.han_port:
            scheme = "http" if self.han_mode == "plain" else "https"
            cfg["han"] = {"url": "%s://127.0.0.1:%d/taf16" % (scheme, self.han_port),
                          "ca": "certs/ca.pem", "cert": "certs/device.pem", "key": "certs/device.key.pem",
                          "plain_http": self.han_mode == "plain", "timeout_ms": 3000}
        if self.broker is not None:
            cfg["mqtt"] = {"host": "127.0.0.1", "port": self.broker.port, "meter_period_s": 60}
        return merge(cfg, self.config_extra)

    def write_config(self):
        # Once per rig: a restarted firmware keeps what it saved itself.
        if getattr(self, "_config_written", False):
            return
        with open(os.path.join(self.root, "config.json"), "w") as f:
            json.dump(self.device_config(), f)
        self._config_written = True

    def start_firmware(self, wait_ready=True):
        # wait_ready: return once the console answers (every check after that sees a
        # running firmware); False for tests that cut the power at any moment, boot included.
        self.write_config()
        self.fw = Firmware(self.root, clock=self.clock, heap=self.heap).start()
        if wait_ready:
            self.ready = self.fw.wait_ready()
        return self.fw

    def start(self, firmware=True):
        self.start_meter()
        self.start_sntp()
        self.start_han()
        self.start_broker()
        if firmware:
            self.start_firmware()
        return self

    def restart_firmware(self, kill=True, wait_ready=True):
        if self.fw is not None:
            self.fw.kill() if kill else self.fw.stop()
        return self.start_firmware(wait_ready)

    # -- control of the emulators -------------------------------------------
    def meter_control(self, obj):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.meter_ctl)
        s.sendall((json.dumps(obj) + "\n").encode())
        reply = s.recv(4096)
        s.close()
        return json.loads(reply.decode().splitlines()[0]) if reply else None

    def set_sntp(self, index, mode):
        with open(self.sntp_controls[index] + ".new", "w") as f:
            f.write(mode)
        os.replace(self.sntp_controls[index] + ".new", self.sntp_controls[index])

    def sntp_stats(self, index):
        """What SNTP emulator `index` saw: {"requests": N, "times_ms": [simulated ms, ...]}."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        try:
            s.sendto(b"stats", ("127.0.0.1", self.sntp_ports[index]))
            return json.loads(s.recv(65535).decode())
        finally:
            s.close()

    def set_han(self, mode, **extra):
        d = {"mode": mode}
        d.update(extra)
        with open(self.han_ctl + ".new", "w") as f:
            json.dump(d, f)
        os.replace(self.han_ctl + ".new", self.han_ctl)

    # -- what the emulators saw ---------------------------------------------
    def set_contact(self, text):
        """The control box contact on the unix port: dso.contact under the root holds
        "1" (closed) or "0" (open); anything else, or None (no file), is an input fault."""
        path = os.path.join(self.root, "dso.contact")
        if text is None:
            if os.path.exists(path):
                os.remove(path)
            return
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)

    def meter_reads(self):
        """Every read the meter emulator served (its log), oldest first."""
        return read_jsonl(self.meter_log)

    def gateway_events(self):
        """Every event the HAN emulator stored, in arrival order."""
        return read_jsonl(self.han_store)

    def device_now_ms(self):
        return self.clock.now_ms()

    def wait_device_ms(self, unix_ms, poll=0.05):
        while self.clock.now_ms() < unix_ms:
            time.sleep(min(poll, max(0.001, self.clock.real_seconds((unix_ms - self.clock.now_ms()) / 1000))))

    def stop(self):
        if self.fw is not None:
            self.fw.stop()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
