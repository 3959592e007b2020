#!/usr/bin/env python3
"""Deploy the DICAMM firmware to a board running MicroPython, with mpremote.

    tools/deploy.py --port PORT --board NAME [--dry-run] [--mip | --frozen] [--psram] [--config FILE]

Steps: compile with build_mpy into build/<board>/, then, each a separate
mpremote call:
  1. put the board into safe mode (file `safemode`, then machine.reset()), so
     neither the application nor the watchdog runs while files are copied;
  2. create lib/ and the package folders (build/<board>/deploy_prepare.py);
  3. copy the .mpy files folder by folder (unchanged files are skipped);
     the micropython-lib dependencies come from build/lib (`make setup`: the
     pinned MicroPython source's micropython-lib), or with --mip from
     `mpremote mip install umqtt.simple@VERSION` at that same version (needs
     internet on this host);
  4. copy boot.py, main.py, board.mpy and config.default.json to /;
  5. finish on the board (build/<board>/deploy_finish.py): delete .py files that would shadow the new .mpy,
     install config.default.json as config.json only if there is none, clear
     the crash counter and the safe-mode file;
  6. hard reset: the board starts the application.
--frozen: the board runs a MicroPython image with the firmware frozen in
(manifest.py; an ESP32 without PSRAM needs one, see docs/FLASHING.md): only
boot.py, main.py, board.mpy and the starter config are copied, and step 5
empties lib/dicamm and lib/umqtt, whose modules the frozen ones replace.
A board whose image is marked "frozen" (no PSRAM) needs --frozen, or --psram
for a variant of it that has PSRAM: as .mpy the firmware does not fit otherwise.
--dry-run builds, then prints every file ("file LOCAL :DEVICE") and every
mpremote command line ("run ...") without touching a device.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import build_mpy  # noqa: E402

MIP_DEPS = tuple("%s@%s" % (name, version) for name, version in build_mpy.DEPS)
STARTER = "config.default.json"

# Step 1: what the board runs to enter safe mode (see dicamm/drivers/startup.py).
_ENTER_SAFE = 'open("safemode","w").write("1");import machine;machine.reset()'
# Steps 2 and 5 run as small scripts written next to the build (never copied).
_PREPARE = """# deploy step 2 (generated): folders on the board
import os
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
"""
_FINISH = """# deploy step 5 (generated): finish on the board
import os


def rm(p):
    try:
        os.remove(p)
    except OSError:
        pass


KEEP = %r
for d in %r:  # stale modules; a .py beside a .mpy would even be imported first
    try:
        names = os.listdir(d)
    except OSError:  # not there (a frozen image never had it)
        continue
    for n in names:
        if d + "/" + n not in KEEP:
            rm(d + "/" + n)
rm("board.py")
if "config.json" in os.listdir():
    rm(%r)
else:
    os.rename(%r, "config.json")
