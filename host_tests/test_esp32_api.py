# The ESP32 API check (tools/esp32_api_check.py): the firmware's board modules call
# only what MicroPython's ESP32 port has, by mypy against the port's stubs. The check
# itself is tested: it fails on made-up calls and passes the real ones.
import glob
import os
import tarfile

import pytest

import esp32_api_check as api
from conftest import FIRMWARE, ROOT


@pytest.fixture(scope="module")
def firmware_findings():
    return api.run_mypy(api.board_modules())


def test_board_modules_call_only_the_esp32_api(firmware_findings):
    bad = api.api_findings(firmware_findings)
    assert bad == [], "\n".join("%s:%d: %s [%s]" % f for f in bad)


def test_scope_is_every_module_that_touches_the_api_but_the_unix_only_ones():
    files = {os.path.relpath(p, FIRMWARE) for p in api.board_modules()}
    for must in ("boot.py", "dicamm/drivers/hw.py", "dicamm/drivers/uart_rs485.py", "dicamm/drivers/netif.py",
                 "dicamm/drivers/han_client.py", "dicamm/drivers/tls_stream.py", "dicamm/drivers/startup.py", "dicamm/platform.py"):
        assert must in files, must
    for rel in api.UNIX_ONLY:
        assert os.path.exists(os.path.join(FIRMWARE, rel)), rel  # no stale exclusion
        assert rel not in files


def test_each_known_stub_gap_is_still_reported(firmware_findings):
    # a gap the stubs have closed (or the firmware no longer meets) must leave the list
    seen = {f[3] for f in firmware_findings}
    for msg, _, _ in api.KNOWN_STUB_GAPS:
        assert msg in seen, msg


def test_each_known_stub_gap_is_in_the_esp32_port_source():
    # the stubs lack it, but the pinned MicroPython source shows the port has it
    tars = glob.glob(os.path.join(os.path.dirname(ROOT), "shared", "micropython", "micropython-*.tar.xz"))
    if not tars:
        pytest.skip("no MicroPython source tarball in ../shared/micropython")
    wanted = {"micropython/" + g[1] for g in api.KNOWN_STUB_GAPS}
    text = {}
    with tarfile.open(tars[0]) as t:
        for m in t:
            if m.name in wanted:
                text[m.name[len("micropython/"):]] = t.extractfile(m).read().decode()
    for msg, path, needle in api.KNOWN_STUB_GAPS:
        assert needle in text.get(path, ""), (msg, path, needle)


# (code on the board, what the check must say; None: nothing)
CASES = [
    ("machine.UART(1, baudrate=9600, tx=17, rx=16, parity_bits=1)", 'Unexpected keyword argument "parity_bits"'),
    ("machine.UART(1, baudrate=9600, bits=8, parity=None, stop=1, tx=17, rx=16, rxbuf=512)", None),
    ("machine.WDT(timeout=8000)", None),
    ("machine.WDT(timeout_ms=8000)", 'Unexpected keyword argument "timeout_ms" for "WDT"'),
    ("machine.Pin(4, machine.Pin.OUT, value=0)", None),
    ("esp32.NVS('dicamm')", None),
    ("esp32.no_such_function()", 'has no attribute "no_such_function"'),
    ("network.WLAN(network.STA_IF).connect('ssid', 'key')", None),
    ("os.statvfs('/')", None),
    ("time.ticks_diff(time.ticks_ms(), 0)", None),
    ("tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).minimum_version", 'has no attribute "minimum_version"'),
    ("import termios", 'module named "termios"'),
]


@pytest.fixture(scope="module")
def case_findings(tmp_path_factory):
    # all cases in one file, one function each, so that one mypy run checks them all
    p = tmp_path_factory.mktemp("cases") / "board_code.py"
    lines = ["import esp32", "import machine", "import network", "import os", "import time", "import tls", ""]
    at = {}
    for i, (code, _) in enumerate(CASES):
        lines += ["", "def case_%d():" % i, "    " + (code if code.startswith("import ") else "x = " + code)]
        at[code] = len(lines)
    p.write_text("\n".join(lines) + "\n")
    return at, api.api_findings(api.run_mypy([str(p)]))


@pytest.mark.parametrize("code,want", CASES)
def test_the_check_catches_calls_the_port_lacks(case_findings, code, want):
    at, found = case_findings
    bad = [f for f in found if f[1] == at[code]]  # the findings on this case's line
    if want is None:
        assert bad == [], bad
    else:
        assert any(want in f[3] for f in bad), (want, bad)


def test_command_line_fails_on_a_made_up_uart_keyword(tmp_path, capsys):
    p = tmp_path / "bad.py"
    p.write_text("import machine\nu = machine.UART(1, baudrate=9600, parity_bits=1)\n")
    assert api.main([str(p)]) == 1
    assert 'Unexpected keyword argument "parity_bits"' in capsys.readouterr().out
