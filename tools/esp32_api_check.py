#!/usr/bin/env python3
"""ESP32 API check: the firmware modules that run on the board and use machine,
network, esp32, esp, os, time, socket, select, ssl or tls are type-checked with mypy
against MicroPython's ESP32 stubs (micropython-esp32-esp32-generic-stubs and
micropython-stdlib-stubs, pinned in requirements-host.txt, installed by tools/setup.sh
into build/esp32-stubs). A call the ESP32 port does not have (an unknown function or
attribute, a keyword argument the port does not take, a module it lacks) is reported;
mypy's other complaints (types of the unannotated firmware's own values) are not.

  tools/esp32_api_check.py [FILE ...]     (default: the board's modules; exit 1 on findings)

Left out, with the reason: UNIX_ONLY. Stub gaps (the stubs lack what the port has)
are KNOWN_STUB_GAPS, each with the line of the port's source that shows the port has
it; host_tests/test_esp32_api.py checks that against the pinned MicroPython source.
"""
import ast
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
STUBS = os.path.join(ROOT, "build", "esp32-stubs")
API_MODULES = {"machine", "network", "esp32", "esp", "os", "time", "socket", "select", "ssl", "tls"}
# mypy's codes for "the port has no such thing"
API_CODES = {"attr-defined", "call-arg", "call-overload", "import-not-found", "name-defined"}
# firmware files (relative to firmware/) that never run on a board
UNIX_ONLY = {
    "dicamm/drivers/posix_serial.py": "termios serial port of the unix port; hw.meter_port takes it only "
                                      "on unix or a board without a chip, a board gets uart_rs485",
}
# modules that are not MicroPython's: board.py is boards/<name>.py, copied by make deploy
OWN_MODULES = ("board",)
# (mypy's message, file in the MicroPython source, text there that shows the port has it)
KNOWN_STUB_GAPS = [
    ('Unexpected keyword argument "mdc" for "LAN"', "ports/esp32/network_lan.c", "MP_QSTR_mdc,"),
    ('Unexpected keyword argument "mdio" for "LAN"', "ports/esp32/network_lan.c", "MP_QSTR_mdio,"),
    ('"SSLContext" has no attribute "verify_mode"', "extmod/modtls_mbedtls.c", "attr == MP_QSTR_verify_mode"),
    # (asyncio's StreamWriter.s, the socket han_client polls and asks for its cipher, is no
    # longer seen by mypy: the kept connection is an untyped tuple since the HAN keep-alive)
]
_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<msg>.*?)  \[(?P<code>[a-z-]+)\]$")


def imported(path):
    # every module name an import in the file names (top level and inside functions)
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def board_modules():
    # the firmware files that run on a board and touch the ESP32 API
    out = []
    for d, _, files in os.walk(FIRMWARE):
        for name in sorted(files):
            p = os.path.join(d, name)
            rel = os.path.relpath(p, FIRMWARE)
            if name.endswith(".py") and rel not in UNIX_ONLY and imported(p) & API_MODULES:
                out.append(p)
    return sorted(out)


def run_mypy(files, stubs=STUBS):
    # -> [(path, line, code, message)] for errors in `files` (none from the stubs themselves)
    if not os.path.isfile(os.path.join(stubs, "machine.pyi")):
        raise SystemExit("ESP32 stubs missing in %s: run make setup" % stubs)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "mypy.ini")
        with open(cfg, "w") as f:
            f.write("[mypy]\n")
            for m in OWN_MODULES:
                f.write("[mypy-%s]\nignore_missing_imports = True\n" % m)
        env = dict(os.environ, MYPYPATH=os.pathsep.join([stubs, FIRMWARE]))
        r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", cfg, "--custom-typeshed-dir", stubs,
                            "--follow-imports=silent", "--check-untyped-defs", "--no-error-summary",
                            "--show-error-codes", "--no-color-output", "--no-pretty", "--cache-dir",
                            os.path.join(tmp, "cache")] + list(files),
                           capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode not in (0, 1) or "error: " not in r.stdout and r.returncode:
        raise SystemExit("mypy failed (%d): %s%s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    wanted = {os.path.realpath(p) for p in files}
    found = []
    for line in r.stdout.splitlines():
        m = _LINE.match(line)
        if m and os.path.realpath(os.path.join(ROOT, m["path"])) in wanted:
            found.append((m["path"], int(m["line"]), m["code"], m["msg"]))
    return found


def api_findings(found):
    # the findings that name a call the ESP32 port does not have
    gaps = [g[0] for g in KNOWN_STUB_GAPS]
    return [f for f in found if f[2] in API_CODES and f[3] not in gaps]


def main(argv=None):
    files = (argv if argv is not None else sys.argv[1:]) or board_modules()
    bad = api_findings(run_mypy(files))
    for path, line, code, msg in bad:
        print("%s:%d: %s [%s]" % (path, line, msg, code))
    print("esp32 api check: %d files, %d findings" % (len(files), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