rm("crash.count")
rm("safemode")
print("deploy: finished")
"""


def mpremote_exe():
    cand = os.path.join(os.path.dirname(sys.executable), "mpremote")
    if os.path.exists(cand):
        return os.path.relpath(cand, ROOT) if cand.startswith(ROOT + os.sep) else cand
    return "mpremote"


def rel(p):
    return os.path.relpath(p, ROOT)


def starter_config(board_name, out_dir, config_path=None):
    """Write the starter config into the build folder; returns its path."""
    dest = os.path.join(out_dir, STARTER)
    if config_path:
        with open(config_path) as f:
            data = json.load(f)  # refuse a config that is not JSON
    else:
        data = {}  # firmware defaults; commissioning sets the rest at the console
    with open(dest, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return dest


NEEDS_FROZEN = ("deploy: board %s has no PSRAM: as .mpy the firmware needs about 232 KiB of heap "
                "(measured on a 32-bit build, docs/FLASHING.md), MicroPython there has about 100. Flash "
                "an image built with manifest.py and deploy with --frozen; --psram if this board has PSRAM.")


def plan(port, board_name, use_mip=False, config_path=None, out_root=None, frozen=False, psram=False):
    """Build, then return (files, commands): files as (local, device path),
    commands as argument lists for subprocess (cwd = repo root)."""
    if frozen and use_mip:
        raise SystemExit("deploy: --frozen and --mip exclude each other (the image has the dependencies)")
    board, built = build_mpy.build(board_name, out_root)
    if board["chip"] is None:
        raise SystemExit("deploy: board %r is the unix port; nothing to deploy" % board_name)
    if board["firmware_image"].get("frozen") and not (frozen or psram):
        raise SystemExit(NEEDS_FROZEN % board_name)
    out_dir = os.path.join(out_root or os.path.join(ROOT, "build"), board_name)
    mp = [mpremote_exe(), "connect", port]
    dep_devs = set(dev for _, dev in build_mpy.dep_modules())
    files = []
    for local, dev in built:
        if use_mip and dev[:-4] in dep_devs:
            continue
        if frozen and dev.startswith("lib/"):
            continue
        files.append((local, dev))
    files.append((starter_config(board_name, out_dir, config_path), STARTER))

    # folders on the board, parents first
    folders = []
    for _, dev in files:
        parts = dev.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in folders:
                folders.append(d)
    by_folder = {}
    for local, dev in files:
        by_folder.setdefault(dev.rsplit("/", 1)[0] if "/" in dev else "", []).append(rel(local))

    prepare = os.path.join(out_dir, "deploy_prepare.py")
    finish = os.path.join(out_dir, "deploy_finish.py")
    with open(prepare, "w") as f:
        f.write(_PREPARE % (folders,))
    with open(finish, "w") as f:
        if frozen:  # the package folders an earlier .mpy deploy filled
            code_dirs = sorted(set(dev.rsplit("/", 1)[0] for _, dev in built if dev.startswith("lib/")) - {"lib"})
        else:
            code_dirs = [d for d in folders if d != "lib"]
        keep = sorted(dev for _, dev in files if "/" in dev and dev.rsplit("/", 1)[0] in code_dirs)
        f.write(_FINISH % (keep, code_dirs, STARTER, STARTER))
    cmds = [mp + ["exec", "--no-follow", _ENTER_SAFE]]
    cmds.append(mp + ["sleep", "3", "run", rel(prepare)])
    for folder in folders:
        if by_folder.get(folder):
            cmds.append(mp + ["cp"] + by_folder[folder] + [":" + folder + "/"])
    if use_mip:
        for dep in MIP_DEPS:
            cmds.append(mp + ["mip", "install", "--target", "lib", dep])
    cmds.append(mp + ["cp"] + by_folder[""] + [":"])
    cmds.append(mp + ["run", rel(finish)])
    cmds.append(mp + ["reset"])
    return files, cmds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True)
    ap.add_argument("--board", default=build_mpy.DEFAULT_BOARD)
    ap.add_argument("--dry-run", action="store_true", help="print files and mpremote commands only")
    ap.add_argument("--mip", action="store_true", help="dependencies via `mpremote mip install` (host internet)")
    ap.add_argument("--frozen", action="store_true",
                    help="the board's MicroPython has the firmware frozen in (manifest.py): no lib/ modules")
    ap.add_argument("--psram", action="store_true",
                    help="the board has PSRAM: the firmware as .mpy fits (boards marked frozen lack it)")
    ap.add_argument("--config", help="starter config (JSON) installed if the board has no config.json")
    ap.add_argument("--out", help="build root (default build/)")
    args = ap.parse_args(argv)
    files, cmds = plan(args.port, args.board, args.mip, args.config, args.out, args.frozen,
                       args.psram)
    if args.dry_run:
        for local, dev in files:
            print("file %s :%s" % (rel(local), dev))
        for c in cmds:
            print("run " + shlex.join(c))
        return 0
    for c in cmds:
        print("deploy: " + shlex.join(c)[:160], flush=True)
        r = subprocess.run(c, cwd=ROOT)
        if r.returncode != 0:
            print("deploy: failed (exit %d); the board stays in safe mode. Re-run deploy, or at the "
                  "console: import dicamm.drivers.startup as s; s.leave_safe_mode()" % r.returncode, file=sys.stderr)
            return r.returncode
    print("deploy: %d files on %s; the board restarts the application (make console PORT=%s)"
          % (len(files), args.port, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
