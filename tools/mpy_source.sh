#!/usr/bin/env bash
# The pinned MicroPython source (tools/micropython.lock) unpacked into build/micropython,
# after checking its sha256; prints the tree's path. Skipped when build/micropython
# already holds that tarball. Overrides:
#   DICAMM_MPY_SRC=DIR      a MicroPython tree of your own (with lib/micropython-lib and
#                           lib/mbedtls), used as it is: nothing checked or unpacked
#   DICAMM_MPY_TARBALLS=DIR where the tarball is (default: ../shared/micropython)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -n "${DICAMM_MPY_SRC:-}" ]]; then
    [[ -d "$DICAMM_MPY_SRC/py" && -d "$DICAMM_MPY_SRC/ports/unix" ]] || {
        echo "mpy_source: DICAMM_MPY_SRC=$DICAMM_MPY_SRC is no MicroPython tree (no py/, ports/unix/)" >&2; exit 2; }
    cd "$DICAMM_MPY_SRC" && pwd
    exit 0
fi
read -r NAME SHA < <(grep -v '^#' "$ROOT/tools/micropython.lock" | grep -v '^[[:space:]]*$' | head -n 1)
DEST="$ROOT/build/micropython"
STAMP="$DEST/.dicamm-source"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$NAME $SHA" ]]; then
    echo "$DEST"
    exit 0
fi
DIR="${DICAMM_MPY_TARBALLS:-$ROOT/../shared/micropython}"
TARBALL="$DIR/$NAME"
if [[ ! -f "$TARBALL" ]]; then
    echo "mpy_source: $TARBALL not found (tools/micropython.lock pins it). Put it there, set" >&2
    echo "  DICAMM_MPY_TARBALLS to its folder, or DICAMM_MPY_SRC to a MicroPython tree." >&2
    exit 2
fi
GOT="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
if [[ "$GOT" != "$SHA" ]]; then
    echo "mpy_source: sha256 of $TARBALL is $GOT, tools/micropython.lock says $SHA" >&2
    exit 2
fi
TMP="$ROOT/build/micropython.unpack"
rm -rf "$TMP" "$DEST"
mkdir -p "$TMP"
tar -xJf "$TARBALL" -C "$TMP"
[[ -d "$TMP/micropython/py" ]] || { echo "mpy_source: $NAME holds no micropython/py" >&2; exit 2; }
mv "$TMP/micropython" "$DEST"
rmdir "$TMP"
echo "$NAME $SHA" > "$STAMP"
echo "mpy_source: $NAME (sha256 ok) -> build/micropython" >&2
echo "$DEST"
