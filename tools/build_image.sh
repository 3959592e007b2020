#!/usr/bin/env bash
# make image: the MicroPython image of a board with the firmware frozen in (manifest.py)
# and the ESP-IDF settings of sdkconfig.dicamm (Brainpool curves, TLS 1.2: BSI
# TR-03116-3), built by ESP-IDF in a MicroPython checkout's ports/esp32:
#   make image BOARD=esp32_devkitc MPY_DIR=~/src/micropython [VARIANT=SPIRAM_OCT] [FREEZE=0]
# Needs ESP-IDF (idf.py on PATH: `. <esp-idf>/export.sh`) and a MicroPython checkout
# with the esp32 port's submodules (`make -C ports/esp32 submodules`). DRY_RUN=1 prints
# the build command only. The base board is the board file's firmware_image name.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BOARD="${BOARD:-esp32_devkitc}"
if ! command -v idf.py >/dev/null 2>&1; then
    echo "make image: ESP-IDF is not installed here (no idf.py on PATH)." >&2
    echo "  Install ESP-IDF (the version ports/esp32/README.md of MicroPython names), run" >&2
    echo "  '. <esp-idf>/export.sh', then 'make image BOARD=$BOARD MPY_DIR=<micropython>' again." >&2
    echo "  The build command is in docs/FLASHING.md (Building the image)." >&2
    exit 2
fi
: "${MPY_DIR:?make image: set MPY_DIR to a MicroPython checkout (with ports/esp32 and its submodules)}"
[ -f "$ROOT/boards/$BOARD.py" ] || { echo "make image: no board file boards/$BOARD.py" >&2; exit 2; }
BASE="$(python3 -c 'import sys; g = {}; exec(open(sys.argv[1]).read(), g); b = g["BOARD"]
if not b.get("chip"): raise SystemExit("make image: board %s has no MicroPython image" % b["name"])
print(b["firmware_image"]["name"])' "$ROOT/boards/$BOARD.py")"
ARGS=(BOARD_DIR="$ROOT/tools/esp32_board/DICAMM" BUILD="build-DICAMM-$BASE${VARIANT:+-$VARIANT}")
if [ "${FREEZE:-1}" != 0 ]; then
    ARGS+=(FROZEN_MANIFEST="$ROOT/manifest.py")
fi
echo "DICAMM_BASE_BOARD=$BASE DICAMM_BASE_VARIANT=${VARIANT:-} make -C $MPY_DIR/ports/esp32 ${ARGS[*]}"
if [ "${DRY_RUN:-0}" = 1 ]; then
    exit 0
fi
DICAMM_BASE_BOARD="$BASE" DICAMM_BASE_VARIANT="${VARIANT:-}" make -C "$MPY_DIR/ports/esp32" "${ARGS[@]}"
IMG="$MPY_DIR/ports/esp32/build-DICAMM-$BASE${VARIANT:+-$VARIANT}/firmware.bin"
echo "image: $IMG"
echo "sha256: $(sha256sum "$IMG" | cut -d' ' -f1)"
