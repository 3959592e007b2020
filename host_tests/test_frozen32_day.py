# The board's memory, guarded: a whole simulated day on the 32-bit unix port with the
# firmware frozen in (build/frozen-unix32/micropython, built by `make setup` from the
# pinned MicroPython source), in the heap of an ESP32 without PSRAM (-X heapsize=96k):
# MQTT online (mosquitto), the HAN over mutual TLS (the gateway emulator), 8 schedule
# windows. Every quarter hour of the day a value, none late, none a gap; no
# MemoryError anywhere (console, log, the MQTT link); every TAF16 event at the gateway.
# The day runs at 2880x, in slow motion (20x) from 1 s before to 10 s after each
# boundary, so that the legal 9 s last 450 real ms on a loaded host (about 90 s real).
import json
import os
import sys

import pytest

from conftest import ROOT, TOOLS

sys.path.insert(0, TOOLS)
import bench  # noqa: E402
import broker as brokermod  # noqa: E402
from rig import read_jsonl  # noqa: E402

FROZEN32 = os.environ.get("DICAMM_FROZEN32_MICROPYTHON") or os.path.join(ROOT, "build", "frozen-unix32", "micropython")
HEAP = "96k"
SPEED = 2880
SLOW = (20, 1000, 10000)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(brokermod.MOSQUITTO), reason="mosquitto not installed")]


def test_a_day_in_96k_frozen_on_32_bits(tmp_path):
    if not os.access(FROZEN32, os.X_OK):
        msg = "no frozen 32-bit build at %s: make setup (or make frozen32) builds it" % FROZEN32
        if os.environ.get("CI"):
            pytest.fail(msg)  # CI builds it from ../shared: missing is a failure there
        pytest.skip(msg)
    d = bench.run_day(str(tmp_path / "day"), SPEED, heap=HEAP, form="frozen32", micropython=FROZEN32,
                      mqtt=True, hours=24.0, windows=8, slow=SLOW)
    st = d["answers"].get("status", {})
    what = "heap %s: %s" % (HEAP, {k: d.get(k) for k in ("error", "memory_errors", "qh_values", "qh_late_gaps",
                                                          "qh_gaps", "alive", "console_answers", "wall_s")})
    assert d["alive"] and d["console_answers"], what
    assert d["memory_errors"] == [], what
    # every quarter hour of the day a value, read within the legal 9 s
    assert d["qh_boundaries"] == 96 and d["qh_values"] == 96 and d["qh_late_gaps"] == 0, what
    assert max(d["qh_delays_ms"]) <= 9000, d["qh_delays_ms"]
    assert st["qh"]["late"] == 0 and st["qh"]["gaps"] == 0, st["qh"]
    # MQTT online all day: one connect, no failure (a MemoryError there is a link fault)
    m = st["mqtt"]
    assert m["connected"] and m["connects"] == 1 and m["failures"] == 0 and m["last_error"] is None, json.dumps(m)
    assert sum(m["lost"].values()) == 0, m
    # the HAN over mutual TLS: the 8 windows' switching and window edges, each
    # acknowledged by the gateway, none pending
    tx = d["answers"]["tx"]["tx"]
    assert len(tx) == 8, tx
    events = d["answers"]["events"]["events"]
    got = {e["uuid"] for e in read_jsonl(d["rig"]["han_store"])}
    assert len(events) >= 32 and all(e["uuid"] in got for e in events), (len(events), len(got))
    assert not st.get("faults"), st.get("faults")
