#!/usr/bin/env bash
# Creates .venv/ with the pinned host tools, fetches micropython-lib packages
# into build/lib, and installs the system packages the tests need (mosquitto).
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
echo "setup: done ($(.venv/bin/micropython -c 'import sys; print(sys.implementation.name, sys.version)'))"
