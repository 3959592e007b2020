# End to end on the MicroPython unix port: Meter + ModbusMaster + PosixSerial
# read every profile from the pymodbus meter emulator, and the values must be
# exactly the ones the emulator logged as served.
import json
import os
import subprocess
import sys

import pytest

from conftest import FIRMWARE, MICROPYTHON, ROOT

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

EMU = os.path.join(ROOT, "tools", "meter_emu.py")
JOBS = [(1, "sdm72dm", 9600), (2, "sdm630", 9600), (3, "abb_b21", 9600), (4, "abb_b23", 9600),
        (5, "em111", 9600), (9, "sdm120", 2400)]

SCRIPT = """
import sys
sys.path.insert(0, %(fw)r)
import asyncio, json
from dicamm.proto import profiles
from dicamm.drivers.posix_serial import PosixSerial
from dicamm.drivers.modbus import ModbusMaster
from dicamm.drivers.meter import Meter

async def main():
    out = []
    for unit, name, baud in %(jobs)r:
        port = PosixSerial(%(pty)r, baud, "N")
        master = ModbusMaster(port, 500, 1)
        m = Meter(master, profiles.get(name), unit)
        r = await m.read()
        r["ident"] = await m.identify()
        r["transactions"] = master.transactions
        port.close()
        out.append(r)
    print(json.dumps(out))

asyncio.run(main())
"""


def test_meter_reads_every_profile_on_micropython(tmp_path):
    log = str(tmp_path / "emu.log")
    args = [sys.executable, EMU, "--log", log, "--load", "constant:2345", "--import-wh", "12345678",
            "--export-wh", "4321"]
    for unit, name, baud in JOBS:
        args += ["--meter", "%d:%s:%d" % (unit, name, baud)]
    emu = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        pty = json.loads(emu.stdout.readline())["pty"]
        script = tmp_path / "read_meters.py"
        script.write_text(SCRIPT % {"fw": FIRMWARE, "jobs": JOBS, "pty": pty})
        r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        readings = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        emu.terminate()
        emu.wait(5)
    with open(log) as f:
        served = [json.loads(x) for x in f if x.strip()]
    for (unit, name, _baud), rd in zip(JOBS, readings):
        assert rd["model"] == name and rd["address"] == unit
        rows = [x for x in served if x["unit"] == unit and x["fault"] is None]
        for k in ("power_w", "import_wh", "export_wh"):
            last = [x[k] for x in rows if x[k] is not None][-1]
            assert rd[k] == last and isinstance(rd[k], int), (name, k, rd[k], last)
        assert rd["power_w"] == 2345
        assert abs(rd["import_wh"] - 12345678) <= 100 and abs(rd["export_wh"] - 4321) <= 100
        if "voltage_v" in rd:
            assert abs(rd["voltage_v"] - 230.0) < 0.2
        want_ident = None if name == "em111" else name
        assert rd["ident"] == want_ident, (name, rd["ident"])
        assert rd["transactions"] == (3 if name.startswith("abb") else 2) - (1 if want_ident is None else 0)
