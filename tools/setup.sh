#!/usr/bin/env bash
# Creates .venv/ with the pinned host tools, unpacks the pinned MicroPython source
# (tools/micropython.lock) into build/micropython, copies its micropython-lib packages
# that the firmware needs into build/lib, and installs the system packages the tests
# need (mosquitto, chrony, gcc-multilib for the 32-bit frozen build, which the
# Makefile builds next: build/frozen-unix32/micropython).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
# the pins into .venv, but for the ESP32 stubs: those go to build/esp32-stubs for
# tools/esp32_api_check.py (they hold top-level machine/os/time stubs and a stdlib of their own)
.venv/bin/pip install -q --disable-pip-version-check -r <(grep -v -e '-stubs==' requirements-host.txt)
mkdir -p build
.venv/bin/pip install -q --disable-pip-version-check --upgrade --no-deps --target build/esp32-stubs \
    -r <(grep -e '-stubs==' requirements-host.txt)
# micropython-lib from the pinned source: the one umqtt.simple of the tests, of
# `make deploy` (tools/build_mpy.py) and of the frozen manifest (require("umqtt.simple"))
MPY_SRC="$(bash tools/mpy_source.sh)"
rm -rf build/lib build/cache
mkdir -p build/lib
cp -r "$MPY_SRC/lib/micropython-lib/micropython/umqtt.simple/umqtt" build/lib/
echo "setup: build/lib/umqtt from micropython-lib ($(grep -o 'version="[^"]*"' \
    "$MPY_SRC/lib/micropython-lib/micropython/umqtt.simple/manifest.py"))"
if ! command -v mosquitto >/dev/null 2>&1 && [[ ! -x /usr/sbin/mosquitto ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing mosquitto and openssl (apt)"
        (apt-get update -qq || true) >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto openssl >/dev/null
        # the package enables a system broker on 1883; the tests start their own
        (systemctl stop mosquitto 2>/dev/null || service mosquitto stop 2>/dev/null || pkill -x mosquitto || true) >/dev/null 2>&1
    else
        echo "setup: mosquitto is missing; install it (apt-get install mosquitto) for the MQTT tests" >&2
    fi
fi
# chrony: an independent NTP server for the SNTP client's tests (RFC 4330 manners)
if ! command -v chronyd >/dev/null 2>&1 && [[ ! -x /usr/sbin/chronyd ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chrony (apt)"
        (apt-get update -qq || true) >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chrony >/dev/null
        # the package starts a system chronyd; the tests start their own, on their own ports
        (systemctl stop chrony 2>/dev/null || service chrony stop 2>/dev/null || pkill -x chronyd || true) >/dev/null 2>&1
    else
        echo "setup: chronyd is missing; install it (apt-get install chrony) for the SNTP tests" >&2
    fi
fi
# gcc-multilib: the 32-bit unix port with the firmware frozen in (pointers and GC blocks
# as on an ESP32), whose heap the whole-day test guards
if ! echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing gcc-multilib (apt)"
        (apt-get update -qq || true) >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc-multilib >/dev/null
    else
        echo "setup: gcc cannot build 32-bit programs; install gcc-multilib for the frozen 32-bit build" >&2
    fi
fi
echo "setup: done ($(.venv/bin/micropython -c 'import sys; print(sys.implementation.name, sys.version)'))"
