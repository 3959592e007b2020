#!/usr/bin/env python3
"""Write MicroPython itself to a board with esptool (erase, then write).

    tools/flash.py --port PORT --board NAME --image FILE [--sha256 HEX] [--dry-run]

The image is the board's MicroPython firmware (boards/<NAME>.py, key
firmware_image), downloaded by hand from the MicroPython download page. It is
written only if its sha256 matches --sha256 or the pinned table below; this
tool downloads nothing. --dry-run prints the esptool command lines (with
--image it also checks the image).
"""
import argparse
import hashlib
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_mpy  # noqa: E402

BAUD = 460800
# Where the image goes: the ESP32 has its second-stage bootloader at 0x1000,
# the S3 and C3 at 0x0; MicroPython's .bin images start with it.
OFFSET = {"esp32": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0"}
# Images checked once against the download page: file name -> sha256. Add a
# line when the project moves to a new MicroPython release.
PINNED = {
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def check_image(path, board, expected=None, force=False):
    """Raise SystemExit unless the image fits the board and its sha256 is known."""
    if not os.path.isfile(path):
        raise SystemExit("flash: no image file %s" % path)
    img = board["firmware_image"]
    base = os.path.basename(path)
    if not (base.startswith(img["name"] + "-") or base.startswith(img["name"] + ".")) and not force:
        built = (" built with the firmware frozen in (manifest.py; the build names it firmware.bin)"
                 if img.get("frozen") else "")
        raise SystemExit("flash: %s is not a %s image (board %s needs %s v%s%s); --force to write it anyway"
                         % (base, img["name"], board["name"], img["name"], img["version"], built))
    if "v" + img["version"] not in base:
        print("flash: warning: %s is not v%s; .mpy files need the same MicroPython major release"
              % (base, img["version"]), file=sys.stderr)
    got = sha256_file(path)
    want = (expected or PINNED.get(base) or "").lower()
    if not want:
        raise SystemExit("flash: %s has sha256 %s; compare it with the MicroPython download page and "
                         "pass --sha256 %s" % (base, got, got))
    if got != want:
        raise SystemExit("flash: sha256 mismatch for %s: %s, expected %s" % (base, got, want))
    return got


def esptool_cmds(chip, port, image, baud=BAUD, erase=True):
    esptool = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud)]
    cmds = []
    if erase:
        cmds.append(esptool + ["erase-flash"])
    cmds.append(esptool + ["write-flash", OFFSET[chip], image])
    return cmds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True)
    ap.add_argument("--board", default=build_mpy.DEFAULT_BOARD)
    ap.add_argument("--image", help="MicroPython .bin for the board")
    ap.add_argument("--sha256", help="expected sha256 of the image")
    ap.add_argument("--baud", type=int, default=BAUD)
    ap.add_argument("--no-erase", action="store_true", help="keep the filesystem (same MicroPython version only)")
    ap.add_argument("--force", action="store_true", help="accept an image of another board name")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    _, board = build_mpy.load_board(args.board)
    chip = board["chip"]
    if chip is None:
        raise SystemExit("flash: board %s is the unix port; nothing to flash" % args.board)
    if chip not in OFFSET:
        raise SystemExit("flash: no flash offset known for chip %s" % chip)
    img = board["firmware_image"]
    if args.image:
        check_image(args.image, board, args.sha256, args.force)
        image = args.image
    elif args.dry_run:
        image = "%s-v%s.bin" % (img["name"], img["version"])
    else:
        raise SystemExit("flash: board %s needs MicroPython %s v%s (%s); download it and pass --image FILE"
                         % (args.board, img["name"], img["version"], img["page"]))
    cmds = esptool_cmds(chip, args.port, image, args.baud, not args.no_erase)
    for c in cmds:
        if args.dry_run:
            print("run " + shlex.join(c))
            continue
        print("flash: " + shlex.join(c), flush=True)
        r = subprocess.run(c)
        if r.returncode != 0:
            return r.returncode
    if not args.dry_run:
        frozen = board["firmware_image"].get("frozen")
        print("flash: done; next: make deploy PORT=%s BOARD=%s%s" % (
            args.port, args.board, " DEPLOY_ARGS=--frozen  (an image built with manifest.py)" if frozen else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
