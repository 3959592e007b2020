#!/usr/bin/env bash
# Build a unix-port MicroPython with the firmware frozen in (code in the binary, not
# in the heap, as on an ESP32 built with manifest.py), to measure the heap a frozen
# build needs:
#   BITS=32 tools/build_frozen_unix.sh      -> build/frozen-unix32/micropython
#   tools/build_frozen_unix.sh              -> build/frozen-unix/micropython (64 bits)
# `make setup` (and `make frozen32` after a change to firmware/) builds the 32-bit one:
# pointers of 4 bytes and GC blocks of 16 as on an ESP32, where the 64-bit port needs
# about twice the heap for the same objects (needs gcc-multilib). The source is the
# pinned one of tools/micropython.lock (tools/mpy_source.sh), or MPY_DIR, a MicroPython
# tree with lib/micropython-lib and lib/mbedtls.
# FREEZE=0 leaves the firmware out (the port's own frozen modules only): a plain
# interpreter to measure the firmware as .mpy, build/plain-unix32/micropython.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MPY_DIR="${MPY_DIR:-$(bash "$ROOT/tools/mpy_source.sh")}"
VARIANT="${VARIANT:-standard}"
BITS="${BITS:-64}"
OUT="$ROOT/build/frozen-unix"
EXTRA=()
MANIFEST="$ROOT/tools/manifest_unix.py"
if [ "$BITS" = 32 ]; then
    OUT="$ROOT/build/frozen-unix32"
    EXTRA=(CFLAGS_EXTRA=-m32 LDFLAGS_EXTRA=-m32)
fi
if [ "${FREEZE:-1}" = 0 ]; then
    OUT="${OUT/frozen-/plain-}"
    MANIFEST="$MPY_DIR/ports/unix/variants/$VARIANT/manifest.py"
fi
# mbedTLS: the port's config plus the Brainpool curves (TR-03116-3), in a file of
# this repo given at build time; make's quotes: the value reaches the compiler as "PATH".
TLS_CONFIG=(MBEDTLS_CONFIG_FILE="\\\"$ROOT/tools/mbedtls_config_brainpool.h\\\"")
JOBS="$(nproc 2>/dev/null || echo 2)"
# the version string from the source itself, not from a git repository around build/micropython
export GIT_CEILING_DIRECTORIES="$(dirname "$MPY_DIR")"
make -C "$MPY_DIR/mpy-cross" -j"$JOBS" >/dev/null
make -C "$MPY_DIR/ports/unix" -j"$JOBS" VARIANT="$VARIANT" MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 "${EXTRA[@]}" "${TLS_CONFIG[@]}" \
     FROZEN_MANIFEST="$MANIFEST" BUILD="$OUT/build-$VARIANT" \
     PROG=micropython >/dev/null
cp "$OUT/build-$VARIANT/micropython" "$OUT/micropython"
if [ "${FREEZE:-1}" = 0 ]; then
    "$OUT/micropython" -c "import asyncio, sys; print('plain unix build:', sys.version)"
else
    "$OUT/micropython" -c "import dicamm.services.app, sys; print('frozen unix build:', sys.version)"
fi
echo "$OUT/micropython"
