#!/usr/bin/env bash
# Creates .venv/ with the pinned host tools, fetches micropython-lib packages
# into build/lib, and installs the system packages the tests need (mosquitto, chrony).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements-host.txt
.venv/bin/python tools/fetch_mplib.py
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
echo "setup: done ($(.venv/bin/micropython -c 'import sys; print(sys.implementation.name, sys.version)'))"
