# MicroPython side of host_tests/test_mqtt_mp.py: runs MqttLink against a real
# broker with stand-in journals (text files the test appends to), a stand-in
# Commands and a fast device clock. Writes status.json every 100 ms and stops
# when the file "stop" appears. Usage: micropython mqtt_agent.py WORKDIR
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/../firmware")
sys.path.insert(0, _here + "/../build/lib")

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import asyncio  # noqa: E402

from dicamm.drivers.clock import Clock  # noqa: E402
from dicamm.errors import CommandError  # noqa: E402
from dicamm.services.mqtt_link import MqttLink  # noqa: E402

WORK = sys.argv[1]


def path(name):
    return WORK + "/" + name


class FileJournal:
    # One record per line: "<seq> <payload>". Contract of dicamm.drivers.journal.Journal:
    # records(from_seq) iterates (seq, payload); first_seq, next_seq.
    def __init__(self, p):
        self.p = p
        self._size = -1
        self._recs = []

    def _load(self):
        try:
            size = os.stat(self.p)[6]
        except OSError:
            size = 0
        if size != self._size:
            recs = []
            if size:
                with open(self.p, "rb") as f:
                    for line in f.read().split(b"\n"):
                        if line:
                            seq, _, payload = line.partition(b" ")
                            recs.append((int(seq), payload))
            self._recs = recs
            self._size = size
        return self._recs

    @property
    def first_seq(self):
        r = self._load()
        return r[0][0] if r else self.next_seq

    @property
    def next_seq(self):
        r = self._load()
        return r[-1][0] + 1 if r else 0

    def records(self, from_seq=0):
        for seq, payload in self._load():
            if seq >= from_seq:
                yield seq, payload


class Commands:
    def __init__(self):
        self.relay = "off"

    def execute(self, name, args, via="c"):
        assert via == "m", via   # the link issues commands as the MQTT channel
        if name == "setpoint" and args.get("power_w", 0) > 50000:
            raise CommandError("power_w above the element's 50000 W")
        with open(path("executed.log"), "a") as f:
            f.write(json.dumps([name, args]) + "\n")
        if name == "relay":
            self.relay = args["mode"]
        return {"done": name}


class Config:
    def __init__(self, d):
        self.d = d

    def get(self, key):
        return self.d.get(key)


async def heartbeat(stats):
    # The loop's responsiveness while the link connects, sends or fails.
    while True:
        t = time.ticks_ms()
        await asyncio.sleep_ms(20)
        lag = time.ticks_diff(time.ticks_ms(), t) - 20
        if lag > stats["max_lag_ms"]:
            stats["max_lag_ms"] = lag


def write_status(link, stats):
    st = link.status()
    st.update(stats)
    with open(path("status.tmp"), "w") as f:
        f.write(json.dumps(st))
    os.rename(path("status.tmp"), path("status.json"))


async def main():
    with open(path("config.json")) as f:
        opts = json.load(f)
    clock = Clock(speed=opts.get("speed", 1), start_ms=opts.get("start_ms"))
    cmds = Commands()
    energy = [1000]

    def reading():
        energy[0] += 7
        return {"power_w": 2000 if cmds.relay == "on" else 0, "import_wh": energy[0], "export_wh": 0}

    def state():
        return {"relay": cmds.relay, "mode": "backend" if cmds.relay != "auto" else "auto",
                "faults": [], "time_status": "S", "version": "test"}

    sources = {"reading": reading, "state": state, "cursor_path": path("mqtt.cursor"),
               "stamp": lambda: (clock.wall_ms(), "S"), "log": lambda t: print(t)}
    for name in ("qh", "event", "tx"):
        sources[name] = FileJournal(path(name + ".jnl"))
    link = MqttLink(Config(opts["config"]), opts["device_id"], cmds, sources, clock)
    stats = {"max_lag_ms": 0}
    task = asyncio.create_task(link.run())
    hb = asyncio.create_task(heartbeat(stats))
    while True:
        write_status(link, stats)
        try:
            os.stat(path("stop"))
            break
        except OSError:
            pass
        await asyncio.sleep_ms(100)
    link.stop()
    task.cancel()
    hb.cancel()
    write_status(link, stats)


asyncio.run(main())
